/*
 * dynamo-worker: how the cuda backend lays out one engine step (plain C,
 * no CUDA: built everywhere and unit-tested without a GPU).
 *
 * Rows: single-token sequences (decode) first, in seq order, then prompt
 * chunks (two tokens or more), in seq order, each sequence's rows
 * contiguous. The step's metadata is one uint32_t array (copied to the
 * device in one transfer), its parts at the offsets below:
 *   tokens[rows], pos[rows], slot[rows] (pool-wide: block * block_size +
 *   position % block_size), logit_rows[n_logits] (last row of each
 *   want_logits sequence, in seq order), dec_tables[n_dec][mb] and
 *   dec_ctx[n_dec] (pos + 1) for the decode kernel, pf_tables[n_pf][mb],
 *   pf_qstart[n_pf] (first row, counted from the first prompt row),
 *   pf_qlen[n_pf], pf_pos0[n_pf] for the prefill kernel.
 * Table rows are padded with block 0 up to mb (never read: the kernels
 * stop at each sequence's length).
 */
#ifndef DW_CU_PLAN_H
#define DW_CU_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "dw_backend.h"

typedef struct {
    uint32_t  rows, n_dec, n_pf, mb, max_ctx, max_q, n_logits;
    size_t    tokens, pos, slot, logit_rows, dec_tables, dec_ctx,
              pf_tables, pf_qstart, pf_qlen, pf_pos0;
    size_t    total;              /* uint32_t in the whole array */
} dw_cu_plan_t;

/*
 * Checks the step (tokens below vocab, block tables covering every
 * position and inside the pool, counts agreeing) and sizes its parts.
 * 0, or -1 with err.
 */
int dw_cu_plan(const dw_step_t *st, uint32_t vocab, uint32_t block_size,
    uint32_t n_blocks, dw_cu_plan_t *p, char *err, size_t errlen);

/* Sets the offsets of the parts and total from the counts (rows, n_dec,
   n_pf, mb, n_logits); dw_cu_plan calls it, dw_cu_pad.c for a padded
   step. */
void dw_cu_plan_layout(dw_cu_plan_t *p);

/* Fills meta[p->total]; seq_row[i] = first row of seq i (n_seqs). */
void dw_cu_plan_fill(const dw_step_t *st, uint32_t block_size,
    const dw_cu_plan_t *p, uint32_t *meta, uint32_t *seq_row);

#endif
