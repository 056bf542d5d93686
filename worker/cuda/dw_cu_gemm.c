/*
 * dynamo-worker: the cuda backend's GEMM, y = x . W^T with inputs of the
 * storage type (BF16, F16 or F32), F32 accumulation (no TF32), output of
 * the storage type or F32, through cuBLASLt.
 *
 * The algorithm comes from cublasLtMatmulAlgoGetHeuristic once per shape
 * and is cached (rows, n, k, leading dimensions, types). The rows
 * of the key are rounded up (to a power of two up to 256, then to a
 * multiple of 256) and the heuristic is asked for that many rows, so a
 * decode step of 3 rows runs the algorithm of the graph bucket of 4 it
 * would be padded to: eager and graph steps give the same bits, and
 * ragged prefill chunks do not fill the cache. When Lt offers no
 * algorithm (or refuses the cached one at run time) the shape falls back
 * to cublasGemmEx, said once in the log.
 *
 * Graph-capturable: nothing is allocated per call (layouts live on the
 * stack, the 32 MiB workspace is allocated at create and also given to
 * cuBLAS with cublasSetWorkspace, so cublasGemmEx does not allocate
 * either). The heuristic query is host-only; the graph cache runs a
 * bucket's step eagerly before capturing it, so the query is not made
 * under capture anyway.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublasLt.h>

#include "dw_backend_cuda_int.h"

#define GEMM_WS      ((size_t) 32 << 20)
#define GEMM_CACHE   512
#define GEMM_ALIGN   16          /* bytes; less aligned pointers: GemmEx */

typedef struct {
    uint32_t              rows_key, n, k, y_f32;
    cudaDataType_t        t;
    uint64_t              ldx, ldy;
    int                   lt;          /* 0: cublasGemmEx */
    cublasLtMatmulAlgo_t  algo;
} gemm_algo_t;

struct dw_cu_gemm_s {
    cublasHandle_t              blas;
    cublasLtHandle_t            lt;
    cublasLtMatmulDesc_t        desc;
    cublasLtMatmulPreference_t  pref;
    void                       *ws;
    gemm_algo_t                 cache[GEMM_CACHE];
    uint32_t                    n_cache;
    int                         said_fallback, said_full;
};

int
dw_cu_gemm_create(dw_cu_gemm_t **out, cublasHandle_t blas, char *err,
    size_t errlen)
{
    dw_cu_gemm_t       *g;
    cublasOperation_t   ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    uint64_t            wsb = GEMM_WS;
    uint32_t            al = GEMM_ALIGN;
    const char         *what = NULL;

    *out = NULL;
    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        snprintf(err, errlen, "cuda backend: out of memory");
        return -1;
    }
    g->blas = blas;
    if (cudaMalloc(&g->ws, GEMM_WS) != cudaSuccess) {
        g->ws = NULL;
        what = "GEMM workspace: cudaMalloc";
    } else if (cublasSetWorkspace(blas, g->ws, GEMM_WS)
               != CUBLAS_STATUS_SUCCESS)
    {
        what = "cublasSetWorkspace";
    } else if (cublasLtCreate(&g->lt) != CUBLAS_STATUS_SUCCESS) {
        g->lt = NULL;
        what = "cublasLtCreate";
    } else if (cublasLtMatmulDescCreate(&g->desc, CUBLAS_COMPUTE_32F,
                                        CUDA_R_32F) != CUBLAS_STATUS_SUCCESS)
    {
        g->desc = NULL;
        what = "cublasLtMatmulDescCreate";
    } else if (cublasLtMatmulDescSetAttribute(g->desc,
                   CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta))
               || cublasLtMatmulDescSetAttribute(g->desc,
                   CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)))
    {
        what = "cublasLtMatmulDescSetAttribute";
    } else if (cublasLtMatmulPreferenceCreate(&g->pref)
               != CUBLAS_STATUS_SUCCESS)
    {
        g->pref = NULL;
        what = "cublasLtMatmulPreferenceCreate";
    } else if (cublasLtMatmulPreferenceSetAttribute(g->pref,
                   CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof(wsb))
               || cublasLtMatmulPreferenceSetAttribute(g->pref,
                   CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al, sizeof(al))
               || cublasLtMatmulPreferenceSetAttribute(g->pref,
                   CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al, sizeof(al))
               || cublasLtMatmulPreferenceSetAttribute(g->pref,
                   CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al, sizeof(al))
               || cublasLtMatmulPreferenceSetAttribute(g->pref,
                   CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al,
                   sizeof(al)))
    {
        what = "cublasLtMatmulPreferenceSetAttribute";
    }
    if (what != NULL) {
        snprintf(err, errlen, "cuda backend: %s failed", what);
        dw_cu_gemm_destroy(g);
        return -1;
    }
    *out = g;
    return 0;
}

void
dw_cu_gemm_destroy(dw_cu_gemm_t *g)
{
    if (g == NULL) {
        return;
    }
    if (g->pref != NULL) {
        cublasLtMatmulPreferenceDestroy(g->pref);
    }
    if (g->desc != NULL) {
        cublasLtMatmulDescDestroy(g->desc);
    }
    if (g->lt != NULL) {
        cublasLtDestroy(g->lt);
    }
    /* the caller destroys the cuBLAS handle (which still points at ws)
       after this, and enqueues nothing in between */
    cudaFree(g->ws);
    free(g);
}

uint32_t
dw_cu_gemm_rows_key(uint32_t rows)
{
    uint32_t  b = 1;

    if (rows > 256) {
        return rows > 0xffffff00u ? rows : (rows + 255) / 256 * 256;
    }
    while (b < rows) {
        b <<= 1;
    }
    return b;
}

/* column-major view: Y^T (n x rows, ldy) = W (k x n, ld k)^T . X^T (k x
   rows, ldx); layouts for `rows` columns of X^T and Y^T */
static int
layouts(cublasLtMatrixLayoutOpaque_t *a, cublasLtMatrixLayoutOpaque_t *b,
    cublasLtMatrixLayoutOpaque_t *d, uint32_t n, uint32_t k, uint32_t rows,
    size_t ldx, size_t ldy, cudaDataType_t t, int y_f32)
{
    return cublasLtMatrixLayoutInit(a, t, k, n, (int64_t) k)
           || cublasLtMatrixLayoutInit(b, t, k, rows, (int64_t) ldx)
           || cublasLtMatrixLayoutInit(d, y_f32 ? CUDA_R_32F : t, n, rows,
                                       (int64_t) ldy);
}

/* the cached entry of a shape, asking the heuristic on a miss; NULL
   when the cache is full and the heuristic found nothing */
static gemm_algo_t *
algo_for(dw_cu_gemm_t *g, gemm_algo_t *tmp, uint32_t n, uint32_t k,
    uint32_t rows, size_t ldx, size_t ldy, cudaDataType_t t, int y_f32)
{
    cublasLtMatrixLayoutOpaque_t     a, b, d;
    cublasLtMatmulHeuristicResult_t  r;
    uint32_t                         i, key = dw_cu_gemm_rows_key(rows);
    gemm_algo_t                     *e;
    int                              found = 0;

    for (i = 0; i < g->n_cache; i++) {
        e = &g->cache[i];
        if (e->rows_key == key && e->n == n && e->k == k && e->ldx == ldx
            && e->ldy == ldy && e->y_f32 == (uint32_t) y_f32 && e->t == t)
        {
            return e;
        }
    }
    if (g->n_cache < GEMM_CACHE) {
        e = &g->cache[g->n_cache++];
    } else {
        if (!g->said_full) {
            fprintf(stderr, "dw cuda: GEMM algorithm cache full (%d "
                    "shapes); asking the heuristic each time for more\n",
                    GEMM_CACHE);
            g->said_full = 1;
        }
        e = tmp;
    }
    memset(e, 0, sizeof(*e));
    e->rows_key = key;
    e->n = n;
    e->k = k;
    e->ldx = ldx;
    e->ldy = ldy;
    e->y_f32 = (uint32_t) y_f32;
    e->t = t;
    /* the key's rows need ld >= k and >= n as the real ones do */
    memset(&r, 0, sizeof(r));
    if (layouts(&a, &b, &d, n, k, key, ldx, ldy, t, y_f32) == 0
        && cublasLtMatmulAlgoGetHeuristic(g->lt, g->desc, &a, &b, &d, &d,
                                          g->pref, 1, &r, &found)
           == CUBLAS_STATUS_SUCCESS
        && found > 0 && r.state == CUBLAS_STATUS_SUCCESS
        && r.workspaceSize <= GEMM_WS)
    {
        e->lt = 1;
        e->algo = r.algo;
    }
    return e;
}

static void
say_fallback(dw_cu_gemm_t *g, const char *why, uint32_t rows, uint32_t n,
    uint32_t k)
{
    if (!g->said_fallback) {
        fprintf(stderr, "dw cuda: cuBLASLt %s for a %u x %u x %u GEMM; "
                "cublasGemmEx for it (and any other such shape, not said "
                "again)\n", why, rows, n, k);
        g->said_fallback = 1;
    }
}

int
dw_cu_gemm(dw_cu_gemm_t *g, cudaStream_t st, cudaDataType_t t, const void *x,
    size_t ldx, const void *w, uint32_t n, uint32_t k, uint32_t rows, void *y,
    size_t ldy, int y_f32)
{
    const float                   one = 1, zero = 0;
    cublasLtMatrixLayoutOpaque_t  a, b, d;
    gemm_algo_t                   tmp, *e = NULL;
    cublasStatus_t                s;

    if (rows == 0) {
        return 0;
    }
    if (n == 0 || k == 0 || ldx < k || ldy < n) {
        fprintf(stderr, "dw cuda: GEMM %u x %u x %u (ldx %zu, ldy %zu): bad "
                "shape\n", rows, n, k, ldx, ldy);
        return -1;
    }
    if (((uintptr_t) x | (uintptr_t) w | (uintptr_t) y) % GEMM_ALIGN == 0) {
        e = algo_for(g, &tmp, n, k, rows, ldx, ldy, t, y_f32);
        if (!e->lt) {
            say_fallback(g, "has no algorithm", rows, n, k);
        }
    }
    if (e != NULL && e->lt) {
        s = CUBLAS_STATUS_INVALID_VALUE;
        if (layouts(&a, &b, &d, n, k, rows, ldx, ldy, t, y_f32) == 0) {
            s = cublasLtMatmul(g->lt, g->desc, &one, w, &a, x, &b, &zero, y,
                               &d, y, &d, &e->algo, g->ws, GEMM_WS, st);
        }
        if (s == CUBLAS_STATUS_SUCCESS) {
            return 0;
        }
        if (s != CUBLAS_STATUS_NOT_SUPPORTED
            && s != CUBLAS_STATUS_INVALID_VALUE)
        {
            fprintf(stderr, "dw cuda: cublasLtMatmul (%u x %u x %u): %s\n",
                    rows, n, k, cublasGetStatusString(s));
            return -1;
        }
        /* the cached algorithm (picked for the key's rows) refused this
           shape: GemmEx for the key from now on, eager and graph alike */
        say_fallback(g, "refused its algorithm", rows, n, k);
        e->lt = 0;
    }
    /* cuBLAS runs on the handle's stream; the backend sets it to st */
    s = cublasGemmEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int) n, (int) rows,
                     (int) k, &one, w, t, (int) k, x, t, (int) ldx, &zero, y,
                     y_f32 ? CUDA_R_32F : t,
                     (int) ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "dw cuda: cublasGemmEx (%u x %u x %u): %s\n", rows, n,
                k, cublasGetStatusString(s));
        return -1;
    }
    return 0;
}
