/*
 * `analyze`: a trace's shape (requests, sessions, duration, ISL/OSL) and
 * its theoretical block hit rate with an infinite prefix cache: requests
 * in timestamp order (stable), each request's leading blocks already
 * cached by an earlier request are hits (a prefix cache matches from the
 * start and stops at the first miss), hit rate = hits / all blocks. A
 * block is cached under its chain of ids (64-bit keys: a collision, about
 * n^2 / 2^65 for n blocks, could only add a hit).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_stats.h"
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

/* The cache key of a block: its hash id after the chain of the ids
 * before it, as a prefix cache keys a block by its whole prefix. */
static uint64_t
chain(uint64_t prev, uint64_t id)
{
    return mix(prev ^ mix(id + 0x9e3779b97f4a7c15ULL));
}

static void
dist(double *v, size_t n, double *mean, double *median, double *p90,
    double *p99, double *min, double *max)
{
    static const double  pcts[] = { 90, 99 };
    db_dist_t            d;

    db_dist_compute(v, n, pcts, 2, &d);
    *mean = d.mean;
    *median = d.median;
    *p90 = d.pct[0];
    *p99 = d.pct[1];
    *min = d.min;
    *max = d.max;
}

/*
 * One request against the cache: its leading blocks whose keys are cached
 * are hits (matching stops at the first miss; *hits gets their number),
 * then all its blocks are cached. Keying by the chain, not the bare id,
 * counts what the server's cache would hold when a trace reuses an id
 * after a different prefix (the replay sends the same tokens for it, but
 * the server hashes them with their prefix); for Mooncake's
 * prefix-consistent ids both agree.
 */
static int
replay(const db_trace_rec_t *r, db_u64map_t *cache, db_u64map_t *ids,
    size_t *hits)
{
    uint64_t  key = 0x636861696eULL;
    size_t    j;
    int       prefix = 1, added;

    *hits = 0;
    for (j = 0; j < r->n_hash_ids; j++) {
        key = chain(key, r->hash_ids[j]);
        if (prefix && db_u64map_get(cache, key) != NULL) {
            (*hits)++;
        } else {
            prefix = 0;
        }
        if (db_u64map_put(cache, key, 0, &added) != 0
            || (ids != NULL
                && db_u64map_put(ids, r->hash_ids[j], 0, &added) != 0))
        {
            return -1;
        }
    }
    return 0;
}

/* Replays the trace in timestamp order: blocks, hits, unique ids, and
 * with bs > 0 the hit tokens (hit blocks of bs tokens, a request's hits
 * cut to its input_length). -1 when out of memory. */
static int
replay_all(const db_trace_t *tr, int64_t bs, db_analysis_t *a,
    uint64_t *hit_tokens)
{
    db_u64map_t   cache = { 0 }, ids = { 0 };
    size_t       *ord = db_trace_order(tr), i, hits;
    int           rc = -1;

    if (ord == NULL) {
        return -1;
    }
    for (i = 0; i < tr->n; i++) {
        const db_trace_rec_t  *r = &tr->v[ord[i]];

        if (replay(r, &cache, bs > 0 ? NULL : &ids, &hits) != 0) {
            goto done;
        }
        a->blocks += r->n_hash_ids;
        a->hits += hits;
        if (bs > 0) {
            uint64_t  t = (uint64_t) hits * (uint64_t) bs;

            *hit_tokens += t < (uint64_t) r->input_length
                           ? t : (uint64_t) r->input_length;
        }
    }
    a->unique_blocks = ids.n;
    rc = 0;
done:
    db_u64map_free(&cache);
    db_u64map_free(&ids);
    free(ord);
    return rc;
}

int
db_trace_hit_tokens(const db_trace_t *tr, int64_t bs, uint64_t *hit_tokens)
{
    db_analysis_t  a;

    memset(&a, 0, sizeof(a));
    *hit_tokens = 0;
    return bs > 0 ? replay_all(tr, bs, &a, hit_tokens) : -1;
}

void
db_trace_analyze(const db_trace_t *tr, db_analysis_t *a)
{
    size_t       *ord = NULL, i;
    double       *isl, *osl;

    memset(a, 0, sizeof(*a));
    a->requests = tr->n;
    a->sessions = tr->n_sessions;
    if (tr->n == 0) {
        return;
    }
    isl = malloc(tr->n * sizeof(*isl));
    osl = malloc(tr->n * sizeof(*osl));
    ord = db_trace_order(tr);
    if (ord == NULL || isl == NULL || osl == NULL
        || replay_all(tr, 0, a, NULL) != 0)
    {
        goto done;
    }
    for (i = 0; i < tr->n; i++) {
        isl[i] = (double) tr->v[i].input_length;
        osl[i] = (double) tr->v[i].output_length;
    }
    a->hit_rate = a->blocks ? (double) a->hits / (double) a->blocks : 0;
    if (tr->v[ord[0]].timestamp_ms >= 0) {
        a->duration_s = (tr->v[ord[tr->n - 1]].timestamp_ms
                         - tr->v[ord[0]].timestamp_ms) / 1000.0;
    }
    dist(isl, tr->n, &a->isl_mean, &a->isl_median, &a->isl_p90,
         &a->isl_p99, &a->isl_min, &a->isl_max);
    dist(osl, tr->n, &a->osl_mean, &a->osl_median, &a->osl_p90,
         &a->osl_p99, &a->osl_min, &a->osl_max);
done:
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
