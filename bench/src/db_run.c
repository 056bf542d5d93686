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
 * The parts: db_run_sess.c (containers, sessions), db_run_stream.c (one
 * request's stream), this file (the phases and the run).
 */

#include "db_run.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "db_http.h"
#include "db_progress.h"
#include "db_run_int.h"

#define INTERRUPT_GRACE 2.0      /* s in-flight requests get after ^C */
#define POLL_MAX        0.1      /* s: longest sleep (progress, signals) */

static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    g_interrupted = 1;
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
        if (!db_run_is_lead(R, i))
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
        if (!db_run_is_lead(R, i) || t < 0)
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
    if (db_run_groups_build(R, g->lo, g->hi) != 0) {
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
                && (it.sess = db_run_sess_new(R, it.ds)) == NULL)
                break;
            if (db_run_fifo_push(R, it) != 0) {
                R->oom = 1;
                break;
            }
            gen_advance(R, g, 0);
        }
        while (R->h_len > 0 && R->heap[0].t <= now)
            if (db_run_fifo_push(R, db_run_heap_pop(R)) != 0)
                R->oom = 1;
        while (R->f_len > 0
               && (R->maxc == 0 || db_http_running(R->http) < R->maxc))
            if (db_run_issue(R, db_run_fifo_pop(R), err, errlen) != 0)
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
        .data_fn = db_run_on_data,
        .done_fn = db_run_on_done,
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
