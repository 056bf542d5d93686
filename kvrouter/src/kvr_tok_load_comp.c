/*
 * kvrouter tokenizer: loading the pipeline components of tokenizer.json
 * (normalizer, pre_tokenizer, post_processor, decoder). Sequences are
 * flattened; anything not implemented is refused with its name.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kvr_tok_int.h"
#include "kvr_tok_load_int.h"

int
kvr_tok_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return KVR_ERR_INVAL;
}

char *
kvr_tok_strndup(const char *s, size_t n)
{
    char  *p = malloc(n + 1);

    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* Optional boolean member (absent or null: def). */
static int
jbool(json_t *o, const char *k, int def)
{
    json_t  *v = json_object_get(o, k);

    return json_is_boolean(v) ? json_is_true(v) : def;
}

static const char *
jtype(json_t *o)
{
    json_t  *v = json_object_get(o, "type");

    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int
grow(void **arr, size_t *n, size_t size)
{
    void  *p = realloc(*arr, (*n + 1) * size);

    if (p == NULL) {
        return KVR_ERR_NOMEM;
    }
    memset((char *) p + *n * size, 0, size);
    *arr = p;
    (*n)++;
    return KVR_OK;
}

/* pattern: {"String": s} or {"Regex": r}; sets lit or re. */
static int
load_pattern(json_t *pat, const char *what, char **lit, size_t *litlen,
    pcre2_code **re, char *err, size_t errlen)
{
    json_t  *s;
    char     rerr[160];

    s = json_object_get(pat, "String");
    if (json_is_string(s)) {
        *litlen = json_string_length(s);
        *lit = kvr_tok_strndup(json_string_value(s), *litlen);
        return *lit ? KVR_OK : KVR_ERR_NOMEM;
    }
    s = json_object_get(pat, "Regex");
    if (json_is_string(s) && re != NULL) {
        *re = kvr_tok_regex(json_string_value(s), json_string_length(s), rerr,
                            sizeof(rerr));
        if (*re == NULL) {
            return kvr_tok_fail(err, errlen, "tokenizer.json: %s regex: %s",
                                what, rerr);
        }
        return KVR_OK;
    }
    return kvr_tok_fail(err, errlen, "tokenizer.json: %s: unsupported pattern",
                        what);
}

/* A single character string member (Metaspace replacement, Strip content). */
static int
load_char(json_t *o, const char *k, const char *def, char *out, size_t *len)
{
    json_t      *v = json_object_get(o, k);
    const char  *s = def;
    size_t       n = strlen(def), cl;

    if (json_is_string(v)) {
        s = json_string_value(v);
        n = json_string_length(v);
    }
    if (n == 0 || n > 4) {
        return KVR_ERR_INVAL;
    }
    (void) kvr_tok_utf8_dec((const unsigned char *) s, n, &cl);
    if (cl != n) {
        return KVR_ERR_INVAL;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    *len = n;
    return KVR_OK;
}

/*
 * A "Sequence" component (normalizer, pre_tokenizer, post_processor or
 * decoder, named by what): each member of the array o[key] loaded, in
 * order, by that component's loader fn.
 */
static int
load_sequence(kvr_tokenizer_t *t, json_t *o, const char *what,
    const char *key,
    int (*fn)(kvr_tokenizer_t *t, json_t *o, char *err, size_t errlen),
    char *err, size_t errlen)
{
    json_t  *v = json_object_get(o, key);
    size_t   i;
    int      rc;

    if (!json_is_array(v)) {
        return kvr_tok_fail(err, errlen,
                            "tokenizer.json: %s Sequence without %s", what,
                            key);
    }
    for (i = 0; i < json_array_size(v); i++) {
        rc = fn(t, json_array_get(v, i), err, errlen);
        if (rc != KVR_OK) {
            return rc;
        }
    }
    return KVR_OK;
}

int
kvr_tok_load_normalizer(kvr_tokenizer_t *t, json_t *o, char *err,
    size_t errlen)
{
    const char      *ty;
    kvr_tok_norm_t  *n;
    json_t          *v;
    int              rc;

    if (json_is_null(o) || o == NULL) {
        return KVR_OK;
    }
    ty = jtype(o);
    if (ty == NULL) {
        return kvr_tok_fail(err, errlen, "tokenizer.json: normalizer without type");
    }
    if (strcmp(ty, "Sequence") == 0) {
        return load_sequence(t, o, "normalizer", "normalizers",
                             kvr_tok_load_normalizer, err, errlen);
    }
    if (grow((void **) &t->norms, &t->nnorms, sizeof(*n)) != KVR_OK) {
        return KVR_ERR_NOMEM;
    }
    n = &t->norms[t->nnorms - 1];
    if (strcmp(ty, "Prepend") == 0) {
        v = json_object_get(o, "prepend");
        if (!json_is_string(v)) {
            return kvr_tok_fail(err, errlen, "tokenizer.json: Prepend without prepend");
        }
        n->type = KVR_NORM_PREPEND;
        n->alen = json_string_length(v);
        n->a = kvr_tok_strndup(json_string_value(v), n->alen);
        return n->a ? KVR_OK : KVR_ERR_NOMEM;
    }
    if (strcmp(ty, "Replace") == 0) {
        v = json_object_get(o, "content");
        if (!json_is_string(v)) {
            return kvr_tok_fail(err, errlen, "tokenizer.json: Replace without content");
        }
        n->type = KVR_NORM_REPLACE;
        n->blen = json_string_length(v);
        n->b = kvr_tok_strndup(json_string_value(v), n->blen);
        if (n->b == NULL) {
            return KVR_ERR_NOMEM;
        }
        rc = load_pattern(json_object_get(o, "pattern"), "Replace normalizer",
                          &n->a, &n->alen, &n->re, err, errlen);
        if (rc == KVR_OK && n->re == NULL && n->alen == 0) {
            return kvr_tok_fail(err, errlen, "tokenizer.json: Replace with empty pattern");
        }
        return rc;
    }
    if (strcmp(ty, "NFC") == 0) {
        n->type = KVR_NORM_NFC;
    } else if (strcmp(ty, "NFKC") == 0) {
        n->type = KVR_NORM_NFKC;
    } else if (strcmp(ty, "NFD") == 0) {
        n->type = KVR_NORM_NFD;
    } else if (strcmp(ty, "NFKD") == 0) {
        n->type = KVR_NORM_NFKD;
    } else if (strcmp(ty, "Lowercase") == 0) {
        n->type = KVR_NORM_LOWER;
    } else if (strcmp(ty, "Strip") == 0) {
        n->type = KVR_NORM_STRIP;
        n->left = jbool(o, "strip_left", 1);
        n->right = jbool(o, "strip_right", 1);
    } else {
        return kvr_tok_fail(err, errlen,
                            "tokenizer.json: unsupported normalizer \"%s\"", ty);
    }
    return KVR_OK;
}

static int
behavior(json_t *o, int def, int *out)
{
    json_t      *v = json_object_get(o, "behavior");
    const char  *s;

    *out = def;
    if (v == NULL || json_is_null(v)) {
        return KVR_OK;
    }
    if (!json_is_string(v)) {
        return KVR_ERR_INVAL;
    }
    s = json_string_value(v);
    if (strcmp(s, "Removed") == 0) {
        *out = KVR_SPLIT_REMOVED;
    } else if (strcmp(s, "Isolated") == 0) {
        *out = KVR_SPLIT_ISOLATED;
    } else if (strcmp(s, "MergedWithPrevious") == 0) {
        *out = KVR_SPLIT_PREV;
    } else if (strcmp(s, "MergedWithNext") == 0) {
        *out = KVR_SPLIT_NEXT;
    } else if (strcmp(s, "Contiguous") == 0) {
        *out = KVR_SPLIT_CONTIGUOUS;
    } else {
        return KVR_ERR_INVAL;
    }
    return KVR_OK;
}

static const char  gpt2_re[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+"
    "|\\s+(?!\\S)|\\s+";

static int
prepend_scheme(json_t *o, int *out)
{
    json_t      *v = json_object_get(o, "prepend_scheme");
    const char  *s;

    if (json_is_string(v)) {
        s = json_string_value(v);
        if (strcmp(s, "always") == 0) {
            *out = KVR_PREPEND_ALWAYS;
        } else if (strcmp(s, "first") == 0) {
            *out = KVR_PREPEND_FIRST;
        } else if (strcmp(s, "never") == 0) {
            *out = KVR_PREPEND_NEVER;
        } else {
            return KVR_ERR_INVAL;
        }
        return KVR_OK;
    }
    /* legacy form */
    *out = jbool(o, "add_prefix_space", 1) ? KVR_PREPEND_ALWAYS
                                            : KVR_PREPEND_NEVER;
    return KVR_OK;
}

int
kvr_tok_load_pretok(kvr_tokenizer_t *t, json_t *o, char *err, size_t errlen)
{
    const char     *ty;
    kvr_tok_pre_t  *p;
    int             rc;
    char            rerr[160];

    if (o == NULL || json_is_null(o)) {
        return KVR_OK;
    }
    ty = jtype(o);
    if (ty == NULL) {
        return kvr_tok_fail(err, errlen, "tokenizer.json: pre_tokenizer without type");
    }
    if (strcmp(ty, "Sequence") == 0) {
        return load_sequence(t, o, "pre_tokenizer", "pretokenizers",
                             kvr_tok_load_pretok, err, errlen);
    }
    if (t->byte_level) {
        return kvr_tok_fail(err, errlen,
                            "tokenizer.json: unsupported pre_tokenizer \"%s\" after ByteLevel",
                            ty);
    }
    if (t->npres + 2 > KVR_TOK_MAX_PRE) {
        return kvr_tok_fail(err, errlen, "tokenizer.json: too many pre_tokenizers");
    }
    if (grow((void **) &t->pres, &t->npres, sizeof(*p)) != KVR_OK) {
        return KVR_ERR_NOMEM;
    }
    p = &t->pres[t->npres - 1];
    if (strcmp(ty, "Split") == 0) {
        p->type = KVR_PRE_SPLIT;
        if (behavior(o, KVR_SPLIT_REMOVED, &p->behavior) != KVR_OK) {
            return kvr_tok_fail(err, errlen, "tokenizer.json: Split: bad behavior");
        }
        p->invert = jbool(o, "invert", 0);
        rc = load_pattern(json_object_get(o, "pattern"), "Split pre_tokenizer",
                          &p->lit, &p->litlen, &p->re, err, errlen);
        p->match = p->re ? KVR_MATCH_REGEX : KVR_MATCH_LITERAL;
        return rc;
    }
    if (strcmp(ty, "ByteLevel") == 0) {
        p->type = KVR_PRE_BYTELEVEL;
        p->add_prefix_space = jbool(o, "add_prefix_space", 1);
        t->byte_level = 1;
        if (!jbool(o, "use_regex", 1)) {
            return KVR_OK;
        }
        if (grow((void **) &t->pres, &t->npres, sizeof(*p)) != KVR_OK) {
            return KVR_ERR_NOMEM;
        }
        p = &t->pres[t->npres - 1];
        p->type = KVR_PRE_SPLIT;
        p->match = KVR_MATCH_REGEX;
        p->behavior = KVR_SPLIT_ISOLATED;
        p->re = kvr_tok_regex(gpt2_re, sizeof(gpt2_re) - 1, rerr, sizeof(rerr));
        if (p->re == NULL) {
            return kvr_tok_fail(err, errlen, "tokenizer.json: ByteLevel regex: %s",
                                rerr);
        }
        return KVR_OK;
    }
    if (strcmp(ty, "Metaspace") == 0) {
        p->type = KVR_PRE_METASPACE;
        if (load_char(o, "replacement", "\xE2\x96\x81", p->repl, &p->repllen)
                != KVR_OK
            || prepend_scheme(o, &p->prepend) != KVR_OK)
        {
            return kvr_tok_fail(err, errlen, "tokenizer.json: Metaspace: bad options");
        }
        p->split = jbool(o, "split", 1);
        return KVR_OK;
    }
    if (strcmp(ty, "Digits") == 0) {
        p->type = KVR_PRE_SPLIT;
        p->match = KVR_MATCH_DIGIT;
        p->behavior = jbool(o, "individual_digits", 0) ? KVR_SPLIT_ISOLATED
                                                       : KVR_SPLIT_CONTIGUOUS;
        return KVR_OK;
    }
    if (strcmp(ty, "Punctuation") == 0) {
        p->type = KVR_PRE_SPLIT;
        p->match = KVR_MATCH_PUNCT;
        if (behavior(o, KVR_SPLIT_ISOLATED, &p->behavior) != KVR_OK) {
            return kvr_tok_fail(err, errlen, "tokenizer.json: Punctuation: bad behavior");
        }
        return KVR_OK;
    }
    if (strcmp(ty, "Whitespace") == 0) {
        static const char  ws_re[] = "\\w+|[^\\w\\s]+";

        p->type = KVR_PRE_SPLIT;
        p->match = KVR_MATCH_REGEX;
        p->behavior = KVR_SPLIT_REMOVED;
        p->invert = 1;
        p->re = kvr_tok_regex(ws_re, sizeof(ws_re) - 1, rerr, sizeof(rerr));
        return p->re ? KVR_OK : KVR_ERR_NOMEM;
    }
    if (strcmp(ty, "WhitespaceSplit") == 0) {
        p->type = KVR_PRE_SPLIT;
        p->match = KVR_MATCH_SPACE;
        p->behavior = KVR_SPLIT_REMOVED;
        return KVR_OK;
    }
    return kvr_tok_fail(err, errlen,
                        "tokenizer.json: unsupported pre_tokenizer \"%s\"", ty);
}

/* [token, id] pair of Bert/Roberta processing. */
static int
special_pair(kvr_tokenizer_t *t, json_t *o, const char *k, int first)
{
    json_t          *v = json_object_get(o, k), *id;
    kvr_tok_tmpl_t  *m;

    if (!json_is_array(v) || json_array_size(v) != 2) {
        return KVR_ERR_INVAL;
    }
    id = json_array_get(v, 1);
    if (!json_is_integer(id) || json_integer_value(id) < 0
        || json_integer_value(id) > UINT32_MAX - 1)
    {
        return KVR_ERR_INVAL;
    }
    if (grow((void **) &t->tmpl, &t->ntmpl, sizeof(*m)) != KVR_OK) {
        return KVR_ERR_NOMEM;
    }
    m = &t->tmpl[t->ntmpl - 1];
    m->ids = malloc(sizeof(uint32_t));
    if (m->ids == NULL) {
        return KVR_ERR_NOMEM;
    }
    m->ids[0] = (uint32_t) json_integer_value(id);
    m->n = 1;
    if (first && grow((void **) &t->tmpl, &t->ntmpl, sizeof(*m)) == KVR_OK) {
        t->tmpl[t->ntmpl - 1].is_seq = 1;
    }
    return KVR_OK;
}

static int
load_template(kvr_tokenizer_t *t, json_t *o, char *err, size_t errlen)
{
    json_t          *single = json_object_get(o, "single");
    json_t          *specials = json_object_get(o, "special_tokens");
    json_t          *it, *x, *ids;
    kvr_tok_tmpl_t  *m;
    size_t           i, j;

    if (!json_is_array(single)) {
        return kvr_tok_fail(err, errlen,
                            "tokenizer.json: TemplateProcessing without single");
    }
    for (i = 0; i < json_array_size(single); i++) {
        it = json_array_get(single, i);
        if (grow((void **) &t->tmpl, &t->ntmpl, sizeof(*m)) != KVR_OK) {
            return KVR_ERR_NOMEM;
        }
        m = &t->tmpl[t->ntmpl - 1];
        if (json_object_get(it, "Sequence") != NULL) {
            m->is_seq = 1;
            continue;
        }
        x = json_object_get(json_object_get(it, "SpecialToken"), "id");
        if (!json_is_string(x)) {
            return kvr_tok_fail(err, errlen,
                                "tokenizer.json: TemplateProcessing: bad item");
        }
        ids = json_object_get(json_object_get(specials, json_string_value(x)),
                              "ids");
        if (!json_is_array(ids)) {
            return kvr_tok_fail(err, errlen,
                                "tokenizer.json: TemplateProcessing: no special token \"%s\"",
                                json_string_value(x));
        }
        m->ids = malloc((json_array_size(ids) + 1) * sizeof(uint32_t));
        if (m->ids == NULL) {
            return KVR_ERR_NOMEM;
        }
        for (j = 0; j < json_array_size(ids); j++) {
            x = json_array_get(ids, j);
            if (!json_is_integer(x) || json_integer_value(x) < 0
                || json_integer_value(x) > UINT32_MAX - 1)
            {
                return kvr_tok_fail(err, errlen,
                                    "tokenizer.json: TemplateProcessing: bad id");
            }
            m->ids[m->n++] = (uint32_t) json_integer_value(x);
        }
    }
    return KVR_OK;
}

int
kvr_tok_load_post(kvr_tokenizer_t *t, json_t *o, char *err, size_t errlen)
{
    const char  *ty;

    if (o == NULL || json_is_null(o)) {
        return KVR_OK;
    }
    ty = jtype(o);
    if (ty == NULL) {
        return kvr_tok_fail(err, errlen, "tokenizer.json: post_processor without type");
    }
    if (strcmp(ty, "Sequence") == 0) {
        return load_sequence(t, o, "post_processor", "processors",
                             kvr_tok_load_post, err, errlen);
    }
    if (strcmp(ty, "ByteLevel") == 0) {
        return KVR_OK;      /* offsets only */
    }
    if (t->has_tmpl) {
        return kvr_tok_fail(err, errlen,
                            "tokenizer.json: unsupported post_processor: more than one template");
    }
    t->has_tmpl = 1;
    if (strcmp(ty, "TemplateProcessing") == 0) {
        return load_template(t, o, err, errlen);
    }
    if (strcmp(ty, "BertProcessing") == 0 || strcmp(ty, "RobertaProcessing") == 0) {
        if (special_pair(t, o, "cls", 1) != KVR_OK
            || special_pair(t, o, "sep", 0) != KVR_OK)
        {
            return kvr_tok_fail(err, errlen, "tokenizer.json: %s: bad cls/sep", ty);
        }
        return KVR_OK;
    }
    return kvr_tok_fail(err, errlen,
                        "tokenizer.json: unsupported post_processor \"%s\"", ty);
}

int
kvr_tok_load_decoder(kvr_tokenizer_t *t, json_t *o, char *err, size_t errlen)
{
    const char     *ty;
    kvr_tok_dec_t  *d;
    json_t         *v;
    int             rc;
    char            c[5];
    size_t          cl;

    if (o == NULL || json_is_null(o)) {
        return KVR_OK;
    }
    t->has_decoder = 1;
    ty = jtype(o);
    if (ty == NULL) {
        return kvr_tok_fail(err, errlen, "tokenizer.json: decoder without type");
    }
    if (strcmp(ty, "Sequence") == 0) {
        return load_sequence(t, o, "decoder", "decoders",
                             kvr_tok_load_decoder, err, errlen);
    }
    if (grow((void **) &t->decs, &t->ndecs, sizeof(*d)) != KVR_OK) {
        return KVR_ERR_NOMEM;
    }
    d = &t->decs[t->ndecs - 1];
    if (strcmp(ty, "ByteLevel") == 0) {
        d->type = KVR_DEC_BYTELEVEL;
    } else if (strcmp(ty, "ByteFallback") == 0) {
        d->type = KVR_DEC_BYTEFALLBACK;
    } else if (strcmp(ty, "Fuse") == 0) {
        d->type = KVR_DEC_FUSE;
    } else if (strcmp(ty, "Strip") == 0) {
        d->type = KVR_DEC_STRIP;
        v = json_object_get(o, "content");
        if (load_char(o, "content", " ", c, &cl) != KVR_OK
            || !json_is_integer(json_object_get(o, "start"))
            || !json_is_integer(json_object_get(o, "stop")))
        {
            return kvr_tok_fail(err, errlen, "tokenizer.json: Strip decoder: bad options");
        }
        d->a = kvr_tok_strndup(c, cl);
        d->alen = cl;
        d->start = (int) json_integer_value(json_object_get(o, "start"));
        d->stop = (int) json_integer_value(json_object_get(o, "stop"));
        if (d->a == NULL) {
            return KVR_ERR_NOMEM;
        }
        if (d->start < 0 || d->stop < 0 || d->start > 1 << 20 || d->stop > 1 << 20) {
            return kvr_tok_fail(err, errlen, "tokenizer.json: Strip decoder: bad options");
        }
    } else if (strcmp(ty, "Replace") == 0) {
        d->type = KVR_DEC_REPLACE;
        v = json_object_get(o, "content");
        if (!json_is_string(v)) {
            return kvr_tok_fail(err, errlen, "tokenizer.json: Replace decoder without content");
        }
        d->blen = json_string_length(v);
        d->b = kvr_tok_strndup(json_string_value(v), d->blen);
        if (d->b == NULL) {
            return KVR_ERR_NOMEM;
        }
        rc = load_pattern(json_object_get(o, "pattern"), "Replace decoder",
                          &d->a, &d->alen, NULL, err, errlen);
        if (rc == KVR_OK && d->alen == 0) {
            return kvr_tok_fail(err, errlen, "tokenizer.json: Replace decoder: empty pattern");
        }
        return rc;
    } else if (strcmp(ty, "Metaspace") == 0) {
        d->type = KVR_DEC_METASPACE;
        if (load_char(o, "replacement", "\xE2\x96\x81", c, &cl) != KVR_OK
            || prepend_scheme(o, &d->prepend) != KVR_OK)
        {
            return kvr_tok_fail(err, errlen, "tokenizer.json: Metaspace decoder: bad options");
        }
        d->a = kvr_tok_strndup(c, cl);
        d->alen = cl;
        if (d->a == NULL) {
            return KVR_ERR_NOMEM;
        }
    } else {
        return kvr_tok_fail(err, errlen, "tokenizer.json: unsupported decoder \"%s\"",
                            ty);
    }
    return KVR_OK;
}
