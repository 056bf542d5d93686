/*
 * dynamo-worker: RMSNorm kernels (one block per row), alone, fused with
 * the residual add, and over selected rows (the final norm of the logits
 * rows). The sum of squares is F32 per thread, then a tree across the
 * block (the cpu kernel sums in double: differences stay far below BF16
 * and F16 rounding of the output, and near F32's own). Templates on the
 * storage type T of y and d (dw_cu_int.cuh); x, g, bias are F32.
 */
#include "dw_cu_int.cuh"

#define NORM_THREADS  256

template <typename T>
static __device__ __forceinline__ void
norm_row(T *y, const float *x, const float *g, uint32_t n, float eps,
    float *sh)
{
    float  ss = 0, scale;

    for (uint32_t i = threadIdx.x; i < n; i += blockDim.x) {
        ss += x[i] * x[i];
    }
    ss = dw_block_sum(ss, sh);
    scale = rsqrtf(ss / (float) n + eps);
    for (uint32_t i = threadIdx.x; i < n; i += blockDim.x) {
        dw_st(y + i, (x[i] * scale) * g[i]);
    }
}

template <typename T>
static __global__ void
rmsnorm_k(T *y, size_t ldy, const float *x, const float *g, uint32_t n,
    float eps)
{
    __shared__ float  sh[32];

    norm_row(y + blockIdx.x * ldy, x + (size_t) blockIdx.x * n, g, n, eps,
             sh);
}

template <typename T>
static __global__ void
add_rmsnorm_k(T *y, size_t ldy, float *x, const T *d, size_t ldd,
    const float *bias, const float *g, uint32_t n, float eps)
{
    __shared__ float  sh[32];
    float            *xr = x + (size_t) blockIdx.x * n;
    const T          *dr = d + blockIdx.x * ldd;

    /* each thread adds and then reads back only its own elements */
    for (uint32_t i = threadIdx.x; i < n; i += blockDim.x) {
        float  v = xr[i] + dw_ld(dr + i);

        xr[i] = bias != NULL ? v + bias[i] : v;
    }
    norm_row(y + blockIdx.x * ldy, xr, g, n, eps, sh);
}

template <typename T>
static __global__ void
rmsnorm_rows_k(T *y, size_t ldy, const float *x, const uint32_t *rows_idx,
    const float *g, uint32_t n, float eps)
{
    __shared__ float  sh[32];

    norm_row(y + blockIdx.x * ldy, x + (size_t) rows_idx[blockIdx.x] * n, g,
             n, eps, sh);
}

template <typename T>
static cudaError_t
rmsnorm_go(void *y, size_t ldy, const float *x, const float *g,
    uint32_t rows, uint32_t n, float eps, cudaStream_t st)
{
    rmsnorm_k<T><<<rows, NORM_THREADS, 0, st>>>((T *) y, ldy, x, g, n, eps);
    return cudaGetLastError();
}

template <typename T>
static cudaError_t
add_rmsnorm_go(void *y, size_t ldy, float *x, const void *d, size_t ldd,
    const float *bias, const float *g, uint32_t rows, uint32_t n, float eps,
    cudaStream_t st)
{
    add_rmsnorm_k<T><<<rows, NORM_THREADS, 0, st>>>(
        (T *) y, ldy, x, (const T *) d, ldd, bias, g, n, eps);
    return cudaGetLastError();
}

template <typename T>
static cudaError_t
rmsnorm_rows_go(void *y, size_t ldy, const float *x,
    const uint32_t *rows_idx, const float *g, uint32_t n_rows, uint32_t n,
    float eps, cudaStream_t st)
{
    rmsnorm_rows_k<T><<<n_rows, NORM_THREADS, 0, st>>>(
        (T *) y, ldy, x, rows_idx, g, n, eps);
    return cudaGetLastError();
}

extern "C" cudaError_t
dw_cu_rmsnorm(void *y, size_t ldy, const float *x, const float *g,
    uint32_t rows, uint32_t n, float eps, dw_dtype_t dt, cudaStream_t st)
{
    if (!dw_cu_dtype_ok(dt)) {
        return cudaErrorInvalidValue;
    }
    if (rows == 0) {
        return cudaSuccess;
    }
    if (n == 0 || ldy < n) {
        return cudaErrorInvalidValue;
    }
    return DW_CU_BY_DTYPE(dt, rmsnorm_go, y, ldy, x, g, rows, n, eps, st);
}

extern "C" cudaError_t
dw_cu_add_rmsnorm(void *y, size_t ldy, float *x, const void *d, size_t ldd,
    const float *bias, const float *g, uint32_t rows, uint32_t n, float eps,
    dw_dtype_t dt, cudaStream_t st)
{
    if (!dw_cu_dtype_ok(dt)) {
        return cudaErrorInvalidValue;
    }
    if (rows == 0) {
        return cudaSuccess;
    }
    if (n == 0 || ldy < n || ldd < n) {
        return cudaErrorInvalidValue;
    }
    return DW_CU_BY_DTYPE(dt, add_rmsnorm_go, y, ldy, x, d, ldd, bias, g,
                          rows, n, eps, st);
}

extern "C" cudaError_t
dw_cu_rmsnorm_rows(void *y, size_t ldy, const float *x,
    const uint32_t *rows_idx, const float *g, uint32_t n_rows, uint32_t n,
    float eps, dw_dtype_t dt, cudaStream_t st)
{
    if (!dw_cu_dtype_ok(dt)) {
        return cudaErrorInvalidValue;
    }
    if (n_rows == 0) {
        return cudaSuccess;
    }
    if (n == 0 || ldy < n) {
        return cudaErrorInvalidValue;
    }
    return DW_CU_BY_DTYPE(dt, rmsnorm_rows_go, y, ldy, x, rows_idx, g,
                          n_rows, n, eps, st);
}
