/* headers.c - which headers cross sluice between a client and an upstream
 * (see headers.h). */
#include "stream/headers.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/limits.h"

/* Request headers never forwarded: hop-by-hop (RFC 9110 7.6.1) and the ones
 * the transport writes itself. */
static const char *const request_skip[] = {
    "connection",          "keep-alive", "proxy-connection",
    "proxy-authorization", "te",         "trailer",
    "transfer-encoding",   "upgrade",    "host",
    "content-length",      "expect",     "accept-encoding",
};

/* Response headers not passed back: hop-by-hop and framing (sluice frames). */
static const char *const response_skip[] = {
    "connection", "keep-alive", "transfer-encoding", "content-length", "trailer", "upgrade",
    "date",       "server",     "proxy-connection",
};

static bool in_list(const char *name, size_t n, const char *const *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (strlen(list[i]) == n && strncasecmp(name, list[i], n) == 0)
            return true;
    return false;
}

/* A header the client named in Connection is hop-by-hop too (RFC 9110
 * 7.6.1): "Connection: keep-alive, X-Trace" keeps X-Trace from the upstream. */
static bool named_in_connection(const struct sl_http_request *req, const char *name, size_t n)
{
    char tmp[128];
    if (n >= sizeof tmp)
        return false;
    memcpy(tmp, name, n);
    tmp[n] = '\0';
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct sl_http_header *h = &req->headers[i];
        if (h->name_len == 10 && strncasecmp(h->name, "connection", 10) == 0 &&
            sl_http_value_has_token(h->value, h->value_len, tmp))
            return true;
    }
    return false;
}

int sl_upstream_request_headers(const struct sl_http_request *req, bool drop_auth,
                                struct sl_buf *store, const char **lines, size_t cap, size_t *n)
{
    /* Lines are written NUL-terminated into store first, then pointed at,
     * because store may move while it grows. */
    size_t count = 0;
    size_t offs[SL_LIMIT_HEADERS_MAX];
    for (size_t i = 0; i < req->num_headers && count < cap && count < SL_LIMIT_HEADERS_MAX; i++) {
        const struct sl_http_header *h = &req->headers[i];
        if (in_list(h->name, h->name_len, request_skip,
                    sizeof request_skip / sizeof request_skip[0]))
            continue;
        if (drop_auth && h->name_len == 13 && strncasecmp(h->name, "authorization", 13) == 0)
            continue;
        /* sluice's own per-request options stop here. */
        if (h->name_len >= 9 && strncasecmp(h->name, "x-sluice-", 9) == 0)
            continue;
        if (named_in_connection(req, h->name, h->name_len))
            continue;
        offs[count++] = sl_buf_size(store);
        int rc = sl_buf_append(store, h->name, h->name_len);
        if (rc == SL_OK)
            rc = sl_buf_append(store, ": ", 2);
        if (rc == SL_OK)
            rc = sl_buf_append(store, h->value, h->value_len);
        if (rc == SL_OK)
            rc = sl_buf_append(store, "", 1);
        if (rc != SL_OK)
            return rc;
    }
    for (size_t i = 0; i < count; i++)
        lines[i] = sl_buf_ptr(store) + offs[i];
    *n = count;
    return SL_OK;
}

int sl_upstream_response_headers(const struct sl_upstream_header *hdrs, size_t n,
                                 struct sl_buf *out, const char **content_type,
                                 int64_t *content_length)
{
    *content_type = NULL;
    *content_length = -1;
    for (size_t i = 0; i < n; i++) {
        const struct sl_upstream_header *h = &hdrs[i];
        if (h->name_len == 14 && strncasecmp(h->name, "content-length", 14) == 0) {
            char tmp[24];
            if (h->value_len > 0 && h->value_len < sizeof tmp) {
                memcpy(tmp, h->value, h->value_len);
                tmp[h->value_len] = '\0';
                char *end;
                long long v = strtoll(tmp, &end, 10);
                if (*end == '\0' && v >= 0)
                    *content_length = v;
            }
            continue;
        }
        if (in_list(h->name, h->name_len, response_skip,
                    sizeof response_skip / sizeof response_skip[0]))
            continue;
        if (h->name_len == 12 && strncasecmp(h->name, "content-type", 12) == 0) {
            *content_type = h->value; /* the caller copies it before the call ends */
        }
        int rc = sl_buf_append(out, h->name, h->name_len);
        if (rc == SL_OK)
            rc = sl_buf_append(out, ": ", 2);
        if (rc == SL_OK)
            rc = sl_buf_append(out, h->value, h->value_len);
        if (rc == SL_OK)
            rc = sl_buf_append(out, "\r\n", 2);
        if (rc != SL_OK)
            return rc;
    }
    return SL_OK;
}

int sl_upstream_origin_target(const struct sl_http_request *req, struct sl_buf *out)
{
    int rc = sl_buf_append(out, req->path, req->path_len);
    if (rc == SL_OK && req->query) {
        rc = sl_buf_append(out, "?", 1);
        if (rc == SL_OK)
            rc = sl_buf_append(out, req->query, req->query_len);
    }
    return rc;
}

int sl_upstream_error_status(int err)
{
    switch (err) {
    case SL_ETIMEDOUT:
        return 504;
    case SL_EUNAVAIL:
        return 502;
    case SL_ENOMEM:
        return 503;
    default:
        return 502;
    }
}
