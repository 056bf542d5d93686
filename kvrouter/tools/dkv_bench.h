/*
 * dynamo-kv bench: shared between the command (dkv_bench.c), the synthetic
 * workload (dkv_bench_workload.c) and the naive baseline index
 * (dkv_bench_naive.c).
 */
#ifndef DKV_BENCH_H
#define DKV_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "kvr_event.h"
#include "kvr_index.h"

#define DKV_WORKER_ID0  1000        /* worker w has id DKV_WORKER_ID0 + w */

typedef struct {
    uint32_t  workers;
    uint64_t  blocks;               /* per worker */
    uint32_t  block_size;
    size_t    queries;
    uint64_t  seed;
} dkv_wl_config_t;

/* An event of worker w: blocks[first .. first + n). */
typedef struct {
    uint32_t  worker;
    uint32_t  type;                 /* KVR_EV_STORED or KVR_EV_REMOVED */
    uint64_t  event_id;
    uint64_t  first;
    uint32_t  n;
} dkv_wl_event_t;

typedef struct {
    dkv_wl_config_t   cfg;

    kvr_block_t      *blocks;       /* every block any event carries */
    size_t            nblocks;
    size_t            cap_blocks;

    dkv_wl_event_t   *events;       /* initial fill, workers interleaved */
    size_t            nevents;
    dkv_wl_event_t   *churn;        /* REMOVED then STORED again */
    size_t            nchurn;
    size_t            cap_events;
    size_t            cap_churn;

    uint64_t          pairs;        /* (worker, block) pairs after fill */
    uint64_t          conversations;
    uint32_t          sys_prompts;

    uint64_t         *qseq;         /* query q: qseq[qoff[q] .. qoff[q+1]) */
    size_t           *qoff;
    size_t            nqueries;

    uint64_t          hashed_tokens;
    double            hash_seconds;
} dkv_workload_t;

/* Builds the workload; 0, or -1 on allocation failure. */
int dkv_workload_build(dkv_workload_t *wl, const dkv_wl_config_t *cfg);
void dkv_workload_free(dkv_workload_t *wl);

/* Upper bound of the bytes dkv_workload_build allocates. */
uint64_t dkv_workload_bytes(const dkv_wl_config_t *cfg);

double dkv_now(void);

/* ---- the naive baseline: one hash set of seq hashes per worker ---- */

typedef struct dkv_naive_s  dkv_naive_t;

dkv_naive_t *dkv_naive_new(uint32_t workers, uint64_t blocks_per_worker);
void dkv_naive_free(dkv_naive_t *nv);
void dkv_naive_reset(dkv_naive_t *nv);
/* STORED or REMOVED of worker ev->worker_id - DKV_WORKER_ID0. */
void dkv_naive_apply(dkv_naive_t *nv, const kvr_event_t *ev);
size_t dkv_naive_find_matches(const dkv_naive_t *nv, const uint64_t *seq,
    size_t n, kvr_match_t *out, size_t max_out);
uint64_t dkv_naive_bytes(const dkv_naive_t *nv);

#endif
