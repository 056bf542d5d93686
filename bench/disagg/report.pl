#!/usr/bin/perl
# bench/disagg/run.sh's report: reads DIR/<config>/{chat,long}.json(l)
# (dynamo-bench --save-result --save-detailed) and the workers' /metrics
# saved after each run, prints one table (the figures over all streams of
# both classes, then per class, then the workers' prefill decisions and
# transfers; ratios against the first configuration), writes OUT (JSON)
# and the plot data DIR/plot-{tpot,ttft}.dat (one CDF per configuration,
# gnuplot index = configuration order).
#   perl report.pl DIR OUT.json [key=value ...]   (settings for the JSON)
use strict;
use warnings;
use JSON::PP ();

my ($dir, $out, @settings) = @ARGV;
die "usage: report.pl DIR OUT.json [key=value ...]\n" if !$out;
my %set = map { /^([^=]+)=(.*)$/ ? ($1 => $2) : () } @settings;
my @cfgs = grep { -d "$dir/$_" } split ' ', ($set{configs} // 'a b c d');
my %title = (a => '(a) aggregated 2x both',
             b => '(b) disagg 1P+1D, always remote',
             c => '(c) disagg 1P+1D, conditional',
             d => '(d) conditional, busy rule off');
my $json = JSON::PP->new->canonical->pretty;

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return undef;
    local $/;
    return scalar <$fh>;
}

# numpy's percentile (linear interpolation); 0 for an empty sample
sub pct {
    my ($p, @v) = @_;
    return 0 if !@v;
    @v = sort { $a <=> $b } @v;
    my $k = ($#v) * $p / 100;
    my $f = int $k;
    return $v[$f] if $f >= $#v;
    return $v[$f] + ($v[$f + 1] - $v[$f]) * ($k - $f);
}

sub mean {
    return 0 if !@_;
    my $s = 0;
    $s += $_ for @_;
    return $s / @_;
}

sub requests {          # the timed requests of one class
    my ($f) = @_;
    my $text = slurp($f) // return [];
    return [ grep { !$_->{warmup} }
             map { JSON::PP::decode_json($_) } grep { /\S/ } split /\n/,
             $text ];
}

sub metrics {           # { 'name{labels}' => value }
    my ($f) = @_;
    my %m;
    for my $l (split /\n/, slurp($f) // '') {
        next if $l =~ /^#/;
        my ($k, $v) = $l =~ /^(\S+) (\S+)$/ or next;
        $m{$k} = $v;
    }
    return \%m;
}

sub msum {              # sum of the lines of one name with these labels
    my ($m, $name, %want) = @_;
    my $s = 0;
    for my $k (keys %$m) {
        my ($n, $lab) = $k =~ /^(\w+)(?:\{(.*)\})?$/ or next;
        next if $n ne $name;
        my %l = ($lab // '') =~ /(\w+)="([^"]*)"/g;
        next if grep { ($l{$_} // '') ne $want{$_} } keys %want;
        $s += $m->{$k};
    }
    return $s;
}

# the decoding workers' own inter-token histogram (their engine steps,
# before nginx and the client): buckets summed over the workers
sub engine_itl {
    my (@ms) = @_;
    my (%b, $sum, $n);
    for my $m (@ms) {
        for my $k (keys %$m) {
            if ($k =~ /^dynamo_worker_inter_token_latency_seconds_bucket\{le="([^"]+)"\}$/) {
                $b{$1} += $m->{$k};
            }
        }
        $sum += $m->{dynamo_worker_inter_token_latency_seconds_sum} // 0;
        $n += $m->{dynamo_worker_inter_token_latency_seconds_count} // 0;
    }
    return {} if !$n;
    my @le = sort { ($a eq '+Inf') <=> ($b eq '+Inf') || $a <=> $b } keys %b;
    my %r = (mean_ms => 1000 * $sum / $n, count => $n);
    for my $p (50, 99) {
        my ($x) = grep { $b{$_} >= $n * $p / 100 } @le;
        $r{"p${p}_le_ms"} = defined $x && $x ne '+Inf' ? 1000 * $x : undef;
    }
    return \%r;
}

my (%res, %cdf);
for my $c (@cfgs) {
    my (%cls, @all, $dur, $out_tok, $in_tok, $done, $failed);
    ($dur, $out_tok, $in_tok, $done, $failed) = (0, 0, 0, 0, 0);
    for my $k (qw(chat long)) {
        my $sum = eval { JSON::PP::decode_json(slurp("$dir/$c/$k.json")
                                               // '') } // {};
        my $reqs = requests("$dir/$c/$k.jsonl");
        my @ok = grep { $_->{ok} } @$reqs;
        $failed += @$reqs - @ok;
        $done += @ok;
        $dur = $sum->{duration} if ($sum->{duration} // 0) > $dur;
        for (@ok) {
            $out_tok += $_->{output_tokens} // 0;
            $in_tok += $_->{prompt_tokens} // 0;
        }
        my @ttft = map { $_->{ttft_ms} } @ok;
        my @tpot = map { $_->{tpot_ms} } grep { defined $_->{tpot_ms} } @ok;
        $cls{$k} = { completed => scalar @ok,
                     failed => @$reqs - @ok,
                     mean_ttft_ms => mean(@ttft),
                     p99_ttft_ms => pct(99, @ttft),
                     mean_tpot_ms => mean(@tpot),
                     p99_tpot_ms => pct(99, @tpot) };
        push @all, @ok;
    }
    my @ttft = map { $_->{ttft_ms} } @all;
    my @tpot = map { $_->{tpot_ms} } grep { defined $_->{tpot_ms} } @all;
    my @itl = map { @{ $_->{itl_ms} // [] } } @all;
    my $dm = metrics("$dir/$c/decode.metrics");
    my $pm = metrics("$dir/$c/prefill.metrics");
    my %dec;
    for my $k (keys %$dm) {
        my ($lab) = $k =~ /^dynamo_worker_prefill_requests_total\{(.*)\}$/
            or next;
        my %l = $lab =~ /(\w+)="([^"]*)"/g;
        my $name = $l{mode} eq 'remote' ? 'remote'
                   : "$l{mode}" . ($l{reason} ? ":$l{reason}" : '');
        $dec{$name} += $dm->{$k};
    }
    my @dec_m = -e "$dir/$c/decode.metrics" ? ($dm)
                : map { metrics($_) } glob "$dir/$c/w*.metrics";
    my $eitl = engine_itl(@dec_m);
    my $bytes = msum($pm, 'dynamo_worker_kv_transfer_bytes_total');
    my $secs = msum($pm, 'dynamo_worker_kv_transfer_seconds_total');
    $res{$c} = {
        title => $title{$c} // $c,
        completed => $done, failed => $failed, duration_s => $dur,
        p99_tpot_ms => pct(99, @tpot), mean_tpot_ms => mean(@tpot),
        p99_itl_ms => pct(99, @itl), mean_itl_ms => mean(@itl),
        mean_ttft_ms => mean(@ttft), p99_ttft_ms => pct(99, @ttft),
        output_throughput => $dur ? $out_tok / $dur : 0,
        total_token_throughput => $dur ? ($in_tok + $out_tok) / $dur : 0,
        request_throughput => $dur ? $done / $dur : 0,
        chat => $cls{chat}, long => $cls{long},
        engine_itl => $eitl,
        prefill_decisions => \%dec,
        remote_ok => msum($dm, 'dynamo_worker_remote_prefill_total',
                          result => 'ok'),
        fallbacks => msum($dm, 'dynamo_worker_remote_prefill_total',
                          result => 'timeout')
                     + msum($dm, 'dynamo_worker_remote_prefill_total',
                            result => 'error'),
        kv_transfer_bytes => $bytes, kv_transfer_seconds => $secs,
        kv_transfer_gbps => $secs > 0 ? $bytes / $secs / 1e9 : undef,
        kv_transfers => msum($pm, 'dynamo_worker_kv_transfers_total'),
    };
    $cdf{tpot}{$c} = [ sort { $a <=> $b } @tpot ];
    $cdf{ttft}{$c} = [ sort { $a <=> $b } @ttft ];
}

# ---- the table ----------------------------------------------------------
my @rows = (
    [ 'P99 TPOT (ms), all streams', sub { $_[0]{p99_tpot_ms} } ],
    [ 'P99 ITL (ms), all streams', sub { $_[0]{p99_itl_ms} } ],
    [ 'mean TTFT (ms), all requests', sub { $_[0]{mean_ttft_ms} } ],
    [ 'P99 TTFT (ms), all requests', sub { $_[0]{p99_ttft_ms} } ],
    [ 'output throughput (tok/s)', sub { $_[0]{output_throughput} } ],
    [ 'total throughput (tok/s)', sub { $_[0]{total_token_throughput} } ],
    [ 'requests completed', sub { $_[0]{completed} } ],
    [ 'requests failed', sub { $_[0]{failed} } ],
    [ 'mean TPOT (ms), all streams', sub { $_[0]{mean_tpot_ms} } ],
    [ 'engine ITL mean (ms)', sub { $_[0]{engine_itl}{mean_ms} } ],
    [ 'engine ITL P99 (ms, <= bucket)',
      sub { $_[0]{engine_itl}{p99_le_ms} } ],
    [ 'chat: P99 TPOT (ms)', sub { $_[0]{chat}{p99_tpot_ms} } ],
    [ 'chat: mean TTFT (ms)', sub { $_[0]{chat}{mean_ttft_ms} } ],
    [ 'chat: P99 TTFT (ms)', sub { $_[0]{chat}{p99_ttft_ms} } ],
    [ 'long: mean TTFT (ms)', sub { $_[0]{long}{mean_ttft_ms} } ],
    [ 'long: P99 TTFT (ms)', sub { $_[0]{long}{p99_ttft_ms} } ],
    [ 'long: completed', sub { $_[0]{long}{completed} } ],
);
my $w = 30;
printf "%-${w}s", 'figure';
printf " %12s", $_ for @cfgs;
printf " %8s", "$_/$cfgs[0]" for @cfgs[1 .. $#cfgs];
print "\n";
for my $r (@rows) {
    my ($name, $f) = @$r;
    printf "%-${w}s", $name;
    my @v = map { $f->($res{$_}) // 0 } @cfgs;
    printf " %12.2f", $_ for @v;
    for my $i (1 .. $#v) {
        printf " %8s", $v[0] ? sprintf('%.2fx', $v[$i] / $v[0]) : '-';
    }
    print "\n";
}
print "\n";
for my $c (@cfgs) {
    my $r = $res{$c};
    printf "%s\n", $r->{title};
    next if !%{ $r->{prefill_decisions} };
    printf "  decode worker prefills: %s\n", join ', ',
        map { "$_ $r->{prefill_decisions}{$_}" }
        grep { $r->{prefill_decisions}{$_} }
        sort keys %{ $r->{prefill_decisions} };
    printf "  remote prefills ok %d, fallbacks %d; KV transferred %.1f MB"
           . " in %d transfers, %.3f s: %s GB/s\n", $r->{remote_ok},
        $r->{fallbacks}, $r->{kv_transfer_bytes} / 1e6, $r->{kv_transfers},
        $r->{kv_transfer_seconds},
        defined $r->{kv_transfer_gbps}
            ? sprintf('%.2f', $r->{kv_transfer_gbps}) : '-';
}
if ($res{a} && $res{a}{p99_tpot_ms}) {
    print "\ngoals (the issue's):\n";
    for my $c (grep { $_ ne 'a' } @cfgs) {
        my $x = $res{$c}{p99_tpot_ms}
                ? $res{a}{p99_tpot_ms} / $res{$c}{p99_tpot_ms} : 0;
        printf "  %s: P99 TPOT %.1fx lower than (a) (goal >= 5x): %s\n",
            $c, $x, $x >= 5 ? 'met' : 'missed';
    }
    for my $c (grep { $res{$_} && $res{a}{mean_ttft_ms} } qw(c d)) {
        my $x = $res{$c}{mean_ttft_ms} / $res{a}{mean_ttft_ms};
        printf "  %s: mean TTFT %.2fx (a)'s (goal <= 1.2x): %s\n", $c, $x,
            $x <= 1.2 ? 'met' : 'missed';
    }
}

# ---- files --------------------------------------------------------------
open my $j, '>', $out or die "$out: $!\n";
print $j $json->encode({ bench => 'disagg', settings => \%set,
                         configs => \@cfgs, results => \%res });
close $j;

for my $m (qw(tpot ttft)) {
    open my $d, '>', "$dir/plot-$m.dat" or die "$dir/plot-$m.dat: $!\n";
    for my $c (@cfgs) {
        my $v = $cdf{$m}{$c};
        print $d "# $c\n";
        for my $i (0 .. $#$v) {
            printf $d "%.3f %.5f\n", $v->[$i], ($i + 1) / @$v;
        }
        print $d "0 0\n" if !@$v;
        print $d "\n\n";
    }
    close $d;
}
open my $t, '>', "$dir/plot-titles.gp" or die $!;
for my $i (0 .. $#cfgs) {
    print $t "t$i = '" . ($title{$cfgs[$i]} // $cfgs[$i]) . "'\n";
}
print $t 'n = ' . scalar(@cfgs) . "\n";
close $t;
