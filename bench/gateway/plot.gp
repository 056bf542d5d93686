# Gateway benchmark plot: requests/s of proxy_pass (A) and dynamo_pass (B)
# per prompt size, and the latency dynamo_pass adds.
#   gnuplot -e "dat='plot.dat'; out='gateway.png'" plot.gp
set terminal pngcairo size 1000,420 font ",10"
set output out
set multiplot layout 1,2
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set key outside top center horizontal
set yrange [0:*]
set xlabel "prompt tokens"
set ylabel "requests/s"
set title "ngx\\_dynamo gateway: throughput (mock workers)"
plot dat using 2:xtic(1) title "proxy\\_pass (A)", \
     '' using 3 title "dynamo\\_pass (B)"
set ylabel "ms"
set title "added latency (B - A)"
set yrange [*:*]
plot dat using 4:xtic(1) title "p50", '' using 5 title "p99"
unset multiplot
