/*
 * libFuzzer target: arbitrary bytes, parsed by hiredis's own reply parser
 * (redisReader, RESP2 as Redis sends it), fed reply after reply into the
 * sync reader's state machine with a real index behind it. Whatever the
 * bytes, kvr_sync_on_reply must neither crash nor leak, and the machine
 * must keep yielding commands.
 *
 * Byte 0 selects options: bit 0 prepends a valid bootstrap (registry with
 * one live worker and its snapshot) so the fuzzer starts from a loaded
 * index and spends its effort on stream and poll replies; bit 1 uses XREAD
 * BLOCK.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "kvr_err.h"
#include "kvr_index.h"
#include "kvr_redis.h"

#define MAX_REPLIES  512

static const char  prelude[] =
    "*4\r\n$2\r\nep\r\n$1\r\n5\r\n$1\r\n1\r\n$9\r\n1 2 3 4 5\r\n"
    "*9\r\n$1\r\n6\r\n$1\r\n7\r\n$1\r\n0\r\n$6\r\ndecode\r\n$3\r\nh:1\r\n"
    "$2\r\n16\r\n$3\r\n100\r\n$9\r\n1 2 3 4 5\r\n"
    "*2\r\n$8\r\nABCDEFGH\r\n$8\r\n\x01\x00\x00\x00\x00\x00\x00\x00\r\n";

static void  *mem;
static size_t mem_len;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kvr_index_config_t   icfg = { 4, 256 };
    kvr_sync_config_t    cfg;
    kvr_index_t         *idx;
    kvr_sync_t          *s;
    redisReader         *rd;
    kvr_cmd_t            cmd;
    void                *reply;
    uint64_t             now = 0, wake;
    int                  i, opts;

    if (size == 0) {
        return 0;
    }
    opts = data[0];
    data++;
    size--;

    if (mem == NULL) {
        mem_len = kvr_index_size(&icfg);
        mem = aligned_alloc(64, (mem_len + 63) / 64 * 64);
        if (mem == NULL) {
            abort();
        }
    }
    idx = kvr_index_init(mem, mem_len, &icfg);

    kvr_sync_config_defaults(&cfg);
    cfg.ns = "fz";
    cfg.batch = 4;
    cfg.block_ms = (opts & 2) ? 100 : 0;
    s = kvr_sync_create(&cfg, idx);
    rd = redisReaderCreate();
    if (idx == NULL || s == NULL || rd == NULL) {
        abort();
    }

    if (opts & 1) {
        redisReaderFeed(rd, prelude, sizeof(prelude) - 1);
    }
    redisReaderFeed(rd, (const char *) data, size);

    for (i = 0; i < MAX_REPLIES; i++) {
        reply = NULL;
        if (redisReaderGetReply(rd, &reply) != REDIS_OK || reply == NULL) {
            break;
        }
        /* there is always a next command once the clock moves on */
        while (kvr_sync_next(s, now, &cmd, &wake) != 1) {
            if (wake == UINT64_MAX) {
                abort();                /* idle with nothing in flight */
            }
            now = wake;
        }
        if (cmd.argc <= 0 || cmd.argv == NULL || cmd.argvlen == NULL) {
            abort();
        }
        (void) kvr_sync_on_reply(s, reply);
        freeReplyObject(reply);
    }

    redisReaderFree(rd);
    kvr_sync_destroy(s);
    return 0;
}
