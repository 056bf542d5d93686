/*
 * kvrouter tokenizer: accessors of a loaded tokenizer and the id vector.
 */
#include <stdlib.h>
#include <string.h>

#include "kvr_tok_int.h"

size_t
kvr_tokenizer_vocab_size(const kvr_tokenizer_t *t)
{
    return t->ntok;
}

int64_t
kvr_tokenizer_token_to_id(const kvr_tokenizer_t *t, const char *tok,
    size_t len)
{
    size_t    i;
    uint32_t  id;

    for (i = 0; i < t->nadded; i++) {
        if (t->added[i].len == len
            && memcmp(t->arena.data + t->added[i].off, tok, len) == 0)
        {
            return t->added[i].id;
        }
    }
    id = kvr_tok_smap_get(&t->vocab, tok, len);
    return id == KVR_TOK_NONE ? -1 : (int64_t) id;
}

const char *
kvr_tokenizer_id_to_token(const kvr_tokenizer_t *t, uint32_t id, size_t *len)
{
    if (id >= t->ntok || !(t->tok_flags[id] & 1)) {
        *len = 0;
        return NULL;
    }
    *len = t->tok_len[id];
    return t->arena.data + t->tok_off[id];
}

int
kvr_tokenizer_is_special(const kvr_tokenizer_t *t, uint32_t id)
{
    return id < t->ntok && (t->tok_flags[id] & 2) != 0;
}

const char *
kvr_tokenizer_bos_token(const kvr_tokenizer_t *t)
{
    return t->bos;
}

const char *
kvr_tokenizer_eos_token(const kvr_tokenizer_t *t)
{
    return t->eos;
}

int64_t
kvr_tokenizer_bos_id(const kvr_tokenizer_t *t)
{
    return t->bos_id;
}

int64_t
kvr_tokenizer_eos_id(const kvr_tokenizer_t *t)
{
    return t->eos_id;
}

int
kvr_ids_push(kvr_ids_t *v, uint32_t id)
{
    uint32_t  *p;
    size_t     cap;

    if (v->n == v->cap) {
        cap = v->cap ? v->cap * 2 : 64;
        p = realloc(v->ids, cap * sizeof(uint32_t));
        if (p == NULL) {
            return KVR_ERR_NOMEM;
        }
        v->ids = p;
        v->cap = cap;
    }
    v->ids[v->n++] = id;
    return KVR_OK;
}

void
kvr_ids_free(kvr_ids_t *v)
{
    free(v->ids);
    v->ids = NULL;
    v->n = v->cap = 0;
}
