
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 */


#include "ngx_http_dynamo_module.h"


#define NGX_HTTP_DYNAMO_THREAD_MIN  (32 * 1024)

/* a worker's response header, with room to spare */
#define NGX_HTTP_DYNAMO_BUFFER_MIN  256


static ngx_int_t ngx_http_dynamo_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_dynamo_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_dynamo_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_dynamo_init_main_conf(ngx_conf_t *cf, void *conf);
static ngx_int_t ngx_http_dynamo_init_process(ngx_cycle_t *cycle);
static void ngx_http_dynamo_exit_process(ngx_cycle_t *cycle);
static void *ngx_http_dynamo_create_srv_conf(ngx_conf_t *cf);
static void *ngx_http_dynamo_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_dynamo_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_dynamo_timeout_check(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_dynamo_buffer_size_check(ngx_conf_t *cf, void *post,
    void *data);


static ngx_conf_post_handler_pt  ngx_http_dynamo_timeout_p =
    ngx_http_dynamo_timeout_check;
static ngx_conf_post_handler_pt  ngx_http_dynamo_buffer_size_p =
    ngx_http_dynamo_buffer_size_check;


static ngx_command_t  ngx_http_dynamo_commands[] = {

    { ngx_string("dynamo_model"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_dynamo_model,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynamo_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_dynamo_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynamo_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE23,
      ngx_http_dynamo_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynamo_upstream"),
      NGX_HTTP_UPS_CONF|NGX_CONF_1MORE,
      ngx_http_dynamo_upstream,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynamo_pass"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_dynamo_pass,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynamo_prefill_upstream"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_dynamo_prefill_upstream,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynamo_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_dynamo_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynamo_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_dynamo_thread_pool,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynamo_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dynamo_loc_conf_t, upstream_conf.connect_timeout),
      &ngx_http_dynamo_timeout_p },

    { ngx_string("dynamo_send_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dynamo_loc_conf_t, upstream_conf.send_timeout),
      &ngx_http_dynamo_timeout_p },

    { ngx_string("dynamo_read_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dynamo_loc_conf_t, upstream_conf.read_timeout),
      &ngx_http_dynamo_timeout_p },

    { ngx_string("dynamo_buffer_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dynamo_loc_conf_t, upstream_conf.buffer_size),
      &ngx_http_dynamo_buffer_size_p },

    { ngx_string("dynamo_next_upstream_tries"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dynamo_loc_conf_t, upstream_conf.next_upstream_tries),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_dynamo_module_ctx = {
    ngx_http_dynamo_preconfiguration,      /* preconfiguration */
    ngx_http_dynamo_postconfiguration,     /* postconfiguration */

    ngx_http_dynamo_create_main_conf,      /* create main configuration */
    ngx_http_dynamo_init_main_conf,        /* init main configuration */

    ngx_http_dynamo_create_srv_conf,       /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_dynamo_create_loc_conf,       /* create location configuration */
    ngx_http_dynamo_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_dynamo_module = {
    NGX_MODULE_V1,
    &ngx_http_dynamo_module_ctx,           /* module context */
    ngx_http_dynamo_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_dynamo_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_dynamo_exit_process,          /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_dynamo_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_dynamo_add_variables(cf);
}


static ngx_int_t
ngx_http_dynamo_postconfiguration(ngx_conf_t *cf)
{
    return ngx_http_dynamo_error_filter_init(cf);
}


static void *
ngx_http_dynamo_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_dynamo_main_conf_t  *dmcf;

    dmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_dynamo_main_conf_t));
    if (dmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     dmcf->redis = NULL;
     *     dmcf->shm_zone = NULL;
     */

    if (ngx_array_init(&dmcf->models, cf->pool, 2,
                       sizeof(ngx_http_dynamo_model_t))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&dmcf->upstreams, cf->pool, 2,
                       sizeof(ngx_http_dynamo_srv_conf_t *))
        != NGX_OK)
    {
        return NULL;
    }

    dmcf->thread_min = NGX_CONF_UNSET_SIZE;

    return dmcf;
}


static char *
ngx_http_dynamo_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_dynamo_main_conf_t *dmcf = conf;

    if (ngx_http_dynamo_models_init(cf, dmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /*
     * the tokenizer does 30 to 130 MB/s on one core, by text: prompts of
     * 32 KiB and more (up to a millisecond of work) go to a thread pool
     */

    ngx_conf_init_size_value(dmcf->thread_min, NGX_HTTP_DYNAMO_THREAD_MIN);

#if (NGX_THREADS)

    if (dmcf->models.nelts && dmcf->thread_pool == NULL
        && !dmcf->thread_pool_off)
    {
        dmcf->thread_pool = ngx_thread_pool_add(cf, NULL);
        if (dmcf->thread_pool == NULL) {
            return NGX_CONF_ERROR;
        }
    }

#endif

    if (ngx_http_dynamo_shm_add(cf, dmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_dynamo_init_process(ngx_cycle_t *cycle)
{
    return ngx_http_dynamo_redis_init_process(cycle);
}


static void
ngx_http_dynamo_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_dynamo_redis_exit_process(cycle);
}


static void *
ngx_http_dynamo_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_dynamo_srv_conf_t  *dscf;

    dscf = ngx_pcalloc(cf->pool, sizeof(ngx_http_dynamo_srv_conf_t));
    if (dscf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     dscf->policy = NGX_HTTP_DYNAMO_POLICY_NONE;
     *     dscf->role = NGX_HTTP_DYNAMO_ROLE_AGGREGATED;
     *     dscf->temperature = 0;
     */

    dscf->overlap_weight = NGX_HTTP_DYNAMO_FIXED_ONE;
    dscf->balance_margin = NGX_HTTP_DYNAMO_FIXED_ONE / 10;

    return dscf;
}


static void *
ngx_http_dynamo_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_dynamo_loc_conf_t  *dlcf;

    dlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_dynamo_loc_conf_t));
    if (dlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     dlcf->upstream = NULL;
     *     dlcf->prefill_upstream = NULL;
     *     dlcf->prefill_name = { 0, NULL };
     */

    dlcf->metrics = NGX_CONF_UNSET;

    dlcf->upstream_conf.connect_timeout = NGX_CONF_UNSET_MSEC;
    dlcf->upstream_conf.send_timeout = NGX_CONF_UNSET_MSEC;
    dlcf->upstream_conf.read_timeout = NGX_CONF_UNSET_MSEC;
    dlcf->upstream_conf.buffer_size = NGX_CONF_UNSET_SIZE;
    dlcf->upstream_conf.next_upstream_tries = NGX_CONF_UNSET_UINT;

    return dlcf;
}


static char *
ngx_http_dynamo_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_dynamo_loc_conf_t  *prev = parent;
    ngx_http_dynamo_loc_conf_t  *conf = child;

    /*
     * dynamo_pass and dynamo_metrics install the content handler of their
     * own location only, so neither is inherited
     */

    ngx_conf_init_value(conf->metrics, 0);

    ngx_conf_merge_msec_value(conf->upstream_conf.connect_timeout,
                              prev->upstream_conf.connect_timeout, 5000);
    ngx_conf_merge_msec_value(conf->upstream_conf.send_timeout,
                              prev->upstream_conf.send_timeout, 60000);
    ngx_conf_merge_msec_value(conf->upstream_conf.read_timeout,
                              prev->upstream_conf.read_timeout, 600000);
    ngx_conf_merge_size_value(conf->upstream_conf.buffer_size,
                              prev->upstream_conf.buffer_size,
                              (size_t) 16 * 1024);
    ngx_conf_merge_uint_value(conf->upstream_conf.next_upstream_tries,
                              prev->upstream_conf.next_upstream_tries, 3);

    /* not inherited either: it belongs with its location's dynamo_pass */

    if (conf->prefill_name.data
        && ngx_http_dynamo_prefill_check(cf, conf) != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (conf->upstream == NULL) {
        return NGX_CONF_OK;
    }

    /* the proxy's upstream: retries go down the router's picks */

    conf->upstream_conf.upstream = conf->upstream;
    conf->upstream_conf.next_upstream = NGX_HTTP_UPSTREAM_FT_ERROR
                                        |NGX_HTTP_UPSTREAM_FT_TIMEOUT
                                        |NGX_HTTP_UPSTREAM_FT_INVALID_HEADER
                                        |NGX_HTTP_UPSTREAM_FT_HTTP_503
                                        |NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT;

    return NGX_CONF_OK;
}


static char *
ngx_http_dynamo_timeout_check(ngx_conf_t *cf, void *post, void *data)
{
    ngx_msec_t  *msp = data;

    if (*msp == 0) {
        return "must be greater than 0";
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_dynamo_buffer_size_check(ngx_conf_t *cf, void *post, void *data)
{
    size_t  *sp = data;

    if (*sp < NGX_HTTP_DYNAMO_BUFFER_MIN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"dynamo_buffer_size\" must be at least %d "
                           "bytes, to hold a worker's response header",
                           NGX_HTTP_DYNAMO_BUFFER_MIN);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
