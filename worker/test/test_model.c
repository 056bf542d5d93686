/*
 * The model loader: stories260K's config; dynamo-mkmodel round trips
 * (F32, BF16, F16, sharded; the same seed gives the same numbers up to
 * the dtype's rounding, checked value by value); Qwen2/Qwen3/tied layouts
 * load and run; each error path names what is wrong. Run from the
 * repository root; dynamo-mkmodel is found next to the test's build
 * directory (../bin/) or through DW_MKMODEL.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "dw_backend.h"
#include "dw_kern_int.h"
#include "dw_model_int.h"
#include "dw_safetensors_int.h"
#include "support/dw_tsupport_model.h"
#include "support/dw_tsupport_tmp.h"

static char  mkmodel[4096];
static char  tmpdir[256];
static int   misalign;            /* stories_variant: unpadded header */

static void
sh(const char *fmt, ...)
{
    char     cmd[8192];
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (system(cmd) != 0) {
        fail_msg("command failed: %s", cmd);
    }
}

static void
mk(const char *name, const char *args)
{
    sh("'%s' --out '%s/%s' %s 2>/dev/null", mkmodel, tmpdir, name, args);
}

static dw_model_t *
load_ok(const char *name)
{
    char         dir[512], err[512];
    dw_model_t  *m;

    snprintf(dir, sizeof(dir), "%s/%s", tmpdir, name);
    if (dw_model_load(dir, &m, err, sizeof(err)) != 0) {
        fail_msg("load %s: %s", name, err);
    }
    return m;
}

/* loading must fail with an error containing want */
static void
load_fails(const char *dir, const char *want)
{
    char         err[512];
    dw_model_t  *m = NULL;

    err[0] = '\0';
    assert_int_equal(dw_model_load(dir, &m, err, sizeof(err)), -1);
    assert_null(m);
    if (strstr(err, want) == NULL) {
        fail_msg("error \"%s\" does not contain \"%s\"", err, want);
    }
}

/* Element sizes and names of the dtypes: the cuda backend sizes its
   weights, scratch and KV pool (--dtype) by dw_dtype_size. */
static void
test_dtype_sizes(void **state)
{
    (void) state;
    assert_int_equal(dw_dtype_size(DW_DT_F32), 4);
    assert_int_equal(dw_dtype_size(DW_DT_BF16), 2);
    assert_int_equal(dw_dtype_size(DW_DT_F16), 2);
    assert_string_equal(dw_dtype_name(DW_DT_F32), "F32");
    assert_string_equal(dw_dtype_name(DW_DT_BF16), "BF16");
    assert_string_equal(dw_dtype_name(DW_DT_F16), "F16");
}

static void
test_stories_config(void **state)
{
    char          err[256];
    dw_model_t   *m;
    dw_config_t   c;
    const dw_config_t *mc;

    assert_int_equal(dw_model_load_config(DW_TS_STORIES, &c, err,
                                          sizeof(err)), 0);
    assert_string_equal(c.arch, "LlamaForCausalLM");
    assert_int_equal(c.vocab_size, 512);
    assert_int_equal(c.hidden_size, 64);
    assert_int_equal(c.intermediate_size, 172);
    assert_int_equal(c.n_layers, 5);
    assert_int_equal(c.n_heads, 8);
    assert_int_equal(c.n_kv_heads, 4);
    assert_int_equal(c.head_dim, 8);
    assert_int_equal(c.max_position, 512);
    assert_true(c.rms_eps == 1e-5f);
    assert_true(c.rope_theta == 10000.0f);
    assert_int_equal(c.tie_embeddings, 1);
    assert_int_equal(c.bos_id, 1);
    assert_int_equal(c.n_eos, 1);
    assert_int_equal(c.eos_ids[0], 2);
    assert_int_equal(c.rope_llama3, 0);
    assert_int_equal(c.attn_bias, 0);

    assert_int_equal(dw_model_load(DW_TS_STORIES, &m, err, sizeof(err)), 0);
    mc = dw_model_config(m);
    assert_int_equal(mc->dtype, DW_DT_F32);
    assert_ptr_equal(m->lm_head.data, m->embed.data);
    /* 512*64 embed + 5 * (64*64*2 + 32*64*2 + 172*64*3) */
    assert_int_equal(m->n_params, 512 * 64 + 5 * (8192 + 4096 + 33024));
    dw_model_free(m);
}

/* every matrix of b equals a's rounded to b's dtype */
static void
same_values(const dw_model_t *a, const dw_model_t *b)
{
    uint32_t          l, i;
    size_t            j, n;
    const dw_mat_t   *ma, *mb;
    float             fa, fb, want;

    for (l = 0; l <= a->cfg.n_layers; l++) {
        for (i = 0; i < 7; i++) {
            if (l == a->cfg.n_layers) {
                if (i > 1) {
                    break;
                }
                ma = i ? &a->lm_head : &a->embed;
                mb = i ? &b->lm_head : &b->embed;
            } else {
                const dw_layer_t  *La = &a->layers[l], *Lb = &b->layers[l];
                const dw_mat_t    *xa[7] = { &La->q, &La->k, &La->v, &La->o,
                                             &La->gate, &La->up, &La->down };
                const dw_mat_t    *xb[7] = { &Lb->q, &Lb->k, &Lb->v, &Lb->o,
                                             &Lb->gate, &Lb->up, &Lb->down };
                ma = xa[i];
                mb = xb[i];
            }
            assert_int_equal(ma->rows, mb->rows);
            assert_int_equal(ma->cols, mb->cols);
            assert_int_equal(ma->dtype, DW_DT_F32);
            n = (size_t) ma->rows * ma->cols;
            for (j = 0; j < n; j++) {
                fa = ((const float *) ma->data)[j];
                switch (mb->dtype) {
                case DW_DT_BF16:
                    fb = dw_bf16_to_f32(((const uint16_t *) mb->data)[j]);
                    want = dw_bf16_to_f32(dw_f32_to_bf16(fa));
                    break;
                case DW_DT_F16:
                    fb = dw_f16_to_f32(((const uint16_t *) mb->data)[j]);
                    want = dw_f16_to_f32(dw_f32_to_f16(fa));
                    break;
                default:
                    fb = ((const float *) mb->data)[j];
                    want = fa;
                    break;
                }
                if (fb != want) {
                    fail_msg("layer %u matrix %u [%zu]: %g, want %g", l, i,
                             j, fb, want);
                }
            }
        }
    }
    for (j = 0; j < a->cfg.hidden_size; j++) {
        assert_true(a->final_norm[j] == b->final_norm[j]);
        assert_true(a->layers[0].attn_norm[j] == b->layers[0].attn_norm[j]);
    }
}

static void
test_mkmodel_roundtrip(void **state)
{
    static const char  *shape = "--hidden 48 --layers 3 --heads 6 "
        "--kv-heads 2 --intermediate 100 --vocab 300 --seed 42 "
        "--tokenizer-from models/stories260K";
    char                args[512], p[512];
    dw_model_t         *f32, *m;
    const char         *names[] = { "rt-bf16", "rt-f16", "rt-shard" };
    const char         *extra[] = { "--dtype bf16", "--dtype f16",
                                    "--shards 4" };
    int                 i;
    float               mean, var;
    size_t              j, n;

    snprintf(args, sizeof(args), "%s --dtype f32", shape);
    mk("rt-f32", args);
    f32 = load_ok("rt-f32");
    assert_int_equal(f32->cfg.hidden_size, 48);
    assert_int_equal(f32->cfg.n_kv_heads, 2);
    assert_int_equal(f32->cfg.head_dim, 8);
    assert_int_equal(f32->cfg.tie_embeddings, 0);
    assert_int_equal(f32->n_files, 1);
    /* normal(0, 0.02): the sample moments say so */
    n = (size_t) f32->layers[0].gate.rows * f32->layers[0].gate.cols;
    mean = var = 0;
    for (j = 0; j < n; j++) {
        mean += ((const float *) f32->layers[0].gate.data)[j];
    }
    mean /= n;
    for (j = 0; j < n; j++) {
        float  d = ((const float *) f32->layers[0].gate.data)[j] - mean;

        var += d * d;
    }
    var /= n;
    assert_true(fabsf(mean) < 0.002f);
    assert_true(fabsf(sqrtf(var) - 0.02f) < 0.002f);

    for (i = 0; i < 3; i++) {
        snprintf(args, sizeof(args), "%s %s", shape, extra[i]);
        mk(names[i], args);
        m = load_ok(names[i]);
        if (i == 2) {
            assert_int_equal(m->n_files, 4);
        } else {
            assert_int_equal(m->cfg.dtype, i == 0 ? DW_DT_BF16 : DW_DT_F16);
        }
        same_values(f32, m);
        dw_model_free(m);
    }
    snprintf(p, sizeof(p), "%s/rt-shard/model.safetensors.index.json",
             tmpdir);
    assert_int_equal(access(p, R_OK), 0);
    snprintf(p, sizeof(p), "%s/rt-f32/tokenizer.json", tmpdir);
    assert_int_equal(access(p, R_OK), 0);
    dw_model_free(f32);
}

/* the other architectures load, and a backend runs them to finite logits */
static void
test_arch_variants(void **state)
{
    static const char  *args[] = {
        "--arch qwen2 --hidden 32 --layers 2 --heads 4 --kv-heads 2 "
        "--intermediate 40 --vocab 100 --tie",
        "--arch qwen3 --hidden 32 --layers 2 --heads 4 --kv-heads 1 "
        "--head-dim 16 --intermediate 40 --vocab 100 --dtype bf16",
        "--arch mistral --hidden 32 --layers 1 --heads 2 --intermediate 40 "
        "--vocab 100 --dtype f16 --rope-llama3 8",
    };
    static const char  *names[] = { "qwen2", "qwen3", "mistral" };
    char                err[256];
    dw_model_t         *m;
    dw_backend_t       *be;
    dw_backend_opts_t   o;
    uint32_t            prompt[4] = { 1, 5, 9, 2 }, chunk[1] = { 4 };
    uint32_t            blocks[2] = { 1, 0 }, out[8];
    int                 i;

    for (i = 0; i < 3; i++) {
        mk(names[i], args[i]);
        m = load_ok(names[i]);
        switch (i) {
        case 0:
            assert_int_equal(m->cfg.attn_bias, 1);
            assert_non_null(m->layers[1].q_bias);
            assert_null(m->layers[1].o_bias);
            assert_ptr_equal(m->lm_head.data, m->embed.data);
            break;
        case 1:
            assert_int_equal(m->cfg.qk_norm, 1);
            assert_int_equal(m->cfg.head_dim, 16);
            assert_non_null(m->layers[1].k_norm);
            break;
        default:
            assert_int_equal(m->cfg.rope_llama3, 1);
            assert_true(m->cfg.rope_factor == 8.0f);
            break;
        }
        memset(&o, 0, sizeof(o));
        o.block_size = 8;
        o.n_blocks = 2;
        o.threads = 2;
        assert_int_equal(dw_backend_cpu_create(m, &o, &be, err,
                                               sizeof(err)), 0);
        assert_int_equal(dw_ts_greedy(be, prompt, 4, chunk, 1, blocks, 2,
                                      out, 8), 0);
        be->ops->destroy(be);
        dw_model_free(m);
    }
}

/* copy stories260K to dir, rewriting the safetensors header with fix() */
static void
stories_variant(const char *name, void (*fix)(json_t *h), size_t cut)
{
    char          dir[512], p[600];
    FILE         *in, *out;
    unsigned char lenb[8];
    uint64_t      hlen = 0, le;
    char         *hdr, *js, buf[65536];
    json_t       *h;
    size_t        n, total = 0, keep;
    long          fsize;
    int           k;

    snprintf(dir, sizeof(dir), "%s/%s", tmpdir, name);
    sh("mkdir -p '%s' && cp %s/config.json '%s/'", dir, DW_TS_STORIES, dir);
    in = fopen(DW_TS_STORIES "/model.safetensors", "rb");
    assert_non_null(in);
    fseek(in, 0, SEEK_END);
    fsize = ftell(in);
    fseek(in, 0, SEEK_SET);
    assert_int_equal(fread(lenb, 1, 8, in), 8);
    for (k = 7; k >= 0; k--) {
        hlen = (hlen << 8) | lenb[k];
    }
    hdr = malloc(hlen + 1);
    assert_int_equal(fread(hdr, 1, hlen, in), hlen);
    hdr[hlen] = '\0';
    h = json_loads(hdr, 0, NULL);
    assert_non_null(h);
    free(hdr);
    if (fix != NULL) {
        fix(h);
    }
    js = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    snprintf(p, sizeof(p), "%s/model.safetensors", dir);
    out = fopen(p, "wb");
    assert_non_null(out);
    n = strlen(js);
    le = (n + 7) / 8 * 8;         /* padded with spaces, as writers do */
    if (misalign) {
        le = n % 4 ? n : n + 1;   /* data starts off any 4-byte boundary */
    }
    for (k = 0; k < 8; k++) {
        fputc((int) ((le >> (8 * k)) & 0xff), out);
    }
    fwrite(js, 1, n, out);
    for (; n < le; n++) {
        fputc(' ', out);
    }
    free(js);
    keep = (size_t) fsize - 8 - hlen - cut;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0 && total < keep) {
        if (n > keep - total) {
            n = keep - total;
        }
        fwrite(buf, 1, n, out);
        total += n;
    }
    fclose(in);
    fclose(out);
}

static void
fix_missing(json_t *h)
{
    json_object_del(h, "model.layers.2.mlp.gate_proj.weight");
}

static void
fix_shape(json_t *h)
{
    json_t  *t = json_object_get(h, "model.layers.3.mlp.up_proj.weight");

    json_object_set_new(t, "shape", json_pack("[i, i]", 64, 172));
}

static void
fix_dtype(json_t *h)
{
    json_t  *t = json_object_get(h, "model.layers.1.self_attn.k_proj.weight");

    json_object_set_new(t, "dtype", json_string("I32"));
}

static void
test_errors(void **state)
{
    char   dir[512], p[600];
    FILE  *f;

    snprintf(dir, sizeof(dir), "%s/e-ok", tmpdir);
    stories_variant("e-ok", NULL, 0);
    {
        dw_model_t  *m;
        char         err[256];

        /* the rewriting itself keeps a loadable model */
        assert_int_equal(dw_model_load(dir, &m, err, sizeof(err)), 0);
        dw_model_free(m);
    }

    stories_variant("e-missing", fix_missing, 0);
    snprintf(dir, sizeof(dir), "%s/e-missing", tmpdir);
    load_fails(dir, "model.layers.2.mlp.gate_proj.weight: tensor missing");

    stories_variant("e-shape", fix_shape, 0);
    snprintf(dir, sizeof(dir), "%s/e-shape", tmpdir);
    load_fails(dir, "model.layers.3.mlp.up_proj.weight: shape [64, 172], "
               "expected [172, 64]");

    stories_variant("e-dtype", fix_dtype, 0);
    snprintf(dir, sizeof(dir), "%s/e-dtype", tmpdir);
    load_fails(dir, "model.layers.1.self_attn.k_proj.weight: dtype I32 not "
               "supported");

    misalign = 1;
    stories_variant("e-align", NULL, 0);
    misalign = 0;
    snprintf(dir, sizeof(dir), "%s/e-align", tmpdir);
    load_fails(dir, "data not aligned to its F32 elements");

    stories_variant("e-trunc", NULL, 1000);
    snprintf(dir, sizeof(dir), "%s/e-trunc", tmpdir);
    load_fails(dir, "truncated");

    snprintf(dir, sizeof(dir), "%s/e-json", tmpdir);
    sh("mkdir -p '%s' && cp %s/config.json '%s/' && "
       "printf '\\013\\000\\000\\000\\000\\000\\000\\000{\"a\": [1, 2' "
       "> '%s/model.safetensors'", dir, DW_TS_STORIES, dir, dir);
    load_fails(dir, "bad header JSON");

    snprintf(dir, sizeof(dir), "%s/e-arch", tmpdir);
    sh("mkdir -p '%s' && sed 's/LlamaForCausalLM/GPT2LMHeadModel/' "
       "%s/config.json > '%s/config.json'", dir, DW_TS_STORIES, dir);
    load_fails(dir, "architecture GPT2LMHeadModel not supported");

    snprintf(dir, sizeof(dir), "%s/e-cfgdtype", tmpdir);
    sh("mkdir -p '%s' && sed 's/\"float32\"/\"int8\"/' "
       "%s/config.json > '%s/config.json'", dir, DW_TS_STORIES, dir);
    load_fails(dir, "dtype int8 not supported");

    snprintf(dir, sizeof(dir), "%s/e-rope", tmpdir);
    sh("mkdir -p '%s' && sed 's/\"rope_theta\"/\"rope_scaling\": "
       "{\"type\": \"yarn\", \"factor\": 4}, \"rope_theta\"/' "
       "%s/config.json > '%s/config.json'", dir, DW_TS_STORIES, dir);
    load_fails(dir, "rope_scaling type \"yarn\" not supported");

    snprintf(dir, sizeof(dir), "%s/e-nofile", tmpdir);
    sh("mkdir -p '%s' && cp %s/config.json '%s/'", dir, DW_TS_STORIES, dir);
    load_fails(dir, "model.safetensors: No such file");

    snprintf(p, sizeof(p), "%s/e-noconfig", tmpdir);
    load_fails(p, "config.json");

    /* a shard index naming a file outside the directory */
    snprintf(dir, sizeof(dir), "%s/e-index", tmpdir);
    sh("mkdir -p '%s' && cp %s/config.json '%s/'", dir, DW_TS_STORIES, dir);
    snprintf(p, sizeof(p), "%s/model.safetensors.index.json", dir);
    f = fopen(p, "w");
    assert_non_null(f);
    fputs("{\"weight_map\": {\"model.norm.weight\": \"../x.safetensors\"}}",
          f);
    fclose(f);
    load_fails(dir, "bad shard name");
}

static int
group_setup(void **state)
{
    return dw_ts_tmpdir(tmpdir, sizeof(tmpdir), "dw_test_model");
}

static int
group_teardown(void **state)
{
    return dw_ts_rmtree(tmpdir);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtype_sizes),
        cmocka_unit_test(test_stories_config),
        cmocka_unit_test(test_mkmodel_roundtrip),
        cmocka_unit_test(test_arch_variants),
        cmocka_unit_test(test_errors),
    };

    dw_ts_mkmodel_path(mkmodel, sizeof(mkmodel), argv[0]);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
