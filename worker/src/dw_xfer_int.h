/*
 * dynamo-worker: KV block transfer over UCX, internals shared by
 * dw_xfer.c (context, progress, registration), dw_xfer_peer.c
 * (endpoints, remotes), dw_xfer_put.c (batches) and dw_xfer_note.c
 * (notifications on D's side). See dw_xfer.h for the API.
 *
 * One ucp context and one single-threaded worker per dw_xfer_t. A batch
 * (dw_xfer_req_t) moves through three states:
 *
 *   FLUSH  all puts issued (their requests freed at once: UCX releases
 *          them on completion), then one ucp_ep_flush_nbx whose
 *          completion means every put is visible at the peer;
 *   NOTE   the notification (active message, eager) in flight;
 *   OK / FAILED.
 *
 * UCX callbacks only record a status; dw_xfer_progress advances the
 * batches after ucp_worker_progress returns, so no UCX call is made from
 * inside a UCX callback and user callbacks never run inside UCX.
 *
 * Peers: one endpoint per remote worker address, cached while it works.
 * An error (the peer's error handler, a batch deadline, an aborted batch)
 * takes it out of the cache and force-closes it, which completes its
 * outstanding requests with an error; the struct goes when nothing refers
 * to it any more. A batch struct with a UCX request still pending stays
 * allocated (orphaned if the caller freed it) until that request
 * completes, so UCX never calls back into freed memory.
 */
#ifndef DW_XFER_INT_H
#define DW_XFER_INT_H

#include <stdint.h>

#include <ucp/api/ucp.h>

#include "dw_xfer.h"

#define AM_NOTE      7u
#define NOTE_MAGIC   0x31585744u        /* "DWX1" */

typedef struct peer_s  peer_t;

struct peer_s {
    peer_t          *next;
    dw_xfer_t       *x;
    unsigned char   *addr;
    size_t           addr_len;
    ucp_ep_h         ep;
    void            *close_req;         /* force close in flight */
    uint32_t         refs;              /* remotes + batches */
    int              failed;            /* out of the cache */
    int              no_err_mode;       /* no peer failure detection */
    int              graceful;          /* closing without an error */
    char             why[96];
};

struct dw_xfer_remote_s {
    peer_t           *peer;
    uint32_t          refs;             /* owner + batches using the rkey */
    ucp_rkey_h        rkey;
    dw_xfer_layout_t  layout;
    uint64_t          base;
    uint64_t          length;
};

struct dw_xfer_reg_s {
    dw_xfer_t        *x;
    ucp_mem_h         memh;
    void             *rkey;             /* packed */
    size_t            rkey_len;
    void             *base;
    size_t            length;
    dw_xfer_layout_t  layout;
};

typedef struct {
    uint32_t  magic;
    int32_t   status;
    uint64_t  id;
    uint32_t  len;
    uint32_t  pad;
} note_hdr_t;

enum { Q_FLUSH, Q_NOTE, Q_OK, Q_FAILED };

struct dw_xfer_req_s {
    dw_xfer_req_t    *next, *prev;      /* x->reqs while pending or orphan */
    dw_xfer_t        *x;
    peer_t           *peer;
    dw_xfer_remote_t *rm;               /* its rkey lives until release */
    int               state;
    void             *ucx;              /* pending UCX request or NULL */
    int               ucx_done;
    ucs_status_t      ucx_status;
    int               orphan;           /* freed by the caller */
    double            t0, t1, deadline;
    uint64_t          bytes;
    uint32_t          blocks;
    int               no_note;
    note_hdr_t        hdr;
    unsigned char     note[DW_XFER_NOTE_MAX];
    dw_xfer_done_fn   done;
    void             *arg;
    char              err[160];
};

typedef struct note_s  note_t;
struct note_s {
    note_t          *next;
    uint64_t         id;
    int32_t          status;
    size_t           len;
    unsigned char    data[];
};

/* D's side: a notification awaited until a deadline */
typedef struct expect_s  expect_t;
struct expect_s {
    expect_t        *next;
    uint64_t         id;
    double           deadline;
};

#define EXPIRED_RING  256               /* ids given up on, for late notes */

struct dw_xfer_s {
    ucp_context_h     ctx;
    ucp_worker_h      worker;
    int               efd;
    ucp_address_t    *addr;
    size_t            addr_len;
    peer_t           *peers;
    dw_xfer_req_t    *reqs;
    note_t           *notes, *notes_tail;
    dw_xfer_note_fn   note_cb;
    void             *note_arg;
    expect_t         *expects;
    uint64_t          expired[EXPIRED_RING];
    uint32_t          n_expired;        /* total; ring index = n % size */
    dw_xfer_stats_t   st;
    int               walking;          /* in the batch loop (callbacks) */
    int               no_peer_errors;
    char              tls[64];
};

/* dw_xfer_peer.c */
void dw_xfer_peer_fail(peer_t *p, const char *why);
/* Closes the endpoints of failed peers; frees unreferenced ones. */
void dw_xfer_peers_reap(dw_xfer_t *x);
/* Drops a reference to rm (NULL: none); the last destroys its rkey
   (UCX: only once no operation using it is outstanding). */
void dw_xfer_remote_unref(dw_xfer_remote_t *rm);

/* dw_xfer_note.c */
ucs_status_t dw_xfer_am_note_cb(void *arg, const void *header,
    size_t header_length, void *data, size_t length,
    const ucp_am_recv_param_t *param);
/* Runs the note handler for queued notifications and passed deadlines. */
void dw_xfer_notes_deliver(dw_xfer_t *x);

/* dw_xfer_put.c */
void dw_xfer_ucx_cb(void *request, ucs_status_t status, void *user_data);
void dw_xfer_req_finish(dw_xfer_t *x, dw_xfer_req_t *q, int ok,
    const char *fmt, const char *arg);
void dw_xfer_req_advance(dw_xfer_t *x, dw_xfer_req_t *q, double now);
void dw_xfer_req_release(dw_xfer_t *x, dw_xfer_req_t *q);

#endif
