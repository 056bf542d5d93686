/*
 * kvrouter: internals shared by the kvr_redis_*.c files (not installed).
 */
#ifndef KVR_REDIS_INT_H
#define KVR_REDIS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "kvr_redis.h"

/* ---- argv builder (kvr_redis_keys.c) ---- */

#define KVR_ARGV_MAX  32

typedef struct {
    int          argc;
    int          overflow;                /* an argument did not fit */
    const char  *argv[KVR_ARGV_MAX];
    size_t       argvlen[KVR_ARGV_MAX];
    char         num[KVR_ARGV_MAX][24];   /* storage for decimal args */
} kvr_argv_t;

void kvr_argv_reset(kvr_argv_t *a);
void kvr_argv_add(kvr_argv_t *a, const void *p, size_t len);
void kvr_argv_str(kvr_argv_t *a, const char *s);
void kvr_argv_u64(kvr_argv_t *a, uint64_t v);
/* KVR_ERR_INVAL (and an empty cmd) if an argument was dropped. */
int kvr_argv_cmd(kvr_argv_t *a, kvr_cmd_t *cmd, uint64_t seq);

/* Decimal of v into buf (>= 21 bytes), NUL-terminated; returns length. */
size_t kvr_redis_fmt_u64(char *buf, uint64_t v);

/* Little-endian 8-byte set members. */
void kvr_redis_put_le64(uint8_t *p, uint64_t v);
uint64_t kvr_redis_get_le64(const uint8_t *p);

/* Grows *buf (elem bytes each, *cap of them; 64 at first, then doubling)
   to hold need; KVR_OK, or KVR_ERR_NOMEM with *buf and *cap unchanged. */
int kvr_redis_reserve(void **buf, size_t *cap, size_t need, size_t elem);

/* ---- Lua scripts (kvr_redis_lua.c) ---- */

extern const char  kvr_redis_lua_pub[];       /* publisher, all modes */
extern const char  kvr_redis_lua_registry[];  /* reader: ids + alive */
extern const char  kvr_redis_lua_snapshot[];  /* reader: one worker */

/* ---- u64 set, the publisher's mirror (kvr_redis_set.c) ---- */

typedef struct {
    uint64_t  *slots;      /* 0 marks an empty slot */
    size_t     mask;       /* slots - 1, slots a power of two */
    size_t     count;      /* entries, zero included */
    int        has_zero;   /* the value 0 is stored out of band */
} kvr_u64set_t;

int kvr_u64set_init(kvr_u64set_t *s, size_t expected);
void kvr_u64set_free(kvr_u64set_t *s);
void kvr_u64set_clear(kvr_u64set_t *s);
/* 1 added, 0 already present, KVR_ERR_NOMEM. */
int kvr_u64set_add(kvr_u64set_t *s, uint64_t v);
/* 1 removed, 0 absent. */
int kvr_u64set_del(kvr_u64set_t *s, uint64_t v);
int kvr_u64set_has(const kvr_u64set_t *s, uint64_t v);
/* Iterates: *pos starts at 0; 1 and *v while there are more, else 0. */
int kvr_u64set_next(const kvr_u64set_t *s, size_t *pos, uint64_t *v);

/* ---- sync reader internals for the blocking driver ---- */

/* Stream reads that came back empty so far (kvr_sync_run_once stops on
   one). */
uint64_t kvr__sync_empty_reads(const kvr_sync_t *s);

#endif
