
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * Error filter (stub).
 */


#include "ngx_http_dynamo_module.h"


ngx_int_t
ngx_http_dynamo_error_filter_init(ngx_conf_t *cf)
{
    return NGX_OK;
}
