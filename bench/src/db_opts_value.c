/*
 * dynamo-bench's option values: numbers checked whole and within bounds,
 * comma- or space-separated lists, vLLM's --goodput KEY:VALUE words. Every
 * refusal names the flag.
 */

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_opts_int.h"

int
db_opt_double(const char *flag, const char *s, double min, int min_open,
    double max, int max_open, double *out, char *err, size_t errlen)
{
    char    *end;
    double   v;

    errno = 0;
    v = strtod(s, &end);
    if (*s == '\0' || end == s || *end != '\0' || errno == ERANGE
        || !isfinite(v))
    {
        return db_fail(err, errlen, "--%s: '%s' is not a number", flag, s);
    }
    if (v < min || (min_open && v == min) || v > max
        || (max_open && v == max))
    {
        if (max == HUGE_VAL) {
            return db_fail(err, errlen, "--%s: %s must be %s %g", flag, s,
                min_open ? ">" : ">=", min);
        }
        return db_fail(err, errlen,
            "--%s: %s must be in %c%g, %g%c", flag, s,
            min_open ? '(' : '[', min, max, max_open ? ')' : ']');
    }
    *out = v;
    return 0;
}

int
db_opt_long(const char *flag, const char *s, long long min, long long max,
    long long *out, char *err, size_t errlen)
{
    char       *end;
    long long   v;
    const char *p = s;

    while (isspace((unsigned char) *p)) {
        p++;
    }
    errno = 0;
    v = strtoll(p, &end, 10);
    if (*p == '\0' || end == p || *end != '\0' || errno == ERANGE) {
        return db_fail(err, errlen,
            "--%s: '%s' is not an integer", flag, s);
    }
    if (v < min || v > max) {
        if (max == (long long) INT32_MAX || max == (long long) INT64_MAX) {
            return db_fail(err, errlen, "--%s: %s must be >= %lld", flag, s,
                min);
        }
        return db_fail(err, errlen,
            "--%s: %s must be in [%lld, %lld]", flag,
            s, min, max);
    }
    *out = v;
    return 0;
}

int
db_opt_int(const char *flag, const char *s, int min, int *out, char *err,
    size_t errlen)
{
    long long  v;

    if (db_opt_long(flag, s, min, INT32_MAX, &v, err, errlen) != 0) {
        return -1;
    }
    *out = (int) v;
    return 0;
}

int
db_opt_size(const char *flag, const char *s, long long min, size_t *out,
    char *err, size_t errlen)
{
    long long  v;

    if (db_opt_long(flag, s, min, INT64_MAX, &v, err, errlen) != 0) {
        return -1;
    }
    *out = (size_t) v;
    return 0;
}

int
db_opt_count(const char *flag, const char *s, long long min, size_t *out,
    char *err, size_t errlen)
{
    long long  v;

    if (db_opt_long(flag, s, min, DB_OPT_COUNT_MAX, &v, err, errlen) != 0) {
        return -1;
    }
    *out = (size_t) v;
    return 0;
}

int
db_opt_str(char **dst, const char *s, char *err, size_t errlen)
{
    char  *c = strdup(s);

    if (c == NULL) {
        return db_fail(err, errlen, "out of memory");
    }
    free(*dst);
    *dst = c;
    return 0;
}

/* Splits on commas and spaces; calls fn for each non-empty word. */
typedef int (*word_fn)(db_opts_t *o, const char *w, char *err,
    size_t errlen);

static int
each_word(db_opts_t *o, const char *spec, word_fn fn, size_t *count,
    char *err, size_t errlen)
{
    char        w[256];
    const char *p = spec;
    size_t      n;

    *count = 0;
    for (;;) {
        while (*p == ',' || isspace((unsigned char) *p)) {
            p++;
        }
        if (*p == '\0') {
            return 0;
        }
        n = strcspn(p, ", \t\n\r\v\f");
        if (n >= sizeof(w)) {
            return db_fail(err, errlen, "'%.40s...' is too long", p);
        }
        memcpy(w, p, n);
        w[n] = '\0';
        if (fn(o, w, err, errlen) != 0) {
            return -1;
        }
        (*count)++;
        p += n;
    }
}

/* vLLM's --goodput: KEY:VALUE pairs, keys ttft / tpot / e2el, values in
 * milliseconds, non-negative. */
static int
goodput_word(db_opts_t *o, const char *w, char *err, size_t errlen)
{
    const char *colon = strchr(w, ':');
    double      v;
    size_t      klen;
    char        key[32];

    if (colon == NULL) {
        return db_fail(err, errlen, "--goodput: '%s' is not KEY:VALUE "
            "(keys ttft, tpot, e2el; values in ms)", w);
    }
    klen = (size_t) (colon - w);
    if (klen >= sizeof(key)) {
        klen = sizeof(key) - 1;
    }
    memcpy(key, w, klen);
    key[klen] = '\0';
    if (strcmp(key, "ttft") != 0 && strcmp(key, "tpot") != 0
        && strcmp(key, "e2el") != 0)
    {
        return db_fail(err, errlen,
            "--goodput: unknown metric '%s' in '%s' "
            "(one of ttft, tpot, e2el)", key, w);
    }
    if (db_opt_double("goodput", colon + 1, 0.0, 0, HUGE_VAL, 0, &v, err,
            errlen) != 0)
    {
        return db_fail(err, errlen,
            "--goodput: %s: '%s' is not a number of "
            "milliseconds >= 0", key, colon + 1);
    }
    if (key[0] == 't' && key[1] == 't') {
        o->goodput_ttft_ms = v;
    } else if (key[0] == 't') {
        o->goodput_tpot_ms = v;
    } else {
        o->goodput_e2el_ms = v;
    }
    return 0;
}

int
db_goodput_parse(db_opts_t *o, const char *spec, char *err, size_t errlen)
{
    size_t  n;

    if (each_word(o, spec, goodput_word, &n, err, errlen) != 0) {
        return -1;
    }
    if (n == 0) {
        return db_fail(err, errlen, "--goodput: empty (KEY:MS, keys ttft, "
            "tpot, e2el)");
    }
    return 0;
}

static int
metric_word(db_opts_t *o, const char *w, char *err, size_t errlen)
{
    if (strcmp(w, "ttft") == 0) {
        o->pct_metrics |= DB_M_TTFT;
    } else if (strcmp(w, "tpot") == 0) {
        o->pct_metrics |= DB_M_TPOT;
    } else if (strcmp(w, "itl") == 0) {
        o->pct_metrics |= DB_M_ITL;
    } else if (strcmp(w, "e2el") == 0) {
        o->pct_metrics |= DB_M_E2EL;
    } else {
        return db_fail(err, errlen, "--percentile-metrics: unknown metric "
            "'%s' (ttft, tpot, itl, e2el)", w);
    }
    return 0;
}

static int
pct_word(db_opts_t *o, const char *w, char *err, size_t errlen)
{
    double  v;

    if (o->n_pcts == DB_PCT_MAX) {
        return db_fail(err, errlen, "--metric-percentiles: more than %d",
            DB_PCT_MAX);
    }
    if (db_opt_double("metric-percentiles", w, 0.0, 1, 100.0, 0, &v, err,
            errlen) != 0)
    {
        return -1;
    }
    o->pcts[o->n_pcts++] = v;
    return 0;
}

static int
sweep_word(db_opts_t *o, const char *w, char *err, size_t errlen)
{
    size_t  v;

    if (o->n_sweep == DB_SWEEP_MAX) {
        return db_fail(err, errlen, "--concurrency: more than %d steps",
            DB_SWEEP_MAX);
    }
    if (db_opt_size("concurrency", w, 1, &v, err, errlen) != 0) {
        return -1;
    }
    /* a step's files are named by its concurrency (-cN.jsonl, -cN-cdf.png):
     * a repeated value would overwrite the first one's */
    for (size_t i = 0; i < o->n_sweep; i++) {
        if (o->sweep[i] == v) {
            return db_fail(err, errlen, "--concurrency: %zu is listed "
                "twice", v);
        }
    }
    o->sweep[o->n_sweep++] = v;
    return 0;
}

int
db_opt_metrics(db_opts_t *o, const char *s, char *err, size_t errlen)
{
    size_t  n;

    o->pct_metrics = 0;
    if (each_word(o, s, metric_word, &n, err, errlen) != 0) {
        return -1;
    }
    if (n == 0) {
        return db_fail(err, errlen, "--percentile-metrics: empty");
    }
    return 0;
}

int
db_opt_pcts(db_opts_t *o, const char *s, char *err, size_t errlen)
{
    size_t  n;

    o->n_pcts = 0;
    if (each_word(o, s, pct_word, &n, err, errlen) != 0) {
        return -1;
    }
    if (n == 0) {
        return db_fail(err, errlen, "--metric-percentiles: empty");
    }
    return 0;
}

int
db_opt_sweep(db_opts_t *o, const char *s, char *err, size_t errlen)
{
    size_t  n;

    o->n_sweep = 0;
    if (each_word(o, s, sweep_word, &n, err, errlen) != 0) {
        return -1;
    }
    if (n == 0) {
        return db_fail(err, errlen, "--concurrency: empty sweep "
            "(N,N,...)");
    }
    return 0;
}
