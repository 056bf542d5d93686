#ifndef DB_CMD_H
#define DB_CMD_H

/*
 * dynamo-bench's subcommands. Each takes its own argv (argv[0] is the
 * subcommand's name) and returns the process exit status: 0 done, 1 the
 * run failed (nothing could be measured), 2 bad usage or bad input (a
 * message on stderr), 130 ^C cut the run short (what ran is still
 * printed and written).
 */

int db_cmd_run(int argc, char **argv);        /* the benchmark (default) */
int db_cmd_synthesize(int argc, char **argv); /* write a Mooncake trace */
int db_cmd_analyze(int argc, char **argv);    /* a trace's ISL/OSL, hits */
int db_cmd_compare(int argc, char **argv);    /* summaries side by side */
int db_serve_main(int argc, char **argv);     /* scripted-timing server */

#endif
