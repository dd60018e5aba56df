/* decoder.h - Server-Sent Events decoder, sans-I/O, by the WHATWG rules.
 * Owns: line splitting (LF, CRLF, CR, split at any byte), a leading BOM,
 * comments, fields (data, event, id, retry; unknown ignored; no colon means
 * an empty value; one leading space after the colon dropped), multi-line data,
 * event dispatch on a blank line, the last event id, and bounds on line and
 * event size. Does not own: sockets, JSON, what an event means. */
#ifndef SL_SSE_DECODER_H
#define SL_SSE_DECODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

/* One dispatched event. Pointers are borrowed from the decoder: valid until
 * the next call on it. */
struct sl_sse_event {
    const char *data; /* data lines joined by "\n" (no final "\n") */
    size_t data_len;
    const char *type; /* the event field, "" when absent (meaning "message") */
    size_t type_len;
    const char *id; /* the last event id so far (WHATWG: persists across events) */
    size_t id_len;
    bool id_set;      /* this event block carried an id field */
    int64_t retry_ms; /* a valid retry field in this block, else -1 */
};

struct sl_sse_decoder {
    /* private */
    struct sl_buf line; /* the current incomplete line */
    struct sl_buf data; /* data of the event being assembled */
    struct sl_buf type;
    struct sl_buf id; /* last event id buffer */
    struct sl_buf pending_id;
    bool saw_data; /* a data field arrived in this block */
    bool id_in_block;
    int64_t retry_ms;
    bool after_cr; /* last byte was CR: a following LF belongs to it */
    bool bom_done; /* the first bytes were checked for a BOM */
    size_t bom_seen;
    size_t max_event_bytes;
};

/* Starts a decoder whose lines and events are at most max_event_bytes. */
void sl_sse_decoder_init(struct sl_sse_decoder *d, size_t max_event_bytes);
void sl_sse_decoder_free(struct sl_sse_decoder *d);

/* Reads in[0..len) up to and including the next event dispatch.
 * Returns 1 with *ev filled and *consumed = bytes used (call again with the
 * rest); 0 when all input was used without a complete event (*consumed ==
 * len); SL_ETOOBIG when a line or event passes max_event_bytes (the decoder
 * must then be reset or dropped). Blocks with no data field dispatch nothing
 * (WHATWG), but their id field still sets the last event id. */
SL_WARN_UNUSED int sl_sse_decoder_next(struct sl_sse_decoder *d, const char *in, size_t len,
                                       size_t *consumed, struct sl_sse_event *ev);

/* The stream ended: WHATWG drops an event that never saw its blank line.
 * Returns true when such an incomplete event (data received) was dropped, so
 * the caller can tell a cut stream. */
bool sl_sse_decoder_end(struct sl_sse_decoder *d);

#endif
