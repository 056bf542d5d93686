/*
 * kvrouter tokenizer: the BPE model on one pre-tokenized word.
 *
 * Merges are applied lowest rank first, ties to the leftmost pair: HF's
 * priority queue order. Short words use a linked list with a rank per pair
 * and a linear scan for the minimum; long words (sentencepiece-style
 * tokenizers have no pre-tokenizer, so a word can be a whole document) use
 * a binary heap of (rank, position) with lazy deletion. Both give HF's
 * result; the scan is faster up to a few dozen symbols.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "kvr_tok_int.h"

#define KVR_BPE_SCAN_MAX  48
#define NORANK            UINT32_MAX

static int
reserve(kvr_tok_ctx_t *c, size_t n)
{
    size_t  cap;
    void   *p;

    if (n <= c->bcap) {
        return KVR_OK;
    }
    cap = c->bcap ? c->bcap : 256;
    while (cap < n) {
        cap *= 2;
    }
#define RE(f, T) \
    p = realloc(c->f, cap * sizeof(T) * (sizeof(T) == 8 ? 3 : 1)); \
    if (p == NULL) { return KVR_ERR_NOMEM; } \
    c->f = p;
    RE(sym, uint32_t)
    RE(prev, int32_t)
    RE(next, int32_t)
    RE(rank, uint32_t)
    RE(heap, uint64_t)
#undef RE
    c->bcap = cap;
    return KVR_OK;
}

static inline uint32_t
pair_rank(const kvr_tokenizer_t *t, uint32_t a, uint32_t b, uint32_t *id)
{
    uint64_t  v;

    if (!kvr_tok_pmap_get(&t->merges, a, b, &v)) {
        return NORANK;
    }
    *id = (uint32_t) v;
    return (uint32_t) (v >> 32);
}

/* Initial symbols of a word; returns their count. */
static int
symbols(kvr_tok_ctx_t *c, const char *s, size_t len, size_t *np)
{
    const kvr_tokenizer_t  *t = c->t;
    const unsigned char    *u = (const unsigned char *) s;
    size_t                  i, n = 0, cl, k;
    uint32_t                id, unk = KVR_TOK_NONE;
    int                     ok;

    if (reserve(c, len + 1) != KVR_OK) {
        return KVR_ERR_NOMEM;
    }
    if (t->byte_level && t->unk_id == KVR_TOK_NONE) {
        for (i = 0; i < len; i++) {
            id = t->byte_id[u[i]];
            if (id != KVR_TOK_NONE) {       /* HF drops unknown chars */
                c->sym[n++] = id;
            }
        }
        *np = n;
        return KVR_OK;
    }
    for (i = 0; i < len; i += cl) {
        if (t->byte_level) {
            cl = 1;
            id = t->byte_id[u[i]];
        } else if (u[i] < 0x80) {
            cl = 1;
            id = t->ascii_id[u[i]];
        } else {
            cl = kvr_tok_utf8_len(u[i]);
            if (cl > len - i) {
                cl = len - i;
            }
            id = kvr_tok_smap_get(&t->vocab, s + i, cl);
        }
        if (id != KVR_TOK_NONE) {
            if (unk != KVR_TOK_NONE) {
                c->sym[n++] = unk;
                unk = KVR_TOK_NONE;
            }
            c->sym[n++] = id;
            continue;
        }
        if (t->byte_fallback) {
            ok = 1;
            for (k = 0; k < cl; k++) {
                if (t->fb_id[u[i + k]] == KVR_TOK_NONE) {
                    ok = 0;
                }
            }
            if (ok) {
                /* as HF: a pending unk is not flushed here */
                for (k = 0; k < cl; k++) {
                    c->sym[n++] = t->fb_id[u[i + k]];
                }
                continue;
            }
        }
        if (t->unk_id != KVR_TOK_NONE) {
            if (unk != KVR_TOK_NONE && !t->fuse_unk) {
                c->sym[n++] = unk;
            }
            unk = t->unk_id;
        }
    }
    if (unk != KVR_TOK_NONE) {
        c->sym[n++] = unk;
    }
    *np = n;
    return KVR_OK;
}

static void
merge_scan(kvr_tok_ctx_t *c, size_t n)
{
    const kvr_tokenizer_t  *t = c->t;
    uint32_t               *sym = c->sym, *rank = c->rank;
    uint32_t                best, nid[KVR_BPE_SCAN_MAX], id = 0;
    int32_t                 nx[KVR_BPE_SCAN_MAX], pv[KVR_BPE_SCAN_MAX];
    int32_t                 i, bi, j;

    for (i = 0; i < (int32_t) n; i++) {
        nx[i] = i + 1 < (int32_t) n ? i + 1 : -1;
        pv[i] = i - 1;
        rank[i] = nx[i] < 0 ? NORANK : pair_rank(t, sym[i], sym[i + 1], &nid[i]);
    }
    for ( ;; ) {
        best = NORANK;
        bi = -1;
        for (i = 0; i >= 0; i = nx[i]) {
            if (rank[i] < best) {
                best = rank[i];
                bi = i;
            }
        }
        if (bi < 0) {
            break;
        }
        j = nx[bi];
        sym[bi] = nid[bi];
        nx[bi] = nx[j];
        if (nx[j] >= 0) {
            pv[nx[j]] = bi;
        }
        rank[bi] = nx[bi] < 0 ? NORANK : pair_rank(t, sym[bi], sym[nx[bi]], &id);
        nid[bi] = id;
        if (pv[bi] >= 0) {
            rank[pv[bi]] = pair_rank(t, sym[pv[bi]], sym[bi], &id);
            nid[pv[bi]] = id;
        }
    }
    for (i = 0, j = 0; i >= 0; i = nx[i]) {
        sym[j++] = sym[i];
    }
    c->prev[0] = j;     /* count, read by the caller */
}

static inline void
heap_push(uint64_t *h, size_t *n, uint64_t v)
{
    size_t  i = (*n)++, p;

    while (i > 0) {
        p = (i - 1) / 2;
        if (h[p] <= v) {
            break;
        }
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static inline uint64_t
heap_pop(uint64_t *h, size_t *n)
{
    uint64_t  top = h[0], v = h[--(*n)];
    size_t    i = 0, k;

    for ( ;; ) {
        k = 2 * i + 1;
        if (k >= *n) {
            break;
        }
        if (k + 1 < *n && h[k + 1] < h[k]) {
            k++;
        }
        if (v <= h[k]) {
            break;
        }
        h[i] = h[k];
        i = k;
    }
    h[i] = v;
    return top;
}

static size_t
merge_heap(kvr_tok_ctx_t *c, size_t n)
{
    const kvr_tokenizer_t  *t = c->t;
    uint32_t               *sym = c->sym, *rank = c->rank, id = 0, r;
    int32_t                *nx = c->next, *pv = c->prev, i, j, p;
    uint64_t               *h = c->heap, top;
    size_t                  hn = 0, k;

    /* the merged id is looked up again on pop (the heap holds rank, pos) */
    for (i = 0; i < (int32_t) n; i++) {
        nx[i] = i + 1 < (int32_t) n ? i + 1 : -1;
        pv[i] = i - 1;
        rank[i] = nx[i] < 0 ? NORANK : pair_rank(t, sym[i], sym[i + 1], &id);
        if (rank[i] != NORANK) {
            heap_push(h, &hn, (uint64_t) rank[i] << 32 | (uint32_t) i);
        }
    }
    while (hn > 0) {
        top = heap_pop(h, &hn);
        i = (int32_t) (uint32_t) top;
        r = (uint32_t) (top >> 32);
        if (rank[i] != r) {
            continue;       /* stale: the pair changed or i was merged away */
        }
        j = nx[i];
        (void) pair_rank(t, sym[i], sym[j], &id);
        sym[i] = id;
        rank[j] = NORANK;
        nx[i] = nx[j];
        if (nx[j] >= 0) {
            pv[nx[j]] = i;
        }
        rank[i] = nx[i] < 0 ? NORANK : pair_rank(t, sym[i], sym[nx[i]], &id);
        if (rank[i] != NORANK) {
            heap_push(h, &hn, (uint64_t) rank[i] << 32 | (uint32_t) i);
        }
        p = pv[i];
        if (p >= 0) {
            rank[p] = pair_rank(t, sym[p], sym[i], &id);
            if (rank[p] != NORANK) {
                heap_push(h, &hn, (uint64_t) rank[p] << 32 | (uint32_t) p);
            }
        }
    }
    for (i = 0, k = 0; i >= 0; i = nx[i]) {
        sym[k++] = sym[i];
    }
    return k;
}

static int bpe_word(kvr_tok_ctx_t *c, const char *s, size_t len);

/* May the word be cut before the U+2581 at s[i] (see kvr_tok_int.h)? */
static int
cut_ok(const kvr_tokenizer_t *t, const char *s, size_t i)
{
    size_t    j = i - 1, cl, k;
    uint32_t  ch;

    while (j > 0 && ((unsigned char) s[j] & 0xC0) == 0x80) {
        j--;
    }
    ch = kvr_tok_utf8_dec((const unsigned char *) s + j, i - j, &cl);
    if (ch == 0x2581) {
        return 0;
    }
    for (k = 0; k < t->sp_nblock; k++) {
        if (t->sp_block[k] == ch) {
            return 0;
        }
    }
    return 1;
}

int
kvr_tok_bpe(kvr_tok_ctx_t *c, const char *s, size_t len)
{
    const kvr_tokenizer_t  *t = c->t;
    const char             *q;
    size_t                  i, start;
    uint32_t                id;
    int                     rc;

    if (len == 0) {
        return KVR_OK;
    }
    if (t->ignore_merges) {     /* on the whole word, as HF */
        id = kvr_tok_smap_get(t->byte_level ? &t->bvocab : &t->vocab, s, len);
        if (id != KVR_TOK_NONE) {
            return kvr_ids_push(c->out, id);
        }
    }
    if (t->byte_level || t->sp_nblock > KVR_TOK_SP_BLOCK || len <= KVR_BPE_SCAN_MAX) {
        return bpe_word(c, s, len);
    }
    start = 0;
    for (i = 1; i + 3 <= len; i = (size_t) (q - s) + 1) {
        q = memchr(s + i, 0xE2, len - i - 2);
        if (q == NULL) {
            break;
        }
        if (q[1] == '\x96' && q[2] == '\x81' && cut_ok(t, s, (size_t) (q - s))) {
            if ((rc = bpe_word(c, s + start, (size_t) (q - s) - start)) != KVR_OK) {
                return rc;
            }
            start = (size_t) (q - s);
        }
    }
    return bpe_word(c, s + start, len - start);
}

static int
bpe_word(kvr_tok_ctx_t *c, const char *s, size_t len)
{
    kvr_tok_cent_t  *e = NULL;
    uint64_t         h;
    size_t           n, i;
    int              rc;

    if (c->cache != NULL && len <= KVR_TOK_CACHE_KEY) {
        h = kvr_tok_smap_hash(s, len);
        e = &c->cache[h & (KVR_TOK_CACHE_SLOTS - 1)];
        if (e->serial == c->t->serial && e->hash == h && e->len == len
            && memcmp(e->key, s, len) == 0)
        {
            for (i = 0; i < e->nids; i++) {
                if ((rc = kvr_ids_push(c->out, e->ids[i])) != KVR_OK) {
                    return rc;
                }
            }
            return KVR_OK;
        }
        e->serial = 0;      /* filled below once the result is known */
        e->hash = h;
    }
    rc = symbols(c, s, len, &n);
    if (rc != KVR_OK) {
        return rc;
    }
    if (n >= 2 && n <= KVR_BPE_SCAN_MAX) {
        merge_scan(c, n);
        n = (size_t) c->prev[0];
    } else if (n > KVR_BPE_SCAN_MAX) {
        n = merge_heap(c, n);
    }
    if (e != NULL) {
        if (n <= KVR_TOK_CACHE_IDS) {
            e->serial = c->t->serial;
            e->len = (uint8_t) len;
            e->nids = (uint8_t) n;
            memcpy(e->key, s, len);
            memcpy(e->ids, c->sym, n * sizeof(uint32_t));
        } else {
            e->serial = 0;
        }
    }
    if (n == 0) {
        return KVR_OK;
    }
    if (c->out->n + n > c->out->cap) {
        for (i = 0; i < n; i++) {
            if (kvr_ids_push(c->out, c->sym[i]) != KVR_OK) {
                return KVR_ERR_NOMEM;
            }
        }
        return KVR_OK;
    }
    memcpy(c->out->ids + c->out->n, c->sym, n * sizeof(uint32_t));
    c->out->n += n;
    return KVR_OK;
}
