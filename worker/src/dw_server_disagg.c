/*
 * dynamo-worker: disaggregated prefill, the decode side (worker/DISAGG.md).
 *
 *   dw_disagg_prepare   before submit: local prefill (and why), or a
 *                       remote candidate (the engine decides at admission
 *                       from the uncached part of the prompt)
 *   dw_disagg_remote    DW_OUT_REMOTE: expect the notification, then POST
 *                       /v1/prefill to the prefill worker P
 *   note_cb             P's notification (the KV is in our blocks, with
 *                       the first token), or the deadline: decode on, or
 *                       fall back to a local prefill into the same blocks
 *   call_done_cb        P's HTTP answer: an error before the notification
 *                       falls back at once
 *
 * Every path ends a remote prefill exactly once (remote_end): the engine
 * gets dw_engine_remote_done, the expectation and the HTTP request are
 * dropped, the tokens in flight to P are given back. Late callbacks find
 * their request by id (xfer id -> remote state -> slot id), never by a
 * pointer to something that may be gone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "dw_log.h"
#include "dw_opts.h"
#include "dw_server_int.h"

#define DIS_BACKOFF_MIN_MS     1000     /* after a failure: local for 1 s, */
#define DIS_BACKOFF_MAX_MS     30000    /* doubling up to 30 s */
#define DIS_LAYOUT_BACKOFF_MS  60000    /* P refused our KV layout (409) */
#define DIS_NOTE_GRACE_MS      1000     /* after P's 200: the note is due */
#define DIS_PEERS_MAX          64       /* idle peer entries pruned above */
#define DIS_ANSWER_MAX         65536    /* bytes of P's answer we read */
#define DIS_XFER_SHIFT         40       /* xfer id: ordinal << 40 | seq */
#define DIS_XFER_SEQ_MASK      ((1ULL << DIS_XFER_SHIFT) - 1)

typedef struct dis_peer_s    dis_peer_t;
typedef struct dis_call_s    dis_call_t;
typedef struct dis_remote_s  dis_remote_t;

/* A prefill worker, by the "host:port" the gateway names it with. */
struct dis_peer_s {
    dis_peer_t  *next;
    char         addr[KVR_ADDR_MAX];
    uint64_t     inflight;       /* uncached prompt tokens sent, not done */
    uint32_t     refs;           /* remote states pointing here */
    uint64_t     down_until;     /* ms: prefill locally until then */
    uint32_t     backoff_ms;     /* the next failure's backoff; 0: first */
};

/* One POST /v1/prefill; outlives its remote state when P answers after
   the notification (the answer is then only logged). */
struct dis_call_s {
    dis_call_t                *prev, *next;
    dw_worker_t               *w;
    dis_remote_t              *r;        /* NULL: nobody waits for it */
    struct evhttp_connection  *conn;
    int                        done;     /* callback ran: reap the conn */
    int                        error;    /* evhttp_request_error + 1 */
    char                       peer[KVR_ADDR_MAX];
};

/* sl->remote: a request that may be (or is being) prefilled by P. */
struct dis_remote_s {
    dis_remote_t  *prev, *next;          /* dis->waiting, once sent */
    uint64_t       slot_id;
    uint64_t       xfer_id;              /* 0: not sent */
    dis_peer_t    *peer;
    dis_call_t    *call;
    uint32_t       n_prompt;
    uint32_t       tokens;               /* counted in peer->inflight */
    uint64_t       sent_ms;
    int            cancelled;            /* client gone: cancel at the end */
};

struct dw_disagg_s {
    uint64_t       ordinal;              /* the worker's, in xfer ids */
    uint64_t       seq;
    dis_peer_t    *peers;
    uint32_t       n_peers;
    dis_remote_t  *waiting;              /* sent, no end yet */
    dis_call_t    *calls;
    struct event  *reap_ev;              /* frees finished connections */
    char          *desc;                 /* our pool's descriptor (JSON) */
    size_t         desc_len;
    uint32_t       block_size;
    kvr_buf_t      buf;
};

static void note_cb(void *arg, uint64_t id, int32_t status,
    const void *payload, size_t len);

/* ---- peers ---- */

static dis_peer_t *
peer_get(dw_disagg_t *d, const char *addr, uint64_t now)
{
    dis_peer_t  *p, **pp;

    for (p = d->peers; p != NULL; p = p->next) {
        if (strcmp(p->addr, addr) == 0) {
            return p;
        }
    }
    if (d->n_peers >= DIS_PEERS_MAX) {
        /* forget the ones that hold nothing (no requests, no backoff) */
        for (pp = &d->peers; *pp != NULL; ) {
            p = *pp;
            if (p->refs == 0 && p->down_until <= now) {
                *pp = p->next;
                free(p);
                d->n_peers--;
            } else {
                pp = &p->next;
            }
        }
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    snprintf(p->addr, sizeof(p->addr), "%s", addr);
    p->next = d->peers;
    d->peers = p;
    d->n_peers++;
    return p;
}

/* P failed or refused: prefill locally for a while. Requests failing
   together (P died with several in flight) count once. */
static uint32_t
peer_failed(dis_peer_t *p, uint32_t fixed_ms)
{
    uint64_t  now = dw_server_now_ms();
    uint32_t  b;

    if (fixed_ms > 0) {
        p->down_until = now + fixed_ms;
        return fixed_ms;
    }
    if (p->down_until > now) {
        return (uint32_t) (p->down_until - now);
    }
    b = p->backoff_ms != 0 ? p->backoff_ms : DIS_BACKOFF_MIN_MS;
    p->down_until = now + b;
    p->backoff_ms = b * 2 > DIS_BACKOFF_MAX_MS ? DIS_BACKOFF_MAX_MS : b * 2;
    return b;
}

static void
peer_ok(dis_peer_t *p)
{
    p->backoff_ms = 0;
}

/* ---- HTTP requests to P ---- */

static void
call_unlink(dw_disagg_t *d, dis_call_t *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        d->calls = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
}

/* Frees c and its connection; a request still pending on it is freed
   without its callback. Never from inside that callback. */
static void
call_free(dw_disagg_t *d, dis_call_t *c)
{
    call_unlink(d, c);
    if (c->conn != NULL) {
        evhttp_connection_free(c->conn);
    }
    if (c->r != NULL) {
        c->r->call = NULL;
    }
    free(c);
}

static void
reap_cb(evutil_socket_t fd, short what, void *arg)
{
    dw_disagg_t  *d = arg;
    dis_call_t   *c, *next;

    for (c = d->calls; c != NULL; c = next) {
        next = c->next;
        if (c->done) {
            call_free(d, c);
        }
    }
}

static const char *
call_error_name(int error)
{
    switch (error - 1) {
    case EVREQ_HTTP_TIMEOUT:         return "timed out";
    case EVREQ_HTTP_EOF:             return "connection closed";
    case EVREQ_HTTP_INVALID_HEADER:  return "invalid answer";
    case EVREQ_HTTP_BUFFER_ERROR:    return "connection failed";
    case EVREQ_HTTP_DATA_TOO_LONG:   return "answer too long";
    default:                         return "connection failed";
    }
}

/* "message" of P's JSON error body, else a short description. */
static void
call_answer_msg(struct evhttp_request *req, int code, char *msg,
    size_t msglen)
{
    struct evbuffer  *in;
    json_t           *j, *m;
    json_error_t      jerr;
    const char       *p;
    size_t            n;

    snprintf(msg, msglen, "HTTP %d", code);
    in = evhttp_request_get_input_buffer(req);
    n = in != NULL ? evbuffer_get_length(in) : 0;
    p = n > 0 ? (const char *) evbuffer_pullup(in, -1) : NULL;
    if (p == NULL) {
        return;
    }
    j = json_loadb(p, n, 0, &jerr);
    m = json_object_get(json_object_get(j, "error"), "message");
    if (json_is_string(m)) {
        snprintf(msg, msglen, "HTTP %d: %s", code, json_string_value(m));
    }
    json_decref(j);
}

/* ---- remote states ---- */

static void
remote_unlink(dw_disagg_t *d, dis_remote_t *r)
{
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        d->waiting = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    r->prev = r->next = NULL;
}

/*
 * The remote prefill of r is over (or never started): give back what it
 * holds. cancel: abort the HTTP request to P too (else it may still
 * answer: only logged). The slot stays; it just has no remote state.
 */
static void
remote_end(dw_worker_t *w, dis_remote_t *r, int cancel)
{
    dw_disagg_t  *d = w->dis;
    dw_slot_t    *sl;

    if (r->xfer_id != 0) {
        remote_unlink(d, r);
    }
    r->peer->inflight -= r->tokens;
    r->peer->refs--;
    if (r->call != NULL) {
        r->call->r = NULL;
        if (cancel && !r->call->done) {
            call_free(d, r->call);
        }
        r->call = NULL;
    }
    sl = dw_slot_find(w, r->slot_id);
    if (sl != NULL && sl->remote == r) {
        sl->remote = NULL;
    }
    free(r);
}

/* Prefill locally instead (into the blocks the engine holds). */
static void
remote_fallback(dw_worker_t *w, dis_remote_t *r, int cancel)
{
    uint64_t  id = r->slot_id;
    int       gone = r->cancelled;

    if (r->xfer_id != 0) {
        dw_xfer_unexpect(w->xfer, r->xfer_id);
    }
    remote_end(w, r, cancel);
    if (gone) {
        /* P is done with the blocks (answered, or past its deadline) */
        dw_engine_cancel(w->engine, id);
        return;
    }
    if (dw_engine_remote_done(w->engine, id, NULL) != 0) {
        dw_log(DW_LOG_ERROR, "request %llu: the engine took no local "
               "prefill (stopped?)", (unsigned long long) id);
    }
}

static void
call_error_cb(enum evhttp_request_error error, void *arg)
{
    dis_call_t  *c = arg;

    c->error = (int) error + 1;
}

/*
 * P's answer (req NULL: the connection failed). 200: the notification is
 * due (it may also have come first: UCX and HTTP are separate channels).
 * Anything else, before the notification: fall back now.
 */
static void
call_done_cb(struct evhttp_request *req, void *arg)
{
    dis_call_t        *c = arg;
    dw_worker_t       *w = c->w;
    dis_remote_t      *r = c->r;
    dw_xfer_layout_t  *l;
    dw_xfer_desc_t     desc;
    char               msg[320];
    uint64_t           now, due;
    uint32_t           ms;
    int                code;

    c->done = 1;
    event_active(w->dis->reap_ev, EV_TIMEOUT, 0);
    code = req != NULL ? evhttp_request_get_response_code(req) : 0;
    if (code == HTTP_OK) {
        if (r != NULL) {
            /* P wrote the blocks and sent the note: do not wait the
               whole deadline for one that got lost */
            now = dw_server_now_ms();
            due = r->sent_ms + w->conf.disagg.timeout_ms;
            if (due > now + DIS_NOTE_GRACE_MS) {
                dw_xfer_expect(w->xfer, r->xfer_id, DIS_NOTE_GRACE_MS);
            }
            /* the note went out before this answer, but shared memory
               does not wake the UCX fd: look for it now, not at the
               next tick */
            event_active(w->srv->xfer_again, EV_TIMEOUT, 0);
        }
        return;
    }
    if (code != 0) {
        call_answer_msg(req, code, msg, sizeof(msg));
    } else {
        snprintf(msg, sizeof(msg), "%s", call_error_name(c->error));
    }
    if (r == NULL) {
        dw_log(DW_LOG_DEBUG, "prefill worker %s answered late: %s",
               c->peer, msg);
        return;
    }
    w->dcnt.fallback_error++;
    if (code == 409) {
        /* the layouts differ: not going to change soon */
        ms = peer_failed(r->peer, DIS_LAYOUT_BACKOFF_MS);
        dw_xfer_reg_desc(w->kv_reg, &desc);
        l = &desc.layout;
        dw_log(DW_LOG_ERROR, "prefill worker %s refused this worker's KV "
               "layout (%s); ours: model %s, %s, %u layers, %u kv heads, "
               "head_dim %u, block_size %u; prefilling locally, next try "
               "in %u s", c->peer, msg, l->model,
               dw_xfer_dtype_name(l->dtype), l->n_layers, l->n_kv_heads,
               l->head_dim, l->block_size, ms / 1000);
    } else {
        ms = peer_failed(r->peer, 0);
        dw_log(DW_LOG_WARN, "remote prefill on %s failed (%s): prefilling "
               "locally; %s is skipped for %u ms", c->peer, msg, c->peer,
               ms);
    }
    /* the connection is done with: do not cancel it from in here */
    remote_fallback(w, r, 0);
}

/* POST /v1/prefill to peer with body b. 0, or -1 (nothing pending). */
static int
call_start(dw_worker_t *w, dis_remote_t *r, const kvr_buf_t *b)
{
    dw_disagg_t             *d = w->dis;
    dis_call_t              *c;
    struct evhttp_request   *req;
    struct evkeyvalq        *h;
    struct timeval           tv;
    char                     host[KVR_ADDR_MAX];
    uint32_t                 port, t;

    if (dw_opts_split_addr(r->peer->addr, host, sizeof(host), &port) != 0) {
        dw_log(DW_LOG_WARN, "prefill worker '%s': not host:port",
               r->peer->addr);
        return -1;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return -1;
    }
    c->w = w;
    snprintf(c->peer, sizeof(c->peer), "%s", r->peer->addr);
    c->conn = evhttp_connection_base_new(w->srv->base, NULL, host,
                                         (ev_uint16_t) port);
    if (c->conn == NULL) {
        free(c);
        return -1;
    }
    /* the notification's deadline decides; this only bounds a hung P */
    t = w->conf.disagg.timeout_ms + DIS_NOTE_GRACE_MS;
    tv.tv_sec = t / 1000;
    tv.tv_usec = (t % 1000) * 1000;
    evhttp_connection_set_timeout_tv(c->conn, &tv);
    evhttp_connection_set_max_body_size(c->conn, DIS_ANSWER_MAX);
    req = evhttp_request_new(call_done_cb, c);
    if (req == NULL) {
        evhttp_connection_free(c->conn);
        free(c);
        return -1;
    }
    evhttp_request_set_error_cb(req, call_error_cb);
    h = evhttp_request_get_output_headers(req);
    if (evhttp_add_header(h, "Host", r->peer->addr) != 0
        || evhttp_add_header(h, "Content-Type", "application/json") != 0
        || evhttp_add_header(h, "Connection", "close") != 0
        || evbuffer_add(evhttp_request_get_output_buffer(req), b->data,
                        b->len) != 0)
    {
        evhttp_request_free(req);
        evhttp_connection_free(c->conn);
        free(c);
        return -1;
    }
    if (evhttp_make_request(c->conn, req, EVHTTP_REQ_POST, "/v1/prefill")
        != 0)
    {
        /* libevent has dropped req from the connection (or freed it) */
        evhttp_connection_free(c->conn);
        free(c);
        return -1;
    }
    c->r = r;
    r->call = c;
    c->next = d->calls;
    if (d->calls != NULL) {
        d->calls->prev = c;
    }
    d->calls = c;
    return 0;
}

/* ---- the notification ---- */

static dis_remote_t *
remote_by_xfer(dw_server_t *s, uint64_t id, dw_worker_t **wp)
{
    dw_worker_t   *w;
    dis_remote_t  *r;

    for (w = s->workers; w != NULL; w = w->link) {
        if (w->dis != NULL && w->dis->ordinal == id >> DIS_XFER_SHIFT) {
            break;
        }
    }
    if (w == NULL) {
        return NULL;
    }
    for (r = w->dis->waiting; r != NULL; r = r->next) {
        if (r->xfer_id == id) {
            *wp = w;
            return r;
        }
    }
    return NULL;
}

static void
note_cb(void *arg, uint64_t id, int32_t status, const void *payload,
    size_t len)
{
    dw_server_t   *s = arg;
    dw_worker_t   *w = NULL;
    dis_remote_t  *r;
    dw_output_t    tok;
    uint64_t       slot_id, now;
    uint32_t       ms;

    r = remote_by_xfer(s, id, &w);
    if (r == NULL) {
        dw_log(DW_LOG_DEBUG, "KV notification for unknown transfer %llu",
               (unsigned long long) id);
        return;
    }
    now = dw_server_now_ms();
    if (status == DW_XFER_NOTE_TIMEOUT) {
        w->dcnt.fallback_timeout++;
        ms = peer_failed(r->peer, 0);
        dw_log(DW_LOG_WARN, "remote prefill on %s: no KV after %u ms: "
               "prefilling locally; %s is skipped for %u ms", r->peer->addr,
               w->conf.disagg.timeout_ms, r->peer->addr, ms);
        /* the request to P goes too */
        remote_fallback(w, r, 1);
        return;
    }
    memset(&tok, 0, sizeof(tok));
    if (status != 0
        || dw_proto_decode_first(payload, len, &tok) != 0
        || (w->conf.vocab_size > 0 && tok.token >= w->conf.vocab_size))
    {
        w->dcnt.fallback_error++;
        ms = peer_failed(r->peer, 0);
        dw_log(DW_LOG_WARN, "remote prefill on %s: %s (status %d): "
               "prefilling locally; %s is skipped for %u ms", r->peer->addr,
               status != 0 ? "the prefill worker reported a failure"
                           : "malformed first token", (int) status,
               r->peer->addr, ms);
        remote_fallback(w, r, 1);
        return;
    }
    tok.kind = DW_OUT_TOKEN;
    tok.req_id = r->slot_id;
    slot_id = r->slot_id;
    w->dcnt.remote_ok++;
    w->dcnt.remote_wait_ms += (double) (now - r->sent_ms);
    peer_ok(r->peer);
    if (r->cancelled) {
        /* the blocks are written: now they may go */
        remote_end(w, r, 0);
        dw_engine_cancel(w->engine, slot_id);
        return;
    }
    /* P's answer (if not in yet) is only logged now: keep the call */
    remote_end(w, r, 0);
    if (dw_engine_remote_done(w->engine, slot_id, &tok) != 0) {
        dw_log(DW_LOG_ERROR, "request %llu: the engine took no remote "
               "prefill (stopped?)", (unsigned long long) slot_id);
    }
}

/* ---- the hooks ---- */

int
dw_disagg_init(dw_worker_t *w)
{
    dw_disagg_t  *d;
    char          err[256];

    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return -1;
    }
    w->dis = d;
    d->ordinal = w->srv->n_workers;
    d->reap_ev = event_new(w->srv->base, -1, 0, reap_cb, d);
    if (d->reap_ev == NULL) {
        return -1;
    }
    if (w->xfer == NULL || w->kv_reg == NULL) {
        return 0;
    }
    if (dw_xfer_describe(w->kv_reg, &d->desc, &d->desc_len, err,
                         sizeof(err)) != 0)
    {
        dw_log(DW_LOG_ERROR, "KV pool descriptor: %s", err);
        return -1;
    }
    d->block_size = dw_engine_config(w->engine)->block_size;
    /* one handler per context, for every worker: ids say whose */
    dw_xfer_set_note_handler(w->xfer, note_cb, w->srv);
    return 0;
}

void
dw_disagg_free(dw_worker_t *w)
{
    dw_disagg_t   *d = w->dis;
    dis_remote_t  *r;
    dis_peer_t    *p;

    if (d == NULL) {
        return;
    }
    /* slots are freed first (dw_disagg_slot_gone); anything left here
       belongs to no slot any more */
    while ((r = d->waiting) != NULL) {
        dw_xfer_unexpect(w->xfer, r->xfer_id);
        remote_end(w, r, 1);
    }
    while (d->calls != NULL) {
        call_free(d, d->calls);
    }
    while ((p = d->peers) != NULL) {
        d->peers = p->next;
        free(p);
    }
    if (d->reap_ev != NULL) {
        event_free(d->reap_ev);
    }
    free(d->desc);
    kvr_buf_free(&d->buf);
    free(d);
    w->dis = NULL;
}

int
dw_disagg_prepare(dw_worker_t *w, dw_slot_t *sl, const dw_proto_req_t *pr,
    const char *body, size_t len, dw_request_t *er)
{
    dw_disagg_t   *d = w->dis;
    dis_peer_t    *p;
    dis_remote_t  *r;
    uint64_t       now, min;

    er->prefill = DW_PREFILL_AGG;
    if (pr->prefill_worker[0] == '\0' || d == NULL || d->desc == NULL
        || w->conf.role != KVR_ROLE_DECODE)
    {
        return 0;
    }
    if (strcmp(pr->prefill_worker, w->advertise) == 0
        || strcmp(pr->prefill_worker, w->listen_addr) == 0)
    {
        er->prefill = DW_PREFILL_LOCAL_SELF;
        return 0;
    }
    /* remote only when more than max_local_prefill tokens are uncached:
       a prompt that short is local whatever the cache holds */
    min = (uint64_t) w->conf.disagg.max_local_prefill + 1;
    if (pr->n_tokens < min) {
        er->prefill = DW_PREFILL_LOCAL_SHORT;
        return 0;
    }
    now = dw_server_now_ms();
    p = peer_get(d, pr->prefill_worker, now);
    if (p == NULL) {
        return -1;
    }
    if (p->down_until > now) {
        er->prefill = DW_PREFILL_LOCAL_DOWN;
        return 0;
    }
    /* a queue bound, not a prompt bound: an idle P takes any prompt */
    if (p->inflight > 0
        && p->inflight + pr->n_tokens > w->conf.disagg.max_prefill_queue)
    {
        er->prefill = DW_PREFILL_LOCAL_BUSY;
        return 0;
    }
    r = calloc(1, sizeof(*r));
    sl->body = malloc(len + 1);
    if (r == NULL || sl->body == NULL) {
        free(r);
        free(sl->body);
        sl->body = NULL;
        return -1;
    }
    memcpy(sl->body, body, len);
    sl->body[len] = '\0';
    sl->body_len = len;
    r->slot_id = sl->id;
    r->peer = p;
    r->n_prompt = pr->n_tokens;
    p->refs++;
    sl->remote = r;
    er->flags |= DW_REQ_REMOTE_PREFILL;
    er->remote_min_tokens = (uint32_t) min;
    /* the engine says: remote once P's KV is in, else short or failed
       (a request cancelled while parked stays unclassified) */
    return 0;
}

void
dw_disagg_remote(dw_worker_t *w, dw_slot_t *sl, dw_output_t *out)
{
    dw_disagg_t        *d = w->dis;
    dis_remote_t       *r = sl->remote;
    dw_proto_prefill_t  pp;
    uint32_t            t, want;
    const char         *why;

    if (r == NULL || r->xfer_id != 0) {
        /* not a request we asked a remote prefill for */
        dw_log(DW_LOG_ERROR, "request %llu: unexpected remote prefill",
               (unsigned long long) out->req_id);
        dw_output_free(out);
        w->dcnt.fallback_error++;
        dw_engine_remote_done(w->engine, out->req_id, NULL);
        return;
    }
    if (sl->gone) {
        /* the client left: the engine has the cancel, nothing to send */
        remote_end(w, r, 1);
        dw_output_free(out);
        return;
    }
    w->dcnt.remote_sent++;
    why = NULL;
    want = (r->n_prompt + d->block_size - 1) / d->block_size;
    if (out->n_kv_blocks != want || out->kv_blocks == NULL
        || out->cached_tokens > r->n_prompt)
    {
        why = "the engine's block table does not fit the prompt";
    } else if (r->peer->down_until > dw_server_now_ms()) {
        why = "the prefill worker failed meanwhile";
    }
    if (why == NULL) {
        t = w->conf.disagg.timeout_ms;
        memset(&pp, 0, sizeof(pp));
        d->seq = (d->seq + 1) & DIS_XFER_SEQ_MASK;
        if (d->seq == 0) {
            d->seq = 1;
        }
        pp.xfer_id = d->ordinal << DIS_XFER_SHIFT | d->seq;
        pp.blocks = out->kv_blocks;
        pp.n_blocks = out->n_kv_blocks;
        pp.skip_blocks = out->cached_tokens / d->block_size;
        /* P's transfer deadline, shorter than ours: its writes stop
           before we reuse the blocks (DISAGG.md, "late writes") */
        pp.timeout_ms = t > 4 ? t - t / 4 : t;
        pp.desc = d->desc;
        pp.desc_len = d->desc_len;
        kvr_buf_reset(&d->buf);
        if (dw_proto_encode_prefill(&d->buf, sl->body, sl->body_len, &pp)
            != 0)
        {
            why = "cannot encode the prefill request";
        } else if (dw_xfer_expect(w->xfer, pp.xfer_id, t) != 0) {
            why = "out of memory";
        } else if (call_start(w, r, &d->buf) != 0) {
            dw_xfer_unexpect(w->xfer, pp.xfer_id);
            why = "cannot send the prefill request";
        } else {
            r->xfer_id = pp.xfer_id;
            r->sent_ms = dw_server_now_ms();
            r->tokens = r->n_prompt - out->cached_tokens;
            r->peer->inflight += r->tokens;
            r->next = d->waiting;
            if (d->waiting != NULL) {
                d->waiting->prev = r;
            }
            d->waiting = r;
        }
    }
    /* the body went out (or never will) */
    free(sl->body);
    sl->body = NULL;
    sl->body_len = 0;
    dw_output_free(out);
    if (why != NULL) {
        w->dcnt.fallback_error++;
        dw_log(DW_LOG_WARN, "remote prefill on %s: %s: prefilling locally",
               r->peer->addr, why);
        remote_fallback(w, r, 1);
    }
}

int
dw_disagg_cancel(dw_worker_t *w, dw_slot_t *sl)
{
    dis_remote_t  *r = sl->remote;

    if (r == NULL || r->xfer_id == 0 || w->dis == NULL) {
        return 0;
    }
    /* P may be writing into the parked blocks: the engine must not hand
       them to another request before P's note, its answer or the
       deadline (DISAGG.md, "late writes") */
    r->cancelled = 1;
    return 1;
}

void
dw_disagg_slot_gone(dw_worker_t *w, dw_slot_t *sl)
{
    dis_remote_t  *r = sl->remote;

    if (r == NULL || w->dis == NULL) {
        return;
    }
    if (r->xfer_id != 0) {
        dw_xfer_unexpect(w->xfer, r->xfer_id);
    }
    remote_end(w, r, 1);
}
