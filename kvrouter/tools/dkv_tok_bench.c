/*
 * dynamo-kv tokenize --bench: single-thread encode throughput and load
 * time, for kvrouter/bench/tokenizer_bench.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <jansson.h>

#include "kvr_err.h"
#include "kvr_tokenizer.h"
#include "dkv_tok.h"

static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

int
dkv_tok_bench(const char *dir, const char *docs, double min_seconds)
{
    kvr_tokenizer_t  *t;
    json_t           *arr, *d;
    json_error_t      je;
    kvr_ids_t         ids = {0};
    char              err[512];
    double            t0, load_ms, start, el;
    size_t            i, bytes = 0, tokens = 0, passes = 0;
    int               rc;

    arr = json_load_file(docs, JSON_ALLOW_NUL, &je);
    if (!json_is_array(arr)) {
        fprintf(stderr, "dynamo-kv tokenize --bench: %s: %s\n", docs,
                arr ? "not a JSON array" : je.text);
        json_decref(arr);
        return 2;
    }
    t0 = now();
    rc = kvr_tokenizer_load_dir(dir, &t, err, sizeof(err));
    load_ms = (now() - t0) * 1e3;
    if (rc != KVR_OK) {
        fprintf(stderr, "dynamo-kv tokenize --bench: %s: %s\n", dir, err);
        json_decref(arr);
        return 2;
    }
    start = now();
    do {
        json_array_foreach(arr, i, d) {
            if (kvr_tokenizer_encode(t, json_string_value(d), json_string_length(d),
                                     0, &ids) != KVR_OK)
            {
                fprintf(stderr, "dynamo-kv tokenize --bench: encode failed\n");
                rc = KVR_ERR_INVAL;
                break;
            }
            bytes += json_string_length(d);
            tokens += ids.n;
        }
        passes++;
        el = now() - start;
    } while (rc == KVR_OK && el < min_seconds);
    if (rc == KVR_OK) {
        printf("{\"load_ms\": %.3f, \"bytes\": %zu, \"tokens\": %zu, "
               "\"seconds\": %.6f, \"passes\": %zu}\n", load_ms, bytes, tokens,
               el, passes);
    }
    kvr_ids_free(&ids);
    kvr_tokenizer_free(t);
    json_decref(arr);
    return rc == KVR_OK ? 0 : 1;
}
