#ifndef DB_WORDS_H
#define DB_WORDS_H

/*
 * Round-trip-safe words of a tokenizer: the token ids w such that any
 * sequence of them decodes to text that encodes back to exactly that
 * sequence (no BPE merge across them, no normalizer change). Random
 * prompts and trace blocks are drawn from these so that token counts and
 * shared prefixes survive the trip through text.
 */

#include <stddef.h>
#include <stdint.h>

#include "kvr_tokenizer.h"

typedef struct {
    uint32_t  *ids;
    size_t     n;

    /* The texts of the words, for db_words_text (a fast decode): */
    char      *text;        /* word i reads text[off[i] .. off[i + 1]) after
                               another word (" X"), all concatenated */
    size_t    *off;         /* n + 1 */
    uint32_t  *word_of;     /* by token id: i, or UINT32_MAX */
    size_t     vocab;
    int        strip_first; /* the decoder drops a text's leading space
                               (sentencepiece) */
    int        fast;        /* db_words_text agrees with the tokenizer's
                               decode on the verification samples */
} db_words_t;

/* Fails (with a message) when the tokenizer has fewer than 16 such words. */
int db_words_build(const kvr_tokenizer_t *tok, db_words_t *w, char *err,
    size_t errlen);
void db_words_free(db_words_t *w);

/*
 * decode(ids) as a malloc'd NUL-terminated string built from the words'
 * texts (several times faster than the tokenizer's decode). Returns 1
 * (nothing allocated) when some id is not a word or the fast path is off:
 * decode with the tokenizer then; -1 when out of memory.
 */
int db_words_text(const db_words_t *w, const uint32_t *ids, size_t n,
    char **out);

/* n ids drawn from the words by a splitmix64 stream seeded with seed. */
void db_words_fill(const db_words_t *w, uint64_t seed, uint32_t *out,
    size_t n);

#endif
