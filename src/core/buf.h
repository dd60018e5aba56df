/* buf.h - a growable byte buffer with a ceiling set at init.
 * Owns: its bytes (malloc), growth, the ceiling, and the small JSON string
 * escaper used on hot paths. Does not own: what the bytes mean. */
#ifndef SL_BUF_H
#define SL_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct sl_buf {
    char *data; /* owned; NULL until the first append */
    size_t len; /* bytes in use */
    size_t off; /* bytes at the front already consumed (see sl_buf_consume) */
    size_t cap; /* bytes allocated */
    size_t max; /* ceiling on len - off; 0 means no data may be held */
};

/* Starts an empty buffer that may hold at most max bytes. Allocates nothing. */
void sl_buf_init(struct sl_buf *b, size_t max);
/* Frees the bytes; the buffer is empty afterwards and may be reused. */
void sl_buf_free(struct sl_buf *b);
/* Forgets the content, keeps the allocation. */
void sl_buf_reset(struct sl_buf *b);

/* The unconsumed bytes (borrowed: valid until the next call that changes b). */
static inline const char *sl_buf_ptr(const struct sl_buf *b)
{
    return b->data ? b->data + b->off : "";
}
static inline size_t sl_buf_size(const struct sl_buf *b)
{
    return b->len - b->off;
}

/* The unconsumed bytes as a C string: a NUL is kept after them (not
 * counted in the size). "" when the NUL does not fit under the ceiling. */
const char *sl_buf_cstr(struct sl_buf *b);

/* Makes room for n more bytes at once (appends up to n then move nothing:
 * pointers into the buffer stay valid). SL_ETOOBIG, SL_ENOMEM. */
SL_WARN_UNUSED int sl_buf_reserve(struct sl_buf *b, size_t n);

/* Appends n bytes. SL_ETOOBIG past the ceiling (nothing appended), SL_ENOMEM. */
SL_WARN_UNUSED int sl_buf_append(struct sl_buf *b, const void *p, size_t n);
SL_WARN_UNUSED int sl_buf_puts(struct sl_buf *b, const char *s);
SL_WARN_UNUSED int sl_buf_printf(struct sl_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
SL_WARN_UNUSED int sl_buf_vprintf(struct sl_buf *b, const char *fmt, va_list ap);
SL_WARN_UNUSED int sl_buf_put_u64(struct sl_buf *b, uint64_t v);
SL_WARN_UNUSED int sl_buf_put_i64(struct sl_buf *b, int64_t v);

/* Appends s (n bytes, UTF-8) as a JSON string with its quotes, escaped as
 * Python's json.dumps(ensure_ascii=False) does: \" \\ \n \r \t \b \f and
 * \u00XX for other control bytes; everything else is copied. */
SL_WARN_UNUSED int sl_buf_put_json_str(struct sl_buf *b, const char *s, size_t n);

/* The same, as Python's json.dumps writes it by default (ensure_ascii):
 * every non-ASCII code point as \uXXXX (surrogate pairs past U+FFFF). */
SL_WARN_UNUSED int sl_buf_put_json_str_ascii(struct sl_buf *b, const char *s, size_t n);

/* Drops the first n unconsumed bytes (n <= size). Cheap: moves an offset and
 * compacts only when the consumed part dominates. */
void sl_buf_consume(struct sl_buf *b, size_t n);

/* Hands the bytes to the caller (who frees them with free()); b is empty.
 * *len gets the size. Returns NULL when empty. */
char *sl_buf_take(struct sl_buf *b, size_t *len);

#endif
