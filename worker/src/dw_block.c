/*
 * dynamo-worker: the KV block manager (see dw_block_int.h).
 *
 * Free blocks sit on a stack (LIFO keeps recently used memory warm).
 * Cached unreferenced blocks form a doubly linked LRU list through
 * prev/next (head = least recently released = next victim). The hash map
 * is chained through hnext, with a power-of-two bucket count of at least
 * twice the pool, so chains stay short.
 */
#include <stdlib.h>
#include <string.h>

#include "dw_block_int.h"

#define DW_EV_MIN_BLOCKS  4

static inline uint32_t
dw_bm_bucket(const dw_bm_t *bm, uint64_t h)
{
    return (uint32_t) ((h * 0x9e3779b97f4a7c15ULL) >> 32) & bm->mask;
}

int
dw_bm_init(dw_bm_t *bm, uint32_t n_blocks, uint32_t block_size, int emit)
{
    uint32_t  i, nb;

    memset(bm, 0, sizeof(*bm));
    if (n_blocks == 0 || n_blocks >= DW_BLK_NONE / 4 || block_size == 0) {
        return -1;
    }

    for (nb = 16; nb < 2 * n_blocks; nb <<= 1) {
        /* void */
    }

    bm->blk = calloc(n_blocks, sizeof(dw_blk_t));
    bm->free_stack = malloc(n_blocks * sizeof(uint32_t));
    bm->buckets = malloc(nb * sizeof(uint32_t));
    if (bm->blk == NULL || bm->free_stack == NULL || bm->buckets == NULL) {
        dw_bm_free(bm);
        return -1;
    }

    bm->block_size = block_size;
    bm->n_blocks = n_blocks;
    bm->emit = emit;
    bm->mask = nb - 1;
    bm->lru_head = DW_BLK_NONE;
    bm->lru_tail = DW_BLK_NONE;
    for (i = 0; i < nb; i++) {
        bm->buckets[i] = DW_BLK_NONE;
    }
    /* block 0 on top of the stack */
    for (i = 0; i < n_blocks; i++) {
        bm->free_stack[i] = n_blocks - 1 - i;
        bm->blk[i].hnext = DW_BLK_NONE;
        bm->blk[i].prev = DW_BLK_NONE;
        bm->blk[i].next = DW_BLK_NONE;
    }
    bm->n_free = n_blocks;

    return 0;
}

void
dw_bm_free(dw_bm_t *bm)
{
    size_t  i;

    for (i = 0; i < bm->n_ev; i++) {
        dw_kv_event_free(&bm->ev[i]);
    }
    free(bm->ev);
    free(bm->blk);
    free(bm->free_stack);
    free(bm->buckets);
    memset(bm, 0, sizeof(*bm));
}

/* ---- LRU list ---- */

static void
dw_lru_unlink(dw_bm_t *bm, uint32_t b)
{
    dw_blk_t  *k = &bm->blk[b];

    if (k->prev != DW_BLK_NONE) {
        bm->blk[k->prev].next = k->next;
    } else {
        bm->lru_head = k->next;
    }
    if (k->next != DW_BLK_NONE) {
        bm->blk[k->next].prev = k->prev;
    } else {
        bm->lru_tail = k->prev;
    }
    k->prev = DW_BLK_NONE;
    k->next = DW_BLK_NONE;
    bm->n_lru--;
}

static void
dw_lru_push_tail(dw_bm_t *bm, uint32_t b)
{
    dw_blk_t  *k = &bm->blk[b];

    k->prev = bm->lru_tail;
    k->next = DW_BLK_NONE;
    if (bm->lru_tail != DW_BLK_NONE) {
        bm->blk[bm->lru_tail].next = b;
    } else {
        bm->lru_head = b;
    }
    bm->lru_tail = b;
    bm->n_lru++;
}

/* ---- hash map ---- */

uint32_t
dw_bm_lookup(const dw_bm_t *bm, uint64_t h)
{
    uint32_t  b;

    for (b = bm->buckets[dw_bm_bucket(bm, h)]; b != DW_BLK_NONE;
         b = bm->blk[b].hnext)
    {
        if (bm->blk[b].seq == h) {
            return b;
        }
    }

    return DW_BLK_NONE;
}

static void
dw_map_remove(dw_bm_t *bm, uint32_t b)
{
    uint32_t  *p = &bm->buckets[dw_bm_bucket(bm, bm->blk[b].seq)];

    while (*p != b) {
        p = &bm->blk[*p].hnext;
    }
    *p = bm->blk[b].hnext;
    bm->blk[b].hnext = DW_BLK_NONE;
    bm->blk[b].cached = 0;
    bm->n_cached--;
}

/* ---- events ---- */

static dw_kv_event_t *
dw_ev_new(dw_bm_t *bm, kvr_event_type_t type)
{
    dw_kv_event_t  *ev, *nev;
    size_t          cap;

    if (bm->n_ev == bm->ev_cap) {
        cap = bm->ev_cap ? 2 * bm->ev_cap : 16;
        nev = realloc(bm->ev, cap * sizeof(dw_kv_event_t));
        if (nev == NULL) {
            return NULL;
        }
        bm->ev = nev;
        bm->ev_cap = cap;
    }
    ev = &bm->ev[bm->n_ev];
    memset(ev, 0, sizeof(*ev));
    ev->type = type;
    ev->blocks = malloc(DW_EV_MIN_BLOCKS * sizeof(kvr_block_t));
    if (ev->blocks == NULL) {
        return NULL;
    }
    bm->ev_blocks_cap = DW_EV_MIN_BLOCKS;
    bm->n_ev++;
    bm->ev_open = 1;

    return ev;
}

/* Appends a block to ev (the last event); -1 on allocation failure. */
static int
dw_ev_push(dw_bm_t *bm, dw_kv_event_t *ev, uint64_t seq, uint64_t local)
{
    kvr_block_t  *nb;

    if (ev->n == bm->ev_blocks_cap) {
        nb = realloc(ev->blocks, 2 * ev->n * sizeof(kvr_block_t));
        if (nb == NULL) {
            return -1;
        }
        ev->blocks = nb;
        bm->ev_blocks_cap = 2 * ev->n;
    }
    ev->blocks[ev->n].seq = seq;
    ev->blocks[ev->n].local = local;
    ev->n++;

    return 0;
}

/*
 * Events are best effort under memory exhaustion: a lost event leaves the
 * router's view stale, which only costs routing quality, and the worker's
 * next snapshot repairs it.
 */
static void
dw_ev_removed(dw_bm_t *bm, uint64_t seq)
{
    dw_kv_event_t  *ev = NULL;

    if (!bm->emit) {
        return;
    }
    if (bm->ev_open && bm->n_ev > 0
        && bm->ev[bm->n_ev - 1].type == KVR_EV_REMOVED)
    {
        ev = &bm->ev[bm->n_ev - 1];
    } else {
        ev = dw_ev_new(bm, KVR_EV_REMOVED);
    }
    if (ev != NULL) {
        (void) dw_ev_push(bm, ev, seq, 0);
    }
}

static void
dw_ev_stored(dw_bm_t *bm, int has_parent, uint64_t parent, uint64_t seq,
    uint64_t local)
{
    dw_kv_event_t  *ev = NULL;

    if (!bm->emit) {
        return;
    }
    if (bm->ev_open && bm->n_ev > 0 && has_parent) {
        ev = &bm->ev[bm->n_ev - 1];
        if (ev->type != KVR_EV_STORED || ev->n == 0
            || ev->blocks[ev->n - 1].seq != parent)
        {
            ev = NULL;
        }
    }
    if (ev == NULL) {
        ev = dw_ev_new(bm, KVR_EV_STORED);
        if (ev == NULL) {
            return;
        }
        ev->has_parent = has_parent;
        ev->parent = has_parent ? parent : 0;
    }
    (void) dw_ev_push(bm, ev, seq, local);
}

void
dw_bm_close_event(dw_bm_t *bm)
{
    bm->ev_open = 0;
}

void
dw_bm_take_events(dw_bm_t *bm, dw_kv_event_t **out, size_t *n)
{
    *out = bm->ev;
    *n = bm->n_ev;
    bm->ev = NULL;
    bm->n_ev = 0;
    bm->ev_cap = 0;
    bm->ev_open = 0;
}

/* ---- blocks ---- */

uint32_t
dw_bm_alloc(dw_bm_t *bm)
{
    uint32_t  b;

    if (bm->n_free > 0) {
        b = bm->free_stack[--bm->n_free];
    } else if (bm->lru_head != DW_BLK_NONE) {
        b = bm->lru_head;
        dw_lru_unlink(bm, b);
        dw_map_remove(bm, b);
        dw_ev_removed(bm, bm->blk[b].seq);
    } else {
        return DW_BLK_NONE;
    }

    bm->blk[b].ref = 1;
    bm->blk[b].seq = 0;
    bm->blk[b].local = 0;
    bm->n_used++;

    return b;
}

void
dw_bm_ref(dw_bm_t *bm, uint32_t b)
{
    dw_blk_t  *k = &bm->blk[b];

    if (k->ref++ == 0) {
        /* only cached blocks live on with ref 0 */
        dw_lru_unlink(bm, b);
        bm->n_used++;
    }
}

void
dw_bm_release(dw_bm_t *bm, uint32_t b)
{
    dw_blk_t  *k = &bm->blk[b];

    if (--k->ref > 0) {
        return;
    }
    bm->n_used--;
    if (k->cached) {
        dw_lru_push_tail(bm, b);
    } else {
        bm->free_stack[bm->n_free++] = b;
    }
}

int
dw_bm_commit(dw_bm_t *bm, uint32_t b, int has_parent, uint64_t parent,
    uint64_t seq, uint64_t local)
{
    dw_blk_t  *k = &bm->blk[b];
    uint32_t   h;

    if (k->cached || dw_bm_lookup(bm, seq) != DW_BLK_NONE) {
        return 0;
    }

    k->seq = seq;
    k->local = local;
    k->cached = 1;
    h = dw_bm_bucket(bm, seq);
    k->hnext = bm->buckets[h];
    bm->buckets[h] = b;
    bm->n_cached++;
    dw_ev_stored(bm, has_parent, parent, seq, local);

    return 1;
}

int
dw_bm_reset(dw_bm_t *bm, uint32_t *dropped)
{
    uint32_t  b, n = 0;

    if (bm->n_cached > bm->n_lru) {
        *dropped = bm->n_cached - bm->n_lru;
        return -1;
    }
    /* every cached block is on the LRU list now */
    while ((b = bm->lru_head) != DW_BLK_NONE) {
        dw_lru_unlink(bm, b);
        dw_map_remove(bm, b);
        bm->blk[b].seq = 0;
        bm->blk[b].local = 0;
        bm->free_stack[bm->n_free++] = b;
        n++;
    }
    *dropped = n;
    if (bm->emit) {
        /* best effort like the others (see dw_ev_removed) */
        (void) dw_ev_new(bm, KVR_EV_CLEARED);
        bm->ev_open = 0;
    }

    return 0;
}
