# vim:set ft=perl ts=4 sw=4 et:
# dynamo-bench's metric arithmetic against `dynamo-bench serve` with
# scripted timings: TTFT, TPOT = (E2EL - TTFT) / (output_tokens - 1), ITL
# between token-bearing chunks (pooled), E2EL, throughput, goodput, as
# vLLM's benchmark_serving defines them; usage against the client's own
# token count; failures, timeouts and their summary; goodput; warm-ups;
# sessions (history and think time on the wire); --max-concurrency,
# --request-rate, --burstiness and --duration seen from the server's
# request log; 500 streams at once; an idle wait costs no CPU; SIGINT; the
# progress bar only on a terminal; request bodies; the result files with
# vLLM's keys; bad flags; --help.
#
# Timings are large (hundreds of ms) and tolerances tens of ms, so a
# loaded 2-core CI machine passes; relations that are exact (TPOT from
# E2EL and TTFT, summary statistics from the per-request records, counts)
# are checked exactly. Reference figures are computed here, from the
# script and from numpy's definitions (Test::Dynamo::Bench), never pasted
# from dynamo-bench's output.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use HTTP::Tiny ();
use List::Util qw(max);
use JSON::PP ();
use Test::Dynamo::Bench qw(:all);

plan skip_all => bench_bin() . ' missing (make)' if !-x bench_bin();

my $T = JSON::PP::true;
my @common = (tok_args(), '--model', 'stories260K', '--random-input-len', 16,
              '--disable-tqdm');

sub bench {
    my ($s, $args, %o) = @_;
    return run_bench(['--base-url', $s->{url}, @common, @$args], %o);
}

sub near {
    my ($got, $want, $tol, $name) = @_;
    my $ok = defined $got && $got =~ /^-?[\d.]+(?:e[-+]?\d+)?$/i
             && abs($got - $want) <= $tol;
    ok($ok, $name) or diag("got " . ($got // 'undef')
                           . ", want $want +- $tol");
    return $ok;
}

sub within {
    my ($got, $lo, $hi, $name) = @_;
    my $ok = defined $got && $got =~ /^-?[\d.]+(?:e[-+]?\d+)?$/i
             && $got >= $lo && $got <= $hi;
    ok($ok, $name) or diag("got " . ($got // 'undef') . ", want [$lo, $hi]");
    return $ok;
}

sub ran_ok {
    my ($r, $name) = @_;
    is($r->{code}, 0, "$name: exit 0")
        or diag("stdout:\n$r->{out}\nstderr:\n$r->{err}");
}

sub timed { return [ grep { !$_->{warmup} } @{ $_[0]{jsonl} // [] } ] }

# the most requests open at once, from [start, start + e2el] intervals
sub max_overlap {
    my (@iv) = @_;
    my @ev;
    for (@iv) { push @ev, [$_->[0], 1], [$_->[1], -1] }
    my ($cur, $max) = (0, 0);
    for (sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] } @ev) {
        $cur += $_->[1];
        $max = $cur if $cur > $max;
    }
    return $max;
}

# ---------------------------------------------------------------------------

subtest 'TTFT, TPOT, ITL, E2EL from scripted timings (ttft 300, itl 100/200)'
=> sub {
    my $s = serve_ok(script => [{ ttft_ms => 300, itl_ms => [100, 200],
                                  tokens => 5 }]) or return;
    my $r = bench($s, ['--num-prompts', 4, '--max-concurrency', 2,
                       '--random-output-len', 5,
                       '--percentile-metrics', 'ttft,tpot,itl,e2el',
                       '--metric-percentiles', '50,90,99'], detailed => 1);
    ran_ok($r, 'run');
    my $j = $r->{json};
    my $req = timed($r);
    ok($j, 'summary JSON written') or return;
    is(scalar @$req, 4, 'four timed requests in the JSONL') or return;
    is($j->{completed}, 4, 'completed 4');
    is($j->{failed}, 0, 'failed 0');

    # per request: the script's schedule, and vLLM's TPOT exactly
    my (@ttft, @tpot, @itl, @e2el);
    for my $q (@$req) {
        my $i = $q->{index} // '?';
        ok($q->{ok}, "request $i ok");
        is($q->{output_tokens}, 5, "request $i: 5 output tokens (usage)");
        my @g = @{ $q->{itl_ms} // [] };
        is(scalar @g, 4, "request $i: 4 gaps between 5 token chunks");
        within($q->{ttft_ms}, 295, 420, "request $i: TTFT ~ 300 ms");
        my @want = (100, 200, 100, 200);
        for my $k (0 .. $#g) {
            near($g[$k], $want[$k], 40, "request $i: gap $k ~ $want[$k] ms");
        }
        within($q->{e2el_ms}, 890, 1050, "request $i: E2EL ~ 900 ms");
        near($q->{tpot_ms}, ($q->{e2el_ms} - $q->{ttft_ms}) / 4, 0.01,
             "request $i: TPOT = (E2EL - TTFT) / (5 - 1)");
        push @ttft, $q->{ttft_ms};
        push @tpot, $q->{tpot_ms};
        push @itl, @g;
        push @e2el, $q->{e2el_ms};
    }
    is(scalar @itl, 16, 'pooled ITL: sum(chunks - 1) = 16 gaps');

    # the summary: numpy's statistics over the per-request records
    my %ref = (ttft => \@ttft, tpot => \@tpot, itl => \@itl,
               e2el => \@e2el);
    for my $m (sort keys %ref) {
        my $v = $ref{$m};
        near($j->{"mean_${m}_ms"}, mean(@$v), 0.01, "mean_${m}_ms");
        near($j->{"median_${m}_ms"}, np_percentile($v, 50), 0.01,
             "median_${m}_ms");
        near($j->{"std_${m}_ms"}, stdev(@$v), 0.01,
             "std_${m}_ms (population)");
        for my $p (50, 90, 99) {
            near($j->{"p${p}_${m}_ms"}, np_percentile($v, $p), 0.01,
                 "p${p}_${m}_ms (linear interpolation)");
        }
    }
    # ... and against the script
    near($j->{mean_itl_ms}, 150, 20, 'mean ITL ~ 150 ms (100/200 alternate)');
    near($j->{median_itl_ms}, 150, 40, 'median ITL ~ 150 ms');
    near($j->{p99_itl_ms}, 200, 40, 'P99 ITL ~ 200 ms');
    near($j->{std_itl_ms}, 50, 15, 'std ITL ~ 50 ms');
    near($j->{mean_tpot_ms}, 150, 25, 'mean TPOT ~ 150 ms');
    within($j->{mean_ttft_ms}, 295, 420, 'mean TTFT ~ 300 ms');

    # throughput over the run's duration
    my $d = $j->{duration};
    within($d, 1.75, 2.6, 'duration ~ two waves of 900 ms');
    is($j->{total_output_tokens}, 20, 'total output tokens 20');
    my $in = 0;
    $in += $_->{prompt_tokens} for @$req;
    is($j->{total_input_tokens}, $in, 'total input = sum of prompt tokens');
    near($j->{request_throughput} * $d, 4, 4e-3, 'req/s = completed / dur');
    near($j->{output_throughput} * $d, 20, 0.02, 'tok/s = output / dur');
    near($j->{total_token_throughput} * $d, $in + 20, 0.02 + 1e-3 * $in,
         'total tok/s = (input + output) / duration');
    ok(!defined $j->{request_goodput}, 'request_goodput null without '
       . '--goodput');

    # the printed block: vLLM's layout and the same figures
    my $b = $r->{block};
    is($b->{_n}, 1, 'one "Serving Benchmark Result" block on stdout');
    my ($title) = $r->{out} =~ /^(=+ Serving Benchmark Result =+)\s*$/m;
    is(length($title // ''), 50, 'title centred in 50 "="');
    like($r->{out}, qr/^Successful requests: {21}4\s*$/m,
         'label column 40 wide ("{:<40} {:<10}")');
    is($b->{'Successful requests'}, 4, 'block: Successful requests');
    is($b->{'Failed requests'}, 0, 'block: Failed requests');
    is($b->{'Maximum request concurrency'}, 2,
       'block: Maximum request concurrency');
    is($b->{'Total generated tokens'}, 20, 'block: Total generated tokens');
    is($b->{'Total input tokens'}, $in, 'block: Total input tokens');
    for ([ 'Mean TTFT (ms)', 'mean_ttft_ms' ],
         [ 'Median TPOT (ms)', 'median_tpot_ms' ],
         [ 'P99 ITL (ms)', 'p99_itl_ms' ],
         [ 'P90 E2EL (ms)', 'p90_e2el_ms' ],
         [ 'Benchmark duration (s)', 'duration' ],
         [ 'Request throughput (req/s)', 'request_throughput' ],
         [ 'Output token throughput (tok/s)', 'output_throughput' ]) {
        near($b->{ $_->[0] }, $j->{ $_->[1] } // -1e9, 0.006,
             "block: $_->[0] = $_->[1] (2 decimals)");
    }
    for my $sec ('Time to First Token', 'Time per Output Token (excl. 1st '
                 . 'token)', 'Inter-token Latency', 'End-to-end Latency') {
        like($r->{out}, qr/^-+\Q$sec\E-+\s*$/m, "section: $sec");
    }

    # the result files
    my @f = @{ $r->{files} // [] };
    ok((grep { /\.json$/ } @f), '.json written');
    ok((grep { /\.csv$/ } @f), '.csv written');
    ok((grep { /\.jsonl$/ } @f), '.jsonl written (--save-detailed)');
    for my $k (qw(date model_id base_url endpoint dataset_name request_rate
                  burstiness max_concurrency duration completed failed
                  total_input_tokens total_output_tokens request_throughput
                  request_goodput output_throughput total_token_throughput
                  mean_ttft_ms median_ttft_ms std_ttft_ms p99_ttft_ms
                  mean_tpot_ms median_tpot_ms std_tpot_ms p99_tpot_ms
                  mean_itl_ms median_itl_ms std_itl_ms p99_itl_ms
                  mean_e2el_ms p90_e2el_ms)) {
        ok(exists $j->{$k}, "summary key $k");
    }
    is($j->{max_concurrency}, 2, 'max_concurrency 2');
    is($j->{request_rate}, 'inf', 'request_rate "inf" as vLLM writes it');
    my $row = ($r->{csv} // [])->[0] // {};
    is($row->{completed}, 4, 'CSV: completed');
    near($row->{mean_ttft_ms}, $j->{mean_ttft_ms}, 0.01, 'CSV: mean_ttft_ms');
    for my $q (@$req) {
        for my $k (qw(index ok start_ms ttft_ms e2el_ms tpot_ms itl_ms
                      prompt_tokens output_tokens cached_tokens)) {
            ok(exists $q->{$k}, "JSONL key $k") or last;
        }
        last;
    }
    stop_serve($s);
};

subtest 'empty chunks are not tokens' => sub {
    my $s = serve_ok(script => [{ ttft_ms => 200, itl_ms => 100,
                                  tokens => 4, empty_chunks => $T }])
        or return;
    my $r = bench($s, ['--num-prompts', 2, '--random-output-len', 4],
                  detailed => 1);
    ran_ok($r, 'run');
    my $req = timed($r);
    is(scalar @$req, 2, 'two requests') or return;
    for my $q (@$req) {
        is($q->{output_tokens}, 4, 'four output tokens');
        my @g = @{ $q->{itl_ms} // [] };
        is(scalar @g, 3, 'three gaps: empty chunks are no token chunks');
        near($_, 100, 35, 'gap ~ 100 ms') for @g;
        within($q->{ttft_ms}, 195, 320, 'TTFT ~ 200 ms');
    }
    near($r->{json}{mean_itl_ms}, 100, 20, 'mean ITL ~ 100 ms');
    stop_serve($s);
};

subtest 'chunk_tokens 4: ITL per chunk, TPOT per token' => sub {
    my $s = serve_ok(script => [{ ttft_ms => 200, itl_ms => 200,
                                  tokens => 8, chunk_tokens => 4 }])
        or return;
    my $r = bench($s, ['--num-prompts', 2, '--random-output-len', 8],
                  detailed => 1);
    ran_ok($r, 'run');
    my $req = timed($r);
    is(scalar @$req, 2, 'two requests') or return;
    for my $q (@$req) {
        is($q->{output_tokens}, 8, '8 output tokens (usage)');
        my @g = @{ $q->{itl_ms} // [] };
        is(scalar @g, 1, 'one gap between two chunks');
        near($g[0], 200, 40, 'the gap ~ 200 ms');
        near($q->{tpot_ms}, ($q->{e2el_ms} - $q->{ttft_ms}) / 7, 0.01,
             'TPOT = (E2EL - TTFT) / (8 - 1)');
    }
    near($r->{json}{mean_tpot_ms}, 200 / 7, 7, 'mean TPOT ~ 200/7 ms');
    near($r->{json}{mean_itl_ms}, 200, 40, 'mean ITL ~ 200 ms');
    stop_serve($s);
};

subtest 'output tokens: usage when sent, else the text tokenized' => sub {
    my %t = (ttft_ms => 50, itl_ms => 20, tokens => 6);
    my $s = serve_ok(script => [\%t]) or return;
    my $r = bench($s, ['--num-prompts', 2, '--random-output-len', 6],
                  detailed => 1);
    ran_ok($r, 'with usage');
    is($_->{output_tokens}, 6, 'usage.completion_tokens: 6')
        for @{ timed($r) };
    is($r->{json}{total_output_tokens}, 12, 'total 12');
    stop_serve($s);

    my $n = serve_ok(script => [\%t], no_usage => 1) or return;
    # the server's text, fetched here, counted by dynamo-kv's tokenizer
    my $h = HTTP::Tiny->new(timeout => 10)->post(
        "$n->{url}/v1/completions",
        { headers => { 'Content-Type' => 'application/json' },
          content => json_encode({ model => 'stories260K', prompt => 'a b',
                                   max_tokens => 6 }) });
    is($h->{status}, 200, 'non-streamed completion from serve');
    my $text = eval { json_decode($h->{content})->{choices}[0]{text} } // '';
    like($text, qr/tok/, "the scripted text ($text)");
    my $want = tokenize_count($text);
    isnt($want, 6, "it tokenizes to $want tokens, not 6 (a real check)");
    my $nr = bench($n, ['--num-prompts', 2, '--random-output-len', 6],
                   detailed => 1);
    ran_ok($nr, '--no-usage');
    is($_->{output_tokens}, $want, "no usage: the text counted: $want")
        for @{ timed($nr) };
    is($nr->{json}{total_output_tokens}, 2 * $want, 'total 2 x that');
    stop_serve($n);
};

subtest 'failures: 500, in-stream error, disconnect' => sub {
    my $s = serve_ok(ttft_ms => 50, itl_ms => 20, output_len => 4,
                     script => [{}, { status => 500 },
                                { error_after => 2 },
                                { disconnect_after => 2 }]) or return;
    my $r = bench($s, ['--num-prompts', 4, '--max-concurrency', 1,
                       '--random-output-len', 4], detailed => 1);
    ran_ok($r, 'one success is enough');
    my $j = $r->{json} // {};
    is($j->{completed}, 1, 'completed 1');
    is($j->{failed}, 3, 'failed 3');
    is($r->{block}{'Failed requests'}, 3, 'block: Failed requests 3');
    my @req = sort { $a->{index} <=> $b->{index} } @{ timed($r) };
    is_deeply([ map { $_->{ok} ? 1 : 0 } @req ], [1, 0, 0, 0],
              'in script order: ok, 500, error, disconnect');
    like($req[1]{error} // '', qr/500/, 'the 500 named in its error');
    ok(length($req[2]{error} // ''), 'in-stream error recorded');
    ok(length($req[3]{error} // ''), 'disconnect recorded');
    my $errs = $j->{errors} // [];
    my $n = 0;
    $n += $_->{count} for @$errs;
    is($n, 3, 'errors summarised: counts add up to 3');
    like($r->{out}, qr/^Errors:/m, 'stdout: "Errors:" after the block');
    like($r->{out}, qr/^\s+1 x .*500/m, 'stdout: "1 x ...500..."');
    stop_serve($s);

    my $all = serve_ok(ttft_ms => 20, script => [{ status => 500 }]) or return;
    my $f = bench($all, ['--num-prompts', 3, '--random-output-len', 4]);
    is($f->{code}, 1, 'every request failed: exit 1')
        or diag("stdout:\n$f->{out}\nstderr:\n$f->{err}");
    like($f->{err}, qr/500/, 'the first error on stderr');
    stop_serve($all);

    # --request-timeout: a first token due after 5 s, a 1 s limit
    my $slow = serve_ok(ttft_ms => 5000, output_len => 2) or return;
    my $t = bench($slow, ['--num-prompts', 2, '--random-output-len', 2,
                          '--request-timeout', 1], save => 1, timeout => 20);
    is($t->{code}, 1, 'timed out: exit 1')
        or diag("stdout:\n$t->{out}\nstderr:\n$t->{err}");
    ok($t->{secs} < 4.5, sprintf('ended after %.1f s, before the server '
                                 . 'answered', $t->{secs}));
    is(($t->{json} // {})->{failed}, 2, 'both counted as failed');
    like($t->{err} . $t->{out}, qr/time/i, 'the error says timeout');
    stop_serve($slow);
};

subtest 'goodput: SLOs that split the requests known ways' => sub {
    # ttft 100/300/600; tpot ~50/250/50; e2el ~200/800/700
    my $s = serve_ok(script => [
        { ttft_ms => 100, itl_ms => 50, tokens => 3 },
        { ttft_ms => 300, itl_ms => 250, tokens => 3 },
        { ttft_ms => 600, itl_ms => 50, tokens => 3 } ]) or return;
    for my $case ([ ['ttft:400'], 2 ],
                  [ ['ttft:400 tpot:150'], 1 ],
                  [ ['tpot:150', 'e2el:1000'], 2 ]) {
        my ($specs, $good) = @$case;
        my $name = join ' + ', @$specs;
        my $r = bench($s, ['--num-prompts', 3, '--max-concurrency', 1,
                           '--random-output-len', 3,
                           '--metric-percentiles', '50,99.9',
                           map { ('--goodput', $_) } @$specs],
                      detailed => 1);
        ran_ok($r, $name);
        my $j = $r->{json} // {};
        my %slo = map { split /:/ } map { split ' ' } @$specs;
        my $count = 0;
        for my $q (@{ timed($r) }) {
            my $tpot = $q->{output_tokens} > 1 ? $q->{tpot_ms} : 0;
            $count++ if (!defined $slo{ttft} || $q->{ttft_ms} <= $slo{ttft})
                && (!defined $slo{tpot} || $tpot <= $slo{tpot})
                && (!defined $slo{e2el} || $q->{e2el_ms} <= $slo{e2el});
        }
        is($count, $good, "$name: $good of 3 meet it (from the JSONL)");
        near(($j->{request_goodput} // -1) * ($j->{duration} // 0), $good,
             3e-3, "$name: request_goodput = $good / duration");
        ok(defined $r->{block}{'Request goodput (req/s)'},
           "$name: goodput line in the block");
        ok(exists $j->{'p99.9_ttft_ms'}, "$name: p99.9_ttft_ms key");
        ok(defined $r->{block}{'P99.9 TTFT (ms)'},
           "$name: 'P99.9 TTFT (ms)' line");
    }
    stop_serve($s);
};

subtest 'warm-ups are sent first and left out' => sub {
    my $s = serve_ok(itl_ms => 20, output_len => 2, script => [
        { ttft_ms => 900 }, { ttft_ms => 900 }, { ttft_ms => 100 },
        { ttft_ms => 100 }, { ttft_ms => 100 } ]) or return;
    my $r = bench($s, ['--num-prompts', 3, '--num-warmups', 2,
                       '--max-concurrency', 1, '--random-output-len', 2],
                  detailed => 1);
    ran_ok($r, 'run');
    is(scalar @{ serve_log($s) }, 5, 'the server saw 2 + 3 requests');
    is($r->{json}{completed}, 3, 'completed counts the timed 3 only');
    within($r->{json}{mean_ttft_ms}, 95, 250,
           'mean TTFT from the timed requests (100 ms, not 900)');
    is(scalar @{ timed($r) }, 3, 'JSONL: 3 timed requests');
    stop_serve($s);
};

subtest '--max-concurrency holds (server log)' => sub {
    # each request lasts ~300 ms at the server
    my $s = serve_ok(ttft_ms => 200, itl_ms => 50, output_len => 3) or return;
    my $r = bench($s, ['--num-prompts', 9, '--max-concurrency', 3,
                       '--random-output-len', 3], detailed => 1);
    ran_ok($r, 'run');
    my $log = serve_log($s);
    my @t = map { $_->{t_ms} } @$log;
    is(scalar @t, 9, '9 requests logged');
    my @open = map { $_->{raw}{in_flight} // 0 } @$log;
    is(max(@open), 3, "the server's in_flight at each arrival: 3 at most");
    my $worst = 1e9;
    for my $i (0 .. $#t - 3) {
        my $d = $t[$i + 3] - $t[$i];
        $worst = $d if $d < $worst;
    }
    ok($worst >= 270, "the 4th after any 3 waits for one of them to end "
       . "(min gap $worst ms >= 270)");
    my @iv = map { [ $_->{start_ms}, $_->{start_ms} + $_->{e2el_ms} ] }
             @{ timed($r) };
    is(max_overlap(@iv), 3, 'client records: 3 at once at most, and 3');
    ok(($r->{json}{peak_concurrency} // 0) <= 3, 'peak_concurrency <= 3')
        if exists $r->{json}{peak_concurrency};

    my $n = serve_ok(ttft_ms => 200, itl_ms => 50, output_len => 3) or return;
    my $u = bench($n, ['--num-prompts', 9, '--random-output-len', 3]);
    ran_ok($u, 'no limit');
    my @u = map { $_->{t_ms} } @{ serve_log($n) };
    ok(@u == 9 && $u[-1] - $u[0] < 200,
       'without a limit all 9 arrive at once (the check above can fail)');
    is(max(map { $_->{raw}{in_flight} // 0 } @{ serve_log($n) }), 9,
       'without a limit: 9 in flight at the server');
    stop_serve($_) for $s, $n;
};

subtest '500 streams at once: all held open, none delayed by a connect '
        . 'retry' => sub {
    # every answer takes ~300 ms; a SYN dropped by a short listen backlog
    # is retried after 1 s, which would show as a TTFT over 1 s
    my $s = serve_ok(ttft_ms => 200, itl_ms => 100, output_len => 2)
        or return;
    my $r = bench($s, ['--num-prompts', 500, '--random-input-len', 8,
                       '--random-output-len', 2], save => 1,
                  timeout => 60);
    ran_ok($r, 'run');
    my $j = $r->{json} // {};
    is($j->{completed}, 500, 'completed 500');
    is($j->{failed}, 0, 'failed 0');
    my $peak = max(map { $_->{raw}{in_flight} // 0 } @{ serve_log($s) });
    ok($peak >= 450, "the server had $peak open at once (>= 450)");
    ok(($j->{p99_ttft_ms} // 1e9) < 1000, 'P99 TTFT under 1 s ('
       . ($j->{p99_ttft_ms} // 'undef') . ' ms): no connect retried');
    stop_serve($s);
};

subtest '--request-rate: Poisson arrivals at the server' => sub {
    my $s = serve_ok(ttft_ms => 5, itl_ms => 5, output_len => 2) or return;
    my $r = bench($s, ['--num-prompts', 40, '--request-rate', 20,
                       '--seed', 7, '--random-output-len', 2]);
    ran_ok($r, 'run');
    my @t = map { $_->{t_ms} } @{ serve_log($s) };
    is(scalar @t, 40, '40 requests');
    my @g = map { $t[$_] - $t[$_ - 1] } 1 .. $#t;
    my $m = mean(@g);
    # 39 exponential gaps of mean 50 ms: the sample mean's sd is ~8 ms
    within($m, 30, 75, 'mean gap ~ 1 / 20 s');
    my $cv = $m > 0 ? stdev(@g) / $m : 0;
    within($cv, 0.45, 1.7, 'coefficient of variation ~ 1 (Poisson)');
    is($r->{block}{'Request rate configured (RPS)'}, '20.00',
       'block: Request rate configured');

    # --burstiness 0.25: gamma gaps of the same mean, CV 1/sqrt(0.25) = 2
    my $b = bench($s, ['--num-prompts', 100, '--request-rate', 50,
                       '--burstiness', 0.25, '--seed', 7,
                       '--random-output-len', 2]);
    ran_ok($b, 'burstiness 0.25');
    my @bt = map { $_->{t_ms} } @{ serve_log($s, 40) };
    is(scalar @bt, 100, '100 requests');
    my @bg = map { $bt[$_] - $bt[$_ - 1] } 1 .. $#bt;
    within(mean(@bg), 12, 32, 'mean gap ~ 1 / 50 s');
    within(mean(@bg) > 0 ? stdev(@bg) / mean(@bg) : 0, 1.4, 3.2,
           'coefficient of variation ~ 2 (burstier than Poisson)');
    stop_serve($s);
};

subtest '--duration stops issuing' => sub {
    my $s = serve_ok(ttft_ms => 5, itl_ms => 5, output_len => 2) or return;
    my $r = bench($s, ['--num-prompts', 1000, '--request-rate', 10,
                       '--duration', 2, '--random-output-len', 2],
                  timeout => 20);
    ran_ok($r, 'run');
    ok($r->{secs} < 6, sprintf('ended after %.1f s, not 1000 requests',
                               $r->{secs}));
    my @t = map { $_->{t_ms} } @{ serve_log($s) };
    within(scalar @t, 6, 40, 'about 20 requests issued in 2 s at 10/s');
    within($t[-1] - $t[0], 0, 2300, 'none issued after 2 s') if @t;
    stop_serve($s);
};

subtest 'waiting costs no CPU' => sub {
    # 3 requests one after the other, each first token 1 s away: the
    # client has nothing to do for 3 s and should sleep through it
    my $s = serve_ok(ttft_ms => 1000, itl_ms => 10, output_len => 2)
        or return;
    my $r = bench($s, ['--num-prompts', 3, '--max-concurrency', 1,
                       '--random-output-len', 2], timeout => 20);
    ran_ok($r, 'run');
    ok($r->{cpu} < 0.3, sprintf('%.2f s of CPU over %.1f s (< 0.3 s: no '
                                . 'busy polling)', $r->{cpu}, $r->{secs}));
    stop_serve($s);
};

subtest 'SIGINT: stops issuing, reports what was measured' => sub {
    my $s = serve_ok(ttft_ms => 100, itl_ms => 100, output_len => 5)
        or return;
    my $r = bench($s, ['--num-prompts', 1000, '--request-rate', 10,
                       '--random-output-len', 5], save => 1,
                  signal => [1.5, 'INT'], timeout => 20);
    is($r->{code}, 130, 'interrupted run: exit 130 (128 + SIGINT)')
        or diag("stdout:\n$r->{out}\nstderr:\n$r->{err}");
    like($r->{err}, qr/interrupted/, 'interrupted: said on stderr');
    ok($r->{secs} < 5, sprintf('ended %.1f s after the start (in-flight '
                               . 'ones get 2 s at most)', $r->{secs}));
    my $j = $r->{json} // {};
    my $n = ($j->{completed} // 0) + ($j->{failed} // 0);
    ok(($j->{completed} // 0) >= 5 && $n < 40,
       "a partial run reported: $n requests, "
       . ($j->{completed} // 0) . ' completed');
    like($r->{out}, qr/Serving Benchmark Result/, 'the block printed');
    my $sent = scalar @{ serve_log($s) };
    sleep 0.5;
    is(scalar @{ serve_log($s) }, $sent, 'nothing sent after the end');
    stop_serve($s);
};

subtest 'SIGINT in a sweep: the steps run so far, then exit 130' => sub {
    my $s = serve_ok(ttft_ms => 100, itl_ms => 100, output_len => 5)
        or return;
    my $r = bench($s, ['--num-prompts', 1000, '--request-rate', 10,
                       '--random-output-len', 5, '--concurrency', '1,2,4'],
                  save => 1, signal => [1.5, 'INT'], timeout => 20);
    is($r->{code}, 130, 'exit 130')
        or diag("stdout:\n$r->{out}\nstderr:\n$r->{err}");
    like($r->{err}, qr/interrupted: 1 of 3 steps/, 'stderr: 1 of 3 steps');
    my @blocks = $r->{out} =~ /^concurrency (\d+)$/mg;
    is("@blocks", '1', 'one step printed, the one cut short');
    my @rows = $r->{out} =~ /^\s+(\d+)\s+\d+\s+\d+\s+[\d.]+\s/mg;
    is("@rows", '1', 'the sweep table has that step only');
    is(scalar @{ ($r->{json} // {})->{steps} // [] }, 1,
       'the saved sweep has that step only');
    stop_serve($s);
};

subtest 'a bad --result-dir is refused before any request' => sub {
    my $s = serve_ok(ttft_ms => 10, itl_ms => 1, output_len => 2) or return;
    my $file = write_trace('not-a-dir', "x\n");
    for my $d ($file, "$file/sub", '') {
        my $r = bench($s, ['--num-prompts', 2, '--save-result',
                           '--result-dir', $d], timeout => 10);
        is($r->{code}, 2, "--result-dir '$d': exit 2");
        like($r->{err}, qr/--result-dir/, "--result-dir '$d': named");
    }
    is(scalar @{ serve_log($s) }, 0, 'nothing was sent');
    stop_serve($s);
};

subtest 'progress bar: never on a pipe, drawn on a terminal' => sub {
    my $s = serve_ok(ttft_ms => 20, itl_ms => 10, output_len => 4)
        or return;
    my $r = run_bench(['--base-url', $s->{url}, tok_args(), '--model', 'm',
                       '--random-input-len', 8, '--random-output-len', 4,
                       '--num-prompts', 20, '--max-concurrency', 2]);
    ran_ok($r, 'stderr to a file');
    unlike($r->{err}, qr/\r|\[#/, 'no progress bar on a file');
    SKIP: {
        skip 'script(1) not installed', 1
            if system('command -v script >/dev/null 2>&1') != 0;
        my $cmd = join ' ', map { "'$_'" } bench_bin(), '--base-url',
            $s->{url}, tok_args(), '--model', 'm', '--random-input-len', 8,
            '--random-output-len', 4, '--num-prompts', 20,
            '--max-concurrency', 2;
        my $t = run_tool(['script', '-qec', "$cmd >/dev/null", '/dev/null'],
                         timeout => 30);
        like($t->{out}, qr/\d+\/20/, 'on a terminal: a bar with done/total');
    }
    stop_serve($s);
};

subtest 'request bodies: completions and chat' => sub {
    my $s = serve_ok(ttft_ms => 5, itl_ms => 5) or return;
    my $r = bench($s, ['--num-prompts', 1, '--random-output-len', 3]);
    ran_ok($r, 'completions');
    my $b = (serve_log($s)->[0] // {})->{body} // {};
    is($b->{model}, 'stories260K', 'model');
    ok(defined $b->{prompt} && !ref $b->{prompt}, 'prompt is a string');
    is($b->{max_tokens}, 3, 'max_tokens');
    ok($b->{stream}, 'stream true');
    ok(($b->{stream_options} // {})->{include_usage},
       'stream_options.include_usage');

    my $c = bench($s, ['--num-prompts', 1, '--random-output-len', 3,
                       '--endpoint', '/v1/chat/completions']);
    ran_ok($c, 'chat');
    my $cb = (serve_log($s, 1)->[0] // {})->{body} // {};
    is(ref $cb->{messages}, 'ARRAY', 'chat: messages');
    is(($cb->{messages}[-1] // {})->{role}, 'user', 'chat: a user message');
    is($cb->{max_completion_tokens} // $cb->{max_tokens}, 3,
       'chat: max_completion_tokens');
    ok($cb->{stream}, 'chat: stream true');

    my $t = bench($s, ['--num-prompts', 1, '--random-output-len', 3,
                       '--prompt-format', 'tokens']);
    ran_ok($t, '--prompt-format tokens');
    my $tb = (serve_log($s, 2)->[0] // {})->{body} // {};
    my $p = $tb->{prompt};
    $p = $p->[0] if ref $p eq 'ARRAY' && ref $p->[0] eq 'ARRAY';
    # vLLM's random dataset: input_len less the special tokens the server
    # adds (BOS for this tokenizer)
    my $want = 16 - special_count();
    ok(ref $p eq 'ARRAY' && @$p == $want && !(grep { !/^\d+$/ } @$p),
       "tokens: the prompt is $want token ids (16 less BOS)")
        or diag(json_encode($tb));
    is(scalar @{ tokenize_ids($b->{prompt}) }, $want,
       "text: the prompt is $want tokens, by dynamo-kv");
    stop_serve($s);
};

subtest 'sessions: history on the wire, think time, a failed turn' => sub {
    # each answer ~140 ms at the server (100 + 2 x 20)
    my $s = serve_ok(ttft_ms => 100, itl_ms => 20, output_len => 3)
        or return;
    my $h = HTTP::Tiny->new(timeout => 10)->post(
        "$s->{url}/v1/completions",
        { headers => { 'Content-Type' => 'application/json' },
          content => json_encode({ model => 'm', prompt => 'a',
                                   max_tokens => 3 }) });
    my $reply = eval { json_decode($h->{content})->{choices}[0]{text} };
    ok(defined $reply && length $reply, "the server's reply text ("
       . ($reply // 'undef') . ')') or return;
    my $r = bench($s, ['--dataset-name', 'sessions', '--num-sessions', 2,
                       '--session-turns', 3, '--session-system-len', 8,
                       '--session-input-len', 4, '--session-output-len', 3,
                       '--session-think-ms', 200, '--num-prompts', 6],
                  detailed => 1);
    ran_ok($r, 'run');
    is(($r->{json} // {})->{completed}, 6, 'completed 2 x 3');
    my $log = serve_log($s, 1);
    is(scalar @$log, 6, 'the server saw 6 requests') or return;
    # a later turn's prompt = the previous turn's prompt + its reply + new
    my ($first, $later, $bad_gap) = (0, 0, 0);
    for my $i (0 .. $#$log) {
        my $p = $log->[$i]{body}{prompt} // '';
        my @prev = grep {
            my $q = $log->[$_]{body}{prompt} // '';
            length $p > length($q . $reply)
                && substr($p, 0, length($q . $reply)) eq $q . $reply
        } 0 .. $i - 1;
        if (!@prev) { $first++; next }
        $later++;
        my $gap = $log->[$i]{t_ms} - $log->[ $prev[-1] ]{t_ms};
        if ($gap < 330 || $gap > 600) {
            $bad_gap++;
            diag("turn sent $gap ms after the previous one's arrival");
        }
    }
    is($first, 2, 'two first turns');
    is($later, 4, "four later turns, each the previous prompt + its reply "
       . '+ new words');
    is($bad_gap, 0, 'each sent after the previous answer (~140 ms) + the '
       . 'think time (200 ms)');
    stop_serve($s);

    my $f = serve_ok(ttft_ms => 20, itl_ms => 10, output_len => 2,
                     script => [{}, { status => 500 }, {}]) or return;
    my $x = bench($f, ['--dataset-name', 'sessions', '--num-sessions', 1,
                       '--session-turns', 3, '--session-system-len', 8,
                       '--session-input-len', 4, '--session-output-len', 2,
                       '--num-prompts', 3], detailed => 1);
    ran_ok($x, 'a failed turn');
    is(scalar @{ serve_log($f) }, 2, 'turn 2 never sent after turn 1 '
       . 'failed');
    is(($x->{json} // {})->{failed}, 2, 'turns 1 and 2 failed');
    my ($t2) = grep { ($_->{turn} // -1) == 2 } @{ timed($x) };
    like(($t2 // {})->{error} // '', qr/turn 1 failed/,
         'turn 2: "session N: turn 1 failed"');
    stop_serve($f);
};

subtest 'bad flags: exit 2 naming the flag' => sub {
    my @u = ('--base-url', 'http://127.0.0.1:9', @common);
    for my $c ([ ['--num-prompts', '-1'], qr/--num-prompts/ ],
               [ ['--random-range-ratio', '1.5'], qr/--random-range-ratio/ ],
               [ ['--random-input-len', '-5'], qr/--random-input-len/ ],
               [ ['--request-rate', '-2'], qr/--request-rate/ ],
               [ ['--percentile-metrics', 'ttft,foo'], qr/foo|--percentile/ ],
               [ ['--metric-percentiles', '0,150'], qr/--metric-percentiles/ ],
               [ ['--goodput', 'latency:5'], qr/latency|--goodput/ ],
               [ ['--goodput', 'ttft:abc'], qr/--goodput|ttft/ ],
               [ ['--concurrency', ''], qr/--concurrency/ ],
               [ ['--dataset-name', 'sharegpt2'], qr/--dataset-name/ ],
               [ ['--no-such-flag'], qr/no-such-flag/ ]) {
        my ($args, $re) = @$c;
        my $r = run_bench([@u, @$args], timeout => 10);
        is($r->{code}, 2, "@$args: exit 2");
        like($r->{err}, $re, "@$args: message names it");
    }
    my $r = run_bench(['--base-url', 'http://127.0.0.1:9', '--model',
                       'no-such-model', '--num-prompts', 1], timeout => 10);
    is($r->{code}, 2, 'no tokenizer: exit 2');
    like($r->{err}, qr/--tokenizer/, 'no tokenizer: says --tokenizer');
    my $x = run_bench(['no-such-command'], timeout => 10);
    is($x->{code}, 2, 'unknown subcommand: exit 2');
};

subtest 'serve: bad flags exit 2 with a message' => sub {
    for my $c ([ ['--port', '1.5'], qr/--port.*whole/ ],
               [ ['--port', '70000'], qr/--port/ ],
               [ ['--chunk-tokens', '0'], qr/--chunk-tokens/ ],
               [ ['--output-len', '2.5'], qr/--output-len.*whole/ ],
               [ ['--ttft-ms', 'x'], qr/--ttft-ms/ ],
               [ ['--no-such'], qr/no-such/ ]) {
        my ($args, $re) = @$c;
        my $r = run_bench(['serve', @$args], timeout => 10);
        is($r->{code}, 2, "serve @$args: exit 2");
        like($r->{err}, $re, "serve @$args: message names it");
    }
};

subtest '--help documents the vLLM flags and the subcommands' => sub {
    my $r = run_bench(['--help'], timeout => 10);
    is($r->{code}, 0, 'exit 0');
    my $h = $r->{out} . $r->{err};
    for my $f (qw(--base-url --endpoint --model --tokenizer --dataset-name
                  --dataset-path --random-input-len --random-output-len
                  --random-range-ratio --random-prefix-len --num-prompts
                  --max-concurrency --request-rate --burstiness --goodput
                  --percentile-metrics --metric-percentiles --save-result
                  --result-dir --seed --num-warmups --duration
                  --request-timeout --concurrency --trace-block-size
                  --trace-speedup)) {
        like($h, qr/\Q$f\E\b/, "--help lists $f");
    }
    like($h, qr/\b$_\b/, "--help names '$_'")
        for qw(synthesize analyze compare serve);
    for my $sub (qw(run synthesize analyze compare serve)) {
        my $x = run_bench([$sub, '--help'], timeout => 10);
        is($x->{code}, 0, "$sub --help: exit 0");
        like($x->{out}, qr/\S/, "$sub --help: prints its help");
    }
};

subtest "bench/README.md's run flag table is --help's flag list" => sub {
    my $h = run_bench(['--help'], timeout => 10)->{out};
    my ($run) = $h =~ /^(Run flags.*)\z/ms;
    my %help = map { $_ => 1 } ($run // '') =~ /^  (--[a-z][a-z-]*)/mg;
    my $readme = read_file('bench/README.md');
    my ($table) = $readme =~ /^## Run flags\n(.*?)^## /ms;
    my %doc;
    for my $row (grep { /^\| `--/ } split /\n/, $table // '') {
        my ($cell) = $row =~ /^\|([^|]*(?:\\\|[^|]*)*)\|/;
        $doc{$_} = 1 for ($cell // '') =~ /(--[a-z][a-z-]*)/g;
    }
    ok(scalar(keys %help) > 40, scalar(keys %help) . ' flags in --help');
    is_deeply([sort keys %doc], [sort keys %help],
              'the same flags in both');
};

done_testing();
