/*
 * dynamo-worker: RMSNorm kernels (one block per row), alone, fused with
 * the residual add, and over selected rows (the final norm of the logits
 * rows). The sum of squares is F32 per thread, then a tree across the
 * block (the cpu kernel sums in double: differences stay far below BF16
 * rounding of the output).
 */
#include "dw_cu_int.cuh"

#define NORM_THREADS  256

static __device__ __forceinline__ void
norm_row(dw_bf16_t *y, const float *x, const float *g, uint32_t n, float eps,
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

static __global__ void
rmsnorm_k(dw_bf16_t *y, size_t ldy, const float *x, const float *g,
    uint32_t n, float eps)
{
    __shared__ float  sh[32];

    norm_row(y + blockIdx.x * ldy, x + (size_t) blockIdx.x * n, g, n, eps,
             sh);
}

static __global__ void
add_rmsnorm_k(dw_bf16_t *y, size_t ldy, float *x, const dw_bf16_t *d,
    size_t ldd, const float *bias, const float *g, uint32_t n, float eps)
{
    __shared__ float  sh[32];
    float            *xr = x + (size_t) blockIdx.x * n;
    const dw_bf16_t  *dr = d + blockIdx.x * ldd;

    /* each thread adds and then reads back only its own elements */
    for (uint32_t i = threadIdx.x; i < n; i += blockDim.x) {
        float  v = xr[i] + dw_ld(dr + i);

        xr[i] = bias != NULL ? v + bias[i] : v;
    }
    norm_row(y + blockIdx.x * ldy, xr, g, n, eps, sh);
}

static __global__ void
rmsnorm_rows_k(dw_bf16_t *y, size_t ldy, const float *x,
    const uint32_t *rows_idx, const float *g, uint32_t n, float eps)
{
    __shared__ float  sh[32];

    norm_row(y + blockIdx.x * ldy, x + (size_t) rows_idx[blockIdx.x] * n, g,
             n, eps, sh);
}

extern "C" cudaError_t
dw_cu_rmsnorm(dw_bf16_t *y, size_t ldy, const float *x, const float *g,
    uint32_t rows, uint32_t n, float eps, cudaStream_t st)
{
    if (rows == 0) {
        return cudaSuccess;
    }
    if (n == 0 || ldy < n) {
        return cudaErrorInvalidValue;
    }
    rmsnorm_k<<<rows, NORM_THREADS, 0, st>>>(y, ldy, x, g, n, eps);
    return cudaGetLastError();
}

extern "C" cudaError_t
dw_cu_add_rmsnorm(dw_bf16_t *y, size_t ldy, float *x, const dw_bf16_t *d,
    size_t ldd, const float *bias, const float *g, uint32_t rows, uint32_t n,
    float eps, cudaStream_t st)
{
    if (rows == 0) {
        return cudaSuccess;
    }
    if (n == 0 || ldy < n || ldd < n) {
        return cudaErrorInvalidValue;
    }
    add_rmsnorm_k<<<rows, NORM_THREADS, 0, st>>>(y, ldy, x, d, ldd, bias, g,
                                                 n, eps);
    return cudaGetLastError();
}

extern "C" cudaError_t
dw_cu_rmsnorm_rows(dw_bf16_t *y, size_t ldy, const float *x,
    const uint32_t *rows_idx, const float *g, uint32_t n_rows, uint32_t n,
    float eps, cudaStream_t st)
{
    if (n_rows == 0) {
        return cudaSuccess;
    }
    if (n == 0 || ldy < n) {
        return cudaErrorInvalidValue;
    }
    rmsnorm_rows_k<<<n_rows, NORM_THREADS, 0, st>>>(y, ldy, x, rows_idx, g, n,
                                                    eps);
    return cudaGetLastError();
}
