/*
 * kvrouter: chat templates, the attributes and methods of strings, lists
 * and dicts, as @huggingface/jinja provides them (e.g. its strip('\n')
 * ignores the argument and trims all whitespace, its title() only
 * upper-cases the first letter of each word, and a list's only attribute
 * is length), and the dispatcher of builtin calls.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* memmem */
#endif
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kvr_tmpl_int.h"

/* ---- attributes ---- */

static const struct {
    const char  *name;
    int          id;
} str_methods[] = {
    { "upper", B_S_UPPER }, { "lower", B_S_LOWER }, { "strip", B_S_STRIP },
    { "title", B_S_TITLE }, { "capitalize", B_S_CAPITALIZE },
    { "rstrip", B_S_RSTRIP }, { "lstrip", B_S_LSTRIP },
    { "startswith", B_S_STARTSWITH }, { "endswith", B_S_ENDSWITH },
    { "split", B_S_SPLIT }, { "replace", B_S_REPLACE },
}, obj_methods[] = {
    { "get", B_O_GET }, { "items", B_O_ITEMS }, { "keys", B_O_KEYS },
    { "values", B_O_VALUES }, { "dictsort", B_O_DICTSORT },
};

int
kvr_tmpl_fn_new(kvr_tmpl_ctx_t *c, int id, const kvr_tmpl_val_t *self,
    kvr_tmpl_val_t *out)
{
    kvr_tmpl_fn_t  *f;

    f = kvr_tmpl_alloc(&c->arena, sizeof(*f));
    if (f == NULL) {
        return kvr_tmpl_nomem(c);
    }
    f->kind = FN_BUILTIN;
    f->id = id;
    if (self) {
        f->self = *self;
    }
    *out = kvr_tmpl_undef();
    out->k = V_FUNC;
    out->u.f = f;
    return KVR_OK;
}

int
kvr_tmpl_builtin_attr(kvr_tmpl_ctx_t *c, const kvr_tmpl_val_t *self,
    const char *name, size_t n, kvr_tmpl_val_t *out)
{
    size_t  i;

    *out = kvr_tmpl_undef();
    if (self->k == V_STR) {
        if (n == 6 && memcmp(name, "length", 6) == 0) {
            *out = kvr_tmpl_num(V_INT, (double) kvr_tmpl_utf16_len(
                                    self->u.s.p, self->u.s.len));
            return KVR_OK;
        }
        for (i = 0; i < sizeof(str_methods) / sizeof(str_methods[0]); i++) {
            if (strlen(str_methods[i].name) == n
                && memcmp(str_methods[i].name, name, n) == 0)
            {
                return kvr_tmpl_fn_new(c, str_methods[i].id, self, out);
            }
        }
    } else if (self->k == V_ARRAY) {
        if (n == 6 && memcmp(name, "length", 6) == 0) {
            *out = kvr_tmpl_num(V_INT, (double) self->u.a->n);
        }
    } else if (self->k == V_OBJECT || self->k == V_KWARGS) {
        for (i = 0; i < sizeof(obj_methods) / sizeof(obj_methods[0]); i++) {
            if (strlen(obj_methods[i].name) == n
                && memcmp(obj_methods[i].name, name, n) == 0)
            {
                return kvr_tmpl_fn_new(c, obj_methods[i].id, self, out);
            }
        }
    }
    return KVR_OK;
}

int
kvr_tmpl_obj_items(kvr_tmpl_ctx_t *c, const kvr_tmpl_obj_t *o,
    kvr_tmpl_val_t *out)
{
    kvr_tmpl_arr_t  *r, *pair;
    size_t           i;

    r = kvr_tmpl_arr_new(c, o->n);
    if (r == NULL) {
        return kvr_tmpl_nomem(c);
    }
    for (i = 0; i < o->n; i++) {
        pair = kvr_tmpl_arr_new(c, 2);
        if (pair == NULL) {
            return kvr_tmpl_nomem(c);
        }
        pair->v[0] = kvr_tmpl_str(o->e[i].k, o->e[i].kn);
        pair->v[1] = o->e[i].v;
        pair->n = 2;
        r->v[i] = kvr_tmpl_wrap_arr(pair);
    }
    r->n = o->n;
    *out = kvr_tmpl_wrap_arr(r);
    return KVR_OK;
}

/* ---- string methods ---- */

static int
is_word(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
           || (ch >= '0' && ch <= '9') || ch == '_';
}

/* value.replace(/\b\w/g, c => c.toUpperCase()) */
static int
title(kvr_tmpl_ctx_t *c, const kvr_tmpl_val_t *s, kvr_tmpl_val_t *out)
{
    char    *p;
    size_t   i;

    p = kvr_tmpl_strdup(&c->arena, s->u.s.p, s->u.s.len);
    if (p == NULL) {
        return kvr_tmpl_nomem(c);
    }
    for (i = 0; i < s->u.s.len; i++) {
        if (is_word((unsigned char) p[i])
            && (i == 0 || !is_word((unsigned char) p[i - 1]))
            && p[i] >= 'a' && p[i] <= 'z')
        {
            p[i] = (char) (p[i] - 32);
        }
    }
    *out = kvr_tmpl_str(p, s->u.s.len);
    return KVR_OK;
}

static int
capitalize(kvr_tmpl_ctx_t *c, const kvr_tmpl_val_t *s, kvr_tmpl_val_t *out)
{
    kvr_tmpl_val_t  head;
    kvr_tmpl_sb_t   sb;
    uint32_t        cp;
    size_t          k;
    int             rc;

    if (s->u.s.len == 0) {
        *out = *s;
        return KVR_OK;
    }
    k = kvr_tmpl_utf8_next(s->u.s.p, s->u.s.len, &cp);
    rc = kvr_tmpl_case(c, s->u.s.p, k, 1, &head);
    if (rc) {
        return rc;
    }
    kvr_tmpl_sb_init(&sb, c);
    kvr_tmpl_sb_add(&sb, head.u.s.p, head.u.s.len);
    kvr_tmpl_sb_add(&sb, s->u.s.p + k, s->u.s.len - k);
    return kvr_tmpl_sb_done(&sb, out);
}

static int
affix(kvr_tmpl_ctx_t *c, int line, const kvr_tmpl_val_t *s,
    kvr_tmpl_arr_t *args, int end, kvr_tmpl_val_t *out)
{
    const kvr_tmpl_val_t  *pat, *it;
    size_t                 i, n;

    if (args->n == 0) {
        return kvr_tmpl_error(c, line, "%s() requires at least one argument",
                              end ? "endswith" : "startswith");
    }
    pat = &args->v[0];
    if (pat->k != V_STR && pat->k != V_ARRAY) {
        return kvr_tmpl_error(c, line, "%s() argument must be a string or "
                              "tuple of strings",
                              end ? "endswith" : "startswith");
    }
    n = pat->k == V_STR ? 1 : pat->u.a->n;
    for (i = 0; i < n; i++) {
        it = pat->k == V_STR ? pat : &pat->u.a->v[i];
        if (it->k != V_STR) {
            return kvr_tmpl_error(c, line, "tuple elements must be strings");
        }
        if (it->u.s.len <= s->u.s.len
            && memcmp(s->u.s.p + (end ? s->u.s.len - it->u.s.len : 0),
                      it->u.s.p, it->u.s.len) == 0)
        {
            *out = kvr_tmpl_bool(1);
            return KVR_OK;
        }
    }
    *out = kvr_tmpl_bool(0);
    return KVR_OK;
}

static int
split(kvr_tmpl_ctx_t *c, int line, const kvr_tmpl_val_t *s,
    kvr_tmpl_arr_t *args, kvr_tmpl_val_t *out)
{
    kvr_tmpl_val_t   sep, maxs;
    kvr_tmpl_arr_t  *r;
    kvr_tmpl_sb_t    sb;
    const char      *p, *end, *q, *hit;
    size_t           n, k, i, keep;
    double           m;
    int              rc;

    sep = args->n > 0 ? args->v[0] : kvr_tmpl_none();
    maxs = args->n > 1 ? args->v[1] : kvr_tmpl_num(V_INT, -1);
    if (sep.k != V_STR && sep.k != V_NONE) {
        return kvr_tmpl_error(c, line, "sep argument must be a string or "
                              "null");
    }
    if (maxs.k != V_INT) {
        return kvr_tmpl_error(c, line, "maxsplit argument must be a number");
    }
    m = maxs.u.n;
    r = kvr_tmpl_arr_new(c, 0);
    if (r == NULL) {
        return kvr_tmpl_nomem(c);
    }
    if (sep.k == V_NONE) {
        p = s->u.s.p;
        n = s->u.s.len;
        kvr_tmpl_js_trim(&p, &n, 1, 0);
        end = p + n;
        while (p < end) {
            while (p < end && (k = kvr_tmpl_js_space(p, end)) > 0) {
                p += k;
            }
            if (p >= end) {
                break;
            }
            q = p;
            while (q < end && kvr_tmpl_js_space(q, end) == 0) {
                q += kvr_tmpl_utf8_next(q, (size_t) (end - q), &(uint32_t){0});
            }
            if (m != -1 && (double) r->n >= m) {
                rc = kvr_tmpl_arr_push(c, r, kvr_tmpl_str(p,
                                                          (size_t) (end - p)));
                if (rc) {
                    return rc;
                }
                break;
            }
            rc = kvr_tmpl_arr_push(c, r, kvr_tmpl_str(p, (size_t) (q - p)));
            if (rc) {
                return rc;
            }
            p = q;
        }
        *out = kvr_tmpl_wrap_arr(r);
        return KVR_OK;
    }
    if (sep.u.s.len == 0) {
        return kvr_tmpl_error(c, line, "empty separator");
    }
    rc = kvr_tmpl_charge(c, line, s->u.s.len);
    if (rc) {
        return rc;
    }
    p = s->u.s.p;
    end = p + s->u.s.len;
    for (;;) {
        hit = memmem(p, (size_t) (end - p), sep.u.s.p, sep.u.s.len);
        if (hit == NULL) {
            break;
        }
        rc = kvr_tmpl_arr_push(c, r, kvr_tmpl_str(p, (size_t) (hit - p)));
        if (rc) {
            return rc;
        }
        p = hit + sep.u.s.len;
    }
    rc = kvr_tmpl_arr_push(c, r, kvr_tmpl_str(p, (size_t) (end - p)));
    if (rc) {
        return rc;
    }
    if (m != -1 && (double) r->n > m) {
        /* result.push(result.splice(m).join(sep)) */
        keep = m < 0 ? (-m > (double) r->n ? 0 : (size_t) ((double) r->n + m))
                     : (size_t) m;
        kvr_tmpl_sb_init(&sb, c);
        for (i = keep; i < r->n; i++) {
            if (i > keep) {
                kvr_tmpl_sb_add(&sb, sep.u.s.p, sep.u.s.len);
            }
            kvr_tmpl_sb_add(&sb, r->v[i].u.s.p, r->v[i].u.s.len);
        }
        if (sb.failed) {
            return kvr_tmpl_nomem(c);
        }
        r->n = keep;
        rc = kvr_tmpl_arr_push(c, r, kvr_tmpl_sb_val(&sb));
        if (rc) {
            return rc;
        }
    }
    *out = kvr_tmpl_wrap_arr(r);
    return KVR_OK;
}

static int
replace(kvr_tmpl_ctx_t *c, int line, const kvr_tmpl_val_t *s,
    kvr_tmpl_arr_t *args, kvr_tmpl_val_t *out)
{
    const kvr_tmpl_val_t  *o, *nw;
    kvr_tmpl_val_t         cnt, *kv;
    kvr_tmpl_sb_t          sb;
    const char            *p, *end, *hit;
    double                 remaining;
    size_t                 k;
    uint32_t               cp;

    if (args->n < 2) {
        return kvr_tmpl_error(c, line, "replace() requires at least two "
                              "arguments");
    }
    o = &args->v[0];
    nw = &args->v[1];
    if (o->k != V_STR || nw->k != V_STR) {
        return kvr_tmpl_error(c, line, "replace() arguments must be strings");
    }
    cnt = kvr_tmpl_none();
    if (args->n > 2) {
        if (args->v[2].k == V_KWARGS) {
            kv = kvr_tmpl_obj_get(args->v[2].u.o, "count", 5);
            cnt = kv ? *kv : kvr_tmpl_none();
        } else {
            cnt = args->v[2];
        }
    }
    if (cnt.k != V_INT && cnt.k != V_NONE) {
        return kvr_tmpl_error(c, line, "replace() count argument must be a "
                              "number or null");
    }
    if (cnt.k == V_INT && cnt.u.n == 0) {
        *out = *s;
        return KVR_OK;
    }
    if (kvr_tmpl_charge(c, line, s->u.s.len) != KVR_OK) {
        return KVR_ERR_INVAL;
    }
    remaining = cnt.k == V_NONE || cnt.u.n < 0 ? INFINITY : cnt.u.n;
    kvr_tmpl_sb_init(&sb, c);
    p = s->u.s.p;
    end = p + s->u.s.len;
    if (o->u.s.len == 0) {
        /* (?=) with the u flag: before every code point and at the end */
        for (;;) {
            if (remaining > 0) {
                kvr_tmpl_sb_add(&sb, nw->u.s.p, nw->u.s.len);
                remaining--;
            }
            if (p >= end) {
                break;
            }
            k = kvr_tmpl_utf8_next(p, (size_t) (end - p), &cp);
            kvr_tmpl_sb_add(&sb, p, k);
            p += k;
        }
    } else {
        while (remaining > 0
               && (hit = memmem(p, (size_t) (end - p), o->u.s.p,
                                o->u.s.len)) != NULL)
        {
            kvr_tmpl_sb_add(&sb, p, (size_t) (hit - p));
            kvr_tmpl_sb_add(&sb, nw->u.s.p, nw->u.s.len);
            p = hit + o->u.s.len;
            remaining--;
        }
        kvr_tmpl_sb_add(&sb, p, (size_t) (end - p));
    }
    return kvr_tmpl_sb_done(&sb, out);
}

/* ---- dict methods ---- */

typedef struct {
    kvr_tmpl_ctx_t  *c;
    int              line;
    int              index;
    int              cs;
    int              reverse;
    int              rc;
} dsort_t;

static int
dictsort(kvr_tmpl_ctx_t *c, int line, const kvr_tmpl_val_t *self,
    kvr_tmpl_arr_t *args, kvr_tmpl_val_t *out)
{
    kvr_tmpl_obj_t        *kw;
    kvr_tmpl_val_t         items, *tmp, *v;
    const kvr_tmpl_val_t  *cs, *by, *rev;
    kvr_tmpl_arr_t        *pos;
    size_t                 i, n, w, lo, mid, hi, l, r, k;
    int                    rc, index, res, revd;

    kw = NULL;
    pos = kvr_tmpl_arr_new(c, args->n);
    if (pos == NULL) {
        return kvr_tmpl_nomem(c);
    }
    for (i = 0; i < args->n; i++) {
        if (args->v[i].k == V_KWARGS) {
            kw = args->v[i].u.o;
        } else {
            pos->v[pos->n++] = args->v[i];
        }
    }
    cs = pos->n > 0 ? &pos->v[0] : kw ? kvr_tmpl_obj_get(kw, "case_sensitive",
                                                         14)
                                      : NULL;
    by = pos->n > 1 ? &pos->v[1] : kw ? kvr_tmpl_obj_get(kw, "by", 2) : NULL;
    rev = pos->n > 2 ? &pos->v[2] : kw ? kvr_tmpl_obj_get(kw, "reverse", 7)
                                       : NULL;
    if (cs && cs->k != V_BOOL) {
        return kvr_tmpl_error(c, line, "case_sensitive must be a boolean");
    }
    if (by && (by->k != V_STR
               || !((by->u.s.len == 3 && memcmp(by->u.s.p, "key", 3) == 0)
                    || (by->u.s.len == 5
                        && memcmp(by->u.s.p, "value", 5) == 0))))
    {
        return kvr_tmpl_error(c, line, "by must be either 'key' or 'value'");
    }
    if (rev && rev->k != V_BOOL) {
        return kvr_tmpl_error(c, line, "reverse must be a boolean");
    }
    index = by && by->u.s.len == 5;
    revd = rev ? rev->u.b : 0;
    rc = kvr_tmpl_obj_items(c, self->u.o, &items);
    if (rc) {
        return rc;
    }
    v = items.u.a->v;
    n = items.u.a->n;
    tmp = kvr_tmpl_alloc(&c->arena, (n + 1) * sizeof(*tmp));
    if (tmp == NULL) {
        return kvr_tmpl_nomem(c);
    }
    for (w = 1; w < n; w *= 2) {
        for (lo = 0; lo < n; lo += 2 * w) {
            mid = lo + w < n ? lo + w : n;
            hi = lo + 2 * w < n ? lo + 2 * w : n;
            for (l = lo, r = mid, k = lo; l < mid && r < hi; ) {
                rc = kvr_tmpl_compare(c, line, &v[r].u.a->v[index],
                                      &v[l].u.a->v[index], cs ? cs->u.b : 0,
                                      &res);
                if (rc) {
                    return rc;
                }
                if (revd) {
                    res = -res;
                }
                tmp[k++] = res < 0 ? v[r++] : v[l++];
            }
            while (l < mid) {
                tmp[k++] = v[l++];
            }
            while (r < hi) {
                tmp[k++] = v[r++];
            }
        }
        memcpy(v, tmp, n * sizeof(*v));
    }
    *out = items;
    return KVR_OK;
}

int
kvr_tmpl_call_builtin(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env, int line,
    kvr_tmpl_fn_t *f, kvr_tmpl_arr_t *args, kvr_tmpl_val_t *out)
{
    const kvr_tmpl_val_t  *s = &f->self;
    const char            *p;
    size_t                 n;
    kvr_tmpl_val_t        *v;

    (void) env;
    switch (f->id) {
    case B_NAMESPACE:
    case B_RAISE:
    case B_RANGE:
    case B_STRFTIME:
        return kvr_tmpl_call_global(c, line, f->id, args, out);
    case B_S_UPPER:
    case B_S_LOWER:
        return kvr_tmpl_case(c, s->u.s.p, s->u.s.len, f->id == B_S_UPPER, out);
    case B_S_STRIP:
    case B_S_RSTRIP:
    case B_S_LSTRIP:
        p = s->u.s.p;
        n = s->u.s.len;
        kvr_tmpl_js_trim(&p, &n, f->id != B_S_RSTRIP, f->id != B_S_LSTRIP);
        *out = kvr_tmpl_str(p, n);
        return KVR_OK;
    case B_S_TITLE:
        return title(c, s, out);
    case B_S_CAPITALIZE:
        return capitalize(c, s, out);
    case B_S_STARTSWITH:
    case B_S_ENDSWITH:
        return affix(c, line, s, args, f->id == B_S_ENDSWITH, out);
    case B_S_SPLIT:
        return split(c, line, s, args, out);
    case B_S_REPLACE:
        return replace(c, line, s, args, out);
    case B_O_GET:
        if (args->n == 0 || args->v[0].k != V_STR) {
            return kvr_tmpl_error(c, line, "Object key must be a string");
        }
        if (kvr_tmpl_charge(c, line, s->u.o->n) != KVR_OK) {
            return KVR_ERR_INVAL;
        }
        v = kvr_tmpl_obj_get(s->u.o, args->v[0].u.s.p, args->v[0].u.s.len);
        *out = v ? *v : args->n > 1 ? args->v[1] : kvr_tmpl_none();
        return KVR_OK;
    case B_O_ITEMS:
        return kvr_tmpl_obj_items(c, s->u.o, out);
    case B_O_KEYS:
    case B_O_VALUES: {
        kvr_tmpl_arr_t  *r;
        size_t           i;

        r = kvr_tmpl_arr_new(c, s->u.o->n);
        if (r == NULL) {
            return kvr_tmpl_nomem(c);
        }
        for (i = 0; i < s->u.o->n; i++) {
            r->v[i] = f->id == B_O_KEYS
                      ? kvr_tmpl_str(s->u.o->e[i].k, s->u.o->e[i].kn)
                      : s->u.o->e[i].v;
        }
        r->n = s->u.o->n;
        *out = kvr_tmpl_wrap_arr(r);
        return KVR_OK;
    }
    case B_O_DICTSORT:
        return dictsort(c, line, s, args, out);
    default:
        return kvr_tmpl_error(c, line, "unknown function");
    }
}
