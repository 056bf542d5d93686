/*
 * kvrouter tokenizer: normalizers (Prepend, Replace, NFC/NFKC/NFD/NFKD via
 * utf8proc, Lowercase, Strip), applied in order.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "kvr_tok_int.h"

static int
is_ascii(const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] >= 0x80) {
            return 0;
        }
    }
    return 1;
}

static int
unicode_form(int type, const char *s, size_t len, kvr_buf_t *out)
{
    utf8proc_uint8_t  *res = NULL;
    utf8proc_ssize_t   n;
    int                opt = UTF8PROC_STABLE;
    int                rc;

    if (is_ascii(s, len)) {     /* every form is the identity on ASCII */
        return kvr_buf_append(out, s, len);
    }
    switch (type) {
    case KVR_NORM_NFC:
        opt |= UTF8PROC_COMPOSE;
        break;
    case KVR_NORM_NFKC:
        opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
        break;
    case KVR_NORM_NFD:
        opt |= UTF8PROC_DECOMPOSE;
        break;
    default:
        opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
        break;
    }
    n = utf8proc_map((const utf8proc_uint8_t *) s, (utf8proc_ssize_t) len,
                     &res, (utf8proc_option_t) opt);
    if (n < 0) {
        return n == UTF8PROC_ERROR_NOMEM ? KVR_ERR_NOMEM : KVR_ERR_INVAL;
    }
    rc = kvr_buf_append(out, res, (size_t) n);
    free(res);
    return rc;
}

/* Rust char::to_lowercase, char by char (no final-sigma context). */
static int
lowercase(const char *s, size_t len, kvr_buf_t *out)
{
    size_t    i = 0, cl, k;
    uint32_t  c;
    char      u[8];

    if (kvr_buf_reserve(out, len) != KVR_OK) {
        return KVR_ERR_NOMEM;
    }
    while (i < len) {
        c = kvr_tok_utf8_dec((const unsigned char *) s + i, len - i, &cl);
        i += cl;
        if (c < 0x80) {
            u[0] = (char) (c >= 'A' && c <= 'Z' ? c + 32 : c);
            k = 1;
        } else if (c == 0x130) {
            memcpy(u, "i\xCC\x87", 3);
            k = 3;
        } else {
            k = kvr_tok_utf8_enc((uint32_t) utf8proc_tolower((utf8proc_int32_t) c),
                                 u);
        }
        if (kvr_buf_append(out, u, k) != KVR_OK) {
            return KVR_ERR_NOMEM;
        }
    }
    return KVR_OK;
}

static int
strip(const kvr_tok_norm_t *n, const char *s, size_t len, kvr_buf_t *out,
    int *cut)
{
    size_t    b = 0, e = len, cl, j;
    uint32_t  c;

    if (n->left) {
        while (b < e) {
            c = kvr_tok_utf8_dec((const unsigned char *) s + b, e - b, &cl);
            if (!kvr_tok_is_whitespace(c)) {
                break;
            }
            b += cl;
        }
    }
    if (n->right) {
        while (e > b) {
            j = e - 1;
            while (j > b && ((unsigned char) s[j] & 0xC0) == 0x80) {
                j--;
            }
            c = kvr_tok_utf8_dec((const unsigned char *) s + j, e - j, &cl);
            if (!kvr_tok_is_whitespace(c)) {
                break;
            }
            e = j;
        }
    }
    *cut |= b > 0;
    return kvr_buf_append(out, s + b, e - b);
}

static int
replace(const kvr_tok_norm_t *n, const char *s, size_t len, kvr_buf_t *out,
    pcre2_match_data *md, int *cut)
{
    size_t       i = 0, ms, me;
    const char  *p;
    int          rc;

    if (n->re == NULL) {
        /* room for every byte to be a match: appends below cannot fail */
        if (kvr_buf_reserve(out, len * (n->blen > n->alen ? n->blen : 1)) != KVR_OK) {
            return KVR_ERR_NOMEM;
        }
        while (i < len) {
            p = n->alen == 1 ? memchr(s + i, n->a[0], len - i)
                             : memmem(s + i, len - i, n->a, n->alen);
            if (p == NULL) {
                break;
            }
            *cut |= p == s && n->blen == 0;
            memcpy(out->data + out->len, s + i, (size_t) (p - s) - i);
            out->len += (size_t) (p - s) - i;
            memcpy(out->data + out->len, n->b, n->blen);
            out->len += n->blen;
            i = (size_t) (p - s) + n->alen;
        }
        return kvr_buf_append(out, s + i, len - i);
    }
    while (i <= len) {
        rc = kvr_tok_regex_next(n->re, md, NULL, s, len, i, &ms, &me);
        if (rc < 0) {
            return rc;
        }
        if (rc == 0) {
            break;
        }
        *cut |= ms == 0 && n->blen == 0;
        if (kvr_buf_append(out, s + i, ms - i) != KVR_OK
            || kvr_buf_append(out, n->b, n->blen) != KVR_OK)
        {
            return KVR_ERR_NOMEM;
        }
        i = me;
    }
    return kvr_buf_append(out, s + i, len - i);
}

int
kvr_tok_norm_apply(const kvr_tok_norm_t *n, const char *s, size_t len,
    kvr_buf_t *out, pcre2_match_data *md, int *cut)
{
    kvr_buf_reset(out);
    switch (n->type) {
    case KVR_NORM_PREPEND:
        if (len > 0 && kvr_buf_append(out, n->a, n->alen) != KVR_OK) {
            return KVR_ERR_NOMEM;
        }
        return kvr_buf_append(out, s, len);
    case KVR_NORM_REPLACE:
        return replace(n, s, len, out, md, cut);
    case KVR_NORM_LOWER:
        return lowercase(s, len, out);
    case KVR_NORM_STRIP:
        return strip(n, s, len, out, cut);
    default:
        return unicode_form(n->type, s, len, out);
    }
}

int
kvr_tok_normalize(const kvr_tokenizer_t *t, const char *s, size_t len,
    kvr_buf_t *out, kvr_buf_t *tmp, pcre2_match_data *umd, int *cut)
{
    pcre2_match_data  *md = umd;
    kvr_buf_t          swap;
    size_t             i;
    int                rc = KVR_OK;

    kvr_buf_reset(out);
    if (kvr_buf_append(out, s, len) != KVR_OK) {
        return KVR_ERR_NOMEM;
    }
    for (i = 0; i < t->nnorms && rc == KVR_OK; i++) {
        if (t->norms[i].re != NULL && md == NULL) {
            md = pcre2_match_data_create(32, NULL);
            if (md == NULL) {
                return KVR_ERR_NOMEM;
            }
        }
        rc = kvr_tok_norm_apply(&t->norms[i], out->data, out->len, tmp, md, cut);
        swap = *out;
        *out = *tmp;
        *tmp = swap;
    }
    if (md != umd) {
        pcre2_match_data_free(md);
    }
    return rc;
}
