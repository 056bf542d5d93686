/*
 * dynamo-worker: cuda backend state (internal).
 *
 * Weights live on the device in the storage type dt (--dtype: BF16, F16
 * or F32; esz bytes an element), the projections of a layer fused
 * where they share an input: qkv = [q; k; v] (rows of n_heads*hd,
 * n_kv_heads*hd, n_kv_heads*hd, so one GEMM's output row is what
 * dw_cu_rope_kv addresses in place) and gu = [gate; up]. Norm weights and
 * biases are F32. One stream; cuBLAS GEMMs with dt inputs and F32
 * accumulation (the logits GEMM writes F32). Storage arrays are void *:
 * offsets in elements go through dw_cu_el (-Wpointer-arith refuses
 * arithmetic on them).
 */
#ifndef DW_BACKEND_CUDA_INT_H
#define DW_BACKEND_CUDA_INT_H

#include <cublas_v2.h>

#include "dw_backend.h"
#include "dw_cuda.h"
#include "dw_model_int.h"

typedef struct {
    void       *qkv;          /* [qd + 2 kvd][hidden] */
    void       *o;            /* [hidden][qd] */
    void       *gu;           /* [2 inter][hidden] */
    void       *down;         /* [hidden][inter] */
    float      *attn_norm, *ffn_norm, *o_bias;
} dw_cu_layer_t;

typedef struct {
    const dw_model_t  *m;
    int                device;
    cudaStream_t       stream;
    cublasHandle_t     blas;
    uint32_t           qd, kvd, bs, n_blocks;

    void              *embed;         /* [vocab][hidden] */
    void              *lm_head;       /* = embed when tied */
    float             *final_norm;
    float             *inv_freq;      /* [hd / 2] */
    dw_cu_layer_t     *layers;
    dw_cu_kv_t         kv;            /* the pool, block-major (dw_cuda.h) */

    /* per-step scratch (device), grown as needed */
    uint32_t           cap_rows, cap_logits;
    float             *x;             /* residual [rows][hidden] */
    void              *xn, *qkvo, *att, *tmp, *gu, *act;
    float             *logits;        /* [n_logits][vocab] */
    void              *ws;            /* decode split-K workspace */
    size_t             ws_cap;
    /* per-step metadata: host (pinned) image and its device copy */
    uint32_t          *meta_h, *meta_d;
    size_t             meta_cap;      /* uint32_t each */
    uint32_t          *seq_order;     /* host: first row of each seq */
    uint32_t           cap_seqs;
    dw_dtype_t         dt;            /* storage type (--dtype) */
    size_t             esz;           /* its size in bytes */
} dw_cu_t;

/* p + n elements of the storage type */
static inline void *
dw_cu_el(const dw_cu_t *c, const void *p, size_t n)
{
    return (char *) p + n * c->esz;
}

/* the forward pass (dw_backend_cuda_fwd.c) */
int dw_cu_forward(dw_backend_t *be, dw_step_t *st);

#endif
