# vim:set ft=perl ts=4 sw=4 et:
# The gateway's upstream side with real workers: a worker that stops
# answering (SIGSTOP) mid-stream and mid-request (dynamo_read_timeout: an
# error event then [DONE] and a terminated chunked body; 504 JSON), frames
# larger than dynamo_buffer_size (they span reads and chunks: same text and
# logprobs as with the default buffer), the worker's own 400 passed on as
# OpenAI error JSON naming the prompt, keepalive connections reused, a
# dead server among the picks (the next one serves), a client abort
# counted at the gateway.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX ();
use Test::Dynamo::Gateway qw(:all);
use Test::Dynamo::Port ();

my $model = 'stories260K';

subtest 'worker stalls mid-stream: error event, [DONE], end of body' => sub {
    my $w = start_worker(mock_worker_args(speedup => 0.5));
    my $gw = start_gateway(servers => ["127.0.0.1:$w->{port}"],
                           location => 'dynamo_read_timeout 1s;');
    my $s = sse_open($gw, '/v1/completions',
                     { model => $model, prompt => 'Once upon a time',
                       max_tokens => 400, stream => JSON::PP::true });
    is($s->{status}, 200, 'stream started') or return;
    ok(ref sse_next($s, 10), 'a first chunk');
    kill 'STOP', $w->{pid};
    my ($err, $done, $t0) = (undef, 0, time);
    while (defined(my $e = sse_next($s, 10))) {
        if (!ref $e) { $done = 1; last }
        $err = $e if $e->{error};
    }
    my $dt = time - $t0;
    kill 'CONT', $w->{pid};
    ok($dt < 5, sprintf 'ends after the read timeout (%.1f s)', $dt);
    ok($err, 'an error event') or return;
    like($err->{error}{message} // '', qr/timed out/, 'saying it timed out');
    is($err->{error}{type}, 'server_error', 'type server_error');
    ok($done, 'data: [DONE] after it');
    ok(!defined sse_next($s, 5) && $s->{eof}, 'then the end');
    ok(!$s->{chunked} || $s->{complete}, 'chunked body terminated');
    sse_close($s);
    stop_gateway($gw);
    stop_worker($w);
};

subtest 'worker stalls during a non-streaming request: 504 JSON' => sub {
    my $w = start_worker(mock_worker_args(speedup => 0.5));
    my $gw = start_gateway(servers => ["127.0.0.1:$w->{port}"],
                           location => 'dynamo_read_timeout 1s;');
    my $pid = fork // die;
    if (!$pid) {
        sleep 0.5;
        kill 'STOP', $w->{pid};
        POSIX::_exit(0);
    }
    my $t0 = time;
    my $r = gw_post($gw, '/v1/completions',
                    { model => $model, prompt => 'Once upon a time',
                      max_tokens => 400 }, timeout => 20);
    waitpid $pid, 0;
    kill 'CONT', $w->{pid};
    ok(time - $t0 < 5, 'answered after the read timeout');
    is($r->{status}, 504, 'status 504');
    is($r->{json}{error}{type}, 'server_error', 'OpenAI error JSON')
        or diag $r->{raw};
    like($r->{json}{error}{message} // '', qr/timed out/, 'timed out');
    stop_gateway($gw);
    stop_worker($w);
};

subtest 'frames over dynamo_buffer_size: same answers' => sub {
    my $w = start_worker(cpu_worker_args());
    my @gw = (start_gateway(servers => ["127.0.0.1:$w->{port}"]),
              start_gateway(servers => ["127.0.0.1:$w->{port}"],
                            location => 'dynamo_buffer_size 256;'));
    my $req = { model => $model, max_tokens => 40,
                temperature => 0, logprobs => JSON::PP::true,
                top_logprobs => 20,
                messages => [ { role => 'user', content => 'Tell me' } ] };
    my (@text, @lp, @stext, @slp);
    for my $gw (@gw) {
        my $r = gw_post($gw, '/v1/chat/completions', $req, timeout => 20);
        is($r->{status}, 200, 'non-streaming 200') or diag $r->{raw};
        my $c = $r->{json}{choices}[0];
        push @text, $c->{message}{content};
        push @lp, json_encode($c->{logprobs}{content});

        my $s = sse_open($gw, '/v1/chat/completions',
                         { %$req, stream => JSON::PP::true });
        is($s->{status}, 200, 'streaming 200');
        my ($t, @l, $done) = ('');
        while (defined(my $e = sse_next($s, 20))) {
            if (!ref $e) { $done = 1; last }
            for my $ch (@{ $e->{choices} // [] }) {
                $t .= $ch->{delta}{content} // '';
                push @l, @{ $ch->{logprobs}{content} // [] };
            }
        }
        sse_close($s);
        ok($done, '[DONE]');
        push @stext, $t;
        push @slp, json_encode(\@l);
    }
    ok(length $text[0], 'some text');
    is($text[1], $text[0], 'non-streaming: same text');
    is($lp[1], $lp[0], 'non-streaming: same logprobs');
    is($stext[0], $text[0], 'streaming: the same text as not streaming');
    is($stext[1], $stext[0], 'streaming: same text');
    is($slp[1], $slp[0], 'streaming: same logprobs');
    unlike(error_log_text($gw[1]), qr/too big header|\[(alert|crit)\]/,
           'no header or frame errors');
    stop_gateway($_) for @gw;
    stop_worker($w);
};

subtest "the worker's 400: OpenAI error JSON naming the prompt" => sub {
    my $w = start_worker(cpu_worker_args());
    my $dir = model_dir();
    # the gateway believes in a longer context than the worker's 512
    my $gw = start_gateway(
        servers => ["127.0.0.1:$w->{port}"],
        models => "    dynamo_model name=$model path=$dir context=4096;\n");
    my $r = gw_post($gw, '/v1/completions',
                    { model => $model, prompt => [ (5) x 600 ],
                      max_tokens => 4 });
    is($r->{status}, 400, 'status 400') or diag $r->{raw};
    is($r->{json}{error}{type}, 'invalid_request_error', 'type');
    is($r->{json}{error}{param}, 'prompt', 'param prompt');
    like($r->{json}{error}{message} // '', qr/context/,
         "the worker's message");
    my $ok = gw_post($gw, '/v1/completions',
                     { model => $model, prompt => 'Once', max_tokens => 2 });
    is($ok->{status}, 200, 'the next request is served');
    stop_gateway($gw);
    stop_worker($w);
};

subtest 'keepalive: one connection to the worker for many requests' => sub {
    my $w = start_worker(cpu_worker_args());
    my $gw = start_gateway(servers => ["127.0.0.1:$w->{port}"]);
    my $req = { model => $model, prompt => 'Once', max_tokens => 3 };
    for (1 .. 3) {
        is(gw_post($gw, '/v1/completions', $req)->{status}, 200, 'json');
        my $s = sse_open($gw, '/v1/completions',
                         { %$req, stream => JSON::PP::true });
        while (defined(my $e = sse_next($s, 10))) {
            last if !ref $e;
        }
        sse_close($s);
    }
    my $n = () = `ss -Htn state established '( sport = :$w->{port} )'`
                 =~ /\n/g;
    SKIP: {
        skip 'no ss', 1 if $?;
        is($n, 1, 'one established connection at the worker');
    }
    stop_gateway($gw);
    stop_worker($w);
};

subtest 'a dead server among the picks: the next one serves' => sub {
    my $w = start_worker(cpu_worker_args());
    my $dead = Test::Dynamo::Port::free_port();
    my $gw = start_gateway(servers => ["127.0.0.1:$dead",
                                       "127.0.0.1:$w->{port}"],
                           policy => 'round_robin');
    my $req = { model => $model, prompt => 'Once', max_tokens => 2 };
    my @st = map { gw_post($gw, '/v1/completions', $req)->{status} } 1 .. 4;
    is("@st", '200 200 200 200', 'every request served');
    my $f = worker_metric($gw->{port}, 'dynamo_gateway_worker_failures_total'
                                       . qq({worker="127.0.0.1:$dead"}));
    ok(($f // 0) >= 1, 'the dead server was tried and counted failed');
    like(error_log_text($gw), qr/failed, 1 left to try/,
         'the request went on to the next pick');
    stop_gateway($gw);
    stop_worker($w);
};

subtest 'client closes mid-stream: counted at the gateway' => sub {
    my $w = start_worker(mock_worker_args(speedup => 0.5));
    my $gw = start_gateway(servers => ["127.0.0.1:$w->{port}"]);
    my $s = sse_open($gw, '/v1/completions',
                     { model => $model, prompt => 'Once upon a time',
                       max_tokens => 400, stream => JSON::PP::true });
    is($s->{status}, 200, 'stream started') or return;
    ok(ref sse_next($s, 10), 'a first chunk');
    sse_close($s);
    ok(wait_until(sub {
           (worker_metric($gw->{port}, 'dynamo_cancelled_total') // 0) == 1
       }, 5), 'dynamo_cancelled_total 1');
    ok(wait_until(sub {
           (worker_metric($gw->{port}, 'dynamo_gateway_worker_in_flight'
                          . qq({worker="127.0.0.1:$w->{port}"})) // -1) == 0
       }, 5), 'nothing in flight at the gateway');
    stop_gateway($gw);
    stop_worker($w);
};

done_testing();
