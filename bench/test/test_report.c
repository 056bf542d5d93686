/*
 * Tests for the report (db_report.h): vLLM's result block parsed line by
 * line against vLLM's format strings ("{:<40} {:<10}", "{:<40}
 * {:<10.2f}", titles centred in 50 with Python's '^'), the summary JSON
 * written and read back equal, bad summary files rejected with the key
 * named, vLLM's own result files read, CSV, per-request JSONL, compare,
 * sweep tables and the gnuplot PNGs.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include <cmocka.h>

#include "db_cmd.h"
#include "db_report.h"

/* A summary built by hand (not by db_metrics_compute). */
static void summary(db_summary_t *s)
{
    static const double p[] = { 50, 90, 99, 99.9 };
    memset(s, 0, sizeof(*s));
    s->label = strdup("kv, routed");
    s->model = strdup("stories260K");
    s->base_url = strdup("http://127.0.0.1:8080");
    s->endpoint = strdup("/v1/completions");
    s->dataset = strdup("random");
    s->date = strdup("20250101-120000");
    s->backend = strdup("openai");
    s->num_prompts = 200;
    s->request_rate = 0;
    s->burstiness = 1;
    s->max_concurrency = 8;
    s->duration_s = 12.3456;
    s->completed = 100;
    s->failed = 3;
    s->total_input = 102400;
    s->total_output = 12800;
    s->total_cached = 51200;
    s->request_throughput = 8.1;
    s->request_goodput = -1;
    s->output_throughput = 1036.8;
    s->total_token_throughput = 9331.2;
    s->peak_concurrency = 8;
    s->pct_metrics = DB_M_TTFT | DB_M_TPOT | DB_M_ITL;
    s->known_metrics = DB_M_TTFT | DB_M_TPOT | DB_M_ITL | DB_M_E2EL;
    memcpy(s->pcts, p, sizeof(p));
    s->n_pcts = 4;
    db_dist_t *d[] = { &s->ttft_ms, &s->tpot_ms, &s->itl_ms, &s->e2el_ms };
    for (int i = 0; i < 4; i++) {
        d[i]->n = 100;
        d[i]->mean = 10.5 * (i + 1);
        d[i]->median = 10.25 * (i + 1);
        d[i]->std = 1.125 * (i + 1);
        d[i]->n_pct = 4;
        for (int k = 0; k < 4; k++)
            d[i]->pct[k] = 11 * (i + 1) + k + 0.005;
    }
    s->n_errors = 2;
    s->errors = calloc(2, sizeof(*s->errors));
    s->errors[0].message = strdup("HTTP 500: boom");
    s->errors[0].count = 2;
    s->errors[1].message = strdup("timeout\nafter 600 s");
    s->errors[1].count = 1;
}

static char *capture_print(const db_summary_t *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    db_report_print(s, f);
    fclose(f);
    return buf;
}

/* The next line of *p (without '\n'), in a static buffer. */
static const char *next_line(char **p)
{
    static char line[4096];
    char *nl = strchr(*p, '\n');
    assert_non_null(nl);
    size_t n = (size_t) (nl - *p);
    assert_true(n < sizeof(line));
    memcpy(line, *p, n);
    line[n] = '\0';
    *p = nl + 1;
    return line;
}

/* label padded to 40, a space, the value padded to 10 */
static void expect_row(char **p, const char *label, const char *value)
{
    char want[128];
    snprintf(want, sizeof(want), "%-40s %-10s", label, value);
    const char *got = next_line(p);
    assert_int_equal(strlen(got), 51 > strlen(want) ? 51 : strlen(want));
    assert_string_equal(got, want);
}

static void test_block(void **st)
{
    db_summary_t s;
    summary(&s);
    char *out = capture_print(&s), *p = out;

    /* 12 + 26 + 12 */
    assert_string_equal(next_line(&p),
        "============ Serving Benchmark Result ============");
    expect_row(&p, "Successful requests:", "100");
    expect_row(&p, "Failed requests:", "3");
    expect_row(&p, "Maximum request concurrency:", "8");
    /* rate inf: no "Request rate configured" line */
    expect_row(&p, "Benchmark duration (s):", "12.35");
    expect_row(&p, "Total input tokens:", "102400");
    expect_row(&p, "Total generated tokens:", "12800");
    expect_row(&p, "Request throughput (req/s):", "8.10");
    /* no goodput line without --goodput */
    expect_row(&p, "Output token throughput (tok/s):", "1036.80");
    expect_row(&p, "Total Token throughput (tok/s):", "9331.20");
    /* 19 characters: 15 left, 16 right (Python puts the odd one right) */
    assert_string_equal(next_line(&p),
        "---------------Time to First Token----------------");
    expect_row(&p, "Mean TTFT (ms):", "10.50");
    expect_row(&p, "Median TTFT (ms):", "10.25");
    expect_row(&p, "P50 TTFT (ms):", "11.01");     /* 11.005 is below */
    expect_row(&p, "P90 TTFT (ms):", "12.01");
    expect_row(&p, "P99 TTFT (ms):", "13.01");
    expect_row(&p, "P99.9 TTFT (ms):", "14.01");
    assert_string_equal(next_line(&p),
        "-----Time per Output Token (excl. 1st token)------");
    expect_row(&p, "Mean TPOT (ms):", "21.00");
    expect_row(&p, "Median TPOT (ms):", "20.50");
    expect_row(&p, "P50 TPOT (ms):", "22.00");     /* 22.005 is below */
    expect_row(&p, "P90 TPOT (ms):", "23.00");
    expect_row(&p, "P99 TPOT (ms):", "24.00");
    expect_row(&p, "P99.9 TPOT (ms):", "25.00");
    assert_string_equal(next_line(&p),
        "---------------Inter-token Latency----------------");
    expect_row(&p, "Mean ITL (ms):", "31.50");
    expect_row(&p, "Median ITL (ms):", "30.75");
    for (int k = 0; k < 4; k++)
        next_line(&p);
    /* E2EL is not in pct_metrics: no section */
    expect_row(&p, "Cached prompt tokens:", "51200");
    expect_row(&p, "Peak concurrent requests:", "8");
    assert_string_equal(next_line(&p),
        "==================================================");
    assert_string_equal(next_line(&p), "Errors:");
    assert_string_equal(next_line(&p), "  2 x HTTP 500: boom");
    assert_string_equal(next_line(&p), "  1 x timeout after 600 s");
    assert_string_equal(p, "");
    free(out);
    db_summary_free(&s);
}

static void test_block_options(void **st)
{
    db_summary_t s;
    summary(&s);
    s.request_rate = 4;
    s.request_goodput = 7.25;
    s.max_concurrency = 0;
    s.total_cached = -1;
    s.failed = 0;
    s.pct_metrics = DB_M_E2EL;
    s.pcts[0] = 99.99;
    s.n_pcts = 1;
    char *out = capture_print(&s), *p = out;
    next_line(&p);
    expect_row(&p, "Successful requests:", "100");
    expect_row(&p, "Failed requests:", "0");
    expect_row(&p, "Request rate configured (RPS):", "4.00");
    expect_row(&p, "Benchmark duration (s):", "12.35");
    next_line(&p);
    next_line(&p);
    expect_row(&p, "Request throughput (req/s):", "8.10");
    expect_row(&p, "Request goodput (req/s):", "7.25");
    next_line(&p);
    next_line(&p);
    /* 18 characters: 16 and 16 */
    assert_string_equal(next_line(&p),
        "----------------End-to-end Latency----------------");
    expect_row(&p, "Mean E2EL (ms):", "42.00");
    expect_row(&p, "Median E2EL (ms):", "41.00");
    expect_row(&p, "P99.99 E2EL (ms):", "44.01");
    expect_row(&p, "Peak concurrent requests:", "8");
    next_line(&p);
    assert_string_equal(p, "");        /* no errors without failures */
    free(out);
    db_summary_free(&s);
}

static char *capture_json(const db_summary_t *s, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    assert_int_equal(db_report_json(s, f), 0);
    fclose(f);
    return buf;
}

static void assert_dist_equal(const db_dist_t *a, const db_dist_t *b,
    size_t n_pcts)
{
    assert_true(a->mean == b->mean);
    assert_true(a->median == b->median);
    assert_true(a->std == b->std);
    for (size_t k = 0; k < n_pcts; k++)
        assert_true(a->pct[k] == b->pct[k]);
}

static void test_json_roundtrip(void **st)
{
    db_summary_t s, t;
    char err[256];
    size_t len;
    summary(&s);
    s.request_goodput = 3.3;
    s.ttft_ms.mean = 0.1 + 0.2;         /* needs all 17 digits */
    char *js = capture_json(&s, &len);

    /* vLLM's keys and forms */
    json_t *o = json_loads(js, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o,
        "request_rate")), "inf");
    assert_int_equal(json_integer_value(json_object_get(o,
        "max_concurrency")), 8);
    assert_int_equal(json_integer_value(json_object_get(o, "completed")),
        100);
    assert_non_null(json_object_get(o, "p99.9_ttft_ms"));
    assert_non_null(json_object_get(o, "p50_itl_ms"));
    assert_non_null(json_object_get(o, "std_e2el_ms"));
    assert_string_equal(json_string_value(json_object_get(o,
        "model_id")), "stories260K");
    json_decref(o);

    assert_int_equal(db_summary_load(js, len, &t, err, sizeof(err)), 0);
    assert_string_equal(t.label, s.label);
    assert_string_equal(t.model, s.model);
    assert_string_equal(t.base_url, s.base_url);
    assert_string_equal(t.endpoint, s.endpoint);
    assert_string_equal(t.dataset, s.dataset);
    assert_string_equal(t.date, s.date);
    assert_string_equal(t.backend, "openai");
    assert_null(t.tokenizer);
    assert_int_equal(t.num_prompts, 200);
    assert_true(t.request_rate == 0);
    assert_true(t.burstiness == 1);
    assert_int_equal(t.max_concurrency, 8);
    assert_true(t.duration_s == s.duration_s);
    assert_int_equal(t.completed, 100);
    assert_int_equal(t.failed, 3);
    assert_int_equal(t.total_input, 102400);
    assert_int_equal(t.total_output, 12800);
    assert_int_equal(t.total_cached, 51200);
    assert_true(t.request_throughput == s.request_throughput);
    assert_true(t.request_goodput == 3.3);
    assert_true(t.output_throughput == s.output_throughput);
    assert_true(t.total_token_throughput == s.total_token_throughput);
    assert_int_equal(t.peak_concurrency, 8);
    assert_int_equal(t.pct_metrics, s.pct_metrics);
    assert_int_equal(t.known_metrics, s.known_metrics);
    assert_int_equal(t.n_pcts, 4);
    for (int k = 0; k < 4; k++)
        assert_true(t.pcts[k] == s.pcts[k]);
    assert_dist_equal(&t.ttft_ms, &s.ttft_ms, 4);
    assert_dist_equal(&t.tpot_ms, &s.tpot_ms, 4);
    assert_dist_equal(&t.itl_ms, &s.itl_ms, 4);
    assert_dist_equal(&t.e2el_ms, &s.e2el_ms, 4);
    assert_int_equal(t.n_errors, 2);
    assert_string_equal(t.errors[1].message, "timeout\nafter 600 s");
    assert_int_equal(t.errors[1].count, 1);

    /* and the same block printed from either */
    char *a = capture_print(&s), *b = capture_print(&t);
    assert_string_equal(a, b);
    free(a);
    free(b);
    free(js);
    db_summary_free(&t);

    /* without goodput, cache figures or a concurrency limit: nulls */
    s.request_goodput = -1;
    s.total_cached = -1;
    s.max_concurrency = 0;
    s.request_rate = 2.5;
    js = capture_json(&s, &len);
    assert_int_equal(db_summary_load(js, len, &t, err, sizeof(err)), 0);
    assert_true(t.request_goodput < 0);
    assert_true(t.total_cached == -1);
    assert_int_equal(t.max_concurrency, 0);
    assert_true(t.request_rate == 2.5);
    free(js);
    db_summary_free(&t);
    db_summary_free(&s);
}

/* A summary JSON with one key replaced (value NULL: removed). */
static int load_edited(const char *key, json_t *value, char *err,
    size_t errlen)
{
    db_summary_t s, t;
    size_t len;
    summary(&s);
    char *js = capture_json(&s, &len);
    json_t *o = json_loads(js, 0, NULL);
    free(js);
    if (value)
        json_object_set_new(o, key, value);
    else
        json_object_del(o, key);
    js = json_dumps(o, 0);
    json_decref(o);
    int rc = db_summary_load(js, strlen(js), &t, err, errlen);
    free(js);
    if (rc == 0)
        db_summary_free(&t);
    db_summary_free(&s);
    return rc;
}

static void test_bad_files(void **st)
{
    char err[256];
    db_summary_t t;

    assert_int_equal(load_edited("completed", NULL, err, sizeof(err)), -1);
    assert_string_equal(err, "key \"completed\": missing");
    assert_int_equal(load_edited("completed", json_string("100"), err,
        sizeof(err)), -1);
    assert_string_equal(err,
        "key \"completed\": expected a non-negative integer");
    assert_int_equal(load_edited("completed", json_integer(-1), err,
        sizeof(err)), -1);
    assert_non_null(strstr(err, "\"completed\""));
    assert_int_equal(load_edited("duration", json_true(), err,
        sizeof(err)), -1);
    assert_string_equal(err, "key \"duration\": expected a number");
    assert_int_equal(load_edited("p99.9_tpot_ms", NULL, err,
        sizeof(err)), -1);
    assert_string_equal(err, "key \"p99.9_tpot_ms\": missing");
    assert_int_equal(load_edited("median_itl_ms", json_string("x"), err,
        sizeof(err)), -1);
    assert_non_null(strstr(err, "\"median_itl_ms\""));
    assert_int_equal(load_edited("request_rate", json_string("fast"), err,
        sizeof(err)), -1);
    assert_non_null(strstr(err, "\"request_rate\""));
    assert_int_equal(load_edited("label", json_integer(3), err,
        sizeof(err)), -1);
    assert_non_null(strstr(err, "\"label\""));
    assert_int_equal(load_edited("percentiles", json_string("99"), err,
        sizeof(err)), -1);
    assert_non_null(strstr(err, "\"percentiles\""));
    assert_int_equal(load_edited("errors", json_pack("[{s:i}]", "count",
        1), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "\"errors\""));
    assert_int_equal(load_edited("percentile_metrics", json_string("ttft,x"),
        err, sizeof(err)), -1);
    assert_non_null(strstr(err, "\"percentile_metrics\""));
    /* a metric left out entirely is fine: that metric is unknown */
    for (const char *k = "mean_e2el_ms"; k; k = NULL)
        assert_int_equal(load_edited(k, NULL, err, sizeof(err)), -1 + 1);

    const char *bad = "{\"completed\": 1,\n  \"duration\": }";
    assert_int_equal(db_summary_load(bad, strlen(bad), &t, err,
        sizeof(err)), -1);
    assert_non_null(strstr(err, "line 2"));
    assert_int_equal(db_summary_load("[1]", 3, &t, err, sizeof(err)), -1);
    assert_string_equal(err, "not a JSON object");
    assert_int_equal(db_summary_load("", 0, &t, err, sizeof(err)), -1);
}

/* A result file as vLLM's benchmark_serving --save-result writes it. */
static const char VLLM[] =
    "{\"date\": \"20250301-101010\", \"backend\": \"vllm\", "
    "\"model_id\": \"meta-llama/Llama-3.1-8B\", \"tokenizer_id\": "
    "\"meta-llama/Llama-3.1-8B\", \"num_prompts\": 200, "
    "\"request_rate\": \"inf\", \"burstiness\": 1.0, "
    "\"max_concurrency\": 16, \"duration\": 20.5, \"completed\": 200, "
    "\"total_input_tokens\": 204800, \"total_output_tokens\": 25600, "
    "\"request_throughput\": 9.75, \"request_goodput:\": null, "
    "\"output_throughput\": 1248.7, \"total_token_throughput\": 11239.0, "
    "\"mean_ttft_ms\": 120.5, \"median_ttft_ms\": 110.0, "
    "\"std_ttft_ms\": 30.0, \"p99_ttft_ms\": 250.0, "
    "\"mean_tpot_ms\": 12.5, \"median_tpot_ms\": 12.0, "
    "\"std_tpot_ms\": 1.0, \"p99_tpot_ms\": 16.0, "
    "\"mean_itl_ms\": 12.4, \"median_itl_ms\": 11.0, "
    "\"std_itl_ms\": 4.0, \"p99_itl_ms\": 40.0, "
    "\"max_concurrent_requests\": 16, "
    "\"errors\": [null, \"\"]}";

static void test_vllm_file(void **st)
{
    db_summary_t t;
    char err[256];
    assert_int_equal(db_summary_load(VLLM, strlen(VLLM), &t, err,
        sizeof(err)), 0);
    assert_int_equal(t.completed, 200);
    assert_int_equal(t.failed, 0);
    assert_int_equal(t.max_concurrency, 16);
    assert_true(t.request_goodput < 0);
    assert_int_equal(t.known_metrics, DB_M_TTFT | DB_M_TPOT | DB_M_ITL);
    assert_int_equal(t.n_pcts, 1);
    assert_true(t.pcts[0] == 99);
    assert_true(t.ttft_ms.pct[0] == 250.0);
    assert_true(t.itl_ms.median == 11.0);
    assert_null(t.label);
    assert_string_equal(t.backend, "vllm");
    assert_string_equal(t.tokenizer, "meta-llama/Llama-3.1-8B");
    assert_int_equal(t.num_prompts, 200);
    assert_int_equal(t.peak_concurrency, 16);
    assert_int_equal(t.n_errors, 0);
    db_summary_free(&t);
}

static void test_csv(void **st)
{
    db_summary_t s;
    char *buf = NULL;
    size_t len = 0;
    summary(&s);
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(db_report_csv(&s, f, 1), 0);
    assert_int_equal(db_report_csv(&s, f, 0), 0);
    fclose(f);

    char *p = buf;
    char header[4096], row[4096];
    snprintf(header, sizeof(header), "%s", next_line(&p));
    snprintf(row, sizeof(row), "%s", next_line(&p));
    assert_string_equal(next_line(&p), row);    /* no second header */
    assert_string_equal(p, "");
    assert_true(strncmp(header, "date,label,model_id,base_url,endpoint,"
        "dataset_name,backend,tokenizer_id,num_prompts,request_rate,"
        "burstiness,max_concurrency,duration,completed,failed,", 138) == 0);
    assert_non_null(strstr(header, ",p99.9_ttft_ms,"));
    /* the label has a comma: quoted; rate inf; counts as integers */
    assert_true(strncmp(row, "20250101-120000,\"kv, routed\",stories260K,"
        "http://127.0.0.1:8080,/v1/completions,random,openai,,200,inf,1,8,"
        "12.3456,100,3,102400,12800,", 121) == 0);
    /* as many cells as columns (commas inside quotes are not
     * separators: the label's, and percentile_metrics "ttft,tpot,itl") */
    size_t ch = 0, cr = 0;
    int q = 0;
    for (char *c = header; *c; c++)
        ch += *c == ',';
    for (char *c = row; *c; c++) {
        q ^= *c == '"';
        cr += *c == ',' && !q;
    }
    assert_int_equal(cr, ch);
    assert_non_null(strstr(row, ",\"ttft,tpot,itl\""));
    free(buf);
    db_summary_free(&s);
}

static void test_jsonl(void **st)
{
    static double itl[2] = { 0.01, 0.02 };
    db_result_t r[2];
    memset(r, 0, sizeof(r));
    r[0] = (db_result_t) { .index = 0, .session = 3, .turn = 1, .ok = 1,
        .status = 200, .start_s = 0.5, .ttft_s = 0.1, .latency_s = 0.13,
        .itl_s = itl, .n_itl = 2, .prompt_tokens = 12,
        .output_tokens = 4, .cached_tokens = 8 };
    r[1] = (db_result_t) { .index = 1, .session = -1, .ok = 0,
        .status = 500, .error = "boom", .start_s = 1, .ttft_s = -1,
        .latency_s = 0.002, .prompt_tokens = 12, .output_tokens = -1,
        .cached_tokens = -1 };
    db_run_out_t run = { r, 2, 1.0, 1, 0 };
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(db_report_jsonl(&run, f), 0);
    fclose(f);

    char *nl = strchr(buf, '\n');
    assert_non_null(nl);
    json_t *a = json_loadb(buf, (size_t) (nl - buf), 0, NULL);
    json_t *b = json_loads(nl + 1, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(json_integer_value(json_object_get(a, "session")), 3);
    assert_true(json_is_true(json_object_get(a, "ok")));
    assert_true(fabs(json_real_value(json_object_get(a, "ttft_ms")) -
        100) < 1e-9);
    assert_true(fabs(json_real_value(json_object_get(a, "start_ms")) -
        500) < 1e-9);
    /* (130 - 100) / (4 - 1) = 10 ms */
    assert_true(fabs(json_real_value(json_object_get(a, "tpot_ms")) -
        10) < 1e-9);
    json_t *ia = json_object_get(a, "itl_ms");
    assert_int_equal(json_array_size(ia), 2);
    assert_true(fabs(json_real_value(json_array_get(ia, 1)) - 20) < 1e-9);
    assert_int_equal(json_integer_value(json_object_get(a,
        "cached_tokens")), 8);
    assert_true(json_is_null(json_object_get(a, "error")));

    assert_true(json_is_false(json_object_get(b, "ok")));
    assert_string_equal(json_string_value(json_object_get(b, "error")),
        "boom");
    assert_true(json_is_null(json_object_get(b, "session")));
    assert_true(json_is_null(json_object_get(b, "ttft_ms")));
    assert_true(json_is_null(json_object_get(b, "tpot_ms")));
    assert_true(json_is_null(json_object_get(b, "output_tokens")));
    assert_true(json_is_null(json_object_get(b, "cached_tokens")));
    assert_int_equal(json_integer_value(json_object_get(b, "status")), 500);
    json_decref(a);
    json_decref(b);
    free(buf);
}

static void test_compare(void **st)
{
    db_summary_t s[2];
    char *buf = NULL;
    size_t len = 0;
    summary(&s[0]);
    summary(&s[1]);
    free(s[1].label);
    s[1].label = strdup("rr");
    s[1].request_throughput = 16.2;        /* 2.00x */
    s[1].ttft_ms.mean = 5.25;              /* 0.50x */
    s[1].known_metrics &= ~DB_M_E2EL;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(db_compare_print(s, 2, f), 0);
    assert_int_equal(db_compare_print(s, 1, f), -1);
    fclose(f);

    assert_non_null(strstr(buf, "A = kv, routed\nB = rr\n"));
    char *l = strstr(buf, "Request throughput (req/s)");
    assert_non_null(l);
    char *e = strchr(l, '\n');
    *e = '\0';
    assert_non_null(strstr(l, " 8.10 "));
    assert_non_null(strstr(l, " 16.20 "));
    assert_non_null(strstr(l, "2.00x"));
    *e = '\n';
    l = strstr(buf, "Mean TTFT (ms)");
    assert_non_null(l);
    assert_true(strncmp(l + strcspn(l, "\n") - 5, "0.50x", 5) == 0);
    /* B has no E2EL: "-" and no ratio */
    l = strstr(buf, "Mean E2EL (ms)");
    assert_non_null(l);
    e = strchr(l, '\n');
    *e = '\0';
    assert_non_null(strstr(l, "42.00"));
    assert_true(strcmp(e - 1, "-") == 0);
    *e = '\n';
    /* P99 row, no goodput row (neither has it) */
    assert_non_null(strstr(buf, "P99 TPOT (ms)"));
    assert_null(strstr(buf, "goodput"));
    free(buf);
    db_summary_free(&s[0]);
    db_summary_free(&s[1]);
}

/* Titles longer than a column should be: the legend keeps them, the
 * columns are headed A, B, ... instead (so a row stays readable). */
static void test_compare_long_titles(void **st)
{
    db_summary_t s[2];
    char *buf = NULL;
    size_t len = 0;
    summary(&s[0]);
    summary(&s[1]);
    free(s[1].label);
    s[1].label = strdup("dynamo-bench-random-m-c1-16-infqps-20261122.json c4");
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(db_compare_print(s, 2, f), 0);
    fclose(f);
    assert_non_null(strstr(buf,
        "B = dynamo-bench-random-m-c1-16-infqps-20261122.json c4\n"));
    /* the header row: 34 blank columns, then A and B right-aligned in 12,
     * then the ratio column in 8 */
    char want[128];
    snprintf(want, sizeof(want), "\n%34s %12s %12s %8s\n", "", "A", "B",
        "B/A");
    assert_non_null(strstr(buf, want));
    char *l = strstr(buf, "Request throughput (req/s)");
    assert_non_null(l);
    assert_true(strcspn(l, "\n") == 34 + 13 + 13 + 9);
    free(buf);
    db_summary_free(&s[0]);
    db_summary_free(&s[1]);
}

static int run_compare(int argc, const char **argv)
{
    /* the command prints to stdout: keep the test log readable */
    fflush(stdout);
    FILE *saved = stdout;
    FILE *null = fopen("/dev/null", "w");
    stdout = null;
    int rc = db_cmd_compare(argc, (char **) argv);
    stdout = saved;
    fclose(null);
    return rc;
}

static void test_compare_cmd(void **st)
{
    char dir[] = "/tmp/db-test-report-XXXXXX";
    char a[128], b[128], bad[128];
    db_summary_t s;
    assert_non_null(mkdtemp(dir));
    snprintf(a, sizeof(a), "%s/a.json", dir);
    snprintf(b, sizeof(b), "%s/b.json", dir);
    snprintf(bad, sizeof(bad), "%s/bad.json", dir);
    summary(&s);
    FILE *f = fopen(a, "w");
    assert_int_equal(db_report_json(&s, f), 0);
    fclose(f);
    f = fopen(b, "w");
    fputs(VLLM, f);
    fclose(f);
    f = fopen(bad, "w");
    fputs("{\"completed\": 3}", f);
    fclose(f);
    db_summary_free(&s);

    const char *ok[] = { "compare", a, b, "--metrics", "ttft,itl" };
    assert_int_equal(run_compare(5, ok), 0);
    const char *one[] = { "compare", a };
    assert_int_equal(run_compare(2, one), 2);
    const char *badf[] = { "compare", a, bad };
    assert_int_equal(run_compare(3, badf), 2);
    const char *missing[] = { "compare", a, "/nonexistent/x.json" };
    assert_int_equal(run_compare(3, missing), 2);
    const char *badm[] = { "compare", a, b, "--metrics", "ttft,foo" };
    assert_int_equal(run_compare(5, badm), 2);
    const char *help[] = { "compare", "--help" };
    assert_int_equal(run_compare(2, help), 0);

    /* a sweep's file alone: one column per step */
    db_summary_t two[2];
    summary(&two[0]);
    summary(&two[1]);
    two[1].max_concurrency = 32;
    f = fopen(a, "w");
    assert_int_equal(db_sweep_json(two, 2, f), 0);
    fclose(f);
    db_summary_free(&two[0]);
    db_summary_free(&two[1]);
    const char *sw[] = { "compare", a };
    assert_int_equal(run_compare(2, sw), 0);
    f = fopen(a, "w");
    fputs("{\"steps\": []}", f);
    fclose(f);
    assert_int_equal(run_compare(2, sw), 2);
    f = fopen(a, "w");
    fputs("{\"steps\": [{\"completed\": 1}, 2]}", f);
    fclose(f);
    assert_int_equal(run_compare(2, sw), 2);
    unlink(a);
    unlink(b);
    unlink(bad);
    rmdir(dir);
}

static void test_sweep(void **st)
{
    db_summary_t s[2];
    char *buf = NULL;
    size_t len = 0;
    summary(&s[0]);
    summary(&s[1]);
    s[0].max_concurrency = 1;
    s[1].max_concurrency = 4;
    FILE *f = open_memstream(&buf, &len);
    db_sweep_print(s, 2, f);
    fclose(f);
    char *p = buf;
    const char *h = next_line(&p);
    assert_non_null(strstr(h, "concurrency"));
    assert_non_null(strstr(h, "P99 TTFT"));
    next_line(&p);
    /* concurrency 1, 100 completed, 3 failed, 8.10 req/s, 1036.80 tok/s,
     * mean TTFT 10.50, P99 TTFT 13.01 (13.005 rounds down in binary) */
    char want[256];
    snprintf(want, sizeof(want), "%11s %9s %6s %9s %12s %10s %10s", "1",
        "100", "3", "8.10", "1036.80", "10.50", "13.01");
    assert_true(strncmp(next_line(&p), want, strlen(want)) == 0);
    assert_true(strncmp(next_line(&p), "          4", 11) == 0);
    free(buf);

    buf = NULL;
    f = open_memstream(&buf, &len);
    assert_int_equal(db_sweep_json(s, 2, f), 0);
    fclose(f);
    json_t *o = json_loads(buf, 0, NULL);
    assert_non_null(o);
    json_t *steps = json_object_get(o, "steps");
    assert_int_equal(json_array_size(steps), 2);
    assert_int_equal(json_integer_value(json_object_get(
        json_array_get(steps, 1), "max_concurrency")), 4);
    /* each step reads back as a summary */
    char *one = json_dumps(json_array_get(steps, 0), 0);
    db_summary_t t;
    char err[256];
    assert_int_equal(db_summary_load(one, strlen(one), &t, err,
        sizeof(err)), 0);
    assert_int_equal(t.max_concurrency, 1);
    db_summary_free(&t);
    free(one);
    json_decref(o);
    free(buf);
    db_summary_free(&s[0]);
    db_summary_free(&s[1]);
}

static int is_png(const char *path)
{
    unsigned char sig[8];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = fread(sig, 1, 8, f);
    fclose(f);
    return n == 8 && memcmp(sig, "\x89PNG\r\n\x1a\n", 8) == 0;
}

static void test_plots(void **st)
{
    static double itl[1] = { 0.01 };
    char dir[] = "/tmp/db-test-plot-XXXXXX", prefix[128], path[160];
    char err[256] = "";
    db_result_t r[40];
    db_summary_t s[3];

    assert_non_null(mkdtemp(dir));
    snprintf(prefix, sizeof(prefix), "%s/run's", dir);   /* a quote */
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 40; i++) {
        r[i].ok = i % 10 != 9;
        r[i].ttft_s = 0.05 + 0.002 * i;
        r[i].latency_s = r[i].ttft_s + 0.3;
        r[i].output_tokens = i % 7 ? 31 : 1;
        r[i].itl_s = itl;
        r[i].n_itl = 1;
    }
    db_run_out_t run = { r, 40, 2.0, 8, 8 };
    for (int i = 0; i < 3; i++) {
        summary(&s[i]);
        s[i].max_concurrency = 1u << (2 * i);
        s[i].output_throughput = 100.0 * (i + 1) * (3 - i * 0.5);
        s[i].ttft_ms.mean = 20.0 * (1 << i);
    }

    /* no gnuplot on PATH: 1 and a note */
    char *path_env = strdup(getenv("PATH") ? getenv("PATH") : "");
    setenv("PATH", dir, 1);
    assert_int_equal(db_plot_cdf(&run, prefix, err, sizeof(err)), 1);
    assert_non_null(strstr(err, "gnuplot"));
    assert_int_equal(db_plot_sweep(s, 3, prefix, err, sizeof(err)), 1);
    setenv("PATH", path_env, 1);
    free(path_env);

    if (system("command -v gnuplot > /dev/null 2>&1") == 0) {
        assert_int_equal(db_plot_cdf(&run, prefix, err, sizeof(err)), 0);
        snprintf(path, sizeof(path), "%s-cdf.png", prefix);
        assert_true(is_png(path));
        unlink(path);
        assert_int_equal(db_plot_sweep(s, 3, prefix, err, sizeof(err)), 0);
        snprintf(path, sizeof(path), "%s-sweep.png", prefix);
        assert_true(is_png(path));
        unlink(path);
        /* no TPOT samples at all still draws */
        for (int i = 0; i < 40; i++)
            r[i].output_tokens = 1;
        assert_int_equal(db_plot_cdf(&run, prefix, err, sizeof(err)), 0);
        snprintf(path, sizeof(path), "%s-cdf.png", prefix);
        assert_true(is_png(path));
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s-cdf.gp", prefix);
    unlink(path);
    snprintf(path, sizeof(path), "%s-sweep.gp", prefix);
    unlink(path);
    rmdir(dir);
    for (int i = 0; i < 3; i++)
        db_summary_free(&s[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block),
        cmocka_unit_test(test_block_options),
        cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_vllm_file),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_jsonl),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_compare_long_titles),
        cmocka_unit_test(test_compare_cmd),
        cmocka_unit_test(test_sweep),
        cmocka_unit_test(test_plots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
