/*
 * Tests for the request bodies (db_body.h): each body is parsed back with
 * jansson and checked field by field against the OpenAI API's request
 * shapes (completions: prompt, max_tokens; chat: messages,
 * max_completion_tokens; stream_options.include_usage).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "db_body.h"

static db_opts_t opts(int chat)
{
    db_opts_t o;
    memset(&o, 0, sizeof(o));
    o.model = "org/model-7b";
    o.chat = chat;
    o.temperature = 0;
    return o;
}

static db_request_t req(const char *prompt, int out)
{
    db_request_t r;
    memset(&r, 0, sizeof(r));
    r.prompt = (char *)prompt;
    r.output_len = out;
    r.session = -1;
    r.timestamp_s = -1;
    return r;
}

static json_t *build(const db_opts_t *o, const db_request_t *r,
    const db_body_turn_t *h, size_t nh)
{
    char err[128];
    size_t len = 0;
    char *s = db_body_build(o, r, h, nh, &len, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(len, strlen(s));
    assert_null(strchr(s, '\n'));             /* compact */
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    assert_true(json_is_object(j));
    return j;
}

static const char *str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static void check_common(json_t *j, const char *model, int ignore_eos)
{
    assert_string_equal(str(j, "model"), model);
    assert_true(json_is_true(json_object_get(j, "stream")));
    json_t *so = json_object_get(j, "stream_options");
    assert_true(json_is_true(json_object_get(so, "include_usage")));
    assert_true(json_is_number(json_object_get(j, "temperature")));
    assert_true(json_number_value(json_object_get(j, "temperature")) == 0);
    if (ignore_eos)
        assert_true(json_is_true(json_object_get(j, "ignore_eos")));
    else
        assert_null(json_object_get(j, "ignore_eos"));
}

static void test_completions(void **st)
{
    db_opts_t o = opts(0);
    db_request_t r = req("Hello \"world\"\n", 128);
    json_t *j = build(&o, &r, NULL, 0);
    check_common(j, "org/model-7b", 0);
    assert_string_equal(str(j, "prompt"), "Hello \"world\"\n");
    assert_int_equal(json_integer_value(json_object_get(j, "max_tokens")),
        128);
    assert_null(json_object_get(j, "messages"));
    assert_null(json_object_get(j, "max_completion_tokens"));
    assert_int_equal(json_object_size(j), 6);
    json_decref(j);
}

static void test_served_model_and_ignore_eos(void **st)
{
    db_opts_t o = opts(0);
    o.served_model = "served";
    o.ignore_eos = 1;
    o.temperature = 0;
    db_request_t r = req("x", 1);
    json_t *j = build(&o, &r, NULL, 0);
    check_common(j, "served", 1);
    json_decref(j);
}

static void test_token_prompt(void **st)
{
    db_opts_t o = opts(0);
    o.prompt_tokens = 1;
    uint32_t ids[] = { 1, 15043, 0, 4294967295u };
    db_request_t r = req("ignored", 4);
    r.ids = ids;
    r.n_ids = 4;
    json_t *j = build(&o, &r, NULL, 0);
    json_t *p = json_object_get(j, "prompt");
    assert_true(json_is_array(p));
    assert_int_equal(json_array_size(p), 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(json_integer_value(json_array_get(p, i)), ids[i]);
    json_decref(j);
}

static void test_chat(void **st)
{
    db_opts_t o = opts(1);
    db_request_t r = req("Tell me a story", 64);
    json_t *j = build(&o, &r, NULL, 0);
    check_common(j, "org/model-7b", 0);
    json_t *m = json_object_get(j, "messages");
    assert_int_equal(json_array_size(m), 1);
    assert_string_equal(str(json_array_get(m, 0), "role"), "user");
    assert_string_equal(str(json_array_get(m, 0), "content"),
        "Tell me a story");
    assert_int_equal(json_integer_value(
        json_object_get(j, "max_completion_tokens")), 64);
    assert_null(json_object_get(j, "max_tokens"));
    assert_null(json_object_get(j, "prompt"));
    json_decref(j);
}

static const db_body_turn_t HIST[] = {
    { "Q0 ", "A0 reply", 2 },    /* only "A0" was received: reply_len */
    { "Q1 ", NULL, 0 },
};

static void test_chat_history(void **st)
{
    db_opts_t o = opts(1);
    db_request_t r = req("Q2", 8);
    r.session = 3;
    r.turn = 2;
    r.with_history = 1;
    json_t *j = build(&o, &r, HIST, 2);
    json_t *m = json_object_get(j, "messages");
    const char *role[] = { "user", "assistant", "user", "assistant", "user" };
    const char *text[] = { "Q0 ", "A0", "Q1 ", "", "Q2" };
    assert_int_equal(json_array_size(m), 5);
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(str(json_array_get(m, i), "role"), role[i]);
        assert_string_equal(str(json_array_get(m, i), "content"), text[i]);
    }
    json_decref(j);

    r.with_history = 0;                       /* history only when asked */
    j = build(&o, &r, HIST, 2);
    assert_int_equal(json_array_size(json_object_get(j, "messages")), 1);
    json_decref(j);
}

static void test_completions_history(void **st)
{
    db_opts_t o = opts(0);
    o.prompt_tokens = 1;                      /* text wins with history */
    uint32_t ids[] = { 5 };
    db_request_t r = req("Q2", 8);
    r.ids = ids;
    r.n_ids = 1;
    r.with_history = 1;
    json_t *j = build(&o, &r, HIST, 2);
    /* "A0" and "Q1 " meet without whitespace: one space between; the
     * empty reply adds nothing */
    assert_string_equal(str(j, "prompt"), "Q0 A0 Q1 Q2");
    json_decref(j);
}

/* Parts as a sentencepiece tokenizer decodes them: prompts start without
 * a space, replies may start with one or with a newline. One space goes
 * only where neither side of a joint has whitespace. */
static void test_completions_history_joints(void **st)
{
    static const db_body_turn_t h[] = {
        { "Once upon", " a time", 7 },
        { "She went", "home.", 5 },
        { "Then", "\nThe end", 8 },
    };
    db_opts_t o = opts(0);
    db_request_t r = req("Again", 8);
    r.with_history = 1;
    json_t *j = build(&o, &r, h, 3);
    assert_string_equal(str(j, "prompt"),
        "Once upon a time She went home. Then\nThe end Again");
    json_decref(j);

    /* each turn's prompt extends the previous turn's: a shared prefix */
    db_request_t r2 = req("She went", 8);
    r2.with_history = 1;
    j = build(&o, &r2, h, 1);
    assert_string_equal(str(j, "prompt"), "Once upon a time She went");
    json_decref(j);
}

static void test_not_utf8(void **st)
{
    db_opts_t o = opts(0);
    o.model = "bad\xff";
    db_request_t r = req("x", 1);
    char err[160] = "";
    size_t len = 0;
    assert_null(db_body_build(&o, &r, NULL, 0, &len, err, sizeof(err)));
    assert_non_null(strstr(err, "UTF-8"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_completions),
        cmocka_unit_test(test_served_model_and_ignore_eos),
        cmocka_unit_test(test_token_prompt),
        cmocka_unit_test(test_chat),
        cmocka_unit_test(test_chat_history),
        cmocka_unit_test(test_completions_history),
        cmocka_unit_test(test_completions_history_joints),
        cmocka_unit_test(test_not_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
