/*
 * Reads back a summary written by db_report_json, and vLLM's own result
 * files (benchmark_serving --save-result) too, so that `compare` can set
 * ours beside theirs. Strict where it matters: every key that is present
 * must have its type, the throughput figures must be there, and a metric
 * with a mean must have its median, std and every percentile; the message
 * names the key.
 *
 * Keys:
 *   required   duration, completed, total_input_tokens, total_output_tokens,
 *              request_throughput, output_throughput, total_token_throughput
 *   optional   failed, date, label, model_id, base_url, endpoint,
 *              dataset_name, backend, tokenizer_id, num_prompts,
 *              request_rate (number or "inf"), burstiness,
 *              max_concurrency, request_goodput, total_cached_tokens,
 *              peak_concurrency (or vLLM's max_concurrent_requests),
 *              percentiles, percentile_metrics, errors
 *   metrics    mean_X_ms, median_X_ms, std_X_ms, pP_X_ms for X in ttft,
 *              tpot, itl, e2el; the percentiles are "percentiles" or, in
 *              vLLM's files, those found in the pP_ttft_ms.. keys
 * A float may be null (we write non-finite values so): it reads as NaN.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "db_report.h"
#include "db_report_int.h"

typedef struct {
    json_t     *o;
    char       *err;
    size_t      errlen;
} ld_t;

static int fail(ld_t *l, const char *key, const char *what)
{
    snprintf(l->err, l->errlen, "key \"%s\": %s", key, what);
    return -1;
}

/* 0 found, 1 absent, -1 bad */
static int get_num(ld_t *l, const char *key, int required, double *v)
{
    json_t *j = json_object_get(l->o, key);
    if (!j) {
        if (required)
            return fail(l, key, "missing");
        return 1;
    }
    if (json_is_null(j)) {
        *v = NAN;
        return 0;
    }
    if (!json_is_number(j))
        return fail(l, key, "expected a number");
    *v = json_number_value(j);
    return 0;
}

static int get_count(ld_t *l, const char *key, int required, int nullable,
    int64_t *v)
{
    json_t *j = json_object_get(l->o, key);
    if (!j) {
        if (required)
            return fail(l, key, "missing");
        return 1;
    }
    if (nullable && json_is_null(j))
        return 1;
    if (!json_is_integer(j) || json_integer_value(j) < 0)
        return fail(l, key, nullable
            ? "expected a non-negative integer or null"
            : "expected a non-negative integer");
    *v = json_integer_value(j);
    return 0;
}

static int get_str(ld_t *l, const char *key, char **v)
{
    json_t *j = json_object_get(l->o, key);
    if (!j || json_is_null(j))
        return 0;
    if (!json_is_string(j))
        return fail(l, key, "expected a string or null");
    *v = strdup(json_string_value(j));
    if (!*v)
        return fail(l, key, "out of memory");
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

static int add_pct(ld_t *l, db_summary_t *s, double p, const char *key)
{
    for (size_t i = 0; i < s->n_pcts; i++)
        if (s->pcts[i] == p)
            return 0;
    if (s->n_pcts == DB_STATS_PCT_MAX)
        return fail(l, key, "more than 16 percentiles");
    s->pcts[s->n_pcts++] = p;
    return 0;
}

static int load_pcts(ld_t *l, db_summary_t *s)
{
    json_t *a = json_object_get(l->o, "percentiles");
    if (a) {
        size_t i;
        json_t *v;
        if (!json_is_array(a))
            return fail(l, "percentiles", "expected an array of numbers");
        json_array_foreach(a, i, v) {
            if (!json_is_number(v) || !(json_number_value(v) >= 0) ||
                json_number_value(v) > 100)
                return fail(l, "percentiles",
                    "expected numbers between 0 and 100");
            if (add_pct(l, s, json_number_value(v), "percentiles") < 0)
                return -1;
        }
        return 0;
    }
    /* vLLM's files: p99_ttft_ms, p99.9_itl_ms, ... */
    const char *key;
    json_t *v;
    json_object_foreach(l->o, key, v) {
        size_t n = strlen(key);
        if (key[0] != 'p' || n < 4 || strcmp(key + n - 3, "_ms") != 0)
            continue;
        char *end;
        double p = strtod(key + 1, &end);
        if (end == key + 1 || *end != '_' || !(p >= 0) || p > 100)
            continue;
        for (int i = 0; i < DB_N_METRICS; i++) {
            size_t kl = strlen(db_metric_desc[i].key);
            if ((size_t) (key + n - 3 - (end + 1)) == kl &&
                strncmp(end + 1, db_metric_desc[i].key, kl) == 0) {
                if (add_pct(l, s, p, key) < 0)
                    return -1;
                break;
            }
        }
    }
    qsort(s->pcts, s->n_pcts, sizeof(double), cmp_double);
    return 0;
}

static int load_metric(ld_t *l, db_summary_t *s, int i, db_dist_t *d)
{
    const char *m = db_metric_desc[i].key;
    char key[64], pw[32];
    double v;

    snprintf(key, sizeof(key), "mean_%s_ms", m);
    int rc = get_num(l, key, 0, &d->mean);
    if (rc)
        return rc < 0 ? -1 : 0;
    s->known_metrics |= db_metric_desc[i].bit;
    snprintf(key, sizeof(key), "median_%s_ms", m);
    if (get_num(l, key, 1, &d->median) < 0)
        return -1;
    snprintf(key, sizeof(key), "std_%s_ms", m);
    if (get_num(l, key, 1, &d->std) < 0)
        return -1;
    d->n_pct = s->n_pcts;
    for (size_t k = 0; k < s->n_pcts; k++) {
        db_pct_word(s->pcts[k], pw, sizeof(pw));
        snprintf(key, sizeof(key), "p%s_%s_ms", pw, m);
        if (get_num(l, key, 1, &v) < 0)
            return -1;
        d->pct[k] = v;
    }
    /* n, min and max are not in the file */
    d->min = d->max = NAN;
    return 0;
}

static int load_errors(ld_t *l, db_summary_t *s)
{
    json_t *a = json_object_get(l->o, "errors");
    size_t i;
    json_t *e;
    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a))
        return fail(l, "errors", "expected an array");
    /* vLLM's files may hold "errors": ["", null, "msg", ...], one per
     * request: not a summary, and not needed to compare; skipped. */
    json_t *first = json_array_get(a, 0);
    if (!first || json_is_string(first) || json_is_null(first))
        return 0;
    s->errors = calloc(json_array_size(a), sizeof(*s->errors));
    if (!s->errors)
        return fail(l, "errors", "out of memory");
    json_array_foreach(a, i, e) {
        json_t *m = json_object_get(e, "message");
        json_t *c = json_object_get(e, "count");
        if (!json_is_object(e) || !json_is_string(m) ||
            !json_is_integer(c) || json_integer_value(c) < 0)
            return fail(l, "errors",
                "expected objects {\"message\": string, \"count\": n}");
        s->errors[i].message = strdup(json_string_value(m));
        if (!s->errors[i].message)
            return fail(l, "errors", "out of memory");
        s->errors[i].count = (size_t) json_integer_value(c);
        s->n_errors = i + 1;
    }
    return 0;
}

static int load(ld_t *l, db_summary_t *s)
{
    int64_t v;
    int rc;

    if (get_num(l, "duration", 1, &s->duration_s) < 0 ||
        get_count(l, "completed", 1, 0, &v) < 0)
        return -1;
    s->completed = (size_t) v;
    if ((rc = get_count(l, "failed", 0, 0, &v)) < 0)
        return -1;
    s->failed = rc == 0 ? (size_t) v : 0;
    if (get_count(l, "total_input_tokens", 1, 0, &s->total_input) < 0 ||
        get_count(l, "total_output_tokens", 1, 0, &s->total_output) < 0 ||
        get_num(l, "request_throughput", 1, &s->request_throughput) < 0 ||
        get_num(l, "output_throughput", 1, &s->output_throughput) < 0 ||
        get_num(l, "total_token_throughput", 1,
            &s->total_token_throughput) < 0)
        return -1;

    if (get_str(l, "date", &s->date) < 0 ||
        get_str(l, "label", &s->label) < 0 ||
        get_str(l, "model_id", &s->model) < 0 ||
        get_str(l, "base_url", &s->base_url) < 0 ||
        get_str(l, "endpoint", &s->endpoint) < 0 ||
        get_str(l, "dataset_name", &s->dataset) < 0 ||
        get_str(l, "backend", &s->backend) < 0 ||
        get_str(l, "tokenizer_id", &s->tokenizer) < 0)
        return -1;
    if ((rc = get_count(l, "num_prompts", 0, 0, &v)) < 0)
        return -1;
    s->num_prompts = rc == 0 ? (size_t) v : 0;

    json_t *j = json_object_get(l->o, "request_rate");
    if (j && json_is_string(j)) {
        if (strcmp(json_string_value(j), "inf") != 0)
            return fail(l, "request_rate", "expected a number or \"inf\"");
        s->request_rate = 0;
    } else if (j && !json_is_null(j)) {
        if (!json_is_number(j) || !(json_number_value(j) >= 0))
            return fail(l, "request_rate", "expected a number or \"inf\"");
        s->request_rate = json_number_value(j);
    }
    s->burstiness = 1;
    if (get_num(l, "burstiness", 0, &s->burstiness) < 0)
        return -1;
    if ((rc = get_count(l, "max_concurrency", 0, 1, &v)) < 0)
        return -1;
    s->max_concurrency = rc == 0 ? (size_t) v : 0;

    s->request_goodput = -1;
    j = json_object_get(l->o, "request_goodput");
    if (j && !json_is_null(j)) {
        if (!json_is_number(j) || !(json_number_value(j) >= 0))
            return fail(l, "request_goodput",
                "expected a non-negative number or null");
        s->request_goodput = json_number_value(j);
    }
    s->total_cached = -1;
    if (get_count(l, "total_cached_tokens", 0, 1, &s->total_cached) < 0)
        return -1;
    if ((rc = get_count(l, "peak_concurrency", 0, 0, &v)) < 0)
        return -1;
    s->peak_concurrency = rc == 0 ? (size_t) v : 0;
    /* vLLM's name for it (newer versions) */
    j = json_object_get(l->o, "max_concurrent_requests");
    if (rc == 1 && j) {
        double d = json_number_value(j);
        if (!json_is_number(j) || !(d >= 0) || d > 1e15)
            return fail(l, "max_concurrent_requests",
                "expected a non-negative number");
        s->peak_concurrency = (size_t) d;
    }

    if (load_pcts(l, s) < 0)
        return -1;
    if (load_metric(l, s, 0, &s->ttft_ms) < 0 ||
        load_metric(l, s, 1, &s->tpot_ms) < 0 ||
        load_metric(l, s, 2, &s->itl_ms) < 0 ||
        load_metric(l, s, 3, &s->e2el_ms) < 0)
        return -1;

    j = json_object_get(l->o, "percentile_metrics");
    if (j) {
        if (!json_is_string(j))
            return fail(l, "percentile_metrics", "expected a string");
        const char *p = json_string_value(j);
        while (*p) {
            size_t n = strcspn(p, ",");
            int found = 0;
            for (int i = 0; i < DB_N_METRICS; i++)
                if (strlen(db_metric_desc[i].key) == n &&
                    strncmp(p, db_metric_desc[i].key, n) == 0) {
                    s->pct_metrics |= db_metric_desc[i].bit;
                    found = 1;
                }
            if (!found && n)
                return fail(l, "percentile_metrics",
                    "expected names among ttft,tpot,itl,e2el");
            p += n;
            if (*p == ',')
                p++;
        }
        s->pct_metrics &= s->known_metrics;
    } else {
        s->pct_metrics = s->known_metrics;
    }
    return load_errors(l, s);
}

int db_summary_from_json(const json_t *o, db_summary_t *s, char *err,
    size_t errlen)
{
    ld_t l = { (json_t *) o, err, errlen };

    memset(s, 0, sizeof(*s));
    if (!json_is_object(o)) {
        snprintf(err, errlen, "not a JSON object");
        return -1;
    }
    int rc = load(&l, s);
    if (rc < 0)
        db_summary_free(s);
    return rc;
}

json_t *db_json_parse(const char *json, size_t len, char *err,
    size_t errlen)
{
    json_error_t je;
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        snprintf(err, errlen, "line %d column %d: %s", je.line, je.column,
            je.text);
    return o;
}

int db_summary_load(const char *json, size_t len, db_summary_t *s,
    char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    json_t *o = db_json_parse(json, len, err, errlen);
    if (!o)
        return -1;
    int rc = db_summary_from_json(o, s, err, errlen);
    json_decref(o);
    return rc;
}
