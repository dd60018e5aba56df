/* micro.c - micro-benchmark of sluice's sans-I/O cores, per event.
 * Owns: the inputs (a vLLM chat stream fixture, repeated, and a typical
 * request head), the loops and the wall clock. Does not own: what is
 * measured (src/), instruction counts (bench/run.py runs this under
 * valgrind --tool=callgrind with --toggle-collect on one stage function).
 *
 * Stages, one "event" each:
 *   parser   sl_http_parse_request over one 8-header chat request head;
 *   decoder  sl_sse_decoder_next: one dispatched event, the fixture's
 *            bytes fed as an upstream read would hand them (one event's
 *            bytes per call);
 *   chunk    sl_chunk_read of one event's data (chunks and [DONE]);
 *   encoder  sl_render_sse of one logged event on the OpenAI face
 *            ("id: N" + the upstream chunk), as a client receives it.
 * Prints one line per stage: name, events, ns per event (the fastest of
 * MICRO_REPEATS timed passes); --json prints one JSON object instead.
 * --events N sets the events per pass (default 200000); --stage NAME runs
 * only that stage, once, untimed (for callgrind). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/err.h"
#include "face/render.h"
#include "http/parser.h"
#include "pipeline/chunk.h"
#include "sse/decoder.h"
#include "stream/log.h"

#define MICRO_REPEATS       5
#define MICRO_EVENTS        200000
#define MICRO_MAX_EVENTS    64 /* events kept from the fixture */
#define MICRO_EVENT_MAX     (1024 * 1024)
#define MICRO_FIXTURE_BYTES (1024 * 1024)
#define MICRO_HDRS          32

/* The fixture: --fixture, else this name in $SL_FIXTURES (the tests'
 * variable), else in the repository's tests/fixtures/vllm (bench/Makefile
 * passes its path). */
#define MICRO_FIXTURE_NAME "vllm-0.9.2_qwen3-0.6b_chat-stream_no-reasoning-parser.sse"
#ifndef MICRO_FIXTURE_DIR
#define MICRO_FIXTURE_DIR "../tests/fixtures/vllm"
#endif

static const char micro_head[] = "POST /v1/chat/completions HTTP/1.1\r\n"
                                 "Host: 127.0.0.1:8080\r\n"
                                 "User-Agent: OpenAI/Python 1.99.9\r\n"
                                 "Accept: text/event-stream\r\n"
                                 "Accept-Encoding: gzip, deflate\r\n"
                                 "Authorization: Bearer sk-bench-0123456789abcdef\r\n"
                                 "Content-Type: application/json\r\n"
                                 "Connection: keep-alive\r\n"
                                 "Content-Length: 142\r\n"
                                 "\r\n";

/* The fixture cut into events: each one's wire bytes and its data. */
struct micro_input {
    char *bytes; /* the whole fixture */
    size_t len;
    size_t nev;
    struct {
        size_t off, len; /* wire bytes of the event, up to its blank line */
        char *data;      /* the event's data (owned) */
        size_t data_len;
    } ev[MICRO_MAX_EVENTS];
    /* The encoder's input: logged content events (raw = chunk JSON). */
    size_t nlog;
    struct sl_ev log[MICRO_MAX_EVENTS];
    struct sl_buf text[MICRO_MAX_EVENTS];
};

static volatile uint64_t micro_sink; /* keeps results alive */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int load(const char *path, struct micro_input *in)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    in->bytes = malloc(MICRO_FIXTURE_BYTES);
    if (in->bytes == NULL) {
        fclose(f);
        return -1;
    }
    in->len = fread(in->bytes, 1, MICRO_FIXTURE_BYTES, f);
    fclose(f);

    /* Split with the decoder itself; an event's wire bytes end where the
     * decoder dispatched it. */
    struct sl_sse_decoder d;
    sl_sse_decoder_init(&d, MICRO_EVENT_MAX);
    size_t pos = 0, start = 0;
    while (pos < in->len && in->nev < MICRO_MAX_EVENTS) {
        size_t used = 0;
        struct sl_sse_event ev;
        int rc = sl_sse_decoder_next(&d, in->bytes + pos, in->len - pos, &used, &ev);
        if (rc < 0) {
            fprintf(stderr, "micro: the fixture is not SSE: %s\n", sl_strerror(rc));
            sl_sse_decoder_free(&d);
            return -1;
        }
        pos += used;
        if (rc == 1) {
            size_t i = in->nev++;
            in->ev[i].off = start;
            in->ev[i].len = pos - start;
            in->ev[i].data = malloc(ev.data_len + 1);
            if (in->ev[i].data == NULL) {
                sl_sse_decoder_free(&d);
                return -1;
            }
            memcpy(in->ev[i].data, ev.data, ev.data_len);
            in->ev[i].data_len = ev.data_len;
            start = pos;
        }
        if (used == 0)
            break;
    }
    sl_sse_decoder_free(&d);
    if (in->nev == 0) {
        fprintf(stderr, "micro: no events in %s\n", path);
        return -1;
    }

    for (size_t i = 0; i < in->nev; i++) {
        struct sl_chunk ch;
        if (sl_chunk_read(in->ev[i].data, in->ev[i].data_len, &ch) != SL_OK ||
            ch.kind != SL_CHUNK_DATA || ch.nchoices == 0 || !ch.choices[0].has_content)
            continue;
        size_t k = in->nlog++;
        sl_buf_init(&in->text[k], MICRO_EVENT_MAX);
        if (sl_json_unescape(ch.choices[0].content.p, ch.choices[0].content.n, &in->text[k]) !=
            SL_OK)
            return -1;
        in->log[k] = (struct sl_ev){
            .seq = k + 1,
            .type = SL_EV_CONTENT,
            .raw = in->ev[i].data,
            .raw_len = in->ev[i].data_len,
            .text = sl_buf_ptr(&in->text[k]),
            .text_len = sl_buf_size(&in->text[k]),
        };
    }
    if (in->nlog == 0) {
        fprintf(stderr, "micro: no content chunks in %s\n", path);
        return -1;
    }
    return 0;
}

/* ---- the stages: each runs n events and returns them ------------------- */

__attribute__((noinline)) uint64_t micro_parser(const struct micro_input *in, uint64_t n)
{
    (void)in;
    const struct sl_http_limits lim = {16384, 100, 8192, 4 << 20};
    struct sl_http_header hdrs[MICRO_HDRS];
    uint64_t acc = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct sl_http_request req;
        size_t used = 0;
        if (sl_http_parse_request(micro_head, sizeof micro_head - 1, &lim, &req, hdrs, MICRO_HDRS,
                                  &used, NULL) != SL_OK)
            abort();
        acc += used + req.num_headers;
    }
    micro_sink += acc;
    return n;
}

__attribute__((noinline)) uint64_t micro_decoder(const struct micro_input *in, uint64_t n)
{
    struct sl_sse_decoder d;
    sl_sse_decoder_init(&d, MICRO_EVENT_MAX);
    uint64_t events = 0, acc = 0;
    while (events < n) {
        for (size_t i = 0; i < in->nev && events < n; i++) {
            const char *p = in->bytes + in->ev[i].off;
            size_t left = in->ev[i].len;
            while (left > 0) {
                size_t used = 0;
                struct sl_sse_event ev;
                int rc = sl_sse_decoder_next(&d, p, left, &used, &ev);
                if (rc < 0)
                    abort();
                p += used;
                left -= used;
                if (rc == 1) {
                    events++;
                    acc += ev.data_len;
                }
            }
        }
    }
    sl_sse_decoder_free(&d);
    micro_sink += acc;
    return events;
}

__attribute__((noinline)) uint64_t micro_chunk(const struct micro_input *in, uint64_t n)
{
    uint64_t events = 0, acc = 0;
    struct sl_chunk ch;
    while (events < n) {
        for (size_t i = 0; i < in->nev && events < n; i++, events++) {
            if (sl_chunk_read(in->ev[i].data, in->ev[i].data_len, &ch) != SL_OK)
                abort();
            acc += (uint64_t)ch.kind + ch.nchoices;
        }
    }
    micro_sink += acc;
    return events;
}

__attribute__((noinline)) uint64_t micro_encoder(const struct micro_input *in, uint64_t n)
{
    const struct sl_render_ctx ctx = {.stream_id = "str_0123456789abcdef"};
    struct sl_buf out;
    sl_buf_init(&out, MICRO_EVENT_MAX);
    uint64_t events = 0, acc = 0;
    while (events < n) {
        for (size_t i = 0; i < in->nlog && events < n; i++, events++) {
            sl_buf_reset(&out);
            if (sl_render_sse(&ctx, SL_RENDER_OPENAI, &in->log[i], &out) != SL_OK)
                abort();
            acc += sl_buf_size(&out);
        }
    }
    sl_buf_free(&out);
    micro_sink += acc;
    return events;
}

static const struct {
    const char *name;
    uint64_t (*run)(const struct micro_input *in, uint64_t n);
} micro_stages[] = {
    {"parser", micro_parser},
    {"decoder", micro_decoder},
    {"chunk", micro_chunk},
    {"encoder", micro_encoder},
};
#define MICRO_NSTAGES (sizeof micro_stages / sizeof micro_stages[0])

static void usage(void)
{
    fputs("usage: micro [--fixture F.sse] [--events N] [--stage NAME] [--json]\n", stderr);
}

int main(int argc, char **argv)
{
    const char *dir = getenv("SL_FIXTURES");
    char fixture_buf[4096];
    snprintf(fixture_buf, sizeof fixture_buf, "%s/%s", dir && *dir ? dir : MICRO_FIXTURE_DIR,
             MICRO_FIXTURE_NAME);
    const char *fixture = fixture_buf;
    const char *only = NULL;
    uint64_t n = MICRO_EVENTS;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--fixture") == 0 && i + 1 < argc) {
            fixture = argv[++i];
        } else if (strcmp(argv[i], "--events") == 0 && i + 1 < argc) {
            n = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--stage") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else {
            usage();
            return 2;
        }
    }
    if (n == 0) {
        usage();
        return 2;
    }
    static struct micro_input in;
    if (load(fixture, &in) != 0)
        return 1;

    if (only != NULL) {
        for (size_t s = 0; s < MICRO_NSTAGES; s++) {
            if (strcmp(micro_stages[s].name, only) == 0) {
                uint64_t ev = micro_stages[s].run(&in, n);
                printf(json ? "{\"stage\":\"%s\",\"events\":%llu}\n" : "%s %llu\n", only,
                       (unsigned long long)ev);
                return 0;
            }
        }
        fprintf(stderr, "micro: no stage %s\n", only);
        return 2;
    }

    if (json)
        printf("{\"fixture\":\"%s\",\"fixture_events\":%zu,\"stages\":{", fixture, in.nev);
    for (size_t s = 0; s < MICRO_NSTAGES; s++) {
        double best = 0;
        uint64_t ev = 0;
        micro_stages[s].run(&in, n / 10 + 1); /* warm the caches */
        for (int r = 0; r < MICRO_REPEATS; r++) {
            uint64_t t0 = now_ns();
            ev = micro_stages[s].run(&in, n);
            double ns = (double)(now_ns() - t0) / (double)ev;
            if (r == 0 || ns < best)
                best = ns;
        }
        if (json)
            printf("%s\"%s\":{\"events\":%llu,\"ns_per_event\":%.2f}", s ? "," : "",
                   micro_stages[s].name, (unsigned long long)ev, best);
        else
            printf("%-8s %10llu events %8.1f ns/event\n", micro_stages[s].name,
                   (unsigned long long)ev, best);
    }
    if (json)
        printf("}}\n");
    for (size_t i = 0; i < in.nev; i++)
        free(in.ev[i].data);
    for (size_t k = 0; k < in.nlog; k++)
        sl_buf_free(&in.text[k]);
    free(in.bytes);
    return 0;
}
