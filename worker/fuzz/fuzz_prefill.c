/*
 * libFuzzer target for the disaggregation side of the protocol: the
 * POST /v1/prefill body (dw_proto_parse_prefill) and the first-token
 * payload (dw_proto_decode_first). The first input byte picks the
 * vocabulary bound (0: none, else byte * 64), the rest is both a body and
 * a payload. Checked: a parsed body is self-consistent and its kv part
 * survives encode -> parse unchanged; the generate part judges exactly as
 * /v1/generate does (a body generate accepts lacks only "kv"; an error
 * generate reports about another field is reported the same); a payload
 * that decodes encodes back to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dw_proto.h"
#include "dw_proto_int.h"

static void
check_kv_round_trip(const dw_proto_prefill_t *p)
{
    static const char   gen[] = "{\"token_ids\":[1]}";
    dw_proto_prefill_t  q;
    dw_proto_err_t      err;
    kvr_buf_t           b;

    memset(&b, 0, sizeof(b));
    if (dw_proto_encode_prefill(&b, gen, sizeof(gen) - 1, p) != 0) {
        abort();
    }
    if (dw_proto_parse_prefill(b.data, b.len, 0, &q, &err) != 0
        || q.xfer_id != p->xfer_id || q.n_blocks != p->n_blocks
        || memcmp(q.blocks, p->blocks, p->n_blocks * sizeof(uint32_t)) != 0
        || q.skip_blocks != p->skip_blocks || q.timeout_ms != p->timeout_ms
        || q.desc_len != p->desc_len
        || memcmp(q.desc, p->desc, p->desc_len) != 0)
    {
        abort();
    }
    dw_proto_prefill_free(&q);
    kvr_buf_free(&b);
}

static void
check_first(const uint8_t *data, size_t size)
{
    dw_output_t    tok;
    unsigned char  buf[DW_PROTO_FIRST_LEN(DW_MAX_TOP_LOGPROBS)];
    int            n;

    if (dw_proto_decode_first(data, size, &tok) != 0) {
        return;
    }
    if (tok.kind != DW_OUT_TOKEN || tok.n_top > DW_MAX_TOP_LOGPROBS) {
        abort();
    }
    n = dw_proto_encode_first(&tok, buf, sizeof(buf));
    if (n < 0 || (size_t) n != size || memcmp(buf, data, size) != 0) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dw_proto_prefill_t  p;
    dw_proto_req_t      g;
    dw_proto_err_t      err, gerr;
    const char         *body;
    uint32_t            vocab, i;
    int                 rc, grc;

    if (size == 0) {
        return 0;
    }
    vocab = (uint32_t) data[0] * 64;
    body = (const char *) data + 1;
    rc = dw_proto_parse_prefill(body, size - 1, vocab, &p, &err);
    grc = dw_proto_parse_request(body, size - 1, vocab, &g, &gerr);
    if (grc == 0) {
        dw_proto_req_free(&g);
        if (rc == 0 || strcmp(err.field, "kv") != 0) {
            abort();
        }
    } else if (strcmp(gerr.field, "kv") != 0
               && (rc == 0 || strcmp(err.field, gerr.field) != 0
                   || strcmp(err.msg, gerr.msg) != 0))
    {
        abort();
    }
    if (rc == 0) {
        if (p.req.n_tokens == 0 || p.req.token_ids == NULL
            || p.n_blocks == 0 || p.blocks == NULL
            || p.skip_blocks > p.n_blocks || p.timeout_ms == 0
            || p.desc == NULL || p.desc_len != strlen(p.desc)
            || p.desc[0] != '{')
        {
            abort();
        }
        for (i = 0; vocab > 0 && i < p.req.n_tokens; i++) {
            if (p.req.token_ids[i] >= vocab) {
                abort();
            }
        }
        check_kv_round_trip(&p);
        dw_proto_prefill_free(&p);
    } else if (p.req.token_ids != NULL || p.blocks != NULL || p.desc != NULL
               || err.msg[0] == '\0')
    {
        abort();
    }
    check_first(data + 1, size - 1);
    return 0;
}
