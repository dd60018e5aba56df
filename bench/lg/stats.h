/* stats.h - the load generator's exact samples and their percentiles.
 * Owns: growable arrays of nanosecond samples with a ceiling, nearest-rank
 * percentiles over them, and writing a summary as JSON. Does not own:
 * what is sampled or when (loadgen.c decides). */
#ifndef LG_STATS_H
#define LG_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

/* Samples kept per kind: 32 M (256 MiB) is 20x the inter-token gaps of a
 * 30 s run at 50,000 tokens/s. Past it samples are counted as dropped (the
 * maximum stays exact) rather than growing without a bound. */
#define LG_SAMPLES_MAX (32u * 1024 * 1024)

struct lg_samples {
    uint64_t *v; /* owned */
    size_t n, cap;
    uint64_t dropped; /* samples past LG_SAMPLES_MAX (or lost to ENOMEM) */
    uint64_t max;     /* over all samples, dropped ones included */
};

struct lg_summary {
    uint64_t n; /* samples kept */
    double p50_ms, p90_ms, p99_ms, max_ms;
};

void lg_samples_init(struct lg_samples *s);
void lg_samples_free(struct lg_samples *s);
/* Adds one sample in nanoseconds; never fails (see dropped). */
void lg_samples_add(struct lg_samples *s, uint64_t ns);
/* Sorts the samples in place and fills *out (all zero when empty). The
 * percentile p is the nearest rank: the smallest sample with at least p%
 * of the samples at or below it. */
void lg_samples_summarize(struct lg_samples *s, struct lg_summary *out);
/* Appends "name":{"n":..,"p50":..,"p90":..,"p99":..,"max":..} (ms). */
SL_WARN_UNUSED int lg_summary_json(struct sl_buf *b, const char *name, const struct lg_summary *sm);

#endif
