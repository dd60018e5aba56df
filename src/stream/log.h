/* log.h - a stream's log: append-only, typed events numbered 1, 2, 3 ...
 * Owns: the events' bytes (in blocks), their numbering, bounds on the log's
 * size, cursors that read it in order, watchers told of each append, the end
 * of the log, and trimming events no reader needs. Every byte a client gets
 * is read from a log. Does not own: where events come from, how they are
 * rendered, timers, sockets. Sans-I/O: no clock, no loop. */
#ifndef SL_STREAM_LOG_H
#define SL_STREAM_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

enum sl_ev_type {
    SL_EV_START = 1, /* the role chunk: the answer begins */
    SL_EV_CONTENT,   /* a content (or completions text) delta; text = decoded */
    SL_EV_REASONING, /* a reasoning delta; text = decoded */
    SL_EV_TOOL_CALL, /* a tool-call delta; text = the raw tool_calls JSON */
    SL_EV_FINISH,    /* a choice finished; text = finish_reason */
    SL_EV_USAGE,     /* token usage; always the last event of a finished log */
    SL_EV_ERROR,     /* the answer failed; text = the error object JSON */
    SL_EV_BODY,      /* a whole non-streaming response body (raw) */
    SL_EV_OTHER,     /* a chunk with none of the above (kept for pass-through) */
};

/* One event, borrowed from the log: valid until the log trims it or is freed. */
struct sl_ev {
    uint64_t seq;
    enum sl_ev_type type;
    uint32_t choice;
    const char *raw; /* the upstream chunk JSON as received; "" when sluice made it */
    size_t raw_len;
    const char *text;
    size_t text_len;
};

struct sl_log_block;
struct sl_log_watcher;

/* A log. Its fields are private; it is public so that a stream can hold
 * its log in its own allocation (one pointer and one cache miss less per
 * token). What an append touches comes first. */
struct sl_log {
    struct sl_log_block *tail;
    uint64_t last_seq;
    size_t bytes, max_bytes;
    struct sl_log_watcher *watchers;
    const struct sl_ev *appended;       /* while watchers are told of an append */
    struct sl_log_watcher *notify_next; /* the next watcher notify will tell */
    uint64_t notify_round;              /* bumped by each notify: nesting shows */
    size_t next_block;
    bool ended;
    bool failed; /* an error event is in: nothing but the end may follow */
    struct sl_log_block *head;
    uint64_t first_seq; /* the oldest event still held */
    uint64_t gen;       /* bumped by each trim that frees a block */
    /* Where the last read stopped: a reader that comes back for the next
     * event (the usual case) needs no seek. */
    uint64_t hint_seq;
    struct sl_log_block *hint_blk;
    size_t hint_off;
    uint64_t hint_gen;
};

/* A reader's position: the next event it will read. */
struct sl_log_cursor {
    uint64_t next_seq;
    struct sl_log_block *blk; /* private: a cached position, valid while */
    size_t off;               /* the log's trim generation is gen */
    uint64_t gen;
};

/* Told after each append and when the log ends. */
typedef void (*sl_log_watch_cb)(struct sl_log_watcher *w, struct sl_log *log);
struct sl_log_watcher {
    sl_log_watch_cb cb;
    void *data;
    struct sl_log_watcher *prev, *next; /* private */
};

/* Makes an empty log whose events may take at most max_bytes (then appends
 * fail with SL_ETOOBIG). NULL on SL_ENOMEM. */
struct sl_log *sl_log_new(size_t max_bytes);
/* Frees the log and its events; watchers must have been removed. */
void sl_log_free(struct sl_log *log);
/* The same for a log in the caller's memory: an empty log of max_bytes;
 * sl_log_fini frees its events (not log). */
void sl_log_init(struct sl_log *log, size_t max_bytes);
void sl_log_fini(struct sl_log *log);

/* Appends one event (copies raw and text) and tells the watchers.
 * *seq gets its number (may be NULL). SL_EINVAL after sl_log_end or after
 * an SL_EV_ERROR event (an error is the last event: only sl_log_end may
 * follow); SL_ETOOBIG past max_bytes, except that the error event may pass
 * it by up to SL_LIMIT_LOG_ERROR_BYTES, so that a full log still says why
 * it stops. A watcher may append, end or unwatch from inside its
 * callback (see notify in log.c). */
SL_WARN_UNUSED int sl_log_append(struct sl_log *log, enum sl_ev_type type, uint32_t choice,
                                 const char *raw, size_t raw_len, const char *text, size_t text_len,
                                 uint64_t *seq);
/* While the watchers are told of an append: the event just appended (raw
 * whole, borrowed from the appender's input: the same bytes a read gives
 * back), so that a reader that is caught up needs no read. NULL when they
 * are told of the end, and outside a watcher callback. */
const struct sl_ev *sl_log_appended(const struct sl_log *log);

/* No more events: tells the watchers. */
void sl_log_end(struct sl_log *log);
bool sl_log_ended(const struct sl_log *log);
/* The number of the last event (0 when empty). */
uint64_t sl_log_last_seq(const struct sl_log *log);
/* Bytes held by the events (what max_bytes bounds). */
size_t sl_log_bytes(const struct sl_log *log);

/* Positions c to read the event after after_seq (0: from the start).
 * SL_ENOTFOUND when that event was trimmed; SL_EINVAL when after_seq is
 * past the last event. */
SL_WARN_UNUSED int sl_log_cursor_init(struct sl_log *log, struct sl_log_cursor *c,
                                      uint64_t after_seq);
/* Reads the next event: 1 with *ev, 0 when there is none yet (or the log
 * ended: see sl_log_ended), SL_ENOTFOUND when it was trimmed away.
 * ev->raw points into the log or into scratch (rebuilt there): valid until
 * the log trims it or scratch is used again. */
SL_WARN_UNUSED int sl_log_read(struct sl_log *log, struct sl_log_cursor *c, struct sl_ev *ev,
                               struct sl_buf *scratch);
/* Reads up to max events (at most 256) into evs; *n gets how many. SL_OK
 * (also with *n == 0 at the end), SL_ENOTFOUND when the next was trimmed,
 * SL_ETOOBIG/SL_ENOMEM when scratch cannot hold the rebuilt chunks. */
SL_WARN_UNUSED int sl_log_read_batch(struct sl_log *log, struct sl_log_cursor *c, struct sl_ev *evs,
                                     size_t max, struct sl_buf *scratch, size_t *n);

/* Frees every whole block of events numbered below before_seq (the caller
 * trims up to its slowest reader). Cursors stay valid: they find their
 * place again by number. */
void sl_log_trim(struct sl_log *log, uint64_t before_seq);

void sl_log_watch(struct sl_log *log, struct sl_log_watcher *w);
void sl_log_unwatch(struct sl_log *log, struct sl_log_watcher *w);

#endif
