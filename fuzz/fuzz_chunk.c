/* fuzz_chunk.c - libFuzzer harness of the chunk reader (pipeline/chunk).
 * Owns: the invariants checked on every input (the code matches the kind,
 * every span inside the input, nchoices bounded, string spans unescape,
 * raw spans re-read as JSON) and a cross-check of validity against jansson.
 * Does not own: the reader. Aborts on a broken invariant. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/chunk.h"

/* Ceilings for decoding string spans: one that always fits (a body never
 * decodes longer than it is) and one small enough to hit. */
#define SMALL_TEXT_MAX 16

static void check(bool ok, const char *what, int line)
{
    if (!ok) {
        fprintf(stderr, "fuzz_chunk: invariant broken at line %d: %s\n", line, what);
        abort();
    }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

/* sp lies inside buf[0..len); an absent span is {NULL, 0}. */
static bool inside(struct sl_span sp, const char *buf, size_t len)
{
    if (sp.p == NULL)
        return sp.n == 0;
    return sp.p >= buf && (size_t)(sp.p - buf) <= len && sp.n <= len - (size_t)(sp.p - buf);
}

/* A string body decodes: always into a buffer as big as the body, and into
 * a small one fully or not at all. */
static void check_unescape(struct sl_span sp)
{
    struct sl_buf big, small;
    sl_buf_init(&big, sp.n);
    sl_buf_init(&small, SMALL_TEXT_MAX);
    CHECK(sl_json_unescape(sp.p, sp.n, &big) == SL_OK);
    CHECK(sl_buf_size(&big) <= sp.n);
    int rc = sl_json_unescape(sp.p, sp.n, &small);
    CHECK(rc == SL_OK || rc == SL_ETOOBIG);
    if (rc == SL_OK) {
        CHECK(sl_buf_size(&small) == sl_buf_size(&big));
        CHECK(memcmp(sl_buf_ptr(&small), sl_buf_ptr(&big), sl_buf_size(&big)) == 0);
    } else {
        CHECK(sl_buf_size(&small) == 0);
        CHECK(sl_buf_size(&big) > SMALL_TEXT_MAX);
    }
    sl_buf_free(&big);
    sl_buf_free(&small);
}

/* A raw value span nested in the input is itself one valid JSON value. It
 * is read inside brackets, so that a nested object with a "choices" member
 * is not taken for a chunk with too many choices; its depth was at most
 * SL_CHUNK_MAX_DEPTH - 1 where it was found, so the bracket fits. */
static void check_reread(struct sl_span sp)
{
    char *wrapped = malloc(sp.n + 2);
    CHECK(wrapped != NULL);
    wrapped[0] = '[';
    memcpy(wrapped + 1, sp.p, sp.n);
    wrapped[sp.n + 1] = ']';
    struct sl_chunk again;
    CHECK(sl_chunk_read(wrapped, sp.n + 2, &again) == SL_OK);
    CHECK(again.kind == SL_CHUNK_OTHER);
    free(wrapped);
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_done(const char *p, size_t n)
{
    while (n > 0 && is_ws(*p)) {
        p++;
        n--;
    }
    while (n > 0 && is_ws(p[n - 1]))
        n--;
    return n == 6 && memcmp(p, "[DONE]", 6) == 0;
}

static void check_chunk(const char *buf, size_t len, int rc, const struct sl_chunk *c)
{
    CHECK(rc == SL_OK || rc == SL_EJSON);
    CHECK((rc == SL_OK) == (c->kind != SL_CHUNK_INVALID));
    CHECK((c->kind == SL_CHUNK_DONE) == is_done(buf, len));
    CHECK(c->nchoices <= SL_CHUNK_MAX_CHOICES);
    if (c->kind == SL_CHUNK_INVALID || c->kind == SL_CHUNK_DONE) {
        CHECK(c->nchoices == 0 && !c->has_usage && c->created == -1 && c->error_code == 0);
        CHECK(c->id.p == NULL && c->object.p == NULL && c->model.p == NULL);
        CHECK(c->error.p == NULL && c->error_message.p == NULL && c->error_type.p == NULL);
        return;
    }
    CHECK(inside(c->id, buf, len) && inside(c->object, buf, len) && inside(c->model, buf, len));
    CHECK(inside(c->error, buf, len));
    CHECK(inside(c->error_message, buf, len) && inside(c->error_type, buf, len));
    if (c->kind == SL_CHUNK_ERROR) {
        CHECK(c->error.n > 0);
        CHECK(c->error_message.p == NULL || inside(c->error_message, c->error.p, c->error.n));
        CHECK(c->error_type.p == NULL || inside(c->error_type, c->error.p, c->error.n));
        const char *top = buf;
        while (top < buf + len && is_ws(*top))
            top++;
        if (c->error.p != top) /* not the old shape's whole object */
            check_reread(c->error);
        check_unescape(c->error_message);
        check_unescape(c->error_type);
    } else {
        CHECK(c->error.p == NULL && c->error.n == 0 && c->error_code == 0);
    }
    check_unescape(c->id);
    check_unescape(c->model);
    for (size_t i = 0; i < c->nchoices; i++) {
        const struct sl_chunk_choice *ch = &c->choices[i];
        const struct sl_span spans[] = {ch->role,       ch->content,       ch->reasoning,  ch->text,
                                        ch->tool_calls, ch->finish_reason, ch->stop_reason};
        for (size_t k = 0; k < sizeof spans / sizeof spans[0]; k++)
            CHECK(inside(spans[k], buf, len));
        CHECK(ch->has_role || ch->role.n == 0);
        CHECK(ch->has_content || ch->content.n == 0);
        CHECK(ch->has_reasoning || ch->reasoning.n == 0);
        CHECK(ch->has_text || ch->text.n == 0);
        CHECK(ch->has_finish || ch->finish_reason.n == 0);
        CHECK(ch->has_tool_calls == (ch->tool_calls.n > 0));
        if (c->kind != SL_CHUNK_DATA)
            continue;
        check_unescape(ch->role);
        check_unescape(ch->content);
        check_unescape(ch->reasoning);
        check_unescape(ch->text);
        check_unescape(ch->finish_reason);
        if (ch->has_tool_calls) {
            CHECK(ch->tool_calls.p[0] == '[' && ch->tool_calls.p[ch->tool_calls.n - 1] == ']');
            check_reread(ch->tool_calls);
        }
        if (ch->stop_reason.n > 0)
            check_reread(ch->stop_reason);
    }
}

/* Containers on the deepest path of a jansson value. */
static size_t depth(json_t *j)
{
    size_t d = 0;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            size_t e = depth(v);
            d = e > d ? e : d;
        }
        return d + 1;
    }
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            size_t e = depth(v);
            d = e > d ? e : d;
        }
        return d + 1;
    }
    return 0;
}

/* jansson took the input and the reader did not: fine only for the
 * reader's own bounds (depth, choices) or when jansson kept the last of
 * duplicate members and the reader met a "choices" member jansson dropped. */
static bool reader_may_refuse(const uint8_t *data, size_t size, json_t *j)
{
    if (depth(j) > SL_CHUNK_MAX_DEPTH)
        return true;
    json_t *choices = json_is_object(j) ? json_object_get(j, "choices") : NULL;
    if (json_is_array(choices)) {
        size_t objects = 0, i;
        json_t *v;
        json_array_foreach(choices, i, v) objects += json_is_object(v);
        if (objects > SL_CHUNK_MAX_CHOICES)
            return true;
    }
    if (memmem(data, size, "\"choices\"", 9) != NULL) {
        json_error_t err;
        json_t *strict =
            json_loadb((const char *)data, size,
                       JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &err);
        json_decref(strict);
        if (strict == NULL && json_error_code(&err) == json_error_duplicate_key)
            return true;
    }
    return false;
}

/* The reader took the input and jansson did not: fine only where jansson is
 * stricter by choice. It validates UTF-8 (the reader passes bytes through),
 * refuses integers past int64 and reals past double (the grammar has no
 * bound), a NUL in a key, and lone surrogate escapes (the grammar allows
 * them; sl_json_unescape makes them U+FFFD). */
static bool jansson_may_refuse(const json_error_t *err)
{
    switch (json_error_code(err)) {
    case json_error_invalid_utf8:
    case json_error_numeric_overflow:
    case json_error_null_byte_in_key:
        return true;
    case json_error_invalid_syntax:
        return strncmp(err->text, "invalid Unicode '", 17) == 0;
    default:
        return false;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct sl_chunk c;
    int rc = sl_chunk_read(buf, size, &c);
    check_chunk(buf, size, rc, &c);

    /* The same input read again gives the same answer. */
    struct sl_chunk again;
    CHECK(sl_chunk_read(buf, size, &again) == rc && again.kind == c.kind &&
          again.nchoices == c.nchoices);

    /* The raw input as a string body: any bytes, never a crash. */
    struct sl_buf out;
    sl_buf_init(&out, SMALL_TEXT_MAX);
    int urc = sl_json_unescape(buf, size, &out);
    CHECK(urc == SL_OK || urc == SL_EJSON || urc == SL_ETOOBIG);
    CHECK(urc == SL_OK || sl_buf_size(&out) == 0);
    sl_buf_free(&out);

    if (c.kind == SL_CHUNK_DONE) /* not JSON; sluice's own literal */
        return 0;
    /* A raw NUL byte is never JSON, in a string or between tokens. jansson
     * 2.14 drops one that follows a number or a literal (its stream takes a
     * NUL put back after lookahead for the end of its buffer), so such an
     * input is checked here and not against jansson. */
    if (memchr(data, '\0', size) != NULL) {
        CHECK(rc == SL_EJSON);
        return 0;
    }
    json_error_t err;
    json_t *j = json_loadb(buf, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (j != NULL) {
        if (rc != SL_OK && !reader_may_refuse(data, size, j)) {
            fprintf(stderr, "fuzz_chunk: jansson accepts, the reader refuses\n");
            abort();
        }
        json_decref(j);
    } else if (rc == SL_OK && !jansson_may_refuse(&err)) {
        fprintf(stderr, "fuzz_chunk: the reader accepts, jansson refuses: %s (code %d)\n", err.text,
                (int)json_error_code(&err));
        abort();
    }
    return 0;
}
