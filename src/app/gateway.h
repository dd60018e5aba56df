/* gateway.h - sluice's gateway: the HTTP server, the routes of the two
 * faces, and the upstream behind them (an HTTP upstream, or the in-process
 * simulator when none is configured). */
#ifndef SL_APP_GATEWAY_H
#define SL_APP_GATEWAY_H

#include <uv.h>

#include "core/config.h"

struct sl_gateway;

/* Builds the upstream side from cfg and serves cfg->listen. SL_OK, or an
 * error with a message in err. */
SL_WARN_UNUSED int sl_gateway_start(uv_loop_t *loop, const struct sl_config *cfg,
                                    struct sl_gateway **out, char *err, size_t errlen);
/* The upstream's name ("sim" or its base URL). */
const char *sl_gateway_upstream(const struct sl_gateway *gw);
/* Stops serving; run the loop until handles close, then free. */
void sl_gateway_stop(struct sl_gateway *gw);
void sl_gateway_free(struct sl_gateway *gw);

#endif
