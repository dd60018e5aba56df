/* parser.c - HTTP/1.x request and response head parsers, chunked decoder.
 * Owns: byte classes, the request and status lines, header fields (one
 * field-line parser for both heads), the framing rules (Content-Length,
 * Transfer-Encoding, Connection, Expect) and the chunked decoder's one state
 * machine. Does not own: memory (nothing is allocated here), sockets,
 * timers, or the status each error becomes (the server decides). */
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

static const struct sl_http_header *find_field(const struct sl_http_header *hdrs, size_t n,
                                               const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (ieq(hdrs[i].name, hdrs[i].name_len, name))
            return &hdrs[i];
    }
    return NULL;
}

const struct sl_http_header *sl_http_find_header(const struct sl_http_request *req,
                                                 const char *name)
{
    return find_field(req->headers, req->num_headers, name);
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

/* The part of a head's buffer that is scanned. Bytes past max_header_bytes
 * are never looked at: running out of the scanned bytes means "need more"
 * (*more = SL_EAGAIN) below the bound and SL_EHDRTOOBIG past it. */
static size_t head_end(size_t len, const struct sl_http_limits *lim, int *more)
{
    *more = len > lim->max_header_bytes ? SL_EHDRTOOBIG : SL_EAGAIN;
    return len < lim->max_header_bytes ? len : lim->max_header_bytes;
}

/* Whether buf[0..len) is worth parsing (see struct sl_http_head_scan).
 * Counts the bytes the search and the parse to come read. */
static bool head_worth_parsing(const char *buf, size_t len, const struct sl_http_limits *lim,
                               struct sl_http_head_scan *scan)
{
    if (scan == NULL)
        return true;
    /* Past the bound nothing is searched: the parse says SL_EHDRTOOBIG
     * (or the error it meets first). */
    size_t end = len < lim->max_header_bytes ? len : lim->max_header_bytes;
    assert(scan->seen <= end || scan->seen == lim->max_header_bytes);
    /* The head ends at a LF, an optional CR, a LF (lines end in CRLF or a
     * bare LF). tail carries the part of that seen at the end of the last
     * call: 0 none, 1 a LF, 2 a LF and a CR. */
    size_t i = scan->seen;
    int tail = scan->tail;
    bool found = false;
    if (end > i)
        scan->examined += end - i;
    while (i < end) {
        if (tail == 0) {
            const char *lf = memchr(buf + i, '\n', end - i);
            if (lf == NULL)
                break;
            i = (size_t)(lf - buf) + 1;
            tail = 1;
            continue;
        }
        char c = buf[i++];
        if (c == '\n') {
            found = true;
            tail = 1; /* the LF may start the next end */
        } else {
            tail = c == '\r' && tail == 1 ? 2 : 0;
        }
    }
    if (end > scan->seen) {
        scan->seen = end;
        scan->tail = tail;
    }
    /* A found end may be an empty line before the request line (RFC 9112
     * 2.2): the parse then says SL_EAGAIN, and the search goes on. The
     * doubling rule finds errors inside an incomplete head at a cost of
     * at most twice the head's bytes over all calls. */
    if (!found && len <= lim->max_header_bytes && len < 2 * scan->parsed)
        return false;
    scan->parsed = len;
    scan->examined += end;
    return true;
}

/* How many header fields a head may have: the smallest of the caller's
 * array, the configured bound and the hard ceiling. */
static size_t fields_cap(const struct sl_http_limits *lim, size_t hdr_cap)
{
    size_t cap = hdr_cap < lim->max_headers ? hdr_cap : lim->max_headers;
    return cap < SL_LIMIT_HEADERS_MAX ? cap : SL_LIMIT_HEADERS_MAX;
}

/* Parses the field line at buf[*p] into *h, or the empty line that ends the
 * head (then *last is set and *h untouched). h is NULL when the array is
 * full: a field line then gives SL_ETOOMANYHDRS. Returns SL_OK and moves *p
 * past the line, more when the bytes stop first, SL_EBADREQ for bad syntax.
 * Both head parsers use it, so a field means the same thing to both. */
static int field_line(const char *buf, size_t end, int more, size_t *p, struct sl_http_header *h,
                      bool *last)
{
    size_t i = *p;
    *last = false;
    if (i == end)
        return more;
    char c = buf[i];
    if (c == '\r' || c == '\n') {
        int rc = end_of_line(buf, end, &i, more);
        if (rc != SL_OK)
            return rc;
        *last = true;
        *p = i;
        return SL_OK;
    }
    /* obs-fold, or blanks before the first field (RFC 9112 2.2, 5.2): both
     * are refused rather than guessed at. */
    if (is_blank(c))
        return SL_EBADREQ;
    if (h == NULL)
        return SL_ETOOMANYHDRS;

    size_t name0 = i;
    while (i < end && is_tchar((unsigned char)buf[i]))
        i++;
    if (i == end)
        return more;
    if (buf[i] != ':' || i == name0) /* a blank before ':' included */
        return SL_EBADREQ;
    size_t name_len = i - name0;
    i++;
    while (i < end && is_blank(buf[i]))
        i++;
    size_t val0 = i;
    while (i < end && is_value_char((unsigned char)buf[i]))
        i++;
    size_t val_end = i;
    int rc = end_of_line(buf, end, &i, more); /* a control byte fails here */
    if (rc != SL_OK)
        return rc;
    while (val_end > val0 && is_blank(buf[val_end - 1]))
        val_end--;
    *h = (struct sl_http_header){
        .name = buf + name0,
        .name_len = name_len,
        .value = buf + val0,
        .value_len = val_end - val0,
    };
    *p = i;
    return SL_OK;
}

/* What the framing headers said so far. */
struct head_state {
    bool have_cl;
    uint64_t cl;
    bool have_te;
    unsigned te_chunked;  /* "chunked" codings over all Transfer-Encoding fields */
    unsigned te_other;    /* any other coding */
    bool te_last_chunked; /* the last coding seen is chunked */
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

/* One Content-Length field: valid, and equal to any earlier one. */
static int merge_content_length(struct head_state *st, const struct sl_http_header *h)
{
    uint64_t v = 0;
    int rc = parse_content_length(h->value, h->value_len, &v);
    if (rc != SL_OK)
        return rc;
    if (st->have_cl && v != st->cl)
        return SL_EBADREQ;
    st->have_cl = true;
    st->cl = v;
    return SL_OK;
}

/* Counts the codings of one Transfer-Encoding field and returns how many it
 * had. Empty list elements are ignored (RFC 9110 5.6.1). */
static unsigned count_codings(struct head_state *st, const struct sl_http_header *h)
{
    size_t pos = 0;
    const char *e;
    size_t elen;
    unsigned n = 0;
    st->have_te = true;
    while (next_element(h->value, h->value_len, &pos, &e, &elen)) {
        if (elen == 0)
            continue;
        n++;
        st->te_last_chunked = ieq(e, elen, "chunked");
        if (st->te_last_chunked)
            st->te_chunked++;
        else
            st->te_other++;
    }
    return n;
}

static void apply_connection(struct head_state *st, const struct sl_http_header *h)
{
    if (sl_http_value_has_token(h->value, h->value_len, "close"))
        st->conn_close = true;
    if (sl_http_value_has_token(h->value, h->value_len, "keep-alive"))
        st->conn_keep_alive = true;
}

/* Applies one complete header field of a request to the framing state.
 * Checks run in the order the fields arrive, so an error is found at the
 * same byte whatever the split of the input. */
static int apply_request_header(struct head_state *st, const struct sl_http_request *req,
                                const struct sl_http_header *h, const struct sl_http_limits *lim)
{
    if (ieq(h->name, h->name_len, "content-length")) {
        if (st->have_te) /* request smuggling */
            return SL_EBADREQ;
        int rc = merge_content_length(st, h);
        if (rc != SL_OK)
            return rc;
        if (st->cl > lim->max_body_bytes || st->cl > (uint64_t)INT64_MAX)
            return SL_EBODYTOOBIG;
    } else if (ieq(h->name, h->name_len, "transfer-encoding")) {
        /* An HTTP/1.0 peer does not know chunked: a proxy in front may
         * frame by Content-Length or close where we frame by chunks. */
        if (req->minor_version == 0 || st->have_cl)
            return SL_EBADREQ;
        (void)count_codings(st, h);
        if (st->te_other)
            return SL_ENOTIMPL;
        if (st->te_chunked != 1) /* none at all, or chunked applied twice */
            return SL_EBADREQ;
    } else if (ieq(h->name, h->name_len, "connection")) {
        apply_connection(st, h);
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
                          size_t *consumed, struct sl_http_head_scan *scan)
{
    assert(buf != NULL || len == 0);
    assert(lim != NULL && req != NULL && consumed != NULL);
    assert(hdrs != NULL || hdr_cap == 0);

    *req = (struct sl_http_request){.headers = hdrs, .content_length = -1};
    *consumed = 0;
    if (!head_worth_parsing(buf, len, lim, scan))
        return SL_EAGAIN;

    int more;
    size_t end = head_end(len, lim, &more);
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

    size_t cap = fields_cap(lim, hdr_cap);
    struct head_state st = {0};
    size_t n = 0;
    for (;;) {
        bool last;
        rc = field_line(buf, end, more, &p, n < cap ? &hdrs[n] : NULL, &last);
        if (rc != SL_OK)
            return rc;
        if (last)
            break;
        req->num_headers = ++n;
        rc = apply_request_header(&st, req, &hdrs[n - 1], lim);
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

/* ---- responses ---- */

/* Applies one complete header field of a response to the framing state, in
 * arrival order like the request's. */
static int apply_response_header(struct head_state *st, const struct sl_http_header *h)
{
    if (ieq(h->name, h->name_len, "content-length")) {
        if (st->have_te) /* response splitting, or a confused peer */
            return SL_EBADREQ;
        int rc = merge_content_length(st, h);
        if (rc != SL_OK)
            return rc;
        if (st->cl > (uint64_t)INT64_MAX) /* content_length cannot hold it */
            return SL_EBADREQ;
    } else if (ieq(h->name, h->name_len, "transfer-encoding")) {
        if (st->have_cl)
            return SL_EBADREQ;
        /* A field without codings frames nothing, and chunked must not be
         * applied twice (RFC 9112 6.1): neither leaves a body we could
         * delimit with confidence. */
        if (count_codings(st, h) == 0 || st->te_chunked > 1)
            return SL_EBADREQ;
    } else if (ieq(h->name, h->name_len, "connection")) {
        apply_connection(st, h);
    }
    return SL_OK;
}

/* "HTTP/1.x NNN[ reason]" and the line end, at buf[*p]. */
static int status_line(const char *buf, size_t end, int more, size_t *p,
                       struct sl_http_response *res)
{
    static const char shape[] = "HTTP/1.v sdd";
    size_t i = *p;
    int status = 0;
    for (size_t k = 0; k < sizeof shape - 1; k++, i++) {
        if (i == end)
            return more;
        char c = buf[i];
        bool ok;
        switch (shape[k]) {
        case 'v':
            ok = c == '0' || c == '1';
            break;
        case 's': /* status 100..999: a first digit 0 is out of range */
            ok = c >= '1' && c <= '9';
            break;
        case 'd':
            ok = c >= '0' && c <= '9';
            break;
        default:
            ok = c == shape[k];
        }
        if (!ok)
            return SL_EBADREQ;
        if (shape[k] == 's' || shape[k] == 'd')
            status = status * 10 + (c - '0');
    }
    res->minor_version = buf[*p + 7] - '0';
    res->status = status;
    /* reason-phrase may be empty, and then browsers and curl accept the
     * line without the SP before it too. */
    if (i == end)
        return more;
    if (buf[i] == ' ') {
        i++;
        size_t r0 = i;
        while (i < end && is_value_char((unsigned char)buf[i]))
            i++;
        res->reason = buf + r0;
        res->reason_len = i - r0;
    } else {
        res->reason = buf + i;
        res->reason_len = 0;
    }
    int rc = end_of_line(buf, end, &i, more); /* a control byte fails here */
    if (rc != SL_OK)
        return rc;
    *p = i;
    return SL_OK;
}

/* sl_http_parse_response in the shared helpers' terms: SL_EBADREQ for
 * anything malformed. */
static int parse_response_head(const char *buf, size_t len, const struct sl_http_limits *lim,
                               struct sl_http_response *res, struct sl_http_header *hdrs,
                               size_t hdr_cap, size_t *consumed)
{
    int more;
    size_t end = head_end(len, lim, &more);
    size_t p = 0;
    int rc = status_line(buf, end, more, &p, res);
    if (rc != SL_OK)
        return rc;

    size_t cap = fields_cap(lim, hdr_cap);
    struct head_state st = {0};
    size_t n = 0;
    for (;;) {
        bool last;
        rc = field_line(buf, end, more, &p, n < cap ? &hdrs[n] : NULL, &last);
        if (rc != SL_OK)
            return rc;
        if (last)
            break;
        res->num_headers = ++n;
        rc = apply_response_header(&st, &hdrs[n - 1]);
        if (rc != SL_OK)
            return rc;
    }

    if (st.have_cl)
        res->content_length = (int64_t)st.cl;
    res->chunked = st.te_last_chunked;
    if (res->minor_version == 1)
        res->keep_alive = !st.conn_close;
    else
        res->keep_alive = st.conn_keep_alive && !st.conn_close;
    /* RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
     * framing; the connection is closed after it. A body delimited by the
     * close ends the connection too, and after 101 it speaks another
     * protocol. */
    if ((st.have_te && res->minor_version == 0) || res->status == 101 ||
        sl_http_response_body(res, false) == SL_HTTP_BODY_CLOSE)
        res->keep_alive = false;
    *consumed = p;
    return SL_OK;
}

int sl_http_parse_response(const char *buf, size_t len, const struct sl_http_limits *lim,
                           struct sl_http_response *res, struct sl_http_header *hdrs,
                           size_t hdr_cap, size_t *consumed, struct sl_http_head_scan *scan)
{
    assert(buf != NULL || len == 0);
    assert(lim != NULL && res != NULL && consumed != NULL);
    assert(hdrs != NULL || hdr_cap == 0);

    *res = (struct sl_http_response){.headers = hdrs, .content_length = -1};
    *consumed = 0;
    if (!head_worth_parsing(buf, len, lim, scan))
        return SL_EAGAIN;
    int rc = parse_response_head(buf, len, lim, res, hdrs, hdr_cap, consumed);
    /* From an upstream, malformed means the peer does not speak HTTP. */
    return rc == SL_EBADREQ ? SL_EPROTO : rc;
}

enum sl_http_body_kind sl_http_response_body(const struct sl_http_response *res, bool head_request)
{
    /* RFC 9112 6.3, rules 1 to 6 in order. */
    if (head_request || res->status < 200 || res->status == 204 || res->status == 304)
        return SL_HTTP_BODY_NONE;
    if (res->chunked)
        return SL_HTTP_BODY_CHUNKED;
    if (res->content_length >= 0)
        return SL_HTTP_BODY_LENGTH;
    return SL_HTTP_BODY_CLOSE;
}

const struct sl_http_header *sl_http_find_response_header(const struct sl_http_response *res,
                                                          const char *name)
{
    return find_field(res->headers, res->num_headers, name);
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

int sl_http_chunked_next(struct sl_http_chunked *d, const char *in, size_t len, size_t *consumed,
                         const char **data, size_t *data_len)
{
    assert(d != NULL && consumed != NULL && data != NULL && data_len != NULL);
    assert(in != NULL || len == 0);
    *consumed = 0;
    *data = in;
    *data_len = 0;
    if (d->state < 0)
        return d->state;
    if (d->state == CHUNK_DONE)
        return SL_OK;

    /* The state lives in locals while bytes are read and is written back
     * once, at whichever exit: in may alias *d as far as the compiler
     * knows, so a store to *d per byte would also reload what it read. */
    int state = d->state;
    uint64_t remaining = d->remaining;
    size_t line_bytes = d->line_bytes;
    size_t i = 0;
    int rc = SL_EBADREQ; /* what a goto fail means unless set otherwise */
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        switch (state) {
        case CHUNK_SIZE: {
            int x = hex_value(c);
            if (x >= 0) {
                if (remaining > (UINT64_MAX >> 4))
                    goto fail;
                remaining = remaining << 4 | (uint64_t)x;
                /* Refused at the digit that crosses the bound, before any data. */
                if (remaining > d->max - d->total) {
                    rc = SL_EBODYTOOBIG;
                    goto fail;
                }
                /* Size and extensions are bounded tightly: they carry
                 * nothing sluice uses. */
                if (++line_bytes > SL_LIMIT_CHUNK_EXT_BYTES)
                    goto fail;
                break;
            }
            if (line_bytes == 0) /* no digits */
                goto fail;
            if (c == '\r') {
                state = CHUNK_SIZE_LF;
                break;
            }
            if (c == '\n')
                goto size_line_done;
            if (c == ';')
                state = CHUNK_EXT;
            else if (is_blank((char)c))
                state = CHUNK_SIZE_WS;
            else
                goto fail;
            if (++line_bytes > SL_LIMIT_CHUNK_EXT_BYTES)
                goto fail;
            break;
        }
        case CHUNK_SIZE_WS: /* BWS before ';' (RFC 9112 7.1.1) */
        case CHUNK_EXT:
            if (c == '\r') {
                state = CHUNK_SIZE_LF;
                break;
            }
            if (c == '\n')
                goto size_line_done;
            if (state == CHUNK_SIZE_WS && c == ';')
                state = CHUNK_EXT;
            else if (state == CHUNK_SIZE_WS ? !is_blank((char)c) : !is_value_char(c))
                goto fail;
            if (++line_bytes > SL_LIMIT_CHUNK_EXT_BYTES)
                goto fail;
            break;
        case CHUNK_SIZE_LF:
            if (c != '\n')
                goto fail;
            goto size_line_done;
        case CHUNK_DATA: {
            /* The span ends the call: the caller handles it before the
             * framing after it is read. */
            size_t n = len - i;
            if (n > remaining)
                n = (size_t)remaining;
            *data = in + i;
            *data_len = n;
            i += n;
            remaining -= n;
            d->total += n;
            if (remaining == 0)
                state = CHUNK_DATA_CR;
            goto more;
        }
        case CHUNK_DATA_CR:
            if (c == '\r')
                state = CHUNK_DATA_LF;
            else if (c == '\n')
                state = CHUNK_SIZE;
            else
                goto fail;
            break;
        case CHUNK_DATA_LF:
            if (c != '\n')
                goto fail;
            state = CHUNK_SIZE;
            break;
        case CHUNK_TRAILER:
            if (c == '\r') {
                state = CHUNK_END_LF;
                break;
            }
            if (c == '\n')
                goto done;
            state = CHUNK_TRAILER_LINE;
            continue; /* the same byte starts the field line */
        case CHUNK_TRAILER_LINE:
            /* Every trailer line has a byte counted here, so the bound also
             * bounds the number of lines. */
            if (c == '\r')
                state = CHUNK_TRAILER_LF;
            else if (c == '\n')
                state = CHUNK_TRAILER;
            else if (!is_value_char(c) || ++d->trailer_bytes > SL_LIMIT_TRAILER_BYTES)
                goto fail;
            break;
        case CHUNK_TRAILER_LF:
            if (c != '\n')
                goto fail;
            state = CHUNK_TRAILER;
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
        line_bytes = 0;
        state = remaining == 0 ? CHUNK_TRAILER : CHUNK_DATA;
    }
more:
    rc = SL_EAGAIN;
    goto out;

done:
    state = CHUNK_DONE;
    rc = SL_OK;
    i++;
    goto out;

fail:
    state = rc;

out:
    if (*data_len == 0 && i > 0) /* the empty run ends at *consumed too */
        *data = in + i;
    d->state = state;
    d->remaining = remaining;
    d->line_bytes = line_bytes;
    *consumed = i;
    return rc;
}

int sl_http_chunked_feed(struct sl_http_chunked *d, const char *in, size_t len, size_t *consumed,
                         struct sl_buf *body)
{
    assert(d != NULL && consumed != NULL && body != NULL);
    assert(in != NULL || len == 0);
    size_t pos = 0;
    int rc;
    do {
        const char *data;
        size_t used, n;
        /* in + 0 is not computed: in may be NULL when len is 0. */
        rc = sl_http_chunked_next(d, pos ? in + pos : in, len - pos, &used, &data, &n);
        pos += used;
        if (n == 0)
            continue;
        /* Take what the body's own ceiling allows, then fail: the result
         * does not depend on how the input was split. */
        size_t held = sl_buf_size(body);
        size_t room = held < body->max ? body->max - held : 0;
        size_t take = n < room ? n : room;
        int arc = sl_buf_append(body, data, take);
        if (arc == SL_OK && take == n)
            continue;
        if (arc != SL_OK) {
            take = 0;
            rc = arc == SL_ETOOBIG ? SL_EBODYTOOBIG : arc;
        } else {
            rc = SL_EBODYTOOBIG;
        }
        /* The decoder counted the whole span; give back what was not kept,
         * and fail at the first byte of it. */
        d->total -= n - take;
        d->state = rc;
        pos -= n - take;
        break;
    } while (rc == SL_EAGAIN && pos < len);
    *consumed = pos;
    return rc;
}
