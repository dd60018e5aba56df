/* store_defer.h - a store that answers every call on a later loop turn,
 * over another store: the shape a remote store (Redis) has, for tests of
 * the callers (`--store-defer`). Owns: queuing each call with copies of its
 * arguments and running it against the inner store on the next loop turn,
 * and telling subscribers of news on a later turn too, without the event
 * at hand (sub->ev is NULL). Does not own: streams, the inner store. */
#ifndef SL_STREAM_STORE_DEFER_H
#define SL_STREAM_STORE_DEFER_H

#include <uv.h>

#include "stream/store.h"

struct sl_store_defer;

/* A deferring store over inner (borrowed: it must outlive this one).
 * NULL on SL_ENOMEM. */
struct sl_store_defer *sl_store_defer_new(uv_loop_t *loop, struct sl_store *inner);
struct sl_store *sl_store_defer_base(struct sl_store_defer *st);
/* Calls still waiting for their turn. */
size_t sl_store_defer_pending(const struct sl_store_defer *st);
/* Answers every waiting call with SL_EUNAVAIL (callers free their
 * contexts), and every later one at once; freed after the loop closes its
 * handle. Free it before the inner store. */
void sl_store_defer_free(struct sl_store_defer *st);

#endif
