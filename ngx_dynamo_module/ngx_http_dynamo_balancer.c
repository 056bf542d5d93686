
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * The peer selection of a dynamo_upstream block. The choice itself was
 * made by the router before the upstream starts (ctx->picks, best first):
 * get hands out the current pick without any I/O, free moves down the
 * list after a failure. Load in flight is counted in the shared zone for
 * the pick in use and undone exactly once when that attempt ends. Works
 * under the stock "keepalive" directive, which wraps these handlers.
 */


#include "ngx_http_dynamo_upstream.h"


static ngx_int_t ngx_http_dynamo_balancer_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_dynamo_balancer_get_peer(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_dynamo_balancer_free_peer(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state);


ngx_int_t
ngx_http_dynamo_balancer_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_uint_t                   i, j, n;
    ngx_http_upstream_server_t  *server;
    ngx_http_dynamo_server_t    *ds;
    ngx_http_dynamo_srv_conf_t  *dscf;

    dscf = ngx_http_conf_upstream_srv_conf(us, ngx_dynamo_module);

    us->peer.init = ngx_http_dynamo_balancer_init_peer;

    n = 0;

    if (us->servers) {
        server = us->servers->elts;

        for (i = 0; i < us->servers->nelts; i++) {
            if (!server[i].down) {
                n += server[i].naddrs;
            }
        }
    }

    if (ngx_array_init(&dscf->servers, cf->pool, n ? n : 1,
                       sizeof(ngx_http_dynamo_server_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (us->servers == NULL) {
        return NGX_OK;
    }

    server = us->servers->elts;

    for (i = 0; i < us->servers->nelts; i++) {

        if (server[i].down) {
            continue;
        }

        for (j = 0; j < server[i].naddrs; j++) {
            ds = ngx_array_push(&dscf->servers);
            if (ds == NULL) {
                return NGX_ERROR;
            }

            ds->name = server[i].addrs[j].name;
            ds->sockaddr = server[i].addrs[j].sockaddr;
            ds->socklen = server[i].addrs[j].socklen;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynamo_balancer_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_upstream_t   *u;
    ngx_http_dynamo_up_t  *st;

    u = r->upstream;

    /* proxy_pass to this upstream sets its own input_filter_ctx */

    if (u->output.tag != (ngx_buf_tag_t) &ngx_dynamo_module) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "dynamo_upstream \"%V\" used outside dynamo_pass",
                      &us->host);
        return NGX_ERROR;
    }

    st = u->input_filter_ctx;

    u->peer.get = ngx_http_dynamo_balancer_get_peer;
    u->peer.free = ngx_http_dynamo_balancer_free_peer;
    u->peer.data = st;
    u->peer.tries = ngx_max(st->ctx->npicks, 1);

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynamo_balancer_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_dynamo_up_t *st = data;

    size_t                        cached;
    ngx_http_dynamo_ctx_t        *ctx;
    ngx_http_dynamo_pick_t       *pick;
    ngx_http_dynamo_load_t       *load;
    ngx_http_dynamo_main_conf_t  *dmcf;

    ctx = st->ctx;

    if (ctx->pick >= ctx->npicks) {
        return NGX_BUSY;
    }

    pick = &ctx->picks[ctx->pick];

    pc->sockaddr = pick->sockaddr;
    pc->socklen = pick->socklen;
    pc->name = &pick->name;

    ngx_http_dynamo_balancer_release(st);

    dmcf = ngx_http_get_module_main_conf(st->request, ngx_dynamo_module);
    load = ngx_http_dynamo_shm_load_claim(dmcf, pick->name.data,
                                          pick->name.len);

    if (load) {
        cached = pick->overlap_blocks
                 * (ctx->model ? ctx->model->block_size : 0);
        cached = ngx_min(cached, ctx->n_prompt_ids);

        st->load = load;
        st->load_blocks = ctx->n_blocks;
        st->load_prefill = ctx->n_prompt_ids - cached;

        ngx_http_dynamo_shm_load_add(load, 1, st->load_blocks,
                                     st->load_prefill);
        (void) ngx_atomic_fetch_add(&load->requests, 1);
    }

    ctx->load = load;

    return NGX_OK;
}


static void
ngx_http_dynamo_balancer_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_http_dynamo_up_t *st = data;

    ngx_http_dynamo_ctx_t   *ctx;
    ngx_http_dynamo_load_t  *load;

    ctx = st->ctx;
    load = st->load;

    ngx_http_dynamo_balancer_release(st);

    if (pc->tries) {
        pc->tries--;
    }

    if (state & NGX_PEER_FAILED) {

        /*
         * a kept-alive connection that the worker had closed fails before
         * any byte of an answer: nginx tries again (tries++), on the same
         * worker with a new connection
         */

        if (pc->cached && st->phase == NGX_HTTP_DYNAMO_UP_STATUS
            && st->status.count == 0
            && !(pc->connection
                 && (pc->connection->read->timedout
                     || pc->connection->write->timedout)))
        {
            return;
        }

        if (load) {
            load->failed_until = ngx_current_msec
                                 + NGX_HTTP_DYNAMO_FAIL_TIMEOUT;
            (void) ngx_atomic_fetch_add(&load->fails, 1);
        }

        if (ctx->pick < ctx->npicks) {
            ngx_log_error(NGX_LOG_WARN, st->request->connection->log, 0,
                          "dynamo: worker %V failed, %ui left to try",
                          &ctx->picks[ctx->pick].name,
                          ctx->npicks - ctx->pick - 1);
            ctx->pick++;
        }

        return;
    }

    if ((state & NGX_PEER_NEXT) && ctx->pick < ctx->npicks) {
        ctx->pick++;
    }
}


void
ngx_http_dynamo_balancer_release(ngx_http_dynamo_up_t *st)
{
    ngx_http_dynamo_load_t  *load;

    load = st->load;

    if (load == NULL) {
        return;
    }

    st->load = NULL;
    st->ctx->load = NULL;

    ngx_http_dynamo_shm_load_add(load, -1, -st->load_blocks,
                                 -st->load_prefill);

    load->used = ngx_time();
}
