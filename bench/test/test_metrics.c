/*
 * Tests for db_metrics_compute (vLLM's calculate_metrics) on hand-made
 * request records. Every expected figure is worked out by hand in the
 * comments from vLLM's definitions: TPOT = (e2el - ttft) / (out - 1) for
 * out > 1 only; ITL pooled over requests; throughput over the duration;
 * goodput counts requests meeting every SLO (TPOT taken as 0 for 1-token
 * outputs); warm-ups and failures left out; numpy's statistics.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include "db_metrics.h"

#define EPS 1e-9

#define assert_near(got, want, eps) do {                                \
        double g_ = (got), w_ = (want);                                 \
        if (!(fabs(g_ - w_) <= (eps)))                                  \
            fail_msg("%s = %.17g, want %.17g", #got, g_, w_);           \
    } while (0)

static double itl1[9] = { .1, .1, .1, .1, .1, .1, .1, .1, .1 };
static double itl4[4] = { .5, .5, .5, .5 };
static double itl_w[3] = { 5, 5, 5 };

static db_result_t R[7];

static void opts(db_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->goodput_ttft_ms = o->goodput_tpot_ms = o->goodput_e2el_ms = -1;
    o->pct_metrics = DB_M_TTFT | DB_M_TPOT | DB_M_ITL;
    o->pcts[0] = 50;
    o->pcts[1] = 90;
    o->pcts[2] = 99;
    o->n_pcts = 3;
    o->burstiness = 1;
}

/* A warm-up, three completed requests and three failures, 2 s run. */
static void records(db_run_out_t *run)
{
    memset(R, 0, sizeof(R));
    for (int i = 0; i < 7; i++) {
        R[i].index = i;
        R[i].session = -1;
        R[i].cached_tokens = -1;
        R[i].ttft_s = -1;
    }
    /* warm-up: huge figures that would show if counted */
    R[0] = (db_result_t) { .index = 0, .session = -1, .warmup = 1, .ok = 1,
        .status = 200, .ttft_s = 9, .latency_s = 20, .itl_s = itl_w,
        .n_itl = 3, .prompt_tokens = 1000, .output_tokens = 4,
        .cached_tokens = 999 };
    /* ttft 100 ms, e2el 1000 ms, 10 tokens: TPOT 900 / 9 = 100 ms */
    R[1] = (db_result_t) { .index = 1, .session = -1, .ok = 1, .status = 200,
        .ttft_s = .1, .latency_s = 1.0, .itl_s = itl1, .n_itl = 9,
        .prompt_tokens = 100, .output_tokens = 10, .cached_tokens = 64 };
    /* 1 token: no TPOT sample, TPOT 0 for goodput */
    R[2] = (db_result_t) { .index = 2, .session = -1, .ok = 1, .status = 200,
        .ttft_s = .2, .latency_s = .2, .prompt_tokens = 50,
        .output_tokens = 1, .cached_tokens = -1 };
    R[3] = (db_result_t) { .index = 3, .session = -1, .ok = 0, .status = 500,
        .error = "HTTP 500: boom", .ttft_s = -1, .latency_s = .05,
        .prompt_tokens = 70, .output_tokens = -1, .cached_tokens = -1 };
    /* ttft 300, e2el 2300, 5 tokens: TPOT 2000 / 4 = 500 ms */
    R[4] = (db_result_t) { .index = 4, .session = -1, .ok = 1, .status = 200,
        .ttft_s = .3, .latency_s = 2.3, .itl_s = itl4, .n_itl = 4,
        .prompt_tokens = 30, .output_tokens = 5, .cached_tokens = 0 };
    R[5] = (db_result_t) { .index = 5, .session = -1, .ok = 0, .status = 0,
        .error = "timeout", .ttft_s = .1, .latency_s = 600,
        .itl_s = itl_w, .n_itl = 3, .prompt_tokens = 80,
        .output_tokens = 3, .cached_tokens = 5 };
    R[6] = (db_result_t) { .index = 6, .session = -1, .ok = 0, .status = 500,
        .error = "HTTP 500: boom", .ttft_s = -1, .latency_s = .01,
        .prompt_tokens = 90, .output_tokens = -1, .cached_tokens = -1 };
    memset(run, 0, sizeof(*run));
    run->results = R;
    run->n = 7;
    run->duration_s = 2.0;
    run->peak_concurrency = 3;
}

static void test_figures(void **st)
{
    db_opts_t o;
    db_run_out_t run;
    db_summary_t s;
    opts(&o);
    records(&run);
    assert_int_equal(db_metrics_compute(&o, &run, &s), 0);

    assert_int_equal(s.completed, 3);
    assert_int_equal(s.failed, 3);
    assert_int_equal(s.total_input, 100 + 50 + 30);
    assert_int_equal(s.total_output, 10 + 1 + 5);
    assert_int_equal(s.total_cached, 64);     /* 64 + 0; unknown skipped */
    assert_near(s.duration_s, 2.0, 0);
    assert_near(s.request_throughput, 1.5, EPS);        /* 3 / 2 */
    assert_near(s.output_throughput, 8.0, EPS);         /* 16 / 2 */
    assert_near(s.total_token_throughput, 98.0, EPS);   /* 196 / 2 */
    assert_near(s.request_goodput, -1, 0);
    assert_int_equal(s.peak_concurrency, 3);

    /* TTFT [100, 200, 300]: std sqrt(20000 / 3); p90: index 1.8 -> 280;
     * p99: index 1.98 -> 298 */
    assert_int_equal(s.ttft_ms.n, 3);
    assert_near(s.ttft_ms.mean, 200, EPS);
    assert_near(s.ttft_ms.median, 200, EPS);
    assert_near(s.ttft_ms.std, sqrt(20000. / 3), EPS);
    assert_near(s.ttft_ms.pct[0], 200, EPS);
    assert_near(s.ttft_ms.pct[1], 280, EPS);
    assert_near(s.ttft_ms.pct[2], 298, EPS);

    /* TPOT [100, 500]; the 1-token request has none: mean 300, std 200,
     * p99: 100 + 0.99 * 400 = 496 */
    assert_int_equal(s.tpot_ms.n, 2);
    assert_near(s.tpot_ms.mean, 300, EPS);
    assert_near(s.tpot_ms.median, 300, EPS);
    assert_near(s.tpot_ms.std, 200, EPS);
    assert_near(s.tpot_ms.pct[2], 496, EPS);

    /* ITL pooled: nine 100 ms and four 500 ms gaps: mean 2900 / 13;
     * median the 7th of 13 = 100; p90 index 10.8 -> 500 */
    assert_int_equal(s.itl_ms.n, 13);
    assert_near(s.itl_ms.mean, 2900. / 13, EPS);
    assert_near(s.itl_ms.median, 100, EPS);
    assert_near(s.itl_ms.pct[1], 500, EPS);
    assert_near(s.itl_ms.max, 500, EPS);

    /* E2EL [1000, 200, 2300]: mean 3500 / 3, median 1000 */
    assert_int_equal(s.e2el_ms.n, 3);
    assert_near(s.e2el_ms.mean, 3500. / 3, EPS);
    assert_near(s.e2el_ms.median, 1000, EPS);

    /* errors grouped, most frequent first */
    assert_int_equal(s.n_errors, 2);
    assert_string_equal(s.errors[0].message, "HTTP 500: boom");
    assert_int_equal(s.errors[0].count, 2);
    assert_string_equal(s.errors[1].message, "timeout");
    assert_int_equal(s.errors[1].count, 1);
    db_summary_free(&s);
}

static double goodput(double ttft, double tpot, double e2el)
{
    db_opts_t o;
    db_run_out_t run;
    db_summary_t s;
    opts(&o);
    records(&run);
    o.goodput_ttft_ms = ttft;
    o.goodput_tpot_ms = tpot;
    o.goodput_e2el_ms = e2el;
    assert_int_equal(db_metrics_compute(&o, &run, &s), 0);
    double g = s.request_goodput;
    db_summary_free(&s);
    return g;
}

static void test_goodput(void **st)
{
    /* requests (ttft, tpot, e2el): (100, 100, 1000), (200, 0, 200),
     * (300, 500, 2300); duration 2 s */
    assert_near(goodput(250, -1, -1), 2 / 2., EPS);   /* first two */
    assert_near(goodput(300, -1, -1), 3 / 2., EPS);   /* <= holds */
    assert_near(goodput(99, -1, -1), 0, EPS);
    assert_near(goodput(-1, 150, -1), 2 / 2., EPS);   /* 1-token: 0 */
    assert_near(goodput(-1, 0, -1), 1 / 2., EPS);     /* only the 1-token */
    assert_near(goodput(-1, -1, 500), 1 / 2., EPS);
    assert_near(goodput(-1, -1, 2300), 3 / 2., EPS);
    /* every SLO must hold: ttft 150 keeps the first, tpot 150 the first
     * two, e2el 1000 the first two -> only the first */
    assert_near(goodput(150, 150, 1000), 1 / 2., EPS);
}

static void test_copies_options(void **st)
{
    db_opts_t o;
    db_run_out_t run;
    db_summary_t s;
    opts(&o);
    records(&run);
    o.label = "kv";
    o.model = "stories260K";
    o.base_url = "http://127.0.0.1:8080";
    o.endpoint = "/v1/completions";
    o.dataset = DB_DATA_TRACE;
    o.chat = 1;
    o.tokenizer = "models/x";
    o.num_prompts = 6;
    o.request_rate = 4;
    o.burstiness = 0.5;
    o.max_concurrency = 8;
    o.pcts[0] = 99.9;
    o.n_pcts = 1;
    run.max_concurrency = 16;           /* a sweep step overrides */
    assert_int_equal(db_metrics_compute(&o, &run, &s), 0);
    assert_string_equal(s.label, "kv");
    assert_string_equal(s.model, "stories260K");
    assert_string_equal(s.base_url, "http://127.0.0.1:8080");
    assert_string_equal(s.endpoint, "/v1/completions");
    assert_string_equal(s.dataset, "trace");
    assert_string_equal(s.backend, "openai-chat");
    assert_string_equal(s.tokenizer, "models/x");
    assert_int_equal(s.num_prompts, 6);
    assert_near(s.request_rate, 4, 0);
    assert_near(s.burstiness, .5, 0);
    assert_int_equal(s.max_concurrency, 16);
    assert_int_equal(s.n_pcts, 1);
    assert_near(s.pcts[0], 99.9, 0);
    assert_int_equal(s.pct_metrics, DB_M_TTFT | DB_M_TPOT | DB_M_ITL);
    /* p99.9 of TTFT [100, 200, 300]: index 1.998 -> 299.8 */
    assert_near(s.ttft_ms.pct[0], 299.8, EPS);
    assert_non_null(s.date);
    assert_int_equal(strlen(s.date), 15);
    db_summary_free(&s);

    /* without a label the summary has none; run without a limit: o's */
    o.label = NULL;
    run.max_concurrency = 0;
    assert_int_equal(db_metrics_compute(&o, &run, &s), 0);
    assert_null(s.label);
    assert_int_equal(s.max_concurrency, 8);
    db_summary_free(&s);
}

static void test_all_failed(void **st)
{
    db_opts_t o;
    db_run_out_t run;
    db_summary_t s;
    opts(&o);
    records(&run);
    run.results = &R[5];                /* timeout, boom */
    run.n = 2;
    run.duration_s = 0;                 /* no division by zero */
    assert_int_equal(db_metrics_compute(&o, &run, &s), 0);
    assert_int_equal(s.completed, 0);
    assert_int_equal(s.failed, 2);
    assert_int_equal(s.total_input, 0);
    assert_int_equal(s.total_cached, -1);
    assert_near(s.request_throughput, 0, 0);
    assert_near(s.output_throughput, 0, 0);
    assert_near(s.ttft_ms.mean, 0, 0);
    assert_near(s.ttft_ms.pct[2], 0, 0);
    assert_int_equal(s.itl_ms.n, 0);
    /* one of each: ties keep the order first seen */
    assert_int_equal(s.n_errors, 2);
    assert_string_equal(s.errors[0].message, "timeout");
    assert_string_equal(s.errors[1].message, "HTTP 500: boom");
    db_summary_free(&s);
}

static void test_error_without_message(void **st)
{
    db_opts_t o;
    db_run_out_t run;
    db_summary_t s;
    db_result_t r[3];
    memset(r, 0, sizeof(r));
    r[0].status = 503;
    r[1].status = 0;
    r[2].status = 503;
    opts(&o);
    memset(&run, 0, sizeof(run));
    run.results = r;
    run.n = 3;
    run.duration_s = 1;
    assert_int_equal(db_metrics_compute(&o, &run, &s), 0);
    assert_int_equal(s.failed, 3);
    assert_int_equal(s.n_errors, 2);
    assert_string_equal(s.errors[0].message, "HTTP 503");
    assert_int_equal(s.errors[0].count, 2);
    assert_string_equal(s.errors[1].message, "no response");
    db_summary_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_figures),
        cmocka_unit_test(test_goodput),
        cmocka_unit_test(test_copies_options),
        cmocka_unit_test(test_all_failed),
        cmocka_unit_test(test_error_without_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
