/*
 * vLLM's calculate_metrics (benchmarks/benchmark_serving.py) over our
 * per-request records. Only completed requests (ok, not warm-up) enter the
 * figures; times are kept in ms (vLLM computes in seconds and multiplies
 * the statistics by 1000, which is the same to rounding).
 *
 * Two places where our records can say more than vLLM's: an ok request
 * with no token-bearing chunk (ttft < 0) has no TTFT and no TPOT, and an
 * unknown output count (-1) counts as 0 tokens.
 */

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db_metrics.h"

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static const char *dataset_name(db_data_kind_t k)
{
    switch (k) {
    case DB_DATA_RANDOM:   return "random";
    case DB_DATA_TRACE:    return "trace";
    case DB_DATA_SESSIONS: return "sessions";
    }
    return "unknown";
}

/* A message for a failed request without one of its own. */
static const char *fail_message(const db_result_t *r, char *buf, size_t len)
{
    if (r->error && r->error[0])
        return r->error;
    if (r->status)
        snprintf(buf, len, "HTTP %d", r->status);
    else
        snprintf(buf, len, "no response");
    return buf;
}

typedef struct {
    const char *msg;
    size_t      first;          /* first occurrence, for a stable order */
} msg_ref_t;

static int cmp_msg(const void *a, const void *b)
{
    const msg_ref_t *x = a, *y = b;
    int c = strcmp(x->msg, y->msg);
    if (c)
        return c;
    return (x->first > y->first) - (x->first < y->first);
}

typedef struct {
    size_t  first;
    size_t  count;
    size_t  ref;                /* index into the sorted refs */
} msg_group_t;

static int cmp_group(const void *a, const void *b)
{
    const msg_group_t *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return (x->first > y->first) - (x->first < y->first);
}

/* Distinct error messages with counts, most frequent first (ties: the
 * earliest first seen). */
static int group_errors(const db_run_out_t *run, db_summary_t *s)
{
    size_t nf = 0;
    for (size_t i = 0; i < run->n; i++)
        if (!run->results[i].warmup && !run->results[i].ok)
            nf++;
    if (nf == 0)
        return 0;

    msg_ref_t *refs = calloc(nf, sizeof(*refs));
    char (*bufs)[32] = calloc(nf, sizeof(*bufs));
    msg_group_t *groups = calloc(nf, sizeof(*groups));
    int rc = -1;
    if (!refs || !bufs || !groups)
        goto out;
    size_t k = 0;
    for (size_t i = 0; i < run->n; i++) {
        const db_result_t *r = &run->results[i];
        if (r->warmup || r->ok)
            continue;
        refs[k].msg = fail_message(r, bufs[k], sizeof(bufs[k]));
        refs[k].first = k;
        k++;
    }
    qsort(refs, nf, sizeof(*refs), cmp_msg);

    size_t ng = 0;
    for (size_t i = 0; i < nf; i++) {
        if (i > 0 && strcmp(refs[i].msg, refs[i - 1].msg) == 0) {
            groups[ng - 1].count++;
            continue;
        }
        groups[ng].first = refs[i].first;  /* smallest: sorted by first */
        groups[ng].count = 1;
        groups[ng].ref = i;
        ng++;
    }
    qsort(groups, ng, sizeof(*groups), cmp_group);

    s->errors = calloc(ng, sizeof(*s->errors));
    if (!s->errors)
        goto out;
    for (size_t i = 0; i < ng; i++) {
        s->errors[i].message = strdup(refs[groups[i].ref].msg);
        if (!s->errors[i].message)
            goto out;
        s->errors[i].count = groups[i].count;
        s->n_errors = i + 1;
    }
    rc = 0;
out:
    free(refs);
    free(bufs);
    free(groups);
    return rc;
}

static int meets_slo(double value, double slo)
{
    return slo < 0 || value <= slo;     /* vLLM: slo >= value */
}

int db_metrics_compute(const db_opts_t *o, const db_run_out_t *run,
    db_summary_t *s)
{
    static const double def_pcts[] = { 50, 90, 99 };
    double *ttft = NULL, *tpot = NULL, *e2el = NULL, *itl = NULL;
    int rc = -1;

    memset(s, 0, sizeof(*s));
    s->label = dup_or_null(o->label);
    s->model = dup_or_null(o->model);
    s->base_url = dup_or_null(o->base_url);
    s->endpoint = dup_or_null(o->endpoint);
    s->dataset = strdup(dataset_name(o->dataset));
    s->backend = strdup(o->chat ? "openai-chat" : "openai");
    s->tokenizer = dup_or_null(o->tokenizer);
    s->date = malloc(32);
    if ((o->label && !s->label) || (o->model && !s->model) ||
        (o->base_url && !s->base_url) || (o->endpoint && !s->endpoint) ||
        (o->tokenizer && !s->tokenizer) || !s->dataset || !s->backend ||
        !s->date)
        goto out;
    s->num_prompts = o->num_prompts;
    time_t now = time(NULL);
    struct tm tm;
    if (!localtime_r(&now, &tm) ||
        strftime(s->date, 32, "%Y%m%d-%H%M%S", &tm) == 0)
        strcpy(s->date, "unknown");

    s->request_rate = o->request_rate;
    s->burstiness = o->burstiness;
    s->max_concurrency = run->max_concurrency ? run->max_concurrency
                                              : o->max_concurrency;
    s->duration_s = run->duration_s;
    s->peak_concurrency = run->peak_concurrency;
    s->pct_metrics = o->pct_metrics;
    s->known_metrics = DB_M_TTFT | DB_M_TPOT | DB_M_ITL | DB_M_E2EL;
    if (o->n_pcts) {
        s->n_pcts = o->n_pcts < DB_STATS_PCT_MAX ? o->n_pcts
                                                 : DB_STATS_PCT_MAX;
        memcpy(s->pcts, o->pcts, s->n_pcts * sizeof(double));
    } else {
        s->n_pcts = 3;
        memcpy(s->pcts, def_pcts, sizeof(def_pcts));
    }

    size_t n_itl = 0;
    for (size_t i = 0; i < run->n; i++) {
        const db_result_t *r = &run->results[i];
        if (!r->warmup && r->ok)
            n_itl += r->n_itl;
    }
    /* +1: never malloc(0) */
    ttft = malloc((run->n + 1) * sizeof(double));
    tpot = malloc((run->n + 1) * sizeof(double));
    e2el = malloc((run->n + 1) * sizeof(double));
    itl = malloc((n_itl + 1) * sizeof(double));
    if (!ttft || !tpot || !e2el || !itl)
        goto out;

    size_t n_ttft = 0, n_tpot = 0, n_e2el = 0, good = 0;
    int cached_seen = 0;
    n_itl = 0;
    s->total_cached = 0;
    for (size_t i = 0; i < run->n; i++) {
        const db_result_t *r = &run->results[i];
        if (r->warmup)
            continue;
        if (!r->ok) {
            s->failed++;
            continue;
        }
        s->completed++;
        int64_t out_tok = r->output_tokens > 0 ? r->output_tokens : 0;
        s->total_input += r->prompt_tokens > 0 ? r->prompt_tokens : 0;
        s->total_output += out_tok;
        if (r->cached_tokens >= 0) {
            cached_seen = 1;
            s->total_cached += r->cached_tokens;
        }

        double t_ms = r->ttft_s * 1000.;
        double e_ms = r->latency_s * 1000.;
        int has_ttft = r->ttft_s >= 0;
        /* vLLM: tpot is 0 for goodput when output_len <= 1 */
        double tp_ms = 0.;
        if (has_ttft) {
            ttft[n_ttft++] = t_ms;
            if (out_tok > 1) {
                tp_ms = (e_ms - t_ms) / (double) (out_tok - 1);
                tpot[n_tpot++] = tp_ms;
            }
        }
        e2el[n_e2el++] = e_ms;
        for (size_t j = 0; j < r->n_itl; j++)
            itl[n_itl++] = r->itl_s[j] * 1000.;

        if (o->goodput_ttft_ms >= 0 || o->goodput_tpot_ms >= 0 ||
            o->goodput_e2el_ms >= 0) {
            /* without a TTFT a request cannot meet a TTFT or TPOT SLO */
            int ok = meets_slo(e_ms, o->goodput_e2el_ms) &&
                (has_ttft ? meets_slo(t_ms, o->goodput_ttft_ms) &&
                            meets_slo(tp_ms, o->goodput_tpot_ms)
                          : o->goodput_ttft_ms < 0 &&
                            o->goodput_tpot_ms < 0);
            good += ok;
        }
    }
    if (!cached_seen)
        s->total_cached = -1;

    double d = run->duration_s;
    if (d > 0) {
        s->request_throughput = (double) s->completed / d;
        s->output_throughput = (double) s->total_output / d;
        s->total_token_throughput =
            (double) (s->total_input + s->total_output) / d;
    }
    if (o->goodput_ttft_ms >= 0 || o->goodput_tpot_ms >= 0 ||
        o->goodput_e2el_ms >= 0)
        s->request_goodput = d > 0 ? (double) good / d : 0.;
    else
        s->request_goodput = -1;

    db_dist_compute(ttft, n_ttft, s->pcts, s->n_pcts, &s->ttft_ms);
    db_dist_compute(tpot, n_tpot, s->pcts, s->n_pcts, &s->tpot_ms);
    db_dist_compute(itl, n_itl, s->pcts, s->n_pcts, &s->itl_ms);
    db_dist_compute(e2el, n_e2el, s->pcts, s->n_pcts, &s->e2el_ms);

    if (group_errors(run, s) < 0)
        goto out;
    rc = 0;
out:
    free(ttft);
    free(tpot);
    free(e2el);
    free(itl);
    if (rc < 0)
        db_summary_free(s);
    return rc;
}

void db_summary_free(db_summary_t *s)
{
    if (!s)
        return;
    free(s->label);
    free(s->model);
    free(s->base_url);
    free(s->endpoint);
    free(s->dataset);
    free(s->date);
    free(s->backend);
    free(s->tokenizer);
    for (size_t i = 0; i < s->n_errors; i++)
        free(s->errors[i].message);
    free(s->errors);
    memset(s, 0, sizeof(*s));
}
