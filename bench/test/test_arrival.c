/*
 * Tests for db_arrival_next: gaps of a Poisson process (exponential, CV 1)
 * and of vLLM's gamma process (shape = burstiness, scale = 1 / (rate *
 * burstiness): mean 1 / rate, CV 1 / sqrt(burstiness)), by the moments of
 * 100k draws with fixed seeds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>

#include "db_run.h"

#define DRAWS 100000

static void moments(double rate, double burst, uint64_t seed, double *mean,
    double *cv)
{
    uint64_t st = seed;
    double s = 0, s2 = 0;
    for (int i = 0; i < DRAWS; i++) {
        double g = db_arrival_next(rate, burst, &st);
        assert_true(g >= 0);
        s += g;
        s2 += g * g;
    }
    *mean = s / DRAWS;
    double var = s2 / DRAWS - *mean * *mean;
    *cv = sqrt(var) / *mean;
}

static void check(double rate, double burst)
{
    uint64_t seeds[] = { 0, 1, 42, 0xdeadbeef };
    for (size_t k = 0; k < 4; k++) {
        double mean, cv;
        moments(rate, burst, seeds[k], &mean, &cv);
        assert_true(fabs(mean - 1 / rate) <= 0.02 / rate);
        assert_true(fabs(cv - 1 / sqrt(burst)) <= 0.03 / sqrt(burst));
    }
}

static void test_poisson(void **st) { check(10, 1); check(0.5, 1); }
static void test_bursty(void **st) { check(10, 0.5); }
static void test_smooth(void **st) { check(10, 4); check(200, 4); }

static void test_rate_zero_is_all_at_once(void **st)
{
    uint64_t s = 7;
    for (int i = 0; i < 100; i++) {
        assert_true(db_arrival_next(0, 1, &s) == 0);
        assert_true(db_arrival_next(INFINITY, 2, &s) == 0);
    }
}

/* Shapes at the edges of what --burstiness accepts: every gap is a finite
 * number >= 0 (a NaN would never come due and hang the run); a huge shape
 * is a nearly fixed gap of 1 / rate. */
static void test_extreme_shapes(void **st)
{
    uint64_t s = 99;
    for (int i = 0; i < 1000; i++) {
        double g = db_arrival_next(1e-200, 1e-200, &s);
        assert_true(isfinite(g) && g >= 0);
        g = db_arrival_next(3, 1e-300, &s);
        assert_true(isfinite(g) && g >= 0);
        g = db_arrival_next(4, 1e12, &s);
        assert_true(fabs(g - 0.25) < 1e-3);
    }
}

static void test_reproducible(void **st)
{
    uint64_t a = 123, b = 123, c = 124;
    int differs = 0;
    for (int i = 0; i < 1000; i++) {
        double x = db_arrival_next(5, 0.7, &a);
        double y = db_arrival_next(5, 0.7, &b);
        double z = db_arrival_next(5, 0.7, &c);
        assert_true(x == y);
        differs |= x != z;
    }
    assert_true(differs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poisson),
        cmocka_unit_test(test_bursty),
        cmocka_unit_test(test_smooth),
        cmocka_unit_test(test_rate_zero_is_all_at_once),
        cmocka_unit_test(test_extreme_shapes),
        cmocka_unit_test(test_reproducible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
