/* stub: replaced by its owner */
#include "db_report.h"
#include "db_cmd.h"
#include <stdio.h>
void db_report_print(const db_summary_t *s, FILE *out) { }
int db_report_json(const db_summary_t *s, FILE *out) { return -1; }
int db_report_csv(const db_summary_t *s, FILE *out, int header) { return -1; }
int db_report_jsonl(const db_run_out_t *run, FILE *out) { return -1; }
int db_summary_load(const char *json, size_t len, db_summary_t *s,
    char *err, size_t errlen) { return -1; }
int db_compare_print(const db_summary_t *s, size_t n, FILE *out) { return -1; }
void db_sweep_print(const db_summary_t *s, size_t n, FILE *out) { }
int db_sweep_json(const db_summary_t *s, size_t n, FILE *out) { return -1; }
int db_plot_cdf(const db_run_out_t *run, const char *prefix, char *err,
    size_t errlen) { return -1; }
int db_plot_sweep(const db_summary_t *s, size_t n, const char *prefix,
    char *err, size_t errlen) { return -1; }
int db_cmd_compare(int argc, char **argv) { return 2; }
