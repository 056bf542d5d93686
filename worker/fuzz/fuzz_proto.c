/*
 * libFuzzer target for the internal protocol's parsers: the request body
 * (dw_proto_parse_request) and a frame line (dw_proto_parse_frame). Any
 * frame that parses must survive encode -> parse unchanged; a parsed
 * request must be self-consistent, and the fast token_ids path must agree
 * with the general parser on every input (result, error, every field).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dw_proto.h"
#include "dw_proto_int.h"

static dw_proto_frame_t  f1, f2;
static dw_output_t       outs[DW_PROTO_FRAME_TOKENS];

static void
check_frame_round_trip(void)
{
    const dw_output_t  *ptr[DW_PROTO_FRAME_TOKENS];
    kvr_buf_t           b;
    char                err[128];
    uint32_t            i, j;

    memset(&b, 0, sizeof(b));
    if (f1.finish != 0) {
        memset(&outs[0], 0, sizeof(outs[0]));
        outs[0].kind = DW_OUT_FINISH;
        outs[0].reason = (dw_finish_t) f1.finish;
        outs[0].prompt_tokens = f1.prompt_tokens;
        outs[0].completion_tokens = f1.completion_tokens;
        outs[0].cached_tokens = f1.cached_tokens;
        outs[0].preemptions = f1.preemptions;
        memcpy(outs[0].error, f1.error, sizeof(outs[0].error));
        if (dw_proto_encode_finish(&b, &outs[0]) != 0
            || dw_proto_parse_frame(b.data, b.len, &f2, err, sizeof(err))
            || f2.finish != f1.finish
            || f2.prompt_tokens != f1.prompt_tokens
            || f2.completion_tokens != f1.completion_tokens)
        {
            abort();
        }
        kvr_buf_free(&b);
        return;
    }
    for (i = 0; i < f1.n; i++) {
        memset(&outs[i], 0, sizeof(outs[i]));
        outs[i].kind = DW_OUT_TOKEN;
        outs[i].token = f1.ids[i];
        outs[i].logprob = f1.has_lp ? f1.lp[i] : 0;
        outs[i].n_top = f1.n_top[i];
        for (j = 0; j < f1.n_top[i]; j++) {
            outs[i].top_ids[j] = f1.top_ids[i][j];
            outs[i].top_logprobs[j] = f1.top_lp[i][j];
        }
        ptr[i] = &outs[i];
    }
    if (dw_proto_encode_tokens(&b, ptr, f1.n, f1.has_lp) != 0
        || dw_proto_parse_frame(b.data, b.len, &f2, err, sizeof(err)) != 0
        || f2.n != f1.n)
    {
        abort();
    }
    for (i = 0; i < f1.n; i++) {
        if (f2.ids[i] != f1.ids[i]) {
            abort();
        }
    }
    kvr_buf_free(&b);
}

static void
check_fast_path(const char *body, size_t len, uint32_t vocab,
    const dw_proto_req_t *req, const dw_proto_err_t *err, int rc)
{
    dw_proto_req_t  slow;
    dw_proto_err_t  serr;
    int             src;

    src = dw_proto_parse_request_opt(body, len, vocab, 0, &slow, &serr);
    if (src != rc || strcmp(serr.field, err->field) != 0
        || strcmp(serr.msg, err->msg) != 0)
    {
        abort();
    }
    if (rc == 0) {
        if (slow.n_tokens != req->n_tokens
            || memcmp(slow.token_ids, req->token_ids,
                      slow.n_tokens * sizeof(uint32_t)) != 0
            || memcmp(&slow.sp, &req->sp, sizeof(slow.sp)) != 0
            || strcmp(slow.request_id, req->request_id) != 0
            || strcmp(slow.prefill_worker, req->prefill_worker) != 0)
        {
            abort();
        }
        dw_proto_req_free(&slow);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dw_proto_req_t  req;
    dw_proto_err_t  err;
    int             rc;
    char            msg[128];
    uint32_t        vocab, i;

    if (size == 0) {
        return 0;
    }
    /* first byte picks the vocabulary bound: 0 (none) or 1..255 * 64 */
    vocab = (uint32_t) data[0] * 64;
    rc = dw_proto_parse_request((const char *) data + 1, size - 1, vocab,
                                &req, &err);
    check_fast_path((const char *) data + 1, size - 1, vocab, &req, &err,
                    rc);
    if (rc == 0) {
        if (req.n_tokens == 0 || req.token_ids == NULL
            || req.sp.max_tokens == 0
            || req.sp.n_stop_ids > DW_MAX_STOP_IDS
            || req.sp.logprobs > DW_MAX_TOP_LOGPROBS)
        {
            abort();
        }
        for (i = 0; vocab > 0 && i < req.n_tokens; i++) {
            if (req.token_ids[i] >= vocab) {
                abort();
            }
        }
        dw_proto_req_free(&req);
    } else if (req.token_ids != NULL || err.msg[0] == '\0') {
        abort();
    }

    if (dw_proto_parse_frame((const char *) data + 1, size - 1, &f1, msg,
                             sizeof(msg)) == 0)
    {
        check_frame_round_trip();
    }
    return 0;
}
