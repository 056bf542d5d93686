/*
 * dynamo-kv: streaming token-id parser (see dkv_tokens.h).
 *
 * A bad token is not reported at its first bad byte: the parser keeps
 * reading to the token's end so the message can show the whole token.
 */
#include <string.h>

#include "dkv_tokens.h"

enum { ST_SPACE = 0, ST_NUMBER, ST_BAD };

static int
is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v'
           || c == '\f';
}

static int
is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

void
dkv_tokens_init(dkv_tokens_t *p)
{
    memset(p, 0, sizeof(*p));
    p->state = ST_SPACE;
}

static void
keep_text(dkv_tokens_t *p, unsigned char c)
{
    if (p->text_len < DKV_TOK_TEXT_MAX) {
        p->text[p->text_len] = (char) c;
        p->text[p->text_len + 1] = '\0';
    }
    p->text_len++;
}

static void
go_bad(dkv_tokens_t *p, int err)
{
    p->state = ST_BAD;
    p->err = err;
}

/* The current token ended: emit it, or report why it is bad. */
static int
finish_token(dkv_tokens_t *p, dkv_token_fn fn, void *ctx)
{
    if (p->state == ST_BAD) {
        /* "-" followed by digits only is a negative number */
        if (p->err == DKV_TOK_ENEG && (!p->digits_only || p->text_len < 2)) {
            p->err = DKV_TOK_EINVAL;
        }
        return p->err;
    }

    p->state = ST_SPACE;
    p->count++;

    if (fn != NULL && fn(ctx, (uint32_t) p->value) != 0) {
        return DKV_TOK_ESTOP;
    }
    return DKV_TOK_OK;
}

int
dkv_tokens_feed(dkv_tokens_t *p, const char *buf, size_t len,
    dkv_token_fn fn, void *ctx)
{
    const unsigned char  *s = (const unsigned char *) buf;
    unsigned char         c;
    size_t                i;
    int                   rc;

    for (i = 0; i < len; i++, p->offset++) {
        c = s[i];

        if (is_space(c)) {
            if (p->state != ST_SPACE) {
                rc = finish_token(p, fn, ctx);
                if (rc != DKV_TOK_OK) {
                    return rc;
                }
            }
            continue;
        }

        if (p->state == ST_SPACE) {
            p->state = ST_NUMBER;
            p->value = 0;
            p->text_len = 0;
            p->text[0] = '\0';
            p->tok_offset = p->offset;

            if (c == '-') {
                keep_text(p, c);
                go_bad(p, DKV_TOK_ENEG);
                p->digits_only = 1;
                continue;
            }
        }

        keep_text(p, c);

        if (p->state == ST_BAD) {
            if (!is_digit(c)) {
                p->digits_only = 0;
                if (p->err == DKV_TOK_ERANGE) {
                    p->err = DKV_TOK_EINVAL;
                }
            }
            continue;
        }

        if (!is_digit(c)) {
            go_bad(p, DKV_TOK_EINVAL);
            continue;
        }

        p->value = p->value * 10 + (uint64_t) (c - '0');
        if (p->value > UINT32_MAX) {
            go_bad(p, DKV_TOK_ERANGE);
        }
    }

    return DKV_TOK_OK;
}

int
dkv_tokens_end(dkv_tokens_t *p, dkv_token_fn fn, void *ctx)
{
    if (p->state == ST_SPACE) {
        return DKV_TOK_OK;
    }
    return finish_token(p, fn, ctx);
}

const char *
dkv_tokens_strerror(int err)
{
    switch (err) {
    case DKV_TOK_OK:     return "ok";
    case DKV_TOK_EINVAL: return "not an unsigned decimal number";
    case DKV_TOK_ENEG:   return "negative numbers are not token ids";
    case DKV_TOK_ERANGE: return "out of range (token ids are 0..4294967295)";
    case DKV_TOK_ESTOP:  return "stopped";
    default:             return "unknown error";
    }
}
