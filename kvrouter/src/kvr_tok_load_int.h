/*
 * kvrouter tokenizer: component loaders (kvr_tok_load_comp.c), used by the
 * top-level loader (kvr_tok_load.c).
 */
#ifndef KVR_TOK_LOAD_INT_H
#define KVR_TOK_LOAD_INT_H

#include <jansson.h>

#include "kvr_tok_int.h"

/* Formats err; returns KVR_ERR_INVAL. */
int kvr_tok_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int kvr_tok_load_normalizer(kvr_tokenizer_t *t, json_t *o, char *err,
    size_t errlen);
int kvr_tok_load_pretok(kvr_tokenizer_t *t, json_t *o, char *err,
    size_t errlen);
int kvr_tok_load_post(kvr_tokenizer_t *t, json_t *o, char *err,
    size_t errlen);
int kvr_tok_load_decoder(kvr_tokenizer_t *t, json_t *o, char *err,
    size_t errlen);

#endif
