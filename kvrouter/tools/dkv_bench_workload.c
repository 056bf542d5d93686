/*
 * dynamo-kv bench: a synthetic multi-turn chat workload.
 *
 * 8 system prompts (4 to 32 blocks, not block aligned, Zipf popularity).
 * A conversation is a system prompt then 1-8 turns of a user message
 * (16-400 tokens) and an answer (32-600 tokens); its tokens are random ids
 * and are hashed with kvr_hash_blocks, as the router would. Conversations
 * go round-robin to workers that still have room; the worker stores its
 * blocks turn by turn (one STORED event after the prefill, one after the
 * answer), and the system prompt's blocks only the first time it sees that
 * prompt. One conversation in ten also lives, as a prefix, on a second
 * worker (a re-routed conversation). Every worker ends with exactly
 * cfg.blocks blocks.
 *
 * Churn: a quarter of every worker's conversation blocks are REMOVED (in
 * events of <= 64 blocks) and then STORED again.
 *
 * Queries: 60% continue a stored conversation (its whole stored prefix,
 * then a new message of 1-25 blocks), 25% start a new conversation on a
 * known system prompt, 15% are cold (nothing cached).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvr_hash.h"
#include "dkv_bench.h"

#define SYS_N        8
#define TURNS_MAX    8
#define USER_MIN     16
#define USER_MAX     400
#define ANSWER_MIN   32
#define ANSWER_MAX   600
#define TAIL_MAX     25
#define CHURN_CHUNK  64
#define VOCAB        128000

typedef struct {
    uint32_t  worker;
    uint32_t  sys;
    uint64_t  first;                /* in wl->blocks */
    uint64_t  n;
} placement_t;

typedef struct {
    dkv_workload_t  *wl;
    uint64_t         rng;
    uint32_t        *tokens;
    size_t           cap_tokens;
    uint64_t        *local;
    uint64_t        *seq;
    size_t           prompt_end[TURNS_MAX];
    size_t           ctx_end[TURNS_MAX];
    size_t           turns;
    uint32_t         sys;

    uint32_t        *sys_tokens[SYS_N];
    size_t           sys_len[SYS_N];
    uint64_t        *sys_seq[SYS_N];
    size_t           sys_full[SYS_N];
    double           sys_cdf[SYS_N];

    uint64_t        *have;
    uint32_t        *sys_held;      /* bitmask per worker */
    uint64_t        *next_id;
    uint32_t         open;

    placement_t     *pl;
    size_t           npl, cap_pl;
    size_t           cap_q, cap_qseq;
} gen_t;

double
dkv_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

static uint64_t
rng(uint64_t *s)
{
    uint64_t  z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static size_t
rnd_in(uint64_t *s, size_t lo, size_t hi)
{
    return lo + (size_t) (rng(s) % (hi - lo + 1));
}

/* Grows *p (elem bytes each) to hold need; -1 on failure. */
static int
grow(void **p, size_t *cap, size_t need, size_t elem)
{
    size_t  c = *cap ? *cap : 1024;
    void   *q;

    if (need <= *cap) {
        return 0;
    }
    while (c < need) {
        c *= 2;
    }
    q = realloc(*p, c * elem);
    if (q == NULL) {
        return -1;
    }
    *p = q;
    *cap = c;
    return 0;
}

uint64_t
dkv_workload_bytes(const dkv_wl_config_t *cfg)
{
    uint64_t  pairs = (uint64_t) cfg->workers * cfg->blocks;

    /* blocks, events (~1 per 8 blocks, doubled by growth), placements,
       queries (<= ~400 blocks each) */
    return pairs * sizeof(kvr_block_t) + pairs / 2 * sizeof(dkv_wl_event_t)
           + pairs / 4 * sizeof(placement_t)
           + (uint64_t) cfg->queries * 400 * 8 * 2;
}

static int
emit(gen_t *g, dkv_wl_event_t **evs, size_t *nev, size_t *cap,
    uint32_t w, uint32_t type, uint64_t first, uint32_t n)
{
    dkv_wl_event_t  *e;

    if (grow((void **) evs, cap, *nev + 1, sizeof(**evs)) != 0) {
        return -1;
    }
    e = &(*evs)[(*nev)++];
    e->worker = w;
    e->type = type;
    e->event_id = g->next_id[w]++;
    e->first = first;
    e->n = n;
    return 0;
}

/* Appends conversation blocks [from, to) to wl->blocks as one STORED. */
static int
store_range(gen_t *g, uint32_t w, size_t from, size_t to)
{
    dkv_workload_t  *wl = g->wl;
    size_t           i;
    uint64_t         first = wl->nblocks;

    if (to <= from) {
        return 0;
    }
    for (i = from; i < to; i++) {
        wl->blocks[wl->nblocks].seq = g->seq[i];
        wl->blocks[wl->nblocks].local = g->local[i];
        wl->nblocks++;
    }
    g->have[w] += to - from;
    if (g->have[w] == wl->cfg.blocks) {
        g->open--;
    }
    return emit(g, &wl->events, &wl->nevents, &wl->cap_events, w,
                KVR_EV_STORED, first, (uint32_t) (to - from));
}

/* Stores the current conversation's first `limit` blocks on worker w. */
static int
place(gen_t *g, uint32_t w, size_t limit)
{
    dkv_workload_t  *wl = g->wl;
    size_t           room = (size_t) (wl->cfg.blocks - g->have[w]);
    size_t           sf = g->sys_full[g->sys], cur, end, t, k, b;
    uint64_t         first;
    placement_t     *p;

    if (room == 0) {
        return 0;
    }
    if (!(g->sys_held[w] & (1u << g->sys))) {
        b = sf < room ? sf : room;
        if (store_range(g, w, 0, b) != 0) {
            return -1;
        }
        room -= b;
        g->sys_held[w] |= 1u << g->sys;
    }
    end = sf + room < limit ? sf + room : limit;
    cur = sf;
    first = wl->nblocks;
    for (t = 0; t < g->turns && cur < end; t++) {
        for (k = 0; k < 2; k++) {
            b = (k == 0 ? g->prompt_end[t] : g->ctx_end[t])
                / wl->cfg.block_size;
            b = b < end ? b : end;
            if (b > cur) {
                if (store_range(g, w, cur, b) != 0) {
                    return -1;
                }
                cur = b;
            }
        }
    }
    if (cur > sf) {
        if (grow((void **) &g->pl, &g->cap_pl, g->npl + 1, sizeof(*g->pl))
            != 0)
        {
            return -1;
        }
        p = &g->pl[g->npl++];
        p->worker = w;
        p->sys = g->sys;
        p->first = first;
        p->n = cur - sf;
    }
    return 0;
}

static uint32_t
pick_sys(gen_t *g)
{
    double    u = (double) (rng(&g->rng) >> 11) / 9007199254740992.0;
    uint32_t  s;

    for (s = 0; s < SYS_N - 1 && u >= g->sys_cdf[s]; s++) {
        /* void */
    }
    return s;
}

static void
random_tokens(gen_t *g, uint32_t *t, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        t[i] = (uint32_t) (rng(&g->rng) % VOCAB);
    }
}

/* Makes a conversation in g->tokens and hashes it; returns its blocks. */
static size_t
make_conversation(gen_t *g)
{
    dkv_workload_t  *wl = g->wl;
    size_t           n, t, u, a;
    double           t0;

    g->sys = pick_sys(g);
    n = g->sys_len[g->sys];
    memcpy(g->tokens, g->sys_tokens[g->sys], n * sizeof(uint32_t));
    g->turns = rnd_in(&g->rng, 1, TURNS_MAX);
    for (t = 0; t < g->turns; t++) {
        u = rnd_in(&g->rng, USER_MIN, USER_MAX);
        a = rnd_in(&g->rng, ANSWER_MIN, ANSWER_MAX);
        random_tokens(g, g->tokens + n, u + a);
        g->prompt_end[t] = n + u;
        g->ctx_end[t] = n + u + a;
        n += u + a;
    }
    t0 = dkv_now();
    t = kvr_hash_blocks(g->tokens, n, wl->cfg.block_size, KVR_HASH_SEED,
                        g->local, g->seq);
    wl->hash_seconds += dkv_now() - t0;
    wl->hashed_tokens += n;
    return t;
}

/*
 * Interleaves the workers' event streams at random, keeping each worker's
 * order: a router sees all workers' events mixed, not one conversation's
 * turns back to back.
 */
static int
interleave(gen_t *g)
{
    dkv_workload_t  *wl = g->wl;
    dkv_wl_event_t  *out;
    uint32_t        *who;
    size_t          *next, i, j, tmp;
    uint32_t         w;
    int              rc = -1;

    out = malloc((wl->nevents + 1) * sizeof(*out));
    who = malloc((wl->nevents + 1) * sizeof(*who));
    next = calloc(wl->cfg.workers + 1, sizeof(*next));
    if (out == NULL || who == NULL || next == NULL) {
        goto done;
    }
    /* next[w]: start of worker w's events in a stable per-worker sort */
    for (i = 0; i < wl->nevents; i++) {
        next[wl->events[i].worker + 1]++;
    }
    for (w = 0; w < wl->cfg.workers; w++) {
        next[w + 1] += next[w];
    }
    for (i = 0; i < wl->nevents; i++) {
        out[next[wl->events[i].worker]++] = wl->events[i];
    }
    for (w = wl->cfg.workers; w > 0; w--) {
        next[w] = next[w - 1];
    }
    next[0] = 0;
    for (i = 0; i < wl->nevents; i++) {
        who[i] = out[i].worker;
    }
    for (i = wl->nevents; i > 1; i--) {
        j = (size_t) (rng(&g->rng) % i);
        tmp = who[i - 1];
        who[i - 1] = who[j];
        who[j] = (uint32_t) tmp;
    }
    for (i = 0; i < wl->nevents; i++) {
        wl->events[i] = out[next[who[i]]++];
    }
    rc = 0;
done:
    free(out);
    free(who);
    free(next);
    return rc;
}

static int
make_churn(gen_t *g)
{
    dkv_workload_t  *wl = g->wl;
    uint64_t        *removed, quota = wl->cfg.blocks / 4;
    size_t          *order, i, j, k, nsel = 0, tmp;
    int              pass, rc = -1;
    uint32_t         n;

    removed = calloc(wl->cfg.workers, sizeof(*removed));
    order = malloc((g->npl + 1) * sizeof(*order));
    if (removed == NULL || order == NULL) {
        goto done;
    }
    for (i = 0; i < g->npl; i++) {
        order[i] = i;
    }
    for (i = g->npl; i > 1; i--) {                 /* shuffle */
        j = (size_t) (rng(&g->rng) % i);
        tmp = order[i - 1];
        order[i - 1] = order[j];
        order[j] = tmp;
    }
    for (i = 0; i < g->npl; i++) {
        placement_t  *p = &g->pl[order[i]];

        if (removed[p->worker] + p->n <= quota) {
            removed[p->worker] += p->n;
            order[nsel++] = order[i];
        }
    }
    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < nsel; i++) {
            placement_t  *p = &g->pl[order[i]];

            for (k = 0; k < p->n; k += n) {
                n = (uint32_t) (p->n - k < CHURN_CHUNK ? p->n - k
                                                       : CHURN_CHUNK);
                if (emit(g, &wl->churn, &wl->nchurn, &wl->cap_churn,
                         p->worker, pass == 0 ? KVR_EV_REMOVED
                                              : KVR_EV_STORED,
                         p->first + k, n) != 0)
                {
                    goto done;
                }
            }
        }
    }
    rc = 0;
done:
    free(removed);
    free(order);
    return rc;
}

/* A new tail of n blocks chained after prev (has_prev 0: a fresh chain). */
static void
new_tail(gen_t *g, uint64_t *out, size_t n, uint64_t prev, int has_prev)
{
    uint32_t  tok[4096];
    size_t    i, B = g->wl->cfg.block_size;
    uint64_t  local;

    for (i = 0; i < n; i++) {
        random_tokens(g, tok, B);
        local = kvr_hash_local(tok, B, KVR_HASH_SEED);
        prev = (i == 0 && !has_prev) ? local : kvr_hash_seq(prev, local);
        out[i] = prev;
    }
}

static int
make_queries(gen_t *g)
{
    dkv_workload_t  *wl = g->wl;
    size_t           q, n, len, i, tail, off = 0;
    uint64_t         r;
    uint32_t         s;
    placement_t     *p;

    if (grow((void **) &wl->qoff, &g->cap_q, wl->cfg.queries + 1,
             sizeof(*wl->qoff)) != 0)
    {
        return -1;
    }
    for (q = 0; q < wl->cfg.queries; q++) {
        r = rng(&g->rng) % 100;
        tail = rnd_in(&g->rng, 1, TAIL_MAX);
        p = NULL;
        s = 0;
        len = 0;
        if (r < 60 && g->npl > 0) {
            p = &g->pl[rng(&g->rng) % g->npl];
            s = p->sys;
            len = g->sys_full[s] + p->n;
        } else if (r < 85) {
            s = pick_sys(g);
            len = g->sys_full[s];
        }
        if (grow((void **) &wl->qseq, &g->cap_qseq, off + len + tail,
                 sizeof(*wl->qseq)) != 0)
        {
            return -1;
        }
        wl->qoff[q] = off;
        n = 0;
        if (len > 0) {
            memcpy(wl->qseq + off, g->sys_seq[s],
                   g->sys_full[s] * sizeof(uint64_t));
            n = g->sys_full[s];
            for (i = 0; p != NULL && i < p->n; i++) {
                wl->qseq[off + n++] = wl->blocks[p->first + i].seq;
            }
        }
        new_tail(g, wl->qseq + off + n, tail,
                 n > 0 ? wl->qseq[off + n - 1] : 0, n > 0);
        off += n + tail;
    }
    wl->qoff[wl->cfg.queries] = off;
    wl->nqueries = wl->cfg.queries;
    return 0;
}

int
dkv_workload_build(dkv_workload_t *wl, const dkv_wl_config_t *cfg)
{
    gen_t     g;
    size_t    s, n, maxtok, w2;
    uint32_t  w = 0, k;
    double    sum = 0, acc = 0, t0;
    int       rc = -1;

    memset(wl, 0, sizeof(*wl));
    memset(&g, 0, sizeof(g));
    wl->cfg = *cfg;
    g.wl = wl;
    g.rng = cfg->seed;
    wl->sys_prompts = SYS_N;

    wl->cap_blocks = (size_t) cfg->workers * cfg->blocks;
    wl->blocks = malloc(wl->cap_blocks * sizeof(*wl->blocks));
    g.have = calloc(cfg->workers, sizeof(*g.have));
    g.sys_held = calloc(cfg->workers, sizeof(*g.sys_held));
    g.next_id = malloc(cfg->workers * sizeof(*g.next_id));
    maxtok = (size_t) cfg->block_size * (4 + 4 * (SYS_N - 1) + 1)
             + TURNS_MAX * (USER_MAX + ANSWER_MAX);
    g.tokens = malloc(maxtok * sizeof(*g.tokens));
    g.local = malloc(maxtok * sizeof(*g.local));
    g.seq = malloc(maxtok * sizeof(*g.seq));
    if (wl->blocks == NULL || g.have == NULL || g.sys_held == NULL
        || g.next_id == NULL || g.tokens == NULL || g.local == NULL
        || g.seq == NULL || cfg->block_size > 4096)
    {
        goto done;
    }
    for (k = 0; k < cfg->workers; k++) {
        g.next_id[k] = 1;
    }

    /* system prompts: 4, 8, .. 32 blocks plus a partial block */
    for (s = 0; s < SYS_N; s++) {
        g.sys_len[s] = cfg->block_size * (4 + 4 * s)
                       + (7 * s + 3) % cfg->block_size;
        g.sys_tokens[s] = malloc(g.sys_len[s] * sizeof(uint32_t));
        g.sys_seq[s] = malloc(g.sys_len[s] * sizeof(uint64_t));
        if (g.sys_tokens[s] == NULL || g.sys_seq[s] == NULL) {
            goto done;
        }
        random_tokens(&g, g.sys_tokens[s], g.sys_len[s]);
        t0 = dkv_now();
        g.sys_full[s] = kvr_hash_blocks(g.sys_tokens[s], g.sys_len[s],
                                        cfg->block_size, KVR_HASH_SEED,
                                        NULL, g.sys_seq[s]);
        wl->hash_seconds += dkv_now() - t0;
        wl->hashed_tokens += g.sys_len[s];
        sum += 1.0 / (double) (s + 1);
    }
    for (s = 0; s < SYS_N; s++) {
        acc += 1.0 / (double) (s + 1);
        g.sys_cdf[s] = acc / sum;
    }

    g.open = cfg->workers;
    while (g.open > 0) {
        while (g.have[w] == cfg->blocks) {
            w = (w + 1) % cfg->workers;
        }
        n = make_conversation(&g);
        wl->conversations++;
        if (place(&g, w, n) != 0) {
            goto done;
        }
        if (cfg->workers > 1 && g.open > 0 && rng(&g.rng) % 10 == 0) {
            w2 = (size_t) (rng(&g.rng) % cfg->workers);
            while (w2 == w || g.have[w2] == cfg->blocks) {
                w2 = (w2 + 1) % cfg->workers;
                if (g.open == 1 && g.have[w] < cfg->blocks) {
                    break;                  /* only w has room */
                }
            }
            if (w2 != w) {
                if (place(&g, (uint32_t) w2, rnd_in(&g.rng, 1, n)) != 0) {
                    goto done;
                }
            }
        }
        w = (w + 1) % cfg->workers;
    }
    wl->pairs = wl->nblocks;

    if (interleave(&g) != 0 || make_churn(&g) != 0 || make_queries(&g) != 0)
    {
        goto done;
    }
    rc = 0;
done:
    for (s = 0; s < SYS_N; s++) {
        free(g.sys_tokens[s]);
        free(g.sys_seq[s]);
    }
    free(g.have);
    free(g.sys_held);
    free(g.next_id);
    free(g.tokens);
    free(g.local);
    free(g.seq);
    free(g.pl);
    if (rc != 0) {
        dkv_workload_free(wl);
    }
    return rc;
}

void
dkv_workload_free(dkv_workload_t *wl)
{
    free(wl->blocks);
    free(wl->events);
    free(wl->churn);
    free(wl->qseq);
    free(wl->qoff);
    memset(wl, 0, sizeof(*wl));
}
