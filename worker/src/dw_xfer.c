/*
 * dynamo-worker: KV block transfer over UCX: the context, its progress,
 * memory registration (see dw_xfer.h, dw_xfer_int.h).
 */
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ucp/api/ucp.h>

#include "dw_err.h"
#include "dw_xfer_int.h"

double
dw_xfer_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

int
dw_xfer_create(const dw_xfer_opts_t *o, dw_xfer_t **out, char *err,
    size_t errlen)
{
    ucp_config_t        *cfg = NULL;
    ucp_params_t         cp;
    ucp_worker_params_t  wp;
    ucp_am_handler_param_t am;
    ucs_status_t         s;
    dw_xfer_t           *x;
    const char          *tls = o != NULL ? o->tls : NULL;

    *out = NULL;
    x = calloc(1, sizeof(*x));
    if (x == NULL) {
        dw_errf(err, errlen, "out of memory");
        return -1;
    }
    x->efd = -1;
    x->no_peer_errors = o != NULL && o->no_peer_errors;
    if (tls == NULL || tls[0] == '\0') {
        tls = getenv("UCX_TLS");
    }
    snprintf(x->tls, sizeof(x->tls), "%s",
             tls != NULL && tls[0] != '\0' ? tls : "default");
    s = ucp_config_read(NULL, NULL, &cfg);
    if (s == UCS_OK && tls != NULL && tls[0] != '\0') {
        s = ucp_config_modify(cfg, "TLS", tls);
        if (s != UCS_OK) {
            ucp_config_release(cfg);
            free(x);
            dw_errf(err, errlen, "transports \"%s\": %s", tls,
                    ucs_status_string(s));
            return -1;
        }
    }
    /*
     * UCX 1.13's tcp PUT (its own RMA protocol on the socket) now and
     * then crashes the receiving side under load (a segfault in
     * uct_tcp_iface_progress: a decode worker died in 10 of 40 first
     * transfers on 2 busy cores, in none of 40 without it). Without it
     * UCP carries puts over tcp active messages (software RMA): the same
     * calls, the same bytes. UCX_TCP_PUT_ENABLE in the environment still
     * decides; the result is ignored where there is no tcp transport.
     */
    if (s == UCS_OK && getenv("UCX_TCP_PUT_ENABLE") == NULL) {
        /* a transport option: named without its "TCP_" prefix here */
        (void) ucp_config_modify(cfg, "PUT_ENABLE", "n");
    }
    if (s != UCS_OK) {
        free(x);
        dw_errf(err, errlen, "ucp_config_read: %s", ucs_status_string(s));
        return -1;
    }
    memset(&cp, 0, sizeof(cp));
    cp.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED
                    | UCP_PARAM_FIELD_NAME;
    cp.features = UCP_FEATURE_RMA | UCP_FEATURE_AM | UCP_FEATURE_WAKEUP;
    cp.mt_workers_shared = 0;
    cp.name = o != NULL && o->name != NULL ? o->name : "dynamo-worker";
    s = ucp_init(&cp, cfg, &x->ctx);
    ucp_config_release(cfg);
    if (s != UCS_OK) {
        dw_errf(err, errlen, "ucp_init (transports %s): %s", x->tls,
                ucs_status_string(s));
        free(x);
        return -1;
    }
    memset(&wp, 0, sizeof(wp));
    wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    wp.thread_mode = UCS_THREAD_MODE_SINGLE;
    s = ucp_worker_create(x->ctx, &wp, &x->worker);
    if (s != UCS_OK) {
        dw_errf(err, errlen, "ucp_worker_create: %s", ucs_status_string(s));
        goto fail;
    }
    s = ucp_worker_get_efd(x->worker, &x->efd);
    if (s == UCS_OK) {
        s = ucp_worker_get_address(x->worker, &x->addr, &x->addr_len);
    }
    if (s != UCS_OK) {
        dw_errf(err, errlen, "ucp worker setup: %s", ucs_status_string(s));
        goto fail;
    }
    memset(&am, 0, sizeof(am));
    am.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID
                    | UCP_AM_HANDLER_PARAM_FIELD_FLAGS
                    | UCP_AM_HANDLER_PARAM_FIELD_CB
                    | UCP_AM_HANDLER_PARAM_FIELD_ARG;
    am.id = AM_NOTE;
    am.flags = UCP_AM_FLAG_WHOLE_MSG;
    am.cb = dw_xfer_am_note_cb;
    am.arg = x;
    s = ucp_worker_set_am_recv_handler(x->worker, &am);
    if (s != UCS_OK) {
        dw_errf(err, errlen, "ucp AM handler: %s", ucs_status_string(s));
        goto fail;
    }
    *out = x;
    return 0;

fail:
    if (x->addr != NULL) {
        ucp_worker_release_address(x->worker, x->addr);
    }
    if (x->worker != NULL) {
        ucp_worker_destroy(x->worker);
    }
    ucp_cleanup(x->ctx);
    free(x);
    return -1;
}

const char *
dw_xfer_tls(const dw_xfer_t *x)
{
    return x->tls;
}

int
dw_xfer_efd(const dw_xfer_t *x)
{
    return x->efd;
}

void
dw_xfer_stats(const dw_xfer_t *x, dw_xfer_stats_t *s)
{
    *s = x->st;
}

unsigned
dw_xfer_progress(dw_xfer_t *x)
{
    dw_xfer_req_t  *q, *nx;
    unsigned        n = 0, k;
    double          now;

    while ((k = ucp_worker_progress(x->worker)) > 0 && n < 1024) {
        n += k;
    }
    if (x->reqs != NULL) {
        /* a done callback may free batches: they are only marked then
           (dw_xfer_req_free), and released here */
        now = dw_xfer_now();
        x->walking = 1;
        for (q = x->reqs; q != NULL; q = q->next) {
            dw_xfer_req_advance(x, q, now);
        }
        x->walking = 0;
        for (q = x->reqs; q != NULL; q = nx) {
            nx = q->next;
            if (q->orphan && q->ucx == NULL) {
                dw_xfer_req_release(x, q);
            }
        }
    }
    dw_xfer_peers_reap(x);
    dw_xfer_notes_deliver(x);
    return n;
}

/* progress rounds per drive: each handles up to ~1024 UCX events */
#define DRIVE_ROUNDS  64

int
dw_xfer_drive(dw_xfer_t *x)
{
    unsigned  i;

    for (i = 0; i < DRIVE_ROUNDS; i++) {
        if (dw_xfer_progress(x) > 0) {
            continue;
        }
        if (ucp_worker_arm(x->worker) != UCS_ERR_BUSY) {
            return 0;
        }
    }
    return 1;
}

int
dw_xfer_register(dw_xfer_t *x, void *base, size_t length,
    const dw_xfer_layout_t *l, dw_xfer_reg_t **out, char *err, size_t errlen)
{
    ucp_mem_map_params_t  mp;
    dw_xfer_reg_t        *r;
    ucs_status_t          s;

    *out = NULL;
    if (dw_xfer_layout_validate(l, length, err, errlen) != 0) {
        return -1;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        dw_errf(err, errlen, "out of memory");
        return -1;
    }
    memset(&mp, 0, sizeof(mp));
    mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS
                    | UCP_MEM_MAP_PARAM_FIELD_LENGTH
                    | UCP_MEM_MAP_PARAM_FIELD_FLAGS;
    mp.address = base;
    mp.length = length;
    mp.flags = base == NULL ? UCP_MEM_MAP_ALLOCATE : 0;
    s = ucp_mem_map(x->ctx, &mp, &r->memh);
    if (s != UCS_OK) {
        free(r);
        dw_errf(err, errlen, "ucp_mem_map of %zu bytes: %s", length,
                ucs_status_string(s));
        return -1;
    }
    if (base == NULL) {
        ucp_mem_attr_t  ma;

        ma.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS
                        | UCP_MEM_ATTR_FIELD_LENGTH;
        s = ucp_mem_query(r->memh, &ma);
        if (s != UCS_OK || ma.length < length) {
            ucp_mem_unmap(x->ctx, r->memh);
            free(r);
            dw_errf(err, errlen, "ucp_mem_query: %s", s != UCS_OK
                    ? ucs_status_string(s) : "region shorter than asked");
            return -1;
        }
        base = ma.address;
    }
    s = ucp_rkey_pack(x->ctx, r->memh, &r->rkey, &r->rkey_len);
    if (s != UCS_OK) {
        ucp_mem_unmap(x->ctx, r->memh);
        free(r);
        dw_errf(err, errlen, "ucp_rkey_pack: %s", ucs_status_string(s));
        return -1;
    }
    r->x = x;
    r->base = base;
    r->length = length;
    r->layout = *l;
    *out = r;
    return 0;
}

void
dw_xfer_unregister(dw_xfer_t *x, dw_xfer_reg_t *r)
{
    if (r == NULL) {
        return;
    }
    ucp_rkey_buffer_release(r->rkey);
    ucp_mem_unmap(x->ctx, r->memh);
    free(r);
}

void *
dw_xfer_reg_base(const dw_xfer_reg_t *r)
{
    return r->base;
}

void
dw_xfer_reg_desc(const dw_xfer_reg_t *r, dw_xfer_desc_t *d)
{
    memset(d, 0, sizeof(*d));
    d->layout = r->layout;
    d->base = (uint64_t) (uintptr_t) r->base;
    d->length = r->length;
    d->addr = (unsigned char *) r->x->addr;
    d->addr_len = r->x->addr_len;
    d->rkey = r->rkey;
    d->rkey_len = r->rkey_len;
}

int
dw_xfer_describe(const dw_xfer_reg_t *r, char **out, size_t *len, char *err,
    size_t errlen)
{
    dw_xfer_desc_t  d;

    dw_xfer_reg_desc(r, &d);
    return dw_xfer_desc_encode(&d, out, len, err, errlen);
}

void
dw_xfer_destroy(dw_xfer_t *x)
{
    peer_t         *p;
    dw_xfer_req_t  *q, *nx;
    note_t         *n;
    expect_t       *e;
    double          end;

    if (x == NULL) {
        return;
    }
    /* endpoints with unfinished batches are forced, others flushed; a
       done callback may free its batch: walking defers that */
    x->walking = 1;
    for (q = x->reqs; q != NULL; q = q->next) {
        if (q->state < Q_OK) {
            dw_xfer_req_finish(x, q, 0, "%s", "transfer context closed");
            dw_xfer_peer_fail(q->peer, "transfer context closed");
        }
        q->orphan = 1;
    }
    x->walking = 0;
    for (p = x->peers; p != NULL; p = p->next) {
        if (!p->failed) {
            p->failed = 1;
            p->graceful = 1;
        }
    }
    dw_xfer_peers_reap(x);
    /* force closes purge requests at once; flush closes need the peer:
       bound the wait (a close still pending goes with the worker) */
    end = dw_xfer_now() + 2.0;
    while (dw_xfer_now() < end) {
        int  busy = 0;

        ucp_worker_progress(x->worker);
        for (q = x->reqs; q != NULL; q = nx) {
            nx = q->next;
            if (q->ucx == NULL) {
                dw_xfer_req_release(x, q);
            } else {
                busy = 1;
            }
        }
        for (p = x->peers; p != NULL; p = p->next) {
            busy |= p->close_req != NULL;
        }
        if (!busy) {
            break;
        }
    }
    /* rkeys go before the worker (they may sit in its memory pool) */
    for (q = x->reqs; q != NULL; q = q->next) {
        dw_xfer_remote_unref(q->rm);
        q->rm = NULL;
    }
    while ((n = x->notes) != NULL) {
        x->notes = n->next;
        free(n);
    }
    while ((e = x->expects) != NULL) {
        x->expects = e->next;
        free(e);
    }
    ucp_worker_release_address(x->worker, x->addr);
    ucp_worker_destroy(x->worker);
    ucp_cleanup(x->ctx);
    /* what UCX never completed cannot call back any more: free it now */
    while ((q = x->reqs) != NULL) {
        x->reqs = q->next;
        free(q);
    }
    while ((p = x->peers) != NULL) {
        x->peers = p->next;
        free(p->addr);
        free(p);
    }
    free(x);
}
