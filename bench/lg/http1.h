/* http1.h - the load generator's HTTP/1.1 response reader, sans-I/O.
 * Owns: the status line and the few header fields a client needs (framing,
 * keep-alive), skipping 1xx responses, and the body's framing: chunked
 * transfer coding (sizes, extensions, trailers), Content-Length, or until
 * close. Does not own: sockets, clocks, what the body means (SSE). */
#ifndef LG_HTTP1_H
#define LG_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

/* Status line plus header fields of one response. sluice, vLLM, nginx and
 * HAProxy send a few hundred bytes; 16 KiB is nginx's client-side order. */
#define LG_HTTP1_HEAD_MAX 16384
/* Bytes of chunk extensions plus trailers per response: nobody we measure
 * sends any, so the bound is tight. */
#define LG_HTTP1_TRAILER_MAX 8192
/* Hex digits of a chunk size: 15 keeps the size below 2^60. */
#define LG_HTTP1_CHUNK_DIGITS_MAX 15

enum lg_http1_framing {
    LG_HTTP1_NONE,    /* 204 or 304: no body */
    LG_HTTP1_LENGTH,  /* Content-Length */
    LG_HTTP1_CHUNKED, /* Transfer-Encoding: chunked */
    LG_HTTP1_CLOSE,   /* neither: the body ends when the server closes */
};

enum lg_http1_ev_kind {
    LG_HTTP1_EV_HEAD, /* status and framing are known (r->status, ...) */
    LG_HTTP1_EV_DATA, /* body bytes (dechunked) */
    LG_HTTP1_EV_END,  /* the body ended by its framing (not by close) */
};

struct lg_http1_ev {
    enum lg_http1_ev_kind kind;
    const char *data; /* EV_DATA: borrowed from the caller's input */
    size_t len;
};

struct lg_http1_resp {
    /* public, read-only: valid from EV_HEAD on */
    int status;
    bool keep_alive; /* the connection may carry the next request */
    enum lg_http1_framing framing;
    uint64_t length; /* LG_HTTP1_LENGTH: the Content-Length */
    /* private */
    struct sl_buf head; /* the head so far (bounded by LG_HTTP1_HEAD_MAX) */
    size_t line_len;    /* bytes of the head line being scanned, CR excluded */
    int state;
    int cstate;          /* chunked sub-state */
    uint64_t left;       /* body bytes left in this chunk or Content-Length */
    unsigned digits;     /* hex digits of the chunk size seen */
    size_t trailer_used; /* extension and trailer bytes seen */
    int err;             /* sticky */
};

/* Starts a reader for one response. Allocates nothing until the head is
 * read. */
void lg_http1_resp_init(struct lg_http1_resp *r);
/* Ready for the next response on the same connection; keeps allocations. */
void lg_http1_resp_reset(struct lg_http1_resp *r);
/* Frees the head buffer; init again before reuse. */
void lg_http1_resp_free(struct lg_http1_resp *r);

/* Reads in[0..len) up to the next event. Returns 1 with *ev filled and
 * *consumed = bytes used (call again with the rest, even when none are
 * left: EV_END may follow without input); 0 when all input was used with no
 * event; SL_EPROTO for a malformed status line, header or chunk framing,
 * SL_ETOOBIG past a bound, SL_ENOMEM. Errors are sticky. After EV_END
 * the reader returns 0 and consumes nothing until reset: bytes after the
 * response belong to nobody (we never pipeline). */
SL_WARN_UNUSED int lg_http1_resp_next(struct lg_http1_resp *r, const char *in, size_t len,
                                      size_t *consumed, struct lg_http1_ev *ev);

/* The server closed the connection. Returns true when that ends the body
 * cleanly (LG_HTTP1_CLOSE framing, head complete), false when the response
 * was cut (or already complete: check EV_END yourself). */
bool lg_http1_resp_eof(struct lg_http1_resp *r);

#endif
