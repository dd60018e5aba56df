/* openai.c - the OpenAI face: POST /v1/chat/completions and /v1/completions
 * answered exactly as vLLM answers them, every streamed byte read from the
 * stream's log through the store. Owns: reading what sluice needs from a
 * body (stream, stream_options, n) with jansson, splicing what the upstream
 * must see into the body (no other byte changes), starting streams for
 * both faces, the SSE response head, passing non-stream and error answers
 * back unchanged, and the grace (0 unless X-Sluice-Grace) after which a
 * stream whose client left is cancelled. Does not own: the log, the
 * pipeline, the transport, the store. */
#include "face/openai.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "face/follow.h"
#include "pipeline/splice.h"
#include "stream/headers.h"

/* ---- starting a stream (both faces) ---------------------------------------- */

/* The body with stream_options.include_usage true (sluice's metrics need
 * the usage), every other byte as sent: an absent or null stream_options
 * becomes {"include_usage":true}; an object gets the member spliced into
 * its own bytes; anything else is left for the upstream to refuse.
 * *client_asked: would vLLM have sent usage for the client's own body
 * (its StreamOptions.include_usage defaults to true)? */
static int splice_usage(const char *body, size_t blen, json_t *root, bool *client_asked,
                        struct sl_buf *out)
{
    json_t *so = json_object_get(root, "stream_options");
    *client_asked = json_is_object(so) && !json_is_false(json_object_get(so, "include_usage"));
    if (so != NULL && !json_is_null(so) && !json_is_object(so))
        return sl_buf_append(out, body, blen);
    if (!json_is_object(so)) {
        static const char v[] = "{\"include_usage\":true}";
        return sl_json_splice_member(body, blen, "stream_options", v, sizeof v - 1, out);
    }
    size_t off, len;
    int rc = sl_json_find_member(body, blen, "stream_options", &off, &len);
    if (rc != SL_OK)
        return rc;
    struct sl_buf inner, inner2;
    sl_buf_init(&inner, len + 64);
    sl_buf_init(&inner2, len + 64);
    rc = sl_json_splice_member(body + off, len, "include_usage", "true", 4, &inner);
    /* continuous_usage_stats counts only with include_usage: a client that
     * said no usage must not get per-chunk usage because sluice said yes. */
    if (rc == SL_OK && !*client_asked &&
        json_is_true(json_object_get(so, "continuous_usage_stats"))) {
        rc = sl_json_splice_member(sl_buf_ptr(&inner), sl_buf_size(&inner),
                                   "continuous_usage_stats", "false", 5, &inner2);
        struct sl_buf t = inner;
        inner = inner2;
        inner2 = t;
    }
    sl_buf_free(&inner2);
    if (rc == SL_OK)
        rc = sl_json_splice_member(body, blen, "stream_options", sl_buf_ptr(&inner),
                                   sl_buf_size(&inner), out);
    sl_buf_free(&inner);
    return rc;
}

/* The grace of a stream whose client left, from X-Sluice-Grace (seconds,
 * capped by grace_s); dflt when absent. */
static uint64_t header_grace_ms(struct sl_openai *oa, struct sl_http_exchange *ex, uint64_t dflt)
{
    const char *v;
    size_t n;
    if (!sl_http_ex_header(ex, "X-Sluice-Grace", &v, &n) || n == 0 || n > 9)
        return dflt;
    uint64_t g = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return dflt;
        g = g * 10 + (uint64_t)(v[i] - '0');
    }
    if (g > (uint64_t)oa->cfg->grace_s)
        g = (uint64_t)oa->cfg->grace_s;
    return g * 1000;
}

int sl_face_start_body(struct sl_openai *oa, const char *body, size_t blen,
                       const char *const *hdr_lines, size_t nhdr, const char *path,
                       enum sl_face_kind kind, uint64_t grace_ms,
                       const struct sl_stream_owner *owner, void *owner_ud,
                       struct sl_face_start *info, struct sl_stream **out, int *status, char *msg,
                       size_t msglen)
{
    json_error_t jerr;
    /* Integers past int64 (a client's seed, say) and \u0000 in strings are
     * fine JSON: read numbers as reals, since only a few members are looked
     * at here, and allow NUL. */
    json_t *root = json_loadb(body, blen, JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &jerr);
    if (root == NULL || !json_is_object(root)) {
        if (root == NULL)
            snprintf(msg, msglen, "the request body is not valid JSON: %s (at byte %d)", jerr.text,
                     jerr.position);
        else
            snprintf(msg, msglen, "the request body must be a JSON object");
        json_decref(root);
        *status = 400;
        return SL_EJSON;
    }
    memset(info, 0, sizeof *info);
    info->client_stream = json_is_true(json_object_get(root, "stream"));
    json_t *jn = json_object_get(root, "n");
    info->multi_choice = json_is_number(jn) && json_number_value(jn) > 1;
    bool stream = info->client_stream || kind == SL_FACE_STREAMS;
    struct sl_buf spliced, tmp;
    sl_buf_init(&spliced, blen + 4096);
    sl_buf_init(&tmp, blen + 4096);
    int rc = SL_OK;
    if (stream) {
        rc = splice_usage(body, blen, root, &info->show_usage, &spliced);
        /* The stream face streams whatever the body says. */
        if (rc == SL_OK && kind == SL_FACE_STREAMS && !info->client_stream) {
            rc = sl_json_splice_member(sl_buf_ptr(&spliced), sl_buf_size(&spliced), "stream",
                                       "true", 4, &tmp);
            struct sl_buf t = spliced;
            spliced = tmp;
            tmp = t;
        }
        body = sl_buf_ptr(&spliced);
        blen = sl_buf_size(&spliced);
    }
    json_decref(root);
    if (rc != SL_OK) {
        *status = rc == SL_EJSON ? 400 : 503;
        snprintf(msg, msglen, "sluice could not prepare the request body");
    } else {
        struct sl_upstream_send send = {
            .method = "POST",
            .path = path,
            .path_len = strlen(path),
            .headers = hdr_lines,
            .nheaders = nhdr,
            .body = body,
            .body_len = blen,
        };
        struct sl_stream_opts so = {
            .max_log_bytes = (size_t)oa->cfg->max_stream_bytes,
            .max_event_bytes = (size_t)oa->cfg->max_body_bytes + 64 * 1024,
            .max_reply_bytes = (size_t)oa->cfg->max_response_bytes,
            .stall_ms = (uint64_t)oa->cfg->stall_timeout_ms,
        };
        rc = sl_stream_start(oa->loop, oa->t, &send, &so, owner, owner_ud, out);
        if (rc == SL_OK) {
            (*out)->show_usage = kind == SL_FACE_STREAMS || info->show_usage;
            (*out)->multi_choice = info->multi_choice;
            (*out)->grace_ms = grace_ms;
        } else {
            *status = 503;
            snprintf(msg, msglen, "no upstream is available");
        }
    }
    sl_buf_free(&spliced);
    sl_buf_free(&tmp);
    return rc;
}

int sl_face_start_stream(struct sl_openai *oa, struct sl_http_exchange *ex, const char *path,
                         enum sl_face_kind kind, const struct sl_stream_owner *owner,
                         void *owner_ud, struct sl_face_start *info, struct sl_stream **out)
{
    size_t blen;
    const char *body = sl_http_ex_body(ex, &blen);
    struct sl_buf store;
    sl_buf_init(&store, 256 * 1024);
    const char *lines[SL_LIMIT_HEADERS_MAX];
    size_t nlines = 0;
    int status = 503;
    char msg[256] = "no upstream is available";
    int rc = sl_upstream_request_headers(sl_http_ex_request(ex), oa->t->sets_auth, &store, lines,
                                         SL_LIMIT_HEADERS_MAX, &nlines);
    uint64_t dflt = kind == SL_FACE_OPENAI ? 0 : (uint64_t)oa->cfg->grace_s * 1000;
    if (rc == SL_OK)
        rc = sl_face_start_body(oa, body, blen, lines, nlines, path, kind,
                                header_grace_ms(oa, ex, dflt), owner, owner_ud, info, out, &status,
                                msg, sizeof msg);
    sl_buf_free(&store);
    if (rc != SL_OK)
        sl_http_ex_respond_error(ex, status, NULL, msg, NULL);
    return rc;
}

/* ---- the OpenAI face --------------------------------------------------------- */

/* One request on the OpenAI face, until the upstream's first answer. */
struct oa_call {
    struct sl_openai *oa;
    struct sl_http_exchange *ex; /* NULL once the client left */
    struct sl_stream *s;
    struct sl_face_start info;
    bool adding; /* waiting for the store to file the stream */
};

static void call_free(struct oa_call *c)
{
    if (c->s)
        sl_stream_unref(c->s);
    free(c);
}

/* Filed in the store (which may answer on a later turn: c lives until
 * then, and a client that left meanwhile only cleared c->ex). */
static void on_added(void *ud, int err)
{
    struct oa_call *c = ud;
    struct sl_stream *s = c->s;
    struct sl_http_exchange *ex = c->ex;
    struct sl_store *store = c->oa->store;
    c->ex = NULL;
    c->adding = false;
    if (ex)
        sl_http_ex_set_abort_cb(ex, NULL, NULL);
    char head[256];
    snprintf(head, sizeof head,
             "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nX-Stream-Id: %s\r\n", s->id);
    if (ex == NULL || err != SL_OK) {
        if (ex)
            sl_http_ex_respond_error(ex, 503, NULL, "the stream store is unavailable", NULL);
        if (ex || err != SL_OK || s->grace_ms == 0)
            sl_stream_cancel(s); /* else the store's grace decides */
        call_free(c);
        return;
    }
    if (sl_http_ex_start(ex, 200, "text/event-stream; charset=utf-8", head) != SL_OK) {
        store->ops->listeners(store, s->id, 0); /* nobody came: grace from now */
        call_free(c);
        return;
    }
    struct sl_follow_opts fo = {
        .format = SL_RENDER_OPENAI,
        .ctx = {.show_usage = c->info.show_usage, .multi_choice = c->info.multi_choice},
        .max_unsent = (size_t)c->oa->cfg->client_buffer_bytes,
    };
    if (sl_follow_sse(store, s->id, 0, &fo, ex) != SL_OK) {
        sl_http_ex_close(ex);
        store->ops->listeners(store, s->id, 0);
    }
    call_free(c);
}

static void on_open(void *ud, struct sl_stream *s, const struct sl_upstream_header *hdrs, size_t n)
{
    (void)hdrs;
    (void)n;
    (void)s;
    struct oa_call *c = ud;
    c->adding = true;
    c->oa->store->ops->add(c->oa->store, c->s, on_added, c);
}

/* A whole answer filed in the store: nobody waits for it. */
static void on_body_added(void *ud, int err)
{
    (void)ud;
    (void)err;
}

static void on_reply(void *ud, struct sl_stream *s, int status, const char *header_lines,
                     const char *body, size_t len)
{
    struct oa_call *c = ud;
    if (status >= 200 && status < 300) {
        /* A whole answer is one event in the stream's log, kept like any. */
        if (sl_log_append(s->log, SL_EV_BODY, 0, body, len, "", 0, NULL) == SL_OK)
            sl_log_end(s->log);
        c->oa->store->ops->add(c->oa->store, s, on_body_added, NULL);
    }
    if (c->ex) {
        struct sl_buf h;
        sl_buf_init(&h, 128 * 1024);
        if (sl_buf_puts(&h, header_lines) != SL_OK ||
            sl_buf_printf(&h, "X-Stream-Id: %s\r\n", s->id) != SL_OK)
            sl_buf_reset(&h);
        sl_http_ex_respond(c->ex, status, NULL, sl_buf_cstr(&h), body, len);
        sl_buf_free(&h);
        c->ex = NULL;
    }
    call_free(c);
}

static void on_fail(void *ud, struct sl_stream *s, int err, const char *what)
{
    (void)s;
    struct oa_call *c = ud;
    if (c->ex)
        sl_http_ex_respond_error(c->ex, sl_upstream_error_status(err), NULL, what, NULL);
    c->ex = NULL;
    call_free(c);
}

static const struct sl_stream_owner owner_cbs = {on_open, on_reply, on_fail};

/* The client left before the upstream answered. */
static void on_early_abort(struct sl_http_exchange *ex, void *ud)
{
    (void)ex;
    struct oa_call *c = ud;
    c->ex = NULL;
    if (c->adding)
        return; /* on_added decides, and frees c */
    if (c->s->grace_ms == 0) {
        /* Cancelling a stream that has not opened calls no owner callback. */
        sl_stream_cancel(c->s);
        call_free(c);
    }
    /* With a grace the stream goes on: on_open files it in the store. */
}

void sl_openai_handle(struct sl_openai *oa, struct sl_http_exchange *ex)
{
    struct oa_call *c = calloc(1, sizeof *c);
    if (c == NULL) {
        sl_http_ex_respond_error(ex, 503, NULL, "out of memory", NULL);
        return;
    }
    const struct sl_http_request *req = sl_http_ex_request(ex);
    struct sl_buf path;
    sl_buf_init(&path, req->target_len + 2);
    if (sl_upstream_origin_target(req, &path) != SL_OK) {
        free(c);
        sl_buf_free(&path);
        sl_http_ex_respond_error(ex, 503, NULL, "out of memory", NULL);
        return;
    }
    c->oa = oa;
    c->ex = ex;
    int rc = sl_face_start_stream(oa, ex, sl_buf_cstr(&path), SL_FACE_OPENAI, &owner_cbs, c,
                                  &c->info, &c->s);
    sl_buf_free(&path);
    if (rc != SL_OK) {
        free(c); /* the exchange was answered */
        return;
    }
    sl_http_ex_set_abort_cb(ex, on_early_abort, c);
}
