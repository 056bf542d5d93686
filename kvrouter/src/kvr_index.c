/*
 * kvrouter: the prefix index, block table (the worker table is in
 * kvr_index_workers.c, the layout in kvr_index_int.h).
 *
 * Scheme. One writer, any number of readers in other threads or processes,
 * all in one caller-supplied region that holds offsets, never pointers.
 *
 * Table: open addressing, linear probing, keyed by the block's sequence
 * hash (0 is remapped: key 0 marks an empty slot). A hash's home slot is
 * fastrange(mix(hash), nhome); its entry lies in the probe window
 * [home, home + KVR_PROBE). KVR_PROBE slots of padding follow nhome, so
 * windows never wrap. Slot: key, seqlock counter, LRU stamp and a bitmap of
 * holders (one bit per worker slot): 24 bytes for <= 64 workers. A slot
 * whose key is set but whose holders are all 0 is a tombstone.
 *
 * Readers and the writer. Every field a reader touches is a C11 atomic, so
 * there are no data races. Each slot has a seqlock: the writer makes the
 * counter odd, stores key/holders with release stores (so the odd counter
 * is visible before any of them), then makes it even (release). A reader
 * loads the counter, the key and holders (all acquire, so the second
 * counter load cannot move up) and the counter again; if it was odd or
 * changed, it retries that slot only. No fences: on x86 these are all plain
 * moves, and the race detector models them exactly. A reader thus sees each
 * slot before or after an update, never torn, and never waits for more than
 * one slot update; it gives up on a slot after KVR_SEQ_TRIES (a writer that
 * died mid-update leaves the counter odd; the next update of that slot
 * makes it even again). A batch (an event, a sweep) is a series of slot
 * updates, so a reader may see it half applied: for routing, the same as
 * arriving a little earlier or later. While probing, readers skip slots
 * whose key (one atomic load) differs, without the seqlock: a stale key only
 * means an update is not visible yet, which is again "earlier".
 *
 * Probe chains stay intact without moving entries (a move could make a
 * concurrent reader miss a present hash). Invariant: for an entry at slot j
 * with home h, slots h..j-1 are not empty. Insertion checks the hash is
 * absent up to the first empty slot, then takes the first free (empty or
 * tombstone) slot, which keeps it. Deleting (last holder gone) leaves a
 * tombstone; a tombstone becomes empty only when the next slot is empty (no
 * entry can then lie beyond it in a chain through it), repeated backwards.
 * Insertions reuse tombstones. There is no rebuild: the window bounds every
 * probe (<= 256 slots) however many tombstones remain.
 *
 * Eviction (bounded memory, see kvr_index.h): stamp = writer clock (ticked
 * per write call), set on every store of the hash. A new hash that finds
 * the index full (live == max_blocks) evicts the least recently stamped
 * live entry among the KVR_VICTIMS slots centred on its home: replaced in
 * place if it lies between home and the first free slot, else made a
 * tombstone (any live slot may become one) while the new hash takes the
 * free slot. Either way the invariant holds. A window with no free slot
 * (practically impossible at KVR_PROBE = 256) has its least recently
 * stamped entry replaced in place.
 *
 * Worker slots and bits. A worker's bit is its worker slot. A slot is freed
 * only after a full sweep cleared its bit everywhere, and slots are handed
 * out round-robin. A query that read a bit before the sweep could still map
 * it to the slot's next owner, so the writer bumps slot_epoch (release)
 * before giving a slot its id, and find_matches reads the epoch (acquire)
 * before and after its walk, with acquire loads of ids in between: an
 * unchanged epoch proves every id it reported owned its bit throughout; a
 * changed one repeats the query (registrations are rare).
 */
#include <stdlib.h>

#include "kvr_index_int.h"

#if defined(__GNUC__)
#define KVR_INLINE        static inline __attribute__((always_inline))
#define kvr_prefetch(p)   __builtin_prefetch((p), 0, 3)
#define kvr_prefetch_w(p) __builtin_prefetch((p), 1, 3)
#else
#define KVR_INLINE        static inline
#define kvr_prefetch(p)   ((void) (p))
#define kvr_prefetch_w(p) ((void) (p))
#endif

/*
 * Blocks looked ahead by software prefetch (the hashes of a query or an
 * event are all known up front). 16 beat 8 and 24 in dynamo-kv bench.
 */
#ifndef KVR_PREFETCH
#define KVR_PREFETCH  16
#endif

/* find_matches repeats a query at most this often while slots change hands */
#define KVR_EPOCH_TRIES  4

static inline uint64_t
kvr_key(uint64_t h)
{
    return h != 0 ? h : KVR_KEY_ZERO;
}

static inline uint64_t
kvr_home(const kvr_index_t *idx, uint64_t key)
{
    uint64_t  m = key * 0x9e3779b97f4a7c15ULL;   /* good high bits */

#ifdef __SIZEOF_INT128__
    return (uint64_t) (((unsigned __int128) m * idx->nhome) >> 64);
#else
    return m % idx->nhome;
#endif
}

static inline int
kvr_popcount(uint64_t x)
{
    return __builtin_popcountll(x);
}

/* ---- geometry ---- */

static uint64_t
kvr_align(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

/* Fills g's geometry fields from cfg; -1 if cfg is invalid. */
static int
kvr_geometry(const kvr_index_config_t *cfg, struct kvr_index_s *g)
{
    uint64_t  off, nmap;

    if (cfg == NULL || cfg->max_workers < 1
        || cfg->max_workers > KVR_INDEX_MAX_WORKERS
        || cfg->max_blocks < 1 || cfg->max_blocks > KVR_MAX_BLOCKS_CFG)
    {
        return -1;
    }

    memset(g, 0, sizeof(*g));
    g->magic = KVR_INDEX_MAGIC;
    g->layout = KVR_INDEX_LAYOUT;
    g->hdr_bytes = sizeof(struct kvr_index_s);
    g->winfo_bytes = sizeof(kvr_worker_info_t);
    g->went_bytes = (uint32_t) kvr_align(sizeof(kvr_wentry_t), 8);
    g->probe = KVR_PROBE;
    g->max_workers = cfg->max_workers;
    g->words = (cfg->max_workers + 63) / 64;
    g->slot_bytes = (uint32_t) (sizeof(kvr_slot_t) + 8 * g->words);
    g->max_blocks = cfg->max_blocks;
    g->nhome = (cfg->max_blocks * KVR_SLOTS_NUM + KVR_SLOTS_DEN - 1)
               / KVR_SLOTS_DEN;
    g->nslots = g->nhome + KVR_PROBE;

    for (nmap = 4; nmap < 2 * (uint64_t) cfg->max_workers; nmap <<= 1) {
        /* void */
    }
    g->idmap_mask = nmap - 1;

    off = kvr_align(sizeof(struct kvr_index_s), KVR_INDEX_ALIGN);
    g->off_workers = off;
    off += (uint64_t) cfg->max_workers * g->went_bytes;
    g->off_ids = off = kvr_align(off, KVR_INDEX_ALIGN);
    off += 8 * (uint64_t) cfg->max_workers;
    g->off_idmap = off = kvr_align(off, KVR_INDEX_ALIGN);
    off += nmap * sizeof(kvr_idmap_t);
    g->off_slots = off = kvr_align(off, KVR_INDEX_ALIGN);
    off += g->nslots * g->slot_bytes;
    g->region_bytes = off;

    if (g->region_bytes > (uint64_t) SIZE_MAX - KVR_INDEX_ALIGN) {
        return -1;
    }
    return 0;
}

size_t
kvr_index_size(const kvr_index_config_t *cfg)
{
    struct kvr_index_s  g;

    if (kvr_geometry(cfg, &g) != 0) {
        return 0;
    }
    return (size_t) g.region_bytes + KVR_INDEX_ALIGN;
}

/* The aligned header inside mem, or NULL if the region cannot hold need. */
static kvr_index_t *
kvr_place(void *mem, size_t len, uint64_t need)
{
    uintptr_t  p = (uintptr_t) mem, a;

    a = (p + KVR_INDEX_ALIGN - 1) & ~(uintptr_t) (KVR_INDEX_ALIGN - 1);

    if (mem == NULL || (p & 7) != 0 || len < a - p
        || len - (a - p) < need)
    {
        return NULL;
    }
    return (kvr_index_t *) a;
}

kvr_index_t *
kvr_index_init(void *mem, size_t len, const kvr_index_config_t *cfg)
{
    struct kvr_index_s   g;
    kvr_index_t         *idx;

    if (kvr_geometry(cfg, &g) != 0) {
        return NULL;
    }
    idx = kvr_place(mem, len, g.region_bytes);
    if (idx == NULL) {
        return NULL;
    }

    /* all atomics start at 0: an all-zero region is an empty index */
    memset((void *) idx, 0, (size_t) g.region_bytes);
    memcpy((void *) idx, &g, offsetof(struct kvr_index_s, clock));
    atomic_store_explicit(&idx->ready, 1, kvr_rel);
    return idx;
}

kvr_index_t *
kvr_index_attach(void *mem, size_t len)
{
    struct kvr_index_s   g;
    kvr_index_config_t   cfg;
    kvr_index_t         *idx;

    idx = kvr_place(mem, len, sizeof(struct kvr_index_s));
    if (idx == NULL
        || idx->magic != KVR_INDEX_MAGIC
        || idx->layout != KVR_INDEX_LAYOUT
        || atomic_load_explicit(&idx->ready, kvr_acq) != 1)
    {
        return NULL;
    }

    cfg.max_workers = idx->max_workers;
    cfg.max_blocks = idx->max_blocks;
    if (kvr_geometry(&cfg, &g) != 0
        || memcmp(&g, (void *) idx, offsetof(struct kvr_index_s, clock)) != 0
        || kvr_place(mem, len, g.region_bytes) == NULL)
    {
        return NULL;
    }
    return idx;
}

void
kvr_index_get_config(const kvr_index_t *idx, kvr_index_config_t *cfg)
{
    cfg->max_workers = idx->max_workers;
    cfg->max_blocks = idx->max_blocks;
}

void
kvr_index_stats(const kvr_index_t *idx, kvr_index_stats_t *st)
{
    st->blocks = atomic_load_explicit(&idx->st_blocks, kvr_rlx);
    st->capacity = idx->nslots;
    st->evictions = atomic_load_explicit(&idx->st_evictions, kvr_rlx);
    st->events_applied = atomic_load_explicit(&idx->st_events, kvr_rlx);
    st->resyncs = atomic_load_explicit(&idx->st_resyncs, kvr_rlx);
    st->workers = atomic_load_explicit(&idx->st_workers, kvr_rlx);
}

/* ---- writer side ---- */

static inline int
kvr_w_tomb(const kvr_slot_t *s, unsigned words)
{
    uint64_t  any = 0;
    unsigned  w;

    for (w = 0; w < words; w++) {
        any |= atomic_load_explicit(&s->bits[w], kvr_rlx);
    }
    return any == 0;
}

static inline void
kvr_w_blocks_add(kvr_index_t *idx, uint32_t ws, int64_t d)
{
    kvr_stat_add(&kvr_went_at(idx, ws)->blocks, d);
}

/* Takes every holder's block away (eviction). */
static void
kvr_w_uncount_holders(kvr_index_t *idx, kvr_slot_t *s)
{
    unsigned  w;
    uint64_t  b;

    for (w = 0; w < idx->words; w++) {
        b = atomic_load_explicit(&s->bits[w], kvr_rlx);
        while (b != 0) {
            kvr_w_blocks_add(idx, w * 64 + (uint32_t) __builtin_ctzll(b), -1);
            b &= b - 1;
        }
    }
}

/* Publishes key with holder bit ws alone. */
static inline void
kvr_w_set_entry(kvr_index_t *idx, kvr_slot_t *s, uint64_t key, uint32_t ws)
{
    unsigned  w;

    kvr_seq_begin(&s->seq);
    atomic_store_explicit(&s->key, key, kvr_rel);
    for (w = 0; w < idx->words; w++) {
        atomic_store_explicit(&s->bits[w],
            (w == ws / 64) ? 1ULL << (ws % 64) : 0, kvr_rel);
    }
    kvr_seq_end(&s->seq);
    s->stamp = idx->clock;
}

static inline void
kvr_w_set_word(kvr_slot_t *s, unsigned w, uint64_t v)
{
    kvr_seq_begin(&s->seq);
    atomic_store_explicit(&s->bits[w], v, kvr_rel);
    kvr_seq_end(&s->seq);
}

/*
 * Slot i just became a tombstone: turns it and the tombstones before it
 * empty while the slot after is empty (see the invariant above).
 */
static void
kvr_w_cleanup(kvr_index_t *idx, uint64_t i)
{
    kvr_slot_t  *s;

    if (i + 1 < idx->nslots
        && atomic_load_explicit(&kvr_slot_at(idx, i + 1)->key, kvr_rlx) != 0)
    {
        return;
    }
    for ( ;; ) {
        s = kvr_slot_at(idx, i);
        if (atomic_load_explicit(&s->key, kvr_rlx) == 0
            || !kvr_w_tomb(s, idx->words))
        {
            return;
        }
        kvr_seq_begin(&s->seq);
        atomic_store_explicit(&s->key, 0, kvr_rel);
        kvr_seq_end(&s->seq);
        idx->tombstones--;
        if (i == 0) {
            return;
        }
        i--;
    }
}

/* Least recently stamped live slot in [lo, lo + n), or NULL. */
static kvr_slot_t *
kvr_w_victim(kvr_index_t *idx, uint64_t lo, uint64_t n)
{
    kvr_slot_t  *s, *best = NULL;
    uint32_t     age, best_age = 0;
    uint64_t     i;

    for (i = lo; i < lo + n; i++) {
        s = kvr_slot_at(idx, i);
        if (atomic_load_explicit(&s->key, kvr_rlx) == 0
            || kvr_w_tomb(s, idx->words))
        {
            continue;
        }
        age = idx->clock - s->stamp;
        if (best == NULL || age > best_age) {
            best = s;
            best_age = age;
        }
    }
    return best;
}

/*
 * Adds worker slot ws as a holder of key. Returns 1 if it was added, 0 if
 * it already held it, -1 if the hash was dropped by the eviction rule.
 */
static int
kvr_w_store(kvr_index_t *idx, uint64_t key, uint32_t ws)
{
    kvr_slot_t  *s = NULL, *fr = NULL, *v;
    uint64_t     h, i, b, m = 1ULL << (ws % 64);
    unsigned     wi = ws / 64;
    int          found = 0, tomb = 0, fr_tomb = 0;

    h = kvr_home(idx, key);
    for (i = h; i < h + KVR_PROBE; i++) {
        s = kvr_slot_at(idx, i);
        b = atomic_load_explicit(&s->key, kvr_rlx);
        if (b == key) {
            found = 1;
            break;
        }
        if (b == 0) {
            if (fr == NULL) {
                fr = s;
            }
            break;
        }
        if (fr == NULL && idx->tombstones != 0
            && kvr_w_tomb(s, idx->words))
        {
            fr = s;
            fr_tomb = 1;
        }
    }

    if (found) {
        s->stamp = idx->clock;
        b = atomic_load_explicit(&s->bits[wi], kvr_rlx);
        if (b & m) {
            return 0;
        }
        tomb = kvr_w_tomb(s, idx->words);
        if (!tomb) {
            kvr_w_set_word(s, wi, b | m);
            kvr_w_blocks_add(idx, ws, 1);
            return 1;
        }
    }

    /*
     * A new live entry: key absent (place at fr) or a tombstone (revive s).
     * Window full: the oldest entry in it is replaced in place. Index full:
     * the oldest live entry within KVR_VICTIMS / 2 of home goes (centred,
     * so homes near the sparse end of the table still see a dense range);
     * it is replaced in place if it lies in [h, fr), else made a tombstone.
     */
    if (!found && fr == NULL) {
        v = kvr_w_victim(idx, h, KVR_PROBE);    /* all live: never NULL */
        kvr_stat_add(&idx->st_evictions, 1);
        kvr_w_uncount_holders(idx, v);
        kvr_w_set_entry(idx, v, key, ws);
        kvr_w_blocks_add(idx, ws, 1);
        return 1;
    }
    if (idx->live >= idx->max_blocks) {
        v = kvr_w_victim(idx, h >= KVR_VICTIMS / 2 ? h - KVR_VICTIMS / 2 : 0,
                         KVR_VICTIMS);
        kvr_stat_add(&idx->st_evictions, 1);
        if (v == NULL) {
            return -1;
        }
        kvr_w_uncount_holders(idx, v);
        if (!found && v >= kvr_slot_at(idx, h) && v < fr) {
            kvr_w_set_entry(idx, v, key, ws);
            kvr_w_blocks_add(idx, ws, 1);
            return 1;
        }
        /* tombstone without cleanup: fr or s stays where it is */
        kvr_seq_begin(&v->seq);
        for (i = 0; i < idx->words; i++) {
            atomic_store_explicit(&v->bits[i], 0, kvr_rel);
        }
        kvr_seq_end(&v->seq);
        idx->live--;
        idx->tombstones++;
    }

    if (found) {
        kvr_w_set_word(s, wi, m);
        idx->tombstones--;
    } else {
        kvr_w_set_entry(idx, fr, key, ws);
        if (fr_tomb) {
            idx->tombstones--;
        }
    }
    idx->live++;
    kvr_w_blocks_add(idx, ws, 1);
    return 1;
}

/* Removes worker slot ws from key's holders; 1 if it held it. */
static int
kvr_w_remove(kvr_index_t *idx, uint64_t key, uint32_t ws)
{
    kvr_slot_t  *s;
    uint64_t     h, i, k, b, m = 1ULL << (ws % 64);
    unsigned     wi = ws / 64;

    h = kvr_home(idx, key);
    for (i = h; i < h + KVR_PROBE; i++) {
        s = kvr_slot_at(idx, i);
        k = atomic_load_explicit(&s->key, kvr_rlx);
        if (k == 0) {
            return 0;
        }
        if (k != key) {
            continue;
        }
        b = atomic_load_explicit(&s->bits[wi], kvr_rlx);
        if (!(b & m)) {
            return 0;
        }
        kvr_w_set_word(s, wi, b & ~m);
        kvr_w_blocks_add(idx, ws, -1);
        if (kvr_w_tomb(s, idx->words)) {
            idx->live--;
            idx->tombstones++;
            kvr_w_cleanup(idx, i);
        }
        return 1;
    }
    return 0;
}

/*
 * Prefetch cursor over the blocks of a run of events: the writer keeps it
 * KVR_PREFETCH blocks ahead of the block it works on, across event
 * boundaries (events are small: a cursor confined to one event would leave
 * each event's first blocks unprefetched).
 */
typedef struct {
    const kvr_event_t  *ev;
    size_t              nev;
    size_t              e, b;
} kvr_pf_t;

static inline void
kvr_pf_step(const kvr_index_t *idx, kvr_pf_t *pf)
{
    const kvr_event_t  *ev;

    while (pf->e < pf->nev) {
        ev = &pf->ev[pf->e];
        if (pf->b < ev->nblocks && ev->blocks != NULL
            && (ev->type == KVR_EV_STORED || ev->type == KVR_EV_REMOVED))
        {
            kvr_prefetch_w(kvr_slot_at(idx, kvr_home(idx,
                                       kvr_key(ev->blocks[pf->b++].seq))));
            return;
        }
        pf->e++;
        pf->b = 0;
    }
}

static void
kvr_pf_init(const kvr_index_t *idx, kvr_pf_t *pf, const kvr_event_t *ev,
    size_t n)
{
    int  i;

    pf->ev = ev;
    pf->nev = n;
    pf->e = 0;
    pf->b = 0;
    for (i = 0; i < KVR_PREFETCH; i++) {
        kvr_pf_step(idx, pf);
    }
}

/* Stores an event's blocks for worker slot ws. */
static void
kvr_w_store_blocks(kvr_index_t *idx, uint32_t ws, const kvr_block_t *b,
    size_t n, kvr_pf_t *pf)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        kvr_pf_step(idx, pf);
        (void) kvr_w_store(idx, kvr_key(b[i].seq), ws);
    }
}

static void
kvr_w_remove_blocks(kvr_index_t *idx, uint32_t ws, const kvr_block_t *b,
    size_t n, kvr_pf_t *pf)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        kvr_pf_step(idx, pf);
        (void) kvr_w_remove(idx, kvr_key(b[i].seq), ws);
    }
}

/* Stores seq[0..n) for worker slot ws (snapshot loading). */
static void
kvr_w_store_seq(kvr_index_t *idx, uint32_t ws, const uint64_t *seq,
    size_t n)
{
    size_t  i;

    for (i = 0; i < n && i < KVR_PREFETCH; i++) {
        kvr_prefetch_w(kvr_slot_at(idx, kvr_home(idx, kvr_key(seq[i]))));
    }
    for (i = 0; i < n; i++) {
        if (i + KVR_PREFETCH < n) {
            kvr_prefetch_w(kvr_slot_at(idx, kvr_home(idx,
                                       kvr_key(seq[i + KVR_PREFETCH]))));
        }
        (void) kvr_w_store(idx, kvr_key(seq[i]), ws);
    }
}

/*
 * Clears worker slot ws's bit everywhere; returns how many it held. full:
 * sweep the whole table (the slot is about to be freed, so no stale bit may
 * outlive it); else stop once the worker's block count is reached.
 */
static uint64_t
kvr_w_drop_sweep(kvr_index_t *idx, uint32_t ws, int full)
{
    kvr_slot_t  *s;
    uint64_t     i, b, m = 1ULL << (ws % 64), dropped = 0, have;
    unsigned     wi = ws / 64;

    have = atomic_load_explicit(&kvr_went_at(idx, ws)->blocks, kvr_rlx);
    for (i = 0; i < idx->nslots && (full || dropped < have); i++) {
        s = kvr_slot_at(idx, i);
        b = atomic_load_explicit(&s->bits[wi], kvr_rlx);
        if (!(b & m)) {
            continue;
        }
        kvr_w_set_word(s, wi, b & ~m);
        dropped++;
        if (kvr_w_tomb(s, idx->words)) {
            idx->live--;
            idx->tombstones++;
            kvr_w_cleanup(idx, i);
        }
    }
    atomic_store_explicit(&kvr_went_at(idx, ws)->blocks, 0, kvr_rel);
    atomic_store_explicit(&idx->st_blocks, idx->live, kvr_rel);
    return dropped;
}

uint64_t
kvr__index_drop_worker(kvr_index_t *idx, uint32_t ws)
{
    return kvr_w_drop_sweep(idx, ws, 1);
}

/* CLEARED and resets: O(table) sweep, skipped when the worker holds none. */
static void
kvr_w_clear_worker(kvr_index_t *idx, uint32_t ws)
{
    if (atomic_load_explicit(&kvr_went_at(idx, ws)->blocks, kvr_rlx) != 0) {
        (void) kvr_w_drop_sweep(idx, ws, 0);
    }
}

static int
kvr_w_apply(kvr_index_t *idx, const kvr_event_t *ev, kvr_pf_t *pf)
{
    kvr_wentry_t  *e;
    uint64_t       gen, last;
    int            s;

    if (ev->type < KVR_EV_STORED || ev->type > KVR_EV_SNAPSHOT
        || (ev->nblocks != 0 && ev->blocks == NULL))
    {
        return KVR_ERR_INVAL;
    }

    s = kvr__worker_lookup(idx, ev->worker_id);
    if (s < 0) {
        s = kvr__worker_add(idx, ev->worker_id, ev->generation);
        if (s < 0) {
            return s;
        }
    }
    e = kvr_went_at(idx, (uint32_t) s);

    gen = atomic_load_explicit(&e->gen, kvr_rlx);
    last = atomic_load_explicit(&e->last_event, kvr_rlx);

    if (ev->type == KVR_EV_SNAPSHOT || ev->generation != gen
        || ev->event_id > last + 1)
    {
        kvr__worker_flag_resync(idx, (uint32_t) s);
        return KVR_ERR_RESYNC;
    }
    if (ev->event_id <= last) {
        return KVR_OK;                      /* replay: already included */
    }

    idx->clock++;
    switch (ev->type) {
    case KVR_EV_STORED:
        kvr_w_store_blocks(idx, (uint32_t) s, ev->blocks, ev->nblocks, pf);
        break;
    case KVR_EV_REMOVED:
        kvr_w_remove_blocks(idx, (uint32_t) s, ev->blocks, ev->nblocks, pf);
        break;
    default:                                /* KVR_EV_CLEARED */
        kvr_w_clear_worker(idx, (uint32_t) s);
        break;
    }

    atomic_store_explicit(&e->last_event, ev->event_id, kvr_rel);
    atomic_store_explicit(&idx->st_blocks, idx->live, kvr_rel);
    kvr_stat_add(&idx->st_events, 1);
    return KVR_OK;
}

int
kvr_index_apply(kvr_index_t *idx, const kvr_event_t *ev)
{
    kvr_pf_t  pf;

    if (idx == NULL || ev == NULL) {
        return KVR_ERR_INVAL;
    }
    kvr_pf_init(idx, &pf, ev, 1);
    return kvr_w_apply(idx, ev, &pf);
}

size_t
kvr_index_apply_many(kvr_index_t *idx, const kvr_event_t *evs, size_t n,
    int *rc)
{
    kvr_pf_t  pf;
    size_t    i, ok = 0;
    int       r;

    if (idx == NULL || (evs == NULL && n != 0)) {
        for (i = 0; rc != NULL && i < n; i++) {
            rc[i] = KVR_ERR_INVAL;
        }
        return 0;
    }
    kvr_pf_init(idx, &pf, evs, n);
    for (i = 0; i < n; i++) {
        r = kvr_w_apply(idx, &evs[i], &pf);
        ok += r == KVR_OK;
        if (rc != NULL) {
            rc[i] = r;
        }
    }
    return ok;
}

int
kvr_index_reset_worker(kvr_index_t *idx, uint64_t worker_id,
    uint64_t generation, uint64_t last_event_id)
{
    int  s;

    if (idx == NULL) {
        return KVR_ERR_INVAL;
    }
    s = kvr__worker_lookup(idx, worker_id);
    if (s < 0) {
        s = kvr__worker_add(idx, worker_id, generation);
        if (s < 0) {
            return s;
        }
    }
    idx->clock++;
    kvr_w_clear_worker(idx, (uint32_t) s);
    kvr__worker_set_cursor(idx, (uint32_t) s, generation, last_event_id);
    return KVR_OK;
}

int
kvr_index_add_blocks(kvr_index_t *idx, uint64_t worker_id,
    const uint64_t *seq, size_t n)
{
    kvr_wentry_t  *e;
    int            s;

    if (idx == NULL || (n != 0 && seq == NULL)) {
        return KVR_ERR_INVAL;
    }
    s = kvr__worker_lookup(idx, worker_id);
    if (s < 0) {
        return KVR_ERR_NOTFOUND;
    }
    e = kvr_went_at(idx, (uint32_t) s);
    idx->clock++;
    kvr_w_store_seq(idx, (uint32_t) s, seq, n);
    atomic_store_explicit(&idx->st_blocks, idx->live, kvr_rel);
    atomic_store_explicit(&e->resync, 0, kvr_rel);
    return KVR_OK;
}

/* ---- reader side ---- */

/*
 * Validated read of a slot whose key looked like key: copies its holders.
 * 0 if the key is no longer there or the slot stayed torn.
 */
KVR_INLINE int
kvr_r_read(const kvr_slot_t *s, uint64_t key, uint64_t *bits, unsigned words)
{
    uint32_t  s1, s2;
    uint64_t  k;
    unsigned  w, tries;

    for (tries = 0; tries < KVR_SEQ_TRIES; tries++) {
        s1 = atomic_load_explicit(&s->seq, kvr_acq);
        if (s1 & 1) {
            kvr_cpu_relax();
            continue;
        }
        k = atomic_load_explicit(&s->key, kvr_acq);
        for (w = 0; w < words; w++) {
            bits[w] = atomic_load_explicit(&s->bits[w], kvr_acq);
        }
        s2 = atomic_load_explicit(&s->seq, kvr_rlx);
        if (s1 == s2) {
            return k == key;
        }
    }
    return 0;
}

/* Copies key's holders into bits; 0 (bits unset) if absent. */
KVR_INLINE int
kvr_r_lookup(const kvr_index_t *idx, uint64_t key, uint64_t *bits,
    unsigned words)
{
    const kvr_slot_t  *s;
    uint64_t           i, h, k;

    h = kvr_home(idx, key);
    for (i = h; i < h + KVR_PROBE; i++) {
        s = kvr_slot_at(idx, i);
        k = atomic_load_explicit(&s->key, kvr_rlx);
        if (k == key) {
            return kvr_r_read(s, key, bits, words);
        }
        if (k == 0) {
            return 0;
        }
    }
    return 0;
}

/* Writes the workers in d (bit b = worker slot base + b) at --*pos. */
KVR_INLINE void
kvr_r_emit(const kvr_index_t *idx, uint64_t d, uint32_t base, uint32_t ov,
    size_t *pos, kvr_match_t *out, size_t max_out)
{
    const _Atomic uint64_t  *ids = kvr_ids(idx);
    uint32_t                 b;

    while (d != 0) {
        b = (uint32_t) __builtin_ctzll(d);
        d &= d - 1;
        if (--*pos < max_out) {
            out[*pos].worker_id = atomic_load_explicit(&ids[base + b],
                                                       kvr_acq);
            out[*pos].overlap_blocks = ov;
        }
    }
}

/*
 * Walks the query: the active set starts as block 0's holders and shrinks;
 * a worker leaving at block i has overlap i. Leavers are written from the
 * back of the (known-size) result, so out[] ends up longest overlap first.
 */
KVR_INLINE size_t
kvr_r_find(const kvr_index_t *idx, const uint64_t *seq, size_t n,
    kvr_match_t *out, size_t max_out, unsigned words)
{
    uint64_t  act[KVR_MAX_WORDS], bits[KVR_MAX_WORDS], live, d;
    size_t    i, count = 0, pos;
    unsigned  w;

    for (i = 1; i < n && i < KVR_PREFETCH; i++) {
        kvr_prefetch(kvr_slot_at(idx, kvr_home(idx, kvr_key(seq[i]))));
    }
    if (!kvr_r_lookup(idx, kvr_key(seq[0]), act, words)) {
        return 0;
    }
    for (w = 0; w < words; w++) {
        count += (size_t) kvr_popcount(act[w]);
    }
    if (count == 0) {
        return 0;
    }
    pos = count;

    for (i = 1; i < n; i++) {
        if (i + KVR_PREFETCH - 1 < n) {
            kvr_prefetch(kvr_slot_at(idx, kvr_home(idx,
                                     kvr_key(seq[i + KVR_PREFETCH - 1]))));
        }
        if (!kvr_r_lookup(idx, kvr_key(seq[i]), bits, words)) {
            for (w = 0; w < words; w++) {
                bits[w] = 0;
            }
        }
        live = 0;
        for (w = 0; w < words; w++) {
            d = act[w] & ~bits[w];
            if (d != 0) {
                kvr_r_emit(idx, d, w * 64, (uint32_t) i, &pos, out, max_out);
                act[w] &= bits[w];
            }
            live |= act[w];
        }
        if (live == 0) {
            return count < max_out ? count : max_out;
        }
    }
    for (w = 0; w < words; w++) {
        kvr_r_emit(idx, act[w], w * 64, (uint32_t) n, &pos, out, max_out);
    }
    return count < max_out ? count : max_out;
}

size_t
kvr_index_find_matches(const kvr_index_t *idx, const uint64_t *seq,
    size_t n, kvr_match_t *out, size_t max_out)
{
    uint64_t  epoch;
    size_t    k;
    unsigned  tries;

    if (idx == NULL || seq == NULL || n == 0 || out == NULL || max_out == 0) {
        return 0;
    }
    if (n > UINT32_MAX) {
        n = UINT32_MAX;                     /* overlap is a u32 */
    }
    for (tries = 0; tries < KVR_EPOCH_TRIES; tries++) {
        epoch = atomic_load_explicit(&idx->slot_epoch, kvr_acq);
        k = idx->words == 1 ? kvr_r_find(idx, seq, n, out, max_out, 1)
                            : kvr_r_find(idx, seq, n, out, max_out,
                                         idx->words);
        if (atomic_load_explicit(&idx->slot_epoch, kvr_acq) == epoch) {
            return k;
        }
    }
    return 0;           /* registrations kept racing: as if asked earlier */
}
