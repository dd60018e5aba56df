/* sim_backend.h - the in-process simulator as an upstream transport (vLLM's
 * routes and bytes without a socket). */
#ifndef SL_UPSTREAM_SIM_BACKEND_H
#define SL_UPSTREAM_SIM_BACKEND_H

#include <uv.h>

#include "core/config.h"
#include "sim/sim.h"
#include "stream/transport.h"

struct sl_sim_backend;

/* Builds the simulator from cfg's simulator rows. SL_EINVAL with a message
 * in err for a bad --fault. */
SL_WARN_UNUSED int sl_sim_backend_new(uv_loop_t *loop, const struct sl_config *cfg,
                                      struct sl_sim_backend **out, char *err, size_t errlen);
struct sl_upstream_transport *sl_sim_backend_transport(struct sl_sim_backend *b);
/* Frees the backend once its last request has closed (run the loop). */
void sl_sim_backend_free(struct sl_sim_backend *b);

#endif
