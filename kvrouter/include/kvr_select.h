/*
 * kvrouter: worker selection (Dynamo's cost, plus a hot-spot guard).
 *
 *   new_prefill = max(0, prompt_tokens - overlap * B)
 *   new_blocks  = max(0, ceil(prompt_tokens / B) - overlap)
 *   cost        = overlap_weight * (queued_prefill + new_prefill) / B
 *                 + (active_blocks + new_blocks)
 *
 * Lowest cost wins; ties go to the least loaded. A temperature > 0 samples
 * from a softmax over normalised costs instead. A worker whose load exceeds
 * the least loaded worker's by the balance margin gets no credit for its
 * overlap, so a popular prefix cannot pile up on one worker.
 */
#ifndef KVR_SELECT_H
#define KVR_SELECT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t  worker_id;
    uint32_t  overlap_blocks;
    uint64_t  active_blocks;
    uint64_t  queued_prefill_tokens;
} kvr_candidate_t;

typedef struct {
    uint32_t  block_size;        /* B, > 0 */
    double    overlap_weight;    /* default 1.0 */
    double    temperature;       /* 0: argmin */
    double    balance_rel;       /* hot if load > min_load * (1 + rel) + abs */
    double    balance_abs;       /* in blocks; rel < 0 disables the guard */
} kvr_select_params_t;

typedef struct {
    size_t    index;             /* into the candidate array */
    double    cost;
    uint32_t  credited_overlap;  /* 0 when the guard removed it */
} kvr_choice_t;

/*
 * overlap_weight 1.0, temperature 0, balance_rel 0.5, balance_abs
 * ceil(1024 / block_size) blocks (64 at B = 16: one long prompt of work).
 * Per-request overrides: pass a modified copy to kvr_select.
 */
void kvr_select_defaults(kvr_select_params_t *p, uint32_t block_size);

/*
 * Chooses among c[0..n). rnd is a uniform random 64-bit value, used only when
 * temperature > 0 or to break exact ties. KVR_ERR_INVAL if n == 0 or params
 * are invalid (block_size 0; overlap_weight or temperature negative or not
 * finite; balance_rel NaN; with balance_rel >= 0, balance_abs negative or
 * not finite). With temperature > 0 a candidate is drawn with probability
 * proportional to exp(-(cost - min) / (max - min) / temperature).
 */
int kvr_select(const kvr_select_params_t *p, const kvr_candidate_t *c,
    size_t n, uint64_t prompt_tokens, uint64_t rnd, kvr_choice_t *out);

/*
 * The cost of one candidate (with full overlap credit), for logs/metrics;
 * NaN if p is invalid or c is NULL.
 */
double kvr_select_cost(const kvr_select_params_t *p, const kvr_candidate_t *c,
    uint64_t prompt_tokens);

#endif
