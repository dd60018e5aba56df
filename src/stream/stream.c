/* stream.c - a generation's producer side and lifetime (see stream.h). */
#include "stream/stream.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "core/alloc.h"
#include "oai/error.h"
#include "stream/headers.h"

void sl_stream_new_id(char id[SL_STREAM_ID_CHARS + 1])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char r[16];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
    /* 128 bits: 21 full sextets and 2 bits in the 22nd. */
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < sizeof r; i++) {
        acc = (acc << 8) | r[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            id[o++] = b64[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        id[o++] = b64[(acc << (6 - bits)) & 63];
    id[o] = '\0';
}

const char *sl_stream_state_name(enum sl_stream_state st)
{
    switch (st) {
    case SL_STREAM_STARTING:
    case SL_STREAM_RUNNING:
        return "running";
    case SL_STREAM_DONE:
        return "done";
    case SL_STREAM_CANCELLED:
        return "cancelled";
    case SL_STREAM_FAILED:
        return "failed";
    }
    return "failed";
}

static void on_stall_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Not inlined: gcc cannot see that a held reference keeps s alive and
 * would warn of a use after free in every caller. */
__attribute__((noinline)) static void stream_free(struct sl_stream *s)
{
    if (s->ingest_on)
        sl_ingest_free(&s->ingest);
    sl_log_fini(s->log);
    sl_buf_free(&s->reply);
    sl_buf_free(&s->reply_head);
    if (s->stall_init)
        uv_close((uv_handle_t *)&s->stall, on_stall_closed); /* frees s */
    else
        free(s);
}

void sl_stream_ref(struct sl_stream *s)
{
    s->refs++;
}

void sl_stream_unref(struct sl_stream *s)
{
    if (--s->refs == 0)
        stream_free(s);
}

static bool is_event_stream(const struct sl_upstream_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (h[i].name_len == 12 && strncasecmp(h[i].name, "content-type", 12) == 0)
            return h[i].value_len >= 17 && strncasecmp(h[i].value, "text/event-stream", 17) == 0;
    return false;
}

/* Streams whose upstream request runs, for shutdown (one list per thread:
 * nothing is shared between workers). */
static _Thread_local struct sl_stream *producing;

static void producing_unlink(struct sl_stream *s)
{
    if (s->pprev)
        s->pprev->pnext = s->pnext;
    else if (producing == s)
        producing = s->pnext;
    if (s->pnext)
        s->pnext->pprev = s->pprev;
    s->pprev = s->pnext = NULL;
}

/* The producer is done: its reference goes. */
static void producer_gone(struct sl_stream *s)
{
    producing_unlink(s);
    if (s->stall_init)
        uv_timer_stop(&s->stall);
    s->up = NULL;
    s->owner = NULL;
    sl_stream_unref(s);
}

/* The upstream sent nothing for stall_ms: cut it, say so in the log. */
static void on_stall(uv_timer_t *t)
{
    struct sl_stream *s = t->data;
    if (s->up == NULL || s->state != SL_STREAM_RUNNING)
        return;
    /* Not restarted per event (a heap operation per token): it looks at the
     * last event's time when it fires. */
    uint64_t now = uv_now(s->loop);
    uint64_t due = s->last_data_ms + s->opts.stall_ms;
    if (due > now) {
        uv_timer_start(&s->stall, on_stall, due - now, 0);
        return;
    }
    s->t->cancel(s->up);
    char what[128];
    snprintf(what, sizeof what, "the upstream sent nothing for %llu ms (stall_timeout_ms)",
             (unsigned long long)s->opts.stall_ms);
    (void)sl_ingest_end(&s->ingest, SL_ETIMEDOUT, what);
    s->state = SL_STREAM_FAILED;
    producer_gone(s);
}

static void stall_arm(struct sl_stream *s)
{
    if (s->stall_init && s->opts.stall_ms > 0)
        uv_timer_start(&s->stall, on_stall, s->opts.stall_ms, 0);
}

static void on_head(void *ud, int status, const struct sl_upstream_header *hdrs, size_t n)
{
    struct sl_stream *s = ud;
    if (status >= 200 && status < 300 && is_event_stream(hdrs, n)) {
        s->state = SL_STREAM_RUNNING;
        s->last_data_ms = uv_now(s->loop);
        stall_arm(s);
        sl_ingest_init(&s->ingest, s->log, s->opts.max_event_bytes, uv_now(s->loop));
        s->ingest_on = true;
        const struct sl_stream_owner *owner = s->owner;
        s->owner = NULL;
        if (owner)
            owner->on_open(s->owner_ud, s, hdrs, n);
        return;
    }
    /* Anything else is passed on whole: keep the head until the body is in. */
    s->reply_status = status;
    const char *ctype;
    int64_t clen;
    if (sl_upstream_response_headers(hdrs, n, &s->reply_head, &ctype, &clen) != SL_OK)
        sl_buf_reset(&s->reply_head);
}

static bool on_data(void *ud, const char *p, size_t n)
{
    struct sl_stream *s = ud;
    if (s->state == SL_STREAM_RUNNING) {
        /* Appending wakes followers, and a follower whose client left may
         * cancel the stream from inside this call: hold it meanwhile. */
        s->last_data_ms = uv_now(s->loop);
        sl_stream_ref(s);
        int rc = sl_ingest_feed(&s->ingest, p, n, uv_now(s->loop));
        bool go = s->up != NULL && rc == SL_OK;
        bool broken = s->up != NULL && rc != SL_OK;
        if (broken) {
            /* Broken or over a bound: the error event is logged; stop. */
            (void)sl_ingest_end(&s->ingest, SL_EPROTO, "the upstream stream is broken");
            s->state = SL_STREAM_FAILED;
        }
        sl_stream_unref(s); /* ours: the producer's reference still holds s if broken */
        if (broken)
            producer_gone(s);
        return go;
    }
    if (sl_buf_append(&s->reply, p, n) == SL_OK)
        return true;
    const struct sl_stream_owner *owner = s->owner;
    s->state = SL_STREAM_FAILED;
    if (owner)
        owner->on_fail(s->owner_ud, s, SL_EPROTO,
                       "the upstream response is over max_response_bytes");
    producer_gone(s);
    return false;
}

static void on_end(void *ud, int err, const char *what)
{
    struct sl_stream *s = ud;
    const struct sl_stream_owner *owner = s->owner;
    if (s->state == SL_STREAM_RUNNING) {
        bool complete = sl_ingest_end(&s->ingest, err, what);
        s->state = complete ? SL_STREAM_DONE : SL_STREAM_FAILED;
    } else if (s->reply_status != 0 && err == SL_OK) {
        s->state = s->reply_status < 400 ? SL_STREAM_DONE : SL_STREAM_FAILED;
        if (owner)
            owner->on_reply(s->owner_ud, s, s->reply_status, sl_buf_cstr(&s->reply_head),
                            sl_buf_ptr(&s->reply), sl_buf_size(&s->reply));
    } else {
        s->state = SL_STREAM_FAILED;
        if (owner)
            owner->on_fail(s->owner_ud, s, err, what);
    }
    producer_gone(s);
}

int sl_stream_start(uv_loop_t *loop, struct sl_upstream_transport *t,
                    const struct sl_upstream_send *send, const struct sl_stream_opts *opts,
                    const struct sl_stream_owner *owner, void *owner_ud, struct sl_stream **out)
{
    struct sl_stream *s = sl_calloc(1, sizeof *s);
    if (s == NULL)
        return SL_ENOMEM;
    s->log = &s->log_mem;
    sl_log_init(s->log, opts->max_log_bytes);
    sl_stream_new_id(s->id);
    s->state = SL_STREAM_STARTING;
    s->loop = loop;
    s->t = t;
    s->upstream = t->name;
    s->created = (int64_t)time(NULL);
    s->owner = owner;
    s->owner_ud = owner_ud;
    s->opts = *opts;
    sl_buf_init(&s->reply, opts->max_reply_bytes);
    sl_buf_init(&s->reply_head, 64 * 1024);
    s->refs = 2; /* the caller's and the producer's */
    if (loop) {
        uv_timer_init(loop, &s->stall);
        s->stall.data = s;
        s->stall_init = true;
    }
    static const struct sl_upstream_cbs cbs = {on_head, on_data, on_end};
    int rc = t->start(t, send, &cbs, s, &s->up);
    if (rc != SL_OK) {
        s->refs = 1;
        sl_stream_unref(s); /* closes the timer, then frees */
        return rc;
    }
    s->pnext = producing;
    if (producing)
        producing->pprev = s;
    producing = s;
    *out = s;
    return SL_OK;
}

void sl_stream_cancel_all(void)
{
    while (producing) {
        struct sl_stream *s = producing;
        const struct sl_stream_owner *owner = s->owner;
        void *ud = s->owner_ud;
        s->owner = NULL;
        sl_stream_ref(s);
        sl_stream_cancel(s);
        if (producing == s) { /* ending on its own: stop it all the same */
            s->t->cancel(s->up);
            producer_gone(s);
        }
        if (owner)
            owner->on_fail(ud, s, SL_ECLOSED, "sluice is shutting down");
        sl_stream_unref(s);
    }
}

void sl_stream_cancel(struct sl_stream *s)
{
    if (s->up == NULL || sl_log_ended(s->log))
        return; /* already over, or ending on its own */
    s->t->cancel(s->up);
    if (s->state == SL_STREAM_RUNNING && !sl_log_ended(s->log)) {
        struct sl_buf b;
        sl_buf_init(&b, 512);
        /* An error event passes the log's bound: only SL_ENOMEM can stop it,
         * and the log's end still tells the reader the answer stopped. */
        if (sl_error_render_code(&b, "cancelled", "stream cancelled", NULL, "cancelled") == SL_OK &&
            sl_log_append(s->log, SL_EV_ERROR, 0, sl_buf_ptr(&b), sl_buf_size(&b), "", 0, NULL) !=
                SL_OK)
            s->state = SL_STREAM_CANCELLED;
        sl_buf_free(&b);
        sl_log_end(s->log);
    }
    s->state = SL_STREAM_CANCELLED;
    producer_gone(s);
}
