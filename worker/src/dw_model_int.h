/*
 * dynamo-worker: the loaded model (internal; the cpu backend reads it).
 *
 * Matrices point into the mmapped safetensors in their dtype (row-major,
 * rows x cols, as HF stores nn.Linear weights: out x in). Vectors (norm
 * weights, biases) are small and converted to F32 copies at load.
 */
#ifndef DW_MODEL_INT_H
#define DW_MODEL_INT_H

#include "dw_model.h"
#include "dw_safetensors_int.h"

typedef struct {
    const void  *data;
    dw_dtype_t   dtype;
    uint32_t     rows;
    uint32_t     cols;
} dw_mat_t;

typedef struct {
    float     *attn_norm;      /* [hidden] */
    dw_mat_t   q, k, v, o;     /* q: [heads*hd, hidden], k/v: [kv*hd, hidden],
                                  o: [hidden, heads*hd] */
    float     *q_bias;         /* attn_bias (Qwen2, Llama attention_bias) */
    float     *k_bias;
    float     *v_bias;
    float     *o_bias;         /* Llama/Mistral attention_bias only */
    float     *q_norm;         /* qk_norm (Qwen3): [hd] */
    float     *k_norm;
    float     *ffn_norm;       /* [hidden] */
    dw_mat_t   gate, up, down; /* gate/up: [inter, hidden], down: [hidden,
                                  inter] */
} dw_layer_t;

struct dw_model_s {
    dw_config_t    cfg;
    dw_mat_t       embed;      /* [vocab, hidden] */
    dw_mat_t       lm_head;    /* = embed when tied */
    float         *final_norm;
    dw_layer_t    *layers;
    dw_st_file_t  *files;
    size_t         n_files;
    uint64_t       n_params;   /* matrix elements, lm_head counted once */
};

/* Architectures dw_model_load accepts. */
int dw_model_arch_supported(const char *arch);

#endif
