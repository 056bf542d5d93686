# vim:set ft=perl ts=4 sw=4 et:
# The Redis sync inside nginx (kvrouter/README.md, "Redis schema"), with
# real processes: a redis-server, mock-engine dynamo-workers publishing
# their registration, load and KV blocks, and nginx (master + 2 workers)
# keeping its shared index current from Redis. Read through /metrics:
#   - exactly one nginx worker process syncs (the lease in the zone);
#   - a worker that registers appears, one whose liveness lapses goes;
#   - blocks a worker caches appear (as many as the prompt's full blocks,
#     counted by dynamo-kv hash);
#   - Redis killed: /health and /metrics keep answering, the index stays,
#     one warning for the whole outage; Redis restarted: reconnect, resync;
#   - nginx -s reload (HUP), with Redis away, keeps the index, and a new
#     worker process takes the sync over; a reload that adds a model lays
#     the indexes out anew and they resync; graceful quit leaves no
#     socket open;
#   - a zone too small for the indexes fails the configuration test,
#     naming dynamo_zone.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Cwd qw(abs_path);
use File::Temp qw(tempdir);
use HTTP::Tiny ();
use IO::Socket::INET ();
use POSIX qw(WNOHANG SIGKILL SIGTERM SIGHUP SIGQUIT);
use Time::HiRes qw(sleep time);

use Test::Dynamo::Port qw(free_port);
use Test::Dynamo::Redis qw(redis_command);
use Test::Dynamo::Worker qw(worker_bin dynamo_build start_worker
                            stop_worker generate read_file wait_until);

my $NGINX = $ENV{TEST_NGINX_BINARY} || (-x '/usr/sbin/nginx'
                                        ? '/usr/sbin/nginx' : 'nginx');
my $MODULE = $ENV{TEST_NGINX_LOAD_MODULES}
             || dynamo_build() . '/modules/ngx_dynamo_module.so';
my $MODEL_DIR = abs_path('models/stories260K');
my $MODEL = 'stories260K';

plan skip_all => 'dynamo-worker not built (' . worker_bin() . ')'
    if !-x worker_bin();
plan skip_all => "module not built ($MODULE)" if !-f $MODULE;

my $prefix = tempdir(CLEANUP => 1);
mkdir "$prefix/$_" for qw(conf logs tmp);

# ---- redis-server on a fixed port, killed and restarted ----------------

my $rport = free_port();
my $redis_pid;
$ENV{TEST_NGINX_REDIS_PORT} = $rport;    # for redis_command

sub redis_up {
    my $dir = tempdir(CLEANUP => 1);
    $redis_pid = fork // die "fork: $!";
    if ($redis_pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', "$dir/redis.log";
        open STDERR, '>&', \*STDOUT;
        { exec 'redis-server', '--port', $rport, '--bind', '127.0.0.1',
               '--save', '', '--appendonly', 'no', '--dir', $dir; }
        POSIX::_exit(127);
    }
    return wait_until(sub { (eval { redis_command('PING') } // '') eq 'PONG' },
                      10);
}

sub redis_down {
    return if !$redis_pid;
    kill SIGKILL, $redis_pid;
    waitpid($redis_pid, 0);
    $redis_pid = undef;
}

# ---- nginx, started by hand: master process, 2 workers -----------------

my $port = free_port();

sub conf {
    my ($zone, $more) = @_;
    $more //= '';
    return <<"_EOC_";
load_module $MODULE;
worker_processes 2;
error_log $prefix/logs/error.log info;
pid $prefix/logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $prefix/tmp;
    proxy_temp_path $prefix/tmp;
    fastcgi_temp_path $prefix/tmp;
    uwsgi_temp_path $prefix/tmp;
    scgi_temp_path $prefix/tmp;

    dynamo_model name=$MODEL path=$MODEL_DIR;
$more
    dynamo_redis 127.0.0.1:$rport connect_timeout=500ms timeout=1s;
    dynamo_zone dynamo $zone;

    upstream workers {
        dynamo_upstream kv;
        server 127.0.0.1:1;
    }

    server {
        listen 127.0.0.1:$port;
        location / { dynamo_pass workers; }
        location = /metrics { dynamo_metrics; }
    }
}
_EOC_
}

sub write_conf {
    my ($file, $text) = @_;
    open my $fh, '>', $file or die "$file: $!";
    print $fh $text;
    close $fh;
}

sub nginx {
    my (@args) = @_;
    my $out = `$NGINX -p $prefix/ -c $prefix/conf/nginx.conf \\
               -e $prefix/logs/error.log @args 2>&1`;
    return ($? >> 8, $out);
}

sub master_pid {
    my ($pid) = read_file("$prefix/logs/nginx.pid") =~ /(\d+)/;
    return $pid;
}

sub get {
    my ($path) = @_;
    my $r = HTTP::Tiny->new(timeout => 5)->get("http://127.0.0.1:$port$path");
    return ($r->{status}, $r->{content});
}

sub metric {
    my ($name) = @_;
    my ($status, $body) = get('/metrics');
    return undef if $status != 200;
    my ($v) = $body =~ /^\Q$name\E\{model="$MODEL"\} (\d+)$/m;
    return $v;
}

sub metric_is {
    my ($name, $want, $timeout) = @_;
    return wait_until(sub { (metric($name) // -1) == $want }, $timeout // 10);
}

# error log lines since the last call
my $log_pos = 0;
sub new_log {
    my $text = read_file("$prefix/logs/error.log");
    my $new = substr($text, $log_pos);
    $log_pos = length $text;
    return $new;
}

sub syncers {
    my ($log) = @_;
    return { map { $_ => 1 }
             $log =~ /dynamo_redis: process (\d+) syncs model "$MODEL"/g };
}

# seq hashes of the full blocks of a prompt, by the kvrouter tool
sub full_blocks {
    my (@ids) = @_;
    my $dir = tempdir(CLEANUP => 1);
    write_conf("$dir/in", join(' ', @ids) . "\n");
    my $tool = dynamo_build() . '/bin/dynamo-kv';
    my @out = `$tool hash --block-size 16 < $dir/in`;
    die "dynamo-kv hash failed" if $?;
    return scalar @out;
}

sub worker_args {
    return ('--model', $MODEL_DIR, '--engine', 'mock',
            '--redis', "127.0.0.1:$rport", '--log-level', 'warn');
}

my @PROMPT = (1, map { 3 + ($_ * 37) % 497 } 1 .. 39);    # 40 tokens
my $BLOCKS = full_blocks(@PROMPT);

END {
    local $?;
    if (my $pid = master_pid()) {
        kill SIGTERM, $pid;
    }
    redis_down();
}

# ---- a zone too small for the index fails nginx -t ---------------------

write_conf("$prefix/conf/nginx.conf", conf('64k'));
my ($rc, $out) = nginx('-t');
isnt($rc, 0, 'nginx -t fails with a 64k zone and a model');
like(new_log(), qr/\[emerg\].*"dynamo_zone" is too small/,
     'the error names dynamo_zone');

# ---- start ------------------------------------------------------------

ok(redis_up(), 'redis-server answers');

write_conf("$prefix/conf/nginx.conf", conf('2m'));
($rc, $out) = nginx();
is($rc, 0, 'nginx starts') or diag $out;
ok(wait_until(sub { (get('/health'))[0] == 200 }, 10), '/health answers');

ok(metric_is('dynamo_redis_connected', 1), 'connected to Redis');
is(metric('dynamo_router_workers'), 0, 'no workers yet');

my ($st, $body) = get('/metrics');
for my $m (qw(dynamo_router_workers dynamo_router_index_blocks
              dynamo_router_index_evictions_total dynamo_redis_connected
              dynamo_redis_events_applied_total dynamo_redis_full_resyncs_total
              dynamo_redis_errors_total dynamo_redis_disconnects_total))
{
    my $type = $m =~ /_total$/ ? 'counter' : 'gauge';
    ok($body =~ /^# HELP $m \S.*\n# TYPE $m $type\n$m\{model="$MODEL"\} \d+$/m,
       "$m: HELP, TYPE $type, one line per model");
}

sleep 1.2;    # a few lease ticks: nobody else takes over
my $log = new_log();
is(scalar keys %{ syncers($log) }, 1, 'one nginx worker process syncs');
unlike($log, qr/\[(error|crit|alert|emerg)\]/, 'no errors at start');

# ---- workers come and go -----------------------------------------------

my $w1 = start_worker(worker_args());
ok(metric_is('dynamo_router_workers', 1), 'a registered worker appears');
is(metric('dynamo_router_index_blocks'), 0, 'no blocks yet');

my ($gst) = generate($w1->{port}, { token_ids => \@PROMPT, max_tokens => 4,
                                    sampling => { temperature => 0 } });
is($gst, 200, 'generate at the worker');
ok(metric_is('dynamo_router_index_blocks', $BLOCKS),
   "the prompt's $BLOCKS full blocks reach the index");

stop_worker($w1, SIGKILL);
ok(metric_is('dynamo_router_workers', 0, 10),
   'a worker whose liveness lapses is dropped');
is(metric('dynamo_router_index_blocks'), 0, 'with its blocks');

my $w2 = start_worker(worker_args());
ok(metric_is('dynamo_router_workers', 1), 'another worker appears');
($gst) = generate($w2->{port}, { token_ids => \@PROMPT, max_tokens => 4,
                                 sampling => { temperature => 0 } });
ok(metric_is('dynamo_router_index_blocks', $BLOCKS), 'its blocks too');

# ---- Redis killed, then restarted ---------------------------------------

new_log();
my $resyncs = metric('dynamo_redis_full_resyncs_total');
my $disc = metric('dynamo_redis_disconnects_total');

redis_down();

ok(metric_is('dynamo_redis_connected', 0, 5), 'Redis down is noticed');

my $ok = 1;
my $deadline = time + 3;
while (time < $deadline) {            # ~30 reconnect attempts' time
    $ok &&= (get('/health'))[0] == 200 && (get('/metrics'))[0] == 200;
    sleep 0.1;
}
ok($ok, '/health and /metrics keep answering with Redis down');
is(metric('dynamo_router_workers'), 1, 'the index keeps its worker');
is(metric('dynamo_router_index_blocks'), $BLOCKS, 'and its blocks');
is(metric('dynamo_redis_disconnects_total'), $disc + 1, 'one disconnect');

$log = new_log();
my @warn = $log =~ /^.*dynamo_redis.*$/mg;
is(scalar @warn, 1, 'one log line for the outage') or diag $log;
like($warn[0] // '', qr/\[warn\]/, 'at warn');
unlike($log, qr/\[(error|crit|alert|emerg)\]/, 'no error storm');

ok(redis_up(), 'redis-server restarted (empty)');
ok(metric_is('dynamo_redis_connected', 1, 10), 'reconnected');
ok(wait_until(sub {
       (metric('dynamo_redis_full_resyncs_total') // 0) > $resyncs }, 10),
   'full resync after the reconnect');
ok(metric_is('dynamo_router_workers', 1, 10), 'worker back after resync');
ok(metric_is('dynamo_router_index_blocks', $BLOCKS, 10),
   'blocks back after resync (the worker re-registered)');
like(new_log(), qr/\[notice\].*dynamo_redis: connected to .* again/,
     'reconnect logged');

# ---- reload keeps the index ---------------------------------------------
# with Redis away, so that whatever the index holds after the reload comes
# from the zone, not from a resync

redis_down();
ok(metric_is('dynamo_redis_connected', 0, 5), 'Redis down again');

my $master = master_pid();
new_log();
kill SIGHUP, $master;
ok(wait_until(sub { read_file("$prefix/logs/error.log")
                    =~ /index\(es\) kept/ }, 10),
   'reload: the zone keeps the index');
ok(wait_until(sub { keys %{ syncers(read_file("$prefix/logs/error.log")) }
                    >= 2 }, 10),
   'the sync moved to a new worker process');
ok(wait_until(sub { read_file("$prefix/logs/error.log")
                    =~ /worker process \d+ exited/ }, 10),
   'old workers leave');
sleep 0.5;
is(metric('dynamo_router_workers'), 1, 'reload: workers kept');
is(metric('dynamo_router_index_blocks'), $BLOCKS, 'reload: blocks kept');

ok(redis_up(), 'redis-server restarted');
ok(metric_is('dynamo_redis_connected', 1, 10), 'the new process connects');
ok(metric_is('dynamo_router_workers', 1, 10), 'worker still there');
$log = read_file("$prefix/logs/error.log");
unlike($log, qr/open socket|\[alert\]|\[crit\]/,
       'no socket left open by the old workers');

($gst) = generate($w2->{port}, { token_ids => [ @PROMPT, 5 .. 20 ],
                                 max_tokens => 2,
                                 sampling => { temperature => 0 } });
ok(metric_is('dynamo_router_index_blocks',
             full_blocks(@PROMPT, 5 .. 20), 10),
   'events flow after the reload');
cmp_ok(metric('dynamo_redis_events_applied_total'), '>=', 1,
       'events applied');

# ---- a reload that changes the models lays the indexes out anew ----------

new_log();
write_conf("$prefix/conf/nginx.conf",
           conf('2m', "    dynamo_model name=other path=$MODEL_DIR "
                      . "block_size=32;"));
kill SIGHUP, $master;
ok(wait_until(sub { new_log() =~ /models changed, indexes start empty/ },
              10), 'reload with another model: indexes laid out anew');
ok(wait_until(sub {
       my (undef, $m) = get('/metrics');
       ($m // '') =~ /^dynamo_redis_connected\{model="other"\} 1$/m }, 10),
   'the new model is synced');
ok(metric_is('dynamo_router_workers', 1, 10),
   'the worker is back in the new index (resynced from Redis)');
ok(metric_is('dynamo_router_index_blocks',
             full_blocks(@PROMPT, 5 .. 20), 10), 'with its blocks');

# ---- graceful quit --------------------------------------------------------

new_log();
kill SIGQUIT, $master;
ok(wait_until(sub { !kill(0, $master) }, 10), 'nginx quits gracefully');
unlike(new_log(), qr/open socket|\[alert\]|\[crit\]/,
       'no socket left open at exit');

stop_worker($w2);

done_testing();
