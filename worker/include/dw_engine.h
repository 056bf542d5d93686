/*
 * dynamo-worker: the engine. It owns the scheduler, the KV block manager
 * and a backend, and runs the step loop (schedule, forward, sample, emit)
 * on its own thread. The I/O thread talks to it only through this header:
 *
 *   submit / cancel    any thread -> engine (locked queue, wakes the loop)
 *   reset_prefix_cache likewise; its result comes back as a DW_OUT_RESET
 *                      output
 *   remote_done        likewise (decode worker: a parked request's remote
 *                      prefill ended)
 *   release_blocks     likewise (prefill worker: held blocks come back)
 *   drain / drain_kv   engine -> I/O thread: token and finish outputs,
 *                      KV cache events; notify_fd (an eventfd) turns
 *                      readable when either has entries
 *   load / stats       snapshots, any thread
 *
 * Ordering: for one request, outputs come in generation order and exactly
 * one DW_OUT_FINISH ends them (also after cancel). KV events come in the
 * order the block manager made them, STORED before any REMOVED of the same
 * block, so publishing them in drain order keeps Redis right.
 */
#ifndef DW_ENGINE_H
#define DW_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "dw_backend.h"
#include "dw_sampling.h"
#include "kvr_event.h"
#include "kvr_worker.h"

/* DW_MAX_STOP_IDS, DW_MAX_TOP_LOGPROBS, dw_sampling_t: dw_sampling.h */

/*
 * Disaggregated prefill (worker/DISAGG.md). Where a request's prompt was
 * computed, reported in its finish output (and finish frame).
 */
typedef enum {
    DW_PREFILL_AGG = 0,        /* no prefill worker involved */
    DW_PREFILL_REMOTE,         /* the prefill worker computed it */
    DW_PREFILL_LOCAL_SHORT,    /* uncached part below the remote minimum */
    DW_PREFILL_LOCAL_BUSY,     /* the prefill worker's queue is too long */
    DW_PREFILL_LOCAL_DOWN,     /* it failed or refused lately (backoff) */
    DW_PREFILL_LOCAL_FAILED,   /* the remote prefill failed: fell back */
    DW_PREFILL_LOCAL_SELF      /* the hint named this very worker */
} dw_prefill_t;

#define DW_REQ_HOLD_KV         0x1  /* prefill worker: see DW_OUT_FINISH */
#define DW_REQ_REMOTE_PREFILL  0x2  /* decode worker: see DW_OUT_REMOTE */

typedef struct {
    uint64_t       id;          /* unique among live requests (server's) */
    uint32_t      *prompt;      /* malloc'd; the engine takes ownership */
    uint32_t       n_prompt;
    dw_sampling_t  sp;
    uint32_t       flags;       /* DW_REQ_* */
    /*
     * DW_REQ_REMOTE_PREFILL: at admission, when at least this many prompt
     * tokens are not in the prefix cache, the engine allocates blocks for
     * the whole prompt, parks the request and emits DW_OUT_REMOTE; else
     * it prefills locally (prefill DW_PREFILL_LOCAL_SHORT).
     */
    uint32_t       remote_min_tokens;
    dw_prefill_t   prefill;     /* reported as is unless the engine decides */
} dw_request_t;

typedef enum {
    DW_OUT_TOKEN = 1,
    DW_OUT_FINISH,
    DW_OUT_RESET,            /* result of dw_engine_reset_prefix_cache */
    /*
     * A DW_REQ_REMOTE_PREFILL request was parked for a remote prefill:
     * kv_blocks[0..n_kv_blocks) are its block table for the whole prompt,
     * the first cached_tokens / block_size of them already computed (the
     * prefix cache). Answer with dw_engine_remote_done. The blocks stay
     * the request's (not preempted, not reused) until then or a cancel.
     */
    DW_OUT_REMOTE
} dw_out_kind_t;

typedef enum {
    DW_FINISH_STOP = 1,      /* eos (unless ignore_eos) or a stop id */
    DW_FINISH_LENGTH,        /* max_tokens or the context length */
    DW_FINISH_CANCELLED,     /* dw_engine_cancel */
    DW_FINISH_ERROR          /* prompt too long for the pool, backend error */
} dw_finish_t;

typedef struct {
    uint64_t       req_id;
    dw_out_kind_t  kind;

    /* DW_OUT_TOKEN */
    uint32_t       token;
    float          logprob;     /* when sp.logprobs >= 0 */
    uint32_t       n_top;
    uint32_t       top_ids[DW_MAX_TOP_LOGPROBS];
    float          top_logprobs[DW_MAX_TOP_LOGPROBS];

    /* DW_OUT_FINISH */
    dw_finish_t    reason;
    uint32_t       prompt_tokens;
    uint32_t       completion_tokens;
    uint32_t       cached_tokens;   /* prompt tokens served from the cache */
    uint32_t       preemptions;
    char           error[96];       /* DW_FINISH_ERROR: why */
    dw_prefill_t   prefill;

    /*
     * DW_OUT_REMOTE, and DW_OUT_FINISH (stop or length) of a
     * DW_REQ_HOLD_KV request: block ids (malloc'd, the drainer frees them
     * with dw_output_free) covering the prompt's KV. For HOLD_KV the
     * blocks stay referenced (not evicted, not overwritten) until the
     * I/O thread hands them back with dw_engine_release_blocks.
     */
    uint32_t      *kv_blocks;
    uint32_t       n_kv_blocks;

    /* DW_OUT_RESET */
    int            reset_ok;        /* 1: cache emptied, CLEARED emitted */
    uint32_t       blocks_dropped;  /* cached blocks returned to free */
    uint32_t       blocks_in_use;   /* !reset_ok: cached blocks held */
} dw_output_t;

/* One block-manager change, for kvr_pub_*_cmd. */
typedef struct {
    kvr_event_type_t  type;       /* STORED, REMOVED or CLEARED */
    int               has_parent;
    uint64_t          parent;
    size_t            n;
    kvr_block_t      *blocks;     /* malloc'd; REMOVED uses seq only */
} dw_kv_event_t;

void dw_kv_event_free(dw_kv_event_t *ev);

/* Frees what a drained output owns (kv_blocks); safe on any output. */
void dw_output_free(dw_output_t *o);

typedef struct {
    uint32_t  block_size;             /* tokens per block (default 16) */
    uint32_t  n_blocks;               /* KV pool */
    uint32_t  max_num_seqs;           /* running sequences (default 256) */
    uint32_t  max_num_batched_tokens; /* token budget per step (8192) */
    uint32_t  max_model_len;          /* context length; 0: model's */
    uint64_t  hash_seed;              /* kvr_hash_seed(NULL) normally */
    int       prefix_caching;         /* 1 (default) */
    int       emit_kv_events;         /* 1: fill the drain_kv queue */
} dw_engine_config_t;

void dw_engine_config_defaults(dw_engine_config_t *cfg);

typedef struct {
    /* gauges */
    uint32_t  running;                /* includes remote_parked */
    uint32_t  waiting;
    uint32_t  used_blocks;            /* referenced by a sequence */
    uint32_t  cached_blocks;          /* unreferenced, kept for reuse */
    uint32_t  total_blocks;
    uint64_t  queued_prefill_tokens;
    /* counters since start */
    uint64_t  prompt_tokens;
    uint64_t  generation_tokens;
    uint64_t  forward_tokens;         /* tokens the backend computed */
    uint64_t  prefix_hit_tokens;      /* prompt tokens found in the cache */
    uint64_t  prefix_query_tokens;    /* prompt tokens looked up */
    uint64_t  preemptions;
    uint64_t  requests_finished;
    uint64_t  steps;
    /* histograms: counts per bucket, bounds in dw_engine_hist_bounds_ms */
#define DW_HIST_BUCKETS  16
    uint64_t  ttft_hist[DW_HIST_BUCKETS + 1];   /* last: +Inf */
    double    ttft_sum_ms;
    uint64_t  itl_hist[DW_HIST_BUCKETS + 1];
    double    itl_sum_ms;
    /*
     * Disaggregation. Decode side: requests parked for a remote prefill
     * (gauge, also counted in running), DW_OUT_REMOTE outputs emitted,
     * remote prefills that ended well (dw_engine_remote_done with a first
     * token) and those that fell back to a local prefill (NULL). Prefill
     * side: block references DW_REQ_HOLD_KV finishes hold (gauge).
     */
    uint32_t  remote_parked;
    uint32_t  held_blocks;
    uint64_t  remote_parks;
    uint64_t  remote_prefills;
    uint64_t  remote_fallbacks;
} dw_engine_stats_t;

extern const double dw_engine_hist_bounds_ms[DW_HIST_BUCKETS];

typedef struct dw_engine_s  dw_engine_t;

/*
 * The engine takes ownership of be (destroyed with the engine); on failure
 * the caller keeps it. be's block_size must equal cfg's and its pool hold
 * at least cfg->n_blocks.
 */
int dw_engine_create(const dw_engine_config_t *cfg, dw_backend_t *be,
    dw_engine_t **out, char *err, size_t errlen);
int dw_engine_start(dw_engine_t *e);      /* spawns the engine thread */
void dw_engine_stop(dw_engine_t *e);      /* finishes nothing; joins */
void dw_engine_destroy(dw_engine_t *e);

/*
 * Queues a request: 0, or a DW_SUBMIT_* error with err. On error the
 * caller keeps req->prompt (which may have moved: free that pointer).
 */
#define DW_SUBMIT_INVAL    -1   /* prompt empty, too long, bad id, ... */
#define DW_SUBMIT_NOMEM    -2
#define DW_SUBMIT_STOPPED  -3
int dw_engine_submit(dw_engine_t *e, dw_request_t *req, char *err,
    size_t errlen);
/* Stops the request and frees its blocks at the next step boundary. */
void dw_engine_cancel(dw_engine_t *e, uint64_t req_id);

/*
 * Decode worker: the remote prefill of a parked request (DW_OUT_REMOTE)
 * ended. first != NULL: its blocks hold the prompt's KV and first (a
 * DW_OUT_TOKEN output, sampled by the prefill worker with the request's
 * sampling parameters) is the first generated token: decoding goes on
 * from it, as if the engine had sampled it (same seeded stream). first
 * NULL: the remote prefill failed; the engine prefills the uncached part
 * locally into the same blocks (prefill DW_PREFILL_LOCAL_FAILED). Ids no
 * longer parked (cancelled) are ignored. 0, or -1 (engine stopped, no
 * memory). The first token is taken as is (an id outside the vocabulary
 * counts as a failure); the KV in the blocks is trusted.
 */
int dw_engine_remote_done(dw_engine_t *e, uint64_t req_id,
    const dw_output_t *first);
/*
 * Prefill worker: gives back the blocks a DW_REQ_HOLD_KV finish handed
 * over (kv_blocks, n), once the transfer that reads them is over. Takes
 * ownership of kv_blocks (malloc'd) in every case. Only references a
 * HOLD_KV finish handed out are dropped, each once: a repeated or bogus
 * release changes nothing. While blocks are held, requests that do not
 * fit the rest of the pool wait (rather than fail). 0, or -1.
 */
int dw_engine_release_blocks(dw_engine_t *e, uint32_t *kv_blocks,
    uint32_t n);

/*
 * Empties the prefix cache at the next step boundary (after that step's
 * cancels), like vLLM's reset_prefix_cache, and answers with one
 * DW_OUT_RESET output carrying req_id (an id of the caller's, distinct from
 * live requests'). All or nothing: when no running sequence holds a cached
 * block, every cached block goes back to the free list, reset_ok is 1 and
 * one KVR_EV_CLEARED event (no REMOVED) is queued, so the router drops all
 * of this worker's blocks. Otherwise nothing changes (reset_ok 0,
 * blocks_in_use says how many cached blocks are held): a partial reset
 * could not be told apart from eviction and buys little. Blocks computed
 * later are cached and STORED again as usual. Returns 0, or -1 (engine
 * stopped, out of memory: no output will come).
 */
int dw_engine_reset_prefix_cache(dw_engine_t *e, uint64_t req_id);

int dw_engine_notify_fd(const dw_engine_t *e);
/* Pops up to max entries; returns how many. Clears the eventfd. */
size_t dw_engine_drain(dw_engine_t *e, dw_output_t *out, size_t max);
size_t dw_engine_drain_kv(dw_engine_t *e, dw_kv_event_t *out, size_t max);

/*
 * Requests parked for a remote prefill count as running (they will decode
 * here), their blocks as active, and not in queued_prefill_tokens.
 */
void dw_engine_load(dw_engine_t *e, kvr_load_t *load);
void dw_engine_stats(dw_engine_t *e, dw_engine_stats_t *st);
/*
 * The configuration in effect: max_model_len resolved to
 * min(cfg max_model_len or the model's max_position, n_blocks *
 * block_size), since one sequence must fit the pool alone.
 */
const dw_engine_config_t *dw_engine_config(const dw_engine_t *e);

#endif
