/*
 * dynamo-worker: CUDA graphs for decode steps (see
 * dw_backend_cuda_graph.h; the padded step's layout is dw_cu_pad.c).
 *
 * What a graph fixes at capture, and how it stays valid:
 *   - shapes: the bucket's rows, the table width and context bound of
 *     the decode attention (dw_cu_pad_plan), hence every kernel's grid;
 *   - device pointers: weights and the KV pool (fixed for the backend's
 *     life), the scratch, split-K workspace, logits and metadata buffers
 *     (c->x .. c->meta_d). The first graph step reserves the scratch,
 *     logits and metadata for the largest bucket at its bound, so they
 *     rarely move; the split-K workspace only for the bucket at hand (for
 *     256 sequences at long contexts it is large: 256 x heads x splits x
 *     (head_dim + 2) floats, a GiB at 128K for an 8B shape), so a larger
 *     bucket's first step may move it once. A graph keeps the
 *     pointers it was captured with and is captured again when any of
 *     them has moved (an eager step grew them) or the step's context
 *     exceeds its bound (bounds double, so a sequence's life sees a few
 *     captures). A larger bound is still right for shorter contexts: the
 *     extra splits of the decode attention are empty and skipped.
 *   - per-step inputs: copied into the fixed metadata buffer before the
 *     launch, the logits copied out after it; both outside the graph.
 * A bucket's first step runs eagerly (which also makes cuBLASLt pick its
 * algorithms and loads the kernels outside the capture) and is then
 * captured without running. If a capture fails, graphs are turned off
 * for the backend's life with a log line; that step's results stand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dw_backend_cuda_graph.h"
#include "dw_cu_pad.h"

#define N_BUCKETS  9             /* 1, 2, 4, .., 256 */
#define N_PTRS     11

typedef struct {
    cudaGraphExec_t   exec;
    uint32_t          ctx_bound;      /* of exec; bounds never shrink */
    const void       *ptrs[N_PTRS];   /* what exec was captured with */
} cu_graph_t;

struct dw_cu_graphs_s {
    int               on;
    cu_graph_t        g[N_BUCKETS];
    dw_cu_pad_copy_t  runs[DW_CU_GRAPH_MAX_BATCH];
    uint64_t          captured, replayed;
};

int
dw_cu_graphs_create(dw_cu_t *c, char *err, size_t errlen)
{
    const char  *env = getenv("DW_CUDA_GRAPHS");

    c->graphs = calloc(1, sizeof(*c->graphs));
    if (c->graphs == NULL) {
        snprintf(err, errlen, "cuda backend: out of memory");
        return -1;
    }
    c->graphs->on = env == NULL || strcmp(env, "0") != 0;
    if (!c->graphs->on) {
        fprintf(stderr, "dw cuda: CUDA graphs off (DW_CUDA_GRAPHS=0): "
                "every step runs eagerly\n");
    }
    return 0;
}

void
dw_cu_graphs_destroy(dw_cu_t *c)
{
    uint32_t  i;

    if (c->graphs == NULL) {
        return;
    }
    for (i = 0; i < N_BUCKETS; i++) {
        if (c->graphs->g[i].exec != NULL) {
            cudaGraphExecDestroy(c->graphs->g[i].exec);
        }
    }
    free(c->graphs);
    c->graphs = NULL;
}

int
dw_cu_graph_counts(const dw_backend_t *be, uint64_t *captured,
    uint64_t *replayed)
{
    const dw_cu_t  *c;

    if (be == NULL || strcmp(be->ops->name, "cuda") != 0) {
        return -1;
    }
    c = be->priv;
    if (c->graphs == NULL || !c->graphs->on) {
        return -1;
    }
    *captured = c->graphs->captured;
    *replayed = c->graphs->replayed;
    return 0;
}

/* the device pointers a graph bakes in that can move */
static void
cu_ptrs(const dw_cu_t *c, const void **p)
{
    p[0] = c->x;
    p[1] = c->xn;
    p[2] = c->qkvo;
    p[3] = c->att;
    p[4] = c->tmp;
    p[5] = c->gu;
    p[6] = c->act;
    p[7] = c->logits;
    p[8] = c->ws;
    p[9] = c->meta_d;
    p[10] = c->kv.base;
}

static uint32_t
bucket_index(uint32_t bucket)
{
    uint32_t  i = 0;

    while ((1u << i) < bucket) {
        i++;
    }
    return i;
}

/* Captures the padded step's rows into *exec (nothing runs). 0 or -1. */
static int
cu_capture(dw_cu_t *c, const dw_cu_plan_t *pp, cudaGraphExec_t *exec)
{
    cudaGraph_t  graph = NULL;
    cudaError_t  e;
    int          rc;

    *exec = NULL;
    /* thread-local: other threads' CUDA calls are not this capture's
       business (and cannot invalidate it) */
    e = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        fprintf(stderr, "dw cuda: cudaStreamBeginCapture: %s\n",
                cudaGetErrorString(e));
        return -1;
    }
    rc = dw_cu_enqueue_rows(c, pp);
    /* ends the capture whatever happened in it */
    e = cudaStreamEndCapture(c->stream, &graph);
    if (rc != 0 || e != cudaSuccess) {
        fprintf(stderr, "dw cuda: capture of a %u-row decode step: %s\n",
                pp->rows, e != cudaSuccess ? cudaGetErrorString(e)
                                           : "enqueue failed");
        if (graph != NULL) {
            cudaGraphDestroy(graph);
        }
        (void) cudaGetLastError();
        return -1;
    }
    e = cudaGraphInstantiate(exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
        *exec = NULL;
        fprintf(stderr, "dw cuda: cudaGraphInstantiate: %s\n",
                cudaGetErrorString(e));
        (void) cudaGetLastError();
        return -1;
    }
    return 0;
}

int
dw_cu_graph_step(dw_cu_t *c, dw_step_t *st, const dw_cu_plan_t *mt,
    int dev_sample)
{
    dw_cu_graphs_t     *G = c->graphs;
    const dw_config_t  *cfg = &c->m->cfg;
    size_t              V = cfg->vocab_size, ws;
    dw_cu_plan_t        pp, big;
    cu_graph_t         *g;
    const void         *now[N_PTRS];
    uint32_t            bucket, bound, i, j, nr;
    cudaError_t         e;

    /* tensor parallelism runs eagerly: its logits all-gather may grow a
       buffer mid-step, which a capture cannot take */
    if (G == NULL || !G->on || c->comm != NULL || !dw_cu_pad_eligible(mt)) {
        return 0;
    }
    bucket = dw_cu_pad_bucket(mt->n_dec);
    g = &G->g[bucket_index(bucket)];
    bound = dw_cu_pad_ctx_bound(mt->max_ctx);
    bound = bound > g->ctx_bound ? bound : g->ctx_bound;
    /* big: the largest bucket at this bound, what the buffers are
       reserved for, so that other buckets' graphs keep their pointers */
    if (dw_cu_pad_plan(mt, bucket, bound, c->bs, &pp) != 0
        || dw_cu_pad_plan(mt, DW_CU_GRAPH_MAX_BATCH, bound, c->bs, &big) != 0)
    {
        return 0;
    }
    ws = dw_cu_attn_decode_ws(bucket, c->nh, cfg->head_dim, bound);
    if (dw_cu_reserve(c, DW_CU_GRAPH_MAX_BATCH, DW_CU_GRAPH_MAX_BATCH,
                      st->n_seqs, big.total, ws) != 0)
    {
        return -1;
    }
    /* padding rows on the dummy block: the pool's block n_blocks, past
       the engine's blocks (dw_backend_cuda.c allocates one more) */
    dw_cu_pad_fill(st, c->bs, c->n_blocks, &pp, c->meta_h, c->seq_order);
    e = cudaMemcpyAsync(c->meta_d, c->meta_h, pp.total * 4,
                        cudaMemcpyHostToDevice, c->stream);
    if (e != cudaSuccess) {
        fprintf(stderr, "dw cuda: step metadata: %s\n",
                cudaGetErrorString(e));
        return -1;
    }
    cu_ptrs(c, now);
    if (g->exec != NULL
        && (g->ctx_bound != bound || memcmp(g->ptrs, now, sizeof(now)) != 0))
    {
        cudaGraphExecDestroy(g->exec);
        g->exec = NULL;
    }
    if (g->exec != NULL) {
        e = cudaGraphLaunch(g->exec, c->stream);
        if (e != cudaSuccess) {
            fprintf(stderr, "dw cuda: cudaGraphLaunch: %s\n",
                    cudaGetErrorString(e));
            return -1;
        }
        G->replayed++;
    } else {
        /* this step eagerly, then its capture for the next ones */
        if (dw_cu_enqueue_rows(c, &pp) != 0) {
            return -1;
        }
        if (cu_capture(c, &pp, &g->exec) != 0) {
            fprintf(stderr, "dw cuda: CUDA graphs off from now on; steps "
                    "run eagerly\n");
            G->on = 0;
        } else {
            g->ctx_bound = bound;
            memcpy(g->ptrs, now, sizeof(now));
            G->captured++;
        }
    }
    nr = dw_cu_pad_copies(st, G->runs);
    if (dev_sample) {
        /* the wanted rows packed at the front of c->logits, in order (a
           row moves down or stays: one row at a time never overlaps),
           then sampled there */
        for (i = 0; i < nr; i++) {
            for (j = 0; G->runs[i].src != G->runs[i].dst
                        && j < G->runs[i].n; j++)
            {
                e = cudaMemcpyAsync(c->logits + (size_t) (G->runs[i].dst + j)
                                                * V,
                                    c->logits + (size_t) (G->runs[i].src + j)
                                                * V,
                                    V * sizeof(float),
                                    cudaMemcpyDeviceToDevice, c->stream);
                if (e != cudaSuccess) {
                    fprintf(stderr, "dw cuda: logits: %s\n",
                            cudaGetErrorString(e));
                    return -1;
                }
            }
        }
        return dw_cu_sample_enqueue(c, st->n_logits) == 0 ? 1 : -1;
    }
    for (i = 0; i < nr; i++) {
        e = cudaMemcpyAsync(st->logits + (size_t) G->runs[i].dst * V,
                            c->logits + (size_t) G->runs[i].src * V,
                            (size_t) G->runs[i].n * V * sizeof(float),
                            cudaMemcpyDeviceToHost, c->stream);
        if (e != cudaSuccess) {
            fprintf(stderr, "dw cuda: logits: %s\n", cudaGetErrorString(e));
            return -1;
        }
    }
    return 1;
}
