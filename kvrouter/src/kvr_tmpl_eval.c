/*
 * kvrouter: chat templates, expressions. Mirrors the reference
 * Interpreter's expression rules: JavaScript == on the underlying values,
 * arithmetic on doubles tagged integer/float, `+` concatenating when
 * either side is a string, `in` by === for lists and substring for
 * strings, member access falling back to the builtin methods.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* memmem */
#endif
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kvr_tmpl_int.h"

kvr_tmpl_env_t *
kvr_tmpl_env_new(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *parent)
{
    kvr_tmpl_env_t  *e;

    e = kvr_tmpl_alloc(&c->arena, sizeof(*e));
    if (e) {
        e->parent = parent;
    }
    return e;
}

int
kvr_tmpl_env_set(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env, const char *k,
    size_t kn, kvr_tmpl_val_t v)
{
    return kvr_tmpl_obj_set(c, &env->vars, k, kn, v);
}

kvr_tmpl_val_t
kvr_tmpl_env_get(kvr_tmpl_env_t *env, const char *k, size_t kn)
{
    kvr_tmpl_val_t  *v;

    for (; env; env = env->parent) {
        v = kvr_tmpl_obj_get(&env->vars, k, kn);
        if (v) {
            return *v;
        }
    }
    return kvr_tmpl_undef();
}

int
kvr_tmpl_eval_args(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env,
    kvr_tmpl_node_t *const *args, size_t nargs, kvr_tmpl_arr_t **pos,
    kvr_tmpl_obj_t **kw)
{
    kvr_tmpl_arr_t  *p;
    kvr_tmpl_obj_t  *k;
    kvr_tmpl_val_t   v;
    size_t           i, j;
    int              rc;

    p = kvr_tmpl_arr_new(c, nargs);
    k = kvr_tmpl_obj_new(c);
    if (p == NULL || k == NULL) {
        return kvr_tmpl_nomem(c);
    }
    for (i = 0; i < nargs; i++) {
        if (args[i]->kind == N_KWARG || args[i]->kind == N_KWSPREAD) {
            continue;
        }
        rc = kvr_tmpl_eval(c, env, args[i]->kind == N_SPREAD ? args[i]->a
                                                             : args[i], &v);
        if (rc) {
            return rc;
        }
        if (args[i]->kind == N_SPREAD) {
            if (v.k != V_ARRAY) {
                return kvr_tmpl_error(c, args[i]->line, "Cannot unpack "
                                      "non-iterable type");
            }
            for (j = 0; j < v.u.a->n; j++) {
                rc = kvr_tmpl_arr_push(c, p, v.u.a->v[j]);
                if (rc) {
                    return rc;
                }
            }
        } else {
            rc = kvr_tmpl_arr_push(c, p, v);
            if (rc) {
                return rc;
            }
        }
    }
    for (i = 0; i < nargs; i++) {
        if (args[i]->kind == N_KWARG) {
            rc = kvr_tmpl_eval(c, env, args[i]->a, &v);
            if (rc) {
                return rc;
            }
            if (kvr_tmpl_obj_get(k, args[i]->s, args[i]->n)) {
                return kvr_tmpl_error(c, args[i]->line, "Got multiple values "
                                      "for keyword argument '%.*s'",
                                      (int) args[i]->n, args[i]->s);
            }
            rc = kvr_tmpl_obj_set(c, k, args[i]->s, args[i]->n, v);
            if (rc) {
                return rc;
            }
        } else if (args[i]->kind == N_KWSPREAD) {
            rc = kvr_tmpl_eval(c, env, args[i]->a, &v);
            if (rc) {
                return rc;
            }
            if (v.k != V_OBJECT && v.k != V_KWARGS) {
                return kvr_tmpl_error(c, args[i]->line, "Argument after ** "
                                      "must be a mapping");
            }
            for (j = 0; j < v.u.o->n; j++) {
                if (kvr_tmpl_obj_get(k, v.u.o->e[j].k, v.u.o->e[j].kn)) {
                    return kvr_tmpl_error(c, args[i]->line, "Got multiple "
                                          "values for keyword argument '%.*s'",
                                          (int) v.u.o->e[j].kn,
                                          v.u.o->e[j].k);
                }
                rc = kvr_tmpl_obj_set(c, k, v.u.o->e[j].k, v.u.o->e[j].kn,
                                      v.u.o->e[j].v);
                if (rc) {
                    return rc;
                }
            }
        }
    }
    *pos = p;
    *kw = k;
    return KVR_OK;
}

/* Python-style slice over n items (utils.slice); idx gets the indexes */
static size_t
slice_idx(size_t len, const kvr_tmpl_val_t *a, const kvr_tmpl_val_t *b,
    const kvr_tmpl_val_t *s, long long *idx)
{
    double     start, stop, step, n;
    size_t     k;
    long long  i;

    n = (double) len;
    step = s->k == V_UNDEF ? 1 : s->u.n;
    if (step >= 0) {
        start = a->k == V_UNDEF ? 0 : a->u.n;
        start = start < 0 ? fmax(n + start, 0) : fmin(start, n);
        stop = b->k == V_UNDEF ? n : b->u.n;
        stop = stop < 0 ? fmax(n + stop, 0) : fmin(stop, n);
    } else {
        start = a->k == V_UNDEF ? n - 1 : a->u.n;
        start = start < 0 ? fmax(n + start, -1) : fmin(start, n - 1);
        stop = b->k == V_UNDEF ? -1 : b->u.n;
        stop = stop < -1 ? fmax(n + stop, -1) : fmin(stop, n - 1);
    }
    k = 0;
    if (step == 0 || step != step) {
        return 0;
    }
    /* a step beyond the length picks at most one item: clamp it so that
       the index arithmetic below cannot overflow */
    step = fmax(fmin(step, n + 1), -(n + 1));
    for (i = (long long) start; step > 0 ? (double) i < stop
         : (double) i > stop;
         i += (long long) step)
    {
        if (idx) {
            idx[k] = i;
        }
        k++;
    }
    return k;
}

static int
eval_slice(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env, const kvr_tmpl_node_t *sl,
    const kvr_tmpl_val_t *obj, kvr_tmpl_val_t *out)
{
    kvr_tmpl_val_t   v[3];
    kvr_tmpl_arr_t  *r;
    size_t           i, k, n, off, *cps = NULL;
    long long       *idx;
    uint32_t         cp;
    kvr_tmpl_sb_t    sb;
    int              rc;

    if (obj->k != V_ARRAY && obj->k != V_STR) {
        return kvr_tmpl_error(c, sl->line, "Slice object must be an array or "
                              "string");
    }
    v[0] = v[1] = v[2] = kvr_tmpl_undef();
    if ((sl->a && (rc = kvr_tmpl_eval(c, env, sl->a, &v[0])))
        || (sl->b && (rc = kvr_tmpl_eval(c, env, sl->b, &v[1])))
        || (sl->c && (rc = kvr_tmpl_eval(c, env, sl->c, &v[2]))))
    {
        return rc;
    }
    for (i = 0; i < 3; i++) {
        if (v[i].k != V_INT && v[i].k != V_UNDEF) {
            return kvr_tmpl_error(c, sl->line, "Slice %s must be numeric or "
                                  "undefined",
                                  i == 0 ? "start" : i == 1 ? "stop" : "step");
        }
    }
    if (obj->k == V_ARRAY) {
        n = obj->u.a->n;
    } else {
        /* code points, as Array.from(string) */
        cps = kvr_tmpl_alloc(&c->arena, (obj->u.s.len + 1) * sizeof(size_t));
        if (cps == NULL) {
            return kvr_tmpl_nomem(c);
        }
        for (n = 0, off = 0; off < obj->u.s.len; n++) {
            cps[n] = off;
            off += kvr_tmpl_utf8_next(obj->u.s.p + off, obj->u.s.len - off,
                                      &cp);
        }
        cps[n] = off;
    }
    k = slice_idx(n, &v[0], &v[1], &v[2], NULL);
    idx = kvr_tmpl_alloc(&c->arena, (k + 1) * sizeof(*idx));
    if (idx == NULL) {
        return kvr_tmpl_nomem(c);
    }
    slice_idx(n, &v[0], &v[1], &v[2], idx);
    if (obj->k == V_ARRAY) {
        r = kvr_tmpl_arr_new(c, k);
        if (r == NULL) {
            return kvr_tmpl_nomem(c);
        }
        for (i = 0; i < k; i++) {
            r->v[i] = obj->u.a->v[idx[i]];
        }
        r->n = k;
        *out = kvr_tmpl_wrap_arr(r);
        return KVR_OK;
    }
    kvr_tmpl_sb_init(&sb, c);
    for (i = 0; i < k; i++) {
        kvr_tmpl_sb_add(&sb, obj->u.s.p + cps[idx[i]],
                        cps[idx[i] + 1] - cps[idx[i]]);
    }
    return kvr_tmpl_sb_done(&sb, out);
}

/*
 * String.prototype.at(i): one UTF-16 code unit. Half of a surrogate pair
 * becomes U+FFFD, which is what the reference's lone surrogate turns into
 * once its output is encoded as UTF-8.
 */
static int
string_at(kvr_tmpl_ctx_t *c, const kvr_tmpl_val_t *s, double d,
    kvr_tmpl_val_t *out)
{
    size_t    len, off, k, u;
    uint32_t  cp, unit;
    double    idx;
    char     *buf;

    len = kvr_tmpl_utf16_len(s->u.s.p, s->u.s.len);
    idx = d < 0 ? (double) len + d : d;
    if (idx < 0 || idx >= (double) len) {
        *out = kvr_tmpl_undef();
        return KVR_OK;
    }
    for (off = 0, u = 0; off < s->u.s.len; off += k) {
        k = kvr_tmpl_utf8_next(s->u.s.p + off, s->u.s.len - off, &cp);
        if (cp >= 0x10000) {
            if ((double) u == idx || (double) (u + 1) == idx) {
                unit = 0xfffd;
                buf = kvr_tmpl_alloc(&c->arena, 4);
                if (buf == NULL) {
                    return kvr_tmpl_nomem(c);
                }
                *out = kvr_tmpl_str(buf, kvr_tmpl_utf8_put(unit, buf));
                return KVR_OK;
            }
            u += 2;
            continue;
        }
        if ((double) u == idx) {
            *out = kvr_tmpl_str(s->u.s.p + off, k);
            return KVR_OK;
        }
        u++;
    }
    *out = kvr_tmpl_undef();
    return KVR_OK;
}

static int
eval_member(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env, const kvr_tmpl_node_t *n,
    kvr_tmpl_val_t *out)
{
    kvr_tmpl_val_t   obj, prop, *v;
    double           idx;
    int              rc;

    rc = kvr_tmpl_eval(c, env, n->a, &obj);
    if (rc) {
        return rc;
    }
    if (n->flag) {
        if (n->b->kind == N_SLICE) {
            return eval_slice(c, env, n->b, &obj, out);
        }
        rc = kvr_tmpl_eval(c, env, n->b, &prop);
        if (rc) {
            return rc;
        }
    } else if (n->b->kind == N_INT) {
        prop = kvr_tmpl_num(V_INT, n->b->num);
    } else {
        prop = kvr_tmpl_str(n->b->s, n->b->n);
    }

    if (obj.k == V_OBJECT || obj.k == V_KWARGS || obj.k == V_NS) {
        if (prop.k != V_STR) {
            return kvr_tmpl_error(c, n->line, "Cannot access property with "
                                  "non-string");
        }
        rc = kvr_tmpl_charge(c, n->line, obj.u.o->n);
        if (rc) {
            return rc;
        }
        v = kvr_tmpl_obj_get(obj.u.o, prop.u.s.p, prop.u.s.len);
        if (v) {
            *out = *v;
            return KVR_OK;
        }
        if (obj.k == V_NS) {
            *out = kvr_tmpl_undef();
            return KVR_OK;
        }
        return kvr_tmpl_builtin_attr(c, &obj, prop.u.s.p, prop.u.s.len, out);
    }
    if (obj.k == V_ARRAY || obj.k == V_STR) {
        if (prop.k == V_INT) {
            if (obj.k == V_STR) {
                return string_at(c, &obj, prop.u.n, out);
            }
            idx = prop.u.n < 0 ? (double) obj.u.a->n + prop.u.n : prop.u.n;
            if (idx < 0 || idx >= (double) obj.u.a->n) {
                *out = kvr_tmpl_undef();
            } else {
                *out = obj.u.a->v[(size_t) idx];
            }
            return KVR_OK;
        }
        if (prop.k == V_STR) {
            return kvr_tmpl_builtin_attr(c, &obj, prop.u.s.p, prop.u.s.len,
                                         out);
        }
        return kvr_tmpl_error(c, n->line, "Cannot access property with "
                              "non-string/non-number");
    }
    if (prop.k != V_STR) {
        return kvr_tmpl_error(c, n->line, "Cannot access property with "
                              "non-string");
    }
    *out = kvr_tmpl_undef();
    return KVR_OK;
}

static int
is_num(const kvr_tmpl_val_t *v)
{
    return v->k == V_INT || v->k == V_FLOAT;
}

static int
concat(kvr_tmpl_ctx_t *c, int line, const kvr_tmpl_val_t *l,
    const kvr_tmpl_val_t *r, kvr_tmpl_val_t *out)
{
    kvr_tmpl_sb_t  sb;
    int            rc;

    kvr_tmpl_sb_init(&sb, c);
    rc = kvr_tmpl_to_raw(c, line, l, &sb);
    if (rc == KVR_OK) {
        rc = kvr_tmpl_to_raw(c, line, r, &sb);
    }
    if (rc) {
        return rc;
    }
    return kvr_tmpl_sb_done(&sb, out);
}

static int
str_contains(const kvr_tmpl_val_t *hay, const kvr_tmpl_val_t *needle)
{
    return needle->u.s.len == 0
           || memmem(hay->u.s.p, hay->u.s.len, needle->u.s.p,
                     needle->u.s.len) != NULL;
}

static int
eval_binary(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env, const kvr_tmpl_node_t *n,
    kvr_tmpl_val_t *out)
{
    kvr_tmpl_val_t   l, r;
    kvr_tmpl_arr_t  *arr;
    double           a, b, res;
    size_t           i;
    int              rc, op, isfloat, member;

    op = n->op;
    rc = kvr_tmpl_eval(c, env, n->a, &l);
    if (rc) {
        return rc;
    }
    if (op == OP_AND) {
        return kvr_tmpl_truthy(&l) ? kvr_tmpl_eval(c, env, n->b, out)
                                   : (*out = l, KVR_OK);
    }
    if (op == OP_OR) {
        return kvr_tmpl_truthy(&l) ? (*out = l, KVR_OK)
                                   : kvr_tmpl_eval(c, env, n->b, out);
    }
    rc = kvr_tmpl_eval(c, env, n->b, &r);
    if (rc) {
        return rc;
    }
    if (op == OP_EQ || op == OP_NE) {
        member = kvr_tmpl_loose_eq(c, &l, &r);
        *out = kvr_tmpl_bool(op == OP_EQ ? member : !member);
        return KVR_OK;
    }
    if (l.k == V_UNDEF || r.k == V_UNDEF) {
        if (r.k == V_UNDEF && (op == OP_IN || op == OP_NOTIN)) {
            *out = kvr_tmpl_bool(op == OP_NOTIN);
            return KVR_OK;
        }
        return kvr_tmpl_error(c, n->line, "Cannot perform operation on "
                              "undefined values");
    }
    if (l.k == V_NONE || r.k == V_NONE) {
        return kvr_tmpl_error(c, n->line, "Cannot perform operation on null "
                              "values");
    }
    if (op == OP_CONCAT) {
        return concat(c, n->line, &l, &r, out);
    }
    if (op == OP_POW && (is_num(&l) || l.k == V_BOOL)
        && (is_num(&r) || r.k == V_BOOL))
    {
        a = l.k == V_BOOL ? l.u.b : l.u.n;
        b = r.k == V_BOOL ? r.u.b : r.u.n;
        if (a == 0 && b < 0) {
            return kvr_tmpl_error(c, n->line, "0.0 cannot be raised to a "
                                  "negative power");
        }
        res = (isinf(b) && fabs(a) == 1) ? NAN : pow(a, b);
        if (!isfinite(res)) {
            return kvr_tmpl_error(c, n->line, "Exponentiation result is not a "
                                  "finite real number");
        }
        isfloat = l.k == V_FLOAT || r.k == V_FLOAT || b < 0;
        *out = kvr_tmpl_num(isfloat ? V_FLOAT : V_INT, res);
        return KVR_OK;
    }
    if (is_num(&l) && is_num(&r)) {
        a = l.u.n;
        b = r.u.n;
        isfloat = l.k == V_FLOAT || r.k == V_FLOAT;
        switch (op) {
        case OP_ADD:
            *out = kvr_tmpl_num(isfloat ? V_FLOAT : V_INT, a + b);
            return KVR_OK;
        case OP_SUB:
            *out = kvr_tmpl_num(isfloat ? V_FLOAT : V_INT, a - b);
            return KVR_OK;
        case OP_MUL:
            *out = kvr_tmpl_num(isfloat ? V_FLOAT : V_INT, a * b);
            return KVR_OK;
        case OP_DIV:
            *out = kvr_tmpl_num(V_FLOAT, a / b);
            return KVR_OK;
        case OP_FLOORDIV:
            *out = kvr_tmpl_num(isfloat ? V_FLOAT : V_INT, floor(a / b));
            return KVR_OK;
        case OP_MOD:
            *out = kvr_tmpl_num(isfloat ? V_FLOAT : V_INT, fmod(a, b));
            return KVR_OK;
        case OP_LT:
            *out = kvr_tmpl_bool(a < b);
            return KVR_OK;
        case OP_GT:
            *out = kvr_tmpl_bool(a > b);
            return KVR_OK;
        case OP_LE:
            *out = kvr_tmpl_bool(a <= b);
            return KVR_OK;
        case OP_GE:
            *out = kvr_tmpl_bool(a >= b);
            return KVR_OK;
        default:
            break;
        }
    } else if (l.k == V_ARRAY && r.k == V_ARRAY) {
        if (op == OP_ADD) {
            arr = kvr_tmpl_arr_new(c, l.u.a->n + r.u.a->n);
            if (arr == NULL) {
                return kvr_tmpl_nomem(c);
            }
            if (l.u.a->n) {
                memcpy(arr->v, l.u.a->v, l.u.a->n * sizeof(*arr->v));
            }
            if (r.u.a->n) {
                memcpy(arr->v + l.u.a->n, r.u.a->v,
                       r.u.a->n * sizeof(*arr->v));
            }
            arr->n = l.u.a->n + r.u.a->n;
            *out = kvr_tmpl_wrap_arr(arr);
            return KVR_OK;
        }
    } else if (r.k == V_ARRAY) {
        if (op == OP_IN || op == OP_NOTIN) {
            rc = kvr_tmpl_charge(c, n->line, r.u.a->n);
            if (rc) {
                return rc;
            }
            member = 0;
            for (i = 0; i < r.u.a->n && !member; i++) {
                member = kvr_tmpl_strict_eq(&r.u.a->v[i], &l);
            }
            *out = kvr_tmpl_bool(op == OP_IN ? member : !member);
            return KVR_OK;
        }
    }
    if ((l.k == V_STR || r.k == V_STR) && op == OP_ADD) {
        return concat(c, n->line, &l, &r, out);
    }
    if (l.k == V_STR && r.k == V_STR && (op == OP_IN || op == OP_NOTIN)) {
        rc = kvr_tmpl_charge(c, n->line, r.u.s.len);
        if (rc) {
            return rc;
        }
        member = str_contains(&r, &l);
        *out = kvr_tmpl_bool(op == OP_IN ? member : !member);
        return KVR_OK;
    }
    if (l.k == V_STR && (r.k == V_OBJECT || r.k == V_KWARGS)
        && (op == OP_IN || op == OP_NOTIN))
    {
        rc = kvr_tmpl_charge(c, n->line, r.u.o->n);
        if (rc) {
            return rc;
        }
        member = kvr_tmpl_obj_get(r.u.o, l.u.s.p, l.u.s.len) != NULL;
        *out = kvr_tmpl_bool(op == OP_IN ? member : !member);
        return KVR_OK;
    }
    return kvr_tmpl_error(c, n->line, "Unknown operator between these "
                          "operand types");
}

static int
eval_call(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env, const kvr_tmpl_node_t *n,
    kvr_tmpl_val_t *out)
{
    kvr_tmpl_arr_t  *args;
    kvr_tmpl_obj_t  *kw;
    kvr_tmpl_val_t   fn;
    int              rc;

    rc = kvr_tmpl_eval_args(c, env, n->list, n->nlist, &args, &kw);
    if (rc) {
        return rc;
    }
    if (kw->n > 0) {
        rc = kvr_tmpl_arr_push(c, args, kvr_tmpl_wrap_obj(V_KWARGS, kw));
        if (rc) {
            return rc;
        }
    }
    rc = kvr_tmpl_eval(c, env, n->a, &fn);
    if (rc) {
        return rc;
    }
    return kvr_tmpl_call(c, env, n->line, &fn, args, out);
}

static int
eval_node(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env, const kvr_tmpl_node_t *n,
    kvr_tmpl_val_t *out)
{
    kvr_tmpl_arr_t  *arr;
    kvr_tmpl_obj_t  *obj;
    kvr_tmpl_val_t   v, k;
    size_t           i;
    int              rc, res;

    switch (n->kind) {
    case N_INT:
        *out = kvr_tmpl_num(V_INT, n->num);
        return KVR_OK;
    case N_FLOAT:
        *out = kvr_tmpl_num(V_FLOAT, n->num);
        return KVR_OK;
    case N_STR:
    case N_TEXT:
        *out = kvr_tmpl_str(n->s, n->n);
        return KVR_OK;
    case N_IDENT:
        *out = kvr_tmpl_env_get(env, n->s, n->n);
        return KVR_OK;
    case N_ARRAY:
    case N_TUPLE:
        arr = kvr_tmpl_arr_new(c, n->nlist);
        if (arr == NULL) {
            return kvr_tmpl_nomem(c);
        }
        for (i = 0; i < n->nlist; i++) {
            rc = kvr_tmpl_eval(c, env, n->list[i], &arr->v[i]);
            if (rc) {
                return rc;
            }
        }
        arr->n = n->nlist;
        arr->tuple = n->kind == N_TUPLE;
        *out = kvr_tmpl_wrap_arr(arr);
        return KVR_OK;
    case N_OBJECT:
        obj = kvr_tmpl_obj_new(c);
        if (obj == NULL) {
            return kvr_tmpl_nomem(c);
        }
        for (i = 0; i < n->nlist; i++) {
            rc = kvr_tmpl_eval(c, env, n->list[i], &k);
            if (rc) {
                return rc;
            }
            if (k.k != V_STR) {
                return kvr_tmpl_error(c, n->line, "Object keys must be "
                                      "strings");
            }
            rc = kvr_tmpl_eval(c, env, n->list2[i], &v);
            if (rc == KVR_OK) {
                rc = kvr_tmpl_obj_set(c, obj, k.u.s.p, k.u.s.len, v);
            }
            if (rc) {
                return rc;
            }
        }
        *out = kvr_tmpl_wrap_obj(V_OBJECT, obj);
        return KVR_OK;
    case N_MEMBER:
        return eval_member(c, env, n, out);
    case N_CALL:
        return eval_call(c, env, n, out);
    case N_BINARY:
        return eval_binary(c, env, n, out);
    case N_UNARY:
        rc = kvr_tmpl_eval(c, env, n->a, &v);
        if (rc) {
            return rc;
        }
        if (n->op == OP_NOT) {
            *out = kvr_tmpl_bool(!kvr_tmpl_truthy(&v));
            return KVR_OK;
        }
        if (v.k != V_INT && v.k != V_FLOAT && v.k != V_BOOL) {
            return kvr_tmpl_error(c, n->line, "Unknown unary operator for "
                                  "this type");
        }
        *out = kvr_tmpl_num(v.k == V_FLOAT ? V_FLOAT : V_INT,
                            (n->op == OP_SUB ? -1 : 1)
                            * (v.k == V_BOOL ? v.u.b : v.u.n));
        return KVR_OK;
    case N_FILTER:
        rc = kvr_tmpl_eval(c, env, n->a, &v);
        if (rc) {
            return rc;
        }
        return kvr_tmpl_apply_filter(c, env, n->b, n->op, &v, out);
    case N_TEST:
        rc = kvr_tmpl_eval(c, env, n->a, &v);
        if (rc) {
            return rc;
        }
        rc = kvr_tmpl_run_test(c, n->line, n->op, &v, NULL, &res);
        if (rc) {
            return rc;
        }
        *out = kvr_tmpl_bool(n->flag ? !res : res);
        return KVR_OK;
    case N_SELECT:
        rc = kvr_tmpl_eval(c, env, n->b, &v);
        if (rc) {
            return rc;
        }
        if (!kvr_tmpl_truthy(&v)) {
            *out = kvr_tmpl_undef();
            return KVR_OK;
        }
        return kvr_tmpl_eval(c, env, n->a, out);
    case N_TERNARY:
        rc = kvr_tmpl_eval(c, env, n->a, &v);
        if (rc) {
            return rc;
        }
        return kvr_tmpl_eval(c, env, kvr_tmpl_truthy(&v) ? n->b : n->c, out);
    default:
        return kvr_tmpl_error(c, n->line, "unexpected construct in an "
                              "expression");
    }
}

int
kvr_tmpl_eval(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env, const kvr_tmpl_node_t *n,
    kvr_tmpl_val_t *out)
{
    int  rc;

    KVR_TMPL_ENTER(c, n->line);
    rc = eval_node(c, env, n, out);
    c->depth--;
    if (rc == KVR_OK && out->k == V_UNDEF && out->u.b == KVR_TMPL_HOLE) {
        return kvr_tmpl_error(c, n->line, "use of a JavaScript undefined "
                              "value (first/last of an empty list)");
    }
    return rc;
}

int
kvr_tmpl_eval_for_set(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env,
                      const kvr_tmpl_node_t *n,
    kvr_tmpl_val_t *out)
{
    int  rc;

    KVR_TMPL_ENTER(c, n->line);
    rc = eval_node(c, env, n, out);
    c->depth--;
    if (rc == KVR_OK && out->k == V_UNDEF) {
        out->u.b = 0;
    }
    return rc;
}

/* ---- statements ---- */
