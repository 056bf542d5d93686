/*
 * dynamo-worker: CUDA graphs for the cuda backend's decode steps
 * (dw_backend_cuda_graph.c; the padded step is dw_cu_pad.h).
 *
 * A decode-only step of n <= DW_CU_GRAPH_MAX_BATCH sequences replays the
 * graph of bucket dw_cu_pad_bucket(n), captured on the bucket's first
 * step (which runs eagerly, then is captured) for a context bound, and
 * captured again when a step's context exceeds the bound or a scratch
 * buffer it uses has moved. Other steps run eagerly. DW_CUDA_GRAPHS=0 in
 * the environment (read at create) turns graphs off.
 */
#ifndef DW_BACKEND_CUDA_GRAPH_H
#define DW_BACKEND_CUDA_GRAPH_H

#include "dw_backend_cuda_int.h"

int dw_cu_graphs_create(dw_cu_t *c, char *err, size_t errlen);
void dw_cu_graphs_destroy(dw_cu_t *c);

/*
 * Runs the step as a graph when it can: metadata padded and copied to
 * the device, the graph launched (or captured), the wanted logits rows
 * copied to st->logits; nothing synchronises. 1 when it did, 0 when the
 * step is for the eager path (graphs off, not decode-only, too many
 * sequences), -1 on an error. mt: dw_cu_plan of st.
 */
int dw_cu_graph_step(dw_cu_t *c, dw_step_t *st, const dw_cu_plan_t *mt,
    int dev_sample);

/* Counts for tests and logs: graphs captured and replays, so far; -1
   when be is not a cuda backend with graphs on. */
int dw_cu_graph_counts(const dw_backend_t *be, uint64_t *captured,
    uint64_t *replayed);

#endif
