/*
 * dynamo-worker: the small random helpers shared by the sampler, the
 * model generator and the tests. Internal; static inline so that each
 * user gets its own copy and the hot sampling path is not a call.
 */
#ifndef DW_RAND_H
#define DW_RAND_H

#include <stdint.h>

/* splitmix64: advances *x and returns the next value. A good seeder for
 * xoshiro and, alone, a fast stream for test and model data. */
static inline uint64_t
dw_splitmix64(uint64_t *x)
{
    uint64_t  z = (*x += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t
dw_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

#endif /* DW_RAND_H */
