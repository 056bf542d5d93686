
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * Shared-memory zone (stub).
 */


#include "ngx_http_dynamo_module.h"


static ngx_int_t
ngx_http_dynamo_shm_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    return NGX_OK;
}


ngx_int_t
ngx_http_dynamo_shm_add(ngx_conf_t *cf, ngx_http_dynamo_main_conf_t *dmcf)
{
    if (dmcf->shm_zone) {
        dmcf->shm_zone->init = ngx_http_dynamo_shm_init_zone;
        dmcf->shm_zone->data = dmcf;
    }

    return NGX_OK;
}


kvr_index_t *
ngx_http_dynamo_shm_index(ngx_http_dynamo_main_conf_t *dmcf, ngx_uint_t model)
{
    return NULL;
}


ngx_http_dynamo_load_t *
ngx_http_dynamo_shm_load(ngx_http_dynamo_main_conf_t *dmcf, u_char *name,
    size_t len)
{
    return NULL;
}


ngx_http_dynamo_counters_t *
ngx_http_dynamo_shm_counters(ngx_http_dynamo_main_conf_t *dmcf)
{
    return NULL;
}


ngx_http_dynamo_sync_status_t *
ngx_http_dynamo_shm_sync_status(ngx_http_dynamo_main_conf_t *dmcf,
    ngx_uint_t model)
{
    return NULL;
}


u_char *
ngx_http_dynamo_shm_metrics(ngx_http_dynamo_main_conf_t *dmcf, u_char *p,
    u_char *last)
{
    return p;
}
