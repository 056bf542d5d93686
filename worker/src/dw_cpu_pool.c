/*
 * dynamo-worker: chunk-sharing thread pool for the cpu backend.
 *
 * One 64-bit job word: generation (32 bits) | chunks (16) | next chunk
 * (16). The caller stores fn/arg, then a new word (release); any thread
 * takes chunk `next` by a CAS that bumps it, which both proves the job is
 * still the current one and orders the fn/arg reads after the caller's
 * writes. The caller posts the next job only when `done` reaches chunks,
 * so fn/arg never change under a thread running a chunk. Sleeping workers
 * wait on gen32 (a futex word, the generation's low 32 bits).
 */
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define dw_pause()  _mm_pause()
#else
#define dw_pause()  ((void) 0)
#endif

#include "dw_cpu_pool_int.h"

/* Spin iterations before a worker sleeps or the caller starts yielding. */
#define DW_POOL_SPIN  (1u << 13)

#define JOB_GEN(s)     ((uint32_t) ((s) >> 32))
#define JOB_CHUNKS(s)  ((uint32_t) (((s) >> 16) & 0xffff))
#define JOB_NEXT(s)    ((uint32_t) ((s) & 0xffff))

struct dw_pool_s {
    _Atomic uint64_t  job;
    _Atomic uint32_t  gen32;        /* futex word */
    _Atomic uint32_t  done;         /* chunks finished of the current job */
    _Atomic uint32_t  sleepers;
    _Atomic int       stop;
    dw_pool_fn        fn;
    void             *arg;
    uint32_t          gen;          /* caller's copy */
    uint32_t          n;
    pthread_t        *th;
};

static void
futex_wait(_Atomic uint32_t *w, uint32_t val)
{
    syscall(SYS_futex, (uint32_t *) w, FUTEX_WAIT_PRIVATE, val, NULL, NULL,
            0);
}

static void
futex_wake_all(_Atomic uint32_t *w)
{
    syscall(SYS_futex, (uint32_t *) w, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL,
            NULL, 0);
}

/* Takes and runs chunks of the job in s until none is left. */
static void
pool_take(dw_pool_t *p, uint64_t s)
{
    while (JOB_NEXT(s) < JOB_CHUNKS(s)) {
        if (atomic_compare_exchange_weak_explicit(&p->job, &s, s + 1,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire))
        {
            p->fn(p->arg, JOB_NEXT(s), JOB_CHUNKS(s));
            atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
            s = atomic_load_explicit(&p->job, memory_order_acquire);
        }
    }
}

static void *
pool_main(void *a)
{
    dw_pool_t  *p = a;
    uint64_t    s, t;
    uint32_t    i;

    for ( ;; ) {
        s = atomic_load_explicit(&p->job, memory_order_acquire);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) {
            return NULL;
        }
        pool_take(p, s);
        /* nothing left: wait for the job word to change */
        s = atomic_load_explicit(&p->job, memory_order_acquire);
        if (JOB_NEXT(s) < JOB_CHUNKS(s)) {
            continue;
        }
        for (i = 0; i < DW_POOL_SPIN; i++) {
            t = atomic_load_explicit(&p->job, memory_order_acquire);
            if (t != s || atomic_load_explicit(&p->stop,
                                               memory_order_relaxed))
            {
                break;
            }
            dw_pause();
        }
        if (i < DW_POOL_SPIN) {
            continue;
        }
        atomic_fetch_add(&p->sleepers, 1);
        /* returns at once if a newer job (or stop) bumped gen32 */
        if (!atomic_load(&p->stop)) {
            futex_wait(&p->gen32, JOB_GEN(s));
        }
        atomic_fetch_sub(&p->sleepers, 1);
    }
}

uint32_t
dw_cpu_count(void)
{
    long  n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : (uint32_t) n;
}

dw_pool_t *
dw_pool_create(uint32_t n)
{
    dw_pool_t  *p;
    uint32_t    i;

    if (n == 0) {
        n = 1;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->n = n;
    p->th = calloc(n, sizeof(*p->th));
    if (p->th == NULL) {
        free(p);
        return NULL;
    }
    for (i = 1; i < n; i++) {
        if (pthread_create(&p->th[i], NULL, pool_main, p) != 0) {
            p->n = i;           /* destroy joins the ones started */
            dw_pool_destroy(p);
            return NULL;
        }
    }
    return p;
}

uint32_t
dw_pool_size(const dw_pool_t *p)
{
    return p->n;
}

void
dw_pool_run(dw_pool_t *p, dw_pool_fn fn, void *arg, uint32_t chunks)
{
    uint64_t  s;
    uint32_t  c, i;

    if (chunks == 0) {
        return;
    }
    if (chunks > DW_POOL_MAX_CHUNKS) {
        chunks = DW_POOL_MAX_CHUNKS;
    }
    if (p->n == 1 || chunks == 1) {
        for (c = 0; c < chunks; c++) {
            fn(arg, c, chunks);
        }
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    p->gen++;
    s = ((uint64_t) p->gen << 32) | ((uint64_t) chunks << 16);
    atomic_store_explicit(&p->job, s, memory_order_release);
    /* seq_cst pairs with the sleepers increment: a worker either sees the
     * new gen32 in futex_wait or is counted here and woken */
    atomic_store(&p->gen32, p->gen);
    if (atomic_load(&p->sleepers) > 0) {
        futex_wake_all(&p->gen32);
    }
    pool_take(p, s);
    /* chunks others took: spin, then yield (the thread running one may
     * be waiting for this very core) */
    i = 0;
    while (atomic_load_explicit(&p->done, memory_order_acquire) != chunks) {
        if (++i < DW_POOL_SPIN) {
            dw_pause();
        } else {
            sched_yield();
        }
    }
}

void
dw_pool_destroy(dw_pool_t *p)
{
    uint32_t  i;

    if (p == NULL) {
        return;
    }
    atomic_store(&p->stop, 1);
    atomic_store(&p->gen32, p->gen + 1);
    futex_wake_all(&p->gen32);
    for (i = 1; i < p->n; i++) {
        pthread_join(p->th[i], NULL);
    }
    free(p->th);
    free(p);
}
