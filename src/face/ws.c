/* ws.c - the WebSocket face (see ws.h). wslay does the framing, masking,
 * UTF-8 checks, ping answers and the close handshake; this file feeds it the
 * bytes the HTTP server hands over and sends what it frames. Owns: the
 * handshake, client messages, created/event/error messages, the streams one
 * socket creates and follows, and the keep-alive ping. Does not own: the
 * log, the store and its grace (a socket that leaves does not cancel). */
#include "face/ws.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#include "face/follow.h"
#include "pipeline/splice.h"
#include "stream/headers.h"

/* Streams one socket is creating or following at once. Each costs an
 * upstream request or a follower, and their bytes share one write bound. */
#define SL_WS_MAX_STREAMS 16
/* A socket silent this long gets a ping; silent three times as long, it is
 * closed: a peer gone without a FIN would otherwise hold it for ever (the
 * HTTP timeouts end at the upgrade). */
#define SL_WS_PING_MS 30000
#define SL_WS_IDLE_MS (3 * SL_WS_PING_MS)
/* A created or error message: the error text is cut at SL_WS_MESSAGE_MAX
 * bytes, so escaped (at most 6 bytes a byte) it fits with its members. */
#define SL_WS_MESSAGE_MAX 2048
#define SL_WS_CTRL_BYTES  (6 * SL_WS_MESSAGE_MAX + SL_WS_REF_MAX + 512)
/* The frame buffer keeps its allocation between sends up to this size. */
#define SL_WS_KEEP_BYTES (64 * 1024)

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* ---- the handshake key ------------------------------------------------------- */

static bool b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

int sl_ws_accept_key(const char *key, size_t len, char out[SL_WS_ACCEPT_CHARS + 1])
{
    /* 16 bytes are 22 base64 characters and "==". */
    if (len != 24 || key[22] != '=' || key[23] != '=')
        return SL_EINVAL;
    for (size_t i = 0; i < 22; i++)
        if (!b64_char(key[i]))
            return SL_EINVAL;
    unsigned char in[24 + sizeof ws_guid - 1];
    memcpy(in, key, 24);
    memcpy(in + 24, ws_guid, sizeof ws_guid - 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(in, sizeof in, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
        return SL_ENOMEM;
    /* 20 bytes are 28 characters; EVP_EncodeBlock adds the NUL. */
    EVP_EncodeBlock((unsigned char *)out, md, 20);
    return SL_OK;
}

/* ---- client messages ------------------------------------------------------------ */

/* The bytes of top-level member key's value in the JSON object p (valid
 * JSON), as the client wrote them: no float or big integer is rewritten.
 * The key must be written without escapes. */
static bool member_span(const char *p, size_t n, const char *key, const char **v, size_t *vn)
{
    size_t off, len;
    if (sl_json_find_member(p, n, key, &off, &len) != SL_OK)
        return false;
    *v = p + off;
    *vn = len;
    return true;
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

static int parse_id(json_t *root, const char *type, struct sl_ws_msg *out, char *err, size_t errlen)
{
    json_t *id = json_object_get(root, "id");
    if (!json_is_string(id)) {
        snprintf(err, errlen, "a %s message needs an \"id\" string", type);
        return SL_EINVAL;
    }
    size_t n = json_string_length(id);
    const char *s = json_string_value(id);
    if (n != SL_STREAM_ID_CHARS || !id_chars(s, n)) {
        snprintf(err, errlen, "no such stream");
        return SL_ENOTFOUND;
    }
    memcpy(out->id, s, n + 1);
    return SL_OK;
}

static int parse_follow(json_t *root, struct sl_ws_msg *out, char *err, size_t errlen)
{
    json_t *after = json_object_get(root, "after");
    if (after) {
        /* Numbers are read as reals: exact up to 2^53, far past any log. */
        double v = json_number_value(after);
        if (!json_is_number(after) || !(v >= 0 && v <= 9007199254740992.0) ||
            v != (double)(uint64_t)v) {
            snprintf(err, errlen, "\"after\" must be an event number (an integer from 0)");
            return SL_EINVAL;
        }
        out->after = (uint64_t)v;
    }
    json_t *token = json_object_get(root, "token");
    if (token) {
        if (!json_is_string(token)) {
            snprintf(err, errlen, "\"token\" must be the stream's read_token string");
            return SL_EINVAL;
        }
        out->has_token = true;
        /* A token of another length never matches: leave it empty. */
        if (json_string_length(token) == SL_STREAM_ID_CHARS)
            memcpy(out->token, json_string_value(token), SL_STREAM_ID_CHARS + 1);
    }
    return SL_OK;
}

int sl_ws_parse_msg(const char *p, size_t len, struct sl_ws_msg *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    /* As the HTTP faces read bodies: integers past int64 (a seed) and
     * \u0000 are fine JSON, so numbers are reals. */
    json_t *root = json_loadb(
        p, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        snprintf(err, errlen, "the message is not valid JSON: %s (at byte %d)", jerr.text,
                 jerr.position);
        return SL_EJSON;
    }
    int rc = SL_OK;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "the message must be a JSON object");
        rc = SL_EJSON;
        goto out;
    }
    if (json_object_get(root, "ref")) {
        const char *v;
        size_t vn;
        if (!member_span(p, len, "ref", &v, &vn) || vn > SL_WS_REF_MAX) {
            snprintf(err, errlen, "\"ref\" must be at most %d bytes of JSON, named without escapes",
                     SL_WS_REF_MAX);
            rc = SL_EINVAL;
            goto out;
        }
        out->ref = v;
        out->ref_len = vn;
    }
    json_t *jtype = json_object_get(root, "type");
    const char *type = json_string_value(jtype);
    if (type && strlen(type) != json_string_length(jtype))
        type = "\\u0000"; /* a NUL inside: no type of ours */
    if (type == NULL) {
        snprintf(err, errlen, "the message has no \"type\" string (create, follow or cancel)");
        rc = SL_EINVAL;
    } else if (strcmp(type, "create") == 0) {
        out->type = SL_WS_MSG_CREATE;
        if (!json_is_object(json_object_get(root, "body"))) {
            snprintf(err, errlen, "a create message needs a \"body\" object (a chat request)");
            rc = SL_EINVAL;
        } else if (!member_span(p, len, "body", &out->body, &out->body_len)) {
            snprintf(err, errlen, "write the member name \"body\" without escapes");
            rc = SL_EINVAL;
        }
    } else if (strcmp(type, "follow") == 0) {
        out->type = SL_WS_MSG_FOLLOW;
        rc = parse_id(root, type, out, err, errlen);
        if (rc == SL_OK)
            rc = parse_follow(root, out, err, errlen);
    } else if (strcmp(type, "cancel") == 0) {
        out->type = SL_WS_MSG_CANCEL;
        rc = parse_id(root, type, out, err, errlen);
    } else {
        snprintf(err, errlen, "unknown message type \"%.64s\" (create, follow or cancel)", type);
        rc = SL_EINVAL;
    }
out:
    json_decref(root);
    return rc;
}

/* ---- one socket ------------------------------------------------------------------ */

struct ws_conn;

/* A stream this socket follows. */
struct ws_follow {
    struct ws_conn *ws;
    struct ws_follow *prev, *next;
    struct sl_follower *f; /* NULL once the follower is over */
    char id[SL_STREAM_ID_CHARS + 1];
    struct sl_render_ctx ctx;
    struct sl_buf data, metrics; /* one event's compact JSON, reused */
    bool drain_pending;
};

/* A create message waiting for the upstream's first answer. */
struct ws_create {
    struct sl_openai *oa;
    struct ws_conn *ws; /* NULL once the socket is gone: the stream goes on */
    struct ws_create *prev, *next;
    struct sl_stream *s;
    struct sl_face_start info;
    char ref[SL_WS_REF_MAX];
    size_t ref_len;
};

/* A follow or cancel waiting for the store, which may answer on a later
 * turn: it outlives the socket (ws NULL once the socket is gone). */
struct ws_call {
    struct ws_conn *ws;
    struct ws_call *prev, *next;
    bool cancel;
    struct sl_ws_msg m; /* id, after, token; ref points at ref below */
    char ref[SL_WS_REF_MAX];
};

struct ws_conn {
    struct sl_openai *oa;
    struct sl_http_upgraded *u; /* NULL once the connection is closed */
    wslay_event_context_ptr ctx;
    const char *in; /* the bytes of the current on_read, for wslay */
    size_t in_n;
    struct sl_buf out; /* frames of one wslay_event_send */
    struct ws_follow *follows;
    struct ws_create *creates;
    struct ws_call *calls;
    struct ws_follow *writing; /* the follower inside sink_write */
    bool in_recv, gone;
    uint16_t fail_code; /* set inside wslay_event_recv: fail with this close code */
    char *auth;         /* "Authorization: ..." from the upgrade request, or NULL */
    size_t auth_len;
    uv_timer_t timer;
    uint64_t last_input_ms;
};

static void follow_free(struct ws_follow *wf)
{
    sl_buf_free(&wf->data);
    sl_buf_free(&wf->metrics);
    free(wf);
}

static void follow_unlink(struct ws_conn *ws, struct ws_follow *wf)
{
    if (wf->prev)
        wf->prev->next = wf->next;
    else
        ws->follows = wf->next;
    if (wf->next)
        wf->next->prev = wf->prev;
    wf->prev = wf->next = NULL;
}

static void create_unlink(struct ws_create *c)
{
    struct ws_conn *ws = c->ws;
    if (ws == NULL)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        ws->creates = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->ws = NULL;
}

static void create_free(struct ws_create *c)
{
    create_unlink(c);
    if (c->s)
        sl_stream_unref(c->s);
    free(c);
}

static void call_unlink(struct ws_call *c)
{
    struct ws_conn *ws = c->ws;
    if (ws == NULL)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        ws->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->ws = NULL;
}

static size_t streams_open(const struct ws_conn *ws)
{
    size_t n = 0;
    for (const struct ws_create *c = ws->creates; c; c = c->next)
        n++;
    for (const struct ws_call *c = ws->calls; c; c = c->next)
        n += !c->cancel;
    for (const struct ws_follow *wf = ws->follows; wf; wf = wf->next)
        n += wf->f != NULL;
    return n;
}

/* Unsent bytes a follower may leave for this socket: several followers
 * share the connection's max_write_buffer_bytes. */
static size_t max_unsent(const struct sl_openai *oa)
{
    size_t a = (size_t)oa->cfg->client_buffer_bytes;
    size_t b = (size_t)oa->cfg->max_write_buffer_bytes / 4;
    return a < b ? a : b;
}

static void on_ws_closed(uv_handle_t *h)
{
    struct ws_conn *ws = h->data;
    wslay_event_context_free(ws->ctx);
    while (ws->follows) {
        struct ws_follow *wf = ws->follows;
        ws->follows = wf->next;
        follow_free(wf);
    }
    sl_buf_free(&ws->out);
    if (ws->auth) {
        explicit_bzero(ws->auth, ws->auth_len);
        free(ws->auth);
    }
    free(ws);
}

/* The socket is over: close the connection (unless the server did), let
 * pending creates go on without it, stop following. Memory goes when the
 * timer has closed, so callers up the stack may still read ws. */
static void teardown(struct ws_conn *ws)
{
    if (ws->gone)
        return;
    ws->gone = true;
    if (ws->u)
        sl_http_up_close(ws->u);
    ws->u = NULL;
    while (ws->creates)
        create_unlink(ws->creates);
    while (ws->calls)
        call_unlink(ws->calls); /* their answers free them */
    /* Stopping one follower may wake another of this socket (a stream with
     * no grace is cancelled): look again from the start each time. */
    for (;;) {
        struct ws_follow *wf = ws->follows;
        while (wf && (wf->f == NULL || wf == ws->writing))
            wf = wf->next;
        if (wf == NULL)
            break;
        struct sl_follower *f = wf->f;
        wf->f = NULL;
        sl_follow_stop(f);
    }
    uv_close((uv_handle_t *)&ws->timer, on_ws_closed);
}

/* Queues one text message. SL_ECLOSED once the socket is closing. */
static int ws_queue(struct ws_conn *ws, const char *p, size_t n)
{
    if (ws->gone)
        return SL_ECLOSED;
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)p, n};
    int rc = wslay_event_queue_msg(ws->ctx, &m);
    if (rc == 0)
        return SL_OK;
    return rc == WSLAY_ERR_NOMEM ? SL_ENOMEM : SL_ECLOSED;
}

/* Sends what wslay has queued, except inside wslay_event_recv (on_read
 * sends after it). Tears the socket down when the connection failed or the
 * close frame went out. */
static void ws_send(struct ws_conn *ws)
{
    if (ws->gone || ws->in_recv)
        return;
    int rc = wslay_event_send(ws->ctx);
    if (sl_buf_size(&ws->out) > 0) {
        int wrc = sl_http_up_write(ws->u, sl_buf_ptr(&ws->out), sl_buf_size(&ws->out));
        if (ws->out.cap > SL_WS_KEEP_BYTES)
            sl_buf_free(&ws->out);
        else
            sl_buf_reset(&ws->out);
        if (wrc != SL_OK) {
            ws->u = NULL; /* the server closed it; no on_close comes */
            teardown(ws);
            return;
        }
    }
    if (rc != 0 || wslay_event_get_close_sent(ws->ctx))
        teardown(ws);
}

/* Fails the connection (RFC 6455 7.1.7) with a close frame of ours, for
 * the errors where wslay's own close frame would carry no status code (a
 * malformed frame header, a one-byte close payload) or none can be queued.
 * What wslay still holds is dropped. */
static void ws_fail(struct ws_conn *ws, uint16_t code)
{
    if (ws->gone)
        return;
    if (!wslay_event_get_close_sent(ws->ctx)) {
        const char f[4] = {(char)0x88, 2, (char)(code >> 8), (char)(code & 0xFF)};
        if (sl_http_up_write(ws->u, f, sizeof f) != SL_OK)
            ws->u = NULL; /* the server closed it */
    }
    teardown(ws);
}

/* ---- server messages ------------------------------------------------------------ */

/* Ends the control message in b (rc: how building it went so far) with
 * its "ref" when there is one, queues it and frees b. A queue out of
 * memory tears the socket down. */
static void queue_ctrl(struct ws_conn *ws, struct sl_buf *b, int rc, const char *ref,
                       size_t ref_len)
{
    if (rc == SL_OK && ref)
        rc = sl_buf_puts(b, ",\"ref\":");
    if (rc == SL_OK && ref)
        rc = sl_buf_append(b, ref, ref_len);
    if (rc == SL_OK)
        rc = sl_buf_puts(b, "}");
    if (rc == SL_OK && ws_queue(ws, sl_buf_ptr(b), sl_buf_size(b)) == SL_ENOMEM)
        teardown(ws);
    sl_buf_free(b);
}

/* A message may quote the client's text cut anywhere (by snprintf), and a
 * text frame must be UTF-8 (see ws.h). */
int sl_ws_put_message(struct sl_buf *b, const char *s)
{
    char tmp[SL_WS_MESSAGE_MAX];
    size_t n = strlen(s), o = 0;
    for (size_t i = 0; i < n && o < sizeof tmp;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80           ? 1
                     : (c >> 5) == 0x06 ? 2
                     : (c >> 4) == 0x0E ? 3
                     : (c >> 3) == 0x1E ? 4
                                        : 0;
        bool ok = len > 0 && i + len <= n && o + len <= sizeof tmp;
        for (size_t k = 1; ok && k < len; k++)
            ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
        if (ok) {
            memcpy(tmp + o, s + i, len);
            o += len;
            i += len;
        } else {
            tmp[o++] = '?';
            i++;
        }
    }
    return sl_buf_put_json_str(b, tmp, o);
}

/* Queues {"type":"error","id":..,"message":..,"code":N[,"ref":..]}; id may
 * be NULL (null). */
static void send_error(struct ws_conn *ws, const char *id, int code, const char *message,
                       const char *ref, size_t ref_len)
{
    struct sl_buf b;
    sl_buf_init(&b, SL_WS_CTRL_BYTES);
    int rc = sl_buf_puts(&b, "{\"type\":\"error\",\"id\":");
    if (rc == SL_OK)
        rc = id ? sl_buf_put_json_str(&b, id, strlen(id)) : sl_buf_puts(&b, "null");
    if (rc == SL_OK)
        rc = sl_buf_puts(&b, ",\"message\":");
    if (rc == SL_OK)
        rc = sl_ws_put_message(&b, message);
    if (rc == SL_OK)
        rc = sl_buf_printf(&b, ",\"code\":%d", code);
    queue_ctrl(ws, &b, rc, ref, ref_len);
}

static void send_store_error(struct ws_conn *ws, const char *id, int err, const char *ref,
                             size_t ref_len)
{
    if (err == SL_ENOTFOUND)
        send_error(ws, id, 404, "no such stream", ref, ref_len);
    else if (err == SL_EGONE)
        send_error(ws, id, 410, "the stream is no longer kept", ref, ref_len);
    else
        send_error(ws, id, 503, "the stream store is unavailable", ref, ref_len);
}

static void send_created(struct ws_conn *ws, const char *id, const char *token, const char *ref,
                         size_t ref_len)
{
    struct sl_buf b;
    sl_buf_init(&b, SL_WS_CTRL_BYTES);
    /* Ids and tokens are URL-safe base64: nothing to escape. */
    int rc =
        sl_buf_printf(&b, "{\"type\":\"created\",\"id\":\"%s\",\"read_token\":\"%s\"", id, token);
    queue_ctrl(ws, &b, rc, ref, ref_len);
}

/* ---- following ---------------------------------------------------------------------- */

/* Appends one event message to out as a record: its length (uint32_t,
 * host order), then {"type":"event","id":..,"seq":N,"event":..,"data":..}.
 * The follower hands sink_write whole records, which it splits into frames
 * (no delimiter can be confused with the JSON). */
static int put_record(struct sl_buf *out, const char *id, uint64_t seq, const char *name,
                      const struct sl_buf *data)
{
    size_t at = sl_buf_size(out);
    uint32_t n = 0;
    int rc = sl_buf_append(out, &n, sizeof n);
    if (rc == SL_OK)
        rc = sl_buf_printf(
            out, "{\"type\":\"event\",\"id\":\"%s\",\"seq\":%llu,\"event\":\"%s\",\"data\":", id,
            (unsigned long long)seq, name);
    if (rc == SL_OK)
        rc = sl_buf_append(out, sl_buf_ptr(data), sl_buf_size(data));
    if (rc == SL_OK)
        rc = sl_buf_puts(out, "}");
    size_t len = sl_buf_size(out) - at - sizeof n;
    if (rc == SL_OK && len > UINT32_MAX)
        rc = SL_ETOOBIG;
    if (rc == SL_OK) {
        n = (uint32_t)len;
        memcpy(out->data + out->off + at, &n, sizeof n);
    } else {
        out->len = out->off + at;
    }
    return rc;
}

/* The follower's renderer: each event as records; a done event with
 * metrics is preceded by a metrics event of the same seq, as on SSE. */
static int ws_render(void *ud, const struct sl_ev *ev, struct sl_buf *out)
{
    struct ws_follow *wf = ud;
    sl_buf_reset(&wf->data);
    sl_buf_reset(&wf->metrics);
    const char *name = NULL;
    int rc = sl_render_compact(&wf->ctx, ev, &name, &wf->data, &wf->metrics);
    if (rc <= 0)
        return rc; /* nothing on this face, or an error */
    size_t at = sl_buf_size(out);
    rc = SL_OK;
    if (sl_buf_size(&wf->metrics) > 0)
        rc = put_record(out, wf->id, ev->seq, "metrics", &wf->metrics);
    if (rc == SL_OK)
        rc = put_record(out, wf->id, ev->seq, name, &wf->data);
    if (rc != SL_OK)
        out->len = out->off + at;
    return rc;
}

static int sink_write(void *ud, const char *p, size_t n)
{
    struct ws_follow *wf = ud;
    struct ws_conn *ws = wf->ws;
    if (ws->gone) {
        wf->f = NULL; /* the follower stops itself */
        return SL_ECLOSED;
    }
    int rc = SL_OK;
    for (size_t off = 0; rc == SL_OK && off + sizeof(uint32_t) <= n;) {
        uint32_t len;
        memcpy(&len, p + off, sizeof len);
        off += sizeof len;
        if (len > n - off)
            break; /* follow.c writes whole records */
        rc = ws_queue(ws, p + off, len);
        off += len;
    }
    ws->writing = wf;
    if (rc == SL_ENOMEM)
        teardown(ws);
    ws_send(ws);
    ws->writing = NULL;
    if (rc != SL_OK || ws->gone) {
        wf->f = NULL;
        return SL_ECLOSED;
    }
    return SL_OK;
}

static size_t sink_pending(void *ud)
{
    struct ws_follow *wf = ud;
    struct ws_conn *ws = wf->ws;
    if (ws->gone)
        return 0;
    return sl_http_up_pending(ws->u) + wslay_event_get_queued_msg_length(ws->ctx) +
           sl_buf_size(&ws->out);
}

/* The stream ended: the socket stays open for more. */
static void sink_end(void *ud)
{
    struct ws_follow *wf = ud;
    struct ws_conn *ws = wf->ws;
    wf->f = NULL;
    if (ws->gone)
        return; /* freed with the socket */
    follow_unlink(ws, wf);
    follow_free(wf);
}

static void sink_fail(void *ud, int err)
{
    struct ws_follow *wf = ud;
    struct ws_conn *ws = wf->ws;
    wf->f = NULL;
    if (ws->gone)
        return;
    follow_unlink(ws, wf);
    send_store_error(ws, wf->id, err, NULL, 0);
    follow_free(wf);
    ws_send(ws);
}

static const struct sl_follow_sink ws_sink = {sink_write, sink_pending, sink_end, sink_fail, NULL};

/* Follows stream id after after on this socket; errors go to the client. */
static void start_follow(struct ws_conn *ws, const char *id, uint64_t after, bool multi_choice,
                         const char *ref, size_t ref_len)
{
    struct sl_openai *oa = ws->oa;
    struct ws_follow *wf = calloc(1, sizeof *wf);
    if (wf == NULL) {
        send_error(ws, id, 503, "out of memory", ref, ref_len);
        return;
    }
    wf->ws = ws;
    snprintf(wf->id, sizeof wf->id, "%s", id);
    wf->ctx = (struct sl_render_ctx){
        .stream_id = wf->id, .show_usage = true, .multi_choice = multi_choice};
    sl_buf_init(&wf->data, (size_t)oa->cfg->max_stream_bytes);
    sl_buf_init(&wf->metrics, 4096);
    wf->next = ws->follows;
    if (ws->follows)
        ws->follows->prev = wf;
    ws->follows = wf;
    struct sl_follow_opts fo = {
        .format = SL_RENDER_COMPACT,
        .ctx = wf->ctx,
        .max_unsent = max_unsent(oa),
        .render = ws_render,
    };
    /* From here the sink callbacks may end (and free) wf at once. */
    int rc = sl_follow_start(oa->store, wf->id, after, &fo, &ws_sink, wf, &wf->f);
    if (rc != SL_OK) {
        follow_unlink(ws, wf);
        follow_free(wf);
        send_store_error(ws, id, rc, ref, ref_len);
    }
}

/* Resumes every follower that waited for the socket to drain. */
static void drain_all(struct ws_conn *ws)
{
    for (struct ws_follow *wf = ws->follows; wf; wf = wf->next)
        wf->drain_pending = wf->f != NULL;
    /* A follower may end (and leave the list) inside its drain. */
    while (!ws->gone) {
        struct ws_follow *wf = ws->follows;
        while (wf && !wf->drain_pending)
            wf = wf->next;
        if (wf == NULL)
            break;
        wf->drain_pending = false;
        if (wf->f)
            sl_follow_drain(wf->f);
    }
}

/* ---- create, follow, cancel ---------------------------------------------------------- */

/* Filed and looked up: tell the socket, which follows from the first
 * event. The store may answer on a later turn; c lives until then. */
static void create_on_info(void *ud, int err, const struct sl_store_info *info)
{
    struct ws_create *c = ud;
    struct ws_conn *ws = c->ws;
    struct sl_stream *s = c->s;
    if (ws == NULL) { /* the socket left: the store's grace decides */
        if (err != SL_OK)
            sl_stream_cancel(s);
        create_free(c);
        return;
    }
    create_unlink(c);
    if (err != SL_OK) {
        sl_stream_cancel(s);
        send_error(ws, NULL, 503, "the stream store is unavailable", c->ref_len ? c->ref : NULL,
                   c->ref_len);
    } else {
        send_created(ws, s->id, info->read_token, c->ref_len ? c->ref : NULL, c->ref_len);
        start_follow(ws, s->id, 0, c->info.multi_choice, c->ref_len ? c->ref : NULL, c->ref_len);
    }
    create_free(c);
    ws_send(ws);
}

static void create_on_added(void *ud, int err)
{
    struct ws_create *c = ud;
    if (err != SL_OK) {
        create_on_info(c, err, NULL);
        return;
    }
    c->oa->store->ops->get(c->oa->store, c->s->id, create_on_info, c);
}

static void create_on_open(void *ud, struct sl_stream *s, const struct sl_upstream_header *hdrs,
                           size_t n)
{
    (void)hdrs;
    (void)n;
    (void)s;
    struct ws_create *c = ud;
    c->oa->store->ops->add(c->oa->store, c->s, create_on_added, c);
}

/* The message of an upstream's error body ({"error":{"message"}}, vLLM's
 * {"message"} or FastAPI's {"detail"}), or a generic one. */
static void upstream_message(int status, const char *body, size_t len, char *out, size_t outlen)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *err = json_object_get(root, "error");
    const char *m = json_string_value(json_object_get(err, "message"));
    if (m == NULL)
        m = json_string_value(err);
    if (m == NULL)
        m = json_string_value(json_object_get(root, "message"));
    if (m == NULL)
        m = json_string_value(json_object_get(root, "detail"));
    if (m)
        snprintf(out, outlen, "%s", m);
    else
        snprintf(out, outlen, "the upstream answered %d", status);
    json_decref(root);
}

static void create_on_reply(void *ud, struct sl_stream *s, int status, const char *header_lines,
                            const char *body, size_t len)
{
    (void)s;
    (void)header_lines;
    struct ws_create *c = ud;
    struct ws_conn *ws = c->ws;
    if (ws) {
        create_unlink(c);
        char msg[SL_WS_MESSAGE_MAX + 1];
        int code = status;
        if (status < 400) {
            code = 502;
            snprintf(msg, sizeof msg, "the upstream answered %d without a stream", status);
        } else {
            upstream_message(status, body, len, msg, sizeof msg);
        }
        send_error(ws, NULL, code, msg, c->ref_len ? c->ref : NULL, c->ref_len);
        ws_send(ws);
    }
    create_free(c);
}

static void create_on_fail(void *ud, struct sl_stream *s, int err, const char *what)
{
    (void)s;
    struct ws_create *c = ud;
    struct ws_conn *ws = c->ws;
    if (ws) {
        create_unlink(c);
        send_error(ws, NULL, sl_upstream_error_status(err), what, c->ref_len ? c->ref : NULL,
                   c->ref_len);
        ws_send(ws);
    }
    create_free(c);
}

static const struct sl_stream_owner ws_owner = {create_on_open, create_on_reply, create_on_fail};

static void handle_create(struct ws_conn *ws, const struct sl_ws_msg *m)
{
    struct sl_openai *oa = ws->oa;
    if (streams_open(ws) >= SL_WS_MAX_STREAMS) {
        send_error(ws, NULL, 429, "too many streams on this socket", m->ref, m->ref_len);
        return;
    }
    struct ws_create *c = calloc(1, sizeof *c);
    if (c == NULL) {
        send_error(ws, NULL, 503, "sluice could not prepare the request body", m->ref, m->ref_len);
        return;
    }
    c->oa = oa;
    if (m->ref) {
        memcpy(c->ref, m->ref, m->ref_len);
        c->ref_len = m->ref_len;
    }
    /* A message carries no headers: the body is JSON (vLLM's FastAPI reads
     * nothing else), and the upgrade request's Authorization speaks for the
     * socket unless the transport sends its own. */
    const char *lines[2] = {"Content-Type: application/json"};
    size_t nlines = 1;
    if (ws->auth && !oa->t->sets_auth)
        lines[nlines++] = ws->auth;
    /* Disconnect is not cancel: the stream generates grace_s with nobody. */
    int status;
    char msg[256];
    if (sl_face_start_body(oa, m->body, m->body_len, lines, nlines, "/v1/chat/completions",
                           SL_FACE_STREAMS, (uint64_t)oa->cfg->grace_s * 1000, &ws_owner, c,
                           &c->info, &c->s, &status, msg, sizeof msg) != SL_OK) {
        free(c);
        send_error(ws, NULL, status, msg, m->ref, m->ref_len);
        return;
    }
    c->ws = ws;
    c->next = ws->creates;
    if (ws->creates)
        ws->creates->prev = c;
    ws->creates = c;
}

/* A follow or cancel for the store, kept until it answers. */
static struct ws_call *call_new(struct ws_conn *ws, const struct sl_ws_msg *m, bool cancel)
{
    struct ws_call *c = calloc(1, sizeof *c);
    if (c == NULL) {
        send_error(ws, m->id, 503, "out of memory", m->ref, m->ref_len);
        return NULL;
    }
    c->m = *m;
    c->m.body = NULL;
    c->m.body_len = 0;
    if (m->ref_len > 0 && m->ref_len <= sizeof c->ref) {
        memcpy(c->ref, m->ref, m->ref_len);
        c->m.ref = c->ref;
    } else {
        c->m.ref = NULL;
        c->m.ref_len = 0;
    }
    c->cancel = cancel;
    c->ws = ws;
    c->next = ws->calls;
    if (ws->calls)
        ws->calls->prev = c;
    ws->calls = c;
    return c;
}

static void follow_on_info(void *ud, int err, const struct sl_store_info *info)
{
    struct ws_call *c = ud;
    struct ws_conn *ws = c->ws;
    const struct sl_ws_msg *m = &c->m;
    call_unlink(c);
    if (ws == NULL) {
        free(c);
        return;
    }
    if (err != SL_OK) {
        send_store_error(ws, m->id, err, m->ref, m->ref_len);
    } else if (m->has_token && strcmp(m->token, info->read_token) != 0) {
        /* Client keys (a later issue) will make the token required; a
         * token that is given must match. */
        send_error(ws, m->id, 403, "the read token does not match", m->ref, m->ref_len);
    } else if (m->after > info->last_seq) {
        send_error(ws, m->id, 400, "\"after\" is past the stream's last event", m->ref, m->ref_len);
    } else {
        start_follow(ws, m->id, m->after, info->multi_choice, m->ref, m->ref_len);
    }
    free(c);
    ws_send(ws);
}

static void handle_follow(struct ws_conn *ws, const struct sl_ws_msg *m)
{
    if (streams_open(ws) >= SL_WS_MAX_STREAMS) {
        send_error(ws, m->id, 429, "too many streams on this socket", m->ref, m->ref_len);
        return;
    }
    for (struct ws_follow *wf = ws->follows; wf; wf = wf->next) {
        if (wf->f && strcmp(wf->id, m->id) == 0) {
            send_error(ws, m->id, 409, "this socket already follows the stream", m->ref,
                       m->ref_len);
            return;
        }
    }
    for (struct ws_call *c = ws->calls; c; c = c->next) {
        if (!c->cancel && strcmp(c->m.id, m->id) == 0) {
            send_error(ws, m->id, 409, "this socket already follows the stream", m->ref,
                       m->ref_len);
            return;
        }
    }
    struct ws_call *c = call_new(ws, m, false);
    if (c)
        ws->oa->store->ops->get(ws->oa->store, c->m.id, follow_on_info, c);
}

/* The log ends with done {"finish_reason":"cancelled"}, which followers
 * see; nothing else answers a cancel that worked. */
static void cancel_on_done(void *ud, int err)
{
    struct ws_call *c = ud;
    struct ws_conn *ws = c->ws;
    call_unlink(c);
    if (ws != NULL && err != SL_OK) {
        send_store_error(ws, c->m.id, err, c->m.ref, c->m.ref_len);
        ws_send(ws);
    }
    free(c);
}

static void handle_cancel(struct ws_conn *ws, const struct sl_ws_msg *m)
{
    struct ws_call *c = call_new(ws, m, true);
    if (c)
        ws->oa->store->ops->cancel(ws->oa->store, c->m.id, cancel_on_done, c);
}

static void handle_message(struct ws_conn *ws, const char *p, size_t n)
{
    struct sl_ws_msg m;
    char err[256];
    int rc = sl_ws_parse_msg(p, n, &m, err, sizeof err);
    if (rc != SL_OK) {
        send_error(ws, NULL, rc == SL_ENOTFOUND ? 404 : 400, err, m.ref, m.ref_len);
        return;
    }
    switch (m.type) {
    case SL_WS_MSG_CREATE:
        handle_create(ws, &m);
        break;
    case SL_WS_MSG_FOLLOW:
        handle_follow(ws, &m);
        break;
    case SL_WS_MSG_CANCEL:
        handle_cancel(ws, &m);
        break;
    }
}

/* ---- wslay and the connection ------------------------------------------------------ */

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                          void *ud)
{
    (void)flags;
    struct ws_conn *ws = ud;
    if (ws->in_n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < ws->in_n ? len : ws->in_n;
    memcpy(buf, ws->in, n);
    ws->in += n;
    ws->in_n -= n;
    return (ssize_t)n;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                          void *ud)
{
    (void)flags;
    struct ws_conn *ws = ud;
    if (sl_buf_append(&ws->out, data, len) != SL_OK) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *ud)
{
    struct ws_conn *ws = ud;
    if (arg->opcode == WSLAY_TEXT_FRAME) {
        handle_message(ws, arg->msg ? (const char *)arg->msg : "", arg->msg_length);
    } else if (arg->opcode == WSLAY_CONNECTION_CLOSE && arg->msg_length == 1) {
        ws->fail_code = WSLAY_CODE_PROTOCOL_ERROR; /* a status code is two bytes */
    } else if (arg->opcode == WSLAY_BINARY_FRAME) {
        static const char why[] = "send JSON text frames";
        (void)wslay_event_queue_close(ctx, WSLAY_CODE_UNSUPPORTED_DATA, (const uint8_t *)why,
                                      sizeof why - 1);
    }
    /* Pings are answered and closes echoed by wslay itself. */
}

static const struct wslay_event_callbacks ws_callbacks = {
    ws_recv_cb, ws_send_cb, NULL, NULL, NULL, NULL, ws_on_msg,
};

static void ws_on_read(void *ud, const char *p, size_t n)
{
    struct ws_conn *ws = ud;
    if (ws->gone)
        return;
    ws->last_input_ms = uv_now(ws->oa->loop);
    ws->in = p;
    ws->in_n = n;
    ws->in_recv = true;
    /* On a bad frame, bad UTF-8 or a message over the bound, wslay queues
     * the close frame (1002, 1007, 1009) and stops reading. A malformed
     * frame header fails the call instead (our recv callback never does):
     * that is a protocol error too. */
    int rc = wslay_event_recv(ws->ctx);
    ws->in_recv = false;
    ws->in = NULL;
    ws->in_n = 0;
    if (rc != 0 || ws->fail_code) {
        ws_fail(ws, rc == WSLAY_ERR_NOMEM ? WSLAY_CODE_INTERNAL_SERVER_ERROR
                    : ws->fail_code       ? ws->fail_code
                                          : WSLAY_CODE_PROTOCOL_ERROR);
        return;
    }
    ws_send(ws);
    if (!ws->gone)
        drain_all(ws); /* followers that paused on wslay's queue go on */
}

/* The peer left (or the server is closing). */
static void ws_on_close(void *ud)
{
    struct ws_conn *ws = ud;
    ws->u = NULL;
    teardown(ws);
}

static void ws_on_drain(void *ud)
{
    struct ws_conn *ws = ud;
    if (!ws->gone)
        drain_all(ws);
}

static void on_tick(uv_timer_t *t)
{
    struct ws_conn *ws = t->data;
    if (ws->gone)
        return;
    uint64_t idle = uv_now(ws->oa->loop) - ws->last_input_ms;
    if (idle >= SL_WS_IDLE_MS) {
        teardown(ws);
        return;
    }
    if (idle >= SL_WS_PING_MS) {
        struct wslay_event_msg ping = {WSLAY_PING, (const uint8_t *)"", 0};
        if (wslay_event_queue_msg(ws->ctx, &ping) == 0)
            ws_send(ws);
    }
}

/* ---- the handshake ------------------------------------------------------------------ */

/* Whether any header name lists token (comma-separated, case-insensitive). */
static bool header_has_token(const struct sl_http_request *r, const char *name, const char *token)
{
    size_t nl = strlen(name), tl = strlen(token);
    for (size_t i = 0; i < r->num_headers; i++) {
        const struct sl_http_header *h = &r->headers[i];
        if (h->name_len != nl || strncasecmp(h->name, name, nl) != 0)
            continue;
        const char *p = h->value, *end = h->value + h->value_len;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *e = comma ? comma : end;
            while (p < e && (*p == ' ' || *p == '\t'))
                p++;
            const char *t = e;
            while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
                t--;
            if ((size_t)(t - p) == tl && strncasecmp(p, token, tl) == 0)
                return true;
            p = comma ? comma + 1 : end;
        }
    }
    return false;
}

void sl_ws_handle(struct sl_openai *oa, struct sl_http_exchange *ex)
{
    const struct sl_http_request *r = sl_http_ex_request(ex);
    if (r->method != SL_HTTP_GET) {
        sl_http_ex_respond_error(ex, 405, "Allow: GET\r\n", "Method Not Allowed", NULL);
        return;
    }
    if (r->minor_version < 1 || !header_has_token(r, "Upgrade", "websocket") ||
        !header_has_token(r, "Connection", "upgrade")) {
        sl_http_ex_respond_error(ex, 400, NULL,
                                 "a WebSocket handshake needs HTTP/1.1, Upgrade: websocket and "
                                 "Connection: Upgrade",
                                 NULL);
        return;
    }
    const char *v;
    size_t n;
    if (!sl_http_ex_header(ex, "Sec-WebSocket-Version", &v, &n)) {
        sl_http_ex_respond_error(ex, 400, NULL, "Sec-WebSocket-Version is missing", NULL);
        return;
    }
    if (n != 2 || memcmp(v, "13", 2) != 0) {
        sl_http_ex_respond_error(ex, 426, "Sec-WebSocket-Version: 13\r\n",
                                 "sluice speaks WebSocket version 13", NULL);
        return;
    }
    char accept[SL_WS_ACCEPT_CHARS + 1];
    if (!sl_http_ex_header(ex, "Sec-WebSocket-Key", &v, &n) ||
        sl_ws_accept_key(v, n, accept) != SL_OK) {
        sl_http_ex_respond_error(ex, 400, NULL, "Sec-WebSocket-Key must be 16 bytes in base64",
                                 NULL);
        return;
    }
    struct ws_conn *ws = calloc(1, sizeof *ws);
    if (ws == NULL || wslay_event_context_server_init(&ws->ctx, &ws_callbacks, ws) != 0) {
        free(ws);
        sl_http_ex_respond_error(ex, 503, NULL, "out of memory", NULL);
        return;
    }
    ws->oa = oa;
    /* A message is at most a request body (and its few members). */
    wslay_event_config_set_max_recv_msg_length(ws->ctx, (uint64_t)oa->cfg->max_body_bytes);
    /* A frame send never outgrows what the server would queue anyway. */
    sl_buf_init(&ws->out, (size_t)oa->cfg->max_write_buffer_bytes + 64 * 1024);
    if (sl_http_ex_header(ex, "Authorization", &v, &n)) {
        static const char name[] = "Authorization: ";
        ws->auth_len = sizeof name - 1 + n + 1;
        ws->auth = malloc(ws->auth_len);
        if (ws->auth) {
            memcpy(ws->auth, name, sizeof name - 1);
            memcpy(ws->auth + sizeof name - 1, v, n);
            ws->auth[ws->auth_len - 1] = '\0';
        }
    }
    uv_timer_init(oa->loop, &ws->timer);
    ws->timer.data = ws;
    ws->last_input_ms = uv_now(oa->loop);
    uv_timer_start(&ws->timer, on_tick, SL_WS_PING_MS, SL_WS_PING_MS);
    char head[256];
    snprintf(head, sizeof head,
             "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n", accept);
    struct sl_http_up_cbs cbs = {
        .on_read = ws_on_read,
        .on_close = ws_on_close,
        .on_drain = ws_on_drain,
        .drain_below = max_unsent(oa) / 2,
    };
    if (sl_http_ex_upgrade(ex, head, &cbs, ws, &ws->u) != SL_OK) {
        ws->u = NULL; /* the client is gone */
        teardown(ws);
    }
}
