/*
 * dynamo-worker: CPU kernels (internal). All arithmetic is F32; weight
 * matrices may be F32, BF16 or F16 and are read in place.
 *
 * Reduction order contract: dw_kern_matmul computes every output element
 * y[i][r] = dot(x[i], W[r]) with one fixed reduction order that depends
 * only on the row length, never on how many x rows or W rows are computed
 * together or how rows are split across threads. So a sequence's decode
 * output does not depend on what else is in the batch.
 */
#ifndef DW_KERN_INT_H
#define DW_KERN_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dw_model.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

static inline float
dw_bf16_to_f32(uint16_t h)
{
    uint32_t  u = (uint32_t) h << 16;
    float     f;

    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even; NaN stays NaN. */
static inline uint16_t
dw_f32_to_bf16(float f)
{
    uint32_t  u;

    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t) ((u >> 16) | 0x40);
    }
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t) (u >> 16);
}

static inline float
dw_f16_to_f32(uint16_t h)
{
    uint32_t  sign = (uint32_t) (h & 0x8000) << 16;
    uint32_t  exp = (h >> 10) & 0x1f;
    uint32_t  man = h & 0x3ff;
    uint32_t  u;
    float     f;

    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in F32 */
        f = (float) man * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 112) << 23) | (man << 13);
    }
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even, overflow to infinity. */
static inline uint16_t
dw_f32_to_f16(float f)
{
    uint32_t  u, sign, man;
    int32_t   exp;
    uint32_t  h, shift, rem, half;

    memcpy(&u, &f, 4);
    sign = (u >> 16) & 0x8000;
    exp = (int32_t) ((u >> 23) & 0xff) - 127 + 15;
    man = u & 0x7fffff;
    if (((u >> 23) & 0xff) == 0xff) {
        return (uint16_t) (sign | 0x7c00 | (man ? 0x200 : 0));
    }
    if (exp >= 31) {
        return (uint16_t) (sign | 0x7c00);
    }
    if (exp <= 0) {
        if (exp < -10) {
            return (uint16_t) sign;
        }
        man |= 0x800000;
        shift = (uint32_t) (14 - exp);
        h = man >> shift;
        rem = man & ((1u << shift) - 1);
        half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) {
            h++;
        }
        return (uint16_t) (sign | h);
    }
    h = ((uint32_t) exp << 10) | (man >> 13);
    rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) {
        h++;                 /* may carry into the exponent: still right */
    }
    return (uint16_t) (sign | h);
}

/* dst[0..n) = src[0..n) of dtype dt converted to F32. */
void dw_to_f32(float *dst, const void *src, dw_dtype_t dt, size_t n);

/*
 * y[i * ldy + r] = dot(x[i * ldx .. + k], W row r) for i < m and
 * r0 <= r < r1; W is rows x k of dtype dt, row-major. One thread's share
 * of a matmul; see the reduction-order contract above.
 */
void dw_kern_matmul(const float *x, uint32_t m, size_t ldx, const void *w,
    dw_dtype_t dt, uint32_t k, uint32_t r0, uint32_t r1, float *y,
    size_t ldy);

/* y = x / rms(x) * g, n elements (y may be x). */
void dw_kern_rmsnorm(float *y, const float *x, const float *g, uint32_t n,
    float eps);

/*
 * HF rotate-half RoPE on one head vector v[hd] at position pos: pairs
 * (i, i + hd/2) rotated by pos * inv_freq[i].
 */
void dw_kern_rope(float *v, uint32_t hd, const float *inv_freq, uint32_t pos);
/* The same in two halves: cs[hd] = cos, sin of position pos (once per
 * row), then applied to each head (hd <= 1024). */
void dw_kern_rope_table(float *cs, uint32_t hd, const float *inv_freq,
    uint32_t pos);
void dw_kern_rope_apply(float *v, uint32_t hd, const float *cs);

/* inv_freq[hd/2] for cfg (theta, llama3 scaling). */
void dw_kern_rope_freqs(const dw_config_t *cfg, float *inv_freq);

/* y[i] = silu(g[i]) * u[i]; y may be g. Vectorised exp (about 2 ulp):
 * an element's result depends on i mod 8, so call it on whole rows. */
void dw_kern_swiglu(float *y, const float *g, const float *u, uint32_t n);

/* Attention's inner loops, inline: called once per key and head. */
static inline float
dw_kern_dot(const float *a, const float *b, uint32_t n)
{
    uint32_t  i = 0;
    float     s = 0;
#if defined(__AVX2__) && defined(__FMA__)
    __m256    acc = _mm256_setzero_ps();
    __m128    q;

    for (; i + 8 <= n; i += 8) {
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i),
                              acc);
    }
    q = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    s = _mm_cvtss_f32(q);
#endif
    for (; i < n; i++) {
        s += a[i] * b[i];
    }
    return s;
}

/* y += a * x */
static inline void
dw_kern_axpy(float *y, float a, const float *x, uint32_t n)
{
    uint32_t  i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    __m256    av = _mm256_set1_ps(a);

    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i),
                                                _mm256_loadu_ps(y + i)));
    }
#endif
    for (; i < n; i++) {
        y[i] += a * x[i];
    }
}

#endif
