/* dynamo-kv tokenize / detokenize (placeholder until the tokenizer lands). */
#include <stdio.h>

#include "dkv.h"

int
dkv_cmd_tokenize(int argc, char **argv)
{
    fprintf(stderr, "dynamo-kv tokenize: not built yet\n");
    return 2;
}

int
dkv_cmd_detokenize(int argc, char **argv)
{
    fprintf(stderr, "dynamo-kv detokenize: not built yet\n");
    return 2;
}
