/* oai.h - what one SSE event of an OpenAI-style stream is, for counting.
 * Owns: a cheap scan of an event's data for the few keys the load generator
 * counts by (no JSON tree: 50,000 events a second must stay cheap, and the
 * gateway's own chunk reader is what is being measured, so the load
 * generator keeps an independent one). Does not own: SSE framing, timing. */
#ifndef LG_OAI_H
#define LG_OAI_H

#include <stdbool.h>
#include <stddef.h>

struct lg_oai_ev {
    bool done;     /* the data is [DONE] */
    bool error;    /* an "error" member, or vLLM's {"object":"error"} */
    bool usage;    /* "choices":[] (the usage chunk of include_usage) */
    bool role;     /* a "role" member (the role chunk) */
    bool payload;  /* a non-null content, reasoning_content, reasoning, text or
                      tool_calls member */
    bool nonempty; /* that member is a non-empty string or array */
    bool finish;   /* a non-null finish_reason */
    bool token;    /* counts as one token: see lg_oai_classify */
};

/* Classifies one event's data (the SSE data field, lines joined).
 * The token rule: an event is one token when it is not [DONE], carries no
 * error, is not the usage chunk, has no "role" member (the role chunk, even
 * though it carries "content":""), and has a payload member (content,
 * reasoning_content, reasoning, text or tool_calls, not null). So a
 * finish-only chunk ("delta":{} with a finish_reason) is not a token, while
 * a chunk with "content":"" is one: vLLM sends one chunk per engine step,
 * an empty one when a token's text is held back (half a UTF-8 character),
 * and the last token rides in the chunk with the finish_reason. Keys are
 * found as a string followed by a colon, at any depth; string values are
 * skipped whole, so generated text never matches. */
void lg_oai_classify(const char *data, size_t len, struct lg_oai_ev *out);

/* The tokens every answer to this request body must have: its max_tokens
 * (or max_completion_tokens) when it sets "ignore_eos":true, else -1 (the
 * answer may stop early, so lost tokens cannot be told). */
long long lg_oai_expected_tokens(const char *body, size_t len);

#endif
