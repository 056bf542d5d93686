/*
 * Tests for db_stats.h against numpy's definitions: np.mean, np.median,
 * np.std (population, ddof 0) and np.percentile (method "linear": index
 * (n - 1) * p / 100 between the neighbours). Expected values are worked
 * out by hand from those formulas; the two bit-exact cases (pairwise
 * summation, numpy's _lerp) give the value numpy 1.24 prints.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <cmocka.h>

#include "db_stats.h"

#define EPS 1e-12

/* cmocka 1.1.5 (Debian 12) has no assert_double_equal */
#define assert_near(got, want, eps) do {                                \
        double g_ = (got), w_ = (want);                                 \
        if (!(fabs(g_ - w_) <= (eps)))                                  \
            fail_msg("%s = %.17g, want %.17g", #got, g_, w_);           \
    } while (0)

static void test_four(void **st)
{
    /* [1,2,3,4] given unsorted: mean 2.5, median (2+3)/2, std
     * sqrt((2.25+0.25+0.25+2.25)/4) = sqrt(1.25); p90: index 2.7 ->
     * 3 + 0.7 * (4 - 3) = 3.7; p99: index 2.97 -> 3.97; p0 and p100 are
     * the ends. */
    double v[] = { 4, 1, 3, 2 };
    double p[] = { 0, 50, 90, 99, 100 };
    db_dist_t d;
    db_dist_compute(v, 4, p, 5, &d);
    assert_int_equal(d.n, 4);
    assert_near(d.mean, 2.5, EPS);
    assert_near(d.median, 2.5, EPS);
    assert_near(d.std, sqrt(1.25), EPS);
    assert_near(d.min, 1, 0);
    assert_near(d.max, 4, 0);
    assert_int_equal(d.n_pct, 5);
    assert_near(d.pct[0], 1.0, EPS);
    assert_near(d.pct[1], 2.5, EPS);
    assert_near(d.pct[2], 3.7, EPS);
    assert_near(d.pct[3], 3.97, EPS);
    assert_near(d.pct[4], 4.0, EPS);
    /* sorted in place */
    assert_near(v[0], 1, 0);
    assert_near(v[3], 4, 0);
}

static void test_odd(void **st)
{
    /* [3,1,2,10,7.5]: mean 23.5/5 = 4.7; sorted 1,2,3,7.5,10: median 3;
     * deviations -3.7,-2.7,-1.7,2.8,5.3 squared sum to
     * 13.69+7.29+2.89+7.84+28.09 = 59.8: std sqrt(11.96);
     * p90: index 3.6 -> 7.5 + 0.6 * 2.5 = 9; p99: index 3.96 -> 9.9;
     * p99.9: index 3.996 -> 9.99; p25: index 1 -> 2. */
    double v[] = { 3, 1, 2, 10, 7.5 };
    double p[] = { 25, 90, 99, 99.9 };
    db_dist_t d;
    db_dist_compute(v, 5, p, 4, &d);
    assert_near(d.mean, 4.7, EPS);
    assert_near(d.median, 3, 0);
    assert_near(d.std, sqrt(11.96), EPS);
    assert_near(d.pct[0], 2, EPS);
    assert_near(d.pct[1], 9, EPS);
    assert_near(d.pct[2], 9.9, EPS);
    assert_near(d.pct[3], 9.99, 1e-9);
}

static void test_one_and_empty(void **st)
{
    double v[] = { 7 };
    double p[] = { 50, 99 };
    db_dist_t d;
    db_dist_compute(v, 1, p, 2, &d);
    assert_near(d.mean, 7, 0);
    assert_near(d.median, 7, 0);
    assert_near(d.std, 0, 0);
    assert_near(d.pct[0], 7, 0);
    assert_near(d.pct[1], 7, 0);

    /* vLLM's np.mean(x or 0): an empty sample gives zeros */
    db_dist_compute(NULL, 0, p, 2, &d);
    assert_int_equal(d.n, 0);
    assert_near(d.mean, 0, 0);
    assert_near(d.median, 0, 0);
    assert_near(d.std, 0, 0);
    assert_int_equal(d.n_pct, 2);
    assert_near(d.pct[0], 0, 0);
    assert_near(d.pct[1], 0, 0);
    assert_near(db_percentile_sorted(NULL, 0, 99), 0, 0);
}

static void test_thousand(void **st)
{
    /* 1..1000: p99.9 at index 998.001 -> 999.001; p50 at 499.5 -> 500.5;
     * std of 1..n is sqrt((n^2 - 1) / 12). */
    double *v = malloc(1000 * sizeof(double));
    double p[] = { 50, 99.9 };
    db_dist_t d;
    for (int i = 0; i < 1000; i++)
        v[999 - i] = i + 1;
    db_dist_compute(v, 1000, p, 2, &d);
    assert_near(d.mean, 500.5, EPS);
    assert_near(d.median, 500.5, EPS);
    assert_near(d.std, sqrt((1e6 - 1) / 12), 1e-9);
    assert_near(d.pct[0], 500.5, 1e-9);
    assert_near(d.pct[1], 999.001, 1e-9);
    free(v);
}

static void test_numpy_bits(void **st)
{
    /* Pairwise summation: np.mean([1, 1e16, 1, 1, 1, 1, 1, 1, 1]) is
     * 1111111111111112.0 (eight accumulators, then the ninth), where a
     * running sum loses every 1 and gives 1111111111111111.1. */
    double v[9] = { 1, 1e16, 1, 1, 1, 1, 1, 1, 1 };
    db_dist_t d;
    db_dist_compute(v, 9, NULL, 0, &d);
    assert_true(d.mean == 1111111111111112.0);

    /* numpy's _lerp takes the upper neighbour when the fraction is
     * >= 0.5: np.percentile([a, b], 60) is 0.4738957680593027 where
     * a + (b - a) * 0.6 gives 0.47389576805930267. */
    double s[2] = { 0.3033685109329176, 0.5875806061435594 };
    assert_true(db_percentile_sorted(s, 2, 60) == 0.4738957680593027);
}

static void test_percentile_edges(void **st)
{
    double s[] = { 10, 20, 30 };
    /* out-of-range percentiles are clamped to the ends */
    assert_near(db_percentile_sorted(s, 3, -5), 10, 0);
    assert_near(db_percentile_sorted(s, 3, 150), 30, 0);
    /* index 2 * 0.25 = 0.5 -> 15 */
    assert_near(db_percentile_sorted(s, 3, 25), 15, EPS);
    assert_near(db_percentile_sorted(s, 3, 100), 30, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_four),
        cmocka_unit_test(test_odd),
        cmocka_unit_test(test_one_and_empty),
        cmocka_unit_test(test_thousand),
        cmocka_unit_test(test_numpy_bits),
        cmocka_unit_test(test_percentile_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
