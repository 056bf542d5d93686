/*
 * dynamo-worker: sampling (see dw_sample_int.h for the order and costs).
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dw_rand.h"
#include "dw_sample_int.h"
#include "dw_sample_thr_int.h"

void
dw_sampling_defaults(dw_sampling_t *sp)
{
    memset(sp, 0, sizeof(*sp));
    sp->temperature = 1.0f;
    sp->top_p = 1.0f;
    sp->top_k = 0;
    sp->min_p = 0.0f;
    sp->repetition_penalty = 1.0f;
    sp->logprobs = -1;
    sp->max_tokens = 16;
}

/* ---- RNG ---- */

void
dw_rng_seed(dw_rng_t *r, uint64_t seed)
{
    int  i;

    for (i = 0; i < 4; i++) {
        r->s[i] = dw_splitmix64(&seed);
    }
}

uint64_t
dw_rng_next(dw_rng_t *r)
{
    uint64_t  *s = r->s;
    uint64_t   res = dw_rotl(s[1] * 5, 7) * 9;
    uint64_t   t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = dw_rotl(s[3], 45);

    return res;
}

double
dw_rng_uniform(dw_rng_t *r)
{
    return (double) (dw_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t
dw_rng_fresh_seed(void)
{
    static atomic_uint_fast64_t  counter;
    struct timespec              ts;
    uint64_t                     x;

    clock_gettime(CLOCK_REALTIME, &ts);
    x = atomic_fetch_add(&counter, 1)
        ^ ((uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec);
    return dw_splitmix64(&x);
}

/* ---- scratch ---- */

int
dw_sampler_init(dw_sampler_t *s, uint32_t vocab)
{
    memset(s, 0, sizeof(*s));
    if (vocab == 0) {
        return -1;
    }
    s->vocab = vocab;
    s->x = malloc(vocab * sizeof(float));
    s->idx = malloc(vocab * sizeof(uint32_t));
    s->count = calloc(vocab, sizeof(uint32_t));
    s->pen = malloc((size_t) vocab * 2 * sizeof(uint32_t));
    if (s->x == NULL || s->idx == NULL || s->count == NULL
        || s->pen == NULL)
    {
        dw_sampler_free(s);
        return -1;
    }
    return 0;
}

void
dw_sampler_free(dw_sampler_t *s)
{
    free(s->x);
    free(s->idx);
    free(s->count);
    free(s->pen);
    memset(s, 0, sizeof(*s));
}

/* ---- selection helpers over ids keyed by v[id], descending ---- */

/* id a comes before id b: larger value, lower id on ties */
static inline int
dw_before(const float *v, uint32_t a, uint32_t b)
{
    return v[a] > v[b] || (v[a] == v[b] && a < b);
}

/* heap of ids whose root is the last kept in dw_before's order */
static void
dw_heap_down(uint32_t *h, uint32_t n, uint32_t i, const float *v)
{
    uint32_t  c, t;

    for ( ;; ) {
        c = 2 * i + 1;
        if (c >= n) {
            return;
        }
        if (c + 1 < n && dw_before(v, h[c], h[c + 1])) {
            c++;
        }
        if (!dw_before(v, h[i], h[c])) {
            return;
        }
        t = h[c];
        h[c] = h[i];
        h[i] = t;
        i = c;
    }
}

/*
 * The k largest of v[0..n) into h[0..k), sorted descending (ties: lower
 * id first). O(n log k).
 */
static uint32_t
dw_top_k(const float *v, uint32_t n, uint32_t k, uint32_t *h)
{
    uint32_t  i, m, t;

    if (k > n) {
        k = n;
    }
    if (k == 0) {
        return 0;
    }
    for (i = 0; i < k; i++) {
        h[i] = i;
    }
    for (i = k / 2; i-- > 0; ) {
        dw_heap_down(h, k, i, v);
    }
    for (i = k; i < n; i++) {
        if (dw_before(v, i, h[0])) {
            h[0] = i;
            dw_heap_down(h, k, 0, v);
        }
    }
    /* heap sort: repeatedly move the smallest to the end */
    for (m = k; m > 1; m--) {
        t = h[0];
        h[0] = h[m - 1];
        h[m - 1] = t;
        dw_heap_down(h, m - 1, 0, v);
    }
    return k;
}

/*
 * Hoare partition of a[0..n) around the id p (one of them): on return
 * a[0..j] all come no later than p, a[j+1..n) no earlier; returns j.
 */
static uint32_t
dw_partition(uint32_t *a, uint32_t n, const float *v, uint32_t p)
{
    uint32_t  i = 0, j = n - 1, t;

    for ( ;; ) {
        while (dw_before(v, a[i], p)) {
            i++;
        }
        while (dw_before(v, p, a[j])) {
            j--;
        }
        if (i >= j) {
            return j;
        }
        t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
    }
}

static void
dw_sort_desc(uint32_t *a, uint32_t n, const float *v)
{
    uint32_t  i, j, t, p;

    while (n > 16) {
        /* median of three as pivot value, Hoare partition */
        uint32_t  x = a[0], y = a[n / 2], z = a[n - 1];

        if (dw_before(v, y, x)) { t = x; x = y; y = t; }
        if (dw_before(v, z, y)) { t = y; y = z; z = t; }
        if (dw_before(v, y, x)) { t = x; x = y; y = t; }
        p = y;
        j = dw_partition(a, n, v, p);
        /* recurse into the smaller side */
        if (j + 1 < n - j - 1) {
            dw_sort_desc(a, j + 1, v);
            a += j + 1;
            n -= j + 1;
        } else {
            dw_sort_desc(a + j + 1, n - j - 1, v);
            n = j + 1;
        }
    }
    for (i = 1; i < n; i++) {
        t = a[i];
        for (j = i; j > 0 && dw_before(v, t, a[j - 1]); j--) {
            a[j] = a[j - 1];
        }
        a[j] = t;
    }
}

/*
 * top_p without sorting: reorders a[0..n) (ids keyed by weights w, most
 * probable first) so that a[0..k) is the smallest most-probable set whose
 * weight reaches target; returns k and its weight in *mass. Quickselect
 * by mass: partition, keep the side where the target is crossed, O(n)
 * expected.
 */
static uint32_t
dw_mass_select(uint32_t *a, uint32_t n, const float *w, double target,
    double *mass)
{
    uint32_t  lo = 0, hi = n, i, j, p;
    double    acc = 0.0, left;

    while (hi - lo > 16) {
        p = a[lo + (hi - lo) / 2];
        j = lo + dw_partition(a + lo, hi - lo, w, p);
        /* a[lo..j] precede a[j+1..hi) */
        left = 0.0;
        for (i = lo; i <= j; i++) {
            left += w[a[i]];
        }
        if (acc + left >= target) {
            hi = j + 1;
        } else {
            acc += left;
            lo = j + 1;
        }
    }
    dw_sort_desc(a + lo, hi - lo, w);
    for (i = lo; i < hi; i++) {
        acc += w[a[i]];
        if (acc >= target) {
            break;
        }
    }
    if (i == hi) {
        i = hi - 1;     /* rounding: take all */
    }
    *mass = acc;
    return i + 1;
}

/* ---- penalties ---- */

static void
dw_penalize(dw_sampler_t *s, const dw_sampling_t *sp, const uint32_t *tokens,
    uint32_t n_prompt, uint32_t n_out)
{
    float           *x = s->x;
    uint32_t        *cnt = s->count;
    const uint32_t  *out = tokens + n_prompt;
    uint32_t         i, t, n = n_prompt + n_out;
    float            rp = sp->repetition_penalty;

    if (rp > 0.0f && rp != 1.0f) {
        for (i = 0; i < n; i++) {
            t = tokens[i];
            if (t < s->vocab && cnt[t] == 0) {
                cnt[t] = 1;
                x[t] = x[t] > 0.0f ? x[t] / rp : x[t] * rp;
            }
        }
        for (i = 0; i < n; i++) {
            if (tokens[i] < s->vocab) {
                cnt[tokens[i]] = 0;
            }
        }
    }

    if (sp->presence_penalty != 0.0f || sp->frequency_penalty != 0.0f) {
        for (i = 0; i < n_out; i++) {
            if (out[i] < s->vocab) {
                cnt[out[i]]++;
            }
        }
        for (i = 0; i < n_out; i++) {
            t = out[i];
            if (t < s->vocab && cnt[t] > 0) {
                x[t] -= sp->frequency_penalty * (float) cnt[t]
                        + sp->presence_penalty;
                cnt[t] = 0;
            }
        }
    }
}

/* ---- logprobs ---- */

static void
dw_logprobs(dw_sampler_t *s, const float *logits, int32_t n_top,
    dw_sample_out_t *out)
{
    uint32_t  i, v = s->vocab, k;
    float     m = logits[0];
    double    z = 0.0, lse;
    uint32_t  h[DW_MAX_TOP_LOGPROBS];

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
    k = n_top > DW_MAX_TOP_LOGPROBS ? DW_MAX_TOP_LOGPROBS : (uint32_t) n_top;
    k = dw_top_k(logits, v, k, h);
    for (i = 0; i < k; i++) {
        out->top_ids[i] = h[i];
        out->top_logprobs[i] = (float) ((double) logits[h[i]] - lse);
    }
    out->n_top = k;
}

/* ---- the sampler ---- */

uint32_t
dw_sample_argmax(const float *x, uint32_t n)
{
    uint32_t  i, b = 0;

    for (i = 1; i < n; i++) {
        if (x[i] > x[b]) {
            b = i;
        }
    }
    return b;
}

/*
 * The draw's candidates: idx[0..n) with weights x[idx[i]] = exp(x - m)
 * and their mass *zp; 0 when there are none (NaN logits; x is then the
 * scaled logits).
 */
static uint32_t
dw_candidates(dw_sampler_t *s, const dw_sampling_t *sp, double *zp)
{
    float     *x = s->x;
    uint32_t  *idx = s->idx;
    uint32_t   v = s->vocab, n, i, j;
    float      inv_t = 1.0f / sp->temperature, m, thr;
    double     z;

    for (i = 0; i < v; i++) {
        x[i] *= inv_t;
    }

    if (sp->top_k > 0 && (uint32_t) sp->top_k < v) {
        /* sorted: min_p cuts at the first one below min_p * p_max */
        n = dw_top_k(x, v, (uint32_t) sp->top_k, idx);
        m = x[idx[0]];
        if (sp->min_p > 0.0f) {
            thr = m + logf(sp->min_p);
            for (j = 1; j < n && x[idx[j]] >= thr; j++) {
                /* void */
            }
            n = j;
        }
    } else {
        m = x[dw_sample_argmax(x, v)];
        thr = sp->min_p > 0.0f ? m + logf(sp->min_p) : -INFINITY;
        n = 0;
        for (i = 0; i < v; i++) {
            if (x[i] >= thr) {
                idx[n++] = i;
            }
        }
        if (n == 0) {
            /* NaN logits compare false everywhere */
            return 0;
        }
    }

    /* candidates' logits become weights exp(x - m) (same order) */
    z = 0.0;
    for (i = 0; i < n; i++) {
        x[idx[i]] = expf(x[idx[i]] - m);
        z += x[idx[i]];
    }

    if (sp->top_p > 0.0f && sp->top_p < 1.0f && n > 1) {
        n = dw_mass_select(idx, n, x, (double) sp->top_p * z, &z);
    }
    *zp = z;
    return n;
}

static uint32_t
dw_draw(dw_sampler_t *s, const dw_sampling_t *sp, dw_rng_t *rng)
{
    float     *x = s->x;
    uint32_t  *idx = s->idx;
    uint32_t   n, i;
    double     z, acc, u;

    n = dw_candidates(s, sp, &z);
    if (n == 0) {
        /* NaN logits: still a valid id */
        return dw_sample_argmax(x, s->vocab);
    }
    u = dw_rng_uniform(rng) * z;
    acc = 0.0;
    for (i = 0; i + 1 < n; i++) {
        acc += x[idx[i]];
        if (u < acc) {
            break;
        }
    }
    return idx[i];
}

void
dw_sample(dw_sampler_t *s, const float *logits, const dw_sampling_t *sp,
    dw_rng_t *rng, const uint32_t *tokens, uint32_t n_prompt, uint32_t n_out,
    dw_sample_out_t *out)
{
    memcpy(s->x, logits, s->vocab * sizeof(float));
    dw_penalize(s, sp, tokens, n_prompt, n_out);

    out->n_top = 0;
    out->logprob = 0.0f;
    if (dw_sample_is_greedy(sp)) {
        out->token = dw_sample_argmax(s->x, s->vocab);
    } else {
        out->token = dw_draw(s, sp, rng);
    }

    if (sp->logprobs >= 0) {
        dw_logprobs(s, logits, sp->logprobs, out);
    }
}

uint32_t
dw_sample_set(dw_sampler_t *s, const float *logits, const dw_sampling_t *sp,
    const uint32_t *tokens, uint32_t n_prompt, uint32_t n_out, uint8_t *kept)
{
    uint32_t  i, n;
    double    z;

    memcpy(s->x, logits, s->vocab * sizeof(float));
    dw_penalize(s, sp, tokens, n_prompt, n_out);
    memset(kept, 0, s->vocab);
    if (dw_sample_is_greedy(sp)) {
        kept[dw_sample_argmax(s->x, s->vocab)] = 1;
        return 1;
    }
    n = dw_candidates(s, sp, &z);
    for (i = 0; i < n; i++) {
        kept[s->idx[i]] = 1;
    }
    return n;
}
