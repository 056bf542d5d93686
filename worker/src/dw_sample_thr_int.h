/*
 * dynamo-worker: the threshold sampler, the algorithm the GPU runs
 * (worker/cuda/dw_cu_sample.cu), written as plain sequential C: the
 * reference the GPU test compares against, and the cpu backend's
 * opts.sample_on_backend path. Engine-internal.
 *
 * Same semantics as dw_sample (dw_sample_int.h: penalties, greedy,
 * temperature, top_k, min_p, top_p, one draw; logprobs of the raw logits),
 * but no sort and no heap: every step is a pass over the vocabulary that
 * a thread block does with a reduction.
 *
 *   penalties  over the row's distinct history tokens (dw_sample_pen_list:
 *              (id, count in the output) pairs, built on the host in
 *              O(n)): each pair is one independent update of x[id].
 *   greedy     argmax, lowest id on ties.
 *   top_k      the k-th largest x by bisection on the float's
 *              order-preserving 32-bit key (32 counting passes); ties at
 *              the k-th value are taken lowest id first up to k (a second
 *              bisection, on the id of the last one kept), so the set is
 *              exactly dw_sample's.
 *   min_p      a threshold on x: x >= max + log(min_p).
 *   top_p      bisection on the bits of a weight threshold t (weights
 *              w = exp(x - max) in [0, 1]): the largest t whose kept mass
 *              sum(w >= t) reaches top_p * mass. Ties at the threshold are
 *              all kept (dw_sample keeps the lowest ids among them only
 *              up to the mass): the set can be larger than dw_sample's
 *              by tokens of exactly the threshold's weight.
 *   draw       one uniform u (dw_rng_uniform), inverse CDF over the kept
 *              tokens in TOKEN-ID order: the first whose cumulative
 *              weight exceeds u * mass (rounding: the last kept with a
 *              positive weight). Same distribution as dw_sample (which
 *              walks its candidates in another order), not the same
 *              token for a given u.
 *
 * Logprobs: log-softmax of the raw logits (double sums); the top N by N
 * selection passes (value descending, lowest id first on ties).
 */
#ifndef DW_SAMPLE_THR_INT_H
#define DW_SAMPLE_THR_INT_H

#include <stdint.h>

#include "dw_sample_int.h"

/*
 * The distinct tokens of tokens[0..n_prompt + n_out) (first occurrence
 * order) with how often each occurs in the output part: pairs
 * pen[2i] = id, pen[2i + 1] = count, ids >= vocab skipped. count: vocab
 * zeros (dw_sampler_t.count), zero again on return. pen holds
 * 2 * min(n_prompt + n_out, vocab). Returns the number of pairs.
 */
uint32_t dw_sample_pen_list(const uint32_t *tokens, uint32_t n_prompt,
    uint32_t n_out, uint32_t vocab, uint32_t *count, uint32_t *pen);

/* Whether sp asks for any penalty (else the pen list is not needed). */
int dw_sample_has_pen(const dw_sampling_t *sp);

/* dw_sample's contract, the threshold algorithm above. */
void dw_sample_thr(dw_sampler_t *s, const float *logits,
    const dw_sampling_t *sp, dw_rng_t *rng, const uint32_t *tokens,
    uint32_t n_prompt, uint32_t n_out, dw_sample_out_t *out);

/*
 * Tests: the set the draw chooses among (kept[id] = 1, others 0; greedy:
 * the argmax alone) without drawing; returns its size. dw_sample_set
 * (dw_sample.c) is the same for dw_sample's own algorithm.
 */
uint32_t dw_sample_thr_set(dw_sampler_t *s, const float *logits,
    const dw_sampling_t *sp, const uint32_t *tokens, uint32_t n_prompt,
    uint32_t n_out, uint8_t *kept);
uint32_t dw_sample_set(dw_sampler_t *s, const float *logits,
    const dw_sampling_t *sp, const uint32_t *tokens, uint32_t n_prompt,
    uint32_t n_out, uint8_t *kept);

#endif
