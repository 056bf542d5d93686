/*
 * kvrouter: chat templates, request JSON (jansson) to template values, as
 * JSON.parse and the reference's conversion would give them: numbers are
 * doubles, integral ones integers; integer-like keys come first.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kvr_tmpl_int.h"

/* nesting beyond this in input is an error, not a crash */
#define KVR_TMPL_MAX_VALUE_DEPTH  512

/* ---- from JSON ---- */

/* canonical array index ("0", "17", not "017"), as Object.entries orders */
static int
array_index(const char *k, size_t n, double *idx)
{
    size_t  i;
    double  v;

    if (n == 0 || n > 10 || (n > 1 && k[0] == '0')) {
        return 0;
    }
    v = 0;
    for (i = 0; i < n; i++) {
        if (k[i] < '0' || k[i] > '9') {
            return 0;
        }
        v = v * 10 + (k[i] - '0');
    }
    if (v > 4294967294.0) {
        return 0;
    }
    *idx = v;
    return 1;
}

typedef struct {
    double          idx;
    kvr_tmpl_ent_t  e;
} int_ent_t;

static int
int_ent_cmp(const void *a, const void *b)
{
    double  x = ((const int_ent_t *) a)->idx, y = ((const int_ent_t *) b)->idx;

    return (x > y) - (x < y);
}

/*
 * Integer-like keys first, ascending, the rest in insertion order, as
 * Object.entries gives them. O(n log n): a client controls n.
 */
static int
ints_first(kvr_tmpl_ctx_t *c, kvr_tmpl_obj_t *o)
{
    int_ent_t       *ints;
    kvr_tmpl_ent_t  *rest;
    size_t           i, ni = 0, nr = 0;
    double           d;

    for (i = 0; i < o->n && !array_index(o->e[i].k, o->e[i].kn, &d); i++) {
        /* void */
    }
    if (i == o->n) {
        return KVR_OK;
    }
    ints = malloc(o->n * sizeof(int_ent_t));
    rest = malloc(o->n * sizeof(kvr_tmpl_ent_t));
    if (ints == NULL || rest == NULL) {
        free(ints);
        free(rest);
        return kvr_tmpl_nomem(c);
    }
    for (i = 0; i < o->n; i++) {
        if (array_index(o->e[i].k, o->e[i].kn, &d)) {
            ints[ni].idx = d;
            ints[ni++].e = o->e[i];
        } else {
            rest[nr++] = o->e[i];
        }
    }
    /* keys are unique and canonical, so no two indexes are equal */
    qsort(ints, ni, sizeof(int_ent_t), int_ent_cmp);
    for (i = 0; i < ni; i++) {
        o->e[i] = ints[i].e;
    }
    memcpy(o->e + ni, rest, nr * sizeof(kvr_tmpl_ent_t));
    free(ints);
    free(rest);
    return KVR_OK;
}

static int
from_json(kvr_tmpl_ctx_t *c, const json_t *j, kvr_tmpl_val_t *out, int depth)
{
    kvr_tmpl_arr_t  *a;
    kvr_tmpl_obj_t  *o;
    kvr_tmpl_val_t   v;
    const char      *key, *kcopy;
    json_t          *val;
    size_t           i, kn;
    double           d;
    int              rc;

    if (depth > KVR_TMPL_MAX_VALUE_DEPTH) {
        return kvr_tmpl_error(c, 0, "input nested too deeply");
    }
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        o = kvr_tmpl_obj_new(c);
        if (o == NULL) {
            return kvr_tmpl_nomem(c);
        }
        json_object_foreach((json_t *) j, key, val) {
            kn = strlen(key);
            kcopy = kvr_tmpl_strdup(&c->arena, key, kn);
            if (kcopy == NULL) {
                return kvr_tmpl_nomem(c);
            }
            rc = from_json(c, val, &v, depth + 1);
            if (rc) {
                return rc;
            }
            /* jansson's keys are unique: append without a lookup */
            rc = kvr_tmpl_obj_append(c, o, kcopy, kn, v);
            if (rc) {
                return rc;
            }
        }
        rc = ints_first(c, o);
        if (rc) {
            return rc;
        }
        *out = kvr_tmpl_wrap_obj(V_OBJECT, o);
        return KVR_OK;
    case JSON_ARRAY:
        a = kvr_tmpl_arr_new(c, json_array_size(j));
        if (a == NULL) {
            return kvr_tmpl_nomem(c);
        }
        for (i = 0; i < json_array_size(j); i++) {
            rc = from_json(c, json_array_get(j, i), &a->v[i], depth + 1);
            if (rc) {
                return rc;
            }
        }
        a->n = json_array_size(j);
        *out = kvr_tmpl_wrap_arr(a);
        return KVR_OK;
    case JSON_STRING:
        key = kvr_tmpl_strdup(&c->arena, json_string_value(j),
                              json_string_length(j));
        if (key == NULL) {
            return kvr_tmpl_nomem(c);
        }
        *out = kvr_tmpl_str(key, json_string_length(j));
        return KVR_OK;
    case JSON_INTEGER:
        *out = kvr_tmpl_num(V_INT, (double) json_integer_value(j));
        return KVR_OK;
    case JSON_REAL:
        d = json_real_value(j);
        *out = kvr_tmpl_num(isfinite(d) && d == floor(d) ? V_INT : V_FLOAT, d);
        return KVR_OK;
    case JSON_TRUE:
        *out = kvr_tmpl_bool(1);
        return KVR_OK;
    case JSON_FALSE:
        *out = kvr_tmpl_bool(0);
        return KVR_OK;
    default:
        *out = kvr_tmpl_none();
        return KVR_OK;
    }
}

int
kvr_tmpl_from_json(kvr_tmpl_ctx_t *c, const json_t *j, kvr_tmpl_val_t *out)
{
    return from_json(c, j, out, 0);
}
