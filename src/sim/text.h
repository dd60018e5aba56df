/* text.h - the simulator's deterministic answer text, one token at a time.
 * Owns: answer plans (prose, markdown, long), the Qwen3-style thinking part,
 * word pools, and cutting text into BPE-like tokens (" Hello", ",", " 😊").
 * Lazy and bounded: one sentence, line or row at a time in a fixed queue.
 * Does not own: timing, stop strings, JSON. Private to src/sim/. */
#ifndef SL_SIM_TEXT_H
#define SL_SIM_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sl__sim_kind { SL__SIM_PROSE, SL__SIM_MARKDOWN, SL__SIM_LONG };

enum sl__sim_tok_type {
    SL__SIM_TOK_TEXT,        /* answer text */
    SL__SIM_TOK_REASONING,   /* text inside <think>...</think> */
    SL__SIM_TOK_THINK_OPEN,  /* the "<think>" special token */
    SL__SIM_TOK_THINK_CLOSE, /* the "</think>" special token */
    SL__SIM_TOK_EOS,         /* end of the answer (text "") */
};

/* Bytes of one segment (a sentence, a list item, a code line, a table row)
 * and tokens queued from it. A segment is cut into the queue whole. */
#define SL__SIM_SEG_BYTES  1024
#define SL__SIM_QUEUE_TOKS 320
#define SL__SIM_PLAN_MAX   72
/* Longest token the generator makes, in bytes (bounds answer buffers). */
#define SL__SIM_TOK_MAX_BYTES 32

struct sl__sim_tok {
    enum sl__sim_tok_type type;
    const char *s; /* borrowed: valid until the next sl__sim_text_next() */
    size_t len;
};

struct sl__sim_text {
    uint64_t rng;
    enum sl__sim_kind kind;
    bool endless; /* ignore_eos: after the plan, more paragraphs forever */
    unsigned char plan[SL__SIM_PLAN_MAX];
    unsigned char arg[SL__SIM_PLAN_MAX]; /* per op: sentences, items... */
    int nplan, iplan, sub;
    /* token queue: bytes of the current segment and token bounds in it */
    char q[SL__SIM_SEG_BYTES + 16];
    uint16_t qoff[SL__SIM_QUEUE_TOKS + 1];
    unsigned char qtype[SL__SIM_QUEUE_TOKS];
    int qn, qi;
    bool para_open; /* a sentence was written in the current paragraph */
};

/* Starts a generator: same seed, kind and flags, same tokens. think prepends
 * a thinking part (10-30 tokens); endless never ends (ignore_eos). */
void sl__sim_text_init(struct sl__sim_text *t, uint64_t seed, enum sl__sim_kind kind, bool think,
                       bool endless);
/* The next token; after SL__SIM_TOK_EOS every call gives EOS again. */
void sl__sim_text_next(struct sl__sim_text *t, struct sl__sim_tok *tok);

/* Picks the kind from the words of the user's text when it asks ("markdown",
 * "table", "code", "list" -> markdown; "long", "essay" -> long), else from the
 * seed (prose or markdown). */
enum sl__sim_kind sl__sim_text_pick_kind(const char *s, size_t len, uint64_t seed);

/* splitmix64: the simulator's one PRNG step (also used for ids and jitter). */
uint64_t sl__sim_rng(uint64_t *state);

#endif
