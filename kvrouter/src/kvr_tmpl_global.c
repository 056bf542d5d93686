/*
 * kvrouter: chat templates, the global functions: namespace(),
 * raise_exception(), range(), strftime_now(), and the constants.
 *
 * strftime_now() formats the render's clock (kvr_template_vars_t.now, or
 * the current time) in local time; it knows %Y %m %d %b %B %H %M %% and
 * leaves other directives as they are, as the reference does.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kvr_tmpl_int.h"

static int
namespace_fn(kvr_tmpl_ctx_t *c, int line, kvr_tmpl_arr_t *args,
    kvr_tmpl_val_t *out)
{
    kvr_tmpl_obj_t        *o, *kw;
    const kvr_tmpl_val_t  *src, *pair;
    size_t                 npos, i;
    int                    rc;

    npos = args->n;
    kw = NULL;
    if (npos > 0 && args->v[npos - 1].k == V_KWARGS) {
        kw = args->v[--npos].u.o;
    }
    if (npos > 1) {
        return kvr_tmpl_error(c, line, "namespace expected at most 1 "
                              "argument, got %zu", npos);
    }
    o = kvr_tmpl_obj_new(c);
    if (o == NULL) {
        return kvr_tmpl_nomem(c);
    }
    if (npos == 1) {
        src = &args->v[0];
        if (src->k == V_OBJECT) {
            for (i = 0; i < src->u.o->n; i++) {
                rc = kvr_tmpl_obj_set(c, o, src->u.o->e[i].k,
                                      src->u.o->e[i].kn, src->u.o->e[i].v);
                if (rc) {
                    return rc;
                }
            }
        } else if (src->k == V_ARRAY) {
            for (i = 0; i < src->u.a->n; i++) {
                pair = &src->u.a->v[i];
                if (pair->k != V_ARRAY || pair->u.a->n != 2
                    || pair->u.a->v[0].k != V_STR)
                {
                    return kvr_tmpl_error(c, line, "namespace expected an "
                                          "object or an iterable of [key, "
                                          "value] pairs");
                }
                rc = kvr_tmpl_obj_set(c, o, pair->u.a->v[0].u.s.p,
                                      pair->u.a->v[0].u.s.len,
                                      pair->u.a->v[1]);
                if (rc) {
                    return rc;
                }
            }
        } else {
            return kvr_tmpl_error(c, line, "namespace argument is not "
                                  "iterable");
        }
    }
    if (kw) {
        for (i = 0; i < kw->n; i++) {
            rc = kvr_tmpl_obj_set(c, o, kw->e[i].k, kw->e[i].kn, kw->e[i].v);
            if (rc) {
                return rc;
            }
        }
    }
    *out = kvr_tmpl_wrap_obj(V_NS, o);
    return KVR_OK;
}

static int
range_fn(kvr_tmpl_ctx_t *c, int line, kvr_tmpl_arr_t *args,
    kvr_tmpl_val_t *out)
{
    kvr_tmpl_arr_t  *r;
    double           start, stop, step, i;
    size_t           k;
    int              rc;

    for (k = 0; k < args->n; k++) {
        if (args->v[k].k != V_INT && args->v[k].k != V_FLOAT) {
            return kvr_tmpl_error(c, line, "range() arguments must be "
                                  "numbers");
        }
    }
    if (args->n == 0 || args->n > 3) {
        return kvr_tmpl_error(c, line, "range() takes 1 to 3 arguments");
    }
    start = args->v[0].u.n;
    stop = args->n > 1 ? args->v[1].u.n : start;
    if (args->n == 1) {
        start = 0;
    }
    step = args->n > 2 ? args->v[2].u.n : 1;
    if (step == 0) {
        return kvr_tmpl_error(c, line, "range() step must not be zero");
    }
    if (isnan(start) || isnan(stop) || isnan(step)) {
        *out = kvr_tmpl_wrap_arr(kvr_tmpl_arr_new(c, 0));
        return out->u.a ? KVR_OK : kvr_tmpl_nomem(c);
    }
    r = kvr_tmpl_arr_new(c, 0);
    if (r == NULL) {
        return kvr_tmpl_nomem(c);
    }
    for (i = start; step > 0 ? i < stop : i > stop; i += step) {
        if (++c->iters > KVR_TMPL_MAX_ITERS) {
            return kvr_tmpl_error(c, line, "more than %d loop iterations",
                                  KVR_TMPL_MAX_ITERS);
        }
        rc = kvr_tmpl_arr_push(c, r, kvr_tmpl_num(
                                   i == floor(i) ? V_INT : V_FLOAT, i));
        if (rc) {
            return rc;
        }
    }
    *out = kvr_tmpl_wrap_arr(r);
    return KVR_OK;
}

static int
strftime_fn(kvr_tmpl_ctx_t *c, int line, kvr_tmpl_arr_t *args,
    kvr_tmpl_val_t *out)
{
    static const char *months[] = {
        "January", "February", "March", "April", "May", "June", "July",
        "August", "September", "October", "November", "December"
    };
    const kvr_tmpl_val_t  *f;
    kvr_tmpl_sb_t          sb;
    struct tm              tm;
    time_t                 t;
    size_t                 i;
    char                   buf[32];

    if (args->n == 0 || args->v[0].k != V_STR) {
        return kvr_tmpl_error(c, line, "strftime_now() needs a format "
                              "string");
    }
    f = &args->v[0];
    t = c->now ? (time_t) c->now : time(NULL);
    if (localtime_r(&t, &tm) == NULL) {
        return kvr_tmpl_error(c, line, "strftime_now(): bad time");
    }
    kvr_tmpl_sb_init(&sb, c);
    for (i = 0; i < f->u.s.len; i++) {
        if (f->u.s.p[i] != '%' || i + 1 >= f->u.s.len
            || !strchr("YmdbBHM%", f->u.s.p[i + 1]))
        {
            kvr_tmpl_sb_addc(&sb, f->u.s.p[i]);
            continue;
        }
        i++;
        switch (f->u.s.p[i]) {
        case 'Y':
            snprintf(buf, sizeof(buf), "%d", tm.tm_year + 1900);
            break;
        case 'm':
            snprintf(buf, sizeof(buf), "%02d", tm.tm_mon + 1);
            break;
        case 'd':
            snprintf(buf, sizeof(buf), "%02d", tm.tm_mday);
            break;
        case 'b':
            snprintf(buf, sizeof(buf), "%.3s", months[tm.tm_mon]);
            break;
        case 'B':
            snprintf(buf, sizeof(buf), "%s", months[tm.tm_mon]);
            break;
        case 'H':
            snprintf(buf, sizeof(buf), "%02d", tm.tm_hour);
            break;
        case 'M':
            snprintf(buf, sizeof(buf), "%02d", tm.tm_min);
            break;
        default:
            snprintf(buf, sizeof(buf), "%%");
            break;
        }
        kvr_tmpl_sb_add(&sb, buf, strlen(buf));
    }
    return kvr_tmpl_sb_done(&sb, out);
}

static int
raise_fn(kvr_tmpl_ctx_t *c, int line, kvr_tmpl_arr_t *args)
{
    kvr_tmpl_sb_t  sb;

    kvr_tmpl_sb_init(&sb, c);
    if (args->n > 0 && args->v[0].k != V_UNDEF) {
        if (kvr_tmpl_to_raw(c, line, &args->v[0], &sb) != KVR_OK) {
            sb.n = 0;
        }
    }
    return kvr_tmpl_error(c, line, "raise_exception: %.*s", (int) sb.n,
                          sb.p ? sb.p : "");
}

int
kvr_tmpl_call_global(kvr_tmpl_ctx_t *c, int line, int id,
    kvr_tmpl_arr_t *args, kvr_tmpl_val_t *out)
{
    switch (id) {
    case B_NAMESPACE:
        return namespace_fn(c, line, args, out);
    case B_RAISE:
        return raise_fn(c, line, args);
    case B_RANGE:
        return range_fn(c, line, args, out);
    default:
        return strftime_fn(c, line, args, out);
    }
}

int
kvr_tmpl_setup_globals(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env)
{
    static const struct {
        const char  *name;
        int          id;
    } fns[] = {
        { "namespace", B_NAMESPACE }, { "raise_exception", B_RAISE },
        { "range", B_RANGE }, { "strftime_now", B_STRFTIME },
    };
    kvr_tmpl_val_t  v;
    size_t          i;
    int             rc;

    for (i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
        rc = kvr_tmpl_fn_new(c, fns[i].id, NULL, &v);
        if (rc == KVR_OK) {
            rc = kvr_tmpl_env_set(c, env, fns[i].name, strlen(fns[i].name), v);
        }
        if (rc) {
            return rc;
        }
    }
    if ((rc = kvr_tmpl_env_set(c, env, "false", 5, kvr_tmpl_bool(0)))
        || (rc = kvr_tmpl_env_set(c, env, "true", 4, kvr_tmpl_bool(1)))
        || (rc = kvr_tmpl_env_set(c, env, "none", 4, kvr_tmpl_none()))
        || (rc = kvr_tmpl_env_set(c, env, "False", 5, kvr_tmpl_bool(0)))
        || (rc = kvr_tmpl_env_set(c, env, "True", 4, kvr_tmpl_bool(1)))
        || (rc = kvr_tmpl_env_set(c, env, "None", 4, kvr_tmpl_none())))
    {
        return rc;
    }
    return KVR_OK;
}
