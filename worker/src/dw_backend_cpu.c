/*
 * dynamo-worker: the cpu backend (create, destroy, the forward pass).
 *
 * A step's rows are laid out prompt chunks first (sequences with two or
 * more tokens: SGEMM), then single-token sequences (own kernel), each
 * sequence's rows contiguous. Per layer: RMSNorm, q/k/v (+ biases, Qwen3
 * q/k norm, RoPE), KV written into the paged pool, attention, o, residual,
 * RMSNorm, gate/up, SwiGLU, down, residual. Logits only for want_logits
 * sequences' last rows, in seq order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "dw_backend_cpu_int.h"
#include "dw_kern_int.h"

static void
be_err(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "%s", msg);
    }
}

/*
 * Scratch is refilled every step after cpu_reserve, so growing need not
 * keep the contents. 64-byte aligned: the matmul kernel's 32-byte loads
 * of activation rows then never straddle a cache line (measured ~5% on
 * batched decode).
 */
static int
grow(void **p, size_t bytes)
{
    void  *n;

    if (posix_memalign(&n, 64, bytes ? (bytes + 63) & ~(size_t) 63 : 64)
        != 0)
    {
        return -1;
    }
    free(*p);
    *p = n;
    return 0;
}

static int
cpu_reserve(dw_cpu_t *c, uint32_t rows, uint32_t seqs, uint32_t ctx)
{
    const dw_config_t  *cfg = &c->m->cfg;
    size_t              h = cfg->hidden_size, im = cfg->intermediate_size;
    size_t              r;

    if (rows > c->cap_rows) {
        r = rows;
        if (grow((void **) &c->x, r * h * 4) || grow((void **) &c->xn, r * h * 4)
            || grow((void **) &c->q, r * c->qd * 4)
            || grow((void **) &c->k, r * c->kvd * 4)
            || grow((void **) &c->v, r * c->kvd * 4)
            || grow((void **) &c->att, r * c->qd * 4)
            || grow((void **) &c->tmp, r * h * 4)
            || grow((void **) &c->g, r * im * 4)
            || grow((void **) &c->u, r * im * 4)
            || grow((void **) &c->row_pos, r * 4)
            || grow((void **) &c->row_seq, r * 4)
            || grow((void **) &c->rope_cs, r * c->m->cfg.head_dim * 4))
        {
            return -1;
        }
        c->cap_rows = rows;
    }
    if (seqs > c->cap_seqs) {
        if (grow((void **) &c->seq_row, (size_t) seqs * 4)
            || grow((void **) &c->seg, (size_t) seqs * 8))
        {
            return -1;
        }
        c->cap_seqs = seqs;
    }
    if (ctx > c->cap_ctx) {
        if (grow((void **) &c->scores, (size_t) DW_CPU_ATTN_CHUNKS(c)
                                       * DW_CPU_ATTN_SCRATCH(c, ctx) * 4))
        {
            return -1;
        }
        c->cap_ctx = ctx;
    }
    return 0;
}

/* Checks the step; fills row layout. Returns rows of SGEMM sequences. */
static int
cpu_layout(dw_cpu_t *c, const dw_step_t *st, uint32_t *n_gemm)
{
    const dw_config_t    *cfg = &c->m->cfg;
    const dw_seq_step_t  *s;
    uint32_t              i, t, b, row, rows, ctx, logits, pass;

    rows = 0;
    ctx = 0;
    logits = 0;
    for (i = 0; i < st->n_seqs; i++) {
        s = &st->seqs[i];
        if (s->n_tokens == 0 || s->tokens == NULL
            || (uint64_t) s->pos + s->n_tokens > (uint64_t) s->n_blocks * c->bs
            || s->blocks == NULL)
        {
            fprintf(stderr, "dw cpu: seq %u: bad step (tokens %u, pos %u, "
                    "blocks %u)\n", i, s->n_tokens, s->pos, s->n_blocks);
            return -1;
        }
        for (t = 0; t < s->n_tokens; t++) {
            if (s->tokens[t] >= cfg->vocab_size) {
                fprintf(stderr, "dw cpu: seq %u: token %u out of vocab\n", i,
                        s->tokens[t]);
                return -1;
            }
        }
        for (b = 0; b < (s->pos + s->n_tokens + c->bs - 1) / c->bs; b++) {
            if (s->blocks[b] >= c->n_blocks) {
                fprintf(stderr, "dw cpu: seq %u: block %u out of the pool\n",
                        i, s->blocks[b]);
                return -1;
            }
        }
        rows += s->n_tokens;
        if (s->pos + s->n_tokens > ctx) {
            ctx = s->pos + s->n_tokens;
        }
        logits += s->want_logits != 0;
    }
    if (rows == 0 || logits != st->n_logits
        || (logits > 0 && st->logits == NULL))
    {
        fprintf(stderr, "dw cpu: step counts disagree\n");
        return -1;
    }
    if (cpu_reserve(c, rows, st->n_seqs, ctx) != 0) {
        fprintf(stderr, "dw cpu: out of memory\n");
        return -1;
    }
    /* pass 0: chunks of >= 2 tokens; pass 1: single tokens */
    row = 0;
    c->n_seg = 0;
    for (pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            *n_gemm = row;
        }
        for (i = 0; i < st->n_seqs; i++) {
            s = &st->seqs[i];
            if ((s->n_tokens >= 2) != (pass == 0)) {
                continue;
            }
            c->seq_row[i] = row;
            if (pass == 0) {
                c->seg[2 * c->n_seg] = row;
                c->seg[2 * c->n_seg + 1] = s->n_tokens;
                c->n_seg++;
            }
            for (t = 0; t < s->n_tokens; t++, row++) {
                c->row_pos[row] = s->pos + t;
                c->row_seq[row] = i;
            }
        }
    }
    return (int) rows;
}

static void
add_rows(float *x, const float *y, const float *bias, uint32_t rows,
    uint32_t n)
{
    size_t  i, total = (size_t) rows * n;

    for (i = 0; i < total; i++) {
        x[i] += y[i];
    }
    if (bias != NULL) {
        for (i = 0; i < total; i++) {
            x[i] += bias[i % n];
        }
    }
}

static void
bias_rows(float *y, const float *bias, uint32_t rows, uint32_t n)
{
    uint32_t  r, i;

    for (r = 0; r < rows; r++) {
        for (i = 0; i < n; i++) {
            y[(size_t) r * n + i] += bias[i];
        }
    }
}

typedef struct {
    dw_cpu_t  *c;
    uint32_t   rows;
} swiglu_job_t;

static void
swiglu_run(void *arg, uint32_t chunk, uint32_t chunks)
{
    swiglu_job_t  *j = arg;
    size_t         im = j->c->m->cfg.intermediate_size;
    size_t         r, a = (size_t) j->rows * chunk / chunks;
    size_t         b = (size_t) j->rows * (chunk + 1) / chunks;

    /* whole rows per thread (see dw_kern_swiglu) */
    for (r = a; r < b; r++) {
        dw_kern_swiglu(j->c->g + r * im, j->c->g + r * im, j->c->u + r * im,
                       (uint32_t) im);
    }
}

static void
cpu_layer(dw_cpu_t *c, const dw_step_t *st, uint32_t l, uint32_t rows,
    uint32_t n_gemm)
{
    const dw_config_t  *cfg = &c->m->cfg;
    const dw_layer_t   *L = &c->m->layers[l];
    uint32_t            h = cfg->hidden_size, hd = cfg->head_dim;
    uint32_t            r, i, p;
    dw_mm_out_t         o[3];
    float              *K, *V;
    size_t              off;
    const dw_seq_step_t *s;
    swiglu_job_t        sj;
    const float        *cs;

    for (r = 0; r < rows; r++) {
        dw_kern_rmsnorm(c->xn + (size_t) r * h, c->x + (size_t) r * h,
                        L->attn_norm, h, cfg->rms_eps);
    }
    o[0] = (dw_mm_out_t) { &L->q, c->q, c->qd };
    o[1] = (dw_mm_out_t) { &L->k, c->k, c->kvd };
    o[2] = (dw_mm_out_t) { &L->v, c->v, c->kvd };
    dw_cpu_mm(c, c->xn, h, rows, n_gemm, o, 3);
    if (L->q_bias != NULL) {
        bias_rows(c->q, L->q_bias, rows, c->qd);
        bias_rows(c->k, L->k_bias, rows, c->kvd);
        bias_rows(c->v, L->v_bias, rows, c->kvd);
    }

    K = c->kv + (size_t) l * 2 * c->kv_pool;
    V = K + c->kv_pool;
    for (r = 0; r < rows; r++) {
        p = c->row_pos[r];
        cs = c->rope_cs + (size_t) r * hd;
        for (i = 0; i < cfg->n_heads; i++) {
            float  *qh = c->q + (size_t) r * c->qd + (size_t) i * hd;

            if (L->q_norm != NULL) {
                dw_kern_rmsnorm(qh, qh, L->q_norm, hd, cfg->rms_eps);
            }
            dw_kern_rope_apply(qh, hd, cs);
        }
        for (i = 0; i < cfg->n_kv_heads; i++) {
            float  *kh = c->k + (size_t) r * c->kvd + (size_t) i * hd;

            if (L->k_norm != NULL) {
                dw_kern_rmsnorm(kh, kh, L->k_norm, hd, cfg->rms_eps);
            }
            dw_kern_rope_apply(kh, hd, cs);
        }
        s = &st->seqs[c->row_seq[r]];
        off = ((size_t) s->blocks[p / c->bs] * c->bs + p % c->bs) * c->kvd;
        memcpy(K + off, c->k + (size_t) r * c->kvd, c->kvd * sizeof(float));
        memcpy(V + off, c->v + (size_t) r * c->kvd, c->kvd * sizeof(float));
    }

    dw_cpu_attention(c, st, l, rows);

    o[0] = (dw_mm_out_t) { &L->o, c->tmp, h };
    dw_cpu_mm(c, c->att, c->qd, rows, n_gemm, o, 1);
    add_rows(c->x, c->tmp, L->o_bias, rows, h);

    for (r = 0; r < rows; r++) {
        dw_kern_rmsnorm(c->xn + (size_t) r * h, c->x + (size_t) r * h,
                        L->ffn_norm, h, cfg->rms_eps);
    }
    o[0] = (dw_mm_out_t) { &L->gate, c->g, cfg->intermediate_size };
    o[1] = (dw_mm_out_t) { &L->up, c->u, cfg->intermediate_size };
    dw_cpu_mm(c, c->xn, h, rows, n_gemm, o, 2);
    sj.c = c;
    sj.rows = rows;
    if (rows == 1
        || (size_t) rows * cfg->intermediate_size < DW_CPU_INLINE_WORK / 16)
    {
        swiglu_run(&sj, 0, 1);
    } else {
        dw_pool_run(c->pool, swiglu_run, &sj, 4 * c->nth);
    }
    o[0] = (dw_mm_out_t) { &L->down, c->tmp, h };
    dw_cpu_mm(c, c->g, cfg->intermediate_size, rows, n_gemm, o, 1);
    add_rows(c->x, c->tmp, NULL, rows, h);
}

static int
cpu_forward(dw_backend_t *be, dw_step_t *st)
{
    dw_cpu_t            *c = be->priv;
    const dw_config_t   *cfg = &c->m->cfg;
    const dw_seq_step_t *s;
    uint32_t             rows, n_gemm, i, t, l, r, j, h = cfg->hidden_size;
    int                  n;
    dw_mm_out_t          o;

    n_gemm = 0;
    n = cpu_layout(c, st, &n_gemm);
    if (n < 0) {
        return -1;
    }
    rows = (uint32_t) n;
    /* cos/sin of each row's position, shared by every head and layer */
    for (r = 0; r < rows; r++) {
        dw_kern_rope_table(c->rope_cs + (size_t) r * cfg->head_dim,
                           cfg->head_dim, c->inv_freq, c->row_pos[r]);
    }
    for (i = 0; i < st->n_seqs; i++) {
        s = &st->seqs[i];
        for (t = 0; t < s->n_tokens; t++) {
            dw_to_f32(c->x + (size_t) (c->seq_row[i] + t) * h,
                      (const char *) c->m->embed.data
                      + (size_t) s->tokens[t] * h
                        * dw_dtype_size(c->m->embed.dtype),
                      c->m->embed.dtype, h);
        }
    }
    for (l = 0; l < cfg->n_layers; l++) {
        cpu_layer(c, st, l, rows, n_gemm);
    }
    if (st->n_logits == 0) {
        return 0;
    }
    /* final norm of the logits rows, packed in seq order into xn */
    j = 0;
    for (i = 0; i < st->n_seqs; i++) {
        s = &st->seqs[i];
        if (!s->want_logits) {
            continue;
        }
        r = c->seq_row[i] + s->n_tokens - 1;
        dw_kern_rmsnorm(c->xn + (size_t) j * h, c->x + (size_t) r * h,
                        c->m->final_norm, h, cfg->rms_eps);
        j++;
    }
    o.w = &c->m->lm_head;
    o.y = st->logits;
    o.ldy = cfg->vocab_size;
    dw_cpu_mm(c, c->xn, h, st->n_logits, 0, &o, 1);
    return 0;
}

static size_t
cpu_block_bytes(const dw_backend_t *be)
{
    const dw_cpu_t  *c = be->priv;

    return (size_t) c->m->cfg.n_layers * 2 * c->bs * c->kvd * sizeof(float);
}

static void
cpu_destroy(dw_backend_t *be)
{
    dw_cpu_t  *c;

    if (be == NULL) {
        return;
    }
    c = be->priv;
    if (c != NULL) {
        dw_pool_destroy(c->pool);
        if (!c->kv_ext) {
            free(c->kv);
        }
        free(c->inv_freq);
        free(c->x);
        free(c->xn);
        free(c->q);
        free(c->k);
        free(c->v);
        free(c->att);
        free(c->tmp);
        free(c->g);
        free(c->u);
        free(c->row_pos);
        free(c->row_seq);
        free(c->rope_cs);
        free(c->seq_row);
        free(c->seg);
        free(c->wconv);
        free(c->scores);
        dw_cpu_sample_free(c);
        free(c);
    }
    free(be);
}

static const dw_backend_ops_t  cpu_ops = {
    "cpu", cpu_forward, NULL, cpu_block_bytes, cpu_destroy, NULL
};

/* opts.sample_on_backend: the engine calls sample (dw_backend_cpu_sample.c) */
static const dw_backend_ops_t  cpu_ops_sample = {
    "cpu", cpu_forward, NULL, cpu_block_bytes, cpu_destroy, dw_cpu_sample
};

int
dw_backend_cpu_create(const dw_model_t *m, const dw_backend_opts_t *o,
    dw_backend_t **out, char *err, size_t errlen)
{
    dw_backend_t       *be;
    dw_cpu_t           *c;
    const dw_config_t  *cfg = &m->cfg;
    size_t              kvbytes, wmax, sz;
    uint32_t            l;

    *out = NULL;
    if (o->block_size == 0 || o->n_blocks == 0) {
        be_err(err, errlen, "cpu backend: block_size and n_blocks must be "
               "positive");
        return -1;
    }
    be = calloc(1, sizeof(*be));
    c = calloc(1, sizeof(*c));
    if (be == NULL || c == NULL) {
        free(be);
        free(c);
        be_err(err, errlen, "cpu backend: out of memory");
        return -1;
    }
    be->ops = o->sample_on_backend ? &cpu_ops_sample : &cpu_ops;
    be->cfg = *cfg;
    be->opts = *o;
    be->priv = c;
    c->m = m;
    c->bs = o->block_size;
    c->n_blocks = o->n_blocks;
    c->qd = cfg->n_heads * cfg->head_dim;
    c->kvd = cfg->n_kv_heads * cfg->head_dim;
    c->nth = o->threads ? o->threads : dw_cpu_count();

    c->kv_pool = (size_t) o->n_blocks * o->block_size * c->kvd;
    if (c->kv_pool / o->block_size / c->kvd != o->n_blocks
        || c->kv_pool > SIZE_MAX / 8 / cfg->n_layers)
    {
        cpu_destroy(be);
        be_err(err, errlen, "cpu backend: KV pool size overflows");
        return -1;
    }
    kvbytes = c->kv_pool * 2 * cfg->n_layers * sizeof(float);
    if (o->kv_mem != NULL) {
        /* the caller's region (UCX-registered for KV transfer), laid out
           as dw_xfer_layout_cpu describes: exactly this pool's layout */
        if (o->kv_mem_len < kvbytes) {
            char  msg[160];

            snprintf(msg, sizeof(msg), "cpu backend: KV memory of %zu bytes "
                     "given, the pool needs %zu", o->kv_mem_len, kvbytes);
            cpu_destroy(be);
            be_err(err, errlen, msg);
            return -1;
        }
        c->kv = o->kv_mem;
        c->kv_ext = 1;
        memset(c->kv, 0, kvbytes);
    } else {
        c->kv = calloc(1, kvbytes);
    }
    c->inv_freq = malloc(cfg->head_dim / 2 * sizeof(float));
    /* scratch for widening the largest BF16/F16 layer matrix for SGEMM */
    wmax = 0;
    for (l = 0; l < cfg->n_layers; l++) {
        const dw_layer_t  *L = &m->layers[l];
        const dw_mat_t    *ms[7] = { &L->q, &L->k, &L->v, &L->o, &L->gate,
                                     &L->up, &L->down };
        int                i;

        for (i = 0; i < 7; i++) {
            sz = (size_t) ms[i]->rows * ms[i]->cols;
            if (ms[i]->dtype != DW_DT_F32 && sz > wmax) {
                wmax = sz;
            }
        }
    }
    if (wmax > 0) {
        c->wconv = malloc(wmax * sizeof(float));
    }
    if (c->kv == NULL || c->inv_freq == NULL
        || (wmax > 0 && c->wconv == NULL))
    {
        cpu_destroy(be);
        be_err(err, errlen, "cpu backend: out of memory for the KV pool");
        return -1;
    }
    dw_kern_rope_freqs(cfg, c->inv_freq);

    /* SGEMM runs single-threaded inside each pool thread
     * (dw_backend_cpu_mm.c): OpenBLAS's own threads would compete with
     * the pool's for the cores */
    openblas_set_num_threads(1);
    c->pool = dw_pool_create(c->nth);
    if (c->pool == NULL) {
        cpu_destroy(be);
        be_err(err, errlen, "cpu backend: cannot start threads");
        return -1;
    }
    *out = be;
    return 0;
}
