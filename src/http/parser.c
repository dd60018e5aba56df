/* parser.c - HTTP/1.1 request head parser and chunked body decoder.
 * Owns: byte classes, the request line, header fields, the framing rules
 * (Content-Length, Transfer-Encoding, Connection, Expect) and the chunked
 * decoder's state machine. Does not own: memory (nothing is allocated here),
 * sockets, timers, or the status each error becomes (the server decides). */
#include "http/parser.h"

#include <assert.h>
#include <string.h>

#include "core/limits.h"

/* tchar (RFC 9110 5.6.2): the bytes of a method or a field name. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A request target holds visible ASCII only: no blanks, controls, DEL or
 * bytes past 0x7F (clients percent-encode those). */
static bool is_target_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

/* field-value bytes (RFC 9110 5.5): VCHAR, obs-text, SP and HTAB. Every
 * other control, NUL and DEL among them, is refused. */
static bool is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static unsigned char ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* True when s[0..n) equals the lower-case NUL-terminated lit, ignoring ASCII
 * case. */
static bool ieq(const char *s, size_t n, const char *lit)
{
    size_t i = 0;
    for (; i < n; i++) {
        if (lit[i] == '\0' ||
            ascii_lower((unsigned char)s[i]) != ascii_lower((unsigned char)lit[i]))
            return false;
    }
    return lit[i] == '\0';
}

/* Steps through a comma-separated list (RFC 9110 5.6.1) from *pos: sets the
 * next element, blanks trimmed, and returns true; false at the end. Empty
 * elements are returned as such (len 0) so callers may refuse them. */
static bool next_element(const char *v, size_t n, size_t *pos, const char **elem, size_t *elen)
{
    size_t i = *pos;
    if (i > n)
        return false;
    while (i < n && is_blank(v[i]))
        i++;
    size_t start = i;
    while (i < n && v[i] != ',')
        i++;
    size_t stop = i;
    while (stop > start && is_blank(v[stop - 1]))
        stop--;
    *elem = v + start;
    *elen = stop - start;
    *pos = i + 1; /* past the comma, or n + 1 at the end */
    return true;
}

bool sl_http_value_has_token(const char *value, size_t len, const char *token)
{
    size_t pos = 0;
    const char *e;
    size_t elen;
    while (next_element(value, len, &pos, &e, &elen)) {
        if (ieq(e, elen, token))
            return true;
    }
    return false;
}

const struct sl_http_header *sl_http_find_header(const struct sl_http_request *req,
                                                 const char *name)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct sl_http_header *h = &req->headers[i];
        if (ieq(h->name, h->name_len, name))
            return h;
    }
    return NULL;
}

/* Methods are case-sensitive (RFC 9110 9.1): "get" is a token, not GET. */
static enum sl_http_method method_of(const char *s, size_t n)
{
    static const struct {
        const char *name;
        enum sl_http_method method;
    } known[] = {
        {"GET", SL_HTTP_GET},     {"HEAD", SL_HTTP_HEAD},     {"POST", SL_HTTP_POST},
        {"PUT", SL_HTTP_PUT},     {"DELETE", SL_HTTP_DELETE}, {"OPTIONS", SL_HTTP_OPTIONS},
        {"PATCH", SL_HTTP_PATCH},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strlen(known[i].name) == n && memcmp(known[i].name, s, n) == 0)
            return known[i].method;
    }
    return SL_HTTP_OTHER;
}

/* Length of a leading "http://" or "https://" (any case), else 0. */
static size_t scheme_len(const char *t, size_t n)
{
    if (n >= 7 && ieq(t, 7, "http://"))
        return 7;
    if (n >= 8 && ieq(t, 8, "https://"))
        return 8;
    return 0;
}

/* Checks the target's form (RFC 9112 3.2) and splits path and query at the
 * first '?'. Origin-form "/p?q"; asterisk-form "*" for OPTIONS only;
 * absolute-form "http://host/p?q" (what a proxy-aware client may send), whose
 * path is the static "/" when the URI has none. Authority-form (CONNECT) is
 * refused: sluice tunnels nothing. */
static int split_target(struct sl_http_request *req)
{
    const char *t = req->target;
    size_t n = req->target_len;
    size_t path0 = 0;
    if (t[0] == '*') {
        if (n != 1 || req->method != SL_HTTP_OPTIONS)
            return SL_EBADREQ;
        req->path = t;
        req->path_len = 1;
        return SL_OK;
    }
    if (t[0] != '/') {
        size_t s = scheme_len(t, n);
        if (s == 0)
            return SL_EBADREQ;
        path0 = s;
        while (path0 < n && t[path0] != '/' && t[path0] != '?')
            path0++;
        if (path0 == s) /* no host */
            return SL_EBADREQ;
    }
    const char *q = memchr(t + path0, '?', n - path0);
    size_t path_end = q ? (size_t)(q - t) : n;
    if (path_end == path0) {
        req->path = "/";
        req->path_len = 1;
    } else {
        req->path = t + path0;
        req->path_len = path_end - path0;
    }
    if (q) {
        req->query = q + 1;
        req->query_len = n - path_end - 1;
    }
    return SL_OK;
}

/* At buf[*p] a line must end: CRLF or a bare LF. Returns SL_OK and moves *p
 * past it, more when the bytes stop first, SL_EBADREQ for anything else (a
 * CR alone included). */
static int end_of_line(const char *buf, size_t end, size_t *p, int more)
{
    size_t i = *p;
    if (i == end)
        return more;
    if (buf[i] == '\n') {
        *p = i + 1;
        return SL_OK;
    }
    if (buf[i] != '\r')
        return SL_EBADREQ;
    if (i + 1 == end)
        return more;
    if (buf[i + 1] != '\n')
        return SL_EBADREQ;
    *p = i + 2;
    return SL_OK;
}

/* What the framing headers said so far. */
struct head_state {
    bool have_cl;
    uint64_t cl;
    unsigned te_chunked; /* "chunked" codings over all Transfer-Encoding fields */
    unsigned te_other;   /* any other coding */
    bool conn_close;
    bool conn_keep_alive;
    bool expect_continue;
    bool expect_unknown;
};

/* A Content-Length value: 1*DIGIT, or a list of equal ones ("5, 5", which
 * some proxies produce when merging fields). Values too big for uint64 are
 * saturated, which is over any body bound. */
static int parse_content_length(const char *v, size_t n, uint64_t *out)
{
    size_t pos = 0;
    const char *e;
    size_t elen;
    bool first = true;
    while (next_element(v, n, &pos, &e, &elen)) {
        if (elen == 0)
            return SL_EBADREQ;
        uint64_t x = 0;
        for (size_t i = 0; i < elen; i++) {
            if (e[i] < '0' || e[i] > '9')
                return SL_EBADREQ;
            unsigned d = (unsigned)(e[i] - '0');
            x = x > (UINT64_MAX - d) / 10 ? UINT64_MAX : x * 10 + d;
        }
        if (!first && x != *out)
            return SL_EBADREQ;
        *out = x;
        first = false;
    }
    /* An empty value ("Content-Length: ") frames nothing: refuse it. */
    return first ? SL_EBADREQ : SL_OK;
}

/* Applies one complete header field to the framing state. Checks run in
 * the order the fields arrive, so an error is found at the same byte
 * whatever the split of the input. */
static int apply_header(struct head_state *st, const struct sl_http_request *req,
                        const struct sl_http_header *h, const struct sl_http_limits *lim)
{
    if (ieq(h->name, h->name_len, "content-length")) {
        if (st->te_chunked || st->te_other) /* request smuggling */
            return SL_EBADREQ;
        uint64_t v = 0;
        int rc = parse_content_length(h->value, h->value_len, &v);
        if (rc != SL_OK)
            return rc;
        if (st->have_cl && v != st->cl)
            return SL_EBADREQ;
        if (v > lim->max_body_bytes || v > (uint64_t)INT64_MAX)
            return SL_EBODYTOOBIG;
        st->have_cl = true;
        st->cl = v;
    } else if (ieq(h->name, h->name_len, "transfer-encoding")) {
        /* An HTTP/1.0 peer does not know chunked: a proxy in front may
         * frame by Content-Length or close where we frame by chunks. */
        if (req->minor_version == 0 || st->have_cl)
            return SL_EBADREQ;
        size_t pos = 0;
        const char *e;
        size_t elen;
        while (next_element(h->value, h->value_len, &pos, &e, &elen)) {
            if (elen == 0)
                continue; /* RFC 9110 5.6.1: empty list elements are ignored */
            if (ieq(e, elen, "chunked"))
                st->te_chunked++;
            else
                st->te_other++;
        }
        if (st->te_other)
            return SL_ENOTIMPL;
        if (st->te_chunked != 1) /* none at all, or chunked applied twice */
            return SL_EBADREQ;
    } else if (ieq(h->name, h->name_len, "connection")) {
        if (sl_http_value_has_token(h->value, h->value_len, "close"))
            st->conn_close = true;
        if (sl_http_value_has_token(h->value, h->value_len, "keep-alive"))
            st->conn_keep_alive = true;
    } else if (ieq(h->name, h->name_len, "expect")) {
        if (ieq(h->value, h->value_len, "100-continue"))
            st->expect_continue = true;
        else if (h->value_len > 0)
            st->expect_unknown = true;
    }
    return SL_OK;
}

int sl_http_parse_request(const char *buf, size_t len, const struct sl_http_limits *lim,
                          struct sl_http_request *req, struct sl_http_header *hdrs, size_t hdr_cap,
                          size_t *consumed)
{
    assert(buf != NULL || len == 0);
    assert(lim != NULL && req != NULL && consumed != NULL);
    assert(hdrs != NULL || hdr_cap == 0);

    *req = (struct sl_http_request){.headers = hdrs, .content_length = -1};
    *consumed = 0;

    /* Bytes past max_header_bytes are never looked at: running out of the
     * scanned bytes means "need more" below the bound and 431 past it. */
    size_t end = len < lim->max_header_bytes ? len : lim->max_header_bytes;
    const int more = len > lim->max_header_bytes ? SL_EHDRTOOBIG : SL_EAGAIN;
    size_t p = 0;
    int rc;

    /* RFC 9112 2.2: a server SHOULD ignore at least one empty line before
     * the request line (clients sometimes send a stray CRLF after a body). */
    for (unsigned empty = 0;; empty++) {
        if (p == end)
            return more;
        if (buf[p] != '\r' && buf[p] != '\n')
            break;
        if (empty == SL_HTTP_LEADING_EMPTY_LINES_MAX)
            return SL_EBADREQ;
        rc = end_of_line(buf, end, &p, more);
        if (rc != SL_OK)
            return rc;
    }

    /* method SP */
    size_t m0 = p;
    while (p < end && is_tchar((unsigned char)buf[p]))
        p++;
    if (p == end)
        return more;
    if (buf[p] != ' ' || p == m0)
        return SL_EBADREQ;
    req->method_str = buf + m0;
    req->method_len = p - m0;
    req->method = method_of(req->method_str, req->method_len);
    p++;

    /* request-target SP; 414 as soon as the target passes its bound. */
    size_t t0 = p;
    while (p < end && is_target_char((unsigned char)buf[p])) {
        p++;
        if (p - t0 > lim->max_url_bytes)
            return SL_EURITOOLONG;
    }
    if (p == end)
        return more;
    if (buf[p] != ' ' || p == t0)
        return SL_EBADREQ;
    req->target = buf + t0;
    req->target_len = p - t0;
    rc = split_target(req);
    if (rc != SL_OK)
        return rc;
    p++;

    /* HTTP-version = "HTTP/" DIGIT "." DIGIT, then the line end. A well-formed
     * version other than 1.0 or 1.1 is a 505, anything else a 400. */
    static const char version[] = "HTTP/d.d";
    size_t v0 = p;
    for (size_t k = 0; k < sizeof version - 1; k++, p++) {
        if (p == end)
            return more;
        char c = buf[p];
        bool ok = version[k] == 'd' ? c >= '0' && c <= '9' : c == version[k];
        if (!ok)
            return SL_EBADREQ;
    }
    rc = end_of_line(buf, end, &p, more);
    if (rc != SL_OK)
        return rc;
    if (buf[v0 + 5] != '1' || (buf[v0 + 7] != '0' && buf[v0 + 7] != '1'))
        return SL_EVERSION;
    req->minor_version = buf[v0 + 7] - '0';

    size_t cap = hdr_cap < lim->max_headers ? hdr_cap : lim->max_headers;
    if (cap > SL_LIMIT_HEADERS_MAX)
        cap = SL_LIMIT_HEADERS_MAX;
    struct head_state st = {0};
    size_t n = 0;
    for (;;) {
        if (p == end)
            return more;
        char c = buf[p];
        if (c == '\r' || c == '\n') {
            rc = end_of_line(buf, end, &p, more);
            if (rc != SL_OK)
                return rc;
            break;
        }
        /* obs-fold, or blanks before the first field (RFC 9112 2.2, 5.2):
         * both are refused rather than guessed at. */
        if (is_blank(c))
            return SL_EBADREQ;
        if (n == cap)
            return SL_ETOOMANYHDRS;

        size_t name0 = p;
        while (p < end && is_tchar((unsigned char)buf[p]))
            p++;
        if (p == end)
            return more;
        if (buf[p] != ':' || p == name0) /* a blank before ':' included */
            return SL_EBADREQ;
        size_t name_len = p - name0;
        p++;
        while (p < end && is_blank(buf[p]))
            p++;
        size_t val0 = p;
        while (p < end && is_value_char((unsigned char)buf[p]))
            p++;
        size_t val_end = p;
        rc = end_of_line(buf, end, &p, more); /* a control byte fails here */
        if (rc != SL_OK)
            return rc;
        while (val_end > val0 && is_blank(buf[val_end - 1]))
            val_end--;

        struct sl_http_header *h = &hdrs[n++];
        *h = (struct sl_http_header){
            .name = buf + name0,
            .name_len = name_len,
            .value = buf + val0,
            .value_len = val_end - val0,
        };
        req->num_headers = n;
        rc = apply_header(&st, req, h, lim);
        if (rc != SL_OK)
            return rc;
    }

    if (st.have_cl)
        req->content_length = (int64_t)st.cl;
    req->chunked = st.te_chunked == 1;
    if (req->minor_version == 1)
        req->keep_alive = !st.conn_close;
    else
        req->keep_alive = st.conn_keep_alive && !st.conn_close;
    /* RFC 9110 10.1.1: a 100-continue expectation in HTTP/1.0 is ignored. */
    req->expect_continue = st.expect_continue && req->minor_version == 1;
    req->expect_unknown = st.expect_unknown;
    *consumed = p;
    return SL_OK;
}

/* Chunked decoder states; sl_http_chunked.state holds one of these, or a
 * negative SL_E* code once the body has failed (errors are sticky). */
enum chunk_state {
    CHUNK_SIZE = 0, /* hex digits of a chunk size */
    CHUNK_SIZE_WS,  /* blanks after the size: only ';' or the line end follow */
    CHUNK_EXT,      /* a chunk extension, skipped */
    CHUNK_SIZE_LF,  /* the size line's CR was seen */
    CHUNK_DATA,     /* remaining bytes of chunk data */
    CHUNK_DATA_CR,  /* the line end after chunk data */
    CHUNK_DATA_LF,  /* its CR was seen */
    CHUNK_TRAILER,  /* start of a trailer field or of the final empty line */
    CHUNK_TRAILER_LINE,
    CHUNK_TRAILER_LF,
    CHUNK_END_LF, /* the final empty line's CR was seen */
    CHUNK_DONE,
};

void sl_http_chunked_init(struct sl_http_chunked *d, uint64_t max_body_bytes)
{
    *d = (struct sl_http_chunked){.state = CHUNK_SIZE, .max = max_body_bytes};
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = ascii_lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Counts one byte of a size line (size and extensions) or of the trailer
 * section. Both are bounded tightly: they carry nothing sluice uses. */
static bool within(size_t *counter, size_t bound)
{
    return ++*counter <= bound;
}

int sl_http_chunked_feed(struct sl_http_chunked *d, const char *in, size_t len, size_t *consumed,
                         struct sl_buf *body)
{
    assert(d != NULL && consumed != NULL && body != NULL);
    assert(in != NULL || len == 0);
    *consumed = 0;
    if (d->state < 0)
        return d->state;
    if (d->state == CHUNK_DONE)
        return SL_OK;

    size_t i = 0;
    int rc = SL_EBADREQ; /* what a goto fail means unless set otherwise */
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        switch (d->state) {
        case CHUNK_SIZE: {
            int x = hex_value(c);
            if (x >= 0) {
                if (d->remaining > (UINT64_MAX >> 4))
                    goto fail;
                d->remaining = d->remaining << 4 | (uint64_t)x;
                /* Refused at the digit that crosses the bound, before any data. */
                if (d->remaining > d->max - d->total) {
                    rc = SL_EBODYTOOBIG;
                    goto fail;
                }
                if (!within(&d->line_bytes, SL_LIMIT_CHUNK_EXT_BYTES))
                    goto fail;
                break;
            }
            if (d->line_bytes == 0) /* no digits */
                goto fail;
            if (c == '\r') {
                d->state = CHUNK_SIZE_LF;
                break;
            }
            if (c == '\n')
                goto size_line_done;
            if (c == ';')
                d->state = CHUNK_EXT;
            else if (is_blank((char)c))
                d->state = CHUNK_SIZE_WS;
            else
                goto fail;
            if (!within(&d->line_bytes, SL_LIMIT_CHUNK_EXT_BYTES))
                goto fail;
            break;
        }
        case CHUNK_SIZE_WS: /* BWS before ';' (RFC 9112 7.1.1) */
        case CHUNK_EXT:
            if (c == '\r') {
                d->state = CHUNK_SIZE_LF;
                break;
            }
            if (c == '\n')
                goto size_line_done;
            if (d->state == CHUNK_SIZE_WS && c == ';')
                d->state = CHUNK_EXT;
            else if (d->state == CHUNK_SIZE_WS ? !is_blank((char)c) : !is_value_char(c))
                goto fail;
            if (!within(&d->line_bytes, SL_LIMIT_CHUNK_EXT_BYTES))
                goto fail;
            break;
        case CHUNK_SIZE_LF:
            if (c != '\n')
                goto fail;
            goto size_line_done;
        case CHUNK_DATA: {
            size_t n = len - i;
            if (n > d->remaining)
                n = (size_t)d->remaining;
            /* Take what the body's own ceiling allows, then fail: the result
             * does not depend on how the input was split. */
            size_t held = sl_buf_size(body);
            size_t room = held < body->max ? body->max - held : 0;
            bool refused = n > room;
            if (refused)
                n = room;
            int arc = sl_buf_append(body, in + i, n);
            if (arc != SL_OK) {
                rc = arc == SL_ETOOBIG ? SL_EBODYTOOBIG : arc;
                goto fail;
            }
            i += n;
            d->remaining -= n;
            d->total += n;
            if (refused) {
                rc = SL_EBODYTOOBIG;
                goto fail;
            }
            if (d->remaining == 0)
                d->state = CHUNK_DATA_CR;
            continue; /* i has moved already */
        }
        case CHUNK_DATA_CR:
            if (c == '\r')
                d->state = CHUNK_DATA_LF;
            else if (c == '\n')
                d->state = CHUNK_SIZE;
            else
                goto fail;
            break;
        case CHUNK_DATA_LF:
            if (c != '\n')
                goto fail;
            d->state = CHUNK_SIZE;
            break;
        case CHUNK_TRAILER:
            if (c == '\r') {
                d->state = CHUNK_END_LF;
                break;
            }
            if (c == '\n')
                goto done;
            d->state = CHUNK_TRAILER_LINE;
            continue; /* the same byte starts the field line */
        case CHUNK_TRAILER_LINE:
            /* Every trailer line has a byte counted here, so the bound also
             * bounds the number of lines. */
            if (c == '\r')
                d->state = CHUNK_TRAILER_LF;
            else if (c == '\n')
                d->state = CHUNK_TRAILER;
            else if (!is_value_char(c) || !within(&d->trailer_bytes, SL_LIMIT_TRAILER_BYTES))
                goto fail;
            break;
        case CHUNK_TRAILER_LF:
            if (c != '\n')
                goto fail;
            d->state = CHUNK_TRAILER;
            break;
        case CHUNK_END_LF:
            if (c != '\n')
                goto fail;
            goto done;
        default:
            assert(!"bad chunked decoder state");
            rc = SL_EINVAL;
            goto fail;
        }
        i++;
        continue;

    size_line_done:
        i++;
        d->line_bytes = 0;
        d->state = d->remaining == 0 ? CHUNK_TRAILER : CHUNK_DATA;
    }
    *consumed = i;
    return SL_EAGAIN;

done:
    d->state = CHUNK_DONE;
    *consumed = i + 1;
    return SL_OK;

fail:
    d->state = rc;
    *consumed = i;
    return rc;
}
