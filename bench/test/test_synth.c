/*
 * synthesize -> parse back -> analyze. The hit rate of hand-made traces
 * computed by hand; synthesized traces' prefix structure checked against
 * hand-derived hash ids; --target-hit-rate met within 0.02 as measured by
 * analyze on the parsed file; no sharing gives 0.
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

#include "db_cmd.h"
#include "db_trace.h"
#include "db_trace_int.h"

static int
load_str(const char *text, db_trace_t *tr)
{
    FILE  *fp = fmemopen((void *) text, strlen(text), "r");
    char   err[256];
    int    rc;

    assert_non_null(fp);
    rc = db_trace_load_fp(fp, "t", tr, err, sizeof(err));
    if (rc != 0) {
        fail_msg("%s", err);
    }
    fclose(fp);
    return rc;
}

/*
 * In timestamp order A(0) C(5) B(10) D(30) E(40):
 *   A [1 2 3]    0 hits
 *   C [1 5]      1 (1)
 *   B [1 2 4]    2 (1 2; 4 is new)
 *   D [7 7]      0 (a request's own repeat is not a hit)
 *   E [1 2 3 8]  3
 * hits 6 of 14 blocks; unique {1 2 3 4 5 7 8} = 7.
 * ISL sorted 900 1000 1400 1500 2000: mean 1360, median 1400,
 * p90 = 1500 + 0.6 * 500 = 1800, p99 = 1500 + 0.96 * 500 = 1980.
 */
static void
test_analyze_by_hand(void **state)
{
    const char  *t =
        "{\"timestamp\": 0, \"input_length\": 1500, \"output_length\": 10, "
        "\"hash_ids\": [1, 2, 3]}\n"
        "{\"timestamp\": 10, \"input_length\": 1400, \"output_length\": 20, "
        "\"hash_ids\": [1, 2, 4]}\n"
        "{\"timestamp\": 5, \"input_length\": 900, \"output_length\": 30, "
        "\"hash_ids\": [1, 5], \"session_id\": \"x\"}\n"
        "{\"timestamp\": 30, \"input_length\": 1000, \"output_length\": 40, "
        "\"hash_ids\": [7, 7]}\n"
        "{\"timestamp\": 40, \"input_length\": 2000, \"output_length\": 50, "
        "\"hash_ids\": [1, 2, 3, 8]}\n";
    db_trace_t     tr;
    db_analysis_t  a;

    load_str(t, &tr);
    db_trace_analyze(&tr, &a);
    assert_int_equal(a.requests, 5);
    assert_int_equal(a.sessions, 1);
    assert_int_equal(a.blocks, 14);
    assert_int_equal(a.unique_blocks, 7);
    assert_int_equal(a.hits, 6);
    assert_float_equal(a.hit_rate, 6.0 / 14.0, 1e-12);
    assert_float_equal(a.duration_s, 0.040, 1e-12);
    assert_float_equal(a.isl_mean, 1360, 1e-9);
    assert_float_equal(a.isl_median, 1400, 1e-9);
    assert_float_equal(a.isl_p90, 1800, 1e-9);
    assert_float_equal(a.isl_p99, 1980, 1e-9);
    assert_float_equal(a.isl_min, 900, 0);
    assert_float_equal(a.isl_max, 2000, 0);
    assert_float_equal(a.osl_mean, 30, 1e-9);
    assert_float_equal(a.osl_median, 30, 1e-9);
    db_trace_free(&tr);
}

/*
 * A prefix cache keys a block by its whole prefix: B reuses id 5 after a
 * different first block, so the server, which hashes block 5's tokens
 * after block 9's, misses; C repeats A's prefix and hits it.
 *   A [3 5]      0 hits
 *   B [9 5]      0 (5 follows 9, not 3)
 *   C [3 5 9]    2
 * hits 2 of 7 blocks; unique ids {3 5 9} = 3.
 */
static void
test_analyze_prefix_keys(void **state)
{
    const char  *t =
        "{\"timestamp\": 0, \"input_length\": 2, \"output_length\": 1, "
        "\"hash_ids\": [3, 5]}\n"
        "{\"timestamp\": 1, \"input_length\": 2, \"output_length\": 1, "
        "\"hash_ids\": [9, 5]}\n"
        "{\"timestamp\": 2, \"input_length\": 3, \"output_length\": 1, "
        "\"hash_ids\": [3, 5, 9]}\n";
    db_trace_t     tr;
    db_analysis_t  a;

    load_str(t, &tr);
    db_trace_analyze(&tr, &a);
    assert_int_equal(a.blocks, 7);
    assert_int_equal(a.hits, 2);
    assert_int_equal(a.unique_blocks, 3);
    db_trace_free(&tr);
}

/*
 * Hit tokens with blocks of 8: B hits [1 2] = 16 tokens but has only 13,
 * so 13; C hits [1] = 8. 21 in all.
 */
static void
test_hit_tokens(void **state)
{
    const char  *t =
        "{\"timestamp\": 0, \"input_length\": 20, \"output_length\": 1, "
        "\"hash_ids\": [1, 2, 3]}\n"
        "{\"timestamp\": 1, \"input_length\": 13, \"output_length\": 1, "
        "\"hash_ids\": [1, 2]}\n"
        "{\"timestamp\": 2, \"input_length\": 16, \"output_length\": 1, "
        "\"hash_ids\": [1, 9]}\n";
    db_trace_t  tr;
    uint64_t    tok = 99;

    load_str(t, &tr);
    assert_int_equal(db_trace_hit_tokens(&tr, 8, &tok), 0);
    assert_int_equal(tok, 21);
    assert_int_equal(db_trace_hit_tokens(&tr, 4, &tok), 0);
    assert_int_equal(tok, 8 + 4);      /* B: 2 x 4, C: 1 x 4 */
    db_trace_free(&tr);
}

/* Writes c's trace to memory and parses it back. */
static double
synth(const db_synth_conf_t *c, db_trace_t *tr)
{
    char    *buf = NULL, err[512];
    size_t   len = 0;
    FILE    *fp = open_memstream(&buf, &len);
    double   hit = -1;

    assert_non_null(fp);
    if (db_synth_write(c, fp, &hit, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    fclose(fp);
    load_str(buf, tr);
    free(buf);
    return hit;
}

static db_synth_conf_t
base_conf(void)
{
    db_synth_conf_t  c = {
        .num_requests = 2, .request_rate = 10, .block_size = 256,
        .isl = 100, .osl = 50, .len_ratio = 0, .system_prompts = 1,
        .system_len = 600, .turns = 1, .delay_ms = 0, .target_hit = -1,
        .seed = 1
    };

    return c;
}

static void
assert_ids(const db_trace_rec_t *r, const uint64_t *want, size_t n)
{
    size_t  i;

    assert_int_equal(r->n_hash_ids, n);
    for (i = 0; i < n; i++) {
        if (r->hash_ids[i] != want[i]) {
            fail_msg("hash id %zu: %llu, want %llu", i,
                     (unsigned long long) r->hash_ids[i],
                     (unsigned long long) want[i]);
        }
    }
}

/*
 * Two sessions on one 600-token system prompt, 100 user tokens, blocks of
 * 256: 700 tokens = 3 blocks; blocks 0 and 1 are the prompt's, block 2
 * holds its last 88 tokens and the user's, so it is new in each request.
 */
static void
test_shared_system_prompt(void **state)
{
    db_synth_conf_t  c = base_conf();
    db_trace_t       tr;
    db_analysis_t    a;
    static const uint64_t  r0[] = { 0, 1, 2 }, r1[] = { 0, 1, 3 };
    double           hit = synth(&c, &tr);

    assert_int_equal(tr.n, 2);
    assert_int_equal(tr.v[0].input_length, 700);
    assert_int_equal(tr.v[0].output_length, 50);
    assert_ids(&tr.v[0], r0, 3);
    assert_ids(&tr.v[1], r1, 3);
    assert_true(tr.v[0].timestamp_ms == 0);
    assert_true(tr.v[1].timestamp_ms > 0);
    assert_int_equal(tr.v[0].session, -1);
    db_trace_analyze(&tr, &a);
    assert_float_equal(a.hit_rate, 2.0 / 6.0, 1e-12);
    assert_float_equal(hit, 2.0 / 6.0, 1e-12);
    db_trace_free(&tr);
}

/*
 * One session of two turns: turn 0 is 700 tokens (3 blocks), turn 1 is
 * 700 + 50 output + 100 new = 850 (4 blocks). Blocks 0 and 1 are the
 * same; block 2 covered 512..700 in turn 0 but 512..768 now: new.
 */
static void
test_multi_turn_growth(void **state)
{
    db_synth_conf_t  c = base_conf();
    db_trace_t       tr;
    static const uint64_t  t0[] = { 0, 1, 2 }, t1[] = { 0, 1, 3, 4 };
    double           hit;

    c.turns = 2;
    c.delay_ms = 1500;
    hit = synth(&c, &tr);
    assert_int_equal(tr.n, 2);
    assert_int_equal(tr.n_sessions, 1);
    assert_int_equal(tr.v[1].input_length, 850);
    assert_ids(&tr.v[0], t0, 3);
    assert_ids(&tr.v[1], t1, 4);
    assert_int_equal(tr.v[0].session, 0);
    assert_int_equal(tr.v[1].session, 0);
    assert_true(tr.v[0].delay_ms < 0);
    assert_true(tr.v[1].delay_ms == 1500);
    assert_true(tr.v[1].timestamp_ms == tr.v[0].timestamp_ms + 1500);
    assert_float_equal(hit, 2.0 / 7.0, 1e-12);
    db_trace_free(&tr);
}

/* A bigger synthesized trace: every record's block count and every
 * session's prefix structure hold. */
static void
test_structure(void **state)
{
    db_synth_conf_t  c = base_conf();
    db_trace_t       tr;
    size_t           i, j, *last;

    c.num_requests = 300;
    c.turns = 5;
    c.system_prompts = 3;
    c.len_ratio = 0.5;
    c.isl = 300;
    c.delay_ms = 0;
    c.block_size = 64;
    synth(&c, &tr);
    assert_int_equal(tr.n, 300);
    assert_int_equal(tr.n_sessions, 60);
    last = calloc(tr.n_sessions, sizeof(*last));
    assert_non_null(last);
    for (i = 0; i < tr.n; i++) {
        const db_trace_rec_t  *r = &tr.v[i];

        assert_int_equal(r->n_hash_ids,
                         (size_t) (r->input_length + 63) / 64);
        if (i > 0) {
            assert_true(r->timestamp_ms >= tr.v[i - 1].timestamp_ms);
        }
        if (last[r->session] != 0) {
            const db_trace_rec_t  *p = &tr.v[last[r->session] - 1];
            size_t                 full = (size_t) p->input_length / 64;

            assert_true(r->input_length > p->input_length
                        + p->output_length);
            for (j = 0; j < full; j++) {
                assert_int_equal(r->hash_ids[j], p->hash_ids[j]);
            }
            if ((size_t) p->input_length % 64 != 0) {
                assert_int_not_equal(r->hash_ids[full], p->hash_ids[full]);
            }
        }
        last[r->session] = i + 1;
    }
    free(last);
    db_trace_free(&tr);
}

/*
 * Every id of a synthesized trace stands for one prefix (the ids before
 * it are always the same), and analyze's hits equal a brute-force prefix
 * cache: each request hits the longest leading run of ids that some
 * earlier request (in file order, which is timestamp order) starts with.
 */
static void
test_prefix_consistent(void **state)
{
    db_synth_conf_t  c = base_conf();
    db_trace_t       tr;
    db_analysis_t    a;
    size_t           i, k, j, hits = 0, blocks = 0;

    c.num_requests = 120;
    c.turns = 3;
    c.system_prompts = 2;
    c.len_ratio = 0.5;
    c.isl = 150;
    c.osl = 40;
    c.system_len = 300;
    c.block_size = 32;
    synth(&c, &tr);
    for (i = 0; i < tr.n; i++) {
        const db_trace_rec_t  *r = &tr.v[i];
        size_t                 best = 0;

        for (k = 0; k < i; k++) {
            const db_trace_rec_t  *p = &tr.v[k];

            j = 0;
            while (j < r->n_hash_ids && j < p->n_hash_ids
                   && r->hash_ids[j] == p->hash_ids[j])
            {
                j++;
            }
            best = j > best ? j : best;
            /* past the common prefix no id of r may appear in p: an id
             * stands for one prefix */
            for (size_t x = j; x < r->n_hash_ids; x++) {
                for (size_t y = 0; y < p->n_hash_ids; y++) {
                    if (r->hash_ids[x] == p->hash_ids[y]) {
                        fail_msg("request %zu block %zu reuses request "
                                 "%zu block %zu after another prefix", i, x,
                                 k, y);
                    }
                }
            }
        }
        hits += best;
        blocks += r->n_hash_ids;
    }
    db_trace_analyze(&tr, &a);
    assert_int_equal(a.blocks, blocks);
    assert_int_equal(a.hits, hits);
    assert_true(hits > 0);
    db_trace_free(&tr);
}

static void
test_no_sharing(void **state)
{
    db_synth_conf_t  c = base_conf();
    db_trace_t       tr;
    db_analysis_t    a;

    c.num_requests = 200;
    c.system_prompts = 0;
    c.len_ratio = 0.3;
    assert_float_equal(synth(&c, &tr), 0, 0);
    db_trace_analyze(&tr, &a);
    assert_float_equal(a.hit_rate, 0, 0);
    assert_int_equal(a.unique_blocks, a.blocks);
    db_trace_free(&tr);

    c.system_prompts = 4;
    c.system_len = 0;
    assert_float_equal(synth(&c, &tr), 0, 0);
    db_trace_free(&tr);
}

static void
check_target(double target, int turns)
{
    db_synth_conf_t  c = {
        .num_requests = 1000, .request_rate = 10, .block_size = 512,
        .isl = 2048, .osl = 256, .len_ratio = 0.5, .system_prompts = 4,
        .system_len = 0, .turns = turns, .delay_ms = 1000,
        .target_hit = target, .seed = 5
    };
    db_trace_t     tr;
    db_analysis_t  a;
    double         hit = synth(&c, &tr);

    db_trace_analyze(&tr, &a);
    assert_float_equal(a.hit_rate, hit, 1e-12);
    if (!(a.hit_rate >= target - 0.02 && a.hit_rate <= target + 0.02)) {
        fail_msg("target %.2f: got %.4f", target, a.hit_rate);
    }
    assert_int_equal(a.requests, 1000);
    db_trace_free(&tr);
}

static void
test_target_hit_rate(void **state)
{
    check_target(0.3, 1);
    check_target(0.6, 1);
    check_target(0.6, 3);
}

static void
test_unreachable(void **state)
{
    db_synth_conf_t  c = base_conf();
    char             err[512];
    FILE            *fp = fopen("/dev/null", "w");

    assert_non_null(fp);
    c.num_requests = 100;
    c.turns = 10;                   /* history alone hits far above 0.1 */
    c.target_hit = 0.1;
    assert_int_equal(db_synth_write(&c, fp, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unreachable"));
    c.turns = 1;
    c.target_hit = 1.5;
    assert_int_equal(db_synth_write(&c, fp, NULL, err, sizeof(err)), -1);
    assert_string_equal(err, "--target-hit-rate must be in [0, 1)");
    fclose(fp);
}

static void
test_commands(void **state)
{
    char  *bad_flag[] = { "synthesize", "--turns", "0", NULL };
    char  *unknown[] = { "synthesize", "--frobnicate", NULL };
    char  *missing[] = { "analyze", NULL };
    char  *nofile[] = { "analyze", "no/such/file.jsonl", NULL };
    char  *empty[] = { "analyze", "/dev/null", NULL };
    char  *out[] = { "synthesize", "--num-requests", "20", "--output",
                     "/dev/null", NULL };

    assert_int_equal(db_cmd_synthesize(3, bad_flag), 2);
    assert_int_equal(db_cmd_synthesize(2, unknown), 2);
    assert_int_equal(db_cmd_analyze(1, missing), 2);
    assert_int_equal(db_cmd_analyze(2, nofile), 2);
    /* an empty trace has nothing to analyze: refused, not all zeros */
    assert_int_equal(db_cmd_analyze(2, empty), 2);
    assert_int_equal(db_cmd_synthesize(5, out), 0);
}

/* synthesize --output FILE, then analyze FILE --json: both succeed, and
 * the file parses back to the requests asked for. */
static void
test_commands_file(void **state)
{
    char         path[] = "/tmp/db-synth-XXXXXX";
    int          fd = mkstemp(path);
    char        *syn[] = { "synthesize", "--num-requests", "50", "--turns",
                           "5", "--block-size=64", "--output", path, NULL };
    char        *ana[] = { "analyze", path, "--block-size", "64", "--json",
                           NULL };
    char        *bad[] = { "synthesize", "--range-ratio", "2", "--output",
                           path, NULL };
    db_trace_t   tr;
    char         err[256], line[16];
    FILE        *fp;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, "keep\n", 5), 5);
    close(fd);
    /* refused after the flags parse: the file is left as it was */
    assert_int_equal(db_cmd_synthesize(5, bad), 2);
    fp = fopen(path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(line, sizeof(line), fp));
    assert_string_equal(line, "keep\n");
    fclose(fp);
    assert_int_equal(db_cmd_synthesize(8, syn), 0);
    assert_int_equal(db_cmd_analyze(5, ana), 0);
    assert_int_equal(db_trace_load(path, &tr, err, sizeof(err)), 0);
    assert_int_equal(tr.n, 50);
    assert_int_equal(tr.n_sessions, 10);
    db_trace_free(&tr);
    unlink(path);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_analyze_by_hand),
        cmocka_unit_test(test_analyze_prefix_keys),
        cmocka_unit_test(test_hit_tokens),
        cmocka_unit_test(test_prefix_consistent),
        cmocka_unit_test(test_shared_system_prompt),
        cmocka_unit_test(test_multi_turn_growth),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_no_sharing),
        cmocka_unit_test(test_target_hit_rate),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_commands_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
