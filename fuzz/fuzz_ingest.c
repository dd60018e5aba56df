/* fuzz_ingest.c - libFuzzer harness of the ingest pipeline (SSE decoder,
 * chunk reader, event typing) and of the body splice. Owns the invariants:
 * the log numbers events 1..N without gaps, ends exactly once, reports a
 * complete answer only with a finish and no error, gives the same log
 * whether bytes come whole or in feeds of the input's own choosing, and the
 * splice leaves every byte outside the member as it was. Aborts on a break. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream/ingest.h"
#include "pipeline/splice.h"

/* Where the log rebuilds coded chunks for a read (see stream/log.h). */
static struct sl_buf scratch = {NULL, 0, 0, 0, (size_t)1 << 30};

static void check(bool ok, const char *what, int line)
{
    if (!ok) {
        fprintf(stderr, "fuzz_ingest: invariant broken at line %d: %s\n", line, what);
        abort();
    }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

/* Ingests data in feeds sized by `sizes` (0: whole); returns a digest of the
 * log (FNV-1a over every event) and checks numbering. */
static uint64_t run(const uint8_t *data, size_t len, const uint8_t *sizes, size_t nsizes,
                    bool *complete)
{
    struct sl_log *log = sl_log_new(1 << 20);
    struct sl_ingest ing;
    sl_ingest_init(&ing, log, 4096, 0);
    size_t off = 0, k = 0;
    while (off < len) {
        size_t n = nsizes ? (size_t)(sizes[k++ % nsizes] % 17) + 1 : len;
        if (n > len - off)
            n = len - off;
        if (sl_ingest_feed(&ing, (const char *)data + off, n, off) != SL_OK)
            break;
        off += n;
    }
    *complete = sl_ingest_end(&ing, SL_OK, "end");
    CHECK(sl_log_ended(log));
    uint64_t h = 1469598103934665603ull;
    struct sl_log_cursor c;
    CHECK(sl_log_cursor_init(log, &c, 0) == SL_OK);
    struct sl_ev ev;
    uint64_t want = 1;
    bool saw_error = false, saw_finish = false;
    while (sl_log_read(log, &c, &ev, &scratch) == 1) {
        CHECK(ev.seq == want);
        want++;
        saw_error |= ev.type == SL_EV_ERROR;
        saw_finish |= ev.type == SL_EV_FINISH;
        for (size_t i = 0; i < ev.raw_len; i++)
            h = (h ^ (uint8_t)ev.raw[i]) * 1099511628211ull;
        h = (h ^ ev.type) * 1099511628211ull;
    }
    CHECK(want - 1 == sl_log_last_seq(log));
    if (*complete)
        CHECK(saw_finish && !saw_error);
    else
        CHECK(saw_error);
    sl_ingest_free(&ing);
    sl_log_free(log);
    return h;
}

static void fuzz_splice(const uint8_t *data, size_t len)
{
    json_t *root = json_loadb((const char *)data, len, 0, NULL);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        return;
    }
    struct sl_buf out;
    /* Every occurrence of the member is replaced (duplicates too): each
     * value is at least 1 byte of at least 18 ("stream_options":0,), and
     * the new one 7, so out grows by at most len / 3, or by the member and
     * a comma when added. */
    sl_buf_init(&out, len + len / 3 + 64);
    int rc = sl_json_splice_member((const char *)data, len, "stream_options", "{\"x\":1}", 7, &out);
    CHECK(rc == SL_OK);
    json_t *back = json_loadb(sl_buf_ptr(&out), sl_buf_size(&out), 0, NULL);
    CHECK(back != NULL);
    json_t *so = json_object_get(back, "stream_options");
    CHECK(json_is_object(so) && json_integer_value(json_object_get(so, "x")) == 1);
    /* Every other member is the same value as before. */
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "stream_options") != 0)
            CHECK(json_equal(v, json_object_get(back, key)));
    }
    CHECK(json_object_size(back) ==
          json_object_size(root) + (json_object_get(root, "stream_options") ? 0 : 1));
    json_decref(back);
    json_decref(root);
    sl_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool c1, c2;
    uint64_t whole = run(data, size, NULL, 0, &c1);
    uint64_t split = run(data, size, data, size < 8 ? size : 8, &c2);
    CHECK(whole == split && c1 == c2);
    fuzz_splice(data, size);
    return 0;
}
