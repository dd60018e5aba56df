/* buf.c - bounded growable byte buffer (see buf.h). */
#include "core/buf.h"

#include "core/alloc.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sl_buf_init(struct sl_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->off = b->cap = 0;
    b->max = max;
}

void sl_buf_free(struct sl_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->off = b->cap = 0;
}

void sl_buf_reset(struct sl_buf *b)
{
    b->len = b->off = 0;
}

static int reserve(struct sl_buf *b, size_t n)
{
    if (n > b->max || sl_buf_size(b) > b->max - n)
        return SL_ETOOBIG;
    if (b->cap - b->len >= n)
        return SL_OK;
    if (b->off > 0) { /* compact before growing */
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->cap - b->len >= n)
            return SL_OK;
    }
    size_t need = b->len + n;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = sl_realloc(b->data, cap);
    if (p == NULL)
        return SL_ENOMEM;
    b->data = p;
    b->cap = cap;
    return SL_OK;
}

int sl_buf_reserve(struct sl_buf *b, size_t n)
{
    return reserve(b, n);
}

int sl_buf_append(struct sl_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return SL_OK;
    int rc = reserve(b, n);
    if (rc != SL_OK)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return SL_OK;
}

const char *sl_buf_cstr(struct sl_buf *b)
{
    if (b->data == NULL || b->len == b->cap) {
        /* Room for the NUL, which does not count against the ceiling. */
        size_t max = b->max;
        b->max = max == SIZE_MAX ? max : max + 1;
        int rc = reserve(b, 1);
        b->max = max;
        if (rc != SL_OK)
            return "";
    }
    b->data[b->len] = '\0';
    return b->data + b->off;
}

int sl_buf_puts(struct sl_buf *b, const char *s)
{
    return sl_buf_append(b, s, strlen(s));
}

int sl_buf_vprintf(struct sl_buf *b, const char *fmt, va_list ap)
{
    char small[256];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return SL_EINVAL;
    if ((size_t)n < sizeof small)
        return sl_buf_append(b, small, (size_t)n);
    int rc = reserve(b, (size_t)n + 1);
    if (rc != SL_OK)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return SL_OK;
}

int sl_buf_printf(struct sl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = sl_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int sl_buf_put_u64(struct sl_buf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return sl_buf_append(b, tmp + i, sizeof tmp - i);
}

int sl_buf_put_i64(struct sl_buf *b, int64_t v)
{
    if (v >= 0)
        return sl_buf_put_u64(b, (uint64_t)v);
    int rc = sl_buf_append(b, "-", 1);
    if (rc != SL_OK)
        return rc;
    return sl_buf_put_u64(b, (uint64_t)0 - (uint64_t)v);
}

static const char hexdigits[] = "0123456789abcdef";

/* The escape of one ASCII byte that JSON strings may not hold as is (a
 * quote, a backslash, a control byte), as both writers below spell it. */
static int put_escape(struct sl_buf *b, unsigned char c)
{
    char esc[6] = {'\\', (char)c, 0, 0, 0, 0};
    switch (c) {
    case '"':
    case '\\':
        return sl_buf_append(b, esc, 2);
    case '\n':
        return sl_buf_append(b, "\\n", 2);
    case '\r':
        return sl_buf_append(b, "\\r", 2);
    case '\t':
        return sl_buf_append(b, "\\t", 2);
    case '\b':
        return sl_buf_append(b, "\\b", 2);
    case '\f':
        return sl_buf_append(b, "\\f", 2);
    default:
        esc[1] = 'u';
        esc[2] = '0';
        esc[3] = '0';
        esc[4] = hexdigits[c >> 4];
        esc[5] = hexdigits[c & 15];
        return sl_buf_append(b, esc, 6);
    }
}

static bool plain_ascii(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

int sl_buf_put_json_str(struct sl_buf *b, const char *s, size_t n)
{
    size_t start_len = b->len;
    int rc = sl_buf_append(b, "\"", 1);
    size_t run = 0; /* start of the current run of plain bytes */
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 || plain_ascii(c))
            continue; /* UTF-8 goes as it is */
        rc = sl_buf_append(b, s + run, i - run);
        if (rc == SL_OK)
            rc = put_escape(b, c);
        run = i + 1;
    }
    if (rc == SL_OK)
        rc = sl_buf_append(b, s + run, n - run);
    if (rc == SL_OK)
        rc = sl_buf_append(b, "\"", 1);
    if (rc != SL_OK)
        b->len = start_len; /* all or nothing */
    return rc;
}

/* Appends s as a JSON string the way Python's json.dumps does by default
 * (ensure_ascii=True): non-ASCII as \uXXXX, astral code points as surrogate
 * pairs. */
int sl_buf_put_json_str_ascii(struct sl_buf *b, const char *s, size_t n)
{
    size_t start_len = b->len;
    int rc = sl_buf_append(b, "\"", 1);
    size_t i = 0;
    while (i < n && rc == SL_OK) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            size_t j = i;
            while (j < n && plain_ascii((unsigned char)s[j]))
                j++;
            if (j > i) {
                rc = sl_buf_append(b, s + i, j - i);
                i = j;
            } else {
                rc = put_escape(b, c);
                i++;
            }
            continue;
        }
        uint32_t cp = 0xfffd;
        size_t len = 1;
        if ((c & 0xe0) == 0xc0 && i + 1 < n) {
            cp = ((uint32_t)(c & 0x1f) << 6) | ((unsigned char)s[i + 1] & 0x3f);
            len = 2;
        } else if ((c & 0xf0) == 0xe0 && i + 2 < n) {
            cp = ((uint32_t)(c & 0x0f) << 12) | ((uint32_t)((unsigned char)s[i + 1] & 0x3f) << 6) |
                 ((unsigned char)s[i + 2] & 0x3f);
            len = 3;
        } else if ((c & 0xf8) == 0xf0 && i + 3 < n) {
            cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)((unsigned char)s[i + 1] & 0x3f) << 12) |
                 ((uint32_t)((unsigned char)s[i + 2] & 0x3f) << 6) |
                 ((unsigned char)s[i + 3] & 0x3f);
            len = 4;
        }
        i += len;
        uint32_t units[2] = {cp, 0};
        int nu = 1;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            units[0] = 0xd800 | (cp >> 10);
            units[1] = 0xdc00 | (cp & 0x3ff);
            nu = 2;
        }
        for (int u = 0; u < nu && rc == SL_OK; u++) {
            char esc[6] = {'\\',
                           'u',
                           hexdigits[(units[u] >> 12) & 15],
                           hexdigits[(units[u] >> 8) & 15],
                           hexdigits[(units[u] >> 4) & 15],
                           hexdigits[units[u] & 15]};
            rc = sl_buf_append(b, esc, sizeof esc);
        }
    }
    if (rc == SL_OK)
        rc = sl_buf_append(b, "\"", 1);
    if (rc != SL_OK)
        b->len = start_len; /* all or nothing */
    return rc;
}

void sl_buf_consume(struct sl_buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len) {
        b->off = b->len = 0;
    } else if (b->off > 4096 && b->off > (b->len - b->off)) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
}

char *sl_buf_take(struct sl_buf *b, size_t *len)
{
    if (sl_buf_size(b) == 0) {
        *len = 0;
        return NULL;
    }
    if (b->off > 0) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    char *p = b->data;
    *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
