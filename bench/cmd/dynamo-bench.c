/*
 * dynamo-bench: load generator and trace replayer with vLLM/AIPerf
 * compatible metrics. "run" (the benchmark) is the default subcommand, so
 * vLLM benchmark_serving command lines work with the program name changed.
 */

#include <stdio.h>
#include <string.h>

#include "db_cmd.h"
#include "db_opts.h"

#define DB_VERSION "0.1.0"

typedef struct {
    const char  *name;
    int        (*fn)(int argc, char **argv);
    const char  *what;
} db_subcmd_t;

static const db_subcmd_t subcmds[] = {
    { "run", db_cmd_run,
      "the benchmark (default; the flags below)" },
    { "synthesize", db_cmd_synthesize,
      "write a Mooncake-format trace with controlled prefix sharing" },
    { "analyze", db_cmd_analyze,
      "a trace's ISL/OSL statistics and theoretical cache hit rate" },
    { "compare", db_cmd_compare,
      "saved summaries side by side, with ratios" },
    { "serve", db_serve_main,
      "an OpenAI-compatible server with scripted timings" },
};

#define N_SUBCMDS (sizeof(subcmds) / sizeof(subcmds[0]))

static void
usage(FILE *out)
{
    size_t  i;

    fprintf(out,
        "usage: dynamo-bench [run] [flags]\n"
        "       dynamo-bench synthesize|analyze|compare|serve [flags]\n"
        "       dynamo-bench --help | --version\n"
        "\n"
        "Load generator and trace replayer for OpenAI-compatible servers,\n"
        "with vLLM benchmark_serving's metrics and flag names.\n"
        "\n"
        "Subcommands (dynamo-bench SUBCOMMAND --help for each):\n");
    for (i = 0; i < N_SUBCMDS; i++) {
        fprintf(out, "  %-12s %s\n", subcmds[i].name, subcmds[i].what);
    }
    fprintf(out, "\n");
    db_opts_usage(out);
}

int
main(int argc, char **argv)
{
    size_t  i;

    if (argc >= 2) {
        const char *a = argv[1];

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0
            || strcmp(a, "help") == 0)
        {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0 || strcmp(a, "version") == 0) {
            printf("dynamo-bench " DB_VERSION "\n");
            return 0;
        }
        for (i = 0; i < N_SUBCMDS; i++) {
            if (strcmp(a, subcmds[i].name) == 0) {
                return subcmds[i].fn(argc - 1, argv + 1);
            }
        }
        if (a[0] != '-') {
            fprintf(stderr, "dynamo-bench: unknown subcommand '%s' (run, "
                "synthesize, analyze, compare, serve; see --help)\n", a);
            return 2;
        }
    }
    /* flags only: the run command, argv[0] standing for its name */
    return db_cmd_run(argc, argv);
}
