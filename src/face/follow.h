/* follow.h - one client following a stream's log: its own cursor, its own
 * bound on unsent bytes, rendering each event for its face. */
#ifndef SL_FACE_FOLLOW_H
#define SL_FACE_FOLLOW_H

#include "http/server.h"
#include "stream/stream.h"

struct sl_follower;

struct sl_follow_opts {
    bool show_usage;   /* the client asked for stream_options.include_usage */
    size_t max_unsent; /* bytes queued for the client before sluice waits for it */
    bool trim;         /* nobody else will read what this follower has read */
};

/* Called when the client leaves before the end ([DONE] not sent). The
 * follower is gone after this returns. */
typedef void (*sl_follow_gone_cb)(void *ud, struct sl_stream *s);

/* Follows s from the event after after_seq into ex, whose response head has
 * been sent, as OpenAI chunks ("id: N" then "data: <chunk>"), ending with
 * "data: [DONE]" and the end of the body. Holds a reference on s.
 * SL_ENOMEM, or SL_ENOTFOUND when after_seq was trimmed. */
SL_WARN_UNUSED int sl_follow_start(struct sl_stream *s, struct sl_http_exchange *ex,
                                   uint64_t after_seq, const struct sl_follow_opts *opts,
                                   sl_follow_gone_cb gone, void *ud);

#endif
