/*
 * kvrouter: the router-side sync reader, a state machine with no I/O.
 *
 * It keeps a kvr_index_t equal to Redis: a full snapshot first, then the
 * event stream. Positions are stream seqs: every entry is "<seq>-0", seq
 * from the INCR counter evseq that the publisher script bumps in the same
 * atomic call, so entries are contiguous and a reader at seq L knows the
 * next one must be L+1; anything else means entries were trimmed away.
 *
 * Per worker it remembers snap_seq, the evseq its last snapshot was read
 * at (atomically with the set): every entry at or below it is already in
 * the snapshot, so it is skipped. That makes snapshots and the stream
 * compose without the index having to order generations.
 *
 * Full resync (at start, after a disconnect, a gap, an error, an epoch
 * change or evseq going backwards): registry script (epoch, evseq E, live
 * workers), then one snapshot per live worker, then the stream from E.
 * E is read before any snapshot, so nothing between them is missed.
 *
 * Single worker resync (a SNAPSHOT entry, the index refusing an event, a
 * worker flagged by the index, or a worker seen alive that is not loaded):
 * the worker turns PENDING, its entries are skipped until its snapshot is
 * loaded (the snapshot, read later, covers them), and snapshots go before
 * the next stream read.
 *
 * Workers not alive (no alive key) or not registered leave the index.
 *
 * This file: lifecycle, scheduling, reply dispatch, failure paths. The
 * worker table and snapshots, the registry poll and the stream follower
 * are in kvr_redis_sync_workers.c, _registry.c and _stream.c; the state
 * they share is in kvr_redis_sync_int.h.
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
kvr_sync_config_defaults(kvr_sync_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->batch = KVR_REDIS_SYNC_BATCH;
    cfg->stream_poll_ms = KVR_REDIS_STREAM_POLL_MS;
    cfg->registry_poll_ms = KVR_REDIS_REGISTRY_MS;
    cfg->retry_ms = KVR_REDIS_RETRY_MS;
}

kvr_sync_t *
kvr_sync_create(const kvr_sync_config_t *cfg, kvr_index_t *idx)
{
    kvr_sync_t  *s;
    const char  *ns;

    if (cfg == NULL || idx == NULL || kvr_redis_ns_valid(cfg->ns) != KVR_OK
        || cfg->batch == 0)
    {
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->idx = idx;
    s->cfg = *cfg;
    ns = cfg->ns;
    memcpy(s->ns, ns, strlen(ns) + 1);
    s->cfg.ns = s->ns;

    if (kvr_redis_key(s->prefix, sizeof(s->prefix), ns, NULL, 0, 0) < 0
        || kvr_redis_key(s->k_workers, sizeof(s->k_workers), ns, "workers",
                         0, 0) < 0
        || kvr_redis_key(s->k_evseq, sizeof(s->k_evseq), ns, "evseq", 0, 0)
           < 0
        || kvr_redis_key(s->k_events, sizeof(s->k_events), ns, "events", 0, 0)
           < 0
        || kvr_redis_key(s->k_epoch, sizeof(s->k_epoch), ns, "epoch", 0, 0)
           < 0)
    {
        free(s);
        return NULL;
    }
    s->need_full = 1;
    return s;
}

void
kvr_sync_destroy(kvr_sync_t *s)
{
    if (s == NULL) {
        return;
    }
    free(s->w);
    free(s->seqbuf);
    free(s->blk);
    free(s);
}

/* ---- failure paths ---- */

void
kvr__sync_set_err(kvr_sync_t *s, const char *what, const char *detail,
    size_t dlen)
{
    size_t  n = strlen(what), room = sizeof(s->err) - 1;

    if (n > room) {
        n = room;
    }
    memcpy(s->err, what, n);
    if (detail != NULL && n + 2 < room) {
        s->err[n++] = ':';
        s->err[n++] = ' ';
        if (dlen > room - n) {
            dlen = room - n;
        }
        memcpy(s->err + n, detail, dlen);
        n += dlen;
    }
    s->err[n] = '\0';
}

void
kvr__sync_start_full(kvr_sync_t *s)
{
    s->need_full = 1;
    s->full_running = 0;
}

/* An error or malformed reply: full resync after a growing backoff. */
int
kvr__sync_fail(kvr_sync_t *s, int rc, const char *what, const char *detail,
    size_t dlen)
{
    unsigned  shift = s->err_streak < 5 ? s->err_streak : 5;

    kvr__sync_set_err(s, what, detail, dlen);
    s->st.errors++;
    s->err_streak++;
    s->backoff_until = s->now + ((uint64_t) s->cfg.retry_ms << shift);
    kvr__sync_start_full(s);
    return rc;
}

int
kvr__sync_malformed(kvr_sync_t *s, const char *what)
{
    return kvr__sync_fail(s, KVR_ERR_INVAL, "malformed reply", what,
                          strlen(what));
}

int
kvr__sync_nomem(kvr_sync_t *s)
{
    return kvr__sync_fail(s, KVR_ERR_NOMEM, "out of memory", NULL, 0);
}

void
kvr__sync_finish_full(kvr_sync_t *s)
{
    if (s->full_running && kvr__sw_first_pending(s) == NULL) {
        s->full_running = 0;
        s->st.full_resyncs++;
        s->err_streak = 0;
    }
    kvr__sw_count_live(s);
}

/* ---- scheduling ---- */

int
kvr_sync_next(kvr_sync_t *s, uint64_t now_ms, kvr_cmd_t *cmd,
    uint64_t *wake_ms)
{
    uint64_t  wake;
    sw_t     *w;

    if (s == NULL || cmd == NULL) {
        return KVR_ERR_INVAL;
    }
    cmd->argc = 0;
    if (s->inflight != INF_NONE) {
        if (wake_ms) {
            *wake_ms = UINT64_MAX;
        }
        return 0;
    }
    s->now = now_ms;

    if (now_ms < s->backoff_until) {
        if (wake_ms) {
            *wake_ms = s->backoff_until;
        }
        return 0;
    }

    if (s->need_full) {
        kvr__sync_cmd_registry(s, cmd);
        s->inflight_full = 1;
        return 1;
    }

    while ((w = kvr__sw_first_pending(s)) != NULL) {
        if (kvr__sync_cmd_snapshot(s, w->id, cmd) == KVR_OK) {
            return 1;
        }
        kvr__sw_del(s, w);              /* id not representable: drop */
    }

    /* when both are due they alternate, so neither starves the other */
    if (now_ms >= s->next_registry
        && (s->read_since_poll || now_ms < s->next_stream))
    {
        kvr__sync_cmd_registry(s, cmd);
        s->inflight_full = 0;
        s->read_since_poll = 0;
        s->next_registry = now_ms + s->cfg.registry_poll_ms;
        return 1;
    }

    if (now_ms >= s->next_stream) {
        kvr__sync_cmd_xread(s, cmd);
        s->read_since_poll = 1;
        return 1;
    }

    wake = s->next_registry < s->next_stream ? s->next_registry
                                             : s->next_stream;
    if (wake_ms) {
        *wake_ms = wake;
    }
    return 0;
}

/* ---- replies ---- */

int
kvr_sync_on_reply(kvr_sync_t *s, const redisReply *r)
{
    inflight_t  kind;
    int         full;

    if (s == NULL || s->inflight == INF_NONE) {
        return KVR_ERR_INVAL;
    }
    kind = s->inflight;
    full = s->inflight_full;
    s->inflight = INF_NONE;

    if (r == NULL) {
        kvr_sync_on_disconnect(s);
        return KVR_ERR_REDIS;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        return kvr__sync_fail(s, KVR_ERR_REDIS, "error reply", r->str,
                              r->str ? r->len : 0);
    }

    switch (kind) {
    case INF_REGISTRY:
        return kvr__sync_on_registry(s, r, full);
    case INF_SNAPSHOT:
        return kvr__sync_on_snapshot(s, r);
    default:
        return kvr__sync_on_xread(s, r);
    }
}

void
kvr_sync_on_disconnect(kvr_sync_t *s)
{
    if (s == NULL) {
        return;
    }
    s->inflight = INF_NONE;
    s->st.disconnects++;
    kvr__sync_start_full(s);
}

void
kvr_sync_stats(const kvr_sync_t *s, kvr_sync_stats_t *st)
{
    *st = s->st;
}

const char *
kvr_sync_last_error(const kvr_sync_t *s)
{
    return s->err;
}

/* For the blocking driver: reads that came back empty so far. */
uint64_t
kvr__sync_empty_reads(const kvr_sync_t *s)
{
    return s->empty_reads;
}
