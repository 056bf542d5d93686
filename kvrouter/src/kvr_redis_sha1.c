/*
 * kvrouter: SHA1 (FIPS 180-4), only to name Lua scripts for EVALSHA the way
 * Redis does, so the publisher can send EVALSHA without a SCRIPT LOAD round
 * trip. Not used for anything security-related.
 */
#include <string.h>

#include "kvr_redis_int.h"

#define ROL(x, n)  (((x) << (n)) | ((x) >> (32 - (n))))

static void
sha1_block(uint32_t h[5], const uint8_t *p)
{
    uint32_t  w[80], a, b, c, d, e, f, k, t;
    int       i;

    for (i = 0; i < 16; i++) {
        w[i] = (uint32_t) p[4 * i] << 24 | (uint32_t) p[4 * i + 1] << 16
               | (uint32_t) p[4 * i + 2] << 8 | (uint32_t) p[4 * i + 3];
    }
    for (i = 16; i < 80; i++) {
        w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    }

    a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4];

    for (i = 0; i < 80; i++) {
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5a827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ed9eba1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8f1bbcdc;
        } else {
            f = b ^ c ^ d;
            k = 0xca62c1d6;
        }
        t = ROL(a, 5) + f + e + k + w[i];
        e = d; d = c; c = ROL(b, 30); b = a; a = t;
    }

    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

void
kvr_redis_sha1_hex(const void *data, size_t len, char out[41])
{
    static const char  hex[] = "0123456789abcdef";
    const uint8_t     *p = data;
    uint32_t           h[5] = { 0x67452301, 0xefcdab89, 0x98badcfe,
                                0x10325476, 0xc3d2e1f0 };
    uint8_t            tail[128];
    uint64_t           bits = (uint64_t) len * 8;
    size_t             rest, tlen, i;

    for (i = 0; i + 64 <= len; i += 64) {
        sha1_block(h, p + i);
    }

    rest = len - i;
    memset(tail, 0, sizeof(tail));
    if (rest) {
        memcpy(tail, p + i, rest);
    }
    tail[rest] = 0x80;
    tlen = rest + 1 + 8 <= 64 ? 64 : 128;
    for (i = 0; i < 8; i++) {
        tail[tlen - 1 - i] = (uint8_t) (bits >> (8 * i));
    }
    sha1_block(h, tail);
    if (tlen == 128) {
        sha1_block(h, tail + 64);
    }

    for (i = 0; i < 20; i++) {
        uint8_t  b = (uint8_t) (h[i / 4] >> (24 - 8 * (i % 4)));

        out[2 * i] = hex[b >> 4];
        out[2 * i + 1] = hex[b & 15];
    }
    out[40] = '\0';
}
