/*
 * Scheduler, block manager and step loop over the mock backend at a huge
 * speedup (no sleeping), driven step by step on the test's thread:
 * budget per step, decodes first, chunked prefill, preemption under a small
 * pool (outputs equal an unpreempted run's, every block freed), cancel,
 * prefix sharing (exact forward_tokens), KV events (hashes against
 * kvr_hash_blocks, consistency), prefix-cache reset (CLEARED, refusal
 * while cached blocks are in use), context length and submit errors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "kvr_hash.h"

#include "dw_backend_mock_int.h"
#include "dw_engine_int.h"
#include "support/dw_tsupport_engine.h"

#define VOCAB  1000

/* avoids eos (2) so prompts are ordinary text */
static void
rand_prompt(uint64_t *rs, uint32_t *p, uint32_t n)
{
    dw_ts_rand_ids(rs, p, n, 3, VOCAB - 3);
}

static void
base_cfg(dw_engine_config_t *c, uint32_t bs, uint32_t n_blocks,
    uint32_t budget)
{
    dw_engine_config_defaults(c);
    c->block_size = bs;
    c->n_blocks = n_blocks;
    c->max_num_batched_tokens = budget;
    c->max_num_seqs = 64;
}

/* every block free or cached, none referenced */
static void
assert_pool_idle(dw_engine_t *e)
{
    dw_engine_stats_t  st;

    dw_engine_stats(e, &st);
    assert_int_equal(st.used_blocks, 0);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(e->bm.n_used, 0);
    assert_int_equal(e->bm.n_free + e->bm.n_lru, e->bm.n_blocks);
}

/* ---- budget, decode first, chunked prefill ---- */

typedef struct {
    dw_engine_t  *e;
    uint32_t      budget;
    uint32_t      steps;
    uint32_t      max_tokens_seen;
    uint32_t      chunk_pos[16];    /* request 0's prefill chunks */
    uint32_t      n_chunks;
    uint64_t      watch_id;
    int           bad;
} watch_t;

static void
on_step_check(void *arg, const dw_step_t *step)
{
    watch_t         *w = arg;
    dw_engine_t     *e = w->e;
    const dw_seq_t  *s;
    uint32_t         i, sum = 0, decodes_running = 0, decodes_sched = 0;
    int              seen_prefill = 0;

    w->steps++;
    for (i = 0; i < step->n_seqs; i++) {
        const dw_seq_step_t  *ss = &step->seqs[i];
        int  is_decode = (e->sched[i]->n_tokens - ss->pos == 1)
                         && e->sched[i]->n_out > 0;

        sum += ss->n_tokens;
        if (is_decode) {
            decodes_sched++;
            if (seen_prefill) {
                w->bad = 1;     /* a decode after a prefill chunk */
            }
        } else {
            seen_prefill = 1;
        }
        if (e->sched[i]->id == w->watch_id && e->sched[i]->n_out == 0
            && w->n_chunks < 16)
        {
            w->chunk_pos[w->n_chunks++] = ss->pos;
        }
        /* the block table covers the slice */
        if (ss->n_blocks * e->cfg.block_size < ss->pos + ss->n_tokens) {
            w->bad = 2;
        }
    }
    if (sum != step->n_tokens || sum > w->budget) {
        w->bad = 3;
    }
    if (sum > w->max_tokens_seen) {
        w->max_tokens_seen = sum;
    }
    /* every running sequence with one token left got it this step */
    for (s = e->running.head; s != NULL; s = s->next) {
        if (s->n_tokens - s->n_computed == 1 && s->n_out > 0) {
            decodes_running++;
        }
    }
    if (decodes_running != decodes_sched) {
        w->bad = 4;
    }
}

static void
test_budget_decode_first_chunked(void **state)
{
    dw_ts_eng_t         t;
    dw_engine_config_t  c;
    dw_sampling_t       sp = dw_ts_greedy_sp(20);
    uint32_t            p[200], i;
    uint64_t            rs = 1;
    watch_t             w;

    (void) state;
    base_cfg(&c, 4, 1024, 48);
    assert_int_equal(dw_ts_eng_mock(&t, &c, VOCAB, 0, 0), 0);
    memset(&w, 0, sizeof(w));
    w.e = t.e;
    w.budget = 48;
    w.watch_id = 0;
    t.e->on_step = on_step_check;
    t.e->on_step_arg = &w;

    /* request 0: 130 tokens, prefilled over 3 steps in chunks of 48 */
    rand_prompt(&rs, p, 130);
    assert_int_equal(dw_ts_submit(&t, 0, p, 130, &sp), 0);
    for (i = 1; i < 12; i++) {
        rand_prompt(&rs, p, 10 + 7 * i);
        assert_int_equal(dw_ts_submit(&t, i, p, 10 + 7 * i, &sp), 0);
    }
    dw_ts_run(&t);

    assert_int_equal(w.bad, 0);
    assert_int_equal(w.max_tokens_seen, 48);
    assert_int_equal(w.n_chunks, 3);
    assert_int_equal(w.chunk_pos[0], 0);
    assert_int_equal(w.chunk_pos[1], 48);
    assert_int_equal(w.chunk_pos[2], 96);
    for (i = 0; i < 12; i++) {
        assert_int_equal(t.req[i].finished, 1);
        assert_int_equal(t.req[i].token_after_finish, 0);
        assert_int_equal(t.req[i].n_tokens, 20);
        assert_int_equal(t.req[i].fin.reason, DW_FINISH_LENGTH);
        assert_int_equal(t.req[i].fin.completion_tokens, 20);
    }
    assert_pool_idle(t.e);
    assert_int_equal(t.kv.errors, 0);
    dw_ts_eng_close(&t);
}

/* ---- preemption ---- */

static void
run_batch(uint32_t n_blocks, int logits_path, dw_ts_req_t *out,
    uint64_t *preemptions, uint64_t *kv_removed)
{
    dw_ts_eng_t         t;
    dw_engine_config_t  c;
    dw_engine_stats_t   st;
    dw_sampling_t       sp = dw_ts_greedy_sp(40);
    uint32_t            p[100], i;
    uint64_t            rs = 7;

    base_cfg(&c, 4, n_blocks, 64);
    assert_int_equal(dw_ts_eng_mock(&t, &c, VOCAB, 0, logits_path), 0);
    for (i = 0; i < 10; i++) {
        rand_prompt(&rs, p, 20 + 5 * i);
        /* some shared prefixes too */
        if (i % 3 == 2) {
            rand_prompt(&rs, p + 8, 4);
        }
        assert_int_equal(dw_ts_submit(&t, i, p, 20 + 5 * i, &sp), 0);
    }
    dw_ts_run(&t);
    memcpy(out, t.req, 10 * sizeof(dw_ts_req_t));
    dw_engine_stats(t.e, &st);
    *preemptions = st.preemptions;
    *kv_removed = t.kv.removed;
    assert_int_equal(t.kv.errors, 0);
    assert_pool_idle(t.e);
    dw_ts_eng_close(&t);
}

static void
test_preemption_same_output(void **state)
{
    dw_ts_req_t  *a = calloc(10, sizeof(dw_ts_req_t));
    dw_ts_req_t  *b = calloc(10, sizeof(dw_ts_req_t));
    dw_ts_req_t  *c = calloc(10, sizeof(dw_ts_req_t));
    uint64_t      pa, pb, pc, ra, rb, rc;
    uint32_t      i, total_pre = 0;

    (void) state;
    run_batch(4096, 0, a, &pa, &ra);
    /* 30 blocks of 4: far less than 10 sequences of up to 105 tokens */
    run_batch(30, 0, b, &pb, &rb);
    /* the engine's own greedy sampler over the mock's logits */
    run_batch(30, 1, c, &pc, &rc);

    assert_true(pa == 0);
    assert_true(pb > 0);
    assert_true(rb > 0);         /* the small pool evicted cached blocks */
    for (i = 0; i < 10; i++) {
        assert_int_equal(a[i].finished, 1);
        assert_int_equal(b[i].finished, 1);
        assert_int_equal(b[i].token_after_finish, 0);
        assert_int_equal(a[i].n_tokens, 40);
        assert_int_equal(b[i].n_tokens, 40);
        assert_memory_equal(a[i].tokens, b[i].tokens, 40 * sizeof(uint32_t));
        assert_memory_equal(a[i].tokens, c[i].tokens, 40 * sizeof(uint32_t));
        total_pre += b[i].fin.preemptions;
    }
    assert_int_equal(total_pre, pb);
    free(a);
    free(b);
    free(c);
}

/* ---- cancel ---- */

static void
test_cancel_frees_at_once(void **state)
{
    dw_ts_eng_t         t;
    dw_engine_config_t  c;
    dw_sampling_t       sp = dw_ts_greedy_sp(500);
    uint32_t            p[64], i;
    uint64_t            rs = 3;
    dw_engine_stats_t   st;

    (void) state;
    base_cfg(&c, 4, 256, 64);
    c.max_num_seqs = 2;        /* request 2 waits */
    assert_int_equal(dw_ts_eng_mock(&t, &c, VOCAB, 0, 0), 0);
    for (i = 0; i < 3; i++) {
        rand_prompt(&rs, p, 30);
        assert_int_equal(dw_ts_submit(&t, i, p, 30, &sp), 0);
    }
    for (i = 0; i < 5; i++) {
        assert_int_equal(dw_engine_step(t.e), 1);
    }
    dw_ts_drain(&t);
    dw_engine_stats(t.e, &st);
    assert_int_equal(st.running, 2);
    assert_int_equal(st.waiting, 1);
    assert_true(st.used_blocks > 0);

    dw_engine_cancel(t.e, 0);
    dw_engine_cancel(t.e, 2);      /* still waiting */
    dw_engine_cancel(t.e, 77);     /* unknown: ignored */
    assert_int_equal(dw_engine_step(t.e), 1);
    dw_ts_drain(&t);
    assert_int_equal(t.req[0].finished, 1);
    assert_int_equal(t.req[0].fin.reason, DW_FINISH_CANCELLED);
    assert_int_equal(t.req[2].finished, 1);
    assert_int_equal(t.req[2].fin.reason, DW_FINISH_CANCELLED);
    assert_int_equal(t.req[2].n_tokens, 0);
    assert_int_equal(t.req[1].finished, 0);
    /* only request 1 holds blocks now: 30 + 6 tokens -> 9 or 10 blocks */
    assert_int_equal(t.e->running.n, 1);
    assert_int_equal(t.e->bm.n_used, t.e->running.head->n_blocks);

    dw_engine_cancel(t.e, 1);
    dw_ts_run(&t);
    assert_int_equal(t.req[1].fin.reason, DW_FINISH_CANCELLED);
    for (i = 0; i < 3; i++) {
        assert_int_equal(t.req[i].finished, 1);
        assert_int_equal(t.req[i].token_after_finish, 0);
    }
    assert_pool_idle(t.e);
    dw_ts_eng_close(&t);
}

/* ---- prefix sharing and events ---- */

static void
test_prefix_sharing_forward_tokens(void **state)
{
    dw_ts_eng_t         t;
    dw_engine_config_t  c;
    dw_sampling_t       sp = dw_ts_greedy_sp(1);
    uint32_t            a[20], b[22];
    uint64_t            rs = 11;
    dw_engine_stats_t   st;

    (void) state;
    base_cfg(&c, 4, 64, 64);
    assert_int_equal(dw_ts_eng_mock(&t, &c, VOCAB, 0, 0), 0);
    rand_prompt(&rs, a, 20);
    memcpy(b, a, 16 * sizeof(uint32_t));
    rand_prompt(&rs, b + 16, 6);

    assert_int_equal(dw_ts_submit(&t, 0, a, 20, &sp), 0);
    dw_ts_run(&t);
    dw_engine_stats(t.e, &st);
    assert_true(st.forward_tokens == 20);
    assert_true(st.prefix_hit_tokens == 0);

    /* 4 shared full blocks: only the 6 new tokens are computed */
    assert_int_equal(dw_ts_submit(&t, 1, b, 22, &sp), 0);
    dw_ts_run(&t);
    dw_engine_stats(t.e, &st);
    assert_true(st.forward_tokens == 26);
    assert_true(st.prefix_hit_tokens == 16);
    assert_int_equal(t.req[1].fin.cached_tokens, 16);

    /* the same 20-token prompt again: 4 of its 5 blocks are reused, the
       last block is recomputed so there are logits */
    assert_int_equal(dw_ts_submit(&t, 2, a, 20, &sp), 0);
    dw_ts_run(&t);
    dw_engine_stats(t.e, &st);
    assert_true(st.forward_tokens == 30);
    assert_true(st.prefix_hit_tokens == 32);
    assert_true(st.prefix_query_tokens == 62);
    assert_true(st.prompt_tokens == 62);
    assert_int_equal(t.req[2].fin.cached_tokens, 16);
    /* and the same output, as the mock depends on position and token */
    assert_int_equal(t.req[2].tokens[0], t.req[0].tokens[0]);
    assert_int_equal(t.kv.errors, 0);
    assert_pool_idle(t.e);
    dw_ts_eng_close(&t);
}

static void
test_prefix_caching_off(void **state)
{
    dw_ts_eng_t         t;
    dw_engine_config_t  c;
    dw_sampling_t       sp = dw_ts_greedy_sp(1);
    uint32_t            a[20];
    uint64_t            rs = 11;
    dw_engine_stats_t   st;

    (void) state;
    base_cfg(&c, 4, 64, 64);
    c.prefix_caching = 0;
    assert_int_equal(dw_ts_eng_mock(&t, &c, VOCAB, 0, 0), 0);
    rand_prompt(&rs, a, 20);
    assert_int_equal(dw_ts_submit(&t, 0, a, 20, &sp), 0);
    assert_int_equal(dw_ts_submit(&t, 1, a, 20, &sp), 0);
    dw_ts_run(&t);
    dw_engine_stats(t.e, &st);
    assert_true(st.forward_tokens == 40);
    assert_int_equal(t.kv.events, 0);
    dw_ts_eng_close(&t);
}

static void
test_kv_events_hashes(void **state)
{
    dw_ts_eng_t         t;
    dw_engine_config_t  c;
    dw_sampling_t       sp = dw_ts_greedy_sp(9);
    uint32_t            p[6], all[16], i;
    uint64_t            rs = 5, seq[4], loc[4];
    dw_kv_event_t       ev[16];
    size_t              n;

    (void) state;
    base_cfg(&c, 4, 64, 64);
    assert_int_equal(dw_ts_eng_mock(&t, &c, VOCAB, 0, 0), 0);
    rand_prompt(&rs, p, 6);
    assert_int_equal(dw_ts_submit(&t, 0, p, 6, &sp), 0);

    /* step 1: prefill of 6 tokens: block 0 full -> STORED, no parent */
    assert_int_equal(dw_engine_step(t.e), 1);
    n = dw_engine_drain_kv(t.e, ev, 16);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].type, KVR_EV_STORED);
    assert_int_equal(ev[0].has_parent, 0);
    assert_int_equal(ev[0].n, 1);
    dw_kv_event_free(&ev[0]);

    /* run to the end; 6 + 9 = 15 tokens, 14 computed: blocks 1 and 2 are
       stored as decode fills them, one event each, chained */
    dw_ts_run(&t);
    assert_int_equal(t.req[0].n_tokens, 9);
    memcpy(all, p, 6 * sizeof(uint32_t));
    memcpy(all + 6, t.req[0].tokens, 9 * sizeof(uint32_t));
    assert_int_equal(kvr_hash_blocks(all, 14, 4, kvr_hash_seed(NULL), loc,
                                     seq), 3);
    /* t saw the two decode-time events (step 1's was drained above) */
    assert_int_equal(t.kv.n, 2);
    assert_int_equal(t.kv.stored, 2);
    dw_ts_eng_close(&t);

    /* again, checking every event's content */
    assert_int_equal(dw_ts_eng_mock(&t, &c, VOCAB, 0, 0), 0);
    assert_int_equal(dw_ts_submit(&t, 0, p, 6, &sp), 0);
    while (dw_engine_step(t.e)) {
        /* void */
    }
    n = dw_engine_drain_kv(t.e, ev, 16);
    assert_int_equal(n, 3);
    for (i = 0; i < 3; i++) {
        assert_int_equal(ev[i].type, KVR_EV_STORED);
        assert_int_equal(ev[i].n, 1);
        assert_true(ev[i].blocks[0].seq == seq[i]);
        assert_true(ev[i].blocks[0].local == loc[i]);
        assert_int_equal(ev[i].has_parent, i > 0);
        if (i > 0) {
            assert_true(ev[i].parent == seq[i - 1]);
        }
        dw_kv_event_free(&ev[i]);
    }
    dw_ts_eng_close(&t);
}

static void
test_prefill_event_groups_blocks(void **state)
{
    dw_ts_eng_t         t;
    dw_engine_config_t  c;
    dw_sampling_t       sp = dw_ts_greedy_sp(1);
    uint32_t            p[40];
    uint64_t            rs = 9, seq[10];
    dw_kv_event_t       ev[4];
    size_t              n, i;

    (void) state;
    base_cfg(&c, 4, 64, 64);
    assert_int_equal(dw_ts_eng_mock(&t, &c, VOCAB, 0, 0), 0);
    rand_prompt(&rs, p, 40);
    assert_int_equal(dw_ts_submit(&t, 0, p, 40, &sp), 0);
    while (dw_engine_step(t.e)) {
        /* void */
    }
    kvr_hash_blocks(p, 40, 4, kvr_hash_seed(NULL), NULL, seq);
    n = dw_engine_drain_kv(t.e, ev, 4);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].n, 10);
    for (i = 0; i < 10; i++) {
        assert_true(ev[0].blocks[i].seq == seq[i]);
    }
    dw_kv_event_free(&ev[0]);
    dw_ts_eng_close(&t);
}

/* ---- limits ---- */

/* ---- prefix-cache reset ---- */

static void
test_reset_prefix_cache_idle(void **state)
{
    dw_ts_eng_t         t;
    dw_engine_config_t  c;
    dw_sampling_t       sp = dw_ts_greedy_sp(1);
    uint32_t            a[20], cached;
    uint64_t            rs = 21, events, removed, fwd;
    dw_engine_stats_t   st;

    (void) state;
    base_cfg(&c, 4, 64, 64);
    assert_int_equal(dw_ts_eng_mock(&t, &c, VOCAB, 0, 0), 0);
    rand_prompt(&rs, a, 20);
    assert_int_equal(dw_ts_submit(&t, 0, a, 20, &sp), 0);
    dw_ts_run(&t);
    /* 20 computed tokens: 5 full blocks cached, unreferenced */
    cached = t.e->bm.n_lru;
    assert_int_equal(cached, 5);
    assert_int_equal(t.kv.n, 5);
    events = t.kv.events;
    removed = t.kv.removed;

    assert_int_equal(dw_engine_reset_prefix_cache(t.e, 900), 0);
    assert_int_equal(t.n_resets, 0);         /* at the next step only */
    dw_ts_run(&t);
    assert_int_equal(t.n_resets, 1);
    assert_true(t.reset.req_id == 900);
    assert_int_equal(t.reset.reset_ok, 1);
    assert_int_equal(t.reset.blocks_dropped, cached);
    /* exactly one event, CLEARED, and no REMOVED */
    assert_true(t.kv.events == events + 1);
    assert_int_equal(t.kv.cleared, 1);
    assert_true(t.kv.removed == removed);
    assert_int_equal(t.kv.n, 0);
    assert_int_equal(t.e->bm.n_cached, 0);
    assert_int_equal(t.e->bm.n_lru, 0);
    assert_int_equal(t.e->bm.n_free, 64);
    dw_engine_stats(t.e, &st);
    assert_int_equal(st.cached_blocks, 0);
    fwd = st.forward_tokens;

    /* the same prompt again: no cache hit, all 20 tokens computed, its
       blocks stored anew (no STORED-twice error in the checker) */
    assert_int_equal(dw_ts_submit(&t, 1, a, 20, &sp), 0);
    dw_ts_run(&t);
    dw_engine_stats(t.e, &st);
    assert_int_equal(t.req[1].fin.cached_tokens, 0);
    assert_true(st.prefix_hit_tokens == 0);
    assert_true(st.forward_tokens == fwd + 20);
    assert_int_equal(t.e->bm.n_lru, 5);
    assert_int_equal(t.kv.n, 5);
    assert_int_equal(t.kv.errors, 0);

    /* an empty cache resets too: 0 dropped, CLEARED again */
    assert_int_equal(dw_engine_reset_prefix_cache(t.e, 901), 0);
    assert_int_equal(dw_engine_reset_prefix_cache(t.e, 902), 0);
    dw_ts_run(&t);
    assert_int_equal(t.n_resets, 3);
    assert_true(t.reset.req_id == 902);
    assert_int_equal(t.reset.reset_ok, 1);
    assert_int_equal(t.reset.blocks_dropped, 0);
    assert_int_equal(t.kv.cleared, 3);
    assert_pool_idle(t.e);
    dw_ts_eng_close(&t);
}

static void
test_reset_prefix_cache_busy(void **state)
{
    dw_ts_eng_t         t;
    dw_engine_config_t  c;
    dw_sampling_t       sp1 = dw_ts_greedy_sp(1), sp50 = dw_ts_greedy_sp(50);
    uint32_t            a[20], b[12], lru;
    uint64_t            rs = 23, removed;

    (void) state;
    base_cfg(&c, 4, 64, 64);
    assert_int_equal(dw_ts_eng_mock(&t, &c, VOCAB, 0, 0), 0);
    rand_prompt(&rs, b, 12);
    rand_prompt(&rs, a, 20);
    /* b finishes: 3 cached unreferenced blocks */
    assert_int_equal(dw_ts_submit(&t, 0, b, 12, &sp1), 0);
    dw_ts_run(&t);
    assert_int_equal(t.e->bm.n_lru, 3);
    /* a runs: its 5 prompt blocks are cached and referenced */
    assert_int_equal(dw_ts_submit(&t, 1, a, 20, &sp50), 0);
    assert_int_equal(dw_engine_step(t.e), 1);
    dw_ts_drain(&t);
    assert_int_equal(t.e->bm.n_cached, 8);
    removed = t.kv.removed;

    /* refused: nothing dropped, no event about the cache */
    assert_int_equal(dw_engine_reset_prefix_cache(t.e, 900), 0);
    assert_int_equal(dw_engine_step(t.e), 1);
    dw_ts_drain(&t);
    assert_int_equal(t.n_resets, 1);
    assert_int_equal(t.reset.reset_ok, 0);
    assert_int_equal(t.reset.blocks_dropped, 0);
    assert_int_equal(t.reset.blocks_in_use, 5);
    assert_int_equal(t.e->bm.n_lru, 3);
    assert_int_equal(t.kv.cleared, 0);
    assert_true(t.kv.removed == removed);
    assert_int_equal(t.req[1].finished, 0);

    /* cancel a and reset in the same step: the cancel comes first, so the
       reset finds every cached block unreferenced */
    dw_engine_cancel(t.e, 1);
    assert_int_equal(dw_engine_reset_prefix_cache(t.e, 901), 0);
    assert_int_equal(dw_engine_step(t.e), 1);
    dw_ts_drain(&t);
    assert_int_equal(t.req[1].finished, 1);
    assert_int_equal(t.n_resets, 2);
    assert_int_equal(t.reset.reset_ok, 1);
    lru = t.reset.blocks_dropped;
    assert_true(lru >= 8);          /* b's 3, a's 5 and decoded ones */
    assert_int_equal(t.kv.cleared, 1);
    assert_int_equal(t.kv.n, 0);
    assert_true(t.kv.removed == removed);
    assert_int_equal(t.kv.errors, 0);
    assert_int_equal(t.e->bm.n_free, 64);
    assert_pool_idle(t.e);
    dw_ts_eng_close(&t);
}

static void
test_context_length_and_errors(void **state)
{
    dw_ts_eng_t         t;
    dw_engine_config_t  c;
    dw_sampling_t       sp = dw_ts_greedy_sp(100);
    uint32_t            p[40], i;
    uint64_t            rs = 13;

    (void) state;
    base_cfg(&c, 4, 64, 64);
    c.max_model_len = 16;
    assert_int_equal(dw_ts_eng_mock(&t, &c, VOCAB, 0, 0), 0);
    rand_prompt(&rs, p, 40);

    assert_int_equal(dw_ts_submit(&t, 0, p, 10, &sp), 0);
    dw_ts_run(&t);
    assert_int_equal(t.req[0].n_tokens, 6);
    assert_int_equal(t.req[0].fin.reason, DW_FINISH_LENGTH);

    assert_int_equal(dw_ts_submit(&t, 1, p, 15, &sp), 0);   /* max - 1 */
    assert_int_equal(dw_ts_submit(&t, 2, p, 16, &sp), -1);
    assert_int_equal(dw_ts_submit(&t, 3, p, 0, &sp), -1);
    p[3] = VOCAB;
    assert_int_equal(dw_ts_submit(&t, 4, p, 5, &sp), -1);
    p[3] = 5;
    sp.max_tokens = 0;
    assert_int_equal(dw_ts_submit(&t, 5, p, 5, &sp), -1);
    dw_ts_run(&t);
    assert_int_equal(t.req[1].n_tokens, 1);
    for (i = 2; i < 6; i++) {
        assert_int_equal(t.req[i].finished, 0);
    }
    dw_ts_eng_close(&t);

    /* the pool caps the context: 4 blocks of 4 */
    base_cfg(&c, 4, 4, 64);
    assert_int_equal(dw_ts_eng_mock(&t, &c, VOCAB, 0, 0), 0);
    assert_int_equal(dw_ts_submit(&t, 0, p, 16, &sp), -1);
    sp.max_tokens = 100;
    assert_int_equal(dw_ts_submit(&t, 0, p, 12, &sp), 0);
    dw_ts_run(&t);
    assert_int_equal(t.req[0].n_tokens, 4);
    assert_int_equal(t.req[0].fin.reason, DW_FINISH_LENGTH);
    dw_ts_eng_close(&t);
}

static void
test_stop_ids(void **state)
{
    dw_ts_eng_t         t;
    dw_engine_config_t  c;
    dw_sampling_t       sp = dw_ts_greedy_sp(30);
    uint32_t            p[10], first[30];
    uint64_t            rs = 17;

    (void) state;
    base_cfg(&c, 4, 64, 64);
    assert_int_equal(dw_ts_eng_mock(&t, &c, VOCAB, 0, 0), 0);
    rand_prompt(&rs, p, 10);
    assert_int_equal(dw_ts_submit(&t, 0, p, 10, &sp), 0);
    dw_ts_run(&t);
    assert_int_equal(t.req[0].n_tokens, 30);
    memcpy(first, t.req[0].tokens, sizeof(first));

    /* stop on the 5th token's id (or earlier if it occurs before) */
    sp.n_stop_ids = 2;
    sp.stop_ids[0] = 999999;
    sp.stop_ids[1] = first[4];
    assert_int_equal(dw_ts_submit(&t, 1, p, 10, &sp), 0);
    dw_ts_run(&t);
    assert_int_equal(t.req[1].fin.reason, DW_FINISH_STOP);
    assert_true(t.req[1].n_tokens <= 5);
    assert_int_equal(t.req[1].tokens[t.req[1].n_tokens - 1], first[4]);
    assert_memory_equal(t.req[1].tokens, first,
                        t.req[1].n_tokens * sizeof(uint32_t));
    dw_ts_eng_close(&t);
}

/* ---- a scripted backend: next token = (position * 7) % vocab ---- */

static int
script_forward(dw_backend_t *be, dw_step_t *step)
{
    uint32_t  i, j, r = 0, v = be->cfg.vocab_size, pos;
    float    *row;

    for (i = 0; i < step->n_seqs; i++) {
        if (!step->seqs[i].want_logits) {
            continue;
        }
        pos = step->seqs[i].pos + step->seqs[i].n_tokens;
        row = step->logits + (size_t) r++ * v;
        for (j = 0; j < v; j++) {
            row[j] = 0.0f;
        }
        row[(pos * 7) % v] = 10.0f;
    }
    return 0;
}

static void
script_destroy(dw_backend_t *be)
{
    free(be);
}

static const dw_backend_ops_t  script_ops = {
    "script", script_forward, NULL, NULL, script_destroy, NULL
};

static void
test_eos_and_ignore_eos(void **state)
{
    dw_ts_eng_t         t;
    dw_engine_config_t  c;
    dw_backend_t       *be = calloc(1, sizeof(*be));
    dw_sampling_t       sp = dw_ts_greedy_sp(50);
    uint32_t            p[3] = { 5, 6, 7 };

    (void) state;
    assert_non_null(be);
    be->ops = &script_ops;
    dw_ts_mock_model(&be->cfg, 20);
    be->cfg.eos_ids[0] = 15;    /* position 5: 35 % 20 = 15 */
    base_cfg(&c, 4, 64, 64);
    be->opts.block_size = 4;
    be->opts.n_blocks = 64;
    assert_int_equal(dw_ts_eng_open(&t, &c, be), 0);
    /* tokens at positions 3, 4, 5: 1, 8, 15 (eos) */
    assert_int_equal(dw_ts_submit(&t, 0, p, 3, &sp), 0);
    sp.ignore_eos = 1;
    assert_int_equal(dw_ts_submit(&t, 1, p, 3, &sp), 0);
    dw_ts_run(&t);
    assert_int_equal(t.req[0].fin.reason, DW_FINISH_STOP);
    assert_int_equal(t.req[0].n_tokens, 3);
    assert_int_equal(t.req[0].tokens[0], 1);
    assert_int_equal(t.req[0].tokens[1], 8);
    assert_int_equal(t.req[0].tokens[2], 15);
    assert_int_equal(t.req[1].fin.reason, DW_FINISH_LENGTH);
    assert_int_equal(t.req[1].n_tokens, 50);
    dw_ts_eng_close(&t);
}

/* identical prompts admitted in one step: one STORED per block */
static void
test_same_block_twice_at_once(void **state)
{
    dw_ts_eng_t         t;
    dw_engine_config_t  c;
    dw_sampling_t       sp = dw_ts_greedy_sp(3);
    uint32_t            p[24];
    uint64_t            rs = 23;

    (void) state;
    base_cfg(&c, 4, 64, 64);
    assert_int_equal(dw_ts_eng_mock(&t, &c, VOCAB, 0, 0), 0);
    rand_prompt(&rs, p, 24);
    assert_int_equal(dw_ts_submit(&t, 0, p, 24, &sp), 0);
    assert_int_equal(dw_ts_submit(&t, 1, p, 24, &sp), 0);
    dw_ts_run(&t);
    assert_int_equal(t.kv.errors, 0);
    /* 26 computed tokens: 6 full blocks, each stored once */
    assert_true(t.kv.stored == 6);
    assert_memory_equal(t.req[0].tokens, t.req[1].tokens,
                        3 * sizeof(uint32_t));
    assert_int_equal(t.req[1].fin.cached_tokens, 0);
    assert_pool_idle(t.e);
    dw_ts_eng_close(&t);
}

/*
 * Random submits (shared prefixes), cancels and steps on a small pool:
 * every request finishes once, uncancelled ones with exactly the tokens
 * the same request gives alone on a large pool, the event stream stays
 * consistent and the pool ends idle.
 */
typedef struct {
    uint32_t  p[64];
    uint32_t  n;
    uint32_t  max_tokens;
    int       cancelled;
} rreq_t;

static void
test_random_ops(void **state)
{
    dw_ts_eng_t         t, ref;
    dw_engine_config_t  c, rc_;
    dw_sampling_t       sp;
    rreq_t             *q = calloc(150, sizeof(rreq_t));
    uint32_t            n, i, k, n_req, heads[3][40];
    uint64_t            rs = 99, r, pre = 0;
    uint32_t            n_resets, resets_ok = 0, resets_refused = 0;
    dw_engine_stats_t   st;
    int                 round;

    (void) state;
    assert_non_null(q);
    for (i = 0; i < 3; i++) {
        rand_prompt(&rs, heads[i], 40);
    }
    for (round = 0; round < 4; round++) {
        base_cfg(&c, 4, 24 + 8 * round, 16 + 24 * round);
        c.max_num_seqs = 3 + 4 * round;
        assert_int_equal(dw_ts_eng_mock(&t, &c, VOCAB, 0, 0), 0);
        memset(q, 0, 150 * sizeof(rreq_t));
        n_req = 0;
        n_resets = 0;
        for (k = 0; k < 600; k++) {
            r = dw_splitmix64(&rs);
            if (r % 8 < 2 && n_req < 150) {
                n = 2 + (uint32_t) ((r >> 8) % 60);
                rand_prompt(&rs, q[n_req].p, n);
                if ((r >> 20) % 2) {
                    memcpy(q[n_req].p, heads[(r >> 24) % 3],
                           (n < 40 ? n - 1 : 40) * sizeof(uint32_t));
                }
                q[n_req].n = n;
                q[n_req].max_tokens = 1 + (uint32_t) ((r >> 32) % 25);
                sp = dw_ts_greedy_sp(q[n_req].max_tokens);
                assert_int_equal(dw_ts_submit(&t, n_req, q[n_req].p, n, &sp),
                                 0);
                n_req++;
            } else if (r % 8 == 2 && n_req > 0) {
                i = (uint32_t) ((r >> 8) % n_req);
                q[i].cancelled = 1;
                dw_engine_cancel(t.e, i);
            } else if (r % 64 == 3) {
                assert_int_equal(dw_engine_reset_prefix_cache(t.e, 1000 + k),
                                 0);
                n_resets++;
            } else {
                (void) dw_engine_step(t.e);
                dw_ts_drain(&t);
                assert_true(t.e->bm.n_used + t.e->bm.n_free + t.e->bm.n_lru
                            == t.e->bm.n_blocks);
                /* the event stream's view is the cache, also across
                   resets */
                assert_int_equal(t.kv.n, t.e->bm.n_cached);
            }
        }
        dw_ts_run(&t);
        assert_int_equal(t.kv.errors, 0);
        assert_int_equal(t.kv.n, t.e->bm.n_cached);
        assert_int_equal(t.n_resets, n_resets);
        assert_true(t.kv.cleared == t.n_resets_ok);
        resets_ok += t.n_resets_ok;
        resets_refused += n_resets - t.n_resets_ok;
        dw_engine_stats(t.e, &st);
        pre += st.preemptions;
        /* idle now: a reset succeeds and the stream's view is empty */
        assert_int_equal(dw_engine_reset_prefix_cache(t.e, 999), 0);
        dw_ts_run(&t);
        assert_int_equal(t.reset.reset_ok, 1);
        assert_int_equal(t.reset.blocks_dropped, st.cached_blocks);
        assert_int_equal(t.kv.n, 0);
        assert_int_equal(t.e->bm.n_free, t.e->bm.n_blocks);
        assert_int_equal(t.kv.errors, 0);
        assert_pool_idle(t.e);

        /* the reference: each uncancelled request on a big pool */
        rc_ = c;
        rc_.n_blocks = 1024;
        assert_int_equal(dw_ts_eng_mock(&ref, &rc_, VOCAB, 0, 0), 0);
        for (i = 0; i < n_req; i++) {
            assert_int_equal(t.req[i].finished, 1);
            assert_int_equal(t.req[i].token_after_finish, 0);
            if (t.req[i].fin.reason == DW_FINISH_CANCELLED) {
                assert_true(q[i].cancelled);
                continue;
            }
            assert_int_equal(t.req[i].fin.reason, DW_FINISH_LENGTH);
            sp = dw_ts_greedy_sp(q[i].max_tokens);
            assert_int_equal(dw_ts_submit(&ref, i, q[i].p, q[i].n, &sp), 0);
        }
        dw_ts_run(&ref);
        for (i = 0; i < n_req; i++) {
            if (t.req[i].fin.reason == DW_FINISH_CANCELLED) {
                continue;
            }
            assert_int_equal(t.req[i].n_tokens, q[i].max_tokens);
            assert_int_equal(ref.req[i].n_tokens, q[i].max_tokens);
            assert_memory_equal(t.req[i].tokens, ref.req[i].tokens,
                                q[i].max_tokens * sizeof(uint32_t));
        }
        dw_ts_eng_close(&ref);
        dw_ts_eng_close(&t);
    }
    /* the small pools did preempt; resets during the run were refused
       (something was always running) or succeeded */
    assert_true(pre > 0);
    assert_true(resets_refused > 0);
    printf("random ops: resets during the run: %u succeeded, %u refused\n",
           resets_ok, resets_refused);
    free(q);
}

static void
test_mock_timing_model(void **state)
{
    dw_seq_step_t  ss[3];
    dw_step_t      st;
    uint32_t       tok[100];

    (void) state;
    /* Dynamo's mocker formulas */
    assert_float_equal(dw_backend_mock_prefill_ms(1000),
                       4.209989e-7 * 1e6 + 15.18344 + 16.50142, 1e-6);
    assert_float_equal(dw_backend_mock_decode_ms(0.5),
                       -25.74 * 0.25 + 54.01 * 0.5 + 5.74, 1e-6);
    /* floored at 1 ms: u = 2.2 gives a negative polynomial */
    assert_float_equal(dw_backend_mock_decode_ms(2.2), 1.0, 1e-9);

    /* a step: two prefill chunks (100 from 0, 50 from 200) and one decode:
       the chunks' prefill times summed plus one decode time */
    memset(ss, 0, sizeof(ss));
    memset(tok, 0, sizeof(tok));
    ss[0].tokens = tok;
    ss[0].n_tokens = 1;
    ss[0].pos = 40;
    ss[1].tokens = tok;
    ss[1].n_tokens = 100;
    ss[2].tokens = tok;
    ss[2].n_tokens = 50;
    ss[2].pos = 200;
    memset(&st, 0, sizeof(st));
    st.seqs = ss;
    st.n_seqs = 3;
    st.kv_usage = 0.25f;
    assert_float_equal(dw_backend_mock_step_ms(&st),
                       dw_backend_mock_prefill_ms(100)
                       + dw_backend_mock_prefill_ms(50)
                       + dw_backend_mock_decode_ms(0.25), 1e-6);
    st.n_seqs = 1;      /* decode only */
    assert_float_equal(dw_backend_mock_step_ms(&st),
                       dw_backend_mock_decode_ms(0.25), 1e-6);
    st.seqs = ss + 1;   /* prefill only */
    assert_float_equal(dw_backend_mock_step_ms(&st),
                       dw_backend_mock_prefill_ms(100), 1e-6);
}

static void
test_mock_sleeps(void **state)
{
    dw_ts_eng_t         t;
    dw_engine_config_t  c;
    dw_sampling_t       sp = dw_ts_greedy_sp(10);
    uint32_t            p[100];
    uint64_t            rs = 31;
    struct timespec     a, b;
    double              ms, want;

    (void) state;
    /* speedup 10: 100-token prefill 1.80 ms + 9 decodes of ~0.58 ms */
    base_cfg(&c, 16, 1024, 8192);
    assert_int_equal(dw_ts_eng_mock(&t, &c, VOCAB, 10.0, 0), 0);
    rand_prompt(&rs, p, 100);
    assert_int_equal(dw_ts_submit(&t, 0, p, 100, &sp), 0);
    clock_gettime(CLOCK_MONOTONIC, &a);
    dw_ts_run(&t);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
    want = (dw_backend_mock_prefill_ms(100)
            + 9 * dw_backend_mock_decode_ms(7.0 / 1024)) / 10.0;
    /* never shorter than modelled; a loaded machine may add a little */
    assert_true(ms >= want * 0.99);
    assert_true(ms < want + 50.0);
    assert_int_equal(t.req[0].n_tokens, 10);
    dw_ts_eng_close(&t);
}

/*
 * Engine overhead, reported: 256 sequences of 128 prompt + 200 generated
 * tokens, vocab 128256, mock with no sleeping: the cost per step of
 * scheduling, hashing, block bookkeeping and outputs.
 */
static void
test_overhead_report(void **state)
{
    dw_ts_eng_t         t;
    dw_engine_config_t  c;
    dw_sampling_t       sp = dw_ts_greedy_sp(200);
    dw_engine_stats_t   st;
    uint32_t            p[128], i, j, steps;
    uint64_t            rs = 41;
    struct timespec     a, b;
    double              s_;

    (void) state;
    dw_engine_config_defaults(&c);
    c.n_blocks = 16384;
    c.max_num_seqs = 256;
    assert_int_equal(dw_ts_eng_mock(&t, &c, 128256, 0, 0), 0);
    for (i = 0; i < 256; i++) {
        for (j = 0; j < 128; j++) {
            p[j] = 3 + (uint32_t) (dw_splitmix64(&rs) % 128000);
        }
        assert_int_equal(dw_ts_submit(&t, i, p, 128, &sp), 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &a);
    steps = dw_ts_run(&t);
    clock_gettime(CLOCK_MONOTONIC, &b);
    s_ = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9;
    dw_engine_stats(t.e, &st);
    assert_true(st.generation_tokens == 256 * 200);
    printf("engine overhead: 256 seqs, %u steps, %.1f us/step, "
           "%.2f M tokens/s\n", steps, s_ / steps * 1e6,
           st.generation_tokens / s_ / 1e6);
    dw_ts_eng_close(&t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_decode_first_chunked),
        cmocka_unit_test(test_preemption_same_output),
        cmocka_unit_test(test_cancel_frees_at_once),
        cmocka_unit_test(test_prefix_sharing_forward_tokens),
        cmocka_unit_test(test_prefix_caching_off),
        cmocka_unit_test(test_kv_events_hashes),
        cmocka_unit_test(test_prefill_event_groups_blocks),
        cmocka_unit_test(test_reset_prefix_cache_idle),
        cmocka_unit_test(test_reset_prefix_cache_busy),
        cmocka_unit_test(test_context_length_and_errors),
        cmocka_unit_test(test_stop_ids),
        cmocka_unit_test(test_eos_and_ignore_eos),
        cmocka_unit_test(test_same_block_twice_at_once),
        cmocka_unit_test(test_random_ops),
        cmocka_unit_test(test_mock_timing_model),
        cmocka_unit_test(test_mock_sleeps),
        cmocka_unit_test(test_overhead_report),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
