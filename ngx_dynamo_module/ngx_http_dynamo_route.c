
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * Routing (stub).
 */


#include "ngx_http_dynamo_module.h"


ngx_int_t
ngx_http_dynamo_route(ngx_http_request_t *r, ngx_http_dynamo_ctx_t *ctx)
{
    return NGX_DECLINED;
}
