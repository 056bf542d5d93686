/*
 * dynamo-route-bench: what the gateway does for one completion before it
 * talks to a worker, on one core: tokenize the prompt text
 * (kvr_tokenizer_encode), hash its blocks (kvr_hash_blocks), look the
 * hashes up in the prefix index (kvr_index_find_matches) and choose a
 * worker (kvr_select), against an index filled with realistic data.
 *
 *   dynamo-route-bench [--tokenizer DIR]... [--tokens N]... [--workers N]
 *                      [--blocks N] [--block-size B] [--seconds S]
 *                      [--json FILE]
 *
 * The index holds --workers x --blocks blocks of multi-turn conversations
 * (chains of sequence hashes of random token streams, a few system
 * prompts shared by every worker); the measured prompt's first half is
 * cached on one worker and its first quarter on another, so the lookup
 * walks a long matching prefix. Prompts are windows of a synthetic English
 * text sized to N tokens of each tokenizer; every repetition encodes a
 * different window, so no tokenizer cache sees the same text twice in a
 * row. The process is pinned to the core it starts on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvr_err.h"
#include "kvr_hash.h"
#include "kvr_index.h"
#include "kvr_select.h"
#include "kvr_tokenizer.h"

#define RB_MAX_TOK      8
#define RB_MAX_SIZES    8
#define RB_WINDOWS      16
#define RB_MAX_MATCH    64
#define RB_CONV_BLOCKS  256         /* blocks per cached conversation */
#define RB_SYS_BLOCKS   64          /* a shared system prompt */
#define RB_SYS_PROMPTS  8

typedef struct {
    const char  *tok[RB_MAX_TOK];
    size_t       ntok;
    uint64_t     tokens[RB_MAX_SIZES];
    size_t       nsizes;
    uint32_t     workers;
    uint64_t     blocks;
    uint32_t     block_size;
    double       seconds;
    const char  *json;
} rb_opts_t;

typedef struct {
    double  tok, hash, find, select, total;   /* thread CPU time */
    double  wall;                             /* wall-clock total */
} rb_times_t;

typedef struct {
    const char  *tokenizer;
    uint64_t     target;
    double       tokens;            /* mean prompt tokens */
    size_t       bytes;
    size_t       reps;
    uint32_t     overlap;           /* chosen worker's overlap, blocks */
    rb_times_t   p50, p99, mean;
} rb_result_t;

static uint64_t  rb_rng = 0x9e3779b97f4a7c15ULL;

static uint64_t
rb_rand(void)
{
    uint64_t  z = (rb_rng += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* CPU time of this thread: what the work costs its core, not waits */
static double
rb_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

static double
rb_wall(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

static const char *rb_words[] = {
    "the", "a", "little", "girl", "boy", "dog", "cat", "bird", "tree",
    "house", "park", "ball", "sun", "day", "mom", "dad", "friend", "happy",
    "sad", "big", "small", "red", "blue", "green", "went", "saw", "played",
    "said", "wanted", "found", "looked", "ran", "jumped", "smiled", "was",
    "had", "liked", "to", "and", "with", "in", "on", "at", "of", "they",
    "she", "he", "it", "her", "his", "very", "one", "named", "Lily", "Tim",
    "Ben", "Sue", "toy", "car", "flower", "water", "garden", "school",
    "together", "every", "morning", "because", "when", "then", "but", "so",
    "could", "would", "help", "share", "learned", "important", "lesson",
    "kind", "brave", "careful", "shiny", "soft", "loud", "quiet", "fast",
    "slow", "cookie", "cake", "apple", "banana", "river", "boat", "sky",
    "cloud", "rain", "snow", "hat", "shoe", "book", "picture", "song"
};

/* A deterministic story-like English text of about len bytes. */
static char *
rb_text(size_t len)
{
    size_t  n = 0, w, i, k, nw = sizeof(rb_words) / sizeof(rb_words[0]);
    char   *s = malloc(len + 64);

    if (s == NULL) {
        return NULL;
    }
    while (n < len) {
        w = 5 + rb_rand() % 10;
        for (i = 0; i < w && n < len; i++) {
            const char  *wd = rb_words[rb_rand() % nw];

            k = strlen(wd);
            if (i == 0) {
                s[n++] = (char) (wd[0] >= 'a' ? wd[0] - 32 : wd[0]);
                memcpy(s + n, wd + 1, k - 1);
                n += k - 1;
            } else {
                s[n++] = ' ';
                memcpy(s + n, wd, k);
                n += k;
            }
        }
        s[n++] = rb_rand() % 5 == 0 ? '!' : '.';
        s[n++] = rb_rand() % 8 == 0 ? '\n' : ' ';
    }
    s[n] = '\0';
    return s;
}

static int
rb_cmp(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}

static double
rb_pct(double *v, size_t n, double p)
{
    size_t  i;

    qsort(v, n, sizeof(double), rb_cmp);
    i = (size_t) (p * (double) (n - 1) + 0.5);
    return v[i];
}

static void
rb_stat(double *v, size_t n, double *mean, double *p50, double *p99)
{
    size_t  i;
    double  s = 0;

    for (i = 0; i < n; i++) {
        s += v[i];
    }
    *mean = s / (double) n;
    *p50 = rb_pct(v, n, 0.50);
    *p99 = rb_pct(v, n, 0.99);
}

/* Random token stream of n blocks hashed into seq (chained from parent). */
static void
rb_chain(uint32_t *tmp, size_t nblocks, uint32_t bs, uint32_t vocab,
    uint64_t parent, int has_parent, uint64_t *seq)
{
    size_t    i, j;
    uint64_t  local, prev = parent;

    for (i = 0; i < nblocks; i++) {
        for (j = 0; j < bs; j++) {
            tmp[j] = (uint32_t) (rb_rand() % vocab);
        }
        local = kvr_hash_local(tmp, bs, KVR_HASH_SEED);
        prev = (i == 0 && !has_parent) ? local : kvr_hash_seq(prev, local);
        seq[i] = prev;
    }
}

/*
 * Fills idx: every worker holds conversations of RB_CONV_BLOCKS blocks,
 * most starting with one of RB_SYS_PROMPTS shared system prompts, until it
 * holds `blocks` blocks; loads are spread so no worker is idle.
 */
static int
rb_fill(kvr_index_t *idx, const rb_opts_t *o)
{
    uint32_t           w, tmp[1024];
    uint64_t          *seq, sys[RB_SYS_PROMPTS][RB_SYS_BLOCKS], held;
    size_t             k, n;
    kvr_worker_info_t  info;

    seq = malloc(sizeof(uint64_t) * (RB_SYS_BLOCKS + RB_CONV_BLOCKS));
    if (seq == NULL) {
        return -1;
    }
    for (k = 0; k < RB_SYS_PROMPTS; k++) {
        rb_chain(tmp, RB_SYS_BLOCKS, o->block_size, 32000, 0, 0, sys[k]);
    }
    for (w = 0; w < o->workers; w++) {
        memset(&info, 0, sizeof(info));
        info.worker_id = 100 + w;
        info.generation = 1;
        info.block_size = o->block_size;
        info.capacity_blocks = o->blocks * 2;
        snprintf(info.addr, sizeof(info.addr), "127.0.0.1:%u", 9000 + w);
        info.load.running = 4 + w % 3;
        info.load.active_blocks = 2000 + 8 * (w % 4);
        info.load.queued_prefill_tokens = 128 * (w % 2);
        if (kvr_index_set_worker(idx, &info) != KVR_OK
            || kvr_index_reset_worker(idx, info.worker_id, 1, 0) != KVR_OK)
        {
            free(seq);
            return -1;
        }
        for (held = 0; held < o->blocks; held += n) {
            k = rb_rand() % (RB_SYS_PROMPTS + 2);
            if (k < RB_SYS_PROMPTS) {
                memcpy(seq, sys[k], sizeof(sys[k]));
                rb_chain(tmp, RB_CONV_BLOCKS, o->block_size, 32000,
                         sys[k][RB_SYS_BLOCKS - 1], 1, seq + RB_SYS_BLOCKS);
                n = RB_SYS_BLOCKS + RB_CONV_BLOCKS;
            } else {
                rb_chain(tmp, RB_CONV_BLOCKS, o->block_size, 32000, 0, 0,
                         seq);
                n = RB_CONV_BLOCKS;
            }
            if (n > o->blocks - held) {
                n = o->blocks - held;
            }
            if (kvr_index_add_blocks(idx, info.worker_id, seq, n) != KVR_OK) {
                free(seq);
                return -1;
            }
        }
    }
    free(seq);
    return 0;
}

/* The gateway's routing step: index lookup plus selection. */
static int
rb_route(const kvr_index_t *idx, const kvr_select_params_t *sp,
    const uint64_t *seq, size_t nblocks, uint64_t ntokens,
    kvr_worker_info_t *wi, size_t nw, kvr_candidate_t *cand,
    kvr_choice_t *choice, double *t_find)
{
    kvr_match_t  m[RB_MAX_MATCH];
    size_t       nm, i, j;
    double       t0 = rb_now();

    nm = kvr_index_find_matches(idx, seq, nblocks, m, RB_MAX_MATCH);
    *t_find = rb_now() - t0;

    nw = kvr_index_workers(idx, wi, nw);
    for (i = 0; i < nw; i++) {
        cand[i].worker_id = wi[i].worker_id;
        cand[i].overlap_blocks = 0;
        cand[i].active_blocks = wi[i].load.active_blocks;
        cand[i].queued_prefill_tokens = wi[i].load.queued_prefill_tokens;
        for (j = 0; j < nm; j++) {
            if (m[j].worker_id == wi[i].worker_id) {
                cand[i].overlap_blocks = m[j].overlap_blocks;
                break;
            }
        }
    }
    return kvr_select(sp, cand, nw, ntokens, rb_rand(), choice);
}

static int
rb_run(const rb_opts_t *o, kvr_index_t *idx, const kvr_tokenizer_t *tk,
    const char *tkname, uint64_t target, const char *pool, size_t poollen,
    rb_result_t *r)
{
    double               *v[6], t0, t1, t2, t3, tf, w0, deadline;
    double                sumtok = 0;
    size_t                lo, hi, mid, len, reps, cap, i, nb, off[RB_WINDOWS];
    uint64_t             *seq = NULL;
    kvr_ids_t             ids = {0};
    kvr_candidate_t      *cand = NULL;
    kvr_worker_info_t    *wi = NULL;
    kvr_choice_t          ch;
    kvr_select_params_t   sp;
    int                   rc = -1, k;

    memset(r, 0, sizeof(*r));
    memset(v, 0, sizeof(v));
    r->tokenizer = tkname;
    r->target = target;

    /* bytes of text whose windows encode to `target` tokens on average */
    lo = 1;
    hi = poollen / 2;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        sumtok = 0;
        for (i = 0; i < RB_WINDOWS; i++) {
            off[i] = (poollen - mid) * i / RB_WINDOWS;
            if (kvr_tokenizer_encode(tk, pool + off[i], mid,
                                     KVR_TOK_ADD_SPECIAL, &ids) != KVR_OK)
            {
                kvr_ids_free(&ids);
                return -1;
            }
            sumtok += (double) ids.n;
        }
        if (sumtok < (double) target * RB_WINDOWS) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo >= poollen / 2) {
        fprintf(stderr, "route-bench: text pool too small for %" PRIu64
                " tokens\n", target);
        kvr_ids_free(&ids);
        return -1;
    }
    sumtok = 0;
    len = lo;
    r->bytes = len;
    for (i = 0; i < RB_WINDOWS; i++) {
        off[i] = (poollen - len) * i / RB_WINDOWS;
    }

    /* the first window's prompt: half cached on worker 1, a quarter on 2 */
    if (kvr_tokenizer_encode(tk, pool, len, KVR_TOK_ADD_SPECIAL, &ids)
        != KVR_OK)
    {
        goto done;
    }
    seq = malloc(sizeof(uint64_t) * ((len + 8) / o->block_size + 1));
    cap = 1 << 16;
    for (k = 0; k < 6; k++) {
        v[k] = malloc(sizeof(double) * cap);
    }
    wi = malloc(sizeof(*wi) * o->workers);
    cand = malloc(sizeof(*cand) * o->workers);
    if (seq == NULL || v[0] == NULL || v[1] == NULL || v[2] == NULL
        || v[3] == NULL || v[4] == NULL || v[5] == NULL || wi == NULL
        || cand == NULL)
    {
        goto done;
    }
    nb = kvr_hash_blocks(ids.ids, ids.n, o->block_size,
                         KVR_HASH_SEED, NULL, seq);
    kvr_index_add_blocks(idx, 100 + 1 % o->workers, seq, nb / 2);
    kvr_index_add_blocks(idx, 100 + 2 % o->workers, seq, nb / 4);
    for (i = 1; i < RB_WINDOWS; i++) {
        if (kvr_tokenizer_encode(tk, pool + off[i], len, KVR_TOK_ADD_SPECIAL,
                                 &ids) != KVR_OK)
        {
            goto done;
        }
        nb = kvr_hash_blocks(ids.ids, ids.n, o->block_size,
                             KVR_HASH_SEED, NULL, seq);
        kvr_index_add_blocks(idx, 100 + (1 + i) % o->workers, seq, nb / 2);
    }

    kvr_select_defaults(&sp, o->block_size);
    deadline = rb_wall() + o->seconds;
    for (reps = 0; reps < cap; reps++) {
        i = reps % RB_WINDOWS;
        w0 = rb_wall();
        t0 = rb_now();
        if (kvr_tokenizer_encode(tk, pool + off[i], len, KVR_TOK_ADD_SPECIAL,
                                 &ids) != KVR_OK)
        {
            goto done;
        }
        t1 = rb_now();
        nb = kvr_hash_blocks(ids.ids, ids.n, o->block_size,
                             KVR_HASH_SEED, NULL, seq);
        t2 = rb_now();
        if (rb_route(idx, &sp, seq, nb, ids.n, wi, o->workers, cand, &ch,
                     &tf) != KVR_OK)
        {
            goto done;
        }
        t3 = rb_now();
        v[0][reps] = t1 - t0;
        v[1][reps] = t2 - t1;
        v[2][reps] = tf;
        v[3][reps] = t3 - t2 - tf;
        v[4][reps] = t3 - t0;
        v[5][reps] = rb_wall() - w0;
        sumtok += (double) ids.n;
        if (i == 0) {
            r->overlap = ch.credited_overlap;
        }
        if (reps >= 2 * RB_WINDOWS && rb_wall() > deadline) {
            reps++;
            break;
        }
    }
    r->reps = reps;
    r->tokens = sumtok / (double) reps;
    rb_stat(v[0], reps, &r->mean.tok, &r->p50.tok, &r->p99.tok);
    rb_stat(v[1], reps, &r->mean.hash, &r->p50.hash, &r->p99.hash);
    rb_stat(v[2], reps, &r->mean.find, &r->p50.find, &r->p99.find);
    rb_stat(v[3], reps, &r->mean.select, &r->p50.select, &r->p99.select);
    rb_stat(v[4], reps, &r->mean.total, &r->p50.total, &r->p99.total);
    rb_stat(v[5], reps, &r->mean.wall, &r->p50.wall, &r->p99.wall);
    rc = 0;
done:
    kvr_ids_free(&ids);
    free(seq);
    free(wi);
    free(cand);
    for (k = 0; k < 6; k++) {
        free(v[k]);
    }
    return rc;
}

static int
rb_opts(int argc, char **argv, rb_opts_t *o)
{
    int    i;
    char  *end;

    memset(o, 0, sizeof(*o));
    o->workers = 8;
    o->blocks = 100000;
    o->block_size = 16;
    o->seconds = 1.0;
    for (i = 1; i < argc; i++) {
        const char  *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (val == NULL) {
            return -1;
        }
        i++;
        errno = 0;
        if (strcmp(a, "--tokenizer") == 0 && o->ntok < RB_MAX_TOK) {
            o->tok[o->ntok++] = val;
        } else if (strcmp(a, "--tokens") == 0 && o->nsizes < RB_MAX_SIZES) {
            o->tokens[o->nsizes] = strtoull(val, &end, 10);
            if (*end != '\0' || o->tokens[o->nsizes] < 16
                || o->tokens[o->nsizes] > 1000000)
            {
                return -1;
            }
            o->nsizes++;
        } else if (strcmp(a, "--workers") == 0) {
            o->workers = (uint32_t) strtoul(val, &end, 10);
            if (*end != '\0' || o->workers < 1 || o->workers > 1024) {
                return -1;
            }
        } else if (strcmp(a, "--blocks") == 0) {
            o->blocks = strtoull(val, &end, 10);
            if (*end != '\0' || o->blocks < 1 || o->blocks > 100000000) {
                return -1;
            }
        } else if (strcmp(a, "--block-size") == 0) {
            o->block_size = (uint32_t) strtoul(val, &end, 10);
            if (*end != '\0' || o->block_size < 1 || o->block_size > 1024) {
                return -1;
            }
        } else if (strcmp(a, "--seconds") == 0) {
            o->seconds = strtod(val, &end);
            if (*end != '\0' || !(o->seconds > 0) || o->seconds > 600) {
                return -1;
            }
        } else if (strcmp(a, "--json") == 0) {
            o->json = val;
        } else {
            return -1;
        }
        if (errno != 0) {
            return -1;
        }
    }
    if (o->ntok == 0) {
        o->tok[o->ntok++] = "models/stories260K";
    }
    if (o->nsizes == 0) {
        o->tokens[o->nsizes++] = 1024;
        o->tokens[o->nsizes++] = 32768;
    }
    return 0;
}

static void
rb_json_times(FILE *f, const char *name, const rb_times_t *t)
{
    fprintf(f, "\"%s\":{\"tokenize_ms\":%.4f,\"hash_ms\":%.4f,"
            "\"find_matches_ms\":%.4f,\"select_ms\":%.4f,\"total_ms\":%.4f,"
            "\"wall_ms\":%.4f}",
            name, t->tok * 1e3, t->hash * 1e3, t->find * 1e3,
            t->select * 1e3, t->total * 1e3, t->wall * 1e3);
}

int
main(int argc, char **argv)
{
    int                  cpu, rc = 0;
    char                *pool, err[256], names[RB_MAX_TOK][128];
    size_t               poollen, i, j, nres = 0, sz;
    void                *mem;
    FILE                *f;
    cpu_set_t            set;
    rb_opts_t            o;
    rb_result_t          res[RB_MAX_TOK * RB_MAX_SIZES];
    kvr_index_t         *idx;
    kvr_tokenizer_t     *tk;
    kvr_index_config_t   cfg;

    if (rb_opts(argc, argv, &o) != 0) {
        fprintf(stderr,
            "usage: dynamo-route-bench [--tokenizer DIR]... [--tokens N]...\n"
            "    [--workers N] [--blocks N] [--block-size B] [--seconds S]\n"
            "    [--json FILE]\n");
        return 2;
    }

    cpu = sched_getcpu();
    CPU_ZERO(&set);
    CPU_SET(cpu < 0 ? 0 : cpu, &set);
    sched_setaffinity(0, sizeof(set), &set);

    cfg.max_workers = o.workers;
    cfg.max_blocks = o.blocks * o.workers * 5 / 4 + (1 << 20);
    sz = kvr_index_size(&cfg);
    mem = aligned_alloc(4096, (sz + 4095) & ~(size_t) 4095);
    idx = mem ? kvr_index_init(mem, sz, &cfg) : NULL;
    if (idx == NULL) {
        fprintf(stderr, "route-bench: cannot make a %zu-byte index\n", sz);
        return 1;
    }
    if (rb_fill(idx, &o) != 0) {
        fprintf(stderr, "route-bench: index fill failed\n");
        return 1;
    }

    /* ~3x the largest prompt in bytes (any tokenizer: >= 1 byte/token) */
    poollen = 0;
    for (i = 0; i < o.nsizes; i++) {
        poollen = o.tokens[i] * 12 > poollen ? o.tokens[i] * 12 : poollen;
    }
    pool = rb_text(poollen);
    if (pool == NULL) {
        return 1;
    }
    poollen = strlen(pool);

    printf("route: tokenize + hash + find_matches + select, one core (cpu %d)"
           "\nindex: %u workers x %" PRIu64 " blocks, block size %u\n"
           "times in ms of the thread's CPU time; wall: the same in wall "
           "time\n\n", cpu, o.workers, o.blocks, o.block_size);
    printf("%-19s %6s %7s %8s %8s %8s %8s %8s %8s %8s\n", "tokenizer",
           "tokens", "bytes", "tok p50", "hash p50", "find p50", "sel p50",
           "p50", "p99", "wall p50");

    for (i = 0; i < o.ntok; i++) {
        const char  *name = strrchr(o.tok[i], '/');

        if (kvr_tokenizer_load_dir(o.tok[i], &tk, err, sizeof(err))
            != KVR_OK)
        {
            fprintf(stderr, "route-bench: %s: %s\n", o.tok[i], err);
            rc = 1;
            continue;
        }
        name = name && name[1] ? name + 1 : o.tok[i];
        if (strcmp(name, "models") == 0) {
            /* an npm tokenizer package: DIR/models */
            const char  *p = o.tok[i] + strlen(o.tok[i]) - 7, *q = p;

            while (q > o.tok[i] && q[-1] != '/') {
                q--;
            }
            snprintf(names[i], sizeof(names[i]), "%.*s", (int) (p - q), q);
            name = names[i];
        }
        for (j = 0; j < o.nsizes; j++) {
            rb_result_t  *r = &res[nres];

            if (rb_run(&o, idx, tk, name, o.tokens[j], pool, poollen, r)
                != 0)
            {
                fprintf(stderr, "route-bench: %s at %" PRIu64 " failed\n",
                        name, o.tokens[j]);
                rc = 1;
                continue;
            }
            nres++;
            printf("%-19s %6.0f %7zu %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f "
                   "%8.3f\n",
                   name, r->tokens, r->bytes, r->p50.tok * 1e3,
                   r->p50.hash * 1e3, r->p50.find * 1e3, r->p50.select * 1e3,
                   r->p50.total * 1e3, r->p99.total * 1e3,
                   r->p50.wall * 1e3);
        }
        kvr_tokenizer_free(tk);
    }

    if (o.json != NULL && (f = fopen(o.json, "w")) != NULL) {
        fprintf(f, "{\"workers\":%u,\"blocks_per_worker\":%" PRIu64
                ",\"block_size\":%u,\"results\":[", o.workers, o.blocks,
                o.block_size);
        for (i = 0; i < nres; i++) {
            fprintf(f, "%s{\"tokenizer\":\"%s\",\"target_tokens\":%" PRIu64
                    ",\"tokens\":%.1f,\"bytes\":%zu,\"reps\":%zu,"
                    "\"overlap_blocks\":%u,", i ? "," : "", res[i].tokenizer,
                    res[i].target, res[i].tokens, res[i].bytes, res[i].reps,
                    res[i].overlap);
            rb_json_times(f, "p50", &res[i].p50);
            fputc(',', f);
            rb_json_times(f, "p99", &res[i].p99);
            fputc(',', f);
            rb_json_times(f, "mean", &res[i].mean);
            fputc('}', f);
        }
        fprintf(f, "]}\n");
        fclose(f);
    }
    free(pool);
    free(mem);
    return rc;
}
