/*
 * kvrouter: error codes shared by every kvrouter function.
 * Functions return KVR_OK (0) or a negative KVR_ERR_* value.
 */
#ifndef KVR_ERR_H
#define KVR_ERR_H

#define KVR_OK            0
#define KVR_ERR_INVAL    -1   /* bad argument or malformed input */
#define KVR_ERR_NOMEM    -2   /* caller-supplied region or malloc too small */
#define KVR_ERR_TRUNC    -3   /* input ends early */
#define KVR_ERR_VERSION  -4   /* unknown codec/schema version */
#define KVR_ERR_FULL     -5   /* fixed-size table is full */
#define KVR_ERR_NOTFOUND -6   /* no such worker/key */
#define KVR_ERR_RESYNC   -7   /* gap or new generation: caller must resync */
#define KVR_ERR_REDIS    -8   /* Redis error reply or connection failure */

const char *kvr_strerror(int err);

#endif
