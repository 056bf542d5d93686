
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * Balancer (stub).
 */


#include "ngx_http_dynamo_module.h"


ngx_int_t
ngx_http_dynamo_balancer_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us)
{
    return ngx_http_upstream_init_round_robin(cf, us);
}
