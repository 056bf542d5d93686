# vim:set ft=perl ts=4 sw=4 et:
# KV-aware routing with real processes: two mock-engine dynamo-workers
# publishing their KV blocks to a real redis-server, nginx syncing its
# index from there.
#   - a request sharing a long prefix with an earlier one goes to the
#     worker that served the earlier one ($dynamo_overlap_blocks > 0);
#   - cold requests spread by load;
#   - the hot-spot guard: many concurrent requests with one prefix do not
#     all pile on the worker that caches it;
#   - the index survives `nginx -s reload` (HUP);
#   - round_robin alternates, for comparison;
#   - workers registered in Redis are used and dropped when their
#     liveness lapses, without a reload.
# Which worker served a request is read from the workers' own counters
# (dynamo_worker_requests_total), independent of the gateway, and from
# $dynamo_worker in the access log.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use Test::Dynamo::Gateway qw(:all);

my $model = 'stories260K';
my $redis = start_own_redis();
my $rp = $redis->{port};
my @w = map { start_worker(mock_worker_args(redis => "127.0.0.1:$rp",
                                            speedup => 1)) } 1 .. 2;
my @addr = map { "127.0.0.1:$_->{port}" } @w;
my $gw = start_gateway(redis => $rp, workers => 2, servers => \@addr,
                       policy => 'kv');

# deterministic pseudo-random token ids in [3, 500)
my $seed = 12345;
sub ids {
    my ($n) = @_;
    return [ map { $seed = ($seed * 1103515245 + 12345) % 2**31;
                   3 + $seed % 497 } 1 .. $n ];
}

sub served { [ map { worker_metric($_->{port}, 'requests_total') // 0 } @w ] }

# which worker (0 or 1) served one sequential request
sub route_one {
    my ($body) = @_;
    my $before = served();
    my $r = gw_post($gw, '/v1/completions', $body);
    return (undef, $r) if ($r->{status} // 0) != 200;
    my $after = served();
    my @d = map { $after->[$_] - $before->[$_] } 0 .. 1;
    return ((grep { $d[$_] == 1 } 0 .. 1)[0], $r) if $d[0] + $d[1] == 1;
    return (undef, $r);
}

sub index_blocks {
    my $m = gw_get($gw, '/metrics')->{body} // '';
    my ($n) = $m =~ /^dynamo_router_index_blocks\{model="$model"\} (\d+)$/m;
    return $n // 0;
}

ok(wait_until(sub {
    my $m = gw_get($gw, '/metrics')->{body} // '';
    $m =~ /^dynamo_router_workers\{model="$model"\} 2$/m;
}, 10), 'both workers registered in the gateway\'s index');

subtest 'a shared long prefix goes to the worker that served it' => sub {
    my ($hits, $n) = (0, 5);
    for my $i (1 .. $n) {
        my $prefix = ids(320);                       # 20 blocks
        my $blocks = index_blocks();
        my ($first) = route_one({ model => $model, prompt => $prefix,
                                  max_tokens => 1 });
        ok(defined $first, "prefix $i: first request served") or next;
        wait_until(sub { index_blocks() >= $blocks + 20 }, 5);
        my ($again, $r) = route_one({ model => $model,
                                      prompt => [ @$prefix, @{ ids(40) } ],
                                      max_tokens => 1 });
        $hits++ if defined $again && $again == $first;
        ok(($r->{json}{usage}{prompt_tokens_details}{cached_tokens} // 0)
           >= 320, "prefix $i: the follow-up found 320 cached tokens");
    }
    is($hits, $n, "all $n follow-ups went to the worker with the prefix");
    my @e = grep { $_->{uri} eq '/v1/completions' }
            @{ access_log_entries($gw) };
    my @follow = @e[ grep { $_ % 2 } 0 .. $#e ];
    ok(@follow && !grep({ ($_->{overlap} // 0) < 20 } @follow),
       '$dynamo_overlap_blocks >= 20 on every follow-up');
    ok(!grep({ ($_->{worker} // '') !~ /^127\.0\.0\.1:\d+$/ } @e),
       '$dynamo_worker names a worker');
};

# N concurrent streams; returns the per-worker request counts they added
sub concurrent {
    my ($bodies) = @_;
    my $before = served();
    my @s = map { sse_open($gw, '/v1/completions',
                           { %$_, stream => JSON::PP::true }) } @$bodies;
    my $ok = 0;
    for my $s (@s) {
        my $done;
        while (defined(my $e = sse_next($s, 20))) {
            if (!ref $e) { $done = 1; last }
        }
        $ok++ if $done && $s->{status} == 200;
        sse_close($s);
    }
    my $after = served();
    return ($ok, [ map { $after->[$_] - $before->[$_] } 0 .. 1 ]);
}

subtest 'reload (HUP) keeps the shared index' => sub {
    my $prefix = ids(320);
    my $blocks = index_blocks();
    my ($first) = route_one({ model => $model, prompt => $prefix,
                              max_tokens => 1 });
    ok(defined $first, 'served') or return;
    wait_until(sub { index_blocks() >= $blocks + 20 }, 5);
    reload_gateway($gw);
    my $after = index_blocks();
    ok($after >= $blocks + 20, "the index survives the reload ($after)");
    my ($again) = route_one({ model => $model,
                              prompt => [ @$prefix, @{ ids(16) } ],
                              max_tokens => 1 });
    is($again, $first, 'the follow-up goes to the same worker');
};

subtest 'cold requests spread by load' => sub {
    my ($ok, $d) = concurrent([ map { { model => $model, prompt => ids(64),
                                        max_tokens => 60 } } 1 .. 8 ]);
    is($ok, 8, 'all 8 streams complete');
    ok($d->[0] >= 2 && $d->[1] >= 2, "both workers got some (@$d)");
};

subtest 'hot-spot guard: one hot prefix does not pile on one worker' => sub {
    my $hot = ids(256);                              # 16 blocks
    my $blocks = index_blocks();
    route_one({ model => $model, prompt => $hot, max_tokens => 1 });
    wait_until(sub { index_blocks() >= $blocks + 16 }, 5);
    my ($ok, $d) = concurrent([ map { { model => $model,
                                        prompt => [ @$hot, @{ ids(16) } ],
                                        max_tokens => 80 } } 1 .. 12 ]);
    is($ok, 12, 'all 12 streams complete');
    ok($d->[0] >= 2 && $d->[1] >= 2,
       "the other worker took some of the load (@$d)");
};

stop_gateway($gw);

subtest 'round_robin alternates' => sub {
    $gw = start_gateway(servers => \@addr, policy => 'round_robin');
    my @who;
    for (1 .. 6) {
        my ($k) = route_one({ model => $model, prompt => ids(20),
                              max_tokens => 1 });
        push @who, $k // -1;
    }
    is(scalar(grep { $who[$_] != $who[$_ - 1] } 1 .. $#who), 5,
       "each request on the other worker (@who)");
    stop_gateway($gw);
};

subtest 'workers from the Redis registry come and go without a reload' => sub {
    my $r2 = start_own_redis();
    my $args = sub { mock_worker_args(redis => "127.0.0.1:$r2->{port}") };
    # the only server line is down: every worker comes from Redis
    my $g = start_gateway(redis => $r2->{port},
                          servers => [ '127.0.0.1:1 down' ]);
    my $req = { model => $model, prompt => 'Once upon a time',
                max_tokens => 2 };
    is(gw_post($g, '/v1/completions', $req)->{status}, 503,
       'no worker registered: 503');
    my $x = start_worker($args->());
    ok(wait_until(sub { gw_post($g, '/v1/completions', $req)->{status}
                        == 200 }, 10), 'a worker registers: served');
    my $n = worker_metric($x->{port}, 'requests_total') // 0;
    ok($n >= 1, "by that worker ($n requests)");
    stop_worker($x, 'KILL');
    ok(wait_until(sub { gw_post($g, '/v1/completions', $req)->{status}
                        == 503 }, 10), 'its liveness lapses: 503 again');
    my $y = start_worker($args->());
    ok(wait_until(sub { gw_post($g, '/v1/completions', $req)->{status}
                        == 200 }, 10), 'another registers: served');
    stop_gateway($g);
    stop_worker($y);
    stop_own_redis($r2);
};

unlike(error_log_text($gw), qr/\[(alert|crit)\]/, 'no alert/crit');
stop_worker($_) for @w;
stop_own_redis($redis);

done_testing();
