#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index_events.h"

int
tu_apply(kvr_index_t *idx, kvr_event_type_t type, uint64_t wid,
    uint64_t gen, uint64_t id, const uint64_t *seq, size_t n)
{
    kvr_block_t  b[TU_MAX_BLOCKS];
    kvr_event_t  ev;
    size_t       i;

    if (n > TU_MAX_BLOCKS) {
        fprintf(stderr, "tu_apply: %zu blocks > %d\n", n, TU_MAX_BLOCKS);
        abort();
    }
    for (i = 0; i < n; i++) {
        b[i].seq = seq[i];
        b[i].local = ~seq[i];
    }
    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.worker_id = wid;
    ev.generation = gen;
    ev.event_id = id;
    ev.nblocks = n;
    ev.blocks = n ? b : NULL;
    return kvr_index_apply(idx, &ev);
}

uint64_t
tu_rng(uint64_t *s)
{
    uint64_t  z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
