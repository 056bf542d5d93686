/*
 * `dynamo-bench compare A.json B.json [C.json ...]`: saved summaries side
 * by side, one row per figure, one column per file, then the ratio of each
 * later file to the first (B/A, C/A). Reads our summaries and vLLM's
 * result files alike (db_summary_load).
 */

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "db_cmd.h"
#include "db_report.h"
#include "db_report_int.h"

#define LABEL_W    34
#define RATIO_W    8
#define TITLE_MAX  20
#define MAX_FILE   (64u << 20)

typedef enum { V_INT, V_FLOAT } vkind_t;

typedef struct {
    const db_summary_t *s;
    size_t              n;
    size_t              w[64];     /* column widths (at most 64 files) */
    FILE               *out;
} table_t;

static void cell_ratio(table_t *t, double a, double b)
{
    char buf[32];
    if (isfinite(a) && isfinite(b) && a != 0)
        snprintf(buf, sizeof(buf), "%.2fx", b / a);
    else
        snprintf(buf, sizeof(buf), "-");
    fprintf(t->out, " %*s", RATIO_W, buf);
}

/* One row; has[i] says whether summary i has the figure. */
static void row(table_t *t, const char *label, vkind_t kind,
    const double *v, const int *has)
{
    int any = 0;
    for (size_t i = 0; i < t->n; i++)
        any |= has[i];
    if (!any)
        return;
    fprintf(t->out, "%-*s", LABEL_W, label);
    for (size_t i = 0; i < t->n; i++) {
        if (!has[i] || isnan(v[i]))
            fprintf(t->out, " %*s", (int) t->w[i], "-");
        else if (kind == V_INT)
            fprintf(t->out, " %*lld", (int) t->w[i], (long long) v[i]);
        else
            fprintf(t->out, " %*.2f", (int) t->w[i], v[i]);
    }
    for (size_t i = 1; i < t->n; i++)
        cell_ratio(t, has[0] ? v[0] : NAN, has[i] ? v[i] : NAN);
    fputc('\n', t->out);
}

/* A, B, ..., Z, then AA, AB, ... (64 columns at most). */
static const char *col_letter(size_t i, char *buf, size_t len)
{
    if (i < 26)
        snprintf(buf, len, "%c", (int) ('A' + i));
    else
        snprintf(buf, len, "%c%c", (int) ('A' + i / 26 - 1),
            (int) ('A' + i % 26));
    return buf;
}

static const char *title(const db_summary_t *s, size_t i, char *buf,
    size_t len)
{
    if (s[i].label && s[i].label[0])
        return s[i].label;
    snprintf(buf, len, "run %zu", i + 1);
    return buf;
}

int db_compare_print(const db_summary_t *s, size_t n, FILE *out)
{
    table_t t = { s, n, { 0 }, out };
    double v[64];
    int has[64];
    char buf[64], lab[96], pw[32], let[4];

    if (n < 2 || n > 64)
        return -1;

    /* columns are headed by their titles, or, when one is too long for a
     * readable row, by their letters (the legend above says which) */
    int letters = 0;
    for (size_t i = 0; i < n; i++) {
        col_letter(i, let, sizeof(let));
        fprintf(out, "%s = %s\n", let, title(s, i, buf, sizeof(buf)));
        letters |= strlen(title(s, i, buf, sizeof(buf))) > TITLE_MAX;
    }
    fputc('\n', out);
    fprintf(out, "%-*s", LABEL_W, "");
    for (size_t i = 0; i < n; i++) {
        const char *h = letters ? col_letter(i, let, sizeof(let))
                                : title(s, i, buf, sizeof(buf));
        size_t l = strlen(h);
        t.w[i] = l > 12 ? l : 12;
        fprintf(out, " %*s", (int) t.w[i], h);
    }
    for (size_t i = 1; i < n; i++) {
        col_letter(i, let, sizeof(let));
        snprintf(buf, sizeof(buf), "%s/A", let);
        fprintf(out, " %*s", RATIO_W, buf);
    }
    fputc('\n', out);

#define ROW(label, kind, expr, cond) do {                   \
        for (size_t i = 0; i < n; i++) {                    \
            const db_summary_t *x = &s[i];                  \
            has[i] = (cond);                                \
            v[i] = has[i] ? (double) (expr) : NAN;          \
        }                                                   \
        row(&t, label, kind, v, has);                       \
    } while (0)

    ROW("Successful requests", V_INT, x->completed, 1);
    ROW("Failed requests", V_INT, x->failed, 1);
    ROW("Benchmark duration (s)", V_FLOAT, x->duration_s, 1);
    ROW("Request throughput (req/s)", V_FLOAT, x->request_throughput, 1);
    ROW("Request goodput (req/s)", V_FLOAT, x->request_goodput,
        x->request_goodput >= 0);
    ROW("Output token throughput (tok/s)", V_FLOAT, x->output_throughput,
        1);
    ROW("Total Token throughput (tok/s)", V_FLOAT,
        x->total_token_throughput, 1);
    ROW("Cached prompt tokens", V_INT, x->total_cached,
        x->total_cached >= 0);

    for (int m = 0; m < DB_N_METRICS; m++) {
        const db_metric_desc_t *md = &db_metric_desc[m];
        snprintf(lab, sizeof(lab), "Mean %s (ms)", md->name);
        ROW(lab, V_FLOAT, db_summary_dist(x, m)->mean,
            (x->known_metrics & md->bit) != 0);
        snprintf(lab, sizeof(lab), "Median %s (ms)", md->name);
        ROW(lab, V_FLOAT, db_summary_dist(x, m)->median,
            (x->known_metrics & md->bit) != 0);
        db_pct_word(99, pw, sizeof(pw));
        snprintf(lab, sizeof(lab), "P%s %s (ms)", pw, md->name);
        for (size_t i = 0; i < n; i++) {
            has[i] = (s[i].known_metrics & md->bit) &&
                db_summary_pct(&s[i], db_summary_dist(&s[i], m), 99,
                    &v[i]) == 0;
            if (!has[i])
                v[i] = NAN;
        }
        row(&t, lab, V_FLOAT, v, has);
    }
#undef ROW
    return ferror(out) ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* the command */

static void usage(FILE *f)
{
    fputs(
"usage: dynamo-bench compare A.json B.json [C.json ...] [--metrics LIST]\n"
"\n"
"Prints saved summaries side by side: one row per figure (requests, req/s,\n"
"goodput, token throughput, mean/median/P99 of TTFT, TPOT, ITL, E2EL), one\n"
"column per file, then the ratio of each later file to the first (B/A,\n"
"C/A, ...). Reads dynamo-bench's --save-result files (a sweep's file\n"
"gives a column per step) and vLLM's benchmark_serving result files. A\n"
"column is titled by the run's label (--label), else by its file name.\n"
"\n"
"  --metrics LIST   latency metrics to show, comma-separated, among\n"
"                   ttft,tpot,itl,e2el (default: all the files have)\n"
"  -h, --help       this help\n"
"\n"
"Exit status: 0 printed, 2 bad usage or a bad file (with a message).\n",
        f);
}

static char *read_file(const char *path, size_t *len, char *err,
    size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s", strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            if (cap >= MAX_FILE) {
                snprintf(err, errlen, "larger than %u MiB", MAX_FILE >> 20);
                free(buf);
                buf = NULL;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) {
                snprintf(err, errlen, "%s", strerror(errno));
                free(buf);
                buf = NULL;
            }
            break;
        }
    }
    if (!buf && !err[0])
        snprintf(err, errlen, "out of memory");
    fclose(f);
    *len = n;
    return buf;
}

static int parse_metrics(const char *list, unsigned *mask)
{
    *mask = 0;
    while (*list) {
        size_t n = strcspn(list, ",");
        int found = 0;
        for (int i = 0; i < DB_N_METRICS; i++)
            if (strlen(db_metric_desc[i].key) == n &&
                strncmp(list, db_metric_desc[i].key, n) == 0) {
                *mask |= db_metric_desc[i].bit;
                found = 1;
            }
        if (!found)
            return -1;
        list += n;
        if (*list == ',' && *++list == '\0')
            return -1;
    }
    return *mask ? 0 : -1;
}

/* Adds the summaries of one file: a summary, or a sweep's {"steps":
 * [...]} (one column per step). 0, or -1 with a message printed. */
static int add_file(const char *path, db_summary_t *s, size_t *n)
{
    char err[256] = "", title[512];
    size_t len;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;

    char *buf = read_file(path, &len, err, sizeof(err));
    if (!buf) {
        fprintf(stderr, "compare: %s: %s\n", path, err);
        return -1;
    }
    json_t *o = db_json_parse(buf, len, err, sizeof(err));
    free(buf);
    if (!o) {
        fprintf(stderr, "compare: %s: %s\n", path, err);
        return -1;
    }
    json_t *steps = json_is_object(o) ? json_object_get(o, "steps") : NULL;
    size_t n_in = steps ? json_array_size(steps) : 1;
    int rc = -1;
    if (steps && (!json_is_array(steps) || n_in == 0)) {
        fprintf(stderr, "compare: %s: key \"steps\": expected a non-empty "
            "array of summaries\n", path);
        goto out;
    }
    for (size_t k = 0; k < n_in; k++) {
        db_summary_t *x = &s[*n];
        if (*n == 64) {
            fprintf(stderr, "compare: at most 64 columns\n");
            goto out;
        }
        if (db_summary_from_json(steps ? json_array_get(steps, k) : o, x,
            err, sizeof(err)) < 0) {
            if (steps)
                fprintf(stderr, "compare: %s: steps[%zu]: %s\n", path, k,
                    err);
            else
                fprintf(stderr, "compare: %s: %s\n", path, err);
            goto out;
        }
        (*n)++;
        const char *name = x->label && x->label[0] ? x->label : base;
        if (steps && x->max_concurrency)
            snprintf(title, sizeof(title), "%s c%zu", name,
                x->max_concurrency);
        else if (steps)
            snprintf(title, sizeof(title), "%s #%zu", name, k + 1);
        else
            snprintf(title, sizeof(title), "%s", name);
        /* one line per title: a label's control bytes would break rows */
        for (char *c = title; *c; c++)
            if ((unsigned char) *c < 0x20 || *c == 0x7f)
                *c = ' ';
        free(x->label);
        x->label = strdup(title);
        if (!x->label) {
            fprintf(stderr, "compare: out of memory\n");
            goto out;
        }
    }
    rc = 0;
out:
    json_decref(o);
    return rc;
}

int db_cmd_compare(int argc, char **argv)
{
    const char *files[64];
    size_t nf = 0;
    unsigned mask = DB_M_TTFT | DB_M_TPOT | DB_M_ITL | DB_M_E2EL;
    int rc = 2;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--metrics") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "compare: --metrics needs a value\n");
                return 2;
            }
            val = argv[++i];
        } else if (strncmp(a, "--metrics=", 10) == 0) {
            val = a + 10;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "compare: unknown option %s (see --help)\n", a);
            return 2;
        }
        if (val) {
            if (parse_metrics(val, &mask) < 0) {
                fprintf(stderr, "compare: --metrics %s: expected names "
                    "among ttft,tpot,itl,e2el\n", val);
                return 2;
            }
            continue;
        }
        if (nf == 64) {
            fprintf(stderr, "compare: at most 64 files\n");
            return 2;
        }
        files[nf++] = a;
    }

    db_summary_t *s = calloc(64, sizeof(*s));
    size_t n = 0;
    if (!s) {
        fprintf(stderr, "compare: out of memory\n");
        return 2;
    }
    for (size_t i = 0; i < nf; i++)
        if (add_file(files[i], s, &n) < 0)
            goto out;
    if (n < 2) {
        fprintf(stderr, "compare: needs at least two summaries: two files, "
            "or a sweep's file (see --help)\n");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        s[i].known_metrics &= mask;
    rc = db_compare_print(s, n, stdout) < 0 ? 2 : 0;
out:
    for (size_t i = 0; i < n; i++)
        db_summary_free(&s[i]);
    free(s);
    return rc;
}
