/*
 * dynamo-worker: cuda backend state (internal).
 *
 * Weights live on the device in BF16, the projections of a layer fused
 * where they share an input: qkv = [q; k; v] (rows of n_heads*hd,
 * n_kv_heads*hd, n_kv_heads*hd, so one GEMM's output row is what
 * dw_cu_rope_kv addresses in place) and gu = [gate; up]. Norm weights and
 * biases are F32. One stream; cuBLAS GEMMs with BF16 inputs and F32
 * accumulation (the logits GEMM writes F32).
 */
#ifndef DW_BACKEND_CUDA_INT_H
#define DW_BACKEND_CUDA_INT_H

#include <cublas_v2.h>

#include "dw_backend.h"
#include "dw_cuda.h"
#include "dw_model_int.h"

typedef struct {
    dw_bf16_t  *qkv;          /* [qd + 2 kvd][hidden] */
    dw_bf16_t  *o;            /* [hidden][qd] */
    dw_bf16_t  *gu;           /* [2 inter][hidden] */
    dw_bf16_t  *down;         /* [hidden][inter] */
    float      *attn_norm, *ffn_norm, *o_bias;
} dw_cu_layer_t;

typedef struct {
    const dw_model_t  *m;
    int                device;
    cudaStream_t       stream;
    cublasHandle_t     blas;
    uint32_t           qd, kvd, bs, n_blocks;

    dw_bf16_t         *embed;         /* [vocab][hidden] */
    dw_bf16_t         *lm_head;       /* = embed when tied */
    float             *final_norm;
    float             *inv_freq;      /* [hd / 2] */
    dw_cu_layer_t     *layers;
    dw_cu_kv_t         kv;            /* the pool, block-major (dw_cuda.h) */

    /* per-step scratch (device), grown as needed */
    uint32_t           cap_rows, cap_logits;
    float             *x;             /* residual [rows][hidden] */
    dw_bf16_t         *xn, *qkvo, *att, *tmp, *gu, *act;
    float             *logits;        /* [n_logits][vocab] */
    void              *ws;            /* decode split-K workspace */
    size_t             ws_cap;
    /* per-step metadata: host (pinned) image and its device copy */
    uint32_t          *meta_h, *meta_d;
    size_t             meta_cap;      /* uint32_t each */
    uint32_t          *seq_order;     /* host: first row of each seq */
    uint32_t           cap_seqs;
    struct dw_cu_smp_s *smp;          /* device sampling state, or NULL */
} dw_cu_t;

/* the forward pass (dw_backend_cuda_fwd.c) */
int dw_cu_forward(dw_backend_t *be, dw_step_t *st);
/* the same, but the logits stay on the device and dw_cu_sample_enqueue
   samples them (the step's outputs copied back instead of the logits) */
int dw_cu_forward_dev_sample(dw_backend_t *be, dw_step_t *st);

/*
 * Sampling on the device (dw_backend_cuda_sample.c): ops->sample fills
 * each row's parameters and penalty pairs, runs the step through
 * dw_cu_forward_dev_sample, whose end calls dw_cu_sample_enqueue (the
 * launch on c->logits and the copy of the small outputs), then hands
 * tokens, logprobs and advanced RNG states to the engine.
 */
int dw_cu_sample_step(dw_backend_t *be, dw_step_t *st,
    const dw_sample_row_t *rows, dw_sample_out_t *out);
int dw_cu_sample_enqueue(dw_cu_t *c, uint32_t n_logits);
void dw_cu_sample_free(dw_cu_t *c);
/* a row's kernel parameters from its sampling settings and RNG */
void dw_cu_sample_param_fill(dw_cu_sample_param_t *p, const dw_sampling_t *sp,
    const dw_rng_t *rng, uint32_t pen_off, uint32_t n_pen);

#endif
