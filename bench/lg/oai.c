/* oai.c - the load generator's scan of OpenAI stream events (see oai.h).
 * Owns: one pass over the data that steps from string to string, takes a
 * string followed by a colon as a member name and looks at the first bytes
 * of its value. Does not own: validating JSON (a broken chunk shows up as
 * lost tokens or a missing [DONE], which the caller counts). */
#include "lg/oai.h"

#include <stdint.h>
#include <string.h>

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The closing quote of the string whose body starts at s, or NULL. */
static const char *string_end(const char *s, const char *end)
{
    const char *r = s;
    while (r < end) {
        r = memchr(r, '"', (size_t)(end - r));
        if (r == NULL)
            return NULL;
        size_t bs = 0;
        while (r - (ptrdiff_t)bs - 1 >= s && r[-(ptrdiff_t)bs - 1] == '\\')
            bs++;
        if (bs % 2 == 0)
            return r;
        r++;
    }
    return NULL;
}

typedef void member_cb(void *ud, const char *name, size_t nlen, const char *v, size_t vlen);

/* Calls cb for every member (at any depth) with its value's bytes to the end
 * of the data. Strings are skipped whole, so their text never matches. */
static void walk(const char *d, size_t n, member_cb *cb, void *ud)
{
    const char *p = d, *end = d + n;
    while (p < end) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (q == NULL)
            return;
        const char *e = string_end(q + 1, end);
        if (e == NULL)
            return;
        p = e + 1;
        while (p < end && is_ws(*p))
            p++;
        if (p == end || *p != ':')
            continue; /* a value, not a name */
        p++;
        while (p < end && is_ws(*p))
            p++;
        if (p == end)
            return;
        cb(ud, q + 1, (size_t)(e - q - 1), p, (size_t)(end - p));
    }
}

static bool is(const char *name, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(name, want, n) == 0;
}

static bool starts(const char *v, size_t n, const char *lit)
{
    size_t ln = strlen(lit);
    return n >= ln && memcmp(v, lit, ln) == 0;
}

/* A "[", then is the array non-empty? */
static bool array_nonempty(const char *v, size_t n)
{
    size_t i = 1;
    while (i < n && is_ws(v[i]))
        i++;
    return i < n && v[i] != ']';
}

static void event_member(void *ud, const char *name, size_t nlen, const char *v, size_t vlen)
{
    struct lg_oai_ev *ev = ud;
    bool null = starts(v, vlen, "null");
    if (is(name, nlen, "error")) {
        ev->error |= !null;
    } else if (is(name, nlen, "object")) {
        ev->error |= starts(v, vlen, "\"error\"");
    } else if (is(name, nlen, "choices")) {
        ev->usage = v[0] == '[' && !array_nonempty(v, vlen);
    } else if (is(name, nlen, "role")) {
        ev->role = true;
    } else if (is(name, nlen, "finish_reason")) {
        ev->finish = !null;
    } else if (is(name, nlen, "content") || is(name, nlen, "reasoning_content") ||
               is(name, nlen, "reasoning") || is(name, nlen, "text") ||
               is(name, nlen, "tool_calls")) {
        if (null)
            return;
        ev->payload = true;
        if ((v[0] == '"' && vlen >= 2 && v[1] != '"') || (v[0] == '[' && array_nonempty(v, vlen)))
            ev->nonempty = true;
    }
}

void lg_oai_classify(const char *data, size_t len, struct lg_oai_ev *out)
{
    memset(out, 0, sizeof *out);
    const char *d = data;
    size_t n = len;
    while (n > 0 && is_ws(d[0])) {
        d++;
        n--;
    }
    while (n > 0 && is_ws(d[n - 1]))
        n--;
    if (n == 6 && memcmp(d, "[DONE]", 6) == 0) {
        out->done = true;
        return;
    }
    walk(d, n, event_member, out);
    out->token = !out->error && !out->usage && !out->role && out->payload;
}

struct body_scan {
    bool ignore_eos;
    long long max_tokens;
};

static void body_member(void *ud, const char *name, size_t nlen, const char *v, size_t vlen)
{
    struct body_scan *b = ud;
    if (is(name, nlen, "ignore_eos")) {
        b->ignore_eos = starts(v, vlen, "true");
    } else if (is(name, nlen, "max_tokens") || is(name, nlen, "max_completion_tokens")) {
        long long x = 0;
        size_t i = 0;
        for (; i < vlen && i < 12 && v[i] >= '0' && v[i] <= '9'; i++)
            x = x * 10 + (v[i] - '0');
        if (i > 0)
            b->max_tokens = x;
    }
}

long long lg_oai_expected_tokens(const char *body, size_t len)
{
    struct body_scan b = {false, -1};
    walk(body, len, body_member, &b);
    return b.ignore_eos ? b.max_tokens : -1;
}
