/*
 * kvrouter: what the router knows of one worker (registration and load).
 */
#ifndef KVR_WORKER_H
#define KVR_WORKER_H

#include <stdint.h>

#define KVR_ADDR_MAX  64

typedef enum {
    KVR_ROLE_BOTH    = 0,   /* aggregated: prefill and decode */
    KVR_ROLE_DECODE  = 1,
    KVR_ROLE_PREFILL = 2
} kvr_role_t;

typedef struct {
    uint32_t  running;                /* sequences decoding */
    uint32_t  waiting;                /* sequences queued */
    uint64_t  active_blocks;          /* KV blocks in use */
    uint64_t  queued_prefill_tokens;  /* prompt tokens not yet prefilled */
    uint64_t  updated_ms;             /* worker's clock when measured */
} kvr_load_t;

typedef struct {
    uint64_t    worker_id;
    uint64_t    generation;
    kvr_role_t  role;
    uint32_t    block_size;
    uint64_t    capacity_blocks;
    char        addr[KVR_ADDR_MAX];   /* "host:port", NUL-terminated */
    kvr_load_t  load;

    /* index state: filled by kvr_index_get_worker/_workers, else ignored */
    uint64_t    last_event_id;        /* event cursor (in generation) */
    uint64_t    blocks;               /* blocks the index holds for it */
    uint32_t    needs_resync;         /* 1 after a gap until reset */
} kvr_worker_info_t;

/* "both", "decode", "prefill"; "unknown" for other values. */
const char *kvr_role_name(kvr_role_t role);
/*
 * Returns KVR_OK and sets *role, or KVR_ERR_INVAL for an unknown name.
 * Accepts the names above (and "aggregated" for both), exact lowercase.
 */
int kvr_role_parse(const char *name, kvr_role_t *role);

#endif
