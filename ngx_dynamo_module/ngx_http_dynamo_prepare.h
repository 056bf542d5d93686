
/*
 * ngx_dynamo: the work between a parsed request and routing: chat
 * template, tokenizer, block hashes; on the event loop or in a thread.
 */


#ifndef _NGX_HTTP_DYNAMO_PREPARE_H_INCLUDED_
#define _NGX_HTTP_DYNAMO_PREPARE_H_INCLUDED_


#include "ngx_http_dynamo_module.h"


typedef struct {
    ngx_http_dynamo_model_t        *model;
    ngx_http_dynamo_oai_req_t      *req;

    uint32_t                       *ids;         /* malloc'd unless own_ids
                                                    is 0 (req's ids) */
    size_t                          n_ids;
    uint64_t                       *hashes;      /* malloc'd */
    size_t                          n_blocks;
    unsigned                        own_ids:1;

    ngx_uint_t                      status;      /* 0: ok */
    char                           *param;       /* static; NULL: none */
    char                            message[512];
} ngx_http_dynamo_prep_t;


/* runs anywhere (no pool, no log): fills prep or prep->status */
void ngx_http_dynamo_prepare(ngx_http_dynamo_prep_t *prep);

/* a pool cleanup that frees prep's arrays */
ngx_int_t ngx_http_dynamo_prepare_cleanup_add(ngx_pool_t *pool,
    ngx_http_dynamo_prep_t *prep);

/* workers a request could be routed to now, for /health */
ngx_uint_t ngx_http_dynamo_route_usable(ngx_http_request_t *r);


#endif /* _NGX_HTTP_DYNAMO_PREPARE_H_INCLUDED_ */
