/* sim.h - the simulator core: a stand-in vLLM engine, sans-I/O.
 * Owns: request validation as vLLM does it, deterministic answer text, token
 * timing (TTFT, gaps, jitter, queueing past max_num_seqs), vLLM's exact
 * response bytes (SSE chunks, JSON bodies, errors), fault injection, and the
 * engine's counters for /metrics.
 * Does not own: sockets, timers or clocks (now_ms and the wall time are passed
 * in), HTTP framing, routing. Used through upstream/sim_backend.c, the
 * gateway's in-process backend and what `sluice sim` (app/sim_http.c) serves. */
#ifndef SL_SIM_H
#define SL_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

struct sl_sim;
struct sl_sim_req;

/* Called from inside sl_sim_* calls when a queued request is admitted to the
 * running batch: the caller should sl_sim_poll() it (its wake time changed). */
typedef void (*sl_sim_wake_cb)(struct sl_sim_req *req, void *ud);

struct sl_sim_config {
    const char *model;      /* served model name */
    int64_t max_model_len;  /* reported in /v1/models */
    int64_t ttft_ms;        /* time to first token */
    int64_t itl_ms;         /* gap between tokens */
    int64_t jitter_ms;      /* +/- spread of each gap, from the request's seed */
    int64_t max_num_seqs;   /* running at once; the rest wait */
    int64_t itl_load_pct;   /* extra gap at a full batch, in percent */
    bool reasoning_parser;  /* delta.reasoning instead of <think> in content */
    const char *fault_json; /* "" or an x_fault object applied to every request */
    sl_sim_wake_cb wake_cb;
    void *wake_ud;
};

enum sl_sim_route { SL_SIM_CHAT, SL_SIM_COMPLETIONS };

/* What sl_sim_poll says of a request. */
enum sl_sim_state {
    SL_SIM_WAIT = 0, /* more bytes later: poll again at *wake_ms */
    SL_SIM_DONE = 1, /* every byte of the response has been given */
    SL_SIM_DROP = 2, /* fault: close the connection now, without ending the response */
};

/* Makes an engine. Copies what it keeps from cfg. Returns NULL and a message
 * in err when cfg->fault_json is not a valid fault. */
struct sl_sim *sl_sim_new(const struct sl_sim_config *cfg, char *err, size_t errlen);
void sl_sim_free(struct sl_sim *sim);

/* Starts one request (body as the client sent it; x_fault is the X-Fault
 * header's value or NULL). now_ms is the caller's monotonic clock; unix_s the
 * wall time for "created". Always makes a request object (also for errors:
 * its status says so and its body is an error); *out is NULL only with
 * SL_ENOMEM. */
SL_WARN_UNUSED int sl_sim_start(struct sl_sim *sim, enum sl_sim_route route, const char *body,
                                size_t len, const char *x_fault, size_t x_fault_len,
                                uint64_t now_ms, uint64_t unix_s, struct sl_sim_req **out);

/* The HTTP status to answer with (200, or vLLM's error status). */
int sl_sim_req_status(const struct sl_sim_req *req);
/* True for a text/event-stream answer (sent chunked as bytes come); false for
 * an application/json body, whole at SL_SIM_DONE. */
bool sl_sim_req_is_stream(const struct sl_sim_req *req);
/* The caller's pointer, for the wake callback. */
void sl_sim_req_set_data(struct sl_sim_req *req, void *data);
void *sl_sim_req_data(const struct sl_sim_req *req);

/* Appends to out the bytes due by now_ms and says what comes next; *wake_ms
 * gets the time to poll again (UINT64_MAX: not until the wake callback).
 * A negative SL_E* when out refuses bytes (its ceiling): nothing is lost,
 * poll again after out drains. */
int sl_sim_poll(struct sl_sim_req *req, uint64_t now_ms, struct sl_buf *out, uint64_t *wake_ms);

/* The client went away before SL_SIM_DONE: counts the request as aborted
 * (vllm:request_success_total{finished_reason="abort"}), takes it out of the
 * running gauge at once, and may admit a waiting one (wake callback). */
void sl_sim_abort(struct sl_sim_req *req, uint64_t now_ms);
/* Frees a request after DONE, DROP or abort (a running one is aborted first). */
void sl_sim_req_free(struct sl_sim_req *req, uint64_t now_ms);

/* GET /metrics: Prometheus text with vLLM's metric names. */
SL_WARN_UNUSED int sl_sim_render_metrics(struct sl_sim *sim, struct sl_buf *out);
/* GET /v1/models: vLLM's model list JSON (created = unix_s). */
SL_WARN_UNUSED int sl_sim_render_models(struct sl_sim *sim, uint64_t unix_s, struct sl_buf *out);
/* An error body in vLLM's current shape,
 * {"error":{"message":..,"type":..,"param":..,"code":status}}; param may be NULL. */
SL_WARN_UNUSED int sl_sim_render_error(struct sl_buf *out, int status, const char *type,
                                       const char *message, const char *param);

#endif
