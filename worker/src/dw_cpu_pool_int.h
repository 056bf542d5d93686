/*
 * dynamo-worker: the cpu backend's thread pool (internal).
 *
 * n threads including the caller. dw_pool_run(fn, arg, chunks) runs
 * fn(arg, c, chunks) once for every chunk c < chunks and returns when all
 * have finished. Threads (the caller too) take chunks from a shared
 * counter, so which thread runs a chunk varies, but the chunks, and so
 * the arithmetic, are fixed by the caller. A worker that is not running
 * when a job is posted (the machine has more runnable threads than cores)
 * costs nothing: the others take its chunks; only a chunk already taken
 * is waited for. Idle workers spin briefly on the job word (a decode step
 * posts a few dozen jobs microseconds apart), then sleep on a futex.
 */
#ifndef DW_CPU_POOL_INT_H
#define DW_CPU_POOL_INT_H

#include <stdint.h>

#define DW_POOL_MAX_CHUNKS  65535

typedef struct dw_pool_s  dw_pool_t;
typedef void (*dw_pool_fn)(void *arg, uint32_t chunk, uint32_t chunks);

dw_pool_t *dw_pool_create(uint32_t n);
/* chunks: 1..DW_POOL_MAX_CHUNKS */
void dw_pool_run(dw_pool_t *p, dw_pool_fn fn, void *arg, uint32_t chunks);
uint32_t dw_pool_size(const dw_pool_t *p);
void dw_pool_destroy(dw_pool_t *p);

/* Online cores (sysconf), at least 1. */
uint32_t dw_cpu_count(void);

#endif
