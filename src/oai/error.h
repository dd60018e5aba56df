/* error.h - OpenAI-shaped errors, the only place that writes them; a leaf
 * that every layer above core may use (the HTTP server, the pipeline, the
 * simulator, the faces). Owns: {"error":{"message","type","param","code"}}
 * bodies and the type name for each HTTP status. Does not own: when an
 * error is sent (callers decide), reason phrases (http/status.h). */
#ifndef SL_OAI_ERROR_H
#define SL_OAI_ERROR_H

#include "core/buf.h"

/* The error type vLLM gives a status ("NotFoundError", "BadRequestError"). */
const char *sl_error_type(int status);

/* Appends {"error":{"message":..,"type":..,"param":..,"code":status}} as
 * compact JSON. type NULL means sl_error_type(status); param may be NULL. */
SL_WARN_UNUSED int sl_error_render(struct sl_buf *out, int status, const char *type,
                                   const char *message, const char *param);

/* The same shape with a string code, as OpenAI's own errors and sluice's
 * cancel ({"message":"stream cancelled","type":"cancelled","param":null,
 * "code":"cancelled"}). */
SL_WARN_UNUSED int sl_error_render_code(struct sl_buf *out, const char *type, const char *message,
                                        const char *param, const char *code);

/* The same object spaced and ASCII-escaped as Python's json.dumps writes
 * it: vLLM's in-band streaming error event. */
SL_WARN_UNUSED int sl_error_render_py(struct sl_buf *out, int status, const char *type,
                                      const char *message, const char *param);

#endif
