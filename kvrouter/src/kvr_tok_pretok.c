/*
 * kvrouter tokenizer: pre-tokenizers. Each stage takes one split and calls
 * the next stage for each of its pieces, in order; after the last stage
 * comes the BPE model. Regexes run on PCRE2 with JIT.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvr_tok_int.h"

/*
 * HF compiles its patterns with Oniguruma, where \s is Unicode White_Space;
 * PCRE2's \s (with UCP) lacks U+0085 only, so it is added.
 */
static int
rewrite(const char *pat, size_t len, kvr_buf_t *out)
{
    size_t  i;
    int     cls = 0, rc = KVR_OK;

    for (i = 0; i < len && rc == KVR_OK; i++) {
        if (pat[i] == '\\' && i + 1 < len) {
            if (pat[i + 1] == 's') {
                rc = kvr_buf_append_str(out, cls ? "\\s\\x{85}" : "[\\s\\x{85}]");
            } else if (pat[i + 1] == 'S' && !cls) {
                rc = kvr_buf_append_str(out, "[^\\s\\x{85}]");
            } else {
                rc = kvr_buf_append(out, pat + i, 2);
            }
            i++;
            continue;
        }
        if (pat[i] == '[' && !cls) {
            cls = 1;
            rc = kvr_buf_append(out, pat + i, 1);
            /* a ']' right after '[' or '[^' is literal */
            if (i + 1 < len && pat[i + 1] == '^') {
                rc = kvr_buf_append(out, pat + ++i, 1);
            }
            if (i + 1 < len && pat[i + 1] == ']') {
                rc = kvr_buf_append(out, pat + ++i, 1);
            }
            continue;
        }
        if (pat[i] == ']' && cls) {
            cls = 0;
        }
        rc = kvr_buf_append(out, pat + i, 1);
    }
    return rc;
}

pcre2_code *
kvr_tok_regex(const char *pat, size_t len, char *err, size_t errlen)
{
    kvr_buf_t    b = {0};
    pcre2_code  *re;
    int          ec;
    PCRE2_SIZE   eo;

    if (rewrite(pat, len, &b) != KVR_OK) {
        kvr_buf_free(&b);
        if (err && errlen) {
            snprintf(err, errlen, "out of memory");
        }
        return NULL;
    }
    re = pcre2_compile((PCRE2_SPTR) (b.data ? b.data : ""), b.len,
                       PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    kvr_buf_free(&b);
    if (re == NULL) {
        if (err && errlen) {
            PCRE2_UCHAR  msg[120];

            pcre2_get_error_message(ec, msg, sizeof(msg));
            snprintf(err, errlen, "%s at offset %zu", (char *) msg, (size_t) eo);
        }
        return NULL;
    }
    (void) pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   /* interpreter if not */
    return re;
}

int
kvr_tok_regex_next(const pcre2_code *re, pcre2_match_data *md,
    pcre2_match_context *mctx, const char *s, size_t len, size_t off,
    size_t *ms, size_t *me)
{
    PCRE2_SIZE  *ov;
    int          rc;

    while (off <= len) {
        rc = pcre2_match(re, (PCRE2_SPTR) s, len, off, PCRE2_NO_UTF_CHECK, md,
                         mctx);
        if (rc == PCRE2_ERROR_NOMATCH) {
            return 0;
        }
        if (rc < 0) {
            return rc == PCRE2_ERROR_NOMEMORY ? KVR_ERR_NOMEM : KVR_ERR_INVAL;
        }
        ov = pcre2_get_ovector_pointer(md);
        if (ov[1] > ov[0]) {
            *ms = ov[0];
            *me = ov[1];
            return 1;
        }
        /* empty match: not a split point; go on after one char */
        if (ov[0] >= len) {
            return 0;
        }
        off = ov[0] + kvr_tok_utf8_len((unsigned char) s[ov[0]]);
    }
    return 0;
}

/* Next match of a split-like stage at or after off. */
static int
next_match(kvr_tok_ctx_t *c, const kvr_tok_pre_t *p, const char *s,
    size_t len, size_t off, size_t *ms, size_t *me)
{
    const char  *q;
    uint32_t     ch;
    size_t       cl;
    int          hit;

    switch (p->match) {
    case KVR_MATCH_REGEX:
        return kvr_tok_regex_next(p->re, c->md, c->mctx, s, len, off, ms, me);
    case KVR_MATCH_LITERAL:
        if (p->litlen == 0 || off >= len) {
            return 0;
        }
        q = p->litlen == 1 ? memchr(s + off, p->lit[0], len - off)
                           : memmem(s + off, len - off, p->lit, p->litlen);
        if (q == NULL) {
            return 0;
        }
        *ms = (size_t) (q - s);
        *me = *ms + p->litlen;
        return 1;
    default:
        while (off < len) {
            ch = kvr_tok_utf8_dec((const unsigned char *) s + off, len - off,
                                  &cl);
            hit = p->match == KVR_MATCH_DIGIT ? kvr_tok_is_numeric(ch)
                  : p->match == KVR_MATCH_PUNCT ? kvr_tok_is_punct(ch)
                  : kvr_tok_is_whitespace(ch);
            if (hit) {
                *ms = off;
                *me = off + cl;
                return 1;
            }
            off += cl;
        }
        return 0;
    }
}

static int
emit(kvr_tok_ctx_t *c, size_t stage, const char *s, size_t b, size_t e,
    int first)
{
    if (e == b) {
        return KVR_OK;
    }
    return kvr_tok_pretok(c, stage + 1, s + b, e - b, first && b == 0);
}

static int
span_push(kvr_tok_ctx_t *c, size_t stage, size_t *n, size_t b, size_t e,
    size_t m)
{
    size_t  *p;

    if (*n + 3 > c->spcap[stage]) {
        size_t  cap = c->spcap[stage] ? c->spcap[stage] * 2 : 96;

        p = realloc(c->spans[stage], cap * sizeof(size_t));
        if (p == NULL) {
            return KVR_ERR_NOMEM;
        }
        c->spans[stage] = p;
        c->spcap[stage] = cap;
    }
    p = c->spans[stage] + *n;
    p[0] = b;
    p[1] = e;
    p[2] = m;
    *n += 3;
    return KVR_OK;
}

static int
split(kvr_tok_ctx_t *c, size_t stage, const kvr_tok_pre_t *p, const char *s,
    size_t len, int first)
{
    size_t   off = 0, ms, me, n = 0, i, k, *sp;
    int      rc, m, prev;

    /* Isolated and Removed stream their pieces */
    if (p->behavior == KVR_SPLIT_ISOLATED || p->behavior == KVR_SPLIT_REMOVED) {
        int  keep_gap = p->behavior == KVR_SPLIT_ISOLATED || !p->invert;
        int  keep_match = p->behavior == KVR_SPLIT_ISOLATED || p->invert;

        while ((rc = next_match(c, p, s, len, off, &ms, &me)) == 1) {
            if ((keep_gap && (rc = emit(c, stage, s, off, ms, first)) != KVR_OK)
                || (keep_match
                    && (rc = emit(c, stage, s, ms, me, first)) != KVR_OK))
            {
                return rc;
            }
            off = me;
        }
        if (rc < 0) {
            return rc;
        }
        return keep_gap ? emit(c, stage, s, off, len, first) : KVR_OK;
    }
    /* the rest: (begin, end, is_match) triples, then HF's folds */
    while ((rc = next_match(c, p, s, len, off, &ms, &me)) == 1) {
        if ((off != ms && (rc = span_push(c, stage, &n, off, ms, p->invert)) != KVR_OK)
            || (rc = span_push(c, stage, &n, ms, me, !p->invert)) != KVR_OK)
        {
            return rc;
        }
        off = me;
    }
    if (rc < 0) {
        return rc;
    }
    if (off != len || n == 0) {
        if ((rc = span_push(c, stage, &n, off, len, p->invert)) != KVR_OK) {
            return rc;
        }
    }
    sp = c->spans[stage];
    k = 0;      /* output triples written in place (k <= i) */
    prev = 0;
    if (p->behavior == KVR_SPLIT_NEXT) {
        /* fold from the right: a match joins the piece after it */
        size_t  w = n;

        for (i = n; i > 0; i -= 3) {
            m = (int) sp[i - 1];
            if (m && !prev && w < n) {
                sp[w] = sp[i - 3];
            } else {
                w -= 3;
                sp[w] = sp[i - 3];
                sp[w + 1] = sp[i - 2];
            }
            prev = m;
        }
        for (i = w; i < n; i += 3) {
            if ((rc = emit(c, stage, s, sp[i], sp[i + 1], first)) != KVR_OK) {
                return rc;
            }
        }
        return KVR_OK;
    }
    for (i = 0; i < n; i += 3) {
        m = (int) sp[i + 2];
        if (k > 0 && (p->behavior == KVR_SPLIT_PREV ? (m && !prev) : m == prev)) {
            sp[k - 2] = sp[i + 1];
        } else {
            sp[k] = sp[i];
            sp[k + 1] = sp[i + 1];
            k += 3;
        }
        prev = m;
    }
    for (i = 0; i < k; i += 3) {
        if ((rc = emit(c, stage, s, sp[i], sp[i + 1], first)) != KVR_OK) {
            return rc;
        }
    }
    return KVR_OK;
}

static int
metaspace(kvr_tok_ctx_t *c, size_t stage, const kvr_tok_pre_t *p,
    const char *s, size_t len, int first)
{
    kvr_buf_t  *b = &c->pbuf[stage];
    size_t      i, start;
    const char *q;
    int         rc;

    kvr_buf_reset(b);
    if (p->prepend == KVR_PREPEND_ALWAYS
        || (p->prepend == KVR_PREPEND_FIRST && first))
    {
        /* HF checks after replacing spaces: a leading space counts */
        if (s[0] != ' ' && (len < p->repllen || memcmp(s, p->repl, p->repllen) != 0)) {
            if (kvr_buf_append(b, p->repl, p->repllen) != KVR_OK) {
                return KVR_ERR_NOMEM;
            }
        }
    }
    for (i = 0; i < len; i++) {
        rc = s[i] == ' ' ? kvr_buf_append(b, p->repl, p->repllen)
                         : kvr_buf_append(b, s + i, 1);
        if (rc != KVR_OK) {
            return rc;
        }
    }
    if (!p->split) {
        return emit(c, stage, b->data, 0, b->len, first);
    }
    /* MergedWithNext on the replacement: a piece starts at each one */
    start = 0;
    i = 0;
    while (i < b->len) {
        q = memmem(b->data + i, b->len - i, p->repl, p->repllen);
        if (q == NULL) {
            break;
        }
        i = (size_t) (q - b->data);
        if (i > start) {
            if ((rc = emit(c, stage, b->data, start, i, first)) != KVR_OK) {
                return rc;
            }
            start = i;
        }
        i += p->repllen;
    }
    return emit(c, stage, b->data, start, b->len, first);
}

int
kvr_tok_pretok(kvr_tok_ctx_t *c, size_t stage, const char *s, size_t len,
    int first)
{
    const kvr_tok_pre_t  *p;
    kvr_buf_t            *b;

    if (stage == c->t->npres) {
        return kvr_tok_bpe(c, s, len);
    }
    p = &c->t->pres[stage];
    switch (p->type) {
    case KVR_PRE_SPLIT:
        return split(c, stage, p, s, len, first);
    case KVR_PRE_METASPACE:
        return metaspace(c, stage, p, s, len, first);
    default:    /* ByteLevel: the prefix space; the byte mapping is implicit */
        if (!p->add_prefix_space || s[0] == ' ') {
            return kvr_tok_pretok(c, stage + 1, s, len, first);
        }
        b = &c->pbuf[stage];
        kvr_buf_reset(b);
        if (kvr_buf_append(b, " ", 1) != KVR_OK
            || kvr_buf_append(b, s, len) != KVR_OK)
        {
            return KVR_ERR_NOMEM;
        }
        return kvr_tok_pretok(c, stage + 1, b->data, b->len, first);
    }
}
