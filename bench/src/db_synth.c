/* stub: replaced by its owner */
#include "db_trace.h"
#include "db_cmd.h"
#include <stdio.h>
int db_synth_write(const db_synth_conf_t *c, FILE *out, double *achieved_hit,
    char *err, size_t errlen) { return -1; }
void db_trace_analyze(const db_trace_t *tr, db_analysis_t *a) { }
void db_analysis_print(const db_analysis_t *a, FILE *out) { }
int db_analysis_json(const db_analysis_t *a, FILE *out) { return -1; }
int db_cmd_synthesize(int argc, char **argv) { return 2; }
int db_cmd_analyze(int argc, char **argv) { return 2; }
