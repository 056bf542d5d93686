/*
 * dynamo-worker: the tensor-parallel shard plan (dw_tp.h).
 */
#include <stdio.h>
#include <string.h>

#include "dw_tp.h"

static dw_tp_range_t
balanced(uint32_t total, uint32_t n, uint32_t r)
{
    dw_tp_range_t  s;
    uint64_t       lo = (uint64_t) total * r / n,
                   hi = (uint64_t) total * (r + 1) / n;

    s.lo = (uint32_t) lo;
    s.n = (uint32_t) (hi - lo);
    return s;
}

int
dw_tp_check(const dw_config_t *cfg, uint32_t n, char *err, size_t errlen)
{
    uint32_t  k = cfg->n_kv_heads;

    if (n < 1 || n > DW_TP_MAX) {
        snprintf(err, errlen, "--tensor-parallel-size %u: want 1..%u", n,
                 DW_TP_MAX);
        return -1;
    }
    if (cfg->n_heads % n != 0) {
        snprintf(err, errlen, "--tensor-parallel-size %u does not divide "
                 "n_heads %u", n, cfg->n_heads);
        return -1;
    }
    if (k == 0 || cfg->n_heads % k != 0) {
        snprintf(err, errlen, "n_kv_heads %u does not divide n_heads %u", k,
                 cfg->n_heads);
        return -1;
    }
    if (k >= n ? k % n != 0 : n % k != 0) {
        snprintf(err, errlen, "--tensor-parallel-size %u does not fit "
                 "n_kv_heads %u (it must divide it, or be a multiple of it "
                 "to replicate KV heads)", n, k);
        return -1;
    }
    if (cfg->intermediate_size < n) {
        snprintf(err, errlen, "--tensor-parallel-size %u exceeds "
                 "intermediate_size %u", n, cfg->intermediate_size);
        return -1;
    }
    if (cfg->vocab_size < n) {
        snprintf(err, errlen, "--tensor-parallel-size %u exceeds "
                 "vocab_size %u", n, cfg->vocab_size);
        return -1;
    }
    return 0;
}

int
dw_tp_shard(const dw_config_t *cfg, uint32_t n, uint32_t rank,
    uint32_t block_size, size_t elem, dw_tp_shard_t *out, char *err,
    size_t errlen)
{
    uint32_t  hd = cfg->head_dim, k = cfg->n_kv_heads, im;

    memset(out, 0, sizeof(*out));
    if (dw_tp_check(cfg, n, err, errlen) != 0) {
        return -1;
    }
    if (rank >= n) {
        snprintf(err, errlen, "tensor parallel: rank %u of %u", rank, n);
        return -1;
    }
    im = cfg->intermediate_size;
    out->n_ranks = n;
    out->rank = rank;
    out->heads = balanced(cfg->n_heads, n, rank);
    if (k >= n) {
        out->kv_heads = balanced(k, n, rank);
    } else {
        /* one GQA group spans n / k ranks: each keeps a replica */
        out->kv_heads.lo = rank * k / n;
        out->kv_heads.n = 1;
        out->kv_replicated = 1;
    }
    out->inter = balanced(im, n, rank);
    out->vocab = balanced(cfg->vocab_size, n, rank);
    out->vocab_pad = (cfg->vocab_size + n - 1) / n;

    out->q_rows.lo = out->heads.lo * hd;
    out->q_rows.n = out->heads.n * hd;
    out->k_rows.lo = out->kv_heads.lo * hd;
    out->k_rows.n = out->kv_heads.n * hd;
    out->v_rows = out->k_rows;
    out->gate_rows = out->inter;
    out->up_rows = out->inter;
    out->lm_rows = out->vocab;
    out->o_cols = out->q_rows;
    out->down_cols = out->inter;
    out->kv_block_bytes = (size_t) cfg->n_layers * 2 * block_size
                          * out->kv_heads.n * hd * elem;
    return 0;
}
