/*
 * kvrouter: the prefix index, worker table.
 *
 * max_workers entries, each guarded by its own seqlock (same protocol as
 * the block table's slots, see kvr_index.c): registration, load and the
 * event generation change under it; the event cursor, block count and
 * resync flag are single atomic words the writer updates in place, so the
 * per-event cost is one store. A compact ids[] array maps a worker slot to
 * its (last) id for find_matches and lets readers find an id by a linear
 * scan (validated against the entry). The writer finds ids through idmap, a
 * small open-addressing table in the region that only it touches; it is
 * rebuilt when a worker is removed (rare), so it never holds tombstones.
 */
#include "kvr_index_int.h"

static inline uint64_t
kvr_idmap_home(const kvr_index_t *idx, uint64_t id)
{
    uint64_t  h = id * 0x9e3779b97f4a7c15ULL;

    return (h ^ (h >> 32)) & idx->idmap_mask;
}

static void
kvr_idmap_put(kvr_index_t *idx, uint64_t id, uint32_t s)
{
    kvr_idmap_t  *map = kvr_idmap(idx);
    uint64_t      i = kvr_idmap_home(idx, id);

    while (map[i].slot1 != 0) {
        i = (i + 1) & idx->idmap_mask;
    }
    map[i].id = id;
    map[i].slot1 = s + 1;
}

static void
kvr_idmap_rebuild(kvr_index_t *idx)
{
    uint32_t       s;
    kvr_wentry_t  *e;

    memset(kvr_idmap(idx), 0, (idx->idmap_mask + 1) * sizeof(kvr_idmap_t));
    for (s = 0; s < idx->max_workers; s++) {
        e = kvr_went_at(idx, s);
        if (atomic_load_explicit(&e->used, kvr_rlx)) {
            kvr_idmap_put(idx, atomic_load_explicit(&e->id, kvr_rlx), s);
        }
    }
}

/* Writer: worker slot of id, or -1. */
int
kvr__worker_lookup(const kvr_index_t *idx, uint64_t id)
{
    const kvr_idmap_t  *map = kvr_idmap(idx);
    uint64_t            i = kvr_idmap_home(idx, id);

    while (map[i].slot1 != 0) {
        if (map[i].id == id) {
            return (int) map[i].slot1 - 1;
        }
        i = (i + 1) & idx->idmap_mask;
    }
    return -1;
}

static void
kvr_went_load_image(const kvr_wentry_t *e, kvr_worker_info_t *info)
{
    uint64_t  img[KVR_WINFO_WORDS];
    size_t    w;

    for (w = 0; w < KVR_WINFO_WORDS; w++) {
        img[w] = atomic_load_explicit(&e->info[w], kvr_rlx);
    }
    memcpy(info, img, sizeof(*info));
}

/* Writer, inside the entry's seqlock section. */
static void
kvr_went_store_image(kvr_wentry_t *e, const kvr_worker_info_t *info)
{
    uint64_t  img[KVR_WINFO_WORDS];
    size_t    w;

    img[KVR_WINFO_WORDS - 1] = 0;
    memcpy(img, info, sizeof(*info));
    for (w = 0; w < KVR_WINFO_WORDS; w++) {
        atomic_store_explicit(&e->info[w], img[w], kvr_rel);
    }
}

/* Writer: takes a free slot (round-robin) for id; KVR_ERR_FULL if none. */
int
kvr__worker_add(kvr_index_t *idx, uint64_t id, uint64_t gen)
{
    kvr_worker_info_t   info;
    kvr_wentry_t       *e;
    uint32_t            k, s;

    for (k = 0; k < idx->max_workers; k++) {
        s = (idx->next_wslot + k) % idx->max_workers;
        e = kvr_went_at(idx, s);
        if (atomic_load_explicit(&e->used, kvr_rlx)) {
            continue;
        }
        idx->next_wslot = (s + 1) % idx->max_workers;

        memset(&info, 0, sizeof(info));
        info.worker_id = id;
        info.generation = gen;

        kvr_seq_begin(&e->seq);
        atomic_store_explicit(&e->used, 1, kvr_rel);
        atomic_store_explicit(&e->id, id, kvr_rel);
        atomic_store_explicit(&e->gen, gen, kvr_rel);
        atomic_store_explicit(&e->last_event, 0, kvr_rel);
        atomic_store_explicit(&e->blocks, 0, kvr_rel);
        atomic_store_explicit(&e->resync, 0, kvr_rel);
        kvr_went_store_image(e, &info);
        kvr_seq_end(&e->seq);

        /* see kvr_index_find_matches: readers mapping bits to ids */
        atomic_fetch_add_explicit(&idx->slot_epoch, 1, kvr_rel);
        atomic_store_explicit(&kvr_ids(idx)[s], id, kvr_rel);
        kvr_idmap_put(idx, id, s);
        atomic_store_explicit(&idx->st_workers,
            atomic_load_explicit(&idx->st_workers, kvr_rlx) + 1, kvr_rel);
        return (int) s;
    }
    return KVR_ERR_FULL;
}

void
kvr__worker_set_cursor(kvr_index_t *idx, uint32_t s, uint64_t gen,
    uint64_t last_event)
{
    kvr_wentry_t  *e = kvr_went_at(idx, s);

    kvr_seq_begin(&e->seq);
    atomic_store_explicit(&e->gen, gen, kvr_rel);
    atomic_store_explicit(&e->last_event, last_event, kvr_rel);
    atomic_store_explicit(&e->resync, 0, kvr_rel);
    kvr_seq_end(&e->seq);
}

void
kvr__worker_flag_resync(kvr_index_t *idx, uint32_t s)
{
    kvr_wentry_t  *e = kvr_went_at(idx, s);

    if (atomic_load_explicit(&e->resync, kvr_rlx) == 0) {
        atomic_store_explicit(&e->resync, 1, kvr_rel);
        kvr_stat_add(&idx->st_resyncs, 1);
    }
}

int
kvr_index_set_worker(kvr_index_t *idx, const kvr_worker_info_t *info)
{
    kvr_worker_info_t   cur;
    kvr_wentry_t       *e;
    int                 s;

    if (idx == NULL || info == NULL) {
        return KVR_ERR_INVAL;
    }
    s = kvr__worker_lookup(idx, info->worker_id);
    if (s < 0) {
        s = kvr__worker_add(idx, info->worker_id, info->generation);
        if (s < 0) {
            return s;
        }
    }
    e = kvr_went_at(idx, (uint32_t) s);
    if (atomic_load_explicit(&e->gen, kvr_rlx) != info->generation) {
        kvr__worker_flag_resync(idx, (uint32_t) s);   /* it restarted */
    }

    cur = *info;
    cur.addr[KVR_ADDR_MAX - 1] = '\0';
    cur.last_event_id = 0;
    cur.blocks = 0;
    cur.needs_resync = 0;

    kvr_seq_begin(&e->seq);
    kvr_went_store_image(e, &cur);
    kvr_seq_end(&e->seq);
    return KVR_OK;
}

int
kvr_index_set_load(kvr_index_t *idx, uint64_t worker_id,
    const kvr_load_t *load)
{
    kvr_worker_info_t   cur;
    kvr_wentry_t       *e;
    int                 s;

    if (idx == NULL || load == NULL) {
        return KVR_ERR_INVAL;
    }
    s = kvr__worker_lookup(idx, worker_id);
    if (s < 0) {
        return KVR_ERR_NOTFOUND;
    }
    e = kvr_went_at(idx, (uint32_t) s);
    kvr_went_load_image(e, &cur);
    cur.load = *load;

    kvr_seq_begin(&e->seq);
    kvr_went_store_image(e, &cur);
    kvr_seq_end(&e->seq);
    return KVR_OK;
}

int
kvr_index_remove_worker(kvr_index_t *idx, uint64_t worker_id)
{
    kvr_worker_info_t   zero;
    kvr_wentry_t       *e;
    int                 s;

    if (idx == NULL) {
        return KVR_ERR_INVAL;
    }
    s = kvr__worker_lookup(idx, worker_id);
    if (s < 0) {
        return KVR_ERR_NOTFOUND;
    }

    /* every bit of the slot goes before the slot can be reused */
    (void) kvr__index_drop_worker(idx, (uint32_t) s);

    e = kvr_went_at(idx, (uint32_t) s);
    memset(&zero, 0, sizeof(zero));
    kvr_seq_begin(&e->seq);
    atomic_store_explicit(&e->used, 0, kvr_rel);
    atomic_store_explicit(&e->id, 0, kvr_rel);
    atomic_store_explicit(&e->gen, 0, kvr_rel);
    atomic_store_explicit(&e->last_event, 0, kvr_rel);
    atomic_store_explicit(&e->blocks, 0, kvr_rel);
    atomic_store_explicit(&e->resync, 0, kvr_rel);
    kvr_went_store_image(e, &zero);
    kvr_seq_end(&e->seq);

    /*
     * ids[s] keeps the old id until the slot is reused: a reader that read
     * the slot's bits before the sweep then reports the old worker, which
     * is just an earlier view (entry lookups validate against used).
     */
    kvr_idmap_rebuild(idx);
    atomic_store_explicit(&idx->st_workers,
        atomic_load_explicit(&idx->st_workers, kvr_rlx) - 1, kvr_rel);
    return KVR_OK;
}

/* ---- reader side ---- */

/*
 * Consistent copy of entry e: 1 with *out filled if in use, 0 if free or
 * it stayed torn (a writer died mid-update).
 */
static int
kvr_went_read(const kvr_wentry_t *e, kvr_worker_info_t *out)
{
    uint64_t  img[KVR_WINFO_WORDS], id, gen, last, blocks;
    uint32_t  s1, s2, used, resync;
    unsigned  tries;
    size_t    w;

    for (tries = 0; tries < KVR_SEQ_TRIES; tries++) {
        s1 = atomic_load_explicit(&e->seq, kvr_acq);
        if (s1 & 1) {
            kvr_cpu_relax();
            continue;
        }
        used = atomic_load_explicit(&e->used, kvr_acq);
        id = atomic_load_explicit(&e->id, kvr_acq);
        gen = atomic_load_explicit(&e->gen, kvr_acq);
        last = atomic_load_explicit(&e->last_event, kvr_acq);
        blocks = atomic_load_explicit(&e->blocks, kvr_acq);
        resync = atomic_load_explicit(&e->resync, kvr_acq);
        for (w = 0; w < KVR_WINFO_WORDS; w++) {
            img[w] = atomic_load_explicit(&e->info[w], kvr_acq);
        }
        s2 = atomic_load_explicit(&e->seq, kvr_rlx);
        if (s1 != s2) {
            continue;
        }
        if (!used) {
            return 0;
        }
        memcpy(out, img, sizeof(*out));
        out->worker_id = id;
        out->generation = gen;
        out->last_event_id = last;
        out->blocks = blocks;
        out->needs_resync = resync;
        return 1;
    }
    return 0;
}

/* Reader: worker slot of id (copied into *out if not NULL), or -1. */
static int
kvr_worker_find(const kvr_index_t *idx, uint64_t id, kvr_worker_info_t *out)
{
    const _Atomic uint64_t  *ids = kvr_ids(idx);
    kvr_worker_info_t        tmp;
    uint32_t                 s;

    for (s = 0; s < idx->max_workers; s++) {
        if (atomic_load_explicit(&ids[s], kvr_rlx) != id) {
            continue;
        }
        if (kvr_went_read(kvr_went_at(idx, s), &tmp)
            && tmp.worker_id == id)
        {
            if (out != NULL) {
                *out = tmp;
            }
            return (int) s;
        }
    }
    return -1;
}

size_t
kvr_index_workers(const kvr_index_t *idx, kvr_worker_info_t *out,
    size_t max)
{
    size_t    n = 0;
    uint32_t  s;

    if (idx == NULL || out == NULL) {
        return 0;
    }
    for (s = 0; s < idx->max_workers && n < max; s++) {
        if (kvr_went_read(kvr_went_at(idx, s), &out[n])) {
            n++;
        }
    }
    return n;
}

int
kvr_index_get_worker(const kvr_index_t *idx, uint64_t worker_id,
    kvr_worker_info_t *out)
{
    kvr_worker_info_t  tmp;

    if (idx == NULL) {
        return KVR_ERR_INVAL;
    }
    if (kvr_worker_find(idx, worker_id, out != NULL ? out : &tmp) < 0) {
        return KVR_ERR_NOTFOUND;
    }
    return KVR_OK;
}

uint64_t
kvr_index_worker_blocks(const kvr_index_t *idx, uint64_t worker_id)
{
    kvr_worker_info_t  tmp;

    if (idx == NULL || kvr_worker_find(idx, worker_id, &tmp) < 0) {
        return 0;
    }
    return tmp.blocks;
}

int
kvr_index_needs_resync(const kvr_index_t *idx, uint64_t worker_id)
{
    kvr_worker_info_t  tmp;

    if (idx == NULL || kvr_worker_find(idx, worker_id, &tmp) < 0) {
        return 0;
    }
    return tmp.needs_resync != 0;
}
