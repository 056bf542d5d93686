/*
 * vLLM's random dataset (benchmark_dataset.py, RandomDataset): input
 * lengths uniform integers in [int(L * (1 - r)), int(L * (1 + r))] where L
 * is --random-input-len less the special tokens the tokenizer adds (the
 * server adds them back), output lengths likewise, and one prefix of
 * --random-prefix-len tokens shared by every request. vLLM draws token ids
 * at random and re-encodes the decoded text, which changes them; drawing
 * round-trip-safe words instead keeps the count exact.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_dataset.h"
#include "db_dataset_int.h"
#include "db_words.h"

#define DB_RANDOM_MAX_LEN  (1 << 24)

static int
check_conf(const db_random_conf_t *c, char *err, size_t errlen)
{
    if (c->input_len < 0 || c->input_len > DB_RANDOM_MAX_LEN) {
        snprintf(err, errlen, "--random-input-len must be in [0, %d]",
                 DB_RANDOM_MAX_LEN);
        return -1;
    }
    if (c->output_len < 1 || c->output_len > DB_RANDOM_MAX_LEN) {
        snprintf(err, errlen, "--random-output-len must be in [1, %d]",
                 DB_RANDOM_MAX_LEN);
        return -1;
    }
    if (c->prefix_len < 0 || c->prefix_len > DB_RANDOM_MAX_LEN) {
        snprintf(err, errlen, "--random-prefix-len must be in [0, %d]",
                 DB_RANDOM_MAX_LEN);
        return -1;
    }
    if (!(c->range_ratio >= 0 && c->range_ratio < 1)) {
        snprintf(err, errlen, "--random-range-ratio must be in [0, 1)");
        return -1;
    }
    if (c->num_prompts == 0) {
        snprintf(err, errlen, "--num-prompts must be at least 1");
        return -1;
    }
    return 0;
}

int
db_random_build(const kvr_tokenizer_t *tok, const db_random_conf_t *c,
    db_dataset_t *out, char *err, size_t errlen)
{
    db_words_t     w;
    uint32_t      *prefix = NULL;
    uint64_t       lens;
    int64_t        in_len, in_lo, in_hi, out_lo, out_hi;
    size_t         i, special;
    int            rc = -1;

    if (check_conf(c, err, errlen) != 0
        || db_words_build(tok, &w, err, errlen) != 0)
    {
        return -1;
    }
    special = db_special_count(tok);
    in_len = c->input_len > (int) special ? c->input_len - (int) special : 0;
    /* int(x) of vLLM truncates toward zero, as the casts do */
    in_lo = (int64_t) ((double) in_len * (1 - c->range_ratio));
    in_hi = (int64_t) ((double) in_len * (1 + c->range_ratio));
    out_lo = (int64_t) ((double) c->output_len * (1 - c->range_ratio));
    out_hi = (int64_t) ((double) c->output_len * (1 + c->range_ratio));
    if (out_lo < 1) {
        out_lo = 1;
    }
    prefix = malloc(((size_t) c->prefix_len + 1) * sizeof(*prefix));
    if (prefix == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    db_words_fill(&w, db_seed_mix(c->seed, 0x70726566ULL), prefix,
                  (size_t) c->prefix_len);
    lens = db_seed_mix(c->seed, 0x6c656e73ULL);
    for (i = 0; i < c->num_prompts; i++) {
        db_request_t  *r = db_dataset_push(out);
        int64_t        n_in = db_uniform_int(&lens, in_lo, in_hi);
        int64_t        n_out = db_uniform_int(&lens, out_lo, out_hi);
        size_t         n;

        if (r == NULL) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        n = (size_t) c->prefix_len + (size_t) n_in;
        if (n == 0) {
            n = 1;              /* a prompt is never empty */
            n_in = 1;
        }
        r->ids = malloc(n * sizeof(*r->ids));
        if (r->ids == NULL) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        memcpy(r->ids, prefix, (size_t) c->prefix_len * sizeof(*prefix));
        db_words_fill(&w, db_seed_mix(c->seed, 0x72657100ULL + i),
                      r->ids + c->prefix_len, (size_t) n_in);
        r->n_ids = n;
        r->prompt_len = (int64_t) n;
        r->output_len = (int) n_out;
        if (db_ids_text(tok, &w, r->ids, n, &r->prompt, err, errlen)
            != 0)
        {
            goto done;
        }
    }
    rc = 0;
done:
    free(prefix);
    db_words_free(&w);
    return rc;
}
