/*
 * dynamo-worker: server internals shared by dw_server*.c and dw_metrics.c.
 */
#ifndef DW_SERVER_INT_H
#define DW_SERVER_INT_H

#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>

#include "dw_engine.h"
#include "dw_proto.h"
#include "dw_redis.h"
#include "dw_server.h"
#include "kvr_buf.h"

#define DW_DRAIN_BATCH   256     /* outputs per dw_engine_drain call */
#define DW_KV_BATCH      64
#define DW_LOAD_TICK_MS  100     /* load published at most this often */
#define DW_LOAD_IDLE_MS  1000    /* ... and at least this often */

/* One live request: from submit until its DW_OUT_FINISH is handled. */
typedef struct {
    dw_worker_t               *w;
    uint64_t                   id;        /* (gen << 32) | index */
    struct evhttp_request     *req;
    struct evhttp_connection  *conn;
    int                        gone;      /* client closed: cancelled */
    int                        reset;     /* a reset_prefix_cache call */
    int                        with_lp;
    int                        pend_head; /* outputs of this drain batch */
    int                        pend_tail;
    int                        touched;
    char                       request_id[DW_PROTO_ID_MAX + 1];
} dw_slot_t;

typedef struct {
    uint64_t  http_requests;       /* any path */
    uint64_t  generate_requests;   /* POST /v1/generate accepted */
    uint64_t  rejected_400;
    uint64_t  rejected_503;
    uint64_t  finished[DW_FINISH_ERROR + 1];
    uint64_t  disconnects;         /* client closed mid-stream */
    uint64_t  frames;              /* token frames sent */
} dw_worker_counters_t;

struct dw_worker_s {
    dw_server_t                 *srv;
    dw_engine_t                 *engine;
    dw_worker_conf_t             conf;
    char                         host[64];
    char                         listen_addr[KVR_ADDR_MAX + 8];
    char                         advertise[KVR_ADDR_MAX];
    char                         engine_name[16];
    char                         model_name[256];
    char                         ns[KVR_REDIS_NS_MAX + 1];
    uint32_t                     port;

    struct evhttp               *http;
    struct evhttp_bound_socket  *bound;
    struct event                *notify_ev;
    dw_redis_t                  *redis;

    /* request slots: index -> slot, free list of indices */
    dw_slot_t                  **slots;
    uint32_t                    *gens;
    uint32_t                    *free_idx;
    uint32_t                     n_free;
    uint32_t                     n_slots;
    uint32_t                     live;

    /* drain scratch */
    dw_output_t                 *outs;
    int                         *next;
    kvr_buf_t                    frame;
    struct evbuffer             *chunk;

    /* load publishing */
    kvr_load_t                   last_load;
    uint64_t                     last_load_ms;

    dw_worker_counters_t         cnt;
    dw_worker_t                 *link;     /* server's list */
};

struct dw_server_s {
    struct event_base  *base;
    struct event       *sigint;
    struct event       *sigterm;
    struct event       *tick;      /* load publishing; shutdown progress */
    dw_worker_t        *workers;
    uint32_t            n_workers;
    int                 stopping;
    uint64_t            stop_ms;
};

uint64_t dw_server_now_ms(void);

/* dw_server_http.c */
void dw_http_generic(struct evhttp_request *req, void *arg);
void dw_http_reset_done(dw_worker_t *w, dw_slot_t *sl,
    const dw_output_t *out);
void dw_http_send_error(struct evhttp_request *req, int code,
    const char *reason, const char *type, const char *field,
    const char *msg);

/* dw_server_engine.c */
void dw_engine_notify_cb(evutil_socket_t fd, short what, void *arg);
void dw_worker_publish_load(dw_worker_t *w, int force);
dw_slot_t *dw_slot_alloc(dw_worker_t *w);
dw_slot_t *dw_slot_find(dw_worker_t *w, uint64_t id);
void dw_slot_free(dw_worker_t *w, dw_slot_t *sl);
void dw_worker_cancel_all(dw_worker_t *w);

/* dw_metrics.c */
int dw_metrics_health(dw_worker_t *w, kvr_buf_t *b);
int dw_metrics_text(dw_worker_t *w, kvr_buf_t *b);

#endif
