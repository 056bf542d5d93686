
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * Prometheus text exposition of dynamo_metrics locations.
 */


#include "ngx_http_dynamo_module.h"


static ngx_str_t  ngx_http_dynamo_metrics_type =
    ngx_string("text/plain; version=0.0.4");

static ngx_str_t  ngx_http_dynamo_metrics_allow = ngx_string("GET, HEAD");

static ngx_str_t  ngx_http_dynamo_metrics_not_allowed =
    ngx_string("method not allowed\n");

static ngx_str_t  ngx_http_dynamo_metrics_static = ngx_string(
    "# HELP dynamo_up Whether the ngx_dynamo module is serving.\n"
    "# TYPE dynamo_up gauge\n"
    "dynamo_up 1\n"
    "# HELP dynamo_build_info Build information of the ngx_dynamo module.\n"
    "# TYPE dynamo_build_info gauge\n"
    "dynamo_build_info{version=\"" NGX_HTTP_DYNAMO_VERSION "\","
    "nginx=\"" NGINX_VERSION "\"} 1\n"
);


ngx_int_t
ngx_http_dynamo_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        if (ngx_http_dynamo_set_allow(r, &ngx_http_dynamo_metrics_allow)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_dynamo_send(r, NGX_HTTP_NOT_ALLOWED,
                                    &ngx_http_dynamo_metrics_type,
                                    &ngx_http_dynamo_metrics_not_allowed);
    }

    return ngx_http_dynamo_send(r, NGX_HTTP_OK, &ngx_http_dynamo_metrics_type,
                                &ngx_http_dynamo_metrics_static);
}
