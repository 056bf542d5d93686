/*
 * dynamo-worker: the engine's public API (dw_engine.h): creation, the
 * engine thread, submissions, cancels and prefix-cache resets in, outputs
 * and KV events out.
 *
 * Threads. Everything a step touches (lists of sequences, block manager,
 * sampler, backend) belongs to the engine thread. Other threads meet it
 * only under mu: the incoming list, the cancel and reset ids, the remote
 * prefill results and block releases (disaggregation), the output ring,
 * the KV event queue and the published stats/load snapshots. The engine
 * thread sleeps on cv while it has nothing to do (or only waits for parked
 * sequences to free room); submit, cancel, reset, remote_done and
 * release_blocks signal it. The eventfd is written once per step that produced
 * output and stays readable while either queue holds entries.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "kvr_hash.h"

#include "dw_engine_int.h"

const double dw_engine_hist_bounds_ms[DW_HIST_BUCKETS] = {
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000,
    50000, 100000
};

double
dw_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

void
dw_engine_config_defaults(dw_engine_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->block_size = 16;
    cfg->n_blocks = 1024;
    cfg->max_num_seqs = 256;
    cfg->max_num_batched_tokens = 8192;
    cfg->max_model_len = 0;
    cfg->hash_seed = kvr_hash_seed(NULL);
    cfg->prefix_caching = 1;
    cfg->emit_kv_events = 1;
}

/* ---- lists ---- */

void
dw_seq_list_push_tail(dw_seq_list_t *l, dw_seq_t *s)
{
    s->next = NULL;
    s->prev = l->tail;
    if (l->tail != NULL) {
        l->tail->next = s;
    } else {
        l->head = s;
    }
    l->tail = s;
    l->n++;
}

void
dw_seq_list_push_head(dw_seq_list_t *l, dw_seq_t *s)
{
    s->prev = NULL;
    s->next = l->head;
    if (l->head != NULL) {
        l->head->prev = s;
    } else {
        l->tail = s;
    }
    l->head = s;
    l->n++;
}

void
dw_seq_list_remove(dw_seq_list_t *l, dw_seq_t *s)
{
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        l->head = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    } else {
        l->tail = s->prev;
    }
    s->prev = s->next = NULL;
    l->n--;
}

void
dw_seq_free(dw_seq_t *s)
{
    if (s == NULL) {
        return;
    }
    free(s->tokens);
    free(s->blocks);
    free(s->hseq);
    free(s->hlocal);
    free(s);
}

static void
dw_seq_list_free(dw_seq_list_t *l)
{
    dw_seq_t  *s, *next;

    for (s = l->head; s != NULL; s = next) {
        next = s->next;
        dw_seq_free(s);
    }
    memset(l, 0, sizeof(*l));
}

/* ---- life cycle ---- */

int
dw_engine_create(const dw_engine_config_t *cfg, dw_backend_t *be,
    dw_engine_t **out, char *err, size_t errlen)
{
    dw_engine_t  *e;
    uint64_t      pool_tokens;
    uint32_t      ml;

    *out = NULL;
    if (be == NULL || be->ops == NULL
        || (be->ops->forward == NULL && be->ops->next_ids == NULL))
    {
        snprintf(err, errlen, "engine: no backend");
        return -1;
    }
    if (cfg->block_size == 0 || cfg->n_blocks == 0 || cfg->max_num_seqs == 0
        || cfg->max_num_batched_tokens == 0)
    {
        snprintf(err, errlen, "engine: block_size, n_blocks, max_num_seqs "
                 "and max_num_batched_tokens must be > 0");
        return -1;
    }
    if (be->opts.block_size != cfg->block_size
        || be->opts.n_blocks < cfg->n_blocks)
    {
        snprintf(err, errlen, "engine: backend has %u blocks of %u tokens, "
                 "engine wants %u of %u", be->opts.n_blocks,
                 be->opts.block_size, cfg->n_blocks, cfg->block_size);
        return -1;
    }
    if (be->cfg.vocab_size == 0) {
        snprintf(err, errlen, "engine: model has vocab_size 0");
        return -1;
    }

    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        snprintf(err, errlen, "engine: out of memory");
        return -1;
    }
    e->cfg = *cfg;
    e->be = be;
    e->vocab = be->cfg.vocab_size;
    e->efd = -1;
    dw_ring_init(&e->out, sizeof(dw_output_t), 256);
    dw_ring_init(&e->kvq, sizeof(dw_kv_event_t), 64);

    ml = cfg->max_model_len ? cfg->max_model_len : be->cfg.max_position;
    if (ml == 0) {
        ml = UINT32_MAX;
    }
    /* one sequence must always fit the pool alone */
    pool_tokens = (uint64_t) cfg->n_blocks * cfg->block_size;
    e->max_len = pool_tokens < ml ? (uint32_t) pool_tokens : ml;
    if (e->max_len < 2) {
        snprintf(err, errlen, "engine: context length %u too small",
                 e->max_len);
        goto fail;
    }
    e->cfg.max_model_len = e->max_len;    /* in effect, for callers */

    if (dw_bm_init(&e->bm, cfg->n_blocks, cfg->block_size,
                   cfg->emit_kv_events) != 0
        || dw_sampler_init(&e->sampler, e->vocab) != 0)
    {
        snprintf(err, errlen, "engine: out of memory for %u blocks",
                 cfg->n_blocks);
        goto fail;
    }
    e->held = calloc(cfg->n_blocks, sizeof(uint32_t));
    e->sched = calloc(cfg->max_num_seqs, sizeof(dw_seq_t *));
    e->steps = calloc(cfg->max_num_seqs, sizeof(dw_seq_step_t));
    e->ids = calloc(cfg->max_num_seqs, sizeof(uint32_t));
    /* a backend that samples itself (next_ids, sample) returns no logits */
    e->samples = calloc(cfg->max_num_seqs, sizeof(dw_sample_out_t));
    e->srows = calloc(cfg->max_num_seqs, sizeof(dw_sample_row_t));
    e->logits = DW_ENGINE_HOST_LOGITS(be) ?
                malloc((size_t) cfg->max_num_seqs * e->vocab * sizeof(float))
                : NULL;
    if (e->held == NULL || e->sched == NULL || e->steps == NULL
        || e->ids == NULL || e->samples == NULL || e->srows == NULL
        || (DW_ENGINE_HOST_LOGITS(be) && e->logits == NULL))
    {
        snprintf(err, errlen, "engine: out of memory");
        goto fail;
    }
    e->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->efd < 0) {
        snprintf(err, errlen, "engine: eventfd: %s", strerror(errno));
        goto fail;
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->st.total_blocks = cfg->n_blocks;
    e->st_pub = e->st;
    e->load_pub.updated_ms = dw_wall_ms();

    *out = e;
    return 0;

fail:
    e->be = NULL;     /* the caller keeps be on failure */
    dw_bm_free(&e->bm);
    dw_sampler_free(&e->sampler);
    free(e->held);
    free(e->sched);
    free(e->steps);
    free(e->ids);
    free(e->samples);
    free(e->srows);
    free(e->logits);
    if (e->efd >= 0) {
        close(e->efd);
    }
    free(e);
    return -1;
}

static void *
dw_engine_main(void *arg)
{
    dw_engine_t  *e = arg;

    for ( ;; ) {
        pthread_mutex_lock(&e->mu);
        /* running and waiting are the engine thread's own: reading them
           here, on that thread, needs no lock */
        while (!e->stopping && e->incoming.n == 0 && e->cancels.n == 0
               && e->resets.n == 0 && e->dones.n == 0
               && e->releases.n == 0 && e->running.n == 0
               && (e->waiting.n == 0 || e->blocked))
        {
            pthread_cond_wait(&e->cv, &e->mu);
        }
        if (e->stopping) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        pthread_mutex_unlock(&e->mu);
        (void) dw_engine_step(e);
    }
    return NULL;
}

int
dw_engine_start(dw_engine_t *e)
{
    if (e->started) {
        return -1;
    }
    if (pthread_create(&e->thread, NULL, dw_engine_main, e) != 0) {
        return -1;
    }
    e->started = 1;
    return 0;
}

void
dw_engine_stop(dw_engine_t *e)
{
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (e->started) {
        pthread_join(e->thread, NULL);
        e->started = 0;
    }
}

void
dw_engine_destroy(dw_engine_t *e)
{
    size_t  i;

    if (e == NULL) {
        return;
    }
    if (e->started) {
        dw_engine_stop(e);
    }
    dw_seq_list_free(&e->waiting);
    dw_seq_list_free(&e->running);
    dw_seq_list_free(&e->parked);
    dw_seq_list_free(&e->incoming);
    for (i = 0; i < e->kvq.n; i++) {
        dw_kv_event_free(dw_ring_at(&e->kvq, i));
    }
    for (i = 0; i < e->out.n; i++) {
        dw_output_free(dw_ring_at(&e->out, i));
    }
    for (i = 0; i < e->n_pending; i++) {
        dw_output_free(&e->pending[i]);
    }
    for (i = 0; i < e->releases.n; i++) {
        free(((dw_release_t *) e->releases.items)[i].blocks);
    }
    free(e->releases.items);
    free(e->dones.items);
    free(e->held);
    dw_ring_free(&e->kvq);
    dw_ring_free(&e->out);
    free(e->cancels.items);
    free(e->resets.items);
    free(e->pending);
    free(e->sched);
    free(e->steps);
    free(e->ids);
    free(e->samples);
    free(e->srows);
    free(e->logits);
    dw_bm_free(&e->bm);
    dw_sampler_free(&e->sampler);
    if (e->be != NULL && e->be->ops->destroy != NULL) {
        e->be->ops->destroy(e->be);
    }
    if (e->efd >= 0) {
        close(e->efd);
    }
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}

/* ---- requests in ---- */

int
dw_engine_submit(dw_engine_t *e, dw_request_t *req, char *err,
    size_t errlen)
{
    dw_seq_t  *s;
    uint32_t  *tok, cap, i, B = e->cfg.block_size;
    uint64_t   want;

    if (req->prompt == NULL || req->n_prompt == 0) {
        snprintf(err, errlen, "empty prompt");
        return DW_SUBMIT_INVAL;
    }
    if (req->n_prompt > e->max_len - 1) {
        snprintf(err, errlen, "prompt of %u tokens exceeds the context "
                 "length %u minus one", req->n_prompt, e->max_len);
        return DW_SUBMIT_INVAL;
    }
    if (req->sp.max_tokens == 0) {
        snprintf(err, errlen, "max_tokens must be >= 1");
        return DW_SUBMIT_INVAL;
    }
    for (i = 0; i < req->n_prompt; i++) {
        if (req->prompt[i] >= e->vocab) {
            snprintf(err, errlen, "token id %u at %u outside the vocabulary "
                     "(%u)", req->prompt[i], i, e->vocab);
            return DW_SUBMIT_INVAL;
        }
    }

    want = (uint64_t) req->n_prompt + req->sp.max_tokens;
    cap = want < e->max_len ? (uint32_t) want : e->max_len;
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return DW_SUBMIT_NOMEM;
    }
    s->blocks_cap = (cap + B - 1) / B;
    s->blocks = malloc(s->blocks_cap * sizeof(uint32_t));
    /* the realloc last: once it moved the prompt, nothing else can fail
       but "stopped", and the caller then frees req->prompt, the new one */
    tok = s->blocks ? realloc(req->prompt, (size_t) cap * sizeof(uint32_t))
                    : NULL;
    if (tok == NULL) {
        free(s->blocks);
        free(s);
        snprintf(err, errlen, "out of memory");
        return DW_SUBMIT_NOMEM;
    }
    req->prompt = tok;          /* still the caller's if we fail below */
    s->id = req->id;
    s->tokens = tok;
    s->n_tokens = req->n_prompt;
    s->n_prompt = req->n_prompt;
    s->cap = cap;
    s->sp = req->sp;
    s->flags = req->flags;
    s->remote_min_tokens = req->remote_min_tokens;
    s->prefill = req->prefill;
    dw_rng_seed(&s->rng, req->sp.has_seed ? req->sp.seed
                                          : dw_rng_fresh_seed());
    s->t_submit = dw_now_ms();

    pthread_mutex_lock(&e->mu);
    if (e->stopping) {
        pthread_mutex_unlock(&e->mu);
        free(s->blocks);
        free(s);
        snprintf(err, errlen, "engine stopped");
        return DW_SUBMIT_STOPPED;
    }
    dw_seq_list_push_tail(&e->incoming, s);
    /* the router sees the request at once, not after the next step */
    e->load_pub.waiting++;
    e->load_pub.queued_prefill_tokens += s->n_prompt;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);

    req->prompt = NULL;
    req->n_prompt = 0;
    return 0;
}

void *
dw_queue_push(dw_queue_t *q, size_t sz)
{
    void    *p;
    size_t   c;

    if (q->n == q->cap) {
        c = q->cap ? 2 * q->cap : 8;
        p = realloc(q->items, c * sz);
        if (p == NULL) {
            return NULL;
        }
        q->items = p;
        q->cap = c;
    }
    p = (char *) q->items + q->n++ * sz;
    memset(p, 0, sz);
    return p;
}

void *
dw_queue_take(dw_queue_t *q, size_t *n)
{
    void  *items = q->items;

    *n = q->n;
    memset(q, 0, sizeof(*q));
    return items;
}

void
dw_engine_cancel(dw_engine_t *e, uint64_t req_id)
{
    uint64_t  *id;

    pthread_mutex_lock(&e->mu);
    id = dw_queue_push(&e->cancels, sizeof(*id));
    if (id != NULL) {
        *id = req_id;
        pthread_cond_signal(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
}

int
dw_engine_reset_prefix_cache(dw_engine_t *e, uint64_t req_id)
{
    uint64_t  *id;

    pthread_mutex_lock(&e->mu);
    id = e->stopping ? NULL : dw_queue_push(&e->resets, sizeof(*id));
    if (id == NULL) {
        pthread_mutex_unlock(&e->mu);
        return -1;
    }
    *id = req_id;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

/* ---- outputs ---- */

int
dw_engine_notify_fd(const dw_engine_t *e)
{
    return e->efd;
}

/* Clears the eventfd, re-arming it if entries remain. Under mu. */
static void
dw_rearm(dw_engine_t *e)
{
    uint64_t  v;

    while (read(e->efd, &v, sizeof(v)) < 0 && errno == EINTR) {
        /* retry */
    }
    if (e->out.n > 0 || e->kvq.n > 0) {
        v = 1;
        while (write(e->efd, &v, sizeof(v)) < 0 && errno == EINTR) {
            /* retry */
        }
    }
}

/* Moves up to max of ring r's oldest elements to out, under the lock. */
static size_t
dw_drain(dw_engine_t *e, dw_ring_t *r, void *out, size_t max)
{
    size_t  n;

    pthread_mutex_lock(&e->mu);
    n = dw_ring_pop(r, out, max);
    dw_rearm(e);
    pthread_mutex_unlock(&e->mu);
    return n;
}

size_t
dw_engine_drain(dw_engine_t *e, dw_output_t *out, size_t max)
{
    return dw_drain(e, &e->out, out, max);
}

size_t
dw_engine_drain_kv(dw_engine_t *e, dw_kv_event_t *out, size_t max)
{
    return dw_drain(e, &e->kvq, out, max);
}

void
dw_engine_load(dw_engine_t *e, kvr_load_t *load)
{
    pthread_mutex_lock(&e->mu);
    *load = e->load_pub;
    pthread_mutex_unlock(&e->mu);
}

void
dw_engine_stats(dw_engine_t *e, dw_engine_stats_t *st)
{
    pthread_mutex_lock(&e->mu);
    *st = e->st_pub;
    pthread_mutex_unlock(&e->mu);
}

const dw_engine_config_t *
dw_engine_config(const dw_engine_t *e)
{
    return &e->cfg;
}

/* ---- disaggregation ---- */

void
dw_output_free(dw_output_t *o)
{
    free(o->kv_blocks);
    o->kv_blocks = NULL;
    o->n_kv_blocks = 0;
}

int
dw_engine_remote_done(dw_engine_t *e, uint64_t req_id,
    const dw_output_t *first)
{
    dw_remote_done_t  *d;
    uint32_t           n;

    pthread_mutex_lock(&e->mu);
    d = e->stopping ? NULL : dw_queue_push(&e->dones, sizeof(*d));
    if (d == NULL) {
        pthread_mutex_unlock(&e->mu);
        return -1;
    }
    d->id = req_id;
    if (first != NULL) {
        d->ok = 1;
        d->first.token = first->token;
        d->first.logprob = first->logprob;
        n = first->n_top < DW_MAX_TOP_LOGPROBS ? first->n_top
                                               : DW_MAX_TOP_LOGPROBS;
        d->first.n_top = n;
        memcpy(d->first.top_ids, first->top_ids, n * sizeof(uint32_t));
        memcpy(d->first.top_logprobs, first->top_logprobs,
               n * sizeof(float));
    }
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

int
dw_engine_release_blocks(dw_engine_t *e, uint32_t *kv_blocks, uint32_t n)
{
    dw_release_t  *r;

    if (kv_blocks == NULL || n == 0) {
        free(kv_blocks);
        return 0;
    }
    pthread_mutex_lock(&e->mu);
    /* also while stopping: the blocks die with the engine, the array is
       freed by destroy */
    r = dw_queue_push(&e->releases, sizeof(*r));
    if (r == NULL) {
        pthread_mutex_unlock(&e->mu);
        free(kv_blocks);
        return -1;
    }
    r->blocks = kv_blocks;
    r->n = n;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}
