
/*
 * ngx_dynamo: OpenAI request parsing (stub until implemented).
 */


#include <stdio.h>
#include <string.h>

#include "ngx_http_dynamo_oai.h"


int
ngx_http_dynamo_oai_parse(int kind, const char *body, size_t len,
    ngx_http_dynamo_oai_req_t *req, ngx_http_dynamo_oai_err_t *err)
{
    memset(req, 0, sizeof(*req));
    err->status = 400;
    err->param[0] = 0;
    snprintf(err->message, sizeof(err->message), "not implemented");
    return -1;
}


void
ngx_http_dynamo_oai_free(ngx_http_dynamo_oai_req_t *req)
{
}
