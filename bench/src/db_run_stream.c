/*
 * One request's stream (db_run_int.h): its body, its hand-over to the
 * transport, then its SSE lines, token timestamps, inter-token latencies,
 * text and errors, and its completion (which schedules a session's next
 * turn).
 *
 * Every time is taken on CLOCK_MONOTONIC; a piece of the response body
 * gets its time in libcurl's write callback, and every SSE line in that
 * piece shares it (as vLLM stamps each line when it reads it).
 */

#include "db_run_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "db_body.h"

/* ---- one request's stream ---- */

static void req_free(req_t *q)
{
    if (q == NULL)
        return;
    free(q->body);
    free(q->err);
    free(q->errbody);
    db_sse_free(&q->sse);
    free(q);
}

static void set_err(req_t *q, const char *m)
{
    if (q->err == NULL)
        q->err = strdup(m);
}

static int push_itl(db_result_t *r, double gap)
{
    double *v = db_run_grow(r->itl_s, r->n_itl, &r->cap_itl, sizeof(*v), 64);
    if (v == NULL)
        return -1;
    r->itl_s = v;
    r->itl_s[r->n_itl++] = gap;
    return 0;
}

/* Generated text, grown geometrically (capacity kept in a NUL-padded
 * power of two: the size is implied by text_len). */
static int push_text(db_result_t *r, const char *s, size_t n)
{
    size_t need = r->text_len + n + 1, cap = 64;
    while (cap < r->text_len + 1)
        cap *= 2;
    if (r->text == NULL || need > cap) {
        while (cap < need)
            cap *= 2;
        char *t = realloc(r->text, cap);
        if (t == NULL)
            return -1;
        r->text = t;
    }
    memcpy(r->text + r->text_len, s, n);
    r->text_len += n;
    r->text[r->text_len] = '\0';
    return 0;
}

static int on_line(void *ctx, const char *data, size_t len)
{
    req_t *q = ctx;
    db_result_t *r = &q->run->res[q->res];
    db_chunk_t c;
    char e[160];

    q->n_data++;
    if (db_chunk_parse(data, len, &c, e, sizeof(e)) != 0) {
        set_err(q, e);
        return 1;
    }
    if (c.error != NULL)
        set_err(q, c.error);
    if (c.text_len > 0) {
        if (r->ttft_s < 0)
            r->ttft_s = q->now - q->start;
        else if (push_itl(r, q->now - q->last) != 0)
            set_err(q, "out of memory");
        q->last = q->now;
        if (push_text(r, c.text, c.text_len) != 0)
            set_err(q, "out of memory");
    }
    if (c.has_usage) {
        r->usage_seen = 1;
        if (c.prompt_tokens >= 0)
            r->prompt_tokens = c.prompt_tokens;
        if (c.completion_tokens >= 0)
            r->output_tokens = c.completion_tokens;
        if (c.cached_tokens >= 0)
            r->cached_tokens = c.cached_tokens;
    }
    db_chunk_free(&c);
    return 0;
}

int db_run_on_data(void *ctx, const char *buf, size_t n, long status,
    double now)
{
    req_t *q = ctx;
    if (status != 200) {
        size_t k = ERRBODY_MAX - q->errbody_len;
        if (k > n)
            k = n;
        if (k == 0)
            return 0;
        if (q->errbody == NULL && (q->errbody = malloc(ERRBODY_MAX)) == NULL)
            return 0;
        memcpy(q->errbody + q->errbody_len, buf, k);
        q->errbody_len += k;
        return 0;
    }
    q->now = now;
    int rc = db_sse_feed(&q->sse, buf, n, on_line, q);
    if (rc < 0) {
        char m[96];
        snprintf(m, sizeof(m), "SSE line longer than %zu bytes",
            q->sse.max);
        set_err(q, m);
    }
    return rc != 0;
}

/* "HTTP 400: <error.message>" from an error body. */
static char *http_error(long status, const char *b, size_t n)
{
    char m[320];
    const char *msg = NULL;
    json_t *j = b ? json_loadb(b, n, 0, NULL) : NULL;
    if (json_is_object(j)) {
        json_t *e = json_object_get(j, "error");
        json_t *v = json_is_object(e) ? json_object_get(e, "message") : e;
        if (!json_is_string(v))
            v = json_object_get(j, "message");
        if (!json_is_string(v))
            v = json_object_get(j, "detail");
        if (json_is_string(v))
            msg = json_string_value(v);
    }
    if (msg != NULL) {
        snprintf(m, sizeof(m), "HTTP %ld: %.*s", status, 280, msg);
    } else {
        int k = (int)(n > 200 ? 200 : n);
        while (k > 0 && (b[k - 1] == '\n' || b[k - 1] == '\r'))
            k--;
        snprintf(m, sizeof(m), "HTTP %ld: %.*s", status, k, b ? b : "");
    }
    json_decref(j);
    return strdup(m);
}

void db_run_on_done(void *ctx, int ok, int timed_out, long status,
    const char *msg, double now)
{
    req_t *q = ctx;
    run_t *R = q->run;
    db_result_t *r = &R->res[q->res];

    r->status = (int)status;
    r->latency_s = now - q->start;
    if (!R->warmup && now > R->last_end)
        R->last_end = now;
    /* a 200 without a single data line is not a stream (a server that
     * ignored "stream": true): no token was measured, so not a success */
    if (ok && status == 200 && q->err == NULL && q->n_data == 0)
        set_err(q, "HTTP 200 without SSE data lines (not a stream)");
    if (ok && status == 200 && q->err == NULL) {
        r->ok = 1;
        R->n_ok++;
    } else {
        char m[64];
        if (status != 0 && status != 200) {
            r->error = http_error(status, q->errbody, q->errbody_len);
        } else if (q->err != NULL) {
            r->error = q->err;
            q->err = NULL;
        } else if (timed_out) {
            snprintf(m, sizeof(m), "timeout after %g s", R->o->timeout_s);
            r->error = strdup(m);
        } else {
            r->error = strdup(msg && *msg ? msg : "transfer failed");
        }
        R->n_fail++;
    }

    sess_t *s = q->sess;
    if (s != NULL) {
        size_t pos = R->group_pos[q->ds];
        if (!r->ok) {
            if (!R->stopping)
                db_run_sess_fail_rest(R, s, pos, now);
        } else if (pos + 1 < s->g->n && !R->stopping) {
            size_t nx = s->g->idx[pos + 1];
            double d = R->ds->v[nx].delay_s;
            if (db_run_heap_push(R,
                    (item_t){ now + (d > 0 ? d : 0), nx, s }) != 0)
                R->oom = 1;
        }
    }
    req_free(q);
}

/* The body of a session turn (with the turns before it when the request
 * asks for them), or of a lone request; NULL with err set. */
static char *turn_body(run_t *R, const item_t *it, size_t *len, char *err,
    size_t errlen)
{
    const db_request_t *rq = &R->ds->v[it->ds];
    const sess_t *s = it->sess;
    db_body_turn_t *hist = NULL;
    size_t n_hist = 0;

    if (s != NULL && rq->with_history) {
        size_t pos = R->group_pos[it->ds];
        n_hist = pos - s->first;
        if (n_hist > 0 && (hist = malloc(n_hist * sizeof(*hist))) == NULL) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        for (size_t p = s->first; p < pos; p++) {
            const db_result_t *pr = &R->res[s->res[p]];
            hist[p - s->first] = (db_body_turn_t){
                R->ds->v[s->g->idx[p]].prompt, pr->text, pr->text_len };
        }
    }
    char *body = db_body_build(R->o, rq, hist, n_hist, len, err, errlen);
    free(hist);
    return body;
}

/* Hands dataset request ds to the transport. */
int db_run_issue(run_t *R, item_t it, char *err, size_t errlen)
{
    sess_t *s = it.sess;
    req_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        goto oom;
    size_t len;
    if ((q->body = turn_body(R, &it, &len, err, errlen)) == NULL) {
        req_free(q);
        return -1;
    }
    size_t k = db_run_res_new(R, it.ds);
    if (k == SIZE_MAX) {
        req_free(q);
        goto oom;
    }
    q->run = R;
    q->res = k;
    q->ds = it.ds;
    q->sess = s;
    db_sse_init(&q->sse);
    if (s != NULL)
        s->res[R->group_pos[it.ds]] = k;

    q->start = db_http_now();
    R->res[k].start_s = q->start;
    if (!R->warmup && q->start < R->first_start)
        R->first_start = q->start;
    if (db_http_start(R->http, q->body, len, q, err, errlen) != 0) {
        req_free(q);
        R->n_res--;
        return -1;
    }
    size_t inflight = db_http_running(R->http);
    if (!R->warmup && inflight > R->peak)
        R->peak = inflight;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}
