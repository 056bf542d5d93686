/*
 * dynamo-worker: the disaggregation side of the internal protocol
 * (PROTOCOL.md, "Prefill (disaggregation)"): the POST /v1/prefill body (a
 * generate body plus "kv"), its encoding on the decode worker, the
 * first-token payload of the transfer's notification, and the names of
 * the prefill decisions.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dw_proto.h"
#include "dw_proto_int.h"
#include "kvr_err.h"

static int
pf_u32(json_t *v, const char *field, uint32_t lo, uint32_t hi, uint32_t *out,
    dw_proto_err_t *err)
{
    json_int_t  x;

    if (!json_is_integer(v)) {
        return dw_proto_fail(err, field, "%s: must be an integer", field);
    }
    x = json_integer_value(v);
    if (x < (json_int_t) lo || x > (json_int_t) hi) {
        return dw_proto_fail(err, field, "%s: must be in [%" PRIu32 ", %" PRIu32
                       "]", field, lo, hi);
    }
    *out = (uint32_t) x;
    return 0;
}

/* A u64 as a canonical decimal string (JSON numbers are exact only up to
   2^53 in many parsers). */
static int
pf_xfer_id(json_t *v, uint64_t *out, dw_proto_err_t *err)
{
    const char  *s;
    size_t       i, n;
    uint64_t     x;

    if (!json_is_string(v)) {
        return dw_proto_fail(err, "kv.xfer_id", "kv.xfer_id: must be a string "
                       "(a decimal u64)");
    }
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0 || n > 20 || (n > 1 && s[0] == '0')) {
        return dw_proto_fail(err, "kv.xfer_id", "kv.xfer_id: must be a decimal "
                       "u64 without leading zeros");
    }
    x = 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9'
            || x > (UINT64_MAX - (uint64_t) (s[i] - '0')) / 10)
        {
            return dw_proto_fail(err, "kv.xfer_id", "kv.xfer_id: must be a "
                           "decimal u64 without leading zeros");
        }
        x = x * 10 + (uint64_t) (s[i] - '0');
    }
    *out = x;
    return 0;
}

static int
pf_blocks(json_t *v, dw_proto_prefill_t *p, dw_proto_err_t *err)
{
    size_t  i, n;
    char    field[64];

    if (!json_is_array(v) || json_array_size(v) == 0) {
        return dw_proto_fail(err, "kv.blocks", "kv.blocks: must be a non-empty "
                       "array of block ids");
    }
    n = json_array_size(v);
    if (n > UINT32_MAX / 2) {
        return dw_proto_fail(err, "kv.blocks", "kv.blocks: too long");
    }
    p->blocks = malloc(n * sizeof(uint32_t));
    if (p->blocks == NULL) {
        return dw_proto_fail(err, "", "out of memory");
    }
    for (i = 0; i < n; i++) {
        snprintf(field, sizeof(field), "kv.blocks[%zu]", i);
        if (pf_u32(json_array_get(v, i), field, 0, UINT32_MAX, &p->blocks[i],
                   err))
        {
            return -1;
        }
    }
    p->n_blocks = (uint32_t) n;
    return 0;
}

/* The "kv" member: every field once (jansson rejected duplicates), with
   its type; no other field. */
static int
pf_kv(json_t *kv, dw_proto_prefill_t *p, dw_proto_err_t *err)
{
    const char  *key;
    json_t      *v, *skip = NULL;
    char         field[64];
    int          have_id = 0, have_to = 0;

    if (kv == NULL) {
        return dw_proto_fail(err, "kv", "kv: required (where to write the KV)");
    }
    if (!json_is_object(kv)) {
        return dw_proto_fail(err, "kv", "kv: must be an object");
    }
    json_object_foreach(kv, key, v) {
        snprintf(field, sizeof(field), "kv.%s", key);
        if (json_is_null(v)) {
            continue;                       /* as absent: required below */
        }
        if (strcmp(key, "xfer_id") == 0) {
            if (pf_xfer_id(v, &p->xfer_id, err)) {
                return -1;
            }
            have_id = 1;
        } else if (strcmp(key, "blocks") == 0) {
            if (pf_blocks(v, p, err)) {
                return -1;
            }
        } else if (strcmp(key, "skip_blocks") == 0) {
            skip = v;                       /* judged against blocks */
        } else if (strcmp(key, "timeout_ms") == 0) {
            if (pf_u32(v, field, 1, UINT32_MAX, &p->timeout_ms, err)) {
                return -1;
            }
            have_to = 1;
        } else if (strcmp(key, "desc") == 0) {
            if (!json_is_object(v)) {
                return dw_proto_fail(err, field, "kv.desc: must be an object (the "
                               "KV pool descriptor)");
            }
            p->desc = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
            if (p->desc == NULL) {
                return dw_proto_fail(err, "", "out of memory");
            }
            p->desc_len = strlen(p->desc);
        } else {
            return dw_proto_fail(err, field, "%s: unknown field", field);
        }
    }
    if (!have_id) {
        return dw_proto_fail(err, "kv.xfer_id", "kv.xfer_id: required");
    }
    if (p->blocks == NULL) {
        return dw_proto_fail(err, "kv.blocks", "kv.blocks: required");
    }
    if (skip == NULL) {
        return dw_proto_fail(err, "kv.skip_blocks", "kv.skip_blocks: required");
    }
    if (pf_u32(skip, "kv.skip_blocks", 0, p->n_blocks, &p->skip_blocks,
               err))
    {
        return -1;
    }
    if (!have_to) {
        return dw_proto_fail(err, "kv.timeout_ms", "kv.timeout_ms: required");
    }
    if (p->desc == NULL) {
        return dw_proto_fail(err, "kv.desc", "kv.desc: required");
    }
    return 0;
}

int
dw_proto_parse_prefill(const char *body, size_t len, uint32_t vocab_size,
    dw_proto_prefill_t *p, dw_proto_err_t *err)
{
    json_t  *kv = NULL;
    int      rc;

    memset(p, 0, sizeof(*p));
    if (dw_proto_parse_request_kv(body, len, vocab_size, 1, &p->req, &kv,
                                  err) != 0)
    {
        return -1;
    }
    rc = pf_kv(kv, p, err);
    if (kv != NULL) {
        json_decref(kv);
    }
    if (rc != 0) {
        dw_proto_prefill_free(p);
    }
    return rc;
}

void
dw_proto_prefill_free(dw_proto_prefill_t *p)
{
    dw_proto_req_free(&p->req);
    free(p->blocks);
    free(p->desc);
    memset(p, 0, sizeof(*p));
}

int
dw_proto_encode_prefill(kvr_buf_t *b, const char *gen_body, size_t gen_len,
    const dw_proto_prefill_t *p)
{
    size_t    end, i, len0;
    char      num[48];
    int       n, empty;

    if (p->desc == NULL || p->n_blocks == 0 || p->blocks == NULL) {
        return -1;
    }
    /* the object's closing brace: the last byte but whitespace */
    end = gen_len;
    while (end > 0 && (gen_body[end - 1] == ' ' || gen_body[end - 1] == '\t'
                       || gen_body[end - 1] == '\n'
                       || gen_body[end - 1] == '\r'))
    {
        end--;
    }
    if (end < 2 || gen_body[end - 1] != '}') {
        return -1;
    }
    end--;
    /* "{ }": no member to follow with a comma */
    for (i = end, empty = 1; i > 0; i--) {
        if (gen_body[i - 1] == '{') {
            break;
        }
        if (gen_body[i - 1] != ' ' && gen_body[i - 1] != '\t'
            && gen_body[i - 1] != '\n' && gen_body[i - 1] != '\r')
        {
            empty = 0;
            break;
        }
    }
    len0 = b->len;
    n = snprintf(num, sizeof(num), "\"xfer_id\":\"%" PRIu64 "\"",
                 p->xfer_id);
    if (kvr_buf_append(b, gen_body, end) != KVR_OK
        || kvr_buf_append_str(b, empty ? "\"kv\":{" : ",\"kv\":{") != KVR_OK
        || kvr_buf_append(b, num, (size_t) n) != KVR_OK
        || kvr_buf_append_str(b, ",\"blocks\":[") != KVR_OK)
    {
        goto nomem;
    }
    for (i = 0; i < p->n_blocks; i++) {
        n = snprintf(num, sizeof(num), i > 0 ? ",%" PRIu32 : "%" PRIu32,
                     p->blocks[i]);
        if (kvr_buf_append(b, num, (size_t) n) != KVR_OK) {
            goto nomem;
        }
    }
    n = snprintf(num, sizeof(num), "],\"skip_blocks\":%" PRIu32
                 ",\"timeout_ms\":%" PRIu32 ",\"desc\":", p->skip_blocks,
                 p->timeout_ms);
    if (kvr_buf_append(b, num, (size_t) n) != KVR_OK
        || kvr_buf_append(b, p->desc, p->desc_len) != KVR_OK
        || kvr_buf_append(b, "}}", 2) != KVR_OK)
    {
        goto nomem;
    }
    return 0;

nomem:
    b->len = len0;
    return -1;
}

/* ---- the first token, in the notification payload ---- */

static unsigned char *
first_u32(unsigned char *q, uint32_t v)
{
    q[0] = (unsigned char) v;
    q[1] = (unsigned char) (v >> 8);
    q[2] = (unsigned char) (v >> 16);
    q[3] = (unsigned char) (v >> 24);
    return q + 4;
}

static unsigned char *
first_f32(unsigned char *q, float f)
{
    uint32_t  v;

    memcpy(&v, &f, sizeof(v));
    return first_u32(q, v);
}

static uint32_t
first_get_u32(const unsigned char *q)
{
    return (uint32_t) q[0] | (uint32_t) q[1] << 8 | (uint32_t) q[2] << 16
           | (uint32_t) q[3] << 24;
}

static float
first_get_f32(const unsigned char *q)
{
    uint32_t  v = first_get_u32(q);
    float     f;

    memcpy(&f, &v, sizeof(f));
    return f;
}

int
dw_proto_encode_first(const dw_output_t *tok, void *buf, size_t cap)
{
    unsigned char  *q = buf;
    uint32_t        j;

    if (tok->n_top > DW_MAX_TOP_LOGPROBS
        || cap < DW_PROTO_FIRST_LEN(tok->n_top))
    {
        return -1;
    }
    *q++ = DW_PROTO_FIRST_VERSION;
    q = first_u32(q, tok->token);
    q = first_f32(q, tok->logprob);
    *q++ = (unsigned char) tok->n_top;
    for (j = 0; j < tok->n_top; j++) {
        q = first_u32(q, tok->top_ids[j]);
        q = first_f32(q, tok->top_logprobs[j]);
    }
    return (int) DW_PROTO_FIRST_LEN(tok->n_top);
}

int
dw_proto_decode_first(const void *buf, size_t len, dw_output_t *tok)
{
    const unsigned char  *q = buf;
    uint32_t              j, n;

    memset(tok, 0, sizeof(*tok));
    if (len < DW_PROTO_FIRST_LEN(0) || q[0] != DW_PROTO_FIRST_VERSION) {
        return -1;
    }
    n = q[9];
    if (n > DW_MAX_TOP_LOGPROBS || len != DW_PROTO_FIRST_LEN(n)) {
        return -1;
    }
    tok->kind = DW_OUT_TOKEN;
    tok->token = first_get_u32(q + 1);
    tok->logprob = first_get_f32(q + 5);
    tok->n_top = n;
    for (j = 0, q += 10; j < n; j++, q += 8) {
        tok->top_ids[j] = first_get_u32(q);
        tok->top_logprobs[j] = first_get_f32(q + 4);
    }
    return 0;
}

const char *
dw_proto_prefill_name(dw_prefill_t p)
{
    static const char  *names[] = {
        NULL, "remote", "short", "busy", "down", "failed", "self"
    };

    return (unsigned) p < sizeof(names) / sizeof(names[0]) ? names[p] : NULL;
}
