/* follow.c - a client's cursor over a stream, through the store (see
 * follow.h). Owns: reading in order in batches, rendering, one write per
 * batch, pausing at the client's bound and going on when it drains, the
 * face's end bytes, and the listener count. Does not own: the stream's
 * fate when the client leaves (the face and the store decide). */
#include "face/follow.h"

#include <stdlib.h>
#include <string.h>

#include "stream/stream.h"

/* Events asked of the store per read, and bytes rendered per write. */
#define SL_FOLLOW_READ_EVENTS 64
#define SL_FOLLOW_BATCH_BYTES (64 * 1024)
/* A rendered batch may hold one event of any size the log accepts. */
#define SL_FOLLOW_OUT_MAX (64 * 1024 * 1024)

struct sl_follower {
    struct sl_store *store;
    char id[SL_STREAM_ID_CHARS + 1];
    uint64_t cursor; /* the last seq rendered */
    struct sl_follow_opts opts;
    const struct sl_follow_sink *sink;
    void *sink_ud;
    struct sl_store_sub sub;
    bool subscribed, listening;
    struct sl_buf out; /* rendered bytes after `base` bytes of room for framing */
    size_t base;
    bool pumping, again, reading, finished;
    bool starting;    /* inside sl_follow_start */
    bool sub_pending; /* the store has not answered the subscribe yet */
    bool gone;        /* stopped while a read was out: its answer frees f */
    bool answered;    /* a read's answer waits for the pump */
    int read_err;
    bool read_ended;
    bool read_held; /* rendering stopped at max_unsent: the batch has more */
    size_t read_n;
};

/* Empties out, keeping room for the sink's framing (base bytes) in front. */
static int out_begin(struct sl_buf *out, size_t base)
{
    static const char room[SL_HTTP_FRAME_HEAD];
    sl_buf_reset(out);
    return sl_buf_append(out, room, base);
}

/* Leaves the stream. A read the store has not answered yet still points
 * at f (the store's contract: every context outlives its call), so then f
 * stays until that answer comes (on_read_async frees it). */
static void follower_free(struct sl_follower *f)
{
    if (f->subscribed)
        f->store->ops->unsubscribe(f->store, &f->sub); /* a pending subscribe too */
    f->subscribed = false;
    if (f->listening)
        f->store->ops->listeners(f->store, f->id, -1);
    f->listening = false;
    if (f->reading) {
        f->gone = true;
        return;
    }
    sl_buf_free(&f->out);
    free(f);
}

/* Renders the batch read, up to the client's bound: once the bytes queued
 * for it and those rendered here reach max_unsent, the rest of the batch is
 * left for the next read, from the cursor (the last event rendered). So a
 * burst costs at most max_unsent plus one event, never a whole batch. */
static void on_read(void *ud, int err, const struct sl_ev *evs, size_t n, bool ended)
{
    struct sl_follower *f = ud;
    f->reading = false;
    f->answered = true;
    f->read_err = err;
    f->read_n = n;
    f->read_ended = ended;
    f->read_held = false;
    size_t queued = err == SL_OK ? f->sink->pending(f->sink_ud) : 0;
    for (size_t i = 0; i < n && err == SL_OK; i++) {
        if (queued + sl_buf_size(&f->out) - f->base >= f->opts.max_unsent) {
            f->read_held = true;
            f->read_ended = false; /* the end is in what was left */
            break;
        }
        int rc = f->opts.render ? f->opts.render(f->sink_ud, &evs[i], &f->out)
                                : sl_render_sse(&f->opts.ctx, f->opts.format, &evs[i], &f->out);
        if (rc != SL_OK)
            f->read_err = rc;
        f->cursor = evs[i].seq;
    }
}

static void pump(struct sl_follower *f);

static void on_read_async(void *ud, int err, const struct sl_ev *evs, size_t n, bool ended)
{
    struct sl_follower *f = ud;
    if (f->gone) { /* stopped while the store was answering */
        f->reading = false;
        follower_free(f);
        return;
    }
    on_read(ud, err, evs, n, ended);
    if (!f->pumping)
        pump(f); /* the store answered later: go on from here */
}

/* The follower cannot go on (err) while its sink is still there: the sink
 * closes the client. */
static void fail(struct sl_follower *f, int err)
{
    const struct sl_follow_sink *sink = f->sink;
    void *ud = f->sink_ud;
    follower_free(f);
    sink->fail(ud, err);
}

/* Sends out[base..] (rendered after the framing room); false when the
 * follower is gone. out is left holding bytes to drop. */
static bool send_out(struct sl_follower *f, struct sl_buf *out)
{
    size_t n = sl_buf_size(out) - f->base;
    if (n == 0)
        return true;
    int rc;
    if (f->sink->write_framed) {
        static const char tail[SL_HTTP_FRAME_TAIL];
        if (sl_buf_append(out, tail, sizeof tail) != SL_OK) {
            fail(f, SL_ENOMEM);
            return false;
        }
        rc = f->sink->write_framed(f->sink_ud, out->data + out->off + f->base, n);
    } else {
        rc = f->sink->write(f->sink_ud, sl_buf_ptr(out) + f->base, n);
    }
    if (rc != SL_OK) { /* the sink is gone, and freed itself */
        follower_free(f);
        return false;
    }
    return true;
}

/* Sends what is rendered; false when the follower is gone. */
static bool flush(struct sl_follower *f)
{
    if (!send_out(f, &f->out))
        return false;
    if (out_begin(&f->out, f->base) != SL_OK) {
        fail(f, SL_ENOMEM);
        return false;
    }
    return true;
}

/* One event rendered and sent at once needs no buffer of its own: it goes
 * through this one, which stays warm in the cache, where a follower's own
 * buffer would be cold by its next token (one loop per thread). */
static _Thread_local struct sl_buf one_event;
static _Thread_local bool one_event_busy;

void sl_follow_thread_done(void)
{
    sl_buf_free(&one_event);
}

/* Renders ev into the shared buffer and sends it: SL_OK when it was sent
 * (or the follower went with its sink); an error leaves f as it was. */
static int send_one(struct sl_follower *f, const struct sl_ev *ev)
{
    struct sl_buf *out = &one_event;
    if (out->max == 0)
        sl_buf_init(out, SL_FOLLOW_OUT_MAX);
    int rc = out_begin(out, f->base);
    if (rc == SL_OK)
        rc = f->opts.render ? f->opts.render(f->sink_ud, ev, out)
                            : sl_render_sse(&f->opts.ctx, f->opts.format, ev, out);
    if (rc != SL_OK)
        return rc;
    f->cursor = ev->seq;
    one_event_busy = true;
    (void)send_out(f, out);
    one_event_busy = false;
    if (out->cap > SL_FOLLOW_BATCH_BYTES)
        sl_buf_free(out); /* a rare big event does not stay */
    return SL_OK;
}

static void pump(struct sl_follower *f)
{
    if (f->pumping) {
        f->again = true;
        return;
    }
    f->pumping = true;
    for (;;) {
        f->again = false;
        if (f->reading)
            break; /* an answer from the store is on its way */
        if (!f->answered) {
            if (f->sink->pending(f->sink_ud) >= f->opts.max_unsent)
                break; /* sl_follow_drain goes on */
            f->reading = true;
            f->store->ops->read(f->store, f->id, f->cursor, SL_FOLLOW_READ_EVENTS, on_read_async,
                                f);
            if (f->reading)
                break; /* asynchronous store: on_read_async continues */
        }
        f->answered = false;
        if (f->read_err != SL_OK) {
            f->pumping = false;
            fail(f, f->read_err);
            return;
        }
        /* A short batch means the log has nothing more for now: no second
         * read just to learn that (a lookup per token saved). A batch held
         * at the bound goes out now; the next turn waits for the drain. */
        bool drained = !f->read_held && f->read_n < SL_FOLLOW_READ_EVENTS;
        if ((sl_buf_size(&f->out) >= SL_FOLLOW_BATCH_BYTES || drained || f->read_held ||
             f->read_ended) &&
            !flush(f))
            return;
        if (f->read_ended) {
            const char *end = sl_render_end(f->opts.format);
            f->pumping = false;
            const struct sl_follow_sink *sink = f->sink;
            void *ud = f->sink_ud;
            int rc = end[0] ? sink->write(ud, end, strlen(end)) : SL_OK;
            if (rc != SL_OK) {
                follower_free(f);
                return;
            }
            follower_free(f);
            sink->end(ud);
            return;
        }
        if (drained && !f->again)
            break; /* the subscription wakes us */
    }
    f->pumping = false;
}

static void on_sub(struct sl_store_sub *sub)
{
    struct sl_follower *f = sub->data;
    const struct sl_ev *ev = sub->ev;
    sub->ev = NULL;
    /* The event that woke us is the next one and nothing waits: render it
     * as it is handed over (the same bytes a read would give back), no
     * lookup, no read. */
    if (ev && ev->seq == f->cursor + 1 && !f->pumping && !f->reading && !one_event_busy &&
        sl_buf_size(&f->out) == f->base && f->sink->pending(f->sink_ud) < f->opts.max_unsent) {
        if (send_one(f, ev) == SL_OK)
            return;
    }
    pump(f);
}

/* Subscribed: count as a listener and catch up from the cursor. */
static void follow_go(struct sl_follower *f)
{
    f->store->ops->listeners(f->store, f->id, +1);
    f->listening = true;
    pump(f);
}

static void on_subscribed(void *ud, int err)
{
    struct sl_follower *f = ud;
    f->read_err = err;
    f->sub_pending = false;
    if (f->starting)
        return; /* sl_follow_start goes on */
    /* The store answered later: f is the sink's already. */
    if (err != SL_OK) {
        f->subscribed = false;
        fail(f, err);
        return;
    }
    follow_go(f);
}

int sl_follow_start(struct sl_store *store, const char *id, uint64_t after_seq,
                    const struct sl_follow_opts *opts, const struct sl_follow_sink *sink,
                    void *sink_ud, struct sl_follower **out)
{
    struct sl_follower *f = calloc(1, sizeof *f);
    if (f == NULL)
        return SL_ENOMEM;
    f->store = store;
    snprintf(f->id, sizeof f->id, "%s", id);
    f->cursor = after_seq;
    f->opts = *opts;
    if (f->opts.ctx.stream_id == NULL)
        f->opts.ctx.stream_id = f->id;
    f->sink = sink;
    f->sink_ud = sink_ud;
    sl_buf_init(&f->out, SL_FOLLOW_OUT_MAX);
    f->base = sink->write_framed ? SL_HTTP_FRAME_HEAD : 0;
    if (out_begin(&f->out, f->base) != SL_OK) {
        sl_buf_free(&f->out);
        free(f);
        return SL_ENOMEM;
    }
    f->sub.cb = on_sub;
    f->sub.data = f;
    f->read_err = SL_OK;
    f->starting = f->sub_pending = true;
    store->ops->subscribe(store, f->id, &f->sub, on_subscribed, f);
    f->starting = false;
    if (!f->sub_pending && f->read_err != SL_OK) {
        int err = f->read_err;
        sl_buf_free(&f->out);
        free(f);
        return err;
    }
    f->subscribed = true; /* unsubscribing also drops a pending subscribe */
    *out = f;             /* before the pump: it may end and free f at once */
    if (!f->sub_pending)
        follow_go(f);
    return SL_OK;
}

void sl_follow_drain(struct sl_follower *f)
{
    pump(f);
}

void sl_follow_stop(struct sl_follower *f)
{
    follower_free(f);
}

/* ---- following into an SSE response ------------------------------------- */

struct sse_client {
    struct sl_http_exchange *ex;
    struct sl_follower *f; /* NULL once the follower is over */
};

/* What a write to the exchange returned: on failure the exchange is gone,
 * and so is the follower. */
static int sse_written(struct sse_client *c, int rc)
{
    if (rc != SL_OK) {
        c->f = NULL;
        free(c);
    }
    return rc;
}

static int sse_write(void *ud, const char *p, size_t n)
{
    struct sse_client *c = ud;
    return sse_written(c, sl_http_ex_write(c->ex, p, n));
}

static int sse_write_framed(void *ud, char *p, size_t n)
{
    struct sse_client *c = ud;
    return sse_written(c, sl_http_ex_write_framed(c->ex, p, n));
}

static size_t sse_pending(void *ud)
{
    struct sse_client *c = ud;
    return sl_http_ex_pending(c->ex);
}

static void sse_end(void *ud)
{
    struct sse_client *c = ud;
    sl_http_ex_end(c->ex);
    free(c);
}

static void sse_fail(void *ud, int err)
{
    (void)err;
    struct sse_client *c = ud;
    sl_http_ex_close(c->ex);
    free(c);
}

static const struct sl_follow_sink sse_sink = {sse_write, sse_pending, sse_end, sse_fail,
                                               sse_write_framed};

static void sse_on_abort(struct sl_http_exchange *ex, void *ud)
{
    (void)ex;
    struct sse_client *c = ud;
    if (c->f)
        sl_follow_stop(c->f);
    free(c);
}

static void sse_on_drain(struct sl_http_exchange *ex, void *ud)
{
    (void)ex;
    struct sse_client *c = ud;
    if (c->f)
        sl_follow_drain(c->f);
}

int sl_follow_sse(struct sl_store *store, const char *id, uint64_t after_seq,
                  const struct sl_follow_opts *opts, struct sl_http_exchange *ex)
{
    struct sse_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return SL_ENOMEM;
    c->ex = ex;
    /* The follower holds at its bound, which may pass by one event: at most
     * half the connection's, so that event never gets the client closed. */
    struct sl_follow_opts o = *opts;
    size_t cap = sl_http_ex_write_bound(ex) / 2;
    if (o.max_unsent > cap)
        o.max_unsent = cap;
    sl_http_ex_set_abort_cb(ex, sse_on_abort, c);
    sl_http_ex_set_drain_cb(ex, sse_on_drain, c, o.max_unsent / 2);
    /* From here the sink callbacks own c: they free it when it ends. */
    int rc = sl_follow_start(store, id, after_seq, &o, &sse_sink, c, &c->f);
    if (rc != SL_OK) {
        sl_http_ex_set_abort_cb(ex, NULL, NULL);
        sl_http_ex_set_drain_cb(ex, NULL, NULL, 0);
        free(c);
    }
    return rc;
}
