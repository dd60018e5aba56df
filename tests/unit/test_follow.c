/* test_follow.c - the follower's bound on unsent bytes (issue 10): a sink
 * that sends nothing until the test says so, over the in-memory store. A
 * burst renders only up to max_unsent (plus one event), and each drain goes
 * on from the exact next event, to the end: nothing lost, nothing twice.
 * The upstream is a transport that never answers: the tests write the logs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "face/follow.h"
#include "stream/store_mem.h"
#include "quiet_stream.h"
#include "stream/stream.h"

#define EVENT_TEXT 3000
#define EVENTS     300
#define MAX_UNSENT 16384
/* One rendered event: its text and the SSE lines around it. */
#define EVENT_BYTES (EVENT_TEXT + 256)

/* ---- a stream whose log the test writes --------------------------------- */

static void done_cb(void *ud, int err)
{
    *(int *)ud = err;
}

static struct sl_stream *new_stream(struct sl_store *st)
{
    struct sl_stream *s = NULL;
    assert_int_equal(quiet_stream(1 << 24, 30000, &s), SL_OK);
    int err = -999;
    st->ops->add(st, s, done_cb, &err);
    assert_int_equal(err, SL_OK);
    return s;
}

/* Appends n content events, each text numbered from first ("<00007>xxx..."). */
static void write_events(struct sl_stream *s, int first, int n)
{
    static char text[EVENT_TEXT];
    for (int i = first; i < first + n; i++) {
        memset(text, 'x', sizeof text);
        char mark[16];
        int len = snprintf(mark, sizeof mark, "<%05d>", i);
        memcpy(text, mark, (size_t)len);
        assert_int_equal(sl_log_append(s->log, SL_EV_CONTENT, 0, "{}", 2, text, sizeof text, NULL),
                         SL_OK);
    }
}

/* ---- a sink that sends only when told ----------------------------------- */

struct sink {
    struct sl_buf got;  /* everything written, in order */
    size_t unsent;      /* written and not yet "on the wire" */
    size_t most_unsent; /* the most unsent after any write */
    bool ended;
    int failed;
};

static int sink_write(void *ud, const char *p, size_t n)
{
    struct sink *k = ud;
    assert_int_equal(sl_buf_append(&k->got, p, n), SL_OK);
    k->unsent += n;
    if (k->unsent > k->most_unsent)
        k->most_unsent = k->unsent;
    return SL_OK;
}

static size_t sink_pending(void *ud)
{
    return ((struct sink *)ud)->unsent;
}

static void sink_end(void *ud)
{
    ((struct sink *)ud)->ended = true;
}

static void sink_fail(void *ud, int err)
{
    ((struct sink *)ud)->failed = err;
}

static const struct sl_follow_sink fake_sink = {sink_write, sink_pending, sink_end, sink_fail,
                                                NULL};

/* The client reads all until the stream's end: each time the follower
 * waits, what it wrote goes on the wire and it is told to go on. Returns
 * the drains it took. */
static int read_to_end(struct sink *k, struct sl_follower *f)
{
    int drains = 0;
    while (!k->ended && k->failed == 0) {
        assert_true(k->unsent >= MAX_UNSENT); /* it waits only at its bound */
        assert_true(++drains < 100000);
        k->unsent = 0;
        sl_follow_drain(f);
    }
    return drains;
}

/* What the client got: the ids of its events gapless from 1 to last, and
 * each text from first to last_text exactly once, in order. */
static void assert_whole(const struct sink *k, uint64_t last, int last_text)
{
    const char *p = sl_buf_ptr(&k->got);
    const char *end = p + sl_buf_size(&k->got);
    uint64_t want = 1;
    int text = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(nl);
        if (nl - p > 4 && memcmp(p, "id: ", 4) == 0) {
            assert_int_equal(strtoull(p + 4, NULL, 10), want);
            want++;
        }
        const char *mark = memchr(p, '<', (size_t)(nl - p));
        if (mark) {
            char expect[16];
            snprintf(expect, sizeof expect, "<%05d>", text);
            assert_memory_equal(mark, expect, 7);
            text++;
        }
        p = nl + 1;
    }
    assert_int_equal(want - 1, last);
    assert_int_equal(text, last_text + 1);
}

static struct sl_store_mem *new_store(void)
{
    struct sl_store_mem_opts o = {600, 1 << 26, 250};
    struct sl_store_mem *m = sl_store_mem_new(NULL, &o);
    assert_non_null(m);
    sl_store_mem_sweep(m, 1000);
    return m;
}

static const struct sl_follow_opts opts = {.format = SL_RENDER_COMPACT, .max_unsent = MAX_UNSENT};

/* A late reader of a finished log: no batch of 64 events rendered at once. */
static void test_finished_log_is_sent_at_the_bound(void **state)
{
    (void)state;
    struct sl_store_mem *m = new_store();
    struct sl_store *st = sl_store_mem_base(m);
    struct sl_stream *s = new_stream(st);
    write_events(s, 0, EVENTS);
    sl_stream_cancel(s); /* ends the log with its cancelled event */
    uint64_t last = sl_log_last_seq(s->log);

    struct sink k = {0};
    sl_buf_init(&k.got, 1 << 26);
    struct sl_follower *f = NULL;
    assert_int_equal(sl_follow_start(st, s->id, 0, &opts, &fake_sink, &k, &f), SL_OK);
    assert_false(k.ended); /* ~1 MB of events: held at the bound */
    int drains = read_to_end(&k, f);
    assert_true(k.ended);
    assert_int_equal(k.failed, 0);
    assert_true(k.most_unsent <= MAX_UNSENT + EVENT_BYTES);
    assert_true(drains >= EVENTS * EVENT_TEXT / (MAX_UNSENT + EVENT_BYTES));
    assert_whole(&k, last, EVENTS - 1);

    sl_buf_free(&k.got);
    sl_stream_unref(s);
    sl_store_mem_free(m);
    sl_follow_thread_done();
}

/* A live reader under a burst: events land while it waits at its bound, and
 * the backlog goes out as it drains, from the next event on. */
static void test_burst_while_held_goes_on_from_the_next_event(void **state)
{
    (void)state;
    struct sl_store_mem *m = new_store();
    struct sl_store *st = sl_store_mem_base(m);
    struct sl_stream *s = new_stream(st);
    write_events(s, 0, 2);

    struct sink k = {0};
    sl_buf_init(&k.got, 1 << 26);
    struct sl_follower *f = NULL;
    assert_int_equal(sl_follow_start(st, s->id, 0, &opts, &fake_sink, &k, &f), SL_OK);
    assert_true(k.unsent > 0 && k.unsent < MAX_UNSENT);
    write_events(s, 2, EVENTS - 2); /* the burst: nothing drains meanwhile */
    assert_true(k.most_unsent <= MAX_UNSENT + EVENT_BYTES);
    assert_true(k.unsent >= MAX_UNSENT);
    k.unsent = 0;
    sl_follow_drain(f); /* part of the backlog, up to the bound again */
    assert_true(k.most_unsent <= MAX_UNSENT + EVENT_BYTES);
    assert_true(k.unsent >= MAX_UNSENT);
    sl_stream_cancel(s);
    uint64_t last = sl_log_last_seq(s->log);
    (void)read_to_end(&k, f);
    assert_true(k.ended);
    assert_true(k.most_unsent <= MAX_UNSENT + EVENT_BYTES);
    assert_whole(&k, last, EVENTS - 1);

    sl_buf_free(&k.got);
    sl_stream_unref(s);
    sl_store_mem_free(m);
    sl_follow_thread_done();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finished_log_is_sent_at_the_bound),
        cmocka_unit_test(test_burst_while_held_goes_on_from_the_next_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
