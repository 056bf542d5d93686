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
#include <nccl.h>

#include "dw_backend.h"
#include "dw_cuda.h"
#include "dw_model_int.h"
#include "dw_tp.h"

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

    /* tensor parallelism (dw_backend_cuda_tp.c): this rank's shard
       (dw_tp.h); with one GPU rank 0 of 1, the whole model. qd and kvd
       above are the rank's (nh * hd, nkv * hd). */
    dw_tp_shard_t      tp;
    uint32_t           nh, nkv, im;   /* local q heads, KV heads, inter */
    ncclComm_t         comm;          /* NULL with one GPU */
    float             *lpart, *gather; /* lm_head slice out, all-gathered */
    uint32_t           cap_gather;    /* logits rows they hold */

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
} dw_cu_t;

/* the forward pass (dw_backend_cuda_fwd.c) */
int dw_cu_forward(dw_backend_t *be, dw_step_t *st);

/* One rank's state on device o->device + rank (dw_backend_cuda.c): the
   backend as with one GPU when n_ranks is 1. Checks done by the caller. */
int dw_cu_create_rank(const dw_model_t *m, const dw_backend_opts_t *o,
    uint32_t n_ranks, uint32_t rank, dw_backend_t **out, char *err,
    size_t errlen);

/* tensor parallelism (dw_backend_cuda_tp.c) */
int dw_cu_tp_create(const dw_model_t *m, const dw_backend_opts_t *o,
    int n_devices, dw_backend_t **out, char *err, size_t errlen);
/* x[n] (BF16, on c's stream) = its sum over the ranks, in place */
int dw_cu_tp_allreduce(dw_cu_t *c, dw_bf16_t *x, size_t n);
/* c->logits[n_logits][vocab] (on rank 0) = the lm_head over c->xn's first
   n_logits rows, each rank its vocab slice, all-gathered */
int dw_cu_tp_logits(dw_cu_t *c, uint32_t n_logits);

#endif
