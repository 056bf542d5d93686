/*
 * dynamo-worker: the internal token protocol (worker/PROTOCOL.md), version
 * DW_PROTO_VERSION. Pure functions, no I/O:
 *
 *   request    JSON body of POST /v1/generate -> dw_proto_req_t
 *   frames     engine outputs -> NDJSON lines (token frames, finish frame)
 *              and back (dw_proto_parse_frame: the client side, for tests,
 *              benchmarks and as the reference for other clients)
 *   errors     the JSON body of a 4xx/5xx reply
 */
#ifndef DW_PROTO_H
#define DW_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "dw_engine.h"
#include "kvr_buf.h"
#include "kvr_worker.h"

#define DW_PROTO_VERSION          1
#define DW_PROTO_ID_MAX           128   /* request_id bytes */
#define DW_PROTO_MAX_TOKENS_DEF   16    /* max_tokens when absent */
#define DW_PROTO_FRAME_TOKENS     256   /* most tokens in one frame */

typedef struct {
    char           request_id[DW_PROTO_ID_MAX + 1];  /* "" when absent */
    uint32_t      *token_ids;      /* malloc'd (hand over to the engine) */
    uint32_t       n_tokens;
    dw_sampling_t  sp;             /* sampling, logprobs, max_tokens, stops */
    char           prefill_worker[KVR_ADDR_MAX];     /* hints; "" absent */
} dw_proto_req_t;

typedef struct {
    char  field[64];               /* "sampling.top_p", "token_ids[3]", "" */
    char  msg[160];
} dw_proto_err_t;

/*
 * Parses and validates a request body. vocab_size > 0 bounds token ids
 * (prompt and stop ids). 0, or -1 with err naming the offending field;
 * req->token_ids is NULL after a failure.
 */
int dw_proto_parse_request(const char *body, size_t len, uint32_t vocab_size,
    dw_proto_req_t *req, dw_proto_err_t *err);
void dw_proto_req_free(dw_proto_req_t *req);

/*
 * POST /v1/prefill (decode worker -> prefill worker; PROTOCOL.md,
 * "Prefill"): a generate body (request_id, token_ids, sampling; hints are
 * ignored) with one more member, "kv": where to write the KV.
 */
typedef struct {
    dw_proto_req_t  req;
    uint64_t        xfer_id;       /* the notification's id on D */
    uint32_t       *blocks;        /* D's block per prompt block (malloc'd) */
    uint32_t        n_blocks;      /* ceil(n_tokens / D's block_size) */
    uint32_t        skip_blocks;   /* leading blocks D has: not written */
    uint32_t        timeout_ms;    /* the transfer's deadline on P */
    char           *desc;          /* D's pool descriptor, JSON text
                                      (dw_xfer_desc_parse; malloc'd) */
    size_t          desc_len;
} dw_proto_prefill_t;

int dw_proto_parse_prefill(const char *body, size_t len, uint32_t vocab_size,
    dw_proto_prefill_t *p, dw_proto_err_t *err);
void dw_proto_prefill_free(dw_proto_prefill_t *p);
/*
 * D's side: a /v1/prefill body from the generate body it received (a JSON
 * object, already validated) and the kv part of p (p->req unused). -1 on
 * out of memory.
 */
int dw_proto_encode_prefill(kvr_buf_t *b, const char *gen_body,
    size_t gen_len, const dw_proto_prefill_t *p);

/* The first token's handover in the notification payload (binary:
   token, logprob, top pairs). Encode: bytes written (<= cap) or -1;
   decode: 0 or -1 (malformed). */
int dw_proto_encode_first(const dw_output_t *tok, void *buf, size_t cap);
int dw_proto_decode_first(const void *buf, size_t len, dw_output_t *tok);

/* "remote", "short", "busy", "down", "failed", "self"; NULL for AGG. */
const char *dw_proto_prefill_name(dw_prefill_t p);

/*
 * Appends one token frame line ("{...}\n") for outs[0..n), all
 * DW_OUT_TOKEN of one request, n >= 1. with_lp: the request asked for
 * logprobs (sp.logprobs >= 0): "lp" and, when any n_top > 0, "top" are
 * written. -1 on out of memory (b unchanged in length).
 */
int dw_proto_encode_tokens(kvr_buf_t *b, const dw_output_t *const *outs,
    size_t n, int with_lp);

/* Appends the finish frame line for a DW_OUT_FINISH output. */
int dw_proto_encode_finish(kvr_buf_t *b, const dw_output_t *out);

/* "stop", "length", "cancelled", "error"; NULL for other values. */
const char *dw_proto_finish_name(dw_finish_t reason);

/*
 * Appends {"error":{"type":T,"field":F,"message":M}} (field left out when
 * NULL or ""), no newline.
 */
int dw_proto_encode_error(kvr_buf_t *b, const char *type, const char *field,
    const char *msg);

/* One parsed frame line (client side). */
typedef struct {
    int          finish;        /* 0: token frame, else the dw_finish_t */
    uint32_t     n;             /* tokens in a token frame */
    int          has_lp;
    uint32_t     ids[DW_PROTO_FRAME_TOKENS];
    float        lp[DW_PROTO_FRAME_TOKENS];
    uint32_t     n_top[DW_PROTO_FRAME_TOKENS];
    uint32_t     top_ids[DW_PROTO_FRAME_TOKENS][DW_MAX_TOP_LOGPROBS];
    float        top_lp[DW_PROTO_FRAME_TOKENS][DW_MAX_TOP_LOGPROBS];
    /* finish frame */
    uint32_t     prompt_tokens;
    uint32_t     completion_tokens;
    uint32_t     cached_tokens;
    uint32_t     preemptions;
    char         error[96];
    dw_prefill_t prefill;       /* DW_PREFILL_AGG when absent */
} dw_proto_frame_t;

/* Parses one line (with or without its '\n'). 0, or -1 with err. */
int dw_proto_parse_frame(const char *line, size_t len, dw_proto_frame_t *f,
    char *err, size_t errlen);

#endif
