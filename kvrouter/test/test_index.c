/*
 * Tests for the prefix index (kvr_index): region handling, events and the
 * event cursor, find_matches, the worker table, eviction, and a model-based
 * churn test of the open-addressing table (tombstones and their cleanup).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kvr_err.h"
#include "kvr_index.h"
#include "support/index_events.h"


typedef struct {
    void         *mem;
    size_t        len;
    kvr_index_t  *idx;
} fix_t;

static void
fix_init(fix_t *f, uint32_t workers, uint64_t blocks)
{
    kvr_index_config_t  cfg = { workers, blocks };

    f->len = kvr_index_size(&cfg);
    assert_true(f->len > 0);
    f->mem = malloc(f->len);
    assert_non_null(f->mem);
    memset(f->mem, 0xa5, f->len);              /* init must not rely on 0 */
    f->idx = kvr_index_init(f->mem, f->len, &cfg);
    assert_non_null(f->idx);
}

static void
fix_free(fix_t *f)
{
    free(f->mem);
}

/* Overlap of worker wid for seq[0..n), 0 if not listed. */
static uint32_t
overlap_of(const kvr_index_t *idx, const uint64_t *seq, size_t n,
    uint64_t wid)
{
    kvr_match_t  m[KVR_INDEX_MAX_WORKERS];
    size_t       k, i;

    k = kvr_index_find_matches(idx, seq, n, m, KVR_INDEX_MAX_WORKERS);
    for (i = 0; i < k; i++) {
        if (m[i].worker_id == wid) {
            return m[i].overlap_blocks;
        }
    }
    return 0;
}

static const uint64_t  A[6] = { 101, 102, 103, 104, 105, 106 };

/* ---- region ---- */

static void
test_size_invalid(void **state)
{
    kvr_index_config_t  c;
    char                buf[64];

    c.max_workers = 0; c.max_blocks = 10;
    assert_int_equal(kvr_index_size(&c), 0);
    assert_null(kvr_index_init(buf, sizeof(buf), &c));
    c.max_workers = KVR_INDEX_MAX_WORKERS + 1;
    assert_int_equal(kvr_index_size(&c), 0);
    c.max_workers = 4; c.max_blocks = 0;
    assert_int_equal(kvr_index_size(&c), 0);
    assert_int_equal(kvr_index_size(NULL), 0);
    c.max_blocks = 10;
    assert_true(kvr_index_size(&c) > 0);
    assert_null(kvr_index_init(buf, sizeof(buf), &c));   /* too small */
}

static void
test_init_attach(void **state)
{
    kvr_index_config_t   c = { 8, 1000 }, got;
    kvr_index_stats_t    st;
    size_t               len = (kvr_index_size(&c) + 63) & ~(size_t) 63;
    char                *mem = aligned_alloc(64, len), *copy;
    kvr_index_t         *idx, *idx2;

    assert_non_null(mem);
    /* size() includes 64 bytes of alignment slack, unused here */
    assert_null(kvr_index_init(mem, kvr_index_size(&c) - 65, &c));
    assert_null(kvr_index_init(mem + 1, len - 1, &c));   /* misaligned */
    assert_ptr_equal(kvr_index_init(mem + 8, len - 8, &c), mem + 64);
    idx = kvr_index_init(mem, len, &c);
    assert_ptr_equal(idx, mem);
    assert_non_null(idx);
    kvr_index_get_config(idx, &got);
    assert_int_equal(got.max_workers, 8);
    assert_int_equal(got.max_blocks, 1000);
    kvr_index_stats(idx, &st);
    assert_int_equal(st.blocks, 0);
    assert_int_equal(st.workers, 0);
    assert_true(st.capacity >= 1000);

    assert_int_equal(tu_apply(idx, KVR_EV_STORED, 9, 1, 1, A, 4), KVR_OK);
    assert_ptr_equal(kvr_index_attach(mem, len), idx);
    assert_null(kvr_index_attach(mem, 100));

    /* relocatable: same bytes at another address (same offset mod 64) */
    copy = malloc(len + 64);
    assert_non_null(copy);
    {
        size_t  off = (size_t) ((char *) idx - mem);
        char   *base = copy + ((64 - ((uintptr_t) copy % 64)) % 64);

        memcpy(base + off, idx, len - off);
        idx2 = kvr_index_attach(base, len);
        assert_non_null(idx2);
        assert_ptr_not_equal(idx2, idx);
        assert_int_equal(overlap_of(idx2, A, 6, 9), 4);
        assert_int_equal(kvr_index_worker_blocks(idx2, 9), 4);
    }
    free(copy);

    /* wrong magic; blank region */
    ((unsigned char *) idx)[0] ^= 1;
    assert_null(kvr_index_attach(mem, len));
    ((unsigned char *) idx)[0] ^= 1;
    assert_non_null(kvr_index_attach(mem, len));
    memset(mem, 0, len);
    assert_null(kvr_index_attach(mem, len));
    assert_null(kvr_index_attach(NULL, len));
    free(mem);
}

/* ---- events and find_matches ---- */

static void
test_stored_find(void **state)
{
    fix_t              f;
    kvr_match_t        m[4];
    kvr_index_stats_t  st;
    uint64_t           q[3] = { 101, 999, 103 };
    size_t             k;

    fix_init(&f, 8, 1000);
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 1, 7, 1, A, 5), KVR_OK);
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 2, 7, 1, A, 3), KVR_OK);
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 3, 7, 1, A + 1, 3),
                     KVR_OK);

    k = kvr_index_find_matches(f.idx, A, 6, m, 4);
    assert_int_equal(k, 2);                       /* worker 3 lacks A[0] */
    assert_int_equal(m[0].worker_id, 1);          /* longest first */
    assert_int_equal(m[0].overlap_blocks, 5);
    assert_int_equal(m[1].worker_id, 2);
    assert_int_equal(m[1].overlap_blocks, 3);

    k = kvr_index_find_matches(f.idx, A, 6, m, 1); /* short out keeps best */
    assert_int_equal(k, 1);
    assert_int_equal(m[0].worker_id, 1);

    k = kvr_index_find_matches(f.idx, A, 2, m, 4);
    assert_int_equal(k, 2);
    assert_int_equal(m[0].overlap_blocks, 2);
    assert_int_equal(m[1].overlap_blocks, 2);

    assert_int_equal(overlap_of(f.idx, q, 3, 1), 1);    /* stops at a miss */
    assert_int_equal(overlap_of(f.idx, A + 1, 3, 3), 3);
    assert_int_equal(kvr_index_find_matches(f.idx, q + 1, 2, m, 4), 0);
    assert_int_equal(kvr_index_find_matches(f.idx, A, 0, m, 4), 0);
    assert_int_equal(kvr_index_find_matches(f.idx, A, 6, m, 0), 0);

    kvr_index_stats(f.idx, &st);
    assert_int_equal(st.blocks, 5);
    assert_int_equal(st.workers, 3);
    assert_int_equal(st.events_applied, 3);
    assert_int_equal(kvr_index_worker_blocks(f.idx, 1), 5);
    assert_int_equal(kvr_index_worker_blocks(f.idx, 2), 3);
    assert_int_equal(kvr_index_worker_blocks(f.idx, 42), 0);

    /* storing again is idempotent */
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 2, 7, 2, A, 3), KVR_OK);
    assert_int_equal(kvr_index_worker_blocks(f.idx, 2), 3);
    fix_free(&f);
}

static void
test_key_zero(void **state)
{
    fix_t     f;
    uint64_t  z[3] = { 0, 5, UINT64_MAX };

    fix_init(&f, 2, 100);
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 1, 1, 1, z, 3), KVR_OK);
    assert_int_equal(overlap_of(f.idx, z, 3, 1), 3);
    assert_int_equal(tu_apply(f.idx, KVR_EV_REMOVED, 1, 1, 2, z, 1), KVR_OK);
    assert_int_equal(overlap_of(f.idx, z, 3, 1), 0);
    assert_int_equal(overlap_of(f.idx, z + 1, 2, 1), 2);
    fix_free(&f);
}

static void
test_removed_cleared(void **state)
{
    fix_t              f;
    kvr_index_stats_t  st;

    fix_init(&f, 8, 1000);
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 1, 1, 1, A, 6), KVR_OK);
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 2, 1, 1, A, 4), KVR_OK);

    assert_int_equal(tu_apply(f.idx, KVR_EV_REMOVED, 1, 1, 2, A + 2, 1),
                     KVR_OK);
    assert_int_equal(overlap_of(f.idx, A, 6, 1), 2);
    assert_int_equal(overlap_of(f.idx, A, 6, 2), 4);
    assert_int_equal(kvr_index_worker_blocks(f.idx, 1), 5);
    kvr_index_stats(f.idx, &st);
    assert_int_equal(st.blocks, 6);            /* worker 2 still holds A2 */

    /* removing what it does not hold is harmless */
    assert_int_equal(tu_apply(f.idx, KVR_EV_REMOVED, 1, 1, 3, A + 2, 1),
                     KVR_OK);
    assert_int_equal(kvr_index_worker_blocks(f.idx, 1), 5);

    assert_int_equal(tu_apply(f.idx, KVR_EV_CLEARED, 2, 1, 2, NULL, 0),
                     KVR_OK);
    assert_int_equal(overlap_of(f.idx, A, 6, 2), 0);
    assert_int_equal(overlap_of(f.idx, A, 6, 1), 2);
    assert_int_equal(kvr_index_worker_blocks(f.idx, 2), 0);
    kvr_index_stats(f.idx, &st);
    assert_int_equal(st.blocks, 5);            /* A2 has no holder left */

    assert_int_equal(tu_apply(f.idx, KVR_EV_CLEARED, 1, 1, 4, NULL, 0),
                     KVR_OK);
    kvr_index_stats(f.idx, &st);
    assert_int_equal(st.blocks, 0);
    fix_free(&f);
}

static void
test_cursor(void **state)
{
    fix_t              f;
    kvr_index_stats_t  st;
    kvr_worker_info_t  wi;

    fix_init(&f, 8, 1000);
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 1, 5, 1, A, 1), KVR_OK);
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 1, 5, 2, A, 2), KVR_OK);
    assert_int_equal(kvr_index_needs_resync(f.idx, 1), 0);

    /* replay: ignored */
    assert_int_equal(tu_apply(f.idx, KVR_EV_CLEARED, 1, 5, 2, NULL, 0),
                     KVR_OK);
    assert_int_equal(tu_apply(f.idx, KVR_EV_CLEARED, 1, 5, 1, NULL, 0),
                     KVR_OK);
    assert_int_equal(overlap_of(f.idx, A, 2, 1), 2);

    /* gap: refused, flagged */
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 1, 5, 4, A, 3),
                     KVR_ERR_RESYNC);
    assert_int_equal(overlap_of(f.idx, A, 3, 1), 2);
    assert_int_equal(kvr_index_needs_resync(f.idx, 1), 1);
    assert_int_equal(kvr_index_get_worker(f.idx, 1, &wi), KVR_OK);
    assert_int_equal(wi.last_event_id, 2);
    assert_int_equal(wi.generation, 5);
    assert_int_equal(wi.needs_resync, 1);
    kvr_index_stats(f.idx, &st);
    assert_int_equal(st.resyncs, 1);

    /* snapshot load: reset + add clears the flag; replays ignored after */
    assert_int_equal(kvr_index_reset_worker(f.idx, 1, 5, 10), KVR_OK);
    assert_int_equal(kvr_index_needs_resync(f.idx, 1), 0);
    assert_int_equal(overlap_of(f.idx, A, 3, 1), 0);
    assert_int_equal(kvr_index_add_blocks(f.idx, 1, A, 4), KVR_OK);
    assert_int_equal(overlap_of(f.idx, A, 6, 1), 4);
    assert_int_equal(tu_apply(f.idx, KVR_EV_CLEARED, 1, 5, 9, NULL, 0),
                     KVR_OK);
    assert_int_equal(tu_apply(f.idx, KVR_EV_CLEARED, 1, 5, 10, NULL, 0),
                     KVR_OK);
    assert_int_equal(overlap_of(f.idx, A, 6, 1), 4);
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 1, 5, 11, A + 4, 1),
                     KVR_OK);
    assert_int_equal(overlap_of(f.idx, A, 6, 1), 5);

    /* new generation: refused */
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 1, 6, 1, A, 6),
                     KVR_ERR_RESYNC);
    assert_int_equal(kvr_index_needs_resync(f.idx, 1), 1);
    assert_int_equal(overlap_of(f.idx, A, 6, 1), 5);
    assert_int_equal(kvr_index_reset_worker(f.idx, 1, 6, 0), KVR_OK);
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 1, 6, 1, A, 6), KVR_OK);
    assert_int_equal(overlap_of(f.idx, A, 6, 1), 6);

    /* a snapshot event always asks for a resync */
    assert_int_equal(tu_apply(f.idx, KVR_EV_SNAPSHOT, 1, 6, 2, NULL, 0),
                     KVR_ERR_RESYNC);
    assert_int_equal(kvr_index_needs_resync(f.idx, 1), 1);
    assert_int_equal(overlap_of(f.idx, A, 6, 1), 6);
    kvr_index_stats(f.idx, &st);
    assert_int_equal(st.resyncs, 3);

    /* add_blocks alone clears the flag too */
    assert_int_equal(kvr_index_add_blocks(f.idx, 1, A, 1), KVR_OK);
    assert_int_equal(kvr_index_needs_resync(f.idx, 1), 0);
    assert_int_equal(kvr_index_add_blocks(f.idx, 77, A, 1),
                     KVR_ERR_NOTFOUND);
    fix_free(&f);
}

static void
test_unknown_worker(void **state)
{
    fix_t              f;
    kvr_worker_info_t  wi;

    fix_init(&f, 2, 100);
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 1, 3, 1, A, 2), KVR_OK);
    assert_int_equal(kvr_index_get_worker(f.idx, 1, &wi), KVR_OK);
    assert_int_equal(wi.generation, 3);
    assert_int_equal(wi.last_event_id, 1);
    assert_int_equal(wi.blocks, 2);

    /* joins mid-stream: known, flagged, nothing applied */
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 2, 3, 5, A, 2),
                     KVR_ERR_RESYNC);
    assert_int_equal(kvr_index_needs_resync(f.idx, 2), 1);
    assert_int_equal(overlap_of(f.idx, A, 2, 2), 0);

    /* the table is full */
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 3, 3, 1, A, 2),
                     KVR_ERR_FULL);
    assert_int_equal(kvr_index_get_worker(f.idx, 3, &wi), KVR_ERR_NOTFOUND);

    assert_int_equal(kvr_index_apply(f.idx, NULL), KVR_ERR_INVAL);
    assert_int_equal(tu_apply(f.idx, (kvr_event_type_t) 9, 1, 3, 2, A, 1),
                     KVR_ERR_INVAL);
    fix_free(&f);
}

static void
test_remove_worker(void **state)
{
    fix_t              f;
    kvr_index_stats_t  st;
    kvr_worker_info_t  wi;

    fix_init(&f, 2, 100);
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 1, 1, 1, A, 6), KVR_OK);
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 2, 1, 1, A, 3), KVR_OK);
    assert_int_equal(kvr_index_remove_worker(f.idx, 1), KVR_OK);
    assert_int_equal(kvr_index_remove_worker(f.idx, 1), KVR_ERR_NOTFOUND);
    assert_int_equal(kvr_index_get_worker(f.idx, 1, &wi), KVR_ERR_NOTFOUND);
    assert_int_equal(overlap_of(f.idx, A, 6, 1), 0);
    assert_int_equal(overlap_of(f.idx, A, 6, 2), 3);
    kvr_index_stats(f.idx, &st);
    assert_int_equal(st.blocks, 3);
    assert_int_equal(st.workers, 1);

    /* the freed slot does not carry the old worker's blocks */
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 3, 1, 1, A + 5, 1),
                     KVR_OK);
    assert_int_equal(overlap_of(f.idx, A, 6, 3), 0);
    assert_int_equal(kvr_index_worker_blocks(f.idx, 3), 1);
    assert_int_equal(kvr_index_worker_blocks(f.idx, 2), 3);
    /* and the writer's id map still finds the survivor */
    assert_int_equal(tu_apply(f.idx, KVR_EV_REMOVED, 2, 1, 2, A, 1), KVR_OK);
    assert_int_equal(overlap_of(f.idx, A, 6, 2), 0);
    fix_free(&f);
}

static void
test_apply_many(void **state)
{
    fix_t        f, g;
    kvr_event_t  ev[6];
    kvr_block_t  b[6];
    int          rc[6];
    size_t       i;
    kvr_match_t  m1[4], m2[4];

    fix_init(&f, 4, 1000);
    fix_init(&g, 4, 1000);
    for (i = 0; i < 6; i++) {
        b[i].seq = A[i];
        b[i].local = 0;
    }
    memset(ev, 0, sizeof(ev));
    for (i = 0; i < 6; i++) {
        ev[i].type = KVR_EV_STORED;
        ev[i].worker_id = 1 + i % 2;
        ev[i].generation = 1;
        ev[i].event_id = 1 + i / 2;
        ev[i].nblocks = 2;
        ev[i].blocks = b + (i / 2) * 2;
    }
    ev[3].event_id = 9;                        /* a gap: refused */
    ev[4].type = KVR_EV_REMOVED;             /* worker 1 drops A3 */
    ev[4].nblocks = 1;
    ev[4].blocks = b + 3;
    ev[5].type = (kvr_event_type_t) 0;         /* invalid */

    assert_int_equal(kvr_index_apply_many(f.idx, ev, 6, rc), 4);
    assert_int_equal(rc[0], KVR_OK);
    assert_int_equal(rc[3], KVR_ERR_RESYNC);
    assert_int_equal(rc[4], KVR_OK);
    assert_int_equal(rc[5], KVR_ERR_INVAL);
    for (i = 0; i < 6; i++) {
        assert_int_equal(kvr_index_apply(g.idx, &ev[i]), rc[i]);
    }
    for (i = 0; i < 6; i++) {
        assert_int_equal(kvr_index_find_matches(f.idx, A + i, 6 - i, m1, 4),
                         kvr_index_find_matches(g.idx, A + i, 6 - i, m2, 4));
    }
    assert_int_equal(overlap_of(f.idx, A, 6, 1), 3);
    assert_int_equal(overlap_of(f.idx, A, 6, 2), 2);
    assert_int_equal(kvr_index_needs_resync(f.idx, 2), 1);
    assert_int_equal(kvr_index_apply_many(f.idx, ev, 0, NULL), 0);
    assert_int_equal(kvr_index_apply_many(NULL, ev, 1, rc), 0);
    assert_int_equal(rc[0], KVR_ERR_INVAL);
    fix_free(&f);
    fix_free(&g);
}

/* ---- worker table ---- */

static void
test_workers_table(void **state)
{
    fix_t              f;
    kvr_worker_info_t  in, out, all[8];
    kvr_load_t         ld;
    size_t             n;

    fix_init(&f, 4, 100);
    memset(&in, 0, sizeof(in));
    in.worker_id = 0xfeedULL;
    in.generation = 9;
    in.role = KVR_ROLE_PREFILL;
    in.block_size = 16;
    in.capacity_blocks = 5000;
    memset(in.addr, 'x', sizeof(in.addr));     /* not terminated */
    in.load.running = 3;
    in.last_event_id = 1234;                   /* ignored */
    assert_int_equal(kvr_index_set_worker(f.idx, &in), KVR_OK);

    assert_int_equal(kvr_index_get_worker(f.idx, 0xfeed, &out), KVR_OK);
    assert_int_equal(out.worker_id, 0xfeed);
    assert_int_equal(out.generation, 9);
    assert_int_equal(out.role, KVR_ROLE_PREFILL);
    assert_int_equal(out.block_size, 16);
    assert_int_equal(out.capacity_blocks, 5000);
    assert_int_equal(strlen(out.addr), KVR_ADDR_MAX - 1);
    assert_int_equal(out.load.running, 3);
    assert_int_equal(out.last_event_id, 0);
    assert_int_equal(out.needs_resync, 0);

    memset(&ld, 0, sizeof(ld));
    ld.active_blocks = 77;
    ld.queued_prefill_tokens = 1600;
    ld.updated_ms = 42;
    assert_int_equal(kvr_index_set_load(f.idx, 0xfeed, &ld), KVR_OK);
    assert_int_equal(kvr_index_set_load(f.idx, 1, &ld), KVR_ERR_NOTFOUND);
    assert_int_equal(kvr_index_get_worker(f.idx, 0xfeed, &out), KVR_OK);
    assert_int_equal(out.load.active_blocks, 77);
    assert_int_equal(out.load.queued_prefill_tokens, 1600);
    assert_int_equal(out.role, KVR_ROLE_PREFILL);

    /* events continue the registered generation from id 1 */
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 0xfeed, 9, 1, A, 2),
                     KVR_OK);

    strcpy(in.addr, "10.0.0.2:9000");
    in.worker_id = 0;                          /* id 0 is a valid id */
    assert_int_equal(kvr_index_set_worker(f.idx, &in), KVR_OK);
    n = kvr_index_workers(f.idx, all, 8);
    assert_int_equal(n, 2);
    assert_int_equal(kvr_index_workers(f.idx, all, 1), 1);
    assert_int_equal(kvr_index_get_worker(f.idx, 0, &out), KVR_OK);
    assert_string_equal(out.addr, "10.0.0.2:9000");

    /* a restart (new generation) flags a resync; load still updated */
    in.worker_id = 0xfeed;
    in.generation = 10;
    assert_int_equal(kvr_index_set_worker(f.idx, &in), KVR_OK);
    assert_int_equal(kvr_index_needs_resync(f.idx, 0xfeed), 1);
    assert_int_equal(kvr_index_get_worker(f.idx, 0xfeed, &out), KVR_OK);
    assert_int_equal(out.generation, 9);       /* cursor's, until reset */
    assert_int_equal(out.blocks, 2);

    assert_int_equal(kvr_index_set_worker(f.idx, NULL), KVR_ERR_INVAL);
    assert_int_equal(kvr_index_get_worker(f.idx, 5, NULL), KVR_ERR_NOTFOUND);
    fix_free(&f);
}

static void
test_role(void **state)
{
    kvr_role_t  r;

    assert_string_equal(kvr_role_name(KVR_ROLE_BOTH), "both");
    assert_string_equal(kvr_role_name(KVR_ROLE_DECODE), "decode");
    assert_string_equal(kvr_role_name(KVR_ROLE_PREFILL), "prefill");
    assert_string_equal(kvr_role_name((kvr_role_t) 7), "unknown");
    assert_int_equal(kvr_role_parse("decode", &r), KVR_OK);
    assert_int_equal(r, KVR_ROLE_DECODE);
    assert_int_equal(kvr_role_parse("prefill", &r), KVR_OK);
    assert_int_equal(r, KVR_ROLE_PREFILL);
    assert_int_equal(kvr_role_parse("aggregated", &r), KVR_OK);
    assert_int_equal(r, KVR_ROLE_BOTH);
    assert_int_equal(kvr_role_parse("both", &r), KVR_OK);
    assert_int_equal(kvr_role_parse("Decode", &r), KVR_ERR_INVAL);
    assert_int_equal(kvr_role_parse("", &r), KVR_ERR_INVAL);
    assert_int_equal(kvr_role_parse(NULL, &r), KVR_ERR_INVAL);
}

/* ---- many workers: bitmaps of several words ---- */

static void
test_many_workers(void **state)
{
    fix_t        f;
    kvr_match_t  m[200];
    uint64_t     q[8];
    uint32_t     i, seen[130];
    size_t       k;

    fix_init(&f, 130, 10000);
    for (i = 0; i < 8; i++) {
        q[i] = 5000 + i;
    }
    /* worker 1000+i holds the first (i % 8) + 1 query blocks */
    for (i = 0; i < 130; i++) {
        assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 1000 + i, 1, 1, q,
                                  i % 8 + 1), KVR_OK);
    }
    k = kvr_index_find_matches(f.idx, q, 8, m, 200);
    assert_int_equal(k, 130);
    memset(seen, 0, sizeof(seen));
    for (i = 0; i < k; i++) {
        assert_true(m[i].worker_id >= 1000 && m[i].worker_id < 1130);
        assert_int_equal(m[i].overlap_blocks, (m[i].worker_id - 1000) % 8 + 1);
        seen[m[i].worker_id - 1000]++;
        if (i > 0) {
            assert_true(m[i].overlap_blocks <= m[i - 1].overlap_blocks);
        }
    }
    for (i = 0; i < 130; i++) {
        assert_int_equal(seen[i], 1);
    }
    /* top 10: 16 workers have all 8 */
    k = kvr_index_find_matches(f.idx, q, 8, m, 10);
    assert_int_equal(k, 10);
    for (i = 0; i < 10; i++) {
        assert_int_equal(m[i].overlap_blocks, 8);
    }
    assert_int_equal(kvr_index_remove_worker(f.idx, 1129), KVR_OK);
    assert_int_equal(kvr_index_find_matches(f.idx, q, 8, m, 200), 129);
    fix_free(&f);
}

/* ---- eviction ---- */

static void
test_eviction_bound(void **state)
{
    fix_t              f;
    kvr_index_stats_t  st;
    uint64_t           k[1], s = 1, i, held = 0;

    fix_init(&f, 2, 100);
    for (i = 0; i < 2000; i++) {
        k[0] = tu_rng(&s);
        assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, i % 2 + 1, 1,
                                  i / 2 + 1, k, 1), KVR_OK);
        kvr_index_stats(f.idx, &st);
        assert_true(st.blocks <= 100);
    }
    kvr_index_stats(f.idx, &st);
    assert_int_equal(st.blocks, 100);
    assert_int_equal(st.evictions, 1900);
    held = kvr_index_worker_blocks(f.idx, 1)
           + kvr_index_worker_blocks(f.idx, 2);
    assert_int_equal(held, 100);               /* counts follow evictions */
    fix_free(&f);
}

static void
test_eviction_lru(void **state)
{
    fix_t              f;
    kvr_index_stats_t  st;
    uint64_t           hot[16], cold[1], s = 7, id = 1, i, j;

    fix_init(&f, 1, 64);
    for (j = 0; j < 16; j++) {
        hot[j] = tu_rng(&s);
    }
    assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 1, 1, id++, hot, 16),
                     KVR_OK);
    for (i = 0; i < 1000; i++) {
        cold[0] = tu_rng(&s);
        assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 1, 1, id++, cold, 1),
                         KVR_OK);
        assert_int_equal(tu_apply(f.idx, KVR_EV_STORED, 1, 1, id++, hot, 16),
                         KVR_OK);
    }
    for (j = 0; j < 16; j++) {
        assert_int_equal(overlap_of(f.idx, &hot[j], 1, 1), 1);
    }
    kvr_index_stats(f.idx, &st);
    assert_int_equal(st.blocks, 64);
    assert_true(st.evictions >= 1000 - 48);
    fix_free(&f);
}

/* ---- model-based churn: tombstones, cleanup, probe chains ---- */

#define POOL  400
#define NW    3

static void
check_model(const kvr_index_t *idx, const uint64_t *pool,
    const uint8_t *model)
{
    kvr_match_t        m[NW];
    kvr_index_stats_t  st;
    uint64_t           cnt[NW] = { 0 }, distinct = 0;
    size_t             i, k, j;
    uint8_t            got;

    for (i = 0; i < POOL; i++) {
        k = kvr_index_find_matches(idx, &pool[i], 1, m, NW);
        got = 0;
        for (j = 0; j < k; j++) {
            assert_int_equal(m[j].overlap_blocks, 1);
            got |= (uint8_t) (1u << m[j].worker_id);
        }
        assert_int_equal(got, model[i]);
        distinct += model[i] != 0;
        for (j = 0; j < NW; j++) {
            cnt[j] += (model[i] >> j) & 1;
        }
    }
    kvr_index_stats(idx, &st);
    assert_int_equal(st.blocks, distinct);
    for (j = 0; j < NW; j++) {
        assert_int_equal(kvr_index_worker_blocks(idx, j), cnt[j]);
    }
}

static void
test_churn_model(void **state)
{
    fix_t              f;
    kvr_index_stats_t  st;
    uint64_t           pool[POOL], s = 99, r, ids[NW] = { 0 }, batch[8];
    uint8_t            model[POOL];
    size_t             i, n, op, b, nb;
    unsigned           w;

    /* 500 blocks -> 750 home slots: the pool crowds it, chains interleave */
    fix_init(&f, NW, 500);
    for (i = 0; i < POOL; i++) {
        pool[i] = tu_rng(&s);
    }
    memset(model, 0, sizeof(model));

    for (op = 0; op < 200000; op++) {
        r = tu_rng(&s);
        w = (unsigned) (r % NW);
        nb = 1 + (r >> 8) % 8;
        for (b = 0; b < nb; b++) {
            batch[b] = (tu_rng(&s) % POOL);
        }
        if ((r >> 16) % 1000 == 0) {
            assert_int_equal(tu_apply(f.idx, KVR_EV_CLEARED, w, 1, ++ids[w],
                                      NULL, 0), KVR_OK);
            for (i = 0; i < POOL; i++) {
                model[i] &= (uint8_t) ~(1u << w);
            }
            continue;
        }
        {
            uint64_t  keys[8];
            int       store = (r >> 20) % 2;

            for (b = 0; b < nb; b++) {
                keys[b] = pool[batch[b]];
                if (store) {
                    model[batch[b]] |= (uint8_t) (1u << w);
                } else {
                    model[batch[b]] &= (uint8_t) ~(1u << w);
                }
            }
            assert_int_equal(tu_apply(f.idx, store ? KVR_EV_STORED
                                                   : KVR_EV_REMOVED,
                                      w, 1, ++ids[w], keys, nb), KVR_OK);
        }
        if (op % 20000 == 0) {
            check_model(f.idx, pool, model);
        }
    }
    check_model(f.idx, pool, model);
    kvr_index_stats(f.idx, &st);
    assert_int_equal(st.evictions, 0);

    /* drop everything: the table must come back to all-empty */
    for (w = 0; w < NW; w++) {
        assert_int_equal(kvr_index_remove_worker(f.idx, w), KVR_OK);
    }
    memset(model, 0, sizeof(model));
    n = 0;
    check_model(f.idx, pool, model);
    kvr_index_stats(f.idx, &st);
    assert_int_equal(st.blocks, n);
    fix_free(&f);
}

/* Eviction under churn: counts stay exact, no false positives. */
static void
test_churn_evicting(void **state)
{
    fix_t              f;
    kvr_index_stats_t  st;
    kvr_match_t        m[NW];
    uint64_t           pool[POOL], s = 5, r, ids[NW] = { 0 }, keys[8], sum;
    uint8_t            model[POOL];
    size_t             i, k, j, op, b, nb;
    unsigned           w;

    fix_init(&f, NW, 100);
    for (i = 0; i < POOL; i++) {
        pool[i] = tu_rng(&s);
    }
    memset(model, 0, sizeof(model));
    for (op = 0; op < 50000; op++) {
        r = tu_rng(&s);
        w = (unsigned) (r % NW);
        nb = 1 + (r >> 8) % 8;
        for (b = 0; b < nb; b++) {
            i = tu_rng(&s) % POOL;
            keys[b] = pool[i];
            if ((r >> 20) % 3) {
                model[i] |= (uint8_t) (1u << w);   /* may be evicted later */
            } else {
                model[i] &= (uint8_t) ~(1u << w);
            }
        }
        assert_int_equal(tu_apply(f.idx, (r >> 20) % 3 ? KVR_EV_STORED
                                                        : KVR_EV_REMOVED,
                                  w, 1, ++ids[w], keys, nb), KVR_OK);
    }
    sum = 0;
    for (i = 0; i < POOL; i++) {
        k = kvr_index_find_matches(f.idx, &pool[i], 1, m, NW);
        for (j = 0; j < k; j++) {
            assert_true(model[i] & (1u << m[j].worker_id));
        }
        sum += k;
    }
    kvr_index_stats(f.idx, &st);
    assert_true(st.blocks <= 100);
    assert_true(st.evictions > 0);
    assert_int_equal(sum, kvr_index_worker_blocks(f.idx, 0)
                          + kvr_index_worker_blocks(f.idx, 1)
                          + kvr_index_worker_blocks(f.idx, 2));
    fix_free(&f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size_invalid),
        cmocka_unit_test(test_init_attach),
        cmocka_unit_test(test_stored_find),
        cmocka_unit_test(test_key_zero),
        cmocka_unit_test(test_removed_cleared),
        cmocka_unit_test(test_cursor),
        cmocka_unit_test(test_unknown_worker),
        cmocka_unit_test(test_apply_many),
        cmocka_unit_test(test_remove_worker),
        cmocka_unit_test(test_workers_table),
        cmocka_unit_test(test_role),
        cmocka_unit_test(test_many_workers),
        cmocka_unit_test(test_eviction_bound),
        cmocka_unit_test(test_eviction_lru),
        cmocka_unit_test(test_churn_model),
        cmocka_unit_test(test_churn_evicting),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
