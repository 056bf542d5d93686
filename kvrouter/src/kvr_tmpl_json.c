/*
 * kvrouter: chat templates, request JSON (jansson) to template values, as
 * JSON.parse and the reference's conversion would give them: numbers are
 * doubles, integral ones integers; integer-like keys come first.
 */
#include <jansson.h>
#include <math.h>
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

static int
from_json(kvr_tmpl_ctx_t *c, const json_t *j, kvr_tmpl_val_t *out, int depth)
{
    kvr_tmpl_arr_t  *a;
    kvr_tmpl_obj_t  *o;
    kvr_tmpl_val_t   v;
    const char      *key, *kcopy;
    json_t          *val;
    size_t           i, m, kn;
    double           d, di, dj;
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
        /* integer-like keys first, ascending, as Object.entries gives them */
        for (i = 1, m = 0; i < o->n; i++) {
            kvr_tmpl_ent_t  e = o->e[i];

            if (!array_index(e.k, e.kn, &di)) {
                continue;
            }
            for (m = i; m > 0; m--) {
                if (array_index(o->e[m - 1].k, o->e[m - 1].kn, &dj)
                    && dj < di)
                {
                    break;
                }
                o->e[m] = o->e[m - 1];
            }
            o->e[m] = e;
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
