
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * The Redis sync: per model, the one nginx process holding the model's
 * lease in the zone drives kvr_sync_t over an nginx peer connection, with
 * hiredis as the codec only (commands formatted by redisFormatCommandArgv,
 * replies parsed by a redisReader). Nothing on the request path waits for
 * it; with Redis away the index stays as it was and routing goes on.
 */


#include "ngx_http_dynamo_module.h"

#include <hiredis/hiredis.h>

#include "kvr_err.h"
#include "kvr_redis.h"


#define NGX_HTTP_DYNAMO_LEASE_MS        3000
#define NGX_HTTP_DYNAMO_LEASE_TICK      500
#define NGX_HTTP_DYNAMO_BACKOFF_MIN     100
#define NGX_HTTP_DYNAMO_BACKOFF_MAX     2000
#define NGX_HTTP_DYNAMO_RETRY_MIN       1000     /* ms between full resyncs
                                                    that keep failing */
#define NGX_HTTP_DYNAMO_RETRY_MAX       30000


typedef enum {
    NGX_HTTP_DYNAMO_REDIS_CLOSED = 0,
    NGX_HTTP_DYNAMO_REDIS_CONNECTING,
    NGX_HTTP_DYNAMO_REDIS_AUTH,
    NGX_HTTP_DYNAMO_REDIS_SELECT,
    NGX_HTTP_DYNAMO_REDIS_READY,
    NGX_HTTP_DYNAMO_REDIS_SYNC
} ngx_http_dynamo_redis_state_e;


/* the sync of one model in this process */
typedef struct {
    ngx_uint_t                      model;
    ngx_str_t                       name;
    char                           *ns;
    kvr_index_t                    *index;
    ngx_http_dynamo_sync_status_t  *status;

    ngx_msec_t                      lease;      /* lease_until we wrote;
                                                   0: not ours */
    kvr_sync_t                     *sync;
    kvr_sync_stats_t                published;

    ngx_peer_connection_t           peer;
    redisReader                    *reader;
    char                           *out;
    size_t                          out_len;
    size_t                          out_sent;
    ngx_uint_t                      state;

    ngx_event_t                     wake;       /* kvr_sync wake, backoff */
    ngx_msec_t                      backoff;
    ngx_msec_t                      retry;      /* delay after a sync
                                                   error that follows
                                                   another */
    ngx_msec_t                      failed;     /* the last sync error */
    ngx_log_t                       quiet;      /* for nginx's own connect
                                                   and recv errors */
    unsigned                        down:1;     /* outage logged */
    unsigned                        failing:1;  /* sync error logged */
} ngx_http_dynamo_redis_t;


typedef struct {
    ngx_http_dynamo_main_conf_t    *dmcf;
    ngx_http_dynamo_redis_conf_t   *conf;
    ngx_log_t                      *log;
    ngx_http_dynamo_redis_t        *models;
    ngx_uint_t                      nmodels;
    ngx_event_t                     tick;
} ngx_http_dynamo_redis_main_t;


static void ngx_http_dynamo_redis_tick(ngx_event_t *ev);
static ngx_msec_t ngx_http_dynamo_redis_now(void);
static ngx_uint_t ngx_http_dynamo_redis_lease(ngx_http_dynamo_redis_t *rs);
static ngx_uint_t ngx_http_dynamo_redis_holds(ngx_http_dynamo_redis_t *rs);
static void ngx_http_dynamo_redis_release(ngx_http_dynamo_redis_t *rs);
static void ngx_http_dynamo_redis_stop(ngx_http_dynamo_redis_t *rs);
static ngx_uint_t ngx_http_dynamo_redis_valid(ngx_http_dynamo_redis_t *rs);
static void ngx_http_dynamo_redis_connect(ngx_http_dynamo_redis_t *rs);
static void ngx_http_dynamo_redis_connected(ngx_http_dynamo_redis_t *rs);
static void ngx_http_dynamo_redis_handshake(ngx_http_dynamo_redis_t *rs);
static void ngx_http_dynamo_redis_drive(ngx_http_dynamo_redis_t *rs);
static ngx_int_t ngx_http_dynamo_redis_send(ngx_http_dynamo_redis_t *rs,
    int argc, const char **argv, const size_t *argvlen);
static void ngx_http_dynamo_redis_write(ngx_http_dynamo_redis_t *rs);
static void ngx_http_dynamo_redis_read_handler(ngx_event_t *rev);
static void ngx_http_dynamo_redis_write_handler(ngx_event_t *wev);
static void ngx_http_dynamo_redis_wake_handler(ngx_event_t *ev);
static void ngx_http_dynamo_redis_reply(ngx_http_dynamo_redis_t *rs,
    redisReply *reply);
static void ngx_http_dynamo_redis_publish(ngx_http_dynamo_redis_t *rs);
static void ngx_http_dynamo_redis_fail(ngx_http_dynamo_redis_t *rs,
    char *what, ngx_err_t err);
static void ngx_http_dynamo_redis_close(ngx_http_dynamo_redis_t *rs);


static ngx_http_dynamo_redis_main_t  *ngx_http_dynamo_redis_main;


ngx_int_t
ngx_http_dynamo_redis_init_process(ngx_cycle_t *cycle)
{
    ngx_str_t                      ns;
    ngx_uint_t                     i;
    kvr_sync_config_t              cfg;
    ngx_http_dynamo_model_t       *m;
    ngx_http_dynamo_redis_t       *rs;
    ngx_http_dynamo_main_conf_t   *dmcf;
    ngx_http_dynamo_redis_main_t  *rm;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    if (ngx_http_dynamo_redis_main) {
        /* init_process again in the same process: keep the running sync */
        return NGX_OK;
    }

    if (cycle->conf_ctx[ngx_http_module.index] == NULL) {
        return NGX_OK;
    }

    dmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_dynamo_module);

    /* not the sync, but once per process too: the load rows */

    ngx_http_dynamo_shm_init_process(dmcf);

    if (dmcf == NULL
        || dmcf->redis == NULL
        || dmcf->shm_zone == NULL
        || dmcf->models.nelts == 0)
    {
        return NGX_OK;
    }

    if (dmcf->redis->url.naddrs == 0) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "dynamo_redis \"%V\" has no address, "
                      "the index is not synced", &dmcf->redis->url.url);
        return NGX_OK;
    }

    rm = ngx_calloc(sizeof(ngx_http_dynamo_redis_main_t), cycle->log);
    if (rm == NULL) {
        return NGX_ERROR;
    }

    rm->models = ngx_calloc(dmcf->models.nelts
                            * sizeof(ngx_http_dynamo_redis_t), cycle->log);
    if (rm->models == NULL) {
        ngx_free(rm);
        return NGX_ERROR;
    }

    rm->dmcf = dmcf;
    rm->conf = dmcf->redis;
    rm->log = cycle->log;
    rm->nmodels = dmcf->models.nelts;

    m = dmcf->models.elts;

    kvr_sync_config_defaults(&cfg);

    for (i = 0; i < rm->nmodels; i++) {
        rs = &rm->models[i];

        rs->model = i;
        rs->name = m[i].name;
        rs->index = ngx_http_dynamo_shm_index(dmcf, i);
        rs->status = ngx_http_dynamo_shm_sync_status(dmcf, i);
        rs->backoff = NGX_HTTP_DYNAMO_BACKOFF_MIN;

        rs->quiet = *cycle->log;
        rs->quiet.log_level = NGX_LOG_CRIT;
        rs->quiet.handler = NULL;
        rs->quiet.data = NULL;

        rs->wake.handler = ngx_http_dynamo_redis_wake_handler;
        rs->wake.data = rs;
        rs->wake.log = cycle->log;
        rs->wake.cancelable = 1;

        if (m[i].ns) {
            ns.data = (u_char *) m[i].ns;
            ns.len = ngx_strlen(m[i].ns);

        } else {
            ns = m[i].name;
        }

        rs->ns = ngx_alloc(ns.len + 1, cycle->log);
        if (rs->ns == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(rs->ns, ns.data, ns.len);
        rs->ns[ns.len] = '\0';

        cfg.ns = rs->ns;

        if (kvr_redis_ns_valid(rs->ns) != KVR_OK) {
            ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                          "dynamo_redis: model \"%V\" is not a valid Redis "
                          "namespace, its index is not synced", &rs->name);
            rs->index = NULL;
        }
    }

    rm->tick.handler = ngx_http_dynamo_redis_tick;
    rm->tick.data = rm;
    rm->tick.log = cycle->log;
    rm->tick.cancelable = 1;

    ngx_http_dynamo_redis_main = rm;

    ngx_add_timer(&rm->tick, 1);

    return NGX_OK;
}


void
ngx_http_dynamo_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                     i;
    ngx_http_dynamo_main_conf_t   *dmcf;
    ngx_http_dynamo_redis_main_t  *rm;

    if (cycle->conf_ctx && cycle->conf_ctx[ngx_http_module.index]) {
        dmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_dynamo_module);
        ngx_http_dynamo_shm_exit_process(dmcf);
    }

    rm = ngx_http_dynamo_redis_main;

    if (rm == NULL) {
        return;
    }

    for (i = 0; i < rm->nmodels; i++) {
        ngx_http_dynamo_redis_stop(&rm->models[i]);
        ngx_free(rm->models[i].ns);
    }

    if (rm->tick.timer_set) {
        ngx_del_timer(&rm->tick);
    }

    ngx_free(rm->models);
    ngx_free(rm);

    ngx_http_dynamo_redis_main = NULL;
}


static void
ngx_http_dynamo_redis_tick(ngx_event_t *ev)
{
    ngx_http_dynamo_redis_main_t *rm = ev->data;

    ngx_uint_t                i;
    kvr_sync_config_t         cfg;
    ngx_http_dynamo_redis_t  *rs;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        /* the next generation of workers takes over at once */

        for (i = 0; i < rm->nmodels; i++) {
            ngx_http_dynamo_redis_stop(&rm->models[i]);
        }

        return;
    }

    ngx_http_dynamo_shm_reap(rm->dmcf);

    for (i = 0; i < rm->nmodels; i++) {
        rs = &rm->models[i];

        if (rs->index == NULL) {
            continue;
        }

        if (!ngx_http_dynamo_redis_valid(rs)) {
            continue;
        }

        if (rs->lease) {
            if (ngx_http_dynamo_redis_lease(rs)) {
                continue;
            }

            ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                          "dynamo_redis: lost the sync of model \"%V\" "
                          "to process %P", &rs->name,
                          (ngx_pid_t) rs->status->owner_pid);

            rs->lease = 0;
            ngx_http_dynamo_redis_stop(rs);
            continue;
        }

        if (!ngx_http_dynamo_redis_lease(rs)) {
            continue;
        }

        kvr_sync_config_defaults(&cfg);
        cfg.ns = rs->ns;

        rs->sync = kvr_sync_create(&cfg, rs->index);

        if (rs->sync == NULL) {
            ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                          "dynamo_redis: kvr_sync_create() failed");
            ngx_http_dynamo_redis_release(rs);
            rs->index = NULL;
            continue;
        }

        ngx_memzero(&rs->published, sizeof(kvr_sync_stats_t));

        ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                      "dynamo_redis: process %P syncs model \"%V\"",
                      ngx_pid, &rs->name);

        rs->backoff = NGX_HTTP_DYNAMO_BACKOFF_MIN;

        ngx_http_dynamo_redis_connect(rs);
    }

    ngx_add_timer(ev, NGX_HTTP_DYNAMO_LEASE_TICK);
}


static ngx_msec_t
ngx_http_dynamo_redis_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (ngx_msec_t) tp->sec * 1000 + tp->msec;
}


/* takes or renews the model's lease: exactly one process writes an index */

static ngx_uint_t
ngx_http_dynamo_redis_lease(ngx_http_dynamo_redis_t *rs)
{
    ngx_msec_t                      now, until;
    ngx_http_dynamo_sync_status_t  *st;

    st = rs->status;
    now = ngx_http_dynamo_redis_now();

    if (rs->lease) {
        if (ngx_atomic_cmp_set(&st->lease_until, rs->lease,
                               now + NGX_HTTP_DYNAMO_LEASE_MS))
        {
            rs->lease = now + NGX_HTTP_DYNAMO_LEASE_MS;
            return 1;
        }

        return 0;
    }

    until = st->lease_until;

    if (until >= now) {
        return 0;
    }

    if (!ngx_atomic_cmp_set(&st->lease_until, until,
                            now + NGX_HTTP_DYNAMO_LEASE_MS))
    {
        return 0;
    }

    rs->lease = now + NGX_HTTP_DYNAMO_LEASE_MS;
    st->owner_pid = ngx_pid;

    return 1;
}


static ngx_uint_t
ngx_http_dynamo_redis_holds(ngx_http_dynamo_redis_t *rs)
{
    return rs->lease != 0 && rs->status->lease_until == rs->lease;
}


static void
ngx_http_dynamo_redis_release(ngx_http_dynamo_redis_t *rs)
{
    ngx_http_dynamo_sync_status_t  *st;

    st = rs->status;

    if (rs->lease && ngx_atomic_cmp_set(&st->lease_until, rs->lease, 0)) {
        st->connected = 0;
        st->owner_pid = 0;
    }

    rs->lease = 0;
}


/*
 * a newer configuration laid the zone out anew: the index and the status
 * of this process's configuration are gone, so stop without touching them
 */

static ngx_uint_t
ngx_http_dynamo_redis_valid(ngx_http_dynamo_redis_t *rs)
{
    if (rs->index
        && ngx_http_dynamo_shm_index(ngx_http_dynamo_redis_main->dmcf,
                                     rs->model)
           == rs->index)
    {
        return 1;
    }

    if (rs->index && rs->sync) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_http_dynamo_redis_main->log, 0,
                      "dynamo_redis: the index of model \"%V\" was laid "
                      "out anew, this process stops syncing it", &rs->name);
    }

    ngx_http_dynamo_redis_close(rs);

    if (rs->wake.timer_set) {
        ngx_del_timer(&rs->wake);
    }

    if (rs->sync) {
        kvr_sync_destroy(rs->sync);
        rs->sync = NULL;
    }

    rs->index = NULL;
    rs->lease = 0;

    return 0;
}


/* closes the connection, drops the sync and the lease */

static void
ngx_http_dynamo_redis_stop(ngx_http_dynamo_redis_t *rs)
{
    if (!ngx_http_dynamo_redis_valid(rs)) {
        return;
    }

    ngx_http_dynamo_redis_close(rs);

    if (rs->wake.timer_set) {
        ngx_del_timer(&rs->wake);
    }

    if (rs->sync) {
        ngx_http_dynamo_redis_publish(rs);
        kvr_sync_destroy(rs->sync);
        rs->sync = NULL;
    }

    ngx_http_dynamo_redis_release(rs);
}


static void
ngx_http_dynamo_redis_connect(ngx_http_dynamo_redis_t *rs)
{
    ngx_int_t                      rc;
    ngx_addr_t                    *addr;
    ngx_connection_t              *c;
    ngx_http_dynamo_redis_conf_t  *rcf;

    rcf = ngx_http_dynamo_redis_main->conf;
    addr = &rcf->url.addrs[0];

    ngx_memzero(&rs->peer, sizeof(ngx_peer_connection_t));

    rs->peer.sockaddr = addr->sockaddr;
    rs->peer.socklen = addr->socklen;
    rs->peer.name = &addr->name;
    rs->peer.get = ngx_event_get_peer;
    rs->peer.log = &rs->quiet;
    rs->peer.log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(&rs->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        ngx_http_dynamo_redis_fail(rs, "cannot connect to", ngx_socket_errno);
        return;
    }

    c = rs->peer.connection;

    c->data = rs;
    c->read->handler = ngx_http_dynamo_redis_read_handler;
    c->write->handler = ngx_http_dynamo_redis_write_handler;
    c->read->cancelable = 1;
    c->write->cancelable = 1;

    rs->reader = redisReaderCreate();
    if (rs->reader == NULL) {
        ngx_http_dynamo_redis_fail(rs, "no memory for", 0);
        return;
    }

    rs->state = NGX_HTTP_DYNAMO_REDIS_CONNECTING;

    if (rc == NGX_AGAIN) {
        ngx_add_timer(c->write, rcf->connect_timeout);
        return;
    }

    ngx_http_dynamo_redis_connected(rs);
}


static void
ngx_http_dynamo_redis_connected(ngx_http_dynamo_redis_t *rs)
{
    int                err;
    socklen_t          len;
    ngx_connection_t  *c;

    c = rs->peer.connection;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        ngx_http_dynamo_redis_fail(rs, "cannot connect to", err);
        return;
    }

    rs->state = NGX_HTTP_DYNAMO_REDIS_AUTH;

    ngx_http_dynamo_redis_handshake(rs);
}


/* AUTH and SELECT when configured, then the sync */

static void
ngx_http_dynamo_redis_handshake(ngx_http_dynamo_redis_t *rs)
{
    u_char                        *p;
    u_char                         db[NGX_INT_T_LEN];
    size_t                         argvlen[2];
    const char                    *argv[2];
    ngx_http_dynamo_redis_conf_t  *rcf;

    rcf = ngx_http_dynamo_redis_main->conf;

    if (rs->state == NGX_HTTP_DYNAMO_REDIS_AUTH) {
        if (rcf->password.len) {
            argv[0] = "AUTH";
            argvlen[0] = 4;
            argv[1] = (const char *) rcf->password.data;
            argvlen[1] = rcf->password.len;

            (void) ngx_http_dynamo_redis_send(rs, 2, argv, argvlen);
            return;
        }

        rs->state = NGX_HTTP_DYNAMO_REDIS_SELECT;
    }

    if (rs->state == NGX_HTTP_DYNAMO_REDIS_SELECT) {
        if (rcf->db) {
            p = ngx_sprintf(db, "%ui", rcf->db);

            argv[0] = "SELECT";
            argvlen[0] = 6;
            argv[1] = (const char *) db;
            argvlen[1] = p - db;

            (void) ngx_http_dynamo_redis_send(rs, 2, argv, argvlen);
            return;
        }
    }

    /* connected reads 1 once a sync command has succeeded */

    rs->state = NGX_HTTP_DYNAMO_REDIS_READY;
    rs->backoff = NGX_HTTP_DYNAMO_BACKOFF_MIN;

    if (rs->down) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_http_dynamo_redis_main->log, 0,
                      "dynamo_redis: connected to %V again, "
                      "resyncing model \"%V\"", rs->peer.name, &rs->name);
        rs->down = 0;
    }

    ngx_http_dynamo_redis_drive(rs);
}


static void
ngx_http_dynamo_redis_drive(ngx_http_dynamo_redis_t *rs)
{
    uint64_t    now, wake;
    kvr_cmd_t   cmd;

    if (rs->wake.timer_set) {
        ngx_del_timer(&rs->wake);
    }

    now = ngx_current_msec;

    if (kvr_sync_next(rs->sync, now, &cmd, &wake) == 1) {
        if (ngx_http_dynamo_redis_send(rs, cmd.argc, cmd.argv, cmd.argvlen)
            == NGX_OK)
        {
            rs->state = NGX_HTTP_DYNAMO_REDIS_SYNC;
        }

        return;
    }

    if (wake == UINT64_MAX) {
        return;
    }

    ngx_add_timer(&rs->wake, wake > now ? (ngx_msec_t) (wake - now) : 1);
}


static ngx_int_t
ngx_http_dynamo_redis_send(ngx_http_dynamo_redis_t *rs, int argc,
    const char **argv, const size_t *argvlen)
{
    int                len;
    char              *out;
    ngx_connection_t  *c;

    len = redisFormatCommandArgv(&out, argc, argv, argvlen);

    if (len < 0) {
        ngx_http_dynamo_redis_fail(rs, "no memory for a command to", 0);
        return NGX_ERROR;
    }

    if (rs->out) {
        redisFreeCommand(rs->out);
    }

    rs->out = out;
    rs->out_len = len;
    rs->out_sent = 0;

    c = rs->peer.connection;

    ngx_add_timer(c->read, ngx_http_dynamo_redis_main->conf->timeout);

    ngx_http_dynamo_redis_write(rs);

    return rs->peer.connection ? NGX_OK : NGX_ERROR;
}


static void
ngx_http_dynamo_redis_write(ngx_http_dynamo_redis_t *rs)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = rs->peer.connection;

    while (rs->out && rs->out_sent < rs->out_len) {
        n = c->send(c, (u_char *) rs->out + rs->out_sent,
                    rs->out_len - rs->out_sent);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                ngx_http_dynamo_redis_fail(rs, "cannot write to", 0);
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_dynamo_redis_fail(rs, "connection lost to", 0);
            return;
        }

        rs->out_sent += n;
    }

    if (rs->out) {
        redisFreeCommand(rs->out);
        rs->out = NULL;
    }
}


static void
ngx_http_dynamo_redis_write_handler(ngx_event_t *wev)
{
    ngx_connection_t         *c;
    ngx_http_dynamo_redis_t  *rs;

    c = wev->data;
    rs = c->data;

    if (rs->state == NGX_HTTP_DYNAMO_REDIS_CONNECTING) {
        if (wev->timedout) {
            ngx_http_dynamo_redis_fail(rs, "timed out connecting to",
                                       NGX_ETIMEDOUT);
            return;
        }

        ngx_http_dynamo_redis_connected(rs);
        return;
    }

    ngx_http_dynamo_redis_write(rs);
}


static void
ngx_http_dynamo_redis_read_handler(ngx_event_t *rev)
{
    ssize_t                   n;
    redisReply               *reply;
    ngx_connection_t         *c;
    ngx_http_dynamo_redis_t  *rs;

    static u_char             buf[16384];

    c = rev->data;
    rs = c->data;

    if (rev->timedout) {
        ngx_http_dynamo_redis_fail(rs, "timed out waiting for",
                                   NGX_ETIMEDOUT);
        return;
    }

    if (rs->state == NGX_HTTP_DYNAMO_REDIS_CONNECTING) {
        ngx_http_dynamo_redis_connected(rs);
        return;
    }

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_http_dynamo_redis_fail(rs, "connection lost to", 0);
            return;
        }

        if (redisReaderFeed(rs->reader, (char *) buf, n) != REDIS_OK) {
            ngx_http_dynamo_redis_fail(rs, "no memory for a reply of", 0);
            return;
        }

        for ( ;; ) {
            reply = NULL;

            if (redisReaderGetReply(rs->reader, (void **) &reply)
                != REDIS_OK)
            {
                ngx_http_dynamo_redis_fail(rs, "protocol error from", 0);
                return;
            }

            if (reply == NULL) {
                break;
            }

            ngx_http_dynamo_redis_reply(rs, reply);

            if (rs->peer.connection != c) {
                return;
            }
        }

        if (!rev->ready) {
            break;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_dynamo_redis_fail(rs, "cannot read from", 0);
    }
}


static void
ngx_http_dynamo_redis_reply(ngx_http_dynamo_redis_t *rs, redisReply *reply)
{
    int                rc;
    ngx_connection_t  *c;

    if (!ngx_http_dynamo_redis_valid(rs)) {
        freeReplyObject(reply);
        return;
    }

    c = rs->peer.connection;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    switch (rs->state) {

    case NGX_HTTP_DYNAMO_REDIS_AUTH:
    case NGX_HTTP_DYNAMO_REDIS_SELECT:

        if (reply->type == REDIS_REPLY_ERROR) {
            if (!rs->down) {
                ngx_log_error(NGX_LOG_ERR, ngx_http_dynamo_redis_main->log,
                              0, "dynamo_redis: %s refused by %V: %*s",
                              rs->state == NGX_HTTP_DYNAMO_REDIS_AUTH
                              ? "AUTH" : "SELECT",
                              rs->peer.name, (size_t) reply->len, reply->str);
            }

            freeReplyObject(reply);
            (void) ngx_atomic_fetch_add(&rs->status->errors, 1);
            rs->down = 1;
            ngx_http_dynamo_redis_fail(rs, "refused by", 0);
            return;
        }

        freeReplyObject(reply);
        rs->state++;
        ngx_http_dynamo_redis_handshake(rs);
        return;

    case NGX_HTTP_DYNAMO_REDIS_SYNC:

        if (!ngx_http_dynamo_redis_holds(rs)) {
            freeReplyObject(reply);
            ngx_log_error(NGX_LOG_NOTICE, ngx_http_dynamo_redis_main->log, 0,
                          "dynamo_redis: lost the sync of model \"%V\"",
                          &rs->name);
            rs->lease = 0;
            ngx_http_dynamo_redis_stop(rs);
            return;
        }

        rc = kvr_sync_on_reply(rs->sync, reply);
        freeReplyObject(reply);

        ngx_http_dynamo_redis_publish(rs);

        /*
         * sync errors (the index refusing a snapshot) are logged once per
         * run of errors less than RETRY_MAX apart; the resyncs after them
         * back off
         */

        if (rc != KVR_OK) {
            if (!rs->failing
                || ngx_current_msec - rs->failed > NGX_HTTP_DYNAMO_RETRY_MAX)
            {
                ngx_log_error(NGX_LOG_WARN, ngx_http_dynamo_redis_main->log,
                              0, "dynamo_redis: model \"%V\": %s, resyncing",
                              &rs->name, kvr_sync_last_error(rs->sync));
                rs->failing = 1;
                rs->retry = 0;

            } else {
                rs->retry = rs->retry
                            ? ngx_min(rs->retry * 2,
                                      NGX_HTTP_DYNAMO_RETRY_MAX)
                            : NGX_HTTP_DYNAMO_RETRY_MIN;
            }

            rs->failed = ngx_current_msec;

        } else {
            rs->status->connected = 1;
        }

        rs->state = NGX_HTTP_DYNAMO_REDIS_READY;

        if (rc != KVR_OK && rs->retry) {
            if (rs->wake.timer_set) {
                ngx_del_timer(&rs->wake);
            }

            ngx_add_timer(&rs->wake, rs->retry);
            return;
        }

        ngx_http_dynamo_redis_drive(rs);
        return;

    default:
        freeReplyObject(reply);
        ngx_http_dynamo_redis_fail(rs, "unexpected reply from", 0);
        return;
    }
}


/* the sync's counters, added to the zone's as they grow */

static void
ngx_http_dynamo_redis_publish(ngx_http_dynamo_redis_t *rs)
{
    kvr_sync_stats_t                st;
    ngx_http_dynamo_sync_status_t  *ss;

    kvr_sync_stats(rs->sync, &st);

    ss = rs->status;

    (void) ngx_atomic_fetch_add(&ss->events_applied,
                                st.events_applied
                                - rs->published.events_applied);
    (void) ngx_atomic_fetch_add(&ss->full_resyncs,
                                st.full_resyncs - rs->published.full_resyncs);
    (void) ngx_atomic_fetch_add(&ss->errors,
                                st.errors - rs->published.errors);

    ss->workers = st.workers;

    rs->published = st;
}


static void
ngx_http_dynamo_redis_fail(ngx_http_dynamo_redis_t *rs, char *what,
    ngx_err_t err)
{
    ngx_msec_t  delay;

    if (!ngx_http_dynamo_redis_valid(rs)) {
        return;
    }

    if (rs->state >= NGX_HTTP_DYNAMO_REDIS_READY) {
        (void) ngx_atomic_fetch_add(&rs->status->disconnects, 1);
    }

    ngx_http_dynamo_redis_close(rs);

    if (rs->sync) {
        kvr_sync_on_disconnect(rs->sync);
    }

    rs->status->connected = 0;

    if (!rs->down) {
        ngx_log_error(NGX_LOG_WARN, ngx_http_dynamo_redis_main->log, err,
                      "dynamo_redis: %s %V, model \"%V\" routes on its "
                      "last index and load; retrying in the background",
                      what, &ngx_http_dynamo_redis_main->conf->url.url,
                      &rs->name);
        rs->down = 1;
    }

    if (ngx_exiting || rs->lease == 0) {
        return;
    }

    delay = rs->backoff;
    rs->backoff = ngx_min(rs->backoff * 2, NGX_HTTP_DYNAMO_BACKOFF_MAX);

    if (rs->wake.timer_set) {
        ngx_del_timer(&rs->wake);
    }

    ngx_add_timer(&rs->wake, delay);
}


static void
ngx_http_dynamo_redis_wake_handler(ngx_event_t *ev)
{
    ngx_http_dynamo_redis_t *rs = ev->data;

    if (ngx_exiting
        || rs->sync == NULL
        || !ngx_http_dynamo_redis_valid(rs)
        || !ngx_http_dynamo_redis_holds(rs))
    {
        return;
    }

    switch (rs->state) {

    case NGX_HTTP_DYNAMO_REDIS_CLOSED:
        ngx_http_dynamo_redis_connect(rs);
        return;

    case NGX_HTTP_DYNAMO_REDIS_READY:
        ngx_http_dynamo_redis_drive(rs);
        return;

    default:
        return;
    }
}


static void
ngx_http_dynamo_redis_close(ngx_http_dynamo_redis_t *rs)
{
    if (rs->peer.connection) {
        ngx_close_connection(rs->peer.connection);
        rs->peer.connection = NULL;
    }

    if (rs->reader) {
        redisReaderFree(rs->reader);
        rs->reader = NULL;
    }

    if (rs->out) {
        redisFreeCommand(rs->out);
        rs->out = NULL;
    }

    rs->state = NGX_HTTP_DYNAMO_REDIS_CLOSED;
}
