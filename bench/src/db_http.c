/* The libcurl multi transport on epoll (db_http.h). */

#define _GNU_SOURCE
#include "db_http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

struct db_xfer_s {
    db_http_t          *h;
    CURL               *easy;
    void               *ctx;
    db_xfer_t          *prev, *next;   /* running list, or the free pool */
    char                errbuf[CURL_ERROR_SIZE];
};

struct db_http_s {
    CURLM              *multi;
    int                 epfd;
    struct curl_slist  *hdrs;
    char               *url;
    long                timeout_ms;
    double              timer_at;      /* curl's timer; < 0 none */
    db_http_data_fn     data_fn;
    db_http_done_fn     done_fn;
    db_xfer_t          *running;
    size_t              n_running;
    db_xfer_t          *pool;          /* finished handles, for reuse */
    int                 perform;
    double              woke;          /* the loop's last wake-up */
    db_http_stats_t    *st;
};

double db_http_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

long db_http_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? -1 : (long)rl.rlim_cur;
}

/* curl tells which socket wants which events. */
static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp,
    void *sockp)
{
    db_http_t *h = userp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, s, NULL);  /* may be closed */
        curl_multi_assign(h->multi, s, NULL);
        return 0;
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.data.fd = s;
    if (what & CURL_POLL_IN)
        ev.events |= EPOLLIN;
    if (what & CURL_POLL_OUT)
        ev.events |= EPOLLOUT;
    if (sockp == NULL) {
        if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, s, &ev) != 0
            && errno == EEXIST)
            epoll_ctl(h->epfd, EPOLL_CTL_MOD, s, &ev);
        curl_multi_assign(h->multi, s, h);
    } else if (epoll_ctl(h->epfd, EPOLL_CTL_MOD, s, &ev) != 0
               && errno == ENOENT) {
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, s, &ev);
    }
    return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    db_http_t *h = userp;
    h->timer_at = timeout_ms < 0 ? -1 : db_http_now() + timeout_ms * 1e-3;
    return 0;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
    double now = db_http_now();     /* one timestamp per piece received */
    db_xfer_t *x = userp;
    db_http_stats_t *st = x->h->st;
    double d = now - x->h->woke;
    if (d < 0)
        d = 0;
    st->pieces++;
    st->delay_sum_s += d;
    if (d > st->delay_max_s)
        st->delay_max_s = d;
    size_t us = (size_t)(d * 1e6);
    st->hist[us < DB_HTTP_HIST_US ? us : DB_HTTP_HIST_US]++;
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    size_t n = size * nmemb;
    if (x->h->data_fn(x->ctx, ptr, n, status, now) != 0)
        return n == 0 ? 1 : 0;      /* anything but n: abort */
    return n;
}

/* The fixed request headers, the bearer token and the --header lines;
 * NULL when out of memory. */
static struct curl_slist *make_headers(const db_http_conf_t *c)
{
    struct curl_slist *l = NULL, *t;
    const char *fixed[] = {
        "Content-Type: application/json",
        "Accept: text/event-stream",
        "Expect:",          /* no 100-continue round trip on big prompts */
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if ((t = curl_slist_append(l, fixed[i])) == NULL)
            goto oom;
        l = t;
    }
    if (c->api_key != NULL && *c->api_key != '\0') {
        /* sized to the key: a long token is sent whole, never cut */
        size_t n = strlen(c->api_key) + sizeof("Authorization: Bearer ");
        char *auth = malloc(n);
        if (auth == NULL)
            goto oom;
        snprintf(auth, n, "Authorization: Bearer %s", c->api_key);
        t = curl_slist_append(l, auth);
        free(auth);
        if (t == NULL)
            goto oom;
        l = t;
    }
    for (size_t i = 0; i < c->n_headers; i++) {
        if ((t = curl_slist_append(l, c->headers[i])) == NULL)
            goto oom;
        l = t;
    }
    return l;
oom:
    curl_slist_free_all(l);
    return NULL;
}


db_http_t *db_http_new(const db_http_conf_t *c, char *err, size_t errlen)
{
    static int global_done;
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            snprintf(err, errlen, "curl_global_init failed");
            return NULL;
        }
        global_done = 1;
    }
    /* a URL curl cannot use fails here, once, not in every request */
    CURLU *u = curl_url();
    CURLUcode uc = u == NULL ? CURLUE_OUT_OF_MEMORY
                 : curl_url_set(u, CURLUPART_URL, c->url, CURLU_GUESS_SCHEME);
    curl_url_cleanup(u);
    if (uc != CURLUE_OK) {
        snprintf(err, errlen, "bad URL %s: %s", c->url, curl_url_strerror(uc));
        return NULL;
    }
    db_http_t *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->epfd = -1;
    h->timer_at = -1;
    h->timeout_ms = c->timeout_ms;
    h->data_fn = c->data_fn;
    h->done_fn = c->done_fn;
    h->perform = c->perform;
    h->url = strdup(c->url);
    h->st = calloc(1, sizeof(*h->st));
    h->multi = curl_multi_init();
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (h->url == NULL || h->st == NULL || h->multi == NULL || h->epfd < 0) {
        snprintf(err, errlen, "cannot set up the HTTP client: %s",
            h->epfd < 0 ? strerror(errno) : "out of memory");
        db_http_free(h);
        return NULL;
    }

    /* No connection cap: every request gets its stream at once. */
    curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS,
        (long)(c->max_conns > 0 ? c->max_conns : 64));
    if (!h->perform) {
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
        curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
        curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    }

    if ((h->hdrs = make_headers(c)) == NULL) {
        snprintf(err, errlen, "out of memory");
        db_http_free(h);
        return NULL;
    }
    return h;
}

static void xfer_unlink(db_http_t *h, db_xfer_t *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        h->running = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    h->n_running--;
}

static void xfer_recycle(db_http_t *h, db_xfer_t *x)
{
    x->ctx = NULL;
    x->next = h->pool;
    h->pool = x;
}

int db_http_start(db_http_t *h, const char *body, size_t len, void *ctx,
    char *err, size_t errlen)
{
    db_xfer_t *x = h->pool;
    if (x != NULL) {
        h->pool = x->next;
    } else {
        x = calloc(1, sizeof(*x));
        if (x == NULL || (x->easy = curl_easy_init()) == NULL) {
            free(x);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        x->h = h;
    }
    x->ctx = ctx;
    x->errbuf[0] = '\0';
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, h->url);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->timeout_ms);
    /* the server's body as sent (no transparent decompression) */
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL);
    CURLMcode mc = curl_multi_add_handle(h->multi, e);
    if (mc != CURLM_OK) {
        snprintf(err, errlen, "curl_multi_add_handle: %s",
            curl_multi_strerror(mc));
        xfer_recycle(h, x);
        return -1;
    }
    x->prev = NULL;
    x->next = h->running;
    if (h->running)
        h->running->prev = x;
    h->running = x;
    h->n_running++;
    return 0;
}

/* Ends x: out of the multi handle and the running list, then done_fn. */
static void xfer_end(db_http_t *h, db_xfer_t *x, int ok, int timed_out,
    const char *msg)
{
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(h->multi, x->easy);
    xfer_unlink(h, x);
    void *ctx = x->ctx;
    char m[CURL_ERROR_SIZE + 64];
    snprintf(m, sizeof(m), "%s", msg ? msg : "");
    xfer_recycle(h, x);
    h->done_fn(ctx, ok, timed_out, status, ok ? NULL : m, db_http_now());
}

/* curl's messages carry timings ("Failed to connect to H port P after
 * 9 ms: ..."); without them equal failures read the same in summaries. */
static void drop_timing(char *m)
{
    char *a = strstr(m, " after ");
    if (a == NULL)
        return;
    char *p = a + 7;
    while (*p >= '0' && *p <= '9')
        p++;
    if (p == a + 7 || strncmp(p, " ms", 3) != 0)
        return;
    memmove(a, p + 3, strlen(p + 3) + 1);
}

static void drain_done(db_http_t *h)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        db_xfer_t *x = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode rc = msg->data.result;
        drop_timing(x->errbuf);
        const char *m = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
        xfer_end(h, x, rc == CURLE_OK, rc == CURLE_OPERATION_TIMEDOUT, m);
    }
}

/* The alternative loop, kept to measure the socket API against. */
static int poll_perform(db_http_t *h, double max_wait_s, char *err,
    size_t errlen)
{
    int running, nfds;
    int ms = max_wait_s <= 0 ? 0 : (int)(max_wait_s * 1e3 + 0.999);
    CURLMcode mc = curl_multi_poll(h->multi, NULL, 0, ms, &nfds);
    h->woke = db_http_now();
    h->st->wakeups++;
    if (mc == CURLM_OK)
        mc = curl_multi_perform(h->multi, &running);
    if (mc != CURLM_OK) {
        snprintf(err, errlen, "curl_multi: %s", curl_multi_strerror(mc));
        return -1;
    }
    drain_done(h);
    return 0;
}

/* epoll_wait with a microsecond timeout where the kernel has
 * epoll_pwait2 (5.11+), so scheduled sends are not rounded up to the next
 * millisecond; epoll_wait (rounding up) elsewhere. */
static int wait_events(db_http_t *h, struct epoll_event *evs, int max,
    double wait)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 35)
    static int no_pwait2;
    if (!no_pwait2) {
        struct timespec ts = { 0, 0 };
        if (wait > 0) {
            ts.tv_sec = (time_t)wait;
            ts.tv_nsec = (long)((wait - (double)ts.tv_sec) * 1e9);
        }
        int n = epoll_pwait2(h->epfd, evs, max, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        no_pwait2 = 1;
    }
#endif
    int ms = wait <= 0 ? 0 : (int)(wait * 1e3 + 0.999);   /* round up */
    return epoll_wait(h->epfd, evs, max, ms);
}

int db_http_poll(db_http_t *h, double max_wait_s, char *err, size_t errlen)
{
    struct epoll_event evs[256];
    int running;
    double now = db_http_now(), wait = max_wait_s;

    if (h->perform)
        return poll_perform(h, max_wait_s, err, errlen);

    if (h->timer_at >= 0 && h->timer_at - now < wait)
        wait = h->timer_at - now;
    int n = wait_events(h, evs, 256, wait);
    h->woke = db_http_now();
    h->st->wakeups++;
    if (n < 0) {
        if (errno == EINTR)
            return 0;
        snprintf(err, errlen, "epoll_wait: %s", strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int f = 0;
        if (evs[i].events & EPOLLIN)
            f |= CURL_CSELECT_IN;
        if (evs[i].events & EPOLLOUT)
            f |= CURL_CSELECT_OUT;
        if (evs[i].events & (EPOLLERR | EPOLLHUP))
            f |= CURL_CSELECT_ERR;
        curl_multi_socket_action(h->multi, evs[i].data.fd, f, &running);
    }
    if (h->timer_at >= 0 && db_http_now() >= h->timer_at) {
        h->timer_at = -1;
        curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    drain_done(h);
    return 0;
}

size_t db_http_running(const db_http_t *h)
{
    return h->n_running;
}

const db_http_stats_t *db_http_stats(const db_http_t *h)
{
    return h->st;
}

double db_http_stats_pct(const db_http_stats_t *st, double p)
{
    if (st->pieces == 0)
        return 0;
    double want = p / 100 * (double)st->pieces, seen = 0;
    for (size_t i = 0; i <= DB_HTTP_HIST_US; i++) {
        seen += (double)st->hist[i];
        if (seen >= want && st->hist[i] > 0)
            return i == DB_HTTP_HIST_US ? st->delay_max_s : (i + 0.5) * 1e-6;
    }
    return st->delay_max_s;
}

void db_http_abort_all(db_http_t *h, const char *msg)
{
    while (h->running != NULL)
        xfer_end(h, h->running, 0, 0, msg);
}

void db_http_free(db_http_t *h)
{
    if (h == NULL)
        return;
    if (h->multi != NULL)
        db_http_abort_all(h, "client shut down");
    while (h->pool != NULL) {
        db_xfer_t *x = h->pool;
        h->pool = x->next;
        curl_easy_cleanup(x->easy);
        free(x);
    }
    if (h->multi != NULL)
        curl_multi_cleanup(h->multi);
    if (h->epfd >= 0)
        close(h->epfd);
    curl_slist_free_all(h->hdrs);
    free(h->st);
    free(h->url);
    free(h);
}
