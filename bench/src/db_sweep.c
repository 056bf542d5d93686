/*
 * Concurrency sweeps: one row per step, and {"steps": [summary, ...]}
 * with each step's summary as db_report_json writes it.
 */

#include <math.h>
#include <string.h>

#include "db_report.h"
#include "db_report_int.h"

/* The mean (p < 0) or percentile p of a distribution; "-" when unknown. */
static void cell(FILE *out, int w, const db_summary_t *s,
    const db_dist_t *d, unsigned bit, double p)
{
    double v;
    if (!(s->known_metrics & bit) || isnan(p))
        fprintf(out, " %*s", w, "-");
    else if (p < 0)
        fprintf(out, " %*.2f", w, d->mean);
    else if (db_summary_pct(s, d, p, &v) == 0)
        fprintf(out, " %*.2f", w, v);
    else
        fprintf(out, " %*s", w, "-");
}

void db_sweep_print(const db_summary_t *s, size_t n, FILE *out)
{
    char pw[32] = "99", h1[32], h2[32], h3[32];
    double p = n ? db_tail_pct(&s[0]) : 99;

    if (p >= 0)
        db_pct_word(p, pw, sizeof(pw));
    snprintf(h1, sizeof(h1), "P%s TTFT", pw);
    snprintf(h2, sizeof(h2), "P%s TPOT", pw);
    snprintf(h3, sizeof(h3), "P%s ITL", pw);

    fprintf(out, "%11s %9s %6s %9s %12s %10s %10s %10s %10s %10s\n",
        "concurrency", "completed", "failed", "req/s", "out tok/s",
        "mean TTFT", h1, "mean TPOT", h2, h3);
    fprintf(out, "%11s %9s %6s %9s %12s %10s %10s %10s %10s %10s\n",
        "", "", "", "", "", "(ms)", "(ms)", "(ms)", "(ms)", "(ms)");
    for (size_t i = 0; i < n; i++) {
        const db_summary_t *x = &s[i];
        double tp = db_tail_pct(x) < 0 ? NAN : db_tail_pct(x);
        if (x->max_concurrency)
            fprintf(out, "%11zu", x->max_concurrency);
        else
            fprintf(out, "%11s", "inf");
        fprintf(out, " %9zu %6zu %9.2f %12.2f", x->completed, x->failed,
            x->request_throughput, x->output_throughput);
        cell(out, 10, x, &x->ttft_ms, DB_M_TTFT, -1);
        cell(out, 10, x, &x->ttft_ms, DB_M_TTFT, tp);
        cell(out, 10, x, &x->tpot_ms, DB_M_TPOT, -1);
        cell(out, 10, x, &x->tpot_ms, DB_M_TPOT, tp);
        cell(out, 10, x, &x->itl_ms, DB_M_ITL, tp);
        fputc('\n', out);
    }
}

int db_sweep_json(const db_summary_t *s, size_t n, FILE *out)
{
    json_t *root = json_object(), *steps = json_array();
    int bad = !root || !steps;

    if (!bad)
        bad = json_object_set(root, "steps", steps) < 0;
    for (size_t i = 0; !bad && i < n; i++) {
        json_t *o = db_summary_json(&s[i]);
        bad = !o || json_array_append_new(steps, o) < 0;
    }
    if (!bad)
        bad = json_dumpf(root, out, JSON_INDENT(2)) < 0 ||
              fputc('\n', out) == EOF;
    json_decref(steps);
    json_decref(root);
    return bad ? -1 : 0;
}
