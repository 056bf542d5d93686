/*
 * dynamo-worker: the caller-supplied error buffer of the loaders
 * (model directory, config.json, safetensors).
 */
#ifndef DW_ERR_H
#define DW_ERR_H

#include <stddef.h>

/* Formats into err (errlen bytes, always terminated); err may be NULL or
 * errlen 0, and then nothing is written. */
void dw_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* DW_ERR_H */
