/*
 * kvrouter: chat templates, JavaScript string semantics over UTF-8.
 * Strings are kept as UTF-8; where the reference's answer depends on
 * JavaScript's UTF-16 strings (length, whitespace, case) these helpers
 * give the same answer for well-formed text.
 */
#include <string.h>

#include <utf8proc.h>

#include "kvr_tmpl_int.h"
#include "kvr_tok_int.h"

size_t
kvr_tmpl_utf8_next(const char *p, size_t n, uint32_t *cp)
{
    const unsigned char  *s = (const unsigned char *) p;
    size_t                k, i;
    uint32_t              c;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        k = 2;
        c = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        k = 3;
        c = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        k = 4;
        c = s[0] & 0x07;
    } else {
        *cp = s[0];
        return 1;
    }
    if (k > n) {
        *cp = s[0];
        return 1;
    }
    for (i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *cp = s[0];
            return 1;
        }
        c = (c << 6) | (s[i] & 0x3f);
    }
    *cp = c;
    return k;
}

/* one encoder for the library: the tokenizer's */
size_t
kvr_tmpl_utf8_put(uint32_t cp, char *out)
{
    return kvr_tok_utf8_enc(cp, out);
}

static int
js_space_cp(uint32_t c)
{
    return c == 0x09 || c == 0x0a || c == 0x0b || c == 0x0c || c == 0x0d
           || c == 0x20 || c == 0xa0 || c == 0x1680
           || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029
           || c == 0x202f || c == 0x205f || c == 0x3000 || c == 0xfeff;
}

/* JavaScript's \s (and what trim() removes) */
size_t
kvr_tmpl_js_space(const char *p, const char *end)
{
    uint32_t  c;
    size_t    k;

    if (p >= end) {
        return 0;
    }
    if ((unsigned char) *p < 0x80) {
        return js_space_cp((unsigned char) *p) ? 1 : 0;
    }
    k = kvr_tmpl_utf8_next(p, (size_t) (end - p), &c);
    return k > 1 && js_space_cp(c) ? k : 0;
}

static size_t
space_before(const char *s, size_t n)
{
    size_t  k;

    for (k = 1; k <= 3 && k <= n; k++) {
        if (((unsigned char) s[n - k] & 0xc0) != 0x80) {
            break;
        }
    }
    if (k > n || k > 3) {
        k = 1;
    }
    return kvr_tmpl_js_space(s + n - k, s + n) == k ? k : 0;
}

void
kvr_tmpl_js_trim(const char **p, size_t *n, int start, int end)
{
    size_t  k;

    if (start) {
        while (*n && (k = kvr_tmpl_js_space(*p, *p + *n)) > 0) {
            *p += k;
            *n -= k;
        }
    }
    if (end) {
        while (*n && (k = space_before(*p, *n)) > 0) {
            *n -= k;
        }
    }
}

size_t
kvr_tmpl_utf16_len(const char *p, size_t n)
{
    size_t    i, k, len;
    uint32_t  c;

    len = 0;
    for (i = 0; i < n; i += k) {
        k = kvr_tmpl_utf8_next(p + i, n - i, &c);
        len += c >= 0x10000 ? 2 : 1;
    }
    return len;
}

static int
is_cased(uint32_t cp)
{
    utf8proc_category_t  cat = utf8proc_category((utf8proc_int32_t) cp);

    return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL
           || cat == UTF8PROC_CATEGORY_LT;
}

static int
is_case_ignorable(uint32_t cp)
{
    utf8proc_category_t  cat = utf8proc_category((utf8proc_int32_t) cp);

    return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME
           || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_LM
           || cat == UTF8PROC_CATEGORY_SK || cp == '\'' || cp == '.'
           || cp == ':' || cp == 0x2019;
}

/* Unicode's Final_Sigma condition for the capital sigma at p[i] */
static int
final_sigma(const char *p, size_t n, size_t i, size_t k)
{
    size_t    j, back;
    uint32_t  cp;
    int       before;

    before = 0;
    j = i;
    while (j > 0) {
        back = 1;
        while (back < j && back < 4
               && ((unsigned char) p[j - back] & 0xc0) == 0x80)
        {
            back++;
        }
        kvr_tmpl_utf8_next(p + j - back, back, &cp);
        j -= back;
        if (is_case_ignorable(cp)) {
            continue;
        }
        before = is_cased(cp);
        break;
    }
    if (!before) {
        return 0;
    }
    for (j = i + k; j < n; ) {
        j += kvr_tmpl_utf8_next(p + j, n - j, &cp);
        if (is_case_ignorable(cp)) {
            continue;
        }
        return !is_cased(cp);
    }
    return 1;
}

/*
 * toUpperCase()/toLowerCase(): utf8proc's simple case mapping plus the
 * one-to-many mappings real text meets (sharp s, dotted capital I) and
 * the final sigma rule.
 */
int
kvr_tmpl_case(kvr_tmpl_ctx_t *c, const char *p, size_t n, int upper,
    kvr_tmpl_val_t *out)
{
    char      *buf, *o;
    size_t     i, k;
    uint32_t   cp, m;

    buf = kvr_tmpl_alloc(&c->arena, n * 3 + 1);
    if (buf == NULL) {
        return kvr_tmpl_nomem(c);
    }
    o = buf;
    for (i = 0; i < n; i += k) {
        k = kvr_tmpl_utf8_next(p + i, n - i, &cp);
        if (k == 1 && cp >= 0x80) {
            *o++ = p[i];
            continue;
        }
        if (upper && cp == 0xdf) {
            *o++ = 'S';
            *o++ = 'S';
            continue;
        }
        if (!upper && cp == 0x130) {
            *o++ = 'i';
            o += kvr_tmpl_utf8_put(0x307, o);
            continue;
        }
        if (!upper && cp == 0x3a3 && final_sigma(p, n, i, k)) {
            o += kvr_tmpl_utf8_put(0x3c2, o);
            continue;
        }
        if (cp < 0x80) {
            m = upper ? (cp >= 'a' && cp <= 'z' ? cp - 32 : cp)
                      : (cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
        } else {
            m = (uint32_t) (upper ? utf8proc_toupper((utf8proc_int32_t) cp)
                                  : utf8proc_tolower((utf8proc_int32_t) cp));
        }
        o += kvr_tmpl_utf8_put(m, o);
    }
    *out = kvr_tmpl_str(buf, (size_t) (o - buf));
    return KVR_OK;
}
