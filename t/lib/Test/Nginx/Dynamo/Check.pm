package Test::Nginx::Dynamo::Check;

# The per-request and per-block assertions.  Each emits exactly the tests
# Test::Nginx::Socket emits (same count, same names), so plans written for
# the real harness hold: one "status code ok" per request, one test per
# response header, one per body check, one per log pattern.

use strict;
use warnings;

use Digest::MD5 ();
use Digest::SHA ();
use List::Util qw(min);
use Test::Base ();
use Test::LongString qw(is_string);
use Test::More ();

use Test::Nginx::Dynamo::Setup qw(:vars);
use Test::Nginx::Dynamo::Server qw(bail_out error_log_data access_log_data);

use base 'Exporter';

our @EXPORT = qw(
    is_str check_error_code check_raw_response_headers
    check_response_headers transform_response_body check_response_body
    check_error_log check_access_log check_shutdown_error_log
    parse_headers trim
);

sub is_str (@) {
    my ($got, $expected, $desc) = @_;

    return Test::More::like($got, $expected, $desc)
        if ref $expected && ref $expected eq 'Regexp';

    return Test::More::is($got, $expected, $desc) if $NoLongString;

    return is_string($got, $expected, $desc);
}

sub trim ($) {
    my ($s) = @_;

    return undef if !defined $s;

    $s =~ s/^\s+|\s+$//g;
    $s =~ s/\n/ /gs;
    $s =~ s/\s{2,}/ /gs;

    return $s;
}

sub _fmt_str {
    my ($str) = @_;

    chomp $str;
    $str =~ s/"/\\"/g;
    $str =~ s/\r/\\r/g;
    $str =~ s/\n/\\n/g;

    return $str;
}

# expected values for request $idx: arrays when the block sends several
sub indexed_value {
    my ($name, $value, $idx, $need_array) = @_;

    if ($need_array) {
        return $value->[$idx] if ref $value eq 'ARRAY';
        bail_out("$name - You asked for many requests, the expected results "
                 . "should be arrays as well.");
    }

    if (ref $value eq 'ARRAY') {
        bail_out("$name - SHOULD NOT HAPPEN: idx != 0 and don't need array.")
            if $idx != 0;
        return $value->[0];
    }

    return $value;
}

sub _skip ($$) {
    my ($why, $n) = @_;

    Test::More::skip($why, $n);
}

sub check_error_code {
    my ($block, $res, $dry_run, $idx, $need_array) = @_;

    my $name = $block->name;
    my $code = ($res && $res->code) || '';

    SKIP: {
        _skip("$name - tests skipped due to $dry_run", 1) if $dry_run;

        if (defined $block->error_code_like) {
            my $pat = indexed_value($name, scalar($block->error_code_like),
                                    $idx, $need_array);
            Test::More::like($code, qr/$pat/sm, "$name - status code ok");

        } elsif (defined $block->error_code) {
            Test::More::is($code,
                           indexed_value($name, scalar($block->error_code),
                                         $idx, $need_array),
                           "$name - status code ok");

        } else {
            Test::More::is($code, 200, "$name - status code ok");
        }
    }
}

sub check_raw_response_headers {
    my ($block, $raw_headers, $dry_run, $idx, $need_array) = @_;

    my $name = $block->name;

    for my $kind (qw(like unlike)) {
        my $section = "raw_response_headers_$kind";
        my $value = $block->$section;
        next if !defined $value;

        SKIP: {
            _skip("$name - $section - tests skipped due to $dry_run", 1)
                if $dry_run;

            my $pat = indexed_value($name, $value, $idx, $need_array);

            if ($kind eq 'like') {
                Test::More::like($raw_headers, qr/$pat/s,
                                 "$name - raw resp headers like");
            } else {
                Test::More::unlike($raw_headers, qr/$pat/s,
                                   "$name - raw resp headers unlike");
            }
        }
    }
}

sub parse_headers ($) {
    my ($s) = @_;

    my %headers;

    for my $line (split /\n/, $s // '') {
        $line =~ s/^\s+|\s+$//g;

        if ($line =~ s/^!\s*//) {
            $headers{$line} = undef;
            next;
        }

        my ($key, $val) = split /\s*:\s*/, $line, 2;
        $headers{$key} = $val;
    }

    return \%headers;
}

sub _header_absent {
    my ($name, $key, $raw_headers, $dry_run) = @_;

    SKIP: {
        _skip("$name - response_headers - tests skipped due to $dry_run", 1)
            if $dry_run;
        Test::More::unlike($raw_headers, qr/^\s*\Q$key\E\s*:/ms,
                           "$name - header $key not present in the raw "
                           . "headers");
    }
}

sub _header_is {
    my ($name, $key, $val, $res, $dry_run) = @_;

    $val =~ s/\$ServerPort\b/$ServerPort/g;
    $val =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;

    my $actual = $res ? $res->header($key) : undef;

    SKIP: {
        _skip("$name - response_headers - tests skipped due to $dry_run", 1)
            if $dry_run;
        Test::More::is($actual // '', $val, "$name - header $key ok");
    }
}

sub check_response_headers {
    my ($block, $res, $raw_headers, $dry_run, $idx, $need_array) = @_;

    my $name = $block->name;

    if (defined $block->response_headers) {
        my $headers = parse_headers(indexed_value(
            $name, scalar($block->response_headers), $idx, $need_array));

        while (my ($key, $val) = each %$headers) {
            if (!defined $val) {
                _header_absent($name, $key, $raw_headers, $dry_run);
            } else {
                _header_is($name, $key, $val, $res, $dry_run);
            }
        }

        return;
    }

    return if !defined $block->response_headers_like;

    my $headers = parse_headers(indexed_value(
        $name, scalar($block->response_headers_like), $idx, $need_array));

    while (my ($key, $val) = each %$headers) {
        my $actual = $res ? $res->header($key) : undef;

        SKIP: {
            _skip("$name - response_headers_like - tests skipped due to "
                  . "$dry_run", 1)
                if $dry_run;
            Test::More::like($actual // '', qr/^$val$/,
                             "$name - header $key like ok");
        }
    }
}

my %BuiltinFilters = (
    md5_hex  => \&Digest::MD5::md5_hex,
    sha1_hex => \&Digest::SHA::sha1_hex,
    uc       => sub { uc $_[0] },
    lc       => sub { lc $_[0] },
    ucfirst  => sub { ucfirst $_[0] },
    lcfirst  => sub { lcfirst $_[0] },
    length   => sub { length $_[0] },
);

sub _run_filter {
    my ($name, $filter, $content) = @_;

    return $filter->($content) if ref $filter eq 'CODE';

    if (!ref $filter) {
        my $f = $BuiltinFilters{$filter}
            or bail_out("$name - unknown filter, \"$filter\", specified in "
                        . "the --- response_body_filters section");
        return $f->($content);
    }

    bail_out("$name - the --- response_body_filters section only supports "
             . "subroutine reference values and string values");
}

sub transform_response_body {
    my ($block, $res, $idx) = @_;

    my $filters = $block->response_body_filters;
    return if !defined $filters || !$res || !defined $res->content;

    my $name = $block->name;

    if (!ref $filters) {
        $filters =~ s/^\s+|\s+$//gs;
        $filters = [split /\s+/, $filters];
    } elsif (ref $filters ne 'ARRAY') {
        $filters = [$filters];
    }

    if (ref $filters->[0] eq 'ARRAY') {
        $filters = $filters->[$idx]
            // bail_out("$name - the ---response_body_filters "
                        . "two-dimensional array unmatch the specified "
                        . "request($idx)");
    }

    my $content = $res->content;
    $content = _run_filter($name, $_, $content) for @$filters;
    $res->content($content);
}

sub _clean_body {
    my ($res) = @_;

    my $content = $res ? $res->content : undef;

    if (defined $content) {
        $content =~ s/^TE: deflate,gzip;q=0\.3\r\n//gms;
        $content =~ s/^Connection: TE, close\r\n//gms;
    }

    return $content;
}

sub _check_body_is {
    my ($block, $res, $dry_run, $idx, $rep, $need_array) = @_;

    my $name = $block->name;
    my $content = _clean_body($res);
    my $expected = indexed_value($name, scalar($block->response_body), $idx,
                                 $need_array);

    if (defined $expected && !ref $expected) {
        $expected =~ s/\$ServerPort\b/$ServerPort/g;
        $expected =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
    }

    my $desc = "$name - response_body - response is expected "
               . "(repeated req $rep, req $idx)";

    SKIP: {
        _skip("$name - response_body - tests skipped due to $dry_run", 1)
            if $dry_run;

        if (ref $expected) {
            Test::More::like($content, $expected,
                             "$name - response_body - like (repeated req "
                             . "$rep, req $idx)");
        } elsif ($NoLongString) {
            Test::Base::is($content, $expected, $desc);
        } else {
            is_string($content, $expected, $desc);
        }
    }
}

sub _check_body_like {
    my ($block, $res, $dry_run, $idx, $need_array) = @_;

    my $name = $block->name;
    my $type = defined $block->response_body_like ? 'like' : 'unlike';
    my $section = "response_body_$type";
    my $content = _clean_body($res);
    my $pat = indexed_value($name, $block->$section, $idx, $need_array);

    $pat =~ s/\$ServerPort\b/$ServerPort/g;
    $pat =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;

    my $summary = trim($content) // '';
    my $desc = "$name - response_body_$type - response is expected "
               . "($summary)";

    SKIP: {
        _skip("$name - response_body_$type - tests skipped due to $dry_run",
              1)
            if $dry_run;

        if ($type eq 'like') {
            Test::More::like($content, qr/$pat/s, $desc);
        } else {
            Test::More::unlike($content, qr/$pat/s, $desc);
        }
    }
}

sub check_response_body {
    my ($block, $res, $dry_run, $idx, $rep, $need_array) = @_;

    if (defined $block->response_body) {
        _check_body_is($block, $res, $dry_run, $idx, $rep, $need_array);

    } elsif (defined $block->response_body_like
             || defined $block->response_body_unlike)
    {
        _check_body_like($block, $res, $dry_run, $idx, $need_array);
    }

    for my $check (@ResponseBodyChecks) {
        $check->($block, $res ? $res->content : undef, $idx, $rep, $dry_run);
    }
}

sub _patterns {
    my ($pats) = @_;

    if (!ref $pats) {
        chomp $pats;
        return [split /\n+/, $pats];
    }

    return [$pats] if ref $pats eq 'Regexp';
    return [@$pats];
}

sub _matches {
    my ($line, $pat) = @_;

    return ref $pat ? $line =~ /$pat/ : index($line, $pat) >= 0;
}

sub _value_contains {
    my ($val, $pat) = @_;

    return $val =~ /\Q$pat\E/ if !ref $val || ref $val eq 'Regexp';

    if (ref $val eq 'ARRAY') {
        for my $v (@$val) {
            return 1 if _value_contains($v, $pat);
        }
    }

    return 0;
}

# one pass per pattern found in some line, one fail per pattern not found
sub _expect_patterns {
    my ($name, $section, $file, $pats, $lines, $dry_run, $rep) = @_;

    my @pats = @{ _patterns($pats) };
    my $suffix = defined $rep ? " (req $rep)" : '';

    for my $line (@$lines) {
        for my $pat (@pats) {
            next if !defined $pat || !_matches($line, $pat);

            SKIP: {
                _skip("$name - $section - tests skipped due to $dry_run", 1)
                    if $dry_run;
                Test::More::pass("$name - pattern \"$pat\" matches a line in "
                                 . "$file$suffix");
            }

            undef $pat;
        }
    }

    for my $pat (grep { defined } @pats) {
        SKIP: {
            _skip("$name - $section - tests skipped due to $dry_run", 1)
                if $dry_run;
            Test::More::fail("$name - pattern \"$pat\" should match a line "
                             . "in $file$suffix");
        }
    }
}

# one fail per matching line, one pass per pattern never matched
sub _forbid_patterns {
    my ($name, $section, $file, $pats, $lines, $dry_run, $rep) = @_;

    my @pats = @{ _patterns($pats) };
    my $suffix = defined $rep ? " (req $rep)" : '';
    my %found;

    for my $i (0 .. $#$lines) {
        my $line = $lines->[$i];

        for my $pat (@pats) {
            next if !defined $pat || !_matches($line, $pat);

            Test::More->builder->no_ending(1) if $found{$pat}++;

            my @more = @$lines[$i + 1 .. min($i + 9, $#$lines - 1)];

            SKIP: {
                _skip("$name - $section - tests skipped due to $dry_run "
                      . "($line)", 1)
                    if $dry_run;
                Test::More::fail("$name - pattern \"" . _fmt_str($pat)
                                 . "\" should not match any line in $file "
                                 . "but matches line \"" . _fmt_str($line)
                                 . "\"$suffix\n" . join('', @more));
            }
        }
    }

    for my $pat (grep { defined && !$found{$_} } @pats) {
        SKIP: {
            _skip("$name - $section - tests skipped due to $dry_run", 1)
                if $dry_run;
            Test::More::pass("$name - pattern \"" . _fmt_str($pat)
                             . "\" does not match a line in $file$suffix");
        }
    }
}

sub _grep_error_log {
    my ($block, $lines, $dry_run, $rep) = @_;

    my $name = $block->name;
    my $pats = $block->grep_error_log;

    if (!defined $pats) {
        bail_out("$name - No --- grep_error_log defined but "
                 . "--- grep_error_log_out is defined")
            if defined $block->grep_error_log_out;
        return;
    }

    my $pat = ref $pats eq 'ARRAY' ? $pats->[$rep] : $pats;
    return if !defined $pat;

    my $expected = $block->grep_error_log_out;
    bail_out("$name - No --- grep_error_log_out defined but "
             . "--- grep_error_log is defined")
        if !defined $expected;
    $expected = $expected->[$rep] if ref $expected eq 'ARRAY';

    SKIP: {
        _skip("$name - error_log - tests skipped due to $dry_run", 1)
            if $dry_run;

        my $out = '';
        for my $line (@{ $lines->() }) {
            next if !(ref $pat ? $line =~ /$pat/ : $line =~ /\Q$pat\E/);
            $out .= "$&\n" if $& !~ /\n/;
        }

        my $desc = "$name - grep_error_log_out (req $rep)";

        if (ref $expected eq 'Regexp') {
            Test::More::like($out, $expected, $desc);
        } else {
            is_str($out, $expected, $desc);
        }
    }
}

sub _warn_levels {
    my ($block, $lines, $dry_run) = @_;

    return if $dry_run;

    my $name = $block->name;

    for my $level (qw(alert crit emerg)) {
        next if grep { defined $_ && _value_contains($_, "[$level") }
                     $block->error_log, $block->no_error_log;

        for my $line (@{ $lines->() }) {
            warn "WARNING: $name - " . _fmt_str($line) . "\n"
                if $line =~ /\[$level\]/;
        }
    }
}

sub check_error_log {
    my ($block, $res, $dry_run, $rep, $need_array) = @_;

    my $name = $block->name;
    my $cache;
    my $lines = sub { $cache //= error_log_data() };

    _grep_error_log($block, $lines, $dry_run, $rep);

    if (defined $block->error_log) {
        _expect_patterns($name, 'error_log', 'error.log',
                         scalar($block->error_log), $lines->(), $dry_run,
                         $rep);
    }

    if (defined $block->no_error_log) {
        _forbid_patterns($name, 'no_error_log', 'error.log',
                         scalar($block->no_error_log), $lines->(), $dry_run,
                         $rep);
    }

    _warn_levels($block, $lines, $dry_run);

    for my $line (@{ $cache // [] }) {
        next if $line !~ /\bAssertion .*?failed\b/;
        Test::More->builder->no_ending(1);
        chomp(my $l = $line);
        Test::More::fail("$name - $l\n");
    }
}

sub check_access_log {
    my ($block, $dry_run, $rep) = @_;

    my $name = $block->name;
    my $lines;

    if (defined $block->access_log) {
        $lines //= access_log_data();
        _expect_patterns($name, 'access_log', 'access.log',
                         scalar($block->access_log), $lines, $dry_run, $rep);
    }

    if (defined $block->no_access_log) {
        $lines //= access_log_data();
        _forbid_patterns($name, 'no_access_log', 'access.log',
                         scalar($block->no_access_log), $lines, $dry_run, $rep);
    }
}

# run once nginx of the block has exited (next block's start, or the end)
sub check_shutdown_error_log {
    my ($block, $dry_run) = @_;

    my $name = $block->name;
    my $lines = error_log_data();

    if (defined $block->no_shutdown_error_log) {
        _forbid_patterns($name, 'no_shutdown_error_log', 'error.log',
                         scalar($block->no_shutdown_error_log), $lines,
                         $dry_run, undef);
    }

    _expect_patterns($name, 'shutdown_error_log', 'error.log',
                     scalar($block->shutdown_error_log), $lines, $dry_run,
                     undef);
}

1;
