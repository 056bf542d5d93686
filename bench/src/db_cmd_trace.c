/*
 * The trace subcommands: `synthesize` writes a Mooncake trace with
 * controllable prefix sharing, `analyze` prints a trace's shape and its
 * theoretical hit rate. Exit 0 done, 2 bad usage or bad input.
 */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "db_cmd.h"
#include "db_trace.h"
#include "db_trace_int.h"

static const char synth_usage[] =
"usage: dynamo-bench synthesize [options]\n"
"Writes a Mooncake/AIPerf trace (JSONL: timestamp ms, input_length,\n"
"output_length, hash_ids, session_id and delay on multi-turn sessions).\n"
"\n"
"  --num-requests N       requests in all (1000)\n"
"  --request-rate R       requests per second, Poisson arrivals (10);\n"
"                         sessions start at R / turns\n"
"  --input-len L          new user tokens per turn, mean (2048)\n"
"  --output-len L         output tokens per turn, mean (256)\n"
"  --range-ratio r        lengths uniform in [L(1-r), L(1+r)] (0.5), the\n"
"                         system prompt cut included; in [0, 1)\n"
"  --block-size B         tokens per hash id (512)\n"
"  --system-prompts K     shared system prompts; each session picks one (4)\n"
"  --system-prompt-len T  system prompt tokens, mean (1024)\n"
"  --turns T              requests per session; turn t's input is the\n"
"                         previous input + its output + new tokens (1)\n"
"  --delay-ms D           a later turn's delay after the previous one (1000)\n"
"  --target-hit-rate h    solve --system-prompt-len so the theoretical hit\n"
"                         rate (see analyze) is h within 0.02; the achieved\n"
"                         rate is printed on stderr\n"
"  --seed S               (0)\n"
"  --output FILE          the trace (- for stdout, the default)\n"
"  -h, --help\n";

static const char analyze_usage[] =
"usage: dynamo-bench analyze FILE [--block-size B] [--json]\n"
"Prints a trace's requests, sessions, duration, rate, ISL/OSL statistics,\n"
"total and unique blocks and its theoretical block hit rate with an\n"
"infinite prefix cache: requests in timestamp order, each request's\n"
"leading blocks cached by earlier requests are hits (a block is cached\n"
"under its whole prefix of ids); hit rate = hits / all blocks.\n"
"--block-size B (512) gives the hit tokens (hit blocks of B tokens, cut\n"
"to each request's input_length) and counts the records that carry\n"
"ceil(input_length / B) hash ids (all of them in a trace made with\n"
"blocks of B: replay it with --trace-block-size B).\n"
"--json prints the figures above the hit tokens as one JSON object.\n"
"FILE - reads stdin; an empty trace or a bad line exits 2.\n";

static int
usage_error(const char *cmd, const char *msg, const char *arg)
{
    fprintf(stderr, "dynamo-bench %s: %s%s%s\n(see dynamo-bench %s --help)\n",
            cmd, msg, arg ? ": " : "", arg ? arg : "", cmd);
    return 2;
}

static int
num(const char *s, double *out)
{
    char  *end;

    errno = 0;
    *out = strtod(s, &end);
    return *s != '\0' && *end == '\0' && errno == 0 && isfinite(*out)
           ? 0 : -1;
}

static int
integer(const char *s, long long min, long long max, long long *out)
{
    char  *end;

    errno = 0;
    *out = strtoll(s, &end, 10);
    return *s != '\0' && *end == '\0' && errno == 0 && *out >= min
           && *out <= max ? 0 : -1;
}

/* "--name value" or "--name=value": the value, or NULL (*i advanced). */
static const char *
flag_value(int argc, char **argv, int *i, const char *name, int *matched)
{
    size_t  n = strlen(name);
    char   *a = argv[*i];

    *matched = 0;
    if (strncmp(a, name, n) != 0) {
        return NULL;
    }
    if (a[n] == '=') {
        *matched = 1;
        return a + n + 1;
    }
    if (a[n] != '\0') {
        return NULL;
    }
    *matched = 1;
    if (*i + 1 >= argc) {
        return NULL;
    }
    return argv[++*i];
}

/* synthesize's numeric flags, in the order of the table below */
enum {
    F_NUM, F_RATE, F_ISL, F_OSL, F_RATIO, F_BLOCK, F_SYS_N, F_SYS_LEN,
    F_TURNS, F_DELAY, F_TARGET, F_SEED, F_COUNT
};

static const struct {
    const char  *name;
    int          is_int;
    long long    min, max;
} synth_flags[] = {
    { "--num-requests", 1, 1, 10000000 },
    { "--request-rate", 0, 0, 0 },
    { "--input-len", 1, 1, 1 << 22 },
    { "--output-len", 1, 1, 1 << 22 },
    { "--range-ratio", 0, 0, 0 },
    { "--block-size", 1, 1, 1 << 20 },
    { "--system-prompts", 1, 0, 1000000 },
    { "--system-prompt-len", 1, 0, 1 << 22 },
    { "--turns", 1, 1, 100000 },
    { "--delay-ms", 0, 0, 0 },
    { "--target-hit-rate", 0, 0, 0 },
    { "--seed", 1, 0, 0x7fffffffffffffffLL },
};
_Static_assert(sizeof(synth_flags) / sizeof(synth_flags[0]) == F_COUNT,
               "one table row per flag");

/* One synthesize flag's value into d[f] (the seed into *seed): 0, or 2
 * with a message. */
static int
synth_value(int f, const char *v, double *d, uint64_t *seed)
{
    long long  ll;

    if (synth_flags[f].is_int) {
        if (integer(v, synth_flags[f].min, synth_flags[f].max, &ll) != 0) {
            fprintf(stderr, "dynamo-bench synthesize: %s must be an "
                    "integer in [%lld, %lld], not '%s'\n",
                    synth_flags[f].name, synth_flags[f].min,
                    synth_flags[f].max, v);
            return 2;
        }
        d[f] = (double) ll;
        if (f == F_SEED) {
            *seed = (uint64_t) ll;
        }
    } else if (num(v, &d[f]) != 0) {
        fprintf(stderr, "dynamo-bench synthesize: %s must be a number, "
                "not '%s'\n", synth_flags[f].name, v);
        return 2;
    }
    return 0;
}

/* synthesize's arguments into *c and *output: 0, 1 after --help, 2 with a
 * message. */
static int
synth_args(int argc, char **argv, db_synth_conf_t *c, const char **output)
{
    const char  *v;
    double       d[F_COUNT] = { 0 };
    int          i, f, matched, set[F_COUNT] = { 0 };

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(synth_usage, stdout);
            return 1;
        }
        v = flag_value(argc, argv, &i, "--output", &matched);
        if (matched) {
            if (v == NULL) {
                return usage_error("synthesize", "missing value",
                                   "--output");
            }
            *output = v;
            continue;
        }
        for (f = 0; f < F_COUNT; f++) {
            v = flag_value(argc, argv, &i, synth_flags[f].name, &matched);
            if (matched) {
                break;
            }
        }
        if (!matched) {
            return usage_error("synthesize", "unknown argument", argv[i]);
        }
        if (v == NULL) {
            return usage_error("synthesize", "missing value",
                               synth_flags[f].name);
        }
        if (synth_value(f, v, d, &c->seed) != 0) {
            return 2;
        }
        set[f] = 1;
    }
    if (set[F_NUM]) c->num_requests = (size_t) d[F_NUM];
    if (set[F_RATE]) c->request_rate = d[F_RATE];
    if (set[F_ISL]) c->isl = (int) d[F_ISL];
    if (set[F_OSL]) c->osl = (int) d[F_OSL];
    if (set[F_RATIO]) c->len_ratio = d[F_RATIO];
    if (set[F_BLOCK]) c->block_size = (int) d[F_BLOCK];
    if (set[F_SYS_N]) c->system_prompts = (int) d[F_SYS_N];
    if (set[F_SYS_LEN]) c->system_len = (int) d[F_SYS_LEN];
    if (set[F_TURNS]) c->turns = (int) d[F_TURNS];
    if (set[F_DELAY]) c->delay_ms = d[F_DELAY];
    if (set[F_TARGET]) {
        c->target_hit = d[F_TARGET];
        if (!(c->target_hit >= 0)) {
            return usage_error("synthesize", "--target-hit-rate must be in "
                               "[0, 1)", NULL);
        }
    }
    return 0;
}

/* Writes tr to output ("-": stdout); a failed write removes a regular
 * file it made (never a device such as /dev/full). */
static int
synth_output(const db_trace_t *tr, const char *output, char *err,
    size_t errlen)
{
    FILE         *out = stdout;
    struct stat   st;
    int           rc;

    if (strcmp(output, "-") != 0) {
        out = fopen(output, "w");
        if (out == NULL) {
            snprintf(err, errlen, "%s: %s", output, strerror(errno));
            return -1;
        }
    }
    rc = db_synth_write_trace(tr, out);
    if (out == stdout) {
        rc = fflush(out) != 0 ? -1 : rc;
    } else {
        rc = fclose(out) != 0 ? -1 : rc;
        if (rc != 0 && stat(output, &st) == 0 && S_ISREG(st.st_mode)) {
            remove(output);
        }
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s: write error", output);
    }
    return rc;
}

int
db_cmd_synthesize(int argc, char **argv)
{
    db_synth_conf_t  c = {
        .num_requests = 1000, .request_rate = 10, .block_size = 512,
        .isl = 2048, .osl = 256, .len_ratio = 0.5, .system_prompts = 4,
        .system_len = 1024, .turns = 1, .delay_ms = 1000,
        .target_hit = -1, .seed = 0
    };
    const char  *output = "-";
    db_trace_t   tr;
    char         err[512];
    double       hit;
    int          rc;

    rc = synth_args(argc, argv, &c, &output);
    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    /* the trace first: a refused configuration leaves --output alone */
    rc = db_synth_build(&c, &tr, &hit, err, sizeof(err));
    if (rc == 0) {
        rc = synth_output(&tr, output, err, sizeof(err));
        db_trace_free(&tr);
    }
    if (rc != 0) {
        fprintf(stderr, "dynamo-bench synthesize: %s\n", err);
        return 2;
    }
    fprintf(stderr, "dynamo-bench synthesize: %zu requests, theoretical hit "
            "rate %.4f%s\n", c.num_requests, hit,
            c.target_hit >= 0 ? " (target met)" : "");
    return 0;
}

int
db_cmd_analyze(int argc, char **argv)
{
    const char     *path = NULL, *v;
    db_trace_t      tr;
    db_analysis_t   a;
    char            err[512];
    long long       bs = 512;
    size_t          fit = 0, j;
    uint64_t        hit_tok = 0, in_tok = 0;
    int             i, matched, json = 0;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(analyze_usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
            continue;
        }
        v = flag_value(argc, argv, &i, "--block-size", &matched);
        if (matched) {
            if (v == NULL || integer(v, 1, 1 << 20, &bs) != 0) {
                return usage_error("analyze", "--block-size must be an "
                                   "integer in [1, 1048576]", v);
            }
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return usage_error("analyze", "unknown argument", argv[i]);
        }
        if (path != NULL) {
            return usage_error("analyze", "one trace file only", argv[i]);
        }
        path = argv[i];
    }
    if (path == NULL) {
        return usage_error("analyze", "missing the trace FILE", NULL);
    }
    if (db_trace_load(path, &tr, err, sizeof(err)) != 0) {
        fprintf(stderr, "dynamo-bench analyze: %s\n", err);
        return 2;
    }
    if (tr.n == 0) {
        db_trace_free(&tr);
        fprintf(stderr, "dynamo-bench analyze: %s: the trace has no "
                "requests\n", path);
        return 2;
    }
    db_trace_analyze(&tr, &a);
    /* also the check that analyze had the memory it needed */
    if (db_trace_hit_tokens(&tr, bs, &hit_tok) != 0) {
        db_trace_free(&tr);
        fprintf(stderr, "dynamo-bench analyze: out of memory\n");
        return 2;
    }
    for (j = 0; j < tr.n; j++) {
        const db_trace_rec_t  *r = &tr.v[j];

        /* a trace made with this block size has ceil(ISL / B) ids */
        fit += r->n_hash_ids == (size_t) ((r->input_length + bs - 1) / bs);
        in_tok += (uint64_t) r->input_length;
    }
    if (json) {
        db_analysis_json(&a, stdout);
    } else {
        db_analysis_print(&a, stdout);
        printf("%-28s %llu of %llu input tokens (%.4f)\n", "Hit tokens:",
               (unsigned long long) hit_tok, (unsigned long long) in_tok,
               in_tok ? (double) hit_tok / (double) in_tok : 0);
        printf("%-28s %zu of %zu (--block-size %lld)\n",
               "ceil(ISL / block) ids:", fit, tr.n, bs);
    }
    db_trace_free(&tr);
    return fflush(stdout) == 0 ? 0 : 2;
}
