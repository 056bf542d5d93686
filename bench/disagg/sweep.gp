# bench/disagg/sweep.sh's plot: P99 TPOT and mean TTFT against the
# long-prompt rate, one line per configuration (sweep.pl writes the data).
#   gnuplot -e "dir='DIR'; out='OUT.png'" sweep.gp
load dir.'/sweep-titles.gp'
dat = dir.'/sweep.dat'
set terminal pngcairo size 1100,450 noenhanced
set output out
set multiplot layout 1,2 title 'short chat streams while long prompts arrive (mock engines, 2 workers each)'
set grid
set key top left reverse Left
set xlabel "long prompts per second"
set ylabel "P99 TPOT (ms)"
set title "P99 time per output token"
plot for [i=0:n-1] dat using 1:(column(i+2)) with linespoints lw 2 title value('t'.i)
set ylabel "mean TTFT (ms, log)"
set logscale y
set title "mean time to first token"
plot for [i=0:n-1] dat using 1:(column(i+2+n)) with linespoints lw 2 title value('t'.i)
unset multiplot
