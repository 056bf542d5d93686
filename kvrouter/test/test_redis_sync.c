/*
 * Unit tests of the sync reader's state machine, driven by hand-built
 * redisReply trees: the command sequence, and every kind of malformed reply
 * (wrong types, short arrays, error replies, bad numbers, undecodable
 * events). Each must give a clear error, never crash, and leave a machine
 * that recovers through a resync. No Redis needed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>

#include "kvr_err.h"
#include "kvr_event.h"
#include "kvr_index.h"
#include "kvr_redis.h"
#include "../src/kvr_redis_int.h"

#define EVKEY  "dyn:v1:t:events"

/* ---- reply builders (freed with rfree) ---- */

static redisReply *
R(int type)
{
    redisReply  *r = calloc(1, sizeof(*r));

    assert_non_null(r);
    r->type = type;
    return r;
}

static redisReply *
SB(int type, const void *p, size_t len)
{
    redisReply  *r = R(type);

    r->str = malloc(len + 1);
    assert_non_null(r->str);
    memcpy(r->str, p, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static redisReply *
S(const char *s)
{
    return SB(REDIS_REPLY_STRING, s, strlen(s));
}

static redisReply *
E(const char *s)
{
    return SB(REDIS_REPLY_ERROR, s, strlen(s));
}

static redisReply *
I(long long v)
{
    redisReply  *r = R(REDIS_REPLY_INTEGER);

    r->integer = v;
    return r;
}

static redisReply *
NIL(void)
{
    return R(REDIS_REPLY_NIL);
}

/* An array of n elements (given as varargs; NULL elements allowed). */
static redisReply *
A(size_t n, ...)
{
    redisReply  *r = R(REDIS_REPLY_ARRAY);
    va_list      ap;
    size_t       i;

    r->elements = n;
    r->element = n ? calloc(n, sizeof(redisReply *)) : NULL;
    va_start(ap, n);
    for (i = 0; i < n; i++) {
        r->element[i] = va_arg(ap, redisReply *);
    }
    va_end(ap);
    return r;
}

static void
rfree(redisReply *r)
{
    size_t  i;

    if (r == NULL) {
        return;
    }
    for (i = 0; i < r->elements && r->element; i++) {
        rfree(r->element[i]);
    }
    free(r->element);
    free(r->str);
    free(r);
}

static redisReply *
LE(uint64_t v)
{
    uint8_t  b[8];

    kvr_redis_put_le64(b, v);
    return SB(REDIS_REPLY_STRING, b, 8);
}

/* A stream entry "<seq>-0" holding one encoded event. */
static redisReply *
ENTRY(uint64_t seq, kvr_event_type_t type, uint64_t worker, uint64_t gen,
    uint64_t event_id, uint64_t block)
{
    kvr_event_t  ev;
    kvr_block_t  b = { block, 0 };
    uint8_t      buf[128];
    size_t       len;
    char         id[32];

    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.worker_id = worker;
    ev.generation = gen;
    ev.event_id = event_id;
    if (type == KVR_EV_STORED || type == KVR_EV_REMOVED) {
        ev.nblocks = 1;
        ev.blocks = &b;
    }
    assert_int_equal(kvr_event_encode(&ev, buf, sizeof(buf), &len), KVR_OK);
    snprintf(id, sizeof(id), "%llu-0", (unsigned long long) seq);
    return A(2, S(id), A(2, S("e"), SB(REDIS_REPLY_STRING, buf, len)));
}

/* ---- fixture ---- */

typedef struct {
    void         *mem;
    kvr_index_t  *idx;
    kvr_sync_t   *s;
    uint64_t      now;
} fx_t;

static int
setup(void **state)
{
    kvr_index_config_t  icfg = { 8, 4096 };
    kvr_sync_config_t   cfg;
    fx_t               *f = calloc(1, sizeof(*f));
    size_t              len = kvr_index_size(&icfg);

    f->mem = aligned_alloc(64, (len + 63) / 64 * 64);
    f->idx = kvr_index_init(f->mem, len, &icfg);
    kvr_sync_config_defaults(&cfg);
    cfg.ns = "t";
    cfg.batch = 4;
    cfg.stream_poll_ms = 10;
    cfg.registry_poll_ms = 1000;
    cfg.retry_ms = 100;
    f->s = kvr_sync_create(&cfg, f->idx);
    f->now = 1000;
    *state = f;
    return f->s ? 0 : -1;
}

static int
teardown(void **state)
{
    fx_t  *f = *state;

    kvr_sync_destroy(f->s);
    free(f->mem);
    free(f);
    return 0;
}

typedef enum { C_REGISTRY, C_SNAPSHOT, C_XREAD } ckind_t;

/* Asserts the next command is of kind k (and, for snapshots, of worker
   id); returns it. */
#define expect(f, k, id)  expect_at(f, k, id, __FILE__, __LINE__)

static kvr_cmd_t
expect_at(fx_t *f, ckind_t k, uint64_t id, const char *file, int line)
{
    kvr_cmd_t  c, c2;
    uint64_t   wake = 0;
    char       want[64];

    _assert_int_equal(kvr_sync_next(f->s, f->now, &c, &wake), 1, file,
                      line);
    assert_true(c.argc > 3);
    switch (k) {
    case C_REGISTRY:
        assert_string_equal(c.argv[0], "EVAL");
        assert_string_equal(c.argv[2], "3");
        assert_string_equal(c.argv[3], "dyn:v1:t:workers");
        break;
    case C_SNAPSHOT:
        assert_string_equal(c.argv[0], "EVAL");
        assert_string_equal(c.argv[2], "4");
        snprintf(want, sizeof(want), "dyn:v1:t:w:%llu",
                 (unsigned long long) id);
        assert_string_equal(c.argv[3], want);
        break;
    default:
        assert_string_equal(c.argv[0], "XREAD");
        assert_string_equal(c.argv[c.argc - 2], EVKEY);
        break;
    }
    /* one command at a time */
    assert_int_equal(kvr_sync_next(f->s, f->now, &c2, &wake), 0);
    assert_true(wake == UINT64_MAX);
    return c;
}

static int
reply(fx_t *f, redisReply *r)
{
    int  rc = kvr_sync_on_reply(f->s, r);

    rfree(r);
    return rc;
}

static redisReply *
good_snapshot(const char *seq, const char *gen, const char *last)
{
    return A(9, S(seq), S(gen), S(last), S("decode"), S("h:1"), S("16"),
             S("100"), S("1 2 3 4 5"), A(2, LE(11), LE(12)));
}

/* Full resync to: evseq 5, worker 1 (gen 7, cursor 0, blocks 11 and 12,
   snapshot read at evseq 6). */
static void
bootstrap(fx_t *f)
{
    kvr_worker_info_t  info;

    expect(f, C_REGISTRY, 0);
    assert_int_equal(reply(f, A(4, S("ep1"), S("5"), S("1"),
                                S("1 2 3 4 5"))), KVR_OK);
    expect(f, C_SNAPSHOT, 1);
    assert_int_equal(reply(f, good_snapshot("6", "7", "0")), KVR_OK);
    assert_int_equal(kvr_index_get_worker(f->idx, 1, &info), KVR_OK);
    assert_true(info.generation == 7 && info.block_size == 16
                && info.role == KVR_ROLE_DECODE);
    assert_string_equal(info.addr, "h:1");
    assert_int_equal(info.load.running, 1);
    assert_int_equal(kvr_index_worker_blocks(f->idx, 1), 2);
}

/* After an error: nothing until the backoff passes, then a full resync. */
static void
expect_recovery(fx_t *f, int was_error)
{
    kvr_cmd_t  c;
    uint64_t   wake = 0;

    if (was_error) {
        assert_true(kvr_sync_last_error(f->s)[0] != '\0');
        assert_int_equal(kvr_sync_next(f->s, f->now, &c, &wake), 0);
        assert_true(wake > f->now && wake <= f->now + 100 * 32);
        f->now = wake;
    }
    bootstrap(f);
}

/* ---- tests ---- */

static void
test_happy_path(void **state)
{
    fx_t              *f = *state;
    kvr_sync_stats_t   st;
    kvr_match_t        m[4];
    uint64_t           q[3] = { 11, 12, 13 }, wake;
    kvr_cmd_t          c;

    bootstrap(f);
    c = expect(f, C_XREAD, 0);
    assert_string_equal(c.argv[c.argc - 1], "5-0");
    assert_string_equal(c.argv[2], "4");
    /* 6 is inside the snapshot (read at evseq 6): skipped; 7 applies */
    assert_int_equal(reply(f, A(1, A(2, S(EVKEY), A(2,
        ENTRY(6, KVR_EV_STORED, 1, 7, 1, 12),
        ENTRY(7, KVR_EV_STORED, 1, 7, 1, 13))))), KVR_OK);
    assert_int_equal(kvr_index_worker_blocks(f->idx, 1), 3);
    assert_int_equal(kvr_index_find_matches(f->idx, q, 3, m, 4), 1);
    assert_int_equal(m[0].overlap_blocks, 3);

    kvr_sync_stats(f->s, &st);
    assert_true(st.full_resyncs == 1 && st.snapshots == 1
                && st.events_applied == 1 && st.events_skipped == 1
                && st.stream_seq == 7 && st.workers == 1 && st.errors == 0);

    /* a short batch: idle until the stream poll */
    assert_int_equal(kvr_sync_next(f->s, f->now, &c, &wake), 0);
    assert_true(wake == f->now + 10);
    f->now += 10;
    c = expect(f, C_XREAD, 0);
    assert_string_equal(c.argv[c.argc - 1], "7-0");
    assert_int_equal(reply(f, NIL()), KVR_OK);

    /* the registry poll comes when due and updates the load */
    f->now += 1000;
    expect(f, C_REGISTRY, 0);
    assert_int_equal(reply(f, A(4, S("ep1"), S("7"), S("1"),
                                S("9 0 0 0 1"))), KVR_OK);
    {
        kvr_worker_info_t  info;

        assert_int_equal(kvr_index_get_worker(f->idx, 1, &info), KVR_OK);
        assert_int_equal(info.load.running, 9);
    }
    expect(f, C_XREAD, 0);
    assert_int_equal(reply(f, A(1, A(2, S(EVKEY), A(0)))), KVR_OK);
}

static void
test_full_batch_reads_again(void **state)
{
    fx_t       *f = *state;
    kvr_cmd_t   c;

    bootstrap(f);
    expect(f, C_XREAD, 0);
    assert_int_equal(reply(f, A(1, A(2, S(EVKEY), A(4,
        ENTRY(6, KVR_EV_STORED, 1, 7, 1, 20),
        ENTRY(7, KVR_EV_STORED, 1, 7, 1, 21),
        ENTRY(8, KVR_EV_STORED, 1, 7, 2, 22),
        ENTRY(9, KVR_EV_REMOVED, 1, 7, 3, 11))))), KVR_OK);
    /* batch was full: read again at once */
    c = expect(f, C_XREAD, 0);
    assert_string_equal(c.argv[c.argc - 1], "9-0");
    assert_int_equal(kvr_index_worker_blocks(f->idx, 1), 3);  /* 12 21 22 */
}

static void
test_registry_malformed(void **state)
{
    fx_t              *f = *state;
    kvr_sync_stats_t   st;
    char               longep[80];
    redisReply        *bad[20], *holey;
    size_t             i, n = 0;
    int                rc;

    memset(longep, 'x', 65);
    longep[65] = '\0';
    holey = A(2, S("e"), S("1"));
    rfree(holey->element[1]);
    holey->element[1] = NULL;

    bad[n++] = I(5);
    bad[n++] = NIL();
    bad[n++] = SB(REDIS_REPLY_STATUS, "OK", 2);
    bad[n++] = A(0);
    bad[n++] = A(1, S("e"));
    bad[n++] = A(3, S("e"), S("1"), S("2"));
    bad[n++] = A(2, I(1), S("1"));
    bad[n++] = A(2, S("e"), S("x"));
    bad[n++] = A(2, S("e"), I(-1));
    bad[n++] = A(2, S("e"), S("-1"));
    bad[n++] = A(2, S(longep), S("1"));
    bad[n++] = A(4, S("e"), S("1"), S("abc"), S("0 0 0 0 0"));
    bad[n++] = A(4, S("e"), S("1"), S("1"), S("0 0 0"));
    bad[n++] = A(4, S("e"), S("1"), S("1"), I(3));
    bad[n++] = A(4, S("e"), S("1"), NIL(), S("0 0 0 0 0"));
    bad[n++] = A(4, S("e"), S("1"), S("1"), A(0));
    bad[n++] = holey;

    for (i = 0; i < n; i++) {
        expect(f, C_REGISTRY, 0);
        rc = reply(f, bad[i]);
        assert_int_equal(rc, KVR_ERR_INVAL);
        assert_non_null(strstr(kvr_sync_last_error(f->s), "registry"));
        kvr_sync_stats(f->s, &st);
        assert_int_equal(st.errors, i + 1);
        f->now += 100 * 32;             /* past any backoff */
    }

    expect(f, C_REGISTRY, 0);
    assert_int_equal(reply(f, E("LOADING Redis is loading")), KVR_ERR_REDIS);
    assert_non_null(strstr(kvr_sync_last_error(f->s), "LOADING"));
    expect_recovery(f, 1);
}

static void
test_backoff_grows(void **state)
{
    fx_t       *f = *state;
    kvr_cmd_t   c;
    uint64_t    wake, prev = 0;
    int         i;

    for (i = 0; i < 8; i++) {
        expect(f, C_REGISTRY, 0);
        assert_int_equal(reply(f, E("ERR x")), KVR_ERR_REDIS);
        assert_int_equal(kvr_sync_next(f->s, f->now, &c, &wake), 0);
        assert_true(wake - f->now == 100ULL << (i < 5 ? i : 5));
        assert_true(wake - f->now >= prev);
        prev = wake - f->now;
        f->now = wake;
    }
    bootstrap(f);
    /* a completed full resync resets the backoff */
    expect(f, C_XREAD, 0);
    assert_int_equal(reply(f, E("ERR y")), KVR_ERR_REDIS);
    assert_int_equal(kvr_sync_next(f->s, f->now, &c, &wake), 0);
    assert_true(wake - f->now == 100);
}

static void
test_snapshot_malformed(void **state)
{
    fx_t              *f = *state;
    redisReply        *bad[20];
    char               longaddr[80];
    size_t             i, n = 0;

    memset(longaddr, 'a', KVR_ADDR_MAX);
    longaddr[KVR_ADDR_MAX] = '\0';

    bad[n++] = I(1);
    bad[n++] = A(0);
    bad[n++] = A(1, S("x"));
    bad[n++] = A(2, S("6"), S("1"));
    bad[n++] = A(9, S("6"), S("7"), S("0"), S("decode"), S("h:1"),
                 S("16"), S("100"), S("1 2 3 4 5"), A(1, S("1234567")));
    bad[n++] = A(9, S("6"), S("7"), S("0"), S("decode"), S("h:1"),
                 S("16"), S("100"), S("1 2 3 4 5"), S("members"));
    bad[n++] = A(9, S("6"), S("7"), S("0"), S("bogus"), S("h:1"),
                 S("16"), S("100"), S("1 2 3 4 5"), A(0));
    bad[n++] = A(9, S("6"), S("7"), S("0"), S("decode"), S(longaddr),
                 S("16"), S("100"), S("1 2 3 4 5"), A(0));
    bad[n++] = A(9, S("6"), S("7"), S("0"), S("decode"), S("h:1"),
                 S("4294967296"), S("100"), S("1 2 3 4 5"), A(0));
    bad[n++] = A(9, S("6"), S("-7"), S("0"), S("decode"), S("h:1"),
                 S("16"), S("100"), S("1 2 3 4 5"), A(0));
    bad[n++] = A(9, S("6"), S("7"), S(""), S("decode"), S("h:1"),
                 S("16"), S("100"), S("1 2 3 4 5"), A(0));
    bad[n++] = A(9, S("6"), S("7"), S("0"), S("decode"), S("h:1"),
                 S("16"), S("100"), S("x"), A(0));
    bad[n++] = A(9, S("6"), S("7"), S("0"), S("decode"), S("h:1"),
                 S("16"), S("100"), S("1 2 3 4 5"), A(1, I(5)));
    bad[n++] = A(10, S("6"), S("7"), S("0"), S("decode"), S("h:1"),
                 S("16"), S("100"), S("1 2 3 4 5"), A(0), S("extra"));

    for (i = 0; i < n; i++) {
        expect(f, C_REGISTRY, 0);
        assert_int_equal(reply(f, A(4, S("ep"), S("5"), S("1"),
                                    S("0 0 0 0 0"))), KVR_OK);
        expect(f, C_SNAPSHOT, 1);
        assert_int_equal(reply(f, bad[i]), KVR_ERR_INVAL);
        assert_non_null(strstr(kvr_sync_last_error(f->s), "snapshot"));
        /* the worker was not half-loaded */
        assert_int_equal(kvr_index_worker_blocks(f->idx, 1), 0);
        f->now += 100 * 32;
    }

    expect_recovery(f, 0);
}

static void
test_xread_malformed(void **state)
{
    fx_t              *f = *state;
    kvr_sync_stats_t   st;
    redisReply        *bad[24];
    uint8_t            junk[5] = { 'K', 1, 9, 0, 0 };
    size_t             i, n = 0;
    int                rc;

    bad[n++] = S("x");
    bad[n++] = I(0);
    bad[n++] = A(0);
    bad[n++] = A(2, A(2, S(EVKEY), A(0)), A(2, S(EVKEY), A(0)));
    bad[n++] = A(1, A(1, S(EVKEY)));
    bad[n++] = A(1, A(2, I(1), A(0)));
    bad[n++] = A(1, A(2, S(EVKEY), S("entries")));
    bad[n++] = A(1, A(2, S(EVKEY), A(1, S("6-0"))));
    bad[n++] = A(1, A(2, S(EVKEY), A(1, A(1, S("6-0")))));
    bad[n++] = A(1, A(2, S(EVKEY), A(1, A(2, S("abc"), A(2, S("e"),
                                                          S("x"))))));
    bad[n++] = A(1, A(2, S(EVKEY), A(1, A(2, S("6"), A(2, S("e"),
                                                        S("x"))))));
    bad[n++] = A(1, A(2, S(EVKEY), A(1, A(2, S("6-1"), A(2, S("e"),
                                                          S("x"))))));
    bad[n++] = A(1, A(2, S(EVKEY), A(1, A(2, S("-0"), A(2, S("e"),
                                                         S("x"))))));
    bad[n++] = A(1, A(2, S(EVKEY), A(1, A(2, I(6), A(2, S("e"),
                                                      S("x"))))));
    bad[n++] = A(1, A(2, S(EVKEY), A(1, A(2, S("6-0"), A(1, S("e"))))));
    bad[n++] = A(1, A(2, S(EVKEY), A(1, A(2, S("6-0"), A(2, S("f"),
                                                          S("x"))))));
    bad[n++] = A(1, A(2, S(EVKEY), A(1, A(2, S("6-0"), A(2, S("e"),
                                                          I(1))))));
    bad[n++] = A(1, A(2, S(EVKEY), A(1, A(2, S("6-0"), A(2, S("e"),
                                                          S("garbage"))))));
    bad[n++] = A(1, A(2, S(EVKEY), A(1, A(2, S("6-0"), A(2, S("e"),
        SB(REDIS_REPLY_STRING, junk, sizeof(junk)))))));
    bad[n++] = A(1, A(2, S(EVKEY), A(1, A(2, S("6-0"), S("e")))));
    /* ids must increase: a repeat is not a gap, it is nonsense */
    bad[n++] = A(1, A(2, S(EVKEY), A(2,
        ENTRY(6, KVR_EV_STORED, 1, 7, 1, 13),
        ENTRY(6, KVR_EV_STORED, 1, 7, 2, 14))));

    for (i = 0; i < n; i++) {
        bootstrap(f);
        expect(f, C_XREAD, 0);
        rc = reply(f, bad[i]);
        assert_int_equal(rc, KVR_ERR_INVAL);
        assert_true(strstr(kvr_sync_last_error(f->s), "xread")
                    || strstr(kvr_sync_last_error(f->s), "stream"));
        kvr_sync_stats(f->s, &st);
        assert_int_equal(st.errors, i + 1);
        f->now += 100 * 32;
    }

    bootstrap(f);
    expect(f, C_XREAD, 0);
    assert_int_equal(reply(f, E("WRONGTYPE Operation against a key")),
                     KVR_ERR_REDIS);
    expect_recovery(f, 1);
}

static void
test_gap_and_restart(void **state)
{
    fx_t              *f = *state;
    kvr_sync_stats_t   st;

    bootstrap(f);
    /* entry 8 while at 5: 6 and 7 were trimmed */
    expect(f, C_XREAD, 0);
    assert_int_equal(reply(f, A(1, A(2, S(EVKEY), A(1,
        ENTRY(8, KVR_EV_STORED, 1, 7, 1, 13))))), KVR_OK);
    kvr_sync_stats(f->s, &st);
    assert_int_equal(st.gaps, 1);
    assert_int_equal(st.errors, 0);
    bootstrap(f);                       /* at once, no backoff */

    /* nothing came back although the registry said evseq 9: trimmed */
    expect(f, C_XREAD, 0);
    assert_int_equal(reply(f, NIL()), KVR_OK);
    f->now += 1000;
    expect(f, C_REGISTRY, 0);
    assert_int_equal(reply(f, A(4, S("ep1"), S("9"), S("1"),
                                S("0 0 0 0 0"))), KVR_OK);
    expect(f, C_XREAD, 0);
    assert_int_equal(reply(f, NIL()), KVR_OK);
    kvr_sync_stats(f->s, &st);
    assert_int_equal(st.gaps, 2);
    bootstrap(f);

    /* a new epoch: Redis restarted or was flushed */
    expect(f, C_XREAD, 0);
    assert_int_equal(reply(f, NIL()), KVR_OK);
    f->now += 1000;
    expect(f, C_REGISTRY, 0);
    assert_int_equal(reply(f, A(4, S("ep2"), S("5"), S("1"),
                                S("0 0 0 0 0"))), KVR_OK);
    kvr_sync_stats(f->s, &st);
    assert_int_equal(st.restarts, 1);
    bootstrap(f);

    /* evseq went backwards */
    expect(f, C_XREAD, 0);
    assert_int_equal(reply(f, NIL()), KVR_OK);
    f->now += 1000;
    expect(f, C_REGISTRY, 0);
    assert_int_equal(reply(f, A(2, S("ep1"), S("2"))), KVR_OK);
    kvr_sync_stats(f->s, &st);
    assert_int_equal(st.restarts, 2);
    bootstrap(f);

    /* a snapshot older than the stream position: same thing */
    expect(f, C_XREAD, 0);
    assert_int_equal(reply(f, A(1, A(2, S(EVKEY), A(2,
        ENTRY(6, KVR_EV_SNAPSHOT, 1, 7, 0, 0),      /* covered: skipped */
        ENTRY(7, KVR_EV_SNAPSHOT, 1, 7, 0, 0))))), KVR_OK);
    expect(f, C_SNAPSHOT, 1);
    assert_int_equal(reply(f, good_snapshot("3", "7", "0")), KVR_OK);
    kvr_sync_stats(f->s, &st);
    assert_int_equal(st.restarts, 3);
    assert_int_equal(st.errors, 0);
    bootstrap(f);
}

static void
test_worker_resyncs(void **state)
{
    fx_t              *f = *state;
    kvr_sync_stats_t   st;
    kvr_worker_info_t  info;

    bootstrap(f);
    /* 6 is in the snapshot; event 3 while the index is at 0: the index
       refuses, the worker reloads, its later entries are skipped until the
       snapshot is in */
    expect(f, C_XREAD, 0);
    assert_int_equal(reply(f, A(1, A(2, S(EVKEY), A(4,
        ENTRY(6, KVR_EV_STORED, 1, 7, 1, 12),
        ENTRY(7, KVR_EV_STORED, 1, 7, 3, 13),
        ENTRY(8, KVR_EV_STORED, 1, 7, 4, 14),
        ENTRY(9, KVR_EV_SNAPSHOT, 2, 1, 0, 0))))), KVR_OK);
    kvr_sync_stats(f->s, &st);
    assert_int_equal(st.events_skipped, 2);
    assert_int_equal(st.events_applied, 0);
    expect(f, C_SNAPSHOT, 1);
    assert_int_equal(reply(f, A(9, S("10"), S("7"), S("4"), S("prefill"),
                                S("h:2"), S("16"), S("100"), S("0 0 0 0 0"),
                                A(3, LE(11), LE(13), LE(14)))), KVR_OK);
    assert_int_equal(kvr_index_worker_blocks(f->idx, 1), 3);
    assert_int_equal(kvr_index_get_worker(f->idx, 1, &info), KVR_OK);
    assert_true(info.last_event_id == 4 && info.role == KVR_ROLE_PREFILL);

    /* worker 2 announced itself: it is not alive, so it stays out */
    expect(f, C_SNAPSHOT, 2);
    assert_int_equal(reply(f, A(1, S("10"))), KVR_OK);
    assert_int_equal(kvr_index_get_worker(f->idx, 2, &info),
                     KVR_ERR_NOTFOUND);

    /* covered by the snapshot read at 10: skipped; 11 applies */
    expect(f, C_XREAD, 0);
    assert_int_equal(reply(f, A(1, A(2, S(EVKEY), A(2,
        ENTRY(10, KVR_EV_STORED, 1, 7, 4, 14),
        ENTRY(11, KVR_EV_CLEARED, 1, 7, 5, 0))))), KVR_OK);
    assert_int_equal(kvr_index_worker_blocks(f->idx, 1), 0);
    kvr_sync_stats(f->s, &st);
    assert_int_equal(st.events_applied, 1);
    assert_int_equal(st.snapshots, 2);
    assert_int_equal(st.errors, 0);

    /* events of unknown workers are skipped */
    f->now += 10;
    expect(f, C_XREAD, 0);
    assert_int_equal(reply(f, A(1, A(2, S(EVKEY), A(1,
        ENTRY(12, KVR_EV_STORED, 5, 1, 1, 99))))), KVR_OK);
    assert_int_equal(kvr_index_get_worker(f->idx, 5, &info),
                     KVR_ERR_NOTFOUND);
}

static void
test_registry_poll_membership(void **state)
{
    fx_t              *f = *state;
    kvr_sync_stats_t   st;
    kvr_worker_info_t  info;

    expect(f, C_REGISTRY, 0);
    assert_int_equal(reply(f, A(6, S("ep"), S("5"), S("1"), S("0 0 0 0 0"),
                                S("2"), S("0 0 0 0 0"))), KVR_OK);
    expect(f, C_SNAPSHOT, 1);
    assert_int_equal(reply(f, good_snapshot("5", "7", "0")), KVR_OK);
    expect(f, C_SNAPSHOT, 2);
    assert_int_equal(reply(f, good_snapshot("5", "8", "0")), KVR_OK);
    kvr_sync_stats(f->s, &st);
    assert_true(st.full_resyncs == 1 && st.workers == 2);

    expect(f, C_XREAD, 0);
    assert_int_equal(reply(f, NIL()), KVR_OK);
    f->now += 1000;
    /* 2's alive key expired; 3 showed up alive */
    expect(f, C_REGISTRY, 0);
    assert_int_equal(reply(f, A(6, S("ep"), S("5"), S("1"), S("0 0 0 0 0"),
                                S("3"), S("0 0 0 0 0"))), KVR_OK);
    assert_int_equal(kvr_index_get_worker(f->idx, 2, &info),
                     KVR_ERR_NOTFOUND);
    expect(f, C_SNAPSHOT, 3);
    assert_int_equal(reply(f, good_snapshot("5", "1", "0")), KVR_OK);
    assert_int_equal(kvr_index_get_worker(f->idx, 3, &info), KVR_OK);
    kvr_sync_stats(f->s, &st);
    assert_true(st.workers_removed == 1 && st.workers == 2);

    /* a full resync also drops index workers that nobody lists */
    kvr_sync_on_disconnect(f->s);
    expect(f, C_REGISTRY, 0);
    assert_int_equal(reply(f, A(2, S("ep"), S("5"))), KVR_OK);
    assert_int_equal(kvr_index_get_worker(f->idx, 1, &info),
                     KVR_ERR_NOTFOUND);
    assert_int_equal(kvr_index_get_worker(f->idx, 3, &info),
                     KVR_ERR_NOTFOUND);
    kvr_sync_stats(f->s, &st);
    assert_true(st.workers == 0 && st.full_resyncs == 2);
}

static void
test_disconnect_and_misuse(void **state)
{
    fx_t              *f = *state;
    kvr_sync_stats_t   st;
    redisReply        *r = NIL();

    /* a reply with nothing in flight */
    assert_int_equal(kvr_sync_on_reply(f->s, r), KVR_ERR_INVAL);
    rfree(r);
    bootstrap(f);
    expect(f, C_XREAD, 0);
    assert_int_equal(kvr_sync_on_reply(f->s, NULL), KVR_ERR_REDIS);
    kvr_sync_stats(f->s, &st);
    assert_int_equal(st.disconnects, 1);
    bootstrap(f);                       /* reconnect: full resync */

    /* disconnect while a snapshot was in flight */
    kvr_sync_on_disconnect(f->s);
    expect(f, C_REGISTRY, 0);
    assert_int_equal(reply(f, A(4, S("ep1"), S("5"), S("1"),
                                S("0 0 0 0 0"))), KVR_OK);
    expect(f, C_SNAPSHOT, 1);
    kvr_sync_on_disconnect(f->s);
    expect_recovery(f, 0);

    assert_int_equal(kvr_sync_next(NULL, 0, NULL, NULL), KVR_ERR_INVAL);
    assert_int_equal(kvr_sync_on_reply(NULL, NULL), KVR_ERR_INVAL);
}

static void
test_config(void **state)
{
    fx_t               *f = *state;
    kvr_sync_config_t   cfg;
    kvr_sync_t         *s;
    kvr_cmd_t           c;
    uint64_t            wake;
    redisReply         *r;

    kvr_sync_config_defaults(&cfg);
    assert_null(kvr_sync_create(&cfg, f->idx));      /* no namespace */
    cfg.ns = "t";
    assert_null(kvr_sync_create(&cfg, NULL));
    cfg.batch = 0;
    assert_null(kvr_sync_create(&cfg, f->idx));
    cfg.batch = 8;
    cfg.block_ms = 250;
    s = kvr_sync_create(&cfg, f->idx);
    assert_non_null(s);
    assert_int_equal(kvr_sync_next(s, 0, &c, &wake), 1);
    r = A(2, S(""), S("0"));
    assert_int_equal(kvr_sync_on_reply(s, r), KVR_OK);
    rfree(r);
    assert_int_equal(kvr_sync_next(s, 0, &c, &wake), 1);
    assert_int_equal(c.argc, 8);
    assert_string_equal(c.argv[0], "XREAD");
    assert_string_equal(c.argv[3], "BLOCK");
    assert_string_equal(c.argv[4], "250");
    assert_string_equal(c.argv[7], "0-0");
    /* a BLOCK read timing out reads again at once */
    r = NIL();
    assert_int_equal(kvr_sync_on_reply(s, r), KVR_OK);
    rfree(r);
    assert_int_equal(kvr_sync_next(s, 1, &c, &wake), 1);
    assert_string_equal(c.argv[0], "XREAD");
    kvr_sync_destroy(s);
    kvr_sync_destroy(NULL);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_happy_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_batch_reads_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_registry_malformed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_backoff_grows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_malformed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_xread_malformed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_gap_and_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_worker_resyncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_poll_membership, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_and_misuse, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config, setup, teardown),
    };

    return cmocka_run_group_tests_name("redis_sync", tests, NULL, NULL);
}
