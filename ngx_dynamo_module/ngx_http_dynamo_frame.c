
/*
 * ngx_dynamo: the worker's NDJSON frames, scanned by hand.
 *
 * Two passes: the first checks the whole line's syntax and notes where the
 * values of the known keys start; the second reads those values with
 * their types. A plain one-token frame costs tens of nanoseconds, against
 * about half a microsecond for a jansson tree.
 */


#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_dynamo_frame.h"


enum {
    NGX_HTTP_DYNAMO_KEY_T = 0,
    NGX_HTTP_DYNAMO_KEY_LP,
    NGX_HTTP_DYNAMO_KEY_TOP,
    NGX_HTTP_DYNAMO_KEY_FINISH,
    NGX_HTTP_DYNAMO_KEY_PROMPT,
    NGX_HTTP_DYNAMO_KEY_COMPLETION,
    NGX_HTTP_DYNAMO_KEY_CACHED,
    NGX_HTTP_DYNAMO_KEY_PREEMPTIONS,
    NGX_HTTP_DYNAMO_KEY_ERROR,
    NGX_HTTP_DYNAMO_NKEYS
};


typedef struct {
    const unsigned char          *p;
    const unsigned char          *end;
    const char                   *why;
    unsigned                      depth;
} ngx_http_dynamo_scan_t;


static const char  *ngx_http_dynamo_keys[NGX_HTTP_DYNAMO_NKEYS] = {
    "t", "lp", "top", "finish", "prompt_tokens", "completion_tokens",
    "cached_tokens", "preemptions", "error"
};

static const char  *ngx_http_dynamo_finish[] = {
    NULL, "stop", "length", "cancelled", "error"
};


static int ngx_http_dynamo_skip_value(ngx_http_dynamo_scan_t *sc);


static int
ngx_http_dynamo_bad(ngx_http_dynamo_scan_t *sc, const char *why)
{
    if (sc->why == NULL) {
        sc->why = why;
    }

    return -1;
}


static void
ngx_http_dynamo_ws(ngx_http_dynamo_scan_t *sc)
{
    while (sc->p < sc->end
           && (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n'
               || *sc->p == '\r'))
    {
        sc->p++;
    }
}


static int
ngx_http_dynamo_expect(ngx_http_dynamo_scan_t *sc, unsigned char c)
{
    ngx_http_dynamo_ws(sc);

    if (sc->p == sc->end || *sc->p != c) {
        return ngx_http_dynamo_bad(sc, "syntax error");
    }

    sc->p++;
    return 0;
}


static int
ngx_http_dynamo_hex4(const unsigned char *p, uint32_t *v)
{
    unsigned  i, c;

    *v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            c = (c | 0x20) - 'a' + 10;

        } else {
            return -1;
        }

        *v = *v << 4 | c;
    }

    return 0;
}


/* bytes of the UTF-8 character at p (strict, as jansson), 0 if invalid */
size_t
ngx_http_dynamo_utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned  c, lo, hi;
    size_t    n, i;

    c = p[0];
    lo = 0x80;
    hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = (c == 0xe0) ? 0xa0 : 0x80;
        hi = (c == 0xed) ? 0x9f : 0xbf;

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = (c == 0xf0) ? 0x90 : 0x80;
        hi = (c == 0xf4) ? 0x8f : 0xbf;

    } else {
        return 0;
    }

    if ((size_t) (end - p) < n || p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }

    return n;
}


static void
ngx_http_dynamo_put(char *dst, size_t cap, size_t *dlen, const void *src,
    size_t n)
{
    /* whole characters only, and room for the NUL */
    if (dst != NULL && *dlen + n < cap) {
        memcpy(dst + *dlen, src, n);
    }

    *dlen += n;
}


/*
 * A string at sc->p ('"' included). Decoded into dst (cap bytes with the
 * NUL) while it fits; *dlen: the decoded length, whole.
 */
static int
ngx_http_dynamo_string(ngx_http_dynamo_scan_t *sc, char *dst, size_t cap,
    size_t *dlen)
{
    unsigned char   u[4];
    uint32_t        cp, lo;
    size_t          n, kept;

    *dlen = 0;
    kept = 0;

    if (sc->p == sc->end || *sc->p != '"') {
        return ngx_http_dynamo_bad(sc, "syntax error");
    }

    sc->p++;

    for ( ;; ) {
        if (sc->p == sc->end) {
            return ngx_http_dynamo_bad(sc, "unterminated string");
        }

        if (*sc->p == '"') {
            sc->p++;
            break;
        }

        if (*sc->p < 0x20) {
            return ngx_http_dynamo_bad(sc, "control character in a string");
        }

        if (*sc->p < 0x80 && *sc->p != '\\') {
            ngx_http_dynamo_put(dst, cap, dlen, sc->p, 1);
            sc->p++;
            goto next;
        }

        if (*sc->p >= 0x80) {
            n = ngx_http_dynamo_utf8_len(sc->p, sc->end);
            if (n == 0) {
                return ngx_http_dynamo_bad(sc, "invalid UTF-8");
            }

            ngx_http_dynamo_put(dst, cap, dlen, sc->p, n);
            sc->p += n;
            goto next;
        }

        /* an escape */

        if (sc->end - sc->p < 2) {
            return ngx_http_dynamo_bad(sc, "unterminated string");
        }

        sc->p++;

        switch (*sc->p++) {
        case '"':  u[0] = '"';  break;
        case '\\': u[0] = '\\'; break;
        case '/':  u[0] = '/';  break;
        case 'b':  u[0] = '\b'; break;
        case 'f':  u[0] = '\f'; break;
        case 'n':  u[0] = '\n'; break;
        case 'r':  u[0] = '\r'; break;
        case 't':  u[0] = '\t'; break;

        case 'u':
            if (sc->end - sc->p < 4 || ngx_http_dynamo_hex4(sc->p, &cp)) {
                return ngx_http_dynamo_bad(sc, "invalid \\u escape");
            }

            sc->p += 4;

            if (cp >= 0xdc00 && cp <= 0xdfff) {
                return ngx_http_dynamo_bad(sc, "invalid \\u escape");
            }

            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (sc->end - sc->p < 6 || sc->p[0] != '\\'
                    || sc->p[1] != 'u'
                    || ngx_http_dynamo_hex4(sc->p + 2, &lo)
                    || lo < 0xdc00 || lo > 0xdfff)
                {
                    return ngx_http_dynamo_bad(sc, "invalid \\u escape");
                }

                sc->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }

            if (cp == 0) {
                return ngx_http_dynamo_bad(sc, "\\u0000 in a string");
            }

            if (cp < 0x80) {
                u[0] = (unsigned char) cp;
                n = 1;

            } else if (cp < 0x800) {
                u[0] = (unsigned char) (0xc0 | cp >> 6);
                u[1] = (unsigned char) (0x80 | (cp & 0x3f));
                n = 2;

            } else if (cp < 0x10000) {
                u[0] = (unsigned char) (0xe0 | cp >> 12);
                u[1] = (unsigned char) (0x80 | (cp >> 6 & 0x3f));
                u[2] = (unsigned char) (0x80 | (cp & 0x3f));
                n = 3;

            } else {
                u[0] = (unsigned char) (0xf0 | cp >> 18);
                u[1] = (unsigned char) (0x80 | (cp >> 12 & 0x3f));
                u[2] = (unsigned char) (0x80 | (cp >> 6 & 0x3f));
                u[3] = (unsigned char) (0x80 | (cp & 0x3f));
                n = 4;
            }

            ngx_http_dynamo_put(dst, cap, dlen, u, n);
            goto next;

        default:
            return ngx_http_dynamo_bad(sc, "invalid escape");
        }

        ngx_http_dynamo_put(dst, cap, dlen, u, 1);

    next:

        if (*dlen < cap) {
            kept = *dlen;
        }
    }

    if (dst != NULL && cap > 0) {
        dst[kept] = '\0';
    }

    return 0;
}


/*
 * A real with at most 15 significant digits and a decimal exponent within
 * 10^22: both are exact doubles, so one multiplication or division
 * rounds correctly, as strtod does (Clinger's fast path). The worker's
 * %.9g logprobs all take it. -1: use strtod.
 */
static int
ngx_http_dynamo_fast_real(const unsigned char *p, const unsigned char *end,
    double *v)
{
    static const double  pow10[] = {
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
    };

    int       neg, eneg;
    long      e, x;
    unsigned  sig;
    uint64_t  m;

    neg = (*p == '-');
    p += neg;
    m = 0;
    sig = 0;
    e = 0;

    for ( /* void */ ; p < end && *p >= '0' && *p <= '9'; p++) {
        if (m || *p != '0') {
            if (++sig > 15) {
                return -1;
            }
        }

        m = m * 10 + (uint64_t) (*p - '0');
    }

    if (p < end && *p == '.') {
        for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
            if (m || *p != '0') {
                if (++sig > 15) {
                    return -1;
                }
            }

            m = m * 10 + (uint64_t) (*p - '0');
            e--;
        }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        eneg = 0;

        if (*p == '+' || *p == '-') {
            eneg = (*p++ == '-');
        }

        for (x = 0; p < end && *p >= '0' && *p <= '9'; p++) {
            if (x > 1000) {
                return -1;
            }

            x = x * 10 + (*p - '0');
        }

        e += eneg ? -x : x;
    }

    if (e < -22 || e > 22) {
        return -1;
    }

    *v = (e < 0) ? (double) m / pow10[-e] : (double) m * pow10[e];

    if (neg) {
        *v = -*v;
    }

    return 0;
}


/*
 * A number at sc->p: JSON's grammar; an integer (no fraction, no
 * exponent) must fit 64 bits and a real must be finite, as jansson says.
 */
static int
ngx_http_dynamo_number(ngx_http_dynamo_scan_t *sc, int *is_int,
    int64_t *iv, double *dv)
{
    char                  buf[64], *copy, *e;
    size_t                n;
    const unsigned char  *start, *p;

    start = sc->p;
    p = sc->p;
    *is_int = 1;

    if (p < sc->end && *p == '-') {
        p++;
    }

    if (p == sc->end || *p < '0' || *p > '9') {
        return ngx_http_dynamo_bad(sc, "invalid number");
    }

    if (*p == '0') {
        p++;

    } else {
        while (p < sc->end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < sc->end && *p == '.') {
        *is_int = 0;
        p++;

        if (p == sc->end || *p < '0' || *p > '9') {
            return ngx_http_dynamo_bad(sc, "invalid number");
        }

        while (p < sc->end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < sc->end && (*p == 'e' || *p == 'E')) {
        *is_int = 0;
        p++;

        if (p < sc->end && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == sc->end || *p < '0' || *p > '9') {
            return ngx_http_dynamo_bad(sc, "invalid number");
        }

        while (p < sc->end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < sc->end && *p >= '0' && *p <= '9') {
        return ngx_http_dynamo_bad(sc, "invalid number");   /* "01" */
    }

    sc->p = p;
    n = (size_t) (p - start);

    if (*is_int && n <= 18) {
        /* fast path: cannot overflow */
        *iv = 0;

        for (p = start + (*start == '-'); p < sc->p; p++) {
            *iv = *iv * 10 + (*p - '0');
        }

        if (*start == '-') {
            *iv = -*iv;
        }

        *dv = (double) *iv;
        return 0;
    }

    if (!*is_int && ngx_http_dynamo_fast_real(start, sc->p, dv) == 0) {
        *iv = 0;
        return 0;
    }

    copy = buf;

    if (n >= sizeof(buf)) {
        copy = malloc(n + 1);
        if (copy == NULL) {
            return ngx_http_dynamo_bad(sc, "no memory");
        }
    }

    memcpy(copy, start, n);
    copy[n] = '\0';
    errno = 0;

    if (*is_int) {
        *iv = strtoll(copy, &e, 10);
        *dv = (double) *iv;

    } else {
        *dv = strtod(copy, &e);
        *iv = 0;
    }

    if (copy != buf) {
        free(copy);
    }

    if (errno == ERANGE && (*is_int || isinf(*dv))) {
        return ngx_http_dynamo_bad(sc, "number out of range");
    }

    return 0;
}


static int
ngx_http_dynamo_literal(ngx_http_dynamo_scan_t *sc, const char *lit)
{
    size_t  n;

    n = strlen(lit);

    if ((size_t) (sc->end - sc->p) < n || memcmp(sc->p, lit, n) != 0) {
        return ngx_http_dynamo_bad(sc, "syntax error");
    }

    sc->p += n;
    return 0;
}


static int
ngx_http_dynamo_skip_container(ngx_http_dynamo_scan_t *sc, unsigned char close)
{
    size_t  dlen;

    if (++sc->depth > NGX_HTTP_DYNAMO_FRAME_DEPTH) {
        return ngx_http_dynamo_bad(sc, "nested too deep");
    }

    sc->p++;
    ngx_http_dynamo_ws(sc);

    if (sc->p < sc->end && *sc->p == close) {
        sc->p++;
        sc->depth--;
        return 0;
    }

    for ( ;; ) {
        ngx_http_dynamo_ws(sc);

        if (close == '}') {
            if (ngx_http_dynamo_string(sc, NULL, 0, &dlen)
                || ngx_http_dynamo_expect(sc, ':'))
            {
                return -1;
            }

            ngx_http_dynamo_ws(sc);
        }

        if (ngx_http_dynamo_skip_value(sc)) {
            return -1;
        }

        ngx_http_dynamo_ws(sc);

        if (sc->p < sc->end && *sc->p == ',') {
            sc->p++;
            continue;
        }

        if (ngx_http_dynamo_expect(sc, close)) {
            return -1;
        }

        sc->depth--;
        return 0;
    }
}


/* any value at sc->p (no leading whitespace) */
static int
ngx_http_dynamo_skip_value(ngx_http_dynamo_scan_t *sc)
{
    size_t   dlen;
    double   dv;
    int64_t  iv;
    int      is_int;

    if (sc->p == sc->end) {
        return ngx_http_dynamo_bad(sc, "syntax error");
    }

    switch (*sc->p) {
    case '"':
        return ngx_http_dynamo_string(sc, NULL, 0, &dlen);
    case '{':
        return ngx_http_dynamo_skip_container(sc, '}');
    case '[':
        return ngx_http_dynamo_skip_container(sc, ']');
    case 't':
        return ngx_http_dynamo_literal(sc, "true");
    case 'f':
        return ngx_http_dynamo_literal(sc, "false");
    case 'n':
        return ngx_http_dynamo_literal(sc, "null");
    default:
        return ngx_http_dynamo_number(sc, &is_int, &iv, &dv);
    }
}


/* typed readers for the second pass: the syntax is known good */

static int
ngx_http_dynamo_u32(ngx_http_dynamo_scan_t *sc, uint32_t *v, size_t vocab)
{
    double   dv;
    int64_t  iv;
    int      is_int;

    ngx_http_dynamo_ws(sc);

    if (sc->p == sc->end || (*sc->p != '-' && (*sc->p < '0' || *sc->p > '9'))
        || ngx_http_dynamo_number(sc, &is_int, &iv, &dv) || !is_int
        || iv < 0 || iv > (int64_t) UINT32_MAX)
    {
        return ngx_http_dynamo_bad(sc, "expected an unsigned 32-bit integer");
    }

    if (vocab && (uint64_t) iv >= vocab) {
        return ngx_http_dynamo_bad(sc, "token id beyond the vocabulary");
    }

    *v = (uint32_t) iv;
    return 0;
}


static int
ngx_http_dynamo_real(ngx_http_dynamo_scan_t *sc, double *v)
{
    int64_t  iv;
    int      is_int;

    ngx_http_dynamo_ws(sc);

    if (sc->p == sc->end || (*sc->p != '-' && (*sc->p < '0' || *sc->p > '9'))
        || ngx_http_dynamo_number(sc, &is_int, &iv, v))
    {
        return ngx_http_dynamo_bad(sc, "expected a number");
    }

    return 0;
}


/* '[' then calls each(i) per element; *n: the count */
static int
ngx_http_dynamo_array_open(ngx_http_dynamo_scan_t *sc)
{
    ngx_http_dynamo_ws(sc);

    if (sc->p == sc->end || *sc->p != '[') {
        return ngx_http_dynamo_bad(sc, "expected an array");
    }

    sc->p++;
    ngx_http_dynamo_ws(sc);

    if (*sc->p == ']') {
        sc->p++;
        return 1;                               /* empty */
    }

    return 0;
}


/* after an element: 0 more follow, 1 the array ended */
static int
ngx_http_dynamo_array_next(ngx_http_dynamo_scan_t *sc)
{
    ngx_http_dynamo_ws(sc);

    if (*sc->p++ == ',') {
        return 0;
    }

    return 1;
}


static int
ngx_http_dynamo_read_ids(ngx_http_dynamo_scan_t *sc,
    ngx_http_dynamo_frame_t *f, size_t vocab)
{
    int  rc;

    f->n = 0;

    rc = ngx_http_dynamo_array_open(sc);
    if (rc < 0) {
        return -1;
    }

    while (rc == 0) {
        if (f->n == NGX_HTTP_DYNAMO_FRAME_TOKENS) {
            return ngx_http_dynamo_bad(sc, "t: more than 256 ids");
        }

        if (ngx_http_dynamo_u32(sc, &f->ids[f->n], vocab)) {
            return -1;
        }

        f->n++;
        rc = ngx_http_dynamo_array_next(sc);
    }

    if (f->n == 0) {
        return ngx_http_dynamo_bad(sc, "t: no ids");
    }

    return 0;
}


static int
ngx_http_dynamo_read_lp(ngx_http_dynamo_scan_t *sc,
    ngx_http_dynamo_frame_t *f)
{
    size_t  n;
    int     rc;

    n = 0;

    rc = ngx_http_dynamo_array_open(sc);
    if (rc < 0) {
        return -1;
    }

    while (rc == 0) {
        if (n == f->n || ngx_http_dynamo_real(sc, &f->lp[n])) {
            return ngx_http_dynamo_bad(sc, "lp: one number per token");
        }

        n++;
        rc = ngx_http_dynamo_array_next(sc);
    }

    if (n != f->n) {
        return ngx_http_dynamo_bad(sc, "lp: one number per token");
    }

    f->has_lp = 1;
    return 0;
}


static int
ngx_http_dynamo_read_top(ngx_http_dynamo_scan_t *sc,
    ngx_http_dynamo_frame_t *f, size_t vocab)
{
    size_t                        i, j;
    int                           rc, rc2;
    ngx_http_dynamo_frame_top_t  *t;

    if (f->top == NULL) {
        f->top = malloc(NGX_HTTP_DYNAMO_FRAME_TOKENS * NGX_HTTP_DYNAMO_FRAME_TOP
                        * sizeof(ngx_http_dynamo_frame_top_t));
        if (f->top == NULL) {
            return ngx_http_dynamo_bad(sc, "no memory");
        }
    }

    i = 0;

    rc = ngx_http_dynamo_array_open(sc);
    if (rc < 0) {
        return -1;
    }

    while (rc == 0) {
        if (i == f->n) {
            return ngx_http_dynamo_bad(sc, "top: one list per token");
        }

        j = 0;

        rc2 = ngx_http_dynamo_array_open(sc);
        if (rc2 < 0) {
            return -1;
        }

        while (rc2 == 0) {
            if (j == NGX_HTTP_DYNAMO_FRAME_TOP) {
                return ngx_http_dynamo_bad(sc, "top: more than 20 pairs");
            }

            t = &f->top[i * NGX_HTTP_DYNAMO_FRAME_TOP + j];

            if (ngx_http_dynamo_array_open(sc) != 0
                || ngx_http_dynamo_u32(sc, &t->id, vocab)
                || ngx_http_dynamo_array_next(sc) != 0
                || ngx_http_dynamo_real(sc, &t->lp)
                || ngx_http_dynamo_array_next(sc) != 1)
            {
                return ngx_http_dynamo_bad(sc, "top: pairs are [id, lp]");
            }

            j++;
            rc2 = ngx_http_dynamo_array_next(sc);
        }

        f->n_top[i++] = (uint8_t) j;
        rc = ngx_http_dynamo_array_next(sc);
    }

    if (i != f->n) {
        return ngx_http_dynamo_bad(sc, "top: one list per token");
    }

    f->has_top = 1;
    return 0;
}


static int
ngx_http_dynamo_read_finish(ngx_http_dynamo_scan_t *sc,
    ngx_http_dynamo_frame_t *f, const unsigned char **at)
{
    char      name[16];
    size_t    dlen;
    unsigned  k;

    sc->p = at[NGX_HTTP_DYNAMO_KEY_FINISH];

    if (*sc->p != '"') {
        return ngx_http_dynamo_bad(sc, "finish: must be a string");
    }

    (void) ngx_http_dynamo_string(sc, name, sizeof(name), &dlen);

    for (k = NGX_HTTP_DYNAMO_FRAME_STOP; k <= NGX_HTTP_DYNAMO_FRAME_ERROR; k++)
    {
        if (dlen < sizeof(name)
            && strcmp(name, ngx_http_dynamo_finish[k]) == 0)
        {
            break;
        }
    }

    if (k > NGX_HTTP_DYNAMO_FRAME_ERROR) {
        return ngx_http_dynamo_bad(sc, "finish: unknown reason");
    }

    f->kind = (int) k;

    for (k = NGX_HTTP_DYNAMO_KEY_PROMPT; k <= NGX_HTTP_DYNAMO_KEY_PREEMPTIONS;
         k++)
    {
        if (at[k] == NULL) {
            return ngx_http_dynamo_bad(sc, "finish frame: a count is missing");
        }

        sc->p = at[k];

        if (ngx_http_dynamo_u32(sc, k == NGX_HTTP_DYNAMO_KEY_PROMPT
                                    ? &f->prompt_tokens
                                : k == NGX_HTTP_DYNAMO_KEY_COMPLETION
                                    ? &f->completion_tokens
                                : k == NGX_HTTP_DYNAMO_KEY_CACHED
                                    ? &f->cached_tokens : &f->preemptions, 0))
        {
            return -1;
        }
    }

    if (at[NGX_HTTP_DYNAMO_KEY_ERROR]) {
        sc->p = at[NGX_HTTP_DYNAMO_KEY_ERROR];

        if (*sc->p != '"') {
            return ngx_http_dynamo_bad(sc, "error: must be a string");
        }

        (void) ngx_http_dynamo_string(sc, f->error, sizeof(f->error), &dlen);
        f->has_error = 1;
    }

    return 0;
}


int
ngx_http_dynamo_frame_parse(ngx_http_dynamo_frame_t *f, const char *line,
    size_t len, size_t vocab)
{
    char                    key[24];
    size_t                  dlen;
    unsigned                k;
    ngx_http_dynamo_scan_t  sc;
    const unsigned char    *at[NGX_HTTP_DYNAMO_NKEYS];

    f->kind = NGX_HTTP_DYNAMO_FRAME_TOKEN;
    f->n = 0;
    f->has_lp = 0;
    f->has_top = 0;
    f->has_error = 0;
    f->error[0] = '\0';
    f->prompt_tokens = f->completion_tokens = 0;
    f->cached_tokens = f->preemptions = 0;
    f->why = NULL;

    memset(at, 0, sizeof(at));

    sc.p = (const unsigned char *) line;
    sc.end = sc.p + len;
    sc.why = NULL;
    sc.depth = 1;

    /* pass 1: syntax, and where the known keys' values are */

    if (ngx_http_dynamo_expect(&sc, '{')) {
        f->why = "not a JSON object";
        return NGX_HTTP_DYNAMO_FRAME_BAD;
    }

    ngx_http_dynamo_ws(&sc);

    if (sc.p < sc.end && *sc.p == '}') {
        sc.p++;
        goto end;
    }

    for ( ;; ) {
        ngx_http_dynamo_ws(&sc);

        if (ngx_http_dynamo_string(&sc, key, sizeof(key), &dlen)
            || ngx_http_dynamo_expect(&sc, ':'))
        {
            goto bad;
        }

        ngx_http_dynamo_ws(&sc);

        for (k = 0; k < NGX_HTTP_DYNAMO_NKEYS; k++) {
            if (dlen < sizeof(key) && strlen(key) == dlen
                && strcmp(key, ngx_http_dynamo_keys[k]) == 0)
            {
                if (at[k] != NULL) {
                    sc.why = "duplicate key";
                    goto bad;
                }

                at[k] = sc.p;
                break;
            }
        }

        if (ngx_http_dynamo_skip_value(&sc)) {
            goto bad;
        }

        ngx_http_dynamo_ws(&sc);

        if (sc.p < sc.end && *sc.p == ',') {
            sc.p++;
            continue;
        }

        if (ngx_http_dynamo_expect(&sc, '}')) {
            goto bad;
        }

        break;
    }

end:

    ngx_http_dynamo_ws(&sc);

    if (sc.p != sc.end) {
        sc.why = "text after the object";
        goto bad;
    }

    if ((at[NGX_HTTP_DYNAMO_KEY_T] == NULL)
        == (at[NGX_HTTP_DYNAMO_KEY_FINISH] == NULL))
    {
        sc.why = "a frame has exactly one of t, finish";
        goto bad;
    }

    /* pass 2: the values this kind of frame uses */

    if (at[NGX_HTTP_DYNAMO_KEY_FINISH]) {
        if (ngx_http_dynamo_read_finish(&sc, f, at)) {
            goto bad;
        }

        return NGX_HTTP_DYNAMO_FRAME_OK;
    }

    sc.p = at[NGX_HTTP_DYNAMO_KEY_T];

    if (ngx_http_dynamo_read_ids(&sc, f, vocab)) {
        goto bad;
    }

    if (at[NGX_HTTP_DYNAMO_KEY_LP]) {
        sc.p = at[NGX_HTTP_DYNAMO_KEY_LP];

        if (ngx_http_dynamo_read_lp(&sc, f)) {
            goto bad;
        }
    }

    if (at[NGX_HTTP_DYNAMO_KEY_TOP]) {
        if (!f->has_lp) {
            sc.why = "top: only with lp";
            goto bad;
        }

        sc.p = at[NGX_HTTP_DYNAMO_KEY_TOP];

        if (ngx_http_dynamo_read_top(&sc, f, vocab)) {
            goto bad;
        }
    }

    return NGX_HTTP_DYNAMO_FRAME_OK;

bad:

    f->why = sc.why ? sc.why : "malformed";
    f->n = 0;
    f->has_lp = 0;
    f->has_top = 0;

    if (strcmp(f->why, "no memory") == 0) {
        return NGX_HTTP_DYNAMO_FRAME_NOMEM;
    }

    return NGX_HTTP_DYNAMO_FRAME_BAD;
}


void
ngx_http_dynamo_frame_free(ngx_http_dynamo_frame_t *f)
{
    free(f->top);
    f->top = NULL;
}
