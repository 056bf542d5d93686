/*
 * dynamo-worker: cuda backend state (internal).
 *
 * Weights live on the device in the storage type dt (--dtype: BF16, F16
 * or F32; esz bytes an element), the projections of a layer fused
 * where they share an input: qkv = [q; k; v] (rows of n_heads*hd,
 * n_kv_heads*hd, n_kv_heads*hd, so one GEMM's output row is what
 * dw_cu_rope_kv addresses in place) and gu = [gate; up]. Norm weights and
 * biases are F32. One stream; cuBLASLt GEMMs (dw_cu_gemm.c) with inputs
 * of the storage type dt and F32 accumulation (the logits GEMM writes
 * F32); decode steps as CUDA graphs (dw_backend_cuda_graph.c). Storage
 * arrays are void *: offsets in elements go through dw_cu_el
 * (-Wpointer-arith refuses arithmetic on them).
 */
#ifndef DW_BACKEND_CUDA_INT_H
#define DW_BACKEND_CUDA_INT_H

#include <cublas_v2.h>
#include <nccl.h>

#include "dw_backend.h"
#include "dw_cu_plan.h"
#include "dw_cuda.h"
#include "dw_model_int.h"
#include "dw_tp.h"

typedef struct {
    void       *qkv;          /* [qd + 2 kvd][hidden] */
    void       *o;            /* [hidden][qd] */
    void       *gu;           /* [2 inter][hidden] */
    void       *down;         /* [hidden][inter] */
    float      *attn_norm, *ffn_norm, *o_bias;
} dw_cu_layer_t;

/* the GEMM (dw_cu_gemm.c) and the decode graphs (dw_backend_cuda_graph.c) */
typedef struct dw_cu_gemm_s    dw_cu_gemm_t;
typedef struct dw_cu_graphs_s  dw_cu_graphs_t;

typedef struct {
    const dw_model_t  *m;
    int                device;
    cudaStream_t       stream;
    cublasHandle_t     blas;
    dw_cu_gemm_t      *gemm;
    dw_cu_graphs_t    *graphs;
    uint32_t           qd, kvd, bs, n_blocks;

    void              *embed;         /* [vocab][hidden] */
    void              *lm_head;       /* = embed when tied */
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
    struct dw_cu_smp_s *smp;          /* device sampling state, or NULL */
} dw_cu_t;

/* the storage type for cuBLAS */
static inline cudaDataType_t
dw_cu_data_type(const dw_cu_t *c)
{
    return c->dt == DW_DT_F32 ? CUDA_R_32F
           : c->dt == DW_DT_F16 ? CUDA_R_16F : CUDA_R_16BF;
}

/* p + n elements of the storage type */
static inline void *
dw_cu_el(const dw_cu_t *c, const void *p, size_t n)
{
    return (char *) p + n * c->esz;
}

/* the forward pass (dw_backend_cuda_fwd.c) */
int dw_cu_forward(dw_backend_t *be, dw_step_t *st);
/* Grows the scratch and metadata buffers to hold a step of that size
   (contents not kept; a buffer that grows moves). 0 or -1. */
int dw_cu_reserve(dw_cu_t *c, uint32_t rows, uint32_t n_logits,
    uint32_t seqs, size_t meta, size_t ws);
/* Enqueues a step's rows from the embedding to the lm_head GEMM (logits
   into c->logits), the metadata already in c->meta_d as mt lays it out;
   what a decode graph captures. 0 or -1. */
int dw_cu_enqueue_rows(dw_cu_t *c, const dw_cu_plan_t *mt);

/*
 * y[rows][n] (ldy) = x[rows][k] (ldx) . W[n][k]^T on st, x and W of type
 * t (CUDA_R_16BF, CUDA_R_16F or CUDA_R_32F), F32 accumulation, y of type
 * t or F32 (y_f32); cuBLASLt with the algorithm
 * cached per shape, cublasGemmEx (on the handle's stream, which must be
 * st) where Lt has none. Allocates nothing: graph-capturable. 0 or -1
 * (said on stderr).
 */
int dw_cu_gemm_create(dw_cu_gemm_t **g, cublasHandle_t blas, char *err,
    size_t errlen);
void dw_cu_gemm_destroy(dw_cu_gemm_t *g);
int dw_cu_gemm(dw_cu_gemm_t *g, cudaStream_t st, cudaDataType_t t,
    const void *x, size_t ldx, const void *w, uint32_t n, uint32_t k,
    uint32_t rows, void *y, size_t ldy, int y_f32);
/* The rows an algorithm is chosen for: a power of two up to 256, then a
   multiple of 256 (a padded decode step and its eager twin share it). */
uint32_t dw_cu_gemm_rows_key(uint32_t rows);

/* One rank's state on device o->device + rank (dw_backend_cuda.c): the
   backend as with one GPU when n_ranks is 1. Checks done by the caller. */
int dw_cu_create_rank(const dw_model_t *m, const dw_backend_opts_t *o,
    uint32_t n_ranks, uint32_t rank, dw_backend_t **out, char *err,
    size_t errlen);

/* tensor parallelism (dw_backend_cuda_tp.c) */
int dw_cu_tp_create(const dw_model_t *m, const dw_backend_opts_t *o,
    int n_devices, dw_backend_t **out, char *err, size_t errlen);
/* x[n] (BF16, on c's stream) = its sum over the ranks, in place */
int dw_cu_tp_allreduce(dw_cu_t *c, void *x, size_t n);
/* c->logits[n_logits][vocab] (on rank 0) = the lm_head over c->xn's first
   n_logits rows, each rank its vocab slice, all-gathered */
int dw_cu_tp_logits(dw_cu_t *c, uint32_t n_logits);

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
