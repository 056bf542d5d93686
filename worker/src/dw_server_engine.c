/*
 * dynamo-worker: the engine side of the I/O thread. The engine's eventfd
 * wakes dw_engine_notify_cb, which drains token and finish outputs into
 * NDJSON frames (the tokens of one request in one drain batch become one
 * frame) and KV events into the Redis publisher. Also the request slots
 * that map engine request ids back to HTTP requests.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "dw_log.h"
#include "dw_server_int.h"

uint64_t
dw_server_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* ---- slots: id = (generation << 32) | index, so a stale id never
   matches a reused slot ---- */

dw_slot_t *
dw_slot_alloc(dw_worker_t *w)
{
    dw_slot_t  *sl, **slots;
    uint32_t    idx, n, *gens, *free_idx;

    sl = calloc(1, sizeof(*sl));
    if (sl == NULL) {
        return NULL;
    }
    if (w->n_free == 0) {
        n = w->n_slots == 0 ? 64 : w->n_slots * 2;
        slots = realloc(w->slots, n * sizeof(*slots));
        if (slots == NULL) {
            free(sl);
            return NULL;
        }
        w->slots = slots;
        gens = realloc(w->gens, n * sizeof(*gens));
        if (gens == NULL) {
            free(sl);
            return NULL;
        }
        w->gens = gens;
        free_idx = realloc(w->free_idx, n * sizeof(*free_idx));
        if (free_idx == NULL) {
            free(sl);
            return NULL;
        }
        w->free_idx = free_idx;
        for (idx = n; idx > w->n_slots; idx--) {
            w->slots[idx - 1] = NULL;
            w->gens[idx - 1] = 1;
            w->free_idx[w->n_free++] = idx - 1;
        }
        w->n_slots = n;
    }
    idx = w->free_idx[--w->n_free];
    sl->w = w;
    sl->id = ((uint64_t) w->gens[idx] << 32) | idx;
    sl->pend_head = -1;
    sl->pend_tail = -1;
    w->slots[idx] = sl;
    w->live++;
    return sl;
}

dw_slot_t *
dw_slot_find(dw_worker_t *w, uint64_t id)
{
    uint32_t  idx;

    idx = (uint32_t) id;
    if (idx >= w->n_slots || w->slots[idx] == NULL
        || w->slots[idx]->id != id)
    {
        return NULL;
    }
    return w->slots[idx];
}

void
dw_slot_free(dw_worker_t *w, dw_slot_t *sl)
{
    uint32_t  idx;

    if (sl->remote != NULL) {
        dw_disagg_slot_gone(w, sl);
    }
    if (sl->pf != NULL) {
        dw_prefill_slot_gone(w, sl);
    }
    free(sl->body);
    idx = (uint32_t) sl->id;
    w->slots[idx] = NULL;
    w->gens[idx]++;
    w->free_idx[w->n_free++] = idx;
    w->live--;
    free(sl);
}

void
dw_worker_cancel_all(dw_worker_t *w)
{
    uint32_t  i;

    for (i = 0; i < w->n_slots; i++) {
        if (w->slots[i] != NULL && !w->slots[i]->reset) {
            dw_engine_cancel(w->engine, w->slots[i]->id);
        }
    }
}

/* ---- outputs -> frames ---- */

static void
worker_send(dw_slot_t *sl, kvr_buf_t *b)
{
    dw_worker_t  *w = sl->w;

    if (sl->gone || b->len == 0) {
        return;
    }
    /* evhttp moves the bytes out: the one buffer is empty again after */
    if (evbuffer_add(w->chunk, b->data, b->len) == 0) {
        evhttp_send_reply_chunk(sl->req, w->chunk);
    }
    evbuffer_drain(w->chunk, evbuffer_get_length(w->chunk));
}

static void
worker_finish(dw_worker_t *w, dw_slot_t *sl, const dw_output_t *out)
{
    int  r;

    r = out->reason >= DW_FINISH_STOP && out->reason <= DW_FINISH_ERROR
        ? (int) out->reason : DW_FINISH_ERROR;
    w->cnt.finished[r]++;
    if ((unsigned) out->prefill <= DW_PREFILL_LOCAL_SELF) {
        w->dcnt.prefill[out->prefill]++;
    }
    if (dw_log_enabled(DW_LOG_DEBUG)) {
        dw_log(DW_LOG_DEBUG, "request %s finished: %s, %u+%u tokens, "
               "%u cached%s", sl->request_id[0] ? sl->request_id : "-",
               dw_proto_finish_name((dw_finish_t) r), out->prompt_tokens,
               out->completion_tokens, out->cached_tokens,
               sl->gone ? " (client gone)" : "");
    }
    if (!sl->gone) {
        kvr_buf_reset(&w->frame);
        if (dw_proto_encode_finish(&w->frame, out) == 0) {
            worker_send(sl, &w->frame);
        }
        evhttp_connection_set_closecb(sl->conn, NULL, NULL);
    }
    /* with the connection gone this frees the detached request */
    evhttp_send_reply_end(sl->req);
    dw_slot_free(w, sl);
}

static void
worker_flush_tokens(dw_worker_t *w, dw_slot_t *sl)
{
    const dw_output_t  *toks[DW_DRAIN_BATCH];
    size_t              n;
    int                 i;

    n = 0;
    for (i = sl->pend_head; i >= 0; i = w->next[i]) {
        toks[n++] = &w->outs[i];
    }
    sl->pend_head = sl->pend_tail = -1;
    if (n == 0 || sl->gone) {
        return;
    }
    kvr_buf_reset(&w->frame);
    if (dw_proto_encode_tokens(&w->frame, toks, n, sl->with_lp) != 0) {
        dw_log(DW_LOG_ERROR, "out of memory encoding a frame");
        return;
    }
    w->cnt.frames++;
    worker_send(sl, &w->frame);
}

/* An output nobody waits for must still give back what it holds. */
static void
worker_orphan(dw_worker_t *w, dw_output_t *out)
{
    if (out->kind == DW_OUT_REMOTE) {
        dw_engine_cancel(w->engine, out->req_id);
        dw_output_free(out);
    } else if (out->kv_blocks != NULL) {
        dw_engine_release_blocks(w->engine, out->kv_blocks,
                                 out->n_kv_blocks);
        out->kv_blocks = NULL;
    }
}

static void
worker_outputs(dw_worker_t *w, size_t n)
{
    dw_slot_t  *sl, *touched[DW_DRAIN_BATCH];
    size_t      i, nt;

    /* group each request's tokens; a finish flushes what came before it */
    nt = 0;
    for (i = 0; i < n; i++) {
        sl = dw_slot_find(w, w->outs[i].req_id);
        if (sl == NULL) {
            dw_log(DW_LOG_WARN, "engine output for unknown request %llu",
                   (unsigned long long) w->outs[i].req_id);
            worker_orphan(w, &w->outs[i]);
            continue;
        }
        if (w->outs[i].kind == DW_OUT_REMOTE) {
            dw_disagg_remote(w, sl, &w->outs[i]);
            continue;
        }
        if (sl->pf != NULL) {
            dw_prefill_output(w, sl, &w->outs[i]);
            continue;
        }
        if (w->outs[i].kind == DW_OUT_RESET || sl->reset) {
            if (w->outs[i].kind == DW_OUT_RESET && sl->reset) {
                dw_http_reset_done(w, sl, &w->outs[i]);
            }
            continue;
        }
        if (w->outs[i].kind == DW_OUT_TOKEN) {
            w->next[i] = -1;
            if (sl->pend_tail >= 0) {
                w->next[sl->pend_tail] = (int) i;
            } else {
                sl->pend_head = (int) i;
            }
            sl->pend_tail = (int) i;
            if (!sl->touched) {
                sl->touched = 1;
                touched[nt++] = sl;
            }
            continue;
        }
        worker_flush_tokens(w, sl);
        if (sl->touched) {
            /* drop it from touched: it is freed below */
            size_t  k;

            for (k = 0; k < nt; k++) {
                if (touched[k] == sl) {
                    touched[k] = NULL;
                }
            }
        }
        worker_finish(w, sl, &w->outs[i]);
    }
    for (i = 0; i < nt; i++) {
        if (touched[i] != NULL) {
            touched[i]->touched = 0;
            worker_flush_tokens(w, touched[i]);
        }
    }
}

static void
worker_kv_events(dw_worker_t *w)
{
    dw_kv_event_t  evs[DW_KV_BATCH];
    size_t         n, i;

    do {
        n = dw_engine_drain_kv(w->engine, evs, DW_KV_BATCH);
        for (i = 0; i < n; i++) {
            if (w->redis != NULL) {
                dw_redis_kv_event(w->redis, &evs[i]);
            }
            dw_kv_event_free(&evs[i]);
        }
    } while (n == DW_KV_BATCH);
}

void
dw_engine_notify_cb(evutil_socket_t fd, short what, void *arg)
{
    dw_worker_t  *w = arg;
    size_t        n;

    do {
        n = dw_engine_drain(w->engine, w->outs, DW_DRAIN_BATCH);
        worker_outputs(w, n);
    } while (n == DW_DRAIN_BATCH);
    worker_kv_events(w);
    dw_worker_publish_load(w, 0);
}

/*
 * Load goes out when it changed, at most every DW_LOAD_TICK_MS (the tick
 * calls this too, so a change is never later than one tick), and at least
 * every DW_LOAD_IDLE_MS as the liveness keepalive (alive TTL 3 s).
 */
void
dw_worker_publish_load(dw_worker_t *w, int force)
{
    kvr_load_t  load;
    uint64_t    now;

    if (w->redis == NULL || !dw_redis_ready(w->redis)) {
        return;
    }
    now = dw_server_now_ms();
    if (!force && now - w->last_load_ms < DW_LOAD_TICK_MS) {
        return;
    }
    dw_engine_load(w->engine, &load);
    if (!force && now - w->last_load_ms < DW_LOAD_IDLE_MS
        && load.running == w->last_load.running
        && load.waiting == w->last_load.waiting
        && load.active_blocks == w->last_load.active_blocks
        && load.queued_prefill_tokens == w->last_load.queued_prefill_tokens)
    {
        return;
    }
    dw_redis_heartbeat(w->redis, &load);
    w->last_load = load;
    w->last_load_ms = now;
}
