/*
 * dynamo-worker: the loaders' error buffer (see dw_err.h).
 */
#include <stdarg.h>
#include <stdio.h>

#include "dw_err.h"

void
dw_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  ap;

    if (err == NULL || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
