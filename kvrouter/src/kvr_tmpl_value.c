/*
 * kvrouter: chat templates, values: errors and limits, constructors,
 * lists and dicts (insertion-ordered, like JavaScript's Map), truthiness.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvr_tmpl_int.h"

int
kvr_tmpl_error(kvr_tmpl_ctx_t *c, int line, const char *fmt, ...)
{
    va_list  ap;
    char     msg[512];

    if (c->err && c->errlen) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (line > 0) {
            snprintf(c->err, c->errlen, "chat_template:%d: %s", line, msg);
        } else {
            snprintf(c->err, c->errlen, "chat_template: %s", msg);
        }
    }
    return KVR_ERR_INVAL;
}

int
kvr_tmpl_charge(kvr_tmpl_ctx_t *c, int line, size_t n)
{
    c->work += n;
    if (c->work > KVR_TMPL_MAX_WORK) {
        return kvr_tmpl_error(c, line, "render exceeded its work limit "
                              "(%u units)", KVR_TMPL_MAX_WORK);
    }
    return KVR_OK;
}

int
kvr_tmpl_nomem(kvr_tmpl_ctx_t *c)
{
    if (c->work > KVR_TMPL_MAX_WORK) {
        return kvr_tmpl_charge(c, 0, 0);
    }
    if (c->arena.over) {
        return kvr_tmpl_error(c, 0, "render memory limit (%u MiB) exceeded",
                              KVR_TMPL_MAX_MEMORY >> 20);
    }
    if (c->err && c->errlen) {
        snprintf(c->err, c->errlen, "chat_template: out of memory "
                 "(render limit %u MiB)", KVR_TMPL_MAX_MEMORY >> 20);
    }
    return KVR_ERR_NOMEM;
}

kvr_tmpl_val_t
kvr_tmpl_undef(void)
{
    kvr_tmpl_val_t  v;

    memset(&v, 0, sizeof(v));
    v.k = V_UNDEF;
    return v;
}

kvr_tmpl_val_t
kvr_tmpl_none(void)
{
    kvr_tmpl_val_t  v = kvr_tmpl_undef();

    v.k = V_NONE;
    return v;
}

kvr_tmpl_val_t
kvr_tmpl_bool(int b)
{
    kvr_tmpl_val_t  v = kvr_tmpl_undef();

    v.k = V_BOOL;
    v.u.b = b != 0;
    return v;
}

kvr_tmpl_val_t
kvr_tmpl_num(int kind, double n)
{
    kvr_tmpl_val_t  v = kvr_tmpl_undef();

    v.k = kind;
    v.u.n = n;
    return v;
}

kvr_tmpl_val_t
kvr_tmpl_str(const char *p, size_t len)
{
    kvr_tmpl_val_t  v = kvr_tmpl_undef();

    v.k = V_STR;
    v.u.s.p = p ? p : "";
    v.u.s.len = len;
    return v;
}

kvr_tmpl_val_t
kvr_tmpl_wrap_arr(kvr_tmpl_arr_t *a)
{
    kvr_tmpl_val_t  v = kvr_tmpl_undef();

    v.k = V_ARRAY;
    v.u.a = a;
    return v;
}

kvr_tmpl_val_t
kvr_tmpl_wrap_obj(int kind, kvr_tmpl_obj_t *o)
{
    kvr_tmpl_val_t  v = kvr_tmpl_undef();

    v.k = kind;
    v.u.o = o;
    return v;
}

kvr_tmpl_arr_t *
kvr_tmpl_arr_new(kvr_tmpl_ctx_t *c, size_t cap)
{
    kvr_tmpl_arr_t  *a;

    c->work += cap + 1;
    if (c->work > KVR_TMPL_MAX_WORK) {
        return NULL;
    }
    a = kvr_tmpl_alloc(&c->arena, sizeof(*a));
    if (a == NULL) {
        return NULL;
    }
    if (cap) {
        if (cap > ((size_t) -1) / sizeof(kvr_tmpl_val_t)) {
            return NULL;
        }
        a->v = kvr_tmpl_alloc(&c->arena, cap * sizeof(kvr_tmpl_val_t));
        if (a->v == NULL) {
            return NULL;
        }
        a->cap = cap;
    }
    return a;
}

/*
 * Makes room for one more of n elements of size sz at *v (capacity
 * *cap): a full block is copied to one twice the size (4 at first); the
 * old one stays in the arena until the render ends.
 */
static int
grow(kvr_tmpl_ctx_t *c, void **v, size_t n, size_t *cap, size_t sz)
{
    void    *nv;
    size_t   ncap;

    if (n < *cap) {
        return KVR_OK;
    }
    ncap = *cap ? *cap * 2 : 4;
    nv = kvr_tmpl_alloc(&c->arena, ncap * sz);
    if (nv == NULL) {
        return kvr_tmpl_nomem(c);
    }
    if (n) {
        memcpy(nv, *v, n * sz);
    }
    *v = nv;
    *cap = ncap;
    return KVR_OK;
}

int
kvr_tmpl_arr_push(kvr_tmpl_ctx_t *c, kvr_tmpl_arr_t *a, kvr_tmpl_val_t v)
{
    void  *p = a->v;
    int    rc;

    rc = grow(c, &p, a->n, &a->cap, sizeof(*a->v));
    if (rc) {
        return rc;
    }
    a->v = p;
    a->v[a->n++] = v;
    return KVR_OK;
}

kvr_tmpl_obj_t *
kvr_tmpl_obj_new(kvr_tmpl_ctx_t *c)
{
    return kvr_tmpl_alloc(&c->arena, sizeof(kvr_tmpl_obj_t));
}

kvr_tmpl_val_t *
kvr_tmpl_obj_get(const kvr_tmpl_obj_t *o, const char *k, size_t kn)
{
    size_t  i;

    for (i = 0; i < o->n; i++) {
        if (o->e[i].kn == kn && memcmp(o->e[i].k, k, kn) == 0) {
            return &o->e[i].v;
        }
    }
    return NULL;
}

/* Map.set: an existing key keeps its place */
int
kvr_tmpl_obj_set(kvr_tmpl_ctx_t *c, kvr_tmpl_obj_t *o, const char *k,
    size_t kn, kvr_tmpl_val_t v)
{
    kvr_tmpl_val_t  *old;

    c->work += o->n + 1;
    if (c->work > KVR_TMPL_MAX_WORK) {
        return kvr_tmpl_nomem(c);
    }
    old = kvr_tmpl_obj_get(o, k, kn);
    if (old) {
        *old = v;
        return KVR_OK;
    }
    return kvr_tmpl_obj_append(c, o, k, kn, v);
}

int
kvr_tmpl_obj_append(kvr_tmpl_ctx_t *c, kvr_tmpl_obj_t *o, const char *k,
    size_t kn, kvr_tmpl_val_t v)
{
    void  *p = o->e;
    int    rc;

    rc = grow(c, &p, o->n, &o->cap, sizeof(*o->e));
    if (rc) {
        return rc;
    }
    o->e = p;
    o->e[o->n].k = k;
    o->e[o->n].kn = kn;
    o->e[o->n].v = v;
    o->n++;
    return KVR_OK;
}

int
kvr_tmpl_truthy(const kvr_tmpl_val_t *v)
{
    switch (v->k) {
    case V_BOOL:
        return v->u.b;
    case V_INT:
    case V_FLOAT:
        return v->u.n != 0 && !isnan(v->u.n);
    case V_STR:
        return v->u.s.len > 0;
    case V_ARRAY:
        return v->u.a->n > 0;
    case V_OBJECT:
    case V_KWARGS:
        return v->u.o->n > 0;
    case V_NS:
    case V_FUNC:
        return 1;
    default:
        return 0;
    }
}

const char *
kvr_tmpl_kind_name(int k)
{
    static const char *names[] = {
        "UndefinedValue", "NullValue", "BooleanValue", "IntegerValue",
        "FloatValue", "StringValue", "ArrayValue", "ObjectValue",
        "NamespaceValue", "KeywordArgumentsValue", "FunctionValue"
    };

    return k >= 0 && k <= V_FUNC ? names[k] : "value";
}
