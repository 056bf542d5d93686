/*
 * `synthesize`: Mooncake traces with controllable prefix sharing.
 *
 * Sessions arrive as a Poisson process at request_rate / turns per second
 * (so requests arrive at about request_rate). A session picks one of K
 * shared system prompts and cuts it to a length drawn around system_len
 * (uniform in [S(1 - r), S(1 + r)], r the --range-ratio): sessions on the
 * same prompt share its common leading blocks. Turn 0's input is that cut
 * plus the user's new tokens; turn t's is turn t-1's input, its output
 * and new user tokens. Later turns come delay_ms after the previous
 * turn's timestamp and carry session_id and delay.
 *
 * A request's content is a run of segments (system prompt k, user turn j,
 * output j); block i's key hashes the previous block's key and the
 * segment pieces it covers, as a real block hash chains over the tokens.
 * So equal prefixes give equal ids, and a block only partly covered by a
 * shared prefix gets a new one. Keys are numbered densely in timestamp
 * order to give the hash ids written.
 *
 * With a target hit rate, system_len is solved by bisection: every random
 * draw is independent of system_len, so the trace only changes through
 * the prompt cut and the hit rate grows (nearly) monotonically with it.
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_dataset_int.h"
#include "db_trace.h"
#include "db_trace_int.h"

#define DB_SYNTH_LEN_MAX    ((int64_t) 1 << 24)
#define DB_SYNTH_TOLERANCE  0.02
#define DB_SYNTH_SYS_MAX    ((int64_t) 1 << 22)   /* --system-prompt-len */
/* hash ids in a whole trace: the trace is built in memory (8 bytes an id,
 * twice over while ids are numbered) and rebuilt by the target solver */
#define DB_SYNTH_IDS_MAX    ((size_t) 1 << 26)

typedef struct {
    uint64_t  id;      /* segment identity */
    int64_t   len;
} seg_t;

static uint64_t
key_step(uint64_t h, uint64_t v)
{
    uint64_t  s = h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));

    return db_splitmix64(&s);
}

/* Where the key chain stands after a record: the key so far, the next
 * segment (and offset), the block being filled and the room left in it. */
typedef struct {
    uint64_t  h;
    size_t    si;
    int64_t   off;
    size_t    b;
    int64_t   left;
} chain_t;

/*
 * Hash ids (block keys) of a content of n segments into rec. A session's
 * next turn only appends segments, so it resumes the chain where the
 * previous turn's left it (*ch), taking that turn's full blocks (prev) as
 * they are: a session of T turns is not rescanned T times.
 */
static int
block_keys(const seg_t *segs, size_t n, int64_t total, int bs,
    const uint64_t *prev, chain_t *ch, db_trace_rec_t *rec)
{
    size_t   nb = (size_t) ((total + bs - 1) / bs);
    chain_t  c = *ch;

    rec->hash_ids = malloc((nb ? nb : 1) * sizeof(*rec->hash_ids));
    if (rec->hash_ids == NULL) {
        return -1;
    }
    if (c.b > 0) {
        memcpy(rec->hash_ids, prev, c.b * sizeof(*prev));
    }
    while (c.si < n) {
        int64_t  take = segs[c.si].len - c.off < c.left
                        ? segs[c.si].len - c.off : c.left;

        if (take > 0) {
            c.h = key_step(c.h, segs[c.si].id);
            c.h = key_step(c.h, (uint64_t) c.off);
            c.h = key_step(c.h, (uint64_t) take);
        }
        c.off += take;
        c.left -= take;
        if (c.off >= segs[c.si].len) {
            c.si++;
            c.off = 0;
        }
        if (c.left == 0) {
            rec->hash_ids[c.b++] = c.h;
            c.left = bs;
        }
    }
    if (c.left < bs) {
        rec->hash_ids[c.b] = c.h;      /* the partial last block */
    }
    *ch = c;
    rec->n_hash_ids = nb;
    return 0;
}

static int64_t
draw_len(uint64_t *st, int64_t mean, double r)
{
    int64_t  lo = (int64_t) ((double) mean * (1 - r));
    int64_t  hi = (int64_t) ((double) mean * (1 + r));
    int64_t  v = db_uniform_int(st, lo, hi);

    return v < 1 ? 1 : v;
}

static int
ts_cmp(const void *a, const void *b)
{
    const db_trace_rec_t  *x = a, *y = b;

    if (x->timestamp_ms != y->timestamp_ms) {
        return x->timestamp_ms < y->timestamp_ms ? -1 : 1;
    }
    /* equal times: session order then turn order (delay_ms holds the
     * generation sequence number until numbering) */
    return x->delay_ms < y->delay_ms ? -1 : x->delay_ms > y->delay_ms;
}

/* What generate's sessions share. */
typedef struct {
    const db_synth_conf_t  *c;
    db_trace_t             *tr;
    double                 *dl;     /* by generation order: the delay */
    seg_t                  *segs;   /* one session's content */
    size_t                  ids;    /* hash ids so far */
} gen_t;

/* The system prompt's cut for a session whose stream is *st. */
static int64_t
sys_cut(const db_synth_conf_t *c, int64_t sys_len, uint64_t *st)
{
    double   v = db_unit(st);
    int64_t  lo = (int64_t) ((double) sys_len * (1 - c->len_ratio));
    int64_t  hi = (int64_t) ((double) sys_len * (1 + c->len_ratio));
    int64_t  cut = lo + (int64_t) (v * (double) (hi - lo + 1));

    return cut > hi ? hi : cut;
}

/* Session s's turns (as many as fit in num_requests) from time ts. */
static int
gen_session(gen_t *g, size_t s, int64_t sys_len, double ts, char *err,
    size_t errlen)
{
    const db_synth_conf_t  *c = g->c;
    size_t                  turns = (size_t) c->turns, t, nseg = 0;
    uint64_t                st = db_seed_mix(c->seed, 0x73657373ULL + s);
    int64_t                 k = c->system_prompts > 0
                                ? db_uniform_int(&st, 0,
                                                 c->system_prompts - 1) : 0;
    int64_t                 cut = sys_cut(c, sys_len, &st), total = 0;
    chain_t                 ch = { 0x6b657973ULL, 0, 0, 0, c->block_size };

    if (c->system_prompts > 0 && cut > 0) {
        g->segs[nseg].id = key_step(0x737973ULL, (uint64_t) k);
        g->segs[nseg++].len = cut;
        total = cut;
    }
    for (t = 0; t < turns && g->tr->n < c->num_requests; t++) {
        size_t           i = g->tr->n;
        db_trace_rec_t  *r = &g->tr->v[i];
        int64_t          u = draw_len(&st, c->isl, c->len_ratio);
        int64_t          o = draw_len(&st, c->osl, c->len_ratio);

        g->segs[nseg].id = key_step(key_step(0x75ULL, s), t);
        g->segs[nseg++].len = u;
        total += u;
        if (total > DB_SYNTH_LEN_MAX) {
            snprintf(err, errlen, "a session's input grows past %lld "
                     "tokens; use fewer --turns or shorter lengths",
                     (long long) DB_SYNTH_LEN_MAX);
            return -1;
        }
        if (t > 0) {
            ts += floor(c->delay_ms + 0.5);
        }
        r->timestamp_ms = ts;
        r->input_length = total;
        r->output_length = o;
        r->session = turns > 1 ? (int64_t) s : -1;
        r->delay_ms = (double) i;       /* order; see ts_cmp */
        g->dl[i] = t > 0 ? floor(c->delay_ms + 0.5) : -1;
        if (block_keys(g->segs, nseg, total, c->block_size,
                       t > 0 ? r[-1].hash_ids : NULL, &ch, r) != 0)
        {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        g->tr->n++;
        g->ids += r->n_hash_ids;
        if (g->ids > DB_SYNTH_IDS_MAX) {
            snprintf(err, errlen, "the trace would carry more than %zu "
                     "hash ids (%zu MiB in memory): fewer --num-requests "
                     "or --turns, shorter lengths or a larger "
                     "--block-size", DB_SYNTH_IDS_MAX,
                     DB_SYNTH_IDS_MAX * 8 >> 20);
            return -1;
        }
        g->segs[nseg].id = key_step(key_step(0x6fULL, s), t);
        g->segs[nseg++].len = o;
        total += o;
    }
    return 0;
}

/*
 * The trace for a system prompt length; hash ids are block keys until
 * number_ids. delay_ms carries the generation order for a stable sort and
 * turn delays are kept in *delays.
 */
static int
generate(const db_synth_conf_t *c, int64_t sys_len, db_trace_t *tr,
    double **delays, char *err, size_t errlen)
{
    size_t    n = c->num_requests, turns = (size_t) c->turns, s;
    size_t    nsess = (n + turns - 1) / turns;
    uint64_t  arr = db_seed_mix(c->seed, 0x617272ULL);
    double    now = 0, srate = c->request_rate / (double) turns;
    gen_t     g = { c, tr, NULL, NULL, 0 };

    memset(tr, 0, sizeof(*tr));
    g.segs = malloc((2 * turns + 1) * sizeof(*g.segs));
    g.dl = malloc((n ? n : 1) * sizeof(*g.dl));
    tr->v = calloc(n ? n : 1, sizeof(*tr->v));
    if (g.segs == NULL || g.dl == NULL || tr->v == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    tr->cap = n;
    tr->n_sessions = turns > 1 ? nsess : 0;
    for (s = 0; s < nsess && tr->n < n; s++) {
        if (s > 0) {
            now += -log(1 - db_unit(&arr)) / srate * 1000.0;
        }
        if (gen_session(&g, s, sys_len, floor(now + 0.5), err, errlen)
            != 0)
        {
            goto fail;
        }
    }
    free(g.segs);
    *delays = g.dl;
    return 0;
fail:
    free(g.segs);
    free(g.dl);
    db_trace_free(tr);
    return -1;
}

/* Sorts by timestamp and numbers block keys densely in that order. */
static int
number_ids(db_trace_t *tr, const double *delays, char *err, size_t errlen)
{
    db_u64map_t  m = { 0 };
    size_t       i, j;
    int          added;

    qsort(tr->v, tr->n, sizeof(*tr->v), ts_cmp);
    for (i = 0; i < tr->n; i++) {
        db_trace_rec_t  *r = &tr->v[i];

        r->delay_ms = delays[(size_t) r->delay_ms];
        for (j = 0; j < r->n_hash_ids; j++) {
            if (db_u64map_put(&m, r->hash_ids[j], m.n, &added) != 0) {
                db_u64map_free(&m);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            r->hash_ids[j] = *db_u64map_get(&m, r->hash_ids[j]);
        }
    }
    db_u64map_free(&m);
    return 0;
}

static int
build(const db_synth_conf_t *c, int64_t sys_len, db_trace_t *tr,
    double *hit, char *err, size_t errlen)
{
    double         *delays;
    db_analysis_t   a;

    if (generate(c, sys_len, tr, &delays, err, errlen) != 0) {
        return -1;
    }
    if (number_ids(tr, delays, err, errlen) != 0) {
        free(delays);
        db_trace_free(tr);
        return -1;
    }
    free(delays);
    db_trace_analyze(tr, &a);
    *hit = a.hit_rate;
    return 0;
}

static int
check_conf(const db_synth_conf_t *c, char *err, size_t errlen)
{
    const char  *bad = NULL;

    if (c->num_requests < 1 || c->num_requests > 10000000) {
        bad = "--num-requests must be in [1, 10000000]";
    } else if (!(c->request_rate > 0) || c->request_rate > 1e9) {
        bad = "--request-rate must be > 0";
    } else if (c->block_size < 1 || c->block_size > (1 << 20)) {
        bad = "--block-size must be in [1, 1048576]";
    } else if (c->isl < 1 || c->isl > (1 << 22) || c->osl < 1
               || c->osl > (1 << 22))
    {
        bad = "--input-len and --output-len must be in [1, 4194304]";
    } else if (!(c->len_ratio >= 0 && c->len_ratio < 1)) {
        bad = "--range-ratio must be in [0, 1)";
    } else if (c->system_prompts < 0 || c->system_prompts > 1000000) {
        bad = "--system-prompts must be in [0, 1000000]";
    } else if (c->system_len < 0 || c->system_len > (1 << 22)) {
        bad = "--system-prompt-len must be in [0, 4194304]";
    } else if (c->turns < 1 || c->turns > 100000) {
        bad = "--turns must be in [1, 100000]";
    } else if (!(c->delay_ms >= 0 && c->delay_ms < 1e12)) {
        bad = "--delay-ms must be >= 0";
    } else if (!(c->target_hit < 1)) {
        bad = "--target-hit-rate must be in [0, 1)";
    }
    if (bad != NULL) {
        snprintf(err, errlen, "%s", bad);
        return -1;
    }
    return 0;
}

/* Solves system_len for c->target_hit; the trace is left in tr. */
static int
solve(const db_synth_conf_t *c, db_trace_t *tr, double *hit, char *err,
    size_t errlen)
{
    int64_t     lo = 0, hi, mid, best;
    double      h_lo, h_hi, h;
    double      target = c->target_hit;

    if (build(c, lo, tr, &h_lo, err, errlen) != 0) {
        return -1;
    }
    db_trace_free(tr);
    if (h_lo > target + DB_SYNTH_TOLERANCE) {
        snprintf(err, errlen, "--target-hit-rate %.3f is unreachable: "
                 "without a system prompt the trace already hits %.3f "
                 "(fewer --turns)", target, h_lo);
        return -1;
    }
    /* doubling from one block: only as long a prompt as needed is built */
    for (hi = c->block_size; ; hi *= 2) {
        if (hi > DB_SYNTH_SYS_MAX) {
            hi = DB_SYNTH_SYS_MAX;
        }
        if (build(c, hi, tr, &h_hi, err, errlen) != 0) {
            return -1;
        }
        db_trace_free(tr);
        if (h_hi >= target || h_lo >= target) {
            break;
        }
        if (hi == DB_SYNTH_SYS_MAX) {
            snprintf(err, errlen, "--target-hit-rate %.3f is unreachable: "
                     "a %lld-token system prompt only hits %.3f (more "
                     "--num-requests, fewer --system-prompts or a smaller "
                     "--block-size)", target, (long long) hi, h_hi);
            return -1;
        }
        lo = hi;
        h_lo = h_hi;
    }
    /* h(lo) < target <= h(hi) */
    while (hi - lo > 1 && h_lo < target) {
        mid = lo + (hi - lo) / 2;
        if (build(c, mid, tr, &h, err, errlen) != 0) {
            return -1;
        }
        db_trace_free(tr);
        if (h < target) {
            lo = mid;
            h_lo = h;
        } else {
            hi = mid;
            h_hi = h;
        }
    }
    best = h_lo >= target || target - h_lo < h_hi - target ? lo : hi;
    if (build(c, best, tr, hit, err, errlen) != 0) {
        return -1;
    }
    if (fabs(*hit - target) > DB_SYNTH_TOLERANCE) {
        db_trace_free(tr);
        snprintf(err, errlen, "--target-hit-rate %.3f is unreachable "
                 "within %.2f: the nearest is %.3f with a %lld-token system "
                 "prompt; %s", target, DB_SYNTH_TOLERANCE, *hit,
                 (long long) best, c->len_ratio == 0
                 ? "with --range-ratio 0 every session cuts its prompt at "
                   "the same length, so the rate moves by whole blocks: "
                   "give --range-ratio 0.5 or a smaller --block-size"
                 : "a smaller --block-size or more --num-requests gives "
                   "finer steps");
        return -1;
    }
    return 0;
}

int
db_synth_write_trace(const db_trace_t *tr, FILE *out)
{
    size_t  i, j;

    for (i = 0; i < tr->n; i++) {
        const db_trace_rec_t  *r = &tr->v[i];

        fprintf(out, "{\"timestamp\": %.0f, \"input_length\": %lld, "
                "\"output_length\": %lld, ", r->timestamp_ms,
                (long long) r->input_length, (long long) r->output_length);
        if (r->session >= 0) {
            fprintf(out, "\"session_id\": %lld, ", (long long) r->session);
        }
        if (r->delay_ms >= 0) {
            fprintf(out, "\"delay\": %.0f, ", r->delay_ms);
        }
        fputs("\"hash_ids\": [", out);
        for (j = 0; j < r->n_hash_ids; j++) {
            fprintf(out, j ? ", %llu" : "%llu",
                    (unsigned long long) r->hash_ids[j]);
        }
        fputs("]}\n", out);
    }
    return ferror(out) ? -1 : 0;
}

int
db_synth_build(const db_synth_conf_t *c, db_trace_t *tr, double *hit,
    char *err, size_t errlen)
{
    db_synth_conf_t  cc = *c;

    memset(tr, 0, sizeof(*tr));
    if (check_conf(c, err, errlen) != 0) {
        return -1;
    }
    if (cc.target_hit >= 0) {
        if (cc.system_prompts < 1) {
            cc.system_prompts = 1;
        }
        return solve(&cc, tr, hit, err, errlen);
    }
    return build(&cc, cc.system_len, tr, hit, err, errlen);
}

int
db_synth_write(const db_synth_conf_t *c, FILE *out, double *achieved_hit,
    char *err, size_t errlen)
{
    db_trace_t  tr;
    double      hit;
    int         rc;

    if (db_synth_build(c, &tr, &hit, err, errlen) != 0) {
        return -1;
    }
    if (achieved_hit != NULL) {
        *achieved_hit = hit;
    }
    rc = db_synth_write_trace(&tr, out);
    db_trace_free(&tr);
    if (rc != 0) {
        snprintf(err, errlen, "write error");
    }
    return rc;
}
