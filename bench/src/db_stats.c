/*
 * Summary statistics with numpy's arithmetic, operation for operation, so
 * that the figures match vLLM's (which calls np.mean, np.std, np.median and
 * np.percentile) to the last bit rather than merely to rounding:
 *
 *   sum         numpy's pairwise summation (8 accumulators, blocks of 128,
 *               halves rounded to multiples of 8), in chunks of the
 *               iterator's buffer (8192 elements) added in order
 *   mean        sum / n
 *   std         population (ddof 0): sqrt(sum((x - mean)^2) / n)
 *   median      the middle element, or the mean of the two middle ones
 *   percentile  method "linear": index (n - 1) * p / 100, and numpy's
 *               _lerp, which interpolates from the upper neighbour when the
 *               fraction is >= 0.5
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "db_stats.h"

#define PW_BLOCKSIZE   128
#define NP_BUFSIZE     8192

static double pairwise_sum(const double *a, size_t n)
{
    if (n < 8) {
        double res = 0.;
        for (size_t i = 0; i < n; i++)
            res += a[i];
        return res;
    }
    if (n <= PW_BLOCKSIZE) {
        double r[8], res;
        size_t i;
        for (i = 0; i < 8; i++)
            r[i] = a[i];
        for (i = 8; i < n - (n % 8); i += 8)
            for (size_t j = 0; j < 8; j++)
                r[j] += a[i + j];
        res = ((r[0] + r[1]) + (r[2] + r[3])) +
              ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++)
            res += a[i];
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

/* np.add.reduce over a contiguous vector. */
static double np_sum(const double *a, size_t n)
{
    double res = 0.;
    for (size_t off = 0; off < n; off += NP_BUFSIZE) {
        size_t m = n - off < NP_BUFSIZE ? n - off : NP_BUFSIZE;
        res += pairwise_sum(a + off, m);
    }
    return res;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

double db_percentile_sorted(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return 0.;
    if (!(p > 0.))              /* also NaN */
        p = 0.;
    if (p > 100.)
        p = 100.;
    double virt = (double) (n - 1) * (p / 100.);
    double fl = floor(virt);
    size_t lo = (size_t) fl;
    if (lo > n - 1)
        lo = n - 1;
    size_t hi = lo + 1 > n - 1 ? n - 1 : lo + 1;
    double t = virt - fl;
    double a = sorted[lo], b = sorted[hi];
    double diff = b - a;
    if (t >= 0.5)
        return b - diff * (1. - t);
    return a + diff * t;
}

void db_dist_compute(double *v, size_t n, const double *pcts, size_t n_pcts,
    db_dist_t *d)
{
    memset(d, 0, sizeof(*d));
    if (n_pcts > DB_STATS_PCT_MAX)
        n_pcts = DB_STATS_PCT_MAX;
    d->n_pct = n_pcts;
    d->n = n;
    if (n == 0)
        return;                 /* vLLM: np.mean(x or 0) etc. give 0 */

    /* mean and std in the sample's own order (numpy sums unsorted) */
    d->mean = np_sum(v, n) / (double) n;

    /* np.std: the squared deviations in a scratch array, summed the same
     * way; without memory, fall back to a plain loop (same to rounding). */
    double *dev = malloc(n * sizeof(*dev));
    if (dev) {
        for (size_t i = 0; i < n; i++) {
            double x = v[i] - d->mean;
            dev[i] = x * x;
        }
        d->std = sqrt(np_sum(dev, n) / (double) n);
        free(dev);
    } else {
        double acc = 0.;
        for (size_t i = 0; i < n; i++)
            acc += (v[i] - d->mean) * (v[i] - d->mean);
        d->std = sqrt(acc / (double) n);
    }

    qsort(v, n, sizeof(*v), cmp_double);
    d->min = v[0];
    d->max = v[n - 1];
    if (n % 2)
        d->median = v[n / 2];
    else
        d->median = (v[n / 2 - 1] + v[n / 2]) / 2.;
    for (size_t i = 0; i < n_pcts; i++)
        d->pct[i] = db_percentile_sorted(v, n, pcts[i]);
}
