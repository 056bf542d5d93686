/*
 * libFuzzer target: the safetensors parser (dw_st_parse) on arbitrary
 * file images. Every tensor it accepts must lie inside the data region
 * with a size matching shape x dtype; the target reads each tensor's
 * first and last byte so ASan flags any bound the parser let through.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dw_safetensors_int.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dw_st_file_t    f;
    uint8_t        *copy;
    char            err[256];
    size_t          i;
    volatile uint8_t sink = 0;

    /* an exact-size heap copy, so reads past the end are caught */
    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, data, size);
    if (dw_st_parse(copy, size, &f, err, sizeof(err)) == 0) {
        for (i = 0; i < f.n; i++) {
            if (f.t[i].begin + f.t[i].nbytes > f.data_len) {
                abort();
            }
            if (f.t[i].nbytes > 0) {
                sink ^= f.data[f.t[i].begin];
                sink ^= f.data[f.t[i].begin + f.t[i].nbytes - 1];
            }
            if (dw_st_find(&f, f.t[i].name) != &f.t[i]) {
                abort();
            }
        }
        dw_st_close(&f);
    } else if (err[0] == '\0') {
        abort();                  /* failures always say why */
    }
    free(copy);
    (void) sink;
    return 0;
}
