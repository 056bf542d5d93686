/*
 * dynamo-worker: loading a Hugging Face model directory. The safetensors
 * (one file, or shards listed by model.safetensors.index.json) stay
 * memory-mapped; every tensor the architecture needs is checked for
 * presence, dtype and shape before the model is handed out.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "dw_kern_int.h"
#include "dw_err.h"
#include "dw_model_int.h"

#define DW_MAX_SHARDS  1024

static int
m_open_shards(dw_model_t *m, const char *dir, char *err, size_t errlen)
{
    char          path[4096];
    json_t       *root, *wm, *v;
    json_error_t  jerr;
    const char   *key, *fn, **names;
    size_t        n, i;
    struct stat   st;

    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    if (stat(path, &st) != 0) {
        m->files = calloc(1, sizeof(*m->files));
        if (m->files == NULL) {
            dw_errf(err, errlen, "out of memory");
            return -1;
        }
        snprintf(path, sizeof(path), "%s/model.safetensors", dir);
        if (dw_st_open(path, &m->files[0], err, errlen) != 0) {
            return -1;
        }
        m->n_files = 1;
        return 0;
    }

    root = json_load_file(path, 0, &jerr);
    if (root == NULL) {
        dw_errf(err, errlen, "%s: %s (line %d)", path, jerr.text, jerr.line);
        return -1;
    }
    wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        json_decref(root);
        dw_errf(err, errlen, "%s: weight_map missing or empty", path);
        return -1;
    }
    /* distinct shard file names, in order of first appearance */
    names = calloc(json_object_size(wm), sizeof(*names));
    if (names == NULL) {
        json_decref(root);
        dw_errf(err, errlen, "out of memory");
        return -1;
    }
    n = 0;
    json_object_foreach(wm, key, v) {
        if (!json_is_string(v)) {
            dw_errf(err, errlen, "%s: weight_map[%s] is not a file name", path,
                    key);
            goto fail;
        }
        fn = json_string_value(v);
        if (fn[0] == '\0' || strchr(fn, '/') != NULL || fn[0] == '.') {
            dw_errf(err, errlen,
                    "%s: weight_map[%s]: bad shard name \"%.64s\"", path, key,
                    fn);
            goto fail;
        }
        for (i = 0; i < n; i++) {
            if (strcmp(names[i], fn) == 0) {
                break;
            }
        }
        if (i == n) {
            if (n == DW_MAX_SHARDS) {
                dw_errf(err, errlen, "%s: more than %d shards", path,
                        DW_MAX_SHARDS);
                goto fail;
            }
            names[n++] = fn;
        }
    }
    m->files = calloc(n, sizeof(*m->files));
    if (m->files == NULL) {
        dw_errf(err, errlen, "out of memory");
        goto fail;
    }
    for (i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (dw_st_open(path, &m->files[i], err, errlen) != 0) {
            goto fail;
        }
        m->n_files = i + 1;
    }
    free(names);
    json_decref(root);
    return 0;

fail:
    free(names);
    json_decref(root);
    return -1;
}

static const dw_st_tensor_t *
m_find(const dw_model_t *m, const char *name, const dw_st_file_t **file)
{
    const dw_st_tensor_t  *t;
    size_t                 i;

    for (i = 0; i < m->n_files; i++) {
        t = dw_st_find(&m->files[i], name);
        if (t != NULL) {
            *file = &m->files[i];
            return t;
        }
    }
    return NULL;
}

static const dw_st_tensor_t *
m_tensor(const dw_model_t *m, const char *name, uint32_t ndim,
    const uint64_t *shape, const dw_st_file_t **file, char *err,
    size_t errlen)
{
    const dw_st_tensor_t  *t;
    char                   got[128], want[128];
    size_t                 gl, wl;
    uint32_t               i;
    int                    ok;

    t = m_find(m, name, file);
    if (t == NULL) {
        dw_errf(err, errlen, "%s: tensor missing", name);
        return NULL;
    }
    if (!t->supported) {
        dw_errf(err, errlen, "%s: dtype %s not supported (F32, BF16, F16 are)",
                name, t->dtype_name);
        return NULL;
    }
    if ((uintptr_t) ((*file)->data + t->begin) % dw_dtype_size(t->dtype)) {
        /* writers pad the header to 8 bytes; kernels read elements in
         * place and need them aligned */
        dw_errf(err, errlen, "%s: data not aligned to its %s elements", name,
                t->dtype_name);
        return NULL;
    }
    ok = t->ndim == ndim;
    for (i = 0; ok && i < ndim; i++) {
        ok = t->shape[i] == shape[i];
    }
    if (!ok) {
        gl = wl = 0;
        for (i = 0; i < t->ndim && gl < sizeof(got) - 24; i++) {
            gl += snprintf(got + gl, sizeof(got) - gl, "%s%llu",
                           i ? ", " : "", (unsigned long long) t->shape[i]);
        }
        got[gl] = '\0';
        for (i = 0; i < ndim; i++) {
            wl += snprintf(want + wl, sizeof(want) - wl, "%s%llu",
                           i ? ", " : "", (unsigned long long) shape[i]);
        }
        want[wl] = '\0';
        dw_errf(err, errlen, "%s: shape [%s], expected [%s]", name, got, want);
        return NULL;
    }
    return t;
}

static int
m_mat(dw_model_t *m, const char *name, uint32_t rows, uint32_t cols,
    dw_mat_t *out, char *err, size_t errlen)
{
    const dw_st_tensor_t  *t;
    const dw_st_file_t    *f;
    uint64_t               shape[2];

    shape[0] = rows;
    shape[1] = cols;
    t = m_tensor(m, name, 2, shape, &f, err, errlen);
    if (t == NULL) {
        return -1;
    }
    out->data = f->data + t->begin;
    out->dtype = t->dtype;
    out->rows = rows;
    out->cols = cols;
    m->n_params += (uint64_t) rows * cols;
    return 0;
}

/* A 1-D tensor, copied to F32. */
static int
m_vec(dw_model_t *m, const char *name, uint32_t n, float **out, char *err,
    size_t errlen)
{
    const dw_st_tensor_t  *t;
    const dw_st_file_t    *f;
    uint64_t               shape[1];
    float                 *v;

    shape[0] = n;
    t = m_tensor(m, name, 1, shape, &f, err, errlen);
    if (t == NULL) {
        return -1;
    }
    v = malloc((size_t) n * sizeof(float));
    if (v == NULL) {
        dw_errf(err, errlen, "out of memory");
        return -1;
    }
    dw_to_f32(v, f->data + t->begin, t->dtype, n);
    *out = v;
    return 0;
}

static int
m_layer(dw_model_t *m, uint32_t l, char *err, size_t errlen)
{
    const dw_config_t  *c = &m->cfg;
    dw_layer_t         *L = &m->layers[l];
    char                n[160];
    uint32_t            qd = c->n_heads * c->head_dim;
    uint32_t            kd = c->n_kv_heads * c->head_dim;
    uint32_t            h = c->hidden_size, im = c->intermediate_size;

#define NM(s)  (snprintf(n, sizeof(n), "model.layers.%u.%s", l, s), n)
    if (m_vec(m, NM("input_layernorm.weight"), h, &L->attn_norm, err,
              errlen) != 0
        || m_mat(m, NM("self_attn.q_proj.weight"), qd, h, &L->q, err,
                 errlen) != 0
        || m_mat(m, NM("self_attn.k_proj.weight"), kd, h, &L->k, err,
                 errlen) != 0
        || m_mat(m, NM("self_attn.v_proj.weight"), kd, h, &L->v, err,
                 errlen) != 0
        || m_mat(m, NM("self_attn.o_proj.weight"), h, qd, &L->o, err,
                 errlen) != 0
        || m_vec(m, NM("post_attention_layernorm.weight"), h, &L->ffn_norm,
                 err, errlen) != 0
        || m_mat(m, NM("mlp.gate_proj.weight"), im, h, &L->gate, err,
                 errlen) != 0
        || m_mat(m, NM("mlp.up_proj.weight"), im, h, &L->up, err,
                 errlen) != 0
        || m_mat(m, NM("mlp.down_proj.weight"), h, im, &L->down, err,
                 errlen) != 0)
    {
        return -1;
    }
    if (c->attn_bias) {
        if (m_vec(m, NM("self_attn.q_proj.bias"), qd, &L->q_bias, err,
                  errlen) != 0
            || m_vec(m, NM("self_attn.k_proj.bias"), kd, &L->k_bias, err,
                     errlen) != 0
            || m_vec(m, NM("self_attn.v_proj.bias"), kd, &L->v_bias, err,
                     errlen) != 0)
        {
            return -1;
        }
        /* Llama/Mistral attention_bias also biases o_proj; Qwen2 does not */
        if (strcmp(c->arch, "Qwen2ForCausalLM") != 0
            && m_vec(m, NM("self_attn.o_proj.bias"), h, &L->o_bias, err,
                     errlen) != 0)
        {
            return -1;
        }
    }
    if (c->qk_norm) {
        if (m_vec(m, NM("self_attn.q_norm.weight"), c->head_dim, &L->q_norm,
                  err, errlen) != 0
            || m_vec(m, NM("self_attn.k_norm.weight"), c->head_dim,
                     &L->k_norm, err, errlen) != 0)
        {
            return -1;
        }
    }
#undef NM
    return 0;
}

int
dw_model_load(const char *dir, dw_model_t **out, char *err, size_t errlen)
{
    dw_model_t  *m;
    dw_config_t *c;
    uint32_t     l;

    *out = NULL;
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        dw_errf(err, errlen, "out of memory");
        return -1;
    }
    c = &m->cfg;
    if (dw_model_load_config(dir, c, err, errlen) != 0
        || m_open_shards(m, dir, err, errlen) != 0)
    {
        dw_model_free(m);
        return -1;
    }
    m->layers = calloc(c->n_layers, sizeof(*m->layers));
    if (m->layers == NULL) {
        dw_errf(err, errlen, "out of memory");
        dw_model_free(m);
        return -1;
    }
    if (m_mat(m, "model.embed_tokens.weight", c->vocab_size, c->hidden_size,
              &m->embed, err, errlen) != 0
        || m_vec(m, "model.norm.weight", c->hidden_size, &m->final_norm, err,
                 errlen) != 0)
    {
        dw_model_free(m);
        return -1;
    }
    if (c->tie_embeddings) {
        m->lm_head = m->embed;
    } else if (m_mat(m, "lm_head.weight", c->vocab_size, c->hidden_size,
                     &m->lm_head, err, errlen) != 0)
    {
        dw_model_free(m);
        return -1;
    }
    for (l = 0; l < c->n_layers; l++) {
        if (m_layer(m, l, err, errlen) != 0) {
            dw_model_free(m);
            return -1;
        }
    }
    /* the weights' own dtype wins over config.json's torch_dtype */
    c->dtype = m->layers[0].q.dtype;
    *out = m;
    return 0;
}

const dw_config_t *
dw_model_config(const dw_model_t *m)
{
    return &m->cfg;
}

void
dw_model_free(dw_model_t *m)
{
    size_t    i;
    uint32_t  l;

    if (m == NULL) {
        return;
    }
    if (m->layers != NULL) {
        for (l = 0; l < m->cfg.n_layers; l++) {
            free(m->layers[l].attn_norm);
            free(m->layers[l].ffn_norm);
            free(m->layers[l].q_bias);
            free(m->layers[l].k_bias);
            free(m->layers[l].v_bias);
            free(m->layers[l].o_bias);
            free(m->layers[l].q_norm);
            free(m->layers[l].k_norm);
        }
        free(m->layers);
    }
    free(m->final_norm);
    for (i = 0; i < m->n_files; i++) {
        dw_st_close(&m->files[i]);
    }
    free(m->files);
    free(m);
}
