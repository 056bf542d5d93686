package Test::Nginx::Dynamo::Compat;

# What both harnesses share: finding the real Test::Nginx::Socket, the nginx
# binary, and the two adjustments Debian's nginx build needs (see
# t/README.md, "Debian's nginx").

use strict;
use warnings;

use Cwd ();
use File::Basename ();
use File::Spec ();

our @TempPaths = qw(client_body proxy fastcgi uwsgi scgi);

sub lib_dir {
    my $dir = File::Basename::dirname(__FILE__);
    return Cwd::abs_path(File::Spec->catdir($dir, '..', '..', '..'));
}

sub bin_dir {
    return Cwd::abs_path(File::Spec->catdir(lib_dir(), '..', 'bin'));
}

sub find_in_path {
    my ($cmd) = @_;

    if ($cmd =~ m{/}) {
        return -f $cmd && -x _ ? $cmd : undef;
    }

    for my $dir (split /:/, $ENV{PATH} // '') {
        next if $dir eq '';
        my $file = File::Spec->catfile($dir, $cmd);
        return $file if -f $file && -x _;
    }

    return undef;
}

sub nginx_binary {
    return $ENV{TEST_NGINX_BINARY} if $ENV{TEST_NGINX_BINARY};
    return 'nginx' if find_in_path('nginx');
    return '/usr/sbin/nginx' if -x '/usr/sbin/nginx';
    return 'nginx';
}

sub nginx_build_info {
    my ($bin) = @_;

    my $path = find_in_path($bin) or return;
    my $out = `'$path' -V 2>&1`;
    return if $? != 0 || !defined $out;
    return $out;
}

sub canon_version {
    my ($info) = @_;

    return undef if !defined $info
                    || $info !~ m{(?:nginx|openresty)[^/]*/(\d+)\.(\d+)\.(\d+)};
    return sprintf '%d.%03d%03d', $1, $2, $3;
}

# nginx >= 1.19.5 takes "-e file" for the log it writes before reading
# nginx.conf, i.e. where "nginx -t"-style configuration errors go
sub has_error_log_option {
    my ($info) = @_;

    my $ver = canon_version($info);
    return defined $ver && $ver >= 1.019005;
}

# Debian builds nginx with --error-log-path=stderr, so configuration errors
# never reach t/servroot/logs/error.log as they do with a stock build
sub logs_startup_to_stderr {
    my ($info) = @_;

    return defined $info && $info =~ /--error-log-path=stderr(?:\s|$)/;
}

# temp paths under the server root unless the test sets them itself: a
# packaged nginx has absolute defaults (/var/lib/nginx/...)
sub http_config_filter {
    my ($http_config) = @_;

    my $root = $ENV{TEST_NGINX_SERVER_ROOT};
    my $out = '';

    $http_config //= '';

    for my $t (@TempPaths) {
        next if $http_config =~ /\b${t}_temp_path\b/;
        $out .= "    ${t}_temp_path $root/${t}_temp;\n";
    }

    return $out . $http_config;
}

sub find_real_socket {
    my $ours = lib_dir();

    for my $dir (@INC) {
        next if ref $dir;

        my $abs = Cwd::abs_path($dir);
        next if !defined $abs || $abs eq $ours;

        my $file = File::Spec->catfile($dir, 'Test', 'Nginx', 'Socket.pm');
        return $file if -f $file;
    }

    return undef;
}

# Before the real harness reads TEST_NGINX_BINARY: point it at a wrapper
# that adds "-e logs/error.log" (relative to the -p prefix) when needed.
sub prepare_real {
    my $bin = nginx_binary();
    my $info = nginx_build_info($bin);

    return if !logs_startup_to_stderr($info) || !has_error_log_option($info);

    $ENV{DYNAMO_NGINX_BINARY} = $bin;
    $ENV{TEST_NGINX_BINARY} = File::Spec->catfile(bin_dir(), 'nginx-errlog');
}

sub load_real {
    my ($file) = @_;

    prepare_real();

    my $ok = do $file;
    die "cannot load $file: ", ($@ || $!), "\n" if !$ok;

    $INC{'Test/Nginx/Socket.pm'} = $file;

    if (defined &Test::Nginx::Socket::set_http_config_filter) {
        Test::Nginx::Socket::set_http_config_filter(
            \&Test::Nginx::Dynamo::Compat::http_config_filter);
    }

    return 1;
}

1;
