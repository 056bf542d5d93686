/*
 * Tests for KV block transfer (dw_xfer.h).
 *
 * Pure parts: base64 against RFC 4648's vectors, the cpu pool layout
 * against offsets worked out by hand from dw_backend_cpu.c, the layout
 * check's messages, and the descriptor's round trip and strict refusals.
 *
 * UCX: two processes (fork) joined by a socketpair for the descriptor
 * exchange. The child plays the decode worker D: it registers a pool of
 * blocks filled with its own byte pattern, sends its descriptor and waits
 * for the notification. The parent plays the prefill worker P with a pool
 * of another size and pattern: it puts chosen blocks (non-contiguous, a
 * run of consecutive ones, every layer, K and V) and notifies. The child
 * then checks every byte of its pool: written blocks hold P's bytes of
 * the matching source block, all others still hold D's pattern. Over tcp
 * and over shared memory, pools from malloc and from UCX, batches waited
 * on and driven by their done callback. Then: a mismatched layout is
 * refused with its message, a peer killed mid-transfer gives an error
 * within a bound, a stopped one the batch deadline's error, and D's own
 * deadlines (dw_xfer_expect) report missing notifications and drop late
 * ones.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "dw_xfer.h"

/* ---- pure parts ---- */

static void
test_base64_rfc4648(void **state)
{
    static const char  *plain[] = { "", "f", "fo", "foo", "foob", "fooba",
                                    "foobar" };
    static const char  *enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==",
                                  "Zm9vYmE=", "Zm9vYmFy" };
    char                buf[16];
    unsigned char       out[16];
    size_t              i, n;

    (void) state;
    for (i = 0; i < 7; i++) {
        n = dw_xfer_b64_encode((const unsigned char *) plain[i],
                               strlen(plain[i]), buf);
        assert_string_equal(buf, enc[i]);
        assert_int_equal(n, strlen(enc[i]));
        assert_int_equal(dw_xfer_b64_decode(enc[i], strlen(enc[i]), out, &n),
                         0);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(out, plain[i], n);
    }
    /* non-canonical or malformed */
    assert_int_equal(dw_xfer_b64_decode("Zh==", 4, out, &n), -1);
    assert_int_equal(dw_xfer_b64_decode("Zm9=", 4, out, &n), -1);
    assert_int_equal(dw_xfer_b64_decode("Zg=", 3, out, &n), -1);
    assert_int_equal(dw_xfer_b64_decode("Z===", 4, out, &n), -1);
    assert_int_equal(dw_xfer_b64_decode("Zg==Zg==", 8, out, &n), -1);
    assert_int_equal(dw_xfer_b64_decode("Zm 9", 4, out, &n), -1);
    assert_int_equal(dw_xfer_b64_decode("=Zm9", 4, out, &n), -1);
}

static dw_config_t
shape(uint32_t n_layers, uint32_t n_kv_heads, uint32_t head_dim)
{
    dw_config_t  c;

    memset(&c, 0, sizeof(c));
    c.n_layers = n_layers;
    c.n_kv_heads = n_kv_heads;
    c.head_dim = head_dim;
    c.n_heads = n_kv_heads;
    return c;
}

static void
test_layout_cpu(void **state)
{
    dw_config_t       c = shape(3, 2, 8);
    dw_xfer_layout_t  l;
    char              err[128];

    (void) state;
    assert_int_equal(dw_xfer_layout_cpu(&l, "m", &c, 16, 10, err,
                                        sizeof(err)), 0);
    /* one chunk: 16 tokens * 2 heads * 8 dims * 4 bytes */
    assert_int_equal(l.chunk_bytes, 1024);
    assert_int_equal(l.block_bytes, 3 * 2 * 1024);
    /* dw_backend_cpu.c: K = kv + l * 2 * kv_pool, V = K + kv_pool,
       kv_pool = n_blocks * bs * kvd floats = 10 * 16 * 16 * 4 bytes */
    assert_int_equal(l.kv_stride, 10240);
    assert_int_equal(l.layer_stride, 20480);
    assert_int_equal(l.block_stride, 1024);
    /* V of block 7 in layer 2 */
    assert_int_equal(dw_xfer_chunk_off(&l, 2, 1, 7), 2 * 20480 + 10240
                     + 7 * 1024);
    /* the whole pool is 61440 bytes: one byte less does not hold it */
    assert_int_equal(dw_xfer_layout_validate(&l, 61440, err, sizeof(err)), 0);
    assert_int_equal(dw_xfer_layout_validate(&l, 61439, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "layout: pool does not fit in 61439 bytes");
    /* overlapping chunks */
    l.block_stride = 512;
    assert_int_equal(dw_xfer_layout_validate(&l, 61440, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "layout: strides make chunks overlap");
    l.block_stride = 1024;
    l.chunk_bytes = 2048;
    assert_int_equal(dw_xfer_layout_validate(&l, 1 << 20, err, sizeof(err)),
                     -1);
}

/* The cuda backend's pool (dw_cuda.h): block-major, of --dtype (bf16,
   f16, f32). */
static void
test_layout_block_major(void **state)
{
    dw_config_t       c = shape(3, 2, 8);
    dw_xfer_layout_t  l, cpu, h;
    char              err[128];

    (void) state;
    assert_int_equal(dw_xfer_layout_block_major(&l, "m", &c, DW_DT_BF16, 16,
                                                10, err, sizeof(err)), 0);
    /* one chunk: 16 tokens * 2 heads * 8 dims * 2 bytes */
    assert_int_equal(l.chunk_bytes, 512);
    assert_int_equal(l.block_bytes, 3 * 2 * 512);
    assert_int_equal(l.block_stride, 3072);
    assert_int_equal(l.layer_stride, 1024);
    assert_int_equal(l.kv_stride, 512);
    /* dw_cuda.h: chunk (b, l, s) at ((b * n_layers + l) * 2 + s) * chunk */
    assert_int_equal(dw_xfer_chunk_off(&l, 2, 1, 7),
                     ((7 * 3 + 2) * 2 + 1) * 512);
    assert_int_equal(dw_xfer_layout_validate(&l, 30720, err, sizeof(err)),
                     0);
    assert_int_equal(dw_xfer_layout_validate(&l, 30719, err, sizeof(err)),
                     -1);
    /* a cpu pool (f32) and a cuda pool (bf16) do not exchange blocks */
    assert_int_equal(dw_xfer_layout_cpu(&cpu, "m", &c, 16, 10, err,
                                        sizeof(err)), 0);
    assert_int_equal(dw_xfer_layout_check(&cpu, &l, err, sizeof(err)), -1);
    /* f32 block-major: same chunks as the cpu pool, other strides */
    assert_int_equal(dw_xfer_layout_block_major(&l, "m", &c, DW_DT_F32, 16,
                                                10, err, sizeof(err)), 0);
    assert_int_equal(l.chunk_bytes, cpu.chunk_bytes);
    assert_int_equal(dw_xfer_layout_check(&cpu, &l, err, sizeof(err)), 0);
    /* f32 block-major: every stride twice bf16's */
    assert_int_equal(l.chunk_bytes, 1024);
    assert_int_equal(l.block_stride, 6144);
    assert_int_equal(l.layer_stride, 2048);
    assert_int_equal(l.kv_stride, 1024);
    assert_int_equal(dw_xfer_layout_validate(&l, 61440, err, sizeof(err)),
                     0);
    assert_int_equal(dw_xfer_layout_validate(&l, 61439, err, sizeof(err)),
                     -1);
    /* f16: bf16's sizes, but a pool of the other 16-bit type is refused
       by name (same bytes, other numbers) */
    assert_int_equal(dw_xfer_layout_block_major(&h, "m", &c, DW_DT_F16, 16,
                                                10, err, sizeof(err)), 0);
    assert_int_equal(h.dtype, DW_DT_F16);
    assert_int_equal(h.chunk_bytes, 512);
    assert_int_equal(h.block_stride, 3072);
    assert_int_equal(dw_xfer_layout_block_major(&l, "m", &c, DW_DT_BF16, 16,
                                                10, err, sizeof(err)), 0);
    assert_int_equal(dw_xfer_layout_check(&l, &h, err, sizeof(err)), -1);
    assert_string_equal(err, "dtype bf16 != f16");
    assert_int_equal(dw_xfer_layout_check(&h, &h, err, sizeof(err)), 0);
    assert_int_equal(dw_xfer_layout_check(&cpu, &h, err, sizeof(err)), -1);
}

static void
test_layout_check_messages(void **state)
{
    dw_config_t       c = shape(3, 2, 8);
    dw_xfer_layout_t  a, b;
    char              err[128];

    (void) state;
    assert_int_equal(dw_xfer_layout_cpu(&a, "llama", &c, 16, 10, err,
                                        sizeof(err)), 0);
    /* pool size differs only: compatible */
    assert_int_equal(dw_xfer_layout_cpu(&b, "llama", &c, 16, 99, err,
                                        sizeof(err)), 0);
    assert_int_equal(dw_xfer_layout_check(&a, &b, err, sizeof(err)), 0);
    assert_int_equal(dw_xfer_layout_cpu(&b, "llama", &c, 32, 10, err,
                                        sizeof(err)), 0);
    assert_int_equal(dw_xfer_layout_check(&a, &b, err, sizeof(err)), -1);
    assert_string_equal(err, "block_size 16 != 32");
    assert_int_equal(dw_xfer_layout_cpu(&b, "qwen", &c, 16, 10, err,
                                        sizeof(err)), 0);
    assert_int_equal(dw_xfer_layout_check(&a, &b, err, sizeof(err)), -1);
    assert_string_equal(err, "model llama != qwen");
    assert_int_equal(dw_xfer_layout_cpu(&b, "llama", &c, 16, 10, err,
                                        sizeof(err)), 0);
    b.dtype = DW_DT_BF16;
    b.chunk_bytes /= 2;
    b.block_bytes /= 2;
    assert_int_equal(dw_xfer_layout_check(&a, &b, err, sizeof(err)), -1);
    assert_string_equal(err, "dtype f32 != bf16");
    c = shape(4, 2, 8);
    assert_int_equal(dw_xfer_layout_cpu(&b, "llama", &c, 16, 10, err,
                                        sizeof(err)), 0);
    assert_int_equal(dw_xfer_layout_check(&a, &b, err, sizeof(err)), -1);
    assert_string_equal(err, "n_layers 3 != 4");
}

static void
make_desc(dw_xfer_desc_t *d, unsigned char *addr, unsigned char *rkey)
{
    dw_config_t  c = shape(3, 2, 8);
    char         err[128];
    size_t       i;

    memset(d, 0, sizeof(*d));
    assert_int_equal(dw_xfer_layout_cpu(&d->layout, "stories260K", &c, 16, 10,
                                        err, sizeof(err)), 0);
    d->base = 0x7f12c4000000ull;
    d->length = 61440;
    for (i = 0; i < 37; i++) {
        addr[i] = (unsigned char) (i * 41 + 3);
    }
    for (i = 0; i < 20; i++) {
        rkey[i] = (unsigned char) (255 - i * 7);
    }
    d->addr = addr;
    d->addr_len = 37;
    d->rkey = rkey;
    d->rkey_len = 20;
}

static int
parse_str(const char *s, char *err, size_t errlen)
{
    dw_xfer_desc_t  d;
    int             rc = dw_xfer_desc_parse(s, strlen(s), &d, err, errlen);

    dw_xfer_desc_free(&d);
    return rc;
}

/* s with the first occurrence of from replaced by to (static buffer) */
static const char *
subst(const char *s, const char *from, const char *to)
{
    static char  buf[4096];
    const char  *p = strstr(s, from);

    assert_non_null(p);
    snprintf(buf, sizeof(buf), "%.*s%s%s", (int) (p - s), s, to,
             p + strlen(from));
    return buf;
}

static void
test_desc_round_trip_and_refusals(void **state)
{
    dw_xfer_desc_t  d, e;
    unsigned char   addr[37], rkey[20];
    char           *s, err[160];
    size_t          n;

    (void) state;
    make_desc(&d, addr, rkey);
    assert_int_equal(dw_xfer_desc_encode(&d, &s, &n, err, sizeof(err)), 0);
    assert_int_equal(strlen(s), n);
    assert_non_null(strstr(s, "\"base\":\"7f12c4000000\""));
    assert_non_null(strstr(s, "\"block_size\":16"));
    assert_int_equal(dw_xfer_desc_parse(s, n, &e, err, sizeof(err)), 0);
    assert_memory_equal(&e.layout, &d.layout, sizeof(d.layout));
    assert_true(e.base == d.base);
    assert_true(e.length == d.length);
    assert_int_equal(e.addr_len, 37);
    assert_memory_equal(e.addr, addr, 37);
    assert_int_equal(e.rkey_len, 20);
    assert_memory_equal(e.rkey, rkey, 20);
    dw_xfer_desc_free(&e);

    assert_int_equal(parse_str(subst(s, "\"v\":1", "\"v\":2"), err,
                               sizeof(err)), -1);
    assert_string_equal(err, "descriptor: version 2 != 1");
    assert_int_equal(parse_str(subst(s, "\"v\":1", "\"w\":1"), err,
                               sizeof(err)), -1);
    assert_string_equal(err, "descriptor: unknown field \"w\"");
    assert_int_equal(parse_str(subst(s, "\"v\":1,", ""), err, sizeof(err)),
                     -1);
    assert_string_equal(err, "descriptor: missing field \"v\"");
    assert_int_equal(parse_str(subst(s, "\"v\":1", "\"v\":1,\"v\":1"), err,
                               sizeof(err)), -1);
    assert_int_equal(parse_str(subst(s, "\"dtype\":\"f32\"",
                                     "\"dtype\":\"f64\""), err, sizeof(err)),
                     -1);
    assert_string_equal(err, "descriptor: dtype: one of f32, bf16, f16");
    assert_int_equal(parse_str(subst(s, "\"length\":61440",
                                     "\"length\":61439"), err, sizeof(err)),
                     -1);
    assert_string_equal(err, "layout: pool does not fit in 61439 bytes");
    assert_int_equal(parse_str(subst(s, "\"n_layers\":3",
                                     "\"n_layers\":-3"), err, sizeof(err)),
                     -1);
    assert_string_equal(err, "descriptor: n_layers: out of range");
    assert_int_equal(parse_str(subst(s, "\"block_size\":16",
                                     "\"block_size\":16.0"), err,
                               sizeof(err)), -1);
    assert_string_equal(err, "descriptor: block_size: not an integer");
    assert_int_equal(parse_str(subst(s, "\"base\":\"7f12c4000000\"",
                                     "\"base\":\"7F12C4000000\""), err,
                               sizeof(err)), -1);
    assert_int_equal(parse_str(subst(s, "\"rkey\":\"", "\"rkey\":\"A"),
                               err, sizeof(err)), -1);
    assert_string_equal(err, "descriptor: rkey: bad base64");
    assert_int_equal(parse_str("[]", err, sizeof(err)), -1);
    assert_int_equal(parse_str("{", err, sizeof(err)), -1);
    free(s);
}

/* ---- two processes ---- */

#define NL     3
#define NKV    2
#define HD     8
#define BS     16
#define CHUNK  (BS * NKV * HD * 4)
#define D_NB   12
#define P_NB   20

/* pairs P -> D: a run (3,4,5 -> 7,8,9), single blocks, reversed order */
static const uint32_t  src_ids[] = { 3, 4, 5, 17, 0, 19, 10 };
static const uint32_t  dst_ids[] = { 7, 8, 9, 1, 11, 0, 4 };
#define NPAIRS  (sizeof(src_ids) / sizeof(src_ids[0]))

static unsigned char
pat_d(size_t o)
{
    return (unsigned char) (o * 3 + 1);
}

static unsigned char
pat_p(size_t o)
{
    return (unsigned char) ((o * 7 + o / 251 + 13) ^ 0x5a);
}

/* the cpu backend's offset, by hand: per layer K pool then V pool */
static size_t
cpu_off(uint32_t nb, uint32_t l, uint32_t s, uint32_t b)
{
    return ((size_t) l * 2 + s) * nb * CHUNK + (size_t) b * CHUNK;
}

static int
send_blob(int fd, const void *p, uint32_t n)
{
    return write(fd, &n, 4) == 4 && write(fd, p, n) == (ssize_t) n ? 0 : -1;
}

static char *
recv_blob(int fd, uint32_t *n)
{
    char     *p;
    uint32_t  got = 0;
    ssize_t   r;

    if (read(fd, n, 4) != 4 || *n > (1u << 24)) {
        return NULL;
    }
    p = malloc(*n + 1);
    while (p != NULL && got < *n) {
        r = read(fd, p + got, *n - got);
        if (r <= 0) {
            free(p);
            return NULL;
        }
        got += (uint32_t) r;
    }
    if (p != NULL) {
        p[*n] = '\0';
    }
    return p;
}

typedef struct {
    int       got;
    uint64_t  id;
    int32_t   status;
    char      payload[64];
    size_t    len;
} note_seen_t;

static void
on_note(void *arg, uint64_t id, int32_t status, const void *payload,
    size_t len)
{
    note_seen_t  *n = arg;

    n->got++;
    n->id = id;
    n->status = status;
    n->len = len;
    memcpy(n->payload, payload, len < sizeof(n->payload) ? len : 0);
}

/* Bytes of D's pool (nb blocks) that differ from what they should be:
   written chunks carry P's source chunk, all others D's pattern. */
static size_t
pool_bad_bytes(const unsigned char *pool, uint32_t nb)
{
    uint32_t  li, s, b, k;
    size_t    j, bad = 0;

    for (li = 0; li < NL; li++) {
        for (s = 0; s < 2; s++) {
            for (b = 0; b < nb; b++) {
                size_t  off = cpu_off(nb, li, s, b), poff = 0;
                int     written = 0;

                for (k = 0; k < NPAIRS; k++) {
                    if (dst_ids[k] == b) {
                        written = 1;
                        poff = cpu_off(P_NB, li, s, src_ids[k]);
                    }
                }
                for (j = 0; j < CHUNK; j++) {
                    bad += pool[off + j] != (written ? pat_p(poff + j)
                                                     : pat_d(off + j));
                }
            }
        }
    }
    return bad;
}

/* D: returns the child's exit code (0 = every byte as expected) */
static int
child_d(int fd, const char *tls, size_t extra_blocks, int ucx_alloc)
{
    dw_config_t       c = shape(NL, NKV, HD);
    dw_xfer_opts_t    o = { .tls = tls, .name = "test-d" };
    dw_xfer_layout_t  l;
    dw_xfer_t        *x;
    dw_xfer_reg_t    *r;
    note_seen_t       ns;
    unsigned char    *pool;
    char             *desc, err[256];
    size_t            len, dlen, i, bad;
    uint32_t          nb = D_NB + (uint32_t) extra_blocks;
    double            end, left;
    int               rc = 0;

    if (dw_xfer_create(&o, &x, err, sizeof(err)) != 0
        || dw_xfer_layout_cpu(&l, "stories260K", &c, BS, nb, err,
                              sizeof(err)) != 0)
    {
        fprintf(stderr, "child: %s\n", err);
        return 10;
    }
    len = (size_t) NL * 2 * nb * CHUNK;
    pool = ucx_alloc ? NULL : malloc(len);
    memset(&ns, 0, sizeof(ns));
    dw_xfer_set_note_handler(x, on_note, &ns);
    if (dw_xfer_register(x, pool, len, &l, &r, err, sizeof(err)) != 0
        || dw_xfer_describe(r, &desc, &dlen, err, sizeof(err)) != 0)
    {
        fprintf(stderr, "child: %s\n", err);
        return 11;
    }
    if (ucx_alloc) {
        pool = dw_xfer_reg_base(r);
    }
    for (i = 0; i < len; i++) {
        pool[i] = pat_d(i);
    }
    send_blob(fd, desc, (uint32_t) dlen);
    free(desc);
    /*
     * As the worker's event loop will: sleep on the wakeup fd, drive on
     * each wakeup. Each poll may sleep for the rest of the bound, so a
     * wakeup that never comes means no notification at all (no timing
     * threshold that a loaded machine could cross).
     */
    end = dw_xfer_now() + 8;
    while (!ns.got && (left = end - dw_xfer_now()) > 0) {
        struct pollfd  pfd = { dw_xfer_efd(x), POLLIN, 0 };

        if (dw_xfer_drive(x) == 0 && !ns.got) {
            (void) poll(&pfd, 1, (int) (left * 1e3) + 1);
        }
    }
    if (!ns.got) {
        fprintf(stderr, "child: no notification (or no wakeup)\n");
        rc = 12;
    } else if (ns.id != 77 || ns.status != 0 || ns.len != 6
               || memcmp(ns.payload, "tok=42", 6) != 0)
    {
        fprintf(stderr, "child: wrong notification\n");
        rc = 13;
    }
    if (rc == 0 && (bad = pool_bad_bytes(pool, nb)) != 0) {
        fprintf(stderr, "child: %zu bytes differ\n", bad);
        rc = 14;
    }
    if (write(fd, &rc, sizeof(rc)) != sizeof(rc)) {
        rc = 15;
    }
    /* keep serving progress until P closes, so its endpoint shuts down */
    end = dw_xfer_now() + 2;
    while (dw_xfer_now() < end) {
        struct timeval  tv = { 0, 1000 };
        fd_set          rs;

        dw_xfer_progress(x);
        FD_ZERO(&rs);
        FD_SET(fd, &rs);
        if (select(fd + 1, &rs, NULL, NULL, &tv) > 0) {
            break;
        }
    }
    dw_xfer_unregister(x, r);
    dw_xfer_destroy(x);
    if (!ucx_alloc) {
        free(pool);
    }
    return rc;
}

/* the running D, killed by the teardown if a test fails before its
   waitpid (no process outlives the test, stopped or not) */
static pid_t  d_pid;

static int
reap_d(void **state)
{
    int  status;

    (void) state;
    if (d_pid > 0) {
        kill(d_pid, SIGKILL);
        (void) waitpid(d_pid, &status, 0);
        d_pid = 0;
    }
    return 0;
}

static void
wait_d(pid_t pid, int *status)
{
    assert_int_equal(waitpid(pid, status, 0), pid);
    d_pid = 0;
}

static pid_t
spawn_d(int *fd, const char *tls, size_t extra_blocks, int ucx_alloc)
{
    int    sv[2];
    pid_t  pid;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        _exit(child_d(sv[1], tls, extra_blocks, ucx_alloc));
    }
    close(sv[1]);
    *fd = sv[0];
    d_pid = pid;
    return pid;
}

typedef struct {
    dw_xfer_t  *x;
    int         calls;
    int         status;
    uint64_t    bytes;
    double      secs;
} done_seen_t;

static void
on_done(void *arg, dw_xfer_req_t *q, int status, const char *err)
{
    done_seen_t  *d = arg;

    d->calls++;
    d->status = status;
    dw_xfer_req_result(q, &d->bytes, &d->secs);
    dw_xfer_req_free(d->x, q);
}

/*
 * ucx_alloc: both pools allocated by UCX (dw_xfer_register, base NULL),
 * and the batch driven by its done callback instead of dw_xfer_req_wait.
 */
static void
put_and_check(const char *tls, int ucx_alloc, int no_peer_errors)
{
    dw_config_t        c = shape(NL, NKV, HD);
    dw_xfer_opts_t     o = { .tls = tls, .name = "test-p",
                             .no_peer_errors = no_peer_errors };
    dw_xfer_layout_t   l;
    dw_xfer_desc_t     d;
    dw_xfer_t         *x;
    dw_xfer_reg_t     *r;
    dw_xfer_remote_t  *rm;
    dw_xfer_req_t     *q;
    dw_xfer_put_t      p;
    dw_xfer_stats_t    st;
    unsigned char     *pool;
    char              *desc, err[256];
    uint32_t           n;
    size_t             len, i;
    uint64_t           bytes;
    double             secs;
    int                fd, status, rc = -1;
    pid_t              pid;

    pid = spawn_d(&fd, tls, 0, ucx_alloc);
    assert_int_equal(dw_xfer_create(&o, &x, err, sizeof(err)), 0);
    assert_int_equal(dw_xfer_layout_cpu(&l, "stories260K", &c, BS, P_NB, err,
                                        sizeof(err)), 0);
    len = (size_t) NL * 2 * P_NB * CHUNK;
    pool = ucx_alloc ? NULL : malloc(len);
    assert_int_equal(dw_xfer_register(x, pool, len, &l, &r, err,
                                      sizeof(err)), 0);
    if (ucx_alloc) {
        pool = dw_xfer_reg_base(r);
    }
    for (i = 0; i < len; i++) {
        pool[i] = pat_p(i);
    }
    desc = recv_blob(fd, &n);
    assert_non_null(desc);
    if (dw_xfer_desc_parse(desc, n, &d, err, sizeof(err)) != 0) {
        fail_msg("parse: %s: %s", err, desc);
    }
    free(desc);
    if (dw_xfer_connect(x, &d, &l, &rm, err, sizeof(err)) != 0) {
        fail_msg("connect: %s", err);
    }
    dw_xfer_desc_free(&d);
    memset(&p, 0, sizeof(p));
    p.src = src_ids;
    p.dst = dst_ids;
    p.n = NPAIRS;
    p.id = 77;
    p.note = "tok=42";
    p.note_len = 6;
    p.timeout_ms = 5000;
    if (ucx_alloc) {
        /* event style: the done callback frees the batch itself */
        done_seen_t  ds = { x, 0, 0, 0, 0 };
        double       end = dw_xfer_now() + 6;

        p.done = on_done;
        p.arg = &ds;
        if (dw_xfer_put(x, rm, r, &p, &q, err, sizeof(err)) != 0) {
            fail_msg("put: %s", err);
        }
        while (!ds.calls && dw_xfer_now() < end) {
            dw_xfer_progress(x);
        }
        dw_xfer_progress(x);
        assert_int_equal(ds.calls, 1);
        assert_int_equal(ds.status, 0);
        bytes = ds.bytes;
        secs = ds.secs;
    } else {
        if (dw_xfer_put(x, rm, r, &p, &q, err, sizeof(err)) != 0) {
            fail_msg("put: %s", err);
        }
        if (dw_xfer_req_wait(x, q, 6000, err, sizeof(err)) != 1) {
            fail_msg("transfer over %s: %s", tls, err);
        }
        dw_xfer_req_result(q, &bytes, &secs);
        dw_xfer_req_free(x, q);
    }
    assert_int_equal(bytes, NPAIRS * NL * 2 * CHUNK);
    assert_true(secs > 0);
    dw_xfer_stats(x, &st);
    assert_int_equal(st.transfers, 1);
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.blocks, NPAIRS);
    assert_int_equal(st.bytes, NPAIRS * NL * 2 * CHUNK);
    /* the run 3,4,5 -> 7,8,9 is one put per chunk: 5 runs x 6 chunks */
    assert_int_equal(st.puts, 5 * NL * 2);

    assert_int_equal(read(fd, &rc, sizeof(rc)), sizeof(rc));
    dw_xfer_remote_free(x, rm);
    dw_xfer_unregister(x, r);
    dw_xfer_destroy(x);
    close(fd);
    if (!ucx_alloc) {
        free(pool);
    }
    wait_d(pid, &status);
    assert_int_equal(rc, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* the transfer cases: transports, pool allocation, peer detection */
typedef struct {
    const char  *tls;
    int          ucx_alloc;
    int          no_peer_errors;
} put_case_t;

static const put_case_t  put_cases[] = {
    { "tcp", 0, 0 },
    { "tcp", 1, 0 },
    { "sm", 1, 0 },        /* shared memory into UCX's pools: direct copies */
    { "sm", 0, 0 },        /* into malloc'd pools: UCX emulates the puts */
    { "tcp,sm", 1, 1 },    /* no peer detection: UCX may take sm */
};

static void
test_put(void **state)
{
    const put_case_t  *pc = *state;

    put_and_check(pc->tls, pc->ucx_alloc, pc->no_peer_errors);
}

#define PUT_TEST(name, i) \
    { name, test_put, NULL, reap_d, (void *) &put_cases[i] }

/* A layout that differs is refused at connect, with its message. */
static void
test_connect_refuses_mismatch(void **state)
{
    dw_config_t        c = shape(NL, NKV, HD);
    dw_xfer_opts_t     o = { .tls = "tcp", .name = "test" };
    dw_xfer_layout_t   ld, lp;
    dw_xfer_desc_t     d;
    dw_xfer_t         *x;
    dw_xfer_reg_t     *r;
    dw_xfer_remote_t  *rm = NULL;
    unsigned char     *pool;
    char              *desc, err[256];
    size_t             n, len;

    (void) state;
    assert_int_equal(dw_xfer_create(&o, &x, err, sizeof(err)), 0);
    assert_int_equal(dw_xfer_layout_cpu(&ld, "stories260K", &c, 32, 4, err,
                                        sizeof(err)), 0);
    len = (size_t) NL * 2 * 4 * 2 * CHUNK;
    pool = calloc(1, len);
    assert_int_equal(dw_xfer_register(x, pool, len, &ld, &r, err,
                                      sizeof(err)), 0);
    assert_int_equal(dw_xfer_describe(r, &desc, &n, err, sizeof(err)), 0);
    assert_int_equal(dw_xfer_desc_parse(desc, n, &d, err, sizeof(err)), 0);
    assert_int_equal(dw_xfer_layout_cpu(&lp, "stories260K", &c, 16, 8, err,
                                        sizeof(err)), 0);
    assert_int_equal(dw_xfer_connect(x, &d, &lp, &rm, err, sizeof(err)), -1);
    assert_string_equal(err, "KV layouts differ: block_size 16 != 32");
    assert_null(rm);
    lp = ld;
    strcpy(lp.model, "other");
    assert_int_equal(dw_xfer_connect(x, &d, &lp, &rm, err, sizeof(err)), -1);
    assert_string_equal(err, "KV layouts differ: model other != stories260K");
    dw_xfer_desc_free(&d);
    free(desc);
    dw_xfer_unregister(x, r);
    dw_xfer_destroy(x);
    free(pool);
}

/*
 * D is killed while P's puts are in flight: after one small batch (the
 * connection is up), D is stopped (SIGSTOP), a batch of 48 MiB starts,
 * 5 ms of progress, SIGKILL. The batch fails with a message within the
 * bound, the context still shuts down and ASan finds no leak. With
 * stall 1, D stays stopped and the batch's deadline fails it instead;
 * with 2, P's context is destroyed while D is stopped.
 */
static void
peer_trouble(int stall)
{
    dw_config_t        c = shape(NL, NKV, HD);
    dw_xfer_opts_t     o = { .tls = "tcp", .name = "test-p" };
    dw_xfer_layout_t   l;
    dw_xfer_desc_t     d;
    dw_xfer_t         *x;
    dw_xfer_reg_t     *r;
    dw_xfer_remote_t  *rm;
    dw_xfer_req_t     *q;
    dw_xfer_put_t      p;
    dw_xfer_stats_t    st;
    uint32_t          *ids, n, nb = 8192, i;
    unsigned char     *pool;
    char              *desc, err[256];
    size_t             len;
    double             t0;
    int                fd, status;
    pid_t              pid;

    pid = spawn_d(&fd, "tcp", nb - D_NB, 0);
    assert_int_equal(dw_xfer_create(&o, &x, err, sizeof(err)), 0);
    assert_int_equal(dw_xfer_layout_cpu(&l, "stories260K", &c, BS, nb, err,
                                        sizeof(err)), 0);
    len = (size_t) NL * 2 * nb * CHUNK;
    pool = calloc(1, len);
    ids = malloc(nb * sizeof(*ids));
    for (i = 0; i < nb; i++) {
        ids[i] = nb - 1 - i;     /* reversed: no runs, many puts */
    }
    assert_int_equal(dw_xfer_register(x, pool, len, &l, &r, err,
                                      sizeof(err)), 0);
    desc = recv_blob(fd, &n);
    assert_non_null(desc);
    assert_int_equal(dw_xfer_desc_parse(desc, n, &d, err, sizeof(err)), 0);
    free(desc);
    assert_int_equal(dw_xfer_connect(x, &d, &l, &rm, err, sizeof(err)), 0);
    dw_xfer_desc_free(&d);
    memset(&p, 0, sizeof(p));
    p.src = ids;
    p.dst = ids;
    p.n = nb;
    p.id = 1;
    p.timeout_ms = 4000;
    /* one small batch first: the connection is up and data flows */
    p.n = 1;
    p.no_note = 1;
    assert_int_equal(dw_xfer_put(x, rm, r, &p, &q, err, sizeof(err)), 0);
    if (dw_xfer_req_wait(x, q, 4000, err, sizeof(err)) != 1) {
        fail_msg("first batch: %s", err);
    }
    dw_xfer_req_free(x, q);
    if (stall == 2) {
        /* the context goes while its peer is stopped: the graceful close
           may never complete; destroy is bounded (2 s) and still frees
           everything (LSan) */
        kill(pid, SIGSTOP);
        dw_xfer_remote_free(x, rm);
        dw_xfer_unregister(x, r);
        t0 = dw_xfer_now();
        dw_xfer_destroy(x);
        assert_true(dw_xfer_now() - t0 < 5.0);
        kill(pid, SIGKILL);
        goto out;
    }
    p.n = nb;
    p.no_note = 0;
    /*
     * D stops first, so the batch cannot finish however slowly the puts
     * are issued (sanitizers): loopback buffers hold a few MiB, not 48.
     */
    kill(pid, SIGSTOP);
    if (stall) {
        p.timeout_ms = 300;
    }
    t0 = dw_xfer_now();
    assert_int_equal(dw_xfer_put(x, rm, r, &p, &q, err, sizeof(err)), 0);
    while (dw_xfer_now() - t0 < 0.005) {
        dw_xfer_progress(x);
    }
    if (!stall) {
        /* D is stopped: nothing can have finished (with stall the 300 ms
           may already have passed while the puts were issued, slowly
           under sanitizers on a busy machine) */
        assert_int_equal(dw_xfer_req_status(q, err, sizeof(err)), 0);
        kill(pid, SIGKILL);
    }
    assert_int_equal(dw_xfer_req_wait(x, q, 6000, err, sizeof(err)), -1);
    assert_true(dw_xfer_now() - t0 < 5.0);
    if (stall) {
        /* a stopped peer cannot take 48 MiB: the deadline fires */
        assert_string_equal(err, "transfer timed out after 300 ms");
        assert_true(dw_xfer_now() - t0 >= 0.3);
        kill(pid, SIGKILL);
    }
    assert_true(strlen(err) > 0);
    print_message("%s reported as: %s (%.2f s)\n",
                  stall ? "stalled peer" : "peer death", err,
                  dw_xfer_now() - t0);
    dw_xfer_req_free(x, q);
    dw_xfer_stats(x, &st);
    assert_int_equal(st.transfers, 1);
    assert_int_equal(st.failures, 1);
    /* the endpoint is gone: new puts on that remote fail at once */
    assert_int_equal(dw_xfer_put(x, rm, r, &p, &q, err, sizeof(err)), -1);
    assert_null(q);
    dw_xfer_req_free(x, NULL);
    dw_xfer_remote_free(x, rm);
    dw_xfer_unregister(x, r);
    dw_xfer_destroy(x);
out:
    close(fd);
    free(pool);
    free(ids);
    wait_d(pid, &status);
    assert_true(WIFSIGNALED(status));
}

static void
test_peer_dies_mid_transfer(void **state)
{
    (void) state;
    peer_trouble(0);
}

/* D stopped (SIGSTOP) mid-transfer: the batch's 300 ms deadline fails
   it, its endpoint is force-closed and its requests purged */
static void
test_deadline_on_stalled_peer(void **state)
{
    (void) state;
    peer_trouble(1);
}

/* D stopped, then P's context destroyed: bounded, nothing leaks */
static void
test_destroy_with_stopped_peer(void **state)
{
    (void) state;
    peer_trouble(2);
}

/* ---- D's deadlines: one process talking to itself over tcp ---- */

typedef struct {
    int       n;
    uint64_t  id[8];
    int32_t   status[8];
} notes_log_t;

static void
log_note(void *arg, uint64_t id, int32_t status, const void *payload,
    size_t len)
{
    notes_log_t  *g = arg;

    if (g->n < 8) {
        g->id[g->n] = id;
        g->status[g->n] = status;
    }
    g->n++;
}

static void
note_only(dw_xfer_t *x, dw_xfer_remote_t *rm, dw_xfer_reg_t *r, uint64_t id)
{
    static const uint32_t  zero = 0, one = 1;
    dw_xfer_put_t          p;
    dw_xfer_req_t         *q;
    dw_xfer_stats_t        st;
    uint64_t               seen;
    char                   err[256];
    double                 end;

    memset(&p, 0, sizeof(p));
    p.src = &zero;
    p.dst = &one;
    p.n = 1;
    p.id = id;
    p.timeout_ms = 3000;
    assert_int_equal(dw_xfer_put(x, rm, r, &p, &q, err, sizeof(err)), 0);
    if (dw_xfer_req_wait(x, q, 4000, err, sizeof(err)) != 1) {
        fail_msg("note %u: %s", (unsigned) id, err);
    }
    dw_xfer_req_free(x, q);
    /* the notification reaches the same worker: progress until it has
       been handled (delivered or dropped), within a bound */
    dw_xfer_stats(x, &st);
    seen = st.notes_received + st.notes_late;
    end = dw_xfer_now() + 5;
    do {
        dw_xfer_progress(x);
        dw_xfer_stats(x, &st);
    } while (st.notes_received + st.notes_late == seen
             && dw_xfer_now() < end);
    assert_true(st.notes_received + st.notes_late == seen + 1);
}

/* A context connected to itself over tcp: a pool of 2 tiny blocks. */
static void
self_setup(dw_xfer_t **x, dw_xfer_reg_t **r, dw_xfer_remote_t **rm,
    dw_xfer_note_fn cb, void *arg)
{
    dw_config_t        c = shape(1, 1, 4);
    dw_xfer_opts_t     o = { .tls = "tcp", .name = "test-self" };
    dw_xfer_layout_t   l;
    dw_xfer_desc_t     d;
    char              *desc, err[256];
    size_t             n;

    assert_int_equal(dw_xfer_create(&o, x, err, sizeof(err)), 0);
    dw_xfer_set_note_handler(*x, cb, arg);
    assert_int_equal(dw_xfer_layout_cpu(&l, "m", &c, 16, 2, err,
                                        sizeof(err)), 0);
    assert_int_equal(dw_xfer_register(*x, NULL, 2 * 2 * 256, &l, r, err,
                                      sizeof(err)), 0);
    assert_int_equal(dw_xfer_describe(*r, &desc, &n, err, sizeof(err)), 0);
    assert_int_equal(dw_xfer_desc_parse(desc, n, &d, err, sizeof(err)), 0);
    free(desc);
    if (dw_xfer_connect(*x, &d, &l, rm, err, sizeof(err)) != 0) {
        fail_msg("connect to self: %s", err);
    }
    dw_xfer_desc_free(&d);
}

/* Progress for secs, the last round after they have passed (however
   long the process was descheduled, deadlines before then have fired). */
static void
progress_for(dw_xfer_t *x, double secs)
{
    double  end = dw_xfer_now() + secs;

    while (dw_xfer_now() < end) {
        dw_xfer_progress(x);
    }
    dw_xfer_progress(x);
}

static void
test_expect_deadline_and_late_notes(void **state)
{
    dw_xfer_t         *x;
    dw_xfer_reg_t     *r;
    dw_xfer_remote_t  *rm;
    dw_xfer_stats_t    st;
    notes_log_t        g;

    (void) state;
    memset(&g, 0, sizeof(g));
    self_setup(&x, &r, &rm, log_note, &g);

    assert_int_equal(dw_xfer_expect(x, 1, 5000), 0);
    assert_int_equal(dw_xfer_expect(x, 2, 30), 0);
    progress_for(x, 0.06);
    /* 2 gave up on: the handler hears it once, with the timeout status */
    assert_int_equal(g.n, 1);
    assert_int_equal(g.id[0], 2);
    assert_int_equal(g.status[0], DW_XFER_NOTE_TIMEOUT);
    note_only(x, rm, r, 2);           /* late: dropped */
    assert_int_equal(g.n, 1);
    note_only(x, rm, r, 1);           /* expected, in time */
    assert_int_equal(g.n, 2);
    assert_int_equal(g.id[1], 1);
    assert_int_equal(g.status[1], 0);
    note_only(x, rm, r, 3);           /* never expected: delivered */
    assert_int_equal(g.n, 3);
    assert_int_equal(g.id[2], 3);
    assert_int_equal(dw_xfer_expect(x, 4, 5000), 0);
    dw_xfer_unexpect(x, 4);           /* cancelled on D */
    note_only(x, rm, r, 4);
    assert_int_equal(g.n, 3);
    dw_xfer_stats(x, &st);
    assert_int_equal(st.notes_received, 2);
    assert_int_equal(st.notes_timed_out, 1);
    assert_int_equal(st.notes_late, 2);
    assert_int_equal(st.transfers, 4);
    dw_xfer_remote_free(x, rm);
    dw_xfer_unregister(x, r);
    dw_xfer_destroy(x);
}

/*
 * The note handler may edit the expectations: on 11's timeout it cancels
 * 10, the entry before 11 in the list being walked (a use after free
 * under ASan before the fix). Expecting an id twice keeps one entry: no
 * timeout after its note was delivered.
 */
typedef struct {
    dw_xfer_t    *x;
    notes_log_t   g;
} cancel_ctx_t;

static void
cancel_on_timeout(void *arg, uint64_t id, int32_t status, const void *payload,
    size_t len)
{
    cancel_ctx_t  *c = arg;

    log_note(&c->g, id, status, payload, len);
    if (status == DW_XFER_NOTE_TIMEOUT) {
        dw_xfer_unexpect(c->x, 10);
        assert_int_equal(dw_xfer_expect(c->x, 12, 5000), 0);
    }
}

static void
test_expect_reentrant_and_repeated(void **state)
{
    dw_xfer_t         *x;
    dw_xfer_reg_t     *r;
    dw_xfer_remote_t  *rm;
    dw_xfer_stats_t    st;
    cancel_ctx_t       c;

    (void) state;
    memset(&c, 0, sizeof(c));
    self_setup(&x, &r, &rm, cancel_on_timeout, &c);
    c.x = x;
    assert_int_equal(dw_xfer_expect(x, 11, 20), 0);
    assert_int_equal(dw_xfer_expect(x, 10, 5000), 0);   /* list: 10, 11 */
    assert_int_equal(dw_xfer_expect(x, 20, 20), 0);
    assert_int_equal(dw_xfer_expect(x, 20, 5000), 0);   /* moved, not added */
    progress_for(x, 0.06);
    assert_int_equal(c.g.n, 1);
    assert_int_equal(c.g.id[0], 11);
    note_only(x, rm, r, 10);            /* cancelled in the handler */
    note_only(x, rm, r, 20);            /* in time */
    note_only(x, rm, r, 12);            /* expected from the handler */
    assert_int_equal(c.g.n, 3);
    assert_int_equal(c.g.id[1], 20);
    assert_int_equal(c.g.id[2], 12);
    progress_for(x, 0.06);
    dw_xfer_stats(x, &st);
    assert_int_equal(st.notes_timed_out, 1);
    assert_int_equal(st.notes_late, 1);
    assert_int_equal(st.notes_received, 2);
    dw_xfer_remote_free(x, rm);
    dw_xfer_unregister(x, r);
    dw_xfer_destroy(x);
}

/*
 * Destroying a context with a batch not yet advanced runs its done
 * callback, which frees the batch (a use after free in destroy's walk
 * under ASan before the fix). The remote is freed first, while the
 * batch still holds its rkey.
 */
static void
free_in_done(void *arg, dw_xfer_req_t *q, int status, const char *err)
{
    done_seen_t  *d = arg;

    d->calls++;
    d->status = status;
    if (status != 0) {
        assert_string_equal(err, "transfer context closed");
    }
    dw_xfer_req_free(d->x, q);
}

static void
test_destroy_runs_done_callbacks(void **state)
{
    dw_xfer_t         *x;
    dw_xfer_reg_t     *r;
    dw_xfer_remote_t  *rm;
    dw_xfer_req_t     *q;
    dw_xfer_put_t      p;
    done_seen_t        ds;
    notes_log_t        g;
    char               err[256];

    (void) state;
    memset(&g, 0, sizeof(g));
    self_setup(&x, &r, &rm, log_note, &g);
    note_only(x, rm, r, 1);             /* the endpoint is up */
    memset(&ds, 0, sizeof(ds));
    ds.x = x;
    memset(&p, 0, sizeof(p));
    p.id = 2;                           /* no blocks: a flush and a note */
    p.done = free_in_done;
    p.arg = &ds;
    assert_int_equal(dw_xfer_put(x, rm, r, &p, &q, err, sizeof(err)), 0);
    dw_xfer_remote_free(x, rm);
    dw_xfer_unregister(x, r);
    dw_xfer_destroy(x);
    assert_int_equal(ds.calls, 1);
    assert_int_equal(ds.status, -1);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_base64_rfc4648),
        cmocka_unit_test(test_layout_cpu),
        cmocka_unit_test(test_layout_block_major),
        cmocka_unit_test(test_layout_check_messages),
        cmocka_unit_test(test_desc_round_trip_and_refusals),
        cmocka_unit_test(test_connect_refuses_mismatch),
        PUT_TEST("test_put_tcp", 0),
        PUT_TEST("test_put_tcp_ucx_alloc", 1),
        PUT_TEST("test_put_sm", 2),
        PUT_TEST("test_put_sm_malloc", 3),
        PUT_TEST("test_put_tcp_sm_no_peer_errors", 4),
        cmocka_unit_test_teardown(test_peer_dies_mid_transfer, reap_d),
        cmocka_unit_test_teardown(test_deadline_on_stalled_peer, reap_d),
        cmocka_unit_test_teardown(test_destroy_with_stopped_peer, reap_d),
        cmocka_unit_test(test_expect_deadline_and_late_notes),
        cmocka_unit_test(test_expect_reentrant_and_repeated),
        cmocka_unit_test(test_destroy_runs_done_callbacks),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
