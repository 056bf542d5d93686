package Test::Nginx::Dynamo::Client;

# The HTTP client: turns a block's request sections into bytes exactly as
# Test::Nginx::Socket does (Host, Connection and Content-Length added, body
# trimmed), sends them over a non-blocking socket and parses the response
# (chunked bodies decoded, malformed ones failing).

use strict;
use warnings;

use Errno qw(EAGAIN EWOULDBLOCK EINPROGRESS);
use HTTP::Response ();
use IO::Select ();
use IO::Socket::INET ();
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep);
use Test::More ();

use Test::Nginx::Dynamo::Setup qw(:vars);
use Test::Nginx::Dynamo::Server qw(bail_out);

use base 'Exporter';

our @EXPORT = qw(requests_from_block send_request parse_response);

our $TotalConnectingTimeouts = 0;

sub _parse_more_headers {
    my ($in) = @_;

    my ($out, $is_chunked) = ('', 0);

    for my $header (split /\n+/, $in // '') {
        next if $header =~ /^\s*#/;

        my ($key, $val) = split /:\s*/, $header, 2;
        $val //= '';
        $is_chunked = 1 if lc($key) eq 'transfer-encoding' && $val eq 'chunked';
        $out .= "$key: $val\r\n";
    }

    return ($out, $is_chunked);
}

sub _more_headers_for {
    my ($block, $i) = @_;

    my $more = $block->more_headers // '';

    if (ref $more eq 'ARRAY') {
        $more = $more->[$i];
        bail_out($block->name . " - --- more_headers lacks data for the "
                 . "${i}th request")
            if !defined $more;
    }

    return _parse_more_headers($more);
}

# "METH [URL [VERSION]]\nbody" -> request line parts and the body
sub _split_request {
    my ($name, $text) = @_;

    my ($first, $content) = split /\n/, $text, 2;

    if (!defined $first || $first !~ /\S/) {
        bail_out("$name - Request line should be non-empty");
    }

    if ($first !~ /^\s*(\S+) *(?:(\S+) *)?(?:(\S+) *)?\s*$/) {
        bail_out("$name - Request line is not valid. Should be "
                 . "'meth [url [version]]' but got \"$first\".");
    }

    return {
        method   => $1,
        url      => $2 // '/',
        version  => $3 // 'HTTP/1.1',
        head_len => length($first) + (defined $content ? 1 : 0),
        content  => $content // '',
    };
}

sub _build_head {
    my ($req, $more, $is_chunked, $conn) = @_;

    my $len = '';

    if (!$is_chunked && $req->{content} ne ''
        && $more !~ /(?:^|\n)Content-Length:/)
    {
        # leading whitespace removed, so offsets into it shift
        $req->{content} =~ s/^(\s*)//s;
        $req->{trimmed} = length $1;
        $req->{content} =~ s/\s+$//s;
        $len = "Content-Length: " . length($req->{content}) . "\r\n";
    }

    $more =~ s/(?<!\r)\n/\r\n/gs;

    my $headers = '';
    $headers .= "Host: $ServerName\r\n" if $more !~ /(?:^|\n)Host:/msi;
    $headers .= "Connection: $conn\r\n" if $more !~ /(?:^|\n)Connection/msi;

    return "$req->{method} $req->{url} $req->{version}\r\n"
           . "$headers$more$len\r\n";
}

# one request given as packets: the packets' boundaries are kept where
# they fall in the body; a boundary inside the request line moves to the
# end of the generated head
sub _build_request {
    my ($name, $more, $is_chunked, $conn, $packets) = @_;

    my $text = join '', map { $_->{value} } @$packets;
    my $req = _split_request($name, $text);
    my $head = _build_head($req, $more, $is_chunked, $conn);
    my $full = $head . $req->{content};

    my ($orig_off, $prev, @out) = (0, 0);

    for my $i (0 .. $#$packets) {
        $orig_off += length $packets->[$i]{value};

        my $off = $i == $#$packets
            ? length $full
            : _map_offset($orig_off, $req, length $head);

        $off = $prev if $off < $prev;
        push @out, { %{ $packets->[$i] },
                     value => substr($full, $prev, $off - $prev) };
        $prev = $off;
    }

    return \@out;
}

sub _map_offset {
    my ($orig, $req, $head_len) = @_;

    return $head_len if $orig <= $req->{head_len};

    my $off = $orig - $req->{head_len} - ($req->{trimmed} // 0);
    $off = 0 if $off < 0;
    $off = length $req->{content} if $off > length $req->{content};

    return $head_len + $off;
}

sub _packets {
    my ($name, $req) = @_;

    return [{ value => $req }] if !ref $req;

    bail_out("$name - Invalid syntax. $req should be a string or an array "
             . "of packets.")
        if ref $req ne 'ARRAY';

    return [ map {
        ref $_ eq 'HASH' ? {%$_}
        : !ref $_ ? { value => $_ }
        : bail_out("$name - Invalid syntax. $_ should be a string or hash "
                   . "with value.")
    } @$req ];
}

sub _strip_comments {
    my ($request) = @_;

    return $request if !defined $request || ref $request;
    1 while $request =~ s/^\s*\#[^\n]+\s+|^\s+//gs;

    return $request;
}

sub _raw_requests {
    my ($block) = @_;

    my $raw = $block->raw_request;

    return [ _packets(scalar($block->name), $raw) ];
}

sub _pipelined_requests {
    my ($block) = @_;

    my $name = $block->name;
    my $reqs = $block->pipelined_requests;

    bail_out("$name - invalid entries in --- pipelined_requests")
        if ref $reqs ne 'ARRAY';

    my $all = '';

    for my $i (0 .. $#$reqs) {
        my ($more, $chunked) = _more_headers_for($block, $i);
        my $conn = $i == $#$reqs ? 'close' : 'keep-alive';
        my $pkts = _build_request($name, $more, $chunked, $conn,
                                  [{ value => $reqs->[$i] }]);
        $all .= $pkts->[0]{value};
    }

    return [[{ value => $all }]];
}

# a list of requests, each an array of packets ({value, delay_before})
sub requests_from_block {
    my ($block) = @_;

    my $name = $block->name;

    return _raw_requests($block) if defined $block->raw_request;
    return _pipelined_requests($block) if $block->pipelined_requests;

    my $request = _strip_comments(scalar($block->request));

    bail_out("$name - request empty") if !defined $request;

    my @list = ref $request eq 'ARRAY' ? @$request : ($request);

    bail_out("$name - invalid ---request : MUST be string or array of "
             . "requests")
        if ref $request && ref $request ne 'ARRAY';

    my @out;

    for my $i (0 .. $#list) {
        my ($more, $chunked) = _more_headers_for($block, $i);
        push @out, _build_request($name, $more, $chunked, 'close',
                                  _packets($name, $list[$i]));
    }

    return \@out;
}

sub _connect {
    my ($block, $timeout) = @_;

    my $addr = $block->server_addr_for_client // $ServerAddr;

    return IO::Socket::INET->new(
        PeerAddr => $addr,
        PeerPort => $ServerPortForClient,
        Proto    => 'tcp',
        Timeout  => $timeout,
    );
}

sub _child_gone {
    my $pid = $Test::Nginx::Dynamo::Server::ChildPid;

    return defined $pid && waitpid($pid, WNOHANG) != 0;
}

sub _connect_retrying {
    my ($block, $timeout) = @_;

    my $name = $block->name;
    my $addr = ($block->server_addr_for_client // $ServerAddr)
               . ":$ServerPortForClient";
    my $total = $TotalConnectingTimeouts ? 20 : 50;

    for my $tries (1 .. $total + 1) {
        my $sock = _connect($block, $timeout);
        return $sock if $sock;

        my $err = $!;

        if (_child_gone()) {
            Test::More->builder->no_ending(1);
            Test::More::fail("$name - Can't connect to $addr: $err "
                             . "(aborted)\n");
            return undef;
        }

        last if $tries > $total;

        my $wait = ($Sleep + $Sleep * $tries) * $tries / 2;
        $wait = 1 if $wait > 1;
        warn "$name - Can't connect to $addr: $err\n\tRetry connecting "
             . "after $wait sec\n"
            if $wait >= 0.6;
        sleep $wait;
    }

    my $msg = "$name - Can't connect to $addr: $! (aborted)\n";
    bail_out($msg) if ++$TotalConnectingTimeouts >= 3;

    Test::More->builder->no_ending(1);
    Test::More::fail($msg);

    return undef;
}

sub _write_some {
    my ($ctx) = @_;

    while (1) {
        if ($ctx->{off} >= length $ctx->{buf}) {
            my $next = shift @{ $ctx->{packets} } or return 2;
            my $delay = $next->{delay_before} // $ctx->{middle_delay};
            sleep $delay if $delay;
            ($ctx->{buf}, $ctx->{off}) = ($next->{value}, 0);
            next;
        }

        my $n = syswrite($ctx->{sock}, $ctx->{buf},
                         length($ctx->{buf}) - $ctx->{off}, $ctx->{off});

        if (!defined $n) {
            return 1 if $! == EAGAIN || $! == EWOULDBLOCK;
            warn "write failed: $!\n";
            $ctx->{resp} ||= "write failed: $!";
            return 0;
        }

        $ctx->{off} += $n;
    }
}

sub _read_some {
    my ($ctx) = @_;

    while (1) {
        my $n = sysread($ctx->{sock}, my $buf, 4096);

        if (!defined $n) {
            return 1 if $! == EAGAIN || $! == EWOULDBLOCK;
            warn "WARNING: $ctx->{name} - HTTP response read failure: $!\n";
            return 0;
        }

        return 0 if $n == 0;
        $ctx->{resp} .= $buf;
    }
}

sub _timed_out {
    my ($ctx) = @_;

    return if defined $ctx->{block}->abort;

    Test::More->builder->no_ending(1);
    Test::More::fail("ERROR: client socket timed out - $ctx->{name}\n");
}

sub _shutdown_after_write {
    my ($ctx) = @_;

    my $how = $ctx->{block}->shutdown;
    return if !defined $how;

    $how = 1 if $how !~ /\S/;
    shutdown($ctx->{sock}, $how);
}

sub _exchange {
    my ($ctx, $timeout) = @_;

    my $sel = IO::Select->new($ctx->{sock});
    my $writing = 1;

    while (1) {
        my ($r, $w) = IO::Select->select($sel, $writing ? $sel : undef,
                                         undef, $timeout);

        if (!$r && !$w) {
            _timed_out($ctx);
            return;
        }

        if ($w && @$w) {
            my $rc = _write_some($ctx);
            return if $rc == 0;

            if ($rc == 2) {
                $writing = 0;
                _shutdown_after_write($ctx);
            }
        }

        if ($r && @$r) {
            return if !_read_some($ctx);
        }
    }
}

# returns (raw response, whether it answers a HEAD request)
sub send_request {
    my ($packets, $middle_delay, $timeout, $block) = @_;

    my @bits = @$packets;
    my $all = join '', map { $_->{value} } @bits;
    my $head_req = $all =~ /^\s*HEAD\s+/ ? 1 : 0;

    my $sock = _connect_retrying($block, $timeout) or return (undef, $head_req);
    $sock->blocking(0);

    my $first = shift @bits;
    my $ctx = {
        sock => $sock, name => $block->name, block => $block,
        resp => '', buf => $first->{value}, off => 0, packets => \@bits,
        middle_delay => $middle_delay,
    };

    _exchange($ctx, $timeout);
    close $sock;

    return ($ctx->{resp}, $head_req);
}

sub _chunk_fail {
    my ($msg) = @_;

    Test::More->builder->no_ending(1);
    Test::More::fail($msg);
    return;
}

# decodes a chunked body; returns (decoded, bytes after the last chunk)
# or nothing (after a failed test) when the encoding is broken
sub _dechunk {
    my ($name, $raw) = @_;

    my $decoded = '';

    while (1) {
        if ($raw =~ /\G0[ \t]*\r\n\r\n/gc) {
            my $left = $raw =~ /\G(.+)/gcs ? $1 : undef;
            return ($decoded, $left);
        }

        if ($raw =~ /\G[ \t]*([A-Fa-f0-9]+)[ \t]*\r\n/gc) {
            my $size = hex $1;
            my $pos = pos $raw;

            return _chunk_fail("$name - invalid chunked data received "
                               . "(not enought octets for the data section)")
                if length($raw) - $pos < $size;

            $decoded .= substr $raw, $pos, $size;
            pos($raw) = $pos + $size;

            return _chunk_fail("$name - invalid chunked data received "
                               . "(expected CRLF).")
                if $raw !~ /\G\r\n/gc;

            next;
        }

        return _chunk_fail("$name - invalid chunked body received: $&")
            if $raw =~ /\G.+/gcs;

        return _chunk_fail("$name - no last chunk found - $raw");
    }
}

# returns (HTTP::Response, raw header text, bytes after the response)
sub parse_response {
    my ($name, $raw, $head_req) = @_;

    my $raw_headers = $raw =~ /(.*?\r\n)\r\n/s ? $1 : '';
    my $res = HTTP::Response->parse($raw);
    my $code = $res->code;

    if (defined $code && $code !~ /^\d+$/) {
        undef $code;
        $res->code(undef);
    }

    return ($res, $raw_headers) if $code && ($code == 304 || $code == 101);

    my $enc = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');
    my $left;

    if (defined $enc && $enc eq 'chunked') {
        my ($body, $rest) = _dechunk($name, $res->content // '');
        return if !defined $body;
        $res->content($body);
        $left = $rest;

    } elsif (defined $len && $len =~ /^\d+$/) {
        my $body = $res->content;

        if (length $body < $len) {
            warn "WARNING: $name - response body truncated: $len expected, "
                 . "but got ", length $body, "\n"
                if !$head_req;

        } elsif (length $body > $len) {
            $left = substr $body, $len;
            $res->content(substr $body, 0, $len);
        }
    }

    return ($res, $raw_headers, $left);
}

1;
