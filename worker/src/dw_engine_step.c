/*
 * dynamo-worker: one engine step (see dw_engine_int.h): take submissions,
 * cancels, held-block releases, remote prefill results and prefix-cache
 * resets, schedule, run the backend, then per scheduled sequence: advance
 * its computed tokens, cache the blocks that became full (prompt blocks
 * after their prefill, generated blocks as decode fills them), sample its
 * next token when it produced logits, and finish it on eos, a stop id,
 * max_tokens or the context length. Outputs, KV events and stats are
 * published under one lock at the end of the step.
 *
 * Disaggregation: a parked sequence's remote prefill result makes it run
 * (dw_do_remote_done); a DW_REQ_HOLD_KV finish hands its block references
 * to the caller (dw_engine_finish) until they come back (dw_do_release).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dw_engine_int.h"

static int
dw_pending_grow(dw_engine_t *e)
{
    dw_output_t  *p;
    size_t        cap;

    if (e->n_pending < e->pending_cap) {
        return 0;
    }
    cap = e->pending_cap ? 2 * e->pending_cap : 64;
    p = realloc(e->pending, cap * sizeof(dw_output_t));
    if (p == NULL) {
        return -1;
    }
    e->pending = p;
    e->pending_cap = cap;
    return 0;
}

dw_output_t *
dw_engine_pending_new(dw_engine_t *e, uint64_t id, dw_out_kind_t kind)
{
    dw_output_t  *o;

    if (dw_pending_grow(e) != 0) {
        return NULL;
    }
    o = &e->pending[e->n_pending++];
    memset(o, 0, sizeof(*o));
    o->req_id = id;
    o->kind = kind;
    return o;
}

static void
dw_hist_add(uint64_t *hist, double *sum, double ms)
{
    int  i;

    for (i = 0; i < DW_HIST_BUCKETS; i++) {
        if (ms <= dw_engine_hist_bounds_ms[i]) {
            break;
        }
    }
    hist[i]++;
    *sum += ms;
}

void
dw_engine_finish(dw_engine_t *e, dw_seq_t *s, dw_finish_t reason,
    const char *error)
{
    dw_output_t  *o;
    uint32_t     *held = NULL, i;

    o = dw_engine_pending_new(e, s->id, DW_OUT_FINISH);
    if (o != NULL && (s->flags & DW_REQ_HOLD_KV) && s->n_blocks > 0
        && (reason == DW_FINISH_STOP || reason == DW_FINISH_LENGTH))
    {
        held = malloc(s->n_blocks * sizeof(uint32_t));
    }
    if (held != NULL) {
        /* the references move from s to the I/O thread */
        memcpy(held, s->blocks, s->n_blocks * sizeof(uint32_t));
        for (i = 0; i < s->n_blocks; i++) {
            e->held[s->blocks[i]]++;
        }
        e->n_held += s->n_blocks;
        o->kv_blocks = held;
        o->n_kv_blocks = s->n_blocks;
        s->n_blocks = 0;
    } else {
        dw_seq_release_blocks(e, s);
    }
    if (o != NULL) {
        o->reason = reason;
        o->prompt_tokens = s->n_prompt;
        o->completion_tokens = s->n_out;
        o->cached_tokens = s->cached_tokens;
        o->preemptions = s->preemptions;
        o->prefill = s->prefill;
        if (error != NULL) {
            snprintf(o->error, sizeof(o->error), "%s", error);
        }
    }
    e->st.requests_finished++;
    dw_seq_free(s);
}

/* ---- taking work from other threads ---- */

static dw_seq_t *
dw_find(dw_seq_list_t *l, uint64_t id)
{
    dw_seq_t  *s;

    for (s = l->head; s != NULL; s = s->next) {
        if (s->id == id) {
            return s;
        }
    }
    return NULL;
}

/* Runs queued prefix-cache resets (after the cancels: their blocks are
   released by then). */
static void
dw_do_resets(dw_engine_t *e, uint64_t *ids, size_t n)
{
    dw_output_t  *o;
    uint32_t      count;
    size_t        i;
    int           rc;

    for (i = 0; i < n; i++) {
        rc = dw_bm_reset(&e->bm, &count);
        o = dw_engine_pending_new(e, ids[i], DW_OUT_RESET);
        if (o == NULL) {
            continue;
        }
        o->reset_ok = rc == 0;
        if (rc == 0) {
            o->blocks_dropped = count;
        } else {
            o->blocks_in_use = count;
        }
    }
}

/* Gives back the held blocks of a DW_REQ_HOLD_KV finish, each reference
   the engine handed out at most once. */
static void
dw_do_release(dw_engine_t *e, const uint32_t *b, uint32_t n)
{
    uint32_t  i;

    for (i = 0; i < n; i++) {
        if (b[i] < e->cfg.n_blocks && e->held[b[i]] > 0) {
            e->held[b[i]]--;
            e->n_held--;
            dw_bm_release(&e->bm, b[i]);
        }
    }
}

static void dw_do_remote_done(dw_engine_t *e, const dw_remote_done_t *d);

/*
 * Takes what other threads queued: submissions, then cancels, block
 * releases, remote prefill results and resets, in that order. Returns 1
 * if anything was taken.
 */
static int
dw_take_incoming(dw_engine_t *e)
{
    dw_seq_t          *s, *next;
    uint64_t          *cancels, *resets;
    dw_remote_done_t  *dones;
    dw_release_t      *rel;
    size_t             n_cancels, n_resets, n_dones, n_rel;
    size_t             i;
    int                any;

    pthread_mutex_lock(&e->mu);
    any = e->incoming.n > 0;
    for (s = e->incoming.head; s != NULL; s = next) {
        next = s->next;
        s->prev = s->next = NULL;
        dw_seq_list_push_tail(&e->waiting, s);
    }
    memset(&e->incoming, 0, sizeof(e->incoming));
    cancels = dw_queue_take(&e->cancels, &n_cancels);
    resets = dw_queue_take(&e->resets, &n_resets);
    dones = dw_queue_take(&e->dones, &n_dones);
    rel = dw_queue_take(&e->releases, &n_rel);
    pthread_mutex_unlock(&e->mu);
    any = any || n_cancels > 0 || n_resets > 0 || n_dones > 0 || n_rel > 0;

    /* a cancel for an id no longer here (finished already) is a no-op */
    for (i = 0; i < n_cancels; i++) {
        if ((s = dw_find(&e->running, cancels[i])) != NULL) {
            dw_seq_list_remove(&e->running, s);
        } else if ((s = dw_find(&e->waiting, cancels[i])) != NULL) {
            dw_seq_list_remove(&e->waiting, s);
        } else if ((s = dw_find(&e->parked, cancels[i])) != NULL) {
            dw_seq_list_remove(&e->parked, s);
        }
        if (s != NULL) {
            dw_engine_finish(e, s, DW_FINISH_CANCELLED, NULL);
        }
    }
    free(cancels);
    for (i = 0; i < n_rel; i++) {
        dw_do_release(e, rel[i].blocks, rel[i].n);
        free(rel[i].blocks);
    }
    free(rel);
    for (i = 0; i < n_dones; i++) {
        dw_do_remote_done(e, &dones[i]);
    }
    free(dones);
    dw_do_resets(e, resets, n_resets);
    free(resets);
    return any;
}

/* ---- publishing ---- */

static uint64_t
dw_queued_prefill(const dw_engine_t *e)
{
    const dw_seq_t  *s;
    uint64_t         n = 0;

    for (s = e->waiting.head; s != NULL; s = s->next) {
        n += s->n_tokens - s->n_computed;
    }
    for (s = e->running.head; s != NULL; s = s->next) {
        if (s->n_tokens - s->n_computed > 1) {
            n += s->n_tokens - s->n_computed;
        }
    }
    return n;
}

uint64_t
dw_wall_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void
dw_publish(dw_engine_t *e)
{
    dw_kv_event_t  *ev;
    size_t          n_ev, i;
    uint64_t        one = 1;
    int             notify = 0;
    uint64_t        qp = dw_queued_prefill(e);
    const dw_seq_t *s;

    dw_bm_take_events(&e->bm, &ev, &n_ev);

    /* parked sequences will decode here: the router counts them running */
    e->st.running = e->running.n + e->parked.n;
    e->st.remote_parked = e->parked.n;
    e->st.held_blocks = e->n_held;
    e->st.used_blocks = e->bm.n_used;
    e->st.cached_blocks = e->bm.n_lru;
    e->st.total_blocks = e->bm.n_blocks;

    pthread_mutex_lock(&e->mu);
    if (e->n_pending > 0) {
        if (dw_ring_push(&e->out, e->pending, e->n_pending) == 0) {
            notify = 1;
        } else {
            /* outputs lost to memory exhaustion; nothing better to do but
               not leak: held blocks go back at once */
            for (i = 0; i < e->n_pending; i++) {
                if (e->pending[i].kind == DW_OUT_FINISH) {
                    dw_do_release(e, e->pending[i].kv_blocks,
                                  e->pending[i].n_kv_blocks);
                }
                dw_output_free(&e->pending[i]);
            }
        }
        e->n_pending = 0;
    }
    if (n_ev > 0) {
        if (dw_ring_push(&e->kvq, ev, n_ev) == 0) {
            notify = 1;
        } else {
            for (i = 0; i < n_ev; i++) {
                dw_kv_event_free(&ev[i]);
            }
        }
    }
    for (s = e->incoming.head; s != NULL; s = s->next) {
        qp += s->n_tokens;
    }
    e->st.waiting = e->waiting.n + e->incoming.n;
    e->st.queued_prefill_tokens = qp;
    e->st_pub = e->st;
    e->load_pub.running = e->st.running;
    e->load_pub.waiting = e->st.waiting;
    e->load_pub.active_blocks = e->bm.n_used;
    e->load_pub.queued_prefill_tokens = qp;
    e->load_pub.updated_ms = dw_wall_ms();
    if (notify && e->efd >= 0) {
        while (write(e->efd, &one, sizeof(one)) < 0 && errno == EINTR) {
            /* retry */
        }
    }
    pthread_mutex_unlock(&e->mu);
    free(ev);
}

/* ---- the step ---- */

static int
dw_is_stop(const dw_engine_t *e, const dw_seq_t *s, uint32_t t)
{
    uint32_t  i;

    for (i = 0; i < s->sp.n_stop_ids && i < DW_MAX_STOP_IDS; i++) {
        if (s->sp.stop_ids[i] == t) {
            return 1;
        }
    }
    if (!s->sp.ignore_eos) {
        for (i = 0; i < e->be->cfg.n_eos && i < DW_MAX_EOS; i++) {
            if (e->be->cfg.eos_ids[i] == t) {
                return 1;
            }
        }
    }
    return 0;
}

/* Caches the blocks of s that are full of computed tokens. */
static void
dw_commit_blocks(dw_engine_t *e, dw_seq_t *s)
{
    uint32_t  full = s->n_computed / e->cfg.block_size, i;

    if (!e->cfg.prefix_caching || s->n_committed >= full) {
        return;
    }
    if (dw_seq_hash_upto(e, s, full * e->cfg.block_size) != 0) {
        return;     /* no memory: stay uncached, still correct */
    }
    for (i = s->n_committed; i < full; i++) {
        (void) dw_bm_commit(&e->bm, s->blocks[i], i > 0,
                            i > 0 ? s->hseq[i - 1] : 0, s->hseq[i],
                            s->hlocal[i]);
    }
    s->n_committed = full;
    dw_bm_close_event(&e->bm);
}

/* Appends sampled token t to s; returns the finish reason or 0. */
static int
dw_accept(dw_engine_t *e, dw_seq_t *s, const dw_sample_out_t *so,
    double now)
{
    dw_output_t  *o;
    uint32_t      t = so->token;

    s->tokens[s->n_tokens++] = t;
    s->n_out++;
    e->st.generation_tokens++;
    if (s->n_out == 1) {
        dw_hist_add(e->st.ttft_hist, &e->st.ttft_sum_ms, now - s->t_submit);
    } else {
        dw_hist_add(e->st.itl_hist, &e->st.itl_sum_ms, now - s->t_last);
    }
    s->t_last = now;

    o = dw_engine_pending_new(e, s->id, DW_OUT_TOKEN);
    if (o != NULL) {
        o->token = t;
        if (s->sp.logprobs >= 0) {
            o->logprob = so->logprob;
            o->n_top = so->n_top;
            memcpy(o->top_ids, so->top_ids, so->n_top * sizeof(uint32_t));
            memcpy(o->top_logprobs, so->top_logprobs,
                   so->n_top * sizeof(float));
        }
    }

    if (dw_is_stop(e, s, t)) {
        return DW_FINISH_STOP;
    }
    if (s->n_out >= s->sp.max_tokens || s->n_tokens >= e->max_len) {
        return DW_FINISH_LENGTH;
    }
    return 0;
}

/*
 * A parked sequence's remote prefill ended (dw_engine_remote_done). With a
 * first token its blocks hold the prompt's KV: they are cached as if
 * computed here, the RNG advances as dw_sample's draw would have (so a
 * seeded stream goes on identically), and the token is taken as sampled.
 * Without one (or with an id outside the vocabulary, which the backend
 * would refuse) the sequence computes its uncached part here, into the
 * blocks it holds: the running prefill path does it from the next step.
 */
static void
dw_do_remote_done(dw_engine_t *e, const dw_remote_done_t *d)
{
    dw_seq_t  *s = dw_find(&e->parked, d->id);
    int        reason;

    if (s == NULL) {
        return;             /* cancelled meanwhile, or not ours */
    }
    dw_seq_list_remove(&e->parked, s);
    s->state = DW_SEQ_RUNNING;
    if (!d->ok || d->first.token >= e->vocab) {
        s->prefill = DW_PREFILL_LOCAL_FAILED;
        e->st.remote_fallbacks++;
        dw_seq_list_push_tail(&e->running, s);
        return;
    }
    s->prefill = DW_PREFILL_REMOTE;
    e->st.remote_prefills++;
    s->n_computed = s->n_prompt;
    dw_commit_blocks(e, s);
    /* dw_sample draws once unless greedy (the NaN-logits corner aside);
       the next_ids path draws nothing */
    if (e->be->ops->next_ids == NULL && !dw_sample_is_greedy(&s->sp)) {
        (void) dw_rng_uniform(&s->rng);
    }
    reason = dw_accept(e, s, &d->first, dw_now_ms());
    if (reason != 0) {
        dw_engine_finish(e, s, (dw_finish_t) reason, NULL);
        return;
    }
    dw_seq_list_push_tail(&e->running, s);
}

/*
 * KV a step's attention reads: used blocks less those of parked sequences
 * (their prompt is being computed elsewhere) and blocks held for a
 * transfer. Shared prefix blocks of a parked sequence count as its own:
 * an approximation on the safe side of a gauge.
 */
static float
dw_kv_usage(const dw_engine_t *e)
{
    const dw_seq_t  *s;
    uint32_t         idle = e->n_held;

    for (s = e->parked.head; s != NULL; s = s->next) {
        idle += s->n_blocks;
    }
    if (idle > e->bm.n_used) {
        idle = e->bm.n_used;
    }
    return (float) (e->bm.n_used - idle) / (float) e->bm.n_blocks;
}

/* The backend runs the step and samples (ops->sample): one row for each
   want_logits sequence, in step order. */
static int
dw_step_sample(dw_engine_t *e, dw_step_t *step)
{
    dw_sample_row_t  *r;
    dw_seq_t         *s;
    uint32_t          i, n = 0;

    for (i = 0; i < e->n_sched; i++) {
        if (!e->steps[i].want_logits) {
            continue;
        }
        s = e->sched[i];
        r = &e->srows[n++];
        r->sp = &s->sp;
        r->rng = &s->rng;
        r->tokens = s->tokens;
        r->n_prompt = s->n_prompt;
        r->n_out = s->n_out;
        memset(&e->samples[n - 1], 0, sizeof(dw_sample_out_t));
    }
    return e->be->ops->sample(e->be, step, e->srows, e->samples);
}

int
dw_engine_step(dw_engine_t *e)
{
    dw_step_t         step;
    dw_seq_step_t    *ss;
    dw_seq_t         *s;
    dw_sample_out_t   so;
    uint32_t          i, row;
    uint64_t          pre;
    int               rc, reason, took;
    double            now;

    e->blocked = 0;
    took = dw_take_incoming(e);
    if (e->running.n == 0 && e->waiting.n == 0) {
        if (e->n_pending > 0 || took) {
            dw_publish(e);
            return 1;
        }
        return 0;
    }

    memset(&step, 0, sizeof(step));
    pre = e->st.preemptions;
    step.n_tokens = dw_sched_step(e);
    if (e->n_sched == 0) {
        /* nothing fits although nothing else holds blocks: cannot happen
           for prompts submit accepted (one sequence always fits the pool);
           fail the head rather than spin. After a preemption the next
           step admits again. */
        if (e->running.n == 0 && (e->parked.n > 0 || e->n_held > 0)) {
            /* the waiting ones need what parked sequences or held blocks
               take: idle until a remote prefill ends, blocks come back
               or something else comes */
            e->blocked = 1;
            dw_publish(e);
            return 0;
        }
        if (e->running.n == 0 && e->st.preemptions == pre
            && (s = e->waiting.head) != NULL)
        {
            dw_seq_list_remove(&e->waiting, s);
            dw_engine_finish(e, s, DW_FINISH_ERROR, "no KV blocks");
        }
        dw_publish(e);
        return 1;
    }

    step.seqs = e->steps;
    step.n_seqs = e->n_sched;
    step.logits = e->logits;
    step.kv_usage = dw_kv_usage(e);
    for (i = 0; i < e->n_sched; i++) {
        s = e->sched[i];
        ss = &e->steps[i];
        ss->tokens = s->tokens + s->n_computed;
        ss->n_tokens = s->sched_tokens;
        ss->pos = s->n_computed;
        ss->blocks = s->blocks;
        ss->n_blocks = s->n_blocks;
        ss->want_logits = s->n_computed + s->sched_tokens == s->n_tokens;
        step.n_logits += ss->want_logits ? 1 : 0;
    }
    if (e->on_step != NULL) {
        e->on_step(e->on_step_arg, &step);
    }

    if (e->be->ops->next_ids != NULL) {
        rc = e->be->ops->next_ids(e->be, &step, e->ids);
    } else if (e->be->ops->sample != NULL) {
        rc = dw_step_sample(e, &step);
    } else {
        rc = e->be->ops->forward(e->be, &step);
    }
    e->st.steps++;
    e->st.forward_tokens += step.n_tokens;
    now = dw_now_ms();

    row = 0;
    for (i = 0; i < e->n_sched; i++) {
        s = e->sched[i];
        if (rc != 0) {
            dw_seq_list_remove(&e->running, s);
            dw_engine_finish(e, s, DW_FINISH_ERROR, "backend step failed");
            continue;
        }
        s->n_computed += s->sched_tokens;
        dw_commit_blocks(e, s);
        if (!e->steps[i].want_logits) {
            continue;
        }
        memset(&so, 0, sizeof(so));
        if (e->be->ops->next_ids != NULL) {
            so.token = e->ids[row];
        } else if (e->be->ops->sample != NULL) {
            so = e->samples[row];
        } else {
            dw_sample(&e->sampler, e->logits + (size_t) row * e->vocab,
                      &s->sp, &s->rng, s->tokens, s->n_prompt, s->n_out, &so);
        }
        row++;
        reason = dw_accept(e, s, &so, now);
        if (reason != 0) {
            dw_seq_list_remove(&e->running, s);
            dw_engine_finish(e, s, (dw_finish_t) reason, NULL);
        }
    }
    e->n_sched = 0;

    dw_publish(e);
    return 1;
}
