/* ingest.h - an upstream's SSE bytes into a stream log, sans-I/O.
 * Owns: running the SSE decoder and the chunk reader over upstream bytes,
 * deciding each chunk's event type, dropping what the OpenAI face must not
 * pass on (comments, named events, non-chunk JSON, [DONE]), counting tokens
 * and timing them (time passed in), and ending the log with an error event
 * when the answer is cut, stalled, broken or ends without a finish_reason.
 * Does not own: sockets, the upstream request, rendering. */
#ifndef SL_STREAM_INGEST_H
#define SL_STREAM_INGEST_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "sse/decoder.h"
#include "stream/log.h"

struct sl_ingest_stats {
    uint64_t start_ms;       /* when the request went upstream */
    uint64_t first_token_ms; /* 0 until the first token */
    uint64_t last_token_ms;
    uint64_t tokens;       /* content, reasoning and tool-call deltas */
    uint64_t max_gap_ms;   /* the longest gap between tokens */
    int64_t prompt_tokens; /* from the upstream's usage, -1 if none */
    int64_t completion_tokens;
};

struct sl_ingest {
    struct sl_sse_decoder dec;
    struct sl_log *log; /* borrowed */
    struct sl_buf text; /* decoded text of the current chunk */
    struct sl_ingest_stats stats;
    uint32_t finishes;      /* chunks with a finish_reason */
    char finish_reason[32]; /* the last one seen (choice 0 first) */
    bool saw_usage;         /* a usage event is in the log */
    bool saw_done;          /* data: [DONE] arrived */
    bool saw_error;         /* an error event is in the log */
    bool broken;            /* invalid input: nothing more is read */
};

/* Starts ingesting into log; events and lines are bounded by max_event_bytes. */
void sl_ingest_init(struct sl_ingest *in, struct sl_log *log, size_t max_event_bytes,
                    uint64_t now_ms);
void sl_ingest_free(struct sl_ingest *in);

/* Feeds upstream body bytes. SL_OK; SL_EPROTO when the stream turned out
 * broken (an error event was logged: stop the upstream and call
 * sl_ingest_end); SL_ETOOBIG/SL_ENOMEM when the log refused an event (the
 * same: stop and end). */
SL_WARN_UNUSED int sl_ingest_feed(struct sl_ingest *in, const char *p, size_t n, uint64_t now_ms);

/* The upstream answer ended with err (SL_OK, SL_ECLOSED, SL_ETIMEDOUT...;
 * what says why). Logs an error event unless the answer is complete, then
 * ends the log. Returns true when the answer is complete. */
bool sl_ingest_end(struct sl_ingest *in, int err, const char *what);

/* The summary a usage event carries as its text, as JSON:
 * {"finish_reason":..,"metrics":{"ttft_ms","tokens","tokens_per_s"}}. */
SL_WARN_UNUSED int sl_ingest_summary(const struct sl_ingest *in, struct sl_buf *out);

/* Logs sluice's own error event ({"error":{...}}) for status and message.
 * An error event may pass the log's bound by SL_LIMIT_LOG_ERROR_BYTES, so
 * only SL_ENOMEM, a message that long, or an error already in the log
 * (SL_EINVAL: an error is the last event) can fail it. */
int sl_ingest_log_error(struct sl_log *log, int status, const char *message);

#endif
