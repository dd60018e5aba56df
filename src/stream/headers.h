/* headers.h - the header rules of every forwarded request and response:
 * end-to-end headers cross, hop-by-hop ones, Host and Content-Length are
 * rewritten (RFC 9110 7.6.1), and the status for a failure before a head.
 * Beside the transport (transport.h), whose header lines these are.
 * Does not own: sending anything. */
#ifndef SL_STREAM_HEADERS_H
#define SL_STREAM_HEADERS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "http/parser.h"
#include "stream/transport.h"

/* The end-to-end request headers as "Name: value" lines (pointers into
 * store, valid until store changes). drop_auth leaves out Authorization. */
SL_WARN_UNUSED int sl_upstream_request_headers(const struct sl_http_request *req, bool drop_auth,
                                               struct sl_buf *store, const char **lines, size_t cap,
                                               size_t *n);
/* The upstream's response headers that go back to the client, as
 * "Name: value\r\n" lines in out; *content_type points at the upstream's
 * (borrowed) or NULL; *content_length is -1 when absent. */
SL_WARN_UNUSED int sl_upstream_response_headers(const struct sl_upstream_header *hdrs, size_t n,
                                                struct sl_buf *out, const char **content_type,
                                                int64_t *content_length);
/* "/path?query" of the request, whatever form its target had. */
SL_WARN_UNUSED int sl_upstream_origin_target(const struct sl_http_request *req, struct sl_buf *out);
/* The status for an upstream failure before its head: 504 for a timeout,
 * 502 otherwise. */
int sl_upstream_error_status(int err);

#endif
