/*
 * The cuda backend where there is no GPU (CI, this test's usual home):
 * asking for it fails with a message that says why and points at the cpu
 * backend, whether the worker was built with CUDA (no device, no driver)
 * or without (no nvcc). Skipped where a device is present (make test-gpu
 * covers that case). What the backend does not support yet is refused
 * by name, device or not.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "dw_backend.h"
#include "dw_model.h"
#include "support/dw_tsupport_model.h"

static void
no_device_message(const char *err)
{
    assert_true(strstr(err, "no CUDA device: cudaGetDeviceCount: ") != NULL
                || strstr(err, "built without CUDA") != NULL);
    assert_non_null(strstr(err, "use --engine cpu"));
}

static void
test_no_device(void **state)
{
    char              err[512];
    dw_model_t       *m;
    dw_backend_opts_t bo;
    dw_backend_t     *be = (dw_backend_t *) &bo;
    dw_dtype_t        dts[3] = { DW_DT_BF16, DW_DT_F16, DW_DT_F32 };
    int               i;

    err[0] = '\0';
    if (dw_backend_cuda_devices(err, sizeof(err)) > 0) {
        skip();                      /* a GPU: make test-gpu's business */
    }
    no_device_message(err);

    assert_int_equal(dw_model_load(DW_TS_STORIES, &m, err, sizeof(err)), 0);
    memset(&bo, 0, sizeof(bo));
    bo.block_size = 16;
    bo.n_blocks = 8;
    /* every storage type gets as far as looking for a device */
    for (i = 0; i < 3; i++) {
        bo.dtype = dts[i];
        err[0] = '\0';
        be = (dw_backend_t *) &bo;
        assert_int_equal(dw_backend_cuda_create(m, &bo, &be, err,
                                                sizeof(err)), -1);
        assert_null(be);
        no_device_message(err);
    }
    /* asking twice gives the same answer (no sticky CUDA error) */
    err[0] = '\0';
    assert_int_equal(dw_backend_cuda_devices(err, sizeof(err)), 0);
    no_device_message(err);
    dw_model_free(m);
}

/* What the backend does not run yet is named, GPU or not (a build
   without CUDA says only that). */
static void
test_unsupported(void **state)
{
    char               err[512];
    dw_model_t        *m;
    dw_backend_opts_t  bo;
    dw_backend_t      *be = (dw_backend_t *) &bo;
    float              pool[16];

    assert_int_equal(dw_model_load(DW_TS_STORIES, &m, err, sizeof(err)), 0);
    memset(&bo, 0, sizeof(bo));
    bo.block_size = 16;
    bo.n_blocks = 8;
    bo.dtype = (dw_dtype_t) 7;          /* no storage type */
    assert_int_equal(dw_backend_cuda_create(m, &bo, &be, err, sizeof(err)),
                     -1);
    assert_null(be);
    if (strstr(err, "built without CUDA") != NULL) {
        dw_model_free(m);
        skip();
    }
    assert_string_equal(err, "cuda backend: --dtype must be bf16, f16 or "
                        "f32");
    bo.dtype = DW_DT_BF16;
    bo.kv_mem = pool;
    bo.kv_mem_len = sizeof(pool);
    assert_int_equal(dw_backend_cuda_create(m, &bo, &be, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "caller-provided KV pool"));
    bo.kv_mem = NULL;
    bo.n_blocks = 0;
    assert_int_equal(dw_backend_cuda_create(m, &bo, &be, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "block_size and n_blocks must be positive"));
    /* tensor parallelism: a size that does not fit the model is named
       before the devices are counted (dw_tp.c; test_tp has the rest) */
    bo.n_blocks = 8;
    bo.tensor_parallel = 3;
    assert_int_equal(dw_backend_cuda_create(m, &bo, &be, err, sizeof(err)),
                     -1);
    assert_null(be);
    assert_string_equal(err, "cuda backend: --tensor-parallel-size 3 does "
                        "not divide n_heads 8");
    bo.tensor_parallel = 16;
    assert_int_equal(dw_backend_cuda_create(m, &bo, &be, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "--tensor-parallel-size 16 does not divide "
                            "n_heads 8"));
    dw_model_free(m);
}

/* --tensor-parallel-size that fits the model: where there is no GPU,
   the same "no CUDA device" answer as with one GPU; with fewer GPUs than
   asked for, how many are there (make test-gpu's test_cuda_tp runs it) */
static void
test_tp_devices(void **state)
{
    char               err[512];
    dw_model_t        *m;
    dw_backend_opts_t  bo;
    dw_backend_t      *be = (dw_backend_t *) &bo;
    int                n;

    assert_int_equal(dw_model_load(DW_TS_STORIES, &m, err, sizeof(err)), 0);
    n = dw_backend_cuda_devices(err, sizeof(err));
    memset(&bo, 0, sizeof(bo));
    bo.block_size = 16;
    bo.n_blocks = 8;
    bo.dtype = DW_DT_BF16;
    bo.tensor_parallel = 8;
    if (n >= 8) {
        dw_model_free(m);
        skip();                      /* 8 GPUs: it would start */
    }
    assert_int_equal(dw_backend_cuda_create(m, &bo, &be, err, sizeof(err)),
                     -1);
    assert_null(be);
    if (n == 0) {
        no_device_message(err);
    } else {
        char  want[96];

        snprintf(want, sizeof(want), "cuda backend: --tensor-parallel-size 8 "
                 "needs 8 GPUs, %d found", n);
        assert_string_equal(err, want);
    }
    dw_model_free(m);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_no_device),
        cmocka_unit_test(test_unsupported),
        cmocka_unit_test(test_tp_devices),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
