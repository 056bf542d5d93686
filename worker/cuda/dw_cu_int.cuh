/*
 * dynamo-worker: device helpers shared by the kernels (internal).
 */
#ifndef DW_CU_INT_CUH
#define DW_CU_INT_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "dw_cuda.h"

/*
 * Storage types: every kernel is a template on T, the type of its
 * storage arrays (__nv_bfloat16, __half or float; dw_dtype_t on the C
 * side); dw_ld widens an element to F32, dw_st rounds an F32 to T (to
 * nearest even, as dw_f32_to_bf16 and dw_f32_to_f16). Arithmetic is F32
 * for every T.
 */
static __device__ __forceinline__ float
dw_ld(const __nv_bfloat16 *p)
{
    return __bfloat162float(*p);
}

static __device__ __forceinline__ float
dw_ld(const __half *p)
{
    return __half2float(*p);
}

static __device__ __forceinline__ float
dw_ld(const float *p)
{
    return *p;
}

static __device__ __forceinline__ void
dw_st(__nv_bfloat16 *p, float v)
{
    *p = __float2bfloat16_rn(v);
}

static __device__ __forceinline__ void
dw_st(__half *p, float v)
{
    *p = __float2half_rn(v);
}

static __device__ __forceinline__ void
dw_st(float *p, float v)
{
    *p = v;
}

/* 1 when dt is a storage type the kernels take */
static inline int
dw_cu_dtype_ok(dw_dtype_t dt)
{
    return dt == DW_DT_BF16 || dt == DW_DT_F16 || dt == DW_DT_F32;
}

/* fn<T>(...) for dt's storage type T; any other dt: cudaErrorInvalidValue
   (launchers check dw_cu_dtype_ok first, so this is a second guard) */
#define DW_CU_BY_DTYPE(dt, fn, ...)                                        \
    ((dt) == DW_DT_BF16 ? fn<__nv_bfloat16>(__VA_ARGS__)                  \
     : (dt) == DW_DT_F16 ? fn<__half>(__VA_ARGS__)                        \
     : (dt) == DW_DT_F32 ? fn<float>(__VA_ARGS__)                         \
     : cudaErrorInvalidValue)

static __device__ __forceinline__ float
dw_warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v;
}

static __device__ __forceinline__ float
dw_warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) {
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    }
    return v;
}

/* Sum over the block (blockDim.x a multiple of 32, <= 1024); every
   thread gets the total. sh: 32 floats of shared memory. */
static __device__ __forceinline__ float
dw_block_sum(float v, float *sh)
{
    int  lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    int  nw = (blockDim.x + 31) >> 5;

    v = dw_warp_sum(v);
    __syncthreads();                 /* sh may be in use from a last call */
    if (lane == 0) {
        sh[w] = v;
    }
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0f;
    return dw_warp_sum(v);
}

/* Element offset of (layer, s, position t's slot) in the pool. */
static __device__ __forceinline__ size_t
dw_kv_off(const dw_cu_kv_t kv, uint32_t block, uint32_t layer, uint32_t s,
    uint32_t slot_in_block)
{
    size_t  kvd = (size_t) kv.n_kv_heads * kv.head_dim;
    size_t  chunk = (size_t) kv.block_size * kvd;

    return (((size_t) block * kv.n_layers + layer) * 2 + s) * chunk
           + (size_t) slot_in_block * kvd;
}

static inline unsigned
dw_cdiv(size_t a, size_t b)
{
    return (unsigned) ((a + b - 1) / b);
}

/* A grid for a grid-stride loop over rows x n elements (256 threads). */
static inline dim3
dw_rows_grid(uint32_t rows, uint32_t n)
{
    return dim3(dw_cdiv(n, 256) < 64 ? dw_cdiv(n, 256) : 64,
                rows < 65535 ? rows : 65535);
}

#endif
