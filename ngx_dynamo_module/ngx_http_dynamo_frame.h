
/*
 * ngx_dynamo: the worker's NDJSON frames (worker/PROTOCOL.md, "The
 * stream"), parsed without building a tree.
 *
 * Strict: the line must be one JSON object exactly as RFC 8259 and jansson
 * read it (UTF-8 checked, no duplicate known keys, integers within 64
 * bits, reals finite), with exactly one of "t" and "finish". Keys the
 * frame does not use are skipped (fields are only ever added within a
 * protocol version), nested at most NGX_HTTP_DYNAMO_FRAME_DEPTH deep.
 *
 * Pure: libc only, no nginx types (unit tests, fuzzer).
 */


#ifndef _NGX_HTTP_DYNAMO_FRAME_H_INCLUDED_
#define _NGX_HTTP_DYNAMO_FRAME_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_HTTP_DYNAMO_FRAME_TOKENS     256   /* ids per frame at most */
#define NGX_HTTP_DYNAMO_FRAME_TOP        20    /* [id, lp] pairs per token */
#define NGX_HTTP_DYNAMO_FRAME_DEPTH      32

#define NGX_HTTP_DYNAMO_FRAME_TOKEN      0
#define NGX_HTTP_DYNAMO_FRAME_STOP       1
#define NGX_HTTP_DYNAMO_FRAME_LENGTH     2
#define NGX_HTTP_DYNAMO_FRAME_CANCELLED  3
#define NGX_HTTP_DYNAMO_FRAME_ERROR      4

#define NGX_HTTP_DYNAMO_FRAME_OK         0
#define NGX_HTTP_DYNAMO_FRAME_BAD       -1
#define NGX_HTTP_DYNAMO_FRAME_NOMEM     -2


typedef struct {
    uint32_t                      id;
    double                        lp;
} ngx_http_dynamo_frame_top_t;


typedef struct {
    int                           kind;     /* TOKEN or a finish reason */

    /* token frames */
    size_t                        n;
    uint32_t                      ids[NGX_HTTP_DYNAMO_FRAME_TOKENS];
    int                           has_lp;
    int                           has_top;
    double                        lp[NGX_HTTP_DYNAMO_FRAME_TOKENS];
    uint8_t                       n_top[NGX_HTTP_DYNAMO_FRAME_TOKENS];
    ngx_http_dynamo_frame_top_t  *top;      /* token i's pairs at
                                               top[i * FRAME_TOP], malloc'd
                                               on first use */

    /* finish frames */
    uint32_t                      prompt_tokens;
    uint32_t                      completion_tokens;
    uint32_t                      cached_tokens;
    uint32_t                      preemptions;
    int                           has_error;
    char                          error[256];   /* UTF-8, NUL-terminated,
                                                   cut at a character */

    const char                   *why;      /* after BAD: what was wrong */
} ngx_http_dynamo_frame_t;


/*
 * Parses line[0..len) into f (zero-initialise f once; reuse it for every
 * line). Ids (in "t" and "top") must be below vocab (0: not checked).
 * OK, BAD (f->why says why) or NOMEM.
 */
int ngx_http_dynamo_frame_parse(ngx_http_dynamo_frame_t *f, const char *line,
    size_t len, size_t vocab);

void ngx_http_dynamo_frame_free(ngx_http_dynamo_frame_t *f);


/*
 * Bytes (2..4) of the well-formed multi-byte UTF-8 character at p, or 0
 * when p..end does not start with one (ASCII included: callers handle it).
 */
size_t ngx_http_dynamo_utf8_len(const unsigned char *p,
    const unsigned char *end);


#endif /* _NGX_HTTP_DYNAMO_FRAME_H_INCLUDED_ */
