
/*
 * ngx_dynamo: worker frames to OpenAI responses.
 *
 * Per token: the detokenizer's new text goes into "held"; every stop
 * string runs a KMP matcher over it byte by byte, so the first stop
 * string to be completed (ending earliest; of those, the longest) ends
 * the text, wherever the token boundaries fall. Without a match, held
 * keeps its longest suffix that is still a prefix of some stop string
 * and the rest is released to "text", which goes out as one chunk per
 * frame (streaming) or into the body at the end.
 *
 * Logprob token text: the text the token adds after the token before it
 * (so sentencepiece's leading space shows, as vLLM and OpenAI print it);
 * special tokens as their content ("</s>"); a byte-fallback piece
 * "<0xNN>" alone is not UTF-8 unless NN < 0x80: its "bytes" hold the raw
 * byte and "token" reads "bytes:\xNN", as OpenAI prints such tokens (so
 * does NUL, which many JSON readers refuse in an object key).
 * Completions' text_offset counts characters of the generated text before
 * the token.
 */


#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvr_err.h"
#include "ngx_http_dynamo_frame.h"
#include "ngx_http_dynamo_stream.h"


#define NGX_HTTP_DYNAMO_STREAM_RUN  2


typedef struct {
    const unsigned char             *s;
    size_t                           len;
    size_t                          *fail;
    size_t                           q;         /* bytes of s matched */
} ngx_http_dynamo_stop_t;


struct ngx_http_dynamo_stream_s {
    const ngx_http_dynamo_stream_conf_t  *conf;
    const ngx_http_dynamo_oai_req_t      *req;
    kvr_detok_t                          *detok;

    int                                   state;
    unsigned                              began:1;
    unsigned                              cut:1;
    unsigned                              chat:1;
    unsigned                              streaming:1;
    unsigned                              want_lp:1;
    unsigned                              has_prev:1;
    const char                           *finish;
    char                                  error[256];

    uint64_t                              prompt;
    uint64_t                              completion;
    uint64_t                              cached;

    ngx_http_dynamo_stop_t               *stops;
    size_t                                nstops;

    kvr_buf_t                             head;     /* {"id":..,"model":.. */
    kvr_buf_t                             fresh;    /* detokenizer output */
    kvr_buf_t                             held;     /* may start a stop */
    kvr_buf_t                             text;     /* released, not sent */
    kvr_buf_t                             chunk;    /* one event */
    kvr_buf_t                             a;        /* decode scratch */
    kvr_buf_t                             b;
    kvr_buf_t                             tk;       /* token texts */

    /* logprobs not sent yet: chat "content" entries, or completions' four
       lists; n_lp entries */
    kvr_buf_t                             lp_content;
    kvr_buf_t                             lp_tokens;
    kvr_buf_t                             lp_values;
    kvr_buf_t                             lp_tops;
    kvr_buf_t                             lp_offsets;
    size_t                                n_lp;
    uint64_t                              chars;    /* text_offset */
    uint32_t                              prev;     /* token before */

    ngx_http_dynamo_frame_t               frame;
};


#define ngx_http_dynamo_lit(b, s)  kvr_buf_append(b, s, sizeof(s) - 1)


static const char  ngx_http_dynamo_hex[] = "0123456789abcdef";


/* s as a JSON string; bytes that are not UTF-8 become U+FFFD */
static int
ngx_http_dynamo_json_str(kvr_buf_t *b, const char *str, size_t len)
{
    char                 *p;
    size_t                i, n;
    unsigned              c;
    const unsigned char  *s;

    s = (const unsigned char *) str;

    /* worst case: \u00XX for every byte */
    if (kvr_buf_reserve(b, len * 6 + 3) != KVR_OK) {
        return -1;
    }

    p = b->data + b->len;
    *p++ = '"';

    for (i = 0; i < len; /* void */) {
        c = s[i];

        if (c >= 0x20 && c < 0x80) {
            if (c == '"' || c == '\\') {
                *p++ = '\\';
            }

            *p++ = (char) c;
            i++;
            continue;
        }

        if (c < 0x20) {
            *p++ = '\\';

            switch (c) {
            case '\n': *p++ = 'n'; break;
            case '\r': *p++ = 'r'; break;
            case '\t': *p++ = 't'; break;
            case '\b': *p++ = 'b'; break;
            case '\f': *p++ = 'f'; break;
            default:
                *p++ = 'u';
                *p++ = '0';
                *p++ = '0';
                *p++ = ngx_http_dynamo_hex[c >> 4];
                *p++ = ngx_http_dynamo_hex[c & 0xf];
            }

            i++;
            continue;
        }

        n = ngx_http_dynamo_utf8_len(s + i, s + len);

        if (n == 0) {
            /* U+FFFD: 3 bytes for 1, within the reserve */
            *p++ = (char) 0xef;
            *p++ = (char) 0xbf;
            *p++ = (char) 0xbd;
            i++;
            continue;
        }

        memcpy(p, s + i, n);
        p += n;
        i += n;
    }

    *p++ = '"';
    *p = '\0';
    b->len = (size_t) (p - b->data);

    return 0;
}


static int
ngx_http_dynamo_json_u64(kvr_buf_t *b, uint64_t v)
{
    char  tmp[24];
    int   n;

    n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long) v);

    return kvr_buf_append(b, tmp, (size_t) n) == KVR_OK ? 0 : -1;
}


/* a logprob: %.9g, at least -9999, always with a point or an exponent */
static int
ngx_http_dynamo_json_lp(kvr_buf_t *b, double lp)
{
    char  tmp[40];
    int   n;

    if (isnan(lp) || lp < -9999.0) {
        lp = -9999.0;
    }

    if (isinf(lp)) {
        lp = 3.4028234663852886e38;
    }

    n = snprintf(tmp, sizeof(tmp), "%.9g", lp);

    if (strpbrk(tmp, ".e") == NULL) {
        tmp[n++] = '.';
        tmp[n++] = '0';
    }

    return kvr_buf_append(b, tmp, (size_t) n) == KVR_OK ? 0 : -1;
}


/* the token's UTF-8 bytes; raw >= 0: the one byte of a byte token */
static int
ngx_http_dynamo_json_bytes(kvr_buf_t *b, const char *s, size_t len, int raw)
{
    size_t  i;

    if (ngx_http_dynamo_lit(b, "[") != KVR_OK) {
        return -1;
    }

    if (raw >= 0) {
        return ngx_http_dynamo_json_u64(b, (uint64_t) raw)
               || ngx_http_dynamo_lit(b, "]") != KVR_OK ? -1 : 0;
    }

    for (i = 0; i < len; i++) {
        if ((i && ngx_http_dynamo_lit(b, ",") != KVR_OK)
            || ngx_http_dynamo_json_u64(b, (unsigned char) s[i]))
        {
            return -1;
        }
    }

    return ngx_http_dynamo_lit(b, "]") == KVR_OK ? 0 : -1;
}


static size_t
ngx_http_dynamo_utf8_chars(const char *s, size_t len)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; i++) {
        n += ((unsigned char) s[i] & 0xc0) != 0x80;
    }

    return n;
}


static int
ngx_http_dynamo_stops_init(ngx_http_dynamo_stream_t *s)
{
    size_t                   i, j, k, L;
    ngx_http_dynamo_stop_t  *st;

    if (s->req->nstop == 0) {
        return 0;
    }

    s->stops = calloc(s->req->nstop, sizeof(ngx_http_dynamo_stop_t));
    if (s->stops == NULL) {
        return -1;
    }

    for (i = 0; i < s->req->nstop && i < NGX_HTTP_DYNAMO_OAI_STOP_MAX; i++) {
        L = s->req->stop[i].len;

        if (L == 0 || s->req->stop[i].data == NULL) {
            continue;
        }

        st = &s->stops[s->nstops];
        st->s = (const unsigned char *) s->req->stop[i].data;
        st->len = L;

        st->fail = malloc(L * sizeof(size_t));
        if (st->fail == NULL) {
            return -1;
        }

        s->nstops++;

        st->fail[0] = 0;
        k = 0;

        for (j = 1; j < L; j++) {
            while (k > 0 && st->s[j] != st->s[k]) {
                k = st->fail[k - 1];
            }

            if (st->s[j] == st->s[k]) {
                k++;
            }

            st->fail[j] = k;
        }
    }

    return 0;
}


static int
ngx_http_dynamo_head(ngx_http_dynamo_stream_t *s)
{
    const ngx_http_dynamo_stream_conf_t  *c;

    c = s->conf;

    if (ngx_http_dynamo_lit(&s->head, "{\"id\":") != KVR_OK
        || ngx_http_dynamo_json_str(&s->head, c->id ? c->id : "",
                                    c->id ? strlen(c->id) : 0)
        || ngx_http_dynamo_lit(&s->head, ",\"object\":") != KVR_OK)
    {
        return -1;
    }

    if (s->chat) {
        if (s->streaming) {
            if (ngx_http_dynamo_lit(&s->head, "\"chat.completion.chunk\"")
                != KVR_OK)
            {
                return -1;
            }

        } else if (ngx_http_dynamo_lit(&s->head, "\"chat.completion\"")
                   != KVR_OK)
        {
            return -1;
        }

    } else if (ngx_http_dynamo_lit(&s->head, "\"text_completion\"") != KVR_OK)
    {
        return -1;
    }

    if (ngx_http_dynamo_lit(&s->head, ",\"created\":") != KVR_OK
        || ngx_http_dynamo_json_u64(&s->head,
                                    c->created > 0 ? (uint64_t) c->created : 0)
        || ngx_http_dynamo_lit(&s->head, ",\"model\":") != KVR_OK
        || ngx_http_dynamo_json_str(&s->head, c->model ? c->model : "",
                                    c->model ? strlen(c->model) : 0))
    {
        return -1;
    }

    return 0;
}


ngx_http_dynamo_stream_t *
ngx_http_dynamo_stream_create(const ngx_http_dynamo_stream_conf_t *conf)
{
    ngx_http_dynamo_stream_t  *s;

    s = calloc(1, sizeof(ngx_http_dynamo_stream_t));
    if (s == NULL) {
        return NULL;
    }

    s->conf = conf;
    s->req = conf->req;
    s->state = NGX_HTTP_DYNAMO_STREAM_RUN;
    s->chat = conf->req->kind == NGX_HTTP_DYNAMO_OAI_CHAT;
    s->streaming = conf->req->stream != 0;
    s->want_lp = conf->req->logprobs >= 0;
    s->prompt = conf->n_prompt_ids;

    if (conf->n_prompt_ids) {
        s->prev = conf->prompt_ids[conf->n_prompt_ids - 1];
        s->has_prev = s->prev < kvr_tokenizer_vocab_size(conf->tok);
    }

    s->detok = kvr_detok_create(conf->tok, conf->req->skip_special_tokens
                                           ? KVR_TOK_SKIP_SPECIAL : 0);
    if (s->detok == NULL) {
        goto failed;
    }

    if (kvr_detok_reset(s->detok, conf->prompt_ids, conf->n_prompt_ids)
        != KVR_OK
        && kvr_detok_reset(s->detok, NULL, 0) != KVR_OK)
    {
        goto failed;
    }

    if (ngx_http_dynamo_stops_init(s) || ngx_http_dynamo_head(s)) {
        goto failed;
    }

    return s;

failed:

    ngx_http_dynamo_stream_destroy(s);
    return NULL;
}


void
ngx_http_dynamo_stream_destroy(ngx_http_dynamo_stream_t *s)
{
    size_t  i;

    if (s == NULL) {
        return;
    }

    kvr_detok_free(s->detok);

    if (s->stops) {
        for (i = 0; i < s->nstops; i++) {
            free(s->stops[i].fail);
        }

        free(s->stops);
    }

    kvr_buf_free(&s->head);
    kvr_buf_free(&s->fresh);
    kvr_buf_free(&s->held);
    kvr_buf_free(&s->text);
    kvr_buf_free(&s->chunk);
    kvr_buf_free(&s->a);
    kvr_buf_free(&s->b);
    kvr_buf_free(&s->tk);
    kvr_buf_free(&s->lp_content);
    kvr_buf_free(&s->lp_tokens);
    kvr_buf_free(&s->lp_values);
    kvr_buf_free(&s->lp_tops);
    kvr_buf_free(&s->lp_offsets);
    ngx_http_dynamo_frame_free(&s->frame);
    free(s);
}


/* "data: " + head + ",\"choices\":[" */
static int
ngx_http_dynamo_chunk_open(ngx_http_dynamo_stream_t *s)
{
    kvr_buf_reset(&s->chunk);

    if (ngx_http_dynamo_lit(&s->chunk, "data: ") != KVR_OK
        || kvr_buf_append(&s->chunk, s->head.data, s->head.len) != KVR_OK
        || ngx_http_dynamo_lit(&s->chunk, ",\"choices\":[") != KVR_OK)
    {
        return -1;
    }

    return 0;
}


/* the pending logprobs as the value of "logprobs" (null when none) */
static int
ngx_http_dynamo_logprobs(ngx_http_dynamo_stream_t *s, kvr_buf_t *b,
    int always)
{
    int  rc;

    if (!s->want_lp || (s->n_lp == 0 && !always)) {
        return ngx_http_dynamo_lit(b, "null") == KVR_OK ? 0 : -1;
    }

    if (s->chat) {
        rc = ngx_http_dynamo_lit(b, "{\"content\":[") != KVR_OK
             || kvr_buf_append(b, s->lp_content.data, s->lp_content.len)
                != KVR_OK
             || ngx_http_dynamo_lit(b, "]}") != KVR_OK;

        kvr_buf_reset(&s->lp_content);

    } else {
        rc = ngx_http_dynamo_lit(b, "{\"tokens\":[") != KVR_OK
             || kvr_buf_append(b, s->lp_tokens.data, s->lp_tokens.len)
                != KVR_OK
             || ngx_http_dynamo_lit(b, "],\"token_logprobs\":[") != KVR_OK
             || kvr_buf_append(b, s->lp_values.data, s->lp_values.len)
                != KVR_OK
             || ngx_http_dynamo_lit(b, "],\"top_logprobs\":[") != KVR_OK
             || kvr_buf_append(b, s->lp_tops.data, s->lp_tops.len) != KVR_OK
             || ngx_http_dynamo_lit(b, "],\"text_offset\":[") != KVR_OK
             || kvr_buf_append(b, s->lp_offsets.data, s->lp_offsets.len)
                != KVR_OK
             || ngx_http_dynamo_lit(b, "]}") != KVR_OK;

        kvr_buf_reset(&s->lp_tokens);
        kvr_buf_reset(&s->lp_values);
        kvr_buf_reset(&s->lp_tops);
        kvr_buf_reset(&s->lp_offsets);
    }

    s->n_lp = 0;

    return rc ? -1 : 0;
}


/*
 * One streaming event with s->text (and the pending logprobs); finish:
 * NULL or the reason.
 */
static int
ngx_http_dynamo_chunk(ngx_http_dynamo_stream_t *s, const char *finish,
    kvr_buf_t *out)
{
    kvr_buf_t  *c;

    c = &s->chunk;

    if (ngx_http_dynamo_chunk_open(s)) {
        return -1;
    }

    if (s->chat) {
        if (ngx_http_dynamo_lit(c, "{\"index\":0,\"delta\":{") != KVR_OK) {
            return -1;
        }

        if (s->text.len || finish == NULL) {
            if (ngx_http_dynamo_lit(c, "\"content\":") != KVR_OK
                || ngx_http_dynamo_json_str(c, s->text.data, s->text.len))
            {
                return -1;
            }
        }

        if (ngx_http_dynamo_lit(c, "}") != KVR_OK) {
            return -1;
        }

    } else if (ngx_http_dynamo_lit(c, "{\"index\":0,\"text\":") != KVR_OK
               || ngx_http_dynamo_json_str(c, s->text.data, s->text.len))
    {
        return -1;
    }

    if (ngx_http_dynamo_lit(c, ",\"logprobs\":") != KVR_OK
        || ngx_http_dynamo_logprobs(s, c, 0)
        || ngx_http_dynamo_lit(c, ",\"finish_reason\":") != KVR_OK)
    {
        return -1;
    }

    if (finish) {
        if (ngx_http_dynamo_lit(c, "\"") != KVR_OK
            || kvr_buf_append_str(c, finish) != KVR_OK
            || ngx_http_dynamo_lit(c, "\"") != KVR_OK)
        {
            return -1;
        }

    } else if (ngx_http_dynamo_lit(c, "null") != KVR_OK) {
        return -1;
    }

    if (ngx_http_dynamo_lit(c, "}]") != KVR_OK
        || (s->req->include_usage
            && ngx_http_dynamo_lit(c, ",\"usage\":null") != KVR_OK)
        || ngx_http_dynamo_lit(c, "}\n\n") != KVR_OK
        || kvr_buf_append(out, c->data, c->len) != KVR_OK)
    {
        return -1;
    }

    kvr_buf_reset(&s->text);

    return 0;
}


static int
ngx_http_dynamo_usage_json(ngx_http_dynamo_stream_t *s, kvr_buf_t *b)
{
    if (ngx_http_dynamo_lit(b, "{\"prompt_tokens\":") != KVR_OK
        || ngx_http_dynamo_json_u64(b, s->prompt)
        || ngx_http_dynamo_lit(b, ",\"completion_tokens\":") != KVR_OK
        || ngx_http_dynamo_json_u64(b, s->completion)
        || ngx_http_dynamo_lit(b, ",\"total_tokens\":") != KVR_OK
        || ngx_http_dynamo_json_u64(b, s->prompt + s->completion)
        || ngx_http_dynamo_lit(b, ",\"prompt_tokens_details\":"
                                  "{\"cached_tokens\":") != KVR_OK
        || ngx_http_dynamo_json_u64(b, s->cached)
        || ngx_http_dynamo_lit(b, "}}") != KVR_OK)
    {
        return -1;
    }

    return 0;
}


/* the end of a successful response: the last events, or the body */
static int
ngx_http_dynamo_finish(ngx_http_dynamo_stream_t *s, kvr_buf_t *out)
{
    kvr_buf_t  *c;

    c = &s->chunk;

    if (s->streaming) {
        if (ngx_http_dynamo_chunk(s, s->finish, out)) {
            return -1;
        }

        if (s->req->include_usage) {
            if (ngx_http_dynamo_chunk_open(s)
                || ngx_http_dynamo_lit(c, "],\"usage\":") != KVR_OK
                || ngx_http_dynamo_usage_json(s, c)
                || ngx_http_dynamo_lit(c, "}\n\n") != KVR_OK
                || kvr_buf_append(out, c->data, c->len) != KVR_OK)
            {
                return -1;
            }
        }

        return ngx_http_dynamo_lit(out, "data: [DONE]\n\n") == KVR_OK ? 0 : -1;
    }

    kvr_buf_reset(c);

    if (kvr_buf_append(c, s->head.data, s->head.len) != KVR_OK) {
        return -1;
    }

    if (s->chat) {
        if (ngx_http_dynamo_lit(c, ",\"choices\":[{\"index\":0,\"message\":"
                                   "{\"role\":\"assistant\",\"content\":")
            != KVR_OK
            || ngx_http_dynamo_json_str(c, s->text.data, s->text.len)
            || ngx_http_dynamo_lit(c, "}") != KVR_OK)
        {
            return -1;
        }

    } else if (ngx_http_dynamo_lit(c, ",\"choices\":[{\"index\":0,\"text\":")
               != KVR_OK
               || ngx_http_dynamo_json_str(c, s->text.data, s->text.len))
    {
        return -1;
    }

    if (ngx_http_dynamo_lit(c, ",\"logprobs\":") != KVR_OK
        || ngx_http_dynamo_logprobs(s, c, 1)
        || ngx_http_dynamo_lit(c, ",\"finish_reason\":\"") != KVR_OK
        || kvr_buf_append_str(c, s->finish) != KVR_OK
        || ngx_http_dynamo_lit(c, "\"}],\"usage\":") != KVR_OK
        || ngx_http_dynamo_usage_json(s, c)
        || ngx_http_dynamo_lit(c, "}") != KVR_OK
        || kvr_buf_append(out, c->data, c->len) != KVR_OK)
    {
        return -1;
    }

    kvr_buf_reset(&s->text);

    return 0;
}


static void
ngx_http_dynamo_error_event(const char *message, kvr_buf_t *out)
{
    size_t  len;

    len = out->len;

    if (ngx_http_dynamo_lit(out, "data: {\"error\":{\"message\":") != KVR_OK
        || ngx_http_dynamo_json_str(out, message, strlen(message))
        || ngx_http_dynamo_lit(out, ",\"type\":\"server_error\","
                                    "\"param\":null,\"code\":null}}\n\n"
                                    "data: [DONE]\n\n") != KVR_OK)
    {
        out->len = len;     /* no memory: the caller closes the stream */
    }
}


static int
ngx_http_dynamo_failed(ngx_http_dynamo_stream_t *s, const char *message,
    kvr_buf_t *out)
{
    snprintf(s->error, sizeof(s->error), "%s", message);
    s->state = NGX_HTTP_DYNAMO_STREAM_FAILED;
    s->finish = NULL;

    if (s->streaming) {
        ngx_http_dynamo_error_event(s->error, out);
    }

    return NGX_HTTP_DYNAMO_STREAM_FAILED;
}


static int
ngx_http_dynamo_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/*
 * The text a token adds after the one before it, into s->tk (appended);
 * *start: where it begins there; *raw: the byte of a byte-fallback piece,
 * or -1.
 */
static int
ngx_http_dynamo_token_text(ngx_http_dynamo_stream_t *s, uint32_t id,
    size_t *start, int *raw)
{
    char                    tmp[16];
    size_t                  plen;
    unsigned                v;
    const char             *piece;
    const kvr_tokenizer_t  *t;

    t = s->conf->tok;
    *start = s->tk.len;
    *raw = -1;

    piece = kvr_tokenizer_id_to_token(t, id, &plen);

    if (piece && plen == 6 && memcmp(piece, "<0x", 3) == 0
        && piece[5] == '>' && ngx_http_dynamo_hexval(piece[3]) >= 0
        && ngx_http_dynamo_hexval(piece[4]) >= 0)
    {
        v = (unsigned) (ngx_http_dynamo_hexval(piece[3]) << 4
                        | ngx_http_dynamo_hexval(piece[4]));
        *raw = (int) v;

        if (v > 0 && v < 0x80) {
            tmp[0] = (char) v;
            return kvr_buf_append(&s->tk, tmp, 1) == KVR_OK ? 0 : -1;
        }

        plen = (size_t) snprintf(tmp, sizeof(tmp), "bytes:\\x%02x", v);
        return kvr_buf_append(&s->tk, tmp, plen) == KVR_OK ? 0 : -1;
    }

    if (s->has_prev) {
        uint32_t  two[2];

        two[0] = s->prev;
        two[1] = id;

        kvr_buf_reset(&s->a);
        kvr_buf_reset(&s->b);

        if (kvr_tokenizer_decode(t, two, 1, 0, &s->a) == KVR_OK
            && kvr_tokenizer_decode(t, two, 2, 0, &s->b) == KVR_OK
            && s->b.len >= s->a.len
            && memcmp(s->a.data, s->b.data, s->a.len) == 0)
        {
            return kvr_buf_append(&s->tk, s->b.data + s->a.len,
                                  s->b.len - s->a.len) == KVR_OK ? 0 : -1;
        }
    }

    return kvr_tokenizer_decode(t, &id, 1, 0, &s->tk) == KVR_OK ? 0 : -1;
}


/* token i of s->frame: its logprobs entry */
static int
ngx_http_dynamo_token_lp(ngx_http_dynamo_stream_t *s, size_t i)
{
    int                           raw;
    size_t                        j, k, m, n, st, ntop, keys[21][2];
    kvr_buf_t                    *c;
    ngx_http_dynamo_frame_t      *f;
    ngx_http_dynamo_frame_top_t  *top;

    f = &s->frame;
    ntop = 0;
    top = NULL;

    if (f->has_top) {
        ntop = f->n_top[i];
        top = &f->top[i * NGX_HTTP_DYNAMO_FRAME_TOP];
    }

    if (ntop > (size_t) s->req->logprobs) {
        ntop = (size_t) s->req->logprobs;
    }

    kvr_buf_reset(&s->tk);

    if (ngx_http_dynamo_token_text(s, f->ids[i], &st, &raw)) {
        return -1;
    }

    if (s->chat) {
        c = &s->lp_content;

        if ((s->n_lp && ngx_http_dynamo_lit(c, ",") != KVR_OK)
            || ngx_http_dynamo_lit(c, "{\"token\":") != KVR_OK
            || ngx_http_dynamo_json_str(c, s->tk.data, s->tk.len)
            || ngx_http_dynamo_lit(c, ",\"logprob\":") != KVR_OK
            || ngx_http_dynamo_json_lp(c, f->lp[i])
            || ngx_http_dynamo_lit(c, ",\"bytes\":") != KVR_OK
            || ngx_http_dynamo_json_bytes(c, s->tk.data, s->tk.len, raw)
            || ngx_http_dynamo_lit(c, ",\"top_logprobs\":[") != KVR_OK)
        {
            return -1;
        }

        for (j = 0; j < ntop; j++) {
            kvr_buf_reset(&s->tk);

            if (ngx_http_dynamo_token_text(s, top[j].id, &st, &raw)
                || (j && ngx_http_dynamo_lit(c, ",") != KVR_OK)
                || ngx_http_dynamo_lit(c, "{\"token\":") != KVR_OK
                || ngx_http_dynamo_json_str(c, s->tk.data, s->tk.len)
                || ngx_http_dynamo_lit(c, ",\"logprob\":") != KVR_OK
                || ngx_http_dynamo_json_lp(c, top[j].lp)
                || ngx_http_dynamo_lit(c, ",\"bytes\":") != KVR_OK
                || ngx_http_dynamo_json_bytes(c, s->tk.data, s->tk.len, raw)
                || ngx_http_dynamo_lit(c, "}") != KVR_OK)
            {
                return -1;
            }
        }

        s->n_lp++;
        return ngx_http_dynamo_lit(c, "]}") == KVR_OK ? 0 : -1;
    }

    /* completions: the sampled token, then the top ones, keys unique */

    if (s->n_lp
        && (ngx_http_dynamo_lit(&s->lp_tokens, ",") != KVR_OK
            || ngx_http_dynamo_lit(&s->lp_values, ",") != KVR_OK
            || ngx_http_dynamo_lit(&s->lp_tops, ",") != KVR_OK
            || ngx_http_dynamo_lit(&s->lp_offsets, ",") != KVR_OK))
    {
        return -1;
    }

    if (ngx_http_dynamo_json_str(&s->lp_tokens, s->tk.data, s->tk.len)
        || ngx_http_dynamo_json_lp(&s->lp_values, f->lp[i])
        || ngx_http_dynamo_json_u64(&s->lp_offsets, s->chars)
        || ngx_http_dynamo_lit(&s->lp_tops, "{") != KVR_OK
        || ngx_http_dynamo_json_str(&s->lp_tops, s->tk.data, s->tk.len)
        || ngx_http_dynamo_lit(&s->lp_tops, ":") != KVR_OK
        || ngx_http_dynamo_json_lp(&s->lp_tops, f->lp[i]))
    {
        return -1;
    }

    keys[0][0] = 0;
    keys[0][1] = s->tk.len;
    n = 1;

    for (j = 0; j < ntop; j++) {
        if (ngx_http_dynamo_token_text(s, top[j].id, &st, &raw)) {
            return -1;
        }

        m = s->tk.len - st;

        for (k = 0; k < n; k++) {
            if (keys[k][1] == m
                && memcmp(s->tk.data + keys[k][0], s->tk.data + st, m) == 0)
            {
                break;
            }
        }

        if (k < n) {
            continue;
        }

        keys[n][0] = st;
        keys[n][1] = m;
        n++;

        if (ngx_http_dynamo_lit(&s->lp_tops, ",") != KVR_OK
            || ngx_http_dynamo_json_str(&s->lp_tops, s->tk.data + st, m)
            || ngx_http_dynamo_lit(&s->lp_tops, ":") != KVR_OK
            || ngx_http_dynamo_json_lp(&s->lp_tops, top[j].lp))
        {
            return -1;
        }
    }

    s->n_lp++;
    return ngx_http_dynamo_lit(&s->lp_tops, "}") == KVR_OK ? 0 : -1;
}


/*
 * Runs s->fresh through the stop matchers into s->held, releasing what
 * can no longer be part of a stop string into s->text. 1: a stop string
 * matched (held is dropped), 0: not, -1: no memory.
 */
static int
ngx_http_dynamo_stop_scan(ngx_http_dynamo_stream_t *s, int final)
{
    size_t                   i, k, base, keep, best;
    unsigned char            ch;
    ngx_http_dynamo_stop_t  *st;

    base = s->held.len;

    if (s->fresh.len
        && kvr_buf_append(&s->held, s->fresh.data, s->fresh.len) != KVR_OK)
    {
        return -1;
    }

    s->chars += ngx_http_dynamo_utf8_chars(s->fresh.data, s->fresh.len);
    kvr_buf_reset(&s->fresh);

    for (i = base; i < s->held.len && s->nstops; i++) {
        ch = (unsigned char) s->held.data[i];
        best = 0;

        for (k = 0; k < s->nstops; k++) {
            st = &s->stops[k];

            while (st->q > 0 && st->s[st->q] != ch) {
                st->q = st->fail[st->q - 1];
            }

            if (st->s[st->q] == ch) {
                st->q++;
            }

            if (st->q == st->len && st->len > best) {
                best = st->len;
            }
        }

        if (best) {
            /* the match ends at i: the text stops where it starts */
            if (kvr_buf_append(&s->text, s->held.data,
                               i + 1 - best) != KVR_OK)
            {
                return -1;
            }

            kvr_buf_reset(&s->held);
            return 1;
        }
    }

    keep = 0;

    if (!final) {
        for (k = 0; k < s->nstops; k++) {
            if (s->stops[k].q > keep) {
                keep = s->stops[k].q;
            }
        }
    }

    if (keep > s->held.len) {
        keep = s->held.len;             /* cannot happen */
    }

    if (s->held.len > keep) {
        if (kvr_buf_append(&s->text, s->held.data, s->held.len - keep)
            != KVR_OK)
        {
            return -1;
        }

        memmove(s->held.data, s->held.data + s->held.len - keep, keep);
        s->held.len = keep;
    }

    return 0;
}


int
ngx_http_dynamo_stream_begin(ngx_http_dynamo_stream_t *s, kvr_buf_t *out)
{
    kvr_buf_t  *c;

    if (s->began) {
        return 0;
    }

    s->began = 1;

    if (!s->streaming || !s->chat) {
        return 0;
    }

    c = &s->chunk;

    if (ngx_http_dynamo_chunk_open(s)
        || ngx_http_dynamo_lit(c, "{\"index\":0,\"delta\":{\"role\":"
                                  "\"assistant\",\"content\":\"\"},"
                                  "\"logprobs\":null,"
                                  "\"finish_reason\":null}]") != KVR_OK
        || (s->req->include_usage
            && ngx_http_dynamo_lit(c, ",\"usage\":null") != KVR_OK)
        || ngx_http_dynamo_lit(c, "}\n\n") != KVR_OK
        || kvr_buf_append(out, c->data, c->len) != KVR_OK)
    {
        return -1;
    }

    return 0;
}


static int
ngx_http_dynamo_tokens(ngx_http_dynamo_stream_t *s, kvr_buf_t *out)
{
    size_t                    i;
    int                       rc;
    ngx_http_dynamo_frame_t  *f;

    f = &s->frame;

    if (s->want_lp && !f->has_lp) {
        return ngx_http_dynamo_failed(s, "worker sent a malformed frame",
                                      out);
    }

    for (i = 0; i < f->n; i++) {
        s->completion++;

        if (s->want_lp && ngx_http_dynamo_token_lp(s, i)) {
            goto nomem;
        }

        s->prev = f->ids[i];
        s->has_prev = 1;

        rc = kvr_detok_push(s->detok, f->ids[i], &s->fresh);

        if (rc == KVR_ERR_INVAL) {
            return ngx_http_dynamo_failed(s, "worker sent a malformed frame",
                                          out);
        }

        if (rc != KVR_OK) {
            goto nomem;
        }

        rc = ngx_http_dynamo_stop_scan(s, 0);

        if (rc < 0) {
            goto nomem;
        }

        if (rc == 1) {
            s->finish = "stop";
            s->cut = 1;
            s->state = NGX_HTTP_DYNAMO_STREAM_DONE;

            if (ngx_http_dynamo_finish(s, out)) {
                goto nomem;
            }

            return NGX_HTTP_DYNAMO_STREAM_DONE;
        }
    }

    if (s->streaming && s->text.len && ngx_http_dynamo_chunk(s, NULL, out)) {
        goto nomem;
    }

    return NGX_HTTP_DYNAMO_STREAM_MORE;

nomem:

    return ngx_http_dynamo_failed(s, "out of memory", out);
}


int
ngx_http_dynamo_stream_line(ngx_http_dynamo_stream_t *s, const char *line,
    size_t len, kvr_buf_t *out)
{
    int                       rc;
    size_t                    mark;
    ngx_http_dynamo_frame_t  *f;

    if (s->state != NGX_HTTP_DYNAMO_STREAM_RUN) {
        return s->state;
    }

    mark = out->len;

    if (!s->began && ngx_http_dynamo_stream_begin(s, out)) {
        out->len = mark;
        return ngx_http_dynamo_failed(s, "out of memory", out);
    }

    f = &s->frame;

    rc = ngx_http_dynamo_frame_parse(f, line, len,
                                     kvr_tokenizer_vocab_size(s->conf->tok));

    if (rc == NGX_HTTP_DYNAMO_FRAME_NOMEM) {
        return ngx_http_dynamo_failed(s, "out of memory", out);
    }

    if (rc != NGX_HTTP_DYNAMO_FRAME_OK) {
        return ngx_http_dynamo_failed(s, "worker sent a malformed frame", out);
    }

    if (f->kind == NGX_HTTP_DYNAMO_FRAME_TOKEN) {
        rc = ngx_http_dynamo_tokens(s, out);

        if (rc == NGX_HTTP_DYNAMO_STREAM_FAILED && !s->streaming) {
            out->len = mark;
        }

        return rc;
    }

    if (f->kind == NGX_HTTP_DYNAMO_FRAME_CANCELLED
        || f->kind == NGX_HTTP_DYNAMO_FRAME_ERROR)
    {
        if (f->has_error && f->error[0]) {
            return ngx_http_dynamo_failed(s, f->error, out);
        }

        return ngx_http_dynamo_failed(s,
                   f->kind == NGX_HTTP_DYNAMO_FRAME_ERROR
                   ? "the worker failed to generate"
                   : "the worker cancelled the request", out);
    }

    s->prompt = f->prompt_tokens;
    s->cached = f->cached_tokens;
    s->finish = f->kind == NGX_HTTP_DYNAMO_FRAME_STOP ? "stop" : "length";

    if (kvr_detok_flush(s->detok, &s->fresh) != KVR_OK) {
        goto nomem;
    }

    rc = ngx_http_dynamo_stop_scan(s, 1);

    if (rc < 0) {
        goto nomem;
    }

    if (rc == 1) {
        s->finish = "stop";
    }

    s->state = NGX_HTTP_DYNAMO_STREAM_DONE;

    if (ngx_http_dynamo_finish(s, out)) {
        goto nomem;
    }

    return NGX_HTTP_DYNAMO_STREAM_DONE;

nomem:

    out->len = mark;
    return ngx_http_dynamo_failed(s, "out of memory", out);
}


void
ngx_http_dynamo_stream_fail(ngx_http_dynamo_stream_t *s, const char *message,
    kvr_buf_t *out)
{
    if (s->state != NGX_HTTP_DYNAMO_STREAM_RUN) {
        return;
    }

    (void) ngx_http_dynamo_failed(s, message ? message : "worker failure",
                                  out);
}


int
ngx_http_dynamo_stream_cut(const ngx_http_dynamo_stream_t *s)
{
    return s->cut;
}


const char *
ngx_http_dynamo_stream_error(const ngx_http_dynamo_stream_t *s)
{
    return s->state == NGX_HTTP_DYNAMO_STREAM_FAILED ? s->error : NULL;
}


const char *
ngx_http_dynamo_stream_finish_reason(const ngx_http_dynamo_stream_t *s)
{
    return s->state == NGX_HTTP_DYNAMO_STREAM_DONE ? s->finish : NULL;
}


void
ngx_http_dynamo_stream_usage(const ngx_http_dynamo_stream_t *s,
    uint64_t *prompt, uint64_t *completion, uint64_t *cached)
{
    *prompt = s->prompt;
    *completion = s->completion;
    *cached = s->cached;
}
