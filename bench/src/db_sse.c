/*
 * Server-sent events, incrementally: lines end with "\n" or "\r\n"; "data:"
 * lines carry the payload (one leading space removed); comments (":"),
 * other fields ("event:", "id:", "retry:") and blank lines are ignored,
 * since OpenAI-compatible servers put one JSON chunk in each data line.
 *
 * The common case (a piece holding whole lines) is parsed in place without
 * copying; only a line split across pieces is gathered in p->buf, which
 * grows geometrically and is kept, so steady streaming does not allocate.
 */

#include "db_sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define DB_SSE_MAX_DEFAULT  ((size_t)16 << 20)

void db_sse_init(db_sse_t *p)
{
    memset(p, 0, sizeof(*p));
    p->max = DB_SSE_MAX_DEFAULT;
}

void db_sse_free(db_sse_t *p)
{
    free(p->buf);
    p->buf = NULL;
    p->len = p->cap = 0;
}

/* One complete line without its terminator ("\n" or "\r\n"). */
static int sse_line(const char *s, size_t n, db_sse_cb cb, void *ctx)
{
    if (n < 5 || memcmp(s, "data:", 5) != 0)
        return 0;                     /* blank, comment, other field */
    s += 5;
    n -= 5;
    if (n > 0 && *s == ' ') {
        s++;
        n--;
    }
    return cb(ctx, s, n);
}

static int sse_keep(db_sse_t *p, const char *s, size_t n)
{
    if (p->len + n > p->cap) {        /* the caller checked max */
        size_t cap = p->cap ? p->cap : 256;
        while (cap < p->len + n)
            cap *= 2;
        char *b = realloc(p->buf, cap);
        if (b == NULL)
            return -1;
        p->buf = b;
        p->cap = cap;
    }
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    return 0;
}

int db_sse_feed(db_sse_t *p, const char *buf, size_t n, db_sse_cb cb,
    void *ctx)
{
    size_t max = p->max ? p->max : DB_SSE_MAX_DEFAULT;

    while (n > 0) {
        const char *nl = memchr(buf, '\n', n);
        if (nl == NULL) {
            /* +1: the terminator ("\r\n" gives one more byte, stripped) */
            if (p->len + n > max + 1)
                return -1;
            return sse_keep(p, buf, n);
        }
        size_t k = (size_t)(nl - buf);
        int rc;
        if (p->len > 0) {
            if (p->len + k > max + 1 || sse_keep(p, buf, k) != 0)
                return -1;
            size_t len = p->len;
            p->len = 0;
            if (len > 0 && p->buf[len - 1] == '\r')
                len--;
            if (len > max)
                return -1;
            rc = sse_line(p->buf, len, cb, ctx);
        } else {
            size_t len = k;
            if (len > 0 && buf[len - 1] == '\r')
                len--;
            if (len > max)
                return -1;
            rc = sse_line(buf, len, cb, ctx);
        }
        if (rc != 0)
            return rc;
        buf += k + 1;
        n -= k + 1;
    }
    return 0;
}

/* ---- the OpenAI chunk inside a data line ---- */

static int64_t int_or(json_t *o, const char *key, int64_t dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

static int is_done(const char *d, size_t n)
{
    while (n > 0 && (d[n - 1] == ' ' || d[n - 1] == '\t' || d[n - 1] == '\r'))
        n--;
    while (n > 0 && (*d == ' ' || *d == '\t')) {
        d++;
        n--;
    }
    return n == 6 && memcmp(d, "[DONE]", 6) == 0;
}

/* choices[0].text (completions), else delta.reasoning_content followed by
 * delta.content (chat); -1 when out of memory. */
static int chunk_text(json_t *root, json_t *ch, db_chunk_t *c)
{
    json_t *t = json_object_get(ch, "text");
    json_t *d = json_object_get(ch, "delta");
    if (json_is_string(t)) {
        c->text = json_string_value(t);
        c->text_len = json_string_length(t);
        return 0;
    }
    if (!json_is_object(d))
        return 0;
    json_t *ct = json_object_get(d, "content");
    json_t *rc = json_object_get(d, "reasoning_content");
    size_t nc = json_is_string(ct) ? json_string_length(ct) : 0;
    size_t nr = json_is_string(rc) ? json_string_length(rc) : 0;
    if (nc > 0 && nr > 0) {
        /* both: keep the joined text in the chunk's own JSON */
        char *j = malloc(nr + nc);
        if (j == NULL)
            return -1;
        memcpy(j, json_string_value(rc), nr);
        memcpy(j + nr, json_string_value(ct), nc);
        json_t *s = json_stringn_nocheck(j, nr + nc);
        free(j);
        if (s == NULL || json_object_set_new(root, "\x01text", s) != 0)
            return -1;
        c->text = json_string_value(s);
        c->text_len = nr + nc;
    } else if (nc > 0) {
        c->text = json_string_value(ct);
        c->text_len = nc;
    } else if (nr > 0) {
        c->text = json_string_value(rc);
        c->text_len = nr;
    }
    return 0;
}

int db_chunk_parse(const char *data, size_t len, db_chunk_t *c, char *err,
    size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->prompt_tokens = c->completion_tokens = c->cached_tokens = -1;
    if (is_done(data, len)) {
        c->done = 1;
        return 0;
    }

    json_error_t je;
    json_t *root = json_loadb(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                              &je);
    if (root == NULL || !json_is_object(root)) {
        if (root == NULL)
            snprintf(err, errlen, "bad JSON in stream chunk: %s", je.text);
        else
            snprintf(err, errlen, "stream chunk is not a JSON object");
        json_decref(root);
        return -1;
    }
    c->json = root;

    json_t *e = json_object_get(root, "error");
    if (json_is_object(e)) {
        json_t *m = json_object_get(e, "message");
        c->error = json_is_string(m) ? json_string_value(m)
                                     : "error without message";
    } else if (json_is_string(e)) {
        c->error = json_string_value(e);
    }

    json_t *ch = json_array_get(json_object_get(root, "choices"), 0);
    if (json_is_object(ch)) {
        if (chunk_text(root, ch, c) != 0) {
            snprintf(err, errlen, "out of memory");
            db_chunk_free(c);
            return -1;
        }
        json_t *fr = json_object_get(ch, "finish_reason");
        if (json_is_string(fr))
            c->finish_reason = json_string_value(fr);
    }

    json_t *u = json_object_get(root, "usage");
    if (json_is_object(u)) {
        c->has_usage = 1;
        c->prompt_tokens = int_or(u, "prompt_tokens", -1);
        c->completion_tokens = int_or(u, "completion_tokens", -1);
        json_t *pd = json_object_get(u, "prompt_tokens_details");
        if (json_is_object(pd))
            c->cached_tokens = int_or(pd, "cached_tokens", -1);
    }
    return 0;
}

void db_chunk_free(db_chunk_t *c)
{
    json_decref((json_t *)c->json);
    c->json = NULL;
    c->text = NULL;
    c->error = NULL;
    c->finish_reason = NULL;
}
