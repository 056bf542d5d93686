/*
 * dynamo-worker: mock backend internals, for tests.
 */
#ifndef DW_BACKEND_MOCK_INT_H
#define DW_BACKEND_MOCK_INT_H

#include "dw_backend.h"

/* Dynamo mocker's formulas, ms (see dw_backend_mock.c) */
double dw_backend_mock_prefill_ms(uint32_t tokens);
double dw_backend_mock_decode_ms(double kv_usage);
/* Modelled time of a step in ms, before the speedup. */
double dw_backend_mock_step_ms(const dw_step_t *step);
/* The mock without next_ids: the engine samples from its one-hot logits. */
int dw_backend_mock_create_logits(const dw_config_t *cfg,
    const dw_backend_opts_t *o, dw_backend_t **out, char *err,
    size_t errlen);

#endif
