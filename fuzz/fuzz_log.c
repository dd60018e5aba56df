/* fuzz_log.c - libFuzzer harness of the stream log (stream/log).
 * Owns: reading the input as a sequence of operations (append of every
 * event type, read, read_batch, cursor_init, trim, end, watch, unwatch)
 * on one log and on a model (the array of appended events), and the
 * invariants checked after each: every read gives the model's bytes, seqs
 * in order, the byte bound held, SL_ENOTFOUND only below the oldest held
 * event, watchers told once per append. Does not own: the log. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "stream/log.h"

static void check(bool ok, const char *what, int line)
{
    if (!ok) {
        fprintf(stderr, "fuzz_log: invariant broken at line %d: %s\n", line, what);
        abort();
    }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

/* Build with -DFUZZ_LOG_TRACE to see the operations of one input. */
#ifdef FUZZ_LOG_TRACE
#define TRACE(...) fprintf(stderr, __VA_ARGS__)
#else
#define TRACE(...) ((void)0)
#endif

/* Bounds on one input, so that an input runs in milliseconds. */
#define MAX_EVENTS      4096
#define MAX_MODEL_BYTES (4u << 20)
#define MAX_RAW         (40 * 1024) /* past the log's largest block (16 KiB) */
#define NCURSORS        4
#define NWATCHERS       3
#define BATCH_ROOM      300 /* more than the log reads at once (256) */
/* A record's bytes beyond its raw and text (header and padding): the log
 * refuses an append only when the whole record could not fit. */
#define REC_OVERHEAD 64

/* A chunk like the ones vLLM streams: long shared prefix and suffix. */
static const char tmpl_pre[] = "{\"id\":\"chatcmpl-5f1e2d3c4b5a69788796a5b4c3d2e1f0\",\"object\":"
                               "\"chat.completion.chunk\",\"created\":1733000000,\"model\":"
                               "\"Qwen/Qwen3-0.6B\",\"choices\":[{\"index\":0,\"delta\":{"
                               "\"content\":\"";
static const char tmpl_suf[] = "\"},\"logprobs\":null,\"finish_reason\":null}]}";

struct mev {
    enum sl_ev_type type;
    uint32_t choice;
    char *raw, *text;
    size_t raw_len, text_len;
};

struct hcursor {
    struct sl_log_cursor c;
    bool valid;
    uint64_t next; /* the model's next seq */
};

struct hwatch {
    struct sl_log_watcher w;
    bool watching, unwatch_in_cb;
    unsigned calls, ends;
};

struct state {
    const uint8_t *p;
    size_t n;
    struct sl_log *log;
    struct sl_log log_mem;
    uint64_t count;
    size_t model_bytes;
    bool ended, in_end;
    bool failed;               /* an error event is in: nothing but the end may follow */
    const struct mev *pending; /* the event being appended */
    struct hcursor cur[NCURSORS];
    struct hwatch wat[NWATCHERS];
    struct sl_buf scratch, cb_scratch;
    size_t scratch_max, max_bytes;
    uint64_t first_seen;           /* the log's oldest held event, as last seen */
    struct mev ev[MAX_EVENTS + 1]; /* ev[seq], ev[0] unused: last, not cleared */
};

static struct state *S;

static uint8_t u8(struct state *s)
{
    if (s->n == 0)
        return 0;
    s->n--;
    return *s->p++;
}

static uint16_t u16(struct state *s)
{
    uint16_t hi = u8(s);
    return (uint16_t)(hi << 8 | u8(s));
}

static uint64_t first_seq(const struct sl_log *log)
{
    return log->first_seq; /* private, but it is what ENOTFOUND is about */
}

static void check_ev(const struct sl_ev *ev, uint64_t seq)
{
    CHECK(seq >= 1 && seq <= S->count);
    const struct mev *m = &S->ev[seq];
    CHECK(ev->seq == seq);
    CHECK(ev->type == m->type);
    CHECK(ev->choice == m->choice);
    CHECK(ev->raw_len == m->raw_len);
    CHECK(ev->text_len == m->text_len);
    CHECK(ev->raw != NULL && ev->text != NULL);
    CHECK(memcmp(ev->raw, m->raw, m->raw_len) == 0);
    CHECK(memcmp(ev->text, m->text, m->text_len) == 0);
}

/* The log's observable state agrees with the model. */
static void check_log(void)
{
    struct sl_log *log = S->log;
    uint64_t first = first_seq(log);
    CHECK(sl_log_last_seq(log) == S->count);
    CHECK(sl_log_ended(log) == S->ended);
    CHECK(first >= S->first_seen); /* only trims move it, and only forward */
    CHECK(first >= 1 && first <= S->count + 1);
    /* Bytes are held exactly while events are. */
    CHECK((sl_log_bytes(log) == 0) == (first == S->count + 1));
    CHECK(sl_log_appended(log) == NULL);
    S->first_seen = first;
}

static void on_watch(struct sl_log_watcher *w, struct sl_log *log)
{
    struct hwatch *hw = w->data;
    CHECK(log == S->log);
    CHECK(hw->watching);
    const struct sl_ev *ev = sl_log_appended(log);
    if (ev == NULL) {
        CHECK(S->in_end && sl_log_ended(log));
        hw->ends++;
    } else {
        /* The appender's event, as a read of the log gives it back. */
        CHECK(S->pending != NULL && !S->in_end);
        CHECK(ev->seq == sl_log_last_seq(log) && ev->seq == S->count + 1);
        CHECK(ev->type == S->pending->type && ev->choice == S->pending->choice);
        CHECK(ev->raw_len == S->pending->raw_len && ev->text_len == S->pending->text_len);
        CHECK(memcmp(ev->raw, S->pending->raw, ev->raw_len) == 0);
        CHECK(memcmp(ev->text, S->pending->text, ev->text_len) == 0);
        struct sl_log_cursor c;
        CHECK(sl_log_cursor_init(log, &c, ev->seq - 1) == SL_OK);
        struct sl_ev got;
        CHECK(sl_log_read(log, &c, &got, &S->cb_scratch) == 1);
        CHECK(got.seq == ev->seq && got.raw_len == ev->raw_len && got.text_len == ev->text_len);
        CHECK(memcmp(got.raw, ev->raw, ev->raw_len) == 0);
        CHECK(memcmp(got.text, ev->text, ev->text_len) == 0);
        hw->calls++;
    }
    if (hw->unwatch_in_cb) {
        sl_log_unwatch(log, w); /* the log allows a callback to unwatch itself */
        hw->watching = hw->unwatch_in_cb = false;
    }
}

/* Fills buf with n bytes: the input's, then a pattern (big chunks cost
 * few input bytes). */
static void fill(struct state *s, char *buf, size_t n)
{
    size_t take = n < s->n ? n : s->n;
    take = take < 64 ? take : 64;
    memcpy(buf, s->p, take);
    s->p += take;
    s->n -= take;
    for (size_t i = take; i < n; i++)
        buf[i] = (char)('a' + (i * 7 + n) % 26);
}

/* One raw chunk: empty, random, like a vLLM chunk, or an earlier event's
 * chunk with its middle changed (the log stores a chunk as what differs
 * from its block's first). */
static char *make_raw(struct state *s, size_t *len)
{
    uint8_t mode = u8(s) % 5;
    size_t n = 0;
    char *r;
    if (mode == 0) {
        n = 0;
        r = malloc(1);
    } else if (mode == 1) {
        uint16_t v = u16(s);
        n = (v & 0x8000) ? (size_t)(v & 0x7fff) * 3 % MAX_RAW : v % 256;
        r = malloc(n + 1);
        fill(s, r, n);
    } else if (mode == 2) {
        size_t mid = u8(s) % 24;
        size_t pn = sizeof tmpl_pre - 1, sn = sizeof tmpl_suf - 1;
        n = pn + mid + sn;
        r = malloc(n + 1);
        memcpy(r, tmpl_pre, pn);
        fill(s, r + pn, mid);
        memcpy(r + pn + mid, tmpl_suf, sn);
    } else {
        /* From an earlier event (the last one most often). */
        const struct mev *base = NULL;
        if (s->count > 0) {
            uint8_t back = u8(s);
            uint64_t seq = mode == 3 || back >= s->count ? s->count : s->count - back;
            base = &s->ev[seq];
        }
        size_t bl = base ? base->raw_len : 0;
        size_t pre = bl ? u16(s) % (bl + 1) : 0;
        size_t suf = bl - pre ? u16(s) % (bl - pre + 1) : 0;
        size_t mid = u8(s) % 40;
        n = pre + mid + suf;
        r = malloc(n + 1);
        if (pre)
            memcpy(r, base->raw, pre);
        fill(s, r + pre, mid);
        if (suf)
            memcpy(r + pre + mid, base->raw + bl - suf, suf);
    }
    CHECK(r != NULL);
    *len = n;
    return r;
}

static void op_append(struct state *s)
{
    struct mev m;
    m.type = (enum sl_ev_type)(SL_EV_START + u8(s) % 9);
    m.choice = u8(s) % 4;
    m.raw = make_raw(s, &m.raw_len);
    uint8_t tl = u8(s);
    m.text_len = tl < 200 ? tl % 48 : (size_t)tl * 13;
    m.text = malloc(m.text_len + 1);
    CHECK(m.text != NULL);
    fill(s, m.text, m.text_len);
    if (s->count == MAX_EVENTS || s->model_bytes + m.raw_len + m.text_len > MAX_MODEL_BYTES) {
        free(m.raw);
        free(m.text);
        return;
    }
    size_t before = sl_log_bytes(s->log);
    unsigned calls[NWATCHERS];
    bool watching[NWATCHERS];
    for (int i = 0; i < NWATCHERS; i++) {
        calls[i] = s->wat[i].calls;
        watching[i] = s->wat[i].watching;
    }
    /* The log copies: it is handed bytes that are freed right after. */
    char *raw = malloc(m.raw_len + 1), *text = malloc(m.text_len + 1);
    CHECK(raw != NULL && text != NULL);
    memcpy(raw, m.raw, m.raw_len);
    memcpy(text, m.text, m.text_len);
    uint64_t seq = 0;
    s->pending = &m;
    int rc = sl_log_append(s->log, m.type, m.choice, raw, m.raw_len, text, m.text_len, &seq);
    s->pending = NULL;
    TRACE("append type %d raw %zu text %zu: rc %d seq %llu bytes %zu\n", (int)m.type, m.raw_len,
          m.text_len, rc, (unsigned long long)seq, sl_log_bytes(s->log));
    free(raw);
    free(text);
    size_t after = sl_log_bytes(s->log);
    size_t max = s->max_bytes;
    /* One error may pass the bound by the reserve; it is the last event. */
    size_t room = max + (m.type == SL_EV_ERROR ? SL_LIMIT_LOG_ERROR_BYTES : 0);
    if (s->ended || s->failed) {
        CHECK(rc == SL_EINVAL);
    } else if (rc == SL_ETOOBIG) {
        CHECK(before + m.raw_len + m.text_len + REC_OVERHEAD > room);
    } else {
        CHECK(rc == SL_OK);
    }
    if (rc != SL_OK) {
        CHECK(after == before);
        for (int i = 0; i < NWATCHERS; i++)
            CHECK(s->wat[i].calls == calls[i]);
        free(m.raw);
        free(m.text);
        return;
    }
    CHECK(seq == s->count + 1);
    CHECK(after > before);
    CHECK(after <= room);
    if (m.type == SL_EV_ERROR)
        s->failed = true;
    /* A chunk costs at most itself and a header. */
    CHECK(after - before <= m.raw_len + m.text_len + REC_OVERHEAD);
    /* Each watcher told once, also one that unwatched itself then. */
    for (int i = 0; i < NWATCHERS; i++)
        CHECK(s->wat[i].calls == calls[i] + watching[i]);
    s->ev[++s->count] = m;
    s->model_bytes += m.raw_len + m.text_len;
}

static void op_cursor_init(struct state *s, struct hcursor *hc)
{
    uint8_t how = u8(s);
    uint64_t after;
    uint64_t first = first_seq(s->log);
    if (how < 64)
        after = s->count;
    else if (how < 128)
        after = first - 1;
    else if (how < 160)
        after = 0;
    else
        after = u16(s) % (s->count + 3);
    int rc = sl_log_cursor_init(s->log, &hc->c, after);
    TRACE("cursor %d init after %llu: rc %d\n", (int)(hc - s->cur), (unsigned long long)after, rc);
    if (after > s->count) {
        CHECK(rc == SL_EINVAL);
        hc->valid = false;
    } else if (after + 1 < first) {
        CHECK(rc == SL_ENOTFOUND);
        hc->valid = false;
    } else {
        CHECK(rc == SL_OK);
        CHECK(hc->c.next_seq == after + 1);
        hc->valid = true;
        hc->next = after + 1;
    }
}

static void op_read(struct state *s, struct hcursor *hc, bool batch)
{
    if (!hc->valid) {
        op_cursor_init(s, hc);
        return;
    }
    uint64_t first = first_seq(s->log);
    size_t max = batch ? u16(s) % BATCH_ROOM : 1;
    size_t want = max > 256 ? 256 : max;
    struct sl_ev evs[BATCH_ROOM];
    size_t n = 12345;
    int rc;
    if (batch) {
        rc = sl_log_read_batch(s->log, &hc->c, evs, max, &s->scratch, &n);
    } else {
        rc = sl_log_read(s->log, &hc->c, evs, &s->scratch);
        if (rc >= 0) {
            n = (size_t)rc;
            rc = SL_OK;
        }
    }
    TRACE("cursor %d read%s %zu from %llu (first %llu): rc %d n %zu\n", (int)(hc - s->cur),
          batch ? "_batch" : "", max, (unsigned long long)hc->next, (unsigned long long)first, rc,
          n);
    if (max == 0) {
        /* Asked for nothing: nothing read, the cursor stays. */
        CHECK((rc == SL_OK || rc == SL_ENOTFOUND) && n == 0);
        CHECK(hc->c.next_seq == hc->next);
        return;
    }
    if (hc->next < first) {
        CHECK(rc == SL_ENOTFOUND);
        if (batch)
            CHECK(n == 0);
        hc->valid = false;
        return;
    }
    uint64_t avail = s->count + 1 - hc->next;
    size_t expect = avail < want ? (size_t)avail : want;
    if (rc == SL_ETOOBIG || rc == SL_ENOMEM) {
        /* Only a scratch too small for the chunks read; the cursor then
         * stands past them (the caller gives up on the read). */
        size_t total = 0;
        for (size_t i = 0; i < expect; i++)
            total += s->ev[hc->next + i].raw_len;
        CHECK(rc == SL_ETOOBIG && total > s->scratch_max);
        hc->valid = false;
        return;
    }
    CHECK(rc == SL_OK);
    CHECK(n == expect);
    for (size_t i = 0; i < n; i++)
        check_ev(&evs[i], hc->next + i);
    hc->next += n;
    CHECK(hc->c.next_seq == hc->next);
}

static void op_trim(struct state *s)
{
    uint8_t how = u8(s);
    uint64_t before;
    if (how < 128) {
        /* As a store does: up to the slowest reader. */
        before = s->count + 1;
        for (int i = 0; i < NCURSORS; i++)
            if (s->cur[i].valid && s->cur[i].next < before)
                before = s->cur[i].next;
    } else {
        before = u16(s) % (s->count + 3);
    }
    uint64_t old_first = first_seq(s->log);
    size_t old_bytes = sl_log_bytes(s->log);
    sl_log_trim(s->log, before);
    TRACE("trim before %llu: first %llu bytes %zu\n", (unsigned long long)before,
          (unsigned long long)first_seq(s->log), sl_log_bytes(s->log));
    uint64_t first = first_seq(s->log);
    CHECK(first >= old_first);
    CHECK(first <= (before > old_first ? before : old_first));
    CHECK(sl_log_bytes(s->log) <= old_bytes);
    if (before > s->count) {
        /* Every block is wholly below: all go. */
        CHECK(first == s->count + 1);
        CHECK(sl_log_bytes(s->log) == 0);
    }
}

static void op_end(struct state *s)
{
    unsigned ends[NWATCHERS];
    bool watching[NWATCHERS];
    for (int i = 0; i < NWATCHERS; i++) {
        ends[i] = s->wat[i].ends;
        watching[i] = s->wat[i].watching;
    }
    bool was = s->ended;
    TRACE("end\n");
    s->in_end = true;
    s->ended = true;
    sl_log_end(s->log);
    s->in_end = false;
    for (int i = 0; i < NWATCHERS; i++)
        CHECK(s->wat[i].ends == ends[i] + (!was && watching[i]));
}

static void op_watch(struct state *s, struct hwatch *hw)
{
    uint8_t how = u8(s) % 3;
    TRACE("watcher %d: %s\n", (int)(hw - s->wat),
          how == 0   ? "watch"
          : how == 1 ? "unwatch"
                     : "unwatch in cb");
    if (how == 0) {
        if (!hw->watching) {
            sl_log_watch(s->log, &hw->w);
            hw->watching = true;
        }
    } else if (how == 1) {
        sl_log_unwatch(s->log, &hw->w); /* also when not watching */
        hw->watching = false;
        hw->unwatch_in_cb = false;
    } else {
        hw->unwatch_in_cb = hw->watching;
    }
}

/* Every held event, read from the start once more. */
static void read_all(struct state *s)
{
    struct sl_log_cursor c;
    uint64_t first = first_seq(s->log);
    CHECK(sl_log_cursor_init(s->log, &c, first - 1) == SL_OK);
    if (first > 1)
        CHECK(sl_log_cursor_init(s->log, &c, first - 2) == SL_ENOTFOUND);
    CHECK(sl_log_cursor_init(s->log, &c, first - 1) == SL_OK);
    struct sl_ev ev;
    struct sl_buf big;
    sl_buf_init(&big, SIZE_MAX / 2);
    for (uint64_t seq = first; seq <= s->count; seq++) {
        CHECK(sl_log_read(s->log, &c, &ev, &big) == 1);
        check_ev(&ev, seq);
    }
    CHECK(sl_log_read(s->log, &c, &ev, &big) == 0);
    sl_buf_free(&big);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct state st;
    memset(&st, 0, offsetof(struct state, ev));
    struct state *s = S = &st;
    s->p = data;
    s->n = size;
    static const size_t maxes[] = {600, 4096, 65536, 1u << 24};
    size_t max_bytes = s->max_bytes = maxes[u8(s) % 4];
    uint8_t setup = u8(s);
    if (setup & 1) {
        s->log = sl_log_new(max_bytes);
        CHECK(s->log != NULL);
    } else {
        sl_log_init(&s->log_mem, max_bytes);
        s->log = &s->log_mem;
    }
    /* A scratch that holds any chunk, or one too small for big ones. */
    s->scratch_max = (setup & 2) ? 1024 : SIZE_MAX / 2;
    sl_buf_init(&s->scratch, s->scratch_max);
    sl_buf_init(&s->cb_scratch, SIZE_MAX / 2);
    s->first_seen = 1;
    for (int i = 0; i < NWATCHERS; i++) {
        s->wat[i].w.cb = on_watch;
        s->wat[i].w.data = &s->wat[i];
    }
    while (s->n > 0) {
        uint8_t op = u8(s);
        switch (op % 8) {
        case 0:
        case 1:
        case 2:
            op_append(s);
            break;
        case 3:
            op_read(s, &s->cur[(op >> 3) % NCURSORS], false);
            break;
        case 4:
            op_read(s, &s->cur[(op >> 3) % NCURSORS], true);
            break;
        case 5:
            if ((op >> 3) & 1)
                op_cursor_init(s, &s->cur[(op >> 4) % NCURSORS]);
            else
                op_trim(s);
            break;
        case 6:
            op_watch(s, &s->wat[(op >> 3) % NWATCHERS]);
            break;
        case 7:
            if ((op >> 3) == 31)
                op_end(s);
            else
                op_read(s, &s->cur[(op >> 3) % NCURSORS], (op >> 5) & 1);
            break;
        }
        check_log();
    }
    read_all(s);
    for (int i = 0; i < NWATCHERS; i++)
        sl_log_unwatch(s->log, &s->wat[i].w);
    if (s->log == &s->log_mem)
        sl_log_fini(s->log);
    else
        sl_log_free(s->log);
    for (uint64_t i = 1; i <= s->count; i++) {
        free(s->ev[i].raw);
        free(s->ev[i].text);
    }
    sl_buf_free(&s->scratch);
    sl_buf_free(&s->cb_scratch);
    return 0;
}
