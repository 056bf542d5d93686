/*
 * kvrouter: chat template engine internals (see kvr_template.h).
 *
 * Pipeline: kvr_tmpl_lex.c (preprocess + tokens), kvr_tmpl_parse.c (AST,
 * unsupported filters/tests rejected with their line), kvr_tmpl_eval.c
 * (statements and expressions), kvr_tmpl_filter.c (filters),
 * kvr_tmpl_test.c (tests), kvr_tmpl_global.c (global functions),
 * kvr_tmpl_method.c (attributes and methods of strings, lists, dicts),
 * kvr_tmpl_value.c (values, lists, dicts), kvr_tmpl_print.c (printing,
 * JSON), kvr_tmpl_compare.c (equality, ordering), kvr_tmpl_json.c (from
 * jansson), kvr_tmpl_text.c (JavaScript string semantics over UTF-8),
 * kvr_tmpl_load.c (public API, loading from a model directory).
 *
 * The reference is HF's JavaScript Jinja (@huggingface/jinja): numbers are
 * doubles with an integer/float tag, strings print the way JavaScript
 * prints them, and each quirk of its runtime is mirrored on purpose.
 */
#ifndef KVR_TMPL_INT_H
#define KVR_TMPL_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "kvr_buf.h"
#include "kvr_err.h"
#include "kvr_template.h"

/*
 * Limits against hostile templates (per render unless noted). Exceeding
 * one is a KVR_ERR_INVAL with a message naming the limit.
 */
#define KVR_TMPL_MAX_SOURCE   (4u << 20)    /* template source bytes */
#define KVR_TMPL_MAX_NEST     200           /* parser nesting depth */
#define KVR_TMPL_MAX_DEPTH    500           /* nested evaluations and calls */
#define KVR_TMPL_MAX_OUTPUT   (16u << 20)   /* bytes written, captures too */
#define KVR_TMPL_MAX_ITERS    1000000       /* loop iterations, range() items,
                                               macro calls */
#define KVR_TMPL_MAX_MEMORY   (256u << 20)  /* arena bytes */
#define KVR_TMPL_MAX_WORK     200000000     /* bytes built, items scanned */

/* ---- arena ---- */

typedef struct kvr_tmpl_chunk_s  kvr_tmpl_chunk_t;

typedef struct {
    kvr_tmpl_chunk_t  *head;
    size_t             total;      /* bytes obtained from malloc */
    size_t             limit;      /* 0: none */
    int                over;       /* an allocation failed on the limit */
} kvr_tmpl_arena_t;

/* NULL when out of memory or over the limit. Memory is zeroed. */
void *kvr_tmpl_alloc(kvr_tmpl_arena_t *a, size_t n);
char *kvr_tmpl_strdup(kvr_tmpl_arena_t *a, const char *s, size_t n);
void kvr_tmpl_arena_free(kvr_tmpl_arena_t *a);

/* ---- tokens ---- */

enum {
    TK_EOF = 0, TK_TEXT, TK_NUM, TK_STR, TK_IDENT, TK_EQUALS, TK_LPAREN,
    TK_RPAREN, TK_OPEN_STMT, TK_CLOSE_STMT, TK_OPEN_EXPR, TK_CLOSE_EXPR,
    TK_LBRACKET, TK_RBRACKET, TK_LBRACE, TK_RBRACE, TK_COMMA, TK_DOT,
    TK_COLON, TK_PIPE, TK_ADD, TK_MUL, TK_POW, TK_CMP, TK_UNARY, TK_COMMENT
};

typedef struct {
    int          type;
    int          line;
    const char  *s;
    size_t       n;
} kvr_tmpl_tok_t;

/* Tokens end with a TK_EOF; all memory in a. */
int kvr_tmpl_lex(kvr_tmpl_arena_t *a, const char *src, size_t len,
    kvr_tmpl_tok_t **toks, size_t *ntoks, char *err, size_t errlen);

/* ---- AST ---- */

enum {
    N_TEXT = 1, N_INT, N_FLOAT, N_STR, N_IDENT, N_ARRAY, N_TUPLE, N_OBJECT,
    N_MEMBER, N_SLICE, N_CALL, N_KWARG, N_SPREAD, N_KWSPREAD, N_BINARY,
    N_UNARY, N_FILTER, N_TEST, N_SELECT, N_TERNARY,
    N_IF, N_FOR, N_SET, N_MACRO, N_CALLSTMT, N_FILTERSTMT, N_BREAK,
    N_CONTINUE, N_COMMENT
};

/* binary and unary operators */
enum {
    OP_AND = 1, OP_OR, OP_NOT, OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE, OP_GE,
    OP_IN, OP_NOTIN, OP_ADD, OP_SUB, OP_CONCAT, OP_MUL, OP_DIV, OP_FLOORDIV,
    OP_MOD, OP_POW
};

/* flags on N_MACRO / N_CALLSTMT: the body reads kwargs / varargs */
#define KVR_TMPL_USES_KWARGS   1
#define KVR_TMPL_USES_VARARGS  2

typedef struct kvr_tmpl_node_s  kvr_tmpl_node_t;

/*
 * One node for every kind; field use per kind:
 *   N_TEXT/N_STR/N_IDENT s,n    N_INT/N_FLOAT num
 *   N_ARRAY/N_TUPLE list        N_OBJECT list = keys, list2 = values
 *   N_MEMBER a[b], flag = computed          N_SLICE a:b:c (NULL = none)
 *   N_CALL a(list)              N_KWARG s = a   N_SPREAD *a  N_KWSPREAD **a
 *   N_BINARY a op b             N_UNARY op a
 *   N_FILTER a | b (b: N_IDENT or N_CALL of N_IDENT), op = filter id
 *   N_TEST a is [not] s, op = test id, flag = negate
 *   N_SELECT a if b             N_TERNARY b if a else c
 *   N_IF a: list else list2     N_FOR a in b [if c]: list else list2
 *   N_SET a = b, or a = block list
 *   N_MACRO s(list): list2, flag    N_CALLSTMT call(list) a: list2, flag
 *   N_FILTERSTMT a: list
 */
struct kvr_tmpl_node_s {
    int                 kind;
    int                 line;
    int                 op;
    int                 flag;
    const char         *s;
    size_t              n;
    double              num;
    kvr_tmpl_node_t    *a, *b, *c;
    kvr_tmpl_node_t   **list;
    size_t              nlist;
    kvr_tmpl_node_t   **list2;
    size_t              nlist2;
};

int kvr_tmpl_parse(kvr_tmpl_arena_t *a, const kvr_tmpl_tok_t *toks,
    size_t ntoks, kvr_tmpl_node_t ***body, size_t *nbody, char *err,
    size_t errlen);

/* filter and test names known at compile time; -1 when unsupported */
int kvr_tmpl_filter_id(const char *s, size_t n);
int kvr_tmpl_test_id(const char *s, size_t n);

struct kvr_template_s {
    kvr_tmpl_arena_t    arena;
    kvr_tmpl_node_t   **body;
    size_t              nbody;
};

/* ---- values ---- */

enum {
    V_UNDEF = 0, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_ARRAY, V_OBJECT,
    V_NS, V_KWARGS, V_FUNC
};

typedef struct kvr_tmpl_arr_s  kvr_tmpl_arr_t;
typedef struct kvr_tmpl_obj_s  kvr_tmpl_obj_t;
typedef struct kvr_tmpl_fn_s   kvr_tmpl_fn_t;

typedef struct {
    int                  k;
    union {
        int              b;
        double           n;
        struct {
            const char  *p;
            size_t       len;
        }                s;
        kvr_tmpl_arr_t  *a;
        kvr_tmpl_obj_t  *o;     /* V_OBJECT, V_NS, V_KWARGS */
        kvr_tmpl_fn_t   *f;
    } u;
} kvr_tmpl_val_t;

struct kvr_tmpl_arr_s {
    kvr_tmpl_val_t  *v;
    size_t           n, cap;
    int              tuple;
};

typedef struct {
    const char      *k;
    size_t           kn;
    kvr_tmpl_val_t   v;
} kvr_tmpl_ent_t;

struct kvr_tmpl_obj_s {
    kvr_tmpl_ent_t  *e;
    size_t           n, cap;
};

typedef struct kvr_tmpl_env_s  kvr_tmpl_env_t;

struct kvr_tmpl_env_s {
    kvr_tmpl_env_t  *parent;
    kvr_tmpl_obj_t   vars;
};

/* function kinds */
enum { FN_BUILTIN = 1, FN_MACRO, FN_CALLER };

struct kvr_tmpl_fn_s {
    int                     kind;
    int                     id;        /* FN_BUILTIN: KVR_TMPL_B_* */
    kvr_tmpl_val_t          self;      /* bound receiver of a method */
    const kvr_tmpl_node_t  *node;      /* FN_MACRO / FN_CALLER */
    kvr_tmpl_env_t         *env;       /* FN_CALLER: defining scope */
};

/* builtin functions and methods */
enum {
    B_NAMESPACE = 1, B_RAISE, B_RANGE, B_STRFTIME,
    B_S_UPPER, B_S_LOWER, B_S_STRIP, B_S_TITLE, B_S_CAPITALIZE, B_S_RSTRIP,
    B_S_LSTRIP, B_S_STARTSWITH, B_S_ENDSWITH, B_S_SPLIT, B_S_REPLACE,
    B_O_GET, B_O_ITEMS, B_O_KEYS, B_O_VALUES, B_O_DICTSORT
};

/*
 * A V_UNDEF whose u.b is KVR_TMPL_HOLE stands for JavaScript's undefined
 * (not the reference's UndefinedValue): using it is an error, except that
 * `set` stores it as an ordinary undefined, as the reference's lookup does.
 */
#define KVR_TMPL_HOLE  0x484f4c45

/* render state */
typedef struct {
    kvr_tmpl_arena_t   arena;
    kvr_buf_t         *out;
    size_t             written;
    size_t             iters;
    size_t             work;
    int                depth;
    long long          now;
    char              *err;
    size_t             errlen;
} kvr_tmpl_ctx_t;

/* one level deeper in evaluation, or the depth limit's error */
#define KVR_TMPL_ENTER(c, line)                                             \
    do {                                                                    \
        if (++(c)->depth > KVR_TMPL_MAX_DEPTH) {                            \
            (c)->depth--;                                                   \
            return kvr_tmpl_error((c), (line), "evaluation deeper than %d " \
                                  "(recursion limit)", KVR_TMPL_MAX_DEPTH); \
        }                                                                   \
    } while (0)

/* status of statement evaluation besides KVR_OK / KVR_ERR_* */
#define KVR_TMPL_BREAK     1
#define KVR_TMPL_CONTINUE  2

int kvr_tmpl_error(kvr_tmpl_ctx_t *c, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int kvr_tmpl_nomem(kvr_tmpl_ctx_t *c);
/* counts n units of work (bytes built, items scanned) against the limit */
int kvr_tmpl_charge(kvr_tmpl_ctx_t *c, int line, size_t n);

/* constructors (arena) */
kvr_tmpl_val_t kvr_tmpl_undef(void);
kvr_tmpl_val_t kvr_tmpl_none(void);
kvr_tmpl_val_t kvr_tmpl_bool(int b);
kvr_tmpl_val_t kvr_tmpl_num(int kind, double n);
kvr_tmpl_val_t kvr_tmpl_str(const char *p, size_t len);
kvr_tmpl_arr_t *kvr_tmpl_arr_new(kvr_tmpl_ctx_t *c, size_t cap);
int kvr_tmpl_arr_push(kvr_tmpl_ctx_t *c, kvr_tmpl_arr_t *a, kvr_tmpl_val_t v);
kvr_tmpl_obj_t *kvr_tmpl_obj_new(kvr_tmpl_ctx_t *c);
int kvr_tmpl_obj_set(kvr_tmpl_ctx_t *c, kvr_tmpl_obj_t *o, const char *k,
    size_t kn, kvr_tmpl_val_t v);
/* Appends without looking k up: for a caller that knows k is new (no
 * work charged). k must outlive the object (arena or template text). */
int kvr_tmpl_obj_append(kvr_tmpl_ctx_t *c, kvr_tmpl_obj_t *o, const char *k,
    size_t kn, kvr_tmpl_val_t v);
kvr_tmpl_val_t *kvr_tmpl_obj_get(const kvr_tmpl_obj_t *o, const char *k,
    size_t kn);
kvr_tmpl_val_t kvr_tmpl_wrap_arr(kvr_tmpl_arr_t *a);
kvr_tmpl_val_t kvr_tmpl_wrap_obj(int kind, kvr_tmpl_obj_t *o);

/* "IntegerValue", ... as the reference names its types in errors */
const char *kvr_tmpl_kind_name(int k);

/* truthiness (Jinja's, as the reference computes it) */
int kvr_tmpl_truthy(const kvr_tmpl_val_t *v);

/* JavaScript Number -> string */
size_t kvr_tmpl_fmt_number(double d, char *buf, size_t len);

/* growable string builder in the arena */
typedef struct {
    kvr_tmpl_ctx_t  *c;
    char            *p;
    size_t           n, cap;
    int              failed;
} kvr_tmpl_sb_t;

void kvr_tmpl_sb_init(kvr_tmpl_sb_t *sb, kvr_tmpl_ctx_t *c);
void kvr_tmpl_sb_add(kvr_tmpl_sb_t *sb, const char *p, size_t n);
void kvr_tmpl_sb_addc(kvr_tmpl_sb_t *sb, char ch);
kvr_tmpl_val_t kvr_tmpl_sb_val(kvr_tmpl_sb_t *sb);
/* The end of a build: KVR_OK with the string in *out, or the
 * out-of-memory error if any append failed. */
int kvr_tmpl_sb_done(kvr_tmpl_sb_t *sb, kvr_tmpl_val_t *out);

/*
 * Printing: "output" is the reference's RuntimeValue.toString (what {{ }}
 * writes); "raw" is JavaScript's toString of the underlying value (what
 * ~ and string + use). Both append to sb; KVR_OK or an error.
 */
int kvr_tmpl_to_output(kvr_tmpl_ctx_t *c, int line, const kvr_tmpl_val_t *v,
    kvr_tmpl_sb_t *sb);
int kvr_tmpl_to_raw(kvr_tmpl_ctx_t *c, int line, const kvr_tmpl_val_t *v,
    kvr_tmpl_sb_t *sb);

typedef struct {
    int          indent;          /* 0: none */
    int          ensure_ascii;
    int          sort_keys;
    const char  *item_sep;        /* NULL: default */
    size_t       item_sep_n;
    const char  *key_sep;
    size_t       key_sep_n;
    int          undef_to_null;
} kvr_tmpl_json_opt_t;

int kvr_tmpl_to_json(kvr_tmpl_ctx_t *c, int line, const kvr_tmpl_val_t *v,
    const kvr_tmpl_json_opt_t *opt, int depth, kvr_tmpl_sb_t *sb);

/* JavaScript == on the underlying values, and === */
int kvr_tmpl_loose_eq(kvr_tmpl_ctx_t *c, const kvr_tmpl_val_t *a,
    const kvr_tmpl_val_t *b);
int kvr_tmpl_strict_eq(const kvr_tmpl_val_t *a, const kvr_tmpl_val_t *b);

/* sort/dictsort comparison; KVR_OK and *res in {-1,0,1}, or an error */
int kvr_tmpl_compare(kvr_tmpl_ctx_t *c, int line, const kvr_tmpl_val_t *a,
    const kvr_tmpl_val_t *b, int case_sensitive, int *res);

/* jansson -> value, as JSON.parse + the reference's conversion would */
int kvr_tmpl_from_json(kvr_tmpl_ctx_t *c, const struct json_t *j,
    kvr_tmpl_val_t *out);

/* ---- JavaScript string semantics over UTF-8 (kvr_tmpl_text.c) ---- */

size_t kvr_tmpl_js_space(const char *p, const char *end);  /* bytes, 0: none */
void kvr_tmpl_js_trim(const char **p, size_t *n, int start, int end);
size_t kvr_tmpl_utf16_len(const char *p, size_t n);
/* code point at p (n > 0): bytes used, *cp the code point (invalid: byte) */
size_t kvr_tmpl_utf8_next(const char *p, size_t n, uint32_t *cp);
size_t kvr_tmpl_utf8_put(uint32_t cp, char *out);
int kvr_tmpl_case(kvr_tmpl_ctx_t *c, const char *p, size_t n, int upper,
    kvr_tmpl_val_t *out);

/* ---- evaluation ---- */

int kvr_tmpl_eval(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env,
    const kvr_tmpl_node_t *n, kvr_tmpl_val_t *out);
/* eval() that lets a hole (see KVR_TMPL_HOLE) through as undefined: set */
int kvr_tmpl_eval_for_set(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env,
    const kvr_tmpl_node_t *n, kvr_tmpl_val_t *out);
int kvr_tmpl_exec_block(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env,
    kvr_tmpl_node_t *const *body, size_t nbody);
/* runs body; its output becomes *out and is cut back out of the buffer */
int kvr_tmpl_capture(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env,
    kvr_tmpl_node_t *const *body, size_t nbody, kvr_tmpl_val_t *out);
int kvr_tmpl_eval_args(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env,
    kvr_tmpl_node_t *const *args, size_t nargs, kvr_tmpl_arr_t **pos,
    kvr_tmpl_obj_t **kw);
int kvr_tmpl_call(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env, int line,
    const kvr_tmpl_val_t *fn, kvr_tmpl_arr_t *args, kvr_tmpl_val_t *out);
kvr_tmpl_env_t *kvr_tmpl_env_new(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *parent);
int kvr_tmpl_env_set(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env, const char *k,
    size_t kn, kvr_tmpl_val_t v);
kvr_tmpl_val_t kvr_tmpl_env_get(kvr_tmpl_env_t *env, const char *k,
    size_t kn);

int kvr_tmpl_apply_filter(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env,
    const kvr_tmpl_node_t *filter, int fid, kvr_tmpl_val_t *operand,
    kvr_tmpl_val_t *out);
int kvr_tmpl_run_test(kvr_tmpl_ctx_t *c, int line, int tid,
    const kvr_tmpl_val_t *v, const kvr_tmpl_val_t *arg, int *res);
int kvr_tmpl_call_builtin(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env, int line,
    kvr_tmpl_fn_t *f, kvr_tmpl_arr_t *args, kvr_tmpl_val_t *out);
/* attribute of a string/array/object value that the reference provides */
int kvr_tmpl_builtin_attr(kvr_tmpl_ctx_t *c, const kvr_tmpl_val_t *self,
    const char *name, size_t n, kvr_tmpl_val_t *out);
int kvr_tmpl_setup_globals(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env);
int kvr_tmpl_call_global(kvr_tmpl_ctx_t *c, int line, int id,
    kvr_tmpl_arr_t *args, kvr_tmpl_val_t *out);
/* a builtin function value (self: the receiver of a method, or NULL) */
int kvr_tmpl_fn_new(kvr_tmpl_ctx_t *c, int id, const kvr_tmpl_val_t *self,
    kvr_tmpl_val_t *out);
int kvr_tmpl_obj_items(kvr_tmpl_ctx_t *c, const kvr_tmpl_obj_t *o,
    kvr_tmpl_val_t *out);

#endif
