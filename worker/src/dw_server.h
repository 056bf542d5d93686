/*
 * dynamo-worker: the server. One I/O thread (a libevent event_base) serves
 * any number of workers; each worker is one engine with its own HTTP
 * listener (the internal protocol, PROTOCOL.md), /health, /metrics, and its
 * own Redis publisher (registration, liveness and load, KV events).
 *
 *   dw_server_create     the event_base, signal handlers
 *   dw_server_add_worker binds the port, reaches Redis (blocking, once:
 *                        an unreachable Redis fails here), registers
 *   dw_server_run        the loop; returns after SIGINT/SIGTERM once every
 *                        request is finished and Redis was told
 */
#ifndef DW_SERVER_H
#define DW_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "dw_engine.h"
#include "kvr_worker.h"

typedef struct dw_server_s  dw_server_t;
struct dw_xfer_s;
struct dw_xfer_reg_s;
typedef struct dw_worker_s  dw_worker_t;

/* Disaggregated prefill, decode side (worker/DISAGG.md). */
typedef struct {
    uint32_t      max_local_prefill;   /* prefill remotely only when more
                                          prompt tokens than this are
                                          uncached (1000) */
    uint64_t      max_prefill_queue;   /* prompt tokens in flight to one
                                          prefill worker before it counts
                                          as busy (16384) */
    uint32_t      timeout_ms;          /* remote prefill deadline (10000) */
} dw_disagg_conf_t;

typedef struct {
    const char   *host;            /* listen address (IP literal) */
    uint32_t      port;            /* 0: the kernel picks */
    const char   *advertise;       /* HOST[:PORT] or NULL: host:port */
    uint64_t      worker_id;
    uint64_t      generation;
    kvr_role_t    role;
    const char   *engine_name;     /* "cpu", "mock" */
    const char   *model_name;      /* served model name */
    uint32_t      vocab_size;      /* bounds token ids in requests */
    uint32_t      max_model_len;   /* prompt + output tokens */
    uint32_t      max_pending;     /* live requests before 503 */
    /* Redis: redis_addr NULL runs without */
    const char   *redis_addr;      /* host:port or unix:/path */
    const char   *redis_password;
    uint32_t      redis_db;
    const char   *ns;
    /*
     * Disaggregation: role decode or prefill with a KV pool registered in
     * the server's UCX context (dw_server_set_xfer). The worker owns
     * kv_reg from here (unregistered when it is destroyed). NULL: no
     * disaggregation (role both, or not set up).
     */
    struct dw_xfer_reg_s  *kv_reg;
    dw_disagg_conf_t       disagg;
} dw_worker_conf_t;

int dw_server_create(dw_server_t **out, char *err, size_t errlen);
/*
 * Hands the server a UCX context for KV transfer (worker/XFER.md): the
 * I/O loop drives it and destroys it last. Before adding workers whose
 * kv_reg lives in it.
 */
void dw_server_set_xfer(dw_server_t *s, struct dw_xfer_s *x);

/*
 * Adds a worker serving e (started by the caller; the worker owns it from
 * here: stopped and destroyed with the server). 0, or -1 with err (port in
 * use, Redis unreachable, ...); e is destroyed on failure too.
 */
int dw_server_add_worker(dw_server_t *s, const dw_worker_conf_t *conf,
    dw_engine_t *e, dw_worker_t **out, char *err, size_t errlen);
/* "host:port" the worker listens on (the bound port, after port 0). */
const char *dw_worker_listen_addr(const dw_worker_t *w);
uint64_t dw_worker_id(const dw_worker_t *w);

/* Runs until SIGINT/SIGTERM (or dw_server_stop); 0 on a clean stop. */
int dw_server_run(dw_server_t *s);
/* Starts the graceful stop, as a signal would (I/O thread only). */
void dw_server_stop(dw_server_t *s);
void dw_server_destroy(dw_server_t *s);

#endif
