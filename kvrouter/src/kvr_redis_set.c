/*
 * kvrouter: a set of u64 (the publisher's mirror of its stored blocks).
 * Open addressing, linear probing, backward-shift deletion (no tombstones),
 * load kept at or below 1/2; 0 is kept out of band so it can mark empty
 * slots. Grows by doubling when the worker stores more than announced.
 */
#include <stdlib.h>
#include <string.h>

#include "kvr_err.h"
#include "kvr_redis_int.h"

#define KVR_SET_MIN  16

static size_t
slot_of(const kvr_u64set_t *s, uint64_t v)
{
    /* splitmix64 finalizer: seq hashes are random already, test values
       and ids need not be */
    v ^= v >> 30;
    v *= 0xbf58476d1ce4e5b9ULL;
    v ^= v >> 27;
    v *= 0x94d049bb133111ebULL;
    v ^= v >> 31;
    return (size_t) v & s->mask;
}

static int
alloc_slots(kvr_u64set_t *s, size_t nslots)
{
    s->slots = calloc(nslots, sizeof(uint64_t));
    if (s->slots == NULL) {
        return KVR_ERR_NOMEM;
    }
    s->mask = nslots - 1;
    return KVR_OK;
}

int
kvr_u64set_init(kvr_u64set_t *s, size_t expected)
{
    size_t  n = KVR_SET_MIN;

    while (n / 2 < expected) {
        if (n > SIZE_MAX / 4 / sizeof(uint64_t)) {
            return KVR_ERR_NOMEM;
        }
        n *= 2;
    }
    s->count = 0;
    s->has_zero = 0;
    return alloc_slots(s, n);
}

void
kvr_u64set_free(kvr_u64set_t *s)
{
    free(s->slots);
    s->slots = NULL;
    s->count = 0;
    s->has_zero = 0;
}

void
kvr_u64set_clear(kvr_u64set_t *s)
{
    memset(s->slots, 0, (s->mask + 1) * sizeof(uint64_t));
    s->count = 0;
    s->has_zero = 0;
}

static void
insert_new(kvr_u64set_t *s, uint64_t v)
{
    size_t  i = slot_of(s, v);

    while (s->slots[i] != 0) {
        i = (i + 1) & s->mask;
    }
    s->slots[i] = v;
}

static int
grow(kvr_u64set_t *s)
{
    kvr_u64set_t  n;
    size_t        i;

    if (s->mask + 1 > SIZE_MAX / 4 / sizeof(uint64_t)) {
        return KVR_ERR_NOMEM;
    }
    if (alloc_slots(&n, (s->mask + 1) * 2) != KVR_OK) {
        return KVR_ERR_NOMEM;
    }
    for (i = 0; i <= s->mask; i++) {
        if (s->slots[i] != 0) {
            insert_new(&n, s->slots[i]);
        }
    }
    free(s->slots);
    s->slots = n.slots;
    s->mask = n.mask;
    return KVR_OK;
}

int
kvr_u64set_has(const kvr_u64set_t *s, uint64_t v)
{
    size_t  i;

    if (v == 0) {
        return s->has_zero;
    }
    for (i = slot_of(s, v); s->slots[i] != 0; i = (i + 1) & s->mask) {
        if (s->slots[i] == v) {
            return 1;
        }
    }
    return 0;
}

int
kvr_u64set_add(kvr_u64set_t *s, uint64_t v)
{
    if (v == 0) {
        if (s->has_zero) {
            return 0;
        }
        s->has_zero = 1;
        s->count++;
        return 1;
    }
    if (kvr_u64set_has(s, v)) {
        return 0;
    }
    if ((s->count + 1) * 2 > s->mask + 1 && grow(s) != KVR_OK) {
        return KVR_ERR_NOMEM;
    }
    insert_new(s, v);
    s->count++;
    return 1;
}

int
kvr_u64set_del(kvr_u64set_t *s, uint64_t v)
{
    size_t  i, j, home;

    if (v == 0) {
        if (!s->has_zero) {
            return 0;
        }
        s->has_zero = 0;
        s->count--;
        return 1;
    }
    for (i = slot_of(s, v); s->slots[i] != v; i = (i + 1) & s->mask) {
        if (s->slots[i] == 0) {
            return 0;
        }
    }

    /* backward shift: move later members of the cluster into the hole when
       their home slot does not lie cyclically in (hole, their slot] */
    j = i;
    for ( ;; ) {
        s->slots[i] = 0;
        for ( ;; ) {
            j = (j + 1) & s->mask;
            if (s->slots[j] == 0) {
                s->count--;
                return 1;
            }
            home = slot_of(s, s->slots[j]);
            if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
                break;
            }
        }
        s->slots[i] = s->slots[j];
        i = j;
    }
}

int
kvr_u64set_next(const kvr_u64set_t *s, size_t *pos, uint64_t *v)
{
    size_t  i = *pos;

    /* position 0 is the out-of-band zero, slots follow at 1.. */
    if (i == 0) {
        *pos = 1;
        if (s->has_zero) {
            *v = 0;
            return 1;
        }
        i = 1;
    }
    for ( ; i <= s->mask + 1; i++) {
        if (s->slots[i - 1] != 0) {
            *v = s->slots[i - 1];
            *pos = i + 1;
            return 1;
        }
    }
    *pos = i;
    return 0;
}
