/*
 * kvrouter: chat templates, tests (`x is defined`, ...), as
 * @huggingface/jinja defines them: e.g. `lower` is false for a non-string,
 * `iterable` is false for tuples and dicts, and `eq` without a value to
 * compare with is an error.
 */
#include <math.h>
#include <string.h>

#include "kvr_tmpl_int.h"

enum {
    T_BOOLEAN = 0, T_CALLABLE, T_ODD, T_EVEN, T_FALSE, T_TRUE, T_NONE,
    T_STRING, T_NUMBER, T_INTEGER, T_ITERABLE, T_MAPPING, T_SEQUENCE,
    T_LOWER, T_UPPER, T_DEFINED, T_UNDEFINED, T_EQUALTO, T_EQ, T_COUNT
};
static const char *test_names[T_COUNT] = {
    "boolean", "callable", "odd", "even", "false", "true", "none", "string",
    "number", "integer", "iterable", "mapping", "sequence", "lower", "upper",
    "defined", "undefined", "equalto", "eq"
};

int
kvr_tmpl_test_id(const char *s, size_t n)
{
    int  i;

    for (i = 0; i < T_COUNT; i++) {
        if (strlen(test_names[i]) == n && memcmp(test_names[i], s, n) == 0) {
            return i;
        }
    }
    return -1;
}

int
kvr_tmpl_run_test(kvr_tmpl_ctx_t *c, int line, int tid,
    const kvr_tmpl_val_t *v, const kvr_tmpl_val_t *arg, int *res)
{
    kvr_tmpl_val_t  cv;
    int             rc;

    switch (tid) {
    case T_BOOLEAN:
        *res = v->k == V_BOOL;
        return KVR_OK;
    case T_CALLABLE:
        *res = v->k == V_FUNC;
        return KVR_OK;
    case T_ODD:
    case T_EVEN:
        if (v->k != V_INT) {
            return kvr_tmpl_error(c, line, "cannot test %s on a non-integer",
                                  test_names[tid]);
        }
        *res = (fmod(v->u.n, 2) != 0) == (tid == T_ODD);
        return KVR_OK;
    case T_FALSE:
        *res = v->k == V_BOOL && !v->u.b;
        return KVR_OK;
    case T_TRUE:
        *res = v->k == V_BOOL && v->u.b;
        return KVR_OK;
    case T_NONE:
        *res = v->k == V_NONE;
        return KVR_OK;
    case T_STRING:
        *res = v->k == V_STR;
        return KVR_OK;
    case T_NUMBER:
        *res = v->k == V_INT || v->k == V_FLOAT;
        return KVR_OK;
    case T_INTEGER:
        *res = v->k == V_INT;
        return KVR_OK;
    case T_ITERABLE:
        *res = (v->k == V_ARRAY && !v->u.a->tuple) || v->k == V_STR;
        return KVR_OK;
    case T_MAPPING:
        *res = v->k == V_OBJECT || v->k == V_KWARGS;
        return KVR_OK;
    case T_SEQUENCE:
        *res = v->k == V_ARRAY || v->k == V_OBJECT || v->k == V_KWARGS
               || v->k == V_STR;
        return KVR_OK;
    case T_LOWER:
    case T_UPPER:
        if (v->k != V_STR) {
            *res = 0;
            return KVR_OK;
        }
        rc = kvr_tmpl_case(c, v->u.s.p, v->u.s.len, tid == T_UPPER, &cv);
        if (rc) {
            return rc;
        }
        *res = cv.u.s.len == v->u.s.len
               && memcmp(cv.u.s.p, v->u.s.p, v->u.s.len) == 0;
        return KVR_OK;
    case T_DEFINED:
        *res = v->k != V_UNDEF;
        return KVR_OK;
    case T_UNDEFINED:
        *res = v->k == V_UNDEF;
        return KVR_OK;
    default:
        /* equalto/eq: a.value === b.value; without b the reference fails */
        if (arg == NULL) {
            return kvr_tmpl_error(c, line, "test %s needs a value to compare "
                                  "with", test_names[tid]);
        }
        *res = kvr_tmpl_strict_eq(v, arg);
        return KVR_OK;
    }
}
