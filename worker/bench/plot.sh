#!/bin/sh
# Plots BUILD_DIR/bench/worker.json (from dynamo-worker-bench) as decode
# tokens/s against batch size per model, log-log, into worker.png next to
# it, with each model's batch-1 bandwidth bound as a dashed line where it
# means something (weights larger than the caches). Skipped with a note when
# gnuplot is not installed.
#   sh worker/bench/plot.sh BUILD_DIR
set -eu
B=${1:?usage: bench_plot.sh BUILD_DIR}
json=$B/bench/worker.json
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "bench_plot: gnuplot not installed; no plot" >&2
    exit 0
fi
dat=$B/bench/worker.dat
# one gnuplot data block per model: "batch decode_tps bound"
node -e '
const d = require(require("path").resolve(process.argv[1]));
for (const m of d.models) {
  const name = m.model.split("/").pop() + " " + m.dtype;
  console.log(`"${name}"`);
  for (const r of m.rows)
    console.log(`${r.batch} ${r.decode_tps.toFixed(1)} ${m.weight_bytes > 64e6 ? m.decode_bound_tps.toFixed(1) : "NaN"}`);
  console.log("\n");
}' "$json" > "$dat"
n=$(grep -c '^"' "$dat")
gnuplot <<GP
set terminal pngcairo size 900,520 noenhanced
set output "$B/bench/worker.png"
set title "dynamo-worker cpu backend: decode throughput vs batch (2 threads)"
set logscale xy
set xlabel "sequences in the batch"
set ylabel "decode tokens/s"
set xtics (1, 8, 32, 64)
set grid
set key top left
plot for [i=0:$n-1] "$dat" index i using 1:2 with linespoints lw 2 title columnheader(1), \
     for [i=0:$n-1] "$dat" index i using 1:3 with lines dt 2 lc i+1 notitle
GP
echo "wrote $B/bench/worker.png"
