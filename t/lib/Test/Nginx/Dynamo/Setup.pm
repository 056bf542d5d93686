package Test::Nginx::Dynamo::Setup;

# Settings of the fallback harness: environment, server root, port, and the
# functions .t files call before run_tests().  Names and defaults follow
# Test::Nginx::Util.

use strict;
use warnings;

use Carp qw(croak);
use File::Spec ();

use Test::Dynamo::Port qw(free_port);
use Test::Nginx::Dynamo::Compat ();

use base 'Exporter';

our @EXPORT = qw(
    env_to_nginx repeat_each config_preamble worker_connections
    master_process_enabled no_long_string workers master_on master_off
    log_level no_shuffle no_root_location use_hup server_name server_addr
    server_root html_dir server_port server_port_for_client timeout
    no_nginx_manager check_accum_error_log add_block_preprocessor
    add_cleanup_handler add_response_body_check
);

our @VARS = qw(
    $Verbose $NginxBinary $LoadModules $UseValgrind $NoShuffle
    $NoNginxManager $Timeout $Sleep $LogLevel $MasterProcessEnabled
    $DaemonEnabled $EventType $PostponeOutput $ReusePort $CheckAccumErrLog
    $Randomize $ForceRestartOnTest $ServerAddr $ServerName $ServerPort
    $ServerPortForClient $ServRoot $LogDir $ErrLogFile $AccLogFile $HtmlDir
    $ConfDir $ConfFile $PidFile $RepeatEach $Workers $WorkerConnections
    $NoRootLocation $NoLongString $ConfigPreamble $NginxVersion $NginxInfo
    @EnvToNginx @BlockPreprocessors @CleanupHandlers @ResponseBodyChecks
);

our @EXPORT_OK = (@VARS, qw(sleep_time verbose free_port));
our %EXPORT_TAGS = (vars => \@VARS);

our $Verbose        = $ENV{TEST_NGINX_VERBOSE};
our $NginxBinary    = Test::Nginx::Dynamo::Compat::nginx_binary();
our $LoadModules    = $ENV{TEST_NGINX_LOAD_MODULES};
our $UseValgrind    = $ENV{TEST_NGINX_USE_VALGRIND};
our $NoShuffle      = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $NoNginxManager = $ENV{TEST_NGINX_NO_NGINX_MANAGER} || 0;
our $Timeout        = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $Sleep          = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $LogLevel       = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $DaemonEnabled  = $UseValgrind ? 'off' : 'on';
our $EventType      = $ENV{TEST_NGINX_EVENT_TYPE};
our $PostponeOutput = $ENV{TEST_NGINX_POSTPONE_OUTPUT};
our $ReusePort      = $ENV{TEST_NGINX_REUSE_PORT};
our $CheckAccumErrLog = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $Randomize      = $ENV{TEST_NGINX_RANDOMIZE};
our $ForceRestartOnTest = $ENV{TEST_NGINX_FORCE_RESTART_ON_TEST} // 1;

our $ServerAddr     = '127.0.0.1';
our $ServerName     = 'localhost';
our $ServerPort     = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT}
                      || free_port();
our $ServerPortForClient = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;

our $ServRoot = $Randomize
    ? File::Spec->rel2abs("t/servroot_$ServerPort")
    : ($ENV{TEST_NGINX_SERVROOT} || File::Spec->rel2abs('t/servroot'));

$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;

our $LogDir     = File::Spec->catfile($ServRoot, 'logs');
our $ErrLogFile = File::Spec->catfile($LogDir, 'error.log');
our $AccLogFile = File::Spec->catfile($LogDir, 'access.log');
our $HtmlDir    = File::Spec->catfile($ServRoot, 'html');
our $ConfDir    = File::Spec->catfile($ServRoot, 'conf');
our $ConfFile   = File::Spec->catfile($ConfDir, 'nginx.conf');
our $PidFile    = File::Spec->catfile($LogDir, 'nginx.pid');

our $RepeatEach        = 1;
our $Workers           = 1;
our $WorkerConnections = 64;
our $NoRootLocation    = 0;
our $NoLongString;
our $ConfigPreamble    = '';
our $NginxVersion;
our $NginxInfo;

our (@EnvToNginx, @BlockPreprocessors, @CleanupHandlers,
     @ResponseBodyChecks);

if ($ENV{TEST_NGINX_USE_HUP}) {
    warn "WARNING: TEST_NGINX_USE_HUP is not supported by the fallback "
         . "harness; restarting nginx for every block\n";
}

for my $mode (qw(CHECK_LEAK BENCHMARK USE_STAP USE_HTTP2 USE_HTTP3 USE_RR)) {
    if ($ENV{"TEST_NGINX_$mode"}) {
        die "TEST_NGINX_$mode is not supported by the fallback harness "
            . "(install openresty's Test::Nginx)\n";
    }
}

sub _accessor {
    my ($ref, @args) = @_;

    $$ref = shift @args if @args;
    return $$ref;
}

sub repeat_each (@)            { _accessor(\$RepeatEach, @_) }
sub workers (@)                { _accessor(\$Workers, @_) }
sub worker_connections (@)     { _accessor(\$WorkerConnections, @_) }
sub log_level (@)              { _accessor(\$LogLevel, @_) }
sub timeout (@)                { _accessor(\$Timeout, @_) }
sub server_name (@)            { _accessor(\$ServerName, @_) }
sub server_addr (@)            { _accessor(\$ServerAddr, @_) }
sub server_port (@)            { _accessor(\$ServerPort, @_) }
sub server_port_for_client (@) { _accessor(\$ServerPortForClient, @_) }
sub config_preamble ($)        { $ConfigPreamble = shift }
sub no_long_string ()          { $NoLongString = 1 }
sub no_shuffle ()              { $NoShuffle = 1 }
sub no_root_location ()        { $NoRootLocation = 1 }
sub no_nginx_manager ()        { $NoNginxManager = 1 }
sub check_accum_error_log ()   { $CheckAccumErrLog = 1 }
sub master_on ()               { $MasterProcessEnabled = 'on' }
sub master_off ()              { $MasterProcessEnabled = 'off' }
sub server_root ()             { $ServRoot }
sub html_dir ()                { $HtmlDir }
sub sleep_time                 { $Sleep }
sub verbose                    { $Verbose }

sub master_process_enabled (@) {
    if (@_) {
        $MasterProcessEnabled = shift() ? 'on' : 'off';
    }

    return $MasterProcessEnabled;
}

sub use_hup () {
    warn "WARNING: use_hup() is not supported by the fallback harness; "
         . "restarting nginx for every block\n";
}

sub env_to_nginx (@) {
    croak "env_to_nginx: no arguments specified" if !@_;

    for my $v (@_) {
        croak "env_to_nginx: bad argument value: $v\n"
            if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler ($)    { unshift @CleanupHandlers, shift }
sub add_response_body_check ($) { push @ResponseBodyChecks, shift }

1;
