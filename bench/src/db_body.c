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

/* prompt_0 + reply_0 + ... + prompt; NULL when out of memory. */
static char *concat(const db_request_t *r, const db_body_turn_t *h,
    size_t nh, size_t *out_len)
{
    size_t n = strlen(r->prompt ? r->prompt : "");
    for (size_t i = 0; i < nh; i++)
        n += strlen(h[i].prompt ? h[i].prompt : "") + h[i].reply_len;
    char *s = malloc(n + 1), *p = s;
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < nh; i++) {
        size_t k = strlen(h[i].prompt ? h[i].prompt : "");
        memcpy(p, h[i].prompt, k);
        p += k;
        if (h[i].reply_len > 0)
            memcpy(p, h[i].reply, h[i].reply_len);
        p += h[i].reply_len;
    }
    size_t k = strlen(r->prompt ? r->prompt : "");
    memcpy(p, r->prompt, k);
    p[k] = '\0';
    *out_len = n;
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
        snprintf(err, errlen, "out of memory building a request body");
        return NULL;
    }
    *len = strlen(s);
    return s;
}
