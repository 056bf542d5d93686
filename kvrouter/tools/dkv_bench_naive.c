/*
 * dynamo-kv bench: the naive baseline index, as simple routers do it.
 *
 * One open-addressing hash set of seq hashes per worker (linear probing,
 * load <= 1/2, backward-shift deletion; key 0 remapped). find_matches probes
 * every worker's set for block 0, then each still-matching worker's set for
 * every next block. Single threaded; no event cursor, no shared memory.
 */
#include <stdlib.h>
#include <string.h>

#include "dkv_bench.h"

typedef struct {
    uint64_t  *keys;
    uint64_t   mask;
    unsigned   shift;
} dkv_set_t;

struct dkv_naive_s {
    uint32_t   workers;
    uint64_t   slots;               /* per worker */
    dkv_set_t *sets;
};

static inline uint64_t
nv_key(uint64_t h)
{
    return h != 0 ? h : 0x9e3779b97f4a7c15ULL;
}

static inline uint64_t
nv_home(const dkv_set_t *s, uint64_t k)
{
    return (k * 0x9e3779b97f4a7c15ULL) >> s->shift;
}

static inline int
nv_has(const dkv_set_t *s, uint64_t k)
{
    uint64_t  i = nv_home(s, k), x;

    for ( ;; ) {
        x = s->keys[i];
        if (x == k) {
            return 1;
        }
        if (x == 0) {
            return 0;
        }
        i = (i + 1) & s->mask;
    }
}

static void
nv_add(dkv_set_t *s, uint64_t k)
{
    uint64_t  i = nv_home(s, k);

    while (s->keys[i] != 0) {
        if (s->keys[i] == k) {
            return;
        }
        i = (i + 1) & s->mask;
    }
    s->keys[i] = k;
}

static void
nv_del(dkv_set_t *s, uint64_t k)
{
    uint64_t  i = nv_home(s, k), j, h;

    while (s->keys[i] != k) {
        if (s->keys[i] == 0) {
            return;
        }
        i = (i + 1) & s->mask;
    }
    /* backward shift: pull later members of the cluster into the hole */
    j = i;
    for ( ;; ) {
        j = (j + 1) & s->mask;
        if (s->keys[j] == 0) {
            break;
        }
        h = nv_home(s, s->keys[j]);
        if (((j - h) & s->mask) >= ((j - i) & s->mask)) {
            s->keys[i] = s->keys[j];
            i = j;
        }
    }
    s->keys[i] = 0;
}

dkv_naive_t *
dkv_naive_new(uint32_t workers, uint64_t blocks_per_worker)
{
    dkv_naive_t  *nv = calloc(1, sizeof(*nv));
    uint64_t      slots = 16;
    unsigned      bits = 4;
    uint32_t      w;

    if (nv == NULL) {
        return NULL;
    }
    while (slots < 2 * blocks_per_worker) {
        slots <<= 1;
        bits++;
    }
    nv->workers = workers;
    nv->slots = slots;
    nv->sets = calloc(workers, sizeof(*nv->sets));
    if (nv->sets == NULL) {
        free(nv);
        return NULL;
    }
    for (w = 0; w < workers; w++) {
        nv->sets[w].keys = calloc(slots, sizeof(uint64_t));
        nv->sets[w].mask = slots - 1;
        nv->sets[w].shift = 64 - bits;
        if (nv->sets[w].keys == NULL) {
            dkv_naive_free(nv);
            return NULL;
        }
    }
    return nv;
}

void
dkv_naive_free(dkv_naive_t *nv)
{
    uint32_t  w;

    if (nv == NULL) {
        return;
    }
    for (w = 0; nv->sets != NULL && w < nv->workers; w++) {
        free(nv->sets[w].keys);
    }
    free(nv->sets);
    free(nv);
}

void
dkv_naive_reset(dkv_naive_t *nv)
{
    uint32_t  w;

    for (w = 0; w < nv->workers; w++) {
        memset(nv->sets[w].keys, 0, nv->slots * sizeof(uint64_t));
    }
}

void
dkv_naive_apply(dkv_naive_t *nv, const kvr_event_t *ev)
{
    dkv_set_t          *s = &nv->sets[ev->worker_id - DKV_WORKER_ID0];
    const kvr_block_t  *b = ev->blocks;
    size_t              i;

    if (ev->type == KVR_EV_STORED) {
        for (i = 0; i < ev->nblocks; i++) {
            nv_add(s, nv_key(b[i].seq));
        }
    } else if (ev->type == KVR_EV_REMOVED) {
        for (i = 0; i < ev->nblocks; i++) {
            nv_del(s, nv_key(b[i].seq));
        }
    }
}

size_t
dkv_naive_find_matches(const dkv_naive_t *nv, const uint64_t *seq,
    size_t n, kvr_match_t *out, size_t max_out)
{
    uint32_t  act[KVR_INDEX_MAX_WORKERS], na = 0, k, keep, w;
    size_t    i, no = 0;
    uint64_t  key;

    if (n == 0) {
        return 0;
    }
    key = nv_key(seq[0]);
    for (w = 0; w < nv->workers; w++) {
        if (nv_has(&nv->sets[w], key)) {
            act[na++] = w;
        }
    }
    for (i = 1; i < n && na > 0; i++) {
        key = nv_key(seq[i]);
        keep = 0;
        for (k = 0; k < na; k++) {
            if (nv_has(&nv->sets[act[k]], key)) {
                act[keep++] = act[k];
            } else if (no < max_out) {
                out[no].worker_id = DKV_WORKER_ID0 + act[k];
                out[no++].overlap_blocks = (uint32_t) i;
            }
        }
        na = keep;
    }
    for (k = 0; k < na && no < max_out; k++) {
        out[no].worker_id = DKV_WORKER_ID0 + act[k];
        out[no++].overlap_blocks = (uint32_t) n;
    }
    return no;
}

uint64_t
dkv_naive_bytes(const dkv_naive_t *nv)
{
    return (uint64_t) nv->workers * nv->slots * sizeof(uint64_t);
}
