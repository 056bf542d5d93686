
/*
 * ngx_dynamo: the worker's response body. Decodes its chunked transfer
 * encoding, splits the NDJSON frames (a frame may span reads and chunks)
 * and hands each to the stream, which appends the client's bytes to
 * st->out.
 */


#include "ngx_http_dynamo_upstream.h"


static ngx_int_t ngx_http_dynamo_up_lines(ngx_http_dynamo_up_t *st,
    u_char *p, size_t n);
static void ngx_http_dynamo_up_frame(ngx_http_dynamo_up_t *st, u_char *p,
    size_t n);
static void ngx_http_dynamo_up_prefilled(ngx_http_dynamo_up_t *st, int rc);


ngx_int_t
ngx_http_dynamo_up_feed(ngx_http_dynamo_up_t *st, u_char *pos, u_char *last)
{
    size_t     size;
    ngx_buf_t  b;
    ngx_int_t  rc;

    ngx_memzero(&b, sizeof(ngx_buf_t));

    b.pos = pos;
    b.last = last;

    while (b.pos < b.last) {

        if (st->last_chunk || st->broken) {
            st->extra = 1;
            break;
        }

        rc = ngx_http_parse_chunked(st->request, &b, &st->chunked);

        if (rc == NGX_OK) {
            size = ngx_min((off_t) (b.last - b.pos), st->chunked.size);

            if (ngx_http_dynamo_up_lines(st, b.pos, size) != NGX_OK) {
                return NGX_ERROR;
            }

            b.pos += size;
            st->chunked.size -= size;
            continue;
        }

        if (rc == NGX_DONE) {
            st->last_chunk = 1;

            if (st->line.len) {
                ngx_http_dynamo_up_frame(st, (u_char *) st->line.data,
                                         st->line.len);
                kvr_buf_reset(&st->line);
            }

            ngx_http_dynamo_up_fail(st, "The worker ended the response "
                                    "without a finish frame");
            continue;
        }

        if (rc == NGX_AGAIN) {
            break;
        }

        ngx_log_error(NGX_LOG_ERR, st->request->connection->log, 0,
                      "dynamo: worker sent invalid chunked response");

        st->broken = 1;
        ngx_http_dynamo_up_fail(st, "The worker sent an invalid response");
        break;
    }

    return NGX_OK;
}


void
ngx_http_dynamo_up_fail(ngx_http_dynamo_up_t *st, const char *message)
{
    if (st->finished) {
        return;
    }

    st->finished = 1;
    st->failed = 1;
    st->error = message;

    if (st->ctx->stream) {
        ngx_http_dynamo_stream_fail(st->ctx->stream, message, &st->out);
    }
}


static ngx_int_t
ngx_http_dynamo_up_lines(ngx_http_dynamo_up_t *st, u_char *p, size_t n)
{
    u_char  *nl;

    while (n && !st->finished) {

        nl = ngx_strlchr(p, p + n, '\n');

        if (nl == NULL) {
            if (st->line.len + n > NGX_HTTP_DYNAMO_LINE_MAX) {
                ngx_log_error(NGX_LOG_ERR, st->request->connection->log, 0,
                              "dynamo: worker sent a frame over %uz bytes",
                              (size_t) NGX_HTTP_DYNAMO_LINE_MAX);

                st->broken = 1;
                ngx_http_dynamo_up_fail(st, "The worker sent an invalid "
                                        "frame");
                return NGX_OK;
            }

            if (kvr_buf_append(&st->line, p, n) != 0) {
                return NGX_ERROR;
            }

            return NGX_OK;
        }

        if (st->line.len == 0) {
            ngx_http_dynamo_up_frame(st, p, nl - p);

        } else {
            if (kvr_buf_append(&st->line, p, nl - p) != 0) {
                return NGX_ERROR;
            }

            ngx_http_dynamo_up_frame(st, (u_char *) st->line.data,
                                     st->line.len);
            kvr_buf_reset(&st->line);
        }

        n -= nl + 1 - p;
        p = nl + 1;
    }

    return NGX_OK;
}


static void
ngx_http_dynamo_up_frame(ngx_http_dynamo_up_t *st, u_char *p, size_t n)
{
    int  rc;

    if (n && p[n - 1] == '\r') {
        n--;
    }

    if (n == 0 || st->finished || st->ctx->stream == NULL) {
        return;
    }

    rc = ngx_http_dynamo_stream_line(st->ctx->stream, (const char *) p, n,
                                     &st->out);

    if (st->ctx->prefill_load) {
        ngx_http_dynamo_up_prefilled(st, rc);
    }

    switch (rc) {

    case NGX_HTTP_DYNAMO_STREAM_MORE:
        return;

    case NGX_HTTP_DYNAMO_STREAM_DONE:
        st->finished = 1;
        st->cut = ngx_http_dynamo_stream_cut(st->ctx->stream) ? 1 : 0;
        return;

    default:
        st->finished = 1;
        st->failed = 1;
        st->error = ngx_http_dynamo_stream_error(st->ctx->stream);
        return;
    }
}


/* the first token (or the end) means the prompt was prefilled: the
   prefill worker's share in flight is released */

static void
ngx_http_dynamo_up_prefilled(ngx_http_dynamo_up_t *st, int rc)
{
    uint64_t  prompt, completion, cached;

    if (rc == NGX_HTTP_DYNAMO_STREAM_MORE) {
        ngx_http_dynamo_stream_usage(st->ctx->stream, &prompt, &completion,
                                     &cached);
        if (completion == 0) {
            return;
        }
    }

    ngx_http_dynamo_prefill_release(st->ctx);
}
