/* store_mem.c - the in-memory store (see store.h and store_mem.h).
 * Owns: the table of streams by id, read tokens, listener counts and the
 * grace that cancels a stream nobody listens to, retention of finished
 * streams, the store-wide byte bound (oldest finished streams go first),
 * and tombstones of evicted ids (410 for 24 h, bounded). Time comes in as
 * now_ms (sl_store_mem_sweep), so the rules are tested with a hand clock;
 * a uv timer drives the sweep in the server. */
#include "stream/store_mem.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/limits.h"

#define SL_STORE_BUCKETS_MIN 1024

struct entry {
    struct sl_stream *s;
    char read_token[SL_STREAM_ID_CHARS + 1];
    int listeners;
    uint64_t created_ms;
    uint64_t alone_since_ms; /* when listeners last became 0 (or creation) */
    uint64_t grace_ms;
    uint64_t finished_ms; /* 0 while the log is open */
    size_t bytes;         /* log bytes counted in bytes_finished */
    struct sl_log_watcher end_watch;
    struct sl_store_mem *st;
    struct entry *hnext;         /* hash chain */
    struct entry *fprev, *fnext; /* finished streams, oldest first */
    struct entry *aprev, *anext; /* running streams nobody listens to */
    bool alone;                  /* on that list */
};

struct tomb {
    char id[SL_STREAM_ID_CHARS + 1];
    uint64_t at_ms;
    struct tomb *hnext;
};

struct sl_store_mem {
    struct sl_store base;
    struct sl_store_mem_opts opts;
    uv_loop_t *loop;
    uv_timer_t sweep;
    struct entry **buckets;
    size_t nbuckets, count;
    struct entry *fhead, *ftail;
    struct entry *ahead; /* running streams with no listener: the grace sweep's work */
    /* Tombstones: a ring (oldest first) plus a hash for lookups. */
    struct tomb *tombs;
    size_t tomb_head, tomb_count;
    struct tomb **tbuckets;
    size_t ntbuckets;
    size_t bytes_finished; /* log bytes of finished streams */
    uint64_t hand_now;     /* the clock without a loop: the last sweep's now */
    struct sl_buf scratch; /* chunks rebuilt for a read's callback */
    bool scratch_busy;
};

static uint64_t hash_id(const char *id)
{
    uint64_t h = 1469598103934665603ull;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211ull;
    return h;
}

static struct entry *find(struct sl_store_mem *st, const char *id)
{
    for (struct entry *e = st->buckets[hash_id(id) & (st->nbuckets - 1)]; e; e = e->hnext)
        if (strcmp(e->s->id, id) == 0)
            return e;
    return NULL;
}

static bool is_tomb(struct sl_store_mem *st, const char *id, uint64_t now)
{
    for (struct tomb *t = st->tbuckets[hash_id(id) & (st->ntbuckets - 1)]; t; t = t->hnext)
        if (strcmp(t->id, id) == 0)
            return now - t->at_ms < SL_LIMIT_TOMBSTONE_MS;
    return false;
}

static void tomb_unlink(struct sl_store_mem *st, struct tomb *t)
{
    struct tomb **pp = &st->tbuckets[hash_id(t->id) & (st->ntbuckets - 1)];
    while (*pp && *pp != t)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = t->hnext;
}

static void tomb_add(struct sl_store_mem *st, const char *id, uint64_t now)
{
    size_t cap = SL_LIMIT_TOMBSTONES;
    if (st->tomb_count == cap) { /* forget the oldest */
        tomb_unlink(st, &st->tombs[st->tomb_head]);
        st->tomb_head = (st->tomb_head + 1) % cap;
        st->tomb_count--;
    }
    struct tomb *t = &st->tombs[(st->tomb_head + st->tomb_count) % cap];
    st->tomb_count++;
    memcpy(t->id, id, sizeof t->id);
    t->at_ms = now;
    struct tomb **b = &st->tbuckets[hash_id(id) & (st->ntbuckets - 1)];
    t->hnext = *b;
    *b = t;
}

static void tombs_expire(struct sl_store_mem *st, uint64_t now)
{
    while (st->tomb_count > 0) {
        struct tomb *t = &st->tombs[st->tomb_head];
        if (now - t->at_ms < SL_LIMIT_TOMBSTONE_MS)
            break;
        tomb_unlink(st, t);
        st->tomb_head = (st->tomb_head + 1) % SL_LIMIT_TOMBSTONES;
        st->tomb_count--;
    }
}

static void grow(struct sl_store_mem *st)
{
    size_t n = st->nbuckets * 2;
    struct entry **nb = sl_calloc(n, sizeof *nb);
    if (nb == NULL)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < st->nbuckets; i++) {
        struct entry *e = st->buckets[i];
        while (e) {
            struct entry *next = e->hnext;
            struct entry **b = &nb[hash_id(e->s->id) & (n - 1)];
            e->hnext = *b;
            *b = e;
            e = next;
        }
    }
    free(st->buckets);
    st->buckets = nb;
    st->nbuckets = n;
}

static void finished_unlink(struct sl_store_mem *st, struct entry *e)
{
    if (e->fprev)
        e->fprev->fnext = e->fnext;
    else if (st->fhead == e)
        st->fhead = e->fnext;
    if (e->fnext)
        e->fnext->fprev = e->fprev;
    else if (st->ftail == e)
        st->ftail = e->fprev;
    e->fprev = e->fnext = NULL;
}

/* The grace sweep looks only at running streams nobody listens to, not at
 * every stream held (most are finished ones kept for retention). */
static void alone_set(struct sl_store_mem *st, struct entry *e, bool alone)
{
    if (alone == e->alone)
        return;
    e->alone = alone;
    if (alone) {
        e->aprev = NULL;
        e->anext = st->ahead;
        if (st->ahead)
            st->ahead->aprev = e;
        st->ahead = e;
        return;
    }
    if (e->aprev)
        e->aprev->anext = e->anext;
    else
        st->ahead = e->anext;
    if (e->anext)
        e->anext->aprev = e->aprev;
    e->aprev = e->anext = NULL;
}

/* Forgets a stream: its id becomes a tombstone. */
static void evict(struct sl_store_mem *st, struct entry *e, uint64_t now)
{
    struct entry **pp = &st->buckets[hash_id(e->s->id) & (st->nbuckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    st->count--;
    alone_set(st, e, false);
    if (e->finished_ms) {
        finished_unlink(st, e);
        st->bytes_finished -= e->bytes;
    } else {
        sl_log_unwatch(e->s->log, &e->end_watch);
    }
    tomb_add(st, e->s->id, now);
    sl_stream_unref(e->s);
    free(e);
}

static uint64_t now_ms(struct sl_store_mem *st)
{
    return st->loop ? uv_now(st->loop) : st->hand_now;
}

static void on_log_end(struct sl_log_watcher *w, struct sl_log *log)
{
    if (!sl_log_ended(log))
        return;
    struct entry *e = w->data;
    struct sl_store_mem *st = e->st;
    sl_log_unwatch(log, w);
    if (e->finished_ms)
        return; /* told twice: it is on the finished list once */
    alone_set(st, e, false);
    e->finished_ms = now_ms(st);
    if (e->finished_ms == 0)
        e->finished_ms = 1;
    e->fprev = st->ftail;
    if (st->ftail)
        st->ftail->fnext = e;
    else
        st->fhead = e;
    st->ftail = e;
    e->bytes = sl_log_bytes(log);
    st->bytes_finished += e->bytes;
}

void sl_store_mem_sweep(struct sl_store_mem *st, uint64_t now)
{
    st->hand_now = now;
    /* Grace: cancel running streams nobody has listened to for grace_ms.
     * A cancel ends the log, and on_log_end takes the entry off the list. */
    struct entry *e = st->ahead;
    while (e) {
        struct entry *next = e->anext;
        if (now - e->alone_since_ms >= e->grace_ms)
            sl_stream_cancel(e->s);
        e = next;
    }
    /* Retention, then the byte bound: oldest finished first. */
    uint64_t keep_ms = (uint64_t)st->opts.retention_s * 1000;
    while (st->fhead && now - st->fhead->finished_ms >= keep_ms)
        evict(st, st->fhead, now);
    while (st->fhead && st->bytes_finished > st->opts.max_bytes)
        evict(st, st->fhead, now);
    tombs_expire(st, now);
}

static void on_sweep(uv_timer_t *t)
{
    struct sl_store_mem *st = t->data;
    sl_store_mem_sweep(st, uv_now(st->loop));
}

size_t sl_store_mem_count(const struct sl_store_mem *st)
{
    return st->count;
}

/* ---- the interface --------------------------------------------------------- */

static void mem_add(struct sl_store *base, struct sl_stream *s, sl_store_done_cb cb, void *ud)
{
    struct sl_store_mem *st = (struct sl_store_mem *)base;
    struct entry *e = sl_calloc(1, sizeof *e);
    if (e == NULL) {
        cb(ud, SL_ENOMEM);
        return;
    }
    if (st->count + 1 > st->nbuckets)
        grow(st);
    e->s = s;
    e->st = st;
    sl_stream_ref(s);
    sl_stream_new_id(e->read_token);
    e->created_ms = e->alone_since_ms = now_ms(st);
    e->grace_ms = s->grace_ms;
    struct entry **b = &st->buckets[hash_id(s->id) & (st->nbuckets - 1)];
    e->hnext = *b;
    *b = e;
    st->count++;
    e->end_watch.cb = on_log_end;
    e->end_watch.data = e;
    if (sl_log_ended(s->log)) {
        on_log_end(&e->end_watch, s->log);
    } else {
        sl_log_watch(s->log, &e->end_watch);
        alone_set(st, e, true); /* nobody listens yet: grace from creation */
    }
    cb(ud, SL_OK);
}

static int lookup(struct sl_store_mem *st, const char *id, struct entry **out)
{
    *out = find(st, id);
    if (*out)
        return SL_OK;
    return is_tomb(st, id, now_ms(st)) ? SL_EGONE : SL_ENOTFOUND;
}

static void mem_get(struct sl_store *base, const char *id, sl_store_info_cb cb, void *ud)
{
    struct sl_store_mem *st = (struct sl_store_mem *)base;
    struct entry *e;
    int rc = lookup(st, id, &e);
    if (rc != SL_OK) {
        cb(ud, rc, NULL);
        return;
    }
    struct sl_store_info info = {
        .id = e->s->id,
        .state = e->s->state,
        .upstream = e->s->upstream,
        .created = e->s->created,
        .last_seq = sl_log_last_seq(e->s->log),
        .ended = sl_log_ended(e->s->log),
        .read_token = e->read_token,
        .show_usage = e->s->show_usage,
        .multi_choice = e->s->multi_choice,
    };
    cb(ud, SL_OK, &info);
}

/* Scratch bytes the store keeps between reads. */
#define SL_STORE_SCRATCH_KEEP (256 * 1024)

/* Events handed to one read callback at most. */
#define SL_STORE_READ_MAX 256

static void mem_read(struct sl_store *base, const char *id, uint64_t after, size_t max,
                     sl_store_read_cb cb, void *ud)
{
    struct sl_store_mem *st = (struct sl_store_mem *)base;
    struct entry *e;
    int rc = lookup(st, id, &e);
    if (rc != SL_OK) {
        cb(ud, rc, NULL, 0, false);
        return;
    }
    struct sl_log *log = e->s->log;
    struct sl_log_cursor c;
    rc = sl_log_cursor_init(log, &c, after);
    if (rc != SL_OK) {
        cb(ud, rc == SL_ENOTFOUND ? SL_EGONE : rc, NULL, 0, false);
        return;
    }
    struct sl_ev evs[SL_STORE_READ_MAX];
    size_t n = 0;
    if (max > SL_STORE_READ_MAX)
        max = SL_STORE_READ_MAX;
    /* Chunks rebuilt from the log live in scratch for the callback: the
     * store's own buffer (no allocation per read), or a fresh one when a
     * callback reads again from inside a read. */
    struct sl_buf local, *scratch = &st->scratch;
    bool nested = st->scratch_busy;
    if (nested) {
        sl_buf_init(&local, SIZE_MAX / 2);
        scratch = &local;
    }
    st->scratch_busy = true;
    rc = sl_log_read_batch(log, &c, evs, max, scratch, &n);
    bool ended = sl_log_ended(log) && c.next_seq > sl_log_last_seq(log);
    if (rc != SL_OK)
        cb(ud, rc == SL_ENOTFOUND ? SL_EGONE : rc, NULL, 0, false);
    else
        cb(ud, SL_OK, evs, n, ended);
    if (nested) {
        sl_buf_free(&local);
    } else {
        st->scratch_busy = false;
        if (scratch->cap > SL_STORE_SCRATCH_KEEP)
            sl_buf_free(scratch); /* a rare big batch does not stay */
    }
}

static void on_sub_watch(struct sl_log_watcher *w, struct sl_log *log)
{
    struct sl_store_sub *sub = w->data;
    sub->ev = sl_log_appended(log);
    sub->cb(sub); /* may unsubscribe and free sub */
}

static void mem_subscribe(struct sl_store *base, const char *id, struct sl_store_sub *sub,
                          sl_store_done_cb cb, void *ud)
{
    struct sl_store_mem *st = (struct sl_store_mem *)base;
    struct entry *e;
    int rc = lookup(st, id, &e);
    if (rc != SL_OK) {
        cb(ud, rc);
        return;
    }
    sub->s = e->s;
    sl_stream_ref(e->s);
    sub->w.cb = on_sub_watch;
    sub->w.data = sub;
    sl_log_watch(e->s->log, &sub->w);
    cb(ud, SL_OK);
}

static void mem_unsubscribe(struct sl_store *base, struct sl_store_sub *sub)
{
    (void)base;
    if (sub->s == NULL)
        return;
    sl_log_unwatch(sub->s->log, &sub->w);
    sl_stream_unref(sub->s);
    sub->s = NULL;
}

static void mem_cancel(struct sl_store *base, const char *id, sl_store_done_cb cb, void *ud)
{
    struct sl_store_mem *st = (struct sl_store_mem *)base;
    struct entry *e;
    int rc = lookup(st, id, &e);
    if (rc == SL_OK)
        sl_stream_cancel(e->s);
    cb(ud, rc);
}

static void mem_listeners(struct sl_store *base, const char *id, int delta)
{
    struct sl_store_mem *st = (struct sl_store_mem *)base;
    struct entry *e = find(st, id);
    if (e == NULL)
        return;
    e->listeners += delta;
    if (e->listeners > 0) {
        alone_set(st, e, false);
    } else {
        e->listeners = 0;
        e->alone_since_ms = now_ms(st);
        alone_set(st, e, !e->finished_ms && !sl_log_ended(e->s->log));
        if (e->grace_ms == 0 && !sl_log_ended(e->s->log))
            sl_stream_cancel(e->s);
    }
}

static const struct sl_store_ops mem_ops = {
    mem_add, mem_get, mem_read, mem_subscribe, mem_unsubscribe, mem_cancel, mem_listeners,
};

struct sl_store_mem *sl_store_mem_new(uv_loop_t *loop, const struct sl_store_mem_opts *opts)
{
    struct sl_store_mem *st = sl_calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    st->base.ops = &mem_ops;
    st->opts = *opts;
    st->loop = loop;
    st->nbuckets = SL_STORE_BUCKETS_MIN;
    sl_buf_init(&st->scratch, SIZE_MAX / 2);
    st->ntbuckets = SL_LIMIT_TOMBSTONES;
    st->buckets = sl_calloc(st->nbuckets, sizeof *st->buckets);
    st->tbuckets = sl_calloc(st->ntbuckets, sizeof *st->tbuckets);
    st->tombs = sl_calloc(SL_LIMIT_TOMBSTONES, sizeof *st->tombs);
    if (st->buckets == NULL || st->tbuckets == NULL || st->tombs == NULL) {
        free(st->buckets);
        free(st->tbuckets);
        free(st->tombs);
        free(st);
        return NULL;
    }
    if (loop) {
        uv_timer_init(loop, &st->sweep);
        st->sweep.data = st;
        uv_timer_start(&st->sweep, on_sweep, opts->sweep_ms, opts->sweep_ms);
        uv_unref((uv_handle_t *)&st->sweep); /* the sweep alone keeps no loop alive */
    }
    return st;
}

struct sl_store *sl_store_mem_base(struct sl_store_mem *st)
{
    return &st->base;
}

static void on_sweep_closed(uv_handle_t *h)
{
    struct sl_store_mem *st = h->data;
    sl_buf_free(&st->scratch);
    free(st->buckets);
    free(st->tbuckets);
    free(st->tombs);
    free(st);
}

void sl_store_mem_free(struct sl_store_mem *st)
{
    for (size_t i = 0; i < st->nbuckets; i++) {
        while (st->buckets[i]) {
            struct entry *e = st->buckets[i];
            st->buckets[i] = e->hnext;
            if (!e->finished_ms)
                sl_log_unwatch(e->s->log, &e->end_watch);
            sl_stream_cancel(e->s); /* what still runs stops upstream */
            sl_stream_unref(e->s);
            free(e);
        }
    }
    if (st->loop) {
        uv_close((uv_handle_t *)&st->sweep, on_sweep_closed);
    } else {
        st->sweep.data = st;
        on_sweep_closed((uv_handle_t *)&st->sweep);
    }
}
