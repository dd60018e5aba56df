/* follow.h - one client following a stream through the store: its own
 * cursor, its own bound on unsent bytes, each event rendered for its face,
 * written to a sink (an SSE response, a WebSocket). */
#ifndef SL_FACE_FOLLOW_H
#define SL_FACE_FOLLOW_H

#include "face/render.h"
#include "http/server.h"
#include "stream/store.h"

struct sl_follower;

/* Where rendered bytes go. */
struct sl_follow_sink {
    /* Sends bytes; SL_ECLOSED when the client is gone (the follower then
     * stops itself: do not call sl_follow_stop). */
    int (*write)(void *ud, const char *p, size_t n);
    /* Bytes queued and not yet on the wire. */
    size_t (*pending)(void *ud);
    /* Everything was sent: end the response. The follower is freed after. */
    void (*end)(void *ud);
    /* The store failed (err): close the client's connection. The follower
     * is freed after. */
    void (*fail)(void *ud, int err);
    /* Optional, in place of write: p has SL_HTTP_FRAME_HEAD writable bytes
     * before it and SL_HTTP_FRAME_TAIL after p[n - 1], for framing. */
    int (*write_framed)(void *ud, char *p, size_t n);
};

struct sl_follow_opts {
    enum sl_render_format format;
    struct sl_render_ctx ctx; /* ctx.stream_id may be NULL: the id followed */
    /* Bytes queued for the client before waiting: rendering stops there,
     * so at most one event past it is queued. */
    size_t max_unsent;
    /* The WebSocket renders events itself: when set, each event goes here
     * instead of sl_render_sse (return an SL_E* to stop). */
    int (*render)(void *ud, const struct sl_ev *ev, struct sl_buf *out);
};

/* Follows stream id after after_seq. Counts as a listener of the stream
 * until it ends or stops. SL_ENOMEM; store errors come through sink->fail. */
SL_WARN_UNUSED int sl_follow_start(struct sl_store *store, const char *id, uint64_t after_seq,
                                   const struct sl_follow_opts *opts,
                                   const struct sl_follow_sink *sink, void *sink_ud,
                                   struct sl_follower **out);
/* This thread serves no more followers: frees what they shared. */
void sl_follow_thread_done(void);

/* The sink drained below max_unsent / 2: go on. */
void sl_follow_drain(struct sl_follower *f);
/* The client left: stop following (no sink callback runs after this). */
void sl_follow_stop(struct sl_follower *f);

/* Follows stream id into ex, whose SSE response head has been sent: the
 * exchange ends with the stream (or is closed when the store fails); a
 * client that leaves stops the follower. It waits at opts->max_unsent or at
 * half of ex's write bound, whichever is less. SL_ENOMEM, or the store's
 * error (then ex is untouched and still the caller's). */
SL_WARN_UNUSED int sl_follow_sse(struct sl_store *store, const char *id, uint64_t after_seq,
                                 const struct sl_follow_opts *opts, struct sl_http_exchange *ex);

#endif
