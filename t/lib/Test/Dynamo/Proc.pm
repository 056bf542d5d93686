package Test::Dynamo::Proc;

# Ending a child process a test started.
#
#     use Test::Dynamo::Proc qw(stop_pid);
#     my $code = stop_pid($pid, SIGTERM, 10);
#
# Shared by Test::Dynamo::Worker and Test::Dynamo::Bench.

use strict;
use warnings;

use POSIX qw(WNOHANG SIGTERM SIGKILL);
use Time::HiRes qw(sleep time);

use base 'Exporter';

our @EXPORT_OK = qw(stop_pid);

# Sends $sig (SIGTERM) and reaps the process. Returns its exit status, or
# minus the signal that ended it, or -1 when it was still running after
# $timeout seconds (10) and was killed.
sub stop_pid {
    my ($pid, $sig, $timeout) = @_;
    kill $sig // SIGTERM, $pid;
    my $deadline = time + ($timeout // 10);
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            return $? & 127 ? -($? & 127) : $? >> 8;
        }
        sleep 0.02;
    }
    kill SIGKILL, $pid;
    waitpid($pid, 0);
    return -1;
}

1;
