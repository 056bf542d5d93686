/*
 * kvrouter: the sync reader's stream follower. XREAD from the last seq
 * consumed; entries must come as pos + 1, pos + 2, ... (anything else was
 * trimmed: full resync). Each entry is one KV event, applied to the index
 * unless its worker is pending or its snapshot already covers it.
 */
#include <string.h>

#include <hiredis/hiredis.h>

#include "kvr_err.h"
#include "kvr_event.h"
#include "kvr_index.h"
#include "kvr_redis.h"
#include "kvr_redis_int.h"
#include "kvr_redis_sync_int.h"

#define KVR_EVENT_BLOCKS   (1u << 20)   /* larger decoded events: malformed */

void
kvr__sync_cmd_xread(kvr_sync_t *s, kvr_cmd_t *cmd)
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

/* Parses "<seq>-0". */
static int
parse_entry_id(const redisReply *r, uint64_t *seq)
{
    const char  *dash;

    if (!kvr_reply_is_str(r) || r->len < 3) {
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

    if (!kvr_reply_is_arr(fields, 2) || fields->elements % 2 != 0) {
        return kvr__sync_malformed(s, "stream: bad entry fields");
    }
    for (i = 0; i < fields->elements; i += 2) {
        if (kvr_reply_is_str(fields->element[i])
            && fields->element[i]->len == 1
            && fields->element[i]->str[0] == 'e')
        {
            val = fields->element[i + 1];
        }
    }
    if (!kvr_reply_is_str(val)) {
        return kvr__sync_malformed(s, "stream: entry without event");
    }
    nb = kvr_event_peek_nblocks((const uint8_t *) val->str, val->len);
    if (nb < 0 || (unsigned long) nb > KVR_EVENT_BLOCKS) {
        return kvr__sync_malformed(s, "stream: undecodable event");
    }
    if (kvr_redis_reserve((void **) &s->blk, &s->blkcap, (size_t) nb + 1,
                          sizeof(kvr_block_t)) != KVR_OK)
    {
        return kvr__sync_nomem(s);
    }
    if (kvr_event_decode((const uint8_t *) val->str, val->len, &ev, s->blk,
                         s->blkcap) != KVR_OK)
    {
        return kvr__sync_malformed(s, "stream: undecodable event");
    }

    w = kvr__sw_find(s, ev.worker_id);

    if (ev.type == KVR_EV_SNAPSHOT) {
        if (w != NULL && w->state == SW_LIVE && seq <= w->snap_seq) {
            s->st.events_skipped++;
            return KVR_OK;
        }
        if (w == NULL && (w = kvr__sw_get(s, ev.worker_id)) == NULL) {
            return kvr__sync_nomem(s);
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
        kvr__sync_set_err(s, "index refused event", kvr_strerror(rc),
                          strlen(kvr_strerror(rc)));
        s->st.errors++;
    }
    return KVR_OK;
}

int
kvr__sync_on_xread(kvr_sync_t *s, const redisReply *r)
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
            kvr__sync_start_full(s);
            return KVR_OK;
        }
        s->empty_reads++;
        s->next_stream = s->now + (s->cfg.block_ms ? 0
                                                   : s->cfg.stream_poll_ms);
        return KVR_OK;
    }

    if (!kvr_reply_is_arr(r, 1) || r->elements != 1
        || !kvr_reply_is_arr(r->element[0], 2)
        || r->element[0]->elements != 2
        || !kvr_reply_is_str(r->element[0]->element[0])
        || !kvr_reply_is_arr(r->element[0]->element[1], 0))
    {
        return kvr__sync_malformed(s, "xread: bad shape");
    }
    st = r->element[0];
    ents = st->element[1];

    for (i = 0; i < ents->elements; i++) {
        e = ents->element[i];
        if (!kvr_reply_is_arr(e, 2) || e->elements != 2
            || parse_entry_id(e->element[0], &seq) != KVR_OK)
        {
            return kvr__sync_malformed(s, "xread: bad entry");
        }
        if (seq != s->pos + 1) {
            if (seq <= s->pos) {
                return kvr__sync_malformed(s,
                                           "xread: entry ids not increasing");
            }
            s->st.gaps++;               /* trimmed while we were behind */
            kvr__sync_start_full(s);
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
    kvr__sw_count_live(s);
    return KVR_OK;
}

