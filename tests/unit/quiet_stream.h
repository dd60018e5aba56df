/* quiet_stream.h - for unit tests of what sits on streams (the stores, the
 * follower): streams whose upstream never answers, so that the test writes
 * their logs itself. The transport counts cancels in quiet_cancels.
 * Included by one test file each (everything here is static). */
#ifndef SL_TEST_QUIET_STREAM_H
#define SL_TEST_QUIET_STREAM_H

#include "stream/stream.h"

struct sl_upstream_req {
    int dummy;
};
static struct sl_upstream_req quiet_reqs[64];
static size_t quiet_nreqs;
static int quiet_cancels;

static int quiet_start(struct sl_upstream_transport *t, const struct sl_upstream_send *s,
                       const struct sl_upstream_cbs *cbs, void *ud, struct sl_upstream_req **out)
{
    (void)t, (void)s, (void)cbs, (void)ud;
    *out = &quiet_reqs[quiet_nreqs++ % 64];
    return SL_OK;
}
static void quiet_cancel(struct sl_upstream_req *r)
{
    (void)r;
    quiet_cancels++;
}
static struct sl_upstream_transport quiet = {"quiet", false, quiet_start, quiet_cancel};

static void quiet_open(void *ud, struct sl_stream *s, const struct sl_upstream_header *h, size_t n)
{
    (void)ud, (void)s, (void)h, (void)n;
}
static void quiet_reply(void *ud, struct sl_stream *s, int st, const char *h, const char *b,
                        size_t n)
{
    (void)ud, (void)s, (void)st, (void)h, (void)b, (void)n;
}
static void quiet_fail(void *ud, struct sl_stream *s, int err, const char *what)
{
    (void)ud, (void)s, (void)err, (void)what;
}
static const struct sl_stream_owner quiet_owner = {quiet_open, quiet_reply, quiet_fail};

/* Starts a running stream on the quiet transport: SL_OK or the start's
 * error (SL_ENOMEM under a failed allocation). */
static int quiet_stream(size_t max_log_bytes, uint64_t grace_ms, struct sl_stream **out)
{
    struct sl_upstream_send send = {"POST", "/v1/chat/completions", 20, NULL, 0, "{}", 2};
    struct sl_stream_opts o = {max_log_bytes, 1 << 16, 1 << 16, 0};
    int rc = sl_stream_start(NULL, &quiet, &send, &o, &quiet_owner, NULL, out);
    if (rc == SL_OK) {
        (*out)->state = SL_STREAM_RUNNING;
        (*out)->grace_ms = grace_ms;
    }
    return rc;
}

#endif
