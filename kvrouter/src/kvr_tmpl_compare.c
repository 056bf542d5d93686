/*
 * kvrouter: chat templates, equality and ordering: JavaScript's == and ===
 * on the underlying values (the reference compares .value), and the
 * reference's compareRuntimeValues() for sort and dictsort.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvr_tmpl_int.h"

/* ---- equality ---- */

/* JavaScript ToNumber(string) */
static double
js_to_number(const char *p, size_t n)
{
    char        buf[128];
    size_t      i;
    int         digits;
    const char *s;

    kvr_tmpl_js_trim(&p, &n, 1, 1);
    if (n == 0) {
        return 0;
    }
    if (n >= 128) {
        return NAN;
    }
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (strcmp(buf, "Infinity") == 0 || strcmp(buf, "+Infinity") == 0) {
        return INFINITY;
    }
    if (strcmp(buf, "-Infinity") == 0) {
        return -INFINITY;
    }
    if (n > 2 && buf[0] == '0' && strchr("xXoObB", buf[1])) {
        int     base = buf[1] == 'x' || buf[1] == 'X' ? 16
                       : buf[1] == 'o' || buf[1] == 'O' ? 8 : 2;
        double  r = 0;

        for (i = 2; i < n; i++) {
            int  d = buf[i] >= '0' && buf[i] <= '9' ? buf[i] - '0'
                     : buf[i] >= 'a' && buf[i] <= 'f' ? buf[i] - 'a' + 10
                     : buf[i] >= 'A' && buf[i] <= 'F' ? buf[i] - 'A' + 10 : 99;

            if (d >= base) {
                return NAN;
            }
            r = r * base + d;
        }
        return r;
    }
    s = buf;
    if (*s == '+' || *s == '-') {
        s++;
    }
    digits = 0;
    while (*s >= '0' && *s <= '9') {
        s++;
        digits++;
    }
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') {
            s++;
            digits++;
        }
    }
    if (!digits) {
        return NAN;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') {
            s++;
        }
        if (!(*s >= '0' && *s <= '9')) {
            return NAN;
        }
        while (*s >= '0' && *s <= '9') {
            s++;
        }
    }
    if (*s) {
        return NAN;
    }
    return strtod(buf, NULL);
}

static int
is_obj_kind(int k)
{
    return k == V_ARRAY || k == V_OBJECT || k == V_NS || k == V_KWARGS
           || k == V_FUNC;
}

static int
same_ref(const kvr_tmpl_val_t *a, const kvr_tmpl_val_t *b)
{
    if (a->k == V_ARRAY || b->k == V_ARRAY) {
        return a->k == b->k && a->u.a == b->u.a;
    }
    if (a->k == V_FUNC || b->k == V_FUNC) {
        return a->k == b->k && a->u.f == b->u.f;
    }
    return a->u.o == b->u.o;
}

int
kvr_tmpl_strict_eq(const kvr_tmpl_val_t *a, const kvr_tmpl_val_t *b)
{
    int  an = a->k == V_INT || a->k == V_FLOAT;
    int  bn = b->k == V_INT || b->k == V_FLOAT;

    if (an || bn) {
        return an && bn && a->u.n == b->u.n;
    }
    if (is_obj_kind(a->k) || is_obj_kind(b->k)) {
        return is_obj_kind(a->k) && is_obj_kind(b->k) && same_ref(a, b);
    }
    if (a->k != b->k) {
        return 0;
    }
    switch (a->k) {
    case V_BOOL:
        return a->u.b == b->u.b;
    case V_STR:
        return a->u.s.len == b->u.s.len
               && memcmp(a->u.s.p, b->u.s.p, a->u.s.len) == 0;
    default:
        return 1;
    }
}

int
kvr_tmpl_loose_eq(kvr_tmpl_ctx_t *c, const kvr_tmpl_val_t *a,
    const kvr_tmpl_val_t *b)
{
    kvr_tmpl_val_t  x, y;
    kvr_tmpl_sb_t   sb;
    int             an, bn, i;

    x = *a;
    y = *b;
    for (i = 0; i < 4; i++) {
        an = x.k == V_INT || x.k == V_FLOAT;
        bn = y.k == V_INT || y.k == V_FLOAT;
        if ((an && bn) || x.k == y.k
            || (is_obj_kind(x.k) && is_obj_kind(y.k)))
        {
            return kvr_tmpl_strict_eq(&x, &y);
        }
        if ((x.k == V_UNDEF || x.k == V_NONE)
            || (y.k == V_UNDEF || y.k == V_NONE))
        {
            return (x.k == V_UNDEF || x.k == V_NONE)
                   && (y.k == V_UNDEF || y.k == V_NONE);
        }
        if (an && y.k == V_STR) {
            return x.u.n == js_to_number(y.u.s.p, y.u.s.len);
        }
        if (bn && x.k == V_STR) {
            return y.u.n == js_to_number(x.u.s.p, x.u.s.len);
        }
        if (x.k == V_BOOL) {
            x = kvr_tmpl_num(V_INT, x.u.b);
            continue;
        }
        if (y.k == V_BOOL) {
            y = kvr_tmpl_num(V_INT, y.u.b);
            continue;
        }
        if (is_obj_kind(x.k) && x.k != V_FUNC) {
            kvr_tmpl_sb_init(&sb, c);
            if (kvr_tmpl_to_raw(c, 0, &x, &sb) != KVR_OK) {
                return 0;
            }
            x = kvr_tmpl_sb_val(&sb);
            continue;
        }
        if (is_obj_kind(y.k) && y.k != V_FUNC) {
            kvr_tmpl_sb_init(&sb, c);
            if (kvr_tmpl_to_raw(c, 0, &y, &sb) != KVR_OK) {
                return 0;
            }
            y = kvr_tmpl_sb_val(&sb);
            continue;
        }
        return 0;
    }
    return 0;
}

/* ---- ordering (compareRuntimeValues) ---- */

int
kvr_tmpl_compare(kvr_tmpl_ctx_t *c, int line, const kvr_tmpl_val_t *a,
    const kvr_tmpl_val_t *b, int case_sensitive, int *res)
{
    double          x, y;
    kvr_tmpl_val_t  la, lb;
    size_t          n;
    int             r, rc;

    if (a->k == V_NONE && b->k == V_NONE) {
        *res = 0;
        return KVR_OK;
    }
    if (a->k == V_NONE || b->k == V_NONE || a->k == V_UNDEF
        || b->k == V_UNDEF)
    {
        if (a->k == V_UNDEF && b->k == V_UNDEF) {
            *res = 0;
            return KVR_OK;
        }
        return kvr_tmpl_error(c, line, "Cannot compare %s with %s",
                              kvr_tmpl_kind_name(a->k),
                              kvr_tmpl_kind_name(b->k));
    }
    if ((a->k == V_INT || a->k == V_FLOAT || a->k == V_BOOL)
        && (b->k == V_INT || b->k == V_FLOAT || b->k == V_BOOL))
    {
        x = a->k == V_BOOL ? a->u.b : a->u.n;
        y = b->k == V_BOOL ? b->u.b : b->u.n;
        *res = x < y ? -1 : x > y ? 1 : 0;
        return KVR_OK;
    }
    if (a->k != b->k || (a->k == V_ARRAY && a->u.a->tuple != b->u.a->tuple)) {
        return kvr_tmpl_error(c, line,
                              "Cannot compare different types: %s "
                              "and %s",
                              kvr_tmpl_kind_name(a->k),
                              kvr_tmpl_kind_name(b->k));
    }
    if (a->k != V_STR) {
        return kvr_tmpl_error(c, line, "Cannot compare type: %s",
                              kvr_tmpl_kind_name(a->k));
    }
    la = *a;
    lb = *b;
    if (!case_sensitive) {
        rc = kvr_tmpl_case(c, a->u.s.p, a->u.s.len, 0, &la);
        if (rc == KVR_OK) {
            rc = kvr_tmpl_case(c, b->u.s.p, b->u.s.len, 0, &lb);
        }
        if (rc) {
            return rc;
        }
    }
    n = la.u.s.len < lb.u.s.len ? la.u.s.len : lb.u.s.len;
    r = memcmp(la.u.s.p, lb.u.s.p, n);
    if (r == 0) {
        r = la.u.s.len < lb.u.s.len ? -1 : la.u.s.len > lb.u.s.len ? 1 : 0;
    }
    *res = r < 0 ? -1 : r > 0 ? 1 : 0;
    return KVR_OK;
}
