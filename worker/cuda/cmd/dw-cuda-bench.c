/*
 * dw-cuda-bench: the cuda backend's throughput on one GPU, each figure
 * beside the device's bound measured on the spot (bench/gpu/README.md):
 *   - bandwidth: a device-to-device copy of a 2 GiB buffer (bytes read +
 *     written / time); batch-1 decode's bound = (weight bytes + KV bytes
 *     read) per token / that bandwidth;
 *   - BF16 GEMM: cublasGemmEx 8192^3 (F32 accumulation) TFLOP/s; prefill's
 *     achieved FLOP/s (2 * layer params * tokens + causal attention
 *     2 * layers * n_heads * head_dim * tokens^2) against it;
 *   - batched decode tokens/s at each --batches size.
 * Decode steps run over a context of --ctx positions already in the pool
 * (zeros: the arithmetic and bytes are those of real ones), so no prefill
 * is needed first. The model comes from dynamo-mkmodel (any Llama shape;
 * bench/gpu/run.sh makes the 8B one). A table on stdout, JSON with --out.
 *
 *   dw-cuda-bench --model DIR [--batches 1,64,256] [--ctx 1024]
 *       [--prompt 4096] [--steps 32] [--out FILE]
 *   dw-cuda-bench --probe      (names the device, or exits 1 saying why
 *                               there is none)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "dw_backend.h"
#include "dw_model_int.h"

#define MAX_BATCHES  8

typedef struct {
    const char  *model, *out;
    int          probe;
    uint32_t     batches[MAX_BATCHES], n_batches;
    uint32_t     ctx, prompt, steps;
} cb_opts_t;

static double
now_s(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* device-to-device copy GB/s (read + write), best of 5 */
static double
measure_bw(void)
{
    size_t       n = (size_t) 1 << 31;
    void        *a = NULL, *b = NULL;
    cudaEvent_t  e0, e1;
    float        ms, best = 1e30f;
    int          i;

    if (cudaMalloc(&a, n) != cudaSuccess || cudaMalloc(&b, n) != cudaSuccess)
    {
        cudaFree(a);
        return 0;
    }
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice);
    for (i = 0; i < 5; i++) {
        cudaEventRecord(e0, 0);
        cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        cudaEventElapsedTime(&ms, e0, e1);
        best = ms < best ? ms : best;
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(b);
    return 2.0 * n / (best * 1e-3) / 1e9;
}

/* BF16 GEMM TFLOP/s at n^3, best of 5 */
static double
measure_gemm(uint32_t n)
{
    void           *a = NULL, *b = NULL, *c = NULL;
    cublasHandle_t  h;
    cudaEvent_t     e0, e1;
    float           ms, best = 1e30f, one = 1, zero = 0;
    size_t          bytes = (size_t) n * n * 2;
    int             i;

    if (cudaMalloc(&a, bytes) != cudaSuccess
        || cudaMalloc(&b, bytes) != cudaSuccess
        || cudaMalloc(&c, bytes) != cudaSuccess
        || cublasCreate(&h) != CUBLAS_STATUS_SUCCESS)
    {
        cudaFree(a);
        cudaFree(b);
        cudaFree(c);
        return 0;
    }
    cudaMemset(a, 0, bytes);
    cudaMemset(b, 0, bytes);
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (i = 0; i < 6; i++) {
        cudaEventRecord(e0, 0);
        cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int) n, (int) n, (int) n,
                     &one, a, CUDA_R_16BF, (int) n, b, CUDA_R_16BF, (int) n,
                     &zero, c, CUDA_R_16BF, (int) n, CUBLAS_COMPUTE_32F,
                     CUBLAS_GEMM_DEFAULT);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        cudaEventElapsedTime(&ms, e0, e1);
        if (i > 0) {                       /* the first one warms up */
            best = ms < best ? ms : best;
        }
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cublasDestroy(h);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    return 2.0 * n * n * n / (best * 1e-3) / 1e12;
}

/* BF16 bytes of every matrix (as the backend holds them), and the
   layer matrices' parameters */
static uint64_t
weight_bytes(const dw_model_t *m, uint64_t *layer_params)
{
    const dw_config_t  *c = &m->cfg;
    uint64_t            p = 0;
    uint32_t            l;
    int                 i;

    for (l = 0; l < c->n_layers; l++) {
        const dw_layer_t  *L = &m->layers[l];
        const dw_mat_t    *ms[7] = { &L->q, &L->k, &L->v, &L->o, &L->gate,
                                     &L->up, &L->down };

        for (i = 0; i < 7; i++) {
            p += (uint64_t) ms[i]->rows * ms[i]->cols;
        }
    }
    *layer_params = p;
    return 2 * (p + (uint64_t) m->lm_head.rows * m->lm_head.cols);
}

/* b sequences at position pos, one token each, steps times; seconds */
static double
decode_run(dw_backend_t *be, uint32_t b, uint32_t pos, uint32_t steps,
    uint32_t bpseq)
{
    dw_seq_step_t  *s = calloc(b, sizeof(*s));
    uint32_t       *blocks = malloc((size_t) b * bpseq * 4);
    uint32_t       *tok = malloc((size_t) b * 4);
    float          *logits = malloc((size_t) b * be->cfg.vocab_size * 4);
    dw_step_t       st;
    uint32_t        i, t;
    double          t0, dt = -1;

    if (s == NULL || blocks == NULL || tok == NULL || logits == NULL) {
        goto done;
    }
    for (i = 0; i < b * bpseq; i++) {
        blocks[i] = i;
    }
    for (i = 0; i < b; i++) {
        tok[i] = (i * 7 + 3) % be->cfg.vocab_size;
        s[i] = (dw_seq_step_t) { &tok[i], 1, pos, blocks + (size_t) i * bpseq,
                                 bpseq, 1 };
    }
    st = (dw_step_t) { s, b, b, b, logits, 0 };
    if (be->ops->forward(be, &st) != 0) {           /* warm-up */
        goto done;
    }
    t0 = now_s();
    for (t = 0; t < steps; t++) {
        for (i = 0; i < b; i++) {
            s[i].pos = pos + t;
        }
        if (be->ops->forward(be, &st) != 0) {
            goto done;
        }
    }
    dt = now_s() - t0;
done:
    free(s);
    free(blocks);
    free(tok);
    free(logits);
    return dt;
}

static double
prefill_run(dw_backend_t *be, uint32_t n)
{
    uint32_t       *tok = malloc((size_t) n * 4), i, bs = be->opts.block_size;
    uint32_t        nb = (n + bs - 1) / bs, *blocks = malloc((size_t) nb * 4);
    float          *logits = malloc((size_t) be->cfg.vocab_size * 4);
    dw_seq_step_t   s;
    dw_step_t       st;
    double          t0, dt = -1;

    if (tok == NULL || blocks == NULL || logits == NULL) {
        goto done;
    }
    for (i = 0; i < n; i++) {
        tok[i] = (i * 2654435761u) % be->cfg.vocab_size;
    }
    for (i = 0; i < nb; i++) {
        blocks[i] = i;
    }
    s = (dw_seq_step_t) { tok, n, 0, blocks, nb, 1 };
    st = (dw_step_t) { &s, 1, n, 1, logits, 0 };
    if (be->ops->forward(be, &st) != 0) {           /* warm-up */
        goto done;
    }
    t0 = now_s();
    if (be->ops->forward(be, &st) != 0) {
        goto done;
    }
    dt = now_s() - t0;
done:
    free(tok);
    free(blocks);
    free(logits);
    return dt;
}

static int
parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *v)
{
    char           *end;
    unsigned long   x = strtoul(s, &end, 10);

    if (end == s || *end != '\0' || x < lo || x > hi) {
        return -1;
    }
    *v = (uint32_t) x;
    return 0;
}

static int
parse_opts(cb_opts_t *o, int argc, char **argv)
{
    int    a;
    char  *p, *tok, buf[256];

    memset(o, 0, sizeof(*o));
    o->batches[0] = 1;
    o->batches[1] = 64;
    o->batches[2] = 256;
    o->n_batches = 3;
    o->ctx = 1024;
    o->prompt = 4096;
    o->steps = 32;
    for (a = 1; a < argc; a++) {
        const char  *v = a + 1 < argc ? argv[a + 1] : NULL;

        if (strcmp(argv[a], "--probe") == 0) {
            o->probe = 1;
            continue;
        }
        if (v == NULL) {
            return -1;
        }
        if (strcmp(argv[a], "--model") == 0) {
            o->model = v;
        } else if (strcmp(argv[a], "--out") == 0) {
            o->out = v;
        } else if (strcmp(argv[a], "--ctx") == 0) {
            if (parse_u32(v, 1, 1 << 20, &o->ctx)) return -1;
        } else if (strcmp(argv[a], "--prompt") == 0) {
            if (parse_u32(v, 2, 1 << 20, &o->prompt)) return -1;
        } else if (strcmp(argv[a], "--steps") == 0) {
            if (parse_u32(v, 1, 1 << 20, &o->steps)) return -1;
        } else if (strcmp(argv[a], "--batches") == 0) {
            snprintf(buf, sizeof(buf), "%s", v);
            o->n_batches = 0;
            for (tok = strtok_r(buf, ",", &p); tok != NULL;
                 tok = strtok_r(NULL, ",", &p))
            {
                if (o->n_batches == MAX_BATCHES
                    || parse_u32(tok, 1, 4096, &o->batches[o->n_batches++]))
                {
                    return -1;
                }
            }
            if (o->n_batches == 0) {
                return -1;
            }
        } else {
            return -1;
        }
        a++;
    }
    return o->model != NULL || o->probe ? 0 : -1;
}

int
main(int argc, char **argv)
{
    cb_opts_t              o;
    dw_model_t            *m;
    dw_backend_t          *be;
    dw_backend_opts_t      bo;
    struct cudaDeviceProp  pr;
    const dw_config_t     *c;
    char                   err[512];
    uint64_t               wb, lp, kv_tok;
    uint32_t               i, bmax = 0, bpseq, need;
    double                 bw, tf, dt, flops, bound;
    FILE                  *js = NULL;

    if (parse_opts(&o, argc, argv) != 0) {
        fprintf(stderr, "usage: dw-cuda-bench --model DIR [--batches "
                "1,64,256] [--ctx N] [--prompt N] [--steps N] [--out FILE]\n"
                "       dw-cuda-bench --probe\n");
        return 2;
    }
    if (dw_backend_cuda_devices(err, sizeof(err)) <= 0) {
        fprintf(stderr, "dw-cuda-bench: %s\n", err);
        return 1;
    }
    if (o.probe) {
        if (cudaGetDeviceProperties(&pr, 0) != cudaSuccess) {
            fprintf(stderr, "dw-cuda-bench: cannot read device 0\n");
            return 1;
        }
        printf("%s (sm_%d%d, %.0f GiB)\n", pr.name, pr.major, pr.minor,
               pr.totalGlobalMem / 1073741824.0);
        return 0;
    }
    if (dw_model_load(o.model, &m, err, sizeof(err)) != 0) {
        fprintf(stderr, "dw-cuda-bench: %s\n", err);
        return 1;
    }
    c = dw_model_config(m);
    for (i = 0; i < o.n_batches; i++) {
        bmax = o.batches[i] > bmax ? o.batches[i] : bmax;
    }
    bpseq = (o.ctx + o.steps + 1 + 15) / 16;
    need = bmax * bpseq;
    if ((o.prompt + 15) / 16 > need) {
        need = (o.prompt + 15) / 16;
    }
    memset(&bo, 0, sizeof(bo));
    bo.block_size = 16;
    bo.n_blocks = need;
    bo.dtype = DW_DT_BF16;
    cudaGetDeviceProperties(&pr, 0);
    fprintf(stderr, "dw-cuda-bench: %s, measuring bounds\n", pr.name);
    bw = measure_bw();
    tf = measure_gemm(8192);
    if (dw_backend_cuda_create(m, &bo, &be, err, sizeof(err)) != 0) {
        fprintf(stderr, "dw-cuda-bench: %s\n", err);
        dw_model_free(m);
        return 1;
    }
    wb = weight_bytes(m, &lp);
    kv_tok = 2ULL * c->n_layers * c->n_kv_heads * c->head_dim * 2;
    if (o.out != NULL && (js = fopen(o.out, "w")) == NULL) {
        perror(o.out);
    }
    printf("device: %s (sm_%d%d), copy bandwidth %.0f GB/s, BF16 GEMM "
           "%.0f TFLOP/s\n", pr.name, pr.major, pr.minor, bw, tf);
    printf("model: %s, %.2f GB of BF16 weights\n", o.model, wb / 1e9);
    if (js != NULL) {
        fprintf(js, "{\"device\":\"%s\",\"bandwidth_gbs\":%.1f,"
                "\"gemm_tflops\":%.1f,\"weight_bytes\":%llu,\"runs\":[",
                pr.name, bw, tf, (unsigned long long) wb);
    }

    dt = prefill_run(be, o.prompt);
    flops = 2.0 * lp * o.prompt + 2.0 * c->n_layers * c->n_heads
            * c->head_dim * (double) o.prompt * o.prompt;
    printf("prefill %u tokens: %.1f ms, %.1f TFLOP/s = %.0f%% of GEMM\n",
           o.prompt, dt * 1e3, flops / dt / 1e12,
           100 * flops / dt / 1e12 / tf);
    if (js != NULL) {
        fprintf(js, "{\"kind\":\"prefill\",\"tokens\":%u,\"s\":%.6f,"
                "\"tflops\":%.2f}", o.prompt, dt, flops / dt / 1e12);
    }
    for (i = 0; i < o.n_batches; i++) {
        uint32_t  b = o.batches[i];

        dt = decode_run(be, b, o.ctx, o.steps, bpseq);
        if (dt < 0) {
            fprintf(stderr, "dw-cuda-bench: decode batch %u failed\n", b);
            continue;
        }
        /* one step reads every weight once and each sequence's KV */
        bound = (wb + (double) b * (o.ctx + o.steps / 2) * kv_tok)
                / (bw * 1e9);
        printf("decode batch %u, context %u: %.2f ms/step, %.0f tokens/s, "
               "%.0f%% of the bandwidth bound\n", b, o.ctx,
               dt / o.steps * 1e3, b * o.steps / dt,
               100 * bound / (dt / o.steps));
        if (js != NULL) {
            fprintf(js, ",{\"kind\":\"decode\",\"batch\":%u,\"ctx\":%u,"
                    "\"s_per_step\":%.6f,\"tokens_s\":%.1f,"
                    "\"bound_s\":%.6f}", b, o.ctx, dt / o.steps,
                    b * o.steps / dt, bound);
        }
    }
    if (js != NULL) {
        fprintf(js, "]}\n");
        fclose(js);
    }
    be->ops->destroy(be);
    dw_model_free(m);
    return 0;
}
