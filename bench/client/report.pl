#!/usr/bin/perl
# The client-overhead table and JSON from bench/client/run.sh's per-step
# results: for each stream count, dynamo-bench's summary (c<N>*.json) and
# per-request records (c<N>*.jsonl), its CPU seconds (cpu.<N>), against the
# scripted TTFT and ITL.
#
#   perl report.pl --dir D --ttft MS --itl MS --tokens N --pinned 0|1
#       --streams "1 100 1000" --json OUT.json --dat OUT.dat
use strict;
use warnings;

use Getopt::Long qw(GetOptions);
use JSON::PP ();

my %o;
GetOptions(\%o, 'dir=s', 'ttft=f', 'itl=f', 'tokens=i', 'pinned=i',
           'streams=s', 'json=s', 'dat=s', 'load=s')
    or die "report.pl: bad flags\n";
my $json = JSON::PP->new->canonical->pretty;

sub slurp {
    my ($p) = @_;
    open my $f, '<', $p or return undef;
    local $/;
    my $t = <$f>;
    close $f;
    return $t;
}

# numpy.percentile, linear interpolation
sub pct {
    my ($s, $p) = @_;
    return 0 if !@$s;
    my $r = $p / 100 * (@$s - 1);
    my $lo = int $r;
    my $hi = $lo + 1 < @$s ? $lo + 1 : $lo;
    return $s->[$lo] + ($s->[$hi] - $s->[$lo]) * ($r - $lo);
}

sub max0 { return $_[0] > 0 ? $_[0] : 0 }

sub mean {
    my $s = 0;
    $s += $_ for @_;
    return @_ ? $s / @_ : 0;
}

sub find_file {
    my ($n, $ext) = @_;
    opendir my $d, $o{dir} or die "$o{dir}: $!\n";
    my @f = sort grep { /^c\Q$n\E(?:[.-].*)?\Q$ext\E$/ } readdir $d;
    closedir $d;
    return @f ? "$o{dir}/$f[0]" : undef;
}

my ($bu, $bs) = split ' ', slurp("$o{dir}/cpu.base") // '0 0';
my $base = $bu + $bs;

my @steps;
for my $n (split ' ', $o{streams}) {
    my $sp = find_file($n, '.json')
        or die "report.pl: no summary for $n streams in $o{dir}\n";
    my $s = $json->decode(slurp($sp));
    my (@itl, @ttft);
    if (my $dp = find_file($n, '.jsonl')) {
        for my $l (split /\n/, slurp($dp) // '') {
            next if $l !~ /\S/;
            my $r = eval { $json->decode($l) } or next;
            next if $r->{warmup} || !$r->{ok};
            push @ttft, $r->{ttft_ms};
            push @itl, @{ $r->{itl_ms} // [] };
        }
    }
    @itl = sort { $a <=> $b } @itl;
    @ttft = sort { $a <=> $b } @ttft;
    my ($user, $sys) = split ' ', slurp("$o{dir}/cpu.$n") // '0 0';
    my $cpu = $user + $sys;
    my ($t0, $t1, $hz) = split ' ', slurp("$o{dir}/serve.$n") // '0 0 100';
    # the runner's own account (DYNAMO_BENCH_CLIENT_STATS=1), when given:
    # "wake-to-stamp us: mean M p50 P p99 Q max X; ... = U us/piece"
    my %cs;
    my $re = qr/wake-to-stamp us: mean (\S+) p50 (\S+) p99 (\S+) max (\S+);/;
    if ((slurp("$o{dir}/run.$n.err") // '') =~ /$re.*= (\S+) us\/piece/) {
        @cs{qw(mean p50 p99 max piece)} = ($1, $2, $3, $4, $5);
    }
    my $serve_cpu = $hz ? ($t1 - $t0) / $hz : 0;
    my $out = $s->{total_output_tokens} || 0;
    # from the per-request records when there (every gap), else from the
    # summary's figures
    my %st = (
        streams          => $n + 0,
        requests         => ($s->{completed} // 0) + ($s->{failed} // 0),
        failed           => $s->{failed} // 0,
        duration_s       => $s->{duration},
        output_tokens    => $out,
        output_tok_per_s => $s->{output_throughput},
        ttft_mean_ms     => @ttft ? mean(@ttft) : $s->{mean_ttft_ms},
        ttft_p99_ms      => @ttft ? pct(\@ttft, 99) : $s->{p99_ttft_ms},
        itl_n            => scalar @itl,
        itl_mean_ms      => @itl ? mean(@itl) : $s->{mean_itl_ms},
        itl_p50_ms       => @itl ? pct(\@itl, 50) : $s->{median_itl_ms},
        itl_p99_ms       => @itl ? pct(\@itl, 99) : $s->{p99_itl_ms},
        itl_p999_ms      => @itl ? pct(\@itl, 99.9) : undef,
        cpu_s            => $cpu,
        cpu_base_s       => $base,
        # marginal: net of a one-request run's CPU and its tokens; null
        # when under 0.2 s, as the kernel counts CPU time in 10 ms ticks
        cpu_us_per_token => $out > $o{tokens} && $cpu - $base >= 0.2
            ? 1e6 * ($cpu - $base) / ($out - $o{tokens}) : undef,
        peak_concurrency => $s->{peak_concurrency},
        serve_cpu_s      => $serve_cpu,
        stamp_delay_mean_us => $cs{mean},
        stamp_delay_p50_us  => $cs{p50},
        stamp_delay_p99_us  => $cs{p99},
        stamp_delay_max_us  => $cs{max},
        client_us_per_piece => $cs{piece},
        # the server's CPU over the whole step (start-up included) per
        # second of the timed run: near 1 = the server is the bottleneck
        serve_cpu_share  => $s->{duration} ? $serve_cpu / $s->{duration}
                                           : undef,
        client_cpu_share => $s->{duration} ? $cpu / $s->{duration} : undef,
    );
    $st{ttft_excess_mean_ms} = $st{ttft_mean_ms} - $o{ttft};
    $st{itl_excess_mean_ms} = $st{itl_mean_ms} - $o{itl};
    $st{itl_excess_p50_ms} = $st{itl_p50_ms} - $o{itl};
    $st{itl_excess_p99_ms} = $st{itl_p99_ms} - $o{itl};
    push @steps, \%st;
}

printf "\ndynamo-bench client overhead: serve scripted ttft %g ms, itl %g ms, "
     . "%d tokens; %s\n", $o{ttft}, $o{itl}, $o{tokens},
     ($o{pinned} ? 'serve and client on different cores'
                 : 'not pinned') . "; load average $o{load}";
my @h = ('streams', 'reqs', 'fail', 'TTFT mean', 'TTFT p99', '+mean',
         'ITL mean', 'ITL p50', 'ITL p99', '+mean', '+p50', '+p99',
         'CPU us/tok', 'tok/s', 'cli CPU', 'srv CPU');
my $fmt = "%7s %5s %4s %9s %9s %7s %9s %8s %8s %7s %7s %7s %10s %8s %7s "
        . "%7s\n";
printf $fmt, @h;
printf $fmt, ('') x 3, "ms", "ms", "ms", "ms", "ms", "ms", "ms", "ms", "ms",
       '', '', 'cores', 'cores';
for my $s (@steps) {
    printf "%7d %5d %4d %9.2f %9.2f %7.2f %9.2f %8.2f %8.2f %7.2f %7.2f "
         . "%7.2f %10s %8.0f %7.2f %7.2f\n",
        @{$s}{qw(streams requests failed ttft_mean_ms ttft_p99_ms
                 ttft_excess_mean_ms itl_mean_ms itl_p50_ms itl_p99_ms
                 itl_excess_mean_ms itl_excess_p50_ms itl_excess_p99_ms)},
        defined $s->{cpu_us_per_token}
            ? sprintf('%.2f', $s->{cpu_us_per_token}) : 'n/a',
        $s->{output_tok_per_s} // 0,
        $s->{client_cpu_share} // 0, $s->{serve_cpu_share} // 0;
}
print "(+: measured minus scripted; CPU us/tok: dynamo-bench's user + "
    . "system time per output\n token beyond those of a one-request run ("
    . sprintf('%.3f', $base) . " s); n/a under 0.2 s of CPU (10 ms "
    . "ticks); cli/srv CPU:\n CPU seconds of dynamo-bench / of serve per "
    . "second of the run)\n";

open my $j, '>', $o{json} or die "$o{json}: $!\n";
print $j $json->encode({
    scripted => { ttft_ms => $o{ttft}, itl_ms => $o{itl},
                  tokens => $o{tokens} },
    pinned => $o{pinned} ? JSON::PP::true : JSON::PP::false,
    load_average => $o{load},
    client_start_cpu_s => $base,
    steps => \@steps });
close $j;

if (grep { defined $_->{stamp_delay_p50_us} } @steps) {
    print "\nthe runner's own account: from waking up to timestamping a "
        . "piece received (us)\n";
    printf "%7s %9s %9s %9s %9s %12s\n", 'streams', 'mean', 'p50', 'p99',
        'max', 'CPU us/piece';
    for my $s (@steps) {
        printf "%7d %9s %9s %9s %9s %12s\n", $s->{streams},
            map { $_ // 'n/a' } @{$s}{qw(stamp_delay_mean_us
                stamp_delay_p50_us stamp_delay_p99_us stamp_delay_max_us
                client_us_per_piece)};
    }
}

open my $d, '>', $o{dat} or die "$o{dat}: $!\n";
print $d "# streams itl_excess_mean itl_excess_p50 itl_excess_p99 "
       . "ttft_excess_mean cpu_us_per_token client_us_per_piece\n";
printf $d "%d %.4f %.4f %.4f %.4f %s %s\n",
    @{$_}{qw(streams itl_excess_mean_ms itl_excess_p50_ms itl_excess_p99_ms
             ttft_excess_mean_ms)},
    map { defined $_ ? sprintf('%.4f', $_) : '?' }
        @{$_}{qw(cpu_us_per_token client_us_per_piece)}
    for @steps;
close $d;
