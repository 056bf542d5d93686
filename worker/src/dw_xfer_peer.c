/*
 * dynamo-worker: KV transfer endpoints, one per peer worker address,
 * and remotes (a peer's registered pool: its rkey and layout).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ucp/api/ucp.h>

#include "dw_err.h"
#include "dw_xfer_int.h"

void
dw_xfer_peer_fail(peer_t *p, const char *why)
{
    if (p->failed) {
        return;
    }
    p->failed = 1;
    snprintf(p->why, sizeof(p->why), "%s", why);
    p->x->st.peer_errors++;
}

static void
ep_err_cb(void *arg, ucp_ep_h ep, ucs_status_t status)
{
    peer_t  *p = arg;
    char     why[96];

    snprintf(why, sizeof(why), "peer failed: %s", ucs_status_string(status));
    dw_xfer_peer_fail(p, why);
}

static void
close_cb(void *request, ucs_status_t status, void *user_data)
{
    peer_t  *p = user_data;

    ucp_request_free(request);
    p->close_req = NULL;
    p->ep = NULL;
}

/* Force-closes the endpoints of failed peers; frees unreferenced ones. */
void
dw_xfer_peers_reap(dw_xfer_t *x)
{
    peer_t            **pp = &x->peers, *p;
    ucp_request_param_t prm;
    void               *r;

    while ((p = *pp) != NULL) {
        if (p->failed && p->ep != NULL && p->close_req == NULL) {
            memset(&prm, 0, sizeof(prm));
            prm.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS
                               | UCP_OP_ATTR_FIELD_CALLBACK
                               | UCP_OP_ATTR_FIELD_USER_DATA;
            /* flush mode lets the peer drop its side cleanly */
            prm.flags = p->graceful ? 0 : UCP_EP_CLOSE_FLAG_FORCE;
            prm.cb.send = close_cb;
            prm.user_data = p;
            r = ucp_ep_close_nbx(p->ep, &prm);
            if (UCS_PTR_IS_PTR(r)) {
                p->close_req = r;
            } else {
                p->ep = NULL;
            }
        }
        if (p->failed && p->ep == NULL && p->refs == 0) {
            *pp = p->next;
            free(p->addr);
            free(p);
            continue;
        }
        pp = &p->next;
    }
}

static peer_t *
peer_get(dw_xfer_t *x, const unsigned char *addr, size_t len, char *err,
    size_t errlen)
{
    ucp_ep_params_t  ep;
    ucs_status_t     s;
    peer_t          *p;

    for (p = x->peers; p != NULL; p = p->next) {
        if (!p->failed && p->addr_len == len
            && memcmp(p->addr, addr, len) == 0)
        {
            return p;
        }
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL || (p->addr = malloc(len)) == NULL) {
        free(p);
        dw_errf(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(p->addr, addr, len);
    p->addr_len = len;
    p->x = x;
    memset(&ep, 0, sizeof(ep));
    ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS;
    if (!x->no_peer_errors) {
        ep.field_mask |= UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE
                         | UCP_EP_PARAM_FIELD_ERR_HANDLER;
    } else {
        p->no_err_mode = 1;
    }
    ep.address = (const ucp_address_t *) p->addr;
    ep.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    ep.err_handler.cb = ep_err_cb;
    ep.err_handler.arg = p;
    s = ucp_ep_create(x->worker, &ep, &p->ep);
    if (s == UCS_ERR_UNREACHABLE && !p->no_err_mode) {
        /*
         * UCX 1.13's shared-memory transports (posix, sysv) cannot detect
         * a dead peer, so no path qualifies for PEER mode: connect
         * without it. Batch deadlines are then the only failure signal.
         */
        ep.field_mask &= ~(uint64_t) (UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE
                                      | UCP_EP_PARAM_FIELD_ERR_HANDLER);
        p->no_err_mode = 1;
        s = ucp_ep_create(x->worker, &ep, &p->ep);
    }
    if (s != UCS_OK) {
        dw_errf(err, errlen, "ucp_ep_create: %s", ucs_status_string(s));
        free(p->addr);
        free(p);
        return NULL;
    }
    if (getenv("DW_XFER_EP_INFO") != NULL) {
        /* diagnostics: which transport carries which operation */
        ucp_ep_print_info(p->ep, stderr);
    }
    p->next = x->peers;
    x->peers = p;
    return p;
}

int
dw_xfer_connect(dw_xfer_t *x, const dw_xfer_desc_t *d,
    const dw_xfer_layout_t *local, dw_xfer_remote_t **out, char *err,
    size_t errlen)
{
    dw_xfer_remote_t  *rm;
    peer_t            *p;
    ucs_status_t       s;
    char               why[160];

    *out = NULL;
    if (dw_xfer_layout_validate(&d->layout, d->length, err, errlen) != 0) {
        return -1;
    }
    if (local != NULL && dw_xfer_layout_check(local, &d->layout, why,
                                              sizeof(why)) != 0)
    {
        dw_errf(err, errlen, "KV layouts differ: %s", why);
        return -1;
    }
    if (d->addr_len == 0 || d->rkey_len == 0) {
        dw_errf(err, errlen, "descriptor without address or rkey");
        return -1;
    }
    rm = calloc(1, sizeof(*rm));
    if (rm == NULL) {
        dw_errf(err, errlen, "out of memory");
        return -1;
    }
    p = peer_get(x, d->addr, d->addr_len, err, errlen);
    if (p == NULL) {
        free(rm);
        return -1;
    }
    s = ucp_ep_rkey_unpack(p->ep, d->rkey, &rm->rkey);
    if (s != UCS_OK) {
        free(rm);
        dw_errf(err, errlen, "ucp_ep_rkey_unpack: %s", ucs_status_string(s));
        return -1;
    }
    p->refs++;
    rm->refs = 1;
    rm->peer = p;
    rm->layout = d->layout;
    rm->base = d->base;
    rm->length = d->length;
    *out = rm;
    return 0;
}

void
dw_xfer_remote_unref(dw_xfer_remote_t *rm)
{
    if (rm == NULL || --rm->refs > 0) {
        return;
    }
    ucp_rkey_destroy(rm->rkey);
    rm->peer->refs--;
    free(rm);
}

/* Batches still using rm keep its rkey until they are released. */
void
dw_xfer_remote_free(dw_xfer_t *x, dw_xfer_remote_t *rm)
{
    if (rm == NULL) {
        return;
    }
    dw_xfer_remote_unref(rm);
    dw_xfer_peers_reap(x);
}
