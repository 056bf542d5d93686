#ifndef DB_RESULT_H
#define DB_RESULT_H

/*
 * What the runner records for one request (the client's raw measurements),
 * and what metrics (db_metrics.h) are computed from. Times are seconds on
 * CLOCK_MONOTONIC relative to the start of the timed run.
 */

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t     index;          /* dataset index */
    int64_t    session;        /* -1 none */
    int        turn;
    int        warmup;         /* 1: excluded from every figure */
    int        ok;             /* 1: a complete, error-free response */
    int        status;         /* HTTP status; 0 when none arrived */
    char      *error;          /* malloc'd message when !ok */

    double     start_s;        /* request handed to the transport */
    double     ttft_s;         /* first token-bearing chunk - start; -1 */
    double     latency_s;      /* end of response - start (E2EL) */
    double    *itl_s;          /* gaps between successive token-bearing
                                  chunks (malloc'd), n_itl of them */
    size_t     n_itl;
    size_t     cap_itl;

    int64_t    prompt_tokens;  /* usage.prompt_tokens, else the dataset's */
    int64_t    output_tokens;  /* usage.completion_tokens, else the text
                                  retokenized, else chunks; -1 unknown */
    int64_t    cached_tokens;  /* usage.prompt_tokens_details.cached_tokens;
                                  -1 when absent */
    int        usage_seen;     /* counts came from the server's usage */
    char      *text;           /* generated text (malloc'd) */
    size_t     text_len;
} db_result_t;

void db_result_free(db_result_t *r);

#endif
