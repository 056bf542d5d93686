#ifndef DB_RUN_H
#define DB_RUN_H

/*
 * The runner: sends a dataset's requests to an OpenAI-compatible server
 * (streaming, libcurl's multi interface, one thread), on the arrival
 * process of the options (Poisson / gamma with burstiness, the trace's
 * fixed schedule, sessions whose turns wait for the previous one), never
 * more than max_concurrency at once, and records db_result_t per request.
 */

#include <stddef.h>

#include "db_dataset.h"
#include "db_opts.h"
#include "db_result.h"
#include "kvr_tokenizer.h"

typedef struct {
    db_result_t  *results;        /* n, warm-ups first (warmup = 1) */
    size_t        n;
    double        duration_s;     /* first timed send to last completion */
    size_t        peak_concurrency;
    size_t        max_concurrency;/* the limit this run had (0: none) */
} db_run_out_t;

/*
 * Runs warm-ups (o->num_warmups requests from the dataset, completed before
 * the timed run starts), then the timed run: o->num_prompts requests (the
 * dataset reused from its start when --duration outlasts it), or until
 * o->duration_s. max_concurrency overrides o's (for sweeps; 0: o's).
 * tok (may be NULL) counts output tokens when the server sends no usage.
 */
int db_run(const db_opts_t *o, const db_dataset_t *ds,
    const kvr_tokenizer_t *tok, size_t max_concurrency, db_run_out_t *out,
    char *err, size_t errlen);

void db_run_out_free(db_run_out_t *out);

/* 1 when the last db_run was cut short by SIGINT (it stopped issuing,
 * gave in-flight requests 2 s, then failed them as "interrupted"); a
 * sweep should stop there. */
int db_run_interrupted(void);

/* The next inter-arrival gap in seconds: exponential (burstiness 1) or
 * gamma(shape = burstiness, scale = 1 / (rate * burstiness)); 0 when rate
 * is infinite (0). state is a splitmix/xoshiro seed word. */
double db_arrival_next(double rate, double burstiness, uint64_t *state);

#endif
