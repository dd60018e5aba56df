/* main.c - sluice's entry point: commands, flags, signals, the loop.
 * Owns: choosing the command (gateway or `sim`), reading the config table
 * from argv, raising the open-file limit, and clean shutdown on signals.
 * Does not own: anything that serves a request. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "core/alloc.h"
#include "core/config.h"
#include "app/gateway.h"
#include "app/sim_http.h"

static const char usage[] =
    "usage: sluice [options]              the gateway: the OpenAI API in front of --upstream URLs\n"
    "                                     (or of the built-in simulator when none is given)\n"
    "       sluice sim [options]          a stand-in vLLM server (vLLM's routes and bytes)\n"
    "       sluice --version | --help | sim --help\n\n"
    "Every option below is one row of sluice's settings table: --a-b VALUE\n"
    "(or --a-b=VALUE; --flag / --no-flag for booleans) sets the key a_b.\n"
    "Given again, an option replaces its earlier value (a list option adds one).\n\n";

struct app {
    uv_signal_t sigint, sigterm;
    struct sl_sim_http *sim;    /* `sluice sim` */
    struct sl_gateway *gateway; /* `sluice` */
};

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    struct app *app = s->data;
    fprintf(stderr, "sluice: stopping\n");
    if (app->sim)
        sl_sim_http_stop(app->sim);
    if (app->gateway)
        sl_gateway_stop(app->gateway);
    uv_close((uv_handle_t *)&app->sigint, NULL);
    uv_close((uv_handle_t *)&app->sigterm, NULL);
}

/* A gateway holds two sockets per stream: use every file the hard limit allows. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    bool sim_cmd = argc > 1 && strcmp(argv[1], "sim") == 0;
    unsigned scope = sim_cmd ? SL_SCOPE_SIM : SL_SCOPE_GATEWAY;
    int first = sim_cmd ? 2 : 1;
    for (int i = first; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            sl_config_print_help(stdout, scope);
            return 0;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("sluice %s\n", SL_VERSION);
            return 0;
        }
    }

    struct sl_config cfg;
    sl_config_defaults(&cfg);
    if (sim_cmd)
        cfg.listen = "127.0.0.1:8000";
    char err[512];
    int rc;
    if (sl_config_parse_args(&cfg, scope, argc - first, argv + first, err, sizeof err) != SL_OK) {
        fprintf(stderr, "sluice: %s\n", err);
        sl_config_free(&cfg);
        return 2;
    }
    /* The tests' allocation faults: in the test build only (core/alloc.h). */
    rc = sl_alloc_fail_from_env();
    if (rc == 1) {
        fprintf(stderr, "sluice: SL_FAIL_ALLOC=%s: those allocations will fail\n",
                getenv("SL_FAIL_ALLOC"));
    } else if (rc == SL_ENOTIMPL) {
        fprintf(stderr, "sluice: SL_FAIL_ALLOC ignored: built without SL_ALLOC_FAULTS\n");
    } else if (rc != SL_OK) {
        fprintf(stderr, "sluice: SL_FAIL_ALLOC=%s is not [SITE:]FIRST[-LAST]\n",
                getenv("SL_FAIL_ALLOC"));
        sl_config_free(&cfg);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();

    uv_loop_t *loop = uv_default_loop();
    struct app app = {0};
    rc = sim_cmd ? sl_sim_http_start(loop, &cfg, &app.sim, err, sizeof err)
                 : sl_gateway_start(loop, &cfg, &app.gateway, err, sizeof err);
    if (rc != SL_OK) {
        fprintf(stderr, "sluice: %s\n", err);
        sl_config_free(&cfg);
        return 1;
    }
    if (sim_cmd)
        fprintf(stderr, "sluice sim: vLLM stand-in serving model %s at http://%s/v1\n", cfg.model,
                cfg.listen);
    else if (cfg.upstream.n == 0)
        fprintf(stderr,
                "sluice: serving the OpenAI API at http://%s/v1, streaming from the built-in "
                "simulator (model %s); no chat page yet.\n"
                "sluice: try: curl -N http://%s/v1/chat/completions -H 'Content-Type: "
                "application/json' -d '{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                "\"stream\":true}'\n",
                cfg.listen, cfg.model, cfg.listen);
    else
        fprintf(stderr, "sluice: serving the OpenAI API at http://%s/v1 in front of %s\n",
                cfg.listen, sl_gateway_upstream(app.gateway));

    uv_signal_init(loop, &app.sigint);
    uv_signal_init(loop, &app.sigterm);
    app.sigint.data = app.sigterm.data = &app;
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);

    uv_run(loop, UV_RUN_DEFAULT);
    if (app.sim)
        sl_sim_http_free(app.sim);
    if (app.gateway)
        sl_gateway_free(app.gateway);
    uv_run(loop, UV_RUN_DEFAULT); /* the frees close handles */
    uv_loop_close(loop);
    sl_config_free(&cfg);
    return 0;
}
