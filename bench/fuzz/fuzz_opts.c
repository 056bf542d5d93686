/*
 * libFuzzer target for the run options (db_opts.h): the input split at NUL
 * bytes into an argv, parsed; and the whole input as a --goodput spec.
 * No crash, no leak; what parses must hold the documented ranges.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_opts.h"

#define MAXARGS 32

static void
check(const db_opts_t *o)
{
    size_t  i;

    if (o->base_url == NULL || o->endpoint == NULL || o->result_dir == NULL
        || o->n_pcts == 0 || o->n_pcts > DB_PCT_MAX
        || o->n_sweep > DB_SWEEP_MAX || o->pct_metrics == 0
        || o->num_prompts < 1 || o->random.input_len < 1
        || o->random.output_len < 1 || o->random.prefix_len < 0
        || !(o->random.range_ratio >= 0 && o->random.range_ratio < 1)
        || !(o->request_rate >= 0) || !(o->burstiness > 0)
        || !(o->timeout_s > 0) || !(o->trace.speedup > 0)
        || o->trace.block_size < 1)
    {
        abort();
    }
    for (i = 0; i < o->n_pcts; i++) {
        if (!(o->pcts[i] > 0 && o->pcts[i] <= 100)) {
            abort();
        }
    }
    for (i = 0; i < o->n_sweep; i++) {
        if (o->sweep[i] < 1) {
            abort();
        }
    }
}

/* --help (or -h) prints the usage on stdout: keep the run quiet */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (freopen("/dev/null", "w", stdout) == NULL) {
        return 0;
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char       *buf, *argv[MAXARGS + 1], err[512];
    int         argc = 0, rc;
    size_t      i, start;
    db_opts_t   o;

    buf = malloc(size + 1);
    if (buf == NULL) {
        return 0;
    }
    memcpy(buf, data, size);
    buf[size] = '\0';

    argv[argc++] = (char *) "dynamo-bench";
    start = 0;
    for (i = 0; i <= size && argc < MAXARGS; i++) {
        if (buf[i] == '\0') {
            argv[argc++] = buf + start;
            start = i + 1;
        }
    }
    argv[argc] = NULL;
    db_opts_defaults(&o);
    err[0] = '\0';
    rc = db_opts_parse(&o, argc, argv, err, sizeof(err));
    if (rc == 0) {
        check(&o);
    } else if (rc == -1 && err[0] == '\0') {
        abort();            /* every refusal says why */
    } else if (rc != 1 && rc != -1) {
        abort();
    }
    db_opts_free(&o);

    db_opts_defaults(&o);
    if (db_goodput_parse(&o, buf, err, sizeof(err)) == 0) {
        if (o.goodput_ttft_ms < 0 && o.goodput_tpot_ms < 0
            && o.goodput_e2el_ms < 0)
        {
            abort();
        }
    }
    db_opts_free(&o);
    free(buf);
    return 0;
}
