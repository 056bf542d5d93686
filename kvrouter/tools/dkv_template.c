/* dynamo-kv template (placeholder until the template engine lands). */
#include <stdio.h>

#include "dkv.h"

int
dkv_cmd_template(int argc, char **argv)
{
    fprintf(stderr, "dynamo-kv template: not built yet\n");
    return 2;
}
