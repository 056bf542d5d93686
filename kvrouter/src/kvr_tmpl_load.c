/*
 * kvrouter: chat templates, the public API: compile, load from a model
 * directory or its tokenizer_config.json, render.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvr_tmpl_int.h"

int
kvr_template_compile(const char *src, size_t len, kvr_template_t **out,
    char *err, size_t errlen)
{
    kvr_template_t  *t;
    kvr_tmpl_tok_t  *toks;
    size_t           ntoks;
    int              rc;

    if (err && errlen) {
        err[0] = '\0';
    }
    if (out == NULL || (src == NULL && len > 0)) {
        return KVR_ERR_INVAL;
    }
    if (len > KVR_TMPL_MAX_SOURCE) {
        if (err && errlen) {
            snprintf(err, errlen, "chat_template: larger than %u bytes",
                     KVR_TMPL_MAX_SOURCE);
        }
        return KVR_ERR_INVAL;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return KVR_ERR_NOMEM;
    }
    t->arena.limit = KVR_TMPL_MAX_MEMORY;
    rc = kvr_tmpl_lex(&t->arena, src ? src : "", len, &toks, &ntoks, err,
                      errlen);
    if (rc == KVR_OK) {
        rc = kvr_tmpl_parse(&t->arena, toks, ntoks, &t->body, &t->nbody, err,
                            errlen);
    }
    if (rc) {
        kvr_template_free(t);
        return rc;
    }
    *out = t;
    return KVR_OK;
}

void
kvr_template_free(kvr_template_t *t)
{
    if (t == NULL) {
        return;
    }
    kvr_tmpl_arena_free(&t->arena);
    free(t);
}

static int
config_template(const json_t *cfg, const char *name, kvr_template_t **out,
    char *err, size_t errlen)
{
    const json_t  *ct, *e, *n, *tp, *pick;
    size_t         i;

    ct = json_object_get(cfg, "chat_template");
    if (ct == NULL || json_is_null(ct)) {
        if (err && errlen) {
            snprintf(err, errlen, "chat_template: the model has none");
        }
        return KVR_ERR_NOTFOUND;
    }
    if (json_is_string(ct)) {
        return kvr_template_compile(json_string_value(ct),
                                    json_string_length(ct), out, err, errlen);
    }
    if (!json_is_array(ct)) {
        if (err && errlen) {
            snprintf(err, errlen, "chat_template: must be a string or a list "
                     "of {name, template}");
        }
        return KVR_ERR_INVAL;
    }
    pick = NULL;
    for (i = 0; i < json_array_size(ct); i++) {
        e = json_array_get(ct, i);
        n = json_object_get(e, "name");
        tp = json_object_get(e, "template");
        if (!json_is_string(n) || !json_is_string(tp)) {
            if (err && errlen) {
                snprintf(err, errlen, "chat_template: must be a list of "
                         "objects with \"name\" and \"template\"");
            }
            return KVR_ERR_INVAL;
        }
        if (pick == NULL
            && strcmp(json_string_value(n), name ? name : "default") == 0)
        {
            pick = tp;
        }
    }
    if (pick == NULL && name == NULL && json_array_size(ct) > 0) {
        pick = json_object_get(json_array_get(ct, 0), "template");
    }
    if (pick == NULL) {
        if (err && errlen) {
            snprintf(err, errlen, "chat_template: no template named \"%s\"",
                     name ? name : "default");
        }
        return KVR_ERR_NOTFOUND;
    }
    return kvr_template_compile(json_string_value(pick),
                                json_string_length(pick), out, err, errlen);
}

int
kvr_template_load_config(const char *config_json, size_t len,
    const char *name, kvr_template_t **out, char *err, size_t errlen)
{
    json_error_t  je;
    json_t       *cfg;
    int           rc;

    cfg = json_loadb(config_json, len, JSON_DECODE_INT_AS_REAL, &je);
    if (cfg == NULL || !json_is_object(cfg)) {
        if (err && errlen) {
            snprintf(err, errlen, "tokenizer_config.json: %s",
                     cfg ? "not an object" : je.text);
        }
        json_decref(cfg);
        return KVR_ERR_INVAL;
    }
    rc = config_template(cfg, name, out, err, errlen);
    json_decref(cfg);
    return rc;
}

/* whole file into malloc'd memory; KVR_ERR_NOTFOUND when absent */
static int
read_file(const char *path, char **data, size_t *len)
{
    FILE    *f;
    char    *buf, *nb;
    size_t   n, cap, r;

    f = fopen(path, "rb");
    if (f == NULL) {
        return errno == ENOENT ? KVR_ERR_NOTFOUND : KVR_ERR_INVAL;
    }
    cap = 65536;
    n = 0;
    buf = malloc(cap);
    while (buf != NULL) {
        r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) {
            break;
        }
        if (cap > (64u << 20)) {
            free(buf);
            buf = NULL;
            break;
        }
        nb = realloc(buf, cap * 2);
        if (nb == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    if (buf == NULL || ferror(f)) {
        free(buf);
        fclose(f);
        return KVR_ERR_INVAL;
    }
    fclose(f);
    *data = buf;
    *len = n;
    return KVR_OK;
}

int
kvr_template_load_dir(const char *dir, const char *name, kvr_template_t **out,
    char *err, size_t errlen)
{
    char          path[4096];
    char         *data;
    size_t        len;
    json_t       *cfg;
    json_error_t  je;
    int           rc, has;

    if (dir == NULL || out == NULL) {
        return KVR_ERR_INVAL;
    }
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    rc = read_file(path, &data, &len);
    if (rc == KVR_OK) {
        cfg = json_loadb(data, len, JSON_DECODE_INT_AS_REAL, &je);
        free(data);
        if (cfg == NULL || !json_is_object(cfg)) {
            if (err && errlen) {
                snprintf(err, errlen, "%s: %s", path,
                         cfg ? "not an object" : je.text);
            }
            json_decref(cfg);
            return KVR_ERR_INVAL;
        }
        has = json_object_get(cfg, "chat_template") != NULL
              && !json_is_null(json_object_get(cfg, "chat_template"));
        rc = config_template(cfg, name, out, err, errlen);
        json_decref(cfg);
        if (rc != KVR_ERR_NOTFOUND || has) {
            return rc;
        }
    } else if (rc != KVR_ERR_NOTFOUND) {
        if (err && errlen) {
            snprintf(err, errlen, "%s: cannot read", path);
        }
        return rc;
    }
    snprintf(path, sizeof(path), "%s/chat_template.jinja", dir);
    rc = read_file(path, &data, &len);
    if (rc != KVR_OK) {
        if (err && errlen) {
            snprintf(err, errlen, rc == KVR_ERR_NOTFOUND
                     ? "%s: the model has no chat template "
                       "(tokenizer_config.json or chat_template.jinja)"
                     : "%s: cannot read", dir);
        }
        return rc;
    }
    rc = kvr_template_compile(data, len, out, err, errlen);
    free(data);
    return rc;
}

static int
add_var(kvr_tmpl_ctx_t *c, kvr_tmpl_env_t *env, const char *k,
    const json_t *j)
{
    kvr_tmpl_val_t  v;
    int             rc;

    rc = kvr_tmpl_from_json(c, j, &v);
    if (rc) {
        return rc;
    }
    return kvr_tmpl_env_set(c, env, k, strlen(k), v);
}

int
kvr_template_render(const kvr_template_t *t, const kvr_template_vars_t *vars,
    kvr_buf_t *out, char *err, size_t errlen)
{
    static const char  *reserved[] = {
        "namespace", "raise_exception", "range", "strftime_now", "true",
        "false", "none", "True", "False", "None"
    };
    kvr_tmpl_ctx_t      c;
    kvr_tmpl_env_t     *env;
    const char         *key, *kcopy;
    json_t             *val;
    size_t              start, i;
    int                 rc;

    if (err && errlen) {
        err[0] = '\0';
    }
    if (t == NULL || vars == NULL || out == NULL) {
        return KVR_ERR_INVAL;
    }
    if (vars->extra && !json_is_object(vars->extra)) {
        if (err && errlen) {
            snprintf(err, errlen, "chat_template: extra variables must be an "
                     "object");
        }
        return KVR_ERR_INVAL;
    }
    memset(&c, 0, sizeof(c));
    c.arena.limit = KVR_TMPL_MAX_MEMORY;
    c.out = out;
    c.err = err;
    c.errlen = errlen;
    c.now = vars->now;
    start = out->len;

    env = kvr_tmpl_env_new(&c, NULL);
    rc = env ? kvr_tmpl_setup_globals(&c, env) : kvr_tmpl_nomem(&c);
    if (rc == KVR_OK && vars->messages) {
        rc = add_var(&c, env, "messages", vars->messages);
    }
    if (rc == KVR_OK && vars->bos_token) {
        rc = kvr_tmpl_env_set(&c, env, "bos_token", 9,
                              kvr_tmpl_str(vars->bos_token,
                                           strlen(vars->bos_token)));
    }
    if (rc == KVR_OK && vars->eos_token) {
        rc = kvr_tmpl_env_set(&c, env, "eos_token", 9,
                              kvr_tmpl_str(vars->eos_token,
                                           strlen(vars->eos_token)));
    }
    if (rc == KVR_OK) {
        rc = kvr_tmpl_env_set(&c, env, "add_generation_prompt", 21,
                              kvr_tmpl_bool(vars->add_generation_prompt));
    }
    if (rc == KVR_OK && vars->tools) {
        rc = add_var(&c, env, "tools", vars->tools);
    }
    if (rc == KVR_OK && vars->extra) {
        json_object_foreach((json_t *) vars->extra, key, val) {
            for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
                if (strcmp(key, reserved[i]) == 0) {
                    rc = kvr_tmpl_error(&c, 0, "Variable already declared: %s",
                                        key);
                    break;
                }
            }
            if (rc == KVR_OK) {
                kcopy = kvr_tmpl_strdup(&c.arena, key, strlen(key));
                rc = kcopy ? add_var(&c, env, kcopy, val) : kvr_tmpl_nomem(&c);
            }
            if (rc) {
                break;
            }
        }
    }
    if (rc == KVR_OK) {
        rc = kvr_tmpl_exec_block(&c, env, t->body, t->nbody);
        if (rc == KVR_TMPL_BREAK || rc == KVR_TMPL_CONTINUE) {
            rc = kvr_tmpl_error(&c, 0, "%s outside a loop",
                                rc == KVR_TMPL_BREAK ? "break" : "continue");
        }
    }
    kvr_tmpl_arena_free(&c.arena);
    if (rc) {
        out->len = start;
        if (out->data) {
            out->data[start] = '\0';
        }
        return rc < 0 ? rc : KVR_ERR_INVAL;
    }
    if (kvr_buf_reserve(out, 0) != KVR_OK) {
        return KVR_ERR_NOMEM;
    }
    out->data[out->len] = '\0';
    return KVR_OK;
}
