/*
 * GPU tests of tensor parallelism (dw_backend_cuda_tp.c) on stories260K:
 * the model split over 2 GPUs (4 and 8 where there are that many; 8 ranks
 * replicate its 4 KV heads) against the same backend on one GPU: the
 * prompt logits within BF16 bounds with the same argmax, the greedy
 * continuation of models/stories260K/README.md (prefilled whole and in
 * chunks, through a shuffled block table) token for token, and a step
 * mixing a decode and a prompt chunk (two logits rows through the
 * all-gather). Skipped without a device or with fewer than 2, saying so.
 * Run from the repository root.
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

#include "dw_backend.h"
#include "support/dw_tsupport_model.h"

static int         n_dev;
static dw_model_t *model;

static dw_backend_t *
make(uint32_t tp)
{
    dw_backend_opts_t  o;
    dw_backend_t      *be;
    char               err[512];

    memset(&o, 0, sizeof(o));
    o.block_size = 4;
    o.n_blocks = 64;
    o.dtype = DW_DT_BF16;
    o.tensor_parallel = tp;
    if (dw_backend_cuda_create(model, &o, &be, err, sizeof(err)) != 0) {
        fail_msg("cuda, --tensor-parallel-size %u: %s", tp, err);
    }
    return be;
}

/* skips (saying why) unless tp GPUs are there */
static void
need(uint32_t tp)
{
    if (n_dev < (int) tp) {
        print_message("--tensor-parallel-size %u: %d CUDA device(s), "
                      "skipped\n", tp, n_dev);
        skip();
    }
}

static int
run1(dw_backend_t *be, const uint32_t *tok, uint32_t n, uint32_t pos,
    const uint32_t *blocks, uint32_t nb, float *logits)
{
    dw_seq_step_t  s = { tok, n, pos, blocks, nb, 1 };
    dw_step_t      st = { &s, 1, n, 1, logits, 0 };

    return be->ops->forward(be, &st);
}

static void
logits_close(const char *what, const float *got, const float *ref,
    uint32_t n)
{
    uint32_t  i;
    float     mx = 0, worst = 0;

    for (i = 0; i < n; i++) {
        mx = fmaxf(mx, fabsf(ref[i]));
        worst = fmaxf(worst, fabsf(got[i] - ref[i]));
    }
    print_message("%s: max |logit diff| %g (max |logit| %g)\n", what, worst,
                  mx);
    /* both BF16; the split changes summation order and adds the
       all-reduce's BF16 roundings: well within what test_cuda_greedy
       allows against F32 */
    assert_true(worst <= 0.05f * mx);
    assert_int_equal(dw_ts_argmax(got, n), dw_ts_argmax(ref, n));
}

/* prompt logits and a mixed step: tp GPUs against one */
static void
logits_case(uint32_t tp)
{
    dw_backend_t   *one, *many;
    uint32_t        V = dw_model_config(model)->vocab_size;
    uint32_t        ba[2] = { 5, 9 }, bb[2] = { 40, 41 };
    uint32_t        tokb[4] = { 1, 403, 407, 261 };
    float          *a = malloc(2 * V * 4), *b = malloc(2 * V * 4);
    dw_seq_step_t   s[2];
    dw_step_t       st;
    char            what[64];
    dw_backend_t   *be[2];
    int             i;

    assert_non_null(a);
    assert_non_null(b);
    one = make(1);
    many = make(tp);
    assert_int_equal(run1(one, dw_ts_stories_prompt, 5, 0, ba, 2, a), 0);
    assert_int_equal(run1(many, dw_ts_stories_prompt, 5, 0, ba, 2, b), 0);
    snprintf(what, sizeof(what), "TP %u prompt logits", tp);
    logits_close(what, b, a, V);

    /* b's first 3 tokens, then one step: b's decode and a's prompt */
    be[0] = one;
    be[1] = many;
    for (i = 0; i < 2; i++) {
        assert_int_equal(run1(be[i], tokb, 3, 0, bb, 2, i ? b : a), 0);
        s[0] = (dw_seq_step_t) { dw_ts_stories_prompt, 5, 0, ba, 2, 1 };
        s[1] = (dw_seq_step_t) { tokb + 3, 1, 3, bb, 2, 1 };
        st = (dw_step_t) { s, 2, 6, 2, i ? b : a, 0 };
        assert_int_equal(be[i]->ops->forward(be[i], &st), 0);
    }
    snprintf(what, sizeof(what), "TP %u mixed step, prompt", tp);
    logits_close(what, b, a, V);
    snprintf(what, sizeof(what), "TP %u mixed step, decode", tp);
    logits_close(what, b + V, a + V, V);
    many->ops->destroy(many);
    one->ops->destroy(one);
    free(a);
    free(b);
}

static void
greedy_case(uint32_t tp)
{
    static const uint32_t  blocks[8] = { 17, 3, 40, 8, 63, 0, 22, 11 };
    static const uint32_t  whole[1] = { 5 }, split[2] = { 2, 3 };
    dw_backend_t          *be = make(tp);
    uint32_t               out[25], i, k;

    for (k = 0; k < 2; k++) {
        assert_int_equal(dw_ts_greedy(be, dw_ts_stories_prompt, 5,
                                      k ? split : whole, k ? 2 : 1, blocks, 8,
                                      out, 25), 0);
        for (i = 0; i < 25; i++) {
            if (out[i] != dw_ts_stories_greedy[i]) {
                fail_msg("TP %u, greedy token %u: %u, the reference says %u",
                         tp, i, out[i], dw_ts_stories_greedy[i]);
            }
        }
    }
    be->ops->destroy(be);
}

static void
test_tp2(void **state)
{
    need(2);
    logits_case(2);
    greedy_case(2);
}

static void
test_tp4(void **state)
{
    need(4);
    logits_case(4);
    greedy_case(4);
}

/* 8 ranks, 4 KV heads: each pair of GPUs keeps a replica of one */
static void
test_tp8_replicated_kv(void **state)
{
    need(8);
    logits_case(8);
    greedy_case(8);
}

/* more than there are: named, nothing started */
static void
test_too_many(void **state)
{
    dw_backend_opts_t  o;
    dw_backend_t      *be = (dw_backend_t *) &o;
    char               err[512], want[128];

    if (n_dev < 1 || n_dev >= 8) {
        skip();
    }
    memset(&o, 0, sizeof(o));
    o.block_size = 4;
    o.n_blocks = 64;
    o.dtype = DW_DT_BF16;
    o.tensor_parallel = 8;
    assert_int_equal(dw_backend_cuda_create(model, &o, &be, err, sizeof(err)),
                     -1);
    assert_null(be);
    snprintf(want, sizeof(want), "cuda backend: --tensor-parallel-size 8 "
             "needs 8 GPUs, %d found", n_dev);
    assert_string_equal(err, want);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_tp2),
        cmocka_unit_test(test_tp4),
        cmocka_unit_test(test_tp8_replicated_kv),
        cmocka_unit_test(test_too_many),
    };
    char  err[512];
    int   rc;

    n_dev = dw_backend_cuda_devices(err, sizeof(err));
    if (n_dev <= 0) {
        printf("test_cuda_tp: %s: every test skipped\n", err);
    } else if (n_dev < 2) {
        printf("test_cuda_tp: %d CUDA device: tensor parallelism needs 2 "
               "or more, those tests skipped\n", n_dev);
    }
    if (n_dev > 0 && dw_model_load(DW_TS_STORIES, &model, err, sizeof(err))
                     != 0)
    {
        printf("test_cuda_tp: load: %s\n", err);
        return 1;
    }
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    dw_model_free(model);
    return rc;
}
