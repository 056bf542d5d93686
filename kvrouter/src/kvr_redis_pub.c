/*
 * kvrouter: the worker-side publisher. Builds the commands that keep Redis
 * equal to the worker's cache; never does I/O (see kvr_redis_block.c for
 * the blocking adapter, the worker uses hiredis's async API).
 *
 * Invariant kept with the publisher script: Redis holds, for this worker,
 * the state after some prefix 1..k of its events, with cursor k. An event
 * is only accepted when the cursor is exactly its predecessor and the
 * generation matches, so after any loss (Redis restart, failed command,
 * dropped connection) Redis refuses further events instead of holding a
 * set with holes, and the publisher re-registers from its mirror.
 *
 * Registration state: UNREG (nothing accepted in Redis can be trusted to
 * be current), REG_SENT (a register is on its way; commands built after it
 * are ordered behind it on the connection), REG_OK.
 */
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <sha1.h>  /* libmd */

#include "kvr_err.h"
#include "kvr_event.h"
#include "kvr_redis.h"
#include "kvr_redis_int.h"

typedef enum {
    PUB_UNREG = 0,
    PUB_REG_SENT,
    PUB_REG_OK
} pub_state_t;

struct kvr_pub_s {
    uint64_t       worker_id;
    uint64_t       generation;
    kvr_role_t     role;
    char           addr[KVR_ADDR_MAX];
    uint32_t       block_size;
    uint64_t       capacity;
    uint32_t       alive_ttl_ms;
    uint32_t       retain_ms;
    uint32_t       stream_maxlen;

    char           prefix[KVR_REDIS_KEY_MAX];
    char           k_w[KVR_REDIS_KEY_MAX];
    char           k_blocks[KVR_REDIS_KEY_MAX];
    char           k_alive[KVR_REDIS_KEY_MAX];
    char           k_workers[KVR_REDIS_KEY_MAX];
    char           k_evseq[KVR_REDIS_KEY_MAX];
    char           k_events[KVR_REDIS_KEY_MAX];
    char           k_epoch[KVR_REDIS_KEY_MAX];
    char           sha[SHA1_DIGEST_STRING_LENGTH];

    kvr_u64set_t   mirror;
    uint64_t       last_event_id;
    pub_state_t    state;
    uint64_t       cmd_seq;     /* seq of the last command built */
    uint64_t       reg_seq;     /* seq of the latest register built */

    kvr_argv_t     av;
    uint8_t       *evbuf;       /* encoded event */
    size_t         evcap;
    uint8_t       *packed;      /* 8-byte LE seq hashes */
    size_t         packcap;
    kvr_block_t   *blk;         /* REMOVED: seq -> kvr_block_t */
    size_t         blkcap;
    char           alive[128];  /* current load, alive:<id> format */
    char           err[128];
};

void
kvr_pub_config_defaults(kvr_pub_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->alive_ttl_ms = KVR_REDIS_ALIVE_TTL_MS;
    cfg->retain_ms = KVR_REDIS_RETAIN_MS;
    cfg->stream_maxlen = KVR_REDIS_STREAM_MAXLEN;
}

static int
make_key(char *buf, const char *ns, const char *name, int has_id,
    uint64_t id)
{
    return kvr_redis_key(buf, KVR_REDIS_KEY_MAX, ns, name, has_id, id) < 0
           ? KVR_ERR_INVAL : KVR_OK;
}

kvr_pub_t *
kvr_pub_create(const kvr_pub_config_t *cfg)
{
    kvr_pub_t   *p;
    const char  *addr;
    kvr_load_t   zero;

    if (cfg == NULL || kvr_redis_ns_valid(cfg->ns) != KVR_OK
        || cfg->alive_ttl_ms == 0 || (unsigned) cfg->role > KVR_ROLE_PREFILL)
    {
        return NULL;
    }
    addr = cfg->addr ? cfg->addr : "";
    if (strlen(addr) >= KVR_ADDR_MAX) {
        return NULL;
    }

    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->worker_id = cfg->worker_id;
    p->generation = cfg->generation;
    p->role = cfg->role;
    memcpy(p->addr, addr, strlen(addr) + 1);
    p->block_size = cfg->block_size;
    p->capacity = cfg->capacity_blocks;
    p->alive_ttl_ms = cfg->alive_ttl_ms;
    p->retain_ms = cfg->retain_ms;
    p->stream_maxlen = cfg->stream_maxlen;

    if (make_key(p->prefix, cfg->ns, NULL, 0, 0) != KVR_OK
        || make_key(p->k_w, cfg->ns, "w:", 1, p->worker_id) != KVR_OK
        || make_key(p->k_blocks, cfg->ns, "blocks:", 1, p->worker_id)
           != KVR_OK
        || make_key(p->k_alive, cfg->ns, "alive:", 1, p->worker_id)
           != KVR_OK
        || make_key(p->k_workers, cfg->ns, "workers", 0, 0) != KVR_OK
        || make_key(p->k_evseq, cfg->ns, "evseq", 0, 0) != KVR_OK
        || make_key(p->k_events, cfg->ns, "events", 0, 0) != KVR_OK
        || make_key(p->k_epoch, cfg->ns, "epoch", 0, 0) != KVR_OK)
    {
        free(p);
        return NULL;
    }

    /* EVALSHA names a script by its SHA1, as Redis computes it */
    SHA1Data((const uint8_t *) kvr_redis_lua_pub, strlen(kvr_redis_lua_pub),
             p->sha);

    /* the capacity is a hint: the mirror grows past it if it must */
    if (kvr_u64set_init(&p->mirror, p->capacity < (1u << 24)
                        ? (size_t) p->capacity : (size_t) 1 << 24) != KVR_OK)
    {
        free(p);
        return NULL;
    }

    memset(&zero, 0, sizeof(zero));
    kvr_redis_load_format(&zero, p->alive, sizeof(p->alive));
    return p;
}

void
kvr_pub_destroy(kvr_pub_t *p)
{
    if (p == NULL) {
        return;
    }
    kvr_u64set_free(&p->mirror);
    free(p->evbuf);
    free(p->packed);
    free(p->blk);
    free(p);
}

static int
encode_event(kvr_pub_t *p, const kvr_event_t *ev, size_t *len)
{
    size_t  need = kvr_event_encoded_size(ev);

    if (need == 0) {
        return KVR_ERR_INVAL;
    }
    if (kvr_redis_reserve((void **) &p->evbuf, &p->evcap, need, 1)
        != KVR_OK)
    {
        return KVR_ERR_NOMEM;
    }
    return kvr_event_encode(ev, p->evbuf, p->evcap, len);
}

/*
 * Fills the argv for one publisher-script call. Arguments that a mode does
 * not use are sent empty; the layout is in kvr_redis_lua.c.
 */
static int
build(kvr_pub_t *p, const char *mode, uint64_t event_id, int has_prev,
    size_t evlen, size_t packlen, kvr_cmd_t *cmd)
{
    kvr_argv_t  *a = &p->av;
    int          reg = strcmp(mode, "reg") == 0;

    kvr_argv_reset(a);
    if (reg) {
        /* EVAL loads the script into Redis's cache for the EVALSHAs */
        kvr_argv_str(a, "EVAL");
        kvr_argv_str(a, kvr_redis_lua_pub);
    } else {
        kvr_argv_str(a, "EVALSHA");
        kvr_argv_str(a, p->sha);
    }
    kvr_argv_str(a, "7");
    kvr_argv_str(a, p->k_w);
    kvr_argv_str(a, p->k_blocks);
    kvr_argv_str(a, p->k_alive);
    kvr_argv_str(a, p->k_workers);
    kvr_argv_str(a, p->k_evseq);
    kvr_argv_str(a, p->k_events);
    kvr_argv_str(a, p->k_epoch);

    kvr_argv_str(a, mode);                         /* 1 */
    kvr_argv_u64(a, p->worker_id);                 /* 2 */
    kvr_argv_u64(a, p->generation);                /* 3 */
    kvr_argv_u64(a, event_id);                     /* 4 */
    if (has_prev) {                                /* 5 */
        kvr_argv_u64(a, event_id - 1);
    } else {
        kvr_argv_add(a, "", 0);
    }
    kvr_argv_add(a, p->evbuf, evlen);              /* 6 */
    kvr_argv_add(a, p->packed, packlen);           /* 7 */
    kvr_argv_u64(a, p->stream_maxlen);             /* 8 */
    kvr_argv_u64(a, p->retain_ms);                 /* 9 */
    kvr_argv_u64(a, p->alive_ttl_ms);              /* 10 */
    kvr_argv_str(a, p->alive);                     /* 11 */
    if (reg) {
        kvr_argv_str(a, kvr_role_name(p->role));   /* 12 */
        kvr_argv_str(a, p->addr);                  /* 13 */
        kvr_argv_u64(a, p->block_size);            /* 14 */
        kvr_argv_u64(a, p->capacity);              /* 15 */
        kvr_argv_str(a, p->prefix);                /* 16 */
    }

    if (kvr_argv_cmd(a, cmd, p->cmd_seq + 1) != KVR_OK) {
        return KVR_ERR_INVAL;
    }
    p->cmd_seq++;
    if (reg) {
        p->reg_seq = p->cmd_seq;
    }
    return KVR_OK;
}

static void
no_cmd(kvr_cmd_t *cmd)
{
    cmd->argc = 0;
    cmd->argv = NULL;
    cmd->argvlen = NULL;
    cmd->seq = 0;
}

int
kvr_pub_register_cmd(kvr_pub_t *p, kvr_cmd_t *cmd)
{
    kvr_event_t  ev;
    size_t       pos = 0, n = 0, evlen;
    uint64_t     v;
    int          rc;

    if (p == NULL || cmd == NULL) {
        return KVR_ERR_INVAL;
    }
    no_cmd(cmd);

    if (p->mirror.count > SIZE_MAX / 8
        || kvr_redis_reserve((void **) &p->packed, &p->packcap,
                             p->mirror.count * 8 + 1, 1) != KVR_OK)
    {
        return KVR_ERR_NOMEM;
    }
    while (kvr_u64set_next(&p->mirror, &pos, &v)) {
        kvr_redis_put_le64(p->packed + 8 * n++, v);
    }

    memset(&ev, 0, sizeof(ev));
    ev.type = KVR_EV_SNAPSHOT;
    ev.worker_id = p->worker_id;
    ev.generation = p->generation;
    ev.event_id = p->last_event_id;
    rc = encode_event(p, &ev, &evlen);
    if (rc != KVR_OK) {
        return rc;
    }

    rc = build(p, "reg", p->last_event_id, 0, evlen, n * 8, cmd);
    if (rc != KVR_OK) {
        return rc;
    }
    p->state = PUB_REG_SENT;
    return KVR_OK;
}

/* Encodes the event and the packed hashes, then builds the command. */
static int
event_cmd(kvr_pub_t *p, kvr_event_t *ev, const char *mode, kvr_cmd_t *cmd)
{
    size_t  evlen, i;
    int     rc;

    if (p->state == PUB_UNREG) {
        return KVR_ERR_RESYNC;          /* the next register carries it */
    }
    if (ev->nblocks > SIZE_MAX / 8
        || kvr_redis_reserve((void **) &p->packed, &p->packcap,
                             ev->nblocks * 8 + 1, 1) != KVR_OK)
    {
        /* the mirror moved on without Redis: only a register can fix it */
        p->state = PUB_UNREG;
        return KVR_ERR_NOMEM;
    }
    for (i = 0; i < ev->nblocks; i++) {
        kvr_redis_put_le64(p->packed + 8 * i, ev->blocks[i].seq);
    }
    rc = encode_event(p, ev, &evlen);
    if (rc != KVR_OK) {
        p->state = PUB_UNREG;
        return rc;
    }
    rc = build(p, mode, ev->event_id, 1, evlen, ev->nblocks * 8, cmd);
    if (rc != KVR_OK) {
        p->state = PUB_UNREG;
    }
    return rc;
}

static void
event_init(kvr_pub_t *p, kvr_event_t *ev, kvr_event_type_t type)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = type;
    ev->worker_id = p->worker_id;
    ev->generation = p->generation;
    ev->event_id = ++p->last_event_id;
}

int
kvr_pub_stored_cmd(kvr_pub_t *p, int has_parent, uint64_t parent,
    const kvr_block_t *blocks, size_t n, kvr_cmd_t *cmd)
{
    kvr_event_t  ev;
    size_t       i;

    if (p == NULL || cmd == NULL || (n != 0 && blocks == NULL)) {
        return KVR_ERR_INVAL;
    }
    no_cmd(cmd);

    for (i = 0; i < n; i++) {
        if (kvr_u64set_add(&p->mirror, blocks[i].seq) < 0) {
            /* the event id is not consumed: nothing was published, and the
               blocks added so far are harmless extra (Redis re-registers
               from the mirror) */
            p->state = PUB_UNREG;
            return KVR_ERR_NOMEM;
        }
    }

    event_init(p, &ev, KVR_EV_STORED);
    ev.has_parent = has_parent != 0;
    ev.parent = has_parent ? parent : 0;
    ev.nblocks = n;
    ev.blocks = blocks;
    return event_cmd(p, &ev, "add", cmd);
}

int
kvr_pub_removed_cmd(kvr_pub_t *p, const uint64_t *seq, size_t n,
    kvr_cmd_t *cmd)
{
    kvr_event_t  ev;
    size_t       i;

    if (p == NULL || cmd == NULL || (n != 0 && seq == NULL)) {
        return KVR_ERR_INVAL;
    }
    no_cmd(cmd);

    for (i = 0; i < n; i++) {
        kvr_u64set_del(&p->mirror, seq[i]);
    }

    event_init(p, &ev, KVR_EV_REMOVED);
    if (kvr_redis_reserve((void **) &p->blk, &p->blkcap, n + 1,
                          sizeof(kvr_block_t)) != KVR_OK)
    {
        p->state = PUB_UNREG;
        return KVR_ERR_NOMEM;
    }
    for (i = 0; i < n; i++) {
        p->blk[i].seq = seq[i];
        p->blk[i].local = 0;
    }
    ev.nblocks = n;
    ev.blocks = p->blk;
    return event_cmd(p, &ev, "rem", cmd);
}

int
kvr_pub_cleared_cmd(kvr_pub_t *p, kvr_cmd_t *cmd)
{
    kvr_event_t  ev;

    if (p == NULL || cmd == NULL) {
        return KVR_ERR_INVAL;
    }
    no_cmd(cmd);
    kvr_u64set_clear(&p->mirror);
    event_init(p, &ev, KVR_EV_CLEARED);
    return event_cmd(p, &ev, "clr", cmd);
}

int
kvr_pub_heartbeat_cmd(kvr_pub_t *p, const kvr_load_t *load, kvr_cmd_t *cmd)
{
    if (p == NULL || cmd == NULL || load == NULL) {
        return KVR_ERR_INVAL;
    }
    no_cmd(cmd);
    /* kept for the next register even when nothing is sent now */
    if (kvr_redis_load_format(load, p->alive, sizeof(p->alive)) < 0) {
        return KVR_ERR_INVAL;
    }
    if (p->state == PUB_UNREG) {
        return KVR_ERR_RESYNC;
    }
    return build(p, "hb", 0, 0, 0, 0, cmd);
}

int
kvr_pub_unregister_cmd(kvr_pub_t *p, kvr_cmd_t *cmd)
{
    kvr_event_t  ev;
    size_t       evlen;
    int          rc;

    if (p == NULL || cmd == NULL) {
        return KVR_ERR_INVAL;
    }
    no_cmd(cmd);
    event_init(p, &ev, KVR_EV_CLEARED);
    rc = encode_event(p, &ev, &evlen);
    if (rc != KVR_OK) {
        return rc;
    }
    /* sent in any state: the script only checks the generation */
    rc = build(p, "unreg", ev.event_id, 1, evlen, 0, cmd);
    p->state = PUB_UNREG;
    p->reg_seq = p->cmd_seq;     /* replies to older commands are moot */
    return rc;
}

int
kvr_pub_on_reply(kvr_pub_t *p, uint64_t seq, const redisReply *r)
{
    const char  *why;
    size_t       len;

    if (p == NULL) {
        return KVR_ERR_INVAL;
    }
    if (r == NULL) {
        kvr_pub_on_disconnect(p);
        return KVR_ERR_REDIS;
    }

    if (r->type == REDIS_REPLY_INTEGER) {
        if (seq == p->reg_seq && p->state == PUB_REG_SENT) {
            p->state = PUB_REG_OK;
        }
        return KVR_OK;
    }

    if (r->type == REDIS_REPLY_ERROR && r->str != NULL) {
        why = r->str;
        len = r->len;
    } else {
        why = "unexpected reply type";
        len = strlen(why);
    }
    if (len >= sizeof(p->err)) {
        len = sizeof(p->err) - 1;
    }
    memcpy(p->err, why, len);
    p->err[len] = '\0';

    /* an older command's failure is repaired by the newer register */
    if (seq >= p->reg_seq && p->state != PUB_UNREG) {
        p->state = PUB_UNREG;
    }
    return KVR_ERR_REDIS;
}

void
kvr_pub_on_disconnect(kvr_pub_t *p)
{
    if (p != NULL) {
        p->state = PUB_UNREG;
        p->reg_seq = p->cmd_seq + 1;    /* nothing in flight will answer */
    }
}

int
kvr_pub_needs_register(const kvr_pub_t *p)
{
    return p->state == PUB_UNREG;
}

uint64_t
kvr_pub_last_event_id(const kvr_pub_t *p)
{
    return p->last_event_id;
}

size_t
kvr_pub_mirror_count(const kvr_pub_t *p)
{
    return p->mirror.count;
}

int
kvr_pub_mirror_has(const kvr_pub_t *p, uint64_t seq)
{
    return kvr_u64set_has(&p->mirror, seq);
}

int
kvr_pub_mirror_next(const kvr_pub_t *p, size_t *pos, uint64_t *seq)
{
    return kvr_u64set_next(&p->mirror, pos, seq);
}

const char *
kvr_pub_last_error(const kvr_pub_t *p)
{
    return p->err;
}
