/*
 * libFuzzer target for the SSE parser and the chunk reader (db_sse.h):
 * arbitrary bytes, split into pieces at points taken from the input
 * itself, every data payload parsed as an OpenAI chunk. No crash, no
 * leak; the events must not depend on the split points.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "db_sse.h"

typedef struct {
    uint64_t  h;       /* hash of the payload sequence */
    size_t    n;
} acc_t;

static int on_data(void *ctx, const char *d, size_t n)
{
    acc_t *a = ctx;
    db_chunk_t c;
    char err[128];
    for (size_t i = 0; i < n; i++)
        a->h = (a->h ^ (unsigned char)d[i]) * 0x100000001b3ULL;
    a->h = (a->h ^ 0x100) * 0x100000001b3ULL;
    a->n++;
    if (db_chunk_parse(d, n, &c, err, sizeof(err)) == 0) {
        if (c.text_len > 0 && c.text[0] == '\x7f' && c.text[c.text_len - 1])
            a->h++;                 /* touch the text: ASan checks bounds */
        db_chunk_free(&c);
    }
    return 0;
}

static int feed_all(const uint8_t *d, size_t n, const uint8_t *cuts,
    size_t ncuts, size_t max, acc_t *a)
{
    db_sse_t p;
    db_sse_init(&p);
    p.max = max;
    size_t off = 0, k = 0;
    int rc = 0;
    while (off < n && rc == 0) {
        size_t step = ncuts ? (size_t)cuts[k++ % ncuts] + 1 : n - off;
        if (step > n - off)
            step = n - off;
        rc = db_sse_feed(&p, (const char *)d + off, step, on_data, a);
        off += step;
    }
    db_sse_free(&p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* first bytes: the line limit and the split pattern */
    if (size < 2)
        return 0;
    size_t max = 8 + data[0] * 4;
    size_t ncuts = data[1] % 16;
    if (size < 2 + ncuts)
        return 0;
    const uint8_t *cuts = data + 2;
    const uint8_t *body = data + 2 + ncuts;
    size_t n = size - 2 - ncuts;

    acc_t whole = { 0xcbf29ce484222325ULL, 0 };
    acc_t split = { 0xcbf29ce484222325ULL, 0 };
    int r1 = feed_all(body, n, NULL, 0, max, &whole);
    int r2 = feed_all(body, n, cuts, ncuts, max, &split);
    /* without an error, the split cannot change what was seen */
    if (r1 == 0 && r2 == 0 && (whole.h != split.h || whole.n != split.n))
        abort();
    if ((r1 == 0) != (r2 == 0))
        abort();
    return 0;
}
