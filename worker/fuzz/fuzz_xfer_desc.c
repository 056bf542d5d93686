/*
 * libFuzzer target for the KV transfer descriptor (dw_xfer_desc_parse)
 * and strict base64. A descriptor that parses must describe a layout
 * that validates, must encode, and the encoding must parse back to the
 * same descriptor. Base64 that decodes must encode back to the same text
 * (one encoding per byte string). And the input read as a layout: one
 * that validates must have its chunks disjoint and inside the length
 * (checked chunk by chunk for small pools), and must round-trip through
 * a descriptor (raw JSON rarely reaches that far without a corpus).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dw_xfer.h"

static void
check_b64(const uint8_t *data, size_t size)
{
    unsigned char  *out;
    char           *back;
    size_t          n;

    if (size > 4096) {
        return;
    }
    out = malloc(size / 4 * 3 + 1);
    back = malloc(DW_XFER_B64_LEN(size) + 1);
    if (dw_xfer_b64_decode((const char *) data, size, out, &n) == 0) {
        if (n > size / 4 * 3
            || dw_xfer_b64_encode(out, n, back) != size
            || memcmp(back, data, size) != 0)
        {
            abort();
        }
    }
    free(out);
    free(back);
}

#define SAFE  ((uint64_t) 1 << 53)       /* JSON's exact integers */

typedef struct {
    uint64_t  off, end;
} span_t;

static int
span_cmp(const void *a, const void *b)
{
    const span_t  *x = a, *y = b;

    return x->off < y->off ? -1 : x->off > y->off;
}

/* every chunk of a small validated pool, sorted: disjoint, inside len */
static void
check_chunks(const dw_xfer_layout_t *l, uint64_t len)
{
    span_t    *sp;
    uint64_t   n = (uint64_t) l->n_layers * 2 * l->n_blocks, i = 0;
    uint32_t   a, b, c;

    if (n > 4096) {
        return;
    }
    sp = malloc(n * sizeof(*sp));
    for (a = 0; a < l->n_layers; a++) {
        for (b = 0; b < 2; b++) {
            for (c = 0; c < l->n_blocks; c++, i++) {
                sp[i].off = dw_xfer_chunk_off(l, a, b, c);
                sp[i].end = sp[i].off + l->chunk_bytes;
                if (sp[i].end > len || sp[i].end < sp[i].off) {
                    abort();
                }
            }
        }
    }
    qsort(sp, n, sizeof(*sp), span_cmp);
    for (i = 1; i < n; i++) {
        if (sp[i].off < sp[i - 1].end) {
            abort();
        }
    }
    free(sp);
}

/* the input as a layout (small counts, so the chunk check can run) */
static void
check_layout(const uint8_t *data, size_t size)
{
    static const dw_dtype_t  dts[] = { DW_DT_F32, DW_DT_BF16, DW_DT_F16 };
    static unsigned char     blob[3] = { 1, 2, 3 };
    dw_xfer_desc_t           d, e;
    dw_xfer_layout_t        *l = &d.layout;
    uint64_t                 v[6];
    char                    *s, err[256];
    size_t                   n;

    if (size < 8 + sizeof(v)) {
        return;
    }
    memset(&d, 0, sizeof(d));
    snprintf(l->model, sizeof(l->model), "m");
    l->dtype = dts[data[0] % 3];
    l->n_layers = data[1] % 8 + 1;
    l->n_kv_heads = data[2] % 4 + 1;
    l->head_dim = data[3] % 8 + 1;
    l->block_size = data[4] % 4 + 1;
    l->n_blocks = data[5] % 32 + 1;
    memcpy(v, data + 8, sizeof(v));
    /* strides and length mostly near the sizes, sometimes anything */
    l->chunk_bytes = (uint64_t) l->block_size * l->n_kv_heads * l->head_dim
                     * (l->dtype == DW_DT_F32 ? 4 : 2);
    l->block_bytes = 2 * l->n_layers * l->chunk_bytes;
    l->layer_stride = data[6] & 1 ? v[0] : v[0] % 65536;
    l->kv_stride = data[6] & 2 ? v[1] : v[1] % 65536;
    l->block_stride = data[6] & 4 ? v[2] : v[2] % 4096;
    d.length = data[6] & 8 ? v[3] : v[3] % (1u << 20);
    d.base = v[4];
    if (dw_xfer_layout_validate(l, d.length, err, sizeof(err)) != 0) {
        return;
    }
    check_chunks(l, d.length);
    d.addr = d.rkey = blob;
    d.addr_len = d.rkey_len = sizeof(blob);
    if (d.length > SAFE || l->layer_stride > SAFE || l->kv_stride > SAFE
        || l->block_stride > SAFE || d.base + d.length < d.base)
    {
        return;                         /* not representable: refused */
    }
    if (dw_xfer_desc_encode(&d, &s, &n, err, sizeof(err)) != 0
        || dw_xfer_desc_parse(s, n, &e, err, sizeof(err)) != 0
        || memcmp(&e.layout, l, sizeof(*l)) != 0 || e.base != d.base
        || e.length != d.length)
    {
        abort();
    }
    free(s);
    dw_xfer_desc_free(&e);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dw_xfer_desc_t  d, e;
    char           *s, err[256];
    size_t          n;

    check_b64(data, size);
    check_layout(data, size);
    if (dw_xfer_desc_parse((const char *) data, size, &d, err,
                           sizeof(err)) != 0)
    {
        if (d.addr != NULL || d.rkey != NULL || err[0] == '\0') {
            abort();
        }
        return 0;
    }
    if (dw_xfer_layout_validate(&d.layout, d.length, err, sizeof(err)) != 0
        || dw_xfer_desc_encode(&d, &s, &n, err, sizeof(err)) != 0)
    {
        abort();
    }
    if (dw_xfer_desc_parse(s, n, &e, err, sizeof(err)) != 0
        || memcmp(&e.layout, &d.layout, sizeof(d.layout)) != 0
        || e.base != d.base || e.length != d.length
        || e.addr_len != d.addr_len || e.rkey_len != d.rkey_len
        || memcmp(e.addr, d.addr, d.addr_len) != 0
        || memcmp(e.rkey, d.rkey, d.rkey_len) != 0)
    {
        abort();
    }
    free(s);
    dw_xfer_desc_free(&e);
    dw_xfer_desc_free(&d);
    return 0;
}
