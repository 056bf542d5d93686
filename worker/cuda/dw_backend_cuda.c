/*
 * dynamo-worker: the cuda backend: device, weights, KV pool (create,
 * destroy). The forward pass is dw_backend_cuda_fwd.c, the kernels
 * dw_cu_*.cu (dw_cuda.h).
 *
 * Weights go to the device one matrix at a time in the storage type
 * (--dtype bf16|f16|f32): straight from the mmapped file when it holds
 * that type, otherwise converted in a bounded staging buffer, so the
 * model is never copied whole into host memory.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dw_backend_cuda_graph.h"
#include "dw_backend_cuda_int.h"
#include "dw_kern_int.h"
#include "dw_safetensors_int.h"

#define STAGE_ELEMS  (4u << 20)       /* conversion staging, elements (of
                                         up to 4 bytes: 16 MB pinned) */

static int
cu_fail(char *err, size_t errlen, const char *what, cudaError_t e)
{
    snprintf(err, errlen, "cuda backend: %s: %s", what,
             cudaGetErrorString(e));
    return -1;
}

/*
 * stage[0..k) = k elements of src (of type dt) in the storage type c->dt,
 * through f32. A weight beyond F16's range is an error with --dtype f16,
 * not an infinity.
 */
static int
stage_conv(const dw_cu_t *c, void *stage, float *f32, const void *src,
    dw_dtype_t dt, size_t k, char *err, size_t errlen)
{
    uint16_t  *h = stage;
    size_t     i;

    dw_to_f32(c->dt == DW_DT_F32 ? (float *) stage : f32, src, dt, k);
    for (i = 0; c->dt == DW_DT_BF16 && i < k; i++) {
        h[i] = dw_f32_to_bf16(f32[i]);
    }
    for (i = 0; c->dt == DW_DT_F16 && i < k; i++) {
        h[i] = dw_f32_to_f16(f32[i]);
        if ((h[i] & 0x7fff) == 0x7c00 && !isinf(f32[i])) {
            snprintf(err, errlen, "cuda backend: a weight (%g) is beyond "
                     "the range of f16; use --dtype bf16", f32[i]);
            return -1;
        }
    }
    return 0;
}

/*
 * dst[0 .. rows*cols) = m in the storage type c->dt: a straight copy when
 * the file holds that type, else converted piece by piece in stage
 * (pinned, STAGE_ELEMS elements).
 */
static int
put_mat(const dw_cu_t *c, void *dst, const dw_mat_t *m, void *stage,
    float *f32, char *err, size_t errlen)
{
    size_t       n = (size_t) m->rows * m->cols, off, k;
    cudaError_t  e;

    if (m->dtype == c->dt) {
        e = cudaMemcpy(dst, m->data, n * c->esz, cudaMemcpyHostToDevice);
        return e == cudaSuccess ? 0 : cu_fail(err, errlen, "weights", e);
    }
    for (off = 0; off < n; off += k) {
        k = n - off < STAGE_ELEMS ? n - off : STAGE_ELEMS;
        if (stage_conv(c, stage, f32, (const char *) m->data
                                      + off * dw_dtype_size(m->dtype),
                       m->dtype, k, err, errlen) != 0)
        {
            return -1;
        }
        e = cudaMemcpy(dw_cu_el(c, dst, off), stage, k * c->esz,
                       cudaMemcpyHostToDevice);
        if (e != cudaSuccess) {
            return cu_fail(err, errlen, "weights", e);
        }
    }
    return 0;
}

/* dst = rows r of m: a row range of a row-major matrix is contiguous */
static int
put_rows(const dw_cu_t *c, void *dst, const dw_mat_t *m, dw_tp_range_t r,
    void *stage, float *f32, char *err, size_t errlen)
{
    dw_mat_t  s = *m;

    s.data = (const char *) m->data
             + (size_t) r.lo * m->cols * dw_dtype_size(m->dtype);
    s.rows = r.n;
    return put_mat(c, dst, &s, stage, f32, err, errlen);
}

/* dst[rows][r.n] = columns r of m (tensor parallelism's row-parallel
   o_proj / down_proj): one strided copy when the file holds the storage
   type, else converted a whole number of rows at a time */
static int
put_cols(const dw_cu_t *c, void *dst, const dw_mat_t *m, dw_tp_range_t r,
    void *stage, float *f32, char *err, size_t errlen)
{
    size_t       es = dw_dtype_size(m->dtype), per, row, k, i;
    const char  *src = (const char *) m->data + (size_t) r.lo * es;
    cudaError_t  e;

    if (r.lo == 0 && r.n == m->cols) {
        return put_mat(c, dst, m, stage, f32, err, errlen);
    }
    if (r.n == 0 || r.lo + r.n > m->cols || r.n > STAGE_ELEMS) {
        snprintf(err, errlen, "cuda backend: columns %u..%u of a matrix of "
                 "%u", r.lo, r.lo + r.n, m->cols);
        return -1;
    }
    if (m->dtype == c->dt) {
        e = cudaMemcpy2D(dst, (size_t) r.n * es, src, (size_t) m->cols * es,
                         (size_t) r.n * es, m->rows, cudaMemcpyHostToDevice);
        return e == cudaSuccess ? 0 : cu_fail(err, errlen, "weights", e);
    }
    per = STAGE_ELEMS / r.n;
    for (row = 0; row < m->rows; row += k) {
        k = m->rows - row < per ? m->rows - row : per;
        for (i = 0; i < k; i++) {
            if (stage_conv(c, dw_cu_el(c, stage, i * r.n), f32,
                           src + (row + i) * m->cols * es, m->dtype, r.n,
                           err, errlen) != 0)
            {
                return -1;
            }
        }
        e = cudaMemcpy(dw_cu_el(c, dst, row * r.n), stage, k * r.n * c->esz,
                       cudaMemcpyHostToDevice);
        if (e != cudaSuccess) {
            return cu_fail(err, errlen, "weights", e);
        }
    }
    return 0;
}

static int
put_vec(float **dst, const float *src, size_t n, char *err, size_t errlen)
{
    cudaError_t  e;

    *dst = NULL;
    if (src == NULL) {
        return 0;
    }
    e = cudaMalloc((void **) dst, n * sizeof(float));
    if (e != cudaSuccess) {
        *dst = NULL;
    } else {
        e = cudaMemcpy(*dst, src, n * sizeof(float), cudaMemcpyHostToDevice);
    }
    return e == cudaSuccess ? 0 : cu_fail(err, errlen, "norm weights", e);
}

static int
alloc_mat(const dw_cu_t *c, void **p, size_t rows, size_t cols, char *err,
    size_t errlen)
{
    cudaError_t  e = cudaMalloc(p, rows * cols * c->esz);

    if (e != cudaSuccess) {
        *p = NULL;
        return cu_fail(err, errlen, "weights: cudaMalloc", e);
    }
    return 0;
}

static int
cu_weights(dw_cu_t *c, char *err, size_t errlen)
{
    const dw_model_t   *m = c->m;
    const dw_config_t  *cfg = &m->cfg;
    const dw_tp_shard_t *tp = &c->tp;
    size_t              h = cfg->hidden_size, im = c->im;
    void               *stage = NULL;
    float              *f32 = NULL, *inv = NULL;
    uint32_t            l;
    int                 rc = -1;

    if (cudaMallocHost(&stage, STAGE_ELEMS * c->esz) != cudaSuccess) {
        stage = NULL;
        snprintf(err, errlen, "cuda backend: out of pinned host memory");
        return -1;
    }
    f32 = malloc(STAGE_ELEMS * sizeof(float));
    inv = malloc(cfg->head_dim / 2 * sizeof(float));
    c->layers = calloc(cfg->n_layers, sizeof(*c->layers));
    if (f32 == NULL || inv == NULL || c->layers == NULL) {
        snprintf(err, errlen, "cuda backend: out of memory");
        goto done;
    }
    if (alloc_mat(c, &c->embed, cfg->vocab_size, h, err, errlen)
        || put_mat(c, c->embed, &m->embed, stage, f32, err, errlen))
    {
        goto done;
    }
    if (m->lm_head.data == m->embed.data && tp->n_ranks == 1) {
        c->lm_head = c->embed;
    } else if (alloc_mat(c, &c->lm_head, tp->lm_rows.n, h, err, errlen)
               || put_rows(c, c->lm_head, &m->lm_head, tp->lm_rows, stage,
                           f32, err, errlen))
    {
        goto done;
    }
    for (l = 0; l < cfg->n_layers; l++) {
        const dw_layer_t  *L = &m->layers[l];
        dw_cu_layer_t     *D = &c->layers[l];

        if (alloc_mat(c, &D->qkv, c->qd + 2 * c->kvd, h, err, errlen)
            || put_rows(c, D->qkv, &L->q, tp->q_rows, stage, f32, err,
                        errlen)
            || put_rows(c, dw_cu_el(c, D->qkv, (size_t) c->qd * h), &L->k,
                        tp->k_rows, stage, f32, err, errlen)
            || put_rows(c, dw_cu_el(c, D->qkv, (size_t) (c->qd + c->kvd) * h),
                        &L->v, tp->v_rows, stage, f32, err, errlen)
            || alloc_mat(c, &D->o, h, c->qd, err, errlen)
            || put_cols(c, D->o, &L->o, tp->o_cols, stage, f32, err, errlen)
            || alloc_mat(c, &D->gu, 2 * im, h, err, errlen)
            || put_rows(c, D->gu, &L->gate, tp->gate_rows, stage, f32, err,
                        errlen)
            || put_rows(c, dw_cu_el(c, D->gu, im * h), &L->up, tp->up_rows,
                        stage, f32, err, errlen)
            || alloc_mat(c, &D->down, h, im, err, errlen)
            || put_cols(c, D->down, &L->down, tp->down_cols, stage, f32, err,
                        errlen)
            || put_vec(&D->attn_norm, L->attn_norm, h, err, errlen)
            || put_vec(&D->ffn_norm, L->ffn_norm, h, err, errlen)
            || put_vec(&D->o_bias, L->o_bias, h, err, errlen))
        {
            goto done;
        }
    }
    dw_kern_rope_freqs(cfg, inv);
    if (put_vec(&c->final_norm, m->final_norm, h, err, errlen)
        || put_vec(&c->inv_freq, inv, cfg->head_dim / 2, err, errlen))
    {
        goto done;
    }
    rc = 0;
done:
    cudaFreeHost(stage);
    free(f32);
    free(inv);
    return rc;
}

static size_t
cu_block_bytes(const dw_backend_t *be)
{
    const dw_cu_t  *c = be->priv;

    return (size_t) c->m->cfg.n_layers * 2 * c->bs * c->kvd * c->esz;
}

static void
cu_destroy(dw_backend_t *be)
{
    dw_cu_t   *c;
    uint32_t   l;

    if (be == NULL) {
        return;
    }
    c = be->priv;
    if (c != NULL) {
        if (c->stream != NULL) {
            cudaStreamSynchronize(c->stream);
        }
        if (c->layers != NULL) {
            for (l = 0; l < c->m->cfg.n_layers; l++) {
                dw_cu_layer_t  *D = &c->layers[l];

                cudaFree(D->qkv);
                cudaFree(D->o);
                cudaFree(D->gu);
                cudaFree(D->down);
                cudaFree(D->attn_norm);
                cudaFree(D->ffn_norm);
                cudaFree(D->o_bias);
            }
            free(c->layers);
        }
        if (c->lm_head != c->embed) {
            cudaFree(c->lm_head);
        }
        cudaFree(c->embed);
        cudaFree(c->final_norm);
        cudaFree(c->inv_freq);
        cudaFree(c->kv.base);
        cudaFree(c->x);
        cudaFree(c->xn);
        cudaFree(c->qkvo);
        cudaFree(c->att);
        cudaFree(c->tmp);
        cudaFree(c->gu);
        cudaFree(c->act);
        cudaFree(c->logits);
        cudaFree(c->lpart);
        cudaFree(c->gather);
        cudaFree(c->ws);
        cudaFree(c->meta_d);
        cudaFreeHost(c->meta_h);
        free(c->seq_order);
        dw_cu_graphs_destroy(c);
        dw_cu_gemm_destroy(c->gemm);
        dw_cu_sample_free(c);
        if (c->blas != NULL) {
            cublasDestroy(c->blas);
        }
        if (c->stream != NULL) {
            cudaStreamDestroy(c->stream);
        }
        free(c);
    }
    free(be);
}

static const dw_backend_ops_t  cu_ops = {
    "cuda", dw_cu_forward, NULL, cu_block_bytes, cu_destroy,
    dw_cu_sample_step
};

/* What this backend does not run yet, named; 0 when it runs cfg. */
static int
cu_supported(const dw_config_t *cfg, const dw_backend_opts_t *o, char *err,
    size_t errlen)
{
    const char  *why = NULL;

    if (o->dtype != DW_DT_BF16 && o->dtype != DW_DT_F16
        && o->dtype != DW_DT_F32)
    {
        why = "--dtype must be bf16, f16 or f32";
    } else if (o->kv_mem != NULL) {
        why = "a caller-provided KV pool (disaggregation) is not supported";
    } else if (cfg->attn_bias) {
        why = "q/k/v biases (Qwen2, attention_bias) are not supported yet";
    } else if (cfg->qk_norm) {
        why = "q/k norms (Qwen3) are not supported yet";
    } else if (cfg->head_dim % 2 != 0 || cfg->head_dim > DW_CU_MAX_HEAD_DIM) {
        why = "head_dim must be even and at most 256";
    } else if (cfg->n_kv_heads == 0 || cfg->n_heads % cfg->n_kv_heads != 0
               || cfg->n_heads / cfg->n_kv_heads > DW_CU_MAX_GROUP)
    {
        why = "n_heads / n_kv_heads must be a whole number up to 16";
    } else if (o->block_size == 0 || o->n_blocks == 0) {
        why = "block_size and n_blocks must be positive";
    }
    if (why != NULL) {
        snprintf(err, errlen, "cuda backend: %s", why);
        return -1;
    }
    return 0;
}

int
dw_backend_cuda_create(const dw_model_t *m, const dw_backend_opts_t *o,
    dw_backend_t **out, char *err, size_t errlen)
{
    const dw_config_t  *cfg = &m->cfg;
    uint32_t            tp = o->tensor_parallel > 1 ? o->tensor_parallel : 1;
    char                msg[200];
    int                 n;

    *out = NULL;
    /* what the model and options ask for first: that answer does not
       depend on the machine (and is tested where there is no GPU) */
    if (cu_supported(cfg, o, err, errlen) != 0) {
        return -1;
    }
    if (dw_tp_check(cfg, tp, msg, sizeof(msg)) != 0) {
        snprintf(err, errlen, "cuda backend: %s", msg);
        return -1;
    }
    n = dw_backend_cuda_devices(err, errlen);
    if (n <= 0) {
        return -1;
    }
    if (o->device < 0 || o->device >= n) {
        snprintf(err, errlen, "cuda backend: device %d of %d", o->device, n);
        return -1;
    }
    if (tp > 1) {
        return dw_cu_tp_create(m, o, n, out, err, errlen);
    }
    return dw_cu_create_rank(m, o, 1, 0, out, err, errlen);
}

int
dw_cu_create_rank(const dw_model_t *m, const dw_backend_opts_t *o,
    uint32_t n_ranks, uint32_t rank, dw_backend_t **out, char *err,
    size_t errlen)
{
    const dw_config_t  *cfg = &m->cfg;
    dw_backend_t       *be;
    dw_cu_t            *c;
    dw_tp_shard_t       sh;
    cudaError_t         e;
    size_t              pool;
    int                 dev = o->device + (int) rank;

    *out = NULL;
    if (dw_tp_shard(cfg, n_ranks, rank, o->block_size,
                    dw_dtype_size(o->dtype), &sh, err, errlen) != 0)
    {
        return -1;
    }
    e = cudaSetDevice(dev);
    if (e != cudaSuccess) {
        return cu_fail(err, errlen, "cudaSetDevice", e);
    }
    be = calloc(1, sizeof(*be));
    c = calloc(1, sizeof(*c));
    if (be == NULL || c == NULL) {
        free(be);
        free(c);
        snprintf(err, errlen, "cuda backend: out of memory");
        return -1;
    }
    be->ops = &cu_ops;
    be->cfg = *cfg;
    be->opts = *o;
    be->priv = c;
    c->m = m;
    c->device = dev;
    c->tp = sh;
    c->nh = sh.heads.n;
    c->nkv = sh.kv_heads.n;
    c->im = sh.inter.n;
    c->qd = c->nh * cfg->head_dim;
    c->kvd = c->nkv * cfg->head_dim;
    c->bs = o->block_size;
    c->n_blocks = o->n_blocks;
    c->dt = o->dtype;
    c->esz = dw_dtype_size(o->dtype);

    e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        c->stream = NULL;
        cu_destroy(be);
        return cu_fail(err, errlen, "cudaStreamCreate", e);
    }
    if (cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS) {
        c->blas = NULL;
        cu_destroy(be);
        snprintf(err, errlen, "cuda backend: cublasCreate failed");
        return -1;
    }
    cublasSetStream(c->blas, c->stream);
    if (dw_cu_gemm_create(&c->gemm, c->blas, err, errlen) != 0
        || dw_cu_graphs_create(c, err, errlen) != 0
        || cu_weights(c, err, errlen) != 0)
    {
        cu_destroy(be);
        return -1;
    }
    /* the KV pool, block-major (dw_cuda.h), zeroed; one block more than
       the engine's: block n_blocks is the dummy that the padding rows of
       a decode graph write and read (dw_cu_pad.h) */
    c->kv.n_layers = cfg->n_layers;
    c->kv.n_kv_heads = c->nkv;
    c->kv.head_dim = cfg->head_dim;
    c->kv.block_size = c->bs;
    c->kv.n_blocks = c->n_blocks + 1;
    c->kv.dtype = c->dt;
    pool = cu_block_bytes(be) * c->kv.n_blocks;
    e = cudaMalloc((void **) &c->kv.base, pool);
    if (e != cudaSuccess) {
        c->kv.base = NULL;
    } else {
        e = cudaMemset(c->kv.base, 0, pool);
    }
    if (e != cudaSuccess) {
        char  what[96];

        snprintf(what, sizeof(what), "KV pool of %zu bytes (%u blocks)",
                 pool, c->n_blocks);
        cu_destroy(be);
        return cu_fail(err, errlen, what, e);
    }
    *out = be;
    return 0;
}
