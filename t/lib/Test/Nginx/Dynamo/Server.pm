package Test::Nginx::Dynamo::Server;

# The nginx under test: server root, generated nginx.conf, starting and
# stopping (plain, or under valgrind), and reading its logs.

use strict;
use warnings;

use File::Path qw(make_path remove_tree);
use POSIX qw(SIGQUIT SIGKILL SIGTERM WNOHANG);
use Time::HiRes qw(sleep);
use Test::More ();

use Test::Nginx::Dynamo::Compat ();
use Test::Nginx::Dynamo::Setup qw(:vars);

use base 'Exporter';

our @EXPORT = qw(
    bail_out cleanup is_running kill_process stop_nginx setup_server_root
    write_user_files write_config_file expand_env_in_text start_nginx
    start_nginx_valgrind stop_nginx_valgrind nginx_version error_log_data
    access_log_data read_pid can_run shutdown_all
);

our $ErrLogFilePos = 0;
our $ChildPid;
our $InSubprocess;

my $ValgrindErrorCode = 99;

sub bail_out (@) {
    cleanup();
    Test::More::BAIL_OUT(@_);
}

sub cleanup {
    $_->() for @CleanupHandlers;

    if (defined $ChildPid) {
        kill_process($ChildPid, 1, 'cleanup');
        undef $ChildPid;
    }
}

sub is_running {
    my ($pid) = @_;

    return 0 if !defined $pid || $pid !~ /^\d+$/ || !kill(0, $pid);

    # an exited daemon stays a zombie until init reaps it, which some
    # inits (containers, VMs) do only every second or so
    if (open my $in, '<', "/proc/$pid/stat") {
        my $stat = <$in> // '';
        close $in;
        return 0 if $stat =~ /^\d+ \(.*\) Z/s;
    }

    return 1;
}

sub can_run {
    my ($cmd) = @_;

    return Test::Nginx::Dynamo::Compat::find_in_path($cmd);
}

sub read_pid {
    my ($name) = @_;

    open my $in, '<', $PidFile
        or bail_out("$name - Failed to open the pid file $PidFile "
                    . "for reading: $!");
    my $pid = do { local $/; <$in> } // '';
    close $in;

    $pid =~ s/\s+//g;
    return $pid;
}

sub _reap {
    my ($pid) = @_;

    my $rc = waitpid($pid, WNOHANG);
    undef $ChildPid if $rc > 0 && defined $ChildPid && $ChildPid == $pid;
    return $rc;
}

sub _wait_gone {
    my ($pid, $secs) = @_;

    while ($secs > 0 && is_running($pid)) {
        last if _reap($pid) > 0;
        sleep 0.05;
        $secs -= 0.05;
    }

    return !is_running($pid);
}

sub _kill_hard {
    my ($pid) = @_;

    if (getpgrp($pid) == $pid) {
        kill SIGKILL, -$pid;
    } else {
        kill SIGKILL, $pid;
    }

    _wait_gone($pid, 5);
}

# QUIT (graceful), wait up to the client timeout, then TERM, then KILL
sub kill_process {
    my ($pid, $wait, $name) = @_;

    return if !is_running($pid);

    if ($wait) {
        kill SIGQUIT, $pid;
        return if _wait_gone($pid, $Timeout);
        warn "$name - timeout when waiting for the process $pid to exit\n";
    }

    for my $i (1 .. 20) {
        return if !is_running($pid);
        kill SIGTERM, $pid;
        return if _wait_gone($pid, 0.1 * $i);
    }

    warn "$name - WARNING: killing the child process $pid with force...\n";
    _kill_hard($pid);
}

sub stop_nginx {
    my ($name) = @_;

    return if !-f $PidFile;

    my $pid = read_pid($name);

    if ($pid ne '' && is_running($pid)) {
        kill_process($pid, 1, $name);
        return;
    }

    unlink $PidFile;
}

sub setup_server_root {
    if (-d $ServRoot) {
        remove_tree($ConfDir, glob("$ServRoot/*_cache"),
                    glob("$ServRoot/*_temp"), $HtmlDir, $LogDir);
        rmdir $ServRoot
            or bail_out("Can't remove $ServRoot (not empty?): $!");
    }

    for my $dir ($ServRoot, $LogDir, $HtmlDir, $ConfDir) {
        mkdir $dir or bail_out("Failed to do mkdir $dir: $!");
    }

    _write_file("$HtmlDir/index.html",
                '<html><head><title>It works!</title></head>'
                . '<body>It works!</body></html>');
}

sub _write_file {
    my ($path, $body) = @_;

    open my $out, '>', $path
        or bail_out("Can't open $path for writing: $!");
    binmode $out;
    print $out $body;
    close $out;
}

sub _parse_user_files {
    my ($raw) = @_;

    my (@files, $fname, $body, $date);

    for my $line (split /^/, $raw) {
        if ($line =~ />>> (\S+)(?:\s+(.+))?/) {
            push @files, [$fname, $body, $date] if defined $fname;
            ($fname, $date, $body) = ($1, $2, undef);
            next;
        }

        $body .= $line;
    }

    push @files, [$fname, $body, $date] if defined $fname;

    return \@files;
}

sub write_user_files {
    my ($block, $rand_ports) = @_;

    my $name = $block->name;
    my $files = $block->user_files or return;

    $files = _parse_user_files($files) if !ref $files;

    if (ref $files ne 'ARRAY') {
        bail_out("$name - wrong value type: " . ref($files)
                 . ", only scalar or ARRAY are accepted");
    }

    for my $file (@$files) {
        my ($fname, $body, $date) = @$file;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";

        if ($path =~ m{(.*)/} && !-d $1) {
            make_path($1) or bail_out("$name - Cannot create directory $1");
        }

        _write_file($path,
                    expand_env_in_text($body // '', $name, $rand_ports));

        if ($date) {
            local $ENV{TZ} = 'GMT';
            system('touch', '-t', $date, $path) == 0
                or bail_out("Failed to set the time of $path to $date");
        }
    }
}

sub _rand_port {
    my ($used) = @_;

    for (1 .. 1000) {
        my $port = Test::Nginx::Dynamo::Setup::free_port();
        return $port if !$used->{$port};
    }

    return undef;
}

sub _expand_var {
    my ($var, $name, $rand_ports, $used) = @_;

    if ($var =~ /^TEST_NGINX_RAND_PORT_\d+$/) {
        if (!defined $rand_ports->{$var}) {
            my $port = _rand_port($used)
                // bail_out("$name - Cannot find an available listening "
                            . "port number for $var.\n");
            $rand_ports->{$var} = $port;
            $used->{$port} = 1;
        }

        return $rand_ports->{$var};
    }

    bail_out("$name - No environment $var defined.\n")
        if !defined $ENV{$var};

    return $ENV{$var};
}

sub expand_env_in_text {
    my ($text, $name, $rand_ports) = @_;

    return undef if !defined $text;

    my %used = ($ServerPort => 1, map { $_ => 1 } values %$rand_ports);

    $text =~ s/\$(TEST_NGINX_[_A-Z0-9]+)/
        _expand_var($1, $name, $rand_ports, \%used)/eg;

    return $text;
}

sub _main_config {
    my ($block, $rand_ports) = @_;

    my $main = $block->main_config // '';

    # after the block's main_config, as Test::Nginx::Util does it
    if ($LoadModules) {
        my @mods = grep { length } split /\s+/, $LoadModules;
        $main .= join ' ', map { "load_module $_;" } @mods;
    }

    return expand_env_in_text($main, scalar($block->name), $rand_ports);
}

sub _http_config {
    my ($block, $rand_ports) = @_;

    my $http = expand_env_in_text(scalar($block->http_config), $block->name,
                                  $rand_ports) // '';

    $http = Test::Nginx::Dynamo::Compat::http_config_filter($http);

    if (defined $PostponeOutput && $http !~ /\bpostpone_output\b/) {
        bail_out("Bad TEST_NGINX_POSTPONE_OUTPUT value: $PostponeOutput\n")
            if $PostponeOutput !~ /^\d+$/;
        $http .= "\n    postpone_output $PostponeOutput;\n";
    }

    return $http;
}

sub _preamble {
    my ($block) = @_;

    my $err_log = $block->error_log_file || $ErrLogFile;
    my $out = <<"_EOC_";
worker_processes  $Workers;
daemon $DaemonEnabled;
master_process $MasterProcessEnabled;
error_log $err_log $LogLevel;
pid       $PidFile;
env LD_PRELOAD;
env LD_LIBRARY_PATH;
env ASAN_OPTIONS;
_EOC_

    for my $v (@EnvToNginx) {
        $out .= "env " . ($v =~ /\s/ ? "'$v'" : $v) . ";\n";
    }

    return $out;
}

sub _server_config {
    my ($block, $config) = @_;

    my $server_name = $block->server_name // $ServerName;
    my $listen = $ServerPort . ($ReusePort ? ' reuseport' : '');
    my $root = $NoRootLocation ? '' : <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_

    return <<"_EOC_";
    server {
        listen          $listen;
        server_name     '$server_name';

        client_max_body_size 30M;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root    }
_EOC_
}

sub _events_config {
    my $use = $EventType ? "    use $EventType;\n" : '';
    my $user = $> == 0 ? "user root;\n" : '';

    return <<"_EOC_";
events {
    accept_mutex off;

    worker_connections  $WorkerConnections;
$use}

$user
_EOC_
}

sub write_config_file {
    my ($block, $config, $rand_ports) = @_;

    my $main = _main_config($block, $rand_ports);
    my $http = _http_config($block, $rand_ports);
    my $post = expand_env_in_text(scalar($block->post_main_config),
                                  $block->name, $rand_ports) // '';
    my $server = _server_config($block, $config // '');

    _write_file($ConfFile, _preamble($block) . <<"_EOC_" . _events_config());

$main

http {
    access_log $AccLogFile;

    default_type text/plain;
    keepalive_timeout  68;

$http

$server}

$post

_EOC_
}

sub nginx_version {
    $NginxInfo = Test::Nginx::Dynamo::Compat::nginx_build_info($NginxBinary);

    bail_out("Failed to get the version of the Nginx in PATH "
             . "($NginxBinary): is it installed?")
        if !defined $NginxInfo;

    $NginxVersion = Test::Nginx::Dynamo::Compat::canon_version($NginxInfo)
        // bail_out("Failed to parse the output of \"nginx -V\": $NginxInfo");

    return $NginxVersion;
}

sub _nginx_args {
    my @args = ('-p', "$ServRoot/", '-c', $ConfFile);

    # startup errors in error.log, as with a stock build's default
    push @args, '-e', $ErrLogFile
        if Test::Nginx::Dynamo::Compat::has_error_log_option($NginxInfo);

    return @args;
}

sub _spawn {
    my ($own_group, $stderr, @cmd) = @_;

    my $pid = fork;
    bail_out("fork() failed: $!") if !defined $pid;

    if ($pid == 0) {
        $InSubprocess = 1;
        setpgrp(0, 0) if $own_group;
        open STDOUT, '>', '/dev/null';
        open STDERR, '>>', $stderr if defined $stderr;
        { exec { $cmd[0] } @cmd; }
        warn "cannot exec $cmd[0]: $!\n";
        POSIX::_exit(127);
    }

    return $pid;
}

# runs nginx, which daemonizes; returns the exit status ($?).  What nginx
# prints to stderr before daemonizing is in error.log too (-e), so it goes
# to logs/stderr.log instead of cluttering prove's output.
sub start_nginx {
    my $stderr = Test::Nginx::Dynamo::Compat::has_error_log_option($NginxInfo)
                 ? "$LogDir/stderr.log" : undef;
    my $pid = _spawn(0, $stderr, $NginxBinary, _nginx_args());

    waitpid($pid, 0);
    return $?;
}

sub _valgrind_cmd {
    my @opts;

    if ($UseValgrind =~ /^\d+$/) {
        @opts = ('--num-callers=100', '-q', '--tool=memcheck',
                 '--leak-check=full', '--show-possibly-lost=no',
                 '--errors-for-leak-kinds=definite', '--gen-suppressions=all');
        push @opts, map { "--suppressions=$_" }
                    grep { -f } 'valgrind.suppress', 't/valgrind.suppress';

    } else {
        @opts = ('-q', split ' ', $UseValgrind);
    }

    return ('valgrind', @opts, "--error-exitcode=$ValgrindErrorCode",
            "--log-file=$LogDir/valgrind.%p.log", $NginxBinary,
            _nginx_args());
}

sub start_nginx_valgrind {
    my ($name) = @_;

    bail_out("$name - TEST_NGINX_USE_VALGRIND is set but valgrind is not "
             . "in PATH")
        if !can_run('valgrind');

    $ChildPid = _spawn(1, undef, _valgrind_cmd());
    sleep $Sleep;
}

sub _valgrind_report {
    my $report = '';

    for my $log (sort glob("$LogDir/valgrind.*.log")) {
        open my $in, '<', $log or next;
        local $/;
        my $text = <$in> // '';
        close $in;
        $report .= $text;
    }

    return $report;
}

# graceful stop of the nginx started under valgrind; returns the valgrind
# report and whether valgrind found errors
sub stop_nginx_valgrind {
    my ($name) = @_;

    my $pid = $ChildPid;
    return ('', 0) if !defined $pid;

    kill SIGQUIT, $pid;

    my $status;
    for (1 .. 1200) {
        my $rc = waitpid($pid, WNOHANG);
        if ($rc == $pid) {
            $status = $?;
            last;
        }
        last if $rc < 0;
        sleep 0.05;
    }

    if (!defined $status) {
        warn "$name - nginx under valgrind did not exit; killing it\n";
        _kill_hard($pid);
    }

    undef $ChildPid;
    unlink $PidFile;

    my $report = _valgrind_report();
    my $errors = (defined $status && ($status >> 8) == $ValgrindErrorCode)
                 || $report =~ /^==\d+== (?!Warning:)\S/m;

    return ($report, $errors ? 1 : 0);
}

sub _log_lines {
    my ($file, $seek) = @_;

    sleep $Sleep * 3;

    open my $in, '<', $file or return [];
    seek $in, $$seek, 0 if $seek && $$seek > 0;

    my @lines = <$in>;
    $$seek = tell($in) if $seek;
    close $in;

    return \@lines;
}

sub error_log_data {
    return _log_lines($ErrLogFile,
                      $CheckAccumErrLog ? undef : \$ErrLogFilePos);
}

sub access_log_data {
    return _log_lines($AccLogFile, undef);
}

# at exit: stop whatever the harness started (unless TEST_NGINX_NO_CLEAN)
sub shutdown_all {
    return if $InSubprocess;

    cleanup();

    if ($UseValgrind || !$ENV{TEST_NGINX_NO_CLEAN}) {
        stop_nginx('END') if -f $PidFile;
    }

    if ($Randomize && -d $ServRoot && $ServRoot =~ m{/t/servroot_\d+$}) {
        remove_tree($ServRoot);
    }
}

1;
