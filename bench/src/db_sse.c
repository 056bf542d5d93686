/* stub: replaced by its owner */
#include "db_sse.h"
#include <stdio.h>
void db_sse_init(db_sse_t *p) { }
void db_sse_free(db_sse_t *p) { }
int db_sse_feed(db_sse_t *p, const char *buf, size_t n, db_sse_cb cb,
    void *ctx) { return -1; }
int db_chunk_parse(const char *data, size_t len, db_chunk_t *c, char *err,
    size_t errlen) { return -1; }
void db_chunk_free(db_chunk_t *c) { }
