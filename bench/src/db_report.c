/*
 * A run's output: vLLM's "Serving Benchmark Result" block, the summary as
 * JSON and CSV, per-request JSONL.
 *
 * The block reproduces vLLM's Python formatting byte for byte: labels
 * "{:<40}", integers "{:<10}", floats "{:<10.2f}" (so value columns carry
 * trailing spaces, as vLLM's do), titles centred with Python's '^' (the
 * odd pad character goes to the right).
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "db_report.h"
#include "db_report_int.h"

const db_metric_desc_t db_metric_desc[DB_N_METRICS] = {
    { DB_M_TTFT, "ttft", "TTFT", "Time to First Token" },
    { DB_M_TPOT, "tpot", "TPOT", "Time per Output Token (excl. 1st token)" },
    { DB_M_ITL,  "itl",  "ITL",  "Inter-token Latency" },
    { DB_M_E2EL, "e2el", "E2EL", "End-to-end Latency" },
};

const db_dist_t *db_summary_dist(const db_summary_t *s, int i)
{
    switch (i) {
    case 0: return &s->ttft_ms;
    case 1: return &s->tpot_ms;
    case 2: return &s->itl_ms;
    default: return &s->e2el_ms;
    }
}

void db_fmt_double(double v, char *buf, size_t len)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

void db_pct_word(double p, char *buf, size_t len)
{
    if (isfinite(p) && p == floor(p) && fabs(p) < 1e15)
        snprintf(buf, len, "%lld", (long long) p);
    else
        db_fmt_double(p, buf, len);
}

int db_summary_pct(const db_summary_t *s, const db_dist_t *d, double p,
    double *v)
{
    for (size_t i = 0; i < s->n_pcts && i < d->n_pct; i++)
        if (s->pcts[i] == p) {
            *v = d->pct[i];
            return 0;
        }
    return -1;
}

double db_tail_pct(const db_summary_t *s)
{
    double best = -1;
    for (size_t i = 0; i < s->n_pcts; i++) {
        if (s->pcts[i] == 99)
            return 99;
        if (s->pcts[i] > best)
            best = s->pcts[i];
    }
    return best;
}

/* ------------------------------------------------------------------ */
/* the block */

static void centred(FILE *out, const char *title, char fill)
{
    size_t n = strlen(title), w = 50;
    size_t pad = n < w ? w - n : 0, left = pad / 2;
    for (size_t i = 0; i < left; i++)
        fputc(fill, out);
    fputs(title, out);
    for (size_t i = 0; i < pad - left; i++)
        fputc(fill, out);
    fputc('\n', out);
}

static void line_int(FILE *out, const char *label, long long v)
{
    fprintf(out, "%-40s %-10lld\n", label, v);
}

static void line_f(FILE *out, const char *label, double v)
{
    fprintf(out, "%-40s %-10.2f\n", label, v);
}

/* One error message on one line, at most 200 bytes, control bytes as
 * spaces. */
static void print_message(FILE *out, const char *m)
{
    size_t i;
    for (i = 0; m[i] && i < 200; i++)
        fputc((unsigned char) m[i] < 0x20 ? ' ' : m[i], out);
    if (m[i])
        fputs("...", out);
}

void db_report_print(const db_summary_t *s, FILE *out)
{
    char label[96], pw[32];

    centred(out, " Serving Benchmark Result ", '=');
    line_int(out, "Successful requests:", (long long) s->completed);
    line_int(out, "Failed requests:", (long long) s->failed);
    if (s->max_concurrency)
        line_int(out, "Maximum request concurrency:",
            (long long) s->max_concurrency);
    if (s->request_rate > 0 && isfinite(s->request_rate))
        line_f(out, "Request rate configured (RPS):", s->request_rate);
    line_f(out, "Benchmark duration (s):", s->duration_s);
    line_int(out, "Total input tokens:", (long long) s->total_input);
    line_int(out, "Total generated tokens:", (long long) s->total_output);
    line_f(out, "Request throughput (req/s):", s->request_throughput);
    if (s->request_goodput >= 0)
        line_f(out, "Request goodput (req/s):", s->request_goodput);
    line_f(out, "Output token throughput (tok/s):", s->output_throughput);
    line_f(out, "Total Token throughput (tok/s):",
        s->total_token_throughput);

    for (int i = 0; i < DB_N_METRICS; i++) {
        const db_metric_desc_t *m = &db_metric_desc[i];
        const db_dist_t *d = db_summary_dist(s, i);
        if (!(s->pct_metrics & m->bit) || !(s->known_metrics & m->bit))
            continue;
        centred(out, m->header, '-');
        snprintf(label, sizeof(label), "Mean %s (ms):", m->name);
        line_f(out, label, d->mean);
        snprintf(label, sizeof(label), "Median %s (ms):", m->name);
        line_f(out, label, d->median);
        for (size_t k = 0; k < s->n_pcts && k < d->n_pct; k++) {
            db_pct_word(s->pcts[k], pw, sizeof(pw));
            snprintf(label, sizeof(label), "P%s %s (ms):", pw, m->name);
            line_f(out, label, d->pct[k]);
        }
    }
    if (s->total_cached >= 0)
        line_int(out, "Cached prompt tokens:", (long long) s->total_cached);
    line_int(out, "Peak concurrent requests:",
        (long long) s->peak_concurrency);
    for (int i = 0; i < 50; i++)
        fputc('=', out);
    fputc('\n', out);

    if (s->failed > 0 && s->n_errors > 0) {
        fputs("Errors:\n", out);
        for (size_t i = 0; i < s->n_errors && i < 5; i++) {
            fprintf(out, "  %zu x ", s->errors[i].count);
            print_message(out, s->errors[i].message);
            fputc('\n', out);
        }
        if (s->n_errors > 5)
            fprintf(out, "  (%zu more distinct errors)\n", s->n_errors - 5);
    }
}

/* ------------------------------------------------------------------ */
/* JSON */

json_t *db_json_str(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    /* not UTF-8: keep ASCII, mark the rest */
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (!c)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        c[i] = (unsigned char) s[i] < 0x80 ? s[i] : '?';
    j = json_string(c);
    free(c);
    return j;
}

/* jansson refuses NaN and infinities: those are written as null. */
static json_t *jreal(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static int set(json_t *o, const char *k, json_t *v)
{
    return v ? json_object_set_new(o, k, v) : -1;
}

json_t *db_summary_json(const db_summary_t *s)
{
    json_t *o = json_object();
    int bad = 0;
    char key[64], pw[32];

    if (!o)
        return NULL;
    bad |= set(o, "date", db_json_str(s->date));
    bad |= set(o, "label", db_json_str(s->label));
    bad |= set(o, "model_id", db_json_str(s->model));
    bad |= set(o, "base_url", db_json_str(s->base_url));
    bad |= set(o, "endpoint", db_json_str(s->endpoint));
    bad |= set(o, "dataset_name", db_json_str(s->dataset));
    bad |= set(o, "backend", db_json_str(s->backend));
    bad |= set(o, "tokenizer_id", db_json_str(s->tokenizer));
    bad |= set(o, "num_prompts", json_integer((json_int_t) s->num_prompts));
    /* vLLM writes an infinite rate as the string "inf" */
    bad |= set(o, "request_rate",
        s->request_rate > 0 && isfinite(s->request_rate)
            ? json_real(s->request_rate) : json_string("inf"));
    bad |= set(o, "burstiness", jreal(s->burstiness));
    bad |= set(o, "max_concurrency", s->max_concurrency
        ? json_integer((json_int_t) s->max_concurrency) : json_null());
    bad |= set(o, "duration", jreal(s->duration_s));
    bad |= set(o, "completed", json_integer((json_int_t) s->completed));
    bad |= set(o, "failed", json_integer((json_int_t) s->failed));
    bad |= set(o, "total_input_tokens", json_integer(s->total_input));
    bad |= set(o, "total_output_tokens", json_integer(s->total_output));
    bad |= set(o, "request_throughput", jreal(s->request_throughput));
    bad |= set(o, "request_goodput", s->request_goodput >= 0
        ? jreal(s->request_goodput) : json_null());
    bad |= set(o, "output_throughput", jreal(s->output_throughput));
    bad |= set(o, "total_token_throughput",
        jreal(s->total_token_throughput));

    for (int i = 0; i < DB_N_METRICS; i++) {
        const db_metric_desc_t *m = &db_metric_desc[i];
        const db_dist_t *d = db_summary_dist(s, i);
        if (!(s->known_metrics & m->bit))
            continue;
        snprintf(key, sizeof(key), "mean_%s_ms", m->key);
        bad |= set(o, key, jreal(d->mean));
        snprintf(key, sizeof(key), "median_%s_ms", m->key);
        bad |= set(o, key, jreal(d->median));
        snprintf(key, sizeof(key), "std_%s_ms", m->key);
        bad |= set(o, key, jreal(d->std));
        for (size_t k = 0; k < s->n_pcts && k < d->n_pct; k++) {
            db_pct_word(s->pcts[k], pw, sizeof(pw));
            snprintf(key, sizeof(key), "p%s_%s_ms", pw, m->key);
            bad |= set(o, key, jreal(d->pct[k]));
        }
    }

    bad |= set(o, "total_cached_tokens", s->total_cached >= 0
        ? json_integer(s->total_cached) : json_null());
    bad |= set(o, "peak_concurrency",
        json_integer((json_int_t) s->peak_concurrency));
    /* the same figure under newer vLLM's name */
    bad |= set(o, "max_concurrent_requests",
        json_integer((json_int_t) s->peak_concurrency));
    json_t *pa = json_array();
    bad |= set(o, "percentiles", pa);
    for (size_t k = 0; pa && k < s->n_pcts; k++)
        bad |= json_array_append_new(pa, jreal(s->pcts[k]));
    char pm[32] = "";
    for (int i = 0; i < DB_N_METRICS; i++)
        if (s->pct_metrics & db_metric_desc[i].bit) {
            if (pm[0])
                strcat(pm, ",");
            strcat(pm, db_metric_desc[i].key);
        }
    bad |= set(o, "percentile_metrics", json_string(pm));
    json_t *ea = json_array();
    bad |= set(o, "errors", ea);
    for (size_t k = 0; ea && k < s->n_errors; k++) {
        json_t *e = json_object();
        if (!e) {
            bad = 1;
            break;
        }
        bad |= set(e, "message", db_json_str(s->errors[k].message));
        bad |= set(e, "count", json_integer((json_int_t) s->errors[k].count));
        bad |= json_array_append_new(ea, e);
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int db_report_json(const db_summary_t *s, FILE *out)
{
    json_t *o = db_summary_json(s);
    if (!o)
        return -1;
    int rc = json_dumpf(o, out, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (rc == 0 && fputc('\n', out) == EOF)
        rc = -1;
    return rc < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* CSV: the scalars of db_summary_json, one column per key, in its order */

static void csv_cell(FILE *out, const json_t *v, int first)
{
    char buf[40];
    if (!first)
        fputc(',', out);
    if (json_is_integer(v)) {
        fprintf(out, "%lld", (long long) json_integer_value(v));
    } else if (json_is_real(v)) {
        db_fmt_double(json_real_value(v), buf, sizeof(buf));
        fputs(buf, out);
    } else if (json_is_string(v)) {
        /* RFC 4180: quoted when it holds a comma, quote or line break */
        const char *t = json_string_value(v);
        if (strpbrk(t, ",\"\r\n")) {
            fputc('"', out);
            for (; *t; t++) {
                if (*t == '"')
                    fputc('"', out);
                fputc(*t, out);
            }
            fputc('"', out);
        } else {
            fputs(t, out);
        }
    }
    /* null: an empty cell */
}

int db_report_csv(const db_summary_t *s, FILE *out, int header)
{
    json_t *o = db_summary_json(s);
    const char *k;
    json_t *v;
    int first;

    if (!o)
        return -1;
    if (header) {
        first = 1;
        json_object_foreach(o, k, v) {
            if (json_is_array(v) || json_is_object(v))
                continue;
            fprintf(out, "%s%s", first ? "" : ",", k);
            first = 0;
        }
        fputc('\n', out);
    }
    first = 1;
    json_object_foreach(o, k, v) {
        if (json_is_array(v) || json_is_object(v))
            continue;
        csv_cell(out, v, first);
        first = 0;
    }
    fputc('\n', out);
    json_decref(o);
    return ferror(out) ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* per-request JSONL */

static json_t *request_json(const db_result_t *r)
{
    json_t *o = json_object();
    int bad = 0;
    if (!o)
        return NULL;
    bad |= set(o, "index", json_integer((json_int_t) r->index));
    bad |= set(o, "session", r->session >= 0 ? json_integer(r->session)
                                             : json_null());
    bad |= set(o, "turn", json_integer(r->turn));
    bad |= set(o, "warmup", json_boolean(r->warmup));
    bad |= set(o, "ok", json_boolean(r->ok));
    bad |= set(o, "status", json_integer(r->status));
    bad |= set(o, "error", db_json_str(r->ok ? NULL : r->error));
    bad |= set(o, "start_ms", jreal(r->start_s * 1000.));
    bad |= set(o, "ttft_ms", r->ttft_s >= 0 ? jreal(r->ttft_s * 1000.)
                                            : json_null());
    bad |= set(o, "e2el_ms", jreal(r->latency_s * 1000.));
    /* TPOT as db_metrics_compute defines it */
    if (r->ok && r->ttft_s >= 0 && r->output_tokens > 1)
        bad |= set(o, "tpot_ms", jreal((r->latency_s - r->ttft_s) * 1000. /
            (double) (r->output_tokens - 1)));
    else
        bad |= set(o, "tpot_ms", json_null());
    json_t *a = json_array();
    bad |= set(o, "itl_ms", a);
    for (size_t i = 0; a && i < r->n_itl; i++)
        bad |= json_array_append_new(a, jreal(r->itl_s[i] * 1000.));
    bad |= set(o, "prompt_tokens", json_integer(r->prompt_tokens));
    bad |= set(o, "output_tokens", r->output_tokens >= 0
        ? json_integer(r->output_tokens) : json_null());
    bad |= set(o, "cached_tokens", r->cached_tokens >= 0
        ? json_integer(r->cached_tokens) : json_null());
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int db_report_jsonl(const db_run_out_t *run, FILE *out)
{
    for (size_t i = 0; i < run->n; i++) {
        json_t *o = request_json(&run->results[i]);
        if (!o)
            return -1;
        int rc = json_dumpf(o, out, JSON_COMPACT | JSON_REAL_PRECISION(17));
        json_decref(o);
        if (rc < 0 || fputc('\n', out) == EOF)
            return -1;
    }
    return 0;
}
