/*
 * Unit tests for the chat template engine (kvr_template.h): expressions,
 * filters, loops, macros, whitespace control, errors with their lines,
 * loading, variables, limits, and concurrent rendering of one template.
 * The model templates are checked against the reference in
 * kvrouter/test/template/conformance.sh.
 *
 * The expected outputs of render_cases were produced by HF's reference
 * JavaScript Jinja (@huggingface/jinja 0.5.11, new Template(src).render(
 * {messages: [], add_generation_prompt: false})), not by this code.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvr_err.h"
#include "kvr_template.h"

typedef struct {
    const char  *src;
    const char  *want;
} render_case_t;

static const render_case_t render_cases[] = {
    { "{{ 1 + 2 }}|{{ 7 / 2 }}|{{ 6 / 3 }}|{{ 2 ** 10 }}|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 'a' ~ 1.0 }}|{{ 1.0 }}|{{ 0.1 + 0.2 }}|{{ 10 ** 21 }}|{{ 2 ** 60 }}|{{ 1 / 3 }}|{{ 0.000001 * 1 }}|{{ 100000000000000000000.0 }}|{{ 1000000000000000000000.0 }}",
      "3|3.5|2.0|1024|-4|-1|a1|1.0|0.30000000000000004|1e+21|1152921504606847000|0.3333333333333333|0.000001|100000000000000000000.0|1e+21" },
    { "{{ [1, 2.0, 'x', none, true] }}|{{ {'a': [1, {'b': none}]} }}|{{ [1, 2] ~ '' }}|{{ {'a': 1} ~ '' }}|{{ 'x' + 1 }}|{{ (1, 2) | length }}",
      "[1, 2, \"x\", null, true]|{\"a\": [1, {\"b\": null}]}|1,2|[object Map]|x1|2" },
    { "{{ '  hi \\n' | trim }}|{{ 'Hello World' | length }}|{{ 'h\303\251llo' | upper }}|{{ 'a-b c_d' | title }}|{{ 'hELLO' | capitalize }}|{{ 'aXbXc' | replace('X', '-') }}|{{ ['b', 'A', 'c'] | sort | join(',') }}|{{ [3, 1, 3, 2, 1] | unique | join }}|{{ x | default('dflt') }}|{{ '' | default('e', true) }}|{{ '12px' | int }}|{{ 'x' | float }}|{{ 2.7 | int }}|{{ -4 | abs }}",
      "hi|11|H\303\211LLO|A-B C_d|HELLO|a-b-c|A,b,c|312|dflt|e|12|0.0|2|4" },
    { "{{ {'b': 1, 'a': [1, 2]} | tojson }}|{{ {'b': 1, 'a': [1, 2]} | tojson(indent=2) }}|{{ '\303\251\"\\\\' | tojson }}|{{ [] | tojson(indent=4) }}|{{ 3.0 | tojson }}|{{ 'line1\\nline2' | indent(2) }}|{{ 'a\\n\\nb' | indent(2, true, true) }}",
      "{\"b\": 1, \"a\": [1, 2]}|{\n"
        "  \"b\": 1,\n"
        "  \"a\": [\n"
        "    1,\n"
        "    2\n"
        "  ]\n"
        "}|\"\303\251\\\"\\\\\"|[]|3|line1\n"
        "  line2|  a\n"
        "  \n"
        "  b" },
    { "{{ [{'n': 1, 'k': 'a'}, {'n': 2}, {'n': 3, 'k': 'b'}] | selectattr('k') | map(attribute='n') | join(',') }}|{{ {'z': 1, 'a': 2} | dictsort | tojson }}|{{ {'a': 1}.items() | list | tojson }}|{{ [1, 2, 3][1:] }}|{{ 'hello'[::-1] }}|{{ 'hello'[1:3] }}|{{ [1, 2, 3][-1] }}",
      "1,3|[[\"a\", 2], [\"z\", 1]]|[[\"a\", 1]]|[2, 3]|olleh|el|3" },
    { "{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ x }}{{ loop.revindex0 }}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %}{{ loop.previtem | default('-') }}{% endfor %}|{% for x in [] %}x{% else %}none{% endfor %}|{% for i in range(6) if i is odd %}{{ i }}{% endfor %}|{% for i in range(9) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}|{% for k, v in {'a': 1, 'b': 2} | items %}{{ k }}={{ v }};{% endfor %}|{% for x in [1] %}A{% break %}{% endfor %}|{% for x in [1, 2] %}{% continue %}{% else %}E{% endfor %}",
      "1a2F-2b1a3c0Lb|none|135|023|a=1;b=2;||E" },
    { "{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% set local = i %}{% endfor %}{{ ns.n }}{{ local is defined }}|{% macro m(a, b='B') %}{{ a }}{{ b }}{{ kwargs | length }}{% endmacro %}{{ m(1) }}{{ m(1, 2) }}{{ m(1, b=3, c=4) }}|{% set x %}cap{{ 1 }}{% endset %}[{{ x }}]|{% filter upper %}up{% endfilter %}|{% macro w() %}<{{ caller() }}>{% endmacro %}{% call w() %}in{% endcall %}",
      "3false|1B0120131|[cap1]|UP|<in>" },
    { "  {% if true %}\n"
        "A\n"
        "  {% endif %}\n"
        "B {{- ' C ' -}} D\n"
        "{% if true -%}  E  {%- endif %} F {# c #} G {#- c -#} H\n"
        "",
      "A\n"
        "B C D\n"
        "E F  GH" },
    { "{{ messages | length }}{{ messages[0].role if messages else 'none' }}",
      "0none" },
    { "{%- for m in messages -%}\n"
        "  [{{ m.role }}]\n"
        "{%- endfor %}\n"
        "",
      "" },
    { "{{ 'a,b'.split(',') }}{{ ' x  y '.split() }}{{ 'a b c'.split(' ', 1) }}{{ '\\u00e9\\x41' }}{{ 'it''s' }}",
      "[\"a\", \"b\"][\"x\", \"y\"][\"a\", \"b c\"]\303\251Aits" },
    { "{{ none }}{{ undefined_var }}{{ true }}{{ false | string }}{{ [] | length }}{{ x.y.z is undefined }}",
      "truefalse0true" },
    { "{{ '\346\227\245\346\234\254\350\252\236' | length }}{{ '\360\237\230\200'|length }}{{ '\346\227\245\346\234\254\350\252\236'[1] }}{{ '\346\227\245\346\234\254\350\252\236'[1:] }}",
      "32\346\234\254\346\234\254\350\252\236" },
    { "{% set a, b = [1, 2] %}{{ b }}{{ a }}{% set t = (1, 2) %}{{ t | length }}",
      "212" },
    { "{{ 1 == '1' }}{{ none == undefined_var }}{{ 2 in [1, 2] }}{{ 'b' in {'b': 1} }}{{ 'ell' in 'hello' }}{{ 1 not in [1] }}",
      "truetruetruetruetruefalse" },
    /* steps far beyond the length (once an endless loop) */
    { "{{ 'abcdef'[::10000000000000000000] }}|{{ 'abcdef'[::-10000000000000000000] }}|{{ 'abcdef'[1::7] }}|{{ 'abcdef'[::-2] }}|{{ [1,2,3][::5] }}|{{ 'abcdef'[2:1000000000000000000000:3] }}",
      "a|f|b|fdb|[1]|cf" },
    /* a literal dict keeps insertion order (a Map in the reference) */
    { "{% for k, v in {'b': 1, '10': 2, 'a': 3, '2': 4, '0': 5, '01': 6}.items() %}{{ k }},{% endfor %}",
      "b,10,a,2,0,01," },
};

/* renders src with messages (JSON text or NULL for []); returns rc */
static int
render(const char *src, const char *messages, const char *extra, int gen,
    kvr_buf_t *out, char *err, size_t errlen)
{
    kvr_template_t       *t;
    kvr_template_vars_t   v;
    json_t               *m, *x;
    int                   rc;

    rc = kvr_template_compile(src, strlen(src), &t, err, errlen);
    if (rc != KVR_OK) {
        return rc;
    }
    m = json_loads(messages ? messages : "[]", JSON_DECODE_INT_AS_REAL, NULL);
    x = extra ? json_loads(extra, 0, NULL) : NULL;
    assert_non_null(m);
    memset(&v, 0, sizeof(v));
    v.messages = m;
    v.extra = x;
    v.bos_token = "<s>";
    v.eos_token = "</s>";
    v.add_generation_prompt = gen;
    rc = kvr_template_render(t, &v, out, err, errlen);
    json_decref(m);
    json_decref(x);
    kvr_template_free(t);
    return rc;
}

static void
expect_output(const char *src, const char *messages, const char *want)
{
    kvr_buf_t  out = { 0 };
    char       err[256];
    int        rc;

    rc = render(src, messages, NULL, 0, &out, err, sizeof(err));
    if (rc != KVR_OK) {
        fail_msg("render failed: %s\nsource: %s", err, src);
    }
    if (out.len != strlen(want) || memcmp(out.data, want, out.len) != 0) {
        fail_msg("source: %s\nwant: [%s]\ngot:  [%.*s]", src, want,
                 (int) out.len, out.data ? out.data : "");
    }
    kvr_buf_free(&out);
}

/* compile or render error; err must contain each non-NULL substring */
static void
expect_error(const char *src, const char *extra, int want_rc,
    const char *sub1, const char *sub2)
{
    kvr_buf_t  out = { 0 };
    char       err[256];
    int        rc;

    err[0] = '\0';
    kvr_buf_append(&out, "keep", 4);
    rc = render(src, NULL, extra, 1, &out, err, sizeof(err));
    if (rc != want_rc) {
        fail_msg("source: %s\nwant rc %d, got %d (%s)", src, want_rc, rc, err);
    }
    if ((sub1 && strstr(err, sub1) == NULL)
        || (sub2 && strstr(err, sub2) == NULL))
    {
        fail_msg("source: %s\nerror [%s] lacks [%s] / [%s]", src, err,
                 sub1 ? sub1 : "", sub2 ? sub2 : "");
    }
    /* a failed render leaves the buffer as it was */
    assert_int_equal(out.len, 4);
    assert_memory_equal(out.data, "keep", 4);
    kvr_buf_free(&out);
}

static void
test_reference_cases(void **state)
{
    size_t  i;

    (void) state;
    for (i = 0; i < sizeof(render_cases) / sizeof(render_cases[0]); i++) {
        expect_output(render_cases[i].src, NULL, render_cases[i].want);
    }
}

static void
test_messages_and_tokens(void **state)
{
    const char  *msgs = "[{\"role\": \"user\", \"content\": \"hi\"}]";
    kvr_buf_t    out = { 0 };
    char         err[256];

    (void) state;
    expect_output("{{ bos_token }}{% for m in messages %}{{ m.role }}:"
                  "{{ m.content }}{% endfor %}{{ eos_token }}", msgs,
                  "<s>user:hi</s>");
    /* input objects: integer-like keys first, ascending, as the reference's
       Object.entries gives them (the reference rendered these) */
    expect_output("{% for k, v in messages[0].x.items() %}{{ k }},{% endfor %}",
                  "[{\"role\": \"user\", \"x\": {\"b\": 1, \"10\": 2, "
                  "\"a\": 3, \"2\": 4, \"0\": 5, \"01\": 6}}]",
                  "0,2,10,b,a,01,");
    /* add_generation_prompt */
    assert_int_equal(render("{% if add_generation_prompt %}G{% endif %}",
                            NULL, NULL, 1, &out, err, sizeof(err)), KVR_OK);
    assert_string_equal(out.data, "G");
    kvr_buf_reset(&out);
    assert_int_equal(render("{% if add_generation_prompt %}G{% endif %}x",
                            NULL, NULL, 0, &out, err, sizeof(err)), KVR_OK);
    assert_string_equal(out.data, "x");
    kvr_buf_reset(&out);
    /* extra variables, and an integer-valued float arrives as an integer */
    assert_int_equal(render("{{ enable_thinking }} {{ n }} {{ f }}", NULL,
                            "{\"enable_thinking\": false, \"n\": 2.0, "
                            "\"f\": 2.5}", 0, &out, err, sizeof(err)),
                     KVR_OK);
    assert_string_equal(out.data, "false 2 2.5");
    /* render appends */
    assert_int_equal(render("+", NULL, NULL, 0, &out, err, sizeof(err)),
                     KVR_OK);
    assert_string_equal(out.data, "false 2 2.5+");
    kvr_buf_free(&out);
}

static void
test_unset_tokens_are_undefined(void **state)
{
    kvr_template_t       *t;
    kvr_template_vars_t   v;
    kvr_buf_t             out = { 0 };
    char                  err[256];
    const char           *src = "[{{ bos_token }}]{{ bos_token is defined }}";

    (void) state;
    assert_int_equal(kvr_template_compile(src, strlen(src), &t, err,
                                          sizeof(err)), KVR_OK);
    memset(&v, 0, sizeof(v));
    assert_int_equal(kvr_template_render(t, &v, &out, err, sizeof(err)),
                     KVR_OK);
    assert_string_equal(out.data, "[]false");
    kvr_buf_free(&out);
    kvr_template_free(t);
}

static void
test_compile_errors_name_line(void **state)
{
    (void) state;
    expect_error("a\n{% if x %}\n{{ y | wordwrap }}{% endif %}", NULL,
                 KVR_ERR_INVAL, "chat_template:3:",
                 "unsupported filter \"wordwrap\"");
    expect_error("\n\n\n{{ x is divisibleby }}", NULL, KVR_ERR_INVAL,
                 "chat_template:4:", "unsupported test \"divisibleby\"");
    expect_error("ok\n{% include 'x.jinja' %}", NULL, KVR_ERR_INVAL,
                 "chat_template:2:", "unsupported statement \"include\"");
    expect_error("{% if x %}never closed", NULL, KVR_ERR_INVAL,
                 "chat_template:1:", "missing {% endif %}");
    expect_error("{% for x in y %}", NULL, KVR_ERR_INVAL, "endfor", NULL);
    expect_error("{{ 'unterminated }}", NULL, KVR_ERR_INVAL,
                 "Unexpected end of input", NULL);
    expect_error("{{ 1 +* 2 }}", NULL, KVR_ERR_INVAL, "chat_template:1:",
                 NULL);
    expect_error("{# unclosed comment", NULL, KVR_ERR_INVAL, "comment", NULL);
    expect_error("{{ '\\q' }}", NULL, KVR_ERR_INVAL, "escaped", NULL);
    expect_error("{{ f(a=1, 2) }}", NULL, KVR_ERR_INVAL, "positional", NULL);
    expect_error("{% macro m(a, a) %}{% endmacro %}", NULL, KVR_ERR_INVAL,
                 "duplicate parameter", NULL);
}

static void
test_runtime_errors(void **state)
{
    (void) state;
    expect_error("line1\nline2 {{ raise_exception('Roles must alternate') }}",
                 NULL, KVR_ERR_INVAL, "chat_template:2:",
                 "Roles must alternate");
    expect_error("{{ 1 + none }}", NULL, KVR_ERR_INVAL, "null", NULL);
    expect_error("{{ x + 1 }}", NULL, KVR_ERR_INVAL, "undefined", NULL);
    expect_error("{{ 'a' < 'b' }}", NULL, KVR_ERR_INVAL, "operator", NULL);
    expect_error("{{ 3 | upper }}", NULL, KVR_ERR_INVAL, "upper", NULL);
    expect_error("{{ x | default }}", NULL, KVR_ERR_INVAL, "default", NULL);
    expect_error("{% for x in 5 %}{% endfor %}", NULL, KVR_ERR_INVAL,
                 "iterable", NULL);
    expect_error("{% break %}", NULL, KVR_ERR_INVAL, "outside a loop", NULL);
    expect_error("{{ [] | first }}", NULL, KVR_ERR_INVAL, "undefined", NULL);
    expect_error("{% set x = 1 %}{% set x.y = 2 %}", NULL, KVR_ERR_INVAL,
                 "namespace", NULL);
    expect_error("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", NULL,
                 KVR_ERR_INVAL, "argument", NULL);
    expect_error("{{ range }}", NULL, KVR_ERR_INVAL, "function", NULL);
    /* an extra variable may not shadow a global */
    expect_error("x", "{\"range\": 1}", KVR_ERR_INVAL, "already declared",
                 NULL);
}

static void
test_first_of_empty_list_can_be_stored(void **state)
{
    (void) state;
    /* the reference's lookup turns the stored JavaScript undefined into
     * an ordinary undefined */
    expect_output("{% set x = [] | first %}{{ x is defined }}", NULL,
                  "false");
}

static void
test_limits(void **state)
{
    (void) state;
    expect_error("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", NULL,
                 KVR_ERR_INVAL, "recursion limit", NULL);
    expect_error("{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}"
                 "{{ f(1) }}", NULL, KVR_ERR_INVAL, "limit", NULL);
    expect_error("{% for i in range(2000000) %}{% endfor %}", NULL,
                 KVR_ERR_INVAL, "loop iterations", NULL);
    expect_error("{% for i in range(1000) %}{% for j in range(1000) %}"
                 "{% for k in range(2) %}{% endfor %}{% endfor %}"
                 "{% endfor %}", NULL, KVR_ERR_INVAL, "limit", NULL);
    /* 64 KiB doubled 9 times: 32 MiB of output */
    expect_error("{% set ns = namespace(s='x') %}{% for i in range(16) %}"
                 "{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
                 "{% for i in range(600) %}{{ ns.s }}{% endfor %}", NULL,
                 KVR_ERR_INVAL, "output larger than", NULL);
    expect_error("{% set ns = namespace(x=[]) %}{% for i in range(5000) %}"
                 "{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}", NULL,
                 KVR_ERR_INVAL, "nested too deeply", NULL);
    expect_error("{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}"
                 "{% for i in range(100000) %}{% set ns.s = ns.s ~ 'y' %}"
                 "{% endfor %}", NULL, KVR_ERR_INVAL, "limit", NULL);
}

/* 2 MiB of source, 300k tokens: compile memory stays linear */
static void
test_large_template(void **state)
{
    kvr_template_t  *t;
    kvr_buf_t        out = { 0 };
    char            *src, err[256];
    size_t           len, i, n;
    kvr_template_vars_t  v;

    (void) state;
    len = 2u << 20;
    src = malloc(len + 1);
    assert_non_null(src);
    n = 0;
    for (i = 0; n + 16 < len; i++) {
        n += (size_t) sprintf(src + n, "{{ 'ab' ~ x }}\n");
    }
    assert_int_equal(kvr_template_compile(src, n, &t, err, sizeof(err)),
                     KVR_OK);
    memset(&v, 0, sizeof(v));
    assert_int_equal(kvr_template_render(t, &v, &out, err, sizeof(err)),
                     KVR_ERR_INVAL);   /* x is undefined: ~ fails */
    kvr_template_free(t);
    free(src);
    kvr_buf_free(&out);
}

static void
test_load_config(void **state)
{
    kvr_template_t  *t;
    char             err[256];
    const char      *one = "{\"chat_template\": \"A{{ 1 }}\"}";
    const char      *list = "{\"chat_template\": ["
                            "{\"name\": \"tool_use\", \"template\": \"T\"},"
                            "{\"name\": \"default\", \"template\": \"D\"}]}";
    const char      *none = "{\"bos_token\": \"<s>\"}";
    kvr_template_vars_t  v;
    kvr_buf_t        out = { 0 };

    (void) state;
    memset(&v, 0, sizeof(v));
    assert_int_equal(kvr_template_load_config(one, strlen(one), NULL, &t,
                                              err, sizeof(err)), KVR_OK);
    assert_int_equal(kvr_template_render(t, &v, &out, err, sizeof(err)),
                     KVR_OK);
    kvr_template_free(t);
    assert_int_equal(kvr_template_load_config(list, strlen(list), NULL, &t,
                                              err, sizeof(err)), KVR_OK);
    assert_int_equal(kvr_template_render(t, &v, &out, err, sizeof(err)),
                     KVR_OK);
    kvr_template_free(t);
    assert_int_equal(kvr_template_load_config(list, strlen(list), "tool_use",
                                              &t, err, sizeof(err)), KVR_OK);
    assert_int_equal(kvr_template_render(t, &v, &out, err, sizeof(err)),
                     KVR_OK);
    kvr_template_free(t);
    assert_string_equal(out.data, "A1DT");
    assert_int_equal(kvr_template_load_config(list, strlen(list), "nope", &t,
                                              err, sizeof(err)),
                     KVR_ERR_NOTFOUND);
    assert_int_equal(kvr_template_load_config(none, strlen(none), NULL, &t,
                                              err, sizeof(err)),
                     KVR_ERR_NOTFOUND);
    assert_int_equal(kvr_template_load_config("{", 1, NULL, &t, err,
                                              sizeof(err)), KVR_ERR_INVAL);
    assert_int_equal(kvr_template_load_config("{\"chat_template\": 5}", 20,
                                              NULL, &t, err, sizeof(err)),
                     KVR_ERR_INVAL);
    kvr_buf_free(&out);
}

static void
write_file(const char *dir, const char *name, const char *text)
{
    char   path[512];
    FILE  *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
test_load_dir(void **state)
{
    char                  dir[] = "/tmp/kvr_tmpl_testXXXXXX", err[256];
    char                  path[512];
    kvr_template_t       *t;
    kvr_template_vars_t   v;
    kvr_buf_t             out = { 0 };

    (void) state;
    assert_non_null(mkdtemp(dir));
    /* nothing at all */
    assert_int_equal(kvr_template_load_dir(dir, NULL, &t, err, sizeof(err)),
                     KVR_ERR_NOTFOUND);
    /* a config without a template, then chat_template.jinja */
    write_file(dir, "tokenizer_config.json",
               "{\"model_max_length\": 1000000000000000019884624838656}");
    assert_int_equal(kvr_template_load_dir(dir, NULL, &t, err, sizeof(err)),
                     KVR_ERR_NOTFOUND);
    write_file(dir, "chat_template.jinja", "J{{ 2 * 3 }}\n");
    assert_int_equal(kvr_template_load_dir(dir, NULL, &t, err, sizeof(err)),
                     KVR_OK);
    memset(&v, 0, sizeof(v));
    assert_int_equal(kvr_template_render(t, &v, &out, err, sizeof(err)),
                     KVR_OK);
    kvr_template_free(t);
    /* the config's own template wins */
    write_file(dir, "tokenizer_config.json", "{\"chat_template\": \"C\"}");
    assert_int_equal(kvr_template_load_dir(dir, NULL, &t, err, sizeof(err)),
                     KVR_OK);
    assert_int_equal(kvr_template_render(t, &v, &out, err, sizeof(err)),
                     KVR_OK);
    kvr_template_free(t);
    /* (a single trailing newline of the source is dropped, as in Jinja) */
    assert_string_equal(out.data, "J6C");
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/chat_template.jinja", dir);
    unlink(path);
    rmdir(dir);
    kvr_buf_free(&out);
}

typedef struct {
    const kvr_template_t  *t;
    json_t                *messages;
    char                   want[512];
    int                    ok;
} thread_arg_t;

static void *
render_many(void *p)
{
    thread_arg_t         *a = p;
    kvr_template_vars_t   v;
    kvr_buf_t             out = { 0 };
    char                  err[256];
    int                   i;

    memset(&v, 0, sizeof(v));
    v.messages = a->messages;
    v.bos_token = "<s>";
    a->ok = 1;
    for (i = 0; i < 500; i++) {
        kvr_buf_reset(&out);
        if (kvr_template_render(a->t, &v, &out, err, sizeof(err)) != KVR_OK
            || strcmp(out.data, a->want) != 0)
        {
            a->ok = 0;
            break;
        }
    }
    kvr_buf_free(&out);
    return NULL;
}

static void
test_concurrent_renders(void **state)
{
    const char      *src = "{% set ns = namespace(n=0) %}{{ bos_token }}"
                           "{% for m in messages %}{% set ns.n = ns.n + 1 %}"
                           "[{{ m.role | upper }}:{{ m.content | trim }}]"
                           "{% endfor %}{{ ns.n }}";
    kvr_template_t  *t;
    pthread_t        th[4];
    thread_arg_t     a[4];
    char             err[256], js[256];
    int              i;

    (void) state;
    assert_int_equal(kvr_template_compile(src, strlen(src), &t, err,
                                          sizeof(err)), KVR_OK);
    for (i = 0; i < 4; i++) {
        snprintf(js, sizeof(js), "[{\"role\": \"user\", \"content\": \" t%d \"},"
                 " {\"role\": \"assistant\", \"content\": \"r%d\"}]", i, i);
        a[i].t = t;
        a[i].messages = json_loads(js, 0, NULL);
        snprintf(a[i].want, sizeof(a[i].want), "<s>[USER:t%d][ASSISTANT:r%d]2",
                 i, i);
        assert_int_equal(pthread_create(&th[i], NULL, render_many, &a[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_true(a[i].ok);
        json_decref(a[i].messages);
    }
    kvr_template_free(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_cases),
        cmocka_unit_test(test_messages_and_tokens),
        cmocka_unit_test(test_unset_tokens_are_undefined),
        cmocka_unit_test(test_compile_errors_name_line),
        cmocka_unit_test(test_runtime_errors),
        cmocka_unit_test(test_first_of_empty_list_can_be_stored),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_large_template),
        cmocka_unit_test(test_load_config),
        cmocka_unit_test(test_load_dir),
        cmocka_unit_test(test_concurrent_renders),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
