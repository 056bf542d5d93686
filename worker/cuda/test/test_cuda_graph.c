/*
 * GPU tests of the decode graphs and the cuBLASLt GEMM:
 *   - stories260K (BF16 on the device), decode steps of batch 1, 3, 8 and
 *     33 on a backend with graphs (padded to buckets 1, 4, 8, 64) and on
 *     one without (DW_CUDA_GRAPHS=0) give the same logits bit for bit
 *     (same kernels, same GEMM algorithms: dw_cu_gemm_rows_key), over
 *     contexts that grow across the first capture bound (512) so the
 *     graphs are captured again, with some sequences not wanting logits;
 *     the graph backend did capture and replay;
 *   - dw_cu_gemm against a CPU F32 reference on awkward shapes (1, 7, 33,
 *     4097 rows / columns / depth, leading dimensions past the row, BF16
 *     and F32 out, a misaligned operand for the cublasGemmEx fallback)
 *     within BF16 bounds, and a 3-row GEMM equal bit for bit to the first
 *     rows of the 4-row one.
 * Skipped when no CUDA device is present. Run from the repository root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dw_backend.h"
#include "dw_backend_cuda_graph.h"
#include "dw_backend_cuda_int.h"
#include "dw_kern_int.h"
#include "support/dw_tsupport_model.h"

#define BS        16
#define N_BLOCKS  1200
#define MAX_SEQS  33
#define PROMPT0   490           /* prompts of 490..496 tokens */
#define STEPS     30            /* contexts to 520..526: across 512 */
#define MAX_NB    ((PROMPT0 + 7 + STEPS + BS - 1) / BS)

static int   have_dev;
static char  no_dev[512];

#define CU(x)  cu_check((x), #x, __FILE__, __LINE__)

static void
cu_check(cudaError_t e, const char *what, const char *file, int line)
{
    if (e != cudaSuccess) {
        fail_msg("%s:%d: %s: %s", file, line, what, cudaGetErrorString(e));
    }
}

/* ---- graphs against eager on stories260K ---- */

typedef struct {
    dw_model_t    *m;
    dw_backend_t  *eager, *graph;
} fix_t;

static int
setup(void **state)
{
    fix_t             *f;
    char               err[512];
    dw_backend_opts_t  o;

    *state = NULL;
    if (!have_dev) {
        return 0;
    }
    f = calloc(1, sizeof(*f));
    assert_non_null(f);
    if (dw_model_load(DW_TS_STORIES, &f->m, err, sizeof(err)) != 0) {
        fail_msg("load: %s", err);
    }
    memset(&o, 0, sizeof(o));
    o.block_size = BS;
    o.n_blocks = N_BLOCKS;
    o.dtype = DW_DT_BF16;
    /* the switch is read at create */
    setenv("DW_CUDA_GRAPHS", "0", 1);
    if (dw_backend_cuda_create(f->m, &o, &f->eager, err, sizeof(err)) != 0) {
        fail_msg("cuda (eager): %s", err);
    }
    setenv("DW_CUDA_GRAPHS", "1", 1);
    if (dw_backend_cuda_create(f->m, &o, &f->graph, err, sizeof(err)) != 0) {
        fail_msg("cuda (graphs): %s", err);
    }
    unsetenv("DW_CUDA_GRAPHS");
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fix_t  *f = *state;

    if (f != NULL) {
        f->graph->ops->destroy(f->graph);
        f->eager->ops->destroy(f->eager);
        dw_model_free(f->m);
        free(f);
    }
    return 0;
}

typedef struct {
    uint32_t  prompt[PROMPT0 + 7];
    uint32_t  len;                  /* prompt length */
    uint32_t  blocks[MAX_NB];
    uint32_t  next;                 /* the token of the next step */
} seq_t;

static void
forward_ok(dw_backend_t *be, dw_step_t *st, const char *what)
{
    if (be->ops->forward(be, st) != 0) {
        fail_msg("%s: forward failed", what);
    }
}

static void
bits_equal(const float *a, const float *b, size_t n, uint32_t n_seq,
    uint32_t step)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
            fail_msg("batch %u, step %u: logit %zu: graph %.9g, eager %.9g",
                     n_seq, step, i, b[i], a[i]);
        }
    }
}

/*
 * n sequences: prompts prefilled in one (eager) step on both backends,
 * then STEPS decode steps of all n, each fed the eager backend's argmax
 * (both get the same inputs); every logit compared bit for bit. With 8
 * sequences, 2 and 5 want no logits in odd steps: the eager lm_head GEMM
 * has 6 rows, the same algorithm key as the graph's 8 (with 31 of 33 it
 * would be 32 against 64, a different algorithm, so equal only within
 * rounding: not asserted). fresh: the bucket's first use.
 */
static void
graph_case(fix_t *f, uint32_t n, int fresh, uint64_t *seed)
{
    static seq_t    S[MAX_SEQS];
    dw_seq_step_t   ss[MAX_SEQS];
    dw_step_t       st;
    uint32_t        V = dw_model_config(f->m)->vocab_size;
    uint32_t        i, t, step, rows, n_logits, j;
    uint64_t        cap0, rep0, cap1, rep1;
    float          *le, *lg;

    assert_true(n <= MAX_SEQS && n * MAX_NB <= N_BLOCKS);
    le = malloc((size_t) n * V * sizeof(float));
    lg = malloc((size_t) n * V * sizeof(float));
    assert_non_null(le);
    assert_non_null(lg);
    assert_int_equal(dw_cu_graph_counts(f->graph, &cap0, &rep0), 0);
    assert_int_equal(dw_cu_graph_counts(f->eager, &cap1, &rep1), -1);

    /* prompts, and block tables spread over the pool, reversed so that
       neighbours in the pool are not neighbours in a table */
    rows = 0;
    for (i = 0; i < n; i++) {
        S[i].len = PROMPT0 + (i * 5) % 7;
        for (t = 0; t < S[i].len; t++) {
            S[i].prompt[t] = (uint32_t) (dw_ts_rand(seed) % V);
        }
        for (t = 0; t < MAX_NB; t++) {
            S[i].blocks[t] = (N_BLOCKS - 1) - (t * n + i);
        }
        ss[i] = (dw_seq_step_t) { S[i].prompt, S[i].len, 0, S[i].blocks,
                                  MAX_NB, 1 };
        rows += S[i].len;
    }
    st = (dw_step_t) { ss, n, rows, n, le, 0 };
    forward_ok(f->eager, &st, "prefill (eager)");
    st.logits = lg;
    forward_ok(f->graph, &st, "prefill (graphs)");
    bits_equal(le, lg, (size_t) n * V, n, 0);
    for (i = 0; i < n; i++) {
        S[i].next = dw_ts_argmax(le + (size_t) i * V, V);
    }

    for (step = 0; step < STEPS; step++) {
        n_logits = 0;
        for (i = 0; i < n; i++) {
            int  want = !(n == 8 && step % 2 == 1 && (i == 2 || i == 5));

            ss[i] = (dw_seq_step_t) { &S[i].next, 1, S[i].len + step,
                                      S[i].blocks, MAX_NB, want };
            n_logits += want;
        }
        st = (dw_step_t) { ss, n, n, n_logits, le, 0 };
        forward_ok(f->eager, &st, "decode (eager)");
        memset(lg, 0xff, (size_t) n * V * sizeof(float));
        st.logits = lg;
        forward_ok(f->graph, &st, "decode (graphs)");
        bits_equal(le, lg, (size_t) n_logits * V, n, step + 1);
        for (i = 0, j = 0; i < n; i++) {
            if (ss[i].want_logits) {
                S[i].next = dw_ts_argmax(le + (size_t) j++ * V, V);
            } else {
                S[i].next = (S[i].next + 1) % V;
            }
        }
    }
    assert_int_equal(dw_cu_graph_counts(f->graph, &cap1, &rep1), 0);
    print_message("batch %u: %llu captures, %llu replays\n", n,
                  (unsigned long long) (cap1 - cap0),
                  (unsigned long long) (rep1 - rep0));
    /* the bucket's first step captures, crossing 512 captures again (a
       bucket seen before keeps its bound of 1024; it captures again only
       if the prefills in between moved a buffer, which they likely but
       not surely did) */
    if (fresh) {
        assert_true(cap1 - cap0 >= 2);
    }
    assert_true(rep1 - rep0 >= STEPS - 4);
    assert_true((cap1 - cap0) + (rep1 - rep0) == STEPS);
    free(le);
    free(lg);
}

static void
test_graph_vs_eager(void **state)
{
    /* buckets 1, 4, 8, 64, then 4 again */
    static const uint32_t  batch[] = { 1, 3, 8, 33, 3 };
    uint64_t               seed = 8;
    size_t                 i;

    if (!have_dev) {
        skip();
    }
    for (i = 0; i < sizeof(batch) / sizeof(batch[0]); i++) {
        graph_case(*state, batch[i], i < 4, &seed);
    }
}

/* ---- dw_cu_gemm against a CPU reference ---- */

typedef struct {
    cudaStream_t    st;
    cublasHandle_t  blas;
    dw_cu_gemm_t   *g;
} gemm_fix_t;

static void
gemm_open(gemm_fix_t *G)
{
    char  err[256];

    CU(cudaStreamCreateWithFlags(&G->st, cudaStreamNonBlocking));
    assert_int_equal(cublasCreate(&G->blas), CUBLAS_STATUS_SUCCESS);
    assert_int_equal(cublasSetStream(G->blas, G->st), CUBLAS_STATUS_SUCCESS);
    if (dw_cu_gemm_create(&G->g, G->blas, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
}

static void
gemm_close(gemm_fix_t *G)
{
    CU(cudaStreamSynchronize(G->st));
    dw_cu_gemm_destroy(G->g);
    cublasDestroy(G->blas);
    CU(cudaStreamDestroy(G->st));
}

/* n random BF16 values in [-1, 1): bits in b, their F32 values in f */
static void
rand_bf16(uint16_t *b, float *f, size_t n, uint64_t *seed)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        b[i] = dw_f32_to_bf16(dw_ts_randf(seed));
        f[i] = dw_bf16_to_f32(b[i]);
    }
}

/*
 * y[rows][n] (ldy) = x[rows][k] (ldx) . W[n][k]^T on the device, against
 * the same sum in double from the same BF16 inputs. Bound per element:
 * F32 accumulation over k terms (k * 2^-23 * sum |x w|, generous) plus
 * one rounding of the output when it is BF16 (2^-8 |ref|). xoff: the x
 * operand starts that many elements into its buffer (1: 2-byte aligned,
 * the cublasGemmEx path).
 */
static void
gemm_case(gemm_fix_t *G, uint32_t rows, uint32_t n, uint32_t k, size_t ldx,
    size_t ldy, int y_f32, size_t xoff, uint64_t *seed)
{
    size_t     nx = (size_t) rows * ldx + xoff, nw = (size_t) n * k;
    size_t     ny = (size_t) rows * ldy, esz = y_f32 ? 4 : 2, r, i, d;
    uint16_t  *xb = calloc(nx, 2), *wb = malloc(nw * 2);
    float     *xf = calloc(nx, 4), *wf = malloc(nw * 4);
    void      *yh = malloc(ny * esz);
    void      *dx, *dw, *dy;
    double     worst = 0;

    assert_true(xb && wb && xf && wf && yh);
    rand_bf16(xb, xf, nx, seed);
    rand_bf16(wb, wf, nw, seed);
    CU(cudaMalloc(&dx, nx * 2));
    CU(cudaMalloc(&dw, nw * 2));
    CU(cudaMalloc(&dy, ny * esz));
    CU(cudaMemcpy(dx, xb, nx * 2, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(dw, wb, nw * 2, cudaMemcpyHostToDevice));
    /* a canary between rows: what lies past n in a row stays */
    CU(cudaMemset(dy, 0x7f, ny * esz));
    assert_int_equal(dw_cu_gemm(G->g, G->st, CUDA_R_16BF,
                                (dw_bf16_t *) dx + xoff, ldx, dw, n, k, rows,
                                dy, ldy, y_f32), 0);
    CU(cudaStreamSynchronize(G->st));
    CU(cudaMemcpy(yh, dy, ny * esz, cudaMemcpyDeviceToHost));
    for (r = 0; r < rows; r++) {
        for (i = 0; i < ldy; i++) {
            double  ref = 0, mag = 0, got, tol;

            if (i >= n) {
                uint8_t  c[4];

                memcpy(c, (char *) yh + (r * ldy + i) * esz, esz);
                if (c[0] != 0x7f || c[esz - 1] != 0x7f) {
                    fail_msg("%ux%ux%u: wrote past row %zu's %u columns",
                             rows, n, k, r, n);
                }
                continue;
            }
            for (d = 0; d < k; d++) {
                double  p = (double) xf[xoff + r * ldx + d] * wf[i * k + d];

                ref += p;
                mag += fabs(p);
            }
            if (y_f32) {
                got = ((float *) yh)[r * ldy + i];
            } else {
                got = dw_bf16_to_f32(((uint16_t *) yh)[r * ldy + i]);
            }
            tol = (double) k * ldexp(1, -23) * mag + 1e-30
                  + (y_f32 ? 0 : ldexp(1, -8) * fabs(ref));
            if (fabs(got - ref) > tol) {
                fail_msg("%ux%ux%u (%s out): y[%zu][%zu] = %.8g, reference "
                         "%.8g (tolerance %.3g)", rows, n, k,
                         y_f32 ? "F32" : "BF16", r, i, got, ref, tol);
            }
            worst = fmax(worst, fabs(got - ref) / (mag + 1e-30));
        }
    }
    print_message("gemm %u x %u x %u, ldx %zu, ldy %zu, %s out%s: worst "
                  "|err| / sum|x w| %.3g\n", rows, n, k, ldx, ldy,
                  y_f32 ? "F32" : "BF16", xoff ? ", misaligned x" : "",
                  worst);
    CU(cudaFree(dx));
    CU(cudaFree(dw));
    CU(cudaFree(dy));
    free(xb);
    free(wb);
    free(xf);
    free(wf);
    free(yh);
}

static void
test_gemm_shapes(void **state)
{
    /* rows, n, k: every size from {1, 7, 33, 4097} somewhere, none a tile
       multiple, the large ones kept to one dimension for the reference */
    static const uint32_t  shp[][3] = {
        { 1, 1, 1 }, { 1, 7, 33 }, { 7, 33, 1 }, { 33, 1, 7 },
        { 1, 4097, 33 }, { 7, 33, 4097 }, { 33, 4097, 7 }, { 4097, 7, 33 },
        { 33, 33, 33 }, { 3, 4097, 64 }, { 257, 96, 172 },
    };
    gemm_fix_t  G;
    uint64_t    seed = 42;
    size_t      i;

    if (!have_dev) {
        skip();
    }
    gemm_open(&G);
    for (i = 0; i < sizeof(shp) / sizeof(shp[0]); i++) {
        uint32_t  r = shp[i][0], n = shp[i][1], k = shp[i][2];

        gemm_case(&G, r, n, k, k, n, 0, 0, &seed);
        gemm_case(&G, r, n, k, k, n, 1, 0, &seed);
        /* leading dimensions past the row */
        gemm_case(&G, r, n, k, k + 8, n + 8, i % 2, 0, &seed);
    }
    /* a 2-byte aligned x: the cublasGemmEx path */
    gemm_case(&G, 7, 33, 64, 64, 33, 0, 1, &seed);
    gemm_case(&G, 33, 4097, 7, 7, 4097, 1, 1, &seed);
    gemm_close(&G);
}

/* rows 3 and 4 share an algorithm (dw_cu_gemm_rows_key), so the 3-row
   result is the first 3 rows of the 4-row one, bit for bit */
static void
test_gemm_rows_key(void **state)
{
    gemm_fix_t  G;
    uint64_t    seed = 7;
    uint32_t    n = 4097, k = 200;
    uint16_t   *xb, *wb;
    float      *xf, *wf, *y3, *y4;
    void       *dx, *dw, *dy;

    if (!have_dev) {
        skip();
    }
    xb = malloc((size_t) 4 * k * 2);
    wb = malloc((size_t) n * k * 2);
    xf = malloc((size_t) 4 * k * 4);
    wf = malloc((size_t) n * k * 4);
    y3 = malloc((size_t) 4 * n * 4);
    y4 = malloc((size_t) 4 * n * 4);
    assert_true(xb && wb && xf && wf && y3 && y4);
    assert_int_equal(dw_cu_gemm_rows_key(3), 4);
    assert_int_equal(dw_cu_gemm_rows_key(33), 64);
    assert_int_equal(dw_cu_gemm_rows_key(257), 512);
    gemm_open(&G);
    rand_bf16(xb, xf, (size_t) 4 * k, &seed);
    rand_bf16(wb, wf, (size_t) n * k, &seed);
    CU(cudaMalloc(&dx, (size_t) 4 * k * 2));
    CU(cudaMalloc(&dw, (size_t) n * k * 2));
    CU(cudaMalloc(&dy, (size_t) 4 * n * 4));
    CU(cudaMemcpy(dx, xb, (size_t) 4 * k * 2, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(dw, wb, (size_t) n * k * 2, cudaMemcpyHostToDevice));
    assert_int_equal(dw_cu_gemm(G.g, G.st, CUDA_R_16BF, dx, k, dw, n, k, 4, dy, n, 1), 0);
    CU(cudaStreamSynchronize(G.st));
    CU(cudaMemcpy(y4, dy, (size_t) 4 * n * 4, cudaMemcpyDeviceToHost));
    CU(cudaMemset(dy, 0, (size_t) 4 * n * 4));
    assert_int_equal(dw_cu_gemm(G.g, G.st, CUDA_R_16BF, dx, k, dw, n, k, 3, dy, n, 1), 0);
    CU(cudaStreamSynchronize(G.st));
    CU(cudaMemcpy(y3, dy, (size_t) 4 * n * 4, cudaMemcpyDeviceToHost));
    assert_memory_equal(y3, y4, (size_t) 3 * n * 4);
    CU(cudaFree(dx));
    CU(cudaFree(dw));
    CU(cudaFree(dy));
    gemm_close(&G);
    free(xb);
    free(wb);
    free(xf);
    free(wf);
    free(y3);
    free(y4);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_gemm_shapes),
        cmocka_unit_test(test_gemm_rows_key),
        cmocka_unit_test_setup_teardown(test_graph_vs_eager, setup,
                                        teardown),
    };

    have_dev = dw_backend_cuda_devices(no_dev, sizeof(no_dev)) > 0;
    if (!have_dev) {
        printf("test_cuda_graph: %s: every test skipped\n", no_dev);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
