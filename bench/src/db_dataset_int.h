#ifndef DB_DATASET_INT_H
#define DB_DATASET_INT_H

/* Helpers shared by the workload builders (random, sessions, traces,
 * synthesizer): seeded streams and ids-to-text. */

#include <stddef.h>
#include <stdint.h>

#include "db_words.h"
#include "kvr_tokenizer.h"

/* splitmix64: the next word of the stream whose state is *s. */
static inline uint64_t
db_splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A seed for the sub-stream b of the stream seeded with a. */
static inline uint64_t
db_seed_mix(uint64_t a, uint64_t b)
{
    uint64_t s = a ^ (b * 0xd6e8feb86659fd93ULL);

    (void) db_splitmix64(&s);
    return db_splitmix64(&s);
}

/* A uniform double in [0, 1). */
static inline double
db_unit(uint64_t *s)
{
    return (double) (db_splitmix64(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* A uniform integer in [lo, hi] (lo <= hi). */
static inline int64_t
db_uniform_int(uint64_t *s, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t) (hi - lo) + 1;

    return span == 0 ? (int64_t) db_splitmix64(s)
                     : lo + (int64_t) (db_splitmix64(s) % span);
}

/* decode(ids) without special tokens into a malloc'd NUL-terminated
 * string, through the words' texts when w is given and they cover ids;
 * -1 with a message on failure. */
int db_ids_text(const kvr_tokenizer_t *tok, const db_words_t *w,
    const uint32_t *ids, size_t n, char **out, char *err, size_t errlen);

/* How many ids encode(text, add special) adds (BOS/EOS): vLLM subtracts
 * them from the random dataset's input length. */
size_t db_special_count(const kvr_tokenizer_t *tok);

#endif
