/*
 * GPU tests of the cuda kernels (dw_cuda.h) against CPU references (the
 * cpu backend's own kernels where it has them) on random inputs of
 * awkward sizes: head_dim, block size, lengths and leading dimensions
 * that are not multiples of any tile, for each storage type (BF16, F16,
 * F32). Inputs are rounded to the storage type first, so both sides start
 * from the same numbers; tolerances are per type (dtc_t): a rounding or
 * two of the output (2^-8 relative units for BF16, 2^-11 for F16) plus
 * F32 reordering, and for F32 storage only the reordering (near the cpu
 * kernels' own rounding). Every test that launches a kernel is skipped
 * (cmocka skip) when no CUDA device is present; main says why.
 * test_bad_dtype needs no device (the launchers refuse before any CUDA
 * call).
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

#include "dw_cuda.h"
#include "dw_kern_int.h"

static int   have_dev;
static char  no_dev[256];

#define CU(x)  cu_check((x), #x, __FILE__, __LINE__)

static void
cu_check(cudaError_t e, const char *what, const char *file, int line)
{
    if (e != cudaSuccess) {
        fail_msg("%s:%d: %s: %s", file, line, what, cudaGetErrorString(e));
    }
}

#define NEED_DEVICE()  do { if (!have_dev) { skip(); } } while (0)

/*
 * A storage type and its tolerances: rt, relative, for element-wise
 * results (two roundings of the output); attention takes 2 * rt relative
 * plus at of the largest reference value (F32 softmax and reordering
 * over hundreds of keys, then the output rounding).
 */
typedef struct {
    dw_dtype_t   dt;
    const char  *name;
    float        rt;
    float        at;
} dtc_t;

static const dtc_t  DTS[] = {
    { DW_DT_BF16, "bf16", 1.0f / 128, 2e-3f },           /* 2 x 2^-8 */
    { DW_DT_F16,  "f16",  1.0f / 1024, 2.5e-4f },        /* 2 x 2^-11 */
    { DW_DT_F32,  "f32",  1.0f / 131072, 3e-5f },        /* F32 reordering */
};
#define N_DTS  (sizeof(DTS) / sizeof(DTS[0]))

static size_t
esz(dw_dtype_t dt)
{
    return dt == DW_DT_F32 ? 4 : 2;
}

/* element i of a dt array, as F32 (exact) */
static float
st_get(dw_dtype_t dt, const void *p, size_t i)
{
    switch (dt) {
    case DW_DT_BF16:
        return dw_bf16_to_f32(((const uint16_t *) p)[i]);
    case DW_DT_F16:
        return dw_f16_to_f32(((const uint16_t *) p)[i]);
    default:
        return ((const float *) p)[i];
    }
}

/* element i of a dt array = v rounded to dt (to nearest even) */
static void
st_put(dw_dtype_t dt, void *p, size_t i, float v)
{
    switch (dt) {
    case DW_DT_BF16:
        ((uint16_t *) p)[i] = dw_f32_to_bf16(v);
        break;
    case DW_DT_F16:
        ((uint16_t *) p)[i] = dw_f32_to_f16(v);
        break;
    default:
        ((float *) p)[i] = v;
    }
}

/* p + n elements of dt */
static void *
st_at(dw_dtype_t dt, const void *p, size_t n)
{
    return (char *) p + n * esz(dt);
}

static uint64_t
rnd(uint64_t *s)
{
    uint64_t  z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* uniform in [-a, a) */
static float
rndf(uint64_t *s, float a)
{
    return ((float) (rnd(s) >> 40) / (float) (1 << 24) * 2 - 1) * a;
}

/* n random values in [-a, a) rounded to dt: in b, their F32 values in f */
static void
rnd_st(uint64_t *s, float a, dw_dtype_t dt, void *b, float *f, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        st_put(dt, b, i, rndf(s, a));
        if (f != NULL) {
            f[i] = st_get(dt, b, i);
        }
    }
}

static void *
dev_put(const void *h, size_t bytes)
{
    void  *d = NULL;

    CU(cudaMalloc(&d, bytes ? bytes : 1));
    if (bytes > 0) {
        CU(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    }
    return d;
}

static void
dev_get(void *h, const void *d, size_t bytes)
{
    CU(cudaDeviceSynchronize());
    CU(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
}

/*
 * got (dt, stride gs) against ref (F32): |got - ref| <= rtol * |ref| +
 * atol * max|ref| for each of n elements.
 */
static void
close_st(const char *what, dw_dtype_t dt, const void *got, size_t gs,
    const float *ref, size_t rs, size_t rows, size_t n, float rtol,
    float atol)
{
    size_t  r, i;
    float   mx = 0, g, e, worst = 0;

    for (r = 0; r < rows; r++) {
        for (i = 0; i < n; i++) {
            mx = fmaxf(mx, fabsf(ref[r * rs + i]));
        }
    }
    for (r = 0; r < rows; r++) {
        for (i = 0; i < n; i++) {
            g = st_get(dt, got, r * gs + i);
            e = fabsf(g - ref[r * rs + i]);
            worst = fmaxf(worst, e);
            if (!(e <= rtol * fabsf(ref[r * rs + i]) + atol * mx)) {
                fail_msg("%s: row %zu elem %zu: got %g want %g (max |ref| "
                         "%g)", what, r, i, g, ref[r * rs + i], mx);
            }
        }
    }
    print_message("%s: max abs error %g (max |ref| %g)\n", what, worst, mx);
}

static void
embed_case(const dtc_t *T)
{
    uint32_t   vocab = 37, n = 333, rows = 5, tok[5] = { 36, 0, 17, 17, 5 };
    uint64_t   s = 1;
    void      *E = malloc(vocab * n * esz(T->dt));
    float     *Ef = malloc(vocab * n * 4), *x = malloc(rows * n * 4);
    void      *dE, *dt, *dx;
    uint32_t   r;

    rnd_st(&s, 2, T->dt, E, Ef, (size_t) vocab * n);
    dE = dev_put(E, vocab * n * esz(T->dt));
    dt = dev_put(tok, sizeof(tok));
    CU(cudaMalloc(&dx, rows * n * 4));
    CU(dw_cu_embed(dx, dE, dt, rows, n, T->dt, 0));
    dev_get(x, dx, rows * n * 4);
    for (r = 0; r < rows; r++) {
        assert_memory_equal(x + r * n, Ef + (size_t) tok[r] * n, n * 4);
    }
    cudaFree(dE);
    cudaFree(dt);
    cudaFree(dx);
    free(E);
    free(Ef);
    free(x);
}

static void
test_embed(void **state)
{
    size_t  k;

    NEED_DEVICE();
    for (k = 0; k < N_DTS; k++) {
        embed_case(&DTS[k]);
    }
}

static void
rmsnorm_case(const dtc_t *T)
{
    uint32_t   rows = 3, n = 1001, ldy = 1003, sel[2] = { 2, 0 }, r, i;
    uint64_t   s = 2;
    size_t     es = esz(T->dt);
    float     *x = malloc(rows * n * 4), *g = malloc(n * 4);
    float     *ref = malloc(rows * n * 4), *bias = malloc(n * 4);
    float     *x2 = malloc(rows * n * 4), *xref = malloc(rows * n * 4);
    void      *d = malloc(rows * n * es), *y = malloc(rows * ldy * es);
    float     *df = malloc(rows * n * 4);
    void      *dx, *dg, *dy, *dd, *db, *ds;
    char       what[64];

    for (i = 0; i < rows * n; i++) {
        x[i] = rndf(&s, 3);
    }
    for (i = 0; i < n; i++) {
        g[i] = rndf(&s, 1.5f);
        bias[i] = rndf(&s, 0.5f);
    }
    rnd_st(&s, 1, T->dt, d, df, (size_t) rows * n);
    dx = dev_put(x, rows * n * 4);
    dg = dev_put(g, n * 4);
    dd = dev_put(d, rows * n * es);
    db = dev_put(bias, n * 4);
    ds = dev_put(sel, sizeof(sel));
    CU(cudaMalloc(&dy, rows * ldy * es));

    /* plain */
    CU(dw_cu_rmsnorm(dy, ldy, dx, dg, rows, n, 1e-5f, T->dt, 0));
    dev_get(y, dy, rows * ldy * es);
    for (r = 0; r < rows; r++) {
        dw_kern_rmsnorm(ref + r * n, x + r * n, g, n, 1e-5f);
    }
    snprintf(what, sizeof(what), "rmsnorm %s", T->name);
    close_st(what, T->dt, y, ldy, ref, n, rows, n, T->rt, 1e-6f);

    /* selected rows */
    CU(dw_cu_rmsnorm_rows(dy, ldy, dx, ds, dg, 2, n, 1e-5f, T->dt, 0));
    dev_get(y, dy, 2 * ldy * es);
    snprintf(what, sizeof(what), "rmsnorm_rows %s", T->name);
    close_st(what, T->dt, y, ldy, ref + 2 * n, n, 1, n, T->rt, 1e-6f);
    close_st(what, T->dt, st_at(T->dt, y, ldy), ldy, ref, n, 1, n, T->rt,
             1e-6f);

    /* residual add (with bias) fused with the norm */
    CU(dw_cu_add_rmsnorm(dy, ldy, dx, dd, n, db, dg, rows, n, 1e-6f, T->dt,
                         0));
    dev_get(y, dy, rows * ldy * es);
    dev_get(x2, dx, rows * n * 4);
    for (i = 0; i < rows * n; i++) {
        xref[i] = x[i] + df[i] + bias[i % n];
        assert_true(fabsf(x2[i] - xref[i]) <= 1e-6f * fabsf(xref[i]));
    }
    for (r = 0; r < rows; r++) {
        dw_kern_rmsnorm(ref + r * n, xref + r * n, g, n, 1e-6f);
    }
    snprintf(what, sizeof(what), "add_rmsnorm %s", T->name);
    close_st(what, T->dt, y, ldy, ref, n, rows, n, T->rt, 1e-6f);

    /* the plain residual add, no bias */
    CU(dw_cu_residual_add(dx, dd, n, NULL, rows, n, T->dt, 0));
    dev_get(x2, dx, rows * n * 4);
    for (i = 0; i < rows * n; i++) {
        assert_true(fabsf(x2[i] - (xref[i] + df[i]))
                    <= 1e-6f * fabsf(xref[i] + df[i]));
    }
    cudaFree(dx);
    cudaFree(dg);
    cudaFree(dd);
    cudaFree(db);
    cudaFree(ds);
    cudaFree(dy);
    free(x); free(g); free(ref); free(bias); free(x2); free(xref);
    free(d); free(y); free(df);
}

static void
test_rmsnorm(void **state)
{
    size_t  k;

    NEED_DEVICE();
    for (k = 0; k < N_DTS; k++) {
        rmsnorm_case(&DTS[k]);
    }
}

static void
swiglu_case(const dtc_t *T)
{
    uint32_t   rows = 3, n = 777, ldg = 2 * 777 + 5, ldy = 800, r, i;
    uint64_t   s = 3;
    size_t     es = esz(T->dt);
    void      *gu = malloc(rows * ldg * es), *y = malloc(rows * ldy * es);
    float     *guf = malloc(rows * ldg * 4), *ref = malloc(rows * n * 4);
    void      *dg, *dy;
    char       what[64];

    rnd_st(&s, 6, T->dt, gu, guf, (size_t) rows * ldg);
    dg = dev_put(gu, rows * ldg * es);
    CU(cudaMalloc(&dy, rows * ldy * es));
    /* gate then up in one row (a fused gate/up GEMM's output) */
    CU(dw_cu_swiglu(dy, ldy, dg, st_at(T->dt, dg, n), ldg, rows, n, T->dt,
                    0));
    dev_get(y, dy, rows * ldy * es);
    for (r = 0; r < rows; r++) {
        for (i = 0; i < n; i++) {
            float  a = guf[r * ldg + i], b = guf[r * ldg + n + i];

            ref[r * n + i] = a / (1.0f + expf(-a)) * b;
        }
    }
    snprintf(what, sizeof(what), "swiglu %s", T->name);
    close_st(what, T->dt, y, ldy, ref, n, rows, n, T->rt, 1e-6f);
    cudaFree(dg);
    cudaFree(dy);
    free(gu); free(y); free(guf); free(ref);
}

static void
test_swiglu(void **state)
{
    size_t  k;

    NEED_DEVICE();
    for (k = 0; k < N_DTS; k++) {
        swiglu_case(&DTS[k]);
    }
}

/* A pool and its host copy, both random. */
typedef struct {
    dw_cu_kv_t  kv;
    size_t      elems;
    void       *h;          /* host image (kv.dtype) */
    float      *hf;         /* its F32 values */
} pool_t;

static void
pool_make(pool_t *p, uint64_t *s, dw_dtype_t dt, uint32_t layers,
    uint32_t kvh, uint32_t hd, uint32_t bs, uint32_t n_blocks)
{
    memset(&p->kv, 0, sizeof(p->kv));
    p->kv.dtype = dt;
    p->kv.n_layers = layers;
    p->kv.n_kv_heads = kvh;
    p->kv.head_dim = hd;
    p->kv.block_size = bs;
    p->kv.n_blocks = n_blocks;
    p->elems = (size_t) n_blocks * layers * 2 * bs * kvh * hd;
    p->h = malloc(p->elems * esz(dt));
    p->hf = malloc(p->elems * 4);
    rnd_st(s, 1, dt, p->h, p->hf, p->elems);
    p->kv.base = dev_put(p->h, p->elems * esz(dt));
}

static void
pool_free(pool_t *p)
{
    cudaFree(p->kv.base);
    free(p->h);
    free(p->hf);
}

/* host offset of (block, layer, s, slot), as dw_cuda.h lays the pool */
static size_t
pool_off(const dw_cu_kv_t *kv, uint32_t b, uint32_t l, uint32_t s,
    uint32_t j)
{
    size_t  kvd = (size_t) kv->n_kv_heads * kv->head_dim;

    return (((size_t) b * kv->n_layers + l) * 2 + s) * kv->block_size * kvd
           + j * kvd;
}

static void
rope_case(const dtc_t *T)
{
    dw_config_t  cfg;
    uint32_t     rows = 9, nh = 6, kvh = 2, hd = 72, bs = 7, nb = 13, L = 3;
    uint32_t     layer = 1, qd = nh * hd, kvd = kvh * hd;
    size_t       ld = qd + 2 * kvd + 3, es = esz(T->dt);
    uint32_t     pos[9], slot[9], r, h;
    uint64_t     s = 4;
    pool_t       p;
    float       *inv = malloc(hd / 2 * 4), *cs = malloc(hd * 4);
    void        *x = malloc(rows * ld * es), *got = malloc(rows * ld * es);
    void        *pg;
    float       *xf = malloc(rows * ld * 4), *ref = malloc(rows * ld * 4);
    void        *dx, *dpos, *dslot, *dinv;
    char         what[64];

    memset(&cfg, 0, sizeof(cfg));
    cfg.head_dim = hd;
    cfg.rope_theta = 500000;
    cfg.rope_llama3 = 1;          /* Llama 3.1's rope_scaling */
    cfg.rope_factor = 8;
    cfg.rope_low_freq_factor = 1;
    cfg.rope_high_freq_factor = 4;
    cfg.rope_orig_max_position = 8192;
    dw_kern_rope_freqs(&cfg, inv);

    pool_make(&p, &s, T->dt, L, kvh, hd, bs, nb);
    for (r = 0; r < rows; r++) {
        pos[r] = r == 0 ? 0 : (uint32_t) (rnd(&s) % 131072);
        slot[r] = (uint32_t) (r * 10 + rnd(&s) % 10) % (nb * bs);  /* distinct */
    }
    rnd_st(&s, 2, T->dt, x, xf, rows * ld);
    dx = dev_put(x, rows * ld * es);
    dpos = dev_put(pos, sizeof(pos));
    dslot = dev_put(slot, sizeof(slot));
    dinv = dev_put(inv, hd / 2 * 4);
    CU(dw_cu_rope_kv(dx, st_at(T->dt, dx, qd), st_at(T->dt, dx, qd + kvd), ld,
                     rows, nh, dpos, dslot, dinv, &p.kv, layer, 0));
    dev_get(got, dx, rows * ld * es);

    memcpy(ref, xf, rows * ld * 4);
    for (r = 0; r < rows; r++) {
        dw_kern_rope_table(cs, hd, inv, pos[r]);
        for (h = 0; h < nh + kvh; h++) {
            dw_kern_rope_apply(ref + r * ld + (size_t) h * hd, hd, cs);
        }
    }
    snprintf(what, sizeof(what), "rope q,k %s", T->name);
    close_st(what, T->dt, got, ld, ref, ld, rows, qd + kvd, T->rt, 1e-6f);
    /* v untouched */
    for (r = 0; r < rows; r++) {
        assert_memory_equal(st_at(T->dt, got, r * ld + qd + kvd),
                            st_at(T->dt, x, r * ld + qd + kvd), kvd * es);
    }
    /* the pool: K = the roped k (as the kernel left it in the row), V =
       v, every other element as it was (byte for byte) */
    pg = malloc(p.elems * es);
    dev_get(pg, p.kv.base, p.elems * es);
    for (r = 0; r < rows; r++) {
        size_t  ko = pool_off(&p.kv, slot[r] / bs, layer, 0, slot[r] % bs);
        size_t  vo = pool_off(&p.kv, slot[r] / bs, layer, 1, slot[r] % bs);

        assert_memory_equal(st_at(T->dt, pg, ko),
                            st_at(T->dt, got, r * ld + qd), kvd * es);
        assert_memory_equal(st_at(T->dt, pg, vo),
                            st_at(T->dt, x, r * ld + qd + kvd), kvd * es);
        memcpy(st_at(T->dt, p.h, ko), st_at(T->dt, got, r * ld + qd),
               kvd * es);
        memcpy(st_at(T->dt, p.h, vo), st_at(T->dt, x, r * ld + qd + kvd),
               kvd * es);
    }
    if (memcmp(pg, p.h, p.elems * es) != 0) {
        fail_msg("rope %s: a pool element outside the rows' slots changed",
                 T->name);
    }
    free(pg);
    pool_free(&p);
    cudaFree(dx); cudaFree(dpos); cudaFree(dslot); cudaFree(dinv);
    free(inv); free(cs); free(x); free(got); free(xf); free(ref);
}

static void
test_rope_kv(void **state)
{
    size_t  k;

    NEED_DEVICE();
    for (k = 0; k < N_DTS; k++) {
        rope_case(&DTS[k]);
    }
}

/*
 * Reference attention of one query row (F32 q) at position p over a
 * sequence's block table: out[hd] for head h.
 */
static void
ref_attn(const pool_t *p, uint32_t layer, const uint32_t *table,
    uint32_t n_keys, const float *q, uint32_t h, uint32_t g, float scale,
    float *sc, float *out)
{
    uint32_t  hd = p->kv.head_dim, bs = p->kv.block_size, kvh = h / g, t, d;
    float     mx = -INFINITY, sum = 0;

    for (t = 0; t < n_keys; t++) {
        const float  *K = p->hf + pool_off(&p->kv, table[t / bs], layer, 0,
                                           t % bs) + (size_t) kvh * hd;
        float         a = 0;

        for (d = 0; d < hd; d++) {
            a += q[d] * K[d];
        }
        sc[t] = a * scale;
        mx = fmaxf(mx, sc[t]);
    }
    for (t = 0; t < n_keys; t++) {
        sc[t] = expf(sc[t] - mx);
        sum += sc[t];
    }
    memset(out, 0, hd * 4);
    for (t = 0; t < n_keys; t++) {
        const float  *V = p->hf + pool_off(&p->kv, table[t / bs], layer, 1,
                                           t % bs) + (size_t) kvh * hd;

        for (d = 0; d < hd; d++) {
            out[d] += sc[t] / sum * V[d];
        }
    }
}

/* block tables: each sequence gets distinct pool blocks in random order */
static uint32_t *
make_tables(uint64_t *s, uint32_t n_seqs, uint32_t max_blocks,
    uint32_t n_blocks)
{
    uint32_t  *perm = malloc(n_blocks * 4), *t, i, j, k;

    for (i = 0; i < n_blocks; i++) {
        perm[i] = i;
    }
    for (i = n_blocks - 1; i > 0; i--) {
        j = (uint32_t) (rnd(s) % (i + 1));
        k = perm[i];
        perm[i] = perm[j];
        perm[j] = k;
    }
    t = malloc((size_t) n_seqs * max_blocks * 4);
    for (i = 0; i < n_seqs * max_blocks; i++) {
        t[i] = perm[i % n_blocks];
    }
    free(perm);
    return t;
}

static void
decode_case(const dtc_t *T, uint32_t kvh, uint32_t nh, uint32_t hd,
    uint32_t bs, const uint32_t *ctx, uint32_t n_seqs, uint64_t seed)
{
    uint32_t   g = nh / kvh, L = 2, layer = 1, max_ctx = 0, mb, nb, i, h;
    size_t     ldq = (size_t) nh * hd + 7, ldo = (size_t) nh * hd + 3;
    size_t     es = esz(T->dt);
    uint64_t   s = seed;
    pool_t     p;
    uint32_t  *tables;
    void      *q = malloc(n_seqs * ldq * es), *o = malloc(n_seqs * ldo * es);
    float     *qf = malloc(n_seqs * ldq * 4), *ref, *sc;
    float      scale = 1.0f / sqrtf((float) hd);
    void      *dq, *dout, *dt, *dctx, *ws;
    char       what[64];

    for (i = 0; i < n_seqs; i++) {
        max_ctx = ctx[i] > max_ctx ? ctx[i] : max_ctx;
    }
    mb = (max_ctx + bs - 1) / bs;
    nb = mb * n_seqs + 3;
    pool_make(&p, &s, T->dt, L, kvh, hd, bs, nb);
    tables = make_tables(&s, n_seqs, mb, nb);
    rnd_st(&s, 2, T->dt, q, qf, n_seqs * ldq);
    dq = dev_put(q, n_seqs * ldq * es);
    dt = dev_put(tables, (size_t) n_seqs * mb * 4);
    dctx = dev_put(ctx, n_seqs * 4);
    CU(cudaMalloc(&dout, n_seqs * ldo * es));
    CU(cudaMalloc(&ws, dw_cu_attn_decode_ws(n_seqs, nh, hd, max_ctx)));
    CU(dw_cu_attn_decode(dout, ldo, dq, ldq, &p.kv, layer, nh, dt, mb, dctx,
                         n_seqs, max_ctx, scale, ws, 0));
    dev_get(o, dout, n_seqs * ldo * es);

    ref = malloc((size_t) nh * hd * 4);
    sc = malloc(((size_t) max_ctx + 1) * 4);
    for (i = 0; i < n_seqs; i++) {
        for (h = 0; h < nh; h++) {
            ref_attn(&p, layer, tables + (size_t) i * mb, ctx[i],
                     qf + i * ldq + (size_t) h * hd, h, g, scale, sc,
                     ref + (size_t) h * hd);
        }
        snprintf(what, sizeof(what), "decode %s hd %u g %u ctx %u", T->name,
                 hd, g, ctx[i]);
        close_st(what, T->dt, st_at(T->dt, o, i * ldo), ldo, ref, 0, 1,
                 (size_t) nh * hd, 2 * T->rt, T->at);
    }
    free(ref); free(sc);
    cudaFree(dq); cudaFree(dout); cudaFree(dt); cudaFree(dctx); cudaFree(ws);
    pool_free(&p);
    free(tables); free(q); free(o); free(qf);
}

static void
test_attn_decode(void **state)
{
    /* lengths around the split size (512), one key, block size 5 */
    const uint32_t  ctx1[] = { 1, 13, 1100, 512, 513 };
    const uint32_t  ctx2[] = { 2000, 3 };
    size_t          k;

    NEED_DEVICE();
    for (k = 0; k < N_DTS; k++) {
        decode_case(&DTS[k], 3, 9, 40, 5, ctx1, 5, 11);
        /* group 16, head_dim 256: more shared memory than the default */
        decode_case(&DTS[k], 1, 16, 256, 16, ctx2, 2, 12);
        /* MHA, odd head_dim */
        decode_case(&DTS[k], 4, 4, 6, 3, ctx1, 5, 13);
    }
}

static void
prefill_case(const dtc_t *T, uint32_t kvh, uint32_t nh, uint32_t hd,
    uint32_t bs, const uint32_t *qlen, const uint32_t *pos0, uint32_t n_seqs,
    uint64_t seed)
{
    uint32_t   g = nh / kvh, L = 3, layer = 2, mb = 0, nb, i, h, rows = 0;
    uint32_t   max_q = 0, *qs = malloc(n_seqs * 4), r;
    size_t     ldq = (size_t) nh * hd + 2 * kvh * hd + 1;
    size_t     ldo = (size_t) nh * hd + 5, es = esz(T->dt);
    uint64_t   s = seed;
    pool_t     p;
    uint32_t  *tables;
    void      *q, *o;
    float     *qf, *ref, *sc, scale = 1.0f / sqrtf((float) hd);
    void      *dq, *dout, *dt, *dqs, *dql, *dp0;
    char       what[80];

    for (i = 0; i < n_seqs; i++) {
        qs[i] = rows;
        rows += qlen[i];
        max_q = qlen[i] > max_q ? qlen[i] : max_q;
        if ((pos0[i] + qlen[i] + bs - 1) / bs > mb) {
            mb = (pos0[i] + qlen[i] + bs - 1) / bs;
        }
    }
    nb = mb * n_seqs + 2;
    pool_make(&p, &s, T->dt, L, kvh, hd, bs, nb);
    tables = make_tables(&s, n_seqs, mb, nb);
    q = malloc(rows * ldq * es);
    o = malloc(rows * ldo * es);
    qf = malloc(rows * ldq * 4);
    rnd_st(&s, 2, T->dt, q, qf, rows * ldq);
    dq = dev_put(q, rows * ldq * es);
    dt = dev_put(tables, (size_t) n_seqs * mb * 4);
    dqs = dev_put(qs, n_seqs * 4);
    dql = dev_put(qlen, n_seqs * 4);
    dp0 = dev_put(pos0, n_seqs * 4);
    CU(cudaMalloc(&dout, rows * ldo * es));
    CU(dw_cu_attn_prefill(dout, ldo, dq, ldq, &p.kv, layer, nh, dt, mb, dqs,
                          dql, dp0, n_seqs, max_q, scale, 0));
    dev_get(o, dout, rows * ldo * es);

    ref = malloc((size_t) nh * hd * 4);
    sc = malloc(((size_t) mb * bs + 1) * 4);
    for (i = 0; i < n_seqs; i++) {
        for (r = 0; r < qlen[i]; r++) {
            for (h = 0; h < nh; h++) {
                ref_attn(&p, layer, tables + (size_t) i * mb, pos0[i] + r + 1,
                         qf + (qs[i] + r) * ldq + (size_t) h * hd, h, g,
                         scale, sc, ref + (size_t) h * hd);
            }
            snprintf(what, sizeof(what), "prefill %s hd %u g %u seq %u pos "
                     "%u", T->name, hd, g, i, pos0[i] + r);
            close_st(what, T->dt, st_at(T->dt, o, (qs[i] + r) * ldo), ldo,
                     ref, 0, 1, (size_t) nh * hd, 2 * T->rt, T->at);
        }
    }
    free(ref); free(sc);
    cudaFree(dq); cudaFree(dout); cudaFree(dt); cudaFree(dqs); cudaFree(dql);
    cudaFree(dp0);
    pool_free(&p);
    free(tables); free(q); free(o); free(qf); free(qs);
}

static void
test_attn_prefill(void **state)
{
    /* a fresh prompt, a chunk after a cached prefix, one row */
    const uint32_t  ql[] = { 45, 70, 1 }, p0[] = { 0, 21, 100 };
    const uint32_t  ql2[] = { 33 }, p02[] = { 700 };
    size_t          k;

    NEED_DEVICE();
    for (k = 0; k < N_DTS; k++) {
        prefill_case(&DTS[k], 2, 6, 72, 7, ql, p0, 3, 21);    /* ND 32 */
        prefill_case(&DTS[k], 1, 5, 40, 16, ql, p0, 3, 22);   /* ND 16, g 5 */
        prefill_case(&DTS[k], 2, 2, 130, 5, ql2, p02, 1, 23); /* ND 64, MHA */
        /* head_dim 256: F32 staging needs 64 KiB of shared memory */
        prefill_case(&DTS[k], 1, 2, 256, 3, ql2, p02, 1, 24);
    }
}

/*
 * A storage type the kernels do not have is refused with
 * cudaErrorInvalidValue before anything is launched (so no device is
 * needed), also when there is nothing to do.
 */
static void
test_bad_dtype(void **state)
{
    dw_dtype_t   bad = (dw_dtype_t) 7;
    dw_cu_kv_t   kv;
    uint32_t     u[4] = { 0, 0, 0, 0 };
    float        f[4] = { 0, 0, 0, 0 };
    uint16_t     h[64] = { 0 };
    size_t       k;

    memset(&kv, 0, sizeof(kv));
    kv.base = h;
    kv.n_layers = 1;
    kv.n_kv_heads = 1;
    kv.head_dim = 2;
    kv.block_size = 1;
    kv.n_blocks = 1;
    kv.dtype = bad;
    assert_int_equal(dw_cu_embed(f, h, u, 1, 2, bad, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(dw_cu_swiglu(h, 2, h, h, 4, 1, 2, bad, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(dw_cu_swiglu(h, 2, h, h, 4, 0, 2, bad, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(dw_cu_residual_add(f, h, 2, NULL, 1, 2, bad, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(dw_cu_rmsnorm(h, 2, f, f, 1, 2, 1e-5f, bad, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(dw_cu_add_rmsnorm(h, 2, f, h, 2, NULL, f, 1, 2, 1e-5f,
                                       bad, 0), cudaErrorInvalidValue);
    assert_int_equal(dw_cu_rmsnorm_rows(h, 2, f, u, f, 1, 2, 1e-5f, bad, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(dw_cu_rope_kv(h, h, h, 6, 1, 1, u, u, f, &kv, 0, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(dw_cu_attn_decode(h, 2, h, 6, &kv, 0, 1, u, 1, u, 1, 1,
                                       1.0f, h, 0), cudaErrorInvalidValue);
    assert_int_equal(dw_cu_attn_prefill(h, 2, h, 6, &kv, 0, 1, u, 1, u, u, u,
                                        1, 1, 1.0f, 0),
                     cudaErrorInvalidValue);
    /* the valid ones are not refused for their dtype: with no rows there
       is nothing to launch either */
    for (k = 0; k < N_DTS; k++) {
        assert_int_equal(dw_cu_swiglu(h, 2, h, h, 4, 0, 2, DTS[k].dt, 0),
                         cudaSuccess);
        assert_int_equal(dw_cu_rmsnorm(h, 2, f, f, 0, 2, 1e-5f, DTS[k].dt,
                                       0), cudaSuccess);
        kv.dtype = DTS[k].dt;
        assert_int_equal(dw_cu_rope_kv(h, h, h, 6, 0, 1, u, u, f, &kv, 0, 0),
                         cudaSuccess);
    }
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_embed),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_rope_kv),
        cmocka_unit_test(test_attn_decode),
        cmocka_unit_test(test_attn_prefill),
        cmocka_unit_test(test_bad_dtype),
    };
    int          n = 0;
    cudaError_t  e;

    e = cudaGetDeviceCount(&n);
    have_dev = e == cudaSuccess && n > 0;
    if (!have_dev) {
        snprintf(no_dev, sizeof(no_dev), "%s",
                 e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        printf("test_cuda_kern: no CUDA device (%s): every test skipped\n",
               no_dev);
    } else {
        struct cudaDeviceProp  pr;

        if (cudaGetDeviceProperties(&pr, 0) == cudaSuccess) {
            printf("test_cuda_kern: %s (sm_%d%d)\n", pr.name, pr.major,
                   pr.minor);
        }
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
