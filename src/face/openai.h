/* openai.h - the OpenAI face (POST /v1/chat/completions, /v1/completions). */
#ifndef SL_FACE_OPENAI_H
#define SL_FACE_OPENAI_H

#include <uv.h>

#include "core/config.h"
#include "http/server.h"
#include "upstream/upstream.h"

struct sl_openai {
    uv_loop_t *loop;
    const struct sl_config *cfg;
    struct sl_upstream_transport *t;
};

/* Answers a chat or completions request through oa->t. Takes over ex. */
void sl_openai_handle(struct sl_openai *oa, struct sl_http_exchange *ex);

#endif
