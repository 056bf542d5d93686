/*
 * Unit tests of the Redis schema helpers: key names, decimal parsing, the
 * alive value, SHA1 (script names), the u64 set behind the publisher's
 * mirror. No Redis needed.
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
#include "kvr_redis.h"
#include "../src/kvr_redis_int.h"

static void
test_keys(void **state)
{
    char  buf[KVR_REDIS_KEY_MAX];

    (void) state;
    assert_int_equal(kvr_redis_key(buf, sizeof(buf), "llama", "w:", 1, 42),
                     strlen("dyn:v1:llama:w:42"));
    assert_string_equal(buf, "dyn:v1:llama:w:42");
    kvr_redis_key(buf, sizeof(buf), "m/x-1.2", NULL, 0, 0);
    assert_string_equal(buf, "dyn:v1:m/x-1.2:");
    kvr_redis_key(buf, sizeof(buf), "a", "blocks:", 1, UINT64_MAX);
    assert_string_equal(buf, "dyn:v1:a:blocks:18446744073709551615");

    assert_int_equal(kvr_redis_key(buf, 10, "llama", "events", 0, 0),
                     KVR_ERR_NOMEM);
    assert_int_equal(kvr_redis_ns_valid(""), KVR_ERR_INVAL);
    assert_int_equal(kvr_redis_ns_valid(NULL), KVR_ERR_INVAL);
    assert_int_equal(kvr_redis_ns_valid("a:b"), KVR_ERR_INVAL);
    assert_int_equal(kvr_redis_ns_valid("a b"), KVR_ERR_INVAL);
    assert_int_equal(kvr_redis_ns_valid("{a}"), KVR_ERR_INVAL);
    assert_int_equal(kvr_redis_ns_valid("a\x80"), KVR_ERR_INVAL);
    memset(buf, 'x', KVR_REDIS_NS_MAX + 1);
    buf[KVR_REDIS_NS_MAX + 1] = '\0';
    assert_int_equal(kvr_redis_ns_valid(buf), KVR_ERR_INVAL);
    buf[KVR_REDIS_NS_MAX] = '\0';
    assert_int_equal(kvr_redis_ns_valid(buf), KVR_OK);
    assert_int_equal(kvr_redis_key(buf, sizeof(buf), "bad:ns", "w:", 0, 0),
                     KVR_ERR_INVAL);
}

static void
test_parse_u64(void **state)
{
    uint64_t  v;

    (void) state;
    assert_int_equal(kvr_redis_parse_u64("0", 1, &v), KVR_OK);
    assert_true(v == 0);
    assert_int_equal(kvr_redis_parse_u64("18446744073709551615", 20, &v),
                     KVR_OK);
    assert_true(v == UINT64_MAX);
    assert_int_equal(kvr_redis_parse_u64("18446744073709551616", 20, &v),
                     KVR_ERR_INVAL);
    assert_int_equal(kvr_redis_parse_u64("99999999999999999999", 20, &v),
                     KVR_ERR_INVAL);
    assert_int_equal(kvr_redis_parse_u64("", 0, &v), KVR_ERR_INVAL);
    assert_int_equal(kvr_redis_parse_u64("01", 2, &v), KVR_ERR_INVAL);
    assert_int_equal(kvr_redis_parse_u64("-1", 2, &v), KVR_ERR_INVAL);
    assert_int_equal(kvr_redis_parse_u64("+1", 2, &v), KVR_ERR_INVAL);
    assert_int_equal(kvr_redis_parse_u64("12a", 3, &v), KVR_ERR_INVAL);
    assert_int_equal(kvr_redis_parse_u64("123", 2, &v), KVR_OK);
    assert_true(v == 12);
}

static void
test_load(void **state)
{
    kvr_load_t  a, b;
    char        buf[128];
    int         n;

    (void) state;
    a.running = 3;
    a.waiting = UINT32_MAX;
    a.active_blocks = UINT64_MAX;
    a.queued_prefill_tokens = 0;
    a.updated_ms = 1234567890123ULL;
    n = kvr_redis_load_format(&a, buf, sizeof(buf));
    assert_true(n > 0);
    assert_string_equal(buf,
        "3 4294967295 18446744073709551615 0 1234567890123");
    memset(&b, 0xff, sizeof(b));
    assert_int_equal(kvr_redis_load_parse(buf, (size_t) n, &b), KVR_OK);
    assert_true(b.running == a.running && b.waiting == a.waiting
                && b.active_blocks == a.active_blocks
                && b.queued_prefill_tokens == 0
                && b.updated_ms == a.updated_ms);

    assert_int_equal(kvr_redis_load_format(&a, buf, 10), KVR_ERR_NOMEM);
    assert_int_equal(kvr_redis_load_parse("1 2 3 4", 7, &b), KVR_ERR_INVAL);
    assert_int_equal(kvr_redis_load_parse("1 2 3 4 5 ", 10, &b),
                     KVR_ERR_INVAL);
    assert_int_equal(kvr_redis_load_parse("1  2 3 4 5", 10, &b),
                     KVR_ERR_INVAL);
    assert_int_equal(kvr_redis_load_parse("4294967296 0 0 0 0", 18, &b),
                     KVR_ERR_INVAL);
    assert_int_equal(kvr_redis_load_parse("", 0, &b), KVR_ERR_INVAL);
    assert_int_equal(kvr_redis_load_parse("1 2 3 4 5", 9, &b), KVR_OK);
}

/* The set against a naive model, with deletes that exercise the backward
   shift across wrap-around (small table, clustered values). */
static void
test_u64set(void **state)
{
    kvr_u64set_t  s;
    uint64_t      model[512], v, seen;
    size_t        nm = 0, i, pos;
    unsigned      r = 12345;
    int           k, found;

    (void) state;
    assert_int_equal(kvr_u64set_init(&s, 4), KVR_OK);

    for (k = 0; k < 20000; k++) {
        r = r * 1103515245u + 12345u;
        v = (r >> 8) % 300;               /* small range: many collisions */
        found = 0;
        for (i = 0; i < nm; i++) {
            if (model[i] == v) {
                found = 1;
                break;
            }
        }
        if ((r >> 4) & 1) {
            assert_int_equal(kvr_u64set_add(&s, v), !found);
            if (!found) {
                model[nm++] = v;
            }
        } else {
            assert_int_equal(kvr_u64set_del(&s, v), found);
            if (found) {
                model[i] = model[--nm];
            }
        }
        assert_int_equal(s.count, nm);
        if (k % 997 == 0) {
            for (i = 0; i < 300; i++) {
                int  in = 0;
                size_t j;

                for (j = 0; j < nm; j++) {
                    in |= model[j] == i;
                }
                assert_int_equal(kvr_u64set_has(&s, i), in);
            }
            pos = 0;
            seen = 0;
            while (kvr_u64set_next(&s, &pos, &v)) {
                assert_true(kvr_u64set_has(&s, v));
                seen++;
            }
            assert_true(seen == nm);
        }
    }
    kvr_u64set_clear(&s);
    assert_int_equal(s.count, 0);
    assert_false(kvr_u64set_has(&s, 0));
    kvr_u64set_free(&s);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_parse_u64),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_u64set),
    };

    return cmocka_run_group_tests_name("redis_keys", tests, NULL, NULL);
}
