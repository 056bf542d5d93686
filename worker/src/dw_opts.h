/*
 * dynamo-worker: command-line options (dynamo-worker --help lists them).
 */
#ifndef DW_OPTS_H
#define DW_OPTS_H

#include <stdint.h>
#include <stdio.h>

#include "dw_log.h"
#include "dw_model.h"
#include "kvr_worker.h"

typedef enum {
    DW_ENGINE_CPU = 0,
    DW_ENGINE_MOCK,
    DW_ENGINE_CUDA
} dw_engine_kind_t;

typedef struct {
    const char        *model;              /* --model DIR (required) */
    dw_engine_kind_t   engine;
    const char        *host;
    uint32_t           port;               /* 0: kernel picks */
    const char        *advertise;          /* NULL: host:port */
    const char        *redis;              /* NULL: --redis none */
    const char        *redis_password;
    uint32_t           redis_db;
    const char        *ns;                 /* NULL: served model name */
    const char        *served_model_name;  /* NULL: basename of model */
    int                has_worker_id;
    uint64_t           worker_id;
    kvr_role_t         role;
    uint32_t           block_size;
    uint32_t           num_blocks;         /* 0: from kv_cache_memory */
    uint64_t           kv_cache_memory;    /* bytes */
    uint32_t           max_num_seqs;
    uint32_t           max_num_batched_tokens;
    uint32_t           max_model_len;      /* 0: the model's */
    uint32_t           threads;            /* 0: all cores */
    int                has_dtype;          /* --dtype given */
    dw_dtype_t         dtype;              /* cuda: weights on the device
                                              (default bf16) */
    uint32_t           tensor_parallel;    /* --tensor-parallel-size (1) */
    int                prefix_caching;
    double             mock_speedup;
    uint64_t           mock_seed;
    uint32_t           num_workers;
    /* disaggregation (worker/DISAGG.md) */
    uint32_t           max_local_prefill;  /* --max-local-prefill-length */
    uint64_t           max_prefill_queue;  /* --max-prefill-queue-tokens */
    uint32_t           remote_prefill_timeout_ms;
    const char        *kv_transport;       /* UCX_TLS value; NULL: env */
    int                kv_peer_errors;     /* ask UCX to detect dead peers */
    dw_log_level_t     log_level;
    char               name_buf[256];      /* storage for a derived name */
} dw_opts_t;

/*
 * 0: parsed; 1: --help or --version was given (printed to out); -1: bad
 * usage, err says why (the caller prints it and exits 2).
 */
int dw_opts_parse(dw_opts_t *o, int argc, char **argv, FILE *out, char *err,
    size_t errlen);
void dw_opts_usage(FILE *out);

/* Splits "host:port" (host may be [v6]); 0 or -1. */
int dw_opts_split_addr(const char *addr, char *host, size_t hostlen,
    uint32_t *port);

#endif
