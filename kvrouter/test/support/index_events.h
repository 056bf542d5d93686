/*
 * Test support: building index events from bare sequence hashes, and the
 * tests' deterministic random numbers.
 */
#ifndef INDEX_EVENTS_H
#define INDEX_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "kvr_index.h"

#define TU_MAX_BLOCKS  256

/*
 * Applies one event of the given type carrying seq[0..n) (local = ~seq,
 * which the index ignores); returns kvr_index_apply's result. n must not
 * exceed TU_MAX_BLOCKS (aborts otherwise: a bug in the test).
 */
int tu_apply(kvr_index_t *idx, kvr_event_type_t type, uint64_t wid,
    uint64_t gen, uint64_t id, const uint64_t *seq, size_t n);

/* splitmix64 */
uint64_t tu_rng(uint64_t *s);

#endif
