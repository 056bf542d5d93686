/*
 * Test support for the engine tests (see dw_tsupport_engine.h).
 */
#include <stdlib.h>
#include <string.h>

#include "dw_backend_mock_int.h"
#include "dw_engine_int.h"

#include "dw_tsupport_engine.h"

void
dw_ts_mock_model(dw_config_t *mc, uint32_t vocab)
{
    memset(mc, 0, sizeof(*mc));
    strcpy(mc->arch, "LlamaForCausalLM");
    mc->vocab_size = vocab;
    mc->hidden_size = 64;
    mc->n_layers = 2;
    mc->n_heads = 4;
    mc->n_kv_heads = 2;
    mc->head_dim = 16;
    mc->max_position = 4096;
    mc->bos_id = 1;
    mc->eos_ids[0] = 2;
    mc->n_eos = 1;
}

int
dw_ts_eng_open(dw_ts_eng_t *t, const dw_engine_config_t *cfg,
    dw_backend_t *be)
{
    char  err[256];

    memset(t, 0, sizeof(*t));
    t->req = calloc(DW_TS_MAX_REQS, sizeof(dw_ts_req_t));
    if (t->req == NULL) {
        return -1;
    }
    if (dw_engine_create(cfg, be, &t->e, err, sizeof(err)) != 0) {
        free(t->req);
        t->req = NULL;
        be->ops->destroy(be);
        return -1;
    }
    return 0;
}

int
dw_ts_eng_mock(dw_ts_eng_t *t, const dw_engine_config_t *cfg,
    uint32_t vocab, double speedup, int logits_path)
{
    dw_config_t        mc;
    dw_backend_opts_t  o;
    dw_backend_t      *be;
    char               err[256];
    int                rc;

    dw_ts_mock_model(&mc, vocab);
    memset(&o, 0, sizeof(o));
    o.block_size = cfg->block_size;
    o.n_blocks = cfg->n_blocks;
    o.speedup = speedup > 0.0 ? speedup : 1e9;
    o.seed = 42;
    rc = logits_path
         ? dw_backend_mock_create_logits(&mc, &o, &be, err, sizeof(err))
         : dw_backend_mock_create(&mc, &o, &be, err, sizeof(err));
    if (rc != 0) {
        return -1;
    }
    return dw_ts_eng_open(t, cfg, be);
}

void
dw_ts_eng_close(dw_ts_eng_t *t)
{
    uint32_t  i;

    dw_engine_destroy(t->e);
    for (i = 0; t->req != NULL && i < DW_TS_MAX_REQS; i++) {
        dw_output_free(&t->req[i].fin);
        dw_output_free(&t->req[i].remote);
    }
    free(t->req);
    free(t->kv.set);
    memset(t, 0, sizeof(*t));
}

int
dw_ts_submit(dw_ts_eng_t *t, uint64_t id, const uint32_t *prompt,
    uint32_t n, const dw_sampling_t *sp)
{
    return dw_ts_submit_flags(t, id, prompt, n, sp, 0, 0);
}

int
dw_ts_submit_flags(dw_ts_eng_t *t, uint64_t id, const uint32_t *prompt,
    uint32_t n, const dw_sampling_t *sp, uint32_t flags,
    uint32_t remote_min_tokens)
{
    dw_request_t  r;
    char          err[256];
    int           rc;

    memset(&r, 0, sizeof(r));
    r.id = id;
    r.flags = flags;
    r.remote_min_tokens = remote_min_tokens;
    r.n_prompt = n;
    r.prompt = malloc((n ? n : 1) * sizeof(uint32_t));
    if (r.prompt == NULL) {
        return -1;
    }
    if (n > 0) {
        memcpy(r.prompt, prompt, n * sizeof(uint32_t));
    }
    if (sp != NULL) {
        r.sp = *sp;
    } else {
        dw_sampling_defaults(&r.sp);
        r.sp.temperature = 0.0f;
    }
    rc = dw_engine_submit(t->e, &r, err, sizeof(err));
    if (rc != 0) {
        free(r.prompt);
    } else if (id < DW_TS_MAX_REQS) {
        t->req[id].submitted = 1;
    }
    return rc;
}

/* ---- KV event set ---- */

static size_t
dw_ts_slot(const dw_ts_kv_t *kv, uint64_t h)
{
    size_t  i = (size_t) ((h * 0x9e3779b97f4a7c15ULL) >> 20) & (kv->cap - 1);

    while (kv->set[i] != 0 && kv->set[i] != h) {
        i = (i + 1) & (kv->cap - 1);
    }
    return i;
}

static void
dw_ts_kv_grow(dw_ts_kv_t *kv)
{
    uint64_t  *old = kv->set;
    size_t     oc = kv->cap, i;

    kv->cap = oc ? 2 * oc : 1024;
    kv->set = calloc(kv->cap, sizeof(uint64_t));
    for (i = 0; i < oc; i++) {
        if (old[i] != 0) {
            kv->set[dw_ts_slot(kv, old[i])] = old[i];
        }
    }
    free(old);
}

/* hash 0 cannot be a set key; it is practically impossible anyway */
static void
dw_ts_kv_event(dw_ts_kv_t *kv, const dw_kv_event_t *ev)
{
    size_t    i, j, k, nx;
    uint64_t  h;

    kv->events++;
    if (ev->type == KVR_EV_CLEARED) {
        kv->cleared++;
        if (kv->set != NULL) {
            memset(kv->set, 0, kv->cap * sizeof(uint64_t));
        }
        kv->n = 0;
        return;
    }
    for (i = 0; i < ev->n; i++) {
        h = ev->blocks[i].seq;
        if (2 * (kv->n + 1) > kv->cap) {
            dw_ts_kv_grow(kv);
        }
        j = dw_ts_slot(kv, h);
        if (ev->type == KVR_EV_STORED) {
            kv->stored++;
            if (kv->set[j] == h) {
                kv->errors++;
            } else {
                kv->set[j] = h;
                kv->n++;
            }
        } else if (ev->type == KVR_EV_REMOVED) {
            kv->removed++;
            if (kv->set[j] != h) {
                kv->errors++;
                continue;
            }
            /* delete with backward shift (linear probing) */
            kv->set[j] = 0;
            kv->n--;
            for (k = (j + 1) & (kv->cap - 1); kv->set[k] != 0;
                 k = (k + 1) & (kv->cap - 1))
            {
                nx = kv->set[k];
                kv->set[k] = 0;
                kv->set[dw_ts_slot(kv, nx)] = nx;
            }
        }
    }
}

void
dw_ts_drain(dw_ts_eng_t *t)
{
    dw_output_t    out[64];
    dw_kv_event_t  ev[16];
    dw_ts_req_t   *r;
    size_t         n, i;

    while ((n = dw_engine_drain(t->e, out, 64)) > 0) {
        for (i = 0; i < n; i++) {
            if (out[i].kind == DW_OUT_RESET) {
                t->n_resets++;
                t->n_resets_ok += out[i].reset_ok != 0;
                t->reset = out[i];
                dw_output_free(&out[i]);
                continue;
            }
            if (out[i].req_id >= DW_TS_MAX_REQS) {
                dw_output_free(&out[i]);
                continue;
            }
            r = &t->req[out[i].req_id];
            if (out[i].kind == DW_OUT_FINISH) {
                r->finished++;
                dw_output_free(&r->fin);
                r->fin = out[i];
            } else if (out[i].kind == DW_OUT_REMOTE) {
                r->n_remote++;
                dw_output_free(&r->remote);
                r->remote = out[i];
            } else if (r->finished) {
                r->token_after_finish++;
            } else if (r->n_tokens < DW_TS_MAX_OUT) {
                if (r->n_tokens == 0) {
                    r->first = out[i];
                }
                r->logprobs[r->n_tokens] = out[i].logprob;
                r->tokens[r->n_tokens++] = out[i].token;
            }
        }
    }
    while ((n = dw_engine_drain_kv(t->e, ev, 16)) > 0) {
        for (i = 0; i < n; i++) {
            dw_ts_kv_event(&t->kv, &ev[i]);
            dw_kv_event_free(&ev[i]);
        }
    }
}

uint32_t
dw_ts_run(dw_ts_eng_t *t)
{
    uint32_t  steps = 0;

    while (dw_engine_step(t->e)) {
        steps++;
        dw_ts_drain(t);
    }
    dw_ts_drain(t);
    return steps;
}

dw_sampling_t
dw_ts_greedy_sp(uint32_t max_tokens)
{
    dw_sampling_t  sp;

    dw_sampling_defaults(&sp);
    sp.temperature = 0.0f;
    sp.max_tokens = max_tokens;
    return sp;
}

void
dw_ts_rand_ids(uint64_t *rs, uint32_t *p, uint32_t n, uint32_t lo,
    uint32_t span)
{
    uint32_t  i;

    for (i = 0; i < n; i++) {
        p[i] = lo + (uint32_t) (dw_splitmix64(rs) % span);
    }
}
