/*
 * libFuzzer target for the OpenAI request parser: arbitrary bytes as a
 * chat completions and as a completions body. Either a request whose
 * invariants hold, or a 400/500 whose message is valid UTF-8; no leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_dynamo_oai.h"


static void
check_err(const ngx_http_dynamo_oai_err_t *err)
{
    json_t  *s;

    if (err->status != 400 && err->status != 500) {
        abort();
    }

    if (memchr(err->param, '\0', sizeof(err->param)) == NULL
        || memchr(err->code, '\0', sizeof(err->code)) == NULL
        || memchr(err->message, '\0', sizeof(err->message)) == NULL
        || err->message[0] == '\0')
    {
        abort();
    }

    /* the gateway puts these in a JSON string: must be valid UTF-8 */
    s = json_string(err->message);
    if (s == NULL) {
        abort();
    }
    json_decref(s);

    s = json_string(err->param);
    if (s == NULL) {
        abort();
    }
    json_decref(s);
}


static void
check_req(const ngx_http_dynamo_oai_req_t *req)
{
    char    *s;
    size_t   i;
    json_t  *m, *c;

    if (req->root == NULL || req->sampling == NULL
        || req->model.data == NULL || req->model.len == 0
        || req->nstop > NGX_HTTP_DYNAMO_OAI_STOP_MAX
        || req->nstop_ids > NGX_HTTP_DYNAMO_OAI_STOP_IDS_MAX
        || req->logprobs < -1
        || req->logprobs > NGX_HTTP_DYNAMO_OAI_TOP_LOGPROBS_MAX
        || (req->max_tokens != -1 && req->max_tokens < 1)
        || (req->include_usage && !req->stream))
    {
        abort();
    }

    for (i = 0; i < req->nstop; i++) {
        if (req->stop[i].len == 0 || req->stop[i].data == NULL) {
            abort();
        }
    }

    for (i = 0; i < req->nstop_ids; i++) {
        if (req->stop_ids[i] > 2147483647u) {
            abort();
        }
    }

    if (req->kind == NGX_HTTP_DYNAMO_OAI_CHAT) {
        if (!json_is_array(req->messages)
            || json_array_size(req->messages) == 0)
        {
            abort();
        }

        json_array_foreach(req->messages, i, m) {
            c = json_object_get(m, "content");
            if (!json_is_string(c) && !json_is_null(c)) {
                abort();
            }
        }

        s = json_dumps(req->messages, JSON_COMPACT);
        if (s == NULL) {
            abort();
        }
        free(s);

    } else {
        if (req->has_prompt_ids) {
            if (req->prompt_ids == NULL || req->n_prompt_ids == 0) {
                abort();
            }

            for (i = 0; i < req->n_prompt_ids; i++) {
                if (req->prompt_ids[i] > 2147483647u) {
                    abort();
                }
            }

        } else if (req->prompt.data == NULL || req->prompt_ids != NULL) {
            abort();
        }
    }

    s = json_dumps(req->sampling, JSON_SORT_KEYS | JSON_COMPACT);
    if (s == NULL) {
        abort();
    }
    free(s);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                         kind;
    ngx_http_dynamo_oai_req_t   req;
    ngx_http_dynamo_oai_err_t   err;

    for (kind = NGX_HTTP_DYNAMO_OAI_CHAT;
         kind <= NGX_HTTP_DYNAMO_OAI_COMPLETIONS;
         kind++)
    {
        if (ngx_http_dynamo_oai_parse(kind, (const char *) data, size, &req,
                                      &err)
            == 0)
        {
            check_req(&req);
            ngx_http_dynamo_oai_free(&req);

        } else {
            check_err(&err);
            if (req.root != NULL || req.messages != NULL
                || req.sampling != NULL || req.prompt_ids != NULL)
            {
                abort();
            }
        }
    }

    return 0;
}
