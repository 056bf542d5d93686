/*
 * kvrouter: blocking adapters over a hiredis redisContext, for tests and
 * tools. The only kvr_redis_*.c that does I/O; nginx and the worker drive
 * the same state machines from their own (async) connections.
 */
#include <hiredis/hiredis.h>

#include "kvr_err.h"
#include "kvr_redis.h"
#include "kvr_redis_int.h"

/* Upper bound on commands per kvr_sync_run_once, so a stream that never
   runs dry cannot keep a caller forever. */
#define KVR_RUN_ONCE_MAX  100000

static int
pub_send(kvr_pub_t *p, redisContext *c, int rc, const kvr_cmd_t *cmd)
{
    redisReply  *r;

    if (rc != KVR_OK) {
        return rc;
    }
    if (c == NULL) {
        kvr_pub_on_disconnect(p);
        return KVR_ERR_REDIS;
    }
    r = redisCommandArgv(c, cmd->argc, cmd->argv, cmd->argvlen);
    if (r == NULL) {
        kvr_pub_on_disconnect(p);
        return KVR_ERR_REDIS;
    }
    rc = kvr_pub_on_reply(p, cmd->seq, r);
    freeReplyObject(r);
    return rc;
}

int
kvr_pub_register(kvr_pub_t *p, redisContext *c)
{
    kvr_cmd_t  cmd;

    return pub_send(p, c, kvr_pub_register_cmd(p, &cmd), &cmd);
}

int
kvr_pub_stored(kvr_pub_t *p, redisContext *c, int has_parent,
    uint64_t parent, const kvr_block_t *blocks, size_t n)
{
    kvr_cmd_t  cmd;

    return pub_send(p, c,
                    kvr_pub_stored_cmd(p, has_parent, parent, blocks, n, &cmd),
                    &cmd);
}

int
kvr_pub_removed(kvr_pub_t *p, redisContext *c, const uint64_t *seq, size_t n)
{
    kvr_cmd_t  cmd;

    return pub_send(p, c, kvr_pub_removed_cmd(p, seq, n, &cmd), &cmd);
}

int
kvr_pub_cleared(kvr_pub_t *p, redisContext *c)
{
    kvr_cmd_t  cmd;

    return pub_send(p, c, kvr_pub_cleared_cmd(p, &cmd), &cmd);
}

int
kvr_pub_heartbeat(kvr_pub_t *p, redisContext *c, const kvr_load_t *load)
{
    kvr_cmd_t  cmd;

    return pub_send(p, c, kvr_pub_heartbeat_cmd(p, load, &cmd), &cmd);
}

int
kvr_pub_unregister(kvr_pub_t *p, redisContext *c)
{
    kvr_cmd_t  cmd;

    return pub_send(p, c, kvr_pub_unregister_cmd(p, &cmd), &cmd);
}

int
kvr_sync_run_once(kvr_sync_t *s, redisContext *c, uint64_t now_ms)
{
    kvr_cmd_t    cmd;
    redisReply  *r;
    uint64_t     empty, wake;
    int          n;

    if (s == NULL) {
        return KVR_ERR_INVAL;
    }
    empty = kvr__sync_empty_reads(s);

    for (n = 0; n < KVR_RUN_ONCE_MAX; n++) {
        if (kvr_sync_next(s, now_ms, &cmd, &wake) != 1) {
            break;
        }
        r = c ? redisCommandArgv(c, cmd.argc, cmd.argv, cmd.argvlen) : NULL;
        if (r == NULL) {
            kvr_sync_on_disconnect(s);
            return KVR_ERR_REDIS;
        }
        (void) kvr_sync_on_reply(s, r);     /* errors: resync scheduled */
        freeReplyObject(r);
        if (kvr__sync_empty_reads(s) != empty) {
            break;                          /* caught up with the stream */
        }
    }
    return KVR_OK;
}
