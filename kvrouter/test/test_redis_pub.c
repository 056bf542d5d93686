/*
 * Publisher tests against a real, throwaway redis-server: what lands in
 * Redis for each call, and how the publisher recovers from every way Redis
 * can lose or refuse its state.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <sha1.h>

#include "kvr_err.h"
#include "kvr_event.h"
#include "kvr_redis.h"
#include "../src/kvr_redis_int.h"
#include "support/redis_server.h"

#define NS  "pubtest"

static redis_server_t  srv;
static redisContext   *rc;

static int
group_setup(void **state)
{
    (void) state;
    if (redis_server_start(&srv) != 0) {
        fprintf(stderr, "cannot start redis-server\n");
        return -1;
    }
    rc = redis_server_connect(&srv);
    return rc ? 0 : -1;
}

static int
group_teardown(void **state)
{
    (void) state;
    if (rc) {
        redisFree(rc);
    }
    redis_server_stop(&srv);
    return 0;
}

static int
flush(void **state)
{
    redisReply  *r;

    (void) state;
    r = redisCommand(rc, "FLUSHALL");
    if (r == NULL) {
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

static redisReply *
cmd(const char *fmt, ...)
{
    va_list      ap;
    redisReply  *r;

    va_start(ap, fmt);
    r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

static long long
cmd_int(const char *fmt, const char *key)
{
    redisReply  *r = cmd(fmt, key);
    long long    v;

    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    v = r->integer;
    freeReplyObject(r);
    return v;
}

static void
key(char *buf, const char *name, int has_id, uint64_t id)
{
    assert_true(kvr_redis_key(buf, KVR_REDIS_KEY_MAX, NS, name, has_id, id)
                > 0);
}

static kvr_pub_t *
mkpub(uint64_t id, uint64_t gen)
{
    kvr_pub_config_t  cfg;
    kvr_pub_t        *p;

    kvr_pub_config_defaults(&cfg);
    cfg.ns = NS;
    cfg.worker_id = id;
    cfg.generation = gen;
    cfg.role = KVR_ROLE_DECODE;
    cfg.addr = "127.0.0.1:9001";
    cfg.block_size = 16;
    cfg.capacity_blocks = 8;          /* small: the mirror must grow */
    p = kvr_pub_create(&cfg);
    assert_non_null(p);
    return p;
}

/* The worker's set in Redis equals the mirror. */
static void
assert_set_is_mirror(kvr_pub_t *p, uint64_t id)
{
    char         k[KVR_REDIS_KEY_MAX];
    redisReply  *r;
    size_t       i;

    key(k, "blocks:", 1, id);
    r = cmd("SMEMBERS %s", k);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, kvr_pub_mirror_count(p));
    for (i = 0; i < r->elements; i++) {
        assert_int_equal(r->element[i]->len, 8);
        assert_true(kvr_pub_mirror_has(p,
            kvr_redis_get_le64((const uint8_t *) r->element[i]->str)));
    }
    freeReplyObject(r);
}

static void
assert_cursor(uint64_t id, uint64_t gen, uint64_t last)
{
    char         k[KVR_REDIS_KEY_MAX], want[32];
    redisReply  *r;

    key(k, "w:", 1, id);
    r = cmd("HMGET %s generation last_event_id", k);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->element[0]->type, REDIS_REPLY_STRING);
    snprintf(want, sizeof(want), "%llu", (unsigned long long) gen);
    assert_string_equal(r->element[0]->str, want);
    snprintf(want, sizeof(want), "%llu", (unsigned long long) last);
    assert_string_equal(r->element[1]->str, want);
    freeReplyObject(r);
}

/* Decodes stream entry i (0-based from the start) and checks its id. */
static void
stream_event(size_t i, kvr_event_t *ev, kvr_block_t *blk, size_t max)
{
    char         k[KVR_REDIS_KEY_MAX], want[32];
    redisReply  *r, *e;

    key(k, "events", 0, 0);
    r = cmd("XRANGE %s - +", k);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_true(i < r->elements);
    e = r->element[i];
    snprintf(want, sizeof(want), "%zu-0", i + 1);
    assert_string_equal(e->element[0]->str, want);
    assert_string_equal(e->element[1]->element[0]->str, "e");
    assert_int_equal(kvr_event_decode(
        (const uint8_t *) e->element[1]->element[1]->str,
        e->element[1]->element[1]->len, ev, blk, max), KVR_OK);
    freeReplyObject(r);
}

static void
test_register_and_events(void **state)
{
    kvr_pub_t    *p = mkpub(7, 1001);
    kvr_block_t   b[40], got[64];
    kvr_event_t   ev;
    uint64_t      rm[3];
    char          k[KVR_REDIS_KEY_MAX];
    redisReply   *r;
    size_t        i;

    (void) state;
    assert_true(kvr_pub_needs_register(p));
    /* nothing is sent before registering; the mirror still follows */
    b[0].seq = 5;
    b[0].local = 6;
    assert_int_equal(kvr_pub_stored(p, rc, 0, 0, b, 1), KVR_ERR_RESYNC);
    assert_int_equal(kvr_pub_mirror_count(p), 1);

    assert_int_equal(kvr_pub_register(p, rc), KVR_OK);
    assert_false(kvr_pub_needs_register(p));
    assert_cursor(7, 1001, 1);
    assert_set_is_mirror(p, 7);
    stream_event(0, &ev, got, 64);
    assert_int_equal(ev.type, KVR_EV_SNAPSHOT);
    assert_true(ev.worker_id == 7 && ev.generation == 1001
                && ev.event_id == 1);

    key(k, "w:", 1, 7);
    r = cmd("HGET %s role", k);
    assert_string_equal(r->str, "decode");
    freeReplyObject(r);
    r = cmd("HGET %s addr", k);
    assert_string_equal(r->str, "127.0.0.1:9001");
    freeReplyObject(r);
    key(k, "workers", 0, 0);
    r = cmd("SISMEMBER %s 7", k);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    key(k, "alive:", 1, 7);
    r = cmd("GET %s", k);
    assert_string_equal(r->str, "0 0 0 0 0");
    freeReplyObject(r);
    assert_true(cmd_int("PTTL %s", k) > 0);

    for (i = 0; i < 40; i++) {
        b[i].seq = 0x1000 + i;
        b[i].local = i;
    }
    b[0].seq = 0;                       /* 0 is a valid hash too */
    assert_int_equal(kvr_pub_stored(p, rc, 1, 5, b, 40), KVR_OK);
    assert_cursor(7, 1001, 2);
    assert_int_equal(kvr_pub_mirror_count(p), 41);
    assert_set_is_mirror(p, 7);
    stream_event(1, &ev, got, 64);
    assert_int_equal(ev.type, KVR_EV_STORED);
    assert_true(ev.event_id == 2 && ev.has_parent && ev.parent == 5);
    assert_int_equal(ev.nblocks, 40);
    assert_true(got[39].seq == 0x1000 + 39 && got[39].local == 39);

    rm[0] = 0;
    rm[1] = 0x1001;
    rm[2] = 0xdead;                     /* absent: harmless */
    assert_int_equal(kvr_pub_removed(p, rc, rm, 3), KVR_OK);
    assert_cursor(7, 1001, 3);
    assert_int_equal(kvr_pub_mirror_count(p), 39);
    assert_set_is_mirror(p, 7);
    stream_event(2, &ev, got, 64);
    assert_int_equal(ev.type, KVR_EV_REMOVED);
    assert_int_equal(ev.nblocks, 3);

    assert_int_equal(kvr_pub_cleared(p, rc), KVR_OK);
    assert_cursor(7, 1001, 4);
    assert_int_equal(kvr_pub_mirror_count(p), 0);
    assert_set_is_mirror(p, 7);
    stream_event(3, &ev, got, 64);
    assert_int_equal(ev.type, KVR_EV_CLEARED);
    assert_true(kvr_pub_last_event_id(p) == 4);

    key(k, "evseq", 0, 0);
    r = cmd("GET %s", k);
    assert_string_equal(r->str, "4");
    freeReplyObject(r);
    kvr_pub_destroy(p);
}

static void
test_script_sha(void **state)
{
    char         hex[SHA1_DIGEST_STRING_LENGTH];
    redisReply  *r;

    (void) state;
    SHA1Data((const uint8_t *) kvr_redis_lua_pub, strlen(kvr_redis_lua_pub),
             hex);
    r = cmd("SCRIPT LOAD %s", kvr_redis_lua_pub);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, hex);
    freeReplyObject(r);
}

static void
test_heartbeat(void **state)
{
    kvr_pub_t   *p = mkpub(8, 5);
    kvr_load_t   load = { 2, 3, 400, 5000, 123 };
    char         k[KVR_REDIS_KEY_MAX];
    redisReply  *r;

    (void) state;
    assert_int_equal(kvr_pub_heartbeat(p, rc, &load), KVR_ERR_RESYNC);
    assert_int_equal(kvr_pub_register(p, rc), KVR_OK);
    key(k, "alive:", 1, 8);
    r = cmd("GET %s", k);           /* the load given before registering */
    assert_string_equal(r->str, "2 3 400 5000 123");
    freeReplyObject(r);

    load.running = 9;
    assert_int_equal(kvr_pub_heartbeat(p, rc, &load), KVR_OK);
    r = cmd("GET %s", k);
    assert_string_equal(r->str, "9 3 400 5000 123");
    freeReplyObject(r);
    assert_true(cmd_int("PTTL %s", k) > 1000);
    key(k, "w:", 1, 8);
    assert_true(cmd_int("PTTL %s", k) > 1000);     /* retain TTL */

    /* Redis lost the registration: the heartbeat is refused */
    r = cmd("DEL %s", k);
    freeReplyObject(r);
    assert_int_equal(kvr_pub_heartbeat(p, rc, &load), KVR_ERR_REDIS);
    assert_true(kvr_pub_needs_register(p));
    assert_non_null(strstr(kvr_pub_last_error(p), "KVRNOREG"));
    assert_int_equal(kvr_pub_register(p, rc), KVR_OK);
    assert_int_equal(kvr_pub_heartbeat(p, rc, &load), KVR_OK);
    kvr_pub_destroy(p);
}

/* A cursor that does not match (a lost event) makes Redis refuse the next
   event; re-registering from the mirror repairs the set. */
static void
test_gap_refused(void **state)
{
    kvr_pub_t    *p = mkpub(9, 77);
    kvr_block_t   b[4] = { { 1, 1 }, { 2, 2 }, { 3, 3 }, { 4, 4 } };
    char          k[KVR_REDIS_KEY_MAX];
    redisReply   *r;

    (void) state;
    assert_int_equal(kvr_pub_register(p, rc), KVR_OK);
    assert_int_equal(kvr_pub_stored(p, rc, 0, 0, b, 2), KVR_OK);

    /* simulate an event lost on the way: Redis's cursor is one behind */
    kvr_pub_stored_cmd(p, 0, 0, b + 2, 1, &(kvr_cmd_t){ 0 });
    assert_int_equal(kvr_pub_stored(p, rc, 0, 0, b + 3, 1), KVR_ERR_REDIS);
    assert_non_null(strstr(kvr_pub_last_error(p), "KVRGAP"));
    assert_true(kvr_pub_needs_register(p));
    assert_cursor(9, 77, 1);            /* refused: nothing changed */
    key(k, "blocks:", 1, 9);
    assert_int_equal(cmd_int("SCARD %s", k), 2);

    assert_int_equal(kvr_pub_register(p, rc), KVR_OK);
    assert_cursor(9, 77, 3);
    assert_set_is_mirror(p, 9);
    assert_int_equal(kvr_pub_mirror_count(p), 4);

    /* a different generation in Redis (another incarnation) is refused */
    key(k, "w:", 1, 9);
    r = cmd("HSET %s generation 78", k);
    freeReplyObject(r);
    assert_int_equal(kvr_pub_cleared(p, rc), KVR_ERR_REDIS);
    assert_non_null(strstr(kvr_pub_last_error(p), "KVRNOREG"));
    kvr_pub_destroy(p);
}

/* FLUSHALL (as a Redis restart without persistence): events fail with
   NOSCRIPT or NOREG, the mirror keeps changing, register restores all. */
static void
test_flush_then_register(void **state)
{
    kvr_pub_t    *p = mkpub(10, 1);
    kvr_block_t   b[3] = { { 11, 0 }, { 12, 0 }, { 13, 0 } };
    uint64_t      rm = 11;
    redisReply   *r;
    char          k[KVR_REDIS_KEY_MAX];

    (void) state;
    assert_int_equal(kvr_pub_register(p, rc), KVR_OK);
    assert_int_equal(kvr_pub_stored(p, rc, 0, 0, b, 2), KVR_OK);
    r = cmd("FLUSHALL");
    freeReplyObject(r);
    r = cmd("SCRIPT FLUSH");
    freeReplyObject(r);

    assert_int_equal(kvr_pub_stored(p, rc, 0, 0, b + 2, 1), KVR_ERR_REDIS);
    assert_true(kvr_pub_needs_register(p));
    assert_int_equal(kvr_pub_removed(p, rc, &rm, 1), KVR_ERR_RESYNC);
    assert_int_equal(kvr_pub_register(p, rc), KVR_OK);
    assert_set_is_mirror(p, 10);
    assert_int_equal(kvr_pub_mirror_count(p), 2);
    assert_cursor(10, 1, 3);
    key(k, "epoch", 0, 0);
    r = cmd("GET %s", k);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
    /* EVALSHA works again (register's EVAL cached the script) */
    assert_int_equal(kvr_pub_stored(p, rc, 0, 0, b, 1), KVR_OK);
    kvr_pub_destroy(p);
}

/* A lost connection: KVR_ERR_REDIS, mirror right, register after
   reconnecting. */
static void
test_connection_lost(void **state)
{
    kvr_pub_t     *p = mkpub(11, 1);
    kvr_block_t    b[2] = { { 21, 0 }, { 22, 0 } };
    redisContext  *c = redis_server_connect(&srv);
    redisReply    *r;

    (void) state;
    assert_non_null(c);
    assert_int_equal(kvr_pub_register(p, c), KVR_OK);
    r = cmd("CLIENT KILL TYPE normal SKIPME yes");
    freeReplyObject(r);
    assert_int_equal(kvr_pub_stored(p, c, 0, 0, b, 1), KVR_ERR_REDIS);
    assert_true(kvr_pub_needs_register(p));
    assert_int_equal(kvr_pub_stored(p, c, 0, 0, b + 1, 1), KVR_ERR_RESYNC);
    assert_int_equal(redisReconnect(c), REDIS_OK);
    assert_int_equal(kvr_pub_register(p, c), KVR_OK);
    assert_set_is_mirror(p, 11);
    assert_int_equal(kvr_pub_mirror_count(p), 2);
    redisFree(c);
    kvr_pub_destroy(p);
}

static void
test_unregister(void **state)
{
    kvr_pub_t    *p = mkpub(12, 3);
    kvr_block_t   b = { 31, 0 };
    kvr_event_t   ev;
    char          k[KVR_REDIS_KEY_MAX];

    (void) state;
    assert_int_equal(kvr_pub_register(p, rc), KVR_OK);
    assert_int_equal(kvr_pub_stored(p, rc, 0, 0, &b, 1), KVR_OK);
    assert_int_equal(kvr_pub_unregister(p, rc), KVR_OK);
    assert_true(kvr_pub_needs_register(p));
    key(k, "w:", 1, 12);
    assert_int_equal(cmd_int("EXISTS %s", k), 0);
    key(k, "blocks:", 1, 12);
    assert_int_equal(cmd_int("EXISTS %s", k), 0);
    key(k, "alive:", 1, 12);
    assert_int_equal(cmd_int("EXISTS %s", k), 0);
    key(k, "workers", 0, 0);
    assert_int_equal(cmd_int("SCARD %s", k), 0);
    stream_event(2, &ev, NULL, 0);
    assert_int_equal(ev.type, KVR_EV_CLEARED);
    assert_true(ev.event_id == 2);
    kvr_pub_destroy(p);
}

/* Registrations whose retain TTL ran out leave the registry at the next
   register of any worker. */
static void
test_retain_gc(void **state)
{
    kvr_pub_config_t  cfg;
    kvr_pub_t        *a, *b;
    char              k[KVR_REDIS_KEY_MAX];
    redisReply       *r;

    (void) state;
    kvr_pub_config_defaults(&cfg);
    cfg.ns = NS;
    cfg.worker_id = 20;
    cfg.retain_ms = 50;
    cfg.alive_ttl_ms = 50;
    a = kvr_pub_create(&cfg);
    cfg.worker_id = 21;
    cfg.retain_ms = 0;                  /* no TTL at all */
    b = kvr_pub_create(&cfg);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(kvr_pub_register(a, rc), KVR_OK);
    usleep(150 * 1000);
    assert_int_equal(kvr_pub_register(b, rc), KVR_OK);
    key(k, "workers", 0, 0);
    r = cmd("SMEMBERS %s", k);
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->str, "21");
    freeReplyObject(r);
    key(k, "w:", 1, 21);
    assert_int_equal(cmd_int("PTTL %s", k), -1);
    kvr_pub_destroy(a);
    kvr_pub_destroy(b);
}

/* Reply bookkeeping with pipelined commands, no Redis: a failure of a
   command older than the latest register is covered by it. */
static void
test_reply_order(void **state)
{
    kvr_pub_t    *p = mkpub(30, 1);
    kvr_cmd_t     c1, c2, c3, c4;
    kvr_block_t   b = { 1, 0 };
    redisReply    ok = { 0 }, err = { 0 };

    (void) state;
    ok.type = REDIS_REPLY_INTEGER;
    ok.integer = 1;
    err.type = REDIS_REPLY_ERROR;
    err.str = "KVRGAP x";
    err.len = 8;

    assert_int_equal(kvr_pub_register_cmd(p, &c1), KVR_OK);
    assert_int_equal(kvr_pub_stored_cmd(p, 0, 0, &b, 1, &c2), KVR_OK);
    assert_false(kvr_pub_needs_register(p));
    assert_int_equal(kvr_pub_register_cmd(p, &c3), KVR_OK);
    assert_int_equal(kvr_pub_stored_cmd(p, 0, 0, &b, 1, &c4), KVR_OK);
    assert_true(c1.seq < c2.seq && c2.seq < c3.seq && c3.seq < c4.seq);

    assert_int_equal(kvr_pub_on_reply(p, c1.seq, &ok), KVR_OK);
    assert_int_equal(kvr_pub_on_reply(p, c2.seq, &err), KVR_ERR_REDIS);
    assert_false(kvr_pub_needs_register(p));        /* c3 covers it */
    assert_int_equal(kvr_pub_on_reply(p, c3.seq, &ok), KVR_OK);
    assert_int_equal(kvr_pub_on_reply(p, c4.seq, &err), KVR_ERR_REDIS);
    assert_true(kvr_pub_needs_register(p));         /* nothing covers c4 */

    /* a malformed reply counts as a failure; NULL as a lost connection */
    assert_int_equal(kvr_pub_register_cmd(p, &c1), KVR_OK);
    ok.type = REDIS_REPLY_STATUS;
    assert_int_equal(kvr_pub_on_reply(p, c1.seq, &ok), KVR_ERR_REDIS);
    assert_true(kvr_pub_needs_register(p));
    assert_int_equal(kvr_pub_register_cmd(p, &c1), KVR_OK);
    assert_int_equal(kvr_pub_on_reply(p, c1.seq, NULL), KVR_ERR_REDIS);
    assert_true(kvr_pub_needs_register(p));
    kvr_pub_destroy(p);
}

static void
test_bad_config(void **state)
{
    kvr_pub_config_t  cfg;
    char              addr[KVR_ADDR_MAX + 1];

    (void) state;
    kvr_pub_config_defaults(&cfg);
    assert_null(kvr_pub_create(&cfg));             /* no namespace */
    cfg.ns = "a:b";
    assert_null(kvr_pub_create(&cfg));
    cfg.ns = NS;
    cfg.alive_ttl_ms = 0;
    assert_null(kvr_pub_create(&cfg));
    cfg.alive_ttl_ms = 10;
    cfg.role = (kvr_role_t) 9;
    assert_null(kvr_pub_create(&cfg));
    cfg.role = KVR_ROLE_BOTH;
    memset(addr, 'x', KVR_ADDR_MAX);
    addr[KVR_ADDR_MAX] = '\0';
    cfg.addr = addr;
    assert_null(kvr_pub_create(&cfg));
    assert_null(kvr_pub_create(NULL));
    kvr_pub_destroy(NULL);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup(test_register_and_events, flush),
        cmocka_unit_test_setup(test_script_sha, flush),
        cmocka_unit_test_setup(test_heartbeat, flush),
        cmocka_unit_test_setup(test_gap_refused, flush),
        cmocka_unit_test_setup(test_flush_then_register, flush),
        cmocka_unit_test_setup(test_connection_lost, flush),
        cmocka_unit_test_setup(test_unregister, flush),
        cmocka_unit_test_setup(test_retain_gc, flush),
        cmocka_unit_test(test_reply_order),
        cmocka_unit_test(test_bad_config),
    };

    return cmocka_run_group_tests_name("redis_pub", tests, group_setup,
                                       group_teardown);
}
