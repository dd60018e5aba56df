/* decoder.c - Server-Sent Events decoder, sans-I/O, by the WHATWG rules
 * ("Interpreting an event stream"; see decoder.h for the API).
 * Owns: finding line ends, the BOM, field parsing, event assembly and the
 * bounds. Does not own: sockets, timers, UTF-8 validation, what data means.
 * A data line that lies wholly in the input is never copied. */
#include "sse/decoder.h"

#include <stdint.h>
#include <string.h>

/* The line-end search looks at this many bytes first and doubles the window
 * up to SSE_SCAN_WINDOW_MAX while it finds nothing. Searching the whole
 * remaining input for LF and then for CR would cost O(input) per line: a
 * stream of short CR-ended lines (never sent by vLLM, but possible) would
 * make one feed quadratic. With a window, the work per line stays linear in
 * the line's length plus a small constant. */
#define SSE_SCAN_WINDOW     256
#define SSE_SCAN_WINDOW_MAX 65536

static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};

/* The first CR or LF in [p, end), or NULL. */
static const char *find_eol(const char *p, const char *end)
{
    size_t win = SSE_SCAN_WINDOW;
    while (p < end) {
        size_t n = (size_t)(end - p) < win ? (size_t)(end - p) : win;
        const char *lf = memchr(p, '\n', n);
        const char *cr = memchr(p, '\r', lf ? (size_t)(lf - p) : n);
        if (cr != NULL)
            return cr;
        if (lf != NULL)
            return lf;
        p += n;
        if (win < SSE_SCAN_WINDOW_MAX)
            win *= 2;
    }
    return NULL;
}

/* Forgets the block being assembled (data, type, this block's id and retry);
 * the last event id stays. */
static void reset_block(struct sl_sse_decoder *d)
{
    sl_buf_reset(&d->data);
    sl_buf_reset(&d->type);
    d->borrow = NULL;
    d->borrow_len = 0;
    d->saw_data = false;
    d->id_in_block = false;
    d->retry_ms = -1;
    d->dispatched = false;
}

void sl_sse_decoder_init(struct sl_sse_decoder *d, size_t max_event_bytes)
{
    sl_buf_init(&d->line, max_event_bytes);
    sl_buf_init(&d->data, max_event_bytes);
    sl_buf_init(&d->type, max_event_bytes);
    sl_buf_init(&d->id, max_event_bytes);
    d->max_event_bytes = max_event_bytes;
    sl_sse_decoder_reset(d);
}

void sl_sse_decoder_free(struct sl_sse_decoder *d)
{
    sl_buf_free(&d->line);
    sl_buf_free(&d->data);
    sl_buf_free(&d->type);
    sl_buf_free(&d->id);
    d->borrow = NULL;
    d->borrow_len = 0;
}

/* Ready for a new stream; the last event id is left to the caller. */
static void reset_stream(struct sl_sse_decoder *d)
{
    reset_block(d);
    sl_buf_reset(&d->line);
    d->after_cr = false;
    d->bom_done = false;
    d->bom_seen = 0;
    d->err = SL_OK;
}

void sl_sse_decoder_reset(struct sl_sse_decoder *d)
{
    reset_stream(d);
    sl_buf_reset(&d->id);
}

/* Length of the block's data so far (lines joined by "\n"). */
static size_t data_len(const struct sl_sse_decoder *d)
{
    return d->borrow != NULL ? d->borrow_len : sl_buf_size(&d->data);
}

/* Copies borrowed data into the decoder, before the input it points into
 * goes away or more data is appended. */
static int own_data(struct sl_sse_decoder *d)
{
    if (d->borrow == NULL)
        return SL_OK;
    int rc = sl_buf_append(&d->data, d->borrow, d->borrow_len);
    d->borrow = NULL;
    d->borrow_len = 0;
    return rc;
}

static int set_buf(struct sl_buf *b, const char *p, size_t n)
{
    sl_buf_reset(b);
    return sl_buf_append(b, p, n);
}

/* A data field. The first data line of a block is borrowed when it lies in
 * the input, or taken over with the line buffer's bytes when it was
 * assembled there; only further lines are copied. */
static int field_data(struct sl_sse_decoder *d, const char *v, size_t vlen, bool in_line_buf)
{
    if (!d->saw_data) {
        d->saw_data = true;
        if (!in_line_buf) {
            d->borrow = v;
            d->borrow_len = vlen;
            return SL_OK;
        }
        /* The data buffer is empty: swap it with the line buffer (both have
         * the same ceiling) and drop the field name in front. */
        size_t skip = (size_t)(v - sl_buf_ptr(&d->line));
        struct sl_buf tmp = d->data;
        d->data = d->line;
        d->line = tmp;
        sl_buf_consume(&d->data, skip);
        return SL_OK;
    }
    size_t have = data_len(d);
    if (have >= d->max_event_bytes || vlen > d->max_event_bytes - have - 1)
        return SL_ETOOBIG;
    int rc = own_data(d);
    if (rc == SL_OK)
        rc = sl_buf_append(&d->data, "\n", 1);
    if (rc == SL_OK)
        rc = sl_buf_append(&d->data, v, vlen);
    return rc;
}

/* A retry field counts only when it is all ASCII digits (and not empty, as
 * browsers read it); a huge value saturates. */
static void field_retry(struct sl_sse_decoder *d, const char *v, size_t vlen)
{
    if (vlen == 0)
        return;
    int64_t ms = 0;
    for (size_t i = 0; i < vlen; i++) {
        if (v[i] < '0' || v[i] > '9')
            return;
        int digit = v[i] - '0';
        ms = ms > (INT64_MAX - digit) / 10 ? INT64_MAX : ms * 10 + digit;
    }
    d->retry_ms = ms;
}

static bool name_is(const char *name, size_t n, const char *want, size_t wn)
{
    return n == wn && memcmp(name, want, n) == 0;
}

/* Interprets one complete line (without its line end). Returns 1 when the
 * line dispatches an event, 0 when not, or a negative SL_E*. */
static int process_line(struct sl_sse_decoder *d, const char *p, size_t n, bool in_line_buf)
{
    if (n == 0) {
        if (d->saw_data)
            return 1;
        reset_block(d); /* WHATWG: no data, no event; the id stays set */
        return 0;
    }
    if (p[0] == ':')
        return 0; /* a comment */
    const char *colon = memchr(p, ':', n);
    size_t nlen = colon != NULL ? (size_t)(colon - p) : n;
    const char *v = p + n;
    size_t vlen = 0;
    if (colon != NULL) {
        v = colon + 1;
        vlen = n - nlen - 1;
        if (vlen > 0 && v[0] == ' ') {
            v++;
            vlen--;
        }
    }
    if (name_is(p, nlen, "data", 4))
        return field_data(d, v, vlen, in_line_buf);
    if (name_is(p, nlen, "event", 5))
        return set_buf(&d->type, v, vlen);
    if (name_is(p, nlen, "id", 2)) {
        if (memchr(v, '\0', vlen) != NULL)
            return 0; /* WHATWG: an id with NUL is ignored */
        d->id_in_block = true;
        return set_buf(&d->id, v, vlen);
    }
    if (name_is(p, nlen, "retry", 5))
        field_retry(d, v, vlen);
    return 0; /* retry, or an unknown field: ignored */
}

/* Skips a leading BOM, which may arrive split across feeds. When the first
 * bytes only start like one, they are ordinary line bytes: they go to the
 * line buffer. */
static int skip_bom(struct sl_sse_decoder *d, const char *in, size_t len, size_t *pos)
{
    while (*pos < len && d->bom_seen < sizeof bom) {
        if ((unsigned char)in[*pos] != bom[d->bom_seen]) {
            d->bom_done = true;
            return sl_buf_append(&d->line, bom, d->bom_seen);
        }
        d->bom_seen++;
        (*pos)++;
    }
    if (d->bom_seen == sizeof bom)
        d->bom_done = true;
    return SL_OK;
}

static void fill_event(struct sl_sse_decoder *d, struct sl_sse_event *ev)
{
    if (d->borrow != NULL) {
        ev->data = d->borrow;
        ev->data_len = d->borrow_len;
    } else {
        ev->data = sl_buf_ptr(&d->data);
        ev->data_len = sl_buf_size(&d->data);
    }
    ev->type = sl_buf_ptr(&d->type);
    ev->type_len = sl_buf_size(&d->type);
    ev->id = sl_buf_ptr(&d->id);
    ev->id_len = sl_buf_size(&d->id);
    ev->id_set = d->id_in_block;
    ev->retry_ms = d->retry_ms;
    /* The buffers are reset on the next call: ev borrows them until then. */
    d->dispatched = true;
}

int sl_sse_decoder_next(struct sl_sse_decoder *d, const char *in, size_t len, size_t *consumed,
                        struct sl_sse_event *ev)
{
    *consumed = 0;
    if (d->err != SL_OK)
        return d->err;
    if (d->dispatched)
        reset_block(d);
    size_t pos = 0;
    int rc = SL_OK;
    if (!d->bom_done)
        rc = skip_bom(d, in, len, &pos);
    if (rc == SL_OK && d->after_cr && pos < len) {
        d->after_cr = false;
        if (in[pos] == '\n')
            pos++;
    }
    while (rc == SL_OK && pos < len) {
        const char *p = in + pos;
        const char *eol = find_eol(p, in + len);
        if (eol == NULL) {
            rc = sl_buf_append(&d->line, p, len - pos);
            if (rc == SL_OK)
                pos = len;
            break;
        }
        size_t n = (size_t)(eol - p);
        size_t next = pos + n + 1;
        if (*eol == '\r') {
            if (next == len)
                d->after_cr = true;
            else if (in[next] == '\n')
                next++;
        }
        if (sl_buf_size(&d->line) > 0) {
            /* The line began in an earlier feed: finish it there. */
            rc = sl_buf_append(&d->line, p, n);
            if (rc == SL_OK)
                rc = process_line(d, sl_buf_ptr(&d->line), sl_buf_size(&d->line), true);
            sl_buf_reset(&d->line);
        } else if (n > d->max_event_bytes) {
            rc = SL_ETOOBIG;
        } else {
            rc = process_line(d, p, n, false);
        }
        if (rc < 0)
            break;
        pos = next;
        if (rc == 1) {
            fill_event(d, ev);
            *consumed = pos;
            return 1;
        }
    }
    if (rc == SL_OK)
        rc = own_data(d); /* in[] may go away after this call */
    *consumed = pos;
    if (rc != SL_OK) {
        d->err = rc;
        return rc;
    }
    return 0;
}

bool sl_sse_decoder_end(struct sl_sse_decoder *d)
{
    bool dropped = !d->dispatched && d->saw_data;
    const char *p = sl_buf_ptr(&d->line);
    size_t n = sl_buf_size(&d->line);
    if (n >= 4 && memcmp(p, "data", 4) == 0 && (n == 4 || p[4] == ':'))
        dropped = true;
    reset_stream(d); /* WHATWG: the last event id outlives a reconnect */
    return dropped;
}
