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

static void
attn_item(dw_cpu_t *c, const dw_step_t *st, uint32_t layer, uint32_t row,
    uint32_t h, float *sc)
{
    const dw_config_t    *cfg = &c->m->cfg;
    const dw_seq_step_t  *s = &st->seqs[c->row_seq[row]];
    uint32_t              hd = cfg->head_dim, bs = c->bs;
    uint32_t              kvh = h / (cfg->n_heads / cfg->n_kv_heads);
    uint32_t              p = c->row_pos[row], t;
    const float          *q = c->q + (size_t) row * c->qd + (size_t) h * hd;
    const float          *K = c->kv + (size_t) layer * 2 * c->kv_pool;
    const float          *V = K + c->kv_pool;
    float                *out = c->att + (size_t) row * c->qd
                                + (size_t) h * hd;
    float                 scale = 1.0f / sqrtf((float) hd), mx, sum, inv;
    size_t                off;

    mx = -INFINITY;
    for (t = 0; t <= p; t++) {
        off = ((size_t) s->blocks[t / bs] * bs + t % bs) * c->kvd
              + (size_t) kvh * hd;
        sc[t] = dw_kern_dot(q, K + off, hd) * scale;
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
    memset(out, 0, hd * sizeof(float));
    for (t = 0; t <= p; t++) {
        off = ((size_t) s->blocks[t / bs] * bs + t % bs) * c->kvd
              + (size_t) kvh * hd;
        dw_kern_axpy(out, sc[t] * inv, V + off, hd);
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
