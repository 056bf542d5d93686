#ifndef DB_SERVE_HTTP_H
#define DB_SERVE_HTTP_H

/*
 * `dynamo-bench serve`'s server state, shared by the program
 * (db_serve.c: flags, listener, signals) and the request handling
 * (db_serve_stream.c: answers on a timed schedule).
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <event2/event.h>
#include <event2/http.h>

#include "db_serve.h"
#include "db_serve_int.h"

#define DEFAULT_MAX_TOKENS  16     /* OpenAI's completions default */

typedef struct db_srv_s db_srv_t;

/* One open completion request. */
typedef struct db_stream_s {
    db_srv_t                  *srv;
    struct evhttp_request     *req;
    struct event              *timer;
    struct db_stream_s        *prev, *next;

    int             chat;
    int             stream;
    int             usage_chunk;   /* streamed: send the usage chunk */
    int             usage_body;    /* not streamed: "usage" in the body */
    int             tokens;
    int             chunk_tokens;
    int             n_chunks;
    int             empty_chunks;
    int             status;
    int             error_after;
    int             disconnect_after;
    int             max_tokens;
    const char     *error_msg;
    const double   *itl;
    size_t          n_itl;
    size_t          itl_i;
    int64_t         prompt_tokens;

    char           *model_json;    /* the model as a JSON string */
    char            id[48];
    long long       created;
    double          due;           /* next event, monotonic seconds */
    int             sent_chunks;   /* token-bearing chunks sent */
    int             sent_tokens;
    int             role_sent;
    int             draining;      /* disconnect once the output is out */
} db_stream_t;

/* The server. */
struct db_srv_s {
    db_serve_conf_t       conf;
    struct event_base    *base;
    struct evhttp        *http;
    db_serve_script_t     script;
    size_t                seq;         /* requests received */
    size_t                served;      /* completion requests accepted */
    double                t_start;
    FILE                 *log;
    db_stream_t          *active;
    size_t                n_active;
};

/* CLOCK_MONOTONIC in seconds. */
double db_serve_now(void);

/* evhttp's callback for every request (arg: the db_srv_t). */
void db_serve_on_request(struct evhttp_request *req, void *arg);

/* Unlinks and frees a stream's state (not its request). */
void db_serve_stream_free(db_stream_t *st);

#endif
