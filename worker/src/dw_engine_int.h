/*
 * dynamo-worker: engine internals shared by dw_engine.c (API, thread,
 * queues), dw_sched.c (what runs each step) and dw_engine_step.c (running
 * a step: forward, sample, commit blocks, finish). Tests include it to
 * drive steps synchronously (dw_engine_step) and watch them (on_step).
 */
#ifndef DW_ENGINE_INT_H
#define DW_ENGINE_INT_H

#include <pthread.h>
#include <stdint.h>

#include "dw_block_int.h"
#include "dw_engine.h"
#include "dw_ring.h"
#include "dw_sample_int.h"

typedef enum {
    DW_SEQ_WAITING = 0,
    DW_SEQ_RUNNING,
    /*
     * Parked for a remote prefill (DW_OUT_REMOTE emitted): holds blocks
     * for its whole prompt, is neither scheduled nor preempted, counts
     * toward max_num_seqs, until dw_engine_remote_done or a cancel.
     */
    DW_SEQ_REMOTE
} dw_seq_state_t;

typedef struct dw_seq_s  dw_seq_t;

struct dw_seq_s {
    uint64_t        id;
    dw_seq_state_t  state;
    dw_seq_t       *prev;          /* in waiting, running or parked */
    dw_seq_t       *next;

    uint32_t       *tokens;        /* prompt, then generated tokens */
    uint32_t        n_tokens;
    uint32_t        cap;
    uint32_t        n_prompt;
    uint32_t        n_out;
    uint32_t        n_computed;    /* tokens whose KV is in blocks */

    uint32_t       *blocks;        /* block table */
    uint32_t        n_blocks;
    uint32_t        blocks_cap;
    uint32_t        n_committed;   /* leading blocks given to dw_bm_commit */

    uint64_t       *hseq;          /* hashes of full blocks of tokens */
    uint64_t       *hlocal;
    uint32_t        n_hashed;
    uint32_t        hash_cap;

    dw_sampling_t   sp;
    dw_rng_t        rng;
    int             admitted_once;
    int             cancelled;
    uint32_t        cached_tokens;
    uint32_t        preemptions;
    uint32_t        sched_tokens;  /* this step */
    uint32_t        flags;         /* DW_REQ_*; REMOTE_PREFILL cleared
                                      once admission decided */
    uint32_t        remote_min_tokens;
    dw_prefill_t    prefill;       /* reported in the finish output */
    double          t_submit;      /* ms, monotonic */
    double          t_last;        /* ms of the last token */
};

typedef struct {
    dw_seq_t  *head;
    dw_seq_t  *tail;
    uint32_t   n;
} dw_seq_list_t;

/* A dw_engine_remote_done call, queued for the engine thread. */
typedef struct {
    uint64_t          id;
    int               ok;         /* first given */
    dw_sample_out_t   first;      /* token, logprob, top */
} dw_remote_done_t;

/* A dw_engine_release_blocks call, likewise. */
typedef struct {
    uint32_t  *blocks;            /* malloc'd */
    uint32_t   n;
} dw_release_t;

/*
 * Work other threads hand the engine thread, under mu: pushed one item at
 * a time, taken all at once at the next step.
 */
typedef struct {
    void    *items;
    size_t   n;
    size_t   cap;
} dw_queue_t;

/* Room for one more item of sz bytes (zeroed): the item, or NULL. */
void *dw_queue_push(dw_queue_t *q, size_t sz);
/* The items (the caller frees them; NULL when none) and their count in
   *n; q is empty after. */
void *dw_queue_take(dw_queue_t *q, size_t *n);

/* whether the engine gets logits back and samples on the host (else the
   backend picks the tokens: next_ids, or sample) */
#define DW_ENGINE_HOST_LOGITS(be) \
    ((be)->ops->next_ids == NULL && (be)->ops->sample == NULL)

struct dw_engine_s {
    dw_engine_config_t  cfg;
    dw_backend_t       *be;
    uint32_t            vocab;
    uint32_t            max_len;      /* min(max_model_len, pool tokens) */
    dw_bm_t             bm;
    dw_sampler_t        sampler;

    /* engine thread only */
    dw_seq_list_t       waiting;
    dw_seq_list_t       running;
    dw_seq_list_t       parked;       /* DW_SEQ_REMOTE */
    /*
     * References a DW_REQ_HOLD_KV finish handed to the I/O thread, per
     * block (n_blocks entries): dw_engine_release_blocks drops only those,
     * so a bogus or repeated release cannot free a block twice.
     */
    uint32_t           *held;
    uint32_t            n_held;       /* sum of held[] */
    /* the last step found nothing to run while parked sequences hold the
       room waiting ones need: the thread sleeps until something comes */
    int                 blocked;
    dw_seq_t          **sched;        /* this step's sequences, in order */
    uint32_t            n_sched;
    dw_seq_step_t      *steps;
    float              *logits;       /* max_num_seqs rows */
    uint32_t           *ids;
    dw_sample_out_t    *samples;      /* ops->sample's results */
    dw_sample_row_t    *srows;        /* ops->sample's rows */
    dw_output_t        *pending;      /* outputs of this step */
    size_t              n_pending;
    size_t              pending_cap;
    dw_engine_stats_t   st;           /* working copy */
    uint64_t            sched_queued_prefill;
    /* test hook: called after each step's schedule, before forward */
    void              (*on_step)(void *arg, const dw_step_t *step);
    void               *on_step_arg;

    /* shared, under mu */
    pthread_mutex_t     mu;
    pthread_cond_t      cv;
    pthread_t           thread;
    int                 started;
    int                 stopping;
    dw_seq_list_t       incoming;     /* submitted, not yet taken */
    dw_queue_t          cancels;      /* uint64_t request ids */
    dw_queue_t          resets;       /* uint64_t reset_prefix_cache ids */
    dw_queue_t          dones;        /* dw_remote_done_t */
    dw_queue_t          releases;     /* dw_release_t */
    dw_ring_t           out;        /* dw_output_t, engine -> I/O thread */
    dw_ring_t           kvq;        /* dw_kv_event_t, likewise */
    dw_engine_stats_t   st_pub;       /* snapshot for dw_engine_stats */
    kvr_load_t          load_pub;
    int                 efd;
};

/* monotonic ms */
double dw_now_ms(void);
/* wall-clock ms since the epoch (kvr_load_t.updated_ms) */
uint64_t dw_wall_ms(void);

/* lists */
void dw_seq_list_push_tail(dw_seq_list_t *l, dw_seq_t *s);
void dw_seq_list_push_head(dw_seq_list_t *l, dw_seq_t *s);
void dw_seq_list_remove(dw_seq_list_t *l, dw_seq_t *s);
void dw_seq_free(dw_seq_t *s);

/* dw_sched.c */
/* Hashes of the full blocks of s->tokens[0..n_tok); -1 on no memory. */
int dw_seq_hash_upto(dw_engine_t *e, dw_seq_t *s, uint32_t n_tok);
/* Releases every block of s (last first, so tails are evicted first). */
void dw_seq_release_blocks(dw_engine_t *e, dw_seq_t *s);
/*
 * Chooses this step's work into e->sched (decodes, then running prefill
 * chunks, then admissions from waiting), allocating blocks and
 * preempting when the pool runs out. Returns the step's token count.
 */
uint32_t dw_sched_step(dw_engine_t *e);

/* dw_engine_step.c */
/*
 * One engine step on the calling thread: takes queued submissions,
 * cancels and resets, schedules, runs the backend, samples, commits
 * blocks and publishes outputs, events and stats. Returns 1 if work was
 * done, 0 if idle (also when the waiting requests cannot start before a
 * parked one's remote prefill ends or held blocks come back). The engine thread calls it in a loop; tests may call it directly
 * (without dw_engine_start).
 */
int dw_engine_step(dw_engine_t *e);
/*
 * Queues a finish output and frees s (removed from its list already).
 * A DW_REQ_HOLD_KV sequence finishing with STOP or LENGTH keeps its
 * blocks referenced: the output's kv_blocks lists them (e->held counts
 * them) until dw_engine_release_blocks.
 */
void dw_engine_finish(dw_engine_t *e, dw_seq_t *s, dw_finish_t reason,
    const char *error);
/* A zeroed output slot for this step; NULL only when memory runs out. */
dw_output_t *dw_engine_pending_new(dw_engine_t *e, uint64_t id,
    dw_out_kind_t kind);

#endif
