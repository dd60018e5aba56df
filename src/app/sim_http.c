/* sim_http.c - `sluice sim`: the in-process simulator backend served over
 * HTTP, so that it looks like a vLLM server to anything on the network.
 * Owns: wiring the HTTP server to the backend through the pass-through
 * proxy (a client that hangs up aborts its generation). Does not own: the
 * routes or the bytes (upstream/sim_backend.c, sim/sim.c). */
#include "app/sim_http.h"

#include <stdlib.h>

#include "face/proxy.h"
#include "upstream/sim_backend.h"

struct sl_sim_http {
    struct sl_sim_backend *backend;
    struct sl_http_server *server;
};

static void handle(struct sl_http_exchange *ex, void *ud)
{
    struct sl_sim_http *sh = ud;
    sl_proxy_forward(ex, sl_sim_backend_transport(sh->backend));
}

int sl_sim_http_start(uv_loop_t *loop, const struct sl_config *cfg, struct sl_sim_http **out,
                      char *err, size_t errlen)
{
    struct sl_sim_http *sh = calloc(1, sizeof *sh);
    if (sh == NULL) {
        snprintf(err, errlen, "out of memory");
        return SL_ENOMEM;
    }
    int rc = sl_sim_backend_new(loop, cfg, &sh->backend, err, errlen);
    if (rc != SL_OK) {
        free(sh);
        return rc;
    }
    rc = sl_http_server_start(loop, cfg, handle, sh, &sh->server, err, errlen);
    if (rc != SL_OK) {
        sl_sim_backend_free(sh->backend);
        free(sh);
        return rc;
    }
    *out = sh;
    return SL_OK;
}

int sl_sim_http_port(const struct sl_sim_http *sh)
{
    return sl_http_server_port(sh->server);
}

void sl_sim_http_stop(struct sl_sim_http *sh)
{
    sl_http_server_close(sh->server); /* aborts every generation */
}

void sl_sim_http_free(struct sl_sim_http *sh)
{
    sl_sim_backend_free(sh->backend);
    free(sh);
}
