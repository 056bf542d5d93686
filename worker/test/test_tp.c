/*
 * The tensor-parallel shard plan (dw_tp.c), proved on the CPU in F32: one
 * full transformer layer (RMSNorm, q/k/v, RoPE, causal GQA attention over
 * a few positions, o, residual, RMSNorm, gate/up, SwiGLU, down, residual)
 * computed unsharded, and again as N ranks would on N GPUs: each rank
 * multiplies ONLY the weight rows / columns its plan names, its partial o
 * and down outputs are summed (the all-reduce) before each residual add.
 * The two agree within 1e-4 relative for every valid N, on random weights
 * of an awkward GQA config and on stories260K's layer 0; the lm_head's
 * vocab slices, concatenated, give the full logits. Sizes that do not fit
 * are refused with the numbers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dw_kern_int.h"
#include "dw_model_int.h"
#include "dw_tp.h"
#include "support/dw_tsupport_model.h"

#define P     5            /* tokens in the test prompt */
#define POS0  3            /* position of the first one */

typedef struct {
    dw_config_t  cfg;
    uint32_t     h, hd, H, K, I, V;
    float       *wq, *wk, *wv, *wo, *wg, *wu, *wd, *lm, *an, *fn;
    float       *inv;      /* [hd / 2] */
} lw_t;

typedef struct {
    uint32_t  lo, n;
} rg_t;

static float *
f32_mat(const dw_mat_t *m)
{
    float  *f = malloc((size_t) m->rows * m->cols * sizeof(float));

    assert_non_null(f);
    dw_to_f32(f, m->data, m->dtype, (size_t) m->rows * m->cols);
    return f;
}

static float *
rnd(size_t n, float scale, uint64_t *s)
{
    float   *f = malloc(n * sizeof(float));
    size_t   i;

    assert_non_null(f);
    for (i = 0; i < n; i++) {
        f[i] = dw_ts_randf(s) * scale;
    }
    return f;
}

static void
lw_init(lw_t *w, const dw_config_t *cfg)
{
    w->cfg = *cfg;
    w->h = cfg->hidden_size;
    w->hd = cfg->head_dim;
    w->H = cfg->n_heads;
    w->K = cfg->n_kv_heads;
    w->I = cfg->intermediate_size;
    w->V = cfg->vocab_size;
    w->inv = malloc(w->hd / 2 * sizeof(float));
    assert_non_null(w->inv);
    dw_kern_rope_freqs(cfg, w->inv);
}

static void
lw_random(lw_t *w, uint32_t kv_heads, uint64_t seed)
{
    dw_config_t  cfg;
    uint64_t     s = seed;
    size_t       h = 48, hd = 8, H = 6, I = 80, V = 37;

    memset(&cfg, 0, sizeof(cfg));
    cfg.hidden_size = h;
    cfg.head_dim = hd;
    cfg.n_heads = H;
    cfg.n_kv_heads = kv_heads;
    cfg.intermediate_size = I;
    cfg.vocab_size = V;
    cfg.n_layers = 1;
    cfg.rms_eps = 1e-5f;
    cfg.rope_theta = 10000.0f;
    lw_init(w, &cfg);
    w->wq = rnd(H * hd * h, 0.3f, &s);
    w->wk = rnd(kv_heads * hd * h, 0.3f, &s);
    w->wv = rnd(kv_heads * hd * h, 0.3f, &s);
    w->wo = rnd(h * H * hd, 0.2f, &s);
    w->wg = rnd(I * h, 0.2f, &s);
    w->wu = rnd(I * h, 0.2f, &s);
    w->wd = rnd(h * I, 0.2f, &s);
    w->lm = rnd(V * h, 0.2f, &s);
    w->an = rnd(h, 1.0f, &s);
    w->fn = rnd(h, 1.0f, &s);
}

static void
lw_model(lw_t *w, const dw_model_t *m)
{
    const dw_layer_t  *L = &m->layers[0];

    lw_init(w, &m->cfg);
    w->wq = f32_mat(&L->q);
    w->wk = f32_mat(&L->k);
    w->wv = f32_mat(&L->v);
    w->wo = f32_mat(&L->o);
    w->wg = f32_mat(&L->gate);
    w->wu = f32_mat(&L->up);
    w->wd = f32_mat(&L->down);
    w->lm = f32_mat(&m->lm_head);
    w->an = malloc(w->h * sizeof(float));
    w->fn = malloc(w->h * sizeof(float));
    assert_non_null(w->an);
    assert_non_null(w->fn);
    memcpy(w->an, L->attn_norm, w->h * sizeof(float));
    memcpy(w->fn, m->final_norm, w->h * sizeof(float));
}

static void
lw_free(lw_t *w)
{
    free(w->wq);
    free(w->wk);
    free(w->wv);
    free(w->wo);
    free(w->wg);
    free(w->wu);
    free(w->wd);
    free(w->lm);
    free(w->an);
    free(w->fn);
    free(w->inv);
}

/* y[i][j] = sum_c x[i][c] * W[(r.lo + j) * ldw + c0 + c], j < r.n,
   c < k: x . (rows r, columns [c0, c0 + k) of W)^T */
static void
mm(float *y, const float *x, uint32_t m, uint32_t k, const float *W,
    size_t ldw, rg_t r, uint32_t c0)
{
    uint32_t  i, j, c;

    for (i = 0; i < m; i++) {
        for (j = 0; j < r.n; j++) {
            const float  *wr = W + (size_t) (r.lo + j) * ldw + c0;
            double        s = 0;

            for (c = 0; c < k; c++) {
                s += (double) x[(size_t) i * k + c] * wr[c];
            }
            y[(size_t) i * r.n + j] = (float) s;
        }
    }
}

static void
rmsnorm(float *y, const float *x, const float *g, uint32_t n, float eps)
{
    double    s = 0;
    uint32_t  i;

    for (i = 0; i < n; i++) {
        s += (double) x[i] * x[i];
    }
    s = 1.0 / sqrt(s / n + eps);
    for (i = 0; i < n; i++) {
        y[i] = (float) (x[i] * s) * g[i];
    }
}

/*
 * One rank's attention: q rows q, K/V rows kv (whole heads), o columns
 * oc; out[P][h] is its partial o_proj output. The local GQA mapping is
 * the kernels': local q head j reads local KV head j / (nh / nkv).
 */
static void
attn_part(const lw_t *w, const float *xn, rg_t q, rg_t kv, rg_t oc,
    float *out)
{
    uint32_t  hd = w->hd, nh = q.n / hd, nkv = kv.n / hd, g, t, s, j, d;
    float    *Q, *Kc, *Vc, *att, sc[P];

    assert_true(nh > 0 && nkv > 0 && nh % nkv == 0);
    assert_int_equal(oc.n, q.n);
    g = nh / nkv;
    Q = malloc((size_t) P * q.n * sizeof(float));
    Kc = malloc((size_t) P * kv.n * sizeof(float));
    Vc = malloc((size_t) P * kv.n * sizeof(float));
    att = calloc((size_t) P * q.n, sizeof(float));
    assert_true(Q && Kc && Vc && att);
    mm(Q, xn, P, w->h, w->wq, w->h, q, 0);
    mm(Kc, xn, P, w->h, w->wk, w->h, kv, 0);
    mm(Vc, xn, P, w->h, w->wv, w->h, kv, 0);
    for (t = 0; t < P; t++) {
        for (j = 0; j < nh; j++) {
            dw_kern_rope(Q + (size_t) t * q.n + j * hd, hd, w->inv, POS0 + t);
        }
        for (j = 0; j < nkv; j++) {
            dw_kern_rope(Kc + (size_t) t * kv.n + j * hd, hd, w->inv,
                         POS0 + t);
        }
    }
    for (t = 0; t < P; t++) {
        for (j = 0; j < nh; j++) {
            const float  *qv = Q + (size_t) t * q.n + j * hd;
            uint32_t      kh = j / g;
            double        mx = -1e30, sum = 0;

            for (s = 0; s <= t; s++) {
                double  dot = 0;

                for (d = 0; d < hd; d++) {
                    dot += (double) qv[d] * Kc[(size_t) s * kv.n + kh * hd + d];
                }
                sc[s] = (float) (dot / sqrt((double) hd));
                mx = sc[s] > mx ? sc[s] : mx;
            }
            for (s = 0; s <= t; s++) {
                sc[s] = (float) exp(sc[s] - mx);
                sum += sc[s];
            }
            for (s = 0; s <= t; s++) {
                for (d = 0; d < hd; d++) {
                    att[(size_t) t * q.n + j * hd + d] += (float) (sc[s] / sum)
                        * Vc[(size_t) s * kv.n + kh * hd + d];
                }
            }
        }
    }
    /* out = att . Wo[:, oc]^T; Wo is [h][H * hd] */
    mm(out, att, P, oc.n, w->wo, (size_t) w->H * hd,
       (rg_t) { 0, w->h }, oc.lo);
    free(Q);
    free(Kc);
    free(Vc);
    free(att);
}

/* One rank's MLP: gate/up rows gu, down columns dc; out[P][h] partial. */
static void
mlp_part(const lw_t *w, const float *xn, rg_t gu, rg_t dc, float *out)
{
    float    *G, *U;
    size_t    i, n = (size_t) P * gu.n;

    assert_int_equal(gu.n, dc.n);
    G = malloc(n * sizeof(float));
    U = malloc(n * sizeof(float));
    assert_true(G && U);
    mm(G, xn, P, w->h, w->wg, w->h, gu, 0);
    mm(U, xn, P, w->h, w->wu, w->h, gu, 0);
    for (i = 0; i < n; i++) {
        G[i] = G[i] / (1.0f + expf(-G[i])) * U[i];
    }
    mm(out, G, P, dc.n, w->wd, w->I, (rg_t) { 0, w->h }, dc.lo);
    free(G);
    free(U);
}

static void
inputs(const lw_t *w, float *x, uint64_t seed)
{
    uint64_t  s = seed;
    size_t    i;

    for (i = 0; i < (size_t) P * w->h; i++) {
        x[i] = dw_ts_randf(&s);
    }
}

static double
rel_err(const float *got, const float *want, size_t n)
{
    double  mx = 0, d = 0;
    size_t  i;

    for (i = 0; i < n; i++) {
        mx = fabs(want[i]) > mx ? fabs(want[i]) : mx;
        d = fabs(got[i] - want[i]) > d ? fabs(got[i] - want[i]) : d;
    }
    return mx > 0 ? d / mx : d;
}

/*
 * The layer (and logits of its output) computed whole, then over n ranks
 * as the plan says; compared. Also checks the plan's ranges tile the
 * model (heads, intermediate, vocab) and the KV heads match the q heads'
 * GQA groups.
 */
static void
layer_vs_shards(const lw_t *w, uint32_t n)
{
    size_t          hsz = (size_t) P * w->h;
    float          *x = malloc(hsz * 4), *xn = malloc(hsz * 4),
                   *x1 = malloc(hsz * 4), *ref = malloc(hsz * 4),
                   *got = malloc(hsz * 4), *acc = malloc(hsz * 4),
                   *part = malloc(hsz * 4),
                   *lref = malloc((size_t) P * w->V * 4),
                   *lgot = malloc((size_t) P * w->V * 4),
                   *lpart = malloc((size_t) P * w->V * 4);
    dw_tp_shard_t   sh[DW_TP_MAX];
    uint32_t        r, t, i, j, next_h = 0, next_i = 0, next_v = 0;
    char            err[160];
    rg_t            all_q = { 0, w->H * w->hd }, all_kv = { 0, w->K * w->hd },
                    all_i = { 0, w->I };
    size_t          kv_sum = 0;
    double          e;

    assert_true(x && xn && x1 && ref && got && acc && part && lref && lgot
                && lpart);
    inputs(w, x, 77 + n);
    for (r = 0; r < n; r++) {
        assert_int_equal(dw_tp_shard(&w->cfg, n, r, 4, 2, &sh[r], err,
                                     sizeof(err)), 0);
        /* the ranges tile the model, in rank order */
        assert_int_equal(sh[r].heads.lo, next_h);
        assert_int_equal(sh[r].inter.lo, next_i);
        assert_int_equal(sh[r].vocab.lo, next_v);
        assert_true(sh[r].vocab.n <= sh[r].vocab_pad);
        next_h += sh[r].heads.n;
        next_i += sh[r].inter.n;
        next_v += sh[r].vocab.n;
        /* every q head's KV head (j * K / H) is among the rank's */
        for (j = sh[r].heads.lo; j < sh[r].heads.lo + sh[r].heads.n; j++) {
            uint32_t  kh = j * w->K / w->H;

            assert_true(kh >= sh[r].kv_heads.lo
                        && kh < sh[r].kv_heads.lo + sh[r].kv_heads.n);
        }
        assert_int_equal(sh[r].kv_replicated, w->K < n);
        kv_sum += sh[r].kv_block_bytes;
    }
    assert_int_equal(next_h, w->H);
    assert_int_equal(next_i, w->I);
    assert_int_equal(next_v, w->V);
    /* the KV pools: split n ways, or one head each when replicated */
    assert_int_equal(kv_sum, (size_t) w->cfg.n_layers * 2 * 4 * w->hd * 2
                             * (w->K >= n ? w->K : n));

    /* unsharded */
    for (t = 0; t < P; t++) {
        rmsnorm(xn + t * w->h, x + t * w->h, w->an, w->h, w->cfg.rms_eps);
    }
    attn_part(w, xn, all_q, all_kv, all_q, part);
    for (i = 0; i < hsz; i++) {
        x1[i] = x[i] + part[i];
    }
    for (t = 0; t < P; t++) {
        rmsnorm(xn + t * w->h, x1 + t * w->h, w->fn, w->h, w->cfg.rms_eps);
    }
    mlp_part(w, xn, all_i, all_i, part);
    for (i = 0; i < hsz; i++) {
        ref[i] = x1[i] + part[i];
    }

    /* sharded: each rank's partial sums, added (the all-reduce) */
    for (t = 0; t < P; t++) {
        rmsnorm(xn + t * w->h, x + t * w->h, w->an, w->h, w->cfg.rms_eps);
    }
    memset(acc, 0, hsz * 4);
    for (r = 0; r < n; r++) {
        rg_t  q = { sh[r].q_rows.lo, sh[r].q_rows.n },
              kv = { sh[r].k_rows.lo, sh[r].k_rows.n },
              oc = { sh[r].o_cols.lo, sh[r].o_cols.n };

        assert_memory_equal(&sh[r].v_rows, &sh[r].k_rows,
                            sizeof(dw_tp_range_t));
        attn_part(w, xn, q, kv, oc, part);
        for (i = 0; i < hsz; i++) {
            acc[i] += part[i];
        }
    }
    for (i = 0; i < hsz; i++) {
        x1[i] = x[i] + acc[i];
    }
    for (t = 0; t < P; t++) {
        rmsnorm(xn + t * w->h, x1 + t * w->h, w->fn, w->h, w->cfg.rms_eps);
    }
    memset(acc, 0, hsz * 4);
    for (r = 0; r < n; r++) {
        rg_t  gu = { sh[r].gate_rows.lo, sh[r].gate_rows.n },
              dc = { sh[r].down_cols.lo, sh[r].down_cols.n };

        assert_memory_equal(&sh[r].up_rows, &sh[r].gate_rows,
                            sizeof(dw_tp_range_t));
        mlp_part(w, xn, gu, dc, part);
        for (i = 0; i < hsz; i++) {
            acc[i] += part[i];
        }
    }
    for (i = 0; i < hsz; i++) {
        got[i] = x1[i] + acc[i];
    }
    e = rel_err(got, ref, hsz);
    if (e > 1e-4) {
        fail_msg("N = %u: layer output off by %g relative", n, e);
    }

    /* logits of the layer's output: whole vs vocab slices concatenated */
    for (t = 0; t < P; t++) {
        rmsnorm(xn + t * w->h, ref + t * w->h, w->fn, w->h, w->cfg.rms_eps);
    }
    mm(lref, xn, P, w->h, w->lm, w->h, (rg_t) { 0, w->V }, 0);
    for (r = 0; r < n; r++) {
        rg_t  lr = { sh[r].lm_rows.lo, sh[r].lm_rows.n };

        mm(lpart, xn, P, w->h, w->lm, w->h, lr, 0);
        for (t = 0; t < P; t++) {
            memcpy(lgot + (size_t) t * w->V + sh[r].vocab.lo,
                   lpart + (size_t) t * lr.n, lr.n * sizeof(float));
        }
    }
    e = rel_err(lgot, lref, (size_t) P * w->V);
    if (e > 1e-6) {
        fail_msg("N = %u: logits off by %g relative", n, e);
    }
    free(x);
    free(xn);
    free(x1);
    free(ref);
    free(got);
    free(acc);
    free(part);
    free(lref);
    free(lgot);
    free(lpart);
}

/* hidden 48, 6 heads, 2 or 3 KV heads, head_dim 8, intermediate 80,
   vocab 37: N = 3 splits 80 and 37 unevenly, N = 6 replicates KV heads */
static void
test_random_gqa(void **state)
{
    static const struct {
        uint32_t  kv, n;
        int       ok;
    } cases[] = {
        { 2, 1, 1 }, { 2, 2, 1 }, { 2, 3, 0 }, { 2, 6, 1 },
        { 3, 1, 1 }, { 3, 2, 0 }, { 3, 3, 1 }, { 3, 6, 1 },
    };
    size_t  i;
    char    err[160];

    (void) state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lw_t  w;

        lw_random(&w, cases[i].kv, 1000 + i);
        if (cases[i].ok) {
            layer_vs_shards(&w, cases[i].n);
        } else {
            assert_int_equal(dw_tp_check(&w.cfg, cases[i].n, err,
                                         sizeof(err)), -1);
            assert_non_null(strstr(err, "does not fit n_kv_heads"));
        }
        lw_free(&w);
    }
}

/* stories260K layer 0 (hidden 64, 8 heads, 4 KV heads, intermediate 172,
   vocab 512): N = 1, 2, 4, and 8 (KV heads replicated); 3 refused */
static void
test_stories_layer0(void **state)
{
    static const uint32_t  ns[] = { 1, 2, 4, 8 };
    dw_model_t            *m;
    char                   err[256];
    size_t                 i;

    (void) state;
    assert_int_equal(dw_model_load(DW_TS_STORIES, &m, err, sizeof(err)), 0);
    for (i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
        lw_t  w;

        lw_model(&w, m);
        layer_vs_shards(&w, ns[i]);
        lw_free(&w);
    }
    assert_int_equal(dw_tp_check(dw_model_config(m), 3, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "--tensor-parallel-size 3 does not divide "
                        "n_heads 8");
    dw_model_free(m);
}

/* the replicated case by hand: 8 heads, 4 KV heads, 8 ranks */
static void
test_replicated_kv(void **state)
{
    dw_config_t    cfg;
    dw_tp_shard_t  s;
    char           err[160];
    uint32_t       r;

    (void) state;
    memset(&cfg, 0, sizeof(cfg));
    cfg.n_heads = 8;
    cfg.n_kv_heads = 4;
    cfg.head_dim = 8;
    cfg.hidden_size = 64;
    cfg.intermediate_size = 172;
    cfg.vocab_size = 512;
    cfg.n_layers = 5;
    for (r = 0; r < 8; r++) {
        assert_int_equal(dw_tp_shard(&cfg, 8, r, 16, 2, &s, err, sizeof(err)),
                         0);
        assert_int_equal(s.heads.lo, r);
        assert_int_equal(s.heads.n, 1);
        assert_int_equal(s.kv_heads.lo, r / 2);
        assert_int_equal(s.kv_heads.n, 1);
        assert_int_equal(s.k_rows.lo, r / 2 * 8);
        assert_int_equal(s.k_rows.n, 8);
        assert_int_equal(s.o_cols.lo, r * 8);
        assert_int_equal(s.o_cols.n, 8);
        assert_int_equal(s.kv_replicated, 1);
        /* 5 layers x K,V x 16 tokens x 1 head x 8 x 2 bytes */
        assert_int_equal(s.kv_block_bytes, 5 * 2 * 16 * 8 * 2);
        /* 172 = 21 or 22 per rank, 512 = 64 each */
        assert_int_equal(s.inter.lo, r * 172 / 8);
        assert_int_equal(s.vocab.n, 64);
        assert_int_equal(s.vocab_pad, 64);
    }
}

static void
test_errors(void **state)
{
    dw_config_t    cfg;
    dw_tp_shard_t  s;
    char           err[200];

    (void) state;
    memset(&cfg, 0, sizeof(cfg));
    cfg.n_heads = 32;
    cfg.n_kv_heads = 8;
    cfg.head_dim = 128;
    cfg.intermediate_size = 14336;
    cfg.vocab_size = 128256;
    cfg.n_layers = 32;
    assert_int_equal(dw_tp_check(&cfg, 8, err, sizeof(err)), 0);
    assert_int_equal(dw_tp_check(&cfg, 16, err, sizeof(err)), 0);
    assert_int_equal(dw_tp_check(&cfg, 3, err, sizeof(err)), -1);
    assert_string_equal(err, "--tensor-parallel-size 3 does not divide "
                        "n_heads 32");
    assert_int_equal(dw_tp_check(&cfg, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--tensor-parallel-size 0: want 1..64"));
    assert_int_equal(dw_tp_check(&cfg, 65, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--tensor-parallel-size 65"));
    assert_int_equal(dw_tp_shard(&cfg, 4, 4, 16, 2, &s, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "tensor parallel: rank 4 of 4");
    /* 12 heads, 3 KV heads: 4 ranks neither divide 3 nor are a multiple */
    cfg.n_heads = 12;
    cfg.n_kv_heads = 3;
    assert_int_equal(dw_tp_check(&cfg, 4, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--tensor-parallel-size 4 does not fit "
                            "n_kv_heads 3"));
    /* too small to split */
    cfg.n_heads = 4;
    cfg.n_kv_heads = 4;
    cfg.intermediate_size = 2;
    assert_int_equal(dw_tp_check(&cfg, 4, err, sizeof(err)), -1);
    assert_string_equal(err, "--tensor-parallel-size 4 exceeds "
                        "intermediate_size 2");
    cfg.intermediate_size = 64;
    cfg.vocab_size = 3;
    assert_int_equal(dw_tp_check(&cfg, 4, err, sizeof(err)), -1);
    assert_string_equal(err, "--tensor-parallel-size 4 exceeds vocab_size 3");
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_random_gqa),
        cmocka_unit_test(test_stories_layer0),
        cmocka_unit_test(test_replicated_kv),
        cmocka_unit_test(test_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
