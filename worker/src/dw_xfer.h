/*
 * dynamo-worker: KV block transfer over UCX (worker-internal).
 *
 * Disaggregated serving: the decode worker D registers its KV pool
 * (dw_xfer_register) and sends a descriptor (dw_xfer_describe: JSON with
 * base64 blobs, carried inside the worker HTTP protocol) to the prefill
 * worker P. P parses it (dw_xfer_desc_parse), connects (dw_xfer_connect:
 * layouts are compared first, a mismatch is refused with a message such
 * as "block_size 16 != 32"), writes its computed blocks straight into D's
 * blocks with RMA puts (dw_xfer_put: a batch of (local block, remote
 * block) pairs with one completion), and once the data is remotely
 * visible (an endpoint flush) sends D a notification carrying a request
 * id, a status and a small payload such as the first token; D's notify
 * callback then starts decoding.
 *
 * Pool layout: a block is split into chunks, one per (layer, K or V):
 *
 *     offset(l, s, b) = l * layer_stride + s * kv_stride + b * block_stride
 *
 * bytes from the registered base, chunk_bytes long (s = 0 for K, 1 for V).
 * The cpu backend's pool (per layer: K pool then V pool) is described by
 * dw_xfer_layout_cpu; a block-major pool is the same formula with other
 * strides. Strides and n_blocks may differ between P and D (pools of other
 * sizes); everything that fixes what a chunk means must match.
 *
 * Progress: single-threaded, one owner thread (the I/O thread). Nothing
 * calls back from inside dw_xfer_put; completions and notifications are
 * delivered from dw_xfer_progress. For a libevent loop: watch dw_xfer_efd
 * for reading, and on each wakeup call dw_xfer_drive, which progresses
 * until UCX has nothing left and the fd is armed again (or, past its
 * budget, asks to be called again).
 *
 * Failures: a transfer that passes its deadline, or whose peer dies
 * (UCP_ERR_HANDLING_MODE_PEER error handler), completes with status -1
 * and a message; its endpoint is force-closed (outstanding requests are
 * purged, nothing leaks) and later connects to that address make a fresh
 * one. D learns of a dead P only by its own deadline on the notification
 * (the engine's fallback: prefill locally, release the blocks).
 */
#ifndef DW_XFER_H
#define DW_XFER_H

#include <stddef.h>
#include <stdint.h>

#include "dw_model.h"

#define DW_XFER_DESC_VERSION  1
#define DW_XFER_MODEL_MAX     128        /* model id bytes, with the NUL */
#define DW_XFER_BLOB_MAX      (64 * 1024) /* address / rkey blob bytes */
#define DW_XFER_NOTE_MAX      1024       /* notification payload bytes */

typedef struct {
    char      model[DW_XFER_MODEL_MAX];
    dw_dtype_t dtype;                /* of the KV cache, not the weights */
    uint32_t  n_layers;
    uint32_t  n_kv_heads;
    uint32_t  head_dim;
    uint32_t  block_size;            /* tokens per block */
    uint32_t  n_blocks;              /* blocks in this pool */
    uint64_t  chunk_bytes;           /* block_size*n_kv_heads*head_dim*dt */
    uint64_t  block_bytes;           /* 2 * n_layers * chunk_bytes */
    uint64_t  layer_stride;          /* bytes; see the formula above */
    uint64_t  kv_stride;
    uint64_t  block_stride;
} dw_xfer_layout_t;

/* What D sends P: its pool's layout and how to reach and write it. */
typedef struct {
    dw_xfer_layout_t  layout;
    uint64_t          base;          /* D's virtual address of the region */
    uint64_t          length;        /* registered bytes from base */
    unsigned char    *addr;          /* D's UCX worker address */
    size_t            addr_len;
    unsigned char    *rkey;          /* packed remote key of the region */
    size_t            rkey_len;
} dw_xfer_desc_t;

typedef struct dw_xfer_s         dw_xfer_t;
typedef struct dw_xfer_reg_s     dw_xfer_reg_t;
typedef struct dw_xfer_remote_s  dw_xfer_remote_t;
typedef struct dw_xfer_req_s     dw_xfer_req_t;

typedef struct {
    /*
     * UCX transports: "tcp", "sm" (shared memory: posix, sysv, cma),
     * "tcp,sm", any UCX_TLS value; NULL or "" keeps UCX_TLS from the
     * environment, else UCX's own choice.
     */
    const char  *tls;
    const char  *name;               /* for UCX's logs; may be NULL */
    /*
     * 0: endpoints ask for peer failure detection (error handling mode
     * PEER), so a dead peer fails its batches at once. UCX 1.13's
     * shared-memory transports cannot detect one, so with 0 a same-host
     * peer is reached over tcp even when "sm" is allowed (about ten times
     * slower here; an "sm"-only context falls back to no detection).
     * 1: no detection: UCX may use shared memory; a dead peer is then
     * seen only through batch deadlines. See worker/XFER.md.
     */
    int          no_peer_errors;
} dw_xfer_opts_t;

/* Counters a caller can export (monotonic since create). */
typedef struct {
    uint64_t  transfers;             /* batches completed successfully */
    uint64_t  failures;              /* batches that failed */
    uint64_t  blocks;                /* blocks written by good batches */
    uint64_t  bytes;                 /* bytes written by good batches */
    double    seconds;               /* summed wall time of good batches */
    uint64_t  puts;                  /* RMA operations issued */
    uint64_t  notes_received;        /* notifications delivered to D */
    uint64_t  notes_timed_out;       /* expected ones that never came */
    uint64_t  notes_late;            /* dropped: came after their deadline */
    uint64_t  peer_errors;           /* endpoints closed for an error */
} dw_xfer_stats_t;

/* D's side: a notification (id, status 0 = data is there, payload). */
typedef void (*dw_xfer_note_fn)(void *arg, uint64_t id, int32_t status,
    const void *payload, size_t len);

/* P's side: a batch finished; status 0, or -1 with err (a message). */
typedef void (*dw_xfer_done_fn)(void *arg, dw_xfer_req_t *req, int status,
    const char *err);

/* ---- layouts and descriptors (dw_xfer_desc.c; no UCX) ---- */

/* The descriptor's name of dtype: "f32", "bf16", "f16". */
const char *dw_xfer_dtype_name(dw_dtype_t dt);

/*
 * The cpu backend's pool (dw_backend_cpu.c: one f32 region, per layer
 * the K pool then the V pool of n_blocks * block_size * kv_dim floats).
 * 0 or -1 with err (zero sizes, overflow).
 */
int dw_xfer_layout_cpu(dw_xfer_layout_t *l, const char *model,
    const dw_config_t *cfg, uint32_t block_size, uint32_t n_blocks,
    char *err, size_t errlen);
/*
 * A block-major pool (the cuda backend's, worker/cuda/dw_cuda.h): each
 * block one contiguous region of 2 * n_layers chunks, chunk (layer, s) at
 * (layer * 2 + s) * chunk_bytes in it; K/V elements of dtype. 0 or -1.
 */
int dw_xfer_layout_block_major(dw_xfer_layout_t *l, const char *model,
    const dw_config_t *cfg, dw_dtype_t dtype, uint32_t block_size,
    uint32_t n_blocks, char *err, size_t errlen);
/*
 * Self-consistency: sizes non-zero, chunk and block bytes agree with the
 * shape and dtype, chunks do not overlap, and every chunk of every block
 * ends within length bytes (the registered region). 0 or -1 with err.
 */
int dw_xfer_layout_validate(const dw_xfer_layout_t *l, uint64_t length,
    char *err, size_t errlen);
/*
 * Can blocks move between pools a and b (a the local one)? Model, dtype,
 * n_layers, n_kv_heads, head_dim, block_size and bytes must match; the
 * first difference is reported as "<field> <a> != <b>". 0 or -1.
 */
int dw_xfer_layout_check(const dw_xfer_layout_t *a, const dw_xfer_layout_t *b,
    char *err, size_t errlen);
/* Byte offset of chunk (layer, kv, block). */
static inline uint64_t
dw_xfer_chunk_off(const dw_xfer_layout_t *l, uint32_t layer, uint32_t kv,
    uint32_t block)
{
    return layer * l->layer_stride + kv * l->kv_stride
           + block * l->block_stride;
}

/*
 * Encodes d as one line of JSON (no newline), malloc'd into *out (*len
 * bytes, NUL-terminated). 0 or -1 with err.
 */
int dw_xfer_desc_encode(const dw_xfer_desc_t *d, char **out, size_t *len,
    char *err, size_t errlen);
/*
 * Strict parse: every field present once with its type and range, no
 * other field, canonical base64, and a layout that passes
 * dw_xfer_layout_validate against length. On success d owns malloc'd
 * blobs (dw_xfer_desc_free); on failure d holds nothing. 0 or -1.
 */
int dw_xfer_desc_parse(const char *text, size_t len, dw_xfer_desc_t *d,
    char *err, size_t errlen);
void dw_xfer_desc_free(dw_xfer_desc_t *d);

/* Standard base64 with padding (RFC 4648 section 4); decode is strict. */
size_t dw_xfer_b64_encode(const unsigned char *in, size_t n, char *out);
int dw_xfer_b64_decode(const char *in, size_t n, unsigned char *out,
    size_t *outlen);
#define DW_XFER_B64_LEN(n)  (((n) + 2) / 3 * 4)

/* ---- the UCX context (dw_xfer.c) ---- */

/* 0 or -1 with err. */
int dw_xfer_create(const dw_xfer_opts_t *o, dw_xfer_t **out, char *err,
    size_t errlen);
/*
 * Fails unfinished batches (their done callbacks run, and may free
 * them) and force-closes their endpoints, closes the others gracefully
 * (bounded: 2 s), then frees the context and every batch. Remotes and
 * registrations must have been freed before. Not from inside a callback.
 */
void dw_xfer_destroy(dw_xfer_t *x);

/* The transports asked for: opts.tls, else UCX_TLS, else "default" (not
   what UCX chose per endpoint: DW_XFER_EP_INFO=1 prints that). */
const char *dw_xfer_tls(const dw_xfer_t *x);

/* Wakeup fd for an event loop (readable when there is work). */
int dw_xfer_efd(const dw_xfer_t *x);
/* One round of progress: UCX, then batch state (deadlines included),
 * callbacks. Returns the number of events UCX reported (0: idle). While
 * batches with deadlines run, call it from a timer too (the wakeup fd
 * says nothing about time passing). */
unsigned dw_xfer_progress(dw_xfer_t *x);
/*
 * Call on every wakeup: progress until idle, then arm the wakeup fd; 0.
 * Bounded so that a long inbound transfer cannot hold the event loop: 1
 * when the budget ran out with work left, the fd NOT armed; the caller
 * must call again soon (libevent: event_active on a zero-timeout event)
 * instead of waiting for the fd.
 */
int dw_xfer_drive(dw_xfer_t *x);

/* Receives D's notifications; cb NULL drops them. */
void dw_xfer_set_note_handler(dw_xfer_t *x, dw_xfer_note_fn cb, void *arg);

/*
 * D's deadline on P (D cannot see P's endpoint fail): expect id's
 * notification within timeout_ms. If none comes, the note handler gets
 * (id, DW_XFER_NOTE_TIMEOUT, NULL, 0) instead (the engine then prefills
 * locally and releases the blocks it had reserved), and a notification
 * for id arriving later is dropped (notes_late; the last 256 ids given
 * up on are remembered). Notifications for ids never expected are
 * delivered as they come, so expect an id before P can send it (before
 * the descriptor or request leaves D). Expecting an id already expected
 * moves its deadline. dw_xfer_unexpect: the request went away
 * (cancelled): no callback, a late notification is dropped. -1: no
 * memory. The handler may call dw_xfer_expect and dw_xfer_unexpect.
 */
#define DW_XFER_NOTE_TIMEOUT  (-110)
int dw_xfer_expect(dw_xfer_t *x, uint64_t id, uint32_t timeout_ms);
void dw_xfer_unexpect(dw_xfer_t *x, uint64_t id);

void dw_xfer_stats(const dw_xfer_t *x, dw_xfer_stats_t *s);

/*
 * Registers [base, base + length) laid out as l for remote writes and
 * reads (l must validate against length). 0 or -1 with err.
 *
 * base NULL: UCX allocates the region (dw_xfer_reg_base gives it; its
 * contents are undefined; dw_xfer_unregister frees it). Prefer this for
 * a KV pool: UCX then picks memory its transports can write directly
 * (shared-memory segments for "sm": the posix/sysv transports put into
 * them with a plain copy, while malloc'd memory makes UCX 1.13 fall back
 * to active-message emulation, many times slower; see worker/XFER.md).
 */
int dw_xfer_register(dw_xfer_t *x, void *base, size_t length,
    const dw_xfer_layout_t *l, dw_xfer_reg_t **out, char *err, size_t errlen);
void *dw_xfer_reg_base(const dw_xfer_reg_t *r);
/* Not while a batch reading from r runs: free (abort) or finish those
   first; likewise the blocks a running batch reads must stay as they are
   (P's engine keeps them pinned until the batch completes). */
void dw_xfer_unregister(dw_xfer_t *x, dw_xfer_reg_t *r);
/* The descriptor of a registration (blobs owned by r; do not free). */
void dw_xfer_reg_desc(const dw_xfer_reg_t *r, dw_xfer_desc_t *d);
/* dw_xfer_desc_encode of that descriptor. */
int dw_xfer_describe(const dw_xfer_reg_t *r, char **out, size_t *len,
    char *err, size_t errlen);

/*
 * P's side: a peer's pool from its descriptor. Checks d's layout against
 * the local one (NULL: no check), reuses the endpoint of d's worker
 * address if one is open, unpacks the rkey. 0 or -1 with err.
 */
int dw_xfer_connect(dw_xfer_t *x, const dw_xfer_desc_t *d,
    const dw_xfer_layout_t *local, dw_xfer_remote_t **out, char *err,
    size_t errlen);
/* May be called while batches to rm run: its rkey then stays until they
   are released. */
void dw_xfer_remote_free(dw_xfer_t *x, dw_xfer_remote_t *rm);

typedef struct {
    const uint32_t  *src;            /* local block ids */
    const uint32_t  *dst;            /* remote block ids, same count */
    uint32_t         n;
    uint64_t         id;             /* request id, sent in the note */
    int32_t          note_status;    /* status for D (0: data is there) */
    const void      *note;           /* payload (first token, ...) */
    size_t           note_len;       /* <= DW_XFER_NOTE_MAX */
    int              no_note;        /* 1: no notification at all */
    uint32_t         timeout_ms;     /* 0: none */
    dw_xfer_done_fn  done;           /* may be NULL (poll instead) */
    void            *arg;
} dw_xfer_put_t;

/*
 * Writes blocks src[i] of local region r into blocks dst[i] of rm: one
 * put per (layer, K/V) chunk, runs of consecutive ids on both sides
 * merged where the strides allow, all in flight at once; then a flush
 * and the notification. Ids are checked against both pools first. The
 * request completes later (done callback, or dw_xfer_req_status); the
 * caller frees it with dw_xfer_req_free. 0, or -1 with err and *out NULL:
 * no batch (refused before anything was sent, or UCX refused a put, in
 * which case the peer's endpoint is closed as after a failure).
 */
int dw_xfer_put(dw_xfer_t *x, dw_xfer_remote_t *rm, const dw_xfer_reg_t *r,
    const dw_xfer_put_t *p, dw_xfer_req_t **out, char *err, size_t errlen);
/* 1 finished ok, -1 failed (message in err), 0 still running. */
int dw_xfer_req_status(const dw_xfer_req_t *q, char *err, size_t errlen);
/* Progress until q finishes or timeout_ms passes (then q is aborted);
 * returns dw_xfer_req_status. Not for a q whose done callback frees it. */
int dw_xfer_req_wait(dw_xfer_t *x, dw_xfer_req_t *q, uint32_t timeout_ms,
    char *err, size_t errlen);
/* Bytes written and seconds taken (valid once finished ok). */
void dw_xfer_req_result(const dw_xfer_req_t *q, uint64_t *bytes,
    double *seconds);
/* Frees q; an unfinished q is aborted first (its endpoint force-closed,
 * its done callback not called). May be called from q's done callback. */
void dw_xfer_req_free(dw_xfer_t *x, dw_xfer_req_t *q);

/* Monotonic clock, seconds. */
double dw_xfer_now(void);

#endif
