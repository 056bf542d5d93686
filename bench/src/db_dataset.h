#ifndef DB_DATASET_H
#define DB_DATASET_H

/*
 * Workloads: what dynamo-bench sends. A dataset is a materialized array of
 * requests; the runner (db_run.h) decides when each is sent.
 *
 * Prompts are built from token ids of the client's tokenizer (kvrouter's),
 * drawn from "round-trip-safe" words (db_words.h) so that the text, once the
 * server tokenizes it again, gives the same ids: equal blocks of ids on the
 * client are equal blocks (and equal KV hashes) on the server.
 */

#include <stddef.h>
#include <stdint.h>

#include "kvr_tokenizer.h"

typedef struct {
    char      *prompt;       /* text: the completions prompt, or this turn's
                                user message (NUL-terminated, malloc'd) */
    uint32_t  *ids;          /* the prompt's token ids (malloc'd; NULL when
                                the dataset has none) */
    size_t     n_ids;
    int64_t    prompt_len;   /* tokens, by the dataset's tokenizer */
    int        output_len;   /* max_tokens sent */
    double     timestamp_s;  /* trace schedule: offset from the start;
                                < 0 when the dataset has no schedule */
    int64_t    session;      /* session number, -1 when none */
    int        turn;         /* 0-based turn within the session */
    double     delay_s;      /* wait after the session's previous turn
                                completes before sending this one */
    int        with_history; /* send the session's previous turns (prompts
                                and the replies received) before this one:
                                chat messages, or concatenated text */
} db_request_t;

typedef struct {
    db_request_t  *v;
    size_t         n;
    size_t         cap;
    int            has_sessions;  /* some request has session >= 0 */
} db_dataset_t;

void db_dataset_init(db_dataset_t *ds);
void db_dataset_free(db_dataset_t *ds);
/* Appends a zeroed request (session -1, timestamp -1); NULL when out of
 * memory. */
db_request_t *db_dataset_push(db_dataset_t *ds);

/* vLLM's random dataset (--dataset-name random). */
typedef struct {
    int        input_len;     /* --random-input-len (1024) */
    int        output_len;    /* --random-output-len (128) */
    double     range_ratio;   /* --random-range-ratio (0): lengths uniform in
                                 [len * (1 - r), len * (1 + r)] */
    int        prefix_len;    /* --random-prefix-len (0): one prefix shared
                                 by every request */
    size_t     num_prompts;
    uint64_t   seed;
} db_random_conf_t;

int db_random_build(const kvr_tokenizer_t *tok, const db_random_conf_t *c,
    db_dataset_t *out, char *err, size_t errlen);

/* Multi-turn sessions (--dataset-name sessions): N conversations of T
 * turns; turn t carries the whole history (with_history = 1). */
typedef struct {
    int        sessions;        /* --num-sessions */
    int        turns;           /* --session-turns */
    int        system_len;      /* --session-system-len: shared system
                                   prompt, tokens, in turn 0 */
    int        input_len;       /* --session-input-len: new user tokens per
                                   turn */
    int        output_len;      /* --session-output-len */
    double     think_s;         /* --session-think-ms / 1000: delay_s of
                                   every turn after the first */
    uint64_t   seed;
} db_sessions_conf_t;

int db_sessions_build(const kvr_tokenizer_t *tok, const db_sessions_conf_t *c,
    db_dataset_t *out, char *err, size_t errlen);

#endif
