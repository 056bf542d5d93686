/*
 * Round-trip-safe words of a tokenizer (see db_words.h).
 *
 * A candidate is a non-special id whose text is a word start: decoded
 * alone it is " X" (byte-level BPE "Ġword") or "X" with the space eaten by
 * the decoder (sentencepiece "▁word" at the start of a text), X letters
 * only, and decoded twice in a row it is that text, a space, and X again.
 * It must encode back to itself alone and after another such word. Then
 * random sequences of the survivors are decoded and encoded again; the id
 * where a sequence first differs is dropped until samples come back clean
 * (a tokenizer without a pre-tokenizer could merge across words).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "db_dataset_int.h"
#include "db_words.h"

#define DB_WORDS_MIN       16
#define DB_WORDS_SAMPLE    256   /* words per verification sample */
#define DB_WORDS_CLEAN     48    /* clean samples in a row to accept */
#define DB_WORDS_ROUNDS    4096  /* give up after so many samples */

static int
letters_only(const char *s, size_t n)
{
    const utf8proc_uint8_t  *p = (const utf8proc_uint8_t *) s;
    utf8proc_int32_t         c;
    utf8proc_ssize_t         k;
    size_t                   i = 0;

    if (n == 0) {
        return 0;
    }
    while (i < n) {
        k = utf8proc_iterate(p + i, (utf8proc_ssize_t) (n - i), &c);
        if (k <= 0) {
            return 0;
        }
        switch (utf8proc_category(c)) {
        case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL:
        case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
        case UTF8PROC_CATEGORY_LO:
            break;
        default:
            return 0;
        }
        i += (size_t) k;
    }
    return 1;
}

/* encode(decode(ids)) == ids; *first gets the first differing index. */
static int
round_trips(const kvr_tokenizer_t *tok, const uint32_t *ids, size_t n,
    kvr_buf_t *b, kvr_ids_t *e, size_t *first)
{
    size_t  i;

    kvr_buf_reset(b);
    if (kvr_tokenizer_decode(tok, ids, n, 0, b) != 0
        || kvr_tokenizer_encode(tok, b->data ? b->data : "", b->len, 0, e)
           != 0)
    {
        *first = 0;
        return 0;
    }
    for (i = 0; i < n && i < e->n; i++) {
        if (e->ids[i] != ids[i]) {
            break;
        }
    }
    *first = i;
    return i == n && e->n == n;
}

/* The word-start shape test on decode([id]) and decode([id, id]). */
static int
word_shaped(const kvr_tokenizer_t *tok, uint32_t id, kvr_buf_t *b)
{
    uint32_t  two[2] = { id, id };
    size_t    n1, xo, xn;
    char     *one;
    int       ok;

    if (kvr_tokenizer_is_special(tok, id)) {
        return 0;
    }
    kvr_buf_reset(b);
    if (kvr_tokenizer_decode(tok, &id, 1, 0, b) != 0 || b->len == 0
        || b->len > 256)
    {
        return 0;
    }
    n1 = b->len;
    xo = b->data[0] == ' ' ? 1 : 0;
    xn = n1 - xo;
    if (!letters_only(b->data + xo, xn)) {
        return 0;
    }
    one = malloc(n1);
    if (one == NULL) {
        return 0;
    }
    memcpy(one, b->data, n1);
    kvr_buf_reset(b);
    ok = kvr_tokenizer_decode(tok, two, 2, 0, b) == 0
         && b->len == n1 + 1 + xn
         && memcmp(b->data, one, n1) == 0
         && b->data[n1] == ' '
         && memcmp(b->data + n1 + 1, one + xo, xn) == 0;
    free(one);
    return ok;
}

static int
sample_verify(const kvr_tokenizer_t *tok, uint32_t *ids, size_t *n,
    char *err, size_t errlen)
{
    kvr_buf_t   b = { 0 };
    kvr_ids_t   e = { 0 };
    uint32_t    seq[DB_WORDS_SAMPLE];
    uint64_t    st = 0x5eedf00dULL;
    size_t      clean = 0, round, i, first, m = *n, pick[DB_WORDS_SAMPLE];
    int         rc = -1;

    for (round = 0; round < DB_WORDS_ROUNDS && clean < DB_WORDS_CLEAN;
         round++)
    {
        if (m < DB_WORDS_MIN) {
            break;
        }
        for (i = 0; i < DB_WORDS_SAMPLE; i++) {
            pick[i] = (size_t) (db_splitmix64(&st) % m);
            seq[i] = ids[pick[i]];
        }
        if (round_trips(tok, seq, DB_WORDS_SAMPLE, &b, &e, &first)) {
            clean++;
            continue;
        }
        clean = 0;
        if (first >= DB_WORDS_SAMPLE) {
            first = DB_WORDS_SAMPLE - 1;   /* extra ids at the end */
        }
        ids[pick[first]] = ids[--m];       /* drop the offender */
    }
    if (clean >= DB_WORDS_CLEAN && m >= DB_WORDS_MIN) {
        *n = m;
        rc = 0;
    } else {
        snprintf(err, errlen, "the tokenizer has too few round-trip-safe "
                 "words (%zu left after verification, need %d)", m,
                 DB_WORDS_MIN);
    }
    kvr_buf_free(&b);
    kvr_ids_free(&e);
    return rc;
}

/* The words' texts for db_words_text, checked against decode. */
static int
build_texts(const kvr_tokenizer_t *tok, db_words_t *w)
{
    kvr_buf_t   b = { 0 }, t = { 0 };
    size_t      i, total = 0, k;
    uint32_t    seq[DB_WORDS_SAMPLE];
    uint64_t    st = 0x7e77ULL;
    char       *out;

    w->vocab = kvr_tokenizer_vocab_size(tok);
    w->off = malloc((w->n + 1) * sizeof(*w->off));
    w->word_of = malloc(w->vocab * sizeof(*w->word_of));
    if (w->off == NULL || w->word_of == NULL) {
        return -1;
    }
    memset(w->word_of, 0xff, w->vocab * sizeof(*w->word_of));
    for (i = 0; i < w->n; i++) {
        kvr_buf_reset(&b);
        if (kvr_tokenizer_decode(tok, &w->ids[i], 1, 0, &b) != 0
            || b.len == 0)
        {
            goto off;
        }
        if (i == 0) {
            w->strip_first = b.data[0] != ' ';
        }
        w->off[i] = total;
        w->word_of[w->ids[i]] = (uint32_t) i;
        if (b.data[0] != ' ' && kvr_buf_append(&t, " ", 1) != 0) {
            goto off;
        }
        if (kvr_buf_append(&t, b.data, b.len) != 0) {
            goto off;
        }
        total = t.len;
    }
    w->off[w->n] = total;
    w->text = t.data;
    t.data = NULL;
    w->fast = 1;
    /* the fast path must agree with decode, or it stays off */
    for (k = 0; k < 8 && w->fast; k++) {
        for (i = 0; i < DB_WORDS_SAMPLE; i++) {
            seq[i] = w->ids[db_splitmix64(&st) % w->n];
        }
        kvr_buf_reset(&b);
        if (db_words_text(w, seq, DB_WORDS_SAMPLE, &out) != 0) {
            w->fast = 0;
            break;
        }
        w->fast = kvr_tokenizer_decode(tok, seq, DB_WORDS_SAMPLE, 0, &b)
                  == 0 && b.len == strlen(out)
                  && memcmp(b.data, out, b.len) == 0;
        free(out);
    }
off:
    kvr_buf_free(&b);
    kvr_buf_free(&t);
    return 0;
}

int
db_words_text(const db_words_t *w, const uint32_t *ids, size_t n,
    char **out)
{
    size_t  i, len = 0, k, wl;
    char   *p;

    if (!w->fast) {
        return 1;
    }
    for (i = 0; i < n; i++) {
        if (ids[i] >= w->vocab || w->word_of[ids[i]] == UINT32_MAX) {
            return 1;
        }
        k = w->word_of[ids[i]];
        len += w->off[k + 1] - w->off[k];
    }
    p = malloc(len + 1);
    if (p == NULL) {
        return -1;
    }
    *out = p;
    for (i = 0; i < n; i++) {
        k = w->word_of[ids[i]];
        wl = w->off[k + 1] - w->off[k];
        if (i == 0 && w->strip_first) {
            memcpy(p, w->text + w->off[k] + 1, wl - 1);
            p += wl - 1;
        } else {
            memcpy(p, w->text + w->off[k], wl);
            p += wl;
        }
    }
    *p = '\0';
    return 0;
}

int
db_words_build(const kvr_tokenizer_t *tok, db_words_t *w, char *err,
    size_t errlen)
{
    size_t     vocab = kvr_tokenizer_vocab_size(tok), n = 0, i, first;
    uint32_t  *ids, pair[2];
    kvr_buf_t  b = { 0 };
    kvr_ids_t  e = { 0 };
    int64_t    anchor = -1;

    memset(w, 0, sizeof(*w));
    ids = malloc((vocab ? vocab : 1) * sizeof(*ids));
    if (ids == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (i = 0; i < vocab; i++) {
        uint32_t  id = (uint32_t) i;

        if (!word_shaped(tok, id, &b)
            || !round_trips(tok, &id, 1, &b, &e, &first))
        {
            continue;
        }
        if (anchor < 0) {
            pair[0] = pair[1] = id;
            if (!round_trips(tok, pair, 2, &b, &e, &first)) {
                continue;
            }
            anchor = id;
        }
        pair[0] = (uint32_t) anchor;
        pair[1] = id;
        if (round_trips(tok, pair, 2, &b, &e, &first)) {
            ids[n++] = id;
        }
    }
    kvr_buf_free(&b);
    kvr_ids_free(&e);
    if (n < DB_WORDS_MIN) {
        free(ids);
        snprintf(err, errlen, "the tokenizer has too few round-trip-safe "
                 "words (%zu, need %d)", n, DB_WORDS_MIN);
        return -1;
    }
    if (sample_verify(tok, ids, &n, err, errlen) != 0) {
        free(ids);
        return -1;
    }
    w->ids = ids;
    w->n = n;
    if (build_texts(tok, w) != 0) {
        db_words_free(w);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void
db_words_free(db_words_t *w)
{
    if (w != NULL) {
        free(w->ids);
        free(w->text);
        free(w->off);
        free(w->word_of);
        memset(w, 0, sizeof(*w));
    }
}

void
db_words_fill(const db_words_t *w, uint64_t seed, uint32_t *out, size_t n)
{
    uint64_t  s = seed;
    size_t    i;

    for (i = 0; i < n; i++) {
        out[i] = w->ids[db_splitmix64(&s) % w->n];
    }
}
