/*
 * Tests for db_opts.h: defaults as vLLM's benchmark_serving documents
 * them (base URL http://127.0.0.1:8000, endpoint /v1/completions,
 * --num-prompts 1000, --random-input-len 1024, --random-output-len 128,
 * --request-rate inf, --burstiness 1, percentile metrics ttft,tpot,itl),
 * argparse's flag forms (--x v, --x=v, --x_y), vLLM's --goodput syntax
 * ("ttft:50 tpot:20", KEY:VALUE words, keys ttft/tpot/e2el, values in ms,
 * negative rejected) and value checks that name the flag.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "db_opts.h"

#define MAXARGS 64

/* Parses a NULL-terminated list of arguments after the program name. */
static int
parse_v(db_opts_t *o, char *err, size_t errlen, const char *first,
    va_list ap)
{
    char        *argv[MAXARGS];
    int          argc = 0;
    const char  *a;

    argv[argc++] = (char *) "dynamo-bench";
    for (a = first; a != NULL && argc < MAXARGS - 1;
         a = va_arg(ap, const char *))
    {
        argv[argc++] = (char *) a;
    }
    argv[argc] = NULL;
    db_opts_defaults(o);
    err[0] = '\0';
    return db_opts_parse(o, argc, argv, err, errlen);
}

static int
parse(db_opts_t *o, char *err, size_t errlen, const char *first, ...)
{
    va_list  ap;
    int      rc;

    va_start(ap, first);
    rc = parse_v(o, err, errlen, first, ap);
    va_end(ap);
    return rc;
}

/* The parse fails and the message contains want. */
static void
bad(const char *want, const char *first, ...)
{
    db_opts_t  o;
    char       err[512];
    va_list    ap;
    int        rc;

    va_start(ap, first);
    rc = parse_v(&o, err, sizeof(err), first, ap);
    va_end(ap);
    if (rc != -1) {
        fail_msg("'%s ...' parsed (rc %d), want an error with '%s'", first,
            rc, want);
    }
    if (strstr(err, want) == NULL) {
        fail_msg("'%s ...': error '%s' lacks '%s'", first, err, want);
    }
    db_opts_free(&o);
}

static void
test_defaults(void **state)
{
    db_opts_t  o;
    char       err[256];

    unsetenv("OPENAI_API_KEY");
    assert_int_equal(parse(&o, err, sizeof(err), NULL), 0);
    assert_string_equal(o.base_url, "http://127.0.0.1:8000");
    assert_string_equal(o.endpoint, "/v1/completions");
    assert_int_equal(o.chat, 0);
    assert_null(o.model);
    assert_null(o.api_key);
    assert_int_equal(o.dataset, DB_DATA_RANDOM);
    assert_int_equal(o.num_prompts, 1000);
    assert_int_equal(o.num_prompts_set, 0);
    assert_int_equal(o.random.input_len, 1024);
    assert_int_equal(o.random.output_len, 128);
    assert_true(o.random.range_ratio == 0.0);
    assert_int_equal(o.random.prefix_len, 0);
    assert_int_equal(o.random.num_prompts, 1000);
    assert_int_equal(o.seed, 0);
    assert_true(o.temperature == 0.0);
    assert_int_equal(o.ignore_eos, 0);
    assert_int_equal(o.max_concurrency, 0);
    assert_true(o.request_rate == 0.0);       /* inf */
    assert_true(o.burstiness == 1.0);
    assert_true(o.duration_s == 0.0);
    assert_int_equal(o.num_warmups, 0);
    assert_true(o.timeout_s == 600.0);
    assert_int_equal(o.n_sweep, 0);
    assert_true(o.goodput_ttft_ms < 0 && o.goodput_tpot_ms < 0
                && o.goodput_e2el_ms < 0);
    assert_int_equal(o.pct_metrics, DB_M_TTFT | DB_M_TPOT | DB_M_ITL);
    assert_int_equal(o.n_pcts, 3);
    assert_true(o.pcts[0] == 50 && o.pcts[1] == 90 && o.pcts[2] == 99);
    assert_int_equal(o.trace.block_size, 512);
    assert_true(o.trace.speedup == 1.0);
    assert_int_equal(o.trace.fixed_schedule, 1);
    assert_int_equal(o.trace.max_requests, 0);
    assert_string_equal(o.result_dir, ".");
    assert_int_equal(o.save_result, 0);
    assert_int_equal(o.plot, 0);
    db_opts_free(&o);
}

static void
test_flag_forms(void **state)
{
    db_opts_t  o;
    char       err[256];

    /* --x v */
    assert_int_equal(parse(&o, err, sizeof(err), "--num-prompts", "7",
        NULL), 0);
    assert_int_equal(o.num_prompts, 7);
    assert_int_equal(o.num_prompts_set, 1);
    assert_int_equal(o.trace.max_requests, 7);
    db_opts_free(&o);
    /* --x=v */
    assert_int_equal(parse(&o, err, sizeof(err), "--num-prompts=8", NULL),
        0);
    assert_int_equal(o.num_prompts, 8);
    db_opts_free(&o);
    /* --x_y v and --x_y=v */
    assert_int_equal(parse(&o, err, sizeof(err), "--num_prompts", "9",
        "--random_input_len=33", "--max_concurrency", "4", NULL), 0);
    assert_int_equal(o.num_prompts, 9);
    assert_int_equal(o.random.input_len, 33);
    assert_int_equal(o.max_concurrency, 4);
    db_opts_free(&o);
    /* an underscore in a value is left alone */
    assert_int_equal(parse(&o, err, sizeof(err), "--model", "my_model",
        "--served_model_name=a_b", NULL), 0);
    assert_string_equal(o.model, "my_model");
    assert_string_equal(o.served_model, "a_b");
    db_opts_free(&o);
    /* switches */
    assert_int_equal(parse(&o, err, sizeof(err), "--ignore-eos",
        "--save_result", "--save-detailed", "--plot", "--disable-tqdm",
        "--trust-remote-code", NULL), 0);
    assert_int_equal(o.ignore_eos, 1);
    assert_int_equal(o.save_result, 1);
    assert_int_equal(o.save_detailed, 1);
    assert_int_equal(o.plot, 1);
    assert_int_equal(o.progress, 0);
    db_opts_free(&o);
}

static void
test_target(void **state)
{
    db_opts_t  o;
    char       err[256];

    /* --host/--port make the URL; --base-url wins (vLLM) */
    assert_int_equal(parse(&o, err, sizeof(err), "--host", "10.0.0.1",
        "--port", "8080", NULL), 0);
    assert_string_equal(o.base_url, "http://10.0.0.1:8080");
    db_opts_free(&o);
    assert_int_equal(parse(&o, err, sizeof(err), "--host", "::1", NULL),
        0);
    assert_string_equal(o.base_url, "http://[::1]:8000");
    db_opts_free(&o);
    assert_int_equal(parse(&o, err, sizeof(err), "--host", "10.0.0.1",
        "--base-url", "http://gw:9000/", NULL), 0);
    assert_string_equal(o.base_url, "http://gw:9000");
    db_opts_free(&o);
    /* chat by endpoint, or by backend (which picks the chat path) */
    assert_int_equal(parse(&o, err, sizeof(err), "--endpoint",
        "/v1/chat/completions", NULL), 0);
    assert_int_equal(o.chat, 1);
    db_opts_free(&o);
    assert_int_equal(parse(&o, err, sizeof(err), "--backend",
        "openai-chat", NULL), 0);
    assert_int_equal(o.chat, 1);
    assert_string_equal(o.endpoint, "/v1/chat/completions");
    db_opts_free(&o);
    assert_int_equal(parse(&o, err, sizeof(err), "--backend", "vllm",
        NULL), 0);
    assert_int_equal(o.chat, 0);
    db_opts_free(&o);
    /* headers repeat; the API key comes from the environment */
    setenv("OPENAI_API_KEY", "sk-env", 1);
    assert_int_equal(parse(&o, err, sizeof(err), "--header", "X-A: 1",
        "--header=X-B: two", NULL), 0);
    assert_int_equal(o.n_headers, 2);
    assert_string_equal(o.headers[0], "X-A: 1");
    assert_string_equal(o.headers[1], "X-B: two");
    assert_string_equal(o.api_key, "sk-env");
    db_opts_free(&o);
    assert_int_equal(parse(&o, err, sizeof(err), "--api-key", "sk-flag",
        NULL), 0);
    assert_string_equal(o.api_key, "sk-flag");
    db_opts_free(&o);
    unsetenv("OPENAI_API_KEY");
    assert_int_equal(parse(&o, err, sizeof(err), "--prompt-format",
        "tokens", NULL), 0);
    assert_int_equal(o.prompt_tokens, 1);
    db_opts_free(&o);
}

static void
test_datasets(void **state)
{
    db_opts_t  o;
    char       err[256];

    assert_int_equal(parse(&o, err, sizeof(err), "--dataset-name",
        "mooncake", "--dataset-path", "t.jsonl", "--trace-block-size", "16",
        "--trace-speedup", "2.5", "--trace-schedule", "none", "--seed", "42",
        NULL), 0);
    assert_int_equal(o.dataset, DB_DATA_TRACE);
    assert_string_equal(o.dataset_path, "t.jsonl");
    assert_int_equal(o.trace.block_size, 16);
    assert_true(o.trace.speedup == 2.5);
    assert_int_equal(o.trace.fixed_schedule, 0);
    assert_int_equal(o.trace.seed, 42);
    assert_int_equal(o.trace.max_requests, 0);   /* --num-prompts unset */
    db_opts_free(&o);

    assert_int_equal(parse(&o, err, sizeof(err), "--dataset-name",
        "sessions", "--num-sessions", "3", "--session-turns", "5",
        "--session-system-len", "0", "--session-input-len", "20",
        "--session-output-len", "7", "--session-think-ms", "250", NULL), 0);
    assert_int_equal(o.dataset, DB_DATA_SESSIONS);
    assert_int_equal(o.sessions.sessions, 3);
    assert_int_equal(o.sessions.turns, 5);
    assert_int_equal(o.sessions.system_len, 0);
    assert_int_equal(o.sessions.input_len, 20);
    assert_int_equal(o.sessions.output_len, 7);
    assert_true(fabs(o.sessions.think_s - 0.25) < 1e-12);
    db_opts_free(&o);

    assert_int_equal(parse(&o, err, sizeof(err), "--random-input-len",
        "100", "--random-output-len", "10", "--random-range-ratio", "0.5",
        "--random-prefix-len", "64", "--seed", "7", NULL), 0);
    assert_int_equal(o.random.input_len, 100);
    assert_int_equal(o.random.output_len, 10);
    assert_true(o.random.range_ratio == 0.5);
    assert_int_equal(o.random.prefix_len, 64);
    assert_int_equal(o.random.seed, 7);
    db_opts_free(&o);
}

static void
test_load(void **state)
{
    db_opts_t  o;
    char       err[256];

    assert_int_equal(parse(&o, err, sizeof(err), "--request-rate", "12.5",
        "--burstiness", "0.5", "--duration", "30", "--num-warmups", "3",
        "--request-timeout", "5", "--temperature", "0.7", NULL), 0);
    assert_true(o.request_rate == 12.5);
    assert_true(o.burstiness == 0.5);
    assert_true(o.duration_s == 30);
    assert_int_equal(o.num_warmups, 3);
    assert_true(o.timeout_s == 5);
    assert_true(o.temperature == 0.7);
    db_opts_free(&o);
    assert_int_equal(parse(&o, err, sizeof(err), "--request-rate", "inf",
        NULL), 0);
    assert_true(o.request_rate == 0.0);
    db_opts_free(&o);
}

static void
test_goodput(void **state)
{
    db_opts_t  o;
    char       err[256];

    /* vLLM's documented form: space-separated words after one flag */
    assert_int_equal(parse(&o, err, sizeof(err), "--goodput", "ttft:500",
        "tpot:50", "--num-prompts", "3", NULL), 0);
    assert_true(o.goodput_ttft_ms == 500);
    assert_true(o.goodput_tpot_ms == 50);
    assert_true(o.goodput_e2el_ms < 0);
    assert_int_equal(o.num_prompts, 3);
    db_opts_free(&o);
    /* one word, comma-separated; repeated flags add up */
    assert_int_equal(parse(&o, err, sizeof(err), "--goodput=e2el:1000.5,"
        "ttft:1", "--goodput", "tpot:0", NULL), 0);
    assert_true(o.goodput_e2el_ms == 1000.5);
    assert_true(o.goodput_ttft_ms == 1);
    assert_true(o.goodput_tpot_ms == 0);
    db_opts_free(&o);
    /* the function alone */
    db_opts_defaults(&o);
    assert_int_equal(db_goodput_parse(&o, " ttft:20  e2el:300 ", err,
        sizeof(err)), 0);
    assert_true(o.goodput_ttft_ms == 20 && o.goodput_e2el_ms == 300);
    assert_true(o.goodput_tpot_ms < 0);
    assert_int_equal(db_goodput_parse(&o, "itl:5", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "itl"));
    assert_int_equal(db_goodput_parse(&o, "", err, sizeof(err)), -1);
    db_opts_free(&o);

    bad("unknown metric 'itl'", "--goodput", "itl:5", NULL);
    bad("unknown metric 'TTFT'", "--goodput", "TTFT:5", NULL);
    bad("tpot", "--goodput", "ttft:5", "tpot:-1", NULL);
    bad("ttft", "--goodput", "ttft:abc", NULL);
    bad("ttft", "--goodput", "ttft:", NULL);
    bad("KEY:VALUE", "--goodput", "ttft", NULL);
    bad("--goodput", "--goodput", NULL);
}

static void
test_lists(void **state)
{
    db_opts_t  o;
    char       err[256];

    assert_int_equal(parse(&o, err, sizeof(err), "--percentile-metrics",
        "ttft,e2el", "--metric-percentiles", "25,99.9,100", NULL), 0);
    assert_int_equal(o.pct_metrics, DB_M_TTFT | DB_M_E2EL);
    assert_int_equal(o.n_pcts, 3);
    assert_true(o.pcts[0] == 25 && o.pcts[1] == 99.9 && o.pcts[2] == 100);
    db_opts_free(&o);
    assert_int_equal(parse(&o, err, sizeof(err), "--concurrency",
        "1,2,4,8", NULL), 0);
    assert_int_equal(o.n_sweep, 4);
    assert_true(o.sweep[0] == 1 && o.sweep[1] == 2 && o.sweep[2] == 4
                && o.sweep[3] == 8);
    db_opts_free(&o);
    /* space-separated words, like --goodput */
    assert_int_equal(parse(&o, err, sizeof(err), "--concurrency", "16",
        "32", "--num_prompts", "4", NULL), 0);
    assert_int_equal(o.n_sweep, 2);
    assert_true(o.sweep[0] == 16 && o.sweep[1] == 32);
    assert_int_equal(o.num_prompts, 4);
    db_opts_free(&o);

    bad("unknown metric 'ttfb'", "--percentile-metrics", "ttft,ttfb", NULL);
    bad("--percentile-metrics: empty", "--percentile-metrics", ",", NULL);
    bad("--metric-percentiles", "--metric-percentiles", "0", NULL);
    bad("--metric-percentiles", "--metric-percentiles", "50,100.5", NULL);
    bad("--metric-percentiles", "--metric-percentiles", "x", NULL);
    bad("--concurrency: empty", "--concurrency", ",", NULL);
    bad("--concurrency", "--concurrency", "1,0", NULL);
    bad("--concurrency", "--concurrency", "1,-2", NULL);
    bad("--concurrency: 4 is listed twice", "--concurrency", "1,4,8,4",
        NULL);
}

/* Counts that would build a dataset beyond any memory are refused at
 * parse time (they used to grind through malloc until the machine gave
 * out): 10^8 requests at most, 10^9 random prompt tokens at most. */
static void
test_sizes(void **state)
{
    db_opts_t  o;
    char       err[256];

    bad("--num-warmups: 9223372036854775807 must be in [0, 100000000]",
        "--num-prompts", "4", "--num-warmups", "9223372036854775807", NULL);
    bad("--num-prompts: 100000001 must be in [1, 100000000]",
        "--num-prompts", "100000001", NULL);
    /* 10^6 x (1000 + 1000 x 1.5) = 2.5e9 tokens */
    bad("more than the 1e+09", "--num-prompts", "1000000",
        "--random-input-len", "1000", "--random-range-ratio", "0.5", NULL);
    /* 400 x (1000 + 1000 x 1.5) = 10^6 tokens: fine */
    assert_int_equal(parse(&o, err, sizeof(err), "--num-prompts", "300",
        "--num-warmups", "100", "--random-input-len", "1000",
        "--random-range-ratio", "0.5", NULL), 0);
    db_opts_free(&o);
    /* a trace is not built from these flags: no token bound */
    assert_int_equal(parse(&o, err, sizeof(err), "--dataset-name", "trace",
        "--dataset-path", "t.jsonl", "--num-prompts", "100000000", NULL), 0);
    db_opts_free(&o);
}

static void
test_bad_values(void **state)
{
    bad("--random-input-len", "--random-input-len", "-5", NULL);
    bad("--random-output-len", "--random-output-len", "0", NULL);
    bad("--random-prefix-len", "--random-prefix-len", "-1", NULL);
    bad("--random-range-ratio", "--random-range-ratio", "1", NULL);
    bad("--random-range-ratio", "--random-range-ratio", "-0.1", NULL);
    bad("--request-rate", "--request-rate", "-1", NULL);
    bad("--request-rate", "--request-rate", "fast", NULL);
    bad("--burstiness", "--burstiness", "0", NULL);
    bad("--num-prompts", "--num-prompts", "0", NULL);
    bad("--num-prompts", "--num-prompts", "12x", NULL);
    bad("--num-warmups", "--num-warmups", "-1", NULL);
    bad("--max-concurrency", "--max-concurrency", "0", NULL);
    bad("--request-timeout", "--request-timeout", "0", NULL);
    bad("--duration", "--duration", "nan", NULL);
    bad("--port", "--port", "70000", NULL);
    bad("--temperature", "--temperature", "-1", NULL);
    bad("--trace-speedup", "--trace-speedup", "0", NULL);
    bad("--trace-block-size", "--trace-block-size", "0", NULL);
    bad("--trace-schedule", "--trace-schedule", "later", NULL);
    bad("--dataset-name", "--dataset-name", "sharegpt", NULL);
    bad("--dataset-path", "--dataset-name", "trace", NULL);
    bad("--backend", "--backend", "tgi", NULL);
    bad("--backend openai-chat", "--backend", "openai-chat", "--endpoint",
        "/v1/completions", NULL);
    bad("--prompt-format", "--prompt-format", "ids", NULL);
    bad("--prompt-format tokens", "--prompt-format", "tokens",
        "--endpoint", "/v1/chat/completions", NULL);
    bad("--header", "--header", "no colon", NULL);
    bad("--base-url", "--base-url", "ftp://x", NULL);
    bad("--endpoint", "--endpoint", "v1/completions", NULL);
    bad("--session-turns", "--session-turns", "0", NULL);
    bad("--session-think-ms", "--session-think-ms", "-3", NULL);
    bad("--result-filename", "--result-filename", "a/b.json", NULL);
    bad("--num-prompts needs a value", "--num-prompts", NULL);
    bad("--plot takes no value", "--plot=1", NULL);
    bad("--no-such-flag", "--no-such-flag", "1", NULL);
    bad("unexpected argument 'extra'", "extra", NULL);
}

static void
test_usage_lists_flags(void **state)
{
    /* every flag the issue names appears in --help */
    static const char *names[] = {
        "--base-url", "--endpoint", "--model", "--tokenizer",
        "--dataset-name", "--dataset-path", "--random-input-len",
        "--random-output-len", "--random-range-ratio", "--random-prefix-len",
        "--num-prompts", "--max-concurrency", "--request-rate",
        "--burstiness", "--goodput", "--percentile-metrics",
        "--metric-percentiles", "--save-result", "--result-dir", "--seed",
        "--trace-block-size", "--concurrency", "--duration",
        "--num-warmups", "--request-timeout", NULL
    };
    char    *buf = NULL;
    size_t   len = 0, i;
    FILE    *f = open_memstream(&buf, &len);

    assert_non_null(f);
    db_opts_usage(f);
    fclose(f);
    for (i = 0; names[i] != NULL; i++) {
        if (strstr(buf, names[i]) == NULL) {
            fail_msg("--help lacks %s", names[i]);
        }
    }
    free(buf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_flag_forms),
        cmocka_unit_test(test_target),
        cmocka_unit_test(test_datasets),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_goodput),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_usage_lists_flags),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
