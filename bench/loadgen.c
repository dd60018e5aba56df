/* loadgen.c - sluice's load generator: C keep-alive HTTP/1.1 connections,
 * each running one streaming chat request after another for a bounded time.
 * Owns: options, the libuv connections (connect, write, read, close), the
 * per-request clock and checks, the ramp, the end of the run, progress and
 * the JSON report. Does not own: HTTP framing (lg/http1), SSE (the
 * project's decoder), what an event is (lg/oai), percentiles (lg/stats).
 *
 * What is measured, per request, in uv_hrtime() nanoseconds, from the
 * moment the request is handed to uv_write on a connected socket (connect
 * time is not included; keep-alive makes connects rare):
 *   TTFB  to the read that completes the response head;
 *   TTFT  to the read that carries the first token event with a non-empty
 *         payload (lg/oai.h has the token rule);
 *   ITL   every gap between consecutive token events after that one, as
 *         read: tokens that arrive in one read have a gap of 0;
 *   tokens (all token events), bytes (as read from the socket: head,
 *         chunk framing and body), and the error kinds of LG_ERR_MAP.
 * Requests that start before --ramp-s are run but not counted; none starts
 * after --duration-s (both from the start of the run); those in flight then
 * are finished and counted. tokens_per_s counts the token events of all
 * requests that arrive between the two, over that window. */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "core/buf.h"
#include "lg/http1.h"
#include "lg/oai.h"
#include "lg/stats.h"
#include "sse/decoder.h"

/* Bytes read per read callback, into one buffer shared by all connections:
 * the loop is one thread and every read is handled before the next. */
#define LG_READ_BYTES 65536
/* One SSE line or event; a chunk is ~300 bytes, tool calls a few KiB. */
#define LG_SSE_EVENT_MAX (1024 * 1024)
/* A request body read from --body-file. */
#define LG_BODY_MAX (4 * 1024 * 1024)
/* Pause before reconnecting after a failed connect, so a dead server costs
 * ten attempts a second per connection, not a busy loop. */
#define LG_RECONNECT_MS    100
#define LG_CONCURRENCY_MAX 100000
/* Extra request header fields (--header), for gateways that route by them. */
#define LG_EXTRA_HEADERS_MAX 16
#define LG_NS_PER_S          1000000000ull

/* X(name): the ways a request fails. A request may fail in several ways;
 * each kind counts it once. */
#define LG_ERR_MAP(X)                                                                              \
    X(connect)     /* no connection, the request not sent, or closed before any reply byte */      \
    X(non_200)     /* a status other than 200 */                                                   \
    X(truncated)   /* closed after the reply began, before its end */                              \
    X(no_done)     /* a complete 200 body without data: [DONE] */                                  \
    X(error_event) /* an event with an error object */                                             \
    X(lost_tokens) /* ignore_eos and a complete body, but tokens != max_tokens */                  \
    X(id_gap)      /* numeric SSE ids that are not consecutive */                                  \
    X(protocol)    /* malformed HTTP, chunking or SSE */                                           \
    X(timeout)     /* still running at the end of the drain time */

enum lg_err {
#define LG__ERR_ENUM(name) LG_ERR_##name,
    LG_ERR_MAP(LG__ERR_ENUM)
#undef LG__ERR_ENUM
        LG_ERR_COUNT
};

static const char *const lg_err_names[LG_ERR_COUNT] = {
#define LG__ERR_NAME(name) #name,
    LG_ERR_MAP(LG__ERR_NAME)
#undef LG__ERR_NAME
};

struct lg_opts {
    const char *url;
    char host[256];
    char port[16];
    const char *path;
    int concurrency;
    double duration_s, ramp_s, drain_s;
    long max_tokens;
    const char *model;
    const char *body_file;
    const char *out;
    const char *samples;
    const char *cancel_log;
    long cancel_after;       /* 0: never */
    long long expect_tokens; /* -1: unknown */
    const char *headers[LG_EXTRA_HEADERS_MAX];
    int nheaders;
    bool quiet;
};

/* One request's clock and checks. Times are uv_hrtime() nanoseconds. */
struct lg_req {
    uint64_t t_start, t_head, t_first, t_last;
    uint64_t tokens, bytes;
    uint64_t id_prev;
    uint32_t errs; /* bit per enum lg_err */
    bool measured; /* started after the ramp */
    bool have_head, have_first, have_id, done_seen, cancelled;
};

enum lg_conn_state {
    LG_CONN_WAIT,       /* timer: the ramp start or a reconnect pause */
    LG_CONN_CONNECTING, /* uv_tcp_connect in flight */
    LG_CONN_BUSY,       /* a request in flight */
    LG_CONN_CLOSING,    /* uv_close in flight */
    LG_CONN_OVER,       /* the run is over for this connection */
};

struct lg;

struct lg_conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uv_timer_t timer;
    struct lg *lg;
    enum lg_conn_state state;
    bool reconnect_pause; /* after close: wait LG_RECONNECT_MS first */
    bool writing;         /* the uv_write of the request is in flight */
    struct lg_http1_resp resp;
    struct sl_sse_decoder sse;
    struct lg_req req;
};

struct lg {
    uv_loop_t *loop;
    struct lg_opts o;
    struct sockaddr_storage addr;
    struct sl_buf request; /* the bytes of every request (lives all run) */
    struct lg_conn *conns;
    uv_timer_t progress, stop, deadline;
    uint64_t t0, t_ramp_end, t_end; /* absolute ns */
    int live;                       /* connections not yet OVER */
    bool stopping;                  /* D passed: no new requests */
    FILE *cancel_log;
    /* all requests, for the progress line */
    uint64_t done_all, errors_all, cancels_all, open_streams, tokens_all, tokens_last;
    /* measured requests (started after the ramp) */
    uint64_t requests, ok, cancelled, errored, excluded, tokens, bytes, window_tokens;
    uint64_t err[LG_ERR_COUNT];
    struct lg_samples ttfb, ttft, itl;
};

static char lg_read_buf[LG_READ_BYTES];

static void conn_start(struct lg_conn *c);
static void req_begin(struct lg_conn *c);

/* ---- the end of a request ---------------------------------------------- */

static void req_record(struct lg_conn *c)
{
    struct lg *lg = c->lg;
    struct lg_req *r = &c->req;
    lg->done_all++;
    if (r->errs)
        lg->errors_all++;
    if (r->cancelled)
        lg->cancels_all++;
    if (!r->measured) {
        lg->excluded++;
        return;
    }
    lg->requests++;
    lg->tokens += r->tokens;
    lg->bytes += r->bytes;
    if (r->errs) {
        lg->errored++;
        for (int k = 0; k < LG_ERR_COUNT; k++)
            if (r->errs & (1u << k))
                lg->err[k]++;
    } else if (r->cancelled) {
        lg->cancelled++;
    } else {
        lg->ok++;
    }
    if (r->have_head)
        lg_samples_add(&lg->ttfb, r->t_head - r->t_start);
    if (r->have_first)
        lg_samples_add(&lg->ttft, r->t_first - r->t_start);
}

/* The run is over for c; the last one over stops the run's timers, which
 * lets uv_run return. */
static void conn_over(struct lg_conn *c)
{
    struct lg *lg = c->lg;
    c->state = LG_CONN_OVER;
    if (--lg->live == 0) {
        uv_timer_stop(&lg->progress);
        uv_timer_stop(&lg->stop);
        uv_timer_stop(&lg->deadline);
    }
}

static bool run_over(const struct lg *lg)
{
    return lg->stopping || uv_hrtime() >= lg->t_end;
}

static void on_timer(uv_timer_t *t)
{
    conn_start(t->data);
}

static void on_close(uv_handle_t *h)
{
    struct lg_conn *c = h->data;
    c->writing = false;
    if (run_over(c->lg)) {
        conn_over(c);
        return;
    }
    c->state = LG_CONN_WAIT;
    if (c->reconnect_pause) {
        c->reconnect_pause = false;
        uv_timer_start(&c->timer, on_timer, LG_RECONNECT_MS, 0);
    } else {
        conn_start(c);
    }
}

static void conn_close(struct lg_conn *c)
{
    c->state = LG_CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

/* Ends the request in flight: records it, then starts the next one on this
 * connection (keep_alive) or closes it (a new connection follows unless the
 * run is over). */
static void req_end(struct lg_conn *c, bool keep_alive)
{
    struct lg *lg = c->lg;
    req_record(c);
    lg->open_streams--;
    /* A reply that came before the request was all written (an early error)
     * leaves the write in flight: that connection is not reused. */
    if (keep_alive && !c->writing && !run_over(lg)) {
        req_begin(c);
        return;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    conn_close(c);
}

static void req_fail(struct lg_conn *c, enum lg_err kind)
{
    c->req.errs |= 1u << kind;
    c->reconnect_pause = kind == LG_ERR_connect;
    req_end(c, false);
}

/* The body ended by its framing (or, without framing, by close). */
static void req_complete(struct lg_conn *c, bool keep_alive)
{
    struct lg *lg = c->lg;
    struct lg_req *r = &c->req;
    if (c->resp.status == 200) {
        if (sl_sse_decoder_end(&c->sse))
            r->errs |= 1u << LG_ERR_truncated; /* an event without its blank line */
        else if (!r->done_seen)
            r->errs |= 1u << LG_ERR_no_done;
        if (lg->o.expect_tokens >= 0 && r->tokens != (uint64_t)lg->o.expect_tokens &&
            !(r->errs & (1u << LG_ERR_error_event)))
            r->errs |= 1u << LG_ERR_lost_tokens;
    }
    req_end(c, keep_alive);
}

/* ---- events ------------------------------------------------------------ */

static bool parse_u64(const char *p, size_t n, uint64_t *out)
{
    if (n == 0 || n > 19)
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        x = x * 10 + (uint64_t)(p[i] - '0');
    }
    *out = x;
    return true;
}

/* One SSE event. Returns false when the request ended here (a cancel). */
static bool on_event(struct lg_conn *c, const struct sl_sse_event *ev, uint64_t now)
{
    struct lg *lg = c->lg;
    struct lg_req *r = &c->req;
    uint64_t id;
    if (ev->id_set && parse_u64(ev->id, ev->id_len, &id)) {
        if (r->have_id && id != r->id_prev + 1)
            r->errs |= 1u << LG_ERR_id_gap;
        r->id_prev = id;
        r->have_id = true;
    }
    struct lg_oai_ev oe;
    lg_oai_classify(ev->data, ev->data_len, &oe);
    if (oe.done) {
        r->done_seen = true;
        return true;
    }
    if (oe.error)
        r->errs |= 1u << LG_ERR_error_event;
    if (!oe.token)
        return true;
    r->tokens++;
    lg->tokens_all++;
    if (now >= lg->t_ramp_end && now < lg->t_end)
        lg->window_tokens++;
    if (!r->have_first) {
        if (oe.nonempty) {
            r->have_first = true;
            r->t_first = r->t_last = now;
        }
    } else {
        if (r->measured)
            lg_samples_add(&lg->itl, now - r->t_last);
        r->t_last = now;
    }
    if (lg->o.cancel_after > 0 && r->tokens >= (uint64_t)lg->o.cancel_after) {
        r->cancelled = true;
        if (lg->cancel_log)
            fprintf(lg->cancel_log, "%" PRIu64 "\n", uv_hrtime());
        req_end(c, false); /* closing the socket is the cancel */
        return false;
    }
    return true;
}

/* Body bytes of a 200 response. Returns false when the request ended. */
static bool on_body(struct lg_conn *c, const char *p, size_t n, uint64_t now)
{
    while (n > 0) {
        size_t used = 0;
        struct sl_sse_event ev;
        int rc = sl_sse_decoder_next(&c->sse, p, n, &used, &ev);
        if (rc < 0) {
            req_fail(c, LG_ERR_protocol);
            return false;
        }
        p += used;
        n -= used;
        if (rc == 1 && !on_event(c, &ev, now))
            return false;
    }
    return true;
}

/* ---- libuv callbacks --------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(lg_read_buf, sizeof lg_read_buf);
}

static void on_eof(struct lg_conn *c)
{
    struct lg_req *r = &c->req;
    if (lg_http1_resp_eof(&c->resp)) {
        req_complete(c, false);
        return;
    }
    req_fail(c, r->bytes == 0 ? LG_ERR_connect : LG_ERR_truncated);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct lg_conn *c = s->data;
    if (nread == 0 || c->state == LG_CONN_CLOSING)
        return;
    if (c->state != LG_CONN_BUSY) {
        /* Bytes or a close between requests: nobody asked. */
        uv_read_stop(s);
        conn_close(c);
        return;
    }
    if (nread < 0) {
        on_eof(c);
        return;
    }
    uint64_t now = uv_hrtime();
    struct lg_req *r = &c->req;
    const char *p = buf->base;
    size_t n = (size_t)nread;
    r->bytes += n;
    for (;;) {
        size_t used = 0;
        struct lg_http1_ev ev;
        int rc = lg_http1_resp_next(&c->resp, p, n, &used, &ev);
        if (rc < 0) {
            req_fail(c, LG_ERR_protocol);
            return;
        }
        p += used;
        n -= used;
        if (rc == 0)
            return;
        switch (ev.kind) {
        case LG_HTTP1_EV_HEAD:
            r->have_head = true;
            r->t_head = now;
            if (c->resp.status != 200)
                r->errs |= 1u << LG_ERR_non_200;
            break;
        case LG_HTTP1_EV_DATA:
            if (c->resp.status == 200 && !on_body(c, ev.data, ev.len, now))
                return;
            break;
        case LG_HTTP1_EV_END:
            /* Bytes after the response: we never pipeline, so the server
             * is confused; the connection is not reused. */
            req_complete(c, c->resp.keep_alive && n == 0);
            return;
        }
    }
}

static void on_write(uv_write_t *w, int status)
{
    struct lg_conn *c = w->data;
    c->writing = false;
    if (status < 0 && c->state == LG_CONN_BUSY)
        req_fail(c, LG_ERR_connect);
}

/* Starts a request on the connected c (state BUSY afterwards). */
static void req_begin(struct lg_conn *c)
{
    struct lg *lg = c->lg;
    struct lg_req *r = &c->req;
    memset(r, 0, sizeof *r);
    r->t_start = uv_hrtime();
    r->measured = r->t_start >= lg->t_ramp_end;
    lg_http1_resp_reset(&c->resp);
    /* A fresh decoder gives back what a long line made it allocate. */
    sl_sse_decoder_free(&c->sse);
    sl_sse_decoder_init(&c->sse, LG_SSE_EVENT_MAX);
    c->state = LG_CONN_BUSY;
    lg->open_streams++;
    uv_buf_t b = uv_buf_init((char *)sl_buf_ptr(&lg->request), (unsigned)sl_buf_size(&lg->request));
    int rc = uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0)
        req_fail(c, LG_ERR_connect);
    else
        c->writing = true;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct lg_conn *c = req->data;
    struct lg *lg = c->lg;
    if (status == UV_ECANCELED)
        return; /* closed under us: on_close follows */
    if (status == 0 && run_over(lg)) {
        conn_close(c);
        return;
    }
    if (status == 0) {
        uv_tcp_nodelay(&c->tcp, 1);
        status = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
    if (status < 0) {
        /* Counted as a failed request that started now. */
        struct lg_req *r = &c->req;
        memset(r, 0, sizeof *r);
        r->t_start = uv_hrtime();
        r->measured = r->t_start >= lg->t_ramp_end;
        lg->open_streams++;
        c->state = LG_CONN_BUSY;
        req_fail(c, LG_ERR_connect);
        return;
    }
    req_begin(c);
}

static void conn_start(struct lg_conn *c)
{
    struct lg *lg = c->lg;
    if (run_over(lg)) {
        conn_over(c);
        return;
    }
    c->state = LG_CONN_CONNECTING;
    int rc = uv_tcp_init(lg->loop, &c->tcp);
    if (rc == 0) {
        c->tcp.data = c;
        rc = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&lg->addr, on_connect);
        if (rc < 0)
            on_connect(&c->connect, rc); /* counts the failure, closes the handle */
        return;
    }
    fprintf(stderr, "loadgen: uv_tcp_init: %s\n", uv_strerror(rc));
    conn_over(c);
}

/* ---- run-wide timers --------------------------------------------------- */

static void on_progress(uv_timer_t *t)
{
    struct lg *lg = t->data;
    if (lg->o.quiet)
        return;
    double el = (double)(uv_hrtime() - lg->t0) / 1e9;
    fprintf(stderr,
            "loadgen: %5.1fs done=%" PRIu64 " open=%" PRIu64 " errors=%" PRIu64 " cancels=%" PRIu64
            " tok/s=%" PRIu64 "%s\n",
            el, lg->done_all, lg->open_streams, lg->errors_all, lg->cancels_all,
            lg->tokens_all - lg->tokens_last,
            el < lg->o.ramp_s ? " (ramp)" : (lg->stopping ? " (drain)" : ""));
    lg->tokens_last = lg->tokens_all;
}

static void on_stop(uv_timer_t *t)
{
    struct lg *lg = t->data;
    lg->stopping = true;
    for (int i = 0; i < lg->o.concurrency; i++) {
        struct lg_conn *c = &lg->conns[i];
        if (c->state == LG_CONN_WAIT) {
            uv_timer_stop(&c->timer);
            conn_over(c);
        }
    }
}

static void on_deadline(uv_timer_t *t)
{
    struct lg *lg = t->data;
    for (int i = 0; i < lg->o.concurrency; i++) {
        struct lg_conn *c = &lg->conns[i];
        if (c->state == LG_CONN_BUSY)
            req_fail(c, LG_ERR_timeout);
        else if (c->state == LG_CONN_CONNECTING)
            conn_close(c);
    }
}

/* ---- setup ------------------------------------------------------------- */

static void usage(FILE *f)
{
    fputs("usage: loadgen --url http://HOST:PORT/PATH --concurrency C --duration-s D\n"
          "               [--ramp-s R] [--drain-s S] [--max-tokens N] [--model NAME]\n"
          "               [--body-file F] [--expect-tokens N] [--header 'K: V']...\n"
          "               [--cancel-after-tokens K] [--cancel-log F]\n"
          "               [--out results.json] [--samples itl.txt] [--quiet]\n"
          "Runs C keep-alive connections, each one streaming request after another,\n"
          "for D seconds from the start (default 10). Connections start spread over\n"
          "the first R seconds (default 0) and requests started before R are not\n"
          "counted. Requests in flight at D are finished, for at most S more seconds\n"
          "(default 60; then they count as timeout errors).\n"
          "The default body asks for N tokens (default 128) with ignore_eos, so an\n"
          "answer with another count is a lost_tokens error; with --body-file the\n"
          "count is checked when the body sets ignore_eos and max_tokens, or as\n"
          "--expect-tokens says (-1: never). --cancel-after-tokens K closes the\n"
          "connection after K tokens (a cancel, not an error); --cancel-log writes\n"
          "the uv_hrtime() ns of each such close, one a line.\n"
          "A token is an event that is not [DONE], an error, the usage chunk or\n"
          "the role chunk, and carries content, reasoning(_content), text or\n"
          "tool_calls. JSON report to --out (default stdout); --samples writes\n"
          "every measured inter-token gap in ms, one a line. Progress each second\n"
          "on stderr (--quiet: only the final line).\n",
          f);
}

static int parse_url(struct lg_opts *o)
{
    const char *u = o->url;
    if (strncmp(u, "http://", 7) != 0)
        return -1;
    u += 7;
    const char *slash = strchr(u, '/');
    const char *hostport_end = slash ? slash : u + strlen(u);
    o->path = slash ? slash : "/";
    const char *h = u, *hend, *colon;
    if (*h == '[') {
        hend = memchr(h, ']', (size_t)(hostport_end - h));
        if (hend == NULL)
            return -1;
        h++;
        colon = hend + 1 < hostport_end && hend[1] == ':' ? hend + 1 : NULL;
    } else {
        colon = memchr(h, ':', (size_t)(hostport_end - h));
        hend = colon ? colon : hostport_end;
    }
    size_t hn = (size_t)(hend - h);
    if (hn == 0 || hn >= sizeof o->host)
        return -1;
    memcpy(o->host, h, hn);
    o->host[hn] = '\0';
    size_t pn = colon ? (size_t)(hostport_end - colon - 1) : 2;
    if (pn == 0 || pn >= sizeof o->port)
        return -1;
    if (colon) {
        memcpy(o->port, colon + 1, pn);
        o->port[pn] = '\0';
    } else {
        strcpy(o->port, "80");
    }
    return 0;
}

static bool parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int parse_args(struct lg_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->concurrency = 1;
    o->duration_s = 10;
    o->drain_s = 60;
    o->max_tokens = 128;
    o->model = "Qwen/Qwen3-0.6B";
    o->expect_tokens = -2; /* -2: from the body */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x;
        bool takes = true;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--quiet") == 0) {
            o->quiet = true;
            takes = false;
        } else if (v == NULL) {
            fprintf(stderr, "loadgen: %s needs a value\n", a);
            return -1;
        } else if (strcmp(a, "--url") == 0) {
            o->url = v;
        } else if (strcmp(a, "--concurrency") == 0 && parse_num(v, 1, LG_CONCURRENCY_MAX, &x)) {
            o->concurrency = (int)x;
        } else if (strcmp(a, "--duration-s") == 0 && parse_num(v, 0.001, 86400, &x)) {
            o->duration_s = x;
        } else if (strcmp(a, "--ramp-s") == 0 && parse_num(v, 0, 86400, &x)) {
            o->ramp_s = x;
        } else if (strcmp(a, "--drain-s") == 0 && parse_num(v, 0, 86400, &x)) {
            o->drain_s = x;
        } else if (strcmp(a, "--max-tokens") == 0 && parse_num(v, 1, 1e7, &x)) {
            o->max_tokens = (long)x;
        } else if (strcmp(a, "--expect-tokens") == 0 && parse_num(v, -1, 1e9, &x)) {
            o->expect_tokens = (long long)x;
        } else if (strcmp(a, "--cancel-after-tokens") == 0 && parse_num(v, 1, 1e9, &x)) {
            o->cancel_after = (long)x;
        } else if (strcmp(a, "--model") == 0) {
            o->model = v;
        } else if (strcmp(a, "--body-file") == 0) {
            o->body_file = v;
        } else if (strcmp(a, "--out") == 0) {
            o->out = v;
        } else if (strcmp(a, "--samples") == 0) {
            o->samples = v;
        } else if (strcmp(a, "--cancel-log") == 0) {
            o->cancel_log = v;
        } else if (strcmp(a, "--header") == 0 && o->nheaders < LG_EXTRA_HEADERS_MAX &&
                   strchr(v, ':') != NULL && strpbrk(v, "\r\n") == NULL) {
            o->headers[o->nheaders++] = v;
        } else {
            fprintf(stderr, "loadgen: bad option or value: %s %s\n", a, v);
            return -1;
        }
        if (takes)
            i++;
    }
    if (o->url == NULL || parse_url(o) != 0) {
        fprintf(stderr, "loadgen: --url http://HOST:PORT/PATH is needed\n");
        return -1;
    }
    if (o->ramp_s >= o->duration_s) {
        fprintf(stderr, "loadgen: --ramp-s must be below --duration-s\n");
        return -1;
    }
    return 0;
}

static int read_file(const char *path, struct sl_buf *out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return SL_ENOTFOUND;
    char tmp[8192];
    size_t n;
    int rc = SL_OK;
    while (rc == SL_OK && (n = fread(tmp, 1, sizeof tmp, f)) > 0)
        rc = sl_buf_append(out, tmp, n);
    if (rc == SL_OK && ferror(f))
        rc = SL_EINVAL;
    fclose(f);
    return rc;
}

/* Builds the bytes every request sends. */
static int build_request(struct lg *lg)
{
    struct lg_opts *o = &lg->o;
    struct sl_buf body;
    sl_buf_init(&body, LG_BODY_MAX);
    int rc;
    if (o->body_file) {
        rc = read_file(o->body_file, &body);
        if (rc != SL_OK)
            fprintf(stderr, "loadgen: %s: %s\n", o->body_file, sl_strerror(rc));
    } else {
        rc = sl_buf_puts(&body, "{\"model\":");
        if (rc == SL_OK)
            rc = sl_buf_put_json_str(&body, o->model, strlen(o->model));
        if (rc == SL_OK)
            rc = sl_buf_printf(&body,
                               ",\"messages\":[{\"role\":\"user\",\"content\":\"bench\"}],"
                               "\"stream\":true,\"max_tokens\":%ld,\"ignore_eos\":true}",
                               o->max_tokens);
    }
    if (rc == SL_OK && o->expect_tokens == -2)
        o->expect_tokens = lg_oai_expected_tokens(sl_buf_ptr(&body), sl_buf_size(&body));
    bool v6 = strchr(o->host, ':') != NULL;
    sl_buf_init(&lg->request, LG_BODY_MAX + 65536);
    if (rc == SL_OK)
        rc = sl_buf_printf(&lg->request,
                           "POST %s HTTP/1.1\r\nHost: %s%s%s:%s\r\n"
                           "Content-Type: application/json\r\nAccept: text/event-stream\r\n",
                           o->path, v6 ? "[" : "", o->host, v6 ? "]" : "", o->port);
    for (int i = 0; rc == SL_OK && i < o->nheaders; i++)
        rc = sl_buf_printf(&lg->request, "%s\r\n", o->headers[i]);
    if (rc == SL_OK)
        rc = sl_buf_printf(&lg->request, "Content-Length: %zu\r\n\r\n", sl_buf_size(&body));
    if (rc == SL_OK)
        rc = sl_buf_append(&lg->request, sl_buf_ptr(&body), sl_buf_size(&body));
    sl_buf_free(&body);
    return rc;
}

static int resolve(struct lg *lg)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(lg->o.host, lg->o.port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "loadgen: %s:%s: %s\n", lg->o.host, lg->o.port, gai_strerror(rc));
        return -1;
    }
    memcpy(&lg->addr, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

/* The soft limit on open files up to the hard one: each stream is a socket. */
static void raise_nofile(int need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            perror("loadgen: setrlimit");
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)need)
        fprintf(stderr, "loadgen: warning: %d connections but %llu open files allowed\n", need,
                (unsigned long long)rl.rlim_cur);
}

/* ---- the report -------------------------------------------------------- */

static int write_samples(struct lg *lg)
{
    FILE *f = fopen(lg->o.samples, "w");
    if (f == NULL) {
        perror(lg->o.samples);
        return -1;
    }
    for (size_t i = 0; i < lg->itl.n; i++)
        fprintf(f, "%.3f\n", (double)lg->itl.v[i] / 1e6);
    return fclose(f) == 0 ? 0 : -1;
}

static int report(struct lg *lg, double elapsed_s)
{
    struct lg_opts *o = &lg->o;
    struct lg_summary ttfb, ttft, itl;
    lg_samples_summarize(&lg->ttfb, &ttfb);
    lg_samples_summarize(&lg->ttft, &ttft);
    lg_samples_summarize(&lg->itl, &itl);
    double window = o->duration_s - o->ramp_s;
    struct sl_buf b;
    sl_buf_init(&b, 1 << 20);
    int rc = sl_buf_puts(&b, "{\"url\":");
    if (rc == SL_OK)
        rc = sl_buf_put_json_str(&b, o->url, strlen(o->url));
    if (rc == SL_OK)
        rc = sl_buf_printf(&b,
                           ",\"concurrency\":%d,\"duration_s\":%.3f,\"ramp_s\":%.3f,"
                           "\"window_s\":%.3f,\"elapsed_s\":%.3f,\"max_tokens\":%ld,"
                           "\"expect_tokens\":%lld,\"cancel_after_tokens\":%ld,"
                           "\"requests\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"cancelled\":%" PRIu64
                           ",\"excluded_ramp\":%" PRIu64 ",\"errors\":{\"requests\":%" PRIu64,
                           o->concurrency, o->duration_s, o->ramp_s, window, elapsed_s,
                           o->max_tokens, o->expect_tokens, o->cancel_after, lg->requests, lg->ok,
                           lg->cancelled, lg->excluded, lg->errored);
    for (int k = 0; rc == SL_OK && k < LG_ERR_COUNT; k++)
        rc = sl_buf_printf(&b, ",\"%s\":%" PRIu64, lg_err_names[k], lg->err[k]);
    if (rc == SL_OK)
        rc = sl_buf_printf(&b,
                           "},\"tokens\":%" PRIu64 ",\"bytes\":%" PRIu64
                           ",\"window_tokens\":%" PRIu64 ",\"tokens_per_s\":%.1f,"
                           "\"requests_per_s\":%.2f,",
                           lg->tokens, lg->bytes, lg->window_tokens,
                           (double)lg->window_tokens / window, (double)lg->requests / window);
    if (rc == SL_OK)
        rc = lg_summary_json(&b, "ttfb_ms", &ttfb);
    if (rc == SL_OK)
        rc = sl_buf_puts(&b, ",");
    if (rc == SL_OK)
        rc = lg_summary_json(&b, "ttft_ms", &ttft);
    if (rc == SL_OK)
        rc = sl_buf_puts(&b, ",");
    if (rc == SL_OK)
        rc = lg_summary_json(&b, "itl_ms", &itl);
    if (rc == SL_OK)
        rc = sl_buf_printf(&b, ",\"itl_samples_dropped\":%" PRIu64 "}\n", lg->itl.dropped);
    if (rc != SL_OK) {
        sl_buf_free(&b);
        return -1;
    }
    FILE *f = o->out ? fopen(o->out, "w") : stdout;
    if (f == NULL) {
        perror(o->out);
        sl_buf_free(&b);
        return -1;
    }
    fwrite(sl_buf_ptr(&b), 1, sl_buf_size(&b), f);
    int frc = o->out ? fclose(f) : fflush(f);
    sl_buf_free(&b);
    fprintf(stderr,
            "loadgen: %" PRIu64 " requests, %" PRIu64 " errors, %" PRIu64
            " cancels, %.0f tok/s; TTFT p50 %.2f p99 %.2f ms; ITL p50 %.2f p99 %.2f max %.2f "
            "ms\n",
            lg->requests, lg->errored, lg->cancelled, (double)lg->window_tokens / window,
            ttft.p50_ms, ttft.p99_ms, itl.p50_ms, itl.p99_ms, itl.max_ms);
    if (frc != 0)
        return -1;
    return o->samples ? write_samples(lg) : 0;
}

static uint64_t ms_of(double s)
{
    return (uint64_t)(s * 1000.0 + 0.5);
}

int main(int argc, char **argv)
{
    static struct lg lg;
    if (parse_args(&lg.o, argc, argv) != 0) {
        usage(stderr);
        return 2;
    }
    if (resolve(&lg) != 0 || build_request(&lg) != SL_OK)
        return 2;
    raise_nofile(lg.o.concurrency + 64);
    if (lg.o.cancel_log && (lg.cancel_log = fopen(lg.o.cancel_log, "w")) == NULL) {
        perror(lg.o.cancel_log);
        return 2;
    }
    lg.loop = uv_default_loop();
    lg.conns = calloc((size_t)lg.o.concurrency, sizeof *lg.conns);
    if (lg.conns == NULL)
        return 2;
    lg_samples_init(&lg.ttfb);
    lg_samples_init(&lg.ttft);
    lg_samples_init(&lg.itl);
    lg.t0 = uv_hrtime();
    lg.t_ramp_end = lg.t0 + (uint64_t)(lg.o.ramp_s * 1e9);
    lg.t_end = lg.t0 + (uint64_t)(lg.o.duration_s * 1e9);
    uv_timer_t *timers[] = {&lg.progress, &lg.stop, &lg.deadline};
    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++) {
        uv_timer_init(lg.loop, timers[i]);
        timers[i]->data = &lg;
    }
    uv_timer_start(&lg.progress, on_progress, 1000, 1000);
    uv_timer_start(&lg.stop, on_stop, ms_of(lg.o.duration_s), 0);
    uv_timer_start(&lg.deadline, on_deadline, ms_of(lg.o.duration_s + lg.o.drain_s), 0);
    lg.live = lg.o.concurrency;
    for (int i = 0; i < lg.o.concurrency; i++) {
        struct lg_conn *c = &lg.conns[i];
        c->lg = &lg;
        c->state = LG_CONN_WAIT;
        c->connect.data = c;
        c->write.data = c;
        lg_http1_resp_init(&c->resp);
        sl_sse_decoder_init(&c->sse, LG_SSE_EVENT_MAX);
        uv_timer_init(lg.loop, &c->timer);
        c->timer.data = c;
        uint64_t at = ms_of(lg.o.ramp_s * i / lg.o.concurrency);
        uv_timer_start(&c->timer, on_timer, at, 0);
    }
    uv_run(lg.loop, UV_RUN_DEFAULT);
    double elapsed = (double)(uv_hrtime() - lg.t0) / 1e9;

    for (int i = 0; i < lg.o.concurrency; i++) {
        uv_close((uv_handle_t *)&lg.conns[i].timer, NULL);
        lg_http1_resp_free(&lg.conns[i].resp);
        sl_sse_decoder_free(&lg.conns[i].sse);
    }
    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
        uv_close((uv_handle_t *)timers[i], NULL);
    uv_run(lg.loop, UV_RUN_DEFAULT);
    int rc = report(&lg, elapsed);
    if (lg.cancel_log)
        fclose(lg.cancel_log);
    free(lg.conns);
    sl_buf_free(&lg.request);
    lg_samples_free(&lg.ttfb);
    lg_samples_free(&lg.ttft);
    lg_samples_free(&lg.itl);
    uv_loop_close(lg.loop);
    return rc == 0 ? 0 : 1;
}
