/* limits.h - every fixed bound of sluice, named, with why.
 * Settable bounds are rows of the config table (core/config.h); the
 * SL_LIMIT_*_DEFAULT values here are their defaults. Bounds that are not
 * settable live only here. */
#ifndef SL_LIMITS_H
#define SL_LIMITS_H

/* Request line plus header fields, in bytes (config max_header_bytes). 16 KiB
 * is nginx's large_client_header_buffers order and far above any SDK's. */
#define SL_LIMIT_HEADER_BYTES_DEFAULT 16384
/* Header fields per request (config max_headers). Bounds the parser's header
 * array: a flood of tiny headers costs CPU per lookup. */
#define SL_LIMIT_HEADERS_DEFAULT 100
/* Request target length in bytes (config max_url_bytes); 414 past it. */
#define SL_LIMIT_URL_BYTES_DEFAULT 8192
/* Request body bytes (config max_body_bytes); 413 past it. A long chat with
 * many messages stays well under 4 MiB. */
#define SL_LIMIT_BODY_BYTES_DEFAULT (4 * 1024 * 1024)
/* Bytes queued for a client that is not reading (config
 * max_write_buffer_bytes): past it the connection is closed, so a client that
 * stops reading costs bounded memory. */
#define SL_LIMIT_WRITE_BUFFER_DEFAULT (1024 * 1024)
/* Hard ceiling on the header array whatever max_headers says. */
#define SL_LIMIT_HEADERS_MAX 1000
/* Bytes of chunk-size line extensions and of trailers in a chunked request
 * body: neither carries anything sluice uses, so they are bounded tightly. */
#define SL_LIMIT_CHUNK_EXT_BYTES 1024
#define SL_LIMIT_TRAILER_BYTES   8192
/* Bytes read from a socket per read callback. */
#define SL_LIMIT_READ_CHUNK 65536
/* Requests read ahead on one connection while an earlier one is answered
 * (pipelining): the rest waits in the kernel. */
#define SL_LIMIT_PIPELINE_BYTES (SL_LIMIT_HEADER_BYTES_DEFAULT * 4)

/* The bytes a log's last event, an error, may take past the log's bound
 * (max_stream_bytes): an upstream error object or sluice's own, so that a
 * log that filled up can still say why it stops. A bigger upstream error is
 * replaced by sluice's own. Only one error event is ever appended. */
#define SL_LIMIT_LOG_ERROR_BYTES 16384

/* Ids of evicted streams remembered (to answer 410, not 404) and for how
 * long; past the count the oldest are forgotten first. */
#define SL_LIMIT_TOMBSTONES   65536
#define SL_LIMIT_TOMBSTONE_MS (24ull * 3600 * 1000)

/* Bytes of an upstream's response head (status line and header fields),
 * for sluice's own HTTP/1.1 client; past it the upstream is taken as
 * broken. vLLM sends about 150. */
#define SL_LIMIT_UPSTREAM_HEAD_BYTES (64 * 1024)
/* Bytes gathered while such a head is split across reads: the head's
 * bound plus one read, which may carry body bytes behind the head's end
 * (the parser itself stops at SL_LIMIT_UPSTREAM_HEAD_BYTES). */
#define SL_LIMIT_UPSTREAM_HEAD_GATHER (SL_LIMIT_UPSTREAM_HEAD_BYTES + SL_LIMIT_READ_CHUNK)
/* Response header fields passed on from an upstream. */
#define SL_LIMIT_UPSTREAM_HEADERS 100
/* Addresses of an upstream's host name tried in turn when connecting. */
#define SL_LIMIT_UPSTREAM_ADDRS 8
/* Reads of one upstream connection per readable event, so that one busy
 * upstream does not starve the rest of the loop (libuv's streams stop at
 * 32). */
#define SL_LIMIT_UPSTREAM_READS_PER_EVENT 16

/* A kept-alive upstream connection unused this long is closed (config
 * upstream_idle_timeout_ms). Below uvicorn's (so vLLM's) 5 s keep-alive
 * timeout, so that sluice, not the upstream, closes an idle connection:
 * else a request may be sent on one the upstream is closing, and a POST
 * is never sent twice (upstream/h1.c, may_send_again). */
#define SL_LIMIT_UPSTREAM_IDLE_MS_DEFAULT 4000
/* How long an upstream host name's addresses serve new connections before
 * the name is resolved again (config upstream_resolve_ttl_ms), as nginx's
 * "resolver ... valid=30s": a moved service is followed within 30 s, at
 * one lookup per upstream per 30 s. A connection refused by every address
 * resolves again at once. */
#define SL_LIMIT_UPSTREAM_RESOLVE_TTL_MS_DEFAULT 30000

/* Upstreams in one configuration (the config list bound). */
#define SL_LIMIT_UPSTREAMS 64

#endif
