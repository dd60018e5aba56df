/* proxy.c - pass-through of a request to an upstream and of its answer back,
 * unchanged. Owns: which headers cross (end-to-end ones; hop-by-hop, Host
 * and Content-Length are rewritten), the response framing (fixed length when
 * the upstream gave one, else chunked), errors before the head (502, 504),
 * and cancelling the upstream when the client leaves. Does not own:
 * parsing the answer (the OpenAI face does that for generations). */
#include "face/proxy.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "stream/headers.h"

/* ---- the pass-through ----------------------------------------------------- */

struct proxy {
    struct sl_http_exchange *ex; /* NULL once the exchange is over */
    struct sl_upstream_transport *t;
    struct sl_upstream_req *up; /* NULL once the upstream request is over */
    bool started;
};

static void proxy_on_abort(struct sl_http_exchange *ex, void *ud)
{
    (void)ex;
    struct proxy *p = ud;
    p->ex = NULL;
    if (p->up) {
        p->t->cancel(p->up); /* the client left: so does the upstream request */
        p->up = NULL;
    }
    free(p);
}

static void proxy_on_head(void *ud, int status, const struct sl_upstream_header *hdrs, size_t n)
{
    struct proxy *p = ud;
    struct sl_buf extra;
    sl_buf_init(&extra, 64 * 1024);
    const char *ctype;
    int64_t clen;
    if (sl_upstream_response_headers(hdrs, n, &extra, &ctype, &clen) != SL_OK)
        sl_buf_reset(&extra);
    int rc;
    /* Content-Type travels among the extra headers. */
    if (clen >= 0)
        rc = sl_http_ex_start_fixed(p->ex, status, NULL, sl_buf_cstr(&extra), (uint64_t)clen);
    else
        rc = sl_http_ex_start(p->ex, status, NULL, sl_buf_cstr(&extra));
    sl_buf_free(&extra);
    p->started = true;
    if (rc != SL_OK)
        p->ex = NULL; /* the client is gone: on_data stops the upstream */
}

static bool proxy_on_data(void *ud, const char *d, size_t n)
{
    struct proxy *p = ud;
    if (p->ex == NULL || sl_http_ex_write(p->ex, d, n) != SL_OK) {
        p->ex = NULL;
        p->up = NULL; /* returning false ends it without on_end */
        free(p);
        return false;
    }
    return true;
}

static void proxy_on_end(void *ud, int err, const char *what)
{
    struct proxy *p = ud;
    p->up = NULL;
    if (p->ex) {
        if (!p->started)
            sl_http_ex_respond_error(p->ex, sl_upstream_error_status(err), NULL, what, NULL);
        else if (err == SL_OK)
            sl_http_ex_end(p->ex);
        else
            sl_http_ex_close(p->ex); /* cut: the client must not see a clean end */
    }
    free(p);
}

void sl_proxy_forward(struct sl_http_exchange *ex, struct sl_upstream_transport *t)
{
    const struct sl_http_request *req = sl_http_ex_request(ex);
    struct sl_buf store;
    sl_buf_init(&store, 256 * 1024);
    const char *lines[SL_LIMIT_HEADERS_MAX];
    size_t nlines = 0;
    char method[16];
    size_t ml = req->method_len < sizeof method - 1 ? req->method_len : sizeof method - 1;
    memcpy(method, req->method_str, ml);
    method[ml] = '\0';
    struct proxy *p = calloc(1, sizeof *p);
    if (p == NULL || sl_upstream_request_headers(req, t->sets_auth, &store, lines,
                                                 SL_LIMIT_HEADERS_MAX, &nlines) != SL_OK) {
        free(p);
        sl_buf_free(&store);
        sl_http_ex_respond_error(ex, 503, NULL, "out of memory", NULL);
        return;
    }
    size_t blen;
    const char *body = sl_http_ex_body(ex, &blen);
    struct sl_buf path;
    sl_buf_init(&path, req->target_len + 2);
    if (sl_upstream_origin_target(req, &path) != SL_OK) {
        free(p);
        sl_buf_free(&store);
        sl_http_ex_respond_error(ex, 503, NULL, "out of memory", NULL);
        return;
    }
    struct sl_upstream_send send = {
        .method = method,
        .path = sl_buf_ptr(&path),
        .path_len = sl_buf_size(&path),
        .headers = lines,
        .nheaders = nlines,
        .body = body,
        .body_len = blen,
    };
    static const struct sl_upstream_cbs cbs = {proxy_on_head, proxy_on_data, proxy_on_end};
    p->ex = ex;
    p->t = t;
    int rc = t->start(t, &send, &cbs, p, &p->up);
    sl_buf_free(&store);
    sl_buf_free(&path);
    if (rc != SL_OK) {
        free(p);
        sl_http_ex_respond_error(ex, 503, NULL, "no upstream is available", NULL);
        return;
    }
    sl_http_ex_set_abort_cb(ex, proxy_on_abort, p);
}
