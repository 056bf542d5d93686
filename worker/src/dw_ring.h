/*
 * dynamo-worker: a growable FIFO ring of fixed-size elements (the
 * engine's output and KV-event queues). Not locked: the engine holds its
 * mutex around every call.
 */
#ifndef DW_RING_H
#define DW_RING_H

#include <stddef.h>

typedef struct {
    void    *v;
    size_t   size;      /* bytes per element */
    size_t   first;     /* capacity of the first allocation */
    size_t   cap;
    size_t   head;
    size_t   n;
} dw_ring_t;

/* An empty ring of elements of size bytes; nothing allocated yet. The
 * first push allocates first (> 0) elements, or more. */
void dw_ring_init(dw_ring_t *r, size_t size, size_t first);

/* Appends src[0..n); grows by doubling. 0, or -1 (out of memory: the
 * ring is unchanged). */
int dw_ring_push(dw_ring_t *r, const void *src, size_t n);

/* Moves up to max of the oldest elements to dst; returns how many. */
size_t dw_ring_pop(dw_ring_t *r, void *dst, size_t max);

/* The i-th oldest element (i < r->n). */
void *dw_ring_at(const dw_ring_t *r, size_t i);

/* Frees the storage (not what the elements point to). */
void dw_ring_free(dw_ring_t *r);

#endif /* DW_RING_H */
