/*
 * kvrouter tokenizer: UTF-8 and character-class helpers (categories from
 * utf8proc), the GPT-2 byte alphabet.
 */
#include <pthread.h>
#include <string.h>

#include <utf8proc.h>

#include "kvr_tok_int.h"

size_t
kvr_tok_utf8_enc(uint32_t c, char *out)
{
    unsigned char  *o = (unsigned char *) out;

    if (c < 0x80) {
        o[0] = (unsigned char) c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (unsigned char) (0xC0 | c >> 6);
        o[1] = (unsigned char) (0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (unsigned char) (0xE0 | c >> 12);
        o[1] = (unsigned char) (0x80 | (c >> 6 & 0x3F));
        o[2] = (unsigned char) (0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (unsigned char) (0xF0 | c >> 18);
    o[1] = (unsigned char) (0x80 | (c >> 12 & 0x3F));
    o[2] = (unsigned char) (0x80 | (c >> 6 & 0x3F));
    o[3] = (unsigned char) (0x80 | (c & 0x3F));
    return 4;
}

/*
 * Length of the valid sequence at s (0: invalid); *bad gets the length of
 * the maximal invalid subpart (>= 1) when invalid.
 */
static size_t
utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char  c = s[0], lo = 0x80, hi = 0xBF;
    size_t         need, i;

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) {
            lo = 0xA0;
        } else if (c == 0xED) {
            hi = 0x9F;
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) {
            lo = 0x90;
        } else if (c == 0xF4) {
            hi = 0x8F;
        }
    } else {
        *bad = 1;
        return 0;
    }
    for (i = 1; i < need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *bad = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return need;
}

size_t
kvr_tok_utf8_valid(const char *s, size_t len)
{
    const unsigned char  *p = (const unsigned char *) s;
    size_t                i = 0, k, bad;

    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        k = utf8_seq(p + i, len - i, &bad);
        if (k == 0) {
            return i;
        }
        i += k;
    }
    return len;
}

int
kvr_tok_utf8_lossy(kvr_buf_t *out, const char *s, size_t len)
{
    const unsigned char  *p = (const unsigned char *) s;
    size_t                i = 0, start = 0, k, bad;

    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        k = utf8_seq(p + i, len - i, &bad);
        if (k) {
            i += k;
            continue;
        }
        if (kvr_buf_append(out, s + start, i - start) != KVR_OK
            || kvr_buf_append(out, "\xEF\xBF\xBD", 3) != KVR_OK)
        {
            return KVR_ERR_NOMEM;
        }
        i += bad;
        start = i;
    }
    return kvr_buf_append(out, s + start, len - start);
}

int
kvr_tok_is_whitespace(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0
           || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028
           || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

int
kvr_tok_is_numeric(uint32_t c)
{
    utf8proc_category_t  k;

    if (c < 0x80) {
        return c >= '0' && c <= '9';
    }
    k = utf8proc_category((utf8proc_int32_t) c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL
           || k == UTF8PROC_CATEGORY_NO;
}

/* Alphabetic is approximated by the L* categories, Nl and Mc. */
int
kvr_tok_is_alnum(uint32_t c)
{
    utf8proc_category_t  k;

    if (c < 0x80) {
        return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
    }
    k = utf8proc_category((utf8proc_int32_t) c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO)
           || k == UTF8PROC_CATEGORY_MC || kvr_tok_is_numeric(c);
}

int
kvr_tok_is_punct(uint32_t c)
{
    utf8proc_category_t  k;

    if (c < 0x80) {
        return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40)
               || (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
    }
    k = utf8proc_category((utf8proc_int32_t) c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

/* bytes_to_unicode() of GPT-2. */
const uint16_t kvr_tok_byte_char[256] = {
#define R4(b) b, b + 1, b + 2, b + 3
#define R16(b) R4(b), R4(b + 4), R4(b + 8), R4(b + 12)
    /* 0x00-0x20 -> 256.. 288 */
    R16(256), R16(272), 288,
    /* 0x21-0x7E themselves */
    R4(0x21), R4(0x25), R4(0x29), R4(0x2D), R4(0x31), R4(0x35), R4(0x39),
    R4(0x3D), R4(0x41), R4(0x45), R4(0x49), R4(0x4D), R4(0x51), R4(0x55),
    R4(0x59), R4(0x5D), R4(0x61), R4(0x65), R4(0x69), R4(0x6D), R4(0x71),
    R4(0x75), R4(0x79), 0x7D, 0x7E,
    /* 0x7F-0xA0 -> 289..322 */
    R16(289), R16(305), 321, 322,
    /* 0xA1-0xAC themselves */
    R4(0xA1), R4(0xA5), R4(0xA9),
    /* 0xAD -> 323 */
    323,
    /* 0xAE-0xFF themselves */
    0xAE, 0xAF, R16(0xB0), R16(0xC0), R16(0xD0), R16(0xE0), R16(0xF0)
#undef R16
#undef R4
};

static int16_t         char_byte[324];
static pthread_once_t  char_byte_once = PTHREAD_ONCE_INIT;

static void
char_byte_init(void)
{
    int  i;

    for (i = 0; i < 324; i++) {
        char_byte[i] = -1;
    }
    for (i = 0; i < 256; i++) {
        char_byte[kvr_tok_byte_char[i]] = (int16_t) i;
    }
}

int
kvr_tok_char_byte(uint32_t c)
{
    pthread_once(&char_byte_once, char_byte_init);
    return c < 324 ? char_byte[c] : -1;
}
