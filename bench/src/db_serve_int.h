#ifndef DB_SERVE_INT_H
#define DB_SERVE_INT_H

/*
 * `dynamo-bench serve` internals: the script (db_serve_script.c) and the
 * request-body reader (db_serve_req.c), pure and fuzzed apart from the
 * libevent server (db_serve.c).
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DB_SERVE_ITL_MAX 4096   /* itl_ms array entries per script line */

/*
 * One script entry (one JSONL line), applied to one request. Unset fields
 * (-1, NULL) take the server's flags.
 *   ttft_ms          first token-bearing chunk, ms after the request is read
 *   itl_ms           gap(s) between token-bearing chunks: a number, or an
 *                    array cycled over the gaps
 *   tokens           completion tokens (default --output-len, else the
 *                    request's max_tokens)
 *   chunk_tokens     tokens per chunk (the last one may carry fewer)
 *   empty_chunks     true: an empty-text chunk before every token chunk
 *   usage            false: no usage even when asked
 *   status           answer this HTTP status (>= 400) with an OpenAI error
 *                    body at ttft instead of a completion
 *   error_after      after N token chunks, an in-stream error event
 *   disconnect_after after N token chunks, close the connection
 *   error            the message of status / error_after
 *   prompt_log       false: the request log line leaves out the body
 */
typedef struct {
    double     ttft_ms;
    double    *itl_ms;
    size_t     n_itl;
    int        tokens;
    int        chunk_tokens;
    int        empty_chunks;
    int        usage;
    int        status;
    int        error_after;
    int        disconnect_after;
    int        prompt_log;
    char      *error;
} db_serve_entry_t;

typedef struct {
    db_serve_entry_t  *v;
    size_t             n;
    size_t             cap;
} db_serve_script_t;

void db_serve_entry_init(db_serve_entry_t *e);
void db_serve_entry_free(db_serve_entry_t *e);

/* One line (a JSON object). -1 with a message naming the key. */
int db_serve_script_parse_line(const char *line, size_t len,
    db_serve_entry_t *e, char *err, size_t errlen);

/* Blank lines and lines starting with '#' are skipped; errors are
 * "NAME:LINE: message". An empty script is an error. */
int db_serve_script_load_fp(FILE *fp, const char *name,
    db_serve_script_t *s, char *err, size_t errlen);
int db_serve_script_load(const char *path, db_serve_script_t *s, char *err,
    size_t errlen);
void db_serve_script_free(db_serve_script_t *s);

/*
 * What the server reads from a request body. prompt_tokens counts the
 * whitespace-separated words of the prompt (or of every message's text
 * content), or the ids of a token-id prompt: the server has no tokenizer,
 * so it is an approximation a client can reproduce, not a model's count.
 */
typedef struct {
    char      *model;          /* NULL when absent */
    int        max_tokens;     /* max_tokens / max_completion_tokens;
                                  -1 when absent */
    int        stream;
    int        include_usage;  /* stream_options.include_usage */
    int64_t    prompt_tokens;
} db_serve_req_t;

/* -1 with a message (for a 400 answer) on a bad body. */
int db_serve_req_parse(const char *body, size_t len, int chat,
    db_serve_req_t *r, char *err, size_t errlen);
void db_serve_req_free(db_serve_req_t *r);

/* Whitespace-separated words in s[0..len). */
int64_t db_serve_count_words(const char *s, size_t len);

#endif
