/*
 * kvrouter tokenizer: incremental detokenizer.
 *
 * Window scheme (as HF's DecodeStream and vLLM): ids[prefix..read) were
 * already emitted; a new id is appended and ids[prefix..n) decoded; what
 * goes beyond the decode of ids[prefix..read) is new text. Decoding from a
 * token that was already emitted keeps the decoders' first-token rules
 * (Strip, Metaspace) off the new text. New text that ends in U+FFFD may be
 * an incomplete character (bytes still to come): the text before that
 * U+FFFD run goes out at once, the run is held until a later id completes
 * it (or until flush); only then does the window move on.
 *
 * ByteFallback decodes a run of byte tokens all or nothing: valid UTF-8
 * gives the text, anything else one U+FFFD per byte, so a character that
 * looks complete may still turn into U+FFFDs when a stray byte follows.
 * With that decoder, text ending in a byte token is held until a token
 * that is not a byte arrives (or flush): the stream then always adds up to
 * the full decode.
 */
#include <stdlib.h>
#include <string.h>

#include "kvr_tok_int.h"

#define KVR_DETOK_CONTEXT  8

struct kvr_detok_s {
    const kvr_tokenizer_t  *t;
    unsigned                flags;
    uint32_t               *ids;
    size_t                  n;
    size_t                  cap;
    size_t                  prefix;
    size_t                  read;
    size_t                  sent;   /* bytes of the new text already out */
    kvr_buf_t               a;
    kvr_buf_t               b;
    int                     fallback;   /* the decoders include ByteFallback */
    int                     strip;      /* largest Strip decoder start */
    const char             *strip_c;    /* its content (UTF-8) */
    size_t                  strip_len;
};

kvr_detok_t *
kvr_detok_create(const kvr_tokenizer_t *t, unsigned flags)
{
    kvr_detok_t  *d = calloc(1, sizeof(*d));

    size_t        i;

    if (d != NULL) {
        d->t = t;
        d->flags = flags;
        for (i = 0; i < t->ndecs; i++) {
            d->fallback |= t->decs[i].type == KVR_DEC_BYTEFALLBACK;
            if (t->decs[i].type == KVR_DEC_STRIP && t->decs[i].start > d->strip) {
                d->strip = t->decs[i].start;
                d->strip_c = t->decs[i].a;
                d->strip_len = t->decs[i].alen;
            }
        }
    }
    return d;
}

void
kvr_detok_free(kvr_detok_t *d)
{
    if (d == NULL) {
        return;
    }
    free(d->ids);
    kvr_buf_free(&d->a);
    kvr_buf_free(&d->b);
    free(d);
}

static int
add_id(kvr_detok_t *d, uint32_t id)
{
    uint32_t  *p;

    if (d->prefix > 0 && d->n == d->cap) {     /* drop what no window needs */
        memmove(d->ids, d->ids + d->prefix, (d->n - d->prefix) * sizeof(uint32_t));
        d->n -= d->prefix;
        d->read -= d->prefix;
        d->prefix = 0;
    }
    if (d->n == d->cap) {
        size_t  cap = d->cap ? d->cap * 2 : 32;

        p = realloc(d->ids, cap * sizeof(uint32_t));
        if (p == NULL) {
            return KVR_ERR_NOMEM;
        }
        d->ids = p;
        d->cap = cap;
    }
    d->ids[d->n++] = id;
    return KVR_OK;
}

static int
skipped(const kvr_detok_t *d, uint32_t id)
{
    return (d->flags & KVR_TOK_SKIP_SPECIAL) && kvr_tokenizer_is_special(d->t, id);
}

int
kvr_detok_reset(kvr_detok_t *d, const uint32_t *prompt, size_t n)
{
    size_t  i, k = 0;
    int     rc;

    d->n = d->prefix = d->read = d->sent = 0;
    /* the last few non-skipped prompt ids are the left context */
    for (i = n; i > 0 && k < KVR_DETOK_CONTEXT; i--) {
        if (prompt[i - 1] >= d->t->ntok || !(d->t->tok_flags[prompt[i - 1]] & 1)) {
            return KVR_ERR_INVAL;
        }
        if (!skipped(d, prompt[i - 1])) {
            k++;
        }
    }
    for ( ; i < n; i++) {
        if (!skipped(d, prompt[i]) && (rc = add_id(d, prompt[i])) != KVR_OK) {
            return rc;
        }
    }
    /*
     * Context ending inside a character (a prompt given as ids, cut in a
     * byte run) decodes to a trailing U+FFFD that the stream's text would
     * later replace, so the old decode would never be a prefix of the new
     * one: drop such ids from the context.
     */
    while (d->n > 0) {
        kvr_buf_reset(&d->a);
        rc = kvr_tok_decode_ids(d->t, d->ids, d->n, d->flags, &d->a);
        if (rc != KVR_OK) {
            return rc;
        }
        if (d->a.len < 3
            || memcmp(d->a.data + d->a.len - 3, "\xEF\xBF\xBD", 3) != 0)
        {
            break;
        }
        d->n--;
    }
    d->read = d->n;
    return KVR_OK;
}

/*
 * May the window start at ids[from]? The diff is right when the decoders
 * treat the window's first token alike with and without the new ids. A
 * Strip decoder with start > 1 after Fuse strips past the window's first
 * text when that is shorter than start and all strip characters: then the
 * window stays longer.
 */
static int
can_start(kvr_detok_t *d, size_t from)
{
    size_t  i, n;

    if (d->strip <= 1) {
        return 1;
    }
    kvr_buf_reset(&d->a);
    if (kvr_tok_decode_ids(d->t, d->ids + from, d->n - from, d->flags, &d->a)
        != KVR_OK)
    {
        return 0;
    }
    n = 0;
    for (i = 0; i + d->strip_len <= d->a.len && n < (size_t) d->strip; n++) {
        if (memcmp(d->a.data + i, d->strip_c, d->strip_len) != 0) {
            return 1;
        }
        i += d->strip_len;
    }
    return n == (size_t) d->strip;  /* stripping ends inside the token */
}

/* Emits what ids[prefix..n) adds beyond ids[prefix..read); final: no hold. */
static int
step(kvr_detok_t *d, kvr_buf_t *out, int final)
{
    const kvr_tokenizer_t  *t = d->t;
    size_t                  k, base;
    int                     rc;

    kvr_buf_reset(&d->a);
    kvr_buf_reset(&d->b);
    if ((rc = kvr_tok_decode_ids(t, d->ids + d->prefix, d->read - d->prefix,
                                 d->flags, &d->a)) != KVR_OK
        || (rc = kvr_tok_decode_ids(t, d->ids + d->prefix, d->n - d->prefix,
                                    d->flags, &d->b)) != KVR_OK)
    {
        return rc;
    }
    base = d->a.len + d->sent;
    if (d->b.len <= d->a.len || memcmp(d->a.data, d->b.data, d->a.len) != 0) {
        return KVR_OK;      /* nothing new yet (or not a prefix): wait */
    }
    k = d->b.len;
    while (!final && k - d->a.len >= 3
           && memcmp(d->b.data + k - 3, "\xEF\xBF\xBD", 3) == 0)
    {
        k -= 3;             /* maybe part of a character still to come */
    }
    if (k > base && (rc = kvr_buf_append(out, d->b.data + base, k - base)) != KVR_OK) {
        return rc;
    }
    if (k > base) {
        d->sent = k - d->a.len;
    }
    if (k == d->b.len) {
        if (can_start(d, d->read)) {
            d->prefix = d->read;
        }
        d->read = d->n;
        d->sent = 0;
    }
    return KVR_OK;
}

int
kvr_detok_push(kvr_detok_t *d, uint32_t id, kvr_buf_t *out)
{
    int  rc;

    if (id >= d->t->ntok || !(d->t->tok_flags[id] & 1)) {
        return KVR_ERR_INVAL;
    }
    if (skipped(d, id)) {
        return KVR_OK;
    }
    if ((rc = add_id(d, id)) != KVR_OK) {
        return rc;
    }
    if (d->fallback && kvr_tok_is_byte_token(d->t, id)) {
        return KVR_OK;
    }
    return step(d, out, 0);
}

int
kvr_detok_flush(kvr_detok_t *d, kvr_buf_t *out)
{
    int  rc;

    if (d->n == d->read) {
        return KVR_OK;
    }
    rc = step(d, out, 1);
    return rc;
}
