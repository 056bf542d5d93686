/*
 * libFuzzer target: kvr_event_decode on arbitrary bytes.
 *
 * Checks: no crash or sanitizer report; peek agrees with decode; a short
 * block array gives KVR_ERR_NOMEM; and whenever decoding succeeds,
 * re-encoding yields exactly the input (the encoding is canonical).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvr_err.h"
#include "kvr_event.h"

#define FUZZ_MAX_BLOCKS  4096

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kvr_block_t  blocks[FUZZ_MAX_BLOCKS];
    kvr_event_t         ev;
    uint8_t            *out;
    size_t              len;
    long                peek;
    int                 rc;

    peek = kvr_event_peek_nblocks(data, size);
    rc = kvr_event_decode(data, size, &ev, blocks, FUZZ_MAX_BLOCKS);

    if (rc != KVR_OK) {
        /* the only decode error peek cannot see is a short array */
        if (rc == KVR_ERR_NOMEM) {
            if (peek <= FUZZ_MAX_BLOCKS) {
                abort();
            }
        } else if (peek != rc) {
            abort();
        }
        return 0;
    }

    if (peek != (long) ev.nblocks || rc > 0) {
        abort();
    }

    if (ev.nblocks > 0
        && kvr_event_decode(data, size, &ev, blocks, ev.nblocks - 1)
           != KVR_ERR_NOMEM)
    {
        abort();
    }
    kvr_event_decode(data, size, &ev, blocks, FUZZ_MAX_BLOCKS);

    if (kvr_event_encoded_size(&ev) != size) {
        abort();
    }

    out = malloc(size);
    if (out == NULL) {
        return 0;
    }
    if (kvr_event_encode(&ev, out, size, &len) != KVR_OK
        || len != size || memcmp(out, data, size) != 0)
    {
        abort();
    }
    if (size > 0 && kvr_event_encode(&ev, out, size - 1, &len)
                    != KVR_ERR_NOMEM)
    {
        abort();
    }
    free(out);
    return 0;
}
