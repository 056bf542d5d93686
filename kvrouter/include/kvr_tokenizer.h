/*
 * kvrouter: Hugging Face tokenizers (tokenizer.json + tokenizer_config.json),
 * token-for-token identical to the HF tokenizers library.
 *
 * A loaded kvr_tokenizer_t is immutable: encode and decode may run from
 * several threads at once (scratch is per call, plus one PCRE2 match data
 * and JIT stack per thread, freed when the thread exits). Components the
 * loader does not implement are refused at load time with an error naming
 * them, never approximated. See kvrouter/README.md, "Tokenizer".
 *
 * Functions return KVR_OK or a negative KVR_ERR_* (kvr_err.h); on error an
 * explanation is written to err (when err is not NULL).
 */
#ifndef KVR_TOKENIZER_H
#define KVR_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "kvr_buf.h"

typedef struct kvr_tokenizer_s  kvr_tokenizer_t;

/* A growable array of token ids. Zero-initialise; kvr_ids_free at the end. */
typedef struct {
    uint32_t  *ids;
    size_t     n;
    size_t     cap;
} kvr_ids_t;

int kvr_ids_push(kvr_ids_t *v, uint32_t id);
void kvr_ids_free(kvr_ids_t *v);

/*
 * Loads DIR/tokenizer.json and, when present, DIR/tokenizer_config.json
 * (the bos/eos token strings only: like HF tokenizers, encode adds what
 * tokenizer.json's post_processor adds; add_bos_token/add_eos_token,
 * which transformers' Llama/Gemma classes apply by rebuilding the
 * post-processor, are not applied).
 */
int kvr_tokenizer_load_dir(const char *dir, kvr_tokenizer_t **out,
    char *err, size_t errlen);

/* The same from memory; config may be NULL. */
int kvr_tokenizer_load(const char *json, size_t len, const char *config,
    size_t config_len, kvr_tokenizer_t **out, char *err, size_t errlen);

void kvr_tokenizer_free(kvr_tokenizer_t *t);

#define KVR_TOK_ADD_SPECIAL   0x1   /* encode: run the post-processor (BOS/EOS) */
#define KVR_TOK_SKIP_SPECIAL  0x2   /* decode: drop special added tokens */

/*
 * Encodes len bytes of text (not NUL-terminated; may contain NUL). The ids
 * replace out's contents. Invalid UTF-8 is handled as documented in
 * kvrouter/README.md ("Tokenizer").
 */
int kvr_tokenizer_encode(const kvr_tokenizer_t *t, const char *text,
    size_t len, unsigned flags, kvr_ids_t *out);

/* Decodes ids, appending the text to out. Unknown ids: KVR_ERR_INVAL. */
int kvr_tokenizer_decode(const kvr_tokenizer_t *t, const uint32_t *ids,
    size_t n, unsigned flags, kvr_buf_t *out);

size_t kvr_tokenizer_vocab_size(const kvr_tokenizer_t *t);  /* max id + 1 */

/* Id of a token string (vocab or added token), or -1. */
int64_t kvr_tokenizer_token_to_id(const kvr_tokenizer_t *t, const char *tok,
    size_t len);

/* The token string of an id (NULL when out of range); *len set. */
const char *kvr_tokenizer_id_to_token(const kvr_tokenizer_t *t, uint32_t id,
    size_t *len);

int kvr_tokenizer_is_special(const kvr_tokenizer_t *t, uint32_t id);

/*
 * From tokenizer_config.json: the bos/eos token strings ("" when absent)
 * and their ids (-1 when absent or not in the vocabulary).
 */
const char *kvr_tokenizer_bos_token(const kvr_tokenizer_t *t);
const char *kvr_tokenizer_eos_token(const kvr_tokenizer_t *t);
int64_t kvr_tokenizer_bos_id(const kvr_tokenizer_t *t);
int64_t kvr_tokenizer_eos_id(const kvr_tokenizer_t *t);

/*
 * Incremental detokenizer for streaming: fed one id at a time, it appends
 * exactly the text that a full decode of all ids so far would have added
 * since the last call, holding back bytes until they form whole UTF-8
 * characters (and whatever else the decoder pipeline needs to be final,
 * e.g. sentencepiece's leading-space rule). flush emits what is held at
 * the end of the stream, as the full decode would.
 */
typedef struct kvr_detok_s  kvr_detok_t;

kvr_detok_t *kvr_detok_create(const kvr_tokenizer_t *t, unsigned flags);
void kvr_detok_free(kvr_detok_t *d);
/* Forget the stream; prompt ids (may be NULL/0) give left context. */
int kvr_detok_reset(kvr_detok_t *d, const uint32_t *prompt, size_t n);
int kvr_detok_push(kvr_detok_t *d, uint32_t id, kvr_buf_t *out);
int kvr_detok_flush(kvr_detok_t *d, kvr_buf_t *out);

#endif
