#ifndef DB_OPTS_H
#define DB_OPTS_H

/*
 * dynamo-bench's options. Flags carry vLLM's benchmark_serving names
 * wherever the concept is the same (--base-url, --endpoint, --model, ...),
 * so scripts carry over; db_opts_parse documents each in --help.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "db_dataset.h"
#include "db_trace.h"

#define DB_PCT_MAX     16
#define DB_SWEEP_MAX   64

/* --percentile-metrics bits */
#define DB_M_TTFT   0x1
#define DB_M_TPOT   0x2
#define DB_M_ITL    0x4
#define DB_M_E2EL   0x8

typedef enum {
    DB_DATA_RANDOM = 0,
    DB_DATA_TRACE,
    DB_DATA_SESSIONS
} db_data_kind_t;

typedef struct {
    /* target */
    char              *base_url;       /* --base-url, else http://HOST:PORT */
    char              *endpoint;       /* --endpoint (/v1/completions) */
    int                chat;           /* endpoint is chat (or --backend
                                          openai-chat) */
    char              *model;          /* --model */
    char              *served_model;   /* --served-model-name (sent as
                                          "model"; default --model) */
    char              *tokenizer;      /* --tokenizer DIR */
    char              *api_key;        /* --api-key or OPENAI_API_KEY */
    char             **headers;        /* --header 'K: V', n_headers */
    size_t             n_headers;
    int                prompt_tokens;  /* --prompt-format tokens: send ids
                                          (completions only) */

    /* workload */
    db_data_kind_t     dataset;        /* --dataset-name */
    char              *dataset_path;   /* --dataset-path */
    db_random_conf_t   random;
    db_sessions_conf_t sessions;
    db_trace_conf_t    trace;
    size_t             num_prompts;    /* --num-prompts (1000) */
    int                num_prompts_set;
    uint64_t           seed;           /* --seed (0) */

    /* sampling */
    double             temperature;    /* --temperature (0) */
    int                ignore_eos;     /* --ignore-eos */

    /* load */
    size_t             max_concurrency;/* --max-concurrency (0: unlimited) */
    double             request_rate;   /* --request-rate (inf = 0 here:
                                          all at once) */
    double             burstiness;     /* --burstiness (1: Poisson) */
    double             duration_s;     /* --duration (0: none) */
    size_t             num_warmups;    /* --num-warmups (0) */
    double             timeout_s;      /* --request-timeout (600) */
    size_t             sweep[DB_SWEEP_MAX]; /* --concurrency 1,2,4 */
    size_t             n_sweep;

    /* metrics */
    double             goodput_ttft_ms;/* --goodput ttft:MS; < 0 unset */
    double             goodput_tpot_ms;
    double             goodput_e2el_ms;
    unsigned           pct_metrics;    /* --percentile-metrics
                                          (ttft,tpot,itl) */
    double             pcts[DB_PCT_MAX];/* --metric-percentiles (50,90,99) */
    size_t             n_pcts;

    /* output */
    int                save_result;    /* --save-result */
    int                save_detailed;  /* --save-detailed: per-request JSONL */
    char              *result_dir;     /* --result-dir (.) */
    char              *result_filename;/* --result-filename */
    char              *label;          /* --label */
    int                plot;           /* --plot: PNGs through gnuplot */
    int                progress;       /* progress bar on a terminal; off with
                                          --disable-tqdm or when not a tty */
} db_opts_t;

void db_opts_defaults(db_opts_t *o);
void db_opts_free(db_opts_t *o);

/*
 * Parses argv of the run command (argv[0] is the program). Returns 0, 1
 * when --help was printed, -1 with a message in err on a bad flag.
 */
int db_opts_parse(db_opts_t *o, int argc, char **argv, char *err,
    size_t errlen);

/* The run flags, grouped, with defaults and examples (--help). */
void db_opts_usage(FILE *out);

/* "ttft:50 tpot:20" (vLLM's --goodput, also comma-separated). */
int db_goodput_parse(db_opts_t *o, const char *spec, char *err,
    size_t errlen);

#endif
