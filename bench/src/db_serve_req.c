/*
 * The serve command's reading of an OpenAI request body: the fields that
 * shape its answer (model, max_tokens, stream, include_usage) and a prompt
 * length the client can reproduce without a tokenizer (words).
 */

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "db_fail.h"
#include "db_serve_int.h"

int64_t
db_serve_count_words(const char *s, size_t len)
{
    int64_t  n = 0;
    size_t   i;
    int      in = 0;

    for (i = 0; i < len; i++) {
        char c = s[i];
        int  sp = c == ' ' || c == '\t' || c == '\n' || c == '\r'
                  || c == '\f' || c == '\v';
        if (!sp && !in) {
            n++;
        }
        in = !sp;
    }
    return n;
}

static int64_t
string_words(json_t *v)
{
    return db_serve_count_words(json_string_value(v), json_string_length(v));
}

/* A completions prompt: a string, an array of strings, an array of token
 * ids, or an array of arrays of token ids (all prompts counted). */
static int
prompt_len(json_t *p, int64_t *out, char *err, size_t errlen)
{
    size_t   i;
    json_t  *x;

    if (json_is_string(p)) {
        *out = string_words(p);
        return 0;
    }
    if (!json_is_array(p)) {
        return db_fail(err, errlen, "'prompt' must be a string or an array");
    }
    *out = 0;
    json_array_foreach(p, i, x) {
        if (json_is_string(x)) {
            *out += string_words(x);
        } else if (json_is_integer(x)) {
            *out += 1;
        } else if (json_is_array(x)) {
            size_t   j;
            json_t  *y;

            json_array_foreach(x, j, y) {
                if (!json_is_integer(y)) {
                    return db_fail(err, errlen, "'prompt[%zu]' must hold "
                        "token ids", i);
                }
            }
            *out += (int64_t) json_array_size(x);
        } else {
            return db_fail(err, errlen, "'prompt[%zu]' must be a string, a "
                "token id or an array of token ids", i);
        }
    }
    return 0;
}

/* Chat messages: text content, a string or an array of parts. */
static int
messages_len(json_t *m, int64_t *out, char *err, size_t errlen)
{
    size_t   i;
    json_t  *x;

    if (!json_is_array(m)) {
        return db_fail(err, errlen, "'messages' must be an array");
    }
    if (json_array_size(m) == 0) {
        return db_fail(err, errlen, "'messages' is empty");
    }
    *out = 0;
    json_array_foreach(m, i, x) {
        json_t *c;

        if (!json_is_object(x)) {
            return db_fail(err, errlen, "'messages[%zu]' must be an object", i);
        }
        if (!json_is_string(json_object_get(x, "role"))) {
            return db_fail(err, errlen, "'messages[%zu].role' must be a "
                "string", i);
        }
        c = json_object_get(x, "content");
        if (c == NULL || json_is_null(c)) {
            continue;
        }
        if (json_is_string(c)) {
            *out += string_words(c);
        } else if (json_is_array(c)) {
            size_t   j;
            json_t  *part;

            json_array_foreach(c, j, part) {
                json_t *t = json_object_get(part, "text");
                if (json_is_string(t)) {
                    *out += string_words(t);
                }
            }
        } else {
            return db_fail(err, errlen, "'messages[%zu].content' must be a "
                "string or an array", i);
        }
    }
    return 0;
}

static int
get_max_tokens(json_t *root, const char *key, int *out, char *err,
    size_t errlen)
{
    json_t     *v = json_object_get(root, key);
    json_int_t  i;

    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_integer(v)) {
        return db_fail(err, errlen, "'%s' must be an integer", key);
    }
    i = json_integer_value(v);
    if (i < 1 || i > 10000000) {
        return db_fail(err, errlen, "'%s' must be in [1, 10000000]", key);
    }
    *out = (int) i;
    return 0;
}

void
db_serve_req_free(db_serve_req_t *r)
{
    free(r->model);
    memset(r, 0, sizeof(*r));
    r->max_tokens = -1;
}

int
db_serve_req_parse(const char *body, size_t len, int chat, db_serve_req_t *r,
    char *err, size_t errlen)
{
    json_error_t  je;
    json_t       *root, *v, *so;
    int           rc = -1;

    memset(r, 0, sizeof(*r));
    r->max_tokens = -1;
    root = json_loadb(body, len, 0, &je);
    if (root == NULL) {
        return db_fail(err, errlen, "bad JSON body: %s (line %d, column %d)",
            je.text, je.line, je.column);
    }
    if (!json_is_object(root)) {
        db_fail(err, errlen, "the body must be a JSON object");
        goto done;
    }
    v = json_object_get(root, "model");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_string(v)) {
            db_fail(err, errlen, "'model' must be a string");
            goto done;
        }
        r->model = strdup(json_string_value(v));
        if (r->model == NULL) {
            db_fail(err, errlen, "out of memory");
            goto done;
        }
    }
    if (get_max_tokens(root, "max_tokens", &r->max_tokens, err, errlen) != 0
        || (chat && get_max_tokens(root, "max_completion_tokens",
                        &r->max_tokens, err, errlen) != 0))
    {
        goto done;
    }
    v = json_object_get(root, "stream");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            db_fail(err, errlen, "'stream' must be a boolean");
            goto done;
        }
        r->stream = json_is_true(v);
    }
    so = json_object_get(root, "stream_options");
    if (so != NULL && !json_is_null(so)) {
        if (!json_is_object(so)) {
            db_fail(err, errlen, "'stream_options' must be an object");
            goto done;
        }
        v = json_object_get(so, "include_usage");
        if (v != NULL && !json_is_boolean(v) && !json_is_null(v)) {
            db_fail(err, errlen, "'stream_options.include_usage' must be a "
                "boolean");
            goto done;
        }
        r->include_usage = json_is_true(v);
    }
    if (chat) {
        v = json_object_get(root, "messages");
        if (v == NULL) {
            db_fail(err, errlen, "'messages' is required");
            goto done;
        }
        if (messages_len(v, &r->prompt_tokens, err, errlen) != 0) {
            goto done;
        }
    } else {
        v = json_object_get(root, "prompt");
        if (v == NULL) {
            db_fail(err, errlen, "'prompt' is required");
            goto done;
        }
        if (prompt_len(v, &r->prompt_tokens, err, errlen) != 0) {
            goto done;
        }
    }
    rc = 0;
done:
    json_decref(root);
    if (rc != 0) {
        db_serve_req_free(r);
    }
    return rc;
}
