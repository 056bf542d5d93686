
/*
 * ngx_dynamo: the upstream side of a generation (private to the proxy
 * files): per-request state shared by the protocol handler, the body
 * decoder, the balancer and the error filter.
 */


#ifndef _NGX_HTTP_DYNAMO_UPSTREAM_H_INCLUDED_
#define _NGX_HTTP_DYNAMO_UPSTREAM_H_INCLUDED_


#include "ngx_http_dynamo_module.h"


#define NGX_HTTP_DYNAMO_LINE_MAX        (1024 * 1024)
#define NGX_HTTP_DYNAMO_OUT_MIN         4096


typedef enum {
    NGX_HTTP_DYNAMO_UP_STATUS = 0,      /* reading the status line */
    NGX_HTTP_DYNAMO_UP_HEADERS,
    NGX_HTTP_DYNAMO_UP_COLLECT,         /* 200, not streaming: frames */
    NGX_HTTP_DYNAMO_UP_ERROR_BODY,      /* non-200: its JSON body */
    NGX_HTTP_DYNAMO_UP_BODY             /* answer decided */
} ngx_http_dynamo_up_phase_e;


typedef struct {
    ngx_http_request_t             *request;
    ngx_http_dynamo_ctx_t          *ctx;

    ngx_http_dynamo_stream_conf_t   conf;       /* outlives the stream */

    ngx_uint_t                      phase;
    ngx_http_status_t               status;
    off_t                           content_length;     /* -1: none */
    ngx_http_chunked_t              chunked;

    kvr_buf_t                       out;        /* bytes for the client */
    kvr_buf_t                       line;       /* a frame across reads */
    ngx_str_t                       body;       /* an answer decided in
                                                   process_header */
    const char                     *error;      /* why the stream failed */

    /* the load counted for the pick in use, undone once */
    ngx_http_dynamo_load_t         *load;
    ngx_atomic_int_t                load_blocks;
    ngx_atomic_int_t                load_prefill;

    unsigned                        chunked_in:1;
    unsigned                        connection_close:1;
    unsigned                        finished:1;     /* DONE or FAILED */
    unsigned                        failed:1;
    unsigned                        cut:1;          /* stop string */
    unsigned                        last_chunk:1;   /* "0" CRLF CRLF */
    unsigned                        broken:1;       /* invalid framing */
    unsigned                        extra:1;        /* bytes after last */
    unsigned                        accounted:1;
    unsigned                        answered:1;     /* a worker answered,
                                                       any attempt */
} ngx_http_dynamo_up_t;


/* ngx_http_dynamo_upstream_body.c: the worker's chunked NDJSON body */
ngx_int_t ngx_http_dynamo_up_feed(ngx_http_dynamo_up_t *st, u_char *pos,
    u_char *last);
void ngx_http_dynamo_up_fail(ngx_http_dynamo_up_t *st, const char *message);

/* ngx_http_dynamo_error_filter.c: an OpenAI error object */
ngx_int_t ngx_http_dynamo_error_json(ngx_pool_t *pool, ngx_str_t *out,
    ngx_uint_t status, ngx_str_t *message, ngx_str_t *param);

/* ngx_http_dynamo_balancer.c: undoes the load counted for the pick */
void ngx_http_dynamo_balancer_release(ngx_http_dynamo_up_t *st);


#endif /* _NGX_HTTP_DYNAMO_UPSTREAM_H_INCLUDED_ */
