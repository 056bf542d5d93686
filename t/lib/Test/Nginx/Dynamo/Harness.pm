package Test::Nginx::Dynamo::Harness;

# ngx_dynamo's fallback for openresty's Test::Nginx::Socket, used only when
# that is not installed (see Test/Nginx/Socket.pm and t/README.md).  A
# Test::Base subclass with the same exports, sections, environment
# variables and test counting; per block it (re)starts nginx with a
# generated nginx.conf, sends the request(s) repeat_each() times and checks
# the response(s) and error.log.

use strict;
use warnings;

use List::Util qw(shuffle);
use Time::HiRes qw(sleep);
use Test::Base -base;

use Test::Nginx::Dynamo::Setup;
use Test::Nginx::Dynamo::Setup qw(:vars);
use Test::Nginx::Dynamo::Server;
use Test::Nginx::Dynamo::Client;
use Test::Nginx::Dynamo::Check;

our @EXPORT = (@Test::Nginx::Dynamo::Setup::EXPORT, qw(
    is_str run_tests run_test bail_out
));

our $PrevConfig;
our $PrevBlock;

my %Unsupported = map { $_ => 1 } qw(
    tcp_listen udp_listen stap http2 http3 curl_error
);

sub _check_supported {
    my ($block) = @_;

    for my $section (sort keys %Unsupported) {
        next if !defined $block->$section;
        bail_out($block->name . " - --- $section is not supported by the "
                 . "fallback harness (install openresty's Test::Nginx)");
    }
}

sub run_tests () {
    nginx_version();

    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;

    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks if !$NoShuffle;

    for my $block (@blocks) {
        $_->($block) for @BlockPreprocessors;

        $block->set_value('name', $0 . ' ' . $block->name);
        run_test($block);

        $PrevBlock = $block;
    }

    cleanup();
}

sub _check_prev_shutdown_log {
    return if !defined $PrevBlock
              || !defined $PrevBlock->shutdown_error_log;

    check_shutdown_error_log($PrevBlock, $ENV{TEST_NGINX_NO_CLEAN} ? 1 : 0);
}

# skip_eval / skip_nginx / todo: (tests to skip, skip?, reason, todo?)
sub _skip_spec {
    my ($block) = @_;

    my $name = $block->name;

    if (defined(my $spec = $block->skip_eval)) {
        $spec =~ /^\s*(\d+)\s*:\s*(.*)/s
            or bail_out("$name - Invalid --- skip_eval spec: $spec");
        my ($n, $code) = ($1, $2);
        my $skip = eval $code;
        bail_out("$name - skip_eval - failed to eval the Perl code "
                 . "\"$code\": $@")
            if $@;
        return ($n, $skip, 'skip_eval', 0);
    }

    if (defined(my $spec = $block->skip_nginx)) {
        $spec =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)
                  (?:\s*:\s*(.*))?\s*$/x
            or bail_out("$name - Invalid --- skip_nginx spec: $spec");
        my ($n, $op, $reason) = ($1, $2, $6);
        my $ver = sprintf '%d.%03d%03d', $3, $4, $5;
        my $skip = eval "$NginxVersion $op $ver";
        return ($n, $skip, $reason || "nginx version $op $3.$4.$5", 0);
    }

    if (defined(my $spec = $block->todo)) {
        $spec =~ /^\s*(\d+)\s*:\s*(.*)/s
            or bail_out("$name - Invalid --- todo spec: $spec");
        return ($1, 0, $2, 1);
    }

    return (undef, 0, undef, 0);
}

sub _missing_directive {
    open my $in, '<', $ErrLogFile or return undef;

    while (my $line = <$in>) {
        return $1 if $line =~ /\[emerg\] \S+?: unknown directive "([^"]+)"/;
    }

    return undef;
}

sub _startup_errors {
    my $lines = error_log_data();

    return join '', grep { /\[(?:emerg|alert|crit)\]/ } @$lines;
}

sub _bind_failed {
    open my $in, '<', $ErrLogFile or return 0;

    while (my $line = <$in>) {
        return 1 if $line =~ /\[emerg\].*bind\(\).*failed/;
    }

    return 0;
}

sub _must_die_checks {
    my ($block, $must_die, $status, $i) = @_;

    my $name = $block->name;
    my $exit_code = $status >> 8;

    if ($status == -1 || $exit_code == 127) {
        Test::More::fail("$name - failed to execute the nginx command line");
    } elsif ($status & 128) {
        Test::More::fail("$name - nginx core dumped");
    } elsif ($must_die =~ /^\s*\d+\s*$/) {
        Test::More::is($must_die, $exit_code,
                       "$name - die with the expected exit code");
    } else {
        Test::More::isnt($status, 0, "$name - die as expected");
    }

    check_error_log($block, undef, 0, $i, 0);

    return if $status != 0;

    warn "WARNING: $name - nginx must die but it does not; killing it "
         . "(req $i)\n";
    for (1 .. 15) {
        last if -f $PidFile;
        sleep $Sleep;
    }
    stop_nginx($name);
}

sub _run_must_die {
    my ($block, $must_die) = @_;

    $Test::Nginx::Dynamo::Server::ErrLogFilePos = 0;

    for my $i (0 .. $RepeatEach - 1) {
        _must_die_checks($block, $must_die, start_nginx(), $i);
    }
}

# starts nginx; returns the dry-run reason when a directive is missing and
# TEST_NGINX_IGNORE_MISSING_DIRECTIVES is set
sub _start {
    my ($block) = @_;

    my $name = $block->name;

    if ($UseValgrind) {
        warn "$name\n";
        start_nginx_valgrind($name);
        return 0;
    }

    my ($waited, $i) = (0, 0);

    while (1) {
        my $status = start_nginx();
        last if $status == 0;

        if ($ENV{TEST_NGINX_IGNORE_MISSING_DIRECTIVES}
            and my $directive = _missing_directive())
        {
            return "the lack of directive $directive";
        }

        # a previous nginx may still hold the port; anything else is fatal
        if (!_bind_failed() || $waited >= 30) {
            bail_out("$name - Cannot start nginx using command "
                     . "\"$NginxBinary -p $ServRoot/ -c $ConfFile\" "
                     . "(status code $status):\n" . _startup_errors());
        }

        my $delay = 0.1 * ++$i;
        $delay = 1 if $delay > 1;
        sleep $delay;
        $waited += $delay;
    }

    sleep $Sleep;
    return 0;
}

sub _prepare_server {
    my ($block, $config, $rand_ports) = @_;

    stop_nginx($block->name);
    _check_prev_shutdown_log();

    setup_server_root();
    write_user_files($block, $rand_ports);
    write_config_file($block, $config, $rand_ports);

    bail_out($block->name . " - Cannot find the nginx executable in the "
             . "PATH environment")
        if !can_run($NginxBinary);
}

sub _nginx_running {
    return -f $PidFile && is_running(read_pid('check'));
}

sub _run_requests {
    my ($block, $dry_run, $rand_ports, $skip) = @_;

    my ($n, $should_skip, $reason, $todo) = @$skip;
    my $name = $block->name;

    if ($block->init) {
        eval $block->init;
        bail_out("$name - init failed: $@") if $@;
    }

    $Test::Nginx::Dynamo::Server::ErrLogFilePos = 0;

    for my $i (1 .. $RepeatEach) {
        write_user_files($block, $rand_ports) if $i > 1;

        if ($should_skip && defined $n) {
            SKIP: {
                Test::More::skip("$name - $reason", $n);
                run_test_helper($block, $dry_run, $i - 1);
            }

        } elsif ($todo) {
            TODO: {
                Test::More::todo_skip("$name - $reason", $n);
                run_test_helper($block, $dry_run, $i - 1);
            }

        } else {
            run_test_helper($block, $dry_run, $i - 1);
        }
    }
}

sub _append_error_log {
    my ($name) = @_;

    my $total = $ENV{TEST_NGINX_ERROR_LOG} or return;
    return if !-s $ErrLogFile;

    open my $out, '>>', $total
        or bail_out("Failed to append test case title to $total: $!\n");
    open my $in, '<', $ErrLogFile or return;
    print $out "\n=== $0 $name\n", <$in>;
    close $in;
    close $out;
}

sub _finish_valgrind {
    my ($block) = @_;

    my $name = $block->name;
    my ($report, $errors) = stop_nginx_valgrind($name);

    Test::More::diag($report) if length $report;

    if ($errors) {
        Test::More->builder->no_ending(1);
        Test::More::fail("$name - valgrind reported errors (see above)");
    }
}

sub run_test ($) {
    my ($block) = @_;

    return if defined $block->SKIP;

    _check_supported($block);

    my $name = $block->name;
    my $rand_ports = {};
    my $config = expand_env_in_text(scalar($block->config), $name,
                                    $rand_ports);
    my $must_die = $block->must_die;

    # not local(): other modules hold aliases of these variables
    my $restore = Test::Nginx::Dynamo::Harness::Restore->new(
        \$LogLevel, \$UseValgrind, \$DaemonEnabled);

    $LogLevel = $block->log_level || $LogLevel;

    if (defined $must_die) {
        ($UseValgrind, $DaemonEnabled) = (undef, 'on');
    }

    my $restart = 1;

    if (!defined $config) {
        bail_out("$name - No '--- config' section specified and could not "
                 . "get previous one. Use TEST_NGINX_NO_NGINX_MANAGER ?")
            if !$NoNginxManager && !defined $PrevConfig;

        # like Test::Nginx: keep the running server (restart if none)
        $config = $PrevConfig;
        $restart = !$NoNginxManager && !_nginx_running();

    } elsif ($NoNginxManager) {
        Test::More::diag("NO_NGINX_MANAGER activated: config for $name "
                         . "ignored");
        $restart = 0;
    }

    my @skip = _skip_spec($block);
    my $dry_run = 0;

    if ($restart && !$skip[1]) {
        $PrevConfig = $config;
        _prepare_server($block, $config, $rand_ports);

        if (defined $must_die) {
            _run_must_die($block, $must_die);
            return;
        }

        $dry_run = _start($block);
    }

    _run_requests($block, $dry_run, $rand_ports, \@skip);
    _append_error_log($name);
    _finish_valgrind($block) if $UseValgrind && $restart;
}

sub _response_for {
    my ($block, $req, $dry_run, $timeout) = @_;

    return ("200 OK HTTP/1.0\r\nContent-Length: 0\r\n\r\n", 0) if $dry_run;

    return send_request($req, scalar($block->raw_request_middle_delay),
                        $timeout, $block);
}

sub _check_response {
    my ($block, $raw, $head_req, $dry_run, $idx, $rep, $need_array) = @_;

    my $name = $block->name;
    my ($res, $raw_headers, $left);

    if (defined $block->http09) {
        require HTTP::Response;
        $res = HTTP::Response->new(200, 'OK', [], $raw);
        $raw_headers = '';
    } else {
        ($res, $raw_headers, $left) = parse_response($name, $raw, $head_req);
    }

    check_error_code($block, $res, $dry_run, $idx, $need_array);
    check_raw_response_headers($block, $raw_headers, $dry_run, $idx,
                               $need_array);
    check_response_headers($block, $res, $raw_headers, $dry_run, $idx,
                           $need_array);
    transform_response_body($block, $res, $idx);
    check_response_body($block, $res, $dry_run, $idx, $rep, $need_array);

    return $left;
}

sub _between_requests {
    my ($block, $dry_run, $rep, $need_array) = @_;

    sleep $block->wait if $block->wait;

    check_error_log($block, undef, $dry_run, $rep, $need_array);
    check_access_log($block, $dry_run, $rep)
        if !defined $block->ignore_response;
}

sub run_test_helper ($$$) {
    my ($block, $dry_run, $rep) = @_;

    my $name = $block->name;
    my $reqs = requests_from_block($block);
    my $timeout = _parse_time(scalar($block->timeout)) // $Timeout;
    my $pipelined = $block->pipelined_requests;
    my $need_array = $pipelined ? 1 : @$reqs > 1;
    my $n = $pipelined ? @$pipelined : 1;
    my $idx = 0;

    for my $r (0 .. $#$reqs) {
        my ($raw, $head_req) = _response_for($block, $reqs->[$r], $dry_run,
                                             $timeout);
        $raw //= '';

        for my $k (1 .. $n) {
            warn "!!! resp: [$raw]" if $Verbose;

            if (!defined $block->ignore_response) {
                my $left = _check_response($block, $raw, $head_req, $dry_run,
                                           $idx, $rep, $need_array);
                $raw = $left // '';

                if ($n == 1 && defined $left && length $left) {
                    (my $l = $left) =~ s/([\0-\037\200-\377])/
                        sprintf('\x{%02x}', ord $1)/eg;
                    warn "WARNING: $name - unexpected extra bytes after "
                         . "last chunk in response: \"$l\"\n";
                }
            }

            my $last = $k == $n && $r == $#$reqs;
            _between_requests($block, $dry_run, $rep, $need_array)
                if !$last;

            $idx++;
        }
    }

    sleep $block->wait if $block->wait;

    check_error_log($block, undef, $dry_run, $rep, $need_array);
    check_access_log($block, $dry_run, $rep)
        if !defined $block->ignore_response;
}

sub _parse_time {
    my ($tm) = @_;

    return undef if !defined $tm;

    if ($tm =~ s/([^_a-zA-Z])ms$/$1/) {
        return $tm / 1000;
    }

    $tm =~ s/([^_a-zA-Z])s$/$1/;
    return $tm;
}

package Test::Nginx::Dynamo::Harness::Restore;

# restores the values of scalars when it goes out of scope

sub new {
    my ($class, @refs) = @_;

    return bless [ map { [$_, $$_] } @refs ], $class;
}

sub DESTROY {
    my ($self) = @_;

    ${ $_->[0] } = $_->[1] for @$self;
}

package Test::Nginx::Dynamo::Harness;

my $OrigPid = $$;

for my $sig (qw(INT TERM HUP)) {
    $SIG{$sig} = sub { exit 130 } if !$SIG{$sig} || $SIG{$sig} eq 'DEFAULT';
}

END {
    if ($$ == $OrigPid && !$Test::Nginx::Dynamo::Server::InSubprocess) {
        local $?;
        shutdown_all();
        _check_prev_shutdown_log();
    }
}

1;
