/*
 * dynamo-worker: the backend interface. A backend owns the KV pool memory
 * (n_blocks blocks of block_size tokens for every layer) and runs one
 * engine step: a batch of sequence slices, each appending n_tokens at
 * positions pos.. to its sequence's KV and, when asked, producing the
 * logits of its last token. The block manager decides which block ids a
 * sequence uses; the backend only reads and writes them.
 *
 * Backends: cpu (dw_backend_cpu.c), mock (timing model), cuda
 * (worker/cuda/dw_backend_cuda.c).
 * All calls come from the engine thread.
 */
#ifndef DW_BACKEND_H
#define DW_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "dw_model.h"
#include "dw_sampling.h"

typedef struct dw_backend_s  dw_backend_t;

typedef struct {
    const uint32_t  *tokens;     /* ids to run, at positions pos..pos+n-1 */
    uint32_t         n_tokens;
    uint32_t         pos;        /* tokens already in this sequence's KV */
    const uint32_t  *blocks;     /* block table: covers 0..pos+n_tokens-1 */
    uint32_t         n_blocks;
    int              want_logits;
} dw_seq_step_t;

typedef struct {
    dw_seq_step_t   *seqs;
    uint32_t         n_seqs;
    uint32_t         n_tokens;   /* sum of n_tokens */
    uint32_t         n_logits;   /* sequences with want_logits */
    float           *logits;     /* out: n_logits rows of vocab_size, in
                                    seq order; host memory of the engine */
    float            kv_usage;   /* 0..1, blocks of running sequences /
                                    n_blocks (parked and held ones are
                                    not read by the step) */
} dw_step_t;

typedef struct {
    uint32_t   block_size;       /* tokens per KV block */
    uint32_t   n_blocks;         /* KV pool size */
    uint32_t   threads;          /* cpu: 0 = all cores */
    double     speedup;          /* mock: divide modelled times by this */
    uint64_t   seed;             /* mock: token stream seed */
    /*
     * The KV pool's memory, when the caller provides it (disaggregation:
     * a region UCX allocated and registered, worker/XFER.md), laid out as
     * dw_xfer_layout_cpu says; NULL: the backend allocates its own. Not
     * freed by the backend; must outlive it. cpu: at least kv_mem_len
     * bytes are needed (dw_backend_cpu_create fails otherwise) and are
     * zeroed; mock: unused (its transfers move these bytes only).
     */
    void      *kv_mem;
    size_t     kv_mem_len;
    /* cuda: weights (and KV cache) dtype on the device, F32, BF16 or F16
       (the default, 0, is F32: callers pick BF16); the GPU ordinal */
    dw_dtype_t dtype;
    int        device;
    /* cuda: GPUs the model is split over (devices device .. device + n - 1,
       worker/cuda/README.md "Tensor parallelism"); 0 or 1: one */
    uint32_t   tensor_parallel;
    /* cpu: implement ops->sample (forward, then the threshold sampler
       the GPU runs, dw_sample_thr) so tests drive the engine's
       backend-sampling path on the host; 0 (the default): no sample op */
    int        sample_on_backend;
} dw_backend_opts_t;

typedef struct {
    const char  *name;
    /* 0 ok, -1 failure (the engine fails the step's requests). */
    int        (*forward)(dw_backend_t *be, dw_step_t *step);
    /*
     * Optional. When set, the backend picks each want_logits sequence's
     * next token itself (ids[n_logits]) and step->logits is not filled:
     * the mock uses it so dozens of simulated workers cost no vocab-sized
     * work (no sampling settings, no RNG: see sample below for that).
     */
    int        (*next_ids)(dw_backend_t *be, dw_step_t *step, uint32_t *ids);
    /* Bytes of one KV block across all layers (for transfer, metrics). */
    size_t     (*block_bytes)(const dw_backend_t *be);
    void       (*destroy)(dw_backend_t *be);
    /*
     * Optional; the engine calls it INSTEAD of forward when set (and
     * next_ids is not): runs the step and samples each want_logits
     * sequence itself, row i (the i-th want_logits sequence) with
     * rows[i], into out[i]; step->logits is not filled, only token ids
     * and the asked logprobs come back. Same semantics as dw_sample
     * (worker/src/dw_sample_int.h), rows[i].rng advanced by exactly one
     * dw_rng_uniform draw per non-greedy sampled token. The cuda backend
     * samples on the device (worker/cuda/dw_cu_sample.cu); the cpu
     * backend has it when opts.sample_on_backend is set. 0 ok, -1
     * failure (as forward).
     */
    int        (*sample)(dw_backend_t *be, dw_step_t *step,
                         const dw_sample_row_t *rows, dw_sample_out_t *out);
} dw_backend_ops_t;

struct dw_backend_s {
    const dw_backend_ops_t  *ops;
    dw_config_t              cfg;
    dw_backend_opts_t        opts;
    void                    *priv;
};

/* 0 or -1 with err. The model must outlive the backend. */
int dw_backend_cpu_create(const dw_model_t *m, const dw_backend_opts_t *o,
    dw_backend_t **out, char *err, size_t errlen);
/*
 * The mock: the forward pass is replaced by sleeping the modelled step
 * time (Dynamo's mocker formulas); next_ids gives deterministic
 * pseudo-random ids from (seed, position, last token), so outputs repeat.
 */
int dw_backend_mock_create(const dw_config_t *cfg, const dw_backend_opts_t *o,
    dw_backend_t **out, char *err, size_t errlen);

/*
 * The cuda backend (worker/cuda/, built when the CUDA toolkit is there).
 * dw_backend_cuda_devices: the number of usable devices (> 0), or 0 with
 * err saying why there is none ("no CUDA device: cudaGetDeviceCount: ...",
 * or "this dynamo-worker was built without CUDA"). Create fails the same
 * way when there is no device. 0 or -1 with err; the model must outlive
 * the backend.
 */
int dw_backend_cuda_devices(char *err, size_t errlen);
int dw_backend_cuda_create(const dw_model_t *m, const dw_backend_opts_t *o,
    dw_backend_t **out, char *err, size_t errlen);

#endif
