/* store.h - where streams live between requests: the asynchronous store
 * interface. Every call completes through a callback and may fail (timed
 * out, unavailable), because the Redis store (a later issue, hiredis 0.14,
 * whose async API has no timeouts of its own) implements the same
 * interface; the in-memory store (store_mem.c) is the default and calls
 * back before it returns. Owns: looking streams up by id, reading a log
 * from a sequence number, subscribing to a log, setting state, cancelling,
 * and the answer for ids no longer held (410) or never issued (404).
 * Does not own: producing events (stream.c), rendering (face/). */
#ifndef SL_STREAM_STORE_H
#define SL_STREAM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream/log.h"
#include "stream/stream.h"

struct sl_store;

/* What a lookup tells. Strings are borrowed for the callback. */
struct sl_store_info {
    const char *id;
    enum sl_stream_state state;
    const char *upstream;
    int64_t created;
    uint64_t last_seq;
    bool ended; /* the log has its last event */
    const char *read_token;
    bool show_usage;   /* the creator asked for usage */
    bool multi_choice; /* n > 1 */
};

/* A subscription: cb runs after the stream's log grows or ends, until
 * unsubscribed. The caller owns the struct. */
struct sl_store_sub;
typedef void (*sl_store_sub_cb)(struct sl_store_sub *sub);
struct sl_store_sub {
    sl_store_sub_cb cb;
    void *data;
    /* Set during cb when the store has the event that woke it at hand (the
     * memory store: the one just appended), borrowed for the call; a reader
     * whose next event it is may take it instead of reading. Else NULL. */
    const struct sl_ev *ev;
    /* private */
    struct sl_log_watcher w;
    struct sl_stream *s;
};

/* Errors any call may give: SL_ENOTFOUND (never issued, or forgotten),
 * SL_EGONE (issued, no longer held: answer 410), SL_ETIMEDOUT and
 * SL_EUNAVAIL (the store did not answer). */
typedef void (*sl_store_info_cb)(void *ud, int err, const struct sl_store_info *info);
/* evs[0..n) in order from after_seq+1; borrowed for the callback. */
typedef void (*sl_store_read_cb)(void *ud, int err, const struct sl_ev *evs, size_t n, bool ended);
typedef void (*sl_store_done_cb)(void *ud, int err);

struct sl_store_ops {
    /* Registers a running stream under s->id (the store takes a reference). */
    void (*add)(struct sl_store *st, struct sl_stream *s, sl_store_done_cb cb, void *ud);
    void (*get)(struct sl_store *st, const char *id, sl_store_info_cb cb, void *ud);
    /* At most max events after after_seq. SL_EINVAL when after_seq is past
     * the last event; SL_EGONE when the events were evicted. */
    void (*read)(struct sl_store *st, const char *id, uint64_t after_seq, size_t max,
                 sl_store_read_cb cb, void *ud);
    void (*subscribe)(struct sl_store *st, const char *id, struct sl_store_sub *sub,
                      sl_store_done_cb cb, void *ud);
    void (*unsubscribe)(struct sl_store *st, struct sl_store_sub *sub);
    /* Stops the stream's upstream request and ends its log as cancelled;
     * nothing when it already ended. */
    void (*cancel)(struct sl_store *st, const char *id, sl_store_done_cb cb, void *ud);
    /* A listener came (+1) or left (-1): the store runs the grace timer of
     * a stream nobody listens to. */
    void (*listeners)(struct sl_store *st, const char *id, int delta);
};

struct sl_store {
    const struct sl_store_ops *ops;
};

#endif
