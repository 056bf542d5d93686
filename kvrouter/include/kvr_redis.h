/*
 * kvrouter: the shared KV state in Redis (schema in kvrouter/README.md,
 * "Redis schema").
 *
 * Two sides:
 *
 *   kvr_pub_t   worker side. Keeps a local mirror of the worker's stored
 *               blocks and publishes every cache change as one atomic Lua
 *               script call (stream entry + block set + cursor together).
 *   kvr_sync_t  router side. A transport-agnostic state machine that yields
 *               the next Redis command to send and consumes its reply,
 *               keeping a kvr_index_t equal to what Redis holds.
 *
 * Both are pure: they build commands (kvr_cmd_t: argc/argv/argvlen, binary
 * safe, for redisCommandArgv / redisAsyncCommandArgv or any other client)
 * and read hiredis redisReply trees, but never do I/O themselves. Thin
 * blocking adapters over a hiredis redisContext (kvr_redis_block.c) are
 * provided for tests and tools; nginx and the worker drive the same state
 * machines from their async connections.
 *
 * hiredis types are only forward-declared here: including this header does
 * not require hiredis.
 */
#ifndef KVR_REDIS_H
#define KVR_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "kvr_event.h"
#include "kvr_index.h"
#include "kvr_worker.h"

struct redisReply;
struct redisContext;

#define KVR_REDIS_SCHEMA     "v1"
#define KVR_REDIS_NS_MAX     128   /* namespace length limit, bytes */
#define KVR_REDIS_KEY_MAX    192   /* any key: prefix + name + u64 */

/* Defaults set by kvr_pub_config_defaults / kvr_sync_config_defaults. */
#define KVR_REDIS_ALIVE_TTL_MS    3000
#define KVR_REDIS_RETAIN_MS       600000
#define KVR_REDIS_STREAM_MAXLEN   100000
#define KVR_REDIS_SYNC_BATCH      256
#define KVR_REDIS_STREAM_POLL_MS  10
#define KVR_REDIS_REGISTRY_MS     100   /* load figures are routing inputs */
#define KVR_REDIS_RETRY_MS        200

/*
 * One Redis command. argv/argvlen point into the object that built it and
 * stay valid until the next call on that object; send it before then
 * (hiredis copies the command when it is appended). seq numbers the
 * commands a publisher built, for kvr_pub_on_reply.
 */
typedef struct {
    int            argc;
    const char   **argv;
    const size_t  *argvlen;
    uint64_t       seq;
} kvr_cmd_t;

/* ---- schema helpers (kvr_redis_keys.c) ---- */

/*
 * Checks a namespace: 1..KVR_REDIS_NS_MAX printable ASCII bytes, no space,
 * ':', '{' or '}'. KVR_OK or KVR_ERR_INVAL.
 */
int kvr_redis_ns_valid(const char *ns);

/*
 * Writes the key "dyn:v1:<ns>:<name>" (name NULL: just the prefix, with its
 * trailing ':'), followed by the decimal id when has_id. Returns its length,
 * or KVR_ERR_INVAL / KVR_ERR_NOMEM (cap too small).
 */
int kvr_redis_key(char *buf, size_t cap, const char *ns, const char *name,
    int has_id, uint64_t id);

/*
 * Load figures as stored in alive:<id>: "running waiting active_blocks
 * queued_prefill_tokens updated_ms", decimal, single spaces. format returns
 * the length written (NUL-terminated) or KVR_ERR_NOMEM; parse is strict.
 */
int kvr_redis_load_format(const kvr_load_t *load, char *buf, size_t cap);
int kvr_redis_load_parse(const char *s, size_t len, kvr_load_t *load);

/* Strict unsigned decimal ("0" or no leading zero, no sign, no overflow). */
int kvr_redis_parse_u64(const char *s, size_t len, uint64_t *out);

/* ---- publisher (worker side): kvr_redis_pub.c ---- */

typedef struct kvr_pub_s  kvr_pub_t;

typedef struct {
    const char  *ns;               /* namespace (model/deployment), copied */
    uint64_t     worker_id;
    uint64_t     generation;       /* new value on every worker restart */
    kvr_role_t   role;
    const char  *addr;             /* "host:port", < KVR_ADDR_MAX bytes */
    uint32_t     block_size;
    uint64_t     capacity_blocks;  /* sizes the local mirror (may grow) */
    uint32_t     alive_ttl_ms;     /* alive:<id> TTL, > 0 */
    uint32_t     retain_ms;        /* TTL of w:/blocks:, refreshed by every
                                      heartbeat and event; 0: no TTL */
    uint32_t     stream_maxlen;    /* XADD MAXLEN ~ N; 0: never trim */
} kvr_pub_config_t;

/* Zeroes cfg and sets the tunables to their defaults. */
void kvr_pub_config_defaults(kvr_pub_config_t *cfg);

/* NULL on invalid config or out of memory. */
kvr_pub_t *kvr_pub_create(const kvr_pub_config_t *cfg);
void kvr_pub_destroy(kvr_pub_t *p);

/*
 * Command builders. Each fills *cmd with one EVAL/EVALSHA of the publisher
 * script; the caller sends it and hands the reply to kvr_pub_on_reply with
 * cmd->seq. Replies must come back in the order the commands were built
 * (one connection).
 *
 * register: registration + cursor + the whole mirror + alive key, written
 *   atomically, plus a KVR_EV_SNAPSHOT stream entry telling readers to
 *   reload this worker. Call it at start, after every reconnect, and
 *   whenever kvr_pub_needs_register() says so.
 *
 * stored/removed/cleared: update the mirror and assign the next event id
 *   (always, so the mirror is right whatever happens to the command), then
 *   build the event command. When the publisher is unregistered (never
 *   registered, or a failure was seen and no register was built since)
 *   nothing is built: they return KVR_ERR_RESYNC with cmd->argc == 0, and
 *   the next register carries the change.
 *
 * heartbeat: refreshes alive:<id> (load, TTL) and the retain TTLs. Redis
 *   rejects it (so kvr_pub_needs_register turns 1) when it no longer holds
 *   this worker's registration, e.g. after a Redis restart.
 *
 * unregister: a CLEARED event, then deletes the worker's keys. The
 *   publisher is unregistered afterwards.
 */
int kvr_pub_register_cmd(kvr_pub_t *p, kvr_cmd_t *cmd);
int kvr_pub_stored_cmd(kvr_pub_t *p, int has_parent, uint64_t parent,
    const kvr_block_t *blocks, size_t n, kvr_cmd_t *cmd);
int kvr_pub_removed_cmd(kvr_pub_t *p, const uint64_t *seq, size_t n,
    kvr_cmd_t *cmd);
int kvr_pub_cleared_cmd(kvr_pub_t *p, kvr_cmd_t *cmd);
int kvr_pub_heartbeat_cmd(kvr_pub_t *p, const kvr_load_t *load,
    kvr_cmd_t *cmd);
int kvr_pub_unregister_cmd(kvr_pub_t *p, kvr_cmd_t *cmd);

/*
 * Consumes the reply to the command numbered seq. KVR_OK for success;
 * KVR_ERR_REDIS for an error reply or a malformed one (NULL counts as a
 * lost connection). Any failure of a command built after the latest
 * register (or of the register itself) leaves the publisher unregistered;
 * failures of older commands are covered by that register and ignored.
 */
int kvr_pub_on_reply(kvr_pub_t *p, uint64_t seq, const struct redisReply *r);

/* The connection dropped: the fate of every command in flight is unknown. */
void kvr_pub_on_disconnect(kvr_pub_t *p);

/* 1 when kvr_pub_register_cmd must be sent before events reach Redis. */
int kvr_pub_needs_register(const kvr_pub_t *p);

/* Last event id assigned (0 before the first event of this generation). */
uint64_t kvr_pub_last_event_id(const kvr_pub_t *p);

/* The local mirror: count, membership, and an iterator (*pos starts at 0;
   returns 1 and sets *seq while there are more). */
size_t kvr_pub_mirror_count(const kvr_pub_t *p);
int kvr_pub_mirror_has(const kvr_pub_t *p, uint64_t seq);
int kvr_pub_mirror_next(const kvr_pub_t *p, size_t *pos, uint64_t *seq);

/* Text of the last error reply seen ("" if none). */
const char *kvr_pub_last_error(const kvr_pub_t *p);

/*
 * Blocking wrappers (kvr_redis_block.c): build, send with redisCommandArgv,
 * consume. KVR_OK; KVR_ERR_REDIS when the connection failed (c->err set:
 * reconnect, e.g. redisReconnect, then kvr_pub_register) or Redis answered
 * an error; KVR_ERR_RESYNC when the publisher is unregistered and nothing was
 * sent (call kvr_pub_register). In every case the mirror is right.
 */
int kvr_pub_register(kvr_pub_t *p, struct redisContext *c);
int kvr_pub_stored(kvr_pub_t *p, struct redisContext *c, int has_parent,
    uint64_t parent, const kvr_block_t *blocks, size_t n);
int kvr_pub_removed(kvr_pub_t *p, struct redisContext *c,
    const uint64_t *seq, size_t n);
int kvr_pub_cleared(kvr_pub_t *p, struct redisContext *c);
int kvr_pub_heartbeat(kvr_pub_t *p, struct redisContext *c,
    const kvr_load_t *load);
int kvr_pub_unregister(kvr_pub_t *p, struct redisContext *c);

/* ---- sync reader (router side): kvr_redis_sync.c ---- */

typedef struct kvr_sync_s  kvr_sync_t;

typedef struct {
    const char  *ns;                /* namespace, copied */
    uint32_t     batch;             /* XREAD COUNT, > 0 */
    uint32_t     block_ms;          /* XREAD BLOCK; 0: plain polling. With
                                       BLOCK the connection's read timeout
                                       must exceed it */
    uint32_t     stream_poll_ms;    /* idle after a short read (no BLOCK) */
    uint32_t     registry_poll_ms;  /* registry + alive refresh period */
    uint32_t     retry_ms;          /* backoff after an error; doubles per
                                       consecutive error up to 32x */
} kvr_sync_config_t;

/* Zeroes cfg and sets the tunables to their defaults. */
void kvr_sync_config_defaults(kvr_sync_config_t *cfg);

typedef struct {
    uint64_t  full_resyncs;     /* completed full snapshots */
    uint64_t  snapshots;        /* worker snapshots loaded (all kinds) */
    uint64_t  events_applied;
    uint64_t  events_skipped;   /* covered by a snapshot, or dead worker */
    uint64_t  gaps;             /* stream entries missing (trimmed) */
    uint64_t  restarts;         /* Redis restart/flush seen (epoch, evseq) */
    uint64_t  disconnects;
    uint64_t  errors;           /* error or malformed replies */
    uint64_t  workers_removed;  /* dead or unregistered workers dropped */
    uint64_t  stream_seq;       /* last stream entry consumed */
    uint32_t  workers;          /* live workers loaded */
} kvr_sync_stats_t;

/* idx must outlive s; s is the index's only writer. NULL on bad config. */
kvr_sync_t *kvr_sync_create(const kvr_sync_config_t *cfg, kvr_index_t *idx);
void kvr_sync_destroy(kvr_sync_t *s);

/*
 * Next command to send at time now_ms (any monotonic clock, ms).
 * 1: *cmd is ready; send it and pass its reply to kvr_sync_on_reply.
 * 0: nothing to do before *wake_ms (UINT64_MAX while a reply is awaited).
 * One command at a time: kvr_sync_next yields nothing until the reply.
 */
int kvr_sync_next(kvr_sync_t *s, uint64_t now_ms, kvr_cmd_t *cmd,
    uint64_t *wake_ms);

/*
 * Reply to the command in flight. KVR_OK, or a negative error when the
 * reply was an error, malformed, or the index refused it: nothing is
 * half-applied that a resync will not repair, and the machine schedules
 * that resync (after a backoff) by itself. KVR_ERR_INVAL with no command
 * in flight.
 */
int kvr_sync_on_reply(kvr_sync_t *s, const struct redisReply *r);

/* The connection dropped; everything is resynced after the reconnect. */
void kvr_sync_on_disconnect(kvr_sync_t *s);

void kvr_sync_stats(const kvr_sync_t *s, kvr_sync_stats_t *st);
const char *kvr_sync_last_error(const kvr_sync_t *s);

/*
 * Blocking driver (kvr_redis_block.c): sends every command due at now_ms
 * until the machine is idle or one stream read came back empty. KVR_OK, or
 * KVR_ERR_REDIS when the connection failed (kvr_sync_on_disconnect has been
 * called; reconnect and call again).
 */
int kvr_sync_run_once(kvr_sync_t *s, struct redisContext *c,
    uint64_t now_ms);

#endif
