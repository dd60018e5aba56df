/* test_store_defer.c - the deferring store (the shape of a remote store):
 * no call is answered inside itself, every call is answered on a later
 * loop turn in order, news reaches a subscriber on a later turn without
 * the event at hand, an unsubscribe before the subscribe is answered
 * silences both, and freeing answers what still waits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "quiet_stream.h"
#include "stream/store_defer.h"
#include "stream/store_mem.h"

static int order[16];
static int norder;

struct answer {
    int tag;
    int err;
    int calls;
    size_t n;
};

static void on_done(void *ud, int err)
{
    struct answer *a = ud;
    a->err = err;
    a->calls++;
    order[norder++] = a->tag;
}

static void on_info(void *ud, int err, const struct sl_store_info *info)
{
    (void)info;
    on_done(ud, err);
}

static void on_read(void *ud, int err, const struct sl_ev *evs, size_t n, bool ended)
{
    (void)evs, (void)ended;
    struct answer *a = ud;
    a->n = n;
    on_done(ud, err);
}

static int news;
static const struct sl_ev *news_ev;
static void on_news(struct sl_store_sub *sub)
{
    news++;
    news_ev = sub->ev;
}

static void test_answers_on_a_later_turn_in_order(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct sl_store_mem_opts mo = {600, 1 << 20, 1000};
    struct sl_store_mem *mem = sl_store_mem_new(&loop, &mo);
    struct sl_store_defer *d = sl_store_defer_new(&loop, sl_store_mem_base(mem));
    struct sl_store *st = sl_store_defer_base(d);

    struct sl_stream *s = NULL;
    assert_int_equal(quiet_stream(1 << 20, 60000, &s), SL_OK);

    norder = 0;
    struct answer add = {1, -999, 0, 0}, get = {2, -999, 0, 0}, rd = {3, -999, 0, 0};
    struct answer subd = {4, -999, 0, 0}, missing = {5, -999, 0, 0};
    struct sl_store_sub sub = {.cb = on_news};
    st->ops->add(st, s, on_done, &add);
    st->ops->get(st, s->id, on_info, &get);
    st->ops->subscribe(st, s->id, &sub, on_done, &subd);
    st->ops->get(st, "AAAAAAAAAAAAAAAAAAAAAA", on_info, &missing);
    /* Nothing answered inside the calls. */
    assert_int_equal(add.calls + get.calls + subd.calls + missing.calls, 0);
    assert_int_equal(sl_store_defer_pending(d), 4);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(add.calls, 1);
    assert_int_equal(add.err, SL_OK);
    assert_int_equal(get.err, SL_OK);
    assert_int_equal(subd.err, SL_OK);
    assert_int_equal(missing.err, SL_ENOTFOUND);
    assert_int_equal(norder, 4);
    static const int want[] = {1, 2, 4, 5}; /* the order of the calls */
    for (int i = 0; i < 4; i++)
        assert_int_equal(order[i], want[i]);

    /* News comes on a later turn, once for several appends. */
    news = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(sl_log_append(s->log, SL_EV_CONTENT, 0, "{}", 2, "x", 1, NULL), SL_OK);
    assert_int_equal(news, 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(news, 1);
    assert_null(news_ev);

    st->ops->read(st, s->id, 0, 10, on_read, &rd);
    assert_int_equal(rd.calls, 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(rd.calls, 1);
    assert_int_equal(rd.n, 3);
    st->ops->unsubscribe(st, &sub);

    /* An unsubscribe before the answer: neither the answer nor news come. */
    struct sl_store_sub sub2 = {.cb = on_news};
    struct answer subd2 = {6, -999, 0, 0};
    st->ops->subscribe(st, s->id, &sub2, on_done, &subd2);
    st->ops->unsubscribe(st, &sub2);
    news = 0;
    assert_int_equal(sl_log_append(s->log, SL_EV_CONTENT, 0, "{}", 2, "y", 1, NULL), SL_OK);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(subd2.calls, 0);
    assert_int_equal(news, 0);

    /* Freeing answers what still waits, and later calls at once. */
    struct answer late = {7, -999, 0, 0};
    st->ops->get(st, s->id, on_info, &late);
    sl_store_defer_free(d);
    assert_int_equal(late.calls, 1);
    assert_int_equal(late.err, SL_EUNAVAIL);
    sl_store_mem_free(mem);
    sl_stream_unref(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers_on_a_later_turn_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
