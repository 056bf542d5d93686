/*
 * Tests for the runner's scheduling (db_run.h) against a stand-in server
 * written here (a thread per connection, raw sockets): each answer is a
 * short SSE stream after a fixed hold, or a plain JSON body. Checked: a 200
 * that is not a stream is a failure; --duration over "all at once" keeps a
 * bounded number in flight; a trace replay starts its timed run at its own
 * first timestamp (not the trace's, which warm-ups used); a --duration
 * replay repeats the trace with its span plus one mean gap; a URL curl
 * cannot parse is refused up front.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "db_run.h"

typedef struct {
    int              fd;
    int              port;
    int              json;        /* answer a JSON body, not a stream */
    int              hold_ms;     /* before the first byte */
    pthread_t        th;
    pthread_mutex_t  mu;
    int              open, peak;  /* connections being answered */
} srv_t;

typedef struct {
    srv_t   *s;
    int      fd;
} conn_t;

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void put(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t k = write(fd, s, n);
        if (k <= 0)
            return;
        s += k;
        n -= (size_t)k;
    }
}

/* Reads the request (headers, then Content-Length bytes). */
static void read_request(int fd)
{
    char buf[8192];
    size_t len = 0;
    long body = -1;
    for (;;) {
        ssize_t k = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (k <= 0)
            return;
        len += (size_t)k;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end != NULL && body < 0) {
            char *cl = strstr(buf, "Content-Length: ");
            body = cl ? atol(cl + 16) : 0;
            body += (long)(end + 4 - buf);
        }
        if (body >= 0 && (long)len >= body)
            return;
        if (len > 4096)
            len = 0;            /* keep reading the body, drop its bytes */
    }
}

static void *serve_conn(void *arg)
{
    conn_t *c = arg;
    srv_t *s = c->s;
    read_request(c->fd);
    pthread_mutex_lock(&s->mu);
    if (++s->open > s->peak)
        s->peak = s->open;
    pthread_mutex_unlock(&s->mu);
    sleep_ms(s->hold_ms);
    if (s->json) {
        const char *b = "{\"choices\":[{\"text\":\" a b\"}]}";
        char h[160];
        snprintf(h, sizeof(h), "HTTP/1.1 200 OK\r\nContent-Type: "
            "application/json\r\nContent-Length: %zu\r\nConnection: "
            "close\r\n\r\n", strlen(b));
        put(c->fd, h);
        put(c->fd, b);
    } else {
        put(c->fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            "Connection: close\r\n\r\n"
            "data: {\"choices\":[{\"text\":\" a\"}]}\n\n"
            "data: {\"choices\":[{\"text\":\" b\"}]}\n\n"
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,"
            "\"completion_tokens\":2}}\n\n"
            "data: [DONE]\n\n");
    }
    pthread_mutex_lock(&s->mu);
    s->open--;
    pthread_mutex_unlock(&s->mu);
    close(c->fd);
    free(c);
    return NULL;
}

static void *accept_loop(void *arg)
{
    srv_t *s = arg;
    for (;;) {
        int fd = accept(s->fd, NULL, NULL);
        if (fd < 0)
            return NULL;          /* the listening socket was shut down */
        conn_t *c = malloc(sizeof(*c));
        pthread_t th;
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->s = s;
        c->fd = fd;
        if (pthread_create(&th, NULL, serve_conn, c) != 0) {
            close(fd);
            free(c);
            continue;
        }
        pthread_detach(th);
    }
}

static void srv_start(srv_t *s, int json, int hold_ms)
{
    memset(s, 0, sizeof(*s));
    s->json = json;
    s->hold_ms = hold_ms;
    pthread_mutex_init(&s->mu, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 512), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, accept_loop, s), 0);
}

static void srv_stop(srv_t *s)
{
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->th, NULL);
    close(s->fd);
    for (int i = 0; i < 200; i++) {      /* let answering threads end */
        pthread_mutex_lock(&s->mu);
        int open = s->open;
        pthread_mutex_unlock(&s->mu);
        if (open == 0)
            break;
        sleep_ms(5);
    }
}

static char g_url[64];

static db_opts_t opts(const srv_t *s)
{
    db_opts_t o;
    memset(&o, 0, sizeof(o));
    snprintf(g_url, sizeof(g_url), "http://127.0.0.1:%d", s->port);
    o.base_url = g_url;
    o.endpoint = "/v1/completions";
    o.model = "m";
    o.burstiness = 1;
    o.timeout_s = 10;
    return o;
}

/* n requests; timestamps ts (NULL: none). */
static void dataset(db_dataset_t *ds, size_t n, const double *ts)
{
    db_dataset_init(ds);
    for (size_t i = 0; i < n; i++) {
        db_request_t *r = db_dataset_push(ds);
        assert_non_null(r);
        r->prompt = strdup("hello");
        r->prompt_len = 1;
        r->output_len = 2;
        r->timestamp_s = ts ? ts[i] : -1;
    }
}

/* Timed results' start times, ascending. */
static size_t starts(const db_run_out_t *out, double *v, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < out->n && n < max; i++)
        if (!out->results[i].warmup)
            v[n++] = out->results[i].start_s;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n;
}

static void test_stream_ok(void **st)
{
    srv_t s;
    srv_start(&s, 0, 0);
    db_opts_t o = opts(&s);
    db_dataset_t ds;
    dataset(&ds, 3, NULL);
    db_run_out_t out;
    char err[256];
    assert_int_equal(db_run(&o, &ds, NULL, 0, &out, err, sizeof(err)), 0);
    assert_int_equal(out.n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_true(out.results[i].ok);
        assert_int_equal(out.results[i].output_tokens, 2);
        assert_int_equal(out.results[i].n_itl, 1);
        assert_true(out.results[i].ttft_s >= 0);
    }
    db_run_out_free(&out);
    db_dataset_free(&ds);
    srv_stop(&s);
}

static void test_json_answer_is_not_a_stream(void **st)
{
    srv_t s;
    srv_start(&s, 1, 0);
    db_opts_t o = opts(&s);
    db_dataset_t ds;
    dataset(&ds, 3, NULL);
    db_run_out_t out;
    char err[256];
    assert_int_equal(db_run(&o, &ds, NULL, 0, &out, err, sizeof(err)), 0);
    assert_int_equal(out.n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_false(out.results[i].ok);
        assert_int_equal(out.results[i].status, 200);
        assert_non_null(strstr(out.results[i].error, "not a stream"));
    }
    db_run_out_free(&out);
    db_dataset_free(&ds);
    srv_stop(&s);
}

/* rate inf, no --max-concurrency, --duration: at most the dataset's
 * requests in flight (without the cap, hundreds: every 1,024 pulled per
 * loop turn are sent at once) */
static void test_duration_all_at_once_is_capped(void **st)
{
    srv_t s;
    srv_start(&s, 0, 20);
    db_opts_t o = opts(&s);
    o.duration_s = 0.3;
    db_dataset_t ds;
    dataset(&ds, 4, NULL);
    db_run_out_t out;
    char err[256];
    assert_int_equal(db_run(&o, &ds, NULL, 0, &out, err, sizeof(err)), 0);
    assert_int_equal(out.max_concurrency, 4);
    assert_true(out.peak_concurrency <= 4);
    assert_true(s.peak <= 4);
    assert_true(out.n > 4);                 /* the dataset was reused */
    db_run_out_free(&out);
    db_dataset_free(&ds);
    srv_stop(&s);
}

/* warm-ups take the trace's first two requests (0 and 0.5 s); the timed
 * run starts at once with the third (0.55 s), the fourth 0.05 s later
 * (bounds loose for loaded machines: the fault was a 0.55 s idle start) */
static void test_trace_timed_run_starts_at_its_first_request(void **st)
{
    static const double ts[] = { 0, 0.5, 0.55, 0.6 };
    srv_t s;
    srv_start(&s, 0, 0);
    db_opts_t o = opts(&s);
    o.num_warmups = 2;
    db_dataset_t ds;
    dataset(&ds, 4, ts);
    db_run_out_t out;
    char err[256];
    double v[8];
    assert_int_equal(db_run(&o, &ds, NULL, 0, &out, err, sizeof(err)), 0);
    assert_int_equal(starts(&out, v, 8), 2);
    assert_true(v[0] < 0.3);
    assert_true(v[1] - v[0] > 0.02 && v[1] - v[0] < 0.3);
    db_run_out_free(&out);
    db_dataset_free(&ds);
    srv_stop(&s);
}

/* timestamps 0 and 0.1 s, replayed for 0.35 s: 0, 0.1, then the second
 * cycle one mean gap after the first's last request: 0.2, 0.3 (the fault:
 * the second cycle's first request at once with the first's last) */
static void test_trace_cycles_keep_the_rate(void **st)
{
    static const double ts[] = { 0, 0.1 };
    srv_t s;
    srv_start(&s, 0, 0);
    db_opts_t o = opts(&s);
    o.duration_s = 0.35;
    db_dataset_t ds;
    dataset(&ds, 2, ts);
    db_run_out_t out;
    char err[256];
    double v[16];
    assert_int_equal(db_run(&o, &ds, NULL, 0, &out, err, sizeof(err)), 0);
    size_t n = starts(&out, v, 16);
    assert_true(n >= 3 && n <= 4);
    assert_true(v[2] - v[1] > 0.04);        /* not at once with v[1] */
    db_run_out_free(&out);
    db_dataset_free(&ds);
    srv_stop(&s);
}

/* a URL curl cannot parse is refused before any request, once */
static void test_bad_url_refused(void **st)
{
    static const char *bad[] = { "http://[::1", "http://127.0.0.1:99999" };
    for (size_t i = 0; i < 2; i++) {
        db_opts_t o;
        memset(&o, 0, sizeof(o));
        o.base_url = (char *)bad[i];
        o.burstiness = 1;
        db_dataset_t ds;
        dataset(&ds, 2, NULL);
        db_run_out_t out;
        char err[256] = "";
        assert_int_equal(db_run(&o, &ds, NULL, 0, &out, err, sizeof(err)),
            -1);
        assert_non_null(strstr(err, "bad URL"));
        assert_int_equal(out.n, 0);
        db_dataset_free(&ds);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_ok),
        cmocka_unit_test(test_json_answer_is_not_a_stream),
        cmocka_unit_test(test_duration_all_at_once_is_capped),
        cmocka_unit_test(test_trace_timed_run_starts_at_its_first_request),
        cmocka_unit_test(test_trace_cycles_keep_the_rate),
        cmocka_unit_test(test_bad_url_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
