/* sim.c - the simulator core: a sans-I/O stand-in vLLM engine (see sim.h).
 * Owns: vLLM-style request validation, the batch (max_num_seqs running, FIFO
 * waiting), token timing, vLLM's response bytes (chunks, bodies, errors),
 * faults and the /metrics counters. Does not own: answer text (text.c), fault
 * JSON parsing (fault.c), sockets, clocks, HTTP framing. */
#include "sim/sim.h"

#include "oai/error.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/fault.h"
#include "sim/text.h"

/* Choices per request ("n"). vLLM has no cap; the simulator keeps one text
 * generator (about 3 KiB) per choice, so it bounds them. */
#define SL_SIM_MAX_N 64
/* Stop strings per request and bytes per stop string. */
#define SL_SIM_MAX_STOPS      16
#define SL_SIM_MAX_STOP_BYTES 256
/* Bytes held for a request's output not yet taken by the caller: one step of
 * chunks, or a whole non-streaming body (n answers of at most max_model_len
 * tokens). */
#define SL_SIM_PEND_MAX (64u * 1024 * 1024)
/* Bytes of one answer kept for a non-streaming body. */
#define SL_SIM_ANSWER_MAX (16u * 1024 * 1024)
/* Longest error message the simulator writes. */
#define SL_SIM_MSG_MAX 1024

/* HTTP 400 type of FastAPI/pydantic validation errors: vLLM's
 * validation_exception_handler uses HTTPStatus.BAD_REQUEST.phrase. Errors
 * raised while serving (create_error_response) use "BadRequestError". */
#define TYPE_VALIDATION "Bad Request"
#define TYPE_BAD        "BadRequestError"

enum finish { FIN_NONE, FIN_STOP, FIN_LENGTH };
enum reason { R_STOP, R_LENGTH, R_ABORT, R_ERROR, R_COUNT };
static const char *const reason_names[R_COUNT] = {"stop", "length", "abort", "error"};

/* vLLM V1's bucket bounds (vllm/v1/metrics/loggers.py). */
static const double ttft_bounds[] = {0.001, 0.005, 0.01, 0.02,  0.04,  0.06,  0.08, 0.1,
                                     0.25,  0.5,   0.75, 1.0,   2.5,   5.0,   7.5,  10.0,
                                     20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
static const double itl_bounds[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
                                    0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
#define HIST_MAX 24

struct hist {
    uint64_t bucket[HIST_MAX]; /* not cumulative */
    uint64_t count;
    double sum;
};

struct sl_sim {
    struct sl_sim_config cfg; /* model and fault_json point at the copies */
    char *model;
    char *fault_src;
    struct sl__sim_fault fault;
    int64_t running, waiting;
    struct sl_sim_req *wait_head, *wait_tail;
    uint64_t success[R_COUNT];
    uint64_t prompt_tokens, gen_tokens;
    struct hist ttft, itl;
    uint64_t counter; /* requests started: mixed into ids */
};

struct choice {
    struct sl__sim_text gen;
    struct sl_buf tail;      /* answer text held back for stop strings */
    struct sl_buf content;   /* non-streaming: the message content */
    struct sl_buf reasoning; /* non-streaming with the parser */
    int64_t ntok;
    enum finish fin;
    int stop_idx; /* stop string that ended it, or -1 */
    bool saw_reasoning;
};

enum rstate { RS_ERROR, RS_WAITING, RS_RUNNING, RS_FINISHED, RS_ABORTED };

struct sl_sim_req {
    struct sl_sim *sim;
    struct sl_sim_req *wnext, *wprev; /* the waiting queue */
    enum rstate state;
    enum sl_sim_route route;
    int status;
    bool stream;
    void *data;

    struct sl_buf pend; /* response bytes not yet given to the caller */
    uint64_t gate_ms;   /* pend is held until then (error_before_first ms) */
    bool ended;         /* nothing more to make: DONE or DROP once pend drains */
    enum sl_sim_state end;

    char id[48];
    uint64_t created;
    struct sl_buf head; /* "data: {"id":...,"choices":[" */

    int n;
    int64_t max_tokens;
    int64_t prompt_tokens;
    bool ignore_eos, include_usage, cont_usage, think, parser;
    char *stops[SL_SIM_MAX_STOPS];
    size_t stop_len[SL_SIM_MAX_STOPS];
    int nstops;
    size_t hold; /* code points held back: longest stop string - 1 */

    struct sl__sim_fault fault;
    bool fault_fired, stalled;

    uint64_t seed, jrng;
    uint64_t arrival_ms, next_ms, last_ms;
    int64_t steps, deltas;
    struct choice *ch;
};

/* --- small helpers ------------------------------------------------------- */

static uint64_t fnv1a64(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

static void hex32(char *out, uint64_t a, uint64_t b)
{
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[i] = hx[(a >> (60 - 4 * i)) & 15];
        out[16 + i] = hx[(b >> (60 - 4 * i)) & 15];
    }
    out[32] = '\0';
}

/* --- public error body --------------------------------------------------- */

int sl_sim_render_error(struct sl_buf *out, int status, const char *type, const char *message,
                        const char *param)
{
    return sl_error_render(out, status, type, message, param);
}

/* --- engine -------------------------------------------------------------- */

struct sl_sim *sl_sim_new(const struct sl_sim_config *cfg, char *err, size_t errlen)
{
    const char *why = NULL;
    if (cfg->model == NULL || cfg->model[0] == '\0')
        why = "model name is empty";
    else if (cfg->max_num_seqs < 1)
        why = "max_num_seqs must be at least 1";
    else if (cfg->max_model_len < 2)
        why = "max_model_len must be at least 2";
    else if (cfg->ttft_ms < 0 || cfg->itl_ms < 0 || cfg->jitter_ms < 0 || cfg->itl_load_pct < 0)
        why = "ttft_ms, itl_ms, jitter_ms and itl_load_pct must not be negative";
    if (why != NULL) {
        snprintf(err, errlen, "simulator: %s", why);
        return NULL;
    }
    struct sl_sim *sim = calloc(1, sizeof *sim);
    if (sim == NULL) {
        snprintf(err, errlen, "simulator: out of memory");
        return NULL;
    }
    sim->cfg = *cfg;
    sim->model = dup_str(cfg->model);
    sim->fault_src = dup_str(cfg->fault_json ? cfg->fault_json : "");
    if (sim->model == NULL || sim->fault_src == NULL) {
        snprintf(err, errlen, "simulator: out of memory");
        sl_sim_free(sim);
        return NULL;
    }
    sim->cfg.model = sim->model;
    sim->cfg.fault_json = sim->fault_src;
    char msg[SL_SIM_MSG_MAX];
    if (sl__sim_fault_parse_str(sim->fault_src, strlen(sim->fault_src), &sim->fault, msg,
                                sizeof msg) < 0) {
        snprintf(err, errlen, "--fault: %s", msg);
        sl_sim_free(sim);
        return NULL;
    }
    return sim;
}

void sl_sim_free(struct sl_sim *sim)
{
    if (sim == NULL)
        return;
    free(sim->model);
    free(sim->fault_src);
    free(sim);
}

static void hist_add(struct hist *h, const double *bounds, size_t nb, double v)
{
    size_t i = 0;
    while (i < nb && v > bounds[i])
        i++;
    h->bucket[i]++; /* i == nb: only +Inf */
    h->count++;
    h->sum += v;
}

static void admit(struct sl_sim_req *r, uint64_t now)
{
    struct sl_sim *sim = r->sim;
    r->state = RS_RUNNING;
    sim->running++;
    sim->prompt_tokens += (uint64_t)r->prompt_tokens;
    r->next_ms = now + (uint64_t)sim->cfg.ttft_ms;
}

static void unlink_waiting(struct sl_sim_req *r)
{
    struct sl_sim *sim = r->sim;
    if (r->wprev)
        r->wprev->wnext = r->wnext;
    else
        sim->wait_head = r->wnext;
    if (r->wnext)
        r->wnext->wprev = r->wprev;
    else
        sim->wait_tail = r->wprev;
    r->wnext = r->wprev = NULL;
    sim->waiting--;
}

/* A running request left the batch: admit waiting ones in FIFO order. */
static void release(struct sl_sim *sim, uint64_t now)
{
    sim->running--;
    while (sim->running < sim->cfg.max_num_seqs && sim->wait_head != NULL) {
        struct sl_sim_req *w = sim->wait_head;
        unlink_waiting(w);
        admit(w, now);
        if (sim->cfg.wake_cb)
            sim->cfg.wake_cb(w, sim->cfg.wake_ud);
    }
}

static void finish_engine(struct sl_sim_req *r, enum reason why, uint64_t now)
{
    r->state = RS_FINISHED;
    r->sim->success[why]++;
    release(r->sim, now);
}

/* --- request parsing ----------------------------------------------------- */

/* Makes r an error response: status, vLLM's error body, nothing else. */
static void req_fail(struct sl_sim_req *r, int status, const char *type, const char *param,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void req_fail(struct sl_sim_req *r, int status, const char *type, const char *param,
                     const char *fmt, ...)
{
    char msg[SL_SIM_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->state = RS_ERROR;
    r->status = status;
    r->stream = false;
    r->ended = true;
    r->end = SL_SIM_DONE;
    sl_buf_reset(&r->pend);
    if (sl_sim_render_error(&r->pend, status, type, msg, param) != SL_OK)
        r->end = SL_SIM_DROP; /* out of memory: nothing sensible to send */
}

static int ceil4(size_t n)
{
    return (int)((n + 3) / 4);
}

/* Prompt tokens of one message content (a string or text parts), and the
 * text the kind is picked from. */
static int64_t content_tokens(const json_t *content, const char **text, size_t *tlen)
{
    if (json_is_string(content)) {
        *text = json_string_value(content);
        *tlen = json_string_length(content);
        return ceil4(*tlen);
    }
    int64_t t = 0;
    if (json_is_array(content)) {
        size_t i;
        const json_t *part;
        json_array_foreach(content, i, part)
        {
            const json_t *tx = json_object_get(part, "text");
            if (json_is_string(tx)) {
                *text = json_string_value(tx);
                *tlen = json_string_length(tx);
                t += ceil4(*tlen);
            } else {
                t += 64; /* an image or audio part */
            }
        }
    }
    return t;
}

static bool opt_bool(const json_t *root, const char *key, bool dflt, bool *out)
{
    const json_t *v = json_object_get(root, key);
    if (v == NULL || json_is_null(v)) {
        *out = dflt;
        return true;
    }
    if (!json_is_boolean(v))
        return false;
    *out = json_is_true(v);
    return true;
}

/* Validates the body as vLLM's pydantic models and serving code do; on a
 * problem r becomes an error response and false is returned. *kind_text
 * gets the user's last words (borrowed from root). */
static bool parse_request(struct sl_sim_req *r, const json_t *root, const char **kind_text,
                          size_t *kind_len)
{
    struct sl_sim *sim = r->sim;
    bool chat = r->route == SL_SIM_CHAT;
    int64_t nprompts = 1;
    *kind_text = "";
    *kind_len = 0;
    if (!json_is_object(root)) {
        req_fail(r, 400, TYPE_VALIDATION, NULL,
                 "[{'type': 'model_attributes_type', 'loc': ('body',), 'msg': 'Input should be "
                 "a valid dictionary or object to extract fields from'}]");
        return false;
    }
    if (chat) {
        const json_t *msgs = json_object_get(root, "messages");
        if (msgs == NULL) {
            req_fail(r, 400, TYPE_VALIDATION, NULL,
                     "[{'type': 'missing', 'loc': ('body', 'messages'), 'msg': 'Field "
                     "required'}]");
            return false;
        }
        if (!json_is_array(msgs)) {
            req_fail(r, 400, TYPE_VALIDATION, NULL,
                     "[{'type': 'list_type', 'loc': ('body', 'messages'), 'msg': 'Input should "
                     "be a valid list'}]");
            return false;
        }
        int64_t pt = 3; /* the generation prompt */
        size_t i;
        const json_t *m;
        json_array_foreach(msgs, i, m)
        {
            if (!json_is_object(m) || !json_is_string(json_object_get(m, "role"))) {
                req_fail(r, 400, TYPE_VALIDATION, NULL,
                         "[{'type': 'missing', 'loc': ('body', 'messages', %zu, 'role'), "
                         "'msg': 'Field required'}]",
                         i);
                return false;
            }
            const char *t = "";
            size_t tl = 0;
            pt += 5 + content_tokens(json_object_get(m, "content"), &t, &tl);
            if (strcmp(json_string_value(json_object_get(m, "role")), "user") == 0) {
                *kind_text = t;
                *kind_len = tl;
            }
        }
        r->prompt_tokens = pt;
    } else {
        const json_t *p = json_object_get(root, "prompt");
        int64_t pt = 0;
        /* A list of strings is a batch: one choice (times n) per prompt. */
        if (json_is_array(p) && json_array_size(p) > 0 && json_is_string(json_array_get(p, 0)))
            nprompts = (int64_t)json_array_size(p);
        if (json_is_string(p)) {
            *kind_text = json_string_value(p);
            *kind_len = json_string_length(p);
            pt = ceil4(*kind_len);
        } else if (json_is_array(p)) {
            size_t i;
            const json_t *e;
            json_array_foreach(p, i, e)
            {
                if (json_is_integer(e)) {
                    pt++;
                } else if (json_is_string(e)) {
                    *kind_text = json_string_value(e);
                    *kind_len = json_string_length(e);
                    pt += ceil4(*kind_len);
                } else {
                    req_fail(r, 400, TYPE_VALIDATION, "prompt",
                             "[{'type': 'string_type', 'loc': ('body', 'prompt'), 'msg': "
                             "'Input should be a valid string or a list of strings or token "
                             "ids'}]");
                    return false;
                }
            }
        } else if (p != NULL && !json_is_null(p)) {
            req_fail(r, 400, TYPE_VALIDATION, "prompt",
                     "[{'type': 'string_type', 'loc': ('body', 'prompt'), 'msg': 'Input should "
                     "be a valid string'}]");
            return false;
        }
        if (pt == 0) {
            req_fail(r, 400, TYPE_VALIDATION, "prompt",
                     "Value error, Either prompt or prompt_embeds must be provided and "
                     "non-empty. (parameter=prompt)");
            return false;
        }
        r->prompt_tokens = pt;
    }

    const json_t *model = json_object_get(root, "model");
    if (model != NULL && !json_is_null(model) && !json_is_string(model)) {
        req_fail(r, 400, TYPE_VALIDATION, NULL,
                 "[{'type': 'string_type', 'loc': ('body', 'model'), 'msg': 'Input should be a "
                 "valid string'}]");
        return false;
    }

    bool ok = opt_bool(root, "stream", false, &r->stream);
    ok = ok && opt_bool(root, "ignore_eos", false, &r->ignore_eos);
    if (!ok) {
        req_fail(r, 400, TYPE_VALIDATION, NULL,
                 "[{'type': 'bool_type', 'loc': ('body', '%s'), 'msg': 'Input should be a valid "
                 "boolean'}]",
                 json_object_get(root, "ignore_eos") ? "ignore_eos" : "stream");
        return false;
    }

    /* Integers: n, max_tokens / max_completion_tokens, seed. */
    const char *int_keys[] = {"n", "max_tokens", "max_completion_tokens", "seed"};
    for (size_t k = 0; k < sizeof int_keys / sizeof int_keys[0]; k++) {
        const json_t *v = json_object_get(root, int_keys[k]);
        if (v != NULL && !json_is_null(v) && !json_is_integer(v)) {
            req_fail(r, 400, TYPE_VALIDATION, NULL,
                     "[{'type': 'int_type', 'loc': ('body', '%s'), 'msg': 'Input should be a "
                     "valid integer'}]",
                     int_keys[k]);
            return false;
        }
    }

    const json_t *so = json_object_get(root, "stream_options");
    if (so != NULL && !json_is_null(so)) {
        if (!json_is_object(so)) {
            req_fail(r, 400, TYPE_VALIDATION, NULL,
                     "[{'type': 'model_type', 'loc': ('body', 'stream_options'), 'msg': 'Input "
                     "should be a valid dictionary or instance of StreamOptions'}]");
            return false;
        }
        if (!r->stream && json_object_size(so) > 0) { /* vLLM: a truthy value */
            req_fail(r, 400, TYPE_VALIDATION, "stream_options",
                     "Value error, Stream options can only be defined when `stream=True`. "
                     "(parameter=stream_options)");
            return false;
        }
        bool cont = false;
        if (!opt_bool(so, "include_usage", true, &r->include_usage) ||
            !opt_bool(so, "continuous_usage_stats", false, &cont)) {
            req_fail(r, 400, TYPE_VALIDATION, NULL,
                     "[{'type': 'bool_type', 'loc': ('body', 'stream_options'), 'msg': 'Input "
                     "should be a valid boolean'}]");
            return false;
        }
        r->cont_usage = r->include_usage && cont;
    }

    /* stop: a string or a list of strings */
    const json_t *stop = json_object_get(root, "stop");
    if (json_is_string(stop)) {
        if (json_string_length(stop) > 0) {
            r->stops[0] = dup_str(json_string_value(stop));
            r->stop_len[0] = json_string_length(stop);
            r->nstops = r->stops[0] ? 1 : 0;
        }
    } else if (json_is_array(stop)) {
        size_t i;
        const json_t *s;
        json_array_foreach(stop, i, s)
        {
            if (!json_is_string(s)) {
                req_fail(r, 400, TYPE_VALIDATION, "stop",
                         "[{'type': 'string_type', 'loc': ('body', 'stop', %zu), 'msg': 'Input "
                         "should be a valid string'}]",
                         i);
                return false;
            }
            if (json_string_length(s) == 0)
                continue;
            if (r->nstops >= SL_SIM_MAX_STOPS) {
                req_fail(r, 400, TYPE_BAD, "stop", "The simulator takes at most %d stop strings.",
                         SL_SIM_MAX_STOPS);
                return false;
            }
            r->stops[r->nstops] = dup_str(json_string_value(s));
            r->stop_len[r->nstops] = json_string_length(s);
            if (r->stops[r->nstops] != NULL)
                r->nstops++;
        }
    } else if (stop != NULL && !json_is_null(stop)) {
        req_fail(r, 400, TYPE_VALIDATION, "stop",
                 "[{'type': 'string_type', 'loc': ('body', 'stop'), 'msg': 'Input should be a "
                 "valid string or a list of strings'}]");
        return false;
    }
    for (int i = 0; i < r->nstops; i++) {
        if (r->stop_len[i] > SL_SIM_MAX_STOP_BYTES) {
            req_fail(r, 400, TYPE_BAD, "stop",
                     "The simulator takes stop strings of at most %d bytes.",
                     SL_SIM_MAX_STOP_BYTES);
            return false;
        }
        /* hold back (code points of the longest stop string) - 1, as vLLM */
        size_t cps = 0;
        for (size_t j = 0; j < r->stop_len[i]; j++)
            cps += ((unsigned char)r->stops[i][j] & 0xc0) != 0x80;
        if (cps - 1 > r->hold)
            r->hold = cps - 1;
    }

    r->think = false;
    if (chat) {
        r->think = true;
        const json_t *ctk = json_object_get(root, "chat_template_kwargs");
        if (ctk != NULL && !json_is_null(ctk) && !json_is_object(ctk)) {
            req_fail(r, 400, TYPE_VALIDATION, NULL,
                     "[{'type': 'dict_type', 'loc': ('body', 'chat_template_kwargs'), 'msg': "
                     "'Input should be a valid dictionary'}]");
            return false;
        }
        const json_t *et = json_object_get(ctk, "enable_thinking");
        if (json_is_false(et))
            r->think = false;
        r->parser = sim->cfg.reasoning_parser;
    }

    /* Served model: checked after the body validates, as vLLM's _check_model. */
    if (json_is_string(model) && strcmp(json_string_value(model), sim->model) != 0) {
        req_fail(r, 404, "NotFoundError", "model", "The model `%s` does not exist.",
                 json_string_value(model));
        return false;
    }

    /* Sampling parameters (vLLM's SamplingParams checks, then max tokens). */
    static const struct {
        const char *key;
        double lo, hi;
        bool lo_open;
        const char *range;
    } ranges[] = {
        {"temperature", 0, 1e300, false, "must be non-negative"},
        {"top_p", 0, 1, true, "must be in (0, 1]"},
        {"presence_penalty", -2, 2, false, "must be in [-2, 2]"},
        {"frequency_penalty", -2, 2, false, "must be in [-2, 2]"},
    };
    for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
        const json_t *v = json_object_get(root, ranges[k].key);
        if (v == NULL || json_is_null(v))
            continue;
        if (!json_is_number(v)) {
            req_fail(r, 400, TYPE_VALIDATION, NULL,
                     "[{'type': 'float_type', 'loc': ('body', '%s'), 'msg': 'Input should be a "
                     "valid number'}]",
                     ranges[k].key);
            return false;
        }
        double d = json_number_value(v);
        bool low = ranges[k].lo_open ? d <= ranges[k].lo : d < ranges[k].lo;
        if (low || d > ranges[k].hi) {
            req_fail(r, 400, TYPE_BAD, NULL, "%s %s, got %.1f.", ranges[k].key, ranges[k].range, d);
            return false;
        }
    }
    const json_t *jn = json_object_get(root, "n");
    int64_t n = json_is_integer(jn) ? json_integer_value(jn) : 1;
    if (n < 1) {
        req_fail(r, 400, TYPE_BAD, NULL, "n must be at least 1, got %lld.", (long long)n);
        return false;
    }
    if (n > SL_SIM_MAX_N / nprompts) {
        req_fail(r, 400, TYPE_BAD, "n", "The simulator takes at most %d choices, got %lld.",
                 SL_SIM_MAX_N, (long long)(n * nprompts));
        return false;
    }
    n *= nprompts;
    if (n > SL_SIM_MAX_N) {
        req_fail(r, 400, TYPE_BAD, "n", "The simulator takes n of at most %d, got %lld.",
                 SL_SIM_MAX_N, (long long)n);
        return false;
    }
    r->n = (int)n;

    const json_t *mt = chat ? json_object_get(root, "max_completion_tokens") : NULL;
    if (!json_is_integer(mt))
        mt = json_object_get(root, "max_tokens");
    int64_t room = sim->cfg.max_model_len - r->prompt_tokens;
    if (r->prompt_tokens >= sim->cfg.max_model_len) {
        req_fail(r, 400, TYPE_BAD, NULL,
                 "This model's maximum context length is %lld tokens. However, your request has "
                 "%lld input tokens. Please reduce the length of the input messages.",
                 (long long)sim->cfg.max_model_len, (long long)r->prompt_tokens);
        return false;
    }
    if (json_is_integer(mt)) {
        int64_t v = json_integer_value(mt);
        if (v < 1) {
            req_fail(r, 400, TYPE_BAD, NULL, "max_tokens must be at least 1, got %lld.",
                     (long long)v);
            return false;
        }
        if (v > room) {
            req_fail(r, 400, TYPE_BAD, NULL,
                     "'max_tokens' or 'max_completion_tokens' is too large: %lld. This model's "
                     "maximum context length is %lld tokens and your request has %lld input "
                     "tokens (%lld > %lld - %lld).",
                     (long long)v, (long long)sim->cfg.max_model_len, (long long)r->prompt_tokens,
                     (long long)v, (long long)sim->cfg.max_model_len, (long long)r->prompt_tokens);
            return false;
        }
        r->max_tokens = v;
    } else {
        /* vLLM: completions default to 16 tokens; chat to the room left. */
        r->max_tokens = chat ? room : (room < 16 ? room : 16);
    }
    return true;
}

/* The fault for this request: X-Fault header, else the body's x_fault, else
 * the engine's --fault. */
static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

/* The fault for this request: the X-Fault header when it is not blank, else
 * the body's x_fault member, else the engine's --fault (cfg->fault_json). */
static bool pick_fault(struct sl_sim_req *r, const json_t *root, const char *x_fault,
                       size_t x_fault_len)
{
    char msg[SL_SIM_MSG_MAX];
    int rc = 0;
    const json_t *xf = json_object_get(root, "x_fault");
    if (x_fault != NULL && !blank(x_fault, x_fault_len))
        rc = sl__sim_fault_parse_str(x_fault, x_fault_len, &r->fault, msg, sizeof msg);
    else if (json_is_string(xf) && !blank(json_string_value(xf), json_string_length(xf)))
        rc = sl__sim_fault_parse_str(json_string_value(xf), json_string_length(xf), &r->fault, msg,
                                     sizeof msg);
    else if (xf != NULL && !json_is_null(xf) && !json_is_string(xf))
        rc = sl__sim_fault_parse_json(xf, &r->fault, msg, sizeof msg);
    else
        r->fault = r->sim->fault;
    if (rc < 0) {
        req_fail(r, 400, TYPE_BAD, "x_fault", "%s", msg);
        return false;
    }
    return true;
}

static int build_head(struct sl_sim_req *r)
{
    bool chat = r->route == SL_SIM_CHAT;
    int rc = sl_buf_printf(&r->head,
                           "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%llu,"
                           "\"model\":",
                           r->id, chat ? "chat.completion.chunk" : "text_completion",
                           (unsigned long long)r->created);
    if (rc == SL_OK)
        rc = sl_buf_put_json_str(&r->head, r->sim->model, strlen(r->sim->model));
    if (rc == SL_OK)
        rc = sl_buf_puts(&r->head, ",\"choices\":[");
    return rc;
}

int sl_sim_start(struct sl_sim *sim, enum sl_sim_route route, const char *body, size_t len,
                 const char *x_fault, size_t x_fault_len, uint64_t now_ms, uint64_t unix_s,
                 struct sl_sim_req **out)
{
    *out = NULL;
    struct sl_sim_req *r = calloc(1, sizeof *r);
    if (r == NULL)
        return SL_ENOMEM;
    r->sim = sim;
    r->route = route;
    r->status = 200;
    r->created = unix_s;
    r->arrival_ms = now_ms;
    r->state = RS_ERROR;
    sl_buf_init(&r->pend, SL_SIM_PEND_MAX);
    sl_buf_init(&r->head, 4096);
    *out = r;
    sim->counter++;

    json_error_t je;
    json_t *root = json_loadb(body, len, 0, &je);
    if (root == NULL) {
        req_fail(r, 400, TYPE_VALIDATION, NULL,
                 "[{'type': 'json_invalid', 'loc': ('body', %d), 'msg': 'JSON decode error', "
                 "'input': {}, 'ctx': {'error': '%s'}}]",
                 je.position, je.text);
        return SL_OK;
    }
    const char *kind_text;
    size_t kind_len;
    if (!parse_request(r, root, &kind_text, &kind_len) ||
        !pick_fault(r, root, x_fault, x_fault_len)) {
        json_decref(root);
        return SL_OK;
    }
    const json_t *seed = json_object_get(root, "seed");
    r->seed = json_is_integer(seed) ? (uint64_t)json_integer_value(seed) : fnv1a64(body, len);
    uint64_t st = r->seed ^ (sim->counter * 0xd1b54a32d192ed03ULL);
    uint64_t a = sl__sim_rng(&st), b = sl__sim_rng(&st);
    snprintf(r->id, sizeof r->id, "%s", route == SL_SIM_CHAT ? "chatcmpl-" : "cmpl-");
    hex32(r->id + strlen(r->id), a, b);
    r->jrng = r->seed ^ 0x6a69747465720000ULL;
    enum sl__sim_kind kind = sl__sim_text_pick_kind(kind_text, kind_len, r->seed);
    json_decref(root);

    int rc = build_head(r);
    r->ch = calloc((size_t)r->n, sizeof *r->ch);
    if (rc != SL_OK || r->ch == NULL) {
        sl_sim_req_free(r, now_ms);
        *out = NULL;
        return SL_ENOMEM;
    }
    size_t answer_max = SL_SIM_ANSWER_MAX;
    if (r->max_tokens < (int64_t)(SL_SIM_ANSWER_MAX / (SL__SIM_TOK_MAX_BYTES * 2)))
        answer_max = (size_t)(r->max_tokens + 1) * SL__SIM_TOK_MAX_BYTES * 2;
    for (int i = 0; i < r->n; i++) {
        struct choice *c = &r->ch[i];
        uint64_t cs = r->seed + (uint64_t)i * 0x9e3779b97f4a7c15ULL;
        sl__sim_text_init(&c->gen, cs, kind, r->think, r->ignore_eos);
        sl_buf_init(&c->tail, answer_max);
        sl_buf_init(&c->content, r->stream ? 0 : answer_max);
        sl_buf_init(&c->reasoning, r->stream ? 0 : answer_max);
        c->stop_idx = -1;
    }

    if (r->fault.kind == SL__SIM_FAULT_ERROR_BEFORE_FIRST) {
        int status = r->fault.status;
        req_fail(r, status, sl_error_type(status), NULL,
                 "Simulated fault: error_before_first (status %d).", status);
        r->gate_ms = now_ms + (uint64_t)(r->fault.ms > 0 ? r->fault.ms : 0);
        sim->success[R_ERROR]++;
        return SL_OK;
    }

    if (sim->running < sim->cfg.max_num_seqs) {
        admit(r, now_ms);
    } else {
        r->state = RS_WAITING;
        r->wprev = sim->wait_tail;
        if (sim->wait_tail)
            sim->wait_tail->wnext = r;
        else
            sim->wait_head = r;
        sim->wait_tail = r;
        sim->waiting++;
    }
    return SL_OK;
}

int sl_sim_req_status(const struct sl_sim_req *req)
{
    return req->status;
}

bool sl_sim_req_is_stream(const struct sl_sim_req *req)
{
    return req->stream && req->status == 200;
}

void sl_sim_req_set_data(struct sl_sim_req *req, void *data)
{
    req->data = data;
}

void *sl_sim_req_data(const struct sl_sim_req *req)
{
    return req->data;
}

/* --- response bytes ------------------------------------------------------ */

enum delta_kind { D_ROLE, D_CONTENT, D_REASONING, D_EMPTY };

static int put_usage(struct sl_buf *b, int64_t prompt, int64_t completion)
{
    return sl_buf_printf(
        b, "{\"prompt_tokens\":%lld,\"total_tokens\":%lld,\"completion_tokens\":%lld}",
        (long long)prompt, (long long)(prompt + completion), (long long)completion);
}

static int put_finish(struct sl_buf *b, const struct sl_sim_req *r, const struct choice *c)
{
    int rc = sl_buf_puts(b, c->fin == FIN_LENGTH ? "\"length\",\"stop_reason\":"
                                                 : "\"stop\",\"stop_reason\":");
    if (rc != SL_OK)
        return rc;
    if (c->stop_idx >= 0)
        return sl_buf_put_json_str(b, r->stops[c->stop_idx], r->stop_len[c->stop_idx]);
    return sl_buf_puts(b, "null");
}

/* One chunk for choice i. usage_tokens < 0: no per-chunk usage. */
static int put_chunk(struct sl_sim_req *r, int i, enum delta_kind dk, const char *text, size_t len,
                     bool finish, int64_t usage_tokens)
{
    struct sl_buf *b = &r->pend;
    const struct choice *c = &r->ch[i];
    int rc = sl_buf_append(b, sl_buf_ptr(&r->head), sl_buf_size(&r->head));
    if (rc == SL_OK)
        rc = sl_buf_printf(b, "{\"index\":%d,", i);
    if (r->route == SL_SIM_CHAT) {
        if (rc == SL_OK)
            rc = sl_buf_puts(b, "\"delta\":{");
        if (rc == SL_OK && dk == D_ROLE)
            rc = sl_buf_puts(b, "\"role\":\"assistant\",\"content\":\"\"");
        if (rc == SL_OK && (dk == D_CONTENT || dk == D_REASONING)) {
            rc = sl_buf_puts(b, dk == D_CONTENT ? "\"content\":" : "\"reasoning\":");
            if (rc == SL_OK)
                rc = sl_buf_put_json_str(b, text, len);
        }
        if (rc == SL_OK)
            rc = sl_buf_puts(b, "},\"logprobs\":null,\"finish_reason\":");
        if (rc == SL_OK)
            rc = finish ? put_finish(b, r, c) : sl_buf_puts(b, "null");
    } else {
        if (rc == SL_OK)
            rc = sl_buf_puts(b, "\"text\":");
        if (rc == SL_OK)
            rc = sl_buf_put_json_str(b, text, len);
        if (rc == SL_OK)
            rc = sl_buf_puts(b, ",\"logprobs\":null,\"finish_reason\":");
        if (rc == SL_OK)
            rc = finish ? put_finish(b, r, c) : sl_buf_puts(b, "null,\"stop_reason\":null");
    }
    if (rc == SL_OK)
        rc = sl_buf_puts(b, "}]");
    if (rc == SL_OK && usage_tokens >= 0) {
        rc = sl_buf_puts(b, ",\"usage\":");
        if (rc == SL_OK)
            rc = put_usage(b, r->prompt_tokens, usage_tokens);
    }
    if (rc == SL_OK)
        rc = sl_buf_puts(b, "}\n\n");
    return rc;
}

static int64_t total_completion(const struct sl_sim_req *r)
{
    int64_t t = 0;
    for (int i = 0; i < r->n; i++)
        t += r->ch[i].ntok;
    return t;
}

static int put_usage_chunk(struct sl_sim_req *r)
{
    int rc = sl_buf_append(&r->pend, sl_buf_ptr(&r->head), sl_buf_size(&r->head));
    if (rc == SL_OK)
        rc = sl_buf_puts(&r->pend, "],\"usage\":");
    if (rc == SL_OK)
        rc = put_usage(&r->pend, r->prompt_tokens, total_completion(r));
    if (rc == SL_OK)
        rc = sl_buf_puts(&r->pend, "}\n\n");
    return rc;
}

/* vLLM's non-streaming bodies (0.9.2 key order; "reasoning" is the current
 * name of 0.9.2's "reasoning_content"). */
static int put_body(struct sl_sim_req *r)
{
    struct sl_buf *b = &r->pend;
    bool chat = r->route == SL_SIM_CHAT;
    int rc =
        sl_buf_printf(b, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%llu,\"model\":", r->id,
                      chat ? "chat.completion" : "text_completion", (unsigned long long)r->created);
    if (rc == SL_OK)
        rc = sl_buf_put_json_str(b, r->sim->model, strlen(r->sim->model));
    if (rc == SL_OK)
        rc = sl_buf_puts(b, ",\"choices\":[");
    for (int i = 0; i < r->n && rc == SL_OK; i++) {
        const struct choice *c = &r->ch[i];
        rc = sl_buf_printf(b, "%s{\"index\":%d,", i ? "," : "", i);
        if (chat) {
            if (rc == SL_OK)
                rc = sl_buf_puts(b, "\"message\":{\"role\":\"assistant\",\"reasoning\":");
            if (rc == SL_OK)
                rc = c->saw_reasoning ? sl_buf_put_json_str(b, sl_buf_ptr(&c->reasoning),
                                                            sl_buf_size(&c->reasoning))
                                      : sl_buf_puts(b, "null");
            if (rc == SL_OK)
                rc = sl_buf_puts(b, ",\"content\":");
            if (rc == SL_OK)
                rc =
                    r->parser && sl_buf_size(&c->content) == 0
                        ? sl_buf_puts(b, "null")
                        : sl_buf_put_json_str(b, sl_buf_ptr(&c->content), sl_buf_size(&c->content));
            if (rc == SL_OK)
                rc = sl_buf_puts(b, ",\"tool_calls\":[]},\"logprobs\":null,\"finish_reason\":");
        } else {
            if (rc == SL_OK)
                rc = sl_buf_puts(b, "\"text\":");
            if (rc == SL_OK)
                rc = sl_buf_put_json_str(b, sl_buf_ptr(&c->content), sl_buf_size(&c->content));
            if (rc == SL_OK)
                rc = sl_buf_puts(b, ",\"logprobs\":null,\"finish_reason\":");
        }
        if (rc == SL_OK)
            rc = c->fin == FIN_NONE ? sl_buf_puts(b, "null,\"stop_reason\":null")
                                    : put_finish(b, r, c);
        if (rc == SL_OK && !chat)
            rc = sl_buf_puts(b, ",\"prompt_logprobs\":null");
        if (rc == SL_OK)
            rc = sl_buf_puts(b, "}");
    }
    if (rc == SL_OK)
        rc = sl_buf_printf(b,
                           "],\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld,"
                           "\"completion_tokens\":%lld,\"prompt_tokens_details\":null},",
                           (long long)r->prompt_tokens,
                           (long long)(r->prompt_tokens + total_completion(r)),
                           (long long)total_completion(r));
    if (rc == SL_OK)
        rc = sl_buf_puts(b, chat ? "\"prompt_logprobs\":null,\"kv_transfer_params\":null}"
                                 : "\"kv_transfer_params\":null}");
    return rc;
}

/* vLLM's create_streaming_error_response: json.dumps spacing, ASCII. */
static int put_inband_error(struct sl_sim_req *r, int status, const char *msg)
{
    struct sl_buf *b = &r->pend;
    int rc = sl_buf_puts(b, "data: ");
    if (rc == SL_OK)
        rc = sl_error_render_py(b, status, NULL, msg, NULL);
    if (rc == SL_OK)
        rc = sl_buf_puts(b, "\n\ndata: [DONE]\n\n");
    return rc;
}

/* Bytes of the last `cps` code points of s[0..n). */
static size_t tail_bytes(const char *s, size_t n, size_t cps)
{
    size_t i = n;
    for (size_t k = 0; k < cps && i > 0; k++) {
        i--;
        while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80)
            i--;
    }
    return n - i;
}

/* One token of choice i: decides its finish, writes its chunk (streaming) or
 * keeps its text (non-streaming). *emitted: a chunk went out. */
static int choice_step(struct sl_sim_req *r, int i, bool *emitted)
{
    struct choice *c = &r->ch[i];
    struct sl__sim_tok tok;
    sl__sim_text_next(&c->gen, &tok);
    c->ntok++;
    r->sim->gen_tokens++;

    enum delta_kind dk = D_CONTENT;
    const char *text = tok.s;
    size_t len = tok.len, consume = 0;
    bool from_tail = false;
    switch (tok.type) {
    case SL__SIM_TOK_EOS:
        c->fin = FIN_STOP;
        from_tail = true;
        break;
    case SL__SIM_TOK_THINK_OPEN:
    case SL__SIM_TOK_THINK_CLOSE:
        if (r->parser)
            dk = D_EMPTY; /* the reasoning parser swallows the tags */
        break;
    case SL__SIM_TOK_REASONING:
        if (r->parser)
            dk = D_REASONING;
        break;
    case SL__SIM_TOK_TEXT: {
        int rc = sl_buf_append(&c->tail, tok.s, tok.len);
        if (rc != SL_OK)
            return rc;
        from_tail = true;
        const char *tp = sl_buf_ptr(&c->tail);
        size_t tn = sl_buf_size(&c->tail);
        for (int k = 0; k < r->nstops && c->fin == FIN_NONE; k++) {
            const char *hit = memmem(tp, tn, r->stops[k], r->stop_len[k]);
            if (hit != NULL) {
                c->fin = FIN_STOP;
                c->stop_idx = k;
                text = tp;
                len = (size_t)(hit - tp);
                consume = tn;
                from_tail = false;
            }
        }
        break;
    }
    }
    if (c->fin == FIN_NONE && c->ntok >= r->max_tokens)
        c->fin = FIN_LENGTH;
    if (from_tail) {
        text = sl_buf_ptr(&c->tail);
        size_t tn = sl_buf_size(&c->tail);
        len = c->fin != FIN_NONE ? tn : tn - tail_bytes(text, tn, r->hold);
        consume = len;
    }
    bool finish = c->fin != FIN_NONE;
    int rc = SL_OK;
    if (r->stream) {
        if (dk != D_EMPTY || finish) {
            rc = put_chunk(r, i, dk, text, len, finish, r->cont_usage ? c->ntok : -1);
            *emitted = true;
        }
    } else if (dk == D_REASONING) {
        c->saw_reasoning = true;
        rc = sl_buf_append(&c->reasoning, text, len);
    } else if (dk == D_CONTENT) {
        rc = sl_buf_append(&c->content, text, len);
    }
    if (consume > 0)
        sl_buf_consume(&c->tail, consume);
    return rc;
}

static uint64_t next_gap(struct sl_sim_req *r)
{
    const struct sl_sim_config *cfg = &r->sim->cfg;
    double load = (double)r->sim->running / (double)cfg->max_num_seqs;
    double base = (double)cfg->itl_ms * (1.0 + (double)cfg->itl_load_pct / 100.0 * load);
    int64_t g = llround(base);
    if (cfg->jitter_ms > 0)
        g += (int64_t)(sl__sim_rng(&r->jrng) % (uint64_t)(2 * cfg->jitter_ms + 1)) - cfg->jitter_ms;
    return g < 0 ? 0 : (uint64_t)g;
}

/* Acts on a fault due before the next token. Returns true when it did. */
static bool fault_step(struct sl_sim_req *r, uint64_t due, int *rc)
{
    const struct sl__sim_fault *f = &r->fault;
    if (f->kind == SL__SIM_FAULT_NONE || r->fault_fired || r->deltas < f->n)
        return false;
    r->fault_fired = true;
    char msg[128];
    switch (f->kind) {
    case SL__SIM_FAULT_DROP_AFTER:
        finish_engine(r, R_ERROR, due);
        r->ended = true;
        r->end = SL_SIM_DROP;
        return true;
    case SL__SIM_FAULT_STALL_AFTER:
        if (f->ms < 0)
            r->stalled = true;
        else
            r->next_ms = due + (uint64_t)f->ms;
        return true;
    case SL__SIM_FAULT_INBAND_ERROR_AFTER:
        snprintf(msg, sizeof msg, "Simulated fault: inband_error_after %lld deltas.",
                 (long long)f->n);
        if (r->stream) {
            *rc = put_inband_error(r, f->status, msg);
        } else {
            r->status = f->status;
            sl_buf_reset(&r->pend);
            *rc = sl_sim_render_error(&r->pend, f->status, sl_error_type(f->status), msg, NULL);
        }
        finish_engine(r, R_ERROR, due);
        r->ended = true;
        r->end = SL_SIM_DONE;
        return true;
    case SL__SIM_FAULT_DONE_WITHOUT_FINISH:
        *rc = r->stream ? sl_buf_puts(&r->pend, "data: [DONE]\n\n") : put_body(r);
        finish_engine(r, R_ERROR, due);
        r->ended = true;
        r->end = SL_SIM_DONE;
        return true;
    default:
        return false;
    }
}

/* Makes the next engine step due at r->next_ms: one token per unfinished
 * choice (and the role chunks before the first), or a fault. */
static int step(struct sl_sim_req *r)
{
    uint64_t due = r->next_ms;
    int rc = SL_OK;
    if (fault_step(r, due, &rc))
        return rc;
    struct sl_sim *sim = r->sim;
    if (r->steps == 0) {
        hist_add(&sim->ttft, ttft_bounds, sizeof ttft_bounds / sizeof ttft_bounds[0],
                 (double)(due - r->arrival_ms) / 1000.0);
        /* vLLM sends the role chunks with the first output (first_iteration). */
        for (int i = 0; i < r->n && rc == SL_OK && r->stream && r->route == SL_SIM_CHAT; i++)
            rc = put_chunk(r, i, D_ROLE, "", 0, false, r->cont_usage ? 0 : -1);
    } else {
        hist_add(&sim->itl, itl_bounds, sizeof itl_bounds / sizeof itl_bounds[0],
                 (double)(due - r->last_ms) / 1000.0);
    }
    bool all_done = true, emitted0 = false;
    for (int i = 0; i < r->n && rc == SL_OK; i++) {
        if (r->ch[i].fin != FIN_NONE)
            continue;
        bool emitted = false;
        rc = choice_step(r, i, &emitted);
        if (i == 0)
            emitted0 = emitted || !r->stream;
        if (r->ch[i].fin == FIN_NONE)
            all_done = false;
    }
    if (rc != SL_OK)
        return rc;
    r->steps++;
    if (emitted0 || r->ch[0].fin != FIN_NONE)
        r->deltas++;
    r->last_ms = due;
    if (!all_done) {
        r->next_ms = due + next_gap(r);
        return SL_OK;
    }
    if (r->stream) {
        if (r->include_usage)
            rc = put_usage_chunk(r);
        if (rc == SL_OK)
            rc = sl_buf_puts(&r->pend, "data: [DONE]\n\n");
    } else {
        rc = put_body(r);
    }
    finish_engine(r, r->ch[0].fin == FIN_LENGTH ? R_LENGTH : R_STOP, due);
    r->ended = true;
    r->end = SL_SIM_DONE;
    return rc;
}

/* Moves what fits of pend into out. */
static int flush(struct sl_sim_req *r, struct sl_buf *out)
{
    size_t have = sl_buf_size(&r->pend);
    size_t room = out->max > sl_buf_size(out) ? out->max - sl_buf_size(out) : 0;
    size_t n = have < room ? have : room;
    if (n > 0) {
        int rc = sl_buf_append(out, sl_buf_ptr(&r->pend), n);
        if (rc != SL_OK)
            return rc;
        sl_buf_consume(&r->pend, n);
    }
    return n < have ? SL_ETOOBIG : SL_OK;
}

int sl_sim_poll(struct sl_sim_req *r, uint64_t now_ms, struct sl_buf *out, uint64_t *wake_ms)
{
    for (;;) {
        if (now_ms < r->gate_ms) {
            *wake_ms = r->gate_ms;
            return SL_SIM_WAIT;
        }
        if (sl_buf_size(&r->pend) > 0) {
            int rc = flush(r, out);
            if (rc != SL_OK) {
                *wake_ms = now_ms;
                return rc;
            }
        }
        if (r->ended || r->state == RS_ABORTED || r->state == RS_ERROR) {
            *wake_ms = UINT64_MAX;
            return r->ended ? r->end : SL_SIM_DONE;
        }
        if (r->state == RS_WAITING || r->stalled) {
            *wake_ms = UINT64_MAX;
            return SL_SIM_WAIT;
        }
        if (now_ms < r->next_ms) {
            *wake_ms = r->next_ms;
            return SL_SIM_WAIT;
        }
        int rc = step(r);
        if (rc != SL_OK) {
            /* Out of memory mid-step: the response cannot be completed. */
            if (r->state == RS_RUNNING)
                finish_engine(r, R_ERROR, now_ms);
            r->ended = true;
            r->end = SL_SIM_DROP;
            *wake_ms = UINT64_MAX;
            return rc;
        }
    }
}

void sl_sim_abort(struct sl_sim_req *r, uint64_t now_ms)
{
    struct sl_sim *sim = r->sim;
    if (r->state == RS_WAITING) {
        unlink_waiting(r);
        sim->success[R_ABORT]++;
    } else if (r->state == RS_RUNNING) {
        sim->success[R_ABORT]++;
        r->state = RS_ABORTED;
        release(sim, now_ms);
    } else {
        return;
    }
    r->state = RS_ABORTED;
    r->ended = true;
    r->end = SL_SIM_DONE;
    sl_buf_reset(&r->pend);
}

void sl_sim_req_free(struct sl_sim_req *r, uint64_t now_ms)
{
    if (r == NULL)
        return;
    sl_sim_abort(r, now_ms);
    if (r->ch != NULL) {
        for (int i = 0; i < r->n; i++) {
            sl_buf_free(&r->ch[i].tail);
            sl_buf_free(&r->ch[i].content);
            sl_buf_free(&r->ch[i].reasoning);
        }
        free(r->ch);
    }
    for (int i = 0; i < r->nstops; i++)
        free(r->stops[i]);
    sl_buf_free(&r->pend);
    sl_buf_free(&r->head);
    free(r);
}

/* --- /metrics and /v1/models --------------------------------------------- */

/* A float as Python's repr writes it (prometheus_client's floatToGoString):
 * "5.0", "0.45", "1e-05". */
static void fmt_float(char *out, size_t n, double v)
{
    if (isinf(v)) {
        snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e16) {
        snprintf(out, n, "%.1f", v);
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(out, n, "%.*g", p, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

static int put_label_value(struct sl_buf *b, const char *s)
{
    int rc = SL_OK;
    for (; *s && rc == SL_OK; s++) {
        if (*s == '\\')
            rc = sl_buf_puts(b, "\\\\");
        else if (*s == '"')
            rc = sl_buf_puts(b, "\\\"");
        else if (*s == '\n')
            rc = sl_buf_puts(b, "\\n");
        else
            rc = sl_buf_append(b, s, 1);
    }
    return rc;
}

/* name{engine="0",<extra>model_name="M"} value */
static int put_sample(struct sl_buf *b, const char *name, const char *extra, const char *model,
                      double v)
{
    char num[40];
    fmt_float(num, sizeof num, v);
    int rc = sl_buf_printf(b, "%s{engine=\"0\",%smodel_name=\"", name, extra);
    if (rc == SL_OK)
        rc = put_label_value(b, model);
    if (rc == SL_OK)
        rc = sl_buf_printf(b, "\"} %s\n", num);
    return rc;
}

static int put_family(struct sl_buf *b, const char *name, const char *help, const char *type)
{
    return sl_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int put_hist(struct sl_buf *b, const char *name, const char *help, const struct hist *h,
                    const double *bounds, size_t nb, const char *model)
{
    char key[128];
    int rc = put_family(b, name, help, "histogram");
    snprintf(key, sizeof key, "%s_sum", name);
    if (rc == SL_OK)
        rc = put_sample(b, key, "", model, h->sum);
    snprintf(key, sizeof key, "%s_bucket", name);
    uint64_t cum = 0;
    for (size_t i = 0; i <= nb && rc == SL_OK; i++) {
        char le[64], num[40];
        cum += h->bucket[i];
        if (i < nb)
            fmt_float(num, sizeof num, bounds[i]);
        else
            snprintf(num, sizeof num, "+Inf");
        snprintf(le, sizeof le, "le=\"%s\",", num);
        rc = put_sample(b, key, le, model, (double)cum);
    }
    snprintf(key, sizeof key, "%s_count", name);
    if (rc == SL_OK)
        rc = put_sample(b, key, "", model, (double)h->count);
    return rc;
}

int sl_sim_render_metrics(struct sl_sim *sim, struct sl_buf *out)
{
    struct sl_buf t;
    sl_buf_init(&t, SIZE_MAX / 2);
    const char *m = sim->model;
    int rc = put_family(&t, "vllm:num_requests_running",
                        "Number of requests in model execution batches.", "gauge");
    if (rc == SL_OK)
        rc = put_sample(&t, "vllm:num_requests_running", "", m, (double)sim->running);
    if (rc == SL_OK)
        rc = put_family(&t, "vllm:num_requests_waiting",
                        "Number of requests waiting to be processed.", "gauge");
    if (rc == SL_OK)
        rc = put_sample(&t, "vllm:num_requests_waiting", "", m, (double)sim->waiting);
    if (rc == SL_OK)
        rc = put_family(&t, "vllm:kv_cache_usage_perc",
                        "KV-cache usage. 1 means 100 percent usage.", "gauge");
    if (rc == SL_OK)
        rc = put_sample(&t, "vllm:kv_cache_usage_perc", "", m,
                        (double)sim->running / (double)sim->cfg.max_num_seqs);
    if (rc == SL_OK)
        rc = put_family(&t, "vllm:prompt_tokens_total", "Number of prefill tokens processed.",
                        "counter");
    if (rc == SL_OK)
        rc = put_sample(&t, "vllm:prompt_tokens_total", "", m, (double)sim->prompt_tokens);
    if (rc == SL_OK)
        rc = put_family(&t, "vllm:generation_tokens_total",
                        "Number of generation tokens processed.", "counter");
    if (rc == SL_OK)
        rc = put_sample(&t, "vllm:generation_tokens_total", "", m, (double)sim->gen_tokens);
    if (rc == SL_OK)
        rc = put_family(&t, "vllm:request_success_total",
                        "Count of successfully processed requests.", "counter");
    for (int i = 0; i < R_COUNT && rc == SL_OK; i++) {
        char extra[64];
        snprintf(extra, sizeof extra, "finished_reason=\"%s\",", reason_names[i]);
        rc = put_sample(&t, "vllm:request_success_total", extra, m, (double)sim->success[i]);
    }
    if (rc == SL_OK)
        rc = put_hist(&t, "vllm:time_to_first_token_seconds",
                      "Histogram of time to first token in seconds.", &sim->ttft, ttft_bounds,
                      sizeof ttft_bounds / sizeof ttft_bounds[0], m);
    if (rc == SL_OK)
        rc = put_hist(&t, "vllm:inter_token_latency_seconds",
                      "Histogram of inter-token latency in seconds.", &sim->itl, itl_bounds,
                      sizeof itl_bounds / sizeof itl_bounds[0], m);
    if (rc == SL_OK)
        rc = sl_buf_append(out, sl_buf_ptr(&t), sl_buf_size(&t));
    sl_buf_free(&t);
    return rc;
}

int sl_sim_render_models(struct sl_sim *sim, uint64_t unix_s, struct sl_buf *out)
{
    struct sl_buf t;
    sl_buf_init(&t, SIZE_MAX / 2);
    const char *m = sim->model;
    size_t ml = strlen(m);
    uint64_t st = fnv1a64(m, ml) ^ unix_s;
    char perm[33];
    uint64_t a = sl__sim_rng(&st), b = sl__sim_rng(&st);
    hex32(perm, a, b);
    int rc = sl_buf_puts(&t, "{\"object\":\"list\",\"data\":[{\"id\":");
    if (rc == SL_OK)
        rc = sl_buf_put_json_str(&t, m, ml);
    if (rc == SL_OK)
        rc = sl_buf_printf(&t,
                           ",\"object\":\"model\",\"created\":%llu,\"owned_by\":\"vllm\","
                           "\"root\":",
                           (unsigned long long)unix_s);
    if (rc == SL_OK)
        rc = sl_buf_put_json_str(&t, m, ml);
    if (rc == SL_OK)
        rc = sl_buf_printf(
            &t,
            ",\"parent\":null,\"max_model_len\":%lld,\"permission\":[{\"id\":\"modelperm-%s\","
            "\"object\":\"model_permission\",\"created\":%llu,\"allow_create_engine\":false,"
            "\"allow_sampling\":true,\"allow_logprobs\":true,\"allow_search_indices\":false,"
            "\"allow_view\":true,\"allow_fine_tuning\":false,\"organization\":\"*\","
            "\"group\":null,\"is_blocking\":false}]}]}",
            (long long)sim->cfg.max_model_len, perm, (unsigned long long)unix_s);
    if (rc == SL_OK)
        rc = sl_buf_append(out, sl_buf_ptr(&t), sl_buf_size(&t));
    sl_buf_free(&t);
    return rc;
}
