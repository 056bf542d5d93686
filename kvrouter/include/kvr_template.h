/*
 * kvrouter: chat templates. A Jinja subset interpreter that renders a
 * model's own chat_template byte-identically to HF's reference Jinja
 * (npm @huggingface/jinja).
 *
 * A compiled kvr_template_t is immutable and may be rendered from several
 * threads at once. A template using a construct the interpreter does not
 * implement fails at load with the construct and its line.
 *
 * Functions return KVR_OK or a negative KVR_ERR_*; err gets the reason.
 */
#ifndef KVR_TEMPLATE_H
#define KVR_TEMPLATE_H

#include <stddef.h>

#include "kvr_buf.h"

struct json_t;

typedef struct kvr_template_s  kvr_template_t;

/* Compiles template source text (at most 4 MiB). */
int kvr_template_compile(const char *src, size_t len, kvr_template_t **out,
    char *err, size_t errlen);

/*
 * Compiles the chat template a model ships: tokenizer_config.json's
 * "chat_template" (a string, or a list of {name, template}; name NULL picks
 * "default", else the first), or DIR/chat_template.jinja when the config has
 * none. KVR_ERR_NOTFOUND when the model has no template, or none of that
 * name.
 */
int kvr_template_load_dir(const char *dir, const char *name,
    kvr_template_t **out, char *err, size_t errlen);
int kvr_template_load_config(const char *config_json, size_t len,
    const char *name, kvr_template_t **out, char *err, size_t errlen);

void kvr_template_free(kvr_template_t *t);

/*
 * The variables a template sees, as HF's JavaScript stack passes them
 * (Template.render({messages, bos_token, eos_token, add_generation_prompt,
 * tools, ...extra})). A NULL json_t or token is left undefined, as there
 * for a token the config does not set. extra's keys may override the
 * fixed ones; one naming a global (namespace, range, true, ...) is an
 * error, as in the reference.
 */
typedef struct {
    const struct json_t  *messages;     /* array of {role, content, ...} */
    const struct json_t  *tools;        /* array or NULL (undefined) */
    const struct json_t  *extra;        /* object of further variables or NULL */
    const char           *bos_token;    /* NULL: undefined (prints as "") */
    const char           *eos_token;
    int                   add_generation_prompt;
    long long             now;          /* strftime_now() clock, Unix seconds
                                           (local time); 0: the current time */
} kvr_template_vars_t;

/*
 * Renders, appending to out (left as it was on error). raise_exception()
 * and runtime type errors give KVR_ERR_INVAL with the message; so do the
 * limits (depth, output, iterations, memory: kvrouter/README.md).
 */
int kvr_template_render(const kvr_template_t *t, const kvr_template_vars_t *v,
    kvr_buf_t *out, char *err, size_t errlen);

#endif
