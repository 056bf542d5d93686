/*
 * dynamo-worker: sampling on the device (dw_cuda.h, "dw_cu_sample.cu").
 *
 * One block of 1024 threads per row; every step is a pass over the
 * vocabulary ending in a block reduction whose result every thread
 * gets, so all threads take the same branches (no divergence around
 * __syncthreads). The passes mirror worker/src/dw_sample_thr.c, the
 * sequential reference the GPU test compares against:
 *
 *   x = logits; penalties: one thread per (id, count) pair (distinct ids:
 *   no two threads write one element); greedy: argmax; else x *= 1/T,
 *   m = max x, top_k: 32 count passes bisecting the k-th largest key,
 *   then (only when ties at it exceed k) 32 more on the last tie's id;
 *   min_p: x >= m + log(min_p); top_p: 31 double-sum passes bisecting the
 *   weight threshold; the draw: each thread sums its contiguous chunk of
 *   ids, a block scan, the first chunk whose inclusive prefix exceeds
 *   u * mass walks its ids in order. Logprobs: max, a double sum of
 *   exp, and N argmax passes for the top N.
 *
 * Simple first: top_k costs 32-64 passes over the row (a radix select
 * with shared histograms would take 4); fine for sampling's share of a
 * decode step, worth revisiting with a profile.
 *
 * Numerics: weights use the device's expf (within 2 ulp of the host's),
 * so a draw within float rounding of a CDF boundary can pick the
 * neighbouring token; everything else (penalties, 1/T, the thresholds on
 * x, log(min_p) computed on the host) is the same float arithmetic as
 * the reference. NaN logits give a valid id, not necessarily the host's.
 */
#include <stdint.h>

#include "dw_cu_int.cuh"

#define SMP_THREADS  1024
#define SMP_NONE     0xffffffffu

/* ---- block reductions (blockDim.x = SMP_THREADS, every thread gets
        the result) ---- */

struct smp_sh {
    double    d[32];
    uint32_t  u[32];
    float     v[32];
    uint32_t  i[32];
};

static __device__ __forceinline__ double
smp_sum_d(double v, smp_sh *sh)
{
    int  lane = threadIdx.x & 31, w = threadIdx.x >> 5;

    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    __syncthreads();
    if (lane == 0) {
        sh->d[w] = v;
    }
    __syncthreads();
    v = lane < (int) (blockDim.x >> 5) ? sh->d[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v;
}

/* op 0: sum, 1: min, 2: max */
static __device__ __forceinline__ uint32_t
smp_op_u(uint32_t a, uint32_t b, int op)
{
    return op == 0 ? a + b : op == 1 ? min(a, b) : max(a, b);
}

static __device__ __forceinline__ uint32_t
smp_red_u(uint32_t v, int op, smp_sh *sh)
{
    int  lane = threadIdx.x & 31, w = threadIdx.x >> 5;

    for (int o = 16; o > 0; o >>= 1) {
        v = smp_op_u(v, __shfl_xor_sync(0xffffffffu, v, o), op);
    }
    __syncthreads();
    if (lane == 0) {
        sh->u[w] = v;
    }
    __syncthreads();
    v = lane < (int) (blockDim.x >> 5) ? sh->u[lane]
        : (op == 1 ? SMP_NONE : 0u);
    for (int o = 16; o > 0; o >>= 1) {
        v = smp_op_u(v, __shfl_xor_sync(0xffffffffu, v, o), op);
    }
    return v;
}

/* (value, id) a comes before b: larger value, lower id on ties; SMP_NONE
   (no candidate) comes last */
static __device__ __forceinline__ bool
smp_before(float av, uint32_t ai, float bv, uint32_t bi)
{
    if (ai == SMP_NONE) {
        return false;
    }
    if (bi == SMP_NONE) {
        return true;
    }
    return av > bv || (av == bv && ai < bi);
}

/* the first of each thread's (v, i) in that order; the id (or SMP_NONE)
   to every thread, its value in *vo */
static __device__ __forceinline__ uint32_t
smp_argmax(float v, uint32_t i, smp_sh *sh, float *vo)
{
    int  lane = threadIdx.x & 31, w = threadIdx.x >> 5;

    for (int o = 16; o > 0; o >>= 1) {
        float     ov = __shfl_xor_sync(0xffffffffu, v, o);
        uint32_t  oi = __shfl_xor_sync(0xffffffffu, i, o);

        if (smp_before(ov, oi, v, i)) {
            v = ov;
            i = oi;
        }
    }
    __syncthreads();
    if (lane == 0) {
        sh->v[w] = v;
        sh->i[w] = i;
    }
    __syncthreads();
    if (lane < (int) (blockDim.x >> 5)) {
        v = sh->v[lane];
        i = sh->i[lane];
    } else {
        v = 0.0f;
        i = SMP_NONE;
    }
    for (int o = 16; o > 0; o >>= 1) {
        float     ov = __shfl_xor_sync(0xffffffffu, v, o);
        uint32_t  oi = __shfl_xor_sync(0xffffffffu, i, o);

        if (smp_before(ov, oi, v, i)) {
            v = ov;
            i = oi;
        }
    }
    *vo = v;
    return i;
}

/* inclusive prefix sum over threads in thread order; the total to all */
static __device__ __forceinline__ double
smp_scan_d(double v, smp_sh *sh, double *total)
{
    int  lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    int  nw = (int) (blockDim.x >> 5);

    for (int o = 1; o < 32; o <<= 1) {
        double  n = __shfl_up_sync(0xffffffffu, v, o);

        if (lane >= o) {
            v += n;
        }
    }
    __syncthreads();
    if (lane == 31) {
        sh->d[w] = v;
    }
    __syncthreads();
    if (w == 0) {
        double  s = lane < nw ? sh->d[lane] : 0.0;

        for (int o = 1; o < 32; o <<= 1) {
            double  n = __shfl_up_sync(0xffffffffu, s, o);

            if (lane >= o) {
                s += n;
            }
        }
        sh->d[lane] = s;
    }
    __syncthreads();
    if (w > 0) {
        v += sh->d[w - 1];
    }
    *total = sh->d[nw - 1];
    return v;
}

/* ---- per-element helpers (as dw_sample_thr.c) ---- */

static __device__ __forceinline__ uint32_t
smp_fkey(float f)
{
    uint32_t  u = __float_as_uint(f);

    if (f == 0.0f) {
        return 0x80000000u;
    }
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

struct smp_thr {
    float     m;
    int       top_k;
    uint32_t  kkey, tie_last;
    float     min_x;
    uint32_t  wbits;
};

static __device__ __forceinline__ bool
smp_pre(const smp_thr &t, float xi, uint32_t i)
{
    if (t.top_k) {
        uint32_t  k = smp_fkey(xi);

        if (k < t.kkey || (k == t.kkey && i > t.tie_last)) {
            return false;
        }
    }
    return xi >= t.min_x;
}

static __device__ __forceinline__ uint64_t
smp_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (dw_rng_next) */
static __device__ __forceinline__ uint64_t
smp_rng_next(uint64_t *s)
{
    uint64_t  res = smp_rotl(s[1] * 5, 7) * 9;
    uint64_t  t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = smp_rotl(s[3], 45);
    return res;
}

/* ---- the kernel ---- */

static __global__ void __launch_bounds__(SMP_THREADS)
sample_k(dw_cu_sample_out_t *outs, float *work, const float *logits,
    const dw_cu_sample_param_t *params, const uint32_t *pen, uint8_t *kept,
    uint32_t V)
{
    __shared__ smp_sh    sh;
    __shared__ uint32_t  s_tok;
    __shared__ double    s_u;

    const dw_cu_sample_param_t  p = params[blockIdx.x];
    const float                *l = logits + (size_t) blockIdx.x * V;
    float                      *x = work + (size_t) blockIdx.x * V;
    dw_cu_sample_out_t         *o = outs + blockIdx.x;
    uint32_t                    tid = threadIdx.x, nt = blockDim.x;
    uint32_t                    i, tok, cnt;
    uint32_t                    drew = 0;
    uint64_t                    rng[4];
    float                       bv, rp = p.repetition_penalty;
    bool                        do_rp = rp > 0.0f && rp != 1.0f;
    bool                        do_pf = p.presence_penalty != 0.0f
                                        || p.frequency_penalty != 0.0f;

    for (int k = 0; k < 4; k++) {
        rng[k] = p.rng[k];
    }

    /* x = logits, then the penalties: distinct ids, one thread each */
    for (i = tid; i < V; i += nt) {
        x[i] = l[i];
    }
    __syncthreads();
    if (pen != NULL && (do_rp || do_pf)) {
        for (uint32_t j = tid; j < p.n_pen; j += nt) {
            uint32_t  t = pen[2 * ((size_t) p.pen_off + j)];
            uint32_t  c = pen[2 * ((size_t) p.pen_off + j) + 1];
            float     v;

            if (t >= V) {
                continue;
            }
            v = l[t];
            if (do_rp) {
                v = v > 0.0f ? v / rp : v * rp;
            }
            if (do_pf && c > 0) {
                v -= p.frequency_penalty * (float) c + p.presence_penalty;
            }
            x[t] = v;
        }
    }
    __syncthreads();

    if (p.greedy) {
        /* argmax: each thread's first maximum in id order, then the tree */
        bv = 0.0f;
        tok = SMP_NONE;
        for (i = tid; i < V; i += nt) {
            if (tok == SMP_NONE || x[i] > bv) {
                bv = x[i];
                tok = i;
            }
        }
        tok = smp_argmax(bv, tok, &sh, &bv);
        if (tok == SMP_NONE) {
            tok = 0;
        }
        if (kept != NULL) {
            for (i = tid; i < V; i += nt) {
                kept[(size_t) blockIdx.x * V + i] = i == tok;
            }
        }
    } else {
        smp_thr  t;
        uint32_t am, b, c, k, r;
        double   z, target;

        for (i = tid; i < V; i += nt) {
            x[i] *= p.inv_temp;
        }
        __syncthreads();
        bv = 0.0f;
        am = SMP_NONE;
        for (i = tid; i < V; i += nt) {
            if (am == SMP_NONE || x[i] > bv) {
                bv = x[i];
                am = i;
            }
        }
        am = smp_argmax(bv, am, &sh, &bv);
        if (am == SMP_NONE) {
            am = 0;
        }
        t.m = x[am];
        t.top_k = 0;
        t.kkey = 0;
        t.tie_last = SMP_NONE;
        t.min_x = -INFINITY;
        t.wbits = 0;

        if (p.top_k > 0 && (uint32_t) p.top_k < V) {
            k = (uint32_t) p.top_k;
            for (int bit = 31; bit >= 0; bit--) {
                c = t.kkey | (1u << bit);
                cnt = 0;
                for (i = tid; i < V; i += nt) {
                    cnt += smp_fkey(x[i]) >= c;
                }
                if (smp_red_u(cnt, 0, &sh) >= k) {
                    t.kkey = c;
                }
            }
            cnt = 0;
            b = 0;
            for (i = tid; i < V; i += nt) {
                uint32_t  key = smp_fkey(x[i]);

                cnt += key > t.kkey;
                b += key == t.kkey;
            }
            cnt = smp_red_u(cnt, 0, &sh);
            b = smp_red_u(b, 0, &sh);
            r = k - cnt;            /* ties to keep, lowest ids first */
            if (b > r) {
                /* the id of the r-th tie: the largest bound with fewer
                   than r ties below it */
                t.tie_last = 0;
                for (int bit = 31; bit >= 0; bit--) {
                    c = t.tie_last | (1u << bit);
                    cnt = 0;
                    for (i = tid; i < V && i < c; i += nt) {
                        cnt += smp_fkey(x[i]) == t.kkey;
                    }
                    if (smp_red_u(cnt, 0, &sh) < r) {
                        t.tie_last = c;
                    }
                }
            }
            t.top_k = 1;
        }
        if (p.min_p > 0.0f) {
            t.min_x = t.m + p.log_min_p;
        }

        cnt = 0;
        z = 0.0;
        for (i = tid; i < V; i += nt) {
            if (smp_pre(t, x[i], i)) {
                cnt++;
                z += expf(x[i] - t.m);
            }
        }
        cnt = smp_red_u(cnt, 0, &sh);
        z = smp_sum_d(z, &sh);

        if (cnt == 0) {
            tok = am;               /* NaN logits: no draw, as the host */
            if (kept != NULL) {
                for (i = tid; i < V; i += nt) {
                    kept[(size_t) blockIdx.x * V + i] = 0;
                }
            }
        } else {
            double    my, incl, total, acc;
            uint32_t  lo, hi, chunk, owner, last;

            if (cnt > 1 && p.top_p > 0.0f && p.top_p < 1.0f) {
                target = (double) p.top_p * z;
                for (int bit = 30; bit >= 0; bit--) {
                    double  acc2 = 0.0;

                    c = t.wbits | (1u << bit);
                    for (i = tid; i < V; i += nt) {
                        if (smp_pre(t, x[i], i)) {
                            float  w = expf(x[i] - t.m);

                            if (__float_as_uint(w) >= c) {
                                acc2 += w;
                            }
                        }
                    }
                    if (smp_sum_d(acc2, &sh) >= target) {
                        t.wbits = c;
                    }
                }
            }

            if (kept != NULL) {
                for (i = tid; i < V; i += nt) {
                    kept[(size_t) blockIdx.x * V + i] =
                        smp_pre(t, x[i], i)
                        && __float_as_uint(expf(x[i] - t.m)) >= t.wbits;
                }
            }

            /* the draw: contiguous chunks of ids per thread, in order */
            chunk = (V + nt - 1) / nt;
            lo = tid * chunk < V ? tid * chunk : V;
            hi = lo + chunk < V ? lo + chunk : V;
            my = 0.0;
            for (i = lo; i < hi; i++) {
                if (smp_pre(t, x[i], i)) {
                    float  w = expf(x[i] - t.m);

                    if (__float_as_uint(w) >= t.wbits) {
                        my += w;
                    }
                }
            }
            incl = smp_scan_d(my, &sh, &total);
            if (tid == 0) {
                s_u = (double) (smp_rng_next(rng) >> 11)
                      * (1.0 / 9007199254740992.0);    /* 2^-53 */
                s_u *= total;
            }
            if (tid == 0) {
                s_tok = am;         /* unreachable fallback: total > 0 */
            }
            drew = 1;
            __syncthreads();
            owner = smp_red_u(my > 0.0 && incl > s_u ? tid : SMP_NONE, 1,
                              &sh);
            if (owner == SMP_NONE) {
                /* rounding: u reached the mass; the last chunk with any */
                owner = smp_red_u(my > 0.0 ? tid + 1 : 0u, 2, &sh) - 1;
            }
            if (tid == owner) {
                acc = incl - my;
                last = lo;
                tok = SMP_NONE;
                for (i = lo; i < hi; i++) {
                    float  w;

                    if (!smp_pre(t, x[i], i)) {
                        continue;
                    }
                    w = expf(x[i] - t.m);
                    if (__float_as_uint(w) < t.wbits) {
                        continue;
                    }
                    acc += w;
                    if (s_u < acc) {
                        tok = i;
                        break;
                    }
                    if (w > 0.0f) {
                        last = i;
                    }
                }
                s_tok = tok != SMP_NONE ? tok : last;
            }
            __syncthreads();
            tok = s_tok;
        }
    }

    if (tid == 0) {
        o->token = tok;
        o->logprob = 0.0f;
        o->n_top = 0;
        o->drew = drew;
        for (int k = 0; k < 4; k++) {
            o->rng[k] = rng[k];
        }
    }

    if (p.n_logprobs >= 0) {
        float     m = -INFINITY, pv = 0.0f;
        uint32_t  pid = 0, n = (uint32_t) p.n_logprobs, b;
        double    z = 0.0, lse;

        for (i = tid; i < V; i += nt) {
            m = fmaxf(m, l[i]);
        }
        /* max through the argmax reduction (float max, any id) */
        b = smp_argmax(m, tid, &sh, &m);
        for (i = tid; i < V; i += nt) {
            z += exp((double) l[i] - (double) m);
        }
        z = smp_sum_d(z, &sh);
        lse = (double) m + log(z);
        if (tid == 0) {
            o->logprob = (float) ((double) l[tok] - lse);
        }
        if (n > DW_CU_SAMPLE_TOP) {
            n = DW_CU_SAMPLE_TOP;
        }
        for (uint32_t j = 0; j < n; j++) {
            bv = 0.0f;
            b = SMP_NONE;
            for (i = tid; i < V; i += nt) {
                float  v = l[i];

                if (j > 0 && !(v < pv || (v == pv && i > pid))) {
                    continue;
                }
                if (b == SMP_NONE || v > bv) {
                    bv = v;
                    b = i;
                }
            }
            b = smp_argmax(bv, b, &sh, &bv);
            if (b == SMP_NONE) {
                break;
            }
            if (tid == 0) {
                o->top_ids[j] = b;
                o->top_logprobs[j] = (float) ((double) bv - lse);
                o->n_top = j + 1;
            }
            pv = bv;
            pid = b;
        }
    }
}

extern "C" cudaError_t
dw_cu_sample(dw_cu_sample_out_t *out, float *work, const float *logits,
    const dw_cu_sample_param_t *params, const uint32_t *pen, uint8_t *kept,
    uint32_t n_rows, uint32_t vocab, cudaStream_t st)
{
    if (n_rows == 0) {
        return cudaSuccess;
    }
    if (out == NULL || work == NULL || logits == NULL || params == NULL
        || vocab == 0 || n_rows > 0x7fffffffu)
    {
        return cudaErrorInvalidValue;
    }
    sample_k<<<n_rows, SMP_THREADS, 0, st>>>(out, work, logits, params, pen,
                                            kept, vocab);
    return cudaGetLastError();
}
