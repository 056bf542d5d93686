/*
 * dynamo-worker: the KV block manager (engine-internal).
 *
 * A fixed pool of n_blocks blocks of block_size tokens. Each block has a
 * reference count (sequences whose block table holds it). A block that is
 * full of computed tokens may be committed under its kvrouter sequence hash:
 * it then enters the prefix cache (hash map seq -> block) and a STORED
 * event is queued. When its last reference goes, a cached block joins the
 * tail of an intrusive LRU list instead of the free list; allocation takes
 * the free list first, then evicts the LRU head (REMOVED event). Every
 * operation is O(1) (commit and lookup: one hash-map probe per block).
 *
 * Duplicates: when two sequences compute the same block at once, the first
 * commit caches it; the second finds the hash present and its block stays
 * uncached (a private copy, returned to the free list when released). The
 * cache thus never holds a hash twice, so events stay consistent: a hash
 * is STORED when it enters the map and REMOVED when it leaves, alternately
 * (or, for all hashes at once, one CLEARED by dw_bm_reset).
 *
 * Not thread-safe: the engine thread alone uses it.
 */
#ifndef DW_BLOCK_INT_H
#define DW_BLOCK_INT_H

#include <stddef.h>
#include <stdint.h>

#include "dw_engine.h"

#define DW_BLK_NONE  UINT32_MAX

typedef struct {
    uint64_t  seq;        /* sequence hash when cached */
    uint64_t  local;
    uint32_t  ref;
    uint32_t  cached;     /* in the hash map */
    uint32_t  hnext;      /* hash chain */
    uint32_t  prev;       /* LRU list (cached, ref 0) or free stack link */
    uint32_t  next;
} dw_blk_t;

typedef struct {
    uint32_t        block_size;
    uint32_t        n_blocks;
    int             emit;          /* queue KV events */
    dw_blk_t       *blk;
    uint32_t       *free_stack;    /* ref 0, uncached */
    uint32_t        n_free;
    uint32_t        lru_head;      /* oldest cached unreferenced block */
    uint32_t        lru_tail;
    uint32_t        n_lru;
    uint32_t        n_cached;      /* blocks in the hash map */
    uint32_t        n_used;        /* blocks with ref > 0 */
    uint32_t       *buckets;
    uint32_t        mask;

    /* pending events, moved out by dw_bm_take_events */
    dw_kv_event_t  *ev;
    size_t          n_ev;
    size_t          ev_cap;
    size_t          ev_blocks_cap;  /* capacity of ev[n_ev - 1].blocks */
    int             ev_open;        /* last event may take more blocks */
} dw_bm_t;

int dw_bm_init(dw_bm_t *bm, uint32_t n_blocks, uint32_t block_size,
    int emit);
void dw_bm_free(dw_bm_t *bm);

/* Blocks an allocation can get now: free plus evictable. */
static inline uint32_t
dw_bm_available(const dw_bm_t *bm)
{
    return bm->n_free + bm->n_lru;
}

/* A free block (ref 1), evicting the LRU head if needed; DW_BLK_NONE. */
uint32_t dw_bm_alloc(dw_bm_t *bm);
/* The cached block of seq hash h, or DW_BLK_NONE; takes no reference. */
uint32_t dw_bm_lookup(const dw_bm_t *bm, uint64_t h);
/* Takes a reference on a block (a cached one leaves the LRU list). */
void dw_bm_ref(dw_bm_t *bm, uint32_t b);
/* Drops a reference; at 0 a cached block goes to the LRU tail. */
void dw_bm_release(dw_bm_t *bm, uint32_t b);
/*
 * Block b (referenced, full of computed tokens) holds the block whose
 * hashes are seq/local after parent (has_parent 0 for a first block).
 * Caches it and queues STORED, unless the hash is cached already (then b
 * stays a private copy). Returns 1 if cached, 0 if a duplicate.
 * Consecutive commits that chain (parent = the previous block's seq) join
 * one STORED event until dw_bm_close_event.
 */
int dw_bm_commit(dw_bm_t *bm, uint32_t b, int has_parent, uint64_t parent,
    uint64_t seq, uint64_t local);
void dw_bm_close_event(dw_bm_t *bm);
/*
 * Empties the prefix cache if no cached block is referenced: every cached
 * block goes to the free list, *dropped gets their count and one CLEARED
 * event is queued; returns 0. Returns -1 and changes nothing when
 * referenced cached blocks exist (*dropped then gets their count).
 */
int dw_bm_reset(dw_bm_t *bm, uint32_t *dropped);
/*
 * Moves the pending events out: *out gets a malloc'd array (or NULL) of
 * *n events that the caller frees; the manager's queue is empty after.
 */
void dw_bm_take_events(dw_bm_t *bm, dw_kv_event_t **out, size_t *n);

#endif
