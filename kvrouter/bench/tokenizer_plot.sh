#!/bin/sh
# Plots BUILD_DIR/bench/tokenizer.json (from tokenizer_bench.sh) as a bar
# chart of MB/s, ours beside HF tokenizers', into tokenizer.png next to it.
# Skipped with a note when gnuplot is not installed.
#   sh kvrouter/bench/tokenizer_plot.sh BUILD_DIR
set -eu
B=${1:?usage: tokenizer_plot.sh BUILD_DIR}
json=$B/bench/tokenizer.json
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "tokenizer_plot: gnuplot not installed; no plot" >&2
    exit 0
fi
dat=$B/bench/tokenizer.dat
node -e '
const d = require(require("path").resolve(process.argv[1]));
for (const r of d.rows) {
  const hf = Math.max(r.hf.single.mb_per_s, r.hf.batch.mb_per_s);
  console.log(`${r.tokenizer} ${r.ours.mb_per_s.toFixed(2)} ${hf.toFixed(2)} ${r.ratio.toFixed(1)}`);
}' "$json" > "$dat"
gnuplot <<GP
set terminal pngcairo size 900,480 noenhanced
set output "$B/bench/tokenizer.png"
set title "Tokenizer throughput, one thread (MB/s; label: ratio)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel "MB/s"
set yrange [0:*]
set grid ytics
set key top right
plot "$dat" using 2:xtic(1) title "kvrouter", \
     "" using 3 title "HF tokenizers", \
     "" using 0:2:(sprintf("%sx", stringcolumn(4))) with labels offset -1.5,0.7 notitle
GP
echo "wrote $B/bench/tokenizer.png"
