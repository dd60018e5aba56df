/* streams.c - the stream face: POST /v1/streams, GET /v1/streams/{id},
 * GET /v1/streams/{id}/events (resumable SSE, compact or ?format=openai),
 * POST /v1/streams/{id}/cancel. Owns: the routes, Last-Event-ID rules (replay
 * after N, 204 at a finished stream's last id, 400 past it), read tokens,
 * 404 and 410, and the stream object built from the log. Does not own:
 * starting streams (openai.c), following (follow.c), keeping (the store). */
#include "face/streams.h"

#include <stdlib.h>
#include <string.h>

#include "face/follow.h"
#include "pipeline/chunk.h"
#include "stream/headers.h"

/* ---- small helpers ----------------------------------------------------------- */

/* The value of ?name= in the query (percent-decoding is not needed for the
 * values sluice reads: ids, tokens, numbers, words). */
static bool query_param(const struct sl_http_request *r, const char *name, const char **v,
                        size_t *n)
{
    size_t nl = strlen(name);
    const char *q = r->query, *end = r->query + r->query_len;
    while (q && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp ? amp : end;
        if ((size_t)(pe - q) > nl && memcmp(q, name, nl) == 0 && q[nl] == '=') {
            *v = q + nl + 1;
            *n = (size_t)(pe - *v);
            return true;
        }
        q = amp ? amp + 1 : NULL;
    }
    return false;
}

static bool parse_u64(const char *p, size_t n, uint64_t *out)
{
    if (n == 0 || n > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return true;
}

static void respond_store_error(struct sl_http_exchange *ex, int err)
{
    if (err == SL_ENOTFOUND)
        sl_http_ex_respond_error(ex, 404, NULL, "no such stream", "id");
    else if (err == SL_EGONE)
        sl_http_ex_respond_error(ex, 410, NULL, "the stream is no longer kept", "id");
    else
        sl_http_ex_respond_error(ex, 503, NULL, "the stream store is unavailable", NULL);
}

static bool token_ok(const struct sl_http_request *r, const struct sl_store_info *info)
{
    const char *v;
    size_t n;
    /* Client keys (a later issue) will make the token required; a token
     * that is given must match. */
    if (!query_param(r, "token", &v, &n))
        return true;
    return n == strlen(info->read_token) && memcmp(v, info->read_token, n) == 0;
}

/* ---- POST /v1/streams ---------------------------------------------------------- */

struct create_call {
    struct sl_openai *oa;
    struct sl_http_exchange *ex; /* NULL once the client left */
    struct sl_stream *s;
    struct sl_face_start info;
    bool waiting; /* for the store's answer */
};

static void create_free(struct create_call *c)
{
    if (c->s)
        sl_stream_unref(c->s);
    free(c);
}

static void create_on_info(void *ud, int err, const struct sl_store_info *info);

/* Filed in the store: the read token comes from it next. The store may
 * answer on a later turn; c (and its stream reference) lives until then. */
static void create_on_added(void *ud, int err)
{
    struct create_call *c = ud;
    if (err != SL_OK) {
        create_on_info(c, err, NULL);
        return;
    }
    c->oa->store->ops->get(c->oa->store, c->s->id, create_on_info, c);
}

static void create_on_info(void *ud, int err, const struct sl_store_info *info)
{
    struct create_call *c = ud;
    struct sl_stream *s = c->s;
    c->waiting = false;
    if (c->ex) {
        sl_http_ex_set_abort_cb(c->ex, NULL, NULL);
        if (err != SL_OK) {
            sl_stream_cancel(s);
            sl_http_ex_respond_error(c->ex, 503, NULL, "the stream store is unavailable", NULL);
        } else {
            char body[128];
            int len = snprintf(body, sizeof body, "{\"id\":\"%s\",\"read_token\":\"%s\"}", s->id,
                               info->read_token);
            char head[128];
            snprintf(head, sizeof head, "X-Stream-Id: %s\r\n", s->id);
            sl_http_ex_respond(c->ex, 201, "application/json", head, body, (size_t)len);
        }
    } else if (err != SL_OK) {
        sl_stream_cancel(s); /* not in the store: nothing else would stop it */
    }
    c->ex = NULL;
    create_free(c);
}

static void create_on_open(void *ud, struct sl_stream *s, const struct sl_upstream_header *hdrs,
                           size_t n)
{
    (void)hdrs;
    (void)n;
    (void)s;
    struct create_call *c = ud;
    c->waiting = true;
    c->oa->store->ops->add(c->oa->store, c->s, create_on_added, c);
}

static void create_on_reply(void *ud, struct sl_stream *s, int status, const char *header_lines,
                            const char *body, size_t len)
{
    (void)s;
    struct create_call *c = ud;
    if (c->ex)
        sl_http_ex_respond(c->ex, status, NULL, header_lines, body, len);
    c->ex = NULL;
    create_free(c);
}

static void create_on_fail(void *ud, struct sl_stream *s, int err, const char *what)
{
    (void)s;
    struct create_call *c = ud;
    if (c->ex)
        sl_http_ex_respond_error(c->ex, sl_upstream_error_status(err), NULL, what, NULL);
    c->ex = NULL;
    create_free(c);
}

static const struct sl_stream_owner create_owner = {create_on_open, create_on_reply,
                                                    create_on_fail};

/* Disconnect is not cancel: the stream goes on; the store's grace decides. */
static void create_on_abort(struct sl_http_exchange *ex, void *ud)
{
    (void)ex;
    struct create_call *c = ud;
    c->ex = NULL;
}

static void handle_create(struct sl_openai *oa, struct sl_http_exchange *ex)
{
    struct create_call *c = calloc(1, sizeof *c);
    if (c == NULL) {
        sl_http_ex_respond_error(ex, 503, NULL, "out of memory", NULL);
        return;
    }
    c->oa = oa;
    c->ex = ex;
    if (sl_face_start_stream(oa, ex, "/v1/chat/completions", SL_FACE_STREAMS, &create_owner, c,
                             &c->info, &c->s) != SL_OK) {
        free(c);
        return;
    }
    sl_http_ex_set_abort_cb(ex, create_on_abort, c);
}

/* ---- a request about one stream: lookup, then events, object or cancel -------- */

/* Every step waits for the store, which may answer on a later loop turn:
 * the request lives on the heap until the last answer, and a client that
 * leaves meanwhile only clears ex (the answer then frees the request). */
enum sreq_kind { SREQ_EVENTS, SREQ_OBJECT, SREQ_CANCEL };

/* The stream object, built by reading the whole log. */
struct summary {
    struct sl_buf text, reasoning;
    char finish[32];
    char model[256];
    int64_t created;       /* the start event's, else the stream's */
    struct sl_buf usage;   /* JSON or empty */
    struct sl_buf metrics; /* JSON or empty */
    int err;
    bool ended;
    uint64_t last;
    size_t n;
};

struct sreq {
    struct sl_openai *oa;
    struct sl_http_exchange *ex; /* NULL once the client left */
    enum sreq_kind kind;
    struct sl_store_info info; /* its strings point into the copies below */
    char id[SL_STREAM_ID_CHARS + 1];
    char token[SL_STREAM_ID_CHARS + 1];
    char upstream[256];
    struct summary sm;
    bool sm_on;
    bool stepping, answered; /* a read answered inside its own call */
};

/* The exchange, to be answered now: no abort comes to r after this. */
static struct sl_http_exchange *take(struct sreq *r)
{
    struct sl_http_exchange *ex = r->ex;
    sl_http_ex_set_abort_cb(ex, NULL, NULL);
    r->ex = NULL;
    return ex;
}

static void sreq_free(struct sreq *r)
{
    if (r->ex)
        sl_http_ex_set_abort_cb(r->ex, NULL, NULL);
    if (r->sm_on) {
        sl_buf_free(&r->sm.text);
        sl_buf_free(&r->sm.reasoning);
        sl_buf_free(&r->sm.usage);
        sl_buf_free(&r->sm.metrics);
    }
    free(r);
}

static void sreq_on_abort(struct sl_http_exchange *ex, void *ud)
{
    (void)ex;
    struct sreq *r = ud;
    r->ex = NULL;
}

static void events_go(struct sreq *r);
static void object_go(struct sreq *r);
static void object_step(struct sreq *r);
static void on_info(void *ud, int err, const struct sl_store_info *info);

static void on_cancelled(void *ud, int err)
{
    struct sreq *r = ud;
    if (r->ex == NULL) {
        sreq_free(r);
    } else if (err != SL_OK) {
        respond_store_error(take(r), err);
        sreq_free(r);
    } else {
        r->kind = SREQ_OBJECT; /* the object as it is now: look it up again */
        r->oa->store->ops->get(r->oa->store, r->id, on_info, r);
    }
}

/* The lookup answered: check the read token, then the request's own step. */
static void on_info(void *ud, int err, const struct sl_store_info *info)
{
    struct sreq *r = ud;
    if (r->ex == NULL) {
        sreq_free(r);
        return;
    }
    if (err != SL_OK) {
        respond_store_error(take(r), err);
        sreq_free(r);
        return;
    }
    r->info = *info;
    snprintf(r->token, sizeof r->token, "%s", info->read_token);
    snprintf(r->upstream, sizeof r->upstream, "%s", info->upstream ? info->upstream : "");
    r->info.id = r->id;
    r->info.read_token = r->token;
    r->info.upstream = r->upstream;
    if (!token_ok(sl_http_ex_request(r->ex), &r->info)) {
        sl_http_ex_respond_error(take(r), 403, NULL, "the read token does not match", "token");
        sreq_free(r);
        return;
    }
    switch (r->kind) {
    case SREQ_EVENTS:
        events_go(r);
        break;
    case SREQ_OBJECT:
        object_go(r);
        break;
    case SREQ_CANCEL:
        r->oa->store->ops->cancel(r->oa->store, r->id, on_cancelled, r);
        break;
    }
}

/* Looks the stream up (then checks the read token) for kind. */
static void sreq_start(struct sl_openai *oa, struct sl_http_exchange *ex, const char *id,
                       enum sreq_kind kind)
{
    struct sreq *r = calloc(1, sizeof *r);
    if (r == NULL) {
        sl_http_ex_respond_error(ex, 503, NULL, "out of memory", NULL);
        return;
    }
    r->oa = oa;
    r->ex = ex;
    r->kind = kind;
    snprintf(r->id, sizeof r->id, "%s", id);
    sl_http_ex_set_abort_cb(ex, sreq_on_abort, r);
    oa->store->ops->get(oa->store, r->id, on_info, r);
}

/* ---- GET /v1/streams/{id}/events ------------------------------------------------ */

static void events_go(struct sreq *r)
{
    struct sl_http_exchange *ex = take(r); /* the follower sets its own abort */
    struct sl_openai *oa = r->oa;
    const struct sl_http_request *req = sl_http_ex_request(ex);
    /* Where to start: Last-Event-ID (the header EventSource sends), or
     * ?last_event_id= for clients that cannot set headers. */
    const char *v;
    size_t n;
    uint64_t after = 0;
    bool have =
        sl_http_ex_header(ex, "Last-Event-ID", &v, &n) || query_param(req, "last_event_id", &v, &n);
    if (have && !parse_u64(v, n, &after)) {
        sl_http_ex_respond_error(ex, 400, NULL, "Last-Event-ID is not an event number",
                                 "last_event_id");
    } else if (after > r->info.last_seq) {
        sl_http_ex_respond_error(ex, 400, NULL, "Last-Event-ID is past the stream's last event",
                                 "last_event_id");
    } else if (have && r->info.ended && after == r->info.last_seq) {
        /* Nothing more will come: 204 makes EventSource stop reconnecting. */
        sl_http_ex_respond(ex, 204, NULL, NULL, "", 0);
    } else {
        enum sl_render_format fmt = SL_RENDER_COMPACT;
        /* A replay shows what the stream's creator was shown, unless asked. */
        bool usage = r->info.show_usage;
        if (query_param(req, "format", &v, &n) && n == 6 && memcmp(v, "openai", 6) == 0)
            fmt = SL_RENDER_OPENAI;
        if (query_param(req, "include_usage", &v, &n))
            usage = n == 4 && memcmp(v, "true", 4) == 0;
        char head[256];
        snprintf(head, sizeof head,
                 "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nX-Stream-Id: %s\r\n", r->id);
        if (sl_http_ex_start(ex, 200, "text/event-stream; charset=utf-8", head) == SL_OK) {
            struct sl_follow_opts fo = {
                .format = fmt,
                .ctx = {.show_usage = usage, .multi_choice = r->info.multi_choice},
                .max_unsent = (size_t)oa->cfg->client_buffer_bytes,
            };
            if (sl_follow_sse(oa->store, r->id, after, &fo, ex) != SL_OK)
                sl_http_ex_close(ex);
        }
    }
    sreq_free(r);
}

/* ---- GET /v1/streams/{id} and cancel --------------------------------------------- */

static void summary_add(struct summary *sm, const struct sl_ev *evs, size_t n)
{
    for (size_t i = 0; i < n && sm->err == SL_OK; i++) {
        const struct sl_ev *ev = &evs[i];
        sm->last = ev->seq;
        if (ev->choice != 0)
            continue; /* the object shows the first choice */
        struct sl_chunk ch;
        switch (ev->type) {
        case SL_EV_START:
            if (sl_chunk_read(ev->raw, ev->raw_len, &ch) == SL_OK &&
                ch.model.n < sizeof sm->model) {
                memcpy(sm->model, ch.model.p, ch.model.n);
                sm->model[ch.model.n] = '\0';
                if (ch.created >= 0)
                    sm->created = ch.created;
            }
            break;
        case SL_EV_CONTENT:
        case SL_EV_FINISH:
            if (sl_buf_append(&sm->text, ev->text, ev->text_len) != SL_OK)
                sm->err = SL_ETOOBIG;
            if (ev->type == SL_EV_FINISH && sl_chunk_read(ev->raw, ev->raw_len, &ch) == SL_OK &&
                ch.nchoices > 0 && ch.choices[0].finish_reason.n < sizeof sm->finish) {
                memcpy(sm->finish, ch.choices[0].finish_reason.p, ch.choices[0].finish_reason.n);
                sm->finish[ch.choices[0].finish_reason.n] = '\0';
            }
            break;
        case SL_EV_REASONING:
            if (sl_buf_append(&sm->reasoning, ev->text, ev->text_len) != SL_OK)
                sm->err = SL_ETOOBIG;
            break;
        case SL_EV_USAGE: {
            struct sl_render_ctx ctx = {.stream_id = ""};
            const char *name;
            struct sl_buf done;
            sl_buf_init(&done, 4096);
            sl_buf_reset(&sm->metrics);
            if (sl_render_compact(&ctx, ev, &name, &done, &sm->metrics) == 1 &&
                sl_chunk_read(ev->raw, ev->raw_len, &ch) == SL_OK && ch.has_usage) {
                sl_buf_reset(&sm->usage);
                if (sl_buf_printf(&sm->usage,
                                  "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,"
                                  "\"total_tokens\":%lld}",
                                  (long long)ch.prompt_tokens, (long long)ch.completion_tokens,
                                  (long long)ch.total_tokens) != SL_OK)
                    sl_buf_reset(&sm->usage);
            }
            sl_buf_free(&done);
            break;
        }
        case SL_EV_ERROR:
            if (sl_chunk_read(ev->raw, ev->raw_len, &ch) == SL_OK && ch.error_type.n == 9 &&
                memcmp(ch.error_type.p, "cancelled", 9) == 0)
                snprintf(sm->finish, sizeof sm->finish, "cancelled");
            break;
        default:
            break;
        }
    }
}

static void on_summary_read(void *ud, int err, const struct sl_ev *evs, size_t n, bool ended)
{
    struct sreq *r = ud;
    struct summary *sm = &r->sm;
    sm->err = err;
    sm->n = n;
    sm->ended = ended;
    if (r->ex != NULL)
        summary_add(sm, evs, n);
    r->answered = true;
    if (!r->stepping)
        object_step(r); /* the store answered later */
}

static int put_or_null(struct sl_buf *o, struct sl_buf *v)
{
    if (sl_buf_size(v) > 0)
        return sl_buf_append(o, sl_buf_ptr(v), sl_buf_size(v));
    return sl_buf_puts(o, "null");
}

static void object_respond(struct sreq *r)
{
    struct sl_http_exchange *ex = take(r);
    struct summary *sm = &r->sm;
    if (sm->err != SL_OK && sm->err != SL_ETOOBIG) {
        respond_store_error(ex, sm->err);
        return;
    }
    /* The model and created come from the start event's chunk. */
    struct sl_buf o;
    sl_buf_init(&o, sl_buf_size(&sm->text) + sl_buf_size(&sm->reasoning) * 6 + 65536);
    int rc = sl_buf_printf(&o, "{\"id\":\"%s\",\"state\":\"%s\",\"model\":", r->id,
                           sl_stream_state_name(r->info.state));
    if (rc == SL_OK)
        rc = sm->model[0] ? sl_buf_put_json_str(&o, sm->model, strlen(sm->model))
                          : sl_buf_puts(&o, "null");
    if (rc == SL_OK)
        rc = sl_buf_printf(&o, ",\"created\":%lld,\"upstream\":",
                           (long long)(sm->created > 0 ? sm->created : r->info.created));
    if (rc == SL_OK)
        rc = sl_buf_put_json_str(&o, r->upstream, strlen(r->upstream));
    if (rc == SL_OK)
        rc = sl_buf_printf(
            &o, ",\"last_event_id\":%llu,\"text\":", (unsigned long long)r->info.last_seq);
    if (rc == SL_OK)
        rc = sl_buf_put_json_str(&o, sl_buf_ptr(&sm->text), sl_buf_size(&sm->text));
    if (rc == SL_OK)
        rc = sl_buf_puts(&o, ",\"reasoning\":");
    if (rc == SL_OK)
        rc = sl_buf_put_json_str(&o, sl_buf_ptr(&sm->reasoning), sl_buf_size(&sm->reasoning));
    if (rc == SL_OK)
        rc = sl_buf_puts(&o, ",\"finish_reason\":");
    if (rc == SL_OK)
        rc = sm->finish[0] ? sl_buf_put_json_str(&o, sm->finish, strlen(sm->finish))
                           : sl_buf_puts(&o, "null");
    if (rc == SL_OK)
        rc = sl_buf_puts(&o, ",\"usage\":");
    if (rc == SL_OK)
        rc = put_or_null(&o, &sm->usage);
    if (rc == SL_OK)
        rc = sl_buf_puts(&o, ",\"metrics\":");
    if (rc == SL_OK)
        rc = put_or_null(&o, &sm->metrics);
    if (rc == SL_OK)
        rc = sl_buf_puts(&o, "}");
    if (rc == SL_OK)
        sl_http_ex_respond(ex, 200, "application/json", NULL, sl_buf_ptr(&o), sl_buf_size(&o));
    else
        sl_http_ex_respond_error(ex, 500, NULL, "the stream is too large to show", NULL);
    sl_buf_free(&o);
}

/* Reads the log 256 events at a time: a loop while the store answers
 * inside its call (no recursion per batch), a callback when it answers
 * later. */
static void object_step(struct sreq *r)
{
    r->stepping = true;
    for (;;) {
        if (r->answered) {
            r->answered = false;
            if (r->ex == NULL) {
                sreq_free(r);
                return;
            }
            if (r->sm.err != SL_OK || r->sm.n == 0) {
                object_respond(r);
                sreq_free(r);
                return;
            }
        }
        r->sm.n = 0;
        r->oa->store->ops->read(r->oa->store, r->id, r->sm.last, 256, on_summary_read, r);
        if (!r->answered) {
            r->stepping = false; /* on_summary_read goes on */
            return;
        }
    }
}

static void object_go(struct sreq *r)
{
    struct summary *sm = &r->sm;
    memset(sm, 0, sizeof *sm);
    sl_buf_init(&sm->text, (size_t)r->oa->cfg->max_stream_bytes);
    sl_buf_init(&sm->reasoning, (size_t)r->oa->cfg->max_stream_bytes);
    sl_buf_init(&sm->usage, 4096);
    sl_buf_init(&sm->metrics, 4096);
    r->sm_on = true;
    object_step(r);
}

/* ---- routing ------------------------------------------------------------------ */

bool sl_streams_handle(struct sl_openai *oa, struct sl_http_exchange *ex)
{
    const struct sl_http_request *r = sl_http_ex_request(ex);
    static const char prefix[] = "/v1/streams";
    size_t pl = sizeof prefix - 1;
    if (r->path_len < pl || memcmp(r->path, prefix, pl) != 0)
        return false;
    const char *rest = r->path + pl;
    size_t rn = r->path_len - pl;
    if (rn == 0) {
        if (r->method == SL_HTTP_POST)
            handle_create(oa, ex);
        else
            sl_http_ex_respond_error(ex, 405, "Allow: POST\r\n", "Method Not Allowed", NULL);
        return true;
    }
    if (rest[0] != '/')
        return false;
    rest++;
    rn--;
    const char *slash = memchr(rest, '/', rn);
    size_t idn = slash ? (size_t)(slash - rest) : rn;
    char id[SL_STREAM_ID_CHARS + 1];
    if (idn != SL_STREAM_ID_CHARS) {
        sl_http_ex_respond_error(ex, 404, NULL, "no such stream", "id");
        return true;
    }
    memcpy(id, rest, idn);
    id[idn] = '\0';
    const char *sub = slash ? slash : "";
    size_t subn = slash ? rn - idn : 0;
    bool get = r->method == SL_HTTP_GET || r->method == SL_HTTP_HEAD;
    if (subn == 0) {
        if (get)
            sreq_start(oa, ex, id, SREQ_OBJECT);
        else
            sl_http_ex_respond_error(ex, 405, "Allow: GET, HEAD\r\n", "Method Not Allowed", NULL);
    } else if (subn == 7 && memcmp(sub, "/events", 7) == 0) {
        if (get)
            sreq_start(oa, ex, id, SREQ_EVENTS);
        else
            sl_http_ex_respond_error(ex, 405, "Allow: GET\r\n", "Method Not Allowed", NULL);
    } else if (subn == 7 && memcmp(sub, "/cancel", 7) == 0) {
        if (r->method == SL_HTTP_POST)
            sreq_start(oa, ex, id, SREQ_CANCEL);
        else
            sl_http_ex_respond_error(ex, 405, "Allow: POST\r\n", "Method Not Allowed", NULL);
    } else {
        sl_http_ex_respond_error(ex, 404, NULL, "Not Found", NULL);
    }
    return true;
}
