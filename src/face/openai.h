/* openai.h - the OpenAI face (POST /v1/chat/completions, /v1/completions). */
#ifndef SL_FACE_OPENAI_H
#define SL_FACE_OPENAI_H

#include <uv.h>

#include "core/config.h"
#include "http/server.h"
#include "stream/store.h"
#include "upstream/upstream.h"

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

/* Starts a stream for the exchange's chat or completions body, sent to
 * path upstream: the stream face always streams; both ask the upstream for
 * usage. On error the exchange has been answered. */
SL_WARN_UNUSED int sl_face_start_stream(struct sl_openai *oa, struct sl_http_exchange *ex,
                                        const char *path, enum sl_face_kind kind,
                                        const struct sl_stream_owner *owner, void *owner_ud,
                                        struct sl_face_start *info, struct sl_stream **out);

/* Answers a chat or completions request through oa->t. Takes over ex. */
void sl_openai_handle(struct sl_openai *oa, struct sl_http_exchange *ex);

#endif
