/*
 * `dynamo-bench serve`'s answers: OpenAI completions on a scripted
 * schedule (db_serve.h). One thread, libevent's evhttp on an event base
 * with EVENT_BASE_FLAG_PRECISE_TIMER (timerfd under epoll: sub-millisecond
 * timers), one timer per open request.
 *
 * Every event of a request is due at an absolute time from the moment its
 * body was read (t0): the k-th token-bearing chunk at
 * t0 + ttft + itl_1 + ... + itl_{k-1}. Each timer is armed for (due - now),
 * so a late wake-up never shifts the chunks after it (no drift).
 *
 * Connection lifetime: libevent owns a request until we start answering.
 * When the client goes away mid-stream, libevent detaches the request
 * (its connection becomes NULL) and calls the connection's close callback,
 * where we free our state and the request. A request we finish normally
 * clears that callback first, so a kept-alive connection never calls back
 * into freed state.
 */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include <jansson.h>

#include "db_serve_http.h"

double
db_serve_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* ---- answers ---------------------------------------------------------- */

static void
send_json(struct evhttp_request *req, int code, const char *reason,
    const char *json)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req),
        "Content-Type", "application/json");
    evbuffer_add(b, json, strlen(json));
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

/* OpenAI's error shape: {"error": {"message", "type", "param", "code"}}. */
static void
send_error(struct evhttp_request *req, int code, const char *message)
{
    json_t  *o;
    char    *s;

    o = json_pack("{s:{s:s, s:s, s:n, s:i}}", "error",
        "message", message,
        "type", code < 500 ? "invalid_request_error" : "server_error",
        "param", "code", code);
    s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    /* no reason phrase: libevent gives the status's own (404 Not Found) */
    send_json(req, code, NULL,
        s != NULL ? s : "{\"error\":{\"message\":\"error\"}}");
    free(s);
    json_decref(o);
}

static char *
json_quote(const char *s)
{
    json_t  *j = json_string(s);
    char    *out;

    if (j == NULL) {
        j = json_string("(invalid model name)");
    }
    out = json_dumps(j, JSON_ENCODE_ANY);
    json_decref(j);
    return out;
}

/* ---- stream state ----------------------------------------------------- */

void
db_serve_stream_free(db_stream_t *st)
{
    db_srv_t  *srv = st->srv;

    if (st->prev != NULL) {
        st->prev->next = st->next;
    } else {
        srv->active = st->next;
    }
    if (st->next != NULL) {
        st->next->prev = st->prev;
    }
    srv->n_active--;
    if (st->timer != NULL) {
        event_free(st->timer);
    }
    free(st->model_json);
    free(st);
}

/* Done with st: the request is answered (or about to be) by the caller. */
static void
stream_done(db_stream_t *st)
{
    struct evhttp_connection *evcon =
        evhttp_request_get_connection(st->req);

    if (evcon != NULL) {
        evhttp_connection_set_closecb(evcon, NULL, NULL);
    }
    db_serve_stream_free(st);
}

static void
on_close(struct evhttp_connection *evcon, void *arg)
{
    db_stream_t            *st = arg;
    struct evhttp_request  *req = st->req;

    evhttp_connection_set_closecb(evcon, NULL, NULL);
    db_serve_stream_free(st);
    /* detached from its connection: ours to free */
    if (evhttp_request_get_connection(req) == NULL) {
        evhttp_request_free(req);
    }
}

static void
schedule(db_stream_t *st, double due)
{
    double          d = due - db_serve_now();
    struct timeval  tv;

    st->due = due;
    if (d < 0.0) {
        d = 0.0;
    }
    tv.tv_sec = (time_t) d;
    tv.tv_usec = (suseconds_t) ((d - (double) tv.tv_sec) * 1e6);
    evtimer_add(st->timer, &tv);
}

static const char *
object_name(const db_stream_t *st)
{
    return st->chat ? "chat.completion.chunk" : "text_completion";
}

static void
chunk_head(struct evbuffer *b, const db_stream_t *st)
{
    evbuffer_add_printf(b, "data: {\"id\":\"%s\",\"object\":\"%s\","
        "\"created\":%lld,\"model\":%s,", st->id, object_name(st),
        st->created, st->model_json);
}

/* " tok<k>" for tokens [from, to), 1-based numbering. */
static void
add_tokens(struct evbuffer *b, int from, int to)
{
    int  k;

    for (k = from; k < to; k++) {
        evbuffer_add_printf(b, " tok%d", k + 1);
    }
}

static void
text_chunk(struct evbuffer *b, db_stream_t *st, int from, int to)
{
    chunk_head(b, st);
    if (st->chat) {
        evbuffer_add_printf(b, "\"choices\":[{\"index\":0,\"delta\":"
            "{\"content\":\"");
        add_tokens(b, from, to);
        evbuffer_add_printf(b, "\"},\"logprobs\":null,"
            "\"finish_reason\":null}]}\n\n");
    } else {
        evbuffer_add_printf(b, "\"choices\":[{\"index\":0,\"text\":\"");
        add_tokens(b, from, to);
        evbuffer_add_printf(b, "\",\"logprobs\":null,"
            "\"finish_reason\":null}]}\n\n");
    }
}

static const char *
finish_reason(const db_stream_t *st)
{
    return st->max_tokens > 0 && st->tokens >= st->max_tokens
           ? "length" : "stop";
}

static void
usage_json(struct evbuffer *b, const db_stream_t *st)
{
    evbuffer_add_printf(b, "\"usage\":{\"prompt_tokens\":%lld,"
        "\"completion_tokens\":%d,\"total_tokens\":%lld}",
        (long long) st->prompt_tokens, st->tokens,
        (long long) st->prompt_tokens + st->tokens);
}

static void
stream_tail(struct evbuffer *b, db_stream_t *st)
{
    chunk_head(b, st);
    if (st->chat) {
        evbuffer_add_printf(b, "\"choices\":[{\"index\":0,\"delta\":{},"
            "\"logprobs\":null,\"finish_reason\":\"%s\"}]}\n\n",
            finish_reason(st));
    } else {
        evbuffer_add_printf(b, "\"choices\":[{\"index\":0,\"text\":\"\","
            "\"logprobs\":null,\"finish_reason\":\"%s\"}]}\n\n",
            finish_reason(st));
    }
    if (st->usage_chunk) {
        chunk_head(b, st);
        evbuffer_add_printf(b, "\"choices\":[],");
        usage_json(b, st);
        evbuffer_add_printf(b, "}\n\n");
    }
    evbuffer_add_printf(b, "data: [DONE]\n\n");
}

static void
error_event(struct evbuffer *b, db_stream_t *st)
{
    char    *m = json_quote(st->error_msg);

    evbuffer_add_printf(b, "data: {\"error\":{\"message\":%s,"
        "\"type\":\"server_error\",\"param\":null,\"code\":500}}\n\n",
        m != NULL ? m : "\"error\"");
    free(m);
    evbuffer_add_printf(b, "data: [DONE]\n\n");
}

static void
send_whole(db_stream_t *st)
{
    struct evhttp_request *req = st->req;
    struct evbuffer       *b = evbuffer_new();

    if (b == NULL) {
        stream_done(st);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"id\":\"%s\",\"object\":\"%s\","
        "\"created\":%lld,\"model\":%s,\"choices\":[{\"index\":0,",
        st->id, st->chat ? "chat.completion" : "text_completion",
        st->created, st->model_json);
    if (st->chat) {
        evbuffer_add_printf(b, "\"message\":{\"role\":\"assistant\","
            "\"content\":\"");
        add_tokens(b, 0, st->tokens);
        evbuffer_add_printf(b, "\"},");
    } else {
        evbuffer_add_printf(b, "\"text\":\"");
        add_tokens(b, 0, st->tokens);
        evbuffer_add_printf(b, "\",\"logprobs\":null,");
    }
    evbuffer_add_printf(b, "\"finish_reason\":\"%s\"}]", finish_reason(st));
    if (st->usage_body) {
        evbuffer_add_printf(b, ",");
        usage_json(b, st);
    }
    evbuffer_add_printf(b, "}");
    evhttp_add_header(evhttp_request_get_output_headers(req),
        "Content-Type", "application/json");
    stream_done(st);
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

/*
 * One piece of a streamed answer. evhttp_send_reply_chunk queues it on the
 * connection's bufferevent, which costs two epoll_ctl calls per chunk
 * (write interest on, then off) besides the write: at 1,000 streams that
 * is most of the server's time. When nothing is queued we frame the chunk
 * ourselves and write it at once; what the socket does not take, and every
 * chunk while something is queued, goes through the bufferevent (raw:
 * already framed), so the byte order is kept. A failed write is left to
 * libevent, which sees the close on the read side and calls on_close.
 */
static void
send_chunk(db_stream_t *st, struct evbuffer *b)
{
    struct evhttp_connection *evcon =
        evhttp_request_get_connection(st->req);
    struct bufferevent       *bev;
    evutil_socket_t           fd;
    char                      head[24];
    int                       n;

    if (evcon == NULL || evbuffer_get_length(b) == 0) {
        return;
    }
    bev = evhttp_connection_get_bufferevent(evcon);
    fd = bev != NULL ? bufferevent_getfd(bev) : -1;
    if (fd < 0 || !st->req->chunked
        || evbuffer_get_length(bufferevent_get_output(bev)) > 0)
    {
        evhttp_send_reply_chunk(st->req, b);
        return;
    }
    n = snprintf(head, sizeof(head), "%zx\r\n", evbuffer_get_length(b));
    evbuffer_prepend(b, head, (size_t) n);
    evbuffer_add(b, "\r\n", 2);
    if (evbuffer_write(b, fd) < 0 && errno != EAGAIN && errno != EINTR) {
        return;
    }
    if (evbuffer_get_length(b) > 0) {
        bufferevent_write_buffer(bev, b);
    }
}

static double
next_itl_s(db_stream_t *st)
{
    double  ms = st->itl[st->itl_i % st->n_itl];

    st->itl_i++;
    return ms / 1000.0;
}

/* Closes the connection once what was written has left (polled). */
static void
drain_and_close(db_stream_t *st)
{
    struct evhttp_connection *evcon =
        evhttp_request_get_connection(st->req);
    struct bufferevent       *bev;

    if (evcon == NULL) {
        return;
    }
    bev = evhttp_connection_get_bufferevent(evcon);
    if (bev != NULL && evbuffer_get_length(bufferevent_get_output(bev)) > 0)
    {
        struct timeval tv = { 0, 1000 };

        st->draining = 1;
        evtimer_add(st->timer, &tv);
        return;
    }
    evhttp_connection_set_closecb(evcon, NULL, NULL);
    db_serve_stream_free(st);
    /* frees the request, still queued on the connection */
    evhttp_connection_free(evcon);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
    db_stream_t            *st = arg;
    struct evhttp_request  *req = st->req;
    struct evbuffer        *b;

    if (st->draining) {
        drain_and_close(st);
        return;
    }
    if (st->status != 0) {
        int         status = st->status;
        const char *msg = st->error_msg;   /* the script's, or static */

        stream_done(st);
        send_error(req, status, msg);
        return;
    }
    if (!st->stream) {
        send_whole(st);
        return;
    }
    b = evbuffer_new();
    if (b == NULL) {
        stream_done(st);
        evhttp_send_reply_end(req);
        return;
    }
    if (st->chat && !st->role_sent) {
        chunk_head(b, st);
        evbuffer_add_printf(b, "\"choices\":[{\"index\":0,\"delta\":"
            "{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,"
            "\"finish_reason\":null}]}\n\n");
        st->role_sent = 1;
    }
    if (st->sent_chunks < st->n_chunks
        && st->sent_chunks != st->error_after
        && st->sent_chunks != st->disconnect_after)
    {
        int to = st->sent_tokens + st->chunk_tokens;

        if (to > st->tokens) {
            to = st->tokens;
        }
        if (st->empty_chunks) {
            text_chunk(b, st, 0, 0);
        }
        text_chunk(b, st, st->sent_tokens, to);
        st->sent_tokens = to;
        st->sent_chunks++;
    }
    if (st->sent_chunks == st->error_after) {
        error_event(b, st);
        send_chunk(st, b);
        evbuffer_free(b);
        stream_done(st);
        evhttp_send_reply_end(req);
        return;
    }
    if (st->sent_chunks == st->disconnect_after) {
        send_chunk(st, b);
        evbuffer_free(b);
        drain_and_close(st);
        return;
    }
    if (st->sent_chunks == st->n_chunks) {
        stream_tail(b, st);
        send_chunk(st, b);
        evbuffer_free(b);
        stream_done(st);
        evhttp_send_reply_end(req);
        return;
    }
    send_chunk(st, b);
    evbuffer_free(b);
    schedule(st, st->due + next_itl_s(st));
}

/* ---- requests --------------------------------------------------------- */

static void
log_request(db_srv_t *srv, double t, const char *method, const char *path,
    const char *body, size_t len, int with_body, int opens)
{
    json_t       *line, *b = NULL;
    json_error_t  je;
    char         *s;

    if (srv->log == NULL) {
        return;
    }
    line = json_pack("{s:I, s:f, s:s, s:s, s:I}",
        "seq", (json_int_t) srv->seq,
        "arrival_ms", floor((t - srv->t_start) * 1e6 + 0.5) / 1000.0,
        "method", method, "path", path,
        "in_flight", (json_int_t) (srv->n_active + (opens ? 1 : 0)));
    if (line == NULL) {
        return;
    }
    json_object_set_new(line, "body_bytes", json_integer((json_int_t) len));
    if (with_body && len > 0) {
        b = json_loadb(body, len, 0, &je);
        if (b == NULL) {
            b = json_stringn(body, len);
            if (b != NULL) {
                json_object_set_new(line, "body_raw", b);
            }
        } else {
            json_object_set_new(line, "body", b);
        }
    }
    s = json_dumps(line, JSON_COMPACT);
    if (s != NULL) {
        fprintf(srv->log, "%s\n", s);
        fflush(srv->log);
        free(s);
    }
    json_decref(line);
}

static const db_serve_entry_t *
script_entry(db_srv_t *srv)
{
    if (srv->script.n == 0) {
        return NULL;
    }
    return &srv->script.v[srv->served % srv->script.n];
}

static void
start_completion(db_srv_t *srv, struct evhttp_request *req, int chat,
    const char *body, size_t len, double t0)
{
    const db_serve_conf_t   *c = &srv->conf;
    const db_serve_entry_t  *e;
    db_serve_req_t           r;
    db_stream_t             *st;
    char                     err[256];
    double                   ttft_ms, end;
    int                      usage;

    if (db_serve_req_parse(body, len, chat, &r, err, sizeof(err)) != 0) {
        send_error(req, 400, err);
        return;
    }
    e = script_entry(srv);
    srv->served++;
    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        db_serve_req_free(&r);
        send_error(req, 500, "out of memory");
        return;
    }
    st->srv = srv;
    st->req = req;
    st->chat = chat;
    st->stream = r.stream;
    st->max_tokens = r.max_tokens;
    st->prompt_tokens = r.prompt_tokens;
    st->model_json = json_quote(r.model != NULL ? r.model : c->model);

    ttft_ms = e != NULL && e->ttft_ms >= 0 ? e->ttft_ms : c->ttft_ms;
    if (e != NULL && e->itl_ms != NULL) {
        st->itl = e->itl_ms;
        st->n_itl = e->n_itl;
    } else {
        st->itl = &c->itl_ms;
        st->n_itl = 1;
    }
    if (e != NULL && e->tokens >= 0) {
        st->tokens = e->tokens;
    } else if (c->tokens > 0) {
        st->tokens = c->tokens;
    } else {
        st->tokens = st->max_tokens > 0 ? st->max_tokens
                                        : DEFAULT_MAX_TOKENS;
    }
    st->chunk_tokens = e != NULL && e->chunk_tokens > 0 ? e->chunk_tokens
                       : c->chunk_tokens > 0 ? c->chunk_tokens : 1;
    st->n_chunks = (st->tokens + st->chunk_tokens - 1) / st->chunk_tokens;
    st->empty_chunks = e != NULL && e->empty_chunks;
    usage = e != NULL && e->usage >= 0 ? e->usage : c->usage;
    st->usage_chunk = usage && st->stream && r.include_usage;
    st->usage_body = usage;
    db_serve_req_free(&r);
    st->status = e != NULL ? e->status : 0;
    st->error_after = e != NULL ? e->error_after : -1;
    st->disconnect_after = e != NULL ? e->disconnect_after : -1;
    st->error_msg = e != NULL && e->error != NULL ? e->error
                    : "scripted error";
    snprintf(st->id, sizeof(st->id), "%s-%zu", chat ? "chatcmpl" : "cmpl",
        srv->served);
    st->created = (long long) time(NULL);

    st->timer = evtimer_new(srv->base, on_timer, st);
    if (st->model_json == NULL || st->timer == NULL) {
        if (st->timer != NULL) {
            event_free(st->timer);
        }
        free(st->model_json);
        free(st);
        send_error(req, 500, "out of memory");
        return;
    }
    st->next = srv->active;
    if (srv->active != NULL) {
        srv->active->prev = st;
    }
    srv->active = st;
    srv->n_active++;
    evhttp_connection_set_closecb(evhttp_request_get_connection(req),
        on_close, st);

    if (st->stream && st->status == 0) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);

        evhttp_add_header(h, "Content-Type", "text/event-stream");
        evhttp_add_header(h, "Cache-Control", "no-cache");
        evhttp_send_reply_start(req, 200, "OK");
    }
    end = t0 + ttft_ms / 1000.0;
    if (!st->stream && st->status == 0) {
        /* the whole answer when its last chunk would have been sent */
        int k;
        for (k = 1; k < st->n_chunks; k++) {
            end += next_itl_s(st);
        }
    }
    schedule(st, end);
}

static void
answer_models(db_srv_t *srv, struct evhttp_request *req)
{
    json_t  *o;
    char    *s;

    o = json_pack("{s:s, s:[{s:s, s:s, s:I, s:s}]}", "object", "list",
        "data", "id", srv->conf.model, "object", "model",
        "created", (json_int_t) time(NULL), "owned_by", "dynamo-bench");
    s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    if (s == NULL) {
        send_error(req, 500, "out of memory");
    } else {
        send_json(req, 200, "OK", s);
    }
    free(s);
    json_decref(o);
}

static db_stream_t *
find_stream(db_srv_t *srv, struct evhttp_request *req)
{
    db_stream_t  *st;

    for (st = srv->active; st != NULL; st = st->next) {
        if (st->req == req) {
            return st;
        }
    }
    return NULL;
}

/*
 * Chunks are small writes spaced in time: without TCP_NODELAY, Nagle holds
 * each one until the previous is acknowledged, and the client's delayed
 * ACK turns that into tens of milliseconds of made-up latency. evhttp does
 * not set it; doing it per request is idempotent and cheap.
 */
static void
nodelay(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent       *bev;
    int                       one = 1;

    bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (bev != NULL && bufferevent_getfd(bev) >= 0) {
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one,
            sizeof(one));
    }
}

void
db_serve_on_request(struct evhttp_request *req, void *arg)
{
    db_srv_t               *srv = arg;
    double                  t0 = db_serve_now();
    const struct evhttp_uri *uri;
    const char             *path, *method;
    struct evbuffer        *in;
    size_t                  len;
    const char             *body;
    enum evhttp_cmd_type    cmd;
    int                     chat, is_completion;
    db_stream_t            *st;

    if (evhttp_request_get_uri(req) == NULL) {
        /* libevent calls back again on a failed request it handed us */
        st = find_stream(srv, req);
        if (st != NULL) {
            stream_done(st);
            evhttp_send_reply_end(req);
        } else {
            evhttp_send_error(req, 400, NULL);
        }
        return;
    }
    uri = evhttp_request_get_evhttp_uri(req);
    path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    if (path == NULL || *path == '\0') {
        path = "/";
    }
    cmd = evhttp_request_get_command(req);
    method = cmd == EVHTTP_REQ_GET ? "GET" : cmd == EVHTTP_REQ_POST ? "POST"
             : "OTHER";
    in = evhttp_request_get_input_buffer(req);
    len = evbuffer_get_length(in);
    body = len > 0 ? (const char *) evbuffer_pullup(in, -1) : "";

    nodelay(req);
    chat = strcmp(path, "/v1/chat/completions") == 0;
    is_completion = chat || strcmp(path, "/v1/completions") == 0;
    {
        const db_serve_entry_t *e = is_completion && cmd == EVHTTP_REQ_POST
                                    ? script_entry(srv) : NULL;
        log_request(srv, t0, method, path, body, len,
            e == NULL || e->prompt_log,
            is_completion && cmd == EVHTTP_REQ_POST);
    }
    srv->seq++;

    if (is_completion) {
        if (cmd != EVHTTP_REQ_POST) {
            evhttp_add_header(evhttp_request_get_output_headers(req),
                "Allow", "POST");
            send_error(req, 405, "use POST");
            return;
        }
        start_completion(srv, req, chat, body, len, t0);
        return;
    }
    if (strcmp(path, "/v1/models") == 0 || strcmp(path, "/health") == 0) {
        if (cmd != EVHTTP_REQ_GET) {
            evhttp_add_header(evhttp_request_get_output_headers(req),
                "Allow", "GET");
            send_error(req, 405, "use GET");
            return;
        }
        if (path[1] == 'h') {
            send_json(req, 200, "OK", "{\"status\":\"ok\"}");
        } else {
            answer_models(srv, req);
        }
        return;
    }
    send_error(req, 404, "not found: POST /v1/completions, "
        "/v1/chat/completions; GET /v1/models, /health");
}

