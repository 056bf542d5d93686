#!/bin/sh
# The disaggregation benchmark (run.sh) at several long-prompt arrival
# rates: how P99 TPOT and TTFT of (a) aggregated, (b) disaggregated and
# (c) conditional move as prefill load grows. One table, one JSON
# (BUILD/bench/disagg-sweep.json) and one plot (disagg-sweep.png).
#   sh bench/disagg/sweep.sh BUILD_DIR        (make bench-disagg-sweep)
# DISAGG_SWEEP_RATES: long prompts per second (default "4 6 8"); every
# DISAGG_BENCH_* setting of run.sh applies (DISAGG_BENCH_SECONDS: 30 here).
set -eu

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
out=$build/bench/disagg-sweep
RATES=${DISAGG_SWEEP_RATES:-4 6 8}
export DISAGG_BENCH_SECONDS=${DISAGG_BENCH_SECONDS:-30}

rm -rf "$out"
mkdir -p "$out"
n=0
for r in $RATES; do
    n=$((n + 1))
    echo "bench-disagg-sweep: rate $r/s ($n of $(echo $RATES | wc -w))" >&2
    DISAGG_BENCH_LONG_RATE=$r sh "$here/run.sh" "$build" \
        > "$out/rate-$r.txt" 2> "$out/rate-$r.err" \
        || { cat "$out/rate-$r.err" >&2; exit 1; }
    cp "$build/bench/disagg.json" "$out/rate-$r.json"
done

perl "$here/sweep.pl" "$out" "$build/bench/disagg-sweep.json" $RATES
if command -v gnuplot >/dev/null 2>&1; then
    gnuplot -e "dir='$out'; out='$build/bench/disagg-sweep.png'" \
        "$here/sweep.gp" 2> "$out/gnuplot.err" \
        && echo "bench-disagg-sweep: wrote $build/bench/disagg-sweep.png" >&2 \
        || echo "bench-disagg-sweep: gnuplot failed" >&2
fi
echo "bench-disagg-sweep: wrote $build/bench/disagg-sweep.json" >&2
