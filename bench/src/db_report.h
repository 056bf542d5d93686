#ifndef DB_REPORT_H
#define DB_REPORT_H

/*
 * Output of a run: vLLM's "Serving Benchmark Result" block, the summary as
 * JSON (vLLM's key names: completed, duration, mean_ttft_ms, p99_tpot_ms,
 * ...) and CSV, per-request JSONL, gnuplot PNGs, sweep tables, and
 * `compare` over saved summaries.
 */

#include <stdio.h>

#include "db_metrics.h"

void db_report_print(const db_summary_t *s, FILE *out);
int db_report_json(const db_summary_t *s, FILE *out);
int db_report_csv(const db_summary_t *s, FILE *out, int header);
int db_report_jsonl(const db_run_out_t *run, FILE *out);

/* Loads a summary written by db_report_json (for compare); -1 with a
 * message naming the key on a bad file. */
int db_summary_load(const char *json, size_t len, db_summary_t *s,
    char *err, size_t errlen);

/* compare: two or more summaries side by side, ratios against the first. */
int db_compare_print(const db_summary_t *s, size_t n, FILE *out);

/* One row per sweep step (concurrency, req/s, tok/s, TTFT/TPOT/ITL). */
void db_sweep_print(const db_summary_t *s, size_t n, FILE *out);
int db_sweep_json(const db_summary_t *s, size_t n, FILE *out);

/*
 * PNGs through gnuplot (skipped with a note when gnuplot is absent):
 * prefix-cdf.png (TTFT and TPOT CDFs) from one run's results; for sweeps
 * prefix-sweep.png (output throughput against TTFT and TPOT).
 */
int db_plot_cdf(const db_run_out_t *run, const char *prefix, char *err,
    size_t errlen);
int db_plot_sweep(const db_summary_t *s, size_t n, const char *prefix,
    char *err, size_t errlen);

#endif
