/*
 * kvrouter: worker role names.
 */
#include <string.h>

#include "kvr_err.h"
#include "kvr_worker.h"

const char *
kvr_role_name(kvr_role_t role)
{
    switch (role) {
    case KVR_ROLE_BOTH:
        return "both";
    case KVR_ROLE_DECODE:
        return "decode";
    case KVR_ROLE_PREFILL:
        return "prefill";
    }
    return "unknown";
}

int
kvr_role_parse(const char *name, kvr_role_t *role)
{
    if (name == NULL || role == NULL) {
        return KVR_ERR_INVAL;
    }
    if (strcmp(name, "both") == 0 || strcmp(name, "aggregated") == 0) {
        *role = KVR_ROLE_BOTH;
    } else if (strcmp(name, "decode") == 0) {
        *role = KVR_ROLE_DECODE;
    } else if (strcmp(name, "prefill") == 0) {
        *role = KVR_ROLE_PREFILL;
    } else {
        return KVR_ERR_INVAL;
    }
    return KVR_OK;
}
