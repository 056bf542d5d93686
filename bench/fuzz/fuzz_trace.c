/*
 * The trace parser on arbitrary bytes: one line through
 * db_trace_parse_line, the whole input as a file through db_trace_load_fp
 * (fmemopen), then analyze and the hit tokens on what loaded. Errors are
 * fine; crashes, leaks and undefined behaviour are not.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "db_trace.h"
#include "db_trace_int.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    db_trace_rec_t  rec;
    db_trace_t      tr;
    db_analysis_t   a;
    char            err[512];
    uint64_t        hit;
    FILE           *fp;

    if (db_trace_parse_line((const char *) data, size, &rec, err,
                            sizeof(err)) == 0)
    {
        db_trace_rec_free(&rec);
    }
    if (size == 0) {
        return 0;
    }
    fp = fmemopen((void *) data, size, "r");
    if (fp == NULL) {
        return 0;
    }
    if (db_trace_load_fp(fp, "fuzz.jsonl", &tr, err, sizeof(err)) == 0) {
        db_trace_analyze(&tr, &a);
        (void) db_trace_hit_tokens(&tr, 1 + (int64_t) (size % 600), &hit);
        db_trace_free(&tr);
    }
    fclose(fp);
    return 0;
}
