#ifndef DB_OPTS_INT_H
#define DB_OPTS_INT_H

/* db_opts.c's value readers (db_opts_value.c). Each returns 0, or -1 with
 * a message naming --flag in err. */

#include <stddef.h>

#include "db_fail.h"
#include "db_opts.h"


/* A finite number in [min, max]; *_open excludes that end. HUGE_VAL as
 * max: no upper bound. */
int db_opt_double(const char *flag, const char *s, double min, int min_open,
    double max, int max_open, double *out, char *err, size_t errlen);
int db_opt_long(const char *flag, const char *s, long long min,
    long long max, long long *out, char *err, size_t errlen);
int db_opt_int(const char *flag, const char *s, int min, int *out,
    char *err, size_t errlen);
int db_opt_size(const char *flag, const char *s, long long min, size_t *out,
    char *err, size_t errlen);
/* A request count: an integer in [min, DB_OPT_COUNT_MAX]. */
#define DB_OPT_COUNT_MAX  100000000
int db_opt_count(const char *flag, const char *s, long long min,
    size_t *out, char *err, size_t errlen);
/* Replaces *dst with a copy of s. */
int db_opt_str(char **dst, const char *s, char *err, size_t errlen);

/* Comma- or space-separated lists, replacing what was there. */
int db_opt_metrics(db_opts_t *o, const char *s, char *err, size_t errlen);
int db_opt_pcts(db_opts_t *o, const char *s, char *err, size_t errlen);
int db_opt_sweep(db_opts_t *o, const char *s, char *err, size_t errlen);

#endif
