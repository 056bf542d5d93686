/*
 * Test support: a throwaway redis-server (see redis_server.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "redis_server.h"

#define REDIS_BIN        "redis-server"
#define START_TRIES      10
#define READY_WAIT_MS    5000
#define STOP_WAIT_MS     3000
#define MAX_SERVERS      16

static void
sleep_ms(long ms)
{
    struct timespec  ts = { ms / 1000, (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/*
 * Every server still running, with the paths to clean, so that atexit and
 * fatal signals can stop them. The signal path uses only async-signal-safe
 * calls (kill, waitpid, unlink, rmdir) on paths computed in advance.
 */
typedef struct {
    pid_t  pid;
    char   dir[256];
    char   log[300];
    char   dump[300];
} live_t;

static live_t  live[MAX_SERVERS];
static int     hooks_set;

static void
clean_slot(live_t *l)
{
    int  st;

    if (l->pid > 0) {
        kill(l->pid, SIGKILL);
        waitpid(l->pid, &st, 0);
        l->pid = 0;
    }
    if (l->dir[0] != '\0') {
        unlink(l->log);
        unlink(l->dump);
        rmdir(l->dir);
        l->dir[0] = '\0';
    }
}

static void
kill_all(void)
{
    int  i;

    for (i = 0; i < MAX_SERVERS; i++) {
        clean_slot(&live[i]);
    }
}

static void
on_signal(int sig)
{
    kill_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void
set_hooks(void)
{
    static const int  sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGABRT };
    struct sigaction  sa, old;
    size_t            i;

    if (hooks_set) {
        return;
    }
    hooks_set = 1;
    atexit(kill_all);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        /* leave handlers that someone else (cmocka, the test) set alone */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
            sigaction(sigs[i], &sa, NULL);
        }
    }
}

/* Records (add) or forgets (!add) the server r runs now. */
static void
track(const redis_server_t *r, int add)
{
    int  i;

    set_hooks();
    for (i = 0; i < MAX_SERVERS; i++) {
        if (add && live[i].pid == 0 && live[i].dir[0] == '\0') {
            live[i].pid = r->pid;
            snprintf(live[i].dir, sizeof(live[i].dir), "%s", r->dir);
            snprintf(live[i].log, sizeof(live[i].log), "%s/redis.log", r->dir);
            snprintf(live[i].dump, sizeof(live[i].dump), "%s/dump.rdb",
                     r->dir);
            return;
        }
        if (!add && live[i].pid == r->pid) {
            live[i].pid = 0;
            live[i].dir[0] = '\0';
            return;
        }
    }
}

int
redis_server_available(void)
{
    return system(REDIS_BIN " --version >/dev/null 2>&1") == 0;
}

/* A port the kernel just handed out (released at once: racy, so the
   caller retries on a collision). */
static int
free_port(void)
{
    struct sockaddr_in  sa;
    socklen_t           len = sizeof(sa);
    int                 fd, port = -1;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0
        && getsockname(fd, (struct sockaddr *) &sa, &len) == 0)
    {
        port = ntohs(sa.sin_port);
    }
    close(fd);
    return port;
}

static pid_t
spawn(const redis_server_t *r)
{
    char   port[16], log[300];
    pid_t  pid;
    int    fd;

    snprintf(port, sizeof(port), "%d", r->port);
    snprintf(log, sizeof(log), "%s/redis.log", r->dir);

    pid = fork();
    if (pid != 0) {
        return pid;                     /* parent, or -1 */
    }

#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);   /* dies with the test */
#endif
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2) {
            close(fd);
        }
    }
    execlp(REDIS_BIN, REDIS_BIN,
           "--port", port, "--bind", "127.0.0.1",
           "--save", "", "--appendonly", "no",
           "--dir", r->dir, "--logfile", log,
           "--daemonize", "no", "--databases", "1",
           (char *) NULL);
    _exit(127);
}

/* 1 once our process answers PING, 0 if it exited, -1 on timeout. */
static int
wait_ready(const redis_server_t *r)
{
    struct timeval   tv = { 0, 200000 };
    redisContext    *c;
    redisReply      *rep;
    char             want[48];
    int              waited, st, ok;

    snprintf(want, sizeof(want), "process_id:%ld", (long) r->pid);

    for (waited = 0; waited < READY_WAIT_MS; waited += 20) {
        if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
            return 0;
        }
        c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
        if (c != NULL && c->err == 0) {
            /* the port could belong to someone else: check the pid */
            rep = redisCommand(c, "INFO server");
            ok = rep != NULL && rep->type == REDIS_REPLY_STRING
                 && strstr(rep->str, want) != NULL;
            if (rep) {
                freeReplyObject(rep);
            }
            if (ok) {
                rep = redisCommand(c, "PING");
                ok = rep != NULL && rep->type == REDIS_REPLY_STATUS
                     && strcmp(rep->str, "PONG") == 0;
                if (rep) {
                    freeReplyObject(rep);
                }
            }
            redisFree(c);
            if (ok) {
                return 1;
            }
        } else if (c != NULL) {
            redisFree(c);
        }
        sleep_ms(20);
    }
    return -1;
}

/* Starts on r->port; 0 or -1 (the child is reaped on failure). */
static int
start_on_port(redis_server_t *r)
{
    int  rc, st;

    r->pid = spawn(r);
    if (r->pid < 0) {
        r->pid = 0;
        return -1;
    }
    track(r, 1);
    rc = wait_ready(r);
    if (rc == 1) {
        return 0;
    }
    if (rc < 0) {
        kill(r->pid, SIGKILL);
    }
    waitpid(r->pid, &st, 0);
    track(r, 0);
    r->pid = 0;
    return -1;
}

int
redis_server_start(redis_server_t *r)
{
    int  i;

    memset(r, 0, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "%s/kvr-redis-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(r->dir) == NULL) {
        r->dir[0] = '\0';
        return -1;
    }
    for (i = 0; i < START_TRIES; i++) {
        r->port = free_port();
        if (r->port > 0 && start_on_port(r) == 0) {
            return 0;
        }
    }
    redis_server_stop(r);
    return -1;
}

int
redis_server_restart(redis_server_t *r)
{
    int  i;

    if (r->pid != 0 || r->port <= 0) {
        return -1;
    }
    if (r->dir[0] == '\0') {
        snprintf(r->dir, sizeof(r->dir), "%s/kvr-redis-XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (mkdtemp(r->dir) == NULL) {
            r->dir[0] = '\0';
            return -1;
        }
    }
    /* the port may linger briefly (or be taken): retry a few times */
    for (i = 0; i < START_TRIES; i++) {
        if (start_on_port(r) == 0) {
            return 0;
        }
        sleep_ms(100);
    }
    return -1;
}

static void
remove_dir(redis_server_t *r)
{
    char  path[300];

    if (r->dir[0] == '\0') {
        return;
    }
    /* redis.log, plus anything redis may have written despite --save '' */
    snprintf(path, sizeof(path), "%s/redis.log", r->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/dump.rdb", r->dir);
    unlink(path);
    rmdir(r->dir);
    r->dir[0] = '\0';
}

void
redis_server_stop(redis_server_t *r)
{
    int  waited, st;

    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        for (waited = 0; waited < STOP_WAIT_MS; waited += 10) {
            if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
                break;
            }
            sleep_ms(10);
        }
        if (waited >= STOP_WAIT_MS) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, &st, 0);
        }
        track(r, 0);
        r->pid = 0;
    }
    remove_dir(r);
}

redisContext *
redis_server_connect(const redis_server_t *r)
{
    struct timeval   tv = { 2, 0 };
    redisContext    *c;

    c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    if (c == NULL) {
        return NULL;
    }
    if (c->err) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}
