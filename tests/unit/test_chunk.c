/* test_chunk.c - the chunk reader (pipeline/chunk): every data line of the
 * vLLM fixtures, error shapes old and new, usage, n=2, tool calls,
 * completions, reasoning taken once, malformed JSON of every kind (each
 * prefix of a chunk included), and sl_json_unescape. Inputs are copied into
 * buffers of their exact size so that ASan catches a read past the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <cmocka.h>

#include "core/buf.h"
#include "pipeline/chunk.h"

#define DEFAULT_FIXTURES SL_FIXTURES_DIR
#define TEXT_MAX         4096

static const char *fixtures_dir(void)
{
    const char *d = getenv("SL_FIXTURES");
    return d && *d ? d : DEFAULT_FIXTURES;
}

/* The copy the last read_n read: its spans stay valid until the next one. */
static char *parked;

/* Reads data[0..len) from a copy of exactly len bytes. */
static int read_n(const char *data, size_t len, struct sl_chunk *c)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, data, len);
    free(parked);
    parked = copy;
    return sl_chunk_read(copy, len, c);
}

static int read_s(const char *s, struct sl_chunk *c)
{
    return read_n(s, strlen(s), c);
}

static void expect_invalid_n(const char *s, size_t n)
{
    struct sl_chunk c;
    int rc = read_n(s, n, &c);
    if (rc != SL_EJSON || c.kind != SL_CHUNK_INVALID)
        fail_msg("accepted as valid (kind %d): %.*s", (int)c.kind, (int)n, s);
    /* Nothing half read is left for a caller that looks anyway. */
    assert_int_equal(c.nchoices, 0);
    assert_null(c.id.p);
    assert_null(c.error.p);
    assert_false(c.has_usage);
    assert_int_equal(c.created, -1);
}

static void expect_invalid(const char *s)
{
    expect_invalid_n(s, strlen(s));
}

static void expect_kind(const char *s, enum sl_chunk_kind kind)
{
    struct sl_chunk c;
    int rc = read_s(s, &c);
    if (rc != SL_OK || c.kind != kind)
        fail_msg("kind %d rc %d, want kind %d: %s", (int)c.kind, rc, (int)kind, s);
}

static bool span_is(struct sl_span sp, const char *want)
{
    return sp.n == strlen(want) && (sp.n == 0 || memcmp(sp.p, want, sp.n) == 0);
}

#define assert_span(sp, want)                                                                      \
    do {                                                                                           \
        if (!span_is((sp), (want)))                                                                \
            fail_msg("span \"%.*s\" != \"%s\"", (int)(sp).n, (sp).p ? (sp).p : "", (want));        \
    } while (0)

/* The decoded text of a string body equals want (want_len bytes). */
static void assert_text_n(struct sl_span sp, const char *want, size_t want_len)
{
    struct sl_buf b;
    sl_buf_init(&b, TEXT_MAX);
    assert_int_equal(sl_json_unescape(sp.p, sp.n, &b), SL_OK);
    if (sl_buf_size(&b) != want_len || memcmp(sl_buf_ptr(&b), want, want_len) != 0)
        fail_msg("text \"%.*s\" != \"%s\"", (int)sl_buf_size(&b), sl_buf_ptr(&b), want);
    sl_buf_free(&b);
}

static void assert_text(struct sl_span sp, const char *want)
{
    assert_text_n(sp, want, strlen(want));
}

/* One fixture file's text. */
static char *load(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", fixtures_dir(), name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open fixture %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* The data lines of an .sse fixture: one event's data each (the fixtures
 * carry one data line per event). */
struct lines {
    char *text;
    size_t n;
    const char *p[64];
    size_t len[64];
};

static void data_lines(const char *name, struct lines *out)
{
    size_t len;
    out->text = load(name, &len);
    out->n = 0;
    char *p = out->text, *end = out->text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        size_t ll = (size_t)(le - p);
        if (ll > 0 && p[ll - 1] == '\r')
            ll--;
        if (ll >= 5 && memcmp(p, "data:", 5) == 0) {
            assert_true(out->n < 64);
            size_t skip = ll > 5 && p[5] == ' ' ? 6 : 5;
            out->p[out->n] = p + skip;
            out->len[out->n] = ll - skip;
            out->n++;
        }
        p = nl ? nl + 1 : end;
    }
}

static void read_line(const struct lines *l, size_t i, struct sl_chunk *c)
{
    assert_true(i < l->n);
    assert_int_equal(read_n(l->p[i], l->len[i], c), SL_OK);
}

static void test_every_fixture_data_line(void **state)
{
    (void)state;
    DIR *d = opendir(fixtures_dir());
    if (d == NULL)
        fail_msg("cannot open %s", fixtures_dir());
    size_t files = 0, events = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        if (nl < 4 || strcmp(e->d_name + nl - 4, ".sse") != 0)
            continue;
        struct lines l;
        data_lines(e->d_name, &l);
        assert_true(l.n > 0);
        for (size_t i = 0; i < l.n; i++) {
            struct sl_chunk c;
            int rc = read_n(l.p[i], l.len[i], &c);
            if (rc != SL_OK || (c.kind != SL_CHUNK_DATA && c.kind != SL_CHUNK_DONE))
                fail_msg("%s line %zu: kind %d", e->d_name, i, (int)c.kind);
            if (c.kind == SL_CHUNK_DATA) {
                assert_int_equal(c.nchoices, 1);
                assert_span(c.object, "chat.completion.chunk");
                assert_true(c.created > 0);
                assert_true(c.id.n > 0 && c.model.n > 0);
                const struct sl_chunk_choice *ch = &c.choices[0];
                struct sl_buf b;
                sl_buf_init(&b, TEXT_MAX);
                if (ch->has_content)
                    assert_int_equal(sl_json_unescape(ch->content.p, ch->content.n, &b), SL_OK);
                if (ch->has_reasoning)
                    assert_int_equal(sl_json_unescape(ch->reasoning.p, ch->reasoning.n, &b), SL_OK);
                sl_buf_free(&b);
            }
            events++;
        }
        free(l.text);
        files++;
    }
    closedir(d);
    assert_true(files >= 4);
    assert_true(events >= 20);
}

static void test_capture_qwen3(void **state)
{
    (void)state;
    struct lines l;
    data_lines("vllm-0.9.2_qwen3-0.6b_chat-stream_no-reasoning-parser.sse", &l);
    assert_int_equal(l.n, 7);
    struct sl_chunk c;

    read_line(&l, 0, &c);
    assert_int_equal(c.kind, SL_CHUNK_DATA);
    assert_span(c.id, "chatcmpl-dc461701bc424bac9de697c529922071");
    assert_span(c.model, "Qwen/Qwen3-0.6B");
    assert_int_equal(c.created, 1753616032);
    assert_false(c.has_usage);
    const struct sl_chunk_choice *ch = &c.choices[0];
    assert_int_equal(ch->index, 0);
    assert_true(ch->has_role);
    assert_span(ch->role, "assistant");
    assert_true(ch->has_content);
    assert_int_equal(ch->content.n, 0);
    assert_false(ch->has_finish || ch->has_reasoning || ch->has_tool_calls || ch->has_text);
    assert_int_equal(ch->stop_reason.n, 0);

    const char *want[] = {"<think>", "\n", "", " \xf0\x9f\x98\x8a"};
    for (size_t i = 0; i < 4; i++) {
        read_line(&l, i + 1, &c);
        assert_int_equal(c.kind, SL_CHUNK_DATA);
        assert_false(c.choices[0].has_role);
        assert_true(c.choices[0].has_content);
        assert_text(c.choices[0].content, want[i]);
        assert_false(c.choices[0].has_finish);
    }
    assert_span(c.choices[0].content, " \xf0\x9f\x98\x8a"); /* raw UTF-8 passes through */

    read_line(&l, 5, &c);
    ch = &c.choices[0];
    assert_true(ch->has_content);
    assert_int_equal(ch->content.n, 0);
    assert_true(ch->has_finish);
    assert_span(ch->finish_reason, "stop");
    assert_span(ch->stop_reason, "null");

    read_line(&l, 6, &c);
    assert_int_equal(c.kind, SL_CHUNK_DONE);
    free(l.text);
}

static void test_2024_role_without_content(void **state)
{
    (void)state;
    struct lines l;
    data_lines("vllm-issue-6083_2024_chat-stream_excerpt.sse", &l);
    assert_int_equal(l.n, 6);
    struct sl_chunk c;
    read_line(&l, 0, &c);
    assert_int_equal(c.kind, SL_CHUNK_DATA);
    assert_span(c.id, "cmpl-840312ff78664572bb504e606140b952");
    assert_true(c.choices[0].has_role);
    assert_span(c.choices[0].role, "assistant");
    assert_false(c.choices[0].has_content);

    const char *want = "我是阿里云开发的一款";
    struct sl_buf all;
    sl_buf_init(&all, TEXT_MAX);
    for (size_t i = 1; i < l.n; i++) {
        read_line(&l, i, &c);
        assert_true(c.choices[0].has_content);
        assert_int_equal(sl_json_unescape(c.choices[0].content.p, c.choices[0].content.n, &all),
                         SL_OK);
    }
    assert_int_equal(sl_buf_size(&all), strlen(want));
    assert_memory_equal(sl_buf_ptr(&all), want, strlen(want));
    sl_buf_free(&all);
    free(l.text);
}

static void test_2025_reasoning_taken_once(void **state)
{
    (void)state;
    struct lines l;
    data_lines("vllm-issue-29408_2025_chat-stream_reasoning-fields_excerpt.sse", &l);
    assert_int_equal(l.n, 4);
    struct sl_chunk c;
    read_line(&l, 0, &c);
    const struct sl_chunk_choice *ch = &c.choices[0];
    assert_true(ch->has_reasoning);
    assert_text(ch->reasoning, "好的");
    /* One text: the span is the "reasoning" member's, taken once. */
    assert_memory_equal(ch->reasoning.p - 13, "\"reasoning\":\"", 13);
    assert_false(ch->has_content);

    const char *want[] = {"，", "用户", "让我"};
    for (size_t i = 0; i < 3; i++) {
        read_line(&l, i + 1, &c);
        ch = &c.choices[0];
        assert_true(ch->has_content);
        assert_text(ch->content, want[i]);
        assert_false(ch->has_reasoning); /* "reasoning_content":null does not count */
    }
    free(l.text);
}

static void test_reasoning_either_name(void **state)
{
    (void)state;
    struct sl_chunk c;
    /* reasoning first or second: the "reasoning" member wins. */
    assert_int_equal(
        read_s("{\"choices\":[{\"delta\":{\"reasoning_content\":\"old\",\"reasoning\":\"new\"}}]}",
               &c),
        SL_OK);
    assert_span(c.choices[0].reasoning, "new");
    assert_int_equal(read_s("{\"choices\":[{\"delta\":{\"reasoning_content\":\"only\"}}]}", &c),
                     SL_OK);
    assert_true(c.choices[0].has_reasoning);
    assert_span(c.choices[0].reasoning, "only");
    assert_int_equal(
        read_s("{\"choices\":[{\"delta\":{\"reasoning\":null,\"reasoning_content\":\"rc\"}}]}", &c),
        SL_OK);
    assert_span(c.choices[0].reasoning, "rc");
    assert_int_equal(
        read_s("{\"choices\":[{\"delta\":{\"reasoning\":null,\"reasoning_content\":null}}]}", &c),
        SL_OK);
    assert_false(c.choices[0].has_reasoning);
}

static void test_2026_excerpt(void **state)
{
    (void)state;
    struct lines l;
    data_lines("vllm-issue-35705_2026_chat-stream_excerpt.sse", &l);
    assert_int_equal(l.n, 3);
    struct sl_chunk c;
    read_line(&l, 0, &c);
    assert_span(c.choices[0].role, "assistant");
    assert_span(c.model, "qwen3_8b");
    read_line(&l, 1, &c);
    assert_text(c.choices[0].content, " .");
    read_line(&l, 2, &c);
    assert_text(c.choices[0].content, "<think>");
    free(l.text);
}

static void test_docs_example_is_invalid(void **state)
{
    (void)state;
    size_t len;
    char *text = load("vllm-docs_reasoning-outputs_stream-chunk_example.txt", &len);
    expect_invalid_n(text, len);
    /* Without the trailing comma it is a valid chunk. */
    char *comma = strstr(text, "\"is\",");
    assert_non_null(comma);
    comma[4] = ' ';
    struct sl_chunk c;
    assert_int_equal(read_n(text, len, &c), SL_OK);
    assert_int_equal(c.kind, SL_CHUNK_DATA);
    assert_span(c.choices[0].role, "assistant");
    assert_span(c.choices[0].reasoning, "is");
    free(text);
}

static void test_old_error_shape(void **state)
{
    (void)state;
    size_t len;
    char *text = load("vllm-0.9.2_error-400_tool-choice-auto-not-enabled.json", &len);
    struct sl_chunk c;
    assert_int_equal(read_n(text, len, &c), SL_OK);
    assert_int_equal(c.kind, SL_CHUNK_ERROR);
    assert_int_equal(c.error_code, 400);
    assert_span(c.error_type, "BadRequestError");
    assert_text(c.error_message, "\"auto\" tool choice requires --enable-auto-tool-choice and "
                                 "--tool-call-parser to be set");
    /* The whole object, without the file's final newline. */
    assert_int_equal(c.error.n, len - 1);
    assert_int_equal(c.error.p[0], '{');
    assert_int_equal(c.error.p[c.error.n - 1], '}');
    free(text);
}

static void test_new_error_shape(void **state)
{
    (void)state;
    const char *s = "{\"error\": {\"message\": \"boom\", \"type\": \"InternalServerError\", "
                    "\"param\": null, \"code\": 500}}";
    struct sl_chunk c;
    assert_int_equal(read_s(s, &c), SL_OK);
    assert_int_equal(c.kind, SL_CHUNK_ERROR);
    assert_span(c.error, "{\"message\": \"boom\", \"type\": \"InternalServerError\", "
                         "\"param\": null, \"code\": 500}");
    assert_span(c.error_message, "boom");
    assert_span(c.error_type, "InternalServerError");
    assert_int_equal(c.error_code, 500);

    /* OpenAI's codes may be strings or null: code 0. */
    assert_int_equal(
        read_s("{\"error\":{\"message\":\"bad key\",\"type\":\"invalid_request_error\","
               "\"param\":null,\"code\":\"invalid_api_key\"}}",
               &c),
        SL_OK);
    assert_int_equal(c.kind, SL_CHUNK_ERROR);
    assert_int_equal(c.error_code, 0);
    assert_span(c.error_message, "bad key");
    assert_int_equal(read_s("{\"error\":{\"message\":\"x\",\"code\":null}}", &c), SL_OK);
    assert_int_equal(c.kind, SL_CHUNK_ERROR);
    assert_int_equal(c.error_code, 0);
    assert_int_equal(c.error_type.n, 0);

    /* An error wins over choices; a string error is its own message. */
    assert_int_equal(read_s("{\"choices\":[],\"error\":\"stalled\"}", &c), SL_OK);
    assert_int_equal(c.kind, SL_CHUNK_ERROR);
    assert_span(c.error, "\"stalled\"");
    assert_span(c.error_message, "stalled");
    /* null and false mean no error (the openai SDK raises on a truthy one). */
    expect_kind("{\"error\":null,\"choices\":[]}", SL_CHUNK_DATA);
    expect_kind("{\"error\":false}", SL_CHUNK_OTHER);
    /* An "object" that is not "error" is no old-shape error. */
    expect_kind("{\"object\":\"errors\",\"message\":\"m\",\"code\":1}", SL_CHUNK_OTHER);
}

static void test_usage_chunk(void **state)
{
    (void)state;
    const char *s = "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
                    "\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,"
                    "\"total_tokens\":40,\"completion_tokens\":28,"
                    "\"prompt_tokens_details\":{\"cached_tokens\":0}}}";
    struct sl_chunk c;
    assert_int_equal(read_s(s, &c), SL_OK);
    assert_int_equal(c.kind, SL_CHUNK_DATA);
    assert_int_equal(c.nchoices, 0);
    assert_true(c.has_usage);
    assert_int_equal(c.prompt_tokens, 12);
    assert_int_equal(c.completion_tokens, 28);
    assert_int_equal(c.total_tokens, 40);

    assert_int_equal(read_s("{\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}", &c),
                     SL_OK);
    assert_false(c.has_usage);
    assert_int_equal(read_s("{\"choices\":[{\"delta\":{\"content\":\"a\"}}]}", &c), SL_OK);
    assert_false(c.has_usage);
    assert_int_equal(c.created, -1);
}

static void test_two_choices(void **state)
{
    (void)state;
    const char *s = "{\"id\":\"x\",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"b\"},"
                    "\"finish_reason\":null},{\"index\":0,\"delta\":{\"content\":\"a\"},"
                    "\"finish_reason\":\"length\",\"stop_reason\":151645}]}";
    struct sl_chunk c;
    assert_int_equal(read_s(s, &c), SL_OK);
    assert_int_equal(c.nchoices, 2);
    assert_int_equal(c.choices[0].index, 1);
    assert_span(c.choices[0].content, "b");
    assert_false(c.choices[0].has_finish);
    assert_int_equal(c.choices[1].index, 0);
    assert_span(c.choices[1].content, "a");
    assert_true(c.choices[1].has_finish);
    assert_span(c.choices[1].finish_reason, "length");
    assert_span(c.choices[1].stop_reason, "151645");

    /* Without "index" a choice's index is its position. */
    assert_int_equal(read_s("{\"choices\":[{\"text\":\"p\"},{\"text\":\"q\"}]}", &c), SL_OK);
    assert_int_equal(c.choices[1].index, 1);
    assert_span(c.choices[0].stop_reason, "");
    assert_int_equal(read_s("{\"choices\":[{\"stop_reason\":\"</s>\"}]}", &c), SL_OK);
    assert_span(c.choices[0].stop_reason, "\"</s>\"");
}

static void test_max_choices(void **state)
{
    (void)state;
    char s[1024];
    size_t n = (size_t)snprintf(s, sizeof s, "{\"choices\":[");
    for (int i = 0; i < SL_CHUNK_MAX_CHOICES; i++)
        n += (size_t)snprintf(s + n, sizeof s - n, "%s{\"index\":%d}", i ? "," : "", i);
    snprintf(s + n, sizeof s - n, "]}");
    struct sl_chunk c;
    assert_int_equal(read_s(s, &c), SL_OK);
    assert_int_equal(c.nchoices, SL_CHUNK_MAX_CHOICES);
    assert_int_equal(c.choices[SL_CHUNK_MAX_CHOICES - 1].index, SL_CHUNK_MAX_CHOICES - 1);
    snprintf(s + n, sizeof s - n, ",{}]}");
    expect_invalid(s);
    /* Elements that are not objects take no slot. */
    expect_kind("{\"choices\":[1,null,\"x\",[{}]]}", SL_CHUNK_DATA);
}

static void test_tool_call_chunk(void **state)
{
    (void)state;
    const char *calls = "[{\"index\":0,\"id\":\"chatcmpl-tool-5c3a\",\"type\":\"function\","
                        "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\": "
                        "\\\"Paris\\\", \\\"days\\\": [1, 2]}\"}}]";
    char s[512];
    snprintf(s, sizeof s,
             "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
             "\"delta\":{\"content\":null,\"tool_calls\":%s},\"logprobs\":null,"
             "\"finish_reason\":null}]}",
             calls);
    struct sl_chunk c;
    assert_int_equal(read_s(s, &c), SL_OK);
    assert_int_equal(c.kind, SL_CHUNK_DATA);
    assert_false(c.choices[0].has_content);
    assert_true(c.choices[0].has_tool_calls);
    assert_span(c.choices[0].tool_calls, calls);
    /* The raw span is itself a valid JSON value. */
    struct sl_chunk inner;
    assert_int_equal(sl_chunk_read(c.choices[0].tool_calls.p, c.choices[0].tool_calls.n, &inner),
                     SL_OK);
    assert_int_equal(inner.kind, SL_CHUNK_OTHER);

    assert_int_equal(read_s("{\"choices\":[{\"delta\":{\"tool_calls\":null}}]}", &c), SL_OK);
    assert_false(c.choices[0].has_tool_calls);
}

static void test_completions_text(void **state)
{
    (void)state;
    const char *s =
        "{\"id\":\"cmpl-9\",\"object\":\"text_completion\",\"created\":1753616032,"
        "\"model\":\"Qwen/Qwen3-0.6B\",\"choices\":[{\"index\":0,\"text\":\" Paris\\n\","
        "\"logprobs\":null,\"finish_reason\":null,\"stop_reason\":null,"
        "\"prompt_logprobs\":null}],\"usage\":null}";
    struct sl_chunk c;
    assert_int_equal(read_s(s, &c), SL_OK);
    assert_int_equal(c.kind, SL_CHUNK_DATA);
    assert_span(c.object, "text_completion");
    assert_true(c.choices[0].has_text);
    assert_text(c.choices[0].text, " Paris\n");
    assert_false(c.choices[0].has_content);
    assert_span(c.choices[0].stop_reason, "null");
}

static void test_members_any_order_unknown_skipped(void **state)
{
    (void)state;
    const char *s =
        " \r\n\t{\"choices\" : [ { \"logprobs\" : {\"content\":[{\"token\":\"a\",\"logprob\":-0.5,"
        "\"bytes\":[97],\"top_logprobs\":[]}]}, \"finish_reason\" : \"stop\", \"token_ids\":[1,2],"
        "\"delta\" : { \"x\":{\"content\":\"nested, not ours\"}, \"content\" : \"hi\" , "
        "\"role\":\"assistant\" } , \"index\" : 3 } ] ,\"model\":\"m\", \"weird\":[true,false,"
        "null,-0,1.5e-3,1E+2,{}], \"created\" : 7 , \"id\":\"i\"} \n";
    struct sl_chunk c;
    assert_int_equal(read_s(s, &c), SL_OK);
    assert_int_equal(c.kind, SL_CHUNK_DATA);
    assert_int_equal(c.choices[0].index, 3);
    assert_span(c.choices[0].content, "hi");
    assert_span(c.choices[0].role, "assistant");
    assert_span(c.choices[0].finish_reason, "stop");
    assert_span(c.model, "m");
    assert_span(c.id, "i");
    assert_int_equal(c.created, 7);

    /* Escaped keys are compared raw: this "choices" is an unknown member. */
    expect_kind("{\"choi\\u0063es\":[{\"delta\":{}}]}", SL_CHUNK_OTHER);
    /* Non-integral or out-of-range integers are ignored. */
    assert_int_equal(read_s("{\"created\":1.5,\"choices\":[{\"index\":-1}]}", &c), SL_OK);
    assert_int_equal(c.created, -1);
    assert_int_equal(c.choices[0].index, 0);
    assert_int_equal(read_s("{\"created\":99999999999999999999,\"choices\":[]}", &c), SL_OK);
    assert_int_equal(c.created, -1);
    assert_int_equal(read_s("{\"created\":-9223372036854775808,\"choices\":[]}", &c), SL_OK);
    assert_int_equal(c.created, INT64_MIN);
    assert_int_equal(read_s("{\"created\":9223372036854775807}", &c), SL_OK);
    assert_int_equal(c.created, INT64_MAX);
    assert_int_equal(read_s("{\"created\":9223372036854775808}", &c), SL_OK);
    assert_int_equal(c.created, -1);
}

static void test_kinds(void **state)
{
    (void)state;
    expect_kind("[DONE]", SL_CHUNK_DONE);
    expect_kind(" \t[DONE]\r\n", SL_CHUNK_DONE);
    expect_invalid("[DONE] x");
    expect_invalid("[ DONE ]");
    expect_invalid("[DONE]]");
    expect_invalid("[done]");
    expect_kind("{}", SL_CHUNK_OTHER);
    expect_kind("[]", SL_CHUNK_OTHER);
    expect_kind("0", SL_CHUNK_OTHER);
    expect_kind("\"x\"", SL_CHUNK_OTHER);
    expect_kind("null", SL_CHUNK_OTHER);
    expect_kind("{\"object\":\"list\",\"data\":[]}", SL_CHUNK_OTHER);
    expect_kind("{\"choices\":null}", SL_CHUNK_OTHER);
    expect_kind("{\"choices\":{}}", SL_CHUNK_OTHER);
    expect_kind("{\"choices\":[]}", SL_CHUNK_DATA);
    /* A later duplicate member replaces the earlier one. */
    expect_kind("{\"choices\":[],\"choices\":null}", SL_CHUNK_OTHER);
}

static void test_truncated_at_every_byte(void **state)
{
    (void)state;
    const char *chunks[] = {
        "{\"id\":\"chatcmpl-dc46\",\"object\":\"chat.completion.chunk\",\"created\":1753616032,"
        "\"model\":\"Qwen/Qwen3-0.6B\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
        "\"content\":\"a\\\"\\u00e9\\ud83d\\ude0a \xf0\x9f\x98\x8a\"},\"logprobs\":null,"
        "\"finish_reason\":\"stop\",\"stop_reason\":-1.5e+3}],\"usage\":{\"prompt_tokens\":1}}",
        "{\"error\": {\"message\": \"boom\", \"type\": \"InternalServerError\", \"param\": null, "
        "\"code\": 500}}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"{}\"}}]},"
        "\"text\":true,\"x\":false}]}",
    };
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        size_t n = strlen(chunks[i]);
        struct sl_chunk c;
        assert_int_equal(read_n(chunks[i], n, &c), SL_OK);
        for (size_t k = 0; k < n; k++)
            expect_invalid_n(chunks[i], k);
    }
}

static void test_depth_bound(void **state)
{
    (void)state;
    char s[2 * SL_CHUNK_MAX_DEPTH + 64];
    /* SL_CHUNK_MAX_DEPTH containers in all, the top-level one included. */
    for (size_t depth = SL_CHUNK_MAX_DEPTH; depth <= SL_CHUNK_MAX_DEPTH + 1; depth++) {
        size_t n = 0;
        for (size_t i = 0; i < depth; i++)
            s[n++] = '[';
        for (size_t i = 0; i < depth; i++)
            s[n++] = ']';
        struct sl_chunk c;
        int rc = read_n(s, n, &c);
        assert_int_equal(rc, depth <= SL_CHUNK_MAX_DEPTH ? SL_OK : SL_EJSON);

        n = (size_t)snprintf(s, sizeof s, "{\"choices\":[],\"logprobs\":");
        for (size_t i = 2; i < depth; i++)
            s[n++] = '[';
        s[n++] = '{';
        s[n++] = '}';
        for (size_t i = 2; i < depth; i++)
            s[n++] = ']';
        s[n++] = '}';
        rc = read_n(s, n, &c);
        assert_int_equal(rc, depth <= SL_CHUNK_MAX_DEPTH ? SL_OK : SL_EJSON);
    }
    /* Deep nesting far past the bound stops early, without recursion trouble. */
    size_t big = 100000;
    char *deep = malloc(big);
    assert_non_null(deep);
    memset(deep, '[', big);
    expect_invalid_n(deep, big);
    memset(deep, '{', big);
    expect_invalid_n(deep, big);
    free(deep);
}

static void test_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        " ",
        "{",
        "}",
        "{\"a\":1,}",
        "[1,]",
        "[,1]",
        "{,\"a\":1}",
        "{\"a\" 1}",
        "{\"a\":}",
        "{\"a\"}",
        "{a:1}",
        "{'a':1}",
        "{\"a\":1}x",
        "{\"a\":1}{}",
        "{\"a\":1} ,",
        "[1 2]",
        "nul",
        "tru",
        "True",
        "nulll",
        "01",
        "-01",
        "1.",
        "1.e5",
        ".5",
        "-",
        "+1",
        "1e",
        "1e+",
        "1E-",
        "0x1",
        "NaN",
        "Infinity",
        "-Infinity",
        "\"unterminated",
        "\"bad \\x escape\"",
        "\"bad \\u12G4\"",
        "\"short \\u12\"",
        "\"ends with \\",
        "\"\\",
        "\"tab\there\"",
        "\"nl\nhere\"",
        "\"cr\rhere\"",
        "\"\x01\"",
        "\"\x1f\"",
        "{\"choices\":[{\"delta\":{\"content\":\"a\nb\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"a\"}]}",
        "{\"choices\":[{\"index\":01}]}",
        "{\"choices\":[{\"index\":1.}]}",
        "{\"created\":-}",
        "{\"usage\":{\"prompt_tokens\":1e}}",
        "{\"error\":{\"code\":500,}}",
        "[DONE",
        "DONE",
        "\xef\xbb\xbf{}", /* a BOM is the SSE decoder's business, not JSON */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_invalid(bad[i]);
    /* A NUL byte: raw inside a string or between tokens. */
    expect_invalid_n("\"a\0b\"", 5);
    expect_invalid_n("{\"a\":1}\0", 8);
    expect_invalid_n("\0", 1);

    const char *good[] = {
        "0",
        "-0",
        "-0.0",
        "1.5e-3",
        "1E+2",
        "1e2",
        "123456789012345678901234567890",
        "\"\\u0000\"",
        "\"\\uD800\"",
        "\"\x7f \xff\xfe\"", /* bytes from 0x7f pass through */
        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
        "[[],{},[{}]]",
        "{\"\":\"\"}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        expect_kind(good[i], SL_CHUNK_OTHER);
}

/* Strings are scanned 8 bytes at a time: a stop byte (quote, backslash,
 * control) at any offset of a word, after any run, is found exactly, and
 * bytes from 0x80 up never stop a run. */
static void test_string_runs(void **state)
{
    (void)state;
    char s[64];
    const char fill[] = {'a', '\x7f', '\xa0', '\xdc', '\xff', ' ', '!', '#'};
    for (size_t f = 0; f < sizeof fill; f++) {
        for (size_t k = 0; k < 24; k++) {
            /* "<k fill bytes>" then padding, so the words run past the string. */
            s[0] = '"';
            memset(s + 1, fill[f], k);
            memcpy(s + 1 + k, "\"          ", 11);
            struct sl_chunk c;
            assert_int_equal(read_n(s, k + 12, &c), SL_OK);
            assert_int_equal(c.kind, SL_CHUNK_OTHER);
            const char stops[] = {'\x00', '\x01', '\n', '\x1f'};
            for (size_t i = 0; i < sizeof stops; i++) {
                /* The stop byte, then a quote the scan must not reach. */
                memcpy(s + 1 + k, "?\"         ", 11);
                s[1 + k] = stops[i];
                expect_invalid_n(s, k + 12);
            }
            /* A backslash before the quote escapes it: unterminated. */
            memcpy(s + 1 + k, "\\\"         ", 11);
            expect_invalid_n(s, k + 12);
            memcpy(s + 1 + k, "\\n\"        ", 11);
            assert_int_equal(read_n(s, k + 12, &c), SL_OK);
        }
    }
    /* A chunk whose content is long, with escapes at word edges. */
    const char *chunk = "{\"choices\":[{\"delta\":{\"content\":\"0123456\\n89abcdef\\u00e9"
                        "0123456789abcdef0123456\\\"\"}}]}";
    struct sl_chunk c;
    assert_int_equal(read_s(chunk, &c), SL_OK);
    assert_text(c.choices[0].content, "0123456\n89abcdef\xc3\xa9"
                                      "0123456789abcdef0123456\"");
}

static void test_unescape(void **state)
{
    (void)state;
    struct sl_buf b;
    sl_buf_init(&b, 64);
    const char *in = "a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\u20AC\\ud83d\\ude0a!";
    assert_int_equal(sl_json_unescape(in, strlen(in), &b), SL_OK);
    const char want[] = "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x8a!";
    assert_int_equal(sl_buf_size(&b), sizeof want - 1);
    assert_memory_equal(sl_buf_ptr(&b), want, sizeof want - 1);
    sl_buf_reset(&b);

    /* \u0000 is a NUL byte; plain runs copy as they are, UTF-8 included. */
    const char *zin = "x\\u0000y \xe5\xa5\xbd";
    struct sl_span z = {zin, strlen(zin)};
    assert_text_n(z, "x\0y \xe5\xa5\xbd", 7);

    /* Lone surrogates become U+FFFD; what follows a lone high one is read
     * on its own. */
    struct {
        const char *in, *want;
    } sur[] = {
        {"\\ud800", "\xef\xbf\xbd"},
        {"\\udc00", "\xef\xbf\xbd"},
        {"\\ud800x", "\xef\xbf\xbdx"},
        {"\\ud800\\n", "\xef\xbf\xbd\n"},
        {"\\ud800\\u0041", "\xef\xbf\xbd"
                           "A"},
        {"\\ud800\\ud800\\udc00", "\xef\xbf\xbd\xf0\x90\x80\x80"},
        {"\\udbff\\udfff", "\xf4\x8f\xbf\xbf"},
        {"\\ude0a\\ud83d", "\xef\xbf\xbd\xef\xbf\xbd"},
        {"\\u007f\\u0080\\u07FF\\u0800\\uFFFF", "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf"},
    };
    for (size_t i = 0; i < sizeof sur / sizeof sur[0]; i++) {
        struct sl_span sp = {sur[i].in, strlen(sur[i].in)};
        assert_text(sp, sur[i].want);
    }

    /* Bad escapes: SL_EJSON, and out is left as it was. */
    const char *bad[] = {"\\x", "ab\\", "\\u12", "\\u12G4", "ok\\ud800\\u12", "\\U0041"};
    assert_int_equal(sl_buf_append(&b, "kept", 4), SL_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sl_json_unescape(bad[i], strlen(bad[i]), &b), SL_EJSON);
        assert_int_equal(sl_buf_size(&b), 4);
        assert_memory_equal(sl_buf_ptr(&b), "kept", 4);
    }
    sl_buf_free(&b);

    /* The ceiling: SL_ETOOBIG, out unchanged, whether it is hit in a run
     * or in an escape. */
    sl_buf_init(&b, 8);
    assert_int_equal(sl_buf_append(&b, "12", 2), SL_OK);
    assert_int_equal(sl_json_unescape("abcdef", 6, &b), SL_OK);
    assert_int_equal(sl_buf_size(&b), 8);
    sl_buf_reset(&b);
    assert_int_equal(sl_buf_append(&b, "12", 2), SL_OK);
    assert_int_equal(sl_json_unescape("abcdefg", 7, &b), SL_ETOOBIG);
    assert_int_equal(sl_json_unescape("abcd\\n\\u00e9", 12, &b), SL_ETOOBIG);
    assert_int_equal(sl_json_unescape("abcd\\ud83d\\ude0a", 16, &b), SL_ETOOBIG);
    assert_int_equal(sl_buf_size(&b), 2);
    assert_memory_equal(sl_buf_ptr(&b), "12", 2);
    /* A run that makes the buffer compact, then a bad escape: the undo
     * still gives the bytes held before. */
    sl_buf_consume(&b, 1);
    while (b.cap - b.len >= 7) {
        assert_int_equal(sl_buf_append(&b, "xxxxxxx", 7), SL_OK);
        sl_buf_consume(&b, 7);
    }
    assert_true(b.off > 0);
    assert_int_equal(sl_json_unescape("abcdefg\\x", 9, &b), SL_EJSON);
    assert_int_equal(b.off, 0); /* it did compact */
    assert_int_equal(sl_buf_size(&b), 1);
    assert_memory_equal(sl_buf_ptr(&b), "x", 1); /* the last x, consume kept one byte */
    assert_int_equal(sl_json_unescape("", 0, &b), SL_OK);
    assert_int_equal(sl_buf_size(&b), 1);
    sl_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_fixture_data_line),
        cmocka_unit_test(test_capture_qwen3),
        cmocka_unit_test(test_2024_role_without_content),
        cmocka_unit_test(test_2025_reasoning_taken_once),
        cmocka_unit_test(test_reasoning_either_name),
        cmocka_unit_test(test_2026_excerpt),
        cmocka_unit_test(test_docs_example_is_invalid),
        cmocka_unit_test(test_old_error_shape),
        cmocka_unit_test(test_new_error_shape),
        cmocka_unit_test(test_usage_chunk),
        cmocka_unit_test(test_two_choices),
        cmocka_unit_test(test_max_choices),
        cmocka_unit_test(test_tool_call_chunk),
        cmocka_unit_test(test_completions_text),
        cmocka_unit_test(test_members_any_order_unknown_skipped),
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_truncated_at_every_byte),
        cmocka_unit_test(test_depth_bound),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_string_runs),
        cmocka_unit_test(test_unescape),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    free(parked);
    return failed;
}
