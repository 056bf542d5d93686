# vim:set ft=perl ts=4 sw=4 et:
# The OpenAI API through nginx: every endpoint, streaming and not, the
# response shapes field by field, the embedded model's known greedy text,
# usage with cached tokens, stop strings across token boundaries.
# Real nginx + the module + one real dynamo-worker (cpu engine,
# models/stories260K); no Redis (routing on the server line alone).

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Test::Dynamo::Gateway qw(:all);

my $known = '432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 '
          . '337 410 408 419 292 411 322 265 282 295';
my @prompt_ids = (1, 403, 407, 261, 378);
my @known_ids = split ' ', $known;

# The reference text: dynamo-kv's detokenizer over prompt + known ids,
# minus the prompt's own text (models/stories260K/README.md)
my $prompt_text = detokenize(\@prompt_ids);
my $full = detokenize([@prompt_ids, @known_ids]);
is($prompt_text, 'Once upon a time', 'reference: prompt text');
like($full, qr/^\QOnce upon a time, there was a little girl named Lily.\E/,
     'reference: full text as the model README says');
my $greedy = substr $full, length $prompt_text;

my $w = start_worker(cpu_worker_args());
my $gw = start_gateway(servers => ["127.0.0.1:$w->{port}"],
                       models => '    dynamo_model name=stories260K path='
                                 . model_dir() . " alias=stories;\n");

my %greedy = (model => 'stories260K', temperature => 0, max_tokens => 25);
my $chat_msgs = [ { role => 'user', content => 'Once upon a time' } ];

sub check_usage {
    my ($u, $p, $c, $name) = @_;
    is(ref $u, 'HASH', "$name: usage object") or return;
    is($u->{prompt_tokens}, $p, "$name: usage.prompt_tokens") if defined $p;
    is($u->{completion_tokens}, $c, "$name: usage.completion_tokens")
        if defined $c;
    is($u->{total_tokens}, ($u->{prompt_tokens} // 0)
                           + ($u->{completion_tokens} // 0),
       "$name: total = prompt + completion");
    is(ref $u->{prompt_tokens_details}, 'HASH',
       "$name: usage.prompt_tokens_details");
    like($u->{prompt_tokens_details}{cached_tokens} // '', qr/^\d+$/,
         "$name: cached_tokens is an integer");
}

sub check_common {
    my ($j, $object, $idre, $name) = @_;
    is($j->{object}, $object, "$name: object");
    like($j->{id} // '', $idre, "$name: id");
    like($j->{created} // '', qr/^\d+$/, "$name: created is an integer");
    ok(abs(($j->{created} // 0) - time) < 120, "$name: created is now");
    is($j->{model}, 'stories260K', "$name: model");
}

subtest 'GET /health: ready with a usable worker' => sub {
    my $r = wait_until(sub { my $r = gw_get($gw, '/health');
                             ($r->{status} // 0) == 200 ? $r : undef }, 10);
    ok($r, '200 within 10 s') or return;
    like($r->{headers}{'content-type'}, qr{^application/json}, 'json');
    is($r->{json}{status}, 'ok', 'status ok');
};

subtest 'GET /v1/models: the OpenAI list' => sub {
    my $r = gw_get($gw, '/v1/models');
    is($r->{status}, 200, 'status 200');
    like($r->{headers}{'content-type'} // '', qr{^application/json},
         'json');
    my $j = $r->{json};
    is($j->{object}, 'list', 'object list');
    is(ref $j->{data}, 'ARRAY', 'data array');
    my ($m) = grep { $_->{id} eq 'stories260K' } @{ $j->{data} // [] };
    ok($m, 'stories260K listed') or return;
    is($m->{object}, 'model', 'object model');
    like($m->{created} // '', qr/^\d+$/, 'created');
    ok(defined $m->{owned_by} && !ref $m->{owned_by}, 'owned_by string');
    my $one = gw_get($gw, '/v1/models/stories260K');
    is($one->{status}, 200, 'GET /v1/models/stories260K 200');
    is($one->{json}{id}, 'stories260K', 'one model by id');
};

subtest 'POST /v1/completions, text prompt: known greedy text' => sub {
    my $r = gw_post($gw, '/v1/completions',
                    { %greedy, prompt => 'Once upon a time' });
    is($r->{status}, 200, 'status 200') or diag $r->{raw};
    like($r->{headers}{'content-type'} // '', qr{^application/json},
         'application/json');
    my $j = $r->{json} or return fail('body is JSON');
    check_common($j, 'text_completion', qr/^cmpl-\S+$/, 'completion');
    is(scalar @{ $j->{choices} // [] }, 1, 'one choice');
    my $c = $j->{choices}[0];
    is($c->{index}, 0, 'index 0');
    is($c->{text}, $greedy, 'text = the known greedy continuation');
    ok(exists $c->{logprobs} && !defined $c->{logprobs}, 'logprobs null');
    is($c->{finish_reason}, 'length', 'finish_reason length');
    check_usage($j->{usage}, 5, 25, 'completion');
};

subtest 'POST /v1/completions, token-id prompt' => sub {
    my $r = gw_post($gw, '/v1/completions',
                    { %greedy, prompt => \@prompt_ids });
    is($r->{status}, 200, 'status 200') or diag $r->{raw};
    is($r->{json}{choices}[0]{text}, $greedy, 'same text as the text prompt');
    is($r->{json}{usage}{prompt_tokens}, 5, 'prompt_tokens 5');
};

subtest 'POST /v1/chat/completions: known greedy text' => sub {
    my $r = gw_post($gw, '/v1/chat/completions',
                    { %greedy, messages => $chat_msgs });
    is($r->{status}, 200, 'status 200') or diag $r->{raw};
    my $j = $r->{json} or return fail('body is JSON');
    check_common($j, 'chat.completion', qr/^chatcmpl-\S+$/, 'chat');
    my $c = $j->{choices}[0];
    is(scalar @{ $j->{choices} // [] }, 1, 'one choice');
    is($c->{index}, 0, 'index 0');
    is($c->{message}{role}, 'assistant', 'message.role');
    is($c->{message}{content}, $greedy, 'message.content = greedy text');
    is($c->{finish_reason}, 'length', 'finish_reason length');
    ok(exists $c->{logprobs} && !defined $c->{logprobs}, 'logprobs null');
    check_usage($j->{usage}, 5, 25, 'chat');
    my $r2 = gw_post($gw, '/v1/chat/completions',
                     { %greedy, max_tokens => undef,
                       max_completion_tokens => 3, messages => $chat_msgs });
    is($r2->{json}{usage}{completion_tokens}, 3,
       'max_completion_tokens honoured');
    my $r3 = gw_post($gw, '/v1/chat/completions',
                     { %greedy, max_tokens => 4, messages => [
                       { role => 'user', content => [
                           { type => 'text', text => 'Once upon a time' } ] }
                     ] });
    is($r3->{json}{choices}[0]{message}{content},
       detokenize([@prompt_ids, @known_ids[0 .. 3]]) =~ s/^\Q$prompt_text//r,
       'text content parts');
};

sub stream_ok {
    my ($path, $body, $name) = @_;
    my ($st, $ev) = sse_collect($gw, $path,
                                { %$body, stream => JSON::PP::true });
    is($st->{status}, 200, "$name: status 200");
    like($st->{headers}{'content-type'} // '', qr{^text/event-stream},
         "$name: text/event-stream");
    ok($st->{complete} || !$st->{chunked}, "$name: chunked body terminated");
    is($ev->[-1], '[DONE]', "$name: data: [DONE] last");
    is(scalar(grep { !ref $_ } @$ev), 1, "$name: one [DONE]");
    ok(!grep({ ref $_ && ($_->{error} || $_->{_bad}) } @$ev),
       "$name: no error or malformed event");
    like(join('', @{ $st->{events} }), qr/^(data: [^\n]*)$/m,
         "$name: events are data: lines");
    return grep { ref $_ } @$ev;
}

subtest 'streaming chat: role first, deltas, finish, [DONE]' => sub {
    my @c = stream_ok('/v1/chat/completions',
                      { %greedy, messages => $chat_msgs }, 'chat stream');
    @c or return;
    ok(@c >= 2, 'several chunks') or return;
    my %ids = map { $_->{id} => 1 } @c;
    is(scalar keys %ids, 1, 'one id for every chunk');
    for my $k (@c) {
        check_common($k, 'chat.completion.chunk', qr/^chatcmpl-\S+$/, 'chunk')
            if $k == $c[0] || $k == $c[-1];
    }
    is($c[0]{choices}[0]{delta}{role}, 'assistant', 'first chunk: role');
    ok(!grep({ exists $_->{choices}[0]{delta}{role} } @c[1 .. $#c]),
       'role only in the first chunk');
    my $text = join '', map { $_->{choices}[0]{delta}{content} // '' } @c;
    is($text, $greedy, 'deltas join to the greedy text');
    is($c[-1]{choices}[0]{finish_reason}, 'length', 'last: finish length');
    ok(!grep({ defined $_->{choices}[0]{finish_reason} } @c[0 .. $#c - 1]),
       'finish_reason null before the last');
    ok(!grep({ defined $_->{usage} } @c), 'no usage without include_usage');
};

subtest 'streaming chat with include_usage' => sub {
    my @c = stream_ok('/v1/chat/completions',
                      { %greedy, messages => $chat_msgs,
                        stream_options => { include_usage => JSON::PP::true } },
                      'usage stream');
    ok(@c >= 2, 'finish and usage chunks') or return;
    my $u = $c[-1];
    is_deeply($u->{choices}, [], 'usage chunk: choices []');
    check_usage($u->{usage}, 5, 25, 'usage chunk');
    ok(!grep({ defined $_->{usage} } @c[0 .. $#c - 1]),
       'usage null in the other chunks');
    is($c[-2]{choices}[0]{finish_reason}, 'length',
       'finish chunk before the usage chunk');
};

subtest 'streaming completion: text_completion chunks' => sub {
    my @c = stream_ok('/v1/completions',
                      { %greedy, prompt => 'Once upon a time' },
                      'completion stream');
    @c or return;
    ok(@c >= 1, 'chunks') or return;
    check_common($c[0], 'text_completion', qr/^cmpl-\S+$/, 'first chunk');
    is(join('', map { $_->{choices}[0]{text} // '' } @c), $greedy,
       'texts join to the greedy text');
    is($c[-1]{choices}[0]{finish_reason}, 'length', 'last: length');
    is($c[0]{choices}[0]{index}, 0, 'index 0');
    my @u = stream_ok('/v1/completions',
                      { %greedy, prompt => \@prompt_ids,
                        stream_options => { include_usage => JSON::PP::true } },
                      'completion usage stream');
    @u or return;
    check_usage($u[-1]{usage}, 5, 25, 'completion usage chunk');
};

subtest 'cached_tokens: a repeated long prompt hits the prefix cache' => sub {
    my $p = 'One day, a little dog named Max went to the park with his '
          . 'mom. He saw a big tree and wanted to climb it. Max tried and '
          . 'tried, but he could not reach the top.';
    my $r1 = gw_post($gw, '/v1/completions',
                     { %greedy, max_tokens => 2, prompt => $p });
    my $r2 = gw_post($gw, '/v1/completions',
                     { %greedy, max_tokens => 2, prompt => $p });
    my $n = $r1->{json}{usage}{prompt_tokens} // 0;
    ok($n > 32, "prompt of $n tokens");
    is($r1->{json}{usage}{prompt_tokens_details}{cached_tokens}, 0,
       'first: nothing cached');
    my $k = $r2->{json}{usage}{prompt_tokens_details}{cached_tokens} // -1;
    ok($k >= 16 && $k % 16 == 0 && $k < $n,
       "second: whole blocks cached ($k)");
};

subtest 'an alias: served, named as the client named it' => sub {
    my $r = gw_post($gw, '/v1/completions',
                    { %greedy, model => 'stories', max_tokens => 4,
                      prompt => 'Once upon a time' });
    is($r->{status}, 200, 'status 200') or diag $r->{raw};
    is($r->{json}{model}, 'stories', 'model as the client named it');
    my $m = gw_get($gw, '/v1/models');
    ok(grep({ $_->{id} eq 'stories' } @{ $m->{json}{data} // [] }),
       'the alias is listed in /v1/models');
};

subtest 'logprobs: chat and completions shapes' => sub {
    my $r = gw_post($gw, '/v1/chat/completions',
                    { %greedy, max_tokens => 3, messages => $chat_msgs,
                      logprobs => JSON::PP::true, top_logprobs => 2 });
    is($r->{status}, 200, 'chat: status 200') or diag $r->{raw};
    my $c = $r->{json}{choices}[0] // {};
    my $lp = $c->{logprobs}{content};
    is(ref $lp, 'ARRAY', 'chat: logprobs.content array') or return;
    is(scalar @$lp, 3, 'chat: one entry per token');
    is(join('', map { $_->{token} // '' } @$lp), $c->{message}{content},
       'chat: tokens join to the content');
    ok(!grep({ !defined $_->{logprob} || $_->{logprob} > 0 } @$lp),
       'chat: logprob <= 0');
    ok(!grep({ ref $_->{bytes} ne 'ARRAY' } @$lp), 'chat: bytes arrays');
    ok(!grep({ ref $_->{top_logprobs} ne 'ARRAY'
               || @{ $_->{top_logprobs} } != 2 } @$lp),
       'chat: 2 top_logprobs each');
    # greedy: the chosen token is the most likely one
    ok(!grep({ $_->{top_logprobs}[0]{logprob} > $_->{logprob} + 1e-6 }
             @$lp), 'chat: greedy token has the top logprob');
    my $p = gw_post($gw, '/v1/completions',
                    { %greedy, max_tokens => 3, prompt => 'Once upon a time',
                      logprobs => 2 });
    is($p->{status}, 200, 'completion: status 200') or return;
    my $l = $p->{json}{choices}[0]{logprobs} // {};
    is(ref $l->{tokens}, 'ARRAY', 'completion: tokens') or return;
    is(scalar @{ $l->{tokens} }, 3, 'completion: 3 tokens');
    is(join('', @{ $l->{tokens} }), $p->{json}{choices}[0]{text},
       'completion: tokens join to the text');
    is(scalar @{ $l->{token_logprobs} // [] }, 3, 'completion: token_logprobs');
    is(scalar @{ $l->{top_logprobs} // [] }, 3, 'completion: top_logprobs');
    is_deeply($l->{text_offset}, [ 0, 1, 1 + length ' there' ],
              'completion: text_offset');
};

subtest 'seeded sampling repeats' => sub {
    my %b = (model => 'stories260K', prompt => 'Once upon a time',
             temperature => 1, seed => 42, max_tokens => 20);
    my @t = map { gw_post($gw, '/v1/completions', \%b)->{json}{choices}[0]{text}
                  // '' } 1 .. 2;
    ok(length $t[0], 'text');
    is($t[1], $t[0], 'same seed, same text');
};

subtest 'a body buffered to a file (40 KB of whitespace) is read' => sub {
    my $body = '{"model":"stories260K",' . (' ' x 40000)
             . '"prompt":"Once upon a time","max_tokens":25,"temperature":0}';
    my $r = gw_post($gw, '/v1/completions', $body);
    is($r->{status}, 200, 'status 200') or diag $r->{raw};
    is($r->{json}{choices}[0]{text}, $greedy, 'the greedy text');
};

subtest '4 concurrent streams each get their own greedy text' => sub {
    my @s = map { sse_open($gw, '/v1/completions',
                           { %greedy, prompt => 'Once upon a time',
                             stream => JSON::PP::true }) } 1 .. 4;
    my @text;
    for my $s (@s) {
        my ($t, $done) = ('', 0);
        while (defined(my $e = sse_next($s, 30))) {
            if (!ref $e) { $done = 1; last }
            $t .= $e->{choices}[0]{text} // '';
        }
        sse_close($s);
        push @text, $done ? $t : undef;
    }
    is_deeply(\@text, [ ($greedy) x 4 ], 'four greedy texts');
};

# Stop strings (the greedy pieces: "," " there" " was" " a" " little" " g"
# "ir" "l" " named" " Lily" "." " She" " lo" "ved" " to" ...)
my @stops = (
    [ 'le gir', 7, 'three tokens, starting mid-token' ],
    [ 'Lily.', 11, 'two tokens' ],
    [ [ 'little boy', 'ved to' ], 15,
      'a held-back prefix that does not match is released' ],
);
for my $s (@stops) {
    my ($stop, $ntok, $what) = @$s;
    my $first = ref $stop ? $stop->[-1] : $stop;
    my $i = index $greedy, $first;
    my $want = substr $greedy, 0, $i;
    subtest "stop string: $what" => sub {
        ok($i > 0, 'reference: the stop string is in the greedy text');
        my $r = gw_post($gw, '/v1/completions',
                        { %greedy, prompt => 'Once upon a time',
                          stop => $stop });
        is($r->{json}{choices}[0]{text}, $want, 'text ends before it');
        is($r->{json}{choices}[0]{finish_reason}, 'stop', 'finish stop');
        is($r->{json}{usage}{completion_tokens}, $ntok,
           'completion tokens up to the one completing the match');
        my @c = stream_ok('/v1/chat/completions',
                          { %greedy, messages => $chat_msgs, stop => $stop },
                          'stream');
        @c or return;
        is(join('', map { $_->{choices}[0]{delta}{content} // '' } @c),
           $want, 'streamed text ends before it (no partial stop string)');
        is($c[-1]{choices}[0]{finish_reason}, 'stop', 'stream: finish stop');
    };
}

subtest 'mutated request bodies: OpenAI errors or answers, no crash' => sub {
    srand(20261122);
    my @base = (
        [ '/v1/chat/completions', '{"model":"stories260K","max_tokens":2,'
          . '"messages":[{"role":"user","content":[{"type":"text",'
          . '"text":"Hi"}]}],"stop":["a","b"],"stream":true,'
          . '"stream_options":{"include_usage":true},"temperature":0.5}' ],
        [ '/v1/completions', '{"model":"stories260K","prompt":[1,403,407],'
          . '"max_tokens":2,"logprobs":2,"seed":7,"top_p":0.9}' ],
    );
    my @junk = ('{', '}', '[', ']', '"', '\\', ':', ',', "\0", "\xff",
                '\u0000', '\ud800', '1e999', '-1', 'null', 'true', '0.5',
                '99999999999999999999', '[' x 300, '{"a":' x 300);
    my ($bad, $n) = (0, 0);
    for my $i (1 .. 300) {
        my ($path, $body) = @{ $base[$i % 2] };
        for (1 .. 1 + int rand 3) {
            my $at = int rand length $body;
            my $op = int rand 3;
            if ($op == 0) { substr($body, $at, 1 + int rand 4) = '' }
            elsif ($op == 1) { substr($body, $at, 0) = $junk[rand @junk] }
            else { $body = substr $body, 0, $at }
        }
        my $r = gw_post($gw, $path, $body, timeout => 20);
        $n++;
        my $st = $r->{status} // 0;
        my $ok = $st == 200
                 || ($st =~ /^4\d\d$/ && ref $r->{json} eq 'HASH'
                     && ref $r->{json}{error} eq 'HASH'
                     && defined $r->{json}{error}{message});
        if (!$ok) {
            $bad++;
            diag "$path $body\n=> " . substr($r->{raw} // '', 0, 300)
                if $bad <= 3;
        }
    }
    is($bad, 0, "$n mutated bodies: 200 or a 4xx OpenAI error each");
    unlike(error_log_text($gw), qr/exited on signal|\[alert\]/,
           'no nginx worker crashed');
    is(gw_get($gw, '/health')->{status}, 200, 'still healthy');
};

subtest 'worker idle after every request (stop cut cancels there)' => sub {
    ok(wait_worker_idle($w->{port}, 10), 'no request left in flight');
};

subtest 'access log variables' => sub {
    my @e = grep { $_->{uri} eq '/v1/completions' && $_->{status} == 200 }
            @{ access_log_entries($gw) };
    ok(@e, 'completion requests logged') or return;
    is($e[0]{worker}, "127.0.0.1:$w->{port}", '$dynamo_worker');
    is($e[0]{prompt}, 5, '$dynamo_prompt_tokens');
    is($e[0]{completion}, 25, '$dynamo_completion_tokens');
    like($e[0]{cached}, qr/^\d+$/, '$dynamo_cached_tokens');
};

stop_gateway($gw);
stop_worker($w);
unlike(error_log_text($gw), qr/\[(alert|crit|emerg)\]|open socket/,
       'no alert, crit or leaked socket');

done_testing();
