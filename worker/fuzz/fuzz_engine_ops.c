/*
 * libFuzzer: random engine operations (submit, cancel, step) over the mock
 * backend with small pools; checks invariants after every step.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dw_backend_mock_int.h"
#include "dw_engine_int.h"

#define MAXR 64

static void
check(int c)
{
    if (!c) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    dw_engine_config_t  c;
    dw_config_t         mc;
    dw_backend_opts_t   o;
    dw_backend_t       *be;
    dw_engine_t        *e;
    dw_request_t        r;
    dw_output_t         out[32];
    dw_kv_event_t       ev[8];
    char                err[128];
    size_t              i = 0, k, m;
    uint32_t            j, nid = 0;
    int                 fin[MAXR] = { 0 }, sub[MAXR] = { 0 };
    int                 logits_path;

    if (n < 4) {
        return 0;
    }
    dw_engine_config_defaults(&c);
    c.block_size = 1 + d[0] % 8;
    c.n_blocks = 2 + d[1] % 40;
    c.max_num_batched_tokens = 1 + d[2] % 64;
    c.max_num_seqs = 1 + d[3] % 8;
    c.prefix_caching = (d[3] >> 4) & 1;
    logits_path = (d[3] >> 5) & 1;
    memset(&mc, 0, sizeof(mc));
    mc.vocab_size = 50;
    mc.max_position = 1 + d[0] * 3;
    mc.eos_ids[0] = 2;
    mc.n_eos = 1;
    memset(&o, 0, sizeof(o));
    o.block_size = c.block_size;
    o.n_blocks = c.n_blocks;
    o.speedup = 1e12;
    check((logits_path ? dw_backend_mock_create_logits(&mc, &o, &be, err, 128)
                       : dw_backend_mock_create(&mc, &o, &be, err, 128)) == 0);
    if (dw_engine_create(&c, be, &e, err, sizeof(err)) != 0) {
        be->ops->destroy(be);
        return 0;
    }
    i = 4;
    while (i < n) {
        uint8_t op = d[i++];
        if (op % 4 == 0 && i + 2 <= n && nid < MAXR) {
            uint32_t len = 1 + d[i++] % 40;
            memset(&r, 0, sizeof(r));
            r.id = nid;
            r.prompt = malloc(len * sizeof(uint32_t));
            r.n_prompt = len;
            for (j = 0; j < len; j++) {
                r.prompt[j] = (i < n ? d[i++] : j) % 60;   /* some >= vocab */
            }
            dw_sampling_defaults(&r.sp);
            r.sp.temperature = (op & 16) ? 0.7f : 0.0f;
            r.sp.top_p = (op & 32) ? 0.5f : 1.0f;
            r.sp.max_tokens = 1 + (op >> 2) % 20;
            r.sp.has_seed = 1;
            r.sp.seed = op;
            r.sp.logprobs = (op & 64) ? 3 : -1;
            if (dw_engine_submit(e, &r, err, sizeof(err)) == 0) {
                sub[nid] = 1;
            } else {
                free(r.prompt);
            }
            nid++;
        } else if (op % 4 == 1 && nid > 0) {
            dw_engine_cancel(e, (op >> 2) % nid);
        } else {
            (void) dw_engine_step(e);
            check(e->bm.n_used + e->bm.n_free + e->bm.n_lru == e->bm.n_blocks);
        }
    }
    while (dw_engine_step(e)) {
        check(e->bm.n_used + e->bm.n_free + e->bm.n_lru == e->bm.n_blocks);
    }
    check(e->bm.n_used == 0);
    while ((m = dw_engine_drain(e, out, 32)) > 0) {
        for (k = 0; k < m; k++) {
            check(out[k].req_id < nid && sub[out[k].req_id]);
            check(!fin[out[k].req_id]);
            if (out[k].kind == DW_OUT_FINISH) {
                fin[out[k].req_id] = 1;
            } else {
                check(out[k].token < 50);
            }
        }
    }
    for (j = 0; j < nid; j++) {
        check(fin[j] == sub[j]);
    }
    while ((m = dw_engine_drain_kv(e, ev, 8)) > 0) {
        for (k = 0; k < m; k++) {
            dw_kv_event_free(&ev[k]);
        }
    }
    dw_engine_destroy(e);
    return 0;
}
