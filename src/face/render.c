/* render.c - logged events as clients see them (see render.h). Compact
 * events read what they need back from the kept upstream chunk with the
 * chunk reader; tool-call deltas, rare, go through jansson. */
#include "face/render.h"

#include <jansson.h>
#include <string.h>

#include "pipeline/chunk.h"

static int put_text_member(struct sl_buf *d, const char *key, const char *p, size_t n)
{
    int rc = sl_buf_printf(d, "\"%s\":", key);
    return rc == SL_OK ? sl_buf_put_json_str(d, p, n) : rc;
}

static int put_span_or_null(struct sl_buf *d, struct sl_span s)
{
    return s.p ? sl_buf_append(d, "\"", 1) == SL_OK && sl_buf_append(d, s.p, s.n) == SL_OK &&
                         sl_buf_append(d, "\"", 1) == SL_OK
                     ? SL_OK
                     : SL_ETOOBIG
               : sl_buf_puts(d, "null");
}

static int open_obj(const struct sl_render_ctx *ctx, const struct sl_ev *ev, struct sl_buf *d)
{
    if (ctx->multi_choice)
        return sl_buf_printf(d, "{\"choice\":%u,", ev->choice);
    return sl_buf_puts(d, "{");
}

/* tool_call {"index","id","name","arguments"} from the delta's first call. */
static int tool_call(const struct sl_render_ctx *ctx, const struct sl_ev *ev, struct sl_buf *d)
{
    json_t *arr = json_loadb(ev->text, ev->text_len, JSON_DECODE_ANY, NULL);
    json_t *tc = json_is_array(arr) ? json_array_get(arr, 0) : NULL;
    if (!json_is_object(tc)) {
        json_decref(arr);
        return 0;
    }
    json_t *fn = json_object_get(tc, "function");
    json_t *out = json_object();
    json_object_set(out, "index", json_object_get(tc, "index"));
    json_object_set(out, "id", json_object_get(tc, "id"));
    json_object_set(out, "name", json_object_get(fn, "name"));
    json_object_set(out, "arguments", json_object_get(fn, "arguments"));
    if (ctx->multi_choice)
        json_object_set_new(out, "choice", json_integer(ev->choice));
    char *s = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    int rc = s ? sl_buf_puts(d, s) : SL_ENOMEM;
    free(s);
    json_decref(out);
    json_decref(arr);
    return rc == SL_OK ? 1 : rc;
}

/* The summary in a usage event's text: {"finish_reason":..,"metrics":{..}};
 * finds the metrics object's bytes. */
static struct sl_span summary_metrics(const struct sl_ev *ev)
{
    const char *m = memmem(ev->text, ev->text_len, "\"metrics\":", 10);
    if (m == NULL)
        return (struct sl_span){"{}", 2};
    m += 10;
    const char *end = ev->text + ev->text_len;
    /* The summary is sluice's own compact JSON: the object ends at the
     * first '}' after it (no strings inside). */
    const char *close = memchr(m, '}', (size_t)(end - m));
    return close ? (struct sl_span){m, (size_t)(close - m + 1)} : (struct sl_span){"{}", 2};
}

int sl_render_compact(const struct sl_render_ctx *ctx, const struct sl_ev *ev, const char **name,
                      struct sl_buf *d, struct sl_buf *metrics)
{
    struct sl_chunk ch;
    int rc;
    switch (ev->type) {
    case SL_EV_START:
        if (sl_chunk_read(ev->raw, ev->raw_len, &ch) != SL_OK)
            return 0;
        *name = "start";
        rc = sl_buf_puts(d, "{\"id\":");
        if (rc == SL_OK)
            rc = sl_buf_put_json_str(d, ctx->stream_id, strlen(ctx->stream_id));
        if (rc == SL_OK)
            rc = sl_buf_puts(d, ",\"model\":");
        if (rc == SL_OK)
            rc = put_span_or_null(d, ch.model);
        if (rc == SL_OK)
            rc = sl_buf_printf(d, ",\"created\":%lld}", (long long)ch.created);
        return rc == SL_OK ? 1 : rc;
    case SL_EV_CONTENT:
    case SL_EV_REASONING:
    case SL_EV_FINISH:
        if (ev->text_len == 0)
            return 0;
        *name = ev->type == SL_EV_REASONING ? "reasoning" : "delta";
        rc = open_obj(ctx, ev, d);
        if (rc == SL_OK)
            rc = put_text_member(d, "text", ev->text, ev->text_len);
        if (rc == SL_OK)
            rc = sl_buf_puts(d, "}");
        return rc == SL_OK ? 1 : rc;
    case SL_EV_TOOL_CALL:
        *name = "tool_call";
        return tool_call(ctx, ev, d);
    case SL_EV_USAGE: {
        *name = "done";
        struct sl_span m = summary_metrics(ev);
        /* {"finish_reason":..,"usage":..,"metrics":..} */
        const char *fr = memmem(ev->text, ev->text_len, "\"finish_reason\":", 16);
        const char *frend =
            fr ? memmem(fr, (size_t)(ev->text + ev->text_len - fr), ",\"metrics\":", 11) : NULL;
        rc = sl_buf_puts(d, "{");
        if (rc == SL_OK)
            rc = fr && frend ? sl_buf_append(d, fr, (size_t)(frend - fr))
                             : sl_buf_puts(d, "\"finish_reason\":null");
        if (rc == SL_OK)
            rc = sl_buf_puts(d, ",\"usage\":");
        if (rc == SL_OK) {
            const char *u = ev->raw_len ? memmem(ev->raw, ev->raw_len, "\"usage\":", 8) : NULL;
            if (u && sl_chunk_read(ev->raw, ev->raw_len, &ch) == SL_OK && ch.has_usage)
                rc = sl_buf_printf(d,
                                   "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,"
                                   "\"total_tokens\":%lld}",
                                   (long long)ch.prompt_tokens, (long long)ch.completion_tokens,
                                   (long long)ch.total_tokens);
            else
                rc = sl_buf_puts(d, "null");
        }
        if (rc == SL_OK)
            rc = sl_buf_puts(d, ",\"metrics\":");
        if (rc == SL_OK)
            rc = sl_buf_append(d, m.p, m.n);
        if (rc == SL_OK)
            rc = sl_buf_puts(d, "}");
        if (rc == SL_OK && metrics)
            rc = sl_buf_append(metrics, m.p, m.n);
        return rc == SL_OK ? 1 : rc;
    }
    case SL_EV_ERROR:
        if (sl_chunk_read(ev->raw, ev->raw_len, &ch) != SL_OK || ch.kind != SL_CHUNK_ERROR)
            return 0;
        if (ch.error_type.n == 9 && memcmp(ch.error_type.p, "cancelled", 9) == 0) {
            *name = "done";
            rc =
                sl_buf_puts(d, "{\"finish_reason\":\"cancelled\",\"usage\":null,\"metrics\":null}");
            return rc == SL_OK ? 1 : rc;
        }
        *name = "error";
        rc = sl_buf_puts(d, "{\"message\":");
        if (rc == SL_OK)
            rc = put_span_or_null(d, ch.error_message);
        if (rc == SL_OK)
            rc = sl_buf_puts(d, ",\"type\":");
        if (rc == SL_OK)
            rc = put_span_or_null(d, ch.error_type);
        if (rc == SL_OK)
            rc = sl_buf_printf(d, ",\"code\":%lld}", (long long)ch.error_code);
        return rc == SL_OK ? 1 : rc;
    case SL_EV_BODY:
    case SL_EV_OTHER:
        return 0;
    }
    return 0;
}

int sl_render_sse(const struct sl_render_ctx *ctx, enum sl_render_format fmt,
                  const struct sl_ev *ev, struct sl_buf *out)
{
    size_t mark = out->len;
    int rc;
    if (fmt == SL_RENDER_OPENAI) {
        if ((ev->type == SL_EV_USAGE && !ctx->show_usage) || ev->raw_len == 0 ||
            ev->type == SL_EV_BODY)
            return SL_OK;
        rc = sl_buf_append(out, "id: ", 4);
        if (rc == SL_OK)
            rc = sl_buf_put_u64(out, ev->seq);
        if (rc == SL_OK)
            rc = sl_buf_append(out, "\ndata: ", 7);
        /* An upstream's multi-line data (pretty-printed JSON) goes out as
         * one data line per line, as SSE requires. */
        const char *p = ev->raw, *end = ev->raw + ev->raw_len;
        while (rc == SL_OK) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            rc = sl_buf_append(out, p, (size_t)((nl ? nl : end) - p));
            if (nl == NULL || rc != SL_OK)
                break;
            rc = sl_buf_append(out, "\ndata: ", 7);
            p = nl + 1;
        }
        if (rc == SL_OK)
            rc = sl_buf_append(out, "\n\n", 2);
    } else {
        struct sl_buf data, metrics;
        sl_buf_init(&data, out->max);
        sl_buf_init(&metrics, 4096);
        const char *name = NULL;
        rc = sl_render_compact(ctx, ev, &name, &data, &metrics);
        if (rc == 1) {
            rc = SL_OK;
            if (sl_buf_size(&metrics) > 0)
                rc = sl_buf_printf(out, "event: metrics\ndata: %.*s\n\n",
                                   (int)sl_buf_size(&metrics), sl_buf_ptr(&metrics));
            if (rc == SL_OK)
                rc = sl_buf_printf(out, "id: %llu\nevent: %s\ndata: ", (unsigned long long)ev->seq,
                                   name);
            if (rc == SL_OK)
                rc = sl_buf_append(out, sl_buf_ptr(&data), sl_buf_size(&data));
            if (rc == SL_OK)
                rc = sl_buf_append(out, "\n\n", 2);
        }
        sl_buf_free(&data);
        sl_buf_free(&metrics);
    }
    if (rc != SL_OK)
        out->len = mark;
    return rc;
}

const char *sl_render_end(enum sl_render_format fmt)
{
    return fmt == SL_RENDER_OPENAI ? "data: [DONE]\n\n" : "";
}
