
/*
 * ngx_dynamo: disaggregated, KV-cache-aware LLM serving behind nginx.
 *
 * Prompt preparation: chat template, tokenizer, block hashes. Touches no
 * pool and no log, so it may run in a thread pool's thread.
 */


#include "ngx_http_dynamo_prepare.h"

#include "kvr_err.h"
#include "kvr_hash.h"


static void ngx_http_dynamo_prepare_fail(ngx_http_dynamo_prep_t *prep,
    ngx_uint_t status, char *param, const char *fmt, ...);
static void ngx_http_dynamo_prepare_cleanup(void *data);


void
ngx_http_dynamo_prepare(ngx_http_dynamo_prep_t *prep)
{
    int                         rc;
    size_t                      i, n;
    kvr_buf_t                   text;
    kvr_ids_t                   ids;
    unsigned                    flags;
    const char                 *data;
    ngx_http_dynamo_model_t    *m;
    kvr_template_vars_t         vars;
    ngx_http_dynamo_oai_req_t  *req;
    char                        err[384];

    m = prep->model;
    req = prep->req;

    ngx_memzero(&text, sizeof(kvr_buf_t));
    ngx_memzero(&ids, sizeof(kvr_ids_t));

    if (req->kind == NGX_HTTP_DYNAMO_OAI_COMPLETIONS && req->has_prompt_ids) {

        for (i = 0; i < req->n_prompt_ids; i++) {
            if (req->prompt_ids[i] >= m->vocab_size) {
                ngx_http_dynamo_prepare_fail(prep, NGX_HTTP_BAD_REQUEST,
                    "prompt", "Token id %uD is out of vocabulary "
                    "(vocabulary size %ui).",
                    req->prompt_ids[i], m->vocab_size);
                return;
            }
        }

        prep->ids = req->prompt_ids;
        prep->n_ids = req->n_prompt_ids;
        prep->own_ids = 0;

        goto hash;
    }

    if (req->kind == NGX_HTTP_DYNAMO_OAI_CHAT) {
        ngx_memzero(&vars, sizeof(kvr_template_vars_t));

        vars.messages = req->messages;
        vars.tools = req->tools;
        vars.extra = req->template_kwargs;
        vars.bos_token = m->bos_token;
        vars.eos_token = m->eos_token;
        vars.add_generation_prompt = req->add_generation_prompt;

        err[0] = '\0';

        rc = kvr_template_render(m->chat_template, &vars, &text, err,
                                 sizeof(err));
        if (rc != KVR_OK) {
            kvr_buf_free(&text);

            if (rc == KVR_ERR_NOMEM) {
                ngx_http_dynamo_prepare_fail(prep,
                    NGX_HTTP_INTERNAL_SERVER_ERROR, NULL, "Out of memory.");
                return;
            }

            ngx_http_dynamo_prepare_fail(prep, NGX_HTTP_BAD_REQUEST,
                "messages", "The chat template failed: %s", err);
            return;
        }

        data = text.data;
        n = text.len;

        /* the template writes the special tokens itself, as vLLM */
        flags = 0;

    } else {
        data = req->prompt.data;
        n = req->prompt.len;
        flags = KVR_TOK_ADD_SPECIAL;
    }

    rc = kvr_tokenizer_encode(m->tokenizer, n ? data : "", n, flags, &ids);

    kvr_buf_free(&text);

    if (rc != KVR_OK) {
        kvr_ids_free(&ids);

        if (rc == KVR_ERR_NOMEM) {
            ngx_http_dynamo_prepare_fail(prep, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                         NULL, "Out of memory.");
            return;
        }

        ngx_http_dynamo_prepare_fail(prep, NGX_HTTP_BAD_REQUEST,
            req->kind == NGX_HTTP_DYNAMO_OAI_CHAT ? "messages" : "prompt",
            "The prompt could not be tokenized.");
        return;
    }

    prep->ids = ids.ids;
    prep->n_ids = ids.n;
    prep->own_ids = 1;

hash:

    if (prep->n_ids == 0) {
        ngx_http_dynamo_prepare_fail(prep, NGX_HTTP_BAD_REQUEST,
            req->kind == NGX_HTTP_DYNAMO_OAI_CHAT ? "messages" : "prompt",
            "The decoder prompt cannot be empty");
        return;
    }

    n = prep->n_ids / m->block_size;

    if (n == 0) {
        return;
    }

    prep->hashes = malloc(n * sizeof(uint64_t));
    if (prep->hashes == NULL) {
        ngx_http_dynamo_prepare_fail(prep, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                     NULL, "Out of memory.");
        return;
    }

    prep->n_blocks = kvr_hash_blocks(prep->ids, prep->n_ids, m->block_size,
                                     KVR_HASH_SEED, NULL, prep->hashes);
}


static void
ngx_http_dynamo_prepare_fail(ngx_http_dynamo_prep_t *prep, ngx_uint_t status,
    char *param, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    va_start(args, fmt);
    p = ngx_vslprintf((u_char *) prep->message,
                      (u_char *) prep->message + sizeof(prep->message) - 1,
                      fmt, args);
    va_end(args);

    *p = '\0';

    prep->status = status;
    prep->param = param;
}


ngx_int_t
ngx_http_dynamo_prepare_cleanup_add(ngx_pool_t *pool,
    ngx_http_dynamo_prep_t *prep)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_dynamo_prepare_cleanup;
    cln->data = prep;

    return NGX_OK;
}


static void
ngx_http_dynamo_prepare_cleanup(void *data)
{
    ngx_http_dynamo_prep_t  *prep = data;

    if (prep->own_ids) {
        free(prep->ids);
    }

    free(prep->hashes);

    prep->ids = NULL;
    prep->hashes = NULL;
}
