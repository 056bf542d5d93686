
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * Models (stub).
 */


#include "ngx_http_dynamo_module.h"


ngx_int_t
ngx_http_dynamo_models_init(ngx_conf_t *cf, ngx_http_dynamo_main_conf_t *dmcf)
{
    return NGX_OK;
}


ngx_http_dynamo_model_t *
ngx_http_dynamo_model_find(ngx_http_dynamo_main_conf_t *dmcf, u_char *name,
    size_t len)
{
    return NULL;
}
