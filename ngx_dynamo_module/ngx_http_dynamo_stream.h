
/*
 * ngx_dynamo: the text side of one generation. Takes the worker's NDJSON
 * frames (worker/PROTOCOL.md) one line at a time and produces what the
 * client gets: OpenAI SSE events (chat.completion.chunk / text_completion,
 * role first, usage chunk when asked, "data: [DONE]" last) or, for a
 * non-streaming request, one JSON body at the end.
 *
 * Detokenizes incrementally (kvr_detok) and applies stop strings here, so
 * no part of a stop string ever reaches the client: text that could still
 * become a stop string is held back until it cannot. The text ends before
 * the first stop string to be completed (the one ending earliest; of
 * those, the longest), wherever token boundaries fall; empty stop strings
 * are ignored. Frames are parsed by ngx_http_dynamo_frame.c; a malformed
 * one (bad JSON or shape, an id beyond the vocabulary, lp or top counts
 * that do not match t, lp missing when logprobs were asked for) fails the
 * response with "worker sent a malformed frame".
 *
 * Logprobs: one entry per token consumed, sent with the next chunk that
 * carries text (or the last one). A token's text is what it adds after
 * the token before it (so sentencepiece's leading space shows); special
 * tokens read as their content; a byte-fallback piece <0xNN> with NN >=
 * 0x80 (or NN = 0) reads "bytes:\xNN" with "bytes" [NN] (OpenAI's
 * convention for a token that is not UTF-8 alone). Completions: top_logprobs maps the
 * sampled token first, then up to N alternatives, repeated keys dropped;
 * text_offset counts characters of generated text before the token.
 * Logprobs print with %.9g, never below -9999, always as reals.
 *
 * Pure: kvrouter and jansson only, no nginx types (unit tests, fuzzer).
 */


#ifndef _NGX_HTTP_DYNAMO_STREAM_H_INCLUDED_
#define _NGX_HTTP_DYNAMO_STREAM_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "kvr_buf.h"
#include "kvr_tokenizer.h"
#include "ngx_http_dynamo_oai.h"


#define NGX_HTTP_DYNAMO_STREAM_MORE     0   /* need more lines */
#define NGX_HTTP_DYNAMO_STREAM_DONE     1   /* response complete in out */
#define NGX_HTTP_DYNAMO_STREAM_FAILED  -1   /* see stream_error() */


typedef struct {
    const ngx_http_dynamo_oai_req_t  *req;      /* kind, stream, stop, ... */
    const kvr_tokenizer_t            *tok;
    const uint32_t                   *prompt_ids;   /* detokenizer context;
                                                       the whole prompt */
    size_t                            n_prompt_ids; /* also the usage's
                                                       prompt_tokens until
                                                       the finish frame */
    const char                       *id;       /* "chatcmpl-..." */
    const char                       *model;    /* as the client named it */
    int64_t                           created;  /* Unix seconds */
} ngx_http_dynamo_stream_conf_t;


typedef struct ngx_http_dynamo_stream_s  ngx_http_dynamo_stream_t;


/* conf and everything it points to must outlive the stream. NULL: no
   memory. */
ngx_http_dynamo_stream_t *ngx_http_dynamo_stream_create(
    const ngx_http_dynamo_stream_conf_t *conf);
void ngx_http_dynamo_stream_destroy(ngx_http_dynamo_stream_t *s);

/*
 * Bytes that start a streaming response (the first chunk, carrying the
 * role for chat; "" for completions and non-streaming requests). Call
 * once, before the first line (the first line calls it otherwise).
 * 0, or -1: no memory.
 */
int ngx_http_dynamo_stream_begin(ngx_http_dynamo_stream_t *s,
    kvr_buf_t *out);

/*
 * One frame from the worker, without its '\n'. Appends to out what the
 * client must get now (nothing until the end when not streaming).
 *   MORE    keep feeding lines;
 *   DONE    the response is complete in out: the last events and
 *           "data: [DONE]", or the whole JSON body. When a stop string
 *           ended it before the worker's finish frame,
 *           stream_cut() is 1 and the worker connection must be closed
 *           (which cancels the generation there);
 *   FAILED  the worker reported an error (finish "error" or "cancelled")
 *           or sent a malformed frame: when streaming, out ends with an
 *           error event and "data: [DONE]"; otherwise out is untouched
 *           and the caller answers 502 with stream_error().
 * Lines after DONE or FAILED are ignored (MORE... never returned again).
 */
int ngx_http_dynamo_stream_line(ngx_http_dynamo_stream_t *s,
    const char *line, size_t len, kvr_buf_t *out);

/*
 * The worker went away (connection closed before the finish frame, read
 * timeout): appends the error event and "data: [DONE]" when streaming.
 * A no-op after DONE or FAILED.
 */
void ngx_http_dynamo_stream_fail(ngx_http_dynamo_stream_t *s,
    const char *message, kvr_buf_t *out);

int ngx_http_dynamo_stream_cut(const ngx_http_dynamo_stream_t *s);
const char *ngx_http_dynamo_stream_error(const ngx_http_dynamo_stream_t *s);

/* "stop", "length", or NULL before the end */
const char *ngx_http_dynamo_stream_finish_reason(
    const ngx_http_dynamo_stream_t *s);

/*
 * Token counts so far: prompt and cached from the finish frame (before
 * it, or when a stop string cut the stream: n_prompt_ids and 0),
 * completion = tokens consumed (up to and including the token that
 * completed a stop string).
 */
void ngx_http_dynamo_stream_usage(const ngx_http_dynamo_stream_t *s,
    uint64_t *prompt, uint64_t *completion, uint64_t *cached);


#endif /* _NGX_HTTP_DYNAMO_STREAM_H_INCLUDED_ */
