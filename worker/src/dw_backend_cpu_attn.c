/*
 * dynamo-worker: grouped-query attention over the paged KV pool.
 *
 * Row r (sequence s, position p) and head h attend to positions 0..p of s:
 * earlier chunks' KV and this chunk's rows up to r, all read through the
 * block table (position t lives in block blocks[t / block_size], slot
 * t % block_size). Work items are (row, head) pairs split evenly across
 * the pool; each item's arithmetic is independent of the rest of the batch.
 */
#include <math.h>

#include "dw_backend_cpu_int.h"
#include "dw_kern_int.h"

typedef struct {
    dw_cpu_t         *c;
    const dw_step_t  *st;
    uint32_t          layer;
    uint32_t          n_items;
} attn_job_t;

#if defined(__AVX2__) && defined(__FMA__)
#define DW_ATTN_AVX2 1

/* dw_kern_dot's final sum of the 8 lanes, the same tree */
static inline float
attn_hsum8(__m256 v)
{
    __m128  q = _mm_add_ps(_mm256_castps256_ps128(v),
                           _mm256_extractf128_ps(v, 1));

    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/*
 * sc[j] = dot(q, k + j * stride) * scale for 8 keys at once: 8 independent
 * FMA chains instead of one (a single dot of 64 is 8 dependent FMAs), each
 * key's operations exactly dw_kern_dot's (hd a multiple of 8).
 */
static inline void
attn_dot8(const float *q, const float *k, size_t stride, uint32_t hd,
    float scale, float *sc)
{
    __m256    acc[8], qv;
    uint32_t  i, j;

    for (j = 0; j < 8; j++) {
        acc[j] = _mm256_setzero_ps();
    }
    for (i = 0; i < hd; i += 8) {
        qv = _mm256_loadu_ps(q + i);
        for (j = 0; j < 8; j++) {
            acc[j] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + j * stride + i),
                                     acc[j]);
        }
    }
    for (j = 0; j < 8; j++) {
        sc[j] = attn_hsum8(acc[j]) * scale;
    }
}

/*
 * out[d0 .. d0 + 64) = sum over t of w[t] * V_t[d0 ..], t in key order,
 * kept in 8 registers: each element sees dw_kern_axpy's FMA sequence from
 * zero, without the store and reload per key.
 */
static inline void
attn_wsum64(const dw_cpu_t *c, const uint32_t *blocks, uint32_t n_keys,
    const float *V, const float *w, uint32_t d0, float *out)
{
    __m256        acc[8], wv;
    const float  *v;
    uint32_t      b0, n, t, j, bs = c->bs;

    for (j = 0; j < 8; j++) {
        acc[j] = _mm256_setzero_ps();
    }
    for (b0 = 0; b0 < n_keys; b0 += bs) {
        v = V + (size_t) blocks[b0 / bs] * bs * c->kvd + d0;
        n = n_keys - b0 < bs ? n_keys - b0 : bs;
        for (t = 0; t < n; t++, v += c->kvd) {
            wv = _mm256_set1_ps(w[b0 + t]);
            for (j = 0; j < 8; j++) {
                acc[j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(v + 8 * j),
                                         acc[j]);
            }
        }
    }
    for (j = 0; j < 8; j++) {
        _mm256_storeu_ps(out + d0 + 8 * j, acc[j]);
    }
}
#endif

/*
 * One (row, head). Keys are walked block by block (one block-table lookup
 * and division per block, not per key). The vector paths do each key's
 * and each output element's arithmetic exactly as the plain loops below
 * (dw_kern_dot, then dw_kern_axpy from zero), only interleaved.
 */
static void
attn_item(dw_cpu_t *c, const dw_step_t *st, uint32_t layer, uint32_t row,
    uint32_t h, float *sc)
{
    const dw_config_t    *cfg = &c->m->cfg;
    const dw_seq_step_t  *s = &st->seqs[c->row_seq[row]];
    uint32_t              hd = cfg->head_dim, bs = c->bs;
    uint32_t              kvh = h / (cfg->n_heads / cfg->n_kv_heads);
    uint32_t              p = c->row_pos[row], t, b0, n, j, d0;
    const float          *q = c->q + (size_t) row * c->qd + (size_t) h * hd;
    const float          *K = c->kv + (size_t) layer * 2 * c->kv_pool
                                + (size_t) kvh * hd;
    const float          *V = K + c->kv_pool;
    const float          *kb, *vb;
    float                *out = c->att + (size_t) row * c->qd
                                + (size_t) h * hd;
    float                 scale = 1.0f / sqrtf((float) hd), mx, sum, inv;

    for (b0 = 0; b0 <= p; b0 += bs) {
        kb = K + (size_t) s->blocks[b0 / bs] * bs * c->kvd;
        n = p + 1 - b0 < bs ? p + 1 - b0 : bs;
        j = 0;
#ifdef DW_ATTN_AVX2
        if (hd % 8 == 0) {
            for (; j + 8 <= n; j += 8) {
                attn_dot8(q, kb + (size_t) j * c->kvd, c->kvd, hd, scale,
                          sc + b0 + j);
            }
        }
#endif
        for (; j < n; j++) {
            sc[b0 + j] = dw_kern_dot(q, kb + (size_t) j * c->kvd, hd) * scale;
        }
    }
    mx = -INFINITY;
    for (t = 0; t <= p; t++) {
        if (sc[t] > mx) {
            mx = sc[t];
        }
    }
    sum = 0;
    for (t = 0; t <= p; t++) {
        sc[t] = expf(sc[t] - mx);
        sum += sc[t];
    }
    inv = 1.0f / sum;
    for (t = 0; t <= p; t++) {
        sc[t] = sc[t] * inv;
    }
    d0 = 0;
#ifdef DW_ATTN_AVX2
    for (; d0 + 64 <= hd; d0 += 64) {
        attn_wsum64(c, s->blocks, p + 1, V, sc, d0, out);
    }
#endif
    if (d0 == hd) {
        return;
    }
    memset(out + d0, 0, (hd - d0) * sizeof(float));
    for (b0 = 0; b0 <= p; b0 += bs) {
        vb = V + (size_t) s->blocks[b0 / bs] * bs * c->kvd + d0;
        n = p + 1 - b0 < bs ? p + 1 - b0 : bs;
        for (j = 0; j < n; j++) {
            dw_kern_axpy(out + d0, sc[b0 + j], vb + (size_t) j * c->kvd,
                         hd - d0);
        }
    }
}

static void
attn_run(void *arg, uint32_t chunk, uint32_t chunks)
{
    attn_job_t  *j = arg;
    dw_cpu_t    *c = j->c;
    uint32_t     nh = c->m->cfg.n_heads;
    uint32_t     i, i0, i1;

    i0 = (uint32_t) ((uint64_t) j->n_items * chunk / chunks);
    i1 = (uint32_t) ((uint64_t) j->n_items * (chunk + 1) / chunks);
    for (i = i0; i < i1; i++) {
        attn_item(c, j->st, j->layer, i / nh, i % nh,
                  c->scores + (size_t) chunk * c->cap_ctx);
    }
}

void
dw_cpu_attention(dw_cpu_t *c, const dw_step_t *st, uint32_t layer,
    uint32_t n_rows)
{
    attn_job_t  j;

    j.c = c;
    j.st = st;
    j.layer = layer;
    j.n_items = n_rows * c->m->cfg.n_heads;
    /* small (estimating 64 keys per item): run inline */
    if ((size_t) j.n_items * c->m->cfg.head_dim * 64 < DW_CPU_INLINE_WORK) {
        attn_run(&j, 0, 1);
    } else {
        dw_pool_run(c->pool, attn_run, &j, DW_CPU_ATTN_CHUNKS(c));
    }
}
