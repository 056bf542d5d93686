/*
 * The run command: options -> tokenizer -> dataset -> one run, or one per
 * --concurrency step -> metrics -> the result block on stdout, files and
 * plots on request. Exit status: 0 when a timed request succeeded, 1 when
 * none did (or a run could not start, or a file could not be written), 2
 * on bad usage or input, 130 (128 + SIGINT) when ^C cut the run short:
 * what was measured up to then is still printed and written, but a script
 * must not take it for the whole run.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db_cmd.h"
#include "db_metrics.h"
#include "db_opts.h"
#include "db_report.h"
#include "db_run.h"
#include "db_trace.h"

#define ERRLEN 1024

static int
is_tokenizer_dir(const char *dir)
{
    char         path[4096];
    struct stat  st;

    if (dir == NULL) {
        return 0;
    }
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int
load_tokenizer(const db_opts_t *o, kvr_tokenizer_t **tok)
{
    char         err[ERRLEN];
    const char  *dir = o->tokenizer;

    if (dir == NULL && is_tokenizer_dir(o->model)) {
        dir = o->model;
    }
    if (dir == NULL) {
        fprintf(stderr, "dynamo-bench: --tokenizer DIR is needed (a "
            "directory with the model's tokenizer.json; --model is used "
            "when it is one)\n");
        return -1;
    }
    if (kvr_tokenizer_load_dir(dir, tok, err, sizeof(err)) != 0) {
        fprintf(stderr, "dynamo-bench: --tokenizer %s: %s\n", dir, err);
        return -1;
    }
    return 0;
}

/*
 * The dataset, with num_warmups extra requests in front; *timed is the
 * number of timed requests to ask the runner for.
 */
static int
build_dataset(const db_opts_t *o, const kvr_tokenizer_t *tok,
    db_dataset_t *ds, size_t *timed)
{
    char     err[ERRLEN];
    int      rc = -1;

    db_dataset_init(ds);
    switch (o->dataset) {
    case DB_DATA_RANDOM:
        {
            db_random_conf_t c = o->random;

            c.num_prompts = o->num_prompts + o->num_warmups;
            c.seed = o->seed;
            rc = db_random_build(tok, &c, ds, err, sizeof(err));
        }
        break;
    case DB_DATA_TRACE:
        {
            db_trace_t       tr;
            db_trace_conf_t  c = o->trace;

            memset(&tr, 0, sizeof(tr));
            if (db_trace_load(o->dataset_path, &tr, err, sizeof(err)) != 0) {
                fprintf(stderr, "dynamo-bench: %s\n", err);
                db_trace_free(&tr);
                return -1;
            }
            c.max_requests = o->num_prompts_set
                             ? o->num_prompts + o->num_warmups : 0;
            c.seed = o->seed;
            rc = db_trace_build(tok, &tr, &c, ds, err, sizeof(err));
            db_trace_free(&tr);
        }
        break;
    case DB_DATA_SESSIONS:
        {
            db_sessions_conf_t c = o->sessions;

            c.seed = o->seed;
            rc = db_sessions_build(tok, &c, ds, err, sizeof(err));
        }
        break;
    }
    if (rc != 0) {
        fprintf(stderr, "dynamo-bench: %s\n", err);
        return -1;
    }
    if (ds->n <= o->num_warmups) {
        fprintf(stderr, "dynamo-bench: the dataset has %zu requests, no "
            "more than --num-warmups %zu\n", ds->n, o->num_warmups);
        return -1;
    }
    if (o->dataset == DB_DATA_RANDOM) {
        *timed = o->num_prompts;
    } else {
        /* a trace or sessions dataset is replayed once, as built */
        *timed = ds->n - o->num_warmups;
    }
    return 0;
}

static const char *
dataset_name(db_data_kind_t k)
{
    return k == DB_DATA_TRACE ? "trace"
           : k == DB_DATA_SESSIONS ? "sessions" : "random";
}

static void
fmt_rate(char *buf, size_t len, double rate)
{
    if (rate <= 0.0) {
        snprintf(buf, len, "inf");
    } else {
        snprintf(buf, len, "%g", rate);
    }
}

static void
print_header(const db_opts_t *o, const db_dataset_t *ds, size_t timed)
{
    char    rate[32];
    size_t  i;

    fmt_rate(rate, sizeof(rate), o->request_rate);
    fprintf(stderr, "dynamo-bench: target %s%s (%s, model %s)\n",
        o->base_url, o->endpoint, o->chat ? "chat" : "completions",
        o->served_model != NULL ? o->served_model
        : o->model != NULL ? o->model : "(none)");
    fprintf(stderr, "dynamo-bench: dataset %s: %zu requests",
        dataset_name(o->dataset), timed);
    if (o->num_warmups > 0) {
        fprintf(stderr, " + %zu warm-up", o->num_warmups);
    }
    if (o->dataset == DB_DATA_RANDOM) {
        fprintf(stderr, ", input %d, output %d, range ratio %g, prefix %d",
            o->random.input_len, o->random.output_len,
            o->random.range_ratio, o->random.prefix_len);
    } else if (o->dataset == DB_DATA_TRACE) {
        fprintf(stderr, " from %s, block %d, %s", o->dataset_path,
            o->trace.block_size, o->trace.fixed_schedule
            ? "fixed schedule" : "no schedule");
        if (o->trace.fixed_schedule && o->trace.speedup != 1.0) {
            fprintf(stderr, " x%g", o->trace.speedup);
        }
    } else {
        fprintf(stderr, ", %d sessions x %d turns", o->sessions.sessions,
            o->sessions.turns);
    }
    fprintf(stderr, " (%zu built)\n", ds->n);
    fprintf(stderr, "dynamo-bench: request rate %s, burstiness %g, ", rate,
        o->burstiness);
    if (o->n_sweep > 0) {
        fprintf(stderr, "concurrency sweep");
        for (i = 0; i < o->n_sweep; i++) {
            fprintf(stderr, "%s%zu", i ? "," : " ", o->sweep[i]);
        }
    } else if (o->max_concurrency > 0) {
        fprintf(stderr, "max concurrency %zu", o->max_concurrency);
    } else {
        fprintf(stderr, "max concurrency unlimited");
    }
    if (o->duration_s > 0) {
        fprintf(stderr, ", duration %g s", o->duration_s);
    }
    fprintf(stderr, "\n");
}

/* A name part safe in a file name: the last path component, with
 * characters other than [A-Za-z0-9._-] replaced by '_'. */
static void
name_part(char *out, size_t len, const char *s)
{
    const char *slash;
    size_t      i, n;

    if (s == NULL || *s == '\0') {
        s = "model";
    }
    n = strlen(s);
    while (n > 1 && s[n - 1] == '/') {
        n--;
    }
    for (slash = s + n; slash > s && slash[-1] != '/'; slash--) {
    }
    n -= (size_t) (slash - s);
    s = slash;
    for (i = 0; i < n && i + 1 < len; i++) {
        char c = s[i];
        int  ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                  || (c >= '0' && c <= '9') || c == '.' || c == '-'
                  || c == '_';
        out[i] = ok ? c : '_';
    }
    out[i] = '\0';
}

static void
result_base(const db_opts_t *o, char *out, size_t len)
{
    char        who[128], conc[64], rate[32], date[32];
    time_t      now = time(NULL);
    struct tm   tm;
    size_t      n;

    if (o->result_filename != NULL) {
        snprintf(out, len, "%s", o->result_filename);
        n = strlen(out);
        if (n > 5 && strcmp(out + n - 5, ".json") == 0) {
            out[n - 5] = '\0';
        }
        return;
    }
    name_part(who, sizeof(who), o->label != NULL ? o->label : o->model);
    if (o->n_sweep > 0) {
        snprintf(conc, sizeof(conc), "c%zu-%zu", o->sweep[0],
            o->sweep[o->n_sweep - 1]);
    } else if (o->max_concurrency > 0) {
        snprintf(conc, sizeof(conc), "c%zu", o->max_concurrency);
    } else {
        snprintf(conc, sizeof(conc), "cinf");
    }
    fmt_rate(rate, sizeof(rate), o->request_rate);
    localtime_r(&now, &tm);
    strftime(date, sizeof(date), "%Y%m%d-%H%M%S", &tm);
    snprintf(out, len, "dynamo-bench-%s-%s-%s-%sqps-%s",
        dataset_name(o->dataset), who, conc, rate, date);
}

/* mkdir -p, then a writable directory; -1 with errno set. */
static int
make_dir(const char *dir)
{
    char         p[4096];
    size_t       i, n;
    struct stat  sb;

    n = strlen(dir);
    if (n == 0 || n >= sizeof(p)) {
        errno = n == 0 ? ENOENT : ENAMETOOLONG;
        return -1;
    }
    memcpy(p, dir, n + 1);
    for (i = 1; i <= n; i++) {
        if (p[i] == '/' || p[i] == '\0') {
            char c = p[i];

            p[i] = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                return -1;
            }
            p[i] = c;
        }
    }
    if (stat(dir, &sb) != 0) {
        return -1;
    }
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return access(dir, W_OK | X_OK);
}

typedef struct {
    const db_opts_t     *o;
    char                 base[4096];   /* result_dir/name, no extension */
    int                  failed;       /* a file could not be written */
} db_out_t;

static FILE *
open_out(db_out_t *w, const char *suffix, char *path, size_t len)
{
    FILE  *f;

    snprintf(path, len, "%s%s", w->base, suffix);
    f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "dynamo-bench: %s: %s\n", path, strerror(errno));
        w->failed = 1;
    }
    return f;
}

static void
close_out(db_out_t *w, FILE *f, int rc, const char *path)
{
    if (fclose(f) != 0 || rc != 0) {
        fprintf(stderr, "dynamo-bench: %s: write failed\n", path);
        w->failed = 1;
        return;
    }
    fprintf(stderr, "dynamo-bench: wrote %s\n", path);
}

static void
write_results(db_out_t *w, const db_summary_t *sums, const db_run_out_t *runs,
    size_t n, int sweep)
{
    const db_opts_t *o = w->o;
    char             path[4200], suffix[64], prefix[4200], err[ERRLEN];
    FILE            *f;
    size_t           i;

    if (o->save_result) {
        if ((f = open_out(w, ".json", path, sizeof(path))) != NULL) {
            close_out(w, f, sweep ? db_sweep_json(sums, n, f)
                                  : db_report_json(&sums[0], f), path);
        }
        if ((f = open_out(w, ".csv", path, sizeof(path))) != NULL) {
            int rc = 0;

            for (i = 0; i < n && rc == 0; i++) {
                rc = db_report_csv(&sums[i], f, i == 0);
            }
            close_out(w, f, rc, path);
        }
    }
    if (o->save_detailed) {
        for (i = 0; i < n; i++) {
            if (sweep) {
                snprintf(suffix, sizeof(suffix), "-c%zu.jsonl", o->sweep[i]);
            } else {
                snprintf(suffix, sizeof(suffix), ".jsonl");
            }
            if ((f = open_out(w, suffix, path, sizeof(path))) != NULL) {
                close_out(w, f, db_report_jsonl(&runs[i], f), path);
            }
        }
    }
    if (o->plot) {
        for (i = 0; i < n; i++) {
            if (sweep) {
                snprintf(prefix, sizeof(prefix), "%s-c%zu", w->base,
                    o->sweep[i]);
            } else {
                snprintf(prefix, sizeof(prefix), "%s", w->base);
            }
            if (db_plot_cdf(&runs[i], prefix, err, sizeof(err)) != 0) {
                fprintf(stderr, "dynamo-bench: note: no plot: %s\n", err);
            } else {
                fprintf(stderr, "dynamo-bench: wrote %s-cdf.png\n", prefix);
            }
        }
        if (sweep) {
            if (db_plot_sweep(sums, n, w->base, err, sizeof(err)) != 0) {
                fprintf(stderr, "dynamo-bench: note: no plot: %s\n", err);
            } else {
                fprintf(stderr, "dynamo-bench: wrote %s-sweep.png\n",
                    w->base);
            }
        }
    }
}

static const char *
first_error(const db_run_out_t *runs, size_t n)
{
    size_t  i, k;

    for (i = 0; i < n; i++) {
        for (k = 0; k < runs[i].n; k++) {
            const db_result_t *r = &runs[i].results[k];

            if (!r->warmup && !r->ok) {
                return r->error != NULL ? r->error : "unknown error";
            }
        }
    }
    return NULL;
}

/* What the steps left: results and summaries of the steps done. */
typedef struct {
    db_run_out_t  *runs;
    db_summary_t  *sums;
    size_t         n_steps;
    size_t         done;
    size_t         completed;      /* successful timed requests, all steps */
    int            failed;         /* a step could not run: the later ones
                                      were skipped */
    int            interrupted;    /* ^C: the later steps were skipped */
} db_steps_t;

/*
 * Runs every step (one, or one per --concurrency value), printing each
 * step's block as it ends. A step that cannot run, or ^C, ends the sweep
 * there; what the earlier steps measured is kept for the table and files.
 * Step i > 0 rebuilds the dataset with --seed + i: the same lengths and
 * sharing structure on new tokens, so no step finds the prompts of an
 * earlier one in the server's prefix cache.
 */
static void
run_steps(const db_opts_t *o, const db_opts_t *ro, db_dataset_t *ds,
    const kvr_tokenizer_t *tok, db_steps_t *st)
{
    char       err[ERRLEN];
    size_t     i, timed;
    db_opts_t  so;
    int        sweep = o->n_sweep > 0;

    for (i = 0; i < st->n_steps; i++) {
        size_t c = sweep ? o->sweep[i] : o->max_concurrency;

        if (sweep) {
            fprintf(stderr, "dynamo-bench: concurrency %zu (%zu/%zu)\n", c,
                i + 1, st->n_steps);
        }
        if (i > 0) {
            so = *o;
            so.seed = o->seed + i;
            db_dataset_free(ds);
            if (build_dataset(&so, tok, ds, &timed) != 0) {
                st->failed = 1;
                return;
            }
        }
        if (db_run(ro, ds, tok, c, &st->runs[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "dynamo-bench: %s\n", err);
            st->failed = 1;
            return;
        }
        if (db_metrics_compute(ro, &st->runs[i], &st->sums[i]) != 0) {
            fprintf(stderr, "dynamo-bench: metrics: out of memory\n");
            st->failed = 1;
            return;
        }
        st->done = i + 1;
        st->completed += st->sums[i].completed;
        if (sweep) {
            printf("concurrency %zu\n", c);
        }
        db_report_print(&st->sums[i], stdout);
        fflush(stdout);
        if (db_run_interrupted()) {
            st->interrupted = 1;
            return;
        }
    }
}

/* Exit status of the run command; see the file's header. */
static int
run_status(const db_steps_t *st, int write_failed)
{
    if (st->interrupted) {
        if (st->n_steps == 1) {
            fprintf(stderr, "dynamo-bench: interrupted: the figures cover "
                "the part that ran\n");
        } else {
            fprintf(stderr, "dynamo-bench: interrupted: %zu of %zu steps "
                "run, the last one cut short\n", st->done, st->n_steps);
        }
        return 130;
    }
    if (st->failed || write_failed) {
        return 1;
    }
    if (st->completed == 0) {
        const char *e = first_error(st->runs, st->done);

        fprintf(stderr, "dynamo-bench: no request succeeded%s%s\n",
            e != NULL ? "; first error: " : "", e != NULL ? e : "");
        return 1;
    }
    return 0;
}

/* The directory and file name the results go to, made before the run so
 * that a bad --result-dir costs no benchmark. -1 with a message printed. */
static int
prepare_out(const db_opts_t *o, db_out_t *w)
{
    char  name[1024];

    memset(w, 0, sizeof(*w));
    w->o = o;
    if (!o->save_result && !o->save_detailed && !o->plot) {
        return 0;
    }
    result_base(o, name, sizeof(name));
    if (make_dir(o->result_dir) != 0) {
        fprintf(stderr, "dynamo-bench: --result-dir %s: %s\n",
            o->result_dir, strerror(errno));
        return -1;
    }
    snprintf(w->base, sizeof(w->base), "%s/%s", o->result_dir, name);
    return 0;
}

int
db_cmd_run(int argc, char **argv)
{
    db_opts_t          o, ro;
    kvr_tokenizer_t   *tok = NULL;
    db_dataset_t       ds;
    db_steps_t         st;
    db_out_t           w;
    char               err[ERRLEN];
    size_t             i, timed = 0;
    int                rc;

    memset(&st, 0, sizeof(st));
    db_opts_defaults(&o);
    db_dataset_init(&ds);
    rc = db_opts_parse(&o, argc, argv, err, sizeof(err));
    if (rc != 0) {
        if (rc < 0) {
            fprintf(stderr, "dynamo-bench: %s\n", err);
        }
        db_opts_free(&o);
        return rc == 1 ? 0 : 2;
    }
    rc = 2;
    if (prepare_out(&o, &w) != 0 || load_tokenizer(&o, &tok) != 0
        || build_dataset(&o, tok, &ds, &timed) != 0)
    {
        goto out;
    }
    print_header(&o, &ds, timed);

    /* the runner's view: timed requests as the dataset allows */
    ro = o;
    ro.num_prompts = timed;
    st.n_steps = o.n_sweep > 0 ? o.n_sweep : 1;
    st.runs = calloc(st.n_steps, sizeof(*st.runs));
    st.sums = calloc(st.n_steps, sizeof(*st.sums));
    if (st.runs == NULL || st.sums == NULL) {
        fprintf(stderr, "dynamo-bench: out of memory\n");
        rc = 1;
        goto out;
    }
    run_steps(&o, &ro, &ds, tok, &st);
    if (o.n_sweep > 0 && st.done > 0) {
        db_sweep_print(st.sums, st.done, stdout);
        fflush(stdout);
    }
    if (w.base[0] != '\0' && st.done > 0) {
        write_results(&w, st.sums, st.runs, st.done, o.n_sweep > 0);
    }
    rc = run_status(&st, w.failed);

out:
    for (i = 0; i < st.done; i++) {
        db_summary_free(&st.sums[i]);
    }
    for (i = 0; st.runs != NULL && i < st.n_steps; i++) {
        db_run_out_free(&st.runs[i]);
    }
    free(st.sums);
    free(st.runs);
    db_dataset_free(&ds);
    if (tok != NULL) {
        kvr_tokenizer_free(tok);
    }
    db_opts_free(&o);
    return rc;
}
