/*
 * The padded decode step of the cuda backend's graphs (dw_cu_pad.c),
 * checked without a GPU: bucket and context-bound choice, which steps
 * can run as a graph, the padded metadata (real rows as the eager
 * layout, padding rows on the dummy block, every row's logits) and the
 * logits copied back to the engine.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dw_cu_pad.h"

#define BS     4
#define POOL   20             /* engine blocks 0..19; the dummy is 20 */

static void
test_bucket(void **state)
{
    static const uint32_t  n[] = { 0, 1, 2, 3, 4, 5, 8, 9, 33, 64, 65, 200,
                                   255, 256, 257, 100000 };
    static const uint32_t  b[] = { 0, 1, 2, 4, 4, 8, 8, 16, 64, 64, 128,
                                   256, 256, 256, 0, 0 };
    size_t                 i;

    for (i = 0; i < sizeof(n) / sizeof(n[0]); i++) {
        if (dw_cu_pad_bucket(n[i]) != b[i]) {
            fail_msg("bucket of %u: %u, want %u", n[i],
                     dw_cu_pad_bucket(n[i]), b[i]);
        }
    }
}

static void
test_ctx_bound(void **state)
{
    assert_int_equal(dw_cu_pad_ctx_bound(0), DW_CU_GRAPH_MIN_CTX);
    assert_int_equal(dw_cu_pad_ctx_bound(1), 512);
    assert_int_equal(dw_cu_pad_ctx_bound(512), 512);
    assert_int_equal(dw_cu_pad_ctx_bound(513), 1024);
    assert_int_equal(dw_cu_pad_ctx_bound(5000), 8192);
    assert_int_equal(dw_cu_pad_ctx_bound(131072), 131072);
    assert_int_equal(dw_cu_pad_ctx_bound(131073), 262144);
    assert_int_equal(dw_cu_pad_ctx_bound(0x80000000u), 0x80000000u);
    assert_int_equal(dw_cu_pad_ctx_bound(0x80000001u), 0x80000001u);
}

/* n decode sequences, seq i at position pos0 + 3 (i % 8), token 50 + i,
   blocks i, i + 1, .. (mod POOL); want_logits unless i % 4 == 2 */
typedef struct {
    dw_seq_step_t  s[300];
    uint32_t       tok[300], blk[300][8];
    float          logits[1];
    dw_step_t      st;
} dec_t;

static void
decode_step(dec_t *d, uint32_t n, uint32_t pos0)
{
    uint32_t  i, b, logits = 0;

    for (i = 0; i < n; i++) {
        uint32_t  pos = pos0 + 3 * (i % 8), nb = pos / BS + 1;

        assert_true(nb <= 8);
        d->tok[i] = 50 + i;
        for (b = 0; b < nb; b++) {
            d->blk[i][b] = (i + 7 * b) % POOL;
        }
        d->s[i] = (dw_seq_step_t) { &d->tok[i], 1, pos, d->blk[i], nb,
                                    i % 4 != 2 };
        logits += i % 4 != 2;
    }
    d->st = (dw_step_t) { d->s, n, n, logits, d->logits, 0 };
}

static void
test_eligible(void **state)
{
    static dec_t           d;
    dw_cu_plan_t           p, pp;
    char                   err[128];
    static const uint32_t  tok2[2] = { 1, 2 }, blk[1] = { 3 };

    decode_step(&d, 3, 5);
    assert_int_equal(dw_cu_plan(&d.st, 1000, BS, POOL, &p, err, sizeof(err)),
                     0);
    assert_true(dw_cu_pad_eligible(&p));
    /* a prompt chunk in the step: eager */
    d.s[1] = (dw_seq_step_t) { tok2, 2, 0, blk, 1, 1 };
    d.st.n_tokens = 4;
    assert_int_equal(dw_cu_plan(&d.st, 1000, BS, POOL, &p, err, sizeof(err)),
                     0);
    assert_false(dw_cu_pad_eligible(&p));
    assert_int_equal(dw_cu_pad_plan(&p, 4, 512, BS, &pp), -1);
    /* the largest bucket, and one more */
    decode_step(&d, 256, 0);
    assert_int_equal(dw_cu_plan(&d.st, 1000, BS, POOL, &p, err, sizeof(err)),
                     0);
    assert_true(dw_cu_pad_eligible(&p));
    decode_step(&d, 257, 0);
    assert_int_equal(dw_cu_plan(&d.st, 1000, BS, POOL, &p, err, sizeof(err)),
                     0);
    assert_false(dw_cu_pad_eligible(&p));
}

static void
test_pad_plan(void **state)
{
    static dec_t  d;
    dw_cu_plan_t  p, pp, fresh;
    char          err[128];

    decode_step(&d, 3, 5);          /* positions 5, 8, 11: contexts to 12 */
    assert_int_equal(dw_cu_plan(&d.st, 1000, BS, POOL, &p, err, sizeof(err)),
                     0);
    assert_int_equal(p.max_ctx, 12);
    assert_int_equal(dw_cu_pad_plan(&p, 2, 512, BS, &pp), -1);   /* < n */
    assert_int_equal(dw_cu_pad_plan(&p, 4, 8, BS, &pp), -1);     /* < ctx */
    assert_int_equal(dw_cu_pad_plan(&p, 4, 512, BS, &pp), 0);
    assert_int_equal(pp.rows, 4);
    assert_int_equal(pp.n_dec, 4);
    assert_int_equal(pp.n_pf, 0);
    assert_int_equal(pp.mb, 128);
    assert_int_equal(pp.max_ctx, 512);
    assert_int_equal(pp.n_logits, 4);
    /* the same layout as a plan of those counts */
    memset(&fresh, 0, sizeof(fresh));
    fresh.rows = fresh.n_dec = fresh.n_logits = 4;
    fresh.mb = 128;
    dw_cu_plan_layout(&fresh);
    assert_int_equal(pp.total, fresh.total);
    assert_int_equal(pp.total, 4 * 3 + 4 + 4 * 128 + 4);
    assert_int_equal(pp.dec_tables, fresh.dec_tables);
    assert_int_equal(pp.dec_ctx, fresh.dec_ctx);
    assert_int_equal(pp.logit_rows, fresh.logit_rows);
    /* a bound that is not a multiple of the block size */
    assert_int_equal(dw_cu_pad_plan(&p, 4, 13, BS, &pp), 0);
    assert_int_equal(pp.mb, 4);
}

static void
test_pad_fill(void **state)
{
    static dec_t  d;
    dw_cu_plan_t  p, pp;
    char          err[128];
    uint32_t     *meta, seq_row[5], i, b;

    decode_step(&d, 5, 2);          /* positions 2, 5, 8, 11, 14 */
    assert_int_equal(dw_cu_plan(&d.st, 1000, BS, POOL, &p, err, sizeof(err)),
                     0);
    assert_int_equal(dw_cu_pad_plan(&p, dw_cu_pad_bucket(5), 512, BS, &pp),
                     0);
    assert_int_equal(pp.rows, 8);
    meta = malloc((pp.total + 1) * sizeof(*meta));
    assert_non_null(meta);
    memset(meta, 0xee, (pp.total + 1) * sizeof(*meta));
    dw_cu_pad_fill(&d.st, BS, POOL, &pp, meta, seq_row);
    for (i = 0; i < 5; i++) {
        uint32_t  pos = 2 + 3 * i, nb = pos / BS + 1;

        assert_int_equal(seq_row[i], i);
        assert_int_equal(meta[pp.tokens + i], 50 + i);
        assert_int_equal(meta[pp.pos + i], pos);
        assert_int_equal(meta[pp.slot + i],
                         d.blk[i][pos / BS] * BS + pos % BS);
        assert_int_equal(meta[pp.dec_ctx + i], pos + 1);
        for (b = 0; b < nb; b++) {
            assert_int_equal(meta[pp.dec_tables + i * pp.mb + b],
                             d.blk[i][b]);
        }
        /* past the sequence: never read, but inside the pool */
        for (; b < pp.mb; b++) {
            assert_true(meta[pp.dec_tables + i * pp.mb + b] <= POOL);
        }
    }
    for (i = 5; i < 8; i++) {
        assert_int_equal(meta[pp.tokens + i], 0);
        assert_int_equal(meta[pp.pos + i], 0);
        assert_int_equal(meta[pp.slot + i], POOL * BS);
        assert_int_equal(meta[pp.dec_ctx + i], 1);
        for (b = 0; b < pp.mb; b++) {
            assert_int_equal(meta[pp.dec_tables + i * pp.mb + b], POOL);
        }
    }
    /* every row's logits, in row order */
    for (i = 0; i < 8; i++) {
        assert_int_equal(meta[pp.logit_rows + i], i);
    }
    assert_int_equal(meta[pp.total], 0xeeeeeeee);
    free(meta);
}

static void
test_copies(void **state)
{
    static dec_t      d;
    dw_cu_pad_copy_t  r[16];

    /* want_logits: 1 1 0 1 1 1 0 1 1 1 */
    decode_step(&d, 10, 0);
    assert_int_equal(dw_cu_pad_copies(&d.st, r), 3);
    assert_int_equal(r[0].src, 0);
    assert_int_equal(r[0].dst, 0);
    assert_int_equal(r[0].n, 2);
    assert_int_equal(r[1].src, 3);
    assert_int_equal(r[1].dst, 2);
    assert_int_equal(r[1].n, 3);
    assert_int_equal(r[2].src, 7);
    assert_int_equal(r[2].dst, 5);
    assert_int_equal(r[2].n, 3);
    assert_int_equal(r[2].dst + r[2].n, d.st.n_logits);
    /* all of them: one copy */
    decode_step(&d, 2, 0);
    assert_int_equal(dw_cu_pad_copies(&d.st, r), 1);
    assert_int_equal(r[0].n, 2);
    /* none */
    d.s[0].want_logits = d.s[1].want_logits = 0;
    assert_int_equal(dw_cu_pad_copies(&d.st, r), 0);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_bucket),
        cmocka_unit_test(test_ctx_bound),
        cmocka_unit_test(test_eligible),
        cmocka_unit_test(test_pad_plan),
        cmocka_unit_test(test_pad_fill),
        cmocka_unit_test(test_copies),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
