/* sim_backend.c - the in-process simulator as an upstream transport: the
 * gateway's backend when no --upstream is given, and what `sluice sim`
 * serves. Owns: vLLM's routes over the simulator core, one timer per
 * generation polling the core when its bytes are due, and turning a cancel
 * into the core's abort. Does not own: the bytes (sim/sim.c), HTTP. */
#include "upstream/sim_backend.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oai/error.h"

/* Bytes of one poll's output held before they go on (a stream), and the
 * ceiling of a whole non-streaming answer (n choices of up to
 * max_model_len tokens; memory grows only as used). */
#define SL_SIM_OUT_BYTES  (1024 * 1024)
#define SL_SIM_BODY_BYTES (256 * 1024 * 1024)

struct sl_sim_backend {
    struct sl_upstream_transport t; /* first: the transport is the backend */
    uv_loop_t *loop;
    struct sl_sim *sim;
    uint64_t unix_at_start; /* wall seconds when the loop clock read start_ms */
    uint64_t start_ms;
    size_t live; /* requests not yet freed */
    bool freeing;
};

/* One request. Freed in its timer's close callback. */
struct sl_upstream_req {
    uv_timer_t timer;
    struct sl_sim_backend *b;
    struct sl_sim_req *req; /* NULL for the routes answered at once */
    struct sl_upstream_cbs cbs;
    void *ud;
    struct sl_buf out;
    int status;
    const char *ctype;
    bool stream;
    bool head_sent;
    bool over; /* no more callbacks */
};

static uint64_t unix_now(struct sl_sim_backend *b)
{
    return b->unix_at_start + (uv_now(b->loop) - b->start_ms) / 1000;
}

static void on_req_closed(uv_handle_t *h)
{
    struct sl_upstream_req *r = h->data;
    struct sl_sim_backend *b = r->b;
    sl_buf_free(&r->out);
    free(r);
    if (--b->live == 0 && b->freeing) {
        sl_sim_free(b->sim);
        free(b);
    }
}

static void req_close(struct sl_upstream_req *r)
{
    r->over = true;
    if (r->req) {
        sl_sim_req_free(r->req, uv_now(r->b->loop));
        r->req = NULL;
    }
    uv_timer_stop(&r->timer);
    if (!uv_is_closing((uv_handle_t *)&r->timer))
        uv_close((uv_handle_t *)&r->timer, on_req_closed);
}

static void send_head(struct sl_upstream_req *r, uint64_t content_length)
{
    char len[24];
    struct sl_upstream_header h[2] = {
        {"Content-Type", 12, r->ctype, strlen(r->ctype)},
        {"Content-Length", 14, len, 0},
    };
    size_t n = 1;
    if (!r->stream) {
        h[1].value_len =
            (size_t)snprintf(len, sizeof len, "%llu", (unsigned long long)content_length);
        n = 2;
    }
    r->head_sent = true;
    r->cbs.on_head(r->ud, r->status, h, n);
}

/* Hands out what is in r->out; false when the owner stopped the request. */
static bool deliver(struct sl_upstream_req *r)
{
    if (sl_buf_size(&r->out) == 0)
        return true;
    bool go = r->cbs.on_data(r->ud, sl_buf_ptr(&r->out), sl_buf_size(&r->out));
    sl_buf_reset(&r->out);
    if (!go && !r->over) {
        if (r->req)
            sl_sim_abort(r->req, uv_now(r->b->loop));
        req_close(r);
    }
    return go && !r->over;
}

/* The last callback: on_end with err and what, then the request closes. */
static void finish(struct sl_upstream_req *r, int err, const char *what)
{
    r->over = true;
    r->cbs.on_end(r->ud, err, what);
    req_close(r);
}

/* Sends a whole (non-streaming) answer held in r->out and ends it. */
static void answer_whole(struct sl_upstream_req *r)
{
    send_head(r, sl_buf_size(&r->out));
    if (r->over || !deliver(r))
        return;
    finish(r, SL_OK, "complete");
}

static void poll_req(struct sl_upstream_req *r);

static void on_timer(uv_timer_t *t)
{
    poll_req(t->data);
}

static void poll_req(struct sl_upstream_req *r)
{
    if (r->over)
        return;
    uint64_t now = uv_now(r->b->loop);
    uint64_t wake = UINT64_MAX;
    int st = sl_sim_poll(r->req, now, &r->out, &wake);
    if (st < 0) { /* out is full: the core resumes where it stopped */
        wake = now + 1;
        st = SL_SIM_WAIT;
    }
    if (r->stream) {
        if (!r->head_sent)
            send_head(r, 0);
        if (r->over || !deliver(r))
            return;
    }
    if (st == SL_SIM_DROP) {
        finish(r, SL_ECLOSED, "the upstream closed the connection mid-answer");
        return;
    }
    if (st == SL_SIM_DONE) {
        if (r->stream) {
            finish(r, SL_OK, "complete");
        } else {
            r->status = sl_sim_req_status(r->req);
            answer_whole(r);
        }
        return;
    }
    if (wake != UINT64_MAX)
        uv_timer_start(&r->timer, on_timer, wake > now ? wake - now : 0, 0);
}

/* The core admitted a queued request: poll it now. */
static void on_wake(struct sl_sim_req *req, void *ud)
{
    (void)ud;
    struct sl_upstream_req *r = sl_sim_req_data(req);
    if (r && !r->over)
        uv_timer_start(&r->timer, on_timer, 0, 0);
}

/* Routes answered at once are delivered from a 0 ms timer, so that no
 * callback runs inside start(). */
static void on_immediate(uv_timer_t *t)
{
    struct sl_upstream_req *r = t->data;
    if (!r->over)
        answer_whole(r);
}

static bool path_is(const struct sl_upstream_send *s, const char *p)
{
    size_t n = strlen(p);
    size_t len = s->path_len;
    const char *q = memchr(s->path, '?', len);
    if (q)
        len = (size_t)(q - s->path);
    return len == n && memcmp(s->path, p, n) == 0;
}

static const char *find_header(const struct sl_upstream_send *s, const char *name, size_t *len)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < s->nheaders; i++) {
        const char *h = s->headers[i];
        if (strncasecmp(h, name, n) == 0 && h[n] == ':') {
            const char *v = h + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            *len = strlen(v);
            return v;
        }
    }
    return NULL;
}

/* The answer to a route that needs no generation. */
static int answer_now(struct sl_upstream_req *r, const struct sl_upstream_send *s)
{
    struct sl_sim_backend *b = r->b;
    bool get = !strcmp(s->method, "GET") || !strcmp(s->method, "HEAD");
    r->status = 200;
    r->ctype = "application/json";
    if (path_is(s, "/health") || path_is(s, "/ping")) {
        if (get || (!strcmp(s->method, "POST") && path_is(s, "/ping")))
            return SL_OK;
    } else if (path_is(s, "/v1/models")) {
        if (get)
            return sl_sim_render_models(b->sim, unix_now(b), &r->out);
    } else if (path_is(s, "/metrics")) {
        r->ctype = "text/plain; version=0.0.4; charset=utf-8";
        if (get)
            return sl_sim_render_metrics(b->sim, &r->out);
    } else if (path_is(s, "/v1/chat/completions") || path_is(s, "/v1/completions")) {
        /* POST is served by a generation; any other method lands here. */
    } else {
        r->status = 404;
        r->ctype = "application/json";
        return sl_error_render(&r->out, 404, NULL, "Not Found", NULL);
    }
    r->status = 405;
    r->ctype = "application/json";
    return sl_error_render(&r->out, 405, NULL, "Method Not Allowed", NULL);
}

static int backend_start(struct sl_upstream_transport *t, const struct sl_upstream_send *s,
                         const struct sl_upstream_cbs *cbs, void *ud, struct sl_upstream_req **out)
{
    struct sl_sim_backend *b = (struct sl_sim_backend *)t;
    struct sl_upstream_req *r = calloc(1, sizeof *r);
    if (r == NULL)
        return SL_ENOMEM;
    r->b = b;
    r->cbs = *cbs;
    r->ud = ud;
    uv_timer_init(b->loop, &r->timer);
    r->timer.data = r;
    b->live++;
    bool chat = path_is(s, "/v1/chat/completions");
    if ((chat || path_is(s, "/v1/completions")) && !strcmp(s->method, "POST")) {
        size_t xf_len = 0;
        const char *xf = find_header(s, "X-Fault", &xf_len);
        uint64_t now = uv_now(b->loop);
        int rc = sl_sim_start(b->sim, chat ? SL_SIM_CHAT : SL_SIM_COMPLETIONS, s->body, s->body_len,
                              xf, xf_len, now, unix_now(b), &r->req);
        if (rc != SL_OK) {
            req_close(r);
            return rc;
        }
        r->stream = sl_sim_req_is_stream(r->req);
        r->status = sl_sim_req_status(r->req);
        r->ctype = r->stream ? "text/event-stream; charset=utf-8" : "application/json";
        sl_buf_init(&r->out, r->stream ? SL_SIM_OUT_BYTES : SL_SIM_BODY_BYTES);
        sl_sim_req_set_data(r->req, r);
        uv_timer_start(&r->timer, on_timer, 0, 0);
    } else {
        sl_buf_init(&r->out, 16 * 1024 * 1024);
        if (answer_now(r, s) != SL_OK) {
            req_close(r);
            return SL_ENOMEM;
        }
        uv_timer_start(&r->timer, on_immediate, 0, 0);
    }
    *out = r;
    return SL_OK;
}

static void backend_cancel(struct sl_upstream_req *r)
{
    if (r->over)
        return;
    if (r->req)
        sl_sim_abort(r->req, uv_now(r->b->loop));
    req_close(r);
}

int sl_sim_backend_new(uv_loop_t *loop, const struct sl_config *cfg, struct sl_sim_backend **out,
                       char *err, size_t errlen)
{
    struct sl_sim_backend *b = calloc(1, sizeof *b);
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return SL_ENOMEM;
    }
    b->t.name = "sim";
    b->t.start = backend_start;
    b->t.cancel = backend_cancel;
    b->loop = loop;
    b->start_ms = uv_now(loop);
    b->unix_at_start = (uint64_t)time(NULL);
    struct sl_sim_config sc = {
        .model = cfg->model,
        .max_model_len = cfg->max_model_len,
        .ttft_ms = cfg->ttft_ms,
        .itl_ms = cfg->itl_ms,
        .jitter_ms = cfg->jitter_ms,
        .max_num_seqs = cfg->max_num_seqs,
        .itl_load_pct = cfg->itl_load_pct,
        .reasoning_parser = cfg->reasoning_parser,
        .fault_json = cfg->fault,
        .wake_cb = on_wake,
        .wake_ud = b,
    };
    b->sim = sl_sim_new(&sc, err, errlen);
    if (b->sim == NULL) {
        free(b);
        return SL_EINVAL;
    }
    *out = b;
    return SL_OK;
}

struct sl_upstream_transport *sl_sim_backend_transport(struct sl_sim_backend *b)
{
    return &b->t;
}

void sl_sim_backend_free(struct sl_sim_backend *b)
{
    if (b->live > 0) {
        b->freeing = true; /* the last request's close frees the backend */
        return;
    }
    sl_sim_free(b->sim);
    free(b);
}
