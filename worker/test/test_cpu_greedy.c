/*
 * The cpu backend end to end on stories260K (a real trained model): the
 * greedy continuation of "Once upon a time" must equal the known-good ids
 * from the original llama2.c program (models/stories260K/README.md),
 * prefilled whole, in chunks, and through a shuffled block table.
 * Run from the repository root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dw_backend.h"
#include "support/dw_tsupport_model.h"

typedef struct {
    dw_model_t    *m;
    dw_backend_t  *be;
} fix_t;

static int
setup_bs(void **state, uint32_t block_size, uint32_t threads)
{
    fix_t              *f = calloc(1, sizeof(*f));
    char                err[256];
    dw_backend_opts_t   o;

    assert_non_null(f);
    if (dw_model_load(DW_TS_STORIES, &f->m, err, sizeof(err)) != 0) {
        fail_msg("load: %s", err);
    }
    memset(&o, 0, sizeof(o));
    o.block_size = block_size;
    o.n_blocks = 64;
    o.threads = threads;
    if (dw_backend_cpu_create(f->m, &o, &f->be, err, sizeof(err)) != 0) {
        fail_msg("create: %s", err);
    }
    *state = f;
    return 0;
}

static int
setup16(void **state)
{
    return setup_bs(state, 16, 2);
}

static int
setup4(void **state)
{
    return setup_bs(state, 4, 3);
}

static int
teardown(void **state)
{
    fix_t  *f = *state;

    f->be->ops->destroy(f->be);
    dw_model_free(f->m);
    free(f);
    return 0;
}

static void
check(fix_t *f, const uint32_t *chunks, uint32_t n_chunks,
    const uint32_t *blocks, uint32_t n_blocks)
{
    uint32_t  out[25];
    int       i;

    assert_int_equal(dw_ts_greedy(f->be, dw_ts_stories_prompt, 5, chunks,
                                  n_chunks, blocks, n_blocks, out, 25), 0);
    for (i = 0; i < 25; i++) {
        if (out[i] != dw_ts_stories_greedy[i]) {
            fail_msg("id %d: got %u, known-good %u", i, out[i],
                     dw_ts_stories_greedy[i]);
        }
    }
}

static void
test_greedy_whole(void **state)
{
    static const uint32_t  ch[] = { 5 };
    static const uint32_t  bl[] = { 0, 1 };

    check(*state, ch, 1, bl, 2);
}

static void
test_greedy_chunked(void **state)
{
    static const uint32_t  ch23[] = { 2, 3 };
    static const uint32_t  ch1111[] = { 1, 1, 1, 1, 1 };
    static const uint32_t  ch41[] = { 4, 1 };
    static const uint32_t  bl[] = { 3, 9 };

    check(*state, ch23, 2, bl, 2);
    check(*state, ch1111, 5, bl, 2);
    check(*state, ch41, 2, bl, 2);
}

/* block size 4: the 30 positions span 8 blocks, in scrambled pool order */
static void
test_greedy_block_table(void **state)
{
    static const uint32_t  ch[] = { 3, 2 };
    static const uint32_t  bl[] = { 41, 7, 63, 0, 22, 13, 58, 30 };

    check(*state, ch, 2, bl, 8);
}

/*
 * A sequence's logits are bit-identical alone and inside a busy batch
 * (other prompts being prefilled, other sequences decoding), step after
 * step: the engine relies on it for "same greedy output in any batch".
 */
static void
test_batch_independent(void **state)
{
    fix_t          *f = *state;
    uint32_t        V = f->be->cfg.vocab_size;
    uint32_t        bl_a[] = { 0, 1 }, bl_b[] = { 2, 3 }, bl_c[] = { 4, 5 };
    uint32_t        other[9] = { 1, 20, 30, 40, 50, 60, 70, 80, 90 };
    uint32_t        tok_a, tok_c = 7, step, i;
    float          *alone, *batch;
    dw_seq_step_t   seqs[3];
    dw_step_t       st;

    alone = malloc((size_t) 6 * V * sizeof(float));
    batch = malloc((size_t) 3 * V * sizeof(float));
    assert_non_null(alone);
    assert_non_null(batch);

    /* alone: prefill, then 5 decode steps (argmax fed back) */
    memset(seqs, 0, sizeof(seqs));
    memset(&st, 0, sizeof(st));
    seqs[0] = (dw_seq_step_t) { dw_ts_stories_prompt, 5, 0, bl_a, 2, 1 };
    st.seqs = seqs;
    st.n_seqs = 1;
    st.n_tokens = 5;
    st.n_logits = 1;
    for (step = 0; step < 6; step++) {
        st.logits = alone + (size_t) step * V;
        assert_int_equal(f->be->ops->forward(f->be, &st), 0);
        tok_a = dw_ts_argmax(st.logits, V);
        seqs[0] = (dw_seq_step_t) { &tok_a, 1, 5 + step, bl_a, 2, 1 };
        st.n_tokens = 1;
    }

    /* in a batch: C decodes, B prefills (9 tokens, then 1 per step), A
     * as before; A placed between them so its rows move around */
    seqs[0] = (dw_seq_step_t) { other, 9, 0, bl_b, 2, 1 };
    seqs[1] = (dw_seq_step_t) { dw_ts_stories_prompt, 5, 0, bl_a, 2, 1 };
    seqs[2] = (dw_seq_step_t) { &tok_c, 1, 0, bl_c, 2, 0 };
    st.n_seqs = 3;
    st.n_tokens = 15;
    st.n_logits = 2;
    for (step = 0; step < 6; step++) {
        st.logits = batch;
        assert_int_equal(f->be->ops->forward(f->be, &st), 0);
        for (i = 0; i < V; i++) {
            if (memcmp(&batch[V + i], &alone[(size_t) step * V + i], 4)
                != 0)
            {
                fail_msg("step %u logit %u: %.9g in a batch, %.9g alone",
                         step, i, batch[V + i], alone[(size_t) step * V + i]);
            }
        }
        tok_a = dw_ts_argmax(batch + V, V);
        seqs[1] = (dw_seq_step_t) { &tok_a, 1, 5 + step, bl_a, 2, 1 };
        seqs[0] = (dw_seq_step_t) { &other[step], 1, 9 + step, bl_b, 2, 1 };
        seqs[2] = (dw_seq_step_t) { &tok_c, 1, 1 + step, bl_c, 2, 0 };
        st.n_tokens = 3;
    }
    free(alone);
    free(batch);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_greedy_whole, setup16,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_greedy_chunked, setup16,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_greedy_block_table, setup4,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_batch_independent, setup16,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
