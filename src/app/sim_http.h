/* sim_http.h - `sluice sim`: the simulator core served over HTTP with vLLM's
 * routes (/health, /v1/models, /metrics, /v1/chat/completions,
 * /v1/completions). Owns the glue between the HTTP server and the core. */
#ifndef SL_APP_SIM_HTTP_H
#define SL_APP_SIM_HTTP_H

#include <uv.h>

#include "core/config.h"
#include "http/server.h"
#include "sim/sim.h"

struct sl_sim_http;

/* Builds the simulator from cfg and serves it on cfg->listen. */
SL_WARN_UNUSED int sl_sim_http_start(uv_loop_t *loop, const struct sl_config *cfg,
                                     struct sl_sim_http **out, char *err, size_t errlen);
int sl_sim_http_port(const struct sl_sim_http *sh);
/* Stops serving (aborting generations); run the loop, then free. */
void sl_sim_http_stop(struct sl_sim_http *sh);
void sl_sim_http_free(struct sl_sim_http *sh);

#endif
