# vim:set ft=perl ts=4 sw=4 et:
# Traces: `dynamo-bench synthesize` -> `analyze` (the theoretical hit rate
# recomputed here from the written file, and a hand-made trace's rate
# computed by hand); malformed traces, each kind, rejected with
# "FILE:LINE:" and exit 2; a replay against `dynamo-bench serve`: send
# times follow the timestamps over --trace-speedup, equal hash ids give
# equal token blocks on the wire (the request bodies tokenized again by
# dynamo-kv, not by dynamo-bench), and a session's later turn waits for the
# previous one to complete plus its delay.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use List::Util qw(max min sum);
use Test::Dynamo::Bench qw(:all);

plan skip_all => bench_bin() . ' missing (make)' if !-x bench_bin();

sub within {
    my ($got, $lo, $hi, $name) = @_;
    my $ok = defined $got && $got =~ /^-?[\d.]+(?:e[-+]?\d+)?$/i
             && $got >= $lo && $got <= $hi;
    ok($ok, $name) or diag("got " . ($got // 'undef') . ", want [$lo, $hi]");
    return $ok;
}

# The theoretical prefix-cache hit rate with an infinite cache: requests in
# timestamp order (stable); a request's leading hash ids already seen in
# earlier requests are hits; hits / all blocks.
sub hit_rate {
    my (@recs) = @_;
    my $i = 0;
    my @o = map { $_->[1] }
            sort { $a->[0] <=> $b->[0] || $a->[2] <=> $b->[2] }
            map { [ $_->{timestamp} // 0, $_, $i++ ] } @recs;
    my (%seen, $hits, $all);
    ($hits, $all) = (0, 0);
    for my $r (@o) {
        my $lead = 1;
        for my $h (@{ $r->{hash_ids} }) {
            $all++;
            if ($lead && $seen{$h}) { $hits++ } else { $lead = 0 }
        }
        $seen{$_} = 1 for @{ $r->{hash_ids} };
    }
    return $all ? $hits / $all : 0;
}

# a key of `analyze --json` by one of its likely names
# (flat, or "isl.mean" for {"isl": {"mean": ...}})
sub akey {
    my ($j, @names) = @_;
    for my $n (@names) {
        my $v = $j;
        for my $k (split /\./, $n) {
            $v = ref $v eq 'HASH' ? $v->{$k} : undef;
        }
        return $v if defined $v;
    }
    return undef;
}

# ---------------------------------------------------------------------------

subtest 'synthesize -> analyze: the target hit rate' => sub {
    my $f = tmp_dir() . '/synth.jsonl';
    my $r = run_tool([bench_bin(), 'synthesize', '--num-requests', 200,
                      '--request-rate', 20, '--input-len', 2048,
                      '--output-len', 64, '--system-prompts', 2,
                      '--target-hit-rate', 0.5, '--seed', 3,
                      '--output', $f], timeout => 60);
    is($r->{code}, 0, 'synthesize: exit 0') or diag($r->{err});
    my @recs = @{ read_jsonl($f) };
    is(scalar @recs, 200, '200 lines');
    my $bad = grep { ref $_->{hash_ids} ne 'ARRAY'
                     || !defined $_->{input_length}
                     || !defined $_->{output_length}
                     || !defined $_->{timestamp} } @recs;
    is($bad, 0, 'every line has timestamp, input/output_length, hash_ids');
    my $nblk = grep { @{ $_->{hash_ids} // [] }
                      != int(($_->{input_length} + 511) / 512) } @recs;
    is($nblk, 0, 'hash ids = ceil(input_length / 512) blocks each');
    my @ts = map { $_->{timestamp} // 0 } @recs;
    is((grep { $ts[$_] < $ts[$_ - 1] } 1 .. $#ts), 0,
       'timestamps do not go back');
    my $want = hit_rate(@recs);
    within($want, 0.48, 0.52, sprintf('recomputed hit rate %.4f ~ 0.5',
                                      $want));

    my $an = run_tool([bench_bin(), 'analyze', $f, '--json']);
    is($an->{code}, 0, 'analyze --json: exit 0') or diag($an->{err});
    my $j = eval { json_decode($an->{out}) } // {};
    is(akey($j, qw(requests num_requests)), 200, 'requests 200');
    # printed with 6 decimals
    within(akey($j, qw(hit_rate theoretical_hit_rate)), $want - 1e-6,
           $want + 1e-6, 'hit_rate = the recomputed rate');
    my @isl = map { $_->{input_length} } @recs;
    within(akey($j, qw(isl.mean isl_mean)), mean(@isl) - 0.005,
           mean(@isl) + 0.005, 'isl_mean');
    within(akey($j, qw(isl.max isl_max)), max(@isl), max(@isl),
           'isl_max');
    my @osl = map { $_->{output_length} } @recs;
    within(akey($j, qw(osl.median osl_median)), np_percentile(\@osl, 50)
           - 1e-6, np_percentile(\@osl, 50) + 1e-6, 'osl_median');
    my %u = map { $_ => 1 } map { @{ $_->{hash_ids} } } @recs;
    is(akey($j, qw(unique_blocks)), scalar keys %u, 'unique_blocks');
    is(akey($j, qw(blocks total_blocks)), sum(map { scalar @{ $_->{hash_ids} } }
                                          @recs), 'blocks');

    my $t = run_tool([bench_bin(), 'analyze', $f]);
    is($t->{code}, 0, 'analyze (table): exit 0');
    like($t->{out}, qr/hit/i, 'the table shows the hit rate');
};

subtest 'analyze: a hand-made trace' => sub {
    # hits: 0/3, 2/3 (1, 2), 0/1, 3/4 (1, 2, 3): 5 of 11 blocks
    my $f = write_trace('hand.jsonl',
        { timestamp => 0, input_length => 40, output_length => 5,
          hash_ids => [1, 2, 3] },
        { timestamp => 10, input_length => 40, output_length => 5,
          hash_ids => [1, 2, 4] },
        { timestamp => 20, input_length => 10, output_length => 5,
          hash_ids => [5] },
        { timestamp => 30, input_length => 60, output_length => 5,
          hash_ids => [1, 2, 3, 6] });
    my $an = run_tool([bench_bin(), 'analyze', $f, '--json', '--block-size',
                      16]);
    is($an->{code}, 0, 'exit 0') or diag($an->{err});
    my $j = eval { json_decode($an->{out}) } // {};
    within(akey($j, qw(hit_rate theoretical_hit_rate)), 5 / 11 - 1e-6,
           5 / 11 + 1e-6, 'hit rate 5/11 (6 decimals)');
    is(akey($j, qw(hits hit_blocks)), 5, '5 hit blocks');
    is(akey($j, qw(unique_blocks)), 6, '6 unique blocks');
    is(akey($j, qw(blocks total_blocks)), 11, '11 blocks');
};

subtest 'synthesize: multi-turn sessions grow their prefix' => sub {
    my $f = tmp_dir() . '/turns.jsonl';
    my $r = run_tool([bench_bin(), 'synthesize', '--num-requests', 30,
                      '--input-len', 600, '--output-len', 100, '--turns', 3,
                      '--delay-ms', 200, '--block-size', 64, '--seed', 5,
                      '--output', $f]);
    is($r->{code}, 0, 'exit 0') or diag($r->{err});
    my (%by, $checked, $bad);
    for my $x (@{ read_jsonl($f) }) {
        next if !defined $x->{session_id};
        push @{ $by{ $x->{session_id} } }, $x;
    }
    ok(keys %by >= 5, 'several sessions');
    ($checked, $bad) = (0, 0);
    for my $turns (values %by) {
        for my $k (1 .. $#$turns) {
            my ($p, $c) = @{$turns}[$k - 1, $k];
            $checked++;
            my $full = int($p->{input_length} / 64);
            my $same = 0;
            $same++ while $same < $full
                && ($c->{hash_ids}[$same] // -1) == $p->{hash_ids}[$same];
            $bad++ if $same < $full
                || $c->{input_length} < $p->{input_length}
                                        + $p->{output_length}
                || !defined $c->{delay};
        }
    }
    ok($checked > 0, "$checked later turns");
    is($bad, 0, 'each later turn: previous input + output + more, the '
       . "previous input's full blocks as its leading ids, a delay");
};

subtest 'malformed traces: FILE:LINE: and exit 2' => sub {
    my $ok = '{"timestamp": 0, "input_length": 32, "output_length": 4, '
           . '"hash_ids": [1, 2]}';
    my @cases = (
        [ 'invalid JSON', [ $ok, '{"timestamp": 1, "input_length": 10,' ],
          2, qr/json|invalid|parse/i ],
        [ 'not an object', [ $ok, $ok, '[1, 2, 3]' ], 3, qr/object/i ],
        [ 'missing input_length',
          [ '{"timestamp": 0, "output_length": 4, "hash_ids": [1]}' ], 1,
          qr/input_length/ ],
        [ 'negative input_length',
          [ $ok, '{"timestamp": 1, "input_length": -5, "output_length": 4, '
                 . '"hash_ids": [1]}' ], 2, qr/input_length/ ],
        [ 'output_length 0',
          [ '{"timestamp": 0, "input_length": 5, "output_length": 0, '
            . '"hash_ids": [1]}' ], 1, qr/output_length/ ],
        [ 'hash_ids not an array',
          [ $ok, '{"timestamp": 1, "input_length": 5, "output_length": 4, '
                 . '"hash_ids": "abc"}' ], 2, qr/hash_ids/ ],
        [ 'negative hash id',
          [ '{"timestamp": 0, "input_length": 5, "output_length": 4, '
            . '"hash_ids": [1, -2]}' ], 1, qr/hash_ids/ ],
        [ 'string hash id',
          [ $ok, $ok, $ok, '{"timestamp": 3, "input_length": 5, '
            . '"output_length": 4, "hash_ids": [1, "x"]}' ], 4,
          qr/hash_ids/ ],
        [ 'negative timestamp',
          [ '{"timestamp": -1, "input_length": 5, "output_length": 4, '
            . '"hash_ids": [1]}' ], 1, qr/timestamp/ ],
        [ 'timestamp on some lines only',
          [ $ok, $ok, '{"input_length": 5, "output_length": 4, '
                      . '"hash_ids": [1]}' ], 3, qr/timestamp/ ],
        [ 'trailing garbage', [ $ok, "$ok xyz" ], 2, qr/./ ],
        [ 'negative delay',
          [ $ok, '{"timestamp": 1, "input_length": 5, "output_length": 4, '
                 . '"hash_ids": [1], "session_id": 1, "delay": -5}' ], 2,
          qr/delay/ ],
        [ 'blank lines still count',
          [ $ok, '', '', '{"timestamp": 1, "input_length": 5, '
                          . '"output_length": 4}' ],
          4, qr/hash_ids/ ],
    );
    my $n = 0;
    for my $c (@cases) {
        my ($name, $lines, $line, $re) = @$c;
        my $f = write_trace('bad' . $n++ . '.jsonl', @$lines);
        my $r = run_tool([bench_bin(), 'analyze', $f], timeout => 10);
        is($r->{code}, 2, "$name: exit 2");
        like($r->{err}, qr/\Q$f\E:$line: /, "$name: \"FILE:$line: \"")
            or diag($r->{err});
        like($r->{err}, $re, "$name: says what is wrong");
    }
    # the run command reads traces the same way
    my $f = write_trace('badrun.jsonl', $ok, '{"timestamp": 2, '
                        . '"input_length": 5, "output_length": 0, '
                        . '"hash_ids": [3]}');
    my $r = run_bench(['--base-url', 'http://127.0.0.1:9', tok_args(),
                       '--model', 'stories260K', '--dataset-name', 'trace',
                       '--dataset-path', $f], timeout => 10);
    is($r->{code}, 2, 'run --dataset-name trace: exit 2');
    like($r->{err}, qr/\Q$f\E:2: .*output_length/,
         'run: FILE:2: output_length');
    my $m = run_tool([bench_bin(), 'analyze', tmp_dir() . '/none.jsonl']);
    is($m->{code}, 2, 'a missing file: exit 2');
    like($m->{err}, qr/none\.jsonl/, 'a missing file: named');
};

# ---------------------------------------------------------------------------

my @trace_run = (tok_args(), '--model', 'stories260K', '--disable-tqdm',
                 '--dataset-name', 'trace', '--trace-block-size', 16);

subtest 'replay: schedule over --trace-speedup, equal ids equal blocks' => sub {
    my $s = serve_ok(ttft_ms => 20, itl_ms => 10, output_len => 2) or return;
    my @recs = (
        { timestamp => 0,    input_length => 48, output_length => 2,
          hash_ids => [1, 2, 3] },
        { timestamp => 500,  input_length => 48, output_length => 2,
          hash_ids => [1, 2, 4] },
        { timestamp => 1000, input_length => 48, output_length => 2,
          hash_ids => [5, 6, 7] },
        { timestamp => 1600, input_length => 48, output_length => 2,
          hash_ids => [1, 2, 3] },
        { timestamp => 3000, input_length => 20, output_length => 2,
          hash_ids => [8] });
    my $f = write_trace('replay.jsonl', @recs);
    my $r = run_bench(['--base-url', $s->{url}, @trace_run,
                       '--dataset-path', $f, '--trace-speedup', 2],
                      save => 1, timeout => 30);
    is($r->{code}, 0, 'exit 0') or diag("$r->{out}\n$r->{err}");
    is(($r->{json} // {})->{completed}, 5, 'completed 5');
    my $log = serve_log($s);
    is(scalar @$log, 5, 'the server saw 5 requests') or return;
    my @want = (0, 250, 500, 800, 1500);
    for my $i (0 .. 4) {
        my $t = $log->[$i]{t_ms} - $log->[0]{t_ms};
        within($t, $want[$i] - 25, $want[$i] + 60,
               "request $i sent at ~$want[$i] ms (timestamp / 2)");
    }
    my @ids = map { tokenize_ids($_->{body}{prompt} // '') } @$log;
    is(scalar @{ $ids[$_] }, $recs[$_]{input_length},
       "request $_: prompt is input_length tokens") for 0 .. 4;
    is("@{ $ids[0] }[0 .. 31]", "@{ $ids[1] }[0 .. 31]",
       'ids [1, 2, 3] and [1, 2, 4]: the first 32 tokens are equal');
    isnt("@{ $ids[0] }[32 .. 47]", "@{ $ids[1] }[32 .. 47]",
         '... and their third blocks differ');
    isnt("@{ $ids[0] }[0 .. 15]", "@{ $ids[2] }[0 .. 15]",
         'ids [5, ...] differ from [1, ...] from the first block');
    is($log->[3]{body}{prompt}, $log->[0]{body}{prompt},
       'the same hash ids twice: the same prompt text on the wire');
    is($log->[0]{body}{max_tokens}, 2, 'max_tokens = output_length');
    stop_serve($s);

    # --trace-schedule none: as fast as concurrency allows
    my $n = serve_ok(ttft_ms => 20, itl_ms => 10, output_len => 2) or return;
    my $q = run_bench(['--base-url', $n->{url}, @trace_run,
                       '--dataset-path', $f, '--trace-schedule', 'none'],
                      timeout => 30);
    is($q->{code}, 0, 'schedule none: exit 0') or diag($q->{err});
    my @t = map { $_->{t_ms} } @{ serve_log($n) };
    ok(@t == 5 && $t[-1] - $t[0] < 200,
       'schedule none: all 5 sent at once, not over 1.5 s');
    stop_serve($n);
};

subtest 'replay: a later turn waits for the previous one and its delay' => sub {
    # every request takes ~300 ms at the server (200 + 2 x 50)
    my $s = serve_ok(ttft_ms => 200, itl_ms => 50, output_len => 3) or return;
    my $f = write_trace('sessions.jsonl',
        { session_id => 'a', timestamp => 0, input_length => 16,
          output_length => 3, hash_ids => [11] },
        { session_id => 'a', timestamp => 50, delay => 300,
          input_length => 32, output_length => 3, hash_ids => [11, 12] },
        { session_id => 'b', timestamp => 100, input_length => 48,
          output_length => 3, hash_ids => [21, 22, 23] });
    my $r = run_bench(['--base-url', $s->{url}, @trace_run,
                       '--dataset-path', $f], detailed => 1, timeout => 30);
    is($r->{code}, 0, 'exit 0') or diag("$r->{out}\n$r->{err}");
    my %at;
    for my $e (@{ serve_log($s) }) {
        my $n = scalar @{ tokenize_ids($e->{body}{prompt} // '') };
        $at{$n} = $e->{t_ms};
    }
    is(join(',', sort { $a <=> $b } keys %at), '16,32,48',
       'three requests, told apart by prompt length') or return;
    my $t0 = $at{16};
    within($at{48} - $t0, 75, 160, "session b's first turn at its "
           . 'timestamp (100 ms)');
    within($at{32} - $t0, 585, 760, "session a's second turn after the "
           . 'first completed (~300 ms) + its delay (300 ms), not at 50 ms');
    my %q = map { ($_->{session} // -1) . '/' . ($_->{turn} // -1) => $_ }
            @{ $r->{jsonl} // [] };
    my ($a0, $a1) = @q{ '0/0', '0/1' };
    if ($a0 && $a1) {
        ok($a1->{start_ms} >= $a0->{start_ms} + $a0->{e2el_ms} + 295,
           'client records: turn 1 start >= turn 0 end + delay');
    } else {
        fail('JSONL has session 0 turns 0 and 1');
    }
    stop_serve($s);
};

done_testing();
