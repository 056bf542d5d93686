
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * The upstream protocol handler: sends the token request to the picked
 * worker (worker/PROTOCOL.md) over nginx's upstream machinery and turns
 * its NDJSON frames into the client's SSE events or JSON body.
 */


#include "ngx_http_dynamo_upstream.h"


static ngx_int_t ngx_http_dynamo_create_request(ngx_http_request_t *r);
static ngx_int_t ngx_http_dynamo_reinit_request(ngx_http_request_t *r);
static ngx_int_t ngx_http_dynamo_process_status_line(ngx_http_request_t *r);
static ngx_int_t ngx_http_dynamo_process_header(ngx_http_request_t *r);
static ngx_int_t ngx_http_dynamo_headers_done(ngx_http_request_t *r,
    ngx_http_dynamo_up_t *st);
static ngx_int_t ngx_http_dynamo_collect(ngx_http_request_t *r,
    ngx_http_dynamo_up_t *st);
static ngx_int_t ngx_http_dynamo_error_body(ngx_http_request_t *r,
    ngx_http_dynamo_up_t *st);
static ngx_int_t ngx_http_dynamo_answer_error(ngx_http_request_t *r,
    ngx_http_dynamo_up_t *st, ngx_uint_t status, const char *message,
    ngx_str_t *param);
static ngx_int_t ngx_http_dynamo_create_stream(ngx_http_request_t *r,
    ngx_http_dynamo_up_t *st);
static ngx_int_t ngx_http_dynamo_json_answer(ngx_http_request_t *r,
    ngx_http_dynamo_up_t *st, ngx_uint_t status);
static ngx_int_t ngx_http_dynamo_input_filter_init(void *data);
static ngx_int_t ngx_http_dynamo_input_filter(void *data, ssize_t bytes);
static void ngx_http_dynamo_abort_request(ngx_http_request_t *r);
static void ngx_http_dynamo_finalize_request(ngx_http_request_t *r,
    ngx_int_t rc);
static ngx_int_t ngx_http_dynamo_send_now(ngx_http_request_t *r,
    u_char *data, size_t len, ngx_uint_t last);
static void ngx_http_dynamo_account(ngx_http_dynamo_up_t *st);
static void ngx_http_dynamo_up_cleanup(void *data);
static u_char *ngx_http_dynamo_write_ids(u_char *p, uint32_t *ids, size_t n);


static ngx_str_t  ngx_http_dynamo_sse_type = ngx_string("text/event-stream");
static ngx_str_t  ngx_http_dynamo_no_cache = ngx_string("no-cache");
static ngx_str_t  ngx_http_dynamo_no = ngx_string("no");
static ngx_str_t  ngx_http_dynamo_json_type = ngx_string("application/json");


ngx_int_t
ngx_http_dynamo_upstream_start(ngx_http_request_t *r,
    ngx_http_dynamo_ctx_t *ctx)
{
    u_char                      *p;
    ngx_http_upstream_t         *u;
    ngx_pool_cleanup_t          *cln;
    ngx_http_dynamo_up_t        *st;
    ngx_http_dynamo_loc_conf_t  *dlcf;

    dlcf = ngx_http_get_module_loc_conf(r, ngx_dynamo_module);

    if (dlcf->upstream == NULL || ctx->npicks == 0) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    st = ngx_pcalloc(r->pool, sizeof(ngx_http_dynamo_up_t));
    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_dynamo_up_cleanup;
    cln->data = st;

    st->request = r;
    st->ctx = ctx;
    st->content_length = -1;

    /* the stream wants NUL-terminated strings */

    p = ngx_pnalloc(r->pool, ctx->id.len + 1 + ctx->req.model.len + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st->conf.id = (const char *) p;
    p = ngx_cpymem(p, ctx->id.data, ctx->id.len);
    *p++ = '\0';

    st->conf.model = (const char *) p;
    if (ctx->req.model.len) {
        p = ngx_cpymem(p, ctx->req.model.data, ctx->req.model.len);
    }
    *p = '\0';

    st->conf.req = &ctx->req;
    st->conf.tok = ctx->model ? ctx->model->tokenizer : NULL;
    st->conf.prompt_ids = ctx->prompt_ids;
    st->conf.n_prompt_ids = ctx->n_prompt_ids;
    st->conf.created = ctx->created;

    if (ngx_http_upstream_create(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    u = r->upstream;

    u->conf = &dlcf->upstream_conf;
    u->output.tag = (ngx_buf_tag_t) &ngx_dynamo_module;

    u->create_request = ngx_http_dynamo_create_request;
    u->reinit_request = ngx_http_dynamo_reinit_request;
    u->process_header = ngx_http_dynamo_process_status_line;
    u->abort_request = ngx_http_dynamo_abort_request;
    u->finalize_request = ngx_http_dynamo_finalize_request;

    u->buffering = 0;

    u->input_filter_init = ngx_http_dynamo_input_filter_init;
    u->input_filter = ngx_http_dynamo_input_filter;
    u->input_filter_ctx = st;

    r->main->count++;

    ngx_http_upstream_init(r);

    return NGX_DONE;
}


static ngx_int_t
ngx_http_dynamo_create_request(ngx_http_request_t *r)
{
    u_char                      *p, *sampling;
    size_t                       len, slen, i;
    ngx_buf_t                   *hb, *bb;
    ngx_chain_t                 *hcl, *bcl;
    ngx_http_dynamo_ctx_t       *ctx;
    ngx_http_dynamo_loc_conf_t  *dlcf;

    ctx = ngx_http_get_module_ctx(r, ngx_dynamo_module);
    dlcf = ngx_http_get_module_loc_conf(r, ngx_dynamo_module);

    sampling = NULL;
    slen = 0;

    if (ctx->req.sampling) {
        sampling = (u_char *) json_dumps(ctx->req.sampling, JSON_COMPACT);
        if (sampling == NULL) {
            return NGX_ERROR;
        }

        slen = ngx_strlen(sampling);
    }

    /* an upper bound of the body */

    len = sizeof("{\"v\":1,\"request_id\":\"\",\"token_ids\":[],"
                 "\"max_tokens\":,\"sampling\":,\"logprobs\":,"
                 "\"ignore_eos\":true,\"stop_token_ids\":[]}") - 1
          + ctx->id.len
          + ctx->n_prompt_ids * (NGX_INT32_LEN + 1)
          + NGX_INT_T_LEN
          + slen
          + NGX_INT_T_LEN
          + ctx->req.nstop_ids * (NGX_INT32_LEN + 1);

    if (ctx->prefill.len) {
        len += sizeof(",\"hints\":{\"prefill_worker\":\"\"}") - 1
               + ngx_http_dynamo_json_escape(NULL, ctx->prefill.data,
                                             ctx->prefill.len);
    }

    bb = ngx_create_temp_buf(r->pool, len);
    if (bb == NULL) {
        ngx_free(sampling);
        return NGX_ERROR;
    }

    p = ngx_cpymem(bb->last, "{\"v\":1", sizeof("{\"v\":1") - 1);

    if (ctx->id.len) {
        p = ngx_sprintf(p, ",\"request_id\":\"%V\"", &ctx->id);
    }

    p = ngx_cpymem(p, ",\"token_ids\":[", sizeof(",\"token_ids\":[") - 1);
    p = ngx_http_dynamo_write_ids(p, ctx->prompt_ids, ctx->n_prompt_ids);
    p = ngx_sprintf(p, "],\"max_tokens\":%ui", ctx->max_tokens);

    if (sampling) {
        p = ngx_cpymem(p, ",\"sampling\":", sizeof(",\"sampling\":") - 1);
        p = ngx_cpymem(p, sampling, slen);
        ngx_free(sampling);
    }

    if (ctx->req.logprobs >= 0) {
        p = ngx_sprintf(p, ",\"logprobs\":%d", ctx->req.logprobs);
    }

    if (ctx->req.ignore_eos) {
        p = ngx_cpymem(p, ",\"ignore_eos\":true",
                       sizeof(",\"ignore_eos\":true") - 1);
    }

    if (ctx->req.nstop_ids) {
        p = ngx_cpymem(p, ",\"stop_token_ids\":[",
                       sizeof(",\"stop_token_ids\":[") - 1);

        for (i = 0; i < ctx->req.nstop_ids; i++) {
            if (i) {
                *p++ = ',';
            }

            p = ngx_sprintf(p, "%uD", ctx->req.stop_ids[i]);
        }

        *p++ = ']';
    }

    /* dynamo_prefill_upstream's choice; kept by every retry */

    if (ctx->prefill.len) {
        p = ngx_cpymem(p, ",\"hints\":{\"prefill_worker\":\"",
                       sizeof(",\"hints\":{\"prefill_worker\":\"") - 1);
        p += ngx_http_dynamo_json_escape(p, ctx->prefill.data,
                                         ctx->prefill.len);
        *p++ = '"';
        *p++ = '}';
    }

    *p++ = '}';

    bb->last = p;
    bb->last_buf = 1;

    /* the head, now that the body's length is known */

    len = sizeof("POST /v1/generate HTTP/1.1" CRLF "Host: ") - 1
          + dlcf->upstream->host.len
          + sizeof(CRLF "Content-Type: application/json" CRLF
                   "Content-Length: ") - 1
          + NGX_OFF_T_LEN + sizeof(CRLF CRLF) - 1;

    hb = ngx_create_temp_buf(r->pool, len);
    if (hb == NULL) {
        return NGX_ERROR;
    }

    hb->last = ngx_sprintf(hb->last,
                           "POST /v1/generate HTTP/1.1" CRLF
                           "Host: %V" CRLF
                           "Content-Type: application/json" CRLF
                           "Content-Length: %uz" CRLF CRLF,
                           &dlcf->upstream->host,
                           (size_t) (bb->last - bb->pos));

    hcl = ngx_alloc_chain_link(r->pool);
    if (hcl == NULL) {
        return NGX_ERROR;
    }

    bcl = ngx_alloc_chain_link(r->pool);
    if (bcl == NULL) {
        return NGX_ERROR;
    }

    hcl->buf = hb;
    hcl->next = bcl;
    bcl->buf = bb;
    bcl->next = NULL;

    r->upstream->request_bufs = hcl;

    return NGX_OK;
}


static u_char *
ngx_http_dynamo_write_ids(u_char *p, uint32_t *ids, size_t n)
{
    u_char    tmp[NGX_INT32_LEN], *t;
    size_t    i;
    uint32_t  v;

    for (i = 0; i < n; i++) {

        if (i) {
            *p++ = ',';
        }

        v = ids[i];
        t = tmp + sizeof(tmp);

        do {
            *--t = (u_char) ('0' + v % 10);
            v /= 10;
        } while (v);

        while (t < tmp + sizeof(tmp)) {
            *p++ = *t++;
        }
    }

    return p;
}


static ngx_int_t
ngx_http_dynamo_reinit_request(ngx_http_request_t *r)
{
    ngx_http_upstream_t   *u;
    ngx_http_dynamo_up_t  *st;

    u = r->upstream;
    st = u->input_filter_ctx;

    if (st->ctx->stream) {
        ngx_http_dynamo_stream_destroy(st->ctx->stream);
        st->ctx->stream = NULL;
    }

    kvr_buf_reset(&st->out);
    kvr_buf_reset(&st->line);

    st->phase = NGX_HTTP_DYNAMO_UP_STATUS;
    st->content_length = -1;
    ngx_memzero(&st->status, sizeof(ngx_http_status_t));
    ngx_memzero(&st->chunked, sizeof(ngx_http_chunked_t));
    ngx_str_null(&st->body);
    st->error = NULL;

    st->chunked_in = 0;
    st->connection_close = 0;
    st->finished = 0;
    st->failed = 0;
    st->cut = 0;
    st->last_chunk = 0;
    st->broken = 0;
    st->extra = 0;

    u->process_header = ngx_http_dynamo_process_status_line;
    u->keepalive = 0;
    r->state = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynamo_process_status_line(ngx_http_request_t *r)
{
    ngx_int_t              rc;
    ngx_http_upstream_t   *u;
    ngx_http_dynamo_up_t  *st;

    u = r->upstream;
    st = u->input_filter_ctx;

    rc = ngx_http_parse_status_line(r, &u->buffer, &st->status);

    if (rc == NGX_AGAIN) {
        return rc;
    }

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynamo: worker sent no valid HTTP/1.0 header");
        return NGX_HTTP_UPSTREAM_INVALID_HEADER;
    }

    if (u->state && u->state->status == 0) {
        u->state->status = st->status.code;
    }

    st->answered = 1;

    st->phase = NGX_HTTP_DYNAMO_UP_HEADERS;
    u->process_header = ngx_http_dynamo_process_header;

    return ngx_http_dynamo_process_header(r);
}


static ngx_int_t
ngx_http_dynamo_process_header(ngx_http_request_t *r)
{
    size_t                 len;
    ngx_int_t              rc;
    ngx_str_t              name, value;
    ngx_http_upstream_t   *u;
    ngx_http_dynamo_up_t  *st;

    u = r->upstream;
    st = u->input_filter_ctx;

    if (st->phase == NGX_HTTP_DYNAMO_UP_COLLECT) {
        return ngx_http_dynamo_collect(r, st);
    }

    if (st->phase == NGX_HTTP_DYNAMO_UP_ERROR_BODY) {
        return ngx_http_dynamo_error_body(r, st);
    }

    for ( ;; ) {

        rc = ngx_http_parse_header_line(r, &u->buffer, 1);

        if (rc == NGX_OK) {
            name.data = r->header_name_start;
            name.len = r->header_name_end - r->header_name_start;
            value.data = r->header_start;
            value.len = r->header_end - r->header_start;

            if (name.len == sizeof("Content-Length") - 1
                && ngx_strncasecmp(name.data, (u_char *) "Content-Length",
                                   name.len)
                   == 0)
            {
                st->content_length = ngx_atoof(value.data, value.len);

                if (st->content_length == NGX_ERROR) {
                    return NGX_HTTP_UPSTREAM_INVALID_HEADER;
                }

            } else if (name.len == sizeof("Transfer-Encoding") - 1
                       && ngx_strncasecmp(name.data,
                                          (u_char *) "Transfer-Encoding",
                                          name.len)
                          == 0)
            {
                len = sizeof("chunked") - 1;

                if (value.len >= len
                    && ngx_strlcasestrn(value.data, value.data + value.len,
                                        (u_char *) "chunked", len - 1)
                       != NULL)
                {
                    st->chunked_in = 1;
                }

            } else if (name.len == sizeof("Connection") - 1
                       && ngx_strncasecmp(name.data, (u_char *) "Connection",
                                          name.len)
                          == 0)
            {
                len = sizeof("close") - 1;

                if (value.len >= len
                    && ngx_strlcasestrn(value.data, value.data + value.len,
                                        (u_char *) "close", len - 1)
                       != NULL)
                {
                    st->connection_close = 1;
                }
            }

            continue;
        }

        if (rc == NGX_HTTP_PARSE_HEADER_DONE) {
            return ngx_http_dynamo_headers_done(r, st);
        }

        if (rc == NGX_AGAIN) {
            return NGX_AGAIN;
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynamo: worker sent invalid header");

        return NGX_HTTP_UPSTREAM_INVALID_HEADER;
    }
}


static ngx_int_t
ngx_http_dynamo_headers_done(ngx_http_request_t *r, ngx_http_dynamo_up_t *st)
{
    ngx_uint_t            status;
    ngx_http_upstream_t  *u;

    u = r->upstream;
    status = st->status.code;

    if (status == NGX_HTTP_OK) {

        if (!st->chunked_in) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "dynamo: worker answered 200 without "
                          "chunked encoding");
            return NGX_HTTP_UPSTREAM_INVALID_HEADER;
        }

        if (ngx_http_dynamo_create_stream(r, st) != NGX_OK) {
            return NGX_ERROR;
        }

        if (!st->ctx->req.stream) {
            st->phase = NGX_HTTP_DYNAMO_UP_COLLECT;
            return ngx_http_dynamo_collect(r, st);
        }

        /* streaming: commit to this worker, the frames follow */

        st->phase = NGX_HTTP_DYNAMO_UP_BODY;

        u->headers_in.status_n = NGX_HTTP_OK;
        u->headers_in.content_length_n = -1;

        r->headers_out.content_type = ngx_http_dynamo_sse_type;
        r->headers_out.content_type_len = ngx_http_dynamo_sse_type.len;
        r->headers_out.content_type_lowcase = NULL;

        if (ngx_http_dynamo_add_header(r, "Cache-Control",
                                       &ngx_http_dynamo_no_cache)
            != NGX_OK
            || ngx_http_dynamo_add_header(r, "X-Accel-Buffering",
                                          &ngx_http_dynamo_no)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (status == NGX_HTTP_BAD_REQUEST && st->content_length > 0
        && st->content_length <= u->buffer.end - u->buffer.pos)
    {
        st->phase = NGX_HTTP_DYNAMO_UP_ERROR_BODY;
        return ngx_http_dynamo_error_body(r, st);
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "dynamo: worker answered %ui", status);

    if (status == NGX_HTTP_BAD_REQUEST) {
        return ngx_http_dynamo_answer_error(r, st, NGX_HTTP_BAD_REQUEST,
                                            "The worker rejected the "
                                            "request", NULL);
    }

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        return ngx_http_dynamo_answer_error(r, st,
                                            NGX_HTTP_SERVICE_UNAVAILABLE,
                                            "No worker could take the "
                                            "request", NULL);
    }

    return ngx_http_dynamo_answer_error(r, st, NGX_HTTP_BAD_GATEWAY,
                                        "The worker failed", NULL);
}


static ngx_int_t
ngx_http_dynamo_create_stream(ngx_http_request_t *r, ngx_http_dynamo_up_t *st)
{
    st->ctx->stream = ngx_http_dynamo_stream_create(&st->conf);
    if (st->ctx->stream == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_dynamo_stream_begin(st->ctx->stream, &st->out) != 0) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Not streaming: the whole generation is read here, as "header", so that
 * the worker can still be changed on a failure and the client gets one
 * body with a Content-Length. The buffer is emptied after every read, so
 * nginx never finds it full.
 */

static ngx_int_t
ngx_http_dynamo_collect(ngx_http_request_t *r, ngx_http_dynamo_up_t *st)
{
    u_char               *p;
    ngx_str_t             msg;
    ngx_http_upstream_t  *u;

    u = r->upstream;

    if (ngx_http_dynamo_up_feed(st, u->buffer.pos, u->buffer.last)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    u->buffer.pos = u->buffer.start;
    u->buffer.last = u->buffer.start;

    if (!st->finished) {
        ngx_add_timer(u->peer.connection->read, u->conf->read_timeout);
        return NGX_AGAIN;
    }

    if (st->failed) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynamo: generation failed: %s",
                      st->error ? st->error : "");

        msg.data = (u_char *) (st->error ? st->error : "The worker failed");
        msg.len = ngx_strlen(msg.data);

        return ngx_http_dynamo_answer_error(r, st, NGX_HTTP_BAD_GATEWAY,
                                            (char *) msg.data, NULL);
    }

    p = ngx_pnalloc(r->pool, st->out.len);
    if (p == NULL && st->out.len) {
        return NGX_ERROR;
    }

    if (st->out.len) {
        ngx_memcpy(p, st->out.data, st->out.len);
    }

    st->body.data = p;
    st->body.len = st->out.len;
    kvr_buf_reset(&st->out);

    return ngx_http_dynamo_json_answer(r, st, NGX_HTTP_OK);
}


static ngx_int_t
ngx_http_dynamo_error_body(ngx_http_request_t *r, ngx_http_dynamo_up_t *st)
{
    char                  *pfx;
    json_t                *root, *err, *v;
    ngx_str_t              param, *pp;
    const char            *message, *field;
    ngx_http_upstream_t   *u;
    ngx_http_dynamo_ctx_t *ctx;

    u = r->upstream;
    ctx = st->ctx;

    if (u->buffer.last - u->buffer.pos < st->content_length) {
        return NGX_AGAIN;
    }

    root = json_loadb((char *) u->buffer.pos, (size_t) st->content_length,
                      0, NULL);

    u->buffer.pos += st->content_length;

    if (u->buffer.pos == u->buffer.last && !st->connection_close) {
        u->keepalive = 1;
    }

    message = "The worker rejected the request";
    field = NULL;

    err = root ? json_object_get(root, "error") : NULL;

    v = err ? json_object_get(err, "message") : NULL;
    if (json_is_string(v)) {
        message = json_string_value(v);
    }

    v = err ? json_object_get(err, "field") : NULL;
    if (json_is_string(v)) {
        field = json_string_value(v);
    }

    pp = NULL;

    if (field) {
        if (ngx_strncmp(field, "token_ids", sizeof("token_ids") - 1) == 0) {
            if (ctx->endpoint == NGX_HTTP_DYNAMO_EP_CHAT) {
                ngx_str_set(&param, "messages");

            } else {
                ngx_str_set(&param, "prompt");
            }

        } else {
            pfx = "sampling.";

            if (ngx_strncmp(field, pfx, ngx_strlen(pfx)) == 0) {
                field += ngx_strlen(pfx);
            }

            param.data = (u_char *) field;
            param.len = ngx_strlen(field);
        }

        pp = &param;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "dynamo: worker refused the request: %s", message);

    if (ngx_http_dynamo_answer_error(r, st, NGX_HTTP_BAD_REQUEST, message, pp)
        != NGX_OK)
    {
        if (root) {
            json_decref(root);
        }

        return NGX_ERROR;
    }

    if (root) {
        json_decref(root);
    }

    return NGX_OK;
}


/* an answer decided here: the client gets status and an OpenAI error */

static ngx_int_t
ngx_http_dynamo_answer_error(ngx_http_request_t *r, ngx_http_dynamo_up_t *st,
    ngx_uint_t status, const char *message, ngx_str_t *param)
{
    ngx_str_t                    msg;
    ngx_http_upstream_t         *u;
    ngx_http_dynamo_main_conf_t *dmcf;
    ngx_http_dynamo_counters_t  *counters;

    u = r->upstream;

    msg.data = (u_char *) message;
    msg.len = ngx_strlen(message);

    if (ngx_http_dynamo_error_json(r->pool, &st->body, status, &msg, param)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_dynamo_module);
    counters = ngx_http_dynamo_shm_counters(dmcf);

    if (counters && status == NGX_HTTP_BAD_GATEWAY) {
        (void) ngx_atomic_fetch_add(&counters->worker_failures, 1);
    }

    if (!u->keepalive) {
        u->buffer.pos = u->buffer.last;
    }

    return ngx_http_dynamo_json_answer(r, st, status);
}


/* the client's answer is st->body, a JSON document with this status */

static ngx_int_t
ngx_http_dynamo_json_answer(ngx_http_request_t *r, ngx_http_dynamo_up_t *st,
    ngx_uint_t status)
{
    ngx_http_upstream_t  *u;

    u = r->upstream;

    st->phase = NGX_HTTP_DYNAMO_UP_BODY;

    u->headers_in.status_n = status;
    u->headers_in.content_length_n = st->body.len;

    r->headers_out.content_type = ngx_http_dynamo_json_type;
    r->headers_out.content_type_len = ngx_http_dynamo_json_type.len;
    r->headers_out.content_type_lowcase = NULL;

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynamo_input_filter_init(void *data)
{
    ngx_http_dynamo_up_t *st = data;

    ngx_http_request_t   *r;
    ngx_http_upstream_t  *u;

    r = st->request;
    u = r->upstream;

    if (st->body.data || st->body.len || st->ctx->req.stream == 0) {

        /* the answer is complete: an error, or the whole JSON body */

        if (st->body.len
            && ngx_http_dynamo_send_now(r, st->body.data, st->body.len, 0)
               == NGX_ERROR)
        {
            return NGX_ERROR;
        }

        if (st->last_chunk || st->ctx->stream == NULL || st->failed
            || st->cut)
        {
            /* a stop string's cut closes the worker connection now */
            u->length = 0;

        } else {
            /* wait for the worker's last chunk: keepalive */
            u->length = -1;
        }

        if (u->buffer.pos == u->buffer.last && u->length == 0
            && st->last_chunk && !st->extra && !st->broken
            && !st->connection_close && st->ctx->stream)
        {
            u->keepalive = 1;
        }

        return NGX_OK;
    }

    /* streaming: the first event (the role) goes out at once */

    if (st->out.len) {
        if (ngx_http_dynamo_send_now(r, (u_char *) st->out.data, st->out.len,
                                     0)
            == NGX_ERROR)
        {
            return NGX_ERROR;
        }

        kvr_buf_reset(&st->out);
    }

    u->length = -1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynamo_input_filter(void *data, ssize_t bytes)
{
    ngx_http_dynamo_up_t *st = data;

    u_char               *p;
    size_t                size;
    ngx_buf_t            *b, *ob;
    ngx_chain_t          *cl, **ll;
    ngx_http_request_t   *r;
    ngx_http_upstream_t  *u;

    r = st->request;
    u = r->upstream;
    b = &u->buffer;

    p = b->last;
    b->last += bytes;

    kvr_buf_reset(&st->out);

    if (ngx_http_dynamo_up_feed(st, p, b->last) != NGX_OK) {
        return NGX_ERROR;
    }

    if (st->out.len) {

        for (cl = u->out_bufs, ll = &u->out_bufs; cl; cl = cl->next) {
            ll = &cl->next;
        }

        cl = ngx_chain_get_free_buf(r->pool, &u->free_bufs);
        if (cl == NULL) {
            return NGX_ERROR;
        }

        ob = cl->buf;
        size = st->out.len;

        if (ob->start == NULL || (size_t) (ob->end - ob->start) < size) {
            ob->start = ngx_palloc(r->pool,
                                   ngx_max(size, NGX_HTTP_DYNAMO_OUT_MIN));
            if (ob->start == NULL) {
                return NGX_ERROR;
            }

            ob->end = ob->start + ngx_max(size, NGX_HTTP_DYNAMO_OUT_MIN);
        }

        ob->pos = ob->start;
        ob->last = ngx_cpymem(ob->start, st->out.data, size);
        ob->temporary = 1;
        ob->flush = 1;
        ob->tag = u->output.tag;

        *ll = cl;

        kvr_buf_reset(&st->out);
    }

    if (st->finished && (st->cut || st->failed || st->broken)) {

        /* closing the connection cancels the generation at the worker */

        u->length = 0;
        u->keepalive = 0;
        return NGX_OK;
    }

    if (st->last_chunk) {
        u->length = 0;
        u->keepalive = !st->extra && !st->broken && !st->connection_close;
    }

    return NGX_OK;
}


static void
ngx_http_dynamo_abort_request(ngx_http_request_t *r)
{
    return;
}


static void
ngx_http_dynamo_finalize_request(ngx_http_request_t *r, ngx_int_t rc)
{
    const char                   *msg;
    ngx_http_upstream_t          *u;
    ngx_http_dynamo_up_t         *st;
    ngx_http_dynamo_main_conf_t  *dmcf;
    ngx_http_dynamo_counters_t   *counters;

    u = r->upstream;
    st = u->input_filter_ctx;

    dmcf = ngx_http_get_module_main_conf(r, ngx_dynamo_module);
    counters = ngx_http_dynamo_shm_counters(dmcf);

    if (!st->finished
        && (rc == NGX_HTTP_CLIENT_CLOSED_REQUEST || r->connection->error))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "dynamo: client went away, generation cancelled");

        if (counters) {
            (void) ngx_atomic_fetch_add(&counters->cancelled, 1);
        }

        st->finished = 1;
        st->failed = 1;

    } else if (!st->finished && st->ctx->stream && st->ctx->req.stream
               && u->header_sent && rc != NGX_HTTP_REQUEST_TIME_OUT)
    {
        /*
         * the worker went away mid-stream (closed, reset, timed out):
         * the client gets an error event, "data: [DONE]" and the end of
         * the chunked body; nginx sends the last chunk itself only when
         * rc is 0
         */

        msg = (rc == NGX_HTTP_GATEWAY_TIME_OUT) ? "The worker timed out"
                                                : "The worker closed the "
                                                  "connection before the "
                                                  "end of the response";

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynamo: generation failed mid-stream: %s", msg);

        kvr_buf_reset(&st->out);
        ngx_http_dynamo_up_fail(st, msg);

        if (counters) {
            (void) ngx_atomic_fetch_add(&counters->worker_failures, 1);
        }

        (void) ngx_http_dynamo_send_now(r, (u_char *) st->out.data,
                                        st->out.len, rc != 0);
        kvr_buf_reset(&st->out);

    } else if (st->failed && st->ctx->req.stream && counters) {
        (void) ngx_atomic_fetch_add(&counters->worker_failures, 1);

    } else if (!u->header_sent && counters
               && (rc == NGX_HTTP_BAD_GATEWAY
                   || rc == NGX_HTTP_GATEWAY_TIME_OUT))
    {
        (void) ngx_atomic_fetch_add(&counters->worker_failures, 1);
    }

    if (counters && u->header_sent
        && u->headers_in.status_n >= NGX_HTTP_BAD_REQUEST)
    {
        /* an error answered here (nginx's own pages: the error filter) */
        (void) ngx_atomic_fetch_add(&counters->errors, 1);
    }

    ngx_http_dynamo_account(st);
}


static ngx_int_t
ngx_http_dynamo_send_now(ngx_http_request_t *r, u_char *data, size_t len,
    ngx_uint_t last)
{
    u_char       *p;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (r->connection->error) {
        return NGX_ERROR;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    if (len) {
        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, data, len);

        b->pos = p;
        b->last = p + len;
        b->temporary = 1;
    }

    b->flush = 1;
    b->last_buf = last;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* token counts for the variables, the access log and /metrics */

static void
ngx_http_dynamo_account(ngx_http_dynamo_up_t *st)
{
    uint64_t                      prompt, completion, cached;
    ngx_http_dynamo_ctx_t        *ctx;
    ngx_http_dynamo_main_conf_t  *dmcf;
    ngx_http_dynamo_counters_t   *counters;

    ctx = st->ctx;

    if (st->accounted || ctx->stream == NULL) {
        return;
    }

    st->accounted = 1;

    ngx_http_dynamo_stream_usage(ctx->stream, &prompt, &completion, &cached);

    ctx->prompt_tokens = prompt;
    ctx->completion_tokens = completion;
    ctx->cached_tokens = cached;

    if (st->finished && !st->failed) {
        ctx->done = 1;

    } else {
        ctx->failed = 1;
    }

    dmcf = ngx_http_get_module_main_conf(st->request, ngx_dynamo_module);
    counters = ngx_http_dynamo_shm_counters(dmcf);

    if (counters) {
        (void) ngx_atomic_fetch_add(&counters->prompt_tokens, prompt);
        (void) ngx_atomic_fetch_add(&counters->completion_tokens, completion);
        (void) ngx_atomic_fetch_add(&counters->cached_tokens, cached);
    }
}


static void
ngx_http_dynamo_up_cleanup(void *data)
{
    ngx_http_dynamo_up_t *st = data;

    ngx_http_dynamo_balancer_release(st);

    if (st->ctx->stream) {
        ngx_http_dynamo_stream_destroy(st->ctx->stream);
        st->ctx->stream = NULL;
    }

    kvr_buf_free(&st->out);
    kvr_buf_free(&st->line);
}
