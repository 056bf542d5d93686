
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * Variables (stub).
 */


#include "ngx_http_dynamo_module.h"


ngx_int_t
ngx_http_dynamo_add_variables(ngx_conf_t *cf)
{
    return NGX_OK;
}
