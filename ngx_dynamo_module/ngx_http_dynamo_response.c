
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * Response helpers: in-memory bodies, OpenAI-style error objects, JSON
 * string escaping.
 */


#include "ngx_http_dynamo_module.h"


#define NGX_HTTP_DYNAMO_ERROR_HEAD  "{\"error\":{\"message\":\""
#define NGX_HTTP_DYNAMO_ERROR_TYPE  "\",\"type\":\""
#define NGX_HTTP_DYNAMO_ERROR_PARAM "\",\"param\":"
#define NGX_HTTP_DYNAMO_ERROR_CODE  ",\"code\":"
#define NGX_HTTP_DYNAMO_ERROR_TAIL  "}}"


static u_char *ngx_http_dynamo_json_value(u_char *p, char *s, size_t len);


static ngx_str_t  ngx_http_dynamo_json_type = ngx_string("application/json");
static ngx_str_t  ngx_http_dynamo_replacement = ngx_string("\xef\xbf\xbd");
static u_char     ngx_http_dynamo_hex[] = "0123456789abcdef";


ngx_int_t
ngx_http_dynamo_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_str_t *body)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = body->len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = body->len ? 1 : 0;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_dynamo_send_error(ngx_http_request_t *r, ngx_uint_t status,
    char *type, ngx_str_t *message)
{
    return ngx_http_dynamo_send_oai_error(r, status, type, NULL, NULL,
                                          message);
}


ngx_int_t
ngx_http_dynamo_send_oai_error(ngx_http_request_t *r, ngx_uint_t status,
    char *type, char *param, char *code, ngx_str_t *message)
{
    u_char                      *p;
    size_t                       len, plen, clen;
    ngx_str_t                    body;
    ngx_http_dynamo_counters_t  *counters;
    ngx_http_dynamo_main_conf_t *dmcf;

    plen = param ? ngx_strlen(param) : 0;
    clen = code ? ngx_strlen(code) : 0;

    len = sizeof(NGX_HTTP_DYNAMO_ERROR_HEAD) - 1
          + ngx_http_dynamo_json_escape(NULL, message->data, message->len)
          + sizeof(NGX_HTTP_DYNAMO_ERROR_TYPE) - 1
          + ngx_strlen(type)
          + sizeof(NGX_HTTP_DYNAMO_ERROR_PARAM) - 1
          + (param ? 2 + ngx_http_dynamo_json_escape(NULL, (u_char *) param,
                                                     plen)
                   : sizeof("null") - 1)
          + sizeof(NGX_HTTP_DYNAMO_ERROR_CODE) - 1
          + (code ? 2 + ngx_http_dynamo_json_escape(NULL, (u_char *) code,
                                                    clen)
                  : sizeof("null") - 1)
          + sizeof(NGX_HTTP_DYNAMO_ERROR_TAIL) - 1;

    body.data = ngx_pnalloc(r->pool, len);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(body.data, NGX_HTTP_DYNAMO_ERROR_HEAD,
                   sizeof(NGX_HTTP_DYNAMO_ERROR_HEAD) - 1);
    p += ngx_http_dynamo_json_escape(p, message->data, message->len);
    p = ngx_cpymem(p, NGX_HTTP_DYNAMO_ERROR_TYPE,
                   sizeof(NGX_HTTP_DYNAMO_ERROR_TYPE) - 1);
    p = ngx_cpymem(p, type, ngx_strlen(type));
    p = ngx_cpymem(p, NGX_HTTP_DYNAMO_ERROR_PARAM,
                   sizeof(NGX_HTTP_DYNAMO_ERROR_PARAM) - 1);
    p = ngx_http_dynamo_json_value(p, param, plen);
    p = ngx_cpymem(p, NGX_HTTP_DYNAMO_ERROR_CODE,
                   sizeof(NGX_HTTP_DYNAMO_ERROR_CODE) - 1);
    p = ngx_http_dynamo_json_value(p, code, clen);
    p = ngx_cpymem(p, NGX_HTTP_DYNAMO_ERROR_TAIL,
                   sizeof(NGX_HTTP_DYNAMO_ERROR_TAIL) - 1);

    body.len = p - body.data;

    if (status >= NGX_HTTP_BAD_REQUEST) {
        dmcf = ngx_http_get_module_main_conf(r, ngx_dynamo_module);
        counters = ngx_http_dynamo_shm_counters(dmcf);

        if (counters) {
            (void) ngx_atomic_fetch_add(&counters->errors, 1);
        }
    }

    return ngx_http_dynamo_send(r, status, &ngx_http_dynamo_json_type, &body);
}


static u_char *
ngx_http_dynamo_json_value(u_char *p, char *s, size_t len)
{
    if (s == NULL) {
        return ngx_cpymem(p, "null", sizeof("null") - 1);
    }

    *p++ = '"';
    p += ngx_http_dynamo_json_escape(p, (u_char *) s, len);
    *p++ = '"';

    return p;
}


ngx_int_t
ngx_http_dynamo_add_header(ngx_http_request_t *r, char *key, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value = *value;

    return NGX_OK;
}


ngx_int_t
ngx_http_dynamo_set_allow(ngx_http_request_t *r, ngx_str_t *allow)
{
    return ngx_http_dynamo_add_header(r, "Allow", allow);
}


/*
 * Escapes a string for use inside a JSON string literal and returns the
 * escaped length; dst may be NULL to only compute that length.  Invalid
 * UTF-8 is replaced with U+FFFD so that the output is always valid JSON.
 */

size_t
ngx_http_dynamo_json_escape(u_char *dst, u_char *src, size_t size)
{
    u_char    *p, *last, *start, esc[6];
    size_t     len, n;
    uint32_t   cp;

    len = 0;
    p = src;
    last = src + size;

    while (p < last) {

        if (*p >= 0x80) {
            start = p;
            cp = ngx_utf8_decode(&p, last - start);

            if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
                p = start + 1;
                start = ngx_http_dynamo_replacement.data;
                n = ngx_http_dynamo_replacement.len;

            } else {
                n = p - start;
            }

            if (dst) {
                dst = ngx_cpymem(dst, start, n);
            }

            len += n;
            continue;
        }

        n = 1;
        esc[0] = *p;

        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = *p;
            n = 2;

        } else if (*p < 0x20) {
            esc[0] = '\\';
            n = 2;

            switch (*p) {
            case '\n':
                esc[1] = 'n';
                break;
            case '\r':
                esc[1] = 'r';
                break;
            case '\t':
                esc[1] = 't';
                break;
            case '\b':
                esc[1] = 'b';
                break;
            case '\f':
                esc[1] = 'f';
                break;
            default:
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = ngx_http_dynamo_hex[*p >> 4];
                esc[5] = ngx_http_dynamo_hex[*p & 0xf];
                n = 6;
            }
        }

        if (dst) {
            dst = ngx_cpymem(dst, esc, n);
        }

        len += n;
        p++;
    }

    return len;
}
