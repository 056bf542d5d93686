package Test::Dynamo::Bench;

# dynamo-bench for the t/30x-bench-*.t suites: its scripted-timing server
# (`dynamo-bench serve`) with a script and a request log, runs of the
# benchmark with everything it prints and writes captured, and readers for
# what it writes (summary JSON, per-request JSONL, CSV, the printed
# "Serving Benchmark Result" block).
#
#     use Test::Dynamo::Bench qw(:all);
#     my $s = start_serve(ttft_ms => 300, itl_ms => 100,
#                         script => [{ tokens => 5 }, { status => 500 }]);
#     my $r = run_bench(['--base-url', $s->{url}, tok_args(),
#                        '--num-prompts', 4], detailed => 1);
#     is($r->{code}, 0);
#     my $sum = $r->{json};          # the --save-result summary
#     my $req = $r->{jsonl};         # [{ ttft_ms, itl_ms => [...] }, ...]
#     my $log = serve_log($s);       # [{ t_ms, body => {...} }, ...]
#
# The binary is $DYNAMO_BUILD/bin/dynamo-bench (default build/). Servers
# still running when the test file exits are stopped.

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use File::Path ();
use File::Spec ();
use File::Temp qw(tempdir);
use JSON::PP ();
use Test::Dynamo::Proc qw(stop_pid);
use Test::Dynamo::Worker qw(dynamo_build read_file);
use POSIX qw(WNOHANG SIGTERM SIGKILL);
use Time::HiRes qw(sleep time);

use base 'Exporter';

our @EXPORT_OK = qw(bench_bin build_dir model_dir tok_args start_serve
                    serve_ok stop_serve serve_log serve_pid run_bench run_tool
                    read_file write_file read_json read_jsonl read_csv
                    parse_block block_value np_percentile mean stdev
                    tokenize_ids tokenize_count special_count
                    json_decode json_encode
                    tmp_dir write_trace);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

my $Json = JSON::PP->new->canonical->allow_nonref;
my $Tmp;
my @Live;
my $Owner = $$;
my $Seq = 0;

sub json_decode { $Json->decode($_[0]) }
sub json_encode { $Json->encode($_[0]) }

sub build_dir { return dynamo_build() }

sub bench_bin { return build_dir() . '/bin/dynamo-bench' }

sub model_dir {
    return $ENV{TEST_NGINX_MODEL_DIR} || abs_path('models/stories260K');
}

# The client's tokenizer: the embedded model's.
sub tok_args { return ('--tokenizer', model_dir()) }

# A scratch directory for this test file (under $TEST_NGINX_SERVROOT-bench
# when set, so parallel agents and CI keep their files apart).
sub tmp_dir {
    return $Tmp if $Tmp;
    if ($ENV{TEST_NGINX_SERVROOT}) {
        my $root = "$ENV{TEST_NGINX_SERVROOT}-bench";
        File::Path::make_path($root);
        $Tmp = tempdir('benchXXXXXX', DIR => $root, CLEANUP => 1);
    } else {
        $Tmp = tempdir(CLEANUP => 1);
    }
    return $Tmp;
}

sub write_file {
    my ($path, $text) = @_;
    open my $f, '>', $path or croak "$path: $!";
    print $f $text;
    close $f or croak "$path: $!";
    return $path;
}

sub read_json {
    my ($path) = @_;
    my $t = read_file($path);
    return undef if $t eq '';
    return eval { json_decode($t) };
}

sub read_jsonl {
    my ($path) = @_;
    my @v;
    for my $l (split /\n/, read_file($path)) {
        next if $l !~ /\S/;
        my $j = eval { json_decode($l) };
        push @v, $j // { _bad => $l };
    }
    return \@v;
}

# [ { column => value } ] from a CSV with a header line (no quoted commas
# in what dynamo-bench writes: numbers and simple strings)
sub read_csv {
    my ($path) = @_;
    my @lines = grep { /\S/ } split /\r?\n/, read_file($path);
    return [] if !@lines;
    my @h = map { s/^"|"$//gr } split /,/, shift @lines;
    my @rows;
    for my $l (@lines) {
        my @c = map { s/^"|"$//gr } split /,/, $l, -1;
        my %r;
        @r{@h} = @c;
        push @rows, \%r;
    }
    return \@rows;
}

# A Mooncake trace from a list of hashes (or raw lines when strings).
sub write_trace {
    my ($name, @recs) = @_;
    my $path = tmp_dir() . "/$name";
    write_file($path, join '', map { (ref $_ ? json_encode($_) : $_) . "\n" }
                                  @recs);
    return $path;
}

# ---- processes ---------------------------------------------------------

# Runs a command with stdout/stderr to files and a time limit. Returns
# { code (exit status; -1 killed at the limit; -N a signal), out, err,
# secs, cpu (user + system seconds of the command, in 10 ms ticks) }.
# signal => [SECS, 'INT'] sends that signal after SECS.
sub run_tool {
    my ($cmd, %o) = @_;
    my $n = $Seq++;
    my $dir = tmp_dir();
    my ($out, $err) = ("$dir/run$n.out", "$dir/run$n.err");
    my $t0 = time;
    my @c0 = (times)[2, 3];
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', $o{stdin} // '/dev/null';
        open STDOUT, '>', $out;
        open STDERR, '>', $err;
        %ENV = (%ENV, %{ $o{env} // {} });
        { exec { $cmd->[0] } @$cmd; }
        POSIX::_exit(127);
    }
    my $deadline = time + ($o{timeout} // 60);
    my ($sig_at, $sig) = @{ $o{signal} // [] };
    $sig_at += $t0 if defined $sig_at;
    my $code;
    while (1) {
        if (defined $sig_at && time >= $sig_at) {
            kill $sig, $pid;
            $sig_at = undef;
        }
        if (waitpid($pid, WNOHANG) == $pid) {
            $code = $? & 127 ? -($? & 127) : $? >> 8;
            last;
        }
        if (time > $deadline) {
            kill SIGKILL, $pid;
            waitpid($pid, 0);
            $code = -1;
            last;
        }
        sleep 0.02;
    }
    my @c1 = (times)[2, 3];
    return { code => $code, out => read_file($out), err => read_file($err),
             secs => time - $t0, cmd => $cmd,
             cpu => $c1[0] - $c0[0] + $c1[1] - $c0[1] };
}

# One dynamo-bench run. $args: its arguments (a subcommand first, or run
# flags). Options: save => 1 adds --save-result and --result-dir (a fresh
# directory), detailed => 1 also --save-detailed, plot => 1 --plot,
# timeout (60 s). The result of run_tool plus dir, files (names in the
# result directory), json / jsonl / csv (the first *.json / *.jsonl / *.csv
# written, parsed) and block (the printed result block, parsed).
sub run_bench {
    my ($args, %o) = @_;
    my @extra;
    my $dir;
    if ($o{save} || $o{detailed} || $o{plot}) {
        $dir = tempdir('resXXXXXX', DIR => tmp_dir());
        push @extra, '--save-result', '--result-dir', $dir;
        push @extra, '--save-detailed' if $o{detailed};
        push @extra, '--plot' if $o{plot};
    }
    my $r = run_tool([bench_bin(), @$args, @extra], %o);
    $r->{block} = parse_block($r->{out});
    return $r if !$dir;
    $r->{dir} = $dir;
    opendir my $dh, $dir or return $r;
    my @f = sort grep { !/^\./ } readdir $dh;
    closedir $dh;
    $r->{files} = \@f;
    my ($json) = grep { /\.json$/ } @f;
    my ($jsonl) = grep { /\.jsonl$/ } @f;
    my ($csv) = grep { /\.csv$/ } @f;
    $r->{json} = read_json("$dir/$json") if $json;
    $r->{jsonl} = read_jsonl("$dir/$jsonl") if $jsonl;
    $r->{csv} = read_csv("$dir/$csv") if $csv;
    @{$r}{qw(json_path jsonl_path csv_path)} =
        map { defined $_ ? "$dir/$_" : undef } ($json, $jsonl, $csv);
    return $r;
}

# `dynamo-bench serve` on a free port. Options: ttft_ms, itl_ms,
# output_len, chunk_tokens, no_usage => 1, script => [entries] (written as
# JSONL) or a file name, args => [more flags]. Returns { pid, port, url,
# log (its --log-requests file), out, err }.
sub start_serve {
    my (%o) = @_;
    my $n = $Seq++;
    my $dir = tmp_dir();
    my %f = (port => "$dir/serve$n.port", log => "$dir/serve$n.log",
             out => "$dir/serve$n.out", err => "$dir/serve$n.err");
    my @args = ('serve', '--port', '0', '--port-file', $f{port},
                '--log-requests', $f{log});
    push @args, '--ttft-ms', $o{ttft_ms} if defined $o{ttft_ms};
    push @args, '--itl-ms', $o{itl_ms} if defined $o{itl_ms};
    push @args, '--output-len', $o{output_len} if defined $o{output_len};
    push @args, '--chunk-tokens', $o{chunk_tokens}
        if defined $o{chunk_tokens};
    push @args, '--no-usage' if $o{no_usage};
    if (defined $o{script}) {
        my $s = $o{script};
        if (ref $s) {
            $s = write_file("$dir/serve$n.script",
                            join '', map { json_encode($_) . "\n" } @$s);
        }
        push @args, '--script', $s;
    }
    push @args, @{ $o{args} // [] };
    my @cmd = (bench_bin(), @args);
    unshift @cmd, @{ $o{prefix} } if $o{prefix};
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $f{out};
        open STDERR, '>', $f{err};
        { exec { $cmd[0] } @cmd; }
        POSIX::_exit(127);
    }
    my $s = { pid => $pid, %f };
    my $deadline = time + 10;
    while (time < $deadline) {
        my $p = read_file($f{port});
        if ($p =~ /^\s*(\d+)\s*$/ && $1 > 0) {
            $s->{port} = $1;
            $s->{url} = "http://127.0.0.1:$1";
            push @Live, $s;
            return $s;
        }
        if (waitpid($pid, WNOHANG) == $pid) {
            croak "dynamo-bench serve exited (" . ($? >> 8) . "): "
                  . read_file($f{err});
        }
        sleep 0.02;
    }
    kill SIGKILL, $pid;
    waitpid($pid, 0);
    croak "dynamo-bench serve did not write its port file: "
          . read_file($f{err});
}

# start_serve as a test: on failure one failed test with the reason and
# undef, so the caller's subtest ends and the file goes on.
sub serve_ok {
    my (%o) = @_;
    my $s = eval { start_serve(%o) };
    if (!$s) {
        require Test::More;
        Test::More::fail('dynamo-bench serve starts');
        Test::More::diag($@);
    }
    return $s;
}

sub serve_pid { $_[0]{pid} }

# SIGTERM; the exit status (-1: killed after 5 s).
sub stop_serve {
    my ($s) = @_;
    return undef if !$s->{pid};
    my $code = stop_pid($s->{pid}, SIGTERM, 5);
    @Live = grep { $_ != $s } @Live;
    $s->{pid} = 0;
    return $code;
}

# The server's request log: [{ t_ms (arrival, ms since the server
# started), body (the decoded request body), raw (the line's object) }],
# in arrival order. Entries logged before $since (an index) are skipped.
sub serve_log {
    my ($s, $since) = @_;
    my @v;
    for my $j (@{ read_jsonl($s->{log}) }) {
        my $t;
        for my $k (qw(t_ms arrival_ms ms time_ms at_ms arrival t)) {
            if (defined $j->{$k} && !ref $j->{$k}) { $t = $j->{$k}; last }
        }
        my $body = $j->{body} // $j->{request};
        if (defined $body && !ref $body) {
            $body = eval { json_decode($body) } // $body;
        }
        push @v, { t_ms => $t, body => $body, raw => $j };
    }
    @v = sort { ($a->{t_ms} // 0) <=> ($b->{t_ms} // 0) } @v;
    splice @v, 0, $since if $since;
    return \@v;
}

# ---- the printed block -------------------------------------------------

# "Label: value" lines of every "Serving Benchmark Result" block in the
# text, as { label => value }; with several blocks (sweeps) the last wins
# and all are in {_blocks}.
sub parse_block {
    my ($text) = @_;
    my (%b, @blocks, $in);
    for my $l (split /\n/, $text // '') {
        if ($l =~ /^=+ Serving Benchmark Result =+\s*$/) {
            $in = {};
            push @blocks, $in;
            next;
        }
        next if !$in;
        if ($l =~ /^=+\s*$/) { $in = undef; next }
        next if $l =~ /^-+/;
        if ($l =~ /^(.+?):\s+(\S+)\s*$/) { $in->{$1} = $2 }
    }
    %b = %{ $blocks[-1] } if @blocks;
    $b{_blocks} = \@blocks;
    $b{_n} = scalar @blocks;
    return \%b;
}

sub block_value {
    my ($r, $label) = @_;
    return $r->{block}{$label};
}

# ---- numbers -----------------------------------------------------------

sub mean {
    my @v = @_;
    return 0 if !@v;
    my $s = 0;
    $s += $_ for @v;
    return $s / @v;
}

# population standard deviation (numpy's np.std)
sub stdev {
    my @v = @_;
    return 0 if !@v;
    my $m = mean(@v);
    my $s = 0;
    $s += ($_ - $m) ** 2 for @v;
    return sqrt($s / @v);
}

# numpy.percentile(v, p), linear interpolation (numpy's default method):
# rank = p/100 * (n - 1), interpolated between the neighbours.
sub np_percentile {
    my ($v, $p) = @_;
    my @s = sort { $a <=> $b } @$v;
    return 0 if !@s;
    my $rank = $p / 100 * (@s - 1);
    my $lo = int $rank;
    my $hi = $lo + 1 < @s ? $lo + 1 : $lo;
    return $s[$lo] + ($s[$hi] - $s[$lo]) * ($rank - $lo);
}

# ---- the reference tokenizer (dynamo-kv, not dynamo-bench) ------------

sub tokenize_ids {
    my ($text, %o) = @_;
    my $bin = build_dir() . '/bin/dynamo-kv';
    -x $bin or croak "$bin missing";
    my $in = write_file(tmp_dir() . '/tok' . $Seq++ . '.txt', $text);
    my $dir = model_dir();
    my $ns = $o{special} ? '' : '--no-special';
    my $out = `'$bin' tokenize --tokenizer '$dir' $ns < '$in'`;
    croak "dynamo-kv tokenize failed" if $?;
    return [ split ' ', $out ];
}

sub tokenize_count { return scalar @{ tokenize_ids($_[0]) } }

# The special tokens (BOS, EOS) the tokenizer's post-processor adds to a
# text: vLLM's random dataset makes prompts of input_len less these, so
# that the server, which adds them, sees input_len tokens.
sub special_count {
    return scalar(@{ tokenize_ids('a', special => 1) })
           - scalar(@{ tokenize_ids('a') });
}

END {
    local $?;
    if ($$ == $Owner) {
        for my $s (@Live) {
            kill SIGKILL, $s->{pid} if $s->{pid};
            waitpid($s->{pid}, 0) if $s->{pid};
        }
    }
}

1;
