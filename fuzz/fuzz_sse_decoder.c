/* fuzz_sse_decoder.c - libFuzzer harness of the SSE decoder (sse/decoder.c).
 * Owns: the invariants checked on every input: consumed <= len, bounds held
 * (event fields and every buffer), the same events and ending whether the
 * input comes whole, one byte at a time or in random-sized feeds (sizes drawn
 * from the input's first bytes), and the same as a naive byte-at-a-time
 * model of the WHATWG rules. Does not own: the decoder. Aborts on a break. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sse/decoder.h"

/* The big bound no fuzz input reaches, and the small ones every input can. */
#define BOUND_BIG       (1u << 20)
#define BOUND_SMALL_MAX 64
/* Random feeds are at most this long, so most inputs get several. */
#define FEED_MAX 97

static void check(bool ok, const char *what, int line)
{
    if (!ok) {
        fprintf(stderr, "fuzz_sse_decoder: invariant broken at line %d: %s\n", line, what);
        abort();
    }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

/* One event, copied out of the decoder. */
struct rec {
    char *type, *data, *id;
    size_t type_len, data_len, id_len;
    bool id_set;
    int64_t retry_ms;
};

struct result {
    struct rec *ev;
    size_t n, cap;
    int err;      /* SL_OK or the error that ended the decode */
    bool dropped; /* sl_sse_decoder_end's answer, when err == SL_OK */
};

static char *dup_bytes(const char *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    CHECK(c != NULL);
    if (n)
        memcpy(c, p, n);
    return c;
}

static void add(struct result *r, const char *type, size_t type_len, const char *data,
                size_t data_len, const char *id, size_t id_len, bool id_set, int64_t retry_ms)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->ev = realloc(r->ev, r->cap * sizeof *r->ev);
        CHECK(r->ev != NULL);
    }
    struct rec *e = &r->ev[r->n++];
    e->type = dup_bytes(type, type_len);
    e->type_len = type_len;
    e->data = dup_bytes(data, data_len);
    e->data_len = data_len;
    e->id = dup_bytes(id, id_len);
    e->id_len = id_len;
    e->id_set = id_set;
    e->retry_ms = retry_ms;
}

static void result_free(struct result *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->ev[i].type);
        free(r->ev[i].data);
        free(r->ev[i].id);
    }
    free(r->ev);
}

static bool same_bytes(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static bool same(const struct result *a, const struct result *b)
{
    if (a->n != b->n || a->err != b->err || a->dropped != b->dropped)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const struct rec *x = &a->ev[i], *y = &b->ev[i];
        if (!same_bytes(x->type, x->type_len, y->type, y->type_len) ||
            !same_bytes(x->data, x->data_len, y->data, y->data_len) ||
            !same_bytes(x->id, x->id_len, y->id, y->id_len) || x->id_set != y->id_set ||
            x->retry_ms != y->retry_ms)
            return false;
    }
    return true;
}

/* Feed sizes from a small PRNG seeded by the input's first bytes. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Decodes in[0..len) in feeds: whole (step 0), step bytes each, or random
 * sizes (step SIZE_MAX, drawn from *seed). Each feed is its own exact-size
 * copy so ASan sees a read past it. */
static void decode(const char *in, size_t len, size_t step, uint64_t seed, size_t bound,
                   struct result *r)
{
    memset(r, 0, sizeof *r);
    struct sl_sse_decoder d;
    sl_sse_decoder_init(&d, bound);
    size_t pos = 0;
    do {
        size_t n = len - pos;
        if (step == SIZE_MAX)
            n = (size_t)(next_rand(&seed) % (FEED_MAX + 1)); /* empty feeds too */
        else if (step != 0)
            n = step;
        if (n > len - pos)
            n = len - pos;
        char *feed = dup_bytes(in + pos, n);
        size_t off = 0;
        for (;;) {
            size_t used = SIZE_MAX;
            struct sl_sse_event ev;
            int rc = sl_sse_decoder_next(&d, feed + off, n - off, &used, &ev);
            CHECK(used <= n - off);
            CHECK(sl_buf_size(&d.line) <= bound && sl_buf_size(&d.data) <= bound);
            CHECK(sl_buf_size(&d.type) <= bound && sl_buf_size(&d.id) <= bound);
            if (rc < 0) {
                CHECK(rc == SL_ETOOBIG);
                r->err = rc;
                break;
            }
            off += used;
            if (rc == 0) {
                CHECK(off == n);
                break;
            }
            CHECK(rc == 1 && used > 0);
            CHECK(ev.data_len <= bound && ev.type_len <= bound && ev.id_len <= bound);
            CHECK(ev.data != NULL && ev.type != NULL && ev.id != NULL);
            CHECK(memchr(ev.id, '\0', ev.id_len) == NULL);
            CHECK(ev.retry_ms >= -1);
            add(r, ev.type, ev.type_len, ev.data, ev.data_len, ev.id, ev.id_len, ev.id_set,
                ev.retry_ms);
        }
        free(feed);
        pos += n;
    } while (r->err == SL_OK && pos < len);
    if (r->err == SL_OK)
        r->dropped = sl_sse_decoder_end(&d);
    sl_sse_decoder_free(&d);
}

/* The WHATWG steps, one byte at a time over the whole input, written for
 * plainness: the oracle. Bounds as the decoder documents them: a line (CR
 * and LF excluded) or an event's data longer than bound is an error. */
static void model(const char *in, size_t len, size_t bound, struct result *r)
{
    memset(r, 0, sizeof *r);
    size_t i = 0;
    if (len >= 3 && memcmp(in, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    char *line = malloc(len + 1), *data = malloc(len + 1), *type = malloc(len + 1);
    char *id = malloc(len + 1);
    CHECK(line && data && type && id);
    size_t ln = 0, dn = 0, tn = 0, idn = 0;
    bool has_data = false, id_in_block = false;
    int64_t retry = -1;
    for (; i <= len; i++) {
        if (i < len && in[i] != '\r' && in[i] != '\n') {
            line[ln++] = in[i];
            if (ln > bound) {
                r->err = SL_ETOOBIG;
                break;
            }
            continue;
        }
        if (i == len) { /* an unterminated line is not a line */
            bool data_line = ln >= 4 && memcmp(line, "data", 4) == 0 && (ln == 4 || line[4] == ':');
            r->dropped = has_data || data_line;
            break;
        }
        if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
            i++;
        if (ln == 0) {
            if (has_data)
                add(r, type, tn, data, dn, id, idn, id_in_block, retry);
            dn = tn = 0;
            has_data = id_in_block = false;
            retry = -1;
            continue;
        }
        if (line[0] != ':') {
            size_t c = 0;
            while (c < ln && line[c] != ':')
                c++;
            size_t v = c < ln ? c + 1 : ln;
            if (v < ln && line[v] == ' ')
                v++;
            size_t vn = ln - v;
            if (c == 4 && memcmp(line, "data", 4) == 0) {
                if (has_data)
                    data[dn++] = '\n';
                memcpy(data + dn, line + v, vn);
                dn += vn;
                has_data = true;
                if (dn > bound) {
                    r->err = SL_ETOOBIG;
                    break;
                }
            } else if (c == 5 && memcmp(line, "event", 5) == 0) {
                memcpy(type, line + v, vn);
                tn = vn;
            } else if (c == 2 && memcmp(line, "id", 2) == 0) {
                if (memchr(line + v, '\0', vn) == NULL) {
                    memcpy(id, line + v, vn);
                    idn = vn;
                    id_in_block = true;
                }
            } else if (c == 5 && memcmp(line, "retry", 5) == 0 && vn > 0) {
                bool digits = true;
                for (size_t k = v; k < ln; k++)
                    digits = digits && line[k] >= '0' && line[k] <= '9';
                if (digits) {
                    retry = 0;
                    for (size_t k = v; k < ln; k++) {
                        int dg = line[k] - '0';
                        retry = retry > (INT64_MAX - dg) / 10 ? INT64_MAX : retry * 10 + dg;
                    }
                }
            }
        }
        ln = 0;
    }
    free(line);
    free(data);
    free(type);
    free(id);
}

static void check_bound(const char *in, size_t len, uint64_t seed, size_t bound)
{
    struct result whole, bytes, rnd, ref;
    decode(in, len, 0, 0, bound, &whole);
    decode(in, len, 1, 0, bound, &bytes);
    decode(in, len, SIZE_MAX, seed, bound, &rnd);
    model(in, len, bound, &ref);
    CHECK(same(&whole, &bytes));
    CHECK(same(&whole, &rnd));
    CHECK(same(&whole, &ref));
    result_free(&whole);
    result_free(&bytes);
    result_free(&rnd);
    result_free(&ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    uint64_t seed = 0x9E3779B97F4A7C15u; /* never zero: xorshift sticks at 0 */
    for (size_t i = 0; i < size && i < 8; i++)
        seed = (seed ^ data[i]) * 0x100000001B3u;
    if (seed == 0)
        seed = 1;
    check_bound(in, size, seed, BOUND_BIG);
    check_bound(in, size, seed, (size_t)(seed >> 32) % (BOUND_SMALL_MAX + 1));
    return 0;
}
