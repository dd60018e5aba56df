/* chunk.c - the chunk reader (see chunk.h): one left-to-right pass over one
 * SSE event's data, no allocation and no JSON tree. Owns: a recursive-descent
 * JSON validator bounded by SL_CHUNK_MAX_DEPTH, the member dispatch for
 * chunks, choices, deltas, usage and errors, and JSON string unescaping.
 * Does not own: SSE framing, or what the caller does with the spans. */
#include "pipeline/chunk.h"

#include <string.h>

/* The scanner's position. Every function below either advances p past what
 * it read and returns SL_OK, or returns SL_EJSON and leaves p anywhere. */
struct scan {
    const char *p;
    const char *end;
    int depth; /* open objects and arrays */
};

/* A value read by read_value: its type and raw bytes (containers are
 * validated and skipped, not descended into by the caller). */
enum jtype { J_STRING, J_NUMBER, J_OBJECT, J_ARRAY, J_TRUE, J_FALSE, J_NULL };

struct value {
    enum jtype type;
    struct sl_span raw;  /* the whole value as it appears in the input */
    struct sl_span body; /* J_STRING: the bytes between the quotes */
    bool integral;       /* J_NUMBER: no fraction and no exponent */
};

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        if ((expr) != SL_OK)                                                                       \
            return SL_EJSON;                                                                       \
    } while (0)

/* Keys are compared as raw bytes, escapes not resolved: vLLM and OpenAI never
 * escape their member names, and resolving them would cost every key a pass.
 * So "choi\u0063es" is an unknown member, skipped like any other. */
#define KEY_IS(key, lit) ((key).n == sizeof(lit) - 1 && memcmp((key).p, (lit), (key).n) == 0)

static const struct sl_span no_span = {NULL, 0};

static inline void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

/* The next byte, or -1 at the end. */
static inline int peek(const struct scan *s)
{
    return s->p < s->end ? (unsigned char)*s->p : -1;
}

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The value of four hex digits at p, or -1. */
static int32_t hex4(const char *p)
{
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(p[i]);
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* Bytes that stop a plain run inside a string: '"', '\\' and controls. */
static inline bool stops_run(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* The high bit of each byte of w that stops a run, by the classic "has a
 * byte less than n" and "has a zero byte" word tricks. Their false hits only
 * ever sit above a true one, so the lowest set bit is exact. */
static inline uint64_t stop_mask(uint64_t w)
{
    uint64_t quote = w ^ (ONES * '"');
    uint64_t bslash = w ^ (ONES * '\\');
    uint64_t ctl = (w - ONES * 0x20) & ~w;
    quote = (quote - ONES) & ~quote;
    bslash = (bslash - ONES) & ~bslash;
    return (ctl | quote | bslash) & HIGHS;
}

/* The first byte at or after p that stops a run, or end. The words may read
 * past the string (never past end): on little-endian machines a word's first
 * stop byte is its lowest set bit. */
static inline const char *run_end(const char *p, const char *end)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t m = stop_mask(w);
        if (m != 0)
            return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
#endif
    while (p < end && !stops_run((unsigned char)*p))
        p++;
    return p;
}

/* At '"': checks the string (escapes well formed, no raw control bytes) and
 * gives its body. Bytes from 0x80 up pass through unchecked: a broken UTF-8
 * sequence in a token is the upstream's to answer for, not a broken stream. */
static int scan_string(struct scan *s, struct sl_span *body)
{
    const char *p = s->p + 1, *end = s->end;
    const char *start = p;
    for (;;) {
        p = run_end(p, end);
        if (p >= end || *p != '\\') {
            if (p < end && *p == '"')
                break;
            return SL_EJSON; /* unterminated, or a raw control byte */
        }
        if (end - p < 2)
            return SL_EJSON;
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p += 2;
            break;
        case 'u':
            if (end - p < 6 || hex4(p + 2) < 0)
                return SL_EJSON;
            p += 6;
            break;
        default:
            return SL_EJSON;
        }
    }
    body->p = start;
    body->n = (size_t)(p - start);
    s->p = p + 1;
    return SL_OK;
}

/* A number by the JSON grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
 * What follows it is checked by the caller (a delimiter or the end). */
static int scan_number(struct scan *s, struct sl_span *raw, bool *integral)
{
    const char *p = s->p, *end = s->end;
    bool whole = true;
    if (p < end && *p == '-')
        p++;
    if (p >= end || !is_digit(*p))
        return SL_EJSON;
    if (*p++ != '0') {
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p))
            return SL_EJSON;
        while (p < end && is_digit(*p))
            p++;
        whole = false;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !is_digit(*p))
            return SL_EJSON;
        while (p < end && is_digit(*p))
            p++;
        whole = false;
    }
    raw->p = s->p;
    raw->n = (size_t)(p - s->p);
    *integral = whole;
    s->p = p;
    return SL_OK;
}

/* An integral number's value, when it fits int64_t. */
static bool to_int64(struct sl_span raw, int64_t *v)
{
    const char *p = raw.p, *end = raw.p + raw.n;
    bool neg = p < end && *p == '-';
    if (neg)
        p++;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t acc = 0;
    bool short_enough = end - p <= 18; /* below 10^18: no overflow to check */
    for (; p < end; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (!short_enough && acc > (limit - d) / 10)
            return false;
        acc = acc * 10 + d;
    }
    if (!neg)
        *v = (int64_t)acc;
    else
        *v = acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc;
    return true;
}

/* A value that is an integral number fitting int64_t. */
static bool int_value(const struct value *v, int64_t *out)
{
    return v->type == J_NUMBER && v->integral && to_int64(v->raw, out);
}

static int scan_literal(struct scan *s, const char *lit, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return SL_EJSON;
    s->p += n;
    return SL_OK;
}

/* Container walking. enter consumes the opening bracket and tells whether a
 * member or element follows; next consumes the ',' (more) or the closing
 * bracket (done). A ',' must be followed by a member or element, so a
 * trailing comma fails in obj_key or in the element's read_value. */
static int enter(struct scan *s, char close, bool *more)
{
    if (++s->depth > SL_CHUNK_MAX_DEPTH)
        return SL_EJSON;
    s->p++;
    skip_ws(s);
    *more = peek(s) != close;
    if (!*more) {
        s->p++;
        s->depth--;
    }
    return SL_OK;
}

static int next(struct scan *s, char close, bool *more)
{
    skip_ws(s);
    int c = peek(s);
    if (c == ',') {
        s->p++;
        skip_ws(s);
        *more = true;
        return SL_OK;
    }
    if (c != close)
        return SL_EJSON;
    s->p++;
    s->depth--;
    *more = false;
    return SL_OK;
}

/* A member's key and the ':' after it; leaves p at the value. */
static int obj_key(struct scan *s, struct sl_span *key)
{
    if (peek(s) != '"')
        return SL_EJSON;
    TRY(scan_string(s, key));
    skip_ws(s);
    if (peek(s) != ':')
        return SL_EJSON;
    s->p++;
    skip_ws(s);
    return SL_OK;
}

static int read_value(struct scan *s, struct value *v);

static int skip_object(struct scan *s)
{
    bool more;
    TRY(enter(s, '}', &more));
    while (more) {
        struct sl_span key;
        struct value v;
        TRY(obj_key(s, &key));
        TRY(read_value(s, &v));
        TRY(next(s, '}', &more));
    }
    return SL_OK;
}

static int skip_array(struct scan *s)
{
    bool more;
    TRY(enter(s, ']', &more));
    while (more) {
        struct value v;
        TRY(read_value(s, &v));
        TRY(next(s, ']', &more));
    }
    return SL_OK;
}

/* Reads one value at p (no leading whitespace), validating containers whole. */
static int read_value(struct scan *s, struct value *v)
{
    const char *start = s->p;
    v->body = no_span;
    switch (peek(s)) {
    case '"':
        v->type = J_STRING;
        TRY(scan_string(s, &v->body));
        break;
    case '{':
        v->type = J_OBJECT;
        TRY(skip_object(s));
        break;
    case '[':
        v->type = J_ARRAY;
        TRY(skip_array(s));
        break;
    case 't':
        v->type = J_TRUE;
        TRY(scan_literal(s, "true", 4));
        break;
    case 'f':
        v->type = J_FALSE;
        TRY(scan_literal(s, "false", 5));
        break;
    case 'n':
        v->type = J_NULL;
        TRY(scan_literal(s, "null", 4));
        break;
    default:
        v->type = J_NUMBER;
        TRY(scan_number(s, &v->raw, &v->integral));
        break;
    }
    v->raw.p = start;
    v->raw.n = (size_t)(s->p - start);
    return SL_OK;
}

/* choices[].delta: role, content, reasoning (one text under either name),
 * tool_calls. A later duplicate member overrides an earlier one. */
static int read_delta(struct scan *s, struct sl_chunk_choice *ch)
{
    struct sl_span reasoning = no_span, reasoning_content = no_span;
    bool has_reasoning = false, has_reasoning_content = false;
    bool more;
    ch->has_role = ch->has_content = ch->has_tool_calls = false;
    TRY(enter(s, '}', &more));
    while (more) {
        struct sl_span key;
        struct value v;
        TRY(obj_key(s, &key));
        TRY(read_value(s, &v));
        if (KEY_IS(key, "content")) {
            ch->has_content = v.type == J_STRING;
            ch->content = ch->has_content ? v.body : no_span;
        } else if (KEY_IS(key, "reasoning")) {
            has_reasoning = v.type == J_STRING;
            reasoning = v.body;
        } else if (KEY_IS(key, "reasoning_content")) {
            has_reasoning_content = v.type == J_STRING;
            reasoning_content = v.body;
        } else if (KEY_IS(key, "role")) {
            ch->has_role = v.type == J_STRING;
            ch->role = ch->has_role ? v.body : no_span;
        } else if (KEY_IS(key, "tool_calls")) {
            ch->has_tool_calls = v.type == J_ARRAY;
            ch->tool_calls = ch->has_tool_calls ? v.raw : no_span;
        }
        TRY(next(s, '}', &more));
    }
    /* vLLM sent both names for one text while renaming reasoning_content to
     * reasoning: take it once, the new name first. */
    ch->has_reasoning = has_reasoning || has_reasoning_content;
    ch->reasoning = has_reasoning ? reasoning : has_reasoning_content ? reasoning_content : no_span;
    return SL_OK;
}

static int read_choice(struct scan *s, struct sl_chunk_choice *ch)
{
    bool more;
    TRY(enter(s, '}', &more));
    while (more) {
        struct sl_span key;
        struct value v;
        int64_t n;
        TRY(obj_key(s, &key));
        if (KEY_IS(key, "delta") && peek(s) == '{') {
            TRY(read_delta(s, ch));
            TRY(next(s, '}', &more));
            continue;
        }
        TRY(read_value(s, &v));
        if (KEY_IS(key, "index")) {
            if (int_value(&v, &n) && n >= 0 && n <= UINT32_MAX)
                ch->index = (uint32_t)n;
        } else if (KEY_IS(key, "finish_reason")) {
            ch->has_finish = v.type == J_STRING;
            ch->finish_reason = ch->has_finish ? v.body : no_span;
        } else if (KEY_IS(key, "stop_reason")) {
            ch->stop_reason = v.raw;
        } else if (KEY_IS(key, "text")) {
            ch->has_text = v.type == J_STRING;
            ch->text = ch->has_text ? v.body : no_span;
        }
        TRY(next(s, '}', &more));
    }
    return SL_OK;
}

/* The choices array: each object element is a choice, its index defaulting
 * to its position; other elements are validated and skipped. */
static int read_choices(struct scan *s, struct sl_chunk *out)
{
    bool more;
    uint32_t pos = 0;
    out->nchoices = 0; /* a duplicate "choices" member replaces the first */
    TRY(enter(s, ']', &more));
    while (more) {
        if (peek(s) == '{') {
            if (out->nchoices == SL_CHUNK_MAX_CHOICES)
                return SL_EJSON;
            struct sl_chunk_choice *ch = &out->choices[out->nchoices++];
            memset(ch, 0, sizeof *ch);
            ch->index = pos;
            TRY(read_choice(s, ch));
        } else {
            struct value v;
            TRY(read_value(s, &v));
        }
        pos++;
        TRY(next(s, ']', &more));
    }
    return SL_OK;
}

static int read_usage(struct scan *s, struct sl_chunk *out)
{
    bool more;
    out->has_usage = true;
    out->prompt_tokens = out->completion_tokens = out->total_tokens = 0;
    TRY(enter(s, '}', &more));
    while (more) {
        struct sl_span key;
        struct value v;
        int64_t n;
        TRY(obj_key(s, &key));
        TRY(read_value(s, &v));
        if (!int_value(&v, &n))
            n = 0;
        if (KEY_IS(key, "prompt_tokens"))
            out->prompt_tokens = n;
        else if (KEY_IS(key, "completion_tokens"))
            out->completion_tokens = n;
        else if (KEY_IS(key, "total_tokens"))
            out->total_tokens = n;
        TRY(next(s, '}', &more));
    }
    return SL_OK;
}

/* The fields of an error object: message and type (string bodies), code
 * (an integer; OpenAI's string or null codes give 0). vLLM's old shape has
 * them at the top level, so read_top passes those through here too. */
struct err_fields {
    struct sl_span message, type;
    int64_t code;
};

static void err_member(struct err_fields *e, struct sl_span key, const struct value *v)
{
    if (KEY_IS(key, "message")) {
        e->message = v->type == J_STRING ? v->body : no_span;
    } else if (KEY_IS(key, "type")) {
        e->type = v->type == J_STRING ? v->body : no_span;
    } else if (KEY_IS(key, "code")) {
        if (!int_value(v, &e->code))
            e->code = 0;
    }
}

static int read_error(struct scan *s, struct err_fields *e)
{
    bool more;
    TRY(enter(s, '}', &more));
    while (more) {
        struct sl_span key;
        struct value v;
        TRY(obj_key(s, &key));
        TRY(read_value(s, &v));
        err_member(e, key, &v);
        TRY(next(s, '}', &more));
    }
    return SL_OK;
}

static void set_error(struct sl_chunk *out, struct sl_span raw, const struct err_fields *e)
{
    out->kind = SL_CHUNK_ERROR;
    out->error = raw;
    out->error_message = e->message;
    out->error_type = e->type;
    out->error_code = e->code;
}

/* The top-level object: every member the gateway uses, then the kind. */
static int read_top(struct scan *s, struct sl_chunk *out)
{
    const char *start = s->p;
    struct err_fields inner = {no_span, no_span, 0}, outer = {no_span, no_span, 0};
    struct sl_span error = no_span;
    bool has_error = false, has_choices = false;
    bool more;
    TRY(enter(s, '}', &more));
    while (more) {
        struct sl_span key;
        struct value v;
        int64_t n;
        TRY(obj_key(s, &key));
        int c = peek(s);
        if (KEY_IS(key, "choices") && c == '[') {
            TRY(read_choices(s, out));
            has_choices = true;
        } else if (KEY_IS(key, "usage") && c == '{') {
            TRY(read_usage(s, out));
        } else if (KEY_IS(key, "error") && c == '{') {
            const char *vstart = s->p;
            inner = (struct err_fields){no_span, no_span, 0};
            TRY(read_error(s, &inner));
            error = (struct sl_span){vstart, (size_t)(s->p - vstart)};
            has_error = true;
        } else {
            TRY(read_value(s, &v));
            if (KEY_IS(key, "id")) {
                out->id = v.type == J_STRING ? v.body : no_span;
            } else if (KEY_IS(key, "object")) {
                out->object = v.type == J_STRING ? v.body : no_span;
            } else if (KEY_IS(key, "model")) {
                out->model = v.type == J_STRING ? v.body : no_span;
            } else if (KEY_IS(key, "created")) {
                out->created = int_value(&v, &n) ? n : -1;
            } else if (KEY_IS(key, "choices")) {
                has_choices = false;
                out->nchoices = 0;
            } else if (KEY_IS(key, "usage")) {
                out->has_usage = false;
            } else if (KEY_IS(key, "error")) {
                /* The openai SDK raises on a truthy error; null and false
                 * are what upstreams send for "no error". A string is taken
                 * as the message. */
                has_error = v.type != J_NULL && v.type != J_FALSE;
                inner = (struct err_fields){v.type == J_STRING ? v.body : no_span, no_span, 0};
                error = v.raw;
            } else {
                err_member(&outer, key, &v);
            }
        }
        TRY(next(s, '}', &more));
    }
    if (has_error)
        set_error(out, error, &inner);
    else if (out->object.n == 5 && memcmp(out->object.p, "error", 5) == 0)
        set_error(out, (struct sl_span){start, (size_t)(s->p - start)}, &outer);
    else
        out->kind = has_choices ? SL_CHUNK_DATA : SL_CHUNK_OTHER;
    return SL_OK;
}

/* data is "[DONE]", whitespace around it allowed. */
static bool is_done(const char *p, size_t n)
{
    while (n > 0 && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
        n--;
    }
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n'))
        n--;
    return n == 6 && memcmp(p, "[DONE]", 6) == 0;
}

/* Everything but the choices array, which is filled only as far as used. */
static void reset(struct sl_chunk *out, enum sl_chunk_kind kind)
{
    out->kind = kind;
    out->id = out->object = out->model = no_span;
    out->created = -1;
    out->nchoices = 0;
    out->has_usage = false;
    out->prompt_tokens = out->completion_tokens = out->total_tokens = 0;
    out->error = out->error_message = out->error_type = no_span;
    out->error_code = 0;
}

int sl_chunk_read(const char *data, size_t len, struct sl_chunk *out)
{
    reset(out, SL_CHUNK_INVALID);
    if (len == 0)
        return SL_EJSON;
    if (is_done(data, len)) {
        out->kind = SL_CHUNK_DONE;
        return SL_OK;
    }

    struct scan s = {data, data + len, 0};
    skip_ws(&s);
    int rc;
    if (peek(&s) == '{') {
        rc = read_top(&s, out);
    } else {
        struct value v;
        rc = read_value(&s, &v);
        out->kind = SL_CHUNK_OTHER;
    }
    skip_ws(&s);
    if (rc != SL_OK || s.p != s.end) {
        reset(out, SL_CHUNK_INVALID); /* no half-read members */
        return SL_EJSON;
    }
    return SL_OK;
}

/* Appends code point cp (at most U+10FFFF, no surrogates) as UTF-8. */
static int put_utf8(struct sl_buf *out, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18);
        u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return sl_buf_append(out, u, n);
}

/* Resolves the escape at p (p[0] == '\\'), appends its UTF-8 and advances
 * *pp past it. */
static int unescape_one(const char **pp, const char *end, struct sl_buf *out)
{
    const char *p = *pp;
    char c;
    if (end - p < 2)
        return SL_EJSON;
    switch (p[1]) {
    case '"':
    case '\\':
    case '/':
        c = p[1];
        break;
    case 'b':
        c = '\b';
        break;
    case 'f':
        c = '\f';
        break;
    case 'n':
        c = '\n';
        break;
    case 'r':
        c = '\r';
        break;
    case 't':
        c = '\t';
        break;
    case 'u': {
        int32_t u = end - p >= 6 ? hex4(p + 2) : -1;
        if (u < 0)
            return SL_EJSON;
        p += 6;
        uint32_t cp = (uint32_t)u;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            int32_t lo = end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2) : -1;
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                p += 6;
            } else {
                cp = 0xFFFD; /* what follows is read on its own */
            }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            cp = 0xFFFD;
        }
        *pp = p;
        return put_utf8(out, cp);
    }
    default:
        return SL_EJSON;
    }
    *pp = p + 2;
    return sl_buf_append(out, &c, 1);
}

int sl_json_unescape(const char *p, size_t n, struct sl_buf *out)
{
    if (n == 0)
        return SL_OK;
    size_t keep = sl_buf_size(out);
    const char *end = p + n;
    int rc = SL_OK;
    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        const char *run_end = bs ? bs : end;
        rc = sl_buf_append(out, p, (size_t)(run_end - p));
        if (rc != SL_OK || bs == NULL)
            break;
        p = bs;
        rc = unescape_one(&p, end, out);
        if (rc != SL_OK)
            break;
    }
    if (rc != SL_OK) /* leave out as it was: a growth only compacts, never reorders */
        out->len = out->off + keep;
    return rc;
}
