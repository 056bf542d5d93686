/*
 * dynamo-worker: KV transfer notifications on D's side: the active
 * message handler, delivery from dw_xfer_progress, and D's deadlines
 * (dw_xfer_expect).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ucp/api/ucp.h>

#include "dw_err.h"
#include "dw_xfer_int.h"

ucs_status_t
dw_xfer_am_note_cb(void *arg, const void *header, size_t header_length,
    void *data, size_t length, const ucp_am_recv_param_t *param)
{
    dw_xfer_t   *x = arg;
    note_hdr_t   h;
    note_t      *n;

    /* eager only (the sender forces it); anything malformed is dropped */
    if (header_length != sizeof(h)
        || (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV))
    {
        return UCS_OK;
    }
    memcpy(&h, header, sizeof(h));
    if (h.magic != NOTE_MAGIC || h.len != length || length > DW_XFER_NOTE_MAX)
    {
        return UCS_OK;
    }
    n = malloc(sizeof(*n) + length);
    if (n == NULL) {
        return UCS_OK;
    }
    n->next = NULL;
    n->id = h.id;
    n->status = h.status;
    n->len = length;
    if (length > 0) {
        memcpy(n->data, data, length);
    }
    if (x->notes_tail != NULL) {
        x->notes_tail->next = n;
    } else {
        x->notes = n;
    }
    x->notes_tail = n;
    return UCS_OK;
}

/* Removes id's expectation: 1 if there was one. */
static int
expect_take(dw_xfer_t *x, uint64_t id)
{
    expect_t  **pp, *e;

    for (pp = &x->expects; (e = *pp) != NULL; pp = &e->next) {
        if (e->id == id) {
            *pp = e->next;
            free(e);
            return 1;
        }
    }
    return 0;
}

static void
expired_add(dw_xfer_t *x, uint64_t id)
{
    x->expired[x->n_expired++ % EXPIRED_RING] = id;
}

static int
expired_has(const dw_xfer_t *x, uint64_t id)
{
    uint32_t  i, n = x->n_expired < EXPIRED_RING ? x->n_expired
                                                 : EXPIRED_RING;

    for (i = 0; i < n; i++) {
        if (x->expired[i] == id) {
            return 1;
        }
    }
    return 0;
}

void
dw_xfer_notes_deliver(dw_xfer_t *x)
{
    note_t    *n;
    expect_t  *e, **pp, *gone = NULL;
    double     now;

    while ((n = x->notes) != NULL) {
        x->notes = n->next;
        if (x->notes == NULL) {
            x->notes_tail = NULL;
        }
        if (!expect_take(x, n->id) && expired_has(x, n->id)) {
            x->st.notes_late++;         /* D gave up on it already */
        } else {
            x->st.notes_received++;
            if (x->note_cb != NULL) {
                x->note_cb(x->note_arg, n->id, n->status, n->data, n->len);
            }
        }
        free(n);
    }
    if (x->expects == NULL) {
        return;
    }
    /* the passed ones are unlinked first: the handler may call
       dw_xfer_expect or dw_xfer_unexpect, which edit x->expects */
    now = dw_xfer_now();
    for (pp = &x->expects; (e = *pp) != NULL; ) {
        if (now <= e->deadline) {
            pp = &e->next;
            continue;
        }
        *pp = e->next;
        e->next = gone;
        gone = e;
        expired_add(x, e->id);
        x->st.notes_timed_out++;
    }
    while ((e = gone) != NULL) {
        gone = e->next;
        if (x->note_cb != NULL) {
            x->note_cb(x->note_arg, e->id, DW_XFER_NOTE_TIMEOUT, NULL, 0);
        }
        free(e);
    }
}

int
dw_xfer_expect(dw_xfer_t *x, uint64_t id, uint32_t timeout_ms)
{
    double     deadline = dw_xfer_now() + timeout_ms * 1e-3;
    expect_t  *e;

    /* one expectation per id: expecting it again moves its deadline
       (two entries would time out after the note had been delivered) */
    for (e = x->expects; e != NULL; e = e->next) {
        if (e->id == id) {
            e->deadline = deadline;
            return 0;
        }
    }
    e = malloc(sizeof(*e));
    if (e == NULL) {
        return -1;
    }
    e->id = id;
    e->deadline = deadline;
    e->next = x->expects;
    x->expects = e;
    return 0;
}

void
dw_xfer_unexpect(dw_xfer_t *x, uint64_t id)
{
    if (expect_take(x, id)) {
        expired_add(x, id);
    }
}

void
dw_xfer_set_note_handler(dw_xfer_t *x, dw_xfer_note_fn cb, void *arg)
{
    x->note_cb = cb;
    x->note_arg = arg;
}
