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
#include "dw_xfer.h"
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

    /* decode side of a disaggregated request (dw_server_disagg.c) */
    char                      *body;      /* generate body, for P */
    size_t                     body_len;
    void                      *remote;    /* state while P prefills */
    /* a POST /v1/prefill being served (dw_server_prefill.c) */
    void                      *pf;
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

/* Disaggregation counters (both sides; /metrics). */
typedef struct {
    /* decode side */
    uint64_t  prefill[DW_PREFILL_LOCAL_SELF + 1];  /* finished requests by
                                                      where the prompt was
                                                      computed */
    uint64_t  remote_sent;         /* prefill requests sent to P */
    uint64_t  remote_ok;           /* ... answered by a notification */
    uint64_t  fallback_timeout;    /* no notification by the deadline */
    uint64_t  fallback_error;      /* P answered an error / connection lost */
    double    remote_wait_ms;      /* summed: request sent -> notification */
    /* prefill side */
    uint64_t  served;              /* /v1/prefill transfers done */
    uint64_t  refused;             /* /v1/prefill answered 4xx/5xx */
    uint64_t  blocks_skipped;      /* blocks D had cached: not sent */
} dw_disagg_counters_t;

typedef struct dw_disagg_s  dw_disagg_t;

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

    /* disaggregation: NULL xfer/kv_reg when off */
    dw_xfer_t                   *xfer;     /* the server's context */
    dw_xfer_reg_t               *kv_reg;   /* this worker's KV pool */
    dw_disagg_t                 *dis;      /* decode side state */
    dw_disagg_counters_t         dcnt;
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
    dw_xfer_t          *xfer;      /* KV transfer; NULL: none */
    struct event       *xfer_ev;   /* its wakeup fd */
    struct event       *xfer_again;/* dw_xfer_drive asked for more */
    struct event       *xfer_tick; /* deadlines (periodic progress) */
};

uint64_t dw_server_now_ms(void);

/* dw_server_http.c */
void dw_http_generic(struct evhttp_request *req, void *arg);
void dw_http_reset_done(dw_worker_t *w, dw_slot_t *sl,
    const dw_output_t *out);
/* The request body, contiguous ("" when empty), and its length. */
const char *dw_http_body(struct evhttp_request *req, size_t *len);
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

/* dw_server_disagg.c: the decode side */
int dw_disagg_init(dw_worker_t *w);
void dw_disagg_free(dw_worker_t *w);
/*
 * Before submitting a generate request: decides between local prefill
 * (er->prefill says why) and a possible remote one (er->flags gets
 * DW_REQ_REMOTE_PREFILL, the body is kept in sl). 0, or -1 (no memory).
 */
int dw_disagg_prepare(dw_worker_t *w, dw_slot_t *sl,
    const dw_proto_req_t *pr, const char *body, size_t len,
    dw_request_t *er);
/* A DW_OUT_REMOTE output for sl: ask the prefill worker; owns out's
   kv_blocks. */
void dw_disagg_remote(dw_worker_t *w, dw_slot_t *sl, dw_output_t *out);
/*
 * The client of sl went away. 1: a remote prefill into its blocks is in
 * flight, so the engine cancel waits for its end (the disaggregation code
 * cancels then); 0: cancel now.
 */
int dw_disagg_cancel(dw_worker_t *w, dw_slot_t *sl);
/* sl is being freed (finished or cancelled): drop its remote state. */
void dw_disagg_slot_gone(dw_worker_t *w, dw_slot_t *sl);

/* dw_server_prefill.c: the prefill side */
void dw_prefill_http(dw_worker_t *w, struct evhttp_request *req);
/* A token or finish output of a /v1/prefill slot; owns out's kv_blocks. */
void dw_prefill_output(dw_worker_t *w, dw_slot_t *sl, dw_output_t *out);
void dw_prefill_slot_gone(dw_worker_t *w, dw_slot_t *sl);

/* dw_metrics.c */
int dw_metrics_health(dw_worker_t *w, kvr_buf_t *b);
int dw_metrics_text(dw_worker_t *w, kvr_buf_t *b);

#endif
