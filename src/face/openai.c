/* openai.c - the OpenAI face: POST /v1/chat/completions and /v1/completions
 * answered exactly as vLLM answers them, every streamed byte read from the
 * stream's log. Owns: reading what sluice needs from the body (stream,
 * stream_options) with jansson, splicing stream_options.include_usage into
 * the body that goes upstream, the SSE response head, passing non-stream
 * and error answers back unchanged, and cancelling upstream when the client
 * leaves before [DONE]. Does not own: the log, the pipeline, the transport. */
#include "face/openai.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "face/follow.h"
#include "pipeline/splice.h"
#include "upstream/headers.h"

/* One request on the OpenAI face, until the upstream's first answer. */
struct oa_call {
    struct sl_openai *oa;
    struct sl_http_exchange *ex; /* NULL once the client left */
    struct sl_stream *s;
    bool show_usage;
};

static void call_free(struct oa_call *c)
{
    if (c->s)
        sl_stream_unref(c->s);
    free(c);
}

/* The client left: on the OpenAI face that cancels at once (vLLM users
 * expect a disconnect to free the GPU). */
static void on_follower_gone(void *ud, struct sl_stream *s)
{
    (void)ud;
    sl_stream_cancel(s);
}

static void on_open(void *ud, struct sl_stream *s, const struct sl_upstream_header *hdrs, size_t n)
{
    (void)hdrs;
    (void)n;
    struct oa_call *c = ud;
    struct sl_http_exchange *ex = c->ex;
    c->ex = NULL;
    char head[256];
    snprintf(head, sizeof head,
             "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nX-Stream-Id: %s\r\n", s->id);
    if (ex == NULL ||
        sl_http_ex_start(ex, 200, "text/event-stream; charset=utf-8", head) != SL_OK) {
        sl_stream_cancel(s);
        call_free(c);
        return;
    }
    struct sl_follow_opts fo = {
        .show_usage = c->show_usage,
        .max_unsent = (size_t)c->oa->cfg->client_buffer_bytes,
        .trim = true,
    };
    if (sl_follow_start(s, ex, 0, &fo, on_follower_gone, NULL) != SL_OK) {
        sl_http_ex_close(ex);
        sl_stream_cancel(s);
    }
    call_free(c);
}

static void on_reply(void *ud, struct sl_stream *s, int status, const char *header_lines,
                     const char *body, size_t len)
{
    struct oa_call *c = ud;
    if (status >= 200 && status < 300) {
        /* A whole answer is one event in the stream's log. */
        if (sl_log_append(s->log, SL_EV_BODY, 0, body, len, "", 0, NULL) == SL_OK)
            sl_log_end(s->log);
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

/* The client left before the upstream answered: cancel, forget the call. */
static void on_early_abort(struct sl_http_exchange *ex, void *ud)
{
    (void)ex;
    struct oa_call *c = ud;
    c->ex = NULL;
    /* Cancelling a stream that has not opened calls no owner callback. */
    sl_stream_cancel(c->s);
    call_free(c);
}

/* stream_options as the upstream must see it: the client's members plus
 * include_usage (sluice's metrics need the usage). */
static char *stream_options_for_upstream(json_t *root, bool *client_asked)
{
    json_t *so = json_object_get(root, "stream_options");
    json_t *mine = json_is_object(so) ? json_deep_copy(so) : json_object();
    *client_asked = json_is_object(so) && json_is_true(json_object_get(so, "include_usage"));
    if (mine == NULL)
        return NULL;
    json_object_set_new(mine, "include_usage", json_true());
    char *s = json_dumps(mine, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(mine);
    return s;
}

void sl_openai_handle(struct sl_openai *oa, struct sl_http_exchange *ex)
{
    const struct sl_http_request *req = sl_http_ex_request(ex);
    size_t blen;
    const char *body = sl_http_ex_body(ex, &blen);
    json_error_t jerr;
    json_t *root = json_loadb(body, blen, 0, &jerr);
    if (root == NULL || !json_is_object(root)) {
        char msg[256];
        if (root == NULL)
            snprintf(msg, sizeof msg, "the request body is not valid JSON: %s (at byte %d)",
                     jerr.text, jerr.position);
        else
            snprintf(msg, sizeof msg, "the request body must be a JSON object");
        json_decref(root);
        sl_http_ex_respond_error(ex, 400, NULL, msg, NULL);
        return;
    }
    bool stream = json_is_true(json_object_get(root, "stream"));
    bool show_usage = false;
    struct sl_buf spliced;
    sl_buf_init(&spliced, blen + 4096);
    if (stream) {
        char *so = stream_options_for_upstream(root, &show_usage);
        int rc = so ? sl_json_splice_member(body, blen, "stream_options", so, strlen(so), &spliced)
                    : SL_ENOMEM;
        free(so);
        if (rc != SL_OK) {
            json_decref(root);
            sl_buf_free(&spliced);
            sl_http_ex_respond_error(ex, rc == SL_EJSON ? 400 : 503, NULL,
                                     "sluice could not prepare the request body", NULL);
            return;
        }
        body = sl_buf_ptr(&spliced);
        blen = sl_buf_size(&spliced);
    }
    json_decref(root);

    struct sl_buf store, path;
    sl_buf_init(&store, 256 * 1024);
    sl_buf_init(&path, req->target_len + 2);
    const char *lines[SL_LIMIT_HEADERS_MAX];
    size_t nlines = 0;
    struct oa_call *c = calloc(1, sizeof *c);
    int rc = c ? SL_OK : SL_ENOMEM;
    if (rc == SL_OK)
        rc = sl_upstream_request_headers(req, oa->t->sets_auth, &store, lines, SL_LIMIT_HEADERS_MAX,
                                         &nlines);
    if (rc == SL_OK)
        rc = sl_upstream_origin_target(req, &path);
    if (rc == SL_OK) {
        c->oa = oa;
        c->ex = ex;
        c->show_usage = show_usage;
        struct sl_upstream_send send = {
            .method = "POST",
            .path = sl_buf_ptr(&path),
            .path_len = sl_buf_size(&path),
            .headers = lines,
            .nheaders = nlines,
            .body = body,
            .body_len = blen,
        };
        struct sl_stream_opts so = {
            .max_log_bytes = (size_t)oa->cfg->max_stream_bytes,
            .max_event_bytes = (size_t)oa->cfg->max_body_bytes + 64 * 1024,
            .max_reply_bytes = (size_t)oa->cfg->max_response_bytes,
        };
        rc = sl_stream_start(oa->loop, oa->t, &send, &so, &owner_cbs, c, &c->s);
    }
    sl_buf_free(&store);
    sl_buf_free(&path);
    sl_buf_free(&spliced);
    if (rc != SL_OK) {
        free(c);
        sl_http_ex_respond_error(ex, 503, NULL, "no upstream is available", NULL);
        return;
    }
    sl_http_ex_set_abort_cb(ex, on_early_abort, c);
}
