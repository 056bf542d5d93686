/*
 * kvrouter: KV cache events and their binary codec (format in README.md).
 *
 * Workers emit one event per cache change; every event names the worker,
 * its generation (new on every restart) and a per-worker event id that
 * grows by exactly one per event, so readers can detect gaps.
 */
#ifndef KVR_EVENT_H
#define KVR_EVENT_H

#include <stddef.h>
#include <stdint.h>

#define KVR_EVENT_VERSION  1

typedef enum {
    KVR_EV_STORED   = 1,  /* blocks (seq+local) appended after parent */
    KVR_EV_REMOVED  = 2,  /* blocks (seq only) evicted */
    KVR_EV_CLEARED  = 3,  /* all of the worker's blocks dropped */
    KVR_EV_SNAPSHOT = 4   /* worker rewrote its full set in Redis: reload it */
} kvr_event_type_t;

typedef struct {
    uint64_t  seq;
    uint64_t  local;
} kvr_block_t;

typedef struct {
    kvr_event_type_t    type;
    uint64_t            worker_id;
    uint64_t            generation;
    uint64_t            event_id;
    int                 has_parent;  /* STORED: parent given */
    uint64_t            parent;      /* STORED: parent seq hash */
    size_t              nblocks;
    const kvr_block_t  *blocks;      /* REMOVED uses seq only */
} kvr_event_t;

/* Exact encoded size of ev in bytes; 0 if ev cannot be encoded. */
size_t kvr_event_encoded_size(const kvr_event_t *ev);

/* Encodes ev into buf; *len gets the size. KVR_ERR_NOMEM if cap is short. */
int kvr_event_encode(const kvr_event_t *ev, uint8_t *buf, size_t cap,
    size_t *len);

/*
 * Number of blocks an encoded event carries, so callers can size the array
 * for kvr_event_decode; negative KVR_ERR_* on malformed input.
 */
long kvr_event_peek_nblocks(const uint8_t *buf, size_t len);

/*
 * Decodes buf into ev, placing blocks in the caller's array (no malloc).
 * KVR_ERR_NOMEM if the event has more than max_blocks blocks; any malformed
 * input (bad version, type, length, trailing bytes) gives a negative error.
 * On error neither *ev nor blocks is written.
 */
int kvr_event_decode(const uint8_t *buf, size_t len, kvr_event_t *ev,
    kvr_block_t *blocks, size_t max_blocks);

#endif
