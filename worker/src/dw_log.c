/*
 * dynamo-worker: leveled logging (see dw_log.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dw_log.h"

static const char *const dw_log_names[] = { "error", "warn", "info", "debug" };

static volatile dw_log_level_t  dw_log_level = DW_LOG_INFO;

int
dw_log_level_parse(const char *name, dw_log_level_t *lvl)
{
    int  i;

    for (i = 0; i <= DW_LOG_DEBUG; i++) {
        if (strcmp(name, dw_log_names[i]) == 0) {
            *lvl = (dw_log_level_t) i;
            return 0;
        }
    }
    return -1;
}

void
dw_log_set_level(dw_log_level_t lvl)
{
    dw_log_level = lvl;
}

int
dw_log_enabled(dw_log_level_t lvl)
{
    return lvl <= dw_log_level;
}

void
dw_log(dw_log_level_t lvl, const char *fmt, ...)
{
    char     line[1024];
    int      n;
    va_list  ap;

    if (!dw_log_enabled(lvl)) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    /* one call, so lines from two threads do not interleave */
    fprintf(stderr, "dynamo-worker: [%s] %s\n", dw_log_names[lvl], line);
}
