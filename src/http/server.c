/* server.c - HTTP/1.1 connections on libuv (see server.h).
 * Owns: the connection state machine (head, body, dispatch, linger), its
 * timers, the bounded input and output queues, and response framing.
 * Does not own: parsing (http/parser.c), routing and content (the handler),
 * error bodies (oai/error.c). */
#include "http/server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/limits.h"
#include "http/status.h"
#include "oai/error.h"

/* How long a closing connection keeps reading (and discarding) after it sent
 * its last byte, so that unread client bytes do not turn the close into a
 * reset that destroys the response in flight (nginx: lingering_close). */
#define SL_LINGER_MS 2000

/* Connections the kernel queues for accept (listen(2)'s backlog; Linux
 * caps it at net.core.somaxconn). */
#define SL_LISTEN_BACKLOG 4096

enum conn_state {
    CONN_HEAD,     /* waiting for (more of) a request head */
    CONN_BODY,     /* receiving a request body */
    CONN_DISPATCH, /* a request is with the handler */
    CONN_LINGER,   /* response sent, FIN sent, draining input until EOF or timer */
    CONN_UPGRADED, /* another protocol (WebSocket) owns the bytes */
    CONN_CLOSING,  /* handles closing */
};

enum read_timer_mode { RT_NONE, RT_IDLE, RT_HEADER, RT_BODY, RT_LINGER };

struct conn {
    uv_tcp_t tcp;
    int fd; /* tcp's descriptor, for send() */
    uv_timer_t read_timer;
    uv_timer_t write_timer;
    uv_shutdown_t shutdown_req;
    int open_handles;
    struct sl_http_server *srv;
    struct conn *prev, *next;
    struct sl_buf in;
    struct sl_http_head_scan head_scan; /* of the head at the front of in */
    enum conn_state state;
    enum read_timer_mode rt_mode;
    bool reading;
    bool in_process;             /* process_input is on the stack */
    bool in_ex_call;             /* an sl_http_ex_* call is on the stack */
    size_t pending;              /* bytes handed to uv_write and not yet completed */
    struct sl_http_exchange *ex; /* the request being received or answered */
    uint64_t body_left;          /* Content-Length bytes still to read */
    struct sl_http_chunked chunked;
    /* After an upgrade: where bytes go and who hears of the close. */
    sl_http_up_read_cb up_read;
    sl_http_up_close_cb up_close;
    sl_http_up_drain_cb up_drain;
    size_t up_drain_below;
    void *up_ud;
};

struct sl_http_exchange {
    struct conn *conn;
    char *head; /* a copy of the request head; req points into it */
    size_t head_len;
    struct sl_http_request req;
    struct sl_buf body;
    bool is_head;    /* HEAD request: no body bytes are sent */
    bool started;    /* response head sent */
    bool chunked;    /* chunked response */
    bool ended;      /* response complete (or abandoned) */
    bool keep_alive; /* the connection stays open after this response */
    sl_http_abort_cb abort_cb;
    void *abort_ud;
    sl_http_drain_cb drain_cb;
    void *drain_ud;
    size_t drain_below;
    struct sl_http_header hdrs[]; /* req.num_headers entries */
};

struct sl_http_server {
    uv_tcp_t listener;
    /* A connection whose state cannot be allocated is still accepted, into
     * this spare handle, and closed: until a pending connection is
     * accepted libuv stops watching the listener (uv__server_io), so one
     * failed calloc would stop the server accepting for good. */
    uv_tcp_t refuse;
    bool refuse_busy;    /* refuse is open or closing */
    bool refuse_waiting; /* a connection waits in the listener for refuse */
    int open_handles;    /* listener and refuse: srv is freed at 0 */
    uv_loop_t *loop;
    const struct sl_config *cfg;
    struct sl_http_limits limits;
    sl_http_handler_cb handler;
    void *ud;
    struct conn *conns;
    size_t nconns;
    bool closing;
    int port;
    char readbuf[SL_LIMIT_READ_CHUNK]; /* one loop, one read at a time */
};

struct wreq {
    uv_write_t req;
    struct conn *conn;
    size_t len;
    char data[];
};

static void process_input(struct conn *c);
static void conn_close(struct conn *c);
static void conn_finish(struct conn *c);
static void read_timer_set(struct conn *c, enum read_timer_mode mode);
static void start_read(struct conn *c);
static void error_close(struct conn *c, int status, const char *msg);

/* ---- lifecycle ---------------------------------------------------------- */

static void exchange_free(struct sl_http_exchange *ex)
{
    if (ex == NULL)
        return;
    sl_buf_free(&ex->body);
    free(ex->head);
    free(ex);
}

/* The exchange dies before its response ended: tell the handler, unless the
 * handler is the caller (its sl_http_ex_* call then returns SL_ECLOSED). */
static void exchange_abort(struct conn *c, bool dispatched)
{
    struct sl_http_exchange *ex = c->ex;
    if (ex == NULL)
        return;
    c->ex = NULL;
    if (dispatched && !ex->ended && ex->abort_cb && !c->in_ex_call) {
        ex->ended = true;
        ex->abort_cb(ex, ex->abort_ud);
    }
    exchange_free(ex);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    sl_buf_free(&c->in);
    free(c);
}

/* Closes the handles of a connection that never joined the server's list
 * (its accept or a timer's init failed): those opened so far. */
static void conn_abandon(struct conn *c)
{
    c->state = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    if (c->open_handles > 1)
        uv_close((uv_handle_t *)&c->read_timer, on_handle_closed);
}

static void conn_close(struct conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    bool dispatched = c->state == CONN_DISPATCH;
    bool upgraded = c->state == CONN_UPGRADED;
    c->state = CONN_CLOSING;
    exchange_abort(c, dispatched);
    if (upgraded && c->up_close && !c->in_ex_call)
        c->up_close(c->up_ud);
    struct sl_http_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->read_timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->write_timer, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    read_timer_set(c, RT_LINGER);
}

/* Everything for this connection is written: send FIN, then linger. */
static void conn_finish(struct conn *c)
{
    if (c->state == CONN_CLOSING || c->state == CONN_LINGER)
        return;
    c->state = CONN_LINGER;
    sl_buf_reset(&c->in);
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    if (!c->reading) { /* lingering needs reads to see the client's EOF */
        c->reading = true;
        start_read(c);
    }
}

/* ---- timers -------------------------------------------------------------- */

static void on_read_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    enum read_timer_mode mode = c->rt_mode;
    c->rt_mode = RT_NONE;
    switch (mode) {
    case RT_IDLE:
    case RT_LINGER:
    case RT_NONE:
        conn_close(c);
        return;
    case RT_HEADER:
    case RT_BODY: {
        /* The request never completed: 408, then close. */
        exchange_free(c->ex);
        c->ex = NULL;
        c->state = CONN_HEAD;
        error_close(c, 408,
                    mode == RT_HEADER ? "timed out reading the request headers"
                                      : "timed out reading the request body");
        return;
    }
    }
}

static void read_timer_set(struct conn *c, enum read_timer_mode mode)
{
    const struct sl_config *cfg = c->srv->cfg;
    uint64_t ms = 0;
    switch (mode) {
    case RT_NONE:
        c->rt_mode = RT_NONE;
        uv_timer_stop(&c->read_timer);
        return;
    case RT_IDLE:
        ms = (uint64_t)cfg->idle_timeout_ms;
        break;
    case RT_HEADER:
        if (c->rt_mode == RT_HEADER)
            return; /* counted from the request's first byte, never extended */
        ms = (uint64_t)cfg->header_timeout_ms;
        break;
    case RT_BODY:
        ms = (uint64_t)cfg->body_timeout_ms;
        break;
    case RT_LINGER:
        ms = SL_LINGER_MS;
        break;
    }
    c->rt_mode = mode;
    uv_timer_start(&c->read_timer, on_read_timer, ms, 0);
}

static void on_write_timer(uv_timer_t *t)
{
    /* Queued bytes made no progress for send_timeout_ms: the client is gone
     * or not reading. */
    conn_close(t->data);
}

/* ---- writing ------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->conn;
    c->pending -= w->len;
    free(w);
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    struct sl_http_exchange *ex = c->ex;
    if (ex && ex->drain_cb && c->state == CONN_DISPATCH && c->pending <= ex->drain_below &&
        !c->in_ex_call) {
        ex->drain_cb(ex, ex->drain_ud);
        if (c->state == CONN_CLOSING)
            return;
    }
    if (c->state == CONN_UPGRADED && c->up_drain && c->pending <= c->up_drain_below &&
        !c->in_ex_call) {
        c->up_drain(c->up_ud);
        if (c->state == CONN_CLOSING)
            return;
    }
    if (c->pending == 0) {
        uv_timer_stop(&c->write_timer);
        if (c->state == CONN_DISPATCH || c->state == CONN_HEAD)
            process_input(c); /* reading may have paused for pipelined input */
    } else {
        uv_timer_start(&c->write_timer, on_write_timer, (uint64_t)c->srv->cfg->send_timeout_ms, 0);
    }
}

/* Writes what the socket takes now, while nothing waits in libuv's queue:
 * send() (sendmsg() for several pieces) on the descriptor, where libuv's
 * uv_try_write would call write() or writev(), which go through the file
 * layer (a position lock, more checks) on every token. Returns the bytes
 * written, 0 when the socket is full, or -errno. */
static ssize_t try_send(struct conn *c, const uv_buf_t *bufs, unsigned nbufs)
{
    ssize_t n;
    do {
        if (nbufs == 1) {
            n = send(c->fd, bufs[0].base, bufs[0].len, MSG_DONTWAIT | MSG_NOSIGNAL);
        } else {
            /* uv_buf_t is laid out as struct iovec on Unix (uv.h). */
            struct msghdr m = {.msg_iov = (struct iovec *)bufs, .msg_iovlen = nbufs};
            n = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
    } while (n < 0 && errno == EINTR);
    if (n >= 0)
        return n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
}

/* Queues the pieces in order; writes at once what the socket takes.
 * SL_ECLOSED when the connection is gone or the client is over its bound
 * (the connection is then closed). */
static int conn_send(struct conn *c, const uv_buf_t *bufs, unsigned nbufs)
{
    if (c->state == CONN_CLOSING || c->state == CONN_LINGER)
        return SL_ECLOSED;
    size_t total = 0;
    for (unsigned i = 0; i < nbufs; i++)
        total += bufs[i].len;
    if (total == 0)
        return SL_OK;
    size_t done = 0;
    if (c->pending == 0) {
        ssize_t n = try_send(c, bufs, nbufs);
        if (n > 0)
            done = (size_t)n;
        else if (n < 0) {
            conn_close(c);
            return SL_ECLOSED;
        }
    }
    size_t rest = total - done;
    if (rest == 0)
        return SL_OK;
    if (c->pending + rest > (size_t)c->srv->cfg->max_write_buffer_bytes) {
        conn_close(c); /* a client that stops reading costs bounded memory */
        return SL_ECLOSED;
    }
    struct wreq *w = sl_malloc(sizeof *w + rest);
    if (w == NULL) {
        conn_close(c);
        return SL_ECLOSED;
    }
    size_t skip = done, off = 0;
    for (unsigned i = 0; i < nbufs; i++) {
        size_t len = bufs[i].len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(w->data + off, bufs[i].base + skip, len - skip);
        off += len - skip;
        skip = 0;
    }
    w->conn = c;
    w->len = rest;
    uv_buf_t one = uv_buf_init(w->data, (unsigned)rest);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &one, 1, on_write) != 0) {
        free(w);
        conn_close(c);
        return SL_ECLOSED;
    }
    if (c->pending == 0)
        uv_timer_start(&c->write_timer, on_write_timer, (uint64_t)c->srv->cfg->send_timeout_ms, 0);
    c->pending += rest;
    return SL_OK;
}

static int send_bytes(struct conn *c, const char *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    return conn_send(c, &b, 1);
}

static int build_head(struct sl_buf *h, int status, const char *content_type, const char *headers,
                      bool keep_alive, int64_t content_length)
{
    int rc = sl_buf_printf(h, "HTTP/1.1 %d %s\r\n", status, sl_http_reason(status));
    if (rc == SL_OK && content_type)
        rc = sl_buf_printf(h, "Content-Type: %s\r\n", content_type);
    if (rc == SL_OK && content_length >= 0)
        rc = sl_buf_printf(h, "Content-Length: %lld\r\n", (long long)content_length);
    if (rc == SL_OK && content_length == -1)
        rc = sl_buf_puts(h, "Transfer-Encoding: chunked\r\n");
    /* content_length -2: an HTTP/1.0 client, the body ends at the close. */
    if (rc == SL_OK && headers)
        rc = sl_buf_puts(h, headers);
    if (rc == SL_OK)
        rc = sl_buf_puts(h, keep_alive ? "Connection: keep-alive\r\n\r\n"
                                       : "Connection: close\r\n\r\n");
    return rc;
}

/* The response is complete: free the exchange and go on with the next
 * request (or close). */
static void exchange_done(struct sl_http_exchange *ex)
{
    struct conn *c = ex->conn;
    ex->ended = true;
    bool keep = ex->keep_alive;
    if (c->ex == ex)
        c->ex = NULL;
    exchange_free(ex);
    if (c->state == CONN_CLOSING || c->state == CONN_LINGER)
        return;
    if (!keep) {
        conn_finish(c); /* the FIN follows the queued bytes */
        return;
    }
    c->state = CONN_HEAD;
    if (!c->in_process)
        process_input(c);
}

/* Answers a request that could not be read with an error, then closes. */
static void error_close(struct conn *c, int status, const char *msg)
{
    struct sl_buf body, head;
    sl_buf_init(&body, 4096);
    sl_buf_init(&head, 4096);
    if (sl_error_render(&body, status, NULL, msg, NULL) == SL_OK &&
        build_head(&head, status, "application/json", NULL, false, (int64_t)sl_buf_size(&body)) ==
            SL_OK) {
        uv_buf_t bufs[2] = {uv_buf_init((char *)sl_buf_ptr(&head), (unsigned)sl_buf_size(&head)),
                            uv_buf_init((char *)sl_buf_ptr(&body), (unsigned)sl_buf_size(&body))};
        (void)conn_send(c, bufs, 2);
    }
    sl_buf_free(&body);
    sl_buf_free(&head);
    if (c->state == CONN_CLOSING)
        return;
    exchange_free(c->ex);
    c->ex = NULL;
    c->state = CONN_HEAD;
    read_timer_set(c, RT_NONE);
    conn_finish(c);
}

/* ---- the exchange API ---------------------------------------------------- */

const struct sl_http_request *sl_http_ex_request(const struct sl_http_exchange *ex)
{
    return &ex->req;
}

const char *sl_http_ex_body(const struct sl_http_exchange *ex, size_t *len)
{
    *len = sl_buf_size(&ex->body);
    return sl_buf_size(&ex->body) ? sl_buf_ptr(&ex->body) : "";
}

bool sl_http_ex_header(const struct sl_http_exchange *ex, const char *name, const char **value,
                       size_t *len)
{
    const struct sl_http_header *h = sl_http_find_header(&ex->req, name);
    if (h == NULL)
        return false;
    *value = h->value;
    *len = h->value_len;
    return true;
}

uv_loop_t *sl_http_ex_loop(const struct sl_http_exchange *ex)
{
    return ex->conn->srv->loop;
}

size_t sl_http_ex_pending(const struct sl_http_exchange *ex)
{
    return ex->conn->pending;
}

size_t sl_http_ex_write_bound(const struct sl_http_exchange *ex)
{
    return (size_t)ex->conn->srv->cfg->max_write_buffer_bytes;
}

void sl_http_ex_set_abort_cb(struct sl_http_exchange *ex, sl_http_abort_cb cb, void *ud)
{
    ex->abort_cb = cb;
    ex->abort_ud = ud;
}

void sl_http_ex_set_drain_cb(struct sl_http_exchange *ex, sl_http_drain_cb cb, void *ud,
                             size_t below)
{
    ex->drain_cb = cb;
    ex->drain_ud = ud;
    ex->drain_below = below;
}

int sl_http_ex_respond(struct sl_http_exchange *ex, int status, const char *content_type,
                       const char *headers, const char *body, size_t len)
{
    struct conn *c = ex->conn;
    struct sl_buf head;
    sl_buf_init(&head, (size_t)c->srv->cfg->max_header_bytes + 4096);
    int rc = build_head(&head, status, content_type, headers, ex->keep_alive, (int64_t)len);
    if (rc != SL_OK) {
        sl_buf_free(&head);
        sl_http_ex_close(ex);
        return rc;
    }
    {
        uv_buf_t bufs[2] = {uv_buf_init((char *)sl_buf_ptr(&head), (unsigned)sl_buf_size(&head)),
                            uv_buf_init((char *)body, (unsigned)len)};
        ex->started = true;
        c->in_ex_call = true;
        rc = conn_send(c, bufs, ex->is_head || len == 0 ? 1 : 2);
        c->in_ex_call = false;
    }
    sl_buf_free(&head);
    if (rc == SL_ECLOSED)
        return rc; /* the abort callback has run and the exchange is gone */
    exchange_done(ex);
    return rc;
}

int sl_http_ex_respond_error(struct sl_http_exchange *ex, int status, const char *headers,
                             const char *message, const char *param)
{
    struct sl_buf body;
    sl_buf_init(&body, 64 * 1024);
    int rc = sl_error_render(&body, status, NULL, message, param);
    if (rc != SL_OK) {
        sl_buf_free(&body);
        sl_http_ex_close(ex);
        return rc;
    }
    rc = sl_http_ex_respond(ex, status, "application/json", headers, sl_buf_ptr(&body),
                            sl_buf_size(&body));
    sl_buf_free(&body);
    return rc;
}

int sl_http_ex_start(struct sl_http_exchange *ex, int status, const char *content_type,
                     const char *headers)
{
    struct conn *c = ex->conn;
    struct sl_buf head;
    sl_buf_init(&head, (size_t)c->srv->cfg->max_header_bytes + 4096);
    /* HTTP/1.0 has no chunked coding: the body ends when the connection does. */
    bool http10 = ex->req.minor_version == 0;
    if (http10)
        ex->keep_alive = false;
    int rc = build_head(&head, status, content_type, headers, ex->keep_alive, http10 ? -2 : -1);
    if (rc != SL_OK) {
        sl_buf_free(&head);
        sl_http_ex_close(ex);
        return SL_ECLOSED;
    }
    ex->started = true;
    ex->chunked = !http10;
    c->in_ex_call = true;
    if (rc == SL_OK)
        rc = send_bytes(c, sl_buf_ptr(&head), sl_buf_size(&head));
    c->in_ex_call = false;
    sl_buf_free(&head);
    return rc;
}

int sl_http_ex_start_fixed(struct sl_http_exchange *ex, int status, const char *content_type,
                           const char *headers, uint64_t content_length)
{
    struct conn *c = ex->conn;
    struct sl_buf head;
    sl_buf_init(&head, (size_t)c->srv->cfg->max_header_bytes + 4096);
    int rc =
        build_head(&head, status, content_type, headers, ex->keep_alive, (int64_t)content_length);
    if (rc != SL_OK) {
        sl_buf_free(&head);
        sl_http_ex_close(ex);
        return SL_ECLOSED;
    }
    ex->started = true;
    c->in_ex_call = true;
    rc = send_bytes(c, sl_buf_ptr(&head), sl_buf_size(&head));
    c->in_ex_call = false;
    sl_buf_free(&head);
    return rc;
}

/* Writes a chunk's size line ("1a\r\n") so that it ends at end, and
 * returns where it starts: at most SL_HTTP_FRAME_HEAD bytes before end. */
static char *chunk_size_line(char *end, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *p = end - 2;
    p[0] = '\r';
    p[1] = '\n';
    do {
        *--p = hex[len & 15];
        len >>= 4;
    } while (len);
    return p;
}

int sl_http_ex_write(struct sl_http_exchange *ex, const char *data, size_t len)
{
    if (len == 0 || ex->is_head)
        return SL_OK;
    if (!ex->chunked) {
        struct conn *c = ex->conn;
        c->in_ex_call = true;
        int rc = send_bytes(c, data, len);
        c->in_ex_call = false;
        return rc;
    }
    char size_line[SL_HTTP_FRAME_HEAD];
    char *line = chunk_size_line(size_line + sizeof size_line, len);
    uv_buf_t bufs[3] = {uv_buf_init(line, (unsigned)(size_line + sizeof size_line - line)),
                        uv_buf_init((char *)data, (unsigned)len), uv_buf_init("\r\n", 2)};
    struct conn *c = ex->conn;
    c->in_ex_call = true;
    int rc = conn_send(c, bufs, 3);
    c->in_ex_call = false;
    return rc;
}

int sl_http_ex_write_framed(struct sl_http_exchange *ex, char *data, size_t len)
{
    if (len == 0 || ex->is_head)
        return SL_OK;
    if (!ex->chunked)
        return sl_http_ex_write(ex, data, len);
    char *p = chunk_size_line(data, len);
    data[len] = '\r';
    data[len + 1] = '\n';
    struct conn *c = ex->conn;
    uv_buf_t b = uv_buf_init(p, (unsigned)(data + len + 2 - p));
    c->in_ex_call = true;
    int rc = conn_send(c, &b, 1);
    c->in_ex_call = false;
    return rc;
}

int sl_http_ex_end(struct sl_http_exchange *ex)
{
    int rc = SL_OK;
    struct conn *c = ex->conn;
    c->in_ex_call = true;
    if (!ex->is_head && ex->chunked)
        rc = send_bytes(c, "0\r\n\r\n", 5);
    c->in_ex_call = false;
    if (rc == SL_ECLOSED)
        return rc;
    exchange_done(ex);
    return rc;
}

void sl_http_ex_close(struct sl_http_exchange *ex)
{
    ex->keep_alive = false;
    ex->abort_cb = NULL;
    exchange_done(ex); /* closes once queued bytes are written */
}

/* ---- reading ------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = h->data;
    *buf = uv_buf_init(c->srv->readbuf, sizeof c->srv->readbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (c->state == CONN_CLOSING)
        return;
    if (nread < 0) {
        /* EOF or error: a client that leaves during its answer aborts it. */
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (c->state == CONN_LINGER)
        return; /* discarded */
    if (c->state == CONN_UPGRADED) {
        c->up_read(c->up_ud, buf->base, (size_t)nread);
        return;
    }
    if (sl_buf_append(&c->in, buf->base, (size_t)nread) != SL_OK) {
        conn_close(c);
        return;
    }
    process_input(c);
}

static void start_read(struct conn *c)
{
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

static void set_reading(struct conn *c, bool on)
{
    if (on == c->reading)
        return;
    c->reading = on;
    if (on)
        start_read(c);
    else
        uv_read_stop((uv_stream_t *)&c->tcp);
}

static int status_for(int err)
{
    switch (err) {
    case SL_EURITOOLONG:
        return 414;
    case SL_EHDRTOOBIG:
    case SL_ETOOMANYHDRS:
        return 431;
    case SL_EBODYTOOBIG:
        return 413;
    case SL_EVERSION:
        return 505;
    case SL_ENOTIMPL:
        return 501;
    case SL_ENOMEM:
        return 503;
    default:
        return 400;
    }
}

static const char *message_for(int err)
{
    switch (err) {
    case SL_EURITOOLONG:
        return "request target is longer than max_url_bytes";
    case SL_EHDRTOOBIG:
        return "request headers are larger than max_header_bytes";
    case SL_ETOOMANYHDRS:
        return "request has more header fields than max_headers";
    case SL_EBODYTOOBIG:
        return "request body is larger than max_body_bytes";
    case SL_EVERSION:
        return "only HTTP/1.0 and HTTP/1.1 are supported";
    case SL_ENOTIMPL:
        return "only the chunked transfer coding is supported";
    case SL_ENOMEM:
        return "the server is out of memory; try again";
    default:
        return "malformed HTTP request";
    }
}

static bool has_one_host(const struct sl_http_request *req)
{
    int n = 0;
    for (size_t i = 0; i < req->num_headers; i++)
        if (req->headers[i].name_len == 4 && strncasecmp(req->headers[i].name, "host", 4) == 0)
            n++;
    return n == 1;
}

/* A complete head at the front of c->in: copy it into a new exchange. */
static int start_exchange(struct conn *c, size_t head_len, size_t num_headers)
{
    struct sl_http_server *srv = c->srv;
    struct sl_http_exchange *ex =
        sl_calloc(1, sizeof *ex + num_headers * sizeof(struct sl_http_header));
    if (ex == NULL)
        return SL_ENOMEM;
    ex->head = sl_malloc(head_len);
    if (ex->head == NULL) {
        free(ex);
        return SL_ENOMEM;
    }
    memcpy(ex->head, sl_buf_ptr(&c->in), head_len);
    ex->head_len = head_len;
    size_t used = 0;
    int rc = sl_http_parse_request(ex->head, head_len, &srv->limits, &ex->req, ex->hdrs,
                                   num_headers, &used, NULL);
    if (rc != SL_OK || used != head_len) {
        exchange_free(ex);
        return rc != SL_OK ? rc : SL_EBADREQ;
    }
    ex->conn = c;
    ex->is_head = ex->req.method == SL_HTTP_HEAD;
    ex->keep_alive = ex->req.keep_alive;
    sl_buf_init(&ex->body, (size_t)srv->cfg->max_body_bytes + 1);
    c->ex = ex;
    sl_buf_consume(&c->in, head_len);
    return SL_OK;
}

static void dispatch(struct conn *c)
{
    struct sl_http_exchange *ex = c->ex;
    /* The body is NUL-terminated for JSON parsers that want a string. */
    if (sl_buf_append(&ex->body, "", 1) == SL_OK)
        ex->body.len--;
    c->state = CONN_DISPATCH;
    read_timer_set(c, RT_NONE);
    c->srv->handler(ex, c->srv->ud);
}

static void process_input(struct conn *c)
{
    if (c->in_process)
        return;
    c->in_process = true;
    const struct sl_http_limits *lim = &c->srv->limits;
    for (;;) {
        if (c->state == CONN_HEAD) {
            if (sl_buf_size(&c->in) == 0) {
                read_timer_set(c, c->pending == 0 ? RT_IDLE : RT_NONE);
                break;
            }
            struct sl_http_header hdrs[SL_LIMIT_HEADERS_MAX];
            struct sl_http_request req;
            size_t used = 0;
            int rc = sl_http_parse_request(sl_buf_ptr(&c->in), sl_buf_size(&c->in), lim, &req, hdrs,
                                           lim->max_headers, &used, &c->head_scan);
            if (rc == SL_EAGAIN) {
                /* c->in holds at most max_header_bytes plus one read, and
                 * the parser says SL_EHDRTOOBIG past max_header_bytes: the
                 * next read always fits (on_read closes otherwise). */
                read_timer_set(c, RT_HEADER);
                break;
            }
            c->head_scan = (struct sl_http_head_scan){0}; /* the next head starts afresh */
            /* RFC 9112 3.2: a server must reject an HTTP/1.1 request
             * without exactly one Host (h11 in front of vLLM does). */
            if (rc == SL_OK && req.minor_version == 1 && !has_one_host(&req))
                rc = SL_EBADREQ;
            if (rc == SL_OK)
                rc = start_exchange(c, used, req.num_headers);
            if (rc != SL_OK) {
                error_close(c, status_for(rc), message_for(rc));
                break;
            }
            struct sl_http_exchange *ex = c->ex;
            c->state = CONN_BODY;
            c->body_left = ex->req.content_length > 0 ? (uint64_t)ex->req.content_length : 0;
            if (ex->req.chunked)
                sl_http_chunked_init(&c->chunked, (uint64_t)c->srv->cfg->max_body_bytes);
            bool wants_body = ex->req.chunked || c->body_left > 0;
            if (wants_body && ex->req.expect_continue && sl_buf_size(&c->in) == 0 &&
                ex->req.minor_version == 1) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                if (send_bytes(c, cont, sizeof cont - 1) != SL_OK)
                    break;
            }
            continue;
        }
        if (c->state == CONN_BODY) {
            struct sl_http_exchange *ex = c->ex;
            bool complete;
            if (ex->req.chunked) {
                size_t used = 0;
                int rc = sl_http_chunked_feed(&c->chunked, sl_buf_ptr(&c->in), sl_buf_size(&c->in),
                                              &used, &ex->body);
                sl_buf_consume(&c->in, used);
                if (rc != SL_OK && rc != SL_EAGAIN) {
                    error_close(c, status_for(rc), message_for(rc));
                    break;
                }
                complete = rc == SL_OK;
            } else {
                size_t n = sl_buf_size(&c->in);
                if (n > c->body_left)
                    n = (size_t)c->body_left;
                if (sl_buf_append(&ex->body, sl_buf_ptr(&c->in), n) != SL_OK) {
                    error_close(c, 413, message_for(SL_EBODYTOOBIG));
                    break;
                }
                sl_buf_consume(&c->in, n);
                c->body_left -= n;
                complete = c->body_left == 0;
            }
            if (!complete) {
                read_timer_set(c, RT_BODY);
                break;
            }
            dispatch(c);
            continue; /* the handler may have answered already */
        }
        break; /* DISPATCH, LINGER, CLOSING: wait */
    }
    c->in_process = false;
    if (c->state == CONN_CLOSING || c->state == CONN_LINGER)
        return;
    /* Read ahead a bounded amount while a response is under way; the rest of
     * a pipelining client's requests waits in the kernel. Keep reading with a
     * response in progress so that a client's hang-up is seen at once. */
    bool room = sl_buf_size(&c->in) < SL_LIMIT_PIPELINE_BYTES;
    set_reading(c, room || c->state == CONN_BODY);
}

/* ---- accepting ----------------------------------------------------------- */

static void refuse(struct sl_http_server *srv);

static void on_server_handle_closed(uv_handle_t *h)
{
    struct sl_http_server *srv = h->data;
    bool was_refuse = h == (uv_handle_t *)&srv->refuse;
    if (was_refuse)
        srv->refuse_busy = false;
    if (--srv->open_handles == 0) {
        free(srv);
        return;
    }
    if (was_refuse && srv->refuse_waiting && !srv->closing) {
        srv->refuse_waiting = false;
        refuse(srv);
    }
}

/* Accepts the pending connection into the spare handle and closes it: the
 * client sees its connection end, and libuv watches the listener again.
 * While the spare is still closing from the last refusal, the connection
 * waits in the listener (libuv stops watching it meanwhile) until the
 * spare's close callback: at most one loop iteration. */
static void refuse(struct sl_http_server *srv)
{
    if (srv->refuse_busy) {
        srv->refuse_waiting = true;
        return;
    }
    /* uv_tcp_init without a domain creates no socket and fails only on bad
     * flags; should it fail, the connection waits for the next one. */
    int rc = uv_tcp_init(srv->loop, &srv->refuse);
    if (rc != 0) {
        fprintf(stderr, "sluice: cannot refuse a connection: %s\n", uv_strerror(rc));
        return;
    }
    srv->refuse.data = srv;
    srv->refuse_busy = true;
    srv->open_handles++;
    /* On failure libuv has closed the descriptor itself; but outside the
     * connection callback it then leaves the listener unwatched, so watch
     * it again. */
    rc = uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&srv->refuse);
    if (rc != 0) {
        rc = uv_listen((uv_stream_t *)&srv->listener, SL_LISTEN_BACKLOG,
                       srv->listener.connection_cb);
        if (rc != 0)
            fprintf(stderr, "sluice: the listener stopped: %s\n", uv_strerror(rc));
    }
    uv_close((uv_handle_t *)&srv->refuse, on_server_handle_closed);
}

static void on_connection(uv_stream_t *ls, int status)
{
    struct sl_http_server *srv = ls->data;
    /* status < 0: accept() failed and nothing is pending (libuv's EMFILE
     * trick has closed what it could). Closing: uv_close of the listener
     * closes a pending descriptor. */
    if (status < 0 || srv->closing)
        return;
    struct conn *c = sl_calloc(1, sizeof *c);
    if (c == NULL) {
        refuse(srv);
        return;
    }
    c->srv = srv;
    size_t inmax = (size_t)srv->cfg->max_header_bytes;
    if (inmax < SL_LIMIT_PIPELINE_BYTES)
        inmax = SL_LIMIT_PIPELINE_BYTES;
    sl_buf_init(&c->in, inmax + SL_LIMIT_READ_CHUNK);
    if (uv_tcp_init(srv->loop, &c->tcp) != 0) {
        free(c);
        refuse(srv);
        return;
    }
    c->tcp.data = c->read_timer.data = c->write_timer.data = c;
    c->open_handles = 1;
    /* Accepted first, so that whatever fails next the listener goes on. On
     * failure libuv has closed the descriptor. */
    int rc = uv_accept(ls, (uv_stream_t *)&c->tcp);
    if (rc == 0)
        rc = uv_timer_init(srv->loop, &c->read_timer);
    if (rc == 0) {
        c->open_handles++;
        rc = uv_timer_init(srv->loop, &c->write_timer);
    }
    if (rc != 0) {
        conn_abandon(c);
        return;
    }
    c->open_handles++;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    uv_os_fd_t fd;
    if (srv->nconns > (size_t)srv->cfg->max_connections ||
        uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 || uv_tcp_nodelay(&c->tcp, 1) != 0) {
        conn_close(c);
        return;
    }
    c->fd = fd;
    c->state = CONN_HEAD;
    set_reading(c, true);
    if (c->state == CONN_CLOSING) /* uv_read_start failed */
        return;
    read_timer_set(c, RT_IDLE);
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || colon == listen || (size_t)(colon - listen) >= sizeof host)
        return SL_EINVAL;
    size_t hl = (size_t)(colon - listen);
    memcpy(host, listen, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || port < 0 || port > 65535)
        return SL_EINVAL;
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss) == 0 ? SL_OK : SL_EINVAL;
    }
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0 ? SL_OK : SL_EINVAL;
}

int sl_http_server_start(uv_loop_t *loop, const struct sl_config *cfg, sl_http_handler_cb handler,
                         void *ud, struct sl_http_server **out, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (parse_listen(cfg->listen, &ss) != SL_OK) {
        snprintf(err, errlen, "--listen '%s' is not HOST:PORT", cfg->listen);
        return SL_EINVAL;
    }
    struct sl_http_server *srv = sl_calloc(1, sizeof *srv);
    if (srv == NULL) {
        snprintf(err, errlen, "out of memory");
        return SL_ENOMEM;
    }
    srv->loop = loop;
    srv->cfg = cfg;
    srv->handler = handler;
    srv->ud = ud;
    srv->limits.max_header_bytes = (size_t)cfg->max_header_bytes;
    srv->limits.max_headers = (size_t)cfg->max_headers;
    srv->limits.max_url_bytes = (size_t)cfg->max_url_bytes;
    srv->limits.max_body_bytes = (size_t)cfg->max_body_bytes;
    int rc = uv_tcp_init(loop, &srv->listener);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen, uv_strerror(rc));
        free(srv);
        return SL_EUNAVAIL;
    }
    srv->listener.data = srv;
    srv->open_handles = 1;
    rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, SL_LISTEN_BACKLOG, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen, uv_strerror(rc));
        srv->closing = true;
        uv_close((uv_handle_t *)&srv->listener, on_server_handle_closed);
        return SL_EUNAVAIL;
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &blen);
    srv->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    *out = srv;
    return SL_OK;
}

int sl_http_server_port(const struct sl_http_server *srv)
{
    return srv->port;
}

void sl_http_server_close(struct sl_http_server *srv)
{
    if (srv->closing)
        return;
    srv->closing = true;
    while (srv->conns)
        conn_close(srv->conns);
    uv_close((uv_handle_t *)&srv->listener, on_server_handle_closed);
}

/* ---- upgrades (WebSocket) ------------------------------------------------- */

struct sl_http_upgraded {
    struct conn c; /* never used as such: the handle is the connection */
};

int sl_http_ex_upgrade(struct sl_http_exchange *ex, const char *headers,
                       const struct sl_http_up_cbs *cbs, void *ud, struct sl_http_upgraded **out)
{
    struct conn *c = ex->conn;
    struct sl_buf head;
    sl_buf_init(&head, (size_t)c->srv->cfg->max_header_bytes + 4096);
    int rc = sl_buf_printf(&head, "HTTP/1.1 101 Switching Protocols\r\n%s\r\n", headers);
    if (rc != SL_OK) {
        sl_buf_free(&head);
        sl_http_ex_close(ex);
        return SL_ECLOSED;
    }
    c->in_ex_call = true;
    rc = send_bytes(c, sl_buf_ptr(&head), sl_buf_size(&head));
    c->in_ex_call = false;
    sl_buf_free(&head);
    if (rc != SL_OK)
        return rc; /* the connection is gone, and the exchange with it */
    /* The exchange is over; the connection now carries the other protocol.
     * No HTTP timer applies any more (the protocol has its own pings). */
    ex->ended = true;
    c->ex = NULL;
    exchange_free(ex);
    read_timer_set(c, RT_NONE);
    c->state = CONN_UPGRADED;
    c->up_read = cbs->on_read;
    c->up_close = cbs->on_close;
    c->up_drain = cbs->on_drain;
    c->up_drain_below = cbs->drain_below;
    c->up_ud = ud;
    *out = (struct sl_http_upgraded *)c;
    set_reading(c, true);
    /* Bytes that came behind the request belong to the new protocol. */
    if (sl_buf_size(&c->in) > 0) {
        struct sl_buf early = c->in;
        sl_buf_init(&c->in, early.max);
        c->up_read(ud, sl_buf_ptr(&early), sl_buf_size(&early));
        sl_buf_free(&early);
    }
    return SL_OK;
}

int sl_http_up_write(struct sl_http_upgraded *u, const char *p, size_t n)
{
    struct conn *c = (struct conn *)u;
    c->in_ex_call = true;
    int rc = send_bytes(c, p, n);
    c->in_ex_call = false;
    return rc;
}

size_t sl_http_up_pending(const struct sl_http_upgraded *u)
{
    return ((const struct conn *)u)->pending;
}

void sl_http_up_close(struct sl_http_upgraded *u)
{
    struct conn *c = (struct conn *)u;
    c->up_close = NULL; /* the caller knows */
    if (c->state == CONN_UPGRADED)
        conn_finish(c); /* FIN after what is queued */
}
