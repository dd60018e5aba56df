/* stats.c - exact samples and nearest-rank percentiles (see stats.h).
 * Owns: the sample arrays and their growth under LG_SAMPLES_MAX. Does not
 * own: clocks. Sorting 1.5 M samples at the end of a run takes ~0.1 s,
 * which buys exact tails instead of histogram buckets. */
#include "lg/stats.h"

#include <stdlib.h>

void lg_samples_init(struct lg_samples *s)
{
    s->v = NULL;
    s->n = s->cap = 0;
    s->dropped = 0;
    s->max = 0;
}

void lg_samples_free(struct lg_samples *s)
{
    free(s->v);
    lg_samples_init(s);
}

void lg_samples_add(struct lg_samples *s, uint64_t ns)
{
    if (ns > s->max)
        s->max = ns;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        if (cap > LG_SAMPLES_MAX)
            cap = LG_SAMPLES_MAX;
        uint64_t *v = cap > s->cap ? realloc(s->v, cap * sizeof *v) : NULL;
        if (v == NULL) {
            s->dropped++;
            return;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double rank_ms(const struct lg_samples *s, double p)
{
    /* nearest rank: ceil(p/100 * n), 1-based */
    size_t k = (size_t)((p / 100.0) * (double)s->n);
    if ((double)k < (p / 100.0) * (double)s->n)
        k++;
    if (k == 0)
        k = 1;
    return (double)s->v[k - 1] / 1e6;
}

void lg_samples_summarize(struct lg_samples *s, struct lg_summary *out)
{
    out->n = s->n;
    out->p50_ms = out->p90_ms = out->p99_ms = out->max_ms = 0;
    if (s->n == 0)
        return;
    qsort(s->v, s->n, sizeof s->v[0], cmp_u64);
    out->p50_ms = rank_ms(s, 50);
    out->p90_ms = rank_ms(s, 90);
    out->p99_ms = rank_ms(s, 99);
    out->max_ms = (double)s->max / 1e6;
}

int lg_summary_json(struct sl_buf *b, const char *name, const struct lg_summary *sm)
{
    return sl_buf_printf(b,
                         "\"%s\":{\"n\":%llu,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
                         "\"max\":%.3f}",
                         name, (unsigned long long)sm->n, sm->p50_ms, sm->p90_ms, sm->p99_ms,
                         sm->max_ms);
}
