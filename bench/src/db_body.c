/* Request bodies (db_body.h). */

#include "db_body.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static json_t *msg(const char *role, const char *s, size_t n)
{
    json_t *m = json_object();
    if (m == NULL)
        return NULL;
    if (json_object_set_new(m, "role", json_string(role)) != 0
        || json_object_set_new(m, "content", json_stringn(s, n)) != 0) {
        json_decref(m);
        return NULL;
    }
    return m;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * Appends part (n bytes) to s (*len so far; NULL: only counts), with one
 * space before it where neither side has whitespace at the joint. A
 * prompt decoded from token ids starts without a space (sentencepiece-style
 * tokenizers drop the first word's space marker), so plain concatenation
 * would glue the last word of one part to the first of the next. Every
 * later turn repeats the same joints, so the history stays a shared
 * prefix.
 */
static void append(char *s, size_t *len, const char *part, size_t n)
{
    if (n == 0)
        return;
    int sep = *len > 0 && !is_space(part[0])
              && (s == NULL || !is_space(s[*len - 1]));
    if (s != NULL && sep)
        s[*len] = ' ';
    *len += (size_t)sep;
    if (s != NULL)
        memcpy(s + *len, part, n);
    *len += n;
}

/* prompt_0 + reply_0 + ... + prompt, spaced (append) into s; its length.
 * s NULL: an upper bound of it (a separator wherever one might go). */
static size_t join(char *s, const db_request_t *r, const db_body_turn_t *h,
    size_t nh)
{
    size_t len = 0;
    for (size_t i = 0; i < nh; i++) {
        const char *q = h[i].prompt ? h[i].prompt : "";
        append(s, &len, q, strlen(q));
        append(s, &len, h[i].reply, h[i].reply ? h[i].reply_len : 0);
    }
    const char *p = r->prompt ? r->prompt : "";
    append(s, &len, p, strlen(p));
    return len;
}

/* The completions prompt of a turn with history; NULL when out of
 * memory. */
static char *concat(const db_request_t *r, const db_body_turn_t *h,
    size_t nh, size_t *out_len)
{
    char *s = malloc(join(NULL, r, h, nh) + 1);
    if (s == NULL)
        return NULL;
    *out_len = join(s, r, h, nh);
    s[*out_len] = '\0';
    return s;
}

static int build_chat(json_t *root, const db_request_t *r,
    const db_body_turn_t *h, size_t nh)
{
    json_t *msgs = json_array();
    if (msgs == NULL || json_object_set_new(root, "messages", msgs) != 0)
        return -1;
    for (size_t i = 0; i < nh; i++) {
        const char *p = h[i].prompt ? h[i].prompt : "";
        if (json_array_append_new(msgs, msg("user", p, strlen(p))) != 0
            || json_array_append_new(msgs, msg("assistant",
                   h[i].reply ? h[i].reply : "", h[i].reply_len)) != 0)
            return -1;
    }
    const char *p = r->prompt ? r->prompt : "";
    return json_array_append_new(msgs, msg("user", p, strlen(p)));
}

static int build_prompt(json_t *root, const db_opts_t *o,
    const db_request_t *r, const db_body_turn_t *h, size_t nh)
{
    if (nh > 0) {
        size_t n;
        char *s = concat(r, h, nh, &n);
        if (s == NULL)
            return -1;
        json_t *v = json_stringn(s, n);
        free(s);
        return json_object_set_new(root, "prompt", v);
    }
    if (o->prompt_tokens && r->ids != NULL) {
        json_t *a = json_array();
        if (a == NULL || json_object_set_new(root, "prompt", a) != 0)
            return -1;
        for (size_t i = 0; i < r->n_ids; i++)
            if (json_array_append_new(a, json_integer(r->ids[i])) != 0)
                return -1;
        return 0;
    }
    return json_object_set_new(root, "prompt",
        json_string(r->prompt ? r->prompt : ""));
}

char *db_body_build(const db_opts_t *o, const db_request_t *r,
    const db_body_turn_t *hist, size_t n_hist, size_t *len, char *err,
    size_t errlen)
{
    const char *model = o->served_model ? o->served_model
                      : o->model ? o->model : "";
    if (!r->with_history)
        n_hist = 0;

    json_t *root = json_object(), *so = json_object();
    int bad = root == NULL || so == NULL;
    bad = bad || json_object_set_new(root, "model", json_string(model));
    if (o->chat) {
        bad = bad || build_chat(root, r, hist, n_hist);
        bad = bad || json_object_set_new(root, "max_completion_tokens",
                         json_integer(r->output_len));
    } else {
        bad = bad || build_prompt(root, o, r, hist, n_hist);
        bad = bad || json_object_set_new(root, "max_tokens",
                         json_integer(r->output_len));
    }
    bad = bad || json_object_set_new(root, "temperature",
                     json_real(o->temperature));
    bad = bad || json_object_set_new(root, "stream", json_true());
    bad = bad || json_object_set_new(so, "include_usage", json_true());
    bad = bad || json_object_set(root, "stream_options", so);
    if (o->ignore_eos)
        bad = bad || json_object_set_new(root, "ignore_eos", json_true());

    char *s = bad ? NULL : json_dumps(root, JSON_COMPACT);
    json_decref(so);
    json_decref(root);
    if (s == NULL) {
        /* jansson refuses strings that are not UTF-8 */
        snprintf(err, errlen, "cannot build a request body: out of memory, "
            "or a model name or prompt that is not valid UTF-8");
        return NULL;
    }
    *len = strlen(s);
    return s;
}
