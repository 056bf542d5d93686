/*
 * dynamo-kv template: renders a model's chat template.
 *
 *   dynamo-kv template --model MODEL_DIR [--no-generation-prompt]
 *       [--template FILE] [--name NAME] [--now UNIX_SECONDS]
 *       [--bench N] < {"messages": [...], "tools": [...], ...}
 *
 * Prints the prompt exactly (no newline added). Other top-level keys of the
 * input become template variables (e.g. "enable_thinking"). bos_token and
 * eos_token come from MODEL_DIR/tokenizer_config.json (a string or
 * {"content": ...}). --template renders FILE instead of the model's own
 * template; --bench N renders N times and prints renders/s instead.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dkv.h"
#include "kvr_err.h"
#include "kvr_template.h"

#define DKV_TMPL_ERR  512

static const char *usage_text =
    "usage: dynamo-kv template --model MODEL_DIR [--no-generation-prompt]\n"
    "           [--template FILE] [--name NAME] [--now UNIX_SECONDS]\n"
    "           [--bench N] < {\"messages\": [...], ...}\n";

static char *
slurp(FILE *f, size_t *len)
{
    char    *buf, *nb;
    size_t   n, cap, r;

    cap = 65536;
    n = 0;
    buf = malloc(cap);
    while (buf) {
        r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) {
            if (ferror(f)) {
                free(buf);
                return NULL;
            }
            break;
        }
        nb = realloc(buf, cap * 2);
        if (nb == NULL) {
            free(buf);
            return NULL;
        }
        buf = nb;
        cap *= 2;
    }
    *len = n;
    return buf;
}

/* a special token: "text" or {"content": "text"}; NULL when unset */
static const char *
token_of(json_t *cfg, const char *key)
{
    json_t  *t;

    t = json_object_get(cfg, key);
    if (json_is_object(t)) {
        t = json_object_get(t, "content");
    }
    return json_is_string(t) ? json_string_value(t) : NULL;
}

static int
load_template(const char *model, const char *file, const char *name,
    kvr_template_t **t, char *err)
{
    FILE    *f;
    char    *src;
    size_t   len;
    int      rc;

    if (file == NULL) {
        return kvr_template_load_dir(model, name, t, err, DKV_TMPL_ERR);
    }
    f = fopen(file, "rb");
    if (f == NULL) {
        snprintf(err, DKV_TMPL_ERR, "%s: cannot open", file);
        return KVR_ERR_NOTFOUND;
    }
    src = slurp(f, &len);
    fclose(f);
    if (src == NULL) {
        snprintf(err, DKV_TMPL_ERR, "%s: cannot read", file);
        return KVR_ERR_INVAL;
    }
    rc = kvr_template_compile(src, len, t, err, DKV_TMPL_ERR);
    free(src);
    return rc;
}

int
dkv_cmd_template(int argc, char **argv)
{
    const char           *model, *file, *name;
    kvr_template_vars_t   v;
    kvr_template_t       *t;
    kvr_buf_t             out;
    json_t               *in, *cfg, *extra, *val;
    json_error_t          je;
    const char           *key;
    char                  err[DKV_TMPL_ERR], path[4096], *input, *end;
    size_t                len;
    long                  bench, i;
    long long             now;
    struct timespec       t0, t1;
    double                secs;
    int                   rc, gen, status;

    model = file = name = NULL;
    gen = 1;
    bench = 0;
    now = 0;
    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--no-generation-prompt") == 0) {
            gen = 0;
            continue;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--model") != 0
            && strcmp(argv[i], "--template") != 0
            && strcmp(argv[i], "--name") != 0
            && strcmp(argv[i], "--now") != 0
            && strcmp(argv[i], "--bench") != 0)
        {
            fprintf(stderr, "template: unknown option: %s\n%s", argv[i],
                    usage_text);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "template: %s needs a value\n%s", argv[i],
                    usage_text);
            return 2;
        }
        if (strcmp(argv[i], "--model") == 0) {
            model = argv[++i];
        } else if (strcmp(argv[i], "--template") == 0) {
            file = argv[++i];
        } else if (strcmp(argv[i], "--name") == 0) {
            name = argv[++i];
        } else if (strcmp(argv[i], "--now") == 0) {
            now = strtoll(argv[++i], &end, 10);
            if (*end || now <= 0) {
                fprintf(stderr, "template: bad --now\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--bench") == 0) {
            bench = strtol(argv[++i], &end, 10);
            if (*end || bench <= 0 || bench > 100000000) {
                fprintf(stderr, "template: --bench must be 1..100000000\n");
                return 2;
            }
        }
    }
    if (model == NULL && file == NULL) {
        fprintf(stderr, "template: --model is required\n%s", usage_text);
        return 2;
    }

    cfg = NULL;
    if (model) {
        snprintf(path, sizeof(path), "%s/tokenizer_config.json", model);
        cfg = json_load_file(path, JSON_DECODE_INT_AS_REAL, &je);
        if (cfg == NULL && file == NULL) {
            FILE  *probe = fopen(path, "rb");

            if (probe) {
                fclose(probe);
                fprintf(stderr, "template: %s: %s\n", path, je.text);
                return 2;
            }
        }
    }

    input = slurp(stdin, &len);
    if (input == NULL) {
        fprintf(stderr, "template: cannot read stdin\n");
        json_decref(cfg);
        return 2;
    }
    in = json_loadb(input, len, JSON_DECODE_INT_AS_REAL, &je);
    free(input);
    if (in == NULL || !json_is_object(in)) {
        fprintf(stderr, "template: input: %s\n",
                in ? "expected a JSON object" : je.text);
        json_decref(in);
        json_decref(cfg);
        return 2;
    }
    if (!json_is_array(json_object_get(in, "messages"))) {
        fprintf(stderr, "template: input: \"messages\" must be an array\n");
        json_decref(in);
        json_decref(cfg);
        return 2;
    }

    err[0] = '\0';
    rc = load_template(model, file, name, &t, err);
    if (rc != KVR_OK) {
        fprintf(stderr, "template: %s\n", err[0] ? err : kvr_strerror(rc));
        json_decref(in);
        json_decref(cfg);
        return 2;
    }

    extra = json_object();
    json_object_foreach(in, key, val) {
        if (strcmp(key, "messages") != 0 && strcmp(key, "tools") != 0) {
            json_object_set(extra, key, val);
        }
    }
    memset(&v, 0, sizeof(v));
    v.messages = json_object_get(in, "messages");
    v.tools = json_object_get(in, "tools");
    v.extra = extra;
    v.bos_token = cfg ? token_of(cfg, "bos_token") : NULL;
    v.eos_token = cfg ? token_of(cfg, "eos_token") : NULL;
    v.add_generation_prompt = gen;
    v.now = now;

    memset(&out, 0, sizeof(out));
    status = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < (bench ? bench : 1); i++) {
        kvr_buf_reset(&out);
        rc = kvr_template_render(t, &v, &out, err, sizeof(err));
        if (rc != KVR_OK) {
            fprintf(stderr, "template: %s\n", err[0] ? err : kvr_strerror(rc));
            status = 2;
            break;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (status == 0 && bench) {
        secs = (double) (t1.tv_sec - t0.tv_sec)
               + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
        printf("%ld renders in %.3f s: %.0f renders/s, %zu bytes each\n",
               bench, secs, secs > 0 ? (double) bench / secs : 0.0, out.len);
    } else if (status == 0 && out.len > 0
               && fwrite(out.data, 1, out.len, stdout) != out.len)
    {
        status = 1;
    }
    if (fflush(stdout) != 0) {
        status = 1;
    }
    kvr_buf_free(&out);
    kvr_template_free(t);
    json_decref(extra);
    json_decref(in);
    json_decref(cfg);
    return status;
}
