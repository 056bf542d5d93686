/*
 * dynamo-worker: the cpu backend's sample op (opts.sample_on_backend).
 * Not for production (the host sampler is as good on the host): it runs
 * the engine's backend-sampling path, the one the cuda backend takes,
 * on the host, with the threshold sampler the GPU runs (dw_sample_thr),
 * so tests cover that path without a GPU.
 */
#include <stdlib.h>
#include <string.h>

#include "dw_backend_cpu_int.h"
#include "dw_sample_thr_int.h"

struct dw_cpu_smp_s {
    dw_sampler_t  sampler;
    float        *logits;        /* [cap][vocab] */
    uint32_t      cap;
};

int
dw_cpu_sample(dw_backend_t *be, dw_step_t *st, const dw_sample_row_t *rows,
    dw_sample_out_t *out)
{
    dw_cpu_t              *c = be->priv;
    struct dw_cpu_smp_s   *p = c->smp;
    uint32_t               vocab = c->m->cfg.vocab_size, i;
    const dw_sample_row_t *r;
    float                 *keep;

    if (p == NULL) {
        p = calloc(1, sizeof(*p));
        if (p == NULL || dw_sampler_init(&p->sampler, vocab) != 0) {
            free(p);
            return -1;
        }
        c->smp = p;
    }
    if (st->n_logits > p->cap) {
        free(p->logits);
        p->logits = malloc((size_t) st->n_logits * vocab * sizeof(float));
        if (p->logits == NULL) {
            p->cap = 0;
            return -1;
        }
        p->cap = st->n_logits;
    }
    keep = st->logits;
    st->logits = p->logits;
    if (be->ops->forward(be, st) != 0) {
        st->logits = keep;
        return -1;
    }
    st->logits = keep;
    for (i = 0; i < st->n_logits; i++) {
        r = &rows[i];
        dw_sample_thr(&p->sampler, p->logits + (size_t) i * vocab, r->sp,
                      r->rng, r->tokens, r->n_prompt, r->n_out, &out[i]);
    }
    return 0;
}

void
dw_cpu_sample_free(dw_cpu_t *c)
{
    if (c->smp != NULL) {
        dw_sampler_free(&c->smp->sampler);
        free(c->smp->logits);
        free(c->smp);
        c->smp = NULL;
    }
}
