
/*
 * ngx_dynamo: OpenAI request parsing and validation (chat completions and
 * completions).
 *
 * Pure: jansson and libc only, no nginx types, so the unit tests and the
 * libFuzzer target build it without nginx.
 */


#ifndef _NGX_HTTP_DYNAMO_OAI_H_INCLUDED_
#define _NGX_HTTP_DYNAMO_OAI_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <jansson.h>


#define NGX_HTTP_DYNAMO_OAI_CHAT             1
#define NGX_HTTP_DYNAMO_OAI_COMPLETIONS      2

#define NGX_HTTP_DYNAMO_OAI_STOP_MAX         16    /* stop strings */
#define NGX_HTTP_DYNAMO_OAI_STOP_IDS_MAX     16    /* as the worker takes */
#define NGX_HTTP_DYNAMO_OAI_TOP_LOGPROBS_MAX 20


typedef struct {
    const char                 *data;    /* UTF-8, owned by req->root */
    size_t                      len;
} ngx_http_dynamo_oai_str_t;


typedef struct {
    int                         kind;           /* CHAT or COMPLETIONS */
    json_t                     *root;           /* the body; owns strings */

    ngx_http_dynamo_oai_str_t   model;

    /*
     * chat: messages normalised for the chat template: an array of
     * objects whose "content" is a string (text parts joined with "\n")
     * or null (assistant); other keys (name, tool_calls, tool_call_id,
     * ...) kept as given
     */
    json_t                     *messages;
    json_t                     *tools;          /* array or NULL (empty);
                                                   borrowed from root */
    json_t                     *template_kwargs; /* object or NULL;
                                                    borrowed from root */
    int                         add_generation_prompt;  /* default 1 */

    /* completions: a text prompt, or token ids (malloc'd) */
    ngx_http_dynamo_oai_str_t   prompt;
    uint32_t                   *prompt_ids;
    size_t                      n_prompt_ids;
    int                         has_prompt_ids;

    int64_t                     max_tokens;     /* -1: not given */
    int                         stream;
    int                         include_usage;  /* stream_options */
    int                         logprobs;       /* -1: none; else top N */
    int                         ignore_eos;
    int                         skip_special_tokens;  /* default 1 */

    ngx_http_dynamo_oai_str_t   stop[NGX_HTTP_DYNAMO_OAI_STOP_MAX];
    size_t                      nstop;
    uint32_t                    stop_ids[NGX_HTTP_DYNAMO_OAI_STOP_IDS_MAX];
    size_t                      nstop_ids;

    /*
     * The worker protocol's "sampling" object (worker/PROTOCOL.md) built
     * from the request: only the fields the client gave (temperature,
     * top_p, top_k, min_p, seed, repetition/presence/frequency_penalty);
     * owned by req, never NULL after a successful parse. top_k and seed
     * are JSON integers; seed takes any int64 as vLLM does and keeps its
     * low 63 bits for the worker's 0 .. 2^63-1 (-1 becomes 2^63-1).
     */
    json_t                     *sampling;
} ngx_http_dynamo_oai_req_t;


/*
 * An OpenAI error: {"error":{"message":..,"type":"invalid_request_error",
 * "param":.. or null,"code":.. or null}}; message is valid UTF-8
 */
typedef struct {
    int                         status;         /* 400; 500: no memory */
    char                        param[128];     /* "" when none */
    char                        message[512];
    char                        code[64];       /* "" when none (null) */
} ngx_http_dynamo_oai_err_t;


/*
 * Parses body[0..len) as a request of the given kind. 0 and *req filled
 * (free it with ngx_http_dynamo_oai_free), or -1 and *err set (*req holds
 * nothing to free, freeing it anyway is harmless; status 400, or 500 when
 * out of memory). Duplicate keys: the last wins. Unknown fields
 * are ignored, as vLLM does; fields we cannot honour (n > 1, several
 * prompts, echo, best_of > 1, suffix, non-text content parts, logit_bias,
 * response_format other than text, tool_choice required or named) are
 * refused with a message saying so. Any field may be null (its default).
 */
int ngx_http_dynamo_oai_parse(int kind, const char *body, size_t len,
    ngx_http_dynamo_oai_req_t *req, ngx_http_dynamo_oai_err_t *err);

/* idempotent: leaves *req empty (NULL pointers, nothing to free) */
void ngx_http_dynamo_oai_free(ngx_http_dynamo_oai_req_t *req);


#endif /* _NGX_HTTP_DYNAMO_OAI_H_INCLUDED_ */
