/*
 * dynamo-worker: device helpers shared by the kernels (internal).
 */
#ifndef DW_CU_INT_CUH
#define DW_CU_INT_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "dw_cuda.h"

static __device__ __forceinline__ float
dw_ld(const dw_bf16_t *p)
{
    return __bfloat162float(*(const __nv_bfloat16 *) p);
}

static __device__ __forceinline__ void
dw_st(dw_bf16_t *p, float v)
{
    /* round to nearest even, as dw_f32_to_bf16 */
    *(__nv_bfloat16 *) p = __float2bfloat16_rn(v);
}

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
