/*
 * dynamo-kv: subcommands. Each takes argv after the subcommand name and
 * returns the process exit status (0 ok, 1 failure, 2 bad usage or input).
 */
#ifndef DKV_H
#define DKV_H

int dkv_cmd_hash(int argc, char **argv);
int dkv_cmd_bench(int argc, char **argv);
int dkv_cmd_tokenize(int argc, char **argv);     /* dkv_tokenize.c */
int dkv_cmd_detokenize(int argc, char **argv);   /* dkv_tokenize.c */
int dkv_cmd_template(int argc, char **argv);     /* dkv_template.c */

#endif
