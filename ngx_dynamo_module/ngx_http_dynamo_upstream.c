
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * Upstream protocol handler (stub).
 */


#include "ngx_http_dynamo_module.h"


ngx_int_t
ngx_http_dynamo_upstream_start(ngx_http_request_t *r,
    ngx_http_dynamo_ctx_t *ctx)
{
    return NGX_HTTP_NOT_IMPLEMENTED;
}
