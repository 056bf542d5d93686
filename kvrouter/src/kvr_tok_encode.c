/*
 * kvrouter tokenizer: encode. Invalid UTF-8 is replaced (see README,
 * "Tokenizer"); the text is split on added tokens (HF's leftmost-longest
 * match with lstrip/rstrip/single_word), each remaining piece is
 * normalized, split on normalized added tokens, pre-tokenized and run
 * through BPE; the template adds the special tokens.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kvr_tok_int.h"

/* Per-thread PCRE2 match data and JIT stack, shared by all tokenizers. */
typedef struct {
    pcre2_match_data     *md;
    pcre2_match_context  *mctx;
    pcre2_jit_stack      *js;
    kvr_tok_cent_t       *cache;
} kvr_tok_tls_t;

static pthread_key_t   tls_key;
static pthread_once_t  tls_once = PTHREAD_ONCE_INIT;
static int             tls_ok;

static void
tls_free(void *p)
{
    kvr_tok_tls_t  *s = p;

    pcre2_match_data_free(s->md);
    pcre2_match_context_free(s->mctx);
    pcre2_jit_stack_free(s->js);
    free(s->cache);
    free(s);
}

static void
tls_init(void)
{
    tls_ok = pthread_key_create(&tls_key, tls_free) == 0;
}

static kvr_tok_tls_t *
tls_get(void)
{
    kvr_tok_tls_t  *s;

    pthread_once(&tls_once, tls_init);
    if (!tls_ok) {
        return NULL;
    }
    s = pthread_getspecific(tls_key);
    if (s != NULL) {
        return s;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->md = pcre2_match_data_create(32, NULL);
    s->mctx = pcre2_match_context_create(NULL);
    s->js = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    s->cache = calloc(KVR_TOK_CACHE_SLOTS, sizeof(kvr_tok_cent_t));
    if (s->md == NULL || s->mctx == NULL || s->js == NULL || s->cache == NULL
        || pthread_setspecific(tls_key, s) != 0)
    {
        tls_free(s);
        return NULL;
    }
    pcre2_jit_stack_assign(s->mctx, NULL, s->js);
    return s;
}

int
kvr_tok_ctx_init(kvr_tok_ctx_t *c, const kvr_tokenizer_t *t, kvr_ids_t *out)
{
    kvr_tok_tls_t  *s = tls_get();

    memset(c, 0, sizeof(*c));
    if (s == NULL) {
        return KVR_ERR_NOMEM;
    }
    c->t = t;
    c->out = out;
    c->md = s->md;
    c->mctx = s->mctx;
    c->cache = s->cache;
    return KVR_OK;
}

void
kvr_tok_ctx_free(kvr_tok_ctx_t *c)
{
    size_t  i;

    for (i = 0; i < KVR_TOK_MAX_PRE; i++) {
        kvr_buf_free(&c->pbuf[i]);
        free(c->spans[i]);
    }
    free(c->sym);
    free(c->prev);
    free(c->next);
    free(c->rank);
    free(c->heap);
}

/* The char before s[pos] / at s[pos] (0 when none). */
static uint32_t
char_before(const char *s, size_t pos)
{
    size_t  j, cl;

    if (pos == 0) {
        return 0;
    }
    j = pos - 1;
    while (j > 0 && ((unsigned char) s[j] & 0xC0) == 0x80) {
        j--;
    }
    return kvr_tok_utf8_dec((const unsigned char *) s + j, pos - j, &cl);
}

static uint32_t
char_at(const char *s, size_t len, size_t pos, size_t *cl)
{
    *cl = 0;
    return pos < len ? kvr_tok_utf8_dec((const unsigned char *) s + pos,
                                        len - pos, cl)
                     : 0;
}

typedef int (*piece_fn)(kvr_tok_ctx_t *c, const char *s, size_t len,
    int first, void *arg);

/*
 * HF AddedVocabulary::find_matches: leftmost-longest matches; a
 * single_word token must not touch a word character; lstrip/rstrip take
 * the whitespace around into the token. Calls fn for the text between.
 */
static int
split_added(kvr_tok_ctx_t *c, const kvr_tok_trie_t *tr, const char *s,
    size_t len, int first, piece_fn fn, void *arg)
{
    const kvr_tokenizer_t  *t = c->t;
    const kvr_tok_added_t  *a;
    size_t                  i = 0, done = 0, ml, start, stop, cl;
    int32_t                 ai = -1;
    uint32_t                ch;
    int                     rc;

    while (i < len) {
        if (!tr->first[(unsigned char) s[i]]
            || (ml = kvr_tok_trie_match(tr, s + i, len - i, &ai)) == 0)
        {
            i++;
            continue;
        }
        a = &t->added[ai];
        start = i;
        stop = i + ml;
        if (a->single_word
            && ((start > 0 && kvr_tok_is_alnum(char_before(s, start)))
                || (stop < len && kvr_tok_is_alnum(char_at(s, len, stop, &cl)))))
        {
            i = start + ml;     /* the automaton goes on after the match */
            continue;
        }
        if (a->lstrip) {
            while (start > done) {
                ch = char_before(s, start);
                if (!kvr_tok_is_whitespace(ch)) {
                    break;
                }
                start -= ch < 0x80 ? 1 : ch < 0x800 ? 2 : ch < 0x10000 ? 3 : 4;
            }
        }
        if (a->rstrip) {
            while (stop < len) {
                ch = char_at(s, len, stop, &cl);
                if (!kvr_tok_is_whitespace(ch)) {
                    break;
                }
                stop += cl;
            }
        }
        if (start > done) {
            rc = fn(c, s + done, start - done, first && done == 0, arg);
            if (rc != KVR_OK) {
                return rc;
            }
        }
        rc = kvr_ids_push(c->out, a->id);
        if (rc != KVR_OK) {
            return rc;
        }
        done = stop;
        i = stop;
    }
    if (done < len) {
        return fn(c, s + done, len - done, first && done == 0, arg);
    }
    return KVR_OK;
}

static int
pretok_piece(kvr_tok_ctx_t *c, const char *s, size_t len, int first,
    void *arg)
{
    return kvr_tok_pretok(c, 0, s, len, first);
}

static int
text_piece(kvr_tok_ctx_t *c, const char *s, size_t len, int first,
    void *arg)
{
    const kvr_tokenizer_t  *t = c->t;
    kvr_buf_t              *nb = arg;
    int                     rc, cut = 0;

    if (t->nnorms > 0) {
        rc = kvr_tok_normalize(t, s, len, &nb[0], &nb[1], c->md, &cut);
        if (rc != KVR_OK) {
            return rc;
        }
        first &= !cut;
        s = nb[0].data;
        len = nb[0].len;
    }
    if (len == 0) {
        return KVR_OK;
    }
    if (t->has_norm) {
        return split_added(c, &t->trie_norm, s, len, first, pretok_piece, NULL);
    }
    return kvr_tok_pretok(c, 0, s, len, first);
}

int
kvr_tokenizer_encode(const kvr_tokenizer_t *t, const char *text, size_t len,
    unsigned flags, kvr_ids_t *out)
{
    kvr_tok_ctx_t  c;
    kvr_buf_t      clean = {0}, nb[2] = {{0}, {0}};
    size_t         i, j;
    int            rc;

    out->n = 0;
    if (kvr_tok_utf8_valid(text, len) != len) {
        if (kvr_tok_utf8_lossy(&clean, text, len) != KVR_OK) {
            kvr_buf_free(&clean);
            return KVR_ERR_NOMEM;
        }
        text = clean.data;
        len = clean.len;
    }
    rc = kvr_tok_ctx_init(&c, t, out);
    if (rc != KVR_OK) {
        kvr_buf_free(&clean);
        return rc;
    }
    for (i = 0; i < t->ntmpl && (flags & KVR_TOK_ADD_SPECIAL) && rc == KVR_OK; i++) {
        if (t->tmpl[i].is_seq) {
            break;
        }
        for (j = 0; j < t->tmpl[i].n && rc == KVR_OK; j++) {
            rc = kvr_ids_push(out, t->tmpl[i].ids[j]);
        }
    }
    if (rc == KVR_OK && len > 0) {
        rc = t->has_raw ? split_added(&c, &t->trie_raw, text, len, 1, text_piece, nb)
                        : text_piece(&c, text, len, 1, nb);
    }
    if (flags & KVR_TOK_ADD_SPECIAL) {
        for (i++; i < t->ntmpl && rc == KVR_OK; i++) {
            for (j = 0; j < t->tmpl[i].n && rc == KVR_OK; j++) {
                rc = kvr_ids_push(out, t->tmpl[i].ids[j]);
            }
        }
    }
    kvr_tok_ctx_free(&c);
    kvr_buf_free(&nb[0]);
    kvr_buf_free(&nb[1]);
    kvr_buf_free(&clean);
    return rc;
}
