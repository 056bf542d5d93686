/*
 * dynamo-bench's run options: vLLM's benchmark_serving flag names, parsed
 * with getopt_long from one table that also writes --help, so a flag and
 * its documentation cannot drift apart.
 *
 * vLLM's argparse accepts --flag value, --flag=value and underscores
 * (--num_prompts); --goodput takes several words (nargs="+"). argv is
 * normalized first (underscores in flag names become dashes, the words
 * after --goodput and --concurrency are joined into one argument), then
 * getopt_long runs over the copy.
 */

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db_opts_int.h"

enum {
    O_HELP = 'h',
    O_BASE_URL = 256, O_HOST, O_PORT, O_ENDPOINT, O_BACKEND, O_MODEL,
    O_SERVED_MODEL, O_TOKENIZER, O_API_KEY, O_HEADER, O_PROMPT_FORMAT,
    O_TRUST_REMOTE_CODE,
    O_DATASET_NAME, O_DATASET_PATH, O_NUM_PROMPTS, O_SEED,
    O_RANDOM_INPUT_LEN, O_RANDOM_OUTPUT_LEN, O_RANDOM_RANGE_RATIO,
    O_RANDOM_PREFIX_LEN,
    O_TRACE_BLOCK_SIZE, O_TRACE_SPEEDUP, O_TRACE_SCHEDULE,
    O_NUM_SESSIONS, O_SESSION_TURNS, O_SESSION_SYSTEM_LEN,
    O_SESSION_INPUT_LEN, O_SESSION_OUTPUT_LEN, O_SESSION_THINK_MS,
    O_TEMPERATURE, O_IGNORE_EOS,
    O_MAX_CONCURRENCY, O_REQUEST_RATE, O_BURSTINESS, O_DURATION,
    O_NUM_WARMUPS, O_REQUEST_TIMEOUT, O_CONCURRENCY,
    O_GOODPUT, O_PERCENTILE_METRICS, O_METRIC_PERCENTILES,
    O_SAVE_RESULT, O_SAVE_DETAILED, O_RESULT_DIR, O_RESULT_FILENAME,
    O_LABEL, O_PLOT, O_DISABLE_TQDM
};

typedef struct {
    const char  *name;
    int          has_arg;
    int          id;
    const char  *metavar;   /* NULL for a switch */
    const char  *help;      /* NULL: a group heading in name */
} db_flag_t;

#define GROUP(title) { title, 0, 0, NULL, NULL }

static const db_flag_t flags[] = {
    GROUP("Target"),
    { "base-url", 1, O_BASE_URL, "URL",
      "server base URL; wins over --host/--port "
      "(default http://HOST:PORT)" },
    { "host", 1, O_HOST, "HOST", "server host (127.0.0.1)" },
    { "port", 1, O_PORT, "PORT", "server port (8000)" },
    { "endpoint", 1, O_ENDPOINT, "PATH",
      "API path (/v1/completions; /v1/chat/completions with "
      "--backend openai-chat); a chat path sends chat requests" },
    { "backend", 1, O_BACKEND, "NAME",
      "openai | vllm (completions) | openai-chat (chat) (openai)" },
    { "model", 1, O_MODEL, "NAME",
      "model name; also the tokenizer when it is a directory with "
      "tokenizer.json" },
    { "served-model-name", 1, O_SERVED_MODEL, "NAME",
      "\"model\" sent to the server (default --model)" },
    { "tokenizer", 1, O_TOKENIZER, "DIR",
      "directory with tokenizer.json: prompt lengths and output token "
      "counts when the server sends no usage" },
    { "api-key", 1, O_API_KEY, "KEY",
      "bearer token (default $OPENAI_API_KEY)" },
    { "header", 1, O_HEADER, "'K: V'", "extra request header; repeatable" },
    { "prompt-format", 1, O_PROMPT_FORMAT, "FMT",
      "text | tokens: send token ids (completions only) (text)" },
    { "trust-remote-code", 0, O_TRUST_REMOTE_CODE, NULL,
      "accepted for vLLM scripts; no effect" },

    GROUP("Dataset"),
    { "dataset-name", 1, O_DATASET_NAME, "NAME",
      "random | trace (Mooncake/AIPerf JSONL; also 'mooncake') | "
      "sessions (random)" },
    { "dataset-path", 1, O_DATASET_PATH, "FILE",
      "the trace file (--dataset-name trace)" },
    { "num-prompts", 1, O_NUM_PROMPTS, "N",
      "timed requests (1000; trace: all its lines unless given; "
      "sessions: sessions x turns, not used)" },
    { "seed", 1, O_SEED, "N", "random seed for prompts and arrivals (0)" },

    GROUP("random dataset"),
    { "random-input-len", 1, O_RANDOM_INPUT_LEN, "N",
      "input tokens per request, after the prefix (1024)" },
    { "random-output-len", 1, O_RANDOM_OUTPUT_LEN, "N",
      "output tokens per request (max_tokens) (128)" },
    { "random-range-ratio", 1, O_RANDOM_RANGE_RATIO, "R",
      "lengths uniform in [len*(1-R), len*(1+R)], 0 <= R < 1 (0)" },
    { "random-prefix-len", 1, O_RANDOM_PREFIX_LEN, "N",
      "tokens of one prefix shared by every request (0)" },

    GROUP("trace dataset"),
    { "trace-block-size", 1, O_TRACE_BLOCK_SIZE, "N",
      "tokens per hash id (512)" },
    { "trace-speedup", 1, O_TRACE_SPEEDUP, "X",
      "timestamps divided by X (1)" },
    { "trace-schedule", 1, O_TRACE_SCHEDULE, "MODE",
      "fixed: send at the trace's timestamps | none: as fast as "
      "--max-concurrency allows (fixed)" },

    GROUP("sessions dataset"),
    { "num-sessions", 1, O_NUM_SESSIONS, "N",
      "concurrent conversations (8)" },
    { "session-turns", 1, O_SESSION_TURNS, "N",
      "turns per conversation; each carries the whole history (4)" },
    { "session-system-len", 1, O_SESSION_SYSTEM_LEN, "N",
      "tokens of the system prompt shared by all sessions (256)" },
    { "session-input-len", 1, O_SESSION_INPUT_LEN, "N",
      "new user tokens per turn (128)" },
    { "session-output-len", 1, O_SESSION_OUTPUT_LEN, "N",
      "output tokens per turn (64)" },
    { "session-think-ms", 1, O_SESSION_THINK_MS, "MS",
      "wait after a reply before the next turn (0)" },

    GROUP("Sampling"),
    { "temperature", 1, O_TEMPERATURE, "T", "sampling temperature (0)" },
    { "ignore-eos", 0, O_IGNORE_EOS, NULL,
      "send ignore_eos: true (vLLM's extension)" },

    GROUP("Load"),
    { "max-concurrency", 1, O_MAX_CONCURRENCY, "N",
      "requests in flight at most (unlimited)" },
    { "request-rate", 1, O_REQUEST_RATE, "R",
      "requests per second, or inf: all at once (inf)" },
    { "burstiness", 1, O_BURSTINESS, "B",
      "gamma arrivals of shape B; 1 is Poisson, < 1 burstier (1)" },
    { "duration", 1, O_DURATION, "S",
      "stop sending after S seconds, reusing the prompts when they run "
      "out; with rate inf and no --max-concurrency, at most as many in "
      "flight as there are prompts (none)" },
    { "num-warmups", 1, O_NUM_WARMUPS, "N",
      "requests completed before the timed run, left out of every "
      "figure (0)" },
    { "request-timeout", 1, O_REQUEST_TIMEOUT, "S",
      "a request still open after S seconds fails (600)" },
    { "concurrency", 1, O_CONCURRENCY, "N,N,..",
      "sweep: one run per --max-concurrency value, then a table" },

    GROUP("Metrics"),
    { "goodput", 1, O_GOODPUT, "KEY:MS ..",
      "SLOs for goodput, keys ttft, tpot, e2el, in ms; space- or "
      "comma-separated, repeatable (none)" },
    { "percentile-metrics", 1, O_PERCENTILE_METRICS, "LIST",
      "metrics with percentiles: ttft,tpot,itl,e2el (ttft,tpot,itl)" },
    { "metric-percentiles", 1, O_METRIC_PERCENTILES, "LIST",
      "percentiles, each in (0, 100] (50,90,99)" },

    GROUP("Output"),
    { "save-result", 0, O_SAVE_RESULT, NULL,
      "write the summary as JSON and CSV" },
    { "save-detailed", 0, O_SAVE_DETAILED, NULL,
      "also write one JSON line per request" },
    { "result-dir", 1, O_RESULT_DIR, "DIR", "where results go (.)" },
    { "result-filename", 1, O_RESULT_FILENAME, "NAME",
      "file name (default dynamo-bench-DATASET-LABEL-cN-Rqps-TIME)" },
    { "label", 1, O_LABEL, "NAME",
      "name of this run in file names and summaries (the model)" },
    { "plot", 0, O_PLOT, NULL,
      "PNG plots through gnuplot: TTFT/TPOT CDFs, sweep curves" },
    { "disable-tqdm", 0, O_DISABLE_TQDM, NULL, "no progress bar" },
    { "help", 0, O_HELP, NULL, "this help" },
};

#define N_FLAGS (sizeof(flags) / sizeof(flags[0]))

/* Prompt tokens a random dataset may hold (ids and text: some 8 GB). */
#define MAX_PROMPT_TOKENS  1e9

static const char *usage_examples =
    "Examples:\n"
    "  dynamo-bench --base-url http://127.0.0.1:8080 --model stories260K \\\n"
    "      --tokenizer models/stories260K --random-input-len 512 \\\n"
    "      --random-output-len 64 --num-prompts 200 --max-concurrency 16\n"
    "  dynamo-bench --endpoint /v1/chat/completions --model M --tokenizer "
    "DIR \\\n"
    "      --request-rate 4 --burstiness 0.5 --goodput ttft:500 tpot:50\n"
    "  dynamo-bench --model M --tokenizer DIR --concurrency 1,4,16,64 \\\n"
    "      --num-prompts 256 --save-result --plot\n"
    "  dynamo-bench --dataset-name trace --dataset-path trace.jsonl \\\n"
    "      --trace-speedup 2 --model M --tokenizer DIR\n";

/* Prints text word-wrapped to 79 columns, continuation lines indented by
 * indent spaces; the first line starts at column col. */
static void
wrap(FILE *out, const char *text, int col, int indent)
{
    const char *p = text;

    while (*p != '\0') {
        size_t  w = strcspn(p, " ");

        if (col > indent && col + 1 + (int) w > 79) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        }
        fprintf(out, "%.*s", (int) w, p);
        col += (int) w;
        p += w;
        while (*p == ' ') {
            p++;
        }
    }
    fputc('\n', out);
}

void
db_opts_usage(FILE *out)
{
    size_t  i;
    char    left[64];

    fprintf(out, "Run flags (dynamo-bench [run] [flags]; vLLM's "
        "benchmark_serving names;\n--flag value, --flag=value and "
        "--flag_name all work):\n");
    for (i = 0; i < N_FLAGS; i++) {
        const db_flag_t *f = &flags[i];

        if (f->help == NULL) {
            fprintf(out, "\n%s:\n", f->name);
            continue;
        }
        if (f->metavar != NULL) {
            snprintf(left, sizeof(left), "--%s %s", f->name, f->metavar);
        } else {
            snprintf(left, sizeof(left), "--%s", f->name);
        }
        if (strlen(left) > 24) {
            fprintf(out, "  %s\n%*s", left, 28, "");
        } else {
            fprintf(out, "  %-24s  ", left);
        }
        wrap(out, f->help, 28, 28);
    }
    fprintf(out, "\n%s", usage_examples);
}

void
db_opts_defaults(db_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->dataset = DB_DATA_RANDOM;
    o->num_prompts = 1000;
    o->random.input_len = 1024;
    o->random.output_len = 128;
    o->random.range_ratio = 0.0;
    o->random.prefix_len = 0;
    o->sessions.sessions = 8;
    o->sessions.turns = 4;
    o->sessions.system_len = 256;
    o->sessions.input_len = 128;
    o->sessions.output_len = 64;
    o->sessions.think_s = 0.0;
    o->trace.block_size = 512;
    o->trace.speedup = 1.0;
    o->trace.fixed_schedule = 1;
    o->temperature = 0.0;
    o->request_rate = 0.0;
    o->burstiness = 1.0;
    o->timeout_s = 600.0;
    o->goodput_ttft_ms = -1.0;
    o->goodput_tpot_ms = -1.0;
    o->goodput_e2el_ms = -1.0;
    o->pct_metrics = DB_M_TTFT | DB_M_TPOT | DB_M_ITL;
    o->pcts[0] = 50.0;
    o->pcts[1] = 90.0;
    o->pcts[2] = 99.0;
    o->n_pcts = 3;
}

void
db_opts_free(db_opts_t *o)
{
    size_t  i;

    free(o->base_url);
    free(o->endpoint);
    free(o->model);
    free(o->served_model);
    free(o->tokenizer);
    free(o->api_key);
    for (i = 0; i < o->n_headers; i++) {
        free(o->headers[i]);
    }
    free(o->headers);
    free(o->dataset_path);
    free(o->result_dir);
    free(o->result_filename);
    free(o->label);
    memset(o, 0, sizeof(*o));
}

/* Numbers: the whole string, finite, within bounds; the flag named. */

static int
add_header(db_opts_t *o, const char *h, char *err, size_t errlen)
{
    const char  *colon = strchr(h, ':');
    char       **v;
    size_t       i;

    if (colon == NULL || colon == h) {
        return db_fail(err, errlen,
            "--header: '%s' is not 'Name: value'", h);
    }
    for (i = 0; h + i < colon; i++) {
        unsigned char c = (unsigned char) h[i];
        if (c <= ' ' || c >= 127) {
            return db_fail(err, errlen, "--header: bad name in '%s'", h);
        }
    }
    if (strpbrk(h, "\r\n") != NULL) {
        return db_fail(err, errlen, "--header: line breaks in '%s'", h);
    }
    v = realloc(o->headers, (o->n_headers + 1) * sizeof(*v));
    if (v == NULL) {
        return db_fail(err, errlen, "out of memory");
    }
    o->headers = v;
    v[o->n_headers] = strdup(h);
    if (v[o->n_headers] == NULL) {
        return db_fail(err, errlen, "out of memory");
    }
    o->n_headers++;
    return 0;
}

/* Flags that take several words (argparse nargs="+"). */
static int
multi_word_flag(const char *name, size_t len)
{
    return (len == 7 && memcmp(name, "goodput", 7) == 0)
        || (len == 11 && memcmp(name, "concurrency", 11) == 0);
}

/*
 * Copies argv with underscores in long flag names turned into dashes
 * ("--num_prompts=5" -> "--num-prompts=5") and the words after a
 * multi-word flag joined with spaces. Returns the new argc, -1 on ENOMEM.
 * The strings are malloc'd into *own (freed with free_argv).
 */
static void
free_argv(char **v, int n)
{
    int  i;

    if (v == NULL) {
        return;
    }
    for (i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static int
normalize_argv(int argc, char **argv, char ***out)
{
    char  **v;
    int     i, n = 0;

    v = calloc((size_t) argc + 1, sizeof(*v));
    if (v == NULL) {
        return -1;
    }
    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        size_t      nlen;
        char       *c;

        c = strdup(a);
        if (c == NULL) {
            free_argv(v, n);
            return -1;
        }
        v[n++] = c;
        if (i == 0 || strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (i > 0 && strcmp(a, "--") == 0) {
                /* the rest are positional: copy as they are */
                for (i++; i < argc; i++) {
                    if ((v[n] = strdup(argv[i])) == NULL) {
                        free_argv(v, n);
                        return -1;
                    }
                    n++;
                }
                break;
            }
            continue;
        }
        nlen = strcspn(c + 2, "=");
        for (size_t k = 2; k < 2 + nlen; k++) {
            if (c[k] == '_') {
                c[k] = '-';
            }
        }
        if (!multi_word_flag(c + 2, nlen)) {
            continue;
        }
        /* join the following words that are not flags */
        while (i + 1 < argc && argv[i + 1][0] != '\0'
               && !(argv[i + 1][0] == '-' && argv[i + 1][1] == '-'))
        {
            size_t  l1 = strlen(c), l2 = strlen(argv[i + 1]);
            int     first = strchr(c, '=') == NULL;
            char   *j = realloc(c, l1 + l2 + 2);

            if (j == NULL) {
                free_argv(v, n);
                return -1;
            }
            c = j;
            if (first) {
                /* "--goodput" "ttft:5" -> "--goodput=ttft:5" */
                c[l1] = '=';
            } else {
                c[l1] = ' ';
            }
            memcpy(c + l1 + 1, argv[i + 1], l2 + 1);
            v[n - 1] = c;
            i++;
        }
    }
    v[n] = NULL;
    *out = v;
    return n;
}

static int
parse_dataset(db_opts_t *o, const char *s, char *err, size_t errlen)
{
    if (strcmp(s, "random") == 0) {
        o->dataset = DB_DATA_RANDOM;
    } else if (strcmp(s, "trace") == 0 || strcmp(s, "mooncake") == 0) {
        o->dataset = DB_DATA_TRACE;
    } else if (strcmp(s, "sessions") == 0) {
        o->dataset = DB_DATA_SESSIONS;
    } else {
        return db_fail(err, errlen, "--dataset-name: unknown dataset '%s' "
            "(random, trace, sessions)", s);
    }
    return 0;
}

typedef struct {
    const char  *host;
    int          port;
    const char  *backend;
    int          endpoint_set;
    int          disable_tqdm;
    int          metrics_set;
    int          pcts_set;
} parse_state_t;

static int
apply(db_opts_t *o, parse_state_t *st, int id, const char *flag,
    const char *a, char *err, size_t errlen)
{
    size_t  n;
    double  d;

    switch (id) {
    case O_BASE_URL:
        if (strncmp(a, "http://", 7) != 0 && strncmp(a, "https://", 8) != 0)
        {
            return db_fail(err, errlen,
                "--base-url: '%s' is not an http:// or "
                "https:// URL", a);
        }
        if (db_opt_str(&o->base_url, a, err, errlen) != 0) {
            return -1;
        }
        n = strlen(o->base_url);
        while (n > 0 && o->base_url[n - 1] == '/') {
            o->base_url[--n] = '\0';
        }
        return 0;
    case O_HOST:
        if (*a == '\0') {
            return db_fail(err, errlen, "--host: empty");
        }
        st->host = a;
        return 0;
    case O_PORT:
        {
            long long p;
            if (db_opt_long(flag, a, 1, 65535, &p, err, errlen) != 0) {
                return -1;
            }
            st->port = (int) p;
            return 0;
        }
    case O_ENDPOINT:
        if (a[0] != '/') {
            return db_fail(err, errlen,
                "--endpoint: '%s' must start with /",
                a);
        }
        st->endpoint_set = 1;
        return db_opt_str(&o->endpoint, a, err, errlen);
    case O_BACKEND:
        if (strcmp(a, "openai") != 0 && strcmp(a, "vllm") != 0
            && strcmp(a, "openai-chat") != 0)
        {
            return db_fail(err, errlen, "--backend: unknown backend '%s' "
                "(openai, vllm, openai-chat)", a);
        }
        st->backend = a;
        return 0;
    case O_MODEL:
        return db_opt_str(&o->model, a, err, errlen);
    case O_SERVED_MODEL:
        return db_opt_str(&o->served_model, a, err, errlen);
    case O_TOKENIZER:
        return db_opt_str(&o->tokenizer, a, err, errlen);
    case O_API_KEY:
        return db_opt_str(&o->api_key, a, err, errlen);
    case O_HEADER:
        return add_header(o, a, err, errlen);
    case O_PROMPT_FORMAT:
        if (strcmp(a, "text") == 0) {
            o->prompt_tokens = 0;
        } else if (strcmp(a, "tokens") == 0) {
            o->prompt_tokens = 1;
        } else {
            return db_fail(err, errlen,
                "--prompt-format: '%s' is not text or "
                "tokens", a);
        }
        return 0;
    case O_TRUST_REMOTE_CODE:
        return 0;
    case O_DATASET_NAME:
        return parse_dataset(o, a, err, errlen);
    case O_DATASET_PATH:
        return db_opt_str(&o->dataset_path, a, err, errlen);
    case O_NUM_PROMPTS:
        o->num_prompts_set = 1;
        return db_opt_count(flag, a, 1, &o->num_prompts, err, errlen);
    case O_SEED:
        {
            long long s;
            if (db_opt_long(flag, a, 0, INT64_MAX, &s, err, errlen) != 0) {
                return -1;
            }
            o->seed = (uint64_t) s;
            return 0;
        }
    case O_RANDOM_INPUT_LEN:
        return db_opt_int(flag, a, 1, &o->random.input_len, err, errlen);
    case O_RANDOM_OUTPUT_LEN:
        return db_opt_int(flag, a, 1, &o->random.output_len, err, errlen);
    case O_RANDOM_RANGE_RATIO:
        return db_opt_double(flag, a, 0.0, 0, 1.0, 1, &o->random.range_ratio,
            err, errlen);
    case O_RANDOM_PREFIX_LEN:
        return db_opt_int(flag, a, 0, &o->random.prefix_len, err, errlen);
    case O_TRACE_BLOCK_SIZE:
        return db_opt_int(flag, a, 1, &o->trace.block_size, err, errlen);
    case O_TRACE_SPEEDUP:
        return db_opt_double(flag, a, 0.0, 1, HUGE_VAL, 0, &o->trace.speedup,
            err, errlen);
    case O_TRACE_SCHEDULE:
        if (strcmp(a, "fixed") == 0) {
            o->trace.fixed_schedule = 1;
        } else if (strcmp(a, "none") == 0) {
            o->trace.fixed_schedule = 0;
        } else {
            return db_fail(err, errlen,
                "--trace-schedule: '%s' is not fixed "
                "or none", a);
        }
        return 0;
    case O_NUM_SESSIONS:
        return db_opt_int(flag, a, 1, &o->sessions.sessions, err, errlen);
    case O_SESSION_TURNS:
        return db_opt_int(flag, a, 1, &o->sessions.turns, err, errlen);
    case O_SESSION_SYSTEM_LEN:
        return db_opt_int(flag, a, 0, &o->sessions.system_len, err, errlen);
    case O_SESSION_INPUT_LEN:
        return db_opt_int(flag, a, 1, &o->sessions.input_len, err, errlen);
    case O_SESSION_OUTPUT_LEN:
        return db_opt_int(flag, a, 1, &o->sessions.output_len, err, errlen);
    case O_SESSION_THINK_MS:
        if (db_opt_double(flag, a, 0.0, 0, HUGE_VAL, 0, &d, err, errlen)
            != 0)
        {
            return -1;
        }
        o->sessions.think_s = d / 1000.0;
        return 0;
    case O_TEMPERATURE:
        return db_opt_double(flag, a, 0.0, 0, HUGE_VAL, 0, &o->temperature,
            err, errlen);
    case O_IGNORE_EOS:
        o->ignore_eos = 1;
        return 0;
    case O_MAX_CONCURRENCY:
        return db_opt_size(flag, a, 1, &o->max_concurrency, err, errlen);
    case O_REQUEST_RATE:
        if (strcmp(a, "inf") == 0 || strcmp(a, "infinity") == 0) {
            o->request_rate = 0.0;
            return 0;
        }
        if (db_opt_double(flag, a, 0.0, 1, HUGE_VAL, 0, &o->request_rate,
                err, errlen) != 0)
        {
            return db_fail(err, errlen,
                "--request-rate: '%s' must be a number "
                "> 0 or inf", a);
        }
        return 0;
    case O_BURSTINESS:
        return db_opt_double(flag, a, 0.0, 1, HUGE_VAL, 0, &o->burstiness,
            err, errlen);
    case O_DURATION:
        return db_opt_double(flag, a, 0.0, 1, HUGE_VAL, 0, &o->duration_s,
            err, errlen);
    case O_NUM_WARMUPS:
        return db_opt_count(flag, a, 0, &o->num_warmups, err, errlen);
    case O_REQUEST_TIMEOUT:
        return db_opt_double(flag, a, 0.0, 1, HUGE_VAL, 0, &o->timeout_s,
            err, errlen);
    case O_CONCURRENCY:
        return db_opt_sweep(o, a, err, errlen);
    case O_GOODPUT:
        return db_goodput_parse(o, a, err, errlen);
    case O_PERCENTILE_METRICS:
        return db_opt_metrics(o, a, err, errlen);
    case O_METRIC_PERCENTILES:
        return db_opt_pcts(o, a, err, errlen);
    case O_SAVE_RESULT:
        o->save_result = 1;
        return 0;
    case O_SAVE_DETAILED:
        o->save_detailed = 1;
        return 0;
    case O_RESULT_DIR:
        return db_opt_str(&o->result_dir, a, err, errlen);
    case O_RESULT_FILENAME:
        if (*a == '\0' || strchr(a, '/') != NULL) {
            return db_fail(err, errlen, "--result-filename: '%s' must be a "
                "file name (use --result-dir for the directory)", a);
        }
        return db_opt_str(&o->result_filename, a, err, errlen);
    case O_LABEL:
        return db_opt_str(&o->label, a, err, errlen);
    case O_PLOT:
        o->plot = 1;
        return 0;
    case O_DISABLE_TQDM:
        st->disable_tqdm = 1;
        return 0;
    }
    return db_fail(err, errlen, "--%s: not handled", flag);
}

/* Cross-flag checks and derived fields, once every flag is in. */
static int
finish(db_opts_t *o, parse_state_t *st, char *err, size_t errlen)
{
    char        buf[512];
    const char *ep;
    size_t      l;

    if (o->base_url == NULL) {
        const char *h = st->host != NULL ? st->host : "127.0.0.1";
        int         v6 = strchr(h, ':') != NULL && h[0] != '[';

        snprintf(buf, sizeof(buf), "http://%s%s%s:%d", v6 ? "[" : "", h,
            v6 ? "]" : "", st->port != 0 ? st->port : 8000);
        if (db_opt_str(&o->base_url, buf, err, errlen) != 0) {
            return -1;
        }
    }
    if (!st->endpoint_set) {
        ep = (st->backend != NULL && strcmp(st->backend, "openai-chat") == 0)
             ? "/v1/chat/completions" : "/v1/completions";
        if (db_opt_str(&o->endpoint, ep, err, errlen) != 0) {
            return -1;
        }
    }
    l = strlen(o->endpoint);
    o->chat = l >= 16 && strcmp(o->endpoint + l - 16, "chat/completions")
              == 0;
    if (st->backend != NULL && strcmp(st->backend, "openai-chat") == 0
        && !o->chat)
    {
        return db_fail(err, errlen,
            "--backend openai-chat: --endpoint %s is "
            "not a chat/completions path", o->endpoint);
    }
    if (o->prompt_tokens && o->chat) {
        return db_fail(err, errlen, "--prompt-format tokens: only for "
            "completions endpoints, not %s", o->endpoint);
    }
    if (o->api_key == NULL) {
        const char *k = getenv("OPENAI_API_KEY");
        if (k != NULL && *k != '\0'
            && db_opt_str(&o->api_key, k, err, errlen) != 0)
        {
            return -1;
        }
    }
    if (o->dataset == DB_DATA_TRACE && o->dataset_path == NULL) {
        return db_fail(err, errlen, "--dataset-name trace: --dataset-path "
            "FILE is needed");
    }
    if (o->dataset == DB_DATA_RANDOM
        && (int64_t) o->random.prefix_len + o->random.input_len > INT32_MAX)
    {
        return db_fail(err, errlen, "--random-prefix-len: prefix + input "
            "length too large");
    }
    /* the random prompts are built up front: refuse what cannot fit rather
     * than grind through swap (the counts are < 2^31 here: no overflow) */
    if (o->dataset == DB_DATA_RANDOM) {
        double tokens = ((double) o->random.prefix_len
                         + o->random.input_len
                           * (1.0 + o->random.range_ratio))
                        * (double) (o->num_prompts + o->num_warmups);
        if (tokens > MAX_PROMPT_TOKENS) {
            return db_fail(err, errlen, "--num-prompts: %zu requests "
                "(warm-ups included) of up to %d + %d tokens make %.3g "
                "prompt tokens, more than the %.0e built at most",
                o->num_prompts + o->num_warmups, o->random.prefix_len,
                o->random.input_len, tokens, MAX_PROMPT_TOKENS);
        }
    }
    if (o->result_dir == NULL
        && db_opt_str(&o->result_dir, ".", err, errlen) != 0)
    {
        return -1;
    }
    o->random.num_prompts = o->num_prompts;
    o->random.seed = o->seed;
    o->sessions.seed = o->seed;
    o->trace.seed = o->seed;
    o->trace.max_requests = o->num_prompts_set ? o->num_prompts : 0;
    o->progress = !st->disable_tqdm && isatty(STDERR_FILENO);
    return 0;
}

static const db_flag_t *
flag_by_id(int id)
{
    size_t  i;

    for (i = 0; i < N_FLAGS; i++) {
        if (flags[i].help != NULL && flags[i].id == id) {
            return &flags[i];
        }
    }
    return NULL;
}

int
db_opts_parse(db_opts_t *o, int argc, char **argv, char *err, size_t errlen)
{
    struct option   lo[N_FLAGS + 1];
    parse_state_t   st;
    char          **av = NULL;
    int             ac, c, idx, rc = 0;
    size_t          i, k = 0;

    memset(&st, 0, sizeof(st));
    for (i = 0; i < N_FLAGS; i++) {
        if (flags[i].help == NULL) {
            continue;
        }
        lo[k].name = flags[i].name;
        lo[k].has_arg = flags[i].has_arg ? required_argument : no_argument;
        lo[k].flag = NULL;
        lo[k].val = flags[i].id;
        k++;
    }
    memset(&lo[k], 0, sizeof(lo[k]));

    ac = normalize_argv(argc, argv, &av);
    if (ac < 0) {
        return db_fail(err, errlen, "out of memory");
    }
    optind = 0;            /* glibc: full re-initialization */
    opterr = 0;
    for (;;) {
        const db_flag_t *f;

        idx = -1;
        c = getopt_long(ac, av, "+:h", lo, &idx);
        if (c == -1) {
            break;
        }
        if (c == '?') {
            const char *bad = av[optind - 1];
            f = optopt >= 256 ? flag_by_id(optopt) : NULL;
            if (f != NULL) {
                rc = db_fail(err, errlen, "--%s takes no value", f->name);
            } else if (optopt != 0 && optopt < 256) {
                rc = db_fail(err, errlen, "unknown flag '-%c' (see --help)",
                    optopt);
            } else {
                rc = db_fail(err, errlen, "unknown or ambiguous flag '%s' "
                    "(see --help)", bad);
            }
            break;
        }
        if (c == ':') {
            f = flag_by_id(optopt);
            rc = db_fail(err, errlen, "--%s needs a value",
                f != NULL ? f->name : "?");
            break;
        }
        if (c == O_HELP) {
            db_opts_usage(stdout);
            rc = 1;
            break;
        }
        f = flag_by_id(c);
        if (f == NULL) {
            rc = db_fail(err, errlen, "unknown flag");
            break;
        }
        if (apply(o, &st, c, f->name, optarg, err, errlen) != 0) {
            rc = -1;
            break;
        }
    }
    if (rc == 0 && optind < ac) {
        rc = db_fail(err, errlen, "unexpected argument '%s' (see --help)",
            av[optind]);
    }
    if (rc == 0) {
        rc = finish(o, &st, err, errlen);
    }
    free_argv(av, ac);
    return rc;
}
