/*
 * Tests for the SSE parser and the OpenAI chunk reader (db_sse.h). Chunk
 * shapes are the OpenAI API reference's examples (chat.completion.chunk,
 * text_completion streams, the usage chunk of stream_options.include_usage,
 * the error object).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "db_sse.h"

/* Every payload, each followed by '|'. */
typedef struct {
    char    out[8192];
    size_t  len;
    int     calls;
    int     stop_after;   /* return 7 from this call on (0: never) */
} sink_t;

static int collect(void *ctx, const char *d, size_t n)
{
    sink_t *s = ctx;
    assert_true(s->len + n + 1 < sizeof(s->out));
    memcpy(s->out + s->len, d, n);
    s->len += n;
    s->out[s->len++] = '|';
    s->out[s->len] = '\0';
    s->calls++;
    return s->stop_after && s->calls >= s->stop_after ? 7 : 0;
}

static const char STREAM[] =
    ": keep-alive comment\n"
    "event: message\n"
    "id: 1\n"
    "data: {\"a\":1}\n"
    "\n"
    "data:{\"b\":2}\r\n"
    "\r\n"
    "data:  two spaces\n"
    "retry: 100\n"
    "data: [DONE]\n"
    "\n";

static const char EXPECT[] = "{\"a\":1}|{\"b\":2}| two spaces|[DONE]|";

/* Feeds d (a string) to a fresh parser in pieces cut at the offsets in
 * cuts (ascending); the first non-zero return, else 0. The parser is freed
 * with whatever partial line it holds (ASan: no leak). */
static int split_feed(sink_t *s, const char *d, const size_t *cuts,
    size_t ncuts)
{
    db_sse_t p;
    size_t n = strlen(d), at = 0;
    int rc = 0;
    db_sse_init(&p);
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : n;
        rc = db_sse_feed(&p, d + at, end - at, collect, s);
        at = end;
    }
    db_sse_free(&p);
    return rc;
}

static void test_whole(void **st)
{
    sink_t s = { .len = 0 };
    assert_int_equal(split_feed(&s, STREAM, NULL, 0), 0);
    assert_string_equal(s.out, EXPECT);
}

static void test_byte_by_byte(void **st)
{
    size_t cuts[sizeof(STREAM)];
    for (size_t i = 0; i + 1 < sizeof(STREAM); i++)
        cuts[i] = i + 1;
    sink_t s = { .len = 0 };
    assert_int_equal(split_feed(&s, STREAM, cuts, sizeof(STREAM) - 2), 0);
    assert_string_equal(s.out, EXPECT);
}

static void test_every_split(void **st)
{
    size_t n = strlen(STREAM);
    for (size_t a = 0; a <= n; a++) {
        for (size_t b = a; b <= n; b += 3) {
            size_t cuts[2] = { a, b };
            sink_t s = { .len = 0 };
            assert_int_equal(split_feed(&s, STREAM, cuts, 2), 0);
            assert_string_equal(s.out, EXPECT);
        }
    }
}

static void test_crlf_split_between_cr_and_lf(void **st)
{
    sink_t s = { .len = 0 };
    assert_int_equal(split_feed(&s, "data: x\r", NULL, 0), 0);
    assert_int_equal(s.calls, 0);          /* the line is not over yet */
    size_t cut = 8;
    assert_int_equal(split_feed(&s, "data: x\r\n", &cut, 1), 0);
    assert_string_equal(s.out, "x|");
}

static void test_unterminated_line_waits(void **st)
{
    sink_t s = { .len = 0 };
    assert_int_equal(split_feed(&s, "data: abc", NULL, 0), 0);
    assert_int_equal(s.calls, 0);
}

static void test_callback_stops(void **st)
{
    sink_t s = { .len = 0, .stop_after = 1 };
    assert_int_equal(split_feed(&s, "data: 1\ndata: 2\n", NULL, 0), 7);
    assert_int_equal(s.calls, 1);
}

static void test_long_line(void **st)
{
    db_sse_t p;
    sink_t s = { .len = 0 };
    char line[64];

    /* exactly max bytes (with "\r\n"): accepted */
    db_sse_init(&p);
    p.max = 16;
    memcpy(line, "data: 0123456789\r\n", 18);
    assert_int_equal(db_sse_feed(&p, line, 18, collect, &s), 0);
    assert_string_equal(s.out, "0123456789|");
    /* max + 1, in one piece and in pieces: an error */
    assert_int_equal(db_sse_feed(&p, "data: 01234567890\n", 18, collect, &s),
        -1);
    db_sse_free(&p);
    db_sse_init(&p);
    p.max = 16;
    int rc = 0;
    for (int i = 0; i < 40 && rc == 0; i++)
        rc = db_sse_feed(&p, "x", 1, collect, &s);
    assert_int_equal(rc, -1);
    db_sse_free(&p);
}

/* ---- chunks ---- */

static void test_chunk_completions(void **st)
{
    const char *d = "{\"id\":\"cmpl-7iA7iJjj8V2zOkCGvWF2hAkDWBQZe\","
        "\"object\":\"text_completion\",\"created\":1690759702,"
        "\"choices\":[{\"text\":\" world\",\"index\":0,\"logprobs\":null,"
        "\"finish_reason\":null}],\"model\":\"gpt-3.5-turbo-instruct\"}";
    db_chunk_t c;
    char err[128];
    assert_int_equal(db_chunk_parse(d, strlen(d), &c, err, sizeof(err)), 0);
    assert_false(c.done);
    assert_int_equal(c.text_len, 6);
    assert_memory_equal(c.text, " world", 6);
    assert_false(c.has_usage);
    assert_null(c.finish_reason);
    assert_null(c.error);
    assert_int_equal(c.cached_tokens, -1);
    db_chunk_free(&c);
}

/* A model may emit the byte token 0x00: JSON carries it as \u0000. */
static void test_chunk_nul(void **st)
{
    const char *d = "{\"choices\":[{\"text\":\"a\\u0000b\",\"index\":0,"
        "\"finish_reason\":null}]}";
    db_chunk_t c;
    char err[128];
    (void)st;
    assert_int_equal(db_chunk_parse(d, strlen(d), &c, err, sizeof(err)), 0);
    assert_int_equal(c.text_len, 3);
    assert_memory_equal(c.text, "a\0b", 3);
    db_chunk_free(&c);
}

static void test_chunk_chat(void **st)
{
    const char *role = "{\"id\":\"chatcmpl-123\",\"object\":"
        "\"chat.completion.chunk\",\"created\":1694268190,\"model\":"
        "\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\","
        "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
        "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}";
    const char *tok = "{\"id\":\"chatcmpl-123\",\"object\":"
        "\"chat.completion.chunk\",\"created\":1694268190,\"model\":"
        "\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
        "\"Hello\"},\"logprobs\":null,\"finish_reason\":null}]}";
    const char *fin = "{\"id\":\"chatcmpl-123\",\"object\":"
        "\"chat.completion.chunk\",\"created\":1694268190,\"model\":"
        "\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},"
        "\"logprobs\":null,\"finish_reason\":\"stop\"}]}";
    db_chunk_t c;
    char err[128];

    assert_int_equal(db_chunk_parse(role, strlen(role), &c, err, 128), 0);
    assert_int_equal(c.text_len, 0);       /* role only: no token */
    db_chunk_free(&c);

    assert_int_equal(db_chunk_parse(tok, strlen(tok), &c, err, 128), 0);
    assert_int_equal(c.text_len, 5);
    assert_memory_equal(c.text, "Hello", 5);
    db_chunk_free(&c);

    assert_int_equal(db_chunk_parse(fin, strlen(fin), &c, err, 128), 0);
    assert_int_equal(c.text_len, 0);
    assert_non_null(c.finish_reason);
    assert_string_equal(c.finish_reason, "stop");
    db_chunk_free(&c);
}

static void test_chunk_reasoning(void **st)
{
    const char *r = "{\"choices\":[{\"index\":0,\"delta\":"
        "{\"reasoning_content\":\"think\"}}]}";
    const char *both = "{\"choices\":[{\"index\":0,\"delta\":"
        "{\"reasoning_content\":\"ab\",\"content\":\"cd\"}}]}";
    db_chunk_t c;
    char err[128];
    assert_int_equal(db_chunk_parse(r, strlen(r), &c, err, 128), 0);
    assert_int_equal(c.text_len, 5);
    assert_memory_equal(c.text, "think", 5);
    db_chunk_free(&c);
    assert_int_equal(db_chunk_parse(both, strlen(both), &c, err, 128), 0);
    assert_int_equal(c.text_len, 4);
    assert_memory_equal(c.text, "abcd", 4);
    db_chunk_free(&c);
}

static void test_chunk_usage(void **st)
{
    const char *u = "{\"id\":\"chatcmpl-123\",\"object\":"
        "\"chat.completion.chunk\",\"created\":1694268190,\"model\":"
        "\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
        "\"completion_tokens\":12,\"total_tokens\":21,"
        "\"prompt_tokens_details\":{\"cached_tokens\":4}}}";
    const char *nu = "{\"choices\":[{\"text\":\"x\"}],\"usage\":null}";
    db_chunk_t c;
    char err[128];
    assert_int_equal(db_chunk_parse(u, strlen(u), &c, err, 128), 0);
    assert_true(c.has_usage);
    assert_int_equal(c.prompt_tokens, 9);
    assert_int_equal(c.completion_tokens, 12);
    assert_int_equal(c.cached_tokens, 4);
    assert_int_equal(c.text_len, 0);
    db_chunk_free(&c);
    /* vLLM sends "usage": null on token chunks when usage is asked for */
    assert_int_equal(db_chunk_parse(nu, strlen(nu), &c, err, 128), 0);
    assert_false(c.has_usage);
    assert_int_equal(c.prompt_tokens, -1);
    assert_int_equal(c.text_len, 1);
    db_chunk_free(&c);
}

static void test_chunk_error_done_bad(void **st)
{
    const char *e = "{\"error\":{\"message\":\"The model `x` does not "
        "exist\",\"type\":\"invalid_request_error\",\"param\":null,"
        "\"code\":\"model_not_found\"}}";
    db_chunk_t c;
    char err[128];
    assert_int_equal(db_chunk_parse(e, strlen(e), &c, err, 128), 0);
    assert_non_null(c.error);
    assert_string_equal(c.error, "The model `x` does not exist");
    db_chunk_free(&c);

    assert_int_equal(db_chunk_parse("[DONE]", 6, &c, err, 128), 0);
    assert_true(c.done);
    db_chunk_free(&c);

    err[0] = '\0';
    assert_int_equal(db_chunk_parse("{\"choices\":", 11, &c, err, 128), -1);
    assert_true(strlen(err) > 0);
    assert_int_equal(db_chunk_parse("[1,2]", 5, &c, err, 128), -1);
    assert_int_equal(db_chunk_parse("", 0, &c, err, 128), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_crlf_split_between_cr_and_lf),
        cmocka_unit_test(test_unterminated_line_waits),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_chunk_completions),
        cmocka_unit_test(test_chunk_nul),
        cmocka_unit_test(test_chunk_chat),
        cmocka_unit_test(test_chunk_reasoning),
        cmocka_unit_test(test_chunk_usage),
        cmocka_unit_test(test_chunk_error_done_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
