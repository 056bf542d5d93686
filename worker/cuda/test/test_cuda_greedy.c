/*
 * GPU tests of the cuda backend end to end on stories260K against the
 * cpu backend (F32), once per storage type on the device (--dtype bf16,
 * f16, f32: a cmocka group each): the logits of a prompt, both stepped
 * in lockstep, the greedy continuation of "Once upon a time"
 * (models/stories260K/README.md) prefilled whole and in chunks through a
 * shuffled block table, and a step mixing a decode with a prompt chunk
 * (the backend reorders rows). With F32 storage the math is the cpu's up
 * to summation order: logits within 1e-4 of the largest, the same argmax
 * at every step, no near ties allowed. Skipped when no CUDA device is
 * present. Run from the repository root.
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

typedef struct {
    dw_model_t    *m;
    dw_backend_t  *cpu, *cu;
    const char    *name;       /* the storage type */
    float          tol;        /* logits: max |diff| <= tol * max |logit| */
    float          tie;        /* lockstep: a near tie, of max |logit|;
                                  0: the argmax must be the same */
} fix_t;

static int   have_dev;
static char  no_dev[512];

static int
setup(void **state, dw_dtype_t dt)
{
    fix_t             *f;
    char               err[512];
    dw_backend_opts_t  o;

    if (!have_dev) {
        *state = NULL;
        return 0;
    }
    f = calloc(1, sizeof(*f));
    assert_non_null(f);
    if (dw_model_load(DW_TS_STORIES, &f->m, err, sizeof(err)) != 0) {
        fail_msg("load: %s", err);
    }
    memset(&o, 0, sizeof(o));
    o.block_size = 4;              /* blocks smaller than any tile */
    o.n_blocks = 64;
    o.threads = 2;
    o.dtype = DW_DT_BF16;         /* the cpu backend's is F32 whatever */
    if (dw_backend_cpu_create(f->m, &o, &f->cpu, err, sizeof(err)) != 0) {
        fail_msg("cpu: %s", err);
    }
    o.dtype = dt;
    if (dw_backend_cuda_create(f->m, &o, &f->cu, err, sizeof(err)) != 0) {
        fail_msg("cuda: %s", err);
    }
    switch (dt) {
    case DW_DT_BF16:
        /* BF16 weights and activations through 5 layers: a few percent */
        f->name = "bf16";
        f->tol = 0.05f;
        f->tie = 0.02f;
        break;
    case DW_DT_F16:
        /* 3 more mantissa bits than BF16: 8 times less */
        f->name = "f16";
        f->tol = 0.05f / 8;
        f->tie = 0.02f / 8;
        break;
    default:
        f->name = "f32";
        f->tol = 1e-4f;
        f->tie = 0;
    }
    *state = f;
    return 0;
}

static int
setup_bf16(void **state)
{
    return setup(state, DW_DT_BF16);
}

static int
setup_f16(void **state)
{
    return setup(state, DW_DT_F16);
}

static int
setup_f32(void **state)
{
    return setup(state, DW_DT_F32);
}

static int
teardown(void **state)
{
    fix_t  *f = *state;

    if (f != NULL) {
        f->cu->ops->destroy(f->cu);
        f->cpu->ops->destroy(f->cpu);
        dw_model_free(f->m);
        free(f);
    }
    return 0;
}

/* one sequence's chunk; logits out */
static int
run1(dw_backend_t *be, const uint32_t *tok, uint32_t n, uint32_t pos,
    const uint32_t *blocks, uint32_t nb, float *logits)
{
    dw_seq_step_t  s = { tok, n, pos, blocks, nb, 1 };
    dw_step_t      st = { &s, 1, n, 1, logits, 0 };

    return be->ops->forward(be, &st);
}

static void
logits_close(const fix_t *f, const char *what, const float *got,
    const float *ref, uint32_t n)
{
    uint32_t  i;
    float     mx = 0, worst = 0;

    for (i = 0; i < n; i++) {
        mx = fmaxf(mx, fabsf(ref[i]));
    }
    for (i = 0; i < n; i++) {
        worst = fmaxf(worst, fabsf(got[i] - ref[i]));
    }
    print_message("%s %s: max |logit diff| %g (max |logit| %g)\n", f->name,
                  what, worst, mx);
    assert_true(worst <= f->tol * mx);
    assert_int_equal(dw_ts_argmax(got, n), dw_ts_argmax(ref, n));
}

static void
test_logits(void **state)
{
    fix_t     *f = *state;
    uint32_t   V, blocks[2] = { 5, 9 };
    float     *a, *b;

    if (!have_dev) {
        skip();
    }
    V = dw_model_config(f->m)->vocab_size;
    a = malloc(V * 4);
    b = malloc(V * 4);
    assert_int_equal(run1(f->cpu, dw_ts_stories_prompt, 5, 0, blocks, 2, a),
                     0);
    assert_int_equal(run1(f->cu, dw_ts_stories_prompt, 5, 0, blocks, 2, b),
                     0);
    logits_close(f, "prompt logits", b, a, V);
    free(a);
    free(b);
}

static void
greedy_case(fix_t *f, const uint32_t *chunks, uint32_t n_chunks)
{
    /* 5 + 25 tokens in blocks of 4: 8 blocks, shuffled */
    static const uint32_t  blocks[8] = { 17, 3, 40, 8, 63, 0, 22, 11 };
    uint32_t               out[25], i;

    assert_int_equal(dw_ts_greedy(f->cu, dw_ts_stories_prompt, 5, chunks,
                                  n_chunks, blocks, 8, out, 25), 0);
    for (i = 0; i < 25; i++) {
        if (out[i] != dw_ts_stories_greedy[i]) {
            fail_msg("%s: greedy token %u: %u, the reference says %u",
                     f->name, i, out[i], dw_ts_stories_greedy[i]);
        }
    }
}

static void
test_greedy(void **state)
{
    static const uint32_t  whole[1] = { 5 }, split[2] = { 2, 3 };
    static const uint32_t  ones[5] = { 1, 1, 1, 1, 1 };

    if (!have_dev) {
        skip();
    }
    greedy_case(*state, whole, 1);
    greedy_case(*state, split, 2);
    greedy_case(*state, ones, 5);       /* prompt through the decode path */
}

/*
 * Step by step with the cpu backend, both fed the cpu's greedy token
 * (teacher forcing, so one flip does not derail the rest): at every step
 * the argmax is the same, or (BF16, F16) the cpu's two candidates are
 * within the storage type's noise of each other (a near tie, reported);
 * F32 storage allows no tie.
 */
static void
test_lockstep(void **state)
{
    fix_t          *f = *state;
    static const uint32_t  blocks[8] = { 2, 60, 33, 7, 19, 48, 1, 25 };
    uint32_t        V, i, pos, tok, a, b, ties = 0;
    float          *lc, *lg, mx;

    if (!have_dev) {
        skip();
    }
    V = dw_model_config(f->m)->vocab_size;
    lc = malloc(V * 4);
    lg = malloc(V * 4);
    assert_int_equal(run1(f->cpu, dw_ts_stories_prompt, 5, 0, blocks, 8, lc),
                     0);
    assert_int_equal(run1(f->cu, dw_ts_stories_prompt, 5, 0, blocks, 8, lg),
                     0);
    for (i = 0, pos = 5; i < 25; i++, pos++) {
        a = dw_ts_argmax(lc, V);
        b = dw_ts_argmax(lg, V);
        mx = 0;
        for (tok = 0; tok < V; tok++) {
            mx = fmaxf(mx, fabsf(lc[tok]));
        }
        if (a != b) {
            print_message("%s step %u: cpu %u (%g), cuda %u (cpu gives it "
                          "%g)\n", f->name, i, a, lc[a], b, lc[b]);
            if (f->tie == 0) {
                fail_msg("%s step %u: the argmax differs", f->name, i);
            }
            assert_true(lc[a] - lc[b] <= f->tie * mx);
            ties++;
        }
        if (i == 24) {
            break;
        }
        tok = a;
        assert_int_equal(run1(f->cpu, &tok, 1, pos, blocks, 8, lc), 0);
        assert_int_equal(run1(f->cu, &tok, 1, pos, blocks, 8, lg), 0);
    }
    print_message("%s lockstep: %u near ties in 25 steps\n", f->name,
                  ties);
    free(lc);
    free(lg);
}

/* A decode and a prompt chunk in one step give each what it gets alone. */
static void
test_mixed_step(void **state)
{
    fix_t          *f = *state;
    uint32_t        V, ba[2] = { 30, 31 }, bb[2] = { 40, 41 };
    uint32_t        tokb[4] = { 1, 403, 407, 261 };
    float          *alone_a, *alone_b, *both;
    dw_seq_step_t   s[2];
    dw_step_t       st;

    if (!have_dev) {
        skip();
    }
    V = dw_model_config(f->m)->vocab_size;
    alone_a = malloc(V * 4);
    alone_b = malloc(V * 4);
    both = malloc(2 * V * 4);
    /* alone: a = the 5-token prompt; b = 3 tokens, then a decode */
    assert_int_equal(run1(f->cu, dw_ts_stories_prompt, 5, 0, ba, 2, alone_a),
                     0);
    assert_int_equal(run1(f->cu, tokb, 3, 0, bb, 2, alone_b), 0);
    assert_int_equal(run1(f->cu, tokb + 3, 1, 3, bb, 2, alone_b), 0);
    /* together, b's decode listed after a's prompt (rows reordered) */
    assert_int_equal(run1(f->cu, tokb, 3, 0, bb, 2, both), 0);
    s[0] = (dw_seq_step_t) { dw_ts_stories_prompt, 5, 0, ba, 2, 1 };
    s[1] = (dw_seq_step_t) { tokb + 3, 1, 3, bb, 2, 1 };
    st = (dw_step_t) { s, 2, 6, 2, both, 0 };
    assert_int_equal(f->cu->ops->forward(f->cu, &st), 0);
    logits_close(f, "prompt in a mixed step", both, alone_a, V);
    logits_close(f, "decode in a mixed step", both + V, alone_b, V);
    free(alone_a);
    free(alone_b);
    free(both);
}

#define DTYPE_TESTS  \
    cmocka_unit_test(test_logits),      \
    cmocka_unit_test(test_lockstep),    \
    cmocka_unit_test(test_greedy),      \
    cmocka_unit_test(test_mixed_step)

int
main(void)
{
    const struct CMUnitTest  bf16[] = { DTYPE_TESTS };
    const struct CMUnitTest  f16[] = { DTYPE_TESTS };
    const struct CMUnitTest  f32[] = { DTYPE_TESTS };
    int                      failed = 0;

    have_dev = dw_backend_cuda_devices(no_dev, sizeof(no_dev)) > 0;
    if (!have_dev) {
        printf("test_cuda_greedy: %s: every test skipped\n", no_dev);
    }
    failed += cmocka_run_group_tests(bf16, setup_bf16, teardown);
    failed += cmocka_run_group_tests(f16, setup_f16, teardown);
    failed += cmocka_run_group_tests(f32, setup_f32, teardown);
    return failed != 0;
}
