/* render.h - a logged event as a client sees it, sans-I/O.
 * Owns: the OpenAI face's SSE (the upstream chunk as it came, "id: N"),
 * and the stream face's compact events (start, delta, reasoning, tool_call,
 * metrics, done, error) as SSE or as (name, data) for the WebSocket.
 * Does not own: reading the log, sockets. */
#ifndef SL_FACE_RENDER_H
#define SL_FACE_RENDER_H

#include <stdbool.h>

#include "core/buf.h"
#include "stream/log.h"

enum sl_render_format {
    SL_RENDER_OPENAI,  /* chat.completion.chunk objects, error objects, [DONE] */
    SL_RENDER_COMPACT, /* the stream face's named events */
};

struct sl_render_ctx {
    const char *stream_id;
    bool show_usage;   /* OpenAI face: the client asked for include_usage */
    bool multi_choice; /* n > 1: compact events carry "choice" */
};

/* The compact event for ev: *name ("delta", "done", ...) and its data
 * JSON appended to data. Returns 1 when there is an event, 0 when ev says
 * nothing on this face (a finish with no text, a non-chunk), or an SL_E*.
 * For a usage event (the end), *metrics gets the metrics JSON too (appended
 * to metrics, which may be NULL). */
SL_WARN_UNUSED int sl_render_compact(const struct sl_render_ctx *ctx, const struct sl_ev *ev,
                                     const char **name, struct sl_buf *data,
                                     struct sl_buf *metrics);

/* Appends the SSE bytes of ev in fmt (possibly none). */
SL_WARN_UNUSED int sl_render_sse(const struct sl_render_ctx *ctx, enum sl_render_format fmt,
                                 const struct sl_ev *ev, struct sl_buf *out);

/* The bytes that end a stream on the face: "data: [DONE]" on the OpenAI
 * face, nothing on the compact one (its done event ends it). */
const char *sl_render_end(enum sl_render_format fmt);

#endif
