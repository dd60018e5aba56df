/* transport.h - one request to an upstream, whatever carries it: what a
 * stream needs from below, defined here so that stream/ knows no transport.
 * Owns: the callbacks through which an upstream answer arrives (head, body
 * bytes, end), and the transport interface that upstream/ implements (h1.c,
 * client.c with libcurl, the in-process simulator in sim_backend.c), so the
 * gateway treats them alike. Does not own: parsing the answer, routing. */
#ifndef SL_STREAM_TRANSPORT_H
#define SL_STREAM_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct sl_upstream_req;

/* A response header, borrowed for the duration of the on_head call. */
struct sl_upstream_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct sl_upstream_cbs {
    /* The status line and headers arrived. */
    void (*on_head)(void *ud, int status, const struct sl_upstream_header *hdrs, size_t nhdrs);
    /* Body bytes (chunked framing removed), borrowed for the call. Return
     * false to stop the transfer (as sl_upstream_cancel; on_end not called). */
    bool (*on_data)(void *ud, const char *p, size_t n);
    /* The transfer ended: SL_OK (complete body), SL_EUNAVAIL (could not
     * connect), SL_EPROTO (not HTTP), SL_ETIMEDOUT (connect, first byte or
     * stall timeout; *what says which), SL_ECLOSED (closed mid-body),
     * SL_ENOMEM (sluice ran out of memory). The request is freed after this
     * returns. */
    void (*on_end)(void *ud, int err, const char *what);
};

/* What to send. Every pointer is borrowed until sl_upstream_start returns
 * (the transport copies what it keeps). */
struct sl_upstream_send {
    const char *method;
    const char *path; /* path and query, starting with '/' */
    size_t path_len;
    /* End-to-end request headers to forward, "Name: value" each; the
     * transport adds Host, Content-Length and its own connection headers. */
    const char *const *headers;
    size_t nheaders;
    const char *body;
    size_t body_len;
};

struct sl_upstream_transport {
    const char *name; /* for logs and the stream's "upstream" field */
    bool sets_auth;   /* sends its own Authorization: drop the client's */
    /* Starts a request; SL_OK with *out, or SL_ENOMEM. Callbacks never run
     * inside this call. */
    int (*start)(struct sl_upstream_transport *t, const struct sl_upstream_send *send,
                 const struct sl_upstream_cbs *cbs, void *ud, struct sl_upstream_req **out);
    /* Abandons a request: the upstream sees the connection close (vLLM then
     * aborts the generation). No callback runs after this. */
    void (*cancel)(struct sl_upstream_req *req);
};

#endif
