
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * Content handler of dynamo_pass locations.
 */


#include "ngx_http_dynamo_module.h"


static ngx_int_t ngx_http_dynamo_health(ngx_http_request_t *r);
static ngx_int_t ngx_http_dynamo_not_found(ngx_http_request_t *r);
static ngx_int_t ngx_http_dynamo_not_allowed(ngx_http_request_t *r,
    ngx_str_t *allow);
static ngx_int_t ngx_http_dynamo_request_error(ngx_http_request_t *r,
    ngx_uint_t status, char *reason);


static ngx_str_t  ngx_http_dynamo_health_uri = ngx_string("/health");
static ngx_str_t  ngx_http_dynamo_health_body =
    ngx_string("{\"status\":\"ok\"}");
static ngx_str_t  ngx_http_dynamo_json_type = ngx_string("application/json");
static ngx_str_t  ngx_http_dynamo_allow_get = ngx_string("GET, HEAD");


ngx_int_t
ngx_http_dynamo_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (r->uri.len == ngx_http_dynamo_health_uri.len
        && ngx_strncmp(r->uri.data, ngx_http_dynamo_health_uri.data,
                       r->uri.len)
           == 0)
    {
        return ngx_http_dynamo_health(r);
    }

    return ngx_http_dynamo_not_found(r);
}


static ngx_int_t
ngx_http_dynamo_health(ngx_http_request_t *r)
{
    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_dynamo_not_allowed(r, &ngx_http_dynamo_allow_get);
    }

    return ngx_http_dynamo_send(r, NGX_HTTP_OK, &ngx_http_dynamo_json_type,
                                &ngx_http_dynamo_health_body);
}


static ngx_int_t
ngx_http_dynamo_not_found(ngx_http_request_t *r)
{
    return ngx_http_dynamo_request_error(r, NGX_HTTP_NOT_FOUND,
                                         "Invalid URL");
}


static ngx_int_t
ngx_http_dynamo_not_allowed(ngx_http_request_t *r, ngx_str_t *allow)
{
    if (ngx_http_dynamo_set_allow(r, allow) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_dynamo_request_error(r, NGX_HTTP_NOT_ALLOWED,
                                         "Method not allowed");
}


static ngx_int_t
ngx_http_dynamo_request_error(ngx_http_request_t *r, ngx_uint_t status,
    char *reason)
{
    size_t     len;
    ngx_str_t  message;

    /* "Invalid URL (GET /v1/foo)", as the OpenAI API words it */

    len = ngx_strlen(reason) + sizeof(" ( )") - 1
          + r->method_name.len + r->uri.len;

    message.data = ngx_pnalloc(r->pool, len);
    if (message.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    message.len = ngx_sprintf(message.data, "%s (%V %V)", reason,
                              &r->method_name, &r->uri)
                  - message.data;

    return ngx_http_dynamo_send_error(r, status, "invalid_request_error",
                                      &message);
}
