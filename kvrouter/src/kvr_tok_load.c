/*
 * kvrouter tokenizer: loading tokenizer.json (model, vocabulary, merges,
 * added tokens) and tokenizer_config.json; free. Accessors are in
 * kvr_tok_api.c, the pipeline components' loaders in kvr_tok_load_comp.c.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kvr_tok_int.h"
#include "kvr_tok_json_int.h"
#include "kvr_tok_load_int.h"

/* Records the token string of an id (the first one set wins, unless over). */
static int
set_token(kvr_tokenizer_t *t, uint32_t id, const char *s, size_t len,
    int over)
{
    if (id >= t->ntok || len > UINT32_MAX || t->arena.len > UINT32_MAX - len) {
        return KVR_ERR_INVAL;
    }
    if ((t->tok_flags[id] & 1) && !over) {
        return KVR_OK;
    }
    t->tok_off[id] = (uint32_t) t->arena.len;
    t->tok_len[id] = (uint32_t) len;
    t->tok_flags[id] |= 1;
    return kvr_buf_append(&t->arena, s, len);
}

/* Maps a byte-level token string to raw bytes; -1 if not in the alphabet. */
static int
to_bytes(const char *s, size_t len, char *out, size_t *olen)
{
    size_t    i = 0, cl, n = 0;
    uint32_t  c;
    int       b;

    while (i < len) {
        c = kvr_tok_utf8_dec((const unsigned char *) s + i, len - i, &cl);
        b = kvr_tok_char_byte(c);
        if (b < 0) {
            return -1;
        }
        out[n++] = (char) b;
        i += cl;
    }
    *olen = n;
    return 0;
}

static int
vocab_put(void *arg, const char *k, size_t klen, uint32_t id)
{
    kvr_tokenizer_t  *t = arg;
    char              tmp[1024];
    size_t            blen;

    if ((size_t) id + 1 > t->ntok) {
        t->ntok = (size_t) id + 1;
    }
    if (kvr_tok_smap_put(&t->vocab, k, klen, id) != KVR_OK) {
        return KVR_ERR_NOMEM;
    }
    /* byte-level: also by raw bytes (strings outside the alphabet are
     * never produced from bytes; they stay decode-only) */
    if (t->byte_level && klen <= sizeof(tmp) && to_bytes(k, klen, tmp, &blen) == 0
        && kvr_tok_smap_put(&t->bvocab, tmp, blen, id) != KVR_OK)
    {
        return KVR_ERR_NOMEM;
    }
    return KVR_OK;
}

/* Records each char c with "c U+2581" (c != U+2581) in a merge result. */
static void
note_cut_blockers(kvr_tokenizer_t *t, const char *s, size_t len)
{
    const char  *q;
    size_t       i, j, cl;
    uint32_t     c;

    if (t->byte_level || t->sp_nblock > KVR_TOK_SP_BLOCK) {
        return;
    }
    for (i = 1; i + 3 <= len; i = (size_t) (q - s) + 3) {
        q = memmem(s + i, len - i, "\xE2\x96\x81", 3);
        if (q == NULL) {
            return;
        }
        j = (size_t) (q - s) - 1;
        while (j > 0 && ((unsigned char) s[j] & 0xC0) == 0x80) {
            j--;
        }
        c = kvr_tok_utf8_dec((const unsigned char *) s + j, (size_t) (q - s) - j, &cl);
        if (c == 0x2581) {
            continue;
        }
        for (j = 0; j < t->sp_nblock && t->sp_block[j] != c; j++) {
        }
        if (j == t->sp_nblock) {
            if (t->sp_nblock == KVR_TOK_SP_BLOCK) {
                t->sp_nblock++;     /* too many: never cut */
                return;
            }
            t->sp_block[t->sp_nblock++] = c;
        }
    }
}

typedef struct {
    kvr_tokenizer_t  *t;
    kvr_buf_t         buf;
    size_t            bad;      /* rank of a merge not in the vocab + 1 */
} merge_arg_t;

#define PREFETCH(p)  __builtin_prefetch((p), 0, 1)

/*
 * A batch of merges: the vocabulary lookups (three per merge: left, right,
 * merged) are random accesses into tables far larger than the cache, so
 * they go in phases (hash and prefetch slots, then entries, then keys,
 * then compare), letting a batch's misses overlap.
 */
static int
merge_batch(void *arg, const char *text, const kvr_tok_merge_t *mg, size_t n,
    size_t rank0)
{
    merge_arg_t           *m = arg;
    kvr_tokenizer_t       *t = m->t;
    const kvr_tok_smap_t  *v = &t->vocab;
    const char            *key[3 * KVR_TOK_MERGE_BATCH];
    size_t                 klen[3 * KVR_TOK_MERGE_BATCH], i, k;
    uint64_t               h[3 * KVR_TOK_MERGE_BATCH];
    uint32_t               id[3 * KVR_TOK_MERGE_BATCH];
    size_t                 abo[KVR_TOK_MERGE_BATCH];
    uint64_t               sl;

    kvr_buf_reset(&m->buf);
    for (i = 0; i < n; i++) {
        abo[i] = m->buf.len;
        if (kvr_buf_append(&m->buf, text + mg[i].a, mg[i].alen) != KVR_OK
            || kvr_buf_append(&m->buf, text + mg[i].b, mg[i].blen) != KVR_OK)
        {
            return KVR_ERR_NOMEM;
        }
    }
    for (i = 0; i < n; i++) {
        key[3 * i] = text + mg[i].a;
        klen[3 * i] = mg[i].alen;
        key[3 * i + 1] = text + mg[i].b;
        klen[3 * i + 1] = mg[i].blen;
        key[3 * i + 2] = m->buf.data + abo[i];
        klen[3 * i + 2] = mg[i].alen + mg[i].blen;
        note_cut_blockers(t, key[3 * i + 2], klen[3 * i + 2]);
    }
    for (k = 0; k < 3 * n; k++) {
        h[k] = kvr_tok_smap_hash(key[k], klen[k]);
        PREFETCH(&v->slots[h[k] & v->mask]);
    }
    for (k = 0; k < 3 * n; k++) {
        sl = v->slots[h[k] & v->mask];
        if (sl != 0) {
            PREFETCH(&v->ents[(uint32_t) sl - 1]);
        }
    }
    for (k = 0; k < 3 * n; k++) {
        sl = v->slots[h[k] & v->mask];
        if (sl != 0) {
            PREFETCH(v->keys.data + v->ents[(uint32_t) sl - 1].off);
        }
    }
    for (k = 0; k < 3 * n; k++) {
        id[k] = kvr_tok_smap_get_h(v, key[k], klen[k], h[k]);
    }
    for (i = 0; i < n; i++) {
        if (id[3 * i] == KVR_TOK_NONE || id[3 * i + 1] == KVR_TOK_NONE
            || id[3 * i + 2] == KVR_TOK_NONE || rank0 + i >= UINT32_MAX)
        {
            m->bad = rank0 + i + 1;
            return KVR_ERR_INVAL;
        }
        PREFETCH(&t->merges.keys[kvr_tok_pmap_slot((uint64_t) id[3 * i] << 32
                                                   | id[3 * i + 1], t->merges.mask)]);
    }
    for (i = 0; i < n; i++) {
        if (kvr_tok_pmap_put(&t->merges, id[3 * i], id[3 * i + 1],
                             (uint32_t) (rank0 + i), id[3 * i + 2]) != KVR_OK)
        {
            return KVR_ERR_NOMEM;
        }
    }
    return KVR_OK;
}

static int
load_vocab_merges(kvr_tokenizer_t *t, const kvr_tok_json_parts_t *parts,
    char *err, size_t errlen)
{
    merge_arg_t  m;
    int          rc;

    /* ~12 bytes per vocab entry, ~14 per merge in typical files */
    if (kvr_tok_smap_init(&t->vocab, parts->vocab_len / 12) != KVR_OK
        || kvr_tok_smap_init(&t->bvocab, t->byte_level ? parts->vocab_len / 12
                                                       : 1) != KVR_OK
        || kvr_tok_pmap_init(&t->merges, parts->merges_len / 14) != KVR_OK)
    {
        return KVR_ERR_NOMEM;
    }
    rc = kvr_tok_json_vocab(parts->vocab, parts->vocab_len, vocab_put, t);
    if (rc != KVR_OK) {
        return rc == KVR_ERR_NOMEM ? rc
               : kvr_tok_fail(err, errlen, "tokenizer.json: malformed model.vocab");
    }
    memset(&m, 0, sizeof(m));
    m.t = t;
    rc = kvr_tok_json_merges(parts->merges, parts->merges_len, merge_batch, &m);
    kvr_buf_free(&m.buf);
    if (rc != KVR_OK && m.bad) {
        return kvr_tok_fail(err, errlen,
                            "tokenizer.json: merge %zu: token not in vocab", m.bad - 1);
    }
    if (rc != KVR_OK) {
        return rc == KVR_ERR_NOMEM ? rc
               : kvr_tok_fail(err, errlen, "tokenizer.json: malformed model.merges");
    }
    return KVR_OK;
}

static int
empty_or_null(json_t *o, const char *k)
{
    json_t  *v = json_object_get(o, k);

    return v == NULL || json_is_null(v)
           || (json_is_string(v) && json_string_length(v) == 0);
}

static int
load_model(kvr_tokenizer_t *t, json_t *m, const kvr_tok_json_parts_t *parts,
    char *err, size_t errlen)
{
    json_t      *ty = json_object_get(m, "type"), *v;
    char         name[8], ch;
    uint32_t     id;
    size_t       i;
    int          rc;

    if (json_is_string(ty) && strcmp(json_string_value(ty), "BPE") != 0) {
        return kvr_tok_fail(err, errlen, "tokenizer.json: unsupported model \"%s\"",
                            json_string_value(ty));
    }
    if (parts->vocab == NULL || parts->merges == NULL) {
        return kvr_tok_fail(err, errlen,
                            "tokenizer.json: model needs a vocab object and a merges array");
    }
    v = json_object_get(m, "dropout");
    if (v != NULL && !json_is_null(v)
        && !(json_is_number(v) && json_number_value(v) == 0.0))
    {
        return kvr_tok_fail(err, errlen, "tokenizer.json: unsupported BPE dropout");
    }
    if (!empty_or_null(m, "continuing_subword_prefix")
        || !empty_or_null(m, "end_of_word_suffix"))
    {
        return kvr_tok_fail(err, errlen,
                            "tokenizer.json: unsupported BPE continuing_subword_prefix/end_of_word_suffix");
    }
    t->fuse_unk = json_is_true(json_object_get(m, "fuse_unk"));
    t->byte_fallback = json_is_true(json_object_get(m, "byte_fallback"));
    t->ignore_merges = json_is_true(json_object_get(m, "ignore_merges"));
    rc = load_vocab_merges(t, parts, err, errlen);
    if (rc != KVR_OK) {
        return rc;
    }
    t->unk_id = KVR_TOK_NONE;
    v = json_object_get(m, "unk_token");
    if (json_is_string(v)) {
        t->unk_id = kvr_tok_smap_get(&t->vocab, json_string_value(v),
                                     json_string_length(v));
        if (t->unk_id == KVR_TOK_NONE) {
            return kvr_tok_fail(err, errlen, "tokenizer.json: unk_token not in vocab");
        }
    }
    /* cutting long words before U+2581 needs U+2581 in the vocabulary
     * (else it would be an unknown char, fused with its neighbours) */
    if (kvr_tok_smap_get(&t->vocab, "\xE2\x96\x81", 3) == KVR_TOK_NONE) {
        t->sp_nblock = KVR_TOK_SP_BLOCK + 1;
    }
    t->fb_all = 1;
    for (i = 0; i < 256; i++) {
        snprintf(name, sizeof(name), "<0x%02X>", (unsigned) i);
        t->fb_id[i] = kvr_tok_smap_get(&t->vocab, name, 6);
        if (t->fb_id[i] == KVR_TOK_NONE) {
            t->fb_all = 0;
        }
        ch = (char) i;
        t->byte_id[i] = t->byte_level ? kvr_tok_smap_get(&t->bvocab, &ch, 1)
                                      : KVR_TOK_NONE;
        if (i < 128) {
            name[0] = (char) i;
            id = kvr_tok_smap_get(&t->vocab, name, 1);
            t->ascii_id[i] = id;
        }
    }
    return KVR_OK;
}

/*
 * Added tokens get their ids as HF's AddedVocabulary::add_tokens gives
 * them (the "id" in the file is only checked there, with a warning): the
 * id of an earlier added token with the same content, else the vocab id,
 * else the next id after max(vocab entries - 1, largest added id). Real
 * files agree with this; a file that does not gets HF's ids, not its own.
 * Empty contents are ignored; a later entry with the same content takes
 * over the earlier one's options.
 */
static int
load_added(kvr_tokenizer_t *t, json_t *arr, char *err, size_t errlen)
{
    size_t            i, j, n = json_array_size(arr);
    json_t           *a, *c, *id;
    kvr_tok_added_t  *x, y;
    uint32_t          vid, next;
    int64_t           max = -1;

    if (n == 0) {
        return KVR_OK;
    }
    t->added = calloc(n, sizeof(*t->added));
    if (t->added == NULL) {
        return KVR_ERR_NOMEM;
    }
    for (i = 0; i < n; i++) {
        a = json_array_get(arr, i);
        c = json_object_get(a, "content");
        id = json_object_get(a, "id");
        if (!json_is_string(c) || !json_is_integer(id)
            || json_integer_value(id) < 0
            || json_integer_value(id) >= (json_int_t) (1u << 31))
        {
            return kvr_tok_fail(err, errlen, "tokenizer.json: bad added token %zu", i);
        }
        if (json_string_length(c) == 0) {
            continue;
        }
        memset(&y, 0, sizeof(y));
        y.len = (uint32_t) json_string_length(c);
        y.special = json_is_true(json_object_get(a, "special"));
        y.lstrip = json_is_true(json_object_get(a, "lstrip"));
        y.rstrip = json_is_true(json_object_get(a, "rstrip"));
        y.single_word = json_is_true(json_object_get(a, "single_word"));
        y.normalized = json_is_true(json_object_get(a, "normalized"));
        for (j = 0; j < t->nadded; j++) {
            if (t->added[j].len == y.len
                && memcmp(t->arena.data + t->added[j].off, json_string_value(c),
                          y.len) == 0)
            {
                break;
            }
        }
        if (j < t->nadded) {        /* same content: same id, new options */
            y.id = t->added[j].id;
            y.off = t->added[j].off;
            t->added[j] = y;
            continue;
        }
        vid = kvr_tok_smap_get(&t->vocab, json_string_value(c), y.len);
        if (vid != KVR_TOK_NONE) {
            y.id = vid;
        } else {
            next = (uint32_t) t->vocab.n;
            if (max >= (int64_t) t->vocab.n || t->vocab.n == 0) {
                next = (uint32_t) (max + 1);
            }
            y.id = next;
        }
        if ((int64_t) y.id > max) {
            max = y.id;
        }
        if (y.id >= 1u << 31) {
            return kvr_tok_fail(err, errlen, "tokenizer.json: too many added tokens");
        }
        if (y.id + 1 > t->ntok) {
            t->ntok = y.id + 1;
        }
        y.off = (uint32_t) t->arena.len;
        if (kvr_buf_append(&t->arena, json_string_value(c), y.len) != KVR_OK) {
            return KVR_ERR_NOMEM;
        }
        x = &t->added[t->nadded++];
        *x = y;
    }
    return KVR_OK;
}

/* id -> token table, specials, tries (needs the normalizers loaded). */
static int
finish(kvr_tokenizer_t *t)
{
    size_t            i;
    kvr_tok_added_t  *x;
    kvr_buf_t         nb = {0}, tmp = {0};
    const char       *k;
    int               rc = KVR_OK, cut = 0;

    t->tok_off = calloc(t->ntok + 1, sizeof(uint32_t));
    t->tok_len = calloc(t->ntok + 1, sizeof(uint32_t));
    t->tok_flags = calloc(t->ntok + 1, 1);
    if (t->tok_off == NULL || t->tok_len == NULL || t->tok_flags == NULL
        || kvr_tok_trie_init(&t->trie_raw) != KVR_OK
        || kvr_tok_trie_init(&t->trie_norm) != KVR_OK)
    {
        return KVR_ERR_NOMEM;
    }
    for (i = 0; i < t->nadded && rc == KVR_OK; i++) {
        x = &t->added[i];
        k = t->arena.data + x->off;
        if (x->special) {
            t->tok_flags[x->id] |= 2;
        }
        if (!x->normalized) {
            t->has_raw = 1;
            rc = kvr_tok_trie_add(&t->trie_raw, k, x->len, (int32_t) i);
            continue;
        }
        /* normalized tokens are matched on normalized text, as normalized */
        t->has_norm = 1;
        rc = kvr_tok_normalize(t, k, x->len, &nb, &tmp, NULL, &cut);
        if (rc == KVR_OK) {
            rc = kvr_tok_trie_add(&t->trie_norm, nb.data ? nb.data : "",
                                  nb.len, (int32_t) i);
        }
    }
    kvr_buf_free(&nb);
    kvr_buf_free(&tmp);
    if (rc != KVR_OK) {
        return rc;
    }
    /* added tokens first (they win in id_to_token), then the vocab */
    for (i = 0; i < t->nadded; i++) {
        x = &t->added[i];
        if (!(t->tok_flags[x->id] & 1)) {   /* the content is in the arena */
            t->tok_off[x->id] = x->off;
            t->tok_len[x->id] = x->len;
            t->tok_flags[x->id] |= 1;
        }
    }
    for (i = 0; i < t->vocab.n; i++) {
        rc = set_token(t, t->vocab.ents[i].val,
                       t->vocab.keys.data + t->vocab.ents[i].off,
                       t->vocab.ents[i].len, 0);
        if (rc != KVR_OK) {
            return rc;
        }
    }
    return KVR_OK;
}

/* tokenizer_config.json token: a string, {"content": s} or null. */
static char *
config_token(json_t *cfg, const char *k)
{
    json_t  *v = json_object_get(cfg, k);

    if (json_is_object(v)) {
        v = json_object_get(v, "content");
    }
    if (json_is_string(v)) {
        return kvr_tok_strndup(json_string_value(v), json_string_length(v));
    }
    return kvr_tok_strndup("", 0);
}

static int
load_config(kvr_tokenizer_t *t, const char *config, size_t len, char *err,
    size_t errlen)
{
    json_t        *cfg = NULL;
    json_error_t   je;
    int64_t        id;

    if (config != NULL) {
        cfg = json_loadb(config, len, JSON_DECODE_INT_AS_REAL, &je);
        if (cfg == NULL || !json_is_object(cfg)) {
            json_decref(cfg);
            return kvr_tok_fail(err, errlen,
                                "tokenizer_config.json: line %d: %s", je.line,
                                cfg ? "not an object" : je.text);
        }
    }
    t->bos = config_token(cfg, "bos_token");
    t->eos = config_token(cfg, "eos_token");
    json_decref(cfg);
    if (t->bos == NULL || t->eos == NULL) {
        return KVR_ERR_NOMEM;
    }
    id = kvr_tokenizer_token_to_id(t, t->bos, strlen(t->bos));
    t->bos_id = t->bos[0] ? id : -1;
    id = kvr_tokenizer_token_to_id(t, t->eos, strlen(t->eos));
    t->eos_id = t->eos[0] ? id : -1;
    return KVR_OK;
}

int
kvr_tokenizer_load(const char *json, size_t len, const char *config,
    size_t config_len, kvr_tokenizer_t **out, char *err, size_t errlen)
{
    kvr_tokenizer_t       *t;
    json_t                *root, *v;
    json_error_t           je;
    kvr_tok_json_parts_t   parts;
    char                  *rest;
    int                    rc;

    *out = NULL;
    if (err && errlen) {
        err[0] = '\0';
    }
    /* a document the fast scan cannot walk is left to jansson's message */
    rc = kvr_tok_json_split(json, len, &parts, &rest);
    if (rc == KVR_ERR_NOMEM) {
        return rc;
    }
    root = json_loadb(rc == KVR_OK ? rest : json, len, JSON_ALLOW_NUL, &je);
    free(rest);
    if (root != NULL && rc != KVR_OK) {
        json_decref(root);
        return kvr_tok_fail(err, errlen, "tokenizer.json: malformed JSON");
    }
    if (root == NULL) {
        return kvr_tok_fail(err, errlen, "tokenizer.json: line %d: %s", je.line,
                            je.text);
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        json_decref(root);
        return KVR_ERR_NOMEM;
    }
    {
        static uint64_t  serial;    /* 0 is never used: empty cache slots */

        t->serial = __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED);
    }
    rc = KVR_OK;
    if (!json_is_object(root) || !json_is_object(json_object_get(root, "model"))) {
        rc = kvr_tok_fail(err, errlen, "tokenizer.json: no model object");
        goto done;
    }
    v = json_object_get(root, "truncation");
    if (v != NULL && !json_is_null(v)) {
        rc = kvr_tok_fail(err, errlen, "tokenizer.json: unsupported truncation");
        goto done;
    }
    v = json_object_get(root, "padding");
    if (v != NULL && !json_is_null(v)) {
        rc = kvr_tok_fail(err, errlen, "tokenizer.json: unsupported padding");
        goto done;
    }
    v = json_object_get(root, "added_tokens");
    if (v != NULL && !json_is_array(v)) {
        rc = kvr_tok_fail(err, errlen, "tokenizer.json: added_tokens not an array");
        goto done;
    }
    if ((rc = kvr_tok_load_normalizer(t, json_object_get(root, "normalizer"),
                                      err, errlen)) != KVR_OK
        || (rc = kvr_tok_load_pretok(t, json_object_get(root, "pre_tokenizer"),
                                     err, errlen)) != KVR_OK
        || (rc = kvr_tok_load_post(t, json_object_get(root, "post_processor"),
                                   err, errlen)) != KVR_OK
        || (rc = kvr_tok_load_decoder(t, json_object_get(root, "decoder"),
                                      err, errlen)) != KVR_OK
        || (rc = load_model(t, json_object_get(root, "model"), &parts, err,
                              errlen))
               != KVR_OK
        || (rc = load_added(t, v, err, errlen)) != KVR_OK
        || (rc = finish(t)) != KVR_OK
        || (rc = load_config(t, config, config_len, err, errlen)) != KVR_OK)
    {
        goto done;
    }
done:
    json_decref(root);
    if (rc != KVR_OK) {
        if (rc == KVR_ERR_NOMEM && err && errlen && err[0] == '\0') {
            snprintf(err, errlen, "tokenizer.json: out of memory");
        }
        kvr_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return KVR_OK;
}

static int
read_file(const char *path, char **out, size_t *len)
{
    FILE    *f = fopen(path, "rb");
    char    *buf = NULL, *p;
    size_t   cap = 0, n = 0, r;

    if (f == NULL) {
        return -1;
    }
    for ( ;; ) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 20;
            p = realloc(buf, cap);
            if (p == NULL) {
                free(buf);
                fclose(f);
                return -2;
            }
            buf = p;
        }
        r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            break;
        }
    }
    if (ferror(f)) {
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    *out = buf;
    *len = n;
    return 0;
}

int
kvr_tokenizer_load_dir(const char *dir, kvr_tokenizer_t **out, char *err,
    size_t errlen)
{
    char    path[4096];
    char   *json = NULL, *cfg = NULL;
    size_t  jlen = 0, clen = 0;
    int     rc;

    *out = NULL;
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    rc = read_file(path, &json, &jlen);
    if (rc != 0) {
        if (rc == -2) {
            return KVR_ERR_NOMEM;
        }
        return kvr_tok_fail(err, errlen, "%s: cannot read", path);
    }
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    if (read_file(path, &cfg, &clen) != 0) {
        cfg = NULL;
    }
    rc = kvr_tokenizer_load(json, jlen, cfg, clen, out, err, errlen);
    free(json);
    free(cfg);
    return rc;
}

void
kvr_tokenizer_free(kvr_tokenizer_t *t)
{
    size_t  i;

    if (t == NULL) {
        return;
    }
    kvr_tok_smap_free(&t->vocab);
    kvr_tok_smap_free(&t->bvocab);
    kvr_tok_pmap_free(&t->merges);
    kvr_buf_free(&t->arena);
    free(t->tok_off);
    free(t->tok_len);
    free(t->tok_flags);
    free(t->added);
    kvr_tok_trie_free(&t->trie_raw);
    kvr_tok_trie_free(&t->trie_norm);
    for (i = 0; i < t->nnorms; i++) {
        free(t->norms[i].a);
        free(t->norms[i].b);
        pcre2_code_free(t->norms[i].re);
    }
    free(t->norms);
    for (i = 0; i < t->npres; i++) {
        free(t->pres[i].lit);
        pcre2_code_free(t->pres[i].re);
    }
    free(t->pres);
    for (i = 0; i < t->ntmpl; i++) {
        free(t->tmpl[i].ids);
    }
    free(t->tmpl);
    for (i = 0; i < t->ndecs; i++) {
        free(t->decs[i].a);
        free(t->decs[i].b);
    }
    free(t->decs);
    free(t->bos);
    free(t->eos);
    free(t);
}
