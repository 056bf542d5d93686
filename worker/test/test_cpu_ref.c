/*
 * The cpu backend against a naive reference forward pass written here
 * from the Hugging Face modeling code (double precision, contiguous KV,
 * the whole sequence recomputed for every position), on random models of
 * each supported layout: Llama with GQA and untied lm_head, Qwen2 (q/k/v
 * biases, tied), Qwen3 (q/k RMSNorm, head_dim != hidden/heads, BF16),
 * Mistral with llama3 RoPE scaling (F16). Logits of every position are
 * compared after chunked prefill and decode through a shuffled block
 * table. dynamo-mkmodel is found as in test_model.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <libgen.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dw_backend.h"
#include "dw_kern_int.h"
#include "dw_model_int.h"
#include "support/dw_tsupport_model.h"

static char  mkmodel[4096];
static char  tmpdir[256];

static double
W(const dw_mat_t *m, uint32_t r, uint32_t c)
{
    size_t  i = (size_t) r * m->cols + c;

    switch (m->dtype) {
    case DW_DT_BF16:
        return dw_bf16_to_f32(((const uint16_t *) m->data)[i]);
    case DW_DT_F16:
        return dw_f16_to_f32(((const uint16_t *) m->data)[i]);
    default:
        return ((const float *) m->data)[i];
    }
}

/* y[rows] = M x (+ bias) */
static void
lin(const dw_mat_t *m, const double *x, const float *bias, double *y)
{
    uint32_t  r, c;

    for (r = 0; r < m->rows; r++) {
        y[r] = bias ? bias[r] : 0;
        for (c = 0; c < m->cols; c++) {
            y[r] += W(m, r, c) * x[c];
        }
    }
}

static void
rms(double *y, const double *x, const float *g, uint32_t n, double eps)
{
    double    ss = 0;
    uint32_t  i;

    for (i = 0; i < n; i++) {
        ss += x[i] * x[i];
    }
    ss = 1 / sqrt(ss / n + eps);
    for (i = 0; i < n; i++) {
        y[i] = x[i] * ss * g[i];
    }
}

/* HF rotate_half with default or llama3 inv_freq */
static void
rope(const dw_config_t *c, double *v, uint32_t pos)
{
    uint32_t  i, half = c->head_dim / 2;
    double    f, wl, lo, hi, sm, a, x0, x1;

    for (i = 0; i < half; i++) {
        f = 1 / pow(c->rope_theta, 2.0 * i / c->head_dim);
        if (c->rope_llama3) {
            lo = c->rope_orig_max_position / c->rope_low_freq_factor;
            hi = c->rope_orig_max_position / c->rope_high_freq_factor;
            wl = 2 * M_PI / f;
            if (wl > lo) {
                f /= c->rope_factor;
            } else if (wl >= hi) {
                sm = (c->rope_orig_max_position / wl
                      - c->rope_low_freq_factor)
                     / (c->rope_high_freq_factor - c->rope_low_freq_factor);
                f = (1 - sm) * f / c->rope_factor + sm * f;
            }
        }
        a = pos * f;
        x0 = v[i];
        x1 = v[i + half];
        v[i] = x0 * cos(a) - x1 * sin(a);
        v[i + half] = x1 * cos(a) + x0 * sin(a);
    }
}

/* logits[n][vocab] for every position of tokens[n] */
static void
ref_forward(const dw_model_t *m, const uint32_t *tok, uint32_t n,
    double *logits)
{
    const dw_config_t  *c = &m->cfg;
    uint32_t  H = c->hidden_size, hd = c->head_dim, I = c->intermediate_size;
    uint32_t  qd = c->n_heads * hd, kd = c->n_kv_heads * hd;
    uint32_t  l, t, s, h, d, i, g = c->n_heads / c->n_kv_heads;
    double   *x = calloc((size_t) n * H, 8), *xn = malloc(H * 8);
    double   *q = malloc((size_t) n * qd * 8), *k = malloc((size_t) n * kd * 8);
    double   *v = malloc((size_t) n * kd * 8), *att = malloc(qd * 8);
    double   *o = malloc(H * 8), *gt = malloc(I * 8), *up = malloc(I * 8);
    double   *sc = malloc(n * 8), mx, sum;

    for (t = 0; t < n; t++) {
        for (i = 0; i < H; i++) {
            x[(size_t) t * H + i] = W(&m->embed, tok[t], i);
        }
    }
    for (l = 0; l < c->n_layers; l++) {
        const dw_layer_t  *L = &m->layers[l];

        for (t = 0; t < n; t++) {
            rms(xn, x + (size_t) t * H, L->attn_norm, H, c->rms_eps);
            lin(&L->q, xn, L->q_bias, q + (size_t) t * qd);
            lin(&L->k, xn, L->k_bias, k + (size_t) t * kd);
            lin(&L->v, xn, L->v_bias, v + (size_t) t * kd);
            for (h = 0; h < c->n_heads; h++) {
                if (L->q_norm) {
                    rms(q + (size_t) t * qd + h * hd,
                        q + (size_t) t * qd + h * hd, L->q_norm, hd,
                        c->rms_eps);
                }
                rope(c, q + (size_t) t * qd + h * hd, t);
            }
            for (h = 0; h < c->n_kv_heads; h++) {
                if (L->k_norm) {
                    rms(k + (size_t) t * kd + h * hd,
                        k + (size_t) t * kd + h * hd, L->k_norm, hd,
                        c->rms_eps);
                }
                rope(c, k + (size_t) t * kd + h * hd, t);
            }
        }
        for (t = 0; t < n; t++) {
            for (h = 0; h < c->n_heads; h++) {
                mx = -INFINITY;
                for (s = 0; s <= t; s++) {
                    sc[s] = 0;
                    for (d = 0; d < hd; d++) {
                        sc[s] += q[(size_t) t * qd + h * hd + d]
                                 * k[(size_t) s * kd + (h / g) * hd + d];
                    }
                    sc[s] /= sqrt(hd);
                    mx = sc[s] > mx ? sc[s] : mx;
                }
                sum = 0;
                for (s = 0; s <= t; s++) {
                    sc[s] = exp(sc[s] - mx);
                    sum += sc[s];
                }
                for (d = 0; d < hd; d++) {
                    att[h * hd + d] = 0;
                    for (s = 0; s <= t; s++) {
                        att[h * hd + d] += sc[s] / sum
                            * v[(size_t) s * kd + (h / g) * hd + d];
                    }
                }
            }
            lin(&L->o, att, L->o_bias, o);
            for (i = 0; i < H; i++) {
                x[(size_t) t * H + i] += o[i];
            }
            rms(xn, x + (size_t) t * H, L->ffn_norm, H, c->rms_eps);
            lin(&L->gate, xn, NULL, gt);
            lin(&L->up, xn, NULL, up);
            for (i = 0; i < I; i++) {
                gt[i] = gt[i] / (1 + exp(-gt[i])) * up[i];
            }
            lin(&L->down, gt, NULL, o);
            for (i = 0; i < H; i++) {
                x[(size_t) t * H + i] += o[i];
            }
        }
    }
    for (t = 0; t < n; t++) {
        rms(xn, x + (size_t) t * H, m->final_norm, H, c->rms_eps);
        lin(&m->lm_head, xn, NULL, logits + (size_t) t * c->vocab_size);
    }
    free(x); free(xn); free(q); free(k); free(v); free(att); free(o);
    free(gt); free(up); free(sc);
}

static void
check_model(const char *name, const char *args, uint32_t threads)
{
    char               dir[512], cmd[8192], err[256];
    dw_model_t        *m;
    dw_backend_t      *be;
    dw_backend_opts_t  o;
    dw_seq_step_t      seq;
    dw_step_t          st;
    uint32_t           tok[13] = { 3, 17, 5, 99, 42, 0, 7, 8, 61, 2, 33, 4, 90 };
    uint32_t           blocks[5] = { 6, 2, 9, 0, 4 };
    uint32_t           chunks[] = { 4, 1, 3, 1, 1, 1, 1, 1 }, ci, pos, V, i;
    double            *ref, scale, e;
    float             *lg;

    snprintf(dir, sizeof(dir), "%s/%s", tmpdir, name);
    snprintf(cmd, sizeof(cmd), "'%s' --out '%s' %s 2>/dev/null", mkmodel, dir,
             args);
    assert_int_equal(system(cmd), 0);
    if (dw_model_load(dir, &m, err, sizeof(err)) != 0) {
        fail_msg("%s: %s", name, err);
    }
    V = m->cfg.vocab_size;
    ref = malloc((size_t) 13 * V * 8);
    lg = malloc((size_t) V * 4);
    ref_forward(m, tok, 13, ref);

    memset(&o, 0, sizeof(o));
    o.block_size = 3;
    o.n_blocks = 10;
    o.threads = threads;
    assert_int_equal(dw_backend_cpu_create(m, &o, &be, err, sizeof(err)), 0);
    pos = 0;
    for (ci = 0; ci < sizeof(chunks) / sizeof(chunks[0]); ci++) {
        seq.tokens = tok + pos;
        seq.n_tokens = chunks[ci];
        seq.pos = pos;
        seq.blocks = blocks;
        seq.n_blocks = 5;
        seq.want_logits = 1;
        st.seqs = &seq;
        st.n_seqs = 1;
        st.n_tokens = chunks[ci];
        st.n_logits = 1;
        st.logits = lg;
        assert_int_equal(be->ops->forward(be, &st), 0);
        pos += chunks[ci];
        scale = 0;
        for (i = 0; i < V; i++) {
            scale = fmax(scale, fabs(ref[(size_t) (pos - 1) * V + i]));
        }
        for (i = 0; i < V; i++) {
            e = fabs(lg[i] - ref[(size_t) (pos - 1) * V + i]);
            if (!(e <= 1e-4 * scale + 1e-6)) {
                fail_msg("%s: position %u logit %u: %g, reference %g", name,
                         pos - 1, i, lg[i], ref[(size_t) (pos - 1) * V + i]);
            }
        }
    }
    be->ops->destroy(be);
    dw_model_free(m);
    free(ref);
    free(lg);
}

static void
test_llama_gqa(void **state)
{
    check_model("llama", "--hidden 40 --layers 2 --heads 4 --kv-heads 2 "
                "--intermediate 56 --vocab 100 --std 0.2 --seed 3", 2);
}

static void
test_qwen2_bias_tied(void **state)
{
    check_model("qwen2", "--arch qwen2 --hidden 32 --layers 2 --heads 4 "
                "--kv-heads 1 --intermediate 48 --vocab 100 --tie --std 0.2 "
                "--seed 4", 2);
}

static void
test_qwen3_qknorm_bf16(void **state)
{
    check_model("qwen3", "--arch qwen3 --hidden 32 --layers 2 --heads 4 "
                "--kv-heads 2 --head-dim 12 --intermediate 48 --vocab 100 "
                "--dtype bf16 --std 0.2 --seed 5", 2);
}

static void
test_mistral_llama3_f16(void **state)
{
    check_model("mistral", "--arch mistral --hidden 48 --layers 1 "
                "--heads 3 --head-dim 32 --intermediate 40 --vocab 100 "
                "--dtype f16 --rope-llama3 8 --rope-theta 500000 --std 0.2 "
                "--seed 6", 2);
}

/*
 * Big enough that every job goes through the thread pool (the tiny
 * models above run inline, see DW_CPU_INLINE_WORK), with 3 threads on
 * whatever cores there are.
 */
static void
test_pooled_f32(void **state)
{
    check_model("wide32", "--hidden 384 --layers 1 --heads 4 --kv-heads 2 "
                "--intermediate 520 --vocab 300 --std 0.05 --seed 8", 3);
}

static void
test_pooled_bf16(void **state)
{
    check_model("wide16", "--hidden 384 --layers 1 --heads 8 --kv-heads 8 "
                "--intermediate 300 --vocab 260 --std 0.05 --dtype bf16 "
                "--seed 9", 3);
}

/*
 * Pooled paths keep a sequence's logits bit-identical alone and in a busy
 * batch (the stories260K version in test_cpu_greedy runs inline).
 */
static void
test_pooled_batch_independent(void **state)
{
    char               dir[512], cmd[8192], err[256];
    dw_model_t        *m;
    dw_backend_t      *be;
    dw_backend_opts_t  o;
    dw_seq_step_t      seqs[4];
    dw_step_t          st;
    uint32_t           pa[7] = { 5, 6, 7, 8, 9, 10, 11 };
    uint32_t           pb[11] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 };
    uint32_t           ba[2] = { 0, 1 }, bb[2] = { 2, 3 }, bc[2] = { 4, 5 };
    uint32_t           bd[2] = { 6, 7 }, tc = 3, td = 4, ta, step, V;
    float             *alone, *batch;

    snprintf(dir, sizeof(dir), "%s/wide32", tmpdir);
    snprintf(cmd, sizeof(cmd), "'%s' --out '%s' --hidden 384 --layers 2 "
             "--heads 4 --kv-heads 2 --intermediate 520 --vocab 300 "
             "--std 0.05 --seed 8 2>/dev/null", mkmodel, dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(dw_model_load(dir, &m, err, sizeof(err)), 0);
    memset(&o, 0, sizeof(o));
    o.block_size = 16;
    o.n_blocks = 8;
    o.threads = 3;
    assert_int_equal(dw_backend_cpu_create(m, &o, &be, err, sizeof(err)), 0);
    V = m->cfg.vocab_size;
    alone = malloc((size_t) 5 * V * 4);
    batch = malloc((size_t) 4 * V * 4);

    memset(&st, 0, sizeof(st));
    seqs[0] = (dw_seq_step_t) { pa, 7, 0, ba, 2, 1 };
    st.seqs = seqs;
    st.n_seqs = 1;
    st.n_logits = 1;
    for (step = 0; step < 5; step++) {
        st.n_tokens = seqs[0].n_tokens;
        st.logits = alone + (size_t) step * V;
        assert_int_equal(be->ops->forward(be, &st), 0);
        ta = dw_ts_argmax(st.logits, V);
        seqs[0] = (dw_seq_step_t) { &ta, 1, 7 + step, ba, 2, 1 };
    }

    seqs[0] = (dw_seq_step_t) { &tc, 1, 0, bc, 2, 1 };
    seqs[1] = (dw_seq_step_t) { pb, 11, 0, bb, 2, 1 };
    seqs[2] = (dw_seq_step_t) { pa, 7, 0, ba, 2, 1 };
    seqs[3] = (dw_seq_step_t) { &td, 1, 0, bd, 2, 1 };
    st.n_seqs = 4;
    st.n_logits = 4;
    for (step = 0; step < 5; step++) {
        st.n_tokens = seqs[0].n_tokens + seqs[1].n_tokens + seqs[2].n_tokens
                      + seqs[3].n_tokens;
        st.logits = batch;
        assert_int_equal(be->ops->forward(be, &st), 0);
        if (memcmp(batch + 2 * V, alone + (size_t) step * V, V * 4) != 0) {
            fail_msg("step %u: logits differ alone and in a batch", step);
        }
        ta = dw_ts_argmax(batch + 2 * V, V);
        seqs[0] = (dw_seq_step_t) { &tc, 1, 1 + step, bc, 2, 1 };
        seqs[1] = (dw_seq_step_t) { &pb[step], 1, 11 + step, bb, 2, 1 };
        seqs[2] = (dw_seq_step_t) { &ta, 1, 7 + step, ba, 2, 1 };
        seqs[3] = (dw_seq_step_t) { &td, 1, 1 + step, bd, 2, 1 };
    }
    free(alone);
    free(batch);
    be->ops->destroy(be);
    dw_model_free(m);
}

static int
group_setup(void **state)
{
    const char  *env = getenv("DW_MKMODEL");

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/dw_test_ref.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        return -1;
    }
    if (env != NULL) {
        snprintf(mkmodel, sizeof(mkmodel), "%s", env);
    }
    return 0;
}

static int
group_teardown(void **state)
{
    char  cmd[512];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
    char  self[4096];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_gqa),
        cmocka_unit_test(test_qwen2_bias_tied),
        cmocka_unit_test(test_qwen3_qknorm_bf16),
        cmocka_unit_test(test_mistral_llama3_f16),
        cmocka_unit_test(test_pooled_f32),
        cmocka_unit_test(test_pooled_bf16),
        cmocka_unit_test(test_pooled_batch_independent),
    };

    snprintf(self, sizeof(self), "%s", argv[0]);
    snprintf(mkmodel, sizeof(mkmodel), "%s/../bin/dynamo-mkmodel",
             dirname(self));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
