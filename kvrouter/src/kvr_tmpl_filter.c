/*
 * kvrouter: chat templates, filters. Mirrors applyFilter() of
 * @huggingface/jinja: which filters exist depends on the operand's type
 * and on whether the filter is called with parentheses, exactly as there
 * (e.g. `x|default` without parentheses is an error, `|int(0)` on a float
 * returns it unchanged, `|tojson` prints 3.0 as 3).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvr_tmpl_int.h"

enum {
    F_SAFE = 0, F_TOJSON, F_LIST, F_FIRST, F_LAST, F_LENGTH, F_REVERSE,
    F_SORT, F_JOIN, F_STRING, F_UNIQUE, F_UPPER, F_LOWER, F_TITLE,
    F_CAPITALIZE, F_TRIM, F_INDENT, F_INT, F_FLOAT, F_ABS, F_ITEMS, F_GET,
    F_KEYS, F_VALUES, F_DICTSORT, F_BOOL, F_DEFAULT, F_SELECTATTR,
    F_REJECTATTR, F_MAP, F_REPLACE, F_COUNT
};

static const char *filter_names[F_COUNT] = {
    "safe", "tojson", "list", "first", "last", "length", "reverse", "sort",
    "join", "string", "unique", "upper", "lower", "title", "capitalize",
    "trim", "indent", "int", "float", "abs", "items", "get", "keys",
    "values", "dictsort", "bool", "default", "selectattr", "rejectattr",
    "map", "replace"
};

int
kvr_tmpl_filter_id(const char *s, size_t n)
{
    int  i;

    for (i = 0; i < F_COUNT; i++) {
        if (strlen(filter_names[i]) == n
            && memcmp(filter_names[i], s, n) == 0)
        {
            return i;
        }
    }
    return -1;
}

static int
unknown(kvr_tmpl_ctx_t *c, int line, int fid, const kvr_tmpl_val_t *v)
{
    static const char *kinds[] = {
        "undefined", "none", "boolean", "integer", "float", "string",
        "list", "dict", "namespace", "keyword arguments", "function"
    };

    return kvr_tmpl_error(c, line, "filter \"%s\" cannot be applied to a %s",
                          filter_names[fid], kinds[v->k]);
}

/* ---- helpers ---- */

/* JavaScript truthiness of a value's underlying .value */
static int
raw_truthy(const kvr_tmpl_val_t *v)
{
    switch (v->k) {
    case V_UNDEF:
    case V_NONE:
    case V_BOOL:
    case V_INT:
    case V_FLOAT:
    case V_STR:
        return kvr_tmpl_truthy(v);   /* the scalars agree */
    default:
        return 1;                    /* an empty array or object too */
    }
}

/* parseInt(s, 10) / parseFloat(s); NaN when no number starts s */
static double
js_parse_num(const char *p, size_t n, int is_float)
{
    char        buf[512];
    const char *s;
    char       *end;
    size_t      i;
    int         neg;
    double      r;

    kvr_tmpl_js_trim(&p, &n, 1, 0);
    if (n > sizeof(buf) - 1) {
        n = sizeof(buf) - 1;
    }
    memcpy(buf, p, n);
    buf[n] = '\0';
    s = buf;
    neg = 0;
    if (*s == '+' || *s == '-') {
        neg = *s == '-';
        s++;
    }
    if (!is_float) {
        r = 0;
        for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
            r = r * 10 + (s[i] - '0');
        }
        if (i == 0) {
            return NAN;
        }
        return neg ? -r : r;
    }
    if (strncmp(s, "Infinity", 8) == 0) {
        return neg ? -INFINITY : INFINITY;
    }
    /* StrDecimalLiteral prefix: digits [. digits] [e[+-]digits] */
    i = 0;
    while (s[i] >= '0' && s[i] <= '9') {
        i++;
    }
    if (s[i] == '.') {
        size_t  j = i + 1;

        while (s[j] >= '0' && s[j] <= '9') {
            j++;
        }
        if (j == i + 1 && i == 0) {
            return NAN;
        }
        i = j;
    } else if (i == 0) {
        return NAN;
    }
    if (s[i] == 'e' || s[i] == 'E') {
        size_t  j = i + 1;

        if (s[j] == '+' || s[j] == '-') {
            j++;
        }
        if (s[j] >= '0' && s[j] <= '9') {
            while (s[j] >= '0' && s[j] <= '9') {
                j++;
            }
            i = j;
        }
    }
    buf[(size_t) (s - buf) + i] = '\0';
    r = strtod(s, &end);
    return neg ? -r : r;
}

typedef struct {
    kvr_tmpl_ctx_t        *c;
    int                    line;
    int                    reverse;
    int                    case_sensitive;
    int                    index;           /* dictsort: 0 key, 1 value */
    const kvr_tmpl_val_t  *attr;            /* sort(attribute=) */
    int                    rc;
} sort_ctx_t;

/* getAttributeValue(): a dotted path through dicts and lists */
static kvr_tmpl_val_t
attr_path(const kvr_tmpl_val_t *item, const char *path, size_t n)
{
    kvr_tmpl_val_t   v, *f;
    size_t           i, j, k;
    double           idx;

    v = *item;
    for (i = 0; i <= n; i = j + 1) {
        for (j = i; j < n && path[j] != '.'; j++) {
        }
        if (v.k == V_OBJECT || v.k == V_KWARGS || v.k == V_NS) {
            f = kvr_tmpl_obj_get(v.u.o, path + i, j - i);
            v = f ? *f : kvr_tmpl_undef();
        } else if (v.k == V_ARRAY) {
            idx = 0;
            for (k = i; k < j && path[k] >= '0' && path[k] <= '9'; k++) {
                idx = idx * 10 + (path[k] - '0');
            }
            if (k == i || idx >= (double) v.u.a->n) {
                return kvr_tmpl_undef();
            }
            v = v.u.a->v[(size_t) idx];
        } else {
            return kvr_tmpl_undef();
        }
    }
    return v;
}

static int
sort_cmp(sort_ctx_t *s, const kvr_tmpl_val_t *a, const kvr_tmpl_val_t *b)
{
    kvr_tmpl_val_t  x, y;
    char            num[40];
    size_t          nn;
    int             r;

    if (s->rc) {
        return 0;
    }
    x = *a;
    y = *b;
    if (s->index >= 0) {
        x = a->u.a->v[s->index];
        y = b->u.a->v[s->index];
    } else if (s->attr && s->attr->k != V_NONE) {
        if (s->attr->k == V_INT) {
            nn = kvr_tmpl_fmt_number(s->attr->u.n, num, sizeof(num));
            x = attr_path(a, num, nn);
            y = attr_path(b, num, nn);
        } else {
            x = attr_path(a, s->attr->u.s.p, s->attr->u.s.len);
            y = attr_path(b, s->attr->u.s.p, s->attr->u.s.len);
        }
    }
    s->rc = kvr_tmpl_compare(s->c, s->line, &x, &y, s->case_sensitive, &r);
    return s->reverse ? -r : r;
}

/* stable merge sort (Array.prototype.sort is stable) */
static int
sort_values(sort_ctx_t *s, kvr_tmpl_val_t *v, size_t n)
{
    kvr_tmpl_val_t  *tmp;
    size_t           w, i, lo, mid, hi, l, r, k;

    tmp = kvr_tmpl_alloc(&s->c->arena, (n + 1) * sizeof(*tmp));
    if (tmp == NULL) {
        return kvr_tmpl_nomem(s->c);
    }
    for (w = 1; w < n; w *= 2) {
        for (lo = 0; lo < n; lo += 2 * w) {
            mid = lo + w < n ? lo + w : n;
            hi = lo + 2 * w < n ? lo + 2 * w : n;
            l = lo;
            r = mid;
            k = lo;
            while (l < mid && r < hi) {
                if (sort_cmp(s, &v[r], &v[l]) < 0) {
                    tmp[k++] = v[r++];
                } else {
                    tmp[k++] = v[l++];
                }
            }
            while (l < mid) {
                tmp[k++] = v[l++];
            }
            while (r < hi) {
                tmp[k++] = v[r++];
            }
        }
        for (i = 0; i < n; i++) {
            v[i] = tmp[i];
        }
        if (s->rc) {
            return s->rc;
        }
    }
    return s->rc;
}

static kvr_tmpl_arr_t *
arr_copy(kvr_tmpl_ctx_t *c, const kvr_tmpl_arr_t *a)
{
    kvr_tmpl_arr_t  *r;

    r = kvr_tmpl_arr_new(c, a->n);
    if (r && a->n) {
        memcpy(r->v, a->v, a->n * sizeof(*r->v));
        r->n = a->n;
    }
    return r;
}

/* the sort filter: a sorted copy of a (stable; attr may be NULL) */
static int
sorted_copy(kvr_tmpl_ctx_t *c, int line, const kvr_tmpl_arr_t *a,
    int reverse, int case_sensitive, const kvr_tmpl_val_t *attr,
    kvr_tmpl_val_t *out)
{
    kvr_tmpl_arr_t  *r;
    sort_ctx_t       s;
    int              rc;

    r = arr_copy(c, a);
    if (r == NULL) {
        return kvr_tmpl_nomem(c);
    }
    memset(&s, 0, sizeof(s));
    s.c = c;
    s.line = line;
    s.index = -1;
    s.reverse = reverse;
    s.case_sensitive = case_sensitive;
    s.attr = attr;
    rc = sort_values(&s, r->v, r->n);
    if (rc) {
        return rc;
    }
    *out = kvr_tmpl_wrap_arr(r);
    return KVR_OK;
}

/* x.value joined as JavaScript's Array.prototype.join does */
static int
join_values(kvr_tmpl_ctx_t *c, int line, const kvr_tmpl_arr_t *a,
    const char *sep, size_t sepn, kvr_tmpl_val_t *out)
{
    kvr_tmpl_sb_t  sb;
    size_t         i;
    int            rc;

    kvr_tmpl_sb_init(&sb, c);
    for (i = 0; i < a->n; i++) {
        if (i) {
            kvr_tmpl_sb_add(&sb, sep, sepn);
        }
        if (a->v[i].k == V_NONE || a->v[i].k == V_UNDEF) {
            continue;
        }
        rc = kvr_tmpl_to_raw(c, line, &a->v[i], &sb);
        if (rc) {
            return rc;
        }
    }
    return kvr_tmpl_sb_done(&sb, out);
}

static int
indent_str(kvr_tmpl_ctx_t *c, int line, const kvr_tmpl_val_t *s, double width,
    int first, int blank, kvr_tmpl_val_t *out)
{
    kvr_tmpl_sb_t  sb;
    size_t         i, j, ln, k;

    if (width < 0 || width > 10000) {
        return kvr_tmpl_error(c, line, "indent width out of range");
    }
    kvr_tmpl_sb_init(&sb, c);
    for (i = 0, ln = 0; i <= s->u.s.len; i = j + 1, ln++) {
        for (j = i; j < s->u.s.len && s->u.s.p[j] != '\n'; j++) {
        }
        if (ln) {
            kvr_tmpl_sb_addc(&sb, '\n');
        }
        if (!((!first && ln == 0) || (!blank && j == i))) {
            for (k = 0; k < (size_t) width; k++) {
                kvr_tmpl_sb_addc(&sb, ' ');
            }
        }
        kvr_tmpl_sb_add(&sb, s->u.s.p + i, j - i);
    }
    return kvr_tmpl_sb_done(&sb, out);
}

static int
unique(kvr_tmpl_ctx_t *c, const kvr_tmpl_arr_t *a, kvr_tmpl_val_t *out)
{
    kvr_tmpl_arr_t  *r;
    size_t           i, j;
    int              seen, rc;

    r = kvr_tmpl_arr_new(c, a->n);
    if (r == NULL) {
        return kvr_tmpl_nomem(c);
    }
    for (i = 0; i < a->n; i++) {
        rc = kvr_tmpl_charge(c, 0, r->n + 1);
        if (rc) {
            return rc;
        }
        seen = 0;
        for (j = 0; j < r->n && !seen; j++) {
            /* Set membership: SameValueZero on the underlying values */
            seen = kvr_tmpl_strict_eq(&r->v[j], &a->v[i])
                   || ((r->v[j].k == V_INT || r->v[j].k == V_FLOAT)
                       && (a->v[i].k == V_INT || a->v[i].k == V_FLOAT)
                       && isnan(r->v[j].u.n) && isnan(a->v[i].u.n))
                   || ((r->v[j].k == V_UNDEF || r->v[j].k == V_NONE)
                       && r->v[j].k == a->v[i].k);
        }
        if (!seen) {
            rc = kvr_tmpl_arr_push(c, r, a->v[i]);
            if (rc) {
                return rc;
            }
        }
    }
    *out = kvr_tmpl_wrap_arr(r);
    return KVR_OK;
}

static const kvr_tmpl_val_t *
arg_or_kw(const kvr_tmpl_arr_t *pos, size_t i, const kvr_tmpl_obj_t *kw,
    const char *name)
{
    if (pos && i < pos->n) {
        return &pos->v[i];
    }
    return kw ? kvr_tmpl_obj_get(kw, name, strlen(name)) : NULL;
}

static int
filter_tojson(kvr_tmpl_ctx_t *c, int line, kvr_tmpl_obj_t *kw,
    const kvr_tmpl_val_t *operand, kvr_tmpl_val_t *out)
{
    kvr_tmpl_json_opt_t    opt;
    const kvr_tmpl_val_t  *v;
    kvr_tmpl_sb_t          sb;
    int                    rc;

    memset(&opt, 0, sizeof(opt));
    opt.undef_to_null = 1;
    if (kw) {
        v = kvr_tmpl_obj_get(kw, "indent", 6);
        if (v && v->k != V_INT && v->k != V_NONE) {
            return kvr_tmpl_error(c, line, "If set, indent must be a number");
        }
        if (v && v->k == V_INT) {
            if (v->u.n < 0 || v->u.n > 10000) {
                return kvr_tmpl_error(c, line, "tojson indent out of range");
            }
            opt.indent = (int) v->u.n;
        }
        v = kvr_tmpl_obj_get(kw, "ensure_ascii", 12);
        if (v && v->k != V_BOOL) {
            return kvr_tmpl_error(c, line, "If set, ensure_ascii must be a "
                                  "boolean");
        }
        opt.ensure_ascii = v ? v->u.b : 0;
        v = kvr_tmpl_obj_get(kw, "sort_keys", 9);
        if (v && v->k != V_BOOL) {
            return kvr_tmpl_error(c, line, "If set, sort_keys must be a "
                                  "boolean");
        }
        opt.sort_keys = v ? v->u.b : 0;
        v = kvr_tmpl_obj_get(kw, "separators", 10);
        if (v && v->k == V_ARRAY) {
            if (v->u.a->n != 2 || v->u.a->v[0].k != V_STR
                || v->u.a->v[1].k != V_STR)
            {
                return kvr_tmpl_error(c, line, "separators must be a tuple of "
                                      "two strings");
            }
            opt.item_sep = v->u.a->v[0].u.s.p;
            opt.item_sep_n = v->u.a->v[0].u.s.len;
            opt.key_sep = v->u.a->v[1].u.s.p;
            opt.key_sep_n = v->u.a->v[1].u.s.len;
        } else if (v && v->k != V_NONE) {
            return kvr_tmpl_error(c, line, "If set, separators must be a "
                                  "tuple of two strings");
        }
    }
    kvr_tmpl_sb_init(&sb, c);
    rc = kvr_tmpl_to_json(c, line, operand, &opt, 0, &sb);
    if (rc) {
        return rc;
    }
    return kvr_tmpl_sb_done(&sb, out);
}

/* a builtin method of an object, called as a filter */
static int
object_builtin(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env, int line, int fid,
    const kvr_tmpl_val_t *operand, kvr_tmpl_arr_t *args, kvr_tmpl_val_t *out)
{
    kvr_tmpl_val_t  fn;
    int             rc;

    rc = kvr_tmpl_builtin_attr(c, operand, filter_names[fid],
                               strlen(filter_names[fid]), &fn);
    if (rc) {
        return rc;
    }
    if (fn.k != V_FUNC) {
        return unknown(c, line, fid, operand);
    }
    if (args == NULL) {
        args = kvr_tmpl_arr_new(c, 0);
        if (args == NULL) {
            return kvr_tmpl_nomem(c);
        }
    }
    return kvr_tmpl_call_builtin(c, env, line, fn.u.f, args, out);
}

/* filter without parentheses */
static int
filter_plain(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env, int line, int fid,
    kvr_tmpl_val_t *v, kvr_tmpl_val_t *out)
{
    kvr_tmpl_arr_t       *r;
    kvr_tmpl_json_opt_t   opt;
    kvr_tmpl_sb_t         sb;
    const char           *p;
    size_t                n, i;
    double                d;
    int                   rc;

    switch (v->k) {
    case V_ARRAY:
        switch (fid) {
        case F_LIST:
            *out = *v;
            return KVR_OK;
        case F_FIRST:
        case F_LAST:
            /*
             * The reference yields JavaScript's own undefined for [], which
             * fails wherever it is used except when stored by set: a hole.
             */
            if (v->u.a->n == 0) {
                *out = kvr_tmpl_undef();
                out->u.b = KVR_TMPL_HOLE;
            } else {
                *out = v->u.a->v[fid == F_FIRST ? 0 : v->u.a->n - 1];
            }
            return KVR_OK;
        case F_LENGTH:
            *out = kvr_tmpl_num(V_INT, (double) v->u.a->n);
            return KVR_OK;
        case F_REVERSE:
            r = arr_copy(c, v->u.a);
            if (r == NULL) {
                return kvr_tmpl_nomem(c);
            }
            for (i = 0; i < r->n / 2; i++) {
                kvr_tmpl_val_t  t = r->v[i];

                r->v[i] = r->v[r->n - 1 - i];
                r->v[r->n - 1 - i] = t;
            }
            *out = kvr_tmpl_wrap_arr(r);
            return KVR_OK;
        case F_SORT:
            return sorted_copy(c, line, v->u.a, 0, 0, NULL, out);
        case F_JOIN:
            return join_values(c, line, v->u.a, "", 0, out);
        case F_STRING:
            memset(&opt, 0, sizeof(opt));
            kvr_tmpl_sb_init(&sb, c);
            rc = kvr_tmpl_to_json(c, line, v, &opt, 0, &sb);
            if (rc) {
                return rc;
            }
            return kvr_tmpl_sb_done(&sb, out);
        case F_UNIQUE:
            return unique(c, v->u.a, out);
        default:
            return unknown(c, line, fid, v);
        }
    case V_STR:
        switch (fid) {
        case F_LENGTH:
            *out = kvr_tmpl_num(
                V_INT, (double) kvr_tmpl_utf16_len(v->u.s.p, v->u.s.len));
            return KVR_OK;
        case F_UPPER:
        case F_LOWER:
        case F_TITLE:
        case F_CAPITALIZE:
            rc = kvr_tmpl_builtin_attr(c, v, filter_names[fid],
                                       strlen(filter_names[fid]), out);
            if (rc) {
                return rc;
            }
            r = kvr_tmpl_arr_new(c, 0);
            if (r == NULL) {
                return kvr_tmpl_nomem(c);
            }
            return kvr_tmpl_call_builtin(c, env, line, out->u.f, r, out);
        case F_TRIM:
            p = v->u.s.p;
            n = v->u.s.len;
            kvr_tmpl_js_trim(&p, &n, 1, 1);
            *out = kvr_tmpl_str(p, n);
            return KVR_OK;
        case F_INDENT:
            return indent_str(c, line, v, 4, 0, 0, out);
        case F_JOIN:
        case F_STRING:
            *out = *v;
            return KVR_OK;
        case F_INT:
        case F_FLOAT:
            d = js_parse_num(v->u.s.p, v->u.s.len, fid == F_FLOAT);
            *out = kvr_tmpl_num(fid == F_INT ? V_INT : V_FLOAT,
                                isnan(d) ? 0 : d);
            return KVR_OK;
        default:
            return unknown(c, line, fid, v);
        }
    case V_INT:
    case V_FLOAT:
        switch (fid) {
        case F_ABS:
            *out = kvr_tmpl_num(v->k, fabs(v->u.n));
            return KVR_OK;
        case F_INT:
            *out = kvr_tmpl_num(V_INT, floor(v->u.n));
            return KVR_OK;
        case F_FLOAT:
            *out = kvr_tmpl_num(V_FLOAT, v->u.n);
            return KVR_OK;
        case F_STRING:
            kvr_tmpl_sb_init(&sb, c);
            rc = kvr_tmpl_to_output(c, line, v, &sb);
            if (rc) {
                return rc;
            }
            return kvr_tmpl_sb_done(&sb, out);
        default:
            return unknown(c, line, fid, v);
        }
    case V_OBJECT:
    case V_KWARGS:
        switch (fid) {
        case F_ITEMS:
            return kvr_tmpl_obj_items(c, v->u.o, out);
        case F_LENGTH:
            *out = kvr_tmpl_num(V_INT, (double) v->u.o->n);
            return KVR_OK;
        default:
            return object_builtin(c, env, line, fid, v, NULL, out);
        }
    case V_BOOL:
        switch (fid) {
        case F_BOOL:
            *out = *v;
            return KVR_OK;
        case F_INT:
            *out = kvr_tmpl_num(V_INT, v->u.b);
            return KVR_OK;
        case F_FLOAT:
            *out = kvr_tmpl_num(V_FLOAT, v->u.b);
            return KVR_OK;
        case F_STRING:
            *out = kvr_tmpl_str(v->u.b ? "true" : "false", v->u.b ? 4 : 5);
            return KVR_OK;
        default:
            return unknown(c, line, fid, v);
        }
    default:
        return unknown(c, line, fid, v);
    }
}

static int
filter_select(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env,
    const kvr_tmpl_node_t *call, int fid, kvr_tmpl_val_t *v,
    kvr_tmpl_val_t *out)
{
    kvr_tmpl_val_t   a[3], *f;
    kvr_tmpl_arr_t  *r;
    size_t           i, na;
    int              rc, tid, res, sel;

    sel = fid == F_SELECTATTR;
    for (i = 0; i < v->u.a->n; i++) {
        if (v->u.a->v[i].k != V_OBJECT && v->u.a->v[i].k != V_KWARGS
            && v->u.a->v[i].k != V_NS)
        {
            return kvr_tmpl_error(c, call->line, "%s can only be applied to "
                                  "a list of dicts", filter_names[fid]);
        }
    }
    for (i = 0; i < call->nlist; i++) {
        if (call->list[i]->kind != N_STR) {
            return kvr_tmpl_error(c, call->line, "arguments of %s must be "
                                  "strings", filter_names[fid]);
        }
    }
    na = call->nlist < 3 ? call->nlist : 3;
    for (i = 0; i < na; i++) {
        rc = kvr_tmpl_eval(c, env, call->list[i], &a[i]);
        if (rc) {
            return rc;
        }
    }
    if (na == 0) {
        return kvr_tmpl_error(c, call->line, "%s needs an attribute name",
                              filter_names[fid]);
    }
    tid = -1;
    if (na > 1) {
        tid = kvr_tmpl_test_id(a[1].u.s.p, a[1].u.s.len);
        if (tid < 0) {
            return kvr_tmpl_error(c, call->line, "Unknown test: %.*s",
                                  (int) a[1].u.s.len, a[1].u.s.p);
        }
    }
    r = kvr_tmpl_arr_new(c, v->u.a->n);
    if (r == NULL) {
        return kvr_tmpl_nomem(c);
    }
    for (i = 0; i < v->u.a->n; i++) {
        f = kvr_tmpl_obj_get(v->u.a->v[i].u.o, a[0].u.s.p, a[0].u.s.len);
        res = 0;
        if (f) {
            if (tid >= 0) {
                rc = kvr_tmpl_run_test(c, call->line, tid, f,
                                       na > 2 ? &a[2] : NULL, &res);
                if (rc) {
                    return rc;
                }
            } else {
                res = kvr_tmpl_truthy(f);
            }
        }
        if (sel ? res : !res) {
            r->v[r->n++] = v->u.a->v[i];
        }
    }
    *out = kvr_tmpl_wrap_arr(r);
    return KVR_OK;
}

/* filter called with parentheses */
static int
filter_call(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env,
    const kvr_tmpl_node_t *call, int fid, kvr_tmpl_val_t *v,
    kvr_tmpl_val_t *out)
{
    kvr_tmpl_arr_t        *pos, *r, *chars;
    kvr_tmpl_obj_t        *kw;
    const kvr_tmpl_val_t  *a, *b, *d;
    kvr_tmpl_val_t         m, fn;
    size_t                 i, k;
    uint32_t               cp;
    double                 num;
    int                    rc, line;

    line = call->line;
    if (fid == F_SELECTATTR || fid == F_REJECTATTR) {
        if (v->k != V_ARRAY) {
            goto other;
        }
        return filter_select(c, env, call, fid, v, out);
    }
    rc = kvr_tmpl_eval_args(c, env, call->list, call->nlist, &pos, &kw);
    if (rc) {
        return rc;
    }
    switch (fid) {
    case F_TOJSON:
        return filter_tojson(c, line, kw, v, out);
    case F_JOIN:
        if (v->k == V_STR) {
            chars = kvr_tmpl_arr_new(c, v->u.s.len);
            if (chars == NULL) {
                return kvr_tmpl_nomem(c);
            }
            for (i = 0; i < v->u.s.len; i += k) {
                k = kvr_tmpl_utf8_next(v->u.s.p + i, v->u.s.len - i, &cp);
                chars->v[chars->n++] = kvr_tmpl_str(v->u.s.p + i, k);
            }
        } else if (v->k == V_ARRAY) {
            chars = v->u.a;
        } else {
            return unknown(c, line, fid, v);
        }
        a = arg_or_kw(pos, 0, kw, "separator");
        if (a && a->k != V_STR) {
            return kvr_tmpl_error(c, line, "separator must be a string");
        }
        return join_values(c, line, chars, a ? a->u.s.p : "",
                           a ? a->u.s.len : 0, out);
    case F_INT:
    case F_FLOAT:
        a = arg_or_kw(pos, 0, kw, "default");
        if (v->k == V_STR) {
            num = js_parse_num(v->u.s.p, v->u.s.len, fid == F_FLOAT);
            if (isnan(num)) {
                *out = a ? *a : kvr_tmpl_num(fid == F_INT ? V_INT : V_FLOAT,
                                             0);
            } else {
                *out = kvr_tmpl_num(fid == F_INT ? V_INT : V_FLOAT, num);
            }
            return KVR_OK;
        }
        if (v->k == V_INT || v->k == V_FLOAT) {
            *out = *v;
            return KVR_OK;
        }
        if (v->k == V_BOOL) {
            *out = kvr_tmpl_num(fid == F_INT ? V_INT : V_FLOAT, v->u.b);
            return KVR_OK;
        }
        return unknown(c, line, fid, v);
    case F_DEFAULT:
        a = pos->n > 0 ? &pos->v[0] : NULL;
        b = arg_or_kw(pos, 1, kw, "boolean");
        if (b && b->k != V_BOOL) {
            return kvr_tmpl_error(c, line, "default filter flag must be a "
                                  "boolean");
        }
        if (v->k == V_UNDEF || (b && b->u.b && !kvr_tmpl_truthy(v))) {
            *out = a ? *a : kvr_tmpl_str("", 0);
        } else {
            *out = *v;
        }
        return KVR_OK;
    default:
        break;
    }

other:
    if (fid == F_SELECTATTR || fid == F_REJECTATTR) {
        rc = kvr_tmpl_eval_args(c, env, call->list, call->nlist, &pos, &kw);
        if (rc) {
            return rc;
        }
    }
    if (v->k == V_ARRAY) {
        switch (fid) {
        case F_SORT:
            a = arg_or_kw(pos, 0, kw, "reverse");
            b = arg_or_kw(pos, 1, kw, "case_sensitive");
            d = arg_or_kw(pos, 2, kw, "attribute");
            if ((a && a->k != V_BOOL) || (b && b->k != V_BOOL)) {
                return kvr_tmpl_error(c, line, "reverse and case_sensitive "
                                      "must be booleans");
            }
            if (d && d->k != V_STR && d->k != V_INT && d->k != V_NONE) {
                return kvr_tmpl_error(c, line, "attribute must be a string, "
                                      "integer, or null");
            }
            return sorted_copy(c, line, v->u.a, a ? a->u.b : 0,
                               b ? b->u.b : 0, d, out);
        case F_MAP:
            a = kvr_tmpl_obj_get(kw, "attribute", 9);
            if (a == NULL) {
                return kvr_tmpl_error(c, line, "map without attribute= is not "
                                      "supported");
            }
            if (a->k != V_STR) {
                return kvr_tmpl_error(c, line, "attribute must be a string");
            }
            d = kvr_tmpl_obj_get(kw, "default", 7);
            r = kvr_tmpl_arr_new(c, v->u.a->n);
            if (r == NULL) {
                return kvr_tmpl_nomem(c);
            }
            for (i = 0; i < v->u.a->n; i++) {
                if (v->u.a->v[i].k != V_OBJECT && v->u.a->v[i].k != V_KWARGS
                    && v->u.a->v[i].k != V_NS)
                {
                    return kvr_tmpl_error(c, line, "items in map must be an "
                                          "object");
                }
                m = attr_path(&v->u.a->v[i], a->u.s.p, a->u.s.len);
                r->v[i] = m.k == V_UNDEF && d ? *d : m;
            }
            r->n = v->u.a->n;
            *out = kvr_tmpl_wrap_arr(r);
            return KVR_OK;
        default:
            return unknown(c, line, fid, v);
        }
    }
    if (v->k == V_STR) {
        switch (fid) {
        case F_INDENT:
            a = arg_or_kw(pos, 0, kw, "width");
            b = arg_or_kw(pos, 1, kw, "first");
            d = arg_or_kw(pos, 2, kw, "blank");
            if (a && a->k != V_INT) {
                return kvr_tmpl_error(c, line, "width must be a number");
            }
            return indent_str(c, line, v, a ? a->u.n : 4,
                              b ? raw_truthy(b) : 0, d ? raw_truthy(d) : 0,
                              out);
        case F_REPLACE:
            rc = kvr_tmpl_builtin_attr(c, v, "replace", 7, &fn);
            if (rc == KVR_OK) {
                rc = kvr_tmpl_arr_push(c, pos, kvr_tmpl_wrap_obj(V_KWARGS,
                                                                 kw));
            }
            if (rc) {
                return rc;
            }
            return kvr_tmpl_call_builtin(c, env, line, fn.u.f, pos, out);
        default:
            return unknown(c, line, fid, v);
        }
    }
    if (v->k == V_OBJECT || v->k == V_KWARGS) {
        if (kw->n > 0) {
            rc = kvr_tmpl_arr_push(c, pos, kvr_tmpl_wrap_obj(V_KWARGS, kw));
            if (rc) {
                return rc;
            }
        }
        return object_builtin(c, env, line, fid, v, pos, out);
    }
    return unknown(c, line, fid, v);
}

int
kvr_tmpl_apply_filter(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env,
    const kvr_tmpl_node_t *filter, int fid, kvr_tmpl_val_t *operand,
    kvr_tmpl_val_t *out)
{
    if (fid == F_SAFE && filter->kind == N_IDENT) {
        *out = *operand;
        return KVR_OK;
    }
    if (fid == F_TOJSON && filter->kind == N_IDENT) {
        return filter_tojson(c, filter->line, NULL, operand, out);
    }
    if (filter->kind == N_IDENT) {
        return filter_plain(c, env, filter->line, fid, operand, out);
    }
    return filter_call(c, env, filter, fid, operand, out);
}
