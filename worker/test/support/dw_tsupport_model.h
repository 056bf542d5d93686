/*
 * Test support for the model and cpu backend tests: a tiny greedy loop
 * straight over a backend, and the stories260K reference.
 */
#ifndef DW_TSUPPORT_MODEL_H
#define DW_TSUPPORT_MODEL_H

#include <stdint.h>

#include "dw_backend.h"

#define DW_TS_STORIES  "models/stories260K"

extern const uint32_t  dw_ts_stories_prompt[5];
extern const uint32_t  dw_ts_stories_greedy[25];

/*
 * Prefills prompt[n_prompt] in chunks of chunk[0], chunk[1], ... (n_chunks
 * sizes summing to n_prompt), then decodes one token at a time, argmax,
 * until n_out ids are in out. The sequence's block table is blocks[n_blocks]
 * (must cover n_prompt + n_out). 0 or -1 (a forward failed).
 */
int dw_ts_greedy(dw_backend_t *be, const uint32_t *prompt, uint32_t n_prompt,
    const uint32_t *chunk, uint32_t n_chunks, const uint32_t *blocks,
    uint32_t n_blocks, uint32_t *out, uint32_t n_out);

uint32_t dw_ts_argmax(const float *v, uint32_t n);

/* splitmix64 stream for random test data */
uint64_t dw_ts_rand(uint64_t *s);
/* uniform in [-1, 1) */
float dw_ts_randf(uint64_t *s);

#endif
