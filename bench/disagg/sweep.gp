# gnuplot -e "dat='...sweep.dat'; out='...png'" sweep.gp
set terminal pngcairo size 1100,450 noenhanced
set output out
set multiplot layout 1,2
set grid
set key top left
set xlabel "long prompts per second"
set ylabel "P99 TPOT (ms)"
set title "P99 time per output token"
plot dat using 1:2 with linespoints title "(a) aggregated", \
     dat using 1:3 with linespoints title "(b) disaggregated", \
     dat using 1:4 with linespoints title "(c) conditional"
set ylabel "mean TTFT (ms)"
set logscale y
set title "mean time to first token"
plot dat using 1:5 with linespoints title "(a) aggregated", \
     dat using 1:6 with linespoints title "(b) disaggregated", \
     dat using 1:7 with linespoints title "(c) conditional"
unset multiplot
