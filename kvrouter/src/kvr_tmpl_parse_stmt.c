/*
 * kvrouter: chat templates, the parser: statements (if, for, set, macro,
 * call, filter, break, continue), text and the template as a whole,
 * mirroring @huggingface/jinja's parser.
 */
#include <stdio.h>
#include <string.h>

#include "kvr_tmpl_parse_int.h"

static int
is_stmt(kvr_tmpl_parser_t *p, const char *a, const char *b, const char *c)
{
    const kvr_tmpl_tok_t  *t;

    if (p->cur + 1 >= p->nt || p->t[p->cur].type != TK_OPEN_STMT) {
        return 0;
    }
    t = &p->t[p->cur + 1];
    return (a && kvr_tmpl_p_tok_is(t, a)) || (b && kvr_tmpl_p_tok_is(t, b))
           || (c && kvr_tmpl_p_tok_is(t, c));
}

static int
expect_ident(kvr_tmpl_parser_t *p, const char *name)
{
    const kvr_tmpl_tok_t  *t = KVR_TMPL_TOK(p);

    if (!kvr_tmpl_p_tok_is(t, name)) {
        return kvr_tmpl_p_perr(p, t->line, "expected %s", name);
    }
    p->cur++;
    return KVR_OK;
}

static int parse_any(kvr_tmpl_parser_t *p, kvr_tmpl_node_t **out);

/* body until one of the statements a/b/c starts */
static int
parse_body(kvr_tmpl_parser_t *p, const char *a, const char *b, const char *c,
    kvr_tmpl_node_t ***out, size_t *nout)
{
    kvr_tmpl_nlist_t           l = { 0 };
    kvr_tmpl_node_t  *n = NULL;
    int               rc;

    while (!is_stmt(p, a, b, c)) {
        if (kvr_tmpl_p_is(p, TK_EOF)) {
            return kvr_tmpl_p_perr(p, KVR_TMPL_TOK(p)->line,
                                   "unexpected end of template, "
                                   "missing {%% %s %%}",
                                   strncmp(a, "end", 3) == 0        ? a
                                   : b && strncmp(b, "end", 3) == 0 ? b
                                   : c                              ? c
                                                                    : a);
        }
        rc = parse_any(p, &n);
        if (rc) {
            return rc;
        }
        rc = kvr_tmpl_p_nl_push(p, &l, n);
        if (rc) {
            return rc;
        }
    }
    *out = l.v;
    *nout = l.n;
    return KVR_OK;
}

static int
closing(kvr_tmpl_parser_t *p)
{
    return kvr_tmpl_p_expect(p, TK_CLOSE_STMT, "'%}'");
}

static int
end_stmt(kvr_tmpl_parser_t *p, const char *name)
{
    int  rc;

    rc = kvr_tmpl_p_expect(p, TK_OPEN_STMT, "'{%'");
    if (rc == KVR_OK) {
        rc = expect_ident(p, name);
    }
    if (rc == KVR_OK) {
        rc = closing(p);
    }
    return rc;
}

/* "%}", then a body up to {% end %}, then that tag: a block of one body */
static int
block_body(kvr_tmpl_parser_t *p, const char *end, kvr_tmpl_node_t ***out,
    size_t *nout)
{
    int  rc;

    rc = closing(p);
    if (rc == KVR_OK) {
        rc = parse_body(p, end, NULL, NULL, out, nout);
    }
    if (rc == KVR_OK) {
        rc = end_stmt(p, end);
    }
    return rc;
}

static int
parse_if(kvr_tmpl_parser_t *p, int line, kvr_tmpl_node_t **out)
{
    kvr_tmpl_node_t  *n = NULL, *elif = NULL;
    int               rc;

    KVR_TMPL_PENTER(p);
    n = kvr_tmpl_p_mk(p, N_IF, line);
    if (n == NULL) {
        return kvr_tmpl_p_nomem(p);
    }
    rc = kvr_tmpl_parse_expr(p, &n->a);
    if (rc == KVR_OK) {
        rc = closing(p);
    }
    if (rc == KVR_OK) {
        rc = parse_body(p, "elif", "else", "endif", &n->list, &n->nlist);
    }
    if (rc) {
        return rc;
    }
    if (is_stmt(p, "elif", NULL, NULL)) {
        line = p->t[p->cur + 1].line;
        p->cur += 2;
        rc = parse_if(p, line, &elif);
        if (rc) {
            return rc;
        }
        n->list2 = kvr_tmpl_alloc(p->a, sizeof(*n->list2));
        if (n->list2 == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        n->list2[0] = elif;
        n->nlist2 = 1;
    } else if (is_stmt(p, "else", NULL, NULL)) {
        p->cur += 2;
        rc = closing(p);
        if (rc == KVR_OK) {
            rc = parse_body(p, "endif", NULL, NULL, &n->list2, &n->nlist2);
        }
        if (rc) {
            return rc;
        }
    }
    KVR_TMPL_PLEAVE(p);
    *out = n;
    return KVR_OK;
}

/* Which of kwargs/varargs a macro body reads without declaring them. */
static void
special_args(const kvr_tmpl_node_t *n, int *flags, int declared)
{
    size_t  i;

    if (n == NULL) {
        return;
    }
    switch (n->kind) {
    case N_IDENT:
        if (n->n == 6 && memcmp(n->s, "kwargs", 6) == 0
            && !(declared & KVR_TMPL_USES_KWARGS))
        {
            *flags |= KVR_TMPL_USES_KWARGS;
        }
        if (n->n == 7 && memcmp(n->s, "varargs", 7) == 0
            && !(declared & KVR_TMPL_USES_VARARGS))
        {
            *flags |= KVR_TMPL_USES_VARARGS;
        }
        return;
    case N_MEMBER:
        special_args(n->a, flags, declared);
        if (n->flag) {
            special_args(n->b, flags, declared);
        }
        return;
    case N_KWARG:
    case N_FILTER:
        special_args(n->a, flags, declared);
        if (n->kind == N_FILTER && n->b->kind == N_CALL) {
            for (i = 0; i < n->b->nlist; i++) {
                special_args(n->b->list[i], flags, declared);
            }
        }
        return;
    case N_TEST:
        special_args(n->a, flags, declared);
        return;
    case N_MACRO:
        /* a nested macro's own parameters do not count */
        for (i = 0; i < n->nlist; i++) {
            if (n->list[i]->kind == N_KWARG) {
                special_args(n->list[i]->a, flags, declared);
            }
        }
        for (i = 0; i < n->nlist2; i++) {
            special_args(n->list2[i], flags, declared);
        }
        return;
    default:
        break;
    }
    special_args(n->a, flags, declared);
    special_args(n->b, flags, declared);
    special_args(n->c, flags, declared);
    for (i = 0; i < n->nlist; i++) {
        special_args(n->list[i], flags, declared);
    }
    for (i = 0; i < n->nlist2; i++) {
        special_args(n->list2[i], flags, declared);
    }
}

static int
macro_flags(kvr_tmpl_node_t **params, size_t np, kvr_tmpl_node_t **body,
    size_t nb)
{
    int     declared, flags;
    size_t  i;

    declared = flags = 0;
    for (i = 0; i < np; i++) {
        if (params[i]->n == 6 && memcmp(params[i]->s, "kwargs", 6) == 0) {
            declared |= KVR_TMPL_USES_KWARGS;
        }
        if (params[i]->n == 7 && memcmp(params[i]->s, "varargs", 7) == 0) {
            declared |= KVR_TMPL_USES_VARARGS;
        }
    }
    for (i = 0; i < nb; i++) {
        special_args(body[i], &flags, declared);
    }
    return flags;
}

static int
parse_stmt(kvr_tmpl_parser_t *p, kvr_tmpl_node_t **out)
{
    const kvr_tmpl_tok_t  *t;
    kvr_tmpl_node_t       *n = NULL, *callee = NULL, *f = NULL;
    int                    rc, line, fid;

    rc = kvr_tmpl_p_expect(p, TK_OPEN_STMT, "'{%'");
    if (rc) {
        return rc;
    }
    t = KVR_TMPL_TOK(p);
    line = t->line;
    if (t->type != TK_IDENT) {
        return kvr_tmpl_p_perr(p, line, "unknown statement, got %s",
                               kvr_tmpl_p_tname(t->type));
    }
    p->cur++;
    if (kvr_tmpl_p_tok_is(t, "set")) {
        n = kvr_tmpl_p_mk(p, N_SET, line);
        if (n == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        rc = kvr_tmpl_parse_seq(p, 0, &n->a);
        if (rc) {
            return rc;
        }
        if (kvr_tmpl_p_is(p, TK_EQUALS)) {
            p->cur++;
            rc = kvr_tmpl_parse_seq(p, 0, &n->b);
        } else {
            rc = closing(p);
            if (rc == KVR_OK) {
                KVR_TMPL_PENTER(p);
                rc = parse_body(p, "endset", NULL, NULL, &n->list, &n->nlist);
                KVR_TMPL_PLEAVE(p);
            }
            if (rc == KVR_OK) {
                rc = kvr_tmpl_p_expect(p, TK_OPEN_STMT, "'{%'");
            }
            if (rc == KVR_OK) {
                rc = expect_ident(p, "endset");
            }
        }
        if (rc == KVR_OK) {
            rc = closing(p);
        }
    } else if (kvr_tmpl_p_tok_is(t, "if")) {
        rc = parse_if(p, line, &n);
        if (rc == KVR_OK) {
            rc = end_stmt(p, "endif");
        }
    } else if (kvr_tmpl_p_tok_is(t, "macro")) {
        KVR_TMPL_PENTER(p);
        rc = kvr_tmpl_parse_primary(p, &callee);
        if (rc) {
            return rc;
        }
        if (callee->kind != N_IDENT) {
            return kvr_tmpl_p_perr(p, line,
                                   "expected identifier following macro");
        }
        n = kvr_tmpl_p_mk(p, N_MACRO, line);
        if (n == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        n->s = callee->s;
        n->n = callee->n;
        rc = kvr_tmpl_parse_args(p, 1, &n->list, &n->nlist);
        if (rc == KVR_OK) {
            rc = block_body(p, "endmacro", &n->list2, &n->nlist2);
        }
        KVR_TMPL_PLEAVE(p);
        if (rc == KVR_OK) {
            n->flag = macro_flags(n->list, n->nlist, n->list2, n->nlist2);
        }
    } else if (kvr_tmpl_p_tok_is(t, "for")) {
        KVR_TMPL_PENTER(p);
        n = kvr_tmpl_p_mk(p, N_FOR, line);
        if (n == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        rc = kvr_tmpl_parse_seq(p, 1, &n->a);
        if (rc) {
            return rc;
        }
        if (n->a->kind != N_IDENT && n->a->kind != N_TUPLE) {
            return kvr_tmpl_p_perr(p, line,
                                   "expected identifier/tuple for the loop "
                                   "variable");
        }
        if (!kvr_tmpl_p_is_ident(p, "in")) {
            return kvr_tmpl_p_perr(
                p, line, "expected 'in' following the loop variable");
        }
        p->cur++;
        rc = kvr_tmpl_parse_expr(p, &n->b);
        if (rc) {
            return rc;
        }
        if (n->b->kind == N_SELECT) {
            n->c = n->b->b;
            n->b = n->b->a;
        }
        rc = closing(p);
        if (rc == KVR_OK) {
            rc = parse_body(p, "endfor", "else", NULL, &n->list, &n->nlist);
        }
        if (rc == KVR_OK && is_stmt(p, "else", NULL, NULL)) {
            p->cur += 2;
            rc = closing(p);
            if (rc == KVR_OK) {
                rc = parse_body(p, "endfor", NULL, NULL, &n->list2,
                                &n->nlist2);
            }
        }
        if (rc == KVR_OK) {
            rc = end_stmt(p, "endfor");
        }
        KVR_TMPL_PLEAVE(p);
    } else if (kvr_tmpl_p_tok_is(t, "call")) {
        KVR_TMPL_PENTER(p);
        n = kvr_tmpl_p_mk(p, N_CALLSTMT, line);
        if (n == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        if (kvr_tmpl_p_is(p, TK_LPAREN)) {
            rc = kvr_tmpl_parse_args(p, 1, &n->list, &n->nlist);
            if (rc) {
                return rc;
            }
        }
        rc = kvr_tmpl_parse_primary(p, &callee);
        if (rc) {
            return rc;
        }
        if (callee->kind != N_IDENT) {
            return kvr_tmpl_p_perr(p, line,
                                   "expected identifier following call");
        }
        n->a = kvr_tmpl_p_mk(p, N_CALL, line);
        if (n->a == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        n->a->a = callee;
        rc = kvr_tmpl_parse_args(p, 0, &n->a->list, &n->a->nlist);
        if (rc == KVR_OK) {
            rc = block_body(p, "endcall", &n->list2, &n->nlist2);
        }
        KVR_TMPL_PLEAVE(p);
        if (rc == KVR_OK) {
            n->flag = macro_flags(n->list, n->nlist, n->list2, n->nlist2);
        }
    } else if (kvr_tmpl_p_tok_is(t, "break")
               || kvr_tmpl_p_tok_is(t, "continue")) {
        n = kvr_tmpl_p_mk(
            p, kvr_tmpl_p_tok_is(t, "break") ? N_BREAK : N_CONTINUE, line);
        if (n == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        rc = closing(p);
    } else if (kvr_tmpl_p_tok_is(t, "filter")) {
        KVR_TMPL_PENTER(p);
        n = kvr_tmpl_p_mk(p, N_FILTERSTMT, line);
        if (n == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        rc = kvr_tmpl_parse_filter_spec(p, &f, &fid);
        if (rc) {
            return rc;
        }
        n->a = f;
        n->op = fid;
        rc = block_body(p, "endfilter", &n->list, &n->nlist);
        KVR_TMPL_PLEAVE(p);
    } else {
        return kvr_tmpl_p_perr(p, line, "unsupported statement \"%.*s\"",
                               (int) t->n, t->s);
    }
    if (rc == KVR_OK) {
        *out = n;
    }
    return rc;
}

static int
parse_any(kvr_tmpl_parser_t *p, kvr_tmpl_node_t **out)
{
    const kvr_tmpl_tok_t  *t = KVR_TMPL_TOK(p);
    kvr_tmpl_node_t       *n = NULL;
    int                    rc;

    switch (t->type) {
    case TK_COMMENT:
    case TK_TEXT:
        n = kvr_tmpl_p_mk(p, t->type == TK_TEXT ? N_TEXT : N_COMMENT, t->line);
        if (n == NULL) {
            return kvr_tmpl_p_nomem(p);
        }
        n->s = t->s;
        n->n = t->n;
        p->cur++;
        *out = n;
        return KVR_OK;
    case TK_OPEN_STMT:
        return parse_stmt(p, out);
    case TK_OPEN_EXPR:
        p->cur++;
        rc = kvr_tmpl_parse_expr(p, out);
        if (rc == KVR_OK) {
            rc = kvr_tmpl_p_expect(p, TK_CLOSE_EXPR, "'}}'");
        }
        return rc;
    default:
        return kvr_tmpl_p_perr(p, t->line, "unexpected %s",
                               kvr_tmpl_p_tname(t->type));
    }
}

int
kvr_tmpl_parse(kvr_tmpl_arena_t *a, const kvr_tmpl_tok_t *toks, size_t ntoks,
    kvr_tmpl_node_t ***body, size_t *nbody, char *err, size_t errlen)
{
    kvr_tmpl_parser_t          p;
    kvr_tmpl_nlist_t           l = { 0 };
    kvr_tmpl_node_t  *n = NULL;
    int               rc;

    memset(&p, 0, sizeof(p));
    p.a = a;
    p.t = toks;
    p.nt = ntoks;
    p.err = err;
    p.errlen = errlen;
    while (!kvr_tmpl_p_is(&p, TK_EOF)) {
        rc = parse_any(&p, &n);
        if (rc == KVR_OK) {
            rc = kvr_tmpl_p_nl_push(&p, &l, n);
        }
        if (rc) {
            return rc;
        }
    }
    *body = l.v;
    *nbody = l.n;
    return KVR_OK;
}
