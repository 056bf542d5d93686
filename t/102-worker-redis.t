# dynamo-worker with a real Redis (kvrouter/README.md, "Redis schema"):
# registration, liveness and load, the blocks set holding the seq hashes
# of the prompt's full blocks (computed by dynamo-kv hash), POST
# /v1/reset_prefix_cache (blocks set emptied, a CLEARED event last in the
# stream; 409 while a request holds cached blocks), re-registration
# after Redis restarts, unregistration on SIGTERM, and --num-workers with
# the mock engine.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET ();
use JSON::PP ();
use POSIX qw(WNOHANG SIGTERM SIGKILL);
use Time::HiRes qw(sleep time);
use HTTP::Tiny ();

use Test::Dynamo::Port ();
use Test::Dynamo::Redis qw(start_redis stop_redis redis_command);
use Test::Dynamo::Worker qw(worker_bin dynamo_build start_worker stop_worker
                            http_get generate read_file wait_until);

plan skip_all => 'dynamo-worker not built (' . worker_bin() . ')'
    if !-x worker_bin();

my $MODEL = 'models/stories260K';
my $NS = 'dyn:v1:stories260K:';
my @PROMPT = (1, 403, 407, 261, 378, map { 3 + $_ % 500 } 1 .. 35); # 40

my $rport = start_redis();

sub key { return $NS . join '', @_ }

sub resp {
    return join '', '*' . scalar(@_) . "\r\n",
                    map { '$' . length($_) . "\r\n$_\r\n" } @_;
}

sub members_u64 {
    my ($key) = @_;
    my $m = eval { redis_command('SMEMBERS', $key) } // [];
    return { map { unpack('Q<', $_) => 1 } @$m };
}

sub workers { return { map { $_ => 1 } @{ redis_command('SMEMBERS', key('workers')) } } }

# seq hashes of the full blocks, from the kvrouter tool
sub seq_hashes {
    my (@tokens) = @_;
    my $tool = dynamo_build() . '/bin/dynamo-kv';
    my $dir = tempdir(CLEANUP => 1);
    open my $fh, '>', "$dir/in" or die;
    print $fh join(' ', @tokens), "\n";
    close $fh;
    my @out = `$tool hash --block-size 16 < $dir/in`;
    die "dynamo-kv hash failed" if $?;
    return map { (split ' ')[1] } @out;
}

sub reset_cache {
    my ($port, $method) = @_;
    my $r = HTTP::Tiny->new(timeout => 10)->request($method // 'POST',
        "http://127.0.0.1:$port/v1/reset_prefix_cache");
    my $j = eval { JSON::PP::decode_json($r->{content}) };
    return ($r->{status}, $j);
}

# unsigned LEB128 at $$pos of $buf
sub uvarint {
    my ($buf, $pos) = @_;
    my ($v, $shift) = (0, 0);
    while (1) {
        my $b = ord substr($buf, $$pos++, 1);
        $v |= ($b & 0x7f) << $shift;
        last if !($b & 0x80);
        $shift += 7;
    }
    return $v;
}

# the last stream entry, decoded far enough: (type, worker_id, nblocks)
sub last_event {
    my $r = redis_command('XREVRANGE', key('events'), '+', '-', 'COUNT', 1);
    return () if !@$r;
    my %f = @{ $r->[0][1] };
    my $e = $f{e} // return ();
    return () if substr($e, 0, 2) ne "K\x01";
    my $pos = 4;
    my $wid = uvarint($e, \$pos);
    uvarint($e, \$pos) for 1 .. 2;          # generation, event_id
    return (ord(substr($e, 2, 1)), $wid, uvarint($e, \$pos));
}

my $w = start_worker('--model', $MODEL, '--redis', "127.0.0.1:$rport");
my $id = $w->{id};

subtest 'registration' => sub {
    ok(workers()->{$id}, 'in workers');
    my %h = @{ redis_command('HGETALL', key('w:', $id)) };
    is($h{role}, 'both', 'role');
    is($h{addr}, "127.0.0.1:$w->{port}", 'addr: the bound port');
    is($h{block_size}, 16, 'block size');
    my (undef, $health) = http_get($w->{port}, '/health');
    is($h{capacity}, JSON::PP::decode_json($health)->{blocks_total},
       'capacity: the pool');
    like($h{generation}, qr/^\d+$/, 'generation');
    my $alive = redis_command('GET', key('alive:', $id));
    like($alive, qr/^0 0 0 0 \d+$/, "alive, idle load ($alive)");
    my $ttl = redis_command('PTTL', key('alive:', $id));
    ok($ttl > 0 && $ttl <= 3000, "alive TTL ($ttl ms)");
    # the keepalive heartbeat keeps it alive past its TTL
    sleep 3.5;
    ok(redis_command('EXISTS', key('alive:', $id)), 'still alive after 3.5 s');
};

my @hashes = seq_hashes(@PROMPT);
is(scalar @hashes, 2, 'two full blocks in the prompt');

subtest 'KV events: the prompt blocks in the blocks set' => sub {
    my ($status, $frames) = generate($w->{port},
        { token_ids => \@PROMPT, max_tokens => 3 });
    is($status, 200, 'generated');
    ok(wait_until(sub {
        my $set = members_u64(key('blocks:', $id));
        !grep { !$set->{$_} } @hashes
    }, 5), 'seq hashes of both full blocks stored');
    my %h = @{ redis_command('HGETALL', key('w:', $id)) };
    ok($h{last_event_id} >= 1, "event cursor ($h{last_event_id})");
    ok(redis_command('XLEN', key('events')) >= 2, 'stream entries');
};

subtest 'POST /v1/reset_prefix_cache: blocks set emptied, CLEARED' => sub {
    ok(scalar keys %{ members_u64(key('blocks:', $id)) } >= 2,
       'blocks stored before');
    my ($st, $j) = reset_cache($w->{port}, 'GET');
    is($st, 405, 'GET: 405');
    ($st, $j) = reset_cache($w->{port});
    is($st, 200, 'reset: 200');
    ok($j && $j->{reset}, 'reset: true');
    ok(($j->{blocks_dropped} // 0) >= 2,
       'blocks_dropped (' . ($j->{blocks_dropped} // 'none') . ')');
    ok(wait_until(sub {
        !%{ members_u64(key('blocks:', $id)) }
    }, 5), 'blocks set empty');
    my ($type, $wid, $nb) = last_event();
    is($type, 3, 'last stream event: CLEARED');
    is($wid, $id, '... of this worker');
    is($nb, 0, '... with no blocks');
    my (undef, $health) = http_get($w->{port}, '/health');
    is(JSON::PP::decode_json($health)->{blocks_cached}, 0,
       'health: no cached blocks');

    my ($status, $frames) = generate($w->{port},
        { token_ids => \@PROMPT, max_tokens => 3 });
    is($frames->[-1]{cached_tokens}, 0, 'the same prompt: no cache hit');
    ok(wait_until(sub {
        my $set = members_u64(key('blocks:', $id));
        !grep { !$set->{$_} } @hashes
    }, 5), 'its blocks stored again');
    ($type) = last_event();
    is($type, 1, 'last stream event: STORED');
};

subtest 'load in alive:<id> while a request runs' => sub {
    # the mock engine at its modelled speed: tens of ms per step, so the
    # request is still running when we look
    my $lw = start_worker('--model', $MODEL, '--engine', 'mock',
                          '--redis', "127.0.0.1:$rport");
    my $lid = $lw->{id};
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $lw->{port}) or die;
    my $json = JSON::PP::encode_json({ token_ids => \@PROMPT,
                                       max_tokens => 400,
                                       ignore_eos => JSON::PP::true });
    print $sock "POST /v1/generate HTTP/1.1\r\nHost: w\r\nContent-Length: "
                . length($json) . "\r\n\r\n$json";
    my $seen;
    ok(wait_until(sub {
        $seen = redis_command('GET', key('alive:', $lid)) // '';
        $seen =~ /^1 0 [1-9]\d* /
    }, 3), "running 1 with blocks ($seen)");
    my ($st, $j) = reset_cache($lw->{port});
    is($st, 409, 'reset while it holds cached blocks: 409');
    is($j && $j->{error}{type}, 'conflict', '... an error of type conflict');
    ok(wait_until(sub {
        scalar keys %{ members_u64(key('blocks:', $lid)) } >= 2
    }, 3), 'its blocks stay in Redis');
    close $sock;
    ok(wait_until(sub {
        $seen = redis_command('GET', key('alive:', $lid)) // '';
        $seen =~ /^0 0 0 /
    }, 3), "idle again after the client left ($seen)");
    ($st, $j) = reset_cache($lw->{port});
    is($st, 200, 'reset when idle: 200');
    ok(wait_until(sub {
        !%{ members_u64(key('blocks:', $lid)) }
    }, 5), 'blocks set empty');
    is(stop_worker($lw), 0, 'exit 0');
};

subtest 'Redis restart: re-register and republish' => sub {
    my $dir = tempdir(CLEANUP => 1);
    stop_redis();
    sleep 0.5;
    my (undef, $m) = http_get($w->{port}, '/metrics');
    like($m, qr/^dynamo_worker_redis_connected 0$/m, 'metrics: disconnected');
    my ($status) = generate($w->{port}, { token_ids => [1, 2, 3],
                                          max_tokens => 2 });
    is($status, 200, 'still serving without Redis');

    my $pid = fork;
    if ($pid == 0) {
        open STDOUT, '>', "$dir/out";
        open STDERR, '>&', \*STDOUT;
        { exec 'redis-server', '--port', $rport, '--bind', '127.0.0.1',
             '--save', '', '--appendonly', 'no', '--dir', $dir; }
        POSIX::_exit(127);
    }
    $ENV{TEST_NGINX_REDIS_PORT} = $rport;   # redis_command's port
    ok(wait_until(sub { eval { workers()->{$id} } }, 10), 're-registered');
    my $set = members_u64(key('blocks:', $id));
    ok(!grep({ !$set->{$_} } @hashes), 'blocks republished');
    ok(redis_command('EXISTS', key('alive:', $id)), 'alive again');
    ok(wait_until(sub {
        (http_get($w->{port}, '/metrics'))[1]
            =~ /^dynamo_worker_redis_connected 1$/m
    }, 3), 'metrics: connected');

    subtest 'stalled Redis (SIGSTOP): detected, recovered' => sub {
        my @p2 = (7, 8, 9, map { 10 + $_ } 1 .. 30);   # 33 tokens
        my @h2 = seq_hashes(@p2);
        kill 'STOP', $pid;
        my ($status) = generate($w->{port}, { token_ids => \@p2,
                                              max_tokens => 2 });
        is($status, 200, 'serving while Redis hangs');
        ok(wait_until(sub {
            (http_get($w->{port}, '/metrics'))[1]
                =~ /^dynamo_worker_redis_connected 0$/m
        }, 10), 'the stall is noticed (no reply within 5 s)');
        kill 'CONT', $pid;
        ok(wait_until(sub {
            my $set = members_u64(key('blocks:', $id));
            !grep { !$set->{$_} } @h2
        }, 10), 'blocks stored meanwhile reach Redis after it resumes');
    };

    subtest 'persistent error replies (OOM): bounded retries, then recovery' => sub {
        my $regs = sub {
            ((http_get($w->{port}, '/metrics'))[1]
                =~ /^dynamo_worker_redis_registers_total (\d+)$/m)[0]
        };
        my $r0 = $regs->();
        my @p3 = (9, 8, 7, map { 100 + $_ } 1 .. 30);   # 33 tokens
        my @h3 = seq_hashes(@p3);
        redis_command('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
        redis_command('CONFIG', 'SET', 'maxmemory', '1');
        my ($status) = generate($w->{port}, { token_ids => \@p3,
                                              max_tokens => 2 });
        is($status, 200, 'serving while Redis refuses writes');
        sleep 2;
        my $n = $regs->() - $r0;
        ok($n >= 1 && $n <= 10, "re-registers are bounded ($n in 2 s)");
        redis_command('CONFIG', 'SET', 'maxmemory', '0');
        ok(wait_until(sub {
            my $set = members_u64(key('blocks:', $id));
            !grep { !$set->{$_} } @h3
        }, 10), 'blocks reach Redis once it accepts writes again');
    };

    subtest 'SIGTERM unregisters' => sub {
        is(stop_worker($w), 0, 'exit 0');
        ok(!workers()->{$id}, 'gone from workers');
        ok(!redis_command('EXISTS', key('w:', $id)), 'w: deleted');
        ok(!redis_command('EXISTS', key('alive:', $id)), 'alive: deleted');
    };

    subtest '--engine mock --num-workers 4' => sub {
        my $m = start_worker({ workers => 4 }, '--model', $MODEL,
                             '--engine', 'mock', '--num-workers', '4',
                             '--redis', "127.0.0.1:$rport");
        my %ports = map { $_ => 1 } @{ $m->{ports} };
        my %ids = map { $_ => 1 } @{ $m->{ids} };
        is(scalar keys %ports, 4, 'four distinct ports');
        is(scalar keys %ids, 4, 'four distinct ids');
        my $reg = workers();
        for my $i (0 .. 3) {
            my ($wid, $p) = ($m->{ids}[$i], $m->{ports}[$i]);
            ok($reg->{$wid}, "worker $i registered");
            is(redis_command('HGET', key('w:', $wid), 'addr'),
               "127.0.0.1:$p", "worker $i addr");
            my ($s, $body) = http_get($p, '/health');
            is(JSON::PP::decode_json($body)->{worker_id}, $wid,
               "worker $i answers on its port");
        }
        my ($s, $frames) = generate($m->{ports}[2],
            { token_ids => \@PROMPT, max_tokens => 3 });
        is($frames->[-1]{finish}, 'length', 'mock generates');
        ok(wait_until(sub {
            my $set = members_u64(key('blocks:', $m->{ids}[2]));
            !grep { !$set->{$_} } @hashes
        }, 5), 'mock worker 2 published the prompt blocks');
        is(scalar keys %{ members_u64(key('blocks:', $m->{ids}[1])) }, 0,
           'worker 1 has none');
        is(stop_worker($m), 0, 'exit 0');
        ok(!grep({ workers()->{$_} } @{ $m->{ids} }), 'all unregistered');
    };

    kill SIGTERM, $pid;
    waitpid($pid, 0);
};

subtest 'AUTH and SELECT' => sub {
    my $dir = tempdir(CLEANUP => 1);
    my $port = Test::Dynamo::Port::free_port();
    my $pid = fork;
    if ($pid == 0) {
        open STDOUT, '>', "$dir/out";
        open STDERR, '>&', \*STDOUT;
        { exec 'redis-server', '--port', $port, '--bind', '127.0.0.1',
               '--save', '', '--appendonly', 'no', '--dir', $dir,
               '--requirepass', 's3cret'; }
        POSIX::_exit(127);
    }
    local $ENV{TEST_NGINX_REDIS_PORT} = $port;
    ok(wait_until(sub { eval { redis_command('PING') } || $@ =~ /NOAUTH/ },
                  10), 'password Redis up');

    my ($code, $out, $err) = Test::Dynamo::Worker::run_worker(20,
        '--model', $MODEL, '--port', '0', '--redis', "127.0.0.1:$port");
    is($code, 1, 'no password: exit 1');
    like($err, qr/NOAUTH/, 'no password: says so');
    ($code, $out, $err) = Test::Dynamo::Worker::run_worker(20,
        '--model', $MODEL, '--port', '0', '--redis', "127.0.0.1:$port",
        '--redis-password', 'wrong');
    is($code, 1, 'wrong password: exit 1');
    like($err, qr/AUTH failed/, 'wrong password: says so');

    my $w2 = start_worker('--model', $MODEL, '--redis', "127.0.0.1:$port",
                          '--redis-password', 's3cret', '--redis-db', '3',
                          '--namespace', 'authns');
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Timeout => 5)
        or die;
    print $sock map { resp(@$_) } [ 'AUTH', 's3cret' ], [ 'SELECT', '3' ],
                [ 'SMEMBERS', 'dyn:v1:authns:workers' ];
    my @lines = map { scalar <$sock> } 1 .. 5;
    close $sock;
    is($lines[2], "*1\r\n", 'one worker registered in db 3');
    is($lines[4], "$w2->{id}\r\n", 'the worker id');
    is(stop_worker($w2), 0, 'exit 0');
    kill SIGTERM, $pid;
    waitpid($pid, 0);
};

done_testing();
