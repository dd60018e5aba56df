/* client.h - the HTTP upstream transport (libcurl multi on libuv).
 * Owns: requests to one upstream base URL over kept-alive connections.
 * Does not own: routing between upstreams, what the body means. */
#ifndef SL_UPSTREAM_CLIENT_H
#define SL_UPSTREAM_CLIENT_H

#include <uv.h>

#include "core/buf.h"
#include "stream/transport.h"

struct sl_upstream_client;

struct sl_upstream_client_opts {
    int64_t connect_timeout_ms;
    int64_t first_byte_timeout_ms; /* from the start to the response head */
    int64_t stall_timeout_ms;      /* between body bytes once the head came */
    int64_t buffer_bytes;          /* curl's receive buffer per transfer */
    int64_t max_idle_connections;  /* kept alive for reuse */
    const char *auth_header;       /* "Authorization: Bearer ..." to send, or NULL (copied) */
};

/* A client for base_url ("http://host:port", optionally with a path prefix).
 * SL_ENOMEM on failure. */
SL_WARN_UNUSED int sl_upstream_client_new(uv_loop_t *loop, const char *base_url,
                                          const struct sl_upstream_client_opts *opts,
                                          struct sl_upstream_client **out);
struct sl_upstream_transport *sl_upstream_client_transport(struct sl_upstream_client *c);
/* Frees the client once its handles close (run the loop). Every request
 * must have ended or been cancelled. */
void sl_upstream_client_free(struct sl_upstream_client *c);

#endif
