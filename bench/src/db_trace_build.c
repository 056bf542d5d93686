/*
 * A trace's records as requests. Each hash id is a block of block_size
 * token ids, a pure function of (seed, hash id) over the tokenizer's
 * round-trip-safe words, so equal hash ids are equal token blocks on the
 * wire (and equal KV block hashes on the server). A record's ids are its
 * blocks concatenated and cut to input_length; when input_length exceeds
 * what the blocks cover, the rest is words unique to the record.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_dataset_int.h"
#include "db_trace.h"

#define DB_BLOCK_MAX  (1 << 20)

void
db_trace_block(const db_words_t *w, uint64_t seed, uint64_t hash_id,
    uint32_t *out, size_t block_size)
{
    db_words_fill(w, db_seed_mix(db_seed_mix(seed, 0x626c6f636bULL),
                                 hash_id),
                  out, block_size);
}

typedef struct {
    double  ts;
    size_t  i;
} order_t;

static int
order_cmp(const void *a, const void *b)
{
    const order_t  *x = a, *y = b;

    if (x->ts != y->ts) {
        return x->ts < y->ts ? -1 : 1;
    }
    return x->i < y->i ? -1 : x->i > y->i;   /* stable */
}

static int
build_one(const db_words_t *w, const db_trace_rec_t *rec, size_t index,
    const db_trace_conf_t *c, uint32_t *scratch, db_request_t *r)
{
    size_t  n = rec->input_length > 0 ? (size_t) rec->input_length : 1;
    size_t  bs = (size_t) c->block_size, got = 0, b;

    r->ids = malloc(n * sizeof(*r->ids));
    if (r->ids == NULL) {
        return -1;
    }
    for (b = 0; b < rec->n_hash_ids && got < n; b++) {
        size_t  take = n - got < bs ? n - got : bs;

        db_trace_block(w, c->seed, rec->hash_ids[b], scratch, bs);
        memcpy(r->ids + got, scratch, take * sizeof(*scratch));
        got += take;
    }
    if (got < n) {
        db_words_fill(w, db_seed_mix(db_seed_mix(c->seed, 0x756e69ULL),
                                     index),
                      r->ids + got, n - got);
    }
    r->n_ids = n;
    r->prompt_len = (int64_t) n;
    r->output_len = (int) rec->output_length;
    return 0;
}

int
db_trace_build(const kvr_tokenizer_t *tok, const db_trace_t *tr,
    const db_trace_conf_t *c, db_dataset_t *out, char *err, size_t errlen)
{
    db_words_t   w;
    order_t     *ord = NULL;
    uint32_t    *scratch = NULL;
    int         *turns = NULL;
    double       speedup = c->speedup > 0 ? c->speedup : 1, t0;
    size_t       i, count;
    int          rc = -1;

    if (c->block_size < 1 || c->block_size > DB_BLOCK_MAX) {
        snprintf(err, errlen, "--trace-block-size must be in [1, %d]",
                 DB_BLOCK_MAX);
        return -1;
    }
    if (!(c->speedup >= 0) || c->speedup > 1e9) {
        snprintf(err, errlen, "--trace-speedup must be > 0");
        return -1;
    }
    if (tr->n == 0) {
        snprintf(err, errlen, "the trace has no requests");
        return -1;
    }
    if (db_words_build(tok, &w, err, errlen) != 0) {
        return -1;
    }
    ord = malloc(tr->n * sizeof(*ord));
    scratch = malloc((size_t) c->block_size * sizeof(*scratch));
    turns = calloc(tr->n_sessions + 1, sizeof(*turns));
    if (ord == NULL || scratch == NULL || turns == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (i = 0; i < tr->n; i++) {
        ord[i].ts = tr->v[i].timestamp_ms;
        ord[i].i = i;
    }
    qsort(ord, tr->n, sizeof(*ord), order_cmp);
    count = c->max_requests && c->max_requests < tr->n ? c->max_requests
                                                        : tr->n;
    t0 = ord[0].ts;
    for (i = 0; i < count; i++) {
        const db_trace_rec_t  *rec = &tr->v[ord[i].i];
        db_request_t          *r = db_dataset_push(out);

        if (r == NULL
            || build_one(&w, rec, ord[i].i, c, scratch, r) != 0)
        {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        if (db_ids_text(tok, &w, r->ids, r->n_ids, &r->prompt, err,
                        errlen) != 0)
        {
            goto done;
        }
        r->timestamp_s = c->fixed_schedule && rec->timestamp_ms >= 0
                         ? (rec->timestamp_ms - t0) / 1000.0 / speedup : -1;
        if (rec->session >= 0 && (size_t) rec->session < tr->n_sessions) {
            r->session = rec->session;
            r->turn = turns[rec->session]++;
            out->has_sessions = 1;
        }
        r->delay_s = rec->delay_ms > 0 ? rec->delay_ms / 1000.0 / speedup
                                       : 0;
        r->with_history = 0;   /* the hash ids carry the prefix */
    }
    rc = 0;
done:
    free(ord);
    free(scratch);
    free(turns);
    db_words_free(&w);
    return rc;
}
