/*
 * kvrouter: KV event binary codec. The format is documented byte by byte in
 * kvrouter/README.md ("KV event codec").
 *
 * Every event has exactly one encoding: varints must be minimal, unknown
 * flag bits and trailing bytes are rejected, so decode(encode(ev)) == ev and
 * encode(decode(buf)) == buf whenever decoding succeeds.
 */
#include <limits.h>
#include <stdint.h>

#include "kvr_err.h"
#include "kvr_event.h"

#define KVR_EV_MAGIC        'K'
#define KVR_EV_HDR_LEN      4
#define KVR_EV_F_PARENT     0x01
#define KVR_VARINT_MAX      10     /* bytes in a u64 LEB128 */

typedef struct {
    kvr_event_type_t  type;
    int               has_parent;
    uint64_t          worker_id;
    uint64_t          generation;
    uint64_t          event_id;
    uint64_t          parent;
    size_t            nblocks;
    size_t            block_len;   /* bytes per block: 16, 8 or 0 */
    size_t            blocks_off;  /* offset of the first block */
} kvr_ev_hdr_t;

static size_t
block_len(kvr_event_type_t type)
{
    switch (type) {
    case KVR_EV_STORED:   return 16;
    case KVR_EV_REMOVED:  return 8;
    default:              return 0;
    }
}

static int
type_valid(int type)
{
    return type >= KVR_EV_STORED && type <= KVR_EV_SNAPSHOT;
}

static size_t
varint_len(uint64_t v)
{
    size_t  n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *
put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t) (v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t) v;
    return p;
}

static uint8_t *
put_le64(uint8_t *p, uint64_t v)
{
    int  i;

    for (i = 0; i < 8; i++) {
        *p++ = (uint8_t) (v >> (8 * i));
    }
    return p;
}

static uint64_t
get_le64(const uint8_t *p)
{
    uint64_t  v = 0;
    int       i;

    for (i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Reads a minimal LEB128 u64 at buf[*pos..len); advances *pos. */
static int
get_varint(const uint8_t *buf, size_t len, size_t *pos, uint64_t *out)
{
    uint64_t  v = 0;
    size_t    i, p = *pos;
    uint8_t   b;

    for (i = 0; i < KVR_VARINT_MAX; i++) {
        if (p >= len) {
            return KVR_ERR_TRUNC;
        }
        b = buf[p++];

        /* the 10th byte holds bit 63 only */
        if (i == KVR_VARINT_MAX - 1 && b > 1) {
            return KVR_ERR_INVAL;
        }

        v |= (uint64_t) (b & 0x7f) << (7 * i);

        if ((b & 0x80) == 0) {
            /* a zero final byte after others is an overlong encoding */
            if (b == 0 && i > 0) {
                return KVR_ERR_INVAL;
            }
            *pos = p;
            *out = v;
            return KVR_OK;
        }
    }

    return KVR_ERR_INVAL;
}

/* Checks that ev is encodable and computes its encoded size. */
static int
check_event(const kvr_event_t *ev, size_t *size)
{
    size_t  bl, n;

    if (ev == NULL || !type_valid((int) ev->type)) {
        return KVR_ERR_INVAL;
    }
    if (ev->has_parent && ev->type != KVR_EV_STORED) {
        return KVR_ERR_INVAL;
    }

    bl = block_len(ev->type);
    if (bl == 0 && ev->nblocks != 0) {
        return KVR_ERR_INVAL;
    }
    if (ev->nblocks != 0 && ev->blocks == NULL) {
        return KVR_ERR_INVAL;
    }

    n = KVR_EV_HDR_LEN
        + varint_len(ev->worker_id)
        + varint_len(ev->generation)
        + varint_len(ev->event_id)
        + varint_len((uint64_t) ev->nblocks)
        + (ev->has_parent ? 8 : 0);

    if (bl != 0 && ev->nblocks > (SIZE_MAX - n) / bl) {
        return KVR_ERR_INVAL;
    }

    *size = n + ev->nblocks * bl;
    return KVR_OK;
}

size_t
kvr_event_encoded_size(const kvr_event_t *ev)
{
    size_t  size;

    if (check_event(ev, &size) != KVR_OK) {
        return 0;
    }
    return size;
}

int
kvr_event_encode(const kvr_event_t *ev, uint8_t *buf, size_t cap,
    size_t *len)
{
    size_t    size, i;
    uint8_t  *p;
    int       rc;

    rc = check_event(ev, &size);
    if (rc != KVR_OK) {
        return rc;
    }
    if (buf == NULL || cap < size) {
        return KVR_ERR_NOMEM;
    }

    p = buf;
    *p++ = KVR_EV_MAGIC;
    *p++ = KVR_EVENT_VERSION;
    *p++ = (uint8_t) ev->type;
    *p++ = ev->has_parent ? KVR_EV_F_PARENT : 0;

    p = put_varint(p, ev->worker_id);
    p = put_varint(p, ev->generation);
    p = put_varint(p, ev->event_id);
    p = put_varint(p, (uint64_t) ev->nblocks);

    if (ev->has_parent) {
        p = put_le64(p, ev->parent);
    }

    for (i = 0; i < ev->nblocks; i++) {
        p = put_le64(p, ev->blocks[i].seq);
        if (ev->type == KVR_EV_STORED) {
            p = put_le64(p, ev->blocks[i].local);
        }
    }

    if (len != NULL) {
        *len = (size_t) (p - buf);
    }
    return KVR_OK;
}

/* Validates the whole encoding (all but block contents) into h. */
static int
parse(const uint8_t *buf, size_t len, kvr_ev_hdr_t *h)
{
    uint64_t  nblocks;
    size_t    pos, rest;
    uint8_t   flags;
    int       rc;

    if (buf == NULL && len != 0) {
        return KVR_ERR_INVAL;
    }

    /* byte by byte, so a short buffer with a bad magic reads as bad */
    if (len < 1) {
        return KVR_ERR_TRUNC;
    }
    if (buf[0] != KVR_EV_MAGIC) {
        return KVR_ERR_INVAL;
    }
    if (len < 2) {
        return KVR_ERR_TRUNC;
    }
    if (buf[1] != KVR_EVENT_VERSION) {
        return KVR_ERR_VERSION;
    }
    if (len < 3) {
        return KVR_ERR_TRUNC;
    }
    if (!type_valid(buf[2])) {
        return KVR_ERR_INVAL;
    }
    h->type = (kvr_event_type_t) buf[2];
    if (len < 4) {
        return KVR_ERR_TRUNC;
    }
    flags = buf[3];
    if ((flags & ~KVR_EV_F_PARENT) != 0
        || ((flags & KVR_EV_F_PARENT) && h->type != KVR_EV_STORED))
    {
        return KVR_ERR_INVAL;
    }
    h->has_parent = (flags & KVR_EV_F_PARENT) != 0;

    pos = KVR_EV_HDR_LEN;
    if ((rc = get_varint(buf, len, &pos, &h->worker_id)) != KVR_OK
        || (rc = get_varint(buf, len, &pos, &h->generation)) != KVR_OK
        || (rc = get_varint(buf, len, &pos, &h->event_id)) != KVR_OK
        || (rc = get_varint(buf, len, &pos, &nblocks)) != KVR_OK)
    {
        return rc;
    }

    h->parent = 0;
    if (h->has_parent) {
        if (len - pos < 8) {
            return KVR_ERR_TRUNC;
        }
        h->parent = get_le64(buf + pos);
        pos += 8;
    }

    h->block_len = block_len(h->type);
    rest = len - pos;

    if (h->block_len == 0) {
        if (nblocks != 0) {
            return KVR_ERR_INVAL;
        }
    } else if (nblocks > rest / h->block_len) {
        /* compared before multiplying: nblocks may be near 2^64 */
        return KVR_ERR_TRUNC;
    }

    h->nblocks = (size_t) nblocks;
    if (rest != h->nblocks * h->block_len) {
        return KVR_ERR_INVAL;          /* trailing bytes */
    }

    h->blocks_off = pos;
    return KVR_OK;
}

long
kvr_event_peek_nblocks(const uint8_t *buf, size_t len)
{
    kvr_ev_hdr_t  h;
    int           rc;

    rc = parse(buf, len, &h);
    if (rc != KVR_OK) {
        return rc;
    }
    /* cannot exceed len / 8, but long may be narrower than size_t */
    if (h.nblocks > (size_t) LONG_MAX) {
        return KVR_ERR_NOMEM;
    }
    return (long) h.nblocks;
}

int
kvr_event_decode(const uint8_t *buf, size_t len, kvr_event_t *ev,
    kvr_block_t *blocks, size_t max_blocks)
{
    kvr_ev_hdr_t    h;
    const uint8_t  *p;
    size_t          i;
    int             rc;

    if (ev == NULL) {
        return KVR_ERR_INVAL;
    }

    rc = parse(buf, len, &h);
    if (rc != KVR_OK) {
        return rc;
    }

    if (blocks == NULL) {
        max_blocks = 0;
    }
    if (h.nblocks > max_blocks) {
        return KVR_ERR_NOMEM;
    }

    p = buf + h.blocks_off;
    for (i = 0; i < h.nblocks; i++) {
        blocks[i].seq = get_le64(p);
        p += 8;
        if (h.type == KVR_EV_STORED) {
            blocks[i].local = get_le64(p);
            p += 8;
        } else {
            blocks[i].local = 0;
        }
    }

    ev->type = h.type;
    ev->worker_id = h.worker_id;
    ev->generation = h.generation;
    ev->event_id = h.event_id;
    ev->has_parent = h.has_parent;
    ev->parent = h.parent;
    ev->nblocks = h.nblocks;
    ev->blocks = blocks;

    return KVR_OK;
}
