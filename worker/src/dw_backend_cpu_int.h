/*
 * dynamo-worker: cpu backend state (internal).
 */
#ifndef DW_BACKEND_CPU_INT_H
#define DW_BACKEND_CPU_INT_H

#include "dw_backend.h"
#include "dw_cpu_pool_int.h"
#include "dw_model_int.h"

typedef struct {
    const dw_model_t  *m;
    dw_pool_t         *pool;
    uint32_t           nth;
    uint32_t           qd, kvd;       /* heads * hd, kv heads * hd */
    uint32_t           bs;            /* block size */
    uint32_t           n_blocks;      /* KV pool blocks */

    float             *kv;            /* per layer: K pool then V pool */
    int                kv_ext;        /* kv is the caller's (kv_mem) */
    size_t             kv_pool;       /* floats in one K (or V) pool */
    float             *inv_freq;      /* [hd / 2] */

    /* per-step scratch, grown as needed */
    uint32_t           cap_rows;
    float             *x, *xn, *q, *k, *v, *att, *tmp, *g, *u;
    uint32_t          *row_pos;       /* position of each row */
    uint32_t          *row_seq;       /* seq index of each row */
    float             *rope_cs;       /* per row: cos, sin [head_dim] */
    uint32_t          *seq_row;       /* first row of each seq */
    uint32_t           cap_seqs;
    uint32_t          *seg;           /* SGEMM rows: per prompt chunk
                                         (start, count) pairs */
    uint32_t           n_seg;
    float             *wconv;         /* BF16/F16 matrix as F32 for SGEMM */
    size_t             wconv_cap;
    float             *scores;        /* DW_CPU_ATTN_CHUNKS x
                                         DW_CPU_ATTN_SCRATCH(cap_ctx) */
    uint32_t           cap_ctx;
    struct dw_cpu_smp_s *smp;         /* sample op's state, or NULL */
} dw_cpu_t;

/*
 * Jobs smaller than this (multiply-adds, ~10 us) run on the calling
 * thread: waking the pool costs microseconds, far more on a machine with
 * more runnable threads than cores, and small models would spend their
 * time there.
 */
#define DW_CPU_INLINE_WORK  (1u << 17)

typedef struct {
    const dw_mat_t  *w;
    float           *y;        /* y[i * ldy + r] */
    size_t           ldy;
} dw_mm_out_t;

/*
 * y = x W^T for each of the n outputs (one pool dispatch for all). Rows
 * 0..n_gemm-1 of x (prompt chunks of two tokens or more, c->seg) go
 * through cblas_sgemm, one call per chunk (OpenBLAS's rounding depends on
 * the row count, so a chunk must not share a call with other sequences'),
 * BF16/F16 weights converted to F32 first; rows n_gemm..n_rows-1
 * (single-token steps) through dw_kern_matmul.
 */
void dw_cpu_mm(dw_cpu_t *c, const float *x, size_t ldx, uint32_t n_rows,
    uint32_t n_gemm, const dw_mm_out_t *o, uint32_t n);

/* Attention work chunks (each has its own scores scratch, floats for
 * every head of a row over ctx positions). */
#define DW_CPU_ATTN_CHUNKS(c)  (4 * (c)->nth)
#define DW_CPU_ATTN_SCRATCH(c, ctx)  ((size_t) (c)->m->cfg.n_heads * (ctx))

/* Attention of every row and head of the step (see dw_backend_cpu_attn.c). */
void dw_cpu_attention(dw_cpu_t *c, const dw_step_t *st, uint32_t layer,
    uint32_t n_rows);

/*
 * ops->sample with opts.sample_on_backend (dw_backend_cpu_sample.c):
 * forward into the backend's own logits buffer, then dw_sample_thr on
 * each row. The free is for destroy.
 */
int dw_cpu_sample(dw_backend_t *be, dw_step_t *st,
    const dw_sample_row_t *rows, dw_sample_out_t *out);
void dw_cpu_sample_free(dw_cpu_t *c);

#endif
