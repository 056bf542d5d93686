
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 */


#ifndef _NGX_HTTP_DYNAMO_MODULE_H_INCLUDED_
#define _NGX_HTTP_DYNAMO_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


#define NGX_HTTP_DYNAMO_VERSION             "0.1.0"

#define NGX_HTTP_DYNAMO_BLOCK_SIZE          16
#define NGX_HTTP_DYNAMO_BLOCK_SIZE_MAX      1024

#define NGX_HTTP_DYNAMO_REDIS_PORT          6379
#define NGX_HTTP_DYNAMO_REDIS_TIMEOUT       1000

/* decimal directive values (weights, temperature) are kept in thousandths */
#define NGX_HTTP_DYNAMO_FIXED_POINT         3
#define NGX_HTTP_DYNAMO_FIXED_ONE           1000


typedef enum {
    NGX_HTTP_DYNAMO_POLICY_NONE = 0,
    NGX_HTTP_DYNAMO_POLICY_KV,
    NGX_HTTP_DYNAMO_POLICY_ROUND_ROBIN,
    NGX_HTTP_DYNAMO_POLICY_LEAST_LOAD
} ngx_http_dynamo_policy_e;


typedef enum {
    NGX_HTTP_DYNAMO_ROLE_AGGREGATED = 0,
    NGX_HTTP_DYNAMO_ROLE_DECODE,
    NGX_HTTP_DYNAMO_ROLE_PREFILL
} ngx_http_dynamo_role_e;


typedef struct {
    ngx_str_t                       name;
    ngx_str_t                       path;
    ngx_array_t                     aliases;        /* ngx_str_t */
    ngx_uint_t                      block_size;
    ngx_uint_t                      context;        /* 0: model default */
} ngx_http_dynamo_model_t;


typedef struct {
    ngx_url_t                       url;
    ngx_str_t                       password;
    ngx_uint_t                      db;
    ngx_msec_t                      connect_timeout;
    ngx_msec_t                      timeout;
} ngx_http_dynamo_redis_conf_t;


typedef struct {
    ngx_atomic_t                    generation;
} ngx_http_dynamo_shctx_t;


typedef struct {
    ngx_array_t                     models;   /* ngx_http_dynamo_model_t */
    ngx_http_dynamo_redis_conf_t   *redis;
    ngx_shm_zone_t                 *shm_zone;
} ngx_http_dynamo_main_conf_t;


typedef struct {
    ngx_uint_t                      policy;         /* NONE: not ours */
    ngx_uint_t                      role;
    ngx_uint_t                      overlap_weight;
    ngx_uint_t                      temperature;
    ngx_uint_t                      balance_margin;
} ngx_http_dynamo_srv_conf_t;


typedef struct {
    ngx_http_upstream_srv_conf_t   *upstream;
    ngx_flag_t                      metrics;
} ngx_http_dynamo_loc_conf_t;


char *ngx_http_dynamo_model(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_dynamo_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_dynamo_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_dynamo_upstream(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_dynamo_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_dynamo_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

ngx_int_t ngx_http_dynamo_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_dynamo_metrics_handler(ngx_http_request_t *r);

ngx_int_t ngx_http_dynamo_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_str_t *body);
ngx_int_t ngx_http_dynamo_send_error(ngx_http_request_t *r,
    ngx_uint_t status, char *type, ngx_str_t *message);
ngx_int_t ngx_http_dynamo_set_allow(ngx_http_request_t *r, ngx_str_t *allow);
size_t ngx_http_dynamo_json_escape(u_char *dst, u_char *src, size_t size);


extern ngx_module_t  ngx_dynamo_module;


#endif /* _NGX_HTTP_DYNAMO_MODULE_H_INCLUDED_ */
