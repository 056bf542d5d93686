
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * Routing: the candidates are the upstream's server lines and the live
 * workers of the model's index; overlap from the index, load published by
 * the workers plus what this gateway has in flight; kvrouter's selection.
 * Never waits: everything comes from shared memory.
 */


#include "ngx_http_dynamo_prepare.h"

#include "kvr_err.h"


typedef struct {
    ngx_str_t                       name;
    struct sockaddr                *sockaddr;
    socklen_t                       socklen;
    uint64_t                        worker_id;
    uint32_t                        overlap;
    uint64_t                        active_blocks;
    uint64_t                        queued_prefill;
    uint64_t                        requests;      /* running, waiting and
                                                      in flight here */
    double                          cost;
    unsigned                        failed:1;
    unsigned                        server:1;      /* a server line */
    unsigned                        fits:1;        /* registered, role fits */
    unsigned                        dropped:1;     /* registered, role not */
    unsigned                        no_overlap:1;  /* other block size */
    unsigned                        loaded:1;      /* published a load */
} ngx_http_dynamo_cand_t;


typedef struct {
    uint64_t                        worker_id;
    ngx_uint_t                      what;
} ngx_http_dynamo_warned_t;


#define NGX_HTTP_DYNAMO_WARN_BLOCK_SIZE  1
#define NGX_HTTP_DYNAMO_WARN_ADDR        2
#define NGX_HTTP_DYNAMO_WARN_ROLE        4

#define NGX_HTTP_DYNAMO_WARNED_MAX       64


static ngx_int_t ngx_http_dynamo_candidates(ngx_http_request_t *r,
    ngx_http_dynamo_model_t *model, ngx_http_upstream_srv_conf_t *uscf,
    ngx_array_t *cands);
static void ngx_http_dynamo_route_prefill(ngx_http_request_t *r,
    ngx_http_dynamo_ctx_t *ctx, size_t nm);
static ngx_int_t ngx_http_dynamo_prefill_better(ngx_http_dynamo_cand_t *a,
    ngx_http_dynamo_cand_t *b);
static void ngx_http_dynamo_prefill_cleanup(void *data);
static size_t ngx_http_dynamo_cand_overlap(ngx_http_dynamo_ctx_t *ctx,
    kvr_index_t *idx, ngx_http_dynamo_cand_t *c, size_t n, size_t nm);
static ngx_http_dynamo_cand_t *ngx_http_dynamo_cand_add(ngx_array_t *cands,
    u_char *name, size_t len);
static ngx_http_dynamo_cand_t *ngx_http_dynamo_cand_find(ngx_array_t *cands,
    u_char *name, size_t len);
static ngx_int_t ngx_http_dynamo_role_fits(ngx_uint_t role, kvr_role_t w);
static ngx_int_t ngx_http_dynamo_warn_once(uint64_t worker_id,
    ngx_uint_t what);
static void ngx_http_dynamo_cand_load(ngx_http_dynamo_main_conf_t *dmcf,
    ngx_array_t *cands);
static int ngx_http_dynamo_cost_cmp(const void *a, const void *b);


/* an implicit upstream (no upstream {} block) has no srv_conf */
#define ngx_http_dynamo_upstream_conf(uscf)                                  \
    (((uscf) && (uscf)->srv_conf)                                            \
     ? (ngx_http_dynamo_srv_conf_t *)                                        \
       ngx_http_conf_upstream_srv_conf(uscf, ngx_dynamo_module)              \
     : NULL)


/* the event loop is single-threaded: one scratch table per process */
static kvr_worker_info_t  ngx_http_dynamo_workers[KVR_INDEX_MAX_WORKERS];
static kvr_match_t        ngx_http_dynamo_matches[KVR_INDEX_MAX_WORKERS];

static ngx_atomic_t       ngx_http_dynamo_rr_local;

/* registered workers that do not fit, warned about once per process */
static ngx_http_dynamo_warned_t
                          ngx_http_dynamo_warned[NGX_HTTP_DYNAMO_WARNED_MAX];
static ngx_uint_t         ngx_http_dynamo_nwarned;


ngx_int_t
ngx_http_dynamo_route(ngx_http_request_t *r, ngx_http_dynamo_ctx_t *ctx)
{
    size_t                         i, n, nm;
    uint64_t                       rnd;
    ngx_int_t                      rc;
    ngx_uint_t                     policy, chosen, k;
    kvr_index_t                   *idx;
    ngx_array_t                    cands;
    ngx_atomic_t                  *rr;
    kvr_choice_t                   choice;
    kvr_candidate_t               *kc;
    ngx_http_dynamo_cand_t        *c, **live, *tmp;
    ngx_http_dynamo_pick_t        *pick;
    kvr_select_params_t            params;
    ngx_http_dynamo_srv_conf_t    *dscf;
    ngx_http_dynamo_loc_conf_t    *dlcf;
    ngx_http_dynamo_counters_t    *counters;
    ngx_http_dynamo_main_conf_t   *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_dynamo_module);
    dlcf = ngx_http_get_module_loc_conf(r, ngx_dynamo_module);
    dscf = ngx_http_dynamo_upstream_conf(dlcf->upstream);

    if (ngx_array_init(&cands, r->pool, 8, sizeof(ngx_http_dynamo_cand_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_dynamo_candidates(r, ctx->model, dlcf->upstream, &cands);
    if (rc != NGX_OK) {
        return rc;
    }

    c = cands.elts;
    n = 0;

    for (i = 0; i < cands.nelts; i++) {
        if (!c[i].dropped) {
            c[n++] = c[i];
        }
    }

    cands.nelts = n;

    if (cands.nelts == 0) {
        goto none;
    }

    ngx_http_dynamo_cand_load(dmcf, &cands);

    policy = dscf ? dscf->policy : NGX_HTTP_DYNAMO_POLICY_NONE;

    /* overlap from the index */

    idx = ngx_http_dynamo_shm_index(dmcf, ctx->model->index);
    nm = (size_t) -1;

    if (idx && ctx->n_blocks
        && policy != NGX_HTTP_DYNAMO_POLICY_LEAST_LOAD
        && policy != NGX_HTTP_DYNAMO_POLICY_ROUND_ROBIN)
    {
        nm = ngx_http_dynamo_cand_overlap(ctx, idx, c, cands.nelts, nm);
    }

    /* those not marked failed; all of them when every one is */

    live = ngx_palloc(r->pool, cands.nelts * sizeof(ngx_http_dynamo_cand_t *));
    kc = ngx_palloc(r->pool, cands.nelts * sizeof(kvr_candidate_t));
    if (live == NULL || kc == NULL) {
        return NGX_ERROR;
    }

    n = 0;

    for (i = 0; i < cands.nelts; i++) {
        if (!c[i].failed) {
            live[n++] = &c[i];
        }
    }

    if (n == 0) {
        for (i = 0; i < cands.nelts; i++) {
            live[n++] = &c[i];
        }
    }

    kvr_select_defaults(&params, (uint32_t) ctx->model->block_size);

    if (dscf && policy != NGX_HTTP_DYNAMO_POLICY_NONE) {
        params.overlap_weight = (double) dscf->overlap_weight
                                / NGX_HTTP_DYNAMO_FIXED_ONE;
        params.temperature = (double) dscf->temperature
                             / NGX_HTTP_DYNAMO_FIXED_ONE;
        params.balance_rel = (double) dscf->balance_margin
                             / NGX_HTTP_DYNAMO_FIXED_ONE;
    }

    for (i = 0; i < n; i++) {
        kc[i].worker_id = i;
        kc[i].overlap_blocks = live[i]->overlap;
        kc[i].active_blocks = live[i]->active_blocks;
        kc[i].queued_prefill_tokens = live[i]->queued_prefill;

        live[i]->cost = kvr_select_cost(&params, &kc[i], ctx->n_prompt_ids);
    }

    if (policy == NGX_HTTP_DYNAMO_POLICY_ROUND_ROBIN) {
        counters = ngx_http_dynamo_shm_counters(dmcf);
        rr = counters ? &counters->rr : &ngx_http_dynamo_rr_local;

        chosen = ngx_atomic_fetch_add(rr, 1) % n;

    } else {
        rnd = ((uint64_t) ngx_random() << 33)
              ^ ((uint64_t) ngx_random() << 11) ^ (uint64_t) ngx_random();

        if (kvr_select(&params, kc, n, ctx->n_prompt_ids, rnd, &choice)
            != KVR_OK)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "dynamo: invalid selection parameters");
            return NGX_ERROR;
        }

        chosen = choice.index;
        live[chosen]->cost = choice.cost;
    }

    /* the choice first, then the rest by cost: retries go down the list */

    tmp = live[0];
    live[0] = live[chosen];
    live[chosen] = tmp;

    if (n > 2) {
        ngx_qsort(&live[1], n - 1, sizeof(ngx_http_dynamo_cand_t *),
                  ngx_http_dynamo_cost_cmp);
    }

    pick = ngx_palloc(r->pool, n * sizeof(ngx_http_dynamo_pick_t));
    if (pick == NULL) {
        return NGX_ERROR;
    }

    for (k = 0; k < n; k++) {
        pick[k].name = live[k]->name;
        pick[k].sockaddr = live[k]->sockaddr;
        pick[k].socklen = live[k]->socklen;
        pick[k].worker_id = live[k]->worker_id;
        pick[k].overlap_blocks = live[k]->overlap;
        pick[k].cost = live[k]->cost;
    }

    ctx->picks = pick;
    ctx->npicks = n;
    ctx->pick = 0;

    counters = ngx_http_dynamo_shm_counters(dmcf);

    if (counters) {
        (void) ngx_atomic_fetch_add(&counters->requests, 1);
        (void) ngx_atomic_fetch_add(&counters->prompt_blocks, ctx->n_blocks);

        if (pick[0].overlap_blocks) {
            (void) ngx_atomic_fetch_add(&counters->kv_hits, 1);
            (void) ngx_atomic_fetch_add(&counters->overlap_blocks,
                                        pick[0].overlap_blocks);
        }
    }

    ngx_log_debug5(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "dynamo route: %V overlap %ui/%uz of %ui candidates, "
                   "cost %.3f",
                   &pick[0].name, pick[0].overlap_blocks, ctx->n_blocks, n,
                   pick[0].cost);

    if (dlcf->prefill_upstream) {
        ngx_http_dynamo_route_prefill(r, ctx, nm);
    }

    return NGX_OK;

none:

    counters = ngx_http_dynamo_shm_counters(dmcf);

    if (counters) {
        (void) ngx_atomic_fetch_add(&counters->no_worker, 1);
    }

    return NGX_DECLINED;
}


ngx_uint_t
ngx_http_dynamo_route_usable(ngx_http_request_t *r)
{
    ngx_uint_t                     i, n;
    ngx_array_t                    cands;
    ngx_http_dynamo_cand_t        *c;
    ngx_http_dynamo_model_t       *m;
    ngx_http_dynamo_loc_conf_t    *dlcf;
    ngx_http_dynamo_main_conf_t   *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_dynamo_module);

    if (ngx_array_init(&cands, r->pool, 8, sizeof(ngx_http_dynamo_cand_t))
        != NGX_OK)
    {
        return 0;
    }

    m = dmcf->models.elts;

    dlcf = ngx_http_get_module_loc_conf(r, ngx_dynamo_module);

    if (dmcf->models.nelts == 0) {
        if (ngx_http_dynamo_candidates(r, NULL, dlcf->upstream, &cands)
            != NGX_OK)
        {
            return 0;
        }
    }

    for (i = 0; i < dmcf->models.nelts; i++) {
        if (ngx_http_dynamo_candidates(r, &m[i], dlcf->upstream, &cands)
            != NGX_OK)
        {
            return 0;
        }
    }

    ngx_http_dynamo_cand_load(dmcf, &cands);

    c = cands.elts;
    n = 0;

    for (i = 0; i < cands.nelts; i++) {
        if (!c[i].failed && !c[i].dropped) {
            n++;
        }
    }

    return n;
}


/* the server lines of uscf and the model's registered workers that fit
   its role, by "host:port" */

static ngx_int_t
ngx_http_dynamo_candidates(ngx_http_request_t *r,
    ngx_http_dynamo_model_t *model, ngx_http_upstream_srv_conf_t *uscf,
    ngx_array_t *cands)
{
    size_t                          nw, i;
    ngx_str_t                       name;
    ngx_uint_t                      j, k, role;
    ngx_addr_t                      addr;
    kvr_index_t                    *idx;
    kvr_worker_info_t              *w;
    ngx_http_dynamo_cand_t         *c;
    ngx_http_dynamo_server_t       *s;
    ngx_http_upstream_server_t     *us;
    ngx_http_dynamo_srv_conf_t     *dscf;
    ngx_http_dynamo_main_conf_t    *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_dynamo_module);

    if (uscf == NULL) {
        return NGX_OK;
    }

    dscf = ngx_http_dynamo_upstream_conf(uscf);

    if (dscf && dscf->servers.nelts) {
        s = dscf->servers.elts;

        for (j = 0; j < dscf->servers.nelts; j++) {
            c = ngx_http_dynamo_cand_add(cands, s[j].name.data, s[j].name.len);
            if (c == NULL) {
                return NGX_ERROR;
            }

            c->server = 1;

            if (c->sockaddr == NULL) {
                c->sockaddr = s[j].sockaddr;
                c->socklen = s[j].socklen;
            }
        }

    } else if (uscf->servers) {
        us = uscf->servers->elts;

        for (j = 0; j < uscf->servers->nelts; j++) {
            if (us[j].down || us[j].backup) {
                continue;
            }

            for (k = 0; k < us[j].naddrs; k++) {
                c = ngx_http_dynamo_cand_add(cands, us[j].addrs[k].name.data,
                                             us[j].addrs[k].name.len);
                if (c == NULL) {
                    return NGX_ERROR;
                }

                c->server = 1;

                if (c->sockaddr == NULL) {
                    c->sockaddr = us[j].addrs[k].sockaddr;
                    c->socklen = us[j].addrs[k].socklen;
                }
            }
        }
    }

    if (model == NULL) {
        return NGX_OK;
    }

    idx = ngx_http_dynamo_shm_index(dmcf, model->index);
    if (idx == NULL) {
        return NGX_OK;
    }

    role = dscf ? dscf->role : NGX_HTTP_DYNAMO_ROLE_AGGREGATED;

    nw = kvr_index_workers(idx, ngx_http_dynamo_workers,
                           KVR_INDEX_MAX_WORKERS);

    for (i = 0; i < nw; i++) {
        w = &ngx_http_dynamo_workers[i];

        w->addr[KVR_ADDR_MAX - 1] = '\0';
        name.len = ngx_strlen(w->addr);

        if (name.len == 0) {
            continue;
        }

        if (!ngx_http_dynamo_role_fits(role, w->role)) {

            /* a server line of the upstream registered for another role */

            c = ngx_http_dynamo_cand_find(cands, (u_char *) w->addr,
                                          name.len);

            if (c && c->server && !c->fits) {
                c->dropped = 1;

                if (ngx_http_dynamo_warn_once(w->worker_id,
                                              NGX_HTTP_DYNAMO_WARN_ROLE))
                {
                    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                                  "dynamo: worker %s is registered for "
                                  "model \"%s\" as %s, which does not fit "
                                  "the role of upstream \"%V\": not used",
                                  w->addr, model->ns,
                                  kvr_role_name(w->role), &uscf->host);
                }
            }

            continue;
        }

        c = ngx_http_dynamo_cand_add(cands, (u_char *) w->addr, name.len);
        if (c == NULL) {
            return NGX_ERROR;
        }

        if (c->sockaddr == NULL) {

            /* a registered address: numeric host:port, never resolved */

            if (ngx_parse_addr_port(r->pool, &addr, (u_char *) w->addr,
                                    name.len)
                != NGX_OK)
            {
                if (ngx_http_dynamo_warn_once(w->worker_id,
                                              NGX_HTTP_DYNAMO_WARN_ADDR))
                {
                    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                                  "dynamo: worker %uL of model \"%s\" "
                                  "registered the address \"%s\", which is "
                                  "not an IP address and port: not used",
                                  w->worker_id, model->ns, w->addr);
                }

                cands->nelts--;
                continue;
            }

            name.data = ngx_pnalloc(r->pool, name.len);
            if (name.data == NULL) {
                return NGX_ERROR;
            }

            ngx_memcpy(name.data, w->addr, name.len);

            c->name = name;
            c->sockaddr = addr.sockaddr;
            c->socklen = addr.socklen;
        }

        c->fits = 1;
        c->dropped = 0;
        c->worker_id = w->worker_id;
        c->active_blocks = w->load.active_blocks;
        c->queued_prefill = w->load.queued_prefill_tokens;
        c->requests = (uint64_t) w->load.running + w->load.waiting;
        c->loaded = (w->load.updated_ms != 0);

        if (w->block_size && w->block_size != model->block_size) {

            /* its block hashes never match ours: a candidate by load only */

            c->no_overlap = 1;

            if (ngx_http_dynamo_warn_once(w->worker_id,
                                          NGX_HTTP_DYNAMO_WARN_BLOCK_SIZE))
            {
                ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                              "dynamo: worker %s of model \"%s\" uses "
                              "block size %uD, not the block_size=%ui of "
                              "\"dynamo_model\": routed by load only",
                              w->addr, model->ns, w->block_size,
                              model->block_size);
            }
        }
    }

    return NGX_OK;
}


/* finds the candidate of that name or appends a zeroed one named so */

static ngx_http_dynamo_cand_t *
ngx_http_dynamo_cand_add(ngx_array_t *cands, u_char *name, size_t len)
{
    ngx_http_dynamo_cand_t  *c;

    c = ngx_http_dynamo_cand_find(cands, name, len);
    if (c) {
        return c;
    }

    c = ngx_array_push(cands);
    if (c == NULL) {
        return NULL;
    }

    ngx_memzero(c, sizeof(ngx_http_dynamo_cand_t));

    c->name.data = name;
    c->name.len = len;

    return c;
}


static ngx_http_dynamo_cand_t *
ngx_http_dynamo_cand_find(ngx_array_t *cands, u_char *name, size_t len)
{
    ngx_uint_t               i;
    ngx_http_dynamo_cand_t  *c;

    c = cands->elts;

    for (i = 0; i < cands->nelts; i++) {
        if (c[i].name.len == len
            && ngx_strncmp(c[i].name.data, name, len) == 0)
        {
            return &c[i];
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_dynamo_role_fits(ngx_uint_t role, kvr_role_t w)
{
    switch (role) {

    case NGX_HTTP_DYNAMO_ROLE_DECODE:
        return w == KVR_ROLE_DECODE || w == KVR_ROLE_BOTH;

    case NGX_HTTP_DYNAMO_ROLE_PREFILL:
        return w == KVR_ROLE_PREFILL || w == KVR_ROLE_BOTH;

    default:
        return w == KVR_ROLE_BOTH;
    }
}


/* 1 the first time a worker is seen not to fit in that way */

static ngx_int_t
ngx_http_dynamo_warn_once(uint64_t worker_id, ngx_uint_t what)
{
    ngx_uint_t                 i, n;
    ngx_http_dynamo_warned_t  *wd;

    n = ngx_min(ngx_http_dynamo_nwarned, NGX_HTTP_DYNAMO_WARNED_MAX);

    for (i = 0; i < n; i++) {
        wd = &ngx_http_dynamo_warned[i];

        if (wd->worker_id == worker_id) {
            if (wd->what & what) {
                return 0;
            }

            wd->what |= what;
            return 1;
        }
    }

    /* the table is full: the oldest entry goes */

    wd = &ngx_http_dynamo_warned[ngx_http_dynamo_nwarned++
                                 % NGX_HTTP_DYNAMO_WARNED_MAX];

    wd->worker_id = worker_id;
    wd->what = what;

    return 1;
}


/* adds this gateway's in-flight load and the failure marks */

static void
ngx_http_dynamo_cand_load(ngx_http_dynamo_main_conf_t *dmcf,
    ngx_array_t *cands)
{
    ngx_uint_t               i;
    ngx_msec_int_t           left;
    ngx_http_dynamo_cand_t  *c;
    ngx_http_dynamo_load_t  *load;

    c = cands->elts;

    for (i = 0; i < cands->nelts; i++) {
        load = ngx_http_dynamo_shm_load(dmcf, c[i].name.data, c[i].name.len);
        if (load == NULL) {
            continue;
        }

        c[i].active_blocks += load->blocks;
        c[i].queued_prefill += load->prefill;
        c[i].requests += load->in_flight;

        if (load->failed_until) {
            left = (ngx_msec_int_t) (load->failed_until - ngx_current_msec);
            c[i].failed = (left > 0);
        }
    }
}


static int
ngx_http_dynamo_cost_cmp(const void *a, const void *b)
{
    ngx_http_dynamo_cand_t  *ca, *cb;

    ca = *(ngx_http_dynamo_cand_t **) a;
    cb = *(ngx_http_dynamo_cand_t **) b;

    if (ca->cost < cb->cost) {
        return -1;
    }

    if (ca->cost > cb->cost) {
        return 1;
    }

    return 0;
}


/*
 * dynamo_prefill_upstream: after the decode worker is chosen, the prefill
 * worker P that has the least to compute: the prompt tokens its cache does
 * not hold (overlap from the same index lookup) plus its queued prefill
 * (published, and this gateway's share in flight). Ties go to a worker
 * that published a load over one that did not (its queue is unknown, not
 * empty), then to fewer requests, then at random. The decode worker
 * itself is never its own prefill worker. No candidate: no hint, and the
 * decode worker prefills locally; never an error.
 */

static void
ngx_http_dynamo_route_prefill(ngx_http_request_t *r,
    ngx_http_dynamo_ctx_t *ctx, size_t nm)
{
    size_t                         i, n;
    u_char                        *p;
    uint64_t                       cached, block_size;
    ngx_int_t                      cmp;
    ngx_uint_t                     ties;
    kvr_index_t                   *idx;
    ngx_array_t                    cands;
    ngx_pool_cleanup_t            *cln;
    ngx_http_dynamo_cand_t        *c, *best;
    ngx_http_dynamo_pick_t        *decode;
    ngx_http_dynamo_load_t        *load;
    ngx_http_dynamo_srv_conf_t    *dscf;
    ngx_http_dynamo_loc_conf_t    *dlcf;
    ngx_http_dynamo_counters_t    *counters;
    ngx_http_dynamo_main_conf_t   *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_dynamo_module);
    dlcf = ngx_http_get_module_loc_conf(r, ngx_dynamo_module);
    dscf = ngx_http_dynamo_upstream_conf(dlcf->prefill_upstream);
    counters = ngx_http_dynamo_shm_counters(dmcf);

    best = NULL;

    if (ngx_array_init(&cands, r->pool, 4, sizeof(ngx_http_dynamo_cand_t))
        != NGX_OK
        || ngx_http_dynamo_candidates(r, ctx->model, dlcf->prefill_upstream,
                                      &cands)
           != NGX_OK)
    {
        goto none;
    }

    decode = &ctx->picks[0];
    c = cands.elts;
    n = 0;

    for (i = 0; i < cands.nelts; i++) {
        if (c[i].dropped
            || (c[i].name.len == decode->name.len
                && ngx_strncmp(c[i].name.data, decode->name.data,
                               decode->name.len)
                   == 0))
        {
            continue;
        }

        c[n++] = c[i];
    }

    cands.nelts = n;

    if (n == 0) {
        goto none;
    }

    ngx_http_dynamo_cand_load(dmcf, &cands);

    idx = ngx_http_dynamo_shm_index(dmcf, ctx->model->index);

    if (idx && ctx->n_blocks && dscf
        && dscf->policy == NGX_HTTP_DYNAMO_POLICY_KV)
    {
        (void) ngx_http_dynamo_cand_overlap(ctx, idx, c, n, nm);
    }

    block_size = ctx->model->block_size;
    ties = 0;

    for (i = 0; i < n; i++) {
        if (c[i].failed) {
            continue;
        }

        cached = ngx_min((uint64_t) c[i].overlap * block_size,
                         (uint64_t) ctx->n_prompt_ids);

        c[i].cost = (double) (ctx->n_prompt_ids - cached)
                    + (double) c[i].queued_prefill;

        cmp = best ? ngx_http_dynamo_prefill_better(&c[i], best) : 1;

        if (cmp > 0) {
            best = &c[i];
            ties = 1;

        } else if (cmp == 0 && ngx_random() % ++ties == 0) {
            best = &c[i];
        }
    }

    if (best == NULL) {
        goto none;
    }

    p = ngx_pnalloc(r->pool, best->name.len);
    if (p == NULL) {
        goto none;
    }

    ngx_memcpy(p, best->name.data, best->name.len);

    ctx->prefill.data = p;
    ctx->prefill.len = best->name.len;
    ctx->prefill_overlap = best->overlap;

    cached = ngx_min((uint64_t) best->overlap * block_size,
                     (uint64_t) ctx->n_prompt_ids);

    /* P's share in flight, so that concurrent requests spread */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    load = cln ? ngx_http_dynamo_shm_load_claim(dmcf, p, best->name.len)
               : NULL;

    if (load) {
        ctx->prefill_load = load;
        ctx->prefill_tokens = (ngx_atomic_int_t)
                              (ctx->n_prompt_ids - cached);

        ngx_http_dynamo_shm_load_add(load, 1, 0, ctx->prefill_tokens);
        (void) ngx_atomic_fetch_add(&load->prefills, 1);
        load->used = ngx_time();

        cln->handler = ngx_http_dynamo_prefill_cleanup;
        cln->data = ctx;
    }

    if (counters) {
        (void) ngx_atomic_fetch_add(&counters->prefill_hinted, 1);
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "dynamo route: prefill %V overlap %ui/%uz, cost %.0f",
                   &ctx->prefill, best->overlap, ctx->n_blocks, best->cost);

    return;

none:

    if (counters) {
        (void) ngx_atomic_fetch_add(&counters->prefill_unhinted, 1);
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "dynamo route: no prefill worker, no hint");
}


/* 1: a is the better prefill worker, -1: b is, 0: a tie */

static ngx_int_t
ngx_http_dynamo_prefill_better(ngx_http_dynamo_cand_t *a,
    ngx_http_dynamo_cand_t *b)
{
    if (a->cost != b->cost) {
        return a->cost < b->cost ? 1 : -1;
    }

    if (a->loaded != b->loaded) {
        return a->loaded ? 1 : -1;
    }

    if (a->requests != b->requests) {
        return a->requests < b->requests ? 1 : -1;
    }

    return 0;
}


void
ngx_http_dynamo_prefill_release(ngx_http_dynamo_ctx_t *ctx)
{
    ngx_http_dynamo_load_t  *load;

    load = ctx->prefill_load;

    if (load == NULL) {
        return;
    }

    ctx->prefill_load = NULL;

    ngx_http_dynamo_shm_load_add(load, -1, 0, -ctx->prefill_tokens);

    load->used = ngx_time();
}


static void
ngx_http_dynamo_prefill_cleanup(void *data)
{
    ngx_http_dynamo_prefill_release(data);
}


/*
 * overlap from the index for the candidates c[0..n); nm: the number of
 * matches this request already found (the decode choice's lookup, reused
 * by the prefill choice), or (size_t) -1 to look up; returns it
 */

static size_t
ngx_http_dynamo_cand_overlap(ngx_http_dynamo_ctx_t *ctx, kvr_index_t *idx,
    ngx_http_dynamo_cand_t *c, size_t n, size_t nm)
{
    size_t  i, j;

    if (nm == (size_t) -1) {
        nm = kvr_index_find_matches(idx, ctx->block_hashes, ctx->n_blocks,
                                    ngx_http_dynamo_matches,
                                    KVR_INDEX_MAX_WORKERS);
    }

    for (i = 0; i < nm; i++) {
        for (j = 0; j < n; j++) {
            if (c[j].worker_id
                && c[j].worker_id == ngx_http_dynamo_matches[i].worker_id)
            {
                if (!c[j].no_overlap) {
                    c[j].overlap = ngx_http_dynamo_matches[i].overlap_blocks;
                }

                break;
            }
        }
    }

    return nm;
}
