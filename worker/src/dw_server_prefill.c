/*
 * dynamo-worker: disaggregated prefill, the prefill side (stub).
 */
#include "dw_server_int.h"

void
dw_prefill_http(dw_worker_t *w, struct evhttp_request *req)
{
    (void) w;
    dw_http_send_error(req, 404, "Not Found", "not_found", NULL,
                       "this worker does not serve prefills");
}

void
dw_prefill_output(dw_worker_t *w, dw_slot_t *sl, dw_output_t *out)
{
    (void) w;
    (void) sl;
    dw_output_free(out);
}

void
dw_prefill_slot_gone(dw_worker_t *w, dw_slot_t *sl)
{
    (void) w;
    (void) sl;
}
