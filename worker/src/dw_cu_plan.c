/*
 * dynamo-worker: the cuda backend's step layout (see dw_cu_plan.h).
 */
#include <stdio.h>
#include <string.h>

#include "dw_cu_plan.h"

int
dw_cu_plan(const dw_step_t *st, uint32_t vocab, uint32_t block_size,
    uint32_t n_blocks, dw_cu_plan_t *p, char *err, size_t errlen)
{
    const dw_seq_step_t  *s;
    uint32_t              i, t, b, nb, logits = 0;

    memset(p, 0, sizeof(*p));
    for (i = 0; i < st->n_seqs; i++) {
        s = &st->seqs[i];
        if (s->n_tokens == 0 || s->tokens == NULL || s->blocks == NULL
            || (uint64_t) s->pos + s->n_tokens
               > (uint64_t) s->n_blocks * block_size)
        {
            snprintf(err, errlen, "seq %u: bad step (tokens %u, pos %u, "
                     "blocks %u)", i, s->n_tokens, s->pos, s->n_blocks);
            return -1;
        }
        for (t = 0; t < s->n_tokens; t++) {
            if (s->tokens[t] >= vocab) {
                snprintf(err, errlen, "seq %u: token %u out of vocab", i,
                         s->tokens[t]);
                return -1;
            }
        }
        nb = (s->pos + s->n_tokens + block_size - 1) / block_size;
        for (b = 0; b < nb; b++) {
            if (s->blocks[b] >= n_blocks) {
                snprintf(err, errlen, "seq %u: block %u out of the pool", i,
                         s->blocks[b]);
                return -1;
            }
        }
        p->mb = nb > p->mb ? nb : p->mb;
        p->rows += s->n_tokens;
        if (s->n_tokens == 1) {
            p->n_dec++;
            p->max_ctx = s->pos + 1 > p->max_ctx ? s->pos + 1 : p->max_ctx;
        } else {
            p->n_pf++;
            p->max_q = s->n_tokens > p->max_q ? s->n_tokens : p->max_q;
        }
        logits += s->want_logits != 0;
    }
    if (p->rows == 0 || logits != st->n_logits
        || (logits > 0 && st->logits == NULL))
    {
        snprintf(err, errlen, "step counts disagree (rows %u, logits %u of "
                 "%u)", p->rows, logits, st->n_logits);
        return -1;
    }
    p->n_logits = logits;
    dw_cu_plan_layout(p);
    return 0;
}

void
dw_cu_plan_layout(dw_cu_plan_t *p)
{
    size_t  k = 0;

    p->tokens = k;      k += p->rows;
    p->pos = k;         k += p->rows;
    p->slot = k;        k += p->rows;
    p->logit_rows = k;  k += p->n_logits;
    p->dec_tables = k;  k += (size_t) p->n_dec * p->mb;
    p->dec_ctx = k;     k += p->n_dec;
    p->pf_tables = k;   k += (size_t) p->n_pf * p->mb;
    p->pf_qstart = k;   k += p->n_pf;
    p->pf_qlen = k;     k += p->n_pf;
    p->pf_pos0 = k;     k += p->n_pf;
    p->total = k;
}

void
dw_cu_plan_fill(const dw_step_t *st, uint32_t block_size,
    const dw_cu_plan_t *p, uint32_t *M, uint32_t *seq_row)
{
    const dw_seq_step_t  *s;
    uint32_t              i, t, b, nb, pass, row = 0, d = 0, c = 0, j = 0;
    uint32_t             *tab;

    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < st->n_seqs; i++) {
            s = &st->seqs[i];
            if ((s->n_tokens == 1) != (pass == 0)) {
                continue;
            }
            seq_row[i] = row;
            for (t = 0; t < s->n_tokens; t++, row++) {
                uint32_t  ps = s->pos + t;

                M[p->tokens + row] = s->tokens[t];
                M[p->pos + row] = ps;
                M[p->slot + row] = s->blocks[ps / block_size] * block_size
                                   + ps % block_size;
            }
            tab = M + (pass == 0 ? p->dec_tables + (size_t) d * p->mb
                                 : p->pf_tables + (size_t) c * p->mb);
            nb = (s->pos + s->n_tokens + block_size - 1) / block_size;
            for (b = 0; b < p->mb; b++) {
                tab[b] = b < nb ? s->blocks[b] : 0;
            }
            if (pass == 0) {
                M[p->dec_ctx + d] = s->pos + 1;
                d++;
            } else {
                M[p->pf_qstart + c] = seq_row[i] - p->n_dec;
                M[p->pf_qlen + c] = s->n_tokens;
                M[p->pf_pos0 + c] = s->pos;
                c++;
            }
        }
    }
    for (i = 0; i < st->n_seqs; i++) {
        s = &st->seqs[i];
        if (s->want_logits) {
            M[p->logit_rows + j++] = seq_row[i] + s->n_tokens - 1;
        }
    }
}
