
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 */


#ifndef _NGX_HTTP_DYNAMO_MODULE_H_INCLUDED_
#define _NGX_HTTP_DYNAMO_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "kvr_index.h"
#include "kvr_select.h"
#include "kvr_template.h"
#include "kvr_tokenizer.h"

#include "ngx_http_dynamo_oai.h"
#include "ngx_http_dynamo_stream.h"


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

    /* loaded at configuration time (ngx_http_dynamo_models_init) */
    ngx_uint_t                      index;          /* in dmcf->models */
    kvr_tokenizer_t                *tokenizer;
    kvr_template_t                 *chat_template;  /* NULL: none */
    ngx_uint_t                      vocab_size;
    char                           *bos_token;      /* NULL: none */
    char                           *eos_token;
    char                           *ns;             /* Redis namespace */
    time_t                          created;        /* for /v1/models */
} ngx_http_dynamo_model_t;


typedef struct {
    ngx_url_t                       url;
    ngx_str_t                       password;
    ngx_uint_t                      db;
    ngx_msec_t                      connect_timeout;
    ngx_msec_t                      timeout;
} ngx_http_dynamo_redis_conf_t;


typedef struct {
    ngx_array_t                     models;   /* ngx_http_dynamo_model_t */
    ngx_http_dynamo_redis_conf_t   *redis;
    ngx_shm_zone_t                 *shm_zone;
    ngx_uint_t                      zone_workers;  /* dynamo_zone workers=,
                                                      0: default */
    ngx_array_t                     upstreams;  /* ngx_http_dynamo_srv_conf_t * */
#if (NGX_THREADS)
    ngx_thread_pool_t              *thread_pool;
#endif
    size_t                          thread_min;   /* prompt bytes that go
                                                     to the thread pool */
    ngx_flag_t                      thread_pool_off;
} ngx_http_dynamo_main_conf_t;


/* a "server" line of a dynamo_upstream block */
typedef struct {
    ngx_str_t                       name;           /* "127.0.0.1:8001" */
    struct sockaddr                *sockaddr;
    socklen_t                       socklen;
} ngx_http_dynamo_server_t;


typedef struct {
    ngx_uint_t                      policy;         /* NONE: not ours */
    ngx_uint_t                      role;
    ngx_uint_t                      overlap_weight;
    ngx_uint_t                      temperature;
    ngx_uint_t                      balance_margin;

    ngx_http_upstream_srv_conf_t   *upstream;
    ngx_array_t                     servers;  /* ngx_http_dynamo_server_t,
                                                 by init_upstream */
} ngx_http_dynamo_srv_conf_t;


typedef struct {
    ngx_http_upstream_srv_conf_t   *upstream;
    ngx_flag_t                      metrics;
    ngx_http_upstream_conf_t        upstream_conf;  /* timeouts, buffer */

    /* dynamo_prefill_upstream: named at parse time, found when merged */
    ngx_http_upstream_srv_conf_t   *prefill_upstream;
    ngx_str_t                       prefill_name;
    ngx_str_t                       prefill_file;   /* where it was named */
    ngx_uint_t                      prefill_line;
} ngx_http_dynamo_loc_conf_t;


/* one candidate worker of a routing decision, best first */
typedef struct {
    ngx_str_t                       name;           /* "host:port" */
    struct sockaddr                *sockaddr;
    socklen_t                       socklen;
    uint64_t                        worker_id;      /* 0: not registered */
    ngx_uint_t                      overlap_blocks;
    double                          cost;
} ngx_http_dynamo_pick_t;


#define NGX_HTTP_DYNAMO_EP_CHAT         NGX_HTTP_DYNAMO_OAI_CHAT
#define NGX_HTTP_DYNAMO_EP_COMPLETIONS  NGX_HTTP_DYNAMO_OAI_COMPLETIONS


/* per request, in r's module ctx */
typedef struct {
    ngx_uint_t                      endpoint;       /* EP_* */
    ngx_http_dynamo_model_t        *model;
    ngx_http_dynamo_oai_req_t       req;            /* freed by a pool
                                                       cleanup */
    ngx_str_t                       id;             /* "chatcmpl-..." */
    time_t                          created;

    uint32_t                       *prompt_ids;     /* from r->pool */
    size_t                          n_prompt_ids;
    uint64_t                       *block_hashes;   /* seq hashes */
    size_t                          n_blocks;
    ngx_uint_t                      max_tokens;     /* sent to the worker */

    ngx_http_dynamo_pick_t         *picks;
    ngx_uint_t                      npicks;
    ngx_uint_t                      pick;           /* the one in use */
    struct ngx_http_dynamo_load_s  *load;           /* counted for pick */

    /* the prefill worker passed to the decode worker as a hint; empty:
       none. Its uncached tokens are counted in prefill_load until the
       first token arrives or the request ends (prefill_release). */
    ngx_str_t                       prefill;
    ngx_uint_t                      prefill_overlap;    /* blocks */
    struct ngx_http_dynamo_load_s  *prefill_load;
    ngx_atomic_int_t                prefill_tokens;

    ngx_http_dynamo_stream_t       *stream;         /* destroyed by a pool
                                                       cleanup */
    ngx_uint_t                      prompt_tokens;
    ngx_uint_t                      completion_tokens;
    ngx_uint_t                      cached_tokens;

    unsigned                        done:1;         /* response complete */
    unsigned                        failed:1;
} ngx_http_dynamo_ctx_t;


char *ngx_http_dynamo_model(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_dynamo_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_dynamo_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_dynamo_upstream(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_dynamo_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_dynamo_prefill_upstream(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
/* merge time: the upstream named by dynamo_prefill_upstream, checked */
char *ngx_http_dynamo_prefill_check(ngx_conf_t *cf,
    ngx_http_dynamo_loc_conf_t *dlcf);
char *ngx_http_dynamo_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_dynamo_thread_pool(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

ngx_int_t ngx_http_dynamo_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_dynamo_metrics_handler(ngx_http_request_t *r);

/* ngx_http_dynamo_models.c: load tokenizer, template, config.json */
ngx_int_t ngx_http_dynamo_models_init(ngx_conf_t *cf,
    ngx_http_dynamo_main_conf_t *dmcf);
ngx_http_dynamo_model_t *ngx_http_dynamo_model_find(
    ngx_http_dynamo_main_conf_t *dmcf, u_char *name, size_t len);

/* ngx_http_dynamo_route.c: fills ctx->picks (NGX_DECLINED: no worker) */
ngx_int_t ngx_http_dynamo_route(ngx_http_request_t *r,
    ngx_http_dynamo_ctx_t *ctx);
/* takes back the prefill worker's load counted for ctx; once */
void ngx_http_dynamo_prefill_release(ngx_http_dynamo_ctx_t *ctx);

/* ngx_http_dynamo_upstream.c: proxies ctx's request to ctx->picks */
ngx_int_t ngx_http_dynamo_upstream_start(ngx_http_request_t *r,
    ngx_http_dynamo_ctx_t *ctx);

/* ngx_http_dynamo_balancer.c: the dynamo_upstream peer selection */
ngx_int_t ngx_http_dynamo_balancer_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);

/* ngx_http_dynamo_error_filter.c: OpenAI error JSON for every error
   response of a dynamo_pass location, nginx's own included */
ngx_int_t ngx_http_dynamo_error_filter_init(ngx_conf_t *cf);

/* ngx_http_dynamo_variables.c */
ngx_int_t ngx_http_dynamo_add_variables(ngx_conf_t *cf);

ngx_int_t ngx_http_dynamo_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_str_t *body);
ngx_int_t ngx_http_dynamo_send_error(ngx_http_request_t *r,
    ngx_uint_t status, char *type, ngx_str_t *message);
/* param, code: NULL gives null */
ngx_int_t ngx_http_dynamo_send_oai_error(ngx_http_request_t *r,
    ngx_uint_t status, char *type, char *param, char *code,
    ngx_str_t *message);
ngx_int_t ngx_http_dynamo_add_header(ngx_http_request_t *r, char *key,
    ngx_str_t *value);
ngx_int_t ngx_http_dynamo_set_allow(ngx_http_request_t *r, ngx_str_t *allow);
size_t ngx_http_dynamo_json_escape(u_char *dst, u_char *src, size_t size);


#include "ngx_http_dynamo_shm.h"


extern ngx_module_t  ngx_dynamo_module;


#endif /* _NGX_HTTP_DYNAMO_MODULE_H_INCLUDED_ */
