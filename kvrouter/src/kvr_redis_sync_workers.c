/*
 * kvrouter: the sync reader's per-worker table and snapshot loading.
 *
 * The table (sorted by id) holds every worker the reader knows of, LIVE
 * (loaded; stream entries past snap_seq apply) or PENDING (a snapshot is
 * due; its entries are skipped). A snapshot is one script call that reads
 * a worker's registration, load and block set together with evseq.
 */
#include <string.h>

#include <hiredis/hiredis.h>

#include "kvr_err.h"
#include "kvr_index.h"
#include "kvr_redis.h"
#include "kvr_redis_int.h"
#include "kvr_redis_sync_int.h"

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

sw_t *
kvr__sw_find(kvr_sync_t *s, uint64_t id)
{
    int     found;
    size_t  i = sw_search(s, id, &found);

    return found ? &s->w[i] : NULL;
}

/* Finds or inserts (as PENDING); NULL when out of memory. */
sw_t *
kvr__sw_get(kvr_sync_t *s, uint64_t id)
{
    int     found;
    size_t  i = sw_search(s, id, &found);

    if (found) {
        return &s->w[i];
    }
    if (kvr_redis_reserve((void **) &s->w, &s->wcap, s->nw + 1,
                          sizeof(*s->w)) != KVR_OK)
    {
        return NULL;
    }
    memmove(&s->w[i + 1], &s->w[i], (s->nw - i) * sizeof(*s->w));
    s->nw++;
    memset(&s->w[i], 0, sizeof(s->w[i]));
    s->w[i].id = id;
    s->w[i].state = SW_PENDING;
    return &s->w[i];
}

void
kvr__sw_del(kvr_sync_t *s, sw_t *w)
{
    size_t  i = (size_t) (w - s->w);

    memmove(&s->w[i], &s->w[i + 1], (s->nw - i - 1) * sizeof(*s->w));
    s->nw--;
}

/* Drops a worker from the table and the index. */
void
kvr__sw_drop(kvr_sync_t *s, sw_t *w)
{
    if (kvr_index_remove_worker(s->idx, w->id) == KVR_OK) {
        s->st.workers_removed++;
    }
    kvr__sw_del(s, w);
}

sw_t *
kvr__sw_first_pending(kvr_sync_t *s)
{
    size_t  i;

    for (i = 0; i < s->nw; i++) {
        if (s->w[i].state == SW_PENDING) {
            return &s->w[i];
        }
    }
    return NULL;
}

void
kvr__sw_count_live(kvr_sync_t *s)
{
    size_t    i;
    uint32_t  n = 0;

    for (i = 0; i < s->nw; i++) {
        n += s->w[i].state == SW_LIVE;
    }
    s->st.workers = n;
}

/* ---- snapshots ---- */

int
kvr__sync_cmd_snapshot(kvr_sync_t *s, uint64_t id, kvr_cmd_t *cmd)
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

int
kvr__sync_on_snapshot(kvr_sync_t *s, const redisReply *r)
{
    kvr_worker_info_t   info;
    const redisReply   *m, *e;
    uint64_t            seq, gen, last, bs;
    size_t              i;
    sw_t               *w;
    char                role[16];
    int                 rc;

    w = kvr__sw_find(s, s->inflight_worker);

    if (!kvr_reply_is_arr(r, 1)
        || kvr_reply_u64(r->element[0], &seq) != KVR_OK)
    {
        return kvr__sync_malformed(s, "snapshot: bad header");
    }
    if (seq < s->pos) {
        s->st.restarts++;               /* evseq went backwards */
        kvr__sync_start_full(s);
        return KVR_OK;
    }
    if (r->elements == 1) {
        if (w != NULL) {
            kvr__sw_drop(s, w);         /* not registered or not alive */
        }
        kvr__sync_finish_full(s);
        return KVR_OK;
    }

    memset(&info, 0, sizeof(info));
    info.worker_id = s->inflight_worker;
    if (r->elements != 9
        || kvr_reply_u64(r->element[1], &gen) != KVR_OK
        || kvr_reply_u64(r->element[2], &last) != KVR_OK
        || !kvr_reply_is_str(r->element[3])
        || r->element[3]->len >= sizeof(role)
        || !kvr_reply_is_str(r->element[4])
        || r->element[4]->len >= KVR_ADDR_MAX
        || kvr_reply_u64(r->element[5], &bs) != KVR_OK || bs > UINT32_MAX
        || kvr_reply_u64(r->element[6], &info.capacity_blocks) != KVR_OK
        || !kvr_reply_is_str(r->element[7])
        || kvr_redis_load_parse(r->element[7]->str, r->element[7]->len,
                                &info.load) != KVR_OK
        || !kvr_reply_is_arr(r->element[8], 0))
    {
        return kvr__sync_malformed(s, "snapshot: bad worker fields");
    }
    memcpy(role, r->element[3]->str, r->element[3]->len);
    role[r->element[3]->len] = '\0';
    if (kvr_role_parse(role, &info.role) != KVR_OK) {
        return kvr__sync_malformed(s, "snapshot: bad role");
    }
    memcpy(info.addr, r->element[4]->str, r->element[4]->len);
    info.addr[r->element[4]->len] = '\0';
    info.generation = gen;
    info.block_size = (uint32_t) bs;

    m = r->element[8];
    if (kvr_redis_reserve((void **) &s->seqbuf, &s->seqcap, m->elements + 1,
                          sizeof(uint64_t)) != KVR_OK)
    {
        return kvr__sync_nomem(s);
    }
    for (i = 0; i < m->elements; i++) {
        e = m->element[i];
        if (!kvr_reply_is_str(e) || e->len != 8) {
            return kvr__sync_malformed(s,
                                       "snapshot: set member is not 8 bytes");
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
        kvr__sync_set_err(s, "index refused snapshot", kvr_strerror(rc),
                          strlen(kvr_strerror(rc)));
        s->st.errors++;
        kvr__sw_drop(s, w);
        kvr__sync_finish_full(s);
        return rc;
    }

    w->state = SW_LIVE;
    w->snap_seq = seq;
    s->st.snapshots++;
    kvr__sync_finish_full(s);
    return KVR_OK;
}

