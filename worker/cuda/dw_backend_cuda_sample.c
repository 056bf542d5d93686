/*
 * dynamo-worker: the cuda backend's sample op. The step runs as forward
 * does, but the lm_head's F32 logits stay on the device: dw_cu_sample
 * (dw_cu_sample.cu) samples every row there, and only the small
 * per-row outputs (token, logprobs, the advanced RNG state) come back.
 *
 * Per step on the host: each row's parameters (dw_cu_sample_param_t),
 * and for the rows with penalties only, the distinct tokens of prompt +
 * output with their output counts (dw_sample_pen_list, O(history)),
 * into pinned buffers copied with the step. The RNG state goes to the
 * device and comes back advanced (one xoshiro256** step per non-greedy
 * token, exactly as dw_sample), so seeded streams continue on the host
 * identically (remote prefill's first token included).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dw_backend_cuda_int.h"
#include "dw_sample_thr_int.h"

_Static_assert(DW_CU_SAMPLE_TOP == DW_MAX_TOP_LOGPROBS,
               "dw_cu_sample_out_t holds DW_MAX_TOP_LOGPROBS top logprobs");

struct dw_cu_smp_s {
    uint32_t               cap_rows;
    dw_cu_sample_param_t  *par_h, *par_d;    /* pinned host, device */
    dw_cu_sample_out_t    *out_h, *out_d;
    float                 *work;             /* [cap_rows][vocab] */
    size_t                 cap_pen;          /* pairs */
    uint32_t              *pen_h, *pen_d;
    uint32_t              *count;            /* [vocab], kept zero */
    uint32_t               n_rows;           /* this step's */
    size_t                 n_pen;            /* this step's pairs */
};

void
dw_cu_sample_param_fill(dw_cu_sample_param_t *p, const dw_sampling_t *sp,
    const dw_rng_t *rng, uint32_t pen_off, uint32_t n_pen)
{
    memset(p, 0, sizeof(*p));
    /* as dw_sample: temperatures this small are greedy */
    p->greedy = dw_sample_is_greedy(sp);
    p->inv_temp = p->greedy ? 1.0f : 1.0f / sp->temperature;
    p->top_k = sp->top_k;
    p->top_p = sp->top_p;
    p->min_p = sp->min_p;
    p->log_min_p = sp->min_p > 0.0f ? logf(sp->min_p) : 0.0f;
    p->repetition_penalty = sp->repetition_penalty;
    p->presence_penalty = sp->presence_penalty;
    p->frequency_penalty = sp->frequency_penalty;
    p->n_logprobs = sp->logprobs < 0 ? -1
                    : sp->logprobs > DW_MAX_TOP_LOGPROBS
                      ? DW_MAX_TOP_LOGPROBS : sp->logprobs;
    p->pen_off = pen_off;
    p->n_pen = n_pen;
    memcpy(p->rng, rng->s, sizeof(p->rng));
}

static int
smp_alloc_dev(void **p, size_t bytes)
{
    cudaFree(*p);
    *p = NULL;
    if (cudaMalloc(p, bytes ? bytes : 1) != cudaSuccess) {
        *p = NULL;
        return -1;
    }
    return 0;
}

static int
smp_alloc_host(void **p, size_t bytes)
{
    cudaFreeHost(*p);
    *p = NULL;
    if (cudaMallocHost(p, bytes ? bytes : 1) != cudaSuccess) {
        *p = NULL;
        return -1;
    }
    return 0;
}

static int
smp_reserve(struct dw_cu_smp_s *s, uint32_t vocab, uint32_t rows,
    size_t pairs)
{
    if (rows > s->cap_rows) {
        s->cap_rows = 0;
        if (smp_alloc_host((void **) &s->par_h, rows * sizeof(*s->par_h))
            || smp_alloc_dev((void **) &s->par_d, rows * sizeof(*s->par_d))
            || smp_alloc_host((void **) &s->out_h, rows * sizeof(*s->out_h))
            || smp_alloc_dev((void **) &s->out_d, rows * sizeof(*s->out_d))
            || smp_alloc_dev((void **) &s->work,
                             (size_t) rows * vocab * sizeof(float)))
        {
            return -1;
        }
        s->cap_rows = rows;
    }
    if (pairs > s->cap_pen) {
        s->cap_pen = 0;
        if (smp_alloc_host((void **) &s->pen_h, pairs * 2 * sizeof(uint32_t))
            || smp_alloc_dev((void **) &s->pen_d,
                             pairs * 2 * sizeof(uint32_t)))
        {
            return -1;
        }
        s->cap_pen = pairs;
    }
    return 0;
}

int
dw_cu_sample_step(dw_backend_t *be, dw_step_t *st,
    const dw_sample_row_t *rows, dw_sample_out_t *out)
{
    dw_cu_t                   *c = be->priv;
    struct dw_cu_smp_s        *s = c->smp;
    uint32_t                   vocab = c->m->cfg.vocab_size, i, j, n, hist;
    size_t                     pairs = 0, off;
    const dw_sample_row_t     *r;
    const dw_cu_sample_out_t  *o;
    cudaError_t                e;

    e = cudaSetDevice(c->device);
    if (e != cudaSuccess) {
        fprintf(stderr, "dw cuda: cudaSetDevice(%d): %s\n", c->device,
                cudaGetErrorString(e));
        return -1;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL || (s->count = calloc(vocab, sizeof(uint32_t))) == NULL)
        {
            free(s);
            return -1;
        }
        c->smp = s;
    }
    /* room for the penalty pairs: at most min(history, vocab) a row */
    for (i = 0; i < st->n_logits; i++) {
        r = &rows[i];
        if (dw_sample_has_pen(r->sp)) {
            hist = r->n_prompt + r->n_out;
            pairs += hist < vocab ? hist : vocab;
        }
    }
    if (smp_reserve(s, vocab, st->n_logits, pairs) != 0) {
        fprintf(stderr, "dw cuda: out of memory for device sampling (%u "
                "rows)\n", st->n_logits);
        return -1;
    }
    off = 0;
    for (i = 0; i < st->n_logits; i++) {
        r = &rows[i];
        n = 0;
        if (dw_sample_has_pen(r->sp)) {
            n = dw_sample_pen_list(r->tokens, r->n_prompt, r->n_out, vocab,
                                   s->count, s->pen_h + 2 * off);
        }
        dw_cu_sample_param_fill(&s->par_h[i], r->sp, r->rng, (uint32_t) off,
                                n);
        off += n;
    }
    s->n_rows = st->n_logits;
    s->n_pen = off;

    if (dw_cu_forward_dev_sample(be, st) != 0) {
        return -1;
    }
    for (i = 0; i < st->n_logits; i++) {
        o = &s->out_h[i];
        if (o->token >= vocab) {
            fprintf(stderr, "dw cuda: sampled id %u outside the vocabulary\n",
                    o->token);
            return -1;
        }
        memset(&out[i], 0, sizeof(out[i]));
        out[i].token = o->token;
        out[i].logprob = o->logprob;
        out[i].n_top = o->n_top <= DW_MAX_TOP_LOGPROBS ? o->n_top : 0;
        for (j = 0; j < out[i].n_top; j++) {
            out[i].top_ids[j] = o->top_ids[j];
            out[i].top_logprobs[j] = o->top_logprobs[j];
        }
        memcpy(rows[i].rng->s, o->rng, sizeof(o->rng));
    }
    return 0;
}

/* Called by the forward pass once the logits are in c->logits. */
int
dw_cu_sample_enqueue(dw_cu_t *c, uint32_t n_logits)
{
    struct dw_cu_smp_s  *s = c->smp;
    cudaError_t          e;

    if (s == NULL || n_logits != s->n_rows) {
        fprintf(stderr, "dw cuda: device sampling: %u logits rows, %u "
                "prepared\n", n_logits, s != NULL ? s->n_rows : 0);
        return -1;
    }
    e = cudaMemcpyAsync(s->par_d, s->par_h, n_logits * sizeof(*s->par_h),
                        cudaMemcpyHostToDevice, c->stream);
    if (e == cudaSuccess && s->n_pen > 0) {
        e = cudaMemcpyAsync(s->pen_d, s->pen_h,
                            s->n_pen * 2 * sizeof(uint32_t),
                            cudaMemcpyHostToDevice, c->stream);
    }
    if (e == cudaSuccess) {
        e = dw_cu_sample(s->out_d, s->work, c->logits, s->par_d,
                         s->n_pen > 0 ? s->pen_d : NULL, NULL, n_logits,
                         c->m->cfg.vocab_size, c->stream);
    }
    if (e == cudaSuccess) {
        e = cudaMemcpyAsync(s->out_h, s->out_d, n_logits * sizeof(*s->out_h),
                            cudaMemcpyDeviceToHost, c->stream);
    }
    if (e != cudaSuccess) {
        fprintf(stderr, "dw cuda: device sampling: %s\n",
                cudaGetErrorString(e));
        return -1;
    }
    return 0;
}

void
dw_cu_sample_free(dw_cu_t *c)
{
    struct dw_cu_smp_s  *s = c->smp;

    if (s == NULL) {
        return;
    }
    cudaFreeHost(s->par_h);
    cudaFree(s->par_d);
    cudaFreeHost(s->out_h);
    cudaFree(s->out_d);
    cudaFree(s->work);
    cudaFreeHost(s->pen_h);
    cudaFree(s->pen_d);
    free(s->count);
    free(s);
    c->smp = NULL;
}
