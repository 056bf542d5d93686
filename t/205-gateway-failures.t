# vim:set ft=perl ts=4 sw=4 et:
# The gateway when things go wrong, with real processes: a worker killed
# mid-stream (the client gets an error event then [DONE], no hang) and
# mid-request (502), the client closing (the worker cancels at once),
# `nginx -s reload` (HUP) during a stream (the stream completes), Redis
# killed and restarted (requests keep being served), an nginx worker
# process killed mid-stream (its requests stop counting as in flight).
# Mock-engine workers at half speed (about 12 ms a token) so streams last
# (400 tokens: 5 s; the embedded model's context is 512).

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX qw(SIGKILL);
use Test::Dynamo::Gateway qw(:all);

my $model = 'stories260K';
my $long = { model => $model, prompt => 'Once upon a time',
             max_tokens => 400, ignore_eos => JSON::PP::true };

sub cancelled {
    my ($port) = @_;
    return worker_metric($port,
        'dynamo_worker_requests_finished_total{reason="cancelled"}') // 0;
}

subtest 'worker killed mid-stream: error event, [DONE], no hang' => sub {
    my $w = start_worker(mock_worker_args(speedup => 0.5));
    my $gw = start_gateway(servers => ["127.0.0.1:$w->{port}"]);
    my $s = sse_open($gw, '/v1/chat/completions',
                     { model => $model, max_tokens => 400,
                       stream => JSON::PP::true,
                       messages => [ { role => 'user', content => 'Hi' } ] });
    is($s->{status}, 200, 'stream started') or return;
    my $first = sse_next($s, 10);
    ok(ref $first && $first->{choices}, 'a first chunk');
    my $second = sse_next($s, 10);
    ok(ref $second && $second->{choices}, 'a token chunk before the kill');
    stop_worker($w, SIGKILL);
    my ($err, $done, $t0) = (undef, 0, time);
    while (defined(my $e = sse_next($s, 10))) {
        if (!ref $e) { $done = 1; last }
        $err = $e if $e->{error};
    }
    ok(time - $t0 < 10 && !$s->{timed_out}, 'the stream ends at once');
    ok($err, 'an error event (data: {"error":...})') or return;
    like($err->{error}{message} // '', qr/\S/, 'with a message');
    ok(exists $err->{error}{type}, 'error.type');
    ok($done, 'data: [DONE] after it');
    my $more = sse_next($s, 5);
    ok(!defined $more && $s->{eof}, 'then the end of the response');
    ok(!$s->{chunked} || $s->{complete},
       'chunked response properly terminated');
    sse_close($s);
    stop_gateway($gw);
    unlike(error_log_text($gw), qr/\[(alert|crit)\]/, 'no alert/crit');
};

subtest 'worker killed during a non-streaming request: 502 JSON' => sub {
    my $w = start_worker(mock_worker_args(speedup => 0.5));
    my $gw = start_gateway(servers => ["127.0.0.1:$w->{port}"]);
    my $pid = fork // die;
    if (!$pid) {
        sleep 1;
        kill SIGKILL, $w->{pid};
        POSIX::_exit(0);
    }
    my $t0 = time;
    my $r = gw_post($gw, '/v1/completions', $long, timeout => 20);
    waitpid $pid, 0;
    stop_worker($w);
    ok(time - $t0 < 10, 'answered at once');
    is($r->{status}, 502, 'status 502');
    is(ref $r->{json}{error}, 'HASH', 'OpenAI error JSON')
        or diag $r->{raw};
    is($r->{json}{error}{type}, 'server_error', 'type server_error');
    stop_gateway($gw);
};

subtest 'client closes mid-stream: the worker cancels at once' => sub {
    my $w = start_worker(mock_worker_args(speedup => 0.5));
    my $gw = start_gateway(servers => ["127.0.0.1:$w->{port}"]);
    my $s = sse_open($gw, '/v1/completions',
                     { %$long, stream => JSON::PP::true });
    is($s->{status}, 200, 'stream started') or return;
    ok(ref sse_next($s, 10), 'a first chunk');
    is(cancelled($w->{port}), 0, 'nothing cancelled yet');
    my $t0 = time;
    sse_close($s);
    ok(wait_until(sub { cancelled($w->{port}) == 1 }, 5),
       'the worker counts one cancelled request');
    ok(time - $t0 < 2, sprintf 'within 2 s (%.2f s)', time - $t0);
    ok(wait_worker_idle($w->{port}, 5), 'nothing left in flight');
    stop_gateway($gw);
    stop_worker($w);
};

subtest 'client closes during a non-streaming request: cancelled' => sub {
    my $w = start_worker(mock_worker_args(speedup => 0.5));
    my $gw = start_gateway(servers => ["127.0.0.1:$w->{port}"]);
    my $r = gw_post($gw, '/v1/completions', $long, timeout => 0.8);
    ok($r->{timed_out}, 'closed before the answer');
    ok(wait_until(sub { cancelled($w->{port}) == 1 }, 5),
       'the worker counts one cancelled request');
    stop_gateway($gw);
    stop_worker($w);
};

subtest 'reload (HUP) during a stream: the stream completes' => sub {
    my $w = start_worker(mock_worker_args(speedup => 0.5));
    my $gw = start_gateway(servers => ["127.0.0.1:$w->{port}"]);
    my $s = sse_open($gw, '/v1/completions',
                     { %$long, max_tokens => 300, stream => JSON::PP::true,
                       stream_options => { include_usage => JSON::PP::true } });
    is($s->{status}, 200, 'stream started') or return;
    ok(ref sse_next($s, 10), 'a first chunk');
    reload_gateway($gw);
    my $r = gw_post($gw, '/v1/completions',
                    { model => $model, prompt => 'Hi', max_tokens => 3 });
    is($r->{status}, 200, 'the new generation serves a request');
    my (@ev, $done);
    while (defined(my $e = sse_next($s, 20))) {
        if (!ref $e) { $done = 1; last }
        push @ev, $e;
    }
    ok($done, '[DONE] at the end');
    ok(!grep({ $_->{error} } @ev), 'no error event');
    my ($fin) = grep { @{ $_->{choices} // [] }
                       && $_->{choices}[0]{finish_reason} } @ev;
    is($fin && $fin->{choices}[0]{finish_reason}, 'length', 'finish length');
    is($ev[-1]{usage}{completion_tokens}, 300, 'all 300 tokens');
    sse_close($s);
    stop_gateway($gw);
    stop_worker($w);
    unlike(error_log_text($gw), qr/\[(alert|crit)\]/, 'no alert/crit');
};

subtest 'a dead server among live ones: every request is served' => sub {
    my $w = start_worker(mock_worker_args(speedup => 10));
    my $gw = start_gateway(servers => [ '127.0.0.1:1',
                                        "127.0.0.1:$w->{port}" ],
                           policy => 'round_robin');
    my @st = map { gw_post($gw, '/v1/completions',
                           { model => $model, prompt => "Hi $_",
                             max_tokens => 2 }, timeout => 10)->{status} // 0 }
             1 .. 6;
    is_deeply(\@st, [ (200) x 6 ], 'six requests, all 200');
    stop_gateway($gw);
    stop_worker($w);
};

subtest '48 concurrent streams, 16 closed early: the rest complete' => sub {
    my @w = map { start_worker(mock_worker_args(speedup => 2)) } 1 .. 2;
    my $gw = start_gateway(servers => [ map { "127.0.0.1:$_->{port}" } @w ],
                           workers => 2);
    my @s = map { sse_open($gw, '/v1/completions',
                           { model => $model, prompt => "Story $_",
                             max_tokens => 100, stream => JSON::PP::true,
                             ignore_eos => JSON::PP::true }) } 1 .. 48;
    is(scalar(grep { $_->{status} == 200 } @s), 48, '48 streams started');
    sse_close($s[$_ * 3]) for 0 .. 15;
    my $done = 0;
    for my $i (grep { $_ % 3 } 0 .. 47) {
        my $ok;
        while (defined(my $e = sse_next($s[$i], 30))) {
            if (!ref $e) { $ok = 1; last }
        }
        $done++ if $ok;
        sse_close($s[$i]);
    }
    is($done, 32, 'the other 32 end with [DONE]');
    ok(wait_until(sub {
        my $c = 0;
        $c += cancelled($_->{port}) for @w;
        $c == 16;
    }, 10), 'the workers cancelled the 16 closed ones');
    ok(wait_worker_idle($_->{port}, 10), 'worker idle') for @w;
    stop_gateway($gw);
    stop_worker($_) for @w;
    unlike(error_log_text($gw), qr/\[(alert|crit)\]/, 'no alert/crit');
};

subtest 'Redis killed and restarted: requests keep being served' => sub {
    my $redis = start_own_redis();
    my $rp = $redis->{port};
    my ($w1, $w2) = map { start_worker(mock_worker_args(
                              redis => "127.0.0.1:$rp", speedup => 0.5)) }
                          1 .. 2;
    my $gw = start_gateway(redis => $rp, workers => 2,
                           servers => [ "127.0.0.1:$w1->{port}",
                                        "127.0.0.1:$w2->{port}" ]);
    my $req = { model => $model, prompt => 'Once upon a time',
                max_tokens => 4 };
    is(gw_post($gw, '/v1/completions', $req)->{status}, 200,
       'served with Redis up');
    kill_own_redis($redis);
    my @st = map { gw_post($gw, '/v1/completions', $req, timeout => 5)
                   ->{status} // 0 } 1 .. 10;
    is_deeply(\@st, [ (200) x 10 ], 'Redis down: 10 requests served');
    is(gw_get($gw, '/health')->{status}, 200, 'Redis down: /health 200');
    sleep 2;
    $redis = start_own_redis($rp);
    @st = map { gw_post($gw, '/v1/completions', $req, timeout => 5)
                ->{status} // 0 } 1 .. 5;
    is_deeply(\@st, [ (200) x 5 ], 'Redis back: served');
    # the workers re-register, the gateway resyncs
    ok(wait_until(sub {
        my $m = gw_get($gw, '/metrics')->{body} // '';
        $m =~ /^dynamo_redis_connected\{[^}]*\} 1$/m;
    }, 10), 'the gateway reconnected to Redis (dynamo_redis_connected 1)');
    my $errors = () = error_log_text($gw) =~ /\[(error|warn)\][^\n]*redis/gi;
    ok($errors < 20, "no error storm while Redis was down ($errors lines)");
    stop_gateway($gw);
    stop_worker($_) for $w1, $w2;
    stop_own_redis($redis);
};


subtest 'nginx worker process killed mid-stream: in-flight taken back'
=> sub {
    my $w = start_worker(mock_worker_args(speedup => 0.5));
    my $addr = "127.0.0.1:$w->{port}";
    my $gw = start_gateway(servers => [ $addr ], workers => 1);
    my @s = map { sse_open($gw, '/v1/completions', { %$long,
                                                     stream => JSON::PP::true })
                } 1 .. 3;
    is(scalar(grep { ref sse_next($_, 10) } @s), 3, 'three streams started');
    is(gw_in_flight($gw, $addr), 3, 'in flight: 3');
    my @pids = nginx_workers($gw);
    is(scalar @pids, 1, 'one nginx worker process') or return;
    kill SIGKILL, $pids[0];
    sse_close($_) for @s;
    ok(wait_until(sub {
        my @now = nginx_workers($gw);
        @now == 1 && $now[0] != $pids[0];
    }, 10), 'the master started a new worker process');
    ok(wait_until(sub { (gw_in_flight($gw, $addr) // -1) == 0 }, 5),
       'in flight back to 0 within 5 s')
        or diag('in flight: ' . (gw_in_flight($gw, $addr) // 'none'));
    is(gw_post($gw, '/v1/completions',
               { model => $model, prompt => 'hi', max_tokens => 2 })
       ->{status}, 200, 'requests served after');
    is(gw_in_flight($gw, $addr), 0, 'and in flight 0 again after them');
    stop_gateway($gw);
    stop_worker($w);
};

done_testing();
