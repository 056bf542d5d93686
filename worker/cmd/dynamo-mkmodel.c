/*
 * dynamo-mkmodel: writes a random-weight model of any Llama shape in the
 * Hugging Face layout (config.json, model.safetensors or shards with
 * model.safetensors.index.json, tokenizer files copied from a real model),
 * for tests and benchmarks. Weights are normal(0, std) from a seeded
 * generator (norm weights 1), so activations stay sane; the text it writes
 * is gibberish. Each tensor's values depend only on the seed and the
 * tensor's name, not on dtype or sharding: an F32 and a BF16 model of the
 * same seed hold the same numbers up to rounding.
 *
 *   dynamo-mkmodel --out DIR [--hidden 768] [--layers 12] [--heads 12]
 *       [--kv-heads H] [--intermediate 2048] [--vocab 32000] [--head-dim D]
 *       [--max-pos 2048] [--dtype f32|bf16|f16] [--tie] [--seed 1]
 *       [--arch llama|mistral|qwen2|qwen3] [--rope-theta 10000]
 *       [--rope-llama3 FACTOR] [--std 0.02] [--shards N]
 *       [--tokenizer-from DIR]
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "dw_kern_int.h"
#include "dw_model.h"
#include "dw_rand.h"
#include "dw_safetensors_int.h"

#define MK_MAX_TENSORS  4096

typedef struct {
    char      name[96];
    uint64_t  rows, cols;     /* cols 0: a vector of rows */
    int       ones;           /* norm weight */
    int       shard;
    uint64_t  begin;
} mk_tensor_t;

typedef struct {
    const char  *out, *tok_from, *arch;
    uint32_t     hidden, layers, heads, kv_heads, inter, vocab, head_dim;
    uint32_t     max_pos, shards;
    dw_dtype_t   dtype;
    int          tie;
    uint64_t     seed;
    double       theta, llama3, std;
    mk_tensor_t *t;
    size_t       n;
    uint64_t     total_bytes, done_bytes;
} mk_t;

static uint64_t
mk_name_seed(uint64_t seed, const char *name)
{
    uint64_t  h = 1469598103934665603ull ^ seed;

    while (*name) {
        h = (h ^ (unsigned char) *name++) * 1099511628211ull;
    }
    return h;
}

static void
mk_add(mk_t *k, const char *name, uint64_t rows, uint64_t cols, int ones)
{
    mk_tensor_t  *t = &k->t[k->n++];

    snprintf(t->name, sizeof(t->name), "%s", name);
    t->rows = rows;
    t->cols = cols;
    t->ones = ones;
}

static uint64_t
mk_count(const mk_tensor_t *t)
{
    return t->rows * (t->cols ? t->cols : 1);
}

static void
mk_plan(mk_t *k)
{
    char      n[96];
    uint32_t  l;
    uint64_t  qd = (uint64_t) k->heads * k->head_dim;
    uint64_t  kd = (uint64_t) k->kv_heads * k->head_dim;
    int       qwen2 = strcmp(k->arch, "qwen2") == 0;
    int       qwen3 = strcmp(k->arch, "qwen3") == 0;

    mk_add(k, "model.embed_tokens.weight", k->vocab, k->hidden, 0);
    for (l = 0; l < k->layers; l++) {
#define A(s, r, c, o) \
        (snprintf(n, sizeof(n), "model.layers.%u.%s", l, s), \
         mk_add(k, n, r, c, o))
        A("input_layernorm.weight", k->hidden, 0, 1);
        A("self_attn.q_proj.weight", qd, k->hidden, 0);
        A("self_attn.k_proj.weight", kd, k->hidden, 0);
        A("self_attn.v_proj.weight", kd, k->hidden, 0);
        if (qwen2) {
            A("self_attn.q_proj.bias", qd, 0, 0);
            A("self_attn.k_proj.bias", kd, 0, 0);
            A("self_attn.v_proj.bias", kd, 0, 0);
        }
        if (qwen3) {
            A("self_attn.q_norm.weight", k->head_dim, 0, 1);
            A("self_attn.k_norm.weight", k->head_dim, 0, 1);
        }
        A("self_attn.o_proj.weight", k->hidden, qd, 0);
        A("post_attention_layernorm.weight", k->hidden, 0, 1);
        A("mlp.gate_proj.weight", k->inter, k->hidden, 0);
        A("mlp.up_proj.weight", k->inter, k->hidden, 0);
        A("mlp.down_proj.weight", k->hidden, k->inter, 0);
#undef A
    }
    mk_add(k, "model.norm.weight", k->hidden, 0, 1);
    if (!k->tie) {
        mk_add(k, "lm_head.weight", k->vocab, k->hidden, 0);
    }
}

static const char *
mk_arch_name(const char *a)
{
    if (strcmp(a, "mistral") == 0) {
        return "MistralForCausalLM";
    }
    if (strcmp(a, "qwen2") == 0) {
        return "Qwen2ForCausalLM";
    }
    if (strcmp(a, "qwen3") == 0) {
        return "Qwen3ForCausalLM";
    }
    return "LlamaForCausalLM";
}

static int
mk_copy(const char *from, const char *to)
{
    FILE    *a, *b;
    char     buf[65536];
    size_t   n;
    int      rc = 0;

    a = fopen(from, "rb");
    if (a == NULL) {
        return 1;                 /* absent: nothing to copy */
    }
    b = fopen(to, "wb");
    if (b == NULL) {
        fclose(a);
        return -1;
    }
    while ((n = fread(buf, 1, sizeof(buf), a)) > 0) {
        if (fwrite(buf, 1, n, b) != n) {
            rc = -1;
            break;
        }
    }
    fclose(a);
    if (fclose(b) != 0) {
        rc = -1;
    }
    return rc;
}

/* bos/eos from the tokenizer source's config.json when it has them */
static void
mk_special_ids(mk_t *k, json_t *cfg)
{
    char     p[4096];
    json_t  *src, *v;

    json_object_set_new(cfg, "bos_token_id", json_integer(1));
    json_object_set_new(cfg, "eos_token_id", json_integer(2));
    if (k->tok_from == NULL) {
        return;
    }
    snprintf(p, sizeof(p), "%s/config.json", k->tok_from);
    src = json_load_file(p, 0, NULL);
    if (src == NULL) {
        return;
    }
    v = json_object_get(src, "bos_token_id");
    if (json_is_integer(v) || json_is_null(v)) {
        json_object_set(cfg, "bos_token_id", v);
    }
    v = json_object_get(src, "eos_token_id");
    if (json_is_integer(v) || json_is_array(v)) {
        json_object_set(cfg, "eos_token_id", v);
    }
    json_decref(src);
}

static int
mk_config(mk_t *k)
{
    json_t  *c, *rs;
    char     p[4096];
    static const char *dtn[] = { "float32", "bfloat16", "float16" };
    int      rc;

    c = json_object();
    json_object_set_new(c, "architectures", json_pack("[s]",
                        mk_arch_name(k->arch)));
    json_object_set_new(c, "model_type", json_string(
        strcmp(k->arch, "llama") == 0 ? "llama" : k->arch));
    json_object_set_new(c, "hidden_size", json_integer(k->hidden));
    json_object_set_new(c, "intermediate_size", json_integer(k->inter));
    json_object_set_new(c, "num_hidden_layers", json_integer(k->layers));
    json_object_set_new(c, "num_attention_heads", json_integer(k->heads));
    json_object_set_new(c, "num_key_value_heads", json_integer(k->kv_heads));
    json_object_set_new(c, "head_dim", json_integer(k->head_dim));
    json_object_set_new(c, "vocab_size", json_integer(k->vocab));
    json_object_set_new(c, "max_position_embeddings",
                        json_integer(k->max_pos));
    json_object_set_new(c, "rms_norm_eps", json_real(1e-5));
    json_object_set_new(c, "rope_theta", json_real(k->theta));
    if (k->llama3 > 0) {
        rs = json_pack("{s:s, s:f, s:f, s:f, s:i}", "rope_type", "llama3",
                       "factor", k->llama3, "low_freq_factor", 1.0,
                       "high_freq_factor", 4.0,
                       "original_max_position_embeddings", 8192);
        json_object_set_new(c, "rope_scaling", rs);
    }
    json_object_set_new(c, "hidden_act", json_string("silu"));
    json_object_set_new(c, "tie_word_embeddings", json_boolean(k->tie));
    json_object_set_new(c, "attention_bias",
                        json_boolean(strcmp(k->arch, "qwen2") == 0));
    json_object_set_new(c, "torch_dtype", json_string(dtn[k->dtype]));
    mk_special_ids(k, c);
    snprintf(p, sizeof(p), "%s/config.json", k->out);
    rc = json_dump_file(c, p, JSON_INDENT(2));
    json_decref(c);
    return rc;
}

static int
mk_write_tensor(mk_t *k, FILE *f, const mk_tensor_t *t)
{
    static float  buf[1 << 16];
    uint16_t      hb[1 << 16];
    uint64_t      s = mk_name_seed(k->seed, t->name), n = mk_count(t), i, j;
    uint64_t      chunk;
    double        u1, u2, r;
    size_t        es = dw_dtype_size(k->dtype);
    int           pct0, pct1;

    for (i = 0; i < n; i += chunk) {
        chunk = n - i < (1 << 16) ? n - i : (1 << 16);
        for (j = 0; j < chunk; j += 2) {
            if (t->ones) {
                buf[j] = 1.0f;
                if (j + 1 < chunk) {
                    buf[j + 1] = 1.0f;
                }
                continue;
            }
            /* Box-Muller, both outputs */
            u1 = ((dw_splitmix64(&s) >> 11) + 1.0) / 9007199254740993.0;
            u2 = (dw_splitmix64(&s) >> 11) / 9007199254740992.0;
            r = sqrt(-2.0 * log(u1)) * k->std;
            buf[j] = (float) (r * cos(2 * M_PI * u2));
            if (j + 1 < chunk) {
                buf[j + 1] = (float) (r * sin(2 * M_PI * u2));
            }
        }
        if (k->dtype == DW_DT_F32) {
            if (fwrite(buf, 4, chunk, f) != chunk) {
                return -1;
            }
        } else {
            for (j = 0; j < chunk; j++) {
                hb[j] = k->dtype == DW_DT_BF16 ? dw_f32_to_bf16(buf[j])
                                               : dw_f32_to_f16(buf[j]);
            }
            if (fwrite(hb, 2, chunk, f) != chunk) {
                return -1;
            }
        }
        pct0 = (int) (k->done_bytes * 100 / k->total_bytes);
        k->done_bytes += chunk * es;
        pct1 = (int) (k->done_bytes * 100 / k->total_bytes);
        if (k->total_bytes > (64u << 20) && pct1 / 10 != pct0 / 10) {
            fprintf(stderr, "dynamo-mkmodel: %d%%\n", pct1);
        }
    }
    return 0;
}

static void
mk_shard_name(const mk_t *k, int s, char *buf, size_t len)
{
    if (k->shards <= 1) {
        snprintf(buf, len, "model.safetensors");
    } else {
        snprintf(buf, len, "model-%05d-of-%05u.safetensors", s + 1,
                 k->shards);
    }
}

static int
mk_shard(mk_t *k, int s)
{
    json_t   *h, *e;
    char     *js, name[64], p[4096];
    size_t    i, hl, pad;
    uint64_t  off = 0, nb, le;
    FILE     *f;
    static const char *dtn[] = { "F32", "BF16", "F16" };
    int       b, rc = 0;

    h = json_object();
    for (i = 0; i < k->n; i++) {
        if (k->t[i].shard != s) {
            continue;
        }
        nb = mk_count(&k->t[i]) * dw_dtype_size(k->dtype);
        e = k->t[i].cols
            ? json_pack("{s:s, s:[I, I], s:[I, I]}", "dtype", dtn[k->dtype],
                        "shape", (json_int_t) k->t[i].rows,
                        (json_int_t) k->t[i].cols, "data_offsets",
                        (json_int_t) off, (json_int_t) (off + nb))
            : json_pack("{s:s, s:[I], s:[I, I]}", "dtype", dtn[k->dtype],
                        "shape", (json_int_t) k->t[i].rows, "data_offsets",
                        (json_int_t) off, (json_int_t) (off + nb));
        json_object_set_new(h, k->t[i].name, e);
        off += nb;
    }
    json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format",
                                                     "pt"));
    js = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    if (js == NULL) {
        return -1;
    }
    hl = strlen(js);
    pad = (8 - hl % 8) % 8;      /* data 8-byte aligned, as HF writes */
    mk_shard_name(k, s, name, sizeof(name));
    snprintf(p, sizeof(p), "%s/%s", k->out, name);
    f = fopen(p, "wb");
    if (f == NULL) {
        free(js);
        fprintf(stderr, "dynamo-mkmodel: %s: %s\n", p, strerror(errno));
        return -1;
    }
    le = hl + pad;
    for (b = 0; b < 8; b++) {
        fputc((int) ((le >> (8 * b)) & 0xff), f);
    }
    fwrite(js, 1, hl, f);
    for (i = 0; i < pad; i++) {
        fputc(' ', f);
    }
    free(js);
    for (i = 0; i < k->n && rc == 0; i++) {
        if (k->t[i].shard == s) {
            rc = mk_write_tensor(k, f, &k->t[i]);
        }
    }
    if (fclose(f) != 0 || rc != 0) {
        fprintf(stderr, "dynamo-mkmodel: %s: write failed\n", p);
        return -1;
    }
    return 0;
}

static int
mk_index(mk_t *k)
{
    json_t  *root, *wm;
    char     name[64], p[4096];
    size_t   i;
    int      rc;

    wm = json_object();
    for (i = 0; i < k->n; i++) {
        mk_shard_name(k, k->t[i].shard, name, sizeof(name));
        json_object_set_new(wm, k->t[i].name, json_string(name));
    }
    root = json_pack("{s:{s:I}, s:o}", "metadata", "total_size",
                     (json_int_t) k->total_bytes, "weight_map", wm);
    snprintf(p, sizeof(p), "%s/model.safetensors.index.json", k->out);
    rc = json_dump_file(root, p, JSON_INDENT(2));
    json_decref(root);
    return rc;
}

static void
usage(void)
{
    fprintf(stderr,
        "usage: dynamo-mkmodel --out DIR [--hidden N] [--layers N] "
        "[--heads N]\n"
        "    [--kv-heads N] [--intermediate N] [--vocab N] [--head-dim N]\n"
        "    [--max-pos N] [--dtype f32|bf16|f16] [--tie] [--seed N]\n"
        "    [--arch llama|mistral|qwen2|qwen3] [--rope-theta X]\n"
        "    [--rope-llama3 FACTOR] [--std X] [--shards N]\n"
        "    [--tokenizer-from DIR]\n");
}

static int
num(const char *opt, const char *s, double lo, double hi, double *out)
{
    char    *end;
    double   v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
        fprintf(stderr, "dynamo-mkmodel: %s: bad value \"%s\"\n", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

int
main(int argc, char **argv)
{
    mk_t      k;
    int       i, s;
    double    v;
    uint64_t  per, acc;
    char      from[4096], to[4096];
    static const char *tok_files[] = {
        "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
        "special_tokens_map.json", "generation_config.json"
    };

    memset(&k, 0, sizeof(k));
    k.hidden = 768;
    k.layers = 12;
    k.heads = 12;
    k.inter = 2048;
    k.vocab = 32000;
    k.max_pos = 2048;
    k.shards = 1;
    k.seed = 1;
    k.theta = 10000;
    k.std = 0.02;
    k.arch = "llama";

    for (i = 1; i < argc; i++) {
        const char  *o = argv[i];
        uint32_t    *u = NULL;

        if (strcmp(o, "--tie") == 0) {
            k.tie = 1;
            continue;
        }
        if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            usage();
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "dynamo-mkmodel: %s needs a value\n", o);
            usage();
            return 2;
        }
        const char  *a = argv[++i];

        if (strcmp(o, "--out") == 0) {
            k.out = a;
        } else if (strcmp(o, "--tokenizer-from") == 0) {
            k.tok_from = a;
        } else if (strcmp(o, "--arch") == 0) {
            if (strcmp(a, "llama") && strcmp(a, "mistral")
                && strcmp(a, "qwen2") && strcmp(a, "qwen3"))
            {
                fprintf(stderr, "dynamo-mkmodel: --arch: %s unknown\n", a);
                return 2;
            }
            k.arch = a;
        } else if (strcmp(o, "--dtype") == 0) {
            if (strcmp(a, "f32") == 0) {
                k.dtype = DW_DT_F32;
            } else if (strcmp(a, "bf16") == 0) {
                k.dtype = DW_DT_BF16;
            } else if (strcmp(a, "f16") == 0) {
                k.dtype = DW_DT_F16;
            } else {
                fprintf(stderr, "dynamo-mkmodel: --dtype: %s unknown\n", a);
                return 2;
            }
        } else if (strcmp(o, "--seed") == 0) {
            if (num(o, a, 0, 9e15, &v) != 0) {
                return 2;
            }
            k.seed = (uint64_t) v;
        } else if (strcmp(o, "--rope-theta") == 0) {
            if (num(o, a, 1, 1e12, &k.theta) != 0) {
                return 2;
            }
        } else if (strcmp(o, "--rope-llama3") == 0) {
            if (num(o, a, 1, 1e6, &k.llama3) != 0) {
                return 2;
            }
        } else if (strcmp(o, "--std") == 0) {
            if (num(o, a, 0, 10, &k.std) != 0) {
                return 2;
            }
        } else {
            if (strcmp(o, "--hidden") == 0) {
                u = &k.hidden;
            } else if (strcmp(o, "--layers") == 0) {
                u = &k.layers;
            } else if (strcmp(o, "--heads") == 0) {
                u = &k.heads;
            } else if (strcmp(o, "--kv-heads") == 0) {
                u = &k.kv_heads;
            } else if (strcmp(o, "--intermediate") == 0) {
                u = &k.inter;
            } else if (strcmp(o, "--vocab") == 0) {
                u = &k.vocab;
            } else if (strcmp(o, "--head-dim") == 0) {
                u = &k.head_dim;
            } else if (strcmp(o, "--max-pos") == 0) {
                u = &k.max_pos;
            } else if (strcmp(o, "--shards") == 0) {
                u = &k.shards;
            } else {
                fprintf(stderr, "dynamo-mkmodel: unknown option %s\n", o);
                usage();
                return 2;
            }
            if (num(o, a, 1, 1 << 24, &v) != 0) {
                return 2;
            }
            *u = (uint32_t) v;
        }
    }
    if (k.out == NULL) {
        usage();
        return 2;
    }
    if (k.kv_heads == 0) {
        k.kv_heads = k.heads;
    }
    if (k.head_dim == 0) {
        k.head_dim = k.hidden / k.heads;
    }
    if (k.heads % k.kv_heads != 0 || k.head_dim % 2 != 0
        || k.head_dim == 0)
    {
        fprintf(stderr, "dynamo-mkmodel: heads must be a multiple of "
                "kv-heads and head-dim even\n");
        return 2;
    }
    k.t = calloc(MK_MAX_TENSORS, sizeof(*k.t));
    if (k.t == NULL || k.layers * 14 + 3 > MK_MAX_TENSORS) {
        fprintf(stderr, "dynamo-mkmodel: too many layers\n");
        return 2;
    }
    mk_plan(&k);
    for (i = 0; i < (int) k.n; i++) {
        k.total_bytes += mk_count(&k.t[i]) * dw_dtype_size(k.dtype);
    }
    if (k.shards > k.n) {
        k.shards = (uint32_t) k.n;
    }
    /* contiguous runs of tensors, about total / shards bytes each */
    per = k.total_bytes / k.shards + 1;
    acc = 0;
    for (i = 0; i < (int) k.n; i++) {
        s = (int) (acc / per);
        k.t[i].shard = s < (int) k.shards ? s : (int) k.shards - 1;
        acc += mk_count(&k.t[i]) * dw_dtype_size(k.dtype);
    }
    if (mkdir(k.out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "dynamo-mkmodel: %s: %s\n", k.out, strerror(errno));
        return 1;
    }
    if (mk_config(&k) != 0) {
        fprintf(stderr, "dynamo-mkmodel: cannot write config.json\n");
        return 1;
    }
    for (s = 0; s < (int) k.shards; s++) {
        if (mk_shard(&k, s) != 0) {
            return 1;
        }
    }
    if (k.shards > 1 && mk_index(&k) != 0) {
        fprintf(stderr, "dynamo-mkmodel: cannot write the index\n");
        return 1;
    }
    if (k.tok_from != NULL) {
        for (i = 0; i < (int) (sizeof(tok_files) / sizeof(tok_files[0]));
             i++)
        {
            snprintf(from, sizeof(from), "%s/%s", k.tok_from, tok_files[i]);
            snprintf(to, sizeof(to), "%s/%s", k.out, tok_files[i]);
            if (mk_copy(from, to) < 0) {
                fprintf(stderr, "dynamo-mkmodel: cannot copy %s\n", from);
                return 1;
            }
        }
    }
    fprintf(stderr, "dynamo-mkmodel: %s: %llu parameters, %llu bytes\n",
            k.out, (unsigned long long) (k.total_bytes
                                         / dw_dtype_size(k.dtype)),
            (unsigned long long) k.total_bytes);
    free(k.t);
    return 0;
}
