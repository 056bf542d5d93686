
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * The shared-memory zone: a header (layout version, the models and their
 * index geometry, per-model sync status), the gateway-side load table,
 * router counters, and one kvr_index_t region per model. The zone is
 * reused across reloads; the indexes are kept when the model list (names,
 * block sizes) is the same.
 */


#include "ngx_http_dynamo_module.h"


#define NGX_HTTP_DYNAMO_SHM_MAGIC       0x31766f6d616e7964ULL  /* dynamov1 */
#define NGX_HTTP_DYNAMO_SHM_VERSION     1
#define NGX_HTTP_DYNAMO_SHM_NAME_LEN    256
#define NGX_HTTP_DYNAMO_SHM_WORKERS     64
#define NGX_HTTP_DYNAMO_SHM_MIN_BLOCKS  1024


typedef struct {
    u_char                          name[NGX_HTTP_DYNAMO_SHM_NAME_LEN];
    size_t                          name_len;
    ngx_uint_t                      block_size;
    kvr_index_config_t              config;
    void                           *mem;
    size_t                          len;
    kvr_index_t                    *index;
    ngx_http_dynamo_sync_status_t   status;
} ngx_http_dynamo_shm_model_t;


typedef struct {
    uint64_t                        magic;
    ngx_uint_t                      version;
    size_t                          size;       /* of this header */
    size_t                          model_size;
    ngx_atomic_t                    layout;     /* bumped by every re-init
                                                   of the indexes */
    ngx_http_dynamo_counters_t      counters;
    ngx_http_dynamo_load_t          load[NGX_HTTP_DYNAMO_LOAD_SLOTS];
    ngx_uint_t                      nmodels;
    ngx_http_dynamo_shm_model_t    *models;
} ngx_http_dynamo_shm_t;


/* shm_zone->data: per configuration cycle */
typedef struct {
    ngx_http_dynamo_main_conf_t    *dmcf;
    ngx_http_dynamo_shm_t          *sh;
    ngx_uint_t                      layout;     /* sh->layout this cycle
                                                   was set up for */
} ngx_http_dynamo_shm_ctx_t;


static ngx_int_t ngx_http_dynamo_shm_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_uint_t ngx_http_dynamo_shm_same_models(ngx_http_dynamo_shm_t *sh,
    ngx_http_dynamo_main_conf_t *dmcf);
static ngx_int_t ngx_http_dynamo_shm_layout(ngx_shm_zone_t *shm_zone,
    ngx_http_dynamo_shm_t *sh, ngx_http_dynamo_main_conf_t *dmcf);
static void ngx_http_dynamo_shm_free_models(ngx_slab_pool_t *shpool,
    ngx_http_dynamo_shm_t *sh);
static uint64_t ngx_http_dynamo_shm_max_blocks(size_t len);
static size_t ngx_http_dynamo_shm_pages(size_t size);
static ngx_http_dynamo_shm_t *ngx_http_dynamo_shm_get(
    ngx_http_dynamo_main_conf_t *dmcf);


ngx_int_t
ngx_http_dynamo_shm_add(ngx_conf_t *cf, ngx_http_dynamo_main_conf_t *dmcf)
{
    size_t                      size, need, usable;
    ngx_str_t                   name = ngx_string(NGX_HTTP_DYNAMO_ZONE_NAME);
    kvr_index_config_t          cfg;
    ngx_http_dynamo_shm_ctx_t  *ctx;

    if (dmcf->shm_zone == NULL) {
        if (dmcf->models.nelts == 0) {
            return NGX_OK;
        }

        dmcf->shm_zone = ngx_shared_memory_add(cf, &name,
                                               NGX_HTTP_DYNAMO_ZONE_SIZE,
                                               &ngx_dynamo_module);
        if (dmcf->shm_zone == NULL) {
            return NGX_ERROR;
        }
    }

    if (dmcf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" of \"dynamo_zone\" is already used",
                           &dmcf->shm_zone->shm.name);
        return NGX_ERROR;
    }

    /*
     * the smallest useful layout: header and load table, the model table,
     * and per model an index of NGX_HTTP_DYNAMO_SHM_MIN_BLOCKS blocks; the
     * slab allocator keeps a page descriptor per page and a few pages
     */

    cfg.max_workers = NGX_HTTP_DYNAMO_SHM_WORKERS;
    cfg.max_blocks = NGX_HTTP_DYNAMO_SHM_MIN_BLOCKS;

    need = ngx_http_dynamo_shm_pages(sizeof(ngx_http_dynamo_shm_t))
           + ngx_http_dynamo_shm_pages(dmcf->models.nelts
                                       * sizeof(ngx_http_dynamo_shm_model_t))
           + dmcf->models.nelts
             * ngx_http_dynamo_shm_pages(kvr_index_size(&cfg) + 64);

    size = dmcf->shm_zone->shm.size;
    usable = size - size / ngx_pagesize * sizeof(ngx_slab_page_t)
             - 2 * ngx_pagesize;

    if (size < 8 * ngx_pagesize || usable < need) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" of \"dynamo_zone\" is too small "
                           "for %ui model(s): %uzk at least",
                           &dmcf->shm_zone->shm.name, dmcf->models.nelts,
                           (need + need / 16 + 3 * ngx_pagesize + 1023)
                           / 1024);
        return NGX_ERROR;
    }

    ctx = ngx_pcalloc(cf->pool, sizeof(ngx_http_dynamo_shm_ctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->dmcf = dmcf;

    dmcf->shm_zone->init = ngx_http_dynamo_shm_init_zone;
    dmcf->shm_zone->data = ctx;

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynamo_shm_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_dynamo_shm_ctx_t  *octx = data;

    ngx_slab_pool_t            *shpool;
    ngx_http_dynamo_shm_t      *sh;
    ngx_http_dynamo_shm_ctx_t  *ctx;

    ctx = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    sh = octx ? octx->sh : NULL;

    if (sh == NULL && shm_zone->shm.exists) {
        sh = shpool->data;
    }

    if (sh && (sh->magic != NGX_HTTP_DYNAMO_SHM_MAGIC
               || sh->version != NGX_HTTP_DYNAMO_SHM_VERSION
               || sh->size != sizeof(ngx_http_dynamo_shm_t)
               || sh->model_size != sizeof(ngx_http_dynamo_shm_model_t)))
    {
        /* the running workers still use it: it cannot be laid out anew */

        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "zone \"%V\" of \"dynamo_zone\" was laid out by "
                      "another build of the module; restart nginx or "
                      "name a new zone", &shm_zone->shm.name);
        return NGX_ERROR;
    }

    if (sh) {
        ctx->sh = sh;

        if (ngx_http_dynamo_shm_same_models(sh, ctx->dmcf)) {
            ctx->layout = sh->layout;

            ngx_log_error(NGX_LOG_INFO, shm_zone->shm.log, 0,
                          "dynamo zone \"%V\": %ui index(es) kept",
                          &shm_zone->shm.name, sh->nmodels);
            return NGX_OK;
        }

        ngx_log_error(NGX_LOG_NOTICE, shm_zone->shm.log, 0,
                      "dynamo zone \"%V\": models changed, "
                      "indexes start empty", &shm_zone->shm.name);

        ngx_shmtx_lock(&shpool->mutex);
        ngx_http_dynamo_shm_free_models(shpool, sh);
        ngx_shmtx_unlock(&shpool->mutex);

        return ngx_http_dynamo_shm_layout(shm_zone, sh, ctx->dmcf);
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_dynamo_shm_t));
    if (sh == NULL) {
        goto nomem;
    }

    sh->magic = NGX_HTTP_DYNAMO_SHM_MAGIC;
    sh->version = NGX_HTTP_DYNAMO_SHM_VERSION;
    sh->size = sizeof(ngx_http_dynamo_shm_t);
    sh->model_size = sizeof(ngx_http_dynamo_shm_model_t);

    shpool->data = sh;
    shpool->log_nomem = 0;
    ctx->sh = sh;

    return ngx_http_dynamo_shm_layout(shm_zone, sh, ctx->dmcf);

nomem:

    ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                  "zone \"%V\" of \"dynamo_zone\" is too small",
                  &shm_zone->shm.name);

    return NGX_ERROR;
}


static ngx_uint_t
ngx_http_dynamo_shm_same_models(ngx_http_dynamo_shm_t *sh,
    ngx_http_dynamo_main_conf_t *dmcf)
{
    ngx_uint_t                    i;
    ngx_http_dynamo_model_t      *m;
    ngx_http_dynamo_shm_model_t  *sm;

    if (sh->nmodels != dmcf->models.nelts) {
        return 0;
    }

    m = dmcf->models.elts;
    sm = sh->models;

    for (i = 0; i < sh->nmodels; i++) {
        if (sm[i].index == NULL
            || sm[i].name_len != m[i].name.len
            || ngx_strncmp(sm[i].name, m[i].name.data, m[i].name.len) != 0
            || sm[i].block_size != m[i].block_size
            || kvr_index_attach(sm[i].mem, sm[i].len) != sm[i].index)
        {
            return 0;
        }
    }

    return 1;
}


static ngx_int_t
ngx_http_dynamo_shm_layout(ngx_shm_zone_t *shm_zone,
    ngx_http_dynamo_shm_t *sh, ngx_http_dynamo_main_conf_t *dmcf)
{
    size_t                        len;
    ngx_uint_t                    i, n, pages;
    ngx_slab_pool_t              *shpool;
    ngx_http_dynamo_model_t      *m;
    ngx_http_dynamo_shm_ctx_t    *ctx;
    ngx_http_dynamo_shm_model_t  *sm;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    ctx = shm_zone->data;
    n = dmcf->models.nelts;

    ngx_shmtx_lock(&shpool->mutex);

    sh->layout++;
    ctx->layout = sh->layout;

    if (n == 0) {
        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_OK;
    }

    sm = ngx_slab_calloc_locked(shpool,
                                n * sizeof(ngx_http_dynamo_shm_model_t));
    if (sm == NULL) {
        goto nomem;
    }

    sh->models = sm;

    /* what is left goes to the indexes, in equal whole pages */

    pages = shpool->pfree / n;
    if (pages < 2) {
        goto nomem;
    }

    len = (pages - 1) * ngx_pagesize;
    m = dmcf->models.elts;

    for (i = 0; i < n; i++) {
        ngx_memcpy(sm[i].name, m[i].name.data,
                   ngx_min(m[i].name.len, NGX_HTTP_DYNAMO_SHM_NAME_LEN));
        sm[i].name_len = m[i].name.len;
        sm[i].block_size = m[i].block_size;

        sm[i].config.max_workers = NGX_HTTP_DYNAMO_SHM_WORKERS;
        sm[i].config.max_blocks = ngx_http_dynamo_shm_max_blocks(len);

        if (sm[i].config.max_blocks < NGX_HTTP_DYNAMO_SHM_MIN_BLOCKS) {
            goto nomem;
        }

        sm[i].mem = ngx_slab_alloc_locked(shpool, len);
        if (sm[i].mem == NULL) {
            goto nomem;
        }

        sh->nmodels = i + 1;

        sm[i].len = len;
        sm[i].index = kvr_index_init(sm[i].mem, len, &sm[i].config);

        if (sm[i].index == NULL) {
            goto nomem;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_log_error(NGX_LOG_INFO, shm_zone->shm.log, 0,
                  "dynamo zone \"%V\": %ui index(es) of %uL blocks",
                  &shm_zone->shm.name, n, sm[0].config.max_blocks);

    return NGX_OK;

nomem:

    ngx_http_dynamo_shm_free_models(shpool, sh);

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                  "zone \"%V\" of \"dynamo_zone\" is too small for "
                  "%ui model(s)", &shm_zone->shm.name, n);

    return NGX_ERROR;
}


static void
ngx_http_dynamo_shm_free_models(ngx_slab_pool_t *shpool,
    ngx_http_dynamo_shm_t *sh)
{
    ngx_uint_t                    i, n;
    ngx_http_dynamo_shm_model_t  *sm;

    /* readers of the previous generation see the new layout number */

    sh->layout++;

    sm = sh->models;
    n = sh->nmodels;

    sh->nmodels = 0;
    sh->models = NULL;

    if (sm == NULL) {
        return;
    }

    for (i = 0; i < n; i++) {
        if (sm[i].mem) {
            ngx_slab_free_locked(shpool, sm[i].mem);
        }
    }

    ngx_slab_free_locked(shpool, sm);
}


static uint64_t
ngx_http_dynamo_shm_max_blocks(size_t len)
{
    uint64_t            lo, hi, mid;
    kvr_index_config_t  cfg;

    /* the index starts at its first 64-byte boundary */

    if (len <= 64) {
        return 0;
    }

    len -= 64;

    cfg.max_workers = NGX_HTTP_DYNAMO_SHM_WORKERS;

    lo = 0;
    hi = len / 8 + 1;

    while (lo + 1 < hi) {
        mid = lo + (hi - lo) / 2;
        cfg.max_blocks = mid;

        if (kvr_index_size(&cfg) <= len) {
            lo = mid;

        } else {
            hi = mid;
        }
    }

    return lo;
}


static size_t
ngx_http_dynamo_shm_pages(size_t size)
{
    return ngx_align(size, ngx_pagesize);
}


static ngx_http_dynamo_shm_t *
ngx_http_dynamo_shm_get(ngx_http_dynamo_main_conf_t *dmcf)
{
    ngx_http_dynamo_shm_t      *sh;
    ngx_http_dynamo_shm_ctx_t  *ctx;

    if (dmcf == NULL || dmcf->shm_zone == NULL) {
        return NULL;
    }

    ctx = dmcf->shm_zone->data;

    if (ctx == NULL || ctx->sh == NULL) {
        return NULL;
    }

    sh = ctx->sh;

    if (sh->layout != ctx->layout) {
        /* a newer configuration laid the indexes out differently */
        return NULL;
    }

    return sh;
}


kvr_index_t *
ngx_http_dynamo_shm_index(ngx_http_dynamo_main_conf_t *dmcf, ngx_uint_t model)
{
    ngx_http_dynamo_shm_t  *sh;

    sh = ngx_http_dynamo_shm_get(dmcf);

    if (sh == NULL || model >= sh->nmodels) {
        return NULL;
    }

    return sh->models[model].index;
}


ngx_http_dynamo_load_t *
ngx_http_dynamo_shm_load(ngx_http_dynamo_main_conf_t *dmcf, u_char *name,
    size_t len)
{
    ngx_uint_t               i, k, hash;
    ngx_slab_pool_t         *shpool;
    ngx_http_dynamo_load_t  *slot;
    ngx_http_dynamo_shm_t   *sh;

    if (dmcf == NULL || dmcf->shm_zone == NULL || len == 0
        || len >= KVR_ADDR_MAX)
    {
        return NULL;
    }

    sh = ((ngx_http_dynamo_shm_ctx_t *) dmcf->shm_zone->data)->sh;
    if (sh == NULL) {
        return NULL;
    }

    hash = ngx_crc32_short(name, len);
    if (hash == 0) {
        hash = 1;
    }

    /* lock-free lookup: a slot's name is written before its hash */

    k = hash % NGX_HTTP_DYNAMO_LOAD_SLOTS;

    for (i = 0; i < NGX_HTTP_DYNAMO_LOAD_SLOTS; i++) {
        slot = &sh->load[(k + i) % NGX_HTTP_DYNAMO_LOAD_SLOTS];

        if (slot->hash == 0) {
            break;
        }

        if (slot->hash == hash
            && ngx_strncmp(slot->name, name, len) == 0
            && slot->name[len] == '\0')
        {
            return slot;
        }
    }

    if (i == NGX_HTTP_DYNAMO_LOAD_SLOTS) {
        return NULL;
    }

    /* claim a slot; rare (one per worker address), so under the lock */

    shpool = (ngx_slab_pool_t *) dmcf->shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    for ( /* void */ ; i < NGX_HTTP_DYNAMO_LOAD_SLOTS; i++) {
        slot = &sh->load[(k + i) % NGX_HTTP_DYNAMO_LOAD_SLOTS];

        if (slot->hash == 0) {
            ngx_memcpy(slot->name, name, len);
            slot->name[len] = '\0';
            ngx_memory_barrier();
            (void) ngx_atomic_cmp_set(&slot->hash, 0, hash);
            break;
        }

        if (slot->hash == hash
            && ngx_strncmp(slot->name, name, len) == 0
            && slot->name[len] == '\0')
        {
            break;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return i < NGX_HTTP_DYNAMO_LOAD_SLOTS ? slot : NULL;
}


ngx_http_dynamo_counters_t *
ngx_http_dynamo_shm_counters(ngx_http_dynamo_main_conf_t *dmcf)
{
    ngx_http_dynamo_shm_t      *sh;
    ngx_http_dynamo_shm_ctx_t  *ctx;

    if (dmcf == NULL || dmcf->shm_zone == NULL) {
        return NULL;
    }

    ctx = dmcf->shm_zone->data;
    sh = ctx ? ctx->sh : NULL;

    return sh ? &sh->counters : NULL;
}


ngx_http_dynamo_sync_status_t *
ngx_http_dynamo_shm_sync_status(ngx_http_dynamo_main_conf_t *dmcf,
    ngx_uint_t model)
{
    ngx_http_dynamo_shm_t  *sh;

    sh = ngx_http_dynamo_shm_get(dmcf);

    if (sh == NULL || model >= sh->nmodels) {
        return NULL;
    }

    return &sh->models[model].status;
}


typedef struct {
    char                           *name;
    char                           *help;
    char                           *type;
    ngx_uint_t                      field;
} ngx_http_dynamo_shm_metric_t;


enum {
    NGX_HTTP_DYNAMO_M_WORKERS = 0,
    NGX_HTTP_DYNAMO_M_BLOCKS,
    NGX_HTTP_DYNAMO_M_EVICTIONS,
    NGX_HTTP_DYNAMO_M_CONNECTED,
    NGX_HTTP_DYNAMO_M_EVENTS,
    NGX_HTTP_DYNAMO_M_RESYNCS,
    NGX_HTTP_DYNAMO_M_ERRORS,
    NGX_HTTP_DYNAMO_M_DISCONNECTS
};


static ngx_http_dynamo_shm_metric_t  ngx_http_dynamo_shm_metrics_list[] = {

    { "dynamo_router_workers",
      "Workers in the router's index.", "gauge",
      NGX_HTTP_DYNAMO_M_WORKERS },

    { "dynamo_router_index_blocks",
      "Distinct KV blocks in the router's index.", "gauge",
      NGX_HTTP_DYNAMO_M_BLOCKS },

    { "dynamo_router_index_evictions_total",
      "Blocks dropped from the full index.", "counter",
      NGX_HTTP_DYNAMO_M_EVICTIONS },

    { "dynamo_redis_connected",
      "Whether the index writer is connected to Redis.", "gauge",
      NGX_HTTP_DYNAMO_M_CONNECTED },

    { "dynamo_redis_events_applied_total",
      "KV events applied to the index.", "counter",
      NGX_HTTP_DYNAMO_M_EVENTS },

    { "dynamo_redis_full_resyncs_total",
      "Full resyncs of the index from Redis.", "counter",
      NGX_HTTP_DYNAMO_M_RESYNCS },

    { "dynamo_redis_errors_total",
      "Error or malformed Redis replies.", "counter",
      NGX_HTTP_DYNAMO_M_ERRORS },

    { "dynamo_redis_disconnects_total",
      "Established Redis connections lost.", "counter",
      NGX_HTTP_DYNAMO_M_DISCONNECTS },

    { NULL, NULL, NULL, 0 }
};


u_char *
ngx_http_dynamo_shm_metrics(ngx_http_dynamo_main_conf_t *dmcf, u_char *p,
    u_char *last)
{
    uint64_t                        v;
    ngx_uint_t                      i;
    kvr_index_stats_t               st;
    ngx_http_dynamo_model_t        *m;
    ngx_http_dynamo_shm_t          *sh;
    ngx_http_dynamo_shm_metric_t   *metric;
    ngx_http_dynamo_sync_status_t  *ss;

    sh = ngx_http_dynamo_shm_get(dmcf);

    if (sh == NULL || sh->nmodels == 0) {
        return p;
    }

    m = dmcf->models.elts;

    for (metric = ngx_http_dynamo_shm_metrics_list; metric->name; metric++) {

        p = ngx_slprintf(p, last, "# HELP %s %s\n# TYPE %s %s\n",
                         metric->name, metric->help,
                         metric->name, metric->type);

        for (i = 0; i < sh->nmodels && i < dmcf->models.nelts; i++) {
            ss = &sh->models[i].status;

            if (sh->models[i].index == NULL) {
                continue;
            }

            kvr_index_stats(sh->models[i].index, &st);

            switch (metric->field) {

            case NGX_HTTP_DYNAMO_M_WORKERS:
                v = st.workers;
                break;

            case NGX_HTTP_DYNAMO_M_BLOCKS:
                v = st.blocks;
                break;

            case NGX_HTTP_DYNAMO_M_EVICTIONS:
                v = st.evictions;
                break;

            case NGX_HTTP_DYNAMO_M_CONNECTED:
                v = ss->connected;
                break;

            case NGX_HTTP_DYNAMO_M_EVENTS:
                v = ss->events_applied;
                break;

            case NGX_HTTP_DYNAMO_M_RESYNCS:
                v = ss->full_resyncs;
                break;

            case NGX_HTTP_DYNAMO_M_ERRORS:
                v = ss->errors;
                break;

            default: /* NGX_HTTP_DYNAMO_M_DISCONNECTS */
                v = ss->disconnects;
                break;
            }

            p = ngx_slprintf(p, last, "%s{model=\"%V\"} %uL\n",
                             metric->name, &m[i].name, v);
        }
    }

    return p;
}
