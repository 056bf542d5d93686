/* stub: replaced by its owner */
#include "db_dataset.h"
#include <stdio.h>
void db_dataset_init(db_dataset_t *ds) { }
void db_dataset_free(db_dataset_t *ds) { }
db_request_t *db_dataset_push(db_dataset_t *ds) { return NULL; }
int db_random_build(const kvr_tokenizer_t *tok, const db_random_conf_t *c,
    db_dataset_t *out, char *err, size_t errlen) { return -1; }
int db_sessions_build(const kvr_tokenizer_t *tok, const db_sessions_conf_t *c,
    db_dataset_t *out, char *err, size_t errlen) { return -1; }
