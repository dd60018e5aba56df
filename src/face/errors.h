/* errors.h - OpenAI-shaped errors, the only place that writes them.
 * Owns: {"error":{"message","type","param","code"}} bodies, the type name
 * for each HTTP status, and status reason phrases.
 * Does not own: when an error is sent (callers decide). */
#ifndef SL_FACE_ERRORS_H
#define SL_FACE_ERRORS_H

#include "core/buf.h"

/* The reason phrase of an HTTP status ("Not Found"), "Unknown" otherwise. */
const char *sl_http_reason(int status);
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
