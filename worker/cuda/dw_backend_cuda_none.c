/*
 * dynamo-worker: the cuda backend's stand-in when the worker is built
 * without the CUDA toolkit (no nvcc): every call says so, and the cpu
 * backend stays what the worker runs.
 */
#include <stdio.h>

#include "dw_backend.h"

#define DW_CUDA_NONE  "this dynamo-worker was built without CUDA " \
                      "(no nvcc at build time); use --engine cpu"

int
dw_backend_cuda_devices(char *err, size_t errlen)
{
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "%s", DW_CUDA_NONE);
    }
    return 0;
}

int
dw_backend_cuda_create(const dw_model_t *m, const dw_backend_opts_t *o,
    dw_backend_t **out, char *err, size_t errlen)
{
    *out = NULL;
    dw_backend_cuda_devices(err, errlen);
    return -1;
}
