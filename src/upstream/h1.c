/* h1.c - sluice's own HTTP/1.1 upstream transport on libuv (see h1.h).
 * Owns: name resolution (numeric hosts skip it), connecting (each address
 * in turn), a pool of kept-alive connections, writing the request, reading
 * the answer through the sans-I/O response parser and chunked decoder into
 * one read buffer shared by every connection of the loop (a stream costs no
 * buffer of its own between reads), connect / first-byte / stall timeouts,
 * one retry when a reused connection turns out to have been closed, and
 * cancelling by closing the connection. Does not own: what the body means.
 * Sockets are driven with uv_poll and send()/recv() on the descriptor: a
 * token costs one recv(), where libuv's streams would read() through the
 * file layer. */
#include "upstream/h1.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/limits.h"
#include "http/parser.h"

struct h1_conn;

struct sl_upstream_h1 {
    struct sl_upstream_transport t; /* first: the transport is the client */
    uv_loop_t *loop;
    char *base;      /* the base URL without a trailing '/': the transport's name */
    char *host;      /* for the resolver: brackets of an IPv6 literal removed */
    char *authority; /* the Host header's value: host[:port] as the URL gave it */
    char *prefix;    /* the URL's path, without a trailing '/' ("" for none) */
    size_t prefix_len;
    char port[8];
    struct sockaddr_storage numeric; /* the address when host is a literal */
    bool is_numeric;
    struct sl_upstream_h1_opts opts;
    struct h1_conn *idle; /* kept-alive connections, most recently used first */
    size_t nidle;
    size_t nconns; /* connections whose handles are not closed yet */
    bool closing;
    char readbuf[SL_LIMIT_READ_CHUNK]; /* one loop, one read at a time */
};

enum conn_state {
    CONN_RESOLVING,  /* the host name is being resolved */
    CONN_CONNECTING, /* connect() is in flight */
    CONN_ACTIVE,     /* connected, carrying conn->req */
    CONN_IDLE,       /* connected, in the pool, still read so a close is seen */
    CONN_CLOSING,    /* handles closing; freed when both have */
};

/* The addresses still to try for a new connection. */
struct h1_addrs {
    size_t n, next;
    struct sockaddr_storage a[SL_LIMIT_UPSTREAM_ADDRS];
};

/* A resolution in flight; outlives a connection closed meanwhile. */
struct h1_resolve {
    uv_getaddrinfo_t gai;
    struct h1_conn *conn; /* NULL once the connection gave up waiting */
};

/* What a token touches comes right after the poll handle, whose tail
 * (the io watcher) libuv has just read: the same cache line. */
struct h1_conn {
    uv_poll_t poll; /* live once the socket exists (poll_on) */
    enum conn_state state;
    int fd;                      /* -1 until the socket exists; closed with poll */
    struct sl_upstream_req *req; /* the request on it, NULL when idle */
    struct sl_upstream_h1 *c;
    int poll_events;             /* what poll waits for now */
    bool writing;                /* part of the request waits for the socket */
    bool poll_on;                /* poll was initialised */
    bool reused;                 /* carried an earlier request */
    bool broken;                 /* the socket reported an error: never reused */
    uv_timer_t timer;            /* connect, first byte, stall, or a deferred failure */
    int connect_err;             /* connect() failed at once: reported from the timer */
    int handles;                 /* poll and timer not closed yet */
    struct h1_conn *prev, *next; /* the idle list */
    struct h1_addrs *addrs;      /* while connecting to a resolved name */
    struct h1_resolve *resolve;  /* while resolving */
    uint64_t connect_start;
};

struct sl_upstream_req {
    /* What a token touches first. */
    bool head_done;
    bool got_bytes; /* the current connection sent any response byte */
    bool cancelled; /* the owner is gone: no callback may run */
    bool in_cb;     /* an owner callback is on the stack */
    enum sl_http_body_kind kind;
    struct sl_upstream_h1 *c;
    uint64_t last_data_ms; /* loop time of the last body bytes */
    struct sl_upstream_cbs cbs;
    void *ud;
    uint64_t body_left; /* SL_HTTP_BODY_LENGTH */
    struct sl_http_chunked chunked;
    /* The rest. */
    struct h1_conn *conn;
    char *out; /* the request's bytes, kept until the first response byte (retry) */
    size_t out_len;
    size_t out_sent;    /* on the current connection */
    uint64_t t0;        /* loop time of the start */
    struct sl_buf head; /* a response head split across reads */
    int fail_err;       /* a failure to report from the timer (never inside start) */
    const char *fail_what;
    bool head_request;
    bool keep_alive;
    bool retried;
    struct sl_http_head_scan head_scan; /* how far head has been searched */
};

static void conn_close(struct h1_conn *k);
static void conn_lost(struct h1_conn *k, ssize_t err);
static void attempt(struct sl_upstream_req *r, bool allow_idle);
static void conn_connect(struct h1_conn *k, const struct sockaddr *sa);
static void on_poll(uv_poll_t *p, int status, int events);
static void on_timer(uv_timer_t *t);
static void connect_failed(struct h1_conn *k, int err);
static void move_on(struct sl_upstream_req *r, struct h1_conn *k, struct h1_addrs *rest);

/* ---- connections -------------------------------------------------------- */

static void idle_unlink(struct h1_conn *k)
{
    struct sl_upstream_h1 *c = k->c;
    if (k->prev)
        k->prev->next = k->next;
    else if (c->idle == k)
        c->idle = k->next;
    if (k->next)
        k->next->prev = k->prev;
    k->prev = k->next = NULL;
    c->nidle--;
}

static void client_free_fields(struct sl_upstream_h1 *c)
{
    free((char *)c->opts.auth_header);
    free(c->base);
    free(c->host);
    free(c->authority);
    free(c->prefix);
    free(c);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct h1_conn *k = h->data;
    if (h == (uv_handle_t *)&k->poll && k->fd >= 0) {
        close(k->fd); /* only now: libuv has let go of it */
        k->fd = -1;
    }
    if (--k->handles > 0)
        return;
    struct sl_upstream_h1 *c = k->c;
    free(k);
    c->nconns--;
    if (c->closing && c->nconns == 0)
        client_free_fields(c);
}

static struct h1_conn *conn_new(struct sl_upstream_h1 *c)
{
    struct h1_conn *k = calloc(1, sizeof *k);
    if (k == NULL)
        return NULL;
    uv_timer_init(c->loop, &k->timer);
    k->c = c;
    k->fd = -1;
    k->timer.data = k;
    k->handles = 1;
    c->nconns++;
    return k;
}

/* Makes poll wait for events (UV_READABLE, UV_WRITABLE), if not already. */
static void poll_set(struct h1_conn *k, int events)
{
    if (k->poll_events == events)
        return;
    k->poll_events = events;
    uv_poll_start(&k->poll, events, on_poll);
}

/* Closes the connection (the upstream sees it: vLLM aborts what it ran).
 * The request on it, if any, must have been detached or be ending. */
static void conn_close(struct h1_conn *k)
{
    if (k->state == CONN_CLOSING)
        return;
    if (k->state == CONN_IDLE)
        idle_unlink(k);
    k->state = CONN_CLOSING;
    if (k->resolve) {
        k->resolve->conn = NULL;                       /* its callback frees it */
        (void)uv_cancel((uv_req_t *)&k->resolve->gai); /* a shutdown need not wait */
        k->resolve = NULL;
    }
    free(k->addrs);
    k->addrs = NULL;
    k->req = NULL;
    if (k->poll_on) {
        uv_poll_stop(&k->poll);
        uv_close((uv_handle_t *)&k->poll, on_conn_handle_closed); /* closes fd */
    } else if (k->fd >= 0) {
        close(k->fd);
        k->fd = -1;
    }
    uv_close((uv_handle_t *)&k->timer, on_conn_handle_closed);
}

/* The request is over on this connection: keep the connection for the next
 * one when the answer left it clean, else close it. */
static void conn_release(struct h1_conn *k, bool reusable)
{
    struct sl_upstream_h1 *c = k->c;
    k->req = NULL;
    if (!reusable || k->writing || k->broken || c->closing ||
        (size_t)c->opts.max_idle_connections <= c->nidle) {
        conn_close(k);
        return;
    }
    uv_timer_stop(&k->timer);
    poll_set(k, UV_READABLE);          /* a close by the upstream is seen */
    uv_unref((uv_handle_t *)&k->poll); /* an idle connection keeps no loop running */
    k->state = CONN_IDLE;
    k->reused = true;
    k->prev = NULL;
    k->next = c->idle;
    if (c->idle)
        c->idle->prev = k;
    c->idle = k;
    c->nidle++;
}

/* ---- requests ----------------------------------------------------------- */

static void req_free(struct sl_upstream_req *r)
{
    sl_buf_free(&r->head);
    free(r->out);
    free(r);
}

/* Ends the request with err (SL_OK: a complete answer) and frees it.
 * reusable: the connection may carry another request. */
static void req_end(struct sl_upstream_req *r, int err, const char *what, bool reusable)
{
    struct h1_conn *k = r->conn;
    r->conn = NULL;
    if (k)
        conn_release(k, reusable && err == SL_OK);
    if (!r->cancelled && r->cbs.on_end) {
        r->cancelled = true; /* nothing more, and a cancel from on_end is a no-op */
        r->in_cb = true;
        r->cbs.on_end(r->ud, err, what);
    }
    req_free(r);
}

/* The owner cancelled from inside one of its callbacks: finish now that the
 * callback has returned. */
static void req_abandon(struct sl_upstream_req *r)
{
    if (r->conn)
        conn_close(r->conn);
    r->conn = NULL;
    req_free(r);
}

/* Reports a failure from the connection's timer, so that no callback runs
 * inside sl_upstream's start or cancel calls. */
static void fail_later(struct sl_upstream_req *r, int err, const char *what);

/* Which deadline a request faces next. */
enum h1_deadline {
    DEADLINE_CONNECT,    /* connect_timeout_ms from this connection's start */
    DEADLINE_FIRST_BYTE, /* first_byte_timeout_ms from the request's start */
    DEADLINE_STALL,      /* stall_timeout_ms from the last body bytes */
};

/* The loop time of the next deadline of the request on k, and which. */
static uint64_t deadline(const struct h1_conn *k, enum h1_deadline *which)
{
    const struct sl_upstream_req *r = k->req;
    const struct sl_upstream_h1_opts *o = &k->c->opts;
    if (r->head_done) {
        *which = DEADLINE_STALL;
        return r->last_data_ms + (uint64_t)o->stall_timeout_ms;
    }
    *which = DEADLINE_FIRST_BYTE;
    uint64_t due = r->t0 + (uint64_t)o->first_byte_timeout_ms;
    if (k->state == CONN_RESOLVING || k->state == CONN_CONNECTING) {
        uint64_t conn_due = k->connect_start + (uint64_t)o->connect_timeout_ms;
        if (conn_due <= due) {
            *which = DEADLINE_CONNECT;
            due = conn_due;
        }
    }
    return due;
}

/* Arms the connection's timer for the request's next deadline. The stall
 * deadline moves with every read, but the timer is not restarted per read
 * (a heap operation per token): it looks again when it fires. */
static void arm(struct h1_conn *k)
{
    enum h1_deadline which;
    uint64_t due = deadline(k, &which);
    uint64_t now = uv_now(k->c->loop);
    uv_timer_start(&k->timer, on_timer, due > now ? due - now : 0, 0);
}

static void on_timer(uv_timer_t *t)
{
    struct h1_conn *k = t->data;
    struct sl_upstream_req *r = k->req;
    if (r == NULL)
        return;
    if (r->fail_err != SL_OK) {
        req_end(r, r->fail_err, r->fail_what, false);
        return;
    }
    if (k->connect_err) {
        connect_failed(k, k->connect_err);
        return;
    }
    enum h1_deadline which;
    if (deadline(k, &which) > uv_now(k->c->loop)) {
        arm(k);
        return;
    }
    switch (which) {
    case DEADLINE_STALL:
        req_end(r, SL_ETIMEDOUT, "the upstream stalled between tokens", false);
        return;
    case DEADLINE_CONNECT:
        if (k->addrs && k->addrs->next < k->addrs->n) {
            /* This address does not answer: the next one (the first byte
             * deadline still bounds the whole). */
            struct h1_addrs *rest = k->addrs;
            k->addrs = NULL;
            move_on(r, k, rest);
            return;
        }
        req_end(r, SL_ETIMEDOUT, "connecting to the upstream timed out", false);
        return;
    case DEADLINE_FIRST_BYTE:
        req_end(r, SL_ETIMEDOUT, "the upstream sent no response in time", false);
        return;
    }
}

static void fail_later(struct sl_upstream_req *r, int err, const char *what)
{
    r->fail_err = err;
    r->fail_what = what;
    uv_timer_start(&r->conn->timer, on_timer, 0, 0);
}

/* ---- writing the request ------------------------------------------------ */

/* Writes what the socket takes of the request; poll waits for room for
 * the rest. A broken connection shows on the read side. */
static void write_some(struct h1_conn *k)
{
    struct sl_upstream_req *r = k->req;
    while (r->out_sent < r->out_len) {
        ssize_t n = send(k->fd, r->out + r->out_sent, r->out_len - r->out_sent,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            r->out_sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            k->writing = true;
            poll_set(k, UV_READABLE | UV_WRITABLE);
            return;
        }
        break; /* EPIPE, ECONNRESET: the read side reports it */
    }
    k->writing = false;
    poll_set(k, UV_READABLE);
}

/* Sends the request on the connected k. */
static void conn_send(struct h1_conn *k)
{
    struct sl_upstream_req *r = k->req;
    k->state = CONN_ACTIVE;
    r->got_bytes = false;
    r->out_sent = 0;
    arm(k);
    write_some(k);
}

/* ---- connecting --------------------------------------------------------- */

/* Moves the request to a fresh connection after k failed before any
 * response byte: the next address, or (once) a retry of a stale reused
 * connection. */
static void move_on(struct sl_upstream_req *r, struct h1_conn *k, struct h1_addrs *rest)
{
    r->conn = NULL;
    conn_close(k);
    struct h1_conn *n = conn_new(r->c);
    if (n == NULL) {
        free(rest);
        /* No connection to carry a timer: report at once (never inside
         * start: move_on runs from loop callbacks only). */
        req_end(r, SL_ENOMEM, "out of memory", false);
        return;
    }
    n->req = r;
    r->conn = n;
    n->connect_start = uv_now(r->c->loop);
    if (rest) {
        n->addrs = rest;
        conn_connect(n, (const struct sockaddr *)&rest->a[rest->next++]);
    } else {
        attempt(r, false);
    }
}

/* Connecting to an address failed (err: a positive errno): the next
 * address, or the end of the request. */
static void connect_failed(struct h1_conn *k, int err)
{
    struct sl_upstream_req *r = k->req;
    if (k->addrs && k->addrs->next < k->addrs->n && err != ETIMEDOUT) {
        struct h1_addrs *rest = k->addrs;
        k->addrs = NULL;
        move_on(r, k, rest);
        return;
    }
    if (err == ETIMEDOUT)
        req_end(r, SL_ETIMEDOUT, "connecting to the upstream timed out", false);
    else
        req_end(r, SL_EUNAVAIL, "the upstream refused the connection", false);
}

static void connected(struct h1_conn *k)
{
    free(k->addrs);
    k->addrs = NULL;
    conn_send(k);
}

/* Starts connecting k to sa. Failures are reported from the loop, never
 * from inside this call. */
static void conn_connect(struct h1_conn *k, const struct sockaddr *sa)
{
    k->state = CONN_CONNECTING;
    arm(k);
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fail_later(k->req, SL_EUNAVAIL, "cannot make a socket for the upstream");
        return;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (uv_poll_init_socket(k->c->loop, &k->poll, fd) != 0) {
        close(fd);
        fail_later(k->req, SL_EUNAVAIL, "cannot make a socket for the upstream");
        return;
    }
    k->fd = fd;
    k->poll.data = k;
    k->poll_on = true;
    k->handles++;
    socklen_t len =
        sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    /* EINTR: the connection goes on in the background, as EINPROGRESS. */
    int rc = connect(fd, sa, len);
    if (rc == 0 || errno == EINPROGRESS || errno == EINTR) {
        /* Writable once connected (or failed); a connection made at once
         * is taken up from the loop as well. */
        poll_set(k, UV_WRITABLE);
        return;
    }
    k->connect_err = errno;
    uv_timer_start(&k->timer, on_timer, 0, 0);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *ai)
{
    struct h1_resolve *res = (struct h1_resolve *)g;
    struct h1_conn *k = res->conn;
    free(res);
    if (k == NULL) { /* the connection was closed meanwhile */
        uv_freeaddrinfo(ai);
        return;
    }
    k->resolve = NULL;
    struct h1_addrs *a = calloc(1, sizeof *a);
    if (a != NULL && status == 0) {
        for (struct addrinfo *p = ai; p && a->n < SL_LIMIT_UPSTREAM_ADDRS; p = p->ai_next) {
            if (p->ai_addrlen <= sizeof a->a[0])
                memcpy(&a->a[a->n++], p->ai_addr, p->ai_addrlen);
        }
    }
    uv_freeaddrinfo(ai);
    if (a == NULL || a->n == 0) {
        free(a);
        req_end(k->req, SL_EUNAVAIL, "the upstream's host name does not resolve", false);
        return;
    }
    k->addrs = a;
    conn_connect(k, (const struct sockaddr *)&a->a[a->next++]);
}

/* Puts r on a connection: an idle one when allowed, else a new one. */
static void attempt(struct sl_upstream_req *r, bool allow_idle)
{
    struct sl_upstream_h1 *c = r->c;
    struct h1_conn *k = r->conn; /* set when move_on made it */
    if (k == NULL && allow_idle && c->idle) {
        k = c->idle;
        idle_unlink(k);
        uv_ref((uv_handle_t *)&k->poll);
        k->req = r;
        r->conn = k;
        conn_send(k);
        return;
    }
    if (k == NULL) {
        k = conn_new(c);
        if (k == NULL)
            return; /* the caller checks r->conn */
        k->req = r;
        r->conn = k;
        k->connect_start = uv_now(c->loop);
    }
    if (c->is_numeric) {
        conn_connect(k, (const struct sockaddr *)&c->numeric);
        return;
    }
    struct h1_resolve *res = calloc(1, sizeof *res);
    if (res == NULL) {
        fail_later(r, SL_ENOMEM, "out of memory");
        return;
    }
    res->conn = k;
    k->state = CONN_RESOLVING;
    k->resolve = res;
    arm(k);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    if (uv_getaddrinfo(c->loop, &res->gai, on_resolved, c->host, c->port, &hints) != 0) {
        k->resolve = NULL;
        free(res);
        fail_later(r, SL_EUNAVAIL, "the upstream's host name does not resolve");
    }
}

/* ---- reading the answer ------------------------------------------------- */

/* Hands body bytes to the owner. False when the request is over (the owner
 * stopped it, or cancelled it from the callback: r is freed then). */
static bool deliver(struct sl_upstream_req *r, const char *p, size_t n)
{
    if (n == 0)
        return true;
    r->in_cb = true;
    bool go = r->cbs.on_data(r->ud, p, n);
    r->in_cb = false;
    if (!go || r->cancelled) {
        r->cancelled = true;
        req_abandon(r);
        return false;
    }
    return true;
}

/* Body bytes from p[0..n). False when the request ended (r is freed). */
static bool body_bytes(struct sl_upstream_req *r, const char *p, size_t n)
{
    r->last_data_ms = uv_now(r->c->loop);
    switch (r->kind) {
    case SL_HTTP_BODY_CLOSE:
        return deliver(r, p, n);
    case SL_HTTP_BODY_LENGTH: {
        size_t take = n < r->body_left ? n : (size_t)r->body_left;
        if (!deliver(r, p, take))
            return false;
        r->body_left -= take;
        if (r->body_left == 0) {
            req_end(r, SL_OK, "complete", r->keep_alive && take == n);
            return false;
        }
        return true;
    }
    case SL_HTTP_BODY_CHUNKED:
        while (n > 0) {
            size_t used;
            const char *d;
            size_t dn;
            int rc = sl_http_chunked_next(&r->chunked, p, n, &used, &d, &dn);
            if (!deliver(r, d, dn))
                return false;
            p += used;
            n -= used;
            if (rc == SL_OK) {
                req_end(r, SL_OK, "complete", r->keep_alive && n == 0);
                return false;
            }
            if (rc != SL_EAGAIN) {
                req_end(r, SL_EPROTO, "the upstream's chunked framing is broken", false);
                return false;
            }
        }
        return true;
    case SL_HTTP_BODY_NONE:
        break;
    }
    return true;
}

/* The head is whole: tell the owner, then go on with what follows it. */
static bool head_done(struct sl_upstream_req *r, const struct sl_http_response *res,
                      const char *rest, size_t rest_len)
{
    struct sl_upstream_header hdrs[SL_LIMIT_UPSTREAM_HEADERS];
    for (size_t i = 0; i < res->num_headers; i++)
        hdrs[i] = (struct sl_upstream_header){res->headers[i].name, res->headers[i].name_len,
                                              res->headers[i].value, res->headers[i].value_len};
    r->head_done = true;
    r->kind = sl_http_response_body(res, r->head_request);
    r->keep_alive = res->keep_alive; /* false for a body delimited by the close */
    if (r->out_sent < r->out_len) {
        /* Answered before the request was all sent (an early error): send
         * no more; the connection cannot carry another request. */
        r->keep_alive = false;
        r->conn->writing = false;
        poll_set(r->conn, UV_READABLE);
    }
    r->body_left = res->content_length > 0 ? (uint64_t)res->content_length : 0;
    sl_http_chunked_init(&r->chunked, UINT64_MAX);
    free(r->out); /* answered: no retry from here */
    r->out = NULL;
    r->last_data_ms = uv_now(r->c->loop);
    arm(r->conn);
    r->in_cb = true;
    r->cbs.on_head(r->ud, res->status, hdrs, res->num_headers);
    r->in_cb = false;
    if (r->cancelled) {
        req_abandon(r);
        return false;
    }
    if (r->kind == SL_HTTP_BODY_NONE || (r->kind == SL_HTTP_BODY_LENGTH && r->body_left == 0)) {
        req_end(r, SL_OK, "complete", r->keep_alive && rest_len == 0);
        return false;
    }
    return body_bytes(r, rest, rest_len);
}

/* Parses the heads in p[0..n): interim answers (100 Continue, 103 Early
 * Hints) are skipped, an incomplete head is kept in r->head for the next
 * read. False when the request ended (r is freed). */
static bool parse_heads(struct sl_upstream_req *r, const char *p, size_t n)
{
    static const struct sl_http_limits lim = {
        .max_header_bytes = SL_LIMIT_UPSTREAM_HEAD_BYTES,
        .max_headers = SL_LIMIT_UPSTREAM_HEADERS,
    };
    for (;;) {
        struct sl_http_response res;
        struct sl_http_header hh[SL_LIMIT_UPSTREAM_HEADERS];
        size_t used;
        int rc = sl_http_parse_response(p, n, &lim, &res, hh, SL_LIMIT_UPSTREAM_HEADERS, &used,
                                        &r->head_scan);
        if (rc != SL_EAGAIN)
            r->head_scan = (struct sl_http_head_scan){0}; /* a next head starts afresh */
        if (rc == SL_EAGAIN) {
            if (sl_buf_append(&r->head, p, n) != SL_OK) {
                req_end(r, SL_EPROTO, "the upstream's response head is too large", false);
                return false;
            }
            return true;
        }
        if (rc != SL_OK) {
            req_end(r, SL_EPROTO, "the upstream does not speak HTTP", false);
            return false;
        }
        if (res.status == 101) {
            req_end(r, SL_EPROTO, "the upstream switched protocols", false);
            return false;
        }
        if (res.status >= 200)
            return head_done(r, &res, p + used, n - used);
        p += used;
        n -= used;
    }
}

/* Head bytes, where they lie when the head came in one read. A head split
 * across reads is parsed from the bytes gathered so far, taken out of
 * r->head so that they outlive on_head. False when the request ended. */
static bool head_bytes(struct sl_upstream_req *r, const char *p, size_t n)
{
    if (sl_buf_size(&r->head) == 0)
        return parse_heads(r, p, n);
    if (sl_buf_append(&r->head, p, n) != SL_OK) {
        req_end(r, SL_EPROTO, "the upstream's response head is too large", false);
        return false;
    }
    struct sl_buf held = r->head;
    sl_buf_init(&r->head, SL_LIMIT_UPSTREAM_HEAD_GATHER);
    bool go = parse_heads(r, sl_buf_ptr(&held), sl_buf_size(&held));
    sl_buf_free(&held);
    return go;
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct h1_conn *k = p->data;
    if (k->state == CONN_CLOSING)
        return;
    if (k->state == CONN_CONNECTING) {
        /* SO_ERROR says why, also when libuv reports only an error. */
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err == 0 && status < 0)
            err = -status;
        if (err == 0 && !(events & UV_WRITABLE))
            return; /* still connecting */
        if (err != 0) {
            connect_failed(k, err);
            return;
        }
        connected(k);
        return;
    }
    if (status < 0) {
        /* An error (a reset, say) reported without readability, and libuv
         * has stopped the handle: what the upstream sent before it is
         * still queued, and recv() gives it first, then the error. */
        k->broken = true;
        k->poll_events = 0;
        events = UV_READABLE;
    }
    if ((events & UV_WRITABLE) && k->writing && k->req) {
        write_some(k);
        if (k->state == CONN_CLOSING)
            return;
    }
    if (!(events & UV_READABLE))
        return;
    char *buf = k->c->readbuf;
    for (int i = 0; i < SL_LIMIT_UPSTREAM_READS_PER_EVENT; i++) {
        ssize_t n = recv(k->fd, buf, sizeof k->c->readbuf, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_lost(k, n == 0 ? UV_EOF : -errno);
            return;
        }
        struct sl_upstream_req *r = k->req;
        if (r == NULL) { /* bytes nobody asked for: this connection is done */
            conn_close(k);
            return;
        }
        r->got_bytes = true;
        if (r->head_done)
            (void)body_bytes(r, buf, (size_t)n);
        else
            (void)head_bytes(r, buf, (size_t)n);
        /* A short read took what there was; the request may also have
         * ended, and the connection with it or gone idle. */
        if ((size_t)n < sizeof k->c->readbuf || k->state != CONN_ACTIVE || k->req != r)
            return;
    }
}

/* The upstream closed the connection, or it broke (err: UV_EOF or another
 * libuv error). */
static void conn_lost(struct h1_conn *k, ssize_t err)
{
    struct sl_upstream_req *r = k->req;
    if (r == NULL) {
        conn_close(k);
        return;
    }
    if (!r->got_bytes && k->reused && !r->retried && r->out) {
        /* A kept-alive connection the upstream had closed as we sent:
         * nothing was answered, so send it again on a new connection. A
         * POST may then reach the upstream twice if it had read it and died
         * before answering; curl and nginx retry the same way, and a server
         * closes an idle connection only between requests. */
        r->retried = true;
        move_on(r, k, NULL);
        return;
    }
    if (!r->head_done) {
        req_end(r, SL_EPROTO,
                r->got_bytes || sl_buf_size(&r->head) ? "the upstream does not speak HTTP"
                                                      : "the upstream closed the connection "
                                                        "without a response",
                false);
        return;
    }
    if (r->kind == SL_HTTP_BODY_CLOSE && err == UV_EOF) {
        req_end(r, SL_OK, "complete", false);
        return;
    }
    req_end(r, SL_ECLOSED, "the upstream closed the connection mid-answer", false);
}

/* ---- the transport ------------------------------------------------------ */

static bool has_body(const char *method, size_t body_len)
{
    return body_len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
           strcmp(method, "PATCH") == 0;
}

static int build_request(struct sl_upstream_h1 *c, const struct sl_upstream_send *s,
                         struct sl_upstream_req *r)
{
    struct sl_buf b;
    /* No ceiling of its own: the server's bounds on the client's request
     * already bound every part. */
    sl_buf_init(&b, SIZE_MAX / 2);
    int rc = sl_buf_reserve(&b, 256 + s->path_len + s->body_len);
    if (rc == SL_OK)
        rc = sl_buf_printf(&b, "%s %s", s->method, c->prefix);
    if (rc == SL_OK)
        rc = sl_buf_append(&b, s->path, s->path_len);
    if (rc == SL_OK)
        rc = sl_buf_printf(&b, " HTTP/1.1\r\nHost: %s\r\n", c->authority);
    for (size_t i = 0; i < s->nheaders && rc == SL_OK; i++) {
        rc = sl_buf_puts(&b, s->headers[i]);
        if (rc == SL_OK)
            rc = sl_buf_append(&b, "\r\n", 2);
    }
    if (rc == SL_OK && c->opts.auth_header)
        rc = sl_buf_printf(&b, "%s\r\n", c->opts.auth_header);
    if (rc == SL_OK && has_body(s->method, s->body_len)) {
        rc = sl_buf_append(&b, "Content-Length: ", 16);
        if (rc == SL_OK)
            rc = sl_buf_put_u64(&b, s->body_len);
        if (rc == SL_OK)
            rc = sl_buf_append(&b, "\r\n", 2);
    }
    if (rc == SL_OK)
        rc = sl_buf_append(&b, "\r\n", 2);
    if (rc == SL_OK)
        rc = sl_buf_append(&b, s->body, s->body_len);
    if (rc != SL_OK) {
        sl_buf_free(&b);
        return rc;
    }
    r->out = sl_buf_take(&b, &r->out_len);
    return SL_OK;
}

static int h1_start(struct sl_upstream_transport *t, const struct sl_upstream_send *s,
                    const struct sl_upstream_cbs *cbs, void *ud, struct sl_upstream_req **out)
{
    struct sl_upstream_h1 *c = (struct sl_upstream_h1 *)t;
    struct sl_upstream_req *r = calloc(1, sizeof *r);
    if (r == NULL)
        return SL_ENOMEM;
    r->c = c;
    r->cbs = *cbs;
    r->ud = ud;
    r->t0 = uv_now(c->loop);
    r->head_request = strcmp(s->method, "HEAD") == 0;
    sl_buf_init(&r->head, SL_LIMIT_UPSTREAM_HEAD_GATHER);
    if (build_request(c, s, r) != SL_OK) {
        req_free(r);
        return SL_ENOMEM;
    }
    attempt(r, true);
    if (r->conn == NULL) {
        req_free(r);
        return SL_ENOMEM;
    }
    *out = r;
    return SL_OK;
}

static void h1_cancel(struct sl_upstream_req *r)
{
    if (r->cancelled)
        return; /* already ending */
    r->cancelled = true;
    if (r->in_cb)
        return;     /* finished when the callback returns */
    req_abandon(r); /* the connection closes: the upstream sees the abort */
}

/* ---- the client --------------------------------------------------------- */

bool sl_upstream_h1_handles(const char *base_url)
{
    return strncasecmp(base_url, "http://", 7) == 0;
}

/* Splits "http://host[:port][/prefix]" into c's fields. */
static int parse_base(struct sl_upstream_h1 *c, const char *url)
{
    const char *p = url + 7;
    const char *slash = strchr(p, '/');
    size_t alen = slash ? (size_t)(slash - p) : strlen(p);
    if (alen == 0 || memchr(p, '@', alen) || memchr(p, '?', alen) || memchr(p, '#', alen))
        return SL_EINVAL;
    c->authority = strndup(p, alen);
    const char *host = p, *port = NULL;
    size_t hlen;
    if (p[0] == '[') {
        const char *rb = memchr(p, ']', alen);
        if (rb == NULL)
            return SL_EINVAL;
        host = p + 1;
        hlen = (size_t)(rb - host);
        if (rb + 1 < p + alen) {
            if (rb[1] != ':')
                return SL_EINVAL;
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(p, ':', alen);
        hlen = colon ? (size_t)(colon - p) : alen;
        if (colon)
            port = colon + 1;
    }
    if (hlen == 0)
        return SL_EINVAL;
    size_t plen = port ? (size_t)(p + alen - port) : 0;
    if (port && (plen == 0 || plen > 5 || strspn(port, "0123456789") < plen))
        return SL_EINVAL;
    long pn = port ? strtol(port, NULL, 10) : 80;
    if (pn < 1 || pn > 65535)
        return SL_EINVAL;
    snprintf(c->port, sizeof c->port, "%ld", pn);
    c->host = strndup(host, hlen);
    const char *path = slash ? slash : "";
    size_t path_len = strlen(path);
    while (path_len > 0 && path[path_len - 1] == '/')
        path_len--;
    c->prefix = strndup(path, path_len);
    c->prefix_len = path_len;
    if (c->authority == NULL || c->host == NULL || c->prefix == NULL)
        return SL_ENOMEM;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&c->numeric;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&c->numeric;
    if (uv_ip4_addr(c->host, (int)pn, v4) == 0)
        c->is_numeric = true;
    else if (uv_ip6_addr(c->host, (int)pn, v6) == 0)
        c->is_numeric = true;
    return SL_OK;
}

int sl_upstream_h1_new(uv_loop_t *loop, const char *base_url,
                       const struct sl_upstream_h1_opts *opts, struct sl_upstream_h1 **out)
{
    if (!sl_upstream_h1_handles(base_url))
        return SL_EINVAL;
    struct sl_upstream_h1 *c = calloc(1, sizeof *c);
    if (c == NULL)
        return SL_ENOMEM;
    c->loop = loop;
    c->opts = *opts;
    c->opts.auth_header = NULL;
    size_t n = strlen(base_url);
    while (n > 0 && base_url[n - 1] == '/')
        n--;
    c->base = strndup(base_url, n);
    if (opts->auth_header)
        c->opts.auth_header = strdup(opts->auth_header);
    if (c->base == NULL || (opts->auth_header && c->opts.auth_header == NULL)) {
        client_free_fields(c);
        return SL_ENOMEM;
    }
    int rc = parse_base(c, c->base);
    if (rc != SL_OK) {
        client_free_fields(c);
        return rc;
    }
    c->t.name = c->base;
    c->t.sets_auth = opts->auth_header != NULL;
    c->t.start = h1_start;
    c->t.cancel = h1_cancel;
    *out = c;
    return SL_OK;
}

struct sl_upstream_transport *sl_upstream_h1_transport(struct sl_upstream_h1 *c)
{
    return &c->t;
}

void sl_upstream_h1_free(struct sl_upstream_h1 *c)
{
    c->closing = true;
    while (c->idle)
        conn_close(c->idle);
    if (c->nconns == 0)
        client_free_fields(c);
    /* else the last connection's close callback frees c */
}
