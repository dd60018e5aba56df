/* text.c - deterministic answer text for the simulator (see text.h).
 * Owns: word pools, plans, segment writers and the BPE-like token cutter.
 * Does not own: timing, stop strings, JSON. */
#include "sim/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum plan_op {
    OP_THINK_OPEN,
    OP_THINK_SENT,
    OP_THINK_CLOSE,
    OP_PARA,   /* arg sentences */
    OP_MDPARA, /* arg sentences, with **bold** and `code` */
    OP_BREAK,  /* "\n\n" */
    OP_HEADING,
    OP_BULLETS,  /* arg items */
    OP_NUMBERED, /* arg items */
    OP_CODE,
    OP_TABLE, /* arg rows */
    OP_EMOJI,
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const char *const nouns[] = {
    "stream",   "token",   "server",  "request", "answer",   "model",   "buffer",  "client",
    "gateway",  "latency", "socket",  "engine",  "batch",    "cache",   "queue",   "message",
    "response", "window",  "header",  "signal",  "pipeline", "replica", "record",  "value",
    "network",  "system",  "process", "result",  "schedule", "detail",  "pattern", "example",
    "question", "library", "decoder", "encoder", "budget",   "timeout", "café",    "sequence",
};
static const char *const verbs[] = {
    "sends",   "reads",  "keeps",   "moves",  "holds",  "returns", "measures",
    "handles", "splits", "joins",   "checks", "writes", "starts",  "finishes",
    "carries", "drops",  "follows", "builds", "parses", "tracks",
};
static const char *const adjs[] = {
    "small",  "steady", "careful", "quick",   "simple",  "bounded", "clear",
    "early",  "late",   "shared",  "typical", "stable",  "fresh",   "quiet",
    "direct", "useful", "honest",  "naïve",   "compact", "gentle",
};
static const char *const advs[] = {"often", "always", "usually", "quickly", "again",
                                   "later", "soon",   "only",    "rarely",  "gladly"};
static const char *const dets[] = {"the", "a", "each", "every", "this", "that", "one", "its"};
static const char *const preps[] = {"with",    "into",    "from",  "before", "after",
                                    "through", "without", "under", "over",   "across"};
static const char *const emojis[] = {" 😊", " 🚀", " ✨"};

static const char *const code_py[] = {
    "```python\n",
    "def total_latency(samples):\n",
    "    total = 0\n",
    "    for sample in samples:\n",
    "        total += sample.gap_ms\n",
    "    return total / max(len(samples), 1)\n",
    "```",
};
static const char *const code_c[] = {
    "```c\n",
    "static int count_tokens(const char *s, size_t n)\n",
    "{\n",
    "    int tokens = 0;\n",
    "    for (size_t i = 0; i < n; i++)\n",
    "        tokens += s[i] == ' ';\n",
    "    return tokens + 1;\n",
    "}\n",
    "```",
};

uint64_t sl__sim_rng(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static unsigned rnd(struct sl__sim_text *t, unsigned n)
{
    return (unsigned)(sl__sim_rng(&t->rng) % n);
}

static unsigned range(struct sl__sim_text *t, unsigned lo, unsigned hi)
{
    return lo + rnd(t, hi - lo + 1);
}

#define PICK(t, a) ((a)[rnd((t), (unsigned)N_OF(a))])

static void plan_add(struct sl__sim_text *t, enum plan_op op, unsigned arg)
{
    if (t->nplan >= SL__SIM_PLAN_MAX)
        return;
    t->plan[t->nplan] = (unsigned char)op;
    t->arg[t->nplan] = (unsigned char)arg;
    t->nplan++;
}

void sl__sim_text_init(struct sl__sim_text *t, uint64_t seed, enum sl__sim_kind kind, bool think,
                       bool endless)
{
    memset(t, 0, sizeof *t);
    t->rng = seed ^ 0x5eed5eed5eed5eedULL;
    t->kind = kind;
    t->endless = endless;
    if (think) {
        plan_add(t, OP_THINK_OPEN, 0);
        plan_add(t, OP_THINK_SENT, range(t, 1, 2));
        plan_add(t, OP_THINK_CLOSE, 0);
    }
    switch (kind) {
    case SL__SIM_PROSE: {
        unsigned paras = range(t, 2, 4);
        for (unsigned i = 0; i < paras; i++) {
            if (i > 0)
                plan_add(t, OP_BREAK, 0);
            plan_add(t, OP_PARA, range(t, 2, 4));
        }
        if (rnd(t, 2) == 0)
            plan_add(t, OP_EMOJI, 0);
        break;
    }
    case SL__SIM_MARKDOWN:
        plan_add(t, OP_HEADING, 2);
        plan_add(t, OP_BREAK, 0);
        plan_add(t, OP_MDPARA, range(t, 1, 2));
        plan_add(t, OP_BREAK, 0);
        plan_add(t, OP_BULLETS, range(t, 3, 4));
        plan_add(t, OP_BREAK, 0);
        plan_add(t, OP_HEADING, 3);
        plan_add(t, OP_BREAK, 0);
        plan_add(t, OP_NUMBERED, 3);
        plan_add(t, OP_BREAK, 0);
        plan_add(t, OP_CODE, rnd(t, 2));
        plan_add(t, OP_BREAK, 0);
        plan_add(t, OP_TABLE, range(t, 2, 3));
        plan_add(t, OP_BREAK, 0);
        plan_add(t, OP_MDPARA, 1);
        plan_add(t, OP_EMOJI, 0);
        break;
    case SL__SIM_LONG: {
        unsigned sections = range(t, 5, 6);
        for (unsigned s = 0; s < sections; s++) {
            if (s > 0)
                plan_add(t, OP_BREAK, 0);
            plan_add(t, OP_HEADING, 2);
            for (unsigned p = 0; p < 5; p++) {
                plan_add(t, OP_BREAK, 0);
                plan_add(t, OP_PARA, range(t, 4, 6));
            }
        }
        break;
    }
    }
}

/* --- the token cutter ---------------------------------------------------- */

static bool is_word_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c >= 0x80 || c == '\'';
}

static void q_push(struct sl__sim_text *t, size_t start, size_t end, enum sl__sim_tok_type type)
{
    if (end <= start || t->qn >= SL__SIM_QUEUE_TOKS)
        return;
    /* A cut never splits UTF-8: callers cut at ASCII bytes or run ends. */
    if (t->qn == 0)
        t->qoff[0] = (uint16_t)start;
    t->qoff[t->qn + 1] = (uint16_t)end;
    t->qtype[t->qn] = (unsigned char)type;
    t->qn++;
}

/* Cuts q[0..len) into tokens the way a byte-level BPE roughly does: a word
 * carries its leading space, punctuation stands alone (runs of the same mark
 * such as "**" or "```" stay together), newlines group, and long ASCII words
 * split in two. Tokens are contiguous, so their concatenation is the text. */
static void cut(struct sl__sim_text *t, size_t len, enum sl__sim_tok_type type)
{
    const unsigned char *s = (const unsigned char *)t->q;
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        if (s[i] == '\n') {
            while (i < len && s[i] == '\n')
                i++;
            q_push(t, start, i, type);
            continue;
        }
        if (s[i] == ' ') {
            size_t k = 0;
            while (i + k < len && s[i + k] == ' ')
                k++;
            if (i + k >= len || s[i + k] == '\n') {
                q_push(t, start, i + k, type);
                i += k;
                continue;
            }
            if (k >= 2) { /* indentation: all spaces but the one the word takes */
                q_push(t, start, i + k - 1, type);
                i += k - 1;
                start = i;
            }
            i++; /* the space joins the next unit */
        }
        if (is_word_byte(s[i])) {
            size_t w = i;
            bool ascii = true;
            while (i < len && is_word_byte(s[i])) {
                ascii = ascii && s[i] < 0x80;
                i++;
            }
            if (ascii && i - w > 8) {
                size_t mid = w + (i - w + 1) / 2;
                q_push(t, start, mid, type);
                q_push(t, mid, i, type);
            } else {
                q_push(t, start, i, type);
            }
        } else {
            unsigned char c = s[i];
            while (i < len && s[i] == c && i - start < 8)
                i++;
            q_push(t, start, i, type);
        }
    }
}

/* Appends printf text to the segment; returns the new length. */
static size_t seg_add(struct sl__sim_text *t, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static size_t seg_add(struct sl__sim_text *t, size_t len, const char *fmt, ...)
{
    if (len >= SL__SIM_SEG_BYTES)
        return len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->q + len, SL__SIM_SEG_BYTES - len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return len;
    size_t nl = len + (size_t)n;
    return nl >= SL__SIM_SEG_BYTES ? SL__SIM_SEG_BYTES - 1 : nl;
}

static void capitalize(char *p)
{
    if (*p >= 'a' && *p <= 'z')
        *p = (char)(*p - 'a' + 'A');
}

/* One sentence of prose. mark: wrap a word in ** or ` (markdown). */
static size_t sentence(struct sl__sim_text *t, size_t len, bool lead_space, bool mark)
{
    size_t first = len + (lead_space ? 1 : 0);
    const char *sp = lead_space ? " " : "";
    unsigned form = rnd(t, 4);
    const char *n1 = PICK(t, nouns), *n2 = PICK(t, nouns), *n3 = PICK(t, nouns);
    const char *bold_l = "", *bold_r = "", *code_l = "", *code_r = "";
    if (mark) {
        bold_l = bold_r = "**";
        code_l = code_r = "`";
    }
    switch (form) {
    case 0:
        len = seg_add(t, len, "%s%s %s %s%s%s %s %s %s", sp, PICK(t, dets), PICK(t, adjs), bold_l,
                      n1, bold_r, PICK(t, verbs), PICK(t, dets), n2);
        break;
    case 1:
        len = seg_add(t, len, "%s%s %s %s %s %s %s, %s %s %s%s%s", sp, PICK(t, dets), n1,
                      PICK(t, advs), PICK(t, verbs), PICK(t, dets), n2, PICK(t, preps),
                      PICK(t, dets), code_l, n3, code_r);
        break;
    case 2:
        len = seg_add(t, len, "%s%s %s %s %s %s %s %s %s %s", sp, PICK(t, preps), PICK(t, dets),
                      PICK(t, adjs), n1, PICK(t, dets), n2, PICK(t, verbs), PICK(t, dets), n3);
        if (mark)
            len = seg_add(t, len, " with `%s`", PICK(t, nouns));
        break;
    default:
        len = seg_add(t, len, "%s%s %s %s %s %s %s — %s %s %s %s", sp, PICK(t, dets), PICK(t, adjs),
                      n1, PICK(t, verbs), PICK(t, dets), n2, PICK(t, advs), PICK(t, preps),
                      PICK(t, dets), n3);
        break;
    }
    static const char *const ends[] = {".", ".", ".", ".", ".", ".", "!", "?"};
    len = seg_add(t, len, "%s", PICK(t, ends));
    capitalize(t->q + first);
    return len;
}

static size_t think_sentence(struct sl__sim_text *t, size_t len, bool first)
{
    if (first)
        return seg_add(t, len, "Okay, the user wants %s %s %s about the %s.", PICK(t, dets),
                       PICK(t, adjs), PICK(t, nouns), PICK(t, nouns));
    return seg_add(t, len, " Let me keep the %s %s and %s.", PICK(t, nouns), PICK(t, adjs),
                   PICK(t, adjs));
}

/* Writes the next segment of the plan into the queue; false at the end. */
static bool fill(struct sl__sim_text *t)
{
    t->qn = t->qi = 0;
    while (t->iplan >= t->nplan) {
        if (!t->endless)
            return false;
        t->nplan = t->iplan = t->sub = 0;
        plan_add(t, OP_BREAK, 0);
        plan_add(t, OP_PARA, range(t, 2, 4));
    }
    enum plan_op op = (enum plan_op)t->plan[t->iplan];
    unsigned arg = t->arg[t->iplan];
    bool done = true; /* op finished with this segment */
    size_t len = 0;
    switch (op) {
    case OP_THINK_OPEN:
        len = seg_add(t, 0, "<think>\n");
        q_push(t, 0, 7, SL__SIM_TOK_THINK_OPEN);
        q_push(t, 7, 8, SL__SIM_TOK_REASONING);
        break;
    case OP_THINK_SENT:
        len = think_sentence(t, 0, t->sub == 0);
        cut(t, len, SL__SIM_TOK_REASONING);
        done = ++t->sub >= (int)arg;
        break;
    case OP_THINK_CLOSE:
        len = seg_add(t, 0, "\n</think>\n\n");
        q_push(t, 0, 1, SL__SIM_TOK_REASONING);
        q_push(t, 1, 9, SL__SIM_TOK_THINK_CLOSE);
        q_push(t, 9, 11, SL__SIM_TOK_TEXT);
        break;
    case OP_PARA:
    case OP_MDPARA:
        len = sentence(t, 0, t->sub > 0, op == OP_MDPARA && t->sub == 0);
        cut(t, len, SL__SIM_TOK_TEXT);
        done = ++t->sub >= (int)arg;
        break;
    case OP_BREAK:
        len = seg_add(t, 0, "\n\n");
        cut(t, len, SL__SIM_TOK_TEXT);
        break;
    case OP_HEADING:
        len = seg_add(t, 0, "%s %s %s and the %s", arg == 2 ? "##" : "###", PICK(t, adjs),
                      PICK(t, nouns), PICK(t, nouns));
        capitalize(t->q + (arg == 2 ? 3 : 4));
        cut(t, len, SL__SIM_TOK_TEXT);
        break;
    case OP_BULLETS:
    case OP_NUMBERED: {
        done = t->sub + 1 >= (int)arg;
        char num[16];
        snprintf(num, sizeof num, "%d.", t->sub + 1);
        len = seg_add(t, 0, "%s **%s %s** %s %s %s%s", op == OP_BULLETS ? "-" : num, PICK(t, adjs),
                      PICK(t, nouns), PICK(t, verbs), PICK(t, dets), PICK(t, nouns),
                      done ? "" : "\n");
        capitalize(t->q + (op == OP_BULLETS ? 4 : strlen(num) + 3));
        cut(t, len, SL__SIM_TOK_TEXT);
        t->sub++;
        break;
    }
    case OP_CODE: {
        const char *const *lines = arg ? code_c : code_py;
        size_t n = arg ? N_OF(code_c) : N_OF(code_py);
        len = seg_add(t, 0, "%s", lines[t->sub]);
        cut(t, len, SL__SIM_TOK_TEXT);
        done = (size_t)++t->sub >= n;
        break;
    }
    case OP_TABLE:
        if (t->sub == 0) {
            len = seg_add(t, 0, "| Setting | Default | Notes |\n");
        } else if (t->sub == 1) {
            len = seg_add(t, 0, "|---------|---------|-------|\n");
        } else {
            len = seg_add(t, 0, "| `%s_%s` | %u ms | %s |%s", PICK(t, nouns), PICK(t, nouns),
                          range(t, 1, 500), PICK(t, adjs), t->sub + 1 >= (int)arg + 2 ? "" : "\n");
        }
        cut(t, len, SL__SIM_TOK_TEXT);
        done = ++t->sub >= (int)arg + 2;
        break;
    case OP_EMOJI:
        len = seg_add(t, 0, "%s", PICK(t, emojis));
        cut(t, len, SL__SIM_TOK_TEXT);
        break;
    }
    if (done) {
        t->iplan++;
        t->sub = 0;
    }
    return true;
}

void sl__sim_text_next(struct sl__sim_text *t, struct sl__sim_tok *tok)
{
    while (t->qi >= t->qn) {
        if (!fill(t)) {
            tok->type = SL__SIM_TOK_EOS;
            tok->s = "";
            tok->len = 0;
            return;
        }
    }
    tok->type = (enum sl__sim_tok_type)t->qtype[t->qi];
    tok->s = t->q + t->qoff[t->qi];
    tok->len = (size_t)(t->qoff[t->qi + 1] - t->qoff[t->qi]);
    t->qi++;
}

static bool word_starts(const char *w, size_t wl, const char *prefix)
{
    size_t pl = strlen(prefix);
    return wl >= pl && memcmp(w, prefix, pl) == 0;
}

enum sl__sim_kind sl__sim_text_pick_kind(const char *s, size_t len, uint64_t seed)
{
    bool md = false, lng = false;
    size_t i = 0;
    while (i < len) {
        while (i < len && !((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
            i++;
        char w[16];
        size_t wl = 0;
        while (i < len && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z'))) {
            if (wl < sizeof w)
                w[wl++] = (char)(s[i] | 0x20);
            i++;
        }
        if (word_starts(w, wl, "long") || word_starts(w, wl, "essay"))
            lng = true;
        if (word_starts(w, wl, "markdown") || word_starts(w, wl, "table") ||
            word_starts(w, wl, "code") || word_starts(w, wl, "list"))
            md = true;
    }
    if (lng)
        return SL__SIM_LONG;
    if (md)
        return SL__SIM_MARKDOWN;
    uint64_t st = seed ^ 0x6b696e64ULL;
    return sl__sim_rng(&st) % 3 == 2 ? SL__SIM_MARKDOWN : SL__SIM_PROSE;
}
