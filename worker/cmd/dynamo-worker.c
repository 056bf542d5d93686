/*
 * dynamo-worker: serves a model to nginx (ngx_dynamo) over the internal
 * token protocol and publishes its KV cache state to Redis. Thin: options
 * (dw_opts.c), model and engines, then the server (dw_server.c).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "dw_engine.h"
#include "dw_log.h"
#include "dw_model.h"
#include "dw_opts.h"
#include "dw_server.h"
#include "dw_tp.h"
#include "dw_xfer.h"
#include "kvr_hash.h"

#define DW_DEFAULT_KV_MEMORY  (256ULL << 20)
#define DW_DEFAULT_MOCK_BLOCKS 16384

static uint64_t
random_u64(void)
{
    uint64_t         v;
    struct timespec  ts;

    if (getrandom(&v, sizeof(v), 0) == (ssize_t) sizeof(v)) {
        return v;
    }
    /* no entropy source: time and pid still differ per start */
    clock_gettime(CLOCK_REALTIME, &ts);
    v = (uint64_t) ts.tv_sec * 1000000007ULL ^ (uint64_t) ts.tv_nsec
        ^ ((uint64_t) getpid() << 32);
    v ^= v >> 31;
    v *= 0x9e3779b97f4a7c15ULL;
    return v ^ (v >> 29);
}

/* KV pool blocks: --num-blocks, else --kv-cache-memory over the bytes of
   one block (K and V, f32, every layer), else the default. */
static uint32_t
pool_blocks(const dw_opts_t *o, const dw_config_t *cfg)
{
    uint64_t  per_block, mem, n;

    if (o->num_blocks > 0) {
        return o->num_blocks;
    }
    if (o->engine == DW_ENGINE_MOCK && o->kv_cache_memory == 0) {
        return DW_DEFAULT_MOCK_BLOCKS;
    }
    mem = o->kv_cache_memory ? o->kv_cache_memory : DW_DEFAULT_KV_MEMORY;
    /* cpu: K/V in f32; cuda: in the weights' dtype on the device */
    per_block = 2ULL * cfg->n_layers * cfg->n_kv_heads * cfg->head_dim
                * o->block_size
                * (o->engine == DW_ENGINE_CUDA && o->dtype != DW_DT_F32
                   ? 2 : sizeof(float));
    if (per_block == 0) {
        return 1;
    }
    n = mem / per_block;
    return n == 0 ? 1 : n > (1U << 30) ? (1U << 30) : (uint32_t) n;
}

/*
 * Disaggregation (--role decode or prefill): one UCX context for the
 * process, handed to the server, which drives and destroys it.
 */
static int
kv_context(const dw_opts_t *o, dw_server_t *srv, dw_xfer_t **x, char *err,
    size_t errlen)
{
    dw_xfer_opts_t  xo;

    memset(&xo, 0, sizeof(xo));
    xo.tls = o->kv_transport;
    xo.name = o->role == KVR_ROLE_PREFILL ? "dynamo-worker-prefill"
                                          : "dynamo-worker-decode";
    /* same-host pairs want shared memory, which cannot detect a dead
       peer: D's deadline and P's HTTP connection are the signals */
    xo.no_peer_errors = !o->kv_peer_errors;
    if (dw_xfer_create(&xo, x, err, errlen) != 0) {
        return -1;
    }
    dw_server_set_xfer(srv, *x);
    return 0;
}

/*
 * A worker's KV pool, allocated and registered by UCX (worker/XFER.md:
 * memory its transports can write directly), laid out as the cpu
 * backend keeps it; the backend takes it as kv_mem.
 */
static int
kv_pool(const dw_opts_t *o, dw_xfer_t *x, const dw_config_t *cfg,
    uint32_t n_blocks, dw_backend_opts_t *bo, dw_xfer_reg_t **reg,
    char *err, size_t errlen)
{
    dw_xfer_layout_t  l;
    uint64_t          bytes, phys;
    char              msg[256];

    *reg = NULL;
    if (dw_xfer_layout_cpu(&l, o->served_model_name, cfg, o->block_size,
                           n_blocks, msg, sizeof(msg)) != 0)
    {
        snprintf(err, errlen, "KV pool layout: %s", msg);
        return -1;
    }
    bytes = l.layer_stride * l.n_layers;
    /*
     * The cpu backend zeroes its pool: one larger than the machine would
     * fill shared memory page by page (UCX allocates it there) before
     * failing. The mock never touches it (only transfers do).
     */
    phys = (uint64_t) sysconf(_SC_PHYS_PAGES)
           * (uint64_t) sysconf(_SC_PAGESIZE);
    if (o->engine == DW_ENGINE_CPU && phys > 0 && bytes > phys) {
        snprintf(err, errlen, "KV pool (%u blocks, %llu bytes) is larger "
                 "than this machine's memory (%llu bytes): give a smaller "
                 "--num-blocks or --kv-cache-memory", n_blocks,
                 (unsigned long long) bytes, (unsigned long long) phys);
        return -1;
    }
    if (bytes > SIZE_MAX
        || dw_xfer_register(x, NULL, (size_t) bytes, &l,
                            reg, msg, sizeof(msg)) != 0)
    {
        snprintf(err, errlen, "KV pool (%u blocks, %llu bytes): %s; a "
                 "smaller --num-blocks or --kv-cache-memory may help",
                 n_blocks, (unsigned long long) bytes,
                 bytes > SIZE_MAX ? "too large" : msg);
        return -1;
    }
    bo->kv_mem = dw_xfer_reg_base(*reg);
    bo->kv_mem_len = (size_t) bytes;
    return 0;
}

int
main(int argc, char **argv)
{
    dw_opts_t            o;
    dw_model_t          *model;
    dw_config_t          cfg;
    dw_backend_opts_t    bo;
    dw_backend_t        *be;
    dw_engine_config_t   ec;
    dw_engine_t         *e;
    dw_server_t         *srv;
    dw_worker_t         *w;
    dw_worker_conf_t     wc;
    dw_xfer_t           *x;
    dw_xfer_reg_t       *reg;
    uint64_t             base_id, generation;
    uint32_t             i, n_blocks;
    char                 err[512];
    int                  rc;

    rc = dw_opts_parse(&o, argc, argv, stdout, err, sizeof(err));
    if (rc == 1) {
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "dynamo-worker: %s\n", err);
        return 2;
    }
    dw_log_set_level(o.log_level);

    model = NULL;
    /* a tensor-parallel size that does not fit the model is named first,
       GPU or not (from config.json alone) */
    if (o.engine == DW_ENGINE_CUDA && o.tensor_parallel > 1
        && (dw_model_load_config(o.model, &cfg, err, sizeof(err)) != 0
            || dw_tp_check(&cfg, o.tensor_parallel, err, sizeof(err)) != 0))
    {
        fprintf(stderr, "dynamo-worker: %s\n", err);
        return 1;
    }
    /* no GPU: say so before loading anything */
    if (o.engine == DW_ENGINE_CUDA
        && dw_backend_cuda_devices(err, sizeof(err)) <= 0)
    {
        fprintf(stderr, "dynamo-worker: %s\n", err);
        return 1;
    }
    if (o.engine != DW_ENGINE_MOCK) {
        if (dw_model_load(o.model, &model, err, sizeof(err)) != 0) {
            fprintf(stderr, "dynamo-worker: %s\n", err);
            return 1;
        }
        cfg = *dw_model_config(model);
    } else if (dw_model_load_config(o.model, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "dynamo-worker: %s\n", err);
        return 1;
    }

    if (dw_server_create(&srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "dynamo-worker: %s\n", err);
        dw_model_free(model);
        return 1;
    }
    x = NULL;
    if (o.role != KVR_ROLE_BOTH
        && kv_context(&o, srv, &x, err, sizeof(err)) != 0)
    {
        fprintf(stderr, "dynamo-worker: KV transfer (UCX): %s\n", err);
        goto fail;
    }
    n_blocks = pool_blocks(&o, &cfg);
    base_id = o.has_worker_id ? o.worker_id : random_u64() >> 1;
    generation = random_u64() >> 1;
    if (generation == 0) {
        generation = 1;
    }

    for (i = 0; i < o.num_workers; i++) {
        memset(&bo, 0, sizeof(bo));
        bo.block_size = o.block_size;
        bo.n_blocks = n_blocks;
        bo.threads = o.threads;
        bo.speedup = o.mock_speedup;
        bo.seed = o.mock_seed;
        bo.dtype = o.dtype;
        bo.device = 0;
        bo.tensor_parallel = o.tensor_parallel;
        reg = NULL;
        if (x != NULL
            && kv_pool(&o, x, &cfg, n_blocks, &bo, &reg, err, sizeof(err))
               != 0)
        {
            fprintf(stderr, "dynamo-worker: %s\n", err);
            goto fail;
        }
        rc = o.engine == DW_ENGINE_CPU
             ? dw_backend_cpu_create(model, &bo, &be, err, sizeof(err))
             : o.engine == DW_ENGINE_CUDA
             ? dw_backend_cuda_create(model, &bo, &be, err, sizeof(err))
             : dw_backend_mock_create(&cfg, &bo, &be, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "dynamo-worker: backend: %s\n", err);
            goto fail_reg;
        }
        dw_engine_config_defaults(&ec);
        ec.block_size = o.block_size;
        ec.n_blocks = n_blocks;
        ec.max_num_seqs = o.max_num_seqs;
        ec.max_num_batched_tokens = o.max_num_batched_tokens;
        ec.max_model_len = o.max_model_len;
        ec.hash_seed = kvr_hash_seed(NULL);
        ec.prefix_caching = o.prefix_caching;
        ec.emit_kv_events = o.redis != NULL;
        if (dw_engine_create(&ec, be, &e, err, sizeof(err)) != 0) {
            fprintf(stderr, "dynamo-worker: engine: %s\n", err);
            goto fail_reg;
        }
        if (dw_engine_start(e) != 0) {
            fprintf(stderr, "dynamo-worker: engine: cannot start\n");
            dw_engine_destroy(e);
            goto fail_reg;
        }

        memset(&wc, 0, sizeof(wc));
        wc.host = o.host;
        wc.port = o.port == 0 ? 0 : o.port + i;
        wc.advertise = o.advertise;
        wc.worker_id = (base_id + i) & (uint64_t) INT64_MAX;
        wc.generation = generation + i;
        wc.role = o.role;
        wc.engine_name = o.engine == DW_ENGINE_CPU ? "cpu"
                         : o.engine == DW_ENGINE_CUDA ? "cuda" : "mock";
        wc.model_name = o.served_model_name;
        wc.vocab_size = cfg.vocab_size;
        wc.max_model_len = dw_engine_config(e)->max_model_len;
        wc.max_pending = o.max_num_seqs * 16 > 4096 ? o.max_num_seqs * 16
                                                    : 4096;
        wc.redis_addr = o.redis;
        wc.redis_password = o.redis_password;
        wc.redis_db = o.redis_db;
        wc.ns = o.ns;
        /* the worker owns reg from here, also when adding it fails */
        wc.kv_reg = reg;
        wc.disagg.max_local_prefill = o.max_local_prefill;
        wc.disagg.max_prefill_queue = o.max_prefill_queue;
        wc.disagg.timeout_ms = o.remote_prefill_timeout_ms;
        if (dw_server_add_worker(srv, &wc, e, &w, err, sizeof(err)) != 0) {
            fprintf(stderr, "dynamo-worker: %s\n", err);
            goto fail;
        }
        printf("dynamo-worker: listening on %s worker_id=%llu engine=%s "
               "model=%s blocks=%u redis=%s role=%s kv_transport=%s\n",
               dw_worker_listen_addr(w), (unsigned long long) dw_worker_id(w),
               wc.engine_name, o.served_model_name, n_blocks,
               o.redis != NULL ? o.redis : "none", kvr_role_name(o.role),
               x != NULL ? dw_xfer_tls(x) : "none");
        fflush(stdout);
    }

    rc = dw_server_run(srv);
    dw_server_destroy(srv);
    dw_model_free(model);
    dw_log(DW_LOG_INFO, "stopped");
    return rc == 0 ? 0 : 1;

fail_reg:
    /* the backend never frees kv_mem; the engine (and backend) are gone */
    if (reg != NULL) {
        dw_xfer_unregister(x, reg);
    }
fail:
    /* destroys the UCX context too */
    dw_server_destroy(srv);
    dw_model_free(model);
    return 1;
}
