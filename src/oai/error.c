/* error.c - OpenAI-shaped error bodies and the error type of each HTTP
 * status (see error.h). */
#include "oai/error.h"

#include <string.h>

/* The exception name vLLM's API server gives each status. */
struct type_row {
    int status;
    const char *type;
};

static const struct type_row type_rows[] = {
    {400, "BadRequestError"},
    {401, "UnauthorizedError"},
    {403, "ForbiddenError"},
    {404, "NotFoundError"},
    {405, "MethodNotAllowedError"},
    {408, "RequestTimeoutError"},
    {409, "ConflictError"},
    {410, "GoneError"},
    {411, "LengthRequiredError"},
    {413, "RequestTooLargeError"},
    {414, "URITooLongError"},
    {417, "ExpectationFailedError"},
    {422, "UnprocessableEntityError"},
    {426, "UpgradeRequiredError"},
    {429, "RateLimitError"},
    {431, "RequestHeaderFieldsTooLargeError"},
    {499, "CancelledError"},
    {500, "InternalServerError"},
    {501, "NotImplementedError"},
    {502, "BadGatewayError"},
    {503, "ServiceUnavailableError"},
    {504, "GatewayTimeoutError"},
    {505, "HTTPVersionNotSupportedError"},
};

const char *sl_error_type(int status)
{
    for (size_t i = 0; i < sizeof type_rows / sizeof type_rows[0]; i++)
        if (type_rows[i].status == status)
            return type_rows[i].type;
    return status >= 500 ? "InternalServerError" : "BadRequestError";
}

static int render(struct sl_buf *out, const char *type, const char *message, const char *param,
                  const char *code_str, int code)
{
    size_t mark = out->len;
    int rc = sl_buf_puts(out, "{\"error\":{\"message\":");
    if (rc == SL_OK)
        rc = sl_buf_put_json_str(out, message, strlen(message));
    if (rc == SL_OK)
        rc = sl_buf_puts(out, ",\"type\":");
    if (rc == SL_OK)
        rc = sl_buf_put_json_str(out, type, strlen(type));
    if (rc == SL_OK)
        rc = sl_buf_puts(out, ",\"param\":");
    if (rc == SL_OK)
        rc = param ? sl_buf_put_json_str(out, param, strlen(param)) : sl_buf_puts(out, "null");
    if (rc == SL_OK)
        rc = sl_buf_puts(out, ",\"code\":");
    if (rc == SL_OK)
        rc = code_str ? sl_buf_put_json_str(out, code_str, strlen(code_str))
                      : sl_buf_printf(out, "%d", code);
    if (rc == SL_OK)
        rc = sl_buf_puts(out, "}}");
    if (rc != SL_OK)
        out->len = mark;
    return rc;
}

int sl_error_render(struct sl_buf *out, int status, const char *type, const char *message,
                    const char *param)
{
    return render(out, type ? type : sl_error_type(status), message, param, NULL, status);
}

int sl_error_render_code(struct sl_buf *out, const char *type, const char *message,
                         const char *param, const char *code)
{
    return render(out, type, message, param, code, 0);
}

int sl_error_render_py(struct sl_buf *out, int status, const char *type, const char *message,
                       const char *param)
{
    size_t mark = out->len;
    if (type == NULL)
        type = sl_error_type(status);
    int rc = sl_buf_puts(out, "{\"error\": {\"message\": ");
    if (rc == SL_OK)
        rc = sl_buf_put_json_str_ascii(out, message, strlen(message));
    if (rc == SL_OK)
        rc = sl_buf_puts(out, ", \"type\": ");
    if (rc == SL_OK)
        rc = sl_buf_put_json_str_ascii(out, type, strlen(type));
    if (rc == SL_OK)
        rc = sl_buf_puts(out, ", \"param\": ");
    if (rc == SL_OK)
        rc =
            param ? sl_buf_put_json_str_ascii(out, param, strlen(param)) : sl_buf_puts(out, "null");
    if (rc == SL_OK)
        rc = sl_buf_printf(out, ", \"code\": %d}}", status);
    if (rc != SL_OK)
        out->len = mark;
    return rc;
}
