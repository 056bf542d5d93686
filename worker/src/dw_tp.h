/*
 * dynamo-worker: the tensor-parallel shard plan (plain C, no CUDA: built
 * everywhere and unit-tested without a GPU by worker/test/test_tp.c).
 *
 * N ranks (GPUs) split one model, Megatron style:
 *   q/k/v and gate/up column-parallel: rank r holds its q heads, its KV
 *   heads and its intermediate slice, i.e. the ROWS of those HF matrices
 *   (nn.Linear weights are out x in);
 *   o_proj and down_proj row-parallel: rank r holds the COLUMNS that
 *   multiply its heads / its intermediate slice; the per-rank outputs are
 *   partial sums, added by an all-reduce before the residual add;
 *   embedding replicated (a gather, no arithmetic to split);
 *   lm_head vocab-parallel: rank r holds the rows of its vocab slice,
 *   computes those logits, and an all-gather concatenates them.
 *
 * q heads: N must divide n_heads; rank r has heads [r*H/N, (r+1)*H/N).
 * KV heads: when N divides n_kv_heads, rank r has n_kv_heads/N of them,
 * [r*K/N, (r+1)*K/N), and its q heads' GQA groups are exactly those. When
 * n_kv_heads < N and N % n_kv_heads == 0, every rank's q heads fall into
 * one GQA group, so each rank holds ONE KV head, kv head r * K / N: the
 * N/K ranks of a group each keep a replica of it (their KV pools hold the
 * same K/V; memory traded for no communication in attention). Anything
 * else is refused with the numbers.
 * Intermediate and vocab need not divide: slices are balanced,
 * [r*n/N, (r+1)*n/N), and may differ by one; vocab_pad (the largest
 * slice) is what the all-gather moves per rank.
 */
#ifndef DW_TP_H
#define DW_TP_H

#include <stddef.h>
#include <stdint.h>

#include "dw_model.h"

#define DW_TP_MAX  64

typedef struct {
    uint32_t  lo, n;              /* [lo, lo + n) */
} dw_tp_range_t;

typedef struct {
    uint32_t       n_ranks, rank;
    dw_tp_range_t  heads;         /* q heads */
    dw_tp_range_t  kv_heads;      /* KV heads held (n = 1 when replicated) */
    int            kv_replicated; /* n_kv_heads < n_ranks */
    dw_tp_range_t  inter;         /* intermediate slice */
    dw_tp_range_t  vocab;         /* lm_head slice */
    uint32_t       vocab_pad;     /* largest vocab slice over the ranks */
    /* HF weight matrices: the rows (q/k/v/gate/up/lm_head) or columns
       (o/down) this rank uploads */
    dw_tp_range_t  q_rows, k_rows, v_rows, gate_rows, up_rows, lm_rows;
    dw_tp_range_t  o_cols, down_cols;
    size_t         kv_block_bytes; /* one KV block, all layers, K and V */
} dw_tp_shard_t;

/* 0 when n ranks fit cfg, else -1 with err naming the numbers (e.g.
   "--tensor-parallel-size 3 does not divide n_heads 8"). */
int dw_tp_check(const dw_config_t *cfg, uint32_t n, char *err, size_t errlen);

/* Rank's shard of cfg over n ranks; elem: bytes per KV element. 0 or -1
   with err (dw_tp_check's, or a bad rank). */
int dw_tp_shard(const dw_config_t *cfg, uint32_t n, uint32_t rank,
    uint32_t block_size, size_t elem, dw_tp_shard_t *out, char *err,
    size_t errlen);

#endif
