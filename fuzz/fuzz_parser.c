/* fuzz_parser.c - libFuzzer harness of the HTTP/1.1 request parser.
 * Owns: the invariants checked on every input (consumed <= len, pointers
 * inside the head, bounds held, an error found at one byte however the
 * input is split, the chunked decoder independent of splits). Does not own:
 * the parser (http/parser.c). Aborts on a broken invariant. */
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
/* Ceiling of the decoded body in the big-limit runs; inputs are smaller. */
#define BODY_BUF_MAX (1u << 24)

static void check(bool ok, const char *what, int line)
{
    if (!ok) {
        fprintf(stderr, "fuzz_parser: invariant broken at line %d: %s\n", line, what);
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
    {{64, 100, 8192, 0}, 2},
};

struct result {
    int rc;
    size_t consumed;
    struct sl_http_request req;
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
    case SL_EBADREQ:
    case SL_EURITOOLONG:
    case SL_EHDRTOOBIG:
    case SL_ETOOMANYHDRS:
    case SL_EBODYTOOBIG:
    case SL_EVERSION:
    case SL_ENOTIMPL:
        CHECK(r->consumed == 0);
        return;
    default:
        CHECK(!"an SL_E* code the parser never returns");
    }

    const struct sl_http_request *q = &r->req;
    size_t head = r->consumed;
    CHECK(head > 0);
    CHECK(head <= s->lim.max_header_bytes);
    CHECK(q->headers == r->hdrs);
    CHECK(q->num_headers <= s->cap && q->num_headers <= s->lim.max_headers);
    CHECK(q->method_len > 0 && inside(q->method_str, q->method_len, buf, head));
    CHECK(q->target_len > 0 && q->target_len <= s->lim.max_url_bytes);
    CHECK(inside(q->target, q->target_len, buf, head));
    CHECK(q->path_len > 0);
    CHECK(inside(q->path, q->path_len, q->target, q->target_len) ||
          (q->path_len == 1 && q->path[0] == '/'));
    CHECK(q->query == NULL ? q->query_len == 0
                           : inside(q->query, q->query_len, q->target, q->target_len));
    CHECK(q->minor_version == 0 || q->minor_version == 1);
    for (size_t i = 0; i < q->num_headers; i++) {
        const struct sl_http_header *h = &q->headers[i];
        CHECK(h->name_len > 0 && inside(h->name, h->name_len, buf, head));
        CHECK(inside(h->value, h->value_len, buf, head));
        CHECK(!has_byte(h->name, h->name_len, ": \t\r\n"));
        CHECK(!has_byte(h->value, h->value_len, "\r\n"));
        CHECK(h->value_len == 0 || (h->value[0] != ' ' && h->value[h->value_len - 1] != ' ' &&
                                    h->value[0] != '\t' && h->value[h->value_len - 1] != '\t'));
    }
    CHECK(sl_http_find_header(q, "") == NULL);
    CHECK(q->content_length >= -1);
    CHECK(q->content_length == -1 || (uint64_t)q->content_length <= s->lim.max_body_bytes);
    CHECK(!(q->chunked && q->content_length != -1));
    CHECK(!(q->chunked && q->minor_version == 0));
    CHECK(!(q->expect_continue && q->minor_version == 0));
    const struct sl_http_header *cl = sl_http_find_header(q, "content-length");
    CHECK((cl != NULL) == (q->content_length != -1));
    CHECK((sl_http_find_header(q, "Transfer-Encoding") != NULL) == q->chunked);
    if (q->minor_version == 1) {
        const struct sl_http_header *conn = sl_http_find_header(q, "Connection");
        if (conn == NULL)
            CHECK(q->keep_alive);
    } else if (sl_http_find_header(q, "connection") == NULL) {
        CHECK(!q->keep_alive);
    }
}

/* Parses buf[0..len) placed at the end of scratch (len bytes reserved), so a
 * read past len leaves the allocation and ASan reports it. */
static void parse_at_end(const uint8_t *data, size_t len, char *scratch, size_t scratch_len,
                         const struct setting *s, struct result *r)
{
    char *buf = scratch + (scratch_len - len);
    if (len)
        memcpy(buf, data, len);
    r->consumed = 777;
    r->rc = sl_http_parse_request(buf, len, &s->lim, &r->req, r->hdrs, s->cap, &r->consumed, NULL);
    check_result(buf, len, s, r);
}

static size_t offset(const char *base, const char *p)
{
    return p == NULL ? SIZE_MAX : (size_t)(p - base);
}

/* Two successful parses of prefixes of one input found the same request. */
static void check_same(const struct result *a, const char *abase, const struct result *b,
                       const char *bbase)
{
    const struct sl_http_request *x = &a->req, *y = &b->req;
    CHECK(a->consumed == b->consumed);
    CHECK(x->method == y->method && x->method_len == y->method_len);
    CHECK(offset(abase, x->target) == offset(bbase, y->target));
    CHECK(x->target_len == y->target_len && x->path_len == y->path_len);
    CHECK(x->query_len == y->query_len && (x->query == NULL) == (y->query == NULL));
    CHECK(x->minor_version == y->minor_version && x->num_headers == y->num_headers);
    for (size_t i = 0; i < x->num_headers; i++) {
        CHECK(offset(abase, x->headers[i].name) == offset(bbase, y->headers[i].name));
        CHECK(offset(abase, x->headers[i].value) == offset(bbase, y->headers[i].value));
        CHECK(x->headers[i].value_len == y->headers[i].value_len);
    }
    CHECK(x->content_length == y->content_length && x->chunked == y->chunked);
    CHECK(x->keep_alive == y->keep_alive && x->expect_continue == y->expect_continue);
    CHECK(x->expect_unknown == y->expect_unknown);
}

/* Every prefix gives SL_EAGAIN until the first that does not; from there
 * on each gives what the whole input gives. */
static void check_prefixes(const uint8_t *data, size_t len, char *scratch, const struct setting *s,
                           const struct result *whole)
{
    const char *wbase = scratch;
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
            check_same(whole, wbase, &part, scratch + (len - k));
    }
}

/* One run of the chunked decoder over in[0..len), fed in pieces. */
struct decoded {
    int rc;
    size_t consumed;
    struct sl_buf body;
};

static void decode(const char *in, size_t len, size_t step, size_t split, uint64_t max,
                   size_t buf_max, struct decoded *out)
{
    struct sl_http_chunked d;
    sl_http_chunked_init(&d, max);
    sl_buf_init(&out->body, buf_max);
    out->rc = SL_EAGAIN;
    out->consumed = 0;
    while (out->rc == SL_EAGAIN && out->consumed < len) {
        size_t pos = out->consumed;
        size_t n = len - pos;
        if (split && pos < split && n > split - pos)
            n = split - pos;
        else if (step && n > step)
            n = step;
        size_t used = 777;
        out->rc = sl_http_chunked_feed(&d, in + pos, n, &used, &out->body);
        CHECK(used <= n);
        CHECK(out->rc != SL_EAGAIN || used == n);
        CHECK(out->rc == SL_OK || out->rc == SL_EAGAIN || out->rc == SL_EBADREQ ||
              out->rc == SL_EBODYTOOBIG);
        out->consumed += used;
        CHECK(d.total == sl_buf_size(&out->body));
        CHECK(d.total <= max && sl_buf_size(&out->body) <= buf_max);
    }
    if (out->rc != SL_EAGAIN) { /* sticky */
        size_t used = 777;
        CHECK(sl_http_chunked_feed(&d, in, len, &used, &out->body) == out->rc);
        CHECK(used == 0);
    }
}

/* Whole, one byte at a time, and split in two at split: the same result,
 * the same bytes consumed, the same body. Returns the bytes the whole run
 * consumed when it found the end of the body, else len + 1. */
static size_t check_chunked(const char *in, size_t len, size_t split, uint64_t max, size_t buf_max)
{
    struct decoded whole, bytes, halves;
    decode(in, len, 0, 0, max, buf_max, &whole);
    decode(in, len, 1, 0, max, buf_max, &bytes);
    decode(in, len, 0, split, max, buf_max, &halves);
    const struct decoded *other[] = {&bytes, &halves};
    for (size_t i = 0; i < 2; i++) {
        CHECK(other[i]->rc == whole.rc);
        CHECK(other[i]->consumed == whole.consumed);
        CHECK(sl_buf_size(&other[i]->body) == sl_buf_size(&whole.body));
        CHECK(memcmp(sl_buf_ptr(&other[i]->body), sl_buf_ptr(&whole.body),
                     sl_buf_size(&whole.body)) == 0);
    }
    sl_buf_free(&whole.body);
    sl_buf_free(&bytes.body);
    sl_buf_free(&halves.body);
    return whole.rc == SL_OK ? whole.consumed : len + 1;
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
        if (whole.rc != SL_OK || !whole.req.chunked)
            continue;
        /* The body after the head, as the server would feed it. */
        parse_at_end(data, size, scratch, size, s, &whole);
        const char *body = scratch + whole.consumed;
        size_t body_len = size - whole.consumed;
        size_t used = check_chunked(body, body_len, split % (body_len + 1), s->lim.max_body_bytes,
                                    BODY_BUF_MAX);
        (void)check_chunked(body, body_len, split % (body_len + 1), s->lim.max_body_bytes, 16);
        if (used <= body_len) { /* a pipelined request after the body */
            struct result next;
            size_t rest = body_len - used;
            next.rc = sl_http_parse_request(body + used, rest, &s->lim, &next.req, next.hdrs,
                                            s->cap, &next.consumed, NULL);
            check_result(body + used, rest, s, &next);
        }
    }

    /* The raw input as a chunked body, under big and small bounds. */
    memcpy(scratch, data, size);
    (void)check_chunked(scratch, size, split, UINT64_MAX, BODY_BUF_MAX);
    (void)check_chunked(scratch, size, split, 32, BODY_BUF_MAX);
    (void)check_chunked(scratch, size, split, 64, 16);

    free(scratch);
    return 0;
}
