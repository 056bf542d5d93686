/*
 * dynamo-worker: config.json of a Hugging Face model directory.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "dw_err.h"
#include "dw_model_int.h"

int
dw_model_arch_supported(const char *arch)
{
    return strcmp(arch, "LlamaForCausalLM") == 0
        || strcmp(arch, "MistralForCausalLM") == 0
        || strcmp(arch, "Qwen2ForCausalLM") == 0
        || strcmp(arch, "Qwen3ForCausalLM") == 0;
}

/* A positive integer field that fits 32 bits; def when absent (0: must be
 * present). */
static int
cfg_u32(json_t *root, const char *key, uint32_t def, uint32_t *out,
    char *err, size_t errlen)
{
    json_t     *v;
    json_int_t  x;

    v = json_object_get(root, key);
    if (v == NULL || json_is_null(v)) {
        if (def == 0) {
            dw_errf(err, errlen, "config.json: %s missing", key);
            return -1;
        }
        *out = def;
        return 0;
    }
    if (!json_is_integer(v)) {
        dw_errf(err, errlen, "config.json: %s is not an integer", key);
        return -1;
    }
    x = json_integer_value(v);
    if (x <= 0 || x > (json_int_t) UINT32_MAX / 4) {
        dw_errf(err, errlen, "config.json: %s = %lld out of range", key,
                (long long) x);
        return -1;
    }
    *out = (uint32_t) x;
    return 0;
}

static int
cfg_float(json_t *root, const char *key, float def, float *out, char *err,
    size_t errlen)
{
    json_t  *v;
    double   x;

    v = json_object_get(root, key);
    if (v == NULL || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v)) {
        dw_errf(err, errlen, "config.json: %s is not a number", key);
        return -1;
    }
    x = json_number_value(v);
    if (!(x > 0) || !isfinite(x)) {
        dw_errf(err, errlen, "config.json: %s = %g out of range", key, x);
        return -1;
    }
    *out = (float) x;
    return 0;
}

static int
cfg_bool(json_t *root, const char *key, int def)
{
    json_t  *v;

    v = json_object_get(root, key);
    if (json_is_boolean(v)) {
        return json_is_true(v);
    }
    return def;
}

static int
cfg_rope_scaling(json_t *root, dw_config_t *cfg, char *err, size_t errlen)
{
    json_t      *rs, *t;
    const char  *type;
    uint32_t     omax;

    rs = json_object_get(root, "rope_scaling");
    if (rs == NULL || json_is_null(rs)) {
        return 0;
    }
    if (!json_is_object(rs)) {
        dw_errf(err, errlen, "config.json: rope_scaling is not an object");
        return -1;
    }
    t = json_object_get(rs, "rope_type");
    if (!json_is_string(t)) {
        t = json_object_get(rs, "type");
    }
    type = json_is_string(t) ? json_string_value(t) : "";
    if (strcmp(type, "default") == 0) {
        return 0;
    }
    if (strcmp(type, "llama3") != 0) {
        dw_errf(err, errlen, "config.json: rope_scaling type \"%.32s\" not "
                "supported (llama3 is)", type);
        return -1;
    }
    cfg->rope_llama3 = 1;
    if (cfg_float(rs, "factor", 8.0f, &cfg->rope_factor, err, errlen) != 0
        || cfg_float(rs, "low_freq_factor", 1.0f, &cfg->rope_low_freq_factor,
                     err, errlen) != 0
        || cfg_float(rs, "high_freq_factor", 4.0f,
                     &cfg->rope_high_freq_factor, err, errlen) != 0
        || cfg_u32(rs, "original_max_position_embeddings", 8192, &omax, err,
                   errlen) != 0)
    {
        return -1;
    }
    if (cfg->rope_high_freq_factor <= cfg->rope_low_freq_factor) {
        dw_errf(err, errlen, "config.json: rope_scaling high_freq_factor must "
                "exceed low_freq_factor");
        return -1;
    }
    cfg->rope_orig_max_position = omax;
    return 0;
}

static int
cfg_token_ids(json_t *root, dw_config_t *cfg, char *err, size_t errlen)
{
    json_t  *v, *e;
    size_t   i;

    v = json_object_get(root, "bos_token_id");
    cfg->bos_id = -1;
    if (json_is_integer(v) && json_integer_value(v) >= 0
        && json_integer_value(v) < (json_int_t) cfg->vocab_size)
    {
        cfg->bos_id = json_integer_value(v);
    }
    v = json_object_get(root, "eos_token_id");
    cfg->n_eos = 0;
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0
            || json_integer_value(v) >= (json_int_t) cfg->vocab_size)
        {
            dw_errf(err, errlen, "config.json: eos_token_id out of range");
            return -1;
        }
        cfg->eos_ids[cfg->n_eos++] = (uint32_t) json_integer_value(v);
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, e) {
            if (!json_is_integer(e) || json_integer_value(e) < 0
                || json_integer_value(e) >= (json_int_t) cfg->vocab_size)
            {
                dw_errf(err, errlen, "config.json: eos_token_id[%zu] out of "
                        "range", i);
                return -1;
            }
            if (cfg->n_eos == DW_MAX_EOS) {
                dw_errf(err, errlen, "config.json: more than %d eos ids",
                        DW_MAX_EOS);
                return -1;
            }
            cfg->eos_ids[cfg->n_eos++] = (uint32_t) json_integer_value(e);
        }
    } else if (v != NULL && !json_is_null(v)) {
        dw_errf(err, errlen, "config.json: eos_token_id is neither an "
                "integer nor a list");
        return -1;
    }
    return 0;
}

static int
cfg_parse(json_t *root, dw_config_t *cfg, char *err, size_t errlen)
{
    json_t      *archs, *a, *dt;
    const char  *s;

    memset(cfg, 0, sizeof(*cfg));
    archs = json_object_get(root, "architectures");
    a = json_is_array(archs) ? json_array_get(archs, 0) : NULL;
    if (!json_is_string(a)) {
        dw_errf(err, errlen, "config.json: architectures missing");
        return -1;
    }
    s = json_string_value(a);
    if (!dw_model_arch_supported(s)) {
        dw_errf(err, errlen, "config.json: architecture %.64s not supported "
                "(LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
                "Qwen3ForCausalLM are)", s);
        return -1;
    }
    snprintf(cfg->arch, sizeof(cfg->arch), "%s", s);

    if (cfg_u32(root, "vocab_size", 0, &cfg->vocab_size, err, errlen) != 0
        || cfg_u32(root, "hidden_size", 0, &cfg->hidden_size, err,
                   errlen) != 0
        || cfg_u32(root, "intermediate_size", 0, &cfg->intermediate_size,
                   err, errlen) != 0
        || cfg_u32(root, "num_hidden_layers", 0, &cfg->n_layers, err,
                   errlen) != 0
        || cfg_u32(root, "num_attention_heads", 0, &cfg->n_heads, err,
                   errlen) != 0
        || cfg_u32(root, "num_key_value_heads", cfg->n_heads,
                   &cfg->n_kv_heads, err, errlen) != 0
        || cfg_u32(root, "max_position_embeddings", 2048,
                   &cfg->max_position, err, errlen) != 0
        || cfg_float(root, "rms_norm_eps", 1e-6f, &cfg->rms_eps, err,
                     errlen) != 0
        || cfg_float(root, "rope_theta", 10000.0f, &cfg->rope_theta, err,
                     errlen) != 0)
    {
        return -1;
    }
    if (cfg->n_heads % cfg->n_kv_heads != 0) {
        dw_errf(err, errlen, "config.json: num_attention_heads %u is not a "
                "multiple of num_key_value_heads %u", cfg->n_heads,
                cfg->n_kv_heads);
        return -1;
    }
    if (json_object_get(root, "head_dim") != NULL
        && !json_is_null(json_object_get(root, "head_dim")))
    {
        if (cfg_u32(root, "head_dim", 0, &cfg->head_dim, err, errlen) != 0) {
            return -1;
        }
    } else {
        if (cfg->hidden_size % cfg->n_heads != 0) {
            dw_errf(err, errlen, "config.json: hidden_size %u is not a "
                    "multiple of num_attention_heads %u", cfg->hidden_size,
                    cfg->n_heads);
            return -1;
        }
        cfg->head_dim = cfg->hidden_size / cfg->n_heads;
    }
    if (cfg->head_dim % 2 != 0 || cfg->head_dim > 1024) {
        dw_errf(err, errlen, "config.json: head_dim %u must be even and at "
                "most 1024", cfg->head_dim);
        return -1;
    }
    if (cfg_rope_scaling(root, cfg, err, errlen) != 0) {
        return -1;
    }

    cfg->tie_embeddings = cfg_bool(root, "tie_word_embeddings", 0);
    if (strcmp(cfg->arch, "Qwen2ForCausalLM") == 0) {
        cfg->attn_bias = 1;          /* Qwen2 always has q/k/v biases */
    } else {
        cfg->attn_bias = cfg_bool(root, "attention_bias", 0);
    }
    cfg->qk_norm = strcmp(cfg->arch, "Qwen3ForCausalLM") == 0;

    if (cfg_token_ids(root, cfg, err, errlen) != 0) {
        return -1;
    }

    cfg->dtype = DW_DT_F32;
    dt = json_object_get(root, "torch_dtype");
    if (!json_is_string(dt)) {
        dt = json_object_get(root, "dtype");
    }
    if (json_is_string(dt)) {
        s = json_string_value(dt);
        if (strcmp(s, "bfloat16") == 0) {
            cfg->dtype = DW_DT_BF16;
        } else if (strcmp(s, "float16") == 0) {
            cfg->dtype = DW_DT_F16;
        } else if (strcmp(s, "float32") != 0) {
            dw_errf(err, errlen, "config.json: dtype %.32s not supported "
                    "(float32, bfloat16, float16 are)", s);
            return -1;
        }
    }
    return 0;
}

int
dw_model_load_config(const char *dir, dw_config_t *cfg, char *err,
    size_t errlen)
{
    char          path[4096];
    json_t       *root;
    json_error_t  jerr;
    int           rc;

    if (snprintf(path, sizeof(path), "%s/config.json", dir)
        >= (int) sizeof(path))
    {
        dw_errf(err, errlen, "model directory path too long");
        return -1;
    }
    root = json_load_file(path, 0, &jerr);
    if (root == NULL) {
        dw_errf(err, errlen, "%s: %s (line %d)", path, jerr.text, jerr.line);
        return -1;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        dw_errf(err, errlen, "%s: not a JSON object", path);
        return -1;
    }
    rc = cfg_parse(root, cfg, err, errlen);
    json_decref(root);
    return rc;
}
