/*
 * Tests for dynamo-worker's command-line parsing (dw_opts.c): defaults,
 * derived names, every value check, and address splitting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "dw_opts.h"

#define MAXARGS  32

/* Parses a NULL-terminated list of arguments (argv[0] added). */
static int
parse_args(dw_opts_t *o, char *errbuf, size_t errlen, ...)
{
    char     *argv[MAXARGS + 2];
    int       argc;
    va_list   ap;
    FILE     *out;
    int       rc;

    argv[0] = "dynamo-worker";
    argc = 1;
    va_start(ap, errlen);
    while (argc <= MAXARGS && (argv[argc] = va_arg(ap, char *)) != NULL) {
        argc++;
    }
    va_end(ap);
    argv[argc] = NULL;
    out = fopen("/dev/null", "w");
    errbuf[0] = '\0';
    rc = dw_opts_parse(o, argc, argv, out, errbuf, errlen);
    fclose(out);
    return rc;
}

static void
test_defaults(void **state)
{
    dw_opts_t  o;
    char       err[256];

    assert_int_equal(parse_args(&o, err, sizeof(err), "--model",
                                "models/stories260K/", NULL), 0);
    assert_string_equal(o.model, "models/stories260K/");
    assert_int_equal(o.engine, DW_ENGINE_CPU);
    assert_string_equal(o.host, "127.0.0.1");
    assert_int_equal(o.port, 8000);
    assert_null(o.advertise);
    assert_string_equal(o.redis, "127.0.0.1:6379");
    assert_null(o.redis_password);
    assert_int_equal(o.redis_db, 0);
    /* the basename, trailing slash ignored, names the model and the
       namespace */
    assert_string_equal(o.served_model_name, "stories260K");
    assert_string_equal(o.ns, "stories260K");
    assert_int_equal(o.has_worker_id, 0);
    assert_int_equal(o.role, KVR_ROLE_BOTH);
    assert_int_equal(o.block_size, 16);
    assert_int_equal(o.num_blocks, 0);
    assert_true(o.kv_cache_memory == 0);
    assert_int_equal(o.max_num_seqs, 256);
    assert_int_equal(o.max_num_batched_tokens, 8192);
    assert_int_equal(o.max_model_len, 0);
    assert_int_equal(o.prefix_caching, 1);
    assert_int_equal(o.num_workers, 1);
    assert_int_equal(o.log_level, DW_LOG_INFO);
    /* disaggregation: Dynamo's defaults, UCX's transports, no detection */
    assert_int_equal(o.max_local_prefill, 1000);
    assert_true(o.max_prefill_queue == 16384);
    assert_int_equal(o.remote_prefill_timeout_ms, 10000);
    assert_null(o.kv_transport);
    assert_int_equal(o.kv_peer_errors, 0);
}

static void
test_every_flag(void **state)
{
    dw_opts_t  o;
    char       err[256];

    assert_int_equal(parse_args(&o, err, sizeof(err),
        "--model=m", "--engine", "mock", "--host", "0.0.0.0", "--port", "0",
        "--advertise-addr", "10.1.2.3", "--redis", "unix:/tmp/r.sock",
        "--redis-password", "pw", "--redis-db", "3", "--namespace", "ns1",
        NULL), 0);
    assert_int_equal(o.engine, DW_ENGINE_MOCK);
    assert_string_equal(o.host, "0.0.0.0");
    assert_int_equal(o.port, 0);
    assert_string_equal(o.advertise, "10.1.2.3");
    assert_string_equal(o.redis, "unix:/tmp/r.sock");
    assert_string_equal(o.redis_password, "pw");
    assert_int_equal(o.redis_db, 3);
    assert_string_equal(o.ns, "ns1");
    assert_string_equal(o.served_model_name, "m");

    assert_int_equal(parse_args(&o, err, sizeof(err),
        "--model", "m", "--served-model-name", "llama", "--worker-id",
        "9223372036854775807", "--role", "prefill", "--block-size", "32",
        "--num-blocks", "100", "--kv-cache-memory", "1G", "--max-num-seqs",
        "8", "--max-num-batched-tokens", "512", "--max-model-len", "2048",
        NULL), 0);
    assert_string_equal(o.served_model_name, "llama");
    assert_string_equal(o.ns, "llama");
    assert_int_equal(o.has_worker_id, 1);
    assert_true(o.worker_id == 9223372036854775807ULL);
    assert_int_equal(o.role, KVR_ROLE_PREFILL);
    assert_int_equal(o.block_size, 32);
    assert_int_equal(o.num_blocks, 100);
    assert_true(o.kv_cache_memory == 1ULL << 30);
    assert_int_equal(o.max_num_seqs, 8);
    assert_int_equal(o.max_num_batched_tokens, 512);
    assert_int_equal(o.max_model_len, 2048);

    assert_int_equal(parse_args(&o, err, sizeof(err),
        "--model", "m", "--threads", "4", "--no-prefix-caching",
        "--mock-speedup", "2.5", "--mock-seed", "18446744073709551615",
        "--engine", "mock", "--num-workers", "4", "--log-level", "debug",
        "--redis", "none", "--kv-cache-memory", "512k", NULL), 0);
    assert_int_equal(o.threads, 4);
    assert_int_equal(o.prefix_caching, 0);
    assert_true(o.mock_speedup == 2.5);
    assert_true(o.mock_seed == UINT64_MAX);
    assert_int_equal(o.num_workers, 4);
    assert_int_equal(o.log_level, DW_LOG_DEBUG);
    assert_null(o.redis);
    assert_true(o.kv_cache_memory == 512ULL << 10);

    assert_int_equal(parse_args(&o, err, sizeof(err),
        "--model", "m", "--role", "decode", "--max-local-prefill-length",
        "0", "--max-prefill-queue-tokens", "1099511627776",
        "--remote-prefill-timeout-ms", "1", "--kv-transport", "tcp,sm",
        "--kv-peer-errors", NULL), 0);
    assert_int_equal(o.role, KVR_ROLE_DECODE);
    assert_int_equal(o.max_local_prefill, 0);
    assert_true(o.max_prefill_queue == 1ULL << 40);
    assert_int_equal(o.remote_prefill_timeout_ms, 1);
    assert_string_equal(o.kv_transport, "tcp,sm");
    assert_int_equal(o.kv_peer_errors, 1);

    assert_int_equal(parse_args(&o, err, sizeof(err),
        "--model", "m", "--max-local-prefill-length", "1073741824",
        "--max-prefill-queue-tokens", "0", "--remote-prefill-timeout-ms",
        "3600000", "--kv-transport", "^cuda_ipc", NULL), 0);
    assert_int_equal(o.max_local_prefill, 1U << 30);
    assert_true(o.max_prefill_queue == 0);
    assert_int_equal(o.remote_prefill_timeout_ms, 3600000);
    assert_string_equal(o.kv_transport, "^cuda_ipc");

    /* the cuda backend: bf16 by default, --dtype, one GPU */
    assert_int_equal(parse_args(&o, err, sizeof(err),
        "--model", "m", "--engine", "cuda", NULL), 0);
    assert_int_equal(o.engine, DW_ENGINE_CUDA);
    assert_int_equal(o.dtype, DW_DT_BF16);
    assert_int_equal(o.has_dtype, 0);
    assert_int_equal(o.tensor_parallel, 1);
    assert_int_equal(parse_args(&o, err, sizeof(err),
        "--model", "m", "--engine", "cuda", "--dtype", "f16",
        "--tensor-parallel-size", "1", NULL), 0);
    assert_int_equal(o.dtype, DW_DT_F16);
    assert_int_equal(o.has_dtype, 1);
    assert_int_equal(parse_args(&o, err, sizeof(err),
        "--model", "m", "--dtype", "f32", "--engine", "cuda", NULL), 0);
    assert_int_equal(o.dtype, DW_DT_F32);
    /* N GPUs: whether they are there and fit the model is create's */
    assert_int_equal(parse_args(&o, err, sizeof(err),
        "--model", "m", "--engine", "cuda", "--tensor-parallel-size", "8",
        NULL), 0);
    assert_int_equal(o.tensor_parallel, 8);
    assert_int_equal(parse_args(&o, err, sizeof(err),
        "--model", "m", "--engine", "cuda", "--tensor-parallel-size", "64",
        NULL), 0);
    assert_int_equal(o.tensor_parallel, 64);
    assert_int_equal(parse_args(&o, err, sizeof(err),
        "--model", "m", "--engine", "cuda", "--role", "decode", NULL), -1);
    assert_non_null(strstr(err, "--engine cuda does not disaggregate"));

    assert_int_equal(parse_args(&o, err, sizeof(err), "--help", NULL), 1);
}

typedef struct {
    const char  *args[4];
    const char  *msg;       /* substring of the error */
} bad_t;

static const bad_t  bad[] = {
    { { "--model", "m", "--engine", "gpu" }, "--engine 'gpu'" },
    { { "--model", "m", "--dtype", "fp8" }, "--dtype 'fp8'" },
    { { "--model", "m", "--dtype", "bf16" }, "--dtype needs --engine cuda" },
    { { "--model", "m", "--tensor-parallel-size", "0" },
      "--tensor-parallel-size '0'" },
    { { "--model", "m", "--tensor-parallel-size", "65" },
      "--tensor-parallel-size '65'" },
    { { "--model", "m", "--tensor-parallel-size", "2" },
      "--tensor-parallel-size 2 needs --engine cuda" },
    { { "--model", "m", "--port", "65536" }, "--port '65536'" },
    { { "--model", "m", "--port", "-1" }, "--port '-1'" },
    { { "--model", "m", "--port", "80x" }, "--port '80x'" },
    { { "--model", "m", "--redis-db", "x" }, "--redis-db" },
    { { "--model", "m", "--namespace", "a b" }, "--namespace" },
    { { "--model", "m", "--namespace", "a{b" }, "--namespace" },
    { { "--model", "m", "--worker-id", "9223372036854775808" },
      "--worker-id" },
    { { "--model", "m", "--role", "Both" }, "--role 'Both'" },
    { { "--model", "m", "--block-size", "0" }, "--block-size" },
    { { "--model", "m", "--block-size", "2048" }, "--block-size" },
    { { "--model", "m", "--num-blocks", "0" }, "--num-blocks" },
    { { "--model", "m", "--kv-cache-memory", "0" }, "--kv-cache-memory" },
    { { "--model", "m", "--kv-cache-memory", "G" }, "--kv-cache-memory" },
    { { "--model", "m", "--kv-cache-memory", "99999999999G" },
      "--kv-cache-memory" },
    { { "--model", "m", "--max-num-seqs", "0" }, "--max-num-seqs" },
    { { "--model", "m", "--max-model-len", "1" }, "--max-model-len" },
    { { "--model", "m", "--mock-speedup", "0" }, "--mock-speedup" },
    { { "--model", "m", "--mock-speedup", "nan" }, "--mock-speedup" },
    { { "--model", "m", "--num-workers", "0" }, "--num-workers" },
    { { "--model", "m", "--num-workers", "2" }, "needs --engine mock" },
    { { "--model", "m", "--max-num-batched-tokens", "100" },
      "is below --max-num-seqs" },
    { { "--model", "m", "--log-level", "trace" }, "--log-level" },
    { { "--model", "m", "--redis", "6379" }, "--redis '6379'" },
    { { "--model", "m", "--redis", "host:0" }, "--redis 'host:0'" },
    { { "--model", "m", "--redis", "unix:" }, "empty socket path" },
    { { "--model", "a:b" }, "--namespace" },
    { { "--model", "m", "--served-model-name", "" }, "--served-model-name" },
    { { "--model", "m", "--advertise-addr", "" }, "--advertise-addr" },
    { { "--model", "m", "--max-local-prefill-length", "-1" },
      "--max-local-prefill-length '-1'" },
    { { "--model", "m", "--max-local-prefill-length", "1073741825" },
      "--max-local-prefill-length" },
    { { "--model", "m", "--max-prefill-queue-tokens", "x" },
      "--max-prefill-queue-tokens 'x'" },
    { { "--model", "m", "--max-prefill-queue-tokens", "1099511627777" },
      "--max-prefill-queue-tokens" },
    { { "--model", "m", "--remote-prefill-timeout-ms", "0" },
      "--remote-prefill-timeout-ms '0'" },
    { { "--model", "m", "--remote-prefill-timeout-ms", "3600001" },
      "--remote-prefill-timeout-ms" },
    { { "--model", "m", "--kv-transport", "" }, "--kv-transport ''" },
    { { "--model", "m", "--kv-transport", "tcp sm" },
      "--kv-transport 'tcp sm'" },
    { { "--model", "m", "--kv-transport" }, "needs a value" },
    { { "--model", "m", "--kv-peer-errors=1" }, "--kv-peer-errors" },
    { { "--model", "m", "-x" }, "unknown option '-x'" },
    { { "--model", "m", "--nope" }, "unknown option '--nope'" },
    { { "--model", "m", "stray" }, "unexpected argument 'stray'" },
    { { "--model" }, "needs a value" },
    { { "--port", "1" }, "--model DIR is required" },
};

static void
test_bad_values(void **state)
{
    dw_opts_t  o;
    char       err[256];
    size_t     i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int  rc = parse_args(&o, err, sizeof(err), bad[i].args[0],
                             bad[i].args[1], bad[i].args[2], bad[i].args[3],
                             NULL);

        if (rc != -1 || strstr(err, bad[i].msg) == NULL) {
            fail_msg("case %zu: rc %d, err '%s', want '%s'", i, rc, err,
                     bad[i].msg);
        }
    }
    assert_int_equal(parse_args(&o, err, sizeof(err), "--model", "m",
                                "--engine", "mock", "--num-workers", "2",
                                "--advertise-addr", "10.0.0.1:80", NULL), -1);
    assert_non_null(strstr(err, "host only"));
    /* ports: port + num-workers - 1 must stay a port */
    assert_int_equal(parse_args(&o, err, sizeof(err), "--model", "m",
                                "--engine", "mock", "--num-workers", "4",
                                "--port", "65533", NULL), -1);
    assert_non_null(strstr(err, "65535"));
    assert_int_equal(parse_args(&o, err, sizeof(err), "--model", "m",
                                "--engine", "mock", "--num-workers", "3",
                                "--port", "65533", NULL), 0);
}

static void
test_split_addr(void **state)
{
    char      host[64];
    uint32_t  port;

    assert_int_equal(dw_opts_split_addr("127.0.0.1:6379", host, sizeof(host),
                                        &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6379);
    assert_int_equal(dw_opts_split_addr("[::1]:80", host, sizeof(host),
                                        &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 80);
    assert_int_equal(dw_opts_split_addr("host", host, sizeof(host), &port),
                     -1);
    assert_int_equal(dw_opts_split_addr(":80", host, sizeof(host), &port),
                     -1);
    assert_int_equal(dw_opts_split_addr("h:", host, sizeof(host), &port),
                     -1);
    assert_int_equal(dw_opts_split_addr("h:65536", host, sizeof(host),
                                        &port), -1);
    assert_int_equal(dw_opts_split_addr("averyveryverylonghostname:1", host,
                                        8, &port), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_flag),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_split_addr),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
