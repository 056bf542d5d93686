/*
 * kvrouter: chat templates, statements. Mirrors the reference
 * Interpreter: the same scoping (a for loop opens a scope; macros run in a
 * child of the *calling* scope), and the same output: every statement
 * writes to one buffer; a loop iteration that ends in break/continue loses
 * what it wrote (as the reference drops the block's partial string), and
 * captures (set blocks, macro calls, filter blocks) cut their text back
 * out of the buffer.
 */
#include <stdio.h>
#include <string.h>

#include "kvr_tmpl_int.h"

static int
emit(kvr_tmpl_ctx_t *c, int line, const char *p, size_t n)
{
    if (n == 0) {
        return KVR_OK;
    }
    c->written += n;
    if (c->written > KVR_TMPL_MAX_OUTPUT) {
        return kvr_tmpl_error(c, line, "output larger than %u bytes",
                              KVR_TMPL_MAX_OUTPUT);
    }
    if (kvr_buf_append(c->out, p, n) != KVR_OK) {
        return kvr_tmpl_nomem(c);
    }
    return KVR_OK;
}

static int
emit_value(kvr_tmpl_ctx_t *c, int line, const kvr_tmpl_val_t *v)
{
    kvr_tmpl_sb_t  sb;
    int            rc;

    if (v->k == V_NONE || v->k == V_UNDEF) {
        return KVR_OK;
    }
    if (v->k == V_STR) {
        return emit(c, line, v->u.s.p, v->u.s.len);
    }
    kvr_tmpl_sb_init(&sb, c);
    rc = kvr_tmpl_to_output(c, line, v, &sb);
    if (rc) {
        return rc;
    }
    return emit(c, line, sb.p, sb.n);
}

/* Runs body and returns what it wrote as a string, removing it from out. */
int
kvr_tmpl_capture(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env,
                 kvr_tmpl_node_t *const *body,
    size_t nbody, kvr_tmpl_val_t *out)
{
    size_t   start;
    char    *s;
    int      rc;

    start = c->out->len;
    rc = kvr_tmpl_exec_block(c, env, body, nbody);
    if (rc) {
        return rc;
    }
    s = kvr_tmpl_strdup(&c->arena, c->out->data ? c->out->data + start : "",
                        c->out->len - start);
    if (s == NULL) {
        return kvr_tmpl_nomem(c);
    }
    *out = kvr_tmpl_str(s, c->out->len - start);
    c->out->len = start;
    if (c->out->data) {
        c->out->data[start] = '\0';
    }
    return KVR_OK;
}

/* ---- expressions ---- */

static int
bind_args(kvr_tmpl_ctx_t *c, int line, const kvr_tmpl_node_t *def,
    kvr_tmpl_node_t *const *params, size_t nparams, int flags,
    kvr_tmpl_arr_t *args, kvr_tmpl_env_t *scope)
{
    kvr_tmpl_obj_t   *kw;
    kvr_tmpl_arr_t   *rest;
    kvr_tmpl_val_t    v, *kv;
    size_t            npos, i, j;
    const char       *name;
    size_t            nn;
    int               rc, *pending;

    npos = args->n;
    kw = kvr_tmpl_obj_new(c);
    pending = kvr_tmpl_alloc(&c->arena, (nparams + 1) * sizeof(int));
    if (kw == NULL || pending == NULL) {
        return kvr_tmpl_nomem(c);
    }
    if (npos > 0 && args->v[npos - 1].k == V_KWARGS) {
        npos--;
        for (i = 0; i < args->v[npos].u.o->n; i++) {
            rc = kvr_tmpl_obj_set(c, kw, args->v[npos].u.o->e[i].k,
                                  args->v[npos].u.o->e[i].kn,
                                  args->v[npos].u.o->e[i].v);
            if (rc) {
                return rc;
            }
        }
    }
    for (i = 0; i < nparams; i++) {
        name = params[i]->s;
        nn = params[i]->n;
        if (i < npos) {
            v = args->v[i];
        } else if ((kv = kvr_tmpl_obj_get(kw, name, nn)) != NULL) {
            v = *kv;
            j = (size_t) (((kvr_tmpl_ent_t *) ((char *) kv
                           - offsetof(kvr_tmpl_ent_t, v))) - kw->e);
            memmove(&kw->e[j], &kw->e[j + 1],
                    (kw->n - j - 1) * sizeof(*kw->e));
            kw->n--;
        } else {
            v = kvr_tmpl_undef();
            pending[i] = params[i]->kind == N_KWARG;
        }
        rc = kvr_tmpl_env_set(c, scope, name, nn, v);
        if (rc) {
            return rc;
        }
    }
    if (flags & KVR_TMPL_USES_KWARGS) {
        rc = kvr_tmpl_env_set(c, scope, "kwargs", 6,
                              kvr_tmpl_wrap_obj(V_OBJECT, kw));
        if (rc) {
            return rc;
        }
    } else if (kw->n > 0) {
        return kvr_tmpl_error(c, line, "macro '%.*s' takes no keyword "
                              "argument '%.*s'", (int) def->n, def->s,
                              (int) kw->e[0].kn, kw->e[0].k);
    }
    if (flags & KVR_TMPL_USES_VARARGS) {
        rest = kvr_tmpl_arr_new(c, 0);
        if (rest == NULL) {
            return kvr_tmpl_nomem(c);
        }
        for (i = nparams; i < npos; i++) {
            rc = kvr_tmpl_arr_push(c, rest, args->v[i]);
            if (rc) {
                return rc;
            }
        }
        rc = kvr_tmpl_env_set(c, scope, "varargs", 7, kvr_tmpl_wrap_arr(rest));
        if (rc) {
            return rc;
        }
    } else if (npos > nparams) {
        return kvr_tmpl_error(c, line, "macro '%.*s' takes not more than %zu "
                              "argument(s)", (int) def->n, def->s, nparams);
    }
    for (i = 0; i < nparams; i++) {
        if (pending[i]) {
            rc = kvr_tmpl_eval(c, scope, params[i]->a, &v);
            if (rc == KVR_OK) {
                rc = kvr_tmpl_env_set(c, scope, params[i]->s, params[i]->n, v);
            }
            if (rc) {
                return rc;
            }
        }
    }
    return KVR_OK;
}

int
kvr_tmpl_call(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env, int line,
    const kvr_tmpl_val_t *fn, kvr_tmpl_arr_t *args, kvr_tmpl_val_t *out)
{
    const kvr_tmpl_node_t  *n;
    kvr_tmpl_env_t         *scope;
    int                     rc;

    if (fn->k != V_FUNC) {
        return kvr_tmpl_error(c, line, "Cannot call something that is not a "
                              "function");
    }
    if (fn->u.f->kind == FN_BUILTIN) {
        return kvr_tmpl_call_builtin(c, env, line, fn->u.f, args, out);
    }
    if (++c->iters > KVR_TMPL_MAX_ITERS) {
        return kvr_tmpl_error(c, line, "more than %d loop iterations and "
                              "macro calls", KVR_TMPL_MAX_ITERS);
    }
    KVR_TMPL_ENTER(c, line);
    n = fn->u.f->node;
    scope = kvr_tmpl_env_new(c, fn->u.f->kind == FN_MACRO ? env
                                                          : fn->u.f->env);
    if (scope == NULL) {
        c->depth--;
        return kvr_tmpl_nomem(c);
    }
    rc = bind_args(c, line, n, n->list, n->nlist, n->flag, args, scope);
    if (rc == KVR_OK) {
        rc = kvr_tmpl_capture(c, scope, n->list2, n->nlist2, out);
    }
    c->depth--;
    return rc;
}

static int
assign_loopvars(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *scope,
    const kvr_tmpl_node_t *var, const kvr_tmpl_val_t *cur)
{
    size_t  j;
    int     rc;

    if (var->kind == N_IDENT) {
        return kvr_tmpl_env_set(c, scope, var->s, var->n, *cur);
    }
    for (j = 0; j < var->nlist; j++) {
        if (var->list[j]->kind != N_IDENT) {
            return kvr_tmpl_error(c, var->line, "Cannot unpack "
                                  "non-identifier type");
        }
        rc = kvr_tmpl_env_set(c, scope, var->list[j]->s, var->list[j]->n,
                              cur->u.a->v[j]);
        if (rc) {
            return rc;
        }
    }
    return KVR_OK;
}

static int
count_iter(kvr_tmpl_ctx_t *c, int line)
{
    if (++c->iters > KVR_TMPL_MAX_ITERS) {
        return kvr_tmpl_error(c, line, "more than %d loop iterations",
                              KVR_TMPL_MAX_ITERS);
    }
    return KVR_OK;
}

static int
exec_for(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env, const kvr_tmpl_node_t *n)
{
    kvr_tmpl_env_t  *scope, *ls;
    kvr_tmpl_val_t   it, v, cur;
    kvr_tmpl_arr_t  *src, *items;
    kvr_tmpl_obj_t  *loop;
    size_t           i, cnt, start;
    int              rc, none;

    scope = kvr_tmpl_env_new(c, env);
    if (scope == NULL) {
        return kvr_tmpl_nomem(c);
    }
    rc = kvr_tmpl_eval(c, scope, n->b, &it);
    if (rc) {
        return rc;
    }
    if (it.k == V_OBJECT || it.k == V_KWARGS) {
        src = kvr_tmpl_arr_new(c, it.u.o->n);
        if (src == NULL) {
            return kvr_tmpl_nomem(c);
        }
        for (i = 0; i < it.u.o->n; i++) {
            src->v[i] = kvr_tmpl_str(it.u.o->e[i].k, it.u.o->e[i].kn);
        }
        src->n = it.u.o->n;
    } else if (it.k == V_ARRAY) {
        src = it.u.a;
    } else {
        return kvr_tmpl_error(c, n->line, "Expected iterable or object type "
                              "in for loop");
    }
    items = kvr_tmpl_arr_new(c, src->n);
    if (items == NULL) {
        return kvr_tmpl_nomem(c);
    }
    for (i = 0; i < src->n; i++) {
        cur = src->v[i];
        rc = count_iter(c, n->line);
        if (rc) {
            return rc;
        }
        if (n->a->kind == N_TUPLE) {
            if (cur.k != V_ARRAY || cur.u.a->tuple) {
                return kvr_tmpl_error(c, n->line, "Cannot unpack non-iterable "
                                      "type");
            }
            if (cur.u.a->n != n->a->nlist) {
                return kvr_tmpl_error(c, n->line, "Too %s items to unpack",
                                      n->a->nlist > cur.u.a->n ? "few"
                                                               : "many");
            }
        }
        if (n->c) {
            ls = kvr_tmpl_env_new(c, scope);
            if (ls == NULL) {
                return kvr_tmpl_nomem(c);
            }
            rc = assign_loopvars(c, ls, n->a, &cur);
            if (rc == KVR_OK) {
                rc = kvr_tmpl_eval(c, ls, n->c, &v);
            }
            if (rc) {
                return rc;
            }
            if (!kvr_tmpl_truthy(&v)) {
                continue;
            }
        }
        items->v[items->n++] = cur;
    }

    cnt = items->n;
    none = 1;
    for (i = 0; i < cnt; i++) {
        rc = count_iter(c, n->line);
        if (rc) {
            return rc;
        }
        loop = kvr_tmpl_obj_new(c);
        if (loop == NULL) {
            return kvr_tmpl_nomem(c);
        }
        if ((rc = kvr_tmpl_obj_set(c, loop, "index", 5,
                                   kvr_tmpl_num(V_INT, (double) i + 1)))
            || (rc = kvr_tmpl_obj_set(c, loop, "index0", 6,
                                      kvr_tmpl_num(V_INT, (double) i)))
            || (rc = kvr_tmpl_obj_set(c, loop, "revindex", 8,
                                      kvr_tmpl_num(V_INT, (double) (cnt - i))))
            || (rc = kvr_tmpl_obj_set(c, loop, "revindex0", 9,
                                      kvr_tmpl_num(V_INT,
                                                   (double) (cnt - i - 1))))
            || (rc = kvr_tmpl_obj_set(c, loop, "first", 5,
                                      kvr_tmpl_bool(i == 0)))
            || (rc = kvr_tmpl_obj_set(c, loop, "last", 4,
                                      kvr_tmpl_bool(i == cnt - 1)))
            || (rc = kvr_tmpl_obj_set(c, loop, "length", 6,
                                      kvr_tmpl_num(V_INT, (double) cnt)))
            || (rc = kvr_tmpl_obj_set(c, loop, "previtem", 8,
                                      i > 0 ? items->v[i - 1]
                                            : kvr_tmpl_undef()))
            || (rc = kvr_tmpl_obj_set(c, loop, "nextitem", 8,
                                      i + 1 < cnt ? items->v[i + 1]
                                                  : kvr_tmpl_undef()))
            || (rc = kvr_tmpl_env_set(c, scope, "loop", 4,
                                      kvr_tmpl_wrap_obj(V_OBJECT, loop)))
            || (rc = assign_loopvars(c, scope, n->a, &items->v[i])))
        {
            return rc;
        }
        start = c->out->len;
        rc = kvr_tmpl_exec_block(c, scope, n->list, n->nlist);
        if (rc == KVR_TMPL_CONTINUE || rc == KVR_TMPL_BREAK) {
            c->out->len = start;
            if (c->out->data) {
                c->out->data[start] = '\0';
            }
            if (rc == KVR_TMPL_BREAK) {
                break;
            }
            continue;
        }
        if (rc) {
            return rc;
        }
        none = 0;
    }
    if (none) {
        return kvr_tmpl_exec_block(c, scope, n->list2, n->nlist2);
    }
    return KVR_OK;
}

static int
exec_set(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env, const kvr_tmpl_node_t *n)
{
    const kvr_tmpl_node_t  *as = n->a;
    kvr_tmpl_val_t          rhs, obj;
    size_t                  i;
    int                     rc;

    rc = n->b ? kvr_tmpl_eval_for_set(c, env, n->b, &rhs)
              : kvr_tmpl_capture(c, env, n->list, n->nlist, &rhs);
    if (rc) {
        return rc;
    }
    if (as->kind == N_IDENT) {
        return kvr_tmpl_env_set(c, env, as->s, as->n, rhs);
    }
    if (as->kind == N_TUPLE) {
        if (rhs.k != V_ARRAY) {
            return kvr_tmpl_error(c, n->line, "Cannot unpack non-iterable "
                                  "type in set");
        }
        if (rhs.u.a->n != as->nlist) {
            return kvr_tmpl_error(c, n->line, "Too %s items to unpack in set",
                                  as->nlist > rhs.u.a->n ? "few" : "many");
        }
        for (i = 0; i < as->nlist; i++) {
            if (as->list[i]->kind != N_IDENT) {
                return kvr_tmpl_error(c, n->line, "Cannot unpack to "
                                      "non-identifier in set");
            }
            rc = kvr_tmpl_env_set(c, env, as->list[i]->s, as->list[i]->n,
                                  rhs.u.a->v[i]);
            if (rc) {
                return rc;
            }
        }
        return KVR_OK;
    }
    if (as->kind == N_MEMBER) {
        rc = kvr_tmpl_eval(c, env, as->a, &obj);
        if (rc) {
            return rc;
        }
        if (obj.k != V_NS) {
            return kvr_tmpl_error(c, n->line, "cannot assign attribute on "
                                  "non-namespace object");
        }
        if (as->b->kind != N_IDENT) {
            return kvr_tmpl_error(c, n->line, "Cannot assign to member with "
                                  "non-identifier property");
        }
        return kvr_tmpl_obj_set(c, obj.u.o, as->b->s, as->b->n, rhs);
    }
    return kvr_tmpl_error(c, n->line, "Invalid left-hand side in set");
}

static int
exec_callstmt(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env, const kvr_tmpl_node_t *n)
{
    kvr_tmpl_fn_t   *caller;
    kvr_tmpl_arr_t  *args;
    kvr_tmpl_obj_t  *kw;
    kvr_tmpl_env_t  *ne;
    kvr_tmpl_val_t   fn, cv, res;
    int              rc;

    caller = kvr_tmpl_alloc(&c->arena, sizeof(*caller));
    if (caller == NULL) {
        return kvr_tmpl_nomem(c);
    }
    caller->kind = FN_CALLER;
    caller->node = n;
    caller->env = env;
    rc = kvr_tmpl_eval_args(c, env, n->a->list, n->a->nlist, &args, &kw);
    if (rc == KVR_OK) {
        rc = kvr_tmpl_arr_push(c, args, kvr_tmpl_wrap_obj(V_KWARGS, kw));
    }
    if (rc == KVR_OK) {
        rc = kvr_tmpl_eval(c, env, n->a->a, &fn);
    }
    if (rc) {
        return rc;
    }
    if (fn.k != V_FUNC) {
        return kvr_tmpl_error(c, n->line, "Cannot call something that is not "
                              "a function");
    }
    ne = kvr_tmpl_env_new(c, env);
    if (ne == NULL) {
        return kvr_tmpl_nomem(c);
    }
    cv = kvr_tmpl_undef();
    cv.k = V_FUNC;
    cv.u.f = caller;
    rc = kvr_tmpl_env_set(c, ne, "caller", 6, cv);
    if (rc == KVR_OK) {
        rc = kvr_tmpl_call(c, ne, n->line, &fn, args, &res);
    }
    if (rc) {
        return rc;
    }
    return emit_value(c, n->line, &res);
}

static int
exec_stmt(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env, const kvr_tmpl_node_t *n)
{
    kvr_tmpl_val_t   v, r;
    kvr_tmpl_fn_t   *f;
    int              rc;

    switch (n->kind) {
    case N_TEXT:
        return emit(c, n->line, n->s, n->n);
    case N_COMMENT:
        return KVR_OK;
    case N_IF:
        rc = kvr_tmpl_eval(c, env, n->a, &v);
        if (rc) {
            return rc;
        }
        return kvr_tmpl_truthy(&v)
               ? kvr_tmpl_exec_block(c, env, n->list, n->nlist)
               : kvr_tmpl_exec_block(c, env, n->list2, n->nlist2);
    case N_FOR:
        return exec_for(c, env, n);
    case N_SET:
        return exec_set(c, env, n);
    case N_MACRO:
        f = kvr_tmpl_alloc(&c->arena, sizeof(*f));
        if (f == NULL) {
            return kvr_tmpl_nomem(c);
        }
        f->kind = FN_MACRO;
        f->node = n;
        v = kvr_tmpl_undef();
        v.k = V_FUNC;
        v.u.f = f;
        return kvr_tmpl_env_set(c, env, n->s, n->n, v);
    case N_CALLSTMT:
        return exec_callstmt(c, env, n);
    case N_FILTERSTMT:
        rc = kvr_tmpl_capture(c, env, n->list, n->nlist, &v);
        if (rc == KVR_OK) {
            rc = kvr_tmpl_apply_filter(c, env, n->a, n->op, &v, &r);
        }
        if (rc) {
            return rc;
        }
        return emit_value(c, n->line, &r);
    case N_BREAK:
        return KVR_TMPL_BREAK;
    case N_CONTINUE:
        return KVR_TMPL_CONTINUE;
    default:
        rc = kvr_tmpl_eval(c, env, n, &v);
        if (rc) {
            return rc;
        }
        return emit_value(c, n->line, &v);
    }
}

int
kvr_tmpl_exec_block(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env,
    kvr_tmpl_node_t *const *body, size_t nbody)
{
    size_t  i;
    int     rc;

    if (nbody == 0) {
        return KVR_OK;
    }
    KVR_TMPL_ENTER(c, body[0]->line);
    rc = KVR_OK;
    for (i = 0; i < nbody && rc == KVR_OK; i++) {
        rc = exec_stmt(c, env, body[i]);
    }
    c->depth--;
    return rc;
}
