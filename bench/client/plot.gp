# dynamo-bench client overhead: ITL measured minus scripted (mean, p50,
# p99) and the client's CPU per output token, against concurrent streams
# (the process's times are tick-grained: short steps have none).
#   gnuplot -e "dat='client.dat'; out='client.png'" plot.gp
set terminal pngcairo size 1000,420 font ",10"
set output out
set multiplot layout 1,2
set datafile missing "?"
set logscale x
set grid
set key top left
set xlabel "concurrent streams"
set ylabel "ms"
set title "dynamo-bench: ITL excess over the server's scripted ITL"
plot dat using 1:2 with linespoints title "mean", \
     '' using 1:3 with linespoints title "p50", \
     '' using 1:4 with linespoints title "p99", \
     '' using 1:5 with linespoints title "TTFT mean excess"
set ylabel "microseconds"
set title "dynamo-bench: client CPU per output token"
set yrange [0:*]
plot dat using 1:7 with linespoints title "runner's own account (getrusage), per piece", \
     '' using 1:6 with linespoints title "process user + system, per token"
unset multiplot
