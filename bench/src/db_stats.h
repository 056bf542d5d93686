#ifndef DB_STATS_H
#define DB_STATS_H

/* Summary statistics as numpy computes them: mean, median, population std,
 * percentiles by linear interpolation. An empty sample gives zeros, as
 * vLLM's np.mean(x or 0). */

#include <stddef.h>

#define DB_STATS_PCT_MAX 16

typedef struct {
    size_t     n;
    double     mean;
    double     median;
    double     std;
    double     min;
    double     max;
    double     pct[DB_STATS_PCT_MAX];   /* at the percentiles asked */
    size_t     n_pct;
} db_dist_t;

/* Sorts v in place. */
void db_dist_compute(double *v, size_t n, const double *pcts, size_t n_pcts,
    db_dist_t *d);
/* numpy.percentile(sorted, p), linear interpolation. */
double db_percentile_sorted(const double *sorted, size_t n, double p);

#endif
