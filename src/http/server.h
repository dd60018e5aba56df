/* server.h - HTTP/1.1 server on libuv.
 * Owns: listening, connections, reading and bounding requests (through the
 * sans-I/O parser), 100-continue, keep-alive and pipelining (answers in
 * order), timeouts, response framing (fixed-length and chunked), write
 * backpressure, and closing. Does not own: routing or what a response says
 * (the handler), JSON, or the upstream side. */
#ifndef SL_HTTP_SERVER_H
#define SL_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "http/parser.h"

struct sl_http_server;
/* One request and its response. Owned by the server; a handler borrows it
 * from the handler call until it ends the response (respond, end, close) or
 * its abort callback returns, whichever comes first. */
struct sl_http_exchange;

/* Called once per request, in order, when its head and body are complete. */
typedef void (*sl_http_handler_cb)(struct sl_http_exchange *ex, void *ud);
/* Called at most once when the exchange dies before its response ended
 * (client gone, write bound passed, send timeout, server closing). The
 * exchange is freed after this returns. */
typedef void (*sl_http_abort_cb)(struct sl_http_exchange *ex, void *ud);

/* Starts listening on cfg->listen with cfg's limits and timeouts. cfg must
 * outlive the server. Returns SL_OK, or an error with a message in err. */
SL_WARN_UNUSED int sl_http_server_start(uv_loop_t *loop, const struct sl_config *cfg,
                                        sl_http_handler_cb handler, void *ud,
                                        struct sl_http_server **out, char *err, size_t errlen);
/* Stops accepting and closes every connection (aborting exchanges). The
 * server is freed once its handles have closed (run the loop). */
void sl_http_server_close(struct sl_http_server *srv);
/* The bound port (useful with port 0). */
int sl_http_server_port(const struct sl_http_server *srv);

/* The parsed request; pointers valid while the exchange is. */
const struct sl_http_request *sl_http_ex_request(const struct sl_http_exchange *ex);
/* The request body (NUL-terminated, len bytes). */
const char *sl_http_ex_body(const struct sl_http_exchange *ex, size_t *len);
/* Finds a request header by name (case-insensitive): true with *value
 * (borrowed, not NUL-terminated) and *len, false when absent. */
bool sl_http_ex_header(const struct sl_http_exchange *ex, const char *name, const char **value,
                       size_t *len);
uv_loop_t *sl_http_ex_loop(const struct sl_http_exchange *ex);

/* A whole response. headers: NULL or extra lines "Name: value\r\n...".
 * Content-Length and Connection are added. For HEAD the body is not sent.
 * Ends the exchange whatever it returns (SL_ECLOSED: the client is gone). */
int sl_http_ex_respond(struct sl_http_exchange *ex, int status, const char *content_type,
                       const char *headers, const char *body, size_t len);
/* An OpenAI-shaped JSON error response (oai/error.h); headers as for
 * sl_http_ex_respond (for example "Allow: POST\r\n" with a 405). Ends the
 * exchange. */
int sl_http_ex_respond_error(struct sl_http_exchange *ex, int status, const char *headers,
                             const char *message, const char *param);
/* Starts a chunked response; then sl_http_ex_write ... sl_http_ex_end. */
SL_WARN_UNUSED int sl_http_ex_start(struct sl_http_exchange *ex, int status,
                                    const char *content_type, const char *headers);
/* Starts a response of known length: sl_http_ex_write then sends the bytes
 * as they are (no chunk framing) and sl_http_ex_end adds nothing. */
SL_WARN_UNUSED int sl_http_ex_start_fixed(struct sl_http_exchange *ex, int status,
                                          const char *content_type, const char *headers,
                                          uint64_t content_length);
/* Sends data as one chunk (or as is after sl_http_ex_start_fixed). SL_ECLOSED when the connection
 * is gone or was closed because the client fell more than max_write_buffer_bytes behind (the abort
 * callback has then run). */
SL_WARN_UNUSED int sl_http_ex_write(struct sl_http_exchange *ex, const char *data, size_t len);
/* Room sl_http_ex_write_framed needs before the data (a chunk size of up to
 * 16 hex digits and its CRLF) and after it (the CRLF ending the chunk). */
#define SL_HTTP_FRAME_HEAD 18
#define SL_HTTP_FRAME_TAIL 2
/* As sl_http_ex_write, but data[-SL_HTTP_FRAME_HEAD .. -1] and
 * data[len .. len + SL_HTTP_FRAME_TAIL - 1] are the caller's to overwrite:
 * the chunk's framing is put there, so that the chunk leaves in one piece
 * (one write, no copy). */
SL_WARN_UNUSED int sl_http_ex_write_framed(struct sl_http_exchange *ex, char *data, size_t len);
/* Sends the last chunk. Ends the exchange whatever it returns. */
int sl_http_ex_end(struct sl_http_exchange *ex);
/* Cuts the connection without ending the response (the abort callback is
 * not called). Ends the exchange. */
void sl_http_ex_close(struct sl_http_exchange *ex);
/* Bytes queued for this client and not yet written to the socket. */
size_t sl_http_ex_pending(const struct sl_http_exchange *ex);
/* The most bytes that may be queued for this client
 * (max_write_buffer_bytes): a write past it closes the connection. */
size_t sl_http_ex_write_bound(const struct sl_http_exchange *ex);
void sl_http_ex_set_abort_cb(struct sl_http_exchange *ex, sl_http_abort_cb cb, void *ud);
/* Called after a write completes while sl_http_ex_pending(ex) <= below, so
 * a writer that paused at its bound can go on. Not called inside
 * sl_http_ex_* calls. */
typedef void (*sl_http_drain_cb)(struct sl_http_exchange *ex, void *ud);
void sl_http_ex_set_drain_cb(struct sl_http_exchange *ex, sl_http_drain_cb cb, void *ud,
                             size_t below);

/* ---- upgrades (WebSocket) ---- */

struct sl_http_upgraded;
/* Bytes that arrived on an upgraded connection, borrowed for the call. */
typedef void (*sl_http_up_read_cb)(void *ud, const char *p, size_t n);
/* The connection closed (the peer left, an error, the write bound, the
 * server closing). Nothing may be used after this returns. */
typedef void (*sl_http_up_close_cb)(void *ud);
/* Queued bytes fell to drain_below: a writer that paused can go on. */
typedef void (*sl_http_up_drain_cb)(void *ud);

struct sl_http_up_cbs {
    sl_http_up_read_cb on_read;
    sl_http_up_close_cb on_close;
    sl_http_up_drain_cb on_drain; /* may be NULL */
    size_t drain_below;
};

/* Answers 101 Switching Protocols with headers ("Name: value\r\n" lines)
 * and hands the connection over: ends the exchange, stops HTTP parsing and
 * timeouts; from now on bytes go to cbs->on_read (first any that came
 * behind the request, before this returns). SL_ECLOSED when the connection
 * is already gone (no callback runs then). */
SL_WARN_UNUSED int sl_http_ex_upgrade(struct sl_http_exchange *ex, const char *headers,
                                      const struct sl_http_up_cbs *cbs, void *ud,
                                      struct sl_http_upgraded **out);
/* Sends bytes as they are (bounded by max_write_buffer_bytes: past it the
 * connection closes and SL_ECLOSED comes back; on_close is not called for a
 * failure returned here). */
SL_WARN_UNUSED int sl_http_up_write(struct sl_http_upgraded *u, const char *p, size_t n);
size_t sl_http_up_pending(const struct sl_http_upgraded *u);
/* Closes once queued bytes are written; on_close is not called. */
void sl_http_up_close(struct sl_http_upgraded *u);

#endif
