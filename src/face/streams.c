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
};

static void create_free(struct create_call *c)
{
    if (c->s)
        sl_stream_unref(c->s);
    free(c);
}

struct info_copy {
    int err;
    char token[SL_STREAM_ID_CHARS + 1];
};

static void on_info_token(void *ud, int err, const struct sl_store_info *info)
{
    struct info_copy *ic = ud;
    ic->err = err;
    if (err == SL_OK)
        snprintf(ic->token, sizeof ic->token, "%s", info->read_token);
}

static void on_added(void *ud, int err)
{
    *(int *)ud = err;
}

static void create_on_open(void *ud, struct sl_stream *s, const struct sl_upstream_header *hdrs,
                           size_t n)
{
    (void)hdrs;
    (void)n;
    struct create_call *c = ud;
    struct sl_store *store = c->oa->store;
    int err = SL_OK;
    store->ops->add(store, s, on_added, &err);
    struct info_copy ic = {SL_EUNAVAIL, ""};
    if (err == SL_OK)
        store->ops->get(store, s->id, on_info_token, &ic);
    if (c->ex) {
        if (err != SL_OK || ic.err != SL_OK) {
            sl_stream_cancel(s);
            sl_http_ex_respond_error(c->ex, 503, NULL, "the stream store is unavailable", NULL);
        } else {
            char body[128];
            int len = snprintf(body, sizeof body, "{\"id\":\"%s\",\"read_token\":\"%s\"}", s->id,
                               ic.token);
            char head[128];
            snprintf(head, sizeof head, "X-Stream-Id: %s\r\n", s->id);
            sl_http_ex_respond(c->ex, 201, "application/json", head, body, (size_t)len);
        }
    } else if (err != SL_OK) {
        sl_stream_cancel(s);
    }
    c->ex = NULL;
    create_free(c);
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

/* ---- GET /v1/streams/{id}/events ------------------------------------------------ */

struct events_req {
    struct sl_openai *oa;
    struct sl_http_exchange *ex;
    int err;
    struct sl_store_info info;
    char id[SL_STREAM_ID_CHARS + 1];
    char token[SL_STREAM_ID_CHARS + 1];
    char upstream[256];
};

static void on_info(void *ud, int err, const struct sl_store_info *info)
{
    struct events_req *er = ud;
    er->err = err;
    if (err != SL_OK)
        return;
    er->info = *info;
    snprintf(er->id, sizeof er->id, "%s", info->id);
    snprintf(er->token, sizeof er->token, "%s", info->read_token);
    snprintf(er->upstream, sizeof er->upstream, "%s", info->upstream ? info->upstream : "");
    er->info.id = er->id;
    er->info.read_token = er->token;
    er->info.upstream = er->upstream;
}

/* Looks the stream up and checks the read token; false when the exchange
 * has been answered (404, 410, 403, 503). */
static bool lookup(struct sl_openai *oa, struct sl_http_exchange *ex, const char *id,
                   struct events_req *er)
{
    memset(er, 0, sizeof *er);
    er->oa = oa;
    er->ex = ex;
    er->err = SL_EUNAVAIL;
    oa->store->ops->get(oa->store, id, on_info, er);
    if (er->err != SL_OK) {
        respond_store_error(ex, er->err);
        return false;
    }
    if (!token_ok(sl_http_ex_request(ex), &er->info)) {
        sl_http_ex_respond_error(ex, 403, NULL, "the read token does not match", "token");
        return false;
    }
    return true;
}

static void handle_events(struct sl_openai *oa, struct sl_http_exchange *ex, const char *id)
{
    const struct sl_http_request *r = sl_http_ex_request(ex);
    struct events_req er;
    if (!lookup(oa, ex, id, &er))
        return;
    /* Where to start: Last-Event-ID (the header EventSource sends), or
     * ?last_event_id= for clients that cannot set headers. */
    const char *v;
    size_t n;
    uint64_t after = 0;
    bool have =
        sl_http_ex_header(ex, "Last-Event-ID", &v, &n) || query_param(r, "last_event_id", &v, &n);
    if (have && !parse_u64(v, n, &after)) {
        sl_http_ex_respond_error(ex, 400, NULL, "Last-Event-ID is not an event number",
                                 "last_event_id");
        return;
    }
    if (after > er.info.last_seq) {
        sl_http_ex_respond_error(ex, 400, NULL, "Last-Event-ID is past the stream's last event",
                                 "last_event_id");
        return;
    }
    if (have && er.info.ended && after == er.info.last_seq) {
        /* Nothing more will come: 204 makes EventSource stop reconnecting. */
        sl_http_ex_respond(ex, 204, NULL, NULL, "", 0);
        return;
    }
    enum sl_render_format fmt = SL_RENDER_COMPACT;
    /* A replay shows what the stream's creator was shown, unless asked. */
    bool usage = er.info.show_usage;
    if (query_param(r, "format", &v, &n) && n == 6 && memcmp(v, "openai", 6) == 0)
        fmt = SL_RENDER_OPENAI;
    if (query_param(r, "include_usage", &v, &n))
        usage = n == 4 && memcmp(v, "true", 4) == 0;
    char head[256];
    snprintf(head, sizeof head,
             "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nX-Stream-Id: %s\r\n", er.id);
    if (sl_http_ex_start(ex, 200, "text/event-stream; charset=utf-8", head) != SL_OK)
        return;
    struct sl_follow_opts fo = {
        .format = fmt,
        .ctx = {.show_usage = usage, .multi_choice = er.info.multi_choice},
        .max_unsent = (size_t)oa->cfg->client_buffer_bytes,
    };
    if (sl_follow_sse(oa->store, er.id, after, &fo, ex) != SL_OK)
        sl_http_ex_close(ex);
}

/* ---- GET /v1/streams/{id} and cancel --------------------------------------------- */

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

static void on_summary_read(void *ud, int err, const struct sl_ev *evs, size_t n, bool ended)
{
    struct summary *sm = ud;
    sm->err = err;
    sm->n = n;
    sm->ended = ended;
    for (size_t i = 0; i < n && err == SL_OK; i++) {
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

static int put_or_null(struct sl_buf *o, struct sl_buf *v)
{
    if (sl_buf_size(v) > 0)
        return sl_buf_append(o, sl_buf_ptr(v), sl_buf_size(v));
    return sl_buf_puts(o, "null");
}

static void respond_object(struct sl_openai *oa, struct sl_http_exchange *ex, const char *id)
{
    struct events_req er;
    if (!lookup(oa, ex, id, &er))
        return;
    struct summary sm;
    memset(&sm, 0, sizeof sm);
    sl_buf_init(&sm.text, (size_t)oa->cfg->max_stream_bytes);
    sl_buf_init(&sm.reasoning, (size_t)oa->cfg->max_stream_bytes);
    sl_buf_init(&sm.usage, 4096);
    sl_buf_init(&sm.metrics, 4096);
    uint64_t after = 0;
    do {
        sm.n = 0;
        oa->store->ops->read(oa->store, id, after, 256, on_summary_read, &sm);
        after = sm.last;
    } while (sm.err == SL_OK && sm.n > 0);
    if (sm.err != SL_OK && sm.err != SL_ETOOBIG) {
        respond_store_error(ex, sm.err);
        sl_buf_free(&sm.text);
        sl_buf_free(&sm.reasoning);
        sl_buf_free(&sm.usage);
        sl_buf_free(&sm.metrics);
        return;
    }
    /* The model and created come from the start event's chunk. */
    struct sl_buf o;
    sl_buf_init(&o, sl_buf_size(&sm.text) + sl_buf_size(&sm.reasoning) * 6 + 65536);
    int rc = sl_buf_printf(&o, "{\"id\":\"%s\",\"state\":\"%s\",\"model\":", er.id,
                           sl_stream_state_name(er.info.state));
    if (rc == SL_OK)
        rc = sm.model[0] ? sl_buf_put_json_str(&o, sm.model, strlen(sm.model))
                         : sl_buf_puts(&o, "null");
    if (rc == SL_OK)
        rc = sl_buf_printf(&o, ",\"created\":%lld,\"upstream\":",
                           (long long)(sm.created > 0 ? sm.created : er.info.created));
    if (rc == SL_OK)
        rc = sl_buf_put_json_str(&o, er.upstream, strlen(er.upstream));
    if (rc == SL_OK)
        rc = sl_buf_printf(
            &o, ",\"last_event_id\":%llu,\"text\":", (unsigned long long)er.info.last_seq);
    if (rc == SL_OK)
        rc = sl_buf_put_json_str(&o, sl_buf_ptr(&sm.text), sl_buf_size(&sm.text));
    if (rc == SL_OK)
        rc = sl_buf_puts(&o, ",\"reasoning\":");
    if (rc == SL_OK)
        rc = sl_buf_put_json_str(&o, sl_buf_ptr(&sm.reasoning), sl_buf_size(&sm.reasoning));
    if (rc == SL_OK)
        rc = sl_buf_puts(&o, ",\"finish_reason\":");
    if (rc == SL_OK)
        rc = sm.finish[0] ? sl_buf_put_json_str(&o, sm.finish, strlen(sm.finish))
                          : sl_buf_puts(&o, "null");
    if (rc == SL_OK)
        rc = sl_buf_puts(&o, ",\"usage\":");
    if (rc == SL_OK)
        rc = put_or_null(&o, &sm.usage);
    if (rc == SL_OK)
        rc = sl_buf_puts(&o, ",\"metrics\":");
    if (rc == SL_OK)
        rc = put_or_null(&o, &sm.metrics);
    if (rc == SL_OK)
        rc = sl_buf_puts(&o, "}");
    if (rc == SL_OK)
        sl_http_ex_respond(ex, 200, "application/json", NULL, sl_buf_ptr(&o), sl_buf_size(&o));
    else
        sl_http_ex_respond_error(ex, 500, NULL, "the stream is too large to show", NULL);
    sl_buf_free(&o);
    sl_buf_free(&sm.text);
    sl_buf_free(&sm.reasoning);
    sl_buf_free(&sm.usage);
    sl_buf_free(&sm.metrics);
}

static void on_cancelled(void *ud, int err)
{
    *(int *)ud = err;
}

static void handle_cancel(struct sl_openai *oa, struct sl_http_exchange *ex, const char *id)
{
    struct events_req er;
    if (!lookup(oa, ex, id, &er))
        return;
    int err = SL_EUNAVAIL;
    oa->store->ops->cancel(oa->store, id, on_cancelled, &err);
    if (err != SL_OK) {
        respond_store_error(ex, err);
        return;
    }
    respond_object(oa, ex, id);
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
            respond_object(oa, ex, id);
        else
            sl_http_ex_respond_error(ex, 405, "Allow: GET, HEAD\r\n", "Method Not Allowed", NULL);
    } else if (subn == 7 && memcmp(sub, "/events", 7) == 0) {
        if (get)
            handle_events(oa, ex, id);
        else
            sl_http_ex_respond_error(ex, 405, "Allow: GET\r\n", "Method Not Allowed", NULL);
    } else if (subn == 7 && memcmp(sub, "/cancel", 7) == 0) {
        if (r->method == SL_HTTP_POST)
            handle_cancel(oa, ex, id);
        else
            sl_http_ex_respond_error(ex, 405, "Allow: POST\r\n", "Method Not Allowed", NULL);
    } else {
        sl_http_ex_respond_error(ex, 404, NULL, "Not Found", NULL);
    }
    return true;
}
