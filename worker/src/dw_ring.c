/*
 * dynamo-worker: growable FIFO ring (see dw_ring.h).
 */
#include <stdlib.h>
#include <string.h>

#include "dw_ring.h"

void
dw_ring_init(dw_ring_t *r, size_t size, size_t first)
{
    memset(r, 0, sizeof(*r));
    r->size = size;
    r->first = first;
}

void *
dw_ring_at(const dw_ring_t *r, size_t i)
{
    return (char *) r->v + ((r->head + i) % r->cap) * r->size;
}

int
dw_ring_push(dw_ring_t *r, const void *src, size_t n)
{
    char    *v;
    size_t   cap, i;

    if (r->n + n > r->cap) {
        for (cap = r->cap ? r->cap : r->first; cap < r->n + n; cap *= 2) {
            /* void */
        }
        v = malloc(cap * r->size);
        if (v == NULL) {
            return -1;
        }
        for (i = 0; i < r->n; i++) {
            memcpy(v + i * r->size, dw_ring_at(r, i), r->size);
        }
        free(r->v);
        r->v = v;
        r->cap = cap;
        r->head = 0;
    }
    for (i = 0; i < n; i++) {
        memcpy(dw_ring_at(r, r->n + i), (const char *) src + i * r->size,
               r->size);
    }
    r->n += n;
    return 0;
}

size_t
dw_ring_pop(dw_ring_t *r, void *dst, size_t max)
{
    size_t  n, i;

    n = r->n < max ? r->n : max;
    for (i = 0; i < n; i++) {
        memcpy((char *) dst + i * r->size, dw_ring_at(r, i), r->size);
    }
    if (n > 0) {
        r->head = (r->head + n) % r->cap;
        r->n -= n;
    }
    return n;
}

void
dw_ring_free(dw_ring_t *r)
{
    free(r->v);
    r->v = NULL;
    r->cap = r->head = r->n = 0;
}
