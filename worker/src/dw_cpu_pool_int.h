/*
 * dynamo-worker: the cpu backend's thread pool (internal).
 *
 * n threads including the caller. dw_pool_run runs fn(arg, tid, n) on all
 * of them and returns when every one has finished. Workers spin briefly
 * on a generation counter after each job (a decode step dispatches a few
 * dozen jobs back to back, microseconds apart) and then sleep on a futex,
 * so an idle worker, or one waiting while OpenBLAS runs, costs no CPU.
 */
#ifndef DW_CPU_POOL_INT_H
#define DW_CPU_POOL_INT_H

#include <stdint.h>

typedef struct dw_pool_s  dw_pool_t;
typedef void (*dw_pool_fn)(void *arg, uint32_t tid, uint32_t n);

dw_pool_t *dw_pool_create(uint32_t n);
void dw_pool_run(dw_pool_t *p, dw_pool_fn fn, void *arg);
uint32_t dw_pool_size(const dw_pool_t *p);
void dw_pool_destroy(dw_pool_t *p);

/* Online cores (sysconf), at least 1. */
uint32_t dw_cpu_count(void);

#endif
