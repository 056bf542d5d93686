/*
 * dynamo-worker: the cuda backend's forward pass.
 *
 * Rows of a step: single-token sequences (decode) first, in seq order,
 * then prompt chunks, in seq order, each sequence's rows contiguous. One
 * copy of the step's metadata (tokens, positions, pool slots, block
 * tables, chunk descriptors) to the device, then per layer:
 *   qkv GEMM, RoPE + K/V into the pool (dw_cu_rope_kv), attention (decode
 *   kernel for the first rows, prefill kernel for the chunks), o GEMM,
 *   residual add fused with the MLP's norm, gate/up GEMM, SwiGLU, down
 *   GEMM, residual add fused with the next layer's norm;
 * then the final norm of the logits rows, the lm_head GEMM (F32 out) and
 * one copy of the logits to the engine (or, for the sample op, the
 * device sampler and a copy of its small outputs: dw_cu_sample_enqueue,
 * dw_backend_cuda_sample.c). Everything on one stream; the
 * step ends with one synchronisation.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dw_backend_cuda_graph.h"
#include "dw_backend_cuda_int.h"
#include "dw_cu_plan.h"

#define CU_TRY(call)  do { cudaError_t e_ = (call); \
    if (e_ != cudaSuccess) { \
        fprintf(stderr, "dw cuda: %s: %s\n", #call, cudaGetErrorString(e_)); \
        return -1; \
    } } while (0)

/* grows a device buffer (contents not kept) */
static int
dgrow(void **p, size_t bytes)
{
    cudaFree(*p);
    *p = NULL;
    if (cudaMalloc(p, bytes ? bytes : 1) != cudaSuccess) {
        *p = NULL;
        fprintf(stderr, "dw cuda: out of device memory (%zu bytes of "
                "scratch)\n", bytes);
        return -1;
    }
    return 0;
}

int
dw_cu_reserve(dw_cu_t *c, uint32_t rows, uint32_t n_logits, uint32_t seqs,
    size_t meta, size_t ws)
{
    const dw_config_t  *cfg = &c->m->cfg;
    size_t              h = cfg->hidden_size, im = c->im;
    size_t              r = rows;

    if (rows > c->cap_rows) {
        if (dgrow((void **) &c->x, r * h * 4)
            || dgrow(&c->xn, r * h * c->esz)
            || dgrow(&c->qkvo, r * (c->qd + 2 * c->kvd) * c->esz)
            || dgrow(&c->att, r * c->qd * c->esz)
            || dgrow(&c->tmp, r * h * c->esz)
            || dgrow(&c->gu, r * 2 * im * c->esz)
            || dgrow(&c->act, r * im * c->esz))
        {
            c->cap_rows = 0;
            return -1;
        }
        c->cap_rows = rows;
    }
    if (n_logits > c->cap_logits) {
        if (dgrow((void **) &c->logits,
                  (size_t) n_logits * cfg->vocab_size * 4))
        {
            c->cap_logits = 0;
            return -1;
        }
        c->cap_logits = n_logits;
    }
    if (ws > c->ws_cap) {
        if (dgrow(&c->ws, ws)) {
            c->ws_cap = 0;
            return -1;
        }
        c->ws_cap = ws;
    }
    if (meta > c->meta_cap) {
        cudaFreeHost(c->meta_h);
        c->meta_h = NULL;
        if (cudaMallocHost((void **) &c->meta_h, meta * 4) != cudaSuccess
            || dgrow((void **) &c->meta_d, meta * 4))
        {
            cudaFreeHost(c->meta_h);
            c->meta_h = NULL;
            c->meta_cap = 0;
            fprintf(stderr, "dw cuda: out of memory for step metadata\n");
            return -1;
        }
        c->meta_cap = meta;
    }
    if (seqs > c->cap_seqs) {
        free(c->seq_order);
        c->seq_order = malloc((size_t) seqs * 2 * sizeof(uint32_t));
        if (c->seq_order == NULL) {
            c->cap_seqs = 0;
            return -1;
        }
        c->cap_seqs = seqs;
    }
    return 0;
}

/*
 * y[rows][n] (ldy) = x[rows][k] (ldx) . W[n][k]^T; x, W (and y unless
 * y_f32) of the storage type, F32 sum (dw_cu_gemm.c: cuBLASLt). F32
 * storage: an F32 GEMM (no TF32), so it differs from the cpu backend
 * only in summation order.
 */
static int
gemm(dw_cu_t *c, const void *x, size_t ldx, const void *w, uint32_t n,
    uint32_t k, uint32_t rows, void *y, size_t ldy, int y_f32)
{
    return dw_cu_gemm(c->gemm, c->stream, dw_cu_data_type(c), x, ldx, w, n,
                      k, rows, y, ldy, y_f32);
}

static int
cu_layer(dw_cu_t *c, const dw_cu_plan_t *mt, uint32_t l)
{
    const dw_config_t    *cfg = &c->m->cfg;
    const dw_cu_layer_t  *D = &c->layers[l];
    const uint32_t       *M = c->meta_d;
    uint32_t              h = cfg->hidden_size, im = c->im;
    uint32_t              rows = mt->rows, ldqkv = c->qd + 2 * c->kvd;
    float                 scale = 1.0f / sqrtf((float) cfg->head_dim);
    cudaStream_t          st = c->stream;

    /* xn = attn_norm(x): done by the previous layer (or the embedding) */
    if (gemm(c, c->xn, h, D->qkv, ldqkv, h, rows, c->qkvo, ldqkv, 0)) {
        return -1;
    }
    CU_TRY(dw_cu_rope_kv(c->qkvo, dw_cu_el(c, c->qkvo, c->qd),
                         dw_cu_el(c, c->qkvo, c->qd + c->kvd), ldqkv,
                         rows, c->nh, M + mt->pos, M + mt->slot,
                         c->inv_freq, &c->kv, l, st));
    if (mt->n_dec > 0) {
        CU_TRY(dw_cu_attn_decode(c->att, c->qd, c->qkvo, ldqkv, &c->kv, l,
                                 c->nh, M + mt->dec_tables, mt->mb,
                                 M + mt->dec_ctx, mt->n_dec, mt->max_ctx,
                                 scale, c->ws, st));
    }
    if (mt->n_pf > 0) {
        CU_TRY(dw_cu_attn_prefill(dw_cu_el(c, c->att, (size_t) mt->n_dec
                                                       * c->qd), c->qd,
                                  dw_cu_el(c, c->qkvo, (size_t) mt->n_dec
                                                       * ldqkv), ldqkv,
                                  &c->kv, l, c->nh, M + mt->pf_tables,
                                  mt->mb, M + mt->pf_qstart, M + mt->pf_qlen,
                                  M + mt->pf_pos0, mt->n_pf, mt->max_q, scale,
                                  st));
    }
    if (gemm(c, c->att, c->qd, D->o, h, c->qd, rows, c->tmp, h, 0)) {
        return -1;
    }
    /* tensor parallel: o is row-parallel, tmp a partial sum */
    if (c->comm != NULL && dw_cu_tp_allreduce(c, c->tmp, (size_t) rows * h)) {
        return -1;
    }
    CU_TRY(dw_cu_add_rmsnorm(c->xn, h, c->x, c->tmp, h, D->o_bias,
                             D->ffn_norm, rows, h, cfg->rms_eps, c->dt, st));
    if (gemm(c, c->xn, h, D->gu, 2 * im, h, rows, c->gu, 2 * im, 0)) {
        return -1;
    }
    CU_TRY(dw_cu_swiglu(c->act, im, c->gu, dw_cu_el(c, c->gu, im), 2 * im,
                        rows, im, c->dt, st));
    if (gemm(c, c->act, im, D->down, h, im, rows, c->tmp, h, 0)) {
        return -1;
    }
    if (c->comm != NULL && dw_cu_tp_allreduce(c, c->tmp, (size_t) rows * h)) {
        return -1;
    }
    if (l + 1 < cfg->n_layers) {
        CU_TRY(dw_cu_add_rmsnorm(c->xn, h, c->x, c->tmp, h, NULL,
                                 c->layers[l + 1].attn_norm, rows, h,
                                 cfg->rms_eps, c->dt, st));
    } else {
        CU_TRY(dw_cu_residual_add(c->x, c->tmp, h, NULL, rows, h, c->dt,
                                  st));
    }
    return 0;
}

int
dw_cu_enqueue_rows(dw_cu_t *c, const dw_cu_plan_t *mt)
{
    const dw_config_t  *cfg = &c->m->cfg;
    uint32_t            l, h = cfg->hidden_size;

    CU_TRY(dw_cu_embed(c->x, c->embed, c->meta_d + mt->tokens, mt->rows, h,
                       c->dt, c->stream));
    CU_TRY(dw_cu_rmsnorm(c->xn, h, c->x, c->layers[0].attn_norm, mt->rows, h,
                         cfg->rms_eps, c->dt, c->stream));
    for (l = 0; l < cfg->n_layers; l++) {
        if (cu_layer(c, mt, l) != 0) {
            return -1;
        }
    }
    if (mt->n_logits > 0) {
        CU_TRY(dw_cu_rmsnorm_rows(c->xn, h, c->x, c->meta_d + mt->logit_rows,
                                  c->final_norm, mt->n_logits, h,
                                  cfg->rms_eps, c->dt, c->stream));
        if (c->comm != NULL) {
            /* vocab-parallel lm_head: every rank its slice, all-gathered */
            if (dw_cu_tp_logits(c, mt->n_logits) != 0) {
                return -1;
            }
        } else if (gemm(c, c->xn, h, c->lm_head, cfg->vocab_size, h,
                        mt->n_logits, c->logits, cfg->vocab_size, 1))
        {
            return -1;
        }
    }
    return 0;
}

/* Enqueues the whole step; the caller synchronises. 0 or -1. dev_sample:
   sample on the device instead of copying the logits back. */
static int
cu_enqueue(dw_cu_t *c, dw_step_t *st, int dev_sample)
{
    const dw_config_t  *cfg = &c->m->cfg;
    dw_cu_plan_t        mt;
    size_t              ws;
    char                msg[160];
    int                 rc;

    if (dw_cu_plan(st, cfg->vocab_size, c->bs, c->n_blocks, &mt, msg,
                   sizeof(msg)) != 0)
    {
        fprintf(stderr, "dw cuda: %s\n", msg);
        return -1;
    }
    /* decode-only steps of up to 256 sequences: a graph */
    rc = dw_cu_graph_step(c, st, &mt, dev_sample);
    if (rc != 0) {
        return rc > 0 ? 0 : -1;
    }
    ws = mt.n_dec > 0 ? dw_cu_attn_decode_ws(mt.n_dec, c->nh,
                                             cfg->head_dim, mt.max_ctx)
                      : 0;
    if (dw_cu_reserve(c, mt.rows, mt.n_logits, st->n_seqs, mt.total, ws)
        != 0)
    {
        return -1;
    }
    dw_cu_plan_fill(st, c->bs, &mt, c->meta_h, c->seq_order);
    CU_TRY(cudaMemcpyAsync(c->meta_d, c->meta_h, mt.total * 4,
                           cudaMemcpyHostToDevice, c->stream));
    if (dw_cu_enqueue_rows(c, &mt) != 0) {
        return -1;
    }
    if (mt.n_logits > 0) {
        if (c->tp.rank == 0) {
            CU_TRY(cudaMemcpyAsync(st->logits, c->logits,
                                   (size_t) mt.n_logits * cfg->vocab_size * 4,
                                   cudaMemcpyDeviceToHost, c->stream));
        }
        if (dev_sample) {
            return dw_cu_sample_enqueue(c, mt.n_logits);
        }
    }
    return 0;
}

static int
cu_run(dw_backend_t *be, dw_step_t *st, int dev_sample)
{
    dw_cu_t      *c = be->priv;
    int           rc;
    cudaError_t   e;

    /* the current device is per host thread: the engine thread steps,
       another created the backend */
    e = cudaSetDevice(c->device);
    if (e != cudaSuccess) {
        fprintf(stderr, "dw cuda: cudaSetDevice(%d): %s\n", c->device,
                cudaGetErrorString(e));
        return -1;
    }
    rc = cu_enqueue(c, st, dev_sample);
    /* also after a failure: what was enqueued must be done before the
       next step refills the host metadata and the scratch; errors of any
       kernel surface here at the latest */
    e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess) {
        fprintf(stderr, "dw cuda: step: %s\n", cudaGetErrorString(e));
        return -1;
    }
    return rc;
}

int
dw_cu_forward(dw_backend_t *be, dw_step_t *st)
{
    return cu_run(be, st, 0);
}

int
dw_cu_forward_dev_sample(dw_backend_t *be, dw_step_t *st)
{
    return cu_run(be, st, 1);
}
