/*
 * The serve script: JSONL, one entry per request (db_serve_int.h). Strict:
 * an unknown key or a value of the wrong type or range is an error naming
 * the key, so a typo in a test's script cannot pass silently.
 */

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "db_fail.h"
#include "db_serve_int.h"

void
db_serve_entry_init(db_serve_entry_t *e)
{
    memset(e, 0, sizeof(*e));
    e->ttft_ms = -1.0;
    e->tokens = -1;
    e->chunk_tokens = -1;
    e->empty_chunks = 0;
    e->usage = -1;
    e->status = 0;
    e->error_after = -1;
    e->disconnect_after = -1;
    e->prompt_log = 1;
}

void
db_serve_entry_free(db_serve_entry_t *e)
{
    free(e->itl_ms);
    free(e->error);
    db_serve_entry_init(e);
}

static int
get_ms(const char *key, json_t *v, double *out, char *err, size_t errlen)
{
    double  d;

    if (!json_is_number(v)) {
        return db_fail(err, errlen, "%s: a number of milliseconds expected",
            key);
    }
    d = json_number_value(v);
    if (!isfinite(d) || d < 0.0 || d > 86400000.0) {
        return db_fail(err, errlen, "%s: %g must be in [0, 86400000] ms", key,
            d);
    }
    *out = d;
    return 0;
}

static int
get_int(const char *key, json_t *v, int min, int max, int *out, char *err,
    size_t errlen)
{
    double  d;

    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < min || i > max) {
            return db_fail(err, errlen, "%s: %lld must be in [%d, %d]", key,
                (long long) i, min, max);
        }
        *out = (int) i;
        return 0;
    }
    if (json_is_real(v)) {
        d = json_real_value(v);
        if (d == floor(d) && d >= min && d <= max) {
            *out = (int) d;
            return 0;
        }
    }
    return db_fail(err, errlen, "%s: an integer in [%d, %d] expected", key, min,
        max);
}

static int
get_bool(const char *key, json_t *v, int *out, char *err, size_t errlen)
{
    if (!json_is_boolean(v)) {
        return db_fail(err, errlen, "%s: true or false expected", key);
    }
    *out = json_is_true(v);
    return 0;
}

static int
get_itl(json_t *v, db_serve_entry_t *e, char *err, size_t errlen)
{
    size_t  i, n;

    free(e->itl_ms);
    e->itl_ms = NULL;
    e->n_itl = 0;
    if (json_is_number(v)) {
        n = 1;
    } else if (json_is_array(v)) {
        n = json_array_size(v);
        if (n == 0) {
            return db_fail(err, errlen, "itl_ms: empty array");
        }
        if (n > DB_SERVE_ITL_MAX) {
            return db_fail(err, errlen, "itl_ms: more than %d entries",
                DB_SERVE_ITL_MAX);
        }
    } else {
        return db_fail(err, errlen, "itl_ms: a number or an array of numbers "
            "expected");
    }
    e->itl_ms = malloc(n * sizeof(double));
    if (e->itl_ms == NULL) {
        return db_fail(err, errlen, "out of memory");
    }
    for (i = 0; i < n; i++) {
        json_t *x = json_is_array(v) ? json_array_get(v, i) : v;
        char    key[32];

        snprintf(key, sizeof(key), json_is_array(v) ? "itl_ms[%zu]"
            : "itl_ms", i);
        if (get_ms(key, x, &e->itl_ms[i], err, errlen) != 0) {
            return -1;
        }
    }
    e->n_itl = n;
    return 0;
}

static int
apply_key(const char *key, json_t *v, db_serve_entry_t *e, char *err,
    size_t errlen)
{
    if (strcmp(key, "ttft_ms") == 0) {
        return get_ms(key, v, &e->ttft_ms, err, errlen);
    }
    if (strcmp(key, "itl_ms") == 0) {
        return get_itl(v, e, err, errlen);
    }
    if (strcmp(key, "tokens") == 0) {
        return get_int(key, v, 0, 10000000, &e->tokens, err, errlen);
    }
    if (strcmp(key, "chunk_tokens") == 0) {
        return get_int(key, v, 1, 1000000, &e->chunk_tokens, err, errlen);
    }
    if (strcmp(key, "empty_chunks") == 0) {
        return get_bool(key, v, &e->empty_chunks, err, errlen);
    }
    if (strcmp(key, "usage") == 0) {
        return get_bool(key, v, &e->usage, err, errlen);
    }
    if (strcmp(key, "prompt_log") == 0) {
        return get_bool(key, v, &e->prompt_log, err, errlen);
    }
    if (strcmp(key, "status") == 0) {
        if (get_int(key, v, 200, 599, &e->status, err, errlen) != 0) {
            return -1;
        }
        if (e->status != 200 && e->status < 400) {
            return db_fail(err, errlen, "status: %d is not 200 or an error "
                "status (400-599)", e->status);
        }
        if (e->status == 200) {
            e->status = 0;
        }
        return 0;
    }
    if (strcmp(key, "error_after") == 0) {
        return get_int(key, v, 0, 10000000, &e->error_after, err, errlen);
    }
    if (strcmp(key, "disconnect_after") == 0) {
        return get_int(key, v, 0, 10000000, &e->disconnect_after, err,
            errlen);
    }
    if (strcmp(key, "error") == 0) {
        if (!json_is_string(v)) {
            return db_fail(err, errlen, "error: a string expected");
        }
        free(e->error);
        e->error = strdup(json_string_value(v));
        if (e->error == NULL) {
            return db_fail(err, errlen, "out of memory");
        }
        return 0;
    }
    return db_fail(err, errlen, "unknown key '%.64s' (ttft_ms, itl_ms, tokens, "
        "chunk_tokens, empty_chunks, usage, status, error_after, "
        "disconnect_after, error, prompt_log)", key);
}

int
db_serve_script_parse_line(const char *line, size_t len, db_serve_entry_t *e,
    char *err, size_t errlen)
{
    json_error_t  je;
    json_t       *root, *v;
    const char   *key;

    db_serve_entry_init(e);
    root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        return db_fail(err, errlen, "bad JSON: %s (column %d)", je.text,
            je.column);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return db_fail(err, errlen, "a JSON object expected");
    }
    json_object_foreach(root, key, v) {
        if (apply_key(key, v, e, err, errlen) != 0) {
            json_decref(root);
            db_serve_entry_free(e);
            return -1;
        }
    }
    json_decref(root);
    return 0;
}

void
db_serve_script_free(db_serve_script_t *s)
{
    size_t  i;

    for (i = 0; i < s->n; i++) {
        db_serve_entry_free(&s->v[i]);
    }
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static int
blank(const char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (p[i] == '#') {
            return 1;
        }
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') {
            return 0;
        }
    }
    return 1;
}

int
db_serve_script_load_fp(FILE *fp, const char *name, db_serve_script_t *s,
    char *err, size_t errlen)
{
    char     *line = NULL, msg[256];
    size_t    cap = 0, lineno = 0;
    ssize_t   n;

    memset(s, 0, sizeof(*s));
    while ((n = getline(&line, &cap, fp)) >= 0) {
        size_t  len = (size_t) n;

        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            len--;
        }
        if (blank(line, len)) {
            continue;
        }
        if (s->n == s->cap) {
            size_t             nc = s->cap ? s->cap * 2 : 16;
            db_serve_entry_t  *v = realloc(s->v, nc * sizeof(*v));

            if (v == NULL) {
                free(line);
                db_serve_script_free(s);
                return db_fail(err, errlen, "%s:%zu: out of memory", name,
                    lineno);
            }
            s->v = v;
            s->cap = nc;
        }
        if (db_serve_script_parse_line(line, len, &s->v[s->n], msg,
                sizeof(msg)) != 0)
        {
            free(line);
            db_serve_script_free(s);
            return db_fail(err, errlen, "%s:%zu: %s", name, lineno, msg);
        }
        s->n++;
    }
    free(line);
    if (ferror(fp)) {
        db_serve_script_free(s);
        return db_fail(err, errlen, "%s: read error", name);
    }
    if (s->n == 0) {
        return db_fail(err, errlen, "%s: no entries", name);
    }
    return 0;
}

int
db_serve_script_load(const char *path, db_serve_script_t *s, char *err,
    size_t errlen)
{
    FILE  *fp = fopen(path, "r");
    int    rc;

    memset(s, 0, sizeof(*s));
    if (fp == NULL) {
        return db_fail(err, errlen, "%s: %s", path, strerror(errno));
    }
    rc = db_serve_script_load_fp(fp, path, s, err, errlen);
    fclose(fp);
    return rc;
}
