/* stub: replaced by its owner */
#include "db_trace.h"
#include <stdio.h>
int db_trace_parse_line(const char *line, size_t len, db_trace_rec_t *rec,
    char *err, size_t errlen) { return -1; }
int db_trace_load(const char *path, db_trace_t *tr, char *err, size_t errlen)
{ return -1; }
int db_trace_load_fp(FILE *fp, const char *name, db_trace_t *tr, char *err,
    size_t errlen) { return -1; }
void db_trace_free(db_trace_t *tr) { }
void db_trace_rec_free(db_trace_rec_t *rec) { }
void db_trace_block(const db_words_t *w, uint64_t seed, uint64_t hash_id,
    uint32_t *out, size_t block_size) { }
int db_trace_build(const kvr_tokenizer_t *tok, const db_trace_t *tr,
    const db_trace_conf_t *c, db_dataset_t *out, char *err, size_t errlen)
{ return -1; }
