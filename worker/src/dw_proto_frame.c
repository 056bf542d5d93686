/*
 * dynamo-worker: the response side of the internal protocol: NDJSON token
 * and finish frames (encode on the worker, parse on a client) and the JSON
 * error body. Encoding is hand-written (it runs per token on the I/O
 * thread); parsing uses jansson (clients, tests, the fuzzer).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dw_proto.h"
#include "kvr_err.h"

/* Bytes one token can take in a frame: id, lp and 20 [id,lp] pairs. */
#define DW_FRAME_TOKEN_MAX  (12 + 18 + DW_MAX_TOP_LOGPROBS * (12 + 18 + 4))

static const char *const dw_finish_names[] = {
    NULL, "stop", "length", "cancelled", "error"
};

const char *
dw_proto_finish_name(dw_finish_t reason)
{
    if (reason < DW_FINISH_STOP || reason > DW_FINISH_ERROR) {
        return NULL;
    }
    return dw_finish_names[reason];
}

static char *
frame_u32(char *p, uint32_t v)
{
    char    tmp[10];
    size_t  n;

    n = 0;
    do {
        tmp[n++] = (char) ('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0) {
        *p++ = tmp[--n];
    }
    return p;
}

/* A logprob: -inf and NaN (impossible in JSON) become -9999, as vLLM's. */
static char *
frame_lp(char *p, float lp)
{
    if (!isfinite(lp) || lp < -9999.0f) {
        lp = -9999.0f;
    }
    /* %.9g round-trips a float exactly; at most 16 bytes */
    return p + snprintf(p, 18, "%.9g", (double) lp);
}

int
dw_proto_encode_tokens(kvr_buf_t *b, const dw_output_t *const *outs,
    size_t n, int with_lp)
{
    size_t    i, j;
    int       any_top;
    char     *p;

    if (n == 0 || kvr_buf_reserve(b, 32 + n * DW_FRAME_TOKEN_MAX) != KVR_OK) {
        return -1;
    }
    p = b->data + b->len;
    memcpy(p, "{\"t\":[", 6);
    p += 6;
    for (i = 0; i < n; i++) {
        if (i > 0) {
            *p++ = ',';
        }
        p = frame_u32(p, outs[i]->token);
    }
    *p++ = ']';
    if (with_lp) {
        memcpy(p, ",\"lp\":[", 7);
        p += 7;
        any_top = 0;
        for (i = 0; i < n; i++) {
            if (i > 0) {
                *p++ = ',';
            }
            p = frame_lp(p, outs[i]->logprob);
            any_top |= outs[i]->n_top > 0;
        }
        *p++ = ']';
        if (any_top) {
            memcpy(p, ",\"top\":[", 8);
            p += 8;
            for (i = 0; i < n; i++) {
                if (i > 0) {
                    *p++ = ',';
                }
                *p++ = '[';
                for (j = 0; j < outs[i]->n_top && j < DW_MAX_TOP_LOGPROBS;
                     j++)
                {
                    if (j > 0) {
                        *p++ = ',';
                    }
                    *p++ = '[';
                    p = frame_u32(p, outs[i]->top_ids[j]);
                    *p++ = ',';
                    p = frame_lp(p, outs[i]->top_logprobs[j]);
                    *p++ = ']';
                }
                *p++ = ']';
            }
            *p++ = ']';
        }
    }
    *p++ = '}';
    *p++ = '\n';
    *p = '\0';
    b->len = (size_t) (p - b->data);
    return 0;
}

/* Appends s as a JSON string (quotes included). */
static int
frame_json_str(kvr_buf_t *b, const char *s)
{
    char    *enc;
    json_t  *js;
    int      rc;

    js = json_string(s);
    if (js == NULL) {
        /* not UTF-8: keep the bytes that are plain ASCII */
        char    clean[256];
        size_t  i, k;

        for (i = 0, k = 0; s[i] != '\0' && k < sizeof(clean) - 1; i++) {
            if ((unsigned char) s[i] < 0x80) {
                clean[k++] = s[i];
            }
        }
        clean[k] = '\0';
        js = json_string(clean);
        if (js == NULL) {
            return -1;
        }
    }
    enc = json_dumps(js, JSON_ENCODE_ANY);
    json_decref(js);
    if (enc == NULL) {
        return -1;
    }
    rc = kvr_buf_append_str(b, enc) == KVR_OK ? 0 : -1;
    free(enc);
    return rc;
}

int
dw_proto_encode_finish(kvr_buf_t *b, const dw_output_t *out)
{
    char         line[256];
    const char  *name;
    int          n;

    name = dw_proto_finish_name(out->reason);
    if (name == NULL) {
        name = "error";
    }
    n = snprintf(line, sizeof(line),
                 "{\"finish\":\"%s\",\"prompt_tokens\":%u,"
                 "\"completion_tokens\":%u,\"cached_tokens\":%u,"
                 "\"preemptions\":%u",
                 name, out->prompt_tokens, out->completion_tokens,
                 out->cached_tokens, out->preemptions);
    if (kvr_buf_append(b, line, (size_t) n) != KVR_OK) {
        return -1;
    }
    /* disaggregation only: aggregated frames stay as they were */
    if (out->prefill == DW_PREFILL_REMOTE) {
        if (kvr_buf_append_str(b, ",\"prefill\":\"remote\"") != KVR_OK) {
            return -1;
        }
    } else if (out->prefill != DW_PREFILL_AGG
               && dw_proto_prefill_name(out->prefill) != NULL)
    {
        n = snprintf(line, sizeof(line), ",\"prefill\":\"local\","
                     "\"prefill_reason\":\"%s\"",
                     dw_proto_prefill_name(out->prefill));
        if (kvr_buf_append(b, line, (size_t) n) != KVR_OK) {
            return -1;
        }
    }
    if (out->reason == DW_FINISH_ERROR || (out->error[0] != '\0')) {
        char  msg[sizeof(out->error) + 1];

        memcpy(msg, out->error, sizeof(out->error));
        msg[sizeof(out->error)] = '\0';
        if (kvr_buf_append_str(b, ",\"error\":") != KVR_OK
            || frame_json_str(b, msg) != 0)
        {
            return -1;
        }
    }
    return kvr_buf_append(b, "}\n", 2) == KVR_OK ? 0 : -1;
}

int
dw_proto_encode_error(kvr_buf_t *b, const char *type, const char *field,
    const char *msg)
{
    if (kvr_buf_append_str(b, "{\"error\":{\"type\":") != KVR_OK
        || frame_json_str(b, type) != 0)
    {
        return -1;
    }
    if (field != NULL && field[0] != '\0') {
        if (kvr_buf_append_str(b, ",\"field\":") != KVR_OK
            || frame_json_str(b, field) != 0)
        {
            return -1;
        }
    }
    if (kvr_buf_append_str(b, ",\"message\":") != KVR_OK
        || frame_json_str(b, msg) != 0
        || kvr_buf_append_str(b, "}}") != KVR_OK)
    {
        return -1;
    }
    return 0;
}

/* ---- client side ---- */

static int
parse_fail(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return -1;
}

static int
parse_u32(json_t *v, uint32_t *out)
{
    json_int_t  x;

    if (!json_is_integer(v)) {
        return -1;
    }
    x = json_integer_value(v);
    if (x < 0 || x > (json_int_t) UINT32_MAX) {
        return -1;
    }
    *out = (uint32_t) x;
    return 0;
}

/* "prefill" and "prefill_reason": both absent (aggregated), "remote"
   alone, or "local" with a reason. */
static int
parse_prefill(json_t *root, dw_proto_frame_t *f, char *err, size_t errlen)
{
    json_t      *m, *r;
    const char  *name;
    int          k;

    m = json_object_get(root, "prefill");
    r = json_object_get(root, "prefill_reason");
    f->prefill = DW_PREFILL_AGG;
    if (m == NULL) {
        return r == NULL ? 0 : parse_fail(err, errlen, "prefill_reason: "
                                          "only with prefill \"local\"");
    }
    if (!json_is_string(m)) {
        return parse_fail(err, errlen, "prefill: must be a string");
    }
    if (strcmp(json_string_value(m), "remote") == 0) {
        if (r != NULL) {
            return parse_fail(err, errlen, "prefill_reason: only with "
                              "prefill \"local\"");
        }
        f->prefill = DW_PREFILL_REMOTE;
        return 0;
    }
    if (strcmp(json_string_value(m), "local") != 0) {
        return parse_fail(err, errlen, "prefill: \"remote\" or \"local\"");
    }
    if (!json_is_string(r)) {
        return parse_fail(err, errlen, "prefill_reason: a string, required "
                          "with prefill \"local\"");
    }
    for (k = DW_PREFILL_LOCAL_SHORT; k <= DW_PREFILL_LOCAL_SELF; k++) {
        name = dw_proto_prefill_name((dw_prefill_t) k);
        if (name != NULL && strcmp(json_string_value(r), name) == 0) {
            f->prefill = (dw_prefill_t) k;
            return 0;
        }
    }
    return parse_fail(err, errlen, "prefill_reason: unknown reason");
}

static int
parse_finish(json_t *root, json_t *fin, dw_proto_frame_t *f, char *err,
    size_t errlen)
{
    const char  *name, *msg;
    json_t      *e;
    int          r;

    if (!json_is_string(fin)) {
        return parse_fail(err, errlen, "finish: must be a string");
    }
    name = json_string_value(fin);
    for (r = DW_FINISH_STOP; r <= DW_FINISH_ERROR; r++) {
        if (strcmp(name, dw_finish_names[r]) == 0) {
            break;
        }
    }
    if (r > DW_FINISH_ERROR) {
        return parse_fail(err, errlen, "finish: unknown reason");
    }
    f->finish = r;
    if (parse_u32(json_object_get(root, "prompt_tokens"), &f->prompt_tokens)
        || parse_u32(json_object_get(root, "completion_tokens"),
                     &f->completion_tokens)
        || parse_u32(json_object_get(root, "cached_tokens"),
                     &f->cached_tokens)
        || parse_u32(json_object_get(root, "preemptions"), &f->preemptions))
    {
        return parse_fail(err, errlen, "finish frame: a count is missing "
                          "or not a u32");
    }
    e = json_object_get(root, "error");
    if (e != NULL) {
        if (!json_is_string(e)) {
            return parse_fail(err, errlen, "error: must be a string");
        }
        msg = json_string_value(e);
        snprintf(f->error, sizeof(f->error), "%s", msg);
    }
    return parse_prefill(root, f, err, errlen);
}

static int
parse_tokens(json_t *root, json_t *t, dw_proto_frame_t *f, char *err,
    size_t errlen)
{
    json_t  *lp, *top, *pairs, *pair;
    size_t   i, j, n;

    n = json_array_size(t);
    if (!json_is_array(t) || n == 0 || n > DW_PROTO_FRAME_TOKENS) {
        return parse_fail(err, errlen, "t: must be an array of 1..256 ids");
    }
    f->n = (uint32_t) n;
    for (i = 0; i < n; i++) {
        if (parse_u32(json_array_get(t, i), &f->ids[i])) {
            return parse_fail(err, errlen, "t: ids must be u32");
        }
    }
    lp = json_object_get(root, "lp");
    if (lp != NULL) {
        if (!json_is_array(lp) || json_array_size(lp) != n) {
            return parse_fail(err, errlen, "lp: one number per token");
        }
        f->has_lp = 1;
        for (i = 0; i < n; i++) {
            if (!json_is_number(json_array_get(lp, i))) {
                return parse_fail(err, errlen, "lp: one number per token");
            }
            f->lp[i] = (float) json_number_value(json_array_get(lp, i));
        }
    }
    top = json_object_get(root, "top");
    if (top == NULL) {
        return 0;
    }
    if (lp == NULL || !json_is_array(top) || json_array_size(top) != n) {
        return parse_fail(err, errlen, "top: one list per token, with lp");
    }
    for (i = 0; i < n; i++) {
        pairs = json_array_get(top, i);
        if (!json_is_array(pairs)
            || json_array_size(pairs) > DW_MAX_TOP_LOGPROBS)
        {
            return parse_fail(err, errlen, "top: at most 20 pairs per token");
        }
        f->n_top[i] = (uint32_t) json_array_size(pairs);
        for (j = 0; j < f->n_top[i]; j++) {
            pair = json_array_get(pairs, j);
            if (!json_is_array(pair) || json_array_size(pair) != 2
                || parse_u32(json_array_get(pair, 0), &f->top_ids[i][j])
                || !json_is_number(json_array_get(pair, 1)))
            {
                return parse_fail(err, errlen, "top: pairs are [id, lp]");
            }
            f->top_lp[i][j] =
                (float) json_number_value(json_array_get(pair, 1));
        }
    }
    return 0;
}

int
dw_proto_parse_frame(const char *line, size_t len, dw_proto_frame_t *f,
    char *err, size_t errlen)
{
    json_t        *root, *t, *fin;
    json_error_t   jerr;
    int            rc;

    f->finish = 0;
    f->n = 0;
    f->has_lp = 0;
    f->error[0] = '\0';
    f->prefill = DW_PREFILL_AGG;
    memset(f->n_top, 0, sizeof(f->n_top));
    if (len > 0 && line[len - 1] == '\n') {
        len--;
    }
    if (memchr(line, '\n', len) != NULL) {
        return parse_fail(err, errlen, "a frame is one line");
    }
    root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return parse_fail(err, errlen, jerr.text);
    }
    t = json_object_get(root, "t");
    fin = json_object_get(root, "finish");
    if (!json_is_object(root) || (t == NULL) == (fin == NULL)) {
        rc = parse_fail(err, errlen, "a frame has exactly one of t, finish");
    } else if (t != NULL) {
        rc = parse_tokens(root, t, f, err, errlen);
    } else {
        rc = parse_finish(root, fin, f, err, errlen);
    }
    json_decref(root);
    return rc;
}
