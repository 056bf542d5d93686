/*
 * The Mooncake/AIPerf trace parser: valid lines, every malformed case with
 * its line number and field, blank lines, session id interning.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db_trace.h"

static int
load_str(const char *text, db_trace_t *tr, char *err, size_t errlen)
{
    FILE  *fp = fmemopen((void *) text, strlen(text), "r");
    int    rc;

    assert_non_null(fp);
    rc = db_trace_load_fp(fp, "trace.jsonl", tr, err, errlen);
    fclose(fp);
    return rc;
}

/* Loading text fails with exactly the message want. */
static void
expect_error(const char *text, const char *want)
{
    db_trace_t  tr;
    char        err[512] = "";

    assert_int_equal(load_str(text, &tr, err, sizeof(err)), -1);
    if (strcmp(err, want) != 0) {
        fail_msg("got  '%s'\nwant '%s'", err, want);
    }
    assert_int_equal(tr.n, 0);
    assert_null(tr.v);
}

/* Loading text fails with a message starting with want. */
static void
expect_prefix(const char *text, const char *want)
{
    db_trace_t  tr;
    char        err[512] = "";

    assert_int_equal(load_str(text, &tr, err, sizeof(err)), -1);
    if (strncmp(err, want, strlen(want)) != 0) {
        fail_msg("got  '%s'\nwant a prefix '%s'", err, want);
    }
}

static void
test_all_fields(void **state)
{
    const char      *l = "{\"timestamp\": 27482, \"input_length\": 6955, "
        "\"output_length\": 52, \"hash_ids\": [46, 47, 48, 0], "
        "\"session_id\": 3, \"delay\": 1500.5, \"text_input\": \"x\"}";
    db_trace_rec_t   r;
    char             err[256];

    assert_int_equal(db_trace_parse_line(l, strlen(l), &r, err,
                                         sizeof(err)), 0);
    assert_true(r.timestamp_ms == 27482);
    assert_int_equal(r.input_length, 6955);
    assert_int_equal(r.output_length, 52);
    assert_int_equal(r.n_hash_ids, 4);
    assert_int_equal(r.hash_ids[0], 46);
    assert_int_equal(r.hash_ids[3], 0);
    assert_int_equal(r.session, 3);
    assert_true(r.delay_ms == 1500.5);
    assert_null(r.session_name);
    db_trace_rec_free(&r);
}

static void
test_optional_absent(void **state)
{
    const char      *l = "{\"input_length\": 0, \"output_length\": 1, "
                         "\"hash_ids\": []}";
    db_trace_rec_t   r;
    char             err[256];

    assert_int_equal(db_trace_parse_line(l, strlen(l), &r, err,
                                         sizeof(err)), 0);
    assert_true(r.timestamp_ms == -1);
    assert_true(r.delay_ms == -1);
    assert_int_equal(r.session, -1);
    assert_int_equal(r.input_length, 0);
    assert_int_equal(r.n_hash_ids, 0);
    db_trace_rec_free(&r);
}

static void
test_load_sessions_interned(void **state)
{
    const char  *t =
        "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 2, "
        "\"hash_ids\": [1], \"session_id\": \"alice\"}\n"
        "\n"
        "   \r\n"
        "{\"timestamp\": 5, \"input_length\": 10, \"output_length\": 2, "
        "\"hash_ids\": [2], \"session_id\": 7}\n"
        "{\"timestamp\": 6, \"input_length\": 20, \"output_length\": 2, "
        "\"hash_ids\": [1, 3], \"session_id\": \"alice\", \"delay\": 100}\n"
        "{\"timestamp\": 9, \"input_length\": 10, \"output_length\": 2, "
        "\"hash_ids\": [4], \"session_id\": \"7\"}\n"
        "{\"timestamp\": 9.5, \"input_length\": 10, \"output_length\": 2, "
        "\"hash_ids\": [5]}";           /* no final newline */
    db_trace_t   tr;
    char         err[256];

    assert_int_equal(load_str(t, &tr, err, sizeof(err)), 0);
    assert_int_equal(tr.n, 5);
    /* "alice" -> 0, 7 -> 1, "7" (a string, not the integer) -> 2 */
    assert_int_equal(tr.n_sessions, 3);
    assert_int_equal(tr.v[0].session, 0);
    assert_int_equal(tr.v[1].session, 1);
    assert_int_equal(tr.v[2].session, 0);
    assert_int_equal(tr.v[3].session, 2);
    assert_int_equal(tr.v[4].session, -1);
    assert_null(tr.v[0].session_name);
    assert_true(tr.v[2].delay_ms == 100);
    assert_true(tr.v[4].timestamp_ms == 9.5);
    db_trace_free(&tr);
}

static void
test_empty_file(void **state)
{
    db_trace_t  tr;
    char        err[256];

    assert_int_equal(load_str("\n\n", &tr, err, sizeof(err)), 0);
    assert_int_equal(tr.n, 0);
    db_trace_free(&tr);
}

#define OK "{\"timestamp\": 1, \"input_length\": 1, \"output_length\": 1, " \
           "\"hash_ids\": [1]}\n"

static void
test_malformed_fields(void **state)
{
    expect_error(OK OK "\n" "{\"timestamp\": 2, \"output_length\": 1, "
                 "\"hash_ids\": []}\n",
                 "trace.jsonl:4: \"input_length\" is missing");
    expect_error(OK "{\"timestamp\": 2, \"input_length\": -1, "
                 "\"output_length\": 1, \"hash_ids\": []}\n",
                 "trace.jsonl:2: \"input_length\" must be an integer in "
                 "[0, 16777216]");
    expect_error(OK "{\"timestamp\": 2, \"input_length\": \"5\", "
                 "\"output_length\": 1, \"hash_ids\": []}\n",
                 "trace.jsonl:2: \"input_length\" must be an integer in "
                 "[0, 16777216]");
    expect_error("{\"timestamp\": 2, \"input_length\": 1.5, "
                 "\"output_length\": 1, \"hash_ids\": []}\n",
                 "trace.jsonl:1: \"input_length\" must be an integer in "
                 "[0, 16777216]");
    expect_error(OK OK OK "{\"timestamp\": 2, \"input_length\": 3, "
                 "\"output_length\": 0, \"hash_ids\": []}\n",
                 "trace.jsonl:4: \"output_length\" must be an integer in "
                 "[1, 16777216]");
    expect_error(OK "{\"timestamp\": 2, \"input_length\": 3, "
                 "\"output_length\": 1}\n",
                 "trace.jsonl:2: \"hash_ids\" is missing");
    expect_error(OK OK OK OK OK OK "{\"timestamp\": 2, \"input_length\": 3, "
                 "\"output_length\": 1, \"hash_ids\": [1, -2]}\n",
                 "trace.jsonl:7: \"hash_ids\" must be an array of "
                 "non-negative integers");
    expect_error("{\"timestamp\": 2, \"input_length\": 3, "
                 "\"output_length\": 1, \"hash_ids\": [1, \"a\"]}\n",
                 "trace.jsonl:1: \"hash_ids\" must be an array of "
                 "non-negative integers");
    expect_error("{\"timestamp\": 2, \"input_length\": 3, "
                 "\"output_length\": 1, \"hash_ids\": 5}\n",
                 "trace.jsonl:1: \"hash_ids\" must be an array of "
                 "non-negative integers");
    expect_error(OK "{\"timestamp\": -3, \"input_length\": 3, "
                 "\"output_length\": 1, \"hash_ids\": []}\n",
                 "trace.jsonl:2: \"timestamp\" must be a number >= 0 (ms)");
    expect_error(OK "{\"timestamp\": 3, \"input_length\": 3, "
                 "\"output_length\": 1, \"hash_ids\": [], \"delay\": "
                 "\"soon\"}\n",
                 "trace.jsonl:2: \"delay\" must be a number >= 0 (ms)");
    expect_error(OK "{\"timestamp\": 3, \"input_length\": 3, "
                 "\"output_length\": 1, \"hash_ids\": [], \"session_id\": "
                 "[1]}\n",
                 "trace.jsonl:2: \"session_id\" must be a non-negative "
                 "integer or a string");
}

static void
test_malformed_lines(void **state)
{
    expect_error(OK "[1, 2]\n", "trace.jsonl:2: not a JSON object");
    expect_error(OK OK "42\n", "trace.jsonl:3: not a JSON object");
    /* jansson's column: the 'x' at 1-based column 18 */
    expect_prefix(OK "{\"input_length\": x}\n",
                  "trace.jsonl:2: invalid JSON at column 18: ");
    expect_prefix(OK "{\"input_length\": 1, \"output_length\": 1, "
                  "\"hash_ids\": []} trailing\n",
                  "trace.jsonl:2: invalid JSON at column ");
    expect_prefix(OK OK OK "{\"input_length\": 1,\n",
                  "trace.jsonl:4: invalid JSON at column ");
    expect_prefix("{\"input_length\": 1, \"input_length\": 2, "
                  "\"output_length\": 1, \"hash_ids\": []}\n",
                  "trace.jsonl:1: invalid JSON at column ");
}

static void
test_timestamp_all_or_none(void **state)
{
    expect_error(OK OK "{\"input_length\": 1, \"output_length\": 1, "
                 "\"hash_ids\": []}\n",
                 "trace.jsonl:3: \"timestamp\" is missing, but line 1 has "
                 "one (all lines or none; a later turn of a session may give "
                 "only a delay)");
    /* a first turn may not leave it out */
    expect_error(OK "{\"input_length\": 1, \"output_length\": 1, "
                 "\"hash_ids\": [], \"session_id\": 4, \"delay\": 5}\n",
                 "trace.jsonl:2: \"timestamp\" is missing, but line 1 has "
                 "one (all lines or none; a later turn of a session may give "
                 "only a delay)");
    expect_error("\n{\"input_length\": 1, \"output_length\": 1, "
                 "\"hash_ids\": []}\n" OK,
                 "trace.jsonl:3: \"timestamp\" is present, but line 2 has "
                 "none (all lines or none; a later turn of a session may "
                 "give only a delay)");
}

/* AIPerf's multi-turn form: later turns carry a delay, not a time. */
static void
test_later_turns_delay_only(void **state)
{
    const char  *t =
        "{\"session_id\": \"s1\", \"timestamp\": 1000, \"input_length\": "
        "5, \"output_length\": 1, \"hash_ids\": [1]}\n"
        "{\"session_id\": \"s2\", \"timestamp\": 1500, \"input_length\": "
        "5, \"output_length\": 1, \"hash_ids\": [2]}\n"
        "{\"session_id\": \"s1\", \"delay\": 2000, \"input_length\": 9, "
        "\"output_length\": 1, \"hash_ids\": [1, 3]}\n"
        "{\"session_id\": \"s1\", \"input_length\": 12, "
        "\"output_length\": 1, \"hash_ids\": [1, 3, 4]}\n";
    db_trace_t   tr;
    char         err[256];

    assert_int_equal(load_str(t, &tr, err, sizeof(err)), 0);
    assert_int_equal(tr.n, 4);
    assert_int_equal(tr.n_sessions, 2);
    assert_true(tr.v[2].timestamp_ms == 3000);     /* 1000 + 2000 */
    assert_true(tr.v[2].delay_ms == 2000);
    assert_true(tr.v[3].timestamp_ms == 3000);     /* no delay: + 0 */
    assert_true(tr.v[3].delay_ms == -1);
    db_trace_free(&tr);
}

static void
test_long_line(void **state)
{
    size_t       n = ((size_t) 64 << 20) + 256;
    char        *big = malloc(n + 1);
    db_trace_t   tr;
    char         err[256];

    assert_non_null(big);
    memset(big, ' ', n);
    big[n] = '\0';
    memcpy(big, OK, strlen(OK));
    assert_int_equal(load_str(big, &tr, err, sizeof(err)), -1);
    assert_string_equal(err, "trace.jsonl:2: line longer than 64 MiB (or "
                        "out of memory)");
    free(big);
}

static void
test_missing_file(void **state)
{
    db_trace_t  tr;
    char        err[256];

    assert_int_equal(db_trace_load("no/such/trace.jsonl", &tr, err,
                                   sizeof(err)), -1);
    assert_string_equal(err, "no/such/trace.jsonl: No such file or "
                        "directory");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_fields),
        cmocka_unit_test(test_optional_absent),
        cmocka_unit_test(test_load_sessions_interned),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_malformed_fields),
        cmocka_unit_test(test_malformed_lines),
        cmocka_unit_test(test_timestamp_all_or_none),
        cmocka_unit_test(test_later_turns_delay_only),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_missing_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
