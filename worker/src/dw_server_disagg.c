/*
 * dynamo-worker: disaggregated prefill, the decode side (stub).
 */
#include "dw_server_int.h"

int
dw_disagg_init(dw_worker_t *w)
{
    (void) w;
    return 0;
}

void
dw_disagg_free(dw_worker_t *w)
{
    (void) w;
}

int
dw_disagg_prepare(dw_worker_t *w, dw_slot_t *sl, const dw_proto_req_t *pr,
    const char *body, size_t len, dw_request_t *er)
{
    (void) w;
    (void) sl;
    (void) body;
    (void) len;
    er->prefill = pr->prefill_worker[0] ? DW_PREFILL_LOCAL_DOWN
                                        : DW_PREFILL_AGG;
    return 0;
}

void
dw_disagg_remote(dw_worker_t *w, dw_slot_t *sl, dw_output_t *out)
{
    (void) w;
    (void) sl;
    dw_output_free(out);
}

void
dw_disagg_slot_gone(dw_worker_t *w, dw_slot_t *sl)
{
    (void) w;
    (void) sl;
}
