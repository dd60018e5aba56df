/* fuzz_json_escape.c - libFuzzer harness of the hot-path JSON string
 * writers in core/buf.c. Owns the invariants: whatever the bytes, the
 * output is one JSON string that jansson reads back as exactly the input
 * (when the input is valid UTF-8), in both the raw-UTF-8 and the
 * ASCII-only spellings; the ASCII one holds no byte past 0x7f; a ceiling too
 * small leaves the buffer as it was. Aborts on a break. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

static void check(bool ok, const char *what, int line)
{
    if (!ok) {
        fprintf(stderr, "fuzz_json_escape: invariant broken at line %d: %s\n", line, what);
        abort();
    }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

static void round_trip(const uint8_t *data, size_t size, bool ascii)
{
    struct sl_buf b;
    sl_buf_init(&b, size * 12 + 16);
    int rc = ascii ? sl_buf_put_json_str_ascii(&b, (const char *)data, size)
                   : sl_buf_put_json_str(&b, (const char *)data, size);
    CHECK(rc == SL_OK);
    if (ascii)
        for (size_t i = 0; i < sl_buf_size(&b); i++)
            CHECK((unsigned char)sl_buf_ptr(&b)[i] < 0x80);
    json_error_t err;
    json_t *v = json_loadb(sl_buf_ptr(&b), sl_buf_size(&b), JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    /* jansson refuses invalid UTF-8 in the input; the raw writer passes it
     * on unchanged, and the ASCII one turns it into U+FFFD. */
    json_t *probe = json_stringn((const char *)data, size);
    bool valid = probe != NULL;
    json_decref(probe);
    if (valid) {
        CHECK(v != NULL && json_is_string(v));
        CHECK(json_string_length(v) == size);
        CHECK(memcmp(json_string_value(v), data, size) == 0);
    }
    json_decref(v);
    /* A ceiling one byte short: nothing is written. */
    struct sl_buf small;
    sl_buf_init(&small, sl_buf_size(&b) - 1);
    rc = ascii ? sl_buf_put_json_str_ascii(&small, (const char *)data, size)
               : sl_buf_put_json_str(&small, (const char *)data, size);
    CHECK(rc == SL_ETOOBIG && sl_buf_size(&small) == 0);
    sl_buf_free(&small);
    sl_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    round_trip(data, size, false);
    round_trip(data, size, true);
    return 0;
}
