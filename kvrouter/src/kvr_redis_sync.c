/*
 * kvrouter: the router-side sync reader, a state machine with no I/O.
 *
 * It keeps a kvr_index_t equal to Redis: a full snapshot first, then the
 * event stream. Positions are stream seqs: every entry is "<seq>-0", seq
 * from the INCR counter evseq that the publisher script bumps in the same
 * atomic call, so entries are contiguous and a reader at seq L knows the
 * next one must be L+1; anything else means entries were trimmed away.
 *
 * Per worker it remembers snap_seq, the evseq its last snapshot was read
 * at (atomically with the set): every entry at or below it is already in
 * the snapshot, so it is skipped. That makes snapshots and the stream
 * compose without the index having to order generations.
 *
 * Full resync (at start, after a disconnect, a gap, an error, an epoch
 * change or evseq going backwards): registry script (epoch, evseq E, live
 * workers), then one snapshot per live worker, then the stream from E.
 * E is read before any snapshot, so nothing between them is missed.
 *
 * Single worker resync (a SNAPSHOT entry, the index refusing an event, a
 * worker flagged by the index, or a worker seen alive that is not loaded):
 * the worker turns PENDING, its entries are skipped until its snapshot is
 * loaded (the snapshot, read later, covers them), and snapshots go before
 * the next stream read.
 *
 * Workers not alive (no alive key) or not registered leave the index.
 */
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "kvr_err.h"
#include "kvr_event.h"
#include "kvr_index.h"
#include "kvr_redis.h"
#include "kvr_redis_int.h"

#define KVR_EPOCH_MAX      64
#define KVR_EVENT_BLOCKS   (1u << 20)   /* larger decoded events: malformed */

typedef enum {
    INF_NONE = 0,
    INF_REGISTRY,
    INF_SNAPSHOT,
    INF_XREAD
} inflight_t;

typedef enum {
    SW_PENDING = 0,     /* needs a snapshot; its stream entries skipped */
    SW_LIVE
} sw_state_t;

typedef struct {
    uint64_t  id;
    uint64_t  snap_seq;  /* evseq its snapshot was read at */
    uint8_t   state;
    uint8_t   seen;      /* mark for registry sweeps */
} sw_t;

struct kvr_sync_s {
    kvr_index_t       *idx;
    kvr_sync_config_t  cfg;

    char               prefix[KVR_REDIS_KEY_MAX];
    char               k_workers[KVR_REDIS_KEY_MAX];
    char               k_evseq[KVR_REDIS_KEY_MAX];
    char               k_events[KVR_REDIS_KEY_MAX];
    char               k_epoch[KVR_REDIS_KEY_MAX];
    char               k_w[KVR_REDIS_KEY_MAX];       /* per snapshot */
    char               k_blocks[KVR_REDIS_KEY_MAX];
    char               k_alive[KVR_REDIS_KEY_MAX];
    char               ns[KVR_REDIS_NS_MAX + 1];
    char               start_id[32];                 /* "<pos>-0" */
    kvr_argv_t         av;

    inflight_t         inflight;
    int                inflight_full;    /* the registry call starts a full */
    uint64_t           inflight_worker;

    int                need_full;
    int                full_running;     /* snapshots of a full pending */
    uint64_t           now;
    uint64_t           backoff_until;
    unsigned           err_streak;
    uint64_t           next_registry;
    uint64_t           next_stream;
    int                read_since_poll;  /* registry and stream take turns */

    uint64_t           pos;              /* last stream seq consumed */
    uint64_t           known_evseq;      /* evseq at the last registry read */
    int                have_epoch;
    char               epoch[KVR_EPOCH_MAX + 1];

    sw_t              *w;                /* sorted by id */
    size_t             nw;
    size_t             wcap;

    uint64_t          *seqbuf;
    size_t             seqcap;
    kvr_block_t       *blk;
    size_t             blkcap;

    kvr_sync_stats_t   st;
    uint64_t           empty_reads;
    char               err[160];
};

void
kvr_sync_config_defaults(kvr_sync_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->batch = KVR_REDIS_SYNC_BATCH;
    cfg->stream_poll_ms = KVR_REDIS_STREAM_POLL_MS;
    cfg->registry_poll_ms = KVR_REDIS_REGISTRY_MS;
    cfg->retry_ms = KVR_REDIS_RETRY_MS;
}

kvr_sync_t *
kvr_sync_create(const kvr_sync_config_t *cfg, kvr_index_t *idx)
{
    kvr_sync_t  *s;
    const char  *ns;

    if (cfg == NULL || idx == NULL || kvr_redis_ns_valid(cfg->ns) != KVR_OK
        || cfg->batch == 0)
    {
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->idx = idx;
    s->cfg = *cfg;
    ns = cfg->ns;
    memcpy(s->ns, ns, strlen(ns) + 1);
    s->cfg.ns = s->ns;

    if (kvr_redis_key(s->prefix, sizeof(s->prefix), ns, NULL, 0, 0) < 0
        || kvr_redis_key(s->k_workers, sizeof(s->k_workers), ns, "workers",
                         0, 0) < 0
        || kvr_redis_key(s->k_evseq, sizeof(s->k_evseq), ns, "evseq", 0, 0)
           < 0
        || kvr_redis_key(s->k_events, sizeof(s->k_events), ns, "events", 0, 0)
           < 0
        || kvr_redis_key(s->k_epoch, sizeof(s->k_epoch), ns, "epoch", 0, 0)
           < 0)
    {
        free(s);
        return NULL;
    }
    s->need_full = 1;
    return s;
}

void
kvr_sync_destroy(kvr_sync_t *s)
{
    if (s == NULL) {
        return;
    }
    free(s->w);
    free(s->seqbuf);
    free(s->blk);
    free(s);
}

/* ---- worker table ---- */

/* Index of id in s->w, or where it would go (and *found = 0). */
static size_t
sw_search(const kvr_sync_t *s, uint64_t id, int *found)
{
    size_t  lo = 0, hi = s->nw, mid;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if (s->w[mid].id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = lo < s->nw && s->w[lo].id == id;
    return lo;
}

static sw_t *
sw_find(kvr_sync_t *s, uint64_t id)
{
    int     found;
    size_t  i = sw_search(s, id, &found);

    return found ? &s->w[i] : NULL;
}

/* Finds or inserts (as PENDING); NULL when out of memory. */
static sw_t *
sw_get(kvr_sync_t *s, uint64_t id)
{
    int     found;
    size_t  i = sw_search(s, id, &found), cap;
    sw_t   *n;

    if (found) {
        return &s->w[i];
    }
    if (s->nw == s->wcap) {
        cap = s->wcap ? s->wcap * 2 : 16;
        n = realloc(s->w, cap * sizeof(*n));
        if (n == NULL) {
            return NULL;
        }
        s->w = n;
        s->wcap = cap;
    }
    memmove(&s->w[i + 1], &s->w[i], (s->nw - i) * sizeof(*s->w));
    s->nw++;
    memset(&s->w[i], 0, sizeof(s->w[i]));
    s->w[i].id = id;
    s->w[i].state = SW_PENDING;
    return &s->w[i];
}

static void
sw_del(kvr_sync_t *s, sw_t *w)
{
    size_t  i = (size_t) (w - s->w);

    memmove(&s->w[i], &s->w[i + 1], (s->nw - i - 1) * sizeof(*s->w));
    s->nw--;
}

/* Drops a worker from the table and the index. */
static void
drop_worker(kvr_sync_t *s, sw_t *w)
{
    if (kvr_index_remove_worker(s->idx, w->id) == KVR_OK) {
        s->st.workers_removed++;
    }
    sw_del(s, w);
}

static sw_t *
first_pending(kvr_sync_t *s)
{
    size_t  i;

    for (i = 0; i < s->nw; i++) {
        if (s->w[i].state == SW_PENDING) {
            return &s->w[i];
        }
    }
    return NULL;
}

static void
count_live(kvr_sync_t *s)
{
    size_t    i;
    uint32_t  n = 0;

    for (i = 0; i < s->nw; i++) {
        n += s->w[i].state == SW_LIVE;
    }
    s->st.workers = n;
}

/* ---- failure paths ---- */

static void
set_err(kvr_sync_t *s, const char *what, const char *detail, size_t dlen)
{
    size_t  n = strlen(what), room = sizeof(s->err) - 1;

    if (n > room) {
        n = room;
    }
    memcpy(s->err, what, n);
    if (detail != NULL && n + 2 < room) {
        s->err[n++] = ':';
        s->err[n++] = ' ';
        if (dlen > room - n) {
            dlen = room - n;
        }
        memcpy(s->err + n, detail, dlen);
        n += dlen;
    }
    s->err[n] = '\0';
}

static void
start_full(kvr_sync_t *s)
{
    s->need_full = 1;
    s->full_running = 0;
}

/* An error or malformed reply: full resync after a growing backoff. */
static int
fail(kvr_sync_t *s, int rc, const char *what, const char *detail, size_t dlen)
{
    unsigned  shift = s->err_streak < 5 ? s->err_streak : 5;

    set_err(s, what, detail, dlen);
    s->st.errors++;
    s->err_streak++;
    s->backoff_until = s->now + ((uint64_t) s->cfg.retry_ms << shift);
    start_full(s);
    return rc;
}

static int
malformed(kvr_sync_t *s, const char *what)
{
    return fail(s, KVR_ERR_INVAL, "malformed reply", what, strlen(what));
}

/* ---- reply access ---- */

static int
is_str(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_STRING
           && (r->str != NULL || r->len == 0);
}

static int
is_arr(const redisReply *r, size_t min)
{
    return r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= min
           && (r->element != NULL || r->elements == 0);
}

/* A decimal string or a non-negative integer reply. */
static int
get_u64(const redisReply *r, uint64_t *v)
{
    if (r == NULL) {
        return KVR_ERR_INVAL;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        if (r->integer < 0) {
            return KVR_ERR_INVAL;
        }
        *v = (uint64_t) r->integer;
        return KVR_OK;
    }
    if (!is_str(r)) {
        return KVR_ERR_INVAL;
    }
    return kvr_redis_parse_u64(r->str, r->len, v);
}

/* ---- commands ---- */

static void
cmd_registry(kvr_sync_t *s, kvr_cmd_t *cmd)
{
    kvr_argv_t  *a = &s->av;

    kvr_argv_reset(a);
    kvr_argv_str(a, "EVAL");
    kvr_argv_str(a, kvr_redis_lua_registry);
    kvr_argv_str(a, "3");
    kvr_argv_str(a, s->k_workers);
    kvr_argv_str(a, s->k_evseq);
    kvr_argv_str(a, s->k_epoch);
    kvr_argv_str(a, s->prefix);
    (void) kvr_argv_cmd(a, cmd, 0);     /* fixed shape, cannot overflow */
    s->inflight = INF_REGISTRY;
}

static int
cmd_snapshot(kvr_sync_t *s, uint64_t id, kvr_cmd_t *cmd)
{
    kvr_argv_t  *a = &s->av;

    if (kvr_redis_key(s->k_w, sizeof(s->k_w), s->ns, "w:", 1, id) < 0
        || kvr_redis_key(s->k_blocks, sizeof(s->k_blocks), s->ns, "blocks:",
                         1, id) < 0
        || kvr_redis_key(s->k_alive, sizeof(s->k_alive), s->ns, "alive:", 1,
                         id) < 0)
    {
        return KVR_ERR_INVAL;
    }
    kvr_argv_reset(a);
    kvr_argv_str(a, "EVAL");
    kvr_argv_str(a, kvr_redis_lua_snapshot);
    kvr_argv_str(a, "4");
    kvr_argv_str(a, s->k_w);
    kvr_argv_str(a, s->k_blocks);
    kvr_argv_str(a, s->k_alive);
    kvr_argv_str(a, s->k_evseq);
    (void) kvr_argv_cmd(a, cmd, 0);
    s->inflight = INF_SNAPSHOT;
    s->inflight_worker = id;
    return KVR_OK;
}

static void
cmd_xread(kvr_sync_t *s, kvr_cmd_t *cmd)
{
    kvr_argv_t  *a = &s->av;
    size_t       n;

    n = kvr_redis_fmt_u64(s->start_id, s->pos);
    memcpy(s->start_id + n, "-0", 3);

    kvr_argv_reset(a);
    kvr_argv_str(a, "XREAD");
    kvr_argv_str(a, "COUNT");
    kvr_argv_u64(a, s->cfg.batch);
    if (s->cfg.block_ms) {
        kvr_argv_str(a, "BLOCK");
        kvr_argv_u64(a, s->cfg.block_ms);
    }
    kvr_argv_str(a, "STREAMS");
    kvr_argv_str(a, s->k_events);
    kvr_argv_str(a, s->start_id);
    (void) kvr_argv_cmd(a, cmd, 0);
    s->inflight = INF_XREAD;
}

int
kvr_sync_next(kvr_sync_t *s, uint64_t now_ms, kvr_cmd_t *cmd,
    uint64_t *wake_ms)
{
    uint64_t  wake;
    sw_t     *w;

    if (s == NULL || cmd == NULL) {
        return KVR_ERR_INVAL;
    }
    cmd->argc = 0;
    if (s->inflight != INF_NONE) {
        if (wake_ms) {
            *wake_ms = UINT64_MAX;
        }
        return 0;
    }
    s->now = now_ms;

    if (now_ms < s->backoff_until) {
        if (wake_ms) {
            *wake_ms = s->backoff_until;
        }
        return 0;
    }

    if (s->need_full) {
        cmd_registry(s, cmd);
        s->inflight_full = 1;
        return 1;
    }

    while ((w = first_pending(s)) != NULL) {
        if (cmd_snapshot(s, w->id, cmd) == KVR_OK) {
            return 1;
        }
        sw_del(s, w);                   /* id not representable: drop */
    }

    /* when both are due they alternate, so neither starves the other */
    if (now_ms >= s->next_registry
        && (s->read_since_poll || now_ms < s->next_stream))
    {
        cmd_registry(s, cmd);
        s->inflight_full = 0;
        s->read_since_poll = 0;
        s->next_registry = now_ms + s->cfg.registry_poll_ms;
        return 1;
    }

    if (now_ms >= s->next_stream) {
        cmd_xread(s, cmd);
        s->read_since_poll = 1;
        return 1;
    }

    wake = s->next_registry < s->next_stream ? s->next_registry
                                             : s->next_stream;
    if (wake_ms) {
        *wake_ms = wake;
    }
    return 0;
}

/* ---- replies ---- */

typedef struct {
    const char  *epoch;
    size_t       epoch_len;
    uint64_t     evseq;
} registry_hdr_t;

/* Validates the whole registry reply before anything is changed. */
static int
parse_registry(kvr_sync_t *s, const redisReply *r, registry_hdr_t *h)
{
    size_t      i;
    uint64_t    id;
    kvr_load_t  load;

    if (!is_arr(r, 2) || r->elements % 2 != 0) {
        return malformed(s, "registry: not an even array of >= 2");
    }
    if (!is_str(r->element[0]) || r->element[0]->len > KVR_EPOCH_MAX) {
        return malformed(s, "registry: bad epoch");
    }
    if (get_u64(r->element[1], &h->evseq) != KVR_OK) {
        return malformed(s, "registry: bad evseq");
    }
    for (i = 2; i < r->elements; i += 2) {
        if (get_u64(r->element[i], &id) != KVR_OK
            || !is_str(r->element[i + 1])
            || kvr_redis_load_parse(r->element[i + 1]->str,
                                    r->element[i + 1]->len, &load) != KVR_OK)
        {
            return malformed(s, "registry: bad worker entry");
        }
    }
    h->epoch = r->element[0]->str;
    h->epoch_len = r->element[0]->len;
    return KVR_OK;
}

static void
finish_full_if_done(kvr_sync_t *s)
{
    if (s->full_running && first_pending(s) == NULL) {
        s->full_running = 0;
        s->st.full_resyncs++;
        s->err_streak = 0;
    }
    count_live(s);
}

/* Removes index workers that the table does not hold (after a full). */
static int
sweep_index(kvr_sync_t *s)
{
    kvr_index_stats_t   ist;
    kvr_worker_info_t  *all;
    size_t              n, i;

    kvr_index_stats(s->idx, &ist);
    if (ist.workers == 0) {
        return KVR_OK;
    }
    all = malloc(ist.workers * sizeof(*all));
    if (all == NULL) {
        return KVR_ERR_NOMEM;
    }
    n = kvr_index_workers(s->idx, all, ist.workers);
    for (i = 0; i < n; i++) {
        if (sw_find(s, all[i].worker_id) == NULL
            && kvr_index_remove_worker(s->idx, all[i].worker_id) == KVR_OK)
        {
            s->st.workers_removed++;
        }
    }
    free(all);
    return KVR_OK;
}

static int
on_registry(kvr_sync_t *s, const redisReply *r, int full)
{
    registry_hdr_t  h;
    size_t          i;
    uint64_t        id;
    kvr_load_t      load;
    sw_t           *w;
    int             rc;

    rc = parse_registry(s, r, &h);
    if (rc != KVR_OK) {
        return rc;
    }

    if (!full) {
        if ((s->have_epoch && (h.epoch_len != strlen(s->epoch)
                               || memcmp(h.epoch, s->epoch, h.epoch_len)))
            || h.evseq < s->pos)
        {
            /* Redis restarted, was flushed, or failed over */
            s->st.restarts++;
            start_full(s);
            return KVR_OK;
        }
    } else {
        memcpy(s->epoch, h.epoch, h.epoch_len);
        s->epoch[h.epoch_len] = '\0';
        s->have_epoch = 1;
        s->pos = h.evseq;
        s->st.stream_seq = h.evseq;
        s->need_full = 0;
        s->full_running = 1;
        s->next_stream = s->now;
        s->next_registry = s->now + s->cfg.registry_poll_ms;
    }
    s->known_evseq = h.evseq;

    for (i = 0; i < s->nw; i++) {
        s->w[i].seen = 0;
    }
    for (i = 2; i < r->elements; i += 2) {
        (void) get_u64(r->element[i], &id);
        (void) kvr_redis_load_parse(r->element[i + 1]->str,
                                    r->element[i + 1]->len, &load);
        w = sw_get(s, id);
        if (w == NULL) {
            return fail(s, KVR_ERR_NOMEM, "out of memory", NULL, 0);
        }
        w->seen = 1;
        if (full) {
            w->state = SW_PENDING;      /* every live worker reloads */
        } else if (w->state == SW_LIVE) {
            (void) kvr_index_set_load(s->idx, id, &load);
            if (kvr_index_needs_resync(s->idx, id)) {
                w->state = SW_PENDING;
            }
        }
    }
    for (i = s->nw; i-- > 0; ) {
        if (!s->w[i].seen) {
            drop_worker(s, &s->w[i]);   /* dead or unregistered */
        }
    }
    if (full && sweep_index(s) != KVR_OK) {
        return fail(s, KVR_ERR_NOMEM, "out of memory", NULL, 0);
    }
    finish_full_if_done(s);
    return KVR_OK;
}

static int
reserve(void **buf, size_t *cap, size_t need, size_t elem)
{
    void    *n;
    size_t   c;

    if (need <= *cap) {
        return KVR_OK;
    }
    c = *cap ? *cap : 64;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem) {
            return KVR_ERR_NOMEM;
        }
        c *= 2;
    }
    n = realloc(*buf, c * elem);
    if (n == NULL) {
        return KVR_ERR_NOMEM;
    }
    *buf = n;
    *cap = c;
    return KVR_OK;
}

static int
on_snapshot(kvr_sync_t *s, const redisReply *r)
{
    kvr_worker_info_t   info;
    const redisReply   *m, *e;
    uint64_t            seq, gen, last, bs;
    size_t              i;
    sw_t               *w;
    char                role[16];
    int                 rc;

    w = sw_find(s, s->inflight_worker);

    if (!is_arr(r, 1) || get_u64(r->element[0], &seq) != KVR_OK) {
        return malformed(s, "snapshot: bad header");
    }
    if (seq < s->pos) {
        s->st.restarts++;               /* evseq went backwards */
        start_full(s);
        return KVR_OK;
    }
    if (r->elements == 1) {
        if (w != NULL) {
            drop_worker(s, w);          /* not registered or not alive */
        }
        finish_full_if_done(s);
        return KVR_OK;
    }

    memset(&info, 0, sizeof(info));
    info.worker_id = s->inflight_worker;
    if (r->elements != 9
        || get_u64(r->element[1], &gen) != KVR_OK
        || get_u64(r->element[2], &last) != KVR_OK
        || !is_str(r->element[3]) || r->element[3]->len >= sizeof(role)
        || !is_str(r->element[4]) || r->element[4]->len >= KVR_ADDR_MAX
        || get_u64(r->element[5], &bs) != KVR_OK || bs > UINT32_MAX
        || get_u64(r->element[6], &info.capacity_blocks) != KVR_OK
        || !is_str(r->element[7])
        || kvr_redis_load_parse(r->element[7]->str, r->element[7]->len,
                                &info.load) != KVR_OK
        || !is_arr(r->element[8], 0))
    {
        return malformed(s, "snapshot: bad worker fields");
    }
    memcpy(role, r->element[3]->str, r->element[3]->len);
    role[r->element[3]->len] = '\0';
    if (kvr_role_parse(role, &info.role) != KVR_OK) {
        return malformed(s, "snapshot: bad role");
    }
    memcpy(info.addr, r->element[4]->str, r->element[4]->len);
    info.addr[r->element[4]->len] = '\0';
    info.generation = gen;
    info.block_size = (uint32_t) bs;

    m = r->element[8];
    if (reserve((void **) &s->seqbuf, &s->seqcap, m->elements + 1,
                sizeof(uint64_t)) != KVR_OK)
    {
        return fail(s, KVR_ERR_NOMEM, "out of memory", NULL, 0);
    }
    for (i = 0; i < m->elements; i++) {
        e = m->element[i];
        if (!is_str(e) || e->len != 8) {
            return malformed(s, "snapshot: set member is not 8 bytes");
        }
        s->seqbuf[i] = kvr_redis_get_le64((const uint8_t *) e->str);
    }

    if (w == NULL) {
        return KVR_OK;                  /* dropped meanwhile: ignore */
    }

    /* set_worker flags a new generation; reset_worker installs the cursor;
       add_blocks (even of nothing) clears the flag */
    if ((rc = kvr_index_set_worker(s->idx, &info)) != KVR_OK
        || (rc = kvr_index_reset_worker(s->idx, info.worker_id, gen, last))
           != KVR_OK
        || (rc = kvr_index_add_blocks(s->idx, info.worker_id, s->seqbuf,
                                      m->elements)) != KVR_OK)
    {
        /* e.g. no worker slot free: leave it out, the next registry poll
           tries again */
        set_err(s, "index refused snapshot", kvr_strerror(rc),
                strlen(kvr_strerror(rc)));
        s->st.errors++;
        drop_worker(s, w);
        finish_full_if_done(s);
        return rc;
    }

    w->state = SW_LIVE;
    w->snap_seq = seq;
    s->st.snapshots++;
    finish_full_if_done(s);
    return KVR_OK;
}

/* Parses "<seq>-0". */
static int
parse_entry_id(const redisReply *r, uint64_t *seq)
{
    const char  *dash;

    if (!is_str(r) || r->len < 3) {
        return KVR_ERR_INVAL;
    }
    dash = memchr(r->str, '-', r->len);
    if (dash == NULL || (size_t) (r->str + r->len - dash) != 2
        || dash[1] != '0')
    {
        return KVR_ERR_INVAL;
    }
    return kvr_redis_parse_u64(r->str, (size_t) (dash - r->str), seq);
}

/* One stream entry at seq (already checked to be pos + 1). */
static int
on_entry(kvr_sync_t *s, uint64_t seq, const redisReply *fields)
{
    const redisReply  *val = NULL;
    kvr_event_t        ev;
    long               nb;
    size_t             i;
    sw_t              *w;
    int                rc;

    if (!is_arr(fields, 2) || fields->elements % 2 != 0) {
        return malformed(s, "stream: bad entry fields");
    }
    for (i = 0; i < fields->elements; i += 2) {
        if (is_str(fields->element[i]) && fields->element[i]->len == 1
            && fields->element[i]->str[0] == 'e')
        {
            val = fields->element[i + 1];
        }
    }
    if (!is_str(val)) {
        return malformed(s, "stream: entry without event");
    }
    nb = kvr_event_peek_nblocks((const uint8_t *) val->str, val->len);
    if (nb < 0 || (unsigned long) nb > KVR_EVENT_BLOCKS) {
        return malformed(s, "stream: undecodable event");
    }
    if (reserve((void **) &s->blk, &s->blkcap, (size_t) nb + 1,
                sizeof(kvr_block_t)) != KVR_OK)
    {
        return fail(s, KVR_ERR_NOMEM, "out of memory", NULL, 0);
    }
    if (kvr_event_decode((const uint8_t *) val->str, val->len, &ev, s->blk,
                         s->blkcap) != KVR_OK)
    {
        return malformed(s, "stream: undecodable event");
    }

    w = sw_find(s, ev.worker_id);

    if (ev.type == KVR_EV_SNAPSHOT) {
        if (w != NULL && w->state == SW_LIVE && seq <= w->snap_seq) {
            s->st.events_skipped++;
            return KVR_OK;
        }
        if (w == NULL && (w = sw_get(s, ev.worker_id)) == NULL) {
            return fail(s, KVR_ERR_NOMEM, "out of memory", NULL, 0);
        }
        w->state = SW_PENDING;
        return KVR_OK;
    }

    /* unknown workers are dead (or not yet seen alive: the registry poll
       adds them); pending ones get a snapshot that covers this entry */
    if (w == NULL || w->state != SW_LIVE || seq <= w->snap_seq) {
        s->st.events_skipped++;
        return KVR_OK;
    }

    rc = kvr_index_apply(s->idx, &ev);
    if (rc == KVR_OK) {
        s->st.events_applied++;
        return KVR_OK;
    }
    /* KVR_ERR_RESYNC (gap, new generation) or anything else: reload it */
    w->state = SW_PENDING;
    if (rc != KVR_ERR_RESYNC) {
        set_err(s, "index refused event", kvr_strerror(rc),
                strlen(kvr_strerror(rc)));
        s->st.errors++;
    }
    return KVR_OK;
}

static int
on_xread(kvr_sync_t *s, const redisReply *r)
{
    const redisReply  *st, *ents, *e;
    uint64_t           seq;
    size_t             i;
    int                rc;

    if (r->type == REDIS_REPLY_NIL) {
        if (s->pos < s->known_evseq) {
            /* entries up to known_evseq existed before this read was sent,
               yet none came back: they were trimmed */
            s->st.gaps++;
            start_full(s);
            return KVR_OK;
        }
        s->empty_reads++;
        s->next_stream = s->now + (s->cfg.block_ms ? 0
                                                   : s->cfg.stream_poll_ms);
        return KVR_OK;
    }

    if (!is_arr(r, 1) || r->elements != 1 || !is_arr(r->element[0], 2)
        || r->element[0]->elements != 2 || !is_str(r->element[0]->element[0])
        || !is_arr(r->element[0]->element[1], 0))
    {
        return malformed(s, "xread: bad shape");
    }
    st = r->element[0];
    ents = st->element[1];

    for (i = 0; i < ents->elements; i++) {
        e = ents->element[i];
        if (!is_arr(e, 2) || e->elements != 2
            || parse_entry_id(e->element[0], &seq) != KVR_OK)
        {
            return malformed(s, "xread: bad entry");
        }
        if (seq != s->pos + 1) {
            if (seq <= s->pos) {
                return malformed(s, "xread: entry ids not increasing");
            }
            s->st.gaps++;               /* trimmed while we were behind */
            start_full(s);
            return KVR_OK;
        }
        rc = on_entry(s, seq, e->element[1]);
        if (rc != KVR_OK) {
            return rc;
        }
        s->pos = seq;
        s->st.stream_seq = seq;
    }
    if (s->pos > s->known_evseq) {
        s->known_evseq = s->pos;
    }

    if (ents->elements == 0) {
        s->empty_reads++;
    }
    if (ents->elements >= s->cfg.batch || s->cfg.block_ms) {
        s->next_stream = s->now;        /* more may be waiting */
    } else {
        s->next_stream = s->now + s->cfg.stream_poll_ms;
    }
    count_live(s);
    return KVR_OK;
}

int
kvr_sync_on_reply(kvr_sync_t *s, const redisReply *r)
{
    inflight_t  kind;
    int         full;

    if (s == NULL || s->inflight == INF_NONE) {
        return KVR_ERR_INVAL;
    }
    kind = s->inflight;
    full = s->inflight_full;
    s->inflight = INF_NONE;

    if (r == NULL) {
        kvr_sync_on_disconnect(s);
        return KVR_ERR_REDIS;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        return fail(s, KVR_ERR_REDIS, "error reply", r->str,
                    r->str ? r->len : 0);
    }

    switch (kind) {
    case INF_REGISTRY:
        return on_registry(s, r, full);
    case INF_SNAPSHOT:
        return on_snapshot(s, r);
    default:
        return on_xread(s, r);
    }
}

void
kvr_sync_on_disconnect(kvr_sync_t *s)
{
    if (s == NULL) {
        return;
    }
    s->inflight = INF_NONE;
    s->st.disconnects++;
    start_full(s);
}

void
kvr_sync_stats(const kvr_sync_t *s, kvr_sync_stats_t *st)
{
    *st = s->st;
}

const char *
kvr_sync_last_error(const kvr_sync_t *s)
{
    return s->err;
}

/* For the blocking driver: reads that came back empty so far. */
uint64_t
kvr__sync_empty_reads(const kvr_sync_t *s)
{
    return s->empty_reads;
}
