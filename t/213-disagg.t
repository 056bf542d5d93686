# vim:set ft=perl ts=4 sw=4 et:
# Disaggregated prefill and decode end to end (worker/DISAGG.md): real
# redis-server, real cpu-engine dynamo-workers on the embedded model (a
# --role prefill worker P and a --role decode worker D, whose KV blocks
# move over UCX), and nginx with the module: the decode pool
# (dynamo_pass, role=decode) and the prefill pool (dynamo_prefill_upstream,
# role=prefill) filled from Redis. An aggregated worker A (--role both)
# behind a second nginx is the reference:
#   - greedy output through nginx equals A's and the embedded model's
#     known greedy story (models/stories260K/README.md), seeded sampling
#     too; D's /metrics says the prefill was remote, P's shows a transfer;
#   - P's prefix cache is reused: two prompts sharing a long prefix, the
#     second prefilled on P from its cache (hit tokens grow), and D, which
#     holds the prefix too after the first, has P skip those blocks;
#   - the conditional rule both ways: a prompt with at most
#     --max-local-prefill-length uncached tokens (short, or a long one
#     whose prefix D caches) is prefilled locally ("short"), more goes
#     remote; the finish frame says so, an aggregated frame has no field;
#   - P stopped (SIGSTOP) then killed (SIGKILL) while D waits for it: the
#     request completes with A's text, D counts a fallback and a local
#     "failed" prefill, no KV block stays used; a prefill worker that
#     stays stopped: the same after D's --remote-prefill-timeout-ms;
#   - a prefill worker with another block size (32, D has 16) answers 409;
#     the request completes locally with A's text, D logs the refusal
#     naming block_size and then treats that worker as down;
#   - a malformed POST /v1/prefill gets 400 naming the field;
#   - scripts/run.sh start-disagg (make run-disagg) answers and says the
#     prompt was prefilled remotely; stop leaves nothing running.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use File::Temp ();
use HTTP::Tiny ();
use IO::Socket::INET ();
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(sleep time);
use Test::Dynamo::Gateway qw(:all);
use Test::Dynamo::Port ();
use Test::Dynamo::Worker qw(generate worker_bin read_file);

my $mod = module_path();
my $wbin = worker_bin();
plan skip_all => "$mod or $wbin missing (make)" if !-f $mod || !-x $wbin;
plan skip_all => 'redis-server not found'
    if system('command -v redis-server >/dev/null 2>&1') != 0;

my $model = 'stories260K';
my $MAX_LOCAL = 4;          # D: prefill remotely above 4 uncached tokens
my $TIMEOUT_MS = 2000;      # D: --remote-prefill-timeout-ms
my $redis = start_own_redis();
my $rp = $redis->{port};

# small KV pools: UCX registers them whole
my @pool = ('--num-blocks', 512);
my $p = start_worker(cpu_worker_args(redis => "127.0.0.1:$rp",
                     extra => [ '--role', 'prefill', @pool ]));
my $paddr = "127.0.0.1:$p->{port}";
my $d = start_worker(cpu_worker_args(redis => "127.0.0.1:$rp",
                     extra => [ '--role', 'decode', @pool,
                                '--max-local-prefill-length', $MAX_LOCAL,
                                '--remote-prefill-timeout-ms', $TIMEOUT_MS ]));
my $daddr = "127.0.0.1:$d->{port}";
my $a = start_worker(cpu_worker_args(extra => [ @pool ]));

my $gd = start_gateway(
    redis => $rp, policy => 'kv role=decode', servers => [ $daddr ],
    http => "    upstream prefills {\n"
            . "        dynamo_upstream kv role=prefill;\n"
            . "        server 127.0.0.1:1 down;\n    }\n",
    location => "            dynamo_prefill_upstream prefills;\n");
my $ga = start_gateway(servers => [ "127.0.0.1:$a->{port}" ]);

# ---- helpers ------------------------------------------------------------

sub msum { return worker_metric_sum(@_) }

# the worker answers /metrics and none of its KV blocks is in use
sub no_blocks_used {
    my ($w) = @_;
    my $n = msum($w->{port}, 'dynamo_worker_kv_blocks_used');
    return defined $n && $n == 0;
}

sub prefill_count {        # D's finished requests by where they prefilled
    my ($mode, $reason) = @_;
    return msum($d->{port}, 'dynamo_worker_prefill_requests_total',
                mode => $mode, defined $reason ? (reason => $reason) : ());
}

sub fallbacks {
    return msum($d->{port}, 'dynamo_worker_remote_prefill_total',
                result => 'timeout')
         + msum($d->{port}, 'dynamo_worker_remote_prefill_total',
                result => 'error');
}

sub gw_metrics_text { gw_get($_[0], '/metrics')->{body} // '' }

sub gw_workers {
    my ($n) = gw_metrics_text($gd)
              =~ /^dynamo_router_workers\{model="$model"\} (\d+)$/m;
    return $n // 0;
}

# a completion through $gw: (status, text, response)
sub complete {
    my ($gw, $prompt, %o) = @_;
    my $r = gw_post($gw, '/v1/completions',
                    { model => $model, prompt => $prompt,
                      max_tokens => $o{max_tokens} // 24,
                      temperature => $o{temperature} // 0,
                      defined $o{seed} ? (seed => $o{seed}) : () },
                    timeout => 60);
    return ($r->{status} // 0,
            $r->{json} ? $r->{json}{choices}[0]{text} : undef, $r);
}

# deterministic prompts of plain words, each one new to every cache
my @words = qw(the little dog ran to a big tree and saw bird sky happy
               girl boy ball park sun red blue mom said play with friend
               cat fish jump house car rain day night star moon toy box);
my $wseed = 7;
sub words {
    my ($n) = @_;
    return join ' ', map { $wseed = ($wseed * 1103515245 + 12345) % 2**31;
                           $words[($wseed >> 8) % @words] } 1 .. $n;
}

# token-id prompts in [3, 500)
my $iseed = 4242;
sub ids {
    my ($n) = @_;
    return [ map { $iseed = ($iseed * 1103515245 + 12345) % 2**31;
                   3 + ($iseed >> 4) % 497 } 1 .. $n ];
}

sub last_finish { my ($frames) = @_; return $frames->[-1] // {} }

# ---- start --------------------------------------------------------------

ok(wait_until(sub { gw_workers() == 2 }, 15),
   'the gateway indexed the prefill and the decode worker') or BAIL_OUT(
   "not indexed:\n" . gw_metrics_text($gd) . error_log_text($gd));

# the embedded model's known greedy story (models/stories260K/README.md)
my @prompt_ids = (1, 403, 407, 261, 378);
my @known_ids = split ' ', '432 383 286 261 376 298 315 421 395 317 426 338 '
                         . '401 396 267 337 410 408 419 292 411 322 265 282 295';
my $story = detokenize(\@prompt_ids);
my $greedy = substr detokenize([@prompt_ids, @known_ids]), length $story;

subtest 'greedy output equals aggregated serving and the known story' => sub {
    my $remote = prefill_count('remote');
    my $bytes = msum($p->{port}, 'dynamo_worker_kv_transfer_bytes_total');
    my ($st, $text) = complete($gd, $story, max_tokens => 25);
    is($st, 200, 'served disaggregated');
    is($text, $greedy, 'the known greedy story');
    my ($sta, $agg) = complete($ga, $story, max_tokens => 25);
    is($sta, 200, 'served aggregated');
    is($text, $agg, 'the same as the aggregated worker\'s');
    is(prefill_count('remote'), $remote + 1,
       'D counts the prefill as remote');
    cmp_ok(msum($p->{port}, 'dynamo_worker_kv_transfer_bytes_total'), '>',
           $bytes, 'P counts transferred bytes');

    for my $n (60, 150) {
        my $prompt = words($n);
        ($st, $text) = complete($gd, $prompt, max_tokens => 32);
        ($sta, $agg) = complete($ga, $prompt, max_tokens => 32);
        is($st, 200, "$n words: served");
        ok(defined $text && length $text, "$n words: some text");
        is($text, $agg, "$n words: the aggregated worker's text");
    }
    my $prompt = words(80);
    ($st, $text) = complete($gd, $prompt, temperature => 0.8, seed => 7,
                            max_tokens => 32);
    ($sta, $agg) = complete($ga, $prompt, temperature => 0.8, seed => 7,
                            max_tokens => 32);
    is($text, $agg, 'seeded sampling (temperature 0.8, seed 7): the same');

    my $chat = { model => $model, max_tokens => 24, temperature => 0,
                 messages => [ { role => 'user', content => words(50) } ] };
    my $rd = gw_post($gd, '/v1/chat/completions', $chat, timeout => 60);
    my $ra = gw_post($ga, '/v1/chat/completions', $chat, timeout => 60);
    is($rd->{status}, 200, 'a chat completion served');
    is($rd->{json} && $rd->{json}{choices}[0]{message}{content},
       $ra->{json} && $ra->{json}{choices}[0]{message}{content},
       'chat: the aggregated worker\'s reply');

    my $remote_now = prefill_count('remote');
    cmp_ok($remote_now, '>=', $remote + 5, 'all of them prefilled on P')
        or diag explain [ http_get($d->{port}, '/metrics') ];
    ok(wait_until(sub {
        no_blocks_used($p) && no_blocks_used($d) }, 5),
       'no KV block stays used on P or D');
};

subtest 'over tcp too (--kv-transport tcp on both)' => sub {
    my @tcp = ('--kv-transport', 'tcp');
    my $pt = start_worker(cpu_worker_args(
                          extra => [ '--role', 'prefill', @pool, @tcp ]));
    my $dt = start_worker(cpu_worker_args(
                          extra => [ '--role', 'decode', @pool, @tcp,
                                     '--max-local-prefill-length', 4 ]));
    my $prompt = ids(100);
    my $g = { temperature => 0 };
    my ($sa, $fa) = generate($a->{port}, { token_ids => $prompt,
                             max_tokens => 16, sampling => $g });
    my ($s, $f, $raw) = generate($dt->{port}, { token_ids => $prompt,
                                 max_tokens => 16, sampling => $g,
                                 hints => { prefill_worker =>
                                            "127.0.0.1:$pt->{port}" } });
    is($s, 200, 'served')
        or diag("D answered: ", $raw // '', "\nD's log:\n",
                read_file($dt->{err}), "\nP's log:\n", read_file($pt->{err}));
    is(last_finish($f)->{prefill}, 'remote', 'prefilled on P');
    is_deeply([ map { @{ $_->{t} // [] } } @$f ],
              [ map { @{ $_->{t} // [] } } @$fa ],
              'the aggregated worker\'s tokens');
    my (undef, $health) = http_get($pt->{port}, '/health');
    like($health // '', qr/"kv_transport":\s*"tcp"/,
         'P\'s /health says tcp');
    cmp_ok(msum($pt->{port}, 'dynamo_worker_kv_transfer_bytes_total'), '>',
           0, 'P moved the blocks');
    stop_worker($_) for $dt, $pt;
};

subtest 'the prefill worker reuses its prefix cache' => sub {
    my $prefix = words(120) . '.';
    my $nblocks = int((1 + @{ tokenize($prefix) }) / 16);
    my $hits0 = msum($p->{port}, 'dynamo_worker_prefix_cache_hit_tokens_total');
    my $skip0 = msum($p->{port}, 'dynamo_worker_kv_blocks_skipped_total');
    my $remote = prefill_count('remote');

    my ($st, $text) = complete($gd, "$prefix Then the " . words(30));
    is($st, 200, 'first prompt served');
    my $hits1 = msum($p->{port},
                     'dynamo_worker_prefix_cache_hit_tokens_total');
    ($st, $text) = complete($gd, "$prefix So a " . words(30));
    is($st, 200, 'second prompt (same prefix) served');
    my $hits2 = msum($p->{port},
                     'dynamo_worker_prefix_cache_hit_tokens_total');
    is(prefill_count('remote'), $remote + 2, 'both prefilled on P');
    cmp_ok($hits2 - $hits1, '>=', 16 * ($nblocks - 1),
           "P found the prefix's blocks in its cache the second time "
           . "($nblocks blocks of prefix; hits $hits0 -> $hits1 -> $hits2)");
    cmp_ok(msum($p->{port}, 'dynamo_worker_kv_blocks_skipped_total'), '>',
           $skip0, 'blocks D already held were not sent again');
};

subtest 'conditional: few uncached tokens local, more remote' => sub {
    my $short = prefill_count('local', 'short');
    my $remote = prefill_count('remote');

    # a prompt of 3 tokens (<= 4)
    my ($st) = complete($gd, [ 1, 403, 407 ], max_tokens => 4);
    is($st, 200, 'a 3-token prompt served');
    is(prefill_count('local', 'short'), $short + 1, 'prefilled locally: short');
    is(prefill_count('remote'), $remote, 'not remote');

    # 64 new tokens: remote; the same 64 + 2: D caches the 4 blocks, so
    # only 2 tokens are uncached: local, however long the prompt
    my $x = ids(64);
    ($st) = complete($gd, $x, max_tokens => 4);
    is($st, 200, 'a 64-token prompt served');
    is(prefill_count('remote'), $remote + 1, '64 uncached tokens: remote');
    ($st) = complete($gd, [ @$x, @{ ids(2) } ], max_tokens => 4);
    is($st, 200, 'the 66-token extension served');
    is(prefill_count('local', 'short'), $short + 2,
       '66 tokens of which 64 cached on D: local, short');
    is(prefill_count('remote'), $remote + 1, 'not remote');

    # the finish frame says it (directly at D, with the gateway's hint)
    my $hint = { prefill_worker => $paddr };
    my ($s1, $f1) = generate($d->{port}, { token_ids => ids(40),
                             max_tokens => 2, hints => $hint });
    is($s1, 200, 'generate with a hint: 200');
    is(last_finish($f1)->{prefill}, 'remote', 'finish: "prefill":"remote"');
    my ($s2, $f2) = generate($d->{port}, { token_ids => ids(3),
                             max_tokens => 2, hints => $hint });
    is($s2, 200, 'a short one: 200');
    is(last_finish($f2)->{prefill}, 'local', 'finish: "prefill":"local"');
    is(last_finish($f2)->{prefill_reason}, 'short',
       'finish: "prefill_reason":"short"');
    my ($s3, $f3) = generate($d->{port}, { token_ids => ids(40),
                             max_tokens => 2 });
    is($s3, 200, 'no hint: 200');
    ok(!exists last_finish($f3)->{prefill},
       'no hint: aggregated, no prefill field');
    my ($s4, $f4) = generate($a->{port}, { token_ids => ids(40),
                             max_tokens => 2, hints => $hint });
    is($s4, 200, 'a --role both worker with a hint: 200');
    ok(!exists last_finish($f4)->{prefill},
       'role both ignores the hint: no prefill field');
};

subtest 'a malformed POST /v1/prefill gets 400 naming the field' => sub {
    my $http = HTTP::Tiny->new(timeout => 10);
    my @cases = (
        [ 'no kv', '{"token_ids":[1,403,407]}', qr/^kv/ ],
        [ 'kv not an object', '{"token_ids":[1,403],"kv":7}', qr/^kv/ ],
        [ 'bad blocks', '{"token_ids":[1,403],"kv":{"xfer_id":"1",'
          . '"blocks":"x","skip_blocks":0,"timeout_ms":100,"desc":{}}}',
          qr/^kv\.blocks/ ],
        [ 'bad xfer_id', '{"token_ids":[1,403],"kv":{"xfer_id":[],'
          . '"blocks":[1],"skip_blocks":0,"timeout_ms":100,"desc":{}}}',
          qr/^kv\.xfer_id/ ],
        [ 'bad token_ids', '{"token_ids":"x","kv":{}}', qr/token_ids/ ],
    );
    for my $c (@cases) {
        my ($name, $body, $field) = @$c;
        my $r = $http->post("http://$paddr/v1/prefill",
                            { content => $body, headers =>
                              { 'Content-Type' => 'application/json' } });
        is($r->{status}, 400, "$name: 400");
        my $j = eval { json_decode($r->{content}) } // {};
        like($j->{error}{field} // '', $field,
             "$name: the error names the field ("
             . ($j->{error}{field} // 'none') . ')')
            or diag $r->{content};
    }
    my $r = $http->post("http://$paddr/v1/prefill",
                        { content => 'not json', headers =>
                          { 'Content-Type' => 'application/json' } });
    is($r->{status}, 400, 'not JSON: 400');
    $r = $http->post("http://127.0.0.1:$a->{port}/v1/prefill",
                     { content => '{"token_ids":[1,403]}', headers =>
                       { 'Content-Type' => 'application/json' } });
    cmp_ok($r->{status}, '>=', 400, 'a --role both worker refuses it ('
           . $r->{status} . ')');
    ok(wait_worker_idle($p->{port}, 5), 'P has nothing left in flight');
};

subtest 'the prefill worker stopped, then killed mid-request' => sub {
    my $prompt = words(90);
    my ($sta, $agg) = complete($ga, $prompt, max_tokens => 24);
    my $fb = fallbacks();
    my $failed = prefill_count('local', 'failed');
    my $sent = msum($d->{port}, 'dynamo_worker_remote_prefill_sent_total');

    kill 'STOP', $p->{pid};
    # a helper kills P once D has sent it the prefill request
    my $killer = fork // die "fork: $!";
    if ($killer == 0) {
        wait_until(sub { msum($d->{port},
                              'dynamo_worker_remote_prefill_sent_total')
                         > $sent }, 3);
        sleep 0.3;
        kill 'KILL', $p->{pid};
        POSIX::_exit(0);
    }
    my $t0 = time;
    my ($st, $text) = complete($gd, $prompt, max_tokens => 24);
    my $took = time - $t0;
    waitpid($killer, 0);
    stop_worker($p, 'KILL');
    is($st, 200, sprintf('the request completed (%.1f s)', $took));
    is($text, $agg, 'with the aggregated worker\'s text');
    is(fallbacks(), $fb + 1, 'D counts one fallback');
    is(prefill_count('local', 'failed'), $failed + 1,
       'prefilled locally: failed');
    ok(wait_until(sub {
        no_blocks_used($d) }, 5),
       'D\'s used KV blocks back to 0');
    ok(wait_worker_idle($d->{port}, 5), 'nothing in flight at D');
};

subtest 'a prefill worker that stalls: D\'s deadline, then local' => sub {
    my $p3 = start_worker(cpu_worker_args(
                          extra => [ '--role', 'prefill', @pool ]));
    my $prompt = ids(60);
    my $greedy0 = { temperature => 0 };
    my ($sa, $fa) = generate($a->{port}, { token_ids => $prompt,
                             max_tokens => 12, sampling => $greedy0 });
    my $timeouts = msum($d->{port}, 'dynamo_worker_remote_prefill_total',
                        result => 'timeout');
    kill 'STOP', $p3->{pid};
    my $t0 = time;
    my ($s, $f) = generate($d->{port}, { token_ids => $prompt,
                           max_tokens => 12, sampling => $greedy0,
                           hints => { prefill_worker =>
                                      "127.0.0.1:$p3->{port}" } });
    my $took = time - $t0;
    stop_worker($p3, 'KILL');
    is($s, 200, 'served');
    cmp_ok($took, '>=', $TIMEOUT_MS / 1000 - 0.05,
           sprintf('after the deadline (%.2f s)', $took));
    is_deeply([ map { @{ $_->{t} // [] } } @$f ],
              [ map { @{ $_->{t} // [] } } @$fa ],
              'the aggregated worker\'s tokens');
    is(last_finish($f)->{prefill}, 'local', 'prefilled locally');
    is(last_finish($f)->{prefill_reason}, 'failed', 'reason: failed');
    is(msum($d->{port}, 'dynamo_worker_remote_prefill_total',
            result => 'timeout'), $timeouts + 1, 'counted as a timeout');
    ok(wait_until(sub {
        no_blocks_used($d) }, 5),
       'D\'s used KV blocks back to 0');
};

subtest 'a client that leaves while P works: D keeps the blocks till then' => sub {
    my $p4 = start_worker(cpu_worker_args(
                          extra => [ '--role', 'prefill', @pool ]));
    my $sent = msum($d->{port}, 'dynamo_worker_remote_prefill_sent_total');
    kill 'STOP', $p4->{pid};
    my $body = JSON::PP::encode_json({ token_ids => ids(60),
        max_tokens => 8, hints => {
            prefill_worker => "127.0.0.1:$p4->{port}" } });
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $d->{port})
        or die "connect: $!";
    my $t0 = time;
    print $sock "POST /v1/generate HTTP/1.1\r\nHost: d\r\n"
        . "Content-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n" . $body;
    ok(wait_until(sub { msum($d->{port},
                        'dynamo_worker_remote_prefill_sent_total') > $sent },
                  3), 'D asked P');
    close $sock;
    sleep 0.3;
    ok(!no_blocks_used($d),
       'the client left, P may still write: D keeps the blocks');
    ok(wait_until(sub { no_blocks_used($d) }, $TIMEOUT_MS / 1000 + 3),
       'released after P\'s deadline');
    cmp_ok(time - $t0, '>=', $TIMEOUT_MS / 1000 * 0.75,
           sprintf('not before it (%.2f s)', time - $t0));
    stop_worker($p4, 'KILL');
    ok(wait_worker_idle($d->{port}, 5), 'nothing in flight at D');
};

subtest 'a prefill worker with another block size is refused' => sub {
    my $p2 = start_worker(cpu_worker_args(redis => "127.0.0.1:$rp",
                          extra => [ '--role', 'prefill', @pool,
                                     '--block-size', 32 ]));
    my $p2addr = "127.0.0.1:$p2->{port}";
    # the killed P's liveness lapses, P2 registers
    ok(wait_until(sub {
        gw_metrics_text($gd) =~ /\Q$p2addr\E/ && gw_workers() == 2 }, 15),
       'the gateway has D and the new prefill worker only');

    my $prompt = words(70);
    my ($sta, $agg) = complete($ga, $prompt, max_tokens => 24);
    my $failed = prefill_count('local', 'failed');
    my $before = @{ access_log_entries($gd) };
    my ($st, $text) = complete($gd, $prompt, max_tokens => 24);
    is($st, 200, 'served');
    is($text, $agg, 'with the aggregated worker\'s text');
    my @e;
    wait_until(sub { @e = @{ access_log_entries($gd) }; @e > $before }, 5);
    is($e[-1] && $e[-1]{prefill}, $p2addr,
       'the gateway named the new prefill worker');
    is(msum($p2->{port}, 'dynamo_worker_prefill_refused_total'), 1,
       'it refused the prefill (409)');
    is(prefill_count('local', 'failed'), $failed + 1,
       'D prefilled locally: failed');
    my ($line) = grep { index($_, $p2addr) >= 0 && /block_size/ }
                 split /\n/, read_file($d->{err}) . read_file($d->{out});
    ok($line, 'D logged the refusal, naming the worker and block_size')
        or diag read_file($d->{err});
    like($line // '', qr/\b16\b.*\b32\b|\b32\b.*\b16\b/,
         'with both block sizes');

    # a refused layout keeps that worker out for a while: down
    my ($s, $f) = generate($d->{port}, { token_ids => ids(40),
                           max_tokens => 2,
                           hints => { prefill_worker => $p2addr } });
    is($s, 200, 'the next request with that hint: 200');
    is(last_finish($f)->{prefill}, 'local', 'local');
    is(last_finish($f)->{prefill_reason}, 'down', 'reason: down');
    ok(wait_until(sub {
        no_blocks_used($d) && no_blocks_used($p2) }, 5),
       'no KV block stays used on D or the new prefill worker');
    is(stop_worker($p2), 0, 'the new prefill worker exits cleanly');
};

unlike(error_log_text($gd), qr/\[(alert|crit|emerg)\]/, 'no alert/crit');
stop_gateway($_) for $gd, $ga;
is(stop_worker($d), 0, 'D exits cleanly');
is(stop_worker($a), 0, 'A exits cleanly');
stop_own_redis($redis);

# make run-disagg / make stop (scripts/run.sh) in a build directory of
# its own, so that run/ is private to this test
subtest 'scripts/run.sh start-disagg and stop' => sub {
    plan skip_all => 'curl not found'
        if system('command -v curl >/dev/null 2>&1') != 0;
    my $b = File::Temp::tempdir(CLEANUP => 1);
    mkdir "$b/$_" for qw(modules bin);
    symlink $mod, "$b/modules/ngx_dynamo_module.so" or die $!;
    symlink $wbin, "$b/bin/dynamo-worker" or die $!;
    my $port = Test::Dynamo::Port::free_port();
    local $ENV{DYNAMO_PORT} = $port;
    local $ENV{NGINX} = nginx_bin();
    my $out = `timeout -k 5 120 sh scripts/run.sh start-disagg '$b' 2>&1`;
    is($? >> 8, 0, 'start-disagg succeeds') or diag $out;
    like($out, qr/^Once upon a time, .*\(prompt \d+ tokens, 48 generated\)$/ms,
         'it answered a completion');
    like($out, qr/^prefill: remote, on the prefill worker/m,
         'and says the prompt was prefilled remotely');
    like($out, qr/running disaggregated.*127\.0\.0\.1:$port/s,
         'and where nginx listens');
    my ($st, $text) = complete($port, $story, max_tokens => 25);
    is($text, $greedy, 'the known greedy story through its nginx');
    my @pids = map { my $p = read_file("$b/run/$_"); chomp $p; $p }
               qw(logs/nginx.pid prefill.pid decode.pid redis.pid);
    is(scalar(grep { /^\d+$/ && kill 0, $_ } @pids), 4,
       'nginx, both workers and Redis run');
    $out = `timeout -k 5 60 sh scripts/run.sh stop '$b' 2>&1`;
    is($? >> 8, 0, 'stop succeeds') or diag $out;
    like($out, qr/stopped dynamo-worker \(decode\).*stopped dynamo-worker \(prefill\)/s,
         'stop names both workers');
    ok(wait_until(sub { !grep { /^\d+$/ && kill 0, $_ } @pids }, 5),
       'nothing of them left');
};

done_testing();
