/* fuzz_response.c - libFuzzer harness of the HTTP/1.x response head parser
 * and the zero-copy chunked decoder. Owns: the invariants checked on every
 * input (consumed <= len, pointers inside the head or the piece fed, bounds
 * held, the framing rules, the result independent of how the input is
 * split, sl_http_chunked_next's concatenated spans equal to what
 * sl_http_chunked_feed appends). Does not own: the parser
 * (http/parser.c). Aborts on a broken invariant. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "http/parser.h"

#define HDR_CAP 128
/* Above this size only some prefixes are re-parsed: the check is quadratic. */
#define ALL_PREFIXES_UP_TO 512
/* The body ceiling of the feed run compared with a small one. */
#define SMALL_BODY_BUF 16

static void check(bool ok, const char *what, int line)
{
    if (!ok) {
        fprintf(stderr, "fuzz_response: invariant broken at line %d: %s\n", line, what);
        abort();
    }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

/* The parser's settings for one run: limits and the header array size. */
struct setting {
    struct sl_http_limits lim;
    size_t cap;
};

static const struct setting settings[] = {
    {{SL_LIMIT_HEADER_BYTES_DEFAULT, SL_LIMIT_HEADERS_DEFAULT, SL_LIMIT_URL_BYTES_DEFAULT,
      SL_LIMIT_BODY_BYTES_DEFAULT},
     HDR_CAP},
    {{200, 4, 24, 64}, 6}, /* tight: every bound within reach */
    {{64, 100, 0, 0}, 2},
};

struct result {
    int rc;
    size_t consumed;
    struct sl_http_response res;
    struct sl_http_header hdrs[HDR_CAP];
};

/* p[0..n) lies inside buf[0..len). */
static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
    return p != NULL && p >= buf && (size_t)(p - buf) <= len && n <= len - (size_t)(p - buf);
}

static bool has_byte(const char *p, size_t n, const char *set)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\0' || strchr(set, p[i]) != NULL)
            return true;
    }
    return false;
}

static void check_result(const char *buf, size_t len, const struct setting *s,
                         const struct result *r)
{
    CHECK(r->consumed <= len);
    switch (r->rc) {
    case SL_OK:
        break;
    case SL_EAGAIN:
        CHECK(len <= s->lim.max_header_bytes);
        /* fall through */
    case SL_EPROTO:
    case SL_EHDRTOOBIG:
    case SL_ETOOMANYHDRS:
        CHECK(r->consumed == 0);
        return;
    default:
        CHECK(!"an SL_E* code the response parser never returns");
    }

    const struct sl_http_response *q = &r->res;
    size_t head = r->consumed;
    CHECK(head >= 14); /* "HTTP/1.1 200\n\n" */
    CHECK(head <= s->lim.max_header_bytes);
    CHECK(memcmp(buf, "HTTP/1.", 7) == 0);
    CHECK(q->status >= 100 && q->status <= 999);
    CHECK(q->minor_version == 0 || q->minor_version == 1);
    CHECK(inside(q->reason, q->reason_len, buf, head));
    CHECK(!has_byte(q->reason, q->reason_len, "\r\n"));
    CHECK(q->headers == r->hdrs);
    CHECK(q->num_headers <= s->cap && q->num_headers <= s->lim.max_headers);
    for (size_t i = 0; i < q->num_headers; i++) {
        const struct sl_http_header *h = &q->headers[i];
        CHECK(h->name_len > 0 && inside(h->name, h->name_len, buf, head));
        CHECK(inside(h->value, h->value_len, buf, head));
        CHECK(!has_byte(h->name, h->name_len, ": \t\r\n"));
        CHECK(!has_byte(h->value, h->value_len, "\r\n"));
        CHECK(h->value_len == 0 || (h->value[0] != ' ' && h->value[h->value_len - 1] != ' ' &&
                                    h->value[0] != '\t' && h->value[h->value_len - 1] != '\t'));
    }
    CHECK(sl_http_find_response_header(q, "") == NULL);

    const struct sl_http_header *cl = sl_http_find_response_header(q, "content-length");
    const struct sl_http_header *te = sl_http_find_response_header(q, "Transfer-Encoding");
    CHECK(q->content_length >= -1);
    CHECK((cl != NULL) == (q->content_length != -1));
    CHECK(!(cl != NULL && te != NULL)); /* smuggling is refused */
    CHECK(!q->chunked || te != NULL);

    enum sl_http_body_kind kind = sl_http_response_body(q, false);
    CHECK(sl_http_response_body(q, true) == SL_HTTP_BODY_NONE);
    if (q->status < 200 || q->status == 204 || q->status == 304)
        CHECK(kind == SL_HTTP_BODY_NONE);
    else if (q->chunked)
        CHECK(kind == SL_HTTP_BODY_CHUNKED);
    else if (cl != NULL)
        CHECK(kind == SL_HTTP_BODY_LENGTH);
    else
        CHECK(kind == SL_HTTP_BODY_CLOSE);
    if (kind == SL_HTTP_BODY_CLOSE || q->status == 101 || (te != NULL && q->minor_version == 0))
        CHECK(!q->keep_alive);
    const struct sl_http_header *conn = sl_http_find_response_header(q, "Connection");
    if (q->keep_alive && q->minor_version == 0)
        CHECK(conn != NULL);
    if (!q->keep_alive && q->minor_version == 1 && conn == NULL)
        CHECK(kind == SL_HTTP_BODY_CLOSE || q->status == 101);
}

/* Parses data[0..len) placed at the end of scratch (len bytes reserved), so
 * a read past len leaves the allocation and ASan reports it. */
static void parse_at_end(const uint8_t *data, size_t len, char *scratch, size_t scratch_len,
                         const struct setting *s, struct result *r)
{
    char *buf = scratch + (scratch_len - len);
    if (len)
        memcpy(buf, data, len);
    r->consumed = 777;
    r->rc = sl_http_parse_response(buf, len, &s->lim, &r->res, r->hdrs, s->cap, &r->consumed, NULL);
    check_result(buf, len, s, r);
}

static size_t offset(const char *base, const char *p)
{
    return p == NULL ? SIZE_MAX : (size_t)(p - base);
}

/* Two successful parses of prefixes of one input found the same head. */
static void check_same(const struct result *a, const char *abase, const struct result *b,
                       const char *bbase)
{
    const struct sl_http_response *x = &a->res, *y = &b->res;
    CHECK(a->consumed == b->consumed);
    CHECK(x->status == y->status && x->minor_version == y->minor_version);
    CHECK(offset(abase, x->reason) == offset(bbase, y->reason));
    CHECK(x->reason_len == y->reason_len && x->num_headers == y->num_headers);
    for (size_t i = 0; i < x->num_headers; i++) {
        CHECK(offset(abase, x->headers[i].name) == offset(bbase, y->headers[i].name));
        CHECK(offset(abase, x->headers[i].value) == offset(bbase, y->headers[i].value));
        CHECK(x->headers[i].value_len == y->headers[i].value_len);
    }
    CHECK(x->content_length == y->content_length && x->chunked == y->chunked);
    CHECK(x->keep_alive == y->keep_alive);
}

/* Every prefix gives SL_EAGAIN until the first that does not; from there
 * on each gives what the whole input gives. */
static void check_prefixes(const uint8_t *data, size_t len, char *scratch, const struct setting *s,
                           const struct result *whole)
{
    bool settled = false;
    size_t step = len <= ALL_PREFIXES_UP_TO ? 1 : len / ALL_PREFIXES_UP_TO + 1;
    for (size_t k = 0; k < len; k += (k < 256 ? 1 : step)) {
        struct result part;
        parse_at_end(data, k, scratch, len, s, &part);
        if (part.rc == SL_EAGAIN && !settled)
            continue;
        settled = true;
        CHECK(part.rc == whole->rc);
        if (part.rc == SL_OK)
            check_same(whole, scratch, &part, scratch + (len - k));
    }
}

/* One run of a chunked decoder: result, bytes consumed, decoded data. */
struct decoded {
    int rc;
    size_t consumed;
    char *data; /* owned, len + 1 bytes */
    size_t data_len;
};

/* sl_http_chunked_next over in[0..len), fed in pieces of at most step
 * bytes, or in two at split (0: whole). Each piece is copied to the end of
 * piece_buf (len bytes) so a read past it leaves the allocation. */
static void decode_next(const char *in, size_t len, size_t step, size_t split, uint64_t max,
                        char *piece_buf, struct decoded *out)
{
    struct sl_http_chunked d;
    sl_http_chunked_init(&d, max);
    out->rc = SL_EAGAIN;
    out->consumed = 0;
    out->data_len = 0;
    out->data = malloc(len + 1);
    CHECK(out->data != NULL);
    while (out->rc == SL_EAGAIN && out->consumed < len) {
        size_t pos = out->consumed;
        size_t n = len - pos;
        if (split && pos < split && n > split - pos)
            n = split - pos;
        else if (step && n > step)
            n = step;
        char *piece = piece_buf + (len - n);
        memcpy(piece, in + pos, n);
        size_t off = 0;
        do {
            const char *data = NULL;
            size_t used = 777, dlen = 777;
            out->rc = sl_http_chunked_next(&d, piece + off, n - off, &used, &data, &dlen);
            CHECK(used <= n - off && dlen <= used);
            CHECK(data + dlen == piece + off + used);
            CHECK(out->rc == SL_OK || out->rc == SL_EAGAIN || out->rc == SL_EBADREQ ||
                  out->rc == SL_EBODYTOOBIG);
            CHECK(out->rc == SL_EAGAIN || dlen == 0);
            CHECK(dlen > 0 || out->rc != SL_EAGAIN || used == n - off);
            memcpy(out->data + out->data_len, data, dlen);
            out->data_len += dlen;
            off += used;
            CHECK(d.total == out->data_len && d.total <= max);
        } while (out->rc == SL_EAGAIN && off < n);
        out->consumed += off;
    }
    if (out->rc != SL_EAGAIN) { /* sticky */
        const char *data;
        size_t used = 777, dlen = 777;
        CHECK(sl_http_chunked_next(&d, in, len, &used, &data, &dlen) == out->rc);
        CHECK(used == 0 && dlen == 0);
    }
}

/* sl_http_chunked_feed over in[0..len) whole, into a body of buf_max. */
static void decode_feed(const char *in, size_t len, uint64_t max, size_t buf_max,
                        struct decoded *out)
{
    struct sl_http_chunked d;
    sl_http_chunked_init(&d, max);
    struct sl_buf body;
    sl_buf_init(&body, buf_max);
    out->rc = sl_http_chunked_feed(&d, in, len, &out->consumed, &body);
    CHECK(out->consumed <= len);
    CHECK(d.total == sl_buf_size(&body));
    out->data_len = 0;
    out->data = sl_buf_take(&body, &out->data_len);
}

static bool same(const struct decoded *a, const struct decoded *b)
{
    return a->rc == b->rc && a->consumed == b->consumed && a->data_len == b->data_len &&
           (a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0);
}

/* next whole, one byte at a time and split in two; feed whole with a big
 * and a small body ceiling. Returns the bytes the whole run consumed when
 * it found the end of the body, else len + 1. */
static size_t check_chunked(const char *in, size_t len, size_t split, uint64_t max)
{
    char *piece_buf = malloc(len ? len : 1);
    CHECK(piece_buf != NULL);
    struct decoded whole, bytes, halves, fed, small;
    decode_next(in, len, 0, 0, max, piece_buf, &whole);
    decode_next(in, len, 1, 0, max, piece_buf, &bytes);
    decode_next(in, len, 0, split, max, piece_buf, &halves);
    decode_feed(in, len, max, SIZE_MAX, &fed);
    decode_feed(in, len, max, SMALL_BODY_BUF, &small);
    CHECK(same(&whole, &bytes));
    CHECK(same(&whole, &halves));
    CHECK(same(&whole, &fed));
    if (whole.data_len <= SMALL_BODY_BUF) {
        CHECK(same(&whole, &small));
    } else { /* the ceiling refuses the data first, keeping what fits */
        CHECK(small.rc == SL_EBODYTOOBIG && small.data_len == SMALL_BODY_BUF);
        CHECK(memcmp(small.data, whole.data, SMALL_BODY_BUF) == 0);
        CHECK(small.consumed < whole.consumed);
    }
    size_t used = whole.rc == SL_OK ? whole.consumed : len + 1;
    free(whole.data);
    free(bytes.data);
    free(halves.data);
    free(fed.data);
    free(small.data);
    free(piece_buf);
    return used;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *scratch = malloc(size ? size : 1);
    if (scratch == NULL)
        return 0;
    size_t split = size ? data[0] % (size + 1) : 0;

    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        const struct setting *s = &settings[i];
        struct result whole;
        parse_at_end(data, size, scratch, size, s, &whole);
        check_prefixes(data, size, scratch, s, &whole);
        if (whole.rc != SL_OK || sl_http_response_body(&whole.res, false) != SL_HTTP_BODY_CHUNKED)
            continue;
        /* The body after the head, as the upstream client would read it. */
        parse_at_end(data, size, scratch, size, s, &whole);
        const char *body = scratch + whole.consumed;
        size_t body_len = size - whole.consumed;
        size_t used =
            check_chunked(body, body_len, split % (body_len + 1), SL_LIMIT_BODY_BYTES_DEFAULT);
        (void)check_chunked(body, body_len, split % (body_len + 1), s->lim.max_body_bytes);
        if (used <= body_len) { /* a next response on a kept connection */
            struct result next;
            size_t rest = body_len - used;
            next.rc = sl_http_parse_response(body + used, rest, &s->lim, &next.res, next.hdrs,
                                             s->cap, &next.consumed, NULL);
            check_result(body + used, rest, s, &next);
        }
    }

    /* The raw input as a chunked body, under big and small bounds. */
    if (size)
        memcpy(scratch, data, size);
    (void)check_chunked(scratch, size, split, UINT64_MAX);
    (void)check_chunked(scratch, size, split, 32);

    free(scratch);
    return 0;
}
