/*
 * dynamo-worker: the padded decode step a cuda graph replays (plain C,
 * no CUDA: built everywhere and unit-tested without a GPU).
 *
 * A graph fixes every shape and pointer at capture, so a decode-only
 * step of n sequences runs the graph of the smallest bucket >= n (1, 2,
 * 4, .., DW_CU_GRAPH_MAX_BATCH) with its metadata padded to the bucket:
 * rows n..bucket-1 are decode rows of token 0 at position 0 whose K/V
 * goes to, and whose attention reads, one dummy block outside the
 * engine's pool (the backend allocates n_blocks + 1 blocks; the dummy is
 * block n_blocks); their logits are computed and never copied back.
 * The decode attention's bounds (table width, context) are per graph: a
 * graph is captured for a context bound, a power of two >= the step's
 * longest context (at least DW_CU_GRAPH_MIN_CTX), and recaptured for the
 * next bound when a step exceeds it (a few times over a long sequence's
 * life). Unused splits of the bound are empty and skipped by the merge,
 * so a row's result does not depend on the bound.
 */
#ifndef DW_CU_PAD_H
#define DW_CU_PAD_H

#include <stdint.h>

#include "dw_cu_plan.h"

#define DW_CU_GRAPH_MAX_BATCH  256
#define DW_CU_GRAPH_MIN_CTX    512

typedef struct {
    uint32_t  src;                /* first bucket row */
    uint32_t  dst;                /* first row of step->logits */
    uint32_t  n;                  /* rows */
} dw_cu_pad_copy_t;

/* The smallest of 1, 2, 4, .., DW_CU_GRAPH_MAX_BATCH >= n; 0 when n is 0
   or above the largest bucket (the step runs eagerly). */
uint32_t dw_cu_pad_bucket(uint32_t n);

/* The context bound a graph is captured for: the smallest power of two
   >= max_ctx and >= DW_CU_GRAPH_MIN_CTX (max_ctx itself above 2^31). */
uint32_t dw_cu_pad_ctx_bound(uint32_t max_ctx);

/* 1 when the step (its plan) can run as a graph: decode rows only, at
   most DW_CU_GRAPH_MAX_BATCH of them. */
int dw_cu_pad_eligible(const dw_cu_plan_t *p);

/*
 * The padded plan of an eligible step p: bucket decode rows, tables of
 * ceil(ctx_bound / block_size) blocks, max_ctx = ctx_bound, every row's
 * logits (n_logits = bucket: the lm_head GEMM's shape is fixed too).
 * -1 when bucket < p->n_dec or ctx_bound < p->max_ctx, else 0.
 */
int dw_cu_pad_plan(const dw_cu_plan_t *p, uint32_t bucket, uint32_t ctx_bound,
    uint32_t block_size, dw_cu_plan_t *pp);

/*
 * Fills meta[pp->total]: the step's rows as dw_cu_plan_fill lays them
 * out (row i = seq i), then the padding rows (token 0, position 0, slot
 * dummy * block_size, table all dummy, context 1), and logit_rows =
 * 0..bucket-1. seq_row as dw_cu_plan_fill.
 */
void dw_cu_pad_fill(const dw_step_t *st, uint32_t block_size, uint32_t dummy,
    const dw_cu_plan_t *pp, uint32_t *meta, uint32_t *seq_row);

/* What goes back to step->logits from the bucket's logits rows: runs of
   consecutive want_logits sequences; returns their number (<= n_seqs). */
uint32_t dw_cu_pad_copies(const dw_step_t *st, dw_cu_pad_copy_t *runs);

#endif
