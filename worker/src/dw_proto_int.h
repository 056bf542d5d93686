/*
 * dynamo-worker: protocol internals shared by dw_proto*.c, the tests and
 * the fuzzer.
 */
#ifndef DW_PROTO_INT_H
#define DW_PROTO_INT_H

#include <stddef.h>
#include <stdint.h>

#include "dw_proto.h"

/*
 * The fast path for the one large field: finds the top-level "token_ids"
 * member of a request body and, when its value is a plain non-empty array
 * of in-range JSON integers, parses it without building a tree. Returns 1
 * with the array's byte span [*start, *end) and *ids (malloc'd, *n
 * entries); 0 when the member is absent, spelt with escapes, or anything
 * about it is unusual (the general parser then decides, errors included);
 * -1 on out of memory. It never judges the rest of the body: the caller
 * still parses it all.
 */
int dw_proto_fast_ids(const char *body, size_t len, uint32_t vocab_size,
    size_t *start, size_t *end, uint32_t **ids, uint32_t *n);

/* Fills err (field, printf-style message); returns -1. */
int dw_proto_fail(dw_proto_err_t *err, const char *field, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

/* dw_proto_parse_request with the fast path on or off (tests compare). */
int dw_proto_parse_request_opt(const char *body, size_t len,
    uint32_t vocab_size, int fast, dw_proto_req_t *req, dw_proto_err_t *err);

/*
 * The same parser for a /v1/prefill body: kv != NULL accepts one more
 * top-level member, "kv", handed back in *kv (a new jansson reference, or
 * NULL when absent or null) for dw_proto_prefill.c to judge; every other
 * member is judged exactly as for /v1/generate. On failure *kv is NULL.
 */
struct json_t;
int dw_proto_parse_request_kv(const char *body, size_t len,
    uint32_t vocab_size, int fast, dw_proto_req_t *req, struct json_t **kv,
    dw_proto_err_t *err);

/* The first-token payload (dw_proto_encode_first): version byte, token
   (u32 LE), logprob (f32 LE), n_top (u8), n_top x (id u32, lp f32). */
#define DW_PROTO_FIRST_VERSION  1
#define DW_PROTO_FIRST_LEN(n)   (10 + 8 * (size_t) (n))

#endif
