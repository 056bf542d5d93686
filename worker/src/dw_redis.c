/*
 * dynamo-worker: the Redis publisher of one worker (see dw_redis.h).
 *
 * hiredis 0.14 async has no timers, so a 100 ms tick of our own bounds the
 * connect (DW_REDIS_CONNECT_MS), detects a stalled connection (commands
 * pending, no reply for DW_REDIS_STALL_MS) and runs the reconnect backoff
 * (DW_REDIS_RETRY_MIN_MS doubling to DW_REDIS_RETRY_MAX_MS). Names are
 * not resolved (redisAsyncConnect would block in getaddrinfo): addresses
 * are IP literals or unix sockets.
 *
 * Callbacks of one context may run while hiredis tears it down (reply NULL,
 * then connect/disconnect callbacks, possibly both for a failed connect):
 * redis_lost is idempotent per context, and nothing is sent from a
 * callback whose reply is NULL.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#include "dw_log.h"
#include "dw_opts.h"
#include "dw_redis.h"
#include "dw_server_int.h"
#include "kvr_err.h"

#define DW_REDIS_TICK_MS        100
#define DW_REDIS_CONNECT_MS     2000
#define DW_REDIS_STALL_MS       5000
#define DW_REDIS_RETRY_MIN_MS   100
#define DW_REDIS_RETRY_MAX_MS   2000
#define DW_REDIS_SYNC_MS        2000   /* blocking connect at start/stop */
/* reply privdata: the command's seq, this bit set for KV events */
#define DW_REDIS_EVENT_BIT      (1ULL << 63)

struct dw_redis_s {
    struct event_base   *base;
    char                 addr[256];
    char                 host[128];
    uint32_t             port;
    int                  is_unix;
    char                *password;
    uint32_t             db;

    kvr_pub_t           *pub;
    redisAsyncContext   *ac;
    int                  up;          /* connect callback said OK */
    uint64_t             conn_start_ms;
    uint64_t             retry_at_ms;
    uint32_t             backoff_ms;
    uint64_t             reg_at_ms;   /* re-register after an error reply */
    uint32_t             reg_backoff_ms;
    uint32_t             pending;     /* commands awaiting a reply */
    uint64_t             progress_ms; /* last reply, or first send */
    struct event        *tick;
    int                  stopping;
    int                  registered;  /* last register acknowledged */
    uint64_t             reg_seq;     /* seq of the last register sent */
    dw_redis_stats_t     st;
};

static void redis_connect(dw_redis_t *r);

/* ---- blocking helpers (start, stop) ---- */

static redisContext *
redis_sync_connect(dw_redis_t *r, char *err, size_t errlen)
{
    redisContext    *c;
    redisReply      *rep;
    struct timeval   tv;

    tv.tv_sec = DW_REDIS_SYNC_MS / 1000;
    tv.tv_usec = (DW_REDIS_SYNC_MS % 1000) * 1000;
    c = r->is_unix ? redisConnectUnixWithTimeout(r->host, tv)
                   : redisConnectWithTimeout(r->host, (int) r->port, tv);
    if (c == NULL || c->err) {
        snprintf(err, errlen, "cannot connect to Redis at %s: %s", r->addr,
                 c != NULL ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (r->password != NULL) {
        rep = redisCommand(c, "AUTH %s", r->password);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "Redis at %s: AUTH failed: %s", r->addr,
                     rep != NULL ? rep->str : c->errstr);
            freeReplyObject(rep);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(rep);
    }
    rep = redisCommand(c, r->db ? "SELECT %u" : "PING", r->db);
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "Redis at %s: %s failed: %s", r->addr,
                 r->db ? "SELECT" : "PING",
                 rep != NULL ? rep->str : c->errstr);
        freeReplyObject(rep);
        redisFree(c);
        return NULL;
    }
    freeReplyObject(rep);
    return c;
}

/* ---- async connection ---- */

static void
redis_schedule_retry(dw_redis_t *r)
{
    r->retry_at_ms = dw_server_now_ms() + r->backoff_ms;
    r->backoff_ms = r->backoff_ms * 2 > DW_REDIS_RETRY_MAX_MS
                    ? DW_REDIS_RETRY_MAX_MS : r->backoff_ms * 2;
}

/* The connection ac is gone (or going): forget it, retry later. */
static void
redis_lost(dw_redis_t *r, const redisAsyncContext *ac, const char *why)
{
    if (r->ac != ac || ac == NULL) {
        return;
    }
    if (r->stopping) {
        /* dw_redis_destroy: nothing to report */
    } else if (r->up) {
        r->st.disconnects++;
        dw_log(DW_LOG_WARN, "Redis at %s: connection lost (%s); "
               "reconnecting", r->addr, why);
    } else {
        dw_log(DW_LOG_DEBUG, "Redis at %s: connect failed (%s)", r->addr,
               why);
    }
    r->ac = NULL;
    r->up = 0;
    r->registered = 0;
    r->pending = 0;
    kvr_pub_on_disconnect(r->pub);
    redis_schedule_retry(r);
}

static int
redis_usable(const dw_redis_t *r)
{
    return r->ac != NULL
           && !(r->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING));
}

static void redis_reply_cb(redisAsyncContext *ac, void *reply, void *priv);

static int
redis_send(dw_redis_t *r, const kvr_cmd_t *cmd, int is_event)
{
    if (cmd->argc == 0) {
        return -1;
    }
    if (!redis_usable(r)) {
        /* cannot happen: the publisher is unregistered while we have no
           connection; keep it so */
        kvr_pub_on_disconnect(r->pub);
        return -1;
    }
    if (redisAsyncCommandArgv(r->ac, redis_reply_cb,
                              (void *) (uintptr_t) (cmd->seq
                                  | (is_event ? DW_REDIS_EVENT_BIT : 0)),
                              cmd->argc,
                              cmd->argv, cmd->argvlen) != REDIS_OK)
    {
        kvr_pub_on_disconnect(r->pub);
        return -1;
    }
    if (r->pending++ == 0) {
        r->progress_ms = dw_server_now_ms();
    }
    return 0;
}

static void
redis_register(dw_redis_t *r)
{
    kvr_cmd_t  cmd;

    if (!redis_usable(r) || !kvr_pub_needs_register(r->pub)) {
        return;
    }
    if (kvr_pub_register_cmd(r->pub, &cmd) != KVR_OK) {
        dw_log(DW_LOG_ERROR, "Redis: cannot build the register command");
        return;
    }
    r->registered = 0;
    r->reg_seq = cmd.seq;
    if (redis_send(r, &cmd, 0) == 0) {
        r->st.registers++;
        dw_log(DW_LOG_INFO, "Redis at %s: registering (%zu blocks)", r->addr,
               kvr_pub_mirror_count(r->pub));
    }
}

static void
redis_reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    dw_redis_t  *r = ac->data;
    redisReply  *rep = reply;
    uint64_t     seq = (uint64_t) (uintptr_t) priv & ~DW_REDIS_EVENT_BIT;
    int          is_event = ((uint64_t) (uintptr_t) priv
                             & DW_REDIS_EVENT_BIT) != 0;

    if (r == NULL) {
        return;
    }
    if (r->ac == ac && r->pending > 0) {
        r->pending--;
        r->progress_ms = dw_server_now_ms();
    }
    if (kvr_pub_on_reply(r->pub, seq, rep) != KVR_OK) {
        if (rep == NULL) {
            return;                 /* the connection is going down */
        }
        r->st.errors++;
        dw_log(DW_LOG_WARN, "Redis at %s: %s", r->addr,
               kvr_pub_last_error(r->pub)[0]
               ? kvr_pub_last_error(r->pub) : "command failed");
        /*
         * An error that persists (OOM, READONLY after a failover) would
         * fail every register too: re-register from the tick, backing off,
         * not at once from here.
         */
        r->reg_at_ms = dw_server_now_ms() + r->reg_backoff_ms;
        r->reg_backoff_ms = r->reg_backoff_ms * 2 > DW_REDIS_RETRY_MAX_MS
                            ? DW_REDIS_RETRY_MAX_MS : r->reg_backoff_ms * 2;
        return;
    }
    if (is_event) {
        r->st.events_ok++;
    } else if (seq == r->reg_seq && r->ac == ac) {
        r->registered = 1;
        r->reg_backoff_ms = DW_REDIS_RETRY_MIN_MS;
    }
    if (r->ac == ac && dw_server_now_ms() >= r->reg_at_ms) {
        redis_register(r);
    }
}

static void
redis_setup_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    dw_redis_t  *r = ac->data;
    redisReply  *rep = reply;

    if (r == NULL || rep == NULL) {
        return;
    }
    if (r->ac == ac && r->pending > 0) {
        r->pending--;
        r->progress_ms = dw_server_now_ms();
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        r->st.errors++;
        dw_log(DW_LOG_ERROR, "Redis at %s: %s failed: %s", r->addr,
               (const char *) priv, rep->str);
        redisAsyncDisconnect(ac);
    }
}

static void
redis_connect_cb(const redisAsyncContext *ac, int status)
{
    dw_redis_t  *r = ac->data;

    if (r == NULL || r->ac != ac) {
        return;
    }
    if (status != REDIS_OK) {
        redis_lost(r, ac, ac->errstr);
        return;
    }
    r->up = 1;
    r->st.connects++;
    r->backoff_ms = DW_REDIS_RETRY_MIN_MS;
    dw_log(r->st.connects > 1 ? DW_LOG_INFO : DW_LOG_DEBUG,
           "Redis at %s: connected", r->addr);
    redis_register(r);
}

static void
redis_disconnect_cb(const redisAsyncContext *ac, int status)
{
    dw_redis_t  *r = ac->data;

    if (r != NULL) {
        redis_lost(r, ac, ac->err ? ac->errstr : "closed");
    }
}

static void
redis_connect(dw_redis_t *r)
{
    redisAsyncContext  *ac;

    ac = r->is_unix ? redisAsyncConnectUnix(r->host)
                    : redisAsyncConnect(r->host, (int) r->port);
    if (ac == NULL || ac->err) {
        dw_log(DW_LOG_DEBUG, "Redis at %s: %s", r->addr,
               ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL) {
            redisAsyncFree(ac);
        }
        redis_schedule_retry(r);
        return;
    }
    ac->data = r;
    r->ac = ac;
    r->up = 0;
    r->pending = 0;
    r->conn_start_ms = dw_server_now_ms();
    if (redisLibeventAttach(ac, r->base) != REDIS_OK) {
        r->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
        redis_schedule_retry(r);
        return;
    }
    redisAsyncSetConnectCallback(ac, redis_connect_cb);
    redisAsyncSetDisconnectCallback(ac, redis_disconnect_cb);
    /* queued until the connection is up, in order before the register */
    if (r->password != NULL) {
        redisAsyncCommand(ac, redis_setup_cb, (void *) "AUTH", "AUTH %s",
                          r->password);
        r->pending++;
    }
    if (r->db != 0) {
        redisAsyncCommand(ac, redis_setup_cb, (void *) "SELECT", "SELECT %u",
                          r->db);
        r->pending++;
    }
    r->progress_ms = dw_server_now_ms();
}

/* Drops a connection that hangs (hiredis would wait forever). */
static void
redis_abort(dw_redis_t *r, const char *why)
{
    redisAsyncContext  *ac = r->ac;

    redis_lost(r, ac, why);
    /* frees: pending callbacks get NULL, then the disconnect callback,
       both find r->ac != ac and do nothing more */
    redisAsyncFree(ac);
}

static void
redis_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    dw_redis_t  *r = arg;
    uint64_t     now;

    now = dw_server_now_ms();
    if (r->ac == NULL) {
        if (now >= r->retry_at_ms) {
            redis_connect(r);
        }
        return;
    }
    if (!r->up && now - r->conn_start_ms > DW_REDIS_CONNECT_MS) {
        redis_abort(r, "connect timed out");
    } else if (r->up && r->pending > 0
               && now - r->progress_ms > DW_REDIS_STALL_MS)
    {
        redis_abort(r, "no reply");
    } else if (r->up && now >= r->reg_at_ms) {
        redis_register(r);          /* when needed, after an error reply */
    }
}

/* ---- public ---- */

dw_redis_t *
dw_redis_create(struct event_base *base, const dw_redis_conf_t *rc,
    const kvr_pub_config_t *pc, char *err, size_t errlen)
{
    dw_redis_t      *r;
    redisContext    *c;
    struct timeval   tv;
    int              krc;

    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->base = base;
    r->db = rc->db;
    r->backoff_ms = DW_REDIS_RETRY_MIN_MS;
    r->reg_backoff_ms = DW_REDIS_RETRY_MIN_MS;
    snprintf(r->addr, sizeof(r->addr), "%s", rc->addr);
    if (strncmp(rc->addr, "unix:", 5) == 0) {
        r->is_unix = 1;
        snprintf(r->host, sizeof(r->host), "%s", rc->addr + 5);
    } else if (dw_opts_split_addr(rc->addr, r->host, sizeof(r->host),
                                  &r->port) != 0)
    {
        snprintf(err, errlen, "bad Redis address '%s'", rc->addr);
        free(r);
        return NULL;
    }
    if (rc->password != NULL) {
        r->password = strdup(rc->password);
    }
    r->pub = kvr_pub_create(pc);
    if (r->pub == NULL) {
        snprintf(err, errlen, "invalid Redis publisher settings");
        dw_redis_destroy(r);
        return NULL;
    }

    c = redis_sync_connect(r, err, errlen);
    if (c == NULL) {
        dw_redis_destroy(r);
        return NULL;
    }
    krc = kvr_pub_register(r->pub, c);
    if (krc != KVR_OK) {
        snprintf(err, errlen, "Redis at %s: register failed: %s", r->addr,
                 kvr_pub_last_error(r->pub)[0] ? kvr_pub_last_error(r->pub)
                 : (c->err ? c->errstr : kvr_strerror(krc)));
        redisFree(c);
        dw_redis_destroy(r);
        return NULL;
    }
    r->st.registers++;
    r->registered = 1;
    redisFree(c);

    r->tick = event_new(base, -1, EV_PERSIST, redis_tick_cb, r);
    if (r->tick == NULL) {
        snprintf(err, errlen, "out of memory");
        dw_redis_destroy(r);
        return NULL;
    }
    tv.tv_sec = 0;
    tv.tv_usec = DW_REDIS_TICK_MS * 1000;
    event_add(r->tick, &tv);
    /* the async connection takes over; registered already, so its connect
       sends a register only if something failed meanwhile */
    redis_connect(r);
    return r;
}

void
dw_redis_destroy(dw_redis_t *r)
{
    redisContext  *c;
    char           err[256];
    int            rc;

    if (r == NULL) {
        return;
    }
    if (r->tick != NULL) {
        event_free(r->tick);
    }
    r->stopping = 1;
    if (r->ac != NULL) {
        redis_abort(r, "stopping");
    }
    if (r->pub != NULL && r->st.registers > 0) {
        /* unregister on a fresh connection: the CLEARED event and the key
           deletion happen whatever the async one was doing */
        c = redis_sync_connect(r, err, sizeof(err));
        if (c == NULL) {
            dw_log(DW_LOG_WARN, "not unregistered: %s", err);
        } else {
            rc = kvr_pub_unregister(r->pub, c);
            if (rc != KVR_OK) {
                dw_log(DW_LOG_WARN, "Redis at %s: unregister failed: %s",
                       r->addr, kvr_pub_last_error(r->pub));
            } else {
                dw_log(DW_LOG_DEBUG, "Redis at %s: unregistered", r->addr);
            }
            redisFree(c);
        }
    }
    kvr_pub_destroy(r->pub);
    free(r->password);
    free(r);
}

void
dw_redis_kv_event(dw_redis_t *r, const dw_kv_event_t *ev)
{
    kvr_cmd_t   cmd;
    uint64_t    stack_seq[64] = { 0 }, *seq;
    size_t      i;
    int         rc;

    switch (ev->type) {
    case KVR_EV_STORED:
        rc = kvr_pub_stored_cmd(r->pub, ev->has_parent, ev->parent,
                                ev->blocks, ev->n, &cmd);
        break;
    case KVR_EV_REMOVED:
        seq = ev->n <= 64 ? stack_seq : malloc(ev->n * sizeof(*seq));
        if (seq == NULL) {
            /* the mirror would go wrong: better a full republish */
            kvr_pub_on_disconnect(r->pub);
            return;
        }
        for (i = 0; i < ev->n; i++) {
            seq[i] = ev->blocks[i].seq;
        }
        rc = kvr_pub_removed_cmd(r->pub, seq, ev->n, &cmd);
        if (seq != stack_seq) {
            free(seq);
        }
        break;
    case KVR_EV_CLEARED:
        rc = kvr_pub_cleared_cmd(r->pub, &cmd);
        break;
    default:
        return;
    }
    if (rc == KVR_ERR_RESYNC) {
        r->st.events_dropped++;
        redis_register(r);
        return;
    }
    if (rc != KVR_OK) {
        dw_log(DW_LOG_WARN, "KV event not published: %s", kvr_strerror(rc));
        return;
    }
    if (redis_send(r, &cmd, 1) == 0) {
        r->st.events++;
    }
}

void
dw_redis_heartbeat(dw_redis_t *r, const kvr_load_t *load)
{
    kvr_cmd_t  cmd;

    if (kvr_pub_heartbeat_cmd(r->pub, load, &cmd) == KVR_OK
        && redis_send(r, &cmd, 0) == 0)
    {
        r->st.heartbeats++;
    }
}

int
dw_redis_ready(const dw_redis_t *r)
{
    return r->up && r->registered && !kvr_pub_needs_register(r->pub);
}

void
dw_redis_stats(const dw_redis_t *r, dw_redis_stats_t *st)
{
    *st = r->st;
    st->connected = dw_redis_ready(r);
}
