/*
 * dw-xfer-bench: KV block transfer rate between two processes over UCX
 * (dw_xfer.h), for comparison with ucx_perftest's ucp_put_bw at the same
 * message size and transport (worker/bench/xfer.sh runs both).
 *
 * The process forks: the child plays the decode worker (registers its
 * pool, sends the descriptor over a socketpair, counts notifications),
 * the parent the prefill worker: each iteration is one batch of --blocks
 * blocks (every layer, K and V: 2 * layers puts of --chunk bytes per
 * block, destination ids permuted so no two puts merge), its flush and
 * its notification. Rate = bytes / wall time over the timed iterations.
 *
 *   dw-xfer-bench [--tls tcp|sm|...] [--chunk BYTES] [--layers N]
 *                 [--blocks N] [--iters N] [--warmup N] [--hot]
 *                 [--malloc] [--no-peer-errors] [--json]
 *
 * Prints one line: human-readable, or with --json one JSON object.
 * Exit 0, 1 on a transfer error, 2 on a bad flag.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dw_xfer.h"

typedef struct {
    const char  *tls;
    uint64_t     chunk;
    uint32_t     layers;
    uint32_t     blocks;
    uint32_t     iters;
    uint32_t     warmup;
    int          json;
    int          use_malloc;        /* pools from malloc, not UCX */
    int          hot;               /* every put: block 0 -> block 0 */
    int          no_peer_errors;
} opts_t;

static void
usage(FILE *f)
{
    fprintf(f, "usage: dw-xfer-bench [--tls TLS] [--chunk BYTES] "
            "[--layers N] [--blocks N]\n"
            "                     [--iters N] [--warmup N] [--hot] [--malloc]\n"
            "                     [--no-peer-errors] [--json]\n"
            "  --tls     UCX transports (tcp, sm, ...; default UCX_TLS or "
            "UCX's choice)\n"
            "  --chunk   bytes of one (layer, K/V) piece of a block = one "
            "put (65536)\n"
            "  --layers  layers per block (1)\n"
            "  --blocks  blocks per batch (256)\n"
            "  --iters   timed batches (20), --warmup untimed ones (2)\n"
            "  --malloc  pools from malloc (default: allocated by UCX)\n"
            "  --hot     every put copies block 0 to block 0 (pools of one\n"
            "            block, cache-resident, as ucx_perftest reuses one "
            "buffer)\n"
            "  --no-peer-errors  endpoints without peer failure detection\n"
            "            (lets UCX use shared memory with \"tcp,sm\" or the "
            "default)\n");
}

static int
num(const char *flag, const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char                *end;
    unsigned long long   x;

    errno = 0;
    x = v != NULL ? strtoull(v, &end, 10) : 0;
    if (v == NULL || *v == '\0' || *v == '-' || *end != '\0' || errno
        || x < lo || x > hi)
    {
        fprintf(stderr, "dw-xfer-bench: %s: expected an integer in %" PRIu64
                "..%" PRIu64 "\n", flag, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int
parse(int argc, char **argv, opts_t *o)
{
    uint64_t  v;
    int       i;

    o->tls = NULL;
    o->chunk = 65536;
    o->layers = 1;
    o->blocks = 256;
    o->iters = 20;
    o->warmup = 2;
    o->json = 0;
    o->use_malloc = 0;
    o->hot = 0;
    o->no_peer_errors = 0;
    for (i = 1; i < argc; i++) {
        const char  *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--json") == 0) {
            o->json = 1;
            continue;
        }
        if (strcmp(a, "--no-peer-errors") == 0) {
            o->no_peer_errors = 1;
            continue;
        }
        if (strcmp(a, "--hot") == 0) {
            o->hot = 1;
            continue;
        }
        if (strcmp(a, "--malloc") == 0) {
            o->use_malloc = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--tls") == 0 && val != NULL) {
            o->tls = val;
        } else if (strcmp(a, "--chunk") == 0) {
            /* chunk = block_size 16 * head_dim * 4: a multiple of 64 */
            if (num(a, val, 64, 1u << 30, &v)) {
                return -1;
            }
            if (v % 64 != 0) {
                fprintf(stderr, "dw-xfer-bench: --chunk: a multiple of "
                        "64\n");
                return -1;
            }
            o->chunk = v;
        } else if (strcmp(a, "--layers") == 0) {
            if (num(a, val, 1, 1024, &v)) {
                return -1;
            }
            o->layers = (uint32_t) v;
        } else if (strcmp(a, "--blocks") == 0) {
            if (num(a, val, 1, 1u << 20, &v)) {
                return -1;
            }
            o->blocks = (uint32_t) v;
        } else if (strcmp(a, "--iters") == 0) {
            if (num(a, val, 1, 1u << 20, &v)) {
                return -1;
            }
            o->iters = (uint32_t) v;
        } else if (strcmp(a, "--warmup") == 0) {
            if (num(a, val, 0, 1u << 20, &v)) {
                return -1;
            }
            o->warmup = (uint32_t) v;
        } else {
            fprintf(stderr, "dw-xfer-bench: unknown or incomplete flag "
                    "\"%s\"\n", a);
            usage(stderr);
            return -1;
        }
        i++;
    }
    if (o->chunk * o->layers * 2 * o->blocks > ((uint64_t) 1 << 33)) {
        fprintf(stderr, "dw-xfer-bench: pool over 8 GiB\n");
        return -1;
    }
    return 0;
}

/* One f32 layout per process: chunk = 16 tokens * 1 head * hd * 4. */
static int
layout(const opts_t *o, dw_xfer_layout_t *l, char *err, size_t errlen)
{
    dw_config_t  c;

    memset(&c, 0, sizeof(c));
    c.n_layers = o->layers;
    c.n_kv_heads = 1;
    c.n_heads = 1;
    c.head_dim = (uint32_t) (o->chunk / 64);
    return dw_xfer_layout_cpu(l, "xfer-bench", &c, 16,
                              o->hot ? 1 : o->blocks, err, errlen);
}

static size_t
pool_bytes(const opts_t *o)
{
    return (size_t) o->chunk * o->layers * 2 * (o->hot ? 1 : o->blocks);
}

/* bytes one batch moves */
static uint64_t
batch_bytes(const opts_t *o)
{
    return (uint64_t) o->chunk * o->layers * 2 * o->blocks;
}

static void
count_note(void *arg, uint64_t id, int32_t status, const void *p, size_t n)
{
    (*(uint32_t *) arg)++;
}

/* the decode side: serve until every batch has been notified */
static int
child(const opts_t *o, int fd)
{
    dw_xfer_opts_t    xo = { .tls = o->tls, .name = "xfer-bench-d" };
    dw_xfer_layout_t  l;
    dw_xfer_t        *x;
    dw_xfer_reg_t    *r;
    uint32_t          notes = 0, n;
    unsigned char    *pool;
    char             *desc, err[256];
    size_t            len;
    char              ack;

    pool = o->use_malloc ? calloc(1, pool_bytes(o)) : NULL;
    if ((o->use_malloc && pool == NULL)
        || layout(o, &l, err, sizeof(err)) != 0
        || dw_xfer_create(&xo, &x, err, sizeof(err)) != 0
        || dw_xfer_register(x, pool, pool_bytes(o), &l, &r, err,
                            sizeof(err)) != 0
        || dw_xfer_describe(r, &desc, &len, err, sizeof(err)) != 0)
    {
        fprintf(stderr, "dw-xfer-bench: decode side: %s\n", err);
        return 1;
    }
    memset(dw_xfer_reg_base(r), 0, pool_bytes(o));
    n = (uint32_t) len;
    if (write(fd, &n, 4) != 4 || write(fd, desc, len) != (ssize_t) len) {
        return 1;
    }
    free(desc);
    dw_xfer_set_note_handler(x, count_note, &notes);
    for (n = 0; notes < o->iters + o->warmup; n++) {
        dw_xfer_progress(x);
        /* parent gone (error): stop; a syscall only now and then */
        if ((n & 4095) == 0 && recv(fd, &ack, 1, MSG_DONTWAIT) == 0) {
            break;
        }
    }
    /* wait for the parent to finish before tearing the endpoint down */
    while (recv(fd, &ack, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN) {
        dw_xfer_progress(x);
    }
    dw_xfer_unregister(x, r);
    dw_xfer_destroy(x);
    free(pool);
    return notes == o->iters + o->warmup ? 0 : 1;
}

/* the decode side's descriptor, length-prefixed on fd: 0 or -1 */
static int
recv_desc(int fd, dw_xfer_desc_t *d)
{
    uint32_t  n, got = 0;
    ssize_t   k;
    char     *desc, err[256];

    if (read(fd, &n, 4) != 4 || n > (1u << 24)
        || (desc = malloc(n)) == NULL)
    {
        fprintf(stderr, "dw-xfer-bench: no descriptor from the decode "
                "side\n");
        return -1;
    }
    while (got < n && (k = read(fd, desc + got, n - got)) > 0) {
        got += (uint32_t) k;
    }
    if (got != n || dw_xfer_desc_parse(desc, n, d, err, sizeof(err)) != 0) {
        fprintf(stderr, "dw-xfer-bench: descriptor: %s\n",
                got != n ? "short read" : err);
        free(desc);
        return -1;
    }
    free(desc);
    return 0;
}

static void
report(const opts_t *o, dw_xfer_t *x, double secs)
{
    dw_xfer_stats_t  st;
    uint64_t         bytes = (uint64_t) o->iters * batch_bytes(o);

    dw_xfer_stats(x, &st);
    if (o->json) {
        printf("{\"transport\":\"%s\",\"chunk_bytes\":%" PRIu64
               ",\"layers\":%" PRIu32 ",\"blocks\":%" PRIu32
               ",\"iters\":%" PRIu32 ",\"bytes\":%" PRIu64
               ",\"seconds\":%.6f,\"gbps\":%.4f,\"puts\":%" PRIu64
               ",\"batch_ms\":%.3f,\"hot\":%s,\"ucx_alloc\":%s}\n",
               dw_xfer_tls(x), o->chunk, o->layers, o->blocks, o->iters,
               bytes, secs, bytes / secs / 1e9, st.puts,
               secs / o->iters * 1e3, o->hot ? "true" : "false",
               o->use_malloc ? "false" : "true");
    } else {
        printf("transport %s, %" PRIu32 " blocks x %" PRIu32 " layers x K/V "
               "x %" PRIu64 " B: %.3f GB/s (%.3f ms a batch of %.1f MiB)\n",
               dw_xfer_tls(x), o->blocks, o->layers, o->chunk,
               bytes / secs / 1e9, secs / o->iters * 1e3,
               batch_bytes(o) / 1048576.0);
    }
}

static int
parent(const opts_t *o, int fd, pid_t pid)
{
    dw_xfer_opts_t     xo = { .tls = o->tls, .name = "xfer-bench-p",
                              .no_peer_errors = o->no_peer_errors };
    dw_xfer_layout_t   l;
    dw_xfer_desc_t     d;
    dw_xfer_t         *x;
    dw_xfer_reg_t     *r;
    dw_xfer_remote_t  *rm;
    dw_xfer_req_t     *q;
    dw_xfer_put_t      p;
    uint32_t          *src, *dst, i, it;
    unsigned char     *pool;
    char               err[256];
    double             t0 = 0;
    int                rc = 1;

    pool = o->use_malloc ? malloc(pool_bytes(o)) : NULL;
    src = malloc(o->blocks * sizeof(*src));
    dst = malloc(o->blocks * sizeof(*dst));
    if ((o->use_malloc && pool == NULL) || src == NULL || dst == NULL) {
        fprintf(stderr, "dw-xfer-bench: out of memory\n");
        return 1;
    }
    /* dst: a permutation with no consecutive pair: i -> 3i + 1 (a
       permutation when 3 does not divide blocks), else reversed */
    for (i = 0; i < o->blocks; i++) {
        src[i] = o->hot ? 0 : i;
        if (o->hot) {
            dst[i] = 0;
        } else if (o->blocks % 3 == 0 || o->blocks <= 2) {
            dst[i] = o->blocks - 1 - i;
        } else {
            dst[i] = (uint32_t) (((uint64_t) i * 3 + 1) % o->blocks);
        }
    }
    if (layout(o, &l, err, sizeof(err)) != 0
        || dw_xfer_create(&xo, &x, err, sizeof(err)) != 0)
    {
        fprintf(stderr, "dw-xfer-bench: %s\n", err);
        return 1;
    }
    if (recv_desc(fd, &d) != 0) {
        goto out;
    }
    if (dw_xfer_register(x, pool, pool_bytes(o), &l, &r, err,
                         sizeof(err)) != 0)
    {
        fprintf(stderr, "dw-xfer-bench: %s\n", err);
        dw_xfer_desc_free(&d);
        goto out;
    }
    memset(dw_xfer_reg_base(r), 0xab, pool_bytes(o));
    if (dw_xfer_connect(x, &d, &l, &rm, err, sizeof(err)) != 0) {
        fprintf(stderr, "dw-xfer-bench: %s\n", err);
        dw_xfer_desc_free(&d);
        dw_xfer_unregister(x, r);
        goto out;
    }
    dw_xfer_desc_free(&d);
    memset(&p, 0, sizeof(p));
    p.src = src;
    p.dst = dst;
    p.n = o->blocks;
    p.note = "bench";
    p.note_len = 5;
    p.timeout_ms = 60000;
    for (it = 0; it < o->warmup + o->iters; it++) {
        if (it == o->warmup) {
            t0 = dw_xfer_now();
        }
        p.id = it;
        if (dw_xfer_put(x, rm, r, &p, &q, err, sizeof(err)) != 0
            || dw_xfer_req_wait(x, q, 60000, err, sizeof(err)) != 1)
        {
            fprintf(stderr, "dw-xfer-bench: batch %" PRIu32 ": %s\n", it,
                    err);
            dw_xfer_req_free(x, q);
            goto out_remote;
        }
        dw_xfer_req_free(x, q);
    }
    report(o, x, dw_xfer_now() - t0);
    rc = 0;

out_remote:
    dw_xfer_remote_free(x, rm);
    dw_xfer_unregister(x, r);
out:
    /* tell the child we are done, then let it close first */
    if (rc != 0) {
        kill(pid, SIGTERM);
    }
    shutdown(fd, SHUT_WR);
    {
        char  c;

        while (read(fd, &c, 1) > 0) {
        }
    }
    dw_xfer_destroy(x);
    free(pool);
    free(src);
    free(dst);
    return rc;
}

int
main(int argc, char **argv)
{
    opts_t  o;
    int     sv[2], status, rc;
    pid_t   pid;

    if (parse(argc, argv, &o) != 0) {
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        perror("dw-xfer-bench: socketpair");
        return 1;
    }
    pid = fork();
    if (pid < 0) {
        perror("dw-xfer-bench: fork");
        return 1;
    }
    if (pid == 0) {
        close(sv[0]);
        _exit(child(&o, sv[1]));
    }
    close(sv[1]);
    rc = parent(&o, sv[0], pid);
    close(sv[0]);
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)
        || WEXITSTATUS(status) != 0)
    {
        rc = rc != 0 ? rc : 1;
    }
    return rc;
}
