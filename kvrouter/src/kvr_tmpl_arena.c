/*
 * kvrouter: chat templates, the arena. A compiled template keeps its AST
 * in one; each render allocates its values in a fresh one, freed at once.
 */
#include <stdlib.h>
#include <string.h>

#include "kvr_tmpl_int.h"

#define KVR_TMPL_CHUNK  (64u * 1024)

struct kvr_tmpl_chunk_s {
    kvr_tmpl_chunk_t  *next;
    size_t             used;
    size_t             size;
    max_align_t        data[];
};

void *
kvr_tmpl_alloc(kvr_tmpl_arena_t *a, size_t n)
{
    kvr_tmpl_chunk_t  *ch;
    size_t             size;
    void              *p;

    n = (n + 15) & ~(size_t) 15;
    if (n == 0) {
        n = 16;
    }
    ch = a->head;
    if (ch == NULL || ch->size - ch->used < n) {
        size = n > KVR_TMPL_CHUNK / 4 ? n : KVR_TMPL_CHUNK;
        if (size > (size_t) -1 / 2
            || (a->limit && a->total + size > a->limit))
        {
            a->over = 1;
            return NULL;
        }
        ch = malloc(sizeof(*ch) + size);
        if (ch == NULL) {
            return NULL;
        }
        a->total += size;
        ch->used = 0;
        ch->size = size;
        if (size == KVR_TMPL_CHUNK || a->head == NULL) {
            ch->next = a->head;
            a->head = ch;
        } else {
            /* a big block goes behind the current chunk, which stays open */
            ch->next = a->head->next;
            a->head->next = ch;
        }
    }
    p = (char *) ch->data + ch->used;
    ch->used += n;
    memset(p, 0, n);
    return p;
}

char *
kvr_tmpl_strdup(kvr_tmpl_arena_t *a, const char *s, size_t n)
{
    char  *p;

    p = kvr_tmpl_alloc(a, n + 1);
    if (p == NULL) {
        return NULL;
    }
    if (n) {
        memcpy(p, s, n);
    }
    p[n] = '\0';
    return p;
}

void
kvr_tmpl_arena_free(kvr_tmpl_arena_t *a)
{
    kvr_tmpl_chunk_t  *ch, *next;

    for (ch = a->head; ch != NULL; ch = next) {
        next = ch->next;
        free(ch);
    }
    a->head = NULL;
    a->total = 0;
}
