
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * Models: tokenizer, chat template and context length of every
 * dynamo_model, loaded at configuration time and freed with the cycle.
 */


#include "ngx_http_dynamo_module.h"

#include "kvr_err.h"
#include "kvr_redis.h"


#define NGX_HTTP_DYNAMO_ERR_LEN  512


static ngx_int_t ngx_http_dynamo_model_load(ngx_conf_t *cf,
    ngx_http_dynamo_model_t *m);
static ngx_int_t ngx_http_dynamo_model_context(ngx_conf_t *cf,
    ngx_http_dynamo_model_t *m, char *dir);
static char *ngx_http_dynamo_model_strdup(ngx_pool_t *pool, const char *s);
static void ngx_http_dynamo_models_cleanup(void *data);


ngx_int_t
ngx_http_dynamo_models_init(ngx_conf_t *cf, ngx_http_dynamo_main_conf_t *dmcf)
{
    ngx_uint_t                i;
    ngx_pool_cleanup_t       *cln;
    ngx_http_dynamo_model_t  *m;

    if (dmcf->models.nelts == 0) {
        return NGX_OK;
    }

    /* registered first: frees whatever was loaded when a later one fails */

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_dynamo_models_cleanup;
    cln->data = dmcf;

    m = dmcf->models.elts;

    for (i = 0; i < dmcf->models.nelts; i++) {
        m[i].index = i;
        m[i].created = ngx_time();

        if (ngx_http_dynamo_model_load(cf, &m[i]) != NGX_OK) {
            return NGX_ERROR;
        }

        /* the workers publish under the model's name: check it now */

        if (dmcf->redis && kvr_redis_ns_valid(m[i].ns) != KVR_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "model name \"%V\" in \"dynamo_model\" is "
                               "not a valid Redis namespace for "
                               "\"dynamo_redis\": it takes 1 to %d "
                               "printable ASCII characters, none of space, "
                               "\":\", \"{\" or \"}\"",
                               &m[i].name, KVR_REDIS_NS_MAX);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynamo_model_load(ngx_conf_t *cf, ngx_http_dynamo_model_t *m)
{
    int          rc;
    char        *dir, err[NGX_HTTP_DYNAMO_ERR_LEN];
    const char  *tok;

    dir = (char *) ngx_pnalloc(cf->pool, m->path.len + 1);
    if (dir == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dir, m->path.data, m->path.len);
    dir[m->path.len] = '\0';

    err[0] = '\0';

    if (kvr_tokenizer_load_dir(dir, &m->tokenizer, err, sizeof(err))
        != KVR_OK)
    {
        m->tokenizer = NULL;
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "cannot load the tokenizer of model \"%V\" "
                           "from \"%s\" in \"dynamo_model\": %s",
                           &m->name, dir, err);
        return NGX_ERROR;
    }

    err[0] = '\0';

    rc = kvr_template_load_dir(dir, NULL, &m->chat_template, err,
                               sizeof(err));

    if (rc == KVR_ERR_NOTFOUND) {
        m->chat_template = NULL;
        ngx_conf_log_error(NGX_LOG_NOTICE, cf, 0,
                           "model \"%V\" has no chat template: "
                           "/v1/chat/completions is refused for it",
                           &m->name);

    } else if (rc != KVR_OK) {
        m->chat_template = NULL;
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "cannot load the chat template of model \"%V\" "
                           "from \"%s\" in \"dynamo_model\": %s",
                           &m->name, dir, err);
        return NGX_ERROR;
    }

    m->vocab_size = kvr_tokenizer_vocab_size(m->tokenizer);

    tok = kvr_tokenizer_bos_token(m->tokenizer);
    if (tok) {
        m->bos_token = ngx_http_dynamo_model_strdup(cf->pool, tok);
        if (m->bos_token == NULL) {
            return NGX_ERROR;
        }
    }

    tok = kvr_tokenizer_eos_token(m->tokenizer);
    if (tok) {
        m->eos_token = ngx_http_dynamo_model_strdup(cf->pool, tok);
        if (m->eos_token == NULL) {
            return NGX_ERROR;
        }
    }

    m->ns = (char *) ngx_pnalloc(cf->pool, m->name.len + 1);
    if (m->ns == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(m->ns, m->name.data, m->name.len);
    m->ns[m->name.len] = '\0';

    return ngx_http_dynamo_model_context(cf, m, dir);
}


static ngx_int_t
ngx_http_dynamo_model_context(ngx_conf_t *cf, ngx_http_dynamo_model_t *m,
    char *dir)
{
    u_char        *file;
    json_t        *root, *v;
    json_error_t   je;

    if (m->context) {
        return NGX_OK;
    }

    file = ngx_pnalloc(cf->pool, ngx_strlen(dir) + sizeof("/config.json"));
    if (file == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(file, "%s/config.json%Z", dir);

    root = json_load_file((char *) file, 0, &je);
    if (root == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "model \"%V\" in \"dynamo_model\" has no context= "
                           "and \"%s\" cannot be read: %s",
                           &m->name, file, je.text);
        return NGX_ERROR;
    }

    v = json_object_get(root, "max_position_embeddings");

    if (!json_is_integer(v) || json_integer_value(v) <= 0) {
        json_decref(root);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "model \"%V\" in \"dynamo_model\" has no context= "
                           "and \"%s\" has no max_position_embeddings",
                           &m->name, file);
        return NGX_ERROR;
    }

    m->context = (ngx_uint_t) json_integer_value(v);

    json_decref(root);

    return NGX_OK;
}


static char *
ngx_http_dynamo_model_strdup(ngx_pool_t *pool, const char *s)
{
    size_t   len;
    char    *p;

    len = ngx_strlen(s);

    p = (char *) ngx_pnalloc(pool, len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s, len + 1);

    return p;
}


static void
ngx_http_dynamo_models_cleanup(void *data)
{
    ngx_http_dynamo_main_conf_t  *dmcf = data;

    ngx_uint_t                i;
    ngx_http_dynamo_model_t  *m;

    m = dmcf->models.elts;

    for (i = 0; i < dmcf->models.nelts; i++) {
        if (m[i].tokenizer) {
            kvr_tokenizer_free(m[i].tokenizer);
            m[i].tokenizer = NULL;
        }

        if (m[i].chat_template) {
            kvr_template_free(m[i].chat_template);
            m[i].chat_template = NULL;
        }
    }
}


ngx_http_dynamo_model_t *
ngx_http_dynamo_model_find(ngx_http_dynamo_main_conf_t *dmcf, u_char *name,
    size_t len)
{
    ngx_str_t                *a;
    ngx_uint_t                i, j;
    ngx_http_dynamo_model_t  *m;

    m = dmcf->models.elts;

    for (i = 0; i < dmcf->models.nelts; i++) {
        if (m[i].name.len == len
            && ngx_strncmp(m[i].name.data, name, len) == 0)
        {
            return &m[i];
        }

        a = m[i].aliases.elts;

        for (j = 0; j < m[i].aliases.nelts; j++) {
            if (a[j].len == len && ngx_strncmp(a[j].data, name, len) == 0) {
                return &m[i];
            }
        }
    }

    return NULL;
}
