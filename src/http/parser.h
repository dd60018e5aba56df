/* parser.h - HTTP/1.x request and response head parsers, sans-I/O.
 * Owns: the request and status lines, header fields, framing
 * (Content-Length, chunked, close), the bounds on all of them, and the
 * chunked body decoder. Does not own: sockets, timers, memory (headers point
 * into the caller's buffer), routing, or the responses sluice writes. */
#ifndef SL_HTTP_PARSER_H
#define SL_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

enum sl_http_method {
    SL_HTTP_OTHER = 0, /* a valid token sluice does not know: the router says 405/501 */
    SL_HTTP_GET,
    SL_HTTP_HEAD,
    SL_HTTP_POST,
    SL_HTTP_PUT,
    SL_HTTP_DELETE,
    SL_HTTP_OPTIONS,
    SL_HTTP_PATCH,
};

struct sl_http_header {
    const char *name; /* borrowed from the parsed buffer; not NUL-terminated */
    size_t name_len;
    const char *value; /* leading and trailing blanks trimmed */
    size_t value_len;
};

/* The bounds the parser enforces (from the config table). */
struct sl_http_limits {
    size_t max_header_bytes; /* request line + headers + blank line; SL_EHDRTOOBIG */
    size_t max_headers;      /* header fields; SL_ETOOMANYHDRS */
    size_t max_url_bytes;    /* request target; SL_EURITOOLONG */
    size_t max_body_bytes;   /* Content-Length or decoded chunked body; SL_EBODYTOOBIG */
};

struct sl_http_request {
    enum sl_http_method method;
    const char *method_str; /* borrowed, method_len bytes */
    size_t method_len;
    const char *target; /* borrowed: the whole request target, target_len bytes */
    size_t target_len;
    const char *path; /* the target up to '?' */
    size_t path_len;
    const char *query; /* after '?', or NULL */
    size_t query_len;
    int minor_version;              /* 0 or 1 (HTTP/1.0 or HTTP/1.1) */
    struct sl_http_header *headers; /* the caller's array */
    size_t num_headers;
    int64_t content_length; /* -1 when absent */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool keep_alive;        /* after this request, from version and Connection */
    bool expect_continue;   /* Expect: 100-continue (HTTP/1.1 only, RFC 9110 10.1.1) */
    bool expect_unknown;    /* another Expect value: the server may answer 417 */
};

/* What a head parser keeps between calls on one growing buffer, so that a
 * head arriving in many reads is not parsed again from its first byte on
 * every read (a slow 1 MiB head would cost O(n^2), a slowloris lever).
 * Caller-owned: zero it before the first call on a head, and again after
 * any result but SL_EAGAIN. Between calls the buffer may move but must keep
 * its bytes and only grow. With it, a call first searches only the new
 * bytes for the head's end (a line end, an optional CR, a LF: split across
 * reads or not) and parses the head only when it is complete, when the
 * buffer passed max_header_bytes, or when it has doubled since the last
 * parse. So an error inside an incomplete head is still found, by the time
 * the buffer is twice what it was when the error arrived, and the bytes
 * read over all calls stay under 4 times the head's (examined). */
struct sl_http_head_scan {
    size_t seen;       /* private: bytes already searched for the end */
    size_t parsed;     /* private: buffer length at the last parse */
    int tail;          /* private: where the search stood in a line end */
    uint64_t examined; /* bytes read over all calls: the work done */
};

/* Empty lines tolerated before a request line (RFC 9112 2.2: a client may
 * send a stray CRLF after a body); one more is a 400. */
#define SL_HTTP_LEADING_EMPTY_LINES_MAX 4

/* Parses the request line and headers from buf[0..len).
 * Returns SL_OK with *consumed = bytes of the head (the body starts there);
 * SL_EAGAIN when the head is not complete yet (and still within bounds);
 * otherwise an error, after which the connection must be answered and closed:
 *   SL_EBADREQ (400) malformed syntax, both Content-Length and
 *     Transfer-Encoding, conflicting Content-Lengths, obsolete line folding,
 *     a header without a name, invalid bytes;
 *   SL_EURITOOLONG (414) target over max_url_bytes (known as soon as the
 *     target's bytes pass the bound, before the line ends);
 *   SL_EHDRTOOBIG (431) head over max_header_bytes (known as soon as len
 *     passes the bound without a complete head);
 *   SL_ETOOMANYHDRS (431) more than max_headers or hdr_cap fields;
 *   SL_EBODYTOOBIG (413) Content-Length over max_body_bytes;
 *   SL_EVERSION (505) a version other than HTTP/1.0 or HTTP/1.1;
 *   SL_ENOTIMPL (501) a Transfer-Encoding other than chunked.
 * Header pointers in req point into buf and are valid while buf is. Lines may
 * end in CRLF or a bare LF.
 * req is meaningful only on SL_OK. No body: content_length -1 and !chunked.
 * path borrows from buf too, except for an absolute-form target without a
 * path ("http://host?q"), where it is the static string "/". Pipelining: the
 * next request starts at *consumed plus the body; parse it from there.
 * scan is NULL to parse buf from its start (every error is then found at
 * the byte that shows it), or the head's sl_http_head_scan when buf grows
 * by reads (see there: the work is linear, errors may be found later). */
SL_WARN_UNUSED int sl_http_parse_request(const char *buf, size_t len,
                                         const struct sl_http_limits *lim,
                                         struct sl_http_request *req, struct sl_http_header *hdrs,
                                         size_t hdr_cap, size_t *consumed,
                                         struct sl_http_head_scan *scan);

/* Finds a header by name (case-insensitive); returns the first or NULL. */
const struct sl_http_header *sl_http_find_header(const struct sl_http_request *req,
                                                 const char *name);

/* True when the comma-separated header value contains token (case-insensitive). */
bool sl_http_value_has_token(const char *value, size_t len, const char *token);

/* ---- responses (the upstream client's side) ---- */

/* How a response's body is delimited (RFC 9112 6.3). */
enum sl_http_body_kind {
    SL_HTTP_BODY_NONE,    /* 1xx, 204, 304, or the answer to HEAD */
    SL_HTTP_BODY_LENGTH,  /* Content-Length bytes */
    SL_HTTP_BODY_CHUNKED, /* Transfer-Encoding ending in chunked */
    SL_HTTP_BODY_CLOSE,   /* until the server closes the connection */
};

struct sl_http_response {
    int status;         /* 100..999 */
    int minor_version;  /* 0 or 1 */
    const char *reason; /* borrowed, reason_len bytes (may be empty) */
    size_t reason_len;
    struct sl_http_header *headers; /* the caller's array */
    size_t num_headers;
    int64_t content_length; /* -1 when absent */
    bool chunked;           /* Transfer-Encoding's last coding is chunked */
    bool keep_alive;        /* from version and Connection: the connection may
                             * carry another request after this response
                             * (false when the body runs until the close) */
};

/* Parses a status line and header fields from buf[0..len), as the request
 * parser does (same byte rules, CRLF or bare LF, no obsolete folding).
 * Returns SL_OK with *consumed = bytes of the head; SL_EAGAIN when the head
 * is not complete yet and within lim->max_header_bytes; SL_EHDRTOOBIG past
 * it; SL_ETOOMANYHDRS past lim->max_headers or hdr_cap; SL_EPROTO for
 * anything else malformed: not "HTTP/1.x NNN", a status outside 100..999,
 * conflicting or invalid Content-Length (or one over INT64_MAX),
 * Content-Length beside Transfer-Encoding, a Transfer-Encoding without
 * codings or with chunked twice, bad header bytes. A Transfer-Encoding whose
 * last coding is not chunked is no error: the body runs until the close
 * (RFC 9112 6.3), so keep_alive is false, as it is for an HTTP/1.0 head with
 * Transfer-Encoding (RFC 9112 6.1) and after 101. keep_alive assumes the
 * request was not HEAD: a HEAD answer without framing says false where the
 * connection could be kept (safe, at the cost of a new connection).
 * Leading empty lines are refused. lim->max_url_bytes and max_body_bytes
 * are not used. res is meaningful only on SL_OK; its pointers point into
 * buf; reason is the rest of the status line after the SP that follows the
 * status (empty when there is none). A 1xx head is returned like any other:
 * the caller skips it and parses the next head from *consumed (with a
 * zeroed scan). scan: as for sl_http_parse_request. */
SL_WARN_UNUSED int sl_http_parse_response(const char *buf, size_t len,
                                          const struct sl_http_limits *lim,
                                          struct sl_http_response *res, struct sl_http_header *hdrs,
                                          size_t hdr_cap, size_t *consumed,
                                          struct sl_http_head_scan *scan);

/* How the body of res is delimited; head_request: it answers a HEAD. */
enum sl_http_body_kind sl_http_response_body(const struct sl_http_response *res, bool head_request);

/* Finds a response header by name (case-insensitive); the first or NULL. */
const struct sl_http_header *sl_http_find_response_header(const struct sl_http_response *res,
                                                          const char *name);

/* Decoder of a chunked body, a request's or a response's: chunk-size
 * [; extensions] CRLF data CRLF ... 0 CRLF [trailers] CRLF. Extensions and
 * trailers are skipped, bounded by SL_LIMIT_CHUNK_EXT_BYTES and
 * SL_LIMIT_TRAILER_BYTES. Bad framing is SL_EBADREQ either way: a client
 * of an upstream reads it as a peer that does not speak HTTP. */
struct sl_http_chunked {
    int state;          /* private */
    uint64_t remaining; /* private: bytes left in the current chunk */
    size_t line_bytes;  /* private: bytes of the current size/extension/trailer line */
    size_t trailer_bytes;
    uint64_t total; /* decoded body bytes so far */
    uint64_t max;   /* max_body_bytes */
};

void sl_http_chunked_init(struct sl_http_chunked *d, uint64_t max_body_bytes);

/* Feeds in[0..len): decoded data is appended to body. *consumed gets the
 * bytes used (always all of them unless the body ends or fails inside in).
 * Returns SL_OK when the final chunk and trailers are complete (bytes after
 * *consumed belong to the next request), SL_EAGAIN when more input is needed,
 * SL_EBADREQ on bad framing (and on extensions or trailers over their
 * bounds), SL_EBODYTOOBIG past max_body_bytes (or when body's own ceiling
 * refuses the data; what fits is appended first, so the result never depends
 * on how the input was split), SL_ENOMEM. Errors are sticky: later calls
 * return the same code and consume nothing; after SL_OK they return SL_OK
 * and consume nothing. */
SL_WARN_UNUSED int sl_http_chunked_feed(struct sl_http_chunked *d, const char *in, size_t len,
                                        size_t *consumed, struct sl_buf *body);

/* The same decoder, without copying: reads in[0..len) up to the end of the
 * next run of chunk data and points *data at it (borrowed from in, *data_len
 * bytes, possibly 0 when the input held only framing). *consumed gets the
 * bytes used, the data included: the run always ends there, *data + *data_len
 * == in + *consumed, and no framing after it has been read yet. Each call
 * reads framing up to the first data byte, so one "4a\r\n" + 74 bytes +
 * "\r\n" chunk takes two calls: the data, then its line end. Returns SL_EAGAIN while the body goes
 * on (call again with the rest of the input, or with the next read when *consumed == len), SL_OK
 * when the final chunk and trailers are complete
 * (*data_len is then 0; bytes after *consumed are not the body's), and the
 * errors of sl_http_chunked_feed (SL_EBODYTOOBIG past max_body_bytes, whose
 * data up to the bound is returned first). Every byte of decoded data comes
 * back exactly once, however the input is split. */
SL_WARN_UNUSED int sl_http_chunked_next(struct sl_http_chunked *d, const char *in, size_t len,
                                        size_t *consumed, const char **data, size_t *data_len);

#endif
