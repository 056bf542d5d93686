/*
 * kvrouter: the sync reader's registry poll. One script call reads the
 * epoch, evseq and every live worker with its load; it starts a full
 * resync (every live worker reloads, the stream restarts at evseq) or,
 * between stream reads, detects a lost Redis, refreshes loads, and finds
 * workers that appeared or died.
 */
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "kvr_err.h"
#include "kvr_index.h"
#include "kvr_redis.h"
#include "kvr_redis_int.h"
#include "kvr_redis_sync_int.h"

void
kvr__sync_cmd_registry(kvr_sync_t *s, kvr_cmd_t *cmd)
{
    kvr_argv_t  *a = &s->av;

    kvr_argv_reset(a);
    kvr_argv_str(a, "EVAL");
    kvr_argv_str(a, kvr_redis_lua_registry);
    kvr_argv_str(a, "3");
    kvr_argv_str(a, s->k_workers);
    kvr_argv_str(a, s->k_evseq);
    kvr_argv_str(a, s->k_epoch);
    kvr_argv_str(a, s->prefix);
    (void) kvr_argv_cmd(a, cmd, 0);     /* fixed shape, cannot overflow */
    s->inflight = INF_REGISTRY;
}

typedef struct {
    const char  *epoch;
    size_t       epoch_len;
    uint64_t     evseq;
} registry_hdr_t;

/* Validates the whole registry reply before anything is changed. */
static int
parse_registry(kvr_sync_t *s, const redisReply *r, registry_hdr_t *h)
{
    size_t      i;
    uint64_t    id;
    kvr_load_t  load;

    if (!kvr_reply_is_arr(r, 2) || r->elements % 2 != 0) {
        return kvr__sync_malformed(s,
                                   "registry: not an even array of >= 2");
    }
    if (!kvr_reply_is_str(r->element[0])
        || r->element[0]->len > KVR_EPOCH_MAX)
    {
        return kvr__sync_malformed(s, "registry: bad epoch");
    }
    if (kvr_reply_u64(r->element[1], &h->evseq) != KVR_OK) {
        return kvr__sync_malformed(s, "registry: bad evseq");
    }
    for (i = 2; i < r->elements; i += 2) {
        if (kvr_reply_u64(r->element[i], &id) != KVR_OK
            || !kvr_reply_is_str(r->element[i + 1])
            || kvr_redis_load_parse(r->element[i + 1]->str,
                                    r->element[i + 1]->len, &load) != KVR_OK)
        {
            return kvr__sync_malformed(s, "registry: bad worker entry");
        }
    }
    h->epoch = r->element[0]->str;
    h->epoch_len = r->element[0]->len;
    return KVR_OK;
}

/* Removes index workers that the table does not hold (after a full). */
static int
sweep_index(kvr_sync_t *s)
{
    kvr_index_stats_t   ist;
    kvr_worker_info_t  *all;
    size_t              n, i;

    kvr_index_stats(s->idx, &ist);
    if (ist.workers == 0) {
        return KVR_OK;
    }
    all = malloc(ist.workers * sizeof(*all));
    if (all == NULL) {
        return KVR_ERR_NOMEM;
    }
    n = kvr_index_workers(s->idx, all, ist.workers);
    for (i = 0; i < n; i++) {
        if (kvr__sw_find(s, all[i].worker_id) == NULL
            && kvr_index_remove_worker(s->idx, all[i].worker_id) == KVR_OK)
        {
            s->st.workers_removed++;
        }
    }
    free(all);
    return KVR_OK;
}

int
kvr__sync_on_registry(kvr_sync_t *s, const redisReply *r, int full)
{
    registry_hdr_t  h;
    size_t          i;
    uint64_t        id;
    kvr_load_t      load;
    sw_t           *w;
    int             rc;

    rc = parse_registry(s, r, &h);
    if (rc != KVR_OK) {
        return rc;
    }

    if (!full) {
        if ((s->have_epoch && (h.epoch_len != strlen(s->epoch)
                               || memcmp(h.epoch, s->epoch, h.epoch_len)))
            || h.evseq < s->pos)
        {
            /* Redis restarted, was flushed, or failed over */
            s->st.restarts++;
            kvr__sync_start_full(s);
            return KVR_OK;
        }
    } else {
        memcpy(s->epoch, h.epoch, h.epoch_len);
        s->epoch[h.epoch_len] = '\0';
        s->have_epoch = 1;
        s->pos = h.evseq;
        s->st.stream_seq = h.evseq;
        s->need_full = 0;
        s->full_running = 1;
        s->next_stream = s->now;
        s->next_registry = s->now + s->cfg.registry_poll_ms;
    }
    s->known_evseq = h.evseq;

    for (i = 0; i < s->nw; i++) {
        s->w[i].seen = 0;
    }
    for (i = 2; i < r->elements; i += 2) {
        (void) kvr_reply_u64(r->element[i], &id);
        (void) kvr_redis_load_parse(r->element[i + 1]->str,
                                    r->element[i + 1]->len, &load);
        w = kvr__sw_get(s, id);
        if (w == NULL) {
            return kvr__sync_nomem(s);
        }
        w->seen = 1;
        if (full) {
            w->state = SW_PENDING;      /* every live worker reloads */
        } else if (w->state == SW_LIVE) {
            (void) kvr_index_set_load(s->idx, id, &load);
            if (kvr_index_needs_resync(s->idx, id)) {
                w->state = SW_PENDING;
            }
        }
    }
    for (i = s->nw; i-- > 0; ) {
        if (!s->w[i].seen) {
            kvr__sw_drop(s, &s->w[i]);  /* dead or unregistered */
        }
    }
    if (full && sweep_index(s) != KVR_OK) {
        return kvr__sync_nomem(s);
    }
    kvr__sync_finish_full(s);
    return KVR_OK;
}

