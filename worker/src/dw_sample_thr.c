/*
 * dynamo-worker: the threshold sampler, sequential reference of the GPU
 * sampler (see dw_sample_thr_int.h for the algorithm). Each loop over
 * the vocabulary here is one block-wide pass (a count, a sum or an
 * argmax reduction) in worker/cuda/dw_cu_sample.cu; keep the two alike.
 */
#include <math.h>
#include <string.h>

#include "dw_sample_thr_int.h"

/* float -> 32-bit key with the same order (-0 and +0 one key) */
static inline uint32_t
dw_fkey(float f)
{
    uint32_t  u;

    memcpy(&u, &f, sizeof(u));
    if (f == 0.0f) {
        return 0x80000000u;
    }
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static inline uint32_t
dw_fbits(float f)
{
    uint32_t  u;

    memcpy(&u, &f, sizeof(u));
    return u;
}

uint32_t
dw_sample_pen_list(const uint32_t *tokens, uint32_t n_prompt, uint32_t n_out,
    uint32_t vocab, uint32_t *count, uint32_t *pen)
{
    uint32_t  i, t, n = 0;

    /* count[t] = 1 marks "in the history", then + its output count */
    for (i = 0; i < n_prompt + n_out; i++) {
        t = tokens[i];
        if (t < vocab && count[t] == 0) {
            count[t] = 1;
            pen[2 * n] = t;
            n++;
        }
    }
    for (i = n_prompt; i < n_prompt + n_out; i++) {
        if (tokens[i] < vocab) {
            count[tokens[i]]++;
        }
    }
    for (i = 0; i < n; i++) {
        t = pen[2 * i];
        pen[2 * i + 1] = count[t] - 1;
        count[t] = 0;
    }
    return n;
}

int
dw_sample_has_pen(const dw_sampling_t *sp)
{
    float  rp = sp->repetition_penalty;

    return (rp > 0.0f && rp != 1.0f) || sp->presence_penalty != 0.0f
           || sp->frequency_penalty != 0.0f;
}

/* x = logits with the penalties (as dw_penalize, the same float ops) */
static void
dw_thr_penalize(dw_sampler_t *s, const float *logits, const dw_sampling_t *sp,
    const uint32_t *tokens, uint32_t n_prompt, uint32_t n_out)
{
    float      rp = sp->repetition_penalty, v;
    int        do_rp = rp > 0.0f && rp != 1.0f;
    int        do_pf = sp->presence_penalty != 0.0f
                       || sp->frequency_penalty != 0.0f;
    uint32_t   i, n, t, c;
    uint32_t  *pen = s->pen;

    memcpy(s->x, logits, s->vocab * sizeof(float));
    if (!dw_sample_has_pen(sp)) {
        return;
    }
    n = dw_sample_pen_list(tokens, n_prompt, n_out, s->vocab, s->count, pen);
    for (i = 0; i < n; i++) {
        t = pen[2 * i];
        c = pen[2 * i + 1];
        v = logits[t];
        if (do_rp) {
            v = v > 0.0f ? v / rp : v * rp;
        }
        if (do_pf && c > 0) {
            v -= sp->frequency_penalty * (float) c + sp->presence_penalty;
        }
        s->x[t] = v;
    }
}

/* the kept set's thresholds (one row) */
typedef struct {
    float     m;          /* max of x (scaled) */
    int       top_k;      /* top_k applies */
    uint32_t  kkey;       /* key of the k-th largest x */
    uint32_t  tie_last;   /* ties at kkey kept up to this id */
    float     min_x;      /* min_p threshold on x (-inf: none) */
    uint32_t  wbits;      /* top_p: weights >= this (bits) kept; 0: all */
    uint32_t  n;          /* kept count */
} dw_thr_t;

static inline int
dw_thr_pre(const dw_thr_t *t, const float *x, uint32_t i)
{
    uint32_t  k;

    if (t->top_k) {
        k = dw_fkey(x[i]);
        if (k < t->kkey || (k == t->kkey && i > t->tie_last)) {
            return 0;
        }
    }
    return x[i] >= t->min_x;
}

static inline float
dw_thr_w(const dw_thr_t *t, const float *x, uint32_t i)
{
    return expf(x[i] - t->m);
}

static inline int
dw_thr_kept(const dw_thr_t *t, const float *x, uint32_t i)
{
    return dw_thr_pre(t, x, i) && dw_fbits(dw_thr_w(t, x, i)) >= t->wbits;
}

/*
 * Scales x by 1/temperature and finds the thresholds; the kept count in
 * t->n (0: none, NaN logits).
 */
static void
dw_thr_find(dw_sampler_t *s, const dw_sampling_t *sp, dw_thr_t *t)
{
    float     *x = s->x;
    float      inv_t = 1.0f / sp->temperature;
    uint32_t   v = s->vocab, i, b, c, cnt, k, r;
    double     z, target, acc;

    for (i = 0; i < v; i++) {
        x[i] *= inv_t;
    }
    memset(t, 0, sizeof(*t));
    t->m = x[dw_sample_argmax(x, v)];
    t->min_x = -INFINITY;

    if (sp->top_k > 0 && (uint32_t) sp->top_k < v) {
        k = (uint32_t) sp->top_k;
        /* the largest key with at least k keys >= it: the k-th's */
        for (b = 32; b-- > 0; ) {
            c = t->kkey | (1u << b);
            for (cnt = 0, i = 0; i < v; i++) {
                cnt += dw_fkey(x[i]) >= c;
            }
            if (cnt >= k) {
                t->kkey = c;
            }
        }
        for (cnt = 0, i = 0; i < v; i++) {
            cnt += dw_fkey(x[i]) > t->kkey;
        }
        r = k - cnt;        /* ties at kkey to keep, lowest ids first */
        /* the largest id bound with fewer than r ties below it: the id
           of the r-th tie */
        t->tie_last = 0;
        for (b = 32; b-- > 0; ) {
            c = t->tie_last | (1u << b);
            for (cnt = 0, i = 0; i < v && i < c; i++) {
                cnt += dw_fkey(x[i]) == t->kkey;
            }
            if (cnt < r) {
                t->tie_last = c;
            }
        }
        t->top_k = 1;
    }
    if (sp->min_p > 0.0f) {
        t->min_x = t->m + logf(sp->min_p);
    }

    z = 0.0;
    for (cnt = 0, i = 0; i < v; i++) {
        if (dw_thr_pre(t, x, i)) {
            cnt++;
            z += dw_thr_w(t, x, i);
        }
    }
    t->n = cnt;
    if (cnt <= 1 || !(sp->top_p > 0.0f && sp->top_p < 1.0f)) {
        return;
    }

    /* top_p: the largest weight threshold whose kept mass reaches the
       target (weights are >= 0: their bits order as their values) */
    target = (double) sp->top_p * z;
    for (b = 31; b-- > 0; ) {
        c = t->wbits | (1u << b);
        acc = 0.0;
        for (i = 0; i < v; i++) {
            if (dw_thr_pre(t, x, i)) {
                float  w = dw_thr_w(t, x, i);

                if (dw_fbits(w) >= c) {
                    acc += w;
                }
            }
        }
        if (acc >= target) {
            t->wbits = c;
        }
    }
    for (cnt = 0, i = 0; i < v; i++) {
        cnt += dw_thr_kept(t, x, i);
    }
    t->n = cnt;
}

static uint32_t
dw_thr_draw(dw_sampler_t *s, const dw_thr_t *t, dw_rng_t *rng)
{
    const float  *x = s->x;
    uint32_t      v = s->vocab, i, last = 0;
    double        z = 0.0, u, acc;
    float         w;

    for (i = 0; i < v; i++) {
        if (dw_thr_kept(t, x, i)) {
            z += dw_thr_w(t, x, i);
        }
    }
    u = dw_rng_uniform(rng) * z;
    acc = 0.0;
    for (i = 0; i < v; i++) {
        if (!dw_thr_kept(t, x, i)) {
            continue;
        }
        w = dw_thr_w(t, x, i);
        acc += w;
        if (u < acc) {
            return i;
        }
        if (w > 0.0f) {
            last = i;
        }
    }
    return last;     /* rounding: u reached the mass */
}

static void
dw_thr_logprobs(const float *logits, uint32_t v, int32_t n_top,
    dw_sample_out_t *out)
{
    uint32_t  i, j, k, b, pid = 0;
    float     m = logits[0], pv = 0.0f;
    double    z = 0.0, lse;

    for (i = 1; i < v; i++) {
        if (logits[i] > m) {
            m = logits[i];
        }
    }
    for (i = 0; i < v; i++) {
        z += exp((double) logits[i] - m);
    }
    lse = (double) m + log(z);
    out->logprob = (float) ((double) logits[out->token] - lse);

    /* top N: each pass takes the best after the previous one in the
       order (value descending, id ascending) */
    k = n_top > DW_MAX_TOP_LOGPROBS ? DW_MAX_TOP_LOGPROBS : (uint32_t) n_top;
    out->n_top = 0;
    for (j = 0; j < k; j++) {
        b = UINT32_MAX;
        for (i = 0; i < v; i++) {
            if (j > 0 && !(logits[i] < pv || (logits[i] == pv && i > pid))) {
                continue;
            }
            if (b == UINT32_MAX || logits[i] > logits[b]) {
                b = i;
            }
        }
        if (b == UINT32_MAX) {
            break;
        }
        out->top_ids[j] = b;
        out->top_logprobs[j] = (float) ((double) logits[b] - lse);
        out->n_top = j + 1;
        pv = logits[b];
        pid = b;
    }
}

void
dw_sample_thr(dw_sampler_t *s, const float *logits, const dw_sampling_t *sp,
    dw_rng_t *rng, const uint32_t *tokens, uint32_t n_prompt, uint32_t n_out,
    dw_sample_out_t *out)
{
    dw_thr_t  t;

    dw_thr_penalize(s, logits, sp, tokens, n_prompt, n_out);
    out->n_top = 0;
    out->logprob = 0.0f;
    if (dw_sample_is_greedy(sp)) {
        out->token = dw_sample_argmax(s->x, s->vocab);
    } else {
        dw_thr_find(s, sp, &t);
        /* no candidates (NaN logits): the argmax, no draw (as dw_sample) */
        out->token = t.n == 0 ? dw_sample_argmax(s->x, s->vocab)
                              : dw_thr_draw(s, &t, rng);
    }
    if (sp->logprobs >= 0) {
        dw_thr_logprobs(logits, s->vocab, sp->logprobs, out);
    }
}

uint32_t
dw_sample_thr_set(dw_sampler_t *s, const float *logits,
    const dw_sampling_t *sp, const uint32_t *tokens, uint32_t n_prompt,
    uint32_t n_out, uint8_t *kept)
{
    dw_thr_t  t;
    uint32_t  i;

    dw_thr_penalize(s, logits, sp, tokens, n_prompt, n_out);
    memset(kept, 0, s->vocab);
    if (dw_sample_is_greedy(sp)) {
        kept[dw_sample_argmax(s->x, s->vocab)] = 1;
        return 1;
    }
    dw_thr_find(s, sp, &t);
    for (i = 0; i < s->vocab; i++) {
        kept[i] = (uint8_t) dw_thr_kept(&t, s->x, i);
    }
    return t.n;
}
