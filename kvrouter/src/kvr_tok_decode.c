/*
 * kvrouter tokenizer: decode. The ids' token strings (added tokens first)
 * go through the decoder chain, each decoder mapping a list of strings to
 * a list of strings as HF's decode_chain does; the results are joined.
 * Without a decoder the tokens are joined with spaces.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "kvr_tok_int.h"

typedef struct {
    kvr_buf_t   text;
    size_t     *span;       /* off, len pairs */
    size_t      n;
    size_t      cap;
} toks_t;

static int
tok_add(toks_t *l, const char *s, size_t len)
{
    size_t  off = l->text.len;

    if (l->n == l->cap) {
        size_t   cap = l->cap ? l->cap * 2 : 64;
        size_t  *p = realloc(l->span, cap * 2 * sizeof(size_t));

        if (p == NULL) {
            return KVR_ERR_NOMEM;
        }
        l->span = p;
        l->cap = cap;
    }
    if (kvr_buf_append(&l->text, s, len) != KVR_OK) {
        return KVR_ERR_NOMEM;
    }
    l->span[2 * l->n] = off;
    l->span[2 * l->n + 1] = len;
    l->n++;
    return KVR_OK;
}

/* Grows the last token by s. */
static int
tok_cat(toks_t *l, const char *s, size_t len)
{
    if (kvr_buf_append(&l->text, s, len) != KVR_OK) {
        return KVR_ERR_NOMEM;
    }
    l->span[2 * l->n - 1] += len;
    return KVR_OK;
}

static void
toks_reset(toks_t *l)
{
    kvr_buf_reset(&l->text);
    l->n = 0;
}

static void
toks_free(toks_t *l)
{
    kvr_buf_free(&l->text);
    free(l->span);
}

#define TOK(l, i)   ((l)->text.data + (l)->span[2 * (i)])
#define TLEN(l, i)  ((l)->span[2 * (i) + 1])

static int
dec_bytelevel(const toks_t *in, toks_t *out)
{
    kvr_buf_t   raw = {0};
    size_t      i, j, cl, start;
    uint32_t    ch;
    int         b, rc = KVR_OK;
    const char *s;

    for (i = 0; i < in->n && rc == KVR_OK; i++) {
        s = TOK(in, i);
        start = raw.len;
        for (j = 0; j < TLEN(in, i); j += cl) {
            ch = kvr_tok_utf8_dec((const unsigned char *) s + j, TLEN(in, i) - j,
                                  &cl);
            b = kvr_tok_char_byte(ch);
            if (b < 0) {
                break;
            }
            {
                char  c = (char) b;

                if ((rc = kvr_buf_append(&raw, &c, 1)) != KVR_OK) {
                    break;
                }
            }
        }
        if (rc == KVR_OK && j < TLEN(in, i)) {  /* not all bytes: as is */
            raw.len = start;
            rc = kvr_buf_append(&raw, s, TLEN(in, i));
        }
    }
    if (rc == KVR_OK && (rc = tok_add(out, "", 0)) == KVR_OK) {
        kvr_buf_t  lossy = {0};

        rc = kvr_tok_utf8_lossy(&lossy, raw.data ? raw.data : "", raw.len);
        if (rc == KVR_OK) {
            rc = tok_cat(out, lossy.data ? lossy.data : "", lossy.len);
        }
        kvr_buf_free(&lossy);
    }
    kvr_buf_free(&raw);
    return rc;
}

static int
hexv(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char) (c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int
kvr_tok_is_byte_token(const kvr_tokenizer_t *t, uint32_t id)
{
    const char  *s = t->arena.data + t->tok_off[id];

    return t->tok_len[id] == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>'
           && hexv(s[3]) >= 0 && hexv(s[4]) >= 0;
}

static int
flush_bytes(toks_t *out, kvr_buf_t *bytes)
{
    size_t  i;
    int     rc = KVR_OK;

    if (bytes->len == 0) {
        return KVR_OK;
    }
    if (kvr_tok_utf8_valid(bytes->data, bytes->len) == bytes->len) {
        rc = tok_add(out, bytes->data, bytes->len);
    } else {
        for (i = 0; i < bytes->len && rc == KVR_OK; i++) {
            rc = tok_add(out, "\xEF\xBF\xBD", 3);
        }
    }
    kvr_buf_reset(bytes);
    return rc;
}

static int
dec_bytefallback(const toks_t *in, toks_t *out)
{
    kvr_buf_t    bytes = {0};
    size_t       i;
    const char  *s;
    int          rc = KVR_OK, h, l;
    char         b;

    for (i = 0; i < in->n && rc == KVR_OK; i++) {
        s = TOK(in, i);
        if (TLEN(in, i) == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>'
            && (h = hexv(s[3])) >= 0 && (l = hexv(s[4])) >= 0)
        {
            b = (char) (h << 4 | l);
            rc = kvr_buf_append(&bytes, &b, 1);
            continue;
        }
        rc = flush_bytes(out, &bytes);
        if (rc == KVR_OK) {
            rc = tok_add(out, s, TLEN(in, i));
        }
    }
    if (rc == KVR_OK) {
        rc = flush_bytes(out, &bytes);
    }
    kvr_buf_free(&bytes);
    return rc;
}

static int
dec_strip(const kvr_tok_dec_t *d, const toks_t *in, toks_t *out)
{
    size_t       i, b, e, k;
    const char  *s;
    int          rc = KVR_OK;

    for (i = 0; i < in->n && rc == KVR_OK; i++) {
        s = TOK(in, i);
        b = 0;
        e = TLEN(in, i);
        for (k = 0; k < (size_t) d->start && e - b >= d->alen
                    && memcmp(s + b, d->a, d->alen) == 0; k++)
        {
            b += d->alen;
        }
        for (k = 0; k < (size_t) d->stop && e - b >= d->alen
                    && memcmp(s + e - d->alen, d->a, d->alen) == 0; k++)
        {
            e -= d->alen;
        }
        rc = tok_add(out, s + b, e - b);
    }
    return rc;
}

/* Replace (literal) and Metaspace: per-token substitution. */
static int
dec_subst(const kvr_tok_dec_t *d, const toks_t *in, toks_t *out)
{
    size_t       i, j, len;
    const char  *s, *p, *with;
    size_t       withlen;
    int          rc = KVR_OK;

    for (i = 0; i < in->n && rc == KVR_OK; i++) {
        s = TOK(in, i);
        len = TLEN(in, i);
        with = d->type == KVR_DEC_REPLACE ? d->b : " ";
        withlen = d->type == KVR_DEC_REPLACE ? d->blen : 1;
        if (d->type == KVR_DEC_METASPACE && i == 0
            && d->prepend != KVR_PREPEND_NEVER)
        {
            withlen = 0;
        }
        rc = tok_add(out, "", 0);
        for (j = 0; j < len && rc == KVR_OK; ) {
            p = memmem(s + j, len - j, d->a, d->alen);
            if (p == NULL) {
                rc = tok_cat(out, s + j, len - j);
                break;
            }
            rc = tok_cat(out, s + j, (size_t) (p - s) - j);
            if (rc == KVR_OK) {
                rc = tok_cat(out, with, withlen);
            }
            j = (size_t) (p - s) + d->alen;
        }
    }
    return rc;
}

int
kvr_tok_decode_ids(const kvr_tokenizer_t *t, const uint32_t *ids, size_t n,
    unsigned flags, kvr_buf_t *out)
{
    toks_t                l[2];
    toks_t               *in = &l[0], *o = &l[1], *sw;
    const kvr_tok_dec_t  *d;
    size_t                i;
    int                   rc = KVR_OK;

    memset(l, 0, sizeof(l));
    for (i = 0; i < n && rc == KVR_OK; i++) {
        if ((flags & KVR_TOK_SKIP_SPECIAL) && (t->tok_flags[ids[i]] & 2)) {
            continue;
        }
        rc = tok_add(in, t->arena.data + t->tok_off[ids[i]], t->tok_len[ids[i]]);
    }
    for (i = 0; i < t->ndecs && rc == KVR_OK; i++) {
        d = &t->decs[i];
        toks_reset(o);
        switch (d->type) {
        case KVR_DEC_BYTELEVEL:
            rc = dec_bytelevel(in, o);
            break;
        case KVR_DEC_BYTEFALLBACK:
            rc = dec_bytefallback(in, o);
            break;
        case KVR_DEC_FUSE:
            rc = tok_add(o, in->text.data ? in->text.data : "", in->text.len);
            break;
        case KVR_DEC_STRIP:
            rc = dec_strip(d, in, o);
            break;
        default:
            rc = dec_subst(d, in, o);
            break;
        }
        sw = in;
        in = o;
        o = sw;
    }
    for (i = 0; i < in->n && rc == KVR_OK; i++) {
        if (i > 0 && !t->has_decoder) {
            rc = kvr_buf_append(out, " ", 1);
        }
        if (rc == KVR_OK) {
            rc = kvr_buf_append(out, TOK(in, i), TLEN(in, i));
        }
    }
    if (rc == KVR_OK && out->data == NULL) {
        rc = kvr_buf_append(out, "", 0);
    }
    toks_free(&l[0]);
    toks_free(&l[1]);
    return rc;
}

int
kvr_tokenizer_decode(const kvr_tokenizer_t *t, const uint32_t *ids, size_t n,
    unsigned flags, kvr_buf_t *out)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (ids[i] >= t->ntok || !(t->tok_flags[ids[i]] & 1)) {
            return KVR_ERR_INVAL;
        }
    }
    return kvr_tok_decode_ids(t, ids, n, flags, out);
}
