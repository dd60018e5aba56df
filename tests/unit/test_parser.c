/* test_parser.c - unit tests of the HTTP/1.1 request parser (http/parser.c).
 * Every request is parsed whole and from every shorter prefix (each prefix
 * copied to its own exact-size allocation, so ASan sees any read past len);
 * every bound is tried at the bound and one over; every error code is hit.
 * The chunked decoder is fed whole, split in two at every byte, and one
 * byte at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/limits.h"
#include "http/parser.h"

/* A literal with its length, NUL bytes inside included. */
#define S(lit) lit, sizeof(lit) - 1

#define HDR_CAP 128

static const struct sl_http_limits default_limits = {
    .max_header_bytes = SL_LIMIT_HEADER_BYTES_DEFAULT,
    .max_headers = SL_LIMIT_HEADERS_DEFAULT,
    .max_url_bytes = SL_LIMIT_URL_BYTES_DEFAULT,
    .max_body_bytes = SL_LIMIT_BODY_BYTES_DEFAULT,
};

/* One parse of an exact-size private copy of the input. */
struct parsed {
    int rc;
    size_t consumed;
    char *buf; /* owned copy; req and hdrs point into it */
    size_t len;
    struct sl_http_request req;
    struct sl_http_header hdrs[HDR_CAP];
};

static void parse_with(const char *s, size_t len, const struct sl_http_limits *lim, size_t cap,
                       struct parsed *out)
{
    assert_true(cap <= HDR_CAP);
    out->buf = malloc(len ? len : 1);
    assert_non_null(out->buf);
    if (len)
        memcpy(out->buf, s, len);
    out->len = len;
    out->consumed = 12345;
    out->rc =
        sl_http_parse_request(out->buf, len, lim, &out->req, out->hdrs, cap, &out->consumed, NULL);
    assert_true(out->consumed <= len);
    if (out->rc != SL_OK)
        assert_int_equal(out->consumed, 0);
}

static void parsed_free(struct parsed *p)
{
    free(p->buf);
    p->buf = NULL;
}

static void assert_span(const char *p, size_t n, const char *want)
{
    if (n != strlen(want) || memcmp(p, want, n) != 0)
        fail_msg("got \"%.*s\", want \"%s\"", (int)n, p, want);
}

/* Offset of a borrowed pointer in its parse's buffer; the static "/" of an
 * absolute-form target without a path counts as SIZE_MAX. */
static size_t offset_in(const struct parsed *p, const char *ptr)
{
    if (ptr == NULL)
        return SIZE_MAX - 1;
    if (ptr < p->buf || ptr > p->buf + p->len)
        return SIZE_MAX;
    return (size_t)(ptr - p->buf);
}

/* Two successful parses of prefixes of the same input found the same request. */
static void assert_same_request(const struct parsed *a, const struct parsed *b)
{
    const struct sl_http_request *x = &a->req, *y = &b->req;
    assert_int_equal(a->consumed, b->consumed);
    assert_int_equal(x->method, y->method);
    assert_int_equal(offset_in(a, x->method_str), offset_in(b, y->method_str));
    assert_int_equal(x->method_len, y->method_len);
    assert_int_equal(offset_in(a, x->target), offset_in(b, y->target));
    assert_int_equal(x->target_len, y->target_len);
    assert_int_equal(offset_in(a, x->path), offset_in(b, y->path));
    assert_int_equal(x->path_len, y->path_len);
    assert_int_equal(offset_in(a, x->query), offset_in(b, y->query));
    assert_int_equal(x->query_len, y->query_len);
    assert_int_equal(x->minor_version, y->minor_version);
    assert_int_equal(x->num_headers, y->num_headers);
    for (size_t i = 0; i < x->num_headers; i++) {
        assert_int_equal(offset_in(a, x->headers[i].name), offset_in(b, y->headers[i].name));
        assert_int_equal(x->headers[i].name_len, y->headers[i].name_len);
        assert_int_equal(offset_in(a, x->headers[i].value), offset_in(b, y->headers[i].value));
        assert_int_equal(x->headers[i].value_len, y->headers[i].value_len);
    }
    assert_int_equal(x->content_length, y->content_length);
    assert_int_equal(x->chunked, y->chunked);
    assert_int_equal(x->keep_alive, y->keep_alive);
    assert_int_equal(x->expect_continue, y->expect_continue);
    assert_int_equal(x->expect_unknown, y->expect_unknown);
}

/* Parses s as it would arrive one byte per read, with one head scan: each
 * call sees the next prefix in its own exact-size copy (the buffer moves,
 * as a growing read buffer does). Stops at the first result other than
 * SL_EAGAIN; *at gets the prefix length where it came (len when none). */
static void parse_by_bytes(const char *s, size_t len, const struct sl_http_limits *lim, size_t cap,
                           struct parsed *out, size_t *at)
{
    struct sl_http_head_scan scan = {0};
    for (size_t k = 0; k <= len; k++) {
        out->buf = malloc(k ? k : 1);
        assert_non_null(out->buf);
        if (k)
            memcpy(out->buf, s, k);
        out->len = k;
        out->rc = sl_http_parse_request(out->buf, k, lim, &out->req, out->hdrs, cap, &out->consumed,
                                        &scan);
        *at = k;
        if (out->rc != SL_EAGAIN || k == len)
            return;
        free(out->buf);
    }
}

/* Parses s whole into *whole (which must succeed), then every prefix: the
 * ones shorter than the head give SL_EAGAIN, the longer ones the same
 * request. Byte by byte with a scan, the head is found at its last byte. */
static void parse_ok_split(const char *s, size_t len, const struct sl_http_limits *lim, size_t cap,
                           struct parsed *whole)
{
    parse_with(s, len, lim, cap, whole);
    if (whole->rc != SL_OK)
        fail_msg("whole request: got %s, want SL_OK", sl_errname(whole->rc));
    assert_true(whole->consumed > 0);
    for (size_t k = 0; k <= len; k++) {
        struct parsed part;
        parse_with(s, k, lim, cap, &part);
        if (k < whole->consumed) {
            if (part.rc != SL_EAGAIN)
                fail_msg("prefix %zu of %zu: got %s, want SL_EAGAIN", k, len, sl_errname(part.rc));
        } else {
            if (part.rc != SL_OK)
                fail_msg("prefix %zu of %zu: got %s, want SL_OK", k, len, sl_errname(part.rc));
            assert_same_request(whole, &part);
        }
        parsed_free(&part);
    }
    struct parsed inc;
    size_t at;
    parse_by_bytes(s, len, lim, cap, &inc, &at);
    if (inc.rc != SL_OK || at != whole->consumed)
        fail_msg("byte by byte: got %s at %zu, want SL_OK at %zu", sl_errname(inc.rc), at,
                 whole->consumed);
    assert_same_request(whole, &inc);
    parsed_free(&inc);
}

static void parse_ok(const char *s, struct parsed *whole)
{
    parse_ok_split(s, strlen(s), &default_limits, HDR_CAP, whole);
}

/* The whole input fails with want; every prefix gives SL_EAGAIN until the
 * first that fails, and from there on each fails with want too: an error is
 * found at one byte, however the input arrives. */
static void expect_error_lim(const char *s, size_t len, const struct sl_http_limits *lim,
                             size_t cap, int want)
{
    struct parsed whole;
    parse_with(s, len, lim, cap, &whole);
    parsed_free(&whole);
    if (whole.rc != want)
        fail_msg("\"%.*s\": got %s, want %s", (int)len, s, sl_errname(whole.rc), sl_errname(want));
    bool failed = false;
    size_t first = len; /* the shortest prefix that fails */
    for (size_t k = 0; k < len; k++) {
        struct parsed part;
        parse_with(s, k, lim, cap, &part);
        parsed_free(&part);
        if (part.rc == SL_EAGAIN && !failed)
            continue;
        if (part.rc != want)
            fail_msg("\"%.*s\" prefix %zu: got %s, want %s", (int)len, s, k, sl_errname(part.rc),
                     sl_errname(want));
        if (!failed)
            first = k;
        failed = true;
    }
    /* Byte by byte with a scan: the same error, found before the buffer
     * has doubled past the byte that shows it (or at the head's end). */
    struct parsed inc;
    size_t at;
    parse_by_bytes(s, len, lim, cap, &inc, &at);
    parsed_free(&inc);
    if (inc.rc == SL_EAGAIN ? len >= 2 * first : inc.rc != want || at < first || at >= 2 * first)
        fail_msg("\"%.*s\" byte by byte: got %s at %zu, want %s from %zu, before %zu", (int)len, s,
                 sl_errname(inc.rc), at, sl_errname(want), first, 2 * first);
}

static void expect_error_n(const char *s, size_t len, int want)
{
    expect_error_lim(s, len, &default_limits, HDR_CAP, want);
}

static void expect_error(const char *s, int want)
{
    expect_error_n(s, strlen(s), want);
}

/* ---- the request line ---- */

static void test_get_origin_form_parsed_whole_and_split(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("GET /v1/models HTTP/1.1\r\nHost: localhost:8080\r\nAccept: */*\r\n\r\n", &p);
    assert_int_equal(p.req.method, SL_HTTP_GET);
    assert_span(p.req.method_str, p.req.method_len, "GET");
    assert_span(p.req.target, p.req.target_len, "/v1/models");
    assert_span(p.req.path, p.req.path_len, "/v1/models");
    assert_null(p.req.query);
    assert_int_equal(p.req.query_len, 0);
    assert_int_equal(p.req.minor_version, 1);
    assert_int_equal(p.req.num_headers, 2);
    assert_ptr_equal(p.req.headers, p.hdrs);
    assert_span(p.hdrs[0].name, p.hdrs[0].name_len, "Host");
    assert_span(p.hdrs[0].value, p.hdrs[0].value_len, "localhost:8080");
    assert_span(p.hdrs[1].name, p.hdrs[1].name_len, "Accept");
    assert_span(p.hdrs[1].value, p.hdrs[1].value_len, "*/*");
    assert_int_equal(p.req.content_length, -1);
    assert_false(p.req.chunked);
    assert_true(p.req.keep_alive);
    assert_false(p.req.expect_continue);
    assert_false(p.req.expect_unknown);
    assert_int_equal(p.consumed, p.len);
    parsed_free(&p);
}

static void test_request_without_headers_parsed(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("GET / HTTP/1.0\r\n\r\n", &p);
    assert_int_equal(p.req.num_headers, 0);
    assert_int_equal(p.req.minor_version, 0);
    assert_span(p.req.path, p.req.path_len, "/");
    parsed_free(&p);
}

static void test_query_splits_at_first_question_mark(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("GET /a/b?x=1?y=2&z HTTP/1.1\r\n\r\n", &p);
    assert_span(p.req.target, p.req.target_len, "/a/b?x=1?y=2&z");
    assert_span(p.req.path, p.req.path_len, "/a/b");
    assert_non_null(p.req.query);
    assert_span(p.req.query, p.req.query_len, "x=1?y=2&z");
    parsed_free(&p);
}

static void test_empty_query_after_question_mark_is_not_null(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("GET /x? HTTP/1.1\r\n\r\n", &p);
    assert_span(p.req.path, p.req.path_len, "/x");
    assert_non_null(p.req.query);
    assert_int_equal(p.req.query_len, 0);
    parsed_free(&p);
}

static void test_options_asterisk_form_accepted(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", &p);
    assert_int_equal(p.req.method, SL_HTTP_OPTIONS);
    assert_span(p.req.target, p.req.target_len, "*");
    assert_span(p.req.path, p.req.path_len, "*");
    assert_null(p.req.query);
    parsed_free(&p);
}

static void test_asterisk_form_refused_for_other_methods_and_longer_targets(void **state)
{
    (void)state;
    expect_error("GET * HTTP/1.1\r\n\r\n", SL_EBADREQ);
    expect_error("OPTIONS *x HTTP/1.1\r\n\r\n", SL_EBADREQ);
    expect_error("OPTIONS ** HTTP/1.1\r\n\r\n", SL_EBADREQ);
}

static void test_absolute_form_accepted_with_path_and_query(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("POST http://127.0.0.1:8080/v1/chat/completions?a=b HTTP/1.1\r\n\r\n", &p);
    assert_span(p.req.target, p.req.target_len, "http://127.0.0.1:8080/v1/chat/completions?a=b");
    assert_span(p.req.path, p.req.path_len, "/v1/chat/completions");
    assert_span(p.req.query, p.req.query_len, "a=b");
    parsed_free(&p);

    parse_ok("GET HTTPS://Example.COM/x HTTP/1.1\r\n\r\n", &p);
    assert_span(p.req.path, p.req.path_len, "/x");
    assert_null(p.req.query);
    parsed_free(&p);
}

static void test_absolute_form_without_path_gives_root_path(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("GET http://example.com HTTP/1.1\r\n\r\n", &p);
    assert_span(p.req.path, p.req.path_len, "/");
    assert_null(p.req.query);
    parsed_free(&p);

    parse_ok("GET http://example.com?q=1 HTTP/1.1\r\n\r\n", &p);
    assert_span(p.req.path, p.req.path_len, "/");
    assert_span(p.req.query, p.req.query_len, "q=1");
    parsed_free(&p);
}

static void test_absolute_form_without_host_refused(void **state)
{
    (void)state;
    expect_error("GET http:///x HTTP/1.1\r\n\r\n", SL_EBADREQ);
    expect_error("GET http:// HTTP/1.1\r\n\r\n", SL_EBADREQ);
    expect_error("GET https://?q HTTP/1.1\r\n\r\n", SL_EBADREQ);
}

static void test_other_target_forms_refused(void **state)
{
    (void)state;
    expect_error("CONNECT example.com:443 HTTP/1.1\r\n\r\n", SL_EBADREQ);
    expect_error("GET v1/models HTTP/1.1\r\n\r\n", SL_EBADREQ);
    expect_error("GET ftp://host/x HTTP/1.1\r\n\r\n", SL_EBADREQ);
    expect_error("GET http:/x HTTP/1.1\r\n\r\n", SL_EBADREQ);
}

static void test_known_methods_mapped_and_unknown_tokens_are_other(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        enum sl_http_method method;
    } cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", SL_HTTP_GET},
        {"HEAD / HTTP/1.1\r\n\r\n", SL_HTTP_HEAD},
        {"POST / HTTP/1.1\r\n\r\n", SL_HTTP_POST},
        {"PUT / HTTP/1.1\r\n\r\n", SL_HTTP_PUT},
        {"DELETE / HTTP/1.1\r\n\r\n", SL_HTTP_DELETE},
        {"OPTIONS / HTTP/1.1\r\n\r\n", SL_HTTP_OPTIONS},
        {"PATCH / HTTP/1.1\r\n\r\n", SL_HTTP_PATCH},
        {"BREW / HTTP/1.1\r\n\r\n", SL_HTTP_OTHER},
        {"get / HTTP/1.1\r\n\r\n", SL_HTTP_OTHER}, /* methods are case-sensitive */
        {"GETS / HTTP/1.1\r\n\r\n", SL_HTTP_OTHER},
        {"GE / HTTP/1.1\r\n\r\n", SL_HTTP_OTHER},
        {"M-SEARCH / HTTP/1.1\r\n\r\n", SL_HTTP_OTHER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct parsed p;
        parse_ok(cases[i].line, &p);
        assert_int_equal(p.req.method, cases[i].method);
        assert_int_equal(p.req.method_len, strcspn(cases[i].line, " "));
        parsed_free(&p);
    }
}

static void test_http10_and_http11_versions_parsed(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("GET / HTTP/1.0\r\n\r\n", &p);
    assert_int_equal(p.req.minor_version, 0);
    parsed_free(&p);
    parse_ok("GET / HTTP/1.1\r\n\r\n", &p);
    assert_int_equal(p.req.minor_version, 1);
    parsed_free(&p);
}

static void test_other_wellformed_versions_give_eversion(void **state)
{
    (void)state;
    expect_error("GET / HTTP/2.0\r\n\r\n", SL_EVERSION);
    expect_error("GET / HTTP/1.2\r\n\r\n", SL_EVERSION);
    expect_error("GET / HTTP/0.9\r\n\r\n", SL_EVERSION);
    expect_error("GET / HTTP/3.0\r\n\r\n", SL_EVERSION);
    expect_error("GET / HTTP/1.9\n\n", SL_EVERSION);
}

static void test_garbage_versions_give_ebadreq(void **state)
{
    (void)state;
    expect_error("GET / HTTP/1\r\n\r\n", SL_EBADREQ);
    expect_error("GET / HTTP/2\r\n\r\n", SL_EBADREQ);
    expect_error("GET / http/1.1\r\n\r\n", SL_EBADREQ);
    expect_error("GET / HTTPS/1.1\r\n\r\n", SL_EBADREQ);
    expect_error("GET / HTTP/1.1x\r\n\r\n", SL_EBADREQ);
    expect_error("GET / HTTP/1.1 \r\n\r\n", SL_EBADREQ);
    expect_error("GET / HTTP/11.1\r\n\r\n", SL_EBADREQ);
    expect_error("GET / HTTP/1.a\r\n\r\n", SL_EBADREQ);
    expect_error("GET / \r\n\r\n", SL_EBADREQ);
    expect_error("GET /\r\n\r\n", SL_EBADREQ); /* HTTP/0.9 */
    expect_error("GET / HTTP/1.1 extra\r\n\r\n", SL_EBADREQ);
}

static void test_request_line_spacing_is_strict(void **state)
{
    (void)state;
    expect_error("GET  / HTTP/1.1\r\n\r\n", SL_EBADREQ);
    expect_error("GET /  HTTP/1.1\r\n\r\n", SL_EBADREQ);
    expect_error("GET\t/ HTTP/1.1\r\n\r\n", SL_EBADREQ);
    expect_error(" GET / HTTP/1.1\r\n\r\n", SL_EBADREQ);
    expect_error("/ HTTP/1.1\r\n\r\n", SL_EBADREQ);
    expect_error("GET\r\n\r\n", SL_EBADREQ);
}

static void test_bad_bytes_in_method_and_target_refused(void **state)
{
    (void)state;
    expect_error("G(T / HTTP/1.1\r\n\r\n", SL_EBADREQ);
    expect_error("GET /a\x7f HTTP/1.1\r\n\r\n", SL_EBADREQ);
    expect_error("GET /a\x01 HTTP/1.1\r\n\r\n", SL_EBADREQ);
    expect_error("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", SL_EBADREQ);
    expect_error("GET /a\tb HTTP/1.1\r\n\r\n", SL_EBADREQ);
}

static void test_nul_anywhere_refused(void **state)
{
    (void)state;
    expect_error_n(S("G\0T / HTTP/1.1\r\n\r\n"), SL_EBADREQ);
    expect_error_n(S("GET /\0 HTTP/1.1\r\n\r\n"), SL_EBADREQ);
    expect_error_n(S("GET / HTTP/1.\0\r\n\r\n"), SL_EBADREQ);
    expect_error_n(S("GET / HTTP/1.1\r\nHo\0st: x\r\n\r\n"), SL_EBADREQ);
    expect_error_n(S("GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n"), SL_EBADREQ);
    expect_error_n(S("GET / HTTP/1.1\r\nHost: x\r\n\0\r\n"), SL_EBADREQ);
    expect_error_n(S("\0GET / HTTP/1.1\r\n\r\n"), SL_EBADREQ);
}

static void test_bare_lf_line_endings_accepted(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("POST /v1/completions HTTP/1.1\nHost: x\nContent-Length: 2\n\nhi", &p);
    assert_int_equal(p.req.num_headers, 2);
    assert_span(p.hdrs[1].value, p.hdrs[1].value_len, "2");
    assert_int_equal(p.req.content_length, 2);
    assert_int_equal(p.consumed, p.len - 2);
    parsed_free(&p);

    parse_ok("GET / HTTP/1.1\r\nA: 1\nB: 2\r\n\n", &p); /* mixed */
    assert_int_equal(p.req.num_headers, 2);
    parsed_free(&p);
}

static void test_bare_cr_refused(void **state)
{
    (void)state;
    expect_error("GET / HTTP/1.1\rHost: x\r\n\r\n", SL_EBADREQ);
    expect_error("GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n", SL_EBADREQ);
    expect_error("GET / HTTP/1.1\r\nHost: x\r\n\rx", SL_EBADREQ);
    expect_error("\rGET / HTTP/1.1\r\n\r\n", SL_EBADREQ);
}

static void test_leading_empty_lines_skipped_up_to_the_bound(void **state)
{
    (void)state;
    char buf[256];
    size_t n = 0;
    for (int i = 0; i < SL_HTTP_LEADING_EMPTY_LINES_MAX; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s", i % 2 ? "\n" : "\r\n");
    snprintf(buf + n, sizeof buf - n, "GET /x HTTP/1.1\r\n\r\n");
    struct parsed p;
    parse_ok(buf, &p);
    assert_span(p.req.path, p.req.path_len, "/x");
    assert_int_equal(p.consumed, strlen(buf)); /* the empty lines are consumed too */
    assert_int_equal(p.req.method_str - p.buf, n);
    parsed_free(&p);

    memmove(buf + 2, buf, strlen(buf) + 1);
    memcpy(buf, "\r\n", 2);
    expect_error(buf, SL_EBADREQ);
}

/* ---- header fields ---- */

static void test_header_values_trimmed_and_inner_blanks_kept(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("GET / HTTP/1.1\r\n"
             "A:b\r\n"
             "C: \t d  e \t \r\n"
             "Empty:\r\n"
             "Blank:   \r\n"
             "Obs-Text: caf\xc3\xa9\r\n"
             "Tab:\tx\ty\t\r\n"
             "X-!#$%&'*+-.^_`|~: ok\r\n"
             "\r\n",
             &p);
    assert_int_equal(p.req.num_headers, 7);
    assert_span(p.hdrs[0].name, p.hdrs[0].name_len, "A");
    assert_span(p.hdrs[0].value, p.hdrs[0].value_len, "b");
    assert_span(p.hdrs[1].value, p.hdrs[1].value_len, "d  e");
    assert_int_equal(p.hdrs[2].value_len, 0);
    assert_int_equal(p.hdrs[3].value_len, 0);
    assert_span(p.hdrs[4].value, p.hdrs[4].value_len, "caf\xc3\xa9");
    assert_span(p.hdrs[5].value, p.hdrs[5].value_len, "x\ty");
    assert_span(p.hdrs[6].name, p.hdrs[6].name_len, "X-!#$%&'*+-.^_`|~");
    for (size_t i = 0; i < p.req.num_headers; i++) {
        assert_true(p.hdrs[i].value >= p.buf && p.hdrs[i].value <= p.buf + p.len);
        assert_true(p.hdrs[i].value + p.hdrs[i].value_len <= p.buf + p.consumed);
    }
    parsed_free(&p);
}

static void test_space_before_colon_refused(void **state)
{
    (void)state;
    expect_error("GET / HTTP/1.1\r\nHost : x\r\n\r\n", SL_EBADREQ);
    expect_error("GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", SL_EBADREQ);
    expect_error("GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello", SL_EBADREQ);
}

static void test_empty_header_name_refused(void **state)
{
    (void)state;
    expect_error("GET / HTTP/1.1\r\n: x\r\n\r\n", SL_EBADREQ);
    expect_error("GET / HTTP/1.1\r\n:\r\n\r\n", SL_EBADREQ);
}

static void test_header_line_without_colon_refused(void **state)
{
    (void)state;
    expect_error("GET / HTTP/1.1\r\nHost\r\n\r\n", SL_EBADREQ);
    expect_error("GET / HTTP/1.1\r\nHo(st: x\r\n\r\n", SL_EBADREQ);
    expect_error("GET / HTTP/1.1\r\nHost\n\n", SL_EBADREQ);
}

static void test_obs_fold_refused(void **state)
{
    (void)state;
    expect_error("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", SL_EBADREQ);
    expect_error("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", SL_EBADREQ);
    expect_error("GET / HTTP/1.1\r\n Host: x\r\n\r\n", SL_EBADREQ);
}

static void test_control_bytes_in_header_values_refused(void **state)
{
    (void)state;
    for (int c = 0; c < 0x80; c++) {
        if (c == '\t' || (c >= 0x20 && c < 0x7f))
            continue;
        char req[64];
        int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nX: a_b\r\n\r\n");
        req[20] = (char)c; /* the '_'; a CR there is a bare CR, a LF leaves "b" without ':' */
        expect_error_n(req, (size_t)n, SL_EBADREQ);
    }
}

static void test_find_header_is_case_insensitive_and_returns_first(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("GET / HTTP/1.1\r\nX-Fault: 1\r\nhost: a\r\nx-fault: 2\r\n\r\n", &p);
    const struct sl_http_header *h = sl_http_find_header(&p.req, "X-FAULT");
    assert_non_null(h);
    assert_span(h->value, h->value_len, "1");
    h = sl_http_find_header(&p.req, "Host");
    assert_non_null(h);
    assert_span(h->value, h->value_len, "a");
    assert_null(sl_http_find_header(&p.req, "X-Faul"));
    assert_null(sl_http_find_header(&p.req, "X-Faults"));
    assert_null(sl_http_find_header(&p.req, "Content-Length"));
    parsed_free(&p);
}

static void test_value_has_token_matches_whole_list_elements(void **state)
{
    (void)state;
    assert_true(sl_http_value_has_token(S("close"), "close"));
    assert_true(sl_http_value_has_token(S("Keep-Alive, Upgrade"), "upgrade"));
    assert_true(sl_http_value_has_token(S("a ,\tclose\t, b"), "close"));
    assert_true(sl_http_value_has_token(S(",,CLOSE,"), "close"));
    assert_false(sl_http_value_has_token(S("closed"), "close"));
    assert_false(sl_http_value_has_token(S("xclose"), "close"));
    assert_false(sl_http_value_has_token(S("clo se"), "close"));
    assert_false(sl_http_value_has_token(S(""), "close"));
    assert_false(sl_http_value_has_token("close", 4, "close")); /* only len bytes count */
}

/* ---- bounds: at the bound passes, one over fails ---- */

static void test_url_at_bound_passes_one_over_gives_euritoolong(void **state)
{
    (void)state;
    struct sl_http_limits lim = default_limits;
    lim.max_url_bytes = 16;
    struct parsed p;
    parse_ok_split(S("GET /aaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n"), &lim, HDR_CAP, &p);
    assert_int_equal(p.req.target_len, 16);
    parsed_free(&p);
    expect_error_lim(S("GET /aaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n"), &lim, HDR_CAP, SL_EURITOOLONG);
}

static void test_url_over_bound_known_before_line_ends(void **state)
{
    (void)state;
    struct sl_http_limits lim = default_limits;
    lim.max_url_bytes = 16;
    struct parsed p;
    parse_with(S("GET /aaaaaaaaaaaaaaa"), &lim, HDR_CAP, &p); /* 16 bytes: maybe complete */
    assert_int_equal(p.rc, SL_EAGAIN);
    parsed_free(&p);
    parse_with(S("GET /aaaaaaaaaaaaaaaa"), &lim, HDR_CAP, &p); /* the 17th byte */
    assert_int_equal(p.rc, SL_EURITOOLONG);
    parsed_free(&p);
}

static void test_header_bytes_at_bound_passes_one_over_gives_ehdrtoobig(void **state)
{
    (void)state;
    const char *req = "GET / HTTP/1.1\r\nHost: localhost\r\nX-Pad: 0123456789\r\n\r\n";
    size_t n = strlen(req);
    struct sl_http_limits lim = default_limits;
    lim.max_header_bytes = n;
    struct parsed p;
    parse_ok_split(req, n, &lim, HDR_CAP, &p);
    assert_int_equal(p.consumed, n);
    parsed_free(&p);

    lim.max_header_bytes = n - 1;
    expect_error_lim(req, n, &lim, HDR_CAP, SL_EHDRTOOBIG);
}

static void test_header_bytes_count_body_free_and_leading_lines_in(void **state)
{
    (void)state;
    /* The body after the head does not count... */
    const char *req = "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789";
    struct sl_http_limits lim = default_limits;
    lim.max_header_bytes = strlen(req) - 10;
    struct parsed p;
    parse_ok_split(req, strlen(req), &lim, HDR_CAP, &p);
    parsed_free(&p);
    /* ...but leading empty lines do. */
    const char *lead = "\r\nGET / HTTP/1.1\r\n\r\n";
    lim.max_header_bytes = strlen(lead) - 1;
    expect_error_lim(lead, strlen(lead), &lim, HDR_CAP, SL_EHDRTOOBIG);
}

static void test_incomplete_head_past_bound_gives_ehdrtoobig_at_once(void **state)
{
    (void)state;
    struct sl_http_limits lim = default_limits;
    lim.max_header_bytes = 32;
    char buf[64];
    memset(buf, 'a', sizeof buf);
    memcpy(buf, "GET / HTTP/1.1\r\nX-Long: ", 24);
    struct parsed p;
    parse_with(buf, 32, &lim, HDR_CAP, &p);
    assert_int_equal(p.rc, SL_EAGAIN);
    parsed_free(&p);
    parse_with(buf, 33, &lim, HDR_CAP, &p);
    assert_int_equal(p.rc, SL_EHDRTOOBIG);
    parsed_free(&p);
    parse_with(buf, sizeof buf, &lim, HDR_CAP, &p);
    assert_int_equal(p.rc, SL_EHDRTOOBIG);
    parsed_free(&p);
}

/* ---- the slow head (issue 10) ---- */

#define SLOW_HEAD_BYTES  (1024 * 1024)
#define SLOW_HEAD_FIELDS 64

/* A request head of SLOW_HEAD_BYTES: a request line, Host, then fields of
 * padding with bare-LF and CRLF line ends mixed, and the blank line. */
static char *slow_head(size_t *len)
{
    static char h[SLOW_HEAD_BYTES]; /* static: a failed assertion leaks nothing */
    size_t n = (size_t)sprintf(h, "GET /slow HTTP/1.1\r\nHost: x\r\n");
    size_t field = (SLOW_HEAD_BYTES - n - 2) / SLOW_HEAD_FIELDS;
    for (int i = 0; i < SLOW_HEAD_FIELDS; i++) {
        size_t f0 = n;
        n += (size_t)sprintf(h + n, "X-Pad-%02d: ", i);
        size_t eol = i % 2 ? 1 : 2;
        size_t pad = field - (n - f0) - eol;
        if (i == SLOW_HEAD_FIELDS - 1) /* the last one takes the rest */
            pad = SLOW_HEAD_BYTES - 2 - n - eol;
        memset(h + n, 'a' + i % 26, pad);
        n += pad;
        memcpy(h + n, eol == 2 ? "\r\n" : "\n", eol);
        n += eol;
    }
    memcpy(h + n, "\r\n", 2);
    n += 2;
    assert_int_equal(n, SLOW_HEAD_BYTES);
    *len = n;
    return h;
}

/* Feeds head[0..len) into one growing buffer, step bytes per call, with one
 * scan; returns the result of the call that saw the last byte. */
static int feed_request(const char *head, size_t len, size_t step, const struct sl_http_limits *lim,
                        struct sl_http_head_scan *scan, struct sl_http_request *req,
                        struct sl_http_header *hdrs, size_t *consumed)
{
    int rc = SL_EAGAIN;
    for (size_t k = step < len ? step : len;; k = k + step < len ? k + step : len) {
        rc = sl_http_parse_request(head, k, lim, req, hdrs, HDR_CAP, consumed, scan);
        if (rc != SL_EAGAIN || k == len)
            break;
    }
    return rc;
}

static void test_slow_head_is_read_a_bounded_number_of_times(void **state)
{
    (void)state;
    size_t len;
    char *head = slow_head(&len);
    struct sl_http_limits lim = default_limits;
    lim.max_header_bytes = 2 * SLOW_HEAD_BYTES;
    static const size_t steps[] = {65536, 1024, 100, 1};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        struct sl_http_head_scan scan = {0};
        struct sl_http_request req;
        struct sl_http_header hdrs[HDR_CAP];
        size_t used = 0;
        int rc = feed_request(head, len, steps[i], &lim, &scan, &req, hdrs, &used);
        if (rc != SL_OK)
            fail_msg("step %zu: got %s, want SL_OK", steps[i], sl_errname(rc));
        assert_int_equal(used, len);
        assert_int_equal(req.num_headers, SLOW_HEAD_FIELDS + 1);
        assert_span(req.path, req.path_len, "/slow");
        /* Re-parsing from byte 0 on every call reads len^2 / (2 step). */
        if (scan.examined > 4 * (uint64_t)len)
            fail_msg("step %zu: %llu bytes read for a %zu-byte head (bound %zu)", steps[i],
                     (unsigned long long)scan.examined, len, 4 * len);
    }
}

static void test_slow_head_end_split_anywhere_is_found(void **state)
{
    (void)state;
    /* Every way a head's end (LF LF, CRLF CRLF, LF CRLF, CRLF LF) can be
     * split across two reads: found at the read that completes it. */
    static const char *const heads[] = {
        "GET / HTTP/1.1\nHost: x\n\n",
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n\n",
    };
    for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++) {
        size_t len = strlen(heads[h]);
        for (size_t cut = 20; cut < len; cut++) {
            struct sl_http_head_scan scan = {0};
            struct sl_http_request req;
            struct sl_http_header hdrs[HDR_CAP];
            size_t used = 0;
            /* A first parse of a short prefix, then the cut, then the rest. */
            assert_int_equal(sl_http_parse_request(heads[h], 5, &default_limits, &req, hdrs,
                                                   HDR_CAP, &used, &scan),
                             SL_EAGAIN);
            assert_int_equal(sl_http_parse_request(heads[h], cut, &default_limits, &req, hdrs,
                                                   HDR_CAP, &used, &scan),
                             SL_EAGAIN);
            int rc = sl_http_parse_request(heads[h], len, &default_limits, &req, hdrs, HDR_CAP,
                                           &used, &scan);
            if (rc != SL_OK || used != len)
                fail_msg("head %zu cut at %zu: got %s", h, cut, sl_errname(rc));
        }
    }
}

static void test_slow_head_over_the_bound_still_gives_ehdrtoobig(void **state)
{
    (void)state;
    size_t len;
    char *head = slow_head(&len);
    struct sl_http_limits lim = default_limits;
    lim.max_header_bytes = len - 1;
    struct sl_http_head_scan scan = {0};
    struct sl_http_request req;
    struct sl_http_header hdrs[HDR_CAP];
    size_t used = 0;
    /* The call that passes the bound says so, not a later one. */
    assert_int_equal(feed_request(head, len - 1, 1000, &lim, &scan, &req, hdrs, &used), SL_EAGAIN);
    assert_int_equal(sl_http_parse_request(head, len, &lim, &req, hdrs, HDR_CAP, &used, &scan),
                     SL_EHDRTOOBIG);
}

/* Issue 10, allocation failures: the parser allocates nothing, so a plan
 * that fails every allocation changes nothing and counts none. */
static void test_parser_allocates_nothing(void **state)
{
    (void)state;
    if (!sl_alloc_faults_built())
        skip();
    size_t len;
    char *head = slow_head(&len);
    struct sl_http_limits lim = default_limits;
    lim.max_header_bytes = 2 * SLOW_HEAD_BYTES;
    assert_int_equal(sl_alloc_fail(NULL, 1, (unsigned long)-1), SL_OK);
    struct sl_http_head_scan scan = {0};
    struct sl_http_request req;
    struct sl_http_header hdrs[HDR_CAP];
    size_t used = 0;
    int rc = feed_request(head, len, 4096, &lim, &scan, &req, hdrs, &used);
    unsigned long counted = sl_alloc_counted();
    assert_int_equal(sl_alloc_fail(NULL, 0, 0), SL_OK);
    assert_int_equal(rc, SL_OK);
    assert_int_equal(counted, 0);
}

static void test_default_header_bound_is_16_kib(void **state)
{
    (void)state;
    static char big[SL_LIMIT_HEADER_BYTES_DEFAULT + 2];
    const char *head = "GET / HTTP/1.1\r\nX: ";
    size_t n = SL_LIMIT_HEADER_BYTES_DEFAULT;
    memset(big, 'v', sizeof big);
    memcpy(big, head, strlen(head));
    memcpy(big + n - 4, "\r\n\r\n", 4);
    struct parsed p;
    parse_with(big, n, &default_limits, HDR_CAP, &p);
    assert_int_equal(p.rc, SL_OK);
    assert_int_equal(p.consumed, n);
    parsed_free(&p);
    memset(big + n - 4, 'v', 4);
    memcpy(big + n - 3, "\r\n\r\n", 4);
    parse_with(big, n + 1, &default_limits, HDR_CAP, &p);
    assert_int_equal(p.rc, SL_EHDRTOOBIG);
    parsed_free(&p);
}

static void build_headers(char *buf, size_t size, size_t count)
{
    size_t n = (size_t)snprintf(buf, size, "GET / HTTP/1.1\r\n");
    for (size_t i = 0; i < count; i++)
        n += (size_t)snprintf(buf + n, size - n, "X-%zu: %zu\r\n", i, i);
    snprintf(buf + n, size - n, "\r\n");
}

static void test_header_count_at_max_headers_passes_one_over_fails(void **state)
{
    (void)state;
    struct sl_http_limits lim = default_limits;
    lim.max_headers = 3;
    char buf[512];
    build_headers(buf, sizeof buf, 3);
    struct parsed p;
    parse_ok_split(buf, strlen(buf), &lim, HDR_CAP, &p);
    assert_int_equal(p.req.num_headers, 3);
    parsed_free(&p);
    build_headers(buf, sizeof buf, 4);
    expect_error_lim(buf, strlen(buf), &lim, HDR_CAP, SL_ETOOMANYHDRS);
}

static void test_header_count_bounded_by_array_capacity(void **state)
{
    (void)state;
    char buf[512];
    build_headers(buf, sizeof buf, 2);
    struct parsed p;
    parse_ok_split(buf, strlen(buf), &default_limits, 2, &p);
    assert_int_equal(p.req.num_headers, 2);
    parsed_free(&p);
    build_headers(buf, sizeof buf, 3);
    expect_error_lim(buf, strlen(buf), &default_limits, 2, SL_ETOOMANYHDRS);
    /* no array at all: only requests without fields */
    parse_ok_split(S("GET / HTTP/1.1\r\n\r\n"), &default_limits, 0, &p);
    parsed_free(&p);
    expect_error_lim(S("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), &default_limits, 0, SL_ETOOMANYHDRS);
}

static void test_default_header_count_is_100(void **state)
{
    (void)state;
    static char buf[4096];
    build_headers(buf, sizeof buf, SL_LIMIT_HEADERS_DEFAULT);
    struct parsed p;
    parse_with(buf, strlen(buf), &default_limits, HDR_CAP, &p);
    assert_int_equal(p.rc, SL_OK);
    assert_int_equal(p.req.num_headers, SL_LIMIT_HEADERS_DEFAULT);
    parsed_free(&p);
    build_headers(buf, sizeof buf, SL_LIMIT_HEADERS_DEFAULT + 1);
    parse_with(buf, strlen(buf), &default_limits, HDR_CAP, &p);
    assert_int_equal(p.rc, SL_ETOOMANYHDRS);
    parsed_free(&p);
}

static void test_content_length_at_max_body_passes_one_over_gives_ebodytoobig(void **state)
{
    (void)state;
    struct sl_http_limits lim = default_limits;
    lim.max_body_bytes = 100;
    struct parsed p;
    parse_ok_split(S("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n"), &lim, HDR_CAP, &p);
    assert_int_equal(p.req.content_length, 100);
    parsed_free(&p);
    expect_error_lim(S("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n"), &lim, HDR_CAP,
                     SL_EBODYTOOBIG);
    lim.max_body_bytes = 0;
    parse_ok_split(S("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), &lim, HDR_CAP, &p);
    assert_int_equal(p.req.content_length, 0);
    parsed_free(&p);
    expect_error_lim(S("POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\n"), &lim, HDR_CAP,
                     SL_EBODYTOOBIG);
}

static void test_content_length_overflow_gives_ebodytoobig(void **state)
{
    (void)state;
    struct sl_http_limits lim = default_limits;
    lim.max_body_bytes = SIZE_MAX;
    expect_error_lim(S("POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n"), &lim,
                     HDR_CAP, SL_EBODYTOOBIG);
    expect_error_lim(S("POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n"), &lim,
                     HDR_CAP, SL_EBODYTOOBIG);
    expect_error_lim(S("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n"),
                     &lim, HDR_CAP, SL_EBODYTOOBIG);
    struct parsed p;
    parse_ok_split(S("POST / HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n"), &lim,
                   HDR_CAP, &p);
    assert_int_equal(p.req.content_length, INT64_MAX);
    parsed_free(&p);
    expect_error("POST / HTTP/1.1\r\nContent-Length: 4194305\r\n\r\n", SL_EBODYTOOBIG);
}

/* ---- framing ---- */

static void test_content_length_parsed_and_body_left_unconsumed(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 007\r\n\r\n{\"a\":1}", &p);
    assert_int_equal(p.req.method, SL_HTTP_POST);
    assert_int_equal(p.req.content_length, 7);
    assert_false(p.req.chunked);
    assert_int_equal(p.len - p.consumed, 7);
    assert_memory_equal(p.buf + p.consumed, "{\"a\":1}", 7);
    parsed_free(&p);
}

static void test_content_length_with_non_digits_refused(void **state)
{
    (void)state;
    static const char *const values[] = {
        "+5", "-5", "5a", "0x10", "5 5", "5;", "", "1.0", ",", "5,", ",5", "5,,5", "\xd9\xa5",
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char req[128];
        snprintf(req, sizeof req, "POST / HTTP/1.1\r\nContent-Length: %s\r\n\r\n", values[i]);
        expect_error(req, SL_EBADREQ);
    }
}

static void test_equal_content_lengths_accepted(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello", &p);
    assert_int_equal(p.req.content_length, 5);
    parsed_free(&p);
    parse_ok("POST / HTTP/1.1\r\nContent-Length: 5, 05 ,5\r\n\r\nhello", &p);
    assert_int_equal(p.req.content_length, 5);
    parsed_free(&p);
}

static void test_conflicting_content_lengths_refused(void **state)
{
    (void)state;
    expect_error("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", SL_EBADREQ);
    expect_error("POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n", SL_EBADREQ);
}

static void test_transfer_encoding_chunked_any_case(void **state)
{
    (void)state;
    static const char *const values[] = {"chunked", "Chunked", "CHUNKED", "  chunked \t"};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char req[128];
        snprintf(req, sizeof req, "POST / HTTP/1.1\r\nTransfer-Encoding: %s\r\n\r\n", values[i]);
        struct parsed p;
        parse_ok(req, &p);
        assert_true(p.req.chunked);
        assert_int_equal(p.req.content_length, -1);
        parsed_free(&p);
    }
}

static void test_other_transfer_encodings_give_enotimpl(void **state)
{
    (void)state;
    static const char *const values[] = {
        "gzip", "chunked, gzip", "gzip, chunked", "identity", "chunked;x=1", "deflate",
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char req[128];
        snprintf(req, sizeof req, "POST / HTTP/1.1\r\nTransfer-Encoding: %s\r\n\r\n", values[i]);
        expect_error(req, SL_ENOTIMPL);
    }
    expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
                 SL_ENOTIMPL);
}

static void test_chunked_applied_twice_or_empty_transfer_encoding_refused(void **state)
{
    (void)state;
    expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", SL_EBADREQ);
    expect_error(
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        SL_EBADREQ);
    expect_error("POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", SL_EBADREQ);
    expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: ,\r\n\r\n", SL_EBADREQ);
}

static void test_content_length_with_transfer_encoding_refused_either_order(void **state)
{
    (void)state;
    expect_error("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                 SL_EBADREQ);
    expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                 SL_EBADREQ);
    expect_error("POST / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: gzip\r\n\r\n",
                 SL_EBADREQ);
}

static void test_transfer_encoding_in_http10_refused(void **state)
{
    (void)state;
    expect_error("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", SL_EBADREQ);
    expect_error("POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n", SL_EBADREQ);
}

/* ---- connection semantics ---- */

static void test_keep_alive_rules_by_version_and_connection(void **state)
{
    (void)state;
    static const struct {
        const char *req;
        bool keep_alive;
    } cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nConnection: Upgrade, close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", true},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct parsed p;
        parse_ok(cases[i].req, &p);
        if (p.req.keep_alive != cases[i].keep_alive)
            fail_msg("%s: keep_alive %d, want %d", cases[i].req, p.req.keep_alive,
                     cases[i].keep_alive);
        parsed_free(&p);
    }
}

static void test_expect_100_continue_any_case(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("POST / HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", &p);
    assert_true(p.req.expect_continue);
    assert_false(p.req.expect_unknown);
    parsed_free(&p);
    parse_ok("POST / HTTP/1.1\r\nexpect:  100-Continue \r\nContent-Length: 5\r\n\r\n", &p);
    assert_true(p.req.expect_continue);
    parsed_free(&p);
}

static void test_other_expectations_flagged_unknown(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", &p);
    assert_false(p.req.expect_continue);
    assert_true(p.req.expect_unknown);
    parsed_free(&p);
    parse_ok("POST / HTTP/1.1\r\nExpect: 100-continue-please\r\n\r\n", &p);
    assert_false(p.req.expect_continue);
    assert_true(p.req.expect_unknown);
    parsed_free(&p);
    parse_ok("POST / HTTP/1.1\r\nExpect:\r\n\r\n", &p);
    assert_false(p.req.expect_continue);
    assert_false(p.req.expect_unknown);
    parsed_free(&p);
}

static void test_expect_100_continue_ignored_in_http10(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", &p);
    assert_false(p.req.expect_continue);
    parsed_free(&p);
}

static void test_head_request_parsed(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n", &p);
    assert_int_equal(p.req.method, SL_HTTP_HEAD);
    assert_span(p.req.path, p.req.path_len, "/health");
    assert_int_equal(p.req.content_length, -1);
    assert_true(p.req.keep_alive);
    parsed_free(&p);
}

static void test_empty_and_partial_input_needs_more(void **state)
{
    (void)state;
    struct parsed p;
    parse_with("", 0, &default_limits, HDR_CAP, &p);
    assert_int_equal(p.rc, SL_EAGAIN);
    parsed_free(&p);
    parse_with(S("\r\n"), &default_limits, HDR_CAP, &p);
    assert_int_equal(p.rc, SL_EAGAIN);
    parsed_free(&p);
    parse_with(S("GET / HTTP/1.1\r\n\r"), &default_limits, HDR_CAP, &p);
    assert_int_equal(p.rc, SL_EAGAIN);
    parsed_free(&p);
}

static void test_pipelined_requests_consumed_points_at_the_second(void **state)
{
    (void)state;
    const char *two = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /b?c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    struct parsed first;
    parse_ok(two, &first);
    assert_span(first.req.path, first.req.path_len, "/a");
    assert_true(first.req.keep_alive);
    assert_memory_equal(first.buf + first.consumed, "GET /b", 6);

    struct parsed second;
    parse_ok_split(first.buf + first.consumed, first.len - first.consumed, &default_limits, HDR_CAP,
                   &second);
    assert_span(second.req.path, second.req.path_len, "/b");
    assert_span(second.req.query, second.req.query_len, "c");
    assert_false(second.req.keep_alive);
    assert_int_equal(second.consumed, second.len);
    parsed_free(&second);
    parsed_free(&first);
}

static void test_pipelined_post_body_then_request(void **state)
{
    (void)state;
    const char *two = "POST /v1/completions HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                      "\r\n" /* a stray line end after the body is tolerated */
                      "GET /health HTTP/1.1\r\n\r\n";
    struct parsed first;
    parse_ok(two, &first);
    assert_int_equal(first.req.content_length, 5);
    size_t next = first.consumed + (size_t)first.req.content_length;
    assert_memory_equal(first.buf + first.consumed, "hello", 5);

    struct parsed second;
    parse_ok_split(first.buf + next, first.len - next, &default_limits, HDR_CAP, &second);
    assert_span(second.req.path, second.req.path_len, "/health");
    assert_int_equal(second.consumed, second.len);
    parsed_free(&second);
    parsed_free(&first);
}

/* ---- the chunked body decoder ---- */

struct decoded {
    int rc;
    size_t consumed; /* over all feeds */
    struct sl_buf body;
};

/* Feeds in[0..len) in pieces of at most step bytes (0: whole), stopping at
 * the first result other than SL_EAGAIN. */
static void decode(const char *in, size_t len, size_t step, size_t split, uint64_t max,
                   size_t buf_max, struct decoded *out)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, in, len);
    struct sl_http_chunked d;
    sl_http_chunked_init(&d, max);
    sl_buf_init(&out->body, buf_max);
    out->consumed = 0;
    out->rc = SL_EAGAIN;
    size_t pos = 0;
    while (out->rc == SL_EAGAIN && pos < len) {
        size_t n = len - pos;
        if (split && pos < split && n > split - pos)
            n = split - pos;
        else if (step && n > step)
            n = step;
        /* Each piece in its own allocation, so reading past it is caught. */
        char *piece = malloc(n);
        assert_non_null(piece);
        memcpy(piece, copy + pos, n);
        size_t used = 99999;
        out->rc = sl_http_chunked_feed(&d, piece, n, &used, &out->body);
        free(piece);
        assert_true(used <= n);
        if (out->rc == SL_EAGAIN)
            assert_int_equal(used, n);
        pos += used;
        out->consumed = pos;
        assert_int_equal(d.total, sl_buf_size(&out->body));
        assert_true(d.total <= max);
    }
    if (out->rc != SL_EAGAIN) { /* sticky and idempotent afterwards */
        size_t used = 1;
        int again = sl_http_chunked_feed(&d, "0\r\n\r\n", 5, &used, &out->body);
        assert_int_equal(again, out->rc);
        assert_int_equal(used, 0);
    }
    free(copy);
}

/* Decodes whole, split in two at every byte, and one byte at a time; all
 * must agree on the result, the bytes consumed and the body. */
static void decode_all_ways(const char *in, size_t len, uint64_t max, size_t buf_max, int want_rc,
                            size_t want_consumed, const char *want_body, size_t want_body_len)
{
    for (size_t split = 0; split <= len + 1; split++) {
        struct decoded r;
        if (split == len + 1)
            decode(in, len, 1, 0, max, buf_max, &r);
        else
            decode(in, len, 0, split, max, buf_max, &r);
        if (r.rc != want_rc)
            fail_msg("split %zu: got %s, want %s", split, sl_errname(r.rc), sl_errname(want_rc));
        if (want_rc != SL_EAGAIN)
            assert_int_equal(r.consumed, want_consumed);
        assert_int_equal(sl_buf_size(&r.body), want_body_len);
        assert_memory_equal(sl_buf_ptr(&r.body), want_body, want_body_len);
        sl_buf_free(&r.body);
    }
}

#define BIG_MAX ((uint64_t)1 << 40)

static void test_chunked_body_decoded_whole_and_split_at_every_byte(void **state)
{
    (void)state;
    const char in[] = "5\r\nhello\r\n1a\r\n, this chunk has 26 bytes.\r\n0\r\n\r\n";
    const char body[] = "hello, this chunk has 26 bytes.";
    decode_all_ways(in, sizeof in - 1, BIG_MAX, SIZE_MAX, SL_OK, sizeof in - 1, body,
                    sizeof body - 1);
}

static void test_chunked_stops_at_end_and_leaves_next_request(void **state)
{
    (void)state;
    const char in[] = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    decode_all_ways(in, sizeof in - 1, BIG_MAX, SIZE_MAX, SL_OK, 13, "abc", 3);
}

static void test_chunked_request_then_pipelined_request(void **state)
{
    (void)state;
    const char in[] = "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n"
                      "GET /health HTTP/1.1\r\n\r\n";
    struct parsed p;
    parse_ok(in, &p);
    assert_true(p.req.chunked);
    struct decoded r;
    decode(p.buf + p.consumed, p.len - p.consumed, 0, 0, BIG_MAX, SIZE_MAX, &r);
    assert_int_equal(r.rc, SL_OK);
    assert_int_equal(sl_buf_size(&r.body), 7);
    assert_memory_equal(sl_buf_ptr(&r.body), "{\"a\":1}", 7);
    sl_buf_free(&r.body);
    struct parsed next;
    size_t at = p.consumed + r.consumed;
    parse_ok_split(p.buf + at, p.len - at, &default_limits, HDR_CAP, &next);
    assert_span(next.req.path, next.req.path_len, "/health");
    parsed_free(&next);
    parsed_free(&p);
}

static void test_chunked_hex_sizes_any_case_with_leading_zeros(void **state)
{
    (void)state;
    char in[128];
    char want[32];
    memset(want, 'x', sizeof want);
    int n = snprintf(in, sizeof in, "0000A\r\nxxxxxxxxxx\r\nf\r\nxxxxxxxxxxxxxxx\r\n0\r\n\r\n");
    decode_all_ways(in, (size_t)n, BIG_MAX, SIZE_MAX, SL_OK, (size_t)n, want, 25);
}

static void test_chunked_extensions_skipped(void **state)
{
    (void)state;
    const char in[] = "5;name=value;flag\r\nhello\r\n3 ; q=\"a b\"\r\nabc\r\n0;last\r\n\r\n";
    decode_all_ways(in, sizeof in - 1, BIG_MAX, SIZE_MAX, SL_OK, sizeof in - 1, "helloabc", 8);
}

static void test_chunked_trailers_skipped(void **state)
{
    (void)state;
    const char in[] = "2\r\nhi\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\nnext";
    decode_all_ways(in, sizeof in - 1, BIG_MAX, SIZE_MAX, SL_OK, sizeof in - 1 - 4, "hi", 2);
}

static void test_chunked_bare_lf_line_endings(void **state)
{
    (void)state;
    const char in[] = "2\nhi\n1;x\n!\n0\nTrailer: t\n\n";
    decode_all_ways(in, sizeof in - 1, BIG_MAX, SIZE_MAX, SL_OK, sizeof in - 1, "hi!", 3);
}

static void test_chunked_partial_input_needs_more(void **state)
{
    (void)state;
    const char in[] = "5\r\nhel";
    decode_all_ways(in, sizeof in - 1, BIG_MAX, SIZE_MAX, SL_EAGAIN, 0, "hel", 3);
    const char in2[] = "0\r\nX: y\r\n";
    decode_all_ways(in2, sizeof in2 - 1, BIG_MAX, SIZE_MAX, SL_EAGAIN, 0, "", 0);
}

static void test_chunked_bad_framing_gives_ebadreq(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t fail_at; /* bytes consumed when the error is found */
        size_t body;    /* body bytes decoded before it */
    } cases[] = {
        {"\r\n", 0, 0},                                /* empty size */
        {";ext\r\n", 0, 0},                            /* empty size before an extension */
        {" 5\r\nhello\r\n0\r\n\r\n", 0, 0},            /* blank before the size */
        {"g\r\n", 0, 0},                               /* not hex */
        {"5x\r\nhello\r\n0\r\n\r\n", 1, 0},            /* junk after the size */
        {"5 x\r\n", 2, 0},                             /* junk after blanks */
        {"-5\r\n", 0, 0},                              /* signed */
        {"0x5\r\n", 1, 0},                             /* C prefix */
        {"5\rhello", 2, 0},                            /* CR without LF */
        {"5\r\nhelloX\r\n", 8, 5},                     /* data longer than the size */
        {"5\r\nhello\rX", 9, 5},                       /* CR without LF after data */
        {"5\r\nhello\r\n0\r\nX: \x01\r\n\r\n", 16, 5}, /* control byte in a trailer */
        {"5\r\nhello\r\n0\r\n\rX", 14, 5},             /* final CR without LF */
        {"5;a\x01\r\n", 3, 0},                         /* control byte in an extension */
        {"5;a\0\r\n", 3, 0},                           /* NUL in an extension */
        {"0\r\nX: y\rZ", 8, 0},                        /* trailer CR without LF */
        {"11111111111111111\r\n", 16, 0},              /* 17 hex digits overflow 64 bits */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *in = cases[i].in;
        size_t len = strlen(in);
        if (i == 14)
            len = 6; /* the literal with a NUL */
        for (size_t split = 0; split <= len + 1; split++) {
            struct decoded r;
            decode(in, len, split == len + 1 ? 1 : 0, split == len + 1 ? 0 : split, UINT64_MAX,
                   SIZE_MAX, &r);
            if (r.rc != SL_EBADREQ || r.consumed != cases[i].fail_at)
                fail_msg("case %zu split %zu: got %s after %zu bytes, want SL_EBADREQ after %zu", i,
                         split, sl_errname(r.rc), r.consumed, cases[i].fail_at);
            assert_int_equal(sl_buf_size(&r.body), cases[i].body);
            sl_buf_free(&r.body);
        }
    }
}

static void test_chunked_body_at_max_passes_one_over_gives_ebodytoobig(void **state)
{
    (void)state;
    const char in[] = "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
    decode_all_ways(in, sizeof in - 1, 10, SIZE_MAX, SL_OK, sizeof in - 1, "helloworld", 10);
    /* one over: refused at the size digit that crosses the bound, before data */
    decode_all_ways(in, sizeof in - 1, 9, SIZE_MAX, SL_EBODYTOOBIG, 10, "hello", 5);
    const char big[] = "100000\r\n";
    decode_all_ways(big, sizeof big - 1, 0xfffff, SIZE_MAX, SL_EBODYTOOBIG, 5, "", 0);
    decode_all_ways(big, sizeof big - 1, 0x100000, SIZE_MAX, SL_EAGAIN, 0, "", 0);
}

static void test_chunked_huge_size_gives_ebodytoobig_before_overflow(void **state)
{
    (void)state;
    const char in[] = "ffffffffffffffffff\r\n";
    decode_all_ways(in, sizeof in - 1, SL_LIMIT_BODY_BYTES_DEFAULT, SIZE_MAX, SL_EBODYTOOBIG, 5, "",
                    0);
    decode_all_ways(in, sizeof in - 1, UINT64_MAX, SIZE_MAX, SL_EBADREQ, 16, "", 0);
}

static void test_chunked_body_buffer_ceiling_gives_ebodytoobig(void **state)
{
    (void)state;
    const char in[] = "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
    /* the buffer takes 7 of the 10 bytes, whatever the split */
    decode_all_ways(in, sizeof in - 1, BIG_MAX, 7, SL_EBODYTOOBIG, 15, "hellowo", 7);
    decode_all_ways(in, sizeof in - 1, BIG_MAX, 10, SL_OK, sizeof in - 1, "helloworld", 10);
}

static void test_chunked_extension_bytes_bounded(void **state)
{
    (void)state;
    static char in[SL_LIMIT_CHUNK_EXT_BYTES + 64];
    /* the size line: "1;" and padding, SL_LIMIT_CHUNK_EXT_BYTES bytes in all */
    memset(in, 'e', sizeof in);
    memcpy(in, "1;", 2);
    size_t line = SL_LIMIT_CHUNK_EXT_BYTES;
    memcpy(in + line, "\r\nx\r\n0\r\n\r\n", 10);
    struct decoded r;
    decode(in, line + 10, 0, 0, BIG_MAX, SIZE_MAX, &r);
    assert_int_equal(r.rc, SL_OK);
    assert_int_equal(r.consumed, line + 10);
    sl_buf_free(&r.body);
    decode(in, line + 10, 1, 0, BIG_MAX, SIZE_MAX, &r);
    assert_int_equal(r.rc, SL_OK);
    sl_buf_free(&r.body);

    memset(in, 'e', sizeof in);
    memcpy(in, "1;", 2);
    memcpy(in + line + 1, "\r\nx\r\n0\r\n\r\n", 10);
    decode(in, line + 11, 0, 0, BIG_MAX, SIZE_MAX, &r);
    assert_int_equal(r.rc, SL_EBADREQ);
    assert_int_equal(r.consumed, line);
    sl_buf_free(&r.body);

    /* leading zeros count too */
    memset(in, '0', sizeof in);
    decode(in, line + 1, 0, 0, BIG_MAX, SIZE_MAX, &r);
    assert_int_equal(r.rc, SL_EBADREQ);
    assert_int_equal(r.consumed, line);
    sl_buf_free(&r.body);
}

static void test_chunked_trailer_bytes_bounded(void **state)
{
    (void)state;
    static char in[SL_LIMIT_TRAILER_BYTES * 2];
    /* trailer lines "X:tttt" whose bytes (line ends excluded) sum to the bound */
    size_t n = (size_t)snprintf(in, sizeof in, "0\r\n");
    size_t counted = 0;
    while (counted < SL_LIMIT_TRAILER_BYTES) {
        size_t take = SL_LIMIT_TRAILER_BYTES - counted;
        if (take > 100)
            take = 100;
        in[n] = 'X';
        memset(in + n + 1, 't', take - 1);
        n += take;
        memcpy(in + n, "\r\n", 2);
        n += 2;
        counted += take;
    }
    memcpy(in + n, "\r\n", 2);
    decode_all_ways(in, n + 2, BIG_MAX, SIZE_MAX, SL_OK, n + 2, "", 0);

    /* one more byte in the last line */
    memmove(in + n - 1, in + n - 2, 4);
    in[n - 2] = 't';
    struct decoded r;
    decode(in, n + 3, 0, 0, BIG_MAX, SIZE_MAX, &r);
    assert_int_equal(r.rc, SL_EBADREQ);
    assert_int_equal(r.consumed, n - 2);
    sl_buf_free(&r.body);
}

static void test_chunked_empty_body(void **state)
{
    (void)state;
    const char in[] = "0\r\n\r\n";
    decode_all_ways(in, sizeof in - 1, 0, 0, SL_OK, 5, "", 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_origin_form_parsed_whole_and_split),
        cmocka_unit_test(test_request_without_headers_parsed),
        cmocka_unit_test(test_query_splits_at_first_question_mark),
        cmocka_unit_test(test_empty_query_after_question_mark_is_not_null),
        cmocka_unit_test(test_options_asterisk_form_accepted),
        cmocka_unit_test(test_asterisk_form_refused_for_other_methods_and_longer_targets),
        cmocka_unit_test(test_absolute_form_accepted_with_path_and_query),
        cmocka_unit_test(test_absolute_form_without_path_gives_root_path),
        cmocka_unit_test(test_absolute_form_without_host_refused),
        cmocka_unit_test(test_other_target_forms_refused),
        cmocka_unit_test(test_known_methods_mapped_and_unknown_tokens_are_other),
        cmocka_unit_test(test_http10_and_http11_versions_parsed),
        cmocka_unit_test(test_other_wellformed_versions_give_eversion),
        cmocka_unit_test(test_garbage_versions_give_ebadreq),
        cmocka_unit_test(test_request_line_spacing_is_strict),
        cmocka_unit_test(test_bad_bytes_in_method_and_target_refused),
        cmocka_unit_test(test_nul_anywhere_refused),
        cmocka_unit_test(test_bare_lf_line_endings_accepted),
        cmocka_unit_test(test_bare_cr_refused),
        cmocka_unit_test(test_leading_empty_lines_skipped_up_to_the_bound),
        cmocka_unit_test(test_header_values_trimmed_and_inner_blanks_kept),
        cmocka_unit_test(test_space_before_colon_refused),
        cmocka_unit_test(test_empty_header_name_refused),
        cmocka_unit_test(test_header_line_without_colon_refused),
        cmocka_unit_test(test_obs_fold_refused),
        cmocka_unit_test(test_control_bytes_in_header_values_refused),
        cmocka_unit_test(test_find_header_is_case_insensitive_and_returns_first),
        cmocka_unit_test(test_value_has_token_matches_whole_list_elements),
        cmocka_unit_test(test_url_at_bound_passes_one_over_gives_euritoolong),
        cmocka_unit_test(test_url_over_bound_known_before_line_ends),
        cmocka_unit_test(test_header_bytes_at_bound_passes_one_over_gives_ehdrtoobig),
        cmocka_unit_test(test_header_bytes_count_body_free_and_leading_lines_in),
        cmocka_unit_test(test_incomplete_head_past_bound_gives_ehdrtoobig_at_once),
        cmocka_unit_test(test_slow_head_is_read_a_bounded_number_of_times),
        cmocka_unit_test(test_slow_head_end_split_anywhere_is_found),
        cmocka_unit_test(test_slow_head_over_the_bound_still_gives_ehdrtoobig),
        cmocka_unit_test(test_parser_allocates_nothing),
        cmocka_unit_test(test_default_header_bound_is_16_kib),
        cmocka_unit_test(test_header_count_at_max_headers_passes_one_over_fails),
        cmocka_unit_test(test_header_count_bounded_by_array_capacity),
        cmocka_unit_test(test_default_header_count_is_100),
        cmocka_unit_test(test_content_length_at_max_body_passes_one_over_gives_ebodytoobig),
        cmocka_unit_test(test_content_length_overflow_gives_ebodytoobig),
        cmocka_unit_test(test_content_length_parsed_and_body_left_unconsumed),
        cmocka_unit_test(test_content_length_with_non_digits_refused),
        cmocka_unit_test(test_equal_content_lengths_accepted),
        cmocka_unit_test(test_conflicting_content_lengths_refused),
        cmocka_unit_test(test_transfer_encoding_chunked_any_case),
        cmocka_unit_test(test_other_transfer_encodings_give_enotimpl),
        cmocka_unit_test(test_chunked_applied_twice_or_empty_transfer_encoding_refused),
        cmocka_unit_test(test_content_length_with_transfer_encoding_refused_either_order),
        cmocka_unit_test(test_transfer_encoding_in_http10_refused),
        cmocka_unit_test(test_keep_alive_rules_by_version_and_connection),
        cmocka_unit_test(test_expect_100_continue_any_case),
        cmocka_unit_test(test_other_expectations_flagged_unknown),
        cmocka_unit_test(test_expect_100_continue_ignored_in_http10),
        cmocka_unit_test(test_head_request_parsed),
        cmocka_unit_test(test_empty_and_partial_input_needs_more),
        cmocka_unit_test(test_pipelined_requests_consumed_points_at_the_second),
        cmocka_unit_test(test_pipelined_post_body_then_request),
        cmocka_unit_test(test_chunked_body_decoded_whole_and_split_at_every_byte),
        cmocka_unit_test(test_chunked_stops_at_end_and_leaves_next_request),
        cmocka_unit_test(test_chunked_request_then_pipelined_request),
        cmocka_unit_test(test_chunked_hex_sizes_any_case_with_leading_zeros),
        cmocka_unit_test(test_chunked_extensions_skipped),
        cmocka_unit_test(test_chunked_trailers_skipped),
        cmocka_unit_test(test_chunked_bare_lf_line_endings),
        cmocka_unit_test(test_chunked_partial_input_needs_more),
        cmocka_unit_test(test_chunked_bad_framing_gives_ebadreq),
        cmocka_unit_test(test_chunked_body_at_max_passes_one_over_gives_ebodytoobig),
        cmocka_unit_test(test_chunked_huge_size_gives_ebodytoobig_before_overflow),
        cmocka_unit_test(test_chunked_body_buffer_ceiling_gives_ebodytoobig),
        cmocka_unit_test(test_chunked_extension_bytes_bounded),
        cmocka_unit_test(test_chunked_trailer_bytes_bounded),
        cmocka_unit_test(test_chunked_empty_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
