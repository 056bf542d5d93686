
/*
 * ngx_dynamo: worker frames to OpenAI responses (stub until implemented).
 */


#include <stdlib.h>

#include "ngx_http_dynamo_stream.h"


struct ngx_http_dynamo_stream_s {
    int  unused;
};


ngx_http_dynamo_stream_t *
ngx_http_dynamo_stream_create(const ngx_http_dynamo_stream_conf_t *conf)
{
    return calloc(1, sizeof(ngx_http_dynamo_stream_t));
}


void
ngx_http_dynamo_stream_destroy(ngx_http_dynamo_stream_t *s)
{
    free(s);
}


int
ngx_http_dynamo_stream_begin(ngx_http_dynamo_stream_t *s, kvr_buf_t *out)
{
    return 0;
}


int
ngx_http_dynamo_stream_line(ngx_http_dynamo_stream_t *s, const char *line,
    size_t len, kvr_buf_t *out)
{
    return NGX_HTTP_DYNAMO_STREAM_FAILED;
}


void
ngx_http_dynamo_stream_fail(ngx_http_dynamo_stream_t *s, const char *message,
    kvr_buf_t *out)
{
}


int
ngx_http_dynamo_stream_cut(const ngx_http_dynamo_stream_t *s)
{
    return 0;
}


const char *
ngx_http_dynamo_stream_error(const ngx_http_dynamo_stream_t *s)
{
    return "not implemented";
}


const char *
ngx_http_dynamo_stream_finish_reason(const ngx_http_dynamo_stream_t *s)
{
    return NULL;
}


void
ngx_http_dynamo_stream_usage(const ngx_http_dynamo_stream_t *s,
    uint64_t *prompt, uint64_t *completion, uint64_t *cached)
{
    *prompt = *completion = *cached = 0;
}
