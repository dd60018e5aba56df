/* openai.h - the OpenAI face (POST /v1/chat/completions, /v1/completions). */
#ifndef SL_FACE_OPENAI_H
#define SL_FACE_OPENAI_H

#include <uv.h>

#include "core/config.h"
#include "http/server.h"
#include "stream/store.h"
#include "stream/transport.h"

/* What both faces work with. */
struct sl_openai {
    uv_loop_t *loop;
    const struct sl_config *cfg;
    struct sl_upstream_transport *t;
    struct sl_store *store;
};

/* Which face a stream was made on. */
enum sl_face_kind { SL_FACE_OPENAI, SL_FACE_STREAMS };

/* What a request body said that the faces need. */
struct sl_face_start {
    bool client_stream; /* the client asked "stream": true */
    bool show_usage;    /* ... with stream_options.include_usage */
    bool multi_choice;  /* n > 1 */
};

/* Starts a stream for a chat or completions body (blen bytes, borrowed for
 * the call), sent to path upstream with hdr_lines ("Name: value" each,
 * borrowed): the stream face always streams; both ask the upstream for
 * usage. Fills info and sets the stream's show_usage, multi_choice and
 * grace_ms (what a stream whose client left still runs). SL_OK, or
 * SL_EJSON for a body that is not a JSON object, a splice error, or
 * sl_stream_start's error; then nothing was started, and *status (400 or
 * 503) and msg (msglen bytes, NUL-terminated) say what to answer: the
 * caller answers in its own framing. */
SL_WARN_UNUSED int sl_face_start_body(struct sl_openai *oa, const char *body, size_t blen,
                                      const char *const *hdr_lines, size_t nhdr, const char *path,
                                      enum sl_face_kind kind, uint64_t grace_ms,
                                      const struct sl_stream_owner *owner, void *owner_ud,
                                      struct sl_face_start *info, struct sl_stream **out,
                                      int *status, char *msg, size_t msglen);

/* sl_face_start_body for the exchange's body, forwarding its end-to-end
 * headers; the grace is X-Sluice-Grace's (capped by grace_s), else 0 on
 * the OpenAI face and grace_s on the stream face. On error the exchange
 * has been answered. */
SL_WARN_UNUSED int sl_face_start_stream(struct sl_openai *oa, struct sl_http_exchange *ex,
                                        const char *path, enum sl_face_kind kind,
                                        const struct sl_stream_owner *owner, void *owner_ud,
                                        struct sl_face_start *info, struct sl_stream **out);

/* Answers a chat or completions request through oa->t. Takes over ex. */
void sl_openai_handle(struct sl_openai *oa, struct sl_http_exchange *ex);

#endif
