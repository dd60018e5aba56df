/* alloc.c - the fault plan behind sl_malloc and friends (see alloc.h).
 * Owns: counting allocations per site and failing the planned ones. Does
 * not own: allocation itself (the C library's), nor the release build,
 * where the macros call the C library directly and this is all stubs. */
#include "core/alloc.h"

#include <stdatomic.h>
#include <string.h>

#ifdef SL_ALLOC_FAULTS

/* armed is the one load an unplanned allocation pays; the rest is read
 * only while a plan runs. Atomics keep a stray thread (curl's resolver
 * does not use these calls, but a test might) from a data race. */
static atomic_bool armed;
static const char *plan_site;
static unsigned long plan_first, plan_last;
static atomic_ulong counted, failed;

static bool site_matches(const char *file, const char *func)
{
    if (plan_site == NULL)
        return true;
    if (strcmp(func, plan_site) == 0)
        return true;
    size_t fl = strlen(file), sl = strlen(plan_site);
    return fl > sl && file[fl - sl - 1] == '/' && strcmp(file + fl - sl, plan_site) == 0;
}

/* True when this allocation is one the plan fails. */
static bool planned_failure(const char *file, const char *func)
{
    if (!atomic_load_explicit(&armed, memory_order_relaxed) || !site_matches(file, func))
        return false;
    unsigned long n = atomic_fetch_add(&counted, 1) + 1;
    if (n < plan_first || n > plan_last)
        return false;
    atomic_fetch_add(&failed, 1);
    return true;
}

void *sl__alloc_malloc(size_t n, const char *file, const char *func)
{
    return planned_failure(file, func) ? NULL : malloc(n);
}

void *sl__alloc_calloc(size_t k, size_t n, const char *file, const char *func)
{
    return planned_failure(file, func) ? NULL : calloc(k, n);
}

void *sl__alloc_realloc(void *p, size_t n, const char *file, const char *func)
{
    return planned_failure(file, func) ? NULL : realloc(p, n);
}

int sl_alloc_fail(const char *site, unsigned long first, unsigned long last)
{
    if (first > last && first != 0)
        return SL_EINVAL;
    atomic_store(&armed, false);
    plan_site = site;
    plan_first = first;
    plan_last = last;
    atomic_store(&counted, 0);
    atomic_store(&failed, 0);
    atomic_store(&armed, first != 0);
    return SL_OK;
}

unsigned long sl_alloc_counted(void)
{
    return atomic_load(&counted);
}

unsigned long sl_alloc_failed(void)
{
    return atomic_load(&failed);
}

bool sl_alloc_faults_built(void)
{
    return true;
}

#else

int sl_alloc_fail(const char *site, unsigned long first, unsigned long last)
{
    (void)site;
    (void)first;
    (void)last;
    return SL_ENOTIMPL;
}

unsigned long sl_alloc_counted(void)
{
    return 0;
}

unsigned long sl_alloc_failed(void)
{
    return 0;
}

bool sl_alloc_faults_built(void)
{
    return false;
}

#endif

/* "[SITE:]FIRST[-LAST]": digits only, FIRST >= 1. */
static int parse_plan(const char *v, const char **site, size_t *site_len, unsigned long *first,
                      unsigned long *last)
{
    const char *colon = strrchr(v, ':');
    const char *num = colon ? colon + 1 : v;
    *site = colon ? v : NULL;
    *site_len = colon ? (size_t)(colon - v) : 0;
    if (colon && colon == v)
        return SL_EINVAL;
    char *end;
    if (*num < '0' || *num > '9')
        return SL_EINVAL;
    *first = strtoul(num, &end, 10);
    *last = *first;
    if (*end == '-') {
        const char *l = end + 1;
        if (*l < '0' || *l > '9')
            return SL_EINVAL;
        *last = strtoul(l, &end, 10);
    }
    if (*end != '\0' || *first == 0 || *first > *last)
        return SL_EINVAL;
    return SL_OK;
}

int sl_alloc_fail_from_env(void)
{
    const char *v = getenv("SL_FAIL_ALLOC");
    if (v == NULL || *v == '\0')
        return SL_OK;
    const char *site;
    size_t site_len;
    unsigned long first, last;
    if (parse_plan(v, &site, &site_len, &first, &last) != SL_OK)
        return SL_EINVAL;
    if (!sl_alloc_faults_built())
        return SL_ENOTIMPL;
    /* The site is copied once and kept for the life of the process. */
    static char site_buf[SL_ALLOC_SITE_MAX + 1];
    if (site && site_len > SL_ALLOC_SITE_MAX)
        return SL_EINVAL;
    if (site) {
        memcpy(site_buf, site, site_len);
        site_buf[site_len] = '\0';
    }
    int rc = sl_alloc_fail(site ? site_buf : NULL, first, last);
    return rc == SL_OK ? 1 : rc;
}
