/*
 * Integration tests: publishers and a sync reader against a real,
 * throwaway redis-server. The reader's index must answer find_matches
 * exactly like a model kept by the test, whatever happens in between:
 * restarts of workers and of Redis, trimmed streams, expired workers,
 * concurrent publishing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <cmocka.h>

#include <hiredis/hiredis.h>

#include "kvr_err.h"
#include "kvr_hash.h"
#include "kvr_index.h"
#include "kvr_redis.h"
#include "../src/kvr_redis_int.h"
#include "support/redis_server.h"

#define NS          "integ"
#define NWORKERS    4
#define NDOCS       12
#define DOCLEN      10          /* blocks per document chain */
#define MAXSET      (NDOCS * DOCLEN)

static redis_server_t  srv;
static redisContext   *ctl;     /* the test's own connection */
static pid_t           child;   /* concurrent publisher, if running */

/* ---- model: per worker, a set of seq hashes ---- */

typedef struct {
    uint64_t  id;
    uint64_t  blocks[MAXSET];
    size_t    n;
} model_t;

static uint64_t  doc[NDOCS][DOCLEN];   /* seq hashes, shared prefixes */

static void
make_docs(void)
{
    size_t    d, i;
    uint64_t  parent, local;

    /* docs in groups of three share their first two blocks, so prefix
       matches differ between workers in interesting ways */
    for (d = 0; d < NDOCS; d++) {
        parent = 0;
        for (i = 0; i < DOCLEN; i++) {
            local = (i < 2 ? d / 3 : d) * 1000 + i + 1;
            doc[d][i] = i == 0 ? local : kvr_hash_seq(parent, local);
            parent = doc[d][i];
        }
    }
}

static int
model_has(const model_t *m, uint64_t v)
{
    size_t  i;

    for (i = 0; i < m->n; i++) {
        if (m->blocks[i] == v) {
            return 1;
        }
    }
    return 0;
}

static void
model_add(model_t *m, uint64_t v)
{
    if (!model_has(m, v)) {
        assert_true(m->n < MAXSET);
        m->blocks[m->n++] = v;
    }
}

static void
model_del(model_t *m, uint64_t v)
{
    size_t  i;

    for (i = 0; i < m->n; i++) {
        if (m->blocks[i] == v) {
            m->blocks[i] = m->blocks[--m->n];
            return;
        }
    }
}

/* ---- plumbing ---- */

static uint64_t
now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void
kill_child(void)
{
    int  st;

    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, &st, 0);
        child = 0;
    }
}

static int
group_setup(void **state)
{
    (void) state;
    make_docs();
    atexit(kill_child);
    if (redis_server_start(&srv) != 0) {
        fprintf(stderr, "cannot start redis-server\n");
        return -1;
    }
    return 0;
}

static int
group_teardown(void **state)
{
    (void) state;
    kill_child();
    redis_server_stop(&srv);
    return 0;
}

typedef struct {
    void         *mem;
    kvr_index_t  *idx;
    kvr_sync_t   *sync;
    redisContext *rc;            /* the reader's connection */
} reader_t;

static reader_t  rd;

static int
setup(void **state)
{
    kvr_index_config_t  icfg = { 16, 1 << 16 };
    kvr_sync_config_t   scfg;
    redisReply         *r;
    size_t              len;

    (void) state;
    if (srv.pid == 0 && redis_server_restart(&srv) != 0) {
        return -1;                      /* a failed test left it stopped */
    }
    ctl = redis_server_connect(&srv);
    if (ctl == NULL) {
        return -1;
    }
    r = redisCommand(ctl, "FLUSHALL");
    if (r == NULL) {
        return -1;
    }
    freeReplyObject(r);

    len = kvr_index_size(&icfg);
    rd.mem = aligned_alloc(64, (len + 63) / 64 * 64);
    rd.idx = rd.mem ? kvr_index_init(rd.mem, len, &icfg) : NULL;
    kvr_sync_config_defaults(&scfg);
    scfg.ns = NS;
    scfg.batch = 16;                    /* several reads per catch-up */
    scfg.stream_poll_ms = 0;
    scfg.registry_poll_ms = 0;          /* every round: tests see at once */
    scfg.retry_ms = 1;
    rd.sync = rd.idx ? kvr_sync_create(&scfg, rd.idx) : NULL;
    rd.rc = redis_server_connect(&srv);
    return rd.sync && rd.rc ? 0 : -1;
}

static int
teardown(void **state)
{
    (void) state;
    kill_child();
    kvr_sync_destroy(rd.sync);
    free(rd.mem);
    if (rd.rc) {
        redisFree(rd.rc);
    }
    if (ctl) {
        redisFree(ctl);
    }
    memset(&rd, 0, sizeof(rd));
    ctl = NULL;
    return 0;
}

static kvr_pub_t *
mkpub(uint64_t id, uint64_t gen, uint32_t alive_ttl_ms, uint32_t maxlen)
{
    kvr_pub_config_t  cfg;
    kvr_pub_t        *p;

    kvr_pub_config_defaults(&cfg);
    cfg.ns = NS;
    cfg.worker_id = id;
    cfg.generation = gen;
    cfg.role = KVR_ROLE_BOTH;
    cfg.addr = "127.0.0.1:7000";
    cfg.block_size = 16;
    cfg.capacity_blocks = MAXSET;
    if (alive_ttl_ms) {
        cfg.alive_ttl_ms = alive_ttl_ms;
    }
    cfg.stream_maxlen = maxlen;
    p = kvr_pub_create(&cfg);
    assert_non_null(p);
    return p;
}

static uint64_t
redis_evseq(void)
{
    char         k[KVR_REDIS_KEY_MAX];
    redisReply  *r;
    uint64_t     v = 0;

    kvr_redis_key(k, sizeof(k), NS, "evseq", 0, 0);
    r = redisCommand(ctl, "GET %s", k);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_STRING) {
        assert_int_equal(kvr_redis_parse_u64(r->str, r->len, &v), KVR_OK);
    }
    freeReplyObject(r);
    return v;
}

/* Runs the reader until it has read everything Redis holds. */
static void
converge(void)
{
    kvr_sync_stats_t  st;
    uint64_t          deadline = now_ms() + 5000, e0;

    for ( ;; ) {
        e0 = kvr__sync_empty_reads(rd.sync);
        if (kvr_sync_run_once(rd.sync, rd.rc, now_ms()) != KVR_OK) {
            assert_int_equal(redisReconnect(rd.rc), REDIS_OK);
            continue;
        }
        kvr_sync_stats(rd.sync, &st);
        if (kvr__sync_empty_reads(rd.sync) != e0
            && st.stream_seq == redis_evseq())
        {
            return;
        }
        if (now_ms() > deadline) {
            fail_msg("reader did not converge: seq %llu/%llu, errors %llu,"
                     " full %llu, gaps %llu, empty %llu: %s",
                     (unsigned long long) st.stream_seq,
                     (unsigned long long) redis_evseq(),
                     (unsigned long long) st.errors,
                     (unsigned long long) st.full_resyncs,
                     (unsigned long long) st.gaps,
                     (unsigned long long) kvr__sync_empty_reads(rd.sync),
                     kvr_sync_last_error(rd.sync));
        }
        usleep(1000);
    }
}

/* One random event on worker w (publisher p, model m). */
static void
random_event(kvr_pub_t *p, redisContext *c, model_t *m, unsigned *rnd,
    int expect_ok)
{
    kvr_block_t  b[DOCLEN];
    uint64_t     rm[DOCLEN];
    size_t       d, k, i, n;
    int          rc, op;

    *rnd = *rnd * 1103515245u + 12345u;
    op = (int) ((*rnd >> 16) % 10);
    d = (*rnd >> 8) % NDOCS;
    k = 1 + (*rnd >> 20) % DOCLEN;

    if (op < 6) {                       /* store a prefix of a document */
        for (i = 0; i < k; i++) {
            b[i].seq = doc[d][i];
            b[i].local = i;
            model_add(m, doc[d][i]);
        }
        rc = kvr_pub_stored(p, c, 0, 0, b, k);
    } else if (op < 9) {                /* evict a tail */
        n = 0;
        for (i = DOCLEN - k; i < DOCLEN; i++) {
            rm[n++] = doc[d][i];
            model_del(m, doc[d][i]);
        }
        rc = kvr_pub_removed(p, c, rm, n);
    } else if (((*rnd >> 4) & 15) == 0) {
        m->n = 0;
        rc = kvr_pub_cleared(p, c);
    } else {
        kvr_load_t  load = { 1, 2, m->n, 0, now_ms() };

        rc = kvr_pub_heartbeat(p, c, &load);
    }
    if (expect_ok) {
        assert_int_equal(rc, KVR_OK);
    }
}

/* Expected overlap of worker m for a query. */
static uint32_t
model_overlap(const model_t *m, const uint64_t *q, size_t n)
{
    uint32_t  o = 0;

    while (o < n && model_has(m, q[o])) {
        o++;
    }
    return o;
}

static void
check_query(const model_t *models, size_t nm, const uint64_t *q, size_t n)
{
    kvr_match_t  out[NWORKERS + 4];
    size_t       got, i, j, want = 0;
    uint32_t     o;

    got = kvr_index_find_matches(rd.idx, q, n, out, NWORKERS + 4);
    for (i = 0; i < nm; i++) {
        o = model_overlap(&models[i], q, n);
        if (o == 0) {
            continue;
        }
        want++;
        for (j = 0; j < got; j++) {
            if (out[j].worker_id == models[i].id) {
                break;
            }
        }
        if (j == got) {
            fail_msg("worker %llu (overlap %u) missing from matches",
                     (unsigned long long) models[i].id, o);
        }
        assert_int_equal(out[j].overlap_blocks, o);
    }
    assert_int_equal(got, want);
}

/* The index equals the models: every document and every tail of one as a
   query, and per-worker block counts. */
static void
check_index(const model_t *models, size_t nm)
{
    size_t  d, i;

    for (d = 0; d < NDOCS; d++) {
        for (i = 0; i < DOCLEN; i++) {
            check_query(models, nm, doc[d] + i, DOCLEN - i);
        }
    }
    for (i = 0; i < nm; i++) {
        assert_int_equal(kvr_index_worker_blocks(rd.idx, models[i].id),
                         models[i].n);
    }
}

static void
check_mirror(kvr_pub_t *p, const model_t *m)
{
    size_t  i;

    assert_int_equal(kvr_pub_mirror_count(p), m->n);
    for (i = 0; i < m->n; i++) {
        assert_true(kvr_pub_mirror_has(p, m->blocks[i]));
    }
}

/* (1) Several publishers, random events, a reader that joins late and
   reads in between: it converges to the model. */
static void
test_converge(void **state)
{
    kvr_pub_t         *p[NWORKERS];
    model_t            m[NWORKERS];
    kvr_sync_stats_t   st;
    unsigned           rnd = 42;
    int                i, k;

    (void) state;
    memset(m, 0, sizeof(m));
    for (i = 0; i < NWORKERS; i++) {
        m[i].id = 100 + (uint64_t) i;
        p[i] = mkpub(m[i].id, 1, 0, 0);
        assert_int_equal(kvr_pub_register(p[i], ctl), KVR_OK);
    }
    for (k = 0; k < 600; k++) {
        i = (int) ((rnd >> 3) % NWORKERS);
        random_event(p[i], ctl, &m[i], &rnd, 1);
        if (k == 200) {
            converge();                 /* joins: snapshot, then stream */
            check_index(m, NWORKERS);
        } else if (k > 200 && (rnd & 31) == 0) {
            kvr_sync_run_once(rd.sync, rd.rc, now_ms());
        }
    }
    converge();
    check_index(m, NWORKERS);
    for (i = 0; i < NWORKERS; i++) {
        check_mirror(p[i], &m[i]);
        kvr_pub_destroy(p[i]);
    }
    kvr_sync_stats(rd.sync, &st);
    assert_true(st.events_applied > 100);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.gaps, 0);
    assert_int_equal(st.full_resyncs, 1);
    /* one snapshot per worker at the start, none after: every event
       applied cleanly (a lost event would cost a resync) */
    assert_int_equal(st.snapshots, NWORKERS);
    assert_int_equal(st.workers, NWORKERS);
}

/* (2) A worker restarts (new generation): its old blocks go, new ones
   come, whether the reader follows live or catches up afterwards. */
static void
test_worker_restart(void **state)
{
    kvr_pub_t          *a, *b, *a2;
    model_t             m[2];
    kvr_worker_info_t   info;
    kvr_block_t         blk[DOCLEN];
    size_t              i, round;

    (void) state;
    for (round = 0; round < 2; round++) {
        memset(m, 0, sizeof(m));
        m[0].id = 1;
        m[1].id = 2;
        a = mkpub(1, 10 + round * 2, 0, 0);
        b = mkpub(2, 10, 0, 0);
        assert_int_equal(kvr_pub_register(a, ctl), KVR_OK);
        assert_int_equal(kvr_pub_register(b, ctl), KVR_OK);
        for (i = 0; i < DOCLEN; i++) {
            blk[i].seq = doc[0][i];
            blk[i].local = 0;
            model_add(&m[0], doc[0][i]);
            model_add(&m[1], doc[0][i]);
        }
        assert_int_equal(kvr_pub_stored(a, ctl, 0, 0, blk, DOCLEN), KVR_OK);
        assert_int_equal(kvr_pub_stored(b, ctl, 0, 0, blk, DOCLEN), KVR_OK);
        if (round == 0) {
            converge();
            check_index(m, 2);
        }

        /* worker 1 dies without a word and comes back empty */
        kvr_pub_destroy(a);
        a2 = mkpub(1, 11 + round * 2, 0, 0);
        assert_int_equal(kvr_pub_register(a2, ctl), KVR_OK);
        m[0].n = 0;
        for (i = 0; i < 3; i++) {
            blk[i].seq = doc[5][i];
            model_add(&m[0], doc[5][i]);
        }
        assert_int_equal(kvr_pub_stored(a2, ctl, 0, 0, blk, 3), KVR_OK);

        converge();
        check_index(m, 2);
        assert_int_equal(kvr_index_get_worker(rd.idx, 1, &info), KVR_OK);
        assert_true(info.generation == 11 + round * 2);
        assert_true(info.last_event_id == 1);
        kvr_pub_destroy(a2);
        kvr_pub_destroy(b);
        if (round == 0) {
            redisReply  *r = redisCommand(ctl, "FLUSHALL");

            freeReplyObject(r);
        }
    }
}

/* (3) The stream is trimmed while the reader is behind: it notices the
   gap, resyncs fully and converges. Three ways: XTRIM by hand, trimmed to
   nothing, and the publisher's own MAXLEN. */
static void
test_trimmed_stream(void **state)
{
    kvr_pub_t         *p[2];
    model_t            m[2];
    kvr_sync_stats_t   st0, st;
    unsigned           rnd = 7;
    int                i, k, way;
    char               key[KVR_REDIS_KEY_MAX];
    redisReply        *r;

    (void) state;
    kvr_redis_key(key, sizeof(key), NS, "events", 0, 0);
    memset(m, 0, sizeof(m));
    for (i = 0; i < 2; i++) {
        m[i].id = 50 + (uint64_t) i;
        /* approximate MAXLEN keeps whole 100-entry nodes: 1 trims hard */
        p[i] = mkpub(m[i].id, 1, 0, 1);
        assert_int_equal(kvr_pub_register(p[i], ctl), KVR_OK);
    }
    converge();

    for (way = 0; way < 3; way++) {
        kvr_sync_stats(rd.sync, &st0);
        for (k = 0; k < 300; k++) {
            i = (int) ((rnd >> 3) & 1);
            random_event(p[i], ctl, &m[i], &rnd, 1);
        }
        if (way == 0) {
            r = redisCommand(ctl, "XTRIM %s MAXLEN 5", key);
            freeReplyObject(r);
        } else if (way == 1) {
            r = redisCommand(ctl, "XTRIM %s MAXLEN 0", key);
            freeReplyObject(r);
        }
        r = redisCommand(ctl, "XLEN %s", key);
        assert_true(r->integer < 300);  /* really trimmed */
        freeReplyObject(r);

        converge();
        kvr_sync_stats(rd.sync, &st);
        assert_true(st.gaps > st0.gaps);
        assert_true(st.full_resyncs > st0.full_resyncs);
        check_index(m, 2);
    }
    assert_int_equal(st.errors, 0);
    kvr_pub_destroy(p[0]);
    kvr_pub_destroy(p[1]);
}

/* (4) Redis restarts (no persistence: everything is lost) mid-stream.
   Publishers keep publishing into the void, then reconnect and register;
   the reader reconnects; nothing is lost. Then the same with FLUSHALL,
   which the reader sees through the epoch without a disconnect. */
static void
test_redis_restart(void **state)
{
    kvr_pub_t         *p[3];
    redisContext      *pc;
    model_t            m[3];
    kvr_sync_stats_t   st;
    unsigned           rnd = 99;
    int                i, k, rc;
    redisReply        *r;

    (void) state;
    pc = redis_server_connect(&srv);
    assert_non_null(pc);
    memset(m, 0, sizeof(m));
    for (i = 0; i < 3; i++) {
        m[i].id = 70 + (uint64_t) i;
        p[i] = mkpub(m[i].id, 5, 0, 0);
        assert_int_equal(kvr_pub_register(p[i], pc), KVR_OK);
    }
    for (k = 0; k < 100; k++) {
        random_event(p[k % 3], pc, &m[k % 3], &rnd, 1);
    }
    converge();
    check_index(m, 3);

    redisFree(ctl);
    ctl = NULL;
    redis_server_stop(&srv);
    for (k = 0; k < 100; k++) {
        random_event(p[k % 3], pc, &m[k % 3], &rnd, 0);
    }
    for (i = 0; i < 3; i++) {
        assert_true(kvr_pub_needs_register(p[i]));
        check_mirror(p[i], &m[i]);
    }
    rc = kvr_sync_run_once(rd.sync, rd.rc, now_ms());
    assert_int_equal(rc, KVR_ERR_REDIS);

    assert_int_equal(redis_server_restart(&srv), 0);
    ctl = redis_server_connect(&srv);
    assert_non_null(ctl);
    assert_int_equal(redisReconnect(pc), REDIS_OK);
    assert_int_equal(redisReconnect(rd.rc), REDIS_OK);
    /* the reader may look before the workers are back: fine */
    assert_int_equal(kvr_sync_run_once(rd.sync, rd.rc, now_ms()), KVR_OK);
    for (i = 0; i < 3; i++) {
        assert_int_equal(kvr_pub_register(p[i], pc), KVR_OK);
    }
    for (k = 0; k < 100; k++) {
        random_event(p[k % 3], pc, &m[k % 3], &rnd, 1);
    }
    converge();
    check_index(m, 3);
    kvr_sync_stats(rd.sync, &st);
    assert_true(st.disconnects >= 1);

    /* FLUSHALL: no disconnect, the epoch changes */
    r = redisCommand(ctl, "FLUSHALL");
    freeReplyObject(r);
    for (k = 0; k < 30; k++) {
        random_event(p[k % 3], pc, &m[k % 3], &rnd, 0);
    }
    for (i = 0; i < 3; i++) {
        if (kvr_pub_needs_register(p[i])) {
            assert_int_equal(kvr_pub_register(p[i], pc), KVR_OK);
        }
    }
    converge();
    check_index(m, 3);
    kvr_sync_stats(rd.sync, &st);
    assert_true(st.restarts >= 1);

    for (i = 0; i < 3; i++) {
        check_mirror(p[i], &m[i]);
        kvr_pub_destroy(p[i]);
    }
    redisFree(pc);
}

/* (5) A worker whose alive key expires leaves the index; its heartbeat
   brings it back with its blocks. */
static void
test_alive_expiry(void **state)
{
    kvr_pub_t          *a, *b;
    model_t             m[2];
    kvr_block_t         blk[3];
    kvr_worker_info_t   info;
    kvr_sync_stats_t    st;
    kvr_load_t          load = { 4, 0, 3, 0, 1 };
    size_t              i;

    (void) state;
    memset(m, 0, sizeof(m));
    m[0].id = 500;
    m[1].id = 501;
    a = mkpub(500, 1, 150, 0);
    b = mkpub(501, 1, 60000, 0);
    assert_int_equal(kvr_pub_register(a, ctl), KVR_OK);
    assert_int_equal(kvr_pub_register(b, ctl), KVR_OK);
    for (i = 0; i < 3; i++) {
        blk[i].seq = doc[1][i];
        blk[i].local = 0;
        model_add(&m[0], doc[1][i]);
        model_add(&m[1], doc[1][i]);
    }
    assert_int_equal(kvr_pub_stored(a, ctl, 0, 0, blk, 3), KVR_OK);
    assert_int_equal(kvr_pub_stored(b, ctl, 0, 0, blk, 3), KVR_OK);
    assert_int_equal(kvr_pub_heartbeat(a, ctl, &load), KVR_OK);
    converge();
    check_index(m, 2);
    assert_int_equal(kvr_index_get_worker(rd.idx, 500, &info), KVR_OK);
    assert_int_equal(info.load.running, 4);

    usleep(300 * 1000);                 /* a stops heartbeating */
    converge();
    assert_int_equal(kvr_index_get_worker(rd.idx, 500, &info),
                     KVR_ERR_NOTFOUND);
    check_index(m + 1, 1);
    check_query(m + 1, 1, doc[1], 3);   /* only b matches now */
    kvr_sync_stats(rd.sync, &st);
    assert_true(st.workers_removed >= 1);
    assert_int_equal(st.workers, 1);

    /* it was only late: the next heartbeat revives it, blocks and all */
    assert_int_equal(kvr_pub_heartbeat(a, ctl, &load), KVR_OK);
    converge();
    check_index(m, 2);
    kvr_pub_destroy(a);
    kvr_pub_destroy(b);
}

/* (6) Atomicity. Worker 900 stores block k as its event k, one block per
   event, so its set must be exactly {1..cursor} in every snapshot. A child
   process publishes in chunks, each one started by the test, which then
   reads a snapshot with the reader's script and runs the reader while the
   chunk is being written; every snapshot and every reader state must
   satisfy the rule. Every few chunks the child re-registers, so the reader
   also loads worker snapshots mid-stream. */
#define CHUNKS      60
#define CHUNK       50

/* Frees what the child inherited and built, so a leak checker that also
   follows forks (valgrind) sees a clean exit. */
static void
child_exit(int code, redisContext *c, kvr_pub_t *p)
{
    if (c) {
        redisFree(c);
    }
    kvr_pub_destroy(p);
    kvr_sync_destroy(rd.sync);
    free(rd.mem);
    if (rd.rc) {
        redisFree(rd.rc);
    }
    if (ctl) {
        redisFree(ctl);
    }
    _exit(code);
}

static void
child_publish(int port, int go, int done)
{
    redisContext  *c = redisConnect("127.0.0.1", port);
    kvr_pub_t     *p = mkpub(900, 3, 0, 0);
    kvr_block_t    b;
    uint64_t       k = 0;
    int            i, j;
    char           t;

    if (c == NULL || c->err || kvr_pub_register(p, c) != KVR_OK) {
        child_exit(2, c, p);
    }
    for (i = 0; i < CHUNKS; i++) {
        if (read(go, &t, 1) != 1) {
            child_exit(4, c, p);
        }
        for (j = 0; j < CHUNK; j++) {
            b.seq = ++k;
            b.local = 0;
            if (kvr_pub_stored(p, c, 0, 0, &b, 1) != KVR_OK) {
                child_exit(3, c, p);
            }
        }
        if (i % 10 == 9 && kvr_pub_register(p, c) != KVR_OK) {
            child_exit(5, c, p);
        }
        if (write(done, "d", 1) != 1) {
            child_exit(4, c, p);
        }
    }
    child_exit(0, c, p);
}

static void
check_snapshot_raw(uint64_t *last_seen)
{
    char         kw[KVR_REDIS_KEY_MAX], kb[KVR_REDIS_KEY_MAX];
    char         ka[KVR_REDIS_KEY_MAX], ke[KVR_REDIS_KEY_MAX];
    redisReply  *r, *mem;
    uint64_t     last, v, max = 0;
    size_t       i;

    kvr_redis_key(kw, sizeof(kw), NS, "w:", 1, 900);
    kvr_redis_key(kb, sizeof(kb), NS, "blocks:", 1, 900);
    kvr_redis_key(ka, sizeof(ka), NS, "alive:", 1, 900);
    kvr_redis_key(ke, sizeof(ke), NS, "evseq", 0, 0);
    r = redisCommand(ctl, "EVAL %s 4 %s %s %s %s", kvr_redis_lua_snapshot,
                     kw, kb, ka, ke);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    if (r->elements == 1) {             /* not registered yet */
        freeReplyObject(r);
        return;
    }
    assert_int_equal(r->elements, 9);
    assert_int_equal(kvr_redis_parse_u64(r->element[2]->str,
                                         r->element[2]->len, &last), KVR_OK);
    mem = r->element[8];
    assert_int_equal(mem->elements, last);
    for (i = 0; i < mem->elements; i++) {
        v = kvr_redis_get_le64((const uint8_t *) mem->element[i]->str);
        assert_true(v >= 1 && v <= last);
        max = v > max ? v : max;
    }
    assert_true(max == last);
    *last_seen = last;
    freeReplyObject(r);
}

static void
check_reader_900(void)
{
    kvr_worker_info_t  info;

    if (kvr_index_get_worker(rd.idx, 900, &info) == KVR_OK) {
        assert_int_equal(kvr_index_worker_blocks(rd.idx, 900),
                         info.last_event_id);
    }
}

static void
test_atomic_snapshots(void **state)
{
    kvr_sync_stats_t  st;
    uint64_t          last = 0;
    int               go[2], done[2], stat, i;
    char              t;

    (void) state;
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(done), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
        close(go[1]);
        close(done[0]);
        child_publish(srv.port, go[0], done[1]);
    }
    close(go[0]);
    close(done[1]);

    for (i = 0; i < CHUNKS; i++) {
        assert_int_equal(write(go[1], "g", 1), 1);
        /* the chunk is being written now */
        check_snapshot_raw(&last);
        kvr_sync_run_once(rd.sync, rd.rc, now_ms());
        check_reader_900();
        check_snapshot_raw(&last);
        assert_int_equal(read(done[0], &t, 1), 1);
        kvr_sync_run_once(rd.sync, rd.rc, now_ms());
        check_reader_900();
    }
    close(go[1]);
    close(done[0]);
    waitpid(child, &stat, 0);
    child = 0;
    if (!WIFEXITED(stat) || WEXITSTATUS(stat) != 0) {
        fail_msg("publisher child failed: status 0x%x", stat);
    }

    check_snapshot_raw(&last);
    assert_true(last == CHUNKS * CHUNK);
    converge();
    check_reader_900();
    assert_int_equal(kvr_index_worker_blocks(rd.idx, 900), CHUNKS * CHUNK);
    kvr_sync_stats(rd.sync, &st);
    assert_true(st.snapshots >= 2);     /* the re-registers were followed */
    assert_int_equal(st.errors, 0);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_converge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trimmed_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alive_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_snapshots, setup,
                                        teardown),
    };

    if (!redis_server_available()) {
        fprintf(stderr, "redis-server not installed\n");
        return 1;
    }
    return cmocka_run_group_tests_name("redis_integ", tests, group_setup,
                                       group_teardown);
}
