/* alloc.h - the heap, through one door that a test build can shut.
 * Owns: sl_malloc, sl_calloc and sl_realloc, and in builds with
 * SL_ALLOC_FAULTS (the sanitized test build) the fault plan that makes
 * chosen allocations fail. Does not own: what a caller does when one fails
 * (it answers SL_ENOMEM, or closes what it cannot serve). */
#ifndef SL_ALLOC_H
#define SL_ALLOC_H

#include <stdbool.h>
#include <stdlib.h>

#include "core/err.h"

/* Bytes of the SITE in SL_FAIL_ALLOC (a function name or a path tail). */
#define SL_ALLOC_SITE_MAX 127

#ifdef SL_ALLOC_FAULTS
/* Each allocation names its site (the calling file and function) so that
 * a plan can fail the allocations of one site only. */
void *sl__alloc_malloc(size_t n, const char *file, const char *func);
void *sl__alloc_calloc(size_t k, size_t n, const char *file, const char *func);
void *sl__alloc_realloc(void *p, size_t n, const char *file, const char *func);
#define sl_malloc(n)     sl__alloc_malloc((n), __FILE__, __func__)
#define sl_calloc(k, n)  sl__alloc_calloc((k), (n), __FILE__, __func__)
#define sl_realloc(p, n) sl__alloc_realloc((p), (n), __FILE__, __func__)
#else
/* The release build: the C library's calls themselves, nothing between. */
#define sl_malloc(n)     malloc(n)
#define sl_calloc(k, n)  calloc((k), (n))
#define sl_realloc(p, n) realloc((p), (n))
#endif
/* free() frees what any of them returns: the hook never changes the
 * allocator, only whether it is called. */

/* The fault plan (SL_ALLOC_FAULTS builds; elsewhere every call below
 * returns SL_ENOTIMPL or 0 and allocations never fail on purpose).
 * Counting starts at the call: the allocations numbered first..last (from
 * 1) among those made at site fail, the others are served. site is NULL
 * for every allocation, or a function name ("on_connection"), or the tail
 * of a source path ("http/server.c"); it must outlive the plan. first 0
 * disarms. Not for concurrent threads: tests and the startup of one
 * process set it. SL_EINVAL when first > last. */
SL_WARN_UNUSED int sl_alloc_fail(const char *site, unsigned long first, unsigned long last);
/* Allocations counted by the current plan (those at its site), and how many
 * of them it failed. */
unsigned long sl_alloc_counted(void);
unsigned long sl_alloc_failed(void);
/* True in builds where sl_alloc_fail works. */
bool sl_alloc_faults_built(void);

/* Reads SL_FAIL_ALLOC=[SITE:]FIRST[-LAST] from the environment and arms
 * that plan ("on_connection:1-3": the first three connections' state).
 * Returns SL_OK when the variable is absent, 1 when a plan was armed,
 * SL_EINVAL when it is malformed (or SITE is longer than
 * SL_ALLOC_SITE_MAX), SL_ENOTIMPL when the build has no hook. */
SL_WARN_UNUSED int sl_alloc_fail_from_env(void);

#endif
