/*
 * dynamo-worker: server lifecycle: workers (listener, engine notify,
 * Redis), the event loop, and the graceful stop on SIGINT/SIGTERM: stop
 * accepting, cancel every request (clients get a "cancelled" finish
 * frame), wait for the finishes (at most DW_STOP_WAIT_MS), unregister from
 * Redis, stop the engines.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "dw_log.h"
#include "dw_server_int.h"

#define DW_STOP_WAIT_MS    3000
#define DW_HTTP_TIMEOUT_S  600          /* idle keepalive, slow clients */
#define DW_MAX_BODY        (16 << 20)
#define DW_TICK_MS         20
#define DW_XFER_TICK_MS    50           /* KV transfer deadlines */

static void
server_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    dw_server_t  *s = arg;

    dw_log(DW_LOG_INFO, "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    dw_server_stop(s);
}

static void
server_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    dw_server_t  *s = arg;
    dw_worker_t  *w;
    uint32_t      live;

    live = 0;
    for (w = s->workers; w != NULL; w = w->link) {
        if (!s->stopping) {
            dw_worker_publish_load(w, 0);
        }
        live += w->live;
    }
    if (s->stopping
        && (live == 0 || dw_server_now_ms() - s->stop_ms > DW_STOP_WAIT_MS))
    {
        if (live > 0) {
            dw_log(DW_LOG_WARN, "%u requests still running after %d ms",
                   live, DW_STOP_WAIT_MS);
        }
        event_base_loopbreak(s->base);
    }
}

int
dw_server_create(dw_server_t **out, char *err, size_t errlen)
{
    dw_server_t     *s;
    struct timeval   tv;

    signal(SIGPIPE, SIG_IGN);
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->base = event_base_new();
    if (s->base == NULL) {
        snprintf(err, errlen, "event_base_new failed");
        free(s);
        return -1;
    }
    s->sigint = evsignal_new(s->base, SIGINT, server_signal_cb, s);
    s->sigterm = evsignal_new(s->base, SIGTERM, server_signal_cb, s);
    s->tick = event_new(s->base, -1, EV_PERSIST, server_tick_cb, s);
    if (s->sigint == NULL || s->sigterm == NULL || s->tick == NULL) {
        snprintf(err, errlen, "out of memory");
        dw_server_destroy(s);
        return -1;
    }
    evsignal_add(s->sigint, NULL);
    evsignal_add(s->sigterm, NULL);
    tv.tv_sec = 0;
    tv.tv_usec = DW_TICK_MS * 1000;
    event_add(s->tick, &tv);
    *out = s;
    return 0;
}

static int
worker_listen(dw_worker_t *w, char *err, size_t errlen)
{
    struct sockaddr_storage  ss;
    int                      on;
    socklen_t                sl;
    evutil_socket_t          fd;

    w->http = evhttp_new(w->srv->base);
    if (w->http == NULL) {
        snprintf(err, errlen, "evhttp_new failed");
        return -1;
    }
    evhttp_set_gencb(w->http, dw_http_generic, w);
    evhttp_set_max_body_size(w->http, DW_MAX_BODY);
    evhttp_set_timeout(w->http, DW_HTTP_TIMEOUT_S);
    /* every method reaches our handlers, which answer 405 in JSON */
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST
                               | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT
                               | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS
                               | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT
                               | EVHTTP_REQ_PATCH);
    w->bound = evhttp_bind_socket_with_handle(w->http, w->host,
                                              (ev_uint16_t) w->port);
    if (w->bound == NULL) {
        snprintf(err, errlen, "cannot listen on %s:%u (in use, or not an "
                 "IP address of this host)", w->host, w->port);
        return -1;
    }
    fd = evhttp_bound_socket_get_fd(w->bound);
    /*
     * A reply is several small writes (headers, frames, the last chunk):
     * with Nagle, every request after the first on a kept-alive connection
     * waits ~40 ms for the peer's delayed ACK. Accepted sockets inherit
     * TCP_NODELAY from the listener on Linux.
     */
    on = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) != 0) {
        dw_log(DW_LOG_WARN, "TCP_NODELAY: %s", strerror(errno));
    }
    sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *) &ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            w->port = ntohs(((struct sockaddr_in *) &ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            w->port = ntohs(((struct sockaddr_in6 *) &ss)->sin6_port);
        }
    }
    snprintf(w->listen_addr, sizeof(w->listen_addr),
             strchr(w->host, ':') != NULL ? "[%s]:%u" : "%s:%u", w->host,
             w->port);
    return 0;
}

static int
worker_advertise(dw_worker_t *w, char *err, size_t errlen)
{
    const char  *a = w->conf.advertise;
    int          n;

    if (a == NULL) {
        if (strcmp(w->host, "0.0.0.0") == 0 || strcmp(w->host, "::") == 0) {
            dw_log(DW_LOG_WARN, "listening on %s: registering %s; give "
                   "--advertise-addr so routers can reach this worker",
                   w->host, w->listen_addr);
        }
        n = snprintf(w->advertise, sizeof(w->advertise), "%s",
                     w->listen_addr);
    } else if (strchr(a, ':') != NULL && a[0] != '[') {
        n = snprintf(w->advertise, sizeof(w->advertise), "%s", a);
    } else if (a[0] == '[' && strstr(a, "]:") != NULL) {
        n = snprintf(w->advertise, sizeof(w->advertise), "%s", a);
    } else {
        n = snprintf(w->advertise, sizeof(w->advertise), "%s:%u", a, w->port);
    }
    if (n < 0 || (size_t) n >= sizeof(w->advertise)) {
        snprintf(err, errlen, "advertised address too long");
        return -1;
    }
    return 0;
}

static void
worker_free(dw_worker_t *w)
{
    uint32_t  i;

    if (w->redis != NULL) {
        dw_redis_destroy(w->redis);
    }
    if (w->notify_ev != NULL) {
        event_free(w->notify_ev);
    }
    if (w->engine != NULL) {
        dw_engine_stop(w->engine);
    }
    /* requests the engine never finished (stop timed out) */
    for (i = 0; i < w->n_slots; i++) {
        dw_slot_t  *sl = w->slots[i];

        if (sl == NULL) {
            continue;
        }
        if (sl->reset) {
            dw_http_send_error(sl->req, 503, "Service Unavailable",
                               "unavailable", NULL, "the worker stopped");
        } else if (sl->gone) {
            evhttp_send_reply_end(sl->req);      /* frees the detached req */
        } else {
            evhttp_connection_set_closecb(sl->conn, NULL, NULL);
        }
        dw_slot_free(w, sl);
    }
    if (w->http != NULL) {
        evhttp_free(w->http);
    }
    if (w->engine != NULL) {
        dw_engine_destroy(w->engine);
    }
    dw_disagg_free(w);
    /* after the engine: its backend's KV pool is this region */
    if (w->kv_reg != NULL) {
        dw_xfer_unregister(w->xfer, w->kv_reg);
    }
    free(w->slots);
    free(w->gens);
    free(w->free_idx);
    free(w->outs);
    free(w->next);
    kvr_buf_free(&w->frame);
    if (w->chunk != NULL) {
        evbuffer_free(w->chunk);
    }
    free(w);
}

int
dw_server_add_worker(dw_server_t *s, const dw_worker_conf_t *conf,
    dw_engine_t *e, dw_worker_t **out, char *err, size_t errlen)
{
    dw_worker_t       *w, **tail;
    kvr_pub_config_t   pc;
    dw_redis_conf_t    rc;

    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        snprintf(err, errlen, "out of memory");
        dw_engine_destroy(e);
        if (conf->kv_reg != NULL) {
            dw_xfer_unregister(s->xfer, conf->kv_reg);
        }
        return -1;
    }
    w->srv = s;
    w->engine = e;
    w->xfer = s->xfer;
    w->kv_reg = conf->kv_reg;
    w->conf = *conf;
    w->port = conf->port;
    snprintf(w->host, sizeof(w->host), "%s", conf->host);
    snprintf(w->engine_name, sizeof(w->engine_name), "%s", conf->engine_name);
    snprintf(w->model_name, sizeof(w->model_name), "%s", conf->model_name);
    snprintf(w->ns, sizeof(w->ns), "%s", conf->ns);
    /* the strings in conf are the caller's: point at our copies */
    w->conf.host = w->host;
    w->conf.engine_name = w->engine_name;
    w->conf.model_name = w->model_name;
    w->conf.ns = w->ns;
    w->conf.advertise = NULL;
    w->conf.redis_addr = NULL;
    w->conf.redis_password = NULL;
    w->conf.kv_reg = NULL;
    if (dw_disagg_init(w) != 0) {
        snprintf(err, errlen, "out of memory");
        worker_free(w);
        return -1;
    }
    if (w->conf.max_pending == 0) {
        w->conf.max_pending = 4096;
    }
    w->outs = calloc(DW_DRAIN_BATCH, sizeof(*w->outs));
    w->next = calloc(DW_DRAIN_BATCH, sizeof(*w->next));
    w->chunk = evbuffer_new();
    if (w->outs == NULL || w->next == NULL || w->chunk == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (worker_listen(w, err, errlen) != 0) {
        goto fail;
    }
    w->conf.advertise = conf->advertise;
    if (worker_advertise(w, err, errlen) != 0) {
        goto fail;
    }
    w->conf.advertise = NULL;

    w->notify_ev = event_new(s->base, dw_engine_notify_fd(e),
                             EV_READ | EV_PERSIST, dw_engine_notify_cb, w);
    if (w->notify_ev == NULL || event_add(w->notify_ev, NULL) != 0) {
        snprintf(err, errlen, "cannot watch the engine's notify fd");
        goto fail;
    }

    if (conf->redis_addr != NULL) {
        kvr_pub_config_defaults(&pc);
        pc.ns = w->ns;
        pc.worker_id = conf->worker_id;
        pc.generation = conf->generation;
        pc.role = conf->role;
        pc.addr = w->advertise;
        pc.block_size = dw_engine_config(e)->block_size;
        pc.capacity_blocks = dw_engine_config(e)->n_blocks;
        rc.addr = conf->redis_addr;
        rc.password = conf->redis_password;
        rc.db = conf->redis_db;
        w->redis = dw_redis_create(s->base, &rc, &pc, err, errlen);
        if (w->redis == NULL) {
            goto fail;
        }
        dw_worker_publish_load(w, 1);
    }

    for (tail = &s->workers; *tail != NULL; tail = &(*tail)->link) {
        /* append: workers keep their order */
    }
    *tail = w;
    s->n_workers++;
    if (out != NULL) {
        *out = w;
    }
    return 0;

fail:
    worker_free(w);
    return -1;
}

const char *
dw_worker_listen_addr(const dw_worker_t *w)
{
    return w->listen_addr;
}

uint64_t
dw_worker_id(const dw_worker_t *w)
{
    return w->conf.worker_id;
}

int
dw_server_run(dw_server_t *s)
{
    return event_base_dispatch(s->base) < 0 ? -1 : 0;
}

void
dw_server_stop(dw_server_t *s)
{
    dw_worker_t  *w;

    if (s->stopping) {
        return;
    }
    s->stopping = 1;
    s->stop_ms = dw_server_now_ms();
    for (w = s->workers; w != NULL; w = w->link) {
        if (w->bound != NULL) {
            evhttp_del_accept_socket(w->http, w->bound);
            w->bound = NULL;
        }
        dw_worker_cancel_all(w);
    }
}

void
dw_server_destroy(dw_server_t *s)
{
    dw_worker_t  *w, *next;

    if (s == NULL) {
        return;
    }
    if (s->xfer != NULL) {
        /* the handler looks workers up: none may run while they go */
        dw_xfer_set_note_handler(s->xfer, NULL, NULL);
    }
    for (w = s->workers; w != NULL; w = next) {
        next = w->link;
        worker_free(w);
    }
    if (s->sigint != NULL) {
        event_free(s->sigint);
    }
    if (s->sigterm != NULL) {
        event_free(s->sigterm);
    }
    if (s->tick != NULL) {
        event_free(s->tick);
    }
    if (s->xfer_ev != NULL) {
        event_free(s->xfer_ev);
    }
    if (s->xfer_again != NULL) {
        event_free(s->xfer_again);
    }
    if (s->xfer_tick != NULL) {
        event_free(s->xfer_tick);
    }
    if (s->xfer != NULL) {
        dw_xfer_destroy(s->xfer);
    }
    event_base_free(s->base);
    free(s);
}

/*
 * KV transfer (worker/XFER.md, "Event loop"): the wakeup fd drives UCX
 * until it is idle and re-armed; a drive that ran out of budget asks to
 * be called again at once (xfer_again) instead of waiting for the fd; the
 * tick catches deadlines (batches on P, notifications expected on D),
 * which no fd reports. The tick drives too, so a round of progress there
 * never leaves the fd unarmed.
 */
static void
server_xfer_drive(dw_server_t *s)
{
    if (dw_xfer_drive(s->xfer) == 1) {
        event_active(s->xfer_again, EV_TIMEOUT, 0);
    }
}

static void
server_xfer_cb(evutil_socket_t fd, short what, void *arg)
{
    server_xfer_drive(arg);
}

void
dw_server_set_xfer(dw_server_t *s, dw_xfer_t *x)
{
    struct timeval  tv;

    s->xfer = x;
    if (x == NULL) {
        return;
    }
    s->xfer_ev = event_new(s->base, dw_xfer_efd(x), EV_READ | EV_PERSIST,
                           server_xfer_cb, s);
    s->xfer_again = event_new(s->base, -1, 0, server_xfer_cb, s);
    s->xfer_tick = event_new(s->base, -1, EV_PERSIST, server_xfer_cb, s);
    tv.tv_sec = 0;
    tv.tv_usec = DW_XFER_TICK_MS * 1000;
    if (s->xfer_ev == NULL || s->xfer_again == NULL || s->xfer_tick == NULL
        || event_add(s->xfer_ev, NULL) != 0
        || event_add(s->xfer_tick, &tv) != 0)
    {
        /* only the tick would be left to progress UCX: say so loudly */
        dw_log(DW_LOG_ERROR, "cannot watch the KV transfer's wakeup fd");
    }
    if (s->xfer_again != NULL) {
        /* the first drive arms the fd */
        event_active(s->xfer_again, EV_TIMEOUT, 0);
    }
}
