
/*
 * ngx_dynamo: the shared-memory zone (one per nginx instance, every nginx
 * worker process maps it) and the Redis sync that keeps it current.
 *
 * The zone holds, per dynamo_model, a kvr_index_t (which worker caches
 * which blocks; registry and published load of the workers in Redis), a
 * table of gateway-side load per worker address (requests in flight and
 * their blocks, counted by every nginx process), router counters for
 * /metrics, and the sync lease: the one process that writes the indexes.
 * It is reused across reloads (same name and size): routing keeps its
 * picture while the new workers resync.
 */


#ifndef _NGX_HTTP_DYNAMO_SHM_H_INCLUDED_
#define _NGX_HTTP_DYNAMO_SHM_H_INCLUDED_


#define NGX_HTTP_DYNAMO_ZONE_NAME       "dynamo"
#define NGX_HTTP_DYNAMO_ZONE_SIZE       (32 * 1024 * 1024)
#define NGX_HTTP_DYNAMO_LOAD_SLOTS      1024
#define NGX_HTTP_DYNAMO_FAIL_TIMEOUT    10000    /* ms out after a failure */
#define NGX_HTTP_DYNAMO_LOAD_IDLE       60       /* s before an idle slot
                                                    may be reclaimed */
#define NGX_HTTP_DYNAMO_LOAD_TOMB       ((ngx_atomic_uint_t) -1)
#define NGX_HTTP_DYNAMO_LOAD_FULL       ((ngx_atomic_uint_t) 1 << 32)
#define NGX_HTTP_DYNAMO_LOAD_ROWS       64       /* nginx processes whose
                                                    share is kept apart */


/* one nginx process's share of a worker's load */
typedef struct {
    ngx_atomic_t                    in_flight;
    ngx_atomic_t                    blocks;
    ngx_atomic_t                    prefill;
} ngx_http_dynamo_load_row_t;


/* gateway-side load of one worker address; atomics, no lock */
typedef struct ngx_http_dynamo_load_s {
    ngx_atomic_t                    hash;        /* of name; 0: free slot,
                                                    LOAD_TOMB: reclaimed */
    u_char                          name[KVR_ADDR_MAX];
    ngx_atomic_t                    in_flight;   /* requests */
    ngx_atomic_t                    blocks;      /* their prompt blocks */
    ngx_atomic_t                    prefill;     /* their uncached tokens */
    ngx_atomic_t                    requests;    /* total routed here */
    ngx_atomic_t                    prefills;    /* total chosen as the
                                                    prefill worker */
    ngx_atomic_t                    fails;       /* total failures */
    ngx_atomic_t                    failed_until;  /* ngx_current_msec
                                                      scale; 0: healthy */
    ngx_atomic_t                    used;        /* ngx_time() of the last
                                                    claim or release */
    ngx_http_dynamo_load_row_t      row[NGX_HTTP_DYNAMO_LOAD_ROWS];
                                                 /* the totals above per
                                                    process (shm row_pid):
                                                    a dead one's are taken
                                                    back */
} ngx_http_dynamo_load_t;


/* router counters for /metrics, all atomics */
typedef struct {
    ngx_atomic_t                    requests;        /* routed */
    ngx_atomic_t                    kv_hits;         /* overlap > 0 */
    ngx_atomic_t                    overlap_blocks;  /* sum */
    ngx_atomic_t                    prompt_blocks;   /* sum */
    ngx_atomic_t                    prompt_tokens;
    ngx_atomic_t                    completion_tokens;
    ngx_atomic_t                    cached_tokens;
    ngx_atomic_t                    errors;          /* answered >= 400 */
    ngx_atomic_t                    no_worker;       /* 503s */
    ngx_atomic_t                    worker_failures; /* 502s, error events */
    ngx_atomic_t                    cancelled;       /* client went away */
    ngx_atomic_t                    rr;              /* round_robin turn */
    ngx_atomic_t                    prefill_hinted;  /* dynamo_prefill_
                                                        upstream: a prefill
                                                        worker passed */
    ngx_atomic_t                    prefill_unhinted;  /* none live */
} ngx_http_dynamo_counters_t;


/* Redis sync status, written by the lease holder, read by /metrics */
typedef struct {
    ngx_atomic_t                    connected;
    ngx_atomic_t                    owner_pid;      /* 0: nobody syncs */
    ngx_atomic_t                    lease_until;    /* ms, ngx_time() scale */
    ngx_atomic_t                    full_resyncs;
    ngx_atomic_t                    events_applied;
    ngx_atomic_t                    errors;
    ngx_atomic_t                    disconnects;
    ngx_atomic_t                    workers;
} ngx_http_dynamo_sync_status_t;


/* ngx_http_dynamo_shm.c */

/* adds the zone named by dynamo_zone, or an implicit "dynamo" one */
ngx_int_t ngx_http_dynamo_shm_add(ngx_conf_t *cf,
    ngx_http_dynamo_main_conf_t *dmcf);

/* NULL until the zone is initialised (never in a worker process) */
kvr_index_t *ngx_http_dynamo_shm_index(ngx_http_dynamo_main_conf_t *dmcf,
    ngx_uint_t model);

/*
 * the load of a worker address, for routing; claims nothing: NULL when the
 * address has no slot (nothing in flight there), a placeholder of maximal
 * load (LOAD_FULL blocks and prefill) when it has none because the table is
 * full, so that a worker without accounting never looks idle; then, once a
 * second across processes, idle slots are reclaimed, and NULL is returned
 * if that freed one
 */
ngx_http_dynamo_load_t *ngx_http_dynamo_shm_load(
    ngx_http_dynamo_main_conf_t *dmcf, u_char *name, size_t len);

/* finds or claims the slot of a worker chosen for a request; reclaims idle
   slots when the table is full; NULL when none can be claimed */
ngx_http_dynamo_load_t *ngx_http_dynamo_shm_load_claim(
    ngx_http_dynamo_main_conf_t *dmcf, u_char *name, size_t len);

/* adds (or with negative values takes back) load in flight: the totals
   and this process's row */
void ngx_http_dynamo_shm_load_add(ngx_http_dynamo_load_t *load,
    ngx_atomic_int_t in_flight, ngx_atomic_int_t blocks,
    ngx_atomic_int_t prefill);

/*
 * init_process: takes back the load of nginx processes that died (a
 * worker killed mid-request) and claims a row for this one; exit_process
 * frees it; reap repeats the first part, cheaply, from a timer
 */
void ngx_http_dynamo_shm_init_process(ngx_http_dynamo_main_conf_t *dmcf);
void ngx_http_dynamo_shm_exit_process(ngx_http_dynamo_main_conf_t *dmcf);
void ngx_http_dynamo_shm_reap(ngx_http_dynamo_main_conf_t *dmcf);

/* the slot of a worker address if it has one, for /metrics */
ngx_http_dynamo_load_t *ngx_http_dynamo_shm_load_find(
    ngx_http_dynamo_main_conf_t *dmcf, u_char *name, size_t len);

ngx_http_dynamo_counters_t *ngx_http_dynamo_shm_counters(
    ngx_http_dynamo_main_conf_t *dmcf);
ngx_http_dynamo_sync_status_t *ngx_http_dynamo_shm_sync_status(
    ngx_http_dynamo_main_conf_t *dmcf, ngx_uint_t model);

/*
 * Prometheus lines for the indexes and the Redis sync (per model: workers,
 * blocks, connected, events applied, resyncs, errors), for /metrics
 */
u_char *ngx_http_dynamo_shm_metrics(ngx_http_dynamo_main_conf_t *dmcf,
    u_char *p, u_char *last);

/* ngx_http_dynamo_redis.c: the index writer, in the lease holder */
ngx_int_t ngx_http_dynamo_redis_init_process(ngx_cycle_t *cycle);
void ngx_http_dynamo_redis_exit_process(ngx_cycle_t *cycle);


#endif /* _NGX_HTTP_DYNAMO_SHM_H_INCLUDED_ */
