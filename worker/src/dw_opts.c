/*
 * dynamo-worker: command-line parsing (getopt_long). Every value is checked
 * here so a bad flag exits 2 with a message before anything starts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dw_opts.h"
#include "kvr_err.h"
#include "kvr_redis.h"

enum {
    OPT_MODEL = 256, OPT_ENGINE, OPT_HOST, OPT_PORT, OPT_ADVERTISE,
    OPT_REDIS, OPT_REDIS_PASSWORD, OPT_REDIS_DB, OPT_NAMESPACE,
    OPT_SERVED_NAME, OPT_WORKER_ID, OPT_ROLE, OPT_BLOCK_SIZE, OPT_NUM_BLOCKS,
    OPT_KV_MEM, OPT_MAX_SEQS, OPT_MAX_BATCHED, OPT_MAX_LEN, OPT_THREADS,
    OPT_NO_PREFIX, OPT_MOCK_SPEEDUP, OPT_MOCK_SEED, OPT_NUM_WORKERS,
    OPT_MAX_LOCAL_PREFILL, OPT_MAX_PREFILL_QUEUE, OPT_REMOTE_TIMEOUT,
    OPT_KV_TRANSPORT, OPT_KV_PEER_ERRORS, OPT_DTYPE, OPT_TP, OPT_LOG_LEVEL,
    OPT_HELP
};

static const struct option dw_long_opts[] = {
    { "model",                  required_argument, NULL, OPT_MODEL },
    { "engine",                 required_argument, NULL, OPT_ENGINE },
    { "host",                   required_argument, NULL, OPT_HOST },
    { "port",                   required_argument, NULL, OPT_PORT },
    { "advertise-addr",         required_argument, NULL, OPT_ADVERTISE },
    { "redis",                  required_argument, NULL, OPT_REDIS },
    { "redis-password",         required_argument, NULL, OPT_REDIS_PASSWORD },
    { "redis-db",               required_argument, NULL, OPT_REDIS_DB },
    { "namespace",              required_argument, NULL, OPT_NAMESPACE },
    { "served-model-name",      required_argument, NULL, OPT_SERVED_NAME },
    { "worker-id",              required_argument, NULL, OPT_WORKER_ID },
    { "role",                   required_argument, NULL, OPT_ROLE },
    { "block-size",             required_argument, NULL, OPT_BLOCK_SIZE },
    { "num-blocks",             required_argument, NULL, OPT_NUM_BLOCKS },
    { "kv-cache-memory",        required_argument, NULL, OPT_KV_MEM },
    { "max-num-seqs",           required_argument, NULL, OPT_MAX_SEQS },
    { "max-num-batched-tokens", required_argument, NULL, OPT_MAX_BATCHED },
    { "max-model-len",          required_argument, NULL, OPT_MAX_LEN },
    { "threads",                required_argument, NULL, OPT_THREADS },
    { "dtype",                  required_argument, NULL, OPT_DTYPE },
    { "tensor-parallel-size",   required_argument, NULL, OPT_TP },
    { "no-prefix-caching",      no_argument,       NULL, OPT_NO_PREFIX },
    { "mock-speedup",           required_argument, NULL, OPT_MOCK_SPEEDUP },
    { "mock-seed",              required_argument, NULL, OPT_MOCK_SEED },
    { "num-workers",            required_argument, NULL, OPT_NUM_WORKERS },
    { "max-local-prefill-length", required_argument, NULL,
      OPT_MAX_LOCAL_PREFILL },
    { "max-prefill-queue-tokens", required_argument, NULL,
      OPT_MAX_PREFILL_QUEUE },
    { "remote-prefill-timeout-ms", required_argument, NULL,
      OPT_REMOTE_TIMEOUT },
    { "kv-transport",           required_argument, NULL, OPT_KV_TRANSPORT },
    { "kv-peer-errors",         no_argument,       NULL, OPT_KV_PEER_ERRORS },
    { "log-level",              required_argument, NULL, OPT_LOG_LEVEL },
    { "help",                   no_argument,       NULL, OPT_HELP },
    { NULL, 0, NULL, 0 }
};

void
dw_opts_usage(FILE *out)
{
    fputs(
"usage: dynamo-worker --model DIR [options]\n"
"\n"
"Serves one model over the internal token protocol (worker/PROTOCOL.md)\n"
"and publishes its KV cache state to Redis for KV-aware routing.\n"
"\n"
"Model and engine:\n"
"  --model DIR                 Hugging Face model directory (required)\n"
"  --engine cpu|cuda|mock      cpu: real forward pass; cuda: the same on\n"
"                              an NVIDIA GPU; mock: timing model, needs\n"
"                              only config.json (default cpu)\n"
"  --dtype bf16|f16|f32        cuda: weights and KV cache on the GPU\n"
"                              (default bf16)\n"
"  --tensor-parallel-size N    cuda: GPUs per worker, one model split\n"
"                              over devices 0..N-1 (1)\n"
"  --served-model-name NAME    model name (default: basename of --model)\n"
"  --threads N                 cpu threads, 0 = all cores (default 0)\n"
"  --mock-speedup X            mock: divide modelled step times by X (1)\n"
"  --mock-seed N               mock: token stream seed (0)\n"
"  --num-workers N             mock only: N workers in one process, each\n"
"                              with its own engine, port, id and\n"
"                              registration (default 1)\n"
"\n"
"KV cache and scheduling:\n"
"  --block-size N              tokens per KV block (default 16)\n"
"  --num-blocks N              KV pool size in blocks (default: from\n"
"                              --kv-cache-memory)\n"
"  --kv-cache-memory SIZE      KV pool bytes, suffix K, M or G (default\n"
"                              256M; mock: 16384 blocks when neither is set)\n"
"  --max-num-seqs N            running sequences (default 256)\n"
"  --max-num-batched-tokens N  tokens per engine step, at least\n"
"                              --max-num-seqs (default 8192)\n"
"  --max-model-len N           context length (default: the model's)\n"
"  --no-prefix-caching         do not reuse cached prompt blocks\n"
"\n"
"Network:\n"
"  --host ADDR                 listen address, an IP literal (127.0.0.1)\n"
"  --port N                    listen port, 0 = pick a free one (8000);\n"
"                              with --num-workers, worker i listens on\n"
"                              port+i (or each on a picked one for 0)\n"
"  --advertise-addr IP[:PORT]  address registered in Redis, an IP\n"
"                              literal, [IPv6] in brackets (default\n"
"                              host:port of the listener)\n"
"\n"
"Redis (KV events, registration, load):\n"
"  --redis ADDR                host:port (IP literal) or unix:/path, or\n"
"                              'none' to run without Redis\n"
"                              (default 127.0.0.1:6379)\n"
"  --redis-password PW         AUTH password\n"
"  --redis-db N                SELECT database (default 0)\n"
"  --namespace NS              key namespace (default: served model name)\n"
"  --worker-id N               worker id, < 2^63 (default random; worker i\n"
"                              of --num-workers gets N+i)\n"
"  --role both|decode|prefill  role recorded in the registration (both);\n"
"                              decode and prefill disaggregate (below)\n"
"\n"
"Disaggregated prefill (worker/DISAGG.md; --role decode or prefill):\n"
"  --max-local-prefill-length N  decode: prefill locally unless more than\n"
"                              N prompt tokens are uncached (default 1000)\n"
"  --max-prefill-queue-tokens N  decode: prefill locally when the prompt\n"
"                              tokens in flight to the prefill worker plus\n"
"                              this prompt pass N (default 16384)\n"
"  --remote-prefill-timeout-ms N  decode: wait at most N ms for the prefill\n"
"                              worker's KV, then prefill locally (10000)\n"
"  --kv-transport TLS          UCX transports for the KV transfer, a\n"
"                              UCX_TLS value such as tcp, sm or tcp,sm\n"
"                              (default: UCX_TLS from the environment,\n"
"                              else UCX's choice)\n"
"  --kv-peer-errors            have UCX detect dead peers (keeps same-host\n"
"                              pairs off shared memory; default off)\n"
"\n"
"  --log-level error|warn|info|debug  (default info)\n"
"  --help                      this text\n", out);
}

static int
opts_u64(const char *s, uint64_t max, uint64_t *out)
{
    char                *end;
    unsigned long long   v;

    if (s[0] < '0' || s[0] > '9') {
        return -1;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

static int
opts_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    uint64_t  v;

    if (opts_u64(s, hi, &v) != 0 || v < lo) {
        return -1;
    }
    *out = (uint32_t) v;
    return 0;
}

static int
opts_size(const char *s, uint64_t *out)
{
    char      num[32];
    size_t    len;
    uint64_t  v, mul;

    len = strlen(s);
    if (len == 0 || len >= sizeof(num)) {
        return -1;
    }
    memcpy(num, s, len + 1);
    mul = 1;
    switch (num[len - 1]) {
    case 'k': case 'K': mul = 1ULL << 10; break;
    case 'm': case 'M': mul = 1ULL << 20; break;
    case 'g': case 'G': mul = 1ULL << 30; break;
    default: break;
    }
    if (mul != 1) {
        num[len - 1] = '\0';
    }
    if (opts_u64(num, UINT64_MAX / mul, &v) != 0 || v == 0) {
        return -1;
    }
    *out = v * mul;
    return 0;
}

int
dw_opts_split_addr(const char *addr, char *host, size_t hostlen,
    uint32_t *port)
{
    const char  *colon, *h;
    size_t       hl;

    colon = strrchr(addr, ':');
    if (colon == NULL) {
        return -1;
    }
    h = addr;
    hl = (size_t) (colon - addr);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= hostlen
        || opts_u32(colon + 1, 1, 65535, port) != 0)
    {
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    return 0;
}

static void
opts_defaults(dw_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->engine = DW_ENGINE_CPU;
    o->dtype = DW_DT_BF16;
    o->tensor_parallel = 1;
    o->host = "127.0.0.1";
    o->port = 8000;
    o->redis = "127.0.0.1:6379";
    o->role = KVR_ROLE_BOTH;
    o->block_size = 16;
    o->max_num_seqs = 256;
    o->max_num_batched_tokens = 8192;
    o->prefix_caching = 1;
    o->mock_speedup = 1.0;
    o->num_workers = 1;
    o->max_local_prefill = 1000;         /* Dynamo's default */
    o->max_prefill_queue = 16384;
    o->remote_prefill_timeout_ms = 10000;
    o->log_level = DW_LOG_INFO;
}

static int
opts_bad(char *err, size_t errlen, const char *flag, const char *val,
    const char *want)
{
    snprintf(err, errlen, "--%s '%s': %s", flag, val, want);
    return -1;
}

/*
 * --advertise-addr: an IP literal, as routers never resolve names:
 * IPv4[:PORT] or [IPv6][:PORT]. 0 (*has_port set) or -1.
 */
static int
opts_advertise(const char *a, int *has_port)
{
    char             host[KVR_ADDR_MAX];
    const char      *end, *p;
    size_t           hl;
    uint32_t         port;
    int              af;
    struct in6_addr  buf;

    if (a[0] == '[') {
        end = strchr(a, ']');
        if (end == NULL) {
            return -1;
        }
        a++;
        p = end + 1;
        af = AF_INET6;
    } else {
        end = strchr(a, ':');
        if (end == NULL) {
            end = a + strlen(a);
        }
        p = end;
        af = AF_INET;
    }
    hl = (size_t) (end - a);
    if (hl == 0 || hl >= sizeof(host)) {
        return -1;
    }
    memcpy(host, a, hl);
    host[hl] = '\0';
    if (inet_pton(af, host, &buf) != 1) {
        return -1;
    }
    *has_port = (*p == ':');
    if (*p == '\0') {
        return 0;
    }
    if (*p != ':' || opts_u32(p + 1, 1, 65535, &port) != 0) {
        return -1;
    }
    return 0;
}

/* A UCX_TLS value: a list of transport names, maybe negated ("^tcp"). */
static int
opts_tls(const char *s)
{
    size_t  i, n;

    n = strlen(s);
    if (n == 0 || n > 256) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
              || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == ','
              || s[i] == '^' || s[i] == ':'))
        {
            return -1;
        }
    }
    return 0;
}

static int
opts_check(dw_opts_t *o, char *err, size_t errlen)
{
    const char  *base, *end;
    char         host[128];
    uint32_t     port;
    size_t       len;
    int          has_port;

    if (o->model == NULL) {
        snprintf(err, errlen, "--model DIR is required");
        return -1;
    }
    /* as vLLM: otherwise decodes beyond the budget would never run */
    if (o->max_num_batched_tokens < o->max_num_seqs) {
        snprintf(err, errlen, "--max-num-batched-tokens %u is below "
                 "--max-num-seqs %u", o->max_num_batched_tokens,
                 o->max_num_seqs);
        return -1;
    }
    if (o->has_dtype && o->engine != DW_ENGINE_CUDA) {
        snprintf(err, errlen, "--dtype needs --engine cuda (the cpu "
                 "backend computes in f32 from the weights as stored)");
        return -1;
    }
    /* whether N fits the model and the machine is the backend's check */
    if (o->tensor_parallel > 1 && o->engine != DW_ENGINE_CUDA) {
        snprintf(err, errlen, "--tensor-parallel-size %u needs --engine "
                 "cuda (it splits the model over GPUs)", o->tensor_parallel);
        return -1;
    }
    if (o->engine == DW_ENGINE_CUDA && o->role != KVR_ROLE_BOTH) {
        snprintf(err, errlen, "--engine cuda does not disaggregate yet "
                 "(KV transfer from GPU memory): use --role both");
        return -1;
    }
    if (o->num_workers > 1 && o->engine != DW_ENGINE_MOCK) {
        snprintf(err, errlen, "--num-workers > 1 needs --engine mock");
        return -1;
    }
    if (o->num_workers > 1 && o->port != 0
        && o->port + o->num_workers - 1 > 65535)
    {
        snprintf(err, errlen, "--port %u + --num-workers %u passes 65535",
                 o->port, o->num_workers);
        return -1;
    }
    if (o->advertise != NULL && opts_advertise(o->advertise, &has_port) != 0)
    {
        return opts_bad(err, errlen, "advertise-addr", o->advertise,
                        "want an IP address: IPv4[:PORT] or [IPv6][:PORT] "
                        "(routers do not resolve host names)");
    }
    if (o->advertise != NULL && o->num_workers > 1 && has_port) {
        snprintf(err, errlen, "--advertise-addr with --num-workers takes a "
                 "host only (each worker adds its own port)");
        return -1;
    }
    if (o->redis != NULL && strncmp(o->redis, "unix:", 5) != 0
        && dw_opts_split_addr(o->redis, host, sizeof(host), &port) != 0)
    {
        return opts_bad(err, errlen, "redis", o->redis,
                        "want host:port, unix:/path or none");
    }
    if (o->redis != NULL && strncmp(o->redis, "unix:", 5) == 0
        && o->redis[5] == '\0')
    {
        return opts_bad(err, errlen, "redis", o->redis, "empty socket path");
    }
    if (o->has_worker_id && o->num_workers > 1
        && o->worker_id + o->num_workers - 1 > (uint64_t) INT64_MAX)
    {
        snprintf(err, errlen, "--worker-id + --num-workers passes 2^63");
        return -1;
    }
    if (o->served_model_name == NULL) {
        /* basename of --model, trailing slashes ignored */
        end = o->model + strlen(o->model);
        while (end > o->model + 1 && end[-1] == '/') {
            end--;
        }
        base = end;
        while (base > o->model && base[-1] != '/') {
            base--;
        }
        len = (size_t) (end - base);
        if (len == 0 || len >= sizeof(o->name_buf)) {
            snprintf(err, errlen, "cannot derive a model name from --model "
                     "'%s': give --served-model-name", o->model);
            return -1;
        }
        memcpy(o->name_buf, base, len);
        o->name_buf[len] = '\0';
        o->served_model_name = o->name_buf;
    }
    if (o->ns == NULL) {
        o->ns = o->served_model_name;
        if (kvr_redis_ns_valid(o->ns) != KVR_OK) {
            snprintf(err, errlen, "the served model name '%s' is not a valid "
                     "Redis namespace (printable ASCII, no space, ':', '{', "
                     "'}'): give --namespace", o->ns);
            return -1;
        }
    }
    return 0;
}

/* The options that take an integer in a range, parsed by one path. */
typedef struct {
    int          opt;
    size_t       off;           /* of its uint32_t in dw_opts_t */
    uint32_t     lo, hi;
    const char  *want;
} dw_u32_opt_t;

static const dw_u32_opt_t  dw_u32_opts[] = {
    { OPT_PORT, offsetof(dw_opts_t, port),
      0, 65535, "want 0..65535" },
    { OPT_REDIS_DB, offsetof(dw_opts_t, redis_db),
      0, 65535, "want 0..65535" },
    { OPT_BLOCK_SIZE, offsetof(dw_opts_t, block_size),
      1, 1024, "want 1..1024" },
    { OPT_NUM_BLOCKS, offsetof(dw_opts_t, num_blocks),
      1, 1U << 30, "want 1..2^30" },
    { OPT_MAX_SEQS, offsetof(dw_opts_t, max_num_seqs),
      1, 1U << 20, "want 1..2^20" },
    { OPT_MAX_BATCHED, offsetof(dw_opts_t, max_num_batched_tokens),
      1, 1U << 24, "want 1..2^24" },
    { OPT_MAX_LEN, offsetof(dw_opts_t, max_model_len),
      2, 1U << 24, "want 2..2^24" },
    { OPT_THREADS, offsetof(dw_opts_t, threads),
      0, 1024, "want 0..1024" },
    { OPT_TP, offsetof(dw_opts_t, tensor_parallel),
      1, 64, "want 1..64 GPUs" },
    { OPT_NUM_WORKERS, offsetof(dw_opts_t, num_workers),
      1, 1024, "want 1..1024" },
    { OPT_MAX_LOCAL_PREFILL, offsetof(dw_opts_t, max_local_prefill),
      0, 1U << 30, "want 0..2^30 tokens" },
    { OPT_REMOTE_TIMEOUT, offsetof(dw_opts_t, remote_prefill_timeout_ms),
      1, 3600000, "want 1..3600000 ms" },
};

static const dw_u32_opt_t *
opts_u32_row(int c)
{
    size_t  i;

    for (i = 0; i < sizeof(dw_u32_opts) / sizeof(dw_u32_opts[0]); i++) {
        if (dw_u32_opts[i].opt == c) {
            return &dw_u32_opts[i];
        }
    }
    return NULL;
}

int
dw_opts_parse(dw_opts_t *o, int argc, char **argv, FILE *out, char *err,
    size_t errlen)
{
    int                  c, idx;
    const char          *name;
    const dw_u32_opt_t  *u;

    opts_defaults(o);
    optind = 1;
    opterr = 0;
    for ( ;; ) {
        idx = -1;
        c = getopt_long(argc, argv, ":h", dw_long_opts, &idx);
        if (c == -1) {
            break;
        }
        name = idx >= 0 ? dw_long_opts[idx].name : "";
        u = opts_u32_row(c);
        if (u != NULL) {
            if (opts_u32(optarg, u->lo, u->hi,
                         (uint32_t *) ((char *) o + u->off)))
            {
                return opts_bad(err, errlen, name, optarg, u->want);
            }
            continue;
        }
        switch (c) {
        case OPT_MODEL:
            o->model = optarg;
            break;
        case OPT_ENGINE:
            if (strcmp(optarg, "cpu") == 0) {
                o->engine = DW_ENGINE_CPU;
    o->dtype = DW_DT_BF16;
    o->tensor_parallel = 1;
            } else if (strcmp(optarg, "mock") == 0) {
                o->engine = DW_ENGINE_MOCK;
            } else if (strcmp(optarg, "cuda") == 0) {
                o->engine = DW_ENGINE_CUDA;
            } else {
                return opts_bad(err, errlen, name, optarg,
                                "want cpu, cuda or mock");
            }
            break;
        case OPT_DTYPE:
            if (strcmp(optarg, "bf16") == 0) {
                o->dtype = DW_DT_BF16;
            } else if (strcmp(optarg, "f16") == 0) {
                o->dtype = DW_DT_F16;
            } else if (strcmp(optarg, "f32") == 0) {
                o->dtype = DW_DT_F32;
            } else {
                return opts_bad(err, errlen, name, optarg,
                                "want bf16, f16 or f32");
            }
            o->has_dtype = 1;
            break;
        case OPT_HOST:
            o->host = optarg;
            break;
        case OPT_ADVERTISE:
            if (optarg[0] == '\0' || strlen(optarg) >= KVR_ADDR_MAX - 6) {
                return opts_bad(err, errlen, name, optarg,
                                "want IP[:PORT], < 58 bytes");
            }
            o->advertise = optarg;
            break;
        case OPT_REDIS:
            o->redis = strcmp(optarg, "none") == 0 ? NULL : optarg;
            break;
        case OPT_REDIS_PASSWORD:
            o->redis_password = optarg;
            break;
        case OPT_NAMESPACE:
            if (kvr_redis_ns_valid(optarg) != KVR_OK) {
                return opts_bad(err, errlen, name, optarg,
                                "want 1..128 printable ASCII bytes, no "
                                "space, ':', '{' or '}'");
            }
            o->ns = optarg;
            break;
        case OPT_SERVED_NAME:
            if (optarg[0] == '\0' || strlen(optarg) > 200) {
                return opts_bad(err, errlen, name, optarg,
                                "want 1..200 bytes");
            }
            o->served_model_name = optarg;
            break;
        case OPT_WORKER_ID:
            if (opts_u64(optarg, (uint64_t) INT64_MAX, &o->worker_id)) {
                return opts_bad(err, errlen, name, optarg,
                                "want 0..2^63-1");
            }
            o->has_worker_id = 1;
            break;
        case OPT_ROLE:
            if (kvr_role_parse(optarg, &o->role) != KVR_OK) {
                return opts_bad(err, errlen, name, optarg,
                                "want both, decode or prefill");
            }
            break;
        case OPT_KV_MEM:
            if (opts_size(optarg, &o->kv_cache_memory)) {
                return opts_bad(err, errlen, name, optarg,
                                "want bytes > 0, with an optional K, M or G");
            }
            break;
        case OPT_NO_PREFIX:
            o->prefix_caching = 0;
            break;
        case OPT_MOCK_SPEEDUP:
            {
                char  *end;

                errno = 0;
                o->mock_speedup = strtod(optarg, &end);
                if (errno != 0 || *end != '\0' || end == optarg
                    || !(o->mock_speedup > 0 && o->mock_speedup < 1e9))
                {
                    return opts_bad(err, errlen, name, optarg,
                                    "want a number > 0");
                }
            }
            break;
        case OPT_MOCK_SEED:
            if (opts_u64(optarg, UINT64_MAX, &o->mock_seed)) {
                return opts_bad(err, errlen, name, optarg, "want a u64");
            }
            break;
        case OPT_MAX_PREFILL_QUEUE:
            if (opts_u64(optarg, 1ULL << 40, &o->max_prefill_queue)) {
                return opts_bad(err, errlen, name, optarg,
                                "want 0..2^40 tokens");
            }
            break;
        case OPT_KV_TRANSPORT:
            if (opts_tls(optarg) != 0) {
                return opts_bad(err, errlen, name, optarg,
                                "want a UCX_TLS value: transport names "
                                "such as tcp,sm (letters, digits, _ , ^ :)");
            }
            o->kv_transport = optarg;
            break;
        case OPT_KV_PEER_ERRORS:
            o->kv_peer_errors = 1;
            break;
        case OPT_LOG_LEVEL:
            if (dw_log_level_parse(optarg, &o->log_level)) {
                return opts_bad(err, errlen, name, optarg,
                                "want error, warn, info or debug");
            }
            break;
        case 'h':
        case OPT_HELP:
            dw_opts_usage(out);
            return 1;
        case ':':
            snprintf(err, errlen, "%s: needs a value", argv[optind - 1]);
            return -1;
        default:
            snprintf(err, errlen, "unknown option '%s' (see --help)",
                     argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s' (see --help)",
                 argv[optind]);
        return -1;
    }
    return opts_check(o, err, errlen);
}
