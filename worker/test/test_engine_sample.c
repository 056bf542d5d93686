/*
 * The engine's backend-sampling path (dw_backend_ops_t.sample), the one
 * the cuda backend takes, on the host: the cpu backend with
 * opts.sample_on_backend samples with the threshold sampler
 * (dw_sample_thr) after its forward. On models/stories260K: greedy output
 * and logprobs identical to the host-sampler path in a busy batch (the
 * known-good continuation included), seeded sampling repeats with the
 * same token counts, and every sampled token advances the sequence's own
 * RNG by exactly one draw (greedy: none). Run from the repository root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
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

/* the sample op wrapped: checks one rng draw per non-greedy row */
static dw_backend_ops_t  wrap_ops;
static int             (*inner_sample)(dw_backend_t *, dw_step_t *,
                                       const dw_sample_row_t *,
                                       dw_sample_out_t *);
static uint64_t          rows_seen, draws_seen, bad_draws;

static int
wrap_sample(dw_backend_t *be, dw_step_t *st, const dw_sample_row_t *rows,
    dw_sample_out_t *out)
{
    dw_rng_t  before[64];
    uint32_t  i;
    int       rc, greedy;

    assert_true(st->n_logits <= 64);
    for (i = 0; i < st->n_logits; i++) {
        before[i] = *rows[i].rng;
    }
    rc = inner_sample(be, st, rows, out);
    for (i = 0; i < st->n_logits; i++) {
        greedy = !(rows[i].sp->temperature >= DW_SAMPLING_EPS)
                 || rows[i].sp->top_k == 1;
        if (!greedy) {
            (void) dw_rng_next(&before[i]);
            draws_seen++;
        }
        bad_draws += memcmp(&before[i], rows[i].rng, sizeof(dw_rng_t)) != 0;
        rows_seen++;
    }
    return rc;
}

static void
open_cpu(dw_ts_eng_t *t, int on_backend)
{
    dw_engine_config_t  c;
    dw_backend_opts_t   o;
    dw_backend_t       *be;
    char                err[256];

    dw_engine_config_defaults(&c);
    c.n_blocks = 256;
    c.max_num_batched_tokens = 64;       /* chunked prefill, mixed steps */
    memset(&o, 0, sizeof(o));
    o.block_size = c.block_size;
    o.n_blocks = c.n_blocks;
    o.threads = 2;
    o.sample_on_backend = on_backend;
    if (dw_backend_cpu_create(model, &o, &be, err, sizeof(err)) != 0) {
        fail_msg("cpu backend: %s", err);
    }
    if (on_backend) {
        assert_non_null(be->ops->sample);
        wrap_ops = *be->ops;
        inner_sample = be->ops->sample;
        wrap_ops.sample = wrap_sample;
        be->ops = &wrap_ops;
    } else {
        assert_null(be->ops->sample);     /* not the default */
    }
    assert_int_equal(dw_ts_eng_open(t, &c, be), 0);
}

#define N_REQ  6

/* request i: greedy for even i (logprobs 3), seeded sampling for odd */
static void
run_batch(dw_ts_eng_t *t, int on_backend, uint64_t seed_base)
{
    uint32_t       p[N_REQ][200], n, i;
    uint64_t       rs = 42;
    dw_sampling_t  sp;

    open_cpu(t, on_backend);
    for (i = 0; i < N_REQ; i++) {
        if (i == 0) {
            n = 5;
            memcpy(p[0], dw_ts_stories_prompt, 5 * sizeof(uint32_t));
        } else {
            n = 20 + 30 * i;
            p[i][0] = 1;
            dw_ts_rand_ids(&rs, p[i] + 1, n - 1, 3, 509);
        }
        if (i % 2 == 0) {
            sp = dw_ts_greedy_sp(25);
            sp.logprobs = 3;
        } else {
            dw_sampling_defaults(&sp);
            sp.max_tokens = 30;
            sp.ignore_eos = 1;
            sp.temperature = 0.9f;
            sp.top_k = 40;
            sp.top_p = 0.95f;
            sp.repetition_penalty = 1.1f;
            sp.has_seed = 1;
            sp.seed = seed_base + i;
        }
        assert_int_equal(dw_ts_submit(t, i, p[i], n, &sp), 0);
    }
    dw_ts_run(t);
    for (i = 0; i < N_REQ; i++) {
        assert_int_equal(t->req[i].finished, 1);
    }
}

static void
test_greedy_same_as_host_path(void **state)
{
    dw_ts_eng_t  a, b;
    uint32_t     i, j;

    (void) state;
    run_batch(&a, 0, 1000);
    rows_seen = draws_seen = bad_draws = 0;
    run_batch(&b, 1, 1000);
    assert_true(rows_seen > 0);
    assert_int_equal(bad_draws, 0);
    assert_memory_equal(b.req[0].tokens, dw_ts_stories_greedy,
                        25 * sizeof(uint32_t));
    for (i = 0; i < N_REQ; i += 2) {
        assert_int_equal(a.req[i].n_tokens, b.req[i].n_tokens);
        assert_memory_equal(a.req[i].tokens, b.req[i].tokens,
                            a.req[i].n_tokens * sizeof(uint32_t));
        for (j = 0; j < a.req[i].n_tokens; j++) {
            assert_float_equal(a.req[i].logprobs[j], b.req[i].logprobs[j],
                               1e-5);
        }
    }
    /* the sampled ones: the same number of tokens (ignore_eos) */
    for (i = 1; i < N_REQ; i += 2) {
        assert_int_equal(a.req[i].n_tokens, 30);
        assert_int_equal(b.req[i].n_tokens, 30);
    }
    dw_ts_eng_close(&a);
    dw_ts_eng_close(&b);
}

static void
test_seeded_repeats(void **state)
{
    dw_ts_eng_t  a, b, c;
    uint32_t     i, differ = 0;

    (void) state;
    rows_seen = draws_seen = bad_draws = 0;
    run_batch(&a, 1, 7000);
    run_batch(&b, 1, 7000);
    run_batch(&c, 1, 9000);
    assert_int_equal(bad_draws, 0);
    /* 3 runs x 3 sampled requests x 30 tokens, one draw each */
    assert_int_equal(draws_seen, 3 * 3 * 30);
    for (i = 1; i < N_REQ; i += 2) {
        assert_int_equal(a.req[i].n_tokens, b.req[i].n_tokens);
        assert_memory_equal(a.req[i].tokens, b.req[i].tokens,
                            a.req[i].n_tokens * sizeof(uint32_t));
        differ += memcmp(a.req[i].tokens, c.req[i].tokens,
                         30 * sizeof(uint32_t)) != 0;
    }
    assert_true(differ > 0);         /* another seed, another stream */
    dw_ts_eng_close(&a);
    dw_ts_eng_close(&b);
    dw_ts_eng_close(&c);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_greedy_same_as_host_path),
        cmocka_unit_test(test_seeded_repeats),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
