/*
 * dynamo-worker: attention over prompt chunks (prefill), flash-attention
 * style: grid (query tile of BM rows, head, sequence); the block walks
 * the keys 0..(last position of its tile) in tiles of BN, staging each
 * K/V tile from the paged pool in shared memory (storage type T of the
 * pool, kv->dtype: q and out are T too, dw_cu_int.cuh), and keeps per
 * row a running max, sum and output (online softmax), so scores never
 * reach global memory. Four threads per query row, each with a quarter
 * of head_dim (dims qd, qd + 4, ...) in registers; scores are summed
 * across the four by shuffles. Causal by position: a row at position p
 * takes keys t <= p, which covers cached prefixes and earlier chunks.
 * GQA: head h reads KV head h / (n_heads / n_kv_heads).
 *
 * F32 arithmetic on CUDA cores: the reference kernel, correct for every
 * shape; a tensor-core (mma) version is the performance step.
 */
#include <math.h>

#include "dw_cu_int.cuh"

#define BM  32
#define BN  32
#define PF_THREADS  (BM * 4)

template <typename T, int ND>
static __global__ void __launch_bounds__(PF_THREADS)
prefill_k(T *out, size_t ldo, const T *q, size_t ldq,
    dw_cu_kv_t kv, uint32_t layer, uint32_t n_heads, const uint32_t *tables,
    uint32_t max_blocks, const uint32_t *q_start, const uint32_t *q_len,
    const uint32_t *pos0, float scale)
{
    /* K [BN][hd], V [BN][hd] of T; raw bytes, since every instantiation
       shares the one extern array */
    extern __shared__ __align__(16) unsigned char  kvs_raw[];
    __shared__ float   scs[BM][BN];                 /* a row's scores */
    uint32_t   h = blockIdx.y, s = blockIdx.z;
    uint32_t   hd = kv.head_dim, bs = kv.block_size;
    uint32_t   kvh = h / (n_heads / kv.n_kv_heads);
    uint32_t   ql = q_len[s], r0 = blockIdx.x * BM;
    uint32_t   row = threadIdx.x >> 2, qd = threadIdx.x & 3;
    uint32_t   r = r0 + row, p, n_keys;
    int        valid = r < ql;
    const uint32_t *table = tables + (size_t) s * max_blocks;
    T         *Ks = (T *) kvs_raw, *Vs = Ks + BN * hd;
    const T   *base = (const T *) kv.base;
    float     *sc = scs[threadIdx.x >> 2];
    float      qr[ND], acc[ND], m = -INFINITY, l = 0;

    if (r0 >= ql) {
        return;
    }
    p = pos0[s] + r;
    n_keys = pos0[s] + (ql - r0 < BM ? ql : r0 + BM);
#pragma unroll
    for (int i = 0; i < ND; i++) {
        uint32_t  d = qd + 4 * i;

        qr[i] = valid && d < hd
                ? dw_ld(q + (size_t) (q_start[s] + r) * ldq
                        + (size_t) h * hd + d) * scale
                : 0.0f;
        acc[i] = 0;
    }
    for (uint32_t kt = 0; kt < n_keys; kt += BN) {
        float  mt, corr;

        __syncthreads();                  /* the last tile is consumed */
        for (uint32_t i = threadIdx.x; i < BN * hd; i += PF_THREADS) {
            uint32_t   jj = i / hd, d = i % hd, t = kt + jj;

            if (t < n_keys) {
                size_t  o = dw_kv_off(kv, table[t / bs], layer, 0, t % bs)
                            + (size_t) kvh * hd + d;

                Ks[i] = base[o];
                /* V's chunk follows K's in the block */
                Vs[i] = base[o + (size_t) bs * kv.n_kv_heads * hd];
            } else {
                dw_st(Ks + i, 0.0f);
                dw_st(Vs + i, 0.0f);
            }
        }
        __syncthreads();

        /* scores of this row's BN keys, kept in shared memory (a
           register array would need the key loop unrolled: slow to
           compile, no faster) */
        mt = m;
#pragma unroll 2
        for (int jj = 0; jj < BN; jj++) {
            float  part = 0;

#pragma unroll
            for (int i = 0; i < ND; i++) {
                uint32_t  d = qd + 4 * i;

                if (d < hd) {
                    part += qr[i] * dw_ld(Ks + jj * hd + d);
                }
            }
            part += __shfl_xor_sync(0xffffffffu, part, 1);
            part += __shfl_xor_sync(0xffffffffu, part, 2);
            part = kt + jj <= p && kt + jj < n_keys ? part : -INFINITY;
            if (qd == 0) {
                sc[jj] = part;
            }
            mt = fmaxf(mt, part);
        }
        __syncwarp();
        if (mt == -INFINITY) {
            continue;                     /* nothing visible to this row */
        }
        corr = expf(m - mt);              /* m = -inf: 0 */
        l *= corr;
#pragma unroll
        for (int i = 0; i < ND; i++) {
            acc[i] *= corr;
        }
#pragma unroll 2
        for (int jj = 0; jj < BN; jj++) {
            float  pj = expf(sc[jj] - mt);

            l += pj;
#pragma unroll
            for (int i = 0; i < ND; i++) {
                uint32_t  d = qd + 4 * i;

                if (d < hd) {
                    acc[i] += pj * dw_ld(Vs + jj * hd + d);
                }
            }
        }
        m = mt;
    }
    if (!valid) {
        return;
    }
#pragma unroll
    for (int i = 0; i < ND; i++) {
        uint32_t  d = qd + 4 * i;

        if (d < hd) {
            dw_st(out + (size_t) (q_start[s] + r) * ldo + (size_t) h * hd + d,
                  acc[i] / l);
        }
    }
}

template <typename T, int ND>
static cudaError_t
prefill_launch(dim3 grid, cudaStream_t st, void *out, size_t ldo,
    const void *q, size_t ldq, const dw_cu_kv_t *kv, uint32_t layer,
    uint32_t n_heads, const uint32_t *tables, uint32_t max_blocks,
    const uint32_t *q_start, const uint32_t *q_len, const uint32_t *pos0,
    float scale)
{
    /* F32 with head_dim 256: 64 KiB, over the default 48 KiB */
    size_t  smem = (size_t) 2 * BN * kv->head_dim * sizeof(T);

    if (smem > 48 * 1024) {
        cudaError_t  e = cudaFuncSetAttribute(
            prefill_k<T, ND>, cudaFuncAttributeMaxDynamicSharedMemorySize,
            (int) smem);

        if (e != cudaSuccess) {
            return e;
        }
    }
    prefill_k<T, ND><<<grid, PF_THREADS, smem, st>>>((T *) out, ldo,
        (const T *) q, ldq, *kv, layer, n_heads, tables, max_blocks, q_start,
        q_len, pos0, scale);
    return cudaGetLastError();
}

/* ND (dims a thread holds) by head_dim */
template <typename T>
static cudaError_t
prefill_go(dim3 grid, cudaStream_t st, void *out, size_t ldo,
    const void *q, size_t ldq, const dw_cu_kv_t *kv, uint32_t layer,
    uint32_t n_heads, const uint32_t *tables, uint32_t max_blocks,
    const uint32_t *q_start, const uint32_t *q_len, const uint32_t *pos0,
    float scale)
{
    if (kv->head_dim <= 64) {
        return prefill_launch<T, 16>(grid, st, out, ldo, q, ldq, kv, layer,
                                     n_heads, tables, max_blocks, q_start,
                                     q_len, pos0, scale);
    }
    if (kv->head_dim <= 128) {
        return prefill_launch<T, 32>(grid, st, out, ldo, q, ldq, kv, layer,
                                     n_heads, tables, max_blocks, q_start,
                                     q_len, pos0, scale);
    }
    return prefill_launch<T, 64>(grid, st, out, ldo, q, ldq, kv, layer,
                                 n_heads, tables, max_blocks, q_start, q_len,
                                 pos0, scale);
}

extern "C" cudaError_t
dw_cu_attn_prefill(void *out, size_t ldo, const void *q, size_t ldq,
    const dw_cu_kv_t *kv, uint32_t layer, uint32_t n_heads,
    const uint32_t *tables, uint32_t max_blocks, const uint32_t *q_start,
    const uint32_t *q_len, const uint32_t *pos0, uint32_t n_seqs,
    uint32_t max_q_len, float scale, cudaStream_t st)
{
    uint32_t  hd = kv->head_dim;
    dim3      grid;

    if (!dw_cu_dtype_ok(kv->dtype)) {
        return cudaErrorInvalidValue;
    }
    if (n_seqs == 0 || max_q_len == 0) {
        return cudaSuccess;
    }
    if (kv->n_kv_heads == 0 || n_heads % kv->n_kv_heads != 0 || hd == 0
        || hd > DW_CU_MAX_HEAD_DIM || layer >= kv->n_layers
        || kv->block_size == 0 || n_heads > 65535 || n_seqs > 65535)
    {
        return cudaErrorInvalidValue;
    }
    grid = dim3(dw_cdiv(max_q_len, BM), n_heads, n_seqs);
    return DW_CU_BY_DTYPE(kv->dtype, prefill_go, grid, st, out, ldo, q, ldq,
                          kv, layer, n_heads, tables, max_blocks, q_start,
                          q_len, pos0, scale);
}
