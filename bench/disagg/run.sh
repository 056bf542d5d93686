#!/bin/sh
# Aggregated against disaggregated serving (make bench-disagg;
# bench/disagg/README.md).
#
# Mock-engine dynamo-workers (Dynamo's mocker timing model: a step sleeps
# prefill_ms(n) = 4.21e-7 n^2 + 0.0152 n + 16.5 per prefill slice of n
# tokens plus max(1, -25.74 u^2 + 54.01 u + 5.74) ms when it decodes at
# KV usage u; divided by DISAGG_BENCH_SPEEDUP) on the embedded model's
# config and tokenizer (context raised with --max-model-len), behind
# nginx + the module + Redis, two workers in every configuration:
#   a  2 aggregated workers (--role both), one kv pool
#   b  1 prefill + 1 decode worker, always remote
#      (--max-local-prefill-length 0, no queue limit)
#   c  1 prefill + 1 decode worker, conditional disaggregation (the
#      worker's defaults unless DISAGG_BENCH_MAX_LOCAL / _MAX_QUEUE say
#      otherwise: --max-local-prefill-length 1000,
#      --max-prefill-queue-tokens 16384)
# The same workload against each, two dynamo-bench processes at once for
# DISAGG_BENCH_SECONDS (40):
#   chat  short chat requests streaming: /v1/chat/completions, 64-token
#         prompts, 128 output tokens, DISAGG_BENCH_CHAT_CONCURRENCY (16)
#         streams kept open
#   long  long prompts arriving (Poisson, DISAGG_BENCH_LONG_RATE (6) per
#         second): /v1/completions, 6,144-token prompts, 16 output tokens
# lengths +-DISAGG_BENCH_RANGE_RATIO (25 %). Every prompt is new (random
# dataset: no prefix reuse between requests).
#
#   sh bench/disagg/run.sh BUILD_DIR
# Prints the table (figures over all streams of both classes, ratios
# against a) and the transfer figures; writes BUILD_DIR/bench/disagg.json
# and disagg.png (gnuplot); runs and logs under BUILD_DIR/bench/disagg/.
set -eu

B=${1:?usage: run.sh BUILD_DIR}
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(mkdir -p "$B" && cd "$B" && pwd)
dir=$build/bench/disagg
here=$repo/bench/disagg

SECS=${DISAGG_BENCH_SECONDS:-40}
SPEEDUP=${DISAGG_BENCH_SPEEDUP:-1}
CHAT_CONC=${DISAGG_BENCH_CHAT_CONCURRENCY:-16}
CHAT_IN=${DISAGG_BENCH_CHAT_INPUT:-64}
CHAT_OUT=${DISAGG_BENCH_CHAT_OUTPUT:-128}
LONG_IN=${DISAGG_BENCH_LONG_INPUT:-6144}
LONG_OUT=${DISAGG_BENCH_LONG_OUTPUT:-16}
LONG_RATE=${DISAGG_BENCH_LONG_RATE:-6}
RANGE=${DISAGG_BENCH_RANGE_RATIO:-0.25}
BLOCKS=${DISAGG_BENCH_BLOCKS:-16384}
MAX_LOCAL=${DISAGG_BENCH_MAX_LOCAL:-1000}
MAX_QUEUE=${DISAGG_BENCH_MAX_QUEUE:-16384}
CONFIGS=${DISAGG_BENCH_CONFIGS:-a b c d}
# --kv-transport of the disaggregated workers (default: UCX's choice)
KV_TLS=${DISAGG_BENCH_KV_TRANSPORT:-}
MODEL=$repo/models/stories260K
MODEL_NAME=stories260K
# the longest prompt, its output and some slack, in whole K
CONTEXT=$(awk -v l="$LONG_IN" -v r="$RANGE" -v o="$LONG_OUT" \
    'BEGIN { print (int((l * (1 + r) + o) / 1024) + 2) * 1024 }')
MODULE=$build/modules/ngx_dynamo_module.so
WORKER=$build/bin/dynamo-worker
BENCH=$build/bin/dynamo-bench

say() { echo "bench-disagg: $*" >&2; }
die() { say "$*"; exit 1; }

for f in "$MODULE" "$WORKER" "$BENCH"; do
    [ -e "$f" ] || die "$f missing (make B=$B bench-disagg builds it)"
done
command -v redis-server >/dev/null 2>&1 || die "redis-server not found"
NGINX_BIN=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[ -x "$NGINX_BIN" ] || die "nginx not found"
# nginx takes $NGINX for listening sockets inherited in a binary upgrade
unset NGINX

. "$repo/scripts/lib.sh"        # free_port

wait_http() {   # URL WHAT
    w_i=0
    until curl -fsS -o /dev/null "$1" 2>/dev/null; do
        w_i=$((w_i + 1))
        [ $w_i -lt 150 ] || die "$2 does not answer at $1"
        sleep 0.1
    done
}

pids=""
cfg_dir=""
stop_all() {
    if [ -n "$cfg_dir" ] && [ -f "$cfg_dir/nginx.pid" ]; then
        kill -QUIT "$(cat "$cfg_dir/nginx.pid")" 2>/dev/null || true
    fi
    for p in $pids; do
        kill "$p" 2>/dev/null || true
    done
    for p in $pids; do
        wait "$p" 2>/dev/null || true
    done
    pids=""
    if [ -n "$cfg_dir" ] && [ -f "$cfg_dir/redis.pid" ]; then
        kill "$(cat "$cfg_dir/redis.pid")" 2>/dev/null || true
    fi
    sleep 0.3
}
trap 'stop_all' EXIT
trap 'stop_all; exit 130' INT TERM

# worker ROLE NAME ARGS...: one mock worker registered in this
# configuration's Redis; its port in $wport
worker() {
    w_role=$1
    w_name=$2
    shift 2
    wport=$(free_port)
    "$WORKER" --model "$MODEL" --engine mock --mock-speedup "$SPEEDUP" \
        --max-model-len "$CONTEXT" --num-blocks "$BLOCKS" --role "$w_role" \
        --host 127.0.0.1 --port "$wport" --redis "127.0.0.1:$redis_port" \
        --log-level warn "$@" > "$cfg_dir/$w_name.log" 2>&1 &
    pids="$pids $!"
    wait_http "http://127.0.0.1:$wport/health" "worker $w_name"
    echo "$wport" > "$cfg_dir/$w_name.port"
}

fill() {   # ROLE PREFILL_LINE
    perl -pe '
        BEGIN { %v = @ARGV[1 .. $#ARGV]; splice @ARGV, 1 }
        s/\@(\w+)\@/exists $v{$1} ? $v{$1} : "\@$1\@"/ge' \
        "$here/nginx.conf.in" DIR "$cfg_dir" PORT "$port" MODULE "$MODULE" \
        MODEL "$MODEL" MODEL_NAME "$MODEL_NAME" CONTEXT "$CONTEXT" \
        REDIS_PORT "$redis_port" ROLE "$1" PREFILL "$2" \
        > "$cfg_dir/nginx.conf"
}

# bench CLASS ARGS...: one dynamo-bench of the mix (run it with &)
bench() {
    b_class=$1
    shift
    exec "$BENCH" --base-url "http://127.0.0.1:$port" \
        --model "$MODEL_NAME" --tokenizer "$MODEL" --ignore-eos \
        --temperature 0 --duration "$SECS" --request-timeout 300 \
        --save-result --save-detailed --result-dir "$cfg_dir" \
        --result-filename "$b_class" --label "$cfg-$b_class" \
        --disable-tqdm "$@" > "$cfg_dir/$b_class.txt" \
        2> "$cfg_dir/$b_class.err"
}

run_config() {   # a|b|c|d
    cfg=$1
    cfg_dir=$dir/$cfg
    mkdir -p "$cfg_dir"

    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
        --appendonly no --dir "$cfg_dir" --daemonize yes \
        --pidfile "$cfg_dir/redis.pid" --logfile "$cfg_dir/redis.log" \
        >/dev/null || die "redis-server failed; see $cfg_dir/redis.log"
    r_i=0
    until [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ]; do
        r_i=$((r_i + 1))
        [ $r_i -lt 100 ] || die "redis-server does not answer"
        sleep 0.1
    done

    tls_arg=${KV_TLS:+--kv-transport=$KV_TLS}
    case $cfg in
    a)
        worker both w1
        worker both w2
        role=aggregated
        prefill_line=""
        ;;
    b)
        worker prefill prefill $tls_arg
        worker decode decode $tls_arg --max-local-prefill-length 0 \
            --max-prefill-queue-tokens 1099511627776
        role=decode
        prefill_line="            dynamo_prefill_upstream  prefills;"
        ;;
    c)
        worker prefill prefill $tls_arg
        worker decode decode $tls_arg --max-local-prefill-length "$MAX_LOCAL" \
            --max-prefill-queue-tokens "$MAX_QUEUE"
        role=decode
        prefill_line="            dynamo_prefill_upstream  prefills;"
        ;;
    d)
        # c without the busy rule: long prompts queue at P, never here
        worker prefill prefill $tls_arg
        worker decode decode $tls_arg --max-local-prefill-length "$MAX_LOCAL" \
            --max-prefill-queue-tokens 1099511627776
        role=decode
        prefill_line="            dynamo_prefill_upstream  prefills;"
        ;;
    *)
        die "unknown configuration $cfg (a, b, c or d)"
        ;;
    esac

    port=$(free_port)
    fill "$role" "$prefill_line"
    "$NGINX_BIN" -p "$cfg_dir" -c "$cfg_dir/nginx.conf" \
        -e "$cfg_dir/error.log" \
        || die "$cfg: nginx did not start; see $cfg_dir/error.log"
    # both workers in the gateway's index (synced from Redis)
    n_i=0
    until curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null \
            | grep -q "^dynamo_router_workers{model=\"$MODEL_NAME\"} 2\$"
    do
        n_i=$((n_i + 1))
        [ $n_i -lt 150 ] || die "$cfg: nginx does not list both workers"
        sleep 0.1
    done

    say "$cfg: ${SECS}s of $CHAT_CONC chat streams ($CHAT_IN in," \
        "$CHAT_OUT out) with long prompts ($LONG_IN in, $LONG_OUT out)" \
        "arriving at $LONG_RATE/s"
    n_long=$(awk -v r="$LONG_RATE" -v s="$SECS" \
        'BEGIN { print int(r * s * 1.5) + 8 }')
    (bench chat --endpoint /v1/chat/completions --backend openai-chat \
        --seed 1 --num-prompts 4000 \
        --random-input-len "$CHAT_IN" --random-output-len "$CHAT_OUT" \
        --random-range-ratio "$RANGE" --max-concurrency "$CHAT_CONC") &
    chat=$!
    (bench long --endpoint /v1/completions --seed 2 \
        --num-prompts "$n_long" \
        --random-input-len "$LONG_IN" --random-output-len "$LONG_OUT" \
        --random-range-ratio "$RANGE" --request-rate "$LONG_RATE") &
    long=$!
    ok=yes
    wait "$chat" || { ok=no; say "$cfg: chat dynamo-bench failed:" \
        "$(tail -n 5 "$cfg_dir/chat.err")"; }
    wait "$long" || { ok=no; say "$cfg: long dynamo-bench failed:" \
        "$(tail -n 5 "$cfg_dir/long.err")"; }

    # the workers' own account: prefill decisions, transfers
    for f in "$cfg_dir"/*.port; do
        n=$(basename "$f" .port)
        curl -fsS "http://127.0.0.1:$(cat "$f")/metrics" \
            > "$cfg_dir/$n.metrics" 2>/dev/null || true
    done
    curl -fsS "http://127.0.0.1:$port/metrics" > "$cfg_dir/gateway.metrics" \
        2>/dev/null || true
    stop_all
    [ $ok = yes ] || say "$cfg: see $cfg_dir"
}

rm -rf "$dir"
mkdir -p "$dir"
for c in $CONFIGS; do
    run_config "$c"
done
cfg_dir=""

perl "$here/report.pl" "$dir" "$build/bench/disagg.json" \
    "configs=$CONFIGS" "seconds=$SECS" "speedup=$SPEEDUP" \
    "chat_concurrency=$CHAT_CONC" "chat_input=$CHAT_IN" \
    "chat_output=$CHAT_OUT" "long_input=$LONG_IN" "long_output=$LONG_OUT" \
    "long_rate=$LONG_RATE" "range_ratio=$RANGE" "blocks=$BLOCKS" \
    "c_max_local_prefill=$MAX_LOCAL" "c_max_prefill_queue=$MAX_QUEUE" \
    "kv_transport=${KV_TLS:-default}" "engine=mock"

# the transfer layer alone against ucx_perftest (make bench-xfer)
if [ -s "$build/bench/xfer.json" ]; then
    echo "KV transfer against ucx_perftest (make bench-xfer," \
        "$build/bench/xfer.json):"
    perl -MJSON::PP -0777 -ne '
        my $j = eval { decode_json($_) } or exit;
        for my $r (@{ $j->{runs} // [] }) {
            printf "  %-4s %7d KiB puts: ours %.3f GB/s, ucx_perftest" .
                " %.3f GB/s, ratio %s\n", $r->{transport},
                $r->{size} / 1024, $r->{ours_gbps}, $r->{perftest_gbps},
                $r->{ratio} // "-";
        }' "$build/bench/xfer.json" || true
else
    echo "KV transfer against ucx_perftest: make B=$B bench-xfer"
fi

if command -v gnuplot >/dev/null 2>&1 && [ -s "$dir/plot-tpot.dat" ]; then
    gnuplot -e "dir='$dir'; out='$build/bench/disagg.png'" "$here/plot.gp" \
        2>"$dir/gnuplot.err" && say "wrote $build/bench/disagg.png" \
        || say "gnuplot failed: $(head -c 300 "$dir/gnuplot.err")"
fi
say "wrote $build/bench/disagg.json"
