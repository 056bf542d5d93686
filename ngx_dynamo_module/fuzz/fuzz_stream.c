/*
 * libFuzzer target: worker frames into a stream (ngx_http_dynamo_stream.c)
 * with the embedded model's tokenizer (models/stories260K; run from the
 * repository root), random request options and stop strings.
 *
 * Input: 4 option bytes (kind, stream, include_usage, logprobs), a stop
 * count byte, then per stop string a length byte and its bytes, then the
 * frames, one per '\n'-separated line.
 *
 * Checks: no crash or leak; every event (or the body) is JSON (a NUL
 * byte token prints as \\u0000, which JSON allows); [DONE]
 * comes once and last; a failed non-streaming response writes nothing;
 * the text never holds a stop string. Each line also goes through the
 * frame parser and a jansson reference of worker/PROTOCOL.md, which must
 * agree (except where jansson refuses duplicate unknown keys, nesting
 * deeper than the frame parser's limit, and lines with a NUL byte, which
 * jansson's buffer reader mishandles outside strings).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kvr_err.h"
#include "kvr_tokenizer.h"
#include "ngx_http_dynamo_frame.h"
#include "ngx_http_dynamo_stream.h"


static kvr_tokenizer_t  *tok;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char  err[256];

    if (kvr_tokenizer_load_dir("models/stories260K", &tok, err, sizeof(err))
        != KVR_OK)
    {
        fprintf(stderr, "fuzz_stream: models/stories260K: %s "
                "(run from the repository root)\n", err);
        abort();
    }
    return 0;
}


static int
ref_u32(json_t *v, uint32_t *out)
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


/* the protocol read with jansson: 0 ok, -1 bad, 1 no verdict */
static int
ref_parse(const char *line, size_t len, ngx_http_dynamo_frame_t *f)
{
    static const char *const  names[] = { "stop", "length", "cancelled",
                                          "error" };
    const char               *keys[4] = { "prompt_tokens",
                                          "completion_tokens",
                                          "cached_tokens", "preemptions" };
    uint32_t                 *dst[4];
    json_error_t              err;
    json_t                   *root, *t, *fin, *lp, *top, *pairs, *pair, *e;
    size_t                    i, j, n;
    int                       rc = -1;

    memset(f, 0, sizeof(*f));
    root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err);
    if (root == NULL) {
        return strstr(err.text, "duplicate") ? 1 : -1;
    }
    t = json_object_get(root, "t");
    fin = json_object_get(root, "finish");
    if (!json_is_object(root) || (t == NULL) == (fin == NULL)) {
        goto done;
    }
    if (fin) {
        if (!json_is_string(fin)) {
            goto done;
        }
        for (i = 0; i < 4; i++) {
            if (strcmp(json_string_value(fin), names[i]) == 0) {
                break;
            }
        }
        if (i == 4 || json_string_length(fin) != strlen(names[i])) {
            goto done;
        }
        f->kind = (int) i + 1;
        dst[0] = &f->prompt_tokens;
        dst[1] = &f->completion_tokens;
        dst[2] = &f->cached_tokens;
        dst[3] = &f->preemptions;
        for (i = 0; i < 4; i++) {
            if (ref_u32(json_object_get(root, keys[i]), dst[i])) {
                goto done;
            }
        }
        e = json_object_get(root, "error");
        if (e) {
            if (!json_is_string(e)) {
                goto done;
            }
            f->has_error = 1;
            snprintf(f->error, sizeof(f->error), "%s", json_string_value(e));
        }
        rc = 0;
        goto done;
    }
    n = json_array_size(t);
    if (!json_is_array(t) || n == 0 || n > NGX_HTTP_DYNAMO_FRAME_TOKENS) {
        goto done;
    }
    f->n = n;
    for (i = 0; i < n; i++) {
        if (ref_u32(json_array_get(t, i), &f->ids[i])) {
            goto done;
        }
    }
    lp = json_object_get(root, "lp");
    if (lp) {
        if (!json_is_array(lp) || json_array_size(lp) != n) {
            goto done;
        }
        for (i = 0; i < n; i++) {
            if (!json_is_number(json_array_get(lp, i))) {
                goto done;
            }
            f->lp[i] = json_number_value(json_array_get(lp, i));
        }
        f->has_lp = 1;
    }
    top = json_object_get(root, "top");
    if (top) {
        if (lp == NULL || !json_is_array(top) || json_array_size(top) != n) {
            goto done;
        }
        f->top = malloc(NGX_HTTP_DYNAMO_FRAME_TOKENS
                        * NGX_HTTP_DYNAMO_FRAME_TOP * sizeof(*f->top));
        if (f->top == NULL) {
            abort();
        }
        for (i = 0; i < n; i++) {
            pairs = json_array_get(top, i);
            if (!json_is_array(pairs)
                || json_array_size(pairs) > NGX_HTTP_DYNAMO_FRAME_TOP)
            {
                goto done;
            }
            f->n_top[i] = (uint8_t) json_array_size(pairs);
            for (j = 0; j < f->n_top[i]; j++) {
                pair = json_array_get(pairs, j);
                if (!json_is_array(pair) || json_array_size(pair) != 2
                    || ref_u32(json_array_get(pair, 0),
                               &f->top[i * NGX_HTTP_DYNAMO_FRAME_TOP + j].id)
                    || !json_is_number(json_array_get(pair, 1)))
                {
                    goto done;
                }
                f->top[i * NGX_HTTP_DYNAMO_FRAME_TOP + j].lp =
                    json_number_value(json_array_get(pair, 1));
            }
        }
        f->has_top = 1;
    }
    rc = 0;

done:

    json_decref(root);
    return rc;
}


static void
differential(const char *line, size_t len)
{
    static ngx_http_dynamo_frame_t  a, b;
    size_t                          i, j, k;
    int                             ra, rb;

    ra = ngx_http_dynamo_frame_parse(&a, line, len, 0);
    rb = ref_parse(line, len, &b);
    /* jansson reads a NUL byte outside strings loosely: no verdict */
    if (rb == 1 || memchr(line, '\0', len) != NULL
        || (ra != 0 && strcmp(a.why, "nested too deep") == 0))
    {
        goto out;
    }
    if ((ra == 0) != (rb == 0)) {
        fprintf(stderr, "frame parser %s, jansson %s: %.*s\n",
                ra == 0 ? "accepts" : a.why, rb == 0 ? "accepts" : "refuses",
                (int) len, line);
        abort();
    }
    if (ra != 0) {
        goto out;
    }
    if (a.kind != b.kind || a.n != b.n || a.has_lp != b.has_lp
        || a.has_top != b.has_top || a.prompt_tokens != b.prompt_tokens
        || a.completion_tokens != b.completion_tokens
        || a.cached_tokens != b.cached_tokens
        || a.preemptions != b.preemptions || a.has_error != b.has_error
        || strncmp(a.error, b.error, strlen(a.error)) != 0)
    {
        abort();
    }
    for (i = 0; i < a.n; i++) {
        if (a.ids[i] != b.ids[i] || (a.has_lp && a.lp[i] != b.lp[i])) {
            abort();
        }
        if (!a.has_top) {
            continue;
        }
        if (a.n_top[i] != b.n_top[i]) {
            abort();
        }
        for (j = 0; j < a.n_top[i]; j++) {
            k = i * NGX_HTTP_DYNAMO_FRAME_TOP + j;
            if (a.top[k].id != b.top[k].id || a.top[k].lp != b.top[k].lp) {
                abort();
            }
        }
    }

out:

    free(b.top);
    b.top = NULL;
}


static void
check_json(const char *p, size_t len)
{
    json_error_t  err;
    json_t       *j;

    j = json_loadb(p, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (j == NULL) {
        fprintf(stderr, "not JSON (%s): %.*s\n", err.text, (int) len, p);
        abort();
    }
    json_decref(j);
}


/* the text the client got: events' content/text, or the body's */
static void
check_output(const ngx_http_dynamo_oai_req_t *req, const kvr_buf_t *out,
    int rc, kvr_buf_t *text)
{
    const char  *p, *e, *end;
    json_t      *j, *c0, *v;
    int          done = 0;

    if (out->len == 0) {
        return;
    }
    p = out->data;
    end = p + out->len;
    if (!req->stream) {
        check_json(p, out->len);
        j = json_loadb(p, out->len, JSON_ALLOW_NUL, NULL);
        c0 = json_array_get(json_object_get(j, "choices"), 0);
        v = req->kind == NGX_HTTP_DYNAMO_OAI_CHAT
            ? json_object_get(json_object_get(c0, "message"), "content")
            : json_object_get(c0, "text");
        if (!json_is_string(v)) {
            abort();
        }
        kvr_buf_append(text, json_string_value(v), json_string_length(v));
        json_decref(j);
        return;
    }
    while (p < end) {
        if (done || end - p < 8 || memcmp(p, "data: ", 6) != 0) {
            abort();
        }
        p += 6;
        e = memmem(p, (size_t) (end - p), "\n\n", 2);
        if (e == NULL) {
            abort();
        }
        if (e - p == 6 && memcmp(p, "[DONE]", 6) == 0) {
            done = 1;
        } else {
            check_json(p, (size_t) (e - p));
            j = json_loadb(p, (size_t) (e - p), JSON_ALLOW_NUL, NULL);
            c0 = json_array_get(json_object_get(j, "choices"), 0);
            v = req->kind == NGX_HTTP_DYNAMO_OAI_CHAT
                ? json_object_get(json_object_get(c0, "delta"), "content")
                : json_object_get(c0, "text");
            if (json_is_string(v)) {
                kvr_buf_append(text, json_string_value(v),
                               json_string_length(v));
            }
            json_decref(j);
        }
        p = e + 2;
    }
    if (done != (rc != NGX_HTTP_DYNAMO_STREAM_MORE)) {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t           prompt[] = { 1, 403, 407, 261, 378 };
    ngx_http_dynamo_oai_req_t       req;
    ngx_http_dynamo_stream_conf_t   conf;
    ngx_http_dynamo_stream_t       *s;
    kvr_buf_t                       out = { 0 }, text = { 0 };
    const char                     *p, *end, *nl;
    size_t                          i, n;
    int                             rc;

    if (size < 5) {
        return 0;
    }
    memset(&req, 0, sizeof(req));
    req.kind = (data[0] & 1) ? NGX_HTTP_DYNAMO_OAI_CHAT
                             : NGX_HTTP_DYNAMO_OAI_COMPLETIONS;
    req.skip_special_tokens = (data[0] & 2) == 0;
    req.stream = data[1] & 1;
    req.include_usage = data[2] & 1;
    req.logprobs = (int) (data[3] % 5) - 1;
    req.max_tokens = -1;
    n = data[4] % 4;
    p = (const char *) data + 5;
    end = (const char *) data + size;
    for (i = 0; i < n && p < end; i++) {
        size_t  len = (uint8_t) *p++ % 8;

        if ((size_t) (end - p) < len) {
            len = (size_t) (end - p);
        }
        req.stop[req.nstop].data = p;
        req.stop[req.nstop].len = len;
        req.nstop++;
        p += len;
    }

    memset(&conf, 0, sizeof(conf));
    conf.req = &req;
    conf.tok = tok;
    conf.prompt_ids = prompt;
    conf.n_prompt_ids = 5;
    conf.id = "chatcmpl-fuzz";
    conf.model = "stories260K";
    conf.created = 1;

    s = ngx_http_dynamo_stream_create(&conf);
    if (s == NULL) {
        abort();
    }
    if (ngx_http_dynamo_stream_begin(s, &out) != 0) {
        abort();
    }
    rc = NGX_HTTP_DYNAMO_STREAM_MORE;
    while (p < end) {
        nl = memchr(p, '\n', (size_t) (end - p));
        n = nl ? (size_t) (nl - p) : (size_t) (end - p);
        differential(p, n);
        if (rc == NGX_HTTP_DYNAMO_STREAM_MORE) {
            rc = ngx_http_dynamo_stream_line(s, p, n, &out);
        } else if (ngx_http_dynamo_stream_line(s, p, n, &out) != rc) {
            abort();
        }
        p += n + (nl != NULL);
    }
    if (rc == NGX_HTTP_DYNAMO_STREAM_MORE && (data[0] & 4)) {
        ngx_http_dynamo_stream_fail(s, "worker gone", &out);
        rc = NGX_HTTP_DYNAMO_STREAM_FAILED;
    }
    if (rc == NGX_HTTP_DYNAMO_STREAM_FAILED && !req.stream && out.len) {
        abort();
    }
    if (rc == NGX_HTTP_DYNAMO_STREAM_MORE && !req.stream && out.len) {
        abort();
    }
    if (rc != NGX_HTTP_DYNAMO_STREAM_MORE || req.stream) {
        check_output(&req, &out, rc, &text);
    }
    for (i = 0; i < req.nstop && text.len; i++) {
        if (req.stop[i].len
            && memmem(text.data, text.len, req.stop[i].data, req.stop[i].len))
        {
            fprintf(stderr, "stop string in the text\n");
            abort();
        }
    }

    ngx_http_dynamo_stream_destroy(s);
    kvr_buf_free(&out);
    kvr_buf_free(&text);
    return 0;
}
