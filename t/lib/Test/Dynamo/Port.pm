package Test::Dynamo::Port;

# A free TCP port on 127.0.0.1, for the servers a test file starts.
#
#     use Test::Dynamo::Port qw(free_port);
#     my $port = free_port();
#
# Shared by Test::Dynamo::Redis (used under either harness) and the
# fallback harness's Test::Nginx::Dynamo::Setup; it depends on neither.

use strict;
use warnings;

use Carp qw(croak);
use IO::Socket::INET ();

use base 'Exporter';

our @EXPORT_OK = qw(free_port);

# The kernel picks the port.  The socket is closed before returning, so
# another process may take the port before the caller binds it.
sub free_port {
    my $sock = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1',
        LocalPort => 0,
        Proto     => 'tcp',
        Listen    => 1,
    ) or croak "cannot find a free port: $!";

    my $port = $sock->sockport;
    close $sock;

    return $port;
}

1;
