/*
 * dynamo-worker: the fast path for a request's token_ids (see
 * dw_proto_int.h). jansson spends ~0.4 us per array element (a json_t per
 * integer), which for long prompts is milliseconds on the I/O thread; this
 * scanner reads digits straight into the id array. It only has to find the
 * member reliably: the body is still parsed in full by jansson (with the
 * array replaced by a placeholder), so syntax errors elsewhere, duplicate
 * keys and every other field keep one implementation.
 */
#include <stdlib.h>
#include <string.h>

#include "dw_proto_int.h"

static size_t
ids_ws(const char *s, size_t i, size_t len)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n'
                       || s[i] == '\r'))
    {
        i++;
    }
    return i;
}

/* s[i] == '"': index after the closing quote, or 0 if unterminated. */
static size_t
ids_skip_string(const char *s, size_t i, size_t len)
{
    for (i++; i < len; i++) {
        if (s[i] == '\\') {
            i++;
        } else if (s[i] == '"') {
            return i + 1;
        }
    }
    return 0;
}

/* Skips one value (not validated: jansson does that); 0 on failure. */
static size_t
ids_skip_value(const char *s, size_t i, size_t len)
{
    size_t  depth;

    if (i >= len) {
        return 0;
    }
    if (s[i] == '"') {
        return ids_skip_string(s, i, len);
    }
    if (s[i] == '{' || s[i] == '[') {
        depth = 0;
        while (i < len) {
            if (s[i] == '"') {
                i = ids_skip_string(s, i, len);
                if (i == 0) {
                    return 0;
                }
                continue;
            }
            if (s[i] == '{' || s[i] == '[') {
                depth++;
            } else if (s[i] == '}' || s[i] == ']') {
                if (--depth == 0) {
                    return i + 1;
                }
            }
            i++;
        }
        return 0;
    }
    while (i < len && s[i] != ',' && s[i] != '}' && s[i] != ']'
           && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
    {
        i++;
    }
    return i;
}

/* s[i] == '[': parses "[id, id, ...]"; 1, 0 (unusual) or -1 (memory). */
static int
ids_array(const char *s, size_t i, size_t len, uint32_t vocab_size,
    size_t *end, uint32_t **ids, uint32_t *n)
{
    uint32_t  *a, *na;
    size_t     cap, cnt;
    uint64_t   v, hi;

    hi = vocab_size > 0 ? (uint64_t) vocab_size - 1 : UINT32_MAX;
    cap = 256;
    cnt = 0;
    a = malloc(cap * sizeof(*a));
    if (a == NULL) {
        return -1;
    }
    i = ids_ws(s, i + 1, len);
    for ( ;; ) {
        if (i >= len || s[i] < '0' || s[i] > '9'
            || (s[i] == '0' && i + 1 < len && s[i + 1] >= '0'
                && s[i + 1] <= '9'))
        {
            break;                       /* not a plain id: slow path */
        }
        v = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            v = v * 10 + (uint64_t) (s[i++] - '0');
            if (v > hi) {
                goto unusual;
            }
        }
        if (cnt == cap) {
            if (cap >= UINT32_MAX / 2) {
                goto unusual;
            }
            na = realloc(a, 2 * cap * sizeof(*a));
            if (na == NULL) {
                free(a);
                return -1;
            }
            a = na;
            cap *= 2;
        }
        a[cnt++] = (uint32_t) v;
        i = ids_ws(s, i, len);
        if (i < len && s[i] == ',') {
            i = ids_ws(s, i + 1, len);
            continue;
        }
        if (i < len && s[i] == ']') {
            *end = i + 1;
            *ids = a;
            *n = (uint32_t) cnt;
            return 1;
        }
        break;
    }

unusual:
    free(a);
    return 0;
}

int
dw_proto_fast_ids(const char *body, size_t len, uint32_t vocab_size,
    size_t *start, size_t *end, uint32_t **ids, uint32_t *n)
{
    size_t  i, k;

    i = ids_ws(body, 0, len);
    if (i >= len || body[i] != '{') {
        return 0;
    }
    i++;
    for ( ;; ) {
        i = ids_ws(body, i, len);
        if (i >= len || body[i] != '"') {
            return 0;
        }
        k = ids_skip_string(body, i, len);
        if (k == 0) {
            return 0;
        }
        /* the raw key: an escaped spelling is left to the slow path */
        if (k - i == 11 && memcmp(body + i, "\"token_ids\"", 11) == 0) {
            i = ids_ws(body, k, len);
            if (i >= len || body[i] != ':') {
                return 0;
            }
            i = ids_ws(body, i + 1, len);
            if (i >= len || body[i] != '[') {
                return 0;
            }
            *start = i;
            return ids_array(body, i, len, vocab_size, end, ids, n);
        }
        i = ids_ws(body, k, len);
        if (i >= len || body[i] != ':') {
            return 0;
        }
        i = ids_skip_value(body, ids_ws(body, i + 1, len), len);
        if (i == 0) {
            return 0;
        }
        i = ids_ws(body, i, len);
        if (i >= len || body[i] != ',') {
            return 0;
        }
        i++;
    }
}
