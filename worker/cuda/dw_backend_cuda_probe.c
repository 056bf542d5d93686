/*
 * dynamo-worker: is there a GPU? (the cuda backend's first question,
 * asked before anything is loaded so a worker without one fails fast and
 * clearly).
 */
#include <stdio.h>

#include <cuda_runtime_api.h>

#include "dw_backend.h"

int
dw_backend_cuda_devices(char *err, size_t errlen)
{
    int          n = 0;
    cudaError_t  e;

    e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n <= 0) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "no CUDA device: cudaGetDeviceCount: %s "
                     "(%s); use --engine cpu",
                     e != cudaSuccess ? cudaGetErrorName(e) : "0 devices",
                     e != cudaSuccess ? cudaGetErrorString(e)
                                      : "none visible");
        }
        (void) cudaGetLastError();       /* the error is not sticky */
        return 0;
    }
    return n;
}
