/* test_sim.c - unit tests of the simulator core (src/sim/sim.c, text.c, fault.c).
 * Time is stepped by hand (each poll at the wake time the core asked for);
 * wire bytes are checked against the real vLLM captures in SL_FIXTURES. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "sim/sim.h"

#define MODEL "Qwen/Qwen3-0.6B"
#define T0    1000 /* arrival time of every request, in ms */

/* --- helpers ------------------------------------------------------------- */

static struct sl_sim_config base_cfg(void)
{
    struct sl_sim_config c = {
        .model = MODEL,
        .max_model_len = 8192,
        .ttft_ms = 100,
        .itl_ms = 10,
        .jitter_ms = 0,
        .max_num_seqs = 8,
        .itl_load_pct = 0,
        .reasoning_parser = false,
        .fault_json = "",
    };
    return c;
}

static struct sl_sim *mk(const struct sl_sim_config *cfg)
{
    char err[256] = "";
    struct sl_sim *sim = sl_sim_new(cfg, err, sizeof err);
    assert_non_null(sim);
    return sim;
}

struct run {
    char *bytes;
    size_t len;
    int final; /* SL_SIM_DONE / SL_SIM_DROP, or SL_SIM_WAIT when stuck */
    int status;
    bool stream;
    uint64_t end_ms;
    uint64_t first_ms; /* time of the first poll that gave bytes */
};

static void run_free(struct run *r)
{
    free(r->bytes);
    memset(r, 0, sizeof *r);
}

/* Polls req at each wake time until it ends (or waits forever). */
static void drive(struct sl_sim_req *req, uint64_t now, struct run *res)
{
    struct sl_buf out;
    sl_buf_init(&out, 64u << 20);
    res->first_ms = UINT64_MAX;
    for (int guard = 0; guard < 1000000; guard++) {
        uint64_t wake = 0;
        size_t before = sl_buf_size(&out);
        int st = sl_sim_poll(req, now, &out, &wake);
        assert_true(st >= 0);
        if (sl_buf_size(&out) > before && res->first_ms == UINT64_MAX)
            res->first_ms = now;
        if (st != SL_SIM_WAIT || wake == UINT64_MAX) {
            res->final = st;
            break;
        }
        assert_true(wake >= now);
        now = wake;
    }
    res->end_ms = now;
    res->status = sl_sim_req_status(req);
    res->stream = sl_sim_req_is_stream(req);
    assert_int_equal(sl_buf_append(&out, "", 1), 0); /* NUL, not counted */
    res->bytes = sl_buf_take(&out, &res->len);
    res->len--;
    sl_buf_free(&out);
}

static void run_body(struct sl_sim *sim, enum sl_sim_route route, const char *body,
                     const char *xfault, struct run *res)
{
    struct sl_sim_req *req = NULL;
    assert_int_equal(sl_sim_start(sim, route, body, strlen(body), xfault,
                                  xfault ? strlen(xfault) : 0, T0, 1753616032, &req),
                     0);
    assert_non_null(req);
    drive(req, T0, res);
    sl_sim_req_free(req, res->end_ms);
}

/* SSE events of a run: each must be "data: <payload>\n\n". */
struct events {
    char *ev[8192];
    int n;
};

static void split_events(const struct run *r, struct events *e)
{
    e->n = 0;
    const char *p = r->bytes, *end = r->bytes + r->len;
    while (p < end) {
        assert_true(end - p > 6);
        assert_memory_equal(p, "data: ", 6);
        const char *q = strstr(p, "\n\n");
        assert_non_null(q);
        assert_true(e->n < (int)(sizeof e->ev / sizeof e->ev[0]));
        e->ev[e->n++] = strndup(p + 6, (size_t)(q - p - 6));
        p = q + 2;
    }
}

static void events_free(struct events *e)
{
    for (int i = 0; i < e->n; i++)
        free(e->ev[i]);
    e->n = 0;
}

static json_t *parse(const char *s)
{
    json_error_t je;
    json_t *v = json_loads(s, 0, &je);
    if (v == NULL)
        fail_msg("bad JSON (%s): %.200s", je.text, s);
    return v;
}

/* The key order of v, recursively: {a,b:{c},d:[{e}]}. Arrays give the
 * signature of their first element. */
static void sig(const json_t *v, char *out, size_t cap)
{
    size_t len = strlen(out);
    if (json_is_object(v)) {
        snprintf(out + len, cap - len, "{");
        const char *k;
        json_t *m;
        int first = 1;
        json_object_foreach((json_t *)v, k, m)
        {
            len = strlen(out);
            snprintf(out + len, cap - len, "%s%s", first ? "" : ",", k);
            first = 0;
            if (json_is_object(m) || json_is_array(m)) {
                len = strlen(out);
                snprintf(out + len, cap - len, ":");
                sig(m, out, cap);
            }
        }
        len = strlen(out);
        snprintf(out + len, cap - len, "}");
    } else if (json_is_array(v)) {
        snprintf(out + len, cap - len, "[");
        if (json_array_size(v) > 0)
            sig(json_array_get(v, 0), out, cap);
        len = strlen(out);
        snprintf(out + len, cap - len, "]");
    }
}

static void sig_of(const char *json, char *out, size_t cap)
{
    json_t *v = parse(json);
    out[0] = '\0';
    sig(v, out, cap);
    json_decref(v);
}

static char *read_fixture(const char *name)
{
    const char *dir = getenv("SL_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : SL_FIXTURES_DIR, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open fixture %s (set SL_FIXTURES)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* Choice 0 of a chunk, or NULL. */
static const json_t *choice0(const json_t *chunk)
{
    return json_array_get(json_object_get(chunk, "choices"), 0);
}

/* Concatenates delta.<field> (chat) or text (completions) of choice idx. */
static char *collect(const struct events *e, const char *field, int idx)
{
    size_t cap = 1 << 20, len = 0;
    char *s = calloc(1, cap);
    for (int i = 0; i < e->n; i++) {
        if (strcmp(e->ev[i], "[DONE]") == 0)
            continue;
        json_t *v = parse(e->ev[i]);
        const json_t *c = choice0(v);
        if (c && json_integer_value(json_object_get(c, "index")) == idx) {
            const json_t *d = json_object_get(c, "delta");
            const json_t *t = d ? json_object_get(d, field) : json_object_get(c, field);
            if (json_is_string(t)) {
                size_t tl = json_string_length(t);
                assert_true(len + tl < cap);
                memcpy(s + len, json_string_value(t), tl);
                len += tl;
            }
        }
        json_decref(v);
    }
    return s;
}

/* Token chunks of choice idx: every chunk but role and usage chunks. */
static int count_token_chunks(const struct events *e, int idx)
{
    int n = 0;
    for (int i = 0; i < e->n; i++) {
        if (strcmp(e->ev[i], "[DONE]") == 0)
            continue;
        json_t *v = parse(e->ev[i]);
        const json_t *c = choice0(v);
        if (c && json_integer_value(json_object_get(c, "index")) == idx) {
            const json_t *d = json_object_get(c, "delta");
            if (d == NULL || json_object_get(d, "role") == NULL)
                n++;
        }
        json_decref(v);
    }
    return n;
}

static json_t *last_chunk(const struct events *e)
{
    assert_true(e->n >= 2);
    assert_string_equal(e->ev[e->n - 1], "[DONE]");
    return parse(e->ev[e->n - 2]);
}

static int64_t metric(struct sl_sim *sim, const char *line_prefix)
{
    struct sl_buf out;
    sl_buf_init(&out, 1 << 20);
    assert_int_equal(sl_sim_render_metrics(sim, &out), 0);
    assert_int_equal(sl_buf_append(&out, "", 1), 0);
    const char *p = strstr(sl_buf_ptr(&out), line_prefix);
    if (p == NULL)
        fail_msg("metric %s missing", line_prefix);
    double v = strtod(p + strlen(line_prefix), NULL);
    sl_buf_free(&out);
    return (int64_t)v;
}

#define CHAT_STREAM(extra)                                                                         \
    "{\"model\":\"" MODEL "\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello, "              \
    "InstructKR!\"}],\"stream\":true" extra "}"

/* --- wire format against the capture ------------------------------------- */

static void test_chunk_structure_matches_capture(void **state)
{
    (void)state;
    char *cap = read_fixture("vllm-0.9.2_qwen3-0.6b_chat-stream_no-reasoning-parser.sse");
    /* the capture's JSON events: role first, a content chunk, finish last */
    char *lines[64];
    int nl = 0;
    for (char *line = strtok(cap, "\n"); line && nl < 64; line = strtok(NULL, "\n"))
        if (strncmp(line, "data: {", 7) == 0)
            lines[nl++] = line + 6;
    assert_true(nl >= 3);
    char want_role[512], want_content[512], want_finish[512];
    sig_of(lines[0], want_role, sizeof want_role);
    sig_of(lines[1], want_content, sizeof want_content);
    sig_of(lines[nl - 1], want_finish, sizeof want_finish);

    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *sim = mk(&cfg);
    struct run r;
    run_body(sim, SL_SIM_CHAT, CHAT_STREAM(""), NULL, &r);
    assert_int_equal(r.final, SL_SIM_DONE);
    assert_int_equal(r.status, 200);
    assert_true(r.stream);
    assert_null(strstr(r.bytes, "\nid:"));
    assert_memory_equal(r.bytes, "data: {", 7);
    struct events e;
    split_events(&r, &e);
    assert_true(e.n > 10);
    char got[512];
    sig_of(e.ev[0], got, sizeof got);
    assert_string_equal(got, want_role);
    sig_of(e.ev[1], got, sizeof got);
    assert_string_equal(got, want_content);
    sig_of(e.ev[e.n - 2], got, sizeof got);
    assert_string_equal(got, want_finish);
    assert_string_equal(e.ev[e.n - 1], "[DONE]");

    /* role chunk bytes, id shape, same id and created everywhere */
    json_t *role = parse(e.ev[0]);
    const char *id = json_string_value(json_object_get(role, "id"));
    assert_int_equal(strlen(id), strlen("chatcmpl-") + 32);
    assert_memory_equal(id, "chatcmpl-", 9);
    for (const char *p = id + 9; *p; p++)
        assert_non_null(strchr("0123456789abcdef", *p));
    assert_non_null(strstr(e.ev[0], "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                                    "\"logprobs\":null,\"finish_reason\":null}]}"));
    for (int i = 0; i < e.n - 1; i++) {
        json_t *v = parse(e.ev[i]);
        assert_string_equal(json_string_value(json_object_get(v, "id")), id);
        assert_int_equal(json_integer_value(json_object_get(v, "created")), 1753616032);
        assert_string_equal(json_string_value(json_object_get(v, "model")), MODEL);
        assert_string_equal(json_string_value(json_object_get(v, "object")),
                            "chat.completion.chunk");
        json_decref(v);
    }
    json_decref(role);
    /* no reasoning parser: the thinking part is in content, as in the capture */
    assert_non_null(strstr(e.ev[1], "\"delta\":{\"content\":\"<think>\"}"));
    char *text = collect(&e, "content", 0);
    assert_memory_equal(text, "<think>\n", 8);
    assert_non_null(strstr(text, "\n</think>\n\n"));
    /* the natural end: finish chunk {"content":""} with stop, stop_reason null */
    assert_non_null(strstr(e.ev[e.n - 2], "\"delta\":{\"content\":\"\"},\"logprobs\":null,"
                                          "\"finish_reason\":\"stop\",\"stop_reason\":null}]}"));
    free(text);
    events_free(&e);
    run_free(&r);
    free(cap);
    sl_sim_free(sim);
}

static void test_timing_role_with_first_token(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    cfg.ttft_ms = 250;
    cfg.itl_ms = 20;
    cfg.jitter_ms = 5;
    struct sl_sim *sim = mk(&cfg);
    const char *body = CHAT_STREAM(",\"max_tokens\":30");
    struct sl_sim_req *req = NULL;
    assert_int_equal(sl_sim_start(sim, SL_SIM_CHAT, body, strlen(body), NULL, 0, T0, 1, &req), 0);
    struct sl_buf out;
    sl_buf_init(&out, 1 << 20);
    uint64_t wake = 0;
    /* nothing before the first token; vLLM sends the role chunk with it */
    assert_int_equal(sl_sim_poll(req, T0, &out, &wake), SL_SIM_WAIT);
    assert_int_equal(sl_buf_size(&out), 0);
    assert_int_equal(wake, T0 + 250);
    assert_int_equal(sl_sim_poll(req, T0 + 249, &out, &wake), SL_SIM_WAIT);
    assert_int_equal(sl_buf_size(&out), 0);
    assert_int_equal(sl_sim_poll(req, T0 + 250, &out, &wake), SL_SIM_WAIT);
    struct run one = {.bytes = (char *)sl_buf_ptr(&out), .len = sl_buf_size(&out)};
    struct events e;
    split_events(&one, &e);
    assert_int_equal(e.n, 2); /* role, first token */
    assert_non_null(strstr(e.ev[0], "\"role\":\"assistant\""));
    events_free(&e);
    /* gaps: itl +/- jitter, never negative */
    uint64_t prev = T0 + 250;
    int steps = 0;
    while (wake != UINT64_MAX) {
        assert_true(wake >= prev + 15 && wake <= prev + 25);
        prev = wake;
        int st = sl_sim_poll(req, wake, &out, &wake);
        steps++;
        if (st == SL_SIM_DONE)
            break;
    }
    assert_int_equal(steps, 29);
    sl_buf_free(&out);
    sl_sim_req_free(req, prev);
    sl_sim_free(sim);
}

static void test_usage_chunk_last(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *sim = mk(&cfg);
    struct run r;
    run_body(sim, SL_SIM_CHAT, CHAT_STREAM(",\"stream_options\":{\"include_usage\":true}"), NULL,
             &r);
    struct events e;
    split_events(&r, &e);
    json_t *last = last_chunk(&e);
    assert_int_equal(json_array_size(json_object_get(last, "choices")), 0);
    char got[256];
    got[0] = '\0';
    sig(last, got, sizeof got);
    assert_string_equal(got, "{id,object,created,model,choices:[],usage:{prompt_tokens,"
                             "total_tokens,completion_tokens}}");
    const json_t *u = json_object_get(last, "usage");
    int64_t pt = json_integer_value(json_object_get(u, "prompt_tokens"));
    int64_t ct = json_integer_value(json_object_get(u, "completion_tokens"));
    assert_true(pt > 0);
    assert_int_equal(ct, count_token_chunks(&e, 0));
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), pt + ct);
    /* only the last chunk has usage */
    for (int i = 0; i < e.n - 2; i++)
        assert_null(strstr(e.ev[i], "\"usage\""));
    json_decref(last);
    events_free(&e);
    run_free(&r);
    sl_sim_free(sim);
}

static void test_continuous_usage(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *sim = mk(&cfg);
    struct run r;
    run_body(sim, SL_SIM_CHAT,
             CHAT_STREAM(",\"max_tokens\":12,\"stream_options\":{\"include_usage\":true,"
                         "\"continuous_usage_stats\":true}"),
             NULL, &r);
    struct events e;
    split_events(&r, &e);
    assert_int_equal(e.n, 1 + 12 + 1 + 1); /* role, tokens, usage, [DONE] */
    int64_t pt = -1;
    for (int i = 0; i < e.n - 1; i++) {
        json_t *v = parse(e.ev[i]);
        const json_t *u = json_object_get(v, "usage");
        assert_non_null(u);
        if (pt < 0)
            pt = json_integer_value(json_object_get(u, "prompt_tokens"));
        int64_t want = i <= 12 ? i : 12; /* role 0, then 1..12, usage chunk 12 */
        assert_int_equal(json_integer_value(json_object_get(u, "completion_tokens")), want);
        assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), pt + want);
        json_decref(v);
    }
    /* usage follows choices in each chunk */
    assert_non_null(strstr(e.ev[1], "}],\"usage\":{\"prompt_tokens\":"));
    events_free(&e);
    run_free(&r);
    sl_sim_free(sim);
}

static void test_max_tokens_length(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *sim = mk(&cfg);
    struct run r;
    run_body(sim, SL_SIM_CHAT, CHAT_STREAM(",\"max_tokens\":5"), NULL, &r);
    struct events e;
    split_events(&r, &e);
    assert_int_equal(count_token_chunks(&e, 0), 5);
    json_t *fin = last_chunk(&e);
    assert_string_equal(json_string_value(json_object_get(choice0(fin), "finish_reason")),
                        "length");
    assert_true(json_is_null(json_object_get(choice0(fin), "stop_reason")));
    json_decref(fin);
    events_free(&e);
    run_free(&r);

    /* max_completion_tokens wins over max_tokens for chat */
    run_body(sim, SL_SIM_CHAT, CHAT_STREAM(",\"max_tokens\":50,\"max_completion_tokens\":7"), NULL,
             &r);
    split_events(&r, &e);
    assert_int_equal(count_token_chunks(&e, 0), 7);
    events_free(&e);
    run_free(&r);
    sl_sim_free(sim);
}

static void test_ignore_eos_exact_count(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *sim = mk(&cfg);
    /* natural length first */
    struct run r;
    run_body(sim, SL_SIM_CHAT, CHAT_STREAM(",\"seed\":3,\"max_tokens\":4000"), NULL, &r);
    struct events e;
    split_events(&r, &e);
    int natural = count_token_chunks(&e, 0);
    assert_true(natural > 20 && natural < 600);
    json_t *fin = last_chunk(&e);
    assert_string_equal(json_string_value(json_object_get(choice0(fin), "finish_reason")), "stop");
    json_decref(fin);
    events_free(&e);
    run_free(&r);

    /* ignore_eos: exactly max_tokens deltas, past the natural end */
    char body[512];
    snprintf(body, sizeof body,
             CHAT_STREAM(",\"seed\":3,\"ignore_eos\":true,\"max_tokens\":%d,"
                         "\"stream_options\":{\"include_usage\":true}"),
             natural + 150);
    run_body(sim, SL_SIM_CHAT, body, NULL, &r);
    split_events(&r, &e);
    assert_int_equal(count_token_chunks(&e, 0) - 0, natural + 150);
    json_t *usage = last_chunk(&e);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(usage, "usage"), "completion_tokens")),
        natural + 150);
    json_decref(usage);
    json_t *f2 = parse(e.ev[e.n - 3]);
    assert_string_equal(json_string_value(json_object_get(choice0(f2), "finish_reason")), "length");
    json_decref(f2);
    events_free(&e);
    run_free(&r);

    /* without ignore_eos a short answer ends by itself before max_tokens */
    snprintf(body, sizeof body, CHAT_STREAM(",\"seed\":3,\"max_tokens\":%d"), natural + 150);
    run_body(sim, SL_SIM_CHAT, body, NULL, &r);
    split_events(&r, &e);
    assert_int_equal(count_token_chunks(&e, 0), natural);
    events_free(&e);
    run_free(&r);
    sl_sim_free(sim);
}

static void test_stop_strings(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *sim = mk(&cfg);
    const char *plain = "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stream\":true,"
                        "\"seed\":11,\"chat_template_kwargs\":{\"enable_thinking\":false}}";
    struct run r;
    run_body(sim, SL_SIM_CHAT, plain, NULL, &r);
    struct events e;
    split_events(&r, &e);
    char *full = collect(&e, "content", 0);
    events_free(&e);
    run_free(&r);
    assert_true(strlen(full) > 80);
    /* a stop string from the middle of the answer: 6 bytes at a space */
    const char *sp = strchr(full + 40, ' ');
    assert_non_null(sp);
    char stop[8];
    memcpy(stop, sp, 6);
    stop[6] = '\0';
    size_t want_len = (size_t)(strstr(full, stop) - full);

    char body[512];
    snprintf(body, sizeof body,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stream\":true,"
             "\"seed\":11,\"chat_template_kwargs\":{\"enable_thinking\":false},"
             "\"stop\":[\"never-there\",\"%s\"],\"stream_options\":{\"include_usage\":true}}",
             stop);
    run_body(sim, SL_SIM_CHAT, body, NULL, &r);
    split_events(&r, &e);
    char *got = collect(&e, "content", 0);
    assert_int_equal(strlen(got), want_len);
    assert_memory_equal(got, full, want_len);
    json_t *usage = last_chunk(&e);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(usage, "usage"), "completion_tokens")),
        count_token_chunks(&e, 0));
    json_decref(usage);
    json_t *fin = parse(e.ev[e.n - 3]);
    assert_string_equal(json_string_value(json_object_get(choice0(fin), "finish_reason")), "stop");
    assert_string_equal(json_string_value(json_object_get(choice0(fin), "stop_reason")), stop);
    json_decref(fin);
    free(got);
    events_free(&e);
    run_free(&r);

    /* a single string works the same; non-streaming too */
    snprintf(body, sizeof body,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"seed\":11,"
             "\"chat_template_kwargs\":{\"enable_thinking\":false},\"stop\":\"%s\"}",
             stop);
    run_body(sim, SL_SIM_CHAT, body, NULL, &r);
    json_t *v = parse(r.bytes);
    const json_t *c = choice0(v);
    const char *content =
        json_string_value(json_object_get(json_object_get(c, "message"), "content"));
    assert_int_equal(strlen(content), want_len);
    assert_memory_equal(content, full, want_len);
    assert_string_equal(json_string_value(json_object_get(c, "stop_reason")), stop);
    json_decref(v);
    run_free(&r);
    free(full);
    sl_sim_free(sim);
}

static void test_n2_interleaved(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *sim = mk(&cfg);
    struct run r;
    run_body(sim, SL_SIM_CHAT,
             CHAT_STREAM(",\"n\":2,\"max_tokens\":40,\"stream_options\":{\"include_usage\":true}"),
             NULL, &r);
    struct events e;
    split_events(&r, &e);
    /* a role chunk per choice, first */
    json_t *a = parse(e.ev[0]), *b = parse(e.ev[1]);
    assert_int_equal(json_integer_value(json_object_get(choice0(a), "index")), 0);
    assert_int_equal(json_integer_value(json_object_get(choice0(b), "index")), 1);
    assert_non_null(strstr(e.ev[0], "\"role\":\"assistant\""));
    assert_non_null(strstr(e.ev[1], "\"role\":\"assistant\""));
    json_decref(a);
    json_decref(b);
    /* then one chunk per choice per step, in index order, while both run */
    json_t *c2 = parse(e.ev[2]), *c3 = parse(e.ev[3]);
    assert_int_equal(json_integer_value(json_object_get(choice0(c2), "index")), 0);
    assert_int_equal(json_integer_value(json_object_get(choice0(c3), "index")), 1);
    json_decref(c2);
    json_decref(c3);
    int t0 = count_token_chunks(&e, 0), t1 = count_token_chunks(&e, 1);
    char *s0 = collect(&e, "content", 0), *s1 = collect(&e, "content", 1);
    assert_string_not_equal(s0, s1);
    json_t *usage = last_chunk(&e);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(usage, "usage"), "completion_tokens")),
        t0 + t1);
    json_decref(usage);
    /* a finish chunk per choice */
    int fins = 0;
    for (int i = 0; i < e.n - 1; i++)
        fins += strstr(e.ev[i], "\"finish_reason\":\"") != NULL;
    assert_int_equal(fins, 2);
    free(s0);
    free(s1);
    events_free(&e);
    run_free(&r);
    sl_sim_free(sim);
}

static void test_seed_determinism(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    cfg.jitter_ms = 7;
    /* two fresh engines: byte-identical, timing included */
    struct sl_sim *s1 = mk(&cfg), *s2 = mk(&cfg);
    struct run a, b;
    run_body(s1, SL_SIM_CHAT, CHAT_STREAM(",\"seed\":42"), NULL, &a);
    run_body(s2, SL_SIM_CHAT, CHAT_STREAM(",\"seed\":42"), NULL, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.bytes, b.bytes, a.len);
    assert_int_equal(a.end_ms, b.end_ms);

    /* the same engine again: same text, another id */
    struct run c;
    run_body(s1, SL_SIM_CHAT, CHAT_STREAM(",\"seed\":42"), NULL, &c);
    struct events ea, ec;
    split_events(&a, &ea);
    split_events(&c, &ec);
    char *ta = collect(&ea, "content", 0), *tc = collect(&ec, "content", 0);
    assert_string_equal(ta, tc);
    assert_memory_not_equal(ea.ev[0], ec.ev[0], 50); /* the id differs */

    /* another seed: another text */
    struct run d;
    run_body(s1, SL_SIM_CHAT, CHAT_STREAM(",\"seed\":43"), NULL, &d);
    struct events ed;
    split_events(&d, &ed);
    char *td = collect(&ed, "content", 0);
    assert_string_not_equal(ta, td);

    /* no seed: the body's hash decides, so the same body gives the same text */
    struct run x, y;
    run_body(s1, SL_SIM_CHAT, CHAT_STREAM(""), NULL, &x);
    run_body(s1, SL_SIM_CHAT, CHAT_STREAM(""), NULL, &y);
    struct events ex, ey;
    split_events(&x, &ex);
    split_events(&y, &ey);
    char *tx = collect(&ex, "content", 0), *ty = collect(&ey, "content", 0);
    assert_string_equal(tx, ty);

    free(ta);
    free(tc);
    free(td);
    free(tx);
    free(ty);
    events_free(&ea);
    events_free(&ec);
    events_free(&ed);
    events_free(&ex);
    events_free(&ey);
    run_free(&a);
    run_free(&b);
    run_free(&c);
    run_free(&d);
    run_free(&x);
    run_free(&y);
    sl_sim_free(s1);
    sl_sim_free(s2);
}

static void test_text_kinds(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *sim = mk(&cfg);
    struct run r;
    run_body(sim, SL_SIM_CHAT,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"Show me a markdown table\"}],"
             "\"stream\":true,\"chat_template_kwargs\":{\"enable_thinking\":false}}",
             NULL, &r);
    struct events e;
    split_events(&r, &e);
    char *md = collect(&e, "content", 0);
    assert_non_null(strstr(md, "## "));
    assert_non_null(strstr(md, "\n- **"));
    assert_non_null(strstr(md, "\n1. **"));
    assert_non_null(strstr(md, "\n```"));
    assert_non_null(strstr(md, "| Setting | Default | Notes |\n|---"));
    assert_non_null(strstr(md, "`"));
    bool utf8 = false; /* a multi-byte token (an emoji, "café"...) */
    for (const char *p = md; *p; p++)
        utf8 = utf8 || (unsigned char)*p >= 0x80;
    assert_true(utf8);
    /* tokens are word pieces: a leading-space word chunk exists */
    int spaced = 0;
    for (int i = 1; i < e.n - 1; i++)
        spaced += strstr(e.ev[i], "\"content\":\" ") != NULL;
    assert_true(spaced > 10);
    free(md);
    events_free(&e);
    run_free(&r);

    run_body(sim, SL_SIM_CHAT,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"Write a long essay\"}],"
             "\"stream\":true,\"chat_template_kwargs\":{\"enable_thinking\":false}}",
             NULL, &r);
    split_events(&r, &e);
    assert_true(count_token_chunks(&e, 0) > 1000);
    events_free(&e);
    run_free(&r);
    sl_sim_free(sim);
}

/* --- reasoning ------------------------------------------------------------ */

static void test_reasoning_parser(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    cfg.reasoning_parser = true;
    struct sl_sim *sim = mk(&cfg);
    struct run r;
    run_body(sim, SL_SIM_CHAT, CHAT_STREAM(",\"stream_options\":{\"include_usage\":true}"), NULL,
             &r);
    struct events e;
    split_events(&r, &e);
    char *reasoning = collect(&e, "reasoning", 0), *content = collect(&e, "content", 0);
    assert_true(strlen(reasoning) > 10);
    assert_int_equal(reasoning[0], '\n'); /* as Qwen3's parser gives it */
    assert_null(strstr(reasoning, "<think>"));
    assert_null(strstr(content, "think>"));
    assert_memory_equal(content, "\n\n", 2);
    /* reasoning deltas come first, then content; the tags send no chunk */
    assert_non_null(strstr(e.ev[1], "\"delta\":{\"reasoning\":\"\\n\"}"));
    int n_chunks = count_token_chunks(&e, 0);
    json_t *usage = last_chunk(&e);
    /* the two tag tokens count as completion tokens but send no chunk */
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(usage, "usage"), "completion_tokens")),
        n_chunks + 2);
    json_decref(usage);
    free(reasoning);
    free(content);
    events_free(&e);
    run_free(&r);

    /* non-streaming: message.reasoning and message.content */
    run_body(sim, SL_SIM_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"seed\":5}",
             NULL, &r);
    json_t *v = parse(r.bytes);
    const json_t *msg = json_object_get(choice0(v), "message");
    assert_true(json_is_string(json_object_get(msg, "reasoning")));
    assert_memory_equal(json_string_value(json_object_get(msg, "content")), "\n\n", 2);
    json_decref(v);
    run_free(&r);

    /* enable_thinking false: no reasoning at all */
    run_body(sim, SL_SIM_CHAT,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stream\":true,"
             "\"chat_template_kwargs\":{\"enable_thinking\":false}}",
             NULL, &r);
    assert_null(strstr(r.bytes, "\"reasoning\""));
    assert_null(strstr(r.bytes, "think>"));
    run_free(&r);
    sl_sim_free(sim);
}

/* --- non-streaming bodies -------------------------------------------------- */

static void test_nonstream_chat_body(void **state)
{
    (void)state;
    char *fx = read_fixture("vllm-0.9.2_chat-nonstream_no-reasoning-parser.json");
    /* the capture, with 0.9.2's reasoning_content under its current name */
    char *rc = strstr(fx, "\"reasoning_content\"");
    assert_non_null(rc);
    memmove(rc + strlen("\"reasoning\""), rc + strlen("\"reasoning_content\""),
            strlen(rc + strlen("\"reasoning_content\"")) + 1);
    memcpy(rc, "\"reasoning\"", strlen("\"reasoning\""));
    char want[1024], got[1024];
    sig_of(fx, want, sizeof want);

    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *sim = mk(&cfg);
    const char *body = "{\"model\":\"" MODEL "\",\"messages\":[{\"role\":\"user\",\"content\":"
                       "\"Hello, InstructKR!\"}]}";
    struct sl_sim_req *req = NULL;
    assert_int_equal(sl_sim_start(sim, SL_SIM_CHAT, body, strlen(body), NULL, 0, T0, 7, &req), 0);
    assert_false(sl_sim_req_is_stream(req));
    struct run r;
    drive(req, T0, &r);
    sl_sim_req_free(req, r.end_ms);
    assert_int_equal(r.final, SL_SIM_DONE);
    assert_int_equal(r.status, 200);
    sig_of(r.bytes, got, sizeof got);
    assert_string_equal(got, want);
    /* compact, whole at the last token's time: ttft + (tokens - 1) * itl */
    assert_null(strstr(r.bytes, ": "));
    assert_int_equal(r.first_ms, r.end_ms);
    json_t *v = parse(r.bytes);
    const json_t *u = json_object_get(v, "usage");
    int64_t ct = json_integer_value(json_object_get(u, "completion_tokens"));
    assert_int_equal(r.end_ms, T0 + 100 + (uint64_t)(ct - 1) * 10);
    const json_t *c = choice0(v);
    assert_string_equal(json_string_value(json_object_get(c, "finish_reason")), "stop");
    assert_true(json_is_null(json_object_get(json_object_get(c, "message"), "reasoning")));
    assert_memory_equal(
        json_string_value(json_object_get(json_object_get(c, "message"), "content")), "<think>\n",
        8);
    assert_memory_equal(json_string_value(json_object_get(v, "id")), "chatcmpl-", 9);
    json_decref(v);
    run_free(&r);
    free(fx);
    sl_sim_free(sim);
}

static void test_completions(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *sim = mk(&cfg);
    struct run r;
    /* streaming: no role chunk, text deltas; default max_tokens is 16 */
    run_body(sim, SL_SIM_COMPLETIONS,
             "{\"model\":\"" MODEL "\",\"prompt\":\"Once upon a time\",\"stream\":true,"
             "\"stream_options\":{\"include_usage\":true}}",
             NULL, &r);
    struct events e;
    split_events(&r, &e);
    assert_int_equal(e.n, 16 + 2);
    char got[256];
    sig_of(e.ev[0], got, sizeof got);
    assert_string_equal(got, "{id,object,created,model,choices:[{index,text,logprobs,"
                             "finish_reason,stop_reason}]}");
    assert_non_null(strstr(e.ev[0], "\"object\":\"text_completion\""));
    assert_non_null(strstr(e.ev[0], "\"id\":\"cmpl-"));
    assert_non_null(strstr(e.ev[0], "\"finish_reason\":null,\"stop_reason\":null}]}"));
    assert_non_null(strstr(e.ev[15], "\"finish_reason\":\"length\",\"stop_reason\":null}]}"));
    events_free(&e);
    run_free(&r);

    /* non-streaming body */
    run_body(sim, SL_SIM_COMPLETIONS, "{\"prompt\":\"Once upon a time\",\"max_tokens\":9,\"n\":2}",
             NULL, &r);
    sig_of(r.bytes, got, sizeof got);
    assert_string_equal(got, "{id,object,created,model,choices:[{index,text,logprobs,"
                             "finish_reason,stop_reason,prompt_logprobs}],usage:{prompt_tokens,"
                             "total_tokens,completion_tokens,prompt_tokens_details},"
                             "kv_transfer_params}");
    json_t *v = parse(r.bytes);
    assert_int_equal(json_array_size(json_object_get(v, "choices")), 2);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(v, "usage"), "completion_tokens")), 18);
    json_decref(v);
    run_free(&r);

    /* no prompt: vLLM's 400 */
    run_body(sim, SL_SIM_COMPLETIONS, "{\"model\":\"" MODEL "\"}", NULL, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.bytes, "Either prompt or prompt_embeds must be provided"));
    run_free(&r);
    sl_sim_free(sim);
}

/* --- errors ---------------------------------------------------------------- */

static void test_wrong_model_404(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *sim = mk(&cfg);
    struct run r;
    run_body(sim, SL_SIM_CHAT,
             "{\"model\":\"gpt-4\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
             "\"stream\":true}",
             NULL, &r);
    assert_int_equal(r.final, SL_SIM_DONE);
    assert_int_equal(r.status, 404);
    assert_false(r.stream);
    assert_string_equal(r.bytes, "{\"error\":{\"message\":\"The model `gpt-4` does not exist.\","
                                 "\"type\":\"NotFoundError\",\"param\":\"model\",\"code\":404}}");
    run_free(&r);
    /* no model: the served one */
    run_body(sim, SL_SIM_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.bytes, "\"model\":\"" MODEL "\""));
    run_free(&r);
    sl_sim_free(sim);
}

static void test_bad_bodies_400(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *sim = mk(&cfg);
    const char *bad[] = {
        "{\"messages\":[",                                               /* not JSON */
        "[1,2]",                                                         /* not an object */
        "{\"model\":\"" MODEL "\"}",                                     /* no messages */
        "{\"messages\":\"hi\"}",                                         /* messages not a list */
        "{\"messages\":[],\"n\":0}",                                     /* n < 1 */
        "{\"messages\":[],\"max_tokens\":0}",                            /* max_tokens < 1 */
        "{\"messages\":[],\"max_tokens\":9000}",                         /* past max_model_len */
        "{\"messages\":[],\"stream_options\":{\"include_usage\":true}}", /* without stream */
        "{\"messages\":[],\"stop\":7}",
        "{\"messages\":[],\"stream\":\"yes\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct run r;
        run_body(sim, SL_SIM_CHAT, bad[i], NULL, &r);
        assert_int_equal(r.status, 400);
        assert_int_equal(r.final, SL_SIM_DONE);
        assert_false(r.stream);
        json_t *v = parse(r.bytes);
        char got[128];
        got[0] = '\0';
        sig(v, got, sizeof got);
        assert_string_equal(got, "{error:{message,type,param,code}}");
        const json_t *err = json_object_get(v, "error");
        assert_int_equal(json_integer_value(json_object_get(err, "code")), 400);
        const char *type = json_string_value(json_object_get(err, "type"));
        assert_true(strcmp(type, "Bad Request") == 0 || strcmp(type, "BadRequestError") == 0);
        json_decref(v);
        run_free(&r);
    }
    /* JSON decode errors are FastAPI validation errors in vLLM: 400 "Bad Request" */
    struct run r;
    run_body(sim, SL_SIM_CHAT, "{nope", NULL, &r);
    assert_non_null(strstr(r.bytes, "\"type\":\"Bad Request\""));
    assert_non_null(strstr(r.bytes, "json_invalid"));
    run_free(&r);
    assert_int_equal(
        metric(sim, "vllm:num_requests_running{engine=\"0\",model_name=\"" MODEL "\"} "), 0);
    sl_sim_free(sim);
}

/* --- faults ---------------------------------------------------------------- */

static void test_fault_error_before_first(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *sim = mk(&cfg);
    const char *body = CHAT_STREAM(",\"x_fault\":{\"kind\":\"error_before_first\",\"status\":503,"
                                   "\"ms\":50}");
    struct sl_sim_req *req = NULL;
    assert_int_equal(sl_sim_start(sim, SL_SIM_CHAT, body, strlen(body), NULL, 0, T0, 1, &req), 0);
    assert_int_equal(sl_sim_req_status(req), 503);
    assert_false(sl_sim_req_is_stream(req));
    struct sl_buf out;
    sl_buf_init(&out, 4096);
    uint64_t wake;
    assert_int_equal(sl_sim_poll(req, T0, &out, &wake), SL_SIM_WAIT);
    assert_int_equal(wake, T0 + 50);
    assert_int_equal(sl_buf_size(&out), 0);
    assert_int_equal(sl_sim_poll(req, T0 + 50, &out, &wake), SL_SIM_DONE);
    assert_int_equal(sl_buf_append(&out, "", 1), 0);
    assert_string_equal(sl_buf_ptr(&out),
                        "{\"error\":{\"message\":\"Simulated fault: error_before_first (status "
                        "503).\",\"type\":\"ServiceUnavailableError\",\"param\":null,"
                        "\"code\":503}}");
    sl_buf_free(&out);
    sl_sim_req_free(req, T0 + 50);
    assert_int_equal(metric(sim, "finished_reason=\"error\",model_name=\"" MODEL "\"} "), 1);
    sl_sim_free(sim);
}

static void test_fault_drop_after(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *sim = mk(&cfg);
    struct run r;
    run_body(sim, SL_SIM_CHAT, CHAT_STREAM(""), "{\"kind\":\"drop_after\",\"n\":3}", &r);
    assert_int_equal(r.final, SL_SIM_DROP);
    struct events e;
    split_events(&r, &e);
    assert_int_equal(e.n, 4); /* role + 3 deltas, no finish, no [DONE] */
    assert_null(strstr(r.bytes, "[DONE]"));
    assert_null(strstr(r.bytes, "\"finish_reason\":\""));
    events_free(&e);
    run_free(&r);
    /* the batch slot is free again */
    assert_int_equal(
        metric(sim, "vllm:num_requests_running{engine=\"0\",model_name=\"" MODEL "\"} "), 0);
    sl_sim_free(sim);
}

static void test_fault_stall_after(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *sim = mk(&cfg);
    /* with ms: the third delta comes ms late, then the stream goes on */
    const char *body = CHAT_STREAM(",\"max_tokens\":6,\"x_fault\":{\"kind\":\"stall_after\","
                                   "\"n\":2,\"ms\":5000}");
    struct run r;
    run_body(sim, SL_SIM_CHAT, body, NULL, &r);
    assert_int_equal(r.final, SL_SIM_DONE);
    assert_int_equal(r.end_ms, T0 + 100 + 5 * 10 + 5000);
    struct events e;
    split_events(&r, &e);
    assert_int_equal(count_token_chunks(&e, 0), 6);
    events_free(&e);
    run_free(&r);

    /* without ms: forever, until the client goes away (an abort) */
    body = CHAT_STREAM(",\"x_fault\":{\"kind\":\"stall_after\",\"n\":2}");
    struct sl_sim_req *req = NULL;
    assert_int_equal(sl_sim_start(sim, SL_SIM_CHAT, body, strlen(body), NULL, 0, T0, 1, &req), 0);
    drive(req, T0, &r);
    assert_int_equal(r.final, SL_SIM_WAIT);
    split_events(&r, &e);
    assert_int_equal(e.n, 3);
    events_free(&e);
    run_free(&r);
    sl_sim_abort(req, T0 + 99999);
    sl_sim_req_free(req, T0 + 99999);
    assert_int_equal(metric(sim, "finished_reason=\"abort\",model_name=\"" MODEL "\"} "), 1);
    sl_sim_free(sim);
}

static void test_fault_inband_error(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *sim = mk(&cfg);
    struct run r;
    run_body(sim, SL_SIM_CHAT,
             CHAT_STREAM(",\"x_fault\":{\"kind\":\"inband_error_after\",\"n\":2}"), NULL, &r);
    assert_int_equal(r.final, SL_SIM_DONE);
    assert_int_equal(r.status, 200);
    struct events e;
    split_events(&r, &e);
    assert_int_equal(e.n, 5);
    assert_string_equal(e.ev[3], "{\"error\": {\"message\": \"Simulated fault: "
                                 "inband_error_after 2 deltas.\", \"type\": "
                                 "\"InternalServerError\", \"param\": null, \"code\": 500}}");
    assert_string_equal(e.ev[4], "[DONE]");
    events_free(&e);
    run_free(&r);
    sl_sim_free(sim);
}

static void test_fault_done_without_finish(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *sim = mk(&cfg);
    struct run r;
    run_body(sim, SL_SIM_CHAT, CHAT_STREAM(",\"stream_options\":{\"include_usage\":true}"),
             "{\"kind\": \"done_without_finish\", \"n\": 4}", &r);
    assert_int_equal(r.final, SL_SIM_DONE);
    struct events e;
    split_events(&r, &e);
    assert_int_equal(e.n, 1 + 4 + 1);
    assert_string_equal(e.ev[5], "[DONE]");
    assert_null(strstr(r.bytes, "\"finish_reason\":\""));
    assert_null(strstr(r.bytes, "\"usage\""));
    events_free(&e);
    run_free(&r);
    sl_sim_free(sim);
}

static void test_fault_sources_and_errors(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    /* a bad --fault makes the engine fail with a message */
    cfg.fault_json = "{\"kind\":\"explode\"}";
    char err[256] = "";
    assert_null(sl_sim_new(&cfg, err, sizeof err));
    assert_non_null(strstr(err, "explode"));
    cfg.fault_json = "{not json";
    assert_null(sl_sim_new(&cfg, err, sizeof err));
    assert_non_null(strstr(err, "--fault"));

    /* --fault applies to every request; the header wins over the body */
    cfg.fault_json = "{\"kind\":\"drop_after\",\"n\":1}";
    struct sl_sim *sim = mk(&cfg);
    struct run r;
    run_body(sim, SL_SIM_CHAT, CHAT_STREAM(""), NULL, &r);
    assert_int_equal(r.final, SL_SIM_DROP);
    run_free(&r);
    run_body(sim, SL_SIM_CHAT, CHAT_STREAM(",\"x_fault\":{\"kind\":\"drop_after\",\"n\":5}"),
             "{\"kind\":\"done_without_finish\",\"n\":2}", &r);
    assert_int_equal(r.final, SL_SIM_DONE);
    struct events e;
    split_events(&r, &e);
    assert_int_equal(e.n, 4);
    events_free(&e);
    run_free(&r);

    /* unknown kind, bad member, bad type: 400 BadRequestError naming x_fault */
    const char *bad[] = {
        CHAT_STREAM(",\"x_fault\":{\"kind\":\"explode\"}"),
        CHAT_STREAM(",\"x_fault\":{\"kind\":\"drop_after\",\"n\":-1}"),
        CHAT_STREAM(",\"x_fault\":{\"kind\":\"drop_after\",\"count\":1}"),
        CHAT_STREAM(",\"x_fault\":7"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run_body(sim, SL_SIM_CHAT, bad[i], NULL, &r);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.bytes, "\"type\":\"BadRequestError\",\"param\":\"x_fault\""));
        run_free(&r);
    }
    /* a blank header falls through to the body */
    run_body(sim, SL_SIM_CHAT, CHAT_STREAM(",\"x_fault\":{\"kind\":\"drop_after\",\"n\":2}"), "  ",
             &r);
    assert_int_equal(r.final, SL_SIM_DROP);
    run_free(&r);
    run_body(sim, SL_SIM_CHAT, CHAT_STREAM(""), "{\"kind\":\"nope\"}", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.bytes, "unknown kind \\\"nope\\\""));
    run_free(&r);
    sl_sim_free(sim);
}

/* --- batch, queueing, abort, metrics ---------------------------------------- */

static struct sl_sim_req *woken[16];
static int nwoken;

static void on_wake(struct sl_sim_req *req, void *ud)
{
    assert_ptr_equal(ud, &nwoken);
    woken[nwoken++] = req;
}

static struct sl_sim_req *start(struct sl_sim *sim, const char *body, uint64_t now)
{
    struct sl_sim_req *req = NULL;
    assert_int_equal(
        sl_sim_start(sim, SL_SIM_CHAT, body, strlen(body), NULL, 0, now, 1753616032, &req), 0);
    return req;
}

#define RUNNING "vllm:num_requests_running{engine=\"0\",model_name=\"" MODEL "\"} "
#define WAITING "vllm:num_requests_waiting{engine=\"0\",model_name=\"" MODEL "\"} "

static void test_queueing_and_wake(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    cfg.max_num_seqs = 2;
    cfg.wake_cb = on_wake;
    cfg.wake_ud = &nwoken;
    nwoken = 0;
    struct sl_sim *sim = mk(&cfg);
    const char *body = CHAT_STREAM(",\"max_tokens\":3");
    struct sl_sim_req *a = start(sim, body, T0), *b = start(sim, body, T0);
    struct sl_sim_req *c = start(sim, body, T0), *d = start(sim, body, T0);
    assert_int_equal(metric(sim, RUNNING), 2);
    assert_int_equal(metric(sim, WAITING), 2);
    assert_int_equal(
        metric(sim, "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"" MODEL "\"} "), 1);
    struct sl_buf out;
    sl_buf_init(&out, 1 << 20);
    uint64_t wake;
    assert_int_equal(sl_sim_poll(c, T0 + 500, &out, &wake), SL_SIM_WAIT);
    assert_int_equal(wake, UINT64_MAX);
    assert_int_equal(sl_buf_size(&out), 0);

    /* a finishes at T0+120: c is admitted (FIFO) and woken */
    struct run r;
    drive(a, T0, &r);
    assert_int_equal(r.final, SL_SIM_DONE);
    assert_int_equal(r.end_ms, T0 + 120);
    run_free(&r);
    assert_int_equal(nwoken, 1);
    assert_ptr_equal(woken[0], c);
    assert_int_equal(metric(sim, WAITING), 1);
    /* c's first token is ttft after its admission, and includes the queue time */
    drive(c, T0 + 120, &r);
    assert_int_equal(r.first_ms, T0 + 120 + 100);
    run_free(&r);
    assert_int_equal(nwoken, 2);
    assert_ptr_equal(woken[1], d);

    /* b is aborted by its client: counted, leaves the gauge at once */
    sl_sim_abort(b, T0 + 130);
    assert_int_equal(metric(sim, RUNNING), 1);
    assert_int_equal(metric(sim, "finished_reason=\"abort\",model_name=\"" MODEL "\"} "), 1);
    assert_int_equal(sl_sim_poll(b, T0 + 131, &out, &wake), SL_SIM_DONE);
    sl_sim_req_free(b, T0 + 131);
    /* freeing a running request aborts it */
    sl_sim_req_free(d, T0 + 140);
    assert_int_equal(metric(sim, "finished_reason=\"abort\",model_name=\"" MODEL "\"} "), 2);
    assert_int_equal(metric(sim, RUNNING), 0);
    assert_int_equal(metric(sim, WAITING), 0);
    assert_int_equal(metric(sim, "finished_reason=\"length\",model_name=\"" MODEL "\"} "), 2);
    sl_sim_req_free(a, T0 + 200);
    sl_sim_req_free(c, T0 + 200);
    sl_buf_free(&out);
    sl_sim_free(sim);
}

static void test_waiting_abort_and_load(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    cfg.max_num_seqs = 1;
    cfg.itl_load_pct = 100;
    struct sl_sim *sim = mk(&cfg);
    const char *body = CHAT_STREAM(",\"max_tokens\":3");
    struct sl_sim_req *a = start(sim, body, T0), *b = start(sim, body, T0);
    /* a waiting request aborted: counted, leaves the waiting gauge */
    sl_sim_abort(b, T0 + 1);
    assert_int_equal(metric(sim, WAITING), 0);
    assert_int_equal(metric(sim, "finished_reason=\"abort\",model_name=\"" MODEL "\"} "), 1);
    sl_sim_req_free(b, T0 + 1);
    /* a full batch (1 of 1) doubles the gap at 100 percent */
    struct run r;
    drive(a, T0, &r);
    assert_int_equal(r.end_ms, T0 + 100 + 2 * 20);
    run_free(&r);
    sl_sim_req_free(a, r.end_ms);
    sl_sim_free(sim);
}

static void test_metrics_text(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *sim = mk(&cfg);
    struct run r;
    run_body(sim, SL_SIM_CHAT, CHAT_STREAM(",\"max_tokens\":4"), NULL, &r);
    run_free(&r);
    struct sl_buf out;
    sl_buf_init(&out, 1 << 20);
    assert_int_equal(sl_sim_render_metrics(sim, &out), 0);
    assert_int_equal(sl_buf_append(&out, "", 1), 0);
    const char *m = sl_buf_ptr(&out);
    const char *want[] = {
        "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        "vllm:num_requests_running{engine=\"0\",model_name=\"" MODEL "\"} 0.0\n",
        "# TYPE vllm:num_requests_waiting gauge\n",
        "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n",
        "vllm:request_success_total{engine=\"0\",finished_reason=\"length\",model_name=\"" MODEL
        "\"} 1.0\n",
        "vllm:request_success_total{engine=\"0\",finished_reason=\"abort\",model_name=\"" MODEL
        "\"} 0.0\n",
        "vllm:generation_tokens_total{engine=\"0\",model_name=\"" MODEL "\"} 4.0\n",
        "# TYPE vllm:prompt_tokens_total counter\n",
        "# TYPE vllm:time_to_first_token_seconds histogram\n",
        "vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"0.08\",model_name=\"" MODEL
        "\"} 0.0\n"
        "vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"0.1\",model_name=\"" MODEL
        "\"} 1.0\n",
        "vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"2560.0\",model_name=\"" MODEL
        "\"} 1.0\n"
        "vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"+Inf\",model_name=\"" MODEL
        "\"} 1.0\n"
        "vllm:time_to_first_token_seconds_count{engine=\"0\",model_name=\"" MODEL "\"} 1.0\n",
        "vllm:time_to_first_token_seconds_sum{engine=\"0\",model_name=\"" MODEL "\"} 0.1\n",
        "vllm:inter_token_latency_seconds_bucket{engine=\"0\",le=\"0.01\",model_name=\"" MODEL
        "\"} 3.0\n",
        "vllm:inter_token_latency_seconds_count{engine=\"0\",model_name=\"" MODEL "\"} 3.0\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (strstr(m, want[i]) == NULL)
            fail_msg("metrics lack:\n%s\nin:\n%s", want[i], m);
    sl_buf_free(&out);
    sl_sim_free(sim);
}

static void test_models_json(void **state)
{
    (void)state;
    char *fx = read_fixture("vllm-0.9.2_v1-models.json");
    char want[1024], got[1024];
    sig_of(fx, want, sizeof want);
    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *sim = mk(&cfg);
    struct sl_buf out;
    sl_buf_init(&out, 1 << 16);
    assert_int_equal(sl_sim_render_models(sim, 1753615922, &out), 0);
    assert_int_equal(sl_buf_append(&out, "", 1), 0);
    sig_of(sl_buf_ptr(&out), got, sizeof got);
    assert_string_equal(got, want);
    assert_null(strstr(sl_buf_ptr(&out), ": "));
    json_t *v = parse(sl_buf_ptr(&out)), *f = parse(fx);
    const json_t *d = json_array_get(json_object_get(v, "data"), 0);
    const json_t *fd = json_array_get(json_object_get(f, "data"), 0);
    assert_string_equal(json_string_value(json_object_get(d, "id")), MODEL);
    assert_int_equal(json_integer_value(json_object_get(d, "max_model_len")), 8192);
    assert_true(json_equal(json_object_get(d, "owned_by"), json_object_get(fd, "owned_by")));
    assert_true(json_equal(json_object_get(d, "created"), json_object_get(fd, "created")));
    json_decref(v);
    json_decref(f);
    sl_buf_free(&out);
    free(fx);
    sl_sim_free(sim);
}

/* --- output ceiling ---------------------------------------------------------- */

static void test_out_ceiling_resumes(void **state)
{
    (void)state;
    struct sl_sim_config cfg = base_cfg();
    struct sl_sim *s1 = mk(&cfg), *s2 = mk(&cfg);
    const char *body = CHAT_STREAM(",\"seed\":9,\"n\":2,\"stream_options\":{\"include_usage\":"
                                   "true,\"continuous_usage_stats\":true}");
    struct run want;
    run_body(s1, SL_SIM_CHAT, body, NULL, &want);

    /* the same request through an out buffer of 100 bytes, drained each time */
    struct sl_sim_req *req = start(s2, body, T0);
    struct sl_buf out, all;
    sl_buf_init(&out, 100);
    sl_buf_init(&all, 1 << 20);
    uint64_t now = T0, wake = 0;
    int refusals = 0, st;
    for (;;) {
        st = sl_sim_poll(req, now, &out, &wake);
        assert_int_equal(sl_buf_append(&all, sl_buf_ptr(&out), sl_buf_size(&out)), 0);
        sl_buf_consume(&out, sl_buf_size(&out));
        if (st == SL_ETOOBIG) {
            refusals++;
            assert_int_equal(wake, now);
            continue;
        }
        assert_true(st >= 0);
        if (st != SL_SIM_WAIT)
            break;
        now = wake;
    }
    assert_int_equal(st, SL_SIM_DONE);
    assert_true(refusals > 10);
    assert_int_equal(sl_buf_size(&all), want.len);
    assert_memory_equal(sl_buf_ptr(&all), want.bytes, want.len);

    /* an out buffer that is full gets nothing and loses nothing */
    struct sl_sim_req *r2 = start(s2, body, T0);
    struct sl_buf full;
    sl_buf_init(&full, 10);
    assert_int_equal(sl_buf_append(&full, "0123456789", 10), 0);
    assert_int_equal(sl_sim_poll(r2, T0 + 100, &full, &wake), SL_ETOOBIG);
    assert_int_equal(sl_buf_size(&full), 10);
    sl_sim_req_free(r2, T0 + 100);
    assert_int_equal(metric(s2, "finished_reason=\"abort\",model_name=\"" MODEL "\"} "), 1);

    sl_buf_free(&full);
    sl_buf_free(&out);
    sl_buf_free(&all);
    sl_sim_req_free(req, now);
    run_free(&want);
    sl_sim_free(s1);
    sl_sim_free(s2);
}

static void test_render_error(void **state)
{
    (void)state;
    struct sl_buf out;
    sl_buf_init(&out, 1 << 10);
    assert_int_equal(sl_sim_render_error(&out, 400, "BadRequestError", "bad \"x\"\n é", "p"), 0);
    assert_int_equal(sl_buf_append(&out, "", 1), 0);
    /* compact, raw UTF-8, as Starlette's JSONResponse writes */
    assert_string_equal(sl_buf_ptr(&out), "{\"error\":{\"message\":\"bad \\\"x\\\"\\n é\","
                                          "\"type\":\"BadRequestError\",\"param\":\"p\","
                                          "\"code\":400}}");
    sl_buf_free(&out);
    /* all or nothing at the ceiling */
    sl_buf_init(&out, 20);
    assert_int_equal(sl_sim_render_error(&out, 500, "InternalServerError", "m", NULL), SL_ETOOBIG);
    assert_int_equal(sl_buf_size(&out), 0);
    sl_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunk_structure_matches_capture),
        cmocka_unit_test(test_timing_role_with_first_token),
        cmocka_unit_test(test_usage_chunk_last),
        cmocka_unit_test(test_continuous_usage),
        cmocka_unit_test(test_max_tokens_length),
        cmocka_unit_test(test_ignore_eos_exact_count),
        cmocka_unit_test(test_stop_strings),
        cmocka_unit_test(test_n2_interleaved),
        cmocka_unit_test(test_seed_determinism),
        cmocka_unit_test(test_text_kinds),
        cmocka_unit_test(test_reasoning_parser),
        cmocka_unit_test(test_nonstream_chat_body),
        cmocka_unit_test(test_completions),
        cmocka_unit_test(test_wrong_model_404),
        cmocka_unit_test(test_bad_bodies_400),
        cmocka_unit_test(test_fault_error_before_first),
        cmocka_unit_test(test_fault_drop_after),
        cmocka_unit_test(test_fault_stall_after),
        cmocka_unit_test(test_fault_inband_error),
        cmocka_unit_test(test_fault_done_without_finish),
        cmocka_unit_test(test_fault_sources_and_errors),
        cmocka_unit_test(test_queueing_and_wake),
        cmocka_unit_test(test_waiting_abort_and_load),
        cmocka_unit_test(test_metrics_text),
        cmocka_unit_test(test_models_json),
        cmocka_unit_test(test_out_ceiling_resumes),
        cmocka_unit_test(test_render_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
