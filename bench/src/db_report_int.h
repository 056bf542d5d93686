#ifndef DB_REPORT_INT_H
#define DB_REPORT_INT_H

/*
 * Helpers shared by the report's files (db_report.c, db_summary_load.c,
 * db_compare.c, db_sweep.c, db_plot.c); not part of the seam.
 */

#include <jansson.h>
#include <stddef.h>

#include "db_metrics.h"

#define DB_N_METRICS 4

typedef struct {
    unsigned    bit;        /* DB_M_* */
    const char *key;        /* "ttft": mean_ttft_ms, p99_ttft_ms, ... */
    const char *name;       /* "TTFT" */
    const char *header;     /* vLLM's section title */
} db_metric_desc_t;

extern const db_metric_desc_t db_metric_desc[DB_N_METRICS];

/* The summary's distribution of metric i (db_metric_desc order). */
const db_dist_t *db_summary_dist(const db_summary_t *s, int i);

/* vLLM's percentile word: "99" for 99.0, "99.9" for 99.9 (Python's str of
 * an int when the value is one, else the shortest repr). */
void db_pct_word(double p, char *buf, size_t len);

/* Shortest "%.Ng" that reads back to the same double. */
void db_fmt_double(double v, char *buf, size_t len);

/* The value at percentile p of a distribution of s; -1 when s has no such
 * percentile. */
int db_summary_pct(const db_summary_t *s, const db_dist_t *d, double p,
    double *v);

/* The tail percentile a sweep table or plot shows: 99 when s has it, else
 * the highest one it has; -1 when it has none. */
double db_tail_pct(const db_summary_t *s);

/* The summary as vLLM's result object (plus our keys); NULL on OOM. */
json_t *db_summary_json(const db_summary_t *s);

/* db_summary_load's halves: parse (errors "line L column C: ..."), and
 * read one summary object (errors name the key). */
json_t *db_json_parse(const char *json, size_t len, char *err,
    size_t errlen);
int db_summary_from_json(const json_t *o, db_summary_t *s, char *err,
    size_t errlen);

/* A JSON string of arbitrary bytes: invalid UTF-8 bytes become '?'. */
json_t *db_json_str(const char *s);

#endif
