/*
 * GPU tests of sampling on the device (dw_cu_sample, dw_cu_sample.cu)
 * against its sequential C reference (dw_sample_thr, the host-tested
 * threshold sampler) on random logits of awkward vocabulary sizes (1, 7,
 * 1000, 32001, 128256) with many exact ties: greedy tokens and logprobs
 * (1e-4) equal, kept sets equal, the RNG state advanced identically, and
 * sampled tokens equal for the same RNG state except where the draw
 * lands within float rounding of a CDF boundary (the device's expf is
 * not the host's: such rows are counted, checked to be at a boundary,
 * reported, and must stay rare). Then the cuda backend's sample op on
 * stories260K against its own logits sampled on the host. Skipped when
 * no CUDA device is present. Run from the repository root.
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

#include "dw_backend_cuda_int.h"
#include "dw_rand.h"
#include "dw_sample_thr_int.h"
#include "support/dw_tsupport_model.h"

static int   have_dev;
static char  no_dev[512];

#define CU(x)  cu_check((x), #x, __FILE__, __LINE__)

static void
cu_check(cudaError_t e, const char *what, const char *file, int line)
{
    if (e != cudaSuccess) {
        fail_msg("%s:%d: %s: %s", file, line, what, cudaGetErrorString(e));
    }
}

#define NEED_DEVICE()  do { if (!have_dev) { skip(); } } while (0)

/* row settings: cycled over the rows of a launch */
typedef struct {
    float    temperature, top_p, min_p, rp, pp, fp;
    int32_t  top_k, logprobs;
} cfg_t;

static const cfg_t  cfgs[] = {
    { 0.0f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0, 5 },        /* greedy */
    { 1.0f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 1, 20 },       /* top_k 1 */
    { 1.0f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0, -1 },       /* plain */
    { 0.7f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 5, 3 },        /* top_k */
    { 1.0f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 50, 0 },
    { 1.3f, 1.0f, 0.1f, 1.0f, 0.0f, 0.0f, 0, -1 },       /* min_p */
    { 1.0f, 0.9f, 0.0f, 1.0f, 0.0f, 0.0f, 0, 1 },        /* top_p */
    { 0.5f, 0.3f, 0.0f, 1.0f, 0.0f, 0.0f, 0, -1 },
    { 1.0f, 0.8f, 0.05f, 1.0f, 0.0f, 0.0f, 20, 20 },     /* all three */
    { 0.9f, 1.0f, 0.0f, 1.3f, 0.4f, 0.2f, 8, 2 },        /* penalties */
    { 1.0f, 0.95f, 0.0f, 0.7f, -0.5f, 0.3f, 0, -1 },
    { 0.0f, 1.0f, 0.0f, 1.2f, 0.0f, 0.5f, 0, 4 },        /* greedy + pen */
};
#define N_CFG  (sizeof(cfgs) / sizeof(cfgs[0]))

static dw_sampling_t
mk_sp(const cfg_t *c)
{
    dw_sampling_t  sp;

    dw_sampling_defaults(&sp);
    sp.temperature = c->temperature;
    sp.top_p = c->top_p;
    sp.min_p = c->min_p;
    sp.top_k = c->top_k;
    sp.repetition_penalty = c->rp;
    sp.presence_penalty = c->pp;
    sp.frequency_penalty = c->fp;
    sp.logprobs = c->logprobs;
    return sp;
}

#define HIST  96

typedef struct {
    uint32_t   mism, sampled, boundary_ok, top_p_sets;
} tally_t;

/*
 * Kept sets may differ only by top_p's threshold landing on the other
 * side of a weight whose mass is within the device's expf rounding of
 * the target: then one set holds the other plus tokens of one scaled
 * logit (the threshold's weight). Everything else must match exactly.
 */
static void
check_set_diff(dw_sampler_t *s, const float *lr, const dw_sampling_t *sp,
    const uint32_t *tok, const uint8_t *kref, const uint8_t *kg, uint32_t V,
    uint32_t r)
{
    uint32_t  i, n_ref = 0, n_gpu = 0;
    float     xv = NAN;
    uint8_t   *kk = malloc(V);

    assert_non_null(kk);
    if (!(sp->top_p > 0.0f && sp->top_p < 1.0f)) {
        for (i = 0; i < V && kref[i] == kg[i]; i++) {
            /* void */
        }
        fail_msg("V %u row %u: kept sets differ at id %u (ref %u gpu %u)",
                 V, r, i, kref[i], kg[i]);
    }
    /* the reference's scaled logits: in s->x after a set computation */
    dw_sample_thr_set(s, lr, sp, tok, 40, HIST - 40, kk);
    for (i = 0; i < V; i++) {
        n_ref += kref[i];
        n_gpu += kg[i];
    }
    for (i = 0; i < V; i++) {
        if (kref[i] == kg[i]) {
            continue;
        }
        /* only one direction, all extras of one value */
        assert_true(n_ref > n_gpu ? kref[i] : kg[i]);
        if (isnan(xv)) {
            xv = s->x[i];
        }
        assert_true(s->x[i] == xv);
    }
    print_message("V %u row %u: top_p sets %u vs %u tokens (threshold "
                  "within expf rounding)\n", V, r, n_ref, n_gpu);
    free(kk);
}

/*
 * A token mismatch is accepted only at a CDF boundary: the two tokens
 * neighbours among the kept ids (id order) and u * mass within 1e-5 of
 * the mass up to the lower of them (weights as the reference computes
 * them from its scaled logits s->x).
 */
static int
at_boundary(const dw_sampler_t *s, const uint8_t *kept, uint32_t a,
    uint32_t b, double u)
{
    const float  *x = s->x;
    uint32_t      i, lo = a < b ? a : b, hi = a < b ? b : a, between = 0;
    float         m = -INFINITY;
    double        z = 0.0, cum = 0.0;

    for (i = 0; i < s->vocab; i++) {
        if (kept[i] && x[i] > m) {
            m = x[i];
        }
    }
    for (i = 0; i < s->vocab; i++) {
        if (!kept[i]) {
            continue;
        }
        z += expf(x[i] - m);
        if (i <= lo) {
            cum += expf(x[i] - m);
        }
        if (i > lo && i < hi && expf(x[i] - m) > 0.0f) {
            between++;
        }
    }
    return between == 0 && fabs(u * z - cum) <= 1e-5 * z;
}

static void
run_vocab(uint32_t V, uint32_t rows, uint32_t iters, uint64_t seed,
    tally_t *t)
{
    dw_sampler_t          s;
    dw_cu_sample_param_t *par;
    dw_cu_sample_out_t   *out, *out_d;
    dw_cu_sample_param_t *par_d;
    dw_sample_out_t       ref;
    dw_sampling_t        *sp;
    dw_rng_t             *rng, r2, uc;
    float                *l, *l_d, *work_d;
    uint8_t              *kept, *kept_d, *kref;
    uint32_t             *tok, *pen, *pen_d, it, r, i, j, off;
    uint64_t              rs = seed;

    assert_int_equal(dw_sampler_init(&s, V), 0);
    l = malloc((size_t) rows * V * sizeof(float));
    kept = malloc((size_t) rows * V);
    kref = malloc(V);
    sp = calloc(rows, sizeof(*sp));
    rng = calloc(rows, sizeof(*rng));
    par = calloc(rows, sizeof(*par));
    out = calloc(rows, sizeof(*out));
    tok = malloc((size_t) rows * HIST * sizeof(uint32_t));
    pen = malloc((size_t) rows * 2 * HIST * sizeof(uint32_t));
    assert_true(l && kept && kref && sp && rng && par && out && tok && pen);
    CU(cudaMalloc((void **) &l_d, (size_t) rows * V * sizeof(float)));
    CU(cudaMalloc((void **) &work_d, (size_t) rows * V * sizeof(float)));
    CU(cudaMalloc((void **) &kept_d, (size_t) rows * V));
    CU(cudaMalloc((void **) &par_d, rows * sizeof(*par_d)));
    CU(cudaMalloc((void **) &out_d, rows * sizeof(*out_d)));
    CU(cudaMalloc((void **) &pen_d, (size_t) rows * 2 * HIST * 4));

    for (it = 0; it < iters; it++) {
        off = 0;
        for (r = 0; r < rows; r++) {
            float  *lr = l + (size_t) r * V;
            int     quant = (r + it) % 2 == 0;

            for (i = 0; i < V; i++) {
                lr[i] = 14.0f * ((float) (dw_splitmix64(&rs) >> 40)
                                 / 16777216.0f - 0.5f);
                if (quant) {
                    lr[i] = roundf(lr[i] * 2.0f) / 2.0f;   /* ties */
                }
            }
            for (i = 0; i < HIST; i++) {
                tok[r * HIST + i] = (uint32_t) (dw_splitmix64(&rs)
                                                % (V < 50 ? V : 50));
            }
            sp[r] = mk_sp(&cfgs[(r + it) % N_CFG]);
            dw_rng_seed(&rng[r], seed * 1000 + it * 100 + r);
            j = 0;
            if (dw_sample_has_pen(&sp[r])) {
                j = dw_sample_pen_list(tok + r * HIST, 40, HIST - 40, V,
                                       s.count, pen + 2 * off);
            }
            dw_cu_sample_param_fill(&par[r], &sp[r], &rng[r], off, j);
            off += j;
        }
        CU(cudaMemcpy(l_d, l, (size_t) rows * V * sizeof(float),
                      cudaMemcpyHostToDevice));
        CU(cudaMemcpy(par_d, par, rows * sizeof(*par),
                      cudaMemcpyHostToDevice));
        CU(cudaMemcpy(pen_d, pen, (size_t) off * 2 * sizeof(uint32_t),
                      cudaMemcpyHostToDevice));
        CU(dw_cu_sample(out_d, work_d, l_d, par_d, pen_d, kept_d, rows, V,
                        0));
        CU(cudaDeviceSynchronize());
        CU(cudaMemcpy(out, out_d, rows * sizeof(*out),
                      cudaMemcpyDeviceToHost));
        CU(cudaMemcpy(kept, kept_d, (size_t) rows * V,
                      cudaMemcpyDeviceToHost));

        for (r = 0; r < rows; r++) {
            const float  *lr = l + (size_t) r * V;
            const uint8_t *kg = kept + (size_t) r * V;
            int           greedy = par[r].greedy, set_diff = 0;

            /* the kept set */
            dw_sample_thr_set(&s, lr, &sp[r], tok + r * HIST, 40, HIST - 40,
                              kref);
            if (memcmp(kref, kg, V) != 0) {
                check_set_diff(&s, lr, &sp[r], tok + r * HIST, kref, kg, V,
                               r);
                t->top_p_sets++;
                set_diff = 1;   /* another set: the draw may differ too */
            }
            /* the draw */
            r2 = rng[r];
            uc = rng[r];
            dw_sample_thr(&s, lr, &sp[r], &r2, tok + r * HIST, 40,
                          HIST - 40, &ref);
            assert_memory_equal(out[r].rng, r2.s, sizeof(r2.s));
            assert_int_equal(out[r].drew, !greedy);
            if (greedy) {
                assert_int_equal(out[r].token, ref.token);
            } else {
                t->sampled++;
                if (out[r].token != ref.token && !set_diff) {
                    double  u = dw_rng_uniform(&uc);

                    t->mism++;
                    print_message("V %u row %u: gpu %u ref %u (u %.17g)\n",
                                  V, r, out[r].token, ref.token, u);
                    assert_true(kg[out[r].token]);
                    assert_true(at_boundary(&s, kref, out[r].token,
                                            ref.token, u));
                    t->boundary_ok++;
                }
            }
            /* logprobs of the raw logits; the token's from the gpu's */
            if (sp[r].logprobs >= 0) {
                double  mx = lr[0], z = 0.0;

                for (i = 1; i < V; i++) {
                    mx = lr[i] > mx ? lr[i] : mx;
                }
                for (i = 0; i < V; i++) {
                    z += exp(lr[i] - mx);
                }
                assert_float_equal(out[r].logprob,
                                   lr[out[r].token] - mx - log(z), 1e-4);
                assert_int_equal(out[r].n_top, ref.n_top);
                for (j = 0; j < ref.n_top; j++) {
                    assert_int_equal(out[r].top_ids[j], ref.top_ids[j]);
                    assert_float_equal(out[r].top_logprobs[j],
                                       ref.top_logprobs[j], 1e-4);
                }
            } else {
                assert_int_equal(out[r].n_top, 0);
            }
        }
    }
    cudaFree(l_d);
    cudaFree(work_d);
    cudaFree(kept_d);
    cudaFree(par_d);
    cudaFree(out_d);
    cudaFree(pen_d);
    free(l);
    free(kept);
    free(kref);
    free(sp);
    free(rng);
    free(par);
    free(out);
    free(tok);
    free(pen);
    dw_sampler_free(&s);
}

static void
test_kernel_vs_ref(void **state)
{
    static const uint32_t  vocabs[] = { 1, 7, 1000, 32001, 128256 };
    tally_t                t = { 0, 0, 0, 0 };
    uint32_t               i;

    (void) state;
    NEED_DEVICE();
    for (i = 0; i < sizeof(vocabs) / sizeof(vocabs[0]); i++) {
        run_vocab(vocabs[i], vocabs[i] > 100000 ? 24 : 36,
                  vocabs[i] > 100000 ? 2 : 6, 7 + i, &t);
    }
    print_message("sampled rows %u, tokens differing at a CDF boundary "
                  "%u, top_p sets at the threshold's rounding %u\n",
                  t.sampled, t.mism, t.top_p_sets);
    assert_true(t.sampled > 300);
    /* at most 1 in 100 sampled rows each, each checked */
    assert_true(t.mism * 100 <= t.sampled);
    assert_true(t.top_p_sets * 100 <= t.sampled);
}

/* launcher arguments */
static void
test_args(void **state)
{
    (void) state;
    NEED_DEVICE();
    assert_int_equal(dw_cu_sample(NULL, NULL, NULL, NULL, NULL, NULL, 0, 10,
                                  0), cudaSuccess);
    assert_int_equal(dw_cu_sample(NULL, NULL, NULL, NULL, NULL, NULL, 1, 10,
                                  0), cudaErrorInvalidValue);
}

/*
 * The cuda backend's sample op on stories260K: the logits the forward
 * pass returns, sampled by the reference on the host, against the op
 * (the same step, sampled on the device) for greedy and seeded rows.
 */
static void
test_backend_sample_op(void **state)
{
    static const uint32_t  blocks[2][4] = { { 5, 9, 2, 30 },
                                            { 11, 1, 40, 7 } };
    dw_model_t            *m;
    dw_backend_t          *cu;
    dw_backend_opts_t      o;
    dw_seq_step_t          ss[2];
    dw_step_t              st;
    dw_sampling_t          sp[2];
    dw_sample_row_t        rows[2];
    dw_sample_out_t        out[2], ref;
    dw_sampler_t           s;
    dw_rng_t               rg[2], rh[2];
    float                 *logits;
    char                   err[512];
    uint32_t               V, i, trial, mism = 0;

    (void) state;
    NEED_DEVICE();
    if (dw_model_load(DW_TS_STORIES, &m, err, sizeof(err)) != 0) {
        fail_msg("load: %s", err);
    }
    memset(&o, 0, sizeof(o));
    o.block_size = 4;
    o.n_blocks = 64;
    o.dtype = DW_DT_BF16;
    if (dw_backend_cuda_create(m, &o, &cu, err, sizeof(err)) != 0) {
        fail_msg("cuda: %s", err);
    }
    assert_non_null(cu->ops->sample);
    V = m->cfg.vocab_size;
    logits = malloc(2 * V * sizeof(float));
    assert_non_null(logits);
    assert_int_equal(dw_sampler_init(&s, V), 0);

    for (trial = 0; trial < 16; trial++) {
        for (i = 0; i < 2; i++) {
            ss[i] = (dw_seq_step_t) { dw_ts_stories_prompt, 5, 0, blocks[i],
                                      2, 1 };
            dw_sampling_defaults(&sp[i]);
            sp[i].temperature = i == 0 && trial % 2 == 0 ? 0.0f : 0.9f;
            sp[i].top_k = trial % 3 == 0 ? 0 : 40;
            sp[i].top_p = trial % 4 == 1 ? 0.9f : 1.0f;
            sp[i].repetition_penalty = trial % 5 == 2 ? 1.3f : 1.0f;
            sp[i].logprobs = (int32_t) (trial % 6);
            dw_rng_seed(&rg[i], 100 + trial * 2 + i);
            rh[i] = rg[i];
            rows[i] = (dw_sample_row_t) { &sp[i], &rg[i],
                                          dw_ts_stories_prompt, 5, 0 };
        }
        st = (dw_step_t) { ss, 2, 10, 2, logits, 0 };
        assert_int_equal(cu->ops->forward(cu, &st), 0);
        assert_int_equal(cu->ops->sample(cu, &st, rows, out), 0);
        for (i = 0; i < 2; i++) {
            dw_sample_thr(&s, logits + (size_t) i * V, &sp[i], &rh[i],
                          dw_ts_stories_prompt, 5, 0, &ref);
            assert_memory_equal(&rh[i], &rg[i], sizeof(rh[i]));
            if (out[i].token != ref.token) {
                assert_true(sp[i].temperature > 0.0f);
                mism++;
            }
            assert_int_equal(out[i].n_top, ref.n_top);
            assert_float_equal(out[i].logprob,
                               ref.token == out[i].token ? ref.logprob
                               : out[i].logprob, 1e-4);
            if (ref.n_top > 0) {
                assert_int_equal(out[i].top_ids[0], ref.top_ids[0]);
                assert_float_equal(out[i].top_logprobs[0],
                                   ref.top_logprobs[0], 1e-4);
            }
        }
    }
    print_message("backend: %u of 32 rows sampled differently (CDF "
                  "boundary)\n", mism);
    assert_true(mism <= 1);
    dw_sampler_free(&s);
    free(logits);
    cu->ops->destroy(cu);
    dw_model_free(m);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_kernel_vs_ref),
        cmocka_unit_test(test_backend_sample_op),
    };

    have_dev = dw_backend_cuda_devices(no_dev, sizeof(no_dev)) > 0;
    if (!have_dev) {
        printf("test_cuda_sample: %s: every test skipped\n", no_dev);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
