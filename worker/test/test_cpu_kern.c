/*
 * cpu backend kernels against naive references (double precision) on
 * random inputs of awkward sizes: matmul with F32/BF16/F16 weights
 * (including the batch-independence contract), RMSNorm, RoPE (plain and
 * llama3-scaled frequencies against HF's formula), SwiGLU, dtype
 * conversions against exact values.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dw_kern_int.h"
#include "support/dw_tsupport_model.h"

/* a random matrix in dtype dt plus its exact F32 values */
static void *
rand_mat(uint64_t *s, dw_dtype_t dt, size_t n, float *exact)
{
    void      *w = malloc(n * 4);
    uint16_t  *h = w;
    float     *f = w;
    size_t     i;

    assert_non_null(w);
    for (i = 0; i < n; i++) {
        float  v = dw_ts_randf(s);

        switch (dt) {
        case DW_DT_BF16:
            h[i] = dw_f32_to_bf16(v);
            exact[i] = dw_bf16_to_f32(h[i]);
            break;
        case DW_DT_F16:
            h[i] = dw_f32_to_f16(v);
            exact[i] = dw_f16_to_f32(h[i]);
            break;
        default:
            f[i] = exact[i] = v;
            break;
        }
    }
    return w;
}

static void
check_matmul(dw_dtype_t dt, uint32_t m, uint32_t rows, uint32_t k,
    uint64_t seed)
{
    uint64_t   s = seed;
    float     *we = malloc((size_t) rows * k * 4);
    float     *x = malloc((size_t) m * k * 4);
    float     *y = malloc((size_t) m * rows * 4);
    float     *y1 = malloc((size_t) rows * 4);
    void      *w;
    uint32_t   i, r, j, split;
    double     ref, err, mag;

    assert_non_null(we);
    w = rand_mat(&s, dt, (size_t) rows * k, we);
    for (i = 0; i < m * k; i++) {
        x[i] = dw_ts_randf(&s);
    }
    /* in two thread-like slices at an awkward split */
    split = rows / 3;
    dw_kern_matmul(x, m, k, w, dt, k, 0, split, y, rows);
    dw_kern_matmul(x, m, k, w, dt, k, split, rows, y, rows);
    for (i = 0; i < m; i++) {
        for (r = 0; r < rows; r++) {
            ref = 0;
            mag = 0;
            for (j = 0; j < k; j++) {
                ref += (double) x[i * k + j] * we[(size_t) r * k + j];
                mag += fabs((double) x[i * k + j] * we[(size_t) r * k + j]);
            }
            err = fabs(y[(size_t) i * rows + r] - ref);
            if (err > 1e-5 * mag + 1e-6) {
                fail_msg("dt %d m %u rows %u k %u: y[%u][%u] = %g, ref %g",
                         dt, m, rows, k, i, r, y[(size_t) i * rows + r], ref);
            }
        }
    }
    /* each x row alone gives bit-identical results (batch independence) */
    for (i = 0; i < m; i++) {
        dw_kern_matmul(x + (size_t) i * k, 1, k, w, dt, k, 0, rows, y1,
                       rows);
        if (memcmp(y1, y + (size_t) i * rows, rows * 4) != 0) {
            fail_msg("dt %d m %u k %u: row %u alone differs from in batch",
                     dt, m, k, i);
        }
    }
    free(w);
    free(we);
    free(x);
    free(y);
    free(y1);
}

static void
test_matmul(void **state)
{
    /* x rows: one tile of each width, and several tiles with every
     * remainder (tile widths 3 and 6, see dw_kern_matmul.c) */
    static const uint32_t  ms[] = { 1, 2, 3, 4, 5, 7, 10, 11, 13, 64 };
    static const uint32_t  rs[] = { 1, 3, 4, 5, 17, 64 };
    static const uint32_t  ks[] = { 1, 7, 8, 9, 64, 173 };
    int                    dt;
    size_t                 a, b, c;
    uint64_t               seed = 1;

    for (dt = 0; dt < 3; dt++) {
        for (a = 0; a < sizeof(ms) / sizeof(ms[0]); a++) {
            for (b = 0; b < sizeof(rs) / sizeof(rs[0]); b++) {
                for (c = 0; c < sizeof(ks) / sizeof(ks[0]); c++) {
                    check_matmul((dw_dtype_t) dt, ms[a], rs[b], ks[c],
                                 seed++);
                }
            }
        }
    }
}

static void
test_conversions(void **state)
{
    /* exact values: bf16 0x3f80 = 1, 0xc040 = -3; f16 0x3c00 = 1,
     * 0xc200 = -3, 0x0001 = 2^-24, 0x7bff = 65504, 0x7c00 = inf */
    assert_true(dw_bf16_to_f32(0x3f80) == 1.0f);
    assert_true(dw_bf16_to_f32(0xc040) == -3.0f);
    assert_true(dw_f16_to_f32(0x3c00) == 1.0f);
    assert_true(dw_f16_to_f32(0xc200) == -3.0f);
    assert_true(dw_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    assert_true(dw_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(isinf(dw_f16_to_f32(0x7c00)));
    assert_true(isnan(dw_f16_to_f32(0x7e00)));
    /* rounding to nearest even */
    assert_int_equal(dw_f32_to_bf16(1.0f + ldexpf(1.0f, -8)), 0x3f80);
    assert_int_equal(dw_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)), 0x3f82);
    assert_int_equal(dw_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00);
    assert_int_equal(dw_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)), 0x3c02);
    assert_int_equal(dw_f32_to_f16(1e6f), 0x7c00);
    assert_int_equal(dw_f32_to_f16(ldexpf(1.0f, -24)), 0x0001);
    assert_int_equal(dw_f32_to_f16(ldexpf(1.0f, -26)), 0x0000);
}

/* every F16 bit pattern round-trips through F32 */
static void
test_f16_roundtrip(void **state)
{
    uint32_t  h;
    float     f;

    for (h = 0; h < 65536; h++) {
        f = dw_f16_to_f32((uint16_t) h);
        if (isnan(f)) {
            continue;
        }
        assert_int_equal(dw_f32_to_f16(f), h);
        assert_int_equal(dw_f32_to_bf16(dw_bf16_to_f32((uint16_t) h)), h);
    }
}

static void
test_rmsnorm(void **state)
{
    uint64_t  s = 5;
    float     x[173], g[173], y[173];
    uint32_t  n, i;
    double    ss, ref;

    for (n = 1; n <= 173; n += 43) {
        for (i = 0; i < n; i++) {
            x[i] = dw_ts_randf(&s) * 3;
            g[i] = dw_ts_randf(&s);
        }
        dw_kern_rmsnorm(y, x, g, n, 1e-5f);
        ss = 0;
        for (i = 0; i < n; i++) {
            ss += (double) x[i] * x[i];
        }
        for (i = 0; i < n; i++) {
            ref = x[i] / sqrt(ss / n + 1e-5) * g[i];
            assert_true(fabs(y[i] - ref) <= 1e-5 * (fabs(ref) + 1));
        }
    }
}

/* HF's formula, written out independently in double */
static void
ref_freqs(const dw_config_t *c, double *f)
{
    uint32_t  i;
    double    base, wl, lo = 0, hi = 0, sm;

    if (c->rope_llama3) {
        lo = c->rope_orig_max_position / c->rope_low_freq_factor;
        hi = c->rope_orig_max_position / c->rope_high_freq_factor;
    }
    for (i = 0; i < c->head_dim / 2; i++) {
        base = pow(c->rope_theta, -(2.0 * i) / c->head_dim);
        f[i] = base;
        if (!c->rope_llama3) {
            continue;
        }
        wl = 2 * M_PI / base;
        if (wl < hi) {
            f[i] = base;
        } else if (wl > lo) {
            f[i] = base / c->rope_factor;
        } else {
            sm = (c->rope_orig_max_position / wl - c->rope_low_freq_factor)
                 / (c->rope_high_freq_factor - c->rope_low_freq_factor);
            f[i] = (1 - sm) * base / c->rope_factor + sm * base;
        }
    }
}

static void
check_rope(const dw_config_t *c)
{
    float     inv[64], v[128], orig[128];
    double    rf[64], a, r0, r1;
    uint64_t  s = 11;
    uint32_t  pos, i, half = c->head_dim / 2;
    static const uint32_t  positions[] = { 0, 1, 7, 100, 4095, 30000 };
    size_t    p;

    dw_kern_rope_freqs(c, inv);
    ref_freqs(c, rf);
    for (i = 0; i < half; i++) {
        assert_true(fabs(inv[i] - rf[i]) <= 1e-6 * rf[i]);
    }
    for (p = 0; p < 6; p++) {
        pos = positions[p];
        for (i = 0; i < c->head_dim; i++) {
            orig[i] = v[i] = dw_ts_randf(&s);
        }
        dw_kern_rope(v, c->head_dim, inv, pos);
        for (i = 0; i < half; i++) {
            /* rotate_half: (x_i, x_{i+half}) rotated by pos * f_i;
             * angle from the F32 frequency as HF computes it */
            a = (double) ((float) pos * inv[i]);
            r0 = orig[i] * cos(a) - orig[i + half] * sin(a);
            r1 = orig[i + half] * cos(a) + orig[i] * sin(a);
            assert_true(fabs(v[i] - r0) < 1e-5);
            assert_true(fabs(v[i + half] - r1) < 1e-5);
        }
    }
}

static void
test_rope(void **state)
{
    dw_config_t  c;

    memset(&c, 0, sizeof(c));
    c.head_dim = 128;
    c.rope_theta = 500000;
    check_rope(&c);
    c.head_dim = 8;
    c.rope_theta = 10000;
    check_rope(&c);
    /* Llama 3.1 8B's scaling */
    c.head_dim = 128;
    c.rope_theta = 500000;
    c.rope_llama3 = 1;
    c.rope_factor = 8;
    c.rope_low_freq_factor = 1;
    c.rope_high_freq_factor = 4;
    c.rope_orig_max_position = 8192;
    check_rope(&c);
}

static void
test_swiglu(void **state)
{
    static const float  extreme[] = { -200, -100, -88.5f, -87, -30, -1e-3f,
                                      0, 1e-3f, 20, 87, 88.5f, 100, 200 };
    float               g[37], u[37], y[37];
    uint64_t            s = 3;
    uint32_t            i;
    double              ref;

    for (i = 0; i < 37; i++) {
        g[i] = i < 13 ? extreme[i] : dw_ts_randf(&s) * 12;
        u[i] = dw_ts_randf(&s);
    }
    dw_kern_swiglu(y, g, u, 37);
    for (i = 0; i < 37; i++) {
        ref = g[i] / (1 + exp(-(double) g[i])) * u[i];
        assert_true(fabs(y[i] - ref) <= 1e-5 * (fabs(ref) + 1e-3));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_f16_roundtrip),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_swiglu),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
