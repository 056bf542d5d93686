/*
 * dynamo-worker: KV event helpers of dw_engine.h.
 */
#include <stdlib.h>

#include "dw_engine.h"

void
dw_kv_event_free(dw_kv_event_t *ev)
{
    if (ev == NULL) {
        return;
    }
    free(ev->blocks);
    ev->blocks = NULL;
    ev->n = 0;
}
