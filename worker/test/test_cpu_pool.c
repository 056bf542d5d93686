/*
 * The cpu backend's thread pool: every chunk of every job runs exactly
 * once and is finished when dw_pool_run returns, over many back-to-back
 * jobs of varying chunk counts (1..300), pools of 1-5 threads (more than
 * the cores here, so workers are often descheduled and others take their
 * chunks), with pauses long enough for workers to fall asleep between
 * some jobs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "dw_cpu_pool_int.h"
#include "support/dw_tsupport_model.h"

#define MAX_CH  300

typedef struct {
    _Atomic uint32_t  runs[MAX_CH];
    uint32_t          chunks;
    _Atomic int       bad;
} job_t;

static void
job_fn(void *arg, uint32_t chunk, uint32_t chunks)
{
    job_t  *j = arg;

    if (chunks != j->chunks || chunk >= chunks) {
        atomic_store(&j->bad, 1);
        return;
    }
    atomic_fetch_add(&j->runs[chunk], 1);
}

static void
test_pool_chunks(void **state)
{
    job_t            *j = calloc(1, sizeof(*j));
    dw_pool_t        *p;
    uint32_t          n, it, c;
    uint64_t          s = 77;
    struct timespec   ts = { 0, 300000 };   /* 0.3 ms: workers sleep */

    assert_non_null(j);
    for (n = 1; n <= 5; n++) {
        p = dw_pool_create(n);
        assert_non_null(p);
        assert_int_equal(dw_pool_size(p), n);
        for (it = 0; it < 3000; it++) {
            j->chunks = 1 + (uint32_t) (dw_ts_rand(&s) % MAX_CH);
            for (c = 0; c < MAX_CH; c++) {
                atomic_store(&j->runs[c], 0);
            }
            dw_pool_run(p, job_fn, j, j->chunks);
            for (c = 0; c < MAX_CH; c++) {
                if (atomic_load(&j->runs[c]) != (c < j->chunks)) {
                    fail_msg("pool %u job %u: chunk %u of %u ran %u times",
                             n, it, c, j->chunks, atomic_load(&j->runs[c]));
                }
            }
            assert_int_equal(atomic_load(&j->bad), 0);
            if (it % 500 == 0) {
                nanosleep(&ts, NULL);
            }
        }
        dw_pool_destroy(p);
    }
    free(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_chunks),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
