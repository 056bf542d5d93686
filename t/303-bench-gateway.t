# vim:set ft=perl ts=4 sw=4 et:
# dynamo-bench against the real gateway: nginx + ngx_dynamo_module in front
# of one dynamo-worker (cpu engine, models/stories260K) and Redis, as `make
# run` serves it. The result block with every request completed; the chat
# endpoint with the sessions dataset (each turn carries the history, so
# the server's prompt_tokens grow turn by turn); a trace with shared prefixes
# reports cached prompt tokens from the worker's prefix cache where a trace
# without sharing reports none; a --concurrency sweep prints its table and
# draws its PNG; a synthesized trace replays through it; compare prints
# ratios of two saved summaries. Redis holds the worker's registration and
# KV events, as with `make run`.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Test::Dynamo::Gateway qw(:all);
use Test::Dynamo::Worker qw(worker_bin);
use Test::Dynamo::Bench qw(bench_bin tok_args run_bench run_tool
                           write_trace tmp_dir read_file);

my $mod = module_path();
for my $f ($mod, worker_bin(), bench_bin()) {
    plan skip_all => "$f missing (make)" if !-e $f;
}

# as `make run` starts them: Redis, a cpu worker registered there, nginx
# with the module syncing its KV index from it
my $redis = start_own_redis();
my $w = start_worker(cpu_worker_args(redis => "127.0.0.1:$redis->{port}"));
my $gw = start_gateway(servers => ["127.0.0.1:$w->{port}"],
                       redis => $redis->{port});
wait_until(sub { (gw_get($gw, '/health')->{status} // 0) == 200 }, 10)
    or BAIL_OUT('the gateway is not ready');

my @common = ('--base-url', "http://127.0.0.1:$gw->{port}", '--model',
              'stories260K', tok_args(), '--disable-tqdm');

sub bench {
    my ($args, %o) = @_;
    return run_bench([@common, @$args], timeout => 90, %o);
}

sub ran_ok {
    my ($r, $name) = @_;
    is($r->{code}, 0, "$name: exit 0")
        or diag("stdout:\n$r->{out}\nstderr:\n$r->{err}");
}

# 200 lines for $uri in the access log, waiting up to 5 s for $want: nginx
# writes a line after the response's last byte, so the client may finish
# first
sub logged {
    my ($gw, $uri, $want) = @_;
    my $n = 0;
    wait_until(sub {
        $n = grep { $_->{uri} eq $uri && $_->{status} == 200 }
             @{ access_log_entries($gw) };
        $n >= $want;
    }, 5);
    return $n;
}

my %saved;

subtest 'random dataset: the result block, all completed' => sub {
    my $r = bench(['--num-prompts', 8, '--max-concurrency', 4,
                   '--random-input-len', 32, '--random-output-len', 16,
                   '--ignore-eos', '--label', 'c4',
                   '--result-filename', 'c4.json'], plot => 1,
                  detailed => 1);
    ran_ok($r, 'run');
    like($r->{out}, qr/^=+ Serving Benchmark Result =+$/m, 'the block');
    is($r->{block}{'Successful requests'}, 8, 'Successful requests: 8');
    is($r->{block}{'Failed requests'}, 0, 'Failed requests: 0');
    my $j = $r->{json} // {};
    is($j->{completed}, 8, 'summary: completed 8');
    is($j->{total_output_tokens}, 8 * 16,
       'summary: 8 x 16 output tokens (--ignore-eos)');
    # vLLM's random dataset: the server, adding BOS, sees input_len
    my @pt = map { $_->{prompt_tokens} } grep { !$_->{warmup} }
             @{ $r->{jsonl} // [] };
    is_deeply(\@pt, [ (32) x 8 ], 'usage.prompt_tokens 32 for each: the '
              . "gateway's tokenizer sees --random-input-len tokens");
    ok(($j->{mean_ttft_ms} // 0) > 0, 'mean TTFT measured');
    ok(($j->{mean_tpot_ms} // 0) > 0, 'mean TPOT measured');
    is(logged($gw, '/v1/completions', 8), 8,
       'the gateway logged 8 completions with 200');
    is_deeply([ grep { /^c4\.(?:json|csv|jsonl)$/ } @{ $r->{files} // [] } ],
              ['c4.csv', 'c4.json', 'c4.jsonl'], '--result-filename c4.json: '
              . 'c4.json, c4.csv, c4.jsonl');
    SKIP: {
        skip 'gnuplot not installed', 1
            if system('command -v gnuplot >/dev/null 2>&1') != 0;
        is(substr(read_file("$r->{dir}/c4-cdf.png"), 0, 8),
           "\x89PNG\r\n\x1a\n", '--plot: c4-cdf.png, a PNG');
    }
    $saved{c4} = $r->{json_path};
};

subtest 'chat endpoint, sessions: each turn carries the history' => sub {
    my $r = bench(['--endpoint', '/v1/chat/completions',
                   '--dataset-name', 'sessions', '--num-sessions', 2,
                   '--session-turns', 3, '--session-system-len', 16,
                   '--session-input-len', 8, '--session-output-len', 8,
                   '--num-prompts', 6, '--ignore-eos'], detailed => 1);
    ran_ok($r, 'run');
    is(($r->{json} // {})->{completed}, 6, 'completed 2 x 3 turns');
    my %s;
    for my $q (@{ $r->{jsonl} // [] }) {
        next if $q->{warmup};
        $s{ $q->{session} }[ $q->{turn} ] = $q;
    }
    is(scalar keys %s, 2, 'two sessions in the JSONL');
    for my $id (sort keys %s) {
        my @t = @{ $s{$id} };
        is(scalar(grep { defined } @t), 3, "session $id: 3 turns") or next;
        for my $k (1 .. 2) {
            my ($p, $c) = @t[$k - 1, $k];
            ok($c->{prompt_tokens} >= $p->{prompt_tokens}
                                      + $p->{output_tokens} + 8,
               "session $id turn $k: prompt_tokens $c->{prompt_tokens} >= "
               . "previous prompt $p->{prompt_tokens} + reply "
               . "$p->{output_tokens} + 8 new");
        }
    }
    is(logged($gw, '/v1/chat/completions', 6), 6,
       'the gateway logged 6 chat completions with 200');
};

subtest 'trace replay: shared prefixes hit the worker prefix cache' => sub {
    my @shared = map { +{ timestamp => 100 * $_, input_length => 96,
                         output_length => 4,
                         hash_ids => [1, 2, 3, 4, 100 + $_, 200 + $_] } }
                 0 .. 3;
    # no two requests share an id: 1000 + 10k + j
    my @alone = map { my $k = $_;
                      +{ timestamp => 100 * $k, input_length => 96,
                        output_length => 4,
                        hash_ids => [ map { 1000 + 10 * $k + $_ } 0 .. 5 ] } }
                0 .. 3;
    my @args = ('--dataset-name', 'trace', '--trace-block-size', 16,
                '--trace-schedule', 'none', '--max-concurrency', 1);
    my $r = bench([@args, '--dataset-path',
                   write_trace('shared.jsonl', @shared)], save => 1);
    ran_ok($r, 'shared');
    my $c = ($r->{json} // {})->{total_cached_tokens};
    ok(defined $c && $c > 0, 'shared prefixes: cached tokens > 0 ('
       . ($c // 'undef') . ')');
    # 3 requests after the first share 4 blocks of 16 tokens
    ok(defined $c && $c >= 3 * 48, 'about 3 x 64 tokens cached');
    like($r->{out}, qr/^Cached prompt tokens:\s+\d+/m,
         'block: Cached prompt tokens');

    my $n = bench([@args, '--dataset-path',
                   write_trace('alone.jsonl', @alone)], save => 1);
    ran_ok($n, 'no sharing');
    is(($n->{json} // {})->{total_cached_tokens}, 0,
       'no sharing: no cached tokens');
};

subtest 'a synthesized trace replayed through the gateway' => sub {
    my $f = tmp_dir() . '/synth.jsonl';
    my $sy = run_tool([bench_bin(), 'synthesize', '--num-requests', 12,
                       '--request-rate', 20, '--input-len', 48,
                       '--output-len', 8, '--block-size', 16,
                       '--system-prompts', 1, '--system-prompt-len', 64,
                       '--turns', 2, '--delay-ms', 50, '--seed', 1,
                       '--output', $f]);
    is($sy->{code}, 0, 'synthesize: exit 0') or diag($sy->{err});
    my $an = run_tool([bench_bin(), 'analyze', $f, '--json',
                       '--block-size', 16]);
    my $hit = (eval { json_decode($an->{out}) } // {})->{hit_rate} // 0;
    ok($hit > 0.2, "the trace shares prefixes (theoretical hit rate $hit)");
    my $r = bench(['--dataset-name', 'trace', '--dataset-path', $f,
                   '--trace-block-size', 16, '--trace-speedup', 4],
                  save => 1);
    ran_ok($r, 'replay');
    my $j = $r->{json} // {};
    is($j->{completed}, 12, 'completed 12');
    is($j->{failed}, 0, 'failed 0');
    ok(($j->{total_cached_tokens} // 0) > 0,
       'the worker served shared prefixes from its cache ('
       . ($j->{total_cached_tokens} // 'undef') . ' tokens)');
};

subtest 'sweep --concurrency 1,2,4: table and plot' => sub {
    my $r = bench(['--concurrency', '1,2,4', '--num-prompts', 4,
                   '--random-input-len', 16, '--random-output-len', 8,
                   '--ignore-eos'], save => 1, plot => 1);
    ran_ok($r, 'run');
    is($r->{block}{_n}, 3, 'three result blocks');
    for my $c (1, 2, 4) {
        like($r->{out}, qr/^\s*$c\s+4\s+0\s/m,
             "sweep table: concurrency $c, 4 completed, 0 failed");
    }
    my $steps = ($r->{json} // {})->{steps};
    is(ref $steps, 'ARRAY', 'sweep JSON: steps') or return;
    is_deeply([ map { $_->{max_concurrency} } @$steps ], [1, 2, 4],
              'sweep JSON: one step per concurrency');
    SKIP: {
        skip 'gnuplot not installed', 2
            if system('command -v gnuplot >/dev/null 2>&1') != 0;
        my ($png) = grep { /-sweep\.png$/ } @{ $r->{files} // [] };
        ok($png, 'the sweep PNG written') or diag("@{ $r->{files} // [] }");
        is(substr(read_file("$r->{dir}/" . ($png // 'none')), 0, 8),
           "\x89PNG\r\n\x1a\n", 'a PNG file');
    }
};

subtest 'compare two summaries: ratios' => sub {
    my $r = bench(['--num-prompts', 8, '--max-concurrency', 1,
                   '--random-input-len', 32, '--random-output-len', 16,
                   '--ignore-eos', '--label', 'c1'], save => 1);
    ran_ok($r, 'the second run');
    my ($fa, $fb) = ($saved{c4}, $r->{json_path});
    ok($fa && $fb, 'two summaries saved') or return;
    my $c = run_tool([bench_bin(), 'compare', $fa, $fb]);
    is($c->{code}, 0, 'compare: exit 0') or diag($c->{err});
    like($c->{out}, qr/\d\.\d+x/, 'a ratio column ("0.87x")');
    like($c->{out}, qr/c4/, 'the first column titled by its label');
    my ($line) = grep { /req\/s|request throughput/i }
                 split /\n/, $c->{out};
    my ($ratio) = ($line // '') =~ /([\d.]+)x\s*$/;
    my $ja = Test::Dynamo::Bench::read_json($fa);
    my $jb = Test::Dynamo::Bench::read_json($fb);
    ok(defined $ratio && abs($ratio - $jb->{request_throughput}
                                      / $ja->{request_throughput}) < 0.011,
       'req/s ratio = B / A') or diag($c->{out});

    my $one = run_tool([bench_bin(), 'compare', $fa]);
    is($one->{code}, 2, 'one file: exit 2');
    my $bad = write_trace('bad-summary.json', '{"completed": "x"}');
    my $x = run_tool([bench_bin(), 'compare', $fa, $bad]);
    is($x->{code}, 2, 'a bad summary: exit 2');
    like($x->{err}, qr/bad-summary\.json/, 'the bad file named');
};

done_testing();
