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
dw_kern_rope(float *v, uint32_t hd, const float *inv_freq, uint32_t pos)
{
    uint32_t  i, half = hd / 2;
    float     a, c, s, x0, x1;

    for (i = 0; i < half; i++) {
        a = (float) pos * inv_freq[i];
        c = cosf(a);
        s = sinf(a);
        x0 = v[i];
        x1 = v[i + half];
        v[i] = x0 * c - x1 * s;
        v[i + half] = x1 * c + x0 * s;
    }
}

void
dw_kern_swiglu(float *y, const float *g, const float *u, uint32_t n)
{
    uint32_t  i;

    for (i = 0; i < n; i++) {
        y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    }
}

float
dw_kern_dot(const float *a, const float *b, uint32_t n)
{
    uint32_t  i = 0;
    float     s = 0;
#ifdef DW_KERN_AVX2
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

void
dw_kern_axpy(float *y, float a, const float *x, uint32_t n)
{
    uint32_t  i;

    for (i = 0; i < n; i++) {
        y[i] += a * x[i];
    }
}
