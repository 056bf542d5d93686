#include <stdlib.h>
#include <string.h>

#include "kvr_buf.h"
#include "kvr_err.h"

int
kvr_buf_reserve(kvr_buf_t *b, size_t extra)
{
    size_t  need, cap;
    char   *p;

    if (extra > (size_t) -1 - b->len - 1) {
        return KVR_ERR_NOMEM;
    }
    need = b->len + extra + 1;
    if (need <= b->cap) {
        return KVR_OK;
    }
    cap = b->cap ? b->cap : 64;
    while (cap < need) {
        cap = cap > ((size_t) -1) / 2 ? need : cap * 2;
    }
    p = realloc(b->data, cap);
    if (p == NULL) {
        return KVR_ERR_NOMEM;
    }
    b->data = p;
    b->cap = cap;
    return KVR_OK;
}

int
kvr_buf_append(kvr_buf_t *b, const void *p, size_t n)
{
    if (kvr_buf_reserve(b, n) != KVR_OK) {
        return KVR_ERR_NOMEM;
    }
    if (n) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return KVR_OK;
}

int
kvr_buf_append_str(kvr_buf_t *b, const char *s)
{
    return kvr_buf_append(b, s, strlen(s));
}

void
kvr_buf_reset(kvr_buf_t *b)
{
    b->len = 0;
    if (b->data) {
        b->data[0] = '\0';
    }
}

void
kvr_buf_free(kvr_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
