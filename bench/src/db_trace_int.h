#ifndef DB_TRACE_INT_H
#define DB_TRACE_INT_H

/* Trace internals shared by analyze, the dataset builder and the
 * synthesizer: a map from 64-bit keys to 64-bit values (open addressing),
 * for hash id sets (analyze) and block-key to hash-id numbering
 * (synthesize), and the records' timestamp order. */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "db_trace.h"

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

/* The records' indexes in timestamp order, ties (and a trace without
 * timestamps) in file order: malloc'd, NULL when out of memory. */
size_t *db_trace_order(const db_trace_t *tr);

/* The input tokens db_trace_analyze's hit blocks stand for with blocks of
 * bs tokens: each request's hits * bs, cut to its input_length (a last
 * partial block holds fewer). -1 when out of memory. */
int db_trace_hit_tokens(const db_trace_t *tr, int64_t bs,
    uint64_t *hit_tokens);

/* db_synth_write in two steps, so that a command opens its output only
 * once the trace exists (a refused configuration leaves the file alone):
 * the trace in memory (*hit its theoretical hit rate; -1 with a message),
 * then its JSONL (-1 on a write error). */
int db_synth_build(const db_synth_conf_t *c, db_trace_t *tr, double *hit,
    char *err, size_t errlen);
int db_synth_write_trace(const db_trace_t *tr, FILE *out);

#endif
