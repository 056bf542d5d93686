
/*
 * ngx_dynamo: OpenAI request parsing and validation (chat completions and
 * completions), as vLLM's OpenAI server accepts them, with OpenAI's error
 * wording.
 */


#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_dynamo_oai.h"


#define OAI_PATH_MAX    128
#define OAI_QUOTE_MAX   64
#define OAI_ID_MAX      2147483647


typedef struct {
    const char                 *name;
    double                      min;
    double                      max;
    int                         min_excl;
    int                         max_excl;
} ngx_http_dynamo_oai_range_t;


static int ngx_http_dynamo_oai_error(ngx_http_dynamo_oai_err_t *err,
    const char *param, const char *code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static int ngx_http_dynamo_oai_nomem(ngx_http_dynamo_oai_err_t *err);
static int ngx_http_dynamo_oai_type(ngx_http_dynamo_oai_err_t *err,
    const char *path, const char *expected, const json_t *v);
static int ngx_http_dynamo_oai_missing(ngx_http_dynamo_oai_err_t *err,
    const char *path);
static int ngx_http_dynamo_oai_unsupported(ngx_http_dynamo_oai_err_t *err,
    const char *path, const char *what);
static size_t ngx_http_dynamo_oai_quote_len(const char *s, size_t len);
static void ngx_http_dynamo_oai_utf8_trim(char *s);
static const char *ngx_http_dynamo_oai_type_name(const json_t *v);
static void ngx_http_dynamo_oai_fmt_double(double x, char *buf, size_t size);
static void ngx_http_dynamo_oai_fmt_value(const json_t *v, char *buf,
    size_t size);
static int ngx_http_dynamo_oai_is(const json_t *v, const char *s);
static void ngx_http_dynamo_oai_path(char *buf, const char *base,
    const char *key, size_t i);

static int ngx_http_dynamo_oai_get_bool(json_t *obj, const char *key,
    const char *path, int *out, ngx_http_dynamo_oai_err_t *err);
static int ngx_http_dynamo_oai_int_value(json_t *v, const char *path,
    int64_t *out, ngx_http_dynamo_oai_err_t *err);
static int ngx_http_dynamo_oai_int_range(json_t *v, const char *path,
    int64_t x, int64_t min, int64_t max, ngx_http_dynamo_oai_err_t *err);
static int ngx_http_dynamo_oai_get_int(json_t *obj, const char *key,
    int64_t min, int64_t max, int64_t *out, ngx_http_dynamo_oai_err_t *err);
static int ngx_http_dynamo_oai_get_dec(json_t *obj,
    const ngx_http_dynamo_oai_range_t *r, double *out,
    ngx_http_dynamo_oai_err_t *err);
static int ngx_http_dynamo_oai_ids(json_t *arr, const char *path,
    size_t max, uint32_t *ids, ngx_http_dynamo_oai_err_t *err);

static int ngx_http_dynamo_oai_model(ngx_http_dynamo_oai_req_t *req,
    ngx_http_dynamo_oai_err_t *err);
static int ngx_http_dynamo_oai_messages(ngx_http_dynamo_oai_req_t *req,
    ngx_http_dynamo_oai_err_t *err);
static int ngx_http_dynamo_oai_message(json_t *m, size_t i, json_t **out,
    ngx_http_dynamo_oai_err_t *err);
static int ngx_http_dynamo_oai_parts(json_t *parts, const char *path,
    json_t **out, ngx_http_dynamo_oai_err_t *err);
static int ngx_http_dynamo_oai_chat(ngx_http_dynamo_oai_req_t *req,
    ngx_http_dynamo_oai_err_t *err);
static int ngx_http_dynamo_oai_prompt(ngx_http_dynamo_oai_req_t *req,
    ngx_http_dynamo_oai_err_t *err);
static int ngx_http_dynamo_oai_prompt_ids(ngx_http_dynamo_oai_req_t *req,
    json_t *arr, const char *path, ngx_http_dynamo_oai_err_t *err);
static int ngx_http_dynamo_oai_completions(ngx_http_dynamo_oai_req_t *req,
    ngx_http_dynamo_oai_err_t *err);
static int ngx_http_dynamo_oai_common(ngx_http_dynamo_oai_req_t *req,
    ngx_http_dynamo_oai_err_t *err);
static int ngx_http_dynamo_oai_stop(ngx_http_dynamo_oai_req_t *req,
    ngx_http_dynamo_oai_err_t *err);
static int ngx_http_dynamo_oai_sampling(ngx_http_dynamo_oai_req_t *req,
    ngx_http_dynamo_oai_err_t *err);


static const ngx_http_dynamo_oai_range_t  ngx_http_dynamo_oai_ranges[] = {
    { "temperature", 0, 2, 0, 0 },
    { "top_p", 0, 1, 1, 0 },
    { "min_p", 0, 1, 0, 0 },
    { "presence_penalty", -2, 2, 0, 0 },
    { "frequency_penalty", -2, 2, 0, 0 },
    { "repetition_penalty", 0, 100, 1, 0 },
    { NULL, 0, 0, 0, 0 }
};


static const char  *ngx_http_dynamo_oai_roles[] = {
    "system", "developer", "user", "assistant", "tool", NULL
};


int
ngx_http_dynamo_oai_parse(int kind, const char *body, size_t len,
    ngx_http_dynamo_oai_req_t *req, ngx_http_dynamo_oai_err_t *err)
{
    int           rc;
    json_error_t  jerr;

    memset(req, 0, sizeof(*req));
    memset(err, 0, sizeof(*err));

    req->kind = kind;
    req->max_tokens = -1;
    req->logprobs = -1;
    req->skip_special_tokens = 1;
    req->add_generation_prompt = 1;

    if (kind != NGX_HTTP_DYNAMO_OAI_CHAT
        && kind != NGX_HTTP_DYNAMO_OAI_COMPLETIONS)
    {
        return ngx_http_dynamo_oai_error(err, NULL, NULL,
                                         "unknown request kind");
    }

    if (body != NULL && len != 0) {
        req->root = json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
    }

    if (req->root == NULL || !json_is_object(req->root)) {
        json_decref(req->root);
        req->root = NULL;

        return ngx_http_dynamo_oai_error(err, NULL, NULL,
            "We could not parse the JSON body of your request. (HINT: This "
            "likely means you aren't using your HTTP library correctly. "
            "The API expects a JSON payload, but what was sent was not "
            "valid JSON.)");
    }

    rc = ngx_http_dynamo_oai_model(req, err);

    if (rc == 0) {
        rc = (kind == NGX_HTTP_DYNAMO_OAI_CHAT)
             ? ngx_http_dynamo_oai_chat(req, err)
             : ngx_http_dynamo_oai_completions(req, err);
    }

    if (rc == 0) {
        rc = ngx_http_dynamo_oai_common(req, err);
    }

    if (rc == 0) {
        rc = ngx_http_dynamo_oai_sampling(req, err);
    }

    if (rc != 0) {
        ngx_http_dynamo_oai_free(req);
        return -1;
    }

    return 0;
}


void
ngx_http_dynamo_oai_free(ngx_http_dynamo_oai_req_t *req)
{
    json_decref(req->sampling);
    json_decref(req->messages);
    json_decref(req->root);
    free(req->prompt_ids);

    memset(req, 0, sizeof(*req));
    req->max_tokens = -1;
    req->logprobs = -1;
}


static int
ngx_http_dynamo_oai_model(ngx_http_dynamo_oai_req_t *req,
    ngx_http_dynamo_oai_err_t *err)
{
    json_t  *v;

    v = json_object_get(req->root, "model");

    if (v != NULL && !json_is_null(v) && !json_is_string(v)) {
        return ngx_http_dynamo_oai_type(err, "model", "a string", v);
    }

    if (v == NULL || json_is_null(v) || json_string_length(v) == 0) {
        return ngx_http_dynamo_oai_error(err, "model",
                                         "missing_required_parameter",
                                         "you must provide a model parameter");
    }

    req->model.data = json_string_value(v);
    req->model.len = json_string_length(v);

    return 0;
}


static int
ngx_http_dynamo_oai_chat(ngx_http_dynamo_oai_req_t *req,
    ngx_http_dynamo_oai_err_t *err)
{
    int       lp, rc;
    json_t   *v;
    int64_t   mct, mt, top;

    if (ngx_http_dynamo_oai_messages(req, err) != 0) {
        return -1;
    }

    v = json_object_get(req->root, "tools");

    if (v != NULL && !json_is_null(v)) {
        if (!json_is_array(v)) {
            return ngx_http_dynamo_oai_type(err, "tools", "an array", v);
        }

        if (json_array_size(v) != 0) {
            req->tools = v;
        }
    }

    v = json_object_get(req->root, "tool_choice");

    if (v != NULL && !json_is_null(v)) {
        if (json_is_object(v)) {
            return ngx_http_dynamo_oai_unsupported(err, "tool_choice",
                                                   "A named tool_choice");
        }

        if (!json_is_string(v)) {
            return ngx_http_dynamo_oai_type(err, "tool_choice",
                                            "one of a string or object", v);
        }

        if (ngx_http_dynamo_oai_is(v, "required")) {
            return ngx_http_dynamo_oai_unsupported(err, "tool_choice",
                                                   "tool_choice 'required'");
        }

        if (!ngx_http_dynamo_oai_is(v, "none")
            && !ngx_http_dynamo_oai_is(v, "auto"))
        {
            return ngx_http_dynamo_oai_error(err, "tool_choice",
                "invalid_value",
                "Invalid value: '%.*s'. Supported values are: 'none', "
                "'auto', and 'required'.",
                (int) ngx_http_dynamo_oai_quote_len(json_string_value(v),
                                                    json_string_length(v)),
                json_string_value(v));
        }
    }

    if (ngx_http_dynamo_oai_get_bool(req->root, "add_generation_prompt",
                                     NULL, &req->add_generation_prompt, err)
        < 0)
    {
        return -1;
    }

    v = json_object_get(req->root, "chat_template_kwargs");

    if (v != NULL && !json_is_null(v)) {
        if (!json_is_object(v)) {
            return ngx_http_dynamo_oai_type(err, "chat_template_kwargs",
                                            "an object", v);
        }

        req->template_kwargs = v;
    }

    rc = ngx_http_dynamo_oai_get_int(req->root, "max_completion_tokens", 1,
                                     INT64_MAX, &mct, err);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0) {
        req->max_tokens = mct;
    }

    rc = ngx_http_dynamo_oai_get_int(req->root, "max_tokens", 1, INT64_MAX,
                                     &mt, err);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0 && req->max_tokens < 0) {
        req->max_tokens = mt;
    }

    lp = 0;

    if (ngx_http_dynamo_oai_get_bool(req->root, "logprobs", NULL, &lp, err)
        < 0)
    {
        return -1;
    }

    rc = ngx_http_dynamo_oai_get_int(req->root, "top_logprobs", 0,
                                     NGX_HTTP_DYNAMO_OAI_TOP_LOGPROBS_MAX,
                                     &top, err);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0 && !lp) {
        return ngx_http_dynamo_oai_error(err, "top_logprobs", "invalid_value",
            "Invalid value for 'top_logprobs': 'logprobs' must be set to "
            "true when 'top_logprobs' is specified.");
    }

    if (lp) {
        req->logprobs = (rc > 0) ? (int) top : 0;
    }

    return 0;
}


static int
ngx_http_dynamo_oai_messages(ngx_http_dynamo_oai_req_t *req,
    ngx_http_dynamo_oai_err_t *err)
{
    size_t   i, n;
    json_t  *v, *m;

    m = NULL;
    v = json_object_get(req->root, "messages");

    if (v == NULL || json_is_null(v)) {
        return ngx_http_dynamo_oai_missing(err, "messages");
    }

    if (!json_is_array(v)) {
        return ngx_http_dynamo_oai_type(err, "messages", "an array", v);
    }

    n = json_array_size(v);

    if (n == 0) {
        return ngx_http_dynamo_oai_error(err, "messages", "empty_array",
            "Invalid 'messages': empty array. Expected an array with minimum "
            "length 1, but got an empty array instead.");
    }

    req->messages = json_array();
    if (req->messages == NULL) {
        return ngx_http_dynamo_oai_nomem(err);
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_dynamo_oai_message(json_array_get(v, i), i, &m, err)
            != 0)
        {
            return -1;
        }

        if (json_array_append_new(req->messages, m) != 0) {
            return ngx_http_dynamo_oai_nomem(err);
        }
    }

    return 0;
}


static int
ngx_http_dynamo_oai_message(json_t *m, size_t i, json_t **out,
    ngx_http_dynamo_oai_err_t *err)
{
    int           assistant, rc;
    char          path[OAI_PATH_MAX], sub[OAI_PATH_MAX];
    json_t       *role, *content, *copy, *joined;
    const char  **r;

    ngx_http_dynamo_oai_path(path, "messages", NULL, i);

    if (!json_is_object(m)) {
        return ngx_http_dynamo_oai_type(err, path, "an object", m);
    }

    ngx_http_dynamo_oai_path(sub, path, ".role", 0);

    role = json_object_get(m, "role");

    if (role == NULL || json_is_null(role)) {
        return ngx_http_dynamo_oai_missing(err, sub);
    }

    if (!json_is_string(role)) {
        return ngx_http_dynamo_oai_type(err, sub, "a string", role);
    }

    for (r = ngx_http_dynamo_oai_roles; *r; r++) {
        if (ngx_http_dynamo_oai_is(role, *r)) {
            break;
        }
    }

    if (*r == NULL) {
        return ngx_http_dynamo_oai_error(err, sub, "invalid_value",
            "Invalid value: '%.*s'. Supported values are: 'system', "
            "'developer', 'user', 'assistant', and 'tool'.",
            (int) ngx_http_dynamo_oai_quote_len(json_string_value(role),
                                                json_string_length(role)),
            json_string_value(role));
    }

    assistant = ngx_http_dynamo_oai_is(role, "assistant");

    ngx_http_dynamo_oai_path(sub, path, ".content", 0);

    content = json_object_get(m, "content");
    joined = NULL;

    if (content == NULL || json_is_null(content)) {
        if (!assistant) {
            return ngx_http_dynamo_oai_missing(err, sub);
        }

        joined = json_null();

    } else if (json_is_array(content)) {
        if (ngx_http_dynamo_oai_parts(content, sub, &joined, err) != 0) {
            return -1;
        }

    } else if (!json_is_string(content)) {
        return ngx_http_dynamo_oai_type(err, sub,
                                        "one of a string or array of objects",
                                        content);
    }

    copy = json_copy(m);
    if (copy == NULL) {
        json_decref(joined);
        return ngx_http_dynamo_oai_nomem(err);
    }

    if (joined != NULL) {
        rc = json_object_set_new(copy, "content", joined);
        if (rc != 0) {
            json_decref(copy);
            return ngx_http_dynamo_oai_nomem(err);
        }
    }

    *out = copy;

    return 0;
}


static int
ngx_http_dynamo_oai_parts(json_t *parts, const char *path, json_t **out,
    ngx_http_dynamo_oai_err_t *err)
{
    char    *buf, *p, sub[OAI_PATH_MAX], key[OAI_PATH_MAX];
    size_t   j, n, total;
    json_t  *part, *type, *text;

    n = json_array_size(parts);
    total = 0;

    for (j = 0; j < n; j++) {
        part = json_array_get(parts, j);

        ngx_http_dynamo_oai_path(sub, path, NULL, j);

        /* vLLM takes a bare string as a text part */
        if (json_is_string(part)) {
            total += json_string_length(part) + (j ? 1 : 0);
            continue;
        }

        if (!json_is_object(part)) {
            return ngx_http_dynamo_oai_type(err, sub,
                                            "one of an object or a string",
                                            part);
        }

        ngx_http_dynamo_oai_path(key, sub, ".type", 0);

        type = json_object_get(part, "type");

        if (type == NULL || json_is_null(type)) {
            return ngx_http_dynamo_oai_missing(err, key);
        }

        if (!json_is_string(type)) {
            return ngx_http_dynamo_oai_type(err, key, "a string", type);
        }

        if (!ngx_http_dynamo_oai_is(type, "text")) {
            return ngx_http_dynamo_oai_error(err, key, "invalid_value",
                "Invalid value: '%.*s'. Only text content parts "
                "(type 'text') are supported.",
                (int) ngx_http_dynamo_oai_quote_len(json_string_value(type),
                                                    json_string_length(type)),
                json_string_value(type));
        }

        ngx_http_dynamo_oai_path(key, sub, ".text", 0);

        text = json_object_get(part, "text");

        if (text == NULL || json_is_null(text)) {
            return ngx_http_dynamo_oai_missing(err, key);
        }

        if (!json_is_string(text)) {
            return ngx_http_dynamo_oai_type(err, key, "a string", text);
        }

        total += json_string_length(text) + (j ? 1 : 0);
    }

    buf = malloc(total + 1);
    if (buf == NULL) {
        return ngx_http_dynamo_oai_nomem(err);
    }

    p = buf;

    for (j = 0; j < n; j++) {
        part = json_array_get(parts, j);
        text = json_is_string(part) ? part : json_object_get(part, "text");

        if (j) {
            *p++ = '\n';
        }

        memcpy(p, json_string_value(text), json_string_length(text));
        p += json_string_length(text);
    }

    *out = json_stringn_nocheck(buf, total);
    free(buf);

    if (*out == NULL) {
        return ngx_http_dynamo_oai_nomem(err);
    }

    return 0;
}


static int
ngx_http_dynamo_oai_completions(ngx_http_dynamo_oai_req_t *req,
    ngx_http_dynamo_oai_err_t *err)
{
    int       echo, rc;
    json_t   *v;
    int64_t   x;

    if (ngx_http_dynamo_oai_prompt(req, err) != 0) {
        return -1;
    }

    rc = ngx_http_dynamo_oai_get_int(req->root, "max_tokens", 1, INT64_MAX,
                                     &x, err);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0) {
        req->max_tokens = x;
    }

    rc = ngx_http_dynamo_oai_get_int(req->root, "logprobs", 0,
                                     NGX_HTTP_DYNAMO_OAI_TOP_LOGPROBS_MAX,
                                     &x, err);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0) {
        req->logprobs = (int) x;
    }

    echo = 0;

    if (ngx_http_dynamo_oai_get_bool(req->root, "echo", NULL, &echo, err)
        < 0)
    {
        return -1;
    }

    if (echo) {
        return ngx_http_dynamo_oai_unsupported(err, "echo", "echo");
    }

    rc = ngx_http_dynamo_oai_get_int(req->root, "best_of", 1, INT64_MAX, &x,
                                     err);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0 && x > 1) {
        return ngx_http_dynamo_oai_unsupported(err, "best_of", "best_of > 1");
    }

    v = json_object_get(req->root, "suffix");

    if (v != NULL && !json_is_null(v)) {
        if (!json_is_string(v)) {
            return ngx_http_dynamo_oai_type(err, "suffix", "a string", v);
        }

        if (json_string_length(v) != 0) {
            return ngx_http_dynamo_oai_unsupported(err, "suffix", "suffix");
        }
    }

    return 0;
}


static int
ngx_http_dynamo_oai_prompt(ngx_http_dynamo_oai_req_t *req,
    ngx_http_dynamo_oai_err_t *err)
{
    json_t  *v, *first;

    v = json_object_get(req->root, "prompt");

    if (v == NULL || json_is_null(v)) {
        return ngx_http_dynamo_oai_missing(err, "prompt");
    }

    if (json_is_string(v)) {
        req->prompt.data = json_string_value(v);
        req->prompt.len = json_string_length(v);
        return 0;
    }

    if (!json_is_array(v)) {
        return ngx_http_dynamo_oai_type(err, "prompt",
            "one of a string, array of strings, array of integers, or "
            "array of arrays of integers", v);
    }

    if (json_array_size(v) == 0) {
        return ngx_http_dynamo_oai_error(err, "prompt", "empty_array",
            "Invalid 'prompt': empty array. Expected an array with minimum "
            "length 1, but got an empty array instead.");
    }

    first = json_array_get(v, 0);

    if (json_is_number(first)) {
        return ngx_http_dynamo_oai_prompt_ids(req, v, "prompt", err);
    }

    if (!json_is_string(first) && !json_is_array(first)) {
        return ngx_http_dynamo_oai_type(err, "prompt[0]",
            "one of a string, an integer, or an array of integers", first);
    }

    if (json_array_size(v) > 1) {
        return ngx_http_dynamo_oai_error(err, "prompt", "unsupported_value",
            "batched prompts are not supported; send one prompt per "
            "request");
    }

    if (json_is_string(first)) {
        req->prompt.data = json_string_value(first);
        req->prompt.len = json_string_length(first);
        return 0;
    }

    if (json_array_size(first) == 0) {
        return ngx_http_dynamo_oai_error(err, "prompt[0]", "empty_array",
            "Invalid 'prompt[0]': empty array. Expected an array with "
            "minimum length 1, but got an empty array instead.");
    }

    return ngx_http_dynamo_oai_prompt_ids(req, first, "prompt[0]", err);
}


static int
ngx_http_dynamo_oai_prompt_ids(ngx_http_dynamo_oai_req_t *req, json_t *arr,
    const char *path, ngx_http_dynamo_oai_err_t *err)
{
    size_t  n;

    n = json_array_size(arr);

    req->prompt_ids = malloc(n * sizeof(uint32_t));
    if (req->prompt_ids == NULL) {
        return ngx_http_dynamo_oai_nomem(err);
    }

    if (ngx_http_dynamo_oai_ids(arr, path, n, req->prompt_ids, err) != 0) {
        return -1;
    }

    req->n_prompt_ids = n;
    req->has_prompt_ids = 1;

    return 0;
}


static int
ngx_http_dynamo_oai_common(ngx_http_dynamo_oai_req_t *req,
    ngx_http_dynamo_oai_err_t *err)
{
    int       rc;
    size_t    n;
    json_t   *v, *t;
    int64_t   x;

    if (ngx_http_dynamo_oai_get_bool(req->root, "stream", NULL, &req->stream,
                                     err)
        < 0)
    {
        return -1;
    }

    v = json_object_get(req->root, "stream_options");

    if (v != NULL && !json_is_null(v)) {
        if (!json_is_object(v)) {
            return ngx_http_dynamo_oai_type(err, "stream_options",
                                            "an object", v);
        }

        if (!req->stream) {
            return ngx_http_dynamo_oai_error(err, "stream_options",
                "invalid_value",
                "The 'stream_options' parameter is only allowed when "
                "'stream' is enabled.");
        }

        if (ngx_http_dynamo_oai_get_bool(v, "include_usage",
                                         "stream_options.include_usage",
                                         &req->include_usage, err)
            < 0)
        {
            return -1;
        }
    }

    rc = ngx_http_dynamo_oai_get_int(req->root, "n", 1, INT64_MAX, &x, err);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0 && x > 1) {
        return ngx_http_dynamo_oai_error(err, "n", "unsupported_value",
                                         "n > 1 is not supported yet");
    }

    if (ngx_http_dynamo_oai_stop(req, err) != 0) {
        return -1;
    }

    v = json_object_get(req->root, "stop_token_ids");

    if (v != NULL && !json_is_null(v)) {
        if (!json_is_array(v)) {
            return ngx_http_dynamo_oai_type(err, "stop_token_ids",
                                            "an array", v);
        }

        n = json_array_size(v);

        if (n > NGX_HTTP_DYNAMO_OAI_STOP_IDS_MAX) {
            return ngx_http_dynamo_oai_error(err, "stop_token_ids",
                "array_above_max_length",
                "Invalid 'stop_token_ids': array too long. Expected an array "
                "with maximum length %d, but got an array with length %zu "
                "instead.", NGX_HTTP_DYNAMO_OAI_STOP_IDS_MAX, n);
        }

        if (ngx_http_dynamo_oai_ids(v, "stop_token_ids", n, req->stop_ids,
                                    err)
            != 0)
        {
            return -1;
        }

        req->nstop_ids = n;
    }

    if (ngx_http_dynamo_oai_get_bool(req->root, "ignore_eos", NULL,
                                     &req->ignore_eos, err)
        < 0)
    {
        return -1;
    }

    if (ngx_http_dynamo_oai_get_bool(req->root, "skip_special_tokens", NULL,
                                     &req->skip_special_tokens, err)
        < 0)
    {
        return -1;
    }

    v = json_object_get(req->root, "user");

    if (v != NULL && !json_is_null(v) && !json_is_string(v)) {
        return ngx_http_dynamo_oai_type(err, "user", "a string", v);
    }

    v = json_object_get(req->root, "logit_bias");

    if (v != NULL && !json_is_null(v)) {
        if (!json_is_object(v)) {
            return ngx_http_dynamo_oai_type(err, "logit_bias", "an object", v);
        }

        if (json_object_size(v) != 0) {
            return ngx_http_dynamo_oai_unsupported(err, "logit_bias",
                                                   "logit_bias");
        }
    }

    v = json_object_get(req->root, "response_format");

    if (v != NULL && !json_is_null(v)) {
        if (!json_is_object(v)) {
            return ngx_http_dynamo_oai_type(err, "response_format",
                                            "an object", v);
        }

        t = json_object_get(v, "type");

        if (t == NULL || json_is_null(t)) {
            return ngx_http_dynamo_oai_missing(err, "response_format.type");
        }

        if (!json_is_string(t)) {
            return ngx_http_dynamo_oai_type(err, "response_format.type",
                                            "a string", t);
        }

        if (!ngx_http_dynamo_oai_is(t, "text")) {
            return ngx_http_dynamo_oai_error(err, "response_format.type",
                "unsupported_value",
                "response_format type '%.*s' is not supported; only 'text' "
                "is.",
                (int) ngx_http_dynamo_oai_quote_len(json_string_value(t),
                                                    json_string_length(t)),
                json_string_value(t));
        }
    }

    return 0;
}


static int
ngx_http_dynamo_oai_stop(ngx_http_dynamo_oai_req_t *req,
    ngx_http_dynamo_oai_err_t *err)
{
    char     path[OAI_PATH_MAX];
    size_t   i, n;
    json_t  *v, *s;

    v = json_object_get(req->root, "stop");

    if (v == NULL || json_is_null(v)) {
        return 0;
    }

    if (json_is_string(v)) {
        if (json_string_length(v) != 0) {
            req->stop[0].data = json_string_value(v);
            req->stop[0].len = json_string_length(v);
            req->nstop = 1;
        }

        return 0;
    }

    if (!json_is_array(v)) {
        return ngx_http_dynamo_oai_type(err, "stop",
                                        "one of a string or array of strings",
                                        v);
    }

    n = json_array_size(v);

    if (n > NGX_HTTP_DYNAMO_OAI_STOP_MAX) {
        return ngx_http_dynamo_oai_error(err, "stop", "array_above_max_length",
            "Invalid 'stop': array too long. Expected an array with maximum "
            "length %d, but got an array with length %zu instead.",
            NGX_HTTP_DYNAMO_OAI_STOP_MAX, n);
    }

    for (i = 0; i < n; i++) {
        s = json_array_get(v, i);

        if (!json_is_string(s)) {
            ngx_http_dynamo_oai_path(path, "stop", NULL, i);
            return ngx_http_dynamo_oai_type(err, path, "a string", s);
        }

        if (json_string_length(s) == 0) {
            continue;
        }

        req->stop[req->nstop].data = json_string_value(s);
        req->stop[req->nstop].len = json_string_length(s);
        req->nstop++;
    }

    return 0;
}


static int
ngx_http_dynamo_oai_sampling(ngx_http_dynamo_oai_req_t *req,
    ngx_http_dynamo_oai_err_t *err)
{
    int                                 rc;
    double                              x;
    json_t                             *v, *num;
    int64_t                             i;
    const ngx_http_dynamo_oai_range_t  *r;

    x = 0;

    req->sampling = json_object();
    if (req->sampling == NULL) {
        return ngx_http_dynamo_oai_nomem(err);
    }

    for (r = ngx_http_dynamo_oai_ranges; r->name; r++) {
        rc = ngx_http_dynamo_oai_get_dec(req->root, r, &x, err);
        if (rc < 0) {
            return -1;
        }

        if (rc == 0) {
            continue;
        }

        v = json_object_get(req->root, r->name);

        num = json_is_integer(v) ? json_integer(json_integer_value(v))
                                 : json_real(x);

        if (json_object_set_new(req->sampling, r->name, num) != 0) {
            return ngx_http_dynamo_oai_nomem(err);
        }
    }

    rc = ngx_http_dynamo_oai_get_int(req->root, "top_k", -1, INT64_MAX, &i,
                                     err);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0
        && json_object_set_new(req->sampling, "top_k", json_integer(i)) != 0)
    {
        return ngx_http_dynamo_oai_nomem(err);
    }

    rc = ngx_http_dynamo_oai_get_int(req->root, "seed", INT64_MIN, INT64_MAX,
                                     &i, err);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0) {
        /* the worker takes 0 .. 2^63-1: keep the low 63 bits */
        i = (int64_t) ((uint64_t) i & (uint64_t) INT64_MAX);

        if (json_object_set_new(req->sampling, "seed", json_integer(i)) != 0) {
            return ngx_http_dynamo_oai_nomem(err);
        }
    }

    return 0;
}


/* getters: 0 when absent or null, 1 when *out is set, -1 with err set */

static int
ngx_http_dynamo_oai_get_bool(json_t *obj, const char *key, const char *path,
    int *out, ngx_http_dynamo_oai_err_t *err)
{
    json_t  *v;

    v = json_object_get(obj, key);

    if (v == NULL || json_is_null(v)) {
        return 0;
    }

    if (!json_is_boolean(v)) {
        return ngx_http_dynamo_oai_type(err, path ? path : key, "a boolean",
                                        v);
    }

    *out = json_is_true(v);

    return 1;
}


static int
ngx_http_dynamo_oai_int_value(json_t *v, const char *path, int64_t *out,
    ngx_http_dynamo_oai_err_t *err)
{
    char    got[64];
    double  x;

    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }

    if (!json_is_real(v)) {
        return ngx_http_dynamo_oai_type(err, path, "an integer", v);
    }

    x = json_real_value(v);

    if (x < -9223372036854775808.0 || x >= 9223372036854775808.0) {
        ngx_http_dynamo_oai_fmt_value(v, got, sizeof(got));

        return ngx_http_dynamo_oai_error(err, path,
            x < 0 ? "integer_below_min_value" : "integer_above_max_value",
            "Invalid '%s': integer %s value. Expected a value %s %lld, but "
            "got %s instead.", path, x < 0 ? "below minimum" : "above maximum",
            x < 0 ? ">=" : "<=", x < 0 ? (long long) INT64_MIN
                                        : (long long) INT64_MAX, got);
    }

    if ((double) (int64_t) x != x) {
        return ngx_http_dynamo_oai_type(err, path, "an integer", v);
    }

    *out = (int64_t) x;

    return 0;
}


static int
ngx_http_dynamo_oai_int_range(json_t *v, const char *path, int64_t x,
    int64_t min, int64_t max, ngx_http_dynamo_oai_err_t *err)
{
    char  got[64];

    if (x >= min && x <= max) {
        return 0;
    }

    ngx_http_dynamo_oai_fmt_value(v, got, sizeof(got));

    if (x < min) {
        return ngx_http_dynamo_oai_error(err, path, "integer_below_min_value",
            "Invalid '%s': integer below minimum value. Expected a value "
            ">= %lld, but got %s instead.", path, (long long) min, got);
    }

    return ngx_http_dynamo_oai_error(err, path, "integer_above_max_value",
        "Invalid '%s': integer above maximum value. Expected a value "
        "<= %lld, but got %s instead.", path, (long long) max, got);
}


static int
ngx_http_dynamo_oai_get_int(json_t *obj, const char *key, int64_t min,
    int64_t max, int64_t *out, ngx_http_dynamo_oai_err_t *err)
{
    json_t   *v;
    int64_t   x;

    v = json_object_get(obj, key);

    if (v == NULL || json_is_null(v)) {
        return 0;
    }

    if (ngx_http_dynamo_oai_int_value(v, key, &x, err) != 0
        || ngx_http_dynamo_oai_int_range(v, key, x, min, max, err) != 0)
    {
        return -1;
    }

    *out = x;

    return 1;
}


static int
ngx_http_dynamo_oai_get_dec(json_t *obj, const ngx_http_dynamo_oai_range_t *r,
    double *out, ngx_http_dynamo_oai_err_t *err)
{
    char     got[64], bound[64];
    double   x;
    json_t  *v;

    v = json_object_get(obj, r->name);

    if (v == NULL || json_is_null(v)) {
        return 0;
    }

    if (!json_is_number(v)) {
        return ngx_http_dynamo_oai_type(err, r->name, "a decimal", v);
    }

    x = json_number_value(v);

    if (x < r->min || (r->min_excl && x == r->min)) {
        ngx_http_dynamo_oai_fmt_value(v, got, sizeof(got));
        ngx_http_dynamo_oai_fmt_double(r->min, bound, sizeof(bound));

        return ngx_http_dynamo_oai_error(err, r->name,
            "decimal_below_min_value",
            "Invalid '%s': decimal below minimum value. Expected a value "
            "%s %s, but got %s instead.", r->name, r->min_excl ? ">" : ">=",
            bound, got);
    }

    if (x > r->max || (r->max_excl && x == r->max)) {
        ngx_http_dynamo_oai_fmt_value(v, got, sizeof(got));
        ngx_http_dynamo_oai_fmt_double(r->max, bound, sizeof(bound));

        return ngx_http_dynamo_oai_error(err, r->name,
            "decimal_above_max_value",
            "Invalid '%s': decimal above maximum value. Expected a value "
            "%s %s, but got %s instead.", r->name, r->max_excl ? "<" : "<=",
            bound, got);
    }

    *out = x;

    return 1;
}


static int
ngx_http_dynamo_oai_ids(json_t *arr, const char *path, size_t max,
    uint32_t *ids, ngx_http_dynamo_oai_err_t *err)
{
    char      sub[OAI_PATH_MAX];
    size_t    i, n;
    json_t   *v;
    int64_t   x;

    n = json_array_size(arr);

    for (i = 0; i < n && i < max; i++) {
        v = json_array_get(arr, i);

        if (json_is_integer(v)) {
            x = json_integer_value(v);

            if (x >= 0 && x <= OAI_ID_MAX) {
                ids[i] = (uint32_t) x;
                continue;
            }
        }

        ngx_http_dynamo_oai_path(sub, path, NULL, i);

        if (ngx_http_dynamo_oai_int_value(v, sub, &x, err) != 0
            || ngx_http_dynamo_oai_int_range(v, sub, x, 0, OAI_ID_MAX, err)
               != 0)
        {
            return -1;
        }

        ids[i] = (uint32_t) x;
    }

    return 0;
}


/* errors */

static int
ngx_http_dynamo_oai_error(ngx_http_dynamo_oai_err_t *err, const char *param,
    const char *code, const char *fmt, ...)
{
    va_list  args;

    err->status = 400;

    snprintf(err->param, sizeof(err->param), "%s", param ? param : "");
    snprintf(err->code, sizeof(err->code), "%s", code ? code : "");

    va_start(args, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, args);
    va_end(args);

    ngx_http_dynamo_oai_utf8_trim(err->message);

    return -1;
}


static int
ngx_http_dynamo_oai_nomem(ngx_http_dynamo_oai_err_t *err)
{
    ngx_http_dynamo_oai_error(err, NULL, NULL, "out of memory");
    err->status = 500;

    return -1;
}


static int
ngx_http_dynamo_oai_type(ngx_http_dynamo_oai_err_t *err, const char *path,
    const char *expected, const json_t *v)
{
    return ngx_http_dynamo_oai_error(err, path, "invalid_type",
               "Invalid type for '%s': expected %s, but got %s instead.",
               path, expected, ngx_http_dynamo_oai_type_name(v));
}


static int
ngx_http_dynamo_oai_missing(ngx_http_dynamo_oai_err_t *err, const char *path)
{
    return ngx_http_dynamo_oai_error(err, path, "missing_required_parameter",
                                     "Missing required parameter: '%s'.",
                                     path);
}


static int
ngx_http_dynamo_oai_unsupported(ngx_http_dynamo_oai_err_t *err,
    const char *path, const char *what)
{
    return ngx_http_dynamo_oai_error(err, path, "unsupported_value",
                                     "%s is not supported.", what);
}


/* the length of s to quote in a message: at most OAI_QUOTE_MAX bytes,
 * ending on a UTF-8 character boundary (s is valid UTF-8) */

static size_t
ngx_http_dynamo_oai_quote_len(const char *s, size_t len)
{
    const char  *nul;

    nul = memchr(s, '\0', len);
    if (nul != NULL) {
        len = nul - s;
    }

    if (len <= OAI_QUOTE_MAX) {
        return len;
    }

    len = OAI_QUOTE_MAX;

    while (len > 0 && ((unsigned char) s[len] & 0xc0) == 0x80) {
        len--;
    }

    return len;
}


/* cuts s at its first byte that does not start a whole UTF-8 character */

static void
ngx_http_dynamo_oai_utf8_trim(char *s)
{
    size_t          i, k, n;
    unsigned char   c;

    for (i = 0; s[i]; i += n) {
        c = (unsigned char) s[i];

        if (c < 0x80) {
            n = 1;

        } else if ((c & 0xe0) == 0xc0) {
            n = 2;

        } else if ((c & 0xf0) == 0xe0) {
            n = 3;

        } else if ((c & 0xf8) == 0xf0) {
            n = 4;

        } else {
            s[i] = '\0';
            return;
        }

        for (k = 1; k < n; k++) {
            if (((unsigned char) s[i + k] & 0xc0) != 0x80) {
                s[i] = '\0';
                return;
            }
        }
    }
}


static const char *
ngx_http_dynamo_oai_type_name(const json_t *v)
{
    switch (json_typeof(v)) {

    case JSON_OBJECT:
        return "an object";

    case JSON_ARRAY:
        return "an array";

    case JSON_STRING:
        return "a string";

    case JSON_INTEGER:
        return "an integer";

    case JSON_REAL:
        return "a decimal";

    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";

    default:
        return "null";
    }
}


/* integers as such, else the shortest %g that reads back as x */

static void
ngx_http_dynamo_oai_fmt_double(double x, char *buf, size_t size)
{
    int  prec;

    if (x > -1e15 && x < 1e15 && x == (double) (long long) x) {
        snprintf(buf, size, "%lld", (long long) x);
        return;
    }

    for (prec = 1; prec < 17; prec++) {
        snprintf(buf, size, "%.*g", prec, x);

        if (strtod(buf, NULL) == x) {
            return;
        }
    }

    snprintf(buf, size, "%.17g", x);
}


static void
ngx_http_dynamo_oai_fmt_value(const json_t *v, char *buf, size_t size)
{
    if (json_is_integer(v)) {
        snprintf(buf, size, "%lld", (long long) json_integer_value(v));
        return;
    }

    ngx_http_dynamo_oai_fmt_double(json_number_value(v), buf, size);
}


static int
ngx_http_dynamo_oai_is(const json_t *v, const char *s)
{
    size_t  len;

    len = strlen(s);

    return json_string_length(v) == len
           && memcmp(json_string_value(v), s, len) == 0;
}


/* buf (OAI_PATH_MAX) = base + key, or base + "[i]" when key is NULL */

static void
ngx_http_dynamo_oai_path(char *buf, const char *base, const char *key,
    size_t i)
{
    int  n;

    if (key != NULL) {
        n = snprintf(buf, OAI_PATH_MAX, "%s%s", base, key);

    } else {
        n = snprintf(buf, OAI_PATH_MAX, "%s[%zu]", base, i);
    }

    if (n < 0) {
        buf[0] = '\0';
    }
}
