#!/bin/sh
# Runs ngx_dynamo on this machine: a throwaway redis-server, a dynamo-worker
# on the embedded model (cpu engine, registered in that Redis) and a private
# nginx with the module loaded serving the OpenAI API, configured from
# conf/nginx.conf.example. Returns once nginx's /health says ready.
#   scripts/run.sh start BUILD_DIR         (make run)
#   scripts/run.sh start-disagg BUILD_DIR  (make run-disagg)
#   scripts/run.sh stop BUILD_DIR          (make stop; either mode)
# start-disagg runs a prefill worker (--role prefill) and a decode worker
# (--role decode) instead of the one aggregated worker, and serves the API
# disaggregated: location / (as /disaggregated/) passes to the decode pool
# with the prefill pool as its dynamo_prefill_upstream. It ends with one
# completion and says where its prompt was prefilled.
# DYNAMO_PORT (or PORT): nginx's port on 127.0.0.1 (default 8080);
# REDIS_PORT, WORKER_PORT: Redis's and the worker's (default: free ones);
# PREFILL_PORT, DECODE_PORT: the disaggregated workers' (default: free
# ones); MAX_LOCAL_PREFILL: the decode worker's --max-local-prefill-length
# (default 32: a prompt with more uncached tokens goes to the prefill
# worker);
# NGINX: the nginx binary (default: nginx in PATH, else /usr/sbin/nginx).
# Everything lives under BUILD_DIR/run.
set -eu

usage() {
    echo "usage: $0 start|start-disagg|stop BUILD_DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage

action=$1
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$(mkdir -p "$2" && cd "$2" && pwd)
run=$build/run
module=$build/modules/ngx_dynamo_module.so
model=$repo/models/stories260K

say() { echo "run: $*"; }
die() { echo "run: $*" >&2; exit 1; }

nginx_bin() {
    if [ -n "${NGINX:-}" ]; then
        echo "$NGINX"
    elif command -v nginx >/dev/null 2>&1; then
        command -v nginx
    elif [ -x /usr/sbin/nginx ]; then
        echo /usr/sbin/nginx
    else
        die "nginx not found (apt-get install nginx, or set NGINX)"
    fi
}

. "$repo/scripts/lib.sh"        # free_port

# alive PIDFILE: the process in PIDFILE runs (and is not a zombie)
alive() {
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    case "$(cat "/proc/$pid/stat" 2>/dev/null)" in
        *") Z "*) return 1 ;;
    esac
    return 0
}

# pgid_of PID: its process group ("" once it is gone)
pgid_of() {
    { read -r st < "/proc/$1/stat"; } 2>/dev/null || return 0
    # the fields after the command name: state, ppid, pgrp, ...
    set -- ${st##*) }
    echo "$3"
}

# group_alive PGID: a process of that group runs (zombies aside)
group_alive() {
    [ -n "$1" ] || return 1
    kill -0 "-$1" 2>/dev/null || return 1
    for f in /proc/[0-9]*/stat; do
        { read -r st < "$f"; } 2>/dev/null || continue
        set -- "$1" ${st##*) }
        [ "$4" = "$1" ] && [ "$2" != Z ] && return 0
    done
    return 1
}

# gone PIDFILE PGID: neither the process nor anything of its group runs
gone() {
    ! alive "$1" && ! group_alive "$2"
}

# wait_gone PIDFILE PGID TENTHS
wait_gone() {
    i=0
    while ! gone "$1" "$2" && [ $i -lt "$3" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    gone "$1" "$2"
}

# stop_pid PIDFILE SIGNAL NAME: signal it and wait up to 10 s (nginx's QUIT
# waits for requests in flight), then SIGTERM (fast shutdown) and wait 5 s,
# then SIGKILL. nginx and redis daemonize with setsid() and the worker is
# started under setsid, so each leads its own process group: the group is
# waited for and killed too, so that no nginx worker process still draining
# a request outlives its master.
stop_pid() {
    alive "$1" || { rm -f "$1"; return 0; }
    p=$pid
    g=$(pgid_of "$p")
    [ "$g" = "$p" ] && [ "$g" != "$(pgid_of $$)" ] || g=
    kill "-$2" "$p" 2>/dev/null || true
    if ! wait_gone "$1" "$g" 100 && [ "$2" != TERM ]; then
        say "$3 ($p) did not exit after SIG$2; sending SIGTERM"
        kill -TERM "$p" 2>/dev/null || true
        [ -z "$g" ] || kill -TERM "-$g" 2>/dev/null || true
        wait_gone "$1" "$g" 50 || true
    fi
    if ! gone "$1" "$g"; then
        say "$3 ($p) did not exit; killing it"
        kill -KILL "$p" 2>/dev/null || true
        [ -z "$g" ] || kill -KILL "-$g" 2>/dev/null || true
        wait_gone "$1" "$g" 50 || say "$3 ($p): processes left"
    fi
    rm -f "$1"
    say "stopped $3"
}

start_redis() {
    redis_port=${REDIS_PORT:-$(free_port)}
    command -v redis-server >/dev/null 2>&1 \
        || die "redis-server not found (apt-get install redis-server)"
    mkdir -p "$run/redis"
    redis-server --port "$redis_port" --bind 127.0.0.1 \
        --save '' --appendonly no --dir "$run/redis" \
        --daemonize yes --pidfile "$run/redis.pid" \
        --logfile "$run/logs/redis.log" \
        || die "redis-server failed; see $run/logs/redis.log"

    i=0
    until [ "$(redis_ping)" = PONG ]; do
        i=$((i + 1))
        [ $i -lt 100 ] || die "redis on port $redis_port does not answer PING"
        sleep 0.1
    done
}

redis_ping() {
    perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1",
            PeerPort => $ARGV[0], Timeout => 1) or exit 1;
        print $s "PING\r\n";
        my $l = <$s> // ""; $l =~ s/\r?\n//; $l =~ s/^\+//; print $l;' \
        "$redis_port" 2>/dev/null || true
}

# One dynamo-worker (cpu engine, the embedded model) after Redis, since it
# registers there and publishes its KV blocks and load. WORKER_PORT: its
# port (default: a free one).
start_workers() {
    worker=$build/bin/dynamo-worker
    [ -x "$worker" ] || die "$worker missing: build it first (make)"
    worker_port=${WORKER_PORT:-$(free_port)}
    setsid "$worker" --engine cpu --model "$model" \
        --host 127.0.0.1 --port "$worker_port" \
        --redis "127.0.0.1:$redis_port" \
        > "$run/logs/worker.log" 2>&1 &
    echo $! > "$run/worker.pid"

    i=0
    until curl -fsS -o /dev/null "http://127.0.0.1:$worker_port/health" \
            2>/dev/null
    do
        alive "$run/worker.pid" \
            || die "dynamo-worker exited; see $run/logs/worker.log"
        i=$((i + 1))
        [ $i -lt 100 ] || die "dynamo-worker does not answer on $worker_port"
        sleep 0.1
    done
}

# wait_worker PORT PIDFILE LOG NAME: until its /health answers
wait_worker() {
    i=0
    until curl -fsS -o /dev/null "http://127.0.0.1:$1/health" 2>/dev/null
    do
        alive "$2" || die "$4 exited; see $3"
        i=$((i + 1))
        [ $i -lt 100 ] || die "$4 does not answer on $1"
        sleep 0.1
    done
}

# Disaggregated: a prefill worker and a decode worker (cpu engine, the
# embedded model), both registered in Redis, where the gateway's
# role=prefill and role=decode upstreams find them. The decode worker
# sends a prompt with more than MAX_LOCAL_PREFILL uncached tokens to the
# prefill worker, which writes the KV blocks into the decode worker's
# memory over UCX (worker/DISAGG.md).
start_workers_disagg() {
    worker=$build/bin/dynamo-worker
    [ -x "$worker" ] || die "$worker missing: build it first (make)"
    prefill_port=${PREFILL_PORT:-$(free_port)}
    decode_port=${DECODE_PORT:-$(free_port)}
    setsid "$worker" --engine cpu --model "$model" --role prefill \
        --host 127.0.0.1 --port "$prefill_port" \
        --redis "127.0.0.1:$redis_port" \
        > "$run/logs/prefill.log" 2>&1 &
    echo $! > "$run/prefill.pid"
    wait_worker "$prefill_port" "$run/prefill.pid" "$run/logs/prefill.log" \
        "the prefill worker"

    setsid "$worker" --engine cpu --model "$model" --role decode \
        --max-local-prefill-length "${MAX_LOCAL_PREFILL:-32}" \
        --host 127.0.0.1 --port "$decode_port" \
        --redis "127.0.0.1:$redis_port" \
        > "$run/logs/decode.log" 2>&1 &
    echo $! > "$run/decode.pid"
    wait_worker "$decode_port" "$run/decode.pid" "$run/logs/decode.log" \
        "the decode worker"
}

stop_workers() {
    stop_pid "$run/worker.pid" TERM dynamo-worker
    stop_pid "$run/decode.pid" TERM "dynamo-worker (decode)"
    stop_pid "$run/prefill.pid" TERM "dynamo-worker (prefill)"
}

write_config() {
    temp=$run/conf/temp_paths.conf
    {
        for t in client_body proxy fastcgi uwsgi scgi; do
            echo "    ${t}_temp_path $run/${t}_temp;"
        done
    } > "$temp"

    # "^  directive  " and its first argument, up to a blank or ";"
    d='^\([[:space:]]*'
    a='\)[[:space:]][[:space:]]*'
    w='[^[:space:];]*'

    # disaggregated: location / passes to the decode pool with the
    # prefill pool as its prefill upstream (both filled from Redis), as
    # /disaggregated/ does; the aggregated upstream keeps no worker
    if [ "$mode" = disagg ]; then
        pass="s|^\([[:space:]]*\)dynamo_pass[[:space:]][[:space:]]*workers;|\1dynamo_pass decode_workers;\\
\1dynamo_prefill_upstream prefill_workers;|"
        server="s|${d}server${a}127\.0\.0\.1:8000;|\1 127.0.0.1:1 down;|"
    else
        pass=
        server="s|${d}server${a}127\.0\.0\.1:8000;|\1 127.0.0.1:$worker_port;|"
    fi

    sed -e "s|${d}load_module${a}.*ngx_dynamo_module\.so;|\1 $module;|" \
        -e "s|${d}pid${a}.*;|\1 $run/logs/nginx.pid;|" \
        -e "s|${d}error_log${a}${w}|\1 $run/logs/error.log|" \
        -e "s|${d}access_log${a}${w}|\1 $run/logs/access.log|" \
        -e "/^[[:space:]]*dynamo_model[[:space:]]/s|path=${w}|path=$model|" \
        -e "s|${d}dynamo_redis${a}${w}|\1 127.0.0.1:$redis_port|" \
        -e "s|${d}listen${a}.*;|\1 127.0.0.1:$port;|" \
        -e "$server" -e "${pass:-s|^||}" \
        -e "/^http[[:space:]]*{/r $temp" \
        "$repo/conf/nginx.conf.example" > "$run/conf/nginx.conf"
}

start_nginx() {
    nginx=$(nginx_bin)
    # nginx takes $NGINX for listening sockets inherited in a binary
    # upgrade: set, it would neither daemonize nor open its own
    unset NGINX
    [ -f "$module" ] || die "$module missing: build it first (make)"

    write_config
    "$nginx" -p "$run/" -c "$run/conf/nginx.conf" -e "$run/logs/error.log" \
        || die "nginx failed to start; see $run/logs/error.log"

    # /health answers 200 once a worker is usable (503 before)
    i=0
    until curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null
    do
        alive "$run/logs/nginx.pid" \
            || die "nginx exited; see $run/logs/error.log"
        i=$((i + 1))
        [ $i -lt 300 ] || die "nginx on port $port is not ready after 30 s:" \
            "$(curl -sS "http://127.0.0.1:$port/health" 2>&1)"
        sleep 0.1
    done
}

# metric NAME PORT: the lines of a worker's /metrics starting with NAME
metric() {
    curl -fsS "http://127.0.0.1:$2/metrics" 2>/dev/null \
        | grep "^$1" || true
}

# Disaggregated: waits until the gateway's index has both workers (the
# prefill worker becomes a prefill choice once nginx synced it from
# Redis), then sends one completion whose prompt is longer than
# MAX_LOCAL_PREFILL tokens and prints the text, the decode worker's
# prefill decisions and the prefill worker's transfer figures.
demo_disagg() {
    i=0
    until curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null \
            | grep -q '^dynamo_router_workers{model="stories260K"} 2$'
    do
        i=$((i + 1))
        [ $i -lt 100 ] || die "nginx does not list the prefill and the" \
            "decode worker after 10 s (see $run/logs/error.log)"
        sleep 0.1
    done
    prompt='Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day,'
    body=$(printf '{"model":"stories260K","prompt":"%s","max_tokens":48,"temperature":0}' "$prompt")
    answer=$(curl -fsS "http://127.0.0.1:$port/v1/completions" \
        -H 'Content-Type: application/json' -d "$body" 2>&1) \
        || die "the completion failed: $answer"
    text=$(printf '%s' "$answer" | perl -MJSON::PP -0777 -ne '
        my $j = decode_json($_);
        binmode STDOUT, ":utf8";
        printf "%s\n(prompt %d tokens, %d generated)\n",
            $j->{choices}[0]{text}, $j->{usage}{prompt_tokens},
            $j->{usage}{completion_tokens}' 2>/dev/null) \
        || die "not an OpenAI completion: $answer"
    echo "POST /v1/completions {\"prompt\":\"$prompt\",\"max_tokens\":48}"
    echo "$prompt$text"
    remote=$(metric 'dynamo_worker_prefill_requests_total{mode="remote"' \
        "$decode_port" | awk '{ n += $2 } END { print n + 0 }')
    if [ "$remote" -gt 0 ]; then
        echo "prefill: remote, on the prefill worker 127.0.0.1:$prefill_port" \
            "(its KV blocks written into the decode worker's over UCX)"
    else
        echo "prefill: local, on the decode worker (see below why)"
    fi
    echo "the decode worker's /metrics:"
    metric 'dynamo_worker_\(prefill_requests_total\|remote_prefill_total\)' \
        "$decode_port" | grep -v ' 0$' | sed 's/^/  /'
    echo "the prefill worker's /metrics:"
    metric 'dynamo_worker_\(prefill_served\|prefill_refused\|kv_transfer_bytes\|kv_transfer_blocks\|kv_transfers_total\)' \
        "$prefill_port" | sed 's/^/  /'
}

start() {
    mode=${1:-agg}
    stop quiet
    mkdir -p "$run/conf" "$run/logs"
    port=${DYNAMO_PORT:-${PORT:-8080}}

    trap 'stop quiet' EXIT
    start_redis
    if [ "$mode" = disagg ]; then
        start_workers_disagg
    else
        start_workers
    fi
    start_nginx
    [ "$mode" != disagg ] || demo_disagg
    trap - EXIT

    if [ "$mode" = disagg ]; then
        printf 'PORT=%s\nREDIS_PORT=%s\nPREFILL_PORT=%s\nDECODE_PORT=%s\n' \
            "$port" "$redis_port" "$prefill_port" "$decode_port" \
            > "$run/run.env"
        running="ngx_dynamo is running disaggregated"
        workers="  prefill http://127.0.0.1:$prefill_port/   (dynamo-worker --role prefill, cpu, stories260K)
  decode  http://127.0.0.1:$decode_port/   (dynamo-worker --role decode, cpu, stories260K)"
    else
        printf 'PORT=%s\nREDIS_PORT=%s\nWORKER_PORT=%s\n' "$port" \
            "$redis_port" "$worker_port" > "$run/run.env"
        running="ngx_dynamo is running"
        workers="  worker  http://127.0.0.1:$worker_port/   (dynamo-worker, cpu, stories260K)"
    fi

    cat <<EOF
$running
  nginx   http://127.0.0.1:$port/   (config $run/conf/nginx.conf)
  redis   127.0.0.1:$redis_port
$workers
  logs    $run/logs/
try
  curl -s http://127.0.0.1:$port/v1/chat/completions \\
      -H 'Content-Type: application/json' \\
      -d '{"model":"stories260K","max_tokens":64,
           "messages":[{"role":"user","content":"Once upon a time"}]}'
  curl -sN http://127.0.0.1:$port/v1/completions \\
      -H 'Content-Type: application/json' \\
      -d '{"model":"stories260K","prompt":"Once upon a time","stream":true}'
  curl -s http://127.0.0.1:$port/v1/models
  curl -s http://127.0.0.1:$port/metrics
EOF
    if [ "$mode" = disagg ]; then
        echo "  curl -s http://127.0.0.1:$decode_port/metrics | grep prefill"
    fi
    echo "stop with \"make stop\" (or $0 stop $build)"
}

stop() {
    [ -d "$run" ] || return 0
    stop_pid "$run/logs/nginx.pid" QUIT nginx
    stop_workers
    stop_pid "$run/redis.pid" TERM redis
    rm -f "$run/run.env"
    [ "${1:-}" = quiet ] || say "nothing left running under $run"
}

case "$action" in
    start) start ;;
    start-disagg) start disagg ;;
    stop) stop ;;
    *) usage ;;
esac
