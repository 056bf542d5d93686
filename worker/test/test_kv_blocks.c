/*
 * Tests for the KV block manager (dw_block_int.h): reference counts,
 * prefix-cache hits, LRU eviction order and its REMOVED events, STORED
 * event grouping, duplicates, a full pool, the prefix-cache reset (all or
 * nothing, one CLEARED), and random operation sequences
 * checked against a simple model of the pool.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dw_block_int.h"
#include "support/dw_tsupport_engine.h"

static void
take_events(dw_bm_t *bm, dw_kv_event_t **ev, size_t *n)
{
    dw_bm_take_events(bm, ev, n);
}

static void
free_events(dw_kv_event_t *ev, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        dw_kv_event_free(&ev[i]);
    }
    free(ev);
}

static void
test_refcounts_and_full_pool(void **state)
{
    dw_bm_t   bm;
    uint32_t  b[8], i;

    (void) state;
    assert_int_equal(dw_bm_init(&bm, 8, 4, 1), 0);
    assert_int_equal(dw_bm_available(&bm), 8);
    for (i = 0; i < 8; i++) {
        b[i] = dw_bm_alloc(&bm);
        assert_int_not_equal(b[i], DW_BLK_NONE);
    }
    /* distinct ids */
    for (i = 1; i < 8; i++) {
        assert_int_not_equal(b[i], b[i - 1]);
    }
    assert_int_equal(dw_bm_available(&bm), 0);
    assert_int_equal(bm.n_used, 8);
    assert_int_equal(dw_bm_alloc(&bm), DW_BLK_NONE);

    /* a second reference keeps the block after one release */
    dw_bm_ref(&bm, b[0]);
    dw_bm_release(&bm, b[0]);
    assert_int_equal(dw_bm_available(&bm), 0);
    dw_bm_release(&bm, b[0]);
    assert_int_equal(dw_bm_available(&bm), 1);
    assert_int_equal(dw_bm_alloc(&bm), b[0]);
    for (i = 0; i < 8; i++) {
        dw_bm_release(&bm, b[i]);
    }
    assert_int_equal(bm.n_used, 0);
    assert_int_equal(dw_bm_available(&bm), 8);
    /* uncached blocks make no events */
    assert_int_equal(bm.n_ev, 0);
    dw_bm_free(&bm);
}

static void
test_prefix_hit_and_stored_events(void **state)
{
    dw_bm_t         bm;
    dw_kv_event_t  *ev;
    size_t          n;
    uint32_t        a, b, c, d;

    (void) state;
    assert_int_equal(dw_bm_init(&bm, 8, 4, 1), 0);
    a = dw_bm_alloc(&bm);
    b = dw_bm_alloc(&bm);
    c = dw_bm_alloc(&bm);
    /* a chain a <- b <- c: one STORED event with three blocks */
    assert_int_equal(dw_bm_commit(&bm, a, 0, 0, 100, 10), 1);
    assert_int_equal(dw_bm_commit(&bm, b, 1, 100, 101, 11), 1);
    assert_int_equal(dw_bm_commit(&bm, c, 1, 101, 102, 12), 1);
    dw_bm_close_event(&bm);
    /* another sequence's chain after 100: a new event with parent 100 */
    d = dw_bm_alloc(&bm);
    assert_int_equal(dw_bm_commit(&bm, d, 1, 100, 200, 20), 1);
    dw_bm_close_event(&bm);

    take_events(&bm, &ev, &n);
    assert_int_equal(n, 2);
    assert_int_equal(ev[0].type, KVR_EV_STORED);
    assert_int_equal(ev[0].has_parent, 0);
    assert_int_equal(ev[0].n, 3);
    assert_true(ev[0].blocks[0].seq == 100 && ev[0].blocks[0].local == 10);
    assert_true(ev[0].blocks[2].seq == 102 && ev[0].blocks[2].local == 12);
    assert_int_equal(ev[1].type, KVR_EV_STORED);
    assert_int_equal(ev[1].has_parent, 1);
    assert_true(ev[1].parent == 100);
    assert_int_equal(ev[1].n, 1);
    free_events(ev, n);

    /* lookups */
    assert_int_equal(dw_bm_lookup(&bm, 101), b);
    assert_int_equal(dw_bm_lookup(&bm, 999), DW_BLK_NONE);

    /* released cached blocks stay findable and count as available */
    dw_bm_release(&bm, c);
    dw_bm_release(&bm, b);
    assert_int_equal(bm.n_lru, 2);
    assert_int_equal(dw_bm_available(&bm), 6);
    assert_int_equal(dw_bm_lookup(&bm, 102), c);
    /* a hit takes it back off the LRU list */
    dw_bm_ref(&bm, c);
    assert_int_equal(bm.n_lru, 1);
    assert_int_equal(bm.n_used, 3);
    dw_bm_release(&bm, c);
    dw_bm_release(&bm, a);
    dw_bm_release(&bm, d);
    assert_int_equal(bm.n_used, 0);
    assert_int_equal(bm.n_lru, 4);
    dw_bm_free(&bm);
}

static void
test_lru_eviction_order(void **state)
{
    dw_bm_t         bm;
    dw_kv_event_t  *ev;
    size_t          n;
    uint32_t        b[4], i, x;

    (void) state;
    assert_int_equal(dw_bm_init(&bm, 4, 4, 1), 0);
    for (i = 0; i < 4; i++) {
        b[i] = dw_bm_alloc(&bm);
        assert_int_equal(dw_bm_commit(&bm, b[i], 0, 0, 1000 + i, i), 1);
        dw_bm_close_event(&bm);
    }
    take_events(&bm, &ev, &n);
    assert_int_equal(n, 4);
    free_events(ev, n);

    /* release order 2, 0, 3, 1: evictions must follow it */
    dw_bm_release(&bm, b[2]);
    dw_bm_release(&bm, b[0]);
    dw_bm_release(&bm, b[3]);
    dw_bm_release(&bm, b[1]);
    /* touching 0 (hit and release) makes it most recent */
    dw_bm_ref(&bm, b[0]);
    dw_bm_release(&bm, b[0]);

    x = dw_bm_alloc(&bm);
    assert_int_equal(x, b[2]);
    x = dw_bm_alloc(&bm);
    assert_int_equal(x, b[3]);
    assert_int_equal(dw_bm_lookup(&bm, 1002), DW_BLK_NONE);
    assert_int_equal(dw_bm_lookup(&bm, 1003), DW_BLK_NONE);
    assert_int_equal(dw_bm_lookup(&bm, 1000), b[0]);

    take_events(&bm, &ev, &n);
    /* consecutive evictions share one REMOVED event */
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].type, KVR_EV_REMOVED);
    assert_int_equal(ev[0].n, 2);
    assert_true(ev[0].blocks[0].seq == 1002);
    assert_true(ev[0].blocks[1].seq == 1003);
    free_events(ev, n);
    dw_bm_free(&bm);
}

static void
test_duplicate_stays_private(void **state)
{
    dw_bm_t         bm;
    dw_kv_event_t  *ev;
    size_t          n;
    uint32_t        a, b;

    (void) state;
    assert_int_equal(dw_bm_init(&bm, 4, 4, 1), 0);
    a = dw_bm_alloc(&bm);
    b = dw_bm_alloc(&bm);
    assert_int_equal(dw_bm_commit(&bm, a, 0, 0, 7, 7), 1);
    dw_bm_close_event(&bm);
    assert_int_equal(dw_bm_commit(&bm, b, 0, 0, 7, 7), 0);
    dw_bm_close_event(&bm);
    take_events(&bm, &ev, &n);
    assert_int_equal(n, 1);
    free_events(ev, n);
    assert_int_equal(dw_bm_lookup(&bm, 7), a);
    /* the private copy goes back to the free list, the cached one to LRU */
    dw_bm_release(&bm, b);
    dw_bm_release(&bm, a);
    assert_int_equal(bm.n_free, 3);
    assert_int_equal(bm.n_lru, 1);
    dw_bm_free(&bm);
}

static void
test_reset_all_or_nothing(void **state)
{
    dw_bm_t         bm;
    dw_kv_event_t  *ev;
    size_t          n;
    uint32_t        a, b, c, d, dropped;

    (void) state;
    assert_int_equal(dw_bm_init(&bm, 8, 4, 1), 0);
    a = dw_bm_alloc(&bm);
    b = dw_bm_alloc(&bm);
    c = dw_bm_alloc(&bm);
    d = dw_bm_alloc(&bm);                     /* uncached, stays held */
    assert_int_equal(dw_bm_commit(&bm, a, 0, 0, 101, 1), 1);
    assert_int_equal(dw_bm_commit(&bm, b, 1, 101, 102, 2), 1);
    assert_int_equal(dw_bm_commit(&bm, c, 0, 0, 201, 3), 1);
    dw_bm_close_event(&bm);
    dw_bm_release(&bm, a);
    dw_bm_release(&bm, b);
    take_events(&bm, &ev, &n);
    free_events(ev, n);

    /* c is cached and referenced: refused, nothing changes */
    assert_int_equal(dw_bm_reset(&bm, &dropped), -1);
    assert_int_equal(dropped, 1);
    assert_int_equal(bm.n_ev, 0);
    assert_int_equal(bm.n_cached, 3);
    assert_int_equal(bm.n_lru, 2);
    assert_int_equal(dw_bm_lookup(&bm, 101), a);

    /* c released: all three dropped, d (uncached, held) untouched */
    dw_bm_release(&bm, c);
    assert_int_equal(dw_bm_reset(&bm, &dropped), 0);
    assert_int_equal(dropped, 3);
    assert_int_equal(bm.n_cached, 0);
    assert_int_equal(bm.n_lru, 0);
    assert_int_equal(bm.n_free, 7);
    assert_int_equal(bm.n_used, 1);
    assert_int_equal(dw_bm_lookup(&bm, 101), DW_BLK_NONE);
    assert_int_equal(dw_bm_lookup(&bm, 102), DW_BLK_NONE);
    assert_int_equal(dw_bm_lookup(&bm, 201), DW_BLK_NONE);
    take_events(&bm, &ev, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].type, KVR_EV_CLEARED);
    assert_int_equal(ev[0].n, 0);
    free_events(ev, n);

    /* the pool works on: the same hash can be committed (STORED) again,
       and nothing is evicted since every block is free */
    a = dw_bm_alloc(&bm);
    assert_int_equal(dw_bm_commit(&bm, a, 0, 0, 101, 1), 1);
    dw_bm_close_event(&bm);
    take_events(&bm, &ev, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].type, KVR_EV_STORED);
    free_events(ev, n);
    dw_bm_release(&bm, a);
    dw_bm_release(&bm, d);
    assert_int_equal(dw_bm_available(&bm), 8);
    dw_bm_free(&bm);
}

static void
test_no_events_when_disabled(void **state)
{
    dw_bm_t         bm;
    dw_kv_event_t  *ev;
    size_t          n;
    uint32_t        a;

    (void) state;
    assert_int_equal(dw_bm_init(&bm, 1, 4, 0), 0);
    a = dw_bm_alloc(&bm);
    assert_int_equal(dw_bm_commit(&bm, a, 0, 0, 5, 5), 1);
    dw_bm_release(&bm, a);
    a = dw_bm_alloc(&bm);      /* evicts */
    assert_int_equal(dw_bm_lookup(&bm, 5), DW_BLK_NONE);
    take_events(&bm, &ev, &n);
    assert_int_equal(n, 0);
    free(ev);
    dw_bm_release(&bm, a);
    dw_bm_free(&bm);
    assert_int_equal(dw_bm_init(&bm, 0, 4, 0), -1);
}

/*
 * Random operations against a model: per block its refs and cached hash,
 * plus the model's LRU order (a list of block ids) to predict victims.
 */
#define RN  32

typedef struct {
    uint32_t  ref[RN];
    uint64_t  hash[RN];     /* 0: uncached */
    uint32_t  lru[RN];      /* oldest first */
    uint32_t  n_lru;
    uint32_t  held[4 * RN]; /* references held by the "sequences" */
    uint32_t  n_held;
} model_t;

static void
model_lru_remove(model_t *m, uint32_t b)
{
    uint32_t  i;

    for (i = 0; i < m->n_lru; i++) {
        if (m->lru[i] == b) {
            memmove(&m->lru[i], &m->lru[i + 1],
                    (m->n_lru - i - 1) * sizeof(uint32_t));
            m->n_lru--;
            return;
        }
    }
    fail_msg("block %u not in model LRU", b);
}

static void
check_against(dw_bm_t *bm, model_t *m)
{
    uint32_t  i, used = 0, free_ = 0, cached = 0;

    for (i = 0; i < RN; i++) {
        assert_int_equal(bm->blk[i].ref, m->ref[i]);
        if (m->ref[i] > 0) {
            used++;
        } else if (m->hash[i] == 0) {
            free_++;
        }
        if (m->hash[i] != 0) {
            cached++;
            assert_int_equal(dw_bm_lookup(bm, m->hash[i]), i);
        }
    }
    assert_int_equal(bm->n_used, used);
    assert_int_equal(bm->n_free, free_);
    assert_int_equal(bm->n_lru, m->n_lru);
    assert_int_equal(bm->n_cached, cached);
    assert_int_equal(bm->n_used + bm->n_free + bm->n_lru, RN);
}

static void
test_random_against_model(void **state)
{
    dw_bm_t         bm;
    model_t         m;
    dw_kv_event_t  *ev;
    size_t          n, j;
    uint64_t        rs = 12345, h, r;
    uint32_t        op, b, i, k, victim;
    uint64_t        stored = 0, removed = 0;
    int             round;

    (void) state;
    for (round = 0; round < 20; round++) {
        assert_int_equal(dw_bm_init(&bm, RN, 4, 1), 0);
        memset(&m, 0, sizeof(m));
        for (op = 0; op < 3000; op++) {
            r = dw_splitmix64(&rs);
            switch (r % 4) {
            case 0:     /* alloc */
                if (m.n_held == 4 * RN) {
                    break;
                }
                victim = DW_BLK_NONE;
                k = 0;
                for (i = 0; i < RN; i++) {
                    k += (m.ref[i] == 0 && m.hash[i] == 0);
                }
                if (k == 0 && m.n_lru > 0) {
                    victim = m.lru[0];
                }
                b = dw_bm_alloc(&bm);
                if (k == 0 && m.n_lru == 0) {
                    assert_int_equal(b, DW_BLK_NONE);
                    break;
                }
                assert_int_not_equal(b, DW_BLK_NONE);
                if (victim != DW_BLK_NONE) {
                    assert_int_equal(b, victim);
                    model_lru_remove(&m, b);
                    m.hash[b] = 0;
                } else {
                    assert_int_equal(m.hash[b], 0);
                    assert_int_equal(m.ref[b], 0);
                }
                m.ref[b] = 1;
                m.held[m.n_held++] = b;
                break;
            case 1:     /* release a random held reference */
                if (m.n_held == 0) {
                    break;
                }
                i = (uint32_t) ((r >> 8) % m.n_held);
                b = m.held[i];
                m.held[i] = m.held[--m.n_held];
                dw_bm_release(&bm, b);
                if (--m.ref[b] == 0 && m.hash[b] != 0) {
                    m.lru[m.n_lru++] = b;
                }
                break;
            case 2:     /* commit a held block under a small hash space */
                if (m.n_held == 0) {
                    break;
                }
                b = m.held[(r >> 8) % m.n_held];
                h = 1 + (r >> 32) % 48;
                k = 0;
                for (i = 0; i < RN; i++) {
                    k += (m.hash[i] == h);
                }
                j = (size_t) dw_bm_commit(&bm, b, 0, 0, h, h);
                dw_bm_close_event(&bm);
                if (m.hash[b] != 0 || k > 0) {
                    assert_int_equal(j, 0);
                } else {
                    assert_int_equal(j, 1);
                    m.hash[b] = h;
                }
                break;
            case 3:     /* prefix hit on a random hash */
                h = 1 + (r >> 32) % 48;
                b = dw_bm_lookup(&bm, h);
                if (b == DW_BLK_NONE || m.n_held == 4 * RN) {
                    break;
                }
                dw_bm_ref(&bm, b);
                if (m.ref[b]++ == 0) {
                    model_lru_remove(&m, b);
                }
                m.held[m.n_held++] = b;
                break;
            }
            check_against(&bm, &m);
            take_events(&bm, &ev, &n);
            for (j = 0; j < n; j++) {
                if (ev[j].type == KVR_EV_STORED) {
                    stored += ev[j].n;
                } else {
                    removed += ev[j].n;
                }
            }
            free_events(ev, n);
        }
        /* release everything: no leaks */
        while (m.n_held > 0) {
            b = m.held[--m.n_held];
            dw_bm_release(&bm, b);
            if (--m.ref[b] == 0 && m.hash[b] != 0) {
                m.lru[m.n_lru++] = b;
            }
        }
        check_against(&bm, &m);
        assert_int_equal(bm.n_used, 0);
        assert_int_equal(dw_bm_available(&bm), RN);
        /* stored - removed = what is still cached */
        assert_true(stored - removed == bm.n_cached);
        stored = removed = 0;
        dw_bm_free(&bm);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refcounts_and_full_pool),
        cmocka_unit_test(test_prefix_hit_and_stored_events),
        cmocka_unit_test(test_lru_eviction_order),
        cmocka_unit_test(test_duplicate_stays_private),
        cmocka_unit_test(test_reset_all_or_nothing),
        cmocka_unit_test(test_no_events_when_disabled),
        cmocka_unit_test(test_random_against_model),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
