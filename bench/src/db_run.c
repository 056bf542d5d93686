/*
 * The runner (db_run.h): one thread, one epoll loop (db_http.c), the
 * arrival process and the concurrency limit applied here.
 *
 * Scheduling follows vLLM's benchmark_serving: a request gets an arrival
 * time (cumulative gaps of db_arrival_next, or the trace's timestamp);
 * once that time has come it waits in a FIFO for a free slot
 * (max_concurrency), and its start (so its TTFT) is when it is handed to
 * the transport, not its arrival. Sessions: only a session's first turn
 * follows the arrival process; each later turn becomes due delay_s after
 * the previous turn completed, and carries the turns before it.
 *
 * Every time is taken on CLOCK_MONOTONIC; a piece of the response body
 * gets its time in libcurl's write callback, and every SSE line in that
 * piece shares it (as vLLM stamps each line when it reads it).
 */

#include "db_run.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <jansson.h>

#include "db_body.h"
#include "db_http.h"
#include "db_progress.h"
#include "db_sse.h"

#define ERRBODY_MAX     4096     /* error bodies kept for the message */
#define INTERRUPT_GRACE 2.0      /* s in-flight requests get after ^C */
#define POLL_MAX        0.1      /* s: longest sleep (progress, signals) */

static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

/* Sessions: the turns of one session id, in turn order. */
typedef struct {
    int64_t    id;
    size_t    *idx;      /* dataset indexes */
    size_t     n;
} group_t;

/* One running instance of a session (a cycle of --duration may run the
 * same session again). */
typedef struct sess_s {
    const group_t  *g;
    size_t          first;   /* position in g of this instance's lead */
    size_t          next;    /* position of the next turn to send */
    size_t         *res;     /* result index of each sent turn (by pos) */
    struct sess_s  *all;     /* every instance, for freeing */
} sess_t;

typedef struct {
    double     t;            /* due (absolute) */
    size_t     ds;
    sess_t    *sess;
} item_t;

typedef struct run_s run_t;

typedef struct {
    run_t     *run;
    size_t     res;          /* index into run->res */
    size_t     ds;
    sess_t    *sess;
    char      *body;
    db_sse_t   sse;
    double     start, last, now;
    size_t     n_data;       /* SSE data lines seen */
    char      *err;          /* first in-stream problem */
    char      *errbody;      /* non-200 body, first ERRBODY_MAX bytes */
    size_t     errbody_len;
} req_t;

struct run_s {
    const db_opts_t     *o;
    const db_dataset_t  *ds;
    db_http_t           *http;
    size_t               maxc;
    int                  warmup;        /* the phase running */

    db_result_t         *res;
    size_t               n_res, cap_res;

    group_t             *groups;
    size_t               n_groups;
    size_t              *group_of;      /* per dataset index; SIZE_MAX */
    size_t              *group_pos;     /* position within its group */
    size_t              *pairs;         /* storage of the groups' idx */
    sess_t              *sessions;      /* list of instances */

    item_t              *fifo;          /* arrived, waiting for a slot */
    size_t               f_head, f_len, f_cap;
    item_t              *heap;          /* session turns not yet due */
    size_t               h_len, h_cap;

    size_t               n_ok, n_fail;
    size_t               peak;
    double               first_start;   /* timed run: first send */
    double               last_end;      /* timed run: last completion */
    int                  stopping;      /* no new requests */
    int                  oom;
};

/* ---- small containers ---- */

/* v with room for element n (capacity *cap, doubled from first), or NULL
 * when out of memory (v is then left as it was). */
static void *grow(void *v, size_t n, size_t *cap, size_t elem, size_t first)
{
    if (n < *cap)
        return v;
    size_t c = *cap ? *cap * 2 : first;
    void *p = realloc(v, c * elem);
    if (p != NULL)
        *cap = c;
    return p;
}

static int fifo_push(run_t *R, item_t it)
{
    if (R->f_len == R->f_cap) {
        size_t cap = R->f_cap ? R->f_cap * 2 : 64;
        item_t *v = malloc(cap * sizeof(*v));
        if (v == NULL)
            return -1;
        for (size_t i = 0; i < R->f_len; i++)
            v[i] = R->fifo[(R->f_head + i) % R->f_cap];
        free(R->fifo);
        R->fifo = v;
        R->f_cap = cap;
        R->f_head = 0;
    }
    R->fifo[(R->f_head + R->f_len) % R->f_cap] = it;
    R->f_len++;
    return 0;
}

static item_t fifo_pop(run_t *R)
{
    item_t it = R->fifo[R->f_head];
    R->f_head = (R->f_head + 1) % R->f_cap;
    R->f_len--;
    return it;
}

static int heap_push(run_t *R, item_t it)
{
    item_t *v = grow(R->heap, R->h_len, &R->h_cap, sizeof(*v), 64);
    if (v == NULL)
        return -1;
    R->heap = v;
    size_t i = R->h_len++;
    while (i > 0 && R->heap[(i - 1) / 2].t > it.t) {
        R->heap[i] = R->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    R->heap[i] = it;
    return 0;
}

static item_t heap_pop(run_t *R)
{
    item_t top = R->heap[0], last = R->heap[--R->h_len];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= R->h_len)
            break;
        if (c + 1 < R->h_len && R->heap[c + 1].t < R->heap[c].t)
            c++;
        if (R->heap[c].t >= last.t)
            break;
        R->heap[i] = R->heap[c];
        i = c;
    }
    if (R->h_len > 0)
        R->heap[i] = last;
    return top;
}

/* A new zeroed result; SIZE_MAX when out of memory. */
static size_t res_new(run_t *R, size_t ds)
{
    db_result_t *v = grow(R->res, R->n_res, &R->cap_res, sizeof(*v), 256);
    if (v == NULL) {
        R->oom = 1;
        return SIZE_MAX;
    }
    R->res = v;
    db_result_t *r = &R->res[R->n_res];
    memset(r, 0, sizeof(*r));
    const db_request_t *q = &R->ds->v[ds];
    r->index = ds;
    r->session = q->session;
    r->turn = q->turn;
    r->warmup = R->warmup;
    r->ttft_s = -1;
    r->prompt_tokens = q->prompt_len;
    r->output_tokens = -1;
    r->cached_tokens = -1;
    return R->n_res++;
}

/* ---- sessions ---- */

typedef struct { int64_t s; int turn; size_t i; } key_t_;

static int key_cmp(const void *a, const void *b)
{
    const key_t_ *x = a, *y = b;
    if (x->s != y->s)
        return x->s < y->s ? -1 : 1;
    if (x->turn != y->turn)
        return x->turn < y->turn ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Groups the dataset's requests in [lo, hi) by session (turn order). */
static int groups_build(run_t *R, size_t lo, size_t hi)
{
    const db_dataset_t *ds = R->ds;
    for (size_t i = 0; i < ds->n; i++)
        R->group_of[i] = SIZE_MAX;
    free(R->groups);
    free(R->pairs);
    R->groups = NULL;
    R->pairs = NULL;
    R->n_groups = 0;

    size_t n = 0;
    for (size_t i = lo; i < hi; i++)
        n += ds->v[i].session >= 0;
    if (n == 0)
        return 0;
    key_t_ *k = malloc(n * sizeof(*k));
    R->pairs = malloc(n * sizeof(*R->pairs));
    R->groups = malloc(n * sizeof(*R->groups));
    if (k == NULL || R->pairs == NULL || R->groups == NULL) {
        free(k);
        return -1;
    }
    n = 0;
    for (size_t i = lo; i < hi; i++)
        if (ds->v[i].session >= 0)
            k[n++] = (key_t_){ ds->v[i].session, ds->v[i].turn, i };
    qsort(k, n, sizeof(*k), key_cmp);
    for (size_t j = 0; j < n; j++) {
        if (j == 0 || k[j].s != k[j - 1].s) {
            R->groups[R->n_groups++] = (group_t){ k[j].s, &R->pairs[j], 0 };
        }
        group_t *g = &R->groups[R->n_groups - 1];
        R->pairs[j] = k[j].i;
        R->group_of[k[j].i] = R->n_groups - 1;
        R->group_pos[k[j].i] = g->n++;
    }
    free(k);
    return 0;
}

/* Is dataset index i sent by the arrival process (not a later turn)? */
static int is_lead(const run_t *R, size_t i)
{
    return R->group_of[i] == SIZE_MAX || R->group_pos[i] == 0;
}

static sess_t *sess_new(run_t *R, size_t lead)
{
    const group_t *g = &R->groups[R->group_of[lead]];
    sess_t *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->res = calloc(g->n, sizeof(size_t))) == NULL) {
        free(s);
        R->oom = 1;
        return NULL;
    }
    s->g = g;
    s->first = s->next = R->group_pos[lead];
    s->all = R->sessions;
    R->sessions = s;
    return s;
}

/* The later turns of a session whose turn failed: recorded, never sent. */
static void sess_fail_rest(run_t *R, sess_t *s, size_t failed_pos,
    double now)
{
    const group_t *g = s->g;
    for (size_t p = failed_pos + 1; p < g->n; p++) {
        size_t k = res_new(R, g->idx[p]);
        if (k == SIZE_MAX)
            return;
        db_result_t *r = &R->res[k];
        char m[96];
        snprintf(m, sizeof(m), "session %lld: turn %d failed",
            (long long)g->id, R->ds->v[g->idx[failed_pos]].turn);
        r->error = strdup(m);
        r->start_s = now;
        R->n_fail++;
    }
    s->next = g->n;
}

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
    double *v = grow(r->itl_s, r->n_itl, &r->cap_itl, sizeof(*v), 64);
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

static int on_data(void *ctx, const char *buf, size_t n, long status,
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

static void on_done(void *ctx, int ok, int timed_out, long status,
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
                sess_fail_rest(R, s, pos, now);
        } else if (pos + 1 < s->g->n && !R->stopping) {
            size_t nx = s->g->idx[pos + 1];
            double d = R->ds->v[nx].delay_s;
            if (heap_push(R, (item_t){ now + (d > 0 ? d : 0), nx, s }) != 0)
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
static int issue(run_t *R, item_t it, char *err, size_t errlen)
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
    size_t k = res_new(R, it.ds);
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

/* ---- a phase: warm-ups, or the timed run ---- */

typedef struct {
    size_t     lo, hi;        /* dataset range */
    size_t     pos;           /* next dataset index to consider */
    int        cycles;        /* 1: once; 0: until the deadline */
    double     rate, burst;
    uint64_t   rng;
    double     t0;            /* phase start (absolute) */
    double     t_gen;         /* cumulative gap of the arrival process */
    double     ts_base;       /* the range's first trace timestamp: the
                                 phase starts there (warm-ups took what
                                 came before) */
    double     period;        /* trace: shift from one cycle to the next */
    int        scheduled;     /* the range's leads have trace timestamps */
    double     ts_offset;     /* trace timestamps: cycles' shift */
    double     deadline;      /* absolute; 0 none */
    int        done;          /* the arrival process is exhausted */
    item_t     next;          /* the next arrival (when !done) */
    int        warned;
} gen_t;

/* Finds the next arrival of the process (g->next); g->done at the end. */
static void gen_advance(run_t *R, gen_t *g, int first)
{
    for (;;) {
        if (g->pos >= g->hi) {
            if (g->cycles == 1 || g->lo == g->hi) {
                g->done = 1;
                return;
            }
            if (!g->warned) {
                fprintf(stderr, "dynamo-bench: the dataset ran out before "
                    "--duration; reusing it from its start\n");
                g->warned = 1;
            }
            g->pos = g->lo;
            g->ts_offset += g->period;
        }
        size_t i = g->pos++;
        if (!is_lead(R, i))
            continue;
        const db_request_t *q = &R->ds->v[i];
        double t;
        if (q->timestamp_s >= 0) {
            t = g->ts_offset + q->timestamp_s - g->ts_base;
        } else {
            if (!first)
                g->t_gen += db_arrival_next(g->rate, g->burst, &g->rng);
            t = g->t_gen;
        }
        g->next = (item_t){ g->t0 + t, i, NULL };
        return;
    }
}

/* The trace schedule of the leads in [lo, hi): where it starts, and the
 * period a --duration replay repeats it with (the span plus one mean gap,
 * so that a cycle's first request does not land on the previous cycle's
 * last). */
static void gen_schedule(const run_t *R, gen_t *g)
{
    double lo = INFINITY, hi = -INFINITY;
    size_t n = 0;
    for (size_t i = g->lo; i < g->hi; i++) {
        double t = R->ds->v[i].timestamp_s;
        if (!is_lead(R, i) || t < 0)
            continue;
        lo = t < lo ? t : lo;
        hi = t > hi ? t : hi;
        n++;
    }
    g->scheduled = n > 0;
    g->ts_base = n > 0 ? lo : 0;
    g->period = n > 1 ? (hi - lo) * (double)n / (double)(n - 1) : 0;
}

/*
 * --duration over an arrival process that takes no time (an infinite
 * --request-rate, or a trace whose requests share one timestamp) would
 * issue requests without bound until the deadline: without
 * --max-concurrency such a run keeps at most the dataset's requests in
 * flight (what "all at once" means without --duration), and says so.
 */
static void cap_unbounded(run_t *R, const gen_t *g)
{
    int instant = g->scheduled ? g->period == 0
                               : !(g->rate > 0) || isinf(g->rate);
    if (g->cycles != 0 || R->maxc != 0 || !instant)
        return;
    R->maxc = g->hi - g->lo;
    fprintf(stderr, "dynamo-bench: --duration with every request due at "
        "once and no --max-concurrency: at most %zu requests (the "
        "dataset's) in flight\n", R->maxc);
}

static int run_phase(run_t *R, gen_t *g, db_progress_t *pb, char *err,
    size_t errlen)
{
    double grace_end = -1;
    if (groups_build(R, g->lo, g->hi) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    gen_schedule(R, g);
    cap_unbounded(R, g);
    gen_advance(R, g, 1);

    for (;;) {
        double now = db_http_now();
        if (g_interrupted && grace_end < 0) {
            R->stopping = 1;
            grace_end = now + INTERRUPT_GRACE;
        }
        if (g->deadline > 0 && now >= g->deadline)
            R->stopping = 1;
        if (R->stopping) {
            g->done = 1;
            R->f_len = 0;
            R->h_len = 0;
        }
        if (grace_end > 0 && now >= grace_end)
            db_http_abort_all(R->http, "interrupted");
        if (R->oom) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }

        /* what is due joins the FIFO, in due order; bounded, so that
         * "all at once" with --duration cannot queue without end (what
         * is not pulled yet waits in the generator, in the same order) */
        size_t pulled = 0;
        while (!g->done && g->next.t <= now && pulled++ < 1024
               && (R->maxc == 0 || R->f_len < R->maxc)) {
            item_t it = g->next;
            if (R->group_of[it.ds] != SIZE_MAX
                && (it.sess = sess_new(R, it.ds)) == NULL)
                break;
            if (fifo_push(R, it) != 0) {
                R->oom = 1;
                break;
            }
            gen_advance(R, g, 0);
        }
        while (R->h_len > 0 && R->heap[0].t <= now)
            if (fifo_push(R, heap_pop(R)) != 0)
                R->oom = 1;
        while (R->f_len > 0
               && (R->maxc == 0 || db_http_running(R->http) < R->maxc))
            if (issue(R, fifo_pop(R), err, errlen) != 0)
                return -1;

        size_t inflight = db_http_running(R->http);
        db_progress_update(pb, now, R->n_ok, R->n_fail, inflight, 0);
        if (inflight == 0 && R->f_len == 0 && R->h_len == 0 && g->done)
            return 0;

        /* a due arrival that cannot join the full FIFO waits for a
         * completion, not for its time: no zero-timeout spinning */
        double wait = POLL_MAX;
        if (!g->done && (R->maxc == 0 || R->f_len < R->maxc)
            && g->next.t - now < wait)
            wait = g->next.t - now;
        if (R->h_len > 0 && R->heap[0].t - now < wait)
            wait = R->heap[0].t - now;
        if (g->deadline > 0 && !R->stopping && g->deadline - now < wait)
            wait = g->deadline - now;
        if (grace_end > 0 && grace_end - now < wait)
            wait = grace_end - now;
        if (db_http_poll(R->http, wait, err, errlen) != 0)
            return -1;
    }
}

/* ---- the run ---- */

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6
         + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

/* DYNAMO_BENCH_HTTP=perform: the poll + perform loop (db_http.h). */
static int use_perform(void)
{
    const char *v = getenv("DYNAMO_BENCH_HTTP");
    return v != NULL && strcmp(v, "perform") == 0;
}

/* DYNAMO_BENCH_CLIENT_STATS=1: the client's own cost on stderr (what it
 * adds to each piece's timestamp, and its CPU per piece received). */
static void print_client_stats(const db_http_t *h, size_t peak, double cpu,
    double wall)
{
    const db_http_stats_t *st = db_http_stats(h);
    size_t n = st->pieces ? st->pieces : 1;
    fprintf(stderr, "client: loop %s, peak streams %zu, pieces %zu, "
        "wake-ups %zu; wake-to-stamp us: mean %.1f p50 %.1f p99 %.1f "
        "max %.1f; cpu %.2f s over %.2f s = %.2f us/piece\n",
        use_perform() ? "poll+perform" : "epoll+socket_action",
        peak, st->pieces, st->wakeups, st->delay_sum_s / (double)n * 1e6,
        db_http_stats_pct(st, 50) * 1e6, db_http_stats_pct(st, 99) * 1e6,
        st->delay_max_s * 1e6, cpu, wall, cpu / (double)n * 1e6);
}

static char *make_url(const db_opts_t *o)
{
    const char *b = o->base_url ? o->base_url : "http://127.0.0.1:8000";
    const char *e = o->endpoint ? o->endpoint : "/v1/completions";
    size_t nb = strlen(b);
    while (nb > 0 && b[nb - 1] == '/')
        nb--;
    if (*e == '/')
        e++;
    size_t n = nb + strlen(e) + 2;
    char *u = malloc(n);
    if (u != NULL)
        snprintf(u, n, "%.*s/%s", (int)nb, b, e);
    return u;
}

/* Output tokens for responses without usage: the text retokenized, else
 * the token-bearing chunks. Done after the run: no CPU in the loop. */
static void count_outputs(run_t *R, const kvr_tokenizer_t *tok)
{
    kvr_ids_t ids = { 0 };
    for (size_t i = 0; i < R->n_res; i++) {
        db_result_t *r = &R->res[i];
        if (r->usage_seen && r->output_tokens >= 0)
            continue;
        if (tok != NULL && r->text_len > 0
            && kvr_tokenizer_encode(tok, r->text, r->text_len, 0,
                   &ids) == 0) {
            r->output_tokens = (int64_t)ids.n;
        } else {
            r->output_tokens = r->ttft_s >= 0 ? (int64_t)r->n_itl + 1 : 0;
        }
    }
    kvr_ids_free(&ids);
}

static void run_free(run_t *R)
{
    db_http_free(R->http);   /* aborts leftovers: needs R->res alive */
    R->http = NULL;
    while (R->sessions != NULL) {
        sess_t *s = R->sessions;
        R->sessions = s->all;
        free(s->res);
        free(s);
    }
    free(R->groups);
    free(R->pairs);
    free(R->group_of);
    free(R->group_pos);
    free(R->fifo);
    free(R->heap);
}

static db_http_t *http_open(const run_t *R, char *err, size_t errlen)
{
    const db_opts_t *o = R->o;
    char *url = make_url(o);
    if (url == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    size_t conns = R->maxc ? R->maxc : R->ds->n;
    db_http_conf_t hc = {
        .url = url,
        .headers = (const char *const *)o->headers,
        .n_headers = o->n_headers,
        .api_key = o->api_key,
        /* beyond ~11 days (or 0): no limit; also keeps the ms in a long */
        .timeout_ms = o->timeout_s > 0 && o->timeout_s < 1e6
                      ? (long)(o->timeout_s * 1e3) : 0,
        .max_conns = conns < 64 ? 64 : conns > 65536 ? 65536 : conns,
        .perform = use_perform(),
        .data_fn = on_data,
        .done_fn = on_done,
    };
    db_http_t *h = db_http_new(&hc, err, errlen);
    free(url);
    return h;
}

/* The warm-ups (all completed first), then the timed run, whose start is
 * *t0. SIGINT is caught meanwhile. */
static int run_phases(run_t *R, size_t nw, double *t0, char *err,
    size_t errlen)
{
    const db_opts_t *o = R->o;
    size_t n = R->ds->n;
    db_progress_t pb;
    int rc = 0;

    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;     /* no SA_RESTART: epoll_wait wakes */
    sigemptyset(&sa.sa_mask);
    g_interrupted = 0;
    sigaction(SIGINT, &sa, &old);

    *t0 = db_http_now();
    if (nw > 0) {
        R->warmup = 1;
        gen_t g = { .lo = 0, .hi = nw, .pos = 0, .cycles = 1, .rate = 0,
                    .burst = 1, .t0 = *t0 };
        db_progress_init(&pb, 0, 0, 0, g.t0);
        rc = run_phase(R, &g, &pb, err, errlen);
    }
    if (rc == 0 && !g_interrupted && nw < n) {
        R->warmup = 0;
        R->stopping = 0;
        *t0 = db_http_now();
        gen_t g = { .lo = nw, .hi = n, .pos = nw,
                    .cycles = o->duration_s > 0 ? 0 : 1,
                    .rate = o->request_rate, .burst = o->burstiness,
                    .rng = o->seed ^ 0x6a09e667f3bcc909ULL, .t0 = *t0,
                    .deadline = o->duration_s > 0 ? *t0 + o->duration_s : 0 };
        db_progress_init(&pb, o->progress,
            o->duration_s > 0 ? 0 : n - nw, o->duration_s, *t0);
        rc = run_phase(R, &g, &pb, err, errlen);
        db_progress_end(&pb, db_http_now(), R->n_ok, R->n_fail);
    }
    sigaction(SIGINT, &old, NULL);
    return rc;
}

int db_run(const db_opts_t *o, const db_dataset_t *ds,
    const kvr_tokenizer_t *tok, size_t max_concurrency, db_run_out_t *out,
    char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (ds->n == 0) {
        snprintf(err, errlen, "the dataset is empty");
        return -1;
    }

    run_t R;
    memset(&R, 0, sizeof(R));
    R.o = o;
    R.ds = ds;
    R.maxc = max_concurrency ? max_concurrency : o->max_concurrency;
    R.first_start = INFINITY;

    /* each stream holds a descriptor: say so before connections fail */
    long nofile = db_http_raise_nofile();
    size_t want = (R.maxc ? R.maxc : ds->n) + 32;
    if (nofile > 0 && want > (size_t)nofile)
        fprintf(stderr, "dynamo-bench: the open-file limit (%ld) is below "
            "the %zu streams this run may open; raise it (ulimit -n)\n",
            nofile, want - 32);
    R.group_of = malloc(ds->n * sizeof(size_t));
    R.group_pos = malloc(ds->n * sizeof(size_t));
    if (R.group_of == NULL || R.group_pos == NULL) {
        run_free(&R);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if ((R.http = http_open(&R, err, errlen)) == NULL) {
        run_free(&R);
        return -1;
    }

    size_t nw = o->num_warmups < ds->n ? o->num_warmups : ds->n;
    double cpu0 = cpu_s(), wall0 = db_http_now(), t0;
    int rc = run_phases(&R, nw, &t0, err, errlen);

    db_http_abort_all(R.http, "interrupted");
    if (getenv("DYNAMO_BENCH_CLIENT_STATS") != NULL)
        print_client_stats(R.http, R.peak, cpu_s() - cpu0,
            db_http_now() - wall0);
    db_http_free(R.http);
    R.http = NULL;
    count_outputs(&R, tok);

    /* times relative to the timed run's start */
    for (size_t i = 0; i < R.n_res; i++)
        R.res[i].start_s -= t0;
    out->duration_s = R.last_end > R.first_start
                    ? R.last_end - R.first_start : 0;
    out->results = R.res;
    out->n = R.n_res;
    out->peak_concurrency = R.peak;
    out->max_concurrency = R.maxc;
    R.res = NULL;
    run_free(&R);
    if (rc != 0) {
        db_run_out_free(out);
        return -1;
    }
    return 0;
}

int db_run_interrupted(void)
{
    return g_interrupted != 0;
}

void db_run_out_free(db_run_out_t *out)
{
    if (out == NULL)
        return;
    for (size_t i = 0; i < out->n; i++)
        db_result_free(&out->results[i]);
    free(out->results);
    out->results = NULL;
    out->n = 0;
}
