/* stub: replaced by its owner */
#include "db_run.h"
#include <stdio.h>
int db_run(const db_opts_t *o, const db_dataset_t *ds,
    const kvr_tokenizer_t *tok, size_t max_concurrency, db_run_out_t *out,
    char *err, size_t errlen)
{ snprintf(err, errlen, "not implemented"); return -1; }
void db_run_out_free(db_run_out_t *out) { }
double db_arrival_next(double rate, double burstiness, uint64_t *state)
{ return 0; }
