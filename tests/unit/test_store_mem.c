/* test_store_mem.c - the in-memory store with a hand clock: lookups and
 * read tokens, reads in order from any number, grace for streams nobody
 * listens to, retention, the byte bound (oldest finished first), and
 * tombstones (410, then forgotten). The upstream is a transport that
 * never answers: the tests write the logs themselves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/alloc.h"
#include "quiet_stream.h"
#include "stream/store_mem.h"

static struct sl_stream *new_stream(uint64_t grace_ms)
{
    struct sl_stream *s = NULL;
    assert_int_equal(quiet_stream(1 << 20, grace_ms, &s), SL_OK);
    return s;
}

static void done_cb(void *ud, int err)
{
    *(int *)ud = err;
}

static void add(struct sl_store *st, struct sl_stream *s)
{
    int err = -999;
    st->ops->add(st, s, done_cb, &err);
    assert_int_equal(err, SL_OK);
}

static void write_events(struct sl_stream *s, int n, size_t size, bool end)
{
    char raw[4096];
    for (int i = 0; i < n; i++) {
        /* Unlike each other: none is stored as a difference (log.c). */
        memset(raw, 'a' + i % 26, sizeof raw);
        assert_int_equal(sl_log_append(s->log, SL_EV_CONTENT, 0, raw, size, "t", 1, NULL), SL_OK);
    }
    /* The upstream is done: cancel ends the log (with the cancelled event)
     * and lets go of the producer's reference, as a real end would. */
    if (end)
        sl_stream_cancel(s);
}

struct got {
    int err;
    struct sl_store_info info;
    char token[32];
};

static void info_cb(void *ud, int err, const struct sl_store_info *info)
{
    struct got *g = ud;
    g->err = err;
    if (info) {
        g->info = *info;
        snprintf(g->token, sizeof g->token, "%s", info->read_token);
    }
}

static int get(struct sl_store *st, const char *id, struct got *g)
{
    g->err = -999;
    st->ops->get(st, id, info_cb, g);
    return g->err;
}

struct readout {
    int err;
    uint64_t seqs[512];
    size_t n;
    bool ended;
};

static void read_cb(void *ud, int err, const struct sl_ev *evs, size_t n, bool ended)
{
    struct readout *r = ud;
    r->err = err;
    r->ended = ended;
    for (size_t i = 0; i < n && r->n < 512; i++)
        r->seqs[r->n++] = evs[i].seq;
}

static struct sl_store_mem *new_store(int64_t retention_s, size_t max_bytes)
{
    struct sl_store_mem_opts o = {retention_s, max_bytes, 250};
    struct sl_store_mem *st = sl_store_mem_new(NULL, &o);
    assert_non_null(st);
    sl_store_mem_sweep(st, 1000);
    return st;
}

static void test_lookup_and_read_in_order(void **state)
{
    (void)state;
    struct sl_store_mem *m = new_store(600, 1 << 24);
    struct sl_store *st = sl_store_mem_base(m);
    struct sl_stream *s = new_stream(30000);
    add(st, s);
    write_events(s, 300, 10, false);
    struct got g;
    assert_int_equal(get(st, s->id, &g), SL_OK);
    assert_int_equal(g.info.last_seq, 300);
    assert_false(g.info.ended);
    assert_int_equal(strlen(g.token), 22);
    assert_string_not_equal(g.token, s->id);
    struct readout r = {0};
    st->ops->read(st, s->id, 100, 50, read_cb, &r);
    assert_int_equal(r.err, SL_OK);
    assert_int_equal(r.n, 50);
    for (size_t i = 0; i < r.n; i++)
        assert_int_equal(r.seqs[i], 101 + i);
    assert_false(r.ended);
    struct readout past = {0};
    st->ops->read(st, s->id, 301, 10, read_cb, &past);
    assert_int_equal(past.err, SL_EINVAL);
    write_events(s, 0, 0, true);
    struct readout last = {0};
    st->ops->read(st, s->id, 300, 10, read_cb, &last);
    assert_int_equal(last.n, 1); /* the cancelled event */
    assert_true(last.ended);
    assert_int_equal(get(st, "AAAAAAAAAAAAAAAAAAAAAA", &g), SL_ENOTFOUND);
    sl_stream_unref(s);
    sl_store_mem_free(m);
}

static void test_grace_counts_from_creation_and_from_the_last_listener(void **state)
{
    (void)state;
    quiet_cancels = 0;
    struct sl_store_mem *m = new_store(600, 1 << 24);
    struct sl_store *st = sl_store_mem_base(m);
    struct sl_stream *a = new_stream(5000); /* nobody ever comes */
    struct sl_stream *b = new_stream(5000); /* a listener comes and goes */
    add(st, a);
    add(st, b);
    st->ops->listeners(st, b->id, +1);
    sl_store_mem_sweep(m, 5999);
    assert_int_equal(quiet_cancels, 0);
    sl_store_mem_sweep(m, 6000); /* a: 5 s since creation at 1000 */
    assert_int_equal(quiet_cancels, 1);
    assert_int_equal(a->state, SL_STREAM_CANCELLED);
    assert_int_equal(b->state, SL_STREAM_RUNNING);
    st->ops->listeners(st, b->id, -1); /* left at 6000 */
    sl_store_mem_sweep(m, 10999);
    assert_int_equal(b->state, SL_STREAM_RUNNING);
    sl_store_mem_sweep(m, 11000);
    assert_int_equal(b->state, SL_STREAM_CANCELLED);
    assert_int_equal(quiet_cancels, 2);
    sl_stream_unref(a);
    sl_stream_unref(b);
    sl_store_mem_free(m);
}

static void test_grace_zero_cancels_when_the_listener_leaves(void **state)
{
    (void)state;
    quiet_cancels = 0;
    struct sl_store_mem *m = new_store(600, 1 << 24);
    struct sl_store *st = sl_store_mem_base(m);
    struct sl_stream *s = new_stream(0);
    add(st, s);
    st->ops->listeners(st, s->id, +1);
    st->ops->listeners(st, s->id, -1);
    assert_int_equal(quiet_cancels, 1);
    assert_int_equal(s->state, SL_STREAM_CANCELLED);
    /* The log ended with the cancelled error and stays readable. */
    struct readout r = {0};
    st->ops->read(st, s->id, 0, 10, read_cb, &r);
    assert_int_equal(r.err, SL_OK);
    assert_int_equal(r.n, 1);
    assert_true(r.ended);
    sl_stream_unref(s);
    sl_store_mem_free(m);
}

static void test_retention_then_tombstone_then_forgotten(void **state)
{
    (void)state;
    struct sl_store_mem *m = new_store(10, 1 << 24);
    struct sl_store *st = sl_store_mem_base(m);
    struct sl_stream *s = new_stream(30000);
    char id[32];
    snprintf(id, sizeof id, "%s", s->id);
    add(st, s);
    sl_stream_unref(s);           /* the store keeps it */
    write_events(s, 3, 10, true); /* finished at 1000 */
    struct got g;
    sl_store_mem_sweep(m, 10999);
    assert_int_equal(get(st, id, &g), SL_OK);
    assert_true(g.info.ended);
    sl_store_mem_sweep(m, 11000);
    assert_int_equal(get(st, id, &g), SL_EGONE);
    struct readout r = {0};
    st->ops->read(st, id, 0, 10, read_cb, &r);
    assert_int_equal(r.err, SL_EGONE);
    sl_store_mem_sweep(m, 11000 + 24ull * 3600 * 1000);
    assert_int_equal(get(st, id, &g), SL_ENOTFOUND);
    assert_int_equal(sl_store_mem_count(m), 0);
    sl_store_mem_free(m);
}

static void test_byte_bound_evicts_oldest_finished_first(void **state)
{
    (void)state;
    struct sl_store_mem *m = new_store(600, 64 * 1024);
    struct sl_store *st = sl_store_mem_base(m);
    char ids[8][32];
    struct sl_stream *running = new_stream(30000);
    add(st, running);
    write_events(running, 40, 1000, false); /* running: never evicted */
    for (int i = 0; i < 8; i++) {
        struct sl_stream *s = new_stream(30000);
        snprintf(ids[i], sizeof ids[i], "%s", s->id);
        add(st, s);
        sl_stream_unref(s);
        write_events(s, 20, 1000, true); /* about 21 KB each */
        sl_store_mem_sweep(m, 2000 + (uint64_t)i);
    }
    struct got g;
    /* 64 KiB holds the newest two or three; the oldest went first. */
    assert_int_equal(get(st, ids[0], &g), SL_EGONE);
    assert_int_equal(get(st, ids[4], &g), SL_EGONE);
    assert_int_equal(get(st, ids[7], &g), SL_OK);
    assert_int_equal(get(st, ids[6], &g), SL_OK);
    assert_int_equal(get(st, running->id, &g), SL_OK);
    for (int i = 1; i < 8; i++) {
        struct got older, newer;
        /* Never an older one kept while a newer one went. */
        if (get(st, ids[i - 1], &older) == SL_OK)
            assert_int_equal(get(st, ids[i], &newer), SL_OK);
    }
    sl_stream_unref(running);
    sl_store_mem_free(m);
}

static int count_hits;

static void count(struct sl_store_sub *sub)
{
    (void)sub;
    count_hits++;
}

static void test_subscribe_hears_appends_and_the_end(void **state)
{
    (void)state;
    struct sl_store_mem *m = new_store(600, 1 << 24);
    struct sl_store *st = sl_store_mem_base(m);
    struct sl_stream *s = new_stream(30000);
    add(st, s);
    struct sl_store_sub sub;
    memset(&sub, 0, sizeof sub);
    sub.cb = count;
    count_hits = 0;
    int err = -999;
    st->ops->subscribe(st, s->id, &sub, done_cb, &err);
    assert_int_equal(err, SL_OK);
    write_events(s, 3, 5, true);
    assert_int_equal(count_hits, 5); /* three appends, the cancel event, the end */
    st->ops->unsubscribe(st, &sub);
    struct sl_store_sub nobody;
    memset(&nobody, 0, sizeof nobody);
    nobody.cb = count;
    st->ops->subscribe(st, "AAAAAAAAAAAAAAAAAAAAAA", &nobody, done_cb, &err);
    assert_int_equal(err, SL_ENOTFOUND);
    sl_stream_unref(s);
    sl_store_mem_free(m);
}

/* ---- allocation failures (issue 10) ---- */

#define FAIL_EVENTS 60

/* What one run of the store's sequence holds; steps resume from it. */
struct fail_run {
    struct sl_store_mem *m;
    struct sl_stream *s;
    int written;
    struct sl_store_sub sub;
    bool subscribed;
    struct readout r;
};

/* Chunks alike but for the token: stored as differences, so reads
 * rebuild them in the store's scratch buffer (an allocation). */
static size_t fail_chunk(int i, char *raw, size_t cap)
{
    return (size_t)snprintf(raw, cap,
                            "{\"id\":\"chatcmpl-store\",\"object\":\"chat.completion.chunk\","
                            "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"w%d\"}}]}",
                            i);
}

static int step_new_store(struct fail_run *f)
{
    struct sl_store_mem_opts o = {600, 1 << 24, 250};
    f->m = sl_store_mem_new(NULL, &o);
    return f->m ? SL_OK : SL_ENOMEM;
}

static int step_new_stream(struct fail_run *f)
{
    return quiet_stream(1 << 20, 30000, &f->s);
}

static int step_add(struct fail_run *f)
{
    int err = -999;
    sl_store_mem_base(f->m)->ops->add(sl_store_mem_base(f->m), f->s, done_cb, &err);
    return err;
}

static int step_subscribe(struct fail_run *f)
{
    struct sl_store *st = sl_store_mem_base(f->m);
    memset(&f->sub, 0, sizeof f->sub);
    f->sub.cb = count;
    int err = -999;
    st->ops->subscribe(st, f->s->id, &f->sub, done_cb, &err);
    f->subscribed = err == SL_OK;
    return err;
}

static int step_append(struct fail_run *f)
{
    char raw[256];
    for (; f->written < FAIL_EVENTS; f->written++) {
        size_t n = fail_chunk(f->written, raw, sizeof raw);
        int rc = sl_log_append(f->s->log, SL_EV_CONTENT, 0, raw, n, "w", 1, NULL);
        if (rc != SL_OK)
            return rc;
    }
    return SL_OK;
}

static int step_get(struct fail_run *f)
{
    struct got g;
    int rc = get(sl_store_mem_base(f->m), f->s->id, &g);
    if (rc == SL_OK)
        assert_int_equal(g.info.last_seq, FAIL_EVENTS);
    return rc;
}

static int step_read(struct fail_run *f)
{
    struct sl_store *st = sl_store_mem_base(f->m);
    memset(&f->r, 0, sizeof f->r);
    f->r.err = -999;
    st->ops->read(st, f->s->id, 10, 40, read_cb, &f->r);
    if (f->r.err == SL_OK) {
        assert_int_equal(f->r.n, 40);
        for (size_t i = 0; i < f->r.n; i++)
            assert_int_equal(f->r.seqs[i], 11 + i);
    }
    return f->r.err;
}

static int step_cancel(struct fail_run *f)
{
    struct sl_store *st = sl_store_mem_base(f->m);
    int err = -999;
    st->ops->cancel(st, f->s->id, done_cb, &err);
    return err;
}

static int (*const fail_steps[])(struct fail_run *) = {
    step_new_store, step_new_stream, step_add,  step_subscribe,
    step_append,    step_get,        step_read, step_cancel,
};

/* For N = 1, 2, ...: the N-th allocation of the sequence fails. The step
 * it hits says SL_ENOMEM (no step may swallow it and go wrong), the same
 * step then succeeds once the plan is off, the rest of the sequence runs
 * as if nothing happened, and nothing leaks (LSan). Until an N past the
 * sequence's last allocation. */
static void test_every_failed_allocation_is_enomem_and_the_store_goes_on(void **state)
{
    (void)state;
    if (!sl_alloc_faults_built())
        skip();
    size_t nsteps = sizeof fail_steps / sizeof fail_steps[0];
    unsigned long n = 1;
    for (;; n++) {
        struct fail_run f;
        memset(&f, 0, sizeof f);
        assert_int_equal(sl_alloc_fail(NULL, n, n), SL_OK);
        size_t failed_at = nsteps;
        for (size_t k = 0; k < nsteps; k++) {
            int rc = fail_steps[k](&f);
            if (rc == SL_OK)
                continue;
            if (rc != SL_ENOMEM || sl_alloc_failed() != 1)
                fail_msg("allocation %lu, step %zu: got %s", n, k, sl_errname(rc));
            failed_at = k;
            break;
        }
        bool hit = sl_alloc_failed() > 0;
        assert_int_equal(sl_alloc_fail(NULL, 0, 0), SL_OK);
        for (size_t k = failed_at; k < nsteps; k++) /* again, without the plan */
            assert_int_equal(fail_steps[k](&f), SL_OK);
        assert_true(f.subscribed);
        sl_store_mem_base(f.m)->ops->unsubscribe(sl_store_mem_base(f.m), &f.sub);
        sl_stream_unref(f.s);
        sl_store_mem_free(f.m);
        if (!hit)
            break;
    }
    assert_true(n > 5); /* the sequence did allocate */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup_and_read_in_order),
        cmocka_unit_test(test_grace_counts_from_creation_and_from_the_last_listener),
        cmocka_unit_test(test_grace_zero_cancels_when_the_listener_leaves),
        cmocka_unit_test(test_retention_then_tombstone_then_forgotten),
        cmocka_unit_test(test_byte_bound_evicts_oldest_finished_first),
        cmocka_unit_test(test_subscribe_hears_appends_and_the_end),
        cmocka_unit_test(test_every_failed_allocation_is_enomem_and_the_store_goes_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
