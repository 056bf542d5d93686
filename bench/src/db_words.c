/* stub: replaced by its owner */
#include "db_words.h"
#include <stdio.h>
int db_words_build(const kvr_tokenizer_t *tok, db_words_t *w, char *err,
    size_t errlen) { return -1; }
void db_words_free(db_words_t *w) { }
void db_words_fill(const db_words_t *w, uint64_t seed, uint32_t *out,
    size_t n) { }
