/*
 * dynamo-worker: the cuda backend: device, weights, KV pool (create,
 * destroy). The forward pass is dw_backend_cuda_fwd.c, the kernels
 * dw_cu_*.cu (dw_cuda.h).
 *
 * Weights go to the device one matrix at a time: BF16 on disk straight
 * from the mmapped file, F32/F16 converted in a bounded staging buffer,
 * so the model is never copied whole into host memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dw_backend_cuda_int.h"
#include "dw_kern_int.h"

#define STAGE_ELEMS  (4u << 20)       /* conversion staging, elements */

static int
cu_fail(char *err, size_t errlen, const char *what, cudaError_t e)
{
    snprintf(err, errlen, "cuda backend: %s: %s", what,
             cudaGetErrorString(e));
    return -1;
}

/* dst[0 .. rows*cols) = m as BF16 */
static int
put_mat(dw_bf16_t *dst, const dw_mat_t *m, uint16_t *stage, float *f32,
    char *err, size_t errlen)
{
    size_t       n = (size_t) m->rows * m->cols, off, k, i;
    cudaError_t  e;

    if (m->dtype == DW_DT_BF16) {
        e = cudaMemcpy(dst, m->data, n * 2, cudaMemcpyHostToDevice);
        return e == cudaSuccess ? 0 : cu_fail(err, errlen, "weights", e);
    }
    for (off = 0; off < n; off += k) {
        k = n - off < STAGE_ELEMS ? n - off : STAGE_ELEMS;
        dw_to_f32(f32, (const char *) m->data + off * dw_dtype_size(m->dtype),
                  m->dtype, k);
        for (i = 0; i < k; i++) {
            stage[i] = dw_f32_to_bf16(f32[i]);
        }
        e = cudaMemcpy(dst + off, stage, k * 2, cudaMemcpyHostToDevice);
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
alloc_mat(dw_bf16_t **p, size_t rows, size_t cols, char *err, size_t errlen)
{
    cudaError_t  e = cudaMalloc((void **) p, rows * cols * 2);

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
    size_t              h = cfg->hidden_size, im = cfg->intermediate_size;
    uint16_t           *stage = NULL;
    float              *f32 = NULL, *inv = NULL;
    uint32_t            l;
    int                 rc = -1;

    if (cudaMallocHost((void **) &stage, STAGE_ELEMS * 2) != cudaSuccess) {
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
    if (alloc_mat(&c->embed, cfg->vocab_size, h, err, errlen)
        || put_mat(c->embed, &m->embed, stage, f32, err, errlen))
    {
        goto done;
    }
    if (m->lm_head.data == m->embed.data) {
        c->lm_head = c->embed;
    } else if (alloc_mat(&c->lm_head, cfg->vocab_size, h, err, errlen)
               || put_mat(c->lm_head, &m->lm_head, stage, f32, err, errlen))
    {
        goto done;
    }
    for (l = 0; l < cfg->n_layers; l++) {
        const dw_layer_t  *L = &m->layers[l];
        dw_cu_layer_t     *D = &c->layers[l];

        if (alloc_mat(&D->qkv, c->qd + 2 * c->kvd, h, err, errlen)
            || put_mat(D->qkv, &L->q, stage, f32, err, errlen)
            || put_mat(D->qkv + (size_t) c->qd * h, &L->k, stage, f32, err,
                       errlen)
            || put_mat(D->qkv + (size_t) (c->qd + c->kvd) * h, &L->v, stage,
                       f32, err, errlen)
            || alloc_mat(&D->o, h, c->qd, err, errlen)
            || put_mat(D->o, &L->o, stage, f32, err, errlen)
            || alloc_mat(&D->gu, 2 * im, h, err, errlen)
            || put_mat(D->gu, &L->gate, stage, f32, err, errlen)
            || put_mat(D->gu + im * h, &L->up, stage, f32, err, errlen)
            || alloc_mat(&D->down, h, im, err, errlen)
            || put_mat(D->down, &L->down, stage, f32, err, errlen)
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

    return (size_t) c->m->cfg.n_layers * 2 * c->bs * c->kvd
           * sizeof(dw_bf16_t);
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
        cudaFree(c->ws);
        cudaFree(c->meta_d);
        cudaFreeHost(c->meta_h);
        free(c->seq_order);
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

    if (o->dtype != DW_DT_BF16) {
        why = "only --dtype bf16 so far";
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
    dw_backend_t       *be;
    dw_cu_t            *c;
    cudaError_t         e;
    size_t              pool;
    int                 n;

    *out = NULL;
    /* what the model and options ask for first: that answer does not
       depend on the machine (and is tested where there is no GPU) */
    if (cu_supported(cfg, o, err, errlen) != 0) {
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
    e = cudaSetDevice(o->device);
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
    c->device = o->device;
    c->qd = cfg->n_heads * cfg->head_dim;
    c->kvd = cfg->n_kv_heads * cfg->head_dim;
    c->bs = o->block_size;
    c->n_blocks = o->n_blocks;

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
    if (cu_weights(c, err, errlen) != 0) {
        cu_destroy(be);
        return -1;
    }
    /* the KV pool, block-major (dw_cuda.h), zeroed */
    c->kv.n_layers = cfg->n_layers;
    c->kv.n_kv_heads = cfg->n_kv_heads;
    c->kv.head_dim = cfg->head_dim;
    c->kv.block_size = c->bs;
    c->kv.n_blocks = c->n_blocks;
    pool = cu_block_bytes(be) * c->n_blocks;
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
