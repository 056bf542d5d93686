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

typedef struct {
    uint32_t  max_workers;     /* worker slots, >= 1 */
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

/* Bytes a region needs for cfg. */
size_t kvr_index_size(const kvr_index_config_t *cfg);

/* Formats mem[0..len) as an empty index; NULL if len is too small. */
kvr_index_t *kvr_index_init(void *mem, size_t len,
    const kvr_index_config_t *cfg);

/*
 * Uses a region already formatted by kvr_index_init (another process, or
 * after an nginx reload); NULL if mem does not hold a compatible index.
 */
kvr_index_t *kvr_index_attach(void *mem, size_t len);

/* ---- writer side: one writer at a time ---- */

/*
 * Applies one event. KVR_ERR_RESYNC (nothing applied, worker flagged) when
 * the event's generation differs from the worker's or its id is not the next
 * expected one; events at or below the cursor are ignored (KVR_OK), so
 * replays after a snapshot are harmless. An unknown worker is added.
 */
int kvr_index_apply(kvr_index_t *idx, const kvr_event_t *ev);

/*
 * Starts a full resync of a worker: drops its blocks, sets its generation
 * and the id of the last event the snapshot includes; follow with
 * kvr_index_add_blocks for the snapshot contents.
 */
int kvr_index_reset_worker(kvr_index_t *idx, uint64_t worker_id,
    uint64_t generation, uint64_t last_event_id);

int kvr_index_add_blocks(kvr_index_t *idx, uint64_t worker_id,
    const uint64_t *seq, size_t n);

/* Registers or updates a worker's info (registration and load). */
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
 * blocks it holds, into out[0..max_out); returns the number written.
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
