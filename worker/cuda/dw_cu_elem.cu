/*
 * dynamo-worker: element-wise kernels: embedding gather, SwiGLU, the
 * residual add. Templates on the storage type T (dw_cu_int.cuh).
 */
#include "dw_cu_int.cuh"

template <typename T>
static __global__ void
embed_k(float *x, const T *E, const uint32_t *tokens, uint32_t n)
{
    const T  *e = E + (size_t) tokens[blockIdx.x] * n;
    float    *y = x + (size_t) blockIdx.x * n;

    for (uint32_t i = threadIdx.x; i < n; i += blockDim.x) {
        y[i] = dw_ld(e + i);
    }
}

template <typename T>
static cudaError_t
embed_go(float *x, const void *E, const uint32_t *tokens, uint32_t rows,
    uint32_t n, cudaStream_t st)
{
    embed_k<T><<<rows, 256, 0, st>>>(x, (const T *) E, tokens, n);
    return cudaGetLastError();
}

extern "C" cudaError_t
dw_cu_embed(float *x, const void *E, const uint32_t *tokens, uint32_t rows,
    uint32_t n, dw_dtype_t dt, cudaStream_t st)
{
    if (!dw_cu_dtype_ok(dt)) {
        return cudaErrorInvalidValue;
    }
    if (rows == 0 || n == 0) {
        return rows == 0 ? cudaSuccess : cudaErrorInvalidValue;
    }
    return DW_CU_BY_DTYPE(dt, embed_go, x, E, tokens, rows, n, st);
}

template <typename T>
static __global__ void
swiglu_k(T *y, size_t ldy, const T *g, const T *u, size_t ldg, uint32_t rows,
    uint32_t n)
{
    float  a, b;

    for (size_t r = blockIdx.y; r < rows; r += gridDim.y) {
        for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
             i += gridDim.x * blockDim.x)
        {
            a = dw_ld(g + r * ldg + i);
            b = dw_ld(u + r * ldg + i);
            /* expf, not __expf: within an ulp or two of the cpu kernel */
            dw_st(y + r * ldy + i, a / (1.0f + expf(-a)) * b);
        }
    }
}

template <typename T>
static cudaError_t
swiglu_go(void *y, size_t ldy, const void *g, const void *u, size_t ldg,
    uint32_t rows, uint32_t n, cudaStream_t st)
{
    swiglu_k<T><<<dw_rows_grid(rows, n), 256, 0, st>>>(
        (T *) y, ldy, (const T *) g, (const T *) u, ldg, rows, n);
    return cudaGetLastError();
}

extern "C" cudaError_t
dw_cu_swiglu(void *y, size_t ldy, const void *g, const void *u, size_t ldg,
    uint32_t rows, uint32_t n, dw_dtype_t dt, cudaStream_t st)
{
    if (!dw_cu_dtype_ok(dt)) {
        return cudaErrorInvalidValue;
    }
    if (rows == 0) {
        return cudaSuccess;
    }
    if (n == 0) {
        return cudaErrorInvalidValue;
    }
    return DW_CU_BY_DTYPE(dt, swiglu_go, y, ldy, g, u, ldg, rows, n, st);
}

template <typename T>
static __global__ void
residual_k(float *x, const T *d, size_t ldd, const float *bias,
    uint32_t rows, uint32_t n)
{
    for (size_t r = blockIdx.y; r < rows; r += gridDim.y) {
        for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
             i += gridDim.x * blockDim.x)
        {
            float  v = x[r * n + i] + dw_ld(d + r * ldd + i);

            x[r * n + i] = bias != NULL ? v + bias[i] : v;
        }
    }
}

template <typename T>
static cudaError_t
residual_go(float *x, const void *d, size_t ldd, const float *bias,
    uint32_t rows, uint32_t n, cudaStream_t st)
{
    residual_k<T><<<dw_rows_grid(rows, n), 256, 0, st>>>(
        x, (const T *) d, ldd, bias, rows, n);
    return cudaGetLastError();
}

extern "C" cudaError_t
dw_cu_residual_add(float *x, const void *d, size_t ldd, const float *bias,
    uint32_t rows, uint32_t n, dw_dtype_t dt, cudaStream_t st)
{
    if (!dw_cu_dtype_ok(dt)) {
        return cudaErrorInvalidValue;
    }
    if (rows == 0) {
        return cudaSuccess;
    }
    if (n == 0) {
        return cudaErrorInvalidValue;
    }
    return DW_CU_BY_DTYPE(dt, residual_go, x, d, ldd, bias, rows, n, st);
}
