/*
 * dynamo-worker: one worker's Redis publisher on the I/O thread: a
 * kvr_pub_t driven over an async hiredis connection (libevent adapter).
 *
 * Start (dw_redis_create): a blocking connect, AUTH/SELECT and register,
 * so an unreachable or misconfigured Redis fails the start with a clear
 * message. Then the async connection carries events and heartbeats; when
 * it drops or stalls (hiredis 0.14 has no async timeouts: own timer) the
 * worker keeps serving, reconnects with backoff and registers again, which
 * republishes its whole block set. Stop (dw_redis_destroy): unregisters
 * over a short blocking connection.
 */
#ifndef DW_REDIS_H
#define DW_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "dw_engine.h"
#include "kvr_redis.h"

typedef struct dw_redis_s  dw_redis_t;

typedef struct {
    const char  *addr;        /* host:port (IP literal) or unix:/path */
    const char  *password;    /* NULL: no AUTH */
    uint32_t     db;
} dw_redis_conf_t;

typedef struct {
    int       connected;
    uint64_t  connects;       /* successful async connects */
    uint64_t  disconnects;
    uint64_t  registers;      /* register commands sent (incl. the first) */
    uint64_t  events;         /* KV event commands sent */
    uint64_t  events_ok;      /* ... acknowledged by Redis */
    uint64_t  events_dropped; /* not sent (disconnected): in next register */
    uint64_t  heartbeats;
    uint64_t  errors;         /* error replies */
} dw_redis_stats_t;

dw_redis_t *dw_redis_create(struct event_base *base,
    const dw_redis_conf_t *rc, const kvr_pub_config_t *pc, char *err,
    size_t errlen);
/* Unregisters (best effort, bounded wait) and frees. */
void dw_redis_destroy(dw_redis_t *r);

/* Publishes one engine KV event (the mirror is updated in any case). */
void dw_redis_kv_event(dw_redis_t *r, const dw_kv_event_t *ev);
/* Sends a heartbeat with this load now. */
void dw_redis_heartbeat(dw_redis_t *r, const kvr_load_t *load);
int dw_redis_ready(const dw_redis_t *r);  /* connected and registered */
void dw_redis_stats(const dw_redis_t *r, dw_redis_stats_t *st);

#endif
