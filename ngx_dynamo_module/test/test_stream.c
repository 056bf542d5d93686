/*
 * Worker frames to OpenAI responses (ngx_http_dynamo_stream.c) and the
 * frame parser (ngx_http_dynamo_frame.c), with the embedded model's real
 * tokenizer (models/stories260K; run from the repository root) and its
 * known greedy output (models/stories260K/README.md). Expected text comes
 * from kvr_tokenizer_decode of the whole sequence, stop-string results
 * from a plain strstr over growing decodes, shapes from the OpenAI API
 * reference; every event and body is parsed back with jansson.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "kvr_err.h"
#include "kvr_tokenizer.h"
#include "ngx_http_dynamo_frame.h"
#include "ngx_http_dynamo_stream.h"


#define MODEL_DIR  "models/stories260K"
#define NGEN       25

static kvr_tokenizer_t  *tok;

static const uint32_t  prompt[] = { 1, 403, 407, 261, 378 };
static const uint32_t  gen[NGEN] = {
    432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396,
    267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295
};
static const char  *known =
    "Once upon a time, there was a little girl named Lily. She loved to "
    "play outside in the par";

/* a run: the request, the stream's output and the events parsed back */
typedef struct {
    ngx_http_dynamo_oai_req_t       req;
    ngx_http_dynamo_stream_conf_t   conf;
    ngx_http_dynamo_stream_t       *s;
    kvr_buf_t                       out;
    int                             rc;
    json_t                         *events;     /* array of parsed events */
    int                             done;       /* saw data: [DONE] */
    char                            text[4096]; /* content / text joined */
    const uint32_t                 *ids;
    size_t                          nids;
} run_t;


static int
setup(void **state)
{
    char  err[256];

    if (kvr_tokenizer_load_dir(MODEL_DIR, &tok, err, sizeof(err)) != KVR_OK) {
        fprintf(stderr, "load %s: %s\n", MODEL_DIR, err);
        return -1;
    }
    return 0;
}


static int
teardown(void **state)
{
    kvr_tokenizer_free(tok);
    return 0;
}


/* decode(prompt + ids[0..n)) minus decode(prompt): the reference text */
static void
ref_text(const uint32_t *ids, size_t n, char *out, size_t cap)
{
    uint32_t   all[512];
    kvr_buf_t  a = { 0 }, b = { 0 };
    size_t     np = sizeof(prompt) / sizeof(prompt[0]);

    memcpy(all, prompt, sizeof(prompt));
    memcpy(all + np, ids, n * sizeof(uint32_t));
    assert_int_equal(kvr_tokenizer_decode(tok, all, np, KVR_TOK_SKIP_SPECIAL,
                                          &a), KVR_OK);
    assert_int_equal(kvr_tokenizer_decode(tok, all, np + n,
                                          KVR_TOK_SKIP_SPECIAL, &b), KVR_OK);
    assert_true(b.len >= a.len && memcmp(a.data, b.data, a.len) == 0);
    assert_true(b.len - a.len < cap);
    memcpy(out, b.data + a.len, b.len - a.len);
    out[b.len - a.len] = '\0';
    kvr_buf_free(&a);
    kvr_buf_free(&b);
}


static void
run_init(run_t *r, int kind, int stream, int usage, int logprobs)
{
    memset(r, 0, sizeof(*r));
    r->req.kind = kind;
    r->req.stream = stream;
    r->req.include_usage = usage;
    r->req.logprobs = logprobs;
    r->req.skip_special_tokens = 1;
    r->req.max_tokens = -1;
    r->conf.req = &r->req;
    r->conf.tok = tok;
    r->conf.prompt_ids = prompt;
    r->conf.n_prompt_ids = sizeof(prompt) / sizeof(prompt[0]);
    r->conf.id = kind == NGX_HTTP_DYNAMO_OAI_CHAT ? "chatcmpl-abc" : "cmpl-abc";
    r->conf.model = "stories260K";
    r->conf.created = 1700000000;
    r->ids = gen;
    r->nids = NGEN;
}


static void
run_stop(run_t *r, const char *stop)
{
    r->req.stop[r->req.nstop].data = stop;
    r->req.stop[r->req.nstop].len = strlen(stop);
    r->req.nstop++;
}


static void
run_start(run_t *r)
{
    r->s = ngx_http_dynamo_stream_create(&r->conf);
    assert_non_null(r->s);
    assert_int_equal(ngx_http_dynamo_stream_begin(r->s, &r->out), 0);
}


static int
feed(run_t *r, const char *line)
{
    r->rc = ngx_http_dynamo_stream_line(r->s, line, strlen(line), &r->out);
    return r->rc;
}


/* token frames of `group` ids each (with lp/top when logprobs), then a
   finish frame; stops feeding at DONE or FAILED */
static void
run_frames(run_t *r, size_t group, const char *finish, unsigned cached)
{
    char    line[16384];
    size_t  i, j, k, o;

    for (i = 0; i < r->nids; i += group) {
        o = (size_t) snprintf(line, sizeof(line), "{\"t\":[");
        for (j = i; j < i + group && j < r->nids; j++) {
            o += (size_t) snprintf(line + o, sizeof(line) - o, "%s%u",
                                   j > i ? "," : "", r->ids[j]);
        }
        o += (size_t) snprintf(line + o, sizeof(line) - o, "]");
        if (r->req.logprobs >= 0) {
            o += (size_t) snprintf(line + o, sizeof(line) - o, ",\"lp\":[");
            for (j = i; j < i + group && j < r->nids; j++) {
                o += (size_t) snprintf(line + o, sizeof(line) - o, "%s%s",
                                       j > i ? "," : "",
                                       j == 1 ? "-9999" : "-0.0613933764");
            }
            o += (size_t) snprintf(line + o, sizeof(line) - o, "]");
        }
        if (r->req.logprobs > 0) {
            o += (size_t) snprintf(line + o, sizeof(line) - o, ",\"top\":[");
            for (j = i; j < i + group && j < r->nids; j++) {
                o += (size_t) snprintf(line + o, sizeof(line) - o, "%s[",
                                       j > i ? "," : "");
                /* the sampled id, then others; more than asked for */
                for (k = 0; k < 4; k++) {
                    o += (size_t) snprintf(line + o, sizeof(line) - o,
                                           "%s[%u,%g]", k ? "," : "",
                                           k == 0 ? r->ids[j]
                                                  : (unsigned) (300 + k),
                                           -0.5 * (double) (k + 1));
                }
                o += (size_t) snprintf(line + o, sizeof(line) - o, "]");
            }
            o += (size_t) snprintf(line + o, sizeof(line) - o, "]");
        }
        snprintf(line + o, sizeof(line) - o, "}");
        if (feed(r, line) != NGX_HTTP_DYNAMO_STREAM_MORE) {
            return;
        }
    }
    snprintf(line, sizeof(line),
             "{\"finish\":\"%s\",\"prompt_tokens\":5,\"completion_tokens\":%zu,"
             "\"cached_tokens\":%u,\"preemptions\":0}", finish, r->nids,
             cached);
    feed(r, line);
}


/* JSON parse, duplicates refused, of len bytes */
static json_t *
parse(const char *p, size_t len)
{
    json_error_t  err;
    json_t       *j;

    j = json_loadb(p, len, JSON_REJECT_DUPLICATES, &err);
    if (j == NULL) {
        fail_msg("not JSON (%s): %.*s", err.text, (int) len, p);
    }
    return j;
}


/* splits the SSE output into events; joins the text; checks framing */
static void
run_events(run_t *r)
{
    const char  *p, *e, *end;
    json_t      *ev, *ch, *c0, *d, *v;
    size_t       o = 0;

    r->events = json_array();
    p = r->out.data ? r->out.data : "";
    end = p + r->out.len;
    while (p < end) {
        assert_false(r->done);          /* nothing after [DONE] */
        assert_memory_equal(p, "data: ", 6);
        e = strstr(p, "\n\n");
        assert_non_null(e);
        p += 6;
        if (e - p == 6 && memcmp(p, "[DONE]", 6) == 0) {
            r->done = 1;
        } else {
            ev = parse(p, (size_t) (e - p));
            json_array_append_new(r->events, ev);
            ch = json_object_get(ev, "choices");
            c0 = json_array_get(ch, 0);
            d = r->req.kind == NGX_HTTP_DYNAMO_OAI_CHAT
                ? json_object_get(c0, "delta") : c0;
            v = json_object_get(d, r->req.kind == NGX_HTTP_DYNAMO_OAI_CHAT
                                   ? "content" : "text");
            if (json_is_string(v)) {
                assert_true(o + json_string_length(v) < sizeof(r->text));
                memcpy(r->text + o, json_string_value(v),
                       json_string_length(v));
                o += json_string_length(v);
            }
        }
        p = e + 2;
    }
    r->text[o] = '\0';
}


static void
run_free(run_t *r)
{
    ngx_http_dynamo_stream_destroy(r->s);
    kvr_buf_free(&r->out);
    json_decref(r->events);
}


static void
usage_is(json_t *u, json_int_t p, json_int_t c, json_int_t k)
{
    assert_non_null(u);
    assert_int_equal(json_object_size(u), 4);
    assert_int_equal(json_integer_value(json_object_get(u, "prompt_tokens")),
                     p);
    assert_int_equal(json_integer_value(
                         json_object_get(u, "completion_tokens")), c);
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")),
                     p + c);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(u, "prompt_tokens_details"),
                         "cached_tokens")), k);
}


/* the common keys of a chunk, in OpenAI's order */
static void
chunk_head(run_t *r, json_t *ev, int usage)
{
    const char  *keys[] = { "id", "object", "created", "model", "choices",
                            "usage" };
    void        *it;
    size_t       i;

    for (it = json_object_iter(ev), i = 0; it;
         it = json_object_iter_next(ev, it), i++)
    {
        assert_true(i < 6);
        assert_string_equal(json_object_iter_key(it), keys[i]);
    }
    assert_int_equal(i, usage ? 6 : 5);
    assert_string_equal(json_string_value(json_object_get(ev, "id")),
                        r->conf.id);
    assert_string_equal(json_string_value(json_object_get(ev, "object")),
                        r->req.kind == NGX_HTTP_DYNAMO_OAI_CHAT
                        ? "chat.completion.chunk" : "text_completion");
    assert_int_equal(json_integer_value(json_object_get(ev, "created")),
                     1700000000);
    assert_string_equal(json_string_value(json_object_get(ev, "model")),
                        "stories260K");
}


/* ---- frame parser ---- */

static void
test_frame_parse(void **state)
{
    ngx_http_dynamo_frame_t  f;
    const char              *l;

    memset(&f, 0, sizeof(f));

    l = "{\"t\":[432,383]}";
    assert_int_equal(ngx_http_dynamo_frame_parse(&f, l, strlen(l), 512), 0);
    assert_int_equal(f.kind, NGX_HTTP_DYNAMO_FRAME_TOKEN);
    assert_int_equal(f.n, 2);
    assert_int_equal(f.ids[0], 432);
    assert_int_equal(f.ids[1], 383);
    assert_false(f.has_lp);

    l = " { \"top\" : [[[261,-1.40008712],[295,-2.05534339]]],"
        "\"x\":{\"a\":[1,2.5e3,true,null,\"\\u00e9\\ud83d\\ude00\"]},"
        "\"\\u006cp\":[-1.40008712], \"t\":[261]}\r\n";
    assert_int_equal(ngx_http_dynamo_frame_parse(&f, l, strlen(l), 512), 0);
    assert_int_equal(f.n, 1);
    assert_true(f.has_lp && f.has_top);
    assert_true(f.lp[0] == -1.40008712);
    assert_int_equal(f.n_top[0], 2);
    assert_int_equal(f.top[1].id, 295);
    assert_true(f.top[1].lp == -2.05534339);

    l = "{\"finish\":\"error\",\"prompt_tokens\":5,\"completion_tokens\":0,"
        "\"cached_tokens\":4294967295,\"preemptions\":1,"
        "\"error\":\"out \\\"of\\\" blocks\\n\"}";
    assert_int_equal(ngx_http_dynamo_frame_parse(&f, l, strlen(l), 512), 0);
    assert_int_equal(f.kind, NGX_HTTP_DYNAMO_FRAME_ERROR);
    assert_int_equal(f.prompt_tokens, 5);
    assert_int_equal(f.cached_tokens, 4294967295u);
    assert_int_equal(f.preemptions, 1);
    assert_string_equal(f.error, "out \"of\" blocks\n");

    ngx_http_dynamo_frame_free(&f);
}


static void
test_frame_bad(void **state)
{
    static const char *const  bad[] = {
        "", " ", "{", "}", "[]", "null", "{\"t\":[1]} x", "{\"t\":[1]}}",
        "{\"t\":[]}", "{\"t\":[512]}", "{\"t\":[1.0]}", "{\"t\":[1e2]}",
        "{\"t\":[-1]}", "{\"t\":[4294967296]}", "{\"t\":[01]}",
        "{\"t\":[1,]}", "{\"t\":[,1]}", "{\"t\":\"1\"}", "{\"t\":null}",
        "{\"t\":[1],\"t\":[2]}", "{\"t\":[1],\"finish\":\"stop\"}",
        "{\"t\":[1],\"lp\":[]}", "{\"t\":[1],\"lp\":[-1,-2]}",
        "{\"t\":[1],\"lp\":[\"x\"]}", "{\"t\":[1],\"top\":[[]]}",
        "{\"t\":[1],\"lp\":[-1],\"top\":[]}",
        "{\"t\":[1],\"lp\":[-1],\"top\":[[[1]]]}",
        "{\"t\":[1],\"lp\":[-1],\"top\":[[[1,-1,2]]]}",
        "{\"t\":[1],\"lp\":[-1],\"top\":[[[600,-1]]]}",
        "{\"t\":[1],\"lp\":[1e999]}", "{\"t\":[1],\"lp\":[-]}",
        "{\"t\":[1],\"x\":99999999999999999999}",
        "{\"t\":[1],\"x\":\"\\u0000\"}", "{\"t\":[1],\"x\":\"\\ud800\"}",
        "{\"t\":[1],\"x\":\"\xc3\"}", "{\"t\":[1],\"x\":\"\xed\xa0\x80\"}",
        "{\"t\":[1],\"x\":\"a\tb\"}", "{\"t\":[1],\"x\":tru}",
        "{\"t\":[1] \"x\":1}", "{'t':[1]}",
        "{\"finish\":\"stop\"}", "{\"finish\":\"done\",\"prompt_tokens\":1,"
        "\"completion_tokens\":1,\"cached_tokens\":0,\"preemptions\":0}",
        "{\"finish\":\"stop\",\"prompt_tokens\":-1,"
        "\"completion_tokens\":1,\"cached_tokens\":0,\"preemptions\":0}",
        "{\"finish\":\"stop\",\"prompt_tokens\":1,\"completion_tokens\":1,"
        "\"cached_tokens\":0,\"preemptions\":0,\"error\":5}",
        "{\"t\":[1],\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]"
        "]]]]]]]]]]]]]]]]]]}",
    };
    ngx_http_dynamo_frame_t  f;
    size_t                   i;

    memset(&f, 0, sizeof(f));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ngx_http_dynamo_frame_parse(&f, bad[i], strlen(bad[i]), 512)
            != NGX_HTTP_DYNAMO_FRAME_BAD)
        {
            fail_msg("accepted: %s", bad[i]);
        }
        assert_non_null(f.why);
    }
    ngx_http_dynamo_frame_free(&f);
}


/* logprobs read exactly as strtod reads them (the fast path included) */
static void
test_frame_reals(void **state)
{
    static const char *const  fmt[] = { "%.9g", "%.17g", "%.3e", "%.0f",
                                         "%.12f" };
    ngx_http_dynamo_frame_t   f;
    char                      line[128], num[64];
    uint64_t                  x = 88172645463325252ull;
    double                    v;
    size_t                    i, k;

    memset(&f, 0, sizeof(f));
    for (i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v = -(double) (x >> 11) / (double) (1ull << 53)
            * (double) (1u << (x % 24));
        if (i % 7 == 0) {
            v = (float) v;
        }
        k = i % (sizeof(fmt) / sizeof(fmt[0]));
        snprintf(num, sizeof(num), fmt[k], v);
        snprintf(line, sizeof(line), "{\"t\":[1],\"lp\":[%s]}", num);
        assert_int_equal(ngx_http_dynamo_frame_parse(&f, line, strlen(line),
                                                     512), 0);
        if (f.lp[0] != strtod(num, NULL)) {
            fail_msg("%s read as %.17g", num, f.lp[0]);
        }
    }
    ngx_http_dynamo_frame_free(&f);
}


/* ---- text ---- */

static void
check_stream_text(int kind, size_t group, int usage)
{
    run_t    r;
    char     ref[4096];
    size_t   i, n;
    json_t  *ev, *c0;

    run_init(&r, kind, 1, usage, -1);
    run_start(&r);
    run_frames(&r, group, "length", 16);
    assert_int_equal(r.rc, NGX_HTTP_DYNAMO_STREAM_DONE);
    assert_int_equal(ngx_http_dynamo_stream_cut(r.s), 0);
    assert_string_equal(ngx_http_dynamo_stream_finish_reason(r.s), "length");
    run_events(&r);
    assert_true(r.done);

    ref_text(gen, NGEN, ref, sizeof(ref));
    assert_string_equal(r.text, ref);
    assert_true(strlen(known) > strlen(ref));
    assert_string_equal(known + strlen(known) - strlen(ref), ref);

    n = json_array_size(r.events);
    for (i = 0; i < n; i++) {
        ev = json_array_get(r.events, i);
        if (usage && i == n - 1) {
            chunk_head(&r, ev, 1);
            assert_int_equal(json_array_size(json_object_get(ev, "choices")),
                             0);
            usage_is(json_object_get(ev, "usage"), 5, NGEN, 16);
            continue;
        }
        chunk_head(&r, ev, usage);
        if (usage) {
            assert_true(json_is_null(json_object_get(ev, "usage")));
        }
        assert_int_equal(json_array_size(json_object_get(ev, "choices")), 1);
        c0 = json_array_get(json_object_get(ev, "choices"), 0);
        assert_int_equal(json_integer_value(json_object_get(c0, "index")), 0);
        assert_true(json_is_null(json_object_get(c0, "logprobs")));
        if (kind == NGX_HTTP_DYNAMO_OAI_CHAT && i == 0) {
            assert_string_equal(json_string_value(json_object_get(
                json_object_get(c0, "delta"), "role")), "assistant");
            assert_string_equal(json_string_value(json_object_get(
                json_object_get(c0, "delta"), "content")), "");
        } else if (kind == NGX_HTTP_DYNAMO_OAI_CHAT) {
            assert_null(json_object_get(json_object_get(c0, "delta"),
                                        "role"));
        }
        if (i == n - 1 - (usage ? 1 : 0)) {
            assert_string_equal(json_string_value(
                json_object_get(c0, "finish_reason")), "length");
        } else {
            assert_true(json_is_null(json_object_get(c0, "finish_reason")));
        }
    }
    /* chat: role chunk + one per producing frame (+ finish) */
    assert_true(n >= (kind == NGX_HTTP_DYNAMO_OAI_CHAT ? 3 : 2));
    if (group == 1) {
        assert_true(n >= NGEN / 2);
    }
    run_free(&r);
}


static void
test_chat_stream(void **state)
{
    check_stream_text(NGX_HTTP_DYNAMO_OAI_CHAT, 1, 0);
    check_stream_text(NGX_HTTP_DYNAMO_OAI_CHAT, 3, 0);
    check_stream_text(NGX_HTTP_DYNAMO_OAI_CHAT, 256, 1);
}


static void
test_completions_stream(void **state)
{
    check_stream_text(NGX_HTTP_DYNAMO_OAI_COMPLETIONS, 1, 1);
    check_stream_text(NGX_HTTP_DYNAMO_OAI_COMPLETIONS, 4, 0);
}


static void
check_body(int kind, size_t group)
{
    run_t    r;
    char     ref[4096];
    json_t  *b, *c0, *m;
    void    *it;
    size_t   i;
    const char  *keys[] = { "id", "object", "created", "model", "choices",
                            "usage" };

    run_init(&r, kind, 0, 0, -1);
    run_start(&r);
    assert_int_equal(r.out.len, 0);
    run_frames(&r, group, "stop", 0);
    assert_int_equal(r.rc, NGX_HTTP_DYNAMO_STREAM_DONE);
    assert_string_equal(ngx_http_dynamo_stream_finish_reason(r.s), "stop");
    b = parse(r.out.data, r.out.len);
    for (it = json_object_iter(b), i = 0; it;
         it = json_object_iter_next(b, it), i++)
    {
        assert_true(i < 6);
        assert_string_equal(json_object_iter_key(it), keys[i]);
    }
    assert_int_equal(i, 6);
    assert_string_equal(json_string_value(json_object_get(b, "object")),
                        kind == NGX_HTTP_DYNAMO_OAI_CHAT ? "chat.completion"
                                                         : "text_completion");
    c0 = json_array_get(json_object_get(b, "choices"), 0);
    assert_int_equal(json_array_size(json_object_get(b, "choices")), 1);
    ref_text(gen, NGEN, ref, sizeof(ref));
    if (kind == NGX_HTTP_DYNAMO_OAI_CHAT) {
        m = json_object_get(c0, "message");
        assert_int_equal(json_object_size(m), 2);
        assert_string_equal(json_string_value(json_object_get(m, "role")),
                            "assistant");
        assert_string_equal(json_string_value(json_object_get(m, "content")),
                            ref);
    } else {
        assert_string_equal(json_string_value(json_object_get(c0, "text")),
                            ref);
    }
    assert_true(json_is_null(json_object_get(c0, "logprobs")));
    assert_string_equal(json_string_value(json_object_get(c0,
                        "finish_reason")), "stop");
    usage_is(json_object_get(b, "usage"), 5, NGEN, 0);
    json_decref(b);
    run_free(&r);
}


static void
test_bodies(void **state)
{
    check_body(NGX_HTTP_DYNAMO_OAI_CHAT, 1);
    check_body(NGX_HTTP_DYNAMO_OAI_CHAT, 7);
    check_body(NGX_HTTP_DYNAMO_OAI_COMPLETIONS, 2);
}


/* ---- stop strings ---- */

/*
 * The reference: decode growing prefixes; the first k whose text holds a
 * stop string fixes the completion count; the text ends where the
 * earliest-ending (then longest) stop string starts.
 */
static int
ref_stop(const char *const *stops, size_t nstops, char *text, size_t *k)
{
    char         t[4096];
    const char  *p;
    size_t       i, j, end, best_end, best_start;

    for (i = 1; i <= NGEN; i++) {
        ref_text(gen, i, t, sizeof(t));
        best_end = SIZE_MAX;
        best_start = 0;
        for (j = 0; j < nstops; j++) {
            p = stops[j][0] ? strstr(t, stops[j]) : NULL;
            if (p == NULL) {
                continue;
            }
            end = (size_t) (p - t) + strlen(stops[j]);
            if (end < best_end
                || (end == best_end && (size_t) (p - t) < best_start))
            {
                best_end = end;
                best_start = (size_t) (p - t);
            }
        }
        if (best_end != SIZE_MAX) {
            memcpy(text, t, best_start);
            text[best_start] = '\0';
            *k = i;
            return 1;
        }
    }
    ref_text(gen, NGEN, text, 4096);
    *k = NGEN;
    return 0;
}


static void
check_stop(const char *const *stops, size_t nstops)
{
    static const size_t  groups[] = { 1, 2, 3, 5, 256 };
    run_t                r;
    char                 ref[4096];
    size_t               g, k, kind, streaming;
    uint64_t             p, c, cached;
    int                  matched;
    json_t              *b, *c0;

    matched = ref_stop(stops, nstops, ref, &k);

    for (kind = 1; kind <= 2; kind++) {
        for (streaming = 0; streaming <= 1; streaming++) {
            for (g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
                run_init(&r, (int) kind, (int) streaming, 1, -1);
                for (size_t i = 0; i < nstops; i++) {
                    run_stop(&r, stops[i]);
                }
                run_start(&r);
                run_frames(&r, groups[g], "length", 0);
                assert_int_equal(r.rc, NGX_HTTP_DYNAMO_STREAM_DONE);
                assert_string_equal(ngx_http_dynamo_stream_finish_reason(r.s),
                                    matched ? "stop" : "length");
                /* the worker's last frame is its finish frame */
                assert_int_equal(ngx_http_dynamo_stream_cut(r.s), matched);
                ngx_http_dynamo_stream_usage(r.s, &p, &c, &cached);
                assert_int_equal(c, k);
                if (streaming) {
                    run_events(&r);
                    assert_true(r.done);
                    assert_string_equal(r.text, ref);
                    usage_is(json_object_get(json_array_get(r.events,
                                 json_array_size(r.events) - 1), "usage"),
                             5, (json_int_t) k, 0);
                } else {
                    b = parse(r.out.data, r.out.len);
                    c0 = json_array_get(json_object_get(b, "choices"), 0);
                    assert_string_equal(json_string_value(kind == 1
                        ? json_object_get(json_object_get(c0, "message"),
                                          "content")
                        : json_object_get(c0, "text")), ref);
                    usage_is(json_object_get(b, "usage"), 5,
                             (json_int_t) k, 0);
                    json_decref(b);
                }
                run_free(&r);
            }
        }
    }
}


static void
test_stop_strings(void **state)
{
    static const char *const  s1[] = { "little girl" };    /* two tokens+ */
    static const char *const  s2[] = { "was a little" };   /* three */
    static const char *const  s3[] = { "ittl" };           /* mid-token */
    static const char *const  s4[] = { "girl named Bob", "named Lily" };
    static const char *const  s5[] = { "Lily. She", "ly" };
    static const char *const  s6[] = { "girl named Bob" };  /* never */
    static const char *const  s7[] = { "e was", "there was a" };
    static const char *const  s8[] = { ",", "Once" };      /* first byte */
    static const char *const  s9[] = { "par" };            /* the end */
    static const char *const  s10[] = { "é", "" };          /* no match */
    static const char *const  s11[] = { "girl", "little girl" };  /* same
                                                               end */

    check_stop(s1, 1);
    check_stop(s2, 1);
    check_stop(s3, 1);
    check_stop(s4, 2);
    check_stop(s5, 2);
    check_stop(s6, 1);
    check_stop(s7, 2);
    check_stop(s8, 2);
    check_stop(s9, 1);
    check_stop(s10, 2);
    check_stop(s11, 2);
}


/*
 * A stop string completed only by the detokenizer's flush at the finish
 * frame (byte tokens are held until then): finish "stop", no cut.
 */
static void
test_stop_at_flush(void **state)
{
    static const uint32_t  ids[] = { 432, 198, 172 };  /* ",", <0xC3>,
                                                           <0xA9> */
    run_t                  r;
    json_t                *b, *c0;
    uint64_t               p, c, k;

    for (int streaming = 0; streaming <= 1; streaming++) {
        run_init(&r, NGX_HTTP_DYNAMO_OAI_COMPLETIONS, streaming, 0, -1);
        run_stop(&r, "é");
        r.ids = ids;
        r.nids = 3;
        run_start(&r);
        run_frames(&r, 1, "length", 0);
        assert_int_equal(r.rc, NGX_HTTP_DYNAMO_STREAM_DONE);
        assert_string_equal(ngx_http_dynamo_stream_finish_reason(r.s), "stop");
        assert_int_equal(ngx_http_dynamo_stream_cut(r.s), 0);
        ngx_http_dynamo_stream_usage(r.s, &p, &c, &k);
        assert_int_equal(c, 3);
        if (streaming) {
            run_events(&r);
            assert_string_equal(r.text, ",");
        } else {
            b = parse(r.out.data, r.out.len);
            c0 = json_array_get(json_object_get(b, "choices"), 0);
            assert_string_equal(json_string_value(json_object_get(c0, "text")),
                                ",");
            assert_string_equal(json_string_value(json_object_get(c0,
                                "finish_reason")), "stop");
            json_decref(b);
        }
        run_free(&r);
    }
}


/* held text comes out as soon as it can no longer match */
static void
test_stop_release(void **state)
{
    run_t   r;
    char    line[64], ref[4096];
    size_t  i, at;

    run_init(&r, NGX_HTTP_DYNAMO_OAI_COMPLETIONS, 1, 0, -1);
    run_stop(&r, "girl named Bob");
    run_start(&r);
    ref_text(gen, NGEN, ref, sizeof(ref));
    at = (size_t) (strstr(ref, "girl") - ref);
    for (i = 0; i < NGEN; i++) {
        snprintf(line, sizeof(line), "{\"t\":[%u]}", gen[i]);
        assert_int_equal(feed(&r, line), NGX_HTTP_DYNAMO_STREAM_MORE);
        json_decref(r.events);
        r.done = 0;
        run_events(&r);
        ref_text(gen, i + 1, ref, sizeof(ref));
        if (strlen(ref) <= at) {
            assert_string_equal(r.text, ref);
        } else if (strstr(ref, "named L") != NULL) {
            /* "named L" can no longer become "named Bob" */
            assert_string_equal(r.text, ref);
        } else {
            /* "girl named" (or a prefix) is held */
            assert_true(strlen(r.text) == at);
        }
    }
    run_free(&r);
}


/* ---- logprobs ---- */

static void
test_logprobs_chat(void **state)
{
    run_t        r;
    char         ref[4096], joined[4096];
    size_t       i, j, n, o, ntok;
    json_t      *ev, *c0, *lp, *e, *top, *bytes;
    const char  *tk;

    for (int streaming = 0; streaming <= 1; streaming++) {
        run_init(&r, NGX_HTTP_DYNAMO_OAI_CHAT, streaming, 0, 2);
        run_start(&r);
        run_frames(&r, 3, "length", 0);
        assert_int_equal(r.rc, NGX_HTTP_DYNAMO_STREAM_DONE);
        assert_non_null(strstr(r.out.data, "\"logprob\":-9999.0,"));
        if (streaming) {
            run_events(&r);
        } else {
            r.events = json_array();
            json_array_append_new(r.events, parse(r.out.data, r.out.len));
        }
        o = 0;
        ntok = 0;
        for (i = 0; i < json_array_size(r.events); i++) {
            ev = json_array_get(r.events, i);
            c0 = json_array_get(json_object_get(ev, "choices"), 0);
            lp = json_object_get(c0, "logprobs");
            if (json_is_null(lp)) {
                continue;
            }
            assert_int_equal(json_object_size(lp), 1);
            n = json_array_size(json_object_get(lp, "content"));
            for (j = 0; j < n; j++) {
                e = json_array_get(json_object_get(lp, "content"), j);
                assert_int_equal(json_object_size(e), 4);
                tk = json_string_value(json_object_get(e, "token"));
                assert_non_null(tk);
                assert_true(json_is_real(json_object_get(e, "logprob")));
                bytes = json_object_get(e, "bytes");
                assert_int_equal(json_array_size(bytes), strlen(tk));
                for (size_t b = 0; b < strlen(tk); b++) {
                    assert_int_equal(json_integer_value(
                        json_array_get(bytes, b)), (unsigned char) tk[b]);
                }
                memcpy(joined + o, tk, strlen(tk));
                o += strlen(tk);
                top = json_object_get(e, "top_logprobs");
                assert_int_equal(json_array_size(top), 2);   /* asked 2 */
                /* the first alternative is the sampled token */
                assert_string_equal(json_string_value(json_object_get(
                    json_array_get(top, 0), "token")), tk);
                assert_true(json_real_value(json_object_get(
                    json_array_get(top, 1), "logprob")) == -1.0);
                ntok++;
            }
        }
        joined[o] = '\0';
        assert_int_equal(ntok, NGEN);
        ref_text(gen, NGEN, ref, sizeof(ref));
        /* token texts add up to the text */
        assert_string_equal(joined, ref);
        run_free(&r);
    }
}


static void
test_logprobs_completions(void **state)
{
    run_t        r;
    char         ref[4096], joined[4096];
    size_t       i, o;
    json_t      *b, *lp, *tokens, *vals, *tops, *offs;
    void        *it;
    const char  *tk;

    run_init(&r, NGX_HTTP_DYNAMO_OAI_COMPLETIONS, 0, 0, 3);
    run_start(&r);
    run_frames(&r, 4, "length", 0);
    assert_int_equal(r.rc, NGX_HTTP_DYNAMO_STREAM_DONE);
    b = parse(r.out.data, r.out.len);
    lp = json_object_get(json_array_get(json_object_get(b, "choices"), 0),
                         "logprobs");
    assert_int_equal(json_object_size(lp), 4);
    tokens = json_object_get(lp, "tokens");
    vals = json_object_get(lp, "token_logprobs");
    tops = json_object_get(lp, "top_logprobs");
    offs = json_object_get(lp, "text_offset");
    assert_int_equal(json_array_size(tokens), NGEN);
    assert_int_equal(json_array_size(vals), NGEN);
    assert_int_equal(json_array_size(tops), NGEN);
    assert_int_equal(json_array_size(offs), NGEN);
    o = 0;
    for (i = 0; i < NGEN; i++) {
        tk = json_string_value(json_array_get(tokens, i));
        assert_int_equal(json_integer_value(json_array_get(offs, i)), o);
        memcpy(joined + o, tk, strlen(tk));   /* ASCII text: chars = bytes */
        o += strlen(tk);
        assert_true(json_is_real(json_array_get(vals, i)));
        /* the sampled token first, then up to 3 others, keys unique
           (the sampled id is also the worker's first alternative) */
        it = json_object_iter(json_array_get(tops, i));
        assert_string_equal(json_object_iter_key(it), tk);
        assert_int_equal(json_object_size(json_array_get(tops, i)), 3);
    }
    joined[o] = '\0';
    ref_text(gen, NGEN, ref, sizeof(ref));
    assert_string_equal(joined, ref);
    json_decref(b);
    run_free(&r);
}


/* byte-fallback tokens: "▁", <0xC3>, <0xA9> ("é" in bytes), "▁the" */
static void
test_byte_tokens(void **state)
{
    static const uint32_t  ids[] = { 410, 198, 172, 265 };
    run_t                  r;
    json_t                *b, *content, *e;
    const char            *tk;
    size_t                 i, nbytes;

    run_init(&r, NGX_HTTP_DYNAMO_OAI_CHAT, 0, 0, 0);
    r.ids = ids;
    r.nids = 4;
    run_start(&r);
    run_frames(&r, 1, "length", 0);
    assert_int_equal(r.rc, NGX_HTTP_DYNAMO_STREAM_DONE);
    b = parse(r.out.data, r.out.len);
    assert_string_equal(json_string_value(json_object_get(json_object_get(
        json_array_get(json_object_get(b, "choices"), 0), "message"),
        "content")), " é the");
    content = json_object_get(json_object_get(json_array_get(
        json_object_get(b, "choices"), 0), "logprobs"), "content");
    assert_int_equal(json_array_size(content), 4);
    nbytes = 0;
    for (i = 0; i < 4; i++) {
        e = json_array_get(content, i);
        tk = json_string_value(json_object_get(e, "token"));
        if (strncmp(tk, "bytes:\\x", 8) == 0) {
            assert_int_equal(json_array_size(json_object_get(e, "bytes")), 1);
            assert_int_equal(json_integer_value(json_array_get(
                json_object_get(e, "bytes"), 0)), strtol(tk + 8, NULL, 16));
            assert_true(strtol(tk + 8, NULL, 16) >= 0x80);
            nbytes++;
        }
        assert_int_equal(json_array_size(json_object_get(e, "top_logprobs")),
                         0);
    }
    assert_int_equal(nbytes, 2);
    assert_string_equal(json_string_value(json_object_get(
        json_array_get(content, 1), "token")), "bytes:\\xc3");
    assert_string_equal(json_string_value(json_object_get(
        json_array_get(content, 3), "token")), " the");
    json_decref(b);
    run_free(&r);
}


/* ---- failures ---- */

static void
check_fail(int streaming, const char *line, const char *message)
{
    run_t   r;
    json_t  *last, *err;
    size_t  mark;

    run_init(&r, NGX_HTTP_DYNAMO_OAI_CHAT, streaming, 1, -1);
    run_start(&r);
    assert_int_equal(feed(&r, "{\"t\":[432,383]}"),
                     NGX_HTTP_DYNAMO_STREAM_MORE);
    mark = r.out.len;
    if (line) {
        assert_int_equal(feed(&r, line), NGX_HTTP_DYNAMO_STREAM_FAILED);
    } else {
        ngx_http_dynamo_stream_fail(r.s, message, &r.out);
    }
    assert_string_equal(ngx_http_dynamo_stream_error(r.s), message);
    assert_null(ngx_http_dynamo_stream_finish_reason(r.s));
    if (!streaming) {
        assert_int_equal(r.out.len, 0);
    } else {
        run_events(&r);
        assert_true(r.done);
        last = json_array_get(r.events, json_array_size(r.events) - 1);
        assert_int_equal(json_object_size(last), 1);
        err = json_object_get(last, "error");
        assert_int_equal(json_object_size(err), 4);
        assert_string_equal(json_string_value(json_object_get(err, "message")),
                            message);
        assert_string_equal(json_string_value(json_object_get(err, "type")),
                            "server_error");
        assert_true(json_is_null(json_object_get(err, "param")));
        assert_true(json_is_null(json_object_get(err, "code")));
    }
    /* nothing after */
    mark = r.out.len;
    assert_int_equal(feed(&r, "{\"t\":[432]}"), NGX_HTTP_DYNAMO_STREAM_FAILED);
    ngx_http_dynamo_stream_fail(r.s, "again", &r.out);
    assert_int_equal(r.out.len, mark);
    run_free(&r);
}


static void
test_failures(void **state)
{
    static const char *const  bad[] = {
        "not json", "{\"t\":[512]}", "{\"t\":[1],\"lp\":[0]}x",
        "{\"finish\":\"stop\"}", "{\"t\":[432],\"finish\":\"stop\"}",
        "{\"t\":[432],\"t\":[1]}",
    };
    const char  *fin_err = "{\"finish\":\"error\",\"prompt_tokens\":5,"
                           "\"completion_tokens\":2,\"cached_tokens\":0,"
                           "\"preemptions\":0,\"error\":\"KV \\\"pool\\\"\"}";
    const char  *fin_can = "{\"finish\":\"cancelled\",\"prompt_tokens\":5,"
                           "\"completion_tokens\":2,\"cached_tokens\":0,"
                           "\"preemptions\":0}";
    size_t       i;

    for (int s = 0; s <= 1; s++) {
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            check_fail(s, bad[i], "worker sent a malformed frame");
        }
        check_fail(s, fin_err, "KV \"pool\"");
        check_fail(s, fin_can, "the worker cancelled the request");
        check_fail(s, NULL, "upstream closed\n early");
    }
}


/* logprobs asked for, frame without them */
static void
test_lp_missing(void **state)
{
    run_t  r;

    run_init(&r, NGX_HTTP_DYNAMO_OAI_COMPLETIONS, 0, 0, 1);
    run_start(&r);
    assert_int_equal(feed(&r, "{\"t\":[432]}"), NGX_HTTP_DYNAMO_STREAM_FAILED);
    assert_string_equal(ngx_http_dynamo_stream_error(r.s),
                        "worker sent a malformed frame");
    assert_int_equal(r.out.len, 0);
    run_free(&r);
}


static void
test_after_done(void **state)
{
    run_t   r;
    size_t  mark;

    run_init(&r, NGX_HTTP_DYNAMO_OAI_CHAT, 1, 0, -1);
    run_start(&r);
    run_frames(&r, 5, "length", 0);
    assert_int_equal(r.rc, NGX_HTTP_DYNAMO_STREAM_DONE);
    mark = r.out.len;
    assert_int_equal(feed(&r, "{\"t\":[432]}"), NGX_HTTP_DYNAMO_STREAM_DONE);
    assert_int_equal(feed(&r, "garbage"), NGX_HTTP_DYNAMO_STREAM_DONE);
    ngx_http_dynamo_stream_fail(r.s, "late", &r.out);
    assert_int_equal(r.out.len, mark);
    assert_null(ngx_http_dynamo_stream_error(r.s));
    run_free(&r);
}


/* a finish frame with no tokens before it; special tokens skipped */
static void
test_empty_and_special(void **state)
{
    run_t    r;
    json_t  *b;

    run_init(&r, NGX_HTTP_DYNAMO_OAI_CHAT, 1, 1, -1);
    run_start(&r);
    assert_int_equal(feed(&r, "{\"finish\":\"stop\",\"prompt_tokens\":5,"
                              "\"completion_tokens\":0,\"cached_tokens\":5,"
                              "\"preemptions\":0}"),
                     NGX_HTTP_DYNAMO_STREAM_DONE);
    run_events(&r);
    assert_true(r.done);
    assert_string_equal(r.text, "");
    /* role, finish with an empty delta, usage */
    assert_int_equal(json_array_size(r.events), 3);
    assert_int_equal(json_object_size(json_object_get(json_array_get(
        json_object_get(json_array_get(r.events, 1), "choices"), 0),
        "delta")), 0);
    run_free(&r);

    /* </s> (2) is special: skipped from the text, counted as a token */
    run_init(&r, NGX_HTTP_DYNAMO_OAI_COMPLETIONS, 0, 0, -1);
    run_start(&r);
    assert_int_equal(feed(&r, "{\"t\":[432,2]}"), NGX_HTTP_DYNAMO_STREAM_MORE);
    assert_int_equal(feed(&r, "{\"finish\":\"stop\",\"prompt_tokens\":5,"
                              "\"completion_tokens\":2,\"cached_tokens\":0,"
                              "\"preemptions\":0}"),
                     NGX_HTTP_DYNAMO_STREAM_DONE);
    b = parse(r.out.data, r.out.len);
    assert_string_equal(json_string_value(json_object_get(json_array_get(
        json_object_get(b, "choices"), 0), "text")), ",");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(b,
        "usage"), "completion_tokens")), 2);
    json_decref(b);
    run_free(&r);

    run_init(&r, NGX_HTTP_DYNAMO_OAI_COMPLETIONS, 0, 0, -1);
    r.req.skip_special_tokens = 0;
    run_start(&r);
    assert_int_equal(feed(&r, "{\"t\":[432,2]}"), NGX_HTTP_DYNAMO_STREAM_MORE);
    assert_int_equal(feed(&r, "{\"finish\":\"stop\",\"prompt_tokens\":5,"
                              "\"completion_tokens\":2,\"cached_tokens\":0,"
                              "\"preemptions\":0}"),
                     NGX_HTTP_DYNAMO_STREAM_DONE);
    b = parse(r.out.data, r.out.len);
    assert_string_equal(json_string_value(json_object_get(json_array_get(
        json_object_get(b, "choices"), 0), "text")), ",</s>");
    json_decref(b);
    run_free(&r);
}


/* the client's model name and the id are escaped; bad UTF-8 replaced */
static void
test_escaping(void **state)
{
    run_t    r;
    json_t  *b;

    run_init(&r, NGX_HTTP_DYNAMO_OAI_COMPLETIONS, 0, 0, -1);
    r.conf.model = "m\"o\\d\n\x01\xff\xc3(l/é";
    r.conf.id = "cmpl-\t";
    run_start(&r);
    run_frames(&r, 9, "length", 0);
    b = parse(r.out.data, r.out.len);
    assert_string_equal(json_string_value(json_object_get(b, "model")),
                        "m\"o\\d\n\x01\xef\xbf\xbd\xef\xbf\xbd(l/é");
    assert_string_equal(json_string_value(json_object_get(b, "id")),
                        "cmpl-\t");
    json_decref(b);
    run_free(&r);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_frame_parse),
        cmocka_unit_test(test_frame_bad),
        cmocka_unit_test(test_frame_reals),
        cmocka_unit_test(test_chat_stream),
        cmocka_unit_test(test_completions_stream),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_stop_strings),
        cmocka_unit_test(test_stop_release),
        cmocka_unit_test(test_stop_at_flush),
        cmocka_unit_test(test_logprobs_chat),
        cmocka_unit_test(test_logprobs_completions),
        cmocka_unit_test(test_byte_tokens),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_lp_missing),
        cmocka_unit_test(test_after_done),
        cmocka_unit_test(test_empty_and_special),
        cmocka_unit_test(test_escaping),
    };

    return cmocka_run_group_tests_name("ngx_http_dynamo_stream", tests,
                                       setup, teardown);
}
