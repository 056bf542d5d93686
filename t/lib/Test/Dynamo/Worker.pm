package Test::Dynamo::Worker;

# dynamo-worker processes for the t/1xx-worker-*.t tests (no nginx).
#
#     use Test::Dynamo::Worker qw(start_worker stop_worker http_get
#                                 generate);
#     my $w = start_worker('--model', 'models/stories260K',
#                          '--redis', 'none');
#     my ($status, $frames) = generate($w->{port}, { token_ids => [1] });
#     is(stop_worker($w), 0);
#
# The binary is $DYNAMO_BUILD/bin/dynamo-worker (default: build/). It is
# started with --port 0 unless a port is given; start_worker waits for one
# "dynamo-worker: listening on HOST:PORT worker_id=ID ..." line per worker
# (stdout) and returns { pid, port, ports => [...], ids => [...],
# err => file with its stderr }. Workers still running when the test file
# exits are killed.

use strict;
use warnings;

use Carp qw(croak);
use File::Spec ();
use File::Temp qw(tempdir);
use HTTP::Tiny ();
use IO::Socket::INET ();
use JSON::PP ();
use Test::Dynamo::Proc qw(stop_pid);
use POSIX qw(WNOHANG SIGTERM SIGKILL);
use Time::HiRes qw(sleep time);

use base 'Exporter';

our @EXPORT_OK = qw(worker_bin dynamo_build start_worker stop_worker
                    run_worker http_get generate read_file wait_until);

my $Tmp = tempdir(CLEANUP => 1);
my @Live;
my $Owner = $$;
my $Seq = 0;

sub dynamo_build {
    return $ENV{DYNAMO_BUILD} || File::Spec->rel2abs('build');
}

sub worker_bin { return dynamo_build() . '/bin/dynamo-worker' }

sub read_file {
    my ($path) = @_;
    open my $in, '<', $path or return '';
    local $/;
    my $text = <$in>;
    close $in;
    return $text // '';
}

# Polls $cond every 50 ms until true or $timeout seconds; returns its
# last value.
sub wait_until {
    my ($cond, $timeout) = @_;
    my $deadline = time + ($timeout // 10);
    my $v;
    while (1) {
        $v = $cond->();
        return $v if $v || time > $deadline;
        sleep 0.05;
    }
}

sub _spawn {
    my (@args) = @_;
    my $n = $Seq++;
    my ($out, $err) = ("$Tmp/w$n.out", "$Tmp/w$n.err");
    my $pid = fork;
    croak "fork: $!" if !defined $pid;
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out;
        open STDERR, '>', $err;
        { exec { worker_bin() } worker_bin(), @args; }
        POSIX::_exit(127);
    }
    return ($pid, $out, $err);
}

# Runs the worker to completion (for bad flags etc.): (exit code, stdout,
# stderr); kills it after $timeout seconds (exit code -1 then).
sub run_worker {
    my ($timeout, @args) = @_;
    my ($pid, $out, $err) = _spawn(@args);
    my $deadline = time + $timeout;
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            return ($? >> 8, read_file($out), read_file($err));
        }
        sleep 0.05;
    }
    kill SIGKILL, $pid;
    waitpid($pid, 0);
    return (-1, read_file($out), read_file($err));
}

sub start_worker {
    my (@args) = @_;
    my %opt = ref $args[0] eq 'HASH' ? %{ shift @args } : ();
    my $n = $opt{workers} // 1;
    push @args, '--port', '0' if !grep { $_ eq '--port' } @args;
    my ($pid, $out, $err) = _spawn(@args);
    my $w = { pid => $pid, out => $out, err => $err };
    my $deadline = time + ($opt{timeout} // 30);
    while (time < $deadline) {
        my @lines = read_file($out) =~
            /^dynamo-worker: listening on (\S+):(\d+) worker_id=(\d+)/mg;
        if (@lines >= 3 * $n) {
            for (my $i = 0; $i < @lines; $i += 3) {
                push @{ $w->{ports} }, $lines[$i + 1];
                push @{ $w->{ids} }, $lines[$i + 2];
            }
            $w->{port} = $w->{ports}[0];
            $w->{id} = $w->{ids}[0];
            push @Live, $w;
            return $w;
        }
        if (waitpid($pid, WNOHANG) == $pid) {
            croak "dynamo-worker exited (" . ($? >> 8) . "):\n"
                  . read_file($err);
        }
        sleep 0.05;
    }
    kill SIGKILL, $pid;
    waitpid($pid, 0);
    croak "dynamo-worker did not start:\n" . read_file($err);
}

# Sends $sig (default TERM); returns the exit code (-1: killed after
# $timeout seconds).
sub stop_worker {
    my ($w, $sig, $timeout) = @_;
    return undef if !$w->{pid};
    my $code = stop_pid($w->{pid}, $sig, $timeout);
    @Live = grep { $_ != $w } @Live;
    $w->{pid} = 0;
    return $code;
}

sub http_get {
    my ($port, $path) = @_;
    my $r = HTTP::Tiny->new(timeout => 10)
            ->get("http://127.0.0.1:$port$path");
    return ($r->{status}, $r->{content}, $r->{headers});
}

# POST /v1/generate; returns (status, [decoded frames], raw body, headers).
# $body: a hash (encoded here) or a raw string.
sub generate {
    my ($port, $body, $timeout) = @_;
    $body = JSON::PP->new->canonical->encode($body) if ref $body;
    my $r = HTTP::Tiny->new(timeout => $timeout // 60)->post(
        "http://127.0.0.1:$port/v1/generate",
        { content => $body,
          headers => { 'Content-Type' => 'application/json' } });
    my @frames;
    if ($r->{status} == 200) {
        @frames = map { JSON::PP::decode_json($_) }
                  split /\n/, $r->{content};
    }
    return ($r->{status}, \@frames, $r->{content}, $r->{headers});
}

END {
    local $?;
    if ($$ == $Owner) {
        for my $w (@Live) {
            kill SIGKILL, $w->{pid} if $w->{pid};
            waitpid($w->{pid}, 0) if $w->{pid};
        }
    }
}

1;
