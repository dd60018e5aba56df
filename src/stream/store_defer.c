/* store_defer.c - every store call answered on a later loop turn (see
 * store_defer.h). A call is queued with copies of its arguments and run
 * against the inner store on the next turn of the loop (a uv_idle handle
 * runs while anything waits); news for a subscriber is queued the same way
 * and told without the event at hand. Calls queued while a turn runs wait
 * for the next one, so a caller never gets its answer inside its call. */
#include "stream/store_defer.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

enum op_kind { OP_ADD, OP_GET, OP_READ, OP_SUBSCRIBE, OP_CANCEL, OP_LISTENERS };

struct dsub;

struct op {
    struct op *next;
    uint64_t turn; /* queued during this turn: runs on a later one */
    enum op_kind kind;
    struct sl_stream *s; /* add: a reference held until it runs */
    uint64_t after;
    size_t max;
    int delta;
    union {
        sl_store_done_cb done;
        sl_store_info_cb info;
        sl_store_read_cb read;
    } cb;
    void *ud;
    struct dsub *sub; /* subscribe: NULL once unsubscribed meanwhile */
    char id[];
};

/* A caller's subscription, through one of the inner store's. */
struct dsub {
    struct sl_store_sub inner;
    struct sl_store_sub *outer;
    struct sl_store_defer *st;
    struct op *op; /* the subscribe still waiting, or NULL */
    bool subscribed;
    bool queued; /* news waits for the outer callback */
    uint64_t turn;
    struct dsub *nprev, *nnext; /* the news list */
    struct dsub *aprev, *anext; /* every subscription */
};

struct sl_store_defer {
    struct sl_store base;
    struct sl_store *inner;
    uv_idle_t idle;
    bool idle_on, closing;
    uint64_t turn;
    struct op *head, *tail;
    size_t pending;
    struct dsub *news_head, *news_tail;
    struct dsub *all;
};

static void on_idle(uv_idle_t *h);

static void wake(struct sl_store_defer *st)
{
    if (!st->idle_on && !st->closing) {
        uv_idle_start(&st->idle, on_idle);
        st->idle_on = true;
    }
}

static struct op *op_new(struct sl_store_defer *st, enum op_kind kind, const char *id)
{
    size_t n = strlen(id) + 1;
    struct op *o = sl_calloc(1, sizeof *o + n);
    if (o == NULL)
        return NULL;
    memcpy(o->id, id, n);
    o->kind = kind;
    o->turn = st->turn;
    return o;
}

static void op_run(struct sl_store_defer *st, struct op *o);

/* Queues o for the next turn; closing, it is answered at once. */
static void op_queue(struct sl_store_defer *st, struct op *o)
{
    if (st->closing) {
        op_run(st, o);
        return;
    }
    if (st->tail)
        st->tail->next = o;
    else
        st->head = o;
    st->tail = o;
    st->pending++;
    wake(st);
}

static void news_unlink(struct sl_store_defer *st, struct dsub *d)
{
    if (!d->queued)
        return;
    if (d->nprev)
        d->nprev->nnext = d->nnext;
    else
        st->news_head = d->nnext;
    if (d->nnext)
        d->nnext->nprev = d->nprev;
    else
        st->news_tail = d->nprev;
    d->nprev = d->nnext = NULL;
    d->queued = false;
}

/* The inner store has news for d's subscriber: tell it on a later turn. */
static void on_inner_news(struct sl_store_sub *inner)
{
    struct dsub *d = inner->data;
    struct sl_store_defer *st = d->st;
    inner->ev = NULL;
    if (d->queued || st->closing)
        return; /* one wake-up tells of all news since */
    d->queued = true;
    d->turn = st->turn;
    d->nprev = st->news_tail;
    d->nnext = NULL;
    if (st->news_tail)
        st->news_tail->nnext = d;
    else
        st->news_head = d;
    st->news_tail = d;
    wake(st);
}

static void on_inner_subscribed(void *ud, int err)
{
    struct dsub *d = ud;
    d->subscribed = err == SL_OK;
}

static void dsub_free(struct sl_store_defer *st, struct dsub *d)
{
    news_unlink(st, d);
    if (d->subscribed)
        st->inner->ops->unsubscribe(st->inner, &d->inner);
    if (d->op)
        d->op->sub = NULL; /* its answer is not given */
    if (d->aprev)
        d->aprev->anext = d->anext;
    else
        st->all = d->anext;
    if (d->anext)
        d->anext->aprev = d->aprev;
    d->outer->w.data = NULL;
    free(d);
}

/* Runs one call: against the inner store, or (closing) answers it
 * SL_EUNAVAIL. Frees o. */
static void op_run(struct sl_store_defer *st, struct op *o)
{
    struct sl_store *in = st->inner;
    int down = st->closing ? SL_EUNAVAIL : SL_OK;
    switch (o->kind) {
    case OP_ADD:
        if (down)
            o->cb.done(o->ud, down);
        else
            in->ops->add(in, o->s, o->cb.done, o->ud);
        sl_stream_unref(o->s);
        break;
    case OP_GET:
        if (down)
            o->cb.info(o->ud, down, NULL);
        else
            in->ops->get(in, o->id, o->cb.info, o->ud);
        break;
    case OP_READ:
        if (down)
            o->cb.read(o->ud, down, NULL, 0, false);
        else
            in->ops->read(in, o->id, o->after, o->max, o->cb.read, o->ud);
        break;
    case OP_SUBSCRIBE: {
        struct dsub *d = o->sub;
        if (d == NULL)
            break; /* unsubscribed meanwhile: no answer */
        d->op = NULL;
        int err = down;
        if (err == SL_OK) {
            err = SL_EUNAVAIL;
            d->inner.cb = on_inner_news;
            d->inner.data = d;
            in->ops->subscribe(in, o->id, &d->inner, on_inner_subscribed, d);
            if (d->subscribed)
                err = SL_OK;
        }
        sl_store_done_cb cb = o->cb.done;
        void *ud = o->ud;
        if (err != SL_OK)
            dsub_free(st, d); /* the caller's sub is not subscribed */
        cb(ud, err);
        break;
    }
    case OP_CANCEL:
        if (down)
            o->cb.done(o->ud, down);
        else
            in->ops->cancel(in, o->id, o->cb.done, o->ud);
        break;
    case OP_LISTENERS:
        if (!down)
            in->ops->listeners(in, o->id, o->delta);
        break;
    }
    free(o);
}

static void on_idle(uv_idle_t *h)
{
    struct sl_store_defer *st = h->data;
    uint64_t turn = st->turn++;
    /* Only what was queued before this turn: the rest waits for the next. */
    while (st->head && st->head->turn <= turn) {
        struct op *o = st->head;
        st->head = o->next;
        if (st->head == NULL)
            st->tail = NULL;
        st->pending--;
        op_run(st, o);
    }
    while (st->news_head && st->news_head->turn <= turn) {
        struct dsub *d = st->news_head;
        news_unlink(st, d);
        d->outer->ev = NULL;
        d->outer->cb(d->outer); /* may unsubscribe any subscription */
    }
    if (st->head == NULL && st->news_head == NULL) {
        uv_idle_stop(&st->idle);
        st->idle_on = false;
    }
}

/* ---- the interface ------------------------------------------------------- */

static struct sl_store_defer *of(struct sl_store *base)
{
    return (struct sl_store_defer *)base;
}

static void d_add(struct sl_store *base, struct sl_stream *s, sl_store_done_cb cb, void *ud)
{
    struct sl_store_defer *st = of(base);
    struct op *o = op_new(st, OP_ADD, s->id);
    if (o == NULL) {
        cb(ud, SL_ENOMEM);
        return;
    }
    o->s = s;
    sl_stream_ref(s);
    o->cb.done = cb;
    o->ud = ud;
    op_queue(st, o);
}

static void d_get(struct sl_store *base, const char *id, sl_store_info_cb cb, void *ud)
{
    struct sl_store_defer *st = of(base);
    struct op *o = op_new(st, OP_GET, id);
    if (o == NULL) {
        cb(ud, SL_ENOMEM, NULL);
        return;
    }
    o->cb.info = cb;
    o->ud = ud;
    op_queue(st, o);
}

static void d_read(struct sl_store *base, const char *id, uint64_t after_seq, size_t max,
                   sl_store_read_cb cb, void *ud)
{
    struct sl_store_defer *st = of(base);
    struct op *o = op_new(st, OP_READ, id);
    if (o == NULL) {
        cb(ud, SL_ENOMEM, NULL, 0, false);
        return;
    }
    o->after = after_seq;
    o->max = max;
    o->cb.read = cb;
    o->ud = ud;
    op_queue(st, o);
}

static void d_subscribe(struct sl_store *base, const char *id, struct sl_store_sub *sub,
                        sl_store_done_cb cb, void *ud)
{
    struct sl_store_defer *st = of(base);
    struct dsub *d = sl_calloc(1, sizeof *d);
    struct op *o = d ? op_new(st, OP_SUBSCRIBE, id) : NULL;
    if (o == NULL) {
        free(d);
        cb(ud, SL_ENOMEM);
        return;
    }
    d->outer = sub;
    d->st = st;
    d->op = o;
    d->anext = st->all;
    if (st->all)
        st->all->aprev = d;
    st->all = d;
    sub->s = NULL;
    sub->w.data = d; /* the outer's private watcher is unused here */
    o->sub = d;
    o->cb.done = cb;
    o->ud = ud;
    op_queue(st, o);
}

static void d_unsubscribe(struct sl_store *base, struct sl_store_sub *sub)
{
    struct sl_store_defer *st = of(base);
    struct dsub *d = sub->w.data;
    if (d != NULL && d->outer == sub)
        dsub_free(st, d);
}

static void d_cancel(struct sl_store *base, const char *id, sl_store_done_cb cb, void *ud)
{
    struct sl_store_defer *st = of(base);
    struct op *o = op_new(st, OP_CANCEL, id);
    if (o == NULL) {
        cb(ud, SL_ENOMEM);
        return;
    }
    o->cb.done = cb;
    o->ud = ud;
    op_queue(st, o);
}

static void d_listeners(struct sl_store *base, const char *id, int delta)
{
    struct sl_store_defer *st = of(base);
    struct op *o = op_new(st, OP_LISTENERS, id);
    if (o == NULL)
        return; /* a count the store misses: the grace sweep still runs */
    o->delta = delta;
    op_queue(st, o);
}

static const struct sl_store_ops defer_ops = {
    d_add, d_get, d_read, d_subscribe, d_unsubscribe, d_cancel, d_listeners,
};

struct sl_store_defer *sl_store_defer_new(uv_loop_t *loop, struct sl_store *inner)
{
    struct sl_store_defer *st = sl_calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    st->base.ops = &defer_ops;
    st->inner = inner;
    st->turn = 1;
    if (uv_idle_init(loop, &st->idle) != 0) {
        free(st);
        return NULL;
    }
    st->idle.data = st;
    return st;
}

struct sl_store *sl_store_defer_base(struct sl_store_defer *st)
{
    return &st->base;
}

size_t sl_store_defer_pending(const struct sl_store_defer *st)
{
    return st->pending;
}

static void on_idle_closed(uv_handle_t *h)
{
    free(h->data);
}

void sl_store_defer_free(struct sl_store_defer *st)
{
    st->closing = true;
    if (st->idle_on)
        uv_idle_stop(&st->idle);
    st->idle_on = false;
    /* Answers may queue more calls: those are answered at once (closing). */
    while (st->head) {
        struct op *o = st->head;
        st->head = o->next;
        if (st->head == NULL)
            st->tail = NULL;
        st->pending--;
        op_run(st, o);
    }
    while (st->all)
        dsub_free(st, st->all);
    uv_close((uv_handle_t *)&st->idle, on_idle_closed);
}
