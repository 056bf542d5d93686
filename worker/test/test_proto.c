/*
 * Tests for the internal protocol (dw_proto.c, dw_proto_frame.c): request
 * parsing (every field, every error names its field), frame encoding
 * against hand-written lines and round trips through the client parser,
 * the error body, and the disaggregation parts (dw_proto_prefill.c): the
 * /v1/prefill body, the first-token payload, the finish frame's prefill
 * fields.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include <jansson.h>

#include "dw_proto.h"
#include "dw_proto_int.h"

static int
parse(const char *body, uint32_t vocab, dw_proto_req_t *req,
    dw_proto_err_t *err)
{
    return dw_proto_parse_request(body, strlen(body), vocab, req, err);
}

static void
test_minimal_defaults(void **state)
{
    dw_proto_req_t  req;
    dw_proto_err_t  err;
    dw_sampling_t   def;

    assert_int_equal(parse("{\"token_ids\":[1,403,407]}", 512, &req, &err),
                     0);
    assert_int_equal(req.n_tokens, 3);
    assert_int_equal(req.token_ids[0], 1);
    assert_int_equal(req.token_ids[2], 407);
    assert_string_equal(req.request_id, "");
    assert_string_equal(req.prefill_worker, "");
    dw_sampling_defaults(&def);
    assert_int_equal(req.sp.max_tokens, DW_PROTO_MAX_TOKENS_DEF);
    assert_int_equal(req.sp.logprobs, -1);
    assert_true(req.sp.temperature == def.temperature);
    assert_true(req.sp.top_p == def.top_p);
    assert_int_equal(req.sp.top_k, def.top_k);
    assert_int_equal(req.sp.has_seed, 0);
    assert_int_equal(req.sp.ignore_eos, 0);
    assert_int_equal(req.sp.n_stop_ids, 0);
    dw_proto_req_free(&req);
    assert_null(req.token_ids);
}

static void
test_every_field(void **state)
{
    dw_proto_req_t  req;
    dw_proto_err_t  err;
    const char     *body =
        "{\"v\":1,\"request_id\":\"req-42\",\"token_ids\":[5,6,7,8],"
        "\"max_tokens\":99,\"sampling\":{\"temperature\":0.5,"
        "\"top_p\":0.875,\"top_k\":40,\"min_p\":0.25,\"seed\":"
        "9223372036854775807,\"repetition_penalty\":1.5,"
        "\"presence_penalty\":-2,\"frequency_penalty\":0.75},"
        "\"logprobs\":20,\"ignore_eos\":true,\"stop_token_ids\":[2,7],"
        "\"hints\":{\"prefill_worker\":\"10.0.0.1:8000\"}}";

    assert_int_equal(parse(body, 0, &req, &err), 0);
    assert_string_equal(req.request_id, "req-42");
    assert_int_equal(req.n_tokens, 4);
    assert_int_equal(req.token_ids[3], 8);
    assert_int_equal(req.sp.max_tokens, 99);
    assert_true(req.sp.temperature == 0.5f);
    assert_true(req.sp.top_p == 0.875f);
    assert_int_equal(req.sp.top_k, 40);
    assert_true(req.sp.min_p == 0.25f);
    assert_int_equal(req.sp.has_seed, 1);
    assert_true(req.sp.seed == 9223372036854775807ULL);
    assert_true(req.sp.repetition_penalty == 1.5f);
    assert_true(req.sp.presence_penalty == -2.0f);
    assert_true(req.sp.frequency_penalty == 0.75f);
    assert_int_equal(req.sp.logprobs, 20);
    assert_int_equal(req.sp.ignore_eos, 1);
    assert_int_equal(req.sp.n_stop_ids, 2);
    assert_int_equal(req.sp.stop_ids[0], 2);
    assert_int_equal(req.sp.stop_ids[1], 7);
    assert_string_equal(req.prefill_worker, "10.0.0.1:8000");
    dw_proto_req_free(&req);

    /* null means "default"; an integer is a valid number */
    assert_int_equal(parse("{\"token_ids\":[0],\"max_tokens\":null,"
                           "\"sampling\":{\"temperature\":1,\"top_k\":null},"
                           "\"logprobs\":0}", 1, &req, &err), 0);
    assert_int_equal(req.sp.max_tokens, DW_PROTO_MAX_TOKENS_DEF);
    assert_true(req.sp.temperature == 1.0f);
    assert_int_equal(req.sp.logprobs, 0);
    dw_proto_req_free(&req);
}

typedef struct {
    const char  *body;
    const char  *field;     /* expected err.field */
} bad_case_t;

static const bad_case_t  bad_cases[] = {
    { "", "" },
    { "{", "" },
    { "[1,2]", "" },
    { "{\"token_ids\":[1],}", "" },
    { "{\"token_ids\":[1],\"token_ids\":[2]}", "" },
    { "{}", "token_ids" },
    { "{\"max_tokens\":5}", "token_ids" },
    { "{\"token_ids\":[]}", "token_ids" },
    { "{\"token_ids\":\"1 2\"}", "token_ids" },
    { "{\"token_ids\":null}", "token_ids" },
    { "{\"token_ids\":[1,-1]}", "token_ids[1]" },
    { "{\"token_ids\":[1,2,512]}", "token_ids[2]" },
    { "{\"token_ids\":[1.5]}", "token_ids[0]" },
    { "{\"token_ids\":[1],\"v\":2}", "v" },
    { "{\"token_ids\":[1],\"v\":\"1\"}", "v" },
    { "{\"token_ids\":[1],\"request_id\":7}", "request_id" },
    { "{\"token_ids\":[1],\"request_id\":\"a b\"}", "request_id" },
    { "{\"token_ids\":[1],\"max_tokens\":0}", "max_tokens" },
    { "{\"token_ids\":[1],\"max_tokens\":4294967296}", "max_tokens" },
    { "{\"token_ids\":[1],\"max_tokens\":\"5\"}", "max_tokens" },
    { "{\"token_ids\":[1],\"logprobs\":21}", "logprobs" },
    { "{\"token_ids\":[1],\"logprobs\":-1}", "logprobs" },
    { "{\"token_ids\":[1],\"ignore_eos\":1}", "ignore_eos" },
    { "{\"token_ids\":[1],\"stop_token_ids\":[1,2,3,4,5,6,7,8,9,10,11,12,"
      "13,14,15,16,17]}", "stop_token_ids" },
    { "{\"token_ids\":[1],\"stop_token_ids\":[1,600]}", "stop_token_ids[1]" },
    { "{\"token_ids\":[1],\"sampling\":[]}", "sampling" },
    { "{\"token_ids\":[1],\"sampling\":{\"temperature\":-0.1}}",
      "sampling.temperature" },
    { "{\"token_ids\":[1],\"sampling\":{\"temperature\":\"hot\"}}",
      "sampling.temperature" },
    { "{\"token_ids\":[1],\"sampling\":{\"top_p\":0}}", "sampling.top_p" },
    { "{\"token_ids\":[1],\"sampling\":{\"top_p\":1e-300}}", "sampling.top_p" },
    { "{\"token_ids\":[1],\"sampling\":{\"repetition_penalty\":1e-300}}",
      "sampling.repetition_penalty" },
    { "{\"token_ids\":[1],\"sampling\":{\"top_p\":1.01}}", "sampling.top_p" },
    { "{\"token_ids\":[1],\"sampling\":{\"top_k\":-2}}", "sampling.top_k" },
    { "{\"token_ids\":[1],\"sampling\":{\"top_k\":1.5}}", "sampling.top_k" },
    { "{\"token_ids\":[1],\"sampling\":{\"min_p\":2}}", "sampling.min_p" },
    { "{\"token_ids\":[1],\"sampling\":{\"seed\":-1}}", "sampling.seed" },
    { "{\"token_ids\":[1],\"sampling\":{\"repetition_penalty\":0}}",
      "sampling.repetition_penalty" },
    { "{\"token_ids\":[1],\"sampling\":{\"presence_penalty\":2.5}}",
      "sampling.presence_penalty" },
    { "{\"token_ids\":[1],\"sampling\":{\"frequency_penalty\":-3}}",
      "sampling.frequency_penalty" },
    { "{\"token_ids\":[1],\"sampling\":{\"temprature\":1}}",
      "sampling.temprature" },
    { "{\"token_ids\":[1],\"hints\":5}", "hints" },
    { "{\"token_ids\":[1],\"hints\":{\"prefill_worker\":5}}",
      "hints.prefill_worker" },
    { "{\"token_ids\":[1],\"hints\":{\"decode\":\"x\"}}", "hints.decode" },
    { "{\"token_ids\":[1],\"stream\":true}", "stream" },
};

static void
test_errors_name_the_field(void **state)
{
    dw_proto_req_t  req;
    dw_proto_err_t  err;
    size_t          i;

    for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        if (parse(bad_cases[i].body, 512, &req, &err) != -1) {
            fail_msg("case %zu accepted: %s", i, bad_cases[i].body);
        }
        assert_null(req.token_ids);
        if (strcmp(err.field, bad_cases[i].field) != 0) {
            fail_msg("case %zu (%s): field '%s', want '%s' (%s)", i,
                     bad_cases[i].body, err.field, bad_cases[i].field,
                     err.msg);
        }
        assert_true(strlen(err.msg) > 0);
        /* the message starts with the field it names */
        assert_memory_equal(err.msg, err.field, strlen(err.field));
    }
}

static void
test_request_id_limit(void **state)
{
    dw_proto_req_t  req;
    dw_proto_err_t  err;
    char            body[512];
    char            id[DW_PROTO_ID_MAX + 2];

    memset(id, 'x', sizeof(id));
    id[DW_PROTO_ID_MAX] = '\0';
    snprintf(body, sizeof(body), "{\"token_ids\":[1],\"request_id\":\"%s\"}",
             id);
    assert_int_equal(parse(body, 0, &req, &err), 0);
    assert_int_equal(strlen(req.request_id), DW_PROTO_ID_MAX);
    dw_proto_req_free(&req);
    id[DW_PROTO_ID_MAX] = 'x';
    id[DW_PROTO_ID_MAX + 1] = '\0';
    snprintf(body, sizeof(body), "{\"token_ids\":[1],\"request_id\":\"%s\"}",
             id);
    assert_int_equal(parse(body, 0, &req, &err), -1);
    assert_string_equal(err.field, "request_id");
}

static dw_output_t
tok(uint32_t id, float lp, uint32_t n_top)
{
    dw_output_t  o;
    uint32_t     j;

    memset(&o, 0, sizeof(o));
    o.kind = DW_OUT_TOKEN;
    o.token = id;
    o.logprob = lp;
    o.n_top = n_top;
    for (j = 0; j < n_top; j++) {
        o.top_ids[j] = id + j;
        o.top_logprobs[j] = lp - (float) j * 0.5f;
    }
    return o;
}

static void
test_token_frame_exact(void **state)
{
    dw_output_t         a, b;
    const dw_output_t  *outs[2];
    kvr_buf_t           buf;

    memset(&buf, 0, sizeof(buf));
    a = tok(432, -0.5f, 0);
    b = tok(4294967295U, -1.25f, 2);
    outs[0] = &a;
    outs[1] = &b;
    assert_int_equal(dw_proto_encode_tokens(&buf, outs, 2, 0), 0);
    assert_string_equal(buf.data, "{\"t\":[432,4294967295]}\n");
    kvr_buf_reset(&buf);
    assert_int_equal(dw_proto_encode_tokens(&buf, outs, 1, 1), 0);
    assert_string_equal(buf.data, "{\"t\":[432],\"lp\":[-0.5]}\n");
    kvr_buf_reset(&buf);
    assert_int_equal(dw_proto_encode_tokens(&buf, outs, 2, 1), 0);
    assert_string_equal(buf.data,
        "{\"t\":[432,4294967295],\"lp\":[-0.5,-1.25],"
        "\"top\":[[],[[4294967295,-1.25],[0,-1.75]]]}\n");
    kvr_buf_reset(&buf);
    /* -inf and NaN are not JSON: -9999 */
    a = tok(0, -INFINITY, 0);
    b = tok(1, NAN, 0);
    assert_int_equal(dw_proto_encode_tokens(&buf, outs, 2, 1), 0);
    assert_string_equal(buf.data, "{\"t\":[0,1],\"lp\":[-9999,-9999]}\n");
    assert_int_equal(dw_proto_encode_tokens(&buf, outs, 0, 1), -1);
    kvr_buf_free(&buf);
}

static uint64_t  rng = 0x9e3779b97f4a7c15ULL;

static uint32_t
rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t) (rng >> 11);
}

static void
test_token_frame_round_trip(void **state)
{
    static dw_output_t  outs[DW_PROTO_FRAME_TOKENS];
    const dw_output_t  *ptr[DW_PROTO_FRAME_TOKENS];
    dw_proto_frame_t   *f;
    kvr_buf_t           buf;
    char                err[128];
    uint32_t            n, i, j, iter, with_lp;
    float               lp;

    f = malloc(sizeof(*f));
    assert_non_null(f);
    memset(&buf, 0, sizeof(buf));
    for (iter = 0; iter < 500; iter++) {
        n = 1 + rnd() % DW_PROTO_FRAME_TOKENS;
        with_lp = rnd() % 2;
        for (i = 0; i < n; i++) {
            /* any float bit pattern that is a finite logprob */
            do {
                uint32_t  bits = rnd() | 0x80000000U;

                memcpy(&lp, &bits, sizeof(lp));
            } while (!isfinite(lp) || lp < -9999.0f);
            outs[i] = tok(rnd(), lp, rnd() % (DW_MAX_TOP_LOGPROBS + 1));
            ptr[i] = &outs[i];
        }
        kvr_buf_reset(&buf);
        assert_int_equal(dw_proto_encode_tokens(&buf, ptr, n, with_lp), 0);
        assert_int_equal(buf.data[buf.len - 1], '\n');
        assert_null(memchr(buf.data, '\n', buf.len - 1));
        if (dw_proto_parse_frame(buf.data, buf.len, f, err, sizeof(err))) {
            fail_msg("parse: %s: %.200s", err, buf.data);
        }
        assert_int_equal(f->finish, 0);
        assert_int_equal(f->n, n);
        assert_int_equal(f->has_lp, with_lp);
        for (i = 0; i < n; i++) {
            assert_int_equal(f->ids[i], outs[i].token);
            if (!with_lp) {
                continue;
            }
            /* %.9g round-trips a float bit-exactly */
            assert_memory_equal(&f->lp[i], &outs[i].logprob, sizeof(float));
            assert_int_equal(f->n_top[i], outs[i].n_top);
            for (j = 0; j < outs[i].n_top; j++) {
                assert_int_equal(f->top_ids[i][j], outs[i].top_ids[j]);
                assert_true(f->top_lp[i][j] == outs[i].top_logprobs[j]);
            }
        }
    }
    kvr_buf_free(&buf);
    free(f);
}

static void
test_finish_frame(void **state)
{
    dw_output_t        o;
    dw_proto_frame_t  *f;
    kvr_buf_t          buf;
    char               err[128];
    int                r;

    f = malloc(sizeof(*f));
    assert_non_null(f);
    memset(&buf, 0, sizeof(buf));
    memset(&o, 0, sizeof(o));
    o.kind = DW_OUT_FINISH;
    o.reason = DW_FINISH_LENGTH;
    o.prompt_tokens = 5;
    o.completion_tokens = 25;
    o.cached_tokens = 16;
    o.preemptions = 1;
    assert_int_equal(dw_proto_encode_finish(&buf, &o), 0);
    assert_string_equal(buf.data, "{\"finish\":\"length\",\"prompt_tokens\":5,"
                        "\"completion_tokens\":25,\"cached_tokens\":16,"
                        "\"preemptions\":1}\n");
    for (r = DW_FINISH_STOP; r <= DW_FINISH_ERROR; r++) {
        o.reason = (dw_finish_t) r;
        o.prompt_tokens = 4000000000U;
        snprintf(o.error, sizeof(o.error), "%s", r == DW_FINISH_ERROR
                 ? "backend \"cpu\" failed:\n\tline" : "");
        kvr_buf_reset(&buf);
        assert_int_equal(dw_proto_encode_finish(&buf, &o), 0);
        assert_int_equal(dw_proto_parse_frame(buf.data, buf.len, f, err,
                                              sizeof(err)), 0);
        assert_int_equal(f->finish, r);
        assert_int_equal(f->prompt_tokens, 4000000000U);
        assert_int_equal(f->completion_tokens, 25);
        assert_int_equal(f->cached_tokens, 16);
        assert_int_equal(f->preemptions, 1);
        assert_string_equal(f->error, o.error);
    }
    assert_string_equal(dw_proto_finish_name(DW_FINISH_CANCELLED),
                        "cancelled");
    assert_null(dw_proto_finish_name((dw_finish_t) 0));
    kvr_buf_free(&buf);
    free(f);
}

static void
test_parse_frame_rejects(void **state)
{
    static const char *const  bad[] = {
        "", "{}", "[]", "{\"t\":[]}", "{\"t\":[1],\"finish\":\"stop\"}",
        "{\"t\":[-1]}", "{\"t\":[1],\"lp\":[]}", "{\"t\":[1],\"top\":[[]]}",
        "{\"t\":[1],\"lp\":[0],\"top\":[[[1]]]}", "{\"finish\":\"done\"}",
        "{\"finish\":\"stop\"}", "{\"t\":[1]}\n{\"t\":[2]}",
        "{\"finish\":\"stop\",\"prompt_tokens\":1,\"completion_tokens\":1,"
        "\"cached_tokens\":1,\"preemptions\":-1}",
    };
    dw_proto_frame_t  *f;
    char               err[128];
    size_t             i;

    f = malloc(sizeof(*f));
    assert_non_null(f);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (dw_proto_parse_frame(bad[i], strlen(bad[i]), f, err,
                                 sizeof(err)) != -1)
        {
            fail_msg("accepted: %s", bad[i]);
        }
        assert_true(err[0] != '\0');
    }
    free(f);
}

static void
test_error_body(void **state)
{
    kvr_buf_t     buf;
    json_t       *root;
    json_error_t  jerr;

    memset(&buf, 0, sizeof(buf));
    assert_int_equal(dw_proto_encode_error(&buf, "invalid_request",
                     "sampling.top_p", "sampling.top_p: must be \"in\" (0, 1]"),
                     0);
    root = json_loadb(buf.data, buf.len, 0, &jerr);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(
        json_object_get(root, "error"), "field")), "sampling.top_p");
    assert_string_equal(json_string_value(json_object_get(
        json_object_get(root, "error"), "message")),
        "sampling.top_p: must be \"in\" (0, 1]");
    assert_string_equal(json_string_value(json_object_get(
        json_object_get(root, "error"), "type")), "invalid_request");
    json_decref(root);
    kvr_buf_reset(&buf);
    assert_int_equal(dw_proto_encode_error(&buf, "overloaded", NULL, "busy"),
                     0);
    assert_string_equal(buf.data, "{\"error\":{\"type\":\"overloaded\","
                        "\"message\":\"busy\"}}");
    kvr_buf_free(&buf);
}

/* Both parsers (fast token_ids path on and off) give the same result. */
static void
same_both_ways(const char *body, uint32_t vocab)
{
    dw_proto_req_t  a, b;
    dw_proto_err_t  ea, eb;
    int             ra, rb;

    ra = dw_proto_parse_request_opt(body, strlen(body), vocab, 1, &a, &ea);
    rb = dw_proto_parse_request_opt(body, strlen(body), vocab, 0, &b, &eb);
    if (ra != rb || strcmp(ea.field, eb.field) != 0
        || strcmp(ea.msg, eb.msg) != 0)
    {
        fail_msg("%s: fast %d '%s' '%s', slow %d '%s' '%s'", body, ra,
                 ea.field, ea.msg, rb, eb.field, eb.msg);
    }
    if (ra == 0) {
        assert_int_equal(a.n_tokens, b.n_tokens);
        assert_memory_equal(a.token_ids, b.token_ids,
                            a.n_tokens * sizeof(uint32_t));
        assert_int_equal(a.sp.max_tokens, b.sp.max_tokens);
        assert_string_equal(a.request_id, b.request_id);
        dw_proto_req_free(&a);
        dw_proto_req_free(&b);
    }
}

static void
test_fast_ids(void **state)
{
    static const char *const  bodies[] = {
        "{\"token_ids\":[1,2,3]}",
        " \n{ \"v\" : 1 , \"token_ids\" :\t[ 0 , 10,\r\n511 ] , "
        "\"max_tokens\":3}",
        "{\"request_id\":\"\\\"token_ids\\\":[9]\",\"token_ids\":[4]}",
        "{\"sampling\":{\"top_k\":1,\"x\":[\"]\"]},\"token_ids\":[4]}",
        "{\"sampling\":{\"top_k\":1},\"token_ids\":[4]}",
        "{\"token\\u005fids\":[5,6]}",
        "{\"token_ids\":[01]}",
        "{\"token_ids\":[1.0]}",
        "{\"token_ids\":[1e2]}",
        "{\"token_ids\":[-1]}",
        "{\"token_ids\":[512]}",
        "{\"token_ids\":[99999999999999999999999]}",
        "{\"token_ids\":[]}",
        "{\"token_ids\":[1,]}",
        "{\"token_ids\":[1 2]}",
        "{\"token_ids\":[1],\"token_ids\":[2]}",
        "{\"token_ids\":[1],\"max_tokens\":0}",
        "{\"token_ids\":[1,2,3],\"max_tokens\":5,}",
        "{\"token_ids\":[1,2,3]} x",
        "{\"token_ids\":[1,2,3]",
        "{\"token_ids\":[1,2,3",
        "{\"token_ids\":\"[1]\"}",
        "[{\"token_ids\":[1]}]",
        "{\"a\":{\"token_ids\":[1]}}",
    };
    size_t    i, start, end;
    uint32_t *ids, n;
    const char *b = "{\"v\":1, \"token_ids\": [7, 8 ,9] }";

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        same_both_ways(bodies[i], 512);
    }
    assert_int_equal(dw_proto_fast_ids(b, strlen(b), 0, &start, &end, &ids,
                                       &n), 1);
    assert_int_equal(n, 3);
    assert_int_equal(ids[2], 9);
    assert_int_equal(b[start], '[');
    assert_int_equal(b[end - 1], ']');
    assert_int_equal(end - start, strlen("[7, 8 ,9]"));
    free(ids);
    /* out of vocab and escaped keys are left to the general parser */
    assert_int_equal(dw_proto_fast_ids(b, strlen(b), 9, &start, &end, &ids,
                                       &n), 0);
}

/* ---- /v1/prefill (disaggregation) ---- */

#define PF_DESC  "{\"v\":1,\"model\":\"m\",\"base\":\"7f00\",\"rkey\":\"QUJD/w==\"}"
#define PF_KV    "\"kv\":{\"xfer_id\":\"18446744073709551615\",\"blocks\":[7,8]," \
                 "\"skip_blocks\":1,\"timeout_ms\":500,\"desc\":" PF_DESC "}"

static void
test_prefill_round_trip(void **state)
{
    static const char *const  gens[] = {
        "{\"token_ids\":[1,403,407,261,378],\"max_tokens\":7,\"request_id\":"
        "\"r-1\",\"sampling\":{\"temperature\":0.5,\"seed\":42,\"top_k\":3},"
        "\"logprobs\":2,\"hints\":{\"prefill_worker\":\"127.0.0.1:9\"}}",
        " {\"token_ids\" : [5, 6] } \n",
        "{\"sampling\":{\"top_p\":0.9},\"token_ids\":[9]}\r\n",
    };
    dw_proto_prefill_t  p, q;
    dw_proto_req_t      g;
    dw_proto_err_t      err;
    kvr_buf_t           buf;
    uint32_t            blocks[3] = { 0, 4000000000U, 17 };
    size_t              i;

    for (i = 0; i < sizeof(gens) / sizeof(gens[0]); i++) {
        memset(&p, 0, sizeof(p));
        memset(&buf, 0, sizeof(buf));
        p.xfer_id = i == 0 ? UINT64_MAX : (uint64_t) i;
        p.blocks = blocks;
        p.n_blocks = 3 - (uint32_t) i % 2;
        p.skip_blocks = (uint32_t) i;
        p.timeout_ms = 250 + (uint32_t) i;
        p.desc = PF_DESC;
        p.desc_len = strlen(PF_DESC);
        assert_int_equal(dw_proto_encode_prefill(&buf, gens[i],
                                                 strlen(gens[i]), &p), 0);
        if (dw_proto_parse_prefill(buf.data, buf.len, 512, &q, &err) != 0) {
            fail_msg("%s: %s: %s", buf.data, err.field, err.msg);
        }
        assert_int_equal(parse(gens[i], 512, &g, &err), 0);
        /* the generate part reads exactly as the generate body did */
        assert_int_equal(q.req.n_tokens, g.n_tokens);
        assert_memory_equal(q.req.token_ids, g.token_ids,
                            g.n_tokens * sizeof(uint32_t));
        assert_memory_equal(&q.req.sp, &g.sp, sizeof(g.sp));
        assert_string_equal(q.req.request_id, g.request_id);
        assert_true(q.xfer_id == p.xfer_id);
        assert_int_equal(q.n_blocks, p.n_blocks);
        assert_memory_equal(q.blocks, blocks, p.n_blocks * sizeof(uint32_t));
        assert_int_equal(q.skip_blocks, p.skip_blocks);
        assert_int_equal(q.timeout_ms, p.timeout_ms);
        assert_int_equal(q.desc_len, strlen(PF_DESC));
        assert_string_equal(q.desc, PF_DESC);
        dw_proto_prefill_free(&q);
        assert_null(q.blocks);
        dw_proto_req_free(&g);
        kvr_buf_free(&buf);
    }
    /* not an object: nothing to splice into */
    memset(&buf, 0, sizeof(buf));
    p.n_blocks = 1;
    assert_int_equal(dw_proto_encode_prefill(&buf, "[1]", 3, &p), -1);
    assert_int_equal(dw_proto_encode_prefill(&buf, "{}", 2, &p), 0);
    assert_string_equal(buf.data, "{\"kv\":{\"xfer_id\":\"2\",\"blocks\":[0],"
                        "\"skip_blocks\":2,\"timeout_ms\":252,\"desc\":"
                        PF_DESC "}}");
    kvr_buf_free(&buf);
    /* a generate worker does not take "kv" */
    assert_int_equal(parse("{\"token_ids\":[1]," PF_KV "}", 512, &g, &err),
                     -1);
    assert_string_equal(err.field, "kv");
}

static const bad_case_t  bad_prefill[] = {
    { "{\"token_ids\":[1]}", "kv" },
    { "{\"token_ids\":[1],\"kv\":null}", "kv" },
    { "{\"token_ids\":[1],\"kv\":[]}", "kv" },
    { "{\"token_ids\":[1],\"kv\":{\"blocks\":[1],\"skip_blocks\":0,"
      "\"timeout_ms\":1,\"desc\":{}}}", "kv.xfer_id" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":5,\"blocks\":[1],"
      "\"skip_blocks\":0,\"timeout_ms\":1,\"desc\":{}}}", "kv.xfer_id" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"05\"}}", "kv.xfer_id" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"\"}}", "kv.xfer_id" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"-1\"}}", "kv.xfer_id" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"18446744073709551616\"}}",
      "kv.xfer_id" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"1 \"}}", "kv.xfer_id" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"1\",\"skip_blocks\":0,"
      "\"timeout_ms\":1,\"desc\":{}}}", "kv.blocks" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"1\",\"blocks\":[]}}",
      "kv.blocks" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"1\",\"blocks\":{}}}",
      "kv.blocks" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"1\",\"blocks\":[1,-1]}}",
      "kv.blocks[1]" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"1\",\"blocks\":[4294967296]}}",
      "kv.blocks[0]" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"1\",\"blocks\":[\"1\"]}}",
      "kv.blocks[0]" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"1\",\"blocks\":[1],"
      "\"timeout_ms\":1,\"desc\":{}}}", "kv.skip_blocks" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"1\",\"blocks\":[1],"
      "\"skip_blocks\":2,\"timeout_ms\":1,\"desc\":{}}}", "kv.skip_blocks" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"1\",\"blocks\":[1],"
      "\"skip_blocks\":0.5,\"timeout_ms\":1,\"desc\":{}}}",
      "kv.skip_blocks" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"1\",\"blocks\":[1],"
      "\"skip_blocks\":0,\"desc\":{}}}", "kv.timeout_ms" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"1\",\"blocks\":[1],"
      "\"skip_blocks\":0,\"timeout_ms\":0,\"desc\":{}}}", "kv.timeout_ms" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"1\",\"blocks\":[1],"
      "\"skip_blocks\":0,\"timeout_ms\":\"5\",\"desc\":{}}}",
      "kv.timeout_ms" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"1\",\"blocks\":[1],"
      "\"skip_blocks\":0,\"timeout_ms\":5}}", "kv.desc" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"1\",\"blocks\":[1],"
      "\"skip_blocks\":0,\"timeout_ms\":5,\"desc\":\"{}\"}}", "kv.desc" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"1\",\"blocks\":[1],"
      "\"skip_blocks\":0,\"timeout_ms\":5,\"desc\":{},\"extra\":1}}",
      "kv.extra" },
    { "{\"token_ids\":[1],\"kv\":{\"xfer_id\":\"1\",\"xfer_id\":\"2\"}}", "" },
    { "{\"token_ids\":[1]," PF_KV "," PF_KV "}", "" },
};

static void
test_prefill_errors(void **state)
{
    dw_proto_prefill_t  p;
    dw_proto_err_t      err, gerr;
    dw_proto_req_t      g;
    char                body[1024];
    size_t              i, n;
    const char         *b;

    for (i = 0; i < sizeof(bad_prefill) / sizeof(bad_prefill[0]); i++) {
        b = bad_prefill[i].body;
        if (dw_proto_parse_prefill(b, strlen(b), 512, &p, &err) != -1) {
            fail_msg("case %zu accepted: %s", i, b);
        }
        assert_null(p.blocks);
        assert_null(p.desc);
        assert_null(p.req.token_ids);
        if (strcmp(err.field, bad_prefill[i].field) != 0) {
            fail_msg("case %zu (%s): field '%s', want '%s' (%s)", i, b,
                     err.field, bad_prefill[i].field, err.msg);
        }
        assert_true(strlen(err.msg) > 0);
        assert_memory_equal(err.msg, err.field, strlen(err.field));
    }
    /* the generate part's errors are unchanged, with or without a good kv
       member beside them */
    for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        b = bad_cases[i].body;
        assert_int_equal(parse(b, 512, &g, &gerr), -1);
        assert_int_equal(dw_proto_parse_prefill(b, strlen(b), 512, &p, &err),
                         -1);
        assert_string_equal(err.field, gerr.field);
        assert_string_equal(err.msg, gerr.msg);
        if (strncmp(b, "{\"", 2) != 0) {
            continue;
        }
        n = (size_t) snprintf(body, sizeof(body), "{" PF_KV ",%s", b + 1);
        assert_true(n < sizeof(body));
        assert_int_equal(dw_proto_parse_prefill(body, n, 512, &p, &err), -1);
        assert_null(p.req.token_ids);
        if (strcmp(err.field, bad_cases[i].field) != 0) {
            fail_msg("case %zu (%s): field '%s', want '%s' (%s)", i, body,
                     err.field, bad_cases[i].field, err.msg);
        }
        if (err.field[0] != '\0') {
            assert_string_equal(err.msg, gerr.msg);
        }
    }
    /* a good one, hand-written as PROTOCOL.md shows it */
    b = "{\"token_ids\":[1,2,3],\"max_tokens\":1," PF_KV "}";
    assert_int_equal(dw_proto_parse_prefill(b, strlen(b), 512, &p, &err), 0);
    assert_true(p.xfer_id == UINT64_MAX);
    assert_int_equal(p.n_blocks, 2);
    assert_int_equal(p.skip_blocks, 1);
    dw_proto_prefill_free(&p);
}

static void
test_first_token_payload(void **state)
{
    dw_output_t    o, d;
    unsigned char  buf[1024], bad[1024];
    uint32_t       n, j;
    int            len;

    for (n = 0; n <= DW_MAX_TOP_LOGPROBS; n++) {
        o = tok(4000000000U - n, -0.75f * (float) n, n);
        o.req_id = 99;
        len = dw_proto_encode_first(&o, buf, sizeof(buf));
        assert_int_equal(len, (int) DW_PROTO_FIRST_LEN(n));
        assert_true(len <= 1024);
        assert_int_equal(dw_proto_decode_first(buf, (size_t) len, &d), 0);
        assert_int_equal(d.kind, DW_OUT_TOKEN);
        assert_int_equal(d.token, o.token);
        assert_true(memcmp(&d.logprob, &o.logprob, sizeof(float)) == 0);
        assert_int_equal(d.n_top, n);
        for (j = 0; j < n; j++) {
            assert_int_equal(d.top_ids[j], o.top_ids[j]);
            assert_true(d.top_logprobs[j] == o.top_logprobs[j]);
        }
        /* every shorter or longer payload is refused */
        assert_int_equal(dw_proto_decode_first(buf, (size_t) len - 1, &d),
                         -1);
        memcpy(bad, buf, (size_t) len);
        bad[len] = 0;
        assert_int_equal(dw_proto_decode_first(bad, (size_t) len + 1, &d),
                         -1);
        /* a count that disagrees with the length, a wrong version */
        bad[9] = (unsigned char) (n + 1);
        assert_int_equal(dw_proto_decode_first(bad, (size_t) len, &d), -1);
        memcpy(bad, buf, (size_t) len);
        bad[0] = 2;
        assert_int_equal(dw_proto_decode_first(bad, (size_t) len, &d), -1);
        /* no room */
        assert_int_equal(dw_proto_encode_first(&o, buf, (size_t) len - 1),
                         -1);
    }
    /* -inf (a masked token) travels as is */
    o = tok(3, -INFINITY, 0);
    len = dw_proto_encode_first(&o, buf, sizeof(buf));
    assert_int_equal(dw_proto_decode_first(buf, (size_t) len, &d), 0);
    assert_true(isinf(d.logprob) && d.logprob < 0);
    /* more top pairs than a token may have */
    memset(bad, 0, sizeof(bad));
    bad[0] = DW_PROTO_FIRST_VERSION;
    bad[9] = DW_MAX_TOP_LOGPROBS + 1;
    assert_int_equal(dw_proto_decode_first(bad, DW_PROTO_FIRST_LEN(
                         DW_MAX_TOP_LOGPROBS + 1), &d), -1);
    o.n_top = DW_MAX_TOP_LOGPROBS + 1;
    assert_int_equal(dw_proto_encode_first(&o, buf, sizeof(buf)), -1);
    assert_int_equal(dw_proto_decode_first(buf, 0, &d), -1);
}

#define AGG_FRAME  "{\"finish\":\"stop\",\"prompt_tokens\":40," \
                   "\"completion_tokens\":3,\"cached_tokens\":32," \
                   "\"preemptions\":0"

static void
test_finish_frame_prefill(void **state)
{
    dw_output_t        o;
    dw_proto_frame_t  *f;
    kvr_buf_t          buf;
    char               err[128], want[256];
    int                p;
    static const char *const  bad[] = {
        "{\"finish\":\"stop\",\"prompt_tokens\":1,\"completion_tokens\":1,"
        "\"cached_tokens\":1,\"preemptions\":0,\"prefill\":\"elsewhere\"}",
        "{\"finish\":\"stop\",\"prompt_tokens\":1,\"completion_tokens\":1,"
        "\"cached_tokens\":1,\"preemptions\":0,\"prefill\":1}",
        "{\"finish\":\"stop\",\"prompt_tokens\":1,\"completion_tokens\":1,"
        "\"cached_tokens\":1,\"preemptions\":0,\"prefill\":\"local\"}",
        "{\"finish\":\"stop\",\"prompt_tokens\":1,\"completion_tokens\":1,"
        "\"cached_tokens\":1,\"preemptions\":0,\"prefill\":\"local\","
        "\"prefill_reason\":\"remote\"}",
        "{\"finish\":\"stop\",\"prompt_tokens\":1,\"completion_tokens\":1,"
        "\"cached_tokens\":1,\"preemptions\":0,\"prefill\":\"remote\","
        "\"prefill_reason\":\"short\"}",
        "{\"finish\":\"stop\",\"prompt_tokens\":1,\"completion_tokens\":1,"
        "\"cached_tokens\":1,\"preemptions\":0,\"prefill_reason\":\"short\"}",
    };
    size_t  i;

    f = malloc(sizeof(*f));
    assert_non_null(f);
    memset(&buf, 0, sizeof(buf));
    memset(&o, 0, sizeof(o));
    o.kind = DW_OUT_FINISH;
    o.reason = DW_FINISH_STOP;
    o.prompt_tokens = 40;
    o.completion_tokens = 3;
    o.cached_tokens = 32;
    for (p = DW_PREFILL_AGG; p <= DW_PREFILL_LOCAL_SELF; p++) {
        o.prefill = (dw_prefill_t) p;
        kvr_buf_reset(&buf);
        assert_int_equal(dw_proto_encode_finish(&buf, &o), 0);
        if (p == DW_PREFILL_AGG) {
            snprintf(want, sizeof(want), "%s", "");
        } else if (p == DW_PREFILL_REMOTE) {
            snprintf(want, sizeof(want), ",\"prefill\":\"remote\"");
        } else {
            snprintf(want, sizeof(want), ",\"prefill\":\"local\","
                     "\"prefill_reason\":\"%s\"",
                     dw_proto_prefill_name((dw_prefill_t) p));
        }
        assert_true(strlen(buf.data) > strlen(want) + 2);
        assert_memory_equal(buf.data + buf.len - 2 - strlen(want), want,
                            strlen(want));
        /* the frame starts as an aggregated one */
        assert_memory_equal(buf.data, AGG_FRAME, strlen(AGG_FRAME));
        assert_int_equal(buf.data[strlen(AGG_FRAME)],
                         p == DW_PREFILL_AGG ? '}' : ',');
        f->prefill = DW_PREFILL_LOCAL_SELF;
        assert_int_equal(dw_proto_parse_frame(buf.data, buf.len, f, err,
                                              sizeof(err)), 0);
        assert_int_equal(f->prefill, p);
        assert_int_equal(f->cached_tokens, 32);
    }
    assert_string_equal(dw_proto_prefill_name(DW_PREFILL_LOCAL_BUSY), "busy");
    assert_null(dw_proto_prefill_name(DW_PREFILL_AGG));
    assert_null(dw_proto_prefill_name((dw_prefill_t) 99));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (dw_proto_parse_frame(bad[i], strlen(bad[i]), f, err,
                                 sizeof(err)) != -1)
        {
            fail_msg("accepted: %s", bad[i]);
        }
        assert_true(strncmp(err, "prefill", 7) == 0);
    }
    kvr_buf_free(&buf);
    free(f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_every_field),
        cmocka_unit_test(test_errors_name_the_field),
        cmocka_unit_test(test_request_id_limit),
        cmocka_unit_test(test_token_frame_exact),
        cmocka_unit_test(test_token_frame_round_trip),
        cmocka_unit_test(test_finish_frame),
        cmocka_unit_test(test_parse_frame_rejects),
        cmocka_unit_test(test_error_body),
        cmocka_unit_test(test_fast_ids),
        cmocka_unit_test(test_prefill_round_trip),
        cmocka_unit_test(test_prefill_errors),
        cmocka_unit_test(test_first_token_payload),
        cmocka_unit_test(test_finish_frame_prefill),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
