/*
 * Test support: scratch directories and dynamo-mkmodel's path (see
 * dw_tsupport_tmp.h).
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>

#include "dw_tsupport_tmp.h"

int
dw_ts_tmpdir(char *dir, size_t n, const char *tag)
{
    if ((size_t) snprintf(dir, n, "/tmp/%s.XXXXXX", tag) >= n) {
        return -1;
    }
    return mkdtemp(dir) != NULL ? 0 : -1;
}

int
dw_ts_rmtree(const char *dir)
{
    char  cmd[4200];

    if ((size_t) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir)
        >= sizeof(cmd))
    {
        return -1;
    }
    return system(cmd) == 0 ? 0 : -1;
}

void
dw_ts_mkmodel_path(char *out, size_t n, const char *argv0)
{
    const char  *env = getenv("DW_MKMODEL");
    char         self[4096];

    if (env != NULL) {
        snprintf(out, n, "%s", env);
        return;
    }
    snprintf(self, sizeof(self), "%s", argv0);
    snprintf(out, n, "%s/../bin/dynamo-mkmodel", dirname(self));
}
