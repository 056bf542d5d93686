
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * Content handler of dynamo_pass locations: the OpenAI endpoints, /health.
 */


#include "ngx_http_dynamo_prepare.h"


typedef struct {
    ngx_http_dynamo_ctx_t           ctx;        /* first: the module ctx */
    ngx_http_dynamo_prep_t          prep;
} ngx_http_dynamo_request_t;


static ngx_int_t ngx_http_dynamo_generate(ngx_http_request_t *r,
    ngx_uint_t endpoint);
static void ngx_http_dynamo_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_dynamo_process(ngx_http_request_t *r);
static ngx_int_t ngx_http_dynamo_body(ngx_http_request_t *r, u_char **data,
    size_t *len);
static void ngx_http_dynamo_req_cleanup(void *data);
static ngx_int_t ngx_http_dynamo_set_id(ngx_http_request_t *r,
    ngx_http_dynamo_ctx_t *ctx);
static ngx_int_t ngx_http_dynamo_start(ngx_http_request_t *r,
    ngx_http_dynamo_request_t *dr);
#if (NGX_THREADS)
static ngx_int_t ngx_http_dynamo_post_task(ngx_http_request_t *r,
    ngx_http_dynamo_request_t *dr, ngx_thread_pool_t *tp);
static void ngx_http_dynamo_thread_handler(void *data, ngx_log_t *log);
static void ngx_http_dynamo_thread_event_handler(ngx_event_t *ev);
#endif
static ngx_int_t ngx_http_dynamo_models_list(ngx_http_request_t *r);
static ngx_int_t ngx_http_dynamo_model_get(ngx_http_request_t *r,
    ngx_str_t *id);
static u_char *ngx_http_dynamo_model_json(u_char *p,
    ngx_http_dynamo_model_t *m, ngx_str_t *id);
static ngx_int_t ngx_http_dynamo_model_not_found(ngx_http_request_t *r,
    u_char *name, size_t len);
static ngx_int_t ngx_http_dynamo_health(ngx_http_request_t *r);
static ngx_int_t ngx_http_dynamo_not_found(ngx_http_request_t *r);
static ngx_int_t ngx_http_dynamo_not_allowed(ngx_http_request_t *r,
    ngx_str_t *allow);
static ngx_int_t ngx_http_dynamo_request_error(ngx_http_request_t *r,
    ngx_uint_t status, char *reason);
static ngx_int_t ngx_http_dynamo_error(ngx_http_request_t *r,
    ngx_uint_t status, char *param, char *code, const char *fmt, ...);


#define NGX_HTTP_DYNAMO_MODEL_JSON_LEN                                       \
    (sizeof("{\"id\":\"\",\"object\":\"model\",\"created\":,"                \
            "\"owned_by\":\"ngx_dynamo\",\"max_model_len\":}") - 1           \
     + 2 * NGX_INT_T_LEN)


static ngx_str_t  ngx_http_dynamo_health_uri = ngx_string("/health");
static ngx_str_t  ngx_http_dynamo_models_uri = ngx_string("/v1/models");
static ngx_str_t  ngx_http_dynamo_chat_uri =
    ngx_string("/v1/chat/completions");
static ngx_str_t  ngx_http_dynamo_completions_uri =
    ngx_string("/v1/completions");
static ngx_str_t  ngx_http_dynamo_json_type = ngx_string("application/json");
static ngx_str_t  ngx_http_dynamo_allow_get = ngx_string("GET, HEAD");
static ngx_str_t  ngx_http_dynamo_allow_post = ngx_string("POST");

static u_char     ngx_http_dynamo_hex[] = "0123456789abcdef";


#define ngx_http_dynamo_uri_is(r, s)                                         \
    ((r)->uri.len == (s).len                                                 \
     && ngx_strncmp((r)->uri.data, (s).data, (s).len) == 0)


ngx_int_t
ngx_http_dynamo_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;
    ngx_str_t  id;

    if (ngx_http_dynamo_uri_is(r, ngx_http_dynamo_chat_uri)) {
        return ngx_http_dynamo_generate(r, NGX_HTTP_DYNAMO_EP_CHAT);
    }

    if (ngx_http_dynamo_uri_is(r, ngx_http_dynamo_completions_uri)) {
        return ngx_http_dynamo_generate(r, NGX_HTTP_DYNAMO_EP_COMPLETIONS);
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_dynamo_uri_is(r, ngx_http_dynamo_health_uri)) {
        return ngx_http_dynamo_health(r);
    }

    if (ngx_http_dynamo_uri_is(r, ngx_http_dynamo_models_uri)) {
        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            return ngx_http_dynamo_not_allowed(r, &ngx_http_dynamo_allow_get);
        }

        return ngx_http_dynamo_models_list(r);
    }

    if (r->uri.len > ngx_http_dynamo_models_uri.len + 1
        && ngx_strncmp(r->uri.data, ngx_http_dynamo_models_uri.data,
                       ngx_http_dynamo_models_uri.len)
           == 0
        && r->uri.data[ngx_http_dynamo_models_uri.len] == '/')
    {
        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            return ngx_http_dynamo_not_allowed(r, &ngx_http_dynamo_allow_get);
        }

        id.data = r->uri.data + ngx_http_dynamo_models_uri.len + 1;
        id.len = r->uri.len - ngx_http_dynamo_models_uri.len - 1;

        return ngx_http_dynamo_model_get(r, &id);
    }

    return ngx_http_dynamo_not_found(r);
}


static ngx_int_t
ngx_http_dynamo_generate(ngx_http_request_t *r, ngx_uint_t endpoint)
{
    ngx_int_t                   rc;
    ngx_http_dynamo_request_t  *dr;

    if (r->method != NGX_HTTP_POST) {
        rc = ngx_http_discard_request_body(r);

        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_dynamo_not_allowed(r, &ngx_http_dynamo_allow_post);
    }

    dr = ngx_pcalloc(r->pool, sizeof(ngx_http_dynamo_request_t));
    if (dr == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    dr->ctx.endpoint = endpoint;

    ngx_http_set_ctx(r, &dr->ctx, ngx_dynamo_module);

    rc = ngx_http_read_client_request_body(r, ngx_http_dynamo_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_dynamo_body_handler(ngx_http_request_t *r)
{
    ngx_http_finalize_request(r, ngx_http_dynamo_process(r));
}


static ngx_int_t
ngx_http_dynamo_process(ngx_http_request_t *r)
{
    int                           rc;
    u_char                       *body;
    size_t                        len, text;
    ngx_pool_cleanup_t           *cln;
    ngx_http_dynamo_ctx_t        *ctx;
    ngx_http_dynamo_model_t      *m;
    ngx_http_dynamo_request_t    *dr;
    ngx_http_dynamo_oai_err_t     err;
    ngx_http_dynamo_oai_req_t    *req;
    ngx_http_dynamo_main_conf_t  *dmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_dynamo_module);
    dr = (ngx_http_dynamo_request_t *) ctx;
    req = &ctx->req;

    if (ngx_http_dynamo_body(r, &body, &len) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_dynamo_oai_parse(ctx->endpoint, (char *) body, len, req,
                                   &err);
    if (rc != 0) {
        err.message[sizeof(err.message) - 1] = '\0';
        err.param[sizeof(err.param) - 1] = '\0';
        err.code[sizeof(err.code) - 1] = '\0';

        return ngx_http_dynamo_error(r, err.status ? err.status
                                                   : NGX_HTTP_BAD_REQUEST,
                                     err.param[0] ? err.param : NULL,
                                     err.code[0] ? err.code : NULL,
                                     "%s", err.message);
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_http_dynamo_oai_free(req);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_dynamo_req_cleanup;
    cln->data = req;

    dmcf = ngx_http_get_module_main_conf(r, ngx_dynamo_module);

    m = ngx_http_dynamo_model_find(dmcf, (u_char *) req->model.data,
                                   req->model.len);
    if (m == NULL) {
        return ngx_http_dynamo_model_not_found(r, (u_char *) req->model.data,
                                               req->model.len);
    }

    ctx->model = m;

    if (ctx->endpoint == NGX_HTTP_DYNAMO_EP_CHAT && m->chat_template == NULL) {
        return ngx_http_dynamo_error(r, NGX_HTTP_BAD_REQUEST, "messages", NULL,
                                     "The model `%V` has no chat template; "
                                     "use /v1/completions", &m->name);
    }

    if (ngx_http_dynamo_set_id(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    dr->prep.model = m;
    dr->prep.req = req;

    if (ngx_http_dynamo_prepare_cleanup_add(r->pool, &dr->prep) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the text to template and tokenize, near enough */

    if (ctx->endpoint == NGX_HTTP_DYNAMO_EP_CHAT) {
        text = len;

    } else if (req->has_prompt_ids) {
        text = 0;

    } else {
        text = req->prompt.len;
    }

#if (NGX_THREADS)

    if (dmcf->thread_pool && text >= dmcf->thread_min) {
        return ngx_http_dynamo_post_task(r, dr, dmcf->thread_pool);
    }

#else
    (void) text;
#endif

    ngx_http_dynamo_prepare(&dr->prep);

    return ngx_http_dynamo_start(r, dr);
}


static ngx_int_t
ngx_http_dynamo_body(ngx_http_request_t *r, u_char **data, size_t *len)
{
    u_char       *p;
    off_t         size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    *data = (u_char *) "";
    *len = 0;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && !cl->buf->in_file) {
        *data = cl->buf->pos;
        *len = cl->buf->last - cl->buf->pos;
        return NGX_OK;
    }

    size = 0;

    for ( /* void */ ; cl; cl = cl->next) {
        b = cl->buf;
        size += b->in_file ? b->file_last - b->file_pos : b->last - b->pos;
    }

    p = ngx_pnalloc(r->pool, (size_t) size + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *data = p;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p,
                              (size_t) (b->file_last - b->file_pos),
                              b->file_pos);

            if (n != b->file_last - b->file_pos) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "dynamo: request body file read short");
                return NGX_ERROR;
            }

            p += n;
            continue;
        }

        p = ngx_cpymem(p, b->pos, b->last - b->pos);
    }

    *len = p - *data;

    return NGX_OK;
}


static void
ngx_http_dynamo_req_cleanup(void *data)
{
    ngx_http_dynamo_oai_free(data);
}


static ngx_int_t
ngx_http_dynamo_set_id(ngx_http_request_t *r, ngx_http_dynamo_ctx_t *ctx)
{
    u_char      *p;
    uint32_t     v;
    ngx_uint_t   i, j;

    ctx->id.len = (ctx->endpoint == NGX_HTTP_DYNAMO_EP_CHAT
                   ? sizeof("chatcmpl-") - 1 : sizeof("cmpl-") - 1) + 32;

    ctx->id.data = ngx_pnalloc(r->pool, ctx->id.len + 1);
    if (ctx->id.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(ctx->id.data,
                   ctx->endpoint == NGX_HTTP_DYNAMO_EP_CHAT
                   ? "chatcmpl-" : "cmpl-",
                   ctx->endpoint == NGX_HTTP_DYNAMO_EP_CHAT
                   ? sizeof("chatcmpl-") - 1 : sizeof("cmpl-") - 1);

    for (i = 0; i < 8; i++) {
        v = (uint32_t) ngx_random();

        for (j = 0; j < 4; j++) {
            *p++ = ngx_http_dynamo_hex[v & 0xf];
            v >>= 4;
        }
    }

    *p = '\0';

    ctx->created = ngx_time();

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynamo_start(ngx_http_request_t *r, ngx_http_dynamo_request_t *dr)
{
    char                     *param;
    ngx_int_t                 rc;
    ngx_uint_t                n, context;
    ngx_http_dynamo_ctx_t    *ctx;
    ngx_http_dynamo_prep_t   *prep;

    ctx = &dr->ctx;
    prep = &dr->prep;

    if (prep->status) {
        return ngx_http_dynamo_error(r, prep->status, prep->param, NULL,
                                     "%s", prep->message);
    }

    ctx->prompt_ids = prep->ids;
    ctx->n_prompt_ids = prep->n_ids;
    ctx->block_hashes = prep->hashes;
    ctx->n_blocks = prep->n_blocks;
    ctx->prompt_tokens = prep->n_ids;

    n = prep->n_ids;
    context = ctx->model->context;
    param = (ctx->endpoint == NGX_HTTP_DYNAMO_EP_CHAT) ? "messages" : "prompt";

    if (n >= context) {
        return ngx_http_dynamo_error(r, NGX_HTTP_BAD_REQUEST, param,
                                     "context_length_exceeded",
                                     "This model's maximum context length "
                                     "is %ui tokens. However, your request "
                                     "has %ui input tokens. Please reduce "
                                     "the length of the input messages.",
                                     context, n);
    }

    if (ctx->req.max_tokens >= 0) {
        if ((uint64_t) ctx->req.max_tokens + n > context) {
            return ngx_http_dynamo_error(r, NGX_HTTP_BAD_REQUEST, param,
                                         "context_length_exceeded",
                                         "This model's maximum context "
                                         "length is %ui tokens. However, "
                                         "you requested %uL tokens (%ui in "
                                         "the messages, %L in the "
                                         "completion). Please reduce the "
                                         "length of the messages or "
                                         "completion.",
                                         context,
                                         (uint64_t) ctx->req.max_tokens + n,
                                         n, ctx->req.max_tokens);
        }

        ctx->max_tokens = (ngx_uint_t) ctx->req.max_tokens;

    } else {
        ctx->max_tokens = context - n;
    }

    rc = ngx_http_dynamo_route(r, ctx);

    if (rc == NGX_DECLINED) {
        return ngx_http_dynamo_error(r, NGX_HTTP_SERVICE_UNAVAILABLE, NULL,
                                     NULL,
                                     "No worker is available for model %V",
                                     &ctx->model->name);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_dynamo_upstream_start(r, ctx);
}


#if (NGX_THREADS)

static ngx_int_t
ngx_http_dynamo_post_task(ngx_http_request_t *r, ngx_http_dynamo_request_t *dr,
    ngx_thread_pool_t *tp)
{
    ngx_thread_task_t          *task;
    ngx_http_dynamo_request_t **data;

    task = ngx_thread_task_alloc(r->pool, sizeof(ngx_http_dynamo_request_t *));
    if (task == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    data = task->ctx;
    *data = dr;

    task->handler = ngx_http_dynamo_thread_handler;
    task->event.data = r;
    task->event.handler = ngx_http_dynamo_thread_event_handler;

    if (ngx_thread_task_post(tp, task) != NGX_OK) {
        /* the queue is full: do it here */
        ngx_http_dynamo_prepare(&dr->prep);
        return ngx_http_dynamo_start(r, dr);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "dynamo: prompt of model \"%V\" to the thread pool",
                   &dr->ctx.model->name);

    r->main->blocked++;
    r->aio = 1;

    /* finalized (NGX_DONE below) once, and again when the task is done */
    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_dynamo_thread_handler(void *data, ngx_log_t *log)
{
    ngx_http_dynamo_request_t  **dr = data;

    ngx_http_dynamo_prepare(&(*dr)->prep);
}


static void
ngx_http_dynamo_thread_event_handler(ngx_event_t *ev)
{
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_dynamo_ctx_t      *ctx;

    r = ev->data;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    r->main->blocked--;
    r->aio = 0;

    ctx = ngx_http_get_module_ctx(r, ngx_dynamo_module);

    if (c->error) {
        ngx_http_finalize_request(r, NGX_HTTP_CLIENT_CLOSED_REQUEST);

    } else {
        ngx_http_finalize_request(r,
            ngx_http_dynamo_start(r, (ngx_http_dynamo_request_t *) ctx));
    }

    ngx_http_run_posted_requests(c);
}

#endif


static ngx_int_t
ngx_http_dynamo_models_list(ngx_http_request_t *r)
{
    u_char                       *p;
    size_t                        len;
    ngx_str_t                     body, *a;
    ngx_uint_t                    i, j;
    ngx_http_dynamo_model_t      *m;
    ngx_http_dynamo_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_dynamo_module);
    m = dmcf->models.elts;

    len = sizeof("{\"object\":\"list\",\"data\":[]}") - 1;

    for (i = 0; i < dmcf->models.nelts; i++) {
        len += NGX_HTTP_DYNAMO_MODEL_JSON_LEN + 1 + m[i].name.len;

        a = m[i].aliases.elts;

        for (j = 0; j < m[i].aliases.nelts; j++) {
            len += NGX_HTTP_DYNAMO_MODEL_JSON_LEN + 1 + a[j].len;
        }
    }

    body.data = ngx_pnalloc(r->pool, len);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(body.data, "{\"object\":\"list\",\"data\":[",
                   sizeof("{\"object\":\"list\",\"data\":[") - 1);

    for (i = 0; i < dmcf->models.nelts; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_http_dynamo_model_json(p, &m[i], &m[i].name);

        a = m[i].aliases.elts;

        for (j = 0; j < m[i].aliases.nelts; j++) {
            *p++ = ',';
            p = ngx_http_dynamo_model_json(p, &m[i], &a[j]);
        }
    }

    p = ngx_cpymem(p, "]}", 2);

    body.len = p - body.data;

    return ngx_http_dynamo_send(r, NGX_HTTP_OK, &ngx_http_dynamo_json_type,
                                &body);
}


static ngx_int_t
ngx_http_dynamo_model_get(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_str_t                     body;
    ngx_http_dynamo_model_t      *m;
    ngx_http_dynamo_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_dynamo_module);

    m = ngx_http_dynamo_model_find(dmcf, id->data, id->len);
    if (m == NULL) {
        return ngx_http_dynamo_model_not_found(r, id->data, id->len);
    }

    body.data = ngx_pnalloc(r->pool, NGX_HTTP_DYNAMO_MODEL_JSON_LEN + id->len);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body.len = ngx_http_dynamo_model_json(body.data, m, id) - body.data;

    return ngx_http_dynamo_send(r, NGX_HTTP_OK, &ngx_http_dynamo_json_type,
                                &body);
}


/* served names are checked at configuration: nothing to escape */

static u_char *
ngx_http_dynamo_model_json(u_char *p, ngx_http_dynamo_model_t *m,
    ngx_str_t *id)
{
    return ngx_sprintf(p, "{\"id\":\"%V\",\"object\":\"model\","
                       "\"created\":%T,\"owned_by\":\"ngx_dynamo\","
                       "\"max_model_len\":%ui}",
                       id, m->created, m->context);
}


static ngx_int_t
ngx_http_dynamo_model_not_found(ngx_http_request_t *r, u_char *name,
    size_t len)
{
    ngx_str_t  s;

    s.data = name;
    s.len = len;

    return ngx_http_dynamo_error(r, NGX_HTTP_NOT_FOUND, "model",
                                 "model_not_found",
                                 "The model `%V` does not exist.", &s);
}


static ngx_int_t
ngx_http_dynamo_health(ngx_http_request_t *r)
{
    ngx_str_t   body;
    ngx_uint_t  n;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_dynamo_not_allowed(r, &ngx_http_dynamo_allow_get);
    }

    n = ngx_http_dynamo_route_usable(r);

    body.data = ngx_pnalloc(r->pool,
                            sizeof("{\"status\":\"unavailable\",\"workers\":}")
                            + NGX_INT_T_LEN);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body.len = ngx_sprintf(body.data, "{\"status\":\"%s\",\"workers\":%ui}",
                           n ? "ok" : "unavailable", n)
               - body.data;

    return ngx_http_dynamo_send(r, n ? NGX_HTTP_OK
                                     : NGX_HTTP_SERVICE_UNAVAILABLE,
                                &ngx_http_dynamo_json_type, &body);
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
    /* "Invalid URL (GET /v1/foo)", as the OpenAI API words it */

    return ngx_http_dynamo_error(r, status, NULL, NULL, "%s (%V %V)", reason,
                                 &r->method_name, &r->uri);
}


static ngx_int_t
ngx_http_dynamo_error(ngx_http_request_t *r, ngx_uint_t status, char *param,
    char *code, const char *fmt, ...)
{
    char       *type;
    u_char     *p, buf[1024];
    va_list     args;
    ngx_str_t   message;

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);

    message.len = p - buf;

    message.data = ngx_pnalloc(r->pool, message.len);
    if (message.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(message.data, buf, message.len);

    type = (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) ? "server_error"
                                                      : "invalid_request_error";

    return ngx_http_dynamo_send_oai_error(r, status, type, param, code,
                                          &message);
}
