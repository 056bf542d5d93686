
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 */


#include "ngx_http_dynamo_module.h"


static void *ngx_http_dynamo_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_dynamo_create_srv_conf(ngx_conf_t *cf);
static void *ngx_http_dynamo_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_dynamo_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);


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
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
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

    { ngx_string("dynamo_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_dynamo_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_dynamo_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_dynamo_create_main_conf,      /* create main configuration */
    NULL,                                  /* init main configuration */

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
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


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

    return dmcf;
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
     */

    dlcf->metrics = NGX_CONF_UNSET;

    return dlcf;
}


static char *
ngx_http_dynamo_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_dynamo_loc_conf_t  *conf = child;

    /*
     * dynamo_pass and dynamo_metrics install the content handler of their
     * own location only, so neither is inherited
     */

    ngx_conf_init_value(conf->metrics, 0);

    return NGX_CONF_OK;
}
