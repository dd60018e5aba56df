/* test_sse_decoder.c - unit tests of the SSE decoder (sse/decoder.c).
 * Every vLLM fixture and every WHATWG edge case is decoded whole, one byte
 * at a time and split in two at every byte (short cases also in three), each
 * feed copied to its own exact-size allocation so ASan sees a read past it;
 * all must give the same events, rendered as one string and compared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>

#include "core/buf.h"
#include "sse/decoder.h"

/* A literal with its length, NUL bytes inside included. */
#define S(lit) lit, sizeof(lit) - 1

#define MAX_EVENT       (1024 * 1024)
#define RENDER_MAX      (16 * 1024 * 1024)
#define THREE_WAY_UP_TO 64 /* inputs up to this size are also split in three */
#define PATH_MAX_LEN    4096
#define FIXTURE_MAX     (1024 * 1024)

#define DEFAULT_FIXTURES     SL_FIXTURES_DIR
#define NO_REASONING_FIXTURE "vllm-0.9.2_qwen3-0.6b_chat-stream_no-reasoning-parser.sse"

/* Appends p[0..n) readably: printable ASCII as is, the rest escaped, and the
 * renderer's own separators escaped too, so renders compare exactly. */
static void put_escaped(struct sl_buf *out, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        int rc;
        if (c == '\n')
            rc = sl_buf_puts(out, "\\n");
        else if (c == '\r')
            rc = sl_buf_puts(out, "\\r");
        else if (c == '\\' || c == '|' || c == '{' || c == '}' || c < 0x20 || c >= 0x7f)
            rc = sl_buf_printf(out, "\\x%02x", c);
        else
            rc = sl_buf_append(out, &c, 1);
        assert_int_equal(rc, SL_OK);
    }
}

/* One event as {type|data|id}, "*" after the id when this block set it and
 * "|retry=N" when the block had a valid retry. */
static void render_event(struct sl_buf *out, const struct sl_sse_event *ev)
{
    assert_int_equal(sl_buf_puts(out, "{"), SL_OK);
    put_escaped(out, ev->type, ev->type_len);
    assert_int_equal(sl_buf_puts(out, "|"), SL_OK);
    put_escaped(out, ev->data, ev->data_len);
    assert_int_equal(sl_buf_puts(out, "|"), SL_OK);
    put_escaped(out, ev->id, ev->id_len);
    if (ev->id_set)
        assert_int_equal(sl_buf_puts(out, "*"), SL_OK);
    if (ev->retry_ms >= 0)
        assert_int_equal(sl_buf_printf(out, "|retry=%lld", (long long)ev->retry_ms), SL_OK);
    assert_int_equal(sl_buf_puts(out, "}"), SL_OK);
}

/* Decodes in[0..len) fed as the pieces between cuts[] (ascending, inside
 * [0, len]) and renders every event, then "E:<code>" on an error or
 * "cut" when sl_sse_decoder_end reports a dropped event. Returns a malloc'd
 * string; *count gets the number of events. */
static char *decode_cuts(const char *in, size_t len, const size_t *cuts, size_t ncuts, size_t max,
                         size_t *count)
{
    struct sl_sse_decoder d;
    sl_sse_decoder_init(&d, max);
    struct sl_buf out;
    sl_buf_init(&out, RENDER_MAX);
    size_t events = 0;
    int err = SL_OK;
    size_t start = 0;
    for (size_t k = 0; k <= ncuts && err == SL_OK; k++) {
        size_t stop = k < ncuts ? cuts[k] : len;
        assert_true(stop >= start && stop <= len);
        size_t n = stop - start;
        char *feed = malloc(n ? n : 1); /* exact size: ASan sees over-reads */
        assert_non_null(feed);
        memcpy(feed, in + start, n);
        size_t off = 0;
        for (;;) {
            size_t used = SIZE_MAX;
            struct sl_sse_event ev;
            int rc = sl_sse_decoder_next(&d, feed + off, n - off, &used, &ev);
            assert_true(used <= n - off);
            if (rc < 0) {
                err = rc;
                break;
            }
            off += used;
            if (rc == 0) {
                assert_int_equal(off, n);
                break;
            }
            assert_int_equal(rc, 1);
            assert_true(ev.data_len <= max);
            render_event(&out, &ev);
            events++;
        }
        free(feed);
        start = stop;
    }
    if (err != SL_OK)
        assert_int_equal(sl_buf_printf(&out, "E:%s", sl_errname(err)), SL_OK);
    else if (sl_sse_decoder_end(&d))
        assert_int_equal(sl_buf_puts(&out, "cut"), SL_OK);
    assert_int_equal(sl_buf_append(&out, "", 1), SL_OK);
    sl_sse_decoder_free(&d);
    if (count != NULL)
        *count = events;
    size_t n;
    char *s = sl_buf_take(&out, &n);
    assert_non_null(s);
    return s;
}

static char *decode_whole(const char *in, size_t len, size_t max, size_t *count)
{
    return decode_cuts(in, len, NULL, 0, max, count);
}

/* Checks that every way of splitting in[] gives want (and returns nothing:
 * a mismatch fails the test with both renders printed). */
static void check_splits(const char *in, size_t len, size_t max, const char *want)
{
    char *got = decode_whole(in, len, max, NULL);
    assert_string_equal(got, want);
    free(got);

    size_t *cuts = malloc((len ? len : 1) * sizeof *cuts);
    assert_non_null(cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    got = decode_cuts(in, len, cuts, len ? len - 1 : 0, max, NULL); /* byte by byte */
    assert_string_equal(got, want);
    free(got);
    free(cuts);

    for (size_t k = 0; k <= len; k++) {
        got = decode_cuts(in, len, &k, 1, max, NULL);
        assert_string_equal(got, want);
        free(got);
    }
    if (len > THREE_WAY_UP_TO)
        return;
    for (size_t i = 0; i <= len; i++) {
        for (size_t j = i; j <= len; j++) {
            size_t two[2] = {i, j};
            got = decode_cuts(in, len, two, 2, max, NULL);
            assert_string_equal(got, want);
            free(got);
        }
    }
}

#define CHECK(lit, want) check_splits(S(lit), MAX_EVENT, want)

/* ---- fixtures ---- */

static const char *fixtures_dir(void)
{
    const char *dir = getenv("SL_FIXTURES");
    return dir != NULL && dir[0] != '\0' ? dir : DEFAULT_FIXTURES;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open fixture %s", path);
    char *buf = malloc(FIXTURE_MAX);
    assert_non_null(buf);
    *len = fread(buf, 1, FIXTURE_MAX, f);
    assert_true(*len < FIXTURE_MAX);
    fclose(f);
    return buf;
}

/* Events counted without the decoder: vLLM frames one "data:" line per
 * event (fixtures README), so the lines starting with "data:" are events. */
static size_t count_data_lines(const char *p, size_t len)
{
    size_t count = 0;
    for (size_t i = 0; i < len; i++) {
        bool line_start = i == 0 || p[i - 1] == '\n';
        if (line_start && len - i >= 5 && memcmp(p + i, "data:", 5) == 0)
            count++;
    }
    return count;
}

static void test_every_fixture_same_events_however_split(void **state)
{
    (void)state;
    DIR *dir = opendir(fixtures_dir());
    if (dir == NULL)
        fail_msg("cannot open fixtures dir %s (set SL_FIXTURES)", fixtures_dir());
    size_t files = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        size_t nlen = strlen(de->d_name);
        if (nlen < 4 || strcmp(de->d_name + nlen - 4, ".sse") != 0)
            continue;
        char path[PATH_MAX_LEN];
        snprintf(path, sizeof path, "%s/%s", fixtures_dir(), de->d_name);
        size_t len;
        char *buf = read_file(path, &len);
        size_t count = 0;
        char *want = decode_whole(buf, len, MAX_EVENT, &count);
        print_message("fixture %s: %zu events\n", de->d_name, count);
        assert_int_equal(count, count_data_lines(buf, len));
        assert_true(count > 0);
        assert_null(strstr(want, "E:")); /* no error, no cut event */
        assert_null(strstr(want, "}cut"));
        check_splits(buf, len, MAX_EVENT, want);
        free(want);
        free(buf);
        files++;
    }
    closedir(dir);
    assert_true(files >= 4);
}

static void test_no_reasoning_fixture_gives_seven_events_ending_in_done(void **state)
{
    (void)state;
    char path[PATH_MAX_LEN];
    snprintf(path, sizeof path, "%s/%s", fixtures_dir(), NO_REASONING_FIXTURE);
    size_t len;
    char *buf = read_file(path, &len);
    struct sl_sse_decoder d;
    sl_sse_decoder_init(&d, MAX_EVENT);
    size_t off = 0;
    size_t count = 0;
    struct sl_sse_event last = {0};
    for (;;) {
        size_t used;
        struct sl_sse_event ev;
        int rc = sl_sse_decoder_next(&d, buf + off, len - off, &used, &ev);
        assert_true(rc == 0 || rc == 1);
        off += used;
        if (rc == 0)
            break;
        count++;
        assert_int_equal(ev.type_len, 0);
        assert_int_equal(ev.id_len, 0);
        assert_false(ev.id_set);
        assert_int_equal(ev.retry_ms, -1);
        if (count < 7) {
            assert_true(ev.data_len > 30);
            assert_memory_equal(ev.data, "{\"id\":\"chatcmpl-dc461701bc424bac9de697c529922071\"",
                                49);
            assert_int_equal(ev.data[ev.data_len - 1], '}');
        }
        /* Whole lines are never copied: the data lies in the input. */
        assert_true(ev.data >= buf && ev.data + ev.data_len <= buf + len);
        last = ev;
    }
    assert_int_equal(count, 7);
    assert_int_equal(last.data_len, 6);
    assert_memory_equal(last.data, "[DONE]", 6);
    assert_false(sl_sse_decoder_end(&d));
    /* Nothing was allocated for data or split lines. */
    assert_null(d.data.data);
    assert_null(d.line.data);
    sl_sse_decoder_free(&d);
    free(buf);
}

/* ---- line ends ---- */

static void test_lf_crlf_cr_and_mixed_line_ends(void **state)
{
    (void)state;
    CHECK("data: a\n\ndata: b\n\n", "{|a|}{|b|}");
    CHECK("data: a\r\n\r\ndata: b\r\n\r\n", "{|a|}{|b|}");
    CHECK("data: a\r\rdata: b\r\r", "{|a|}{|b|}");
    CHECK("data: a\r\ndata: b\rdata: c\n\r\n", "{|a\\nb\\nc|}");
    /* "\n\r" is two line ends, "\r\n" one. */
    CHECK("data: a\n\rdata: b\r\n\n", "{|a|}{|b|}");
    CHECK("data: a\r\n\n", "{|a|}");
    CHECK("data: a\r\r\n", "{|a|}");
}

static void test_cr_at_feed_end_then_lf_is_one_line_end(void **state)
{
    (void)state;
    const char in[] = "data: a\r\ndata: b\r\n\r\n";
    size_t cut = 8; /* after the first CR */
    assert_int_equal(in[cut - 1], '\r');
    char *got = decode_cuts(in, sizeof in - 1, &cut, 1, MAX_EVENT, NULL);
    assert_string_equal(got, "{|a\\nb|}");
    free(got);
    /* A CR ending a feed ends its line at once; a non-LF next is a new line. */
    const char in2[] = "data: a\rdata: b\r\r";
    got = decode_cuts(in2, sizeof in2 - 1, &cut, 1, MAX_EVENT, NULL);
    assert_string_equal(got, "{|a\\nb|}");
    free(got);
    /* The LF after a dispatching CR is skipped in the next feed. */
    struct sl_sse_decoder d;
    sl_sse_decoder_init(&d, MAX_EVENT);
    size_t used;
    struct sl_sse_event ev;
    assert_int_equal(sl_sse_decoder_next(&d, S("data: x\r\r"), &used, &ev), 1);
    assert_int_equal(used, 9);
    assert_int_equal(sl_sse_decoder_next(&d, S("\ndata: y\n\n"), &used, &ev), 1);
    assert_int_equal(used, 10);
    assert_memory_equal(ev.data, "y", 1);
    sl_sse_decoder_free(&d);
}

/* Lines longer than the decoder's first search window (256 bytes), ended by
 * CR, LF and CRLF at odd places past it. */
static void test_long_lines_across_scan_windows(void **state)
{
    (void)state;
    enum { LONG = 700 };
    struct sl_buf in, want;
    sl_buf_init(&in, 4 * LONG);
    sl_buf_init(&want, 4 * LONG);
    char a[LONG], b[LONG - 333];
    memset(a, 'a', sizeof a);
    memset(b, 'b', sizeof b);
    assert_int_equal(sl_buf_puts(&in, "data: "), SL_OK);
    assert_int_equal(sl_buf_append(&in, a, sizeof a), SL_OK);
    assert_int_equal(sl_buf_puts(&in, "\rdata:"), SL_OK);
    assert_int_equal(sl_buf_append(&in, b, sizeof b), SL_OK);
    assert_int_equal(sl_buf_puts(&in, "\r\n\ndata: c\n\n"), SL_OK);
    assert_int_equal(sl_buf_puts(&want, "{|"), SL_OK);
    assert_int_equal(sl_buf_append(&want, a, sizeof a), SL_OK);
    assert_int_equal(sl_buf_puts(&want, "\\n"), SL_OK);
    assert_int_equal(sl_buf_append(&want, b, sizeof b), SL_OK);
    assert_int_equal(sl_buf_puts(&want, "|}{|c|}"), SL_OK);
    assert_int_equal(sl_buf_append(&want, "", 1), SL_OK);
    check_splits(sl_buf_ptr(&in), sl_buf_size(&in), MAX_EVENT, sl_buf_ptr(&want));
    sl_buf_free(&in);
    sl_buf_free(&want);
}

/* ---- BOM ---- */

static void test_leading_bom_skipped_whole_and_split(void **state)
{
    (void)state;
    CHECK("\xEF\xBB\xBF"
          "data: a\n\n",
          "{|a|}");
    CHECK("\xEF\xBB\xBF\n\ndata: a\n\n", "{|a|}");
    CHECK("\xEF\xBB\xBF", "");
    /* By hand, a BOM in three feeds. */
    const char in[] = "\xEF\xBB\xBF"
                      "data: a\n\n";
    size_t cuts[2] = {1, 2};
    char *got = decode_cuts(in, sizeof in - 1, cuts, 2, MAX_EVENT, NULL);
    assert_string_equal(got, "{|a|}");
    free(got);
}

static void test_second_or_partial_bom_is_line_bytes(void **state)
{
    (void)state;
    /* The second BOM starts the field name: an unknown field. */
    CHECK("\xEF\xBB\xBF\xEF\xBB\xBF"
          "data: a\n\ndata: b\n\n",
          "{|b|}");
    CHECK("data: a\n\xEF\xBB\xBF"
          "data: b\n\n",
          "{|a|}");
    /* Bytes that only start like a BOM stay in the line. */
    CHECK("\xEF\xBB"
          "data: a\n\ndata: b\n\n",
          "{|b|}");
    CHECK("\xEF\xBB\xBE\n"
          "data: a\n\n",
          "{|a|}");
    CHECK("\xEF\n"
          "data: a\n\n",
          "{|a|}");
    CHECK("\xEF\xBB"
          "data: a\n\n",
          "");
    CHECK("\xEF"
          "data\n\n",
          "");
}

/* ---- fields ---- */

static void test_comments_ignored(void **state)
{
    (void)state;
    CHECK(": hello\ndata: a\n: mid\ndata: b\n\n", "{|a\\nb|}");
    CHECK(":\n\n: keep-alive\n\n", "");
    CHECK(":data: x\n\ndata: y\n\n", "{|y|}");
}

static void test_multiline_data_joined_with_lf(void **state)
{
    (void)state;
    CHECK("data: a\ndata: b\ndata: c\n\n", "{|a\\nb\\nc|}");
    CHECK("data: a\ndata:\ndata: c\n\n", "{|a\\n\\nc|}");
    CHECK("data:\ndata:\ndata: foo\n\n", "{|\\n\\nfoo|}");
}

/* WHATWG checks for an empty data buffer before removing the final LF, so a
 * lone "data" line (buffer "\n") dispatches an event with empty data; WPT
 * eventsource/format-field-data.htm expects "", "\n", "test". */
static void test_field_without_colon_has_empty_value(void **state)
{
    (void)state;
    CHECK("data\n\n", "{||}");
    CHECK("data:\n\ndata\ndata\n\ndata:test\n\n", "{||}{|\\n|}{|test|}");
    CHECK("event\ndata: a\n\n", "{|a|}");
    CHECK("id\ndata: a\n\n", "{|a|*}");
}

static void test_one_leading_space_dropped(void **state)
{
    (void)state;
    CHECK("data:x\n\n", "{|x|}");
    CHECK("data:  x\n\n", "{| x|}");
    CHECK("data: x \n\n", "{|x |}");
    CHECK("data:\tx\n\n", "{|\\x09x|}");
    CHECK("data: a:b: c\n\n", "{|a:b: c|}");
    CHECK("event:  e\ndata: x\n\n", "{ e|x|}");
}

static void test_event_names_reset_after_each_block(void **state)
{
    (void)state;
    CHECK("event: delta\ndata: x\n\ndata: y\n\n", "{delta|x|}{|y|}");
    CHECK("event: a\nevent: b\ndata: x\n\n", "{b|x|}");
    CHECK("event:\ndata: x\n\n", "{|x|}");
    /* A block with only an event line dispatches nothing and forgets it. */
    CHECK("event: ping\n\n", "");
    CHECK("event: ping\n\ndata: z\n\n", "{|z|}");
}

static void test_id_persists_and_nul_id_ignored(void **state)
{
    (void)state;
    CHECK("id: 7\ndata: a\n\ndata: b\n\n", "{|a|7*}{|b|7}");
    CHECK("id: 7\ndata: a\n\nid\ndata: b\n\n", "{|a|7*}{|b|*}");
    /* A block without data still sets the last event id. */
    CHECK("id: 9\n\ndata: a\n\n", "{|a|9}");
    CHECK("data: a\nid: 3\n\n", "{|a|3*}");
    CHECK("id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n", "{|a|1*}{|b|1}");
    CHECK("id: \0\ndata: a\n\n", "{|a|}");
    CHECK("id:  x\ndata: a\n\n", "{|a| x*}");
}

static void test_retry_only_ascii_digits(void **state)
{
    (void)state;
    CHECK("retry: 1500\ndata: a\n\ndata: b\n\n", "{|a||retry=1500}{|b|}");
    CHECK("retry: 15x0\ndata: a\n\n", "{|a|}");
    CHECK("retry: -1\ndata: a\n\n", "{|a|}");
    CHECK("retry: 1.5\ndata: a\n\n", "{|a|}");
    CHECK("retry:\ndata: a\n\n", "{|a|}");
    CHECK("retry: 0\ndata: a\n\n", "{|a||retry=0}");
    CHECK("retry: 99999999999999999999999\ndata: a\n\n", "{|a||retry=9223372036854775807}");
    CHECK("retry: 5\n\ndata: a\n\n", "{|a|}");
}

static void test_unknown_fields_ignored(void **state)
{
    (void)state;
    CHECK("foo: bar\ndata: a\nDATA: b\nData: c\ndata : d\n\n", "{|a|}");
    CHECK("foo\n\n", "");
    CHECK("Event: x\nID: 1\ndata: a\n\n", "{|a|}");
}

static void test_bytes_pass_through(void **state)
{
    (void)state;
    CHECK("data: a\0b\n\n", "{|a\\x00b|}");
    CHECK("data: \xC3\xA9\xFF\n\n", "{|\\xc3\\xa9\\xff|}");
}

/* ---- the pull API ---- */

static void test_consumed_stops_after_each_event(void **state)
{
    (void)state;
    struct sl_sse_decoder d;
    sl_sse_decoder_init(&d, MAX_EVENT);
    const char in[] = "data: a\n\n: c\n\nevent: e\ndata: b\n\ndata: partial";
    size_t len = sizeof in - 1;
    size_t off = 0;
    size_t used;
    struct sl_sse_event ev;
    assert_int_equal(sl_sse_decoder_next(&d, in, len, &used, &ev), 1);
    assert_int_equal(used, 9);
    assert_ptr_equal(ev.data, in + 6); /* borrowed from the input */
    off += used;
    assert_int_equal(sl_sse_decoder_next(&d, in + off, len - off, &used, &ev), 1);
    assert_int_equal(used, 5 + 18);
    assert_memory_equal(ev.type, "e", 1);
    assert_memory_equal(ev.data, "b", 1);
    off += used;
    assert_int_equal(sl_sse_decoder_next(&d, in + off, len - off, &used, &ev), 0);
    assert_int_equal(used, len - off);
    assert_int_equal(sl_sse_decoder_next(&d, "", 0, &used, &ev), 0);
    assert_int_equal(used, 0);
    assert_int_equal(sl_sse_decoder_next(&d, S("\n\n"), &used, &ev), 1);
    assert_memory_equal(ev.data, "partial", 7);
    sl_sse_decoder_free(&d);
}

static void test_split_data_line_is_copied_once_and_kept(void **state)
{
    (void)state;
    struct sl_sse_decoder d;
    sl_sse_decoder_init(&d, MAX_EVENT);
    size_t used;
    struct sl_sse_event ev;
    char feed[32];
    memcpy(feed, "data: hel", 9);
    assert_int_equal(sl_sse_decoder_next(&d, feed, 9, &used, &ev), 0);
    memset(feed, 'X', sizeof feed); /* the caller reuses its buffer */
    memcpy(feed, "lo\n", 3);
    assert_int_equal(sl_sse_decoder_next(&d, feed, 3, &used, &ev), 0);
    memset(feed, 'X', sizeof feed);
    memcpy(feed, "\n", 1);
    assert_int_equal(sl_sse_decoder_next(&d, feed, 1, &used, &ev), 1);
    assert_int_equal(ev.data_len, 5);
    assert_memory_equal(ev.data, "hello", 5);
    /* A whole data line whose blank line comes later is owned, not borrowed. */
    memcpy(feed, "data: world\n", 12);
    assert_int_equal(sl_sse_decoder_next(&d, feed, 12, &used, &ev), 0);
    memset(feed, 'X', sizeof feed);
    assert_int_equal(sl_sse_decoder_next(&d, S("\n"), &used, &ev), 1);
    assert_int_equal(ev.data_len, 5);
    assert_memory_equal(ev.data, "world", 5);
    sl_sse_decoder_free(&d);
}

/* ---- bounds ---- */

static void test_bound_on_data_and_lines(void **state)
{
    (void)state;
    const size_t max = 16;
    /* A line is at most max bytes, its field name included. */
    check_splits(S("data:0123456789a\n\n"), max, "{|0123456789a|}");
    check_splits(S("data:0123456789ab\n\n"), max, "E:SL_ETOOBIG");
    check_splits(S("event: 012345678\ndata: x\n\n"), max, "{012345678|x|}");
    check_splits(S("event: 0123456789\ndata: x\n\n"), max, "E:SL_ETOOBIG");
    /* Comments count too, terminated or not. */
    check_splits(S(": 0123456789abcd\n\n"), max, "");
    check_splits(S(": 0123456789abcde\n\n"), max, "E:SL_ETOOBIG");
    check_splits(S("data: x\n\n: 0123456789abcde"), max, "{|x|}E:SL_ETOOBIG");
    /* An event's data (lines joined by LF) is at most max bytes. */
    check_splits(S("data:0123456\ndata:01234567\n\n"), max, "{|0123456\\n01234567|}");
    check_splits(S("data:0123456\ndata:012345678\n\n"), max, "E:SL_ETOOBIG");
    check_splits(S("data: a\n\ndata:0123456789\ndata:0123456789\n\n"), max, "{|a|}E:SL_ETOOBIG");
    check_splits(S("data\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata"
                   "\ndata\ndata\ndata\ndata\n\n"),
                 max, "{|\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n|}");
    check_splits(S("data\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata"
                   "\ndata\ndata\ndata\ndata\ndata\n\n"),
                 max, "E:SL_ETOOBIG");
}

static void test_endless_line_never_grows_past_bound(void **state)
{
    (void)state;
    const size_t max = 1024;
    struct sl_sse_decoder d;
    sl_sse_decoder_init(&d, max);
    size_t used;
    struct sl_sse_event ev;
    int rc = 0;
    size_t fed = 0;
    while (rc == 0 && fed < 100000) {
        rc = sl_sse_decoder_next(&d, "a", 1, &used, &ev);
        fed++;
    }
    assert_int_equal(rc, SL_ETOOBIG);
    assert_int_equal(fed, max + 1);
    assert_true(d.line.cap <= max);
    /* Sticky until reset; a reset decoder works again. */
    assert_int_equal(sl_sse_decoder_next(&d, S("\n\n"), &used, &ev), SL_ETOOBIG);
    sl_sse_decoder_reset(&d);
    assert_int_equal(sl_sse_decoder_next(&d, S("data: ok\n\n"), &used, &ev), 1);
    assert_memory_equal(ev.data, "ok", 2);
    sl_sse_decoder_free(&d);
}

/* ---- end of stream ---- */

static void test_end_reports_dropped_event(void **state)
{
    (void)state;
    CHECK("data: a\n", "cut");
    CHECK("data: a\n\ndata: b\nid: 1\n", "{|a|}cut");
    CHECK("data: a", "cut");
    CHECK("data", "cut");
    CHECK("data: a\n\n", "{|a|}");
    CHECK("event: x\n", "");
    CHECK("dat", "");
    CHECK(": data", "");
    CHECK("datax: 1", "");
    CHECK("id: 1\n", "");
    CHECK("", "");
}

static void test_end_keeps_last_id_for_a_reconnect(void **state)
{
    (void)state;
    struct sl_sse_decoder d;
    sl_sse_decoder_init(&d, MAX_EVENT);
    size_t used;
    struct sl_sse_event ev;
    assert_int_equal(sl_sse_decoder_next(&d, S("id: 5\ndata: a\n\ndata: cut"), &used, &ev), 1);
    assert_int_equal(sl_sse_decoder_next(&d, S("data: cut"), &used, &ev), 0);
    assert_true(sl_sse_decoder_end(&d));
    /* The new stream may start with a BOM; the partial line is gone. */
    assert_int_equal(sl_sse_decoder_next(&d,
                                         S("\xEF\xBB\xBF"
                                           "data: b\n\n"),
                                         &used, &ev),
                     1);
    assert_memory_equal(ev.data, "b", 1);
    assert_int_equal(ev.id_len, 1);
    assert_memory_equal(ev.id, "5", 1);
    assert_false(ev.id_set);
    assert_false(sl_sse_decoder_end(&d));
    sl_sse_decoder_reset(&d);
    assert_int_equal(sl_sse_decoder_next(&d, S("data: c\n\n"), &used, &ev), 1);
    assert_int_equal(ev.id_len, 0);
    sl_sse_decoder_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_fixture_same_events_however_split),
        cmocka_unit_test(test_no_reasoning_fixture_gives_seven_events_ending_in_done),
        cmocka_unit_test(test_lf_crlf_cr_and_mixed_line_ends),
        cmocka_unit_test(test_cr_at_feed_end_then_lf_is_one_line_end),
        cmocka_unit_test(test_long_lines_across_scan_windows),
        cmocka_unit_test(test_leading_bom_skipped_whole_and_split),
        cmocka_unit_test(test_second_or_partial_bom_is_line_bytes),
        cmocka_unit_test(test_comments_ignored),
        cmocka_unit_test(test_multiline_data_joined_with_lf),
        cmocka_unit_test(test_field_without_colon_has_empty_value),
        cmocka_unit_test(test_one_leading_space_dropped),
        cmocka_unit_test(test_event_names_reset_after_each_block),
        cmocka_unit_test(test_id_persists_and_nul_id_ignored),
        cmocka_unit_test(test_retry_only_ascii_digits),
        cmocka_unit_test(test_unknown_fields_ignored),
        cmocka_unit_test(test_bytes_pass_through),
        cmocka_unit_test(test_consumed_stops_after_each_event),
        cmocka_unit_test(test_split_data_line_is_copied_once_and_kept),
        cmocka_unit_test(test_bound_on_data_and_lines),
        cmocka_unit_test(test_endless_line_never_grows_past_bound),
        cmocka_unit_test(test_end_reports_dropped_event),
        cmocka_unit_test(test_end_keeps_last_id_for_a_reconnect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
