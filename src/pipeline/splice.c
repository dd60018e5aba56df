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
    size_t copied = 0; /* body bytes already in out */
    size_t last_end = open + 1;
    bool found = false, members = false;
    int rc = SL_OK;
    size_t i = skip_ws(body, len, open + 1);
    while (rc == SL_OK && i < len && body[i] == '"') {
        size_t kend = skip_string(body, len, i);
        bool match = kend - i == klen + 2 && memcmp(body + i + 1, key, klen) == 0;
        i = skip_ws(body, len, kend);
        if (i >= len || body[i] != ':') {
            rc = SL_EJSON;
            break;
        }
        size_t v = skip_ws(body, len, i + 1);
        i = skip_value(body, len, v);
        members = true;
        last_end = i;
        if (match) {
            /* Every occurrence gets the new value (the last one counts in
             * every parser, and duplicates then agree). */
            rc = sl_buf_append(out, body + copied, v - copied);
            if (rc == SL_OK)
                rc = sl_buf_append(out, value, value_len);
            copied = i;
            found = true;
        }
        i = skip_ws(body, len, i);
        if (i >= len || body[i] != ',')
            break;
        i = skip_ws(body, len, i + 1);
    }
    size_t close = skip_ws(body, len, last_end);
    if (rc == SL_OK && (close >= len || body[close] != '}'))
        rc = SL_EJSON;
    if (rc == SL_OK && !found) {
        /* A new member goes last, just before the closing brace, so every
         * byte of the object before it stays put. */
        rc = sl_buf_append(out, body + copied, close - copied);
        copied = close;
        if (rc == SL_OK && members)
            rc = sl_buf_append(out, ",", 1);
        if (rc == SL_OK)
            rc = sl_buf_append(out, "\"", 1);
        if (rc == SL_OK)
            rc = sl_buf_append(out, key, klen);
        if (rc == SL_OK)
            rc = sl_buf_append(out, "\":", 2);
        if (rc == SL_OK)
            rc = sl_buf_append(out, value, value_len);
    }
    if (rc == SL_OK)
        rc = sl_buf_append(out, body + copied, len - copied);
    if (rc != SL_OK)
        out->len = mark;
    return rc;
}

int sl_json_find_member(const char *body, size_t len, const char *key, size_t *voff, size_t *vlen)
{
    size_t klen = strlen(key);
    size_t i = skip_ws(body, len, 0);
    if (i >= len || body[i] != '{')
        return SL_EJSON;
    i = skip_ws(body, len, i + 1);
    int rc = SL_ENOTFOUND;
    while (i < len && body[i] == '"') {
        size_t kend = skip_string(body, len, i);
        bool match = kend - i == klen + 2 && memcmp(body + i + 1, key, klen) == 0;
        i = skip_ws(body, len, kend);
        if (i >= len || body[i] != ':')
            return SL_EJSON;
        size_t v = skip_ws(body, len, i + 1);
        i = skip_value(body, len, v);
        if (match) { /* the last one wins, as in jansson and Python */
            *voff = v;
            *vlen = i - v;
            rc = SL_OK;
        }
        i = skip_ws(body, len, i);
        if (i >= len || body[i] != ',')
            break;
        i = skip_ws(body, len, i + 1);
    }
    return rc;
}
