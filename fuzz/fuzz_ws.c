/* fuzz_ws.c - libFuzzer harness of the WebSocket message codec (face/ws):
 * client messages (sl_ws_parse_msg) checked against jansson's reading of
 * the same bytes, the error message text (sl_ws_put_message) decoding as
 * a JSON string, and, for inputs whose first byte is 'W', the input as a
 * client's wire bytes through a wslay server context set up as ws.c does.
 * Owns: those invariants. Does not own: the codec, wslay, the socket side
 * of ws.c (tested over real sockets). Aborts on a broken invariant. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "face/ws.h"

static void check(bool ok, const char *what, int line)
{
    if (!ok) {
        fprintf(stderr, "fuzz_ws: invariant broken at line %d: %s\n", line, what);
        abort();
    }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

/* What sl_ws_put_message keeps of a message, escaped at most 6 bytes a
 * byte, and its quotes. */
#define MESSAGE_MAX 2048
#define PUT_MAX     (6 * MESSAGE_MAX + 2)
#define JFLAGS      (JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL)

/* Well-formed UTF-8 (RFC 3629): no overlong forms, surrogates or code
 * points past U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            lo = c == 0xE0 ? 0xA0 : 0x80;
            hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF;
        } else {
            return false;
        }
        if (i + len > n || s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
        i += len;
    }
    return true;
}

static bool inside(const char *sp, size_t sn, const char *p, size_t n)
{
    return sp >= p && (size_t)(sp - p) <= n && sn <= n - (size_t)(sp - p);
}

/* The span sp holds one JSON value equal to want. */
static void check_span_equals(const char *sp, size_t sn, json_t *want)
{
    json_error_t jerr;
    json_t *got = json_loadb(sp, sn, JFLAGS | JSON_DECODE_ANY, &jerr);
    CHECK(got != NULL);
    CHECK(json_equal(got, want));
    json_decref(got);
}

/* sl_ws_put_message(s): a JSON string that decodes, when s is UTF-8, to s
 * cut at MESSAGE_MAX bytes on a character boundary. Returns nothing: for
 * other bytes it must only not crash or pass its bound. */
static void check_put_message(const char *s)
{
    struct sl_buf b;
    sl_buf_init(&b, PUT_MAX);
    CHECK(sl_ws_put_message(&b, s) == SL_OK);
    CHECK(sl_buf_size(&b) >= 2 && sl_buf_size(&b) <= PUT_MAX);
    size_t n = strlen(s);
    if (utf8_valid((const unsigned char *)s, n)) {
        json_error_t jerr;
        json_t *j = json_loadb(sl_buf_ptr(&b), sl_buf_size(&b), JSON_DECODE_ANY, &jerr);
        CHECK(json_is_string(j));
        size_t got = json_string_length(j);
        const char *d = json_string_value(j);
        if (n <= MESSAGE_MAX) {
            CHECK(got == n && memcmp(d, s, n) == 0);
        } else {
            /* Cut at the bound; the bytes of a character that would pass
             * it are each a '?'. */
            CHECK(got == MESSAGE_MAX);
            size_t k = 0;
            while (k < got && d[k] == s[k])
                k++;
            CHECK(got - k < 4);
            for (; k < got; k++)
                CHECK(d[k] == '?');
        }
        json_decref(j);
    }
    sl_buf_free(&b);
}

static bool id_chars(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* What a follow or cancel message should give, read with jansson. */
static int expect_id(json_t *root, const struct sl_ws_msg *m)
{
    json_t *id = json_object_get(root, "id");
    if (!json_is_string(id))
        return SL_EINVAL;
    size_t n = json_string_length(id);
    if (n != SL_STREAM_ID_CHARS || !id_chars(json_string_value(id), n))
        return SL_ENOTFOUND;
    CHECK(strcmp(m->id, json_string_value(id)) == 0);
    return SL_OK;
}

static int expect_follow(json_t *root, const struct sl_ws_msg *m, int rc)
{
    json_t *after = json_object_get(root, "after");
    if (after) {
        if (!json_is_number(after))
            return SL_EINVAL;
        double v = json_number_value(after);
        if (!(v >= 0 && v <= 9007199254740992.0) || v != (double)(uint64_t)v)
            return SL_EINVAL;
        if (rc == SL_OK)
            CHECK(m->after == (uint64_t)v);
    } else if (rc == SL_OK) {
        CHECK(m->after == 0);
    }
    json_t *token = json_object_get(root, "token");
    if (token && !json_is_string(token))
        return SL_EINVAL;
    if (rc == SL_OK) {
        CHECK(m->has_token == (token != NULL));
        if (token && json_string_length(token) == SL_STREAM_ID_CHARS)
            CHECK(memcmp(m->token, json_string_value(token), SL_STREAM_ID_CHARS) == 0);
        else
            CHECK(m->token[0] == '\0');
    }
    return SL_OK;
}

/* One client message: the codec's answer agrees with jansson's reading. */
static void check_msg(const char *p, size_t n)
{
    struct sl_ws_msg m;
    char err[256];
    memset(err, 0x55, sizeof err);
    int rc = sl_ws_parse_msg(p, n, &m, err, sizeof err);
    CHECK(rc == SL_OK || rc == SL_ENOTFOUND || rc == SL_EJSON || rc == SL_EINVAL);
    if (rc != SL_OK) {
        CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
        /* The text the client gets is UTF-8 JSON when the message was
         * UTF-8 (wslay lets no other text message through). */
        if (utf8_valid((const unsigned char *)p, n)) {
            struct sl_buf b;
            sl_buf_init(&b, PUT_MAX);
            CHECK(sl_ws_put_message(&b, err) == SL_OK);
            json_error_t jerr;
            json_t *j = json_loadb(sl_buf_ptr(&b), sl_buf_size(&b), JSON_DECODE_ANY, &jerr);
            CHECK(json_is_string(j));
            json_decref(j);
            sl_buf_free(&b);
        }
        check_put_message(err);
        /* A small err buffer: the same answer, the text cut. */
        struct sl_ws_msg m2;
        char small[8];
        CHECK(sl_ws_parse_msg(p, n, &m2, small, sizeof small) == rc);
        CHECK(memchr(small, '\0', sizeof small) != NULL);
    }
    if (m.ref) {
        CHECK(inside(m.ref, m.ref_len, p, n));
        CHECK(m.ref_len > 0 && m.ref_len <= SL_WS_REF_MAX);
    }

    json_error_t jerr;
    json_t *root = json_loadb(p, n, JFLAGS, &jerr);
    if (root == NULL || !json_is_object(root)) {
        CHECK(rc == SL_EJSON);
        CHECK(m.ref == NULL);
        json_decref(root);
        return;
    }
    CHECK(rc != SL_EJSON);
    json_t *ref = json_object_get(root, "ref");
    if (m.ref) {
        CHECK(ref != NULL);
        check_span_equals(m.ref, m.ref_len, ref);
    } else if (ref) {
        /* Refused: too long or named with escapes. */
        CHECK(rc == SL_EINVAL);
        json_decref(root);
        return;
    }
    json_t *jtype = json_object_get(root, "type");
    const char *type = json_string_value(jtype);
    int want;
    if (type == NULL || strlen(type) != json_string_length(jtype)) {
        want = SL_EINVAL;
    } else if (strcmp(type, "create") == 0) {
        json_t *body = json_object_get(root, "body");
        want = json_is_object(body) ? SL_OK : SL_EINVAL;
        if (want == SL_OK && rc == SL_EINVAL) /* "body" only named with escapes */
            want = memchr(p, '\\', n) ? SL_EINVAL : SL_OK;
        if (rc == SL_OK) {
            CHECK(m.type == SL_WS_MSG_CREATE);
            CHECK(inside(m.body, m.body_len, p, n));
            CHECK(m.body_len >= 2 && m.body[0] == '{' && m.body[m.body_len - 1] == '}');
            check_span_equals(m.body, m.body_len, body);
        }
    } else if (strcmp(type, "follow") == 0) {
        want = expect_id(root, &m);
        if (want == SL_OK)
            want = expect_follow(root, &m, rc);
        if (rc == SL_OK)
            CHECK(m.type == SL_WS_MSG_FOLLOW);
    } else if (strcmp(type, "cancel") == 0) {
        want = expect_id(root, &m);
        if (rc == SL_OK)
            CHECK(m.type == SL_WS_MSG_CANCEL);
    } else {
        want = SL_EINVAL;
    }
    if (rc != want) {
        fprintf(stderr, "fuzz_ws: parse gave %d, jansson's reading %d\n", rc, want);
        abort();
    }
    json_decref(root);
}

/* ---- the wire: wslay as ws.c sets it up -------------------------------------------- */

struct wire {
    const uint8_t *in;
    size_t in_n;
    size_t sent;
    unsigned msgs;
};

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *ud)
{
    (void)flags;
    struct wire *w = ud;
    if (w->in_n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < w->in_n ? len : w->in_n;
    memcpy(buf, w->in, n);
    w->in += n;
    w->in_n -= n;
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *ud)
{
    (void)ctx;
    (void)data;
    (void)flags;
    struct wire *w = ud;
    w->sent += len;
    return (ssize_t)len;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *ud)
{
    (void)ctx;
    struct wire *w = ud;
    w->msgs++;
    if (arg->opcode == WSLAY_TEXT_FRAME) {
        const char *p = arg->msg ? (const char *)arg->msg : "";
        /* What ws.c's put_message relies on. */
        CHECK(utf8_valid((const unsigned char *)p, arg->msg_length));
        check_msg(p, arg->msg_length);
    }
}

static void check_wire(const uint8_t *data, size_t size)
{
    static const struct wslay_event_callbacks cbs = {
        recv_cb, send_cb, NULL, NULL, NULL, NULL, on_msg,
    };
    struct wire w = {data, size, 0, 0};
    wslay_event_context_ptr ctx;
    CHECK(wslay_event_context_server_init(&ctx, &cbs, &w) == 0);
    wslay_event_config_set_max_recv_msg_length(ctx, 1 << 16);
    int rc = wslay_event_recv(ctx);
    CHECK(rc == 0 || rc == WSLAY_ERR_PROTO || rc == WSLAY_ERR_CALLBACK_FAILURE);
    (void)wslay_event_send(ctx); /* pongs, close frames */
    wslay_event_context_free(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 0 && data[0] == 'W') {
        check_wire(data + 1, size - 1);
        return 0;
    }
    check_msg((const char *)data, size);
    /* The input as an error message text (up to its first NUL). */
    char *s = malloc(size + 1);
    CHECK(s != NULL);
    memcpy(s, data, size);
    s[size] = '\0';
    check_put_message(s);
    free(s);
    return 0;
}
