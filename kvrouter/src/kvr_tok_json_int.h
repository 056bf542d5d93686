/*
 * kvrouter tokenizer: fast parsing of tokenizer.json's model.vocab and
 * model.merges (kvr_tok_json.c).
 */
#ifndef KVR_TOK_JSON_INT_H
#define KVR_TOK_JSON_INT_H

#include <stddef.h>
#include <stdint.h>

#include "kvr_buf.h"

typedef struct {
    const char  *vocab;         /* the value, '{' .. '}' (NULL: absent) */
    size_t       vocab_len;
    const char  *merges;        /* '[' .. ']' */
    size_t       merges_len;
} kvr_tok_json_parts_t;

typedef int (*kvr_tok_vocab_fn)(void *arg, const char *k, size_t len,
    uint32_t id);
/* A batch of merges: a and b as offsets into the batch's text. */
typedef struct {
    size_t  a;
    size_t  alen;
    size_t  b;
    size_t  blen;
} kvr_tok_merge_t;

#define KVR_TOK_MERGE_BATCH  64

/* n merges (n <= KVR_TOK_MERGE_BATCH) of ranks rank0, rank0 + 1, ... */
typedef int (*kvr_tok_merge_fn)(void *arg, const char *text,
    const kvr_tok_merge_t *m, size_t n, size_t rank0);

int kvr_tok_json_str(const char **pp, const char *end, kvr_buf_t *out);
/* KVR_OK, KVR_ERR_INVAL (malformed) or KVR_ERR_NOMEM; *rest to free(). */
int kvr_tok_json_split(const char *json, size_t len,
    kvr_tok_json_parts_t *parts, char **rest);
int kvr_tok_json_vocab(const char *p, size_t len, kvr_tok_vocab_fn fn,
    void *arg);
int kvr_tok_json_merges(const char *p, size_t len, kvr_tok_merge_fn fn,
    void *arg);

#endif
