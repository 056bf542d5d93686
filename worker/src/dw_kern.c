/*
 * dynamo-worker: element-wise and small CPU kernels: dtype conversion,
 * RMSNorm, RoPE, SwiGLU, dot/axpy for attention.
 */
#include <math.h>

#include "dw_kern_int.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define DW_KERN_AVX2 1
#endif

void
dw_to_f32(float *dst, const void *src, dw_dtype_t dt, size_t n)
{
    const uint16_t  *h = src;
    size_t           i;

    switch (dt) {
    case DW_DT_BF16:
        for (i = 0; i < n; i++) {
            dst[i] = dw_bf16_to_f32(h[i]);
        }
        break;
    case DW_DT_F16:
        for (i = 0; i < n; i++) {
            dst[i] = dw_f16_to_f32(h[i]);
        }
        break;
    default:
        memcpy(dst, src, n * sizeof(float));
        break;
    }
}

void
dw_kern_rmsnorm(float *y, const float *x, const float *g, uint32_t n,
    float eps)
{
    double    ss = 0;
    float     scale;
    uint32_t  i;

    for (i = 0; i < n; i++) {
        ss += (double) x[i] * x[i];
    }
    scale = (float) (1.0 / sqrt(ss / n + eps));
    for (i = 0; i < n; i++) {
        y[i] = (x[i] * scale) * g[i];
    }
}

void
dw_kern_rope_freqs(const dw_config_t *cfg, float *inv_freq)
{
    uint32_t  i, half = cfg->head_dim / 2;
    double    f, wavelen, lo_wl, hi_wl, smooth;

    for (i = 0; i < half; i++) {
        f = 1.0 / pow(cfg->rope_theta, (double) (2 * i) / cfg->head_dim);
        if (cfg->rope_llama3) {
            /* Llama 3.1: keep high frequencies, divide low ones by factor,
             * interpolate in between (HF _compute_llama3_parameters) */
            lo_wl = cfg->rope_orig_max_position / cfg->rope_low_freq_factor;
            hi_wl = cfg->rope_orig_max_position / cfg->rope_high_freq_factor;
            wavelen = 2 * M_PI / f;
            if (wavelen > lo_wl) {
                f = f / cfg->rope_factor;
            } else if (wavelen >= hi_wl) {
                smooth = (cfg->rope_orig_max_position / wavelen
                          - cfg->rope_low_freq_factor)
                         / (cfg->rope_high_freq_factor
                            - cfg->rope_low_freq_factor);
                f = (1 - smooth) * f / cfg->rope_factor + smooth * f;
            }
        }
        inv_freq[i] = (float) f;
    }
}

void
dw_kern_rope_table(float *cs, uint32_t hd, const float *inv_freq,
    uint32_t pos)
{
    uint32_t  i, half = hd / 2;
    float     a;

    for (i = 0; i < half; i++) {
        a = (float) pos * inv_freq[i];
        cs[i] = cosf(a);
        cs[half + i] = sinf(a);
    }
}

void
dw_kern_rope_apply(float *v, uint32_t hd, const float *cs)
{
    uint32_t  i, half = hd / 2;
    float     c, s, x0, x1;

    for (i = 0; i < half; i++) {
        c = cs[i];
        s = cs[half + i];
        x0 = v[i];
        x1 = v[i + half];
        v[i] = x0 * c - x1 * s;
        v[i + half] = x1 * c + x0 * s;
    }
}

void
dw_kern_rope(float *v, uint32_t hd, const float *inv_freq, uint32_t pos)
{
    float  cs[1024];

    dw_kern_rope_table(cs, hd, inv_freq, pos);
    dw_kern_rope_apply(v, hd, cs);
}

#ifdef DW_KERN_AVX2
/*
 * e^x for x in [-87, 88] (clamped outside), Cephes' expf scheme: x =
 * n ln2 + r, |r| <= ln2/2, degree-6 polynomial, scaled by 2^n. About
 * 2 ulp.
 */
static inline __m256
exp8(__m256 x)
{
    __m256   n, r, p;
    __m256i  e;

    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)),
                      _mm256_set1_ps(88.0f));
    n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r),
                        _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    e = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e));
}
#endif

/*
 * Element i's arithmetic depends on i's place in the 8-wide blocks: call
 * it on whole rows (the backend does) so the batch never changes it.
 */
void
dw_kern_swiglu(float *y, const float *g, const float *u, uint32_t n)
{
    uint32_t  i = 0;

#ifdef DW_KERN_AVX2
    __m256    gv, one = _mm256_set1_ps(1.0f);

    for (; i + 8 <= n; i += 8) {
        gv = _mm256_loadu_ps(g + i);
        _mm256_storeu_ps(y + i, _mm256_div_ps(
            _mm256_mul_ps(gv, _mm256_loadu_ps(u + i)),
            _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(),
                                                  gv)))));
    }
#endif
    for (; i < n; i++) {
        y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    }
}
