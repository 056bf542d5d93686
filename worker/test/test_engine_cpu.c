/*
 * The engine over the real cpu backend on models/stories260K: greedy
 * "Once upon a time" equals the known-good ids (from the original
 * llama2.c program), alone, inside a busy batch with chunked prefill, and
 * under preemption; a prompt sharing cached blocks computes only the new
 * tokens (exact forward_tokens) and still gives the uncached output;
 * seeded sampling repeats. Run from the repository root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dw_engine_int.h"
#include "support/dw_tsupport_engine.h"
#include "support/dw_tsupport_model.h"

static dw_model_t  *model;

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

static void
open_cpu(dw_ts_eng_t *t, uint32_t n_blocks, uint32_t budget)
{
    dw_engine_config_t  c;
    dw_backend_opts_t   o;
    dw_backend_t       *be;
    char                err[256];

    dw_engine_config_defaults(&c);
    c.n_blocks = n_blocks;
    c.max_num_batched_tokens = budget;
    memset(&o, 0, sizeof(o));
    o.block_size = c.block_size;
    o.n_blocks = n_blocks;
    o.threads = 2;
    if (dw_backend_cpu_create(model, &o, &be, err, sizeof(err)) != 0) {
        fail_msg("cpu backend: %s", err);
    }
    assert_int_equal(dw_ts_eng_open(t, &c, be), 0);
}

/* bos, then ordinary tokens of stories260K's 512 */
static void
rand_prompt(uint64_t *rs, uint32_t *p, uint32_t n)
{
    p[0] = 1;
    dw_ts_rand_ids(rs, p + 1, n - 1, 3, 509);
}

static void
test_greedy_known_good(void **state)
{
    dw_ts_eng_t    t;
    dw_sampling_t  sp = dw_ts_greedy_sp(25);

    (void) state;
    open_cpu(&t, 64, 8192);
    assert_int_equal(dw_ts_submit(&t, 0, dw_ts_stories_prompt, 5, &sp), 0);
    dw_ts_run(&t);
    assert_int_equal(t.req[0].finished, 1);
    assert_int_equal(t.req[0].fin.reason, DW_FINISH_LENGTH);
    assert_int_equal(t.req[0].n_tokens, 25);
    assert_memory_equal(t.req[0].tokens, dw_ts_stories_greedy,
                        25 * sizeof(uint32_t));
    dw_ts_eng_close(&t);
}

/*
 * Eight other requests (prompts of 40..327 tokens, greedy and sampled)
 * around the reference one, token budget 64: prefill is chunked and
 * decodes share steps with other sequences' chunks.
 */
static void
busy_batch(uint32_t n_blocks, uint64_t *preemptions)
{
    dw_ts_eng_t        t;
    dw_sampling_t      sp;
    dw_engine_stats_t  st;
    uint32_t           p[400], i, n;
    uint64_t           rs = 21;

    open_cpu(&t, n_blocks, 64);
    for (i = 0; i < 9; i++) {
        if (i == 4) {
            sp = dw_ts_greedy_sp(25);
            assert_int_equal(dw_ts_submit(&t, i, dw_ts_stories_prompt, 5,
                                          &sp), 0);
            continue;
        }
        n = 40 + 41 * i;
        rand_prompt(&rs, p, n);
        sp = dw_ts_greedy_sp(30);
        if (i % 2) {
            sp.temperature = 0.9f;
            sp.has_seed = 1;
            sp.seed = i;
        }
        sp.ignore_eos = 1;
        assert_int_equal(dw_ts_submit(&t, i, p, n, &sp), 0);
    }
    dw_ts_run(&t);
    for (i = 0; i < 9; i++) {
        assert_int_equal(t.req[i].finished, 1);
        assert_int_equal(t.req[i].token_after_finish, 0);
    }
    assert_int_equal(t.req[4].n_tokens, 25);
    assert_memory_equal(t.req[4].tokens, dw_ts_stories_greedy,
                        25 * sizeof(uint32_t));
    dw_engine_stats(t.e, &st);
    *preemptions = st.preemptions;
    assert_int_equal(st.used_blocks, 0);
    assert_int_equal(t.kv.errors, 0);
    dw_ts_eng_close(&t);
}

static void
test_greedy_in_busy_batch(void **state)
{
    uint64_t  pre;

    (void) state;
    busy_batch(256, &pre);
    assert_true(pre == 0);
    /* 30 blocks of 16 (480 tokens) for ~2000: preemption by recompute */
    busy_batch(30, &pre);
    assert_true(pre > 0);
}

static void
test_prefix_reuse_exact(void **state)
{
    dw_ts_eng_t        t, u;
    dw_sampling_t      sp = dw_ts_greedy_sp(5);
    dw_engine_stats_t  st;
    uint32_t           a[40], b[37];
    uint64_t           rs = 5;

    (void) state;
    rand_prompt(&rs, a, 40);
    memcpy(b, a, 32 * sizeof(uint32_t));
    rand_prompt(&rs, b + 32, 5);
    b[32] = 77;

    open_cpu(&t, 64, 8192);
    assert_int_equal(dw_ts_submit(&t, 0, a, 40, &sp), 0);
    dw_ts_run(&t);
    dw_engine_stats(t.e, &st);
    /* 40 prefill + 4 decodes */
    assert_true(st.forward_tokens == 44);
    assert_int_equal(dw_ts_submit(&t, 1, b, 37, &sp), 0);
    dw_ts_run(&t);
    dw_engine_stats(t.e, &st);
    /* 2 cached blocks: 5 new prompt tokens + 4 decodes */
    assert_true(st.forward_tokens == 53);
    assert_int_equal(t.req[1].fin.cached_tokens, 32);

    /* the same prompt on a fresh engine computes it all, same output */
    open_cpu(&u, 64, 8192);
    assert_int_equal(dw_ts_submit(&u, 1, b, 37, &sp), 0);
    dw_ts_run(&u);
    assert_int_equal(u.req[1].n_tokens, 5);
    assert_memory_equal(u.req[1].tokens, t.req[1].tokens,
                        5 * sizeof(uint32_t));
    dw_ts_eng_close(&u);
    dw_ts_eng_close(&t);
}

static void
test_seeded_sampling_repeats(void **state)
{
    dw_ts_eng_t    t;
    dw_sampling_t  sp = dw_ts_greedy_sp(20);
    uint32_t       i;

    (void) state;
    sp.temperature = 1.0f;
    sp.top_p = 0.95f;
    sp.has_seed = 1;
    sp.seed = 777;
    sp.logprobs = 2;
    open_cpu(&t, 64, 8192);
    assert_int_equal(dw_ts_submit(&t, 0, dw_ts_stories_prompt, 5, &sp), 0);
    assert_int_equal(dw_ts_submit(&t, 1, dw_ts_stories_prompt, 5, &sp), 0);
    sp.seed = 778;
    assert_int_equal(dw_ts_submit(&t, 2, dw_ts_stories_prompt, 5, &sp), 0);
    dw_ts_run(&t);
    assert_memory_equal(t.req[0].tokens, t.req[1].tokens,
                        20 * sizeof(uint32_t));
    assert_memory_not_equal(t.req[0].tokens, t.req[2].tokens,
                            20 * sizeof(uint32_t));
    for (i = 0; i < 20; i++) {
        assert_true(t.req[0].logprobs[i] <= 0.0f);
        assert_true(t.req[0].logprobs[i] > -30.0f);
    }
    dw_ts_eng_close(&t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_known_good),
        cmocka_unit_test(test_greedy_in_busy_batch),
        cmocka_unit_test(test_prefix_reuse_exact),
        cmocka_unit_test(test_seeded_sampling_repeats),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
