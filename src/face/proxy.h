/* proxy.h - pass-through to an upstream (paths sluice does not serve), and
 * the header rules every forwarded request and response follows. */
#ifndef SL_FACE_PROXY_H
#define SL_FACE_PROXY_H

#include "http/server.h"
#include "stream/transport.h"

/* Sends the exchange's request to t unchanged (but for hop-by-hop headers)
 * and its answer back unchanged. Takes over the exchange. */
void sl_proxy_forward(struct sl_http_exchange *ex, struct sl_upstream_transport *t);

#endif
