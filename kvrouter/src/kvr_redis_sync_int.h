/*
 * kvrouter: internals of the sync reader (not installed), shared by
 *
 *   kvr_redis_sync.c           lifecycle, scheduling, reply dispatch,
 *                              failure paths
 *   kvr_redis_sync_workers.c   per-worker table, snapshot loading
 *   kvr_redis_sync_registry.c  registry poll (full resync, liveness, load)
 *   kvr_redis_sync_stream.c    stream follower
 *
 * The design (positions, snap_seq, full and single worker resync) is
 * described at the top of kvr_redis_sync.c.
 */
#ifndef KVR_REDIS_SYNC_INT_H
#define KVR_REDIS_SYNC_INT_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "kvr_err.h"
#include "kvr_index.h"
#include "kvr_redis.h"
#include "kvr_redis_int.h"

#define KVR_EPOCH_MAX      64

typedef enum {
    INF_NONE = 0,
    INF_REGISTRY,
    INF_SNAPSHOT,
    INF_XREAD
} inflight_t;

typedef enum {
    SW_PENDING = 0,     /* needs a snapshot; its stream entries skipped */
    SW_LIVE
} sw_state_t;

typedef struct {
    uint64_t  id;
    uint64_t  snap_seq;  /* evseq its snapshot was read at */
    uint8_t   state;
    uint8_t   seen;      /* mark for registry sweeps */
} sw_t;

struct kvr_sync_s {
    kvr_index_t       *idx;
    kvr_sync_config_t  cfg;

    char               prefix[KVR_REDIS_KEY_MAX];
    char               k_workers[KVR_REDIS_KEY_MAX];
    char               k_evseq[KVR_REDIS_KEY_MAX];
    char               k_events[KVR_REDIS_KEY_MAX];
    char               k_epoch[KVR_REDIS_KEY_MAX];
    char               k_w[KVR_REDIS_KEY_MAX];       /* per snapshot */
    char               k_blocks[KVR_REDIS_KEY_MAX];
    char               k_alive[KVR_REDIS_KEY_MAX];
    char               ns[KVR_REDIS_NS_MAX + 1];
    char               start_id[32];                 /* "<pos>-0" */
    kvr_argv_t         av;

    inflight_t         inflight;
    int                inflight_full;    /* the registry call starts a full */
    uint64_t           inflight_worker;

    int                need_full;
    int                full_running;     /* snapshots of a full pending */
    uint64_t           now;
    uint64_t           backoff_until;
    unsigned           err_streak;
    uint64_t           next_registry;
    uint64_t           next_stream;
    int                read_since_poll;  /* registry and stream take turns */

    uint64_t           pos;              /* last stream seq consumed */
    uint64_t           known_evseq;      /* evseq at the last registry read */
    int                have_epoch;
    char               epoch[KVR_EPOCH_MAX + 1];

    sw_t              *w;                /* sorted by id */
    size_t             nw;
    size_t             wcap;

    uint64_t          *seqbuf;
    size_t             seqcap;
    kvr_block_t       *blk;
    size_t             blkcap;

    kvr_sync_stats_t   st;
    uint64_t           empty_reads;
    char               err[160];
};

/* ---- reply access ---- */

static inline int
kvr_reply_is_str(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_STRING
           && (r->str != NULL || r->len == 0);
}

static inline int
kvr_reply_is_arr(const redisReply *r, size_t min)
{
    return r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= min
           && (r->element != NULL || r->elements == 0);
}

/* A decimal string or a non-negative integer reply. */
static inline int
kvr_reply_u64(const redisReply *r, uint64_t *v)
{
    if (r == NULL) {
        return KVR_ERR_INVAL;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        if (r->integer < 0) {
            return KVR_ERR_INVAL;
        }
        *v = (uint64_t) r->integer;
        return KVR_OK;
    }
    if (!kvr_reply_is_str(r)) {
        return KVR_ERR_INVAL;
    }
    return kvr_redis_parse_u64(r->str, r->len, v);
}

/* ---- failure paths, full resync (kvr_redis_sync.c) ---- */

void kvr__sync_set_err(kvr_sync_t *s, const char *what, const char *detail,
    size_t dlen);
void kvr__sync_start_full(kvr_sync_t *s);
/* An error or malformed reply: full resync after a growing backoff;
   returns rc. */
int kvr__sync_fail(kvr_sync_t *s, int rc, const char *what,
    const char *detail, size_t dlen);
int kvr__sync_malformed(kvr_sync_t *s, const char *what);
int kvr__sync_nomem(kvr_sync_t *s);
/* Ends a running full resync once no worker is pending; recounts. */
void kvr__sync_finish_full(kvr_sync_t *s);

/* ---- worker table, snapshots (kvr_redis_sync_workers.c) ---- */

sw_t *kvr__sw_find(kvr_sync_t *s, uint64_t id);
/* Finds or inserts (as PENDING); NULL when out of memory. */
sw_t *kvr__sw_get(kvr_sync_t *s, uint64_t id);
void kvr__sw_del(kvr_sync_t *s, sw_t *w);
/* Drops a worker from the table and the index. */
void kvr__sw_drop(kvr_sync_t *s, sw_t *w);
sw_t *kvr__sw_first_pending(kvr_sync_t *s);
void kvr__sw_count_live(kvr_sync_t *s);

/* KVR_ERR_INVAL if id makes no key. */
int kvr__sync_cmd_snapshot(kvr_sync_t *s, uint64_t id, kvr_cmd_t *cmd);
int kvr__sync_on_snapshot(kvr_sync_t *s, const redisReply *r);

/* ---- registry poll (kvr_redis_sync_registry.c) ---- */

void kvr__sync_cmd_registry(kvr_sync_t *s, kvr_cmd_t *cmd);
int kvr__sync_on_registry(kvr_sync_t *s, const redisReply *r, int full);

/* ---- stream follower (kvr_redis_sync_stream.c) ---- */

void kvr__sync_cmd_xread(kvr_sync_t *s, kvr_cmd_t *cmd);
int kvr__sync_on_xread(kvr_sync_t *s, const redisReply *r);

#endif
