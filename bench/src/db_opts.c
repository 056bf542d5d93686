/* stub: replaced by its owner */
#include "db_opts.h"
#include <stdio.h>
void db_opts_defaults(db_opts_t *o) { }
void db_opts_free(db_opts_t *o) { }
int db_opts_parse(db_opts_t *o, int argc, char **argv, char *err,
    size_t errlen) { return -1; }
int db_goodput_parse(db_opts_t *o, const char *spec, char *err,
    size_t errlen) { return -1; }
