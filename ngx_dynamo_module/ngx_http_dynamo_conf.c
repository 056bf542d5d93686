
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * Directive handlers: argument parsing and validation.
 */


#include "ngx_http_dynamo_module.h"


#define NGX_HTTP_DYNAMO_NAME_MAX  256


typedef struct {
    ngx_str_t                       name;
    ngx_uint_t                      value;
} ngx_http_dynamo_enum_t;


typedef struct {
    char                           *name;
    size_t                          offset;
} ngx_http_dynamo_fixed_param_t;


static char *ngx_http_dynamo_invalid(ngx_conf_t *cf, ngx_command_t *cmd,
    char *what, ngx_str_t *value);
static ngx_int_t ngx_http_dynamo_param(ngx_str_t *arg, char *name,
    ngx_str_t *value);
static ngx_int_t ngx_http_dynamo_enum(ngx_http_dynamo_enum_t *e,
    ngx_str_t *name, ngx_uint_t *value);
static ngx_int_t ngx_http_dynamo_valid_name(ngx_str_t *name);
static ngx_int_t ngx_http_dynamo_name_taken(ngx_http_dynamo_main_conf_t *dmcf,
    ngx_http_dynamo_model_t *model, ngx_str_t *name);
static ngx_int_t ngx_http_dynamo_model_named(ngx_http_dynamo_model_t *model,
    ngx_str_t *name);
static char *ngx_http_dynamo_duplicate_model(ngx_conf_t *cf,
    ngx_command_t *cmd, ngx_str_t *name);
static char *ngx_http_dynamo_model_alias(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_dynamo_main_conf_t *dmcf, ngx_http_dynamo_model_t *model,
    ngx_str_t *value);
static char *ngx_http_dynamo_model_path(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_dynamo_model_t *model);
static char *ngx_http_dynamo_redis_param(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_dynamo_redis_conf_t *rcf, ngx_str_t *arg);
static char *ngx_http_dynamo_upstream_param(ngx_conf_t *cf,
    ngx_command_t *cmd, ngx_http_dynamo_srv_conf_t *dscf, ngx_str_t *arg);


static ngx_http_dynamo_enum_t  ngx_http_dynamo_policies[] = {
    { ngx_string("kv"), NGX_HTTP_DYNAMO_POLICY_KV },
    { ngx_string("round_robin"), NGX_HTTP_DYNAMO_POLICY_ROUND_ROBIN },
    { ngx_string("least_load"), NGX_HTTP_DYNAMO_POLICY_LEAST_LOAD },
    { ngx_null_string, 0 }
};


static ngx_http_dynamo_enum_t  ngx_http_dynamo_roles[] = {
    { ngx_string("aggregated"), NGX_HTTP_DYNAMO_ROLE_AGGREGATED },
    { ngx_string("decode"), NGX_HTTP_DYNAMO_ROLE_DECODE },
    { ngx_string("prefill"), NGX_HTTP_DYNAMO_ROLE_PREFILL },
    { ngx_null_string, 0 }
};


static ngx_http_dynamo_fixed_param_t  ngx_http_dynamo_upstream_fixed[] = {
    { "overlap_weight", offsetof(ngx_http_dynamo_srv_conf_t, overlap_weight) },
    { "temperature", offsetof(ngx_http_dynamo_srv_conf_t, temperature) },
    { "balance_margin", offsetof(ngx_http_dynamo_srv_conf_t, balance_margin) },
    { NULL, 0 }
};


char *
ngx_http_dynamo_model(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dynamo_main_conf_t *dmcf = conf;

    char                     *rv;
    ngx_int_t                 n;
    ngx_str_t                *value, v;
    ngx_uint_t                i;
    ngx_http_dynamo_model_t   model, *m;

    ngx_memzero(&model, sizeof(ngx_http_dynamo_model_t));
    model.block_size = NGX_HTTP_DYNAMO_BLOCK_SIZE;

    if (ngx_array_init(&model.aliases, cf->pool, 1, sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_http_dynamo_param(&value[i], "name", &v) == NGX_OK) {
            if (model.name.len) {
                return ngx_http_dynamo_invalid(cf, cmd, "parameter",
                                               &value[i]);
            }

            if (ngx_http_dynamo_valid_name(&v) != NGX_OK) {
                return ngx_http_dynamo_invalid(cf, cmd, "name", &v);
            }

            if (ngx_http_dynamo_name_taken(dmcf, &model, &v)) {
                return ngx_http_dynamo_duplicate_model(cf, cmd, &v);
            }

            model.name = v;
            continue;
        }

        if (ngx_http_dynamo_param(&value[i], "path", &v) == NGX_OK) {
            if (v.len == 0) {
                return ngx_http_dynamo_invalid(cf, cmd, "path", &v);
            }

            model.path = v;
            continue;
        }

        if (ngx_http_dynamo_param(&value[i], "block_size", &v) == NGX_OK) {
            n = ngx_atoi(v.data, v.len);

            if (n <= 0 || n > NGX_HTTP_DYNAMO_BLOCK_SIZE_MAX) {
                return ngx_http_dynamo_invalid(cf, cmd, "block_size", &v);
            }

            model.block_size = n;
            continue;
        }

        if (ngx_http_dynamo_param(&value[i], "context", &v) == NGX_OK) {
            n = ngx_atoi(v.data, v.len);

            if (n <= 0) {
                return ngx_http_dynamo_invalid(cf, cmd, "context", &v);
            }

            model.context = n;
            continue;
        }

        if (ngx_http_dynamo_param(&value[i], "alias", &v) == NGX_OK) {
            rv = ngx_http_dynamo_model_alias(cf, cmd, dmcf, &model, &v);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            continue;
        }

        return ngx_http_dynamo_invalid(cf, cmd, "parameter", &value[i]);
    }

    if (model.name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "missing name= in \"%V\"", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (model.path.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "missing path= in \"%V\"", &cmd->name);
        return NGX_CONF_ERROR;
    }

    rv = ngx_http_dynamo_model_path(cf, cmd, &model);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    m = ngx_array_push(&dmcf->models);
    if (m == NULL) {
        return NGX_CONF_ERROR;
    }

    *m = model;

    return NGX_CONF_OK;
}


static char *
ngx_http_dynamo_model_alias(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_dynamo_main_conf_t *dmcf, ngx_http_dynamo_model_t *model,
    ngx_str_t *value)
{
    u_char     *p, *last, *comma;
    ngx_str_t   alias, *a;

    p = value->data;
    last = p + value->len;

    do {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        alias.data = p;
        alias.len = comma - p;

        if (ngx_http_dynamo_valid_name(&alias) != NGX_OK) {
            return ngx_http_dynamo_invalid(cf, cmd, "alias", value);
        }

        if (ngx_http_dynamo_name_taken(dmcf, model, &alias)) {
            return ngx_http_dynamo_duplicate_model(cf, cmd, &alias);
        }

        a = ngx_array_push(&model->aliases);
        if (a == NULL) {
            return NGX_CONF_ERROR;
        }

        *a = alias;

        p = comma + 1;

    } while (comma < last);

    return NGX_CONF_OK;
}


static char *
ngx_http_dynamo_model_path(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_dynamo_model_t *model)
{
    ngx_file_info_t  fi;

    if (ngx_conf_full_name(cf->cycle, &model->path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_file_info(model->path.data, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot access model path \"%V\" in \"%V\"",
                           &model->path, &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (!ngx_is_dir(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "model path \"%V\" in \"%V\" is not a directory",
                           &model->path, &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_dynamo_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dynamo_main_conf_t *dmcf = conf;

    char                          *rv;
    ngx_str_t                     *value;
    ngx_uint_t                     i;
    ngx_http_dynamo_redis_conf_t  *rcf;

    if (dmcf->redis) {
        return "is duplicate";
    }

    rcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_dynamo_redis_conf_t));
    if (rcf == NULL) {
        return NGX_CONF_ERROR;
    }

    rcf->connect_timeout = NGX_HTTP_DYNAMO_REDIS_TIMEOUT;
    rcf->timeout = NGX_HTTP_DYNAMO_REDIS_TIMEOUT;

    value = cf->args->elts;

    rcf->url.url = value[1];
    rcf->url.default_port = NGX_HTTP_DYNAMO_REDIS_PORT;

    if (ngx_parse_url(cf->pool, &rcf->url) != NGX_OK) {
        if (rcf->url.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in address \"%V\" of \"%V\"",
                               rcf->url.err, &value[1], &cmd->name);
        }

        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {
        rv = ngx_http_dynamo_redis_param(cf, cmd, rcf, &value[i]);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    dmcf->redis = rcf;

    return NGX_CONF_OK;
}


static char *
ngx_http_dynamo_redis_param(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_dynamo_redis_conf_t *rcf, ngx_str_t *arg)
{
    ngx_int_t  n;
    ngx_str_t  v;

    if (ngx_http_dynamo_param(arg, "password", &v) == NGX_OK) {
        if (v.len == 0) {
            return ngx_http_dynamo_invalid(cf, cmd, "password", &v);
        }

        rcf->password = v;
        return NGX_CONF_OK;
    }

    if (ngx_http_dynamo_param(arg, "db", &v) == NGX_OK) {
        n = ngx_atoi(v.data, v.len);
        if (n == NGX_ERROR) {
            return ngx_http_dynamo_invalid(cf, cmd, "db", &v);
        }

        rcf->db = n;
        return NGX_CONF_OK;
    }

    if (ngx_http_dynamo_param(arg, "connect_timeout", &v) == NGX_OK) {
        n = ngx_parse_time(&v, 0);
        if (n == NGX_ERROR || n == 0) {
            return ngx_http_dynamo_invalid(cf, cmd, "connect_timeout", &v);
        }

        rcf->connect_timeout = n;
        return NGX_CONF_OK;
    }

    if (ngx_http_dynamo_param(arg, "timeout", &v) == NGX_OK) {
        n = ngx_parse_time(&v, 0);
        if (n == NGX_ERROR || n == 0) {
            return ngx_http_dynamo_invalid(cf, cmd, "timeout", &v);
        }

        rcf->timeout = n;
        return NGX_CONF_OK;
    }

    return ngx_http_dynamo_invalid(cf, cmd, "parameter", arg);
}


char *
ngx_http_dynamo_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dynamo_main_conf_t *dmcf = conf;

    ssize_t          size;
    ngx_int_t        n;
    ngx_str_t       *value;
    ngx_shm_zone_t  *shm_zone;

    if (dmcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        return ngx_http_dynamo_invalid(cf, cmd, "zone name", &value[1]);
    }

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        return ngx_http_dynamo_invalid(cf, cmd, "zone size", &value[2]);
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small in \"%V\"",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 4) {
        if (ngx_strncmp(value[3].data, "workers=", 8) != 0) {
            return ngx_http_dynamo_invalid(cf, cmd, "parameter", &value[3]);
        }

        n = ngx_atoi(value[3].data + 8, value[3].len - 8);

        if (n == NGX_ERROR || n < 1 || n > KVR_INDEX_MAX_WORKERS) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"%V\" in \"%V\": 1..%d",
                               &value[3], &cmd->name, KVR_INDEX_MAX_WORKERS);
            return NGX_CONF_ERROR;
        }

        dmcf->zone_workers = n;
    }

    shm_zone = ngx_shared_memory_add(cf, &value[1], size, &ngx_dynamo_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    dmcf->shm_zone = shm_zone;

    return NGX_CONF_OK;
}


char *
ngx_http_dynamo_upstream(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dynamo_srv_conf_t *dscf = conf;

    char                           *rv;
    ngx_str_t                      *value;
    ngx_uint_t                      i;
    ngx_http_dynamo_srv_conf_t    **up;
    ngx_http_dynamo_main_conf_t    *dmcf;
    ngx_http_upstream_srv_conf_t   *uscf;

    if (dscf->policy != NGX_HTTP_DYNAMO_POLICY_NONE) {
        return "is duplicate";
    }

    uscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);

    if (uscf->peer.init_upstream) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "load balancing method redefined");
    }

    uscf->peer.init_upstream = ngx_http_dynamo_balancer_init_upstream;
    uscf->flags = NGX_HTTP_UPSTREAM_CREATE
                  |NGX_HTTP_UPSTREAM_WEIGHT
                  |NGX_HTTP_UPSTREAM_MAX_FAILS
                  |NGX_HTTP_UPSTREAM_FAIL_TIMEOUT
                  |NGX_HTTP_UPSTREAM_DOWN;

    dscf->upstream = uscf;

    dmcf = ngx_http_conf_get_module_main_conf(cf, ngx_dynamo_module);

    up = ngx_array_push(&dmcf->upstreams);
    if (up == NULL) {
        return NGX_CONF_ERROR;
    }

    *up = dscf;

    value = cf->args->elts;

    if (ngx_http_dynamo_enum(ngx_http_dynamo_policies, &value[1],
                             &dscf->policy)
        != NGX_OK)
    {
        return ngx_http_dynamo_invalid(cf, cmd, "policy", &value[1]);
    }

    for (i = 2; i < cf->args->nelts; i++) {
        rv = ngx_http_dynamo_upstream_param(cf, cmd, dscf, &value[i]);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_dynamo_upstream_param(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_dynamo_srv_conf_t *dscf, ngx_str_t *arg)
{
    ngx_int_t                       n;
    ngx_str_t                       v;
    ngx_http_dynamo_fixed_param_t  *fp;

    if (ngx_http_dynamo_param(arg, "role", &v) == NGX_OK) {
        if (ngx_http_dynamo_enum(ngx_http_dynamo_roles, &v, &dscf->role)
            != NGX_OK)
        {
            return ngx_http_dynamo_invalid(cf, cmd, "role", &v);
        }

        return NGX_CONF_OK;
    }

    for (fp = ngx_http_dynamo_upstream_fixed; fp->name; fp++) {
        if (ngx_http_dynamo_param(arg, fp->name, &v) != NGX_OK) {
            continue;
        }

        n = ngx_atofp(v.data, v.len, NGX_HTTP_DYNAMO_FIXED_POINT);
        if (n == NGX_ERROR) {
            return ngx_http_dynamo_invalid(cf, cmd, fp->name, &v);
        }

        *(ngx_uint_t *) ((u_char *) dscf + fp->offset) = n;

        return NGX_CONF_OK;
    }

    return ngx_http_dynamo_invalid(cf, cmd, "parameter", arg);
}


char *
ngx_http_dynamo_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dynamo_loc_conf_t *dlcf = conf;

    ngx_str_t                 *value;
    ngx_url_t                  u;
    ngx_http_core_loc_conf_t  *clcf;

    if (dlcf->upstream) {
        return "is duplicate";
    }

    if (dlcf->metrics == 1) {
        return "cannot be combined with \"dynamo_metrics\"";
    }

    value = cf->args->elts;

    if (value[1].len == 0
        || ngx_strlchr(value[1].data, value[1].data + value[1].len, '$')
        || ngx_strlchr(value[1].data, value[1].data + value[1].len, '/'))
    {
        return ngx_http_dynamo_invalid(cf, cmd, "upstream", &value[1]);
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.no_resolve = 1;

    dlcf->upstream = ngx_http_upstream_add(cf, &u, 0);
    if (dlcf->upstream == NULL) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_dynamo_handler;

    return NGX_CONF_OK;
}


/*
 * dynamo_prefill_upstream NAME: only noted here, the upstream block may
 * come later in the file; ngx_http_dynamo_prefill_check finds it when the
 * location is merged (everything parsed by then). Not through
 * ngx_http_upstream_add: an unknown name must not become an implicit
 * upstream.
 */

char *
ngx_http_dynamo_prefill_upstream(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_dynamo_loc_conf_t *dlcf = conf;

    ngx_str_t  *value;

    if (dlcf->prefill_name.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0
        || ngx_strlchr(value[1].data, value[1].data + value[1].len, '$'))
    {
        return ngx_http_dynamo_invalid(cf, cmd, "upstream", &value[1]);
    }

    dlcf->prefill_name = value[1];
    dlcf->prefill_file = cf->conf_file->file.name;
    dlcf->prefill_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


char *
ngx_http_dynamo_prefill_check(ngx_conf_t *cf, ngx_http_dynamo_loc_conf_t *dlcf)
{
    ngx_uint_t                       i;
    ngx_str_t                       *name;
    ngx_http_dynamo_srv_conf_t      *dscf;
    ngx_http_upstream_srv_conf_t    *uscf, **uscfp;
    ngx_http_upstream_main_conf_t   *umcf;

    name = &dlcf->prefill_name;

    if (dlcf->upstream == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dynamo_prefill_upstream\" needs \"dynamo_pass\" "
                      "in the same location in %V:%ui",
                      &dlcf->prefill_file, dlcf->prefill_line);
        return NGX_CONF_ERROR;
    }

    umcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_upstream_module);

    uscf = NULL;
    uscfp = umcf->upstreams.elts;

    for (i = 0; i < umcf->upstreams.nelts; i++) {
        if (uscfp[i]->srv_conf != NULL
            && uscfp[i]->host.len == name->len
            && ngx_strncasecmp(uscfp[i]->host.data, name->data, name->len)
               == 0)
        {
            uscf = uscfp[i];
            break;
        }
    }

    if (uscf == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dynamo_prefill_upstream\": unknown upstream "
                      "\"%V\" in %V:%ui",
                      name, &dlcf->prefill_file, dlcf->prefill_line);
        return NGX_CONF_ERROR;
    }

    dscf = ngx_http_conf_upstream_srv_conf(uscf, ngx_dynamo_module);

    if (dscf == NULL || dscf->policy == NGX_HTTP_DYNAMO_POLICY_NONE) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dynamo_prefill_upstream\": upstream \"%V\" is "
                      "not a dynamo upstream (no \"dynamo_upstream\") "
                      "in %V:%ui",
                      name, &dlcf->prefill_file, dlcf->prefill_line);
        return NGX_CONF_ERROR;
    }

    if (dscf->role != NGX_HTTP_DYNAMO_ROLE_PREFILL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dynamo_prefill_upstream\": upstream \"%V\" has "
                      "role=%s, not role=prefill in %V:%ui",
                      name,
                      dscf->role == NGX_HTTP_DYNAMO_ROLE_DECODE
                      ? "decode" : "aggregated",
                      &dlcf->prefill_file, dlcf->prefill_line);
        return NGX_CONF_ERROR;
    }

    /* the decode pool: dynamo_pass's upstream */

    dscf = dlcf->upstream->srv_conf
           ? ngx_http_conf_upstream_srv_conf(dlcf->upstream,
                                             ngx_dynamo_module)
           : NULL;

    if (dscf && dscf->role == NGX_HTTP_DYNAMO_ROLE_PREFILL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dynamo_pass\" upstream \"%V\" has role=prefill: "
                      "with \"dynamo_prefill_upstream\" it must be the "
                      "decode pool (role=decode or aggregated) in %V:%ui",
                      &dlcf->upstream->host, &dlcf->prefill_file,
                      dlcf->prefill_line);
        return NGX_CONF_ERROR;
    }

    dlcf->prefill_upstream = uscf;

    return NGX_CONF_OK;
}


char *
ngx_http_dynamo_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dynamo_loc_conf_t *dlcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (dlcf->metrics != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    if (dlcf->upstream) {
        return "cannot be combined with \"dynamo_pass\"";
    }

    dlcf->metrics = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_dynamo_metrics_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_dynamo_invalid(ngx_conf_t *cf, ngx_command_t *cmd, char *what,
    ngx_str_t *value)
{
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid %s \"%V\" in \"%V\"",
                       what, value, &cmd->name);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_dynamo_duplicate_model(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *name)
{
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "duplicate model name \"%V\" in \"%V\"",
                       name, &cmd->name);

    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_dynamo_param(ngx_str_t *arg, char *name, ngx_str_t *value)
{
    size_t  len;

    len = ngx_strlen(name);

    if (arg->len <= len
        || arg->data[len] != '='
        || ngx_strncmp(arg->data, name, len) != 0)
    {
        return NGX_DECLINED;
    }

    value->data = arg->data + len + 1;
    value->len = arg->len - len - 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynamo_enum(ngx_http_dynamo_enum_t *e, ngx_str_t *name,
    ngx_uint_t *value)
{
    for ( /* void */ ; e->name.len; e++) {
        if (e->name.len == name->len
            && ngx_strncmp(e->name.data, name->data, name->len) == 0)
        {
            *value = e->value;
            return NGX_OK;
        }
    }

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_dynamo_valid_name(ngx_str_t *name)
{
    u_char  *p, *last, c;

    if (name->len == 0 || name->len > NGX_HTTP_DYNAMO_NAME_MAX) {
        return NGX_ERROR;
    }

    last = name->data + name->len;

    for (p = name->data; p < last; p++) {
        c = *p;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9'))
        {
            continue;
        }

        switch (c) {
        case '.':
        case '_':
        case '-':
        case '/':
        case ':':
        case '@':
        case '+':
            continue;
        }

        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynamo_name_taken(ngx_http_dynamo_main_conf_t *dmcf,
    ngx_http_dynamo_model_t *model, ngx_str_t *name)
{
    ngx_uint_t                i;
    ngx_http_dynamo_model_t  *m;

    m = dmcf->models.elts;

    for (i = 0; i < dmcf->models.nelts; i++) {
        if (ngx_http_dynamo_model_named(&m[i], name)) {
            return 1;
        }
    }

    return ngx_http_dynamo_model_named(model, name);
}


static ngx_int_t
ngx_http_dynamo_model_named(ngx_http_dynamo_model_t *model, ngx_str_t *name)
{
    ngx_str_t   *a;
    ngx_uint_t   i;

    if (model->name.len == name->len
        && ngx_strncmp(model->name.data, name->data, name->len) == 0)
    {
        return 1;
    }

    a = model->aliases.elts;

    for (i = 0; i < model->aliases.nelts; i++) {
        if (a[i].len == name->len
            && ngx_strncmp(a[i].data, name->data, name->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


char *
ngx_http_dynamo_thread_pool(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dynamo_main_conf_t *dmcf = conf;

    ssize_t     size;
    ngx_str_t  *value, v;

#if (NGX_THREADS)
    if (dmcf->thread_pool) {
        return "is duplicate";
    }
#endif

    if (dmcf->thread_pool_off) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 3) {
        if (ngx_http_dynamo_param(&value[2], "min", &v) != NGX_OK) {
            return ngx_http_dynamo_invalid(cf, cmd, "parameter", &value[2]);
        }

        size = ngx_parse_size(&v);
        if (size == NGX_ERROR) {
            return ngx_http_dynamo_invalid(cf, cmd, "min", &v);
        }

        dmcf->thread_min = size;
    }

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        dmcf->thread_pool_off = 1;
        return NGX_CONF_OK;
    }

    if (value[1].len == 0) {
        return ngx_http_dynamo_invalid(cf, cmd, "thread pool", &value[1]);
    }

#if (NGX_THREADS)

    dmcf->thread_pool = ngx_thread_pool_add(cf, &value[1]);
    if (dmcf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

#else

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" needs nginx built with threads; use \"off\"",
                       &cmd->name);
    return NGX_CONF_ERROR;

#endif
}
