
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * Prometheus text exposition of dynamo_metrics locations.
 */


#include "ngx_http_dynamo_module.h"


#define NGX_HTTP_DYNAMO_METRICS_SIZE   (64 * 1024)
#define NGX_HTTP_DYNAMO_METRICS_MODEL  (4 * 1024)
/* one sample line of a per-worker family */
#define NGX_HTTP_DYNAMO_METRICS_WORKER                                       \
    (64 + sizeof("{worker=\"\"} \n") + KVR_ADDR_MAX + NGX_ATOMIC_T_LEN)


typedef struct {
    char                           *name;
    char                           *help;
    size_t                          offset;
} ngx_http_dynamo_counter_t;


typedef struct {
    char                           *name;
    char                           *type;
    char                           *help;
    size_t                          offset;
} ngx_http_dynamo_load_metric_t;


static ngx_int_t ngx_http_dynamo_metrics_worker(ngx_array_t *names,
    u_char *name, size_t len);
static u_char *ngx_http_dynamo_metrics_counters(
    ngx_http_dynamo_main_conf_t *dmcf, u_char *p, u_char *last);
static ngx_int_t ngx_http_dynamo_metrics_names(ngx_http_request_t *r,
    ngx_http_dynamo_main_conf_t *dmcf, ngx_array_t *names);
static u_char *ngx_http_dynamo_metrics_workers(
    ngx_http_dynamo_main_conf_t *dmcf, ngx_array_t *names, u_char *p,
    u_char *last);


static ngx_str_t  ngx_http_dynamo_metrics_type =
    ngx_string("text/plain; version=0.0.4");

static ngx_str_t  ngx_http_dynamo_metrics_allow = ngx_string("GET, HEAD");

static ngx_str_t  ngx_http_dynamo_metrics_not_allowed =
    ngx_string("method not allowed\n");

static ngx_str_t  ngx_http_dynamo_metrics_static = ngx_string(
    "# HELP dynamo_up Whether the ngx_dynamo module is serving.\n"
    "# TYPE dynamo_up gauge\n"
    "dynamo_up 1\n"
    "# HELP dynamo_build_info Build information of the ngx_dynamo module.\n"
    "# TYPE dynamo_build_info gauge\n"
    "dynamo_build_info{version=\"" NGX_HTTP_DYNAMO_VERSION "\","
    "nginx=\"" NGINX_VERSION "\"} 1\n"
);


#define ngx_http_dynamo_counter(n)                                           \
    offsetof(ngx_http_dynamo_counters_t, n)

static ngx_http_dynamo_counter_t  ngx_http_dynamo_counters[] = {
    { "dynamo_requests_total", "Requests routed to a worker.",
      ngx_http_dynamo_counter(requests) },
    { "dynamo_kv_hits_total",
      "Routed requests whose worker held a prefix of the prompt.",
      ngx_http_dynamo_counter(kv_hits) },
    { "dynamo_overlap_blocks_total",
      "Prompt blocks the chosen workers already held.",
      ngx_http_dynamo_counter(overlap_blocks) },
    { "dynamo_prompt_blocks_total", "Full prompt blocks of routed requests.",
      ngx_http_dynamo_counter(prompt_blocks) },
    { "dynamo_prompt_tokens_total", "Prompt tokens of finished requests.",
      ngx_http_dynamo_counter(prompt_tokens) },
    { "dynamo_completion_tokens_total", "Tokens generated for clients.",
      ngx_http_dynamo_counter(completion_tokens) },
    { "dynamo_cached_tokens_total",
      "Prompt tokens the workers found in their KV cache.",
      ngx_http_dynamo_counter(cached_tokens) },
    { "dynamo_errors_total", "Requests answered with an error status.",
      ngx_http_dynamo_counter(errors) },
    { "dynamo_no_worker_total", "Requests refused: no worker available.",
      ngx_http_dynamo_counter(no_worker) },
    { "dynamo_worker_failures_total",
      "Requests a worker failed (502s and error events).",
      ngx_http_dynamo_counter(worker_failures) },
    { "dynamo_cancelled_total", "Requests the client abandoned.",
      ngx_http_dynamo_counter(cancelled) },
    { "dynamo_prefill_hinted_total",
      "Requests of dynamo_prefill_upstream locations sent to the decode "
      "worker with a prefill worker.",
      ngx_http_dynamo_counter(prefill_hinted) },
    { "dynamo_prefill_unhinted_total",
      "Requests of dynamo_prefill_upstream locations sent without one "
      "(no prefill worker live): prefilled by the decode worker.",
      ngx_http_dynamo_counter(prefill_unhinted) },
    { NULL, NULL, 0 }
};


#define ngx_http_dynamo_load_field(n)                                        \
    offsetof(ngx_http_dynamo_load_t, n)

static ngx_http_dynamo_load_metric_t  ngx_http_dynamo_load_metrics[] = {
    { "dynamo_gateway_worker_in_flight", "gauge",
      "Requests this gateway has in flight at the worker.",
      ngx_http_dynamo_load_field(in_flight) },
    { "dynamo_gateway_worker_requests_total", "counter",
      "Requests this gateway sent to the worker.",
      ngx_http_dynamo_load_field(requests) },
    { "dynamo_gateway_worker_failures_total", "counter",
      "Failed attempts at the worker.",
      ngx_http_dynamo_load_field(fails) },
    { "dynamo_gateway_prefill_selections_total", "counter",
      "Requests this gateway chose the worker for as the prefill worker.",
      ngx_http_dynamo_load_field(prefills) },
    { "dynamo_gateway_worker_prefill_tokens", "gauge",
      "Uncached prompt tokens this gateway has in flight at the worker "
      "(as the decode or the prefill worker).",
      ngx_http_dynamo_load_field(prefill) },
    { NULL, NULL, NULL, 0 }
};


ngx_int_t
ngx_http_dynamo_metrics_handler(ngx_http_request_t *r)
{
    u_char                       *p, *last;
    size_t                          size;
    ngx_int_t                       rc;
    ngx_str_t                       body;
    ngx_array_t                     names;
    ngx_http_dynamo_main_conf_t    *dmcf;
    ngx_http_dynamo_load_metric_t  *lm;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        if (ngx_http_dynamo_set_allow(r, &ngx_http_dynamo_metrics_allow)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_dynamo_send(r, NGX_HTTP_NOT_ALLOWED,
                                    &ngx_http_dynamo_metrics_type,
                                    &ngx_http_dynamo_metrics_not_allowed);
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_dynamo_module);

    if (ngx_http_dynamo_shm_counters(dmcf) == NULL) {
        return ngx_http_dynamo_send(r, NGX_HTTP_OK,
                                    &ngx_http_dynamo_metrics_type,
                                    &ngx_http_dynamo_metrics_static);
    }

    if (ngx_http_dynamo_metrics_names(r, dmcf, &names) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    size = NGX_HTTP_DYNAMO_METRICS_SIZE
           + dmcf->models.nelts * NGX_HTTP_DYNAMO_METRICS_MODEL;

    for (lm = ngx_http_dynamo_load_metrics; lm->name; lm++) {
        size += names.nelts * NGX_HTTP_DYNAMO_METRICS_WORKER;
    }

    body.data = ngx_pnalloc(r->pool, size);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last = body.data + size;

    p = ngx_cpymem(body.data, ngx_http_dynamo_metrics_static.data,
                   ngx_http_dynamo_metrics_static.len);

    p = ngx_http_dynamo_metrics_counters(dmcf, p, last);
    p = ngx_http_dynamo_metrics_workers(dmcf, &names, p, last);
    p = ngx_http_dynamo_shm_metrics(dmcf, p, last);

    body.len = p - body.data;

    return ngx_http_dynamo_send(r, NGX_HTTP_OK, &ngx_http_dynamo_metrics_type,
                                &body);
}


static u_char *
ngx_http_dynamo_metrics_counters(ngx_http_dynamo_main_conf_t *dmcf, u_char *p,
    u_char *last)
{
    ngx_atomic_t                *v;
    ngx_http_dynamo_counter_t   *c;
    ngx_http_dynamo_counters_t  *counters;

    counters = ngx_http_dynamo_shm_counters(dmcf);

    for (c = ngx_http_dynamo_counters; c->name; c++) {
        v = (ngx_atomic_t *) ((u_char *) counters + c->offset);

        p = ngx_slprintf(p, last, "# HELP %s %s\n# TYPE %s counter\n%s %uA\n",
                         c->name, c->help, c->name, c->name, *v);
    }

    return p;
}


/* every worker address the router knows: server lines and registries */

static ngx_int_t
ngx_http_dynamo_metrics_names(ngx_http_request_t *r,
    ngx_http_dynamo_main_conf_t *dmcf, ngx_array_t *names)
{
    size_t                          nw, k;
    ngx_uint_t                      i, j;
    kvr_index_t                    *idx;
    kvr_index_stats_t               st;
    kvr_worker_info_t              *w;
    ngx_http_dynamo_server_t       *s;
    ngx_http_dynamo_srv_conf_t    **up;

    if (ngx_array_init(names, r->pool, 8, sizeof(ngx_str_t)) != NGX_OK) {
        return NGX_ERROR;
    }

    up = dmcf->upstreams.elts;

    for (i = 0; i < dmcf->upstreams.nelts; i++) {
        s = up[i]->servers.elts;

        for (j = 0; j < up[i]->servers.nelts; j++) {
            if (ngx_http_dynamo_metrics_worker(names, s[j].name.data,
                                               s[j].name.len)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    for (i = 0; i < dmcf->models.nelts; i++) {
        idx = ngx_http_dynamo_shm_index(dmcf, i);
        if (idx == NULL) {
            continue;
        }

        kvr_index_stats(idx, &st);

        /* a few more, for workers registering meanwhile */
        nw = st.workers + 8;

        w = ngx_palloc(r->pool, nw * sizeof(kvr_worker_info_t));
        if (w == NULL) {
            return NGX_ERROR;
        }

        nw = kvr_index_workers(idx, w, nw);

        for (k = 0; k < nw; k++) {
            w[k].addr[KVR_ADDR_MAX - 1] = '\0';

            if (ngx_http_dynamo_metrics_worker(names, (u_char *) w[k].addr,
                                               ngx_strlen(w[k].addr))
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


static u_char *
ngx_http_dynamo_metrics_workers(ngx_http_dynamo_main_conf_t *dmcf,
    ngx_array_t *names, u_char *p, u_char *last)
{
    ngx_str_t                      *name;
    ngx_uint_t                      i;
    ngx_atomic_uint_t               v;
    ngx_http_dynamo_load_t         *load;
    ngx_http_dynamo_load_metric_t  *lm;

    if (names->nelts == 0) {
        return p;
    }

    name = names->elts;

    for (lm = ngx_http_dynamo_load_metrics; lm->name; lm++) {
        p = ngx_slprintf(p, last, "# HELP %s %s\n# TYPE %s %s\n",
                         lm->name, lm->help, lm->name, lm->type);

        for (i = 0; i < names->nelts; i++) {
            /* no slot: nothing was routed there lately */

            load = ngx_http_dynamo_shm_load_find(dmcf, name[i].data,
                                                 name[i].len);

            v = load ? *(ngx_atomic_t *) ((u_char *) load + lm->offset) : 0;

            if ((size_t) (last - p) < NGX_HTTP_DYNAMO_METRICS_WORKER) {
                return p;
            }

            p = ngx_slprintf(p, last, "%s{worker=\"%V\"} %uA\n",
                             lm->name, &name[i], v);
        }
    }

    return p;
}


/* addresses only: nothing a label value would have to escape */

static ngx_int_t
ngx_http_dynamo_metrics_worker(ngx_array_t *names, u_char *name, size_t len)
{
    u_char      *d;
    ngx_str_t   *n;
    ngx_uint_t   i;

    n = names->elts;

    for (i = 0; i < names->nelts; i++) {
        if (n[i].len == len && ngx_strncmp(n[i].data, name, len) == 0) {
            return NGX_OK;
        }
    }

    for (i = 0; i < len; i++) {
        if (name[i] == '"' || name[i] == '\\' || name[i] < 0x20) {
            return NGX_OK;
        }
    }

    d = ngx_pnalloc(names->pool, len);
    if (d == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(d, name, len);

    n = ngx_array_push(names);
    if (n == NULL) {
        return NGX_ERROR;
    }

    n->data = d;
    n->len = len;

    return NGX_OK;
}
