/*
 * dynamo-worker: KV pool layouts and the transfer descriptor (see
 * dw_xfer.h). Pure code, no UCX: the descriptor is input from another
 * worker, so the parser is strict and fuzzed (fuzz_xfer_desc.c). Its addr
 * and rkey blobs stay opaque here and UCX unpacks them without checks:
 * descriptors must come from the deployment's own workers.
 *
 * Wire form, one JSON object (field order free, duplicates refused):
 *
 *   {"v":1,"model":"stories260K","dtype":"f32","n_layers":5,
 *    "n_kv_heads":4,"head_dim":8,"block_size":16,"n_blocks":100,
 *    "chunk_bytes":2048,"block_bytes":20480,"layer_stride":409600,
 *    "kv_stride":204800,"block_stride":2048,"base":"7f12c4000000",
 *    "length":2048000,"addr":"<base64>","rkey":"<base64>"}
 *
 * base is hex (a 64-bit address does not fit JSON's safe integers);
 * the other numbers must be integers in 0 .. 2^53.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dw_err.h"
#include "dw_safetensors_int.h"     /* dw_dtype_size */
#include "dw_xfer.h"

#define JSON_SAFE_MAX  ((uint64_t) 1 << 53)

const char *
dw_xfer_dtype_name(dw_dtype_t dt)
{
    switch (dt) {
    case DW_DT_F32:  return "f32";
    case DW_DT_BF16: return "bf16";
    case DW_DT_F16:  return "f16";
    }
    return "?";
}

static int
dtype_parse(const char *s, dw_dtype_t *dt)
{
    static const dw_dtype_t  all[] = { DW_DT_F32, DW_DT_BF16, DW_DT_F16 };
    size_t                   i;

    for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcmp(s, dw_xfer_dtype_name(all[i])) == 0) {
            *dt = all[i];
            return 0;
        }
    }
    return -1;
}

/* Model ids are plain names: anything JSON would escape is refused. */
static int
model_plain(const char *m)
{
    for (; *m; m++) {
        if ((unsigned char) *m < 0x20 || *m == '"' || *m == '\\') {
            return 0;
        }
    }
    return 1;
}

/* a * b, or -1 on overflow */
static int
mul64(uint64_t a, uint64_t b, uint64_t *r)
{
    if (a != 0 && b > UINT64_MAX / a) {
        return -1;
    }
    *r = a * b;
    return 0;
}

/*
 * What both layouts share: the model, dtype and shape, chunk_bytes and
 * block_bytes. 0, or -1 with err.
 */
static int
layout_shape(dw_xfer_layout_t *l, const char *model, const dw_config_t *cfg,
    dw_dtype_t dtype, uint32_t block_size, uint32_t n_blocks, char *err,
    size_t errlen)
{
    uint64_t  chunk;

    memset(l, 0, sizeof(*l));
    if (strlen(model) >= sizeof(l->model)) {
        dw_errf(err, errlen, "model id longer than %zu bytes",
                sizeof(l->model) - 1);
        return -1;
    }
    strcpy(l->model, model);
    l->dtype = dtype;
    l->n_layers = cfg->n_layers;
    l->n_kv_heads = cfg->n_kv_heads;
    l->head_dim = cfg->head_dim;
    l->block_size = block_size;
    l->n_blocks = n_blocks;
    if (mul64((uint64_t) block_size * cfg->n_kv_heads, cfg->head_dim, &chunk)
        || mul64(chunk, dw_dtype_size(dtype), &chunk)
        || mul64(chunk, 2 * (uint64_t) cfg->n_layers, &l->block_bytes))
    {
        dw_errf(err, errlen, "KV pool size overflows");
        return -1;
    }
    l->chunk_bytes = chunk;
    return 0;
}

int
dw_xfer_layout_cpu(dw_xfer_layout_t *l, const char *model,
    const dw_config_t *cfg, uint32_t block_size, uint32_t n_blocks,
    char *err, size_t errlen)
{
    uint64_t  pool;

    /* the cpu backend keeps K/V in f32 */
    if (layout_shape(l, model, cfg, DW_DT_F32, block_size, n_blocks, err,
                     errlen) != 0)
    {
        return -1;
    }
    if (mul64(l->chunk_bytes, n_blocks, &pool)
        || mul64(pool, 2, &l->layer_stride))
    {
        dw_errf(err, errlen, "KV pool size overflows");
        return -1;
    }
    l->kv_stride = pool;
    l->block_stride = l->chunk_bytes;
    return dw_xfer_layout_validate(l, l->layer_stride * l->n_layers, err,
                                   errlen);
}

int
dw_xfer_layout_block_major(dw_xfer_layout_t *l, const char *model,
    const dw_config_t *cfg, dw_dtype_t dtype, uint32_t block_size,
    uint32_t n_blocks, char *err, size_t errlen)
{
    uint64_t  total;

    if (layout_shape(l, model, cfg, dtype, block_size, n_blocks, err,
                     errlen) != 0)
    {
        return -1;
    }
    if (mul64(l->block_bytes, n_blocks, &total)) {
        dw_errf(err, errlen, "KV pool size overflows");
        return -1;
    }
    /* block b, layer l, K/V s: ((b * n_layers + l) * 2 + s) * chunk */
    l->kv_stride = l->chunk_bytes;
    l->layer_stride = 2 * l->chunk_bytes;
    l->block_stride = l->block_bytes;
    return dw_xfer_layout_validate(l, total, err, errlen);
}

/*
 * Chunks must not overlap: with the three strides sorted, each must be
 * at least the extent of everything below it (a mixed radix). That is
 * what a real pool looks like and it makes the "ends within length" test
 * below a bound on every write.
 */
static int
strides_disjoint(const dw_xfer_layout_t *l)
{
    uint64_t  s[3], c[3], t, ext;
    int       i, j;

    s[0] = l->layer_stride; c[0] = l->n_layers;
    s[1] = l->kv_stride;    c[1] = 2;
    s[2] = l->block_stride; c[2] = l->n_blocks;
    for (i = 0; i < 3; i++) {
        for (j = i + 1; j < 3; j++) {
            if (s[j] < s[i]) {
                t = s[i]; s[i] = s[j]; s[j] = t;
                t = c[i]; c[i] = c[j]; c[j] = t;
            }
        }
    }
    ext = l->chunk_bytes;
    for (i = 0; i < 3; i++) {
        if (c[i] == 1) {
            continue;
        }
        if (s[i] < ext) {
            return 0;
        }
        if (mul64(s[i], c[i], &ext)) {
            return 0;
        }
    }
    return 1;
}

int
dw_xfer_layout_validate(const dw_xfer_layout_t *l, uint64_t length,
    char *err, size_t errlen)
{
    uint64_t  chunk, bb, end, o;

    if (memchr(l->model, '\0', sizeof(l->model)) == NULL
        || l->model[0] == '\0')
    {
        dw_errf(err, errlen, "layout: empty or unterminated model id");
        return -1;
    }
    if (l->dtype != DW_DT_F32 && l->dtype != DW_DT_BF16
        && l->dtype != DW_DT_F16)
    {
        dw_errf(err, errlen, "layout: unknown dtype");
        return -1;
    }
    if (l->n_layers == 0 || l->n_kv_heads == 0 || l->head_dim == 0
        || l->block_size == 0 || l->n_blocks == 0)
    {
        dw_errf(err, errlen, "layout: n_layers, n_kv_heads, head_dim, "
                "block_size and n_blocks must be > 0");
        return -1;
    }
    if (mul64((uint64_t) l->block_size * l->n_kv_heads, l->head_dim, &chunk)
        || mul64(chunk, dw_dtype_size(l->dtype), &chunk)
        || mul64(chunk, 2 * (uint64_t) l->n_layers, &bb))
    {
        dw_errf(err, errlen, "layout: block size overflows");
        return -1;
    }
    if (l->chunk_bytes != chunk) {
        dw_errf(err, errlen, "layout: chunk_bytes %" PRIu64 " != block_size "
                "* n_kv_heads * head_dim * dtype size = %" PRIu64,
                l->chunk_bytes, chunk);
        return -1;
    }
    if (l->block_bytes != bb) {
        dw_errf(err, errlen, "layout: block_bytes %" PRIu64 " != 2 * "
                "n_layers * chunk_bytes = %" PRIu64, l->block_bytes, bb);
        return -1;
    }
    if (!strides_disjoint(l)) {
        dw_errf(err, errlen, "layout: strides make chunks overlap");
        return -1;
    }
    /* the last chunk of the last block ends the furthest */
    if (mul64(l->n_layers - 1, l->layer_stride, &end)
        || mul64(l->n_blocks - 1, l->block_stride, &o)
        || (end += o) < o
        || (end += l->kv_stride) < l->kv_stride
        || (end += chunk) < chunk
        || end > length)
    {
        dw_errf(err, errlen, "layout: pool does not fit in %" PRIu64
                " bytes", length);
        return -1;
    }
    return 0;
}

int
dw_xfer_layout_check(const dw_xfer_layout_t *a, const dw_xfer_layout_t *b,
    char *err, size_t errlen)
{
    if (strcmp(a->model, b->model) != 0) {
        dw_errf(err, errlen, "model %s != %s", a->model, b->model);
        return -1;
    }
#define CHK(f)                                                              \
    if (a->f != b->f) {                                                     \
        dw_errf(err, errlen, #f " %" PRIu64 " != %" PRIu64,                 \
                (uint64_t) a->f, (uint64_t) b->f);                          \
        return -1;                                                          \
    }
    if (a->dtype != b->dtype) {
        dw_errf(err, errlen, "dtype %s != %s", dw_xfer_dtype_name(a->dtype),
                dw_xfer_dtype_name(b->dtype));
        return -1;
    }
    /* in the order dw_xfer.h gives */
    CHK(n_layers)
    CHK(n_kv_heads)
    CHK(head_dim)
    CHK(block_size)
    CHK(chunk_bytes)
    CHK(block_bytes)
#undef CHK
    return 0;
}

/* ---- base64 ---- */

static const char  b64c[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
dw_xfer_b64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t    i, o = 0;
    uint32_t  v;

    for (i = 0; i + 2 < n; i += 3) {
        v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];
        out[o++] = b64c[v >> 18];
        out[o++] = b64c[(v >> 12) & 63];
        out[o++] = b64c[(v >> 6) & 63];
        out[o++] = b64c[v & 63];
    }
    if (i < n) {
        v = (uint32_t) in[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t) in[i + 1] << 8;
        }
        out[o++] = b64c[v >> 18];
        out[o++] = b64c[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64c[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

static int
b64v(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/*
 * Strict: length a multiple of 4, padding only at the end, and the
 * unused bits of the last symbol zero (one encoding per byte string).
 * out needs n / 4 * 3 bytes.
 */
int
dw_xfer_b64_decode(const char *in, size_t n, unsigned char *out,
    size_t *outlen)
{
    size_t    i, o = 0;
    int       a, b, c, d;

    if (n % 4 != 0) {
        return -1;
    }
    for (i = 0; i < n; i += 4) {
        a = b64v(in[i]);
        b = b64v(in[i + 1]);
        if (a < 0 || b < 0) {
            return -1;
        }
        if (i + 4 == n && in[i + 3] == '=') {
            if (in[i + 2] == '=') {
                if (b & 15) {
                    return -1;
                }
                out[o++] = (unsigned char) (a << 2 | b >> 4);
                break;
            }
            c = b64v(in[i + 2]);
            if (c < 0 || (c & 3)) {
                return -1;
            }
            out[o++] = (unsigned char) (a << 2 | b >> 4);
            out[o++] = (unsigned char) ((b & 15) << 4 | c >> 2);
            break;
        }
        c = b64v(in[i + 2]);
        d = b64v(in[i + 3]);
        if (c < 0 || d < 0) {
            return -1;
        }
        out[o++] = (unsigned char) (a << 2 | b >> 4);
        out[o++] = (unsigned char) ((b & 15) << 4 | c >> 2);
        out[o++] = (unsigned char) ((c & 3) << 6 | d);
    }
    *outlen = o;
    return 0;
}

/* ---- encode ---- */

static char *
b64_dup(const unsigned char *p, size_t n)
{
    char  *s = malloc(DW_XFER_B64_LEN(n) + 1);

    if (s != NULL) {
        dw_xfer_b64_encode(p, n, s);
    }
    return s;
}

int
dw_xfer_desc_encode(const dw_xfer_desc_t *d, char **out, size_t *len,
    char *err, size_t errlen)
{
    const dw_xfer_layout_t  *l = &d->layout;
    char                    *a, *k, *s;
    int                      n;
    size_t                   cap;

    *out = NULL;
    if (dw_xfer_layout_validate(l, d->length, err, errlen) != 0) {
        return -1;
    }
    if (d->addr_len == 0 || d->addr_len > DW_XFER_BLOB_MAX
        || d->rkey_len == 0 || d->rkey_len > DW_XFER_BLOB_MAX
        || d->length > JSON_SAFE_MAX || l->layer_stride > JSON_SAFE_MAX
        || l->kv_stride > JSON_SAFE_MAX || l->block_stride > JSON_SAFE_MAX)
    {
        dw_errf(err, errlen, "descriptor: blob or size out of range");
        return -1;
    }
    if (!model_plain(l->model)) {
        dw_errf(err, errlen, "descriptor: model id has a control "
                "character, quote or backslash");
        return -1;
    }
    a = b64_dup(d->addr, d->addr_len);
    k = b64_dup(d->rkey, d->rkey_len);
    cap = 512 + strlen(l->model) + DW_XFER_B64_LEN(d->addr_len)
          + DW_XFER_B64_LEN(d->rkey_len);
    s = malloc(cap);
    if (a == NULL || k == NULL || s == NULL) {
        free(a);
        free(k);
        free(s);
        dw_errf(err, errlen, "out of memory");
        return -1;
    }
    n = snprintf(s, cap,
        "{\"v\":%d,\"model\":\"%s\",\"dtype\":\"%s\",\"n_layers\":%" PRIu32
        ",\"n_kv_heads\":%" PRIu32 ",\"head_dim\":%" PRIu32
        ",\"block_size\":%" PRIu32 ",\"n_blocks\":%" PRIu32
        ",\"chunk_bytes\":%" PRIu64 ",\"block_bytes\":%" PRIu64
        ",\"layer_stride\":%" PRIu64 ",\"kv_stride\":%" PRIu64
        ",\"block_stride\":%" PRIu64 ",\"base\":\"%" PRIx64 "\""
        ",\"length\":%" PRIu64 ",\"addr\":\"%s\",\"rkey\":\"%s\"}",
        DW_XFER_DESC_VERSION, l->model, dw_xfer_dtype_name(l->dtype),
        l->n_layers, l->n_kv_heads, l->head_dim, l->block_size, l->n_blocks,
        l->chunk_bytes, l->block_bytes, l->layer_stride, l->kv_stride,
        l->block_stride, d->base, d->length, a, k);
    free(a);
    free(k);
    if (n < 0 || (size_t) n >= cap) {
        free(s);
        dw_errf(err, errlen, "descriptor: encoding failed");
        return -1;
    }
    *out = s;
    *len = (size_t) n;
    return 0;
}

/* ---- parse ---- */

enum {
    F_V, F_MODEL, F_DTYPE, F_NL, F_NKV, F_HD, F_BS, F_NB, F_CHUNK, F_BB,
    F_LS, F_KS, F_BST, F_BASE, F_LEN, F_ADDR, F_RKEY, F_N
};

static const char  *fields[F_N] = {
    "v", "model", "dtype", "n_layers", "n_kv_heads", "head_dim",
    "block_size", "n_blocks", "chunk_bytes", "block_bytes", "layer_stride",
    "kv_stride", "block_stride", "base", "length", "addr", "rkey"
};

static int
get_uint(json_t *v, const char *key, uint64_t max, uint64_t *out,
    char *err, size_t errlen)
{
    json_int_t  x;

    if (!json_is_integer(v)) {
        dw_errf(err, errlen, "descriptor: %s: not an integer", key);
        return -1;
    }
    x = json_integer_value(v);
    if (x < 0 || (uint64_t) x > max) {
        dw_errf(err, errlen, "descriptor: %s: out of range", key);
        return -1;
    }
    *out = (uint64_t) x;
    return 0;
}

static int
get_blob(json_t *v, const char *key, unsigned char **out, size_t *len,
    char *err, size_t errlen)
{
    const char  *s;
    size_t       n;

    if (!json_is_string(v)) {
        dw_errf(err, errlen, "descriptor: %s: not a string", key);
        return -1;
    }
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0 || n > DW_XFER_B64_LEN(DW_XFER_BLOB_MAX)) {
        dw_errf(err, errlen, "descriptor: %s: empty or longer than %d "
                "bytes", key, DW_XFER_BLOB_MAX);
        return -1;
    }
    if (n % 4 != 0) {
        dw_errf(err, errlen, "descriptor: %s: bad base64", key);
        return -1;
    }
    *out = malloc(n / 4 * 3);
    if (*out == NULL) {
        dw_errf(err, errlen, "out of memory");
        return -1;
    }
    if (dw_xfer_b64_decode(s, n, *out, len) != 0 || *len == 0) {
        free(*out);
        *out = NULL;
        dw_errf(err, errlen, "descriptor: %s: bad base64", key);
        return -1;
    }
    return 0;
}

static int
get_hex64(json_t *v, uint64_t *out, char *err, size_t errlen)
{
    const char  *s;
    size_t       i, n;
    uint64_t     x = 0;
    int          c;

    if (!json_is_string(v)) {
        dw_errf(err, errlen, "descriptor: base: not a string");
        return -1;
    }
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0 || n > 16) {
        dw_errf(err, errlen, "descriptor: base: 1 to 16 hex digits");
        return -1;
    }
    for (i = 0; i < n; i++) {
        c = s[i];
        if (c >= '0' && c <= '9') {
            c -= '0';
        } else if (c >= 'a' && c <= 'f') {
            c -= 'a' - 10;
        } else {
            dw_errf(err, errlen, "descriptor: base: not lowercase hex");
            return -1;
        }
        x = x << 4 | (uint64_t) c;
    }
    *out = x;
    return 0;
}

/* f[i] = the value of fields[i]: each one present, no other (the
   parser already refused duplicates). */
static int
collect_fields(json_t *root, json_t **f, char *err, size_t errlen)
{
    const char  *key;
    json_t      *v;
    int          i;

    json_object_foreach(root, key, v) {
        for (i = 0; i < F_N && strcmp(key, fields[i]) != 0; i++) {
        }
        if (i == F_N) {
            dw_errf(err, errlen, "descriptor: unknown field \"%.40s\"", key);
            return -1;
        }
        f[i] = v;
    }
    for (i = 0; i < F_N; i++) {
        if (f[i] == NULL) {
            dw_errf(err, errlen, "descriptor: missing field \"%s\"",
                    fields[i]);
            return -1;
        }
    }
    return 0;
}

static int
parse_obj(json_t *root, dw_xfer_desc_t *d, char *err, size_t errlen)
{
    dw_xfer_layout_t  *l = &d->layout;
    json_t            *f[F_N] = { 0 };
    uint64_t           u;

    if (collect_fields(root, f, err, errlen) != 0) {
        return -1;
    }
    if (get_uint(f[F_V], "v", 1000, &u, err, errlen)) {
        return -1;
    }
    if (u != DW_XFER_DESC_VERSION) {
        dw_errf(err, errlen, "descriptor: version %" PRIu64 " != %d", u,
                DW_XFER_DESC_VERSION);
        return -1;
    }
    if (!json_is_string(f[F_MODEL])
        || json_string_length(f[F_MODEL]) == 0
        || json_string_length(f[F_MODEL]) >= sizeof(l->model)
        || strlen(json_string_value(f[F_MODEL]))
           != json_string_length(f[F_MODEL]))
    {
        dw_errf(err, errlen, "descriptor: model: a string of 1 to %zu "
                "bytes", sizeof(l->model) - 1);
        return -1;
    }
    strcpy(l->model, json_string_value(f[F_MODEL]));
    if (!model_plain(l->model)) {
        dw_errf(err, errlen, "descriptor: model: control character, "
                "quote or backslash");
        return -1;
    }
    if (!json_is_string(f[F_DTYPE])
        || dtype_parse(json_string_value(f[F_DTYPE]), &l->dtype) != 0)
    {
        dw_errf(err, errlen, "descriptor: dtype: one of f32, bf16, f16");
        return -1;
    }
#define U32(idx, field)                                                     \
    if (get_uint(f[idx], fields[idx], UINT32_MAX, &u, err, errlen)) {       \
        return -1;                                                          \
    }                                                                       \
    l->field = (uint32_t) u;
#define U64(idx, dst)                                                       \
    if (get_uint(f[idx], fields[idx], JSON_SAFE_MAX, &u, err, errlen)) {    \
        return -1;                                                          \
    }                                                                       \
    dst = u;
    U32(F_NL, n_layers)
    U32(F_NKV, n_kv_heads)
    U32(F_HD, head_dim)
    U32(F_BS, block_size)
    U32(F_NB, n_blocks)
    U64(F_CHUNK, l->chunk_bytes)
    U64(F_BB, l->block_bytes)
    U64(F_LS, l->layer_stride)
    U64(F_KS, l->kv_stride)
    U64(F_BST, l->block_stride)
    U64(F_LEN, d->length)
#undef U32
#undef U64
    if (get_hex64(f[F_BASE], &d->base, err, errlen)) {
        return -1;
    }
    if (d->base + d->length < d->base) {
        dw_errf(err, errlen, "descriptor: base + length overflows");
        return -1;
    }
    if (dw_xfer_layout_validate(l, d->length, err, errlen)) {
        return -1;
    }
    if (get_blob(f[F_ADDR], "addr", &d->addr, &d->addr_len, err, errlen)
        || get_blob(f[F_RKEY], "rkey", &d->rkey, &d->rkey_len, err, errlen))
    {
        return -1;
    }
    return 0;
}

int
dw_xfer_desc_parse(const char *text, size_t len, dw_xfer_desc_t *d,
    char *err, size_t errlen)
{
    json_t        *root;
    json_error_t   jerr;
    int            rc;

    memset(d, 0, sizeof(*d));
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        dw_errf(err, errlen, "descriptor: line %d column %d: %s",
                jerr.line, jerr.column, jerr.text);
        return -1;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        dw_errf(err, errlen, "descriptor: not a JSON object");
        return -1;
    }
    rc = parse_obj(root, d, err, errlen);
    json_decref(root);
    if (rc != 0) {
        dw_xfer_desc_free(d);
    }
    return rc;
}

void
dw_xfer_desc_free(dw_xfer_desc_t *d)
{
    free(d->addr);
    free(d->rkey);
    memset(d, 0, sizeof(*d));
}
