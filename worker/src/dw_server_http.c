/*
 * dynamo-worker: HTTP handlers (evhttp): POST /v1/generate streams NDJSON
 * frames; POST /v1/reset_prefix_cache; GET /health and GET /metrics. A
 * client that closes its connection mid-stream cancels its request at
 * once: evhttp keeps reading while it writes a reply, so the close
 * callback runs on the EOF.
 */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "dw_log.h"
#include "dw_server_int.h"

void
dw_http_send_error(struct evhttp_request *req, int code, const char *reason,
    const char *type, const char *field, const char *msg)
{
    struct evbuffer  *eb;
    kvr_buf_t         b;

    memset(&b, 0, sizeof(b));
    eb = evbuffer_new();
    if (eb != NULL && dw_proto_encode_error(&b, type, field, msg) == 0) {
        evbuffer_add(eb, b.data, b.len);
        evbuffer_add(eb, "\n", 1);
    }
    evhttp_add_header(evhttp_request_get_output_headers(req),
                      "Content-Type", "application/json");
    evhttp_send_reply(req, code, reason, eb);
    if (eb != NULL) {
        evbuffer_free(eb);
    }
    kvr_buf_free(&b);
}

const char *
dw_http_body(struct evhttp_request *req, size_t *len)
{
    struct evbuffer  *in = evhttp_request_get_input_buffer(req);
    const char       *body;

    *len = evbuffer_get_length(in);
    body = (const char *) evbuffer_pullup(in, -1);
    return body != NULL ? body : "";
}

static void
http_send_buf(struct evhttp_request *req, const char *ctype, kvr_buf_t *b)
{
    struct evbuffer  *eb;

    eb = evbuffer_new();
    if (eb == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    evbuffer_add(eb, b->data, b->len);
    evhttp_add_header(evhttp_request_get_output_headers(req),
                      "Content-Type", ctype);
    evhttp_send_reply(req, HTTP_OK, "OK", eb);
    evbuffer_free(eb);
}

/* The client went away: cancel now; the finish output frees the slot. */
static void
http_conn_closed(struct evhttp_connection *conn, void *arg)
{
    dw_slot_t  *sl = arg;

    if (sl->gone) {
        return;
    }
    sl->gone = 1;
    sl->w->cnt.disconnects++;
    dw_log(DW_LOG_DEBUG, "request %s: client closed the connection, "
           "cancelling", sl->request_id[0] ? sl->request_id : "-");
    if (dw_disagg_cancel(sl->w, sl) == 0) {
        dw_engine_cancel(sl->w->engine, sl->id);
    }
}

static void
http_send_405(struct evhttp_request *req, const char *allow, const char *msg)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    dw_http_send_error(req, 405, "Method Not Allowed", "invalid_request",
                       NULL, msg);
}

static void
http_send_stopping(dw_worker_t *w, struct evhttp_request *req)
{
    w->cnt.rejected_503++;
    dw_http_send_error(req, 503, "Service Unavailable", "unavailable", NULL,
                       "the worker is shutting down");
}

/* The POST endpoints' common gate: 0, or the request was answered. */
static int
http_post_accepted(dw_worker_t *w, struct evhttp_request *req)
{
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        http_send_405(req, "POST", "POST only");
        return -1;
    }
    if (w->srv->stopping) {
        http_send_stopping(w, req);
        return -1;
    }
    return 0;
}

static void
http_generate(dw_worker_t *w, struct evhttp_request *req)
{
    dw_proto_req_t    pr;
    dw_proto_err_t    perr;
    dw_request_t      er;
    dw_slot_t        *sl;
    size_t            len;
    const char       *body;
    char              msg[256];
    int               rc;

    if (http_post_accepted(w, req) != 0) {
        return;
    }
    body = dw_http_body(req, &len);
    if (dw_proto_parse_request(body, len, w->conf.vocab_size, &pr, &perr)
        != 0)
    {
        w->cnt.rejected_400++;
        dw_http_send_error(req, 400, "Bad Request", "invalid_request",
                           perr.field, perr.msg);
        return;
    }
    if (w->conf.max_model_len > 0 && pr.n_tokens >= w->conf.max_model_len) {
        snprintf(msg, sizeof(msg), "token_ids: the prompt has %u tokens, "
                 "the context is %u (room for at least one more needed)",
                 pr.n_tokens, w->conf.max_model_len);
        dw_proto_req_free(&pr);
        w->cnt.rejected_400++;
        dw_http_send_error(req, 400, "Bad Request", "invalid_request",
                           "token_ids", msg);
        return;
    }
    if (w->live >= w->conf.max_pending) {
        dw_proto_req_free(&pr);
        w->cnt.rejected_503++;
        dw_http_send_error(req, 503, "Service Unavailable", "overloaded",
                           NULL, "too many requests in flight");
        return;
    }
    sl = dw_slot_alloc(w);
    if (sl == NULL) {
        dw_proto_req_free(&pr);
        dw_http_send_error(req, 500, "Internal Server Error", "internal",
                           NULL, "out of memory");
        return;
    }
    memset(&er, 0, sizeof(er));
    er.id = sl->id;
    er.prompt = pr.token_ids;
    er.n_prompt = pr.n_tokens;
    er.sp = pr.sp;
    if (dw_disagg_prepare(w, sl, &pr, body, len, &er) != 0) {
        dw_proto_req_free(&pr);
        dw_slot_free(w, sl);
        dw_http_send_error(req, 500, "Internal Server Error", "internal",
                           NULL, "out of memory");
        return;
    }
    rc = dw_engine_submit(w->engine, &er, msg, sizeof(msg));
    if (rc != 0) {
        pr.token_ids = er.prompt;       /* the engine may have moved it */
        dw_proto_req_free(&pr);
        dw_slot_free(w, sl);
        if (rc == DW_SUBMIT_STOPPED) {
            http_send_stopping(w, req);
        } else if (rc == DW_SUBMIT_NOMEM) {
            dw_http_send_error(req, 500, "Internal Server Error", "internal",
                               NULL, "out of memory");
        } else {
            /* PROTOCOL.md: the message starts with the field */
            memmove(msg + 11, msg, strnlen(msg, sizeof(msg) - 12) + 1);
            memcpy(msg, "token_ids: ", 11);
            msg[sizeof(msg) - 1] = '\0';
            w->cnt.rejected_400++;
            dw_http_send_error(req, 400, "Bad Request", "invalid_request",
                               "token_ids", msg);
        }
        return;
    }
    /* the engine owns the prompt now */
    pr.token_ids = NULL;
    w->cnt.generate_requests++;
    sl->req = req;
    sl->conn = evhttp_request_get_connection(req);
    sl->with_lp = pr.sp.logprobs >= 0;
    memcpy(sl->request_id, pr.request_id, sizeof(sl->request_id));
    evhttp_add_header(evhttp_request_get_output_headers(req),
                      "Content-Type", "application/x-ndjson");
    evhttp_send_reply_start(req, HTTP_OK, "OK");
    evhttp_connection_set_closecb(sl->conn, http_conn_closed, sl);
}

/*
 * The engine answers a reset with a DW_OUT_RESET output at its next step
 * boundary; the request waits in a slot (no close callback: a request
 * whose client left is detached by evhttp and freed by the reply).
 */
static void
http_reset_prefix_cache(dw_worker_t *w, struct evhttp_request *req)
{
    dw_slot_t  *sl;

    if (http_post_accepted(w, req) != 0) {
        return;
    }
    sl = dw_slot_alloc(w);
    if (sl == NULL) {
        dw_http_send_error(req, 500, "Internal Server Error", "internal",
                           NULL, "out of memory");
        return;
    }
    sl->reset = 1;
    sl->req = req;
    if (dw_engine_reset_prefix_cache(w->engine, sl->id) != 0) {
        dw_slot_free(w, sl);
        w->cnt.rejected_503++;
        dw_http_send_error(req, 503, "Service Unavailable", "unavailable",
                           NULL, "the engine is stopped");
    }
}

void
dw_http_reset_done(dw_worker_t *w, dw_slot_t *sl, const dw_output_t *out)
{
    kvr_buf_t  b;
    char       msg[160];

    if (!out->reset_ok) {
        snprintf(msg, sizeof(msg), "%u cached KV blocks are in use by "
                 "running requests; nothing was reset, retry when they "
                 "finish", out->blocks_in_use);
        dw_http_send_error(sl->req, 409, "Conflict", "conflict", NULL, msg);
    } else {
        dw_log(DW_LOG_INFO, "prefix cache reset: %u blocks dropped",
               out->blocks_dropped);
        memset(&b, 0, sizeof(b));
        snprintf(msg, sizeof(msg), "{\"reset\":true,\"blocks_dropped\":%u}\n",
                 out->blocks_dropped);
        if (kvr_buf_append_str(&b, msg) == 0) {
            http_send_buf(sl->req, "application/json", &b);
        } else {
            evhttp_send_error(sl->req, HTTP_INTERNAL, NULL);
        }
        kvr_buf_free(&b);
    }
    dw_slot_free(w, sl);
}

void
dw_http_generic(struct evhttp_request *req, void *arg)
{
    dw_worker_t  *w = arg;
    const char   *uri, *q;
    size_t        plen;
    kvr_buf_t     b;
    int           is_get;

    w->cnt.http_requests++;
    uri = evhttp_request_get_uri(req);
    q = strchr(uri, '?');
    plen = q != NULL ? (size_t) (q - uri) : strlen(uri);

    if (plen == 12 && memcmp(uri, "/v1/generate", 12) == 0) {
        http_generate(w, req);
        return;
    }
    if (plen == 11 && memcmp(uri, "/v1/prefill", 11) == 0) {
        if (http_post_accepted(w, req) == 0) {
            dw_prefill_http(w, req);
        }
        return;
    }
    if (plen == 22 && memcmp(uri, "/v1/reset_prefix_cache", 22) == 0) {
        http_reset_prefix_cache(w, req);
        return;
    }
    is_get = evhttp_request_get_command(req) == EVHTTP_REQ_GET
             || evhttp_request_get_command(req) == EVHTTP_REQ_HEAD;
    memset(&b, 0, sizeof(b));
    if (((plen == 7 && memcmp(uri, "/health", 7) == 0)
         || (plen == 8 && memcmp(uri, "/metrics", 8) == 0)) && !is_get)
    {
        http_send_405(req, "GET, HEAD", "GET only");
    } else if (plen == 7 && memcmp(uri, "/health", 7) == 0) {
        if (dw_metrics_health(w, &b) == 0) {
            http_send_buf(req, "application/json", &b);
        } else {
            evhttp_send_error(req, HTTP_INTERNAL, NULL);
        }
    } else if (plen == 8 && memcmp(uri, "/metrics", 8) == 0) {
        if (dw_metrics_text(w, &b) == 0) {
            http_send_buf(req, "text/plain; version=0.0.4", &b);
        } else {
            evhttp_send_error(req, HTTP_INTERNAL, NULL);
        }
    } else {
        dw_http_send_error(req, 404, "Not Found", "not_found", NULL,
                           "no such endpoint (POST /v1/generate, "
                           "POST /v1/prefill, "
                           "POST /v1/reset_prefix_cache, GET /health, "
                           "GET /metrics)");
    }
    kvr_buf_free(&b);
}
