/*
 * Test support for tests that generate models with dynamo-mkmodel into a
 * scratch directory.
 */
#ifndef DW_TSUPPORT_TMP_H
#define DW_TSUPPORT_TMP_H

#include <stddef.h>

/* Creates a fresh /tmp/<tag>.XXXXXX; its path in dir[n]. 0 or -1. */
int dw_ts_tmpdir(char *dir, size_t n, const char *tag);

/* Removes dir and everything below it. 0 or -1. */
int dw_ts_rmtree(const char *dir);

/* The dynamo-mkmodel to run, in out[n]: $DW_MKMODEL when set, else
 * ../bin/dynamo-mkmodel beside the directory of argv0 (the test binary
 * in <build>/wtest/). */
void dw_ts_mkmodel_path(char *out, size_t n, const char *argv0);

#endif
