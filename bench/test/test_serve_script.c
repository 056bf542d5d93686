/*
 * Tests for the serve command's script loader and request-body reader
 * (db_serve_int.h): entries parsed with their defaults, itl_ms as a number
 * or an array, bad lines rejected as "NAME:LINE: message" naming the key,
 * and the fields read from OpenAI completions / chat bodies (prompt
 * lengths counted by hand as whitespace-separated words).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "db_serve_int.h"

static int
load_str(const char *text, db_serve_script_t *s, char *err, size_t errlen)
{
    FILE  *f = fmemopen((void *) text, strlen(text), "r");
    int    rc;

    assert_non_null(f);
    rc = db_serve_script_load_fp(f, "s.jsonl", s, err, errlen);
    fclose(f);
    return rc;
}

static void
test_defaults(void **state)
{
    db_serve_entry_t  e;
    char              err[256];

    assert_int_equal(db_serve_script_parse_line("{}", 2, &e, err,
        sizeof(err)), 0);
    assert_true(e.ttft_ms < 0);
    assert_null(e.itl_ms);
    assert_int_equal(e.n_itl, 0);
    assert_int_equal(e.tokens, -1);
    assert_int_equal(e.chunk_tokens, -1);
    assert_int_equal(e.empty_chunks, 0);
    assert_int_equal(e.usage, -1);
    assert_int_equal(e.status, 0);
    assert_int_equal(e.error_after, -1);
    assert_int_equal(e.disconnect_after, -1);
    assert_int_equal(e.prompt_log, 1);
    assert_null(e.error);
    db_serve_entry_free(&e);
}

static void
test_fields(void **state)
{
    const char *l = "{\"ttft_ms\": 300, \"itl_ms\": [100, 200.5, 0], "
        "\"tokens\": 9, \"chunk_tokens\": 4, \"empty_chunks\": true, "
        "\"usage\": false, \"error_after\": 2, \"disconnect_after\": 0, "
        "\"error\": \"boom\", \"prompt_log\": false}";
    db_serve_entry_t  e;
    char              err[256];

    assert_int_equal(db_serve_script_parse_line(l, strlen(l), &e, err,
        sizeof(err)), 0);
    assert_true(e.ttft_ms == 300.0);
    assert_int_equal(e.n_itl, 3);
    assert_true(e.itl_ms[0] == 100.0 && e.itl_ms[1] == 200.5
                && e.itl_ms[2] == 0.0);
    assert_int_equal(e.tokens, 9);
    assert_int_equal(e.chunk_tokens, 4);
    assert_int_equal(e.empty_chunks, 1);
    assert_int_equal(e.usage, 0);
    assert_int_equal(e.error_after, 2);
    assert_int_equal(e.disconnect_after, 0);
    assert_string_equal(e.error, "boom");
    assert_int_equal(e.prompt_log, 0);
    db_serve_entry_free(&e);

    /* a single itl number; integral reals are integers; status 200 is a
     * normal answer */
    l = "{\"itl_ms\": 12.5, \"tokens\": 3.0, \"status\": 200}";
    assert_int_equal(db_serve_script_parse_line(l, strlen(l), &e, err,
        sizeof(err)), 0);
    assert_int_equal(e.n_itl, 1);
    assert_true(e.itl_ms[0] == 12.5);
    assert_int_equal(e.tokens, 3);
    assert_int_equal(e.status, 0);
    db_serve_entry_free(&e);

    l = "{\"status\": 503}";
    assert_int_equal(db_serve_script_parse_line(l, strlen(l), &e, err,
        sizeof(err)), 0);
    assert_int_equal(e.status, 503);
    db_serve_entry_free(&e);
}

static void
bad_line(const char *line, const char *want)
{
    db_serve_entry_t  e;
    char              err[256] = "";

    if (db_serve_script_parse_line(line, strlen(line), &e, err,
            sizeof(err)) == 0)
    {
        db_serve_entry_free(&e);
        fail_msg("'%s' parsed, want an error with '%s'", line, want);
    }
    if (strstr(err, want) == NULL) {
        fail_msg("'%s': error '%s' lacks '%s'", line, err, want);
    }
}

static void
test_bad_lines(void **state)
{
    bad_line("{\"ttft\": 5}", "unknown key 'ttft'");
    bad_line("{\"ttft_ms\": -1}", "ttft_ms");
    bad_line("{\"ttft_ms\": \"5\"}", "ttft_ms");
    bad_line("{\"itl_ms\": []}", "itl_ms: empty");
    bad_line("{\"itl_ms\": [1, \"x\"]}", "itl_ms[1]");
    bad_line("{\"itl_ms\": [1, -2]}", "itl_ms[1]");
    bad_line("{\"itl_ms\": {}}", "itl_ms");
    bad_line("{\"tokens\": -1}", "tokens");
    bad_line("{\"tokens\": 1.5}", "tokens");
    bad_line("{\"chunk_tokens\": 0}", "chunk_tokens");
    bad_line("{\"empty_chunks\": 1}", "empty_chunks");
    bad_line("{\"usage\": \"yes\"}", "usage");
    bad_line("{\"status\": 302}", "status");
    bad_line("{\"status\": 600}", "status");
    bad_line("{\"error_after\": -3}", "error_after");
    bad_line("{\"disconnect_after\": true}", "disconnect_after");
    bad_line("{\"error\": 5}", "error");
    bad_line("[1, 2]", "object");
    bad_line("{\"ttft_ms\": 1", "bad JSON");
    bad_line("{\"tokens\": 1, \"tokens\": 2}", "bad JSON");
}

static void
test_load(void **state)
{
    db_serve_script_t  s;
    char               err[256];

    assert_int_equal(load_str("# timings\n"
        "{\"ttft_ms\": 10}\n"
        "\n"
        "   \r\n"
        "{\"tokens\": 2}\r\n"
        "{\"itl_ms\": [1, 2]}", &s, err, sizeof(err)), 0);
    assert_int_equal(s.n, 3);
    assert_true(s.v[0].ttft_ms == 10);
    assert_int_equal(s.v[1].tokens, 2);
    assert_int_equal(s.v[2].n_itl, 2);
    db_serve_script_free(&s);

    /* errors carry the file name and the 1-based line number, counting
     * blank and comment lines */
    assert_int_equal(load_str("{}\n# c\n\n{\"tokens\": -4}\n{}\n", &s, err,
        sizeof(err)), -1);
    assert_non_null(strstr(err, "s.jsonl:4: "));
    assert_non_null(strstr(err, "tokens"));
    assert_int_equal(s.n, 0);
    assert_int_equal(load_str("{}\n{\"ttft_ms\": 5,}\n", &s, err,
        sizeof(err)), -1);
    assert_non_null(strstr(err, "s.jsonl:2: bad JSON"));
    assert_int_equal(load_str("{}\n{}\n{\"bogus\": 1}", &s, err,
        sizeof(err)), -1);
    assert_non_null(strstr(err, "s.jsonl:3: unknown key 'bogus'"));
    /* nothing to play */
    assert_int_equal(load_str("# only a comment\n\n", &s, err,
        sizeof(err)), -1);
    assert_non_null(strstr(err, "no entries"));
    /* a missing file */
    assert_int_equal(db_serve_script_load("/nonexistent/script.jsonl", &s,
        err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/script.jsonl"));
}

static void
test_words(void **state)
{
    assert_int_equal(db_serve_count_words("", 0), 0);
    assert_int_equal(db_serve_count_words("   ", 3), 0);
    assert_int_equal(db_serve_count_words("one", 3), 1);
    assert_int_equal(db_serve_count_words(" a  b\tc\nd ", 10), 4);
}

static void
test_request_completions(void **state)
{
    const char     *b;
    db_serve_req_t  r;
    char            err[256];

    b = "{\"model\": \"m\", \"prompt\": \"Once upon a  time\", "
        "\"max_tokens\": 7, \"stream\": true, "
        "\"stream_options\": {\"include_usage\": true}}";
    assert_int_equal(db_serve_req_parse(b, strlen(b), 0, &r, err,
        sizeof(err)), 0);
    assert_string_equal(r.model, "m");
    assert_int_equal(r.max_tokens, 7);
    assert_int_equal(r.stream, 1);
    assert_int_equal(r.include_usage, 1);
    assert_int_equal(r.prompt_tokens, 4);
    db_serve_req_free(&r);

    /* token ids count one each; a batch of id lists adds up */
    b = "{\"prompt\": [1, 2, 3]}";
    assert_int_equal(db_serve_req_parse(b, strlen(b), 0, &r, err,
        sizeof(err)), 0);
    assert_int_equal(r.prompt_tokens, 3);
    assert_int_equal(r.max_tokens, -1);
    assert_int_equal(r.stream, 0);
    assert_null(r.model);
    db_serve_req_free(&r);
    b = "{\"prompt\": [[1, 2], [3]], \"stream\": false}";
    assert_int_equal(db_serve_req_parse(b, strlen(b), 0, &r, err,
        sizeof(err)), 0);
    assert_int_equal(r.prompt_tokens, 3);
    db_serve_req_free(&r);
}

static void
test_request_chat(void **state)
{
    const char     *b;
    db_serve_req_t  r;
    char            err[256];

    b = "{\"messages\": [{\"role\": \"system\", \"content\": \"be brief\"}, "
        "{\"role\": \"user\", \"content\": [{\"type\": \"text\", "
        "\"text\": \"hi there you\"}]}, {\"role\": \"assistant\", "
        "\"content\": null}], \"max_completion_tokens\": 5}";
    assert_int_equal(db_serve_req_parse(b, strlen(b), 1, &r, err,
        sizeof(err)), 0);
    assert_int_equal(r.prompt_tokens, 5);
    assert_int_equal(r.max_tokens, 5);
    db_serve_req_free(&r);
}

static void
bad_req(const char *body, int chat, const char *want)
{
    db_serve_req_t  r;
    char            err[256] = "";

    if (db_serve_req_parse(body, strlen(body), chat, &r, err,
            sizeof(err)) == 0)
    {
        db_serve_req_free(&r);
        fail_msg("'%s' accepted, want an error with '%s'", body, want);
    }
    if (strstr(err, want) == NULL) {
        fail_msg("'%s': error '%s' lacks '%s'", body, err, want);
    }
}

static void
test_request_bad(void **state)
{
    bad_req("{bad", 0, "bad JSON");
    bad_req("[]", 0, "JSON object");
    bad_req("{}", 0, "'prompt' is required");
    bad_req("{}", 1, "'messages' is required");
    bad_req("{\"prompt\": 5}", 0, "'prompt'");
    bad_req("{\"prompt\": [{}]}", 0, "prompt[0]");
    bad_req("{\"prompt\": [[1, \"a\"]]}", 0, "prompt[0]");
    bad_req("{\"prompt\": \"x\", \"max_tokens\": 0}", 0, "max_tokens");
    bad_req("{\"prompt\": \"x\", \"max_tokens\": \"5\"}", 0, "max_tokens");
    bad_req("{\"prompt\": \"x\", \"stream\": 1}", 0, "stream");
    bad_req("{\"prompt\": \"x\", \"stream_options\": 1}", 0,
        "stream_options");
    bad_req("{\"prompt\": \"x\", \"model\": 3}", 0, "model");
    bad_req("{\"messages\": []}", 1, "empty");
    bad_req("{\"messages\": [{\"content\": \"x\"}]}", 1, "role");
    bad_req("{\"messages\": [{\"role\": \"user\", \"content\": 3}]}", 1,
        "content");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_words),
        cmocka_unit_test(test_request_completions),
        cmocka_unit_test(test_request_chat),
        cmocka_unit_test(test_request_bad),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
