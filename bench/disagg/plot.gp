# bench/disagg/run.sh's plot: CDFs of TPOT and TTFT over every request of
# the mix, one curve per configuration (report.pl writes the data).
#   gnuplot -e "dir='DIR'; out='OUT.png'" plot.gp
load dir.'/plot-titles.gp'
set terminal pngcairo size 1200,480 font ',10'
set output out
set multiplot layout 1,2 title 'short chat streams while long prompts arrive (mock engines, 2 workers each)'
set key bottom right
set grid
set logscale x
set ylabel 'fraction of requests'
set yrange [0:1]

set title 'TPOT (time per output token after the first)'
set xlabel 'TPOT (ms, log)'
plot for [i=0:n-1] dir.'/plot-tpot.dat' index i using 1:2 with lines lw 2 title value('t'.i)

set title 'TTFT'
set xlabel 'TTFT (ms, log)'
plot for [i=0:n-1] dir.'/plot-ttft.dat' index i using 1:2 with lines lw 2 title value('t'.i)
unset multiplot
