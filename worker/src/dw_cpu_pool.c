/*
 * dynamo-worker: spin-then-futex thread pool for the cpu backend.
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

/* Spin iterations before a worker sleeps (~50-100 us). */
#define DW_POOL_SPIN  (1u << 13)

struct dw_pool_s {
    _Atomic uint32_t  gen;          /* bumped per job; futex word */
    _Atomic uint32_t  done;         /* workers finished with this job */
    _Atomic uint32_t  sleepers;     /* workers in (or entering) futex wait */
    _Atomic int       stop;
    dw_pool_fn        fn;
    void             *arg;
    uint32_t          n;
    pthread_t        *th;
};

typedef struct {
    dw_pool_t  *p;
    uint32_t    tid;
} dw_pool_worker_t;

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

static void *
pool_main(void *a)
{
    dw_pool_worker_t  *wk = a;
    dw_pool_t         *p = wk->p;
    uint32_t           tid = wk->tid, seen, g, i;

    free(wk);
    /* gen is 0 until the first job, which may be posted before this
     * thread gets here: start from 0, not from the current value */
    seen = 0;
    for ( ;; ) {
        for (i = 0; i < DW_POOL_SPIN; i++) {
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
            if (g != seen) {
                break;
            }
            dw_pause();
        }
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire))
               == seen)
        {
            atomic_fetch_add(&p->sleepers, 1);
            /* futex_wait returns at once if gen moved meanwhile */
            futex_wait(&p->gen, seen);
            atomic_fetch_sub(&p->sleepers, 1);
        }
        seen = g;
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) {
            return NULL;
        }
        p->fn(p->arg, tid, p->n);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
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
    dw_pool_t         *p;
    dw_pool_worker_t  *wk;
    uint32_t           i;

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
        wk = malloc(sizeof(*wk));
        if (wk == NULL
            || (wk->p = p, wk->tid = i,
                pthread_create(&p->th[i], NULL, pool_main, wk)) != 0)
        {
            free(wk);
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
dw_pool_run(dw_pool_t *p, dw_pool_fn fn, void *arg)
{
    uint32_t  i;

    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    /* seq_cst pairs with the sleepers increment: a worker either sees the
     * new gen before waiting or is counted here and woken */
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->sleepers) > 0) {
        futex_wake_all(&p->gen);
    }
    fn(arg, 0, p->n);
    /* spin, then yield: on a machine with more runnable threads than
     * cores a worker may be waiting for this very core */
    i = 0;
    while (atomic_load_explicit(&p->done, memory_order_acquire) != p->n - 1) {
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
    atomic_store_explicit(&p->stop, 1, memory_order_release);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    futex_wake_all(&p->gen);
    for (i = 1; i < p->n; i++) {
        pthread_join(p->th[i], NULL);
    }
    free(p->th);
    free(p);
}
