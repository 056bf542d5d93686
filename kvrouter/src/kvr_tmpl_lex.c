/*
 * kvrouter: chat templates, the lexer. Mirrors @huggingface/jinja's
 * tokenize() with lstrip_blocks and trim_blocks on (what its Template
 * class uses): the same preprocessing regexes, the same token rules, the
 * same errors. Each byte of the preprocessed text keeps the line it had in
 * the source, so errors name source lines.
 */
#include <stdio.h>
#include <string.h>

#include "kvr_tmpl_int.h"

typedef struct {
    char    *s;
    int     *ln;
    size_t   n;
} ptext_t;

static int
pt_alloc(kvr_tmpl_arena_t *a, ptext_t *t, size_t cap)
{
    t->s = kvr_tmpl_alloc(a, cap + 1);
    t->ln = kvr_tmpl_alloc(a, (cap + 1) * sizeof(int));
    t->n = 0;
    return t->s && t->ln ? KVR_OK : KVR_ERR_NOMEM;
}

static void
pt_put(ptext_t *t, const ptext_t *src, size_t i)
{
    t->s[t->n] = src->s[i];
    t->ln[t->n] = src->ln[i];
    t->n++;
}

/* JavaScript's ^ in multiline mode: after \n, \r, U+2028, U+2029 */
static int
line_start(const ptext_t *t, size_t i)
{
    if (i == 0) {
        return 1;
    }
    if (t->s[i - 1] == '\n' || t->s[i - 1] == '\r') {
        return 1;
    }
    return i >= 3 && (unsigned char) t->s[i - 3] == 0xe2
           && (unsigned char) t->s[i - 2] == 0x80
           && ((unsigned char) t->s[i - 1] == 0xa8
               || (unsigned char) t->s[i - 1] == 0xa9);
}

/* lstrip_blocks: /^[ \t]*({[#%-])/gm -> "$1" */
static void
lstrip_blocks(const ptext_t *in, ptext_t *out)
{
    size_t  i, j;

    for (i = 0; i < in->n; ) {
        if (line_start(in, i)) {
            j = i;
            while (j < in->n && (in->s[j] == ' ' || in->s[j] == '\t')) {
                j++;
            }
            if (j + 1 < in->n && in->s[j] == '{'
                && (in->s[j + 1] == '#' || in->s[j + 1] == '%'
                    || in->s[j + 1] == '-'))
            {
                pt_put(out, in, j);
                pt_put(out, in, j + 1);
                i = j + 2;
                continue;
            }
        }
        pt_put(out, in, i);
        i++;
    }
}

/* trim_blocks: /([#%-]})\n/g -> "$1" */
static void
trim_blocks(const ptext_t *in, ptext_t *out)
{
    size_t  i;

    for (i = 0; i < in->n; ) {
        if (i + 2 < in->n && (in->s[i] == '#' || in->s[i] == '%'
                              || in->s[i] == '-')
            && in->s[i + 1] == '}' && in->s[i + 2] == '\n')
        {
            pt_put(out, in, i);
            pt_put(out, in, i + 1);
            i += 3;
            continue;
        }
        pt_put(out, in, i);
        i++;
    }
}

static size_t
skip_space(const ptext_t *t, size_t i)
{
    size_t  k;

    while (i < t->n && (k = kvr_tmpl_js_space(t->s + i, t->s + t->n)) > 0) {
        i += k;
    }
    return i;
}

/* {%-? \s* (end)?generation \s* -?%} at i: its end, 0 if none */
static size_t
generation_tag(const ptext_t *t, size_t i, int *lstrip, int *rstrip)
{
    size_t  j;

    if (i + 1 >= t->n || t->s[i] != '{' || t->s[i + 1] != '%') {
        return 0;
    }
    j = i + 2;
    *lstrip = j < t->n && t->s[j] == '-';
    j += *lstrip;
    j = skip_space(t, j);
    if (j + 3 <= t->n && memcmp(t->s + j, "end", 3) == 0
        && !(j + 10 <= t->n && memcmp(t->s + j, "generation", 10) == 0))
    {
        j += 3;
    }
    if (j + 10 > t->n || memcmp(t->s + j, "generation", 10) != 0) {
        return 0;
    }
    j = skip_space(t, j + 10);
    *rstrip = j < t->n && t->s[j] == '-';
    j += *rstrip;
    if (j + 1 >= t->n || t->s[j] != '%' || t->s[j + 1] != '}') {
        return 0;
    }
    return j + 2;
}

/*
 * /(\s*){%(-?)\s*(?:end)?generation\s*(-?)%}(\s*)/gs ->
 * (lstrip ? "" : before) + (rstrip ? "" : after)
 */
static void
generation_tags(const ptext_t *in, ptext_t *out)
{
    size_t  i, e, k, ws_start;
    int     l, r;

    ws_start = 0;
    for (i = 0; i < in->n; ) {
        e = generation_tag(in, i, &l, &r);
        if (e) {
            if (l) {
                out->n = ws_start;
            }
            i = e;
            k = skip_space(in, i);
            if (!r) {
                while (i < k) {
                    pt_put(out, in, i++);
                }
            }
            i = k;
            ws_start = out->n;
            continue;
        }
        k = kvr_tmpl_js_space(in->s + i, in->s + in->n);
        if (k == 0) {
            pt_put(out, in, i++);
            ws_start = out->n;
        } else {
            while (k--) {
                pt_put(out, in, i++);
            }
        }
    }
}

/* ---- tokenizer ---- */

typedef struct {
    kvr_tmpl_arena_t  *a;
    const char        *s;
    const int         *ln;
    size_t             n;
    size_t             pos;
    kvr_tmpl_tok_t    *t;
    size_t             nt, cap;
    char              *scratch;    /* n + 1 bytes, reused by every token */
    char              *err;
    size_t             errlen;
} lexer_t;

static int
lex_error(lexer_t *lx, const char *fmt, const char *arg)
{
    int  line;

    line = lx->n == 0 ? 1 : lx->ln[lx->pos < lx->n ? lx->pos : lx->n - 1];
    if (lx->err && lx->errlen) {
        char  msg[160];

        snprintf(msg, sizeof(msg), fmt, arg);
        snprintf(lx->err, lx->errlen, "chat_template:%d: %s", line, msg);
    }
    return KVR_ERR_INVAL;
}

static int
push(lexer_t *lx, int type, const char *s, size_t n, int line)
{
    kvr_tmpl_tok_t  *nt;

    if (lx->nt == lx->cap) {
        lx->cap = lx->cap ? lx->cap * 2 : 256;
        nt = kvr_tmpl_alloc(lx->a, lx->cap * sizeof(*nt));
        if (nt == NULL) {
            return KVR_ERR_NOMEM;
        }
        if (lx->nt) {
            memcpy(nt, lx->t, lx->nt * sizeof(*nt));
        }
        lx->t = nt;
    }
    lx->t[lx->nt].type = type;
    lx->t[lx->nt].s = s;
    lx->t[lx->nt].n = n;
    lx->t[lx->nt].line = line;
    lx->nt++;
    return KVR_OK;
}

static int
last_type(lexer_t *lx)
{
    return lx->nt ? lx->t[lx->nt - 1].type : -1;
}

static int
line_at(lexer_t *lx, size_t pos)
{
    return lx->n == 0 ? 1 : lx->ln[pos < lx->n ? pos : lx->n - 1];
}

static int
is_word(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
           || (ch >= '0' && ch <= '9') || ch == '_';
}

static int
is_digit(int ch)
{
    return ch >= '0' && ch <= '9';
}

static int
hexval(int ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

enum { P_WORD, P_DIGIT, P_NOTQ1, P_NOTQ2 };

static int
pred(int p, int ch)
{
    switch (p) {
    case P_WORD:
        return is_word(ch);
    case P_DIGIT:
        return is_digit(ch);
    case P_NOTQ1:
        return ch != '\'';
    default:
        return ch != '"';
    }
}

/*
 * consumeWhile(): backslash escapes are decoded; running into the end of
 * input after a consumed character is an error, as in the reference.
 */
static int
consume_while(lexer_t *lx, int p, char **out, size_t *outn)
{
    size_t    start, i, k, len;
    char     *buf;
    uint32_t  cp;
    int       h;
    char      ch, esc;

    start = lx->pos;
    buf = lx->scratch;
    len = 0;
    /* src[n] is undefined in JavaScript: no predicate accepts it */
    while (lx->pos < lx->n && pred(p, (unsigned char) lx->s[lx->pos])) {
        ch = lx->s[lx->pos];
        if (ch == '\\') {
            lx->pos++;
            if (lx->pos >= lx->n) {
                return lex_error(lx, "%sUnexpected end of input", "");
            }
            esc = lx->s[lx->pos++];
            if (esc == 'x' || esc == 'u') {
                k = esc == 'x' ? 2 : 4;
                cp = 0;
                for (i = 0; i < k; i++) {
                    h = lx->pos + i < lx->n
                        ? hexval((unsigned char) lx->s[lx->pos + i]) : -1;
                    if (h < 0) {
                        return lex_error(lx,
                            "Invalid hexadecimal escape sequence: \\%s",
                            esc == 'x' ? "x" : "u");
                    }
                    cp = cp * 16 + (uint32_t) h;
                }
                len += kvr_tmpl_utf8_put(cp, buf + len);
                lx->pos += k;
                continue;
            }
            switch (esc) {
            case 'n': ch = '\n'; break;
            case 't': ch = '\t'; break;
            case 'r': ch = '\r'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'v': ch = '\v'; break;
            case '\'': case '"': case '\\': ch = esc; break;
            default: {
                char  e[2] = { esc, 0 };

                return lex_error(lx, "Unexpected escaped character: %s", e);
            }
            }
            buf[len++] = ch;
            continue;
        }
        buf[len++] = ch;
        lx->pos++;
        if (lx->pos >= lx->n) {
            return lex_error(lx, "%sUnexpected end of input", "");
        }
    }
    (void) start;
    *out = kvr_tmpl_strdup(lx->a, buf, len);
    *outn = len;
    return *out ? KVR_OK : KVR_ERR_NOMEM;
}

static void
strip_trailing_ws(lexer_t *lx)
{
    kvr_tmpl_tok_t  *t;

    if (lx->nt == 0 || lx->t[lx->nt - 1].type != TK_TEXT) {
        return;
    }
    t = &lx->t[lx->nt - 1];
    kvr_tmpl_js_trim(&t->s, &t->n, 0, 1);
    if (t->n == 0) {
        lx->nt--;
    }
}

static void
skip_leading_ws(lexer_t *lx)
{
    size_t  k;

    while (lx->pos < lx->n
           && (k = kvr_tmpl_js_space(lx->s + lx->pos, lx->s + lx->n)) > 0)
    {
        lx->pos += k;
    }
}

static int
starts(lexer_t *lx, const char *seq)
{
    size_t  k = strlen(seq);

    return lx->pos + k <= lx->n && memcmp(lx->s + lx->pos, seq, k) == 0;
}

static const struct {
    const char  *seq;
    int          type;
} table[] = {
    { "{%", TK_OPEN_STMT }, { "%}", TK_CLOSE_STMT },
    { "{{", TK_OPEN_EXPR }, { "}}", TK_CLOSE_EXPR },
    { "(", TK_LPAREN }, { ")", TK_RPAREN }, { "{", TK_LBRACE },
    { "}", TK_RBRACE }, { "[", TK_LBRACKET }, { "]", TK_RBRACKET },
    { ",", TK_COMMA }, { ".", TK_DOT }, { ":", TK_COLON }, { "|", TK_PIPE },
    { "<=", TK_CMP }, { ">=", TK_CMP }, { "==", TK_CMP }, { "!=", TK_CMP },
    { "<", TK_CMP }, { ">", TK_CMP },
    { "+", TK_ADD }, { "-", TK_ADD }, { "~", TK_ADD },
    { "**", TK_POW }, { "*", TK_MUL }, { "//", TK_MUL }, { "/", TK_MUL },
    { "%", TK_MUL }, { "=", TK_EQUALS },
};

static int
tokenize(lexer_t *lx)
{
    size_t   start, i, k, nn;
    int      lt, rc, depth, line, strip_after;
    char    *str, *str2, *num;
    char     ch, q[2];

    depth = 0;
    while (lx->pos < lx->n) {
        lt = last_type(lx);
        if (lt == -1 || lt == TK_CLOSE_STMT || lt == TK_CLOSE_EXPR
            || lt == TK_COMMENT)
        {
            start = lx->pos;
            while (lx->pos < lx->n
                   && !(lx->s[lx->pos] == '{' && lx->pos + 1 < lx->n
                        && (lx->s[lx->pos + 1] == '%'
                            || lx->s[lx->pos + 1] == '{'
                            || lx->s[lx->pos + 1] == '#')))
            {
                lx->pos++;
            }
            if (lx->pos > start) {
                rc = push(lx, TK_TEXT, lx->s + start, lx->pos - start,
                          line_at(lx, start));
                if (rc) {
                    return rc;
                }
                continue;
            }
        }

        if (starts(lx, "{#")) {
            line = line_at(lx, lx->pos);
            lx->pos += 2;
            k = lx->pos < lx->n && lx->s[lx->pos] == '-';
            lx->pos += k;
            start = lx->pos;
            while (!(lx->pos + 1 < lx->n && lx->s[lx->pos] == '#'
                     && lx->s[lx->pos + 1] == '}'))
            {
                if (lx->pos + 2 >= lx->n) {
                    return lex_error(lx, "%sMissing end of comment tag", "");
                }
                lx->pos++;
            }
            nn = lx->pos - start;
            strip_after = nn > 0 && lx->s[lx->pos - 1] == '-';
            if (k) {
                strip_trailing_ws(lx);
            }
            rc = push(lx, TK_COMMENT, lx->s + start, nn - strip_after, line);
            if (rc) {
                return rc;
            }
            lx->pos += 2;
            if (strip_after) {
                skip_leading_ws(lx);
            }
            continue;
        }

        if (starts(lx, "{%-")) {
            strip_trailing_ws(lx);
            rc = push(lx, TK_OPEN_STMT, "{%", 2, line_at(lx, lx->pos));
            if (rc) {
                return rc;
            }
            lx->pos += 3;
            continue;
        }
        if (starts(lx, "{{-")) {
            strip_trailing_ws(lx);
            rc = push(lx, TK_OPEN_EXPR, "{{", 2, line_at(lx, lx->pos));
            if (rc) {
                return rc;
            }
            depth = 0;
            lx->pos += 3;
            continue;
        }

        /* consumeWhile(isWhitespace): end of input inside a tag is an error */
        while (lx->pos < lx->n
               && (k = kvr_tmpl_js_space(lx->s + lx->pos, lx->s + lx->n)))
        {
            lx->pos += k;
            if (lx->pos >= lx->n) {
                return lex_error(lx, "%sUnexpected end of input", "");
            }
        }

        if (starts(lx, "-%}")) {
            rc = push(lx, TK_CLOSE_STMT, "%}", 2, line_at(lx, lx->pos));
            if (rc) {
                return rc;
            }
            lx->pos += 3;
            skip_leading_ws(lx);
            continue;
        }
        if (starts(lx, "-}}")) {
            rc = push(lx, TK_CLOSE_EXPR, "}}", 2, line_at(lx, lx->pos));
            if (rc) {
                return rc;
            }
            lx->pos += 3;
            skip_leading_ws(lx);
            continue;
        }

        ch = lx->s[lx->pos];
        line = line_at(lx, lx->pos);
        q[0] = ch;
        q[1] = '\0';

        if (ch == '-' || ch == '+') {
            lt = last_type(lx);
            if (lt == TK_TEXT || lt == -1) {
                return lex_error(lx, "Unexpected character: %s", q);
            }
            if (lt != TK_IDENT && lt != TK_NUM && lt != TK_STR
                && lt != TK_RPAREN && lt != TK_RBRACKET)
            {
                lx->pos++;
                rc = consume_while(lx, P_DIGIT, &str, &nn);
                if (rc) {
                    return rc;
                }
                if (nn > 0 && lx->pos + 1 < lx->n && lx->s[lx->pos] == '.'
                    && is_digit((unsigned char) lx->s[lx->pos + 1]))
                {
                    lx->pos++;
                    rc = consume_while(lx, P_DIGIT, &str2, &k);
                    if (rc) {
                        return rc;
                    }
                    num = kvr_tmpl_alloc(lx->a, nn + k + 3);
                    if (num == NULL) {
                        return KVR_ERR_NOMEM;
                    }
                    num[0] = ch;
                    memcpy(num + 1, str, nn);
                    num[nn + 1] = '.';
                    memcpy(num + nn + 2, str2, k);
                    rc = push(lx, TK_NUM, num, nn + k + 2, line);
                } else if (nn > 0) {
                    num = kvr_tmpl_alloc(lx->a, nn + 2);
                    if (num == NULL) {
                        return KVR_ERR_NOMEM;
                    }
                    num[0] = ch;
                    memcpy(num + 1, str, nn);
                    rc = push(lx, TK_NUM, num, nn + 1, line);
                } else {
                    rc = push(lx, TK_UNARY, ch == '-' ? "-" : "+", 1, line);
                }
                if (rc) {
                    return rc;
                }
                continue;
            }
        }

        for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
            if (table[i].type == TK_CLOSE_EXPR && depth > 0) {
                continue;
            }
            if (starts(lx, table[i].seq)) {
                rc = push(lx, table[i].type, table[i].seq,
                          strlen(table[i].seq), line);
                if (rc) {
                    return rc;
                }
                if (table[i].type == TK_OPEN_EXPR) {
                    depth = 0;
                } else if (table[i].type == TK_LBRACE) {
                    depth++;
                } else if (table[i].type == TK_RBRACE) {
                    depth--;
                }
                lx->pos += strlen(table[i].seq);
                break;
            }
        }
        if (i < sizeof(table) / sizeof(table[0])) {
            continue;
        }

        if (ch == '\'' || ch == '"') {
            lx->pos++;
            rc = consume_while(lx, ch == '\'' ? P_NOTQ1 : P_NOTQ2, &str, &nn);
            if (rc) {
                return rc;
            }
            rc = push(lx, TK_STR, str, nn, line);
            if (rc) {
                return rc;
            }
            lx->pos++;
            continue;
        }

        if (is_digit((unsigned char) ch)) {
            rc = consume_while(lx, P_DIGIT, &str, &nn);
            if (rc) {
                return rc;
            }
            if (last_type(lx) != TK_DOT && lx->pos + 1 < lx->n
                && lx->s[lx->pos] == '.'
                && is_digit((unsigned char) lx->s[lx->pos + 1]))
            {
                lx->pos++;
                rc = consume_while(lx, P_DIGIT, &str2, &k);
                if (rc) {
                    return rc;
                }
                num = kvr_tmpl_alloc(lx->a, nn + k + 2);
                if (num == NULL) {
                    return KVR_ERR_NOMEM;
                }
                memcpy(num, str, nn);
                num[nn] = '.';
                memcpy(num + nn + 1, str2, k);
                str = num;
                nn += k + 1;
            }
            rc = push(lx, TK_NUM, str, nn, line);
            if (rc) {
                return rc;
            }
            continue;
        }
        if (is_word((unsigned char) ch)) {
            rc = consume_while(lx, P_WORD, &str, &nn);
            if (rc) {
                return rc;
            }
            rc = push(lx, TK_IDENT, str, nn, line);
            if (rc) {
                return rc;
            }
            continue;
        }
        if ((unsigned char) ch >= 0x80) {
            uint32_t  cp;
            char      u[8];

            k = kvr_tmpl_utf8_next(lx->s + lx->pos, lx->n - lx->pos, &cp);
            memcpy(u, lx->s + lx->pos, k);
            u[k] = '\0';
            return lex_error(lx, "Unexpected character: %s", u);
        }
        if ((unsigned char) ch < 0x20 || ch == 0x7f) {
            return lex_error(lx, "%sUnexpected control character", "");
        }
        return lex_error(lx, "Unexpected character: %s", q);
    }
    return push(lx, TK_EOF, "", 0, line_at(lx, lx->n));
}

int
kvr_tmpl_lex(kvr_tmpl_arena_t *a, const char *src, size_t len,
    kvr_tmpl_tok_t **toks, size_t *ntoks, char *err, size_t errlen)
{
    ptext_t   t0, t1, t2, t3;
    lexer_t   lx;
    size_t    i;
    int       line, rc;

    if (pt_alloc(a, &t0, len) || pt_alloc(a, &t1, len) || pt_alloc(a, &t2, len)
        || pt_alloc(a, &t3, len))
    {
        return KVR_ERR_NOMEM;
    }
    line = 1;
    for (i = 0; i < len; i++) {
        t0.s[i] = src[i];
        t0.ln[i] = line;
        if (src[i] == '\n') {
            line++;
        }
    }
    t0.n = len;
    if (t0.n > 0 && t0.s[t0.n - 1] == '\n') {
        t0.n--;
    }
    lstrip_blocks(&t0, &t1);
    trim_blocks(&t1, &t2);
    generation_tags(&t2, &t3);
    t3.s[t3.n] = '\0';

    memset(&lx, 0, sizeof(lx));
    lx.a = a;
    lx.s = t3.s;
    lx.ln = t3.ln;
    lx.n = t3.n;
    lx.err = err;
    lx.errlen = errlen;
    lx.scratch = kvr_tmpl_alloc(a, t3.n + 1);
    if (lx.scratch == NULL) {
        return KVR_ERR_NOMEM;
    }
    rc = tokenize(&lx);
    if (rc == KVR_ERR_NOMEM && err && errlen) {
        snprintf(err, errlen, "chat_template: out of memory");
    }
    if (rc) {
        return rc;
    }
    *toks = lx.t;
    *ntoks = lx.nt;
    return KVR_OK;
}
