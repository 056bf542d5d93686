# vim:set ft=perl ts=4 sw=4 et:
# End to end with the official OpenAI Node SDK (npm "openai", pinned in
# scripts/fetch-testdata.sh): a streamed chat completion, a streamed
# completion and a plain chat completion from the embedded model through
# nginx, checked against the model's known greedy text; an unknown model
# surfaces as the SDK's NotFoundError with code model_not_found.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Test::Dynamo::Gateway qw(:all);

my $node = `sh -c 'command -v node' 2>/dev/null`;
chomp $node;
plan skip_all => 'node is not installed (apt-get install nodejs npm)'
    if !$node;

my $fetch = `sh scripts/fetch-testdata.sh 2>&1`;
if ($? || !-f '.cache/npm/node_modules/openai/package.json') {
    # node is there: a failed install is a failure, not a skip
    fail("scripts/fetch-testdata.sh installs the openai SDK:\n$fetch");
    done_testing();
    exit;
}

my @prompt_ids = (1, 403, 407, 261, 378);
my @known = split ' ', '432 383 286 261 376 298 315 421 395 317 426 338 401 '
                     . '396 267 337 410 408 419 292 411 322 265 282 295';
my $greedy = detokenize([@prompt_ids, @known])
             =~ s/^\Q@{[ detokenize(\@prompt_ids) ]}\E//r;
like($greedy, qr/^, there was a little girl named Lily\./, 'reference text');

my $w = start_worker(cpu_worker_args());
my $gw = start_gateway(servers => ["127.0.0.1:$w->{port}"]);

my $base = "http://127.0.0.1:$gw->{port}/v1";
my $out = `'$node' t/js/openai-sdk.cjs $base stories260K 2>&1`;
is($?, 0, 'the SDK script ran without an exception') or diag $out;

my %r;
for my $l (split /\n/, $out) {
    my $j = eval { json_decode($l) } or next;
    $r{ $j->{call} } = $j if ref $j eq 'HASH' && $j->{call};
}

my $c = $r{chat_stream} // {};
is($c->{text}, $greedy, 'streamed chat: the greedy story');
is($c->{finish}, 'length', 'streamed chat: finish_reason length');
is($c->{role}, 'assistant', 'streamed chat: role in a delta');
ok(($c->{chunks} // 0) >= 3, 'streamed chat: several chunks');
is($c->{usage}{completion_tokens}, 25, 'streamed chat: usage chunk');

my $p = $r{completion_stream} // {};
is($p->{text}, $greedy, 'streamed completion: the greedy story');
is($p->{finish}, 'length', 'streamed completion: finish_reason length');

my $o = $r{chat} // {};
is($o->{object}, 'chat.completion', 'chat: object');
like($o->{id} // '', qr/^chatcmpl-/, 'chat: id');
is($o->{text}, $greedy, 'chat: the greedy story');
is($o->{usage}{total_tokens}, 30, 'chat: usage total 5 + 25');

my $e = $r{unknown_model} // {};
is($e->{status}, 404, 'unknown model: the SDK sees 404');
is($e->{code}, 'model_not_found', 'unknown model: code');
is($e->{param}, 'model', 'unknown model: param');

stop_gateway($gw);
stop_worker($w);
done_testing();
