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

/* One dispatched event. Pointers are borrowed (from the decoder, or data
 * from the caller's input): valid until the next call on the decoder. */
struct sl_sse_event {
    const char *data; /* data lines joined by "\n" (no final "\n") */
    size_t data_len;
    const char *type; /* the event field, "" when absent (meaning "message") */
    size_t type_len;
    const char *id; /* the last event id so far (WHATWG: persists across events) */
    size_t id_len;
    bool id_set;      /* this event block carried a valid id field */
    int64_t retry_ms; /* a valid retry field in this block, else -1 */
};

struct sl_sse_decoder {
    /* private */
    struct sl_buf line; /* an incomplete line split across feeds */
    struct sl_buf data; /* data lines joined by "\n", once copied */
    struct sl_buf type; /* the event type buffer */
    struct sl_buf id;   /* the last event id buffer (persists across events) */
    const char *borrow; /* the block's only data line, still in the caller's input */
    size_t borrow_len;
    bool saw_data;    /* a data field arrived in this block */
    bool id_in_block; /* a valid id field arrived in this block */
    int64_t retry_ms; /* a valid retry field in this block, else -1 */
    bool dispatched;  /* an event was returned: reset the block on the next call */
    bool after_cr;    /* the last input byte was a CR ending a line: skip one LF */
    bool bom_done;    /* the stream's first bytes were checked for a BOM */
    uint8_t bom_seen; /* BOM bytes matched so far, while !bom_done */
    int err;          /* sticky: a failed decoder keeps failing until reset */
    size_t max_event_bytes;
};

/* Starts a decoder whose lines and events are at most max_event_bytes.
 * Allocates nothing until a line is split across feeds or an event has more
 * than one data line; each of its four buffers then holds at most
 * max_event_bytes. */
void sl_sse_decoder_init(struct sl_sse_decoder *d, size_t max_event_bytes);
/* Frees the buffers; the decoder must be initialised again before reuse. */
void sl_sse_decoder_free(struct sl_sse_decoder *d);
/* Back to the state of a fresh decoder (BOM check, no last event id, no
 * error), keeping the allocations. */
void sl_sse_decoder_reset(struct sl_sse_decoder *d);

/* Reads in[0..len) up to and including the next event dispatch.
 * Returns 1 with *ev filled and *consumed = bytes used (call again with the
 * rest); 0 when all input was used without a complete event (*consumed ==
 * len); SL_ETOOBIG when a line or an event's data passes max_event_bytes,
 * SL_ENOMEM (*consumed then says how far it read). After an error every call
 * returns the same error until sl_sse_decoder_reset.
 * The event's pointers are borrowed: data may point into in[] (when its
 * one data line lay wholly in this input) or into the decoder, type and id
 * into the decoder; all are valid until the next call on the decoder, as
 * long as in[] is. Blocks with no data field dispatch nothing (WHATWG), but
 * their id field still sets the last event id. Bytes are not checked as
 * UTF-8: invalid sequences pass through unchanged. */
SL_WARN_UNUSED int sl_sse_decoder_next(struct sl_sse_decoder *d, const char *in, size_t len,
                                       size_t *consumed, struct sl_sse_event *ev);

/* The stream ended: WHATWG drops an event that never saw its blank line.
 * Returns true when such an incomplete event was dropped that had data (a
 * data field, or an unterminated line with the field name "data"), so the
 * caller can tell a cut stream. The decoder is then ready for a new stream
 * (a reconnect): it checks for a BOM again and keeps the last event id. */
bool sl_sse_decoder_end(struct sl_sse_decoder *d);

#endif
