
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
#define NGX_HTTP_DYNAMO_SHM_VERSION     2
#define NGX_HTTP_DYNAMO_SHM_NAME_LEN    256
#define NGX_HTTP_DYNAMO_SHM_WORKERS     64
#define NGX_HTTP_DYNAMO_SHM_MIN_BLOCKS  1024
#define NGX_HTTP_DYNAMO_SHM_GENS        2
#define NGX_HTTP_DYNAMO_SHM_SPARE       8        /* pages for model tables */


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


/*
 * the indexes of one configuration: a reload that changes the models lays
 * out a new generation next to the running one, which stays intact until
 * the next change of the models (the reload may fail); each generation
 * has its own region, reserved when the zone is created and never freed,
 * so that layouts cannot fragment the zone
 */
typedef struct {
    ngx_atomic_t                    stamp;      /* its layout; 0: free */
    u_char                         *region;     /* model table, indexes */
    size_t                          region_len;
    ngx_uint_t                      nmodels;
    ngx_http_dynamo_shm_model_t    *models;
    size_t                          redis_len;  /* the indexes' source */
    u_char                          redis[NGX_HTTP_DYNAMO_SHM_NAME_LEN];
} ngx_http_dynamo_shm_gen_t;


typedef struct {
    uint64_t                        magic;
    ngx_uint_t                      version;
    size_t                          size;       /* of this header */
    size_t                          model_size;
    ngx_atomic_t                    layout;     /* the last stamp given */
    ngx_http_dynamo_counters_t      counters;
    ngx_http_dynamo_load_t          load[NGX_HTTP_DYNAMO_LOAD_SLOTS];
    ngx_atomic_t                    load_used;  /* slots with an address */
    ngx_atomic_t                    load_warned;  /* ngx_time() */
    ngx_atomic_t                    load_reclaimed;  /* ngx_time() of the
                                                       last reclaim try */
    ngx_atomic_t                    row_pid[NGX_HTTP_DYNAMO_LOAD_ROWS];
                                                /* 0: free */
    size_t                          index_pages;  /* a generation's share */
    ngx_uint_t                      current;    /* the last laid out */
    ngx_http_dynamo_shm_gen_t       gen[NGX_HTTP_DYNAMO_SHM_GENS];
} ngx_http_dynamo_shm_t;


/* shm_zone->data: per configuration cycle */
typedef struct {
    ngx_http_dynamo_main_conf_t    *dmcf;
    ngx_http_dynamo_shm_t          *sh;
    ngx_http_dynamo_shm_gen_t      *gen;
    ngx_uint_t                      layout;     /* gen->stamp this cycle
                                                   was set up for */
} ngx_http_dynamo_shm_ctx_t;


static ngx_int_t ngx_http_dynamo_shm_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_uint_t ngx_http_dynamo_shm_same_models(
    ngx_http_dynamo_shm_gen_t *gen, ngx_http_dynamo_main_conf_t *dmcf);
static ngx_int_t ngx_http_dynamo_shm_layout(ngx_shm_zone_t *shm_zone,
    ngx_http_dynamo_shm_t *sh, ngx_http_dynamo_shm_gen_t *keep);
static void ngx_http_dynamo_shm_free_gen(ngx_http_dynamo_shm_gen_t *gen);
static ngx_uint_t ngx_http_dynamo_shm_workers(
    ngx_http_dynamo_main_conf_t *dmcf);
static void ngx_http_dynamo_shm_redis(ngx_http_dynamo_main_conf_t *dmcf,
    ngx_str_t *url);
static uint64_t ngx_http_dynamo_shm_max_blocks(size_t len,
    ngx_uint_t workers);
static size_t ngx_http_dynamo_shm_pages(size_t size);
static ngx_http_dynamo_shm_gen_t *ngx_http_dynamo_shm_get(
    ngx_http_dynamo_main_conf_t *dmcf);
static ngx_http_dynamo_shm_t *ngx_http_dynamo_shm_load_sh(
    ngx_http_dynamo_main_conf_t *dmcf, size_t len);
static ngx_uint_t ngx_http_dynamo_shm_load_hash(u_char *name, size_t len);
static ngx_http_dynamo_load_t *ngx_http_dynamo_shm_load_lookup(
    ngx_http_dynamo_shm_t *sh, ngx_uint_t hash, u_char *name, size_t len);
static ngx_http_dynamo_load_t *ngx_http_dynamo_shm_load_claim_locked(
    ngx_http_dynamo_shm_t *sh, ngx_uint_t hash, u_char *name, size_t len);
static ngx_uint_t ngx_http_dynamo_shm_load_reclaim(ngx_http_dynamo_shm_t *sh);
static void ngx_http_dynamo_shm_take_back(ngx_http_dynamo_shm_t *sh,
    ngx_uint_t r);
static ngx_int_t ngx_http_dynamo_shm_claim_row(ngx_http_dynamo_shm_t *sh);


static ngx_int_t               ngx_http_dynamo_shm_row = -1;
static ngx_http_dynamo_shm_t  *ngx_http_dynamo_shm_row_sh;
static time_t                  ngx_http_dynamo_shm_row_tried;
static ngx_atomic_int_t        ngx_http_dynamo_shm_in_flight;  /* this
                                                         process's requests */


static ngx_http_dynamo_load_t  ngx_http_dynamo_load_full = {
    0, "", NGX_HTTP_DYNAMO_LOAD_FULL, NGX_HTTP_DYNAMO_LOAD_FULL,
    NGX_HTTP_DYNAMO_LOAD_FULL, 0, 0, 0, 0, 0, { { 0, 0, 0 } }
};


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
     * the smallest useful layout: header and load table, and two regions
     * (see init_zone) of the model table and per model an index of
     * NGX_HTTP_DYNAMO_SHM_MIN_BLOCKS blocks; the slab allocator keeps a
     * page descriptor per page and a few pages
     */

    cfg.max_workers = ngx_http_dynamo_shm_workers(dmcf);
    cfg.max_blocks = NGX_HTTP_DYNAMO_SHM_MIN_BLOCKS;

    need = ngx_http_dynamo_shm_pages(sizeof(ngx_http_dynamo_shm_t))
           + NGX_HTTP_DYNAMO_SHM_SPARE * ngx_pagesize
           + NGX_HTTP_DYNAMO_SHM_GENS
             * ngx_http_dynamo_shm_pages(
                   ngx_align(dmcf->models.nelts
                             * sizeof(ngx_http_dynamo_shm_model_t), 64)
                   + dmcf->models.nelts
                     * ngx_align(kvr_index_size(&cfg) + 64, 64)
                   + 64);

    size = dmcf->shm_zone->shm.size;
    usable = size - size / ngx_pagesize * sizeof(ngx_slab_page_t)
             - 2 * ngx_pagesize;

    if (size < 8 * ngx_pagesize || usable < need) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" of \"dynamo_zone\" is too small "
                           "for %ui model(s) of %ui workers: %uzk at least",
                           &dmcf->shm_zone->shm.name, dmcf->models.nelts,
                           ngx_http_dynamo_shm_workers(dmcf),
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

    ngx_int_t                   rc;
    ngx_uint_t                  i;
    ngx_slab_pool_t            *shpool;
    ngx_http_dynamo_shm_t      *sh;
    ngx_http_dynamo_shm_gen_t  *keep;
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

    if (sh == NULL) {
        sh = ngx_slab_calloc(shpool, sizeof(ngx_http_dynamo_shm_t));
        if (sh == NULL) {
            goto nomem;
        }

        sh->magic = NGX_HTTP_DYNAMO_SHM_MAGIC;
        sh->version = NGX_HTTP_DYNAMO_SHM_VERSION;
        sh->size = sizeof(ngx_http_dynamo_shm_t);
        sh->model_size = sizeof(ngx_http_dynamo_shm_model_t);

        /* each generation of indexes gets half of the rest, for good */

        if (shpool->pfree < NGX_HTTP_DYNAMO_SHM_SPARE + 4) {
            goto nomem;
        }

        sh->index_pages = (shpool->pfree - NGX_HTTP_DYNAMO_SHM_SPARE)
                          / NGX_HTTP_DYNAMO_SHM_GENS;

        for (i = 0; i < NGX_HTTP_DYNAMO_SHM_GENS; i++) {
            sh->gen[i].region_len = sh->index_pages * ngx_pagesize;
            sh->gen[i].region = ngx_slab_alloc(shpool,
                                               sh->gen[i].region_len);
            if (sh->gen[i].region == NULL) {
                goto nomem;
            }
        }

        shpool->data = sh;
        shpool->log_nomem = 0;
    }

    ctx->sh = sh;

    /* the generation the running configuration uses */

    keep = NULL;

    if (octx) {
        if (octx->gen && octx->gen->stamp == octx->layout) {
            keep = octx->gen;
        }

    } else if (sh->gen[sh->current].stamp) {
        keep = &sh->gen[sh->current];
    }

    if (keep && ngx_http_dynamo_shm_same_models(keep, ctx->dmcf)) {
        ctx->gen = keep;
        ctx->layout = keep->stamp;
        sh->current = keep - sh->gen;

        ngx_log_error(NGX_LOG_INFO, shm_zone->shm.log, 0,
                      "dynamo zone \"%V\": %ui index(es) kept",
                      &shm_zone->shm.name, keep->nmodels);
        return NGX_OK;
    }

    if (keep) {
        ngx_log_error(NGX_LOG_NOTICE, shm_zone->shm.log, 0,
                      "dynamo zone \"%V\": models changed, "
                      "indexes start empty", &shm_zone->shm.name);
    }

    ngx_shmtx_lock(&shpool->mutex);
    rc = ngx_http_dynamo_shm_layout(shm_zone, sh, keep);
    ngx_shmtx_unlock(&shpool->mutex);

    return rc;

nomem:

    ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                  "zone \"%V\" of \"dynamo_zone\" is too small",
                  &shm_zone->shm.name);

    return NGX_ERROR;
}


static ngx_uint_t
ngx_http_dynamo_shm_same_models(ngx_http_dynamo_shm_gen_t *gen,
    ngx_http_dynamo_main_conf_t *dmcf)
{
    ngx_str_t                     url;
    ngx_uint_t                    i, workers;
    ngx_http_dynamo_model_t      *m;
    ngx_http_dynamo_shm_model_t  *sm;

    if (gen->nmodels != dmcf->models.nelts) {
        return 0;
    }

    ngx_http_dynamo_shm_redis(dmcf, &url);

    if (gen->redis_len != url.len
        || ngx_strncmp(gen->redis, url.data, url.len) != 0)
    {
        return 0;
    }

    workers = ngx_http_dynamo_shm_workers(dmcf);

    m = dmcf->models.elts;
    sm = gen->models;

    for (i = 0; i < gen->nmodels; i++) {
        if (sm[i].index == NULL
            || sm[i].name_len != m[i].name.len
            || ngx_strncmp(sm[i].name, m[i].name.data, m[i].name.len) != 0
            || sm[i].block_size != m[i].block_size
            || sm[i].config.max_workers != workers
            || kvr_index_attach(sm[i].mem, sm[i].len) != sm[i].index)
        {
            return 0;
        }
    }

    return 1;
}


/*
 * under the lock: frees the generations no running configuration uses
 * (the one before the running one, or one of a reload that failed) and
 * lays the new one out in the region of one of them
 */

static ngx_int_t
ngx_http_dynamo_shm_layout(ngx_shm_zone_t *shm_zone,
    ngx_http_dynamo_shm_t *sh, ngx_http_dynamo_shm_gen_t *keep)
{
    size_t                        len, tlen;
    ngx_str_t                     url;
    ngx_uint_t                    i, n, stamp;
    ngx_http_dynamo_model_t      *m;
    ngx_http_dynamo_shm_ctx_t    *ctx;
    ngx_http_dynamo_shm_gen_t    *gen;
    ngx_http_dynamo_shm_model_t  *sm;
    ngx_http_dynamo_main_conf_t  *dmcf;

    ctx = shm_zone->data;
    dmcf = ctx->dmcf;
    n = dmcf->models.nelts;

    gen = NULL;

    for (i = 0; i < NGX_HTTP_DYNAMO_SHM_GENS; i++) {
        if (&sh->gen[i] == keep) {
            continue;
        }

        ngx_http_dynamo_shm_free_gen(&sh->gen[i]);

        if (gen == NULL) {
            gen = &sh->gen[i];
        }
    }

    stamp = ++sh->layout;

    ngx_http_dynamo_shm_redis(dmcf, &url);

    gen->redis_len = url.len;
    ngx_memcpy(gen->redis, url.data, url.len);

    if (n) {
        /* the model table, then the indexes in equal 64-byte aligned parts */

        tlen = ngx_align(n * sizeof(ngx_http_dynamo_shm_model_t), 64);

        if (gen->region == NULL || gen->region_len < tlen + n * 128) {
            goto nomem;
        }

        sm = (ngx_http_dynamo_shm_model_t *) gen->region;
        ngx_memzero(sm, tlen);

        gen->models = sm;

        len = (gen->region_len - tlen) / n & ~((size_t) 63);
        m = dmcf->models.elts;

        for (i = 0; i < n; i++) {
            ngx_memcpy(sm[i].name, m[i].name.data,
                       ngx_min(m[i].name.len, NGX_HTTP_DYNAMO_SHM_NAME_LEN));
            sm[i].name_len = m[i].name.len;
            sm[i].block_size = m[i].block_size;

            sm[i].config.max_workers = ngx_http_dynamo_shm_workers(dmcf);
            sm[i].config.max_blocks =
                ngx_http_dynamo_shm_max_blocks(len, sm[i].config.max_workers);

            if (sm[i].config.max_blocks < NGX_HTTP_DYNAMO_SHM_MIN_BLOCKS) {
                goto nomem;
            }

            sm[i].mem = gen->region + tlen + i * len;

            gen->nmodels = i + 1;

            sm[i].len = len;
            sm[i].index = kvr_index_init(sm[i].mem, len, &sm[i].config);

            if (sm[i].index == NULL) {
                goto nomem;
            }
        }

        ngx_log_error(NGX_LOG_INFO, shm_zone->shm.log, 0,
                      "dynamo zone \"%V\": %ui index(es) of %uL blocks",
                      &shm_zone->shm.name, n, sm[0].config.max_blocks);
    }

    gen->stamp = stamp;
    sh->current = gen - sh->gen;

    ctx->gen = gen;
    ctx->layout = stamp;

    return NGX_OK;

nomem:

    ngx_http_dynamo_shm_free_gen(gen);

    ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                  "zone \"%V\" of \"dynamo_zone\" is too small for "
                  "%ui model(s)", &shm_zone->shm.name, n);

    return NGX_ERROR;
}


/* its region stays reserved for the generation laid out there next */

static void
ngx_http_dynamo_shm_free_gen(ngx_http_dynamo_shm_gen_t *gen)
{
    /* its readers, if any are left, see their stamp gone */

    gen->stamp = 0;
    ngx_memory_barrier();

    gen->nmodels = 0;
    gen->models = NULL;
    gen->redis_len = 0;
}


static ngx_uint_t
ngx_http_dynamo_shm_workers(ngx_http_dynamo_main_conf_t *dmcf)
{
    return dmcf->zone_workers ? dmcf->zone_workers
                              : NGX_HTTP_DYNAMO_SHM_WORKERS;
}


/* the Redis the indexes come from; none: empty */

static void
ngx_http_dynamo_shm_redis(ngx_http_dynamo_main_conf_t *dmcf, ngx_str_t *url)
{
    if (dmcf->redis == NULL) {
        ngx_str_null(url);
        return;
    }

    *url = dmcf->redis->url.url;
    url->len = ngx_min(url->len, NGX_HTTP_DYNAMO_SHM_NAME_LEN);
}


static uint64_t
ngx_http_dynamo_shm_max_blocks(size_t len, ngx_uint_t workers)
{
    uint64_t            lo, hi, mid;
    kvr_index_config_t  cfg;

    /* the index starts at its first 64-byte boundary */

    if (len <= 64) {
        return 0;
    }

    len -= 64;

    cfg.max_workers = workers;

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


static ngx_http_dynamo_shm_gen_t *
ngx_http_dynamo_shm_get(ngx_http_dynamo_main_conf_t *dmcf)
{
    ngx_http_dynamo_shm_ctx_t  *ctx;

    if (dmcf == NULL || dmcf->shm_zone == NULL) {
        return NULL;
    }

    ctx = dmcf->shm_zone->data;

    if (ctx == NULL || ctx->gen == NULL) {
        return NULL;
    }

    if (ctx->gen->stamp != ctx->layout) {
        /* freed by a newer configuration */
        return NULL;
    }

    return ctx->gen;
}


kvr_index_t *
ngx_http_dynamo_shm_index(ngx_http_dynamo_main_conf_t *dmcf, ngx_uint_t model)
{
    ngx_http_dynamo_shm_gen_t  *gen;

    gen = ngx_http_dynamo_shm_get(dmcf);

    if (gen == NULL || model >= gen->nmodels) {
        return NULL;
    }

    return gen->models[model].index;
}


static ngx_http_dynamo_shm_t *
ngx_http_dynamo_shm_load_sh(ngx_http_dynamo_main_conf_t *dmcf, size_t len)
{
    ngx_http_dynamo_shm_ctx_t  *ctx;

    if (dmcf == NULL || dmcf->shm_zone == NULL || len == 0
        || len >= KVR_ADDR_MAX)
    {
        return NULL;
    }

    ctx = dmcf->shm_zone->data;

    return ctx ? ctx->sh : NULL;
}


static ngx_uint_t
ngx_http_dynamo_shm_load_hash(u_char *name, size_t len)
{
    ngx_uint_t  hash;

    hash = ngx_crc32_short(name, len);

    return hash ? hash : 1;
}


/* lock-free: a slot's name is written before its hash */

static ngx_http_dynamo_load_t *
ngx_http_dynamo_shm_load_lookup(ngx_http_dynamo_shm_t *sh, ngx_uint_t hash,
    u_char *name, size_t len)
{
    ngx_uint_t               i, k;
    ngx_http_dynamo_load_t  *slot;

    k = hash % NGX_HTTP_DYNAMO_LOAD_SLOTS;

    for (i = 0; i < NGX_HTTP_DYNAMO_LOAD_SLOTS; i++) {
        slot = &sh->load[(k + i) % NGX_HTTP_DYNAMO_LOAD_SLOTS];

        if (slot->hash == 0) {
            return NULL;
        }

        if (slot->hash == hash
            && ngx_strncmp(slot->name, name, len) == 0
            && slot->name[len] == '\0')
        {
            return slot;
        }
    }

    return NULL;
}


ngx_http_dynamo_load_t *
ngx_http_dynamo_shm_load_find(ngx_http_dynamo_main_conf_t *dmcf,
    u_char *name, size_t len)
{
    ngx_http_dynamo_shm_t  *sh;

    sh = ngx_http_dynamo_shm_load_sh(dmcf, len);
    if (sh == NULL) {
        return NULL;
    }

    return ngx_http_dynamo_shm_load_lookup(sh,
                                ngx_http_dynamo_shm_load_hash(name, len),
                                name, len);
}


ngx_http_dynamo_load_t *
ngx_http_dynamo_shm_load(ngx_http_dynamo_main_conf_t *dmcf, u_char *name,
    size_t len)
{
    time_t                   now;
    ngx_uint_t               n;
    ngx_atomic_uint_t        last;
    ngx_slab_pool_t         *shpool;
    ngx_http_dynamo_shm_t   *sh;
    ngx_http_dynamo_load_t  *slot;

    sh = ngx_http_dynamo_shm_load_sh(dmcf, len);
    if (sh == NULL) {
        return NULL;
    }

    slot = ngx_http_dynamo_shm_load_lookup(sh,
                                ngx_http_dynamo_shm_load_hash(name, len),
                                name, len);

    if (slot || sh->load_used < NGX_HTTP_DYNAMO_LOAD_SLOTS) {
        return slot;
    }

    /*
     * the table is full: idle slots may have become reclaimable since; one
     * process a second looks, so that a new worker gets a slot when picked
     */

    now = ngx_time();
    last = sh->load_reclaimed;

    if ((time_t) last != now
        && ngx_atomic_cmp_set(&sh->load_reclaimed, last, now))
    {
        shpool = (ngx_slab_pool_t *) dmcf->shm_zone->shm.addr;

        ngx_shmtx_lock(&shpool->mutex);
        n = ngx_http_dynamo_shm_load_reclaim(sh);
        ngx_shmtx_unlock(&shpool->mutex);

        if (n) {
            return NULL;
        }
    }

    if (sh->load_used < NGX_HTTP_DYNAMO_LOAD_SLOTS) {
        return NULL;
    }

    return &ngx_http_dynamo_load_full;
}


ngx_http_dynamo_load_t *
ngx_http_dynamo_shm_load_claim(ngx_http_dynamo_main_conf_t *dmcf,
    u_char *name, size_t len)
{
    time_t                   now;
    ngx_uint_t               hash;
    ngx_slab_pool_t         *shpool;
    ngx_http_dynamo_shm_t   *sh;
    ngx_http_dynamo_load_t  *slot;

    sh = ngx_http_dynamo_shm_load_sh(dmcf, len);
    if (sh == NULL) {
        return NULL;
    }

    hash = ngx_http_dynamo_shm_load_hash(name, len);
    now = ngx_time();

    slot = ngx_http_dynamo_shm_load_lookup(sh, hash, name, len);

    if (slot) {
        slot->used = now;
        return slot;
    }

    /* claim a slot; rare (one per worker address), so under the lock */

    shpool = (ngx_slab_pool_t *) dmcf->shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    slot = ngx_http_dynamo_shm_load_claim_locked(sh, hash, name, len);

    if (slot == NULL && ngx_http_dynamo_shm_load_reclaim(sh)) {
        slot = ngx_http_dynamo_shm_load_claim_locked(sh, hash, name, len);
    }

    if (slot) {
        slot->used = now;

    } else if (sh->load_warned != (ngx_atomic_uint_t) now) {
        sh->load_warned = now;

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "dynamo zone \"%V\": the load table is full "
                      "(%d workers in use), worker %*s is routed as "
                      "fully loaded", &dmcf->shm_zone->shm.name,
                      NGX_HTTP_DYNAMO_LOAD_SLOTS, len, name);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return slot;
}


static ngx_http_dynamo_load_t *
ngx_http_dynamo_shm_load_claim_locked(ngx_http_dynamo_shm_t *sh,
    ngx_uint_t hash, u_char *name, size_t len)
{
    ngx_uint_t               i, k;
    ngx_http_dynamo_load_t  *slot, *tomb;

    k = hash % NGX_HTTP_DYNAMO_LOAD_SLOTS;
    tomb = NULL;

    for (i = 0; i < NGX_HTTP_DYNAMO_LOAD_SLOTS; i++) {
        slot = &sh->load[(k + i) % NGX_HTTP_DYNAMO_LOAD_SLOTS];

        if (slot->hash == 0) {
            break;
        }

        if (slot->hash == NGX_HTTP_DYNAMO_LOAD_TOMB) {
            if (tomb == NULL) {
                tomb = slot;
            }

            continue;
        }

        if (slot->hash == hash
            && ngx_strncmp(slot->name, name, len) == 0
            && slot->name[len] == '\0')
        {
            return slot;
        }
    }

    if (tomb) {
        slot = tomb;

    } else if (i == NGX_HTTP_DYNAMO_LOAD_SLOTS) {
        return NULL;
    }

    /* a tombstone's counters were zeroed when it was reclaimed */

    ngx_memcpy(slot->name, name, len);
    slot->name[len] = '\0';
    ngx_memory_barrier();
    slot->hash = hash;

    (void) ngx_atomic_fetch_add(&sh->load_used, 1);

    return slot;
}


/*
 * marks the slots of idle addresses (nothing in flight, not failed, not
 * used for LOAD_IDLE seconds) as tombstones: lock-free lookups probe past
 * them, claims reuse them
 */

static ngx_uint_t
ngx_http_dynamo_shm_load_reclaim(ngx_http_dynamo_shm_t *sh)
{
    time_t                   now;
    ngx_uint_t               i, n;
    ngx_msec_int_t           left;
    ngx_http_dynamo_load_t  *slot;

    now = ngx_time();
    n = 0;

    for (i = 0; i < NGX_HTTP_DYNAMO_LOAD_SLOTS; i++) {
        slot = &sh->load[i];

        if (slot->hash == 0 || slot->hash == NGX_HTTP_DYNAMO_LOAD_TOMB
            || slot->in_flight != 0
            || now - (time_t) slot->used < NGX_HTTP_DYNAMO_LOAD_IDLE)
        {
            continue;
        }

        if (slot->failed_until) {
            left = (ngx_msec_int_t) (slot->failed_until - ngx_current_msec);
            if (left > 0) {
                continue;
            }
        }

        slot->hash = NGX_HTTP_DYNAMO_LOAD_TOMB;
        ngx_memory_barrier();

        slot->name[0] = '\0';
        ngx_memzero(slot->row, sizeof(slot->row));
        slot->blocks = 0;
        slot->prefill = 0;
        slot->requests = 0;
        slot->prefills = 0;
        slot->fails = 0;
        slot->failed_until = 0;

        (void) ngx_atomic_fetch_add(&sh->load_used, -1);
        n++;
    }

    return n;
}


void
ngx_http_dynamo_shm_load_add(ngx_http_dynamo_load_t *load,
    ngx_atomic_int_t in_flight, ngx_atomic_int_t blocks,
    ngx_atomic_int_t prefill)
{
    ngx_http_dynamo_load_row_t  *row;

    (void) ngx_atomic_fetch_add(&load->in_flight, in_flight);
    (void) ngx_atomic_fetch_add(&load->blocks, blocks);
    (void) ngx_atomic_fetch_add(&load->prefill, prefill);

    /* a row claimed late only while nothing of this process is in flight */

    if (ngx_http_dynamo_shm_row < 0
        && ngx_http_dynamo_shm_in_flight == 0
        && ngx_http_dynamo_shm_row_sh)
    {
        (void) ngx_http_dynamo_shm_claim_row(ngx_http_dynamo_shm_row_sh);
    }

    ngx_http_dynamo_shm_in_flight += in_flight;

    if (ngx_http_dynamo_shm_row < 0) {
        return;
    }

    /* the row is this process's alone */

    row = &load->row[ngx_http_dynamo_shm_row];

    row->in_flight += in_flight;
    row->blocks += blocks;
    row->prefill += prefill;
}


void
ngx_http_dynamo_shm_init_process(ngx_http_dynamo_main_conf_t *dmcf)
{
    ngx_http_dynamo_shm_t  *sh;

    if (ngx_http_dynamo_shm_row >= 0) {
        return;
    }

    sh = ngx_http_dynamo_shm_load_sh(dmcf, 1);
    if (sh == NULL) {
        return;
    }

    ngx_http_dynamo_shm_reap(dmcf);

    ngx_http_dynamo_shm_row_sh = sh;
    ngx_http_dynamo_shm_row_tried = 0;

    if (ngx_http_dynamo_shm_claim_row(sh) == NGX_OK) {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "dynamo zone \"%V\": more than %d nginx processes, "
                  "the load of this one is not taken back if it dies "
                  "until a row is free", &dmcf->shm_zone->shm.name,
                  NGX_HTTP_DYNAMO_LOAD_ROWS);
}


/* claims a free row for this process, at most one try a second */

static ngx_int_t
ngx_http_dynamo_shm_claim_row(ngx_http_dynamo_shm_t *sh)
{
    time_t      now;
    ngx_uint_t  r;

    now = ngx_time();

    if (ngx_http_dynamo_shm_row_tried == now) {
        return NGX_DECLINED;
    }

    ngx_http_dynamo_shm_row_tried = now;

    for (r = 0; r < NGX_HTTP_DYNAMO_LOAD_ROWS; r++) {
        if (ngx_atomic_cmp_set(&sh->row_pid[r], 0, ngx_pid)) {
            ngx_http_dynamo_shm_row = r;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


void
ngx_http_dynamo_shm_exit_process(ngx_http_dynamo_main_conf_t *dmcf)
{
    ngx_slab_pool_t        *shpool;
    ngx_http_dynamo_shm_t  *sh;

    ngx_http_dynamo_shm_row_sh = NULL;

    sh = ngx_http_dynamo_shm_load_sh(dmcf, 1);

    if (sh == NULL || ngx_http_dynamo_shm_row < 0) {
        return;
    }

    shpool = (ngx_slab_pool_t *) dmcf->shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);
    ngx_http_dynamo_shm_take_back(sh, ngx_http_dynamo_shm_row);
    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_dynamo_shm_row = -1;
}


void
ngx_http_dynamo_shm_reap(ngx_http_dynamo_main_conf_t *dmcf)
{
    ngx_pid_t               pid;
    ngx_uint_t              r;
    ngx_slab_pool_t        *shpool;
    ngx_http_dynamo_shm_t  *sh;

    sh = ngx_http_dynamo_shm_load_sh(dmcf, 1);
    if (sh == NULL) {
        return;
    }

    shpool = (ngx_slab_pool_t *) dmcf->shm_zone->shm.addr;

    for (r = 0; r < NGX_HTTP_DYNAMO_LOAD_ROWS; r++) {
        pid = (ngx_pid_t) sh->row_pid[r];

        if (pid == 0 || pid == ngx_pid
            || kill(pid, 0) == 0 || ngx_errno != NGX_ESRCH)
        {
            continue;
        }

        ngx_shmtx_lock(&shpool->mutex);

        if ((ngx_pid_t) sh->row_pid[r] == pid) {
            ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                          "dynamo zone \"%V\": load in flight of exited "
                          "process %P taken back",
                          &dmcf->shm_zone->shm.name, pid);

            ngx_http_dynamo_shm_take_back(sh, r);
        }

        ngx_shmtx_unlock(&shpool->mutex);
    }

    if (ngx_http_dynamo_shm_row < 0
        && ngx_http_dynamo_shm_in_flight == 0
        && ngx_http_dynamo_shm_row_sh == sh)
    {
        (void) ngx_http_dynamo_shm_claim_row(sh);
    }
}


/* under the lock: a row's load leaves the totals, the row is free */

static void
ngx_http_dynamo_shm_take_back(ngx_http_dynamo_shm_t *sh, ngx_uint_t r)
{
    ngx_uint_t                   i;
    ngx_http_dynamo_load_t      *slot;
    ngx_http_dynamo_load_row_t  *row;

    for (i = 0; i < NGX_HTTP_DYNAMO_LOAD_SLOTS; i++) {
        slot = &sh->load[i];
        row = &slot->row[r];

        if (row->in_flight == 0 && row->blocks == 0 && row->prefill == 0) {
            continue;
        }

        (void) ngx_atomic_fetch_add(&slot->in_flight, -row->in_flight);
        (void) ngx_atomic_fetch_add(&slot->blocks, -row->blocks);
        (void) ngx_atomic_fetch_add(&slot->prefill, -row->prefill);

        row->in_flight = 0;
        row->blocks = 0;
        row->prefill = 0;
    }

    ngx_memory_barrier();

    sh->row_pid[r] = 0;
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
    ngx_http_dynamo_shm_gen_t  *gen;

    gen = ngx_http_dynamo_shm_get(dmcf);

    if (gen == NULL || model >= gen->nmodels) {
        return NULL;
    }

    return &gen->models[model].status;
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
    ngx_http_dynamo_shm_gen_t      *sh;
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
