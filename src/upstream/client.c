/* client.c - the HTTP upstream transport: libcurl's multi-socket interface
 * driven by the libuv loop (no thread per request, nothing blocks the loop).
 * Owns: curl's socket and timer callbacks, one easy handle per request,
 * header parsing, connect / first-byte / stall timeouts, and cancelling by
 * closing the connection. Does not own: what the body means. */
#include "upstream/client.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Response header bytes kept per request before on_head. */
#define SL_UPSTREAM_HEAD_BYTES (64 * 1024)
/* Response headers passed to on_head. */
#define SL_UPSTREAM_MAX_HEADERS 100

struct sl_upstream_client {
    struct sl_upstream_transport t; /* first: the transport is the client */
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    char *base; /* base URL without a trailing '/' */
    struct sl_upstream_client_opts opts;
    int in_curl;                    /* inside a curl call: removing handles must wait */
    struct sl_upstream_req *doomed; /* cancelled inside curl, freed after it */
    bool closing;
};

struct poll_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    struct sl_upstream_client *c;
};

struct sl_upstream_req {
    struct sl_upstream_client *c;
    CURL *easy;
    struct curl_slist *headers;
    char *body; /* curl reads it in place: kept until the end */
    struct sl_upstream_cbs cbs;
    void *ud;
    uv_timer_t timer; /* first byte, then stall */
    struct sl_buf head;
    int status;
    bool head_done;
    bool cancelled; /* no more callbacks; removed when curl lets go */
    bool timed_out;
    const char *timeout_what;
    uint64_t last_data_ms; /* loop time of the last body bytes */
    struct sl_upstream_req *next_doomed;
};

static void check_multi_info(struct sl_upstream_client *c);
static void req_free(struct sl_upstream_req *r);

/* Runs curl, then frees what was cancelled while curl was on the stack. */
static void multi_action(struct sl_upstream_client *c, curl_socket_t fd, int flags)
{
    int running;
    c->in_curl++;
    curl_multi_socket_action(c->multi, fd, flags, &running);
    c->in_curl--;
    if (c->in_curl == 0) {
        while (c->doomed) {
            struct sl_upstream_req *r = c->doomed;
            c->doomed = r->next_doomed;
            req_free(r);
        }
    }
    check_multi_info(c);
}

/* ---- request lifetime ---------------------------------------------------- */

static void on_req_timer_closed(uv_handle_t *h)
{
    struct sl_upstream_req *r = h->data;
    sl_buf_free(&r->head);
    free(r->body);
    free(r);
}

static void req_free(struct sl_upstream_req *r)
{
    if (r->easy) {
        curl_multi_remove_handle(r->c->multi, r->easy);
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
    }
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    uv_close((uv_handle_t *)&r->timer, on_req_timer_closed);
}

static void req_end(struct sl_upstream_req *r, int err, const char *what)
{
    bool tell = !r->cancelled;
    r->cancelled = true;
    uv_timer_stop(&r->timer);
    if (tell && r->cbs.on_end)
        r->cbs.on_end(r->ud, err, what);
    req_free(r);
}

static void on_req_timer(uv_timer_t *t)
{
    struct sl_upstream_req *r = t->data;
    if (r->head_done) {
        /* The stall timer is not restarted per read (that costs a heap
         * operation per token); it checks the last read when it fires. */
        uint64_t now = uv_now(r->c->loop);
        uint64_t due = r->last_data_ms + (uint64_t)r->c->opts.stall_timeout_ms;
        if (due > now) {
            uv_timer_start(&r->timer, on_req_timer, due - now, 0);
            return;
        }
    }
    r->timed_out = true;
    r->timeout_what = r->head_done ? "the upstream stalled between tokens"
                                   : "the upstream sent no response in time";
    req_end(r, SL_ETIMEDOUT, r->timeout_what);
}

static void arm(struct sl_upstream_req *r, int64_t ms)
{
    if (ms > 0)
        uv_timer_start(&r->timer, on_req_timer, (uint64_t)ms, 0);
}

/* ---- curl callbacks ------------------------------------------------------ */

static void parse_head(struct sl_upstream_req *r)
{
    struct sl_upstream_header hdrs[SL_UPSTREAM_MAX_HEADERS];
    size_t n = 0;
    const char *p = sl_buf_ptr(&r->head);
    const char *end = p + sl_buf_size(&r->head);
    /* First line: HTTP/1.1 200 OK */
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL)
        return;
    for (p = eol + 1; p < end && n < SL_UPSTREAM_MAX_HEADERS; p = eol + 1) {
        eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            break;
        const char *le = eol;
        if (le > p && le[-1] == '\r')
            le--;
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon == NULL)
            continue;
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        const char *ve = le;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        hdrs[n++] = (struct sl_upstream_header){p, (size_t)(colon - p), v, (size_t)(ve - v)};
    }
    r->cbs.on_head(r->ud, r->status, hdrs, n);
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct sl_upstream_req *r = ud;
    size_t n = size * nmemb;
    if (r->cancelled)
        return 0;
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a new status line (after 1xx too) */
        sl_buf_reset(&r->head);
        const char *sp = memchr(p, ' ', n);
        r->status = sp && (size_t)(sp - p) + 4 <= n ? atoi(sp + 1) : 0;
    }
    if (sl_buf_append(&r->head, p, n) != SL_OK)
        return 0; /* too large: curl ends the transfer with an error */
    bool blank = (n == 2 && p[0] == '\r') || (n == 1 && p[0] == '\n');
    if (blank && r->status >= 200 && !r->head_done) {
        r->head_done = true;
        r->last_data_ms = uv_now(r->c->loop);
        arm(r, r->c->opts.stall_timeout_ms);
        parse_head(r);
    }
    return n;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    struct sl_upstream_req *r = ud;
    size_t n = size * nmemb;
    if (r->cancelled)
        return 0;
    r->last_data_ms = uv_now(r->c->loop);
    if (!r->cbs.on_data(r->ud, p, n)) {
        r->cancelled = true;
        return 0;
    }
    return r->cancelled ? 0 : n;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct poll_ctx *pc = h->data;
    struct sl_upstream_client *c = pc->c;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    multi_action(c, pc->fd, flags);
}

static void on_poll_closed(uv_handle_t *h)
{
    free(h->data);
}

static int socket_cb(CURL *easy, curl_socket_t s, int action, void *userp, void *socketp)
{
    (void)easy;
    struct sl_upstream_client *c = userp;
    struct poll_ctx *pc = socketp;
    if (action == CURL_POLL_REMOVE) {
        if (pc) {
            uv_poll_stop(&pc->poll);
            curl_multi_assign(c->multi, s, NULL);
            uv_close((uv_handle_t *)&pc->poll, on_poll_closed);
        }
        return 0;
    }
    if (pc == NULL) {
        pc = calloc(1, sizeof *pc);
        if (pc == NULL)
            return -1;
        pc->fd = s;
        pc->c = c;
        if (uv_poll_init_socket(c->loop, &pc->poll, s) != 0) {
            free(pc);
            return -1;
        }
        pc->poll.data = pc;
        curl_multi_assign(c->multi, s, pc);
    }
    int events = 0;
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    uv_poll_start(&pc->poll, events, on_poll);
    return 0;
}

static void on_multi_timer(uv_timer_t *t)
{
    multi_action(t->data, CURL_SOCKET_TIMEOUT, 0);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct sl_upstream_client *c = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else /* never socket_action from inside curl: 0 becomes 1 ms */
        uv_timer_start(&c->timer, on_multi_timer, timeout_ms == 0 ? 1 : (uint64_t)timeout_ms, 0);
    return 0;
}

static int map_curl_error(CURLcode rc, const char **what)
{
    switch (rc) {
    case CURLE_OK:
        *what = "complete";
        return SL_OK;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        *what = "the upstream refused the connection";
        return SL_EUNAVAIL;
    case CURLE_OPERATION_TIMEDOUT:
        *what = "connecting to the upstream timed out";
        return SL_ETIMEDOUT;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_CONTENT_ENCODING:
        *what = "the upstream does not speak HTTP";
        return SL_EPROTO;
    case CURLE_GOT_NOTHING:
        *what = "the upstream closed the connection without a response";
        return SL_EPROTO;
    default:
        *what = "the upstream closed the connection mid-answer";
        return SL_ECLOSED;
    }
}

static void check_multi_info(struct sl_upstream_client *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct sl_upstream_req *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode rc = msg->data.result;
        const char *what;
        int err = map_curl_error(rc, &what);
        if (err == SL_ETIMEDOUT && r->head_done)
            what = "the upstream timed out";
        if (err == SL_OK && !r->head_done) {
            err = SL_EPROTO;
            what = "the upstream sent no response";
        }
        req_end(r, err, what); /* removes the handle: msg is invalid after */
    }
}

/* ---- the transport ------------------------------------------------------- */

static int client_start(struct sl_upstream_transport *t, const struct sl_upstream_send *s,
                        const struct sl_upstream_cbs *cbs, void *ud, struct sl_upstream_req **out)
{
    struct sl_upstream_client *c = (struct sl_upstream_client *)t;
    struct sl_upstream_req *r = calloc(1, sizeof *r);
    if (r == NULL)
        return SL_ENOMEM;
    r->c = c;
    r->cbs = *cbs;
    r->ud = ud;
    sl_buf_init(&r->head, SL_UPSTREAM_HEAD_BYTES);
    struct sl_buf url;
    sl_buf_init(&url, 64 * 1024);
    int rc = sl_buf_puts(&url, c->base);
    if (rc == SL_OK)
        rc = sl_buf_append(&url, s->path, s->path_len);
    if (rc == SL_OK)
        rc = sl_buf_append(&url, "", 1);
    r->easy = curl_easy_init();
    r->body = malloc(s->body_len ? s->body_len : 1);
    if (rc != SL_OK || r->easy == NULL || r->body == NULL) {
        sl_buf_free(&url);
        if (r->easy)
            curl_easy_cleanup(r->easy);
        free(r->body);
        free(r);
        return SL_ENOMEM;
    }
    memcpy(r->body, s->body, s->body_len);
    for (size_t i = 0; i < s->nheaders; i++)
        r->headers = curl_slist_append(r->headers, s->headers[i]);
    /* curl adds these unless told not to: sluice forwards what the client
     * sent and never waits for 100-continue. */
    r->headers = curl_slist_append(r->headers, "Expect:");
    if (c->opts.auth_header)
        r->headers = curl_slist_append(r->headers, c->opts.auth_header);

    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, sl_buf_ptr(&url));
    sl_buf_free(&url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->opts.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)c->opts.buffer_bytes);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    if (strcmp(s->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(s->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->body_len);
        if (strcmp(s->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, s->method);
    }
    uv_timer_init(c->loop, &r->timer);
    r->timer.data = r;
    arm(r, c->opts.first_byte_timeout_ms);
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        r->easy = NULL;
        r->cancelled = true;
        req_free(r);
        return SL_ENOMEM;
    }
    *out = r;
    return SL_OK;
}

static void client_cancel(struct sl_upstream_req *r)
{
    if (r->cancelled)
        return; /* already ending */
    r->cancelled = true;
    uv_timer_stop(&r->timer);
    if (r->c->in_curl) {
        /* curl is on the stack: free the transfer when it returns. */
        r->next_doomed = r->c->doomed;
        r->c->doomed = r;
        return;
    }
    req_free(r); /* the connection closes: the upstream sees the abort */
}

int sl_upstream_client_new(uv_loop_t *loop, const char *base_url,
                           const struct sl_upstream_client_opts *opts,
                           struct sl_upstream_client **out)
{
    static bool global_done;
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return SL_ENOMEM;
        global_done = true;
    }
    struct sl_upstream_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return SL_ENOMEM;
    size_t n = strlen(base_url);
    while (n > 0 && base_url[n - 1] == '/')
        n--;
    c->base = strndup(base_url, n);
    c->multi = curl_multi_init();
    if (c->base == NULL || c->multi == NULL) {
        free(c->base);
        if (c->multi)
            curl_multi_cleanup(c->multi);
        free(c);
        return SL_ENOMEM;
    }
    c->t.name = c->base;
    c->t.sets_auth = opts->auth_header != NULL;
    c->t.start = client_start;
    c->t.cancel = client_cancel;
    c->loop = loop;
    c->opts = *opts;
    if (opts->auth_header)
        c->opts.auth_header = strdup(opts->auth_header);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)opts->max_idle_connections);
    *out = c;
    return SL_OK;
}

struct sl_upstream_transport *sl_upstream_client_transport(struct sl_upstream_client *c)
{
    return &c->t;
}

static void on_client_timer_closed(uv_handle_t *h)
{
    struct sl_upstream_client *c = h->data;
    curl_multi_cleanup(c->multi);
    free((char *)c->opts.auth_header);
    free(c->base);
    free(c);
}

void sl_upstream_client_free(struct sl_upstream_client *c)
{
    /* Requests must have ended or been cancelled by their owners. */
    c->closing = true;
    uv_close((uv_handle_t *)&c->timer, on_client_timer_closed);
}
