/*
 * dynamo-worker: GET /health (JSON) and GET /metrics (Prometheus text
 * exposition 0.0.4) of one worker. Every figure is read at request time:
 * engine stats and load are snapshots, the rest are I/O-thread counters.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dw_server_int.h"
#include "kvr_err.h"

int
dw_metrics_health(dw_worker_t *w, kvr_buf_t *b)
{
    dw_engine_stats_t  st;
    json_t            *o;
    char              *s;
    uint32_t           free_blocks;
    int                rc;

    dw_engine_stats(w->engine, &st);
    free_blocks = st.total_blocks > st.used_blocks
                  ? st.total_blocks - st.used_blocks : 0;
    o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i,"
                  " s:i, s:b}",
                  "status", w->srv->stopping ? "stopping" : "ok",
                  "worker_id", (json_int_t) w->conf.worker_id,
                  "role", kvr_role_name(w->conf.role),
                  "engine", w->engine_name,
                  "model", w->model_name,
                  "addr", w->advertise,
                  "block_size", (int) dw_engine_config(w->engine)->block_size,
                  "blocks_free", (int) free_blocks,
                  "blocks_total", (int) st.total_blocks,
                  "blocks_cached", (int) st.cached_blocks,
                  "running", (int) st.running,
                  "waiting", (int) st.waiting,
                  "redis", w->redis != NULL && dw_redis_ready(w->redis));
    if (o == NULL) {
        return -1;
    }
    /* disaggregation: the UCX transports asked for */
    if (w->xfer != NULL
        && json_object_set_new(o, "kv_transport",
                               json_string(dw_xfer_tls(w->xfer))) != 0)
    {
        json_decref(o);
        return -1;
    }
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s == NULL) {
        return -1;
    }
    rc = kvr_buf_append_str(b, s) == KVR_OK
         && kvr_buf_append(b, "\n", 1) == KVR_OK ? 0 : -1;
    free(s);
    return rc;
}

typedef struct {
    kvr_buf_t  *b;
    int         err;
} mt_t;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
mt_printf(mt_t *m, const char *fmt, ...)
{
    char     line[1024];
    int      n;
    va_list  ap;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t) n >= sizeof(line)
        || kvr_buf_append(m->b, line, (size_t) n) != KVR_OK)
    {
        m->err = 1;
    }
}

static void
mt_metric(mt_t *m, const char *name, const char *type, const char *help,
    double v)
{
    mt_printf(m, "# HELP dynamo_worker_%s %s\n# TYPE dynamo_worker_%s %s\n"
              "dynamo_worker_%s %.17g\n", name, help, name, type, name, v);
}

static void
mt_hist(mt_t *m, const char *name, const char *help, const uint64_t *h,
    double sum_ms)
{
    uint64_t  cum;
    int       i;

    mt_printf(m, "# HELP dynamo_worker_%s %s\n# TYPE dynamo_worker_%s "
              "histogram\n", name, help, name);
    cum = 0;
    for (i = 0; i < DW_HIST_BUCKETS; i++) {
        cum += h[i];
        mt_printf(m, "dynamo_worker_%s_bucket{le=\"%g\"} %llu\n", name,
                  dw_engine_hist_bounds_ms[i] / 1000.0,
                  (unsigned long long) cum);
    }
    cum += h[DW_HIST_BUCKETS];
    mt_printf(m, "dynamo_worker_%s_bucket{le=\"+Inf\"} %llu\n"
              "dynamo_worker_%s_sum %.17g\ndynamo_worker_%s_count %llu\n",
              name, (unsigned long long) cum, name, sum_ms / 1000.0, name,
              (unsigned long long) cum);
}

/* A label value: backslash, quote and newline escaped (exposition 0.0.4). */
static void
mt_label(char *out, size_t cap, const char *s)
{
    size_t  k;

    for (k = 0; *s != '\0' && k + 3 < cap; s++) {
        if (*s == '\\' || *s == '"') {
            out[k++] = '\\';
            out[k++] = *s;
        } else if (*s == '\n') {
            out[k++] = '\\';
            out[k++] = 'n';
        } else {
            out[k++] = *s;
        }
    }
    out[k] = '\0';
}

/* Disaggregated prefill: both sides' counters, and the process's KV
   transfer figures (worker/PROTOCOL.md, "Prefill (disaggregation)"). */
static void
mt_disagg(mt_t *m, dw_worker_t *w)
{
    const dw_disagg_counters_t  *d = &w->dcnt;
    dw_xfer_stats_t              xs;
    const char                  *name;
    int                          p;

    mt_printf(m, "# HELP dynamo_worker_prefill_requests_total Finished "
              "requests by where their prompt was computed.\n"
              "# TYPE dynamo_worker_prefill_requests_total counter\n");
    for (p = DW_PREFILL_AGG; p <= DW_PREFILL_LOCAL_SELF; p++) {
        name = dw_proto_prefill_name((dw_prefill_t) p);
        mt_printf(m, "dynamo_worker_prefill_requests_total{mode=\"%s\","
                  "reason=\"%s\"} %llu\n",
                  p == DW_PREFILL_AGG ? "aggregated"
                  : p == DW_PREFILL_REMOTE ? "remote" : "local",
                  p <= DW_PREFILL_REMOTE ? "none" : name,
                  (unsigned long long) d->prefill[p]);
    }
    mt_metric(m, "remote_prefill_sent_total", "counter",
              "Prefill requests sent to a prefill worker.",
              (double) d->remote_sent);
    mt_printf(m, "# HELP dynamo_worker_remote_prefill_total Remote prefills "
              "by outcome (timeout and error fall back to a local "
              "prefill).\n"
              "# TYPE dynamo_worker_remote_prefill_total counter\n"
              "dynamo_worker_remote_prefill_total{result=\"ok\"} %llu\n"
              "dynamo_worker_remote_prefill_total{result=\"timeout\"} %llu\n"
              "dynamo_worker_remote_prefill_total{result=\"error\"} %llu\n",
              (unsigned long long) d->remote_ok,
              (unsigned long long) d->fallback_timeout,
              (unsigned long long) d->fallback_error);
    mt_metric(m, "remote_prefill_wait_seconds_total", "counter",
              "Summed time from sending a prefill request to its "
              "notification.", d->remote_wait_ms / 1000.0);
    mt_metric(m, "prefill_served_total", "counter",
              "Prefill requests served: KV written to a decode worker.",
              (double) d->served);
    mt_metric(m, "prefill_refused_total", "counter",
              "Prefill requests answered with an error.",
              (double) d->refused);
    mt_metric(m, "kv_blocks_skipped_total", "counter",
              "Prompt blocks not sent: the decode worker had them cached.",
              (double) d->blocks_skipped);
    /* one UCX context per process: its figures on the first worker */
    if (w->xfer == NULL || w != w->srv->workers) {
        return;
    }
    dw_xfer_stats(w->xfer, &xs);
    mt_metric(m, "kv_transfer_bytes_total", "counter",
              "KV bytes written to decode workers (this process).",
              (double) xs.bytes);
    mt_metric(m, "kv_transfer_seconds_total", "counter",
              "Summed wall time of the KV transfers (this process).",
              xs.seconds);
    mt_metric(m, "kv_transfer_gigabytes_per_second", "gauge",
              "KV transfer rate: bytes / seconds of all transfers, in "
              "10^9 bytes/s.", xs.seconds > 0 ? xs.bytes / xs.seconds / 1e9
                                              : 0.0);
    mt_metric(m, "kv_transfer_blocks_total", "counter",
              "KV blocks transferred (this process).", (double) xs.blocks);
    mt_metric(m, "kv_transfers_total", "counter",
              "KV transfers completed (this process).",
              (double) xs.transfers);
    mt_metric(m, "kv_transfer_failures_total", "counter",
              "KV transfers failed (this process).", (double) xs.failures);
    mt_metric(m, "kv_transfer_notes_received_total", "counter",
              "Transfer notifications received (decode side).",
              (double) xs.notes_received);
    mt_metric(m, "kv_transfer_notes_timed_out_total", "counter",
              "Awaited notifications that missed their deadline.",
              (double) xs.notes_timed_out);
    mt_metric(m, "kv_transfer_notes_late_total", "counter",
              "Notifications dropped: after their deadline or cancel.",
              (double) xs.notes_late);
    mt_metric(m, "kv_transfer_peer_errors_total", "counter",
              "Transfer endpoints closed for an error.",
              (double) xs.peer_errors);
}

int
dw_metrics_text(dw_worker_t *w, kvr_buf_t *b)
{
    dw_engine_stats_t  st;
    dw_redis_stats_t   rs;
    mt_t               m;
    int                r;
    double             hit;
    char               model[2 * sizeof(w->model_name)];

    m.b = b;
    m.err = 0;
    dw_engine_stats(w->engine, &st);
    memset(&rs, 0, sizeof(rs));
    if (w->redis != NULL) {
        dw_redis_stats(w->redis, &rs);
    }

    mt_label(model, sizeof(model), w->model_name);
    mt_printf(&m, "# HELP dynamo_worker_info Worker identity.\n"
              "# TYPE dynamo_worker_info gauge\n"
              "dynamo_worker_info{worker_id=\"%llu\",role=\"%s\","
              "engine=\"%s\",model=\"%s\"} 1\n",
              (unsigned long long) w->conf.worker_id,
              kvr_role_name(w->conf.role), w->engine_name, model);
    mt_metric(&m, "running_sequences", "gauge",
              "Sequences in the running batch.", st.running);
    mt_metric(&m, "waiting_sequences", "gauge",
              "Sequences queued for admission.", st.waiting);
    mt_metric(&m, "kv_blocks_used", "gauge",
              "KV blocks referenced by a sequence.", st.used_blocks);
    mt_metric(&m, "kv_blocks_cached", "gauge",
              "Unreferenced KV blocks kept for prefix reuse.",
              st.cached_blocks);
    mt_metric(&m, "kv_blocks_total", "gauge", "KV pool size in blocks.",
              st.total_blocks);
    mt_metric(&m, "kv_usage_ratio", "gauge",
              "Used KV blocks / total blocks.",
              st.total_blocks ? (double) st.used_blocks / st.total_blocks
                              : 0.0);
    hit = st.prefix_query_tokens
          ? (double) st.prefix_hit_tokens / st.prefix_query_tokens : 0.0;
    mt_metric(&m, "prefix_cache_hit_ratio", "gauge",
              "Prompt tokens found in the prefix cache / looked up.", hit);
    mt_metric(&m, "prefix_cache_hit_tokens_total", "counter",
              "Prompt tokens served from the prefix cache.",
              (double) st.prefix_hit_tokens);
    mt_metric(&m, "prefix_cache_query_tokens_total", "counter",
              "Prompt tokens looked up in the prefix cache.",
              (double) st.prefix_query_tokens);
    mt_metric(&m, "prompt_tokens_total", "counter",
              "Prompt tokens of admitted requests.", (double) st.prompt_tokens);
    mt_metric(&m, "generation_tokens_total", "counter",
              "Tokens generated.", (double) st.generation_tokens);
    mt_metric(&m, "forward_tokens_total", "counter",
              "Tokens the backend computed.", (double) st.forward_tokens);
    mt_metric(&m, "preemptions_total", "counter",
              "Sequences preempted for KV space.", (double) st.preemptions);
    mt_metric(&m, "engine_steps_total", "counter", "Engine steps.",
              (double) st.steps);
    mt_metric(&m, "queued_prefill_tokens", "gauge",
              "Prompt tokens not yet prefilled.",
              (double) st.queued_prefill_tokens);
    mt_hist(&m, "time_to_first_token_seconds",
            "Time from submit to the first token.", st.ttft_hist,
            st.ttft_sum_ms);
    mt_hist(&m, "inter_token_latency_seconds",
            "Time between consecutive tokens of a request.", st.itl_hist,
            st.itl_sum_ms);

    mt_printf(&m, "# HELP dynamo_worker_requests_finished_total Requests "
              "finished, by reason.\n"
              "# TYPE dynamo_worker_requests_finished_total counter\n");
    for (r = DW_FINISH_STOP; r <= DW_FINISH_ERROR; r++) {
        mt_printf(&m, "dynamo_worker_requests_finished_total{reason=\"%s\"} "
                  "%llu\n", dw_proto_finish_name((dw_finish_t) r),
                  (unsigned long long) w->cnt.finished[r]);
    }
    mt_printf(&m, "# HELP dynamo_worker_requests_rejected_total Generate "
              "requests refused before streaming, by status.\n"
              "# TYPE dynamo_worker_requests_rejected_total counter\n"
              "dynamo_worker_requests_rejected_total{code=\"400\"} %llu\n"
              "dynamo_worker_requests_rejected_total{code=\"503\"} %llu\n",
              (unsigned long long) w->cnt.rejected_400,
              (unsigned long long) w->cnt.rejected_503);
    mt_metric(&m, "requests_total", "counter",
              "Generate requests accepted.",
              (double) w->cnt.generate_requests);
    mt_metric(&m, "requests_in_flight", "gauge",
              "Requests accepted and not yet finished.", w->live);
    mt_metric(&m, "client_disconnects_total", "counter",
              "Requests cancelled because the client closed.",
              (double) w->cnt.disconnects);
    mt_metric(&m, "frames_total", "counter", "Token frames sent.",
              (double) w->cnt.frames);
    mt_metric(&m, "http_requests_total", "counter", "HTTP requests.",
              (double) w->cnt.http_requests);

    mt_metric(&m, "redis_enabled", "gauge",
              "1 when the worker publishes to Redis.", w->redis != NULL);
    mt_metric(&m, "redis_connected", "gauge",
              "1 while connected to Redis and registered (acknowledged).",
              w->redis != NULL && dw_redis_ready(w->redis));
    mt_metric(&m, "redis_connects_total", "counter",
              "Redis connections established.", (double) rs.connects);
    mt_metric(&m, "redis_disconnects_total", "counter",
              "Redis connections lost.", (double) rs.disconnects);
    mt_metric(&m, "redis_registers_total", "counter",
              "Registrations sent (each republishes the block set).",
              (double) rs.registers);
    mt_metric(&m, "kv_events_published_total", "counter",
              "KV events sent to Redis.", (double) rs.events);
    mt_metric(&m, "kv_events_acked_total", "counter",
              "KV events Redis applied.", (double) rs.events_ok);
    mt_metric(&m, "kv_events_deferred_total", "counter",
              "KV events not sent while disconnected (carried by the next "
              "registration).", (double) rs.events_dropped);
    mt_metric(&m, "redis_heartbeats_total", "counter",
              "Load heartbeats sent.", (double) rs.heartbeats);
    mt_metric(&m, "redis_errors_total", "counter", "Redis error replies.",
              (double) rs.errors);
    mt_disagg(&m, w);
    return m.err ? -1 : 0;
}
