/* stream.h - a generation: an id, a log, a state, its upstream request.
 * Owns: starting the upstream request, feeding its answer through the
 * ingest pipeline into the log, the state (running, done, cancelled,
 * failed), cancel, and the stream's lifetime (references held by the
 * producer and by each follower). Does not own: how clients read the log
 * (face/), which upstream is chosen (the caller passes the transport). */
#ifndef SL_STREAM_STREAM_H
#define SL_STREAM_STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "stream/ingest.h"
#include "stream/log.h"
#include "stream/transport.h"

/* 128 random bits in URL-safe base64 without padding. */
#define SL_STREAM_ID_CHARS 22

enum sl_stream_state {
    SL_STREAM_STARTING, /* the upstream has not answered yet */
    SL_STREAM_RUNNING,
    SL_STREAM_DONE,
    SL_STREAM_CANCELLED,
    SL_STREAM_FAILED,
};

struct sl_stream;

/* How the upstream's first answer goes to whoever started the stream. One
 * of the three is called, once; then the owner is forgotten. */
struct sl_stream_owner {
    /* 2xx with an event stream: the log is filling; follow it. */
    void (*on_open)(void *ud, struct sl_stream *s, const struct sl_upstream_header *hdrs, size_t n);
    /* Any other complete answer (an error status, a JSON body): pass it on.
     * header_lines: the upstream's end-to-end headers, "Name: value\r\n"
     * each (Content-Type among them). */
    void (*on_reply)(void *ud, struct sl_stream *s, int status, const char *header_lines,
                     const char *body, size_t len);
    /* No answer (refused, timed out, not HTTP): err and what say why. */
    void (*on_fail)(void *ud, struct sl_stream *s, int err, const char *what);
};

struct sl_stream_opts {
    size_t max_log_bytes;
    size_t max_event_bytes;
    size_t max_reply_bytes; /* a non-stream answer's body */
    uint64_t stall_ms;      /* an event stream silent this long is cut (0: never) */
};

struct sl_stream {
    /* What every token touches first, together. */
    enum sl_stream_state state;
    int refs;
    struct sl_upstream_req *up;
    struct sl_log *log; /* &log_mem */
    uv_loop_t *loop;
    uint64_t last_data_ms; /* loop time of the upstream's last bytes */
    bool ingest_on;        /* s->ingest was initialised */
    struct sl_log log_mem;
    struct sl_ingest ingest;
    /* The rest. */
    char id[SL_STREAM_ID_CHARS + 1];
    const char *upstream; /* the transport's name */
    int64_t created;      /* unix seconds */
    uint64_t grace_ms;    /* generation goes on this long with nobody listening */
    bool show_usage;      /* the creator asked for usage: replays show it too */
    bool multi_choice;    /* n > 1: compact events carry "choice" */
    /* private */
    struct sl_upstream_transport *t;
    const struct sl_stream_owner *owner;
    void *owner_ud;
    struct sl_stream_opts opts;
    struct sl_buf reply;
    int reply_status;
    struct sl_buf reply_head; /* header lines kept until the body is whole */
    uv_timer_t stall;         /* live while the event stream runs */
    bool stall_init;
    struct sl_stream *pprev, *pnext; /* streams whose upstream request runs */
};

/* Fills id with a fresh stream id (NUL-terminated). */
void sl_stream_new_id(char id[SL_STREAM_ID_CHARS + 1]);

/* Starts a stream: sends the request through t and reports the answer to
 * owner. The caller holds one reference (sl_stream_unref). SL_ENOMEM, or
 * the transport's error (then nothing was started and no callback runs). */
SL_WARN_UNUSED int sl_stream_start(uv_loop_t *loop, struct sl_upstream_transport *t,
                                   const struct sl_upstream_send *send,
                                   const struct sl_stream_opts *opts,
                                   const struct sl_stream_owner *owner, void *owner_ud,
                                   struct sl_stream **out);

void sl_stream_ref(struct sl_stream *s);
/* Drops a reference; the stream is freed when none is left (the upstream
 * request, while it runs, holds one of its own). */
void sl_stream_unref(struct sl_stream *s);

/* Stops the upstream request at once (the upstream sees the connection
 * close) and ends the log with the cancelled error event. Nothing when the
 * stream already ended. */
void sl_stream_cancel(struct sl_stream *s);

const char *sl_stream_state_name(enum sl_stream_state st);

/* Shutting down: cancels every stream of this thread whose upstream request
 * still runs; an owner still waiting for the first answer gets on_fail. */
void sl_stream_cancel_all(void);

#endif
