/* test_upstream_h1.c - the name cache of sluice's own HTTP/1.1 upstream
 * client (src/upstream/h1.c): a host name is resolved once for every
 * connection made within the TTL, however many wait for it at once, and
 * again after the TTL. The upstream is a blocking loopback server on a
 * thread that answers each request with "Connection: close", so every
 * request needs a new connection. (The pool and the retry rule are tested
 * over real sockets in tests/integration/test_upstream_pool.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "upstream/h1.h"

/* --- the upstream -------------------------------------------------------- */

struct server {
    int lfd;
    int port;
    int accepted;
    pthread_t thread;
};

static void *serve(void *arg)
{
    struct server *s = arg;
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                 "Connection: close\r\n\r\nok";
    for (;;) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            return NULL; /* shut down */
        __atomic_add_fetch(&s->accepted, 1, __ATOMIC_SEQ_CST);
        char buf[4096];
        size_t got = 0;
        while (got < sizeof buf - 1) {
            ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
            if (n <= 0)
                break;
            got += (size_t)n;
            buf[got] = '\0';
            if (strstr(buf, "\r\n\r\n{}"))
                break;
        }
        if (send(fd, answer, sizeof answer - 1, MSG_NOSIGNAL) < 0)
            fprintf(stderr, "test upstream: send failed\n");
        close(fd);
    }
}

static void server_start(struct server *s)
{
    memset(s, 0, sizeof *s);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->lfd, 64), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(struct server *s)
{
    (void)shutdown(s->lfd, SHUT_RDWR); /* wakes accept() */
    assert_int_equal(pthread_join(s->thread, NULL), 0);
    close(s->lfd);
}

/* --- requests ------------------------------------------------------------ */

struct run {
    int ended, ok, failed;
};

static void on_head(void *ud, int status, const struct sl_upstream_header *h, size_t n)
{
    (void)ud, (void)h, (void)n;
    assert_int_equal(status, 200);
}

static bool on_data(void *ud, const char *p, size_t n)
{
    (void)ud, (void)p, (void)n;
    return true;
}

static void on_end(void *ud, int err, const char *what)
{
    struct run *run = ud;
    run->ended++;
    if (err == SL_OK)
        run->ok++;
    else {
        run->failed++;
        fprintf(stderr, "request failed: %s (%s)\n", sl_strerror(err), what);
    }
}

/* Starts n requests at once on c and runs the loop until all ended;
 * want_ok of them must succeed. */
static void requests_ok(uv_loop_t *loop, struct sl_upstream_h1 *c, int n, int want_ok)
{
    static const struct sl_upstream_cbs cbs = {on_head, on_data, on_end};
    const struct sl_upstream_send s = {
        .method = "POST", .path = "/v1/x", .path_len = 5, .body = "{}", .body_len = 2};
    struct sl_upstream_transport *t = sl_upstream_h1_transport(c);
    struct run run = {0};
    for (int i = 0; i < n; i++) {
        struct sl_upstream_req *r;
        assert_int_equal(t->start(t, &s, &cbs, &run, &r), SL_OK);
    }
    while (run.ended < n)
        assert_true(uv_run(loop, UV_RUN_ONCE) != 0 || run.ended == n);
    assert_int_equal(run.ok, want_ok);
}

static void requests(uv_loop_t *loop, struct sl_upstream_h1 *c, int n)
{
    requests_ok(loop, c, n, n);
}

static void on_waited(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* Runs the loop for ms (other handles may run meanwhile). */
static void wait_ms(uv_loop_t *loop, uint64_t ms)
{
    uv_timer_t t;
    bool done = false;
    assert_int_equal(uv_timer_init(loop, &t), 0);
    t.data = &done;
    assert_int_equal(uv_timer_start(&t, on_waited, ms, 0), 0);
    while (!done)
        (void)uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    (void)uv_run(loop, UV_RUN_NOWAIT);
}

static struct sl_upstream_h1 *client(uv_loop_t *loop, const char *host, int port, int64_t ttl)
{
    char url[64];
    snprintf(url, sizeof url, "http://%s:%d", host, port);
    const struct sl_upstream_h1_opts o = {
        .connect_timeout_ms = 5000,
        .first_byte_timeout_ms = 10000,
        .stall_timeout_ms = 10000,
        .max_idle_connections = 16,
        .idle_timeout_ms = 4000,
        .resolve_ttl_ms = ttl,
    };
    struct sl_upstream_h1 *c;
    assert_int_equal(sl_upstream_h1_new(loop, url, &o, &c), SL_OK);
    return c;
}

static void client_free(uv_loop_t *loop, struct sl_upstream_h1 *c)
{
    sl_upstream_h1_free(c);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
}

/* --- tests --------------------------------------------------------------- */

/* "localhost" may give ::1 first, where nothing listens: the connection
 * goes on to 127.0.0.1 from the same lookup. */
static void test_a_name_is_resolved_once_for_many_connections(void **state)
{
    (void)state;
    struct server srv;
    server_start(&srv);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct sl_upstream_h1 *c = client(&loop, "localhost", srv.port, 60000);
    requests(&loop, c, 6); /* six connections wait for one lookup */
    assert_int_equal(sl_upstream_h1_resolves(c), 1);
    for (int i = 0; i < 5; i++)
        requests(&loop, c, 1); /* each on a new connection, from the cache */
    assert_int_equal(sl_upstream_h1_resolves(c), 1);
    assert_int_equal(__atomic_load_n(&srv.accepted, __ATOMIC_SEQ_CST), 11);
    client_free(&loop, c);
    assert_int_equal(uv_loop_close(&loop), 0);
    server_stop(&srv);
}

static void test_a_name_is_resolved_again_after_the_ttl(void **state)
{
    (void)state;
    struct server srv;
    server_start(&srv);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct sl_upstream_h1 *c = client(&loop, "localhost", srv.port, 50);
    requests(&loop, c, 1);
    requests(&loop, c, 1);
    assert_int_equal(sl_upstream_h1_resolves(c), 1);
    wait_ms(&loop, 80);
    requests(&loop, c, 1);
    requests(&loop, c, 1);
    assert_int_equal(sl_upstream_h1_resolves(c), 2);
    client_free(&loop, c);
    assert_int_equal(uv_loop_close(&loop), 0);
    server_stop(&srv);
}

/* The upstream moved (here: stopped listening): the request that found
 * every cached address refusing resolves the name again and tries the
 * new addresses before it fails; nothing was sent, so this is safe. */
static void test_a_name_is_resolved_again_when_every_address_refuses(void **state)
{
    (void)state;
    struct server srv;
    server_start(&srv);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct sl_upstream_h1 *c = client(&loop, "localhost", srv.port, 60000);
    requests(&loop, c, 1);
    assert_int_equal(sl_upstream_h1_resolves(c), 1);
    server_stop(&srv);
    requests_ok(&loop, c, 1, 0);
    assert_int_equal(sl_upstream_h1_resolves(c), 2);
    requests_ok(&loop, c, 1, 0); /* the fresh addresses refuse too: once more */
    assert_int_equal(sl_upstream_h1_resolves(c), 3);
    client_free(&loop, c);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_a_numeric_host_is_never_resolved(void **state)
{
    (void)state;
    struct server srv;
    server_start(&srv);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct sl_upstream_h1 *c = client(&loop, "127.0.0.1", srv.port, 0);
    requests(&loop, c, 3);
    assert_int_equal(sl_upstream_h1_resolves(c), 0);
    client_free(&loop, c);
    assert_int_equal(uv_loop_close(&loop), 0);
    server_stop(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_name_is_resolved_once_for_many_connections),
        cmocka_unit_test(test_a_name_is_resolved_again_after_the_ttl),
        cmocka_unit_test(test_a_name_is_resolved_again_when_every_address_refuses),
        cmocka_unit_test(test_a_numeric_host_is_never_resolved),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
