/*
 * kvrouter tokenizer: a fast path through tokenizer.json's two big values.
 *
 * jansson builds a node per string, which made it most of the load time
 * (a 262K-token vocabulary and 515K merges took over a second). So the
 * loader finds model.vocab and model.merges with a strict skipper, has
 * jansson parse the rest (with those two values blanked out), and parses
 * the two values here, straight into the tokenizer's maps.
 */
#include <stdlib.h>
#include <string.h>

#include "kvr_tok_int.h"
#include "kvr_tok_json_int.h"

static const char *
ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) {
        p++;
    }
    return p;
}

static int
hex4(const char *p, uint32_t *v)
{
    int  i, h;

    *v = 0;
    for (i = 0; i < 4; i++) {
        h = p[i];
        if (h >= '0' && h <= '9') {
            h -= '0';
        } else if ((h | 0x20) >= 'a' && (h | 0x20) <= 'f') {
            h = (h | 0x20) - 'a' + 10;
        } else {
            return -1;
        }
        *v = *v << 4 | (uint32_t) h;
    }
    return 0;
}

/*
 * Decodes the string at *pp ('"'), into out when not NULL (replacing its
 * contents); advances *pp past the closing quote. The raw bytes must be
 * valid UTF-8 without control characters; escapes as in RFC 8259, a lone
 * surrogate is an error.
 */
int
kvr_tok_json_str(const char **pp, const char *end, kvr_buf_t *out)
{
    const char  *p = *pp + 1, *run;
    uint32_t     c, lo;
    char         u[4];
    size_t       n;

    if (out) {
        kvr_buf_reset(out);
    }
    for ( ;; ) {
        run = p;
        while (p < end && *p != '"' && *p != '\\'
               && (unsigned char) *p >= 0x20)
        {
            p++;
        }
        if (p >= end || (unsigned char) *p < 0x20) {
            return KVR_ERR_INVAL;
        }
        if (kvr_tok_utf8_valid(run, (size_t) (p - run)) != (size_t) (p - run)) {
            return KVR_ERR_INVAL;
        }
        if (out && kvr_buf_append(out, run, (size_t) (p - run)) != KVR_OK) {
            return KVR_ERR_NOMEM;
        }
        if (*p == '"') {
            *pp = p + 1;
            if (out && out->data == NULL) {
                return kvr_buf_append(out, "", 0);
            }
            return KVR_OK;
        }
        if (end - p < 2) {
            return KVR_ERR_INVAL;
        }
        switch (p[1]) {
        case '"': case '\\': case '/':
            c = (unsigned char) p[1];
            p += 2;
            break;
        case 'b': c = '\b'; p += 2; break;
        case 'f': c = '\f'; p += 2; break;
        case 'n': c = '\n'; p += 2; break;
        case 'r': c = '\r'; p += 2; break;
        case 't': c = '\t'; p += 2; break;
        case 'u':
            if (end - p < 6 || hex4(p + 2, &c) != 0) {
                return KVR_ERR_INVAL;
            }
            p += 6;
            if (c >= 0xDC00 && c <= 0xDFFF) {
                return KVR_ERR_INVAL;
            }
            if (c >= 0xD800 && c <= 0xDBFF) {
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u'
                    || hex4(p + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
                {
                    return KVR_ERR_INVAL;
                }
                c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            break;
        default:
            return KVR_ERR_INVAL;
        }
        n = kvr_tok_utf8_enc(c, u);
        if (out && kvr_buf_append(out, u, n) != KVR_OK) {
            return KVR_ERR_NOMEM;
        }
    }
}

/* Skips one value; NULL on malformed input. Depth-limited. */
static const char *
skip(const char *p, const char *end, int depth)
{
    p = ws(p, end);
    if (p >= end || depth > 512) {
        return NULL;
    }
    if (*p == '"') {
        return kvr_tok_json_str(&p, end, NULL) == KVR_OK ? p : NULL;
    }
    if (*p == '{' || *p == '[') {
        char  close = *p == '{' ? '}' : ']';

        p = ws(p + 1, end);
        if (p < end && *p == close) {
            return p + 1;
        }
        for ( ;; ) {
            if (close == '}') {
                p = ws(p, end);
                if (p >= end || *p != '"' || kvr_tok_json_str(&p, end, NULL) != KVR_OK) {
                    return NULL;
                }
                p = ws(p, end);
                if (p >= end || *p != ':') {
                    return NULL;
                }
                p++;
            }
            p = skip(p, end, depth + 1);
            if (p == NULL) {
                return NULL;
            }
            p = ws(p, end);
            if (p < end && *p == ',') {
                p++;
                continue;
            }
            return p < end && *p == close ? p + 1 : NULL;
        }
    }
    /* number or literal: jansson validates those (they are kept) */
    while (p < end && ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z')
                       || *p == '-' || *p == '+' || *p == '.' || *p == 'E'))
    {
        p++;
    }
    return p;
}

/*
 * An object member's "key": at p; returns where its value starts (past
 * the ':' and white space), NULL if malformed. *kn: the key's length,
 * quotes included.
 */
static const char *
member_key(const char *p, const char *end, size_t *kn)
{
    const char  *key = p;

    if (*p != '"' || kvr_tok_json_str(&p, end, NULL) != KVR_OK) {
        return NULL;
    }
    *kn = (size_t) (p - key);
    p = ws(p, end);
    if (p >= end || *p != ':') {
        return NULL;
    }
    return ws(p + 1, end);
}

/* After a member's value: past a ',' and white space, or at the closing
 * '}'; NULL if neither follows. */
static const char *
member_end(const char *p, const char *end)
{
    p = ws(p, end);
    if (p < end && *p == ',') {
        return ws(p + 1, end);
    }
    return p < end && *p == '}' ? p : NULL;
}

/* Overwrites the value at r + off (n bytes) with empty (padded) */
static void
blank_value(char *r, size_t off, size_t n, const char *empty)
{
    memset(r + off, ' ', n);
    memcpy(r + off, empty, 2);
}

/*
 * Finds model.vocab and model.merges; copies the document into rest with
 * those two values replaced by {} and [] (padded with spaces, so byte
 * offsets in jansson's messages stay right).
 */
int
kvr_tok_json_split(const char *json, size_t len, kvr_tok_json_parts_t *parts,
    char **rest)
{
    const char  *end = json + len, *p, *v, *ve, *key, *mk;
    size_t       kn;
    int          model, k;
    char        *r;

    memset(parts, 0, sizeof(*parts));
    *rest = NULL;
    p = ws(json, end);
    if (p >= end || *p != '{') {
        return KVR_ERR_INVAL;
    }
    p = ws(p + 1, end);
    while (p < end && *p != '}') {
        key = p;
        v = member_key(p, end, &kn);
        if (v == NULL) {
            return KVR_ERR_INVAL;
        }
        model = kn == 7 && memcmp(key, "\"model\"", 7) == 0;
        if (model && v < end && *v == '{') {
            /* walk the model object's members */
            p = ws(v + 1, end);
            while (p < end && *p != '}') {
                mk = p;
                ve = member_key(p, end, &kn);
                if (ve == NULL) {
                    return KVR_ERR_INVAL;
                }
                k = kn == 7 && memcmp(mk, "\"vocab\"", 7) == 0 ? 1
                    : kn == 8 && memcmp(mk, "\"merges\"", 8) == 0 ? 2 : 0;
                p = skip(ve, end, 1);
                if (p == NULL) {
                    return KVR_ERR_INVAL;
                }
                if (k == 1 && ve < end && *ve == '{') {
                    parts->vocab = ve;
                    parts->vocab_len = (size_t) (p - ve);
                } else if (k == 2 && ve < end && *ve == '[') {
                    parts->merges = ve;
                    parts->merges_len = (size_t) (p - ve);
                }
                p = member_end(p, end);
                if (p == NULL) {
                    return KVR_ERR_INVAL;
                }
            }
            if (p >= end) {
                return KVR_ERR_INVAL;
            }
            p++;
        } else {
            p = skip(v, end, 0);
            if (p == NULL) {
                return KVR_ERR_INVAL;
            }
        }
        p = member_end(p, end);
        if (p == NULL) {
            return KVR_ERR_INVAL;
        }
    }
    if (p >= end) {
        return KVR_ERR_INVAL;
    }
    r = malloc(len + 1);
    if (r == NULL) {
        return KVR_ERR_NOMEM;
    }
    memcpy(r, json, len);
    r[len] = '\0';
    if (parts->vocab) {
        blank_value(r, (size_t) (parts->vocab - json), parts->vocab_len, "{}");
    }
    if (parts->merges) {
        blank_value(r, (size_t) (parts->merges - json), parts->merges_len,
                    "[]");
    }
    *rest = r;
    return KVR_OK;
}

int
kvr_tok_json_vocab(const char *p, size_t len, kvr_tok_vocab_fn fn, void *arg)
{
    const char  *end = p + len;
    kvr_buf_t    k = {0};
    uint64_t     id;
    int          rc = KVR_ERR_INVAL;

    p = ws(p + 1, end);     /* past '{' */
    if (p < end && *p == '}') {
        return KVR_OK;
    }
    for ( ;; ) {
        p = ws(p, end);
        if (p >= end || *p != '"' || (rc = kvr_tok_json_str(&p, end, &k)) != KVR_OK) {
            break;
        }
        rc = KVR_ERR_INVAL;
        p = ws(p, end);
        if (p >= end || *p != ':') {
            break;
        }
        p = ws(p + 1, end);
        if (p >= end || *p < '0' || *p > '9' || (*p == '0' && p + 1 < end
                                                 && p[1] >= '0' && p[1] <= '9'))
        {
            break;
        }
        for (id = 0; p < end && *p >= '0' && *p <= '9'; p++) {
            id = id * 10 + (uint64_t) (*p - '0');
            if (id >= 1u << 31) {
                goto done;
            }
        }
        if ((rc = fn(arg, k.data, k.len, (uint32_t) id)) != KVR_OK) {
            break;
        }
        rc = KVR_ERR_INVAL;
        p = ws(p, end);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p < end && *p == '}') {
            rc = KVR_OK;
        }
        break;
    }
done:
    kvr_buf_free(&k);
    return rc;
}

/* Appends the string at *pp to text; *off, *len locate it there. */
static int
str_into(const char **pp, const char *end, kvr_buf_t *tmp, kvr_buf_t *text,
    size_t *off, size_t *len)
{
    int  rc;

    if (*pp >= end || **pp != '"') {
        return KVR_ERR_INVAL;
    }
    if ((rc = kvr_tok_json_str(pp, end, tmp)) != KVR_OK) {
        return rc;
    }
    *off = text->len;
    *len = tmp->len;
    return kvr_buf_append(text, tmp->data, tmp->len);
}

int
kvr_tok_json_merges(const char *p, size_t len, kvr_tok_merge_fn fn, void *arg)
{
    const char       *end = p + len, *sp;
    kvr_buf_t         tmp = {0}, text = {0};
    kvr_tok_merge_t   m[KVR_TOK_MERGE_BATCH], *x;
    size_t            n = 0, rank0 = 0, off, l;
    int               rc = KVR_OK;

    p = ws(p + 1, end);     /* past '[' */
    if (p < end && *p == ']') {
        return KVR_OK;
    }
    for ( ;; ) {
        p = ws(p, end);
        x = &m[n];
        if (p < end && *p == '"') {
            if ((rc = str_into(&p, end, &tmp, &text, &off, &l)) != KVR_OK) {
                break;
            }
            sp = memchr(text.data + off, ' ', l);
            if (sp == NULL) {
                rc = KVR_ERR_INVAL;
                break;
            }
            x->a = off;
            x->alen = (size_t) (sp - text.data) - off;
            x->b = x->a + x->alen + 1;
            x->blen = l - x->alen - 1;
        } else if (p < end && *p == '[') {
            p = ws(p + 1, end);
            if ((rc = str_into(&p, end, &tmp, &text, &x->a, &x->alen)) != KVR_OK) {
                break;
            }
            p = ws(p, end);
            if (p >= end || *p != ',') {
                rc = KVR_ERR_INVAL;
                break;
            }
            p = ws(p + 1, end);
            if ((rc = str_into(&p, end, &tmp, &text, &x->b, &x->blen)) != KVR_OK) {
                break;
            }
            p = ws(p, end);
            if (p >= end || *p != ']') {
                rc = KVR_ERR_INVAL;
                break;
            }
            p++;
        } else {
            rc = KVR_ERR_INVAL;
            break;
        }
        if (++n == KVR_TOK_MERGE_BATCH) {
            if ((rc = fn(arg, text.data, m, n, rank0)) != KVR_OK) {
                break;
            }
            rank0 += n;
            n = 0;
            kvr_buf_reset(&text);
        }
        p = ws(p, end);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        rc = p < end && *p == ']' ? KVR_OK : KVR_ERR_INVAL;
        if (rc == KVR_OK && n > 0) {
            rc = fn(arg, text.data, m, n, rank0);
        }
        break;
    }
    kvr_buf_free(&tmp);
    kvr_buf_free(&text);
    return rc;
}
