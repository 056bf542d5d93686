/*
 * The engine on its own thread: one thread submits and cancels, this one
 * waits on the notify eventfd and drains outputs and KV events. Every
 * request ends with exactly one FINISH and nothing after it, uncancelled
 * ones produce max_tokens tokens, the KV event stream stays consistent
 * (also across prefix-cache resets racing with the work: each is answered
 * once, and a CLEARED empties the checker's set) and the pool is idle at
 * the end. Meant to run under TSan too.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "dw_engine_int.h"
#include "support/dw_tsupport_engine.h"

#define N_REQ   80
#define VOCAB   500

typedef struct {
    dw_engine_t  *e;
    int           rejected;
} feeder_t;

static void
sleep_us(long us)
{
    struct timespec  ts = { 0, us * 1000 };

    nanosleep(&ts, NULL);
}

static void *
feeder(void *arg)
{
    feeder_t      *f = arg;
    dw_request_t   r;
    char           err[128];
    uint64_t       rs = 77, i;
    uint32_t       j;

    for (i = 0; i < N_REQ; i++) {
        memset(&r, 0, sizeof(r));
        r.id = i;
        r.n_prompt = 8 + (uint32_t) (dw_splitmix64(&rs) % 120);
        r.prompt = malloc(r.n_prompt * sizeof(uint32_t));
        for (j = 0; j < r.n_prompt; j++) {
            /* a shared 16-token head for half of them */
            r.prompt[j] = (i % 2 && j < 16)
                          ? 10 + j : 3 + (uint32_t) (dw_splitmix64(&rs) % 490);
        }
        dw_sampling_defaults(&r.sp);
        r.sp.temperature = 0.0f;
        r.sp.max_tokens = 5 + (uint32_t) (i % 30);
        if (dw_engine_submit(f->e, &r, err, sizeof(err)) != 0) {
            free(r.prompt);
            f->rejected++;
        }
        if (i % 5 == 4) {
            dw_engine_cancel(f->e, i - 2);
        }
        if (i % 20 == 10
            && dw_engine_reset_prefix_cache(f->e, 1000 + i) != 0)
        {
            f->rejected++;
        }
        sleep_us((long) (dw_splitmix64(&rs) % 300));
    }
    return NULL;
}

static void
test_threads(void **state)
{
    dw_ts_eng_t         t;
    dw_engine_config_t  c;
    dw_engine_stats_t   st;
    kvr_load_t          load;
    pthread_t           th;
    feeder_t            f;
    struct pollfd       pfd;
    uint32_t            i, done, cancelled = 0;

    (void) state;
    dw_engine_config_defaults(&c);
    c.block_size = 8;
    c.n_blocks = 200;              /* small: preemption and eviction */
    c.max_num_batched_tokens = 128;
    c.max_num_seqs = 32;
    /* speedup 200: steps of 30..200 us, real sleeps */
    assert_int_equal(dw_ts_eng_mock(&t, &c, VOCAB, 200.0, 0), 0);
    assert_int_equal(dw_engine_start(t.e), 0);

    memset(&f, 0, sizeof(f));
    f.e = t.e;
    assert_int_equal(pthread_create(&th, NULL, feeder, &f), 0);

    pfd.fd = dw_engine_notify_fd(t.e);
    pfd.events = POLLIN;
    for ( ;; ) {
        (void) poll(&pfd, 1, 100);
        dw_ts_drain(&t);
        dw_engine_load(t.e, &load);
        for (i = 0, done = 0; i < N_REQ; i++) {
            done += t.req[i].finished > 0;
        }
        if (done == N_REQ) {
            break;
        }
    }
    pthread_join(th, NULL);
    assert_int_equal(f.rejected, 0);

    for (i = 0; i < N_REQ; i++) {
        assert_int_equal(t.req[i].finished, 1);
        assert_int_equal(t.req[i].token_after_finish, 0);
        if (t.req[i].fin.reason == DW_FINISH_LENGTH) {
            assert_int_equal(t.req[i].n_tokens, 5 + i % 30);
        } else {
            assert_int_equal(t.req[i].fin.reason, DW_FINISH_CANCELLED);
            assert_true(i % 5 == 2);
            assert_true(t.req[i].n_tokens < 5 + i % 30);
            cancelled++;
        }
        assert_int_equal(t.req[i].fin.completion_tokens, t.req[i].n_tokens);
    }
    assert_int_equal(t.kv.errors, 0);
    assert_true(t.kv.events > 0);

    /* idle: the last publish has nothing running */
    sleep_us(20000);
    dw_ts_drain(&t);
    dw_engine_stats(t.e, &st);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.used_blocks, 0);
    assert_true(st.requests_finished == N_REQ);
    printf("threads: %u cancelled in time, %lu preemptions, %lu steps, "
           "%lu KV events\n", cancelled, (unsigned long) st.preemptions,
           (unsigned long) st.steps, (unsigned long) t.kv.events);
    /* resets during the run were answered, one output each */
    assert_int_equal(t.n_resets, N_REQ / 20);
    assert_true(t.kv.cleared <= t.n_resets);

    /* idle: a reset succeeds and leaves nothing cached */
    assert_int_equal(dw_engine_reset_prefix_cache(t.e, 5000), 0);
    for (i = 0; i < 100 && t.n_resets < N_REQ / 20 + 1; i++) {
        (void) poll(&pfd, 1, 100);
        dw_ts_drain(&t);
    }
    assert_int_equal(t.n_resets, N_REQ / 20 + 1);
    assert_true(t.reset.req_id == 5000);
    assert_int_equal(t.reset.reset_ok, 1);
    assert_true(t.kv.cleared >= 1);
    assert_int_equal(t.kv.n, 0);
    assert_int_equal(t.kv.errors, 0);
    dw_engine_stats(t.e, &st);
    assert_int_equal(st.cached_blocks, 0);

    dw_engine_load(t.e, &load);
    assert_int_equal(load.running, 0);
    assert_true(load.active_blocks == 0);
    assert_true(load.queued_prefill_tokens == 0);
    /* histograms: one TTFT per request that produced a token */
    {
        uint64_t  n = 0;
        for (i = 0; i <= DW_HIST_BUCKETS; i++) {
            n += st.ttft_hist[i];
        }
        assert_true(n <= N_REQ && n >= N_REQ - N_REQ / 5);
    }

    dw_engine_stop(t.e);
    /* stopped: submissions are refused */
    {
        uint32_t  p[2] = { 5, 6 };
        assert_int_equal(dw_ts_submit(&t, 200, p, 2, NULL),
                         DW_SUBMIT_STOPPED);
        assert_int_equal(dw_engine_reset_prefix_cache(t.e, 5001), -1);
    }
    dw_ts_eng_close(&t);
}

static void
test_stop_with_work_pending(void **state)
{
    dw_ts_eng_t         t;
    dw_engine_config_t  c;
    dw_sampling_t       sp;
    uint32_t            p[50], i;

    (void) state;
    dw_engine_config_defaults(&c);
    c.n_blocks = 64;
    assert_int_equal(dw_ts_eng_mock(&t, &c, VOCAB, 10.0, 0), 0);
    assert_int_equal(dw_engine_start(t.e), 0);
    dw_sampling_defaults(&sp);
    sp.max_tokens = 1000;
    for (i = 0; i < 50; i++) {
        p[i] = 3 + i;
    }
    for (i = 0; i < 5; i++) {
        assert_int_equal(dw_ts_submit(&t, i, p, 50, &sp), 0);
    }
    sleep_us(5000);
    /* destroy stops and frees running work without leaks (ASan) */
    dw_ts_eng_close(&t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_stop_with_work_pending),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
