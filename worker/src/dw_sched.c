/*
 * dynamo-worker: the scheduler. Each step, in this order, within the
 * token budget (max_num_batched_tokens):
 *
 *   1. decodes: running sequences with one token to compute, in running
 *      (admission) order: every decode gets its token before any prefill;
 *   2. running prefills: the next chunk of sequences whose prompt (or
 *      recompute after preemption) is not yet all computed;
 *   3. admissions, FCFS from the waiting queue while fewer than
 *      max_num_seqs run: the leading full blocks found in the prefix cache
 *      are shared, not computed (but the last token always is, so there are
 *      logits), then a first chunk. The queue head that does not fit
 *      blocks the rest (no overtaking). A DW_REQ_REMOTE_PREFILL request
 *      whose uncached part is at least its remote_min_tokens instead gets
 *      blocks for its whole prompt and is parked (DW_OUT_REMOTE, no
 *      tokens of the budget; parked ones count toward max_num_seqs):
 *      another worker computes its prompt.
 *
 * A long prompt thus spreads over several steps (chunked prefill). When a
 * running sequence needs a block and the pool has none, the newest running
 * sequence is preempted by recompute: its blocks are released (full
 * computed blocks stay in the prefix cache, so its recompute mostly hits)
 * and it goes back to the head of the waiting queue with its prompt and the
 * tokens generated so far as the new prefix; its output continues where it
 * was. If the sequence needing the block is itself the newest, it is the
 * one preempted.
 */
#include <stdlib.h>
#include <string.h>

#include "kvr_hash.h"

#include "dw_engine_int.h"

int
dw_seq_hash_upto(dw_engine_t *e, dw_seq_t *s, uint32_t n_tok)
{
    uint32_t  B = e->cfg.block_size, nb = n_tok / B, i;
    uint64_t *p;

    if (nb <= s->n_hashed) {
        return 0;
    }
    if (nb > s->hash_cap) {
        p = realloc(s->hseq, nb * sizeof(uint64_t));
        if (p == NULL) {
            return -1;
        }
        s->hseq = p;
        p = realloc(s->hlocal, nb * sizeof(uint64_t));
        if (p == NULL) {
            return -1;
        }
        s->hlocal = p;
        s->hash_cap = nb;
    }
    for (i = s->n_hashed; i < nb; i++) {
        s->hlocal[i] = kvr_hash_local(s->tokens + (size_t) i * B, B,
                                      e->cfg.hash_seed);
        s->hseq[i] = i == 0 ? s->hlocal[0]
                            : kvr_hash_seq(s->hseq[i - 1], s->hlocal[i]);
    }
    s->n_hashed = nb;

    return 0;
}

void
dw_seq_release_blocks(dw_engine_t *e, dw_seq_t *s)
{
    while (s->n_blocks > 0) {
        dw_bm_release(&e->bm, s->blocks[--s->n_blocks]);
    }
    s->n_committed = 0;
    s->n_computed = 0;
}

/* Blocks s lacks to hold n_new more computed tokens. */
static uint32_t
dw_blocks_needed(const dw_engine_t *e, const dw_seq_t *s, uint32_t n_new)
{
    uint32_t  B = e->cfg.block_size;
    uint32_t  want = (s->n_computed + n_new + B - 1) / B;

    return want > s->n_blocks ? want - s->n_blocks : 0;
}

static void
dw_alloc_blocks(dw_engine_t *e, dw_seq_t *s, uint32_t n)
{
    while (n-- > 0) {
        /* the caller checked dw_bm_available */
        s->blocks[s->n_blocks++] = dw_bm_alloc(&e->bm);
    }
}

static void
dw_unschedule(dw_engine_t *e, dw_seq_t *s, uint32_t *budget)
{
    uint32_t  i, j;

    if (s->sched_tokens == 0) {
        return;
    }
    *budget += s->sched_tokens;
    s->sched_tokens = 0;
    for (i = 0, j = 0; i < e->n_sched; i++) {
        if (e->sched[i] != s) {
            e->sched[j++] = e->sched[i];
        }
    }
    e->n_sched = j;
}

static void
dw_preempt(dw_engine_t *e, dw_seq_t *s, uint32_t *budget)
{
    dw_unschedule(e, s, budget);
    dw_seq_release_blocks(e, s);
    dw_seq_list_remove(&e->running, s);
    s->state = DW_SEQ_WAITING;
    dw_seq_list_push_head(&e->waiting, s);
    s->preemptions++;
    e->st.preemptions++;
}

/*
 * Gives running s the blocks for n_new tokens, preempting the newest
 * running sequences as needed. 1: done; 0: s itself was preempted.
 */
static int
dw_grow_running(dw_engine_t *e, dw_seq_t *s, uint32_t n_new,
    uint32_t *budget)
{
    uint32_t  need = dw_blocks_needed(e, s, n_new);

    while (need > dw_bm_available(&e->bm)) {
        if (e->running.tail == s) {
            dw_preempt(e, s, budget);
            return 0;
        }
        dw_preempt(e, e->running.tail, budget);
    }
    dw_alloc_blocks(e, s, need);

    return 1;
}

static void
dw_schedule(dw_engine_t *e, dw_seq_t *s, uint32_t n, uint32_t *budget)
{
    s->sched_tokens = n;
    e->sched[e->n_sched++] = s;
    *budget -= n;
}

/*
 * Admission of a DW_REQ_REMOTE_PREFILL head s whose prefix is taken: the
 * rest of its blocks, then the parked list and a DW_OUT_REMOTE output.
 * 1: parked; 0: s has its blocks but the output could not be made (no
 * memory): it prefills here (prefill DW_PREFILL_LOCAL_FAILED); -1: the
 * pool lacks the blocks (s gave its prefix back, stays waiting).
 */
static int
dw_park(dw_engine_t *e, dw_seq_t *s, uint32_t k)
{
    uint32_t      B = e->cfg.block_size;
    uint32_t      nb = (s->n_prompt + B - 1) / B;
    uint32_t     *copy;
    dw_output_t  *o;

    if (nb - s->n_blocks > dw_bm_available(&e->bm)) {
        dw_seq_release_blocks(e, s);
        return -1;
    }
    dw_alloc_blocks(e, s, nb - s->n_blocks);
    s->flags &= ~(uint32_t) DW_REQ_REMOTE_PREFILL;
    copy = malloc(nb * sizeof(uint32_t));
    o = copy != NULL ? dw_engine_pending_new(e, s->id, DW_OUT_REMOTE) : NULL;
    if (o == NULL) {
        free(copy);
        s->prefill = DW_PREFILL_LOCAL_FAILED;
        return 0;
    }
    memcpy(copy, s->blocks, nb * sizeof(uint32_t));
    o->kv_blocks = copy;
    o->n_kv_blocks = nb;
    o->prompt_tokens = s->n_prompt;
    o->cached_tokens = k * B;
    dw_seq_list_remove(&e->waiting, s);
    s->state = DW_SEQ_REMOTE;
    dw_seq_list_push_tail(&e->parked, s);
    e->st.remote_parks++;
    return 1;
}

/* Shares the cached leading blocks of waiting s; returns how many. */
static uint32_t
dw_take_prefix(dw_engine_t *e, dw_seq_t *s)
{
    uint32_t  B = e->cfg.block_size, max_k, k, b;

    if (!e->cfg.prefix_caching || dw_seq_hash_upto(e, s, s->n_tokens) != 0) {
        return 0;
    }
    /* keep the last token to compute */
    max_k = (s->n_tokens - 1) / B;
    for (k = 0; k < max_k; k++) {
        b = dw_bm_lookup(&e->bm, s->hseq[k]);
        if (b == DW_BLK_NONE) {
            break;
        }
        dw_bm_ref(&e->bm, b);
        s->blocks[s->n_blocks++] = b;
    }
    s->n_committed = k;
    s->n_computed = k * B;

    return k;
}

uint32_t
dw_sched_step(dw_engine_t *e)
{
    uint32_t   budget = e->cfg.max_num_batched_tokens, n, k, rem;
    int        parked;
    uint64_t   preempted = e->st.preemptions;
    dw_seq_t  *s, *next;

    e->n_sched = 0;
    for (s = e->running.head; s != NULL; s = s->next) {
        s->sched_tokens = 0;
    }

    /* 1. decodes */
    for (s = e->running.head; s != NULL && budget > 0; s = next) {
        next = s->next;
        if (s->n_tokens - s->n_computed != 1) {
            continue;
        }
        if (!dw_grow_running(e, s, 1, &budget)) {
            break;          /* s was the newest: nothing after it */
        }
        dw_schedule(e, s, 1, &budget);
        next = s->next;     /* preemption may have cut the tail */
    }

    /* 2. running prefill chunks */
    for (s = e->running.head; s != NULL && budget > 0; s = next) {
        next = s->next;
        rem = s->n_tokens - s->n_computed;
        if (rem <= 1) {
            continue;
        }
        n = rem < budget ? rem : budget;
        if (!dw_grow_running(e, s, n, &budget)) {
            break;
        }
        dw_schedule(e, s, n, &budget);
        next = s->next;
    }

    /* 3. admissions, unless this step had to preempt (as vLLM: the pool
       is short, and a victim must not be readmitted at once) */
    while (budget > 0 && e->waiting.head != NULL
           && e->st.preemptions == preempted
           && e->running.n + e->parked.n < e->cfg.max_num_seqs)
    {
        s = e->waiting.head;
        s->sched_tokens = 0;
        k = dw_take_prefix(e, s);
        rem = s->n_tokens - s->n_computed;
        parked = 0;
        if (s->flags & DW_REQ_REMOTE_PREFILL) {
            /* set only until the first admission: n_tokens is the prompt */
            if (rem < s->remote_min_tokens) {
                s->flags &= ~(uint32_t) DW_REQ_REMOTE_PREFILL;
                s->prefill = DW_PREFILL_LOCAL_SHORT;
            } else if ((parked = dw_park(e, s, k)) < 0) {
                break;
            }
        }
        n = rem < budget ? rem : budget;
        if (!parked) {
            if (dw_blocks_needed(e, s, n) > dw_bm_available(&e->bm)) {
                dw_seq_release_blocks(e, s);
                break;
            }
            dw_alloc_blocks(e, s, dw_blocks_needed(e, s, n));
        }
        if (!s->admitted_once) {
            s->admitted_once = 1;
            s->cached_tokens = k * e->cfg.block_size;
            e->st.prompt_tokens += s->n_prompt;
            e->st.prefix_query_tokens += s->n_prompt;
            e->st.prefix_hit_tokens += s->cached_tokens;
        }
        if (parked) {
            continue;
        }
        dw_seq_list_remove(&e->waiting, s);
        s->state = DW_SEQ_RUNNING;
        dw_seq_list_push_tail(&e->running, s);
        dw_schedule(e, s, n, &budget);
    }

    n = 0;
    for (k = 0; k < e->n_sched; k++) {
        n += e->sched[k]->sched_tokens;
    }
    return n;
}
