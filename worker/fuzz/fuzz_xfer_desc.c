/*
 * libFuzzer target for the KV transfer descriptor (dw_xfer_desc_parse)
 * and strict base64. A descriptor that parses must describe a layout
 * that validates, must encode, and the encoding must parse back to the
 * same descriptor. Base64 that decodes must encode back to the same text
 * (one encoding per byte string).
 */
#include <stdint.h>
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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dw_xfer_desc_t  d, e;
    char           *s, err[256];
    size_t          n;

    check_b64(data, size);
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
