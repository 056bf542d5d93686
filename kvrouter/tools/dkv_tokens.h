/*
 * dynamo-kv: streaming parser for whitespace-separated token ids.
 *
 * A token is a maximal run of non-whitespace bytes and must be an unsigned
 * decimal number <= 4294967295 (leading zeros allowed, no sign). Input may be
 * fed in chunks of any size, split anywhere; tokens are handed to a callback
 * as soon as they end, so memory use does not grow with the input.
 */
#ifndef DKV_TOKENS_H
#define DKV_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#define DKV_TOK_TEXT_MAX  32     /* bytes of a bad token kept for messages */

typedef enum {
    DKV_TOK_OK = 0,
    DKV_TOK_EINVAL,              /* not an unsigned decimal number */
    DKV_TOK_ENEG,                /* a negative number */
    DKV_TOK_ERANGE,              /* greater than 4294967295 */
    DKV_TOK_ESTOP                /* the callback returned non-zero */
} dkv_tok_err_t;

/* Called once per token; a non-zero return stops parsing (DKV_TOK_ESTOP). */
typedef int (*dkv_token_fn)(void *ctx, uint32_t token);

typedef struct {
    int       state;             /* between tokens, in a number, bad token */
    int       err;               /* error of the bad token being skipped */
    int       digits_only;       /* bad token: all bytes after '-' digits */
    uint64_t  value;
    uint64_t  count;             /* tokens completed; on error, bad token's */
    uint64_t  offset;            /* bytes consumed */
    uint64_t  tok_offset;        /* byte offset of the current token */
    size_t    text_len;          /* current token text (may be cut short) */
    char      text[DKV_TOK_TEXT_MAX + 1];
} dkv_tokens_t;

void dkv_tokens_init(dkv_tokens_t *p);

/*
 * Parses buf[0..len). Returns DKV_TOK_OK, or an error; on a bad token,
 * p->count is its 0-based index, p->tok_offset its byte offset and p->text
 * its text (NUL-terminated, at most DKV_TOK_TEXT_MAX bytes, p->text_len the
 * full length). After an error the parser must not be fed again.
 */
int dkv_tokens_feed(dkv_tokens_t *p, const char *buf, size_t len,
    dkv_token_fn fn, void *ctx);

/* Ends the input: completes a token that ran up to the end. */
int dkv_tokens_end(dkv_tokens_t *p, dkv_token_fn fn, void *ctx);

const char *dkv_tokens_strerror(int err);

#endif
