/*
 * dynamo-worker: a Hugging Face model directory (config.json + safetensors).
 *
 * dw_model_load_config reads only config.json (the mock engine needs no
 * weights); dw_model_load also memory-maps the safetensors and checks
 * every tensor's presence, dtype and shape. Both write a clear reason to
 * err and return -1 on failure, 0 on success.
 */
#ifndef DW_MODEL_H
#define DW_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define DW_MAX_EOS  8

typedef enum {
    DW_DT_F32 = 0,
    DW_DT_BF16,
    DW_DT_F16
} dw_dtype_t;

typedef struct {
    char      arch[64];           /* e.g. "LlamaForCausalLM" */
    uint32_t  vocab_size;
    uint32_t  hidden_size;
    uint32_t  intermediate_size;
    uint32_t  n_layers;
    uint32_t  n_heads;
    uint32_t  n_kv_heads;
    uint32_t  head_dim;
    uint32_t  max_position;       /* max_position_embeddings */
    float     rms_eps;
    float     rope_theta;

    int       rope_llama3;        /* rope_scaling.rope_type == "llama3" */
    float     rope_factor;
    float     rope_low_freq_factor;
    float     rope_high_freq_factor;
    uint32_t  rope_orig_max_position;

    int       attn_bias;          /* Qwen2: q/k/v biases */
    int       qk_norm;            /* Qwen3: per-head RMSNorm of q and k */
    int       tie_embeddings;

    int64_t   bos_id;             /* -1 when absent */
    uint32_t  eos_ids[DW_MAX_EOS];
    uint32_t  n_eos;
    dw_dtype_t dtype;             /* dtype of the weights on disk */
} dw_config_t;

typedef struct dw_model_s  dw_model_t;   /* defined in worker/src */

int dw_model_load_config(const char *dir, dw_config_t *cfg, char *err,
    size_t errlen);
int dw_model_load(const char *dir, dw_model_t **out, char *err,
    size_t errlen);
const dw_config_t *dw_model_config(const dw_model_t *m);
void dw_model_free(dw_model_t *m);

#endif
