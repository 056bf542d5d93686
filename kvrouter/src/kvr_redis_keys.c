/*
 * kvrouter: Redis schema helpers: key names, the alive value (load
 * figures), strict decimal parsing, the growable buffers the publisher and
 * the reader share, and the argv builder every command goes through
 * (binary safe: explicit lengths everywhere).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvr_err.h"
#include "kvr_redis.h"
#include "kvr_redis_int.h"

int
kvr_redis_ns_valid(const char *ns)
{
    size_t  i, len;

    if (ns == NULL) {
        return KVR_ERR_INVAL;
    }
    len = strlen(ns);
    if (len == 0 || len > KVR_REDIS_NS_MAX) {
        return KVR_ERR_INVAL;
    }
    for (i = 0; i < len; i++) {
        unsigned char  c = (unsigned char) ns[i];

        /* ':' separates key parts; braces are kept free for a cluster
           hash tag in a later schema version */
        if (c <= 0x20 || c >= 0x7f || c == ':' || c == '{' || c == '}') {
            return KVR_ERR_INVAL;
        }
    }
    return KVR_OK;
}

int
kvr_redis_key(char *buf, size_t cap, const char *ns, const char *name,
    int has_id, uint64_t id)
{
    char  num[24];
    int   n;

    if (buf == NULL || kvr_redis_ns_valid(ns) != KVR_OK) {
        return KVR_ERR_INVAL;
    }
    if (has_id) {
        kvr_redis_fmt_u64(num, id);
    } else {
        num[0] = '\0';
    }
    n = snprintf(buf, cap, "dyn:" KVR_REDIS_SCHEMA ":%s:%s%s", ns,
                 name ? name : "", num);
    if (n < 0 || (size_t) n >= cap) {
        return KVR_ERR_NOMEM;
    }
    return n;
}

size_t
kvr_redis_fmt_u64(char *buf, uint64_t v)
{
    char    tmp[24];
    size_t  n = 0, i;

    do {
        tmp[n++] = (char) ('0' + v % 10);
        v /= 10;
    } while (v != 0);

    for (i = 0; i < n; i++) {
        buf[i] = tmp[n - 1 - i];
    }
    buf[n] = '\0';
    return n;
}

int
kvr_redis_parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t  v = 0;
    size_t    i;
    unsigned  d;

    if (s == NULL || len == 0 || len > 20) {
        return KVR_ERR_INVAL;
    }
    if (s[0] == '0' && len > 1) {
        return KVR_ERR_INVAL;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return KVR_ERR_INVAL;
        }
        d = (unsigned) (s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return KVR_ERR_INVAL;
        }
        v = v * 10 + d;
    }
    *out = v;
    return KVR_OK;
}

int
kvr_redis_load_format(const kvr_load_t *load, char *buf, size_t cap)
{
    int  n;

    if (load == NULL || buf == NULL) {
        return KVR_ERR_INVAL;
    }
    n = snprintf(buf, cap, "%llu %llu %llu %llu %llu",
                 (unsigned long long) load->running,
                 (unsigned long long) load->waiting,
                 (unsigned long long) load->active_blocks,
                 (unsigned long long) load->queued_prefill_tokens,
                 (unsigned long long) load->updated_ms);
    if (n < 0 || (size_t) n >= cap) {
        return KVR_ERR_NOMEM;
    }
    return n;
}

int
kvr_redis_load_parse(const char *s, size_t len, kvr_load_t *load)
{
    uint64_t  v[5];
    size_t    pos = 0, start;
    int       i;

    if (s == NULL || load == NULL) {
        return KVR_ERR_INVAL;
    }
    for (i = 0; i < 5; i++) {
        if (i > 0) {
            if (pos >= len || s[pos] != ' ') {
                return KVR_ERR_INVAL;
            }
            pos++;
        }
        start = pos;
        while (pos < len && s[pos] != ' ') {
            pos++;
        }
        if (kvr_redis_parse_u64(s + start, pos - start, &v[i]) != KVR_OK) {
            return KVR_ERR_INVAL;
        }
    }
    if (pos != len || v[0] > UINT32_MAX || v[1] > UINT32_MAX) {
        return KVR_ERR_INVAL;
    }
    load->running = (uint32_t) v[0];
    load->waiting = (uint32_t) v[1];
    load->active_blocks = v[2];
    load->queued_prefill_tokens = v[3];
    load->updated_ms = v[4];
    return KVR_OK;
}

void
kvr_redis_put_le64(uint8_t *p, uint64_t v)
{
    int  i;

    for (i = 0; i < 8; i++) {
        p[i] = (uint8_t) (v >> (8 * i));
    }
}

uint64_t
kvr_redis_get_le64(const uint8_t *p)
{
    uint64_t  v = 0;
    int       i;

    for (i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* ---- growable buffers ---- */

int
kvr_redis_reserve(void **buf, size_t *cap, size_t need, size_t elem)
{
    void    *n;
    size_t   c;

    if (need <= *cap) {
        return KVR_OK;
    }
    c = *cap ? *cap : 64;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem) {
            return KVR_ERR_NOMEM;
        }
        c *= 2;
    }
    n = realloc(*buf, c * elem);
    if (n == NULL) {
        return KVR_ERR_NOMEM;
    }
    *buf = n;
    *cap = c;
    return KVR_OK;
}

/* ---- argv builder ---- */

void
kvr_argv_reset(kvr_argv_t *a)
{
    a->argc = 0;
    a->overflow = 0;
}

/* Commands have fixed shapes below KVR_ARGV_MAX; an overflow is recorded
   and makes kvr_argv_cmd fail rather than send a short command. */
void
kvr_argv_add(kvr_argv_t *a, const void *p, size_t len)
{
    if (a->argc >= KVR_ARGV_MAX) {
        a->overflow = 1;
        return;
    }
    a->argv[a->argc] = len ? (const char *) p : "";
    a->argvlen[a->argc] = len;
    a->argc++;
}

void
kvr_argv_str(kvr_argv_t *a, const char *s)
{
    kvr_argv_add(a, s, strlen(s));
}

void
kvr_argv_u64(kvr_argv_t *a, uint64_t v)
{
    size_t  n;

    if (a->argc >= KVR_ARGV_MAX) {
        a->overflow = 1;
        return;
    }
    n = kvr_redis_fmt_u64(a->num[a->argc], v);
    kvr_argv_add(a, a->num[a->argc], n);
}

int
kvr_argv_cmd(kvr_argv_t *a, kvr_cmd_t *cmd, uint64_t seq)
{
    if (a->overflow) {
        cmd->argc = 0;
        cmd->argv = NULL;
        cmd->argvlen = NULL;
        cmd->seq = 0;
        return KVR_ERR_INVAL;
    }
    cmd->argc = a->argc;
    cmd->argv = a->argv;
    cmd->argvlen = a->argvlen;
    cmd->seq = seq;
    return KVR_OK;
}
