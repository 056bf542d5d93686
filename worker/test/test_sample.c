/*
 * Tests for sampling (dw_sample_int.h): greedy is the argmax, seeds
 * repeat, top_k / top_p / min_p restrict the support to the set an
 * independent computation (a full sort in double) predicts and sample
 * within it in proportion, temperature, the three penalties as defined,
 * logprobs normalised and raw, and a 128K-vocabulary timing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "dw_sample_int.h"
#include "support/dw_tsupport_engine.h"

static dw_sampling_t
sp_temp(float t)
{
    dw_sampling_t  sp;

    dw_sampling_defaults(&sp);
    sp.temperature = t;
    return sp;
}

static uint32_t
draw(dw_sampler_t *s, const float *l, const dw_sampling_t *sp, dw_rng_t *r)
{
    dw_sample_out_t  o;

    dw_sample(s, l, sp, r, NULL, 0, 0, &o);
    return o.token;
}

static void
rand_logits(uint64_t *rs, float *l, uint32_t v, float scale)
{
    uint32_t  i;

    for (i = 0; i < v; i++) {
        l[i] = scale * ((float) (dw_splitmix64(rs) >> 40) / 16777216.0f
                        - 0.5f);
    }
}

static void
test_greedy_is_argmax(void **state)
{
    dw_sampler_t   s;
    dw_rng_t       r;
    float          l[5000];
    uint64_t       rs = 1;
    uint32_t       i, k, best;
    dw_sampling_t  sp = sp_temp(0.0f);

    (void) state;
    assert_int_equal(dw_sampler_init(&s, 5000), 0);
    dw_rng_seed(&r, 1);
    for (k = 0; k < 50; k++) {
        rand_logits(&rs, l, 5000, 20.0f);
        best = 0;
        for (i = 1; i < 5000; i++) {
            best = l[i] > l[best] ? i : best;
        }
        assert_int_equal(draw(&s, l, &sp, &r), best);
    }
    dw_sampler_free(&s);
}

static void
test_seed_determinism(void **state)
{
    dw_sampler_t   s;
    dw_rng_t       r1, r2, r3;
    float          l[1000];
    uint64_t       rs = 2;
    uint32_t       a[200], b[200], c[200], i, same = 0;
    dw_sampling_t  sp = sp_temp(1.0f);

    (void) state;
    assert_int_equal(dw_sampler_init(&s, 1000), 0);
    rand_logits(&rs, l, 1000, 4.0f);
    sp.top_p = 0.9f;
    dw_rng_seed(&r1, 1234);
    dw_rng_seed(&r2, 1234);
    dw_rng_seed(&r3, 1235);
    for (i = 0; i < 200; i++) {
        a[i] = draw(&s, l, &sp, &r1);
    }
    for (i = 0; i < 200; i++) {
        b[i] = draw(&s, l, &sp, &r2);
        c[i] = draw(&s, l, &sp, &r3);
        same += a[i] == c[i];
    }
    assert_memory_equal(a, b, sizeof(a));
    assert_true(same < 100);
    /* fresh seeds differ */
    assert_true(dw_rng_fresh_seed() != dw_rng_fresh_seed());
    dw_sampler_free(&s);
}

/* ---- support sets computed independently ---- */

typedef struct {
    double    p;
    uint32_t  id;
} pid_t_;

static int
cmp_pid(const void *a, const void *b)
{
    const pid_t_  *x = a, *y = b;

    if (x->p != y->p) {
        return x->p < y->p ? 1 : -1;
    }
    return x->id < y->id ? -1 : 1;
}

/*
 * Reference: probabilities at temperature t, top_k, then min_p, then
 * top_p over the renormalised rest; in[] marks the support and p[] holds
 * the final renormalised probabilities.
 */
static uint32_t
reference_support(const float *l, uint32_t v, double t, int top_k,
    double top_p, double min_p, uint8_t *in, double *p)
{
    pid_t_   *a = malloc(v * sizeof(*a));
    double    m = -INFINITY, z = 0, acc, pmax;
    uint32_t  i, n = v;

    for (i = 0; i < v; i++) {
        m = fmax(m, l[i] / t);
    }
    for (i = 0; i < v; i++) {
        a[i].p = exp(l[i] / t - m);
        a[i].id = i;
    }
    qsort(a, v, sizeof(*a), cmp_pid);
    if (top_k > 0 && (uint32_t) top_k < n) {
        n = (uint32_t) top_k;
    }
    pmax = a[0].p;
    for (i = 0; i < n; i++) {
        if (a[i].p < min_p * pmax) {
            break;
        }
    }
    n = i;
    for (i = 0; i < n; i++) {
        z += a[i].p;
    }
    if (top_p < 1.0) {
        acc = 0;
        for (i = 0; i < n; i++) {
            acc += a[i].p;
            if (acc >= top_p * z) {
                i++;
                break;
            }
        }
        n = i;
        z = acc;
    }
    memset(in, 0, v);
    memset(p, 0, v * sizeof(double));
    for (i = 0; i < n; i++) {
        in[a[i].id] = 1;
        p[a[i].id] = a[i].p / z;
    }
    free(a);
    return n;
}

/*
 * Draws n samples; every one must lie in the reference support, and the
 * counts must fit its probabilities (chi-square over the support, with
 * a loose bound, when there are enough draws per token).
 */
static void
check_support(uint32_t v, const float *l, const dw_sampling_t *sp,
    uint32_t n, uint32_t expect_min, uint32_t expect_max)
{
    dw_sampler_t  s;
    dw_rng_t      r;
    uint8_t      *in = malloc(v);
    double       *p = malloc(v * sizeof(double)), chi = 0, e;
    uint32_t     *cnt = calloc(v, sizeof(uint32_t)), i, k, tok, df = 0;

    assert_int_equal(dw_sampler_init(&s, v), 0);
    k = reference_support(l, v, sp->temperature, sp->top_k, sp->top_p,
                          sp->min_p, in, p);
    assert_in_range(k, expect_min, expect_max);
    dw_rng_seed(&r, 99);
    for (i = 0; i < n; i++) {
        tok = draw(&s, l, sp, &r);
        assert_true(tok < v);
        if (!in[tok]) {
            fail_msg("token %u outside the support (%u tokens)", tok, k);
        }
        cnt[tok]++;
    }
    for (i = 0; i < v; i++) {
        if (in[i]) {
            e = p[i] * n;
            chi += (cnt[i] - e) * (cnt[i] - e) / e;
            df++;
        }
    }
    /* mean df - 1, sd sqrt(2 df): 6 sd is never reached by chance; only
       meaningful with enough draws per token */
    if (df > 1 && n >= 5 * df) {
        assert_true(chi < (df - 1) + 6 * sqrt(2.0 * df) + 10);
    }
    dw_sampler_free(&s);
    free(in);
    free(p);
    free(cnt);
}

static void
test_top_k(void **state)
{
    float          l[3000];
    uint64_t       rs = 3;
    dw_sampling_t  sp = sp_temp(1.0f);

    (void) state;
    rand_logits(&rs, l, 3000, 6.0f);
    sp.top_k = 5;
    check_support(3000, l, &sp, 10000, 5, 5);
    sp.top_k = 200;
    sp.temperature = 0.7f;
    check_support(3000, l, &sp, 20000, 200, 200);
}

static void
test_top_p_small_and_exact(void **state)
{
    /* probabilities 0.5 0.3 0.15 0.05 */
    float          l[4] = { logf(0.5f), logf(0.3f), logf(0.15f),
                            logf(0.05f) };
    dw_sampling_t  sp = sp_temp(1.0f);

    (void) state;
    sp.top_p = 0.7f;            /* 0.5 < 0.7 <= 0.8: {0, 1} */
    check_support(4, l, &sp, 20000, 2, 2);
    sp.top_p = 0.85f;           /* {0, 1, 2} */
    check_support(4, l, &sp, 20000, 3, 3);
    sp.top_p = 0.1f;            /* at least one token */
    check_support(4, l, &sp, 1000, 1, 1);
    sp.top_p = 1.0f;
    sp.min_p = 0.2f;            /* p >= 0.1: {0, 1, 2} */
    check_support(4, l, &sp, 20000, 3, 3);
}

static void
test_top_p_large_vocab_widens(void **state)
{
    /* flat-ish logits over 50K: top_p 0.5 needs thousands of tokens, so
       the sorted prefix must widen several times */
    uint32_t       v = 50000;
    float         *l = malloc(v * sizeof(float));
    uint64_t       rs = 4;
    dw_sampling_t  sp = sp_temp(1.0f);

    (void) state;
    rand_logits(&rs, l, v, 2.0f);
    sp.top_p = 0.5f;
    check_support(v, l, &sp, 2000, 5000, 40000);
    /* with top_k and min_p too */
    sp.top_k = 3000;
    sp.min_p = 0.3f;
    sp.top_p = 0.9f;
    check_support(v, l, &sp, 2000, 100, 3000);
    /* min_p alone */
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.8f;
    check_support(v, l, &sp, 2000, 100, 40000);
    free(l);
}

static void
test_temperature(void **state)
{
    float          l[300];
    uint64_t       rs = 5;
    dw_sampling_t  sp = sp_temp(0.5f);

    (void) state;
    rand_logits(&rs, l, 300, 3.0f);
    check_support(300, l, &sp, 50000, 300, 300);
    sp.temperature = 2.0f;
    check_support(300, l, &sp, 50000, 300, 300);
}

/* 1/t overflows float for t below ~3e-39: such temperatures are greedy */
static void
test_tiny_temperature_is_greedy(void **state)
{
    dw_sampler_t   s;
    dw_rng_t       r;
    float          l[300];
    uint64_t       rs = 9;
    uint32_t       i, best = 0;
    dw_sampling_t  sp = sp_temp(1e-40f);

    (void) state;
    rand_logits(&rs, l, 300, 3.0f);
    for (i = 1; i < 300; i++) {
        if (l[i] > l[best]) {
            best = i;
        }
    }
    assert_int_equal(dw_sampler_init(&s, 300), 0);
    dw_rng_seed(&r, 4);
    for (i = 0; i < 100; i++) {
        assert_int_equal(draw(&s, l, &sp, &r), best);
    }
    sp.temperature = 5e-6f;
    assert_int_equal(draw(&s, l, &sp, &r), best);
    dw_sampler_free(&s);
}

/* ---- penalties ---- */

static uint32_t
greedy_with(const float *l, uint32_t v, const dw_sampling_t *sp,
    const uint32_t *toks, uint32_t n_prompt, uint32_t n_out)
{
    dw_sampler_t     s;
    dw_rng_t         r;
    dw_sample_out_t  o;

    assert_int_equal(dw_sampler_init(&s, v), 0);
    dw_rng_seed(&r, 1);
    dw_sample(&s, l, sp, &r, toks, n_prompt, n_out, &o);
    dw_sampler_free(&s);
    return o.token;
}

static void
test_penalties(void **state)
{
    float          pos[4] = { 2.0f, 1.9f, -5, -5 };
    float          neg[4] = { -1.0f, -1.05f, -5, -5 };
    float          pres[4] = { 1.0f, 0.9f, -5, -5 };
    uint32_t       toks[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
    dw_sampling_t  sp = sp_temp(0.0f);

    (void) state;
    /* repetition: 2.0 / 1.1 = 1.82 < 1.9; token 0 only in the prompt */
    assert_int_equal(greedy_with(pos, 4, &sp, toks, 1, 0), 0);
    sp.repetition_penalty = 1.1f;
    assert_int_equal(greedy_with(pos, 4, &sp, toks, 1, 0), 1);
    /* applied once however often the token occurs */
    assert_int_equal(greedy_with(pos, 4, &sp, toks, 4, 4), 1);
    sp.repetition_penalty = 1.04f;        /* 1.92 > 1.9 even for 8 */
    assert_int_equal(greedy_with(pos, 4, &sp, toks, 4, 4), 0);
    /* negative logits are multiplied: -1.1 < -1.05 */
    sp.repetition_penalty = 1.1f;
    assert_int_equal(greedy_with(neg, 4, &sp, toks, 0, 1), 1);
    sp.repetition_penalty = 1.0f;
    assert_int_equal(greedy_with(neg, 4, &sp, toks, 0, 1), 0);

    /* presence: output tokens only */
    sp.presence_penalty = 0.2f;
    assert_int_equal(greedy_with(pres, 4, &sp, toks, 1, 0), 0);
    assert_int_equal(greedy_with(pres, 4, &sp, toks, 0, 1), 1);
    sp.presence_penalty = 0.05f;          /* 0.95 > 0.9, even 3 times */
    assert_int_equal(greedy_with(pres, 4, &sp, toks, 0, 3), 0);
    /* frequency: 3 x 0.04 = 0.12 -> 0.88 < 0.9; 2 x -> 0.92 */
    sp.presence_penalty = 0.0f;
    sp.frequency_penalty = 0.04f;
    assert_int_equal(greedy_with(pres, 4, &sp, toks, 0, 3), 1);
    assert_int_equal(greedy_with(pres, 4, &sp, toks, 0, 2), 0);
    assert_int_equal(greedy_with(pres, 4, &sp, toks, 5, 2), 0);
    /* negative frequency penalty favours repeats */
    sp.frequency_penalty = -1.0f;
    pres[1] = 1.5f;
    assert_int_equal(greedy_with(pres, 4, &sp, toks, 0, 1), 0);
    /* ids outside the vocabulary are ignored, not a crash */
    toks[0] = 1000000;
    sp.repetition_penalty = 1.5f;
    assert_int_equal(greedy_with(pres, 4, &sp, toks, 1, 0), 1);
}

/* ---- logprobs ---- */

static void
test_logprobs(void **state)
{
    dw_sampler_t     s;
    dw_rng_t         r;
    dw_sample_out_t  o;
    float            l[20];
    uint64_t         rs = 6;
    double           z = 0, m = -INFINITY, sum = 0;
    uint32_t         i;
    dw_sampling_t    sp = sp_temp(0.3f);
    uint32_t         toks[1] = { 0 };

    (void) state;
    rand_logits(&rs, l, 20, 8.0f);
    for (i = 0; i < 20; i++) {
        m = fmax(m, l[i]);
    }
    for (i = 0; i < 20; i++) {
        z += exp(l[i] - m);
    }
    assert_int_equal(dw_sampler_init(&s, 20), 0);
    dw_rng_seed(&r, 3);
    sp.logprobs = 20;
    sp.repetition_penalty = 3.0f;      /* must not change logprobs */
    dw_sample(&s, l, &sp, &r, toks, 1, 0, &o);
    assert_int_equal(o.n_top, 20);
    for (i = 0; i < 20; i++) {
        sum += exp(o.top_logprobs[i]);
        assert_float_equal(o.top_logprobs[i],
                           l[o.top_ids[i]] - m - log(z), 1e-5);
        if (i > 0) {
            assert_true(o.top_logprobs[i] <= o.top_logprobs[i - 1]);
        }
    }
    assert_float_equal(sum, 1.0, 1e-5);
    assert_float_equal(o.logprob, l[o.token] - m - log(z), 1e-5);

    sp.logprobs = 3;
    dw_sample(&s, l, &sp, &r, toks, 1, 0, &o);
    assert_int_equal(o.n_top, 3);
    sp.logprobs = 0;
    dw_sample(&s, l, &sp, &r, toks, 1, 0, &o);
    assert_int_equal(o.n_top, 0);
    assert_true(o.logprob <= 0.0f);
    sp.logprobs = -1;
    dw_sample(&s, l, &sp, &r, toks, 1, 0, &o);
    assert_int_equal(o.n_top, 0);
    dw_sampler_free(&s);
}

/* ---- bad logits never give an id outside the vocabulary ---- */

static void
test_nan_and_inf_logits(void **state)
{
    dw_sampler_t     s;
    dw_rng_t         r;
    dw_sample_out_t  o;
    float            l[64];
    uint32_t         i, k;
    dw_sampling_t    sp = sp_temp(1.0f);
    float            fill[3] = { NAN, -INFINITY, INFINITY };

    (void) state;
    assert_int_equal(dw_sampler_init(&s, 64), 0);
    dw_rng_seed(&r, 5);
    for (k = 0; k < 3; k++) {
        for (i = 0; i < 64; i++) {
            l[i] = fill[k];
        }
        sp.min_p = 0.1f;
        sp.top_p = 0.9f;
        sp.top_k = 0;
        sp.logprobs = 5;
        dw_sample(&s, l, &sp, &r, NULL, 0, 0, &o);
        assert_true(o.token < 64);
        sp.top_k = 10;
        dw_sample(&s, l, &sp, &r, NULL, 0, 0, &o);
        assert_true(o.token < 64);
        sp.temperature = 1e-30f;
        dw_sample(&s, l, &sp, &r, NULL, 0, 0, &o);
        assert_true(o.token < 64);
        sp.temperature = 1.0f;
    }
    dw_sampler_free(&s);
}

/* ---- speed for a 128K vocabulary (reported, loosely bounded) ---- */

static double
now_s(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* milliseconds per dw_sample() call over n calls on the same logits */
static double
ms_per_sample(dw_sampler_t *s, const float *l, const dw_sampling_t *sp,
    dw_rng_t *r, uint32_t n)
{
    dw_sample_out_t  o;
    double           t0;
    uint32_t         i;

    t0 = now_s();
    for (i = 0; i < n; i++) {
        dw_sample(s, l, sp, r, NULL, 0, 0, &o);
    }
    return (now_s() - t0) / n * 1e3;
}

static void
test_speed_128k(void **state)
{
    uint32_t         v = 128256, n = 200;
    float           *l = malloc(v * sizeof(float));
    dw_sampler_t     s;
    dw_rng_t         r;
    uint64_t         rs = 8;
    dw_sampling_t    sp = sp_temp(0.8f);
    double           t_greedy, t_topk, t_topp;

    (void) state;
    rand_logits(&rs, l, v, 10.0f);
    assert_int_equal(dw_sampler_init(&s, v), 0);
    dw_rng_seed(&r, 1);

    sp.temperature = 0.0f;
    t_greedy = ms_per_sample(&s, l, &sp, &r, n);

    sp.temperature = 0.8f;
    sp.top_k = 50;
    sp.top_p = 0.9f;
    t_topk = ms_per_sample(&s, l, &sp, &r, n);

    sp.top_k = 0;
    sp.top_p = 0.95f;
    t_topp = ms_per_sample(&s, l, &sp, &r, n);

    printf("sample 128K vocab: greedy %.3f ms, top_k 50 + top_p 0.9 "
           "%.3f ms, top_p 0.95 %.3f ms\n", t_greedy, t_topk, t_topp);
    /* far below a full sort's cost (~10 ms) even on a busy machine */
    assert_true(t_topp < 50.0);
    dw_sampler_free(&s);
    free(l);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_is_argmax),
        cmocka_unit_test(test_seed_determinism),
        cmocka_unit_test(test_top_k),
        cmocka_unit_test(test_top_p_small_and_exact),
        cmocka_unit_test(test_top_p_large_vocab_widens),
        cmocka_unit_test(test_temperature),
        cmocka_unit_test(test_tiny_temperature_is_greedy),
        cmocka_unit_test(test_penalties),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_nan_and_inf_logits),
        cmocka_unit_test(test_speed_128k),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
