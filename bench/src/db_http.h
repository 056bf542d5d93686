#ifndef DB_HTTP_H
#define DB_HTTP_H

/*
 * The transport: streamed HTTP POSTs on libcurl's multi interface driven
 * through its socket API (curl_multi_socket_action) from one epoll loop on
 * one thread. Each wake-up touches only the sockets that are ready, so the
 * cost per received piece does not grow with the number of open streams
 * (curl_multi_perform walks every transfer on every call). Bytes are
 * handed over as they arrive, with the CLOCK_MONOTONIC time taken in
 * libcurl's write callback.
 *
 * Measured (DYNAMO_BENCH_CLIENT_STATS=1; `dynamo-bench serve --ttft-ms 500
 * --itl-ms 100`, 32 tokens per stream, a shared 2-core machine at load
 * 4-6), socket API against curl_multi_poll + curl_multi_perform
 * (DYNAMO_BENCH_HTTP=perform):
 *   1 stream:      wake-up to timestamp 26-29 us mean either way; ITL
 *                  mean 100.00-100.01 ms, p50 100.00 ms
 *   1,000 streams: CPU per piece 16-18 us against 27-29 us; wake-up to
 *                  timestamp mean 0.5-1.1 ms against 5-8.5 ms (p50 0.3-0.6
 *                  against 1.8-2.3 ms); ITL mean 99.98-100.04 ms
 * The residual delay at 1,000 streams is the server's lock-step schedule:
 * 1,000 chunks due at once are read one after the other in one wake-up.
 */

#include <stddef.h>

typedef struct db_http_s  db_http_t;
typedef struct db_xfer_s  db_xfer_t;

/* A piece of the response body; status is the HTTP status (0 when not
 * known yet). Return 0 to go on, non-zero to abort the transfer (it then
 * ends through done_fn with an error). */
typedef int (*db_http_data_fn)(void *ctx, const char *buf, size_t n,
    long status, double now);
/* The transfer ended: ok 1 when it completed (whatever the status), else
 * msg says why (timed_out 1 when the time limit struck). */
typedef void (*db_http_done_fn)(void *ctx, int ok, int timed_out,
    long status, const char *msg, double now);

typedef struct {
    const char        *url;
    const char *const *headers;     /* extra "K: V" lines */
    size_t             n_headers;
    const char        *api_key;     /* Authorization: Bearer (or NULL) */
    long               timeout_ms;  /* whole transfer (0: none) */
    int                perform;     /* 1: curl_multi_poll + perform instead
                                       of the socket API (for comparing
                                       the two; O(transfers) per wake) */
    size_t             max_conns;   /* idle connections kept for reuse */
    db_http_data_fn    data_fn;
    db_http_done_fn    done_fn;
} db_http_conf_t;

/* Seconds on CLOCK_MONOTONIC. */
double db_http_now(void);

/* Raises RLIMIT_NOFILE's soft limit to the hard one (1,000 streams need
 * more descriptors than the usual 1,024); the limit reached, or 0. */
long db_http_raise_nofile(void);

db_http_t *db_http_new(const db_http_conf_t *c, char *err, size_t errlen);
/* Aborts what is still running (through done_fn) and frees everything. */
void db_http_free(db_http_t *h);

/* Starts a POST of body (len bytes, kept by the caller until done_fn).
 * 0, or -1 with err set (done_fn is then not called). */
int db_http_start(db_http_t *h, const char *body, size_t len, void *ctx,
    char *err, size_t errlen);

/* Waits at most max_wait_s for network activity and handles it (data_fn /
 * done_fn run from here). Returns 0, or -1 on a fatal loop error (err).
 * An interrupting signal makes it return early with 0. */
int db_http_poll(db_http_t *h, double max_wait_s, char *err, size_t errlen);

size_t db_http_running(const db_http_t *h);

/*
 * The client's own cost, for checking that it adds no jitter: pieces
 * received, the delay from the loop's wake-up to each piece's timestamp
 * (the time spent on other sockets first: what the client adds to a
 * token's arrival), as a histogram in microseconds.
 */
#define DB_HTTP_HIST_US  10000

typedef struct {
    size_t    pieces;
    double    delay_sum_s;
    double    delay_max_s;
    size_t    hist[DB_HTTP_HIST_US + 1];   /* [us]; the last: beyond */
    size_t    wakeups;
} db_http_stats_t;

const db_http_stats_t *db_http_stats(const db_http_t *h);
/* The delay percentile p (0..100) in seconds, from the histogram. */
double db_http_stats_pct(const db_http_stats_t *st, double p);

/* Ends every running transfer now; each gets done_fn with msg. */
void db_http_abort_all(db_http_t *h, const char *msg);

#endif
