# vim:set ft=perl ts=4 sw=4 et:
# dynamo_prefill_upstream: the gateway picks a prefill worker per request
# and passes it to the decode worker as hints.prefill_worker. Real
# redis-server, real mock-engine dynamo-workers (--role prefill x2, --role
# decode x1), nginx:
#   - $dynamo_prefill_worker names a registered prefill worker;
#   - a prompt whose prefix a prefill worker already holds (sent to its own
#     /v1/generate first, so it publishes the blocks) is assigned to it,
#     alternately to each of the two, so a choice blind to overlap fails;
#   - concurrent requests spread: each one's uncached tokens count at its
#     prefill worker until the first token (read from /metrics while in
#     flight, and back to 0 after);
#   - a prefill worker busy with requests of its own is not chosen for a
#     fresh prompt;
#   - the hint in the decode worker's request body, and a retry on another
#     decode worker keeps it (two fake decode workers, one answering 503);
#   - without the directive nothing changes; with no prefill worker live
#     no hint and the request still succeeds;
#   - configuration errors fail `nginx -t` with file and line.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use File::Temp ();
use POSIX ();
use Time::HiRes qw(sleep time);
use Test::Dynamo::Gateway qw(:all);
use Test::Dynamo::Worker qw(generate);

my $model = 'stories260K';
my $redis = start_own_redis();
my $rp = $redis->{port};

# slow enough to hold requests running for a while (30 ms a token)
my @p = map { start_worker(mock_worker_args(redis => "127.0.0.1:$rp",
                                            speedup => 0.2,
                                            extra => [ '--role', 'prefill' ]))
            } 1 .. 2;
my @paddr = map { "127.0.0.1:$_->{port}" } @p;

# slow enough that a request's first token comes long after the next few
# requests were routed
my $d = start_worker(mock_worker_args(redis => "127.0.0.1:$rp",
                                      speedup => 0.02,
                                      extra => [ '--role', 'decode' ]));
my $daddr = "127.0.0.1:$d->{port}";

my $prefill_upstream = <<'_EOU_';
    upstream prefills {
        dynamo_upstream kv role=prefill;
        server 127.0.0.1:1 down;
    }
_EOU_

my %disagg = (redis => $rp, workers => 1, policy => 'kv role=decode',
              servers => [ $daddr ], http => $prefill_upstream,
              location => "            dynamo_prefill_upstream prefills;\n");

my $gw = start_gateway(%disagg);

# deterministic pseudo-random token ids in [3, 500)
my $seed = 4242;
sub ids {
    my ($n) = @_;
    return [ map { $seed = ($seed * 1103515245 + 12345) % 2**31;
                   3 + $seed % 497 } 1 .. $n ];
}

sub metrics_text { gw_get($_[0] // $gw, '/metrics')->{body} // '' }

sub gw_metric {
    my ($name, $g) = @_;
    my ($v) = metrics_text($g) =~ /^\Q$name\E (\d+)$/m;
    return $v;
}

sub index_blocks {
    my ($n) = metrics_text()
              =~ /^dynamo_router_index_blocks\{model="$model"\} (\d+)$/m;
    return $n // 0;
}

sub entries {
    my ($g) = @_;
    return [ grep { $_->{uri} eq '/v1/completions' }
             @{ access_log_entries($g // $gw) } ];
}

# the access log line of the last request (written after its last byte)
sub last_prefill {
    my ($n) = @_;
    my $e;
    wait_until(sub { my $all = entries(); $e = $all->[-1] if @$all >= $n;
                     @$all >= $n }, 5);
    return $e ? $e->{prefill} : undef;
}

ok(wait_until(sub {
    metrics_text() =~ /^dynamo_router_workers\{model="$model"\} 3$/m;
}, 10), 'two prefill workers and the decode worker registered');

my $logged = 0;

subtest 'a registered prefill worker is named' => sub {
    my $r = gw_post($gw, '/v1/completions',
                    { model => $model, prompt => 'Once upon a time',
                      max_tokens => 2 });
    is($r->{status}, 200, 'served') or diag $r->{raw};
    my $pw = last_prefill(++$logged);
    ok(defined $pw && grep({ $_ eq $pw } @paddr),
       "\$dynamo_prefill_worker is a prefill worker (" . ($pw // '') . ")");
    is(gw_metric('dynamo_prefill_hinted_total'), 1, 'counted as hinted');
    is(gw_metric('dynamo_prefill_unhinted_total'), 0, 'none unhinted');
    is(worker_metric($d->{port}, 'requests_total'), 1,
       'the decode worker served it');
    is(scalar(grep { (worker_metric($_->{port}, 'requests_total') // 0) }
              @p), 0, 'the prefill workers were not sent the request');
    like(metrics_text(),
         qr/^dynamo_gateway_prefill_selections_total\{worker="\Q$pw\E"\} 1$/m,
         'the selection counted for that worker');
};

subtest 'a prefix held by a prefill worker is prefilled there' => sub {
    for my $k (0, 1, 1, 0) {
        my $prefix = ids(320);                        # 20 blocks
        my $blocks = index_blocks();
        my ($st) = generate($p[$k]{port},
                            { token_ids => $prefix, max_tokens => 1 });
        is($st, 200, "prefill worker $k served the prefix directly");
        ok(wait_until(sub { index_blocks() >= $blocks + 20 }, 5),
           'the gateway\'s index has its blocks');
        # and its load, published every 100 ms, no longer shows the
        # prompt queued (which would weigh as much as the overlap saves)
        sleep 0.5;
        my $r = gw_post($gw, '/v1/completions',
                        { model => $model,
                          prompt => [ @$prefix, @{ ids(40) } ],
                          max_tokens => 1 });
        is($r->{status}, 200, 'the follow-up is served');
        is(last_prefill(++$logged), $paddr[$k],
           "the follow-up names prefill worker $k");
    }
};

sub prefill_gauge {
    my ($name, $addr) = @_;
    my ($v) = metrics_text()
              =~ /^\Q$name\E\{worker="\Q$addr\E"\} (\d+)$/m;
    return $v // 0;
}

subtest 'concurrent requests spread by the prefill in flight' => sub {
    my @sel = map { prefill_gauge('dynamo_gateway_prefill_selections_total',
                                  $_) } @paddr;
    my @s = map { sse_open($gw, '/v1/completions',
                           { model => $model, prompt => ids(64),
                             max_tokens => 1, stream => JSON::PP::true })
                } 1 .. 8;
    is(scalar(grep { $_->{status} == 200 } @s), 8, 'eight streams open');
    my @tok = map { prefill_gauge('dynamo_gateway_worker_prefill_tokens', $_) }
              @paddr;
    is("@tok", '256 256',
       'each prefill worker has four requests\' 64 tokens in flight');
    my @in = map { prefill_gauge('dynamo_gateway_worker_in_flight', $_) }
             @paddr;
    is("@in", '4 4', 'and four requests');
    for my $s (@s) {
        while (defined(my $e = sse_next($s, 30))) {
            last if !ref $e;
        }
        sse_close($s);
    }
    my @after = map {
        prefill_gauge('dynamo_gateway_prefill_selections_total', $paddr[$_])
        - $sel[$_] } 0 .. 1;
    is("@after", '4 4', 'four selections each');
    ok(wait_until(sub {
        join(' ', map { prefill_gauge('dynamo_gateway_worker_prefill_tokens',
                                      $_),
                        prefill_gauge('dynamo_gateway_worker_in_flight', $_) }
                  @paddr) eq '0 0 0 0' }, 5),
       'all released once the first tokens came');
    $logged += 8;
};

# a request left running at a worker: a raw socket, never read
sub hold_generate {
    my ($port, $body) = @_;
    my $json = json_encode($body);
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 5) or die $!;
    print $s "POST /v1/generate HTTP/1.1\r\nHost: w\r\n"
             . "Content-Type: application/json\r\n"
             . "Content-Length: " . length($json) . "\r\n\r\n$json";
    return $s;
}

subtest 'a busy prefill worker is not chosen for a fresh prompt' => sub {
    for my $busy (1, 0) {
        my @h = map { hold_generate($p[$busy]{port},
                                    { token_ids => ids(32),
                                      max_tokens => 460,
                                      ignore_eos => JSON::PP::true }) }
                1 .. 3;
        # its published load (running 3) reaches the gateway's index
        sleep 1.5;
        for my $i (1 .. 3) {
            my $r = gw_post($gw, '/v1/completions',
                            { model => $model, prompt => ids(48),
                              max_tokens => 1 });
            is($r->{status}, 200, "fresh request $i served");
            is(last_prefill(++$logged), $paddr[1 - $busy],
               "fresh request $i goes to the idle prefill worker");
        }
        close $_ for @h;
        ok(wait_worker_idle($p[$busy]{port}, 10),
           'the held requests are cancelled');
    }
};

# ---- fake decode workers: record the request bodies --------------------

# answers every request with 503 ($fail) or one token and a finish frame;
# appends each request body as one line to $file
sub fake_worker {
    my ($fail, $file) = @_;
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 16, ReuseAddr => 1, Proto => 'tcp')
        or die "listen: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        while (my $c = $l->accept) {
            my $buf = '';
            while ($buf !~ /\r\n\r\n/) {
                sysread($c, $buf, 65536, length $buf) or last;
            }
            my ($len) = $buf =~ /^Content-Length:\s*(\d+)/mi;
            my $body = ($buf =~ /\r\n\r\n(.*)\z/s)[0] // '';
            while (defined $len && length $body < $len) {
                sysread($c, $body, 65536, length $body) or last;
            }
            open my $f, '>>', $file or POSIX::_exit(1);
            print $f "$body\n";
            close $f;
            if ($fail) {
                my $e = '{"error":{"type":"overloaded","message":"busy"}}';
                print $c "HTTP/1.1 503 Service Unavailable\r\n"
                         . "Content-Type: application/json\r\n"
                         . "Content-Length: " . length($e) . "\r\n"
                         . "Connection: close\r\n\r\n$e";
            } else {
                my $out = "{\"t\":[5]}\n{\"finish\":\"length\","
                          . "\"prompt_tokens\":3,\"completion_tokens\":1,"
                          . "\"cached_tokens\":0,\"preemptions\":0}\n";
                printf $c "HTTP/1.1 200 OK\r\n"
                          . "Content-Type: application/x-ndjson\r\n"
                          . "Transfer-Encoding: chunked\r\n"
                          . "Connection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n",
                          length($out), $out;
            }
            close $c;
        }
        POSIX::_exit(0);
    }
    my $port = $l->sockport;
    close $l;
    return { pid => $pid, port => $port, file => $file };
}

sub bodies {
    my ($fw) = @_;
    return [ map { json_decode($_) } grep { length }
             split /\n/, read_file($fw->{file}) ];
}

subtest 'the hint in the decode worker\'s request; a retry keeps it' => sub {
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    my $bad = fake_worker(1, "$dir/bad");
    my $good = fake_worker(0, "$dir/good");
    my $g = start_gateway(%disagg, policy => 'kv',
                          servers => [ "127.0.0.1:$bad->{port}",
                                       "127.0.0.1:$good->{port}" ]);
    ok(wait_until(sub { metrics_text($g)
                        =~ /^dynamo_router_workers\{model="$model"\} 3$/m },
                  10), 'its index has the prefill workers');
    # the order of two idle decode workers is a coin toss: until the one
    # answering 503 was tried first (then it is out for 10 s)
    my $tries = 0;
    while (!@{ bodies($bad) } && $tries++ < 20) {
        my $r = gw_post($g, '/v1/completions',
                        { model => $model, prompt => 'Once upon a time',
                          max_tokens => 1 });
        is($r->{status}, 200, 'served') or last;
    }
    my $b = bodies($bad);
    my $ok = bodies($good);
    if (!ok(@$b, "the 503 worker was tried ($tries requests)")) {
        stop_gateway($g);
        return;
    }
    my ($again) = grep { $_->{request_id} eq $b->[0]{request_id} } @$ok;
    ok($again, 'the same request was retried on the other decode worker');
    my $pw = $b->[0]{hints}{prefill_worker};
    ok(defined $pw && grep({ $_ eq $pw } @paddr),
       'the first attempt carried hints.prefill_worker ('
       . ($pw // '') . ')');
    is($again && $again->{hints}{prefill_worker}, $pw,
       'the retry carried the same prefill worker');
    is_deeply([ sort keys %{ $ok->[-1]{hints} } ], [ 'prefill_worker' ],
              'hints holds just prefill_worker');
    my %is_p = map { $_ => 1 } @paddr;
    my @e;
    wait_until(sub { @e = @{ entries($g) }; @e >= $tries }, 5);
    ok(@e && !grep({ !$is_p{ $_->{prefill} // '' } } @e),
       '$dynamo_prefill_worker logged for each') or diag explain \@e;
    stop_gateway($g);
    for ($bad, $good) { kill 'KILL', $_->{pid}; waitpid($_->{pid}, 0) }
};

subtest 'without dynamo_prefill_upstream: no hint' => sub {
    my $g = start_gateway(redis => $rp, policy => 'kv role=decode',
                          servers => [ $daddr ]);
    my $r = gw_post($g, '/v1/completions',
                    { model => $model, prompt => 'Once upon a time',
                      max_tokens => 1 });
    is($r->{status}, 200, 'served');
    wait_until(sub { @{ entries($g) } >= 1 }, 5);
    is(entries($g)->[0]{prefill}, '', '$dynamo_prefill_worker empty');
    is(gw_metric('dynamo_prefill_hinted_total', $g)
       + gw_metric('dynamo_prefill_unhinted_total', $g), 0,
       'not counted either way') ;
    stop_gateway($g);
};

subtest 'configuration errors refuse to load (as nginx -t)' => sub {
    my $plain = "    upstream plain {\n        server 127.0.0.1:1;\n    }\n";
    my $dec = "    upstream dec {\n        dynamo_upstream kv role=decode;\n"
              . "        server 127.0.0.1:1;\n    }\n";
    my @cases = (
        [ 'unknown upstream', { location =>
              "            dynamo_prefill_upstream nosuch;\n" },
          qr/"dynamo_prefill_upstream": unknown upstream "nosuch" in \S+:\d+/ ],
        [ 'not a dynamo upstream', { http => $plain, location =>
              "            dynamo_prefill_upstream plain;\n" },
          qr/upstream "plain" is not a dynamo upstream .* in \S+:\d+/ ],
        [ 'wrong role', { http => $dec, location =>
              "            dynamo_prefill_upstream dec;\n" },
          qr/upstream "dec" has role=decode, not role=prefill in \S+:\d+/ ],
        [ 'decode pool of role prefill', { %disagg,
              policy => 'kv role=prefill' },
          qr/"dynamo_pass" upstream "workers" has role=prefill/ ],
        [ 'no dynamo_pass', { http => $prefill_upstream, server =>
              "        location /x {\n"
              . "            dynamo_prefill_upstream prefills;\n"
              . "        }\n" },
          qr/needs "dynamo_pass" in the same location in \S+:\d+/ ],
        [ 'duplicate', { %disagg, location =>
              "            dynamo_prefill_upstream prefills;\n" x 2 },
          qr/"dynamo_prefill_upstream" directive is duplicate/ ],
    );
    for my $c (@cases) {
        my ($name, $o, $re) = @$c;
        my $g = start_gateway(servers => [ '127.0.0.1:1' ], %$o,
                              may_fail => 1);
        like($g->{start_error} // '', $re, "$name: refused");
        stop_gateway($g) if !$g->{start_error};
    }
};

subtest 'no prefill worker live: no hint, still served' => sub {
    my $before = gw_metric('dynamo_prefill_unhinted_total') // 0;
    stop_worker($_, 'KILL') for @p;
    ok(wait_until(sub {
        metrics_text() =~ /^dynamo_router_workers\{model="$model"\} 1$/m;
    }, 15), 'their liveness lapsed');
    my $r = gw_post($gw, '/v1/completions',
                    { model => $model, prompt => 'Once upon a time',
                      max_tokens => 1 });
    is($r->{status}, 200, 'served by the decode worker alone');
    is(last_prefill(++$logged), '', '$dynamo_prefill_worker empty');
    is(gw_metric('dynamo_prefill_unhinted_total'), $before + 1,
       'counted as unhinted');
};

unlike(error_log_text($gw), qr/\[(alert|crit|emerg)\]/, 'no alert/crit');
stop_gateway($gw);
stop_worker($d);
stop_own_redis($redis);

done_testing();
