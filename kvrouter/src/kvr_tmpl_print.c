/*
 * kvrouter: chat templates, printing. Follows the reference: {{ }} writes
 * RuntimeValue.toString() (floats keep ".0", lists and dicts print as
 * JSON), while ~ and string + use JavaScript's own toString of the
 * underlying value (floats without ".0", lists joined by ",", dicts as
 * "[object Map]"); tojson is the reference's toJSON().
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvr_tmpl_int.h"

/* nesting beyond this in printing/JSON is an error, not a crash */
#define KVR_TMPL_MAX_VALUE_DEPTH  512

/* ---- numbers ---- */

/* Number.prototype.toString() */
size_t
kvr_tmpl_fmt_number(double d, char *buf, size_t len)
{
    char    tmp[40], digits[24];
    int     prec, e, n, k, i;
    char   *p, *q;
    size_t  o;

    if (isnan(d)) {
        return (size_t) snprintf(buf, len, "NaN");
    }
    if (isinf(d)) {
        return (size_t) snprintf(buf, len, d < 0 ? "-Infinity" : "Infinity");
    }
    if (d == 0) {
        return (size_t) snprintf(buf, len, "0");
    }
    o = 0;
    if (d < 0) {
        buf[o++] = '-';
        d = -d;
    }
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d) {
            break;
        }
    }
    k = 0;
    for (p = tmp; *p && *p != 'e'; p++) {
        if (*p >= '0' && *p <= '9') {
            digits[k++] = *p;
        }
    }
    e = atoi(p + 1);
    while (k > 1 && digits[k - 1] == '0') {
        k--;
    }
    digits[k] = '\0';
    n = e + 1;
    q = buf + o;
    if (k <= n && n <= 21) {
        memcpy(q, digits, (size_t) k);
        for (i = k; i < n; i++) {
            q[i] = '0';
        }
        q[n] = '\0';
        return o + (size_t) n;
    }
    if (0 < n && n <= 21) {
        memcpy(q, digits, (size_t) n);
        q[n] = '.';
        memcpy(q + n + 1, digits + n, (size_t) (k - n));
        q[k + 1] = '\0';
        return o + (size_t) k + 1;
    }
    if (-6 < n && n <= 0) {
        q[0] = '0';
        q[1] = '.';
        for (i = 0; i < -n; i++) {
            q[2 + i] = '0';
        }
        memcpy(q + 2 - n, digits, (size_t) k);
        q[2 - n + k] = '\0';
        return o + 2 + (size_t) (-n) + (size_t) k;
    }
    if (k == 1) {
        return o + (size_t) snprintf(q, len - o, "%ce%c%d", digits[0],
                                     n - 1 < 0 ? '-' : '+', abs(n - 1));
    }
    return o + (size_t) snprintf(q, len - o, "%c.%se%c%d", digits[0],
                                 digits + 1, n - 1 < 0 ? '-' : '+',
                                 abs(n - 1));
}

/* FloatValue.toString() */
static size_t
fmt_float(double d, char *buf, size_t len)
{
    if (d == 0 && signbit(d)) {
        return (size_t) snprintf(buf, len, "-0.0");
    }
    if (isfinite(d) && fmod(d, 1) == 0) {
        if (fabs(d) >= 1e21) {
            return kvr_tmpl_fmt_number(d, buf, len);
        }
        return (size_t) snprintf(buf, len, "%.1f", d);
    }
    return kvr_tmpl_fmt_number(d, buf, len);
}

/* ---- string builder ---- */

void
kvr_tmpl_sb_init(kvr_tmpl_sb_t *sb, kvr_tmpl_ctx_t *c)
{
    memset(sb, 0, sizeof(*sb));
    sb->c = c;
}

void
kvr_tmpl_sb_add(kvr_tmpl_sb_t *sb, const char *p, size_t n)
{
    char    *np;
    size_t   cap;

    if (sb->failed || n == 0) {
        return;
    }
    sb->c->work += n;
    if (sb->c->work > KVR_TMPL_MAX_WORK) {
        sb->failed = 1;
        return;
    }
    if (sb->cap - sb->n < n + 1) {
        cap = sb->cap ? sb->cap : 64;
        while (cap - sb->n < n + 1) {
            if (cap > ((size_t) -1) / 4) {
                sb->failed = 1;
                return;
            }
            cap *= 2;
        }
        np = kvr_tmpl_alloc(&sb->c->arena, cap);
        if (np == NULL) {
            sb->failed = 1;
            return;
        }
        if (sb->n) {
            memcpy(np, sb->p, sb->n);
        }
        sb->p = np;
        sb->cap = cap;
    }
    memcpy(sb->p + sb->n, p, n);
    sb->n += n;
    sb->p[sb->n] = '\0';
}

void
kvr_tmpl_sb_addc(kvr_tmpl_sb_t *sb, char ch)
{
    kvr_tmpl_sb_add(sb, &ch, 1);
}

kvr_tmpl_val_t
kvr_tmpl_sb_val(kvr_tmpl_sb_t *sb)
{
    return kvr_tmpl_str(sb->p ? sb->p : "", sb->n);
}

int
kvr_tmpl_sb_done(kvr_tmpl_sb_t *sb, kvr_tmpl_val_t *out)
{
    if (sb->failed) {
        return kvr_tmpl_nomem(sb->c);
    }
    *out = kvr_tmpl_sb_val(sb);
    return KVR_OK;
}

/* ---- JSON ---- */

static void
json_quote(kvr_tmpl_sb_t *sb, const char *p, size_t n, int ascii)
{
    size_t    i, k;
    uint32_t  cp, hi, lo;
    char      esc[16];

    kvr_tmpl_sb_addc(sb, '"');
    for (i = 0; i < n; i += k) {
        k = kvr_tmpl_utf8_next(p + i, n - i, &cp);
        switch (cp) {
        case '"': kvr_tmpl_sb_add(sb, "\\\"", 2); continue;
        case '\\': kvr_tmpl_sb_add(sb, "\\\\", 2); continue;
        case '\b': kvr_tmpl_sb_add(sb, "\\b", 2); continue;
        case '\f': kvr_tmpl_sb_add(sb, "\\f", 2); continue;
        case '\n': kvr_tmpl_sb_add(sb, "\\n", 2); continue;
        case '\r': kvr_tmpl_sb_add(sb, "\\r", 2); continue;
        case '\t': kvr_tmpl_sb_add(sb, "\\t", 2); continue;
        default:
            break;
        }
        if (cp < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", cp);
            kvr_tmpl_sb_add(sb, esc, 6);
        } else if (ascii && cp >= 0x7f && !(k == 1 && cp >= 0x80)) {
            if (cp >= 0x10000) {
                hi = 0xd800 + ((cp - 0x10000) >> 10);
                lo = 0xdc00 + ((cp - 0x10000) & 0x3ff);
                snprintf(esc, sizeof(esc), "\\u%04x\\u%04x", hi, lo);
                kvr_tmpl_sb_add(sb, esc, 12);
            } else {
                snprintf(esc, sizeof(esc), "\\u%04x", cp);
                kvr_tmpl_sb_add(sb, esc, 6);
            }
        } else {
            kvr_tmpl_sb_add(sb, p + i, k);
        }
    }
    kvr_tmpl_sb_addc(sb, '"');
}

/* approximates String.prototype.localeCompare (root collation) for keys */
static int
coll_class(unsigned char ch)
{
    if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
        return 0;
    }
    if (ch >= '0' && ch <= '9') {
        return 2;
    }
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch >= 0x80) {
        return 3;
    }
    return 1;
}

static int
locale_cmp(const kvr_tmpl_ent_t *a, const kvr_tmpl_ent_t *b)
{
    size_t         i, n;
    unsigned char  x, y;
    int            cx, cy;

    n = a->kn < b->kn ? a->kn : b->kn;
    for (i = 0; i < n; i++) {
        x = (unsigned char) a->k[i];
        y = (unsigned char) b->k[i];
        cx = coll_class(x);
        cy = coll_class(y);
        if (cx != cy) {
            return cx - cy;
        }
        if (x >= 'A' && x <= 'Z') {
            x = (unsigned char) (x + 32);
        }
        if (y >= 'A' && y <= 'Z') {
            y = (unsigned char) (y + 32);
        }
        if (x != y) {
            return x - y;
        }
    }
    if (a->kn != b->kn) {
        return a->kn < b->kn ? -1 : 1;
    }
    for (i = 0; i < n; i++) {
        x = (unsigned char) a->k[i];
        y = (unsigned char) b->k[i];
        if (x != y) {
            /* lowercase first */
            return x > y ? -1 : 1;
        }
    }
    return 0;
}

/* qsort made stable, like Array.prototype.sort: equal keys keep their
   order (the entries point into one array, so addresses give it) */
static int
ent_cmp(const void *a, const void *b)
{
    const kvr_tmpl_ent_t  *x = *(const kvr_tmpl_ent_t *const *) a;
    const kvr_tmpl_ent_t  *y = *(const kvr_tmpl_ent_t *const *) b;
    int                    r;

    r = locale_cmp(x, y);
    return r ? r : (x > y) - (x < y);
}

/* With an indent: a newline and the indentation of nesting level depth,
 * before an item or a closing bracket; without: nothing. */
static void
json_break(kvr_tmpl_sb_t *sb, int indent, int depth)
{
    size_t  j;

    if (indent == 0) {
        return;
    }
    kvr_tmpl_sb_addc(sb, '\n');
    for (j = 0; j < (size_t) indent * (size_t) depth; j++) {
        kvr_tmpl_sb_addc(sb, ' ');
    }
}

int
kvr_tmpl_to_json(kvr_tmpl_ctx_t *c, int line, const kvr_tmpl_val_t *v,
    const kvr_tmpl_json_opt_t *opt, int depth, kvr_tmpl_sb_t *sb)
{
    const char             *isep, *ksep;
    size_t                  isn, ksn, i, n;
    const kvr_tmpl_ent_t  **ents;
    char                    num[40];
    int                     rc;

    if (depth > KVR_TMPL_MAX_VALUE_DEPTH) {
        return kvr_tmpl_error(c, line, "value nested too deeply");
    }
    if (opt->item_sep) {
        isep = opt->item_sep;
        isn = opt->item_sep_n;
        ksep = opt->key_sep;
        ksn = opt->key_sep_n;
    } else {
        isep = opt->indent ? "," : ", ";
        isn = opt->indent ? 1 : 2;
        ksep = ": ";
        ksn = 2;
    }
    switch (v->k) {
    case V_NONE:
        kvr_tmpl_sb_add(sb, "null", 4);
        return KVR_OK;
    case V_UNDEF:
        kvr_tmpl_sb_add(sb, opt->undef_to_null ? "null" : "undefined",
                        opt->undef_to_null ? 4 : 9);
        return KVR_OK;
    case V_INT:
    case V_FLOAT:
        if (!isfinite(v->u.n)) {
            kvr_tmpl_sb_add(sb, "null", 4);
        } else {
            kvr_tmpl_sb_add(sb, num, kvr_tmpl_fmt_number(v->u.n, num,
                                                         sizeof(num)));
        }
        return KVR_OK;
    case V_BOOL:
        kvr_tmpl_sb_add(sb, v->u.b ? "true" : "false", v->u.b ? 4 : 5);
        return KVR_OK;
    case V_STR:
        json_quote(sb, v->u.s.p, v->u.s.len, opt->ensure_ascii);
        return KVR_OK;
    case V_ARRAY:
        if (v->u.a->tuple) {
            break;
        }
        n = v->u.a->n;
        kvr_tmpl_sb_addc(sb, '[');
        for (i = 0; i < n; i++) {
            if (i) {
                kvr_tmpl_sb_add(sb, isep, isn);
            }
            json_break(sb, opt->indent, depth + 1);
            rc = kvr_tmpl_to_json(c, line, &v->u.a->v[i], opt, depth + 1, sb);
            if (rc) {
                return rc;
            }
        }
        if (n > 0) {
            json_break(sb, opt->indent, depth);
        }
        kvr_tmpl_sb_addc(sb, ']');
        return sb->failed ? kvr_tmpl_nomem(c) : KVR_OK;
    case V_OBJECT:
    case V_NS:
        n = v->u.o->n;
        ents = kvr_tmpl_alloc(&c->arena, (n + 1) * sizeof(*ents));
        if (ents == NULL) {
            return kvr_tmpl_nomem(c);
        }
        for (i = 0; i < n; i++) {
            ents[i] = &v->u.o->e[i];
        }
        if (opt->sort_keys && n > 1) {
            qsort(ents, n, sizeof(*ents), ent_cmp);
        }
        kvr_tmpl_sb_addc(sb, '{');
        for (i = 0; i < n; i++) {
            if (i) {
                kvr_tmpl_sb_add(sb, isep, isn);
            }
            json_break(sb, opt->indent, depth + 1);
            json_quote(sb, ents[i]->k, ents[i]->kn, opt->ensure_ascii);
            kvr_tmpl_sb_add(sb, ksep, ksn);
            rc = kvr_tmpl_to_json(c, line, &ents[i]->v, opt, depth + 1, sb);
            if (rc) {
                return rc;
            }
        }
        if (n > 0) {
            json_break(sb, opt->indent, depth);
        }
        kvr_tmpl_sb_addc(sb, '}');
        return sb->failed ? kvr_tmpl_nomem(c) : KVR_OK;
    default:
        break;
    }
    return kvr_tmpl_error(c, line, "Cannot convert to JSON: %s",
                          v->k == V_ARRAY ? "TupleValue"
                                          : kvr_tmpl_kind_name(v->k));
}

/* ---- printing ---- */

static int
to_output(kvr_tmpl_ctx_t *c, int line, const kvr_tmpl_val_t *v,
    kvr_tmpl_sb_t *sb, int depth)
{
    kvr_tmpl_json_opt_t  opt;
    char                 num[40];
    int                  rc;

    (void) depth;
    switch (v->k) {
    case V_UNDEF:
        kvr_tmpl_sb_add(sb, "undefined", 9);
        break;
    case V_NONE:
        /* the reference's NullValue holds JavaScript undefined */
        kvr_tmpl_sb_add(sb, "undefined", 9);
        break;
    case V_BOOL:
        kvr_tmpl_sb_add(sb, v->u.b ? "true" : "false", v->u.b ? 4 : 5);
        break;
    case V_INT:
        kvr_tmpl_sb_add(sb, num, kvr_tmpl_fmt_number(v->u.n, num,
                                                     sizeof(num)));
        break;
    case V_FLOAT:
        kvr_tmpl_sb_add(sb, num, fmt_float(v->u.n, num, sizeof(num)));
        break;
    case V_STR:
        kvr_tmpl_sb_add(sb, v->u.s.p, v->u.s.len);
        break;
    case V_FUNC:
        return kvr_tmpl_error(c, line, "cannot print a function");
    default:
        memset(&opt, 0, sizeof(opt));
        rc = kvr_tmpl_to_json(c, line, v, &opt, 0, sb);
        if (rc) {
            return rc;
        }
    }
    return sb->failed ? kvr_tmpl_nomem(c) : KVR_OK;
}

int
kvr_tmpl_to_output(kvr_tmpl_ctx_t *c, int line, const kvr_tmpl_val_t *v,
    kvr_tmpl_sb_t *sb)
{
    return to_output(c, line, v, sb, 0);
}

int
kvr_tmpl_to_raw(kvr_tmpl_ctx_t *c, int line, const kvr_tmpl_val_t *v,
    kvr_tmpl_sb_t *sb)
{
    char    num[40];
    size_t  i;
    int     rc;

    switch (v->k) {
    case V_INT:
    case V_FLOAT:
        kvr_tmpl_sb_add(sb, num, kvr_tmpl_fmt_number(v->u.n, num,
                                                     sizeof(num)));
        break;
    case V_ARRAY:
        /* Array.prototype.toString: elements' toString() joined by "," */
        for (i = 0; i < v->u.a->n; i++) {
            if (i) {
                kvr_tmpl_sb_addc(sb, ',');
            }
            rc = to_output(c, line, &v->u.a->v[i], sb, 1);
            if (rc) {
                return rc;
            }
        }
        break;
    case V_OBJECT:
    case V_NS:
    case V_KWARGS:
        kvr_tmpl_sb_add(sb, "[object Map]", 12);
        break;
    default:
        return to_output(c, line, v, sb, 0);
    }
    return sb->failed ? kvr_tmpl_nomem(c) : KVR_OK;
}
