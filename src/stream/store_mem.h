/* store_mem.h - the in-memory store, the default (see store.h). */
#ifndef SL_STREAM_STORE_MEM_H
#define SL_STREAM_STORE_MEM_H

#include <uv.h>

#include "stream/store.h"

struct sl_store_mem;

struct sl_store_mem_opts {
    int64_t retention_s; /* finished streams kept this long */
    size_t max_bytes;    /* log bytes of finished streams held at most */
    uint64_t sweep_ms;   /* how often grace and retention are checked */
};

/* A store whose sweep runs on loop every opts->sweep_ms. With loop NULL
 * there is no timer and no clock: time is what the last
 * sl_store_mem_sweep said (tests step it by hand). NULL on SL_ENOMEM. */
struct sl_store_mem *sl_store_mem_new(uv_loop_t *loop, const struct sl_store_mem_opts *opts);
struct sl_store *sl_store_mem_base(struct sl_store_mem *st);
/* Applies grace, retention and the byte bound as of now_ms. */
void sl_store_mem_sweep(struct sl_store_mem *st, uint64_t now_ms);
/* Streams held. */
size_t sl_store_mem_count(const struct sl_store_mem *st);
/* Releases every stream; freed after the loop closes the sweep timer. */
void sl_store_mem_free(struct sl_store_mem *st);

#endif
