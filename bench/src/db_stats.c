/* stub: replaced by its owner */
#include "db_stats.h"
#include <stdio.h>
void db_dist_compute(double *v, size_t n, const double *pcts, size_t n_pcts,
    db_dist_t *d) { }
double db_percentile_sorted(const double *sorted, size_t n, double p)
{ return 0; }
