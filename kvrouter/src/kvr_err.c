/*
 * kvrouter: error code descriptions.
 */
#include "kvr_err.h"

const char *
kvr_strerror(int err)
{
    switch (err) {
    case KVR_OK:           return "ok";
    case KVR_ERR_INVAL:    return "invalid argument or malformed input";
    case KVR_ERR_NOMEM:    return "out of memory or buffer too small";
    case KVR_ERR_TRUNC:    return "input truncated";
    case KVR_ERR_VERSION:  return "unsupported version";
    case KVR_ERR_FULL:     return "table full";
    case KVR_ERR_NOTFOUND: return "not found";
    case KVR_ERR_RESYNC:   return "resync required";
    case KVR_ERR_REDIS:    return "redis error";
    default:               return "unknown error";
    }
}
