/*
 * `analyze`: a trace's shape (requests, sessions, duration, ISL/OSL) and
 * its theoretical block hit rate with an infinite prefix cache: requests
 * in timestamp order (stable), each request's leading hash ids already
 * seen in an earlier request are hits (a prefix cache matches from the
 * start and stops at the first miss), hit rate = hits / all blocks.
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_trace.h"
#include "db_trace_int.h"

static uint64_t
mix(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void
db_u64map_free(db_u64map_t *m)
{
    free(m->keys);
    free(m->vals);
    free(m->used);
    memset(m, 0, sizeof(*m));
}

uint64_t *
db_u64map_get(const db_u64map_t *m, uint64_t key)
{
    size_t  i;

    if (m->cap == 0) {
        return NULL;
    }
    for (i = mix(key) & (m->cap - 1); m->used[i]; i = (i + 1) & (m->cap - 1))
    {
        if (m->keys[i] == key) {
            return &m->vals[i];
        }
    }
    return NULL;
}

static void
raw_put(db_u64map_t *m, uint64_t key, uint64_t val)
{
    size_t  i = mix(key) & (m->cap - 1);

    while (m->used[i]) {
        i = (i + 1) & (m->cap - 1);
    }
    m->used[i] = 1;
    m->keys[i] = key;
    m->vals[i] = val;
    m->n++;
}

int
db_u64map_put(db_u64map_t *m, uint64_t key, uint64_t val, int *added)
{
    uint64_t  *v = db_u64map_get(m, key);

    if (v != NULL) {
        *added = 0;
        return 0;
    }
    if ((m->n + 1) * 2 > m->cap) {
        db_u64map_t  g = { 0 };
        size_t       i;

        g.cap = m->cap ? m->cap * 2 : 1024;
        g.keys = malloc(g.cap * sizeof(*g.keys));
        g.vals = malloc(g.cap * sizeof(*g.vals));
        g.used = calloc(g.cap, 1);
        if (g.keys == NULL || g.vals == NULL || g.used == NULL) {
            db_u64map_free(&g);
            return -1;
        }
        for (i = 0; i < m->cap; i++) {
            if (m->used[i]) {
                raw_put(&g, m->keys[i], m->vals[i]);
            }
        }
        db_u64map_free(m);
        *m = g;
    }
    raw_put(m, key, val);
    *added = 1;
    return 0;
}

typedef struct {
    double  ts;
    size_t  i;
} ord_t;

static int
ord_cmp(const void *a, const void *b)
{
    const ord_t  *x = a, *y = b;

    if (x->ts != y->ts) {
        return x->ts < y->ts ? -1 : 1;
    }
    return x->i < y->i ? -1 : x->i > y->i;
}

static int
dbl_cmp(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}

/* numpy.percentile's default (linear) on sorted values. */
static double
pct(const double *v, size_t n, double p)
{
    double  rank, frac;
    size_t  lo;

    if (n == 0) {
        return 0;
    }
    rank = p / 100.0 * (double) (n - 1);
    lo = (size_t) floor(rank);
    frac = rank - (double) lo;
    if (lo + 1 >= n) {
        return v[n - 1];
    }
    return v[lo] + (v[lo + 1] - v[lo]) * frac;
}

static void
dist(double *v, size_t n, double *mean, double *median, double *p90,
    double *p99, double *min, double *max)
{
    double  sum = 0;
    size_t  i;

    qsort(v, n, sizeof(*v), dbl_cmp);
    for (i = 0; i < n; i++) {
        sum += v[i];
    }
    *mean = n ? sum / (double) n : 0;
    *median = pct(v, n, 50);
    *p90 = pct(v, n, 90);
    *p99 = pct(v, n, 99);
    *min = n ? v[0] : 0;
    *max = n ? v[n - 1] : 0;
}

void
db_trace_analyze(const db_trace_t *tr, db_analysis_t *a)
{
    db_u64map_t   seen = { 0 };
    ord_t        *ord;
    double       *isl, *osl, first = 0, last = 0;
    size_t        i, j;
    int           added;

    memset(a, 0, sizeof(*a));
    a->requests = tr->n;
    a->sessions = tr->n_sessions;
    if (tr->n == 0) {
        return;
    }
    ord = malloc(tr->n * sizeof(*ord));
    isl = malloc(tr->n * sizeof(*isl));
    osl = malloc(tr->n * sizeof(*osl));
    if (ord == NULL || isl == NULL || osl == NULL) {
        goto done;
    }
    for (i = 0; i < tr->n; i++) {
        ord[i].ts = tr->v[i].timestamp_ms;
        ord[i].i = i;
        isl[i] = (double) tr->v[i].input_length;
        osl[i] = (double) tr->v[i].output_length;
    }
    qsort(ord, tr->n, sizeof(*ord), ord_cmp);
    for (i = 0; i < tr->n; i++) {
        const db_trace_rec_t  *r = &tr->v[ord[i].i];
        int                    prefix = 1;

        if (r->timestamp_ms >= 0) {
            if (i == 0) {
                first = r->timestamp_ms;
            }
            last = r->timestamp_ms;
        }
        for (j = 0; j < r->n_hash_ids; j++) {
            int  hit = db_u64map_get(&seen, r->hash_ids[j]) != NULL;

            a->blocks++;
            if (prefix && hit) {
                a->hits++;
            } else {
                prefix = 0;
            }
        }
        /* after the request: its own repeated ids are not hits */
        for (j = 0; j < r->n_hash_ids; j++) {
            if (db_u64map_put(&seen, r->hash_ids[j], 0, &added) != 0) {
                goto done;
            }
        }
    }
    a->unique_blocks = seen.n;
    a->hit_rate = a->blocks ? (double) a->hits / (double) a->blocks : 0;
    a->duration_s = (last - first) / 1000.0;
    dist(isl, tr->n, &a->isl_mean, &a->isl_median, &a->isl_p90,
         &a->isl_p99, &a->isl_min, &a->isl_max);
    dist(osl, tr->n, &a->osl_mean, &a->osl_median, &a->osl_p90,
         &a->osl_p99, &a->osl_min, &a->osl_max);
done:
    db_u64map_free(&seen);
    free(ord);
    free(isl);
    free(osl);
}

void
db_analysis_print(const db_analysis_t *a, FILE *out)
{
    fprintf(out, "%-28s %zu\n", "Requests:", a->requests);
    fprintf(out, "%-28s %zu\n", "Sessions:", a->sessions);
    fprintf(out, "%-28s %.3f\n", "Duration (s):", a->duration_s);
    if (a->duration_s > 0) {
        fprintf(out, "%-28s %.3f\n", "Request rate (req/s):",
                (double) a->requests / a->duration_s);
    } else {
        fprintf(out, "%-28s %s\n", "Request rate (req/s):", "n/a");
    }
    fprintf(out, "\n%-14s %10s %10s %10s %10s %10s %10s\n", "tokens", "mean",
            "median", "p90", "p99", "min", "max");
    fprintf(out, "%-14s %10.1f %10.1f %10.1f %10.1f %10.0f %10.0f\n",
            "ISL", a->isl_mean, a->isl_median, a->isl_p90, a->isl_p99,
            a->isl_min, a->isl_max);
    fprintf(out, "%-14s %10.1f %10.1f %10.1f %10.1f %10.0f %10.0f\n\n",
            "OSL", a->osl_mean, a->osl_median, a->osl_p90, a->osl_p99,
            a->osl_min, a->osl_max);
    fprintf(out, "%-28s %zu\n", "Blocks:", a->blocks);
    fprintf(out, "%-28s %zu\n", "Unique blocks:", a->unique_blocks);
    fprintf(out, "%-28s %zu\n", "Hit blocks:", a->hits);
    fprintf(out, "%-28s %.4f\n", "Theoretical hit rate:", a->hit_rate);
}

int
db_analysis_json(const db_analysis_t *a, FILE *out)
{
    fprintf(out, "{\"requests\": %zu, \"sessions\": %zu, "
            "\"duration_s\": %.3f, \"request_rate\": %.6g, ",
            a->requests, a->sessions, a->duration_s,
            a->duration_s > 0 ? (double) a->requests / a->duration_s : 0);
    fprintf(out, "\"isl\": {\"mean\": %.6g, \"median\": %.6g, "
            "\"p90\": %.6g, \"p99\": %.6g, \"min\": %.0f, \"max\": %.0f}, ",
            a->isl_mean, a->isl_median, a->isl_p90, a->isl_p99, a->isl_min,
            a->isl_max);
    fprintf(out, "\"osl\": {\"mean\": %.6g, \"median\": %.6g, "
            "\"p90\": %.6g, \"p99\": %.6g, \"min\": %.0f, \"max\": %.0f}, ",
            a->osl_mean, a->osl_median, a->osl_p90, a->osl_p99, a->osl_min,
            a->osl_max);
    fprintf(out, "\"blocks\": %zu, \"unique_blocks\": %zu, \"hits\": %zu, "
            "\"hit_rate\": %.6f}\n", a->blocks, a->unique_blocks, a->hits,
            a->hit_rate);
    return ferror(out) ? -1 : 0;
}
