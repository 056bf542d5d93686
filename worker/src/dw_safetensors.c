/*
 * dynamo-worker: safetensors header parsing and memory mapping.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "dw_err.h"
#include "dw_safetensors_int.h"

/* A header larger than this is not a model we can serve (HF caps it at
 * 100 MB too). */
#define DW_ST_MAX_HEADER  (100u * 1024 * 1024)

size_t
dw_dtype_size(dw_dtype_t dt)
{
    return dt == DW_DT_F32 ? 4 : 2;
}

const char *
dw_dtype_name(dw_dtype_t dt)
{
    switch (dt) {
    case DW_DT_F32:  return "F32";
    case DW_DT_BF16: return "BF16";
    case DW_DT_F16:  return "F16";
    }
    return "?";
}

static int
st_dtype(const char *s, dw_dtype_t *dt)
{
    if (strcmp(s, "F32") == 0) {
        *dt = DW_DT_F32;
    } else if (strcmp(s, "BF16") == 0) {
        *dt = DW_DT_BF16;
    } else if (strcmp(s, "F16") == 0) {
        *dt = DW_DT_F16;
    } else {
        return -1;
    }
    return 0;
}

/* Byte size of the safetensors dtypes we know of, 0 for unknown ones. */
static uint64_t
st_any_dtype_size(const char *s)
{
    static const struct { const char *n; uint64_t sz; } tab[] = {
        { "F64", 8 }, { "F32", 4 }, { "F16", 2 }, { "BF16", 2 },
        { "I64", 8 }, { "I32", 4 }, { "I16", 2 }, { "I8", 1 },
        { "U64", 8 }, { "U32", 4 }, { "U16", 2 }, { "U8", 1 },
        { "BOOL", 1 }, { "F8_E4M3", 1 }, { "F8_E5M2", 1 },
    };
    size_t  i;

    for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
        if (strcmp(s, tab[i].n) == 0) {
            return tab[i].sz;
        }
    }
    return 0;
}

static int
st_cmp(const void *a, const void *b)
{
    return strcmp(((const dw_st_tensor_t *) a)->name,
                  ((const dw_st_tensor_t *) b)->name);
}

static int
st_entry(const char *name, json_t *v, uint64_t data_len, dw_st_tensor_t *t,
    char *err, size_t errlen)
{
    json_t      *jdt, *jshape, *joff, *d;
    const char  *ds;
    uint64_t     elsize, count, b, e;
    size_t       i;

    if (!json_is_object(v)) {
        dw_errf(err, errlen, "tensor %s: entry is not an object", name);
        return -1;
    }
    jdt = json_object_get(v, "dtype");
    jshape = json_object_get(v, "shape");
    joff = json_object_get(v, "data_offsets");
    if (!json_is_string(jdt) || !json_is_array(jshape)
        || !json_is_array(joff) || json_array_size(joff) != 2)
    {
        dw_errf(err, errlen, "tensor %s: needs dtype, shape and "
                "data_offsets [begin, end]", name);
        return -1;
    }
    ds = json_string_value(jdt);
    elsize = st_any_dtype_size(ds);
    if (elsize == 0) {
        dw_errf(err, errlen, "tensor %s: unknown dtype \"%.16s\"", name, ds);
        return -1;
    }
    snprintf(t->dtype_name, sizeof(t->dtype_name), "%s", ds);
    t->supported = st_dtype(ds, &t->dtype) == 0;

    if (json_array_size(jshape) > DW_ST_MAX_DIMS) {
        dw_errf(err, errlen, "tensor %s: more than %d dimensions", name,
                DW_ST_MAX_DIMS);
        return -1;
    }
    t->ndim = (uint32_t) json_array_size(jshape);
    count = 1;
    for (i = 0; i < t->ndim; i++) {
        d = json_array_get(jshape, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0) {
            dw_errf(err, errlen, "tensor %s: bad shape", name);
            return -1;
        }
        t->shape[i] = (uint64_t) json_integer_value(d);
        if (t->shape[i] != 0 && count > UINT64_MAX / t->shape[i]) {
            dw_errf(err, errlen, "tensor %s: shape overflows", name);
            return -1;
        }
        count *= t->shape[i];
    }
    if (count > UINT64_MAX / elsize) {
        dw_errf(err, errlen, "tensor %s: shape overflows", name);
        return -1;
    }
    if (!json_is_integer(json_array_get(joff, 0))
        || !json_is_integer(json_array_get(joff, 1))
        || json_integer_value(json_array_get(joff, 0)) < 0
        || json_integer_value(json_array_get(joff, 1)) < 0)
    {
        dw_errf(err, errlen, "tensor %s: bad data_offsets", name);
        return -1;
    }
    b = (uint64_t) json_integer_value(json_array_get(joff, 0));
    e = (uint64_t) json_integer_value(json_array_get(joff, 1));
    if (b > e || e > data_len) {
        dw_errf(err, errlen, "tensor %s: data_offsets [%llu, %llu] outside "
                "the %llu data bytes (truncated file?)", name,
                (unsigned long long) b, (unsigned long long) e,
                (unsigned long long) data_len);
        return -1;
    }
    if (e - b != count * elsize) {
        dw_errf(err, errlen, "tensor %s: %llu data bytes, shape and dtype "
                "need %llu", name, (unsigned long long) (e - b),
                (unsigned long long) (count * elsize));
        return -1;
    }
    t->begin = b;
    t->nbytes = e - b;
    return 0;
}

int
dw_st_parse(const uint8_t *buf, size_t len, dw_st_file_t *f, char *err,
    size_t errlen)
{
    uint64_t      hlen;
    json_t       *root, *v;
    json_error_t  jerr;
    const char   *key;
    size_t        n, i;
    int           k;

    memset(f, 0, sizeof(*f));
    if (len < 8) {
        dw_errf(err, errlen, "file too short for a safetensors header");
        return -1;
    }
    hlen = 0;
    for (k = 7; k >= 0; k--) {
        hlen = (hlen << 8) | buf[k];
    }
    if (hlen > DW_ST_MAX_HEADER || hlen > len - 8) {
        dw_errf(err, errlen, "header length %llu exceeds the file "
                "(%zu bytes; truncated?)", (unsigned long long) hlen, len);
        return -1;
    }
    root = json_loadb((const char *) buf + 8, (size_t) hlen,
                      JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        dw_errf(err, errlen, "bad header JSON: %s (at byte %d)", jerr.text,
                jerr.position);
        return -1;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        dw_errf(err, errlen, "bad header JSON: not an object");
        return -1;
    }
    f->data = buf + 8 + hlen;
    f->data_len = len - 8 - (size_t) hlen;

    n = json_object_size(root);
    f->t = calloc(n ? n : 1, sizeof(*f->t));
    if (f->t == NULL) {
        json_decref(root);
        dw_errf(err, errlen, "out of memory");
        return -1;
    }
    i = 0;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            continue;
        }
        if (st_entry(key, v, f->data_len, &f->t[i], err, errlen) != 0) {
            goto fail;
        }
        f->t[i].name = strdup(key);
        if (f->t[i].name == NULL) {
            dw_errf(err, errlen, "out of memory");
            goto fail;
        }
        i++;
        f->n = i;
    }
    json_decref(root);
    qsort(f->t, f->n, sizeof(*f->t), st_cmp);
    return 0;

fail:
    json_decref(root);
    dw_st_close(f);
    return -1;
}

int
dw_st_open(const char *path, dw_st_file_t *f, char *err, size_t errlen)
{
    int          fd;
    struct stat  st;
    void        *map;
    char         e2[256];

    memset(f, 0, sizeof(*f));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        dw_errf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        dw_errf(err, errlen, "%s: not a regular file", path);
        return -1;
    }
    if (st.st_size < 8) {
        close(fd);
        dw_errf(err, errlen, "%s: file too short for a safetensors header",
                path);
        return -1;
    }
    map = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        dw_errf(err, errlen, "%s: mmap: %s", path, strerror(errno));
        return -1;
    }
    if (dw_st_parse(map, (size_t) st.st_size, f, e2, sizeof(e2)) != 0) {
        munmap(map, (size_t) st.st_size);
        dw_errf(err, errlen, "%s: %s", path, e2);
        return -1;
    }
    f->map = map;
    f->map_len = (size_t) st.st_size;
    return 0;
}

void
dw_st_close(dw_st_file_t *f)
{
    size_t  i;

    if (f->t != NULL) {
        for (i = 0; i < f->n; i++) {
            free(f->t[i].name);
        }
        free(f->t);
    }
    if (f->map != NULL) {
        munmap(f->map, f->map_len);
    }
    memset(f, 0, sizeof(*f));
}

const dw_st_tensor_t *
dw_st_find(const dw_st_file_t *f, const char *name)
{
    dw_st_tensor_t  key;

    if (f->n == 0) {
        return NULL;
    }
    key.name = (char *) name;
    return bsearch(&key, f->t, f->n, sizeof(*f->t), st_cmp);
}
