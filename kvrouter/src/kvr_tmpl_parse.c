/*
 * kvrouter: chat templates, the parser: helpers and expressions. The
 * parser mirrors @huggingface/jinja's parse() rule for rule (precedence,
 * the optional commas of its list parsers, `x if c` without else as a
 * select), so a template parses here
 * iff it parses there. On top of it: unsupported filters and tests, and
 * filter forms the reference could never apply, are rejected here with
 * their line rather than at render time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvr_tmpl_parse_int.h"

int
kvr_tmpl_p_perr(kvr_tmpl_parser_t *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

int
kvr_tmpl_p_perr(kvr_tmpl_parser_t *p, int line, const char *fmt, ...)
{
    va_list  ap;
    char     msg[200];

    if (p->err && p->errlen) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(p->err, p->errlen, "chat_template:%d: %s", line, msg);
    }
    return KVR_ERR_INVAL;
}

int
kvr_tmpl_p_nomem(kvr_tmpl_parser_t *p)
{
    if (p->err && p->errlen) {
        snprintf(p->err, p->errlen, "chat_template: out of memory");
    }
    return KVR_ERR_NOMEM;
}

kvr_tmpl_node_t *
kvr_tmpl_p_mk(kvr_tmpl_parser_t *p, int kind, int line)
{
    kvr_tmpl_node_t  *n = NULL;

    n = kvr_tmpl_alloc(p->a, sizeof(*n));
    if (n) {
        n->kind = kind;
        n->line = line;
    }
    return n;
}

int
kvr_tmpl_p_nl_push(kvr_tmpl_parser_t *p, kvr_tmpl_nlist_t *l,
                   kvr_tmpl_node_t *n)
{
    kvr_tmpl_node_t  **v;

    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        v = kvr_tmpl_alloc(p->a, l->cap * sizeof(*v));
        if (v == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        if (l->n) {
            memcpy(v, l->v, l->n * sizeof(*v));
        }
        l->v = v;
    }
    l->v[l->n++] = n;
    return KVR_OK;
}

const char *
kvr_tmpl_p_tname(int type)
{
    static const char *names[] = {
        "end of template", "text", "number", "string", "identifier", "'='",
        "'('", "')'", "'{%'", "'%}'", "'{{'", "'}}'", "'['", "']'", "'{'",
        "'}'", "','", "'.'", "':'", "'|'", "operator", "operator", "'**'",
        "comparison", "unary operator", "comment"
    };

    return type >= 0 && type <= TK_COMMENT ? names[type] : "token";
}

int
kvr_tmpl_p_is(kvr_tmpl_parser_t *p, int type)
{
    return p->cur < p->nt && p->t[p->cur].type == type;
}

int
kvr_tmpl_p_tok_is(const kvr_tmpl_tok_t *t, const char *s)
{
    return t->type == TK_IDENT && t->n == strlen(s)
           && memcmp(t->s, s, t->n) == 0;
}

int
kvr_tmpl_p_is_ident(kvr_tmpl_parser_t *p, const char *s)
{
    return p->cur < p->nt && kvr_tmpl_p_tok_is(&p->t[p->cur], s);
}

int
kvr_tmpl_p_expect(kvr_tmpl_parser_t *p, int type, const char *what)
{
    const kvr_tmpl_tok_t  *t = KVR_TMPL_TOK(p);

    if (t->type != type) {
        return kvr_tmpl_p_perr(p, t->line, "expected %s, got %s", what,
                               kvr_tmpl_p_tname(t->type));
    }
    p->cur++;
    return KVR_OK;
}

static int parse_call(kvr_tmpl_parser_t *p, kvr_tmpl_node_t *callee,
    kvr_tmpl_node_t **out);

/* call: args of a call; parameters: a macro's declaration */
int
kvr_tmpl_parse_args(kvr_tmpl_parser_t *p, int params, kvr_tmpl_node_t ***out,
                    size_t *nout)
{
    kvr_tmpl_nlist_t           l = { 0 };
    kvr_tmpl_node_t  *arg = NULL, *kw = NULL, *sp = NULL;
    size_t            i;
    int               rc, saw_kw, saw_spread, kwspread, spread, line;

    rc = kvr_tmpl_p_expect(p, TK_LPAREN, "'(' of an argument list");
    if (rc) {
        return rc;
    }
    saw_kw = saw_spread = 0;
    while (!kvr_tmpl_p_is(p, TK_RPAREN)) {
        line = KVR_TMPL_TOK(p)->line;
        if (kvr_tmpl_p_is(p, TK_EOF)) {
            return kvr_tmpl_p_perr(p, line,
                                   "unexpected end of template in arguments");
        }
        kwspread = kvr_tmpl_p_is(p, TK_POW);
        spread = kvr_tmpl_p_is(p, TK_MUL) && KVR_TMPL_TOK(p)->n == 1
                 && KVR_TMPL_TOK(p)->s[0] == '*';
        if (params && (kwspread || spread)) {
            return kvr_tmpl_p_perr(p, line,
                                   "argument unpacking is not allowed in "
                                   "parameter declarations");
        }
        if (kwspread) {
            p->cur++;
            sp = kvr_tmpl_p_mk(p, N_KWSPREAD, line);
            if (sp == NULL) {
                return kvr_tmpl_p_nomem(p);
            }
            rc = kvr_tmpl_parse_expr(p, &sp->a);
            if (rc) {
                return rc;
            }
            rc = kvr_tmpl_p_nl_push(p, &l, sp);
            if (rc) {
                return rc;
            }
            if (kvr_tmpl_p_is(p, TK_COMMA)) {
                p->cur++;
            }
            if (!kvr_tmpl_p_is(p, TK_RPAREN)) {
                return kvr_tmpl_p_perr(p, KVR_TMPL_TOK(p)->line,
                                       "expected ')': ** must be "
                                       "applied to the final argument");
            }
            break;
        }
        if (spread) {
            if (saw_spread) {
                return kvr_tmpl_p_perr(p, line,
                                       "only one * argument unpacking is "
                                       "allowed");
            }
            saw_spread = 1;
            p->cur++;
            arg = kvr_tmpl_p_mk(p, N_SPREAD, line);
            if (arg == NULL) {
                return kvr_tmpl_p_nomem(p);
            }
            rc = kvr_tmpl_parse_expr(p, &arg->a);
            if (rc) {
                return rc;
            }
        } else {
            rc = kvr_tmpl_parse_expr(p, &arg);
            if (rc) {
                return rc;
            }
            if (kvr_tmpl_p_is(p, TK_EQUALS)) {
                p->cur++;
                if (arg->kind != N_IDENT) {
                    return kvr_tmpl_p_perr(p, line, params
                                ? "expected identifier for parameter "
                                  "declaration"
                                : "expected identifier for keyword argument");
                }
                kw = kvr_tmpl_p_mk(p, N_KWARG, line);
                if (kw == NULL) {
                    return kvr_tmpl_p_nomem(p);
                }
                kw->s = arg->s;
                kw->n = arg->n;
                rc = kvr_tmpl_parse_expr(p, &kw->a);
                if (rc) {
                    return rc;
                }
                arg = kw;
            }
            if (params) {
                if (arg->kind != N_IDENT && arg->kind != N_KWARG) {
                    return kvr_tmpl_p_perr(p, line,
                                           "expected identifier for parameter "
                                           "declaration");
                }
                for (i = 0; i < l.n; i++) {
                    if (l.v[i]->n == arg->n
                        && memcmp(l.v[i]->s, arg->s, arg->n) == 0)
                    {
                        return kvr_tmpl_p_perr(
                            p, line, "duplicate parameter name: %.*s",
                            (int) arg->n, arg->s);
                    }
                }
            }
            if (arg->kind == N_KWARG) {
                saw_kw = 1;
            } else if (saw_kw) {
                return kvr_tmpl_p_perr(p, line, params
                            ? "non-default argument follows default argument"
                            : "positional arguments must come before keyword "
                              "arguments");
            } else if (saw_spread) {
                return kvr_tmpl_p_perr(p, line,
                                       "positional arguments must not follow "
                                       "* argument unpacking");
            }
        }
        rc = kvr_tmpl_p_nl_push(p, &l, arg);
        if (rc) {
            return rc;
        }
        if (kvr_tmpl_p_is(p, TK_COMMA)) {
            p->cur++;
        }
    }
    rc = kvr_tmpl_p_expect(p, TK_RPAREN, "')'");
    if (rc) {
        return rc;
    }
    *out = l.v;
    *nout = l.n;
    return KVR_OK;
}

int
kvr_tmpl_parse_seq(kvr_tmpl_parser_t *p, int primary, kvr_tmpl_node_t **out)
{
    kvr_tmpl_nlist_t           l = { 0 };
    kvr_tmpl_node_t  *e = NULL, *t = NULL;
    int               rc, line;

    line = KVR_TMPL_TOK(p)->line;
    rc = primary ? kvr_tmpl_parse_primary(p, &e) : kvr_tmpl_parse_expr(p, &e);
    if (rc) {
        return rc;
    }
    if (!kvr_tmpl_p_is(p, TK_COMMA)) {
        *out = e;
        return KVR_OK;
    }
    rc = kvr_tmpl_p_nl_push(p, &l, e);
    while (rc == KVR_OK) {
        p->cur++;
        rc = primary ? kvr_tmpl_parse_primary(p, &e)
                     : kvr_tmpl_parse_expr(p, &e);
        if (rc) {
            return rc;
        }
        rc = kvr_tmpl_p_nl_push(p, &l, e);
        if (rc || !kvr_tmpl_p_is(p, TK_COMMA)) {
            break;
        }
    }
    if (rc) {
        return rc;
    }
    t = kvr_tmpl_p_mk(p, N_TUPLE, line);
    if (t == NULL) {
        return kvr_tmpl_p_nomem(p);
    }
    t->list = l.v;
    t->nlist = l.n;
    *out = t;
    return KVR_OK;
}

static int
parse_member_args(kvr_tmpl_parser_t *p, kvr_tmpl_node_t **out)
{
    kvr_tmpl_node_t  *sl[3], *e = NULL, *s = NULL;
    size_t            n;
    int               rc, slice, line;

    n = 0;
    slice = 0;
    line = KVR_TMPL_TOK(p)->line;
    while (!kvr_tmpl_p_is(p, TK_RBRACKET)) {
        if (kvr_tmpl_p_is(p, TK_EOF)) {
            return kvr_tmpl_p_perr(p, line,
                                   "unexpected end of template in '[...]'");
        }
        if (kvr_tmpl_p_is(p, TK_COLON)) {
            e = NULL;
            p->cur++;
            slice = 1;
        } else {
            rc = kvr_tmpl_parse_expr(p, &e);
            if (rc) {
                return rc;
            }
            if (kvr_tmpl_p_is(p, TK_COLON)) {
                p->cur++;
                slice = 1;
            }
        }
        if (n == 3) {
            return kvr_tmpl_p_perr(p, line, "expected 0-3 arguments for slice "
                        "expression");
        }
        sl[n++] = e;
    }
    if (n == 0) {
        return kvr_tmpl_p_perr(p, line, "expected at least one argument for "
                    "member/slice expression");
    }
    if (!slice) {
        *out = sl[0];
        return KVR_OK;
    }
    s = kvr_tmpl_p_mk(p, N_SLICE, line);
    if (s == NULL) {
        return kvr_tmpl_p_nomem(p);
    }
    s->a = sl[0];
    s->b = n > 1 ? sl[1] : NULL;
    s->c = n > 2 ? sl[2] : NULL;
    *out = s;
    return KVR_OK;
}

static int
parse_member(kvr_tmpl_parser_t *p, kvr_tmpl_node_t *obj, kvr_tmpl_node_t **out)
{
    kvr_tmpl_node_t  *m = NULL, *prop = NULL;
    int               rc, computed, line;

    while (kvr_tmpl_p_is(p, TK_DOT) || kvr_tmpl_p_is(p, TK_LBRACKET)) {
        line = KVR_TMPL_TOK(p)->line;
        computed = kvr_tmpl_p_is(p, TK_LBRACKET);
        p->cur++;
        if (computed) {
            rc = parse_member_args(p, &prop);
            if (rc) {
                return rc;
            }
            rc = kvr_tmpl_p_expect(p, TK_RBRACKET, "']'");
        } else {
            rc = kvr_tmpl_parse_primary(p, &prop);
            if (rc == KVR_OK && prop->kind != N_IDENT && prop->kind != N_INT) {
                return kvr_tmpl_p_perr(p, line,
                                       "expected identifier or integer "
                                       "following '.'");
            }
        }
        if (rc) {
            return rc;
        }
        m = kvr_tmpl_p_mk(p, N_MEMBER, line);
        if (m == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        m->a = obj;
        m->b = prop;
        m->flag = computed;
        obj = m;
    }
    *out = obj;
    return KVR_OK;
}

static int
parse_call(kvr_tmpl_parser_t *p, kvr_tmpl_node_t *callee,
           kvr_tmpl_node_t **out)
{
    kvr_tmpl_node_t  *c = NULL, *e = NULL;
    int               rc;

    KVR_TMPL_PENTER(p);
    c = kvr_tmpl_p_mk(p, N_CALL, KVR_TMPL_TOK(p)->line);
    if (c == NULL) {
        return kvr_tmpl_p_nomem(p);
    }
    c->a = callee;
    rc = kvr_tmpl_parse_args(p, 0, &c->list, &c->nlist);
    if (rc == KVR_OK) {
        rc = parse_member(p, c, &e);
    }
    if (rc == KVR_OK && kvr_tmpl_p_is(p, TK_LPAREN)) {
        rc = parse_call(p, e, &e);
    }
    KVR_TMPL_PLEAVE(p);
    if (rc == KVR_OK) {
        *out = e;
    }
    return rc;
}

static int
parse_call_member(kvr_tmpl_parser_t *p, kvr_tmpl_node_t **out)
{
    kvr_tmpl_node_t  *e = NULL;
    int               rc;

    rc = kvr_tmpl_parse_primary(p, &e);
    if (rc == KVR_OK) {
        rc = parse_member(p, e, &e);
    }
    if (rc == KVR_OK && kvr_tmpl_p_is(p, TK_LPAREN)) {
        rc = parse_call(p, e, &e);
    }
    if (rc == KVR_OK) {
        *out = e;
    }
    return rc;
}

static int
parse_unary_sign(kvr_tmpl_parser_t *p, kvr_tmpl_node_t **out)
{
    const kvr_tmpl_tok_t  *t = KVR_TMPL_TOK(p);
    kvr_tmpl_node_t       *u = NULL;
    int                    rc;

    if ((t->type == TK_UNARY || t->type == TK_ADD) && t->n == 1
        && (t->s[0] == '-' || t->s[0] == '+'))
    {
        KVR_TMPL_PENTER(p);
        p->cur++;
        u = kvr_tmpl_p_mk(p, N_UNARY, t->line);
        if (u == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        u->op = t->s[0] == '-' ? OP_SUB : OP_ADD;
        rc = parse_unary_sign(p, &u->a);
        KVR_TMPL_PLEAVE(p);
        *out = u;
        return rc;
    }
    return parse_call_member(p, out);
}

/* a filter: an identifier, or a call of one with nothing after it */
int
kvr_tmpl_parse_filter_spec(kvr_tmpl_parser_t *p, kvr_tmpl_node_t **out,
                           int *fid)
{
    kvr_tmpl_node_t  *f = NULL;
    int               rc, line;

    line = KVR_TMPL_TOK(p)->line;
    rc = kvr_tmpl_parse_primary(p, &f);
    if (rc) {
        return rc;
    }
    if (f->kind != N_IDENT) {
        return kvr_tmpl_p_perr(p, line, "expected identifier for the filter");
    }
    *fid = kvr_tmpl_filter_id(f->s, f->n);
    if (*fid < 0) {
        return kvr_tmpl_p_perr(p, line, "unsupported filter \"%.*s\"",
                               (int) f->n, f->s);
    }
    if (kvr_tmpl_p_is(p, TK_LPAREN)) {
        rc = parse_call(p, f, &f);
        if (rc) {
            return rc;
        }
        if (f->kind != N_CALL || f->a->kind != N_IDENT) {
            return kvr_tmpl_p_perr(p, line, "unsupported filter expression");
        }
    }
    *out = f;
    return KVR_OK;
}

static int
parse_filter(kvr_tmpl_parser_t *p, kvr_tmpl_node_t **out)
{
    kvr_tmpl_node_t  *e = NULL, *f = NULL;
    int               rc, line;

    rc = parse_unary_sign(p, &e);
    while (rc == KVR_OK && kvr_tmpl_p_is(p, TK_PIPE)) {
        line = KVR_TMPL_TOK(p)->line;
        p->cur++;
        f = kvr_tmpl_p_mk(p, N_FILTER, line);
        if (f == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        f->a = e;
        rc = kvr_tmpl_parse_filter_spec(p, &f->b, &f->op);
        e = f;
    }
    if (rc == KVR_OK) {
        *out = e;
    }
    return rc;
}

static int
parse_test(kvr_tmpl_parser_t *p, kvr_tmpl_node_t **out)
{
    kvr_tmpl_node_t  *e = NULL, *t = NULL, *name = NULL;
    int               rc, line, neg;

    rc = parse_filter(p, &e);
    while (rc == KVR_OK && kvr_tmpl_p_is_ident(p, "is")) {
        line = KVR_TMPL_TOK(p)->line;
        p->cur++;
        neg = kvr_tmpl_p_is_ident(p, "not");
        p->cur += neg;
        rc = kvr_tmpl_parse_primary(p, &name);
        if (rc) {
            return rc;
        }
        if (name->kind != N_IDENT) {
            return kvr_tmpl_p_perr(p, line,
                                   "expected identifier for the test");
        }
        t = kvr_tmpl_p_mk(p, N_TEST, line);
        if (t == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        t->a = e;
        t->s = name->s;
        t->n = name->n;
        t->flag = neg;
        t->op = kvr_tmpl_test_id(name->s, name->n);
        if (t->op < 0) {
            return kvr_tmpl_p_perr(p, line, "unsupported test \"%.*s\"",
                                   (int) name->n, name->s);
        }
        e = t;
    }
    if (rc == KVR_OK) {
        *out = e;
    }
    return rc;
}

static int
binop(const kvr_tmpl_tok_t *t)
{
    static const struct {
        const char  *s;
        int          op;
    } ops[] = {
        { "==", OP_EQ }, { "!=", OP_NE }, { "<", OP_LT }, { ">", OP_GT },
        { "<=", OP_LE }, { ">=", OP_GE }, { "+", OP_ADD }, { "-", OP_SUB },
        { "~", OP_CONCAT }, { "*", OP_MUL }, { "/", OP_DIV },
        { "//", OP_FLOORDIV }, { "%", OP_MOD }, { "**", OP_POW },
        { "and", OP_AND }, { "or", OP_OR }, { "in", OP_IN },
    };
    size_t  i;

    for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (t->n == strlen(ops[i].s) && memcmp(t->s, ops[i].s, t->n) == 0) {
            return ops[i].op;
        }
    }
    return 0;
}

static int
mkbin(kvr_tmpl_parser_t *p, int op, int line, kvr_tmpl_node_t *l,
      kvr_tmpl_node_t *r, kvr_tmpl_node_t **out)
{
    kvr_tmpl_node_t  *b = NULL;

    b = kvr_tmpl_p_mk(p, N_BINARY, line);
    if (b == NULL) {
        return kvr_tmpl_p_nomem(p);
    }
    b->op = op;
    b->a = l;
    b->b = r;
    *out = b;
    return KVR_OK;
}

static int parse_not(kvr_tmpl_parser_t *p, kvr_tmpl_node_t **out);

/*
 * The binary precedence levels, loosest first. Every level is
 * left-associative (as in Jinja, "**" included) and parsed by the one
 * loop in parse_level(): operand (op operand)*. The operand is the next
 * level down unless the row names a function: "and" binds "not" (a
 * unary prefix), "**" binds filters and tests.
 */
enum { LV_OR, LV_AND, LV_CMP, LV_ADD, LV_MUL, LV_POW };

typedef struct {
    int           tk;       /* operator token type, unless kw */
    const char   *kw;       /* keyword operator ("or", "and") */
    int           op;       /* the node's op; 0: binop() of the token */
    int           in;       /* also takes "in" and "not in" */
    int         (*operand)(kvr_tmpl_parser_t *p, kvr_tmpl_node_t **out);
} binlevel_t;

static const binlevel_t  levels[] = {
    [LV_OR]  = { TK_EOF, "or",  OP_OR,  0, NULL },
    [LV_AND] = { TK_EOF, "and", OP_AND, 0, parse_not },
    [LV_CMP] = { TK_CMP, NULL,  0,      1, NULL },
    [LV_ADD] = { TK_ADD, NULL,  0,      0, NULL },
    [LV_MUL] = { TK_MUL, NULL,  0,      0, NULL },
    [LV_POW] = { TK_POW, NULL,  OP_POW, 0, parse_test },
};

/* How many tokens the level's operator at the cursor spans (0: none),
 * its op in *op. */
static size_t
level_op(kvr_tmpl_parser_t *p, const binlevel_t *lv, int *op)
{
    if (lv->kw != NULL) {
        *op = lv->op;
        return kvr_tmpl_p_is_ident(p, lv->kw) ? 1 : 0;
    }
    if (lv->in && p->cur + 1 < p->nt && kvr_tmpl_p_is_ident(p, "not")
        && kvr_tmpl_p_tok_is(&p->t[p->cur + 1], "in"))
    {
        *op = OP_NOTIN;
        return 2;
    }
    if (lv->in && kvr_tmpl_p_is_ident(p, "in")) {
        *op = OP_IN;
        return 1;
    }
    if (!kvr_tmpl_p_is(p, lv->tk)) {
        return 0;
    }
    *op = lv->op ? lv->op : binop(KVR_TMPL_TOK(p));
    return 1;
}

static int parse_level(kvr_tmpl_parser_t *p, int lv, kvr_tmpl_node_t **out);

static int
parse_operand(kvr_tmpl_parser_t *p, int lv, kvr_tmpl_node_t **out)
{
    if (levels[lv].operand != NULL) {
        return levels[lv].operand(p, out);
    }
    return parse_level(p, lv + 1, out);
}

static int
parse_level(kvr_tmpl_parser_t *p, int lv, kvr_tmpl_node_t **out)
{
    kvr_tmpl_node_t  *l = NULL, *r = NULL;
    size_t            n;
    int               rc, line, op;

    rc = parse_operand(p, lv, &l);
    while (rc == KVR_OK) {
        n = level_op(p, &levels[lv], &op);
        if (n == 0) {
            break;
        }
        line = KVR_TMPL_TOK(p)->line;
        p->cur += n;
        rc = parse_operand(p, lv, &r);
        if (rc == KVR_OK) {
            rc = mkbin(p, op, line, l, r, &l);
        }
    }
    if (rc == KVR_OK) {
        *out = l;
    }
    return rc;
}

static int
parse_not(kvr_tmpl_parser_t *p, kvr_tmpl_node_t **out)
{
    kvr_tmpl_node_t  *u = NULL;
    int               rc, line;

    u = NULL;
    while (kvr_tmpl_p_is_ident(p, "not")) {
        line = KVR_TMPL_TOK(p)->line;
        KVR_TMPL_PENTER(p);
        p->cur++;
        u = kvr_tmpl_p_mk(p, N_UNARY, line);
        if (u == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        u->op = OP_NOT;
        rc = parse_not(p, &u->a);
        KVR_TMPL_PLEAVE(p);
        if (rc) {
            return rc;
        }
    }
    if (u) {
        *out = u;
        return KVR_OK;
    }
    return parse_level(p, LV_CMP, out);
}

static int
parse_if_expr(kvr_tmpl_parser_t *p, kvr_tmpl_node_t **out)
{
    kvr_tmpl_node_t  *a = NULL, *t = NULL, *n = NULL;
    int               rc, line;

    rc = parse_level(p, LV_OR, &a);
    if (rc || !kvr_tmpl_p_is_ident(p, "if")) {
        if (rc == KVR_OK) {
            *out = a;
        }
        return rc;
    }
    line = KVR_TMPL_TOK(p)->line;
    p->cur++;
    rc = parse_level(p, LV_OR, &t);
    if (rc) {
        return rc;
    }
    if (kvr_tmpl_p_is_ident(p, "else")) {
        p->cur++;
        n = kvr_tmpl_p_mk(p, N_TERNARY, line);
        if (n == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        n->a = t;
        n->b = a;
        KVR_TMPL_PENTER(p);
        rc = parse_if_expr(p, &n->c);
        KVR_TMPL_PLEAVE(p);
    } else {
        n = kvr_tmpl_p_mk(p, N_SELECT, line);
        if (n == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        n->a = a;
        n->b = t;
    }
    *out = n;
    return rc;
}

int
kvr_tmpl_parse_expr(kvr_tmpl_parser_t *p, kvr_tmpl_node_t **out)
{
    int  rc;

    KVR_TMPL_PENTER(p);
    rc = parse_if_expr(p, out);
    KVR_TMPL_PLEAVE(p);
    return rc;
}

/*
 * The items of a [list] (keys NULL) or {dict} literal, comma-separated
 * (a trailing comma allowed), up to and past the close token: each
 * expression into vals, or each "key: value" into keys and vals.
 */
static int
parse_items(kvr_tmpl_parser_t *p, int close, kvr_tmpl_nlist_t *keys,
    kvr_tmpl_nlist_t *vals)
{
    kvr_tmpl_node_t  *e = NULL, *v = NULL;
    int               rc;

    while (!kvr_tmpl_p_is(p, close)) {
        rc = kvr_tmpl_parse_expr(p, &e);
        v = e;
        if (keys != NULL) {
            if (rc == KVR_OK) {
                rc = kvr_tmpl_p_expect(p, TK_COLON,
                                       "':' between key and value");
            }
            if (rc == KVR_OK) {
                rc = kvr_tmpl_parse_expr(p, &v);
            }
            if (rc == KVR_OK) {
                rc = kvr_tmpl_p_nl_push(p, keys, e);
            }
        }
        if (rc == KVR_OK) {
            rc = kvr_tmpl_p_nl_push(p, vals, v);
        }
        if (rc) {
            return rc;
        }
        if (kvr_tmpl_p_is(p, TK_COMMA)) {
            p->cur++;
        }
    }
    p->cur++;
    return KVR_OK;
}

int
kvr_tmpl_parse_primary(kvr_tmpl_parser_t *p, kvr_tmpl_node_t **out)
{
    const kvr_tmpl_tok_t  *t;
    kvr_tmpl_node_t       *n = NULL;
    kvr_tmpl_nlist_t                keys = { 0 }, vals = { 0 };
    size_t                 len;
    char                  *s, *num;
    int                    rc;

    t = KVR_TMPL_TOK(p);
    if (t->type == TK_EOF) {
        return kvr_tmpl_p_perr(p, t->line, "unexpected end of template");
    }
    p->cur++;
    switch (t->type) {
    case TK_NUM:
        num = kvr_tmpl_strdup(p->a, t->s, t->n);
        n = kvr_tmpl_p_mk(p, memchr(t->s, '.', t->n) ? N_FLOAT : N_INT,
                          t->line);
        if (n == NULL || num == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        n->num = strtod(num, NULL);
        *out = n;
        return KVR_OK;

    case TK_STR:
        n = kvr_tmpl_p_mk(p, N_STR, t->line);
        if (n == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        if (!kvr_tmpl_p_is(p, TK_STR)) {
            n->s = t->s;
            n->n = t->n;
            *out = n;
            return KVR_OK;
        }
        len = t->n;
        while (kvr_tmpl_p_is(p, TK_STR)) {
            len += p->t[p->cur].n;
            p->cur++;
        }
        s = kvr_tmpl_alloc(p->a, len + 1);
        if (s == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        n->s = s;
        for (len = 0; t <= &p->t[p->cur - 1]; t++) {
            memcpy(s + len, t->s, t->n);
            len += t->n;
        }
        n->n = len;
        *out = n;
        return KVR_OK;

    case TK_IDENT:
        n = kvr_tmpl_p_mk(p, N_IDENT, t->line);
        if (n == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        n->s = t->s;
        n->n = t->n;
        *out = n;
        return KVR_OK;

    case TK_LPAREN:
        KVR_TMPL_PENTER(p);
        rc = kvr_tmpl_parse_seq(p, 0, out);
        KVR_TMPL_PLEAVE(p);
        if (rc) {
            return rc;
        }
        return kvr_tmpl_p_expect(p, TK_RPAREN, "')'");

    case TK_LBRACKET:
        KVR_TMPL_PENTER(p);
        n = kvr_tmpl_p_mk(p, N_ARRAY, t->line);
        if (n == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        rc = parse_items(p, TK_RBRACKET, NULL, &vals);
        if (rc) {
            return rc;
        }
        KVR_TMPL_PLEAVE(p);
        n->list = vals.v;
        n->nlist = vals.n;
        *out = n;
        return KVR_OK;

    case TK_LBRACE:
        KVR_TMPL_PENTER(p);
        n = kvr_tmpl_p_mk(p, N_OBJECT, t->line);
        if (n == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        rc = parse_items(p, TK_RBRACE, &keys, &vals);
        if (rc) {
            return rc;
        }
        KVR_TMPL_PLEAVE(p);
        n->list = keys.v;
        n->nlist = keys.n;
        n->list2 = vals.v;
        n->nlist2 = vals.n;
        *out = n;
        return KVR_OK;

    default:
        return kvr_tmpl_p_perr(p, t->line, "unexpected %s",
                               kvr_tmpl_p_tname(t->type));
    }
}
