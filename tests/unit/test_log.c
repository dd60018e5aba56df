/* test_log.c - the stream log: numbering, reading in order, bounds,
 * watchers, trimming under a cursor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/alloc.h"
#include "core/limits.h"
#include "stream/log.h"

/* Where the log rebuilds coded chunks for a read (see stream/log.h). */
static struct sl_buf scratch = {NULL, 0, 0, 0, (size_t)1 << 30};

static void append_n(struct sl_log *log, int n, size_t size)
{
    char *raw = malloc(size + 1);
    for (int i = 0; i < n; i++) {
        memset(raw, 'a' + (int)(sl_log_last_seq(log) % 26), size);
        uint64_t seq = 0;
        assert_int_equal(sl_log_append(log, SL_EV_CONTENT, 0, raw, size, "t", 1, &seq), SL_OK);
        assert_int_equal(seq, sl_log_last_seq(log));
    }
    free(raw);
}

static void test_numbered_and_read_in_order(void **state)
{
    (void)state;
    struct sl_log *log = sl_log_new(1 << 20);
    append_n(log, 1000, 37);
    struct sl_log_cursor c;
    assert_int_equal(sl_log_cursor_init(log, &c, 0), SL_OK);
    struct sl_ev ev;
    for (uint64_t i = 1; i <= 1000; i++) {
        assert_int_equal(sl_log_read(log, &c, &ev, &scratch), 1);
        assert_int_equal(ev.seq, i);
        assert_int_equal(ev.raw_len, 37);
        assert_int_equal(ev.raw[0], 'a' + (int)((i - 1) % 26));
        assert_int_equal(ev.type, SL_EV_CONTENT);
    }
    assert_int_equal(sl_log_read(log, &c, &ev, &scratch), 0);
    sl_log_free(log);
}

static void test_cursor_from_the_middle(void **state)
{
    (void)state;
    struct sl_log *log = sl_log_new(1 << 20);
    append_n(log, 300, 100);
    for (uint64_t after = 0; after <= 300; after += 7) {
        struct sl_log_cursor c;
        assert_int_equal(sl_log_cursor_init(log, &c, after), SL_OK);
        struct sl_ev ev;
        if (after < 300) {
            assert_int_equal(sl_log_read(log, &c, &ev, &scratch), 1);
            assert_int_equal(ev.seq, after + 1);
        } else {
            assert_int_equal(sl_log_read(log, &c, &ev, &scratch), 0);
        }
    }
    struct sl_log_cursor c;
    assert_int_equal(sl_log_cursor_init(log, &c, 301), SL_EINVAL);
    sl_log_free(log);
}

static void test_bound_refuses_but_errors_pass(void **state)
{
    (void)state;
    struct sl_log *log = sl_log_new(1000);
    char raw[200];
    int ok = 0;
    /* Chunks unlike each other, so that none is stored as a difference. */
    for (;;) {
        memset(raw, 'a' + ok % 26, sizeof raw);
        if (sl_log_append(log, SL_EV_CONTENT, 0, raw, sizeof raw, "", 0, NULL) != SL_OK)
            break;
        ok++;
    }
    assert_true(ok >= 3 && ok <= 5);
    assert_true(sl_log_bytes(log) <= 1000);
    assert_int_equal(sl_log_append(log, SL_EV_CONTENT, 0, raw, sizeof raw, "", 0, NULL),
                     SL_ETOOBIG);
    /* The error that says why the log stops still gets in. */
    assert_int_equal(sl_log_append(log, SL_EV_ERROR, 0, "{}", 2, "", 0, NULL), SL_OK);
    sl_log_end(log);
    assert_int_equal(sl_log_append(log, SL_EV_ERROR, 0, "{}", 2, "", 0, NULL), SL_EINVAL);
    sl_log_free(log);
}

struct counter {
    struct sl_log_watcher w;
    int appends;
    int ends;
};

static void on_watch(struct sl_log_watcher *w, struct sl_log *log)
{
    struct counter *c = w->data;
    if (sl_log_ended(log))
        c->ends++;
    else
        c->appends++;
}

static void test_watchers(void **state)
{
    (void)state;
    struct sl_log *log = sl_log_new(1 << 20);
    struct counter a = {{on_watch, NULL, NULL, NULL}, 0, 0};
    struct counter b = {{on_watch, NULL, NULL, NULL}, 0, 0};
    a.w.data = &a;
    b.w.data = &b;
    sl_log_watch(log, &a.w);
    sl_log_watch(log, &b.w);
    append_n(log, 3, 10);
    sl_log_unwatch(log, &a.w);
    append_n(log, 2, 10);
    sl_log_end(log);
    assert_int_equal(a.appends, 3);
    assert_int_equal(a.ends, 0);
    assert_int_equal(b.appends, 5);
    assert_int_equal(b.ends, 1);
    sl_log_unwatch(log, &b.w);
    sl_log_free(log);
}

/* Issue 10: a watcher that cancels from inside the notification of an
 * append (appends the error, ends the log, unwatches itself and another)
 * must leave every other watcher told of the end exactly once, and never
 * call a watcher that was unwatched meanwhile. */
struct reenter {
    struct sl_log_watcher w;
    struct sl_log_watcher *victim; /* unwatched from inside the callback */
    bool cancel;                   /* append an error and end the log */
    int appends, ends;
};

static void on_reenter(struct sl_log_watcher *w, struct sl_log *log)
{
    struct reenter *r = w->data;
    if (sl_log_ended(log)) {
        r->ends++;
        sl_log_unwatch(log, w);
        return;
    }
    r->appends++;
    if (r->cancel && r->appends == 2) {
        r->cancel = false;
        sl_log_unwatch(log, w);
        if (r->victim) {
            sl_log_unwatch(log, r->victim);
            memset(r->victim, 0x5a, sizeof *r->victim); /* as if freed */
        }
        assert_int_equal(sl_log_append(log, SL_EV_ERROR, 0, "{\"error\":{}}", 12, "", 0, NULL),
                         SL_OK);
        sl_log_end(log);
    }
}

static void test_watchers_may_cancel_from_inside_a_callback(void **state)
{
    (void)state;
    /* Watchers are told newest first: watch order is reverse call order. */
    for (int victim_pos = 0; victim_pos < 4; victim_pos++) {
        struct sl_log *log = sl_log_new(1 << 20);
        struct reenter r[4];
        memset(r, 0, sizeof r);
        for (int i = 3; i >= 0; i--) {
            r[i].w.cb = on_reenter;
            r[i].w.data = &r[i];
            sl_log_watch(log, &r[i].w);
        }
        /* r[1] cancels; it unwatches r[victim_pos] (itself when 1). */
        r[1].cancel = true;
        if (victim_pos != 1)
            r[1].victim = &r[victim_pos].w;
        for (int k = 0; k < 2; k++)
            assert_int_equal(sl_log_append(log, SL_EV_CONTENT, 0, "tok", 3, "t", 1, NULL), SL_OK);
        for (int i = 0; i < 4; i++) {
            if (i == 1)
                assert_int_equal(r[i].ends, 0); /* it unwatched itself */
            else if (i != victim_pos)
                assert_int_equal(r[i].ends, 1); /* told of the end once */
        }
        assert_true(sl_log_ended(log));
        assert_int_equal(sl_log_last_seq(log), 3); /* two tokens and the error */
        for (int i = 0; i < 4; i++)
            if (i != victim_pos || i == 1)
                sl_log_unwatch(log, &r[i].w); /* a no-op for those that left */
        sl_log_free(log);
    }
}

/* Issue 10: an error is the last event: nothing but the end follows it,
 * and the one error passes the bound by at most SL_LIMIT_LOG_ERROR_BYTES. */
static void test_one_error_then_nothing(void **state)
{
    (void)state;
    struct sl_log *log = sl_log_new(4096);
    append_n(log, 2, 10);
    assert_int_equal(sl_log_append(log, SL_EV_ERROR, 0, "{}", 2, "", 0, NULL), SL_OK);
    size_t after_error = sl_log_bytes(log);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(sl_log_append(log, SL_EV_ERROR, 0, "{}", 2, "", 0, NULL), SL_EINVAL);
        assert_int_equal(sl_log_append(log, SL_EV_CONTENT, 0, "x", 1, "x", 1, NULL), SL_EINVAL);
    }
    assert_int_equal(sl_log_bytes(log), after_error);
    assert_int_equal(sl_log_last_seq(log), 3);
    sl_log_free(log);

    /* A full log takes an error of up to the reserve, not a larger one. */
    log = sl_log_new(4096);
    char raw[100];
    for (int i = 0;; i++) {
        memset(raw, 'a' + i % 26, sizeof raw);
        if (sl_log_append(log, SL_EV_CONTENT, 0, raw, sizeof raw, "", 0, NULL) != SL_OK)
            break;
    }
    static char big[SL_LIMIT_LOG_ERROR_BYTES + 1];
    memset(big, 'e', sizeof big);
    assert_int_equal(sl_log_append(log, SL_EV_ERROR, 0, big, sizeof big, "", 0, NULL), SL_ETOOBIG);
    assert_int_equal(sl_log_append(log, SL_EV_ERROR, 0, big, 1000, "", 0, NULL), SL_OK);
    assert_true(sl_log_bytes(log) <= 4096 + SL_LIMIT_LOG_ERROR_BYTES);
    sl_log_free(log);
}

static void test_trim_keeps_cursors_valid(void **state)
{
    (void)state;
    struct sl_log *log = sl_log_new(64 << 20);
    struct sl_log_cursor c;
    assert_int_equal(sl_log_cursor_init(log, &c, 0), SL_OK);
    struct sl_ev ev;
    uint64_t want = 1;
    size_t peak = 0;
    for (int round = 0; round < 200; round++) {
        append_n(log, 50, 90);
        while (sl_log_read(log, &c, &ev, &scratch) == 1) {
            assert_int_equal(ev.seq, want);
            assert_int_equal(ev.raw[0], 'a' + (int)((want - 1) % 26));
            want++;
        }
        sl_log_trim(log, c.next_seq);
        if (sl_log_bytes(log) > peak)
            peak = sl_log_bytes(log);
    }
    assert_int_equal(want, 10001);
    /* Read events go: what is held stays within a couple of blocks. */
    assert_true(peak < 64 * 1024);
    struct sl_log_cursor old;
    assert_int_equal(sl_log_cursor_init(log, &old, 0), SL_ENOTFOUND);
    sl_log_free(log);
}

/* Chunks that share most bytes with the block's first are stored as the
 * difference and read back whole. */
static void test_similar_chunks_are_stored_small_and_read_whole(void **state)
{
    (void)state;
    struct sl_log *log = sl_log_new(1 << 24);
    char raw[512];
    const char *words[] = {"Hello", ",", " world", "\\n", " \xf0\x9f\x98\x8a", ""};
    size_t total_raw = 0;
    for (int i = 0; i < 600; i++) {
        int n = snprintf(
            raw, sizeof raw,
            "{\"id\":\"chatcmpl-0123456789abcdef\",\"object\":\"chat.completion.chunk\","
            "\"created\":1753616032,\"model\":\"Qwen/Qwen3-0.6B\",\"choices\":[{\"index\":0,"
            "\"delta\":{\"content\":\"%s%d\"},\"logprobs\":null,\"finish_reason\":null}]}",
            words[i % 6], i);
        total_raw += (size_t)n;
        assert_int_equal(sl_log_append(log, SL_EV_CONTENT, 0, raw, (size_t)n, "t", 1, NULL), SL_OK);
    }
    /* A whole chunk is ~200 bytes; a coded one a header and a few bytes. */
    assert_true(sl_log_bytes(log) * 3 < total_raw);
    struct sl_log_cursor c;
    assert_int_equal(sl_log_cursor_init(log, &c, 0), SL_OK);
    struct sl_ev evs[100];
    int i = 0;
    for (;;) {
        size_t n = 0;
        assert_int_equal(sl_log_read_batch(log, &c, evs, 100, &scratch, &n), SL_OK);
        if (n == 0)
            break;
        for (size_t k = 0; k < n; k++, i++) {
            int len =
                snprintf(raw, sizeof raw,
                         "{\"id\":\"chatcmpl-0123456789abcdef\",\"object\":\"chat.completion."
                         "chunk\",\"created\":1753616032,\"model\":\"Qwen/Qwen3-0.6B\",\"choices\":"
                         "[{\"index\":0,\"delta\":{\"content\":\"%s%d\"},\"logprobs\":null,"
                         "\"finish_reason\":null}]}",
                         words[i % 6], i);
            assert_int_equal(evs[k].seq, (uint64_t)i + 1);
            assert_int_equal(evs[k].raw_len, (size_t)len);
            assert_memory_equal(evs[k].raw, raw, (size_t)len);
            assert_memory_equal(evs[k].text, "t", 1);
        }
    }
    assert_int_equal(i, 600);
    /* From the middle too. */
    assert_int_equal(sl_log_cursor_init(log, &c, 299), SL_OK);
    struct sl_ev ev;
    assert_int_equal(sl_log_read(log, &c, &ev, &scratch), 1);
    int len =
        snprintf(raw, sizeof raw,
                 "{\"id\":\"chatcmpl-0123456789abcdef\",\"object\":\"chat.completion.chunk\","
                 "\"created\":1753616032,\"model\":\"Qwen/Qwen3-0.6B\",\"choices\":[{\"index\":0,"
                 "\"delta\":{\"content\":\"%s%d\"},\"logprobs\":null,\"finish_reason\":null}]}",
                 words[299 % 6], 299);
    assert_int_equal(ev.raw_len, (size_t)len);
    assert_memory_equal(ev.raw, raw, (size_t)len);
    sl_log_free(log);
}

/* Chunks that differ from the block's first at one byte, at every position
 * and with every length around the word size of the comparison, and
 * chunks that are a prefix or a suffix of it: each reads back whole. */
static void test_differences_at_every_position_read_back_whole(void **state)
{
    (void)state;
    struct sl_log *log = sl_log_new(1 << 26);
    char key[80], raw[96];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (char)('A' + i % 50);
    struct want {
        size_t len;
        char bytes[96];
    } *wants = calloc(20000, sizeof *wants);
    assert_non_null(wants);
    size_t n = 0;
    for (size_t len = 60; len <= sizeof key + 9; len++) {
        /* a block per length: its first chunk is the key itself */
        for (size_t pos = 0; pos <= len && n < 20000; pos++) {
            size_t klen = len < sizeof key ? len : sizeof key;
            memcpy(raw, key, klen);
            for (size_t i = klen; i < len; i++)
                raw[i] = 'z';
            if (pos < len)
                raw[pos] = '#'; /* one differing byte (pos == len: none) */
            memcpy(wants[n].bytes, raw, len);
            wants[n].len = len;
            n++;
            assert_int_equal(sl_log_append(log, SL_EV_CONTENT, 0, raw, len, "", 0, NULL), SL_OK);
        }
        /* a prefix and a suffix of the key */
        for (size_t cut = 1; cut < 20 && n + 2 <= 20000; cut++) {
            memcpy(wants[n].bytes, key, sizeof key - cut);
            wants[n].len = sizeof key - cut;
            assert_int_equal(
                sl_log_append(log, SL_EV_CONTENT, 0, key, sizeof key - cut, "", 0, NULL), SL_OK);
            n++;
            memcpy(wants[n].bytes, key + cut, sizeof key - cut);
            wants[n].len = sizeof key - cut;
            assert_int_equal(
                sl_log_append(log, SL_EV_CONTENT, 0, key + cut, sizeof key - cut, "", 0, NULL),
                SL_OK);
            n++;
        }
    }
    struct sl_log_cursor c;
    assert_int_equal(sl_log_cursor_init(log, &c, 0), SL_OK);
    struct sl_ev ev;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(sl_log_read(log, &c, &ev, &scratch), 1);
        assert_int_equal(ev.raw_len, wants[i].len);
        assert_memory_equal(ev.raw, wants[i].bytes, wants[i].len);
    }
    free(wants);
    sl_log_free(log);
}

/* While watchers are told of an append, the log hands them the event just
 * appended, equal to what a read gives back; NULL at the end. */
struct handoff {
    struct sl_log_watcher w;
    int seen, ends;
    uint64_t last_seq;
    char raw[64];
    size_t raw_len;
};

static void on_handoff(struct sl_log_watcher *w, struct sl_log *log)
{
    struct handoff *h = w->data;
    const struct sl_ev *ev = sl_log_appended(log);
    if (sl_log_ended(log)) {
        assert_null(ev);
        h->ends++;
        return;
    }
    assert_non_null(ev);
    assert_int_equal(ev->seq, sl_log_last_seq(log));
    assert_true(ev->raw_len < sizeof h->raw);
    memcpy(h->raw, ev->raw, ev->raw_len);
    h->raw_len = ev->raw_len;
    h->last_seq = ev->seq;
    h->seen++;
}

static void test_watchers_get_the_appended_event(void **state)
{
    (void)state;
    struct sl_log *log = sl_log_new(1 << 20);
    struct handoff h = {{on_handoff, NULL, NULL, NULL}, 0, 0, 0, {0}, 0};
    h.w.data = &h;
    sl_log_watch(log, &h.w);
    struct sl_log_cursor c;
    assert_int_equal(sl_log_cursor_init(log, &c, 0), SL_OK);
    char raw[40];
    for (int i = 0; i < 50; i++) {
        int n = snprintf(raw, sizeof raw, "{\"same prefix\":%d,\"same suffix\"}", i);
        assert_int_equal(sl_log_append(log, SL_EV_CONTENT, 0, raw, (size_t)n, "t", 1, NULL), SL_OK);
        assert_null(sl_log_appended(log));
        struct sl_ev ev;
        assert_int_equal(sl_log_read(log, &c, &ev, &scratch), 1);
        assert_int_equal(h.last_seq, ev.seq);
        assert_int_equal(h.raw_len, ev.raw_len);
        assert_memory_equal(h.raw, ev.raw, ev.raw_len);
    }
    sl_log_end(log);
    assert_int_equal(h.seen, 50);
    assert_int_equal(h.ends, 1);
    sl_log_unwatch(log, &h.w);
    sl_log_free(log);
}

/* ---- allocation failures (issue 10) ---- */

#define FAIL_EVENTS 120

/* Event i: chat chunks alike but for the token (stored as differences),
 * and every 40th one too big for a block (a block of its own). */
static size_t fail_event(int i, char *raw, size_t cap)
{
    if (i % 40 == 39) {
        size_t n = 20000 < cap ? 20000 : cap;
        memset(raw, 'A' + i % 26, n);
        return n;
    }
    int n = snprintf(raw, cap,
                     "{\"id\":\"chatcmpl-fail\",\"object\":\"chat.completion.chunk\",\"choices\":"
                     "[{\"index\":0,\"delta\":{\"content\":\"tok%d\"}}],\"model\":\"m\"}",
                     i);
    return (size_t)n;
}

/* Reads events after after_seq to the end and checks each against
 * fail_event. Returns the first error (SL_ENOMEM from scratch). */
static int fail_read_check(struct sl_log *log, uint64_t after_seq, struct sl_buf *sc)
{
    struct sl_log_cursor cur;
    int rc = sl_log_cursor_init(log, &cur, after_seq);
    if (rc != SL_OK)
        return rc;
    uint64_t want = after_seq + 1;
    static char raw[20000];
    for (;;) {
        struct sl_ev evs[16];
        size_t n = 0;
        rc = sl_log_read_batch(log, &cur, evs, 16, sc, &n);
        if (rc != SL_OK)
            return rc;
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++, want++) {
            size_t len = fail_event((int)want - 1, raw, sizeof raw);
            assert_int_equal(evs[i].seq, want);
            assert_int_equal(evs[i].raw_len, len);
            assert_memory_equal(evs[i].raw, raw, len);
        }
    }
    assert_int_equal(want, sl_log_last_seq(log) + 1);
    return SL_OK;
}

/* Appends events from *done up to FAIL_EVENTS; *done counts those in. */
static int fail_append(struct sl_log *log, int *done)
{
    static char raw[20000];
    for (; *done < FAIL_EVENTS; (*done)++) {
        size_t len = fail_event(*done, raw, sizeof raw);
        int rc = sl_log_append(log, SL_EV_CONTENT, 0, raw, len, "t", 1, NULL);
        if (rc != SL_OK)
            return rc;
    }
    return SL_OK;
}

/* For N = 1, 2, ...: the N-th allocation of new, append, read, trim, read
 * fails. Each time the failure comes back as SL_ENOMEM (NULL from new),
 * nothing half-done stays (the events in are whole and numbered without a
 * gap), the log works afterwards, and nothing leaks (LSan). Until an N
 * past the sequence's last allocation. */
static void test_every_failed_allocation_is_enomem_and_the_log_goes_on(void **state)
{
    (void)state;
    if (!sl_alloc_faults_built())
        skip();
    unsigned long n = 1;
    for (;; n++) {
        assert_int_equal(sl_alloc_fail(NULL, n, n), SL_OK);
        struct sl_log *log = sl_log_new(1 << 22);
        if (log == NULL) {
            assert_int_equal(sl_alloc_failed(), 1);
            continue;
        }
        struct sl_buf sc;
        sl_buf_init(&sc, 1 << 20);
        int done = 0;
        int rc = fail_append(log, &done);
        if (rc == SL_OK)
            rc = fail_read_check(log, 0, &sc);
        if (rc == SL_OK) {
            sl_log_trim(log, FAIL_EVENTS / 2);
            rc = fail_read_check(log, FAIL_EVENTS / 2, &sc);
        }
        unsigned long failed = sl_alloc_failed();
        assert_int_equal(sl_alloc_fail(NULL, 0, 0), SL_OK);
        if (failed == 0) {
            assert_int_equal(rc, SL_OK);
            sl_buf_free(&sc);
            sl_log_free(log);
            break;
        }
        if (rc != SL_ENOMEM)
            fail_msg("allocation %lu failed: got %s, want SL_ENOMEM", n, sl_errname(rc));
        assert_int_equal(sl_log_last_seq(log), (uint64_t)done);
        /* Usable afterwards: the rest goes in and everything reads back. */
        assert_int_equal(fail_append(log, &done), SL_OK);
        assert_int_equal(fail_read_check(log, FAIL_EVENTS / 2, &sc), SL_OK);
        sl_buf_free(&sc);
        sl_log_free(log);
    }
    assert_true(n > 3); /* the sequence did allocate */
}

/* Found by fuzz/fuzz_log: a chunk that would be stored small (it shares
 * most bytes with its block's first) but does not fit in that block starts
 * a new block, where it is stored whole; the bound must hold for that. */
static void test_bound_holds_for_a_chunk_that_starts_a_block(void **state)
{
    (void)state;
    struct sl_log *log = sl_log_new(600);
    char raw[480];
    memset(raw, 'k', sizeof raw);
    /* 480 bytes and a header fill the first block (512 bytes). */
    assert_int_equal(sl_log_append(log, SL_EV_CONTENT, 0, raw, sizeof raw, "", 0, NULL), SL_OK);
    size_t first = sl_log_bytes(log);
    assert_true(first + 64 <= 600); /* room for the difference */
    /* The same chunk but one byte: small as a difference, whole as a new
     * block's first, and whole it does not fit. */
    raw[240] = 'x';
    int rc = sl_log_append(log, SL_EV_CONTENT, 0, raw, sizeof raw, "", 0, NULL);
    assert_true(sl_log_bytes(log) <= 600);
    assert_int_equal(rc, SL_ETOOBIG);
    assert_int_equal(sl_log_last_seq(log), 1);
    sl_log_free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbered_and_read_in_order),
        cmocka_unit_test(test_every_failed_allocation_is_enomem_and_the_log_goes_on),
        cmocka_unit_test(test_cursor_from_the_middle),
        cmocka_unit_test(test_bound_refuses_but_errors_pass),
        cmocka_unit_test(test_watchers),
        cmocka_unit_test(test_watchers_may_cancel_from_inside_a_callback),
        cmocka_unit_test(test_one_error_then_nothing),
        cmocka_unit_test(test_trim_keeps_cursors_valid),
        cmocka_unit_test(test_similar_chunks_are_stored_small_and_read_whole),
        cmocka_unit_test(test_differences_at_every_position_read_back_whole),
        cmocka_unit_test(test_watchers_get_the_appended_event),
        cmocka_unit_test(test_bound_holds_for_a_chunk_that_starts_a_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
