/*
 * kvrouter: block hashing, bit-compatible with NVIDIA Dynamo's kv router
 * (see kvr_hash.h for the definition and kvrouter/README.md for sources).
 *
 * Hashes are defined over little-endian bytes. On little-endian hosts the
 * token array already is that byte string and is hashed in place; elsewhere
 * (or when built with -DKVR_HASH_PORTABLE, which the tests use to exercise
 * this path on x86) tokens are converted in small chunks and fed to the
 * streaming XXH3 API, which gives the same result as the one-shot call.
 */
#include <string.h>

#define XXH_STATIC_LINKING_ONLY   /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "kvr_hash.h"

#if !defined(KVR_HASH_PORTABLE) && defined(__BYTE_ORDER__) \
    && defined(__ORDER_LITTLE_ENDIAN__) \
    && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define KVR_HASH_NATIVE_LE  1
#else
#define KVR_HASH_NATIVE_LE  0
#endif

#define KVR_HASH_CHUNK  64        /* tokens converted per update call */

uint64_t
kvr_hash_seed(const char *lora_name)
{
    if (lora_name == NULL || lora_name[0] == '\0') {
        return KVR_HASH_SEED;
    }

    /* unsigned arithmetic: wraps mod 2^64 like Rust's wrapping_add */
    return KVR_HASH_SEED + (uint64_t) XXH3_64bits(lora_name, strlen(lora_name));
}

static void
put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) v;
    p[1] = (uint8_t) (v >> 8);
    p[2] = (uint8_t) (v >> 16);
    p[3] = (uint8_t) (v >> 24);
}

static void
put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t) v);
    put_le32(p + 4, (uint32_t) (v >> 32));
}

uint64_t
kvr_hash_local(const uint32_t *tokens, size_t block_size, uint64_t seed)
{
#if KVR_HASH_NATIVE_LE
    return XXH3_64bits_withSeed(tokens, block_size * sizeof(uint32_t), seed);
#else
    XXH3_state_t  st;
    uint8_t       buf[KVR_HASH_CHUNK * 4];
    size_t        i, n;

    /* a stack state must be initialised before a seeded reset */
    XXH3_INITSTATE(&st);
    XXH3_64bits_reset_withSeed(&st, seed);

    while (block_size > 0) {
        n = block_size < KVR_HASH_CHUNK ? block_size : KVR_HASH_CHUNK;
        for (i = 0; i < n; i++) {
            put_le32(buf + 4 * i, tokens[i]);
        }
        XXH3_64bits_update(&st, buf, 4 * n);
        tokens += n;
        block_size -= n;
    }

    return XXH3_64bits_digest(&st);
#endif
}

uint64_t
kvr_hash_seq(uint64_t parent_seq, uint64_t local)
{
    uint8_t  buf[16];

    put_le64(buf, parent_seq);
    put_le64(buf + 8, local);

    /* the chain always uses the base seed, whatever the LoRA */
    return XXH3_64bits_withSeed(buf, sizeof(buf), KVR_HASH_SEED);
}

size_t
kvr_hash_blocks(const uint32_t *tokens, size_t ntokens, size_t block_size,
    uint64_t seed, uint64_t *local, uint64_t *seq)
{
    size_t    i, n;
    uint64_t  l, s, prev;

    if (block_size == 0 || tokens == NULL) {
        return 0;
    }

    n = ntokens / block_size;
    prev = 0;

    for (i = 0; i < n; i++) {
        l = kvr_hash_local(tokens + i * block_size, block_size, seed);
        s = (i == 0) ? l : kvr_hash_seq(prev, l);

        if (local != NULL) {
            local[i] = l;
        }
        if (seq != NULL) {
            seq[i] = s;
        }
        prev = s;
    }

    return n;
}
