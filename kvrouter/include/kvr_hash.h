/*
 * kvrouter: block hashing, bit-compatible with NVIDIA Dynamo.
 *
 *   local[i] = XXH3_64_withSeed(tokens[iB..iB+B) as LE u32 bytes, seed)
 *   seq[0]   = local[0]
 *   seq[i]   = XXH3_64_withSeed(LE64(seq[i-1]) || LE64(local[i]), 1337)
 *
 * seed is 1337, or 1337 + XXH3_64(lora_name) (wrapping) for a LoRA.
 * Only full blocks are hashed; the partial tail never is.
 */
#ifndef KVR_HASH_H
#define KVR_HASH_H

#include <stddef.h>
#include <stdint.h>

#define KVR_HASH_SEED  1337ULL

/* Seed for a LoRA adapter; NULL or "" gives KVR_HASH_SEED. */
uint64_t kvr_hash_seed(const char *lora_name);

uint64_t kvr_hash_local(const uint32_t *tokens, size_t block_size,
    uint64_t seed);

uint64_t kvr_hash_seq(uint64_t parent_seq, uint64_t local);

/*
 * Hashes every full block of tokens[0..ntokens). Writes n = ntokens /
 * block_size entries into local and seq (either may be NULL) and returns n.
 * block_size 0 returns 0.
 */
size_t kvr_hash_blocks(const uint32_t *tokens, size_t ntokens,
    size_t block_size, uint64_t seed, uint64_t *local, uint64_t *seq);

#endif
