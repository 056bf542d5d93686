/*
 * dynamo-worker: the mock backend. No weights and no KV memory: a step
 * sleeps for the time NVIDIA Dynamo's mocker models, and next tokens are
 * deterministic pseudo-random ids.
 *
 * Timing (Dynamo mocker defaults, milliseconds), for t prefill tokens in
 * the step and KV usage u (0..1):
 *
 *   prefill_ms(t) = 4.209989e-7 t^2 + 0.01518344 t + 16.50142
 *   decode_ms(u)  = max(1, -25.74 u^2 + 54.01 u + 5.74)
 *
 * A step costs, as Dynamo's mocker charges a forward pass (its prefill
 * phase sums prefill_ms over the requests' chunks, then its decode phase
 * adds decode_ms), the sum of prefill_ms(n) over its prefill slices of n
 * tokens, plus decode_ms(u) when it has any decode, all divided by
 * opts.speedup. A slice counts as decode when it runs one token after
 * position 0, else as prefill. The sleep is clock_nanosleep to an
 * absolute deadline (no spinning), measured from the step's start, so the
 * time the engine itself spends in the step is part of the modelled time,
 * not added.
 *
 * Tokens: next_ids gives hash(seed, position of the new token, last
 * token) mod vocab, re-hashed while it is an eos id: the mock never ends
 * a request by eos, so max_tokens (or a stop id) decides its length, as
 * benchmarks want. The stream depends only on (seed, position, previous
 * token), so a preempted and recomputed request repeats its output
 * exactly. Sampling settings are not applied (logprobs come back 0).
 * forward, for callers that want logits, fills each row with a one-hot
 * distribution on the same id (logit 0 there, -30 elsewhere).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dw_backend_mock_int.h"

double
dw_backend_mock_prefill_ms(uint32_t tokens)
{
    double  t = (double) tokens;

    return 4.209989e-7 * t * t + 0.01518344 * t + 16.50142;
}

double
dw_backend_mock_decode_ms(double u)
{
    double  d = -25.74 * u * u + 54.01 * u + 5.74;

    return d < 1.0 ? 1.0 : d;
}

double
dw_backend_mock_step_ms(const dw_step_t *step)
{
    uint32_t  i;
    int       decode = 0;
    double    ms = 0.0;

    for (i = 0; i < step->n_seqs; i++) {
        if (step->seqs[i].n_tokens == 1 && step->seqs[i].pos > 0) {
            decode = 1;
        } else if (step->seqs[i].n_tokens > 0) {
            ms += dw_backend_mock_prefill_ms(step->seqs[i].n_tokens);
        }
    }
    if (decode) {
        ms += dw_backend_mock_decode_ms(step->kv_usage);
    }
    return ms;
}

static uint64_t
dw_mock_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static int
dw_mock_is_eos(const dw_backend_t *be, uint32_t id)
{
    uint32_t  i;

    for (i = 0; i < be->cfg.n_eos && i < DW_MAX_EOS; i++) {
        if (be->cfg.eos_ids[i] == id) {
            return 1;
        }
    }
    return 0;
}

static uint32_t
dw_mock_token(const dw_backend_t *be, uint32_t pos, uint32_t prev)
{
    uint64_t  h = be->opts.seed ^ ((uint64_t) pos << 32 | prev);
    uint32_t  id, i;

    for (i = 0; i < 64; i++) {
        h = dw_mock_mix(h + 0x9e3779b97f4a7c15ULL);
        id = (uint32_t) (h % be->cfg.vocab_size);
        if (!dw_mock_is_eos(be, id)) {
            return id;
        }
    }
    return id;   /* a vocabulary of eos ids only */
}

static void
dw_mock_sleep(const dw_backend_t *be, const dw_step_t *step,
    const struct timespec *start)
{
    double           ms;
    struct timespec  dl;
    long long        ns;

    ms = dw_backend_mock_step_ms(step);
    ms /= be->opts.speedup > 0.0 ? be->opts.speedup : 1.0;
    ns = (long long) (ms * 1e6);
    if (ns < 1000) {
        return;
    }
    dl = *start;
    dl.tv_sec += ns / 1000000000LL;
    dl.tv_nsec += ns % 1000000000LL;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL)
           == EINTR)
    {
        /* retry to the same deadline */
    }
}

static int
dw_mock_next_ids(dw_backend_t *be, dw_step_t *step, uint32_t *ids)
{
    struct timespec       start;
    const dw_seq_step_t  *ss;
    uint32_t              i, r = 0;

    clock_gettime(CLOCK_MONOTONIC, &start);
    for (i = 0; i < step->n_seqs; i++) {
        ss = &step->seqs[i];
        if (ss->want_logits && ss->n_tokens > 0) {
            ids[r++] = dw_mock_token(be, ss->pos + ss->n_tokens,
                                     ss->tokens[ss->n_tokens - 1]);
        }
    }
    dw_mock_sleep(be, step, &start);
    return 0;
}

static int
dw_mock_forward(dw_backend_t *be, dw_step_t *step)
{
    struct timespec       start;
    const dw_seq_step_t  *ss;
    uint32_t              i, j, r = 0, id, v = be->cfg.vocab_size;
    float                *row;

    clock_gettime(CLOCK_MONOTONIC, &start);
    for (i = 0; i < step->n_seqs; i++) {
        ss = &step->seqs[i];
        if (!ss->want_logits || ss->n_tokens == 0) {
            continue;
        }
        id = dw_mock_token(be, ss->pos + ss->n_tokens,
                           ss->tokens[ss->n_tokens - 1]);
        row = step->logits + (size_t) r++ * v;
        for (j = 0; j < v; j++) {
            row[j] = -30.0f;
        }
        row[id] = 0.0f;
    }
    dw_mock_sleep(be, step, &start);
    return 0;
}

static size_t
dw_mock_block_bytes(const dw_backend_t *be)
{
    /* what the modelled model's KV block would take in F16 */
    return (size_t) 2 * be->cfg.n_layers * be->cfg.n_kv_heads
           * be->cfg.head_dim * be->opts.block_size * 2;
}

static void
dw_mock_destroy(dw_backend_t *be)
{
    free(be);
}

static const dw_backend_ops_t  dw_mock_ops = {
    "mock",
    dw_mock_forward,
    dw_mock_next_ids,
    dw_mock_block_bytes,
    dw_mock_destroy,
    NULL
};

/* the engine uses next_ids; this table lets tests drive the logits path */
static const dw_backend_ops_t  dw_mock_ops_logits = {
    "mock-logits",
    dw_mock_forward,
    NULL,
    dw_mock_block_bytes,
    dw_mock_destroy,
    NULL
};

static int
dw_mock_create(const dw_backend_ops_t *ops, const dw_config_t *cfg,
    const dw_backend_opts_t *o, dw_backend_t **out, char *err, size_t errlen)
{
    dw_backend_t  *be;

    *out = NULL;
    if (cfg->vocab_size == 0) {
        snprintf(err, errlen, "mock backend: vocab_size is 0");
        return -1;
    }
    if (o->block_size == 0 || o->n_blocks == 0) {
        snprintf(err, errlen, "mock backend: block_size and n_blocks must "
                 "be > 0");
        return -1;
    }
    if (!(o->speedup >= 0.0) || isinf(o->speedup)) {
        snprintf(err, errlen, "mock backend: bad speedup");
        return -1;
    }
    be = calloc(1, sizeof(*be));
    if (be == NULL) {
        snprintf(err, errlen, "mock backend: out of memory");
        return -1;
    }
    be->ops = ops;
    be->cfg = *cfg;
    be->opts = *o;
    if (be->opts.speedup == 0.0) {
        be->opts.speedup = 1.0;
    }
    *out = be;
    return 0;
}

int
dw_backend_mock_create(const dw_config_t *cfg, const dw_backend_opts_t *o,
    dw_backend_t **out, char *err, size_t errlen)
{
    return dw_mock_create(&dw_mock_ops, cfg, o, out, err, errlen);
}

int
dw_backend_mock_create_logits(const dw_config_t *cfg,
    const dw_backend_opts_t *o, dw_backend_t **out, char *err, size_t errlen)
{
    return dw_mock_create(&dw_mock_ops_logits, cfg, o, out, err, errlen);
}
