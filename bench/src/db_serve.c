/*
 * `dynamo-bench serve`: the program. Flags, the script, the listener (a
 * backlog as deep as the system allows), the event base with precise
 * timers, signals; the answers are in db_serve_stream.c.
 */

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "db_cmd.h"
#include "db_serve_http.h"

#define MAX_BODY            (256u << 20)

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopbreak(arg);
}

static void
raise_nofile(void)
{
    struct rlimit  rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void
serve_usage(FILE *out)
{
    fprintf(out,
        "usage: dynamo-bench serve [flags]\n"
        "\n"
        "An OpenAI-compatible server with scripted timings: POST\n"
        "/v1/completions and /v1/chat/completions (streamed or not),\n"
        "GET /v1/models and /health. The first token-bearing chunk comes\n"
        "ttft after the request was read, the next ones itl apart, on an\n"
        "absolute schedule. Texts are \" tok1 tok2 ...\"; prompt_tokens in\n"
        "usage counts the prompt's whitespace-separated words (the server\n"
        "has no tokenizer).\n"
        "\n"
        "  --host HOST          listen address (127.0.0.1)\n"
        "  --port PORT          port; 0 picks a free one (0)\n"
        "  --port-file FILE     write the bound port there\n"
        "  --ttft-ms MS         time to first token (50)\n"
        "  --itl-ms MS          gap between token-bearing chunks (10)\n"
        "  --output-len N       tokens per answer (0: the request's\n"
        "                       max_tokens, else %d)\n"
        "  --chunk-tokens N     tokens per chunk (1)\n"
        "  --no-usage           never send usage\n"
        "  --model NAME         listed by /v1/models, answered when a\n"
        "                       request names none (mock)\n"
        "  --script FILE        JSONL, one entry per request in arrival\n"
        "                       order, cycled; keys: ttft_ms, itl_ms (number\n"
        "                       or array, cycled), tokens, chunk_tokens,\n"
        "                       empty_chunks, usage, status, error_after,\n"
        "                       disconnect_after, error, prompt_log\n"
        "  --log-requests FILE  a JSON line per request: seq, arrival_ms\n"
        "                       (since start), method, path, in_flight\n"
        "                       (open completions, this one included),\n"
        "                       body_bytes, body\n"
        "  --help               this help\n"
        "\n"
        "Prints \"dynamo-bench serve: listening on http://HOST:PORT\";\n"
        "SIGTERM or SIGINT ends it.\n", DEFAULT_MAX_TOKENS);
}

static int
serve_num(const char *flag, const char *s, double min, double max,
    double *out)
{
    char    *end;
    double   v;

    errno = 0;
    v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || !isfinite(v)
        || v < min || v > max)
    {
        fprintf(stderr, "dynamo-bench serve: --%s: '%s' must be a number "
            "in [%g, %g]\n", flag, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

/* A whole number in [min, max]; refusals name the flag (as serve_num). */
static int
serve_int(const char *flag, const char *s, int min, int max, int *out)
{
    double  v;

    if (serve_num(flag, s, min, max, &v) != 0) {
        return -1;
    }
    if (v != floor(v)) {
        fprintf(stderr, "dynamo-bench serve: --%s: '%s' must be a whole "
            "number\n", flag, s);
        return -1;
    }
    *out = (int) v;
    return 0;
}

static int
serve_parse(db_serve_conf_t *c, int argc, char **argv)
{
    enum { S_HOST = 256, S_PORT, S_TTFT, S_ITL, S_OUT, S_CHUNK, S_NO_USAGE,
           S_SCRIPT, S_PORT_FILE, S_MODEL, S_LOG };
    static const struct option lo[] = {
        { "host", required_argument, NULL, S_HOST },
        { "port", required_argument, NULL, S_PORT },
        { "ttft-ms", required_argument, NULL, S_TTFT },
        { "itl-ms", required_argument, NULL, S_ITL },
        { "output-len", required_argument, NULL, S_OUT },
        { "chunk-tokens", required_argument, NULL, S_CHUNK },
        { "no-usage", no_argument, NULL, S_NO_USAGE },
        { "script", required_argument, NULL, S_SCRIPT },
        { "port-file", required_argument, NULL, S_PORT_FILE },
        { "model", required_argument, NULL, S_MODEL },
        { "log-requests", required_argument, NULL, S_LOG },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int     ch;

    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "+:h", lo, NULL)) != -1) {
        switch (ch) {
        case S_HOST:
            c->host = optarg;
            break;
        case S_PORT:
            if (serve_int("port", optarg, 0, 65535, &c->port) != 0) {
                return 2;
            }
            break;
        case S_TTFT:
            if (serve_num("ttft-ms", optarg, 0, 86400000, &c->ttft_ms)
                != 0)
            {
                return 2;
            }
            break;
        case S_ITL:
            if (serve_num("itl-ms", optarg, 0, 86400000, &c->itl_ms) != 0) {
                return 2;
            }
            break;
        case S_OUT:
            if (serve_int("output-len", optarg, 0, 10000000, &c->tokens)
                != 0)
            {
                return 2;
            }
            break;
        case S_CHUNK:
            if (serve_int("chunk-tokens", optarg, 1, 1000000,
                    &c->chunk_tokens) != 0)
            {
                return 2;
            }
            break;
        case S_NO_USAGE:
            c->usage = 0;
            break;
        case S_SCRIPT:
            c->script = optarg;
            break;
        case S_PORT_FILE:
            c->port_file = optarg;
            break;
        case S_MODEL:
            c->model = optarg;
            break;
        case S_LOG:
            c->log_requests = optarg;
            break;
        case 'h':
            serve_usage(stdout);
            return 1;
        case ':':
            fprintf(stderr, "dynamo-bench serve: %s needs a value\n",
                argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "dynamo-bench serve: unknown flag '%s' (see "
                "--help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "dynamo-bench serve: unexpected argument '%s'\n",
            argv[optind]);
        return 2;
    }
    return 0;
}

static int
write_port_file(const char *path, int port)
{
    char   tmp[4096];
    FILE  *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL) {
        return -1;
    }
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        return -1;
    }
    return 0;
}

static int
bound_port(evutil_socket_t fd)
{
    struct sockaddr_storage  ss;
    socklen_t                sl = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *) &ss, &sl) != 0) {
        return -1;
    }
    if (ss.ss_family == AF_INET) {
        return ntohs(((struct sockaddr_in *) &ss)->sin_port);
    }
    if (ss.ss_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *) &ss)->sin6_port);
    }
    return -1;
}

static struct evconnlistener *
listen_on(struct event_base *base, const char *host, int port, char *err,
    size_t errlen)
{
    struct evutil_addrinfo   hints, *ai = NULL;
    struct evconnlistener   *l;
    char                     ps[16];
    int                      gai;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = EVUTIL_AI_PASSIVE;
    snprintf(ps, sizeof(ps), "%d", port);
    gai = evutil_getaddrinfo(host, ps, &hints, &ai);
    if (gai != 0 || ai == NULL) {
        snprintf(err, errlen, "%s", gai != 0 ? evutil_gai_strerror(gai)
                                             : "no address");
        return NULL;
    }
    /* a deep backlog (the kernel caps it at somaxconn; libevent's -1
     * means 128), so 1,000 simultaneous connects are not dropped and
     * retried a second later */
    l = evconnlistener_new_bind(base, NULL, NULL,
        LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 4096, ai->ai_addr,
        (int) ai->ai_addrlen);
    if (l == NULL) {
        snprintf(err, errlen, "%s", strerror(errno));
    }
    evutil_freeaddrinfo(ai);
    return l;
}

int
db_serve_main(int argc, char **argv)
{
    db_srv_t                  srv;
    struct event_config      *cfg = NULL;
    struct evconnlistener    *lis = NULL;
    struct evhttp_bound_socket *bs;
    struct event             *sigterm = NULL, *sigint = NULL;
    char                      err[512];
    int                       rc, port;

    memset(&srv, 0, sizeof(srv));
    srv.conf.host = "127.0.0.1";
    srv.conf.port = 0;
    srv.conf.ttft_ms = 50.0;
    srv.conf.itl_ms = 10.0;
    srv.conf.tokens = 0;
    srv.conf.chunk_tokens = 1;
    srv.conf.usage = 1;
    srv.conf.model = "mock";

    rc = serve_parse(&srv.conf, argc, argv);
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    if (srv.conf.script != NULL
        && db_serve_script_load(srv.conf.script, &srv.script, err,
               sizeof(err)) != 0)
    {
        fprintf(stderr, "dynamo-bench serve: %s\n", err);
        return 2;
    }
    rc = 2;
    if (srv.conf.log_requests != NULL) {
        srv.log = fopen(srv.conf.log_requests, "w");
        if (srv.log == NULL) {
            fprintf(stderr, "dynamo-bench serve: %s: %s\n",
                srv.conf.log_requests, strerror(errno));
            goto out;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();

    cfg = event_config_new();
    if (cfg == NULL) {
        goto out;
    }
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    srv.base = event_base_new_with_config(cfg);
    srv.http = srv.base != NULL ? evhttp_new(srv.base) : NULL;
    if (srv.http == NULL) {
        fprintf(stderr, "dynamo-bench serve: cannot start the event loop\n");
        goto out;
    }
    evhttp_set_max_body_size(srv.http, MAX_BODY);
    evhttp_set_allowed_methods(srv.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    /* long streams and idle keep-alive clients are normal here */
    evhttp_set_timeout(srv.http, 24 * 3600);
    evhttp_set_gencb(srv.http, db_serve_on_request, &srv);

    lis = listen_on(srv.base, srv.conf.host, srv.conf.port, err,
        sizeof(err));
    if (lis == NULL) {
        fprintf(stderr, "dynamo-bench serve: cannot listen on %s:%d: %s\n",
            srv.conf.host, srv.conf.port, err);
        goto out;
    }
    bs = evhttp_bind_listener(srv.http, lis);
    if (bs == NULL) {
        fprintf(stderr, "dynamo-bench serve: cannot bind the listener\n");
        evconnlistener_free(lis);
        goto out;
    }
    port = bound_port(evhttp_bound_socket_get_fd(bs));
    if (srv.conf.port_file != NULL
        && write_port_file(srv.conf.port_file, port) != 0)
    {
        fprintf(stderr, "dynamo-bench serve: %s: %s\n", srv.conf.port_file,
            strerror(errno));
        goto out;
    }
    sigterm = evsignal_new(srv.base, SIGTERM, on_signal, srv.base);
    sigint = evsignal_new(srv.base, SIGINT, on_signal, srv.base);
    if (sigterm == NULL || sigint == NULL) {
        goto out;
    }
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);

    srv.t_start = db_serve_now();
    printf("dynamo-bench serve: listening on http://%s%s%s:%d\n",
        strchr(srv.conf.host, ':') != NULL ? "[" : "", srv.conf.host,
        strchr(srv.conf.host, ':') != NULL ? "]" : "", port);
    fflush(stdout);

    event_base_dispatch(srv.base);
    rc = 0;

out:
    if (sigterm != NULL) {
        event_free(sigterm);
    }
    if (sigint != NULL) {
        event_free(sigint);
    }
    if (srv.http != NULL) {
        /* frees the connections: their close callbacks free the streams */
        evhttp_free(srv.http);
    }
    while (srv.active != NULL) {
        db_serve_stream_free(srv.active);
    }
    if (srv.base != NULL) {
        event_base_free(srv.base);
    }
    if (cfg != NULL) {
        event_config_free(cfg);
    }
    if (srv.log != NULL) {
        fclose(srv.log);
    }
    db_serve_script_free(&srv.script);
    return rc;
}
