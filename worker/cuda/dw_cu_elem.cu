/*
 * dynamo-worker: element-wise kernels: embedding gather, SwiGLU, the
 * residual add.
 */
#include "dw_cu_int.cuh"

static __global__ void
embed_k(float *x, const dw_bf16_t *E, const uint32_t *tokens, uint32_t n)
{
    const dw_bf16_t  *e = E + (size_t) tokens[blockIdx.x] * n;
    float            *y = x + (size_t) blockIdx.x * n;

    for (uint32_t i = threadIdx.x; i < n; i += blockDim.x) {
        y[i] = dw_ld(e + i);
    }
}

extern "C" cudaError_t
dw_cu_embed(float *x, const dw_bf16_t *E, const uint32_t *tokens,
    uint32_t rows, uint32_t n, cudaStream_t st)
{
    if (rows == 0 || n == 0) {
        return rows == 0 ? cudaSuccess : cudaErrorInvalidValue;
    }
    embed_k<<<rows, 256, 0, st>>>(x, E, tokens, n);
    return cudaGetLastError();
}

static __global__ void
swiglu_k(dw_bf16_t *y, size_t ldy, const dw_bf16_t *g, const dw_bf16_t *u,
    size_t ldg, uint32_t rows, uint32_t n)
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

extern "C" cudaError_t
dw_cu_swiglu(dw_bf16_t *y, size_t ldy, const dw_bf16_t *g,
    const dw_bf16_t *u, size_t ldg, uint32_t rows, uint32_t n,
    cudaStream_t st)
{
    dim3  grid;

    if (rows == 0) {
        return cudaSuccess;
    }
    if (n == 0) {
        return cudaErrorInvalidValue;
    }
    grid = dw_rows_grid(rows, n);
    swiglu_k<<<grid, 256, 0, st>>>(y, ldy, g, u, ldg, rows, n);
    return cudaGetLastError();
}

static __global__ void
residual_k(float *x, const dw_bf16_t *d, size_t ldd, const float *bias,
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

extern "C" cudaError_t
dw_cu_residual_add(float *x, const dw_bf16_t *d, size_t ldd,
    const float *bias, uint32_t rows, uint32_t n, cudaStream_t st)
{
    dim3  grid;

    if (rows == 0) {
        return cudaSuccess;
    }
    if (n == 0) {
        return cudaErrorInvalidValue;
    }
    grid = dw_rows_grid(rows, n);
    residual_k<<<grid, 256, 0, st>>>(x, d, ldd, bias, rows, n);
    return cudaGetLastError();
}
