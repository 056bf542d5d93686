/*
 * The cuda backend's step layout (dw_cu_plan.c), checked without a GPU:
 * decode rows first, prompt chunks after, pool slots, padded block
 * tables, chunk descriptors and logits rows in seq order, on a step that
 * mixes both kinds out of order; bad steps refused with a reason.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "dw_cu_plan.h"

#define BS  4

static const uint32_t  tok_a[5] = { 10, 11, 12, 13, 14 }, tok_b[1] = { 20 };
static const uint32_t  tok_c[3] = { 30, 31, 32 }, tok_d[1] = { 40 };
static const uint32_t  blk_a[2] = { 3, 9 }, blk_b[2] = { 5, 6 };
static const uint32_t  blk_c[2] = { 1, 2 }, blk_d[1] = { 7 };

/* A: a 5-token prompt; B: decode at 7; C: a chunk at 4..6 without
   logits; D: decode of a first token */
static void
mixed(dw_seq_step_t *s, dw_step_t *st, float *logits)
{
    s[0] = (dw_seq_step_t) { tok_a, 5, 0, blk_a, 2, 1 };
    s[1] = (dw_seq_step_t) { tok_b, 1, 7, blk_b, 2, 1 };
    s[2] = (dw_seq_step_t) { tok_c, 3, 4, blk_c, 2, 0 };
    s[3] = (dw_seq_step_t) { tok_d, 1, 0, blk_d, 1, 1 };
    *st = (dw_step_t) { s, 4, 10, 3, logits, 0 };
}

static void
expect(const uint32_t *got, const uint32_t *want, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (got[i] != want[i]) {
            fail_msg("element %zu: %u, want %u", i, got[i], want[i]);
        }
    }
}

static void
test_mixed_step(void **state)
{
    dw_seq_step_t  s[4];
    dw_step_t      st;
    dw_cu_plan_t   p;
    float          logits[3];
    uint32_t       meta[64], seq_row[4];
    char           err[128];
    static const uint32_t  tokens[10] = { 20, 40, 10, 11, 12, 13, 14, 30, 31,
                                          32 };
    static const uint32_t  pos[10] = { 7, 0, 0, 1, 2, 3, 4, 4, 5, 6 };
    /* B: position 7 in block 6, slot 3; D: block 7; A: block 3 then 9;
       C: positions 4..6 in block 2 */
    static const uint32_t  slot[10] = { 27, 28, 12, 13, 14, 15, 36, 8, 9,
                                        10 };
    static const uint32_t  logit_rows[3] = { 6, 0, 1 };
    static const uint32_t  dec_tables[4] = { 5, 6, 7, 0 };
    static const uint32_t  pf_tables[4] = { 3, 9, 1, 2 };
    static const uint32_t  rows_of[4] = { 2, 0, 7, 1 };

    mixed(s, &st, logits);
    assert_int_equal(dw_cu_plan(&st, 100, BS, 20, &p, err, sizeof(err)), 0);
    assert_int_equal(p.rows, 10);
    assert_int_equal(p.n_dec, 2);
    assert_int_equal(p.n_pf, 2);
    assert_int_equal(p.mb, 2);
    assert_int_equal(p.max_ctx, 8);
    assert_int_equal(p.max_q, 5);
    assert_int_equal(p.n_logits, 3);
    assert_int_equal(p.total, 10 * 3 + 3 + 4 + 2 + 4 + 3 * 2);
    memset(meta, 0xee, sizeof(meta));
    dw_cu_plan_fill(&st, BS, &p, meta, seq_row);
    expect(seq_row, rows_of, 4);
    expect(meta + p.tokens, tokens, 10);
    expect(meta + p.pos, pos, 10);
    expect(meta + p.slot, slot, 10);
    expect(meta + p.logit_rows, logit_rows, 3);
    expect(meta + p.dec_tables, dec_tables, 4);
    assert_int_equal(meta[p.dec_ctx], 8);
    assert_int_equal(meta[p.dec_ctx + 1], 1);
    expect(meta + p.pf_tables, pf_tables, 4);
    /* chunk rows counted from the first prompt row */
    assert_int_equal(meta[p.pf_qstart], 0);
    assert_int_equal(meta[p.pf_qstart + 1], 5);
    assert_int_equal(meta[p.pf_qlen], 5);
    assert_int_equal(meta[p.pf_qlen + 1], 3);
    assert_int_equal(meta[p.pf_pos0], 0);
    assert_int_equal(meta[p.pf_pos0 + 1], 4);
    /* nothing written past the end */
    assert_int_equal(meta[p.total], 0xeeeeeeee);
}

static void
test_bad_steps(void **state)
{
    dw_seq_step_t  s[4];
    dw_step_t      st;
    dw_cu_plan_t   p;
    float          logits[3];
    char           err[128];
    uint32_t       bad_tok[1] = { 100 }, bad_blk[2] = { 5, 20 };

    mixed(s, &st, logits);
    s[3].tokens = bad_tok;
    assert_int_equal(dw_cu_plan(&st, 100, BS, 20, &p, err, sizeof(err)), -1);
    assert_string_equal(err, "seq 3: token 100 out of vocab");

    mixed(s, &st, logits);
    s[1].blocks = bad_blk;
    assert_int_equal(dw_cu_plan(&st, 100, BS, 20, &p, err, sizeof(err)), -1);
    assert_string_equal(err, "seq 1: block 20 out of the pool");

    /* the table does not cover the positions */
    mixed(s, &st, logits);
    s[1].n_blocks = 1;
    assert_int_equal(dw_cu_plan(&st, 100, BS, 20, &p, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "seq 1: bad step"));

    mixed(s, &st, logits);
    st.n_logits = 2;
    assert_int_equal(dw_cu_plan(&st, 100, BS, 20, &p, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "step counts disagree"));

    mixed(s, &st, logits);
    st.logits = NULL;
    assert_int_equal(dw_cu_plan(&st, 100, BS, 20, &p, err, sizeof(err)), -1);

    mixed(s, &st, logits);
    s[2].n_tokens = 0;
    assert_int_equal(dw_cu_plan(&st, 100, BS, 20, &p, err, sizeof(err)), -1);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_mixed_step),
        cmocka_unit_test(test_bad_steps),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
