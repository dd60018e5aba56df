/* test_ingest.c - upstream SSE bytes into a log: fixtures whole and split at
 * every byte give the same events; what the OpenAI face drops is dropped;
 * cut, stalled and unfinished answers end with an error event. Also the
 * body splice that asks upstream for usage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "stream/ingest.h"
#include "pipeline/splice.h"

/* Where the log rebuilds coded chunks for a read (see stream/log.h). */
static struct sl_buf scratch = {NULL, 0, 0, 0, (size_t)1 << 30};

static char *read_fixture(const char *name, size_t *len)
{
    const char *dir = getenv("SL_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : SL_FIXTURES_DIR, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* The log as text: one line per event, "seq type choice text|raw". */
static char *dump(struct sl_log *log)
{
    struct sl_buf out;
    sl_buf_init(&out, 1 << 24);
    struct sl_log_cursor c;
    assert_int_equal(sl_log_cursor_init(log, &c, 0), SL_OK);
    struct sl_ev ev;
    while (sl_log_read(log, &c, &ev, &scratch) == 1) {
        assert_int_equal(sl_buf_printf(&out, "%llu %d %u [%.*s] %.*s\n", (unsigned long long)ev.seq,
                                       (int)ev.type, ev.choice, (int)ev.text_len, ev.text,
                                       (int)ev.raw_len, ev.raw),
                         SL_OK);
    }
    assert_int_equal(sl_buf_printf(&out, "ended=%d\n", sl_log_ended(log)), SL_OK);
    size_t n;
    char *s = sl_buf_take(&out, &n);
    char *z = realloc(s, n + 1);
    z[n] = '\0';
    return z;
}

/* Ingests bytes fed in pieces of `step` (0: whole), ends with err. */
static char *run(const char *in, size_t len, size_t step, int err, bool *complete)
{
    struct sl_log *log = sl_log_new(1 << 24);
    struct sl_ingest ing;
    sl_ingest_init(&ing, log, 1 << 20, 0);
    size_t off = 0;
    while (off < len) {
        size_t n = step == 0 || len - off < step ? len - off : step;
        /* One clock reading for all feeds: the metrics stay comparable. */
        if (sl_ingest_feed(&ing, in + off, n, 1) != SL_OK)
            break;
        off += n;
    }
    bool c = sl_ingest_end(&ing, err, "the upstream closed the connection mid-answer");
    if (complete)
        *complete = c;
    char *d = dump(log);
    sl_ingest_free(&ing);
    sl_log_free(log);
    return d;
}

static void test_fixtures_whole_and_split(void **state)
{
    (void)state;
    const char *files[] = {
        "vllm-0.9.2_qwen3-0.6b_chat-stream_no-reasoning-parser.sse",
        "vllm-issue-29408_2025_chat-stream_reasoning-fields_excerpt.sse",
        "vllm-issue-35705_2026_chat-stream_excerpt.sse",
        "vllm-issue-6083_2024_chat-stream_excerpt.sse",
    };
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        size_t len;
        char *in = read_fixture(files[f], &len);
        char *whole = run(in, len, 0, SL_OK, NULL);
        for (size_t step = 1; step <= 7; step++) {
            char *split = run(in, len, step, SL_OK, NULL);
            assert_string_equal(whole, split);
            free(split);
        }
        free(whole);
        free(in);
    }
}

static void test_capture_events(void **state)
{
    (void)state;
    size_t len;
    char *in = read_fixture("vllm-0.9.2_qwen3-0.6b_chat-stream_no-reasoning-parser.sse", &len);
    bool complete = false;
    char *d = run(in, len, 0, SL_OK, &complete);
    assert_true(complete);
    /* 6 chunks (the comment and [DONE] are not events): start, 4 content,
     * finish; then sluice's usage event, since the capture has none. */
    assert_non_null(strstr(d, "1 1 0 [] {\"id\""));
    assert_non_null(strstr(d, "2 2 0 [<think>]"));
    assert_non_null(strstr(d, "5 2 0 [ \xf0\x9f\x98\x8a]"));
    assert_non_null(strstr(d, "6 5 0 []"));
    assert_non_null(strstr(d, "\n7 6 0 [{\"finish_reason\":\"stop\",\"metrics\":{"));
    assert_null(strstr(d, "\n8 "));
    assert_null(strstr(d, "elided"));
    assert_null(strstr(d, "[DONE]"));
    free(d);
    free(in);
}

static void test_cut_stream_ends_with_error(void **state)
{
    (void)state;
    size_t len;
    char *in = read_fixture("vllm-issue-6083_2024_chat-stream_excerpt.sse", &len);
    bool complete = true;
    /* The excerpt has no finish: a clean close is still an unfinished answer. */
    char *d = run(in, len, 0, SL_OK, &complete);
    assert_false(complete);
    assert_non_null(strstr(d, "without a finish_reason"));
    assert_non_null(strstr(d, "ended=1"));
    free(d);
    /* Closed mid-answer. */
    d = run(in, len, 0, SL_ECLOSED, &complete);
    assert_false(complete);
    assert_non_null(strstr(d, "closed the connection mid-answer"));
    assert_non_null(strstr(d, "\"code\":502"));
    free(d);
    /* A stall is a timeout: 504. */
    d = run(in, len, 0, SL_ETIMEDOUT, &complete);
    assert_non_null(strstr(d, "\"code\":504"));
    free(d);
    free(in);
}

static void test_drops_what_openai_clients_choke_on(void **state)
{
    (void)state;
    const char in[] =
        ": keep-alive\n\n"
        "event: ping\n\n"
        "event: progress\ndata: {}\n\n"
        "data: "
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n"
        "data: {\"not\":\"a chunk\"}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"total_tokens\":5,"
        "\"completion_tokens\":2}}\n\n"
        "data: [DONE]\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"late\"}}]}\n\n";
    bool complete;
    char *d = run(in, sizeof in - 1, 0, SL_OK, &complete);
    assert_true(complete);
    assert_string_equal(
        d, "1 2 0 [hi] {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":"
           "null}]}\n"
           "2 5 0 [] {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n"
           "3 6 0 [{\"finish_reason\":\"stop\",\"metrics\":{\"ttft_ms\":1,\"tokens\":1,"
           "\"tokens_per_s\":0.0}}] {\"choices\":[],\"usage\":{\"prompt_tokens\":3,"
           "\"total_tokens\":5,\"completion_tokens\":2}}\n"
           "ended=1\n");
    free(d);
}

static void test_invalid_json_and_inband_error(void **state)
{
    (void)state;
    const char bad[] = "data: {\"choices\":[{\"index\":0,}]}\n\n"
                       "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n";
    bool complete;
    char *d = run(bad, sizeof bad - 1, 0, SL_OK, &complete);
    assert_false(complete);
    assert_non_null(strstr(d, "1 7 0 [] {\"error\""));
    assert_null(strstr(d, "\n2 "));
    free(d);
    const char inband[] =
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n"
        "data: {\"error\": {\"message\": \"boom\", \"type\": \"InternalServerError\", \"param\": "
        "null, \"code\": 500}}\n\n"
        "data: [DONE]\n\n";
    d = run(inband, sizeof inband - 1, 0, SL_OK, &complete);
    assert_false(complete);
    /* The upstream's own error bytes go on as they were; none is added. */
    assert_non_null(strstr(d, "2 7 0 [] {\"error\": {\"message\": \"boom\""));
    assert_null(strstr(d, "\n3 "));
    free(d);
}

static void splice(const char *in, const char *want)
{
    struct sl_buf b;
    sl_buf_init(&b, 1 << 16);
    assert_int_equal(
        sl_json_splice_member(in, strlen(in), "stream_options", "{\"include_usage\":true}", 22, &b),
        SL_OK);
    assert_int_equal(sl_buf_size(&b), strlen(want));
    assert_memory_equal(sl_buf_ptr(&b), want, strlen(want));
    sl_buf_free(&b);
}

static void test_splice_keeps_every_other_byte(void **state)
{
    (void)state;
    splice("{}", "{\"stream_options\":{\"include_usage\":true}}");
    splice("{ }", "{ \"stream_options\":{\"include_usage\":true}}");
    splice("{\"t\": 0.7, \"n\":12345678901234567890 }",
           "{\"t\": 0.7, \"n\":12345678901234567890 ,\"stream_options\":{\"include_usage\":true}}");
    splice("{\"a\":1, \"stream_options\" : {\"x\":[1,\"}\"]} ,\n \"b\":\"\\u00e9\"}\n",
           "{\"a\":1, \"stream_options\" : {\"include_usage\":true} ,\n \"b\":\"\\u00e9\"}\n");
    splice("{\"stream_options\":null,\"stream_options\":{}}",
           "{\"stream_options\":{\"include_usage\":true},\"stream_options\":{\"include_usage\":"
           "true}}");
    struct sl_buf b;
    sl_buf_init(&b, 1 << 16);
    assert_int_equal(sl_json_splice_member("[1]", 3, "k", "1", 1, &b), SL_EJSON);
    assert_int_equal(sl_buf_size(&b), 0);
    sl_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_whole_and_split),
        cmocka_unit_test(test_capture_events),
        cmocka_unit_test(test_cut_stream_ends_with_error),
        cmocka_unit_test(test_drops_what_openai_clients_choke_on),
        cmocka_unit_test(test_invalid_json_and_inband_error),
        cmocka_unit_test(test_splice_keeps_every_other_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
