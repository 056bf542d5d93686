/*
 * Inter-arrival gaps as vLLM draws them: exponential for a Poisson process
 * (burstiness 1), else gamma(shape = burstiness, scale = 1 / (rate *
 * burstiness)), whose mean stays 1 / rate while the coefficient of
 * variation is 1 / sqrt(burstiness). The generator is our own splitmix64 on
 * one state word, so a seed gives the same schedule on every platform.
 */

#include "db_run.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1): never 0, so log() is finite. */
static double unif(uint64_t *s)
{
    return ((double)(splitmix64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double normal(uint64_t *s)
{
    /* Marsaglia's polar method (one of the pair is dropped: simpler
     * state, and the draw count is not a concern here) */
    double u, v, q;
    do {
        u = 2 * unif(s) - 1;
        v = 2 * unif(s) - 1;
        q = u * u + v * v;
    } while (q >= 1 || q == 0);
    return u * sqrt(-2 * log(q) / q);
}

/* Gamma(shape k, scale 1): Marsaglia and Tsang (2000); k < 1 through
 * Gamma(k + 1) * U^(1/k). */
static double gamma1(double k, uint64_t *s)
{
    if (k < 1)
        return gamma1(k + 1, s) * pow(unif(s), 1 / k);
    double d = k - 1.0 / 3, c = 1 / sqrt(9 * d);
    for (;;) {
        double x, v;
        do {
            x = normal(s);
            v = 1 + c * x;
        } while (v <= 0);
        v = v * v * v;
        double u = unif(s);
        if (u < 1 - 0.0331 * x * x * x * x)
            return d * v;
        if (log(u) < 0.5 * x * x + d * (1 - v + log(v)))
            return d * v;
    }
}

double db_arrival_next(double rate, double burstiness, uint64_t *state)
{
    if (!(rate > 0) || isinf(rate))
        return 0;
    if (!(burstiness > 0))
        burstiness = 1;
    if (burstiness == 1)
        return -log(unif(state)) / rate;
    /* extreme shapes can underflow (0 / 0 when rate * burstiness is 0):
     * a NaN gap would never come due, so it counts as no gap */
    double g = gamma1(burstiness, state) / (rate * burstiness);
    return g >= 0 ? g : 0;
}
