#ifndef DB_TRACE_INT_H
#define DB_TRACE_INT_H

/* A map from 64-bit keys to 64-bit values (open addressing), for hash id
 * sets (analyze) and block-key to hash-id numbering (synthesize). */

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t  *keys;
    uint64_t  *vals;
    uint8_t   *used;
    size_t     cap;     /* a power of two */
    size_t     n;
} db_u64map_t;

void db_u64map_free(db_u64map_t *m);
/* The value of key, or NULL. */
uint64_t *db_u64map_get(const db_u64map_t *m, uint64_t key);
/* Sets key (new keys get val; *added says whether it was new); -1 OOM. */
int db_u64map_put(db_u64map_t *m, uint64_t key, uint64_t val, int *added);

#endif
