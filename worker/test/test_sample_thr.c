/*
 * Tests for the threshold sampler (dw_sample_thr_int.h), the sequential
 * reference of the GPU sampler, against the host sampler dw_sample: the
 * same greedy tokens and logprobs, the same candidate set for top_k,
 * min_p, top_p, their combinations and the penalties (on random logits
 * with many ties; for top_p, ties at the threshold are the documented
 * difference), the same distribution over many seeded draws (chi-square
 * of both against the exact probabilities), seeded determinism and one
 * RNG draw per sampled token; and the penalty list.
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

#include "dw_rand.h"
#include "dw_sample_thr_int.h"

/* logits in [-scale/2, scale/2); quant > 0 rounds them to multiples of
   1/quant (many exact ties) */
static void
rand_logits(uint64_t *rs, float *l, uint32_t v, float scale, float quant)
{
    uint32_t  i;

    for (i = 0; i < v; i++) {
        l[i] = scale * ((float) (dw_splitmix64(rs) >> 40) / 16777216.0f
                        - 0.5f);
        if (quant > 0.0f) {
            l[i] = roundf(l[i] * quant) / quant;
        }
    }
}

static void
rand_tokens(uint64_t *rs, uint32_t *t, uint32_t n, uint32_t v)
{
    uint32_t  i;

    for (i = 0; i < n; i++) {
        /* a small range so tokens repeat (frequency counts > 1) */
        t[i] = (uint32_t) (dw_splitmix64(rs) % (v < 40 ? v : 40));
    }
}

typedef struct {
    float    temperature, top_p, min_p, rp, pp, fp;
    int32_t  top_k;
} cfg_t;

static const cfg_t  cfgs[] = {
    { 1.0f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0 },       /* plain */
    { 0.7f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 5 },       /* top_k */
    { 1.0f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 50 },
    { 1.3f, 1.0f, 0.1f, 1.0f, 0.0f, 0.0f, 0 },       /* min_p */
    { 1.0f, 0.9f, 0.0f, 1.0f, 0.0f, 0.0f, 0 },       /* top_p */
    { 0.5f, 0.3f, 0.0f, 1.0f, 0.0f, 0.0f, 0 },
    { 1.0f, 0.8f, 0.05f, 1.0f, 0.0f, 0.0f, 20 },     /* all three */
    { 1.0f, 1.0f, 0.2f, 1.0f, 0.0f, 0.0f, 10 },
    { 0.9f, 1.0f, 0.0f, 1.3f, 0.4f, 0.2f, 8 },       /* penalties */
    { 1.0f, 1.0f, 0.0f, 0.7f, -0.5f, 0.3f, 0 },
};
#define N_CFG  (sizeof(cfgs) / sizeof(cfgs[0]))

static dw_sampling_t
mk_sp(const cfg_t *c)
{
    dw_sampling_t  sp;

    dw_sampling_defaults(&sp);
    sp.temperature = c->temperature;
    sp.top_p = c->top_p;
    sp.min_p = c->min_p;
    sp.top_k = c->top_k;
    sp.repetition_penalty = c->rp;
    sp.presence_penalty = c->pp;
    sp.frequency_penalty = c->fp;
    return sp;
}

static const uint32_t  vocabs[] = { 1, 7, 1000, 5003 };

static void
test_pen_list(void **state)
{
    uint32_t   tok[300], *count, *pen, n, i, j, c, seen;
    uint64_t   rs = 5;
    uint32_t   v = 64;

    (void) state;
    count = calloc(v, sizeof(uint32_t));
    pen = malloc(2 * v * sizeof(uint32_t));
    assert_non_null(count);
    assert_non_null(pen);
    for (i = 0; i < 300; i++) {
        tok[i] = (uint32_t) (dw_splitmix64(&rs) % 80);   /* some >= v */
    }
    n = dw_sample_pen_list(tok, 120, 180, v, count, pen);
    for (i = 0; i < v; i++) {
        assert_int_equal(count[i], 0);                   /* zero again */
    }
    /* every id < v of the history once, with its output count */
    for (i = 0; i < v; i++) {
        seen = 0;
        c = 0;
        for (j = 0; j < 300; j++) {
            seen |= tok[j] == i;
            c += j >= 120 && tok[j] == i;
        }
        for (j = 0; j < n && pen[2 * j] != i; j++) {
            /* void */
        }
        if (!seen) {
            assert_int_equal(j, n);
            continue;
        }
        assert_true(j < n);
        assert_int_equal(pen[2 * j + 1], c);
    }
    free(count);
    free(pen);
}

/* greedy (temperature 0, tiny, top_k 1), logprobs on every row */
static void
test_greedy_and_logprobs(void **state)
{
    dw_sampler_t     s;
    dw_sample_out_t  a, b;
    dw_rng_t         ra, rb;
    dw_sampling_t    sp;
    float           *l;
    uint32_t         tok[64], vi, k, j, v;
    uint64_t         rs = 11;

    (void) state;
    for (vi = 0; vi < sizeof(vocabs) / sizeof(vocabs[0]); vi++) {
        v = vocabs[vi];
        l = malloc(v * sizeof(float));
        assert_non_null(l);
        assert_int_equal(dw_sampler_init(&s, v), 0);
        for (k = 0; k < 60; k++) {
            rand_logits(&rs, l, v, 16.0f, k % 2 ? 2.0f : 0.0f);
            rand_tokens(&rs, tok, 64, v);
            dw_sampling_defaults(&sp);
            sp.temperature = k % 3 == 0 ? 0.0f : k % 3 == 1 ? 1e-7f : 1.0f;
            sp.top_k = k % 3 == 2 ? 1 : 0;
            sp.logprobs = (int32_t) (k % 22);
            if (k % 4 == 1) {
                sp.repetition_penalty = 1.5f;
                sp.frequency_penalty = 0.3f;
                sp.presence_penalty = 0.2f;
            }
            dw_rng_seed(&ra, k);
            rb = ra;
            dw_sample(&s, l, &sp, &ra, tok, 30, 34, &a);
            dw_sample_thr(&s, l, &sp, &rb, tok, 30, 34, &b);
            assert_int_equal(a.token, b.token);
            assert_memory_equal(&ra, &rb, sizeof(ra));   /* no draw */
            assert_float_equal(a.logprob, b.logprob, 1e-5);
            assert_int_equal(a.n_top, b.n_top);
            j = sp.logprobs > DW_MAX_TOP_LOGPROBS ? DW_MAX_TOP_LOGPROBS
                                                  : (uint32_t) sp.logprobs;
            assert_int_equal(a.n_top, j < v ? j : v);
            for (j = 0; j < a.n_top; j++) {
                assert_int_equal(a.top_ids[j], b.top_ids[j]);
                assert_float_equal(a.top_logprobs[j], b.top_logprobs[j],
                                   1e-5);
            }
        }
        dw_sampler_free(&s);
        free(l);
    }
}

/*
 * Candidate sets: identical, except that for top_p the threshold
 * sampler also keeps tokens tied with the least probable one dw_sample
 * kept (ties at the threshold); without penalties, equal scaled logits
 * are equal logits, which the check uses.
 */
static void
test_sets(void **state)
{
    dw_sampler_t    s;
    dw_sampling_t   sp;
    uint8_t        *ka, *kb;
    float          *l, lmin;
    uint32_t        tok[64], vi, ci, k, i, v, na, nb, extra = 0, same = 0;
    uint64_t        rs = 21;

    (void) state;
    for (vi = 0; vi < sizeof(vocabs) / sizeof(vocabs[0]); vi++) {
        v = vocabs[vi];
        l = malloc(v * sizeof(float));
        ka = malloc(v);
        kb = malloc(v);
        assert_true(l != NULL && ka != NULL && kb != NULL);
        assert_int_equal(dw_sampler_init(&s, v), 0);
        for (ci = 0; ci < N_CFG; ci++) {
            sp = mk_sp(&cfgs[ci]);
            for (k = 0; k < 40; k++) {
                /* ties: quantised logits on even trials */
                rand_logits(&rs, l, v, 12.0f, k % 2 ? 0.0f : 1.0f);
                rand_tokens(&rs, tok, 64, v);
                na = dw_sample_set(&s, l, &sp, tok, 20, 44, ka);
                nb = dw_sample_thr_set(&s, l, &sp, tok, 20, 44, kb);
                assert_true(na >= 1);
                if (sp.top_p >= 1.0f || memcmp(ka, kb, v) == 0) {
                    assert_memory_equal(ka, kb, v);
                    assert_int_equal(na, nb);
                    same++;
                    continue;
                }
                /* top_p: kb = ka + ties of ka's least logit */
                assert_true(sp.repetition_penalty == 1.0f);
                lmin = INFINITY;
                for (i = 0; i < v; i++) {
                    if (ka[i]) {
                        assert_true(kb[i]);
                        lmin = l[i] < lmin ? l[i] : lmin;
                    }
                }
                for (i = 0; i < v; i++) {
                    if (kb[i] && !ka[i]) {
                        assert_true(l[i] == lmin);
                    }
                }
                assert_true(nb > na);
                extra++;
            }
        }
        dw_sampler_free(&s);
        free(l);
        free(ka);
        free(kb);
    }
    print_message("sets: %u identical, %u top_p sets larger by threshold "
                  "ties\n", same, extra);
    assert_true(same > 0);
    assert_true(extra > 0);     /* the tie case was exercised */
}

/*
 * Distribution: many seeded draws from each sampler, each checked by
 * chi-square against the exact probabilities (weights exp(x - max) over
 * the common kept set); the two must also agree with each other.
 */
static void
test_distribution(void **state)
{
    enum { V = 40, N = 200000 };
    dw_sampler_t     s;
    dw_sampling_t    sp;
    dw_sample_out_t  o;
    dw_rng_t         ra, rb;
    uint8_t          ka[V], kb[V];
    float            l[V];
    double           w[V], z, chi_a, chi_b, chi_ab, e, crit;
    uint32_t         ca[V], cb[V], ci, i, n, df;
    uint64_t         rs = 31;

    (void) state;
    assert_int_equal(dw_sampler_init(&s, V), 0);
    for (ci = 0; ci < N_CFG; ci++) {
        if (cfgs[ci].rp != 1.0f || cfgs[ci].pp != 0.0f
            || cfgs[ci].fp != 0.0f)
        {
            continue;       /* penalties: covered by the sets */
        }
        sp = mk_sp(&cfgs[ci]);
        rand_logits(&rs, l, V, 6.0f, 0.0f);
        l[3] = l[7] = l[11];            /* a few ties */
        dw_sample_set(&s, l, &sp, NULL, 0, 0, ka);
        dw_sample_thr_set(&s, l, &sp, NULL, 0, 0, kb);
        assert_memory_equal(ka, kb, V);
        z = 0.0;
        for (i = 0; i < V; i++) {
            w[i] = ka[i] ? exp((double) l[i] / sp.temperature) : 0.0;
            z += w[i];
        }
        memset(ca, 0, sizeof(ca));
        memset(cb, 0, sizeof(cb));
        dw_rng_seed(&ra, 1000 + ci);
        dw_rng_seed(&rb, 2000 + ci);
        for (n = 0; n < N; n++) {
            dw_sample(&s, l, &sp, &ra, NULL, 0, 0, &o);
            assert_true(ka[o.token]);
            ca[o.token]++;
            dw_sample_thr(&s, l, &sp, &rb, NULL, 0, 0, &o);
            assert_true(kb[o.token]);
            cb[o.token]++;
        }
        chi_a = chi_b = chi_ab = 0.0;
        df = 0;
        for (i = 0; i < V; i++) {
            if (!ka[i]) {
                assert_int_equal(ca[i] + cb[i], 0);
                continue;
            }
            e = N * w[i] / z;
            chi_a += (ca[i] - e) * (ca[i] - e) / e;
            chi_b += (cb[i] - e) * (cb[i] - e) / e;
            chi_ab += ((double) ca[i] - cb[i]) * ((double) ca[i] - cb[i])
                      / (ca[i] + cb[i] > 0 ? ca[i] + cb[i] : 1);
            df++;
        }
        /* about the 0.9999 quantile of chi-square with df - 1 degrees */
        crit = (df - 1) + 5.0 * sqrt(2.0 * (df > 1 ? df - 1 : 1)) + 10.0;
        print_message("cfg %u: %u kept, chi2 host %.1f thr %.1f between "
                      "%.1f (crit %.1f)\n", ci, df, chi_a, chi_b, chi_ab,
                      crit);
        assert_true(chi_a < crit);
        assert_true(chi_b < crit);
        assert_true(chi_ab < crit);
    }
    dw_sampler_free(&s);
}

/* same seed: same tokens; one rng step per non-greedy token, none for
   greedy or the NaN corner (as dw_sample) */
static void
test_rng_draws(void **state)
{
    dw_sampler_t     s;
    dw_sampling_t    sp;
    dw_sample_out_t  o1, o2, oh;
    dw_rng_t         r1, r2, rh, before;
    float            l[1000];
    uint32_t         tok[64], ci, k;
    uint64_t         rs = 41;

    (void) state;
    assert_int_equal(dw_sampler_init(&s, 1000), 0);
    for (ci = 0; ci < N_CFG; ci++) {
        sp = mk_sp(&cfgs[ci]);
        dw_rng_seed(&r1, 77 + ci);
        r2 = r1;
        rh = r1;
        for (k = 0; k < 50; k++) {
            rand_logits(&rs, l, 1000, 10.0f, k % 2 ? 0.0f : 2.0f);
            rand_tokens(&rs, tok, 64, 1000);
            before = r1;
            dw_sample_thr(&s, l, &sp, &r1, tok, 10, 54, &o1);
            dw_sample_thr(&s, l, &sp, &r2, tok, 10, 54, &o2);
            dw_sample(&s, l, &sp, &rh, tok, 10, 54, &oh);
            assert_int_equal(o1.token, o2.token);
            (void) dw_rng_next(&before);
            assert_memory_equal(&before, &r1, sizeof(r1));
            assert_memory_equal(&rh, &r1, sizeof(r1));   /* as dw_sample */
        }
    }
    /* greedy: no draw */
    dw_sampling_defaults(&sp);
    sp.temperature = 0.0f;
    before = r1;
    dw_sample_thr(&s, l, &sp, &r1, NULL, 0, 0, &o1);
    assert_memory_equal(&before, &r1, sizeof(r1));
    /* NaN logits: a valid id, no draw (dw_sample's corner) */
    dw_sampling_defaults(&sp);
    for (k = 0; k < 1000; k++) {
        l[k] = NAN;
    }
    before = r1;
    rh = r1;
    dw_sample_thr(&s, l, &sp, &r1, NULL, 0, 0, &o1);
    dw_sample(&s, l, &sp, &rh, NULL, 0, 0, &oh);
    assert_true(o1.token < 1000);
    assert_memory_equal(&before, &r1, sizeof(r1));
    assert_memory_equal(&rh, &r1, sizeof(r1));
    dw_sampler_free(&s);
}

/* the draw is the inverse CDF over kept ids in id order */
static void
test_draw_id_order(void **state)
{
    dw_sampler_t     s;
    dw_sampling_t    sp;
    dw_sample_out_t  o;
    dw_rng_t         r, c;
    uint8_t          kept[300];
    float            l[300];
    double           z, acc, u;
    uint32_t         k, i, want;
    uint64_t         rs = 51;

    (void) state;
    assert_int_equal(dw_sampler_init(&s, 300), 0);
    dw_sampling_defaults(&sp);
    sp.top_k = 40;
    sp.top_p = 0.9f;
    dw_rng_seed(&r, 9);
    for (k = 0; k < 200; k++) {
        rand_logits(&rs, l, 300, 8.0f, 0.0f);
        dw_sample_thr_set(&s, l, &sp, NULL, 0, 0, kept);
        c = r;
        u = dw_rng_uniform(&c);
        dw_sample_thr(&s, l, &sp, &r, NULL, 0, 0, &o);
        /* weights exp(x - max) as the sampler computes them (T = 1) */
        {
            float  m = l[0];

            for (i = 1; i < 300; i++) {
                m = l[i] > m ? l[i] : m;
            }
            z = 0.0;
            for (i = 0; i < 300; i++) {
                z += kept[i] ? (double) expf(l[i] - m) : 0.0;
            }
            u *= z;
            acc = 0.0;
            want = UINT32_MAX;
            for (i = 0; i < 300 && want == UINT32_MAX; i++) {
                if (kept[i]) {
                    acc += expf(l[i] - m);
                    if (u < acc) {
                        want = i;
                    }
                }
            }
        }
        assert_int_equal(o.token, want);
    }
    dw_sampler_free(&s);
}

/* NaN and infinite logits: a valid id whatever the settings */
static void
test_nonfinite(void **state)
{
    dw_sampler_t     s;
    dw_sampling_t    sp;
    dw_sample_out_t  o;
    dw_rng_t         r;
    float            l[64], fill[3] = { NAN, -INFINITY, INFINITY };
    uint32_t         i, k, c;

    (void) state;
    assert_int_equal(dw_sampler_init(&s, 64), 0);
    dw_rng_seed(&r, 5);
    for (k = 0; k < 3; k++) {
        for (i = 0; i < 64; i++) {
            l[i] = fill[k];
        }
        l[k * 7] = 1.0f;          /* and one finite value among them */
        for (c = 0; c < N_CFG; c++) {
            sp = mk_sp(&cfgs[c]);
            sp.logprobs = 5;
            dw_sample_thr(&s, l, &sp, &r, NULL, 0, 0, &o);
            assert_true(o.token < 64);
            assert_true(o.n_top <= 5);
            for (i = 0; i < o.n_top; i++) {
                assert_true(o.top_ids[i] < 64);
            }
        }
    }
    dw_sampler_free(&s);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_pen_list),
        cmocka_unit_test(test_greedy_and_logprobs),
        cmocka_unit_test(test_sets),
        cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_rng_draws),
        cmocka_unit_test(test_draw_id_order),
        cmocka_unit_test(test_nonfinite),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
