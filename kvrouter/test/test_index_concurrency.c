/*
 * Concurrency test of the prefix index: one writer thread churning blocks
 * and workers, reader threads checking invariants the whole time:
 *
 *   - no false holder: a reported overlap of o for worker w on query q
 *     means the writer stored q[0..o) for w at some point before (the
 *     writer marks ever[w][key] before applying the event);
 *   - no lost entry: a pinned chain stored before the readers start and
 *     never touched stays fully visible while neighbouring slots churn
 *     (tombstones, cleanup, reuse);
 *   - worker entries are never torn (fields written together read equal).
 *
 * At the end the index is compared with the writer's own model. Worker slots
 * >= 64 are used so bitmaps have two words. Runs KVR_TEST_SECONDS (default
 * 1.5) seconds. Also a race detector target:
 *   make SAN=thread B=build-tsan build-tsan/test/test_index_concurrency
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "kvr_err.h"
#include "kvr_index.h"
#include "support/index_events.h"

#define NCHURN     6
#define CHURN_ID   100
#define PINNED_ID  7
#define NDUMMY     64
#define POOL       1000
#define CHAIN      32
#define NREADERS   3
#define MAXRUN     24

static kvr_index_t       *g_idx;
static uint64_t           g_pool[POOL];
static uint64_t           g_chain[CHAIN];
static _Atomic uint8_t    g_ever[NCHURN][POOL];
static _Atomic int        g_stop;
static _Atomic uint64_t   g_checks, g_bad_holder, g_bad_pinned, g_bad_torn;
static _Atomic uint64_t   g_matches;

static double
now_s(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
test_seconds(void)
{
    const char  *e = getenv("KVR_TEST_SECONDS");
    double       v = e ? atof(e) : 0;

    return v > 0 ? v : 1.5;
}

/* ---- writer ---- */

typedef struct {
    uint8_t   held[NCHURN][POOL];   /* model */
    uint64_t  gen[NCHURN];
    uint64_t  next_id[NCHURN];
    double    seconds;
    uint64_t  ops;
    int       failed;
} writer_t;

static void
register_worker(writer_t *wr, unsigned w, uint64_t x)
{
    kvr_worker_info_t  info;

    memset(&info, 0, sizeof(info));
    info.worker_id = CHURN_ID + w;
    info.generation = wr->gen[w];
    info.capacity_blocks = x;
    snprintf(info.addr, sizeof(info.addr), "h%" PRIu64, x);
    info.load.running = (uint32_t) x;
    info.load.waiting = (uint32_t) x;
    info.load.active_blocks = x;
    info.load.queued_prefill_tokens = x;
    info.load.updated_ms = x;
    if (kvr_index_set_worker(g_idx, &info) != KVR_OK) {
        print_message("writer: set_worker %u failed\n", w);
        wr->failed = 1;
    }
}

static void *
writer_main(void *arg)
{
    writer_t    *wr = arg;
    uint64_t     s = 12345, r, keys[MAXRUN], x = 0;
    kvr_load_t   ld;
    double       end = now_s() + wr->seconds;
    size_t       j, len, i;
    unsigned     w, op;
    int          rc;

    while (now_s() < end) {
        for (op = 0; op < 256; op++, wr->ops++) {
            r = tu_rng(&s);
            w = (unsigned) (r % NCHURN);
            j = (size_t) ((r >> 8) % POOL);
            len = 1 + (size_t) ((r >> 20) % MAXRUN);
            if (j + len > POOL) {
                len = POOL - j;
            }
            for (i = 0; i < len; i++) {
                keys[i] = g_pool[j + i];
            }
            switch ((r >> 32) % 200) {
            case 0:                                 /* CLEARED */
                rc = tu_apply(g_idx, KVR_EV_CLEARED, CHURN_ID + w, wr->gen[w],
                           wr->next_id[w]++, NULL, 0);
                memset(wr->held[w], 0, POOL);
                break;
            case 1:                                 /* restart */
                rc = kvr_index_remove_worker(g_idx, CHURN_ID + w);
                memset(wr->held[w], 0, POOL);
                wr->gen[w]++;
                wr->next_id[w] = 1;
                register_worker(wr, w, ++x);
                break;
            case 2: case 3: case 4: case 5:
                register_worker(wr, w, ++x);
                rc = KVR_OK;
                break;
            case 6: case 7: case 8: case 9: case 10: case 11:
                x++;
                ld.running = (uint32_t) x;
                ld.waiting = (uint32_t) x;
                ld.active_blocks = x;
                ld.queued_prefill_tokens = x;
                ld.updated_ms = x;
                rc = kvr_index_set_load(g_idx, CHURN_ID + w, &ld);
                break;
            default:
                if ((r >> 40) % 5 < 3) {            /* STORED */
                    for (i = 0; i < len; i++) {
                        atomic_store_explicit(&g_ever[w][j + i], 1,
                                              memory_order_release);
                        wr->held[w][j + i] = 1;
                    }
                    rc = tu_apply(g_idx, KVR_EV_STORED, CHURN_ID + w,
                               wr->gen[w], wr->next_id[w]++, keys, len);
                } else {                            /* REMOVED */
                    for (i = 0; i < len; i++) {
                        wr->held[w][j + i] = 0;
                    }
                    rc = tu_apply(g_idx, KVR_EV_REMOVED, CHURN_ID + w,
                               wr->gen[w], wr->next_id[w]++, keys, len);
                }
                break;
            }
            if (rc != KVR_OK && !wr->failed) {
                print_message("writer: op %u on worker %u: %s\n",
                              (unsigned) ((r >> 32) % 200), w,
                              kvr_strerror(rc));
                wr->failed = 1;
            }
        }
    }
    atomic_store(&g_stop, 1);
    return NULL;
}

/* ---- readers ---- */

static int
info_consistent(const kvr_worker_info_t *wi)
{
    char  buf[KVR_ADDR_MAX];

    if (wi->addr[0] == '\0' && wi->capacity_blocks == 0
        && wi->load.active_blocks == 0)
    {
        buf[0] = '\0';                /* added by an event, not registered */
    } else {
        snprintf(buf, sizeof(buf), "h%" PRIu64, wi->capacity_blocks);
    }
    return wi->load.running == (uint32_t) wi->load.active_blocks
           && wi->load.waiting == (uint32_t) wi->load.active_blocks
           && wi->load.queued_prefill_tokens == wi->load.active_blocks
           && wi->load.updated_ms == wi->load.active_blocks
           && strcmp(wi->addr, buf) == 0;
}

static void *
reader_main(void *arg)
{
    uint64_t            s = (uint64_t) (uintptr_t) arg, r, checks = 0;
    kvr_match_t         m[NDUMMY + NCHURN + 8];
    kvr_worker_info_t   wi, all[NDUMMY + NCHURN + 8];
    size_t              k, i, t, j, len, n;
    uint64_t            w;
    int                 pinned;

    while (!atomic_load(&g_stop)) {
        r = tu_rng(&s);
        j = (size_t) (r % POOL);
        len = 1 + (size_t) ((r >> 20) % MAXRUN);
        if (j + len > POOL) {
            len = POOL - j;
        }
        k = kvr_index_find_matches(g_idx, &g_pool[j], len, m,
                                   sizeof(m) / sizeof(m[0]));
        atomic_fetch_add(&g_matches, k);
        for (i = 0; i < k; i++) {
            w = m[i].worker_id - CHURN_ID;
            if (w >= NCHURN || m[i].overlap_blocks > len
                || m[i].overlap_blocks == 0)
            {
                atomic_fetch_add(&g_bad_holder, 1);
                continue;
            }
            for (t = 0; t < m[i].overlap_blocks; t++) {
                if (!atomic_load_explicit(&g_ever[w][j + t],
                                          memory_order_acquire))
                {
                    atomic_fetch_add(&g_bad_holder, 1);
                    break;
                }
            }
        }

        k = kvr_index_find_matches(g_idx, g_chain, CHAIN, m,
                                   sizeof(m) / sizeof(m[0]));
        pinned = 0;
        for (i = 0; i < k; i++) {
            if (m[i].worker_id == PINNED_ID
                && m[i].overlap_blocks == CHAIN)
            {
                pinned = 1;
            }
        }
        if (!pinned) {
            atomic_fetch_add(&g_bad_pinned, 1);
        }

        if (kvr_index_get_worker(g_idx, CHURN_ID + (r >> 40) % NCHURN, &wi)
            == KVR_OK && !info_consistent(&wi))
        {
            atomic_fetch_add(&g_bad_torn, 1);
        }
        if ((r >> 50) % 64 == 0) {
            n = kvr_index_workers(g_idx, all, sizeof(all) / sizeof(all[0]));
            for (i = 0; i < n; i++) {
                if (all[i].worker_id >= CHURN_ID
                    && all[i].worker_id < CHURN_ID + NCHURN
                    && !info_consistent(&all[i]))
                {
                    atomic_fetch_add(&g_bad_torn, 1);
                }
            }
        }
        checks++;
    }
    atomic_fetch_add(&g_checks, checks);
    return NULL;
}

static void
test_one_writer_many_readers(void **state)
{
    kvr_index_config_t  cfg = { NDUMMY + NCHURN + 2, 1400 };
    kvr_index_stats_t   st;
    kvr_match_t         m[NDUMMY + NCHURN + 8];
    pthread_t           wt, rt[NREADERS];
    writer_t           *wr;
    void               *mem;
    size_t              len = kvr_index_size(&cfg), i, k, q;
    uint64_t            s = 777, cnt;
    unsigned            w;

    mem = malloc(len);
    wr = calloc(1, sizeof(*wr));
    assert_non_null(mem);
    assert_non_null(wr);
    g_idx = kvr_index_init(mem, len, &cfg);
    assert_non_null(g_idx);

    for (i = 0; i < POOL; i++) {
        g_pool[i] = tu_rng(&s);
    }
    for (i = 0; i < CHAIN; i++) {
        g_chain[i] = tu_rng(&s);
    }
    /* dummies take worker slots 0..63: the churned ones land in word 1 */
    for (i = 0; i < NDUMMY; i++) {
        assert_int_equal(tu_apply(g_idx, KVR_EV_CLEARED, 1000 + i, 1, 1, NULL,
                               0), KVR_OK);
    }
    assert_int_equal(tu_apply(g_idx, KVR_EV_STORED, PINNED_ID, 1, 1, g_chain,
                           CHAIN / 2), KVR_OK);
    assert_int_equal(tu_apply(g_idx, KVR_EV_STORED, PINNED_ID, 1, 2,
                           g_chain + CHAIN / 2, CHAIN / 2), KVR_OK);
    for (w = 0; w < NCHURN; w++) {
        wr->gen[w] = 1;
        wr->next_id[w] = 1;
        register_worker(wr, w, 0);
    }
    wr->seconds = test_seconds();

    atomic_store(&g_stop, 0);
    for (i = 0; i < NREADERS; i++) {
        assert_int_equal(pthread_create(&rt[i], NULL, reader_main,
                                        (void *) (uintptr_t) (i + 1)), 0);
    }
    assert_int_equal(pthread_create(&wt, NULL, writer_main, wr), 0);
    pthread_join(wt, NULL);
    for (i = 0; i < NREADERS; i++) {
        pthread_join(rt[i], NULL);
    }

    kvr_index_stats(g_idx, &st);
    print_message("writer ops %" PRIu64 ", reader checks %" PRIu64
                  ", matches %" PRIu64 ", blocks %" PRIu64 ", evictions %"
                  PRIu64 "\n", wr->ops, atomic_load(&g_checks),
                  atomic_load(&g_matches), st.blocks, st.evictions);
    assert_false(wr->failed);
    assert_int_equal(atomic_load(&g_bad_holder), 0);
    assert_int_equal(atomic_load(&g_bad_pinned), 0);
    assert_int_equal(atomic_load(&g_bad_torn), 0);
    assert_true(atomic_load(&g_checks) > 0);
    assert_int_equal(st.evictions, 0);

    /* quiescent: the index equals the writer's model */
    for (q = 0; q < POOL; q++) {
        k = kvr_index_find_matches(g_idx, &g_pool[q], 1, m,
                                   sizeof(m) / sizeof(m[0]));
        cnt = 0;
        for (w = 0; w < NCHURN; w++) {
            cnt += wr->held[w][q];
        }
        assert_int_equal(k, cnt);
        for (i = 0; i < k; i++) {
            assert_true(m[i].worker_id >= CHURN_ID);
            assert_true(wr->held[m[i].worker_id - CHURN_ID][q]);
        }
    }
    for (w = 0; w < NCHURN; w++) {
        cnt = 0;
        for (q = 0; q < POOL; q++) {
            cnt += wr->held[w][q];
        }
        assert_int_equal(kvr_index_worker_blocks(g_idx, CHURN_ID + w), cnt);
    }
    free(wr);
    free(mem);
}

/*
 * Writer in one process, reader in another mapping the same region at a
 * different address (a file mapped twice, as nginx workers map a zone).
 */
static void
test_two_processes(void **state)
{
    kvr_index_config_t   cfg = { 4, 1000 };
    size_t               len = kvr_index_size(&cfg);
    FILE                *tf = tmpfile();
    void                *a, *b;
    kvr_index_t         *idx;
    kvr_match_t          m[4];
    uint64_t             keys[8], s = 3;
    pid_t                pid;
    int                  status, i;

    assert_non_null(tf);
    assert_int_equal(ftruncate(fileno(tf), (off_t) len), 0);
    a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fileno(tf), 0);
    assert_true(a != MAP_FAILED);
    idx = kvr_index_init(a, len, &cfg);
    assert_non_null(idx);
    for (i = 0; i < 8; i++) {
        keys[i] = tu_rng(&s);
    }

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* child: the writer, through its own mapping */
        void         *c = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
                               fileno(tf), 0);
        kvr_index_t  *ci = c != MAP_FAILED ? kvr_index_attach(c, len) : NULL;

        _exit(ci == NULL
              || tu_apply(ci, KVR_EV_STORED, 5, 1, 1, keys, 8) != KVR_OK
              || tu_apply(ci, KVR_EV_REMOVED, 5, 1, 2, keys + 6, 1) != KVR_OK);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fileno(tf), 0);
    assert_true(b != MAP_FAILED);
    idx = kvr_index_attach(b, len);
    assert_non_null(idx);
    assert_int_equal(kvr_index_find_matches(idx, keys, 8, m, 4), 1);
    assert_int_equal(m[0].worker_id, 5);
    assert_int_equal(m[0].overlap_blocks, 6);
    munmap(a, len);
    munmap(b, len);
    fclose(tf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_processes),
        cmocka_unit_test(test_one_writer_many_readers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
