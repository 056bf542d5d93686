package Test::Dynamo::Redis;

# A throwaway redis-server for one test file.
#
#     use Test::Dynamo::Redis qw(start_redis redis_command);
#     start_redis();      # before run_tests(); sets TEST_NGINX_REDIS_PORT
#
# The server listens on a free 127.0.0.1 port, persists nothing
# (--save '' --appendonly no) and works in t/servroot-redis-PORT/, a
# sibling of t/servroot (the harness empties t/servroot itself between
# blocks).  It is stopped, and its directory removed, when the test file
# exits, however it exits.  If TEST_NGINX_REDIS_PORT is already set, that
# Redis is used and nothing is started.

use strict;
use warnings;

use Carp qw(croak);
use File::Path qw(make_path remove_tree);
use File::Spec ();
use IO::Socket::INET ();
use POSIX qw(WNOHANG SIGTERM SIGKILL);
use Time::HiRes qw(sleep time);

use Test::Dynamo::Port qw(free_port);

use base 'Exporter';

our @EXPORT_OK = qw(start_redis stop_redis redis_port redis_command);

our $StartTimeout = 10;

my ($Pid, $Port, $Dir);
my $Owner = $$;

sub redis_port { $Port // $ENV{TEST_NGINX_REDIS_PORT} }

sub _server_binary {
    my $bin = $ENV{DYNAMO_REDIS_SERVER} || 'redis-server';

    return $bin if $bin =~ m{/};

    for my $dir (split(/:/, $ENV{PATH} // ''), '/usr/bin', '/usr/sbin') {
        next if $dir eq '';
        my $path = File::Spec->catfile($dir, $bin);
        return $path if -f $path && -x _;
    }

    croak "redis-server not found (set DYNAMO_REDIS_SERVER)";
}

sub _work_dir {
    my ($port) = @_;

    my $root = $ENV{TEST_NGINX_SERVROOT}
               || File::Spec->rel2abs(File::Spec->catdir('t', 'servroot'));

    return "$root-redis-$port";
}

sub _spawn {
    my ($bin, $port, $dir) = @_;

    my @cmd = ($bin, '--port', $port, '--bind', '127.0.0.1',
               '--save', '', '--appendonly', 'no', '--dir', $dir,
               '--daemonize', 'no', '--logfile', "$dir/redis.log");

    my $pid = fork;
    croak "fork() failed: $!" if !defined $pid;

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/redis.out";
        open STDERR, '>&', \*STDOUT;
        { exec { $cmd[0] } @cmd; }
        POSIX::_exit(127);
    }

    return $pid;
}

sub _log_tail {
    my ($dir) = @_;

    my $text = '';

    for my $file ("$dir/redis.log", "$dir/redis.out") {
        open my $in, '<', $file or next;
        my @lines = <$in>;
        close $in;
        $text .= join '', grep { defined } @lines[-10 .. -1];
    }

    return $text;
}

sub _wait_ready {
    my ($pid, $port) = @_;

    my $deadline = time + $StartTimeout;

    while (time < $deadline) {
        return 'exited' if waitpid($pid, WNOHANG) == $pid;

        my $pong = eval { _command_on($port, 0.5, 'PING') };
        return 'ok' if defined $pong && $pong eq 'PONG';

        sleep 0.05;
    }

    return 'timeout';
}

sub start_redis {
    return redis_port() if defined redis_port();

    my $bin = _server_binary();

    for my $attempt (1 .. 3) {
        my $port = free_port();
        my $dir = _work_dir($port);

        remove_tree($dir);
        make_path($dir);

        my $pid = _spawn($bin, $port, $dir);
        my $state = _wait_ready($pid, $port);

        if ($state eq 'ok') {
            ($Pid, $Port, $Dir) = ($pid, $port, $dir);
            $ENV{TEST_NGINX_REDIS_PORT} = $port;
            return $port;
        }

        my $log = _log_tail($dir);
        _kill($pid) if $state ne 'exited';
        remove_tree($dir);

        # lost the race for the port to another process: try another one
        next if $log =~ /Address already in use/ && $attempt < 3;

        croak "redis-server did not answer PING on port $port ($state):\n"
              . $log;
    }
}

sub _kill {
    my ($pid) = @_;

    kill SIGTERM, $pid;

    for (1 .. 100) {
        return if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }

    kill SIGKILL, $pid;
    waitpid($pid, 0);
}

sub stop_redis {
    return if !defined $Pid || $$ != $Owner;

    _kill($Pid);
    remove_tree($Dir) if defined $Dir;

    delete $ENV{TEST_NGINX_REDIS_PORT}
        if ($ENV{TEST_NGINX_REDIS_PORT} // '') eq $Port;

    ($Pid, $Port, $Dir) = ();
}

sub _encode {
    my @args = @_;

    return join '', "*" . scalar(@args) . "\r\n",
                    map { "\$" . length($_) . "\r\n$_\r\n" } @args;
}

sub _read_line {
    my ($sock) = @_;

    my $line = <$sock>;
    croak "redis: connection closed" if !defined $line;
    $line =~ s/\r\n\z//;

    return $line;
}

sub _read_reply {
    my ($sock) = @_;

    my $line = _read_line($sock);
    my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));

    return $rest if $type eq '+' || $type eq ':';
    croak "redis: $rest" if $type eq '-';

    if ($type eq '$') {
        return undef if $rest < 0;
        my $buf = '';
        while (length $buf < $rest + 2) {
            my $n = read($sock, $buf, $rest + 2 - length $buf, length $buf);
            croak "redis: connection closed" if !$n;
        }
        return substr $buf, 0, $rest;
    }

    if ($type eq '*') {
        return undef if $rest < 0;
        return [ map { _read_reply($sock) } 1 .. $rest ];
    }

    croak "redis: unexpected reply \"$line\"";
}

sub _command_on {
    my ($port, $timeout, @args) = @_;

    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $port,
        Proto    => 'tcp',
        Timeout  => $timeout,
    ) or croak "redis: cannot connect to 127.0.0.1:$port: $!";

    print $sock _encode(@args);
    my $reply = _read_reply($sock);
    close $sock;

    return $reply;
}

# one command on a new connection; returns the reply (array replies as
# array references), dies on an error reply
sub redis_command {
    my @args = @_;

    my $port = redis_port() // croak "redis: not started";

    return _command_on($port, 3, @args);
}

for my $sig (qw(INT TERM HUP)) {
    $SIG{$sig} = sub { exit 130 } if !$SIG{$sig} || $SIG{$sig} eq 'DEFAULT';
}

END {
    local $?;
    stop_redis();
}

1;
