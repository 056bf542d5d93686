#ifndef DB_TRACE_H
#define DB_TRACE_H

/*
 * Mooncake / AIPerf traces: JSONL, one request per line:
 *   {"timestamp": ms, "input_length": n, "output_length": n,
 *    "hash_ids": [ids...], "session_id": s (optional), "delay": ms (optional)}
 * Each hash id stands for a block of block_size tokens; equal hash ids give
 * identical token blocks (so shared prefixes in the trace are shared
 * prefixes on the wire).
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "db_dataset.h"
#include "db_words.h"

typedef struct {
    double     timestamp_ms;  /* -1 when absent; db_trace_load gives a later
                                 session turn with only a delay its previous
                                 turn's time + delay (AIPerf's multi-turn
                                 traces time first turns only) */
    int64_t    input_length;
    int64_t    output_length;
    uint64_t  *hash_ids;      /* malloc'd */
    size_t     n_hash_ids;
    int64_t    session;       /* -1 when absent (string ids are interned) */
    double     delay_ms;      /* -1 when absent */
    char      *session_name;  /* db_trace_parse_line: a string session_id
                                 (malloc'd; session -1 until the loader
                                 interns it), else NULL. After
                                 db_trace_load, NULL and session is the
                                 dense index (0 .. n_sessions-1) of the
                                 session_id, integer or string, in order
                                 of first appearance */
} db_trace_rec_t;

typedef struct {
    db_trace_rec_t  *v;
    size_t           n;
    size_t           cap;
    size_t           n_sessions;
} db_trace_t;

/*
 * Parses one line (no trailing newline needed). On error returns -1 and
 * writes a message naming the field; the caller prefixes "FILE:LINE: ".
 * Blank lines are the caller's business.
 */
int db_trace_parse_line(const char *line, size_t len, db_trace_rec_t *rec,
    char *err, size_t errlen);

/* Reads a whole file; errors are "PATH:LINE: message". */
int db_trace_load(const char *path, db_trace_t *tr, char *err, size_t errlen);
int db_trace_load_fp(FILE *fp, const char *name, db_trace_t *tr, char *err,
    size_t errlen);
void db_trace_free(db_trace_t *tr);
void db_trace_rec_free(db_trace_rec_t *rec);

typedef struct {
    int        block_size;    /* --trace-block-size (512) */
    double     speedup;       /* --trace-speedup (1): timestamps divided */
    int        fixed_schedule;/* 1: timestamp_s from the trace; 0: as fast
                                 as concurrency allows (timestamp_s = -1) */
    size_t     max_requests;  /* 0: all (--num-prompts when given) */
    uint64_t   seed;
} db_trace_conf_t;

/* The token block of a hash id: a pure function of (seed, hash id). */
void db_trace_block(const db_words_t *w, uint64_t seed, uint64_t hash_id,
    uint32_t *out, size_t block_size);

int db_trace_build(const kvr_tokenizer_t *tok, const db_trace_t *tr,
    const db_trace_conf_t *c, db_dataset_t *out, char *err, size_t errlen);

/* synthesize / analyze (db_synth.c, db_analyze.c) */
typedef struct {
    size_t     num_requests;   /* --num-requests (1000) */
    double     request_rate;   /* --request-rate (req/s, Poisson; 10) */
    int        block_size;     /* --block-size (512) */
    int        isl;            /* --input-len mean (tokens) */
    int        osl;            /* --output-len mean */
    double     len_ratio;      /* --range-ratio: uniform spread like vLLM */
    int        system_prompts; /* --system-prompts K shared prefixes */
    int        system_len;     /* --system-prompt-len tokens */
    int        turns;          /* --turns: requests per session (history
                                  grows by each turn's input + output) */
    double     delay_ms;       /* --delay-ms between turns */
    double     target_hit;     /* --target-hit-rate in [0,1); < 0: off. When
                                  set, system_len is solved for it */
    uint64_t   seed;
} db_synth_conf_t;

int db_synth_write(const db_synth_conf_t *c, FILE *out, double *achieved_hit,
    char *err, size_t errlen);

typedef struct {
    size_t     requests;
    size_t     sessions;
    double     duration_s;       /* last - first timestamp */
    double     isl_mean, isl_median, isl_p90, isl_p99, isl_min, isl_max;
    double     osl_mean, osl_median, osl_p90, osl_p99, osl_min, osl_max;
    size_t     blocks;           /* total hash ids */
    size_t     unique_blocks;
    size_t     hits;             /* blocks counted as hits below */
    double     hit_rate;         /* theoretical prefix-cache hit rate with an
                                    infinite cache, blocks */
} db_analysis_t;

void db_trace_analyze(const db_trace_t *tr, db_analysis_t *a);
void db_analysis_print(const db_analysis_t *a, FILE *out);
int db_analysis_json(const db_analysis_t *a, FILE *out);

#endif
