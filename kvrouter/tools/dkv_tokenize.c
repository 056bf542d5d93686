/*
 * dynamo-kv tokenize / detokenize.
 *
 *   dynamo-kv tokenize --tokenizer MODEL_DIR [--no-special] < text
 *   dynamo-kv detokenize --tokenizer MODEL_DIR [--skip-special] < ids
 *   dynamo-kv tokenize --tokenizer MODEL_DIR --bench DOCS.json [--seconds S]
 *
 * tokenize reads all of stdin byte for byte and prints the ids on one
 * line; detokenize reads whitespace-separated ids and prints the text (no
 * newline added). Errors: a message on stderr, exit status 2.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvr_err.h"
#include "kvr_tokenizer.h"
#include "dkv.h"
#include "dkv_tok.h"

static int
read_all(FILE *f, kvr_buf_t *b)
{
    char    chunk[65536];
    size_t  n;

    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (kvr_buf_append(b, chunk, n) != KVR_OK) {
            return -1;
        }
    }
    if (ferror(f)) {
        return -1;
    }
    return kvr_buf_append(b, "", 0) == KVR_OK ? 0 : -1;
}

/* --tokenizer DIR plus the one optional flag; returns 0 or 2. */
typedef struct {
    const char  *bench;     /* tokenize --bench DOCS.json */
    double       seconds;
} bench_opts_t;

/* 0: parsed; 1: --help printed (exit 0); 2: bad usage, reported. */
static int
parse_args(const char *cmd, int argc, char **argv, const char *flag,
    const char **dir, int *flag_set, bench_opts_t *b)
{
    int    i;
    char  *end;

    *dir = NULL;
    *flag_set = 0;
    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: dynamo-kv %s --tokenizer MODEL_DIR [%s]%s\n", cmd,
                   flag, b ? "\n       dynamo-kv tokenize --tokenizer MODEL_DIR"
                             " --bench DOCS.json [--seconds S]" : "");
            return 1;
        } else if (b && strcmp(argv[i], "--bench") == 0 && i + 1 < argc) {
            b->bench = argv[++i];
        } else if (b && strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            b->seconds = strtod(argv[++i], &end);
            if (*end != '\0' || !(b->seconds >= 0 && b->seconds <= 3600)) {
                fprintf(stderr, "dynamo-kv %s: bad --seconds\n", cmd);
                return 2;
            }
        } else if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) {
            *dir = argv[++i];
        } else if (strncmp(argv[i], "--tokenizer=", 12) == 0) {
            *dir = argv[i] + 12;
        } else if (strcmp(argv[i], flag) == 0) {
            *flag_set = 1;
        } else {
            fprintf(stderr, "dynamo-kv %s: unknown or incomplete option \"%s\"\n",
                    cmd, argv[i]);
            return 2;
        }
    }
    if (*dir == NULL || **dir == '\0') {
        fprintf(stderr, "dynamo-kv %s: --tokenizer MODEL_DIR is required\n", cmd);
        return 2;
    }
    return 0;
}

static kvr_tokenizer_t *
load(const char *cmd, const char *dir)
{
    kvr_tokenizer_t  *t;
    char              err[512];
    int               rc;

    rc = kvr_tokenizer_load_dir(dir, &t, err, sizeof(err));
    if (rc != KVR_OK) {
        fprintf(stderr, "dynamo-kv %s: %s: %s\n", cmd, dir,
                err[0] ? err : kvr_strerror(rc));
        return NULL;
    }
    return t;
}

int
dkv_cmd_tokenize(int argc, char **argv)
{
    const char       *dir;
    int               nospecial, rc;
    kvr_tokenizer_t  *t;
    kvr_buf_t         in = {0}, line = {0};
    kvr_ids_t         ids = {0};
    size_t            i;
    char              num[16];
    bench_opts_t      b = {NULL, 1.0};

    rc = parse_args("tokenize", argc, argv, "--no-special", &dir, &nospecial, &b);
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    if (b.bench != NULL) {
        return dkv_tok_bench(dir, b.bench, b.seconds);
    }
    if ((t = load("tokenize", dir)) == NULL) {
        return 2;
    }
    if (read_all(stdin, &in) != 0) {
        fprintf(stderr, "dynamo-kv tokenize: reading stdin: %s\n", strerror(errno));
        kvr_tokenizer_free(t);
        kvr_buf_free(&in);
        return 1;
    }
    rc = kvr_tokenizer_encode(t, in.data, in.len,
                              nospecial ? 0 : KVR_TOK_ADD_SPECIAL, &ids);
    if (rc != KVR_OK) {
        fprintf(stderr, "dynamo-kv tokenize: %s\n", kvr_strerror(rc));
    } else {
        for (i = 0; i < ids.n && rc == KVR_OK; i++) {
            snprintf(num, sizeof(num), i ? " %u" : "%u", (unsigned) ids.ids[i]);
            rc = kvr_buf_append_str(&line, num);
        }
        if (rc == KVR_OK) {
            rc = kvr_buf_append(&line, "\n", 1);
        }
        if (rc == KVR_OK && (fwrite(line.data, 1, line.len, stdout) != line.len
                             || fflush(stdout) != 0))
        {
            rc = KVR_ERR_INVAL;
        }
        rc = rc == KVR_OK ? 0 : 1;
    }
    kvr_ids_free(&ids);
    kvr_buf_free(&in);
    kvr_buf_free(&line);
    kvr_tokenizer_free(t);
    return rc < 0 ? 2 : rc;
}

int
dkv_cmd_detokenize(int argc, char **argv)
{
    const char       *dir;
    int               skip, rc = 0;
    kvr_tokenizer_t  *t;
    kvr_buf_t         in = {0}, out = {0};
    kvr_ids_t         ids = {0};
    char             *p, *end;
    unsigned long     v;
    size_t            pos;

    rc = parse_args("detokenize", argc, argv, "--skip-special", &dir, &skip, NULL);
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    if ((t = load("detokenize", dir)) == NULL) {
        return 2;
    }
    if (read_all(stdin, &in) != 0) {
        fprintf(stderr, "dynamo-kv detokenize: reading stdin: %s\n", strerror(errno));
        rc = 1;
        goto done;
    }
    p = in.data;
    for ( ;; ) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'
               || *p == '\v' || *p == '\f')
        {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        pos = (size_t) (p - in.data);
        errno = 0;
        v = *p >= '0' && *p <= '9' ? strtoul(p, &end, 10) : 0;
        if (*p < '0' || *p > '9' || errno != 0 || v >= kvr_tokenizer_vocab_size(t)
            || (*end != '\0' && *end != ' ' && *end != '\t' && *end != '\n'
                && *end != '\r' && *end != '\v' && *end != '\f')
            || kvr_tokenizer_id_to_token(t, (uint32_t) v, &(size_t) {0}) == NULL)
        {
            fprintf(stderr, "dynamo-kv detokenize: bad token id at byte %zu "
                    "(ids are decimal, below %zu)\n", pos,
                    kvr_tokenizer_vocab_size(t));
            rc = 2;
            goto done;
        }
        if (pos != (size_t) (end - in.data) && kvr_ids_push(&ids, (uint32_t) v) != KVR_OK) {
            rc = 1;
            goto done;
        }
        p = end;
    }
    if (in.len != strlen(in.data)) {
        fprintf(stderr, "dynamo-kv detokenize: NUL byte in input\n");
        rc = 2;
        goto done;
    }
    if (kvr_tokenizer_decode(t, ids.ids, ids.n, skip ? KVR_TOK_SKIP_SPECIAL : 0,
                             &out) != KVR_OK)
    {
        fprintf(stderr, "dynamo-kv detokenize: decode failed\n");
        rc = 2;
        goto done;
    }
    if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
        rc = 1;
    }
done:
    kvr_ids_free(&ids);
    kvr_buf_free(&in);
    kvr_buf_free(&out);
    kvr_tokenizer_free(t);
    return rc;
}
