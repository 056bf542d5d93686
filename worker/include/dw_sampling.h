/*
 * dynamo-worker: sampling parameters, the per-request RNG and one sampled
 * token's result: the types the engine and a backend that samples itself
 * (dw_backend_ops_t.sample) share. The host sampler is dw_sample
 * (worker/src/dw_sample_int.h: order and semantics).
 */
#ifndef DW_SAMPLING_H
#define DW_SAMPLING_H

#include <stdint.h>

#define DW_MAX_STOP_IDS     16
#define DW_MAX_TOP_LOGPROBS 20

/* Temperatures below this sample greedily (vLLM's _SAMPLING_EPS). */
#define DW_SAMPLING_EPS  1e-5f

typedef struct {
    float     temperature;         /* 0: greedy */
    float     top_p;               /* 1: off */
    int32_t   top_k;               /* <= 0: off */
    float     min_p;               /* 0: off */
    float     repetition_penalty;  /* 1: off (HF/vLLM semantics) */
    float     presence_penalty;    /* 0: off (OpenAI semantics) */
    float     frequency_penalty;   /* 0: off */
    int       has_seed;
    uint64_t  seed;                /* same seed + prompt: same output */
    int32_t   logprobs;            /* -1: none; 0..20: sampled + top N */
    uint32_t  max_tokens;          /* >= 1 */
    int       ignore_eos;
    uint32_t  n_stop_ids;
    uint32_t  stop_ids[DW_MAX_STOP_IDS];  /* finish "stop" on any of these */
} dw_sampling_t;

/* temperature 1, top_p 1, no top_k/min_p/penalties, logprobs -1,
   max_tokens 16 */
void dw_sampling_defaults(dw_sampling_t *sp);

/* xoshiro256**, seeded by splitmix64 */
typedef struct {
    uint64_t  s[4];
} dw_rng_t;

void dw_rng_seed(dw_rng_t *r, uint64_t seed);
uint64_t dw_rng_next(dw_rng_t *r);
/* uniform in [0, 1) with 53 bits: (next >> 11) * 2^-53 */
double dw_rng_uniform(dw_rng_t *r);
/* a seed for requests without one: distinct per call */
uint64_t dw_rng_fresh_seed(void);

typedef struct {
    uint32_t  token;
    float     logprob;
    uint32_t  n_top;
    uint32_t  top_ids[DW_MAX_TOP_LOGPROBS];
    float     top_logprobs[DW_MAX_TOP_LOGPROBS];
} dw_sample_out_t;

/*
 * One row to sample (dw_backend_ops_t.sample): its parameters, its RNG
 * (advanced in place: one dw_rng_uniform draw per non-greedy sampled
 * token, exactly as dw_sample), and its tokens for the penalties:
 * tokens[0..n_prompt) the prompt, tokens[n_prompt..n_prompt + n_out) the
 * output so far.
 */
typedef struct {
    const dw_sampling_t  *sp;
    dw_rng_t             *rng;
    const uint32_t       *tokens;
    uint32_t              n_prompt;
    uint32_t              n_out;
} dw_sample_row_t;

#endif
