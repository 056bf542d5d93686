/*
 * Tests for worker selection (kvr_select): one test per rule.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include "kvr_err.h"
#include "kvr_select.h"

static kvr_candidate_t
cand(uint64_t id, uint32_t overlap, uint64_t active, uint64_t queued)
{
    kvr_candidate_t  c;

    c.worker_id = id;
    c.overlap_blocks = overlap;
    c.active_blocks = active;
    c.queued_prefill_tokens = queued;
    return c;
}

static size_t
pick(const kvr_select_params_t *p, const kvr_candidate_t *c, size_t n,
    uint64_t prompt, uint64_t rnd, kvr_choice_t *ch)
{
    kvr_choice_t  tmp;

    if (ch == NULL) {
        ch = &tmp;
    }
    assert_int_equal(kvr_select(p, c, n, prompt, rnd, ch), KVR_OK);
    assert_true(ch->index < n);
    return ch->index;
}

static void
test_defaults(void **state)
{
    kvr_select_params_t  p;

    kvr_select_defaults(&p, 16);
    assert_int_equal(p.block_size, 16);
    assert_true(p.overlap_weight == 1.0);
    assert_true(p.temperature == 0.0);
    assert_true(p.balance_rel == 0.5);
    assert_true(p.balance_abs == 64.0);
    kvr_select_defaults(&p, 64);
    assert_true(p.balance_abs == 16.0);
    kvr_select_defaults(&p, 1000);
    assert_true(p.balance_abs == 2.0);
}

static void
test_cost_formula(void **state)
{
    kvr_select_params_t  p;
    kvr_candidate_t      c = cand(1, 3, 40, 32);
    kvr_choice_t         ch;

    kvr_select_defaults(&p, 16);
    /* 100 tokens = 7 blocks; 3 cached: prefill 52, new blocks 4 */
    assert_true(fabs(kvr_select_cost(&p, &c, 100)
                     - ((32.0 + 52.0) / 16.0 + 40 + 4)) < 1e-12);
    p.overlap_weight = 2.0;
    assert_true(fabs(kvr_select_cost(&p, &c, 100)
                     - (2.0 * (32.0 + 52.0) / 16.0 + 44)) < 1e-12);
    /* overlap beyond the prompt: nothing new, no negative terms */
    c = cand(1, 20, 5, 0);
    kvr_select_defaults(&p, 16);
    assert_true(kvr_select_cost(&p, &c, 100) == 5.0);
    assert_int_equal(pick(&p, &c, 1, 100, 0, &ch), 0);
    assert_true(ch.cost == 5.0);
    assert_int_equal(ch.credited_overlap, 20);
    /* empty prompt */
    assert_true(kvr_select_cost(&p, &c, 0) == 5.0);
}

static void
test_prefix_wins_equal_loads(void **state)
{
    kvr_select_params_t  p;
    kvr_candidate_t      c[4];
    kvr_choice_t         ch;

    kvr_select_defaults(&p, 16);
    c[0] = cand(10, 0, 50, 0);
    c[1] = cand(11, 5, 50, 0);
    c[2] = cand(12, 12, 50, 0);
    c[3] = cand(13, 2, 50, 0);
    assert_int_equal(pick(&p, c, 4, 16 * 20, 99, &ch), 2);
    assert_int_equal(ch.credited_overlap, 12);
    assert_true(ch.cost == 50 + 2 * 8.0);
}

static void
test_load_wins_small_overlap(void **state)
{
    kvr_select_params_t  p;
    kvr_candidate_t      c[2];

    kvr_select_defaults(&p, 16);
    c[0] = cand(1, 1, 100, 0);              /* cost 100 + 2*9 = 118 */
    c[1] = cand(2, 0, 20, 0);               /* cost 20 + 2*10 = 40 */
    assert_int_equal(pick(&p, c, 2, 160, 0, NULL), 1);
    /* queued prefill is load too */
    c[0] = cand(1, 1, 0, 16 * 100);
    c[1] = cand(2, 0, 20, 0);
    assert_int_equal(pick(&p, c, 2, 160, 0, NULL), 1);
    /* a big overlap does win over a little load */
    c[0] = cand(1, 9, 30, 0);               /* 30 + 2 = 32 */
    c[1] = cand(2, 0, 20, 0);               /* 40 */
    assert_int_equal(pick(&p, c, 2, 160, 0, NULL), 0);
}

static void
test_ties_least_loaded(void **state)
{
    kvr_select_params_t  p;
    kvr_candidate_t      c[2];
    kvr_choice_t         ch;
    uint64_t             r;

    kvr_select_defaults(&p, 16);
    /* both cost 30; loads 20 and 10 */
    c[0] = cand(1, 5, 20, 0);
    c[1] = cand(2, 0, 10, 0);
    for (r = 0; r < 8; r++) {
        assert_int_equal(pick(&p, c, 2, 160, r, &ch), 1);
        assert_true(ch.cost == 30.0);
    }
    /* rounding noise in the cost still counts as a tie */
    c[0] = cand(1, 5, 20, 0);
    c[1] = cand(2, 0, 10, 0);
    p.overlap_weight = 1.0 + 1e-15;
    assert_int_equal(pick(&p, c, 2, 160, 0, NULL), 1);

    /* equal cost and load: the larger overlap (weight 0: cost a + nb) */
    kvr_select_defaults(&p, 16);
    p.overlap_weight = 0;
    c[0] = cand(1, 0, 10, 80);              /* cost 20, load 15 */
    c[1] = cand(2, 5, 15, 0);               /* cost 20, load 15 */
    for (r = 0; r < 8; r++) {
        assert_int_equal(pick(&p, c, 2, 160, r, NULL), 1);
    }
}

static void
test_exact_ties_rnd(void **state)
{
    kvr_select_params_t  p;
    kvr_candidate_t      c[4];
    unsigned             seen[4] = { 0 };
    uint64_t             r;
    size_t               i;

    kvr_select_defaults(&p, 16);
    for (i = 0; i < 4; i++) {
        c[i] = cand(i, 3, 7, 0);
    }
    for (r = 0; r < 400; r++) {
        seen[pick(&p, c, 4, 100, r * 0x9e3779b97f4a7c15ULL, NULL)]++;
    }
    for (i = 0; i < 4; i++) {
        assert_true(seen[i] >= 80 && seen[i] <= 120);
    }
    /* a non-tied better one is never displaced by rnd */
    c[2].active_blocks = 6;
    for (r = 0; r < 50; r++) {
        assert_int_equal(pick(&p, c, 4, 100, r, NULL), 2);
    }
}

static void
test_guard_margin(void **state)
{
    kvr_select_params_t  p;
    kvr_candidate_t      c[2];
    kvr_choice_t         ch;
    uint64_t             prompt = 16 * 4000;

    kvr_select_defaults(&p, 16);
    /* min load 100: hot above 100 * 1.5 + 64 = 214 */
    c[1] = cand(2, 0, 100, 0);              /* cost 100 + 8000 = 8100 */

    c[0] = cand(1, 3000, 214, 0);           /* at the margin: credited */
    assert_int_equal(pick(&p, c, 2, prompt, 0, &ch), 0);
    assert_int_equal(ch.credited_overlap, 3000);
    assert_true(ch.cost == 214 + 2000);

    c[0] = cand(1, 3000, 215, 0);           /* past it: no credit */
    assert_int_equal(pick(&p, c, 2, prompt, 0, &ch), 1);
    assert_true(ch.cost == 8100);
    /* queued prefill counts toward the guard's load: 200 + 240/16 = 215 */
    c[0] = cand(1, 3000, 200, 240);
    assert_int_equal(pick(&p, c, 2, prompt, 0, &ch), 1);
    c[0] = cand(1, 3000, 200, 224);         /* 214 */
    assert_int_equal(pick(&p, c, 2, prompt, 0, &ch), 0);

    /* far above the margin: disabled guard (rel < 0) credits it */
    c[0] = cand(1, 3000, 5000, 0);          /* credited: 5000 + 2000 */
    assert_int_equal(pick(&p, c, 2, prompt, 0, &ch), 1);
    p.balance_rel = -1;
    p.balance_abs = -5;                     /* ignored when disabled */
    assert_int_equal(pick(&p, c, 2, prompt, 0, &ch), 0);
    assert_int_equal(ch.credited_overlap, 3000);

    /* abs alone keeps the guard quiet near idle: min load 0, margin 64 */
    kvr_select_defaults(&p, 16);
    c[1] = cand(2, 0, 0, 0);
    c[0] = cand(1, 3000, 64, 0);
    assert_int_equal(pick(&p, c, 2, prompt, 0, &ch), 0);
    assert_int_equal(ch.credited_overlap, 3000);
    c[0] = cand(1, 3000, 65, 0);
    assert_int_equal(pick(&p, c, 2, prompt, 0, &ch), 1);

    /* a hot one never wins at T = 0; drawn at T > 0 it reports no credit */
    p.temperature = 1;
    assert_int_equal(pick(&p, c, 2, prompt, 0, &ch), 0);
    assert_int_equal(ch.credited_overlap, 0);
    assert_true(ch.cost == 65 + 8000);
}

static void
test_temperature_softmax(void **state)
{
    kvr_select_params_t  p;
    kvr_candidate_t      c[3];
    unsigned             seen[3] = { 0 };
    double               w[3], sum = 0, z[3];
    const unsigned       N = 60000;
    uint64_t             r;
    size_t               i;

    kvr_select_defaults(&p, 16);
    p.temperature = 0.5;
    c[0] = cand(0, 0, 10, 0);               /* cost 10 + 20 = 30 */
    c[1] = cand(1, 0, 20, 0);               /* 40 */
    c[2] = cand(2, 0, 50, 0);               /* 70 */
    z[0] = 0;
    z[1] = 10.0 / 40;
    z[2] = 1;
    for (i = 0; i < 3; i++) {
        w[i] = exp(-z[i] / p.temperature);
        sum += w[i];
    }
    for (r = 0; r < N; r++) {
        /* stratified over the 53 bits kvr_select uses */
        seen[pick(&p, c, 3, 160, ((r << 11) * ((1ULL << 53) / N)), NULL)]++;
    }
    for (i = 0; i < 3; i++) {
        assert_true(fabs((double) seen[i] / N - w[i] / sum) < 0.005);
    }

    /* cold: nearly always the best */
    p.temperature = 0.01;
    memset(seen, 0, sizeof(seen));
    for (r = 0; r < 1000; r++) {
        seen[pick(&p, c, 3, 160, r * 0x9e3779b97f4a7c15ULL, NULL)]++;
    }
    assert_true(seen[0] >= 999);

    /* all costs equal: uniform */
    p.temperature = 1;
    c[1] = c[0];
    c[2] = c[0];
    memset(seen, 0, sizeof(seen));
    for (r = 0; r < 3000; r++) {
        seen[pick(&p, c, 3, 160, r * 0x9e3779b97f4a7c15ULL, NULL)]++;
    }
    for (i = 0; i < 3; i++) {
        assert_true(seen[i] > 900 && seen[i] < 1100);
    }
}

static void
test_invalid(void **state)
{
    kvr_select_params_t  p, d;
    kvr_candidate_t      c = cand(1, 0, 0, 0);
    kvr_choice_t         ch;

    kvr_select_defaults(&d, 16);
    assert_int_equal(kvr_select(&d, &c, 0, 10, 0, &ch), KVR_ERR_INVAL);
    assert_int_equal(kvr_select(&d, NULL, 1, 10, 0, &ch), KVR_ERR_INVAL);
    assert_int_equal(kvr_select(&d, &c, 1, 10, 0, NULL), KVR_ERR_INVAL);
    assert_int_equal(kvr_select(NULL, &c, 1, 10, 0, &ch), KVR_ERR_INVAL);

    p = d; p.block_size = 0;
    assert_int_equal(kvr_select(&p, &c, 1, 10, 0, &ch), KVR_ERR_INVAL);
    assert_true(isnan(kvr_select_cost(&p, &c, 10)));
    p = d; p.overlap_weight = -0.1;
    assert_int_equal(kvr_select(&p, &c, 1, 10, 0, &ch), KVR_ERR_INVAL);
    p = d; p.overlap_weight = INFINITY;
    assert_int_equal(kvr_select(&p, &c, 1, 10, 0, &ch), KVR_ERR_INVAL);
    p = d; p.temperature = -1;
    assert_int_equal(kvr_select(&p, &c, 1, 10, 0, &ch), KVR_ERR_INVAL);
    p = d; p.temperature = NAN;
    assert_int_equal(kvr_select(&p, &c, 1, 10, 0, &ch), KVR_ERR_INVAL);
    p = d; p.balance_rel = NAN;
    assert_int_equal(kvr_select(&p, &c, 1, 10, 0, &ch), KVR_ERR_INVAL);
    p = d; p.balance_abs = -1;
    assert_int_equal(kvr_select(&p, &c, 1, 10, 0, &ch), KVR_ERR_INVAL);
    p = d; p.balance_abs = NAN;
    assert_int_equal(kvr_select(&p, &c, 1, 10, 0, &ch), KVR_ERR_INVAL);
    assert_true(isnan(kvr_select_cost(NULL, &c, 10)));
    assert_true(isnan(kvr_select_cost(&d, NULL, 10)));

    /* zero weight is valid: pure load balancing */
    p = d; p.overlap_weight = 0;
    assert_int_equal(kvr_select(&p, &c, 1, 10, 0, &ch), KVR_OK);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_cost_formula),
        cmocka_unit_test(test_prefix_wins_equal_loads),
        cmocka_unit_test(test_load_wins_small_overlap),
        cmocka_unit_test(test_ties_least_loaded),
        cmocka_unit_test(test_exact_ties_rnd),
        cmocka_unit_test(test_guard_margin),
        cmocka_unit_test(test_temperature_softmax),
        cmocka_unit_test(test_invalid),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
