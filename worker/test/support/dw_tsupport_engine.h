/*
 * Test support for the engine tests: a mock-backed engine, a collector of
 * outputs per request, and a checker of the KV event stream's consistency.
 */
#ifndef DW_TSUPPORT_ENGINE_H
#define DW_TSUPPORT_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "dw_engine.h"
#include "dw_rand.h"   /* dw_splitmix64(): the tests' data streams */

#define DW_TS_MAX_REQS  512
#define DW_TS_MAX_OUT   1024

typedef struct {
    int          submitted;
    uint32_t     n_tokens;
    uint32_t     tokens[DW_TS_MAX_OUT];
    float        logprobs[DW_TS_MAX_OUT];
    int          finished;          /* FINISH frames seen */
    int          token_after_finish;
    /*
     * The last finish output, the first token output and the last
     * DW_OUT_REMOTE output. fin and remote own their kv_blocks (freed by
     * dw_ts_eng_close or a later output of the kind; a test that hands
     * them on sets kv_blocks to NULL).
     */
    dw_output_t  fin;
    dw_output_t  first;
    int          n_remote;          /* DW_OUT_REMOTE outputs seen */
    dw_output_t  remote;
} dw_ts_req_t;

/* every STORED/REMOVED seq hash seen, as a set; errors counted */
typedef struct {
    uint64_t  *set;
    size_t     cap;
    size_t     n;
    uint64_t   stored;           /* blocks stored, removed */
    uint64_t   removed;
    uint64_t   events;
    uint64_t   cleared;          /* CLEARED events (empty the set) */
    uint64_t   errors;           /* STORED twice, REMOVED absent */
} dw_ts_kv_t;

typedef struct {
    dw_engine_t  *e;
    dw_ts_req_t  *req;           /* DW_TS_MAX_REQS, indexed by id */
    dw_ts_kv_t    kv;
    uint32_t      n_resets;      /* DW_OUT_RESET outputs seen */
    uint32_t      n_resets_ok;   /* ... with reset_ok */
    dw_output_t   reset;         /* the last of them */
} dw_ts_eng_t;

/* A model config for the mock: vocab, 2 layers, eos 2. */
void dw_ts_mock_model(dw_config_t *mc, uint32_t vocab);

/*
 * An engine over the mock backend (logits_path: the engine samples from
 * the mock's one-hot logits instead of taking next_ids). speedup 0: 1e9.
 */
int dw_ts_eng_mock(dw_ts_eng_t *t, const dw_engine_config_t *cfg,
    uint32_t vocab, double speedup, int logits_path);
/* An engine over any backend (taken over). */
int dw_ts_eng_open(dw_ts_eng_t *t, const dw_engine_config_t *cfg,
    dw_backend_t *be);
void dw_ts_eng_close(dw_ts_eng_t *t);

/* Submits a copy of prompt; returns dw_engine_submit's result. */
int dw_ts_submit(dw_ts_eng_t *t, uint64_t id, const uint32_t *prompt,
    uint32_t n, const dw_sampling_t *sp);
/* Likewise with dw_request_t's flags (DW_REQ_*) and remote_min_tokens. */
int dw_ts_submit_flags(dw_ts_eng_t *t, uint64_t id, const uint32_t *prompt,
    uint32_t n, const dw_sampling_t *sp, uint32_t flags,
    uint32_t remote_min_tokens);
/*
 * Drains outputs (DW_OUT_RESET into t->reset) and KV events into t; every
 * output's kv_blocks end up in t->req[] or freed.
 */
void dw_ts_drain(dw_ts_eng_t *t);
/* Steps (on this thread) until idle, draining; returns steps taken. */
uint32_t dw_ts_run(dw_ts_eng_t *t);

/* Greedy sampling (temperature 0) of at most max_tokens tokens. */
dw_sampling_t dw_ts_greedy_sp(uint32_t max_tokens);
/* p[0..n) = lo + (dw_splitmix64(rs) % span), in order. */
void dw_ts_rand_ids(uint64_t *rs, uint32_t *p, uint32_t n, uint32_t lo,
    uint32_t span);

#endif
