# vim:set ft=perl ts=4 sw=4 et:
# Registered workers that do not fit the gateway's model or upstream, with
# real mock-engine dynamo-workers, a real redis-server and nginx:
#   - a worker on another block size (16, the model says 32): its hashes
#     never match ours, so it is routed to by load only, with a warning;
#   - a server line of a role=aggregated upstream that registered as
#     prefill: never routed to, not counted by /health, a warning;
#   - a registration whose address is a host name (not an IP): never
#     routed to, a warning.
# Each warning is logged once per nginx worker process, not per request.
# Which worker served a request is read from the workers' own counters.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use Test::Dynamo::Gateway qw(:all);
use Test::Dynamo::Redis ();

my $model = 'stories260K';
my $dir = model_dir();
my $redis = start_own_redis();
my $rp = $redis->{port};

sub rcmd { Test::Dynamo::Redis::_command_on($rp, 3, @_) }

my $agg = start_worker(mock_worker_args(redis => "127.0.0.1:$rp"));
my $pre = start_worker(mock_worker_args(redis => "127.0.0.1:$rp",
                                        extra => [ '--role', 'prefill' ]));
my @w = ($agg, $pre);

# a registration as a worker of another build might write it: the
# address a host name (dynamo-worker itself refuses one)
my $ns = "dyn:v1:$model";
my $fid = '4242';
rcmd('HSET', "$ns:w:$fid", role => 'both', addr => "localhost:$agg->{port}",
     block_size => 16, capacity => 1024, generation => 1,
     last_event_id => 0);
rcmd('SADD', "$ns:workers", $fid);
rcmd('SET', "$ns:alive:$fid", '0 0 0 0 0', 'PX', 600000);

my $gw = start_gateway(
    redis => $rp, workers => 1, policy => 'kv role=aggregated',
    servers => [ map { "127.0.0.1:$_->{port}" } @w ],
    models => "    dynamo_model name=$model path=$dir block_size=32;\n");

ok(wait_until(sub {
    my $m = gw_get($gw, '/metrics')->{body} // '';
    $m =~ /^dynamo_router_workers\{model="$model"\} 3$/m;
}, 10), 'three registrations in the gateway\'s index')
    or diag gw_get($gw, '/metrics')->{body};

sub served { [ map { worker_metric($_->{port}, 'requests_total') // 0 } @w ] }

subtest '/health counts the one worker that fits' => sub {
    my $r = gw_get($gw, '/health');
    is($r->{status}, 200, 'status 200');
    is($r->{json}{workers}, 1, 'one usable worker') or diag $r->{raw};
};

subtest 'only the aggregated worker serves; no overlap credit' => sub {
    my $before = served();
    my $prompt = join ' ', ('the cat and the dog went to the park') x 30;
    for my $i (1 .. 10) {
        my $r = gw_post($gw, '/v1/completions',
                        { model => $model, prompt => $prompt,
                          max_tokens => 2 });
        is($r->{status}, 200, "request $i: 200") or diag $r->{raw};
        sleep 0.2 if $i == 1;
    }
    my $after = served();
    is($after->[0] - $before->[0], 10, 'all ten on the aggregated worker');
    is($after->[1] - $before->[1], 0, 'none on the prefill worker');
    my @e = grep { $_->{uri} eq '/v1/completions' }
            @{ access_log_entries($gw) };
    is(scalar(grep { ($_->{worker} // '') eq "127.0.0.1:$agg->{port}" } @e),
       10, '$dynamo_worker names it') or diag explain \@e;
    is(scalar(grep { ($_->{overlap} // 0) != 0 } @e), 0,
       'no overlap from hashes of another block size');
};

subtest 'each misfit is warned about once' => sub {
    gw_get($gw, '/health') for 1 .. 3;
    my $log = error_log_text($gw);
    my %want = (
        'block size' => "worker 127.0.0.1:$agg->{port} of model \"$model\""
                        . ' uses block size 16, not the block_size=32',
        'role' => "worker 127.0.0.1:$pre->{port} is registered for model"
                  . " \"$model\" as prefill, which does not fit the role"
                  . ' of upstream "workers"',
        'host name address' => "worker $fid of model \"$model\" registered"
                               . " the address \"localhost:$agg->{port}\","
                               . ' which is not an IP address',
    );
    for my $what (sort keys %want) {
        my @l = grep { /\[warn\]/ && index($_, $want{$what}) >= 0 }
                split /\n/, $log;
        is(scalar @l, 1, "$what: one warning") or diag $log;
    }
};

stop_gateway($gw);
stop_worker($_) for @w;
done_testing();
