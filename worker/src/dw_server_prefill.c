/*
 * dynamo-worker: disaggregated prefill, the prefill side (PROTOCOL.md,
 * "Prefill (disaggregation)"). POST /v1/prefill comes from a decode worker
 * D with a generate body and "kv": where in D's KV pool to write.
 *
 *   dw_prefill_http     parse, check D's descriptor against our layout
 *                       (409 on a mismatch), connect, submit the prompt
 *                       with DW_REQ_HOLD_KV and max_tokens 1 (the same
 *                       sampling and seed: the first token is D's)
 *   dw_prefill_output   the token output is the first token; the finish
 *                       output hands over our blocks (still pinned):
 *                       one dw_xfer_put of blocks [skip, n) into D's,
 *                       whose notification carries the first token
 *   pf_done             the batch is over: blocks back to the engine,
 *                       200 {"blocks","bytes","ms"} or 500 to D
 *
 * The slot lives from the submit until the answer (dw_server_engine.c
 * does not free slots with pf set). D closing the connection cancels the
 * engine request if it still runs; a batch already running is left to
 * finish or time out (aborting it would force-close the endpoint that
 * other requests' batches to the same D share). evhttp does not read a
 * connection while its request waits for an answer, so the close is
 * watched for here (pf->watch: readable with nothing to read is EOF).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "dw_log.h"
#include "dw_server_int.h"

typedef struct {
    dw_xfer_remote_t  *rm;          /* D's pool */
    uint32_t          *dst;         /* D's block per prompt block */
    uint32_t           n_blocks;
    uint32_t           skip;        /* leading blocks D has: not sent */
    uint32_t           timeout_ms;  /* from receipt to D's notification */
    uint64_t           xfer_id;
    uint64_t           t0_ms;       /* request received */
    dw_output_t        first;       /* the first token */
    int                have_first;
    int                engine_done; /* the finish output came */
    uint32_t          *held;        /* our blocks (HOLD_KV), pinned */
    uint32_t           n_held;
    dw_xfer_req_t     *q;           /* the batch while it runs */
    struct event      *watch;       /* D's connection closing */
    int                d_gone;      /* ... it did: nothing to send */
} dw_pf_t;

static void
pf_unwatch(dw_pf_t *pf)
{
    if (pf->watch != NULL) {
        event_free(pf->watch);
        pf->watch = NULL;
    }
}

static void
pf_release_held(dw_worker_t *w, dw_pf_t *pf)
{
    if (pf->held != NULL) {
        dw_engine_release_blocks(w->engine, pf->held, pf->n_held);
        pf->held = NULL;
        pf->n_held = 0;
    }
}

/* Answers D (or frees the detached request when D left) and frees sl. */
static void
pf_finish(dw_worker_t *w, dw_slot_t *sl, int code, const char *reason,
    const char *type, const char *msg, const char *ok_body)
{
    struct evbuffer  *eb;

    if (sl->pf != NULL) {
        pf_unwatch(sl->pf);
    }
    if (!sl->gone) {
        evhttp_connection_set_closecb(sl->conn, NULL, NULL);
    }
    if (code == HTTP_OK) {
        w->dcnt.served++;
        eb = evbuffer_new();
        if (eb == NULL) {
            evhttp_send_error(sl->req, HTTP_INTERNAL, NULL);
        } else {
            evbuffer_add(eb, ok_body, strlen(ok_body));
            evhttp_add_header(evhttp_request_get_output_headers(sl->req),
                              "Content-Type", "application/json");
            evhttp_send_reply(sl->req, HTTP_OK, "OK", eb);
            evbuffer_free(eb);
        }
    } else {
        w->dcnt.refused++;
        dw_http_send_error(sl->req, code, reason, type, NULL, msg);
    }
    dw_slot_free(w, sl);
}

/* D went away: a prefill still running is cancelled, nothing is sent. */
static void
pf_d_gone(dw_slot_t *sl)
{
    dw_pf_t  *pf = sl->pf;

    if (pf == NULL || pf->d_gone) {
        return;
    }
    pf->d_gone = 1;
    dw_log(DW_LOG_DEBUG, "prefill %s: the decode worker closed the "
           "connection%s", sl->request_id[0] ? sl->request_id : "-",
           !pf->engine_done ? ", cancelling" : "");
    if (!pf->engine_done) {
        dw_engine_cancel(sl->w->engine, sl->id);
    }
}

/* evhttp freed the connection (the request is detached from it). */
static void
pf_conn_closed(struct evhttp_connection *conn, void *arg)
{
    dw_slot_t  *sl = arg;

    if (sl->gone) {
        return;
    }
    sl->gone = 1;
    if (sl->pf != NULL) {
        pf_unwatch(sl->pf);
    }
    pf_d_gone(sl);
}

/* D's socket turned readable while its request waits: EOF, or bytes of
   a next request (then evhttp reads them later: stop watching). */
static void
pf_watch_cb(evutil_socket_t fd, short what, void *arg)
{
    dw_slot_t  *sl = arg;
    char        c;
    ssize_t     n;

    n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    {
        return;
    }
    pf_unwatch(sl->pf);
    if (n <= 0) {
        pf_d_gone(sl);
    }
}

static void
pf_watch(dw_slot_t *sl)
{
    dw_pf_t             *pf = sl->pf;
    struct bufferevent  *bev;
    evutil_socket_t      fd;

    bev = evhttp_connection_get_bufferevent(sl->conn);
    fd = bev != NULL ? bufferevent_getfd(bev) : -1;
    if (fd < 0) {
        return;
    }
    pf->watch = event_new(sl->w->srv->base, fd, EV_READ | EV_PERSIST,
                          pf_watch_cb, sl);
    if (pf->watch != NULL && event_add(pf->watch, NULL) != 0) {
        pf_unwatch(pf);
    }
}

static void
pf_done(void *arg, dw_xfer_req_t *q, int status, const char *err)
{
    dw_slot_t    *sl = arg;
    dw_worker_t  *w = sl->w;
    dw_pf_t      *pf = sl->pf;
    uint64_t      bytes = 0;
    double        secs = 0;
    char          body[160], msg[256];
    uint32_t      n;

    n = pf->n_blocks - pf->skip;
    if (status == 0) {
        dw_xfer_req_result(q, &bytes, &secs);
    } else {
        snprintf(msg, sizeof(msg), "KV transfer failed: %s",
                 err != NULL ? err : "unknown error");
    }
    dw_xfer_req_free(w->xfer, q);
    pf->q = NULL;
    pf_release_held(w, pf);
    if (status != 0) {
        dw_log(DW_LOG_WARN, "prefill %s: %s",
               sl->request_id[0] ? sl->request_id : "-", msg);
        pf_finish(w, sl, 500, "Internal Server Error", "transfer_failed",
                  msg, NULL);
        return;
    }
    w->dcnt.blocks_skipped += pf->skip;
    dw_log(DW_LOG_DEBUG, "prefill %s: %" PRIu32 " blocks (%" PRIu32
           " skipped), %" PRIu64 " bytes in %.3f ms, %" PRIu64 " ms in all",
           sl->request_id[0] ? sl->request_id : "-", n, pf->skip, bytes,
           secs * 1e3, dw_server_now_ms() - pf->t0_ms);
    snprintf(body, sizeof(body), "{\"blocks\":%" PRIu32 ",\"bytes\":%" PRIu64
             ",\"ms\":%.3f}\n", n, bytes, secs * 1e3);
    pf_finish(w, sl, HTTP_OK, NULL, NULL, NULL, body);
}

/* The finish output of a held prefill: start the transfer. */
static void
pf_transfer(dw_worker_t *w, dw_slot_t *sl, dw_pf_t *pf)
{
    dw_xfer_put_t  put;
    unsigned char  note[DW_XFER_NOTE_MAX];
    char           err[256], msg[320];
    uint64_t       spent;
    int            len;

    if (!pf->have_first || pf->n_held < pf->n_blocks) {
        snprintf(msg, sizeof(msg), "the engine finished without %s",
                 !pf->have_first ? "a first token"
                                 : "the KV blocks of the whole prompt");
        pf_release_held(w, pf);
        pf_finish(w, sl, 500, "Internal Server Error", "internal", msg,
                  NULL);
        return;
    }
    /* D's deadline started before ours: what is left of it bounds the
       batch, so that no put lands after D gave up on it (the rest of
       that bound is D's margin, worker/DISAGG.md) */
    spent = dw_server_now_ms() - pf->t0_ms;
    if (spent >= pf->timeout_ms) {
        snprintf(msg, sizeof(msg), "the prefill took %" PRIu64 " ms, past "
                 "the transfer deadline (kv.timeout_ms %" PRIu32 ")",
                 spent, pf->timeout_ms);
        pf_release_held(w, pf);
        pf_finish(w, sl, 504, "Gateway Timeout", "timeout", msg, NULL);
        return;
    }
    len = dw_proto_encode_first(&pf->first, note, sizeof(note));
    if (len < 0) {
        pf_release_held(w, pf);
        pf_finish(w, sl, 500, "Internal Server Error", "internal",
                  "cannot encode the first token", NULL);
        return;
    }
    memset(&put, 0, sizeof(put));
    put.src = pf->held + pf->skip;
    put.dst = pf->dst + pf->skip;
    put.n = pf->n_blocks - pf->skip;   /* 0: the notification alone */
    put.id = pf->xfer_id;
    put.note_status = 0;
    put.note = note;
    put.note_len = (size_t) len;
    put.timeout_ms = (uint32_t) (pf->timeout_ms - spent);
    put.done = pf_done;
    put.arg = sl;
    if (dw_xfer_put(w->xfer, pf->rm, w->kv_reg, &put, &pf->q, err,
                    sizeof(err)) != 0)
    {
        snprintf(msg, sizeof(msg), "KV transfer refused: %s", err);
        dw_log(DW_LOG_WARN, "prefill %s: %s",
               sl->request_id[0] ? sl->request_id : "-", msg);
        pf_release_held(w, pf);
        pf_finish(w, sl, 500, "Internal Server Error", "transfer_failed",
                  msg, NULL);
        return;
    }
    /* pf_done answers. Drive the context now: a shared-memory batch can
       complete without anything turning the wakeup fd readable, and would
       otherwise wait for the transfer tick (worker/XFER.md, "Event
       loop") */
    if (w->srv->xfer_again != NULL) {
        event_active(w->srv->xfer_again, EV_TIMEOUT, 0);
    }
}

void
dw_prefill_output(dw_worker_t *w, dw_slot_t *sl, dw_output_t *out)
{
    dw_pf_t     *pf = sl->pf;
    const char  *name;
    char         msg[160];

    if (out->kind == DW_OUT_TOKEN) {
        if (!pf->have_first) {
            pf->first = *out;
            pf->first.kv_blocks = NULL;
            pf->first.n_kv_blocks = 0;
            pf->have_first = 1;
        }
        dw_output_free(out);
        return;
    }
    if (out->kind != DW_OUT_FINISH || pf->engine_done) {
        /* DW_OUT_REMOTE and resets never come for a HOLD_KV request */
        if (out->kv_blocks != NULL) {
            dw_engine_release_blocks(w->engine, out->kv_blocks,
                                     out->n_kv_blocks);
            out->kv_blocks = NULL;
        }
        dw_output_free(out);
        return;
    }
    pf->engine_done = 1;
    pf->held = out->kv_blocks;
    pf->n_held = out->n_kv_blocks;
    out->kv_blocks = NULL;
    out->n_kv_blocks = 0;
    if (sl->gone || pf->d_gone) {
        /* D left: give the blocks back, nothing to send */
        pf_release_held(w, pf);
        pf_finish(w, sl, 503, "Service Unavailable", "cancelled",
                  "the decode worker closed the connection", NULL);
        return;
    }
    if ((out->reason != DW_FINISH_STOP && out->reason != DW_FINISH_LENGTH)
        || pf->held == NULL)
    {
        pf_release_held(w, pf);
        if (out->reason == DW_FINISH_CANCELLED) {
            pf_finish(w, sl, 503, "Service Unavailable", "unavailable",
                      "the prefill was cancelled (the worker is shutting "
                      "down)", NULL);
            return;
        }
        name = dw_proto_finish_name(out->reason);
        snprintf(msg, sizeof(msg), "the prefill failed: %s%s%.96s",
                 name != NULL ? name : "error", out->error[0] ? ": " : "",
                 out->error);
        pf_finish(w, sl, 500, "Internal Server Error", "internal", msg,
                  NULL);
        return;
    }
    pf_transfer(w, sl, pf);
}

void
dw_prefill_slot_gone(dw_worker_t *w, dw_slot_t *sl)
{
    dw_pf_t  *pf = sl->pf;

    if (pf == NULL) {
        return;
    }
    pf_unwatch(pf);
    /* a running batch reads the held blocks: abort it before they go */
    if (pf->q != NULL) {
        dw_xfer_req_free(w->xfer, pf->q);
        pf->q = NULL;
    }
    pf_release_held(w, pf);
    if (pf->rm != NULL) {
        dw_xfer_remote_free(w->xfer, pf->rm);
    }
    free(pf->dst);
    free(pf);
    sl->pf = NULL;
}

/* ---- the request ---- */

static void
pf_refuse(dw_worker_t *w, struct evhttp_request *req, int code,
    const char *reason, const char *type, const char *field, const char *msg)
{
    w->dcnt.refused++;
    dw_http_send_error(req, code, reason, type, field, msg);
}

/*
 * D's descriptor: parsed, its layout checked against ours (409 with the
 * first difference), connected (502 when UCX cannot reach D). 0, or the
 * request was answered.
 */
static int
pf_connect(dw_worker_t *w, struct evhttp_request *req,
    const dw_proto_prefill_t *p, dw_xfer_remote_t **rm)
{
    dw_xfer_desc_t  desc, local;
    char            err[256], msg[320], why[200];
    uint32_t        need, bs;

    if (dw_xfer_desc_parse(p->desc, p->desc_len, &desc, err, sizeof(err))
        != 0)
    {
        snprintf(msg, sizeof(msg), "kv.desc: %s", err);
        pf_refuse(w, req, 400, "Bad Request", "invalid_request", "kv.desc",
                  msg);
        return -1;
    }
    dw_xfer_reg_desc(w->kv_reg, &local);
    if (dw_xfer_layout_check(&local.layout, &desc.layout, why, sizeof(why))
        != 0)
    {
        snprintf(msg, sizeof(msg), "KV layouts differ: %s (this prefill "
                 "worker's != the decode worker's)", why);
        dw_log(DW_LOG_ERROR, "prefill: refused a decode worker's KV pool: "
               "%s", msg);
        dw_xfer_desc_free(&desc);
        pf_refuse(w, req, 409, "Conflict", "conflict", NULL, msg);
        return -1;
    }
    bs = desc.layout.block_size;
    need = (uint32_t) (((uint64_t) p->req.n_tokens + bs - 1) / bs);
    if (p->n_blocks != need) {
        snprintf(msg, sizeof(msg), "kv.blocks: %" PRIu32 " blocks for %"
                 PRIu32 " prompt tokens of %" PRIu32 " per block, need %"
                 PRIu32, p->n_blocks, p->req.n_tokens, bs, need);
        dw_xfer_desc_free(&desc);
        pf_refuse(w, req, 400, "Bad Request", "invalid_request",
                  "kv.blocks", msg);
        return -1;
    }
    if (dw_xfer_connect(w->xfer, &desc, &local.layout, rm, err, sizeof(err))
        != 0)
    {
        snprintf(msg, sizeof(msg), "cannot reach the decode worker's KV "
                 "pool: %s", err);
        dw_log(DW_LOG_WARN, "prefill: %s", msg);
        dw_xfer_desc_free(&desc);
        pf_refuse(w, req, 502, "Bad Gateway", "transfer_failed", NULL, msg);
        return -1;
    }
    dw_xfer_desc_free(&desc);
    return 0;
}

void
dw_prefill_http(dw_worker_t *w, struct evhttp_request *req)
{
    dw_proto_prefill_t   p;
    dw_proto_err_t       perr;
    dw_xfer_remote_t    *rm = NULL;
    dw_request_t         er;
    dw_slot_t           *sl;
    dw_pf_t             *pf;
    const char          *body;
    size_t               len;
    char                 msg[256];
    int                  rc;

    if (w->xfer == NULL || w->kv_reg == NULL) {
        pf_refuse(w, req, 409, "Conflict", "conflict", NULL,
                  "this worker is not a prefill worker (--role prefill)");
        return;
    }
    body = dw_http_body(req, &len);
    if (dw_proto_parse_prefill(body, len, w->conf.vocab_size, &p, &perr)
        != 0)
    {
        pf_refuse(w, req, 400, "Bad Request", "invalid_request", perr.field,
                  perr.msg);
        return;
    }
    if (w->conf.max_model_len > 0 && p.req.n_tokens >= w->conf.max_model_len)
    {
        snprintf(msg, sizeof(msg), "token_ids: the prompt has %u tokens, "
                 "the context is %u (room for at least one more needed)",
                 p.req.n_tokens, w->conf.max_model_len);
        dw_proto_prefill_free(&p);
        pf_refuse(w, req, 400, "Bad Request", "invalid_request",
                  "token_ids", msg);
        return;
    }
    if (w->live >= w->conf.max_pending) {
        dw_proto_prefill_free(&p);
        pf_refuse(w, req, 503, "Service Unavailable", "overloaded", NULL,
                  "too many requests in flight");
        return;
    }
    if (pf_connect(w, req, &p, &rm) != 0) {
        dw_proto_prefill_free(&p);
        return;
    }
    sl = dw_slot_alloc(w);
    pf = calloc(1, sizeof(*pf));
    if (sl == NULL || pf == NULL) {
        if (sl != NULL) {
            dw_slot_free(w, sl);
        }
        free(pf);
        dw_xfer_remote_free(w->xfer, rm);
        dw_proto_prefill_free(&p);
        pf_refuse(w, req, 500, "Internal Server Error", "internal", NULL,
                  "out of memory");
        return;
    }
    pf->rm = rm;
    pf->dst = p.blocks;
    p.blocks = NULL;
    pf->n_blocks = p.n_blocks;
    pf->skip = p.skip_blocks;
    pf->timeout_ms = p.timeout_ms;
    pf->xfer_id = p.xfer_id;
    pf->t0_ms = dw_server_now_ms();
    sl->pf = pf;

    memset(&er, 0, sizeof(er));
    er.id = sl->id;
    er.prompt = p.req.token_ids;
    er.n_prompt = p.req.n_tokens;
    er.sp = p.req.sp;
    er.sp.max_tokens = 1;               /* the first token only */
    er.flags = DW_REQ_HOLD_KV;
    er.prefill = DW_PREFILL_AGG;
    rc = dw_engine_submit(w->engine, &er, msg, sizeof(msg));
    if (rc != 0) {
        p.req.token_ids = er.prompt;    /* the engine may have moved it */
        dw_proto_prefill_free(&p);
        dw_slot_free(w, sl);            /* frees pf and rm */
        if (rc == DW_SUBMIT_STOPPED) {
            pf_refuse(w, req, 503, "Service Unavailable", "unavailable",
                      NULL, "the worker is shutting down");
        } else if (rc == DW_SUBMIT_NOMEM) {
            pf_refuse(w, req, 500, "Internal Server Error", "internal",
                      NULL, "out of memory");
        } else {
            char  fmsg[280];

            snprintf(fmsg, sizeof(fmsg), "token_ids: %s", msg);
            pf_refuse(w, req, 400, "Bad Request", "invalid_request",
                      "token_ids", fmsg);
        }
        return;
    }
    p.req.token_ids = NULL;             /* the engine's now */
    memcpy(sl->request_id, p.req.request_id, sizeof(sl->request_id));
    dw_proto_prefill_free(&p);
    sl->req = req;
    sl->conn = evhttp_request_get_connection(req);
    evhttp_connection_set_closecb(sl->conn, pf_conn_closed, sl);
    pf_watch(sl);
}
