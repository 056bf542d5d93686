#!/usr/bin/perl
# Table and JSON of the gateway benchmark (run.sh): reads DIR/out/a-N.json,
# b-N.json (wrk via post.lua, plus nginx CPU seconds), DIR/bodies/info-N and
# DIR/out/route.json (dynamo-route-bench); writes OUT_JSON and
# DIR/out/plot.dat.
#   report.pl DIR OUT_JSON KEY=VALUE...
use strict;
use warnings;
use JSON::PP;

my ($dir, $out, @kv) = @ARGV;
die "usage: report.pl DIR OUT_JSON KEY=VALUE...\n" unless defined $out;
my %cfg = map { split /=/, $_, 2 } @kv;
my @sizes = split ' ', $cfg{sizes};
my $json = JSON::PP->new->canonical;

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return undef;
    local $/;
    my $s = <$fh>;
    close $fh;
    return $s;
}

sub load { my $s = slurp($_[0]); return defined $s ? decode_json($s) : undef }

sub f { defined $_[0] ? sprintf($_[1], $_[0]) : '-' }

sub median {
    my @v = sort { $a <=> $b } grep { defined } @_;
    return undef unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

# one configuration's rounds: medians of rps and latencies, sums of the rest
sub combine {
    my @r = @_;
    return undef unless @r;
    my %c = (rounds => \@r);
    for my $k (qw(rps p50_ms p90_ms p99_ms mean_ms)) {
        $c{$k} = median(map { $_->{$k} } @r);
    }
    for my $k (qw(requests seconds bytes nginx_cpu_s workers_redis_cpu_s
                  nginx_cores_busy_s)) {
        $c{$k} += $_->{$k} for @r;
    }
    for my $r (@r) {
        $c{errors}{$_} += $r->{errors}{$_} for keys %{ $r->{errors} };
    }
    $c{max_ms} = (sort { $b <=> $a } map { $_->{max_ms} } @r)[0];
    $c{nginx_cpu_us_per_request} = $c{requests}
        ? $c{nginx_cpu_s} * 1e6 / $c{requests} : undef;
    $c{nginx_cpu_util} = $c{seconds} ? $c{nginx_cpu_s} / $c{seconds} : undef;
    # what other processes took of nginx's cores meanwhile
    # (tick granularity can make it slightly negative: 0)
    $c{others_on_nginx_cores_util} = $c{seconds}
        ? ($c{nginx_cores_busy_s} - $c{nginx_cpu_s}) / $c{seconds} : undef;
    $c{others_on_nginx_cores_util} = 0
        if defined $c{others_on_nginx_cores_util}
           && $c{others_on_nginx_cores_util} < 0;
    $c{nginx_core_rps} = $c{nginx_cpu_s}
        ? $c{requests} / $c{nginx_cpu_s} : undef;
    $c{workers_redis_cpu_us_per_request} = $c{requests}
        ? $c{workers_redis_cpu_s} * 1e6 / $c{requests} : undef;
    return \%c;
}

my @rows;
for my $t (@sizes) {
    my (%runs, $a, $b);
    for my $n (qw(a b)) {
        for my $k (1 .. $cfg{rounds}) {
            push @{ $runs{$n} }, load("$dir/out/$n-$t-$k.json") // next;
        }
    }
    ($a, $b) = (combine(@{ $runs{a} // [] }), combine(@{ $runs{b} // [] }));
    my ($tmin, $tmax, $bytes) = split ' ', (slurp("$dir/bodies/info-$t") // '');
    my %r = (tokens => $t + 0, prompt_tokens_min => $tmin + 0,
             prompt_tokens_max => $tmax + 0, prompt_bytes => $bytes + 0);
    for ([ proxy_pass => $a, 'a' ], [ dynamo_pass => $b, 'b' ]) {
        my ($k, $v, $n) = @$_;
        next unless $v;
        my $pt = slurp("$dir/out/prompt-tokens-$n-$t");
        $v->{check_prompt_tokens} = $pt + 0 if defined $pt;
        $r{$k} = $v;
    }
    if ($a && $b && @{ $a->{rounds} } == @{ $b->{rounds} }) {
        # per round (A and B ran back to back), then the median
        my @p = map { [ $a->{rounds}[$_], $b->{rounds}[$_] ] }
                0 .. $#{ $a->{rounds} };
        $r{rps_ratio} = median(map { $_->[0]{rps} > 0
                                     ? $_->[1]{rps} / $_->[0]{rps} : undef }
                               @p);
        $r{rps_ratio_rounds} = [ map { $_->[0]{rps} > 0
                                       ? $_->[1]{rps} / $_->[0]{rps} : undef }
                                 @p ];
        $r{added_p50_ms} = median(map { $_->[1]{p50_ms} - $_->[0]{p50_ms} } @p);
        $r{added_p99_ms} = median(map { $_->[1]{p99_ms} - $_->[0]{p99_ms} } @p);
        $r{added_cpu_us_per_request} = $b->{nginx_cpu_us_per_request}
            - $a->{nginx_cpu_us_per_request};
    }
    push @rows, \%r;
}

my $route = load("$dir/out/route.json");
my %goals;
my $nagle = ($cfg{worker_keepalive_second_request_s} // 0) > 0.03;
for my $r (@rows) {
    next unless $r->{tokens} == 1024 && defined $r->{rps_ratio};
    # meaningless while the workers' delayed replies dominate both
    $goals{rps_ratio_1k_min_0_9} = $nagle ? undef
        : $r->{rps_ratio} >= 0.9 ? JSON::PP::true : JSON::PP::false;
}
if ($route) {
    for my $x (@{ $route->{results} }) {
        next unless $x->{target_tokens} == 32768;
        $goals{"route_32k_p50_under_5ms_$x->{tokenizer}"} =
            $x->{p50}{total_ms} < 5 ? JSON::PP::true : JSON::PP::false;
    }
}

my %doc = (config => \%cfg, results => \@rows, route => $route,
           goals => \%goals);
$cfg{sizes} = [ map { $_ + 0 } @sizes ];
for (keys %cfg) {
    $cfg{$_} += 0 if !ref $cfg{$_} && $cfg{$_} =~ /^\d+(\.\d+)?$/;
}
open my $fh, '>', $out or die "report.pl: $out: $!\n";
print $fh $json->pretty->encode(\%doc);
close $fh;

printf "\ngateway overhead: %s mock workers (speedup %s), %s connections, "
    . "%s rounds x %ss, nginx worker_processes %s on cpu %s, wrk on cpu %s\n",
    @cfg{qw(workers speedup connections rounds seconds nginx_workers
            nginx_cpus load_cpus)};
printf "A = proxy_pass to /v1/generate (token ids), B = dynamo_pass "
    . "/v1/completions (text), max_tokens %s, non-streaming\n",
    $cfg{max_tokens};
print "req/s, p50, p99: medians of the rounds; B/A and +p50/+p99: medians "
    . "of the per-round\nvalues (A and B back to back); cpu: nginx worker "
    . "CPU time per request\n\n";
if ($nagle) {
    printf "WARNING: the workers answer a reused connection %.0f ms late "
        . "(Nagle + delayed ACK):\nthe latencies below carry that delay\n\n",
        1000 * $cfg{worker_keepalive_second_request_s};
}
my $fmt = "%-7s %-12s %8s %8s %6s %7s %7s %7s %7s %7s %7s\n";
printf $fmt, 'tokens', 'prompt tok', 'A req/s', 'B req/s', 'B/A', 'A p50',
    'B p50', '+p50', 'A p99', 'B p99', '+p99';
open my $pd, '>', "$dir/out/plot.dat" or die;
for my $r (@rows) {
    my ($a, $b) = ($r->{proxy_pass} // {}, $r->{dynamo_pass} // {});
    printf $fmt,
        $r->{tokens}, "$r->{prompt_tokens_min}-$r->{prompt_tokens_max}",
        f($a->{rps}, '%.1f'), f($b->{rps}, '%.1f'),
        f($r->{rps_ratio}, '%.3f'),
        f($a->{p50_ms}, '%.2f'), f($b->{p50_ms}, '%.2f'),
        f($r->{added_p50_ms}, '%+.2f'),
        f($a->{p99_ms}, '%.2f'), f($b->{p99_ms}, '%.2f'),
        f($r->{added_p99_ms}, '%+.2f');
    for ($a, $b) {
        my $e = $_->{errors} // {};
        my $n = 0;
        $n += $_ for values %$e;
        print "  errors in a run: ", $json->encode($e), "\n" if $n;
    }
    if ($a->{check_prompt_tokens} && $b->{check_prompt_tokens}
        && $a->{check_prompt_tokens} != $b->{check_prompt_tokens})
    {
        printf "  note: the worker saw %d prompt tokens from A, %d from B\n",
            $a->{check_prompt_tokens}, $b->{check_prompt_tokens};
    }
    printf $pd "%s %s %s %s %s\n", $r->{tokens}, $a->{rps} // 0,
        $b->{rps} // 0, $r->{added_p50_ms} // 0, $r->{added_p99_ms} // 0;
}
print "\nCPU time per request, us (all rounds): nginx's workers; the mock "
    . "workers + Redis.\nutil: nginx's share of its cores; others: what "
    . "other processes took of them\n";
print "core req/s: requests/s one nginx core would sustain at that cost "
    . "(1e6 / us per request)\n";
$fmt = "%-7s %7s %7s %7s %8s %8s %6s %6s %6s %6s %6s %6s\n";
printf $fmt, 'tokens', 'nginx A', 'nginx B', '+nginx', 'A core', 'B core',
    'A util', 'B util', 'others', 'others', 'load A', 'load B';
printf $fmt, '', 'us/req', 'us/req', 'us/req', 'req/s', 'req/s', '', '',
    'A', 'B', 'us/req', 'us/req';
for my $r (@rows) {
    my ($a, $b) = ($r->{proxy_pass} // {}, $r->{dynamo_pass} // {});
    printf $fmt, $r->{tokens},
        f($a->{nginx_cpu_us_per_request}, '%.0f'),
        f($b->{nginx_cpu_us_per_request}, '%.0f'),
        f($r->{added_cpu_us_per_request}, '%+.0f'),
        (map { f($_->{nginx_cpu_us_per_request}
                 ? 1e6 / $_->{nginx_cpu_us_per_request} : undef, '%.0f') }
             $a, $b),
        f(defined $a->{nginx_cpu_util} ? 100 * $a->{nginx_cpu_util} : undef,
          '%.0f%%'),
        f(defined $b->{nginx_cpu_util} ? 100 * $b->{nginx_cpu_util} : undef,
          '%.0f%%'),
        (map { f(defined $_->{others_on_nginx_cores_util}
                 ? 100 * $_->{others_on_nginx_cores_util} : undef, '%.0f%%') }
             $a, $b),
        f($a->{workers_redis_cpu_us_per_request}, '%.0f'),
        f($b->{workers_redis_cpu_us_per_request}, '%.0f');
}
close $pd;
print "\n";
for my $k (sort keys %goals) {
    printf "goal %-44s %s\n", $k, !defined $goals{$k}
        ? 'not measured (worker reply delay)' : $goals{$k} ? 'met' : 'NOT met';
}
print "\n";
