/*
 * dynamo-worker: RoPE of q and k, and the K/V write into the paged pool
 * (one block per row). The angle is (float) pos * inv_freq[i] and its
 * cosine and sine full-precision sincosf, as the cpu kernel computes
 * them, so both backends rotate by the same angles; llama3 scaling lives
 * in inv_freq (dw_kern_rope_freqs). Templates on the storage type T of
 * q, k, v and the pool (kv->dtype, dw_cu_int.cuh).
 */
#include "dw_cu_int.cuh"

#define ROPE_THREADS  128

template <typename T>
static __device__ __forceinline__ void
rope_head(T *h, uint32_t half, const float *cs)
{
    for (uint32_t i = threadIdx.x; i < half; i += blockDim.x) {
        float  c = cs[i], s = cs[half + i];
        float  x0 = dw_ld(h + i), x1 = dw_ld(h + half + i);

        dw_st(h + i, x0 * c - x1 * s);
        dw_st(h + half + i, x1 * c + x0 * s);
    }
}

template <typename T>
static __global__ void
rope_kv_k(T *q, T *k, const T *v, size_t ld,
    uint32_t n_heads, const uint32_t *pos, const uint32_t *slot,
    const float *inv_freq, dw_cu_kv_t kv, uint32_t layer)
{
    extern __shared__ float  cs[];          /* cos [half], sin [half] */
    size_t      r = blockIdx.x;
    uint32_t    hd = kv.head_dim, half = hd / 2, kvd = kv.n_kv_heads * hd;
    uint32_t    p = pos[r], sl = slot[r];
    T          *qr = q + r * ld, *kr = k + r * ld;
    const T    *vr = v + r * ld;
    T          *K, *V;

    for (uint32_t i = threadIdx.x; i < half; i += blockDim.x) {
        float  s, c;

        sincosf((float) p * inv_freq[i], &s, &c);
        cs[i] = c;
        cs[half + i] = s;
    }
    __syncthreads();
    for (uint32_t h = 0; h < n_heads; h++) {
        rope_head(qr + (size_t) h * hd, half, cs);
    }
    for (uint32_t h = 0; h < kv.n_kv_heads; h++) {
        rope_head(kr + (size_t) h * hd, half, cs);
    }
    __syncthreads();                  /* k rows roped by other threads */
    K = (T *) kv.base + dw_kv_off(kv, sl / kv.block_size, layer, 0,
                                  sl % kv.block_size);
    V = (T *) kv.base + dw_kv_off(kv, sl / kv.block_size, layer, 1,
                                  sl % kv.block_size);
    for (uint32_t j = threadIdx.x; j < kvd; j += blockDim.x) {
        K[j] = kr[j];
        V[j] = vr[j];
    }
}

template <typename T>
static cudaError_t
rope_go(void *q, void *k, const void *v, size_t ld, uint32_t rows,
    uint32_t n_heads, const uint32_t *pos, const uint32_t *slot,
    const float *inv_freq, const dw_cu_kv_t *kv, uint32_t layer,
    cudaStream_t st)
{
    rope_kv_k<T><<<rows, ROPE_THREADS, kv->head_dim * sizeof(float), st>>>(
        (T *) q, (T *) k, (const T *) v, ld, n_heads, pos, slot, inv_freq,
        *kv, layer);
    return cudaGetLastError();
}

extern "C" cudaError_t
dw_cu_rope_kv(void *q, void *k, const void *v, size_t ld,
    uint32_t rows, uint32_t n_heads, const uint32_t *pos,
    const uint32_t *slot, const float *inv_freq, const dw_cu_kv_t *kv,
    uint32_t layer, cudaStream_t st)
{
    uint32_t  hd = kv->head_dim;

    if (!dw_cu_dtype_ok(kv->dtype)) {
        return cudaErrorInvalidValue;
    }
    if (rows == 0) {
        return cudaSuccess;
    }
    if (hd < 2 || hd % 2 != 0 || hd > DW_CU_MAX_HEAD_DIM
        || layer >= kv->n_layers || kv->block_size == 0)
    {
        return cudaErrorInvalidValue;
    }
    return DW_CU_BY_DTYPE(kv->dtype, rope_go, q, k, v, ld, rows, n_heads, pos,
                          slot, inv_freq, kv, layer, st);
}
