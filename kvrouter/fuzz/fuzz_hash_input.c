/*
 * libFuzzer target: the dynamo-kv token-input parser (tools/dkv_tokens.c,
 * included here because fuzz targets link kvrouter/src only).
 *
 * The first input byte picks how the rest is cut into chunks; the parser's
 * tokens and error (kind, token index, offset, text) must not depend on the
 * cut, and must match a plain whole-buffer reference parser. The tokens
 * are then hashed block by block and compared with kvr_hash_blocks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvr_hash.h"
#include "../tools/dkv_tokens.c"

#define MAX_TOKENS  8192

typedef struct {
    uint32_t  tok[MAX_TOKENS];
    size_t    n;
    int       err;
    uint64_t  index;
    uint64_t  offset;
    size_t    text_len;
    char      text[DKV_TOK_TEXT_MAX + 1];
} result_t;

static int
collect(void *ctx, uint32_t t)
{
    result_t  *r = ctx;

    if (r->n < MAX_TOKENS) {
        r->tok[r->n] = t;
    }
    r->n++;
    return 0;
}

static void
run_parser(const char *s, size_t len, unsigned pattern, result_t *r)
{
    dkv_tokens_t  p;
    size_t        off = 0, k = 0, n;
    int           rc = DKV_TOK_OK;

    memset(r, 0, sizeof(*r));
    dkv_tokens_init(&p);

    while (off < len) {
        n = pattern == 0 ? len : (size_t) ((pattern * (k + 3)) % 17) + 1;
        if (n > len - off) {
            n = len - off;
        }
        rc = dkv_tokens_feed(&p, s + off, n, collect, r);
        if (rc != DKV_TOK_OK) {
            break;
        }
        off += n;
        k++;
    }
    if (rc == DKV_TOK_OK) {
        rc = dkv_tokens_end(&p, collect, r);
    }

    r->err = rc;
    if (rc != DKV_TOK_OK) {
        if (p.count != r->n) {
            abort();                  /* index of bad token = tokens so far */
        }
        r->index = p.count;
        r->offset = p.tok_offset;
        r->text_len = p.text_len;
        memcpy(r->text, p.text, DKV_TOK_TEXT_MAX + 1);
    }
}

static int
ref_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v'
           || c == '\f';
}

static void
run_reference(const char *s, size_t len, result_t *r)
{
    size_t    i = 0, start, j, nd;
    uint64_t  v;
    int       digits;

    memset(r, 0, sizeof(*r));

    for ( ;; ) {
        while (i < len && ref_space((unsigned char) s[i])) {
            i++;
        }
        if (i == len) {
            return;
        }
        start = i;
        while (i < len && !ref_space((unsigned char) s[i])) {
            i++;
        }

        digits = 1;
        for (j = start; j < i; j++) {
            if (s[j] < '0' || s[j] > '9') {
                digits = 0;
            }
        }

        if (digits) {
            /* value of the digits with leading zeros dropped */
            for (j = start; j + 1 < i && s[j] == '0'; j++) {
            }
            nd = i - j;
            v = 0;
            if (nd <= 10) {
                for (; j < i; j++) {
                    v = v * 10 + (uint64_t) (s[j] - '0');
                }
            }
            if (nd <= 10 && v <= UINT32_MAX) {
                collect(r, (uint32_t) v);
                continue;
            }
            r->err = DKV_TOK_ERANGE;
        } else {
            r->err = DKV_TOK_EINVAL;
            if (s[start] == '-' && i - start >= 2) {
                r->err = DKV_TOK_ENEG;
                for (j = start + 1; j < i; j++) {
                    if (s[j] < '0' || s[j] > '9') {
                        r->err = DKV_TOK_EINVAL;
                    }
                }
            }
        }

        r->index = r->n;
        r->offset = start;
        r->text_len = i - start;
        nd = r->text_len < DKV_TOK_TEXT_MAX ? r->text_len : DKV_TOK_TEXT_MAX;
        memcpy(r->text, s + start, nd);
        r->text[nd] = '\0';
        return;
    }
}

static void
same(const result_t *a, const result_t *b)
{
    size_t  n = a->n < MAX_TOKENS ? a->n : MAX_TOKENS;
    size_t  t;

    if (a->n != b->n || memcmp(a->tok, b->tok, n * sizeof(uint32_t)) != 0
        || a->err != b->err)
    {
        abort();
    }
    if (a->err != DKV_TOK_OK) {
        t = a->text_len < DKV_TOK_TEXT_MAX ? a->text_len : DKV_TOK_TEXT_MAX;
        if (a->index != b->index || a->offset != b->offset
            || a->text_len != b->text_len || memcmp(a->text, b->text, t) != 0)
        {
            abort();
        }
    }
}

/* Block-at-a-time hashing (as dynamo-kv does) equals the batch call. */
static void
hash_tokens(const result_t *r, size_t block_size)
{
    static uint64_t  local[MAX_TOKENS], seq[MAX_TOKENS];
    size_t           n, i;
    uint64_t         l, sq = 0;

    n = r->n < MAX_TOKENS ? r->n : MAX_TOKENS;
    n = kvr_hash_blocks(r->tok, n, block_size, KVR_HASH_SEED, local, seq);

    for (i = 0; i < n; i++) {
        l = kvr_hash_local(r->tok + i * block_size, block_size, KVR_HASH_SEED);
        sq = i == 0 ? l : kvr_hash_seq(sq, l);
        if (l != local[i] || sq != seq[i]) {
            abort();
        }
    }
}

static void
check(const char *s, size_t size, unsigned pattern)
{
    static result_t  whole, cut, ref;

    run_parser(s, size, 0, &whole);
    run_parser(s, size, pattern | 1u, &cut);
    run_reference(s, size, &ref);

    same(&whole, &cut);
    same(&whole, &ref);
    hash_tokens(&whole, (pattern % 8) + 1);
}

/* Boundaries a fuzzer finds slowly from an empty corpus, checked once. */
static void
check_boundaries(void)
{
    static const char  *v[] = {
        "4294967295", "4294967296", "04294967295", "00000000004294967296",
        "9999999999", "42949672950", "99999999999x", "-", "-0", "--1", "-1x",
        "0", " 1\t2\n3\r4\v5\f6 ", "1 2 3 abc 4",
        "1234567890123456789012345678901234567890123456789", ""
    };
    size_t    i;
    unsigned  p;

    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        for (p = 1; p < 40; p += 2) {
            check(v[i], strlen(v[i]), p);
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int  once;

    if (!once) {
        once = 1;
        check_boundaries();
    }
    if (size < 1) {
        return 0;
    }
    check((const char *) data + 1, size - 1, data[0]);
    return 0;
}
