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
} db_words_t;

/* Fails (with a message) when the tokenizer has fewer than 16 such words. */
int db_words_build(const kvr_tokenizer_t *tok, db_words_t *w, char *err,
    size_t errlen);
void db_words_free(db_words_t *w);

/* n ids drawn from the words by a splitmix64 stream seeded with seed. */
void db_words_fill(const db_words_t *w, uint64_t seed, uint32_t *out,
    size_t n);

#endif
