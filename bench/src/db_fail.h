#ifndef DB_FAIL_H
#define DB_FAIL_H

/* The one error formatter of the 0 / -1 convention: writes the message
 * into err (when there is room) and returns -1, so that a refusal reads
 * `return db_fail(err, errlen, "--%s: ...", flag);`. */

#include <stddef.h>

int db_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
