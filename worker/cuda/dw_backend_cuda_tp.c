/*
 * dynamo-worker: the cuda backend over N GPUs (--tensor-parallel-size N):
 * one process, one engine, one host thread per GPU, NCCL communicators
 * created in-process (ncclCommInitAll).
 *
 * Each rank is a whole one-GPU backend state (dw_cu_t, created by
 * dw_cu_create_rank on device o->device + rank) holding its shard
 * (dw_tp.h): its q heads, KV heads (and their KV pool), intermediate
 * slice and lm_head vocab slice; the embedding is replicated. A step:
 * the engine thread hands it to the N rank threads and waits for all of
 * them; each runs the same forward (dw_backend_cuda_fwd.c) on its shard,
 * the o_proj and down_proj outputs all-reduced (sum) before the residual
 * add, the logits slices all-gathered; rank 0 alone copies the logits to
 * the engine. The step's metadata is built by each rank from the same
 * dw_step_t (read-only to them; only rank 0 writes step->logits).
 *
 * Why threads and not a process per GPU: the engine (scheduler, block
 * manager, prefix cache, KV events) exists once per worker and every
 * rank sees its decisions directly, with no second process to mirror
 * them to; the worker keeps one registration, one port, one publisher.
 * A host thread per GPU (rather than one thread driving all devices in
 * an ncclGroup) keeps each rank's forward the one-GPU code path, with its
 * own current device, stream and cuBLAS handle.
 *
 * The all-reduce is in the storage type (BF16 by default: ncclBfloat16,
 * in place on the GEMM's output): the partial sums are in that type
 * already (the one-GPU path rounds the same GEMM output before the
 * residual add), BF16 halves the bytes moved against F32, which is what a
 * decode step's all-reduces cost, and it is what vLLM and Megatron do.
 * The price: up to log2(N) more roundings of each sum; the residual
 * stream itself stays F32.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dw_backend_cuda_int.h"

typedef struct dw_cu_tp_s  dw_cu_tp_t;

typedef struct {
    dw_cu_tp_t    *g;
    uint32_t       rank;
    dw_backend_t  *be;             /* the rank's state: priv is a dw_cu_t */
    pthread_t      th;
    int            started;
    int            rc;             /* of the last step */
} dw_cu_rank_t;

struct dw_cu_tp_s {
    uint32_t          n;
    dw_cu_rank_t      r[DW_TP_MAX];
    ncclComm_t        comm[DW_TP_MAX];
    int               have_comms;
    pthread_mutex_t   mu;
    pthread_cond_t    go, done;
    uint64_t          gen;         /* bumped per step */
    uint32_t          n_done;
    int               quit;
    dw_step_t        *step;
};

/* A rank's thread: owns its device; runs each step it is handed. */
static void *
tp_rank_main(void *arg)
{
    dw_cu_rank_t  *rk = arg;
    dw_cu_tp_t    *g = rk->g;
    dw_cu_t       *c = rk->be->priv;
    uint64_t       seen = 0;
    dw_step_t     *st;
    cudaError_t    e;
    int            rc;

    e = cudaSetDevice(c->device);
    if (e != cudaSuccess) {
        fprintf(stderr, "dw cuda: rank %u: cudaSetDevice(%d): %s\n",
                rk->rank, c->device, cudaGetErrorString(e));
    }
    pthread_mutex_lock(&g->mu);
    for ( ;; ) {
        while (g->gen == seen && !g->quit) {
            pthread_cond_wait(&g->go, &g->mu);
        }
        if (g->quit) {
            break;
        }
        seen = g->gen;
        st = g->step;
        pthread_mutex_unlock(&g->mu);

        /* every rank must issue the same collectives: a rank that fails
           before its share leaves the others waiting (README: Tensor
           parallelism, "not handled") */
        rc = e == cudaSuccess ? dw_cu_forward(rk->be, st) : -1;

        pthread_mutex_lock(&g->mu);
        rk->rc = rc;
        if (++g->n_done == g->n) {
            pthread_cond_signal(&g->done);
        }
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

/* The engine thread: hands the step to every rank, waits for all. */
static int
tp_forward(dw_backend_t *be, dw_step_t *st)
{
    dw_cu_tp_t  *g = be->priv;
    uint32_t     i;
    int          rc = 0;

    pthread_mutex_lock(&g->mu);
    g->step = st;
    g->n_done = 0;
    g->gen++;
    pthread_cond_broadcast(&g->go);
    while (g->n_done < g->n) {
        pthread_cond_wait(&g->done, &g->mu);
    }
    g->step = NULL;
    for (i = 0; i < g->n; i++) {
        if (g->r[i].rc != 0) {
            rc = -1;
        }
    }
    pthread_mutex_unlock(&g->mu);
    return rc;
}

/* One KV block across all layers and all GPUs. */
static size_t
tp_block_bytes(const dw_backend_t *be)
{
    const dw_cu_tp_t  *g = be->priv;
    size_t             b = 0;
    uint32_t           i;

    for (i = 0; i < g->n; i++) {
        b += ((const dw_cu_t *) g->r[i].be->priv)->tp.kv_block_bytes;
    }
    return b;
}

static void
tp_destroy(dw_backend_t *be)
{
    dw_cu_tp_t  *g;
    uint32_t     i;

    if (be == NULL) {
        return;
    }
    g = be->priv;
    if (g != NULL) {
        pthread_mutex_lock(&g->mu);
        g->quit = 1;
        pthread_cond_broadcast(&g->go);
        pthread_mutex_unlock(&g->mu);
        for (i = 0; i < g->n; i++) {
            if (g->r[i].started) {
                pthread_join(g->r[i].th, NULL);
            }
        }
        for (i = 0; i < g->n; i++) {
            dw_backend_t  *rb = g->r[i].be;

            if (rb == NULL) {
                continue;
            }
            /* the rank's buffers are on its device; this thread's current
               device is whichever was set last */
            cudaSetDevice(((dw_cu_t *) rb->priv)->device);
            rb->ops->destroy(rb);          /* synchronises its stream */
            if (g->have_comms) {
                ncclCommDestroy(g->comm[i]);
            }
        }
        pthread_cond_destroy(&g->go);
        pthread_cond_destroy(&g->done);
        pthread_mutex_destroy(&g->mu);
        free(g);
    }
    free(be);
}

/* no sample op: rank 0 copies the logits back and the engine samples
   them on the host */
static const dw_backend_ops_t  tp_ops = {
    "cuda", tp_forward, NULL, tp_block_bytes, tp_destroy, NULL
};

int
dw_cu_tp_create(const dw_model_t *m, const dw_backend_opts_t *o,
    int n_devices, dw_backend_t **out, char *err, size_t errlen)
{
    uint32_t       n = o->tensor_parallel, i;
    int            devs[DW_TP_MAX];
    dw_backend_t  *be;
    dw_cu_tp_t    *g;
    ncclResult_t   nr;

    *out = NULL;
    if (n < 2 || n > DW_TP_MAX) {
        snprintf(err, errlen, "cuda backend: --tensor-parallel-size %u", n);
        return -1;
    }
    if ((long) o->device + n > n_devices) {
        snprintf(err, errlen, "cuda backend: --tensor-parallel-size %u "
                 "needs %ld GPUs, %d found", n, (long) o->device + n,
                 n_devices);
        return -1;
    }
    be = calloc(1, sizeof(*be));
    g = calloc(1, sizeof(*g));
    if (be == NULL || g == NULL) {
        free(be);
        free(g);
        snprintf(err, errlen, "cuda backend: out of memory");
        return -1;
    }
    be->ops = &tp_ops;
    be->cfg = m->cfg;
    be->opts = *o;
    be->priv = g;
    g->n = n;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->go, NULL);
    pthread_cond_init(&g->done, NULL);

    /* each rank's weights and KV pool, one device after the other */
    for (i = 0; i < n; i++) {
        g->r[i].g = g;
        g->r[i].rank = i;
        devs[i] = o->device + (int) i;
        if (dw_cu_create_rank(m, o, n, i, &g->r[i].be, err, errlen) != 0) {
            tp_destroy(be);
            return -1;
        }
    }
    nr = ncclCommInitAll(g->comm, (int) n, devs);
    if (nr != ncclSuccess) {
        snprintf(err, errlen, "cuda backend: ncclCommInitAll over %u GPUs: "
                 "%s", n, ncclGetErrorString(nr));
        tp_destroy(be);
        return -1;
    }
    g->have_comms = 1;
    for (i = 0; i < n; i++) {
        ((dw_cu_t *) g->r[i].be->priv)->comm = g->comm[i];
    }
    for (i = 0; i < n; i++) {
        if (pthread_create(&g->r[i].th, NULL, tp_rank_main, &g->r[i]) != 0) {
            snprintf(err, errlen, "cuda backend: cannot start the thread of "
                     "GPU %u", i);
            tp_destroy(be);
            return -1;
        }
        g->r[i].started = 1;
    }
    *out = be;
    return 0;
}

int
dw_cu_tp_allreduce(dw_cu_t *c, void *x, size_t n)
{
    ncclDataType_t  t = c->dt == DW_DT_F32 ? ncclFloat32
                        : c->dt == DW_DT_F16 ? ncclFloat16 : ncclBfloat16;
    ncclResult_t    r;

    r = ncclAllReduce(x, x, n, t, ncclSum, c->comm, c->stream);
    if (r != ncclSuccess) {
        fprintf(stderr, "dw cuda: rank %u: ncclAllReduce of %zu: %s\n",
                c->tp.rank, n, ncclGetErrorString(r));
        return -1;
    }
    return 0;
}

/*
 * lpart[cap][vocab_pad] and gather[n_ranks][cap][vocab_pad], zeroed (the
 * pad columns of a short slice are gathered, never written). Grown in the
 * middle of a step: every rank has enqueued the same all-reduces by then,
 * so the device synchronisation cudaFree implies waits only on
 * collectives whose peers are enqueued too (no rank-to-rank deadlock).
 */
static int
tp_reserve(dw_cu_t *c, uint32_t n_logits)
{
    size_t       slice = (size_t) n_logits * c->tp.vocab_pad * sizeof(float);
    cudaError_t  e;

    if (n_logits <= c->cap_gather) {
        return 0;
    }
    cudaFree(c->lpart);
    cudaFree(c->gather);
    c->lpart = NULL;
    c->gather = NULL;
    c->cap_gather = 0;
    e = cudaMalloc((void **) &c->lpart, slice);
    if (e == cudaSuccess) {
        e = cudaMalloc((void **) &c->gather, slice * c->tp.n_ranks);
    }
    if (e == cudaSuccess) {
        e = cudaMemsetAsync(c->lpart, 0, slice, c->stream);
    }
    if (e == cudaSuccess) {
        e = cudaMemsetAsync(c->gather, 0, slice * c->tp.n_ranks, c->stream);
    }
    if (e != cudaSuccess) {
        fprintf(stderr, "dw cuda: rank %u: logits buffers for %u rows: %s\n",
                c->tp.rank, n_logits, cudaGetErrorString(e));
        return -1;
    }
    c->cap_gather = n_logits;
    return 0;
}

int
dw_cu_tp_logits(dw_cu_t *c, uint32_t n_logits)
{
    const dw_config_t  *cfg = &c->m->cfg;
    uint32_t            h = cfg->hidden_size, vp = c->tp.vocab_pad, r;
    size_t              slice = (size_t) n_logits * vp;
    ncclResult_t        nr;
    cudaError_t         e;

    if (tp_reserve(c, n_logits) != 0) {
        return -1;
    }
    /* lpart[n_logits][vp] (first vocab.n columns) = xn . lm_slice^T */
    if (dw_cu_gemm(c->gemm, c->stream, dw_cu_data_type(c), c->xn, h,
                   c->lm_head, c->tp.vocab.n, h, n_logits, c->lpart, vp, 1)
        != 0)
    {
        return -1;
    }
    nr = ncclAllGather(c->lpart, c->gather, slice, ncclFloat32, c->comm,
                       c->stream);
    if (nr != ncclSuccess) {
        fprintf(stderr, "dw cuda: rank %u: ncclAllGather of %zu: %s\n",
                c->tp.rank, slice, ncclGetErrorString(nr));
        return -1;
    }
    if (c->tp.rank != 0) {
        return 0;
    }
    /* gather is [rank][row][vp]; logits [row][vocab]: each rank's slice
       lands at its columns */
    for (r = 0; r < c->tp.n_ranks; r++) {
        dw_tp_shard_t  sh;
        char           msg[160];

        if (dw_tp_shard(cfg, c->tp.n_ranks, r, c->bs, c->esz, &sh,
                        msg, sizeof(msg)) != 0)
        {
            fprintf(stderr, "dw cuda: %s\n", msg);
            return -1;
        }
        e = cudaMemcpy2DAsync(c->logits + sh.vocab.lo,
                              (size_t) cfg->vocab_size * sizeof(float),
                              c->gather + r * slice, (size_t) vp * sizeof(float),
                              (size_t) sh.vocab.n * sizeof(float), n_logits,
                              cudaMemcpyDeviceToDevice, c->stream);
        if (e != cudaSuccess) {
            fprintf(stderr, "dw cuda: logits of rank %u: %s\n", r,
                    cudaGetErrorString(e));
            return -1;
        }
    }
    return 0;
}
