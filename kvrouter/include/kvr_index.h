/*
 * kvrouter: the prefix index.
 *
 * Maps sequence hashes to the set of workers holding that block, plus a
 * table of workers (registration, load, event cursor). Lives entirely in a
 * caller-supplied memory region (e.g. an nginx shared-memory zone) and uses
 * offsets only, so the region may be mapped at different addresses.
 *
 * Concurrency: exactly one writer (kvr_index_apply & co.) at a time, any
 * number of concurrent readers (find_matches, workers), in threads or
 * processes sharing the region. Readers never block and never wait for a
 * writer's whole batch; see kvr_index.c for the scheme.
 */
#ifndef KVR_INDEX_H
#define KVR_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "kvr_event.h"
#include "kvr_worker.h"

typedef struct kvr_index_s  kvr_index_t;

/* Upper bound of max_workers (the holder bitmap costs max_workers bits). */
#define KVR_INDEX_MAX_WORKERS  1024

/*
 * Memory: about 1.5 * max_blocks * (16 + 8 * ceil(max_workers / 64)) bytes
 * (36 bytes per distinct block with <= 64 workers), plus a small worker table.
 *
 * Eviction: max_blocks is a hard bound. A new hash that finds the index full
 * (max_blocks hashes held) replaces the least recently stored hash among
 * the 64 table slots around its home slot (approximate LRU over ~40 live
 * candidates: each entry is stamped on every STORED/add of it, by any
 * worker); the victim's holders lose it (counted in stats.evictions).
 * Should those 64 slots hold no live entry while the index is full (not
 * seen in practice), the new hash is not stored (also counted). Probes are
 * bounded by a 256-slot window; a full window (practically impossible at
 * this load) also evicts its least recently stored entry. Size max_blocks
 * to the fleet's total KV capacity and workers' own REMOVED events keep the
 * index below it: eviction is the safety net.
 */
typedef struct {
    uint32_t  max_workers;     /* worker slots, 1..KVR_INDEX_MAX_WORKERS */
    uint64_t  max_blocks;      /* distinct block hashes kept, >= 1 */
} kvr_index_config_t;

typedef struct {
    uint64_t  worker_id;
    uint32_t  overlap_blocks;  /* leading query blocks the worker holds */
} kvr_match_t;

typedef struct {
    uint64_t  blocks;          /* distinct hashes present */
    uint64_t  capacity;        /* hash slots */
    uint64_t  evictions;       /* entries dropped by the eviction rule */
    uint64_t  events_applied;
    uint64_t  resyncs;         /* gaps/new generations detected */
    uint32_t  workers;
} kvr_index_stats_t;

/* Bytes a region needs for cfg (0 if cfg is invalid). */
size_t kvr_index_size(const kvr_index_config_t *cfg);

/*
 * Formats mem[0..len) as an empty index; NULL if len is too small or cfg is
 * invalid. mem must be 8-byte aligned; the index starts at its first 64-byte
 * boundary, so every process must map the region at the same address modulo
 * 64 (true of page-aligned mappings). Not safe against concurrent readers.
 */
kvr_index_t *kvr_index_init(void *mem, size_t len,
    const kvr_index_config_t *cfg);

/*
 * Uses a region already formatted by kvr_index_init (another process, or
 * after an nginx reload); NULL if mem does not hold a compatible index
 * (magic, layout version, struct sizes, internal geometry, length). It does
 * not know the caller's wishes: compare kvr_index_get_config with your
 * config to decide whether to reuse or re-init.
 */
kvr_index_t *kvr_index_attach(void *mem, size_t len);

/* The config the index was formatted with. */
void kvr_index_get_config(const kvr_index_t *idx, kvr_index_config_t *cfg);

/* ---- writer side: one writer at a time ---- */

/*
 * Applies one event. KVR_ERR_RESYNC (nothing applied, worker flagged) when
 * the event's generation differs from the worker's or its id is not the next
 * expected one; events at or below the cursor are ignored (KVR_OK), so
 * replays after a snapshot are harmless. An unknown worker is added.
 */
int kvr_index_apply(kvr_index_t *idx, const kvr_event_t *ev);

/*
 * Applies evs[0..n) in order, exactly as n kvr_index_apply calls would, but
 * prefetching table slots across event boundaries: faster for the batches of
 * small events a stream read returns. rc (NULL, or n entries) gets each
 * event's result. Returns the number of events that returned KVR_OK.
 */
size_t kvr_index_apply_many(kvr_index_t *idx, const kvr_event_t *evs,
    size_t n, int *rc);

/*
 * Starts a full resync of a worker: drops its blocks, sets its generation
 * and the id of the last event the snapshot includes; follow with
 * kvr_index_add_blocks for the snapshot contents.
 */
int kvr_index_reset_worker(kvr_index_t *idx, uint64_t worker_id,
    uint64_t generation, uint64_t last_event_id);

int kvr_index_add_blocks(kvr_index_t *idx, uint64_t worker_id,
    const uint64_t *seq, size_t n);

/*
 * Registers or updates a worker's info (registration and load). A new worker
 * takes info->generation as its event generation, cursor at 0 (its next
 * event must be id 1). For a known worker, a different generation means it
 * restarted: it is flagged for resync (its events will be refused until
 * kvr_index_reset_worker). The cursor fields of info (last_event_id, blocks,
 * needs_resync) are ignored. KVR_ERR_FULL when no worker slot is free.
 */
int kvr_index_set_worker(kvr_index_t *idx, const kvr_worker_info_t *info);

int kvr_index_set_load(kvr_index_t *idx, uint64_t worker_id,
    const kvr_load_t *load);

/* Drops a worker and all its blocks. */
int kvr_index_remove_worker(kvr_index_t *idx, uint64_t worker_id);

/* 1 if the worker is flagged for resync (after a detected gap), else 0. */
int kvr_index_needs_resync(const kvr_index_t *idx, uint64_t worker_id);

/* ---- reader side: any number, concurrently with the writer ---- */

/*
 * For the query's sequence hashes seq[0..n) (block 0 first), writes one entry
 * per worker holding at least the first block, with the number of leading
 * blocks it holds, into out[0..max_out); returns the number written. Entries
 * come longest overlap first, so a short out keeps the best matches.
 */
size_t kvr_index_find_matches(const kvr_index_t *idx, const uint64_t *seq,
    size_t n, kvr_match_t *out, size_t max_out);

/* Copies up to max workers' info into out; returns the number copied. */
size_t kvr_index_workers(const kvr_index_t *idx, kvr_worker_info_t *out,
    size_t max);

/* Gets one worker's info; KVR_ERR_NOTFOUND if absent. */
int kvr_index_get_worker(const kvr_index_t *idx, uint64_t worker_id,
    kvr_worker_info_t *out);

/* Blocks of one worker (0 if unknown). */
uint64_t kvr_index_worker_blocks(const kvr_index_t *idx, uint64_t worker_id);

void kvr_index_stats(const kvr_index_t *idx, kvr_index_stats_t *st);

#endif
