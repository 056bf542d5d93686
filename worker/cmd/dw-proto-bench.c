/*
 * dw-proto-bench: cost of the internal protocol's text framing on one
 * core: token frames encoded (worker side) and parsed (client side, with
 * jansson), and request bodies parsed. Prints a table; --json for one JSON
 * object. Figures feed worker/PROTOCOL.md ("Is text framing fast enough").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dw_proto.h"

static double
now_s(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

typedef struct {
    const char  *name;
    double       per_s;     /* operations per second */
    double       bytes;     /* bytes per operation */
} result_t;

static void
make_outputs(dw_output_t *o, size_t n, uint32_t n_top)
{
    size_t    i;
    uint32_t  j;

    for (i = 0; i < n; i++) {
        memset(&o[i], 0, sizeof(o[i]));
        o[i].kind = DW_OUT_TOKEN;
        o[i].token = (uint32_t) (i * 7919 % 128000);
        o[i].logprob = -0.0123f * (float) (i % 97);
        o[i].n_top = n_top;
        for (j = 0; j < n_top; j++) {
            o[i].top_ids[j] = (uint32_t) (i + j) % 128000;
            o[i].top_logprobs[j] = -0.5f * (float) j - 0.01f;
        }
    }
}

static result_t
bench_encode(const char *name, size_t per_frame, int with_lp, uint32_t n_top,
    double secs)
{
    dw_output_t         outs[8];
    const dw_output_t  *ptr[8];
    kvr_buf_t           b;
    size_t              i, iters, bytes;
    double              t0, t;
    result_t            r;

    make_outputs(outs, per_frame, n_top);
    for (i = 0; i < per_frame; i++) {
        ptr[i] = &outs[i];
    }
    memset(&b, 0, sizeof(b));
    iters = 0;
    bytes = 0;
    t0 = now_s();
    do {
        for (i = 0; i < 1000; i++) {
            kvr_buf_reset(&b);
            dw_proto_encode_tokens(&b, ptr, per_frame, with_lp);
            bytes += b.len;
        }
        iters += 1000;
        t = now_s() - t0;
    } while (t < secs);
    kvr_buf_free(&b);
    r.name = name;
    r.per_s = (double) iters / t;
    r.bytes = (double) bytes / (double) iters;
    return r;
}

static result_t
bench_parse(const char *name, size_t per_frame, int with_lp, uint32_t n_top,
    double secs)
{
    dw_output_t         outs[8];
    const dw_output_t  *ptr[8];
    dw_proto_frame_t   *f;
    kvr_buf_t           b;
    size_t              i, iters;
    double              t0, t;
    char                err[128];
    result_t            r;

    make_outputs(outs, per_frame, n_top);
    for (i = 0; i < per_frame; i++) {
        ptr[i] = &outs[i];
    }
    memset(&b, 0, sizeof(b));
    dw_proto_encode_tokens(&b, ptr, per_frame, with_lp);
    f = malloc(sizeof(*f));
    iters = 0;
    t0 = now_s();
    do {
        for (i = 0; i < 1000; i++) {
            if (dw_proto_parse_frame(b.data, b.len, f, err, sizeof(err))) {
                fprintf(stderr, "parse failed: %s\n", err);
                exit(1);
            }
        }
        iters += 1000;
        t = now_s() - t0;
    } while (t < secs);
    r.name = name;
    r.per_s = (double) iters / t;
    r.bytes = (double) b.len;
    free(f);
    kvr_buf_free(&b);
    return r;
}

static result_t
bench_request(const char *name, size_t n_tokens, double secs)
{
    dw_proto_req_t  req;
    dw_proto_err_t  err;
    kvr_buf_t       b;
    size_t          i, iters;
    double          t0, t;
    char            num[16];
    result_t        r;

    memset(&b, 0, sizeof(b));
    kvr_buf_append_str(&b, "{\"v\":1,\"request_id\":\"bench\",\"token_ids\":[");
    for (i = 0; i < n_tokens; i++) {
        snprintf(num, sizeof(num), "%s%zu", i ? "," : "",
                 i * 7919 % 128000);
        kvr_buf_append_str(&b, num);
    }
    kvr_buf_append_str(&b, "],\"max_tokens\":256,\"sampling\":{\"temperature"
                       "\":0.7,\"top_p\":0.9,\"seed\":1}}");
    iters = 0;
    t0 = now_s();
    do {
        for (i = 0; i < 10; i++) {
            if (dw_proto_parse_request(b.data, b.len, 0, &req, &err)) {
                fprintf(stderr, "request parse failed: %s\n", err.msg);
                exit(1);
            }
            dw_proto_req_free(&req);
        }
        iters += 10;
        t = now_s() - t0;
    } while (t < secs);
    r.name = name;
    r.per_s = (double) iters / t;
    r.bytes = (double) b.len;
    kvr_buf_free(&b);
    return r;
}

int
main(int argc, char **argv)
{
    result_t  res[16];
    size_t    n, i;
    int       json;
    double    secs;

    json = argc > 1 && strcmp(argv[1], "--json") == 0;
    if (argc > 1 && !json) {
        fprintf(stderr, "usage: dw-proto-bench [--json]\n");
        return 2;
    }
    secs = 0.5;
    n = 0;
    res[n++] = bench_encode("encode 1 token", 1, 0, 0, secs);
    res[n++] = bench_encode("encode 4 tokens", 4, 0, 0, secs);
    res[n++] = bench_encode("encode 1 token + lp", 1, 1, 0, secs);
    res[n++] = bench_encode("encode 1 token + lp + top5", 1, 1, 5, secs);
    res[n++] = bench_parse("parse 1 token (jansson)", 1, 0, 0, secs);
    res[n++] = bench_parse("parse 1 token + lp + top5", 1, 1, 5, secs);
    res[n++] = bench_request("request, 1000-token prompt", 1000, secs);
    res[n++] = bench_request("request, 8000-token prompt", 8000, secs);

    if (json) {
        printf("{\"bench\":\"proto\",\"results\":[");
        for (i = 0; i < n; i++) {
            printf("%s{\"name\":\"%s\",\"per_s\":%.0f,\"bytes\":%.1f}",
                   i ? "," : "", res[i].name, res[i].per_s, res[i].bytes);
        }
        printf("]}\n");
        return 0;
    }
    printf("%-30s %14s %10s %10s\n", "operation", "per second", "ns each",
           "bytes");
    for (i = 0; i < n; i++) {
        printf("%-30s %14.0f %10.0f %10.1f\n", res[i].name, res[i].per_s,
               1e9 / res[i].per_s, res[i].bytes);
    }
    return 0;
}
