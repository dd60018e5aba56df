/* follow.c - a client's cursor over a stream's log, rendered as OpenAI
 * chunks. Owns: reading in order, batching what is ready into one write,
 * pausing at the client's bound and going on when its socket drains,
 * [DONE] and the end of the body, and telling the face when the client
 * leaves. Does not own: the log, the stream's fate (the face decides). */
#include "face/follow.h"

#include <stdlib.h>
#include <string.h>

/* Bytes rendered before they are handed to the socket in one write. */
#define SL_FOLLOW_BATCH_BYTES (64 * 1024)

struct sl_follower {
    struct sl_stream *s;
    struct sl_http_exchange *ex;
    struct sl_log_cursor cur;
    struct sl_log_watcher watch;
    struct sl_follow_opts opts;
    sl_follow_gone_cb gone;
    void *ud;
    struct sl_buf out;
    bool pumping;
};

static void follower_free(struct sl_follower *f)
{
    sl_log_unwatch(f->s->log, &f->watch);
    sl_buf_free(&f->out);
    sl_stream_unref(f->s);
    free(f);
}

static int render(struct sl_follower *f, const struct sl_ev *ev)
{
    if (ev->type == SL_EV_USAGE && !f->opts.show_usage)
        return SL_OK;
    if (ev->raw_len == 0)
        return SL_OK;
    struct sl_buf *o = &f->out;
    int rc = sl_buf_append(o, "id: ", 4);
    if (rc == SL_OK)
        rc = sl_buf_put_u64(o, ev->seq);
    if (rc == SL_OK)
        rc = sl_buf_append(o, "\ndata: ", 7);
    if (rc == SL_OK)
        rc = sl_buf_append(o, ev->raw, ev->raw_len);
    if (rc == SL_OK)
        rc = sl_buf_append(o, "\n\n", 2);
    return rc;
}

/* Writes what is rendered. false when the client is gone (the exchange is
 * over and the follower must go). */
static bool flush(struct sl_follower *f)
{
    if (sl_buf_size(&f->out) == 0)
        return true;
    int rc = sl_http_ex_write(f->ex, sl_buf_ptr(&f->out), sl_buf_size(&f->out));
    sl_buf_reset(&f->out);
    return rc == SL_OK;
}

static void client_gone(struct sl_follower *f)
{
    f->ex = NULL;
    sl_follow_gone_cb gone = f->gone;
    void *ud = f->ud;
    struct sl_stream *s = f->s;
    sl_stream_ref(s);
    follower_free(f);
    if (gone)
        gone(ud, s);
    sl_stream_unref(s);
}

static void pump(struct sl_follower *f)
{
    if (f->pumping)
        return; /* a write inside the pump may not re-enter it */
    f->pumping = true;
    struct sl_log *log = f->s->log;
    for (;;) {
        if (sl_http_ex_pending(f->ex) + sl_buf_size(&f->out) >= f->opts.max_unsent)
            break; /* wait for the drain callback */
        struct sl_ev ev;
        int rc = sl_log_read(log, &f->cur, &ev);
        if (rc == 0)
            break;
        if (rc < 0 || render(f, &ev) != SL_OK) {
            /* Trimmed under the cursor or out of memory: cut the client
             * rather than show it a hole. */
            f->pumping = false;
            sl_http_ex_close(f->ex);
            client_gone(f);
            return;
        }
        if (sl_buf_size(&f->out) >= SL_FOLLOW_BATCH_BYTES && !flush(f)) {
            f->pumping = false;
            client_gone(f);
            return;
        }
    }
    if (!flush(f)) {
        f->pumping = false;
        client_gone(f);
        return;
    }
    if (f->opts.trim)
        sl_log_trim(log, f->cur.next_seq);
    f->pumping = false;
    if (sl_log_ended(log) && f->cur.next_seq > sl_log_last_seq(log)) {
        static const char done[] = "data: [DONE]\n\n";
        struct sl_http_exchange *ex = f->ex;
        int rc = sl_http_ex_write(ex, done, sizeof done - 1);
        f->ex = NULL;
        f->gone = NULL; /* a close after [DONE] is a normal end */
        if (rc == SL_OK)
            sl_http_ex_end(ex);
        follower_free(f);
    }
}

static void on_append(struct sl_log_watcher *w, struct sl_log *log)
{
    (void)log;
    pump(w->data);
}

static void on_drain(struct sl_http_exchange *ex, void *ud)
{
    (void)ex;
    pump(ud);
}

static void on_abort(struct sl_http_exchange *ex, void *ud)
{
    (void)ex;
    client_gone(ud);
}

int sl_follow_start(struct sl_stream *s, struct sl_http_exchange *ex, uint64_t after_seq,
                    const struct sl_follow_opts *opts, sl_follow_gone_cb gone, void *ud)
{
    struct sl_follower *f = calloc(1, sizeof *f);
    if (f == NULL)
        return SL_ENOMEM;
    int rc = sl_log_cursor_init(s->log, &f->cur, after_seq);
    if (rc != SL_OK) {
        free(f);
        return rc;
    }
    f->s = s;
    sl_stream_ref(s);
    f->ex = ex;
    f->opts = *opts;
    f->gone = gone;
    f->ud = ud;
    sl_buf_init(&f->out, SL_FOLLOW_BATCH_BYTES + 1024 * 1024 * 16);
    f->watch.cb = on_append;
    f->watch.data = f;
    sl_log_watch(s->log, &f->watch);
    sl_http_ex_set_abort_cb(ex, on_abort, f);
    sl_http_ex_set_drain_cb(ex, on_drain, f, opts->max_unsent / 2);
    pump(f);
    return SL_OK;
}
