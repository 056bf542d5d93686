/*
 * The dataset container and the helpers the workload builders share.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_dataset.h"
#include "db_dataset_int.h"

void
db_dataset_init(db_dataset_t *ds)
{
    memset(ds, 0, sizeof(*ds));
}

void
db_dataset_free(db_dataset_t *ds)
{
    size_t  i;

    if (ds == NULL) {
        return;
    }
    for (i = 0; i < ds->n; i++) {
        free(ds->v[i].prompt);
        free(ds->v[i].ids);
    }
    free(ds->v);
    memset(ds, 0, sizeof(*ds));
}

db_request_t *
db_dataset_push(db_dataset_t *ds)
{
    db_request_t  *r;

    if (ds->n == ds->cap) {
        size_t         cap = ds->cap ? ds->cap * 2 : 64;
        db_request_t  *v = realloc(ds->v, cap * sizeof(*v));

        if (v == NULL) {
            return NULL;
        }
        ds->v = v;
        ds->cap = cap;
    }
    r = &ds->v[ds->n++];
    memset(r, 0, sizeof(*r));
    r->session = -1;
    r->timestamp_s = -1;
    return r;
}

int
db_ids_text(const kvr_tokenizer_t *tok, const db_words_t *w,
    const uint32_t *ids, size_t n, char **out, char *err, size_t errlen)
{
    kvr_buf_t  b = { 0 };
    int        rc = w != NULL ? db_words_text(w, ids, n, out) : 1;

    if (rc <= 0) {
        if (rc < 0) {
            snprintf(err, errlen, "out of memory");
        }
        return rc;
    }

    if (kvr_tokenizer_decode(tok, ids, n, 0, &b) != 0
        || kvr_buf_append(&b, "", 0) != 0)
    {
        kvr_buf_free(&b);
        snprintf(err, errlen, "cannot decode %zu token ids", n);
        return -1;
    }
    if (b.data == NULL) {
        b.data = calloc(1, 1);
        if (b.data == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    *out = b.data;
    return 0;
}

size_t
db_special_count(const kvr_tokenizer_t *tok)
{
    kvr_ids_t  a = { 0 }, b = { 0 };
    size_t     n = 0;

    if (kvr_tokenizer_encode(tok, "a", 1, KVR_TOK_ADD_SPECIAL, &a) == 0
        && kvr_tokenizer_encode(tok, "a", 1, 0, &b) == 0 && a.n > b.n)
    {
        n = a.n - b.n;
    }
    kvr_ids_free(&a);
    kvr_ids_free(&b);
    return n;
}
