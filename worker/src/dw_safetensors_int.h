/*
 * dynamo-worker: safetensors files (internal).
 *
 * Layout: 8-byte little-endian header length n, n bytes of JSON (an object
 * of name -> {dtype, shape, data_offsets: [begin, end]} plus an optional
 * "__metadata__"), then the data region the offsets are relative to.
 * dw_st_parse checks every entry against the data region (offsets inside
 * it, end - begin == product(shape) * dtype size, no overflow) so tensor
 * pointers handed out later are always in bounds. Dtypes other than F32,
 * BF16 and F16 are kept (with supported = 0) so the model loader can name
 * them when a needed tensor has one.
 */
#ifndef DW_SAFETENSORS_INT_H
#define DW_SAFETENSORS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "dw_model.h"

#define DW_ST_MAX_DIMS  8

typedef struct {
    char        *name;
    char         dtype_name[12];   /* as in the file, e.g. "BF16" */
    int          supported;        /* dtype is F32, BF16 or F16 */
    dw_dtype_t   dtype;            /* when supported */
    uint32_t     ndim;
    uint64_t     shape[DW_ST_MAX_DIMS];
    uint64_t     begin;            /* byte offset in the data region */
    uint64_t     nbytes;
} dw_st_tensor_t;

typedef struct {
    void            *map;          /* mmap of the whole file, or NULL */
    size_t           map_len;
    const uint8_t   *data;         /* data region */
    size_t           data_len;
    dw_st_tensor_t  *t;            /* sorted by name */
    size_t           n;
} dw_st_file_t;

/* Parses a whole file image buf[len] (no copy of the data is made; f->data
 * points into buf). 0, or -1 with err. */
int dw_st_parse(const uint8_t *buf, size_t len, dw_st_file_t *f, char *err,
    size_t errlen);
/* mmaps path read-only and parses it. 0, or -1 with err naming the file. */
int dw_st_open(const char *path, dw_st_file_t *f, char *err, size_t errlen);
void dw_st_close(dw_st_file_t *f);
const dw_st_tensor_t *dw_st_find(const dw_st_file_t *f, const char *name);

size_t dw_dtype_size(dw_dtype_t dt);
const char *dw_dtype_name(dw_dtype_t dt);

#endif
