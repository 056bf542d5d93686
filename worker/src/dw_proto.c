/*
 * dynamo-worker: the request side of the internal protocol: the JSON body
 * of POST /v1/generate, validated field by field (PROTOCOL.md, "Request").
 * Unknown fields are rejected, so a misspelt option fails loudly instead of
 * being ignored; new optional fields come with a new "v".
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dw_proto.h"
#include "dw_proto_int.h"

int
dw_proto_fail(dw_proto_err_t *err, const char *field, const char *fmt, ...)
{
    va_list  ap;

    snprintf(err->field, sizeof(err->field), "%s", field);
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -1;
}

/* A JSON number (integer or real) as a finite double. */
static int
proto_number(json_t *v, const char *field, double *out, dw_proto_err_t *err)
{
    if (!json_is_number(v)) {
        return dw_proto_fail(err, field, "%s: must be a number", field);
    }
    *out = json_number_value(v);
    if (!isfinite(*out)) {
        return dw_proto_fail(err, field, "%s: must be finite", field);
    }
    return 0;
}

static int
proto_int(json_t *v, const char *field, json_int_t lo, json_int_t hi,
    json_int_t *out, dw_proto_err_t *err)
{
    if (!json_is_integer(v)) {
        return dw_proto_fail(err, field, "%s: must be an integer", field);
    }
    *out = json_integer_value(v);
    if (*out < lo || *out > hi) {
        return dw_proto_fail(err, field, "%s: must be in [%lld, %lld]", field,
                          (long long) lo, (long long) hi);
    }
    return 0;
}

static int
proto_real(json_t *v, const char *field, double lo, double hi, int lo_open,
    float *out, dw_proto_err_t *err)
{
    double  d = 0;

    if (proto_number(v, field, &d, err) != 0) {
        return -1;
    }
    /* an open bound must hold after rounding to float too: 1e-300 is 0 */
    if (d < lo || d > hi || (lo_open && (float) d <= (float) lo)) {
        return dw_proto_fail(err, field, "%s: must be in %c%g, %g]", field,
                          lo_open ? '(' : '[', lo, hi);
    }
    *out = (float) d;
    return 0;
}

static int
proto_token_ids(json_t *v, const char *name, uint32_t vocab_size,
    uint32_t *ids, size_t max, size_t *n, dw_proto_err_t *err)
{
    size_t      i, count;
    json_t     *e;
    json_int_t  x, hi;
    char        field[64];

    if (!json_is_array(v)) {
        return dw_proto_fail(err, name, "%s: must be an array of token ids",
                          name);
    }
    count = json_array_size(v);
    if (count > max) {
        return dw_proto_fail(err, name, "%s: at most %zu ids", name, max);
    }
    hi = vocab_size > 0 ? (json_int_t) vocab_size - 1 : (json_int_t) UINT32_MAX;
    for (i = 0; i < count; i++) {
        /* the hot loop of a long prompt: the field name is only
           formatted for the error */
        e = json_array_get(v, i);
        x = json_is_integer(e) ? json_integer_value(e) : -1;
        if (!json_is_integer(e) || x < 0 || x > hi) {
            snprintf(field, sizeof(field), "%s[%zu]", name, i);
            return proto_int(e, field, 0, hi, &x, err);
        }
        ids[i] = (uint32_t) x;
    }
    *n = count;
    return 0;
}

static int
proto_sampling(json_t *obj, dw_sampling_t *sp, dw_proto_err_t *err)
{
    const char  *key;
    json_t      *v;
    json_int_t   x = 0;
    char         field[64];

    if (!json_is_object(obj)) {
        return dw_proto_fail(err, "sampling", "sampling: must be an object");
    }
    json_object_foreach(obj, key, v) {
        snprintf(field, sizeof(field), "sampling.%s", key);
        if (json_is_null(v)) {
            continue;                       /* null: the default */
        }
        if (strcmp(key, "temperature") == 0) {
            if (proto_real(v, field, 0, 1e6, 0, &sp->temperature, err)) {
                return -1;
            }
        } else if (strcmp(key, "top_p") == 0) {
            if (proto_real(v, field, 0, 1, 1, &sp->top_p, err)) {
                return -1;
            }
        } else if (strcmp(key, "top_k") == 0) {
            if (proto_int(v, field, -1, INT32_MAX, &x, err)) {
                return -1;
            }
            sp->top_k = (int32_t) x;
        } else if (strcmp(key, "min_p") == 0) {
            if (proto_real(v, field, 0, 1, 0, &sp->min_p, err)) {
                return -1;
            }
        } else if (strcmp(key, "seed") == 0) {
            if (proto_int(v, field, 0, INT64_MAX, &x, err)) {
                return -1;
            }
            sp->has_seed = 1;
            sp->seed = (uint64_t) x;
        } else if (strcmp(key, "repetition_penalty") == 0) {
            if (proto_real(v, field, 0, 100, 1, &sp->repetition_penalty,
                           err))
            {
                return -1;
            }
        } else if (strcmp(key, "presence_penalty") == 0) {
            if (proto_real(v, field, -2, 2, 0, &sp->presence_penalty, err)) {
                return -1;
            }
        } else if (strcmp(key, "frequency_penalty") == 0) {
            if (proto_real(v, field, -2, 2, 0, &sp->frequency_penalty, err)) {
                return -1;
            }
        } else {
            return dw_proto_fail(err, field, "%s: unknown field", field);
        }
    }
    return 0;
}

static int
proto_hints(json_t *obj, dw_proto_req_t *req, dw_proto_err_t *err)
{
    const char  *key, *s;
    json_t      *v;
    char         field[64];

    if (!json_is_object(obj)) {
        return dw_proto_fail(err, "hints", "hints: must be an object");
    }
    json_object_foreach(obj, key, v) {
        snprintf(field, sizeof(field), "hints.%s", key);
        if (strcmp(key, "prefill_worker") != 0) {
            return dw_proto_fail(err, field, "%s: unknown field", field);
        }
        if (json_is_null(v)) {
            continue;
        }
        if (!json_is_string(v)) {
            return dw_proto_fail(err, field, "%s: must be a string", field);
        }
        s = json_string_value(v);
        if (json_string_length(v) >= sizeof(req->prefill_worker)
            || strlen(s) != json_string_length(v))
        {
            return dw_proto_fail(err, field, "%s: must be host:port, < %zu bytes",
                              field, sizeof(req->prefill_worker));
        }
        memcpy(req->prefill_worker, s, json_string_length(v) + 1);
    }
    return 0;
}

static int
proto_request_id(json_t *v, dw_proto_req_t *req, dw_proto_err_t *err)
{
    const char  *s;
    size_t       i, len;

    if (!json_is_string(v)) {
        return dw_proto_fail(err, "request_id", "request_id: must be a string");
    }
    s = json_string_value(v);
    len = json_string_length(v);
    if (len > DW_PROTO_ID_MAX) {
        return dw_proto_fail(err, "request_id", "request_id: at most %d bytes",
                          DW_PROTO_ID_MAX);
    }
    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] < 0x21 || (unsigned char) s[i] > 0x7e) {
            return dw_proto_fail(err, "request_id",
                              "request_id: printable ASCII without spaces");
        }
    }
    memcpy(req->request_id, s, len + 1);
    return 0;
}

/*
 * kv != NULL (a /v1/prefill body): a top-level "kv" member is not an
 * unknown field but handed back in *kv (a new reference) for the caller
 * to judge once the generate part parsed.
 */
static int
proto_fields(json_t *root, uint32_t vocab_size, dw_proto_req_t *req,
    json_t **kv, dw_proto_err_t *err)
{
    const char  *key;
    json_t      *v, *ids;
    json_int_t   x = 0;
    size_t       n;

    ids = NULL;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "token_ids") == 0) {
            ids = v;
            continue;
        }
        if (json_is_null(v)) {
            continue;
        }
        if (strcmp(key, "v") == 0) {
            if (!json_is_integer(v)
                || json_integer_value(v) != DW_PROTO_VERSION)
            {
                return dw_proto_fail(err, "v", "v: unsupported version (this "
                                  "worker speaks %d)", DW_PROTO_VERSION);
            }
        } else if (strcmp(key, "request_id") == 0) {
            if (proto_request_id(v, req, err)) {
                return -1;
            }
        } else if (strcmp(key, "max_tokens") == 0) {
            if (proto_int(v, key, 1, UINT32_MAX, &x, err)) {
                return -1;
            }
            req->sp.max_tokens = (uint32_t) x;
        } else if (strcmp(key, "logprobs") == 0) {
            if (proto_int(v, key, 0, DW_MAX_TOP_LOGPROBS, &x, err)) {
                return -1;
            }
            req->sp.logprobs = (int32_t) x;
        } else if (strcmp(key, "ignore_eos") == 0) {
            if (!json_is_boolean(v)) {
                return dw_proto_fail(err, key, "ignore_eos: must be a boolean");
            }
            req->sp.ignore_eos = json_is_true(v);
        } else if (strcmp(key, "stop_token_ids") == 0) {
            if (proto_token_ids(v, key, vocab_size, req->sp.stop_ids,
                                DW_MAX_STOP_IDS, &n, err))
            {
                return -1;
            }
            req->sp.n_stop_ids = (uint32_t) n;
        } else if (strcmp(key, "sampling") == 0) {
            if (proto_sampling(v, &req->sp, err)) {
                return -1;
            }
        } else if (strcmp(key, "hints") == 0) {
            if (proto_hints(v, req, err)) {
                return -1;
            }
        } else if (kv != NULL && strcmp(key, "kv") == 0) {
            *kv = json_incref(v);
        } else {
            return dw_proto_fail(err, key, "%s: unknown field", key);
        }
    }

    if (req->token_ids != NULL) {
        return 0;                 /* the fast path read them already */
    }
    if (ids == NULL) {
        return dw_proto_fail(err, "token_ids", "token_ids: required");
    }
    if (!json_is_array(ids) || json_array_size(ids) == 0) {
        return dw_proto_fail(err, "token_ids",
                          "token_ids: must be a non-empty array of token ids");
    }
    if (json_array_size(ids) > UINT32_MAX / 2) {
        return dw_proto_fail(err, "token_ids", "token_ids: too long");
    }
    req->token_ids = malloc(json_array_size(ids) * sizeof(uint32_t));
    if (req->token_ids == NULL) {
        return dw_proto_fail(err, "", "out of memory");
    }
    if (proto_token_ids(ids, "token_ids", vocab_size, req->token_ids,
                        json_array_size(ids), &n, err))
    {
        return -1;
    }
    req->n_tokens = (uint32_t) n;
    return 0;
}

static int
proto_parse(const char *body, size_t len, uint32_t vocab_size,
    dw_proto_req_t *req, json_t **kv, dw_proto_err_t *err)
{
    json_t        *root;
    json_error_t   jerr;
    int            rc;

    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return dw_proto_fail(err, "", "invalid JSON at line %d column %d: %s",
                          jerr.line, jerr.column, jerr.text);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return dw_proto_fail(err, "", "the body must be a JSON object");
    }
    rc = proto_fields(root, vocab_size, req, kv, err);
    json_decref(root);
    if (rc != 0 && kv != NULL && *kv != NULL) {
        json_decref(*kv);
        *kv = NULL;
    }
    return rc;
}

static void
proto_req_init(dw_proto_req_t *req, dw_proto_err_t *err)
{
    memset(req, 0, sizeof(*req));
    memset(err, 0, sizeof(*err));
    dw_sampling_defaults(&req->sp);
    req->sp.max_tokens = DW_PROTO_MAX_TOKENS_DEF;
    req->sp.logprobs = -1;
}

int
dw_proto_parse_request_kv(const char *body, size_t len, uint32_t vocab_size,
    int fast, dw_proto_req_t *req, json_t **kv, dw_proto_err_t *err)
{
    uint32_t  *ids, n;
    size_t     start, end;
    char      *rest;
    int        rc;

    if (kv != NULL) {
        *kv = NULL;
    }
    proto_req_init(req, err);
    /* JSON text has no raw NUL; jansson treats one inconsistently (as the
       end of input, or not), so neither parser ever sees it */
    if (memchr(body, '\0', len) != NULL) {
        return dw_proto_fail(err, "", "invalid JSON: a NUL byte in the body");
    }
    rc = fast ? dw_proto_fast_ids(body, len, vocab_size, &start, &end, &ids,
                                  &n)
              : 0;
    if (rc < 0) {
        return dw_proto_fail(err, "", "out of memory");
    }
    if (rc == 0) {
        rc = proto_parse(body, len, vocab_size, req, kv, err);
        if (rc != 0) {
            dw_proto_req_free(req);
        }
        return rc;
    }

    /* jansson parses the rest, the array replaced by "null": a whole
       token like the array, so nothing after it can join it into a
       different valid text ("0" would: "[1].5" -> "0.5") */
    rest = malloc(len - (end - start) + 4);
    if (rest == NULL) {
        free(ids);
        return dw_proto_fail(err, "", "out of memory");
    }
    memcpy(rest, body, start);
    memcpy(rest + start, "null", 4);
    memcpy(rest + start + 4, body + end, len - end);
    req->token_ids = ids;
    req->n_tokens = n;
    rc = proto_parse(rest, len - (end - start) + 4, vocab_size, req, kv,
                     err);
    free(rest);
    if (rc != 0) {
        dw_proto_req_free(req);
        if (err->field[0] == '\0') {
            /* a syntax error: report it at its place in the real body */
            proto_req_init(req, err);
            rc = proto_parse(body, len, vocab_size, req, kv, err);
            if (rc != 0) {
                dw_proto_req_free(req);
            }
            /* rc == 0 cannot happen (same text but the array); keep the
               request if it did */
        }
    }
    return rc;
}

int
dw_proto_parse_request_opt(const char *body, size_t len, uint32_t vocab_size,
    int fast, dw_proto_req_t *req, dw_proto_err_t *err)
{
    return dw_proto_parse_request_kv(body, len, vocab_size, fast, req, NULL,
                                     err);
}

int
dw_proto_parse_request(const char *body, size_t len, uint32_t vocab_size,
    dw_proto_req_t *req, dw_proto_err_t *err)
{
    return dw_proto_parse_request_opt(body, len, vocab_size, 1, req, err);
}

void
dw_proto_req_free(dw_proto_req_t *req)
{
    free(req->token_ids);
    req->token_ids = NULL;
    req->n_tokens = 0;
}
