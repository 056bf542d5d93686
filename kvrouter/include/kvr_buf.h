/*
 * kvrouter: a growable byte buffer, for text the library produces
 * (decoded tokens, rendered templates). Zero-initialise, append, free.
 */
#ifndef KVR_BUF_H
#define KVR_BUF_H

#include <stddef.h>

typedef struct {
    char    *data;   /* NUL-terminated when len > 0 or after any append */
    size_t   len;
    size_t   cap;
} kvr_buf_t;

/* KVR_OK or KVR_ERR_NOMEM (the buffer is unchanged then). */
int kvr_buf_reserve(kvr_buf_t *b, size_t extra);
int kvr_buf_append(kvr_buf_t *b, const void *p, size_t n);
int kvr_buf_append_str(kvr_buf_t *b, const char *s);
void kvr_buf_reset(kvr_buf_t *b);   /* len = 0, keeps the memory */
void kvr_buf_free(kvr_buf_t *b);

#endif
