/*
 * Mooncake / AIPerf trace parser: JSONL, one request per line, each line
 * parsed on its own with jansson. Required: input_length (integer >= 0),
 * output_length (integer >= 1), hash_ids (non-negative integers);
 * optional: timestamp (ms >= 0; all lines or none, except that a later
 * turn of a session may give only a delay, as AIPerf's multi-turn traces
 * do: its time is then the previous turn's plus the delay), session_id
 * (integer or string, interned to dense indexes), delay (ms >= 0). Unknown keys
 * (text_input, ...) are ignored. Errors name the line and the field.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "db_trace.h"
#include "db_trace_int.h"

#define DB_TRACE_LINE_MAX   ((size_t) 64 << 20)
#define DB_TRACE_LEN_MAX    ((int64_t) 1 << 24)   /* tokens per field */

void
db_trace_rec_free(db_trace_rec_t *rec)
{
    if (rec != NULL) {
        free(rec->hash_ids);
        free(rec->session_name);
        rec->hash_ids = NULL;
        rec->session_name = NULL;
        rec->n_hash_ids = 0;
    }
}

void
db_trace_free(db_trace_t *tr)
{
    size_t  i;

    if (tr == NULL) {
        return;
    }
    for (i = 0; i < tr->n; i++) {
        db_trace_rec_free(&tr->v[i]);
    }
    free(tr->v);
    memset(tr, 0, sizeof(*tr));
}

typedef struct {
    double  ts;
    size_t  i;
} order_t;

static int
order_cmp(const void *a, const void *b)
{
    const order_t  *x = a, *y = b;

    if (x->ts != y->ts) {
        return x->ts < y->ts ? -1 : 1;
    }
    return x->i < y->i ? -1 : x->i > y->i;   /* stable */
}

size_t *
db_trace_order(const db_trace_t *tr)
{
    order_t  *ord = malloc((tr->n ? tr->n : 1) * sizeof(*ord));
    size_t   *idx = malloc((tr->n ? tr->n : 1) * sizeof(*idx));
    size_t    i;

    if (ord == NULL || idx == NULL) {
        free(ord);
        free(idx);
        return NULL;
    }
    for (i = 0; i < tr->n; i++) {
        ord[i].ts = tr->v[i].timestamp_ms;
        ord[i].i = i;
    }
    qsort(ord, tr->n, sizeof(*ord), order_cmp);
    for (i = 0; i < tr->n; i++) {
        idx[i] = ord[i].i;
    }
    free(ord);
    return idx;
}

static int
get_int(json_t *o, const char *key, int64_t min, int64_t max, int required,
    int64_t *out, char *err, size_t errlen)
{
    json_t  *v = json_object_get(o, key);

    if (v == NULL) {
        if (required) {
            snprintf(err, errlen, "\"%s\" is missing", key);
            return -1;
        }
        return 1;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min
        || json_integer_value(v) > max)
    {
        snprintf(err, errlen, "\"%s\" must be an integer in [%lld, %lld]",
                 key, (long long) min, (long long) max);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static int
get_ms(json_t *o, const char *key, double *out, char *err, size_t errlen)
{
    json_t  *v = json_object_get(o, key);

    if (v == NULL) {
        return 1;
    }
    if (!json_is_number(v) || !(json_number_value(v) >= 0)
        || json_number_value(v) > 1e15)
    {
        snprintf(err, errlen, "\"%s\" must be a number >= 0 (ms)", key);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static int
get_hash_ids(json_t *o, db_trace_rec_t *rec, char *err, size_t errlen)
{
    json_t  *a = json_object_get(o, "hash_ids"), *v;
    size_t   i, n;

    if (a == NULL) {
        snprintf(err, errlen, "\"hash_ids\" is missing");
        return -1;
    }
    if (!json_is_array(a)) {
        goto bad;
    }
    n = json_array_size(a);
    rec->hash_ids = malloc((n ? n : 1) * sizeof(*rec->hash_ids));
    if (rec->hash_ids == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    json_array_foreach(a, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            goto bad;
        }
        rec->hash_ids[i] = (uint64_t) json_integer_value(v);
    }
    rec->n_hash_ids = n;
    return 0;
bad:
    snprintf(err, errlen,
             "\"hash_ids\" must be an array of non-negative integers");
    return -1;
}

int
db_trace_parse_line(const char *line, size_t len, db_trace_rec_t *rec,
    char *err, size_t errlen)
{
    json_error_t  je;
    json_t       *o, *sid;
    int           rc = -1;

    memset(rec, 0, sizeof(*rec));
    rec->timestamp_ms = -1;
    rec->session = -1;
    rec->delay_ms = -1;
    o = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                   &je);
    if (o == NULL) {
        snprintf(err, errlen, "invalid JSON at column %d: %s", je.column,
                 je.text);
        return -1;
    }
    if (!json_is_object(o)) {
        snprintf(err, errlen, "not a JSON object");
        goto done;
    }
    if (get_int(o, "input_length", 0, DB_TRACE_LEN_MAX, 1,
                &rec->input_length, err, errlen) != 0
        || get_int(o, "output_length", 1, DB_TRACE_LEN_MAX, 1,
                   &rec->output_length, err, errlen) != 0
        || get_hash_ids(o, rec, err, errlen) != 0
        || get_ms(o, "timestamp", &rec->timestamp_ms, err, errlen) < 0
        || get_ms(o, "delay", &rec->delay_ms, err, errlen) < 0)
    {
        goto done;
    }
    sid = json_object_get(o, "session_id");
    if (sid != NULL) {
        if (json_is_integer(sid) && json_integer_value(sid) >= 0) {
            rec->session = json_integer_value(sid);
        } else if (json_is_string(sid)) {
            rec->session_name = strdup(json_string_value(sid));
            if (rec->session_name == NULL) {
                snprintf(err, errlen, "out of memory");
                goto done;
            }
        } else {
            snprintf(err, errlen, "\"session_id\" must be a non-negative "
                     "integer or a string");
            goto done;
        }
    }
    rc = 0;
done:
    json_decref(o);
    if (rc != 0) {
        db_trace_rec_free(rec);
    }
    return rc;
}

/* Session ids (integers and strings apart) to dense indexes. */
typedef struct {
    char     **keys;
    int64_t   *idx;
    size_t     cap;
    size_t     n;
} intern_t;

static uint64_t
str_hash(const char *s)
{
    uint64_t  h = 1469598103934665603ULL;

    while (*s) {
        h = (h ^ (unsigned char) *s++) * 1099511628211ULL;
    }
    return h;
}

/* The index of key (taken over on insertion, freed otherwise); -1 OOM. */
static int64_t
intern(intern_t *t, char *key)
{
    size_t  i;

    if ((t->n + 1) * 2 > t->cap) {
        size_t    cap = t->cap ? t->cap * 2 : 64;
        char    **keys = calloc(cap, sizeof(*keys));
        int64_t  *idx = calloc(cap, sizeof(*idx));

        if (keys == NULL || idx == NULL) {
            free(keys);
            free(idx);
            free(key);
            return -1;
        }
        for (i = 0; i < t->cap; i++) {
            if (t->keys[i] != NULL) {
                size_t  j = str_hash(t->keys[i]) & (cap - 1);

                while (keys[j] != NULL) {
                    j = (j + 1) & (cap - 1);
                }
                keys[j] = t->keys[i];
                idx[j] = t->idx[i];
            }
        }
        free(t->keys);
        free(t->idx);
        t->keys = keys;
        t->idx = idx;
        t->cap = cap;
    }
    i = str_hash(key) & (t->cap - 1);
    while (t->keys[i] != NULL) {
        if (strcmp(t->keys[i], key) == 0) {
            free(key);
            return t->idx[i];
        }
        i = (i + 1) & (t->cap - 1);
    }
    t->keys[i] = key;
    t->idx[i] = (int64_t) t->n++;
    return t->idx[i];
}

static void
intern_free(intern_t *t)
{
    size_t  i;

    for (i = 0; i < t->cap; i++) {
        free(t->keys[i]);
    }
    free(t->keys);
    free(t->idx);
}

static char *
session_key(const db_trace_rec_t *rec)
{
    size_t  n = rec->session_name ? strlen(rec->session_name) + 2 : 24;
    char   *k = malloc(n);

    if (k != NULL) {
        if (rec->session_name) {
            snprintf(k, n, "s%s", rec->session_name);
        } else {
            snprintf(k, n, "i%lld", (long long) rec->session);
        }
    }
    return k;
}

/*
 * Reads one line into *buf (without the newline). Returns 1 with a line,
 * 0 at the end, -1 when the line exceeds the limit or memory runs out, -2
 * on a read error.
 */
static int
read_line(FILE *fp, char **buf, size_t *cap, size_t *len)
{
    int  c;

    *len = 0;
    while ((c = getc(fp)) != EOF) {
        if (c == '\n') {
            return 1;
        }
        if (*len + 2 > *cap) {
            size_t  ncap = *cap ? *cap * 2 : 4096;
            char   *p;

            if (*len >= DB_TRACE_LINE_MAX) {
                return -1;
            }
            p = realloc(*buf, ncap);
            if (p == NULL) {
                return -1;
            }
            *buf = p;
            *cap = ncap;
        }
        (*buf)[(*len)++] = (char) c;
        if (*len > DB_TRACE_LINE_MAX) {
            return -1;
        }
    }
    if (ferror(fp)) {
        return -2;              /* errno says why */
    }
    return *len > 0 ? 1 : 0;
}

/* Room for n per-session times. */
static int
push_ts(double **v, size_t *cap, size_t n)
{
    if (n > *cap) {
        size_t   ncap = *cap ? *cap * 2 : 64;
        double  *p = realloc(*v, ncap * sizeof(*p));

        if (p == NULL) {
            return -1;
        }
        *v = p;
        *cap = ncap;
    }
    return 0;
}

static int
blank(const char *s, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') {
            return 0;
        }
    }
    return 1;
}

/* What db_trace_load_fp carries from line to line. */
typedef struct {
    intern_t   it;
    double    *sess_ts;     /* by session: its last time */
    size_t     sess_cap;
    int        has_ts;      /* -1 before the first record */
    size_t     ts_line;     /* the line that set has_ts */
} load_t;

/*
 * Interns rec's session id and applies the timestamp rule (all lines or
 * none; a later turn of a session may give only a delay). -1 with a
 * message (rec is the caller's to free).
 */
static int
sequence(load_t *L, db_trace_rec_t *rec, const char *name, size_t lineno,
    char *err, size_t errlen)
{
    int  later = 0;

    if (rec->session >= 0 || rec->session_name != NULL) {
        char    *key = session_key(rec);
        size_t   before = L->it.n;

        rec->session = key ? intern(&L->it, key) : -1;
        free(rec->session_name);
        rec->session_name = NULL;
        if (rec->session < 0
            || push_ts(&L->sess_ts, &L->sess_cap, L->it.n) != 0)
        {
            snprintf(err, errlen, "%s:%zu: out of memory", name, lineno);
            return -1;
        }
        later = L->it.n == before;
    }
    if (L->has_ts < 0) {
        L->has_ts = rec->timestamp_ms >= 0;
        L->ts_line = lineno;
    } else if (L->has_ts && rec->timestamp_ms < 0 && later) {
        /* AIPerf's later turns: the previous turn's time + delay */
        rec->timestamp_ms = L->sess_ts[rec->session]
                            + (rec->delay_ms > 0 ? rec->delay_ms : 0);
    } else if (L->has_ts != (rec->timestamp_ms >= 0)) {
        snprintf(err, errlen, "%s:%zu: \"timestamp\" %s, but line %zu "
                 "%s (all lines or none; a later turn of a session may "
                 "give only a delay)", name, lineno,
                 L->has_ts ? "is missing" : "is present",
                 L->ts_line, L->has_ts ? "has one" : "has none");
        return -1;
    }
    if (rec->session >= 0) {
        L->sess_ts[rec->session] = rec->timestamp_ms;
    }
    return 0;
}

static int
push_rec(db_trace_t *tr, const db_trace_rec_t *rec)
{
    if (tr->n == tr->cap) {
        size_t           ncap = tr->cap ? tr->cap * 2 : 256;
        db_trace_rec_t  *v = realloc(tr->v, ncap * sizeof(*v));

        if (v == NULL) {
            return -1;
        }
        tr->v = v;
        tr->cap = ncap;
    }
    tr->v[tr->n++] = *rec;
    return 0;
}

int
db_trace_load_fp(FILE *fp, const char *name, db_trace_t *tr, char *err,
    size_t errlen)
{
    char            *buf = NULL, msg[256];
    size_t           cap = 0, len, lineno = 0;
    int              r, rc = -1;
    load_t           L = { .has_ts = -1 };
    db_trace_rec_t   rec;

    memset(tr, 0, sizeof(*tr));
    for (;;) {
        r = read_line(fp, &buf, &cap, &len);
        if (r == 0) {
            break;
        }
        lineno++;
        if (r == -2) {
            snprintf(err, errlen, "%s:%zu: read error: %s", name, lineno,
                     strerror(errno));
            goto done;
        }
        if (r < 0) {
            snprintf(err, errlen, "%s:%zu: line longer than %zu MiB (or out "
                     "of memory)", name, lineno, DB_TRACE_LINE_MAX >> 20);
            goto done;
        }
        if (blank(buf, len)) {
            continue;
        }
        if (db_trace_parse_line(buf, len, &rec, msg, sizeof(msg)) != 0) {
            snprintf(err, errlen, "%s:%zu: %s", name, lineno, msg);
            goto done;
        }
        if (sequence(&L, &rec, name, lineno, err, errlen) != 0) {
            db_trace_rec_free(&rec);
            goto done;
        }
        if (push_rec(tr, &rec) != 0) {
            db_trace_rec_free(&rec);
            snprintf(err, errlen, "%s:%zu: out of memory", name, lineno);
            goto done;
        }
    }
    tr->n_sessions = L.it.n;
    rc = 0;
done:
    free(buf);
    free(L.sess_ts);
    intern_free(&L.it);
    if (rc != 0) {
        db_trace_free(tr);
    }
    return rc;
}

int
db_trace_load(const char *path, db_trace_t *tr, char *err, size_t errlen)
{
    FILE  *fp;
    int    rc;

    memset(tr, 0, sizeof(*tr));
    if (strcmp(path, "-") == 0) {
        return db_trace_load_fp(stdin, "<stdin>", tr, err, errlen);
    }
    fp = fopen(path, "r");
    if (fp == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    rc = db_trace_load_fp(fp, path, tr, err, errlen);
    fclose(fp);
    return rc;
}
