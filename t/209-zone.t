# vim:set ft=perl ts=4 sw=4 et:
# The shared zone's bookkeeping, with real processes (mock-engine
# dynamo-workers, a real redis-server):
#   - the per-worker load table: a /metrics scrape claims no slot for the
#     addresses it lists (an upstream with more server lines than the
#     table has slots), and a worker that registers afterwards has its
#     in-flight requests counted like the others (least_load spreads
#     concurrent streams instead of piling them on the newcomer);
#   - dynamo_zone workers=: more workers than the index has slots are
#     reported once (not once per resync round) and resyncs back off;
#     raising workers= takes them all; bad values fail `nginx -t`;
#   - dynamo_redis_connected reads 0 while Redis refuses every command
#     (NOAUTH), 1 once a sync command succeeded;
#   - removing dynamo_redis on reload clears the index of its workers;
#   - a reload that changes the models and then fails (a listen on a busy
#     port) leaves the running index and its Redis sync intact;
#   - reloads that change the models again and again (3 models, 2, 1, 1
#     with another block size, 2, 3) are all accepted: each lays out its
#     indexes in the region the running ones do not use, so the zone does
#     not fragment;
#   - nginx processes started by a reload while the old ones still hold
#     the load rows get one as soon as the old ones are gone: killing
#     them all mid-request leaves no load in flight behind.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use IO::Socket::INET;
use POSIX qw(SIGKILL);
use Test::Dynamo::Gateway qw(:all);

my $model = 'stories260K';

sub served { [ map { worker_metric($_->{port}, 'requests_total') // 0 } @_ ] }

subtest 'a /metrics scrape claims no load slot; late workers are counted'
=> sub {
    my $redis = start_own_redis();
    my $rp = $redis->{port};
    my @w = map { start_worker(mock_worker_args(redis => "127.0.0.1:$rp",
                                                speedup => 1)) } 1 .. 2;
    my $many = join '', map { "        server 127.0.0.2:$_;\n" }
               20000 .. 21029;
    my $gw = start_gateway(redis => $rp, workers => 2,
                           servers => [ "127.0.0.1:$w[0]{port}" ],
                           policy => 'least_load',
                           http => "    upstream many {\n"
                                   . "        dynamo_upstream least_load;\n"
                                   . "$many    }\n",
                           server => "        location /many/ {\n"
                                     . "            dynamo_pass many;\n"
                                     . "        }\n");
    my $metrics = gw_get($gw, '/metrics')->{body} // '';
    like($metrics, qr/^dynamo_gateway_worker_in_flight
                      \{worker="127\.0\.0\.2:20000"\}\s0$/mx,
         'a scrape lists the servers of every upstream');

    push @w, start_worker(mock_worker_args(redis => "127.0.0.1:$rp",
                                           speedup => 1));
    ok(wait_until(sub {
        my $m = gw_get($gw, '/metrics')->{body} // '';
        $m =~ /^dynamo_router_workers\{model="$model"\} 3$/m;
    }, 10), 'the third worker registered');

    my $before = served(@w);
    my @s = map { sse_open($gw, '/v1/completions',
                           { model => $model, prompt => "story $_",
                             max_tokens => 100,
                             ignore_eos => JSON::PP::true,
                             stream => JSON::PP::true }) } 1 .. 24;
    my $ok = 0;
    for my $s (@s) {
        my $done;
        while (defined(my $e = sse_next($s, 20))) {
            if (!ref $e) { $done = 1; last }
        }
        $ok++ if $done && $s->{status} == 200;
        sse_close($s);
    }
    is($ok, 24, 'all 24 streams completed');
    my $after = served(@w);
    my @d = map { $after->[$_] - $before->[$_] } 0 .. 2;
    diag("streams per worker: @d");
    ok(!grep({ $_ > 12 } @d), 'no worker took more than half');
    ok(!grep({ $_ < 4 } @d), 'every worker took at least 4');
    stop_gateway($gw);
    stop_worker($_) for @w;
    stop_own_redis($redis);
};

sub metric {
    my ($gw, $name) = @_;
    my $m = gw_get($gw, '/metrics')->{body} // '';
    my ($v) = $m =~ /^\Q$name\E\{model="$model"\} (\d+)$/m;
    return $v;
}

sub count_log {
    my ($gw, $re) = @_;
    my $n = () = error_log_text($gw) =~ /$re/g;
    return $n;
}

subtest 'dynamo_zone workers=: a full index warns once and backs off' => sub {
    my $redis = start_own_redis();
    my $rp = $redis->{port};
    my $w = start_worker({ workers => 6 },
                         mock_worker_args(redis => "127.0.0.1:$rp",
                                          extra => [ '--num-workers', 6 ]));
    my $gw = start_gateway(redis => $rp, zone => 0,
                           servers => [ "127.0.0.1:$w->{port}" ],
                           http => "    dynamo_zone dynamo 16m workers=4;\n");
    ok(wait_until(sub { (metric($gw, 'dynamo_redis_errors_total') // 0) > 0 },
                  10), 'the index refuses the fifth worker');
    my $e0 = metric($gw, 'dynamo_redis_errors_total');
    sleep 4;
    my $e1 = metric($gw, 'dynamo_redis_errors_total');
    ok($e1 - $e0 <= 4, "resyncs back off (errors $e0 -> $e1 in 4 s)");
    my $warned = count_log($gw, qr/table full, resyncing/);
    is($warned, 1, 'the refusal is logged once')
        or diag(join "\n", grep { /resync/ } split /\n/, error_log_text($gw));

    reload_gateway($gw, http => "    dynamo_zone dynamo 16m workers=8;\n");
    ok(wait_until(sub { (metric($gw, 'dynamo_router_workers') // 0) == 6 },
                  10), 'workers=8 after a reload: all 6 workers indexed');
    is(gw_post($gw, '/v1/completions',
               { model => $model, prompt => 'hi', max_tokens => 2 })
       ->{status}, 200, 'and requests are served');
    stop_gateway($gw);
    stop_worker($w);
    stop_own_redis($redis);
};

subtest 'dynamo_zone workers= out of range fails nginx -t' => sub {
    for my $bad ('workers=0', 'workers=100000', 'slots=8') {
        my $gw = start_gateway(zone => 0, may_fail => 1,
                               servers => [ '127.0.0.1:1' ],
                               http => "    dynamo_zone dynamo 16m $bad;\n");
        like($gw->{start_error} // '', qr/\Q$bad\E.*"dynamo_zone"/,
             "$bad: rejected, naming dynamo_zone");
        stop_gateway($gw) if !$gw->{start_error};
    }
};

subtest 'dynamo_redis_connected stays 0 while Redis refuses (NOAUTH)' => sub {
    my $redis = start_own_redis();
    my $rp = $redis->{port};
    my $w = start_worker(mock_worker_args(redis => "127.0.0.1:$rp"));
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $rp)
        or die "redis: $!";
    print $s "CONFIG SET requirepass sesame\r\n";
    like(scalar(<$s>) // '', qr/^\+OK/, 'Redis now needs a password');
    close $s;
    my $gw = start_gateway(redis => $rp,
                           servers => [ "127.0.0.1:$w->{port}" ]);
    ok(wait_until(sub { (metric($gw, 'dynamo_redis_errors_total') // 0) > 1 },
                  10), 'Redis refuses the sync commands');
    is(metric($gw, 'dynamo_redis_connected'), 0, 'connected reads 0');
    stop_gateway($gw);
    stop_worker($w);
    stop_own_redis($redis);
};

subtest 'removing dynamo_redis on reload clears the index' => sub {
    my $redis = start_own_redis();
    my $rp = $redis->{port};
    my $w = start_worker(mock_worker_args(redis => "127.0.0.1:$rp"));
    my $gw = start_gateway(redis => $rp,
                           servers => [ "127.0.0.1:$w->{port}" ]);
    ok(wait_until(sub { (metric($gw, 'dynamo_router_workers') // 0) == 1 },
                  10), 'the worker is indexed');
    reload_gateway($gw, redis => 0);
    ok(wait_until(sub { (metric($gw, 'dynamo_router_workers') // 0) == 0 },
                  5), 'no worker left in the index without dynamo_redis');
    is(gw_post($gw, '/v1/completions',
               { model => $model, prompt => 'hi', max_tokens => 2 })
       ->{status}, 200, 'requests still served (server lines)');
    stop_gateway($gw);
    stop_worker($w);
    stop_own_redis($redis);
};

subtest 'a failed reload that changed the models keeps the index' => sub {
    my $redis = start_own_redis();
    my $rp = $redis->{port};
    my $dir = Test::Dynamo::Gateway::model_dir();
    my @w = (start_worker(mock_worker_args(redis => "127.0.0.1:$rp")));
    my $gw = start_gateway(redis => $rp, workers => 2,
                           servers => [ "127.0.0.1:$w[0]{port}" ]);
    ok(wait_until(sub { (metric($gw, 'dynamo_router_workers') // 0) == 1 },
                  10), 'the worker is indexed');
    my $opt = { %{ $gw->{opt} } };
    reload_gateway($gw,
        models => "    dynamo_model name=$model path=$dir block_size=32;\n",
        server => "        listen 127.0.0.1:$rp;\n");
    ok(wait_until(sub { error_log_text($gw) =~ /bind\(\) to 127\.0\.0\.1:$rp/ },
                  5), 'the reload failed (bind)');
    $gw->{opt} = $opt;
    Test::Dynamo::Gateway::_write_conf($gw);
    sleep 1;
    is(metric($gw, 'dynamo_router_workers'), 1, 'the index is still there');
    push @w, start_worker(mock_worker_args(redis => "127.0.0.1:$rp"));
    ok(wait_until(sub { (metric($gw, 'dynamo_router_workers') // 0) == 2 },
                  10), 'and still synced from Redis (a new worker appears)');
    is(metric($gw, 'dynamo_redis_connected'), 1, 'connected');
    reload_gateway($gw,
        models => "    dynamo_model name=$model path=$dir block_size=32;\n");
    ok(wait_until(sub { (metric($gw, 'dynamo_router_workers') // 0) == 2 },
                  10), 'a successful reload with new models resyncs');
    reload_gateway($gw,
        models => "    dynamo_model name=$model path=$dir;\n");
    ok(wait_until(sub { (metric($gw, 'dynamo_router_workers') // 0) == 2 },
                  10), 'and so does one back to the first models');
    is(gw_post($gw, '/v1/completions',
               { model => $model, prompt => 'hi', max_tokens => 2 })
       ->{status}, 200, 'requests served');
    unlike(error_log_text($gw), qr/\[(alert|crit)\]/, 'no alert/crit');
    stop_gateway($gw);
    stop_worker($_) for @w;
    stop_own_redis($redis);
};

subtest 'reloads that change the models are all accepted' => sub {
    my $redis = start_own_redis();
    my $rp = $redis->{port};
    my $dir = Test::Dynamo::Gateway::model_dir();
    my $w = start_worker(mock_worker_args(redis => "127.0.0.1:$rp"));
    my $models = sub {
        my ($n, $bs) = @_;
        my @names = ($model, map { "m$_" } 2 .. $n);
        return (join('', map { "    dynamo_model name=$_ path=$dir"
                               . " block_size=$bs;\n" } @names), @names);
    };
    my ($text, @names) = $models->(3, 16);
    my $gw = start_gateway(redis => $rp, models => $text,
                           servers => [ "127.0.0.1:$w->{port}" ]);
    my $first = 1;
    for my $step ([ 3, 16 ], [ 2, 16 ], [ 1, 16 ], [ 1, 32 ], [ 2, 16 ],
                  [ 3, 32 ])
    {
        my ($n, $bs) = @$step;
        ($text, @names) = $models->($n, $bs);
        reload_gateway($gw, models => $text) if !$first;
        $first = 0;
        my $want = join ',', sort @names;
        my $got;
        wait_until(sub {
            my $m = gw_get($gw, '/metrics')->{body} // '';
            $got = join ',', sort
                   $m =~ /^dynamo_router_index_blocks\{model="([^"]+)"\}/mg;
            $got eq $want;
        }, 5);
        is($got, $want, "$n model(s), block size $bs: an index each");
        ok(wait_until(sub {
            (metric($gw, 'dynamo_router_workers') // 0) == 1 }, 10),
           "$n model(s), block size $bs: the worker is indexed");
        is(gw_post($gw, '/v1/completions',
                   { model => $model, prompt => 'hi', max_tokens => 2 })
           ->{status}, 200, "$n model(s), block size $bs: served");
    }
    unlike(error_log_text($gw), qr/too small|\[(emerg|alert|crit)\]/,
           'no reload refused, no alert/crit');
    stop_gateway($gw);
    stop_worker($w);
    stop_own_redis($redis);
};


subtest 'processes of a reload claim a load row once one is free' => sub {
    my $w = start_worker(mock_worker_args(speedup => 0.5));
    my $addr = "127.0.0.1:$w->{port}";
    my $gw = start_gateway(servers => [ $addr ], workers => 40);
    my @old = nginx_workers($gw);
    reload_gateway($gw);
    ok(wait_until(sub {
        my %o = map { $_ => 1 } @old;
        my @c = nginx_workers($gw);
        @c == 40 && !grep { $o{$_} } @c;
    }, 30), 'the 40 old processes are gone');
    my $rowless = () = error_log_text($gw) =~ /more than 64 nginx processes/g;
    diag("processes of the reload started without a row: $rowless");
    sleep 1.2;
    my @s = map { sse_open($gw, '/v1/completions',
                           { model => $model, prompt => "once $_",
                             max_tokens => 400,
                             ignore_eos => JSON::PP::true,
                             stream => JSON::PP::true }) } 1 .. 60;
    my $started = grep { ref sse_next($_, 10) } @s;
    is($started, 60, '60 streams started');
    ok((gw_in_flight($gw, $addr) // 0) > 0, 'load in flight');
    kill SIGKILL, nginx_workers($gw);
    sse_close($_) for @s;
    ok(wait_until(sub { (gw_in_flight($gw, $addr) // -1) == 0 }, 30),
       'in flight back to 0 after every nginx process was killed')
        or diag('in flight: ' . (gw_in_flight($gw, $addr) // 'none'));
    stop_gateway($gw);
    stop_worker($w);
};

done_testing();
