/* ingest.c - upstream SSE bytes into a stream log (see ingest.h). */
#include "stream/ingest.h"

#include <string.h>

#include "oai/error.h"
#include "pipeline/chunk.h"

void sl_ingest_init(struct sl_ingest *in, struct sl_log *log, size_t max_event_bytes,
                    uint64_t now_ms)
{
    memset(in, 0, sizeof *in);
    sl_sse_decoder_init(&in->dec, max_event_bytes);
    sl_buf_init(&in->text, max_event_bytes);
    in->log = log;
    in->stats.start_ms = now_ms;
    in->stats.prompt_tokens = -1;
    in->stats.completion_tokens = -1;
}

void sl_ingest_free(struct sl_ingest *in)
{
    sl_sse_decoder_free(&in->dec);
    sl_buf_free(&in->text);
}

int sl_ingest_log_error(struct sl_log *log, int status, const char *message)
{
    struct sl_buf b;
    sl_buf_init(&b, 4096 + strlen(message) * 6);
    int rc = sl_error_render(&b, status, NULL, message, NULL);
    if (rc == SL_OK)
        rc = sl_log_append(log, SL_EV_ERROR, 0, sl_buf_ptr(&b), sl_buf_size(&b), "", 0, NULL);
    sl_buf_free(&b);
    return rc;
}

int sl_ingest_summary(const struct sl_ingest *in, struct sl_buf *out)
{
    const struct sl_ingest_stats *st = &in->stats;
    uint64_t ttft = st->tokens ? st->first_token_ms - st->start_ms : 0;
    uint64_t span = st->tokens > 1 ? st->last_token_ms - st->first_token_ms : 0;
    double tps = span > 0 ? (double)(st->tokens - 1) * 1000.0 / (double)span : 0.0;
    int rc = sl_buf_puts(out, "{\"finish_reason\":");
    if (rc == SL_OK)
        rc = in->finish_reason[0]
                 ? sl_buf_put_json_str(out, in->finish_reason, strlen(in->finish_reason))
                 : sl_buf_puts(out, "null");
    if (rc == SL_OK)
        rc = sl_buf_printf(out,
                           ",\"metrics\":{\"ttft_ms\":%llu,\"tokens\":%llu,\"tokens_per_s\":%.1f}}",
                           (unsigned long long)ttft, (unsigned long long)st->tokens, tps);
    return rc;
}

static int log_usage(struct sl_ingest *in, const char *raw, size_t len)
{
    struct sl_buf sum;
    sl_buf_init(&sum, 1024);
    int rc = sl_ingest_summary(in, &sum);
    if (rc == SL_OK)
        rc = sl_log_append(in->log, SL_EV_USAGE, 0, raw, len, sl_buf_ptr(&sum), sl_buf_size(&sum),
                           NULL);
    sl_buf_free(&sum);
    if (rc == SL_OK)
        in->saw_usage = true;
    return rc;
}

static void count_token(struct sl_ingest *in, uint64_t now)
{
    struct sl_ingest_stats *st = &in->stats;
    if (st->tokens == 0)
        st->first_token_ms = now;
    else if (now - st->last_token_ms > st->max_gap_ms)
        st->max_gap_ms = now - st->last_token_ms;
    st->last_token_ms = now;
    st->tokens++;
}

/* One chunk's data: its type, its decoded text, and the log entry. */
static int ingest_chunk(struct sl_ingest *in, const char *data, size_t len, uint64_t now)
{
    struct sl_chunk ch;
    int rc = sl_chunk_read(data, len, &ch);
    switch (ch.kind) {
    case SL_CHUNK_DONE:
        in->saw_done = true;
        return SL_OK;
    case SL_CHUNK_OTHER:
        return SL_OK; /* not a chunk: OpenAI clients choke on it (DESIGN.md 2) */
    case SL_CHUNK_INVALID:
        (void)rc;
        in->broken = true;
        in->saw_error = true;
        rc = sl_ingest_log_error(in->log, 502, "the upstream sent a chunk that is not valid JSON");
        return rc == SL_OK ? SL_EPROTO : rc;
    case SL_CHUNK_ERROR:
        /* The first error ends the answer: nothing after it is read (an
         * upstream that floods error chunks fills no log). */
        in->broken = in->saw_error = true;
        rc = sl_log_append(in->log, SL_EV_ERROR, 0, data, len, "", 0, NULL);
        if (rc == SL_ETOOBIG)
            rc = sl_ingest_log_error(in->log, 502, "the upstream sent an error too big to keep");
        return rc == SL_OK ? SL_EPROTO : rc;
    case SL_CHUNK_DATA:
        break;
    }
    if (ch.has_usage) {
        in->stats.prompt_tokens = ch.prompt_tokens;
        in->stats.completion_tokens = ch.completion_tokens;
    }
    enum sl_ev_type type = SL_EV_OTHER;
    uint32_t choice = 0;
    sl_buf_reset(&in->text);
    if (ch.nchoices == 0) {
        if (ch.has_usage)
            return log_usage(in, data, len);
        type = SL_EV_OTHER;
    } else {
        const struct sl_chunk_choice *c = &ch.choices[0];
        choice = c->index;
        const struct sl_span *text = NULL;
        if (c->has_tool_calls) {
            type = SL_EV_TOOL_CALL;
            rc = sl_buf_append(&in->text, c->tool_calls.p, c->tool_calls.n);
        } else if (c->has_reasoning && c->reasoning.n > 0) {
            type = SL_EV_REASONING;
            text = &c->reasoning;
        } else if (c->has_content) {
            type = SL_EV_CONTENT;
            text = &c->content;
        } else if (c->has_text) {
            type = SL_EV_CONTENT;
            text = &c->text;
        } else if (c->has_role) {
            type = SL_EV_START;
        }
        if (text)
            rc = sl_json_unescape(text->p, text->n, &in->text);
        /* vLLM's first chunk: {"role":"assistant","content":""}. */
        if (c->has_role && type == SL_EV_CONTENT && sl_buf_size(&in->text) == 0)
            type = SL_EV_START;
        if (rc != SL_OK) {
            in->broken = in->saw_error = true;
            rc = sl_ingest_log_error(in->log, 502, "the upstream sent a chunk sluice cannot read");
            return rc == SL_OK ? SL_EPROTO : rc;
        }
        if (sl_buf_size(&in->text) > 0 && type != SL_EV_START)
            count_token(in, now);
        for (size_t i = 0; i < ch.nchoices; i++) {
            const struct sl_chunk_choice *fc = &ch.choices[i];
            if (!fc->has_finish)
                continue;
            in->finishes++;
            if ((fc->index == 0 || in->finish_reason[0] == '\0') &&
                fc->finish_reason.n < sizeof in->finish_reason) {
                memcpy(in->finish_reason, fc->finish_reason.p, fc->finish_reason.n);
                in->finish_reason[fc->finish_reason.n] = '\0';
            }
        }
        /* A finish takes the event's type; its text (if any) stays. */
        if (c->has_finish)
            type = SL_EV_FINISH;
    }
    return sl_log_append(in->log, type, choice, data, len, sl_buf_ptr(&in->text),
                         sl_buf_size(&in->text), NULL);
}

int sl_ingest_feed(struct sl_ingest *in, const char *p, size_t n, uint64_t now_ms)
{
    while (!in->broken && n > 0) {
        struct sl_sse_event ev;
        size_t used = 0;
        int rc = sl_sse_decoder_next(&in->dec, p, n, &used, &ev);
        p += used;
        n -= used;
        if (rc == 0)
            return SL_OK;
        if (rc < 0) {
            in->broken = in->saw_error = true;
            rc =
                sl_ingest_log_error(in->log, 502, "the upstream sent an event over the size bound");
            return rc == SL_OK ? SL_EPROTO : rc;
        }
        /* Named events are not chunks (event: ping, event: progress). */
        if (ev.type_len > 0 && !(ev.type_len == 7 && memcmp(ev.type, "message", 7) == 0))
            continue;
        if (in->saw_done)
            continue; /* nothing counts after [DONE] */
        rc = ingest_chunk(in, ev.data, ev.data_len, now_ms);
        if (rc == SL_ETOOBIG && !in->saw_error) {
            /* The log is full: say so, within the room kept for it. */
            in->broken = in->saw_error = true;
            rc = sl_ingest_log_error(in->log, 502,
                                     "the answer is over the stream's bound (max_stream_bytes)");
            return rc == SL_OK ? SL_ETOOBIG : rc;
        }
        if (rc != SL_OK) {
            in->broken = true;
            return rc;
        }
    }
    return SL_OK;
}

bool sl_ingest_end(struct sl_ingest *in, int err, const char *what)
{
    bool complete = false;
    if (!in->saw_error) {
        int status = err == SL_ETIMEDOUT ? 504 : 502;
        if (err != SL_OK && !(in->saw_done && in->finishes > 0)) {
            sl_ingest_log_error(in->log, status, what);
        } else if (in->finishes == 0) {
            sl_ingest_log_error(in->log, 502,
                                "the upstream ended the answer without a finish_reason");
        } else {
            complete = true;
            /* The usage event is always logged and always last: an
             * upstream that sent none gets one of sluice's (no raw chunk,
             * so the OpenAI face shows nothing for it). */
            if (!in->saw_usage)
                (void)log_usage(in, "", 0);
        }
    }
    /* An incomplete last event after a finish changes nothing. */
    (void)sl_sse_decoder_end(&in->dec);
    sl_log_end(in->log);
    return complete;
}
