package Test::Dynamo::Gateway;

# nginx with ngx_dynamo_module in front of real dynamo-worker processes,
# for the t/2xx-*.t scenarios that Test::Nginx blocks cannot express
# (several workers, a worker killed mid-stream, client abort, reload
# during a stream, Redis restarted).
#
#     use Test::Dynamo::Gateway qw(:all);
#     my $w  = start_worker(cpu_worker_args());
#     my $gw = start_gateway(servers => ["127.0.0.1:$w->{port}"]);
#     my $r  = gw_post($gw, '/v1/completions', { model => 'stories260K',
#                      prompt => 'Once upon a time', max_tokens => 8 });
#     my $s  = sse_open($gw, '/v1/chat/completions', { ..., stream => 1 });
#     my $ev = sse_next($s);           # decoded JSON, '[DONE]', or undef
#     stop_gateway($gw);
#
# start_gateway writes a configuration under a temporary prefix (nginx
# -p PREFIX), starts the nginx of TEST_NGINX_BINARY (default: nginx in
# PATH, else /usr/sbin/nginx) with the module of TEST_NGINX_LOAD_MODULES
# (default: $DYNAMO_BUILD/modules/ngx_dynamo_module.so) and waits until it
# listens. The access log has one line per request in the "dynamo" format:
#     URI STATUS worker=$dynamo_worker overlap=$dynamo_overlap_blocks
#     prompt=... completion=... cached=...
# read back with access_log_entries. Everything started is stopped when
# the test file exits.

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use File::Path qw(make_path remove_tree);
use File::Spec ();
use File::Temp qw(tempdir);
use IO::Select ();
use IO::Socket::INET ();
use JSON::PP ();
use POSIX qw(WNOHANG SIGTERM SIGKILL SIGHUP SIGQUIT);
use Time::HiRes qw(sleep time);

use Test::Dynamo::Port qw(free_port);
use Test::Dynamo::Worker qw(start_worker stop_worker dynamo_build
                            read_file wait_until http_get);

use base 'Exporter';

our @EXPORT_OK = qw(start_gateway stop_gateway reload_gateway gateway_conf
                    nginx_workers gw_in_flight
                    nginx_bin module_path model_dir
                    gw_request gw_get gw_post json_decode json_encode
                    sse_open sse_next sse_close sse_collect sse_events
                    access_log_entries error_log_text
                    start_own_redis stop_own_redis kill_own_redis
                    cpu_worker_args mock_worker_args worker_metric
                    worker_metric_sum
                    wait_worker_idle detokenize tokenize
                    start_worker stop_worker read_file wait_until
                    http_get);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

my $Json = JSON::PP->new->canonical->allow_nonref;
my @Gateways;
my @Redis;
my $Owner = $$;

sub json_decode { $Json->decode($_[0]) }
sub json_encode { $Json->encode($_[0]) }

sub model_dir {
    return $ENV{TEST_NGINX_MODEL_DIR} || abs_path('models/stories260K');
}

sub nginx_bin {
    return $ENV{TEST_NGINX_BINARY} if $ENV{TEST_NGINX_BINARY}
                                      && $ENV{TEST_NGINX_BINARY} =~ m{/}
                                      && $ENV{TEST_NGINX_BINARY} !~ /errlog/;
    for my $dir (split(/:/, $ENV{PATH} // ''), '/usr/sbin') {
        next if $dir eq '';
        return "$dir/nginx" if -x "$dir/nginx" && !-d _;
    }
    croak "nginx not found (set TEST_NGINX_BINARY)";
}

sub module_path {
    my ($mod) = grep { /ngx_dynamo_module\.so$/ }
                split ' ', $ENV{TEST_NGINX_LOAD_MODULES} // '';
    return $mod // dynamo_build() . '/modules/ngx_dynamo_module.so';
}

# dynamo-worker arguments: the real forward pass on the embedded model
# (one thread: tests run next to each other), or the mock timing model.
sub cpu_worker_args {
    my (%o) = @_;
    return ('--engine', 'cpu', '--model', model_dir(), '--threads', '1',
            '--redis', $o{redis} // 'none', @{ $o{extra} // [] });
}

sub mock_worker_args {
    my (%o) = @_;
    return ('--engine', 'mock', '--model', model_dir(),
            '--mock-speedup', $o{speedup} // 1,
            '--redis', $o{redis} // 'none', @{ $o{extra} // [] });
}

# value of one dynamo_worker_* metric line ("name{labels}" exact), or undef
sub worker_metric {
    my ($port, $name) = @_;
    my ($st, $text) = http_get($port, '/metrics');
    return undef if ($st // 0) != 200;
    for my $l (split /\n/, $text) {
        next if $l =~ /^#/;
        my ($k, $v) = $l =~ /^(\S+) (\S+)$/ or next;
        return $v + 0 if $k eq $name || $k eq "dynamo_worker_$name";
    }
    return undef;
}

# sum of a worker's metric lines named $name (in full, e.g.
# dynamo_worker_prefill_requests_total) whose labels include every
# label => value of %want; 0 when none matches, undef when /metrics does
# not answer
sub worker_metric_sum {
    my ($port, $name, %want) = @_;
    my ($st, $text) = http_get($port, '/metrics');
    return undef if ($st // 0) != 200;
    my $sum = 0;
    for my $l (split /\n/, $text) {
        my ($n, $lab, $v) = $l =~ /^(\w+)(?:\{(.*)\})? (\S+)$/ or next;
        next if $n ne $name;
        my %l = ($lab // '') =~ /(\w+)="([^"]*)"/g;
        next if grep { ($l{$_} // '') ne $want{$_} } keys %want;
        $sum += $v;
    }
    return $sum;
}

sub wait_worker_idle {
    my ($port, $timeout) = @_;
    return wait_until(sub {
        defined(my $v = worker_metric($port, 'requests_in_flight')) or return;
        $v == 0;
    }, $timeout // 10);
}

sub _kv_tool {
    my ($cmd, $input, @args) = @_;
    my $bin = dynamo_build() . '/bin/dynamo-kv';
    -x $bin or croak "$bin missing";
    my $dir = tempdir(CLEANUP => 1);
    open my $f, '>', "$dir/in" or croak $!;
    print $f $input;
    close $f;
    my $out = `'$bin' $cmd @args < '$dir/in'`;
    croak "dynamo-kv $cmd failed" if $?;
    return $out;
}

sub detokenize {
    my ($ids) = @_;
    return _kv_tool('detokenize', join(' ', @$ids) . "\n", '--tokenizer',
                    model_dir(), '--skip-special');
}

sub tokenize {
    my ($text, %o) = @_;
    my $out = _kv_tool('tokenize', $text, '--tokenizer', model_dir(),
                       $o{special} ? () : '--no-special');
    return [ split ' ', $out ];
}

# ---- Redis on a fixed port, which can be killed and restarted ----------

sub start_own_redis {
    my ($port) = @_;
    $port //= free_port();
    my $dir = tempdir(CLEANUP => 1);
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/redis.out";
        open STDERR, '>&', \*STDOUT;
        { exec 'redis-server', '--port', $port, '--bind', '127.0.0.1',
             '--save', '', '--appendonly', 'no', '--dir', $dir; }
        POSIX::_exit(127);
    }
    my $r = { pid => $pid, port => $port, dir => $dir };
    my $ok = wait_until(sub {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Timeout => 1)
            or return;
        print $s "PING\r\n";
        my $l = <$s> // '';
        $l =~ /PONG/;
    }, 10);
    croak "redis-server on $port did not start" if !$ok;
    push @Redis, $r;
    return $r;
}

sub kill_own_redis {
    my ($r, $sig) = @_;
    return if !$r->{pid};
    kill $sig // SIGKILL, $r->{pid};
    waitpid($r->{pid}, 0);
    $r->{pid} = 0;
    @Redis = grep { $_ != $r } @Redis;
}

sub stop_own_redis { kill_own_redis($_[0], SIGTERM) }

# ---- nginx -------------------------------------------------------------

# Options: servers => [addr...], policy => 'kv ...' (dynamo_upstream's
# arguments), keepalive => N (0: none), redis => port, workers => N
# (worker_processes), http => extra http{} text, server => extra server{}
# text, location => extra text inside "location /", upstream => extra
# upstream{} text, models => full dynamo_model lines (default: the
# embedded model), zone => 0 to leave dynamo_zone out.
sub gateway_conf {
    my ($gw, %o) = @_;
    my $p = $gw->{prefix};
    my $mod = module_path();
    my $model = model_dir();
    my $servers = join '', map { "        server $_;\n" }
                  @{ $o{servers} // [] };
    my $policy = $o{policy} // 'kv';
    my $keepalive = $o{keepalive} // 16;
    my $models = $o{models}
        // "    dynamo_model name=stories260K path=$model;\n";
    my $redis = $o{redis} ? "    dynamo_redis 127.0.0.1:$o{redis}"
                            . " connect_timeout=200ms timeout=500ms;\n" : '';
    my $zone = ($o{zone} // 1) ? "    dynamo_zone dynamo 16m;\n" : '';
    my $ka = $keepalive ? "        keepalive $keepalive;\n" : '';
    my $log_format = $gw->{no_vars}
        ? "    log_format dynamo '\$uri \$status';"
        : "    log_format dynamo '\$uri \$status worker=\$dynamo_worker '\n"
          . "        'overlap=\$dynamo_overlap_blocks '\n"
          . "        'prompt=\$dynamo_prompt_tokens '\n"
          . "        'completion=\$dynamo_completion_tokens '\n"
          . "        'cached=\$dynamo_cached_tokens '\n"
          . "        'prefill=\$dynamo_prefill_worker';";
    my $temps = join '', map { "    ${_}_temp_path $p/${_}_temp;\n" }
                qw(client_body proxy fastcgi uwsgi scgi);

    return <<"_EOC_";
daemon on;
master_process on;
worker_processes $gw->{nworkers};
error_log $p/logs/error.log info;
pid $p/logs/nginx.pid;
load_module $mod;

events {
    worker_connections 1024;
}

http {
$temps
$log_format
    access_log $p/logs/access.log dynamo;

$models$redis$zone
    upstream workers {
        dynamo_upstream $policy;
$servers$ka@{[ $o{upstream} // '' ]}
    }

@{[ $o{http} // '' ]}
    server {
        listen 127.0.0.1:$gw->{port};
        server_name localhost;
@{[ $o{server} // '' ]}
        location / {
            dynamo_pass workers;
@{[ $o{location} // '' ]}
        }

        location = /metrics {
            dynamo_metrics;
        }
    }
}
_EOC_
}

sub _write_conf {
    my ($gw) = @_;
    my $text = gateway_conf($gw, %{ $gw->{opt} });
    open my $f, '>', "$gw->{prefix}/conf/nginx.conf" or croak $!;
    print $f $text;
    close $f;
}

sub _listening {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 0.5);
    return $s ? 1 : 0;
}

sub nginx_pid {
    my ($gw) = @_;
    my $pid = read_file("$gw->{prefix}/logs/nginx.pid");
    chomp $pid;
    return $pid =~ /^\d+$/ ? $pid : undef;
}

sub start_gateway {
    my (%o) = @_;
    my $root = $ENV{TEST_NGINX_SERVROOT}
               ? "$ENV{TEST_NGINX_SERVROOT}-gw" : undef;
    my $prefix;
    if ($root) {
        make_path($root);
        $prefix = tempdir('gwXXXXXX', DIR => $root, CLEANUP => 1);
    } else {
        $prefix = tempdir(CLEANUP => 1);
    }
    # nginx's worker processes run as another user when started as root:
    # they must reach the temp paths under the prefix
    chmod 0755, $prefix;
    make_path("$prefix/conf", "$prefix/logs");
    my $gw = { prefix => $prefix, port => $o{port} // free_port(),
               nworkers => $o{workers} // 1, opt => \%o };
    _write_conf($gw);

    my @cmd = (nginx_bin(), '-p', "$prefix/", '-c', "$prefix/conf/nginx.conf",
               '-e', "$prefix/logs/error.log");
    my $out = `@cmd 2>&1`;
    if ($? && $out =~ /unknown "dynamo_\w+" variable/) {
        # the gateway's variables are missing: run without them, so the
        # other checks still run; access_log_entries then has no worker=
        $gw->{no_vars} = 1;
        _write_conf($gw);
        $out = `@cmd 2>&1`;
    }
    if ($?) {
        croak "nginx failed to start:\n$out" . error_log_text($gw)
            if !$o{may_fail};
        $gw->{start_error} = $out . error_log_text($gw);
        return $gw;
    }
    push @Gateways, $gw;
    wait_until(sub { _listening($gw->{port}) }, 10)
        or croak "nginx does not listen on $gw->{port}:\n"
                 . error_log_text($gw);
    return $gw;
}

# SIGHUP: new configuration (same file, or new options), new workers.
# Returns when the master has started the new generation of workers.
sub reload_gateway {
    my ($gw, %o) = @_;
    if (%o) {
        $gw->{opt} = { %{ $gw->{opt} }, %o };
        _write_conf($gw);
    }
    my $pid = nginx_pid($gw) or croak "no nginx pid";
    my $before = () = error_log_text($gw) =~ /reconfiguring/g;
    kill SIGHUP, $pid;
    wait_until(sub {
        my $n = () = error_log_text($gw) =~ /reconfiguring/g;
        $n > $before;
    }, 10) or croak "nginx did not reconfigure";
    sleep 0.3;
}

sub stop_gateway {
    my ($gw) = @_;
    my $pid = nginx_pid($gw) or return;
    kill SIGQUIT, $pid;
    wait_until(sub { !kill(0, $pid) }, 10)
        or do { kill SIGKILL, $pid; sleep 0.2 };
    @Gateways = grep { $_ != $gw } @Gateways;
}

sub error_log_text {
    my ($gw) = @_;
    return read_file("$gw->{prefix}/logs/error.log");
}

# Parsed access log lines: [{ uri, status, worker, overlap, prompt,
# completion, cached, prefill }] ("-": a variable not found, "": empty)
sub access_log_entries {
    my ($gw) = @_;
    my @e;
    for my $l (split /\n/, read_file("$gw->{prefix}/logs/access.log")) {
        my ($uri, $status, $rest) = $l =~ /^(\S+) (\d+) (.*)$/ or next;
        my %kv = $rest =~ /(\w+)=(\S*)/g;
        push @e, { uri => $uri, status => $status, %kv };
    }
    return \@e;
}

# ---- HTTP client over raw sockets --------------------------------------

sub _connect {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 5)
        or croak "connect 127.0.0.1:$port: $!";
    binmode $s;
    $s->autoflush(1);
    return $s;
}

sub _request_bytes {
    my ($method, $path, $body, $headers) = @_;
    $body = json_encode($body) if ref $body;
    my $h = "$method $path HTTP/1.1\r\nHost: localhost\r\n"
            . "Connection: close\r\n";
    my %hdr = %{ $headers // {} };
    if (defined $body) {
        $hdr{'Content-Type'} //= 'application/json';
        $hdr{'Content-Length'} //= length $body;
    }
    for my $k (sort keys %hdr) {
        next if !defined $hdr{$k};
        $h .= "$k: $hdr{$k}\r\n";
    }
    return $h . "\r\n" . ($body // '');
}

# reads more bytes into $$buf; 0 at EOF, undef on timeout
sub _fill {
    my ($sock, $buf, $timeout) = @_;
    my $sel = IO::Select->new($sock);
    return undef if !$sel->can_read($timeout);
    my $n = sysread($sock, $$buf, 65536, length $$buf);
    return 0 if !$n;
    return $n;
}

sub _parse_head {
    my ($head) = @_;
    my ($status_line, @lines) = split /\r\n/, $head;
    my ($status) = $status_line =~ m{^HTTP/1\.[01] (\d{3})}
        or croak "bad status line: $status_line";
    my %h;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $k = lc $k;
        $h{$k} = exists $h{$k} ? "$h{$k}, $v" : $v;
    }
    return ($status, \%h);
}

# One request, read to the end (Connection: close). Returns
# { status, headers (lower-case names), body (de-chunked), raw, json
# (decoded body or undef), complete (1 unless a chunked body was cut
# short), timed_out }.
sub gw_request {
    my ($gw, $method, $path, $body, %o) = @_;
    my $port = ref $gw ? $gw->{port} : $gw;
    my $s = _connect($port);
    print $s (defined $o{raw} ? $o{raw}
              : _request_bytes($method, $path, $body, $o{headers}));
    my $buf = '';
    my $timeout = $o{timeout} // 30;
    my $deadline = time + $timeout;
    my $timed_out = 0;
    while (1) {
        my $left = $deadline - time;
        if ($left <= 0) { $timed_out = 1; last }
        my $n = _fill($s, \$buf, $left);
        if (!defined $n) { $timed_out = 1; last }
        last if !$n;
    }
    close $s;
    my $res = { raw => $buf, timed_out => $timed_out };
    my $i = index $buf, "\r\n\r\n";
    return $res if $i < 0;
    ($res->{status}, $res->{headers}) = _parse_head(substr $buf, 0, $i);
    my $rest = substr $buf, $i + 4;
    if (($res->{headers}{'transfer-encoding'} // '') =~ /chunked/i) {
        my ($b, $complete) = _dechunk($rest);
        ($res->{body}, $res->{complete}) = ($b, $complete);
    } else {
        $res->{body} = $rest;
        $res->{complete} = 1;
    }
    $res->{json} = eval { json_decode($res->{body}) };
    return $res;
}

sub _dechunk {
    my ($in) = @_;
    my $out = '';
    while ($in =~ s/\A([0-9a-fA-F]+)[^\r\n]*\r\n//) {
        my $n = hex $1;
        return ($out, 1) if $n == 0;
        return ($out . substr($in, 0, $n), 0) if length $in < $n + 2;
        $out .= substr $in, 0, $n;
        substr($in, 0, $n + 2) = '';
    }
    return ($out, 0);
}

sub gw_get {
    my ($gw, $path, %o) = @_;
    return gw_request($gw, 'GET', $path, undef, %o);
}

sub gw_post {
    my ($gw, $path, $body, %o) = @_;
    return gw_request($gw, 'POST', $path, $body, %o);
}

# ---- SSE ---------------------------------------------------------------

# Sends the request and reads the response head. Returns a stream
# { sock, status, headers, chunked, ... } for sse_next.
sub sse_open {
    my ($gw, $path, $body, %o) = @_;
    my $port = ref $gw ? $gw->{port} : $gw;
    my $s = _connect($port);
    print $s _request_bytes('POST', $path, $body, $o{headers});
    my $st = { sock => $s, raw => '', data => '', events => [], eof => 0,
               chunk_left => 0, chunked => 0, done => 0 };
    my $deadline = time + ($o{timeout} // 30);
    while ((my $i = index $st->{raw}, "\r\n\r\n") < 0) {
        my $left = $deadline - time;
        my $n = $left > 0 ? _fill($s, \$st->{raw}, $left) : undef;
        if (!$n) {
            # no response head: status 0, for the caller's checks to fail
            $st->{status} = 0;
            $st->{headers} = {};
            $st->{eof} = 1;
            $st->{timed_out} = !defined $n;
            return $st;
        }
    }
    my $i = index $st->{raw}, "\r\n\r\n";
    ($st->{status}, $st->{headers}) = _parse_head(substr $st->{raw}, 0, $i);
    $st->{pending} = substr $st->{raw}, $i + 4;
    $st->{chunked} = ($st->{headers}{'transfer-encoding'} // '')
                     =~ /chunked/i ? 1 : 0;
    $st->{complete} = 0;
    _decode($st);
    return $st;
}

# moves decoded body bytes from pending to data
sub _decode {
    my ($st) = @_;
    if (!$st->{chunked}) {
        $st->{data} .= $st->{pending};
        $st->{pending} = '';
        return;
    }
    while (length $st->{pending}) {
        if ($st->{chunk_left} > 0) {
            my $take = substr $st->{pending}, 0, $st->{chunk_left}, '';
            $st->{data} .= $take;
            $st->{chunk_left} -= length $take;
            $st->{need_crlf} = 1 if $st->{chunk_left} == 0;
            next;
        }
        if ($st->{need_crlf}) {
            return if length $st->{pending} < 2;
            substr($st->{pending}, 0, 2) = '';
            $st->{need_crlf} = 0;
            next;
        }
        return if $st->{complete};
        $st->{pending} =~ s/\A([0-9a-fA-F]+)[^\r\n]*\r\n// or return;
        my $n = hex $1;
        if ($n == 0) { $st->{complete} = 1; return }
        $st->{chunk_left} = $n;
    }
}

# The next SSE event's data: decoded JSON, the string '[DONE]', or undef
# at the end of the stream (see $st->{eof}, $st->{complete}) or after
# $timeout seconds ($st->{timed_out}). Every event's raw text is kept in
# $st->{events}.
sub sse_next {
    my ($st, $timeout) = @_;
    my $deadline = time + ($timeout // 30);
    while (1) {
        if ($st->{data} =~ s/\A(.*?)\n\n//s) {
            my $ev = $1;
            push @{ $st->{events} }, $ev;
            my $data = join "\n", map { /^data: ?(.*)$/ ? $1 : () }
                       split /\n/, $ev;
            return $data if $data eq '[DONE]';
            my $j = eval { json_decode($data) };
            return $j // { _bad => $data };
        }
        return undef if $st->{eof};
        my $left = $deadline - time;
        my $n = $left > 0 ? _fill($st->{sock}, \$st->{pending}, $left)
                          : undef;
        if (!defined $n) { $st->{timed_out} = 1; return undef }
        if (!$n) {
            $st->{eof} = 1;
            $st->{leftover} = $st->{data};
        }
        _decode($st);
    }
}

sub sse_close { close $_[0]->{sock} if $_[0]->{sock}; $_[0]->{sock} = undef }

# Reads the whole stream: (stream, [events], saw_done_last)
sub sse_collect {
    my ($gw, $path, $body, %o) = @_;
    my $st = sse_open($gw, $path, $body, %o);
    my @ev;
    if ($st->{status} == 200) {
        while (defined(my $e = sse_next($st, $o{timeout} // 30))) {
            push @ev, $e;
        }
    }
    sse_close($st);
    return ($st, \@ev);
}

sub sse_events { $_[0]->{events} }

# a write to a socket the server closed (an early 413, a test that stops
# nginx) must not kill the test; INT/TERM still stop what was started
$SIG{PIPE} = 'IGNORE';
for my $sig (qw(INT TERM HUP)) {
    $SIG{$sig} = sub { exit 130 } if !$SIG{$sig} || $SIG{$sig} eq 'DEFAULT';
}

END {
    if ($$ == $Owner) {
        local $?;
        for my $gw (@Gateways) {
            my $pid = nginx_pid($gw) or next;
            kill SIGQUIT, $pid;
            wait_until(sub { !kill(0, $pid) }, 5) or kill SIGKILL, $pid;
        }
        for my $r (@Redis) {
            kill SIGKILL, $r->{pid} if $r->{pid};
            waitpid($r->{pid}, 0) if $r->{pid};
        }
    }
}


# The nginx worker processes of a gateway (children of its master).
sub nginx_workers {
    my ($gw) = @_;
    my $ppid = nginx_pid($gw);
    my @c;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $f, '<', $stat or next;
        my $l = <$f> // '';
        close $f;
        push @c, $1 if $l =~ /^(\d+) \(.*\) \S (\d+) / && $2 == $ppid;
    }
    return @c;
}

# dynamo_gateway_worker_in_flight of one worker address, from /metrics.
sub gw_in_flight {
    my ($gw, $addr) = @_;
    my $m = gw_get($gw, '/metrics')->{body} // '';
    my ($v) = $m =~ /^dynamo_gateway_worker_in_flight
                     \{worker="\Q$addr\E"\}\s(\d+)$/mx;
    return $v;
}

1;
