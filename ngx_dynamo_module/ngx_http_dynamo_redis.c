
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * Redis sync (stub).
 */


#include "ngx_http_dynamo_module.h"


ngx_int_t
ngx_http_dynamo_redis_init_process(ngx_cycle_t *cycle)
{
    return NGX_OK;
}


void
ngx_http_dynamo_redis_exit_process(ngx_cycle_t *cycle)
{
}
