/*
 * kvrouter: chat templates, parser internals shared by kvr_tmpl_parse.c
 * (helpers, expressions) and kvr_tmpl_parse_stmt.c (statements).
 */
#ifndef KVR_TMPL_PARSE_INT_H
#define KVR_TMPL_PARSE_INT_H

#include "kvr_tmpl_int.h"

typedef struct {
    kvr_tmpl_arena_t      *a;
    const kvr_tmpl_tok_t  *t;
    size_t                 nt;
    size_t                 cur;
    int                    depth;
    char                  *err;
    size_t                 errlen;
} kvr_tmpl_parser_t;

typedef struct {
    kvr_tmpl_node_t  **v;
    size_t             n, cap;
} kvr_tmpl_nlist_t;

/* the current token (the final TK_EOF once past the end) */
#define KVR_TMPL_TOK(p)  (&(p)->t[(p)->cur < (p)->nt ? (p)->cur : (p)->nt - 1])

#define KVR_TMPL_PENTER(p)                                                  \
    do {                                                                    \
        if (++(p)->depth > KVR_TMPL_MAX_NEST) {                             \
            return kvr_tmpl_p_perr((p), KVR_TMPL_TOK(p)->line,              \
                                   "nesting deeper than %d",                \
                                   KVR_TMPL_MAX_NEST);                      \
        }                                                                   \
    } while (0)
#define KVR_TMPL_PLEAVE(p)  ((p)->depth--)

int kvr_tmpl_p_perr(kvr_tmpl_parser_t *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int kvr_tmpl_p_nomem(kvr_tmpl_parser_t *p);
kvr_tmpl_node_t *kvr_tmpl_p_mk(kvr_tmpl_parser_t *p, int kind, int line);
int kvr_tmpl_p_nl_push(kvr_tmpl_parser_t *p, kvr_tmpl_nlist_t *l,
    kvr_tmpl_node_t *n);
const char *kvr_tmpl_p_tname(int type);
int kvr_tmpl_p_is(kvr_tmpl_parser_t *p, int type);
int kvr_tmpl_p_tok_is(const kvr_tmpl_tok_t *t, const char *s);
int kvr_tmpl_p_is_ident(kvr_tmpl_parser_t *p, const char *s);
int kvr_tmpl_p_expect(kvr_tmpl_parser_t *p, int type, const char *what);

int kvr_tmpl_parse_expr(kvr_tmpl_parser_t *p, kvr_tmpl_node_t **out);
int kvr_tmpl_parse_primary(kvr_tmpl_parser_t *p, kvr_tmpl_node_t **out);
/* params: a macro's parameter list, else a call's arguments */
int kvr_tmpl_parse_args(kvr_tmpl_parser_t *p, int params,
    kvr_tmpl_node_t ***out, size_t *nout);
/* a, b, c as a tuple (primary: of primaries, for loop targets) */
int kvr_tmpl_parse_seq(kvr_tmpl_parser_t *p, int primary,
    kvr_tmpl_node_t **out);
/* a filter: an identifier, or a call of one; *fid its id */
int kvr_tmpl_parse_filter_spec(kvr_tmpl_parser_t *p, kvr_tmpl_node_t **out,
    int *fid);

#endif
