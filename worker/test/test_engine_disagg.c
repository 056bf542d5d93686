/*
 * The engine's half of disaggregated prefill, with no network: a prefill
 * engine P (DW_REQ_HOLD_KV, max_tokens 1) and a decode engine D
 * (DW_REQ_REMOTE_PREFILL) in one process, each over the cpu backend on
 * models/stories260K with a KV pool in memory the test owns, the blocks
 * copied from P's pool to D's chunk by chunk with the transfer layer's
 * layout (what the UCX puts do). Whatever D then generates must equal an
 * aggregated engine's output for the same request (greedy: also the known
 * stories260K text; seeded sampling: tokens and logprobs). Also: D's
 * cached prefix is not copied, P reuses its own prefix cache and holds
 * its blocks until released (not evicted meanwhile), the local fallback,
 * cancels of parked requests, the short-prompt rule, parked requests not
 * blocking others, the mock backend's stream, and one threaded run.
 * Run from the repository root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dw_engine_int.h"
#include "dw_xfer.h"
#include "support/dw_tsupport_engine.h"
#include "support/dw_tsupport_model.h"

#define BS  16

static dw_model_t  *model;

typedef struct {
    dw_ts_eng_t        t;
    unsigned char     *kv;         /* the pool (kv_mem), ours */
    dw_xfer_layout_t   lay;
} eng_t;

static int
setup(void **state)
{
    char  err[256];

    (void) state;
    if (dw_model_load(DW_TS_STORIES, &model, err, sizeof(err)) != 0) {
        fprintf(stderr, "load: %s\n", err);
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    (void) state;
    dw_model_free(model);
    return 0;
}

/* A cpu engine whose KV pool is memory we allocated (kv_mem). */
static void
open_eng(eng_t *x, uint32_t n_blocks, uint32_t budget)
{
    dw_engine_config_t  c;
    dw_backend_opts_t   o;
    dw_backend_t       *be;
    char                err[256];
    size_t              len, i;

    memset(x, 0, sizeof(*x));
    if (dw_xfer_layout_cpu(&x->lay, "stories260K", dw_model_config(model),
                           BS, n_blocks, err, sizeof(err)) != 0)
    {
        fail_msg("layout: %s", err);
    }
    len = x->lay.layer_stride * x->lay.n_layers;
    x->kv = malloc(len);
    assert_non_null(x->kv);
    memset(x->kv, 0xa5, len);           /* the backend must zero it */

    dw_engine_config_defaults(&c);
    c.block_size = BS;
    c.n_blocks = n_blocks;
    c.max_num_batched_tokens = budget;
    memset(&o, 0, sizeof(o));
    o.block_size = BS;
    o.n_blocks = n_blocks;
    o.threads = 2;
    o.kv_mem = x->kv;
    o.kv_mem_len = len;
    if (dw_backend_cpu_create(model, &o, &be, err, sizeof(err)) != 0) {
        fail_msg("cpu backend: %s", err);
    }
    for (i = 0; i < len; i++) {
        if (x->kv[i] != 0) {
            fail_msg("kv_mem byte %zu not zeroed", i);
        }
    }
    assert_int_equal(dw_ts_eng_open(&x->t, &c, be), 0);
}

static void
close_eng(eng_t *x)
{
    dw_ts_eng_close(&x->t);
    free(x->kv);       /* after the backend: it must not have freed it */
}

/*
 * Copies blocks [from, n) of P's table sb into D's table db, one chunk
 * per (layer, K or V, block), at the layouts' offsets.
 */
static void
copy_blocks(const eng_t *p, const uint32_t *sb, eng_t *d,
    const uint32_t *db, uint32_t from, uint32_t n)
{
    uint32_t  l, kv, b;
    char      err[128];

    if (dw_xfer_layout_check(&d->lay, &p->lay, err, sizeof(err)) != 0) {
        fail_msg("layouts: %s", err);
    }
    for (l = 0; l < p->lay.n_layers; l++) {
        for (kv = 0; kv < 2; kv++) {
            for (b = from; b < n; b++) {
                memcpy(d->kv + dw_xfer_chunk_off(&d->lay, l, kv, db[b]),
                       p->kv + dw_xfer_chunk_off(&p->lay, l, kv, sb[b]),
                       p->lay.chunk_bytes);
            }
        }
    }
}

static uint32_t
used_blocks(dw_ts_eng_t *t)
{
    dw_engine_stats_t  st;

    dw_engine_stats(t->e, &st);
    return st.used_blocks;
}

/* bos, then ordinary tokens of stories260K's 512 */
static void
rand_prompt(uint64_t *rs, uint32_t *p, uint32_t n)
{
    p[0] = 1;
    dw_ts_rand_ids(rs, p + 1, n - 1, 3, 509);
}

/* The aggregated reference: one request on a fresh engine. */
static void
aggregated(const uint32_t *prompt, uint32_t n, const dw_sampling_t *sp,
    dw_ts_req_t *out)
{
    eng_t  a;

    open_eng(&a, 64, 8192);
    assert_int_equal(dw_ts_submit(&a.t, 0, prompt, n, sp), 0);
    dw_ts_run(&a.t);
    assert_int_equal(a.t.req[0].finished, 1);
    *out = a.t.req[0];
    out->fin.kv_blocks = NULL;
    out->remote.kv_blocks = NULL;
    close_eng(&a);
}

/*
 * P computes the prompt (HOLD_KV, max_tokens 1) as request id; its first
 * token output goes to *first and its held blocks to *held / *n_held.
 */
static void
prefill_on(eng_t *p, uint64_t id, const uint32_t *prompt, uint32_t n,
    const dw_sampling_t *sp, dw_output_t *first, uint32_t **held,
    uint32_t *n_held)
{
    dw_sampling_t  psp = *sp;
    dw_ts_req_t   *r = &p->t.req[id];

    psp.max_tokens = 1;
    assert_int_equal(dw_ts_submit_flags(&p->t, id, prompt, n, &psp,
                                        DW_REQ_HOLD_KV, 0), 0);
    dw_ts_run(&p->t);
    assert_int_equal(r->finished, 1);
    assert_int_equal(r->fin.reason, DW_FINISH_LENGTH);
    assert_int_equal(r->n_tokens, 1);
    assert_non_null(r->fin.kv_blocks);
    assert_int_equal(r->fin.n_kv_blocks, (n + BS - 1) / BS);
    *first = r->first;
    *held = r->fin.kv_blocks;
    *n_held = r->fin.n_kv_blocks;
    r->fin.kv_blocks = NULL;            /* ours now */
}

/*
 * The whole exchange for one request: D parks it, P computes it, the
 * blocks D lacks are copied, D goes on. D's output must equal the
 * aggregated one (tokens and logprobs), with prefill REMOTE.
 */
static void
disagg_check(eng_t *p, eng_t *d, uint64_t id, const uint32_t *prompt,
    uint32_t n, const dw_sampling_t *sp, uint32_t want_cached,
    dw_ts_req_t *agg_out)
{
    dw_ts_req_t        agg, *r = &d->t.req[id];
    dw_output_t        first;
    dw_engine_stats_t  st;
    uint32_t          *held, n_held, skip;

    aggregated(prompt, n, sp, &agg);
    prefill_on(p, id, prompt, n, sp, &first, &held, &n_held);
    /* P sampled the first token as an aggregated engine would (P
       computes the whole prompt here, as the aggregated engine does) */
    assert_int_equal(first.token, agg.tokens[0]);
    assert_true(first.logprob == agg.logprobs[0]);

    assert_int_equal(dw_ts_submit_flags(&d->t, id, prompt, n, sp,
                                        DW_REQ_REMOTE_PREFILL, 1), 0);
    dw_ts_run(&d->t);
    assert_int_equal(r->n_remote, 1);
    assert_int_equal(r->n_tokens, 0);
    assert_int_equal(r->finished, 0);
    assert_int_equal(r->remote.n_kv_blocks, n_held);
    assert_int_equal(r->remote.cached_tokens, want_cached);
    dw_engine_stats(d->t.e, &st);
    assert_int_equal(st.remote_parked, 1);

    skip = r->remote.cached_tokens / BS;
    copy_blocks(p, held, d, r->remote.kv_blocks, skip, n_held);
    assert_int_equal(dw_engine_release_blocks(p->t.e, held, n_held), 0);
    assert_int_equal(dw_engine_remote_done(d->t.e, id, &first), 0);
    dw_ts_run(&d->t);
    dw_ts_run(&p->t);

    assert_int_equal(r->finished, 1);
    assert_int_equal(r->token_after_finish, 0);
    assert_int_equal(r->fin.prefill, DW_PREFILL_REMOTE);
    assert_int_equal(r->fin.reason, agg.fin.reason);
    assert_int_equal(r->fin.cached_tokens, want_cached);
    assert_int_equal(r->n_tokens, agg.n_tokens);
    assert_memory_equal(r->tokens, agg.tokens, agg.n_tokens * sizeof(uint32_t));
    assert_memory_equal(r->logprobs, agg.logprobs,
                        agg.n_tokens * sizeof(float));
    dw_engine_stats(d->t.e, &st);
    assert_int_equal(st.remote_parked, 0);
    assert_int_equal(st.used_blocks, 0);
    assert_int_equal(used_blocks(&p->t), 0);
    assert_int_equal(d->t.kv.errors, 0);
    assert_int_equal(p->t.kv.errors, 0);
    if (agg_out != NULL) {
        *agg_out = agg;
    }
}

static void
test_kv_mem(void **state)
{
    dw_backend_opts_t   o;
    dw_backend_t       *be;
    char                err[256];
    unsigned char       small[64];

    (void) state;
    memset(&o, 0, sizeof(o));
    o.block_size = BS;
    o.n_blocks = 8;
    o.threads = 1;
    o.kv_mem = small;
    o.kv_mem_len = sizeof(small);
    err[0] = '\0';
    assert_int_equal(dw_backend_cpu_create(model, &o, &be, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "KV memory"));
}

static void
test_remote_greedy_known_good(void **state)
{
    eng_t          p, d;
    dw_sampling_t  sp = dw_ts_greedy_sp(25);
    dw_ts_req_t    agg;
    dw_output_t    first;
    uint32_t       prompt[77], *held, n_held;
    uint64_t       rs = 3;

    (void) state;
    open_eng(&p, 64, 8192);
    open_eng(&d, 64, 8192);
    disagg_check(&p, &d, 1, dw_ts_stories_prompt, 5, &sp, 0, &agg);
    assert_int_equal(d.t.req[1].n_tokens, 25);
    assert_memory_equal(d.t.req[1].tokens, dw_ts_stories_greedy,
                        25 * sizeof(uint32_t));

    /* several blocks, the last one partial */
    rand_prompt(&rs, prompt, 77);
    sp = dw_ts_greedy_sp(30);
    sp.ignore_eos = 1;
    disagg_check(&p, &d, 2, prompt, 77, &sp, 0, NULL);
    close_eng(&d);

    /* the copy matters: without it D decodes from an empty KV */
    rand_prompt(&rs, prompt, 77);
    aggregated(prompt, 77, &sp, &agg);
    prefill_on(&p, 3, prompt, 77, &sp, &first, &held, &n_held);
    open_eng(&d, 64, 8192);
    assert_int_equal(dw_ts_submit_flags(&d.t, 3, prompt, 77, &sp,
                                        DW_REQ_REMOTE_PREFILL, 1), 0);
    dw_ts_run(&d.t);
    assert_int_equal(d.t.req[3].n_remote, 1);
    assert_int_equal(dw_engine_remote_done(d.t.e, 3, &first), 0);
    dw_ts_run(&d.t);
    assert_int_equal(d.t.req[3].n_tokens, 30);
    assert_int_equal(d.t.req[3].tokens[0], agg.tokens[0]);
    assert_memory_not_equal(d.t.req[3].tokens, agg.tokens,
                            30 * sizeof(uint32_t));
    assert_int_equal(dw_engine_release_blocks(p.t.e, held, n_held), 0);
    close_eng(&d);
    close_eng(&p);
}

static void
test_remote_seeded_sampling(void **state)
{
    eng_t          p, d;
    dw_sampling_t  sp = dw_ts_greedy_sp(40);
    dw_ts_req_t    agg;
    uint32_t       prompt[50];
    uint64_t       rs = 11;

    (void) state;
    sp.temperature = 0.8f;
    sp.top_p = 0.9f;
    sp.has_seed = 1;
    sp.seed = 7;
    sp.logprobs = 3;
    sp.ignore_eos = 1;
    rand_prompt(&rs, prompt, 50);
    open_eng(&p, 64, 8192);
    open_eng(&d, 64, 8192);
    disagg_check(&p, &d, 1, prompt, 50, &sp, 0, &agg);
    /* a sampled stream, not greedy: the RNG matters */
    assert_int_equal(agg.n_tokens, 40);
    assert_true(agg.logprobs[0] <= 0.0f);
    /* top_k 1 is greedy: no draw. Another prompt: P computing this one
       from its cache would round its logits otherwise (fewer rows) */
    rand_prompt(&rs, prompt, 50);
    sp.top_k = 1;
    disagg_check(&p, &d, 2, prompt, 50, &sp, 0, NULL);
    close_eng(&d);
    close_eng(&p);
}

static void
test_remote_cached_prefix(void **state)
{
    eng_t          p, d;
    dw_sampling_t  sp = dw_ts_greedy_sp(20);
    uint32_t       a[45], b[60];
    uint64_t       rs = 5;

    (void) state;
    sp.ignore_eos = 1;
    rand_prompt(&rs, a, 45);
    memcpy(b, a, 32 * sizeof(uint32_t));
    rand_prompt(&rs, b + 32, 28);
    b[32] = 77;

    open_eng(&p, 64, 8192);
    open_eng(&d, 64, 8192);
    /* D computes a locally: blocks 0 and 1 of b are in its cache */
    assert_int_equal(dw_ts_submit(&d.t, 0, a, 45, &sp), 0);
    dw_ts_run(&d.t);
    assert_int_equal(d.t.req[0].finished, 1);
    /* only blocks 2..3 are copied (skip = 2) */
    disagg_check(&p, &d, 1, b, 60, &sp, 32, NULL);
    close_eng(&d);
    close_eng(&p);
}

static void
test_prefill_prefix_reuse_and_hold(void **state)
{
    eng_t              p;
    dw_sampling_t      sp = dw_ts_greedy_sp(1);
    dw_engine_stats_t  st;
    dw_output_t        f1, f2;
    uint32_t           prompt[40], other[190], *h1, *h2, n1, n2, i, l, kv;
    unsigned char     *snap;
    size_t             cb;
    uint64_t           rs = 9;

    (void) state;
    rand_prompt(&rs, prompt, 40);
    rand_prompt(&rs, other, 190);
    /* 16 blocks: the held 3 plus 13 for the other request, no more */
    open_eng(&p, 16, 8192);
    prefill_on(&p, 1, prompt, 40, &sp, &f1, &h1, &n1);
    assert_int_equal(p.t.req[1].fin.cached_tokens, 0);
    assert_int_equal(n1, 3);
    dw_engine_stats(p.t.e, &st);
    assert_int_equal(st.used_blocks, 3);
    assert_int_equal(st.held_blocks, 3);

    /* the same prompt again: the 2 full blocks come from the cache */
    prefill_on(&p, 2, prompt, 40, &sp, &f2, &h2, &n2);
    assert_int_equal(p.t.req[2].fin.cached_tokens, 32);
    assert_int_equal(f2.token, f1.token);
    assert_int_equal(h2[0], h1[0]);
    assert_int_equal(h2[1], h1[1]);
    dw_engine_stats(p.t.e, &st);
    assert_int_equal(st.held_blocks, 6);
    assert_int_equal(st.used_blocks, 4);      /* 3 + a private last one */

    /* held blocks are neither evicted nor overwritten by other work */
    assert_int_equal(dw_engine_release_blocks(p.t.e, h2, n2), 0);
    dw_ts_run(&p.t);
    assert_int_equal(used_blocks(&p.t), 3);
    cb = p.lay.chunk_bytes;
    snap = malloc(2 * p.lay.n_layers * 3 * cb);
    assert_non_null(snap);
    for (l = 0; l < p.lay.n_layers; l++) {
        for (kv = 0; kv < 2; kv++) {
            for (i = 0; i < 3; i++) {
                memcpy(snap + ((l * 2 + kv) * 3 + i) * cb,
                       p.kv + dw_xfer_chunk_off(&p.lay, l, kv, h1[i]), cb);
            }
        }
    }
    sp = dw_ts_greedy_sp(10);
    sp.ignore_eos = 1;
    assert_int_equal(dw_ts_submit(&p.t, 3, other, 190, &sp), 0);
    dw_ts_run(&p.t);
    assert_int_equal(p.t.req[3].finished, 1);
    assert_int_equal(p.t.req[3].fin.reason, DW_FINISH_LENGTH);
    for (l = 0; l < p.lay.n_layers; l++) {
        for (kv = 0; kv < 2; kv++) {
            for (i = 0; i < 3; i++) {
                assert_memory_equal(
                    snap + ((l * 2 + kv) * 3 + i) * cb,
                    p.kv + dw_xfer_chunk_off(&p.lay, l, kv, h1[i]), cb);
            }
        }
    }
    free(snap);

    /* a release gives back each held reference once: a repeat or a
       bogus id changes nothing */
    h2 = malloc(3 * sizeof(uint32_t));
    assert_non_null(h2);
    memcpy(h2, h1, 3 * sizeof(uint32_t));
    assert_int_equal(dw_engine_release_blocks(p.t.e, h1, n1), 0);
    dw_ts_run(&p.t);
    dw_engine_stats(p.t.e, &st);
    assert_int_equal(st.used_blocks, 0);
    assert_int_equal(st.held_blocks, 0);
    assert_true(st.cached_blocks > 0);
    h2[2] = 100000;
    assert_int_equal(dw_engine_release_blocks(p.t.e, h2, 3), 0);
    dw_ts_run(&p.t);
    assert_int_equal(used_blocks(&p.t), 0);
    assert_int_equal(p.t.kv.errors, 0);
    close_eng(&p);
}

static void
test_hold_kv_cancel_releases(void **state)
{
    eng_t          p;
    dw_sampling_t  sp = dw_ts_greedy_sp(1);
    uint32_t       prompt[40];
    uint64_t       rs = 13;

    (void) state;
    rand_prompt(&rs, prompt, 40);
    open_eng(&p, 64, 16);        /* 16 tokens a step: 3 steps of prefill */
    assert_int_equal(dw_ts_submit_flags(&p.t, 1, prompt, 40, &sp,
                                        DW_REQ_HOLD_KV, 0), 0);
    assert_int_equal(dw_engine_step(p.t.e), 1);
    dw_engine_cancel(p.t.e, 1);
    dw_ts_run(&p.t);
    assert_int_equal(p.t.req[1].finished, 1);
    assert_int_equal(p.t.req[1].fin.reason, DW_FINISH_CANCELLED);
    assert_null(p.t.req[1].fin.kv_blocks);
    assert_int_equal(used_blocks(&p.t), 0);
    close_eng(&p);
}

static void
test_fallback_local(void **state)
{
    eng_t              d;
    dw_sampling_t      sp = dw_ts_greedy_sp(25);
    dw_ts_req_t        agg, *r;
    dw_engine_stats_t  st;
    uint32_t           prompt[70];
    uint64_t           rs = 17;

    (void) state;
    open_eng(&d, 64, 8192);
    /* the known prompt: one block, none cached */
    assert_int_equal(dw_ts_submit_flags(&d.t, 1, dw_ts_stories_prompt, 5,
                                        &sp, DW_REQ_REMOTE_PREFILL, 1), 0);
    dw_ts_run(&d.t);
    r = &d.t.req[1];
    assert_int_equal(r->n_remote, 1);
    /* whatever a failed transfer left in the blocks is overwritten */
    memset(d.kv, 0x7f, d.lay.layer_stride * d.lay.n_layers);
    assert_int_equal(dw_engine_remote_done(d.t.e, 1, NULL), 0);
    dw_ts_run(&d.t);
    assert_int_equal(r->finished, 1);
    assert_int_equal(r->fin.prefill, DW_PREFILL_LOCAL_FAILED);
    assert_int_equal(r->n_tokens, 25);
    assert_memory_equal(r->tokens, dw_ts_stories_greedy,
                        25 * sizeof(uint32_t));

    /* with a cached prefix (request 2 caches 2 blocks of request 3) */
    rand_prompt(&rs, prompt, 70);
    sp = dw_ts_greedy_sp(20);
    sp.ignore_eos = 1;
    assert_int_equal(dw_ts_submit(&d.t, 2, prompt, 40, &sp), 0);
    dw_ts_run(&d.t);
    assert_int_equal(dw_ts_submit_flags(&d.t, 3, prompt, 70, &sp,
                                        DW_REQ_REMOTE_PREFILL, 1), 0);
    dw_ts_run(&d.t);
    r = &d.t.req[3];
    assert_int_equal(r->n_remote, 1);
    assert_int_equal(r->remote.cached_tokens, 32);
    assert_int_equal(dw_engine_remote_done(d.t.e, 3, NULL), 0);
    /* a second answer for the same id is ignored */
    assert_int_equal(dw_engine_remote_done(d.t.e, 3, NULL), 0);
    dw_ts_run(&d.t);
    assert_int_equal(r->finished, 1);
    assert_int_equal(r->fin.prefill, DW_PREFILL_LOCAL_FAILED);
    assert_int_equal(r->fin.cached_tokens, 32);
    aggregated(prompt, 70, &sp, &agg);
    assert_int_equal(r->n_tokens, agg.n_tokens);
    assert_memory_equal(r->tokens, agg.tokens, agg.n_tokens * sizeof(uint32_t));

    dw_engine_stats(d.t.e, &st);
    assert_int_equal(st.remote_parks, 2);
    assert_int_equal(st.remote_fallbacks, 2);
    assert_int_equal(st.remote_prefills, 0);
    assert_int_equal(st.used_blocks, 0);
    assert_int_equal(d.t.kv.errors, 0);
    close_eng(&d);
}

static void
test_cancel_parked(void **state)
{
    eng_t              d;
    dw_sampling_t      sp = dw_ts_greedy_sp(10);
    dw_engine_stats_t  st;
    kvr_load_t         load;
    dw_output_t        first;
    uint32_t           prompt[50];
    uint64_t           rs = 19;

    (void) state;
    rand_prompt(&rs, prompt, 50);
    open_eng(&d, 64, 8192);
    assert_int_equal(dw_ts_submit_flags(&d.t, 1, prompt, 50, &sp,
                                        DW_REQ_REMOTE_PREFILL, 1), 0);
    dw_ts_run(&d.t);
    assert_int_equal(d.t.req[1].n_remote, 1);
    assert_int_equal(d.t.req[1].remote.n_kv_blocks, 4);
    /* parked: running for the router, no prefill queued here */
    dw_engine_load(d.t.e, &load);
    assert_int_equal(load.running, 1);
    assert_int_equal(load.waiting, 0);
    assert_true(load.queued_prefill_tokens == 0);
    assert_int_equal(load.active_blocks, 4);

    dw_engine_cancel(d.t.e, 1);
    dw_ts_run(&d.t);
    assert_int_equal(d.t.req[1].finished, 1);
    assert_int_equal(d.t.req[1].fin.reason, DW_FINISH_CANCELLED);
    assert_int_equal(d.t.req[1].n_tokens, 0);
    dw_engine_stats(d.t.e, &st);
    assert_int_equal(st.used_blocks, 0);
    assert_int_equal(st.remote_parked, 0);
    assert_int_equal(st.running, 0);

    /* the transfer's late answer finds nothing */
    memset(&first, 0, sizeof(first));
    first.kind = DW_OUT_TOKEN;
    first.token = 5;
    assert_int_equal(dw_engine_remote_done(d.t.e, 1, &first), 0);
    dw_ts_run(&d.t);
    assert_int_equal(d.t.req[1].finished, 1);
    assert_int_equal(d.t.req[1].n_tokens, 0);
    assert_int_equal(used_blocks(&d.t), 0);
    close_eng(&d);
}

static void
test_short_prompt_local(void **state)
{
    eng_t          d;
    dw_sampling_t  sp = dw_ts_greedy_sp(25);
    dw_ts_req_t    agg;
    uint32_t       prompt[40];
    uint64_t       rs = 23;

    (void) state;
    open_eng(&d, 64, 8192);
    /* 5 uncached tokens < 6 */
    assert_int_equal(dw_ts_submit_flags(&d.t, 1, dw_ts_stories_prompt, 5,
                                        &sp, DW_REQ_REMOTE_PREFILL, 6), 0);
    dw_ts_run(&d.t);
    assert_int_equal(d.t.req[1].n_remote, 0);
    assert_int_equal(d.t.req[1].finished, 1);
    assert_int_equal(d.t.req[1].fin.prefill, DW_PREFILL_LOCAL_SHORT);
    assert_memory_equal(d.t.req[1].tokens, dw_ts_stories_greedy,
                        25 * sizeof(uint32_t));

    /* 40 tokens, 32 cached: 8 uncached; remote at 8, local at 9 */
    rand_prompt(&rs, prompt, 40);
    sp = dw_ts_greedy_sp(5);
    assert_int_equal(dw_ts_submit(&d.t, 2, prompt, 40, &sp), 0);
    dw_ts_run(&d.t);
    assert_int_equal(dw_ts_submit_flags(&d.t, 3, prompt, 40, &sp,
                                        DW_REQ_REMOTE_PREFILL, 9), 0);
    dw_ts_run(&d.t);
    assert_int_equal(d.t.req[3].n_remote, 0);
    assert_int_equal(d.t.req[3].fin.prefill, DW_PREFILL_LOCAL_SHORT);
    assert_int_equal(d.t.req[3].fin.cached_tokens, 32);
    aggregated(prompt, 40, &sp, &agg);
    assert_memory_equal(d.t.req[3].tokens, agg.tokens,
                        agg.n_tokens * sizeof(uint32_t));
    assert_int_equal(dw_ts_submit_flags(&d.t, 4, prompt, 40, &sp,
                                        DW_REQ_REMOTE_PREFILL, 8), 0);
    dw_ts_run(&d.t);
    assert_int_equal(d.t.req[4].n_remote, 1);
    assert_int_equal(d.t.req[4].remote.cached_tokens, 32);
    dw_engine_cancel(d.t.e, 4);
    dw_ts_run(&d.t);
    /* the prefill field passes through when the engine decides nothing */
    {
        dw_request_t  r;
        char          err[128];

        memset(&r, 0, sizeof(r));
        r.id = 5;
        r.n_prompt = 5;
        r.prompt = malloc(5 * sizeof(uint32_t));
        assert_non_null(r.prompt);
        memcpy(r.prompt, dw_ts_stories_prompt, 5 * sizeof(uint32_t));
        r.sp = dw_ts_greedy_sp(3);
        r.prefill = DW_PREFILL_LOCAL_BUSY;
        assert_int_equal(dw_engine_submit(d.t.e, &r, err, sizeof(err)), 0);
        d.t.req[5].submitted = 1;
    }
    dw_ts_run(&d.t);
    assert_int_equal(d.t.req[5].fin.prefill, DW_PREFILL_LOCAL_BUSY);
    assert_int_equal(used_blocks(&d.t), 0);
    close_eng(&d);
}

static void
test_parked_does_not_block(void **state)
{
    eng_t          p, d;
    dw_sampling_t  sp = dw_ts_greedy_sp(25);
    dw_output_t    first;
    dw_ts_req_t   *r, agg;
    uint32_t       big[150], *held, n_held;
    uint64_t       rs = 29;

    (void) state;
    rand_prompt(&rs, big, 150);
    open_eng(&p, 64, 8192);
    /* 14 blocks: the parked one takes 10 */
    open_eng(&d, 14, 8192);
    assert_int_equal(dw_ts_submit_flags(&d.t, 1, big, 150, &sp,
                                        DW_REQ_REMOTE_PREFILL, 1), 0);
    assert_int_equal(dw_ts_submit(&d.t, 2, dw_ts_stories_prompt, 5, &sp),
                     0);
    dw_ts_run(&d.t);
    assert_int_equal(d.t.req[1].n_remote, 1);
    assert_int_equal(d.t.req[1].remote.n_kv_blocks, 10);
    /* the other request ran to its end meanwhile */
    assert_int_equal(d.t.req[2].finished, 1);
    assert_memory_equal(d.t.req[2].tokens, dw_ts_stories_greedy,
                        25 * sizeof(uint32_t));

    /* one that needs more than the 4 free blocks waits, and the engine
       goes idle rather than failing it */
    assert_int_equal(dw_ts_submit(&d.t, 3, big, 100, &sp), 0);
    dw_ts_run(&d.t);
    assert_int_equal(d.t.req[3].finished, 0);
    assert_int_equal(d.t.req[3].n_tokens, 0);
    assert_int_equal(dw_engine_step(d.t.e), 0);

    /* the remote prefill ends: 1 decodes and finishes, then 3 runs */
    prefill_on(&p, 1, big, 150, &sp, &first, &held, &n_held);
    copy_blocks(&p, held, &d, d.t.req[1].remote.kv_blocks, 0, n_held);
    assert_int_equal(dw_engine_release_blocks(p.t.e, held, n_held), 0);
    assert_int_equal(dw_engine_remote_done(d.t.e, 1, &first), 0);
    dw_ts_run(&d.t);
    r = &d.t.req[1];
    assert_int_equal(r->finished, 1);
    assert_int_equal(r->fin.prefill, DW_PREFILL_REMOTE);
    aggregated(big, 150, &sp, &agg);
    assert_int_equal(r->n_tokens, agg.n_tokens);
    assert_memory_equal(r->tokens, agg.tokens, agg.n_tokens * sizeof(uint32_t));
    assert_int_equal(d.t.req[3].finished, 1);
    /* 3 shared 6 blocks of 1's prompt, copied from P */
    assert_int_equal(d.t.req[3].fin.cached_tokens, 96);
    aggregated(big, 100, &sp, &agg);
    assert_int_equal(d.t.req[3].n_tokens, agg.n_tokens);
    assert_memory_equal(d.t.req[3].tokens, agg.tokens,
                        agg.n_tokens * sizeof(uint32_t));
    assert_int_equal(used_blocks(&d.t), 0);
    close_eng(&d);
    close_eng(&p);
}

static void
test_max_tokens_one(void **state)
{
    eng_t              p, d;
    dw_sampling_t      sp = dw_ts_greedy_sp(1);
    dw_engine_stats_t  st;
    dw_output_t        first;
    uint32_t           prompt[48], *held, n_held, i;
    uint64_t           rs = 31, n;

    (void) state;
    rand_prompt(&rs, prompt, 48);
    open_eng(&p, 64, 8192);
    open_eng(&d, 64, 8192);
    prefill_on(&p, 1, prompt, 48, &sp, &first, &held, &n_held);
    assert_int_equal(dw_ts_submit_flags(&d.t, 1, prompt, 48, &sp,
                                        DW_REQ_REMOTE_PREFILL, 1), 0);
    dw_ts_run(&d.t);
    copy_blocks(&p, held, &d, d.t.req[1].remote.kv_blocks, 0, n_held);
    assert_int_equal(dw_engine_release_blocks(p.t.e, held, n_held), 0);
    assert_int_equal(dw_engine_remote_done(d.t.e, 1, &first), 0);
    assert_int_equal(dw_engine_step(d.t.e), 1);
    dw_ts_drain(&d.t);
    /* finished in the step that took the answer: nothing computed */
    assert_int_equal(d.t.req[1].finished, 1);
    assert_int_equal(d.t.req[1].fin.reason, DW_FINISH_LENGTH);
    assert_int_equal(d.t.req[1].n_tokens, 1);
    assert_int_equal(d.t.req[1].tokens[0], first.token);
    dw_engine_stats(d.t.e, &st);
    assert_true(st.forward_tokens == 0);
    assert_int_equal(st.used_blocks, 0);
    assert_int_equal(st.remote_prefills, 1);
    for (i = 0, n = 0; i <= DW_HIST_BUCKETS; i++) {
        n += st.ttft_hist[i];
    }
    assert_int_equal(n, 1);                 /* the remote first token */
    /* the 3 full blocks of the copied prompt are D's cache now */
    assert_int_equal(st.cached_blocks, 3);
    assert_int_equal(d.t.kv.stored, 3);
    dw_ts_run(&p.t);
    close_eng(&d);
    close_eng(&p);
}

/* ---- the mock backend (next_ids) ---- */

static void
open_mock(dw_ts_eng_t *t, uint32_t n_blocks)
{
    dw_engine_config_t  c;

    dw_engine_config_defaults(&c);
    c.block_size = 8;
    c.n_blocks = n_blocks;
    c.max_num_batched_tokens = 256;
    assert_int_equal(dw_ts_eng_mock(t, &c, 500, 0.0, 0), 0);
}

static void
test_mock_stream(void **state)
{
    dw_ts_eng_t    a, p, d;
    dw_sampling_t  sp = dw_ts_greedy_sp(30);
    uint32_t       prompt[60];
    uint64_t       rs = 37;

    (void) state;
    sp.ignore_eos = 1;
    dw_ts_rand_ids(&rs, prompt, 60, 3, 490);
    open_mock(&a, 64);
    open_mock(&p, 64);
    open_mock(&d, 64);
    assert_int_equal(dw_ts_submit(&a, 1, prompt, 60, &sp), 0);
    dw_ts_run(&a);
    sp.max_tokens = 1;
    assert_int_equal(dw_ts_submit_flags(&p, 1, prompt, 60, &sp,
                                        DW_REQ_HOLD_KV, 0), 0);
    dw_ts_run(&p);
    sp.max_tokens = 30;
    assert_int_equal(dw_ts_submit_flags(&d, 1, prompt, 60, &sp,
                                        DW_REQ_REMOTE_PREFILL, 1), 0);
    dw_ts_run(&d);
    assert_int_equal(d.req[1].n_remote, 1);
    assert_int_equal(d.req[1].remote.n_kv_blocks, 8);
    assert_int_equal(p.req[1].fin.n_kv_blocks, 8);
    assert_int_equal(dw_engine_remote_done(d.e, 1, &p.req[1].first), 0);
    dw_ts_run(&d);
    assert_int_equal(d.req[1].n_tokens, 30);
    assert_memory_equal(d.req[1].tokens, a.req[1].tokens,
                        30 * sizeof(uint32_t));
    assert_int_equal(dw_engine_release_blocks(p.e, p.req[1].fin.kv_blocks,
                                              p.req[1].fin.n_kv_blocks), 0);
    p.req[1].fin.kv_blocks = NULL;
    dw_ts_run(&p);
    assert_int_equal(used_blocks(&p), 0);
    assert_int_equal(used_blocks(&d), 0);
    dw_ts_eng_close(&a);
    dw_ts_eng_close(&p);
    dw_ts_eng_close(&d);
}

/*
 * The engines on their threads: D parks 40 requests, P computes them,
 * and this thread answers each DW_OUT_REMOTE (P's first token, or a
 * failure for every fourth, a cancel for every seventh) and gives P's
 * blocks back as its finishes come. Every request ends once, with the
 * aggregated stream unless cancelled; nothing stays held or used.
 */
#define TH_N  40

static void
test_threads(void **state)
{
    dw_ts_eng_t        a, p, d;
    dw_engine_config_t  c;
    dw_sampling_t      sp = dw_ts_greedy_sp(20);
    dw_engine_stats_t  st;
    struct pollfd      pfd[2];
    uint32_t           prompts[TH_N][40], i, done;
    int                answered[TH_N], released[TH_N], tries;
    uint64_t           rs = 41;

    (void) state;
    sp.ignore_eos = 1;
    dw_engine_config_defaults(&c);
    c.block_size = 8;
    c.n_blocks = 96;            /* not all 40 fit parked at once */
    c.max_num_batched_tokens = 128;
    c.max_num_seqs = 32;
    assert_int_equal(dw_ts_eng_mock(&a, &c, 500, 0.0, 0), 0);
    assert_int_equal(dw_ts_eng_mock(&p, &c, 500, 500.0, 0), 0);
    assert_int_equal(dw_ts_eng_mock(&d, &c, 500, 500.0, 0), 0);
    for (i = 0; i < TH_N; i++) {
        dw_ts_rand_ids(&rs, prompts[i], 40, 3, 490);
        if (i % 2) {
            memcpy(prompts[i], prompts[0], 16 * sizeof(uint32_t));
        }
        assert_int_equal(dw_ts_submit(&a, i, prompts[i], 40, &sp), 0);
    }
    dw_ts_run(&a);
    assert_int_equal(dw_engine_start(p.e), 0);
    assert_int_equal(dw_engine_start(d.e), 0);
    sp.max_tokens = 1;
    for (i = 0; i < TH_N; i++) {
        assert_int_equal(dw_ts_submit_flags(&p, i, prompts[i], 40, &sp,
                                            DW_REQ_HOLD_KV, 0), 0);
    }
    sp.max_tokens = 20;
    for (i = 0; i < TH_N; i++) {
        assert_int_equal(dw_ts_submit_flags(&d, i, prompts[i], 40, &sp,
                                            DW_REQ_REMOTE_PREFILL, 1), 0);
    }
    memset(answered, 0, sizeof(answered));
    memset(released, 0, sizeof(released));
    pfd[0].fd = dw_engine_notify_fd(p.e);
    pfd[1].fd = dw_engine_notify_fd(d.e);
    pfd[0].events = pfd[1].events = POLLIN;
    for (tries = 0; tries < 3000; tries++) {
        (void) poll(pfd, 2, 10);
        dw_ts_drain(&p);
        dw_ts_drain(&d);
        for (i = 0, done = 0; i < TH_N; i++) {
            if (p.req[i].finished && !released[i]) {
                released[i] = 1;
                assert_non_null(p.req[i].fin.kv_blocks);
                assert_int_equal(dw_engine_release_blocks(p.e,
                                     p.req[i].fin.kv_blocks,
                                     p.req[i].fin.n_kv_blocks), 0);
                p.req[i].fin.kv_blocks = NULL;
            }
            if (d.req[i].n_remote && !answered[i]
                && (p.req[i].finished || i % 4 == 0 || i % 7 == 0))
            {
                answered[i] = 1;
                if (i % 7 == 0) {
                    dw_engine_cancel(d.e, i);
                }
                assert_int_equal(dw_engine_remote_done(d.e, i,
                                     i % 4 == 0 ? NULL : &p.req[i].first),
                                 0);
            }
            done += d.req[i].finished > 0 && released[i];
        }
        if (done == TH_N) {
            break;
        }
    }
    assert_int_equal(done, TH_N);
    for (i = 0; i < TH_N; i++) {
        assert_int_equal(d.req[i].finished, 1);
        assert_int_equal(d.req[i].token_after_finish, 0);
        assert_int_equal(d.req[i].n_remote, 1);
        if (i % 7 == 0) {
            assert_int_equal(d.req[i].fin.reason, DW_FINISH_CANCELLED);
            continue;
        }
        assert_int_equal(d.req[i].fin.prefill, i % 4 == 0
                         ? DW_PREFILL_LOCAL_FAILED : DW_PREFILL_REMOTE);
        assert_int_equal(d.req[i].n_tokens, 20);
        assert_memory_equal(d.req[i].tokens, a.req[i].tokens,
                            20 * sizeof(uint32_t));
    }
    /* the last releases may still be queued: let P's thread take them */
    for (tries = 0; tries < 500; tries++) {
        dw_engine_stats(p.e, &st);
        if (st.used_blocks == 0) {
            break;
        }
        (void) poll(NULL, 0, 2);
    }
    assert_int_equal(st.used_blocks, 0);
    assert_int_equal(st.held_blocks, 0);
    dw_engine_stats(d.e, &st);
    assert_int_equal(st.used_blocks, 0);
    assert_int_equal(st.remote_parked, 0);
    assert_int_equal(d.kv.errors, 0);
    assert_int_equal(p.kv.errors, 0);
    dw_ts_eng_close(&d);
    dw_ts_eng_close(&p);
    dw_ts_eng_close(&a);
}

/* Parked requests and held blocks left at destroy are freed (ASan). */
static void
test_destroy_with_parked_and_held(void **state)
{
    dw_ts_eng_t    p, d;
    dw_sampling_t  sp = dw_ts_greedy_sp(5);
    uint32_t       prompt[30];
    uint64_t       rs = 43;

    (void) state;
    dw_ts_rand_ids(&rs, prompt, 30, 3, 490);
    open_mock(&p, 32);
    open_mock(&d, 32);
    sp.max_tokens = 1;
    assert_int_equal(dw_ts_submit_flags(&p, 1, prompt, 30, &sp,
                                        DW_REQ_HOLD_KV, 0), 0);
    dw_ts_run(&p);
    /* a release queued, never taken */
    assert_int_equal(dw_engine_release_blocks(p.e, p.req[1].fin.kv_blocks,
                                              p.req[1].fin.n_kv_blocks), 0);
    p.req[1].fin.kv_blocks = NULL;
    /* outputs never drained: a DW_OUT_REMOTE with its block table */
    assert_int_equal(dw_ts_submit_flags(&d, 1, prompt, 30, &sp,
                                        DW_REQ_REMOTE_PREFILL, 1), 0);
    assert_int_equal(dw_ts_submit_flags(&d, 2, prompt, 30, &sp,
                                        DW_REQ_REMOTE_PREFILL, 1), 0);
    assert_int_equal(dw_engine_step(d.e), 0);
    assert_int_equal(dw_engine_remote_done(d.e, 1, NULL), 0);
    dw_ts_eng_close(&p);
    dw_ts_eng_close(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_mem),
        cmocka_unit_test(test_remote_greedy_known_good),
        cmocka_unit_test(test_remote_seeded_sampling),
        cmocka_unit_test(test_remote_cached_prefix),
        cmocka_unit_test(test_prefill_prefix_reuse_and_hold),
        cmocka_unit_test(test_hold_kv_cancel_releases),
        cmocka_unit_test(test_fallback_local),
        cmocka_unit_test(test_cancel_parked),
        cmocka_unit_test(test_short_prompt_local),
        cmocka_unit_test(test_parked_does_not_block),
        cmocka_unit_test(test_max_tokens_one),
        cmocka_unit_test(test_mock_stream),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_destroy_with_parked_and_held),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
