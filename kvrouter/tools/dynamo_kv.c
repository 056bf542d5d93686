/*
 * dynamo-kv: operator tool for kvrouter.
 *
 *   dynamo-kv hash --block-size B [--lora NAME] < tokens
 *   dynamo-kv bench [...]
 *   dynamo-kv tokenize --tokenizer MODEL_DIR [--no-special] < text
 *   dynamo-kv detokenize --tokenizer MODEL_DIR [--skip-special] < ids
 *   dynamo-kv template --model MODEL_DIR [--no-generation-prompt]
 *       [--template FILE] [--name NAME] [--now UNIX_SECONDS] < json
 *
 * Exit status: 0 ok, 1 failure (e.g. write error), 2 bad usage or input.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvr_hash.h"
#include "dkv.h"
#include "dkv_tokens.h"

#define DKV_BLOCK_SIZE_MAX  (1u << 24)
#define DKV_READ_CHUNK      65536

static const char *usage_text =
    "usage: dynamo-kv <command> [options]\n"
    "\n"
    "commands:\n"
    "  hash --block-size B [--lora NAME]\n"
    "        read token ids (unsigned decimal, whitespace separated) on\n"
    "        stdin; print \"LOCAL SEQ\" per full block of B tokens\n"
    "        (B in 1..16777216; a partial last block is not hashed)\n"
    "  bench [options]\n"
    "        kvrouter benchmarks\n"
    "  tokenize --tokenizer MODEL_DIR [--no-special]\n"
    "        print the token ids of stdin's bytes on one line\n"
    "        (--no-special: no BOS/EOS from the post-processor)\n"
    "  tokenize --tokenizer MODEL_DIR --bench DOCS.json [--seconds S]\n"
    "        tokenizer throughput\n"
    "  detokenize --tokenizer MODEL_DIR [--skip-special]\n"
    "        print the text of the token ids on stdin\n"
    "  template --model MODEL_DIR [--no-generation-prompt]\n"
    "           [--template FILE] [--name NAME] [--now UNIX_SECONDS]\n"
    "        render the model's chat template (or FILE) for\n"
    "        {\"messages\": [...], \"tools\": [...], ...} on stdin\n"
    "  template --model MODEL_DIR --bench N\n"
    "        template rendering throughput\n"
    "\n"
    "exit status: 0 ok, 1 failure, 2 bad usage or input\n";

static int
usage(FILE *out)
{
    fputs(usage_text, out);
    return 2;
}

/* Parses a block size: decimal digits only, 1..DKV_BLOCK_SIZE_MAX. */
static int
parse_block_size(const char *s, size_t *out)
{
    uint64_t  v = 0;

    if (*s == '\0') {
        return -1;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return -1;
        }
        v = v * 10 + (uint64_t) (*s - '0');
        if (v > DKV_BLOCK_SIZE_MAX) {
            return -1;
        }
    }
    if (v == 0) {
        return -1;
    }
    *out = (size_t) v;
    return 0;
}

/* Prints s[0..n) with non-printable bytes escaped, for error messages. */
static void
put_escaped_n(FILE *out, const char *s, size_t n)
{
    const unsigned char  *p = (const unsigned char *) s;
    size_t                i;

    for (i = 0; i < n; i++) {
        if (p[i] == '"' || p[i] == '\\') {
            fprintf(out, "\\%c", p[i]);
        } else if (p[i] < 0x20 || p[i] >= 0x7f) {
            fprintf(out, "\\x%02x", p[i]);
        } else {
            fputc(p[i], out);
        }
    }
}

static void
put_escaped(FILE *out, const char *s)
{
    put_escaped_n(out, s, strlen(s));
}

typedef struct {
    size_t     block_size;
    uint64_t   seed;
    uint32_t  *block;           /* tokens of the block being filled */
    size_t     fill;
    uint64_t   nblocks;
    uint64_t   prev_seq;
} dkv_hasher_t;

static int
on_token(void *ctx, uint32_t token)
{
    dkv_hasher_t  *h = ctx;
    uint64_t       local, seq;

    h->block[h->fill++] = token;
    if (h->fill < h->block_size) {
        return 0;
    }

    local = kvr_hash_local(h->block, h->block_size, h->seed);
    seq = (h->nblocks == 0) ? local : kvr_hash_seq(h->prev_seq, local);
    h->prev_seq = seq;
    h->nblocks++;
    h->fill = 0;

    return printf("%" PRIu64 " %" PRIu64 "\n", local, seq) < 0;
}

static int
hash_stdin(dkv_hasher_t *h)
{
    dkv_tokens_t   tp;
    char          *buf;
    ssize_t        n;
    int            rc;

    buf = malloc(DKV_READ_CHUNK);
    if (buf == NULL) {
        fprintf(stderr, "dynamo-kv hash: out of memory\n");
        return 1;
    }

    dkv_tokens_init(&tp);

    /* read(2), not stdio: hash what has arrived without waiting for more */
    for ( ;; ) {
        /* lines for the blocks so far go out before we may block */
        if (fflush(stdout) != 0) {
            fprintf(stderr, "dynamo-kv hash: writing stdout: %s\n",
                    strerror(errno));
            free(buf);
            return 1;
        }

        n = read(STDIN_FILENO, buf, DKV_READ_CHUNK);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            fprintf(stderr, "dynamo-kv hash: reading stdin: %s\n",
                    strerror(errno));
            free(buf);
            return 1;
        }
        if (n == 0) {
            rc = dkv_tokens_end(&tp, on_token, h);
            break;
        }
        rc = dkv_tokens_feed(&tp, buf, (size_t) n, on_token, h);
        if (rc != DKV_TOK_OK) {
            break;
        }
    }

    free(buf);

    if (rc == DKV_TOK_ESTOP) {
        fprintf(stderr, "dynamo-kv hash: writing stdout: %s\n",
                strerror(errno));
        return 1;
    }
    if (rc != DKV_TOK_OK) {
        fprintf(stderr, "dynamo-kv hash: bad token %" PRIu64
                " (byte offset %" PRIu64 "): \"",
                tp.count + 1, tp.tok_offset);
        /* the text may hold NUL bytes: print by length */
        put_escaped_n(stderr, tp.text, tp.text_len > DKV_TOK_TEXT_MAX
                                       ? DKV_TOK_TEXT_MAX : tp.text_len);
        fprintf(stderr, "%s\": %s\n",
                tp.text_len > DKV_TOK_TEXT_MAX ? "..." : "",
                dkv_tokens_strerror(rc));
        return 2;
    }
    return 0;
}

int
dkv_cmd_hash(int argc, char **argv)
{
    dkv_hasher_t   h;
    const char    *bs = NULL, *lora = NULL, *a;
    int            i, rc;

    for (i = 0; i < argc; i++) {
        a = argv[i];

        if (strcmp(a, "--block-size") == 0 || strcmp(a, "--lora") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "dynamo-kv hash: %s needs a value\n", a);
                return 2;
            }
            if (strcmp(a, "--block-size") == 0) {
                bs = argv[++i];
            } else {
                lora = argv[++i];
            }
        } else if (strncmp(a, "--block-size=", 13) == 0) {
            bs = a + 13;
        } else if (strncmp(a, "--lora=", 7) == 0) {
            lora = a + 7;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            return usage(stdout);
        } else {
            fprintf(stderr, "dynamo-kv hash: unknown argument \"");
            put_escaped(stderr, a);
            fprintf(stderr, "\"\n");
            return 2;
        }
    }

    memset(&h, 0, sizeof(h));

    if (bs == NULL) {
        fprintf(stderr, "dynamo-kv hash: missing --block-size\n");
        return 2;
    }
    if (parse_block_size(bs, &h.block_size) != 0) {
        fprintf(stderr, "dynamo-kv hash: invalid --block-size \"");
        put_escaped(stderr, bs);
        fprintf(stderr, "\": must be an integer in 1..%u\n",
                DKV_BLOCK_SIZE_MAX);
        return 2;
    }

    h.seed = kvr_hash_seed(lora);
    h.block = malloc(h.block_size * sizeof(uint32_t));
    if (h.block == NULL) {
        fprintf(stderr, "dynamo-kv hash: out of memory\n");
        return 1;
    }

    rc = hash_stdin(&h);
    free(h.block);

    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (rc == 0) {
            fprintf(stderr, "dynamo-kv hash: writing stdout: %s\n",
                    strerror(errno));
            rc = 1;
        }
    }
    return rc;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        return usage(stderr);
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        return usage(stdout);
    }
    if (strcmp(argv[1], "hash") == 0) {
        return dkv_cmd_hash(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "bench") == 0) {
        return dkv_cmd_bench(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "tokenize") == 0) {
        return dkv_cmd_tokenize(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "detokenize") == 0) {
        return dkv_cmd_detokenize(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "template") == 0) {
        return dkv_cmd_template(argc - 2, argv + 2);
    }

    fprintf(stderr, "dynamo-kv: unknown command \"");
    put_escaped(stderr, argv[1]);
    fprintf(stderr, "\"\n");
    return usage(stderr);
}
