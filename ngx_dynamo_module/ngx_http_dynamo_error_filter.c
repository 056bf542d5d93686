
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * Error filter: in a dynamo_pass location every error response is an
 * OpenAI error object, nginx's own pages (413 for a large body, 502/504
 * from the upstream, 500...) included. Responses that are already JSON
 * (ours) pass untouched. Stateless: the replaced response is recognised
 * in the body filter by its content type string, which is this file's.
 */


#include "ngx_http_dynamo_upstream.h"


#define NGX_HTTP_DYNAMO_ERR_HEAD   "{\"error\":{\"message\":\""
#define NGX_HTTP_DYNAMO_ERR_TYPE   "\",\"type\":\""
#define NGX_HTTP_DYNAMO_ERR_PARAM  "\",\"param\":"
#define NGX_HTTP_DYNAMO_ERR_TAIL   ",\"code\":null}}"


typedef struct {
    ngx_uint_t                 status;
    ngx_str_t                  message;
} ngx_http_dynamo_error_msg_t;


static ngx_int_t ngx_http_dynamo_error_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_dynamo_error_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_dynamo_error_page(ngx_http_request_t *r,
    ngx_str_t *body);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


/*
 * the content type of the replaced responses, known by its address: an
 * array, which the linker never merges with equal string literals
 */
static u_char     ngx_http_dynamo_error_type_data[] = "application/json";
static ngx_str_t  ngx_http_dynamo_error_type = {
    sizeof(ngx_http_dynamo_error_type_data) - 1,
    ngx_http_dynamo_error_type_data
};


static ngx_http_dynamo_error_msg_t  ngx_http_dynamo_error_msgs[] = {
    { NGX_HTTP_BAD_REQUEST, ngx_string("Invalid request") },
    { NGX_HTTP_UNAUTHORIZED, ngx_string("Unauthorized") },
    { NGX_HTTP_FORBIDDEN, ngx_string("Forbidden") },
    { NGX_HTTP_NOT_FOUND, ngx_string("Not found") },
    { NGX_HTTP_NOT_ALLOWED, ngx_string("Method not allowed") },
    { NGX_HTTP_REQUEST_TIME_OUT, ngx_string("Request timed out") },
    { NGX_HTTP_LENGTH_REQUIRED, ngx_string("Length required") },
    { NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
      ngx_string("Request body too large") },
    { NGX_HTTP_REQUEST_URI_TOO_LARGE, ngx_string("Request URI too large") },
    { NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, ngx_string("Unsupported media type") },
    { NGX_HTTP_TOO_MANY_REQUESTS, ngx_string("Too many requests") },
    { NGX_HTTP_INTERNAL_SERVER_ERROR, ngx_string("Internal server error") },
    { NGX_HTTP_NOT_IMPLEMENTED, ngx_string("Not implemented") },
    { NGX_HTTP_BAD_GATEWAY, ngx_string("The worker failed") },
    { NGX_HTTP_SERVICE_UNAVAILABLE,
      ngx_string("No worker could take the request") },
    { NGX_HTTP_GATEWAY_TIME_OUT, ngx_string("The worker timed out") },
    { 0, ngx_null_string }
};


ngx_int_t
ngx_http_dynamo_error_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_dynamo_error_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_dynamo_error_body_filter;

    return NGX_OK;
}


ngx_int_t
ngx_http_dynamo_error_json(ngx_pool_t *pool, ngx_str_t *out,
    ngx_uint_t status, ngx_str_t *message, ngx_str_t *param)
{
    u_char  *p;
    char    *type;
    size_t   len;

    type = (status >= NGX_HTTP_INTERNAL_SERVER_ERROR)
           ? "server_error" : "invalid_request_error";

    len = sizeof(NGX_HTTP_DYNAMO_ERR_HEAD) - 1
          + ngx_http_dynamo_json_escape(NULL, message->data, message->len)
          + sizeof(NGX_HTTP_DYNAMO_ERR_TYPE) - 1
          + ngx_strlen(type)
          + sizeof(NGX_HTTP_DYNAMO_ERR_PARAM) - 1
          + sizeof("null") - 1
          + sizeof(NGX_HTTP_DYNAMO_ERR_TAIL) - 1;

    if (param) {
        len += ngx_http_dynamo_json_escape(NULL, param->data, param->len)
               + sizeof("\"\"") - 1;
    }

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;

    p = ngx_cpymem(p, NGX_HTTP_DYNAMO_ERR_HEAD,
                   sizeof(NGX_HTTP_DYNAMO_ERR_HEAD) - 1);
    p += ngx_http_dynamo_json_escape(p, message->data, message->len);
    p = ngx_cpymem(p, NGX_HTTP_DYNAMO_ERR_TYPE,
                   sizeof(NGX_HTTP_DYNAMO_ERR_TYPE) - 1);
    p = ngx_cpymem(p, type, ngx_strlen(type));
    p = ngx_cpymem(p, NGX_HTTP_DYNAMO_ERR_PARAM,
                   sizeof(NGX_HTTP_DYNAMO_ERR_PARAM) - 1);

    if (param) {
        *p++ = '"';
        p += ngx_http_dynamo_json_escape(p, param->data, param->len);
        *p++ = '"';

    } else {
        p = ngx_cpymem(p, "null", sizeof("null") - 1);
    }

    p = ngx_cpymem(p, NGX_HTTP_DYNAMO_ERR_TAIL,
                   sizeof(NGX_HTTP_DYNAMO_ERR_TAIL) - 1);

    out->len = p - out->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynamo_error_header_filter(ngx_http_request_t *r)
{
    ngx_str_t                     body, *ct;
    ngx_http_upstream_t          *u;
    ngx_http_dynamo_up_t         *st;
    ngx_http_dynamo_loc_conf_t   *dlcf;
    ngx_http_dynamo_main_conf_t  *dmcf;
    ngx_http_dynamo_counters_t   *counters;

    if (r->headers_out.status < NGX_HTTP_BAD_REQUEST || r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    dlcf = ngx_http_get_module_loc_conf(r, ngx_dynamo_module);

    if (dlcf == NULL || dlcf->upstream == NULL) {
        return ngx_http_next_header_filter(r);
    }

    ct = &r->headers_out.content_type;

    if (ct->len >= ngx_http_dynamo_error_type.len
        && ngx_strncasecmp(ct->data, ngx_http_dynamo_error_type.data,
                           ngx_http_dynamo_error_type.len)
           == 0)
    {
        /* ours already, and counted where it was made */
        return ngx_http_next_header_filter(r);
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_dynamo_module);
    counters = ngx_http_dynamo_shm_counters(dmcf);

    if (counters) {
        (void) ngx_atomic_fetch_add(&counters->errors, 1);
    }

    u = r->upstream;

    if (r->headers_out.status == NGX_HTTP_BAD_GATEWAY
        && u && u->output.tag == (ngx_buf_tag_t) &ngx_dynamo_module)
    {
        st = u->input_filter_ctx;

        if (!st->answered) {
            /* no worker could even be reached */
            r->headers_out.status = NGX_HTTP_SERVICE_UNAVAILABLE;
            ngx_str_null(&r->headers_out.status_line);

            if (r->err_status) {
                r->err_status = NGX_HTTP_SERVICE_UNAVAILABLE;
            }

            if (counters) {
                (void) ngx_atomic_fetch_add(&counters->no_worker, 1);
            }
        }
    }

    if (ngx_http_dynamo_error_page(r, &body) != NGX_OK) {
        return NGX_ERROR;
    }

    r->headers_out.content_type = ngx_http_dynamo_error_type;
    r->headers_out.content_type_len = ngx_http_dynamo_error_type.len;
    r->headers_out.content_type_lowcase = NULL;
    ngx_str_null(&r->headers_out.charset);

    r->headers_out.content_length_n = body.len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_dynamo_error_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_str_t     body;
    ngx_buf_t    *b;
    ngx_uint_t    last;
    ngx_chain_t  *cl, out;

    if (r->headers_out.content_type.data != ngx_http_dynamo_error_type.data
        || r->headers_out.status < NGX_HTTP_BAD_REQUEST
        || in == NULL)
    {
        return ngx_http_next_body_filter(r, in);
    }

    /* swallow nginx's page, send ours in its place at its end */

    last = 0;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (b->last_buf || b->last_in_chain) {
            last = 1;
        }

        b->pos = b->last;

        if (b->in_file) {
            b->file_pos = b->file_last;
        }
    }

    if (!last) {
        return NGX_OK;
    }

    if (ngx_http_dynamo_error_page(r, &body) != NGX_OK) {
        return NGX_ERROR;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body.data;
    b->last = body.data + body.len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}


static ngx_int_t
ngx_http_dynamo_error_page(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char                       *p;
    ngx_uint_t                    status;
    ngx_str_t                     message;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_dynamo_error_msg_t  *m;

    status = r->headers_out.status;

    if (status == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        p = ngx_pnalloc(r->pool, sizeof("Request body too large (the limit "
                                        "is  bytes)") - 1 + NGX_OFF_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        message.data = p;
        message.len = ngx_sprintf(p, "Request body too large (the limit is "
                                  "%O bytes)", clcf->client_max_body_size)
                      - p;

        return ngx_http_dynamo_error_json(r->pool, body, status, &message,
                                          NULL);
    }

    for (m = ngx_http_dynamo_error_msgs; m->status; m++) {
        if (m->status == status) {
            break;
        }
    }

    if (m->status) {
        message = m->message;

    } else if (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
        ngx_str_set(&message, "Server error");

    } else {
        ngx_str_set(&message, "Invalid request");
    }

    return ngx_http_dynamo_error_json(r->pool, body, status, &message, NULL);
}
