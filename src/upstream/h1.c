/* h1.c - sluice's own HTTP/1.1 upstream transport on libuv (see h1.h).
 * Owns: name resolution, once per client and again after a TTL or when
 * every address failed (numeric hosts skip it), connecting (each address
 * in turn), a pool of kept-alive connections closed after an idle timeout,
 * writing the request, reading the answer through the sans-I/O response
 * parser and chunked decoder into one read buffer shared by every
 * connection of the loop (a stream costs no buffer of its own between
 * reads), connect / first-byte / stall timeouts, the retry rule (see
 * may_send_again), and cancelling by closing the connection. Does not own:
 * what the body means.
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
struct h1_resolve;

/* The addresses still to try for a new connection. */
struct h1_addrs {
    size_t n, next;
    struct sockaddr_storage a[SL_LIMIT_UPSTREAM_ADDRS];
};

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
    /* The host's addresses, resolved once for every connection: a new
     * connection costs no lookup (nginx's resolver, valid=). */
    struct h1_addrs addrs;             /* n == 0: none yet */
    uint64_t addrs_due;                /* loop time from which they are resolved again */
    struct h1_resolve *resolve;        /* the resolution in flight, or NULL */
    struct h1_conn *waiting;           /* connections waiting for it (prev/next) */
    uint64_t resolves;                 /* resolutions started */
    char readbuf[SL_LIMIT_READ_CHUNK]; /* one loop, one read at a time */
};

enum conn_state {
    CONN_RESOLVING,  /* waiting for the host's addresses (or not started) */
    CONN_CONNECTING, /* connect() is in flight */
    CONN_ACTIVE,     /* connected, carrying conn->req */
    CONN_IDLE,       /* connected, in the pool, still read so a close is seen */
    CONN_CLOSING,    /* handles closing; freed when both have */
};

/* A resolution in flight; outlives a client freed meanwhile. */
struct h1_resolve {
    uv_getaddrinfo_t gai;
    struct sl_upstream_h1 *c; /* NULL once the client is gone */
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
    bool waiting;                /* on the client's list waiting for addresses */
    uv_timer_t timer;            /* connect, first byte, stall, or a deferred failure */
    int connect_err;             /* connect() failed at once: reported from the timer */
    int handles;                 /* poll and timer not closed yet */
    struct h1_conn *prev, *next; /* the idle list, or the list waiting for addresses */
    struct h1_addrs *addrs;      /* while connecting to a resolved name */
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
    bool idempotent; /* GET, HEAD, OPTIONS, TRACE: sending it again starts nothing */
    bool keep_alive;
    bool retried;
    bool fresh_addrs;                   /* resolved for this request: no second resolution */
    struct sl_http_head_scan head_scan; /* how far head has been searched */
};

static void conn_close(struct h1_conn *k);
static void conn_lost(struct h1_conn *k, ssize_t err);
static void attempt(struct sl_upstream_req *r, bool allow_idle);
static void conn_connect(struct h1_conn *k, const struct sockaddr *sa);
static void on_poll(uv_poll_t *p, int status, int events);
static void on_timer(uv_timer_t *t);
static void on_idle_timeout(uv_timer_t *t);
static void connect_failed(struct h1_conn *k, int err);
static void move_on(struct sl_upstream_req *r, struct h1_conn *k, struct h1_addrs *rest);

/* ---- connections -------------------------------------------------------- */

/* Takes k out of the list whose head is *head. */
static void list_unlink(struct h1_conn **head, struct h1_conn *k)
{
    if (k->prev)
        k->prev->next = k->next;
    else if (*head == k)
        *head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    k->prev = k->next = NULL;
}

static void list_push(struct h1_conn **head, struct h1_conn *k)
{
    k->prev = NULL;
    k->next = *head;
    if (*head)
        (*head)->prev = k;
    *head = k;
}

static void idle_unlink(struct h1_conn *k)
{
    list_unlink(&k->c->idle, k);
    k->c->nidle--;
}

static void waiting_unlink(struct h1_conn *k)
{
    if (!k->waiting)
        return;
    list_unlink(&k->c->waiting, k);
    k->waiting = false;
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
    waiting_unlink(k); /* the resolution goes on, for the next connection */
    k->state = CONN_CLOSING;
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
    /* Closed after the idle timeout, before the upstream's own keep-alive
     * timeout closes it (uvicorn's is 5 s): a server closing an idle
     * connection races with the next request sent on it. Pooled most
     * recently used first, so a burst's spare connections time out. */
    uv_timer_start(&k->timer, on_idle_timeout, (uint64_t)c->opts.idle_timeout_ms, 0);
    uv_unref((uv_handle_t *)&k->timer);
    poll_set(k, UV_READABLE);          /* a close by the upstream is seen */
    uv_unref((uv_handle_t *)&k->poll); /* an idle connection keeps no loop running */
    k->state = CONN_IDLE;
    k->reused = true;
    list_push(&c->idle, k);
    c->nidle++;
}

/* An idle connection's time is up. */
static void on_idle_timeout(uv_timer_t *t)
{
    struct h1_conn *k = t->data;
    if (k->state == CONN_IDLE)
        conn_close(k);
}

/* Takes k, idle, out of the pool for a request. */
static void idle_take(struct h1_conn *k)
{
    idle_unlink(k);
    uv_timer_stop(&k->timer);
    uv_ref((uv_handle_t *)&k->timer);
    uv_ref((uv_handle_t *)&k->poll);
}

/* True when the idle k still looks open: no close (FIN or reset) and no
 * stray bytes have arrived unread. The loop may not have seen them yet
 * (they came in the same turn as the request about to use k): one peek
 * here turns that race into a fresh connection, with nothing sent. */
static bool idle_alive(struct h1_conn *k)
{
    char b;
    ssize_t n;
    do
        n = recv(k->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
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
        if (!k->c->is_numeric && k->state == CONN_CONNECTING)
            k->c->addrs_due = 0; /* every address timed out: resolve again */
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
 * address, or the end of the request. When every cached address refused,
 * the host may have moved: the name is resolved again, and a request that
 * had only the cached addresses tries the new ones (nothing was sent). */
static void connect_failed(struct h1_conn *k, int err)
{
    struct sl_upstream_req *r = k->req;
    struct sl_upstream_h1 *c = k->c;
    if (k->addrs && k->addrs->next < k->addrs->n && err != ETIMEDOUT) {
        struct h1_addrs *rest = k->addrs;
        k->addrs = NULL;
        move_on(r, k, rest);
        return;
    }
    if (!c->is_numeric)
        c->addrs_due = 0;
    if (err == ETIMEDOUT) {
        req_end(r, SL_ETIMEDOUT, "connecting to the upstream timed out", false);
        return;
    }
    if (!c->is_numeric && !r->fresh_addrs) {
        move_on(r, k, NULL);
        return;
    }
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

/* Connects k to the client's addresses, each in turn (a copy: the list may
 * be resolved again meanwhile). Runs no callback of the owner. */
static void conn_connect_cached(struct h1_conn *k)
{
    struct h1_addrs *a = malloc(sizeof *a);
    if (a == NULL) {
        fail_later(k->req, SL_ENOMEM, "out of memory");
        return;
    }
    *a = k->c->addrs;
    a->next = 0;
    k->addrs = a;
    conn_connect(k, (const struct sockaddr *)&a->a[a->next++]);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *ai)
{
    struct h1_resolve *res = (struct h1_resolve *)g;
    struct sl_upstream_h1 *c = res->c;
    free(res);
    if (c == NULL) { /* the client was freed meanwhile */
        uv_freeaddrinfo(ai);
        return;
    }
    c->resolve = NULL;
    size_t n = 0;
    for (struct addrinfo *p = status == 0 ? ai : NULL; p && n < SL_LIMIT_UPSTREAM_ADDRS;
         p = p->ai_next) {
        if (p->ai_addrlen <= sizeof c->addrs.a[0])
            memcpy(&c->addrs.a[n++], p->ai_addr, p->ai_addrlen);
    }
    uv_freeaddrinfo(ai);
    /* A failed lookup keeps the last addresses, if any, for another TTL: a
     * resolver that is down does not take a reachable upstream with it. */
    if (n > 0)
        c->addrs.n = n;
    c->addrs_due = uv_now(c->loop) + (uint64_t)c->opts.resolve_ttl_ms;
    /* Neither branch runs an owner callback, so the list cannot change
     * under this loop but by the unlink here. */
    while (c->waiting) {
        struct h1_conn *k = c->waiting;
        waiting_unlink(k);
        if (c->addrs.n == 0)
            fail_later(k->req, SL_EUNAVAIL, "the upstream's host name does not resolve");
        else
            conn_connect_cached(k);
    }
}

/* Gets k the host's addresses: the cached ones while fresh, else it waits
 * for a resolution (one per client, however many connections wait). */
static void conn_resolve(struct h1_conn *k)
{
    struct sl_upstream_h1 *c = k->c;
    uint64_t now = uv_now(c->loop);
    if (c->addrs.n > 0 && now < c->addrs_due) {
        conn_connect_cached(k);
        return;
    }
    k->req->fresh_addrs = true;
    k->state = CONN_RESOLVING;
    if (c->resolve == NULL) {
        struct h1_resolve *res = calloc(1, sizeof *res);
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        if (res == NULL) {
            fail_later(k->req, SL_ENOMEM, "out of memory");
            return;
        }
        res->c = c;
        if (uv_getaddrinfo(c->loop, &res->gai, on_resolved, c->host, c->port, &hints) != 0) {
            free(res);
            if (c->addrs.n > 0) { /* the last addresses, rather than nothing */
                conn_connect_cached(k);
                return;
            }
            fail_later(k->req, SL_EUNAVAIL, "the upstream's host name does not resolve");
            return;
        }
        c->resolve = res;
        c->resolves++;
    }
    list_push(&c->waiting, k);
    k->waiting = true;
    arm(k);
}

/* Puts r on a connection: an idle one when allowed, else a new one. */
static void attempt(struct sl_upstream_req *r, bool allow_idle)
{
    struct sl_upstream_h1 *c = r->c;
    struct h1_conn *k = r->conn; /* set when move_on made it */
    while (k == NULL && allow_idle && c->idle) {
        struct h1_conn *idle = c->idle;
        if (!idle_alive(idle)) {
            conn_close(idle); /* closed or reset by the upstream: never written to */
            continue;
        }
        idle_take(idle);
        idle->req = r;
        r->conn = idle;
        conn_send(idle);
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
    conn_resolve(k);
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

/* The retry rule. A generation must never run twice because of a retry
 * the client did not see, so a request that failed on connection k goes
 * again, once and on a fresh connection, only when all of these hold:
 * - k was reused (kept alive from an earlier answer). A fresh connection
 *   has no stale excuse: the upstream took it and then failed, maybe with
 *   the generation started, and the client gets the error.
 * - No byte of a response came on k: after one, the upstream has acted.
 * - Nothing of the request was written (the send failed at once), or its
 *   method starts nothing (GET, HEAD, OPTIONS, TRACE).
 * So a POST written on a reused connection that then closed without a
 * byte is not sent again, though the usual cause is harmless (the
 * upstream's keep-alive timeout closed it as the request crossed): the
 * upstream may as well have read it and begun the generation before it
 * died or restarted, and nothing on the wire tells the two apart. The
 * client gets a 502 and decides. Go's http.Transport decides the same
 * (shouldRetryRequest: a reused connection, and nothing written or a
 * replayable method), and nginx passes a sent POST to no next upstream
 * without "proxy_next_upstream non_idempotent"; libcurl, the other
 * client, sends it again. The harmless cause is made rare instead: idle
 * connections close before the upstream's keep-alive timeout
 * (idle_timeout_ms), and one already closed is seen before it is used
 * (idle_alive). An Idempotency-Key header would change nothing: vLLM
 * does not honour it. */
static bool may_send_again(const struct sl_upstream_req *r, const struct h1_conn *k)
{
    if (r->retried || r->got_bytes || !k->reused || r->out == NULL)
        return false;
    return r->out_sent == 0 || r->idempotent;
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
    if (may_send_again(r, k)) {
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
    r->idempotent = r->head_request || strcmp(s->method, "GET") == 0 ||
                    strcmp(s->method, "OPTIONS") == 0 || strcmp(s->method, "TRACE") == 0;
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

uint64_t sl_upstream_h1_resolves(const struct sl_upstream_h1 *c)
{
    return c->resolves;
}

void sl_upstream_h1_free(struct sl_upstream_h1 *c)
{
    c->closing = true;
    if (c->resolve) {
        c->resolve->c = NULL;                          /* its callback frees it */
        (void)uv_cancel((uv_req_t *)&c->resolve->gai); /* a shutdown need not wait */
        c->resolve = NULL;
    }
    while (c->idle)
        conn_close(c->idle);
    if (c->nconns == 0)
        client_free_fields(c);
    /* else the last connection's close callback frees c */
}
