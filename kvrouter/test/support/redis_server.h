/*
 * Test support: a throwaway redis-server on 127.0.0.1.
 *
 * Started with no persistence (--save '' --appendonly no) in a private
 * temporary directory, on a free port (bind port 0, release, retry on a
 * collision). Never outlives the test: stopped by redis_server_stop, by an
 * atexit handler for anything still running, and (Linux) by the kernel via
 * PR_SET_PDEATHSIG if the test process dies.
 */
#ifndef TEST_REDIS_SERVER_H
#define TEST_REDIS_SERVER_H

#include <sys/types.h>

#include <hiredis/hiredis.h>

typedef struct {
    int    port;
    pid_t  pid;           /* 0 when not running */
    char   dir[256];      /* working directory, removed by stop */
} redis_server_t;

/* 0 when redis-server answers PING on r->port; -1 on failure. */
int redis_server_start(redis_server_t *r);

/* Stops it (SIGTERM, then SIGKILL) and waits; removes its directory.
   Safe to call twice. */
void redis_server_stop(redis_server_t *r);

/* Starts it again on the same port (after redis_server_stop). 0 or -1. */
int redis_server_restart(redis_server_t *r);

/* A blocking connection with a 2 s timeout; NULL on failure. */
redisContext *redis_server_connect(const redis_server_t *r);

/* 1 if redis-server is installed. */
int redis_server_available(void);

#endif
