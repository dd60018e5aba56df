/* test_response.c - unit tests of the HTTP/1.x response head parser and the
 * zero-copy chunked decoder (http/parser.c), the upstream client's side.
 * Every head is parsed whole and from every shorter prefix (each prefix in
 * its own exact-size allocation, so ASan sees any read past len); every
 * bound is tried at the bound and one over; every error code is hit.
 * sl_http_chunked_next is fed whole, split in two at every byte and one byte
 * at a time: the concatenated data, the result and the bytes consumed must
 * agree, and equal what sl_http_chunked_feed makes of the same input. The
 * real vLLM SSE captures go through it wrapped in chunks of several sizes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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

/* What vLLM (uvicorn, Starlette's StreamingResponse) sends before a
 * streamed chat completion; the date is that of the captured stream. */
static const char vllm_head[] = "HTTP/1.1 200 OK\r\n"
                                "date: Sun, 27 Jul 2025 11:33:52 GMT\r\n"
                                "server: uvicorn\r\n"
                                "content-type: text/event-stream; charset=utf-8\r\n"
                                "transfer-encoding: chunked\r\n"
                                "\r\n";

/* One parse of an exact-size private copy of the input. */
struct parsed {
    int rc;
    size_t consumed;
    char *buf; /* owned copy; res and hdrs point into it */
    size_t len;
    struct sl_http_response res;
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
        sl_http_parse_response(out->buf, len, lim, &out->res, out->hdrs, cap, &out->consumed, NULL);
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

/* Offset of a borrowed pointer in its parse's buffer. */
static size_t offset_in(const struct parsed *p, const char *ptr)
{
    if (ptr == NULL)
        return SIZE_MAX - 1;
    if (ptr < p->buf || ptr > p->buf + p->len)
        return SIZE_MAX;
    return (size_t)(ptr - p->buf);
}

/* Two successful parses of prefixes of the same input found the same head. */
static void assert_same_response(const struct parsed *a, const struct parsed *b)
{
    const struct sl_http_response *x = &a->res, *y = &b->res;
    assert_int_equal(a->consumed, b->consumed);
    assert_int_equal(x->status, y->status);
    assert_int_equal(x->minor_version, y->minor_version);
    assert_int_equal(offset_in(a, x->reason), offset_in(b, y->reason));
    assert_int_equal(x->reason_len, y->reason_len);
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
}

/* Parses s whole into *whole (which must succeed), then every prefix: the
 * ones shorter than the head give SL_EAGAIN, the longer ones the same head.
 * Every pointer of the head lies inside it. */
static void parse_ok_split(const char *s, size_t len, const struct sl_http_limits *lim, size_t cap,
                           struct parsed *whole)
{
    parse_with(s, len, lim, cap, whole);
    if (whole->rc != SL_OK)
        fail_msg("whole head: got %s, want SL_OK", sl_errname(whole->rc));
    assert_true(whole->consumed > 0);
    assert_ptr_equal(whole->res.headers, whole->hdrs);
    assert_true(offset_in(whole, whole->res.reason) + whole->res.reason_len <= whole->consumed);
    for (size_t i = 0; i < whole->res.num_headers; i++) {
        const struct sl_http_header *h = &whole->hdrs[i];
        assert_true(offset_in(whole, h->name) + h->name_len <= whole->consumed);
        assert_true(offset_in(whole, h->value) + h->value_len <= whole->consumed);
    }
    for (size_t k = 0; k <= len; k++) {
        struct parsed part;
        parse_with(s, k, lim, cap, &part);
        if (k < whole->consumed) {
            if (part.rc != SL_EAGAIN)
                fail_msg("prefix %zu of %zu: got %s, want SL_EAGAIN", k, len, sl_errname(part.rc));
        } else {
            if (part.rc != SL_OK)
                fail_msg("prefix %zu of %zu: got %s, want SL_OK", k, len, sl_errname(part.rc));
            assert_same_response(whole, &part);
        }
        parsed_free(&part);
    }
}

static void parse_ok(const char *s, struct parsed *whole)
{
    parse_ok_split(s, strlen(s), &default_limits, HDR_CAP, whole);
}

/* The whole input fails with want; every prefix gives SL_EAGAIN until the
 * first that fails, and from there on each fails with want too. */
static void expect_error_lim(const char *s, size_t len, const struct sl_http_limits *lim,
                             size_t cap, int want)
{
    struct parsed whole;
    parse_with(s, len, lim, cap, &whole);
    parsed_free(&whole);
    if (whole.rc != want)
        fail_msg("\"%.*s\": got %s, want %s", (int)len, s, sl_errname(whole.rc), sl_errname(want));
    bool failed = false;
    for (size_t k = 0; k < len; k++) {
        struct parsed part;
        parse_with(s, k, lim, cap, &part);
        parsed_free(&part);
        if (part.rc == SL_EAGAIN && !failed)
            continue;
        if (part.rc != want)
            fail_msg("\"%.*s\" prefix %zu: got %s, want %s", (int)len, s, k, sl_errname(part.rc),
                     sl_errname(want));
        failed = true;
    }
}

static void expect_error_n(const char *s, size_t len, int want)
{
    expect_error_lim(s, len, &default_limits, HDR_CAP, want);
}

static void expect_error(const char *s, int want)
{
    expect_error_n(s, strlen(s), want);
}

/* ---- the status line ---- */

static void test_vllm_stream_head_parsed_whole_and_split(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok(vllm_head, &p);
    assert_int_equal(p.consumed, sizeof vllm_head - 1);
    assert_int_equal(p.res.status, 200);
    assert_int_equal(p.res.minor_version, 1);
    assert_span(p.res.reason, p.res.reason_len, "OK");
    assert_int_equal(p.res.num_headers, 4);
    assert_span(p.hdrs[0].name, p.hdrs[0].name_len, "date");
    assert_span(p.hdrs[0].value, p.hdrs[0].value_len, "Sun, 27 Jul 2025 11:33:52 GMT");
    assert_span(p.hdrs[2].value, p.hdrs[2].value_len, "text/event-stream; charset=utf-8");
    assert_int_equal(p.res.content_length, -1);
    assert_true(p.res.chunked);
    assert_true(p.res.keep_alive);
    assert_int_equal(sl_http_response_body(&p.res, false), SL_HTTP_BODY_CHUNKED);
    const struct sl_http_header *h = sl_http_find_response_header(&p.res, "Server");
    assert_non_null(h);
    assert_span(h->value, h->value_len, "uvicorn");
    parsed_free(&p);
}

static void test_reason_may_be_empty_with_or_without_its_space(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("HTTP/1.0 404\r\n\r\n", &p);
    assert_int_equal(p.res.status, 404);
    assert_int_equal(p.res.minor_version, 0);
    assert_int_equal(p.res.reason_len, 0);
    assert_int_equal(offset_in(&p, p.res.reason), 12);
    parsed_free(&p);

    parse_ok("HTTP/1.1 204 \r\n\r\n", &p);
    assert_int_equal(p.res.status, 204);
    assert_int_equal(p.res.reason_len, 0);
    parsed_free(&p);

    parse_ok("HTTP/1.1 200\n\n", &p);
    assert_int_equal(p.res.status, 200);
    assert_int_equal(p.res.reason_len, 0);
    assert_int_equal(p.consumed, 14);
    parsed_free(&p);
}

static void test_reason_keeps_inner_blanks_and_obs_text(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("HTTP/1.1 500 Internal Server Error\r\n\r\n", &p);
    assert_span(p.res.reason, p.res.reason_len, "Internal Server Error");
    parsed_free(&p);
    parse_ok("HTTP/1.1 200 D\xc3\xa9j\xc3\xa0 vu\t!\r\n\r\n", &p);
    assert_span(p.res.reason, p.res.reason_len, "D\xc3\xa9j\xc3\xa0 vu\t!");
    parsed_free(&p);
    parse_ok("HTTP/1.1 200  OK\r\n\r\n", &p); /* a second SP belongs to the reason */
    assert_span(p.res.reason, p.res.reason_len, " OK");
    parsed_free(&p);
}

static void test_status_bounds_100_and_999_accepted(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("HTTP/1.1 100 Continue\r\n\r\n", &p);
    assert_int_equal(p.res.status, 100);
    parsed_free(&p);
    parse_ok("HTTP/1.1 999 Odd\r\n\r\n", &p);
    assert_int_equal(p.res.status, 999);
    parsed_free(&p);
    expect_error("HTTP/1.1 099 Low\r\n\r\n", SL_EPROTO);
    expect_error("HTTP/1.1 000\r\n\r\n", SL_EPROTO);
}

static void test_malformed_status_lines_give_eproto(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "HTTP/2 200 OK\r\n\r\n",       "HTTP/2.0 200 OK\r\n\r\n",
        "HTTP/1.2 200 OK\r\n\r\n",     "HTTP/1.x 200 OK\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",     "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",      "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 20x OK\r\n\r\n",     "HTTP/1.1 200x\r\n\r\n",
        "HTTP/1.1\t200 OK\r\n\r\n",    " HTTP/1.1 200 OK\r\n\r\n",
        "\r\nHTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 200 O\x01K\r\n\r\n",
        "HTTP/1.1 200 OK\x7f\r\n\r\n", "HTTP/1.1 200 OK\rX\r\n\r\n",
        "HTTP/1.1 200\r\r\n\r\n",      "GET / HTTP/1.1\r\n\r\n",
        "SSH-2.0-OpenSSH_9.6\r\n",     "\x16\x03\x01\x02",
        "HTTP/1.1 -20 OK\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        expect_error(lines[i], SL_EPROTO);
    expect_error_n(S("HTTP/1.1 200 O\0K\r\n\r\n"), SL_EPROTO);
    expect_error_n(S("HTTP/1.1 2\0"
                     "0 OK\r\n\r\n"),
                   SL_EPROTO);
}

static void test_empty_and_partial_input_needs_more(void **state)
{
    (void)state;
    struct parsed p;
    parse_with("", 0, &default_limits, HDR_CAP, &p);
    assert_int_equal(p.rc, SL_EAGAIN);
    parsed_free(&p);
    parse_with(NULL, 0, &default_limits, HDR_CAP, &p);
    assert_int_equal(p.rc, SL_EAGAIN);
    parsed_free(&p);
    parse_with(vllm_head, sizeof vllm_head - 2, &default_limits, HDR_CAP, &p);
    assert_int_equal(p.rc, SL_EAGAIN);
    parsed_free(&p);
}

/* ---- header fields: the request parser's rules, SL_EPROTO for errors ---- */

static void test_header_values_trimmed_and_bare_lf_accepted(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("HTTP/1.1 200 OK\nA:  x y \t\nB:\nContent-Length: 0\n\n", &p);
    assert_int_equal(p.res.num_headers, 3);
    assert_span(p.hdrs[0].value, p.hdrs[0].value_len, "x y");
    assert_int_equal(p.hdrs[1].value_len, 0);
    assert_int_equal(p.res.content_length, 0);
    assert_int_equal(sl_http_response_body(&p.res, false), SL_HTTP_BODY_LENGTH);
    parsed_free(&p);
}

static void test_bad_header_lines_give_eproto(void **state)
{
    (void)state;
    static const char *const heads[] = {
        "HTTP/1.1 200 OK\r\nName : v\r\n\r\n",         /* blank before ':' */
        "HTTP/1.1 200 OK\r\n: v\r\n\r\n",              /* no name */
        "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",          /* no ':' */
        "HTTP/1.1 200 OK\r\nA: b\r\n  folded\r\n\r\n", /* obs-fold */
        "HTTP/1.1 200 OK\r\n\tA: b\r\n\r\n",           /* blank before the first field */
        "HTTP/1.1 200 OK\r\nA: b\x01\r\n\r\n",         /* control byte */
        "HTTP/1.1 200 OK\r\nA: b\x7f\r\n\r\n",         /* DEL */
        "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n",          /* CR alone */
        "HTTP/1.1 200 OK\r\nA(b: c\r\n\r\n",           /* not a tchar */
        "HTTP/1.1 200 OK\r\nA: b\r\n\rX",              /* the last line's CR alone */
    };
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++)
        expect_error(heads[i], SL_EPROTO);
    expect_error_n(S("HTTP/1.1 200 OK\r\nA: \0\r\n\r\n"), SL_EPROTO);
    expect_error_n(S("HTTP/1.1 200 OK\r\nA\0: b\r\n\r\n"), SL_EPROTO);
}

static void test_find_response_header_case_insensitive_first(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 1\r\n\r\n", &p);
    const struct sl_http_header *h = sl_http_find_response_header(&p.res, "X-a");
    assert_ptr_equal(h, &p.hdrs[0]);
    assert_null(sl_http_find_response_header(&p.res, "X-"));
    assert_null(sl_http_find_response_header(&p.res, "X-A-B"));
    assert_null(sl_http_find_response_header(&p.res, ""));
    parsed_free(&p);
}

/* ---- bounds ---- */

/* A head of exactly n bytes: "HTTP/1.1 200 OK\r\nX: vvv...\r\nContent-Length: 0\r\n\r\n". */
static size_t head_of_size(char *buf, size_t n)
{
    static const char start[] = "HTTP/1.1 200 OK\r\nX: ";
    static const char tail[] = "\r\nContent-Length: 0\r\n\r\n";
    size_t fixed = sizeof start - 1 + sizeof tail - 1;
    assert_true(n >= fixed + 1);
    memcpy(buf, start, sizeof start - 1);
    memset(buf + sizeof start - 1, 'v', n - fixed);
    memcpy(buf + n - (sizeof tail - 1), tail, sizeof tail - 1);
    return n;
}

static void test_header_bytes_at_bound_passes_one_over_gives_ehdrtoobig(void **state)
{
    (void)state;
    struct sl_http_limits lim = default_limits;
    lim.max_header_bytes = 100;
    char buf[256];
    struct parsed p;
    parse_ok_split(buf, head_of_size(buf, 100), &lim, HDR_CAP, &p);
    assert_int_equal(p.consumed, 100);
    parsed_free(&p);
    expect_error_lim(buf, head_of_size(buf, 101), &lim, HDR_CAP, SL_EHDRTOOBIG);
    /* bytes after a head within the bound are the body's: no error */
    size_t n = head_of_size(buf, 100);
    memset(buf + n, 'b', 50);
    parse_with(buf, n + 50, &lim, HDR_CAP, &p);
    assert_int_equal(p.rc, SL_OK);
    assert_int_equal(p.consumed, 100);
    parsed_free(&p);
}

static void test_incomplete_head_past_bound_gives_ehdrtoobig_at_once(void **state)
{
    (void)state;
    struct sl_http_limits lim = default_limits;
    lim.max_header_bytes = 40;
    char buf[64];
    memset(buf, 'v', sizeof buf);
    memcpy(buf, "HTTP/1.1 200 OK\r\nX: ", 20);
    struct parsed p;
    parse_with(buf, 40, &lim, HDR_CAP, &p);
    assert_int_equal(p.rc, SL_EAGAIN);
    parsed_free(&p);
    parse_with(buf, 41, &lim, HDR_CAP, &p);
    assert_int_equal(p.rc, SL_EHDRTOOBIG);
    parsed_free(&p);
}

/* "HTTP/1.1 200 OK\r\n" and count fields "H<i>: v\r\n", then the empty line. */
static size_t head_with_fields(char *buf, size_t size, size_t count)
{
    size_t n = (size_t)snprintf(buf, size, "HTTP/1.1 200 OK\r\n");
    for (size_t i = 0; i < count; i++)
        n += (size_t)snprintf(buf + n, size - n, "H%zu: v\r\n", i);
    n += (size_t)snprintf(buf + n, size - n, "\r\n");
    assert_true(n < size);
    return n;
}

static void test_header_count_at_bound_passes_one_over_gives_etoomanyhdrs(void **state)
{
    (void)state;
    static char buf[8192];
    struct sl_http_limits lim = default_limits;
    lim.max_headers = 5;
    struct parsed p;
    parse_ok_split(buf, head_with_fields(buf, sizeof buf, 5), &lim, HDR_CAP, &p);
    assert_int_equal(p.res.num_headers, 5);
    parsed_free(&p);
    expect_error_lim(buf, head_with_fields(buf, sizeof buf, 6), &lim, HDR_CAP, SL_ETOOMANYHDRS);
    /* the caller's array bounds it too */
    parse_ok_split(buf, head_with_fields(buf, sizeof buf, 3), &default_limits, 3, &p);
    parsed_free(&p);
    expect_error_lim(buf, head_with_fields(buf, sizeof buf, 4), &default_limits, 3,
                     SL_ETOOMANYHDRS);
    expect_error_lim(buf, head_with_fields(buf, sizeof buf, 1), &default_limits, 0,
                     SL_ETOOMANYHDRS);
    /* the default: 100 */
    parse_ok_split(buf, head_with_fields(buf, sizeof buf, 100), &default_limits, HDR_CAP, &p);
    parsed_free(&p);
    expect_error_lim(buf, head_with_fields(buf, sizeof buf, 101), &default_limits, HDR_CAP,
                     SL_ETOOMANYHDRS);
}

static void test_url_and_body_bounds_are_not_used(void **state)
{
    (void)state;
    struct sl_http_limits lim = default_limits;
    lim.max_url_bytes = 0;
    lim.max_body_bytes = 0;
    const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n";
    struct parsed p;
    parse_ok_split(head, sizeof head - 1, &lim, HDR_CAP, &p);
    assert_int_equal(p.res.content_length, 1000000000000);
    parsed_free(&p);
}

/* ---- framing ---- */

static void test_content_length_parsed_body_left_unconsumed(void **state)
{
    (void)state;
    struct parsed p;
    const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    parse_ok(in, &p);
    assert_int_equal(p.consumed, sizeof in - 1 - 5);
    assert_int_equal(p.res.content_length, 5);
    assert_false(p.res.chunked);
    assert_true(p.res.keep_alive);
    assert_int_equal(sl_http_response_body(&p.res, false), SL_HTTP_BODY_LENGTH);
    parsed_free(&p);
}

static void test_equal_content_lengths_accepted_differing_give_eproto(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("HTTP/1.1 200 OK\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n", &p);
    assert_int_equal(p.res.content_length, 7);
    parsed_free(&p);
    parse_ok("HTTP/1.1 200 OK\r\nContent-Length: 7, 7,7\r\n\r\n", &p);
    assert_int_equal(p.res.content_length, 7);
    parsed_free(&p);
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n", SL_EPROTO);
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 7, 8\r\n\r\n", SL_EPROTO);
}

static void test_invalid_content_lengths_give_eproto(void **state)
{
    (void)state;
    static const char *const values[] = {
        "",
        "-1",
        "+5",
        "5a",
        "0x5",
        "5 5",
        "5,",
        ",5",
        "1e3",
        "five",
        "\xd9\xa5",
        /* one over INT64_MAX, and far over */
        "9223372036854775808",
        "99999999999999999999999",
    };
    char head[128];
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        int n =
            snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\n", values[i]);
        expect_error_n(head, (size_t)n, SL_EPROTO);
    }
    struct parsed p;
    parse_ok("HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\n", &p);
    assert_int_equal(p.res.content_length, INT64_MAX);
    parsed_free(&p);
    parse_ok("HTTP/1.1 200 OK\r\nContent-Length: 007\r\n\r\n", &p);
    assert_int_equal(p.res.content_length, 7);
    parsed_free(&p);
}

static void test_transfer_encoding_ending_in_chunked_gives_chunked(void **state)
{
    (void)state;
    static const char *const heads[] = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED \t\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: ,chunked,\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        struct parsed p;
        parse_ok(heads[i], &p);
        assert_true(p.res.chunked);
        assert_true(p.res.keep_alive);
        assert_int_equal(p.res.content_length, -1);
        assert_int_equal(sl_http_response_body(&p.res, false), SL_HTTP_BODY_CHUNKED);
        parsed_free(&p);
    }
}

static void test_transfer_encoding_not_ending_in_chunked_reads_until_close(void **state)
{
    (void)state;
    static const char *const heads[] = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: br\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;q=1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: identity\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        struct parsed p;
        parse_ok(heads[i], &p);
        assert_false(p.res.chunked);
        assert_false(p.res.keep_alive);
        assert_int_equal(sl_http_response_body(&p.res, false), SL_HTTP_BODY_CLOSE);
        parsed_free(&p);
    }
}

static void test_content_length_beside_transfer_encoding_gives_eproto(void **state)
{
    (void)state;
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                 SL_EPROTO);
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                 SL_EPROTO);
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n",
                 SL_EPROTO);
    expect_error("HTTP/1.0 204 No Content\r\nContent-Length: 0\r\nTransfer-Encoding: x\r\n\r\n",
                 SL_EPROTO);
}

static void test_empty_or_doubly_chunked_transfer_encoding_gives_eproto(void **state)
{
    (void)state;
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n", SL_EPROTO);
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: , \r\n\r\n", SL_EPROTO);
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", SL_EPROTO);
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
                 "gzip, chunked\r\n\r\n",
                 SL_EPROTO);
}

static void test_keep_alive_rules_by_version_and_connection(void **state)
{
    (void)state;
    static const struct {
        const char *head;
        bool keep_alive;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
        {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false},
        {"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 0\r\n\r\n", false},
        {"HTTP/1.1 200 OK\r\nConnection: upgrade\r\nContent-Length: 0\r\n\r\n", true},
        {"HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 0\r\n\r\n", true},
        {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
        {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true},
        {"HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n", false},
        /* no framing: the body runs until the close */
        {"HTTP/1.1 200 OK\r\n\r\n", false},
        {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", false},
        /* RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding closes */
        {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n", false},
        /* no body whatever the framing */
        {"HTTP/1.1 204 No Content\r\n\r\n", true},
        {"HTTP/1.1 304 Not Modified\r\n\r\n", true},
        {"HTTP/1.1 100 Continue\r\n\r\n", true},
        {"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: gzip\r\n\r\n", true},
        /* after 101 the connection speaks something else */
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct parsed p;
        parse_ok(cases[i].head, &p);
        if (p.res.keep_alive != cases[i].keep_alive)
            fail_msg("case %zu: keep_alive %d, want %d", i, p.res.keep_alive, cases[i].keep_alive);
        parsed_free(&p);
    }
}

static void test_http10_chunked_decoded_but_connection_closed(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", &p);
    assert_int_equal(sl_http_response_body(&p.res, false), SL_HTTP_BODY_CHUNKED);
    assert_false(p.res.keep_alive);
    parsed_free(&p);
}

static void test_body_kind_none_for_1xx_204_304_and_head(void **state)
{
    (void)state;
    static const struct {
        const char *head;
        enum sl_http_body_kind kind;
    } cases[] = {
        {"HTTP/1.1 100 Continue\r\n\r\n", SL_HTTP_BODY_NONE},
        {"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", SL_HTTP_BODY_NONE},
        {"HTTP/1.1 199 X\r\nContent-Length: 5\r\n\r\n", SL_HTTP_BODY_NONE},
        {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", SL_HTTP_BODY_NONE},
        {"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", SL_HTTP_BODY_NONE},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", SL_HTTP_BODY_LENGTH},
        {"HTTP/1.1 205 Reset Content\r\nContent-Length: 0\r\n\r\n", SL_HTTP_BODY_LENGTH},
        {"HTTP/1.1 303 See Other\r\nTransfer-Encoding: chunked\r\n\r\n", SL_HTTP_BODY_CHUNKED},
        {"HTTP/1.1 400 Bad Request\r\n\r\n", SL_HTTP_BODY_CLOSE},
        {"HTTP/1.1 999 X\r\n\r\n", SL_HTTP_BODY_CLOSE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct parsed p;
        parse_ok(cases[i].head, &p);
        if (sl_http_response_body(&p.res, false) != cases[i].kind)
            fail_msg("case %zu: kind %d, want %d", i, (int)sl_http_response_body(&p.res, false),
                     (int)cases[i].kind);
        /* the answer to HEAD has no body whatever it says */
        assert_int_equal(sl_http_response_body(&p.res, true), SL_HTTP_BODY_NONE);
        parsed_free(&p);
    }
}

static void test_interim_100_then_final_head_from_consumed(void **state)
{
    (void)state;
    const char in[] = "HTTP/1.1 100 Continue\r\n\r\n"
                      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    struct parsed first;
    parse_ok(in, &first);
    assert_int_equal(first.res.status, 100);
    assert_int_equal(first.consumed, 25);
    struct parsed second;
    parse_ok_split(first.buf + first.consumed, first.len - first.consumed, &default_limits, HDR_CAP,
                   &second);
    assert_int_equal(second.res.status, 200);
    assert_int_equal(second.res.content_length, 2);
    assert_int_equal(second.len - second.consumed, 2);
    parsed_free(&second);
    parsed_free(&first);
}

/* ---- the zero-copy chunked decoder ---- */

/* One decode: the result, bytes consumed over all calls, the data of all
 * spans concatenated, and the number of calls that returned data. */
struct decoded {
    int rc;
    size_t consumed;
    char *data;
    size_t data_len;
    size_t spans;
};

static void decoded_free(struct decoded *r)
{
    free(r->data);
    r->data = NULL;
}

/* Calls sl_http_chunked_next over in[0..len) in pieces of at most step
 * bytes (0: whole), or in two at split, each piece in its own exact-size
 * allocation; within a piece, calls again with the rest while the body goes
 * on. Stops at the first result other than SL_EAGAIN. */
static void decode_next(const char *in, size_t len, size_t step, size_t split, uint64_t max,
                        struct decoded *out)
{
    struct sl_http_chunked d;
    sl_http_chunked_init(&d, max);
    *out = (struct decoded){.rc = SL_EAGAIN, .data = malloc(len ? len : 1)};
    assert_non_null(out->data);
    size_t pos = 0;
    while (out->rc == SL_EAGAIN && pos < len) {
        size_t n = len - pos;
        if (split && pos < split && n > split - pos)
            n = split - pos;
        else if (step && n > step)
            n = step;
        char *piece = malloc(n);
        assert_non_null(piece);
        memcpy(piece, in + pos, n);
        size_t off = 0;
        do {
            size_t used = 99999, dlen = 99999;
            const char *data = NULL;
            out->rc = sl_http_chunked_next(&d, piece + off, n - off, &used, &data, &dlen);
            assert_true(used <= n - off);
            assert_true(dlen <= used);
            /* the span is inside the piece and ends where consumption does */
            assert_ptr_equal(data + dlen, piece + off + used);
            if (out->rc != SL_EAGAIN)
                assert_int_equal(dlen, 0);
            else if (dlen == 0) /* framing only: all of it was read */
                assert_int_equal(used, n - off);
            if (dlen > 0) {
                memcpy(out->data + out->data_len, data, dlen);
                out->data_len += dlen;
                out->spans++;
            }
            off += used;
            assert_int_equal(d.total, out->data_len);
            assert_true(d.total <= max);
        } while (out->rc == SL_EAGAIN && off < n);
        free(piece);
        pos += off;
    }
    out->consumed = pos;
    if (out->rc != SL_EAGAIN) { /* sticky and idempotent afterwards */
        size_t used = 1, dlen = 1;
        const char *data = NULL;
        assert_int_equal(sl_http_chunked_next(&d, "1\r\nx\r\n", 6, &used, &data, &dlen), out->rc);
        assert_int_equal(used, 0);
        assert_int_equal(dlen, 0);
    }
}

/* The same input through sl_http_chunked_feed, whole. */
static void decode_feed(const char *in, size_t len, uint64_t max, struct decoded *out)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, in, len);
    struct sl_http_chunked d;
    sl_http_chunked_init(&d, max);
    struct sl_buf body;
    sl_buf_init(&body, SIZE_MAX);
    *out = (struct decoded){0};
    out->rc = sl_http_chunked_feed(&d, copy, len, &out->consumed, &body);
    out->data = sl_buf_take(&body, &out->data_len);
    free(copy);
}

/* Decodes whole, split in two at every byte and one byte at a time; all
 * must give want_rc, want_consumed and the body want[0..want_len), and so
 * must sl_http_chunked_feed. */
static void next_all_ways(const char *in, size_t len, uint64_t max, int want_rc,
                          size_t want_consumed, const char *want, size_t want_len)
{
    for (size_t split = 0; split <= len + 1; split++) {
        struct decoded r;
        if (split == len + 1)
            decode_next(in, len, 1, 0, max, &r);
        else
            decode_next(in, len, 0, split, max, &r);
        if (r.rc != want_rc || r.consumed != want_consumed)
            fail_msg("split %zu: got %s after %zu bytes, want %s after %zu", split,
                     sl_errname(r.rc), r.consumed, sl_errname(want_rc), want_consumed);
        assert_int_equal(r.data_len, want_len);
        assert_memory_equal(r.data, want, want_len);
        decoded_free(&r);
    }
    struct decoded f;
    decode_feed(in, len, max, &f);
    assert_int_equal(f.rc, want_rc);
    assert_int_equal(f.consumed, want_consumed);
    assert_int_equal(f.data_len, want_len);
    if (want_len)
        assert_memory_equal(f.data, want, want_len);
    decoded_free(&f);
}

#define BIG_MAX ((uint64_t)1 << 40)

static void test_next_reads_framing_then_returns_each_span(void **state)
{
    (void)state;
    const char in[] = "3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nT: 1\r\n\r\nHTTP/1.1";
    struct sl_http_chunked d;
    sl_http_chunked_init(&d, BIG_MAX);
    size_t used, dlen;
    const char *data;
    size_t pos = 0, len = sizeof in - 1;

    assert_int_equal(sl_http_chunked_next(&d, in, len, &used, &data, &dlen), SL_EAGAIN);
    assert_int_equal(used, 6);
    assert_ptr_equal(data, in + 3);
    assert_int_equal(dlen, 3);
    pos += used;

    /* the line end of "abc", the whole next size line, then the data */
    assert_int_equal(sl_http_chunked_next(&d, in + pos, len - pos, &used, &data, &dlen), SL_EAGAIN);
    assert_int_equal(used, 2 + 7 + 4);
    assert_ptr_equal(data, in + pos + 9);
    assert_int_equal(dlen, 4);
    pos += used;

    assert_int_equal(sl_http_chunked_next(&d, in + pos, len - pos, &used, &data, &dlen), SL_OK);
    assert_int_equal(used, 2 + 3 + 6 + 2);
    assert_int_equal(dlen, 0);
    assert_ptr_equal(data, in + pos + used);
    pos += used;
    assert_memory_equal(in + pos, "HTTP/1.1", 8);
    assert_int_equal(d.total, 7);

    /* done: SL_OK again, nothing consumed */
    assert_int_equal(sl_http_chunked_next(&d, in + pos, len - pos, &used, &data, &dlen), SL_OK);
    assert_int_equal(used, 0);
    assert_int_equal(dlen, 0);

    next_all_ways(in, len, BIG_MAX, SL_OK, len - 8, "abcdefg", 7);
}

static void test_next_framing_only_input_gives_no_span(void **state)
{
    (void)state;
    struct sl_http_chunked d;
    sl_http_chunked_init(&d, BIG_MAX);
    size_t used, dlen;
    const char *data;
    const char in[] = "5;ext=1\r\n";
    assert_int_equal(sl_http_chunked_next(&d, in, 9, &used, &data, &dlen), SL_EAGAIN);
    assert_int_equal(used, 9);
    assert_int_equal(dlen, 0);
    assert_ptr_equal(data, in + 9);
    /* empty input: nothing happens */
    assert_int_equal(sl_http_chunked_next(&d, NULL, 0, &used, &data, &dlen), SL_EAGAIN);
    assert_int_equal(used, 0);
    assert_int_equal(dlen, 0);
    assert_null(data);
    /* the data then comes straight from the first byte */
    assert_int_equal(sl_http_chunked_next(&d, "hel", 3, &used, &data, &dlen), SL_EAGAIN);
    assert_int_equal(used, 3);
    assert_int_equal(dlen, 3);
    next_all_ways("5\r\nhel", 6, BIG_MAX, SL_EAGAIN, 6, "hel", 3);
    next_all_ways("0\r\nX: y\r\n", 9, BIG_MAX, SL_EAGAIN, 9, "", 0);
}

/* n chunks of one token each, as vLLM streams them: "4a\r\n" + 74 bytes. */
static size_t token_stream(char *buf, size_t size, size_t n, char *want, size_t *want_len)
{
    size_t len = 0;
    *want_len = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(len + 80 < size);
        memcpy(buf + len, "4a\r\n", 4);
        len += 4;
        for (size_t k = 0; k < 74; k++)
            want[*want_len + k] = buf[len + k] = (char)('a' + (i + k) % 26);
        len += 74;
        *want_len += 74;
        memcpy(buf + len, "\r\n", 2);
        len += 2;
    }
    memcpy(buf + len, "0\r\n\r\n", 5);
    return len + 5;
}

static void test_next_token_stream_one_span_per_chunk(void **state)
{
    (void)state;
    static char in[64 * 80 + 8], want[64 * 74];
    size_t want_len;
    size_t len = token_stream(in, sizeof in, 64, want, &want_len);
    next_all_ways(in, len, BIG_MAX, SL_OK, len, want, want_len);
    struct decoded r;
    decode_next(in, len, 0, 0, BIG_MAX, &r);
    assert_int_equal(r.spans, 64); /* whole: every chunk's data in one span */
    decoded_free(&r);
    /* one chunk per read, as from the socket: two calls each */
    struct sl_http_chunked d;
    sl_http_chunked_init(&d, BIG_MAX);
    for (size_t i = 0; i < 64; i++) {
        size_t used, dlen;
        const char *data;
        const char *chunk = in + i * 80;
        assert_int_equal(sl_http_chunked_next(&d, chunk, 80, &used, &data, &dlen), SL_EAGAIN);
        assert_int_equal(used, 78);
        assert_int_equal(dlen, 74);
        assert_ptr_equal(data, chunk + 4);
        assert_int_equal(sl_http_chunked_next(&d, chunk + 78, 2, &used, &data, &dlen), SL_EAGAIN);
        assert_int_equal(used, 2);
        assert_int_equal(dlen, 0);
    }
}

static void test_next_extensions_trailers_and_bare_lf(void **state)
{
    (void)state;
    const char ext[] = "5;name=value;flag\r\nhello\r\n3 ; q=\"a b\"\r\nabc\r\n0;last\r\n\r\n";
    next_all_ways(ext, sizeof ext - 1, BIG_MAX, SL_OK, sizeof ext - 1, "helloabc", 8);
    const char trl[] = "2\r\nhi\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\nnext";
    next_all_ways(trl, sizeof trl - 1, BIG_MAX, SL_OK, sizeof trl - 1 - 4, "hi", 2);
    const char lf[] = "2\nhi\n1;x\n!\n0\nTrailer: t\n\n";
    next_all_ways(lf, sizeof lf - 1, BIG_MAX, SL_OK, sizeof lf - 1, "hi!", 3);
    const char hex[] = "0000A\r\n0123456789\r\nf\r\nabcdefghijklmno\r\n0\r\n\r\n";
    next_all_ways(hex, sizeof hex - 1, BIG_MAX, SL_OK, sizeof hex - 1, "0123456789abcdefghijklmno",
                  25);
    next_all_ways("0\r\n\r\n", 5, 0, SL_OK, 5, "", 0);
}

static void test_next_bad_framing_gives_ebadreq_at_one_byte(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        size_t fail_at; /* bytes consumed when the error is found */
        const char *data;
    } cases[] = {
        {S("\r\n"), 0, ""},
        {S(";ext\r\n"), 0, ""},
        {S(" 5\r\nhello\r\n0\r\n\r\n"), 0, ""},
        {S("g\r\n"), 0, ""},
        {S("5x\r\nhello\r\n"), 1, ""},
        {S("5 x\r\n"), 2, ""},
        {S("-5\r\n"), 0, ""},
        {S("5\rhello"), 2, ""},
        {S("5\r\nhelloX\r\n"), 8, "hello"},
        {S("5\r\nhello\rX"), 9, "hello"},
        {S("5\r\nhello\r\n0\r\nX: \x01\r\n\r\n"), 16, "hello"},
        {S("5\r\nhello\r\n0\r\n\rX"), 14, "hello"},
        {S("5;a\0\r\n"), 3, ""},
        {S("0\r\nX: y\rZ"), 8, ""},
        {S("11111111111111111\r\n"), 16, ""},
        {S("2\r\nhi\r\n2\r\nyo\n\n"), 13, "hiyo"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        next_all_ways(cases[i].in, cases[i].len, UINT64_MAX, SL_EBADREQ, cases[i].fail_at,
                      cases[i].data, strlen(cases[i].data));
}

static void test_next_body_at_max_passes_one_over_gives_ebodytoobig(void **state)
{
    (void)state;
    const char in[] = "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
    next_all_ways(in, sizeof in - 1, 10, SL_OK, sizeof in - 1, "helloworld", 10);
    /* one over: the data up to the bound comes first, then the error at the
     * size digit that crosses it */
    next_all_ways(in, sizeof in - 1, 9, SL_EBODYTOOBIG, 10, "hello", 5);
    next_all_ways("ffffffffffffffffff\r\n", 20, SL_LIMIT_BODY_BYTES_DEFAULT, SL_EBODYTOOBIG, 5, "",
                  0);
}

static void test_next_bounds_extension_and_trailer_bytes(void **state)
{
    (void)state;
    static char in[SL_LIMIT_TRAILER_BYTES + 64];
    /* a size line of SL_LIMIT_CHUNK_EXT_BYTES bytes passes, one more fails */
    size_t line = SL_LIMIT_CHUNK_EXT_BYTES;
    memset(in, 'e', line + 1);
    memcpy(in, "1;", 2);
    memcpy(in + line, "\r\nx\r\n0\r\n\r\n", 10);
    struct decoded r;
    decode_next(in, line + 10, 1, 0, BIG_MAX, &r);
    assert_int_equal(r.rc, SL_OK);
    assert_int_equal(r.data_len, 1);
    decoded_free(&r);
    memset(in, 'e', line + 1);
    memcpy(in, "1;", 2);
    memcpy(in + line + 1, "\r\nx\r\n0\r\n\r\n", 10);
    decode_next(in, line + 11, 0, 0, BIG_MAX, &r);
    assert_int_equal(r.rc, SL_EBADREQ);
    assert_int_equal(r.consumed, line);
    decoded_free(&r);

    /* one trailer line of SL_LIMIT_TRAILER_BYTES bytes passes, one more fails */
    memcpy(in, "0\r\nX", 4);
    memset(in + 4, 't', SL_LIMIT_TRAILER_BYTES - 1);
    size_t n = 3 + SL_LIMIT_TRAILER_BYTES;
    memcpy(in + n, "\r\n\r\n", 4);
    decode_next(in, n + 4, 0, 0, BIG_MAX, &r);
    assert_int_equal(r.rc, SL_OK);
    assert_int_equal(r.consumed, n + 4);
    decoded_free(&r);
    in[n] = 't';
    memcpy(in + n + 1, "\r\n\r\n", 4);
    decode_next(in, n + 5, 0, 0, BIG_MAX, &r);
    assert_int_equal(r.rc, SL_EBADREQ);
    assert_int_equal(r.consumed, n);
    decoded_free(&r);
}

static void test_feed_keeps_its_buffer_ceiling_over_next(void **state)
{
    (void)state;
    /* feed is a loop over next: the body's own ceiling still takes what
     * fits, fails at the first byte refused, and the error is sticky */
    const char in[] = "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
    struct sl_http_chunked d;
    sl_http_chunked_init(&d, BIG_MAX);
    struct sl_buf body;
    sl_buf_init(&body, 7);
    size_t used;
    assert_int_equal(sl_http_chunked_feed(&d, in, sizeof in - 1, &used, &body), SL_EBODYTOOBIG);
    assert_int_equal(used, 15);
    assert_int_equal(d.total, 7);
    assert_int_equal(sl_buf_size(&body), 7);
    assert_memory_equal(sl_buf_ptr(&body), "hellowo", 7);
    const char *data;
    size_t dlen;
    assert_int_equal(sl_http_chunked_next(&d, in, 3, &used, &data, &dlen), SL_EBODYTOOBIG);
    assert_int_equal(used, 0);
    sl_buf_free(&body);
}

/* ---- the real vLLM stream ---- */

static char *read_fixture(const char *name, size_t *len)
{
    const char *dir = getenv("SL_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : SL_FIXTURES_DIR, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open fixture %s (set SL_FIXTURES)", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n > 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    char *p = malloc((size_t)n);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* Appends body[0..len) to out as chunked framing: chunks of at most size
 * bytes (0: one chunk per SSE event, as Starlette writes each one), then
 * the last chunk. Returns the framed length. */
static size_t frame(const char *body, size_t len, size_t size, char *out)
{
    size_t n = 0, pos = 0;
    while (pos < len) {
        size_t take = len - pos;
        if (size && take > size)
            take = size;
        if (size == 0) {
            const char *end = NULL;
            for (size_t k = pos; k + 1 < len && end == NULL; k++) {
                if (body[k] == '\n' && body[k + 1] == '\n')
                    end = body + k + 2;
            }
            take = end ? (size_t)(end - (body + pos)) : len - pos;
        }
        n += (size_t)sprintf(out + n, "%zx\r\n", take);
        memcpy(out + n, body + pos, take);
        n += take;
        memcpy(out + n, "\r\n", 2);
        n += 2;
        pos += take;
    }
    memcpy(out + n, "0\r\n\r\n", 5);
    return n + 5;
}

static void test_vllm_fixtures_streamed_through_chunked_next(void **state)
{
    (void)state;
    static const char *const fixtures[] = {
        "vllm-0.9.2_qwen3-0.6b_chat-stream_no-reasoning-parser.sse",
        "vllm-issue-29408_2025_chat-stream_reasoning-fields_excerpt.sse",
        "vllm-issue-35705_2026_chat-stream_excerpt.sse",
        "vllm-issue-6083_2024_chat-stream_excerpt.sse",
    };
    static const size_t sizes[] = {0, 1, 7, 74, 512, 4096};
    for (size_t f = 0; f < sizeof fixtures / sizeof fixtures[0]; f++) {
        size_t sse_len;
        char *sse = read_fixture(fixtures[f], &sse_len);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            /* the head and the body in one buffer, as one read gives them */
            size_t cap = sizeof vllm_head + sse_len * 8 + 64;
            char *wire = malloc(cap);
            assert_non_null(wire);
            memcpy(wire, vllm_head, sizeof vllm_head - 1);
            size_t len = sizeof vllm_head - 1;
            len += frame(sse, sse_len, sizes[s], wire + len);
            assert_true(len <= cap);

            struct parsed p;
            parse_ok_split(wire, len, &default_limits, HDR_CAP, &p);
            assert_int_equal(sl_http_response_body(&p.res, false), SL_HTTP_BODY_CHUNKED);
            const char *body = p.buf + p.consumed;
            size_t body_len = p.len - p.consumed;
            next_all_ways(body, body_len, SL_LIMIT_BODY_BYTES_DEFAULT, SL_OK, body_len, sse,
                          sse_len);
            /* one byte under the decoded size: refused with all but the
             * last chunk's data returned */
            struct decoded r;
            decode_next(body, body_len, 0, 0, sse_len - 1, &r);
            assert_int_equal(r.rc, SL_EBODYTOOBIG);
            assert_true(r.data_len < sse_len);
            assert_memory_equal(r.data, sse, r.data_len);
            decoded_free(&r);
            parsed_free(&p);
            free(wire);
        }
        free(sse);
    }
}

/* Issue 10, "heads parse once": a 1 MiB response head fed 100 bytes per
 * call into one growing buffer, with one scan, is read under 4 times its
 * size in all (re-parsing from byte 0 reads about len^2 / 200). */
static void test_slow_response_head_is_read_a_bounded_number_of_times(void **state)
{
    (void)state;
    enum { HEAD = 1024 * 1024, FIELDS = 50, STEP = 100 };
    static char h[HEAD];
    size_t n = (size_t)sprintf(h, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n");
    for (int i = 0; i < FIELDS; i++) {
        size_t line = i == FIELDS - 1 ? HEAD - 2 - n : (HEAD - 2) / FIELDS;
        size_t f = (size_t)sprintf(h + n, "X-Pad-%02d: ", i);
        memset(h + n + f, 'a' + i % 26, line - f - 2);
        memcpy(h + n + line - 2, "\r\n", 2);
        n += line;
    }
    memcpy(h + n, "\r\n", 2);
    n += 2;
    assert_int_equal(n, HEAD);
    struct sl_http_limits lim = default_limits;
    lim.max_header_bytes = 2 * HEAD;
    struct sl_http_head_scan scan = {0};
    struct sl_http_response res;
    struct sl_http_header hdrs[HDR_CAP];
    size_t used = 0;
    int rc = SL_EAGAIN;
    for (size_t k = STEP; rc == SL_EAGAIN; k = k + STEP < n ? k + STEP : n) {
        rc = sl_http_parse_response(h, k, &lim, &res, hdrs, HDR_CAP, &used, &scan);
        if (k == n)
            break;
    }
    assert_int_equal(rc, SL_OK);
    assert_int_equal(used, n);
    assert_int_equal(res.num_headers, FIELDS + 1);
    if (scan.examined > 4 * (uint64_t)n)
        fail_msg("%llu bytes read for a %zu-byte head", (unsigned long long)scan.examined, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vllm_stream_head_parsed_whole_and_split),
        cmocka_unit_test(test_reason_may_be_empty_with_or_without_its_space),
        cmocka_unit_test(test_reason_keeps_inner_blanks_and_obs_text),
        cmocka_unit_test(test_status_bounds_100_and_999_accepted),
        cmocka_unit_test(test_malformed_status_lines_give_eproto),
        cmocka_unit_test(test_empty_and_partial_input_needs_more),
        cmocka_unit_test(test_header_values_trimmed_and_bare_lf_accepted),
        cmocka_unit_test(test_bad_header_lines_give_eproto),
        cmocka_unit_test(test_find_response_header_case_insensitive_first),
        cmocka_unit_test(test_header_bytes_at_bound_passes_one_over_gives_ehdrtoobig),
        cmocka_unit_test(test_incomplete_head_past_bound_gives_ehdrtoobig_at_once),
        cmocka_unit_test(test_header_count_at_bound_passes_one_over_gives_etoomanyhdrs),
        cmocka_unit_test(test_url_and_body_bounds_are_not_used),
        cmocka_unit_test(test_content_length_parsed_body_left_unconsumed),
        cmocka_unit_test(test_equal_content_lengths_accepted_differing_give_eproto),
        cmocka_unit_test(test_invalid_content_lengths_give_eproto),
        cmocka_unit_test(test_transfer_encoding_ending_in_chunked_gives_chunked),
        cmocka_unit_test(test_transfer_encoding_not_ending_in_chunked_reads_until_close),
        cmocka_unit_test(test_content_length_beside_transfer_encoding_gives_eproto),
        cmocka_unit_test(test_empty_or_doubly_chunked_transfer_encoding_gives_eproto),
        cmocka_unit_test(test_keep_alive_rules_by_version_and_connection),
        cmocka_unit_test(test_http10_chunked_decoded_but_connection_closed),
        cmocka_unit_test(test_body_kind_none_for_1xx_204_304_and_head),
        cmocka_unit_test(test_interim_100_then_final_head_from_consumed),
        cmocka_unit_test(test_next_reads_framing_then_returns_each_span),
        cmocka_unit_test(test_next_framing_only_input_gives_no_span),
        cmocka_unit_test(test_next_token_stream_one_span_per_chunk),
        cmocka_unit_test(test_next_extensions_trailers_and_bare_lf),
        cmocka_unit_test(test_next_bad_framing_gives_ebadreq_at_one_byte),
        cmocka_unit_test(test_next_body_at_max_passes_one_over_gives_ebodytoobig),
        cmocka_unit_test(test_next_bounds_extension_and_trailer_bytes),
        cmocka_unit_test(test_feed_keeps_its_buffer_ceiling_over_next),
        cmocka_unit_test(test_vllm_fixtures_streamed_through_chunked_next),
        cmocka_unit_test(test_slow_response_head_is_read_a_bounded_number_of_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
