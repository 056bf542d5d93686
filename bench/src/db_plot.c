/*
 * PNGs through gnuplot, run as a subprocess on a script that carries its
 * data inline (datablocks), written next to the PNG (PREFIX-cdf.gp,
 * PREFIX-sweep.gp) so that a plot can be restyled and redrawn by hand.
 * pngcairo when gnuplot has it, else png. No gnuplot on PATH: return 1
 * with a note in err (a missing plot is not a failed benchmark).
 */

#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db_report.h"
#include "db_report_int.h"

extern char **environ;

static int have_gnuplot(void)
{
    const char *path = getenv("PATH");
    char buf[4096];
    if (!path || !*path)
        return 0;
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && n < sizeof(buf) - 10) {
            memcpy(buf, path, n);
            strcpy(buf + n, "/gnuplot");
            struct stat st;
            if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) &&
                access(buf, X_OK) == 0)
                return 1;
        }
        path += n;
        if (*path == ':')
            path++;
    }
    return 0;
}

/* A gnuplot single-quoted string: ' doubled. */
static void gp_quote(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

static void gp_head(FILE *f, const char *png, int w, int h)
{
    fputs("# written by dynamo-bench; redraw with: gnuplot THIS_FILE\n", f);
    fprintf(f,
        "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
        "    set terminal pngcairo size %d,%d font ',10'\n"
        "} else {\n"
        "    set terminal png size %d,%d\n"
        "}\n", w, h, w, h);
    fputs("set output ", f);
    gp_quote(f, png);
    fputc('\n', f);
}

/* Runs gnuplot on the script; 0, or -1 with a message. */
static int gp_run(const char *script, char *err, size_t errlen)
{
    /* a relative path starting with '-' would read as an option */
    char arg[4200];
    snprintf(arg, sizeof(arg), "%s%s", script[0] == '-' ? "./" : "",
        script);
    char *argv[] = { "gnuplot", arg, NULL };
    pid_t pid;
    int st;
    int rc = posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ);
    if (rc != 0) {
        snprintf(err, errlen, "cannot run gnuplot: %s", strerror(rc));
        return -1;
    }
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            snprintf(err, errlen, "waiting for gnuplot: %s",
                strerror(errno));
            return -1;
        }
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(err, errlen, "gnuplot failed on %s (status %d)", script,
            WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return -1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

/* An empirical CDF as a datablock: (x0, 0) then (x_i, (i + 1) / n). */
static void gp_cdf_block(FILE *f, const char *name, double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    fprintf(f, "$%s << EOD\n", name);
    if (n)
        fprintf(f, "%.6f 0\n", v[0]);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%.6f %.8f\n", v[i], (double) (i + 1) / (double) n);
    fputs("EOD\n", f);
}

static void gp_cdf_panel(FILE *f, const char *block, const char *what,
    const double *sorted, size_t n)
{
    fprintf(f, "set xlabel '%s (ms)'\n", what);
    if (n == 0) {
        fprintf(f, "set title '%s CDF (no samples)'\n", what);
        fputs("set xrange [0:1]\n"
              "plot NaN notitle\n"
              "set autoscale x\n", f);
        return;
    }
    fprintf(f, "set title '%s CDF (n = %zu, median %.2f ms, "
        "P99 %.2f ms)'\n", what, n, db_percentile_sorted(sorted, n, 50),
        db_percentile_sorted(sorted, n, 99));
    fprintf(f, "plot $%s using 1:2 with steps lw 2 lc rgb '#1f77b4' "
        "notitle\n", block);
}

static FILE *open_script(const char *prefix, const char *suffix,
    char *path, size_t len, char *err, size_t errlen)
{
    snprintf(path, len, "%s-%s.gp", prefix, suffix);
    FILE *f = fopen(path, "w");
    if (!f)
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return f;
}

static int close_script(FILE *f, const char *path, char *err,
    size_t errlen)
{
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        snprintf(err, errlen, "%s: write error", path);
        return -1;
    }
    return 0;
}

int db_plot_cdf(const db_run_out_t *run, const char *prefix, char *err,
    size_t errlen)
{
    char script[4096], png[4096];
    double *ttft, *tpot;
    size_t nt = 0, np = 0;
    int rc = -1;

    if (!have_gnuplot()) {
        snprintf(err, errlen, "gnuplot not found on PATH: no plots "
            "(install gnuplot-nox)");
        return 1;
    }
    ttft = malloc((run->n + 1) * sizeof(double));
    tpot = malloc((run->n + 1) * sizeof(double));
    if (!ttft || !tpot) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    /* the samples db_metrics_compute takes */
    for (size_t i = 0; i < run->n; i++) {
        const db_result_t *r = &run->results[i];
        if (r->warmup || !r->ok || r->ttft_s < 0)
            continue;
        ttft[nt++] = r->ttft_s * 1000.;
        if (r->output_tokens > 1)
            tpot[np++] = (r->latency_s - r->ttft_s) * 1000. /
                (double) (r->output_tokens - 1);
    }

    snprintf(png, sizeof(png), "%s-cdf.png", prefix);
    FILE *f = open_script(prefix, "cdf", script, sizeof(script), err,
        errlen);
    if (!f)
        goto out;
    gp_head(f, png, 1400, 560);
    gp_cdf_block(f, "ttft", ttft, nt);
    gp_cdf_block(f, "tpot", tpot, np);
    fputs("set multiplot layout 1,2\n"
          "set grid\n"
          "set yrange [0:1]\n"
          "set ylabel 'fraction of requests'\n", f);
    gp_cdf_panel(f, "ttft", "TTFT", ttft, nt);
    gp_cdf_panel(f, "tpot", "TPOT", tpot, np);
    fputs("unset multiplot\n", f);
    if (close_script(f, script, err, errlen) < 0)
        goto out;
    rc = gp_run(script, err, errlen);
out:
    free(ttft);
    free(tpot);
    return rc;
}

/* The distribution's value at the step's tail percentile; NaN without. */
static double tail_value(const db_summary_t *s, const db_dist_t *d)
{
    double v;
    if (db_summary_pct(s, d, db_tail_pct(s), &v) < 0)
        return NAN;
    return v;
}

static void gp_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, " %.6f", v);
    else
        fputs(" NaN", f);
}

static void gp_sweep_panel(FILE *f, const char *what, const char *tail,
    int c_mean, int c_tail)
{
    fprintf(f, "set title '%s against output throughput (points: "
        "concurrency)'\n", what);
    fprintf(f, "set ylabel '%s (ms)'\n", what);
    fprintf(f,
        "plot $sweep using 2:%d with linespoints lw 2 pt 7 title 'mean', \\\n"
        "     $sweep using 2:%d with linespoints lw 2 pt 5 title 'P%s', \\\n"
        "     $sweep using 2:%d:(stringcolumn(1)) with labels offset 0,1 "
        "notitle\n", c_mean, c_tail, tail, c_tail);
}

int db_plot_sweep(const db_summary_t *s, size_t n, const char *prefix,
    char *err, size_t errlen)
{
    char script[4096], png[4096];

    if (!have_gnuplot()) {
        snprintf(err, errlen, "gnuplot not found on PATH: no plots "
            "(install gnuplot-nox)");
        return 1;
    }
    if (n == 0) {
        snprintf(err, errlen, "no sweep steps to plot");
        return -1;
    }
    snprintf(png, sizeof(png), "%s-sweep.png", prefix);
    FILE *f = open_script(prefix, "sweep", script, sizeof(script), err,
        errlen);
    if (!f)
        return -1;
    gp_head(f, png, 1400, 560);
    /* concurrency, output tok/s, TTFT mean, TTFT tail, TPOT mean, TPOT
     * tail */
    fputs("$sweep << EOD\n", f);
    for (size_t i = 0; i < n; i++) {
        const db_summary_t *x = &s[i];
        if (x->max_concurrency)
            fprintf(f, "%zu", x->max_concurrency);
        else
            fputs("inf", f);
        gp_num(f, x->output_throughput);
        gp_num(f, (x->known_metrics & DB_M_TTFT) ? x->ttft_ms.mean : NAN);
        gp_num(f, (x->known_metrics & DB_M_TTFT)
            ? tail_value(x, &x->ttft_ms) : NAN);
        gp_num(f, (x->known_metrics & DB_M_TPOT) ? x->tpot_ms.mean : NAN);
        gp_num(f, (x->known_metrics & DB_M_TPOT)
            ? tail_value(x, &x->tpot_ms) : NAN);
        fputc('\n', f);
    }
    fputs("EOD\n", f);
    fputs("set multiplot layout 1,2\n"
          "set grid\n"
          "set key top left\n"
          "set xlabel 'output throughput (tok/s)'\n"
          "set xrange [0:*]\n"
          "set yrange [0:*]\n"
          "set offsets 0, graph 0.05, graph 0.1, 0\n",
        f);
    char tail[32] = "99";
    if (db_tail_pct(&s[0]) >= 0)
        db_pct_word(db_tail_pct(&s[0]), tail, sizeof(tail));
    gp_sweep_panel(f, "TTFT", tail, 3, 4);
    gp_sweep_panel(f, "TPOT", tail, 5, 6);
    fputs("unset multiplot\n", f);
    if (close_script(f, script, err, errlen) < 0)
        return -1;
    return gp_run(script, err, errlen);
}
