/* chunk.h - the chunk reader: one SSE event's data from a vLLM/OpenAI
 * upstream, read in one pass without building a JSON tree (the per-token hot
 * path). Owns: telling a chunk from [DONE], an error object or anything else;
 * finding the members sluice needs (per choice: index, role, content,
 * reasoning under "reasoning" or "reasoning_content", text, tool_calls,
 * finish_reason, stop_reason; usage; id, model, created; the error's fields)
 * as spans into the input, so the original bytes stay for pass-through; and
 * validating the JSON while it scans. Does not own: SSE framing, sockets,
 * what is done with the pieces. */
#ifndef SL_PIPELINE_CHUNK_H
#define SL_PIPELINE_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

/* Choices read from one chunk; more are an error (vLLM sends one per chunk). */
#define SL_CHUNK_MAX_CHOICES 16
/* Nesting depth accepted while skipping values (tool-call arguments, logprobs). */
#define SL_CHUNK_MAX_DEPTH 64

enum sl_chunk_kind {
    SL_CHUNK_DATA,    /* an object with "choices" (chat.completion.chunk, text_completion) */
    SL_CHUNK_DONE,    /* the literal [DONE] */
    SL_CHUNK_ERROR,   /* {"error":{...}} or vLLM's old {"object":"error",...} */
    SL_CHUNK_OTHER,   /* valid JSON that is none of those (dropped on the OpenAI face) */
    SL_CHUNK_INVALID, /* not JSON: the stream is broken */
};

/* A borrowed piece of the input. For strings: the bytes between the quotes,
 * still JSON-escaped (see sl_json_unescape). */
struct sl_span {
    const char *p;
    size_t n;
};

struct sl_chunk_choice {
    uint32_t index;
    bool has_role, has_content, has_reasoning, has_text, has_tool_calls, has_finish;
    struct sl_span role;
    struct sl_span content;       /* delta.content (chat) */
    struct sl_span reasoning;     /* delta.reasoning, else delta.reasoning_content (one text) */
    struct sl_span text;          /* choices[].text (completions) */
    struct sl_span tool_calls;    /* raw JSON array of delta.tool_calls */
    struct sl_span finish_reason; /* string body; has_finish false when null/absent */
    struct sl_span stop_reason;   /* raw JSON value (string, number, null); n 0 if absent */
};

struct sl_chunk {
    enum sl_chunk_kind kind;
    struct sl_span id, object, model; /* string bodies */
    int64_t created;                  /* -1 when absent */
    size_t nchoices;
    struct sl_chunk_choice choices[SL_CHUNK_MAX_CHOICES];
    bool has_usage; /* a non-null usage object */
    int64_t prompt_tokens, completion_tokens, total_tokens;
    /* SL_CHUNK_ERROR: the error object's raw bytes and fields. */
    struct sl_span error;
    struct sl_span error_message, error_type;
    int64_t error_code; /* numeric code, or 0 */
};

/* How the reader reads (the rules the pipeline can rely on):
 * - Kind: "[DONE]" with JSON whitespace around it is DONE. A top-level
 *   object whose "error" member is not null or false is ERROR (error = that
 *   value's raw bytes; a string error is also error_message); else one whose
 *   "object" is "error" (vLLM's old shape) is ERROR with error = the whole
 *   object and message, type and code read from its top level; else one with
 *   a "choices" array is DATA; any other JSON is OTHER.
 * - Absent members leave spans {NULL, 0}, created -1, the usage counts and
 *   error_code 0. A member of an unexpected type (a number for "content") is
 *   taken as absent; a later duplicate member replaces an earlier one.
 * - Integers (created, index, usage counts, error code) are read only when
 *   integral and in range (int64_t; index uint32_t); otherwise they keep
 *   their default. A choice without "index" gets its array position; array
 *   elements that are not objects take no choice slot.
 * - Keys are compared as raw bytes, escapes not resolved: vLLM and OpenAI
 *   never escape member names ("choi\u0063es" is an unknown member).
 * - String bytes from 0x80 up pass through unchecked (no UTF-8 validation);
 *   raw control bytes and bad escapes are invalid; lone surrogate escapes
 *   are valid JSON (sl_json_unescape makes them U+FFFD).
 * - choices[i] for i >= nchoices are unspecified; SL_CHUNK_INVALID and
 *   SL_CHUNK_DONE leave every member at its absent value (nchoices 0). */

/* Reads data[0..len) (one SSE event's data). Always fills out->kind; returns
 * SL_OK, or SL_EJSON for SL_CHUNK_INVALID input (including more choices than
 * SL_CHUNK_MAX_CHOICES or deeper nesting than SL_CHUNK_MAX_DEPTH). Spans
 * point into data. */
SL_WARN_UNUSED int sl_chunk_read(const char *data, size_t len, struct sl_chunk *out);

/* Appends the decoded UTF-8 of a JSON string body (escapes resolved,
 * surrogate pairs joined; a lone surrogate becomes U+FFFD). SL_EJSON on a bad
 * escape, SL_ETOOBIG at out's ceiling. */
/* On an error out holds what it held before the call. Plain runs between
 * escapes are copied with one append each; other bytes are not checked. */
SL_WARN_UNUSED int sl_json_unescape(const char *p, size_t n, struct sl_buf *out);

#endif
