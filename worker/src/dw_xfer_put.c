/*
 * dynamo-worker: KV transfer batches: puts, flush, notification, and
 * their completion, deadlines and aborts.
 */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ucp/api/ucp.h>

#include "dw_err.h"
#include "dw_xfer_int.h"

static void
req_unlink(dw_xfer_t *x, dw_xfer_req_t *q)
{
    if (q->prev != NULL) {
        q->prev->next = q->next;
    } else {
        x->reqs = q->next;
    }
    if (q->next != NULL) {
        q->next->prev = q->prev;
    }
    q->next = q->prev = NULL;
}

void
dw_xfer_req_release(dw_xfer_t *x, dw_xfer_req_t *q)
{
    req_unlink(x, q);
    dw_xfer_remote_unref(q->rm);
    q->peer->refs--;
    free(q);
}

void
dw_xfer_ucx_cb(void *request, ucs_status_t status, void *user_data)
{
    dw_xfer_req_t  *q = user_data;

    ucp_request_free(request);
    q->ucx = NULL;
    q->ucx_done = 1;
    q->ucx_status = status;
}

void
dw_xfer_req_finish(dw_xfer_t *x, dw_xfer_req_t *q, int ok, const char *fmt,
    const char *arg)
{
    q->t1 = dw_xfer_now();
    if (ok) {
        q->state = Q_OK;
        x->st.transfers++;
        x->st.blocks += q->blocks;
        x->st.bytes += q->bytes;
        x->st.seconds += q->t1 - q->t0;
    } else {
        q->state = Q_FAILED;
        x->st.failures++;
        snprintf(q->err, sizeof(q->err), fmt, arg);
    }
    if (q->done != NULL && !q->orphan) {
        q->done(q->arg, q, ok ? 0 : -1, ok ? NULL : q->err);
    }
}

/* Records a UCX call's result: done now, pending, or an error. */
static void
req_track(dw_xfer_req_t *q, void *r)
{
    if (UCS_PTR_IS_PTR(r)) {
        q->ucx = r;
        q->ucx_done = 0;
    } else {
        q->ucx_done = 1;
        q->ucx_status = UCS_PTR_STATUS(r);
    }
}

static void
req_send_note(dw_xfer_req_t *q)
{
    ucp_request_param_t  prm;

    memset(&prm, 0, sizeof(prm));
    prm.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA
                       | UCP_OP_ATTR_FIELD_FLAGS;
    prm.cb.send = dw_xfer_ucx_cb;
    prm.user_data = q;
    prm.flags = UCP_AM_SEND_FLAG_EAGER;
    q->state = Q_NOTE;
    req_track(q, ucp_am_send_nbx(q->peer->ep, AM_NOTE, &q->hdr,
                                 sizeof(q->hdr), q->note, q->hdr.len, &prm));
}

/* Moves q on after its UCX request completed, or on its deadline. */
void
dw_xfer_req_advance(dw_xfer_t *x, dw_xfer_req_t *q, double now)
{
    char  msg[64];

    if (q->state >= Q_OK) {
        return;
    }
    if (q->ucx_done) {
        if (q->ucx_status != UCS_OK) {
            /* the peer's handler has the better reason */
            dw_xfer_req_finish(x, q, 0, "%s", q->peer->failed ? q->peer->why
                       : ucs_status_string(q->ucx_status));
            dw_xfer_peer_fail(q->peer, "request failed");
        } else if (q->state == Q_FLUSH && !q->no_note) {
            req_send_note(q);
            if (q->ucx_done) {
                dw_xfer_req_advance(x, q, now);
            }
        } else {
            dw_xfer_req_finish(x, q, 1, NULL, NULL);
        }
        return;
    }
    if (q->peer->failed) {
        dw_xfer_req_finish(x, q, 0, "%s", q->peer->why);
    } else if (q->deadline > 0 && now > q->deadline) {
        snprintf(msg, sizeof(msg), "transfer timed out after %.0f ms",
                 (q->deadline - q->t0) * 1e3);
        dw_xfer_req_finish(x, q, 0, "%s", msg);
        dw_xfer_peer_fail(q->peer, msg);
    }
}

/* Length of the run of pairs from i with consecutive ids on both sides
 * (1 when a side's blocks are not back to back in memory). */
static uint32_t
run_len(const dw_xfer_put_t *p, uint32_t i, int mergeable)
{
    uint32_t  k = 1;

    if (!mergeable) {
        return 1;
    }
    while (i + k < p->n && p->src[i + k] == p->src[i] + k
           && p->dst[i + k] == p->dst[i] + k)
    {
        k++;
    }
    return k;
}

/* Everything that can be refused before a byte is sent. */
static int
put_check(const dw_xfer_remote_t *rm, const dw_xfer_reg_t *r,
    const dw_xfer_put_t *p, char *err, size_t errlen)
{
    const dw_xfer_layout_t  *ll = &r->layout, *rl = &rm->layout;
    uint32_t                 i;
    char                     why[160];

    if (rm->peer->failed) {
        dw_errf(err, errlen, "%s", rm->peer->why);
        return -1;
    }
    if (dw_xfer_layout_check(ll, rl, why, sizeof(why)) != 0) {
        dw_errf(err, errlen, "KV layouts differ: %s", why);
        return -1;
    }
    if (p->note_len > DW_XFER_NOTE_MAX || (p->note_len > 0 && !p->note)) {
        dw_errf(err, errlen, "notification payload over %d bytes",
                DW_XFER_NOTE_MAX);
        return -1;
    }
    for (i = 0; i < p->n; i++) {
        if (p->src[i] >= ll->n_blocks || p->dst[i] >= rl->n_blocks) {
            dw_errf(err, errlen, "block pair %" PRIu32 ": %" PRIu32 " -> %"
                    PRIu32 " outside the pools (%" PRIu32 ", %" PRIu32
                    " blocks)", i, p->src[i], p->dst[i], ll->n_blocks,
                    rl->n_blocks);
            return -1;
        }
    }
    return 0;
}

/*
 * Issues the puts of p (their requests freed at once: the flush that
 * follows is their completion) and adds their bytes to q. -1 when UCX
 * refuses one: earlier ones may be in flight, so the endpoint goes.
 */
static int
put_issue(dw_xfer_t *x, dw_xfer_remote_t *rm, const dw_xfer_reg_t *r,
    const dw_xfer_put_t *p, dw_xfer_req_t *q, char *err, size_t errlen)
{
    const dw_xfer_layout_t  *ll = &r->layout, *rl = &rm->layout;
    ucp_request_param_t      prm;
    uint32_t                 i, k, l, s;
    uint64_t                 lo, ro, len;
    void                    *rq;
    int                      merge;

    merge = ll->block_stride == ll->chunk_bytes
            && rl->block_stride == rl->chunk_bytes;
    memset(&prm, 0, sizeof(prm));
    prm.op_attr_mask = UCP_OP_ATTR_FLAG_MULTI_SEND;
    for (i = 0; i < p->n; i += k) {
        k = run_len(p, i, merge);
        len = k * ll->chunk_bytes;
        for (l = 0; l < ll->n_layers; l++) {
            for (s = 0; s < 2; s++) {
                lo = dw_xfer_chunk_off(ll, l, s, p->src[i]);
                ro = dw_xfer_chunk_off(rl, l, s, p->dst[i]);
                rq = ucp_put_nbx(rm->peer->ep, (char *) r->base + lo, len,
                                 rm->base + ro, rm->rkey, &prm);
                x->st.puts++;
                if (UCS_PTR_IS_ERR(rq)) {
                    dw_errf(err, errlen, "ucp_put_nbx: %s",
                            ucs_status_string(UCS_PTR_STATUS(rq)));
                    dw_xfer_peer_fail(rm->peer, "put failed");
                    dw_xfer_peers_reap(x);
                    return -1;
                }
                if (rq != NULL) {
                    ucp_request_free(rq);
                }
            }
        }
        q->bytes += len * 2 * ll->n_layers;
    }
    return 0;
}

int
dw_xfer_put(dw_xfer_t *x, dw_xfer_remote_t *rm, const dw_xfer_reg_t *r,
    const dw_xfer_put_t *p, dw_xfer_req_t **out, char *err, size_t errlen)
{
    ucp_request_param_t  prm;
    dw_xfer_req_t       *q;

    *out = NULL;
    if (put_check(rm, r, p, err, errlen) != 0) {
        return -1;
    }
    q = calloc(1, sizeof(*q));
    if (q == NULL) {
        dw_errf(err, errlen, "out of memory");
        return -1;
    }
    q->x = x;
    q->peer = rm->peer;
    q->t0 = dw_xfer_now();
    q->deadline = p->timeout_ms > 0 ? q->t0 + p->timeout_ms * 1e-3 : 0;
    q->blocks = p->n;
    q->no_note = p->no_note;
    q->done = p->done;
    q->arg = p->arg;
    q->hdr.magic = NOTE_MAGIC;
    q->hdr.status = p->note_status;
    q->hdr.id = p->id;
    q->hdr.len = (uint32_t) p->note_len;
    if (p->note_len > 0) {
        memcpy(q->note, p->note, p->note_len);
    }
    if (put_issue(x, rm, r, p, q, err, errlen) != 0) {
        x->st.failures++;
        free(q);
        return -1;
    }
    memset(&prm, 0, sizeof(prm));
    prm.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    prm.cb.send = dw_xfer_ucx_cb;
    prm.user_data = q;
    q->state = Q_FLUSH;
    req_track(q, ucp_ep_flush_nbx(rm->peer->ep, &prm));
    rm->peer->refs++;
    rm->refs++;
    q->rm = rm;
    q->next = x->reqs;
    if (x->reqs != NULL) {
        x->reqs->prev = q;
    }
    x->reqs = q;
    *out = q;
    return 0;
}

int
dw_xfer_req_status(const dw_xfer_req_t *q, char *err, size_t errlen)
{
    if (q->state == Q_OK) {
        return 1;
    }
    if (q->state == Q_FAILED) {
        dw_errf(err, errlen, "%s", q->err);
        return -1;
    }
    return 0;
}

int
dw_xfer_req_wait(dw_xfer_t *x, dw_xfer_req_t *q, uint32_t timeout_ms,
    char *err, size_t errlen)
{
    double         end = dw_xfer_now() + timeout_ms * 1e-3, left;
    struct pollfd  pfd;
    unsigned       idle = 0;

    while (q->state < Q_OK) {
        if (dw_xfer_progress(x) > 0) {
            idle = 0;
            continue;
        }
        if (q->state >= Q_OK) {
            break;
        }
        left = end - dw_xfer_now();
        if (left <= 0) {
            dw_xfer_req_finish(x, q, 0, "%s", "transfer wait timed out");
            dw_xfer_peer_fail(q->peer, "transfer wait timed out");
            dw_xfer_peers_reap(x);
            break;
        }
        /* spin a little (bandwidth), then sleep on the wakeup fd */
        if (++idle < 64) {
            continue;
        }
        if (ucp_worker_arm(x->worker) == UCS_OK) {
            pfd.fd = x->efd;
            pfd.events = POLLIN;
            (void) poll(&pfd, 1, left > 0.01 ? 10 : (int) (left * 1e3) + 1);
        }
        idle = 0;
    }
    return dw_xfer_req_status(q, err, errlen);
}

void
dw_xfer_req_result(const dw_xfer_req_t *q, uint64_t *bytes, double *seconds)
{
    *bytes = q->bytes;
    *seconds = q->state == Q_OK ? q->t1 - q->t0 : 0;
}

void
dw_xfer_req_free(dw_xfer_t *x, dw_xfer_req_t *q)
{
    if (q == NULL) {
        return;
    }
    q->orphan = 1;
    if (q->state < Q_OK) {
        q->state = Q_FAILED;
        x->st.failures++;
        dw_xfer_peer_fail(q->peer, "transfer abandoned");
        if (!x->walking) {
            dw_xfer_peers_reap(x);
        }
    }
    if (q->ucx == NULL && !x->walking) {
        dw_xfer_req_release(x, q);
    }
}
