/* log.c - a stream's append-only event log in blocks (see log.h).
 * An upstream chunk is mostly the same bytes as the one before it (id,
 * model, created, the same keys): the first event of a block keeps its raw
 * chunk whole, and later ones keep only what differs from it (a shared
 * prefix and suffix by length, the middle bytes), so a stored token costs
 * tens of bytes, not a whole chunk. Readers get whole chunks back. */
#include "stream/log.h"

#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

#include "core/limits.h"

/* Blocks start small (most answers are short) and double up to a ceiling;
 * an event larger than that gets a block of its own. */
#define SL_LOG_FIRST_BLOCK 512
#define SL_LOG_MAX_BLOCK   (16 * 1024)

struct rec {
    uint64_t seq;
    uint32_t raw_len; /* of the whole chunk */
    uint32_t text_len;
    uint32_t choice;
    uint32_t type;
    uint32_t pre; /* bytes shared with the block's first chunk: from its start */
    uint32_t suf; /* ... and from its end; the middle is stored */
};

/* Sharing less than this is not worth the reconstruction. */
#define SL_LOG_MIN_SHARED 32

struct sl_log_block {
    struct sl_log_block *next;
    uint64_t first_seq;
    size_t used, cap;
    char data[];
};

static size_t rec_size(size_t stored_raw, size_t text_len)
{
    size_t n = sizeof(struct rec) + stored_raw + text_len;
    return (n + 7) & ~(size_t)7;
}

static size_t stored(const struct rec *r)
{
    return r->raw_len - r->pre - r->suf;
}

/* The block's first record: its raw chunk is whole. */
static const char *key_raw(const struct sl_log_block *b, size_t *len)
{
    struct rec k;
    memcpy(&k, b->data, sizeof k);
    *len = k.raw_len;
    return b->data + sizeof k;
}

void sl_log_init(struct sl_log *log, size_t max_bytes)
{
    *log =
        (struct sl_log){.max_bytes = max_bytes, .next_block = SL_LOG_FIRST_BLOCK, .first_seq = 1};
}

void sl_log_fini(struct sl_log *log)
{
    struct sl_log_block *b = log->head;
    while (b) {
        struct sl_log_block *next = b->next;
        free(b);
        b = next;
    }
    log->head = log->tail = NULL;
}

struct sl_log *sl_log_new(size_t max_bytes)
{
    struct sl_log *log = sl_malloc(sizeof *log);
    if (log == NULL)
        return NULL;
    sl_log_init(log, max_bytes);
    return log;
}

void sl_log_free(struct sl_log *log)
{
    if (log == NULL)
        return;
    sl_log_fini(log);
    free(log);
}

/* Bytes a[0..n) and b[0..n) have in common from the start, compared a word
 * at a time (every token's chunk is compared with its block's first). */
static size_t common_prefix(const char *a, const char *b, size_t n)
{
    size_t i = 0;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y)
            return i + ((size_t)__builtin_ctzll(x ^ y) >> 3);
    }
#endif
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* Bytes the n bytes before a_end and before b_end have in common from the
 * end. */
static size_t common_suffix(const char *a_end, const char *b_end, size_t n)
{
    size_t i = 0;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        memcpy(&x, a_end - i - 8, 8);
        memcpy(&y, b_end - i - 8, 8);
        if (x != y)
            return i + ((size_t)__builtin_clzll(x ^ y) >> 3);
    }
#endif
    while (i < n && a_end[-1 - (ptrdiff_t)i] == b_end[-1 - (ptrdiff_t)i])
        i++;
    return i;
}

/* Tells each watcher. A callback may unwatch itself or any other watcher
 * (sl_log_unwatch moves notify_next past it), and it may append to or end
 * the log: that nested notify tells every watcher of the newer state, so
 * this older round stops at once rather than tell anyone twice or of an
 * event that is no longer the latest. */
static void notify(struct sl_log *log)
{
    uint64_t round = ++log->notify_round;
    struct sl_log_watcher *w = log->watchers;
    while (w) {
        log->notify_next = w->next;
        w->cb(w, log);
        if (log->notify_round != round)
            return;
        w = log->notify_next;
    }
    log->notify_next = NULL;
}

int sl_log_append(struct sl_log *log, enum sl_ev_type type, uint32_t choice, const char *raw,
                  size_t raw_len, const char *text, size_t text_len, uint64_t *seq)
{
    if (log->ended || log->failed)
        return SL_EINVAL;
    if (raw_len > UINT32_MAX || text_len > UINT32_MAX)
        return SL_ETOOBIG;
    /* What this chunk shares with the tail block's first one. */
    size_t pre = 0, suf = 0;
    struct sl_log_block *b = log->tail;
    if (b != NULL && b->used > 0 && raw_len > 0) {
        size_t klen;
        const char *k = key_raw(b, &klen);
        size_t lim = klen < raw_len ? klen : raw_len;
        pre = common_prefix(k, raw, lim);
        suf = common_suffix(k + klen, raw + raw_len, lim - pre);
        if (pre + suf < SL_LOG_MIN_SHARED)
            pre = suf = 0;
    }
    size_t need = rec_size(raw_len - pre - suf, text_len);
    /* An error is a log's last event: it may pass the bound by at most
     * SL_LIMIT_LOG_ERROR_BYTES, once, so that a log that filled up can
     * still say why it stops. Every other event stays within max_bytes. */
    size_t room = log->max_bytes + (type == SL_EV_ERROR ? SL_LIMIT_LOG_ERROR_BYTES : 0);
    if (need > room || log->bytes > room - need)
        return SL_ETOOBIG;
    if (b == NULL || b->cap - b->used < need) {
        /* A new block: this chunk is its first, kept whole. */
        pre = suf = 0;
        need = rec_size(raw_len, text_len);
        /* Whole, it may no longer fit under the bound. */
        if (need > room || log->bytes > room - need)
            return SL_ETOOBIG;
        size_t cap = log->next_block;
        if (cap < need)
            cap = need;
        if (log->next_block < SL_LOG_MAX_BLOCK)
            log->next_block *= 2;
        struct sl_log_block *nb = sl_malloc(sizeof *nb + cap);
        if (nb == NULL)
            return SL_ENOMEM;
        nb->next = NULL;
        nb->first_seq = log->last_seq + 1;
        nb->used = 0;
        nb->cap = cap;
        if (b)
            b->next = nb;
        else
            log->head = nb;
        log->tail = b = nb;
    }
    struct rec r = {log->last_seq + 1, (uint32_t)raw_len, (uint32_t)text_len, choice,
                    (uint32_t)type,    (uint32_t)pre,     (uint32_t)suf};
    char *p = b->data + b->used;
    size_t mid = raw_len - pre - suf;
    memcpy(p, &r, sizeof r);
    if (mid)
        memcpy(p + sizeof r, raw + pre, mid);
    if (text_len)
        memcpy(p + sizeof r + mid, text, text_len);
    b->used += need;
    log->bytes += need;
    log->last_seq++;
    if (type == SL_EV_ERROR)
        log->failed = true;
    if (seq)
        *seq = log->last_seq;
    if (log->watchers) {
        struct sl_ev ev = {log->last_seq, type, choice, raw, raw_len, text, text_len};
        log->appended = &ev;
        notify(log);
        log->appended = NULL;
    }
    return SL_OK;
}

void sl_log_end(struct sl_log *log)
{
    if (log->ended)
        return;
    log->ended = true;
    notify(log);
}

const struct sl_ev *sl_log_appended(const struct sl_log *log)
{
    return log->appended;
}

bool sl_log_ended(const struct sl_log *log)
{
    return log->ended;
}

uint64_t sl_log_last_seq(const struct sl_log *log)
{
    return log->last_seq;
}

size_t sl_log_bytes(const struct sl_log *log)
{
    return log->bytes;
}

/* Finds the block and offset of event seq (or the end of the tail). */
static void seek(struct sl_log *log, struct sl_log_cursor *c)
{
    c->gen = log->gen;
    if (log->hint_blk && log->hint_seq == c->next_seq && log->hint_gen == log->gen) {
        c->blk = log->hint_blk;
        c->off = log->hint_off;
        return;
    }
    c->blk = NULL;
    c->off = 0;
    for (struct sl_log_block *b = log->head; b; b = b->next) {
        if (b->next && b->next->first_seq <= c->next_seq)
            continue;
        size_t off = 0;
        while (off < b->used) {
            struct rec r;
            memcpy(&r, b->data + off, sizeof r);
            if (r.seq >= c->next_seq)
                break;
            off += rec_size(stored(&r), r.text_len);
        }
        c->blk = b;
        c->off = off;
        return;
    }
}

int sl_log_cursor_init(struct sl_log *log, struct sl_log_cursor *c, uint64_t after_seq)
{
    if (after_seq > log->last_seq)
        return SL_EINVAL;
    if (after_seq + 1 < log->first_seq)
        return SL_ENOTFOUND;
    c->next_seq = after_seq + 1;
    seek(log, c);
    return SL_OK;
}

/* One record at the cursor into ev; a coded chunk's parts go to part (its
 * raw is built later), a whole one points into the block. */
struct part {
    const char *key;
    size_t klen;
    const char *mid;
    uint32_t pre, suf;
};

static int read_one(struct sl_log *log, struct sl_log_cursor *c, struct sl_ev *ev,
                    struct part *part)
{
    if (c->next_seq > log->last_seq)
        return 0;
    if (c->next_seq < log->first_seq)
        return SL_ENOTFOUND;
    if (c->blk == NULL || c->gen != log->gen)
        seek(log, c);
    while (c->off >= c->blk->used) {
        c->blk = c->blk->next;
        c->off = 0;
    }
    struct rec r;
    const char *p = c->blk->data + c->off;
    memcpy(&r, p, sizeof r);
    size_t mid = stored(&r);
    ev->seq = r.seq;
    ev->type = (enum sl_ev_type)r.type;
    ev->choice = r.choice;
    ev->raw_len = r.raw_len;
    ev->text = p + sizeof r + mid;
    ev->text_len = r.text_len;
    part->pre = r.pre;
    part->suf = r.suf;
    part->mid = p + sizeof r;
    if (r.pre + r.suf == 0) {
        ev->raw = p + sizeof r;
        part->key = NULL;
    } else {
        ev->raw = NULL;
        part->key = key_raw(c->blk, &part->klen);
    }
    c->off += rec_size(mid, r.text_len);
    c->next_seq = r.seq + 1;
    log->hint_seq = c->next_seq;
    log->hint_blk = c->blk;
    log->hint_off = c->off;
    log->hint_gen = c->gen;
    return 1;
}

/* Events read in one batch at most (the parts array lives on the stack). */
#define SL_LOG_BATCH_MAX 256

int sl_log_read_batch(struct sl_log *log, struct sl_log_cursor *c, struct sl_ev *evs, size_t max,
                      struct sl_buf *scratch, size_t *n)
{
    struct part parts[SL_LOG_BATCH_MAX];
    size_t got = 0, coded = 0;
    int rc = SL_OK;
    if (max > SL_LOG_BATCH_MAX)
        max = SL_LOG_BATCH_MAX;
    while (got < max) {
        rc = read_one(log, c, &evs[got], &parts[got]);
        if (rc != 1)
            break;
        if (parts[got].key)
            coded += evs[got].raw_len;
        got++;
    }
    *n = got;
    if (rc < 0 && got == 0)
        return rc;
    if (coded == 0)
        return SL_OK;
    /* Room for every coded chunk first, so that no pointer moves. */
    sl_buf_reset(scratch);
    rc = sl_buf_reserve(scratch, coded);
    if (rc != SL_OK)
        return rc;
    for (size_t i = 0; i < got; i++) {
        const struct part *pt = &parts[i];
        if (pt->key == NULL)
            continue;
        size_t at = sl_buf_size(scratch);
        size_t mid = evs[i].raw_len - pt->pre - pt->suf;
        if (sl_buf_append(scratch, pt->key, pt->pre) != SL_OK ||
            sl_buf_append(scratch, pt->mid, mid) != SL_OK ||
            sl_buf_append(scratch, pt->key + pt->klen - pt->suf, pt->suf) != SL_OK)
            return SL_ENOMEM; /* cannot happen: the room was reserved */
        evs[i].raw = sl_buf_ptr(scratch) + at;
    }
    return SL_OK;
}

int sl_log_read(struct sl_log *log, struct sl_log_cursor *c, struct sl_ev *ev,
                struct sl_buf *scratch)
{
    size_t n = 0;
    int rc = sl_log_read_batch(log, c, ev, 1, scratch, &n);
    if (rc != SL_OK)
        return rc;
    return n == 1 ? 1 : 0;
}

void sl_log_trim(struct sl_log *log, uint64_t before_seq)
{
    /* A block can go when the next block starts at or before before_seq, or
     * when it is the last block and every event in it is below before_seq. */
    while (log->head) {
        struct sl_log_block *b = log->head;
        uint64_t end_seq = b->next ? b->next->first_seq : log->last_seq + 1;
        if (end_seq > before_seq)
            break;
        log->head = b->next;
        if (log->tail == b)
            log->tail = NULL;
        log->bytes -= b->used;
        log->first_seq = end_seq;
        log->gen++;
        free(b);
    }
}

void sl_log_watch(struct sl_log *log, struct sl_log_watcher *w)
{
    w->prev = NULL;
    w->next = log->watchers;
    if (log->watchers)
        log->watchers->prev = w;
    log->watchers = w;
}

void sl_log_unwatch(struct sl_log *log, struct sl_log_watcher *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else if (log->watchers == w)
        log->watchers = w->next;
    else
        return; /* not watching */
    if (w->next)
        w->next->prev = w->prev;
    if (log->notify_next == w)
        log->notify_next = w->next;
    w->prev = w->next = NULL;
}
