#!/bin/sh
# dynamo-bench's own overhead (make bench-client): what the client measures
# against a server whose timings are known, at 1, 100 and 1,000 concurrent
# streams.
#
# `dynamo-bench serve` answers every request with the first token after
# CLIENT_BENCH_TTFT_MS and the next ones CLIENT_BENCH_ITL_MS apart
# (CLIENT_BENCH_TOKENS tokens, one per chunk, on an absolute schedule, so
# the server does not drift). dynamo-bench runs with --max-concurrency =
# the stream count and CLIENT_BENCH_WAVES x that many requests. Whatever
# it measures above the scripted figures is the client's own overhead
# (plus the server's lateness, which is what a loaded one-thread server on
# the same machine adds: read the 1-stream row as the floor). The server
# and the client are pinned to different cores (taskset) when there are 2
# or more, so neither steals the other's CPU. Client CPU is the
# dynamo-bench process's user + system time (its children's times as perl
# sees them), per output token; the server's CPU (from /proc) is shown
# beside it, as a share of the run's duration. The runner's own account
# (DYNAMO_BENCH_CLIENT_STATS=1: how long after waking it timestamps each
# piece received) is the part of the ITL excess that is the client's.
#
#   sh bench/client/run.sh BUILD_DIR
# Knobs: CLIENT_BENCH_STREAMS ("1 100 1000"), CLIENT_BENCH_TTFT_MS (20),
# CLIENT_BENCH_ITL_MS (10), CLIENT_BENCH_TOKENS (64), CLIENT_BENCH_WAVES
# (2; the 1-stream step runs CLIENT_BENCH_SINGLE (10) requests),
# CLIENT_BENCH_PIN (1), CLIENT_BENCH_TOKENIZER (models/stories260K).
# Prints the table; writes BUILD_DIR/bench/client.json and client.png
# (when gnuplot is there); logs and per-step results under
# BUILD_DIR/bench/client/.
set -eu

B=${1:?usage: run.sh BUILD_DIR}
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(mkdir -p "$B" && cd "$B" && pwd)
here=$repo/bench/client
dir=$build/bench/client
BIN=$build/bin/dynamo-bench

STREAMS=${CLIENT_BENCH_STREAMS:-1 100 1000}
TTFT=${CLIENT_BENCH_TTFT_MS:-20}
ITL=${CLIENT_BENCH_ITL_MS:-10}
TOKENS=${CLIENT_BENCH_TOKENS:-64}
WAVES=${CLIENT_BENCH_WAVES:-2}
SINGLE=${CLIENT_BENCH_SINGLE:-10}
MODEL=${CLIENT_BENCH_TOKENIZER:-$repo/models/stories260K}

say() { echo "bench-client: $*" >&2; }
die() { say "$*"; exit 1; }

[ -x "$BIN" ] || die "$BIN missing (make B=$B bench-client builds it)"

ncpu=$(nproc)
if [ "$ncpu" -ge 2 ] && [ "${CLIENT_BENCH_PIN:-1}" = 1 ] \
   && command -v taskset >/dev/null 2>&1; then
    PIN_SERVE="taskset -c 0"
    PIN_CLIENT="taskset -c 1"
    pinned=1
else
    PIN_SERVE=""
    PIN_CLIENT=""
    pinned=0
fi

rm -rf "$dir"
mkdir -p "$dir"

serve_pid=
cleanup() {
    if [ -n "$serve_pid" ]; then
        kill "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck disable=SC2086
$PIN_SERVE "$BIN" serve --port 0 --port-file "$dir/port" \
    --ttft-ms "$TTFT" --itl-ms "$ITL" --output-len "$TOKENS" \
    > "$dir/serve.out" 2> "$dir/serve.err" &
serve_pid=$!
i=0
while [ ! -s "$dir/port" ]; do
    i=$((i + 1))
    [ $i -le 200 ] || die "serve did not start: $(cat "$dir/serve.err")"
    kill -0 "$serve_pid" 2>/dev/null \
        || die "serve exited: $(cat "$dir/serve.err")"
    sleep 0.05
done
port=$(cat "$dir/port")
# other work on the machine skews every figure: recorded with them
load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo unknown)
say "serve on 127.0.0.1:$port (ttft $TTFT ms, itl $ITL ms, $TOKENS tokens;" \
    "pinned: $pinned; load average $load)"

# the server's CPU ticks (utime + stime), to tell its lateness from the
# client's: a server near one core of CPU is the bottleneck
hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
serve_ticks() {
    awk '{ print $14 + $15 }' "/proc/$serve_pid/stat" 2>/dev/null || echo 0
}

# one client run: CPU seconds into $1 (user + system of the child perl
# waited for), then dynamo-bench's arguments
client() {
    cpu_file=$1
    shift
    # DYNAMO_BENCH_CLIENT_STATS: the runner's own account on stderr (the
    # time from its wake-up to each piece's timestamp, CPU per piece)
    # shellcheck disable=SC2086
    DYNAMO_BENCH_CLIENT_STATS=1 perl -e '
        my $out = shift;
        my $rc = system @ARGV;
        my @t = times;
        open my $f, ">", $out or die "$out: $!";
        printf $f "%.6f %.6f\n", $t[2], $t[3];
        exit($rc == -1 ? 127 : $rc >> 8);
    ' "$cpu_file" $PIN_CLIENT "$BIN" \
        --base-url "http://127.0.0.1:$port" --model bench \
        --tokenizer "$MODEL" --random-input-len 32 --disable-tqdm "$@"
}

# the fixed cost (tokenizer load, start-up, exit) plus one request (serve
# answers it with TOKENS tokens), subtracted from each step's CPU and
# tokens for the per-token figure: the marginal cost of a token
client "$dir/cpu.base" --num-prompts 1 --random-output-len 1 \
    > "$dir/run.base.out" 2> "$dir/run.base.err" \
    || die "dynamo-bench failed: $(tail -n 5 "$dir/run.base.err")"

for n in $STREAMS; do
    if [ "$n" -eq 1 ]; then reqs=$SINGLE; else reqs=$((n * WAVES)); fi
    say "$n streams, $reqs requests"
    t0=$(serve_ticks)
    client "$dir/cpu.$n" \
        --random-output-len "$TOKENS" --num-prompts "$reqs" \
        --max-concurrency "$n" --percentile-metrics ttft,tpot,itl,e2el \
        --metric-percentiles 50,90,99 \
        --save-result --save-detailed --result-dir "$dir" \
        --result-filename "c$n" --label "c$n" \
        > "$dir/run.$n.out" 2> "$dir/run.$n.err" \
        || die "dynamo-bench failed at $n streams:" \
               "$(tail -n 5 "$dir/run.$n.err")"
    echo "$t0 $(serve_ticks) $hz" > "$dir/serve.$n"
done

perl "$here/report.pl" --dir "$dir" --load "$load" --ttft "$TTFT" --itl "$ITL" \
    --tokens "$TOKENS" --pinned "$pinned" --streams "$STREAMS" \
    --json "$build/bench/client.json" --dat "$dir/client.dat"

if command -v gnuplot >/dev/null 2>&1; then
    gnuplot -e "dat='$dir/client.dat'; out='$build/bench/client.png'" \
        "$here/plot.gp" && say "wrote $build/bench/client.png"
else
    say "gnuplot not found: no client.png (apt-get install gnuplot-nox)"
fi
say "wrote $build/bench/client.json"
