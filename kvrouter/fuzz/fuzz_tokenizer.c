/*
 * libFuzzer target: the tokenizer. The first byte picks the mode:
 *   0: with bit 3 set, the rest is a tokenizer.json; when it loads,
 *      encode and decode a fixed text with it. Else the next five bytes
 *      pick a normalizer, pre-tokenizer, post-processor, decoder and model
 *      options from lists of real-shaped ones, and the rest is the text
 *      encoded (and decoded) with the combination;
 *   1-3: the rest is text, encoded by one of three tokenizers built at
 *      start-up (byte-level GPT-2 style with a Split regex and added
 *      tokens with lstrip/rstrip/single_word; sentencepiece style with
 *      byte fallback; normalizers + Metaspace/Digits/Punctuation), or by
 *      models/stories260K when run from the repository root;
 *   4-7: the rest is 16-bit ids, decoded in full and streamed through the
 *      detokenizer.
 * Checks: no crash, leak or sanitizer report; encoded ids decode; the
 * streamed text after flush equals the full decode (abort if not).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvr_err.h"
#include "kvr_tokenizer.h"

#define NTOK  4

static kvr_tokenizer_t  *toks[NTOK];

/* "<byte chars>": GPT-2 alphabet entries for every byte, ids 0..255 */
static void
byte_vocab(kvr_buf_t *b)
{
    int   i, n = 0;
    char  u[8];
    int   c;

    for (i = 0; i < 256; i++) {
        if ((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || i >= 174) {
            c = i;
        } else {
            c = 256 + n++;
        }
        if (c == '"' || c == '\\') {
            snprintf(u, sizeof(u), "\\%c", c);
        } else if (c < 0x80) {
            snprintf(u, sizeof(u), "%c", c);
        } else {
            u[0] = (char) (0xC0 | c >> 6);
            u[1] = (char) (0x80 | (c & 0x3F));
            u[2] = '\0';
        }
        kvr_buf_append_str(b, i ? ", \"" : "\"");
        kvr_buf_append_str(b, u);
        snprintf(u, sizeof(u), "\": %d", i);
        kvr_buf_append_str(b, u);
    }
}

static void
fb_vocab(kvr_buf_t *b, int first)
{
    char  u[32];
    int   i;

    for (i = 0; i < 256; i++) {
        snprintf(u, sizeof(u), ", \"<0x%02X>\": %d", i, first + i);
        kvr_buf_append_str(b, u);
    }
}

static kvr_tokenizer_t *
build(int which)
{
    kvr_buf_t         b = {0};
    kvr_tokenizer_t  *t = NULL;
    char              err[256];

    if (which == 0) {
        kvr_buf_append_str(&b,
            "{\"added_tokens\": ["
            "{\"id\": 300, \"content\": \"<|end|>\", \"special\": true, \"lstrip\": false,"
            " \"rstrip\": false, \"single_word\": false, \"normalized\": false},"
            "{\"id\": 301, \"content\": \"<pad>\", \"special\": true, \"lstrip\": true,"
            " \"rstrip\": true, \"single_word\": false, \"normalized\": false},"
            "{\"id\": 302, \"content\": \"hello\", \"special\": false, \"lstrip\": false,"
            " \"rstrip\": false, \"single_word\": true, \"normalized\": true}],"
            "\"normalizer\": {\"type\": \"NFC\"},"
            "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": ["
            "{\"type\": \"Split\", \"pattern\": {\"Regex\": "
            "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}|"
            " ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
            " \"behavior\": \"Isolated\", \"invert\": false},"
            "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]},"
            "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": ["
            "{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}},"
            "{\"SpecialToken\": {\"id\": \"<|end|>\", \"type_id\": 0}}], \"pair\": [],"
            " \"special_tokens\": {\"<|end|>\": {\"id\": \"<|end|>\", \"ids\": [300],"
            " \"tokens\": [\"<|end|>\"]}}},"
            "\"decoder\": {\"type\": \"ByteLevel\"},"
            "\"model\": {\"type\": \"BPE\", \"ignore_merges\": true, \"vocab\": {");
        byte_vocab(&b);
        kvr_buf_append_str(&b,
            ", \"he\": 256, \"ll\": 257, \"hell\": 258, \"hello\": 259,"
            " \"\xC4\xA0t\": 260, \"\xC4\xA0th\": 261, \"\xC4\xA0the\": 262,"
            " \"th\": 263, \"\xC4\xA0\xC4\xA0\": 264},"
            "\"merges\": [\"h e\", \"l l\", \"he ll\", \"hell o\", \"\xC4\xA0 t\","
            " \"\xC4\xA0t h\", \"\xC4\xA0th e\", \"t h\", \"\xC4\xA0 \xC4\xA0\"]}}");
    } else if (which == 1) {
        kvr_buf_append_str(&b,
            "{\"added_tokens\": [{\"id\": 1, \"content\": \"<s>\", \"special\": true,"
            " \"lstrip\": false, \"rstrip\": false, \"single_word\": false,"
            " \"normalized\": false}],"
            "\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": ["
            "{\"type\": \"Prepend\", \"prepend\": \"\xE2\x96\x81\"},"
            "{\"type\": \"Replace\", \"pattern\": {\"String\": \" \"},"
            " \"content\": \"\xE2\x96\x81\"}]},"
            "\"pre_tokenizer\": null,"
            "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": ["
            "{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}},"
            "{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"pair\": [],"
            " \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [1],"
            " \"tokens\": [\"<s>\"]}}},"
            "\"decoder\": {\"type\": \"Sequence\", \"decoders\": ["
            "{\"type\": \"Replace\", \"pattern\": {\"String\": \"\xE2\x96\x81\"},"
            " \"content\": \" \"}, {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"},"
            " {\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]},"
            "\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": true,"
            " \"byte_fallback\": true, \"vocab\": {\"<unk>\": 0, \"<s>\": 1,"
            " \"\xE2\x96\x81\": 2, \"a\": 3, \"b\": 4, \"c\": 5, \"\xE2\x96\x81" "a\": 6,"
            " \"ab\": 7, \"\xE2\x96\x81\xE2\x96\x81\": 8, \"\xE4\xB8\x80\": 9");
        fb_vocab(&b, 10);
        kvr_buf_append_str(&b,
            "}, \"merges\": [\"\xE2\x96\x81 a\", \"a b\", \"\xE2\x96\x81 \xE2\x96\x81\"]}}");
    } else {
        kvr_buf_append_str(&b,
            "{\"added_tokens\": [{\"id\": 40, \"content\": \"[x]\", \"special\": false,"
            " \"lstrip\": true, \"rstrip\": false, \"single_word\": false,"
            " \"normalized\": true}],"
            "\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": ["
            "{\"type\": \"NFKC\"}, {\"type\": \"Lowercase\"},"
            " {\"type\": \"Strip\", \"strip_left\": true, \"strip_right\": true},"
            " {\"type\": \"Replace\", \"pattern\": {\"Regex\": \"\\\\s+\"}, \"content\": \" \"}]},"
            "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": ["
            "{\"type\": \"Digits\", \"individual_digits\": true},"
            "{\"type\": \"Punctuation\", \"behavior\": \"Contiguous\"},"
            "{\"type\": \"Split\", \"pattern\": {\"String\": \"-\"},"
            " \"behavior\": \"MergedWithNext\", \"invert\": false},"
            "{\"type\": \"Metaspace\", \"replacement\": \"\xE2\x96\x81\","
            " \"prepend_scheme\": \"first\", \"split\": true}]},"
            "\"post_processor\": null,"
            "\"decoder\": {\"type\": \"Metaspace\", \"replacement\": \"\xE2\x96\x81\","
            " \"prepend_scheme\": \"first\", \"split\": true},"
            "\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"vocab\": {"
            "\"<unk>\": 0, \"\xE2\x96\x81\": 1, \"a\": 2, \"b\": 3, \"1\": 4, \"-\": 5,"
            " \".\": 6, \"\xE2\x96\x81" "a\": 7, \"[x]\": 40},"
            " \"merges\": [\"\xE2\x96\x81 a\"]}}");
    }
    if (kvr_tokenizer_load(b.data, b.len, NULL, 0, &t, err, sizeof(err)) != KVR_OK) {
        fprintf(stderr, "fuzz_tokenizer: built-in tokenizer %d: %s\n", which, err);
        abort();
    }
    kvr_buf_free(&b);
    return t;
}

static const char *const norms[] = {
    "null", "{\"type\": \"NFC\"}", "{\"type\": \"NFKD\"}",
    "{\"type\": \"Lowercase\"}",
    "{\"type\": \"Strip\", \"strip_left\": true, \"strip_right\": false}",
    "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\","
    " \"prepend\": \"\\u2581\"}, {\"type\": \"Replace\", \"pattern\":"
    " {\"String\": \" \"}, \"content\": \"\\u2581\"}]}",
    "{\"type\": \"Replace\", \"pattern\": {\"Regex\": \"\\\\d+\"},"
    " \"content\": \"#\"}",
    "{\"type\": \"NFKC\"}",
};

static const char *const pres[] = {
    "null",
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true,"
    " \"use_regex\": true}",
    "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\","
    " \"pattern\": {\"Regex\": \"\\\\p{N}{1,3}| ?\\\\p{L}+|\\\\s+(?!\\\\S)|\\\\s+\"},"
    " \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\","
    " \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": false}]}",
    "{\"type\": \"Metaspace\", \"replacement\": \"\\u2581\", \"prepend_scheme\":"
    " \"first\", \"split\": true}",
    "{\"type\": \"Metaspace\", \"replacement\": \"\\u2581\", \"prepend_scheme\":"
    " \"always\", \"split\": false}",
    "{\"type\": \"Digits\", \"individual_digits\": false}",
    "{\"type\": \"Punctuation\", \"behavior\": \"MergedWithPrevious\"}",
    "{\"type\": \"Whitespace\"}", "{\"type\": \"WhitespaceSplit\"}",
    "{\"type\": \"Split\", \"pattern\": {\"String\": \"a\"}, \"behavior\":"
    " \"MergedWithNext\", \"invert\": true}",
    "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"[aeiou]+\"},"
    " \"behavior\": \"Contiguous\", \"invert\": false}",
    "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\s\"},"
    " \"behavior\": \"Removed\", \"invert\": false}",
};

static const char *const posts[] = {
    "null", "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true}",
    "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\":"
    " {\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\","
    " \"type_id\": 0}}, {\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}],"
    " \"pair\": [], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\","
    " \"ids\": [257, 257], \"tokens\": [\"<s>\", \"<s>\"]}}}",
    "{\"type\": \"RobertaProcessing\", \"sep\": [\"</s>\", 2000], \"cls\": [\"<s>\", 257],"
    " \"trim_offsets\": true, \"add_prefix_space\": true}",
};

static const char *const decs[] = {
    "null", "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true}",
    "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\","
    " \"pattern\": {\"String\": \"\\u2581\"}, \"content\": \" \"}, {\"type\":"
    " \"ByteFallback\"}, {\"type\": \"Fuse\"}, {\"type\": \"Strip\","
    " \"content\": \" \", \"start\": 1, \"stop\": 0}]}",
    "{\"type\": \"Metaspace\", \"replacement\": \"\\u2581\", \"prepend_scheme\":"
    " \"always\", \"split\": true}",
    "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"ByteFallback\"},"
    " {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true,"
    " \"use_regex\": true}, {\"type\": \"Strip\", \"content\": \"a\","
    " \"start\": 2, \"stop\": 0}]}",
    "{\"type\": \"Fuse\"}",
};

static const char *const models[] = {
    "\"byte_fallback\": true, \"fuse_unk\": true, \"unk_token\": \"<unk>\"",
    "\"byte_fallback\": false, \"fuse_unk\": false, \"unk_token\": \"<unk>\"",
    "\"ignore_merges\": true, \"unk_token\": null",
    "\"byte_fallback\": true, \"unk_token\": null",
};

#define PICK(arr, b)  arr[(b) % (sizeof(arr) / sizeof(arr[0]))]

/*
 * A tokenizer from picked components. Vocab: the 256 byte-level chars
 * (ids 0..255), U+2581, <s>, <unk>, </s>, <0xXX> bytes and a few merges.
 */
static kvr_tokenizer_t *
combo(const uint8_t *pick)
{
    kvr_buf_t         b = {0};
    kvr_tokenizer_t  *t = NULL;
    char              err[256];

    kvr_buf_append_str(&b, "{\"added_tokens\": [{\"id\": 257, \"content\": \"<s>\","
        " \"special\": true, \"lstrip\": false, \"rstrip\": false,"
        " \"single_word\": false, \"normalized\": false}, {\"id\": 259,"
        " \"content\": \" ab\", \"special\": false, \"lstrip\": true,"
        " \"rstrip\": true, \"single_word\": true, \"normalized\": true}],"
        " \"normalizer\": ");
    kvr_buf_append_str(&b, PICK(norms, pick[0]));
    kvr_buf_append_str(&b, ", \"pre_tokenizer\": ");
    kvr_buf_append_str(&b, PICK(pres, pick[1]));
    kvr_buf_append_str(&b, ", \"post_processor\": ");
    kvr_buf_append_str(&b, PICK(posts, pick[2]));
    kvr_buf_append_str(&b, ", \"decoder\": ");
    kvr_buf_append_str(&b, PICK(decs, pick[3]));
    kvr_buf_append_str(&b, ", \"model\": {\"type\": \"BPE\", ");
    kvr_buf_append_str(&b, PICK(models, pick[4]));
    kvr_buf_append_str(&b, ", \"vocab\": {");
    byte_vocab(&b);
    kvr_buf_append_str(&b, ", \"\\u2581\": 256, \"<s>\": 257, \"<unk>\": 258,"
        " \"</s>\": 2000, \" ab\": 259, \"ab\": 260, \"\\u2581a\": 261, \"\\u2581ab\": 262, \"\\u0120a\": 263");
    fb_vocab(&b, 300);
    kvr_buf_append_str(&b, "}, \"merges\": [\"a b\", \"\\u2581 a\", \"\\u2581a b\","
        " \"\\u0120 a\"]}}");
    if (kvr_tokenizer_load(b.data, b.len, NULL, 0, &t, err, sizeof(err)) != KVR_OK) {
        t = NULL;
    }
    kvr_buf_free(&b);
    return t;
}

static void
init(void)
{
    char  err[256];
    int   i;

    for (i = 0; i < 3; i++) {
        toks[i] = build(i);
    }
    if (kvr_tokenizer_load_dir("models/stories260K", &toks[3], err, sizeof(err))
        != KVR_OK)
    {
        toks[3] = build(1);
    }
}

/* Full decode vs the streamed one; aborts when they differ. */
static void
decode_check(const kvr_tokenizer_t *t, const uint32_t *ids, size_t n,
    unsigned flags)
{
    kvr_buf_t     full = {0}, st = {0};
    kvr_detok_t  *d;
    size_t        i;
    int           rc;

    rc = kvr_tokenizer_decode(t, ids, n, flags, &full);
    d = kvr_detok_create(t, flags);
    if (d == NULL) {
        abort();
    }
    for (i = 0; i < n; i++) {
        if (kvr_detok_push(d, ids[i], &st) != KVR_OK && rc == KVR_OK) {
            abort();
        }
    }
    kvr_detok_flush(d, &st);
    if (rc == KVR_OK && (full.len != st.len
                         || memcmp(full.data, st.data ? st.data : "", full.len) != 0))
    {
        fprintf(stderr, "stream \"%.*s\" != decode \"%.*s\"\n", (int) st.len,
                st.data ? st.data : "", (int) full.len, full.data);
        abort();
    }
    kvr_detok_free(d);
    kvr_buf_free(&full);
    kvr_buf_free(&st);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char  text[] = "Hello <|end|> w\xC3\xB6rld 123 \xE4\xB8\x80 <s> - a.b";
    kvr_tokenizer_t   *t;
    kvr_ids_t          ids = {0};
    uint32_t          *v;
    size_t             i, n;
    unsigned           mode;
    char               err[256];

    if (toks[0] == NULL) {
        init();
    }
    if (size == 0) {
        return 0;
    }
    mode = data[0] & 7;
    data++;
    size--;
    if (mode == 0 && !(data[-1] & 8)) {
        if (size < 5) {
            return 0;
        }
        t = combo(data);
        if (t != NULL) {
            if (kvr_tokenizer_encode(t, (const char *) data + 5, size - 5,
                                     KVR_TOK_ADD_SPECIAL, &ids) != KVR_OK)
            {
                abort();
            }
            decode_check(t, ids.ids, ids.n, 0);
            decode_check(t, ids.ids, ids.n, KVR_TOK_SKIP_SPECIAL);
            kvr_tokenizer_free(t);
        }
    } else if (mode == 0) {
        if (kvr_tokenizer_load((const char *) data, size, NULL, 0, &t, err,
                               sizeof(err)) == KVR_OK)
        {
            if (kvr_tokenizer_encode(t, text, sizeof(text) - 1, KVR_TOK_ADD_SPECIAL,
                                     &ids) == KVR_OK)
            {
                decode_check(t, ids.ids, ids.n, 0);
            }
            kvr_tokenizer_free(t);
        }
    } else if (mode <= 3) {
        t = toks[mode == 3 && size > 0 && (data[0] & 1) ? 3 : mode - 1];
        if (kvr_tokenizer_encode(t, (const char *) data, size, KVR_TOK_ADD_SPECIAL,
                                 &ids) != KVR_OK)
        {
            abort();
        }
        decode_check(t, ids.ids, ids.n, 0);
        decode_check(t, ids.ids, ids.n, KVR_TOK_SKIP_SPECIAL);
    } else {
        t = toks[mode - 4];
        n = size / 2;
        v = malloc((n + 1) * sizeof(uint32_t));
        if (v == NULL) {
            return 0;
        }
        for (i = 0; i < n; i++) {
            v[i] = (uint32_t) (data[2 * i] | data[2 * i + 1] << 8)
                   % (uint32_t) (kvr_tokenizer_vocab_size(t) + 2);
        }
        decode_check(t, v, n, mode & 1 ? KVR_TOK_SKIP_SPECIAL : 0);
        free(v);
    }
    kvr_ids_free(&ids);
    return 0;
}
