/*
 * dynamo-worker: sampling one token from a row of logits (engine-internal).
 *
 * Order (as vLLM): penalties (repetition over prompt + output, HF
 * semantics: positive logits divided, negative multiplied, each distinct
 * token once; presence and frequency over output tokens, OpenAI
 * semantics), then greedy argmax when temperature is 0 (below
 * DW_SAMPLING_EPS), else temperature,
 * top_k, min_p (relative to the most probable token, so its place in the
 * order does not matter), top_p over what is left (the smallest set of
 * most probable tokens whose mass reaches top_p, at least one), and a draw
 * from the per-request RNG (one draw per sampled token).
 *
 * Logprobs are those of the raw model distribution (log-softmax of the
 * logits as the backend produced them, before penalties and temperature),
 * as vLLM reports by default and OpenAI documents: they describe the model,
 * not the sampling settings. The sampled token's logprob and the top N
 * (N <= DW_MAX_TOP_LOGPROBS) come from the same distribution.
 *
 * Cost for a vocab V: O(V) for temperature, softmax weights and min_p,
 * O(n) for the penalties over n prompt + output tokens, O(V log k) for
 * top_k (a heap), and O(candidates) expected for top_p: a quickselect by
 * probability mass finds the nucleus without sorting (only a final run of
 * at most 16 candidates is sorted). No sort of the vocabulary.
 */
#ifndef DW_SAMPLE_INT_H
#define DW_SAMPLE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "dw_engine.h"
#include "dw_sampling.h"

/* DW_SAMPLING_EPS, dw_rng_t and its functions: dw_sampling.h */

/* Scratch space for one vocabulary size (reused across calls). */
typedef struct {
    uint32_t   vocab;
    float     *x;        /* working logits */
    uint32_t  *idx;      /* candidate ids */
    uint32_t  *count;    /* per-token counts for penalties (kept zero) */
    uint32_t  *pen;      /* 2 x vocab: dw_sample_pen_list's pairs */
} dw_sampler_t;

int dw_sampler_init(dw_sampler_t *s, uint32_t vocab);
void dw_sampler_free(dw_sampler_t *s);

/* dw_sample_out_t: dw_sampling.h */

/* Greedy: argmax, no RNG draw (as vLLM: temperatures this small would
   overflow 1/t). */
static inline int
dw_sample_is_greedy(const dw_sampling_t *sp)
{
    return !(sp->temperature >= DW_SAMPLING_EPS) || sp->top_k == 1;
}

/* The first maximum of x[0..n) (lowest id on ties). */
uint32_t dw_sample_argmax(const float *x, uint32_t n);

/*
 * Samples from logits[vocab]; tokens[0..n_prompt) is the prompt and
 * tokens[n_prompt..n_prompt + n_out) the output so far (for penalties).
 * logprobs from sp->logprobs (-1: none).
 */
void dw_sample(dw_sampler_t *s, const float *logits,
    const dw_sampling_t *sp, dw_rng_t *rng, const uint32_t *tokens,
    uint32_t n_prompt, uint32_t n_out, dw_sample_out_t *out);

#endif
