# dynamo-worker without Redis: the internal protocol on models/stories260K
# (greedy output equals the model's known-good continuation), logprobs,
# prefix reuse, request errors, /health, /metrics, cancellation when the
# client disconnects mid-stream, and the graceful stop.

use strict;
use warnings;

use Test::More;
use IO::Socket::INET ();
use JSON::PP ();
use POSIX qw(SIGINT);
use Time::HiRes qw(sleep time);

use Test::Dynamo::Port qw(free_port);
use Test::Dynamo::Worker qw(worker_bin start_worker stop_worker http_get
                            generate read_file wait_until);

plan skip_all => 'dynamo-worker not built (' . worker_bin() . ')'
    if !-x worker_bin();

my $MODEL = 'models/stories260K';
# models/stories260K/README.md: greedy continuation of "Once upon a time"
my @PROMPT = (1, 403, 407, 261, 378);
my @GOOD = qw(432 383 286 261 376 298 315 421 395 317 426 338 401 396 267
              337 410 408 419 292 411 322 265 282 295);

sub tokens_of {
    my ($frames) = @_;
    return [ map { @{ $_->{t} } } grep { exists $_->{t} } @$frames ];
}

sub metric {
    my ($port, $name) = @_;
    my (undef, $text) = http_get($port, '/metrics');
    return $text =~ /^dynamo_worker_\Q$name\E (\S+)$/m ? $1 + 0 : undef;
}

# A raw HTTP/1.1 request whose response is read frame by frame.
sub open_stream {
    my ($port, $body) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Timeout => 10)
        or die "connect: $!";
    my $json = JSON::PP->new->canonical->encode($body);
    print $sock "POST /v1/generate HTTP/1.1\r\nHost: w\r\n"
              . "Content-Type: application/json\r\n"
              . "Content-Length: " . length($json) . "\r\n\r\n$json";
    my $status = <$sock>;
    while (my $line = <$sock>) {
        last if $line eq "\r\n";
    }
    return ($sock, $status);
}

# Next chunk of a chunked body ('' at the end).
sub read_chunk {
    my ($sock) = @_;
    my $size = <$sock>;
    return undef if !defined $size;
    $size =~ s/\r?\n\z//;
    $size = hex $size;
    my $data = '';
    while (length $data < $size + 2) {
        my $n = read($sock, $data, $size + 2 - length $data, length $data);
        return undef if !$n;
    }
    return substr $data, 0, $size;
}

subtest 'bad flags exit 2 with a message' => sub {
    my @cases = (
        [ [ '--bogus' ], qr/unknown option '--bogus'/ ],
        [ [ '--model', $MODEL, '--engine', 'gpu' ], qr/--engine 'gpu'/ ],
        [ [ '--model', $MODEL, '--port', '70000' ], qr/--port '70000'/ ],
        [ [ '--model', $MODEL, '--role', 'leader' ], qr/--role 'leader'/ ],
        [ [ '--model', $MODEL, '--block-size', '0' ], qr/--block-size/ ],
        [ [ '--model', $MODEL, '--namespace', 'a:b' ], qr/--namespace/ ],
        [ [ '--model', $MODEL, '--redis', 'localhost' ], qr/--redis/ ],
        # routers never resolve names: the registered address is an IP
        [ [ '--model', $MODEL, '--advertise-addr', 'localhost:8000' ],
          qr/--advertise-addr 'localhost:8000': want an IP address/ ],
        [ [ '--model', $MODEL, '--advertise-addr', 'worker-1' ],
          qr/--advertise-addr 'worker-1': want an IP address/ ],
        [ [ '--model', $MODEL, '--advertise-addr', '::1' ],
          qr/--advertise-addr '::1': want an IP address/ ],
        [ [ '--model', $MODEL, '--advertise-addr', '10.0.0.1:0' ],
          qr/--advertise-addr '10.0.0.1:0'/ ],
        [ [ '--model', $MODEL, '--kv-cache-memory', '12X' ],
          qr/--kv-cache-memory/ ],
        [ [ '--model', $MODEL, '--num-workers', '2' ],
          qr/--num-workers > 1 needs --engine mock/ ],
        [ [ '--model', $MODEL, '--port' ], qr/needs a value/ ],
        [ [ '--redis', 'none' ], qr/--model DIR is required/ ],
        [ [ '--model', $MODEL, 'extra' ], qr/unexpected argument 'extra'/ ],
    );
    for my $c (@cases) {
        my ($code, $out, $err) =
            Test::Dynamo::Worker::run_worker(10, @{ $c->[0] });
        is($code, 2, "@{ $c->[0] }: exit 2");
        like($err, $c->[1], "@{ $c->[0] }: message");
    }
    my ($code, $out, $err) =
        Test::Dynamo::Worker::run_worker(10, '--model', 'no/such/dir',
                                         '--redis', 'none');
    is($code, 1, 'missing model: exit 1');
    like($err, qr/no\/such\/dir/, 'missing model: names the directory');
};

subtest '--help documents every flag' => sub {
    my ($code, $out) = Test::Dynamo::Worker::run_worker(10, '--help');
    is($code, 0, 'exit 0');
    for my $flag (qw(model engine host port advertise-addr redis
                     redis-password redis-db namespace served-model-name
                     worker-id role block-size num-blocks kv-cache-memory
                     max-num-seqs max-num-batched-tokens max-model-len
                     threads no-prefix-caching mock-speedup mock-seed
                     num-workers log-level help)) {
        like($out, qr/^\s+--\Q$flag\E\b/m, "--$flag");
    }
};

subtest '--advertise-addr: IP literals, the port added when missing' => sub {
    for my $c ([ '10.1.2.3:7000', qr/^10\.1\.2\.3:7000$/ ],
               [ '10.1.2.3', qr/^10\.1\.2\.3:(\d+)$/ ],
               [ '[::1]', qr/^\[::1\]:(\d+)$/ ]) {
        my $aw = start_worker('--model', $MODEL, '--engine', 'mock',
                              '--redis', 'none', '--advertise-addr',
                              $c->[0]);
        my (undef, $body) = http_get($aw->{port}, '/health');
        my $addr = JSON::PP::decode_json($body)->{addr} // '';
        like($addr, $c->[1], "$c->[0]: registered as $addr");
        is($1, $aw->{port}, "$c->[0]: the listener's port")
            if $c->[0] !~ /:\d+$/ && $addr =~ $c->[1];
        stop_worker($aw);
    }
};

subtest 'unreachable Redis at start' => sub {
    my $port = free_port();
    my ($code, $out, $err) = Test::Dynamo::Worker::run_worker(20,
        '--model', $MODEL, '--port', '0', '--redis', "127.0.0.1:$port");
    is($code, 1, 'exit 1');
    like($err, qr/cannot connect to Redis at 127\.0\.0\.1:$port/,
         'names the address');
    unlike($out, qr/listening/, 'never listened');
};

my $w = start_worker('--model', $MODEL, '--redis', 'none');
my $port = $w->{port};
like(read_file($w->{out}),
     qr/^dynamo-worker: listening on 127\.0\.0\.1:$port worker_id=\d+ engine=cpu/m,
     'start line');

subtest '/health' => sub {
    my ($status, $body, $h) = http_get($port, '/health');
    is($status, 200, 'status 200');
    like($h->{'content-type'}, qr{application/json}, 'json');
    my $j = JSON::PP::decode_json($body);
    is($j->{status}, 'ok', 'status');
    is($j->{worker_id}, $w->{id}, 'worker id as printed');
    is($j->{role}, 'both', 'role');
    is($j->{engine}, 'cpu', 'engine');
    is($j->{model}, 'stories260K', 'model: basename of --model');
    is($j->{block_size}, 16, 'block size');
    ok($j->{blocks_total} > 0, 'blocks total');
    is($j->{blocks_free}, $j->{blocks_total}, 'all free');
};

subtest 'greedy output equals the known-good continuation' => sub {
    # temperature 0: greedy (the default is 1, as in OpenAI's API)
    my ($status, $frames, $raw, $h) = generate($port, {
        v => 1, request_id => 'greedy-1', token_ids => \@PROMPT,
        max_tokens => 25, sampling => { temperature => 0 } });
    is($status, 200, 'status 200');
    like($h->{'content-type'}, qr{application/x-ndjson}, 'ndjson');
    like($raw, qr/\n\z/, 'every frame ends with a newline');
    is_deeply(tokens_of($frames), \@GOOD, 'token ids');
    my $fin = $frames->[-1];
    is($fin->{finish}, 'length', 'finish: length');
    is($fin->{prompt_tokens}, 5, 'prompt tokens');
    is($fin->{completion_tokens}, 25, 'completion tokens');
    is(scalar(grep { exists $_->{finish} } @$frames), 1, 'one finish frame');

    # the same with eos allowed and a stop id: stops at the stop id
    ($status, $frames) = generate($port, {
        token_ids => \@PROMPT, max_tokens => 25,
        sampling => { temperature => 0 }, stop_token_ids => [ 0 + $GOOD[3] ] });
    my $toks = tokens_of($frames);
    is($frames->[-1]{finish}, 'stop', 'stop id: finish stop');
    is_deeply([ @$toks[0 .. 2] ], [ @GOOD[0 .. 2] ], 'stop id: prefix');
    ok(@$toks <= 4, 'stop id: nothing after it');
};

subtest 'logprobs' => sub {
    my ($status, $frames) = generate($port, {
        token_ids => \@PROMPT, max_tokens => 5, logprobs => 3,
        sampling => { temperature => 0 } });
    is($status, 200, 'status 200');
    my @tf = grep { exists $_->{t} } @$frames;
    ok(@tf > 0, 'token frames');
    my $i = 0;
    for my $f (@tf) {
        is(scalar @{ $f->{lp} }, scalar @{ $f->{t} }, 'one lp per token');
        for my $k (0 .. $#{ $f->{t} }) {
            ok($f->{lp}[$k] <= 0, 'lp <= 0');
            my $top = $f->{top}[$k];
            is(scalar @$top, 3, 'three alternatives');
            is($top->[0][0], $f->{t}[$k], 'greedy: the top alternative');
            ok($top->[0][1] >= $top->[1][1]
               && $top->[1][1] >= $top->[2][1], 'sorted');
            is($f->{t}[$k], $GOOD[$i++], 'same tokens as greedy');
        }
    }
};

subtest 'logprobs 0: the sampled token only' => sub {
    my ($status, $frames) = generate($port, {
        token_ids => \@PROMPT, max_tokens => 4, logprobs => 0,
        sampling => { temperature => 0.7, seed => 1 } });
    is($status, 200, 'status 200');
    my @tf = grep { exists $_->{t} } @$frames;
    ok(@tf > 0, 'token frames');
    ok(!grep({ !defined $_->{lp} || @{ $_->{lp} } != @{ $_->{t} } } @tf),
       'one lp per token');
    ok(!grep({ defined $_->{top} && grep { @$_ } @{ $_->{top} } } @tf),
       'no alternatives');
    is($frames->[-1]{finish}, 'length', 'finished');
};

subtest 'prefix reuse' => sub {
    my @long = (@PROMPT, map { 3 + $_ % 500 } 1 .. 40);   # 45 tokens
    my %req = (token_ids => \@long, max_tokens => 4,
               sampling => { temperature => 0 });
    my ($s1, $f1) = generate($port, \%req);
    my ($s2, $f2) = generate($port, \%req);
    is($f1->[-1]{cached_tokens}, 0, 'first: nothing cached');
    ok($f2->[-1]{cached_tokens} >= 16, 'second: cached blocks reused');
    is($f2->[-1]{cached_tokens} % 16, 0, 'whole blocks');
    is_deeply(tokens_of($f2), tokens_of($f1), 'same output');
};

subtest 'request errors' => sub {
    my @cases = (
        [ '{"token_ids":[1,2', 400, '' ],
        [ '{"max_tokens":3}', 400, 'token_ids' ],
        [ '{"token_ids":[1,512]}', 400, 'token_ids[1]' ],
        [ '{"token_ids":[1],"sampling":{"top_p":2}}', 400, 'sampling.top_p' ],
        [ '{"token_ids":[1],"v":2}', 400, 'v' ],
        [ JSON::PP::encode_json({ token_ids => [ (5) x 600 ] }), 400,
          'token_ids' ],
    );
    for my $c (@cases) {
        my $r = HTTP::Tiny->new->post("http://127.0.0.1:$port/v1/generate",
                                      { content => $c->[0] });
        is($r->{status}, $c->[1], "status for " . substr($c->[0], 0, 40));
        my $j = eval { JSON::PP::decode_json($r->{content}) };
        ok($j && $j->{error}{message}, 'JSON error body with a message');
        is($j->{error}{field} // '', $c->[2], "names '$c->[2]'");
    }
    my ($status) = http_get($port, '/v1/generate');
    is($status, 405, 'GET /v1/generate: 405');
    for my $c ([ PUT => '/v1/generate' ], [ DELETE => '/v1/generate' ],
               [ POST => '/health' ], [ PATCH => '/metrics' ]) {
        my $r = HTTP::Tiny->new->request($c->[0],
                                         "http://127.0.0.1:$port$c->[1]");
        is($r->{status}, 405, "$c->[0] $c->[1]: 405");
        ok($r->{headers}{allow}, "$c->[0] $c->[1]: Allow header");
        my $j = eval { JSON::PP::decode_json($r->{content}) };
        ok($j && $j->{error}{message}, "$c->[0] $c->[1]: JSON error body");
    }
    ($status) = http_get($port, '/nope');
    is($status, 404, '/nope: 404');
};

subtest '/metrics' => sub {
    my ($status, $text, $h) = http_get($port, '/metrics');
    is($status, 200, 'status 200');
    like($h->{'content-type'}, qr{text/plain}, 'text');
    for my $m (qw(running_sequences waiting_sequences kv_blocks_used
                  kv_usage_ratio prefix_cache_hit_ratio prompt_tokens_total
                  generation_tokens_total preemptions_total
                  redis_connected kv_events_published_total)) {
        like($text, qr/^# TYPE dynamo_worker_$m /m, "$m declared");
    }
    like($text, qr/^dynamo_worker_time_to_first_token_seconds_bucket\{le="\+Inf"\} [1-9]/m,
         'ttft histogram counted');
    like($text, qr/^dynamo_worker_inter_token_latency_seconds_count [1-9]/m,
         'itl histogram counted');
    ok(metric($port, 'generation_tokens_total') >= 25 + 3 + 5,
       'generation tokens');
    like($text, qr/^dynamo_worker_requests_finished_total\{reason="length"\} [1-9]/m,
         'finished by length');
    ok(metric($port, 'prefix_cache_hit_ratio') > 0, 'hit ratio > 0');
    is(metric($port, 'redis_connected'), 0, 'no redis');
};

# The cpu engine finishes 450 tokens of the tiny model in well under a
# second, too fast to be sure to close mid-stream; the mock engine at its
# modelled speed takes tens of ms per step.
is(stop_worker($w), 0, 'cpu worker: SIGTERM, exit 0');
my $m = start_worker('--model', $MODEL, '--engine', 'mock', '--redis',
                     'none');
$port = $m->{port};

subtest 'client disconnect mid-stream cancels at once' => sub {
    my ($sock, $status) = open_stream($port, {
        token_ids => \@PROMPT, max_tokens => 450, ignore_eos => JSON::PP::true });
    like($status, qr{^HTTP/1\.1 200}, 'status 200');
    my $first = read_chunk($sock);
    like($first, qr/^\{"t":\[\d+/, 'a token frame');
    is(metric($port, 'requests_in_flight'), 1, 'in flight');
    ok(metric($port, 'kv_blocks_used') > 0, 'blocks in use');
    my $t0 = time;
    close $sock;
    ok(wait_until(sub {
        (my (undef, $t) = http_get($port, '/metrics'));
        $t =~ /^dynamo_worker_requests_finished_total\{reason="cancelled"\} 1$/m
    }, 5), 'finished as cancelled');
    my $dt = time - $t0;
    ok($dt < 2, sprintf('within %.3f s (450 tokens take longer)', $dt));
    is(metric($port, 'client_disconnects_total'), 1, 'one disconnect');
    is(metric($port, 'requests_in_flight'), 0, 'nothing in flight');
    is(metric($port, 'kv_blocks_used'), 0, 'no blocks in use');
    is(metric($port, 'running_sequences'), 0, 'nothing running');
    like(read_file($m->{out}), qr/^dynamo-worker: listening on \S+ worker_id=\d+ engine=mock/m,
         'mock start line');
};

subtest 'SIGINT mid-stream: cancelled finish frame, exit 0' => sub {
    my ($sock) = open_stream($port, {
        token_ids => \@PROMPT, max_tokens => 450, ignore_eos => JSON::PP::true });
    ok(defined read_chunk($sock), 'streaming');
    kill SIGINT, $m->{pid};
    my $last = '';
    while (defined(my $c = read_chunk($sock))) {
        last if $c eq '';
        $last = $c;
    }
    my @lines = split /\n/, $last;
    my $fin = eval { JSON::PP::decode_json($lines[-1]) } // {};
    is($fin->{finish}, 'cancelled', 'finish: cancelled');
    ok($fin->{completion_tokens} < 450, 'before the end');
    is(stop_worker($m, 0), 0, 'exit 0');
    like(read_file($m->{err}), qr/SIGINT: stopping/, 'logged');
};

done_testing();
