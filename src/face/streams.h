/* streams.h - the stream face (/v1/streams...). */
#ifndef SL_FACE_STREAMS_H
#define SL_FACE_STREAMS_H

#include "face/openai.h"

/* Answers the request when its path is under /v1/streams; false otherwise. */
bool sl_streams_handle(struct sl_openai *oa, struct sl_http_exchange *ex);

#endif
