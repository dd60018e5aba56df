/* errors.c - OpenAI-shaped error bodies and HTTP status names (errors.h). */
#include "face/errors.h"

#include <string.h>

struct status_row {
    int status;
    const char *reason;
    const char *type;
};

static const struct status_row status_rows[] = {
    {100, "Continue", ""},
    {200, "OK", ""},
    {201, "Created", ""},
    {204, "No Content", ""},
    {400, "Bad Request", "BadRequestError"},
    {401, "Unauthorized", "UnauthorizedError"},
    {403, "Forbidden", "ForbiddenError"},
    {404, "Not Found", "NotFoundError"},
    {405, "Method Not Allowed", "MethodNotAllowedError"},
    {408, "Request Timeout", "RequestTimeoutError"},
    {409, "Conflict", "ConflictError"},
    {410, "Gone", "GoneError"},
    {411, "Length Required", "LengthRequiredError"},
    {413, "Content Too Large", "RequestTooLargeError"},
    {414, "URI Too Long", "URITooLongError"},
    {417, "Expectation Failed", "ExpectationFailedError"},
    {422, "Unprocessable Content", "UnprocessableEntityError"},
    {426, "Upgrade Required", "UpgradeRequiredError"},
    {429, "Too Many Requests", "RateLimitError"},
    {431, "Request Header Fields Too Large", "RequestHeaderFieldsTooLargeError"},
    {499, "Client Closed Request", "CancelledError"},
    {500, "Internal Server Error", "InternalServerError"},
    {501, "Not Implemented", "NotImplementedError"},
    {502, "Bad Gateway", "BadGatewayError"},
    {503, "Service Unavailable", "ServiceUnavailableError"},
    {504, "Gateway Timeout", "GatewayTimeoutError"},
    {505, "HTTP Version Not Supported", "HTTPVersionNotSupportedError"},
};

static const struct status_row *find(int status)
{
    for (size_t i = 0; i < sizeof status_rows / sizeof status_rows[0]; i++)
        if (status_rows[i].status == status)
            return &status_rows[i];
    return NULL;
}

const char *sl_http_reason(int status)
{
    const struct status_row *r = find(status);
    return r ? r->reason : "Unknown";
}

const char *sl_error_type(int status)
{
    const struct status_row *r = find(status);
    if (r && r->type[0])
        return r->type;
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
