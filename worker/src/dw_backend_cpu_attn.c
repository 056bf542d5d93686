/*
 * dynamo-worker: grouped-query attention over the paged KV pool.
 *
 * Row r (sequence s, position p) and head h attend to positions 0..p of s:
 * earlier chunks' KV and this chunk's rows up to r, all read through the
 * block table (position t lives in block blocks[t / block_size], slot
 * t % block_size). Work items are (row, head group) pairs split evenly
 * across the pool; each head's arithmetic is independent of the rest of
 * the batch and of the grouping.
 */
#include <math.h>

#include "dw_backend_cpu_int.h"
#include "dw_kern_int.h"

typedef struct {
    dw_cpu_t         *c;
    const dw_step_t  *st;
    uint32_t          layer;
    uint32_t          hg;             /* head groups per row */
    uint32_t          n_items;
} attn_job_t;

/*
 * Heads h0..h1-1 of one row, keys in order: each key's K (then V) row is
 * read once, contiguously, for all those heads (per head, keys lie a
 * whole KV row apart, a stride that left attention waiting on memory:
 * ~1/3 of batch-64 decode at 136 tokens of context). Per head the
 * operations are those of one head alone, in the same order: scores by
 * dw_kern_dot, softmax, then out = sum of p_t * V_t by dw_kern_axpy from
 * zero, key by key. sc: (h1 - h0) x (p + 1) floats.
 */
static void
attn_heads(dw_cpu_t *c, const dw_step_t *st, uint32_t layer, uint32_t row,
    uint32_t h0, uint32_t h1, float *sc)
{
    const dw_config_t    *cfg = &c->m->cfg;
    const dw_seq_step_t  *s = &st->seqs[c->row_seq[row]];
    uint32_t              hd = cfg->head_dim, bs = c->bs;
    uint32_t              grp = cfg->n_heads / cfg->n_kv_heads;
    uint32_t              n = c->row_pos[row] + 1, t, b0, nb, j, h;
    const float          *q = c->q + (size_t) row * c->qd;
    const float          *K = c->kv + (size_t) layer * 2 * c->kv_pool;
    const float          *V = K + c->kv_pool;
    const float          *kr, *vr;
    float                *out = c->att + (size_t) row * c->qd;
    float                *sh;
    float                 scale = 1.0f / sqrtf((float) hd), mx, sum, inv;

    for (b0 = 0; b0 < n; b0 += bs) {
        kr = K + (size_t) s->blocks[b0 / bs] * bs * c->kvd;
        nb = n - b0 < bs ? n - b0 : bs;
        for (j = 0; j < nb; j++, kr += c->kvd) {
            for (h = h0; h < h1; h++) {
                sc[(size_t) (h - h0) * n + b0 + j] =
                    dw_kern_dot(q + (size_t) h * hd,
                                kr + (size_t) (h / grp) * hd, hd) * scale;
            }
        }
    }
    for (h = h0; h < h1; h++) {
        sh = sc + (size_t) (h - h0) * n;
        mx = -INFINITY;
        for (t = 0; t < n; t++) {
            if (sh[t] > mx) {
                mx = sh[t];
            }
        }
        sum = 0;
        for (t = 0; t < n; t++) {
            sh[t] = expf(sh[t] - mx);
            sum += sh[t];
        }
        inv = 1.0f / sum;
        for (t = 0; t < n; t++) {
            sh[t] = sh[t] * inv;
        }
    }
    memset(out + (size_t) h0 * hd, 0, (size_t) (h1 - h0) * hd * sizeof(float));
    for (b0 = 0; b0 < n; b0 += bs) {
        vr = V + (size_t) s->blocks[b0 / bs] * bs * c->kvd;
        nb = n - b0 < bs ? n - b0 : bs;
        for (j = 0; j < nb; j++, vr += c->kvd) {
            for (h = h0; h < h1; h++) {
                dw_kern_axpy(out + (size_t) h * hd,
                             sc[(size_t) (h - h0) * n + b0 + j],
                             vr + (size_t) (h / grp) * hd, hd);
            }
        }
    }
}

/*
 * Items are (row, head group): a row's heads in hg groups, hg = 1 when
 * there are rows enough for every chunk, more for a few rows (batch-1
 * decode) so that all threads share the work.
 */
static void
attn_run(void *arg, uint32_t chunk, uint32_t chunks)
{
    attn_job_t  *j = arg;
    dw_cpu_t    *c = j->c;
    uint32_t     nh = c->m->cfg.n_heads, hg = j->hg;
    uint32_t     i, i0, i1, g;

    i0 = (uint32_t) ((uint64_t) j->n_items * chunk / chunks);
    i1 = (uint32_t) ((uint64_t) j->n_items * (chunk + 1) / chunks);
    for (i = i0; i < i1; i++) {
        g = i % hg;
        attn_heads(c, j->st, j->layer, i / hg, nh * g / hg,
                   nh * (g + 1) / hg,
                   c->scores + (size_t) chunk * DW_CPU_ATTN_SCRATCH(c,
                                                                c->cap_ctx));
    }
}

void
dw_cpu_attention(dw_cpu_t *c, const dw_step_t *st, uint32_t layer,
    uint32_t n_rows)
{
    attn_job_t  j;
    uint32_t    chunks = DW_CPU_ATTN_CHUNKS(c), nh = c->m->cfg.n_heads, r;
    size_t      keys;

    j.c = c;
    j.st = st;
    j.layer = layer;
    j.hg = n_rows >= chunks ? 1 : (chunks + n_rows - 1) / n_rows;
    if (j.hg > nh) {
        j.hg = nh;
    }
    j.n_items = n_rows * j.hg;
    /* small: run inline. Work is 2 multiply-adds (score, V) per key,
     * head and head_dim element, keys counted per row: batch-1 decode
     * runs inline up to ~85 tokens of context (134M shape), then in the
     * pool, not on the caller alone while the other threads spin */
    keys = 0;
    for (r = 0; r < n_rows; r++) {
        keys += (size_t) c->row_pos[r] + 1;
    }
    if (keys * nh * c->m->cfg.head_dim * 2 < DW_CPU_INLINE_WORK) {
        attn_run(&j, 0, 1);
    } else {
        dw_pool_run(c->pool, attn_run, &j, chunks);
    }
}
