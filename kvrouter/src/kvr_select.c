/*
 * kvrouter: worker selection (see kvr_select.h for the cost).
 *
 * Rules, in order:
 *   1. Hot-spot guard: load = active_blocks + queued_prefill_tokens / B.
 *      With balance_rel >= 0, a candidate whose load exceeds
 *      min_load * (1 + balance_rel) + balance_abs is credited no overlap.
 *      The least loaded candidate is never hot, so there is always a
 *      credited choice. The absolute term keeps the guard quiet near idle,
 *      where min_load ~ 0 would make any difference look huge.
 *   2. temperature == 0: lowest cost; near-equal costs (relative 1e-9, to
 *      absorb rounding) go to the lower load, then the larger credited
 *      overlap, then rnd picks uniformly among what is still tied.
 *   3. temperature > 0: costs are normalised by their range,
 *      z = (cost - min) / (max - min) in [0, 1], and a candidate is drawn
 *      with probability proportional to exp(-z / temperature), using rnd.
 *      So the temperature is scale free: T = 1 makes the best candidate
 *      e (2.7) times as likely as the worst, T = 0.1 e^10 times. All costs
 *      equal: uniform.
 * Per-request overrides: callers pass a different params struct (e.g. a
 * copy of the defaults with another temperature); nothing is global.
 */
#include <math.h>

#include "kvr_err.h"
#include "kvr_select.h"

/* Default balance margin: about one long prompt's worth of work. */
#define KVR_SELECT_BALANCE_TOKENS  1024.0
#define KVR_SELECT_TIE_EPS         1e-9

void
kvr_select_defaults(kvr_select_params_t *p, uint32_t block_size)
{
    p->block_size = block_size;
    p->overlap_weight = 1.0;
    p->temperature = 0.0;
    p->balance_rel = 0.5;
    p->balance_abs = block_size > 0
                     ? ceil(KVR_SELECT_BALANCE_TOKENS / block_size) : 64.0;
}

static int
kvr_params_ok(const kvr_select_params_t *p)
{
    if (p == NULL || p->block_size == 0
        || !isfinite(p->overlap_weight) || p->overlap_weight < 0
        || !isfinite(p->temperature) || p->temperature < 0
        || isnan(p->balance_rel))
    {
        return 0;
    }
    if (p->balance_rel >= 0
        && (!isfinite(p->balance_abs) || p->balance_abs < 0))
    {
        return 0;
    }
    return 1;
}

static double
kvr_cost(const kvr_select_params_t *p, const kvr_candidate_t *c,
    uint64_t prompt_tokens, uint32_t overlap)
{
    uint64_t  B = p->block_size, cached, new_prefill, pblocks, new_blocks;

    cached = (uint64_t) overlap * B;
    new_prefill = prompt_tokens > cached ? prompt_tokens - cached : 0;
    pblocks = prompt_tokens / B + (prompt_tokens % B != 0);
    new_blocks = pblocks > overlap ? pblocks - overlap : 0;

    return p->overlap_weight
           * ((double) c->queued_prefill_tokens + (double) new_prefill)
           / (double) B
           + (double) c->active_blocks + (double) new_blocks;
}

static double
kvr_load(const kvr_select_params_t *p, const kvr_candidate_t *c)
{
    return (double) c->active_blocks
           + (double) c->queued_prefill_tokens / (double) p->block_size;
}

static int
kvr_near(double a, double b)
{
    double  m = fmax(1.0, fmax(fabs(a), fabs(b)));

    return fabs(a - b) <= KVR_SELECT_TIE_EPS * m;
}

typedef struct {
    double    cost;
    double    load;
    uint32_t  overlap;       /* credited */
} kvr_scored_t;

/* <0 if a is better than b, 0 if tied, >0 if worse. */
static int
kvr_cmp(const kvr_scored_t *a, const kvr_scored_t *b)
{
    if (!kvr_near(a->cost, b->cost)) {
        return a->cost < b->cost ? -1 : 1;
    }
    if (!kvr_near(a->load, b->load)) {
        return a->load < b->load ? -1 : 1;
    }
    if (a->overlap != b->overlap) {
        return a->overlap > b->overlap ? -1 : 1;
    }
    return 0;
}

static void
kvr_score(const kvr_select_params_t *p, const kvr_candidate_t *c,
    uint64_t prompt_tokens, double min_load, kvr_scored_t *sc)
{
    int  hot;

    sc->load = kvr_load(p, c);
    hot = p->balance_rel >= 0
          && sc->load > min_load * (1.0 + p->balance_rel) + p->balance_abs;
    sc->overlap = hot ? 0 : c->overlap_blocks;
    sc->cost = kvr_cost(p, c, prompt_tokens, sc->overlap);
}

/* Uniform double in [0, 1) from 53 bits of rnd. */
static double
kvr_unit(uint64_t rnd)
{
    return (double) (rnd >> 11) * (1.0 / 9007199254740992.0);
}

int
kvr_select(const kvr_select_params_t *p, const kvr_candidate_t *c,
    size_t n, uint64_t prompt_tokens, uint64_t rnd, kvr_choice_t *out)
{
    kvr_scored_t  best, sc;
    double        min_load, l, cmin, cmax, range, sum, target, acc;
    size_t        i, pick, ties, k;

    if (!kvr_params_ok(p) || c == NULL || n == 0 || out == NULL) {
        return KVR_ERR_INVAL;
    }

    min_load = kvr_load(p, &c[0]);
    for (i = 1; i < n; i++) {
        l = kvr_load(p, &c[i]);
        min_load = l < min_load ? l : min_load;
    }

    if (p->temperature > 0) {
        kvr_score(p, &c[0], prompt_tokens, min_load, &sc);
        cmin = cmax = sc.cost;
        for (i = 1; i < n; i++) {
            kvr_score(p, &c[i], prompt_tokens, min_load, &sc);
            cmin = fmin(cmin, sc.cost);
            cmax = fmax(cmax, sc.cost);
        }
        range = cmax - cmin;

        sum = 0;
        for (i = 0; i < n; i++) {
            kvr_score(p, &c[i], prompt_tokens, min_load, &sc);
            sum += range > 0 ? exp(-(sc.cost - cmin) / range / p->temperature)
                             : 1.0;
        }
        target = kvr_unit(rnd) * sum;
        acc = 0;
        pick = n - 1;
        for (i = 0; i < n; i++) {
            kvr_score(p, &c[i], prompt_tokens, min_load, &sc);
            acc += range > 0 ? exp(-(sc.cost - cmin) / range / p->temperature)
                             : 1.0;
            if (target < acc) {
                pick = i;
                break;
            }
        }

    } else {
        kvr_score(p, &c[0], prompt_tokens, min_load, &best);
        for (i = 1; i < n; i++) {
            kvr_score(p, &c[i], prompt_tokens, min_load, &sc);
            if (kvr_cmp(&sc, &best) < 0) {
                best = sc;
            }
        }
        ties = 0;
        for (i = 0; i < n; i++) {
            kvr_score(p, &c[i], prompt_tokens, min_load, &sc);
            ties += kvr_cmp(&sc, &best) == 0;
        }
        k = (size_t) (rnd % ties);
        pick = 0;
        for (i = 0; i < n; i++) {
            kvr_score(p, &c[i], prompt_tokens, min_load, &sc);
            if (kvr_cmp(&sc, &best) == 0 && k-- == 0) {
                pick = i;
                break;
            }
        }
    }

    kvr_score(p, &c[pick], prompt_tokens, min_load, &sc);
    out->index = pick;
    out->cost = sc.cost;
    out->credited_overlap = sc.overlap;
    return KVR_OK;
}

double
kvr_select_cost(const kvr_select_params_t *p, const kvr_candidate_t *c,
    uint64_t prompt_tokens)
{
    if (!kvr_params_ok(p) || c == NULL) {
        return NAN;
    }
    return kvr_cost(p, c, prompt_tokens, c->overlap_blocks);
}
