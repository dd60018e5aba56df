/* config.h - the one table of sluice settings.
 * Owns: every setting's row (name, type, unit, min, max, default, help), the
 * defaults, command-line parsing and the --help table. A row's name a_b is
 * the flag --a-b and the YAML key a_b. Rows are added, never renamed.
 * Does not own: what a setting does (the modules that read struct sl_config). */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "core/limits.h"

/* Which command a row belongs to. */
#define SL_SCOPE_GATEWAY 1u
#define SL_SCOPE_SIM     2u
#define SL_SCOPE_ALL     (SL_SCOPE_GATEWAY | SL_SCOPE_SIM)

/* X(name, TYPE, unit, min, max, default, scope, help); TYPE is INT, BOOL, STR
 * or LIST (a flag given again adds a value; max bounds the count). min and
 * max bound INT values (and BOOL 0..1); for STR they are unused. */
#define SL_CONFIG_ROWS(X)                                                                          \
    X(listen, STR, "host:port", 0, 0, "127.0.0.1:8080", SL_SCOPE_ALL,                              \
      "address to serve on (sluice sim: 127.0.0.1:8000)")                                          \
    X(max_header_bytes, INT, "bytes", 256, 1048576, SL_STR(SL_LIMIT_HEADER_BYTES_DEFAULT),         \
      SL_SCOPE_ALL, "request line plus header fields; 431 past it")                                \
    X(max_headers, INT, "count", 1, SL_LIMIT_HEADERS_MAX, SL_STR(SL_LIMIT_HEADERS_DEFAULT),        \
      SL_SCOPE_ALL, "header fields in one request; 431 past it")                                   \
    X(max_url_bytes, INT, "bytes", 16, 1048576, SL_STR(SL_LIMIT_URL_BYTES_DEFAULT), SL_SCOPE_ALL,  \
      "request target length; 414 past it")                                                        \
    X(max_body_bytes, INT, "bytes", 0, 1073741824, "4194304", SL_SCOPE_ALL,                        \
      "request body; 413 past it")                                                                 \
    X(max_write_buffer_bytes, INT, "bytes", 4096, 1073741824, "1048576", SL_SCOPE_ALL,             \
      "bytes queued for a client that is not reading before it is closed")                         \
    X(max_connections, INT, "count", 1, 1000000, "20000", SL_SCOPE_ALL,                            \
      "open client connections; more are refused at accept")                                       \
    X(header_timeout_ms, INT, "ms", 1, 3600000, "10000", SL_SCOPE_ALL,                             \
      "time to receive a request's line and headers")                                              \
    X(body_timeout_ms, INT, "ms", 1, 3600000, "30000", SL_SCOPE_ALL,                               \
      "time without progress while receiving a request body")                                      \
    X(idle_timeout_ms, INT, "ms", 1, 86400000, "60000", SL_SCOPE_ALL,                              \
      "keep-alive connection idle between requests")                                               \
    X(send_timeout_ms, INT, "ms", 1, 3600000, "30000", SL_SCOPE_ALL,                               \
      "a client with queued bytes that reads nothing this long is closed")                         \
    X(upstream, LIST, "url", 0, SL_LIMIT_UPSTREAMS, "", SL_SCOPE_GATEWAY,                          \
      "upstream base URL (one for now: several are refused until the pool, issue 13); none: the "  \
      "built-in simulator")                                                                        \
    X(upstream_key_env, STR, "name", 0, 0, "", SL_SCOPE_GATEWAY,                                   \
      "environment variable with the upstream API key (else the client's Authorization is sent)")  \
    X(connect_timeout_ms, INT, "ms", 1, 600000, "5000", SL_SCOPE_GATEWAY,                          \
      "connecting to an upstream")                                                                 \
    X(first_byte_timeout_ms, INT, "ms", 1, 3600000, "60000", SL_SCOPE_GATEWAY,                     \
      "from sending a request upstream to its response headers")                                   \
    X(stall_timeout_ms, INT, "ms", 1, 3600000, "120000", SL_SCOPE_GATEWAY,                         \
      "an upstream answer that sends nothing this long is cut with an error")                      \
    X(upstream_idle_timeout_ms, INT, "ms", 1, 3600000, SL_STR(SL_LIMIT_UPSTREAM_IDLE_MS_DEFAULT),  \
      SL_SCOPE_GATEWAY,                                                                            \
      "a kept-alive upstream connection unused this long is closed (keep it below the "            \
      "upstream's own keep-alive timeout: uvicorn's is 5 s)")                                      \
    X(upstream_resolve_ttl_ms, INT, "ms", 0, 86400000,                                             \
      SL_STR(SL_LIMIT_UPSTREAM_RESOLVE_TTL_MS_DEFAULT), SL_SCOPE_GATEWAY,                          \
      "an upstream host name's addresses are resolved again after this (0: per connection)")       \
    X(upstream_buffer_bytes, INT, "bytes", 1024, 524288, "16384", SL_SCOPE_GATEWAY,                \
      "receive buffer per upstream transfer (libcurl CURLOPT_BUFFERSIZE)")                         \
    X(upstream_http, STR, "native|curl", 0, 0, "native", SL_SCOPE_GATEWAY,                         \
      "client for http:// upstreams: sluice's own HTTP/1.1 or libcurl (https: always libcurl)")    \
    X(client_buffer_bytes, INT, "bytes", 4096, 1073741824, "262144", SL_SCOPE_GATEWAY,             \
      "unsent bytes kept for a slow client before sluice waits for its socket to drain "           \
      "(at most half of max_write_buffer_bytes)")                                                  \
    X(max_stream_bytes, INT, "bytes", 4096, 1073741824, "67108864", SL_SCOPE_GATEWAY,              \
      "events kept in one stream's log")                                                           \
    X(max_response_bytes, INT, "bytes", 4096, 1073741824, "67108864", SL_SCOPE_GATEWAY,            \
      "a non-streaming upstream response body")                                                    \
    X(grace_s, INT, "s", 0, 86400, "30", SL_SCOPE_GATEWAY,                                         \
      "a stream-face stream nobody listens to generates this long, then is cancelled")             \
    X(retention_s, INT, "s", 0, 604800, "600", SL_SCOPE_GATEWAY,                                   \
      "a finished stream's log stays readable this long (0: not kept, no resume)")                 \
    X(store_max_bytes, INT, "bytes", 65536, 1099511627776, "268435456", SL_SCOPE_GATEWAY,          \
      "all logs held in memory; past it the oldest finished streams go first")                     \
    X(store_defer, BOOL, "", 0, 1, "false", SL_SCOPE_GATEWAY,                                      \
      "testing: the store answers every call on a later loop turn, as a remote store does")        \
    X(model, STR, "name", 0, 0, "Qwen/Qwen3-0.6B", SL_SCOPE_ALL, "simulator: model name served")   \
    X(max_model_len, INT, "tokens", 16, 10000000, "8192", SL_SCOPE_ALL,                            \
      "simulator: context length reported in /v1/models")                                          \
    X(ttft_ms, INT, "ms", 0, 600000, "150", SL_SCOPE_ALL, "simulator: time to first token")        \
    X(itl_ms, INT, "ms", 0, 60000, "20", SL_SCOPE_ALL, "simulator: gap between tokens")            \
    X(jitter_ms, INT, "ms", 0, 60000, "5", SL_SCOPE_ALL,                                           \
      "simulator: +/- random spread of each gap (from the request's seed)")                        \
    X(max_num_seqs, INT, "count", 1, 10000000, "256", SL_SCOPE_ALL,                                \
      "simulator: requests run at once; more wait in a queue")                                     \
    X(itl_load_pct, INT, "percent", 0, 10000, "50", SL_SCOPE_ALL,                                  \
      "simulator: extra gap between tokens with a full batch (scaled by running/max_num_seqs)")    \
    X(reasoning_parser, BOOL, "", 0, 1, "false", SL_SCOPE_ALL,                                     \
      "simulator: send thinking as delta.reasoning, not <think> in content")                       \
    X(fault, STR, "json", 0, 0, "", SL_SCOPE_ALL,                                                  \
      "simulator: fault for every request, as x_fault JSON")

#define SL_STR_(x) #x
#define SL_STR(x)  SL_STR_(x)

#define SL__CTYPE_INT  int64_t
#define SL__CTYPE_BOOL bool
#define SL__CTYPE_STR  const char *
#define SL__CTYPE_LIST struct sl_cfg_list

struct sl_cfg_list {
    const char *v[SL_LIMIT_UPSTREAMS];
    size_t n;
};

struct sl_config {
#define SL__CFG_FIELD(name, type, unit, min, max, def, scope, help) SL__CTYPE_##type name;
    SL_CONFIG_ROWS(SL__CFG_FIELD)
#undef SL__CFG_FIELD
    char *owned_; /* strings set from flags are copies kept here */
};

enum sl_cfg_type { SL_CFG_INT, SL_CFG_BOOL, SL_CFG_STR, SL_CFG_LIST };

struct sl_cfg_row {
    const char *name;
    enum sl_cfg_type type;
    const char *unit;
    int64_t min, max;
    const char *def;
    unsigned scope;
    const char *help;
    size_t offset;
};

/* The table, in order, and its length. */
extern const struct sl_cfg_row sl_config_rows[];
extern const size_t sl_config_nrows;

/* Fills every field with its row's default. */
void sl_config_defaults(struct sl_config *cfg);
/* Frees strings copied by sl_config_set/parse; cfg's strings become invalid. */
void sl_config_free(struct sl_config *cfg);
/* Sets one row by name (underscores or dashes) from text, checking type and
 * range. SL_ENOTFOUND for an unknown name, SL_EINVAL for a bad value; err
 * gets a human message. Strings are copied. */
SL_WARN_UNUSED int sl_config_set(struct sl_config *cfg, unsigned scope, const char *name,
                                 const char *value, char *err, size_t errlen);
/* Parses --a-b value / --a-b=value / --flag (BOOL true) / --no-flag (BOOL
 * false) for rows in scope, from argv[0..argc). Stops at the first error with
 * a message in err. */
SL_WARN_UNUSED int sl_config_parse_args(struct sl_config *cfg, unsigned scope, int argc,
                                        char **argv, char *err, size_t errlen);
/* Prints the table of rows in scope (flag, type, unit, range, default, help). */
void sl_config_print_help(FILE *out, unsigned scope);

#endif
