/*
 * kvrouter: prefix index internals shared by kvr_index.c (block table) and
 * kvr_index_workers.c (worker table). Not a public header.
 *
 * Region layout (all offsets from the header, which sits at the first
 * 64-byte boundary of the caller's memory):
 *
 *   header      struct kvr_index_s
 *   workers     max_workers x kvr_wentry_t   (reader-visible, seqlocked)
 *   ids         max_workers x _Atomic u64    (slot -> worker id, compact)
 *   idmap       idmap_mask+1 x kvr_idmap_t   (worker id -> slot, writer only)
 *   slots       nslots x slot_bytes          (block table, seqlocked)
 */
#ifndef KVR_INDEX_INT_H
#define KVR_INDEX_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kvr_err.h"
#include "kvr_index.h"

#define KVR_INDEX_MAGIC      0x58444e4952564b31ULL  /* "1KVRINDX" LE */
#define KVR_INDEX_LAYOUT     2
#define KVR_INDEX_ALIGN      64

/*
 * A hash's slot lies in [home, home + KVR_PROBE): the probe window. Long
 * enough that linear probing at load <= 2/3 practically never fills one
 * (a cluster of 256 has probability ~e^-23), short enough to bound probes.
 */
#define KVR_PROBE            256

/* Slots, centred on the home slot, searched for an eviction victim. */
#define KVR_VICTIMS          64

/* Home slots per max_blocks: load factor <= 2/3 when full. */
#define KVR_SLOTS_NUM        3
#define KVR_SLOTS_DEN        2

#define KVR_MAX_WORDS        (KVR_INDEX_MAX_WORKERS / 64)
#define KVR_MAX_BLOCKS_CFG   (1ULL << 40)

/* Readers give up on a slot or entry after this many torn reads. */
#define KVR_SEQ_TRIES        4096

/* Key 0 marks an empty slot; a real hash of 0 is stored as this. */
#define KVR_KEY_ZERO         0x9e3779b97f4a7c15ULL

#define KVR_WINFO_WORDS  ((sizeof(kvr_worker_info_t) + 7) / 8)

typedef struct {
    _Atomic uint64_t  key;        /* 0: empty; holders all 0: tombstone */
    _Atomic uint32_t  seq;        /* seqlock: odd while the writer edits */
    uint32_t          stamp;      /* writer only: clock at last store */
    _Atomic uint64_t  bits[];     /* holder bitmap, words per slot */
} kvr_slot_t;

typedef struct {
    _Atomic uint32_t  seq;        /* seqlock over used, id, gen, info */
    _Atomic uint32_t  used;
    _Atomic uint64_t  id;
    _Atomic uint64_t  gen;        /* event generation (cursor) */
    _Atomic uint64_t  last_event; /* cursor; single-word updates */
    _Atomic uint64_t  blocks;     /* single-word updates */
    _Atomic uint32_t  resync;     /* single-word updates */
    uint32_t          pad;
    _Atomic uint64_t  info[KVR_WINFO_WORDS];  /* kvr_worker_info_t image */
} kvr_wentry_t;

typedef struct {
    uint64_t  id;
    uint32_t  slot1;              /* worker slot + 1; 0: empty */
    uint32_t  pad;
} kvr_idmap_t;

struct kvr_index_s {
    uint64_t          magic;
    uint32_t          layout;
    uint32_t          hdr_bytes;
    uint32_t          winfo_bytes;
    uint32_t          went_bytes;
    uint32_t          slot_bytes;
    uint32_t          probe;
    uint64_t          region_bytes; /* from the header to the end */
    uint32_t          max_workers;
    uint32_t          words;        /* bitmap words per slot */
    uint64_t          max_blocks;
    uint64_t          nhome;        /* home slots: [0, nhome) */
    uint64_t          nslots;       /* nhome + KVR_PROBE */
    uint64_t          idmap_mask;
    uint64_t          off_workers;
    uint64_t          off_ids;
    uint64_t          off_idmap;
    uint64_t          off_slots;

    /* writer-only state */
    uint32_t          clock;        /* ticks once per write call */
    uint32_t          next_wslot;   /* round-robin worker slot allocation */
    uint64_t          live;         /* distinct hashes with holders */
    uint64_t          tombstones;

    /* written by the writer, read by anyone */
    _Atomic uint64_t  st_blocks;
    _Atomic uint64_t  st_evictions;
    _Atomic uint64_t  st_events;
    _Atomic uint64_t  st_resyncs;
    _Atomic uint32_t  st_workers;
    _Atomic uint32_t  ready;        /* set last by init */
    _Atomic uint64_t  slot_epoch;   /* bumped before a worker slot gets an id */
};

#define kvr_rlx  memory_order_relaxed
#define kvr_acq  memory_order_acquire
#define kvr_rel  memory_order_release

static inline void
kvr_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline kvr_slot_t *
kvr_slot_at(const kvr_index_t *idx, uint64_t i)
{
    return (kvr_slot_t *) ((char *) idx + idx->off_slots
                           + i * idx->slot_bytes);
}

static inline kvr_wentry_t *
kvr_went_at(const kvr_index_t *idx, uint32_t s)
{
    return (kvr_wentry_t *) ((char *) idx + idx->off_workers
                             + (uint64_t) s * idx->went_bytes);
}

static inline _Atomic uint64_t *
kvr_ids(const kvr_index_t *idx)
{
    return (_Atomic uint64_t *) ((char *) idx + idx->off_ids);
}

static inline kvr_idmap_t *
kvr_idmap(const kvr_index_t *idx)
{
    return (kvr_idmap_t *) ((char *) idx + idx->off_idmap);
}

/*
 * Seqlock write section (writer only): begin, release stores of the
 * guarded fields, end. The release stores keep the odd counter ahead of the
 * data (and readers load data with acquire), so no fences are needed.
 * Self-healing: if a writer died with the counter odd, begin keeps it odd
 * and end makes it even again.
 */
static inline void
kvr_seq_begin(_Atomic uint32_t *seq)
{
    uint32_t  q = atomic_load_explicit(seq, kvr_rlx);

    atomic_store_explicit(seq, (q + 1) | 1, kvr_rlx);
}

static inline void
kvr_seq_end(_Atomic uint32_t *seq)
{
    uint32_t  q = atomic_load_explicit(seq, kvr_rlx);

    atomic_store_explicit(seq, q + 1, kvr_rel);
}

static inline void
kvr_stat_add(_Atomic uint64_t *st, int64_t d)
{
    atomic_store_explicit(st, atomic_load_explicit(st, kvr_rlx)
                          + (uint64_t) d, kvr_rel);
}

/* kvr_index.c: drops every bit of worker slot s (sweep); returns count. */
uint64_t kvr__index_drop_worker(kvr_index_t *idx, uint32_t s);

/* kvr_index_workers.c */
int kvr__worker_lookup(const kvr_index_t *idx, uint64_t id);
int kvr__worker_add(kvr_index_t *idx, uint64_t id, uint64_t gen);
void kvr__worker_set_cursor(kvr_index_t *idx, uint32_t s, uint64_t gen,
    uint64_t last_event);
void kvr__worker_flag_resync(kvr_index_t *idx, uint32_t s);

#endif
