/*
 * kvrouter tokenizer: internal layout shared by the kvr_tok*.c files.
 *
 * Pipeline (HF tokenizers semantics):
 *   sanitize UTF-8 -> split on non-normalized added tokens (raw text)
 *   -> per text piece: normalizers -> split on normalized added tokens
 *   -> pre-tokenizers (a chain of stages, each calling the next per split)
 *   -> BPE -> post-processor (template).
 *
 * Byte-level models: the ByteLevel pre-tokenizer maps bytes to printable
 * characters and the vocabulary holds the mapped strings. We keep a second
 * map keyed by the raw bytes and run BPE on raw bytes, which is the same
 * computation without the mapping.
 */
#ifndef KVR_TOK_INT_H
#define KVR_TOK_INT_H

#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "kvr_buf.h"
#include "kvr_err.h"
#include "kvr_tokenizer.h"

#define KVR_TOK_NONE      UINT32_MAX
#define KVR_TOK_SP_BLOCK  32

/* ---- string -> u32 map (open addressing) ---- */

typedef struct {
    uint32_t   off;
    uint32_t   len;
    uint32_t   val;
} kvr_tok_ent_t;

typedef struct {
    uint64_t       *slots;    /* hi 32: hash bits, lo 32: entry index + 1 */
    size_t          mask;
    kvr_tok_ent_t  *ents;
    size_t          n;
    size_t          cap;
    kvr_buf_t       keys;     /* key bytes */
} kvr_tok_smap_t;

int kvr_tok_smap_init(kvr_tok_smap_t *m, size_t expect);
void kvr_tok_smap_free(kvr_tok_smap_t *m);
/* Inserts or overwrites. */
int kvr_tok_smap_put(kvr_tok_smap_t *m, const char *k, size_t len,
    uint32_t val);
/* Value or KVR_TOK_NONE. */
uint32_t kvr_tok_smap_get(const kvr_tok_smap_t *m, const char *k, size_t len);
/* The same with the key's hash already computed (kvr_tok_smap_hash). */
uint64_t kvr_tok_smap_hash(const char *k, size_t len);
uint32_t kvr_tok_smap_get_h(const kvr_tok_smap_t *m, const char *k,
    size_t len, uint64_t h);

/* ---- (u32, u32) -> (rank, id) map ---- */

typedef struct {
    uint64_t   *keys;     /* UINT64_MAX = empty */
    uint64_t   *vals;     /* rank << 32 | merged id */
    size_t      mask;
    size_t      n;
} kvr_tok_pmap_t;

int kvr_tok_pmap_init(kvr_tok_pmap_t *m, size_t expect);
void kvr_tok_pmap_free(kvr_tok_pmap_t *m);
int kvr_tok_pmap_put(kvr_tok_pmap_t *m, uint32_t a, uint32_t b, uint32_t rank,
    uint32_t id);

/* Most lookups are misses (no merge for the pair): a weak mix would make
 * clusters that misses walk to the end of, so the full splitmix finalizer. */
static inline size_t
kvr_tok_pmap_slot(uint64_t key, size_t mask)
{
    key ^= key >> 30;
    key *= 0xBF58476D1CE4E5B9ull;
    key ^= key >> 27;
    key *= 0x94D049BB133111EBull;
    key ^= key >> 31;
    return (size_t) key & mask;
}

/* Returns 1 and sets *val when present. */
static inline int
kvr_tok_pmap_get(const kvr_tok_pmap_t *m, uint32_t a, uint32_t b,
    uint64_t *val)
{
    uint64_t  key = (uint64_t) a << 32 | b;
    size_t    i = kvr_tok_pmap_slot(key, m->mask);

    for ( ;; ) {
        if (m->keys[i] == key) {
            *val = m->vals[i];
            return 1;
        }
        if (m->keys[i] == UINT64_MAX) {
            return 0;
        }
        i = (i + 1) & m->mask;
    }
}

/* ---- byte trie for added tokens (leftmost-longest) ---- */

typedef struct {
    kvr_tok_pmap_t   edges;     /* (node, byte) -> (0, child) */
    int32_t         *term;      /* node -> added token index or -1 */
    size_t           nnodes;
    size_t           cap;
    uint8_t          first[256];
} kvr_tok_trie_t;

int kvr_tok_trie_init(kvr_tok_trie_t *t);
void kvr_tok_trie_free(kvr_tok_trie_t *t);
int kvr_tok_trie_add(kvr_tok_trie_t *t, const char *s, size_t len,
    int32_t val);
/* Longest match starting at s[0]: its length (0: none), *val its value. */
size_t kvr_tok_trie_match(const kvr_tok_trie_t *t, const char *s, size_t len,
    int32_t *val);

/* ---- unicode helpers (kvr_tok_unicode.c) ---- */

/* Decodes one char of valid UTF-8 at s (n > 0 bytes left); *cl its length. */
static inline uint32_t
kvr_tok_utf8_dec(const unsigned char *s, size_t n, size_t *cl)
{
    uint32_t  c = s[0];

    if (c < 0x80 || n < 2) {
        *cl = 1;
        return c;
    }
    if (c < 0xE0) {
        *cl = 2;
        return (c & 0x1F) << 6 | (s[1] & 0x3F);
    }
    if (c < 0xF0 || n < 4) {
        *cl = 3;
        return (c & 0x0F) << 12 | (s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    }
    *cl = 4;
    return (c & 0x07) << 18 | (s[1] & 0x3F) << 12 | (s[2] & 0x3F) << 6
           | (s[3] & 0x3F);
}

static inline size_t
kvr_tok_utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

size_t kvr_tok_utf8_enc(uint32_t c, char *out);
/* Length of the longest valid UTF-8 prefix. */
size_t kvr_tok_utf8_valid(const char *s, size_t len);
/*
 * Appends s to out, replacing each maximal invalid subsequence with U+FFFD
 * (the rule of Rust's String::from_utf8_lossy and Python's "replace").
 */
int kvr_tok_utf8_lossy(kvr_buf_t *out, const char *s, size_t len);
int kvr_tok_is_whitespace(uint32_t c);     /* Rust char::is_whitespace */
int kvr_tok_is_alnum(uint32_t c);          /* Rust char::is_alphanumeric */
int kvr_tok_is_numeric(uint32_t c);        /* Rust char::is_numeric */
int kvr_tok_is_punct(uint32_t c);          /* HF is_punc */

/* GPT-2 byte <-> char alphabet. */
extern const uint16_t kvr_tok_byte_char[256];
/* char (< 324) -> byte, or -1. */
int kvr_tok_char_byte(uint32_t c);

/* ---- components ---- */

enum {
    KVR_NORM_PREPEND, KVR_NORM_REPLACE, KVR_NORM_NFC, KVR_NORM_NFKC,
    KVR_NORM_NFD, KVR_NORM_NFKD, KVR_NORM_LOWER, KVR_NORM_STRIP
};

typedef struct {
    int           type;
    char         *a;        /* Prepend text, Replace literal pattern */
    size_t        alen;
    char         *b;        /* Replace content */
    size_t        blen;
    pcre2_code   *re;       /* Replace regex pattern */
    int           left;
    int           right;
} kvr_tok_norm_t;

enum {
    KVR_SPLIT_REMOVED, KVR_SPLIT_ISOLATED, KVR_SPLIT_PREV, KVR_SPLIT_NEXT,
    KVR_SPLIT_CONTIGUOUS
};

enum {
    KVR_PRE_SPLIT, KVR_PRE_BYTELEVEL, KVR_PRE_METASPACE, KVR_PRE_DIGITS,
    KVR_PRE_PUNCT, KVR_PRE_WHITESPACE, KVR_PRE_WSSPLIT
};

/* Matchers of Split-like stages. */
enum {
    KVR_MATCH_REGEX, KVR_MATCH_LITERAL, KVR_MATCH_DIGIT, KVR_MATCH_PUNCT,
    KVR_MATCH_SPACE
};

enum { KVR_PREPEND_ALWAYS, KVR_PREPEND_FIRST, KVR_PREPEND_NEVER };

typedef struct {
    int           type;
    int           match;      /* KVR_MATCH_* for split-like stages */
    int           behavior;
    int           invert;
    pcre2_code   *re;
    char         *lit;
    size_t        litlen;
    int           add_prefix_space;
    char          repl[5];    /* Metaspace replacement (UTF-8) */
    size_t        repllen;
    int           prepend;    /* KVR_PREPEND_* */
    int           split;
} kvr_tok_pre_t;

enum {
    KVR_DEC_BYTELEVEL, KVR_DEC_BYTEFALLBACK, KVR_DEC_FUSE, KVR_DEC_STRIP,
    KVR_DEC_REPLACE, KVR_DEC_METASPACE
};

typedef struct {
    int           type;
    char         *a;          /* Replace pattern / Strip content (UTF-8) */
    size_t        alen;
    char         *b;
    size_t        blen;
    int           start;
    int           stop;
    int           prepend;
} kvr_tok_dec_t;

typedef struct {
    int           is_seq;     /* 1: the sequence, 0: special ids */
    uint32_t     *ids;
    size_t        n;
} kvr_tok_tmpl_t;

typedef struct {
    uint32_t      off;        /* content in t->arena */
    uint32_t      len;
    uint32_t      id;
    uint8_t       special;
    uint8_t       lstrip;
    uint8_t       rstrip;
    uint8_t       single_word;
    uint8_t       normalized;
} kvr_tok_added_t;

struct kvr_tokenizer_s {
    /* model */
    kvr_tok_smap_t   vocab;         /* token string -> id */
    kvr_tok_smap_t   bvocab;        /* byte-level: raw bytes -> id */
    kvr_tok_pmap_t   merges;
    int              byte_level;    /* ByteLevel pre-tokenizer present */
    int              byte_fallback;
    int              fuse_unk;
    int              ignore_merges;
    uint32_t         unk_id;        /* KVR_TOK_NONE: no unk token */
    uint32_t         byte_id[256];  /* byte-level: initial symbol ids */
    uint32_t         fb_id[256];    /* byte_fallback: <0xXX> ids */
    uint32_t         ascii_id[128]; /* char-level: single ASCII char ids */
    int              fb_all;        /* all 256 <0xXX> present */
    /*
     * Long words are cut before each U+2581 that follows a char other than
     * U+2581 and those in sp_block: no merge result contains such a pair,
     * so no merge can cross the cut, and BPE per piece is BPE on the whole
     * (sentencepiece-style tokenizers have no pre-tokenizer: a word can be
     * a whole document). sp_nblock > KVR_TOK_SP_BLOCK: never cut.
     */
    uint32_t         sp_block[KVR_TOK_SP_BLOCK];
    size_t           sp_nblock;

    /* id -> token string */
    kvr_buf_t        arena;
    uint32_t        *tok_off;
    uint32_t        *tok_len;
    uint8_t         *tok_flags;     /* 1: present, 2: special added */
    size_t           ntok;          /* max id + 1 */

    /* added tokens */
    kvr_tok_added_t *added;
    size_t           nadded;
    kvr_tok_trie_t   trie_raw;
    kvr_tok_trie_t   trie_norm;
    int              has_raw;
    int              has_norm;

    kvr_tok_norm_t  *norms;
    size_t           nnorms;
    kvr_tok_pre_t   *pres;
    size_t           npres;
    kvr_tok_tmpl_t  *tmpl;
    size_t           ntmpl;
    int              has_tmpl;
    kvr_tok_dec_t   *decs;
    size_t           ndecs;
    int              has_decoder;

    uint64_t         serial;        /* word cache tag */
    char            *bos;
    char            *eos;
    int64_t          bos_id;
    int64_t          eos_id;
};

/*
 * Per-thread word cache (kvr_tok_bpe.c): BPE results of short words,
 * direct-mapped, tagged with the tokenizer's serial number (unique per
 * load, so a freed tokenizer's entries never match a later one).
 */
#define KVR_TOK_CACHE_SLOTS  8192
#define KVR_TOK_CACHE_KEY    31
#define KVR_TOK_CACHE_IDS    7

typedef struct {
    uint64_t   serial;
    uint64_t   hash;
    uint8_t    len;
    uint8_t    nids;
    char       key[KVR_TOK_CACHE_KEY];
    uint32_t   ids[KVR_TOK_CACHE_IDS];
} kvr_tok_cent_t;

/* Per-call scratch (kvr_tok_encode.c). */
#define KVR_TOK_MAX_PRE  16

typedef struct {
    const kvr_tokenizer_t *t;
    kvr_ids_t             *out;
    pcre2_match_data      *md;
    pcre2_match_context   *mctx;
    kvr_tok_cent_t        *cache;                   /* NULL: none */
    kvr_buf_t              pbuf[KVR_TOK_MAX_PRE];   /* stage text */
    size_t                *spans[KVR_TOK_MAX_PRE];  /* stage split lists */
    size_t                 spcap[KVR_TOK_MAX_PRE];
    /* BPE scratch */
    uint32_t              *sym;
    int32_t               *prev;
    int32_t               *next;
    uint32_t              *rank;
    uint64_t              *heap;
    size_t                 bcap;
} kvr_tok_ctx_t;

/*
 * kvr_tok_norm.c: out gets the normalized text (replaced); md may be NULL.
 * *cut is set when the text's first character was removed (left Strip,
 * Replace with "" at 0): the normalized text then no longer starts at the
 * piece's original offset (Metaspace's prepend_scheme "first" looks).
 */
int kvr_tok_normalize(const kvr_tokenizer_t *t, const char *s, size_t len,
    kvr_buf_t *out, kvr_buf_t *tmp, pcre2_match_data *md, int *cut);
int kvr_tok_norm_apply(const kvr_tok_norm_t *n, const char *s, size_t len,
    kvr_buf_t *out, pcre2_match_data *md, int *cut);

/* kvr_tok_pretok.c: runs stage i over one split, feeding BPE at the end. */
int kvr_tok_pretok(kvr_tok_ctx_t *c, size_t stage, const char *s, size_t len,
    int first);
/* Compiles an HF (Oniguruma) regex for PCRE2 with JIT. */
pcre2_code *kvr_tok_regex(const char *pat, size_t len, char *err,
    size_t errlen);
/* Next match at or after off; returns 1 with [*ms, *me), 0 none, <0 error. */
int kvr_tok_regex_next(const pcre2_code *re, pcre2_match_data *md,
    pcre2_match_context *mctx, const char *s, size_t len, size_t off,
    size_t *ms, size_t *me);

/* kvr_tok_bpe.c: appends the ids of one word to c->out. */
int kvr_tok_bpe(kvr_tok_ctx_t *c, const char *s, size_t len);

/* kvr_tok_ctx.c */
int kvr_tok_ctx_init(kvr_tok_ctx_t *c, const kvr_tokenizer_t *t,
    kvr_ids_t *out);
void kvr_tok_ctx_free(kvr_tok_ctx_t *c);

/* kvr_tok_decode.c: decode into out (appended), no id validation. */
int kvr_tok_decode_ids(const kvr_tokenizer_t *t, const uint32_t *ids,
    size_t n, unsigned flags, kvr_buf_t *out);

/* Is id's token string "<0xXX>" (a ByteFallback byte)? kvr_tok_decode.c */
int kvr_tok_is_byte_token(const kvr_tokenizer_t *t, uint32_t id);

/* kvr_tok_load*.c helpers */
char *kvr_tok_strndup(const char *s, size_t n);

#endif
