package Test::Nginx::Socket;

# Fallback shim.  "prove -I t/lib" puts t/lib first in @INC, so this file is
# what "use Test::Nginx::Socket" finds.  It loads openresty's
# Test::Nginx::Socket from the rest of @INC when that is installed, and
# ngx_dynamo's compatible harness (Test::Nginx::Dynamo::Harness) otherwise.
# DYNAMO_TEST_HARNESS=real|fallback forces one.  See t/README.md.

use strict;
use warnings;

use Test::Nginx::Dynamo::Compat ();

our $Implementation;

my @SharedVars = qw(ServRoot ServerPort ServerPortForClient ServerAddr
                    ServerName PidFile ConfFile NginxVersion RepeatEach
                    NoNginxManager NoLongString);

sub _use_fallback {
    require Test::Nginx::Dynamo::Harness;

    no strict 'refs';

    @Test::Nginx::Socket::ISA = ('Test::Nginx::Dynamo::Harness');

    for my $var (@SharedVars) {
        *{"Test::Nginx::Socket::$var"} = \${"Test::Nginx::Dynamo::Setup::$var"};
    }

    $Implementation = 'fallback';
}

{
    my $want = $ENV{DYNAMO_TEST_HARNESS} || 'auto';
    my $real = $want eq 'fallback'
               ? undef : Test::Nginx::Dynamo::Compat::find_real_socket();

    if ($want !~ /^(?:auto|real|fallback)$/) {
        die "DYNAMO_TEST_HARNESS must be auto, real or fallback\n";
    }

    if ($want eq 'real' && !defined $real) {
        die "DYNAMO_TEST_HARNESS=real but Test::Nginx::Socket is not "
            . "installed outside t/lib\n";
    }

    if (defined $real) {
        Test::Nginx::Dynamo::Compat::load_real($real);
        $Implementation = 'real';

    } else {
        _use_fallback();
    }
}

1;
