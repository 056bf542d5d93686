/*
 * dynamo-worker: the matmul kernel (x rows times W^T, W in F32/BF16/F16).
 *
 * Dot-product form: a tile of DW_TR weight rows by up to DW_TT x rows keeps
 * one 8-lane accumulator per output element; k runs in chunks of 8 in
 * order, the 8 lanes are summed in a fixed tree, then the k % 8 tail is
 * added in order. Every element therefore sees the same operations
 * whatever the tile shape, m, or thread split (see dw_kern_int.h). The
 * weight tile (DW_TR rows) is reused across all x rows, so batched decode
 * reads the weights once per step: batch-64 costs far less than 64
 * single-token steps. A portable scalar version with the same structure
 * is compiled where AVX2/FMA is unavailable.
 */
#include <math.h>

#include "dw_kern_int.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define DW_KERN_AVX2 1
#endif

#define DW_TR  4       /* weight rows per tile (4 x 6 measured best of
                          2x12, 3x6, 3x8, 5x5, 6x4; 16-lane zmm
                          accumulators no faster on AMD Zen 4) */
#if defined(__AVX512VL__)
#define DW_TT  6       /* x rows per tile: 24 accumulators + 4 weights in
                          the 32 vector registers AVX-512 gives */
#else
#define DW_TT  3       /* x rows per tile: 12 accumulators + 4 weights */
#endif

#define DW_INLINE  static inline __attribute__((always_inline))

DW_INLINE float
w_scalar(const void *w, dw_dtype_t dt, size_t i)
{
    switch (dt) {
    case DW_DT_BF16:
        return dw_bf16_to_f32(((const uint16_t *) w)[i]);
    case DW_DT_F16:
        return dw_f16_to_f32(((const uint16_t *) w)[i]);
    default:
        return ((const float *) w)[i];
    }
}

#ifdef DW_KERN_AVX2

DW_INLINE __m256
w_vec(const void *w, dw_dtype_t dt, size_t i)
{
    __m128i  h;

    switch (dt) {
    case DW_DT_BF16:
        h = _mm_loadu_si128((const __m128i *) ((const uint16_t *) w + i));
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    case DW_DT_F16:
        h = _mm_loadu_si128((const __m128i *) ((const uint16_t *) w + i));
        return _mm256_cvtph_ps(h);
    default:
        return _mm256_loadu_ps((const float *) w + i);
    }
}

DW_INLINE float
hsum8(__m256 v)
{
    __m128  s = _mm_add_ps(_mm256_castps256_ps128(v),
                           _mm256_extractf128_ps(v, 1));

    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* prefetch the lines of pf[0 .. pos >> 8) not yet asked for */
#define DW_PF(pf, pos, done)                                                \
    while ((done) < (pos) >> 8) {                                           \
        _mm_prefetch((pf) + (done), _MM_HINT_T0);                           \
        (done) += 64;                                                       \
    }

/*
 * R weight rows (from row r) x T x rows; R, T compile-time after inlining.
 * The x tile is number xj of xn run against this weight tile.
 */
DW_INLINE void
tile(const float *x, size_t ldx, int T, const void *w, dw_dtype_t dt,
    uint32_t k, uint32_t r, int R, uint32_t xj, uint32_t xn, float *y,
    size_t ldy)
{
    __m256        acc[DW_TR][DW_TT], wv[DW_TR];
    const char   *wr[DW_TR];
    const float  *xr[DW_TT];
    const char   *pf;
    size_t        es = dt == DW_DT_F32 ? 4 : 2, next, a, pfstep, pos, done;
    uint32_t      kk, k8 = k & ~7u;
    int           i, t;
    float         s;

    for (i = 0; i < R; i++) {
        wr[i] = (const char *) w + (size_t) (r + i) * k * es;
        for (t = 0; t < T; t++) {
            acc[i][t] = _mm256_setzero_ps();
        }
    }
    for (t = 0; t < T; t++) {
        xr[t] = x + t * ldx;
    }
    /* The next tile's rows, contiguous after this tile's, are prefetched
     * linearly, spread over the k steps, so the weights stream as one
     * sequence (short per-row streams defeat the hardware prefetcher, most
     * of all for 2-byte rows). With several x tiles per weight tile, each
     * prefetches its 1/xn share: all prefetching the whole next tile in
     * the first x tile's time left too many misses in flight at once
     * (and the others then asked again for the same lines) */
    next = (size_t) R * k * es;
    a = xj == 0 ? 0 : (next * xj / xn) & ~(size_t) 63;
    pf = wr[0] + next + a;
    pfstep = k8 == 0 ? 0
             : (((xj + 1 == xn ? next : (next * (xj + 1) / xn) & ~(size_t) 63)
                 - a) << 8) / (k8 / 8);
    pos = 0;
    done = 0;
    kk = 0;
    if (dt != DW_DT_F32 && T == 1) {
        /* single-row decode with 2-byte weights: one 32-byte load per row
         * gives two k chunks, each accumulated in order exactly as below
         * (measured ~10-20% faster; batched tiles run better without) */
        __m256  wv2[DW_TR];

        for (; kk + 16 <= k8; kk += 16) {
            pos += 2 * pfstep;
            DW_PF(pf, pos, done);
            for (i = 0; i < R; i++) {
                __m256i  h = _mm256_loadu_si256((const __m256i *)
                                                (wr[i] + (size_t) kk * 2));

                if (dt == DW_DT_BF16) {
                    wv[i] = _mm256_castsi256_ps(_mm256_slli_epi32(
                        _mm256_cvtepu16_epi32(_mm256_castsi256_si128(h)),
                        16));
                    wv2[i] = _mm256_castsi256_ps(_mm256_slli_epi32(
                        _mm256_cvtepu16_epi32(_mm256_extracti128_si256(h, 1)),
                        16));
                } else {
                    wv[i] = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
                    wv2[i] = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
                }
            }
            for (t = 0; t < T; t++) {
                __m256  xv = _mm256_loadu_ps(xr[t] + kk);

                __asm__ ("" : "+x" (xv));
                for (i = 0; i < R; i++) {
                    acc[i][t] = _mm256_fmadd_ps(wv[i], xv, acc[i][t]);
                }
            }
            for (t = 0; t < T; t++) {
                __m256  xv = _mm256_loadu_ps(xr[t] + kk + 8);

                __asm__ ("" : "+x" (xv));
                for (i = 0; i < R; i++) {
                    acc[i][t] = _mm256_fmadd_ps(wv2[i], xv, acc[i][t]);
                }
            }
        }
    }
    for (; kk < k8; kk += 8) {
        pos += pfstep;
        DW_PF(pf, pos, done);
        for (i = 0; i < R; i++) {
            wv[i] = w_vec(wr[i], dt, kk);
        }
        for (t = 0; t < T; t++) {
            __m256  xv = _mm256_loadu_ps(xr[t] + kk);

            /* keep xv in a register: folded into each FMA as a memory
             * operand it would be loaded R times, and loads, not FMAs,
             * would bound batched decode */
            __asm__ ("" : "+x" (xv));
            for (i = 0; i < R; i++) {
                acc[i][t] = _mm256_fmadd_ps(wv[i], xv, acc[i][t]);
            }
        }
    }
    for (i = 0; i < R; i++) {
        for (t = 0; t < T; t++) {
            s = hsum8(acc[i][t]);
            for (kk = k8; kk < k; kk++) {
                s = fmaf(w_scalar(wr[i], dt, kk), xr[t][kk], s);
            }
            y[t * ldy + r + i] = s;
        }
    }
}

#else  /* portable */

DW_INLINE void
tile(const float *x, size_t ldx, int T, const void *w, dw_dtype_t dt,
    uint32_t k, uint32_t r, int R, uint32_t xj, uint32_t xn, float *y,
    size_t ldy)
{
    float     acc[DW_TR][DW_TT][8], wv[8];
    uint32_t  kk, k8 = k & ~7u;
    int       i, t, l;
    float     s;

    memset(acc, 0, sizeof(acc));
    for (kk = 0; kk < k8; kk += 8) {
        for (i = 0; i < R; i++) {
            for (l = 0; l < 8; l++) {
                wv[l] = w_scalar(w, dt, (size_t) (r + i) * k + kk + l);
            }
            for (t = 0; t < T; t++) {
                for (l = 0; l < 8; l++) {
                    acc[i][t][l] += wv[l] * x[t * ldx + kk + l];
                }
            }
        }
    }
    for (i = 0; i < R; i++) {
        for (t = 0; t < T; t++) {
            s = ((acc[i][t][0] + acc[i][t][4]) + (acc[i][t][2] + acc[i][t][6]))
                + ((acc[i][t][1] + acc[i][t][5]) + (acc[i][t][3]
                                                    + acc[i][t][7]));
            for (kk = k8; kk < k; kk++) {
                s += w_scalar(w, dt, (size_t) (r + i) * k + kk)
                     * x[t * ldx + kk];
            }
            y[t * ldy + r + i] = s;
        }
    }
}

#endif

/*
 * all x rows against weight rows r..r+R-1, in tiles of DW_TT x rows; the
 * m % DW_TT rows left over go in one narrower tile (a 1-row tile does 4
 * FMAs per 5 loads: 64 rows as 10 x 6 + 4, not + 3 + 1)
 */
DW_INLINE void
rows(const float *x, uint32_t m, size_t ldx, const void *w, dw_dtype_t dt,
    uint32_t k, uint32_t r, int R, float *y, size_t ldy)
{
    uint32_t  i, xn = (m + DW_TT - 1) / DW_TT;

    for (i = 0; i + DW_TT <= m; i += DW_TT) {
        tile(x + i * ldx, ldx, DW_TT, w, dt, k, r, R, i / DW_TT, xn,
             y + i * ldy, ldy);
    }
    x += i * ldx;
    y += i * ldy;
    switch (m - i) {
#if DW_TT > 5
    case 5:
        tile(x, ldx, 5, w, dt, k, r, R, xn - 1, xn, y, ldy);
        break;
    case 4:
        tile(x, ldx, 4, w, dt, k, r, R, xn - 1, xn, y, ldy);
        break;
#endif
#if DW_TT > 3
    case 3:
        tile(x, ldx, 3, w, dt, k, r, R, xn - 1, xn, y, ldy);
        break;
#endif
    case 2:
        tile(x, ldx, 2, w, dt, k, r, R, xn - 1, xn, y, ldy);
        break;
    case 1:
        tile(x, ldx, 1, w, dt, k, r, R, xn - 1, xn, y, ldy);
        break;
    default:
        break;
    }
}

DW_INLINE void
matmul_dt(const float *x, uint32_t m, size_t ldx, const void *w,
    dw_dtype_t dt, uint32_t k, uint32_t r0, uint32_t r1, float *y,
    size_t ldy)
{
    uint32_t  r;

    for (r = r0; r + DW_TR <= r1; r += DW_TR) {
        rows(x, m, ldx, w, dt, k, r, DW_TR, y, ldy);
    }
    for (; r < r1; r++) {
        rows(x, m, ldx, w, dt, k, r, 1, y, ldy);
    }
}

void
dw_kern_matmul(const float *x, uint32_t m, size_t ldx, const void *w,
    dw_dtype_t dt, uint32_t k, uint32_t r0, uint32_t r1, float *y,
    size_t ldy)
{
    switch (dt) {
    case DW_DT_BF16:
        matmul_dt(x, m, ldx, w, DW_DT_BF16, k, r0, r1, y, ldy);
        break;
    case DW_DT_F16:
        matmul_dt(x, m, ldx, w, DW_DT_F16, k, r0, r1, y, ldy);
        break;
    default:
        matmul_dt(x, m, ldx, w, DW_DT_F32, k, r0, r1, y, ldy);
        break;
    }
}
