/* splice.c - replace one top-level member of a JSON object in place (see
 * splice.h). The scanner here only skips values: the body was validated by
 * a full parser before it gets here. */
#include "pipeline/splice.h"

#include <stdbool.h>
#include <string.h>

static size_t skip_ws(const char *p, size_t n, size_t i)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

/* Index just past the string that starts at p[i] == '"', or n. */
static size_t skip_string(const char *p, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (p[i] == '\\')
            i++;
        else if (p[i] == '"')
            return i + 1;
    }
    return n;
}

/* Index just past the value at p[i]. */
static size_t skip_value(const char *p, size_t n, size_t i)
{
    if (i >= n)
        return n;
    if (p[i] == '"')
        return skip_string(p, n, i);
    if (p[i] == '{' || p[i] == '[') {
        size_t depth = 0;
        for (; i < n; i++) {
            char c = p[i];
            if (c == '"') {
                i = skip_string(p, n, i) - 1;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (--depth == 0)
                    return i + 1;
            }
        }
        return n;
    }
    while (i < n && p[i] != ',' && p[i] != '}' && p[i] != ']' && p[i] != ' ' && p[i] != '\t' &&
           p[i] != '\n' && p[i] != '\r')
        i++;
    return i;
}

int sl_json_splice_member(const char *body, size_t len, const char *key, const char *value,
                          size_t value_len, struct sl_buf *out)
{
    size_t klen = strlen(key);
    size_t open = skip_ws(body, len, 0);
    if (open >= len || body[open] != '{')
        return SL_EJSON;
    size_t mark = out->len;
    int rc = sl_buf_append(out, body, open + 1);
    if (rc == SL_OK)
        rc = sl_buf_append(out, "\"", 1);
    if (rc == SL_OK)
        rc = sl_buf_append(out, key, klen);
    if (rc == SL_OK)
        rc = sl_buf_append(out, "\":", 2);
    if (rc == SL_OK)
        rc = sl_buf_append(out, value, value_len);
    /* Each member is copied from just after the previous comma (its
     * whitespace kept) to the end of its value, after a comma of ours. */
    size_t seg = open + 1, last_end = open + 1;
    size_t i = skip_ws(body, len, open + 1);
    while (rc == SL_OK && i < len && body[i] == '"') {
        size_t kend = skip_string(body, len, i);
        bool match = kend - i == klen + 2 && memcmp(body + i + 1, key, klen) == 0;
        i = skip_ws(body, len, kend);
        if (i >= len || body[i] != ':')
            break;
        i = skip_value(body, len, skip_ws(body, len, i + 1));
        last_end = i;
        if (!match) {
            rc = sl_buf_append(out, ",", 1);
            if (rc == SL_OK)
                rc = sl_buf_append(out, body + seg, i - seg);
        }
        i = skip_ws(body, len, i);
        if (i >= len || body[i] != ',')
            break;
        seg = i + 1;
        i = skip_ws(body, len, i + 1);
    }
    if (rc == SL_OK) {
        size_t close = skip_ws(body, len, last_end);
        if (close >= len || body[close] != '}')
            rc = SL_EJSON;
        else
            rc = sl_buf_append(out, body + last_end, len - last_end);
    }
    if (rc != SL_OK)
        out->len = mark;
    return rc;
}
