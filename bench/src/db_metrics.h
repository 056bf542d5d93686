#ifndef DB_METRICS_H
#define DB_METRICS_H

/*
 * vLLM's serving metrics from the per-request records, exactly as
 * benchmark_serving computes them:
 *   TTFT per request; TPOT = (e2el - ttft) / (output_tokens - 1), only when
 *   output_tokens > 1; ITL = every gap between token-bearing chunks, all
 *   requests pooled; E2EL; request / output / total token throughput over
 *   the run's duration; goodput = requests meeting every --goodput SLO per
 *   second. Warm-ups and failed requests are left out of all of them.
 */

#include <stdio.h>

#include "db_opts.h"
#include "db_result.h"
#include "db_run.h"
#include "db_stats.h"

typedef struct {
    char      *message;
    size_t     count;
} db_error_count_t;

typedef struct {
    char              *label;
    char              *model;
    char              *base_url;
    char              *endpoint;
    char              *dataset;
    double             request_rate;     /* 0: inf */
    double             burstiness;
    size_t             max_concurrency;  /* 0: none */

    double             duration_s;
    size_t             completed;
    size_t             failed;
    int64_t            total_input;
    int64_t            total_output;
    int64_t            total_cached;     /* -1 when no server reported it */
    double             request_throughput;
    double             request_goodput;  /* -1 without --goodput */
    double             output_throughput;
    double             total_token_throughput;
    size_t             peak_concurrency;

    unsigned           pct_metrics;
    double             pcts[DB_STATS_PCT_MAX];
    size_t             n_pcts;
    db_dist_t          ttft_ms;
    db_dist_t          tpot_ms;
    db_dist_t          itl_ms;
    db_dist_t          e2el_ms;

    db_error_count_t  *errors;           /* distinct messages, most first */
    size_t             n_errors;

    char              *date;             /* "YYYYMMDD-HHMMSS", local, as
                                            vLLM's result files have it */
    unsigned           known_metrics;    /* DB_M_* whose distributions are
                                            set (all four when computed;
                                            a loaded file may have fewer) */
    char              *backend;          /* vLLM's --backend words:
                                            "openai" or "openai-chat" */
    char              *tokenizer;        /* --tokenizer (tokenizer_id) */
    size_t             num_prompts;      /* timed requests asked for */
} db_summary_t;

int db_metrics_compute(const db_opts_t *o, const db_run_out_t *run,
    db_summary_t *s);
void db_summary_free(db_summary_t *s);

#endif
