/*
 * Test support for the model and cpu backend tests.
 */
#include <stdlib.h>

#include "dw_rand.h"
#include "dw_tsupport_model.h"

/* models/stories260K/README.md: "Once upon a time" and its greedy
 * continuation, from the original llama2.c program */
const uint32_t  dw_ts_stories_prompt[5] = { 1, 403, 407, 261, 378 };
const uint32_t  dw_ts_stories_greedy[25] = {
    432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396,
    267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295
};

uint32_t
dw_ts_argmax(const float *v, uint32_t n)
{
    uint32_t  i, best = 0;

    for (i = 1; i < n; i++) {
        if (v[i] > v[best]) {
            best = i;
        }
    }
    return best;
}

int
dw_ts_greedy(dw_backend_t *be, const uint32_t *prompt, uint32_t n_prompt,
    const uint32_t *chunk, uint32_t n_chunks, const uint32_t *blocks,
    uint32_t n_blocks, uint32_t *out, uint32_t n_out)
{
    dw_seq_step_t  seq;
    dw_step_t      st;
    float         *logits;
    uint32_t       pos = 0, c, n = 0, tok;

    logits = malloc(be->cfg.vocab_size * sizeof(float));
    if (logits == NULL) {
        return -1;
    }
    for (c = 0; c < n_chunks; c++) {
        seq.tokens = prompt + pos;
        seq.n_tokens = chunk[c];
        seq.pos = pos;
        seq.blocks = blocks;
        seq.n_blocks = n_blocks;
        seq.want_logits = c + 1 == n_chunks;
        st.seqs = &seq;
        st.n_seqs = 1;
        st.n_tokens = chunk[c];
        st.n_logits = seq.want_logits;
        st.logits = logits;
        st.kv_usage = 0;
        if (be->ops->forward(be, &st) != 0) {
            free(logits);
            return -1;
        }
        pos += chunk[c];
    }
    while (n < n_out) {
        tok = dw_ts_argmax(logits, be->cfg.vocab_size);
        out[n++] = tok;
        if (n == n_out) {
            break;
        }
        seq.tokens = &tok;
        seq.n_tokens = 1;
        seq.pos = pos;
        seq.want_logits = 1;
        st.n_tokens = 1;
        st.n_logits = 1;
        if (be->ops->forward(be, &st) != 0) {
            free(logits);
            return -1;
        }
        pos++;
    }
    free(logits);
    return 0;
}

uint64_t
dw_ts_rand(uint64_t *s)
{
    return dw_splitmix64(s);
}

float
dw_ts_randf(uint64_t *s)
{
    return (float) ((double) (dw_ts_rand(s) >> 11) / 9007199254740992.0 * 2
                    - 1);
}
