# vim:set ft=perl ts=4 sw=4 et:
# scripts/run.sh, behind `make run` / `make stop`: start brings up Redis,
# a cpu worker on the embedded model and nginx answering with the model's
# known greedy story; stop leaves nothing running, even an nginx worker
# process that a stalled client keeps in its graceful shutdown (it gets the
# fast shutdown, then SIGKILL with its process group).

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET ();
use Time::HiRes qw(sleep time);
use Test::Dynamo::Gateway qw(:all);
use Test::Dynamo::Port qw(free_port);
use Test::Dynamo::Worker qw(worker_bin);

my $mod = module_path();
my $wbin = worker_bin();
plan skip_all => "$mod or $wbin missing (make)" if !-f $mod || !-x $wbin;
for my $tool (qw(redis-server curl)) {
    plan skip_all => "$tool not found"
        if system("command -v $tool >/dev/null 2>&1") != 0;
}

# a build directory of its own, so that run/ is private to this test
my $b = tempdir(CLEANUP => 1);
mkdir "$b/$_" for qw(modules bin);
symlink $mod, "$b/modules/ngx_dynamo_module.so" or die $!;
symlink $wbin, "$b/bin/dynamo-worker" or die $!;

my $port = free_port();
local $ENV{DYNAMO_PORT} = $port;
local $ENV{NGINX} = nginx_bin();
my %pgid;

sub run_sh {
    my ($action) = @_;
    my $out = `timeout -k 5 120 sh scripts/run.sh $action '$b' 2>&1`;
    return ($? >> 8, $out);
}

# live (not zombie) processes of process group $g
sub group_members {
    my ($g) = @_;
    my @m;
    for my $f (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $f or next;
        my $st = <$fh> // next;
        my ($state, undef, $pg) = (split ' ', substr $st, rindex($st, ')') + 2);
        push @m, $f =~ m{/proc/(\d+)/} if $pg == $g && $state ne 'Z';
    }
    return @m;
}

END {
    return if !$b || !-d "$b/run";
    run_sh('stop');
    kill 'KILL', -$_ for grep { group_members($_) } values %pgid;
}

# greedy reference from the tokenizer (models/stories260K/README.md)
my @prompt_ids = (1, 403, 407, 261, 378);
my @known_ids = split ' ', '432 383 286 261 376 298 315 421 395 317 426 338 '
                         . '401 396 267 337 410 408 419 292 411 322 265 282 295';
my $prompt = detokenize(\@prompt_ids);
my $greedy = substr detokenize([@prompt_ids, @known_ids]), length $prompt;

my ($rc, $out) = run_sh('start');
is($rc, 0, 'run.sh start succeeds') or diag $out;
like($out, qr/ngx_dynamo is running.*127\.0\.0\.1:$port/s,
     'start says where nginx listens');

my $r = gw_get($port, '/health');
is($r->{status}, 200, '/health ready once start returns');
$r = gw_post($port, '/v1/completions', { model => 'stories260K',
             prompt => $prompt, temperature => 0, max_tokens => 25 });
is($r->{status}, 200, 'a completion through the started nginx')
    or diag $r->{raw};
is($r->{json} && $r->{json}{choices}[0]{text}, $greedy,
   'the embedded model\'s known greedy story');

for my $f (qw(logs/nginx.pid worker.pid redis.pid)) {
    my $pid = read_file("$b/run/$f");
    chomp $pid;
    ok($pid && kill(0, $pid), "$f names a live process");
    $pgid{$f} = $pid;
}

# a client that sends the head of a POST and stalls in its body keeps an
# nginx worker in its graceful shutdown
my $stall = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp')
    or die "connect: $!";
print $stall "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\n"
             . "Content-Type: application/json\r\nContent-Length: 1000\r\n"
             . "\r\n{";
sleep 0.5;

my $t0 = time;
($rc, $out) = run_sh('stop');
my $took = time - $t0;
is($rc, 0, 'run.sh stop succeeds') or diag $out;
like($out, qr/nothing left running/, 'stop reports');
cmp_ok($took, '<', 25, sprintf 'stop returns in %.1f s', $took);

for my $f (sort keys %pgid) {
    my @left;
    wait_until(sub { !(@left = group_members($pgid{$f})) }, 3);
    is("@left", '', "nothing of $f\'s process group left");
    ok(!-e "$b/run/$f", "$f removed");
}
close $stall;

($rc, $out) = run_sh('stop');
is($rc, 0, 'a second stop is a no-op') or diag $out;

done_testing();
