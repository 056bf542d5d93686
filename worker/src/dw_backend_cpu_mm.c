/*
 * dynamo-worker: matmul dispatch of the cpu backend.
 *
 * Prompt rows use OpenBLAS SGEMM (compute-bound: many tokens per weight
 * byte), one call per prompt chunk and pool thread, each thread a fixed
 * slice of the weight rows. BF16/F16 slices are first widened to F32 into
 * a scratch buffer: one pass over the matrix per step, amortised over the
 * step's prompt tokens (measured: BF16 prefill within ~10% of F32).
 * Single-token rows use the pool's own kernel, which reads
 * BF16/F16 weights directly (half the bytes of F32: decode is bound by
 * memory bandwidth) and keeps each row's arithmetic independent of the
 * batch (dw_kern_int.h).
 */
#include <cblas.h>

#include "dw_backend_cpu_int.h"
#include "dw_kern_int.h"

typedef struct {
    const float        *x;
    size_t              ldx;
    uint32_t            m;
    const dw_mm_out_t  *o;
    uint32_t            n;
} mm_job_t;

/*
 * Start (in tiles of 4 rows) of chunk c of `chunks`. Pool jobs have
 * 3 x threads chunks of shrinking size ("guided"): one round of chunks
 * with 70% of the rows, one with 20%, one with 10%. Few, long chunks
 * keep each thread's weight stream long (each chunk starts a new stream
 * whose first tile is not prefetched), and the small last rounds still
 * even out a thread that ran late. Measured on 2 cores against
 * 4 x threads equal chunks, alternated in one process: batch-1 decode
 * 1-2% faster (F32 and BF16), batch 64 0.6-1.6%; 2 equal halves were
 * as fast with both cores free but up to ~10% slower with another
 * process on one core. Any other count splits evenly. The split never
 * changes an element's arithmetic (dw_kern_matmul), only which thread
 * computes it.
 */
static uint32_t
mm_start(uint32_t tiles, uint32_t c, uint32_t chunks)
{
    static const uint32_t  cum[4] = { 0, 700, 900, 1000 };
    uint32_t               nth, lv, in;

    if (c >= chunks) {
        return tiles;
    }
    if (chunks < 3 || chunks % 3 != 0) {
        return (uint32_t) ((uint64_t) tiles * c / chunks);
    }
    nth = chunks / 3;
    lv = c / nth;
    in = c % nth;
    return (uint32_t) ((uint64_t) tiles
                       * (cum[lv] * nth + (cum[lv + 1] - cum[lv]) * in)
                       / (1000 * (uint64_t) nth));
}

static void
mm_run(void *arg, uint32_t chunk, uint32_t chunks)
{
    mm_job_t          *j = arg;
    const dw_mat_t    *w;
    uint32_t           i, r0, r1;

    for (i = 0; i < j->n; i++) {
        w = j->o[i].w;
        /* split on multiples of 4 rows (the kernel's tile) */
        r0 = mm_start(w->rows / 4, chunk, chunks) * 4;
        r1 = chunk + 1 == chunks ? w->rows
             : mm_start(w->rows / 4, chunk + 1, chunks) * 4;
        if (r0 < r1) {
            dw_kern_matmul(j->x, j->m, j->ldx, w->data, w->dtype, w->cols,
                           r0, r1, j->o[i].y, j->o[i].ldy);
        }
    }
}

typedef struct {
    dw_cpu_t           *c;
    const float        *x;
    size_t              ldx;
    const dw_mm_out_t  *o;
} gemm_job_t;

/*
 * One chunk's slice of weight rows (the backend's thread count of them): widened into its part of wconv when
 * not F32, then a single-threaded SGEMM of all m rows against the slice.
 * OpenBLAS runs single-threaded inside our pool: its own threads would
 * fight ours for the cores (they spin for a long while after each call).
 */
static void
gemm_run(void *arg, uint32_t chunk, uint32_t chunks)
{
    gemm_job_t      *j = arg;
    const dw_mat_t  *w = j->o->w;
    const float     *wf;
    uint32_t         r0, r1, i;
    size_t           k = w->cols, a;

    r0 = (uint32_t) (((uint64_t) (w->rows / 16) * chunk / chunks) * 16);
    r1 = chunk + 1 == chunks ? w->rows
         : (uint32_t) (((uint64_t) (w->rows / 16) * (chunk + 1) / chunks)
                       * 16);
    if (r0 >= r1) {
        return;
    }
    if (w->dtype == DW_DT_F32) {
        wf = (const float *) w->data + (size_t) r0 * k;
    } else {
        /* wconv is sized at create for the largest layer matrix */
        dw_to_f32(j->c->wconv + (size_t) r0 * k,
                  (const uint16_t *) w->data + (size_t) r0 * k, w->dtype,
                  (size_t) (r1 - r0) * k);
        wf = j->c->wconv + (size_t) r0 * k;
    }
    for (i = 0; i < j->c->n_seg; i++) {
        a = j->c->seg[2 * i];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                    (int) j->c->seg[2 * i + 1], (int) (r1 - r0), (int) k,
                    1.0f, j->x + a * j->ldx, (int) j->ldx, wf, (int) k, 0.0f,
                    j->o->y + a * j->o->ldy + r0, (int) j->o->ldy);
    }
}

static void
mm_gemm(dw_cpu_t *c, const float *x, size_t ldx, const dw_mm_out_t *o)
{
    gemm_job_t  j;

    j.c = c;
    j.x = x;
    j.ldx = ldx;
    j.o = o;
    /* decided on the matrix alone, so a chunk's split (and rounding)
     * never depends on the rest of the batch */
    if ((size_t) o->w->rows * o->w->cols < DW_CPU_INLINE_WORK) {
        gemm_run(&j, 0, 1);
    } else {
        dw_pool_run(c->pool, gemm_run, &j, c->nth);
    }
}

void
dw_cpu_mm(dw_cpu_t *c, const float *x, size_t ldx, uint32_t n_rows,
    uint32_t n_gemm, const dw_mm_out_t *o, uint32_t n)
{
    mm_job_t     j;
    dw_mm_out_t  rest[4];
    uint32_t     i;
    size_t       work;

    for (i = 0; n_gemm > 0 && i < n; i++) {
        mm_gemm(c, x, ldx, &o[i]);
    }
    if (n_rows == n_gemm) {
        return;
    }
    for (i = 0; i < n; i++) {
        rest[i] = o[i];
        rest[i].y = o[i].y + (size_t) n_gemm * o[i].ldy;
    }
    j.x = x + (size_t) n_gemm * ldx;
    j.ldx = ldx;
    j.m = n_rows - n_gemm;
    j.o = rest;
    j.n = n;
    work = 0;
    for (i = 0; i < n; i++) {
        work += (size_t) o[i].w->rows * o[i].w->cols * j.m;
    }
    if (work < DW_CPU_INLINE_WORK) {
        mm_run(&j, 0, 1);
    } else {
        dw_pool_run(c->pool, mm_run, &j, 3 * c->nth);
    }
}
