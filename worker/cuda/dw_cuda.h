/*
 * dynamo-worker: the cuda backend's kernels, C-callable (worker/cuda/).
 *
 * Storage is BF16, F16 or F32 (dw_dtype_t dt: the type of every array
 * passed as void * below; the attention and RoPE kernels take it from the
 * pool, kv->dtype), arithmetic F32. The residual stream x is kept in F32
 * between layers (as the cpu backend does), so only GEMM inputs and
 * outputs and the KV cache round to the storage type. Another dt:
 * cudaErrorInvalidValue.
 * Every launcher checks its arguments (cudaErrorInvalidValue when a
 * shape is out of what the kernel handles), enqueues on stream and
 * returns cudaGetLastError(); nothing synchronises. All pointers are
 * device pointers unless said otherwise; matrices are row-major with a
 * leading dimension ld in elements (rows of a fused QKV or gate/up GEMM
 * output can be addressed in place).
 *
 * KV pool (device memory), block-major: block b holds, for every layer l
 * and s = 0 (K) / 1 (V), one chunk of block_size x n_kv_heads x head_dim
 * elements, token-major ([slot][kv head][dim]); chunk (b, l, s) starts at
 * element ((b * n_layers + l) * 2 + s) * chunk, chunk = block_size *
 * n_kv_heads * head_dim. A block is thus one contiguous region of
 * 2 * n_layers * chunk elements (one RMA put moves it), described for
 * the transfer layer by dw_xfer_layout_block_major (worker/XFER.md).
 * Position t of a sequence lives in block table[t / block_size], slot
 * t % block_size; a row's "slot" below is the pool-wide index
 * block * block_size + slot.
 */
#ifndef DW_CUDA_H
#define DW_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "dw_model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef uint16_t  dw_bf16_t;

typedef struct {
    void       *base;         /* elements of dtype */
    uint32_t    n_layers;
    uint32_t    n_kv_heads;
    uint32_t    head_dim;
    uint32_t    block_size;
    uint32_t    n_blocks;
    dw_dtype_t  dtype;        /* of the pool, and of q/k/v/out of the
                                 kernels that take the pool */
} dw_cu_kv_t;

/* Largest head_dim the attention and RoPE kernels take (even, >= 2). */
#define DW_CU_MAX_HEAD_DIM   256
/* Largest n_heads / n_kv_heads the decode kernel takes. */
#define DW_CU_MAX_GROUP      16
/* Keys per split of the decode kernel (split-K over long contexts). */
#define DW_CU_DECODE_SPLIT   512

/* ---- dw_cu_elem.cu ---- */

/* x[r][0..n) = F32 of E[tokens[r]] (E: vocab x n, dt). */
cudaError_t dw_cu_embed(float *x, const void *E, const uint32_t *tokens,
    uint32_t rows, uint32_t n, dw_dtype_t dt, cudaStream_t st);

/* y[r * ldy + i] = silu(g[r * ldg + i]) * u[r * ldg + i], i < n (g and u
   share ld: the halves of one gate/up output, or two matrices alike). */
cudaError_t dw_cu_swiglu(void *y, size_t ldy, const void *g, const void *u,
    size_t ldg, uint32_t rows, uint32_t n, dw_dtype_t dt, cudaStream_t st);

/* x[r][i] += d[r * ldd + i] (+ bias[i] when bias is not NULL), the
   residual add after attention's o and the MLP's down projection. */
cudaError_t dw_cu_residual_add(float *x, const void *d, size_t ldd,
    const float *bias, uint32_t rows, uint32_t n, dw_dtype_t dt,
    cudaStream_t st);

/* ---- dw_cu_norm.cu ---- */

/* y[r * ldy + i] = dt(x[r][i] / rms(x[r]) * g[i]), n elements a row
   (x F32 with rows of n, g F32). */
cudaError_t dw_cu_rmsnorm(void *y, size_t ldy, const float *x,
    const float *g, uint32_t rows, uint32_t n, float eps, dw_dtype_t dt,
    cudaStream_t st);
/* The residual add fused with the next norm: x[r] += d[r] (+ bias), then
   y[r] = rmsnorm(x[r]) * g. */
cudaError_t dw_cu_add_rmsnorm(void *y, size_t ldy, float *x, const void *d,
    size_t ldd, const float *bias, const float *g, uint32_t rows, uint32_t n,
    float eps, dw_dtype_t dt, cudaStream_t st);
/* Final norm of selected rows (the logits rows): y[i * ldy ..] =
   rmsnorm(x[rows_idx[i]]) * g, the input of the lm_head GEMM. */
cudaError_t dw_cu_rmsnorm_rows(void *y, size_t ldy, const float *x,
    const uint32_t *rows_idx, const float *g, uint32_t n_rows, uint32_t n,
    float eps, dw_dtype_t dt, cudaStream_t st);

/* ---- dw_cu_rope.cu ---- */

/*
 * HF rotate-half RoPE of each row's q heads and k heads in place (pairs
 * (i, i + hd/2) by angle pos[r] * inv_freq[i], inv_freq from
 * dw_kern_rope_freqs: llama3 scaling included), then the row's roped K
 * and its V written into the pool at layer, pool slot slot[r]. q, k, v:
 * rows of n_heads*hd, n_kv_heads*hd and n_kv_heads*hd elements of
 * kv->dtype, ld apart.
 */
cudaError_t dw_cu_rope_kv(void *q, void *k, const void *v,
    size_t ld, uint32_t rows, uint32_t n_heads, const uint32_t *pos,
    const uint32_t *slot, const float *inv_freq, const dw_cu_kv_t *kv,
    uint32_t layer, cudaStream_t st);

/* ---- dw_cu_attn_decode.cu ---- */

/*
 * One query row per sequence (decode), grouped-query attention over
 * positions 0..ctx_len[s]-1 of the sequence's block table (the new
 * token's K/V already in the pool, dw_cu_rope_kv). out[s] = n_heads*hd
 * elements (ldo apart), q rows ldq apart, both of kv->dtype. tables:
 * n_seqs x max_blocks block ids. Split-K: keys in splits of
 * DW_CU_DECODE_SPLIT, each split's partial (max, sum, out) in ws, then
 * merged; ws must hold
 * dw_cu_attn_decode_ws(n_seqs, n_heads, head_dim, max_ctx) bytes, max_ctx
 * >= every ctx_len.
 */
size_t dw_cu_attn_decode_ws(uint32_t n_seqs, uint32_t n_heads,
    uint32_t head_dim, uint32_t max_ctx);
cudaError_t dw_cu_attn_decode(void *out, size_t ldo, const void *q,
    size_t ldq, const dw_cu_kv_t *kv, uint32_t layer, uint32_t n_heads,
    const uint32_t *tables, uint32_t max_blocks, const uint32_t *ctx_len,
    uint32_t n_seqs, uint32_t max_ctx, float scale, void *ws,
    cudaStream_t st);

/* ---- dw_cu_attn_prefill.cu ---- */

/*
 * Prompt chunks: sequence s has q_len[s] query rows starting at row
 * q_start[s] of q (and of out), at positions pos0[s]..pos0[s]+q_len[s]-1;
 * row at position p attends causally to positions 0..p through the
 * sequence's block table (earlier chunks and cached prefixes included;
 * this chunk's K/V already written by dw_cu_rope_kv). Tiled with an
 * online softmax (flash-attention style), GQA. q and out of kv->dtype.
 * max_q_len >= every q_len; at most 65535 sequences a call.
 */
cudaError_t dw_cu_attn_prefill(void *out, size_t ldo, const void *q,
    size_t ldq, const dw_cu_kv_t *kv, uint32_t layer,
    uint32_t n_heads, const uint32_t *tables, uint32_t max_blocks,
    const uint32_t *q_start, const uint32_t *q_len, const uint32_t *pos0,
    uint32_t n_seqs, uint32_t max_q_len, float scale, cudaStream_t st);

/* ---- dw_cu_sample.cu ---- */

/*
 * Sampling on the device, one thread block per row: the threshold
 * algorithm of worker/src/dw_sample_thr_int.h (its sequential C
 * reference, same semantics as the host's dw_sample): penalties, greedy
 * argmax, temperature, top_k by bisection on the k-th largest value's
 * order-preserving bits, min_p as a threshold, top_p by bisection on a
 * weight threshold (ties at it kept), one uniform draw (xoshiro256**,
 * the host's dw_rng_uniform stream) by inverse CDF over the kept tokens
 * in token-id order; logprobs of the raw logits. No sort.
 */
#define DW_CU_SAMPLE_TOP  20          /* = DW_MAX_TOP_LOGPROBS */

/* One row's parameters (host-filled, copied to the device). */
typedef struct {
    int32_t   greedy;          /* argmax (temperature < eps or top_k 1) */
    float     inv_temp;        /* 1 / temperature (host-computed) */
    int32_t   top_k;           /* <= 0 or >= vocab: off */
    float     top_p;           /* outside (0, 1): off */
    float     min_p;           /* <= 0: off */
    float     log_min_p;       /* logf(min_p), host-computed */
    float     repetition_penalty;  /* applied when > 0 and != 1 */
    float     presence_penalty;
    float     frequency_penalty;
    int32_t   n_logprobs;      /* -1: none; else the top N, N clamped to
                                  DW_CU_SAMPLE_TOP */
    uint32_t  pen_off;         /* the row's penalty pairs: pen[2 * pen_off
                                  .. 2 * (pen_off + n_pen)) */
    uint32_t  n_pen;
    uint64_t  rng[4];          /* xoshiro256** state before the draw */
} dw_cu_sample_param_t;

/* One row's result. */
typedef struct {
    uint32_t  token;
    float     logprob;         /* the token's, when n_logprobs >= 0 */
    uint32_t  n_top;
    uint32_t  drew;            /* 1 when the rng advanced (one draw) */
    uint64_t  rng[4];          /* the state after */
    uint32_t  top_ids[DW_CU_SAMPLE_TOP];
    float     top_logprobs[DW_CU_SAMPLE_TOP];
} dw_cu_sample_out_t;

/*
 * out[r] for each of n_rows rows of logits[n_rows][vocab] (F32, not
 * modified) with params[r]; work: n_rows x vocab floats of scratch (the
 * penalised, scaled logits). pen: (id, count in the output) pairs of
 * each row's distinct history tokens (dw_sample_pen_list), only for rows
 * with penalties (n_pen 0 otherwise; pen may be NULL when no row has
 * any). kept: NULL, or (tests) n_rows x vocab bytes set to 1 for the
 * tokens the draw chose among (greedy: the argmax), 0 otherwise. Every
 * pointer is a device pointer.
 */
cudaError_t dw_cu_sample(dw_cu_sample_out_t *out, float *work,
    const float *logits, const dw_cu_sample_param_t *params,
    const uint32_t *pen, uint8_t *kept, uint32_t n_rows, uint32_t vocab,
    cudaStream_t st);

#ifdef __cplusplus
}
#endif

#endif
