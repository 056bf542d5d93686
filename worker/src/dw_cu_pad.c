/*
 * dynamo-worker: the padded decode step of a cuda graph (see dw_cu_pad.h).
 */
#include "dw_cu_pad.h"

uint32_t
dw_cu_pad_bucket(uint32_t n)
{
    uint32_t  b = 1;

    if (n == 0 || n > DW_CU_GRAPH_MAX_BATCH) {
        return 0;
    }
    while (b < n) {
        b <<= 1;
    }
    return b;
}

uint32_t
dw_cu_pad_ctx_bound(uint32_t max_ctx)
{
    uint32_t  b = DW_CU_GRAPH_MIN_CTX;

    while (b < max_ctx && b < 0x80000000u) {
        b <<= 1;
    }
    return b < max_ctx ? max_ctx : b;
}

int
dw_cu_pad_eligible(const dw_cu_plan_t *p)
{
    return p->n_pf == 0 && p->n_dec == p->rows
           && dw_cu_pad_bucket(p->n_dec) != 0;
}

int
dw_cu_pad_plan(const dw_cu_plan_t *p, uint32_t bucket, uint32_t ctx_bound,
    uint32_t block_size, dw_cu_plan_t *pp)
{
    if (!dw_cu_pad_eligible(p) || bucket < p->n_dec
        || ctx_bound < p->max_ctx || block_size == 0)
    {
        return -1;
    }
    *pp = *p;
    pp->rows = bucket;
    pp->n_dec = bucket;
    pp->n_pf = 0;
    pp->max_q = 0;
    pp->max_ctx = ctx_bound;
    pp->mb = (uint32_t) (((uint64_t) ctx_bound + block_size - 1)
                         / block_size);
    pp->n_logits = bucket;
    dw_cu_plan_layout(pp);
    return 0;
}

void
dw_cu_pad_fill(const dw_step_t *st, uint32_t block_size, uint32_t dummy,
    const dw_cu_plan_t *pp, uint32_t *M, uint32_t *seq_row)
{
    uint32_t  r, b, n = st->n_seqs;

    /* the real rows: decode only, so row i is seq i; logit_rows is
       rewritten below */
    dw_cu_plan_fill(st, block_size, pp, M, seq_row);
    for (r = n; r < pp->rows; r++) {
        M[pp->tokens + r] = 0;
        M[pp->pos + r] = 0;
        M[pp->slot + r] = dummy * block_size;
        for (b = 0; b < pp->mb; b++) {
            M[pp->dec_tables + (size_t) r * pp->mb + b] = dummy;
        }
        M[pp->dec_ctx + r] = 1;
    }
    for (r = 0; r < pp->n_logits; r++) {
        M[pp->logit_rows + r] = r;
    }
}

uint32_t
dw_cu_pad_copies(const dw_step_t *st, dw_cu_pad_copy_t *runs)
{
    uint32_t  i, j = 0, k = 0;

    for (i = 0; i < st->n_seqs; i++) {
        if (!st->seqs[i].want_logits) {
            continue;
        }
        if (k > 0 && runs[k - 1].src + runs[k - 1].n == i) {
            runs[k - 1].n++;
        } else {
            runs[k].src = i;
            runs[k].dst = j;
            runs[k].n = 1;
            k++;
        }
        j++;
    }
    return k;
}
