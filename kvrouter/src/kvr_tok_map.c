/*
 * kvrouter tokenizer: hash maps (string -> id, id pair -> merge) and the
 * byte trie used to find added tokens.
 */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "kvr_tok_int.h"

static size_t
pow2_for(size_t expect)
{
    size_t  n = 16;

    while (n < expect * 2) {
        n <<= 1;
    }
    return n;
}

int
kvr_tok_smap_init(kvr_tok_smap_t *m, size_t expect)
{
    size_t  n = pow2_for(expect);

    memset(m, 0, sizeof(*m));
    m->slots = calloc(n, sizeof(uint64_t));
    if (m->slots == NULL) {
        return KVR_ERR_NOMEM;
    }
    m->mask = n - 1;
    return KVR_OK;
}

void
kvr_tok_smap_free(kvr_tok_smap_t *m)
{
    free(m->slots);
    free(m->ents);
    kvr_buf_free(&m->keys);
    memset(m, 0, sizeof(*m));
}

static int
smap_grow(kvr_tok_smap_t *m)
{
    size_t     n = (m->mask + 1) * 2, i, j;
    uint64_t  *s;

    s = calloc(n, sizeof(uint64_t));
    if (s == NULL) {
        return KVR_ERR_NOMEM;
    }
    for (i = 0; i <= m->mask; i++) {
        if (m->slots[i] == 0) {
            continue;
        }
        /* the hi 32 bits are the hash's top bits; re-derive the slot */
        {
            kvr_tok_ent_t  *e = &m->ents[(uint32_t) m->slots[i] - 1];
            uint64_t        h = XXH3_64bits(m->keys.data + e->off, e->len);

            j = (size_t) h & (n - 1);
            while (s[j] != 0) {
                j = (j + 1) & (n - 1);
            }
            s[j] = m->slots[i];
        }
    }
    free(m->slots);
    m->slots = s;
    m->mask = n - 1;
    return KVR_OK;
}

int
kvr_tok_smap_put(kvr_tok_smap_t *m, const char *k, size_t len, uint32_t val)
{
    uint64_t        h;
    size_t          i;
    kvr_tok_ent_t  *e;

    if (len > UINT32_MAX || m->keys.len > UINT32_MAX - len) {
        return KVR_ERR_NOMEM;
    }
    h = XXH3_64bits(k, len);
    for (i = (size_t) h & m->mask; m->slots[i] != 0; i = (i + 1) & m->mask) {
        e = &m->ents[(uint32_t) m->slots[i] - 1];
        if ((uint32_t) (m->slots[i] >> 32) == (uint32_t) (h >> 32)
            && e->len == len && memcmp(m->keys.data + e->off, k, len) == 0)
        {
            e->val = val;
            return KVR_OK;
        }
    }
    if ((m->n + 1) * 2 > m->mask + 1) {
        if (smap_grow(m) != KVR_OK) {
            return KVR_ERR_NOMEM;
        }
        return kvr_tok_smap_put(m, k, len, val);
    }
    if (m->n == m->cap) {
        size_t          cap = m->cap ? m->cap * 2 : 64;
        kvr_tok_ent_t  *p = realloc(m->ents, cap * sizeof(*p));

        if (p == NULL) {
            return KVR_ERR_NOMEM;
        }
        m->ents = p;
        m->cap = cap;
    }
    e = &m->ents[m->n];
    e->off = (uint32_t) m->keys.len;
    e->len = (uint32_t) len;
    e->val = val;
    if (kvr_buf_append(&m->keys, k, len) != KVR_OK) {
        return KVR_ERR_NOMEM;
    }
    m->n++;
    m->slots[i] = (h >> 32) << 32 | (uint64_t) m->n;
    return KVR_OK;
}

uint64_t
kvr_tok_smap_hash(const char *k, size_t len)
{
    return XXH3_64bits(k, len);
}

uint32_t
kvr_tok_smap_get(const kvr_tok_smap_t *m, const char *k, size_t len)
{
    return kvr_tok_smap_get_h(m, k, len, XXH3_64bits(k, len));
}

uint32_t
kvr_tok_smap_get_h(const kvr_tok_smap_t *m, const char *k, size_t len,
    uint64_t h)
{
    size_t                i;
    const kvr_tok_ent_t  *e;

    if (m->slots == NULL) {
        return KVR_TOK_NONE;
    }
    for (i = (size_t) h & m->mask; m->slots[i] != 0; i = (i + 1) & m->mask) {
        if ((uint32_t) (m->slots[i] >> 32) != (uint32_t) (h >> 32)) {
            continue;
        }
        e = &m->ents[(uint32_t) m->slots[i] - 1];
        if (e->len == len && memcmp(m->keys.data + e->off, k, len) == 0) {
            return e->val;
        }
    }
    return KVR_TOK_NONE;
}

int
kvr_tok_pmap_init(kvr_tok_pmap_t *m, size_t expect)
{
    size_t  n = pow2_for(expect);

    memset(m, 0, sizeof(*m));
    m->keys = malloc(n * sizeof(uint64_t));
    m->vals = malloc(n * sizeof(uint64_t));
    if (m->keys == NULL || m->vals == NULL) {
        free(m->keys);
        free(m->vals);
        return KVR_ERR_NOMEM;
    }
    memset(m->keys, 0xFF, n * sizeof(uint64_t));
    m->mask = n - 1;
    return KVR_OK;
}

void
kvr_tok_pmap_free(kvr_tok_pmap_t *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

static int
pmap_grow(kvr_tok_pmap_t *m)
{
    kvr_tok_pmap_t  g;
    size_t          i, j;

    if (kvr_tok_pmap_init(&g, m->mask + 1) != KVR_OK) {
        return KVR_ERR_NOMEM;
    }
    for (i = 0; i <= m->mask; i++) {
        if (m->keys[i] == UINT64_MAX) {
            continue;
        }
        j = kvr_tok_pmap_slot(m->keys[i], g.mask);
        while (g.keys[j] != UINT64_MAX) {
            j = (j + 1) & g.mask;
        }
        g.keys[j] = m->keys[i];
        g.vals[j] = m->vals[i];
    }
    g.n = m->n;
    kvr_tok_pmap_free(m);
    *m = g;
    return KVR_OK;
}

/* Keeps the first value put for a key (HF keeps the lowest merge rank). */
int
kvr_tok_pmap_put(kvr_tok_pmap_t *m, uint32_t a, uint32_t b, uint32_t rank,
    uint32_t id)
{
    uint64_t  key = (uint64_t) a << 32 | b;
    size_t    i;

    if ((m->n + 1) * 2 > m->mask + 1 && pmap_grow(m) != KVR_OK) {
        return KVR_ERR_NOMEM;
    }
    for (i = kvr_tok_pmap_slot(key, m->mask); m->keys[i] != UINT64_MAX;
         i = (i + 1) & m->mask)
    {
        if (m->keys[i] == key) {
            return KVR_OK;
        }
    }
    m->keys[i] = key;
    m->vals[i] = (uint64_t) rank << 32 | id;
    m->n++;
    return KVR_OK;
}

int
kvr_tok_trie_init(kvr_tok_trie_t *t)
{
    memset(t, 0, sizeof(*t));
    if (kvr_tok_pmap_init(&t->edges, 64) != KVR_OK) {
        return KVR_ERR_NOMEM;
    }
    t->cap = 64;
    t->term = malloc(t->cap * sizeof(int32_t));
    if (t->term == NULL) {
        kvr_tok_pmap_free(&t->edges);
        return KVR_ERR_NOMEM;
    }
    t->term[0] = -1;
    t->nnodes = 1;
    return KVR_OK;
}

void
kvr_tok_trie_free(kvr_tok_trie_t *t)
{
    kvr_tok_pmap_free(&t->edges);
    free(t->term);
    memset(t, 0, sizeof(*t));
}

/* An earlier token with the same content keeps its place. */
int
kvr_tok_trie_add(kvr_tok_trie_t *t, const char *s, size_t len, int32_t val)
{
    uint32_t  node = 0;
    uint64_t  v;
    size_t    i;

    if (len == 0) {
        return KVR_OK;
    }
    t->first[(unsigned char) s[0]] = 1;
    for (i = 0; i < len; i++) {
        if (kvr_tok_pmap_get(&t->edges, node, (unsigned char) s[i], &v)) {
            node = (uint32_t) v;
            continue;
        }
        if (t->nnodes == t->cap) {
            int32_t  *p = realloc(t->term, t->cap * 2 * sizeof(int32_t));

            if (p == NULL) {
                return KVR_ERR_NOMEM;
            }
            t->term = p;
            t->cap *= 2;
        }
        t->term[t->nnodes] = -1;
        if (kvr_tok_pmap_put(&t->edges, node, (unsigned char) s[i], 0,
                             (uint32_t) t->nnodes) != KVR_OK)
        {
            return KVR_ERR_NOMEM;
        }
        node = (uint32_t) t->nnodes++;
    }
    if (t->term[node] < 0) {
        t->term[node] = val;
    }
    return KVR_OK;
}

size_t
kvr_tok_trie_match(const kvr_tok_trie_t *t, const char *s, size_t len,
    int32_t *val)
{
    uint32_t  node = 0;
    uint64_t  v;
    size_t    i, best = 0;

    for (i = 0; i < len; i++) {
        if (!kvr_tok_pmap_get(&t->edges, node, (unsigned char) s[i], &v)) {
            break;
        }
        node = (uint32_t) v;
        if (t->term[node] >= 0) {
            best = i + 1;
            *val = t->term[node];
        }
    }
    return best;
}
