/* sim_http.c - `sluice sim`: the simulator core served over HTTP as vLLM.
 * Owns: vLLM's routes, one timer per generation that polls the core when
 * its next bytes are due, and telling the core when a client hangs up.
 * Does not own: what the bytes are (sim.c), HTTP itself (http/server.c). */
#include "sim/sim_http.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "face/errors.h"

/* Bytes of one poll's output held before they go to the socket; a
 * non-streaming answer is held whole (n choices of up to max_model_len
 * tokens), hence the larger ceiling (memory grows only as used). */
#define SL_SIM_OUT_BYTES  (1024 * 1024)
#define SL_SIM_BODY_BYTES (256 * 1024 * 1024)

struct sl_sim_http {
    uv_loop_t *loop;
    struct sl_sim *sim;
    struct sl_http_server *server;
    uint64_t unix_at_start; /* wall seconds when the loop clock read start_ms */
    uint64_t start_ms;
};

/* One generation on one exchange. Freed in the timer's close callback. */
struct sim_call {
    uv_timer_t timer;
    struct sl_sim_http *sh;
    struct sl_sim_req *req;
    struct sl_http_exchange *ex; /* NULL once the exchange is over */
    struct sl_buf out;
    bool stream;
    bool started; /* response head sent */
};

static uint64_t unix_now(struct sl_sim_http *sh)
{
    return sh->unix_at_start + (uv_now(sh->loop) - sh->start_ms) / 1000;
}

static void on_call_closed(uv_handle_t *h)
{
    struct sim_call *call = h->data;
    sl_buf_free(&call->out);
    free(call);
}

/* Ends the call: frees the core's request and closes the timer. */
static void call_end(struct sim_call *call)
{
    if (call->req) {
        sl_sim_req_free(call->req, uv_now(call->sh->loop));
        call->req = NULL;
    }
    call->ex = NULL;
    uv_timer_stop(&call->timer);
    if (!uv_is_closing((uv_handle_t *)&call->timer))
        uv_close((uv_handle_t *)&call->timer, on_call_closed);
}

static void on_abort(struct sl_http_exchange *ex, void *ud)
{
    (void)ex;
    struct sim_call *call = ud;
    call->ex = NULL;
    if (call->req)
        sl_sim_abort(call->req, uv_now(call->sh->loop));
    call_end(call);
}

static void call_poll(struct sim_call *call);

static void on_timer(uv_timer_t *t)
{
    call_poll(t->data);
}

static void call_poll(struct sim_call *call)
{
    uint64_t now = uv_now(call->sh->loop);
    uint64_t wake = UINT64_MAX;
    int st = sl_sim_poll(call->req, now, &call->out, &wake);
    if (st < 0) {
        /* The output buffer is full: the core resumes where it stopped. */
        wake = now + 1;
        st = SL_SIM_WAIT;
    }
    struct sl_http_exchange *ex = call->ex;
    if (call->stream) {
        if (!call->started) {
            call->started = true;
            int status = sl_sim_req_status(call->req);
            if (sl_http_ex_start(ex, status, "text/event-stream; charset=utf-8", NULL) != SL_OK) {
                sl_sim_abort(call->req, now);
                call_end(call);
                return;
            }
        }
        if (sl_buf_size(&call->out) > 0) {
            int rc = sl_http_ex_write(ex, sl_buf_ptr(&call->out), sl_buf_size(&call->out));
            sl_buf_reset(&call->out);
            if (rc != SL_OK) { /* the client is gone or too far behind */
                sl_sim_abort(call->req, now);
                call_end(call);
                return;
            }
        }
    }
    if (st == SL_SIM_DROP) {
        sl_http_ex_close(ex);
        call_end(call);
        return;
    }
    if (st == SL_SIM_DONE) {
        if (call->stream) {
            sl_http_ex_end(ex);
        } else {
            sl_http_ex_respond(ex, sl_sim_req_status(call->req), "application/json", NULL,
                               sl_buf_ptr(&call->out), sl_buf_size(&call->out));
        }
        call_end(call);
        return;
    }
    if (wake != UINT64_MAX)
        uv_timer_start(&call->timer, on_timer, wake > now ? wake - now : 0, 0);
}

/* The core admitted a queued request: poll it now. */
static void on_wake(struct sl_sim_req *req, void *ud)
{
    (void)ud;
    struct sim_call *call = sl_sim_req_data(req);
    if (call && call->ex)
        uv_timer_start(&call->timer, on_timer, 0, 0);
}

static void start_generation(struct sl_sim_http *sh, struct sl_http_exchange *ex,
                             enum sl_sim_route route)
{
    size_t len, xf_len = 0;
    const char *body = sl_http_ex_body(ex, &len);
    const char *xf = NULL;
    if (!sl_http_ex_header(ex, "X-Fault", &xf, &xf_len))
        xf = NULL;
    struct sim_call *call = calloc(1, sizeof *call);
    if (call == NULL) {
        sl_http_ex_respond_error(ex, 500, NULL, "out of memory", NULL);
        return;
    }
    uint64_t now = uv_now(sh->loop);
    struct sl_sim_req *req = NULL;
    if (sl_sim_start(sh->sim, route, body, len, xf, xf_len, now, unix_now(sh), &req) != SL_OK) {
        free(call);
        sl_http_ex_respond_error(ex, 500, NULL, "out of memory", NULL);
        return;
    }
    call->sh = sh;
    call->req = req;
    call->ex = ex;
    call->stream = sl_sim_req_is_stream(req);
    sl_buf_init(&call->out, call->stream ? SL_SIM_OUT_BYTES : SL_SIM_BODY_BYTES);
    uv_timer_init(sh->loop, &call->timer);
    call->timer.data = call;
    sl_sim_req_set_data(req, call);
    sl_http_ex_set_abort_cb(ex, on_abort, call);
    call_poll(call);
}

static void respond_buf(struct sl_http_exchange *ex, int rc, struct sl_buf *b, const char *type)
{
    if (rc != SL_OK)
        sl_http_ex_respond_error(ex, 500, NULL, "out of memory", NULL);
    else
        sl_http_ex_respond(ex, 200, type, NULL, sl_buf_ptr(b), sl_buf_size(b));
}

static void route_health(struct sl_sim_http *sh, struct sl_http_exchange *ex)
{
    (void)sh;
    sl_http_ex_respond(ex, 200, NULL, NULL, "", 0); /* vLLM: empty, no type */
}

static void route_models(struct sl_sim_http *sh, struct sl_http_exchange *ex)
{
    struct sl_buf b;
    sl_buf_init(&b, 1024 * 1024);
    respond_buf(ex, sl_sim_render_models(sh->sim, unix_now(sh), &b), &b, "application/json");
    sl_buf_free(&b);
}

static void route_metrics(struct sl_sim_http *sh, struct sl_http_exchange *ex)
{
    struct sl_buf b;
    sl_buf_init(&b, 16 * 1024 * 1024);
    respond_buf(ex, sl_sim_render_metrics(sh->sim, &b), &b,
                "text/plain; version=0.0.4; charset=utf-8");
    sl_buf_free(&b);
}

static void route_chat(struct sl_sim_http *sh, struct sl_http_exchange *ex)
{
    start_generation(sh, ex, SL_SIM_CHAT);
}

static void route_completions(struct sl_sim_http *sh, struct sl_http_exchange *ex)
{
    start_generation(sh, ex, SL_SIM_COMPLETIONS);
}

#define M_GET  (1u << SL_HTTP_GET | 1u << SL_HTTP_HEAD)
#define M_POST (1u << SL_HTTP_POST)

/* vLLM's routes that the simulator serves. */
static const struct sim_route {
    const char *path;
    unsigned methods;
    const char *allow; /* the Allow header of a 405 */
    void (*fn)(struct sl_sim_http *sh, struct sl_http_exchange *ex);
} routes[] = {
    {"/health", M_GET, "Allow: GET, HEAD\r\n", route_health},
    {"/ping", M_GET | M_POST, "Allow: GET, HEAD, POST\r\n", route_health},
    {"/v1/models", M_GET, "Allow: GET, HEAD\r\n", route_models},
    {"/metrics", M_GET, "Allow: GET, HEAD\r\n", route_metrics},
    {"/v1/chat/completions", M_POST, "Allow: POST\r\n", route_chat},
    {"/v1/completions", M_POST, "Allow: POST\r\n", route_completions},
};

static void handle(struct sl_http_exchange *ex, void *ud)
{
    struct sl_sim_http *sh = ud;
    const struct sl_http_request *r = sl_http_ex_request(ex);
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const struct sim_route *rt = &routes[i];
        if (r->path_len != strlen(rt->path) || memcmp(r->path, rt->path, r->path_len) != 0)
            continue;
        if (rt->methods & (1u << r->method))
            rt->fn(sh, ex);
        else
            sl_http_ex_respond_error(ex, 405, rt->allow, "Method Not Allowed", NULL);
        return;
    }
    sl_http_ex_respond_error(ex, 404, NULL, "Not Found", NULL);
}

int sl_sim_http_start(uv_loop_t *loop, const struct sl_config *cfg, struct sl_sim_http **out,
                      char *err, size_t errlen)
{
    struct sl_sim_http *sh = calloc(1, sizeof *sh);
    if (sh == NULL) {
        snprintf(err, errlen, "out of memory");
        return SL_ENOMEM;
    }
    sh->loop = loop;
    sh->start_ms = uv_now(loop);
    sh->unix_at_start = (uint64_t)time(NULL);
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
        .wake_ud = sh,
    };
    sh->sim = sl_sim_new(&sc, err, errlen);
    if (sh->sim == NULL) {
        free(sh);
        return SL_EINVAL;
    }
    int rc = sl_http_server_start(loop, cfg, handle, sh, &sh->server, err, errlen);
    if (rc != SL_OK) {
        sl_sim_free(sh->sim);
        free(sh);
        return rc;
    }
    *out = sh;
    return SL_OK;
}

int sl_sim_http_port(const struct sl_sim_http *sh)
{
    return sl_http_server_port(sh->server);
}

void sl_sim_http_stop(struct sl_sim_http *sh)
{
    sl_http_server_close(sh->server); /* aborts every generation */
}

void sl_sim_http_free(struct sl_sim_http *sh)
{
    sl_sim_free(sh->sim);
    free(sh);
}
