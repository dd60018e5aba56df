/* h1.h - sluice's own HTTP/1.1 upstream transport (plain http://) on libuv.
 * Owns: requests to one upstream base URL over a pool of kept-alive
 * connections. Does not own: routing between upstreams, what the body means,
 * TLS (https:// upstreams go through upstream/client.c, libcurl). */
#ifndef SL_UPSTREAM_H1_H
#define SL_UPSTREAM_H1_H

#include <stdint.h>
#include <uv.h>

#include "stream/transport.h"

struct sl_upstream_h1;

struct sl_upstream_h1_opts {
    int64_t connect_timeout_ms;
    int64_t first_byte_timeout_ms; /* from the start to the response head */
    int64_t stall_timeout_ms;      /* between body bytes once the head came */
    int64_t max_idle_connections;  /* kept alive for reuse */
    int64_t idle_timeout_ms;       /* a kept-alive connection unused this long is closed */
    int64_t resolve_ttl_ms;        /* the host's addresses are resolved again after this */
    const char *auth_header;       /* "Authorization: Bearer ..." to send, or NULL (copied) */
};

/* True when base_url is one this transport serves: "http://host[:port][/prefix]". */
bool sl_upstream_h1_handles(const char *base_url);

/* A client for base_url (see sl_upstream_h1_handles). SL_EINVAL for a URL
 * it cannot serve, SL_ENOMEM. */
SL_WARN_UNUSED int sl_upstream_h1_new(uv_loop_t *loop, const char *base_url,
                                      const struct sl_upstream_h1_opts *opts,
                                      struct sl_upstream_h1 **out);
struct sl_upstream_transport *sl_upstream_h1_transport(struct sl_upstream_h1 *c);
/* Host name resolutions started so far (0 for a numeric host): one serves
 * every connection made within resolve_ttl_ms. For tests and logs. */
uint64_t sl_upstream_h1_resolves(const struct sl_upstream_h1 *c);
/* Closes the idle connections and frees the client once every handle has
 * closed (run the loop). Every request must have ended or been cancelled. */
void sl_upstream_h1_free(struct sl_upstream_h1 *c);

#endif
