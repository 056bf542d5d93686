/*
 * Tests for kvr_hash: golden vectors from an independent XXH3
 * (kvrouter/test/golden/hashes.txt, made by gen.mjs) and edge cases.
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

#include "kvr_hash.h"

#define GOLDEN_PATH  "kvrouter/test/golden/hashes.txt"

/* ---- golden file reader ---- */

typedef struct {
    char       name[128];
    char       lora[256];
    size_t     block_size;
    uint64_t   seed;
    size_t     ntokens;
    size_t     nblocks;
    uint32_t  *tokens;
    uint64_t  *local;
    uint64_t  *seq;
} golden_case_t;

static int
read_word(FILE *f, char *buf, size_t cap)
{
    int     c;
    size_t  n = 0;

    do {
        c = fgetc(f);
    } while (c == ' ' || c == '\t' || c == '\n' || c == '\r');

    /* comment lines start with '#' */
    while (c == '#') {
        while (c != '\n' && c != EOF) {
            c = fgetc(f);
        }
        while (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            c = fgetc(f);
        }
    }

    if (c == EOF) {
        return 0;
    }
    while (c != EOF && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
        assert_true(n + 1 < cap);
        buf[n++] = (char) c;
        c = fgetc(f);
    }
    buf[n] = '\0';
    return 1;
}

static void
expect_word(FILE *f, const char *want)
{
    char  w[64];

    assert_true(read_word(f, w, sizeof(w)));
    assert_string_equal(w, want);
}

static uint64_t
read_u64(FILE *f)
{
    char                w[64];
    char               *end;
    unsigned long long  v;

    assert_true(read_word(f, w, sizeof(w)));
    v = strtoull(w, &end, 10);
    assert_true(*end == '\0' && w[0] >= '0' && w[0] <= '9');
    return (uint64_t) v;
}

/* Reads the next case; 0 at end of file. */
static int
read_case(FILE *f, golden_case_t *c)
{
    char    w[64];
    size_t  i;

    memset(c, 0, sizeof(*c));
    if (!read_word(f, w, sizeof(w))) {
        return 0;
    }
    assert_string_equal(w, "case");
    assert_true(read_word(f, c->name, sizeof(c->name)));
    expect_word(f, "block_size");
    c->block_size = (size_t) read_u64(f);
    expect_word(f, "lora");
    assert_true(read_word(f, c->lora, sizeof(c->lora)));
    expect_word(f, "seed");
    c->seed = read_u64(f);
    expect_word(f, "ntokens");
    c->ntokens = (size_t) read_u64(f);
    expect_word(f, "nblocks");
    c->nblocks = (size_t) read_u64(f);

    c->tokens = calloc(c->ntokens + 1, sizeof(uint32_t));
    c->local = calloc(c->nblocks + 1, sizeof(uint64_t));
    c->seq = calloc(c->nblocks + 1, sizeof(uint64_t));
    assert_non_null(c->tokens);
    assert_non_null(c->local);
    assert_non_null(c->seq);

    expect_word(f, "tokens");
    for (i = 0; i < c->ntokens; i++) {
        uint64_t  t = read_u64(f);

        assert_true(t <= UINT32_MAX);
        c->tokens[i] = (uint32_t) t;
    }
    for (i = 0; i < c->nblocks; i++) {
        expect_word(f, "block");
        assert_int_equal(read_u64(f), i);
        c->local[i] = read_u64(f);
        c->seq[i] = read_u64(f);
    }
    expect_word(f, "end");
    return 1;
}

static void
free_case(golden_case_t *c)
{
    free(c->tokens);
    free(c->local);
    free(c->seq);
}

static void
check_case(const golden_case_t *c)
{
    const char  *lora = strcmp(c->lora, "-") == 0 ? NULL : c->lora;
    uint64_t     seed, *local, *seq;
    size_t       i, n;

    seed = kvr_hash_seed(lora);
    if (seed != c->seed) {
        fail_msg("%s: seed %llu, want %llu", c->name,
                 (unsigned long long) seed, (unsigned long long) c->seed);
    }

    local = calloc(c->nblocks + 1, sizeof(uint64_t));
    seq = calloc(c->nblocks + 1, sizeof(uint64_t));
    assert_non_null(local);
    assert_non_null(seq);

    n = kvr_hash_blocks(c->tokens, c->ntokens, c->block_size, seed, local,
                        seq);
    if (n != c->nblocks) {
        fail_msg("%s: %zu blocks, want %zu", c->name, n, c->nblocks);
    }

    for (i = 0; i < n; i++) {
        if (local[i] != c->local[i] || seq[i] != c->seq[i]) {
            fail_msg("%s: block %zu: got %llu %llu, want %llu %llu",
                     c->name, i, (unsigned long long) local[i],
                     (unsigned long long) seq[i],
                     (unsigned long long) c->local[i],
                     (unsigned long long) c->seq[i]);
        }
        /* the single-block functions agree with the batch one */
        assert_true(kvr_hash_local(c->tokens + i * c->block_size,
                                   c->block_size, seed) == local[i]);
        if (i > 0) {
            assert_true(kvr_hash_seq(seq[i - 1], local[i]) == seq[i]);
        }
    }

    free(local);
    free(seq);
}

static void
test_golden(void **state)
{
    golden_case_t  c;
    FILE          *f;
    int            cases = 0, blocks = 0, lora_cases = 0;

    f = fopen(GOLDEN_PATH, "r");
    if (f == NULL) {
        fail_msg("cannot open %s (run from the repository root)",
                 GOLDEN_PATH);
    }

    while (read_case(f, &c)) {
        check_case(&c);
        cases++;
        blocks += (int) c.nblocks;
        lora_cases += strcmp(c.lora, "-") != 0;
        free_case(&c);
    }
    fclose(f);

    print_message("golden: %d cases, %d blocks, %d with a LoRA\n", cases,
                  blocks, lora_cases);
    assert_true(cases >= 100);
    assert_true(lora_cases > 0);
}

/*
 * Values returned by Dynamo's own binding (dynamo._core.
 * compute_block_hash_for_seq) for tokens 1..8, block size 4, as checked by a
 * Dynamo fork (components/src/dynamo/vllm/worker_evidence.py); seq[1] is
 * that file's sequence-chain check value.
 */
static void
test_dynamo_published(void **state)
{
    uint32_t  t[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    uint64_t  local[2], seq[2];

    assert_int_equal(kvr_hash_blocks(t, 8, 4, KVR_HASH_SEED, local, seq), 2);
    assert_true(local[0] == 14643705804678351452ULL);
    assert_true(local[1] == 16777012769546811212ULL);
    assert_true(seq[0] == local[0]);
    assert_true(seq[1] == 4945711292740353085ULL);
}

static void
test_partial_tail_never_hashed(void **state)
{
    uint32_t  t[11] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 };
    uint64_t  l1[4], s1[4], l2[4], s2[4];
    size_t    i;

    for (i = 0; i < 4; i++) {
        l1[i] = s1[i] = l2[i] = s2[i] = 0xdeadbeefULL;
    }

    assert_int_equal(kvr_hash_blocks(t, 11, 4, KVR_HASH_SEED, l1, s1), 2);
    /* entries past n untouched */
    assert_true(l1[2] == 0xdeadbeefULL && s1[2] == 0xdeadbeefULL);

    /* changing the tail changes nothing */
    t[8] = 900;
    t[10] = 4294967295u;
    assert_int_equal(kvr_hash_blocks(t, 11, 4, KVR_HASH_SEED, l2, s2), 2);
    assert_memory_equal(l1, l2, 2 * sizeof(uint64_t));
    assert_memory_equal(s1, s2, 2 * sizeof(uint64_t));

    /* shorter than one block: nothing */
    assert_int_equal(kvr_hash_blocks(t, 3, 4, KVR_HASH_SEED, l2, s2), 0);
    assert_int_equal(kvr_hash_blocks(t, 0, 4, KVR_HASH_SEED, l2, s2), 0);
}

static void
test_block_size_zero(void **state)
{
    uint32_t  t[4] = { 1, 2, 3, 4 };
    uint64_t  l = 7, s = 9;

    assert_int_equal(kvr_hash_blocks(t, 4, 0, KVR_HASH_SEED, &l, &s), 0);
    assert_true(l == 7 && s == 9);
    assert_int_equal(kvr_hash_blocks(NULL, 0, 0, KVR_HASH_SEED, &l, &s), 0);
    assert_int_equal(kvr_hash_blocks(NULL, 8, 4, KVR_HASH_SEED, &l, &s), 0);
}

static void
test_null_outputs(void **state)
{
    uint32_t  t[12] = { 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
    uint64_t  l[3], s[3], l2[3], s2[3];

    assert_int_equal(kvr_hash_blocks(t, 12, 4, KVR_HASH_SEED, l, s), 3);
    assert_int_equal(kvr_hash_blocks(t, 12, 4, KVR_HASH_SEED, NULL, s2), 3);
    assert_memory_equal(s, s2, sizeof(s));
    assert_int_equal(kvr_hash_blocks(t, 12, 4, KVR_HASH_SEED, l2, NULL), 3);
    assert_memory_equal(l, l2, sizeof(l));
    assert_int_equal(kvr_hash_blocks(t, 12, 4, KVR_HASH_SEED, NULL, NULL), 3);
}

static void
test_lora_seed(void **state)
{
    uint32_t  t[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    uint64_t  a[2], b[2], sa[2], sb[2];

    assert_true(kvr_hash_seed(NULL) == KVR_HASH_SEED);
    assert_true(kvr_hash_seed("") == KVR_HASH_SEED);
    assert_true(kvr_hash_seed("alpha-7b") != KVR_HASH_SEED);
    assert_true(kvr_hash_seed("alpha-7b") != kvr_hash_seed("alpha-7c"));

    kvr_hash_blocks(t, 8, 4, kvr_hash_seed(""), a, sa);
    kvr_hash_blocks(t, 8, 4, KVR_HASH_SEED, b, sb);
    assert_memory_equal(a, b, sizeof(a));
    assert_memory_equal(sa, sb, sizeof(sa));

    /* a LoRA changes every local hash, hence every sequence hash */
    kvr_hash_blocks(t, 8, 4, kvr_hash_seed("alpha-7b"), a, sa);
    assert_true(a[0] != b[0] && a[1] != b[1]);
    assert_true(sa[0] != sb[0] && sa[1] != sb[1]);
}

static void
test_prefix_property(void **state)
{
    uint32_t  t[64];
    uint64_t  s_full[16], s_pre[8];
    size_t    i;

    for (i = 0; i < 64; i++) {
        t[i] = (uint32_t) (i * 2654435761u);
    }
    /* a sequence's hashes are a prefix of a longer sequence's */
    assert_int_equal(kvr_hash_blocks(t, 64, 4, KVR_HASH_SEED, NULL, s_full),
                     16);
    assert_int_equal(kvr_hash_blocks(t, 35, 4, KVR_HASH_SEED, NULL, s_pre), 8);
    assert_memory_equal(s_full, s_pre, sizeof(s_pre));

    /* the same block at another position gets another sequence hash */
    for (i = 0; i < 8; i++) {
        t[i] = 42;
    }
    assert_int_equal(kvr_hash_blocks(t, 8, 4, KVR_HASH_SEED, s_pre, s_full),
                     2);
    assert_true(s_pre[0] == s_pre[1]);
    assert_true(s_full[0] != s_full[1]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_dynamo_published),
        cmocka_unit_test(test_partial_tail_never_hashed),
        cmocka_unit_test(test_block_size_zero),
        cmocka_unit_test(test_null_outputs),
        cmocka_unit_test(test_lora_seed),
        cmocka_unit_test(test_prefix_property),
    };

    return cmocka_run_group_tests_name("kvr_hash", tests, NULL, NULL);
}
