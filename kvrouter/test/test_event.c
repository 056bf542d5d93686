/*
 * Tests for the KV event codec (kvr_event) and kvr_strerror.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "kvr_err.h"
#include "kvr_event.h"

#define MAXB  64

static const kvr_block_t  blocks3[3] = {
    { 0x0102030405060708ULL, 0x1112131415161718ULL },
    { UINT64_MAX, 0 },
    { 0, UINT64_MAX },
};

static kvr_event_t
mk(kvr_event_type_t type, int has_parent, size_t nblocks)
{
    kvr_event_t  ev;

    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.worker_id = 7;
    ev.generation = 300;
    ev.event_id = 1ULL << 40;
    ev.has_parent = has_parent;
    ev.parent = has_parent ? 0xa1a2a3a4a5a6a7a8ULL : 0;
    ev.nblocks = nblocks;
    ev.blocks = nblocks ? blocks3 : NULL;
    return ev;
}

static size_t
enc(const kvr_event_t *ev, uint8_t *buf, size_t cap)
{
    size_t  len = 0;

    assert_int_equal(kvr_event_encode(ev, buf, cap, &len), KVR_OK);
    assert_int_equal(len, kvr_event_encoded_size(ev));
    return len;
}

static void
assert_same(const kvr_event_t *a, const kvr_event_t *b)
{
    size_t  i;

    assert_int_equal(a->type, b->type);
    assert_true(a->worker_id == b->worker_id);
    assert_true(a->generation == b->generation);
    assert_true(a->event_id == b->event_id);
    assert_int_equal(!!a->has_parent, !!b->has_parent);
    if (a->has_parent) {
        assert_true(a->parent == b->parent);
    }
    assert_int_equal(a->nblocks, b->nblocks);
    for (i = 0; i < a->nblocks; i++) {
        assert_true(a->blocks[i].seq == b->blocks[i].seq);
        if (a->type == KVR_EV_STORED) {
            assert_true(a->blocks[i].local == b->blocks[i].local);
        } else {
            assert_true(b->blocks[i].local == 0);
        }
    }
}

/* Decodes buf and checks peek agrees; returns the decode result. */
static int
dec(const uint8_t *buf, size_t len, kvr_event_t *ev, kvr_block_t *bl)
{
    long  peek = kvr_event_peek_nblocks(buf, len);
    int   rc = kvr_event_decode(buf, len, ev, bl, MAXB);

    if (rc == KVR_OK) {
        assert_int_equal(peek, (long) ev->nblocks);
    } else {
        assert_int_equal(peek, rc);
    }
    return rc;
}

static void
test_round_trip(void **state)
{
    static const struct {
        kvr_event_type_t  type;
        int               parent;
        size_t            nblocks;
    } v[] = {
        { KVR_EV_STORED, 0, 0 }, { KVR_EV_STORED, 0, 3 },
        { KVR_EV_STORED, 1, 1 }, { KVR_EV_STORED, 1, 3 },
        { KVR_EV_REMOVED, 0, 0 }, { KVR_EV_REMOVED, 0, 3 },
        { KVR_EV_CLEARED, 0, 0 }, { KVR_EV_SNAPSHOT, 0, 0 },
    };
    uint8_t      buf[256], buf2[256];
    kvr_block_t  bl[MAXB];
    kvr_event_t  ev, out;
    size_t       i, len;

    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ev = mk(v[i].type, v[i].parent, v[i].nblocks);
        len = enc(&ev, buf, sizeof(buf));

        memset(&out, 0x5a, sizeof(out));
        assert_int_equal(dec(buf, len, &out, bl), KVR_OK);
        assert_same(&ev, &out);
        assert_ptr_equal(out.blocks, bl);

        /* and back again, byte for byte */
        assert_int_equal(enc(&out, buf2, sizeof(buf2)), len);
        assert_memory_equal(buf, buf2, len);
    }
}

static void
test_extreme_ids(void **state)
{
    static const uint64_t  ids[] = {
        0, 1, 127, 128, 16383, 16384, (1ULL << 35) - 1, 1ULL << 35,
        (1ULL << 63) - 1, 1ULL << 63, UINT64_MAX
    };
    uint8_t      buf[128];
    kvr_block_t  bl[MAXB];
    kvr_event_t  ev, out;
    size_t       i, len;

    for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        ev = mk(KVR_EV_REMOVED, 0, 1);
        ev.worker_id = ids[i];
        ev.generation = ids[(i + 3) % 11];
        ev.event_id = ids[(i + 7) % 11];
        len = enc(&ev, buf, sizeof(buf));
        assert_int_equal(dec(buf, len, &out, bl), KVR_OK);
        assert_same(&ev, &out);
    }

    /* UINT64_MAX takes the full ten varint bytes */
    ev = mk(KVR_EV_CLEARED, 0, 0);
    ev.worker_id = ev.generation = ev.event_id = UINT64_MAX;
    assert_int_equal(kvr_event_encoded_size(&ev), 4 + 10 + 10 + 10 + 1);
}

/* The documented layout (kvrouter/README.md), byte for byte. */
static void
test_wire_layout(void **state)
{
    static const uint8_t  want[] = {
        'K', 1, 1, 1,                          /* magic, version, STORED, parent */
        0x07,                                  /* worker_id 7 */
        0xac, 0x02,                            /* generation 300 */
        0x80, 0x80, 0x80, 0x80, 0x80, 0x20,    /* event_id 2^40 */
        0x01,                                  /* nblocks 1 */
        0xa8, 0xa7, 0xa6, 0xa5, 0xa4, 0xa3, 0xa2, 0xa1,   /* parent */
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,   /* seq */
        0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,   /* local */
    };
    static const uint8_t  want_removed[] = {
        'K', 1, 2, 0, 0x05, 0x00, 0x09, 0x01,
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
    };
    uint8_t      buf[64];
    kvr_event_t  ev;

    ev = mk(KVR_EV_STORED, 1, 1);
    assert_int_equal(enc(&ev, buf, sizeof(buf)), sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));

    ev = mk(KVR_EV_REMOVED, 0, 1);
    ev.worker_id = 5;
    ev.generation = 0;
    ev.event_id = 9;
    assert_int_equal(enc(&ev, buf, sizeof(buf)), sizeof(want_removed));
    assert_memory_equal(buf, want_removed, sizeof(want_removed));
}

static void
test_encode_errors(void **state)
{
    uint8_t      buf[128];
    kvr_event_t  ev;
    size_t       need, cap, len;

    /* short buffers: NOMEM at every capacity below the size */
    ev = mk(KVR_EV_STORED, 1, 3);
    need = kvr_event_encoded_size(&ev);
    for (cap = 0; cap < need; cap++) {
        assert_int_equal(kvr_event_encode(&ev, buf, cap, &len),
                         KVR_ERR_NOMEM);
    }
    assert_int_equal(kvr_event_encode(&ev, NULL, 0, &len), KVR_ERR_NOMEM);
    assert_int_equal(kvr_event_encode(&ev, buf, need, NULL), KVR_OK);

    /* events with no encoding */
    assert_int_equal(kvr_event_encode(NULL, buf, sizeof(buf), &len),
                     KVR_ERR_INVAL);
    assert_int_equal(kvr_event_encoded_size(NULL), 0);

    ev = mk(KVR_EV_STORED, 0, 0);
    ev.type = (kvr_event_type_t) 0;
    assert_int_equal(kvr_event_encode(&ev, buf, sizeof(buf), &len),
                     KVR_ERR_INVAL);
    assert_int_equal(kvr_event_encoded_size(&ev), 0);
    ev.type = (kvr_event_type_t) 5;
    assert_int_equal(kvr_event_encode(&ev, buf, sizeof(buf), &len),
                     KVR_ERR_INVAL);

    ev = mk(KVR_EV_REMOVED, 1, 1);               /* parent on REMOVED */
    assert_int_equal(kvr_event_encode(&ev, buf, sizeof(buf), &len),
                     KVR_ERR_INVAL);
    ev = mk(KVR_EV_CLEARED, 0, 1);               /* blocks on CLEARED */
    assert_int_equal(kvr_event_encode(&ev, buf, sizeof(buf), &len),
                     KVR_ERR_INVAL);
    ev = mk(KVR_EV_SNAPSHOT, 1, 0);
    assert_int_equal(kvr_event_encode(&ev, buf, sizeof(buf), &len),
                     KVR_ERR_INVAL);
    ev = mk(KVR_EV_STORED, 0, 2);                /* blocks missing */
    ev.blocks = NULL;
    assert_int_equal(kvr_event_encode(&ev, buf, sizeof(buf), &len),
                     KVR_ERR_INVAL);
    ev = mk(KVR_EV_STORED, 0, 1);                /* size overflows */
    ev.nblocks = SIZE_MAX / 8;
    assert_int_equal(kvr_event_encoded_size(&ev), 0);
    assert_int_equal(kvr_event_encode(&ev, buf, sizeof(buf), &len),
                     KVR_ERR_INVAL);
}

static void
expect_dec(const uint8_t *buf, size_t len, int want)
{
    kvr_block_t  bl[MAXB];
    kvr_event_t  ev;

    memset(&ev, 0x5a, sizeof(ev));
    assert_int_equal(dec(buf, len, &ev, bl), want);
}

static void
test_decode_header_errors(void **state)
{
    uint8_t  b[64];
    size_t   len;
    kvr_event_t  ev = mk(KVR_EV_STORED, 1, 1);

    len = enc(&ev, b, sizeof(b));

    b[0] = 'k';
    expect_dec(b, len, KVR_ERR_INVAL);           /* magic */
    expect_dec(b, 1, KVR_ERR_INVAL);
    b[0] = 'K';

    b[1] = 2;
    expect_dec(b, len, KVR_ERR_VERSION);
    b[1] = 0;
    expect_dec(b, len, KVR_ERR_VERSION);
    b[1] = 1;

    b[2] = 0;
    expect_dec(b, len, KVR_ERR_INVAL);           /* type */
    b[2] = 5;
    expect_dec(b, len, KVR_ERR_INVAL);
    b[2] = 0xff;
    expect_dec(b, len, KVR_ERR_INVAL);
    b[2] = 1;

    b[3] = 3;
    expect_dec(b, len, KVR_ERR_INVAL);           /* unknown flag bit */
    b[3] = 0x80;
    expect_dec(b, len, KVR_ERR_INVAL);
    b[3] = 1;

    expect_dec(b, len, KVR_OK);
    expect_dec(NULL, 0, KVR_ERR_TRUNC);
    expect_dec(NULL, 5, KVR_ERR_INVAL);
    assert_int_equal(kvr_event_decode(b, len, NULL, NULL, 0), KVR_ERR_INVAL);
}

static void
test_decode_flag_on_wrong_type(void **state)
{
    /* has_parent on REMOVED, CLEARED, SNAPSHOT */
    static const uint8_t  rm[] = { 'K', 1, 2, 1, 1, 1, 1, 0,
                                   1, 2, 3, 4, 5, 6, 7, 8 };
    static const uint8_t  cl[] = { 'K', 1, 3, 1, 1, 1, 1, 0,
                                   1, 2, 3, 4, 5, 6, 7, 8 };
    static const uint8_t  sn[] = { 'K', 1, 4, 1, 1, 1, 1, 0,
                                   1, 2, 3, 4, 5, 6, 7, 8 };
    /* blocks on CLEARED / SNAPSHOT */
    static const uint8_t  clb[] = { 'K', 1, 3, 0, 1, 1, 1, 1 };
    static const uint8_t  snb[] = { 'K', 1, 4, 0, 1, 1, 1, 1,
                                    1, 2, 3, 4, 5, 6, 7, 8 };
    static const uint8_t  ok[] = { 'K', 1, 3, 0, 1, 1, 1, 0 };

    expect_dec(rm, sizeof(rm), KVR_ERR_INVAL);
    expect_dec(cl, sizeof(cl), KVR_ERR_INVAL);
    expect_dec(sn, sizeof(sn), KVR_ERR_INVAL);
    expect_dec(clb, sizeof(clb), KVR_ERR_INVAL);
    expect_dec(snb, sizeof(snb), KVR_ERR_INVAL);
    expect_dec(ok, sizeof(ok), KVR_OK);
}

static void
test_decode_varints(void **state)
{
    /* overlong: 1 as 0x81 0x00 */
    static const uint8_t  overlong[] = { 'K', 1, 3, 0, 0x81, 0x00, 0, 0, 0 };
    /* overlong: 0 as 0x80 0x00 (nblocks) */
    static const uint8_t  overlong0[] = { 'K', 1, 3, 0, 0, 0, 0, 0x80, 0x00 };
    /* 2^64: ten bytes, last 0x02 */
    static const uint8_t  over64[] = { 'K', 1, 3, 0,
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02, 0, 0, 0 };
    /* eleven bytes */
    static const uint8_t  eleven[] = { 'K', 1, 3, 0,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0x00,
        0, 0, 0 };
    /* UINT64_MAX: ten bytes, last 0x01: fine */
    static const uint8_t  max64[] = { 'K', 1, 3, 0,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0 };
    /* varint runs off the end */
    static const uint8_t  cut[] = { 'K', 1, 3, 0, 0x01, 0x01, 0x80 };
    kvr_block_t  bl[1];
    kvr_event_t  ev;

    expect_dec(overlong, sizeof(overlong), KVR_ERR_INVAL);
    expect_dec(overlong0, sizeof(overlong0), KVR_ERR_INVAL);
    expect_dec(over64, sizeof(over64), KVR_ERR_INVAL);
    expect_dec(eleven, sizeof(eleven), KVR_ERR_INVAL);
    expect_dec(cut, sizeof(cut), KVR_ERR_TRUNC);

    assert_int_equal(kvr_event_decode(max64, sizeof(max64), &ev, bl, 1),
                     KVR_OK);
    assert_true(ev.worker_id == UINT64_MAX);
    assert_int_equal(ev.type, KVR_EV_CLEARED);
    assert_int_equal(ev.nblocks, 0);
}

static void
test_decode_truncation_and_trailing(void **state)
{
    uint8_t      b[256];
    kvr_event_t  ev;
    size_t       len, cut;
    int          t;

    for (t = KVR_EV_STORED; t <= KVR_EV_SNAPSHOT; t++) {
        ev = mk((kvr_event_type_t) t, t == KVR_EV_STORED,
                t <= KVR_EV_REMOVED ? 3 : 0);
        len = enc(&ev, b, sizeof(b) - 1);

        /* every proper prefix is truncated */
        for (cut = 0; cut < len; cut++) {
            expect_dec(b, cut, KVR_ERR_TRUNC);
        }
        expect_dec(b, len, KVR_OK);

        /* any extra byte is trailing garbage */
        b[len] = 0;
        expect_dec(b, len + 1, KVR_ERR_INVAL);
    }
}

static void
test_decode_huge_nblocks(void **state)
{
    /* STORED, nblocks = 2^64 - 1, two blocks' worth of bytes follow */
    uint8_t  b[64] = { 'K', 1, 1, 0, 1, 1, 1,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
    size_t   hdr = 17;

    expect_dec(b, hdr + 32, KVR_ERR_TRUNC);

    /* nblocks = 2^61: times 8 wraps to 0 in 64 bits */
    {
        uint8_t  r[32] = { 'K', 1, 2, 0, 1, 1, 1,
            0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20 };

        expect_dec(r, 16, KVR_ERR_TRUNC);
        expect_dec(r, 24, KVR_ERR_TRUNC);
    }
}

static void
test_decode_max_blocks(void **state)
{
    uint8_t      b[128];
    kvr_block_t  bl[3];
    kvr_event_t  ev = mk(KVR_EV_STORED, 0, 3), out, before;
    size_t       len;

    len = enc(&ev, b, sizeof(b));

    memset(&out, 0x5a, sizeof(out));
    memset(bl, 0x5a, sizeof(bl));
    before = out;
    assert_int_equal(kvr_event_decode(b, len, &out, bl, 2), KVR_ERR_NOMEM);
    assert_int_equal(kvr_event_decode(b, len, &out, NULL, 3), KVR_ERR_NOMEM);
    /* failures leave the outputs alone */
    assert_memory_equal(&out, &before, sizeof(out));
    assert_true(bl[0].seq == 0x5a5a5a5a5a5a5a5aULL);

    assert_int_equal(kvr_event_peek_nblocks(b, len), 3);
    assert_int_equal(kvr_event_decode(b, len, &out, bl, 3), KVR_OK);
    assert_same(&ev, &out);

    /* no blocks needs no array */
    ev = mk(KVR_EV_CLEARED, 0, 0);
    len = enc(&ev, b, sizeof(b));
    assert_int_equal(kvr_event_decode(b, len, &out, NULL, 0), KVR_OK);
    assert_int_equal(out.nblocks, 0);
}

static void
test_strerror(void **state)
{
    static const int  codes[] = {
        KVR_OK, KVR_ERR_INVAL, KVR_ERR_NOMEM, KVR_ERR_TRUNC,
        KVR_ERR_VERSION, KVR_ERR_FULL, KVR_ERR_NOTFOUND, KVR_ERR_RESYNC,
        KVR_ERR_REDIS
    };
    size_t  i, j;

    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        assert_non_null(kvr_strerror(codes[i]));
        assert_string_not_equal(kvr_strerror(codes[i]), "unknown error");
        for (j = 0; j < i; j++) {
            assert_string_not_equal(kvr_strerror(codes[i]),
                                    kvr_strerror(codes[j]));
        }
    }
    assert_string_equal(kvr_strerror(-999), "unknown error");
    assert_string_equal(kvr_strerror(1), "unknown error");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_extreme_ids),
        cmocka_unit_test(test_wire_layout),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_decode_header_errors),
        cmocka_unit_test(test_decode_flag_on_wrong_type),
        cmocka_unit_test(test_decode_varints),
        cmocka_unit_test(test_decode_truncation_and_trailing),
        cmocka_unit_test(test_decode_huge_nblocks),
        cmocka_unit_test(test_decode_max_blocks),
        cmocka_unit_test(test_strerror),
    };

    return cmocka_run_group_tests_name("kvr_event", tests, NULL, NULL);
}
