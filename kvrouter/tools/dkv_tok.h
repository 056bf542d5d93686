/*
 * dynamo-kv tokenize helpers: the --bench mode (dkv_tok_bench.c).
 */
#ifndef DKV_TOK_H
#define DKV_TOK_H

/*
 * Loads the tokenizer in dir (timed), then encodes each document of docs
 * (a JSON array of strings) in turn, without special tokens, for at least
 * min_seconds; prints one JSON object: load_ms, bytes, tokens, seconds,
 * passes. Returns the exit status.
 */
int dkv_tok_bench(const char *dir, const char *docs, double min_seconds);

#endif
