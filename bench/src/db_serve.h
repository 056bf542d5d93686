#ifndef DB_SERVE_H
#define DB_SERVE_H

/*
 * `dynamo-bench serve`: an OpenAI-compatible server with scripted timings
 * (libevent). It answers /v1/completions and /v1/chat/completions, streamed
 * or not, with the first token after ttft and the next ones itl apart, so
 * the client's own overhead and the metric arithmetic can be checked
 * against known figures. A script (JSONL, one entry per request, used in
 * arrival order and cycled) may set per request: ttft_ms, itl_ms (number
 * or array), tokens, chunk_tokens, empty_chunks, usage, status, error.
 */

typedef struct {
    const char  *host;         /* --host (127.0.0.1) */
    int          port;         /* --port (0: pick one, printed) */
    double       ttft_ms;      /* --ttft-ms (50) */
    double       itl_ms;       /* --itl-ms (10) */
    int          tokens;       /* --output-len: 0 = the request's max_tokens */
    int          chunk_tokens; /* --chunk-tokens (1) */
    int          usage;        /* usage when asked (default 1; --no-usage) */
    const char  *script;       /* --script FILE */
    const char  *port_file;    /* --port-file FILE: the bound port */
    const char  *model;        /* --model: /v1/models, and "model" in
                                  answers when a request names none */
    const char  *log_requests; /* --log-requests FILE: a JSON line per
                                  request received */
} db_serve_conf_t;

int db_serve_main(int argc, char **argv);

#endif
