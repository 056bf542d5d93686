/*
 * dynamo-kv bench: single-threaded benchmark of the kvrouter prefix index
 * against a naive baseline, on a synthetic multi-turn chat workload
 * (dkv_bench_workload.c). Measures block hashing, event apply, find_matches
 * throughput and latency, and memory; cross-checks that both indexes give
 * the same matches for every query.
 *
 *   dynamo-kv bench [--json] [--out FILE] [--workers N] [--blocks N]
 *                   [--seconds S] [--queries N] [--seed N]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvr_err.h"
#include "kvr_hash.h"
#include "kvr_index.h"
#include "dkv.h"
#include "dkv_bench.h"

#define BENCH_BLOCK_SIZE    16
#define BENCH_MEM_MAX       (16ULL << 30)     /* fits a 24 GiB machine */
#define ANCHOR_OPS_PER_CORE 7e6               /* Dynamo: 170M/s, 24 cores */
#define MIN_REPS            2
#define MAX_MATCH           KVR_INDEX_MAX_WORKERS
#define EVENT_BATCH         64                /* events per stream read */

typedef struct {
    int          json;
    const char  *out;
    uint32_t     workers;
    uint64_t     blocks;
    double       seconds;
    size_t       queries;
    uint64_t     seed;
} opts_t;

typedef struct {
    double    events_per_s;           /* blocks applied per second */
    double    events_single_per_s;    /* same, one kvr_index_apply each */
    double    stored_blocks_per_s;
    double    removed_blocks_per_s;
    double    event_msgs_per_s;       /* events per second */
    double    fm_per_s;
    double    fm_blocks_per_s;
    double    p50_ns, p99_ns, mean_ns;
    uint64_t  bytes;
} result_t;

typedef struct {
    const dkv_workload_t  *wl;
    kvr_index_t           *idx;
    void                  *mem;
    size_t                 len;
    kvr_index_config_t     cfg;
    dkv_naive_t           *nv;
    uint64_t              *steps;     /* blocks walked, per query */
    uint64_t               total_steps;
    size_t                 split;     /* first STORED event in wl->churn */
    int                    tty;
} bench_t;

static volatile uint64_t  g_sink;     /* keeps query results alive */

static const char *usage_text =
    "usage: dynamo-kv bench [--json] [--out FILE] [--workers N] [--blocks N]\n"
    "                       [--seconds S] [--queries N] [--seed N]\n"
    "  --json         print one JSON object instead of the table\n"
    "  --out FILE     also write the JSON to FILE\n"
    "  --workers N    workers, 1..1024 (default 64)\n"
    "  --blocks N     blocks per worker (default 16384)\n"
    "  --seconds S    time per measured phase (default 1)\n"
    "  --queries N    distinct queries (default 20000)\n"
    "  --seed N       workload seed (default 1)\n";

static void
progress(const bench_t *b, const char *what)
{
    if (b->tty) {
        fprintf(stderr, "\rbench: %-50s", what);
        fflush(stderr);
    }
}

static int
parse_u64(const char *s, uint64_t *out)
{
    char  *end;

    if (s == NULL || *s < '0' || *s > '9') {
        return -1;
    }
    errno = 0;
    *out = strtoull(s, &end, 10);
    return (errno != 0 || *end != '\0') ? -1 : 0;
}

static int
parse_opts(int argc, char **argv, opts_t *o)
{
    uint64_t  v;
    char     *end;
    int       i;

    o->json = 0;
    o->out = NULL;
    o->workers = 64;
    o->blocks = 16384;
    o->seconds = 1.0;
    o->queries = 20000;
    o->seed = 1;

    for (i = 0; i < argc; i++) {
        const char  *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--json") == 0) {
            o->json = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            return 1;
        }
        if (strcmp(a, "--out") != 0
            && strcmp(a, "--workers") != 0 && strcmp(a, "--blocks") != 0
            && strcmp(a, "--queries") != 0 && strcmp(a, "--seed") != 0
            && strcmp(a, "--seconds") != 0)
        {
            fprintf(stderr, "bench: unknown option: %s\n", a);
            return -1;
        }
        if (val == NULL) {
            fprintf(stderr, "bench: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "--out") == 0) {
            o->out = val;
        } else if (strcmp(a, "--workers") == 0) {
            if (parse_u64(val, &v) != 0 || v < 1
                || v > KVR_INDEX_MAX_WORKERS)
            {
                fprintf(stderr, "bench: --workers must be 1..%d\n",
                        KVR_INDEX_MAX_WORKERS);
                return -1;
            }
            o->workers = (uint32_t) v;
        } else if (strcmp(a, "--blocks") == 0) {
            if (parse_u64(val, &v) != 0 || v < 64 || v > (1ULL << 32)) {
                fprintf(stderr, "bench: --blocks must be 64..2^32\n");
                return -1;
            }
            o->blocks = v;
        } else if (strcmp(a, "--queries") == 0) {
            if (parse_u64(val, &v) != 0 || v < 1 || v > 10000000) {
                fprintf(stderr, "bench: --queries must be 1..10000000\n");
                return -1;
            }
            o->queries = (size_t) v;
        } else if (strcmp(a, "--seed") == 0) {
            if (parse_u64(val, &o->seed) != 0) {
                fprintf(stderr, "bench: bad --seed\n");
                return -1;
            }
        } else if (strcmp(a, "--seconds") == 0) {
            errno = 0;
            o->seconds = strtod(val, &end);
            if (errno != 0 || *end != '\0' || !(o->seconds > 0)
                || o->seconds > 3600)
            {
                fprintf(stderr, "bench: --seconds must be in (0, 3600]\n");
                return -1;
            }
        }
    }
    return 0;
}

/* ---- event apply ---- */

/*
 * Events are applied from a staging buffer, one stream read's worth
 * (EVENT_BATCH events) at a time, copied there untimed: a router applies
 * events it has just decoded, so their blocks are in cache.
 */
typedef struct {
    kvr_event_t   ev[EVENT_BATCH];
    kvr_block_t  *blk;
} stage_t;

static size_t
stage(const bench_t *b, const dkv_wl_event_t *e, size_t n, stage_t *st)
{
    size_t  j, k = n < EVENT_BATCH ? n : EVENT_BATCH, off = 0;

    for (j = 0; j < k; j++) {
        memcpy(st->blk + off, b->wl->blocks + e[j].first,
               e[j].n * sizeof(kvr_block_t));
        st->ev[j].type = (kvr_event_type_t) e[j].type;
        st->ev[j].worker_id = DKV_WORKER_ID0 + e[j].worker;
        st->ev[j].generation = 1;
        st->ev[j].event_id = e[j].event_id;
        st->ev[j].has_parent = 0;
        st->ev[j].parent = 0;
        st->ev[j].nblocks = e[j].n;
        st->ev[j].blocks = st->blk + off;
        off += e[j].n;
    }
    return k;
}

/*
 * Applies e[0..n); returns the seconds spent in the index calls, or -1.
 * mode 0: naive; 1: kvr_index_apply per event; 2: kvr_index_apply_many.
 */
static double
apply_events(bench_t *b, const dkv_wl_event_t *e, size_t n, int mode,
    stage_t *st)
{
    int     rc[EVENT_BATCH];
    size_t  i, j, k;
    double  t = 0, t0;

    for (i = 0; i < n; i += k) {
        k = stage(b, e + i, n - i, st);
        t0 = dkv_now();
        if (mode == 0) {
            for (j = 0; j < k; j++) {
                dkv_naive_apply(b->nv, &st->ev[j]);
                rc[j] = KVR_OK;
            }
        } else if (mode == 1) {
            for (j = 0; j < k; j++) {
                rc[j] = kvr_index_apply(b->idx, &st->ev[j]);
            }
        } else {
            (void) kvr_index_apply_many(b->idx, st->ev, k, rc);
        }
        t += dkv_now() - t0;
        for (j = 0; j < k; j++) {
            if (rc[j] != KVR_OK) {
                fprintf(stderr, "bench: apply: %s\n", kvr_strerror(rc[j]));
                return -1;
            }
        }
    }
    return t;
}

static uint64_t
sum_blocks(const dkv_wl_event_t *e, size_t n, uint32_t *max)
{
    uint64_t  s = 0;
    size_t    i;

    for (i = 0; i < n; i++) {
        s += e[i].n;
        *max = e[i].n > *max ? e[i].n : *max;
    }
    return s;
}

/*
 * Fill, remove, re-store, repeated on a fresh index until `seconds` have
 * been measured (at least MIN_REPS times). Leaves the index filled.
 */
static int
bench_events(bench_t *b, int mode, double seconds, result_t *r)
{
    const dkv_workload_t  *wl = b->wl;
    double                 t_fill = 0, t_rem = 0, t_sto = 0, t[3];
    uint32_t               maxn = 0;
    uint64_t               fill = sum_blocks(wl->events, wl->nevents, &maxn);
    uint64_t               rem = sum_blocks(wl->churn, b->split, &maxn);
    uint64_t               sto = sum_blocks(wl->churn + b->split,
                                            wl->nchurn - b->split, &maxn);
    size_t                 nsto = wl->nchurn - b->split;
    stage_t                st;
    int                    reps = 0, rc = -1;

    st.blk = malloc((size_t) maxn * EVENT_BATCH * sizeof(kvr_block_t) + 1);
    if (st.blk == NULL) {
        return -1;
    }
    while (reps < MIN_REPS || t_fill + t_rem + t_sto < seconds) {
        if (mode == 0) {
            dkv_naive_reset(b->nv);
        } else if (kvr_index_init(b->mem, b->len, &b->cfg) != b->idx) {
            goto done;
        }
        t[0] = apply_events(b, wl->events, wl->nevents, mode, &st);
        t[1] = apply_events(b, wl->churn, b->split, mode, &st);
        t[2] = apply_events(b, wl->churn + b->split, nsto, mode, &st);
        if (t[0] < 0 || t[1] < 0 || t[2] < 0) {
            goto done;
        }
        t_fill += t[0];
        t_rem += t[1];
        t_sto += t[2];
        if (++reps >= 1000) {
            break;
        }
    }
    r->events_per_s = (double) reps * (double) (fill + rem + sto)
                      / (t_fill + t_rem + t_sto);
    r->stored_blocks_per_s = (double) reps * (double) (fill + sto)
                             / (t_fill + t_sto);
    r->removed_blocks_per_s = t_rem > 0 ? (double) reps * (double) rem / t_rem
                                        : 0;
    r->event_msgs_per_s = (double) reps * (double) (wl->nevents + wl->nchurn)
                          / (t_fill + t_rem + t_sto);
    rc = 0;
done:
    free(st.blk);
    return rc;
}

/* ---- find_matches ---- */

static size_t
fm(const bench_t *b, int naive, size_t q, kvr_match_t *m)
{
    const dkv_workload_t  *wl = b->wl;
    const uint64_t        *s = wl->qseq + wl->qoff[q];
    size_t                 n = wl->qoff[q + 1] - wl->qoff[q];

    return naive ? dkv_naive_find_matches(b->nv, s, n, m, MAX_MATCH)
                 : kvr_index_find_matches(b->idx, s, n, m, MAX_MATCH);
}

static int
cmp_match(const void *a, const void *b)
{
    const kvr_match_t  *x = a, *y = b;

    return x->worker_id < y->worker_id ? -1 : x->worker_id > y->worker_id;
}

static int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}

/* Steps per query from our results; both indexes must agree on every one. */
static int
cross_check(bench_t *b, double *avg_matches)
{
    const dkv_workload_t  *wl = b->wl;
    kvr_match_t            m1[MAX_MATCH], m2[MAX_MATCH];
    size_t                 q, k1, k2, i, n, bad = 0;
    uint32_t               maxov;
    uint64_t               matches = 0;

    b->total_steps = 0;
    for (q = 0; q < wl->nqueries; q++) {
        k1 = fm(b, 0, q, m1);
        k2 = fm(b, 1, q, m2);
        n = wl->qoff[q + 1] - wl->qoff[q];
        maxov = 0;
        for (i = 0; i < k1; i++) {
            maxov = m1[i].overlap_blocks > maxov ? m1[i].overlap_blocks
                                                 : maxov;
        }
        b->steps[q] = maxov >= n ? n : (uint64_t) maxov + 1;
        b->total_steps += b->steps[q];
        matches += k1;
        qsort(m1, k1, sizeof(*m1), cmp_match);
        qsort(m2, k2, sizeof(*m2), cmp_match);
        if (k1 != k2 || memcmp(m1, m2, k1 * sizeof(*m1)) != 0) {
            bad++;
        }
    }
    *avg_matches = (double) matches / (double) wl->nqueries;
    if (bad > 0) {
        kvr_index_stats_t  st;

        kvr_index_stats(b->idx, &st);
        fprintf(stderr, "bench: %zu of %zu queries differ between kvrouter"
                " and the baseline (index evictions: %" PRIu64 ")\n", bad,
                wl->nqueries, st.evictions);
        return -1;
    }
    return 0;
}

static int
bench_queries(bench_t *b, int naive, double seconds, result_t *r)
{
    const dkv_workload_t  *wl = b->wl;
    kvr_match_t            m[MAX_MATCH];
    double                *lat, t0, t1, t = 0, sum = 0;
    uint64_t               passes = 0, sink = 0;
    size_t                 q;

    /* throughput: whole passes over the queries */
    while (passes < 1 || t < seconds) {
        t0 = dkv_now();
        for (q = 0; q < wl->nqueries; q++) {
            sink += fm(b, naive, q, m);
        }
        t += dkv_now() - t0;
        passes++;
    }
    r->fm_per_s = (double) passes * (double) wl->nqueries / t;
    r->fm_blocks_per_s = (double) passes * (double) b->total_steps / t;

    /* latency: one pass, each query timed (includes ~20 ns of clock) */
    lat = malloc(wl->nqueries * sizeof(*lat));
    if (lat == NULL) {
        return -1;
    }
    for (q = 0; q < wl->nqueries; q++) {
        t0 = dkv_now();
        sink += fm(b, naive, q, m);
        t1 = dkv_now();
        lat[q] = (t1 - t0) * 1e9;
        sum += lat[q];
    }
    qsort(lat, wl->nqueries, sizeof(*lat), cmp_double);
    r->p50_ns = lat[wl->nqueries / 2];
    r->p99_ns = lat[(size_t) ((double) (wl->nqueries - 1) * 0.99)];
    r->mean_ns = sum / (double) wl->nqueries;
    free(lat);
    g_sink += sink;
    return 0;
}

/* ---- report ---- */

typedef struct {
    const opts_t          *o;
    const dkv_workload_t  *wl;
    kvr_index_stats_t      st;
    double                 hash_tps;
    double                 avg_query, avg_steps, avg_matches;
    double                 seconds;
    result_t               ours, naive;
} report_t;

static double
ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

static void
write_json_result(FILE *f, const report_t *rp, const result_t *r)
{
    fprintf(f, "{\"events_per_s\": %.0f, \"events_single_per_s\": %.0f, "
            "\"stored_blocks_per_s\": %.0f, "
            "\"removed_blocks_per_s\": %.0f, \"event_msgs_per_s\": %.0f, "
            "\"find_matches_per_s\": %.0f, "
            "\"find_matches_blocks_per_s\": %.0f, "
            "\"find_matches_p50_ns\": %.0f, \"find_matches_p99_ns\": %.0f, "
            "\"find_matches_mean_ns\": %.0f, \"index_bytes\": %" PRIu64 ", "
            "\"bytes_per_block\": %.2f, \"bytes_per_pair\": %.2f}",
            r->events_per_s, r->events_single_per_s, r->stored_blocks_per_s,
            r->removed_blocks_per_s,
            r->event_msgs_per_s, r->fm_per_s, r->fm_blocks_per_s, r->p50_ns,
            r->p99_ns, r->mean_ns, r->bytes,
            (double) r->bytes / (double) rp->st.blocks,
            (double) r->bytes / (double) rp->wl->pairs);
}

static void
write_json(FILE *f, const report_t *rp)
{
    const result_t  *o = &rp->ours, *n = &rp->naive;

    fprintf(f, "{\"bench\": \"kvrouter\", \"threads\": 1, "
            "\"workers\": %u, \"blocks_per_worker\": %" PRIu64 ", "
            "\"block_size\": %d, \"pairs\": %" PRIu64 ", "
            "\"distinct_blocks\": %" PRIu64 ", \"system_prompts\": %u, "
            "\"conversations\": %" PRIu64 ", \"queries\": %zu, "
            "\"avg_query_blocks\": %.1f, \"avg_walked_blocks\": %.1f, "
            "\"avg_matches\": %.2f, \"evictions\": %" PRIu64 ", "
            "\"seconds\": %.1f,\n",
            rp->o->workers, rp->o->blocks, BENCH_BLOCK_SIZE, rp->wl->pairs,
            rp->st.blocks, rp->wl->sys_prompts, rp->wl->conversations,
            rp->wl->nqueries, rp->avg_query, rp->avg_steps, rp->avg_matches,
            rp->st.evictions, rp->seconds);
    fprintf(f, " \"hash_tokens_per_s\": %.0f,\n", rp->hash_tps);
    fprintf(f, " \"events_per_s\": %.0f, \"find_matches_per_s\": %.0f, "
            "\"find_matches_blocks_per_s\": %.0f, "
            "\"find_matches_p50_ns\": %.0f, \"find_matches_p99_ns\": %.0f, "
            "\"bytes_per_block\": %.2f, \"bytes_per_pair\": %.2f,\n",
            o->events_per_s, o->fm_per_s, o->fm_blocks_per_s, o->p50_ns,
            o->p99_ns, (double) o->bytes / (double) rp->st.blocks,
            (double) o->bytes / (double) rp->wl->pairs);
    fprintf(f, " \"kvrouter\": ");
    write_json_result(f, rp, o);
    fprintf(f, ",\n \"baseline\": ");
    write_json_result(f, rp, n);
    fprintf(f, ",\n \"baseline_name\": \"per-worker hash sets\",\n");
    fprintf(f, " \"event_batch\": %d,\n", EVENT_BATCH);
    fprintf(f, " \"ratio\": {\"events_per_s\": %.2f, "
            "\"find_matches_per_s\": %.2f, "
            "\"find_matches_blocks_per_s\": %.2f, "
            "\"find_matches_p50\": %.2f, \"find_matches_p99\": %.2f, "
            "\"bytes\": %.2f},\n",
            ratio(o->events_per_s, n->events_per_s),
            ratio(o->fm_per_s, n->fm_per_s),
            ratio(o->fm_blocks_per_s, n->fm_blocks_per_s),
            ratio(n->p50_ns, o->p50_ns), ratio(n->p99_ns, o->p99_ns),
            ratio((double) o->bytes, (double) n->bytes));
    fprintf(f, " \"anchor\": {\"name\": \"Dynamo indexer, ops/s per core\", "
            "\"ops_per_s_per_core\": %.0f, \"goal_x\": 2, "
            "\"events_x\": %.2f, \"find_matches_blocks_x\": %.2f}}\n",
            ANCHOR_OPS_PER_CORE, o->events_per_s / ANCHOR_OPS_PER_CORE,
            o->fm_blocks_per_s / ANCHOR_OPS_PER_CORE);
}

static const char *
si(double v, char *buf, size_t cap)
{
    if (v >= 1e9) {
        snprintf(buf, cap, "%.2f G", v / 1e9);
    } else if (v >= 1e6) {
        snprintf(buf, cap, "%.2f M", v / 1e6);
    } else if (v >= 1e3) {
        snprintf(buf, cap, "%.2f k", v / 1e3);
    } else {
        snprintf(buf, cap, "%.2f ", v);
    }
    return buf;
}

static void
row(const char *name, double a, double b, const char *unit, int higher,
    double anchor)
{
    char  x[32], y[32], z[32], w[32];

    snprintf(z, sizeof(z), "%.2fx", higher ? ratio(a, b) : ratio(b, a));
    if (anchor > 0) {
        snprintf(w, sizeof(w), "%.2fx", a / anchor);
    } else {
        snprintf(w, sizeof(w), "-");
    }
    printf("%-28s %12s%-3s %12s%-3s %8s %10s\n", name, si(a, x, sizeof(x)),
           unit, b > 0 ? si(b, y, sizeof(y)) : "-", b > 0 ? unit : "", b > 0
           ? z : "-", w);
}

static void
write_table(const report_t *rp)
{
    const result_t  *o = &rp->ours, *n = &rp->naive;

    printf("dynamo-kv bench: kvrouter prefix index, 1 thread\n");
    printf("workload: %u workers x %" PRIu64 " blocks (B=%d) = %" PRIu64
           " stored blocks, %" PRIu64 " distinct; %u system prompts, %"
           PRIu64 " conversations\n", rp->o->workers, rp->o->blocks,
           BENCH_BLOCK_SIZE, rp->wl->pairs, rp->st.blocks,
           rp->wl->sys_prompts, rp->wl->conversations);
    printf("queries:  %zu (avg %.1f blocks, %.1f walked, %.2f workers"
           " matched); results identical in both indexes\n\n",
           rp->wl->nqueries, rp->avg_query, rp->avg_steps, rp->avg_matches);
    printf("%-28s %15s %15s %8s %10s\n", "metric", "kvrouter", "naive",
           "ratio", "vs anchor");
    row("hash_tokens_per_s", rp->hash_tps, 0, "/s", 1, 0);
    row("events_per_s (blocks)", o->events_per_s, n->events_per_s, "/s", 1,
        ANCHOR_OPS_PER_CORE);
    row("  1 event per call", o->events_single_per_s, n->events_per_s, "/s",
        1, ANCHOR_OPS_PER_CORE);
    row("  stored_blocks_per_s", o->stored_blocks_per_s,
        n->stored_blocks_per_s, "/s", 1, 0);
    row("  removed_blocks_per_s", o->removed_blocks_per_s,
        n->removed_blocks_per_s, "/s", 1, 0);
    row("  event_msgs_per_s", o->event_msgs_per_s, n->event_msgs_per_s,
        "/s", 1, 0);
    row("find_matches_per_s", o->fm_per_s, n->fm_per_s, "/s", 1, 0);
    row("find_matches_blocks_per_s", o->fm_blocks_per_s, n->fm_blocks_per_s,
        "/s", 1, ANCHOR_OPS_PER_CORE);
    row("find_matches_p50 (ns)", o->p50_ns, n->p50_ns, "", 0, 0);
    row("find_matches_p99 (ns)", o->p99_ns, n->p99_ns, "", 0, 0);
    row("bytes_per_block (distinct)", (double) o->bytes
        / (double) rp->st.blocks, (double) n->bytes / (double) rp->st.blocks,
        "B", 0, 0);
    row("bytes_per_pair", (double) o->bytes / (double) rp->wl->pairs,
        (double) n->bytes / (double) rp->wl->pairs, "B", 0, 0);
    row("index_bytes", (double) o->bytes, (double) n->bytes, "B", 0, 0);
    printf("\nanchor: Dynamo's indexer, ~7M ops/s per core (170M/s on 24"
           " cores); goal >= 2x per core.\n");
    printf("latency includes ~20 ns of clock reads; %.1f s in all\n",
           rp->seconds);
}

int
dkv_cmd_bench(int argc, char **argv)
{
    opts_t           o;
    dkv_wl_config_t  wc;
    dkv_workload_t   wl;
    bench_t          b;
    report_t         rp;
    result_t         single;
    FILE            *out = NULL;
    uint64_t         need;
    double           start = dkv_now();
    int              rc, status = 1;

    rc = parse_opts(argc, argv, &o);
    if (rc != 0) {
        fputs(usage_text, rc > 0 ? stdout : stderr);
        return rc > 0 ? 0 : 2;
    }

    memset(&b, 0, sizeof(b));
    memset(&rp, 0, sizeof(rp));
    b.tty = isatty(STDERR_FILENO);
    wc.workers = o.workers;
    wc.blocks = o.blocks;
    wc.block_size = BENCH_BLOCK_SIZE;
    wc.queries = o.queries;
    wc.seed = o.seed;
    b.cfg.max_workers = o.workers;
    b.cfg.max_blocks = (uint64_t) o.workers * o.blocks;
    b.len = kvr_index_size(&b.cfg);

    need = dkv_workload_bytes(&wc) + b.len + (uint64_t) o.workers * 16
           * o.blocks * 2;
    if (b.len == 0 || need > BENCH_MEM_MAX) {
        fprintf(stderr, "bench: %u workers x %" PRIu64 " blocks needs about"
                " %.1f GiB; the limit is %.0f GiB\n", o.workers, o.blocks,
                (double) need / (1 << 30), (double) BENCH_MEM_MAX / (1 << 30));
        return 2;
    }

    if (o.out != NULL) {
        out = fopen(o.out, "w");           /* fail before the long run */
        if (out == NULL) {
            fprintf(stderr, "bench: %s: %s\n", o.out, strerror(errno));
            return 1;
        }
    }

    progress(&b, "building workload (hashing tokens)");
    if (dkv_workload_build(&wl, &wc) != 0) {
        fprintf(stderr, "bench: out of memory building the workload\n");
        if (out != NULL) {
            fclose(out);
        }
        return 1;
    }
    b.wl = &wl;
    for (b.split = 0; b.split < wl.nchurn
         && wl.churn[b.split].type == KVR_EV_REMOVED; b.split++)
    {
        /* void */
    }

    b.mem = malloc(b.len);
    b.nv = dkv_naive_new(o.workers, o.blocks);
    b.steps = malloc(wl.nqueries * sizeof(*b.steps));
    if (b.mem == NULL || b.nv == NULL || b.steps == NULL) {
        fprintf(stderr, "bench: out of memory\n");
        goto done;
    }
    b.idx = kvr_index_init(b.mem, b.len, &b.cfg);
    if (b.idx == NULL) {
        fprintf(stderr, "bench: kvr_index_init failed\n");
        goto done;
    }

    progress(&b, "event apply: kvrouter, one event per call");
    if (bench_events(&b, 1, o.seconds, &single) != 0) {
        goto done;
    }
    progress(&b, "event apply: kvrouter, batches");
    if (bench_events(&b, 2, o.seconds, &rp.ours) != 0) {
        goto done;
    }
    rp.ours.events_single_per_s = single.events_per_s;
    progress(&b, "event apply: naive");
    if (bench_events(&b, 0, o.seconds, &rp.naive) != 0) {
        goto done;
    }
    rp.naive.events_single_per_s = rp.naive.events_per_s;
    kvr_index_stats(b.idx, &rp.st);

    progress(&b, "cross-checking matches");
    if (cross_check(&b, &rp.avg_matches) != 0) {
        goto done;
    }
    progress(&b, "find_matches: kvrouter");
    if (bench_queries(&b, 0, o.seconds, &rp.ours) != 0) {
        goto done;
    }
    progress(&b, "find_matches: naive");
    if (bench_queries(&b, 1, o.seconds, &rp.naive) != 0) {
        goto done;
    }
    if (b.tty) {
        fprintf(stderr, "\r%-58s\r", "");
    }

    rp.o = &o;
    rp.wl = &wl;
    rp.ours.bytes = b.len;
    rp.naive.bytes = dkv_naive_bytes(b.nv);
    rp.hash_tps = (double) wl.hashed_tokens / wl.hash_seconds;
    rp.avg_query = (double) wl.qoff[wl.nqueries] / (double) wl.nqueries;
    rp.avg_steps = (double) b.total_steps / (double) wl.nqueries;
    rp.seconds = dkv_now() - start;

    if (o.json) {
        write_json(stdout, &rp);
    } else {
        write_table(&rp);
    }
    if (out != NULL) {
        write_json(out, &rp);
        rc = fclose(out);
        out = NULL;
        if (rc != 0) {
            fprintf(stderr, "bench: %s: write failed\n", o.out);
            goto done;
        }
    }
    status = fflush(stdout) == 0 ? 0 : 1;
done:
    if (out != NULL) {
        fclose(out);
    }
    free(b.mem);
    free(b.steps);
    dkv_naive_free(b.nv);
    dkv_workload_free(&wl);
    return status;
}
