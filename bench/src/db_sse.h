#ifndef DB_SSE_H
#define DB_SSE_H

/*
 * Server-sent events as OpenAI-compatible servers send them, parsed
 * incrementally from whatever byte pieces the transport delivers, and the
 * OpenAI chunk inside each "data:" payload.
 */

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char      *buf;         /* the unfinished line */
    size_t     len;
    size_t     cap;
    size_t     max;         /* longest line accepted (default 16 MiB) */
} db_sse_t;

/* Called once per "data:" line with its payload (no "data:" prefix, one
 * leading space removed); return non-zero to stop. */
typedef int (*db_sse_cb)(void *ctx, const char *data, size_t len);

void db_sse_init(db_sse_t *p);
void db_sse_free(db_sse_t *p);
/* 0, the callback's non-zero return, or -1 when a line exceeds max. */
int db_sse_feed(db_sse_t *p, const char *buf, size_t n, db_sse_cb cb,
    void *ctx);

typedef struct {
    int         done;            /* the payload was [DONE] */
    const char *text;            /* choices[0].text, or delta.content (plus
                                    delta.reasoning_content); points into
                                    storage owned by the chunk */
    size_t      text_len;
    int         has_usage;
    int64_t     prompt_tokens;
    int64_t     completion_tokens;
    int64_t     cached_tokens;   /* -1 when absent */
    const char *finish_reason;   /* NULL when absent */
    const char *error;           /* {"error":{"message":...}} in the stream */
    void       *json;            /* owner of the strings (jansson) */
} db_chunk_t;

/* 0, or -1 when the payload is not a JSON object (error set). A chunk with
 * neither text nor usage is valid (role-only or empty deltas). */
int db_chunk_parse(const char *data, size_t len, db_chunk_t *c, char *err,
    size_t errlen);
void db_chunk_free(db_chunk_t *c);

#endif
