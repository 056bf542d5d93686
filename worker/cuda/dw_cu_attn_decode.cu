/*
 * dynamo-worker: paged attention for decode (one query row a sequence).
 *
 * Grid (sequence, kv head, split): a block takes the g = n_heads /
 * n_kv_heads query heads that share one KV head (each K/V row is read
 * once for all of them) over one split of DW_CU_DECODE_SPLIT keys:
 *   1. warps take keys in turn: scores of the g heads (K row read once,
 *      lanes over head_dim), into shared memory;
 *   2. a warp per head: max and sum of exp over the split's scores;
 *   3. threads over (head, dim): sum of p_t * V_t, divided by the sum.
 * Each split leaves (max, sum, out) in the workspace; the merge kernel
 * combines the splits of a (sequence, head) with the usual rescaling.
 * Arithmetic F32; q, out and the pool of the storage type T (kv->dtype,
 * dw_cu_int.cuh).
 */
#include <math.h>

#include "dw_cu_int.cuh"

#define DEC_THREADS  128

static __host__ __device__ __forceinline__ size_t
ws_rec(uint32_t head_dim)
{
    return (size_t) head_dim + 2;            /* max, sum, out[head_dim] */
}

template <typename T>
static __global__ void
decode_k(const T *q, size_t ldq, dw_cu_kv_t kv, uint32_t layer,
    uint32_t n_heads, const uint32_t *tables, uint32_t max_blocks,
    const uint32_t *ctx_len, uint32_t n_splits, float scale, float *ws)
{
    extern __shared__ float  smem[];
    uint32_t   s = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
    uint32_t   hd = kv.head_dim, g = n_heads / kv.n_kv_heads;
    uint32_t   ctx = ctx_len[s], t0 = split * DW_CU_DECODE_SPLIT, t1, n;
    uint32_t   lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    uint32_t   nw = blockDim.x >> 5, bs = kv.block_size;
    float     *qs = smem;                             /* [g][hd] */
    float     *sc = qs + g * hd;                      /* [g][SPLIT] */
    float     *ml = sc + g * DW_CU_DECODE_SPLIT;      /* [g][2] */
    const uint32_t *table = tables + (size_t) s * max_blocks;
    float     *rec;

    if (t0 >= ctx) {
        /* an empty split: the merge skips it */
        for (uint32_t j = threadIdx.x; j < g; j += blockDim.x) {
            rec = ws + (((size_t) s * n_heads + kvh * g + j) * n_splits
                        + split) * ws_rec(hd);
            rec[0] = -INFINITY;
            rec[1] = 0;
        }
        return;
    }
    t1 = ctx - t0 < DW_CU_DECODE_SPLIT ? ctx : t0 + DW_CU_DECODE_SPLIT;
    n = t1 - t0;

    for (uint32_t i = threadIdx.x; i < g * hd; i += blockDim.x) {
        qs[i] = dw_ld(q + s * ldq + (size_t) kvh * g * hd + i);
    }
    __syncthreads();

    /* 1. scores */
    for (uint32_t t = t0 + w; t < t1; t += nw) {
        const T  *K = (const T *) kv.base
                      + dw_kv_off(kv, table[t / bs], layer, 0, t % bs)
                      + (size_t) kvh * hd;
        float             acc[DW_CU_MAX_GROUP];

#pragma unroll
        for (uint32_t j = 0; j < DW_CU_MAX_GROUP; j++) {
            acc[j] = 0;
        }
        for (uint32_t d = lane; d < hd; d += 32) {
            float  kd = dw_ld(K + d);

#pragma unroll
            for (uint32_t j = 0; j < DW_CU_MAX_GROUP; j++) {
                if (j < g) {
                    acc[j] += qs[j * hd + d] * kd;
                }
            }
        }
#pragma unroll
        for (uint32_t j = 0; j < DW_CU_MAX_GROUP; j++) {
            if (j < g) {
                float  v = dw_warp_sum(acc[j]);

                if (lane == 0) {
                    sc[j * DW_CU_DECODE_SPLIT + (t - t0)] = v * scale;
                }
            }
        }
    }
    __syncthreads();

    /* 2. softmax over the split, a warp per head */
    for (uint32_t j = w; j < g; j += nw) {
        float  *sj = sc + j * DW_CU_DECODE_SPLIT, mx = -INFINITY, sum = 0;

        for (uint32_t t = lane; t < n; t += 32) {
            mx = fmaxf(mx, sj[t]);
        }
        mx = dw_warp_max(mx);
        for (uint32_t t = lane; t < n; t += 32) {
            float  p = expf(sj[t] - mx);

            sj[t] = p;
            sum += p;
        }
        sum = dw_warp_sum(sum);
        if (lane == 0) {
            ml[2 * j] = mx;
            ml[2 * j + 1] = sum;
        }
    }
    __syncthreads();

    /* 3. out = sum p_t V_t / sum, threads over (head, dim) */
    for (uint32_t i = threadIdx.x; i < g * hd; i += blockDim.x) {
        uint32_t      j = i / hd, d = i % hd;
        const float  *pj = sc + j * DW_CU_DECODE_SPLIT;
        float         acc = 0;

        for (uint32_t t = t0; t < t1; t++) {
            const T  *V = (const T *) kv.base
                          + dw_kv_off(kv, table[t / bs], layer, 1, t % bs);

            acc += pj[t - t0] * dw_ld(V + (size_t) kvh * hd + d);
        }
        rec = ws + (((size_t) s * n_heads + kvh * g + j) * n_splits + split)
                   * ws_rec(hd);
        rec[2 + d] = acc / ml[2 * j + 1];
        if (d == 0) {
            rec[0] = ml[2 * j];
            rec[1] = ml[2 * j + 1];
        }
    }
}

/* Grid (sequence, head), threads over head_dim. */
template <typename T>
static __global__ void
merge_k(T *out, size_t ldo, uint32_t n_heads, uint32_t hd,
    uint32_t n_splits, const float *ws)
{
    uint32_t      s = blockIdx.x, h = blockIdx.y;
    const float  *r0 = ws + ((size_t) s * n_heads + h) * n_splits
                            * ws_rec(hd);
    float         mx = -INFINITY, den = 0;

    for (uint32_t k = 0; k < n_splits; k++) {
        mx = fmaxf(mx, r0[k * ws_rec(hd)]);
    }
    for (uint32_t k = 0; k < n_splits; k++) {
        const float  *r = r0 + k * ws_rec(hd);

        if (r[1] > 0) {
            den += expf(r[0] - mx) * r[1];
        }
    }
    for (uint32_t d = threadIdx.x; d < hd; d += blockDim.x) {
        float  num = 0;

        for (uint32_t k = 0; k < n_splits; k++) {
            const float  *r = r0 + k * ws_rec(hd);

            if (r[1] > 0) {
                num += expf(r[0] - mx) * r[1] * r[2 + d];
            }
        }
        /* no keys at all (ctx_len 0): zeros, not NaN */
        dw_st(out + s * ldo + (size_t) h * hd + d, den > 0 ? num / den : 0);
    }
}

static uint32_t
n_splits_for(uint32_t max_ctx)
{
    return max_ctx == 0 ? 1 : dw_cdiv(max_ctx, DW_CU_DECODE_SPLIT);
}

extern "C" size_t
dw_cu_attn_decode_ws(uint32_t n_seqs, uint32_t n_heads, uint32_t head_dim,
    uint32_t max_ctx)
{
    return (size_t) n_seqs * n_heads * n_splits_for(max_ctx)
           * ws_rec(head_dim) * sizeof(float);
}

template <typename T>
static cudaError_t
decode_go(void *out, size_t ldo, const void *q, size_t ldq,
    const dw_cu_kv_t *kv, uint32_t layer, uint32_t n_heads,
    const uint32_t *tables, uint32_t max_blocks, const uint32_t *ctx_len,
    uint32_t n_seqs, uint32_t splits, size_t smem, float scale, void *ws,
    cudaStream_t st)
{
    if (smem > 48 * 1024) {
        cudaError_t  e = cudaFuncSetAttribute(
            decode_k<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
            (int) smem);

        if (e != cudaSuccess) {
            return e;
        }
    }
    decode_k<T><<<dim3(n_seqs, kv->n_kv_heads, splits), DEC_THREADS, smem,
                  st>>>((const T *) q, ldq, *kv, layer, n_heads, tables,
                        max_blocks, ctx_len, splits, scale, (float *) ws);
    merge_k<T><<<dim3(n_seqs, n_heads), 128, 0, st>>>(
        (T *) out, ldo, n_heads, kv->head_dim, splits, (const float *) ws);
    return cudaGetLastError();
}

extern "C" cudaError_t
dw_cu_attn_decode(void *out, size_t ldo, const void *q, size_t ldq,
    const dw_cu_kv_t *kv, uint32_t layer, uint32_t n_heads,
    const uint32_t *tables, uint32_t max_blocks, const uint32_t *ctx_len,
    uint32_t n_seqs, uint32_t max_ctx, float scale, void *ws,
    cudaStream_t st)
{
    uint32_t  hd = kv->head_dim, g, splits;
    size_t    smem;

    if (!dw_cu_dtype_ok(kv->dtype)) {
        return cudaErrorInvalidValue;
    }
    if (n_seqs == 0) {
        return cudaSuccess;
    }
    if (kv->n_kv_heads == 0 || n_heads % kv->n_kv_heads != 0
        || hd == 0 || hd > DW_CU_MAX_HEAD_DIM || layer >= kv->n_layers
        || kv->block_size == 0 || kv->n_kv_heads > 65535 || ws == NULL)
    {
        return cudaErrorInvalidValue;
    }
    g = n_heads / kv->n_kv_heads;
    if (g > DW_CU_MAX_GROUP) {
        return cudaErrorInvalidValue;
    }
    splits = n_splits_for(max_ctx);
    if (splits > 65535) {
        return cudaErrorInvalidValue;
    }
    smem = ((size_t) g * hd + (size_t) g * DW_CU_DECODE_SPLIT + 2 * g)
           * sizeof(float);
    return DW_CU_BY_DTYPE(kv->dtype, decode_go, out, ldo, q, ldq, kv, layer,
                          n_heads, tables, max_blocks, ctx_len, n_seqs,
                          splits, smem, scale, ws, st);
}
