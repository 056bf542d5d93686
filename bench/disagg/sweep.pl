#!/usr/bin/perl
# sweep.pl DIR OUT.json RATE...: the per-rate disagg.json files of
# sweep.sh as one table (stdout), one JSON and DIR/sweep.dat for gnuplot.
use strict;
use warnings;
use JSON::PP;

my ($dir, $json_out, @rates) = @ARGV;
die "usage: sweep.pl DIR OUT.json RATE...\n" unless @rates;

sub slurp {
    my ($f) = @_;
    open(my $fh, '<', $f) or die "$f: $!\n";
    local $/;
    return decode_json(<$fh>);
}

my @rows;
printf "%-6s %-4s %10s %10s %11s %11s %10s %8s %8s\n", 'long/s', 'cfg',
    'P99 TPOT', 'P99 ITL', 'mean TTFT', 'P99 TTFT', 'out tok/s',
    'TPOT a/x', 'TTFT x/a';
open(my $dat, '>', "$dir/sweep.dat") or die "$dir/sweep.dat: $!\n";
my @cfgs;
for my $r (@rates) {
    my $j = slurp("$dir/rate-$r.json");
    my $res = $j->{results};
    my $a = $res->{a} or die "rate $r: no configuration a\n";
    my @line = ($r);
    my @ttft;
    for my $c (@{ $j->{configs} }) {
        my $x = $res->{$c};
        my $tpot_gain = $x->{p99_tpot_ms} > 0
            ? $a->{p99_tpot_ms} / $x->{p99_tpot_ms} : 0;
        my $ttft_cost = $a->{mean_ttft_ms} > 0
            ? $x->{mean_ttft_ms} / $a->{mean_ttft_ms} : 0;
        printf "%-6s %-4s %10.2f %10.2f %11.2f %11.2f %10.1f %7.2fx %7.2fx\n",
            $r, $c, $x->{p99_tpot_ms}, $x->{p99_itl_ms}, $x->{mean_ttft_ms},
            $x->{p99_ttft_ms}, $x->{output_throughput}, $tpot_gain,
            $ttft_cost;
        push @rows, { long_rate => $r + 0, config => $c,
            p99_tpot_ms => $x->{p99_tpot_ms}, p99_itl_ms => $x->{p99_itl_ms},
            mean_ttft_ms => $x->{mean_ttft_ms},
            p99_ttft_ms => $x->{p99_ttft_ms},
            output_throughput => $x->{output_throughput},
            p99_tpot_gain_vs_a => $tpot_gain,
            mean_ttft_vs_a => $ttft_cost,
            prefill_decisions => $x->{prefill_decisions} };
        push @line, $x->{p99_tpot_ms};
        push @ttft, $x->{mean_ttft_ms};
    }
    @cfgs = @{ $j->{configs} } if !@cfgs;
    die "rate $r: configurations differ\n"
        if "@cfgs" ne "@{ $j->{configs} }";
    print $dat join(' ', @line, @ttft), "\n";
}
close($dat);
# column k+2 holds configuration k's P99 TPOT, k+2+n its mean TTFT
open(my $gp, '>', "$dir/sweep-titles.gp") or die "$dir: $!\n";
my %title = (a => '(a) aggregated', b => '(b) disaggregated',
             c => '(c) conditional', d => '(d) conditional, busy rule off');
print $gp "n = " . scalar(@cfgs) . "\n";
print $gp "t$_ = '" . ($title{$cfgs[$_]} // $cfgs[$_]) . "'\n" for 0 .. $#cfgs;
close($gp);
open(my $fh, '>', $json_out) or die "$json_out: $!\n";
print $fh JSON::PP->new->canonical->pretty->encode(
    { bench => 'disagg-sweep', rows => \@rows });
close($fh);
