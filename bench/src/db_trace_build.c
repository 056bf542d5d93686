/*
 * A trace's records as requests. Each hash id is a block of block_size
 * token ids, a pure function of (seed, hash id) over the tokenizer's
 * round-trip-safe words, so equal hash ids are equal token blocks on the
 * wire (and equal KV block hashes on the server). A record's ids are its
 * blocks concatenated and cut to input_length; when input_length exceeds
 * what the blocks cover, the rest is words unique to the record; an
 * input_length of 0 still sends one token (a prompt is never empty).
 *
 * Every prompt is built up front (ids and text, about 12 bytes per prompt
 * token), so that building costs nothing while the clock runs.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_dataset_int.h"
#include "db_trace.h"
#include "db_trace_int.h"

#define DB_BLOCK_MAX  (1 << 20)

void
db_trace_block(const db_words_t *w, uint64_t seed, uint64_t hash_id,
    uint32_t *out, size_t block_size)
{
    db_words_fill(w, db_seed_mix(db_seed_mix(seed, 0x626c6f636bULL),
                                 hash_id),
                  out, block_size);
}

static int
build_one(const db_words_t *w, const db_trace_rec_t *rec, size_t index,
    const db_trace_conf_t *c, db_request_t *r)
{
    size_t  n = rec->input_length > 0 ? (size_t) rec->input_length : 1;
    size_t  bs = (size_t) c->block_size, got = 0, b;

    r->ids = malloc(n * sizeof(*r->ids));
    if (r->ids == NULL) {
        return -1;
    }
    for (b = 0; b < rec->n_hash_ids && got < n; b++) {
        size_t  take = n - got < bs ? n - got : bs;

        /* a block's ids are a stream: its first take ids are the
         * block's prefix, whatever the block size */
        db_trace_block(w, c->seed, rec->hash_ids[b], r->ids + got, take);
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
    size_t      *ord = NULL;
    int         *turns = NULL;
    double       t0;
    size_t       i, count;
    int          rc = -1;

    if (c->block_size < 1 || c->block_size > DB_BLOCK_MAX) {
        snprintf(err, errlen, "--trace-block-size must be in [1, %d]",
                 DB_BLOCK_MAX);
        return -1;
    }
    if (!(c->speedup > 0) || c->speedup > 1e9) {
        snprintf(err, errlen, "--trace-speedup must be in (0, 1e9]");
        return -1;
    }
    if (tr->n == 0) {
        snprintf(err, errlen, "the trace has no requests");
        return -1;
    }
    if (db_words_build(tok, &w, err, errlen) != 0) {
        return -1;
    }
    ord = db_trace_order(tr);
    turns = calloc(tr->n_sessions + 1, sizeof(*turns));
    if (ord == NULL || turns == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    count = c->max_requests && c->max_requests < tr->n ? c->max_requests
                                                        : tr->n;
    t0 = tr->v[ord[0]].timestamp_ms;
    for (i = 0; i < count; i++) {
        const db_trace_rec_t  *rec = &tr->v[ord[i]];
        db_request_t          *r = db_dataset_push(out);

        if (r == NULL
            || build_one(&w, rec, ord[i], c, r) != 0)
        {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        if (db_ids_text(tok, &w, r->ids, r->n_ids, &r->prompt, err,
                        errlen) != 0)
        {
            goto done;
        }
        r->timestamp_s = -1;
        if (c->fixed_schedule && rec->timestamp_ms >= 0) {
            r->timestamp_s = (rec->timestamp_ms - t0) / 1000.0 / c->speedup;
        }
        if (rec->session >= 0 && (size_t) rec->session < tr->n_sessions) {
            r->session = rec->session;
            r->turn = turns[rec->session]++;
            out->has_sessions = 1;
        }
        r->delay_s = rec->delay_ms > 0
                     ? rec->delay_ms / 1000.0 / c->speedup : 0;
        r->with_history = 0;   /* the hash ids carry the prefix */
    }
    rc = 0;
done:
    free(ord);
    free(turns);
    db_words_free(&w);
    return rc;
}
