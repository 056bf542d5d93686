/*
 * libFuzzer target for db_summary_load (compare's reader of saved
 * summaries). Each input is tried twice: as a whole file, and spliced as
 * the value of one key (chosen by its first byte) of an otherwise valid
 * summary, so that every key's checks are reached without a seed corpus.
 * Whatever loads must print, and must write JSON that loads again: a file
 * compare accepts is one it can also reproduce.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_report.h"

static const char *const KEYS[] = {
    "date", "label", "model_id", "request_rate", "burstiness",
    "max_concurrency", "duration", "completed", "failed",
    "total_input_tokens", "total_output_tokens", "request_throughput",
    "request_goodput", "output_throughput", "total_token_throughput",
    "mean_ttft_ms", "median_ttft_ms", "std_ttft_ms", "p50_ttft_ms",
    "p99.9_ttft_ms", "mean_itl_ms", "median_itl_ms", "std_itl_ms",
    "p50_itl_ms", "p99.9_itl_ms", "total_cached_tokens",
    "peak_concurrency", "percentiles", "percentile_metrics", "errors",
    "num_prompts",
};
#define N_KEYS (sizeof(KEYS) / sizeof(KEYS[0]))

static const char *const VALUES[N_KEYS] = {
    "\"20250101-000000\"", "\"kv\"", "\"m\"", "\"inf\"", "1.0", "8",
    "2.5", "10", "1", "1000", "200", "4.0", "3.0", "80.0", "480.0",
    "12.5", "12.0", "1.5", "12.0", "20.0", "5.0", "5.0", "0.5", "5.0",
    "9.0", "64", "8",
    "[50, 99.9]", "\"ttft,itl\"", "[{\"message\": \"boom\", \"count\": 1}]",
    "10",
};

static FILE *null_out;

static void one(const char *json, size_t len)
{
    db_summary_t s, t;
    char err[256];

    if (db_summary_load(json, len, &s, err, sizeof(err)) < 0)
        return;
    db_report_print(&s, null_out);
    db_report_csv(&s, null_out, 1);
    db_summary_t two[2] = { s, s };
    db_compare_print(two, 2, null_out);
    db_sweep_print(two, 2, null_out);

    char *buf = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&buf, &blen);
    if (!f || db_report_json(&s, f) < 0)
        abort();
    fclose(f);
    if (db_summary_load(buf, blen, &t, err, sizeof(err)) < 0) {
        fprintf(stderr, "reload failed: %s\n%s\n", err, buf);
        abort();
    }
    if (t.completed != s.completed || t.n_pcts != s.n_pcts ||
        t.known_metrics != s.known_metrics || t.n_errors != s.n_errors)
        abort();
    db_summary_free(&t);
    free(buf);
    db_summary_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!null_out)
        null_out = fopen("/dev/null", "w");
    one((const char *) data, size);
    if (size == 0)
        return 0;

    size_t pick = data[0] % N_KEYS, cap = size + 2048, len = 0;
    char *doc = malloc(cap);
    if (!doc)
        return 0;
    doc[len++] = '{';
    for (size_t i = 0; i < N_KEYS; i++) {
        len += (size_t) snprintf(doc + len, cap - len, "%s\"%s\": ",
            i ? ", " : "", KEYS[i]);
        if (i == pick) {
            memcpy(doc + len, data + 1, size - 1);
            len += size - 1;
        } else {
            len += (size_t) snprintf(doc + len, cap - len, "%s", VALUES[i]);
        }
    }
    doc[len++] = '}';
    one(doc, len);
    free(doc);
    return 0;
}
