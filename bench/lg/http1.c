/* http1.c - the load generator's HTTP/1.1 response reader (see http1.h).
 * Owns: scanning the head byte by byte (heads are small), reading the
 * status and the framing fields, and the chunked state machine, which hands
 * out data as slices of the caller's input without copying. Does not own:
 * sockets, SSE, timing. Lenient where servers differ harmlessly (a bare LF
 * for CRLF), strict where a mistake would hide lost bytes. */
#include "lg/http1.h"

#include <string.h>
#include <strings.h>

enum { ST_HEAD, ST_BODY, ST_DONE };

enum {
    CS_SIZE,         /* a chunk-size line begins: at least one hex digit */
    CS_SIZE_MORE,    /* more hex digits, or the end of the size */
    CS_EXT,          /* a chunk extension: skipped to LF */
    CS_SIZE_LF,      /* CR seen after the size: LF must follow */
    CS_DATA,         /* chunk data */
    CS_DATA_CR,      /* the CRLF after chunk data */
    CS_DATA_LF,      /* its LF */
    CS_TRAILER,      /* a trailer line begins (an empty one ends the body) */
    CS_TRAILER_LINE, /* inside a trailer field: skipped to LF */
    CS_TRAILER_LF,   /* CR of the final empty line seen: LF must follow */
};

void lg_http1_resp_init(struct lg_http1_resp *r)
{
    sl_buf_init(&r->head, LG_HTTP1_HEAD_MAX);
    lg_http1_resp_reset(r);
}

void lg_http1_resp_reset(struct lg_http1_resp *r)
{
    sl_buf_reset(&r->head);
    r->status = 0;
    r->keep_alive = false;
    r->framing = LG_HTTP1_CLOSE;
    r->length = 0;
    r->line_len = 0;
    r->state = ST_HEAD;
    r->cstate = CS_SIZE;
    r->left = 0;
    r->digits = 0;
    r->trailer_used = 0;
    r->err = SL_OK;
}

void lg_http1_resp_free(struct lg_http1_resp *r)
{
    sl_buf_free(&r->head);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Case-insensitive search for a token in a header value (for "chunked",
 * "close", "keep-alive"); good enough for the values servers send. */
static bool value_has(const char *v, size_t n, const char *tok)
{
    size_t tn = strlen(tok);
    for (size_t i = 0; i + tn <= n; i++)
        if (strncasecmp(v + i, tok, tn) == 0)
            return true;
    return false;
}

static bool name_is(const char *p, size_t n, const char *want)
{
    return n == strlen(want) && strncasecmp(p, want, n) == 0;
}

/* Reads one header field line (no line end) into r. */
static int parse_field(struct lg_http1_resp *r, const char *p, size_t n, bool *chunked,
                       bool *has_length)
{
    const char *colon = memchr(p, ':', n);
    if (colon == NULL || colon == p)
        return SL_EPROTO;
    size_t nlen = (size_t)(colon - p);
    const char *v = colon + 1;
    size_t vlen = n - nlen - 1;
    while (vlen > 0 && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        vlen--;
    }
    while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    if (name_is(p, nlen, "transfer-encoding")) {
        *chunked = value_has(v, vlen, "chunked");
    } else if (name_is(p, nlen, "content-length")) {
        if (vlen == 0 || vlen > 18)
            return SL_EPROTO;
        uint64_t x = 0;
        for (size_t i = 0; i < vlen; i++) {
            if (v[i] < '0' || v[i] > '9')
                return SL_EPROTO;
            x = x * 10 + (uint64_t)(v[i] - '0');
        }
        r->length = x;
        *has_length = true;
    } else if (name_is(p, nlen, "connection")) {
        if (value_has(v, vlen, "close"))
            r->keep_alive = false;
        else if (value_has(v, vlen, "keep-alive"))
            r->keep_alive = true;
    }
    return SL_OK;
}

/* Parses the complete head in r->head. Sets r->status to 0 for a 1xx
 * response, which the caller skips. */
static int parse_head(struct lg_http1_resp *r)
{
    const char *p = sl_buf_ptr(&r->head);
    const char *end = p + sl_buf_size(&r->head);
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL)
        return SL_EPROTO;
    size_t n = (size_t)(eol - p);
    if (n > 0 && p[n - 1] == '\r')
        n--;
    /* "HTTP/1.x SSS" then an optional reason phrase */
    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return SL_EPROTO;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return SL_EPROTO;
        status = status * 10 + (p[i] - '0');
    }
    if (n > 12 && p[12] != ' ')
        return SL_EPROTO;
    r->status = status;
    r->keep_alive = p[7] == '1';
    bool chunked = false, has_length = false;
    for (p = eol + 1; p < end;) {
        eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            return SL_EPROTO;
        n = (size_t)(eol - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (n == 0)
            break; /* the empty line ending the head */
        if (p[0] == ' ' || p[0] == '\t')
            return SL_EPROTO; /* obsolete line folding */
        int rc = parse_field(r, p, n, &chunked, &has_length);
        if (rc != SL_OK)
            return rc;
        p = eol + 1;
    }
    if (status >= 100 && status < 200) {
        if (status == 101)
            return SL_EPROTO; /* we never ask to switch protocols */
        r->status = 0;
        return SL_OK;
    }
    if (status == 204 || status == 304)
        r->framing = LG_HTTP1_NONE;
    else if (chunked)
        r->framing = LG_HTTP1_CHUNKED;
    else if (has_length)
        r->framing = LG_HTTP1_LENGTH;
    else
        r->framing = LG_HTTP1_CLOSE;
    if (r->framing == LG_HTTP1_CLOSE)
        r->keep_alive = false;
    r->left = r->length;
    return SL_OK;
}

/* Scans head bytes from in[*pos]. Returns 1 when a final head is complete,
 * 0 when more input is needed, or a negative SL_E*. */
static int head_feed(struct lg_http1_resp *r, const char *in, size_t len, size_t *pos)
{
    while (*pos < len) {
        size_t start = *pos, i = start;
        bool end = false;
        for (; i < len; i++) {
            char c = in[i];
            if (c == '\n') {
                if (r->line_len == 0) {
                    end = true;
                    i++;
                    break;
                }
                r->line_len = 0;
            } else if (c != '\r') {
                r->line_len++;
            }
        }
        int rc = sl_buf_append(&r->head, in + start, i - start);
        if (rc != SL_OK)
            return rc;
        *pos = i;
        if (!end)
            return 0;
        rc = parse_head(r);
        if (rc != SL_OK)
            return rc;
        if (r->status != 0)
            return 1;
        sl_buf_reset(&r->head); /* a 1xx: the real head follows */
    }
    return 0;
}

static int trailer_byte(struct lg_http1_resp *r)
{
    return ++r->trailer_used > LG_HTTP1_TRAILER_MAX ? SL_ETOOBIG : SL_OK;
}

/* One framing byte of a chunked body (not chunk data). Returns 1 when the
 * body ended, 0 to go on, or a negative SL_E*. */
static int chunk_byte(struct lg_http1_resp *r, char c)
{
    switch (r->cstate) {
    case CS_SIZE:
    case CS_SIZE_MORE: {
        int h = hexval(c);
        if (h >= 0) {
            if (++r->digits > LG_HTTP1_CHUNK_DIGITS_MAX)
                return SL_ETOOBIG;
            r->left = r->left * 16 + (uint64_t)h;
            r->cstate = CS_SIZE_MORE;
            return 0;
        }
        if (r->cstate == CS_SIZE)
            return SL_EPROTO;
        if (c == ';' || c == ' ' || c == '\t') {
            r->cstate = CS_EXT;
            return trailer_byte(r);
        }
        if (c == '\r') {
            r->cstate = CS_SIZE_LF;
            return 0;
        }
        if (c != '\n')
            return SL_EPROTO;
        break; /* the size line ended */
    }
    case CS_EXT:
        if (c != '\n')
            return trailer_byte(r);
        break;
    case CS_SIZE_LF:
        if (c != '\n')
            return SL_EPROTO;
        break;
    case CS_DATA_CR:
        if (c == '\r') {
            r->cstate = CS_DATA_LF;
            return 0;
        }
        __attribute__((fallthrough)); /* a bare LF is accepted */
    case CS_DATA_LF:
        if (c != '\n')
            return SL_EPROTO;
        r->cstate = CS_SIZE;
        r->digits = 0;
        r->left = 0;
        return 0;
    case CS_TRAILER:
        if (c == '\n')
            return 1;
        r->cstate = c == '\r' ? CS_TRAILER_LF : CS_TRAILER_LINE;
        return trailer_byte(r);
    case CS_TRAILER_LINE:
        if (c == '\n')
            r->cstate = CS_TRAILER;
        return trailer_byte(r);
    case CS_TRAILER_LF:
        return c == '\n' ? 1 : SL_EPROTO;
    default:
        return SL_EPROTO;
    }
    /* A size line ended: data follows, or the last chunk's trailers. */
    r->cstate = r->left > 0 ? CS_DATA : CS_TRAILER;
    return 0;
}

static int fail(struct lg_http1_resp *r, int rc)
{
    r->err = rc;
    return rc;
}

int lg_http1_resp_next(struct lg_http1_resp *r, const char *in, size_t len, size_t *consumed,
                       struct lg_http1_ev *ev)
{
    size_t pos = 0;
    *consumed = 0;
    if (r->err != SL_OK)
        return r->err;
    if (r->state == ST_HEAD) {
        int rc = head_feed(r, in, len, &pos);
        *consumed = pos;
        if (rc < 0)
            return fail(r, rc);
        if (rc == 0)
            return 0;
        r->state = ST_BODY;
        ev->kind = LG_HTTP1_EV_HEAD;
        ev->data = NULL;
        ev->len = 0;
        return 1;
    }
    if (r->state == ST_DONE)
        return 0;
    switch (r->framing) {
    case LG_HTTP1_NONE:
        break;
    case LG_HTTP1_LENGTH:
        if (r->left == 0)
            break;
        if (len == 0)
            return 0;
        ev->kind = LG_HTTP1_EV_DATA;
        ev->data = in;
        ev->len = r->left < len ? (size_t)r->left : len;
        r->left -= ev->len;
        *consumed = ev->len;
        return 1;
    case LG_HTTP1_CLOSE:
        if (len == 0)
            return 0;
        ev->kind = LG_HTTP1_EV_DATA;
        ev->data = in;
        ev->len = len;
        *consumed = len;
        return 1;
    case LG_HTTP1_CHUNKED:
        while (pos < len) {
            if (r->cstate == CS_DATA) {
                size_t n = len - pos;
                if (r->left < n)
                    n = (size_t)r->left;
                ev->kind = LG_HTTP1_EV_DATA;
                ev->data = in + pos;
                ev->len = n;
                r->left -= n;
                if (r->left == 0)
                    r->cstate = CS_DATA_CR;
                *consumed = pos + n;
                return 1;
            }
            int rc = chunk_byte(r, in[pos++]);
            if (rc < 0) {
                *consumed = pos;
                return fail(r, rc);
            }
            if (rc == 1)
                goto end;
        }
        *consumed = pos;
        return 0;
    }
end:
    *consumed = pos;
    r->state = ST_DONE;
    ev->kind = LG_HTTP1_EV_END;
    ev->data = NULL;
    ev->len = 0;
    return 1;
}

bool lg_http1_resp_eof(struct lg_http1_resp *r)
{
    if (r->err == SL_OK && r->state == ST_BODY && r->framing == LG_HTTP1_CLOSE) {
        r->state = ST_DONE;
        return true;
    }
    return false;
}
