/*
 * Tests for the OpenAI request parser (ngx_http_dynamo_oai_parse): every
 * field of chat completions and completions, every refusal (status,
 * param, code, OpenAI's wording), content-part normalisation and the
 * worker's "sampling" object.
 *
 * Bodies are written with ' for " to keep them readable.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ngx_http_dynamo_oai.h"

#define CHAT  NGX_HTTP_DYNAMO_OAI_CHAT
#define COMP  NGX_HTTP_DYNAMO_OAI_COMPLETIONS

#define CHAT_BODY(rest)                                                      \
    "{'model':'m','messages':[{'role':'user','content':'hi'}]" rest "}"
#define COMP_BODY(rest)  "{'model':'m','prompt':'p'" rest "}"


static char *
unquote(const char *s)
{
    char    *b;
    size_t   i, n;

    n = strlen(s);
    b = malloc(n + 1);
    assert_non_null(b);
    for (i = 0; i <= n; i++) {
        b[i] = (s[i] == '\'') ? '"' : s[i];
    }
    return b;
}

static int
parse(int kind, const char *body, ngx_http_dynamo_oai_req_t *req,
    ngx_http_dynamo_oai_err_t *err)
{
    int    rc;
    char  *b;

    b = unquote(body);
    rc = ngx_http_dynamo_oai_parse(kind, b, strlen(b), req, err);
    free(b);
    return rc;
}

static void
ok(int kind, const char *body, ngx_http_dynamo_oai_req_t *req)
{
    ngx_http_dynamo_oai_err_t  err;

    if (parse(kind, body, req, &err) != 0) {
        fail_msg("%s: refused: %d %s: %s", body, err.status, err.param,
                 err.message);
    }
    assert_non_null(req->root);
    assert_non_null(req->sampling);
}

/* a 400 naming param (NULL: none), with code and words in the message */
static void
bad(int kind, const char *body, const char *param, const char *code,
    const char *words)
{
    json_t                     *s;
    ngx_http_dynamo_oai_req_t   req;
    ngx_http_dynamo_oai_err_t   err;

    if (parse(kind, body, &req, &err) != -1) {
        fail_msg("%s: accepted", body);
    }
    assert_int_equal(err.status, 400);
    assert_string_equal(err.param, param ? param : "");
    if (code != NULL) {
        assert_string_equal(err.code, code);
    }
    if (strstr(err.message, words) == NULL) {
        fail_msg("%s: message '%s' lacks '%s'", body, err.message, words);
    }
    /* the message goes into a JSON string: it must be valid UTF-8 */
    s = json_string(err.message);
    assert_non_null(s);
    json_decref(s);
    /* nothing left to free, and freeing again is harmless */
    assert_null(req.root);
    assert_null(req.messages);
    assert_null(req.sampling);
    assert_null(req.prompt_ids);
    ngx_http_dynamo_oai_free(&req);
}

static void
bad_both(const char *chat, const char *comp, const char *param,
    const char *code, const char *words)
{
    bad(CHAT, chat, param, code, words);
    bad(COMP, comp, param, code, words);
}

static void
assert_json(json_t *j, const char *expect)
{
    char  *s, *e;

    s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(s);
    e = unquote(expect);
    assert_string_equal(s, e);
    free(s);
    free(e);
}

static void
assert_str(ngx_http_dynamo_oai_str_t s, const char *expect, size_t len)
{
    assert_int_equal(s.len, len);
    assert_memory_equal(s.data, expect, len);
}


/* the body */

static void
test_not_json(void **state)
{
    ngx_http_dynamo_oai_req_t  req;
    ngx_http_dynamo_oai_err_t  err;
    static const char  *bodies[] = {
        "", "{", "}", "[]", "[{'model':'m'}]", "'x'", "1", "null", "true",
        "{'model':'m',}", "{'model':'m'} x", "{'model':'m'}{}", "\xff",
        "{'model':'\xc3'}", "{'model':NaN}", NULL
    };
    const char        **b;

    for (b = bodies; *b; b++) {
        bad(CHAT, *b, NULL, NULL, "We could not parse the JSON body of "
            "your request.");
        bad(COMP, *b, NULL, NULL, "We could not parse the JSON body");
    }

    assert_int_equal(ngx_http_dynamo_oai_parse(CHAT, NULL, 0, &req, &err),
                     -1);
    assert_int_equal(err.status, 400);
    assert_int_equal(ngx_http_dynamo_oai_parse(99, "{}", 2, &req, &err), -1);
}

static void
test_model(void **state)
{
    ngx_http_dynamo_oai_req_t  req;

    bad_both("{'messages':[{'role':'user','content':'hi'}]}",
             "{'prompt':'p'}", "model", "missing_required_parameter",
             "you must provide a model parameter");
    bad_both("{'model':null,'messages':[{'role':'user','content':'hi'}]}",
             "{'model':'','prompt':'p'}", "model",
             "missing_required_parameter",
             "you must provide a model parameter");
    bad_both("{'model':7,'messages':[{'role':'user','content':'hi'}]}",
             "{'model':['m'],'prompt':'p'}", "model", "invalid_type",
             "Invalid type for 'model': expected a string, but got ");

    ok(CHAT, "{'model':'llama-3','messages':[{'role':'user','content':'x'}]}",
       &req);
    assert_str(req.model, "llama-3", 7);
    assert_int_equal(req.kind, CHAT);
    ngx_http_dynamo_oai_free(&req);

    /* duplicates: the last wins, as Python's json does */
    ok(COMP, "{'model':'a','prompt':'p','model':'bb'}", &req);
    assert_str(req.model, "bb", 2);
    assert_int_equal(req.kind, COMP);
    ngx_http_dynamo_oai_free(&req);

    /* NUL inside a string */
    ok(COMP, "{'model':'a\\u0000b','prompt':'p'}", &req);
    assert_str(req.model, "a\0b", 3);
    ngx_http_dynamo_oai_free(&req);
}


/* defaults and nulls */

static void
assert_defaults(ngx_http_dynamo_oai_req_t *req)
{
    assert_true(req->max_tokens == -1);
    assert_int_equal(req->stream, 0);
    assert_int_equal(req->include_usage, 0);
    assert_int_equal(req->logprobs, -1);
    assert_int_equal(req->ignore_eos, 0);
    assert_int_equal(req->skip_special_tokens, 1);
    assert_int_equal(req->nstop, 0);
    assert_int_equal(req->nstop_ids, 0);
    assert_json(req->sampling, "{}");
}

static void
test_defaults(void **state)
{
    ngx_http_dynamo_oai_req_t  req;

    ok(CHAT, CHAT_BODY(""), &req);
    assert_defaults(&req);
    assert_int_equal(req.add_generation_prompt, 1);
    assert_null(req.tools);
    assert_null(req.template_kwargs);
    assert_int_equal(req.has_prompt_ids, 0);
    ngx_http_dynamo_oai_free(&req);

    ok(COMP, COMP_BODY(""), &req);
    assert_defaults(&req);
    assert_null(req.messages);
    assert_str(req.prompt, "p", 1);
    ngx_http_dynamo_oai_free(&req);
}

#define NULLS                                                                \
    ",'max_tokens':null,'stream':null,'stream_options':null,'n':null,"      \
    "'temperature':null,'top_p':null,'top_k':null,'min_p':null,"            \
    "'seed':null,'presence_penalty':null,'frequency_penalty':null,"         \
    "'repetition_penalty':null,'stop':null,'stop_token_ids':null,"          \
    "'ignore_eos':null,'skip_special_tokens':null,'user':null,"             \
    "'logit_bias':null,'response_format':null,'logprobs':null"

static void
test_nulls(void **state)
{
    ngx_http_dynamo_oai_req_t  req;

    ok(CHAT, CHAT_BODY(NULLS ",'max_completion_tokens':null,'tools':null,"
                       "'tool_choice':null,'top_logprobs':null,"
                       "'add_generation_prompt':null,"
                       "'chat_template_kwargs':null"), &req);
    assert_defaults(&req);
    assert_int_equal(req.add_generation_prompt, 1);
    assert_null(req.tools);
    assert_null(req.template_kwargs);
    ngx_http_dynamo_oai_free(&req);

    ok(COMP, COMP_BODY(NULLS ",'echo':null,'best_of':null,'suffix':null"),
       &req);
    assert_defaults(&req);
    ngx_http_dynamo_oai_free(&req);
}

static void
test_unknown_fields(void **state)
{
    ngx_http_dynamo_oai_req_t  req;

    ok(CHAT, CHAT_BODY(",'metadata':{'a':1},'store':true,'xyz':[1,{}],"
                       "'parallel_tool_calls':false"), &req);
    assert_defaults(&req);
    ngx_http_dynamo_oai_free(&req);

    /* chat-only fields mean nothing to completions */
    ok(COMP, COMP_BODY(",'max_completion_tokens':0,'messages':5,"
                       "'top_logprobs':99"), &req);
    assert_defaults(&req);
    ngx_http_dynamo_oai_free(&req);
}


/* chat: messages */

static void
test_messages(void **state)
{
    ngx_http_dynamo_oai_req_t  req;

    ok(CHAT, "{'model':'m','messages':["
             "{'role':'system','content':'be brief'},"
             "{'role':'developer','content':'dev'},"
             "{'role':'user','content':'hi','name':'bob'},"
             "{'role':'assistant','content':null,'tool_calls':[{'id':'c1',"
             "'type':'function','function':{'name':'f','arguments':'{}'}}]},"
             "{'role':'tool','content':'42','tool_call_id':'c1'},"
             "{'role':'assistant','reasoning_content':'hmm'}]}", &req);
    assert_json(req.messages, "["
        "{'content':'be brief','role':'system'},"
        "{'content':'dev','role':'developer'},"
        "{'content':'hi','name':'bob','role':'user'},"
        "{'content':null,'role':'assistant','tool_calls':[{'function':"
        "{'arguments':'{}','name':'f'},'id':'c1','type':'function'}]},"
        "{'content':'42','role':'tool','tool_call_id':'c1'},"
        "{'content':null,'reasoning_content':'hmm','role':'assistant'}]");
    ngx_http_dynamo_oai_free(&req);
}

static void
test_content_parts(void **state)
{
    ngx_http_dynamo_oai_req_t  req;
    const char                *s;

    /* text parts joined with "\n"; a bare string is a text part (vLLM) */
    ok(CHAT, "{'model':'m','messages':[{'role':'user','content':["
             "{'type':'text','text':'one'},{'type':'text','text':''},"
             "{'type':'text','text':'two\\nlines'},'bare'],'name':'n'},"
             "{'role':'assistant','content':[{'type':'text','text':'x'}]},"
             "{'role':'user','content':[]}]}", &req);
    assert_json(req.messages, "["
        "{'content':'one\\n\\ntwo\\nlines\\nbare','name':'n',"
        "'role':'user'},"
        "{'content':'x','role':'assistant'},"
        "{'content':'','role':'user'}]");
    /* the body itself is left as sent */
    assert_true(json_is_array(json_object_get(json_array_get(
        json_object_get(req.root, "messages"), 0), "content")));
    ngx_http_dynamo_oai_free(&req);

    /* NUL and multi-byte text survive the join */
    ok(CHAT, "{'model':'m','messages':[{'role':'user','content':["
             "{'type':'text','text':'a\\u0000b'},"
             "{'type':'text','text':'\\u00e9'}]}]}", &req);
    s = json_string_value(json_object_get(json_array_get(req.messages, 0),
                                          "content"));
    assert_int_equal(json_string_length(json_object_get(
        json_array_get(req.messages, 0), "content")), 6);
    assert_memory_equal(s, "a\0b\n\xc3\xa9", 6);
    ngx_http_dynamo_oai_free(&req);
}

static void
test_messages_errors(void **state)
{
    bad(CHAT, "{'model':'m'}", "messages", "missing_required_parameter",
        "Missing required parameter: 'messages'.");
    bad(CHAT, "{'model':'m','messages':null}", "messages", NULL,
        "Missing required parameter: 'messages'.");
    bad(CHAT, "{'model':'m','messages':'hi'}", "messages", "invalid_type",
        "Invalid type for 'messages': expected an array, but got a string "
        "instead.");
    bad(CHAT, "{'model':'m','messages':[]}", "messages", "empty_array",
        "Invalid 'messages': empty array. Expected an array with minimum "
        "length 1, but got an empty array instead.");
    bad(CHAT, "{'model':'m','messages':[{'role':'user','content':'a'},3]}",
        "messages[1]", "invalid_type",
        "Invalid type for 'messages[1]': expected an object, but got an "
        "integer instead.");
    bad(CHAT, "{'model':'m','messages':[{'content':'a'}]}",
        "messages[0].role", "missing_required_parameter",
        "Missing required parameter: 'messages[0].role'.");
    bad(CHAT, "{'model':'m','messages':[{'role':1,'content':'a'}]}",
        "messages[0].role", "invalid_type", "expected a string");
    bad(CHAT, "{'model':'m','messages':[{'role':'robot','content':'a'}]}",
        "messages[0].role", "invalid_value",
        "Invalid value: 'robot'. Supported values are: 'system', "
        "'developer', 'user', 'assistant', and 'tool'.");
    bad(CHAT, "{'model':'m','messages':[{'role':'User','content':'a'}]}",
        "messages[0].role", "invalid_value", "'User'");
    bad(CHAT, "{'model':'m','messages':[{'role':'user\\u0000','content':"
        "'a'}]}", "messages[0].role", "invalid_value", "Invalid value");
    bad(CHAT, "{'model':'m','messages':[{'role':'user'}]}",
        "messages[0].content", "missing_required_parameter",
        "Missing required parameter: 'messages[0].content'.");
    bad(CHAT, "{'model':'m','messages':[{'role':'system','content':null}]}",
        "messages[0].content", "missing_required_parameter", "content");
    bad(CHAT, "{'model':'m','messages':[{'role':'user','content':{}}]}",
        "messages[0].content", "invalid_type",
        "Invalid type for 'messages[0].content': expected one of a string "
        "or array of objects, but got an object instead.");
    bad(CHAT, "{'model':'m','messages':[{'role':'user','content':true}]}",
        "messages[0].content", "invalid_type", "got a boolean instead");
}

static void
test_content_parts_errors(void **state)
{
    bad(CHAT, "{'model':'m','messages':[{'role':'user','content':["
        "{'type':'text','text':'a'},{'type':'image_url','image_url':"
        "{'url':'http://x/y.png'}}]}]}", "messages[0].content[1].type",
        "invalid_value", "Only text content parts");
    bad(CHAT, "{'model':'m','messages':[{'role':'system','content':'s'},"
        "{'role':'user','content':[{'type':'input_audio','input_audio':"
        "{'data':'','format':'wav'}}]}]}", "messages[1].content[0].type",
        NULL, "'input_audio'");
    bad(CHAT, "{'model':'m','messages':[{'role':'user','content':[1]}]}",
        "messages[0].content[0]", "invalid_type",
        "but got an integer instead");
    bad(CHAT, "{'model':'m','messages':[{'role':'user','content':"
        "[{'text':'a'}]}]}", "messages[0].content[0].type",
        "missing_required_parameter",
        "Missing required parameter: 'messages[0].content[0].type'.");
    bad(CHAT, "{'model':'m','messages':[{'role':'user','content':"
        "[{'type':5}]}]}", "messages[0].content[0].type", "invalid_type",
        "expected a string, but got an integer");
    bad(CHAT, "{'model':'m','messages':[{'role':'user','content':"
        "[{'type':'text'}]}]}", "messages[0].content[0].text",
        "missing_required_parameter", "'messages[0].content[0].text'");
    bad(CHAT, "{'model':'m','messages':[{'role':'user','content':"
        "[{'type':'text','text':['a']}]}]}", "messages[0].content[0].text",
        "invalid_type", "expected a string, but got an array");
}

static void
test_long_values_quoted(void **state)
{
    char    body[4096], words[256], *p;
    int     i;

    /* a long multi-byte role is cut on a character boundary */
    p = body;
    p += sprintf(p, "{'model':'m','messages':[{'role':'");
    for (i = 0; i < 500; i++) {
        p += sprintf(p, "\xc3\xa9");
    }
    sprintf(p, "','content':'a'}]}");
    bad(CHAT, body, "messages[0].role", "invalid_value", "Invalid value: '");

    /* cut where a character starts: 'x' and 31 of 'é' are 63 bytes */
    p = body;
    p += sprintf(p, "{'model':'m','messages':[{'role':'x");
    for (i = 0; i < 100; i++) {
        p += sprintf(p, "\xc3\xa9");
    }
    sprintf(p, "','content':'a'}]}");
    p = words + sprintf(words, "Invalid value: 'x");
    for (i = 0; i < 31; i++) {
        p += sprintf(p, "\xc3\xa9");
    }
    sprintf(p, "'. Supported values");
    bad(CHAT, body, "messages[0].role", "invalid_value", words);

    /* a deep path still names the field, within err.param */
    bad(CHAT, "{'model':'m','messages':[{'role':'user','content':'a'},"
        "{'role':'user','content':[{'type':'text','text':'a'},"
        "{'type':'text','text':'a'},{'type':'text','text':'a'},"
        "{'type':'text','text':'a'},{'type':'text','text':'a'},"
        "{'type':'text','text':'a'},{'type':'text','text':'a'},"
        "{'type':'text','text':'a'},{'type':'text','text':'a'},"
        "{'type':'text','text':'a'},{'type':'text','text':7}]}]}",
        "messages[1].content[10].text", "invalid_type", "got an integer");
}


/* chat: other fields */

static void
test_tools(void **state)
{
    ngx_http_dynamo_oai_req_t  req;

    ok(CHAT, CHAT_BODY(",'tools':[{'type':'function','function':{'name':"
                       "'f','parameters':{}}}],'tool_choice':'auto'"), &req);
    assert_non_null(req.tools);
    assert_json(req.tools, "[{'function':{'name':'f','parameters':{}},"
                "'type':'function'}]");
    ngx_http_dynamo_oai_free(&req);

    ok(CHAT, CHAT_BODY(",'tools':[],'tool_choice':'none'"), &req);
    assert_null(req.tools);
    ngx_http_dynamo_oai_free(&req);

    bad(CHAT, CHAT_BODY(",'tools':{}"), "tools", "invalid_type",
        "Invalid type for 'tools': expected an array, but got an object");
    bad(CHAT, CHAT_BODY(",'tool_choice':'required'"), "tool_choice",
        "unsupported_value", "not supported");
    bad(CHAT, CHAT_BODY(",'tool_choice':{'type':'function','function':"
                        "{'name':'f'}}"), "tool_choice", "unsupported_value",
        "not supported");
    bad(CHAT, CHAT_BODY(",'tool_choice':'maybe'"), "tool_choice",
        "invalid_value", "Invalid value: 'maybe'. Supported values are: "
        "'none', 'auto', and 'required'.");
    bad(CHAT, CHAT_BODY(",'tool_choice':1"), "tool_choice", "invalid_type",
        "Invalid type for 'tool_choice'");
}

static void
test_template_fields(void **state)
{
    ngx_http_dynamo_oai_req_t  req;

    ok(CHAT, CHAT_BODY(",'add_generation_prompt':false,"
                       "'chat_template_kwargs':{'enable_thinking':false}"),
       &req);
    assert_int_equal(req.add_generation_prompt, 0);
    assert_json(req.template_kwargs, "{'enable_thinking':false}");
    ngx_http_dynamo_oai_free(&req);

    ok(CHAT, CHAT_BODY(",'add_generation_prompt':true"), &req);
    assert_int_equal(req.add_generation_prompt, 1);
    ngx_http_dynamo_oai_free(&req);

    bad(CHAT, CHAT_BODY(",'add_generation_prompt':1"),
        "add_generation_prompt", "invalid_type",
        "Invalid type for 'add_generation_prompt': expected a boolean, but "
        "got an integer instead.");
    bad(CHAT, CHAT_BODY(",'chat_template_kwargs':[]"),
        "chat_template_kwargs", "invalid_type", "expected an object");
}

static void
test_chat_max_tokens(void **state)
{
    ngx_http_dynamo_oai_req_t  req;

    ok(CHAT, CHAT_BODY(",'max_tokens':7"), &req);
    assert_true(req.max_tokens == 7);
    ngx_http_dynamo_oai_free(&req);

    ok(CHAT, CHAT_BODY(",'max_completion_tokens':9"), &req);
    assert_true(req.max_tokens == 9);
    ngx_http_dynamo_oai_free(&req);

    /* max_completion_tokens wins, in either order */
    ok(CHAT, CHAT_BODY(",'max_tokens':7,'max_completion_tokens':9"), &req);
    assert_true(req.max_tokens == 9);
    ngx_http_dynamo_oai_free(&req);
    ok(CHAT, CHAT_BODY(",'max_completion_tokens':9,'max_tokens':7"), &req);
    assert_true(req.max_tokens == 9);
    ngx_http_dynamo_oai_free(&req);

    ok(CHAT, CHAT_BODY(",'max_completion_tokens':null,'max_tokens':7"),
       &req);
    assert_true(req.max_tokens == 7);
    ngx_http_dynamo_oai_free(&req);

    /* an integral decimal is an integer (as pydantic takes it) */
    ok(CHAT, CHAT_BODY(",'max_tokens':2.0"), &req);
    assert_true(req.max_tokens == 2);
    ngx_http_dynamo_oai_free(&req);

    ok(CHAT, CHAT_BODY(",'max_tokens':9223372036854775807"), &req);
    assert_true(req.max_tokens == INT64_MAX);
    ngx_http_dynamo_oai_free(&req);

    bad(CHAT, CHAT_BODY(",'max_tokens':0"), "max_tokens",
        "integer_below_min_value",
        "Invalid 'max_tokens': integer below minimum value. Expected a "
        "value >= 1, but got 0 instead.");
    bad(CHAT, CHAT_BODY(",'max_completion_tokens':-5"),
        "max_completion_tokens", "integer_below_min_value",
        "Expected a value >= 1, but got -5 instead.");
    /* both are checked even when one wins */
    bad(CHAT, CHAT_BODY(",'max_completion_tokens':5,'max_tokens':0"),
        "max_tokens", NULL, "below minimum");
    bad(CHAT, CHAT_BODY(",'max_tokens':2.5"), "max_tokens", "invalid_type",
        "Invalid type for 'max_tokens': expected an integer, but got a "
        "decimal instead.");
    bad(CHAT, CHAT_BODY(",'max_tokens':'5'"), "max_tokens", "invalid_type",
        "expected an integer, but got a string instead.");
    bad(CHAT, CHAT_BODY(",'max_tokens':true"), "max_tokens", "invalid_type",
        "got a boolean instead");
    bad(CHAT, CHAT_BODY(",'max_tokens':1e300"), "max_tokens",
        "integer_above_max_value", "integer above maximum value");
    bad(CHAT, CHAT_BODY(",'max_tokens':-1e300"), "max_tokens",
        "integer_below_min_value", "integer below minimum value");
}

static void
test_chat_logprobs(void **state)
{
    ngx_http_dynamo_oai_req_t  req;

    ok(CHAT, CHAT_BODY(",'logprobs':true"), &req);
    assert_int_equal(req.logprobs, 0);
    ngx_http_dynamo_oai_free(&req);

    ok(CHAT, CHAT_BODY(",'logprobs':true,'top_logprobs':5"), &req);
    assert_int_equal(req.logprobs, 5);
    ngx_http_dynamo_oai_free(&req);

    ok(CHAT, CHAT_BODY(",'logprobs':true,'top_logprobs':20"), &req);
    assert_int_equal(req.logprobs, 20);
    ngx_http_dynamo_oai_free(&req);

    ok(CHAT, CHAT_BODY(",'logprobs':true,'top_logprobs':0"), &req);
    assert_int_equal(req.logprobs, 0);
    ngx_http_dynamo_oai_free(&req);

    ok(CHAT, CHAT_BODY(",'logprobs':false"), &req);
    assert_int_equal(req.logprobs, -1);
    ngx_http_dynamo_oai_free(&req);

    bad(CHAT, CHAT_BODY(",'top_logprobs':3"), "top_logprobs",
        "invalid_value", "'logprobs' must be set to true");
    bad(CHAT, CHAT_BODY(",'logprobs':false,'top_logprobs':3"),
        "top_logprobs", NULL, "'logprobs' must be set to true");
    bad(CHAT, CHAT_BODY(",'logprobs':true,'top_logprobs':21"),
        "top_logprobs", "integer_above_max_value",
        "Invalid 'top_logprobs': integer above maximum value. Expected a "
        "value <= 20, but got 21 instead.");
    bad(CHAT, CHAT_BODY(",'logprobs':true,'top_logprobs':-1"),
        "top_logprobs", "integer_below_min_value", ">= 0");
    bad(CHAT, CHAT_BODY(",'logprobs':1"), "logprobs", "invalid_type",
        "Invalid type for 'logprobs': expected a boolean, but got an "
        "integer instead.");
}


/* completions */

static void
test_prompt(void **state)
{
    ngx_http_dynamo_oai_req_t  req;

    ok(COMP, "{'model':'m','prompt':'Once upon a time'}", &req);
    assert_str(req.prompt, "Once upon a time", 16);
    assert_int_equal(req.has_prompt_ids, 0);
    assert_null(req.prompt_ids);
    ngx_http_dynamo_oai_free(&req);

    ok(COMP, "{'model':'m','prompt':['one prompt']}", &req);
    assert_str(req.prompt, "one prompt", 10);
    assert_int_equal(req.has_prompt_ids, 0);
    ngx_http_dynamo_oai_free(&req);

    ok(COMP, "{'model':'m','prompt':''}", &req);
    assert_int_equal(req.prompt.len, 0);
    assert_non_null(req.prompt.data);
    assert_int_equal(req.has_prompt_ids, 0);
    ngx_http_dynamo_oai_free(&req);

    ok(COMP, "{'model':'m','prompt':[1,403,407,0,2147483647,5.0]}", &req);
    assert_int_equal(req.has_prompt_ids, 1);
    assert_int_equal(req.n_prompt_ids, 6);
    assert_int_equal(req.prompt_ids[0], 1);
    assert_int_equal(req.prompt_ids[1], 403);
    assert_int_equal(req.prompt_ids[2], 407);
    assert_int_equal(req.prompt_ids[3], 0);
    assert_int_equal(req.prompt_ids[4], 2147483647);
    assert_int_equal(req.prompt_ids[5], 5);
    ngx_http_dynamo_oai_free(&req);

    ok(COMP, "{'model':'m','prompt':[[9,8]]}", &req);
    assert_int_equal(req.has_prompt_ids, 1);
    assert_int_equal(req.n_prompt_ids, 2);
    assert_int_equal(req.prompt_ids[0], 9);
    assert_int_equal(req.prompt_ids[1], 8);
    ngx_http_dynamo_oai_free(&req);
}

static void
test_prompt_errors(void **state)
{
    bad(COMP, "{'model':'m'}", "prompt", "missing_required_parameter",
        "Missing required parameter: 'prompt'.");
    bad(COMP, "{'model':'m','prompt':null}", "prompt", NULL,
        "Missing required parameter: 'prompt'.");
    bad(COMP, "{'model':'m','prompt':{}}", "prompt", "invalid_type",
        "Invalid type for 'prompt': expected one of a string, array of "
        "strings, array of integers, or array of arrays of integers, but "
        "got an object instead.");
    bad(COMP, "{'model':'m','prompt':5}", "prompt", "invalid_type",
        "got an integer instead");
    bad(COMP, "{'model':'m','prompt':[]}", "prompt", "empty_array",
        "Invalid 'prompt': empty array.");
    bad(COMP, "{'model':'m','prompt':[[]]}", "prompt[0]", "empty_array",
        "Invalid 'prompt[0]': empty array.");
    bad(COMP, "{'model':'m','prompt':['a','b']}", "prompt",
        "unsupported_value", "batched prompts are not supported; send one "
        "prompt per request");
    bad(COMP, "{'model':'m','prompt':[[1],[2]]}", "prompt", NULL,
        "batched prompts are not supported");
    bad(COMP, "{'model':'m','prompt':['a',1]}", "prompt", NULL,
        "batched prompts are not supported");
    bad(COMP, "{'model':'m','prompt':[1,'a']}", "prompt[1]", "invalid_type",
        "Invalid type for 'prompt[1]': expected an integer, but got a "
        "string instead.");
    bad(COMP, "{'model':'m','prompt':[true]}", "prompt[0]", "invalid_type",
        "got a boolean instead");
    bad(COMP, "{'model':'m','prompt':[null]}", "prompt[0]", "invalid_type",
        "got null instead");
    bad(COMP, "{'model':'m','prompt':[1,2.5]}", "prompt[1]", "invalid_type",
        "expected an integer, but got a decimal");
    bad(COMP, "{'model':'m','prompt':[1,-1]}", "prompt[1]",
        "integer_below_min_value", "Invalid 'prompt[1]': integer below "
        "minimum value. Expected a value >= 0, but got -1 instead.");
    bad(COMP, "{'model':'m','prompt':[[2147483648]]}", "prompt[0][0]",
        "integer_above_max_value", "Expected a value <= 2147483647, but got "
        "2147483648 instead.");
    bad(COMP, "{'model':'m','prompt':[[1,[2]]]}", "prompt[0][1]",
        "invalid_type", "got an array");
}

static void
test_completions_fields(void **state)
{
    ngx_http_dynamo_oai_req_t  req;

    ok(COMP, COMP_BODY(",'max_tokens':16,'logprobs':3,'echo':false,"
                       "'best_of':1,'suffix':''"), &req);
    assert_true(req.max_tokens == 16);
    assert_int_equal(req.logprobs, 3);
    ngx_http_dynamo_oai_free(&req);

    ok(COMP, COMP_BODY(",'logprobs':0"), &req);
    assert_int_equal(req.logprobs, 0);
    ngx_http_dynamo_oai_free(&req);

    ok(COMP, COMP_BODY(",'logprobs':20"), &req);
    assert_int_equal(req.logprobs, 20);
    ngx_http_dynamo_oai_free(&req);

    bad(COMP, COMP_BODY(",'logprobs':21"), "logprobs",
        "integer_above_max_value", "Expected a value <= 20, but got 21");
    bad(COMP, COMP_BODY(",'logprobs':-1"), "logprobs",
        "integer_below_min_value", "Expected a value >= 0, but got -1");
    bad(COMP, COMP_BODY(",'logprobs':true"), "logprobs", "invalid_type",
        "expected an integer, but got a boolean");
    bad(COMP, COMP_BODY(",'max_tokens':0"), "max_tokens",
        "integer_below_min_value", "Expected a value >= 1, but got 0");
    bad(COMP, COMP_BODY(",'echo':true"), "echo", "unsupported_value",
        "echo is not supported");
    bad(COMP, COMP_BODY(",'echo':'yes'"), "echo", "invalid_type",
        "expected a boolean");
    bad(COMP, COMP_BODY(",'best_of':2"), "best_of", "unsupported_value",
        "best_of > 1 is not supported");
    bad(COMP, COMP_BODY(",'best_of':0"), "best_of",
        "integer_below_min_value", ">= 1");
    bad(COMP, COMP_BODY(",'suffix':'end'"), "suffix", "unsupported_value",
        "suffix is not supported");
    bad(COMP, COMP_BODY(",'suffix':1"), "suffix", "invalid_type",
        "expected a string");
}


/* both kinds */

static void
test_stream(void **state)
{
    int                        k;
    ngx_http_dynamo_oai_req_t  req;
    static const char         *body[2][3] = {
        { CHAT_BODY(",'stream':true"),
          CHAT_BODY(",'stream':true,'stream_options':{'include_usage':true}"),
          CHAT_BODY(",'stream':true,'stream_options':{}") },
        { COMP_BODY(",'stream':true"),
          COMP_BODY(",'stream':true,'stream_options':{'include_usage':true}"),
          COMP_BODY(",'stream':true,'stream_options':{}") }
    };

    for (k = 0; k < 2; k++) {
        ok(k ? COMP : CHAT, body[k][0], &req);
        assert_int_equal(req.stream, 1);
        assert_int_equal(req.include_usage, 0);
        ngx_http_dynamo_oai_free(&req);

        ok(k ? COMP : CHAT, body[k][1], &req);
        assert_int_equal(req.stream, 1);
        assert_int_equal(req.include_usage, 1);
        ngx_http_dynamo_oai_free(&req);

        ok(k ? COMP : CHAT, body[k][2], &req);
        assert_int_equal(req.include_usage, 0);
        ngx_http_dynamo_oai_free(&req);
    }

    ok(CHAT, CHAT_BODY(",'stream':false,'stream_options':null"), &req);
    assert_int_equal(req.stream, 0);
    ngx_http_dynamo_oai_free(&req);

    bad_both(CHAT_BODY(",'stream_options':{'include_usage':true}"),
             COMP_BODY(",'stream':false,'stream_options':{}"),
             "stream_options", NULL,
             "The 'stream_options' parameter is only allowed when 'stream' "
             "is enabled.");
    bad_both(CHAT_BODY(",'stream':'true'"), COMP_BODY(",'stream':1"),
             "stream", "invalid_type",
             "Invalid type for 'stream': expected a boolean");
    bad_both(CHAT_BODY(",'stream':true,'stream_options':true"),
             COMP_BODY(",'stream':true,'stream_options':[]"),
             "stream_options", "invalid_type", "expected an object");
    bad_both(CHAT_BODY(",'stream':true,'stream_options':"
                       "{'include_usage':'yes'}"),
             COMP_BODY(",'stream':true,'stream_options':"
                       "{'include_usage':1}"),
             "stream_options.include_usage", "invalid_type",
             "Invalid type for 'stream_options.include_usage': expected a "
             "boolean");
}

static void
test_n(void **state)
{
    ngx_http_dynamo_oai_req_t  req;

    ok(CHAT, CHAT_BODY(",'n':1"), &req);
    ngx_http_dynamo_oai_free(&req);
    ok(COMP, COMP_BODY(",'n':1.0"), &req);
    ngx_http_dynamo_oai_free(&req);

    bad_both(CHAT_BODY(",'n':2"), COMP_BODY(",'n':128"), "n",
             "unsupported_value", "n > 1 is not supported yet");
    bad_both(CHAT_BODY(",'n':0"), COMP_BODY(",'n':-3"), "n",
             "integer_below_min_value", "Invalid 'n': integer below minimum "
             "value. Expected a value >= 1");
    bad_both(CHAT_BODY(",'n':'2'"), COMP_BODY(",'n':1.5"), "n",
             "invalid_type", "Invalid type for 'n': expected an integer");
}

static void
test_sampling_object(void **state)
{
    ngx_http_dynamo_oai_req_t  req;

    ok(CHAT, CHAT_BODY(",'temperature':0,'top_p':0.5,'top_k':40,"
                       "'min_p':0.25,'seed':42,'presence_penalty':1.5,"
                       "'frequency_penalty':-0.5,'repetition_penalty':1.25"),
       &req);
    assert_json(req.sampling, "{'frequency_penalty':-0.5,'min_p':0.25,"
                "'presence_penalty':1.5,'repetition_penalty':1.25,"
                "'seed':42,'temperature':0,'top_k':40,'top_p':0.5}");
    ngx_http_dynamo_oai_free(&req);

    /* only the fields given; integral decimals stay decimals, except
     * where the worker wants integers */
    ok(COMP, COMP_BODY(",'temperature':0.0,'top_k':3.0,'seed':7.0,"
                       "'top_p':null"), &req);
    assert_json(req.sampling, "{'seed':7,'temperature':0.0,'top_k':3}");
    assert_true(json_is_integer(json_object_get(req.sampling, "top_k")));
    assert_true(json_is_integer(json_object_get(req.sampling, "seed")));
    ngx_http_dynamo_oai_free(&req);

    /* the bounds themselves */
    ok(CHAT, CHAT_BODY(",'temperature':2,'top_p':1,'top_k':-1,'min_p':0,"
                       "'presence_penalty':-2,'frequency_penalty':2,"
                       "'repetition_penalty':100"), &req);
    assert_json(req.sampling, "{'frequency_penalty':2,'min_p':0,"
                "'presence_penalty':-2,'repetition_penalty':100,"
                "'temperature':2,'top_k':-1,'top_p':1}");
    ngx_http_dynamo_oai_free(&req);

    ok(COMP, COMP_BODY(",'top_k':0,'min_p':1,'top_p':1e-9,"
                       "'repetition_penalty':0.001"), &req);
    assert_true(json_integer_value(json_object_get(req.sampling, "top_k"))
                == 0);
    assert_true(json_real_value(json_object_get(req.sampling, "top_p"))
                == 1e-9);
    ngx_http_dynamo_oai_free(&req);
}

static void
test_seed(void **state)
{
    ngx_http_dynamo_oai_req_t  req;
    static const struct {
        const char  *body;
        const char  *sampling;
    } cases[] = {
        { COMP_BODY(",'seed':0"), "{'seed':0}" },
        { COMP_BODY(",'seed':9223372036854775807"),
          "{'seed':9223372036854775807}" },
        /* negative seeds keep their low 63 bits */
        { COMP_BODY(",'seed':-1"), "{'seed':9223372036854775807}" },
        { COMP_BODY(",'seed':-9223372036854775808"), "{'seed':0}" },
        { COMP_BODY(",'seed':-9223372036854775807"), "{'seed':1}" },
    };
    size_t  i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ok(COMP, cases[i].body, &req);
        assert_json(req.sampling, cases[i].sampling);
        ngx_http_dynamo_oai_free(&req);
    }

    bad_both(CHAT_BODY(",'seed':'1'"), COMP_BODY(",'seed':1.5"), "seed",
             "invalid_type", "Invalid type for 'seed': expected an integer");
}

static void
test_sampling_errors(void **state)
{
    bad_both(CHAT_BODY(",'temperature':3"), COMP_BODY(",'temperature':3"),
             "temperature", "decimal_above_max_value",
             "Invalid 'temperature': decimal above maximum value. Expected "
             "a value <= 2, but got 3 instead.");
    bad_both(CHAT_BODY(",'temperature':2.5"),
             COMP_BODY(",'temperature':2.0000001"), "temperature",
             "decimal_above_max_value", "Expected a value <= 2, but got 2.");
    bad_both(CHAT_BODY(",'temperature':-0.1"),
             COMP_BODY(",'temperature':-0.1"), "temperature",
             "decimal_below_min_value",
             "Invalid 'temperature': decimal below minimum value. Expected "
             "a value >= 0, but got -0.1 instead.");
    bad_both(CHAT_BODY(",'temperature':'0.5'"),
             COMP_BODY(",'temperature':'0.5'"), "temperature",
             "invalid_type",
             "Invalid type for 'temperature': expected a decimal, but got a "
             "string instead.");
    bad_both(CHAT_BODY(",'top_p':0"), COMP_BODY(",'top_p':0.0"), "top_p",
             "decimal_below_min_value",
             "Invalid 'top_p': decimal below minimum value. Expected a value "
             "> 0, but got 0 instead.");
    bad_both(CHAT_BODY(",'top_p':1.5"), COMP_BODY(",'top_p':1.5"), "top_p",
             "decimal_above_max_value", "<= 1, but got 1.5 instead.");
    bad_both(CHAT_BODY(",'top_k':-2"), COMP_BODY(",'top_k':-2"), "top_k",
             "integer_below_min_value",
             "Invalid 'top_k': integer below minimum value. Expected a value "
             ">= -1, but got -2 instead.");
    bad_both(CHAT_BODY(",'top_k':1.5"), COMP_BODY(",'top_k':'5'"), "top_k",
             "invalid_type", "Invalid type for 'top_k': expected an integer");
    bad_both(CHAT_BODY(",'min_p':1.01"), COMP_BODY(",'min_p':-1"), "min_p",
             NULL, "Invalid 'min_p': decimal ");
    bad_both(CHAT_BODY(",'presence_penalty':-2.5"),
             COMP_BODY(",'presence_penalty':-3"), "presence_penalty",
             "decimal_below_min_value", "Expected a value >= -2");
    bad_both(CHAT_BODY(",'frequency_penalty':2.5"),
             COMP_BODY(",'frequency_penalty':[]"), "frequency_penalty",
             NULL, "'frequency_penalty'");
    bad_both(CHAT_BODY(",'repetition_penalty':0"),
             COMP_BODY(",'repetition_penalty':-1"), "repetition_penalty",
             "decimal_below_min_value", "Expected a value > 0");
    bad_both(CHAT_BODY(",'repetition_penalty':100.5"),
             COMP_BODY(",'repetition_penalty':101"), "repetition_penalty",
             "decimal_above_max_value", "Expected a value <= 100");
    bad_both(CHAT_BODY(",'temperature':true"),
             COMP_BODY(",'temperature':{}"), "temperature", "invalid_type",
             "expected a decimal");
}

static void
test_stop(void **state)
{
    ngx_http_dynamo_oai_req_t  req;

    ok(CHAT, CHAT_BODY(",'stop':'\\n\\n'"), &req);
    assert_int_equal(req.nstop, 1);
    assert_str(req.stop[0], "\n\n", 2);
    ngx_http_dynamo_oai_free(&req);

    ok(COMP, COMP_BODY(",'stop':''"), &req);
    assert_int_equal(req.nstop, 0);
    ngx_http_dynamo_oai_free(&req);

    ok(COMP, COMP_BODY(",'stop':['The','','end\\u0000x','\\u00e9']"), &req);
    assert_int_equal(req.nstop, 3);
    assert_str(req.stop[0], "The", 3);
    assert_str(req.stop[1], "end\0x", 5);
    assert_str(req.stop[2], "\xc3\xa9", 2);
    ngx_http_dynamo_oai_free(&req);

    ok(CHAT, CHAT_BODY(",'stop':[]"), &req);
    assert_int_equal(req.nstop, 0);
    ngx_http_dynamo_oai_free(&req);

    ok(CHAT, CHAT_BODY(",'stop':['a','b','c','d','e','f','g','h','i','j',"
                       "'k','l','m','n','o','p']"), &req);
    assert_int_equal(req.nstop, NGX_HTTP_DYNAMO_OAI_STOP_MAX);
    assert_str(req.stop[15], "p", 1);
    ngx_http_dynamo_oai_free(&req);

    bad_both(CHAT_BODY(",'stop':['a','b','c','d','e','f','g','h','i','j',"
                       "'k','l','m','n','o','p','q']"),
             COMP_BODY(",'stop':['a','b','c','d','e','f','g','h','i','j',"
                       "'k','l','m','n','o','p','q']"), "stop",
             "array_above_max_length",
             "Invalid 'stop': array too long. Expected an array with maximum "
             "length 16, but got an array with length 17 instead.");
    bad_both(CHAT_BODY(",'stop':['a',1]"), COMP_BODY(",'stop':['a',null]"),
             "stop[1]", "invalid_type",
             "Invalid type for 'stop[1]': expected a string");
    bad_both(CHAT_BODY(",'stop':5"), COMP_BODY(",'stop':{}"), "stop",
             "invalid_type", "Invalid type for 'stop': expected one of a "
             "string or array of strings");
}

static void
test_stop_token_ids(void **state)
{
    ngx_http_dynamo_oai_req_t  req;

    ok(COMP, COMP_BODY(",'stop_token_ids':[2,0,2147483647]"), &req);
    assert_int_equal(req.nstop_ids, 3);
    assert_int_equal(req.stop_ids[0], 2);
    assert_int_equal(req.stop_ids[1], 0);
    assert_int_equal(req.stop_ids[2], 2147483647);
    ngx_http_dynamo_oai_free(&req);

    ok(CHAT, CHAT_BODY(",'stop_token_ids':[]"), &req);
    assert_int_equal(req.nstop_ids, 0);
    ngx_http_dynamo_oai_free(&req);

    bad_both(CHAT_BODY(",'stop_token_ids':[1,2,3,4,5,6,7,8,9,10,11,12,13,"
                       "14,15,16,17]"),
             COMP_BODY(",'stop_token_ids':[1,2,3,4,5,6,7,8,9,10,11,12,13,"
                       "14,15,16,17]"), "stop_token_ids",
             "array_above_max_length", "maximum length 16, but got an "
             "array with length 17");
    bad_both(CHAT_BODY(",'stop_token_ids':[1,-1]"),
             COMP_BODY(",'stop_token_ids':[1,-1]"), "stop_token_ids[1]",
             "integer_below_min_value", ">= 0, but got -1");
    bad_both(CHAT_BODY(",'stop_token_ids':['1']"),
             COMP_BODY(",'stop_token_ids':[1.5]"), "stop_token_ids[0]",
             "invalid_type", "expected an integer");
    bad_both(CHAT_BODY(",'stop_token_ids':2"),
             COMP_BODY(",'stop_token_ids':{}"), "stop_token_ids",
             "invalid_type", "expected an array");
}

static void
test_flags(void **state)
{
    ngx_http_dynamo_oai_req_t  req;

    ok(CHAT, CHAT_BODY(",'ignore_eos':true,'skip_special_tokens':false,"
                       "'user':'u-1'"), &req);
    assert_int_equal(req.ignore_eos, 1);
    assert_int_equal(req.skip_special_tokens, 0);
    ngx_http_dynamo_oai_free(&req);

    ok(COMP, COMP_BODY(",'ignore_eos':false,'skip_special_tokens':true"),
       &req);
    assert_int_equal(req.ignore_eos, 0);
    assert_int_equal(req.skip_special_tokens, 1);
    ngx_http_dynamo_oai_free(&req);

    bad_both(CHAT_BODY(",'ignore_eos':1"),
             COMP_BODY(",'ignore_eos':'true'"), "ignore_eos",
             "invalid_type", "expected a boolean");
    bad_both(CHAT_BODY(",'skip_special_tokens':0"),
             COMP_BODY(",'skip_special_tokens':[]"), "skip_special_tokens",
             "invalid_type", "expected a boolean");
    bad_both(CHAT_BODY(",'user':5"), COMP_BODY(",'user':{}"), "user",
             "invalid_type", "Invalid type for 'user': expected a string");
}

static void
test_unsupported(void **state)
{
    ngx_http_dynamo_oai_req_t  req;

    ok(CHAT, CHAT_BODY(",'logit_bias':{},'response_format':{'type':'text'}"),
       &req);
    ngx_http_dynamo_oai_free(&req);

    bad_both(CHAT_BODY(",'logit_bias':{'50256':-100}"),
             COMP_BODY(",'logit_bias':{'1':1}"), "logit_bias",
             "unsupported_value", "logit_bias is not supported");
    bad_both(CHAT_BODY(",'logit_bias':[]"), COMP_BODY(",'logit_bias':1"),
             "logit_bias", "invalid_type", "expected an object");
    bad_both(CHAT_BODY(",'response_format':{'type':'json_object'}"),
             COMP_BODY(",'response_format':{'type':'json_schema',"
                       "'json_schema':{}}"), "response_format.type",
             "unsupported_value", "is not supported; only 'text' is.");
    bad_both(CHAT_BODY(",'response_format':{}"),
             COMP_BODY(",'response_format':{'type':null}"),
             "response_format.type", "missing_required_parameter",
             "Missing required parameter: 'response_format.type'.");
    bad_both(CHAT_BODY(",'response_format':'text'"),
             COMP_BODY(",'response_format':[]"), "response_format",
             "invalid_type", "expected an object");
    bad_both(CHAT_BODY(",'response_format':{'type':1}"),
             COMP_BODY(",'response_format':{'type':true}"),
             "response_format.type", "invalid_type", "expected a string");
}

static int  fail_after = -1;

static void *
failing_malloc(size_t size)
{
    if (fail_after == 0) {
        return NULL;
    }
    if (fail_after > 0) {
        fail_after--;
    }
    return malloc(size);
}

/* jansson running out of memory at every step: -1 or 0, never a leak */
static void
oom(int kind, const char *body)
{
    int                        k, rc;
    ngx_http_dynamo_oai_req_t  req;
    ngx_http_dynamo_oai_err_t  err;

    json_set_alloc_funcs(failing_malloc, free);

    for (k = 0; k < 100000; k++) {
        fail_after = k;
        rc = parse(kind, body, &req, &err);
        fail_after = -1;
        if (rc == 0) {
            break;
        }
        assert_int_equal(rc, -1);
        assert_true(err.status == 500 || err.status == 400);
        assert_null(req.root);
        assert_null(req.messages);
        assert_null(req.sampling);
    }

    json_set_alloc_funcs(malloc, free);

    assert_true(k > 3);
    assert_int_equal(rc, 0);
    ngx_http_dynamo_oai_free(&req);
}

static void
test_out_of_memory(void **state)
{
    oom(CHAT, "{'model':'m','messages':[{'role':'system','content':'s'},"
              "{'role':'user','content':[{'type':'text','text':'a'},'b'],"
              "'name':'n'},{'role':'assistant','tool_calls':[]}],"
              "'tools':[{'type':'function'}],'temperature':0.5,'top_k':4,"
              "'seed':-1,'stop':['x','y'],'stop_token_ids':[1],"
              "'stream':true,'stream_options':{'include_usage':true},"
              "'logprobs':true,'top_logprobs':2,'min_p':0.5,"
              "'presence_penalty':1,'frequency_penalty':1,"
              "'repetition_penalty':1.5,'top_p':0.5}");
    oom(COMP, "{'model':'m','prompt':[[1,2,3]],'temperature':0,"
              "'seed':3,'logprobs':2}");
}

static void
test_free_twice(void **state)
{
    ngx_http_dynamo_oai_req_t  req;

    ok(COMP, "{'model':'m','prompt':[1,2,3],'temperature':0.5}", &req);
    ngx_http_dynamo_oai_free(&req);
    assert_null(req.root);
    assert_null(req.prompt_ids);
    ngx_http_dynamo_oai_free(&req);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_nulls),
        cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_content_parts),
        cmocka_unit_test(test_messages_errors),
        cmocka_unit_test(test_content_parts_errors),
        cmocka_unit_test(test_long_values_quoted),
        cmocka_unit_test(test_tools),
        cmocka_unit_test(test_template_fields),
        cmocka_unit_test(test_chat_max_tokens),
        cmocka_unit_test(test_chat_logprobs),
        cmocka_unit_test(test_prompt),
        cmocka_unit_test(test_prompt_errors),
        cmocka_unit_test(test_completions_fields),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_n),
        cmocka_unit_test(test_sampling_object),
        cmocka_unit_test(test_seed),
        cmocka_unit_test(test_sampling_errors),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_stop_token_ids),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_unsupported),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_free_twice),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
