/* gateway.c - routes of the gateway and the upstream behind them.
 * Owns: choosing the transport from the config (sluice's own HTTP/1.1
 * client for http://, libcurl for https:// or --upstream-http curl, or the
 * in-process simulator), the upstream key, and which path goes to which face; paths
 * sluice does not serve are proxied to the upstream unchanged. */
#include "app/gateway.h"

#include <stdlib.h>
#include <string.h>

#include "face/follow.h"
#include "face/openai.h"
#include "face/proxy.h"
#include "face/streams.h"
#include "face/ws.h"
#include "stream/store_defer.h"
#include "stream/store_mem.h"
#include "stream/stream.h"
#include "http/server.h"
#include "upstream/client.h"
#include "upstream/h1.h"
#include "upstream/sim_backend.h"

struct sl_gateway {
    uv_loop_t *loop;
    const struct sl_config *cfg;
    struct sl_http_server *server;
    struct sl_upstream_h1 *h1; /* one of these three */
    struct sl_upstream_client *client;
    struct sl_sim_backend *sim;
    struct sl_upstream_transport *t;
    struct sl_store_mem *store;
    struct sl_store_defer *defer; /* --store-defer: over store */
    struct sl_openai oa;
};

static bool path_is(const struct sl_http_request *r, const char *p)
{
    size_t n = strlen(p);
    return r->path_len == n && memcmp(r->path, p, n) == 0;
}

static void handle(struct sl_http_exchange *ex, void *ud)
{
    struct sl_gateway *gw = ud;
    const struct sl_http_request *r = sl_http_ex_request(ex);
    if (path_is(r, "/v1/ws")) {
        sl_ws_handle(&gw->oa, ex);
        return;
    }
    if (path_is(r, "/v1/chat/completions") || path_is(r, "/v1/completions")) {
        if (r->method == SL_HTTP_POST)
            sl_openai_handle(&gw->oa, ex);
        else
            sl_http_ex_respond_error(ex, 405, "Allow: POST\r\n", "Method Not Allowed", NULL);
        return;
    }
    if (sl_streams_handle(&gw->oa, ex))
        return;
    sl_proxy_forward(ex, gw->t);
}

int sl_gateway_start(uv_loop_t *loop, const struct sl_config *cfg, struct sl_gateway **out,
                     char *err, size_t errlen)
{
    struct sl_gateway *gw = calloc(1, sizeof *gw);
    if (gw == NULL) {
        snprintf(err, errlen, "out of memory");
        return SL_ENOMEM;
    }
    gw->loop = loop;
    gw->cfg = cfg;
    int rc;
    /* Refused, not ignored: only the first would be used. */
    if (cfg->upstream.n > 1) {
        snprintf(err, errlen,
                 "several --upstream given (%zu); one upstream is supported until the pool "
                 "lands (issue 13)",
                 cfg->upstream.n);
        free(gw);
        return SL_EINVAL;
    }
    if (strcmp(cfg->upstream_http, "native") != 0 && strcmp(cfg->upstream_http, "curl") != 0) {
        snprintf(err, errlen, "--upstream-http: \"%s\" is neither native nor curl",
                 cfg->upstream_http);
        free(gw);
        return SL_EINVAL;
    }
    if (cfg->upstream.n > 0) {
        char auth[4096];
        const char *auth_header = NULL;
        if (cfg->upstream_key_env[0]) {
            const char *key = getenv(cfg->upstream_key_env);
            if (key == NULL || key[0] == '\0') {
                snprintf(err, errlen, "--upstream-key-env: %s is not set", cfg->upstream_key_env);
                free(gw);
                return SL_EINVAL;
            }
            snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
            auth_header = auth;
        }
        const char *url = cfg->upstream.v[0];
        bool native = sl_upstream_h1_handles(url) && strcmp(cfg->upstream_http, "curl") != 0;
        if (native) {
            struct sl_upstream_h1_opts o = {
                .connect_timeout_ms = cfg->connect_timeout_ms,
                .first_byte_timeout_ms = cfg->first_byte_timeout_ms,
                .stall_timeout_ms = cfg->stall_timeout_ms,
                .max_idle_connections = cfg->max_connections,
                .idle_timeout_ms = cfg->upstream_idle_timeout_ms,
                .resolve_ttl_ms = cfg->upstream_resolve_ttl_ms,
                .auth_header = auth_header,
            };
            rc = sl_upstream_h1_new(loop, url, &o, &gw->h1);
            if (rc != SL_OK)
                snprintf(err, errlen, "--upstream %s: %s", url,
                         rc == SL_EINVAL ? "not an http://host[:port][/path] URL"
                                         : sl_strerror(rc));
        } else {
            struct sl_upstream_client_opts o = {
                .connect_timeout_ms = cfg->connect_timeout_ms,
                .first_byte_timeout_ms = cfg->first_byte_timeout_ms,
                .stall_timeout_ms = cfg->stall_timeout_ms,
                .buffer_bytes = cfg->upstream_buffer_bytes,
                .max_idle_connections = cfg->max_connections,
                .auth_header = auth_header,
            };
            rc = sl_upstream_client_new(loop, url, &o, &gw->client);
            if (rc != SL_OK)
                snprintf(err, errlen, "cannot make the upstream client: %s", sl_strerror(rc));
        }
        memset(auth, 0, sizeof auth);
        if (rc != SL_OK) {
            free(gw);
            return rc;
        }
        gw->t =
            gw->h1 ? sl_upstream_h1_transport(gw->h1) : sl_upstream_client_transport(gw->client);
    } else {
        rc = sl_sim_backend_new(loop, cfg, &gw->sim, err, errlen);
        if (rc != SL_OK) {
            free(gw);
            return rc;
        }
        gw->t = sl_sim_backend_transport(gw->sim);
    }
    struct sl_store_mem_opts so = {
        .retention_s = cfg->retention_s,
        .max_bytes = (size_t)cfg->store_max_bytes,
        .sweep_ms = 250,
    };
    gw->store = sl_store_mem_new(loop, &so);
    if (gw->store == NULL) {
        snprintf(err, errlen, "out of memory");
        sl_gateway_free(gw);
        return SL_ENOMEM;
    }
    struct sl_store *store = sl_store_mem_base(gw->store);
    if (cfg->store_defer) {
        gw->defer = sl_store_defer_new(loop, store);
        if (gw->defer == NULL) {
            snprintf(err, errlen, "out of memory");
            sl_gateway_stop(gw);
            sl_gateway_free(gw);
            return SL_ENOMEM;
        }
        store = sl_store_defer_base(gw->defer);
    }
    gw->oa = (struct sl_openai){loop, cfg, gw->t, store};
    rc = sl_http_server_start(loop, cfg, handle, gw, &gw->server, err, errlen);
    if (rc != SL_OK) {
        sl_gateway_stop(gw);
        sl_gateway_free(gw);
        return rc;
    }
    *out = gw;
    return SL_OK;
}

const char *sl_gateway_upstream(const struct sl_gateway *gw)
{
    return gw->t->name;
}

void sl_gateway_stop(struct sl_gateway *gw)
{
    if (gw->server)
        sl_http_server_close(gw->server); /* aborts every exchange */
    gw->server = NULL;
    /* Streams that still wait for or read an upstream answer stop now, so
     * that no upstream callback comes after the store is gone. */
    sl_stream_cancel_all();
    if (gw->defer)
        sl_store_defer_free(gw->defer); /* answers what waits */
    gw->defer = NULL;
    if (gw->store)
        sl_store_mem_free(gw->store); /* cancels what still runs */
    gw->store = NULL;
}

void sl_gateway_free(struct sl_gateway *gw)
{
    sl_follow_thread_done();
    if (gw->h1)
        sl_upstream_h1_free(gw->h1);
    if (gw->client)
        sl_upstream_client_free(gw->client);
    if (gw->sim)
        sl_sim_backend_free(gw->sim);
    free(gw);
}
