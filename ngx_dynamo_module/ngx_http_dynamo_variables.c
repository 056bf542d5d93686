
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * Variables for log_format and the like: $dynamo_worker,
 * $dynamo_prefill_worker, $dynamo_overlap_blocks, $dynamo_prompt_tokens,
 * $dynamo_completion_tokens, $dynamo_cached_tokens, $dynamo_model.
 */


#include "ngx_http_dynamo_module.h"


static ngx_http_dynamo_pick_t *ngx_http_dynamo_variable_pick(
    ngx_http_request_t *r);
static void ngx_http_dynamo_variable_str(ngx_http_variable_value_t *v,
    ngx_str_t *s);
static ngx_int_t ngx_http_dynamo_variable_worker(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_dynamo_variable_prefill(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_dynamo_variable_overlap(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_dynamo_variable_uint(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_dynamo_variable_model(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_dynamo_variable_number(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, ngx_uint_t n);


static ngx_http_variable_t  ngx_http_dynamo_vars[] = {

    { ngx_string("dynamo_worker"), NULL,
      ngx_http_dynamo_variable_worker, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dynamo_prefill_worker"), NULL,
      ngx_http_dynamo_variable_prefill, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dynamo_overlap_blocks"), NULL,
      ngx_http_dynamo_variable_overlap, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dynamo_prompt_tokens"), NULL,
      ngx_http_dynamo_variable_uint,
      offsetof(ngx_http_dynamo_ctx_t, prompt_tokens),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dynamo_completion_tokens"), NULL,
      ngx_http_dynamo_variable_uint,
      offsetof(ngx_http_dynamo_ctx_t, completion_tokens),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dynamo_cached_tokens"), NULL,
      ngx_http_dynamo_variable_uint,
      offsetof(ngx_http_dynamo_ctx_t, cached_tokens),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dynamo_model"), NULL,
      ngx_http_dynamo_variable_model, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_dynamo_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_dynamo_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* the worker in use, or NULL before routing and outside dynamo_pass */

static ngx_http_dynamo_pick_t *
ngx_http_dynamo_variable_pick(ngx_http_request_t *r)
{
    ngx_http_dynamo_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_dynamo_module);

    if (ctx == NULL || ctx->picks == NULL || ctx->pick >= ctx->npicks) {
        return NULL;
    }

    return &ctx->picks[ctx->pick];
}


static ngx_int_t
ngx_http_dynamo_variable_worker(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_dynamo_pick_t  *pick;

    pick = ngx_http_dynamo_variable_pick(r);

    if (pick == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_dynamo_variable_str(v, &pick->name);

    return NGX_OK;
}


/* the prefill worker passed as a hint; empty when none */

static ngx_int_t
ngx_http_dynamo_variable_prefill(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_dynamo_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_dynamo_module);

    if (ctx == NULL || ctx->picks == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_dynamo_variable_str(v, &ctx->prefill);

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynamo_variable_overlap(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_dynamo_pick_t  *pick;

    pick = ngx_http_dynamo_variable_pick(r);

    if (pick == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    return ngx_http_dynamo_variable_number(r, v, pick->overlap_blocks);
}


static ngx_int_t
ngx_http_dynamo_variable_uint(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_uint_t              n;
    ngx_http_dynamo_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_dynamo_module);

    if (ctx == NULL || ctx->model == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    n = *(ngx_uint_t *) ((u_char *) ctx + data);

    return ngx_http_dynamo_variable_number(r, v, n);
}


static ngx_int_t
ngx_http_dynamo_variable_model(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_dynamo_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_dynamo_module);

    if (ctx == NULL || ctx->model == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_dynamo_variable_str(v, &ctx->model->name);

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynamo_variable_number(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, ngx_uint_t n)
{
    u_char     *p;
    ngx_str_t   str;

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    str.data = p;
    str.len = ngx_sprintf(p, "%ui", n) - p;

    ngx_http_dynamo_variable_str(v, &str);

    return NGX_OK;
}


static void
ngx_http_dynamo_variable_str(ngx_http_variable_value_t *v, ngx_str_t *s)
{
    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = s->data;
}
